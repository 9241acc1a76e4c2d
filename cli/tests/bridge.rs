//! `shmchan bridge to-nats` and `from-nats` end to end: real bridge
//! processes, a real `nats-server` (started by each test on a free
//! loopback port, JetStream in a temporary directory, stopped even when
//! the test fails), real channels. Messages go from channel A through
//! `to-nats`, the server and `from-nats` into channel B, where every one
//! is checked: its number (the first 8 bytes), its bytes, its order.

#![cfg(feature = "bridge")]

#[path = "../../tests/common/mod.rs"]
mod common;

use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use common::{fresh, KeyGuard, Rng, Stream};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shmchan::{Channel, Options, RecvTimeoutError};

/// The `nats-server` binary: on PATH, or where Debian puts it.
fn nats_server_binary() -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
    {
        let p = Path::new(dir).join("nats-server");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "nats-server is not installed (Debian: apt-get install nats-server; .ci/run installs it)"
    );
}

/// A unique scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "shmchan-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `nats-server` with JetStream on a free loopback port; killed on drop.
struct NatsServer {
    port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl NatsServer {
    fn start() -> NatsServer {
        let mut s = NatsServer {
            port: 0,
            child: None,
            dir: TempDir::new("nats"),
        };
        for _ in 0..20 {
            s.port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            if s.launch() {
                return s;
            }
            // Someone took the port in between: another one.
        }
        panic!("nats-server did not start on any of 20 ports");
    }

    /// Starts the server on our port and directory; `false` if it did not
    /// come up.
    fn launch(&mut self) -> bool {
        let log = File::create(self.dir.0.join("server.log")).expect("log");
        let child = die_with_parent(&mut Command::new(nats_server_binary()))
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.0.join("js"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(Some(_)) = self.child.as_mut().map(|c| c.try_wait().unwrap()) {
                self.child = None;
                return false;
            }
            let log = std::fs::read_to_string(self.dir.0.join("server.log")).unwrap_or_default();
            if log.contains("Server is ready")
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the server (JetStream keeps what it stored).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and directory.
    fn restart(&mut self) {
        assert!(
            self.launch(),
            "nats-server did not come back on port {}",
            self.port
        );
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.0.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("nats-server's last lines:");
            for l in tail.iter().rev() {
                eprintln!("  {l}");
            }
        }
    }
}

/// Children of a test die with the test's thread (if the test process is
/// killed, they do not outlive it).
fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    }
}

/// A `shmchan bridge …` process, stderr in a file; SIGKILLed on drop.
struct Bridge {
    child: Option<Child>,
    err: PathBuf,
    _dir: TempDir,
}

impl Bridge {
    fn spawn(args: &[String]) -> Bridge {
        let dir = TempDir::new("bridge");
        let err = dir.0.join("stderr");
        let mut cmd = Command::cargo_bin("shmchan").expect("the shmchan binary");
        let child = die_with_parent(&mut cmd)
            .arg("bridge")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .expect("spawn shmchan bridge");
        Bridge {
            child: Some(child),
            err,
            _dir: dir,
        }
    }

