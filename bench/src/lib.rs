//! The benchmark harness behind `shmchan bench` and `cargo bench`: a
//! producer and a consumer in two processes (one per core when there are
//! two), shmchan against an anonymous pipe, Unix stream and seqpacket
//! sockets and the yardsticks of [`limit`] in the same run, reported as
//! ratios.
//!
//! Figures: streaming throughput, ping-pong round trip (both sides
//! spinning), the blocking path's wake-up latency (receiver asleep, from
//! the send to the return of the receive), the receiver's CPU use while
//! the channel is idle, and (with `--latency-at RATE`) one-way latency at
//! a fixed offered rate ([`latency`]). The broadcast rows ([`broadcast`]:
//! one publisher, N subscriber processes) add each subscriber's rate and
//! what it missed.
//!
//! It uses only shmchan's public API; what else it needs from the
//! operating system is in [`os`].

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod broadcast;
mod cleanup;
pub mod latency;
pub mod limit;
pub mod os;
pub mod waits;

use std::cell::RefCell;
use std::io::{IsTerminal, Read, Write};
use std::marker::PhantomData;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};

use shmchan::{Channel, Flavor, Key, Options, Receiver};

use crate::cleanup::Guarded;

/// The command line of a benchmark run (`shmchan bench`, and the `peers`
/// crate's `bench`).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Message sizes in bytes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "8,64,1024,65536")]
    pub sizes: Vec<usize>,
    /// Seconds each throughput run streams.
    #[arg(long, default_value_t = 1.0)]
    pub duration: f64,
    /// Repetitions; the table shows medians.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Round trips per latency run.
    #[arg(long, default_value_t = 20_000)]
    pub round_trips: usize,
    /// Transports, comma-separated (shmchan, shmchan-zc, shmchan-batch,
    /// shmchan-mpsc-1, shmchan-mpsc-2, shmchan-mpsc-4, shmchan-bcast-1,
    /// shmchan-bcast-2, shmchan-bcast-4, shmchan-bcast-ow-1,
    /// shmchan-bcast-ow-2, shmchan-bcast-ow-4, shmchan-async,
    /// shmchan-async-mt, shmchan-select, shmchan-select-1000, pipe,
    /// unix-stream, unix-seqpacket, limit-ring, limit-memcpy,
    /// limit-cacheline). shmchan-mpsc-N: N producer processes.
    /// shmchan-bcast-N: a broadcast channel (Overflow::Block: the publisher
    /// waits for the slowest) with N subscriber processes, each receiving
    /// and checking every message; msgs/s is the publisher's rate, and a
    /// section below the table gives the slowest and the mean subscriber's
    /// (and, in JSON, subscribers, sub_min_msgs_per_s, sub_mean_msgs_per_s,
    /// sub_missed, sub_missed_pct); wake p50 is a sleeping subscriber's.
    /// shmchan-bcast-ow-N: the same with Overflow::Overwrite (the publisher
    /// never waits; a subscriber's rate is of what it was delivered, and
    /// missed% says what it lost to the publisher's laps).
    #[arg(long, value_delimiter = ',')]
    pub transports: Option<Vec<String>>,
    /// Do not pin producer and consumer to their own cores.
    #[arg(long)]
    pub no_pin: bool,
    /// One JSON object per row instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also measure one-way latency at these offered rates (messages per
    /// second, comma-separated: 250k, 1M, 10M): the producer sends on a
    /// fixed schedule, each message carrying its intended send time, and
    /// latency counts from that time (no coordinated omission); for
    /// shmchan, shmchan-mpsc-1, limit-ring and the byte streams.
    #[arg(long, value_delimiter = ',', value_parser = latency::parse_rate, value_name = "RATE")]
    pub latency_at: Vec<f64>,
}

impl Args {
    /// The configuration these arguments ask for; an unknown transport is
    /// an error.
    pub fn config(&self) -> Result<Config, String> {
        let mut cfg = Config {
            sizes: self.sizes.clone(),
            duration: Duration::from_secs_f64(self.duration.max(0.01)),
            round_trips: self.round_trips,
            pin: !self.no_pin,
            reps: self.reps.max(1),
            latency_rates: self.latency_at.clone(),
            ..Config::default()
        };
        if let Some(t) = &self.transports {
            if let Some(bad) = t.iter().find(|n| !TRANSPORTS.contains(&n.as_str())) {
                return Err(format!(
                    "unknown transport {bad}; known: {}",
                    TRANSPORTS.join(", ")
                ));
            }
            cfg.transports = t.clone();
        }
        Ok(cfg)
    }

    /// Prints `rows` as asked: the table, or JSON lines.
    pub fn print(&self, rows: &[Row]) {
        if self.json {
            for r in rows {
                println!("{}", r.json());
            }
        } else {
            print!("{}", table(rows));
        }
    }
}

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
    /// Offered rates (messages per second) of the fixed-rate latency
    /// figure; none: not measured.
    pub latency_rates: Vec<f64>,
}

/// Every transport the harness knows. `shmchan-mpsc-N`: an MPSC channel
/// with N producer processes (sharing the producer core when pinned);
/// `shmchan-batch`: SPSC, `send_batch` of [`BATCH`] messages and
/// `recv_batch`, each message copied out; `shmchan-bcast-N` and
/// `shmchan-bcast-ow-N`: a broadcast channel (Block, Overwrite) with N
/// subscriber processes ([`broadcast`]).
pub const TRANSPORTS: &[&str] = &[
    "shmchan",
    "shmchan-zc",
    "shmchan-batch",
    "shmchan-mpsc-1",
    "shmchan-mpsc-2",
    "shmchan-mpsc-4",
    "shmchan-bcast-1",
    "shmchan-bcast-2",
    "shmchan-bcast-4",
    "shmchan-bcast-ow-1",
    "shmchan-bcast-ow-2",
    "shmchan-bcast-ow-4",
    "shmchan-async",
    "shmchan-async-mt",
    "shmchan-select",
    "shmchan-select-1000",
    "pipe",
    "unix-stream",
    "unix-seqpacket",
    "limit-ring",
    "limit-memcpy",
    "limit-cacheline",
];

