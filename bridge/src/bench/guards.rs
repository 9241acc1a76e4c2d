//! What the bench leaves nothing of: channels, children, streams, its directory (and the signals that stop it).

use super::*;

/// The children, channels and directories alive now, for a cleanup on a
/// signal. Each is put in and taken out under the lock, together with
/// what makes or ends it (a spawn, a reaping, a creation, a removal): the
/// cleanup, which holds the lock until the process exits, never kills a
/// reaped (and maybe reused) pid, and nothing is made after it.
pub(super) struct Registry {
    pub(super) pids: Vec<u32>,
    pub(super) keys: Vec<i32>,
    pub(super) dirs: Vec<PathBuf>,
}

pub(super) static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    pids: Vec::new(),
    keys: Vec::new(),
    dirs: Vec::new(),
});

pub(super) fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub(super) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// How long the cleanup after a signal may take before the bench gives
/// up on it and exits (see [`abandon`]).
pub(super) const CLEANUP_GRACE: Duration = Duration::from_secs(10);

/// Catches SIGINT, SIGTERM and SIGHUP in a thread of their own: the first
/// stops the run (the row in progress fails, the guards clean up, the
/// partial table is printed); a second one, or a cleanup longer than
/// [`CLEANUP_GRACE`], [`abandon`]s.
pub(super) fn watch_signals() -> Result<(), String> {
    static ONCE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let (ready, installed) = std::sync::mpsc::channel();
        spawn_thread("bench-signals", move || {
            let rt = runtime()?;
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let mk = |k| signal(k).map_err(|e| format!("cannot catch signals: {e}"));
                let sigs = (|| {
                    Ok::<_, String>((
                        mk(SignalKind::interrupt())?,
                        mk(SignalKind::terminate())?,
                        mk(SignalKind::hangup())?,
                    ))
                })();
                let (mut int, mut term, mut hup) = match sigs {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return Ok(());
                    }
                };
                let _ = ready.send(Ok(()));
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                }
                INTERRUPTED.store(true, Ordering::Relaxed);
                eprintln!(
                    "\nshmchan bridge bench: interrupted; cleaning up (again to quit at once)"
                );
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                    _ = tokio::time::sleep(CLEANUP_GRACE) => {}
                }
                abandon()
            })
        })?;
        installed
            .recv()
            .map_err(|_| "the signal thread did not start".to_string())?
    })
    .clone()
}

/// Kills the children, removes the channels and the directories, and
/// exits (130, as a shell reports an interrupted command). The streams of
/// a server given with --server stay (SHMCHAN_BENCH_*).
pub(super) fn abandon() -> ! {
    let reg = registry();
    for &pid in &reg.pids {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    for &k in &reg.keys {
        let _ = Channel::remove_key(Key::raw(k));
    }
    for d in &reg.dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    eprintln!("shmchan bridge bench: stopped the children, removed the channels and the scratch directory");
    std::process::exit(130)
}

/// The bench's scratch directory (the children's logs, the server's
/// JetStream store): removed on drop.
pub(super) struct Scratch(pub(super) PathBuf);

impl Scratch {
    pub(super) fn new() -> Result<Scratch, String> {
        let p = std::env::temp_dir().join(format!("shmchan-bridge-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        let mut reg = registry();
        std::fs::create_dir_all(&p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
        reg.dirs.push(p.clone());
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let mut reg = registry();
        let _ = std::fs::remove_dir_all(&self.0);
        reg.dirs.retain(|d| d != &self.0);
    }
}

/// A channel of the bench: removed on drop.
pub(super) struct ChanGuard {
    pub(super) ch: Channel,
    pub(super) key: i32,
}

impl ChanGuard {
    /// A new channel at a key of this process's (0x5bPPPPn: the low 16 bits
    /// of the pid, a counter).
    pub(super) fn create(capacity: usize, max_message: usize) -> Result<ChanGuard, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let pid = (std::process::id() & 0xffff) as i32;
        for _ in 0..16 {
            let n = (N.fetch_add(1, Ordering::Relaxed) & 0xf) as i32;
            let raw = 0x5b00_0000 | (pid << 4) | n;
            let mut reg = registry();
            let opts = Options::default()
                .capacity(capacity)
                .max_message(max_message);
            match Channel::create(Key::raw(raw), opts) {
                Ok(ch) => {
                    reg.keys.push(raw);
                    return Ok(ChanGuard { ch, key: raw });
                }
                Err(OpenError::AlreadyExists) => continue,
                Err(e) => return Err(format!("cannot create a channel at {raw:#x}: {e}")),
            }
        }
        Err("no free key among this process's 16 (remove leftovers with `shmchan gc`)".into())
    }
}

impl Drop for ChanGuard {
    fn drop(&mut self) {
        let mut reg = registry();
        if let Err(e) = self.ch.remove() {
            status(format_args!(
                "warning: could not remove channel {:#x}: {e}",
                self.key
            ));
        }
        reg.keys.retain(|&k| k != self.key);
    }
}

/// A child process, its stderr in a file; SIGKILLed on drop.
pub(super) struct Proc {
    pub(super) name: &'static str,
    pub(super) child: Child,
    pub(super) status: Option<ExitStatus>,
    pub(super) log: PathBuf,
}

impl Proc {
    pub(super) fn spawn(
        name: &'static str,
        exe: &Path,
        args: &[String],
        log: &Path,
    ) -> Result<Proc, String> {
        let err = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let mut reg = registry();
        let child = Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {name} ({}): {e}", exe.display()))?;
        reg.pids.push(child.id());
        Ok(Proc {
            name,
            child,
            status: None,
            log: log.to_path_buf(),
        })
    }

    pub(super) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of its stderr, on one line.
    pub(super) fn tail(&self) -> String {
        let s = self.stderr();
        let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(4)..].join(" | ");
        if tail.is_empty() {
            "(nothing on stderr)".to_string()
        } else {
            tail
        }
    }

    /// Its exit status once it has exited (reaped under the registry's
    /// lock, and taken out of it).
    pub(super) fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            let mut reg = registry();
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
                let pid = self.child.id();
                reg.pids.retain(|&p| p != pid);
            }
        }
        self.status
    }

    pub(super) fn signal(&mut self, sig: Signal) {
        let _reg = registry();
        if self.status.is_none() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), sig);
        }
    }

    pub(super) fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let since = Instant::now();
        loop {
            if let Some(st) = self.try_wait() {
                return Some(st);
            }
            if since.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, and its status if it exits within `limit` (SIGKILLed
    /// otherwise).
    pub(super) fn stop(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.signal(Signal::SIGTERM);
        let st = self.wait_for(limit);
        if st.is_none() {
            self.signal(Signal::SIGKILL);
            self.wait_for(limit);
        }
        st
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            self.signal(Signal::SIGKILL);
            self.wait_for(STOP_LIMIT);
        }
    }
}