    fn stderr(&self) -> String {
        let mut s = String::new();
        let _ = File::open(&self.err).and_then(|mut f| f.read_to_string(&mut s));
        s
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().expect("running").id() as i32)
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits at most `limit` for the bridge to exit.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let c = self.child.as_mut().expect("running");
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                self.child = None;
                return st;
            }
            if Instant::now() > deadline {
                let out = self.stderr();
                self.kill9();
                panic!("the bridge did not exit within {limit:?}; its stderr:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then the exit status (within `limit`).
    fn term(&mut self, limit: Duration) -> ExitStatus {
        kill(self.pid(), Signal::SIGTERM).unwrap();
        self.wait(limit)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn to_nats(key: &Channel, server: &NatsServer, subject: &str, stream: Option<&str>) -> Bridge {
    let mut args = vec![
        "to-nats".to_string(),
        format!("{:#x}", key.key().as_raw()),
        "--server".into(),
        server.url(),
        "--subject".into(),
        subject.into(),
    ];
    if let Some(s) = stream {
        args.extend(["--stream".into(), s.into()]);
    }
    Bridge::spawn(&args)
}

fn from_nats(key: &Channel, server: &NatsServer, subject: &str, stream: Option<&str>) -> Bridge {
    let mut args = vec![
        "from-nats".to_string(),
        "--server".into(),
        server.url(),
        "--subject".into(),
        subject.into(),
    ];
    if let Some(s) = stream {
        args.extend(["--stream".into(), s.into(), "--durable".into(), "b".into()]);
    }
    args.push(format!("{:#x}", key.key().as_raw()));
    Bridge::spawn(&args)
}

/// Message `n`: its number (8 bytes, little-endian), then `Stream`'s
/// message `n` (0 to `MAX` bytes).
const MAX: usize = 200;

fn message(stream: &Stream, n: u64) -> Vec<u8> {
    let mut v = n.to_le_bytes().to_vec();
    v.extend_from_slice(&stream.message(n));
    v
}

/// Sends messages `0..count` into `ch` from a thread (whose end, its
/// sender dropped, is the end of A's stream).
fn produce(ch: &Channel, count: u64) -> std::thread::JoinHandle<()> {
    let tx = ch.sender().expect("sender of A");
    let t = produce_with(tx, 0..count);
    std::thread::spawn(move || drop(t.join().unwrap()))
}

/// Sends messages `range` through `tx` from a thread, which returns it.
fn produce_with(
    tx: shmchan::Sender,
    range: std::ops::Range<u64>,
) -> std::thread::JoinHandle<shmchan::Sender> {
    produce_paced(tx, range, None)
}

/// [`produce_with`], pausing 1 ms after every `pace` messages if given.
fn produce_paced(
    mut tx: shmchan::Sender,
    range: std::ops::Range<u64>,
    pace: Option<u64>,
) -> std::thread::JoinHandle<shmchan::Sender> {
    std::thread::spawn(move || {
        let stream = Stream::new(MAX);
        for n in range {
            if pace.is_some_and(|p| n % p == 0) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let m = message(&stream, n);
            // While a bridge is restarted, A has no receiver: the sender
            // is told so, and tries again (the message waits meanwhile).
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                match tx.send(&m) {
                    Ok(()) => break,
                    Err(shmchan::SendError::Disconnected) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Err(e) => panic!("send of message {n} into A: {e}"),
                }
            }
        }
        tx
    })
}

/// What arrived in B.
#[derive(Debug, Default)]
struct Arrivals {
    /// Messages in order (each the next number).
    in_order: u64,
    /// Numbers seen again (below the next expected).
    duplicates: u64,
    /// Numbers skipped (above the next expected).
    missing: u64,
    /// The next number expected.
    next: u64,
}

/// Receives from `rx` until message `count - 1` arrived (or nothing came
/// for `idle`), checking every byte; `got` follows the progress.
fn consume(rx: &mut shmchan::Receiver, count: u64, idle: Duration, got: &AtomicU64) -> Arrivals {
    consume_range(rx, 0..count, idle, got)
}

/// [`consume`], for messages `range.start` up to `range.end - 1`.
fn consume_range(
    rx: &mut shmchan::Receiver,
    range: std::ops::Range<u64>,
    idle: Duration,
    got: &AtomicU64,
) -> Arrivals {
    let count = range.end;
    let stream = Stream::new(MAX);
    let mut a = Arrivals {
        next: range.start,
        ..Arrivals::default()
    };
    let mut buf = Vec::new();
    let mut idle_since = Instant::now();
    while a.next < count {
        match rx.recv_timeout_into(&mut buf, idle) {
            Ok(_) => idle_since = Instant::now(),
            Err(RecvTimeoutError::Timeout) => break,
            // from-nats is being restarted: B has no sender for a moment.
            Err(RecvTimeoutError::Disconnected) if idle_since.elapsed() < idle => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(e) => panic!("receive from B: {e}"),
        }
        assert!(buf.len() >= 8, "a message of {} bytes", buf.len());
        let n = u64::from_le_bytes(buf[..8].try_into().unwrap());
        if let Err(e) = stream.check(n, &buf[8..]) {
            panic!("torn message: {e}");
        }
        if n == a.next {
            a.in_order += 1;
            a.next += 1;
        } else if n < a.next {
            a.duplicates += 1;
        } else {
            a.missing += n - a.next;
            a.next = n + 1;
        }
        got.store(a.next, Ordering::Relaxed);
    }
    a
}

/// Receives `count` messages from B in a thread; the counter follows it.
fn consumer(
    b: &Channel,
    count: u64,
    idle: Duration,
) -> (Arc<AtomicU64>, std::thread::JoinHandle<Arrivals>) {
    let got = Arc::new(AtomicU64::new(0));
    let mut rx = b.receiver().unwrap();
    let counter = got.clone();
    let t = std::thread::spawn(move || consume(&mut rx, count, idle, &counter));
    (got, t)
}

/// Every one of `count` messages arrived once, in order.
fn assert_exact(arrivals: &Arrivals, count: u64, to: &Bridge, from: &Bridge) {
    assert_eq!(
        (arrivals.in_order, arrivals.duplicates, arrivals.missing),
        (count, 0, 0),
        "to-nats: {}\nfrom-nats: {}",
        to.stderr(),
        from.stderr()
    );
}

/// The end of a test's bridges: to-nats stops by itself at the end of A's
/// stream, from-nats on SIGTERM; both with status 0.
fn stop_bridges(to: &mut Bridge, from: &mut Bridge) {
    assert!(
        to.wait(Duration::from_secs(30)).success(),
        "to-nats: {}",
        to.stderr()
    );
    assert!(
        from.term(Duration::from_secs(10)).success(),
        "from-nats: {}",
        from.stderr()
    );
}

/// Waits until `ch` has a live sender (from-nats has connected to B).
fn wait_for_sender(ch: &Channel) {
    assert!(
        common::wait_until(Duration::from_secs(10), || ch.stats().unwrap().senders
            == Some(1)),
        "no sender connected to {}",
        ch.key()
    );
}

/// A test's server and channels A and B (each removed by its guard even
/// when the test fails).
fn rig(
    a_capacity: usize,
    b_capacity: usize,
) -> (NatsServer, (Channel, KeyGuard), (Channel, KeyGuard)) {
    (
        NatsServer::start(),
        channel(a_capacity),
        channel(b_capacity),
    )
}

/// Removes A and B and checks that nothing is left at their keys.
fn finish(a: (Channel, KeyGuard), b: (Channel, KeyGuard)) {
    common::finish(a.0, a.1);
    common::finish(b.0, b.1);
}

fn channel(capacity: usize) -> (Channel, KeyGuard) {
    fresh(
        Options::default()
            .capacity(capacity)
            .max_message(capacity / 4),
    )
}

/// The tests each start their own server, bridges and a few threads; two
/// at once keep this two-core machine busy enough.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A million messages from A through to-nats, JetStream and from-nats
/// into B: all of them, in order, every byte; the bridges stop cleanly on
/// SIGTERM; A's counters (`shmchan stat`) show the bridge as its receiver.
/// from-nats starts first and creates the stream.
#[test]
fn a_million_messages_cross_jetstream_in_order_and_intact() {
    let _s = serial();
    const N: u64 = 1_000_000;
    let (server, (a, ga), (b, gb)) = rig(1 << 22, 1 << 22);
    let mut rx = b.receiver().unwrap();
    let mut from = from_nats(&b, &server, "mil.a", Some("MIL"));
    std::thread::sleep(Duration::from_millis(300));
    let mut to = to_nats(&a, &server, "mil.a", Some("MIL"));
    let t0 = Instant::now();
    let producer = produce(&a, N);
    let got = AtomicU64::new(0);
    let arrivals = consume(&mut rx, N, Duration::from_secs(30), &got);
    let secs = t0.elapsed().as_secs_f64();
    producer.join().unwrap();
    eprintln!(
        "{N} messages through JetStream in {secs:.1} s ({:.0} msg/s)",
        N as f64 / secs
    );
    assert_eq!(
        arrivals.in_order,
        N,
        "{arrivals:?}\nto-nats: {}\nfrom-nats: {}",
        to.stderr(),
        from.stderr()
    );
    assert_eq!((arrivals.duplicates, arrivals.missing), (0, 0));
    // The producer has gone: to-nats drains A and stops at the end of
    // the stream by itself.
    assert!(
        to.wait(Duration::from_secs(30)).success(),
        "{}",
        to.stderr()
    );
    assert!(
        from.term(Duration::from_secs(10)).success(),
        "{}",
        from.stderr()
    );
    let (te, fe) = (to.stderr(), from.stderr());
    assert!(te.contains("JetStream stream MIL"), "{te}");
    assert!(!te.contains("another publisher"), "{te}");
    assert!(
        te.contains(&format!(
            "{N} messages published, {N} acknowledged, 0 duplicates"
        )),
        "{te}"
    );
    assert!(fe.contains(&format!("{N} messages committed")), "{fe}");
    let st = a.stats().unwrap();
    assert_eq!(st.counters.received_messages, N);
    assert_eq!(st.head, st.tail, "to-nats released everything it published");
    // B's only sender was from-nats: gone, so B ends.
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(5)),
        Err(RecvTimeoutError::Disconnected)
    ));
    drop(rx);
    finish((a, ga), (b, gb));
}