/// What each transport measures: (streaming, round trip, wake-up and idle
/// CPU).
fn measures(transport: &str) -> (bool, bool, bool) {
    match transport {
        "shmchan-zc" | "shmchan-batch" | "shmchan-mpsc-2" | "shmchan-mpsc-4" | "limit-memcpy" => {
            (true, false, false)
        }
        "shmchan-mpsc-1" | "shmchan-async" => (true, false, true),
        // Broadcast: no round trip; a sleeping subscriber's wake-up (and
        // idle CPU) in Block only.
        "shmchan-bcast-1" | "shmchan-bcast-2" | "shmchan-bcast-4" => (true, false, true),
        "shmchan-bcast-ow-1" | "shmchan-bcast-ow-2" | "shmchan-bcast-ow-4" => (true, false, false),
        "shmchan-async-mt" | "shmchan-select" | "shmchan-select-1000" => (false, false, true),
        "limit-ring" => (true, true, false),
        "limit-cacheline" => (false, true, false),
        _ => (true, true, true),
    }
}

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
            latency_rates: Vec::new(),
        }
    }
}

/// One measured row; `None` where the transport does not measure it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Transport name.
    pub transport: String,
    /// Message size in bytes.
    pub size: usize,
    /// Messages per second, streaming (the median of the repetitions).
    pub msgs_per_s: Option<f64>,
    /// Every repetition's messages per second, in the order they ran.
    pub msgs_per_s_reps: Vec<f64>,
    /// Megabytes (10^6) per second, streaming.
    pub mb_per_s: Option<f64>,
    /// Median round trip, nanoseconds.
    pub rtt_p50_ns: Option<f64>,
    /// 99th percentile round trip, nanoseconds.
    pub rtt_p99_ns: Option<f64>,
    /// 99.9th percentile round trip, nanoseconds.
    pub rtt_p999_ns: Option<f64>,
    /// Median wake-up latency of a sleeping receiver, nanoseconds.
    pub wake_p50_ns: Option<f64>,
    /// The receiver's CPU use while the channel is idle, percent of a
    /// core (measured once per transport, at the first size).
    pub idle_cpu_pct: Option<f64>,
    /// A row of the fixed-rate latency figure instead (its other figures
    /// are then `None`): medians over the repetitions.
    pub latency: Option<latency::Latency>,
    /// A broadcast row's subscribers (its `msgs_per_s` is the
    /// publisher's).
    pub subscribers: Option<broadcast::Subscribers>,
}

impl Row {
    /// The row as one JSON object (a fixed-rate latency row has its own
    /// fields: `latency_at`, `received_per_s`, `lat_p50_ns`, `lat_p99_ns`,
    /// `lat_p9999_ns`, `lat_max_ns`, `samples`). A broadcast row's
    /// `subscribers`, `sub_min_msgs_per_s`, `sub_mean_msgs_per_s`,
    /// `sub_missed` (the mean per subscriber) and `sub_missed_pct` (of the
    /// messages published) are `null` in the other rows.
    pub fn json(&self) -> String {
        let num = |v: Option<f64>, digits: usize| match v {
            Some(x) if x.is_finite() => format!("{x:.digits$}"),
            _ => "null".to_string(),
        };
        if let Some(l) = &self.latency {
            return format!(
                "{{\"transport\":\"{}\",\"size\":{},\"latency_at\":{},\"received_per_s\":{},\"lat_p50_ns\":{},\"lat_p99_ns\":{},\"lat_p9999_ns\":{},\"lat_max_ns\":{},\"samples\":{}}}",
                self.transport,
                self.size,
                num(Some(l.rate), 0),
                num(Some(l.received_per_s), 0),
                num(Some(l.p50_ns), 0),
                num(Some(l.p99_ns), 0),
                num(Some(l.p9999_ns), 0),
                num(Some(l.max_ns), 0),
                l.samples,
            );
        }
        let subs = self.subscribers.as_ref();
        format!(
            "{{\"transport\":\"{}\",\"size\":{},\"msgs_per_s\":{},\"msgs_per_s_reps\":[{}],\"mb_per_s\":{},\"rtt_p50_ns\":{},\"rtt_p99_ns\":{},\"rtt_p999_ns\":{},\"wake_p50_ns\":{},\"idle_cpu_pct\":{},\"subscribers\":{},\"sub_min_msgs_per_s\":{},\"sub_mean_msgs_per_s\":{},\"sub_missed\":{},\"sub_missed_pct\":{}}}",
            self.transport,
            self.size,
            num(self.msgs_per_s, 0),
            self.msgs_per_s_reps
                .iter()
                .map(|&m| num(Some(m), 0))
                .collect::<Vec<_>>()
                .join(","),
            num(self.mb_per_s, 1),
            num(self.rtt_p50_ns, 0),
            num(self.rtt_p99_ns, 0),
            num(self.rtt_p999_ns, 0),
            num(self.wake_p50_ns, 0),
            num(self.idle_cpu_pct, 3),
            num(subs.map(|s| s.count as f64), 0),
            num(subs.map(|s| s.min_msgs_per_s), 0),
            num(subs.map(|s| s.mean_msgs_per_s), 0),
            num(subs.map(|s| s.missed), 0),
            num(subs.map(|s| s.missed_pct), 3),
        )
    }
}

