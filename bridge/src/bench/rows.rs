//! The rows: plain NATS, and the bridge with its two processes.

use super::*;
/// What the rows share.
pub(super) struct Ctx {
    pub(super) url: String,
    pub(super) exe: PathBuf,
    pub(super) scratch: PathBuf,
    pub(super) ids: AtomicU32,
}

impl Ctx {
    /// A new row's subject and stream name.
    pub(super) fn names(&self) -> (u32, String, String) {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        (
            id,
            format!("shmchan.bench.{pid}.{id}"),
            format!("SHMCHAN_BENCH_{pid}_{id}"),
        )
    }

    /// The row's time limit: generous (at 2,000 msg/s at least), a stall
    /// is caught sooner.
    pub(super) fn limit(plan: &Plan) -> Duration {
        Duration::from_secs(60)
            + Duration::from_secs_f64((plan.count + plan.warm) as f64 / 2_000.0)
            + Duration::from_secs_f64(3.0 * plan.lat_count as f64 / plan.rate)
    }
}

/// A connection with the options the bridges' have (a name, a five-second
/// connection timeout, reconnecting forever with their backoff), but
/// quiet: a slow-consumer event (the client dropped messages for a
/// subscriber that did not keep up) and a disconnection are counted in
/// `sh`, not printed.
pub(super) async fn connect(
    url: &str,
    name: &str,
    sh: Option<Arc<Shared>>,
) -> Result<Client, String> {
    async_nats::ConnectOptions::new()
        .name(name)
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(crate::nats::backoff)
        .event_callback(move |event| {
            let sh = sh.clone();
            async move {
                if let Some(sh) = sh {
                    match event {
                        async_nats::Event::SlowConsumer(_) => {
                            sh.slow.fetch_add(1, Ordering::Relaxed);
                        }
                        async_nats::Event::Disconnected => {
                            sh.disconnects.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
            }
        })
        .connect(url)
        .await
        .map_err(|e| e.to_string())
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))
}

pub(super) fn spawn_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<JoinHandle<Result<T, String>>, String> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| format!("cannot start a thread: {e}"))
}

/// The config of a stream the bridges accept as theirs.
pub(super) fn stream_config(name: &str, subject: &str) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects: vec![subject.to_string()],
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