/// to-nats SIGKILLed 20 times at random moments mid-stream and started
/// again each time: every message arrives in B, once, in order
/// (JetStream drops the repeats by message id; each publish names its
/// predecessor). to-nats starts first and creates the stream.
#[test]
fn to_nats_killed_twenty_times_loses_nothing_and_doubles_nothing() {
    let _s = serial();
    const N: u64 = 400_000;
    let (server, (a, ga), (b, gb)) = rig(1 << 20, 1 << 22);
    let mut to = to_nats(&a, &server, "kill.a", Some("KILL"));
    std::thread::sleep(Duration::from_millis(300));
    let mut from = from_nats(&b, &server, "kill.a", Some("KILL"));
    let producer = produce(&a, N);
    let got = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let consumer = {
        let got = got.clone();
        let done = done.clone();
        let mut rx = b.receiver().unwrap();
        std::thread::spawn(move || {
            let a = consume(&mut rx, N, Duration::from_secs(30), &got);
            done.store(true, Ordering::Relaxed);
            a
        })
    };
    let mut rng = Rng::new();
    let mut mid_stream = 0;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(20 + rng.below(180)));
        if got.load(Ordering::Relaxed) < N {
            mid_stream += 1;
        }
        to.kill9();
        to = to_nats(&a, &server, "kill.a", Some("KILL"));
    }
    let arrivals = consumer.join().unwrap();
    producer.join().unwrap();
    eprintln!("{mid_stream} of 20 kills mid-stream; {arrivals:?}");
    assert!(done.load(Ordering::Relaxed));
    assert_exact(&arrivals, N, &to, &from);
    assert!(
        mid_stream >= 10,
        "only {mid_stream} kills came while messages flowed"
    );
    assert!(
        !to.stderr().contains("another publisher"),
        "{}",
        to.stderr()
    );
    stop_bridges(&mut to, &mut from);
    finish((a, ga), (b, gb));
}

