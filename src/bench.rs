//! The benchmark harness behind `shmchan bench` and `cargo bench`: a
//! producer and a consumer in two processes (one per core when there are
//! two), shmchan against an anonymous pipe and a Unix stream socket in the
//! same run, reported as ratios.
//!
//! This is the first version of the harness; it measures streaming
//! throughput and a ping-pong round trip.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};

use crate::{Channel, Flavor, Key, Options};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Config {
    /// Message sizes in bytes.
    pub sizes: Vec<usize>,
    /// How long each throughput run streams.
    pub duration: Duration,
    /// Round trips per latency run.
    pub round_trips: usize,
    /// Pin producer and consumer to their own cores.
    pub pin: bool,
    /// Repetitions; the table shows medians.
    pub reps: usize,
    /// Transports to run (names as in [`TRANSPORTS`]).
    pub transports: Vec<String>,
}

/// Every transport the harness knows. `shmchan-mpsc-N`: an MPSC channel
/// with N producer processes (sharing the producer core when pinned).
pub const TRANSPORTS: &[&str] = &[
    "shmchan",
    "shmchan-zc",
    "shmchan-mpsc-1",
    "shmchan-mpsc-2",
    "shmchan-mpsc-4",
    "pipe",
    "unix-stream",
];

/// The number of producers of an `shmchan-mpsc-N` transport.
fn mpsc_producers(transport: &str) -> Option<usize> {
    transport.strip_prefix("shmchan-mpsc-")?.parse().ok()
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sizes: vec![8, 64, 1024, 65536],
            duration: Duration::from_secs(1),
            round_trips: 20_000,
            pin: true,
            reps: 3,
            transports: TRANSPORTS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// One measured row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Transport name.
    pub transport: String,
    /// Message size in bytes.
    pub size: usize,
    /// Messages per second, streaming.
    pub msgs_per_s: f64,
    /// Megabytes (10^6) per second, streaming.
    pub mb_per_s: f64,
    /// Median round trip, nanoseconds.
    pub rtt_p50_ns: f64,
    /// 99th percentile round trip, nanoseconds.
    pub rtt_p99_ns: f64,
}

/// The CPUs the harness may use: the process's affinity mask when the
/// harness first ran (later, the parent is pinned, and a forked child
/// inherits the parent's pin, so the mask must not be read again).
fn harness_cpus() -> &'static [usize] {
    static CPUS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    CPUS.get_or_init(|| crate::sys::allowed_cpus().unwrap_or_default())
}

/// Pins this process to the `which`th CPU of [`harness_cpus`], when there
/// are two or more.
fn pin(which: usize, enabled: bool) {
    let cpus = harness_cpus();
    if enabled && cpus.len() >= 2 {
        let _ = crate::sys::pin_to_cpu(cpus[which]);
    }
}

/// Runs `child` in a forked process (pinned to the second CPU) and `parent`
/// here (pinned to the first); returns what `parent` returns, with this
/// process's CPUs restored.
fn two_processes<T>(pinned: bool, child: impl FnOnce(), parent: impl FnOnce() -> T) -> T {
    let child = std::cell::Cell::new(Some(child));
    processes(pinned, 1, |_| (child.take().expect("one child"))(), parent)
}

/// Runs `child(i)` in `n` forked processes (pinned to the second CPU, or
/// spread over the CPUs after the first) and `parent` here (pinned to the
/// first); returns what `parent` returns, with this process's CPUs
/// restored.
fn processes<T>(pinned: bool, n: usize, child: impl Fn(usize), parent: impl FnOnce() -> T) -> T {
    let cpus = harness_cpus();
    let mut pids = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: the child runs `child` and `_exit`s; the harness forks
        // from a single-threaded process (the CLI), or from cargo bench's
        // main thread.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                pin(1 + i % cpus.len().saturating_sub(1).max(1), pinned);
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child(i)));
                // SAFETY: ends the child without running the parent's
                // destructors.
                unsafe { libc::_exit(if r.is_ok() { 0 } else { 101 }) }
            }
            ForkResult::Parent { child: pid } => pids.push(pid),
        }
    }
    pin(0, pinned);
    let t = parent();
    for pid in pids {
        let _ = waitpid(pid, None);
    }
    if !cpus.is_empty() {
        let _ = crate::sys::set_allowed_cpus(cpus);
    }
    t
}