/// Proof that no other thread runs in this process, which the harness
/// needs: every measurement forks, and its children run arbitrary code.
/// Made once, in `main`, by [`SingleThreaded::new`], and passed to
/// whatever forks ([`two_processes`], [`run`], [`Peer`]'s measurements).
/// Neither `Send` nor `Sync`.
#[derive(Debug)]
pub struct SingleThreaded {
    _not_send: PhantomData<*const ()>,
}

impl SingleThreaded {
    /// The proof, on the word of the caller.
    ///
    /// # Safety
    ///
    /// No other thread runs in this process now, and none starts while the
    /// value lives, in this process or in a child the harness forks
    /// meanwhile (as in the `main` of a program that starts no thread).
    /// After a `fork` of a multi-threaded process the child may only call
    /// async-signal-safe functions (a lock that another thread held at the
    /// fork stays held in the child, over data that may be half-updated),
    /// and the harness's children allocate, print and take locks.
    pub unsafe fn new() -> SingleThreaded {
        SingleThreaded {
            _not_send: PhantomData,
        }
    }
}

/// The CPUs the harness may use: the process's affinity mask when the
/// harness first ran (later, the parent is pinned, and a forked child
/// inherits the parent's pin, so the mask must not be read again).
fn harness_cpus() -> &'static [usize] {
    static CPUS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    CPUS.get_or_init(|| crate::os::allowed_cpus().unwrap_or_default())
}

/// Pins this process to the `which`th CPU of [`harness_cpus`], when there
/// are two or more.
fn pin(which: usize, enabled: bool) {
    let cpus = harness_cpus();
    if enabled && cpus.len() >= 2 {
        let _ = crate::os::pin_to_cpu(cpus[which]);
    }
}

/// Runs `child` in a forked process (pinned to the second CPU) and `parent`
/// here (pinned to the first); returns what `parent` returns, with this
/// process's CPUs restored. `one`: the proof that this process may fork
/// and run anything in the child.
pub fn two_processes<T>(
    one: &SingleThreaded,
    pinned: bool,
    child: impl FnOnce(),
    parent: impl FnOnce() -> T,
) -> T {
    let child = std::cell::Cell::new(Some(child));
    processes(
        one,
        pinned,
        1,
        |_| (child.take().expect("one child"))(),
        parent,
    )
}

/// Runs `child(i)` in `n` forked processes (pinned to the second CPU, or
/// spread over the CPUs after the first) and `parent` here (pinned to the
/// first); returns what `parent` returns, with this process's CPUs
/// restored.
pub(crate) fn processes<T>(
    _one: &SingleThreaded,
    pinned: bool,
    n: usize,
    child: impl Fn(usize),
    parent: impl FnOnce() -> T,
) -> T {
    let cpus = harness_cpus();
    let mut pids = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: the child runs `child` and `_exit`s; no other thread runs
        // in this process (the `SingleThreaded` proof), so the child may
        // call anything.
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
        let _ = crate::os::set_allowed_cpus(cpus);
    }
    t
}

pub(crate) fn channel(size: usize) -> Guarded {
    channel_of(size, Flavor::Spsc)
}

pub(crate) fn channel_of(size: usize, flavor: Flavor) -> Guarded {
    let capacity = ring_bytes(size);
    guarded(
        Options::default()
            .flavor(flavor)
            .capacity(capacity)
            .max_message(size.max(8)),
    )
}

/// A private channel made with `options` and `remove_on_drop`, removed
/// also if the harness is interrupted while it lives ([`cleanup`]).
pub(crate) fn guarded(options: Options) -> Guarded {
    let ch = Channel::create(Key::private(), options.remove_on_drop(true))
        .expect("create a private channel");
    Guarded::new(ch)
}

/// Counts what a receiver gets until `Disconnected`: (messages, seconds
/// from the first to the last counted). Each message is copied out, as a
/// pipe reader would, or with `in_place` read where it is (a byte of every
/// cache line).
fn count_received(rx: &mut Receiver, size: usize, in_place: bool) -> (u64, f64) {
    let mut buf = vec![0u8; size];
    let mut sum = 0u8;
    let r = count_until(|| {
        let Ok(m) = rx.recv() else {
            return false;
        };
        debug_assert_eq!(m.len(), size);
        if in_place {
            sum ^= m.iter().step_by(64).fold(0, |a, &b| a ^ b);
        } else {
            let k = m.len().min(size);
            buf[..k].copy_from_slice(&m[..k]);
        }
        true
    });
    std::hint::black_box((sum, &buf));
    r
}