/// from-nats SIGKILLed 5 times mid-stream and started again: nothing is
/// lost and the order holds; what a killed one had committed but not yet
/// acknowledged comes again (at-least-once across a from-nats crash),
/// a few hundred messages per kill at most.
#[test]
fn from_nats_killed_loses_nothing_and_repeats_only_the_unacknowledged() {
    let _s = serial();
    const N: u64 = 300_000;
    const KILLS: u64 = 5;
    let (server, (a, ga), (b, gb)) = rig(1 << 20, 1 << 22);
    let mut to = to_nats(&a, &server, "fk.a", Some("FK"));
    let mut from = from_nats(&b, &server, "fk.a", Some("FK"));
    wait_for_sender(&b);
    let producer = produce(&a, N);
    let (got, consumer) = consumer(&b, N, Duration::from_secs(30));
    for k in 1..=KILLS {
        assert!(common::wait_until(Duration::from_secs(60), || {
            got.load(Ordering::Relaxed) >= k * N / (KILLS + 1)
        }));
        from.kill9();
        from = from_nats(&b, &server, "fk.a", Some("FK"));
    }
    let arrivals = consumer.join().unwrap();
    producer.join().unwrap();
    eprintln!("from-nats killed {KILLS} times: {arrivals:?}");
    assert_eq!(
        (arrivals.in_order, arrivals.missing),
        (N, 0),
        "to-nats: {}\nfrom-nats: {}",
        to.stderr(),
        from.stderr()
    );
    assert!(arrivals.duplicates <= KILLS * 1024, "{arrivals:?}");
    stop_bridges(&mut to, &mut from);
    finish((a, ga), (b, gb));
}