fn channel(size: usize) -> Channel {
    channel_of(size, Flavor::Spsc)
}

fn channel_of(size: usize, flavor: Flavor) -> Channel {
    let capacity = (size * 64).clamp(1 << 20, 64 << 20);
    Channel::create(
        Key::private(),
        Options::default()
            .flavor(flavor)
            .capacity(capacity)
            .max_message(size.max(8))
            .remove_on_drop(true),
    )
    .expect("create a private channel")
}

/// Counts what a receiver gets until `Disconnected`: (messages, seconds
/// from the first to the last counted). Each message is copied out, as a
/// pipe reader would, or with `in_place` read where it is (a byte of every
/// cache line).
fn count_received(rx: &mut crate::Receiver, size: usize, in_place: bool) -> (u64, f64) {
    let mut n = 0u64;
    let mut first = None;
    let mut last = Instant::now();
    let mut buf = vec![0u8; size];
    let mut sum = 0u8;
    while let Ok(m) = rx.recv() {
        debug_assert_eq!(m.len(), size);
        if in_place {
            sum ^= m.iter().step_by(64).fold(0, |a, &b| a ^ b);
        } else {
            let k = m.len().min(size);
            buf[..k].copy_from_slice(&m[..k]);
        }
        drop(m);
        n += 1;
        if first.is_none() {
            first = Some(Instant::now());
        }
        if n.is_multiple_of(1024) {
            last = Instant::now();
        }
    }
    std::hint::black_box((sum, &buf));
    let secs = last.duration_since(first.unwrap_or(last)).as_secs_f64();
    (n - n % 1024, secs)
}

type ByteReader = Box<dyn Read>;
type ByteWriter = Box<dyn Write>;

/// A pipe or a connected Unix stream socket pair: (read end, write end).
fn byte_pair(transport: &str) -> (ByteReader, ByteWriter) {
    if transport == "pipe" {
        let (r, w) = std::io::pipe().expect("pipe");
        (Box::new(r), Box::new(w))
    } else {
        let (a, b) = UnixStream::pair().expect("socketpair");
        (Box::new(a), Box::new(b))
    }
}

fn stamp(buf: &mut [u8], seq: u64) {
    let n = buf.len().min(8);
    buf[..n].copy_from_slice(&seq.to_le_bytes()[..n]);
}

/// Calls `send` with numbered `size`-byte messages for `duration` (checking
/// the clock every 256 messages).
fn stream_for(duration: Duration, size: usize, mut send: impl FnMut(&[u8])) {
    let end = Instant::now() + duration;
    let mut buf = vec![0u8; size];
    let mut seq = 0u64;
    loop {
        for _ in 0..256 {
            stamp(&mut buf, seq);
            send(&buf);
            seq += 1;
        }
        if Instant::now() >= end {
            break;
        }
    }
}