/// Calls `next` until it returns false (one message each); returns the
/// messages counted and the seconds from the first to the last counted
/// (in whole blocks of 1024, so the clock is read rarely).
pub fn count_until(mut next: impl FnMut() -> bool) -> (u64, f64) {
    let mut n = 0u64;
    let mut first = None;
    let mut last = Instant::now();
    while next() {
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
}

type ByteReader = Box<dyn Read>;
type ByteWriter = Box<dyn Write>;

/// A pipe, or a connected pair of Unix stream or seqpacket sockets: (read
/// end, write end). On a seqpacket socket each write is one message and
/// each read returns one.
fn byte_pair(transport: &str) -> (ByteReader, ByteWriter) {
    match transport {
        "pipe" => {
            let (r, w) = std::io::pipe().expect("pipe");
            (Box::new(r), Box::new(w))
        }
        "unix-seqpacket" => {
            let (a, b) = crate::os::seqpacket_pair().expect("socketpair");
            (Box::new(UnixStream::from(a)), Box::new(UnixStream::from(b)))
        }
        _ => {
            let (a, b) = UnixStream::pair().expect("socketpair");
            (Box::new(a), Box::new(b))
        }
    }
}

/// Runs `write` in a child process with the write end of a fresh
/// `transport` byte pair ([`byte_pair`]) and `read` here with the read
/// end; each side first closes the other's end, so the reader sees
/// end-of-file when the writer is done.
pub(crate) fn over_bytes<T>(
    one: &SingleThreaded,
    transport: &str,
    pinned: bool,
    write: impl FnOnce(&mut dyn Write),
    read: impl FnOnce(&mut dyn Read) -> T,
) -> T {
    let (r, w) = byte_pair(transport);
    let (r, w) = (RefCell::new(Some(r)), RefCell::new(Some(w)));
    two_processes(
        one,
        pinned,
        || {
            drop(r.borrow_mut().take());
            let mut w = w.borrow_mut().take().expect("writer");
            write(&mut *w);
        },
        || {
            drop(w.borrow_mut().take());
            let mut r = r.borrow_mut().take().expect("reader");
            read(&mut *r)
        },
    )
}

/// Streams `size`-byte messages over a [`limit::LimitRing`], as
/// [`over_bytes`] does over a byte stream: `produce` runs in a child
/// process with the ring's send, `consume` here with its receive (false
/// once the producer has finished and all is read).
pub(crate) fn over_limit_ring<T>(
    one: &SingleThreaded,
    pinned: bool,
    size: usize,
    produce: impl FnOnce(&mut dyn FnMut(&[u8])),
    consume: impl FnOnce(&mut dyn FnMut(&mut [u8]) -> bool) -> T,
) -> T {
    let ring = limit::LimitRing::new(size, ring_bytes(size));
    two_processes(
        one,
        pinned,
        || {
            // SAFETY: the ring's one producer, in the child; the parent
            // makes its one consumer.
            let mut tx = unsafe { ring.producer() };
            produce(&mut |m| tx.send(m));
            tx.finish();
        },
        || {
            // SAFETY: the ring's one consumer, in the parent; the child
            // makes its one producer.
            let mut rx = unsafe { ring.consumer() };
            consume(&mut |buf| rx.recv(buf))
        },
    )
}

/// Messages per `send_batch` of the `shmchan-batch` transport.
pub const BATCH: usize = 32;

/// Bytes of ring the shmchan channels (and the limit ring) get for
/// `size`-byte messages.
pub fn ring_bytes(size: usize) -> usize {
    (size * 64).clamp(1 << 20, 64 << 20)
}

/// Round trips made before measuring `n` of `size`-byte messages: a tenth
/// of `n`, and at least one pass over a ring of [`ring_bytes`], so that no
/// measured round trip is the first touch of a page (a page fault costs
/// microseconds and would land in the tail percentiles).
pub fn warmup_round_trips(size: usize, n: usize) -> usize {
    // shmchan's records are the smallest of any transport's here.
    let record = shmchan::layout::record_size(size);
    (n / 10).max(ring_bytes(size) / record + 1)
}

/// Writes `seq` into the first bytes of `buf` (a message's number, or a
/// time).
pub fn stamp(buf: &mut [u8], seq: u64) {
    let n = buf.len().min(8);
    buf[..n].copy_from_slice(&seq.to_le_bytes()[..n]);
}

/// What [`stamp`] wrote into a message of at least 8 bytes.
pub fn stamp_of(m: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&m[..8]);
    u64::from_le_bytes(b)
}