/// A broadcast channel (Block) is bridged by one more subscriber: to-nats
/// holds its messages until JetStream has them, which holds the publisher
/// back as any slow subscriber does; B gets every message in order.
#[test]
fn a_broadcast_channel_is_bridged_by_a_subscriber() {
    let _s = serial();
    const N: u64 = 100_000;
    let server = NatsServer::start();
    let (a, ga) = fresh(
        Options::default()
            .flavor(shmchan::Flavor::Broadcast)
            .capacity(1 << 18)
            .max_message(1 << 16),
    );
    let (b, gb) = channel(1 << 22);
    let mut to = to_nats(&a, &server, "bc.a", Some("BC"));
    let mut from = from_nats(&b, &server, "bc.a", Some("BC"));
    let tx = a.sender().unwrap();
    // A publisher with no subscriber publishes to nobody: wait for the
    // bridge to join.
    assert!(common::wait_until(Duration::from_secs(10), || tx
        .subscribers()
        == 1));
    wait_for_sender(&b);
    let producer = produce_with(tx, 0..N);
    let got = AtomicU64::new(0);
    let mut rx = b.receiver().unwrap();
    let arrivals = consume(&mut rx, N, Duration::from_secs(30), &got);
    drop(producer.join().unwrap());
    assert_exact(&arrivals, N, &to, &from);
    stop_bridges(&mut to, &mut from);
    let st = a.stats().unwrap();
    assert_eq!(
        st.subscribers.iter().filter(|s| s.joined).count(),
        0,
        "the bridge left"
    );
    drop(rx);
    finish((a, ga), (b, gb));
}

/// The server SIGKILLed mid-stream and started again a second later on
/// the same port and store: both bridges reconnect (and say so), and B
/// gets every message once, in order.
#[test]
fn the_server_restarted_mid_stream_loses_nothing() {
    let _s = serial();
    const N: u64 = 300_000;
    let (mut server, (a, ga), (b, gb)) = rig(1 << 20, 1 << 22);
    let mut to = to_nats(&a, &server, "rs.a", Some("RS"));
    let mut from = from_nats(&b, &server, "rs.a", Some("RS"));
    let producer = produce(&a, N);
    let (got, consumer) = consumer(&b, N, Duration::from_secs(60));
    assert!(common::wait_until(Duration::from_secs(60), || got
        .load(Ordering::Relaxed)
        >= N / 3));
    server.stop();
    let at = got.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(1));
    server.restart();
    let arrivals = consumer.join().unwrap();
    producer.join().unwrap();
    eprintln!("server killed at {at} of {N}; {arrivals:?}");
    assert!(at < N, "the stream had ended before the server went");
    assert_exact(&arrivals, N, &to, &from);
    stop_bridges(&mut to, &mut from);
    assert!(
        !to.stderr().contains("another publisher"),
        "{}",
        to.stderr()
    );
    for (side, err) in [("to-nats", to.stderr()), ("from-nats", from.stderr())] {
        assert!(err.contains("disconnected from NATS"), "{side}: {err}");
        assert!(err.contains("connected to NATS again"), "{side}: {err}");
    }
    finish((a, ga), (b, gb));
}