/// A stream made for a row; deleted on drop.
pub(super) struct StreamGuard {
    pub(super) url: String,
    pub(super) name: String,
}

impl StreamGuard {
    pub(super) fn create(url: &str, name: &str, subject: &str) -> Result<StreamGuard, String> {
        let config = stream_config(name, subject);
        admin(url, |js| async move {
            js.create_stream(config)
                .await
                .map(|_| ())
                .map_err(|e| format!("cannot create stream: {e}"))
        })
        .map_err(|e| format!("stream {name}: {e}"))?;
        Ok(StreamGuard {
            url: url.to_string(),
            name: name.to_string(),
        })
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let name = self.name.clone();
        let r = admin(&self.url, |js| async move {
            js.delete_stream(&name)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        if let Err(e) = r {
            status(format_args!(
                "warning: could not delete stream {}: {e}",
                self.name
            ));
        }
    }
}

/// Runs `f` with a JetStream context on a connection of its own (made
/// for it, closed after it), within [`ADMIN_LIMIT`].
pub(super) fn admin<T, Fut>(
    url: &str,
    f: impl FnOnce(jetstream::Context) -> Fut,
) -> Result<T, String>
where
    Fut: Future<Output = Result<T, String>>,
{
    runtime()?.block_on(async {
        tokio::time::timeout(ADMIN_LIMIT, async {
            let client = connect(url, "shmchan bridge bench admin", None).await?;
            let js = jetstream::ContextBuilder::new()
                .timeout(ADMIN_LIMIT)
                .build(client.clone());
            let r = f(js).await;
            let _ = client.flush().await;
            r
        })
        .await
        .map_err(|_| format!("no answer within {ADMIN_LIMIT:?}"))?
    })
}

/// The `nats-server` binary: on PATH, or where Debian puts it.
pub(super) fn nats_server_binary() -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
        .map(|d| Path::new(d).join("nats-server"))
        .find(|p| p.is_file())
}

/// A `nats-server` with JetStream on a free loopback port, its store in
/// the scratch directory; stopped on drop.
pub(super) struct NatsServer {
    pub(super) proc: Proc,
    pub(super) port: u16,
}

impl NatsServer {
    pub(super) fn start(dir: &Path) -> Result<NatsServer, String> {
        let bin = nats_server_binary().ok_or(
            "nats-server is not installed (not on PATH nor in /usr/sbin; Debian: apt-get install nats-server); or name a server with --server",
        )?;
        for attempt in 0..20 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free loopback port: {e}"))?
                .port();
            let log = dir.join(format!("nats-server-{attempt}.log"));
            let args: Vec<String> = vec![
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
                "-js".into(),
                "-sd".into(),
                dir.join("js").display().to_string(),
            ];
            let mut proc = Proc::spawn("nats-server", &bin, &args, &log)?;
            let since = Instant::now();
            loop {
                if proc.try_wait().is_some() {
                    // Someone took the port in between: another one.
                    break;
                }
                if proc.stderr().contains("Server is ready")
                    && TcpStream::connect(("127.0.0.1", port)).is_ok()
                {
                    return Ok(NatsServer { proc, port });
                }
                if since.elapsed() > START_LIMIT {
                    return Err(format!(
                        "nats-server did not start within {START_LIMIT:?}: {}",
                        proc.tail()
                    ));
                }
                if interrupted() {
                    return Err("interrupted".into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Err("nats-server did not start on any of 20 ports".into())
    }

    pub(super) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.proc.stop(Duration::from_secs(5));
    }
}
