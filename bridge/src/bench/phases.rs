//! The phases of a row, and what its sending and receiving sides share.

use super::*;
/// The first 16 bytes of a message: its send time (CLOCK_MONOTONIC, ns),
/// then its phase (top byte) and number.
pub(super) const HEADER: usize = 16;
pub(super) const WARM: usize = 0;
pub(super) const TPUT: usize = 1;
pub(super) const LAT: usize = 2;
pub(super) const PHASES: [&str; 3] = ["warm-up", "throughput", "latency"];

/// How long one wait of a receiving or sending loop lasts before it looks
/// at the stop flag again.
pub(super) const SLICE: Duration = Duration::from_millis(100);
/// A row that makes no progress (nothing sent, nothing received) for this
/// long has failed.
pub(super) const STALL: Duration = Duration::from_secs(20);
/// After the last send of a phase, how long the receiver may stay idle
/// before what has not arrived counts as lost.
pub(super) const DRAIN_IDLE: Duration = Duration::from_secs(3);
/// How long the probe may take to get a message through.
pub(super) const PROBE_LIMIT: Duration = Duration::from_secs(15);
/// How long a bridge, the subscriber or the server may take to start.
pub(super) const START_LIMIT: Duration = Duration::from_secs(15);
/// How long a bridge may take to stop, and a thread to end.
pub(super) const STOP_LIMIT: Duration = Duration::from_secs(10);
/// How long one administrative request (create or delete a stream) may
/// take, connection included.
pub(super) const ADMIN_LIMIT: Duration = Duration::from_secs(10);
/// The error of a side stopped by the row (not a failure of its own).
pub(super) const STOPPED: &str = "stopped";

/// As the bridges do (to-nats's window, from-nats's acknowledgements and
/// pulls; their constants are private to them).
pub(super) const JS_WINDOW: usize = 4096;
pub(super) const ACK_EVERY: u64 = 256;
pub(super) const ACK_AFTER: Duration = Duration::from_millis(20);
pub(super) const BATCH: usize = 1024;
pub(super) const ACK_WAIT: Duration = Duration::from_secs(30);
pub(super) const MAX_ACK_PENDING: i64 = 20_000;
pub(super) const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// What a row sends.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) size: usize,
    /// Warm-up messages after the probe.
    pub(super) warm: u64,
    /// Throughput phase.
    pub(super) count: u64,
    /// Latency phase: messages, offered rate.
    pub(super) lat_count: u64,
    pub(super) rate: f64,
}

/// The counters both sides of a row update and the coordinator watches,
/// per phase.
#[derive(Default)]
pub(super) struct Shared {
    /// The row is over (or failed): both sides stop.
    pub(super) stop: AtomicBool,
    /// The receiving side is subscribed (or attached).
    pub(super) rx_ready: AtomicBool,
    /// The phase the sender is in.
    pub(super) phase: AtomicU64,
    pub(super) sent: [AtomicU64; 3],
    pub(super) first_tx_ns: [AtomicU64; 3],
    pub(super) last_tx_ns: [AtomicU64; 3],
    pub(super) got: [AtomicU64; 3],
    /// The number of the last message received, plus one.
    pub(super) last_seq1: [AtomicU64; 3],
    pub(super) first_rx_ns: [AtomicU64; 3],
    pub(super) last_rx_ns: [AtomicU64; 3],
    /// Slow-consumer events of the bench's own subscriber's client.
    pub(super) slow: AtomicU64,
    /// Disconnections of the bench's own clients.
    pub(super) disconnects: AtomicU64,
}

impl Shared {
    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub(super) fn load(a: &[AtomicU64; 3], phase: usize) -> u64 {
        a[phase].load(Ordering::Relaxed)
    }

    /// A number that changes whenever a message is sent or received.
    pub(super) fn progress(&self) -> u64 {
        (0..3)
            .map(|p| Shared::load(&self.sent, p) + Shared::load(&self.got, p))
            .sum()
    }
}