/// A server restarted after its duplicate window passed has forgotten
/// the stream's last message id, so the first publish naming its
/// predecessor is refused: to-nats looks at the stream's last message,
/// finds it its own, publishes once without naming it, and goes on with
/// the chain (it does not take the server for another publisher). B gets
/// everything in order.
#[test]
fn a_server_that_forgot_the_last_message_id_is_reseeded_not_abandoned() {
    let _s = serial();
    const N: u64 = 2_000;
    let mut server = NatsServer::start();
    // The stream made beforehand, with a one-second duplicate window.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "FORGET".into(),
            subjects: vec!["fg.a".into()],
            storage: async_nats::jetstream::stream::StorageType::File,
            duplicate_window: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .unwrap();
    });
    let (a, ga) = channel(1 << 20);
    let (b, gb) = channel(1 << 22);
    let mut to = to_nats(&a, &server, "fg.a", Some("FORGET"));
    let mut from = from_nats(&b, &server, "fg.a", Some("FORGET"));
    wait_for_sender(&b);
    assert!(common::wait_until(Duration::from_secs(10), || a
        .stats()
        .unwrap()
        .receivers
        == Some(1)));
    let mut rx = b.receiver().unwrap();
    let got = AtomicU64::new(0);
    let tx = produce_with(a.sender().unwrap(), 0..N / 2).join().unwrap();
    let first = consume(&mut rx, N / 2, Duration::from_secs(30), &got);
    assert_eq!(first.in_order, N / 2);
    // Past the window, then a restart.
    std::thread::sleep(Duration::from_millis(1500));
    server.stop();
    server.restart();
    let tx = produce_with(tx, N / 2..N).join().unwrap();
    let rest = consume_range(&mut rx, N / 2..N, Duration::from_secs(30), &got);
    drop(tx);
    let err = to.stderr();
    assert_eq!(
        (rest.in_order, rest.duplicates, rest.missing),
        (N / 2, 0, 0),
        "to-nats: {err}\nfrom-nats: {}",
        from.stderr()
    );
    assert!(
        err.contains("did not acknowledge"),
        "the refusal did happen: {err}"
    );
    assert!(!err.contains("another publisher"), "{err}");
    assert!(to.wait(Duration::from_secs(30)).success(), "{err}");
    assert!(from.term(Duration::from_secs(10)).success());
    drop(rx);
    finish((a, ga), (b, gb));
}