/// Calls `send` with numbered `size`-byte messages for `duration` (checking
/// the clock every 256 messages).
pub fn stream_for(duration: Duration, size: usize, mut send: impl FnMut(&[u8])) {
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
fn throughput(one: &SingleThreaded, transport: &str, size: usize, cfg: &Config) -> (u64, f64) {
    let duration = cfg.duration;
    if let Some(producers) = mpsc_producers(transport) {
        let ch = channel_of(size, Flavor::Mpsc);
        let mut rx = ch.receiver().expect("receiver");
        rx.set_spin_limit(1000);
        return processes(
            one,
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
        "shmchan-async" => waits::async_throughput(one, size, cfg),
        "shmchan" | "shmchan-zc" => {
            let ch = channel(size);
            let mut rx = ch.receiver().expect("receiver");
            rx.set_spin_limit(1000);
            let zc = transport == "shmchan-zc";
            two_processes(
                one,
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
        "shmchan-batch" => {
            let ch = channel(size);
            let mut rx = ch.receiver().expect("receiver");
            rx.set_spin_limit(1000);
            two_processes(
                one,
                cfg.pin,
                || {
                    let mut tx = ch.sender().expect("sender");
                    let end = Instant::now() + duration;
                    let mut bufs = vec![vec![0u8; size]; BATCH];
                    let mut seq = 0u64;
                    while Instant::now() < end {
                        for _ in 0..256 / BATCH {
                            for b in &mut bufs {
                                stamp(b, seq);
                                seq += 1;
                            }
                            let batch: Vec<&[u8]> = bufs.iter().map(Vec::as_slice).collect();
                            let mut rest = &batch[..];
                            while !rest.is_empty() {
                                rest = &rest[tx.send_batch(rest).expect("send_batch")..];
                            }
                        }
                    }
                },
                || {
                    let mut buf = vec![0u8; size];
                    let mut pending = 0u64;
                    count_until(|| {
                        if pending == 0 {
                            match rx.recv_batch(4 * BATCH, |m| {
                                let k = m.len().min(size);
                                buf[..k].copy_from_slice(&m[..k]);
                            }) {
                                Ok(n) => pending = n as u64,
                                Err(_) => return false,
                            }
                        }
                        pending -= 1;
                        true
                    })
                },
            )
        }
        "limit-ring" => over_limit_ring(
            one,
            cfg.pin,
            size,
            |send| stream_for(duration, size, send),
            |recv| {
                let mut buf = vec![0u8; size];
                count_until(|| recv(&mut buf))
            },
        ),
        "limit-memcpy" => limit::memcpy_rate(size, duration),
        "pipe" | "unix-stream" | "unix-seqpacket" => over_bytes(
            one,
            transport,
            cfg.pin,
            |w| stream_for(duration, size, |m| w.write_all(m).expect("write")),
            |r| {
                let mut buf = vec![0u8; size];
                count_until(|| r.read_exact(&mut buf).is_ok())
            },
        ),
        other => panic!("unknown transport {other}"),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Ping-pong of `size`-byte messages; returns sorted round trips in ns.
fn round_trips(one: &SingleThreaded, transport: &str, size: usize, cfg: &Config) -> Vec<f64> {
    let n = cfg.round_trips;
    let warmup = warmup_round_trips(size, n);
    let mut samples = Vec::with_capacity(n);
    match transport {
        "shmchan" | "shmchan-zc" => {
            let ping = channel(size);
            let pong = channel(size);
            two_processes(
                one,
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
        "limit-cacheline" => return limit::cacheline_round_trips(one, cfg.pin, n),
        "limit-ring" => {
            let ping = limit::LimitRing::new(size, ring_bytes(size));
            let pong = limit::LimitRing::new(size, ring_bytes(size));
            two_processes(
                one,
                cfg.pin,
                || {
                    // SAFETY: the child consumes ping and produces pong, the
                    // parent the other way round: one of each per ring.
                    let (mut rx, mut tx) = unsafe { (ping.consumer(), pong.producer()) };
                    let mut buf = vec![0u8; size];
                    while rx.recv(&mut buf) {
                        tx.send(&buf);
                    }
                },
                || {
                    // SAFETY: the parent produces ping and consumes pong, the
                    // child the other way round: one of each per ring.
                    let (mut tx, mut rx) = unsafe { (ping.producer(), pong.consumer()) };
                    let mut buf = vec![0u8; size];
                    for i in 0..n + warmup {
                        stamp(&mut buf, i as u64);
                        let t = Instant::now();
                        tx.send(&buf);
                        rx.recv(&mut buf);
                        if i >= warmup {
                            samples.push(t.elapsed().as_nanos() as f64);
                        }
                    }
                    tx.finish();
                },
            );
        }
        "pipe" | "unix-stream" | "unix-seqpacket" => {
            let (ping_r, ping_w) = byte_pair(transport);
            let (pong_r, pong_w) = byte_pair(transport);
            let ping_r = RefCell::new(Some(ping_r));
            let ping_w = RefCell::new(Some(ping_w));
            let pong_r = RefCell::new(Some(pong_r));
            let pong_w = RefCell::new(Some(pong_w));
            two_processes(
                one,
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

/// Wake-ups measured per run.
pub(crate) const WAKE_SAMPLES: usize = 100;
/// How long the sender waits before each of them: the receiver is asleep
/// by then (shmchan receivers here sleep at once: spin limit 0).
pub(crate) const WAKE_PAUSE: Duration = Duration::from_millis(2);

/// The blocking path: the receiver (this process) waits asleep; the sender
/// (a child) sends a message carrying `CLOCK_MONOTONIC` every
/// [`WAKE_PAUSE`]; each sample is the time from just before the send to
/// the return of the receive. Sorted, in nanoseconds.
fn wake_ups(one: &SingleThreaded, transport: &str, size: usize, cfg: &Config) -> Vec<f64> {
    let size = size.max(8);
    let send_all = |send: &mut dyn FnMut(&[u8])| {
        let mut buf = vec![0u8; size];
        for _ in 0..WAKE_SAMPLES {
            std::thread::sleep(WAKE_PAUSE);
            stamp(&mut buf, crate::os::monotonic_ns());
            send(&buf);
        }
    };
    let latency = |m: &[u8]| {
        let sent = stamp_of(m);
        crate::os::monotonic_ns().saturating_sub(sent) as f64
    };
    if waits::TRANSPORTS.contains(&transport) {
        return waits::wake_ups(one, transport, size, cfg);
    }
    if broadcast::TRANSPORTS.contains(&transport) {
        return broadcast::wake_ups(one, transport, size, cfg);
    }
    let mut samples = Vec::with_capacity(WAKE_SAMPLES);
    match transport {
        "shmchan" | "shmchan-mpsc-1" => {
            let flavor = if transport == "shmchan" {
                Flavor::Spsc
            } else {
                Flavor::Mpsc
            };
            let ch = channel_of(size, flavor);
            let mut rx = ch.receiver().expect("receiver");
            rx.set_spin_limit(0);
            two_processes(
                one,
                cfg.pin,
                || {
                    let mut tx = ch.sender().expect("sender");
                    send_all(&mut |m| tx.send(m).expect("send"));
                },
                || {
                    while let Ok(m) = rx.recv() {
                        samples.push(latency(&m));
                    }
                },
            );
        }
        _ => over_bytes(
            one,
            transport,
            cfg.pin,
            |w| send_all(&mut |m| w.write_all(m).expect("write")),
            |r| {
                let mut buf = vec![0u8; size];
                while r.read_exact(&mut buf).is_ok() {
                    samples.push(latency(&buf));
                }
            },
        ),
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    samples
}

/// How long the idle measurement lasts.
pub(crate) const IDLE_FOR: Duration = Duration::from_secs(1);

/// The receiver's CPU use, in percent of a core, while it waits on a
/// channel whose sender sends nothing for [`IDLE_FOR`] and then leaves.
fn idle_cpu(one: &SingleThreaded, transport: &str, cfg: &Config) -> f64 {
    let measure = |wait: &mut dyn FnMut()| {
        let (cpu, wall) = (crate::os::thread_cpu_ns(), Instant::now());
        wait();
        let cpu = crate::os::thread_cpu_ns() - cpu;
        100.0 * cpu as f64 / wall.elapsed().as_nanos().max(1) as f64
    };
    if waits::TRANSPORTS.contains(&transport) {
        return waits::idle_cpu(one, transport, cfg);
    }
    if broadcast::TRANSPORTS.contains(&transport) {
        return broadcast::idle_cpu(one, transport, cfg);
    }
    match transport {
        "shmchan" | "shmchan-mpsc-1" => {
            let flavor = if transport == "shmchan" {
                Flavor::Spsc
            } else {
                Flavor::Mpsc
            };
            let ch = channel_of(64, flavor);
            let mut rx = ch.receiver().expect("receiver");
            two_processes(
                one,
                cfg.pin,
                || {
                    let _tx = ch.sender().expect("sender");
                    std::thread::sleep(IDLE_FOR);
                },
                || measure(&mut || while rx.recv().is_ok() {}),
            )
        }
        _ => over_bytes(
            one,
            transport,
            cfg.pin,
            |_| std::thread::sleep(IDLE_FOR),
            |r| {
                let mut buf = [0u8; 64];
                measure(&mut || while r.read_exact(&mut buf).is_ok() {})
            },
        ),
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied()
}

/// A transport from outside this crate (the `peers` crate measures other
/// IPC libraries with it), measured by the same rules as the built-in
/// ones: the producer in a child process ([`two_processes`]), streaming
/// with [`stream_for`] and counted with [`count_until`], rings of
/// [`ring_bytes`]. Its measurements get the [`SingleThreaded`] proof that
/// they may fork.
pub trait Peer {
    /// Its name in the table.
    fn name(&self) -> String;
    /// Streams `size`-byte messages for `cfg.duration` from a child process
    /// to this one; returns what [`count_until`] returns.
    fn throughput(&self, one: &SingleThreaded, size: usize, cfg: &Config) -> (u64, f64);
    /// `cfg.round_trips` ping-pongs of `size`-byte messages (after
    /// [`warmup_round_trips`] more for warm-up), both sides spinning or as
    /// fast as the transport
    /// allows; sorted round trips in nanoseconds. `None` if it has none.
    fn round_trips(&self, one: &SingleThreaded, size: usize, cfg: &Config) -> Option<Vec<f64>>;
    /// A broadcast peer: streams `size`-byte messages for `cfg.duration`
    /// from a publisher here to subscribers in child processes
    /// ([`broadcast::fan_out`]), and its row gets their figures as the
    /// `shmchan-bcast-N` rows do (and [`Peer::throughput`] is not called).
    /// `None`, the default: a point-to-point peer.
    fn broadcast(
        &self,
        _one: &SingleThreaded,
        _size: usize,
        _cfg: &Config,
    ) -> Option<broadcast::BroadcastRun> {
        None
    }
}

/// Runs every transport at every size, `reps` times, interleaved so that
/// machine drift hits all alike; returns one row per (transport, size) with
/// medians. The idle CPU use is measured once per transport, at the first
/// size. `progress` is called before each measurement. Every measurement
/// forks: `one` is the proof that it may.
pub fn run(one: &SingleThreaded, cfg: &Config, progress: impl FnMut(&str)) -> Vec<Row> {
    run_with(one, cfg, &[], progress)
}

/// [`run`], with `peers` measured after the built-in transports.
pub fn run_with(
    one: &SingleThreaded,
    cfg: &Config,
    peers: &[&dyn Peer],
    mut progress: impl FnMut(&str),
) -> Vec<Row> {
    let mut rows = Vec::new();
    let names: Vec<String> = cfg
        .transports
        .iter()
        .cloned()
        .chain(peers.iter().map(|p| p.name()))
        .collect();
    let k = names.len();
    let mut idle: Vec<Option<f64>> = vec![None; k];
    for (si, &size) in cfg.sizes.iter().enumerate() {
        let mut tput: Vec<Vec<f64>> = vec![Vec::new(); k];
        let mut p50: Vec<Vec<f64>> = vec![Vec::new(); k];
        let mut p99: Vec<Vec<f64>> = vec![Vec::new(); k];
        let mut p999: Vec<Vec<f64>> = vec![Vec::new(); k];
        let mut wake: Vec<Vec<f64>> = vec![Vec::new(); k];
        let mut fans: Vec<Vec<broadcast::BroadcastRun>> = vec![Vec::new(); k];
        for rep in 0..cfg.reps {
            for (i, t) in names.iter().enumerate() {
                progress(&format!("{t} {size} B, rep {}/{}", rep + 1, cfg.reps));
                if let Some(peer) = i.checked_sub(cfg.transports.len()).map(|j| peers[j]) {
                    if let Some(b) = peer.broadcast(one, size, cfg) {
                        tput[i].push(b.msgs_per_s);
                        fans[i].push(b);
                    } else {
                        let (n, secs) = peer.throughput(one, size, cfg);
                        tput[i].push(if secs > 0.0 { n as f64 / secs } else { 0.0 });
                    }
                    if let Some(rtt) = peer.round_trips(one, size, cfg) {
                        p50[i].push(percentile(&rtt, 0.5));
                        p99[i].push(percentile(&rtt, 0.99));
                        p999[i].push(percentile(&rtt, 0.999));
                    }
                    continue;
                }
                let (streams, pings, wakes) = measures(t);
                if streams && broadcast::TRANSPORTS.contains(&t.as_str()) {
                    let b = broadcast::throughput(one, t, size, cfg);
                    tput[i].push(b.msgs_per_s);
                    fans[i].push(b);
                } else if streams {
                    let (n, secs) = throughput(one, t, size, cfg);
                    tput[i].push(if secs > 0.0 { n as f64 / secs } else { 0.0 });
                }
                if pings {
                    let rtt = round_trips(one, t, size, cfg);
                    p50[i].push(percentile(&rtt, 0.5));
                    p99[i].push(percentile(&rtt, 0.99));
                    p999[i].push(percentile(&rtt, 0.999));
                }
                if wakes {
                    progress(&format!(
                        "{t} {size} B wake-ups, rep {}/{}",
                        rep + 1,
                        cfg.reps
                    ));
                    wake[i].push(percentile(&wake_ups(one, t, size, cfg), 0.5));
                    if si == 0 && rep == 0 {
                        progress(&format!("{t} idle receiver"));
                        idle[i] = Some(idle_cpu(one, t, cfg));
                    }
                }
            }
        }
        for (i, t) in names.iter().enumerate() {
            let mps = median(tput[i].clone());
            rows.push(Row {
                transport: t.clone(),
                size,
                msgs_per_s: mps,
                msgs_per_s_reps: tput[i].clone(),
                mb_per_s: mps.map(|m| m * size as f64 / 1e6),
                rtt_p50_ns: median(p50[i].clone()),
                rtt_p99_ns: median(p99[i].clone()),
                rtt_p999_ns: median(p999[i].clone()),
                wake_p50_ns: median(wake[i].clone()),
                idle_cpu_pct: if si == 0 { idle[i] } else { None },
                latency: None,
                subscribers: broadcast::Subscribers::of(&fans[i]),
            });
        }
    }
    for &size in &cfg.sizes {
        for &rate in &cfg.latency_rates {
            rows.extend(fixed_rate_rows(one, cfg, size, rate, &mut progress));
        }
    }
    rows
}

/// The fixed-rate latency figure at one size and rate: one row per
/// transport that measures it, medians over the repetitions (interleaved).
fn fixed_rate_rows(
    one: &SingleThreaded,
    cfg: &Config,
    size: usize,
    rate: f64,
    progress: &mut impl FnMut(&str),
) -> Vec<Row> {
    let names: Vec<&String> = cfg
        .transports
        .iter()
        .filter(|t| latency::TRANSPORTS.contains(&t.as_str()))
        .collect();
    let mut runs: Vec<Vec<latency::Latency>> = vec![Vec::new(); names.len()];
    for rep in 0..cfg.reps {
        for (i, t) in names.iter().enumerate() {
            progress(&format!(
                "{t} {size} B at {} msg/s, rep {}/{}",
                short_rate(rate),
                rep + 1,
                cfg.reps
            ));
            if let Some(l) = latency::fixed_rate(one, t, size, rate, cfg) {
                runs[i].push(l);
            }
        }
    }
    names
        .iter()
        .zip(runs)
        .filter(|(_, r)| !r.is_empty())
        .map(|(t, r)| {
            let med = |f: fn(&latency::Latency) -> f64| {
                median(r.iter().map(f).collect()).unwrap_or(f64::NAN)
            };
            Row {
                transport: t.to_string(),
                size,
                msgs_per_s: None,
                msgs_per_s_reps: Vec::new(),
                mb_per_s: None,
                rtt_p50_ns: None,
                rtt_p99_ns: None,
                rtt_p999_ns: None,
                wake_p50_ns: None,
                idle_cpu_pct: None,
                latency: Some(latency::Latency {
                    rate,
                    received_per_s: med(|l| l.received_per_s),
                    p50_ns: med(|l| l.p50_ns),
                    p99_ns: med(|l| l.p99_ns),
                    p9999_ns: med(|l| l.p9999_ns),
                    max_ns: r.iter().map(|l| l.max_ns).fold(f64::NAN, f64::max),
                    samples: r.iter().map(|l| l.samples).min().unwrap_or(0),
                }),
                subscribers: None,
            }
        })
        .collect()
}

/// A rate, short: "250k", "1M", "2.5M".
fn short_rate(rate: f64) -> String {
    let (v, unit) = if rate >= 1e9 {
        (rate / 1e9, "G")
    } else if rate >= 1e6 {
        (rate / 1e6, "M")
    } else if rate >= 1e3 {
        (rate / 1e3, "k")
    } else {
        (rate, "")
    };
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{unit}")
}

/// The `progress` of [`run`] for a program run from a shell: a line
/// `measuring …` on standard error, rewritten in place (each starts with a
/// carriage return and erases the line), when standard error is a
/// terminal; nothing when it is not (a file or a pipe gets no escape
/// sequences). End it with [`progress_end`].
pub fn progress_line() -> impl FnMut(&str) {
    let tty = std::io::stderr().is_terminal();
    move |what| {
        if tty {
            eprint!("\r\x1b[2Kmeasuring {what}");
        }
    }
}

/// Clears the line of [`progress_line`] (and ends it), when standard error
/// is a terminal.
pub fn progress_end() {
    if std::io::stderr().is_terminal() {
        eprintln!("\r\x1b[2K");
    }
}

/// A duration in nanoseconds, short: "531 ns", "60.2 us", "1.25 ms".
fn short_ns(ns: Option<f64>) -> String {
    match ns {
        None => "-".to_string(),
        Some(ns) if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        Some(ns) if ns >= 1e4 => format!("{:.1} us", ns / 1e3),
        Some(ns) => format!("{ns:.0} ns"),
    }
}

/// The rows as a table, with each transport's throughput as a ratio of
/// shmchan SPSC's and of `limit-ring`'s at the same size (when measured);
/// the broadcast rows' subscribers in a section of their own, and the
/// fixed-rate latency rows in another.
pub fn table(rows: &[Row]) -> String {
    // The transport column fits the longest name.
    let w = rows
        .iter()
        .map(|r| r.transport.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let mut out = format!(
        "{:<w$} {:>6} {:>11} {:>9} {:>7} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>6}\n",
        "transport",
        "size",
        "msgs/s",
        "MB/s",
        "/spsc",
        "/limit",
        "reps",
        "rtt p50",
        "rtt p99",
        "rtt p99.9",
        "wake p50",
        "idle%"
    );
    let of = |name: &str, size: usize| {
        rows.iter()
            .find(|b| b.size == size && b.transport == name)
            .and_then(|b| b.msgs_per_s)
            .filter(|&m| m > 0.0)
    };
    let opt = |v: Option<f64>, digits: usize| match v {
        Some(x) => format!("{x:.digits$}"),
        None => "-".to_string(),
    };
    for r in rows.iter().filter(|r| r.latency.is_none()) {
        let ratio = |base: Option<f64>| match (r.msgs_per_s, base) {
            (Some(m), Some(b)) => format!("{:.2}x", m / b),
            _ => "-".to_string(),
        };
        // The slowest and the fastest repetition, over the median.
        let spread = match (r.msgs_per_s, r.msgs_per_s_reps.len()) {
            (Some(m), n) if n > 1 && m > 0.0 => {
                let lo = r
                    .msgs_per_s_reps
                    .iter()
                    .copied()
                    .fold(f64::INFINITY, f64::min);
                let hi = r.msgs_per_s_reps.iter().copied().fold(0.0, f64::max);
                format!("{:.2}-{:.2}", lo / m, hi / m)
            }
            _ => "-".to_string(),
        };
        out += &format!(
            "{:<w$} {:>6} {:>11} {:>9} {:>7} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>6}\n",
            r.transport,
            r.size,
            opt(r.msgs_per_s, 0),
            opt(r.mb_per_s, 1),
            ratio(of("shmchan", r.size)),
            ratio(of("limit-ring", r.size)),
            spread,
            short_ns(r.rtt_p50_ns),
            short_ns(r.rtt_p99_ns),
            short_ns(r.rtt_p999_ns),
            short_ns(r.wake_p50_ns),
            opt(r.idle_cpu_pct, 2),
        );
    }
    let fans: Vec<(&Row, &broadcast::Subscribers)> = rows
        .iter()
        .filter_map(|r| r.subscribers.as_ref().map(|s| (r, s)))
        .collect();
    if !fans.is_empty() {
        out += &format!(
            "\nbroadcast: msgs/s above is the publisher's; here what each subscriber received (the slowest, the mean), and what it missed (Overwrite: written over before it read it, % of those published)\n{:<w$} {:>6} {:>4} {:>11} {:>11} {:>11} {:>7} {:>9} {:>8}\n",
            "transport", "size", "subs", "pub msgs/s", "sub min/s", "sub mean/s", "min/pub", "min/spsc", "missed%"
        );
        for (r, s) in fans {
            let ratio = |base: Option<f64>| match base {
                Some(b) if b > 0.0 && s.min_msgs_per_s.is_finite() => {
                    format!("{:.2}x", s.min_msgs_per_s / b)
                }
                _ => "-".to_string(),
            };
            out += &format!(
                "{:<w$} {:>6} {:>4} {:>11} {:>11} {:>11} {:>7} {:>9} {:>8}\n",
                r.transport,
                r.size,
                s.count,
                opt(r.msgs_per_s, 0),
                format!("{:.0}", s.min_msgs_per_s),
                format!("{:.0}", s.mean_msgs_per_s),
                ratio(r.msgs_per_s),
                ratio(of("shmchan", r.size)),
                format!("{:.2}", s.missed_pct),
            );
        }
    }
    let fixed: Vec<(&Row, &latency::Latency)> = rows
        .iter()
        .filter_map(|r| r.latency.as_ref().map(|l| (r, l)))
        .collect();
    if !fixed.is_empty() {
        out += &format!(
            "\none-way latency at a fixed offered rate (from each message's intended send time)\n{:<15} {:>6} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7}\n",
            "transport", "size", "offered", "received/s", "p50", "p99", "p99.99", "max", "/limit"
        );
        let mut any_overloaded = false;
        for (r, l) in fixed {
            let limit_p50 = rows
                .iter()
                .filter(|b| b.transport == "limit-ring" && b.size == r.size)
                .filter_map(|b| b.latency.as_ref())
                .find(|b| b.rate == l.rate)
                .map(|b| b.p50_ns);
            let ratio = match limit_p50 {
                Some(b) if b > 0.0 && l.p50_ns.is_finite() => format!("{:.2}x", l.p50_ns / b),
                _ => "-".to_string(),
            };
            let overloaded = l.received_per_s < 0.95 * l.rate;
            any_overloaded |= overloaded;
            out += &format!(
                "{:<15} {:>6} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7}\n",
                r.transport,
                r.size,
                short_rate(l.rate),
                format!(
                    "{}{}",
                    short_rate(l.received_per_s),
                    if overloaded { "*" } else { "" }
                ),
                short_ns(Some(l.p50_ns)),
                short_ns(Some(l.p99_ns)),
                short_ns(Some(l.p9999_ns)),
                short_ns(Some(l.max_ns)),
                ratio,
            );
        }
        if any_overloaded {
            out += "* could not take the offered rate: latency grew for as long as the run lasted, and what it had no time to send is not counted (the percentiles are lower bounds)\n";
        }
    }
    out
}