/// Plain NATS: a subscriber thread and a publisher thread, each with its
/// connection.
pub(super) fn nats_row(ctx: &Ctx, mode: Mode, plan: &Plan) -> Result<Measured, String> {
    let (_, subject, name) = ctx.names();
    let js = mode == Mode::Jetstream;
    let _stream = if js {
        Some(StreamGuard::create(&ctx.url, &name, &subject)?)
    } else {
        None
    };
    let sh = Arc::new(Shared::default());
    let rx = {
        let (sh, url, subject, name, plan) = (
            sh.clone(),
            ctx.url.clone(),
            subject.clone(),
            name.clone(),
            plan.clone(),
        );
        spawn_thread("bench-nats-sub", move || {
            runtime()?.block_on(async {
                let client =
                    connect(&url, "shmchan bridge bench subscriber", Some(sh.clone())).await?;
                if !js {
                    let sub = client
                        .subscribe(subject)
                        .await
                        .map_err(|e| format!("cannot subscribe: {e}"))?;
                    let _ = client.flush().await;
                    sh.rx_ready.store(true, Ordering::Relaxed);
                    let mut inp = CoreIn { sub, last: None };
                    return receive_loop(&mut inp, &sh, &plan).await;
                }
                let jsc = jetstream::new(client.clone());
                let st = jsc
                    .get_stream(&name)
                    .await
                    .map_err(|e| format!("cannot find stream {name}: {e}"))?;
                let config = pull::Config {
                    durable_name: Some("bench".to_string()),
                    ack_policy: AckPolicy::All,
                    ack_wait: ACK_WAIT,
                    max_ack_pending: MAX_ACK_PENDING,
                    filter_subject: subject.clone(),
                    ..Default::default()
                };
                let consumer: PullConsumer = st
                    .get_or_create_consumer("bench", config)
                    .await
                    .map_err(|e| format!("cannot create the consumer: {e}"))?;
                let messages = consumer
                    .stream()
                    .max_messages_per_batch(BATCH)
                    .messages()
                    .await
                    .map_err(|e| format!("cannot pull: {e}"))?;
                sh.rx_ready.store(true, Ordering::Relaxed);
                let mut inp = JsIn {
                    messages,
                    to_ack: None,
                    unacked: 0,
                    errors: 0,
                };
                let r = receive_loop(&mut inp, &sh, &plan).await;
                inp.ack().await;
                r
            })
        })?
    };
    let since = Instant::now();
    while !sh.rx_ready.load(Ordering::Relaxed) {
        if rx.is_finished() || since.elapsed() > START_LIMIT || interrupted() {
            sh.stop();
            let why = join(rx, "the subscriber").err();
            return Err(why.unwrap_or_else(|| {
                format!("the subscriber was not ready within {START_LIMIT:?}")
            }));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let tx = {
        let (sh, url, plan) = (sh.clone(), ctx.url.clone(), plan.clone());
        let subject = Subject::from(subject.clone());
        spawn_thread("bench-nats-pub", move || {
            runtime()?.block_on(until_stopped(&sh, async {
                let client =
                    connect(&url, "shmchan bridge bench publisher", Some(sh.clone())).await?;
                if js {
                    let ctx = jetstream::ContextBuilder::new()
                        .timeout(ACK_TIMEOUT)
                        .ack_timeout(ACK_TIMEOUT)
                        .max_ack_inflight(JS_WINDOW + 1)
                        .build(client.clone());
                    let mut out = JsOut {
                        js: ctx,
                        subject,
                        acks: FuturesOrdered::new(),
                    };
                    send_plan(&mut out, &sh, &plan).await
                } else {
                    let mut out = CoreOut { client, subject };
                    send_plan(&mut out, &sh, &plan).await
                }
            }))
        })?
    };
    let lat = run_sides(&sh, tx, rx, &mut [], Ctx::limit(plan))?;
    measure(&sh, plan, lat, Vec::new(), js)
}

/// A -> to-nats -> NATS -> from-nats -> B: real bridge processes, the
/// bench's sender into A and receiver from B in two threads.
pub(super) fn bridge_row(ctx: &Ctx, mode: Mode, plan: &Plan) -> Result<Measured, String> {
    let (id, subject, name) = ctx.names();
    let js = mode == Mode::Jetstream;
    // Declared first: deleted last, once the bridges have stopped.
    let _stream = if js {
        Some(StreamGuard::create(&ctx.url, &name, &subject)?)
    } else {
        None
    };
    let cap = ring_capacity(plan.size);
    let a = ChanGuard::create(cap, plan.size)?;
    let b = ChanGuard::create(cap, plan.size)?;
    let rx = b.ch.receiver().map_err(|e| format!("B's receiver: {e}"))?;
    let tx = a.ch.sender().map_err(|e| format!("A's sender: {e}"))?;
    let key = |g: &ChanGuard| format!("{:#x}", g.key);
    let mut from_args: Vec<String> = [
        "bridge",
        "from-nats",
        "--server",
        &ctx.url,
        "--subject",
        &subject,
    ]
    .map(String::from)
    .to_vec();
    if js {
        from_args.extend(["--stream", &name, "--durable", "bench"].map(String::from));
    }
    from_args.push(key(&b));
    let mut from = Proc::spawn(
        "from-nats",
        &ctx.exe,
        &from_args,
        &ctx.scratch.join(format!("from-nats-{id}.log")),
    )?;
    let mut to_args: Vec<String> = [
        "bridge",
        "to-nats",
        &key(&a),
        "--server",
        &ctx.url,
        "--subject",
        &subject,
    ]
    .map(String::from)
    .to_vec();
    if js {
        to_args.extend(["--stream", &name].map(String::from));
    }
    let mut to = Proc::spawn(
        "to-nats",
        &ctx.exe,
        &to_args,
        &ctx.scratch.join(format!("to-nats-{id}.log")),
    )?;
    // Both have connected: their start line (printed once subscribed, or
    // once the stream is there), and their endpoint in the channel.
    let marker = if js {
        "JetStream stream"
    } else {
        "at most once"
    };
    let since = Instant::now();
    loop {
        let from_up = from.stderr().contains(marker)
            && b.ch.stats().map(|s| s.senders == Some(1)).unwrap_or(false);
        let to_up = to.stderr().contains(marker)
            && a.ch
                .stats()
                .map(|s| s.receivers == Some(1))
                .unwrap_or(false);
        if from_up && to_up {
            break;
        }
        for p in [&mut from, &mut to] {
            if let Some(st) = p.try_wait() {
                return Err(format!("{} exited at start ({st}): {}", p.name, p.tail()));
            }
        }
        if since.elapsed() > START_LIMIT {
            return Err(format!(
                "the bridges did not start within {START_LIMIT:?}; from-nats: {}; to-nats: {}",
                from.tail(),
                to.tail()
            ));
        }
        if interrupted() {
            return Err("interrupted".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let sh = Arc::new(Shared::default());
    sh.rx_ready.store(true, Ordering::Relaxed);
    let rx = {
        let (sh, plan) = (sh.clone(), plan.clone());
        spawn_thread("bench-recv-b", move || {
            let mut inp = RingIn {
                rx,
                buf: Vec::with_capacity(plan.size),
            };
            runtime()?.block_on(receive_loop(&mut inp, &sh, &plan))
        })?
    };
    let tx = {
        let (sh, plan) = (sh.clone(), plan.clone());
        spawn_thread("bench-send-a", move || {
            // Dropped when the thread ends: A's end of stream, at which
            // to-nats stops by itself.
            let mut out = RingOut { tx, sh: sh.clone() };
            runtime()?.block_on(until_stopped(&sh, send_plan(&mut out, &sh, &plan)))
        })?
    };
    let lat = run_sides(&sh, tx, rx, &mut [&mut to, &mut from], Ctx::limit(plan)).map_err(|e| {
        match interrupted() {
            true => e,
            false => format!("{e}; to-nats: {}; from-nats: {}", to.tail(), from.tail()),
        }
    })?;
    let mut notes = Vec::new();
    match to.wait_for(STOP_LIMIT) {
        Some(st) if st.success() => {}
        Some(st) => notes.push(format!("to-nats exited with {st}: {}", to.tail())),
        None => {
            to.stop(STOP_LIMIT);
            notes.push(format!(
                "to-nats did not stop at the end of A's stream within {STOP_LIMIT:?}: {}",
                to.tail()
            ));
        }
    }
    let slow = from
        .stderr()
        .lines()
        .filter(|l| l.contains("slow subscriber"))
        .count();
    if slow > 0 {
        notes.push(format!(
            "from-nats's client dropped messages it could not keep up with ({slow} slow-consumer events, in any phase, the warm-up included)"
        ));
    }
    match from.stop(STOP_LIMIT) {
        Some(st) if st.success() => {}
        Some(st) => notes.push(format!("from-nats exited with {st}: {}", from.tail())),
        None => notes.push(format!(
            "from-nats did not stop on SIGTERM within {STOP_LIMIT:?}: killed"
        )),
    }
    // Their summaries: anything but a plain run (a window published
    // again, redeliveries) is worth a note.
    let summary = |p: &Proc, what: &str| {
        p.stderr()
            .lines()
            .find(|l| l.contains(what))
            .map(|l| l.trim_start_matches("shmchan bridge: ").to_string())
    };
    if js {
        match summary(&to, "to-nats stopped") {
            Some(l)
                if l.contains(" 0 duplicates, 0 republished windows")
                    && !l.contains("unacknowledged") => {}
            Some(l) => notes.push(l),
            None => notes.push("to-nats printed no summary".into()),
        }
        match summary(&from, "from-nats stopped") {
            Some(l) if l.contains(" 0 redeliveries dropped, 0 fetched to fill gaps") => {}
            Some(l) => notes.push(l),
            None => notes.push("from-nats printed no summary".into()),
        }
    }
    measure(&sh, plan, lat, notes, js)
}

/// Watches a row's two sides (and its children) until the sender has
/// done its work; then stops the receiver. The latency samples, or why
/// the row failed.
pub(super) fn run_sides(
    sh: &Shared,
    tx: JoinHandle<Result<(), String>>,
    rx: JoinHandle<Result<Vec<u64>, String>>,
    children: &mut [&mut Proc],
    limit: Duration,
) -> Result<Vec<u64>, String> {
    let watched = watch(sh, &tx, &rx, children, limit);
    if watched.is_err() {
        sh.stop();
    }
    let sent = join(tx, "the sending side");
    sh.stop();
    let received = join(rx, "the receiving side");
    let mut why: Vec<String> = Vec::new();
    if let Err(e) = watched {
        why.push(e);
    }
    for e in [sent.err(), received.as_ref().err().cloned()]
        .into_iter()
        .flatten()
    {
        if e != STOPPED {
            why.push(e);
        }
    }
    match received {
        Ok(lat) if why.is_empty() => Ok(lat),
        _ => Err(why.join("; ")),
    }
}

pub(super) fn watch(
    sh: &Shared,
    tx: &JoinHandle<Result<(), String>>,
    rx: &JoinHandle<Result<Vec<u64>, String>>,
    children: &mut [&mut Proc],
    limit: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    let mut last = u64::MAX;
    let mut changed = Instant::now();
    loop {
        if tx.is_finished() {
            return Ok(());
        }
        if interrupted() {
            return Err("interrupted".into());
        }
        if rx.is_finished() {
            return Err("the receiving side stopped early".into());
        }
        for c in children.iter_mut() {
            if let Some(st) = c.try_wait() {
                return Err(format!("{} exited during the run ({st})", c.name));
            }
        }
        let p = sh.progress();
        let phase = sh.phase.load(Ordering::Relaxed) as usize;
        if p != last {
            last = p;
            changed = Instant::now();
        } else if changed.elapsed() > STALL {
            return Err(format!(
                "no progress for {STALL:?} in the {} phase ({} sent, {} received)",
                PHASES[phase.min(2)],
                Shared::load(&sh.sent, phase.min(2)),
                Shared::load(&sh.got, phase.min(2)),
            ));
        }
        if start.elapsed() > limit {
            return Err(format!("the row took more than {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Joins a side's thread (at most [`STOP_LIMIT`]; one that does not end
/// is left behind, detached).
pub(super) fn join<T>(h: JoinHandle<Result<T, String>>, what: &str) -> Result<T, String> {
    let since = Instant::now();
    while !h.is_finished() {
        if since.elapsed() > STOP_LIMIT {
            return Err(format!("{what} did not stop within {STOP_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    h.join().map_err(|_| format!("{what} panicked"))?
}

/// The row's figures from what both sides counted.
/// `lossless`: JetStream, where a message lost is a failure.
pub(super) fn measure(
    sh: &Shared,
    plan: &Plan,
    mut lat: Vec<u64>,
    notes: Vec<String>,
    lossless: bool,
) -> Result<Measured, String> {
    let l = |a: &[AtomicU64; 3], p| Shared::load(a, p);
    let received = l(&sh.got, TPUT);
    if received == 0 {
        return Err("nothing arrived in the throughput phase".into());
    }
    if lat.is_empty() {
        return Err("nothing arrived in the latency phase".into());
    }
    let secs = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e9;
    let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { f64::NAN };
    let msgs_per_s = rate(
        received,
        secs(l(&sh.first_tx_ns, TPUT), l(&sh.last_rx_ns, TPUT)),
    );
    let lat_sent = l(&sh.sent, LAT);
    let lat_received = l(&sh.got, LAT);
    let lat_sent_per_s = rate(
        lat_sent.saturating_sub(1),
        secs(l(&sh.first_tx_ns, LAT), l(&sh.last_tx_ns, LAT)),
    );
    let lat_received_per_s = rate(
        lat_received.saturating_sub(1),
        secs(l(&sh.first_rx_ns, LAT), l(&sh.last_rx_ns, LAT)),
    );
    let sent = l(&sh.sent, TPUT);
    if lossless && (received < sent || lat_received < lat_sent) {
        return Err(format!(
            "JetStream lost messages: {received} of {sent} arrived in the throughput phase, {lat_received} of {lat_sent} in the latency phase"
        ));
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize] as f64;
    let mut notes = notes;
    let slow = sh.slow.load(Ordering::Relaxed);
    if slow > 0 {
        notes.push(format!(
            "the subscriber's client dropped messages it could not keep up with ({slow} slow-consumer events, in any phase, the warm-up included)"
        ));
    }
    let disconnects = sh.disconnects.load(Ordering::Relaxed);
    if disconnects > 0 {
        notes.push(format!(
            "the bench's clients were disconnected {disconnects} times"
        ));
    }
    if lat_received < lat_sent {
        notes.push(format!(
            "the latency phase lost {} of {lat_sent} messages",
            lat_sent - lat_received
        ));
    }
    Ok(Measured {
        sent,
        received,
        msgs_per_s,
        lat_sent,
        lat_received,
        lat_offered_per_s: plan.rate,
        lat_sent_per_s,
        lat_received_per_s,
        p50_ns: pct(0.50),
        p99_ns: pct(0.99),
        max_ns: *lat.last().expect("not empty") as f64,
        notes,
    })
}