/// Core NATS (no --stream) says "at most once" at start, and loses at
/// most what the README documents: with to-nats SIGKILLed 3 times, at
/// most `CORE_FLUSH_EVERY` (1024) messages per kill; what arrives is in
/// order, once, intact.
#[test]
fn core_nats_is_at_most_once_within_the_documented_bound() {
    let _s = serial();
    const N: u64 = 200_000;
    const KILLS: u64 = 3;
    let (server, (a, ga), (b, gb)) = rig(1 << 20, 1 << 22);
    let mut from = from_nats(&b, &server, "core.a", None);
    // The subscription is in place before anything is published.
    assert!(common::wait_until(Duration::from_secs(10), || from
        .stderr()
        .contains("at most once")));
    let mut to = to_nats(&a, &server, "core.a", None);
    assert!(common::wait_until(Duration::from_secs(10), || to
        .stderr()
        .contains("at most once")));
    // Paced (at most 25,000 messages/s): core NATS also drops what a
    // subscriber cannot take in time (documented, with a status line), a
    // loss no bridge can bound; from-nats keeps up at this rate on a
    // loaded machine, so what is lost here is what the kills lost.
    let paced = produce_paced(a.sender().expect("sender of A"), 0..N, Some(25));
    // A's sender goes when the last message is in (as `produce`).
    let producer = std::thread::spawn(move || drop(paced.join().unwrap()));
    let (got, consumer) = consumer(&b, N, Duration::from_secs(15));
    for k in 1..=KILLS {
        assert!(common::wait_until(Duration::from_secs(60), || {
            got.load(Ordering::Relaxed) >= k * N / (KILLS + 1)
        }));
        to.kill9();
        to = to_nats(&a, &server, "core.a", None);
        assert!(common::wait_until(Duration::from_secs(10), || to
            .stderr()
            .contains("at most once")));
    }
    let arrivals = consumer.join().unwrap();
    producer.join().unwrap();
    let lost = N - arrivals.in_order;
    eprintln!(
        "core NATS, {KILLS} kills: {arrivals:?}, lost {lost}\nfrom-nats: {}\nto-nats: {}",
        from.stderr(),
        to.stderr()
    );
    assert_eq!(arrivals.duplicates, 0);
    assert!(
        lost <= KILLS * shmchan_bridge::to_nats::CORE_FLUSH_EVERY,
        "lost {lost}, more than {KILLS} x {}{}",
        shmchan_bridge::to_nats::CORE_FLUSH_EVERY,
        if from.stderr().contains("slow subscriber") {
            " (NATS dropped for a slow subscriber: from-nats did not keep up)"
        } else {
            ""
        }
    );
    stop_bridges(&mut to, &mut from);
    finish((a, ga), (b, gb));
}

/// A server that cannot be reached at start: each bridge exits with
/// status 1 and one line saying so, and leaves the channel as it was.
#[test]
fn an_unreachable_server_is_one_line_and_status_1() {
    let (a, ga) = channel(1 << 16);
    let mut tx = a.sender().unwrap();
    tx.send(b"kept").unwrap();
    // A port nobody listens on: bound, then freed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let key = format!("{:#x}", a.key().as_raw());
    for args in [
        vec![
            "to-nats",
            &key,
            "--server",
            &url,
            "--subject",
            "x",
            "--stream",
            "X",
        ],
        vec!["to-nats", &key, "--server", &url, "--subject", "x"],
        vec![
            "from-nats",
            "--server",
            &url,
            "--subject",
            "x",
            "--stream",
            "X",
            &key,
        ],
    ] {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut br = Bridge::spawn(&args);
        let st = br.wait(Duration::from_secs(20));
        let err = br.stderr();
        assert_eq!(st.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("cannot reach the NATS server at nats://127.0.0.1"),
            "{err}"
        );
    }
    let mut rx = a.receiver().unwrap();
    assert_eq!(&*rx.try_recv().unwrap(), b"kept");
    drop((rx, tx));
    common::finish(a, ga);
}