/// Streams for `duration`; returns (messages, seconds) seen by the consumer
/// from its first message to its last.
fn throughput(transport: &str, size: usize, cfg: &Config) -> (u64, f64) {
    let duration = cfg.duration;
    if let Some(producers) = mpsc_producers(transport) {
        let ch = channel_of(size, Flavor::Mpsc);
        let mut rx = ch.receiver().expect("receiver");
        rx.set_spin_limit(1000);
        return processes(
            cfg.pin,
            producers,
            |_| {
                let mut tx = ch.sender().expect("sender");
                stream_for(duration, size, |m| tx.send(m).expect("send"));
            },
            || count_received(&mut rx, size, false),
        );
    }
    match transport {
        "shmchan" | "shmchan-zc" => {
            let ch = channel(size);
            let mut rx = ch.receiver().expect("receiver");
            rx.set_spin_limit(1000);
            let zc = transport == "shmchan-zc";
            two_processes(
                cfg.pin,
                || {
                    let mut tx = ch.sender().expect("sender");
                    let end = Instant::now() + duration;
                    let mut buf = vec![0u8; size];
                    let mut seq = 0u64;
                    'outer: loop {
                        for _ in 0..256 {
                            if zc {
                                // Produce the whole message in place.
                                let mut g = tx.reserve(size).expect("reserve");
                                g.fill(seq as u8);
                                stamp(&mut g, seq);
                                g.commit();
                            } else {
                                stamp(&mut buf, seq);
                                tx.send(&buf).expect("send");
                            }
                            seq += 1;
                        }
                        if Instant::now() >= end {
                            break 'outer;
                        }
                    }
                },
                || count_received(&mut rx, size, zc),
            )
        }
        "pipe" | "unix-stream" => {
            let (r, w) = byte_pair(transport);
            let (r, w) = (RefCell::new(Some(r)), RefCell::new(Some(w)));
            two_processes(
                cfg.pin,
                || {
                    drop(r.borrow_mut().take());
                    let mut w = w.borrow_mut().take().expect("writer");
                    stream_for(duration, size, |m| w.write_all(m).expect("write"));
                },
                || {
                    drop(w.borrow_mut().take());
                    let mut r = r.borrow_mut().take().expect("reader");
                    let mut buf = vec![0u8; size];
                    let mut n = 0u64;
                    let mut first = None;
                    let mut last = Instant::now();
                    while r.read_exact(&mut buf).is_ok() {
                        n += 1;
                        if first.is_none() {
                            first = Some(Instant::now());
                        }
                        if n.is_multiple_of(1024) {
                            last = Instant::now();
                        }
                    }
                    let secs = last.duration_since(first.unwrap_or(last)).as_secs_f64();
                    (n - n % 1024, secs)
                },
            )
        }
        other => panic!("unknown transport {other}"),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Ping-pong of `size`-byte messages; returns sorted round trips in ns.
fn round_trips(transport: &str, size: usize, cfg: &Config) -> Vec<f64> {
    let n = cfg.round_trips;
    let warmup = n / 10;
    let mut samples = Vec::with_capacity(n);
    match transport {
        "shmchan" | "shmchan-zc" => {
            let ping = channel(size);
            let pong = channel(size);
            two_processes(
                cfg.pin,
                || {
                    let mut rx = ping.receiver().expect("receiver");
                    let mut tx = pong.sender().expect("sender");
                    rx.set_spin_limit(u32::MAX);
                    while let Ok(m) = rx.recv() {
                        tx.send(&m).expect("send");
                    }
                },
                || {
                    let mut tx = ping.sender().expect("sender");
                    let mut rx = pong.receiver().expect("receiver");
                    rx.set_spin_limit(u32::MAX);
                    let mut buf = vec![0u8; size];
                    for i in 0..n + warmup {
                        stamp(&mut buf, i as u64);
                        let t = Instant::now();
                        tx.send(&buf).expect("send");
                        let m = rx.recv().expect("recv");
                        let dt = t.elapsed();
                        debug_assert_eq!(m.len(), size);
                        if i >= warmup {
                            samples.push(dt.as_nanos() as f64);
                        }
                    }
                },
            );
        }
        "pipe" | "unix-stream" => {
            let (ping_r, ping_w) = byte_pair(transport);
            let (pong_r, pong_w) = byte_pair(transport);
            let ping_r = RefCell::new(Some(ping_r));
            let ping_w = RefCell::new(Some(ping_w));
            let pong_r = RefCell::new(Some(pong_r));
            let pong_w = RefCell::new(Some(pong_w));
            two_processes(
                cfg.pin,
                || {
                    drop(ping_w.borrow_mut().take());
                    drop(pong_r.borrow_mut().take());
                    let mut r = ping_r.borrow_mut().take().expect("reader");
                    let mut w = pong_w.borrow_mut().take().expect("writer");
                    let mut buf = vec![0u8; size];
                    while r.read_exact(&mut buf).is_ok() {
                        if w.write_all(&buf).is_err() {
                            break;
                        }
                    }
                },
                || {
                    drop(ping_r.borrow_mut().take());
                    drop(pong_w.borrow_mut().take());
                    let mut w = ping_w.borrow_mut().take().expect("writer");
                    let mut r = pong_r.borrow_mut().take().expect("reader");
                    let mut buf = vec![0u8; size];
                    for i in 0..n + warmup {
                        stamp(&mut buf, i as u64);
                        let t = Instant::now();
                        w.write_all(&buf).expect("write");
                        r.read_exact(&mut buf).expect("read");
                        if i >= warmup {
                            samples.push(t.elapsed().as_nanos() as f64);
                        }
                    }
                    // Dropping `w` here ends the child: it sees end-of-file.
                },
            );
        }
        other => panic!("unknown transport {other}"),
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    samples
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

/// Runs every transport at every size, `reps` times, interleaved so that
/// machine drift hits all alike; returns one row per (transport, size) with
/// medians. `progress` is called before each measurement.
pub fn run(cfg: &Config, mut progress: impl FnMut(&str)) -> Vec<Row> {
    let mut rows = Vec::new();
    for &size in &cfg.sizes {
        let mut tput: Vec<Vec<f64>> = vec![Vec::new(); cfg.transports.len()];
        let mut p50: Vec<Vec<f64>> = vec![Vec::new(); cfg.transports.len()];
        let mut p99: Vec<Vec<f64>> = vec![Vec::new(); cfg.transports.len()];
        for rep in 0..cfg.reps {
            for (i, t) in cfg.transports.iter().enumerate() {
                progress(&format!("{t} {size} B, rep {}/{}", rep + 1, cfg.reps));
                let (n, secs) = throughput(t, size, cfg);
                tput[i].push(if secs > 0.0 { n as f64 / secs } else { 0.0 });
                if t != "shmchan-zc" && mpsc_producers(t).is_none() {
                    let rtt = round_trips(t, size, cfg);
                    p50[i].push(percentile(&rtt, 0.5));
                    p99[i].push(percentile(&rtt, 0.99));
                }
            }
        }
        for (i, t) in cfg.transports.iter().enumerate() {
            let mps = median(tput[i].clone());
            rows.push(Row {
                transport: t.clone(),
                size,
                msgs_per_s: mps,
                mb_per_s: mps * size as f64 / 1e6,
                rtt_p50_ns: median(p50[i].clone()),
                rtt_p99_ns: median(p99[i].clone()),
            });
        }
    }
    rows
}

/// The rows as a table, with each transport's throughput as a ratio of
/// shmchan's at the same size.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<15} {:>7} {:>14} {:>11} {:>10} {:>11} {:>11}\n",
        "transport", "size", "msgs/s", "MB/s", "vs shmchan", "rtt p50", "rtt p99"
    );
    for r in rows {
        let base = rows
            .iter()
            .find(|b| b.size == r.size && b.transport == "shmchan")
            .map(|b| b.msgs_per_s)
            .unwrap_or(0.0);
        let ratio = if base > 0.0 { r.msgs_per_s / base } else { 0.0 };
        let rtt = |ns: f64| {
            if ns == 0.0 {
                "-".to_string()
            } else if ns >= 10_000.0 {
                format!("{:.1} us", ns / 1000.0)
            } else {
                format!("{ns:.0} ns")
            }
        };
        out += &format!(
            "{:<15} {:>7} {:>14.0} {:>11.1} {:>9.2}x {:>11} {:>11}\n",
            r.transport,
            r.size,
            r.msgs_per_s,
            r.mb_per_s,
            ratio,
            rtt(r.rtt_p50_ns),
            rtt(r.rtt_p99_ns)
        );
    }
    out
}