pub(super) fn tag(phase: usize, seq: u64) -> u64 {
    ((phase as u64) << 56) | seq
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process of the
/// machine, so that a send time crosses processes.
pub(super) fn mono_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC exists on Linux");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// The sending side of a path.
pub(super) trait Out {
    /// Sends one message. `paced`: it is to leave now, not with the ones
    /// after it (the latency phase).
    async fn send(&mut self, msg: &[u8], paced: bool) -> Result<(), String>;
    /// Waits until everything sent has left (core: flushed; JetStream:
    /// acknowledged).
    async fn finish(&mut self) -> Result<(), String>;
}

/// The receiving side of a path.
pub(super) trait In {
    /// The next message, or `None` when none came within `wait`.
    async fn recv(&mut self, wait: Duration) -> Result<Option<&[u8]>, String>;
}

/// The sending side's work: the probe, the warm-up, the throughput phase,
/// the latency phase; each waits until what it sent has arrived (or
/// stopped arriving) before the next begins.
pub(super) async fn send_plan<O: Out>(out: &mut O, sh: &Shared, plan: &Plan) -> Result<(), String> {
    let mut msg: Vec<u8> = (0..plan.size).map(|i| i as u8).collect();
    // The probe: one message at a time until one arrives (a core
    // subscription that the server has not taken yet loses them).
    sh.phase.store(WARM as u64, Ordering::Relaxed);
    let start = Instant::now();
    let mut seq = 0u64;
    while Shared::load(&sh.got, WARM) == 0 {
        if start.elapsed() > PROBE_LIMIT {
            return Err(format!(
                "no message came through within {PROBE_LIMIT:?} ({seq} sent)"
            ));
        }
        emit(out, sh, &mut msg, WARM, seq, true).await?;
        seq += 1;
        out.finish().await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..plan.warm {
        emit(out, sh, &mut msg, WARM, seq, false).await?;
        seq += 1;
    }
    out.finish().await?;
    drained(sh, WARM, seq).await?;

    sh.phase.store(TPUT as u64, Ordering::Relaxed);
    for i in 0..plan.count {
        emit(out, sh, &mut msg, TPUT, i, false).await?;
    }
    out.finish().await?;
    drained(sh, TPUT, plan.count).await?;

    // On schedule: message i is due at t0 + i / rate, and carries the
    // time it was actually sent. A thread sleep, not the runtime's timer
    // (whose millisecond ticks would send bursts of 20): the same for
    // both paths.
    sh.phase.store(LAT as u64, Ordering::Relaxed);
    let t0 = mono_ns();
    let gap = 1e9 / plan.rate;
    for i in 0..plan.lat_count {
        let due = t0 + (i as f64 * gap) as u64;
        let now = mono_ns();
        if due > now {
            std::thread::sleep(Duration::from_nanos(due - now));
        }
        emit(out, sh, &mut msg, LAT, i, true).await?;
        if sh.stopped() {
            return Err(STOPPED.into());
        }
    }
    out.finish().await?;
    drained(sh, LAT, plan.lat_count).await
}

/// Stamps `msg` (send time, phase, number) and sends it.
pub(super) async fn emit<O: Out>(
    out: &mut O,
    sh: &Shared,
    msg: &mut [u8],
    phase: usize,
    seq: u64,
    paced: bool,
) -> Result<(), String> {
    let now = mono_ns();
    msg[..8].copy_from_slice(&now.to_le_bytes());
    msg[8..16].copy_from_slice(&tag(phase, seq).to_le_bytes());
    if seq == 0 {
        sh.first_tx_ns[phase].store(now, Ordering::Relaxed);
    }
    out.send(msg, paced).await?;
    sh.sent[phase].store(seq + 1, Ordering::Relaxed);
    sh.last_tx_ns[phase].store(now, Ordering::Relaxed);
    Ok(())
}

/// Waits until the last of the `sent` messages of `phase` arrived (the
/// paths keep the order), or nothing arrived for [`DRAIN_IDLE`] (the rest
/// is lost).
pub(super) async fn drained(sh: &Shared, phase: usize, sent: u64) -> Result<(), String> {
    let mut seen = u64::MAX;
    let mut since = Instant::now();
    loop {
        let got = Shared::load(&sh.got, phase);
        if got >= sent || Shared::load(&sh.last_seq1, phase) >= sent {
            return Ok(());
        }
        if got != seen {
            seen = got;
            since = Instant::now();
        } else if since.elapsed() > DRAIN_IDLE {
            return Ok(());
        }
        if sh.stopped() {
            return Err(STOPPED.into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The receiving side's work, until the row stops: counts each message,
/// and the latency phase's one-way latencies (returned).
pub(super) async fn receive_loop<I: In>(
    inp: &mut I,
    sh: &Shared,
    plan: &Plan,
) -> Result<Vec<u64>, String> {
    let mut lat = Vec::with_capacity(plan.lat_count as usize);
    let mut got = [0u64; 3];
    while !sh.stopped() {
        let Some(m) = inp.recv(SLICE).await? else {
            continue;
        };
        let now = mono_ns();
        if m.len() != plan.size {
            return Err(format!(
                "a message of {} bytes arrived, not {}",
                m.len(),
                plan.size
            ));
        }
        let word = |at: usize| u64::from_le_bytes(m[at..at + 8].try_into().expect("8 bytes"));
        let (stamp, t) = (word(0), word(8));
        let (phase, seq) = ((t >> 56) as usize, t & ((1 << 56) - 1));
        if phase > LAT {
            return Err("a message that is not this run's arrived".into());
        }
        got[phase] += 1;
        if got[phase] == 1 {
            sh.first_rx_ns[phase].store(now, Ordering::Relaxed);
        }
        sh.got[phase].store(got[phase], Ordering::Relaxed);
        sh.last_seq1[phase].store(seq + 1, Ordering::Relaxed);
        sh.last_rx_ns[phase].store(now, Ordering::Relaxed);
        if phase == LAT {
            lat.push(now.saturating_sub(stamp));
        }
    }
    Ok(lat)
}

/// Runs `f` until the row stops.
pub(super) async fn until_stopped<T>(
    sh: &Shared,
    f: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::select! {
        biased;
        r = f => r,
        _ = async {
            while !sh.stopped() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } => Err(STOPPED.into()),
    }
}