/// SIGTERM while JetStream does not answer (the server stopped with
/// SIGSTOP): to-nats waits for the acknowledgements a while, then exits 0
/// leaving what was not acknowledged in A. SIGTERM to a from-nats waiting
/// for room in a full B: it exits 0 and acknowledges only what it
/// committed. Started again, the bridges deliver everything once, in
/// order.
#[test]
fn sigterm_releases_and_acknowledges_only_what_was_delivered() {
    let _s = serial();
    const N: u64 = 20_000;
    let server = NatsServer::start();
    let (a, ga) = channel(1 << 20);
    // B holds a few hundred messages: from-nats fills it and waits.
    let (b, gb) = channel(1 << 16);
    let mut to = to_nats(&a, &server, "term.a", Some("TERM"));
    let mut from = from_nats(&b, &server, "term.a", Some("TERM"));
    let tx = produce_with(a.sender().unwrap(), 0..N).join().unwrap();
    // Everything reached JetStream (A is empty) and B is full.
    assert!(common::wait_until(Duration::from_secs(60), || {
        let st = a.stats().unwrap();
        st.head == st.tail
    }));
    assert!(common::wait_until(Duration::from_secs(30), || b
        .stats()
        .unwrap()
        .counters
        .full_events
        > 0));
    let st = from.term(Duration::from_secs(10));
    assert!(st.success(), "{}", from.stderr());
    let committed = b.stats().unwrap().counters.sent_messages;
    assert!(committed > 0 && committed < N, "{committed}");
    assert!(
        from.stderr()
            .contains(&format!("{committed} messages committed")),
        "{}",
        from.stderr()
    );

    // to-nats with JetStream frozen: more messages, then SIGTERM.
    const M: u64 = 5_000;
    let child = Pid::from_raw(server.child.as_ref().unwrap().id() as i32);
    kill(child, Signal::SIGSTOP).unwrap();
    let tx = produce_with(tx, N..N + M).join().unwrap();
    // Time for to-nats to take its window from A and publish it.
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let st = to.term(Duration::from_secs(20));
    let waited = t.elapsed();
    kill(child, Signal::SIGCONT).unwrap();
    assert!(st.success(), "{}", to.stderr());
    assert!(
        to.stderr().contains("unacknowledged left in the ring"),
        "{}",
        to.stderr()
    );
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    let st_a = a.stats().unwrap();
    assert!(
        st_a.tail > st_a.head,
        "the unacknowledged messages stay in A"
    );

    // Started again: B gets all N + M exactly once, in order (the first
    // `committed` are in it already).
    let got = AtomicU64::new(0);
    let mut from = from_nats(&b, &server, "term.a", Some("TERM"));
    let mut to = to_nats(&a, &server, "term.a", Some("TERM"));
    // B's reader starts once from-nats is B's sender again (before, B
    // would be a drained pipe with no writer: the end of its stream).
    wait_for_sender(&b);
    let mut rx = b.receiver().unwrap();
    let all = consume(&mut rx, N + M, Duration::from_secs(30), &got);
    drop(tx);
    assert_exact(&all, N + M, &to, &from);
    stop_bridges(&mut to, &mut from);
    eprintln!("{}", from.stderr());
    drop(rx);
    finish((a, ga), (b, gb));
}

/// The payload reaches NATS unchanged, with the channel's key, its
/// identity and the message's position in headers (and the message id
/// JetStream deduplicates by).
#[test]
fn the_payload_is_unchanged_and_the_metadata_is_in_headers() {
    let _s = serial();
    let server = NatsServer::start();
    let (a, ga) = channel(1 << 16);
    let mut tx = a.sender().unwrap();
    let payloads: [&[u8]; 3] = [b"", b"first", &[0xff; 300]];
    for p in payloads {
        tx.send(p).unwrap();
    }
    drop(tx);
    let mut to = to_nats(&a, &server, "hdr.a", Some("HDR"));
    assert!(
        to.wait(Duration::from_secs(30)).success(),
        "{}",
        to.stderr()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let st = js.get_stream("HDR").await.unwrap();
        let mut positions = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            let m = st.get_raw_message(i as u64 + 1).await.unwrap();
            assert_eq!(&m.payload[..], *p);
            let h = |name: &str| m.headers.get(name).map(|v| v.as_str().to_string());
            assert_eq!(h("Shmchan-Key"), Some(a.key().to_string()));
            let pos: u64 = h("Shmchan-Position").unwrap().parse().unwrap();
            let id = h("Shmchan-Channel").unwrap();
            assert!(id.contains(&format!("{:x}", a.shm_id())), "{id}");
            assert_eq!(h("Nats-Msg-Id"), Some(format!("{id}.{pos:x}")));
            positions.push(pos);
        }
        assert_eq!(positions[0], 0);
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    });
    common::finish(a, ga);
}
