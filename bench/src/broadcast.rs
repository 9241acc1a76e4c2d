//! The broadcast rows: one publisher (this process) and N subscriber
//! processes of a broadcast channel (`Flavor::Broadcast`), each receiving
//! every message. `shmchan-bcast-N`: `Overflow::Block`, the publisher
//! waits for the slowest subscriber; `shmchan-bcast-ow-N`:
//! `Overflow::Overwrite`, the publisher never waits, and a subscriber it
//! laps is told how many messages it missed (`RecvError::Lagged`).
//!
//! Figures: the publisher's rate (the row's messages per second), each
//! subscriber's rate of what it was delivered and how many it missed
//! ([`BroadcastRun`], summed up over the repetitions as [`Subscribers`]);
//! for Block, the wake-up of sleeping subscribers and their CPU use while
//! the channel is idle.
//!
//! Every subscriber checks every message ([`SeqCheck`]): its length, its
//! sequence number (the last one's plus one, plus what a lag said was
//! missed) and a check word at its end, as copied out; and at the end
//! [`fan_out`] checks that what each subscriber got and missed adds up to
//! what was published (nothing missed in Block). A subscriber that finds
//! anything else fails, and so does the measurement: a broken channel
//! gives no number.
//!
//! The channel is made here before the fork, private and removed when its
//! handle drops or the harness is interrupted, as every shmchan row's; the subscribers join in their own
//! processes, and the publisher waits for all of them ([`JOIN_WAIT`])
//! before it sends its first message. Their results come back through an
//! anonymous shared mapping. When pinned, the publisher has the first CPU
//! and the subscribers share the others (on two CPUs: all on the second).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmchan::{Channel, Flavor, Options, Overflow, RecvError, Sender};

use crate::cleanup::Guarded;
use crate::os::{monotonic_ns, thread_cpu_ns, SharedMemory};
use crate::{
    count_until, guarded, processes, ring_bytes, stamp, stamp_of, Config, SingleThreaded, IDLE_FOR,
    WAKE_PAUSE, WAKE_SAMPLES,
};

/// The transports of this module: Block and Overwrite, with 1, 2 and 4
/// subscriber processes.
pub const TRANSPORTS: [&str; 6] = [
    "shmchan-bcast-1",
    "shmchan-bcast-2",
    "shmchan-bcast-4",
    "shmchan-bcast-ow-1",
    "shmchan-bcast-ow-2",
    "shmchan-bcast-ow-4",
];

/// How long a publisher waits for its subscribers to join before it gives
/// up (a subscriber process must have died).
pub const JOIN_WAIT: Duration = Duration::from_secs(10);

/// The subscribers and the overflow of a `shmchan-bcast-N` or
/// `shmchan-bcast-ow-N` transport.
pub fn parse(transport: &str) -> Option<(usize, Overflow)> {
    let (n, overflow) = match transport.strip_prefix("shmchan-bcast-ow-") {
        Some(n) => (n, Overflow::Overwrite),
        None => (transport.strip_prefix("shmchan-bcast-")?, Overflow::Block),
    };
    n.parse().ok().filter(|&n| n > 0).map(|n| (n, overflow))
}

/// A private broadcast channel for `size`-byte messages and `subscribers`
/// subscribers (the ring of the other shmchan rows), removed on drop or
/// when the harness is interrupted.
fn channel(size: usize, subscribers: usize, overflow: Overflow) -> Guarded {
    guarded(
        Options::default()
            .flavor(Flavor::Broadcast)
            .capacity(ring_bytes(size))
            .max_message(size.max(8))
            .max_subscribers(subscribers)
            .overflow(overflow),
    )
}

/// The check word of [`mark`]: the sequence number XOR this.
const CHECK: u64 = 0x9e37_79b9_7f4a_7c15;

/// Marks a message with its sequence number: the number in its first 8
/// bytes (as [`stamp`] writes it: fewer in a shorter message) and, in a
/// message of 16 bytes or more, a check word derived from it in its last 8.
pub fn mark(buf: &mut [u8], seq: u64) {
    stamp(buf, seq);
    let n = buf.len();
    if n >= 16 {
        buf[n - 8..].copy_from_slice(&(seq ^ CHECK).to_le_bytes());
    }
}

/// Checks a subscriber's stream of [`mark`]ed messages: each of the
/// expected size, numbered one more than the last (from 0), with its check
/// word; a lag moves the expected number on by what was missed. Panics at
/// the first message that is not what it should be.
#[derive(Debug, Clone)]
pub struct SeqCheck {
    size: usize,
    next: u64,
    received: u64,
    missed: u64,
}

impl SeqCheck {
    /// A check of a stream of `size`-byte messages, expecting number 0.
    pub fn new(size: usize) -> SeqCheck {
        SeqCheck {
            size,
            next: 0,
            received: 0,
            missed: 0,
        }
    }

    /// Checks the next message.
    #[inline]
    pub fn message(&mut self, m: &[u8]) {
        let seq = self.next;
        assert_eq!(
            m.len(),
            self.size,
            "message {seq}: {} bytes, not {}",
            m.len(),
            self.size
        );
        let k = m.len().min(8);
        let mut head = [0u8; 8];
        head[..k].copy_from_slice(&m[..k]);
        let want = seq.to_le_bytes();
        if head[..k] != want[..k] {
            panic!(
                "message {seq}: numbered {} (low {k} bytes)",
                u64::from_le_bytes(head)
            );
        }
        if m.len() >= 16 {
            let mut tail = [0u8; 8];
            tail.copy_from_slice(&m[m.len() - 8..]);
            let tail = u64::from_le_bytes(tail);
            if tail != seq ^ CHECK {
                panic!(
                    "message {seq}: check word {tail:#x}, not {:#x} (a torn or foreign message)",
                    seq ^ CHECK
                );
            }
        }
        self.next += 1;
        self.received += 1;
    }

    /// `missed` messages were lost (an overwriting publisher's lap): the
    /// next message is that many further on.
    pub fn lagged(&mut self, missed: u64) {
        assert!(missed > 0, "a lag of no messages after {}", self.next);
        self.next += missed;
        self.missed += missed;
    }

    /// Messages checked.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Messages reported missed.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

/// What one subscriber measured in one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubscriberRun {
    /// Messages it received (and checked).
    pub received: u64,
    /// Messages it was told it missed (Overwrite; 0 in Block).
    pub missed: u64,
    /// Its rate of received messages, from its first to its last (as
    /// [`count_until`] counts).
    pub msgs_per_s: f64,
}

/// What one broadcast run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastRun {
    /// Messages published.
    pub published: u64,
    /// The publisher's rate, from its first send to the return of its last.
    pub msgs_per_s: f64,
    /// Each subscriber's.
    pub subscribers: Vec<SubscriberRun>,
}

/// A broadcast row's subscriber figures: medians over the repetitions of
/// each run's figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribers {
    /// Subscriber processes.
    pub count: usize,
    /// The slowest subscriber's rate of the messages it received.
    pub min_msgs_per_s: f64,
    /// The mean of the subscribers' rates.
    pub mean_msgs_per_s: f64,
    /// Messages a subscriber missed (written over before it read them:
    /// Overwrite only), the mean over the subscribers.
    pub missed: f64,
    /// The same in percent of the messages published.
    pub missed_pct: f64,
}

impl Subscribers {
    /// The figures of `runs` (`None` if there are none).
    pub fn of(runs: &[BroadcastRun]) -> Option<Subscribers> {
        let first = runs.first()?;
        let med = |f: &dyn Fn(&BroadcastRun) -> f64| {
            crate::median(runs.iter().map(f).collect()).unwrap_or(f64::NAN)
        };
        let mean = |r: &BroadcastRun, f: fn(&SubscriberRun) -> f64| {
            r.subscribers.iter().map(f).sum::<f64>() / r.subscribers.len().max(1) as f64
        };
        Some(Subscribers {
            count: first.subscribers.len(),
            min_msgs_per_s: med(&|r| {
                r.subscribers
                    .iter()
                    .map(|s| s.msgs_per_s)
                    .fold(f64::INFINITY, f64::min)
            }),
            mean_msgs_per_s: med(&|r| mean(r, |s| s.msgs_per_s)),
            missed: med(&|r| mean(r, |s| s.missed as f64)),
            missed_pct: med(&|r| 100.0 * mean(r, |s| s.missed as f64) / r.published.max(1) as f64),
        })
    }
}

/// A word array in anonymous shared memory, made before a fork: one slot
/// per child, a status word and `words` result words each.
struct Slots {
    mem: SharedMemory,
    n: usize,
    words: usize,
}

impl Slots {
    fn new(n: usize, words: usize) -> Slots {
        Slots {
            mem: SharedMemory::new((n * (words + 1) * 8).max(8)).expect("mmap result slots"),
            n,
            words,
        }
    }

    fn word(&self, i: usize, w: usize) -> &AtomicU64 {
        assert!(i < self.n && w <= self.words);
        // SAFETY: i < n and w <= words: inside the zeroed, page-aligned
        // mapping of n * (words + 1) words, which lives as long as self; a
        // zero is a valid AtomicU64.
        unsafe {
            &*self
                .mem
                .as_ptr()
                .cast::<AtomicU64>()
                .add(i * (self.words + 1) + w)
        }
    }

    /// Child `i`'s results; then its status says they are there.
    fn put(&self, i: usize, vals: &[u64]) {
        assert_eq!(vals.len(), self.words);
        for (w, &v) in vals.iter().enumerate() {
            // Relaxed: published by the status store below.
            self.word(i, 1 + w).store(v, Ordering::Relaxed);
        }
        // Release: pairs with the Acquire load in `get`.
        self.word(i, 0).store(1, Ordering::Release);
    }

    /// Child `i`'s results, if it stored them.
    fn get(&self, i: usize) -> Option<Vec<u64>> {
        // Acquire: pairs with the Release store in `put`.
        (self.word(i, 0).load(Ordering::Acquire) == 1).then(|| {
            (1..=self.words)
                .map(|w| self.word(i, w).load(Ordering::Relaxed))
                .collect()
        })
    }

    /// Child `i`'s results; panics if it failed (its panic message was
    /// printed by its process) or died.
    fn expect(&self, i: usize, what: &str) -> Vec<u64> {
        self.get(i).unwrap_or_else(|| {
            panic!(
                "{what}: subscriber {i} of {} failed (its message is above) or died; no figure",
                self.n
            )
        })
    }
}

/// Runs `subscriber(i)` in `n` forked processes and `publisher` here
/// (pinned as [`crate::two_processes`] pins); `publisher` returns the
/// messages it published and the seconds it took. Each subscriber's
/// results come back through shared memory; a subscriber that failed (it
/// panics at anything wrong) or whose messages received and missed do not
/// add up to those published makes this panic: no figure for a broken
/// channel.
pub fn fan_out(
    one: &SingleThreaded,
    pinned: bool,
    n: usize,
    subscriber: impl Fn(usize) -> SubscriberRun,
    publisher: impl FnOnce() -> (u64, f64),
) -> BroadcastRun {
    let slots = Slots::new(n, 3);
    let (published, secs) = processes(
        one,
        pinned,
        n,
        |i| {
            let r = subscriber(i);
            slots.put(i, &[r.received, r.missed, r.msgs_per_s.to_bits()]);
        },
        publisher,
    );
    let subscribers = (0..n)
        .map(|i| {
            let w = slots.expect(i, "broadcast");
            let r = SubscriberRun {
                received: w[0],
                missed: w[1],
                msgs_per_s: f64::from_bits(w[2]),
            };
            assert_eq!(
                r.received + r.missed,
                published,
                "subscriber {i} of {n} received {} and missed {} of the {published} messages published",
                r.received,
                r.missed
            );
            r
        })
        .collect();
    BroadcastRun {
        published,
        msgs_per_s: if secs > 0.0 {
            published as f64 / secs
        } else {
            0.0
        },
        subscribers,
    }
}

/// Calls `send` with [`mark`]ed `size`-byte messages numbered from 0 for
/// `duration` (checking the clock every 256); returns how many it sent and
/// the seconds from the first send to the return of the last.
pub fn publish_for(duration: Duration, size: usize, mut send: impl FnMut(&[u8])) -> (u64, f64) {
    let mut buf = vec![0u8; size];
    let start = Instant::now();
    let end = start + duration;
    let mut seq = 0u64;
    loop {
        for _ in 0..256 {
            mark(&mut buf, seq);
            send(&buf);
            seq += 1;
        }
        if Instant::now() >= end {
            break;
        }
    }
    (seq, start.elapsed().as_secs_f64())
}

/// Waits until `n` subscribers have joined `tx`'s channel, at most
/// [`JOIN_WAIT`].
fn wait_for_subscribers(tx: &Sender, n: usize) {
    let start = Instant::now();
    while tx.subscribers() < n {
        if start.elapsed() > JOIN_WAIT {
            panic!(
                "only {} of {n} subscribers joined in {} s",
                tx.subscribers(),
                JOIN_WAIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// One subscriber of a throughput run: receives until `Disconnected`,
/// checking every message. Block: `recv` and a copy out of the ring (as
/// the `shmchan` row does); Overwrite: `recv_into` (the one copy the
/// library makes and checks against the publisher's laps).
fn subscribe(ch: &Channel, size: usize, overwrite: bool) -> SubscriberRun {
    let mut rx = ch.receiver().expect("subscribe");
    // As the other rows' receivers.
    rx.set_spin_limit(1000);
    let mut check = SeqCheck::new(size);
    let mut buf = vec![0u8; size];
    let mut copy = Vec::with_capacity(size);
    let (n, secs) = count_until(|| loop {
        let r = if overwrite {
            rx.recv_into(&mut copy).map(|_| check.message(&copy))
        } else {
            rx.recv().map(|m| {
                check.message(&m);
                buf.copy_from_slice(&m);
            })
        };
        match r {
            Ok(()) => return true,
            Err(RecvError::Lagged { missed }) if overwrite => check.lagged(missed),
            Err(RecvError::Disconnected) => return false,
            Err(e) => panic!("subscriber, after {} messages: {e}", check.received()),
        }
    });
    std::hint::black_box((&buf, &copy));
    SubscriberRun {
        received: check.received(),
        missed: check.missed(),
        msgs_per_s: if secs > 0.0 { n as f64 / secs } else { 0.0 },
    }
}

/// Streams for `cfg.duration` from the publisher (here) to the
/// subscribers of `transport` (child processes).
pub fn throughput(
    one: &SingleThreaded,
    transport: &str,
    size: usize,
    cfg: &Config,
) -> BroadcastRun {
    let (n, overflow) = parse(transport).expect("a broadcast transport");
    let overwrite = overflow == Overflow::Overwrite;
    let ch = channel(size, n, overflow);
    let duration = cfg.duration;
    fan_out(
        one,
        cfg.pin,
        n,
        |_| subscribe(&ch, size, overwrite),
        || {
            let mut tx = ch.sender().expect("publisher");
            wait_for_subscribers(&tx, n);
            publish_for(duration, size, |m| tx.send(m).expect("publish"))
            // The publisher drops here: the subscribers get Disconnected.
        },
    )
}

/// Wake-ups of sleeping subscribers (spin limit 0), as the other rows'
/// (`crate::wake_ups`): `WAKE_SAMPLES` (100) messages, one every
/// `WAKE_PAUSE` (2 ms), each carrying its send time (and, in 16 bytes or more,
/// its number in bytes 8..16); nanoseconds from each send to each
/// subscriber's return with it, every subscriber's samples together,
/// sorted. Each subscriber checks that it got every message, in order.
pub fn wake_ups(one: &SingleThreaded, transport: &str, size: usize, cfg: &Config) -> Vec<f64> {
    let (n, overflow) = parse(transport).expect("a broadcast transport");
    let size = size.max(8);
    let ch = channel(size, n, overflow);
    let slots = Slots::new(n, WAKE_SAMPLES);
    processes(
        one,
        cfg.pin,
        n,
        |i| {
            let mut rx = ch.receiver().expect("subscribe");
            rx.set_spin_limit(0);
            let mut got: Vec<u64> = Vec::with_capacity(WAKE_SAMPLES);
            let mut last_sent = 0;
            loop {
                match rx.recv() {
                    Ok(m) => {
                        let now = monotonic_ns();
                        assert_eq!(m.len(), size, "wake-up message {}: its length", got.len());
                        assert!(got.len() < WAKE_SAMPLES, "more messages than were sent");
                        let sent = stamp_of(&m);
                        assert!(
                            sent > last_sent,
                            "wake-up message {}: out of order",
                            got.len()
                        );
                        if size >= 16 {
                            assert_eq!(stamp_of(&m[8..]), got.len() as u64, "wake-up message");
                        }
                        last_sent = sent;
                        got.push(now.saturating_sub(sent));
                    }
                    Err(RecvError::Disconnected) => break,
                    Err(e) => panic!("subscriber, after {} wake-ups: {e}", got.len()),
                }
            }
            assert_eq!(got.len(), WAKE_SAMPLES, "wake-up messages received");
            slots.put(i, &got);
        },
        || {
            let mut tx = ch.sender().expect("publisher");
            wait_for_subscribers(&tx, n);
            let mut buf = vec![0u8; size];
            for i in 0..WAKE_SAMPLES {
                std::thread::sleep(WAKE_PAUSE);
                if size >= 16 {
                    buf[8..16].copy_from_slice(&(i as u64).to_le_bytes());
                }
                stamp(&mut buf, monotonic_ns());
                tx.send(&buf).expect("publish");
            }
        },
    );
    let mut samples: Vec<f64> = (0..n)
        .flat_map(|i| slots.expect(i, "broadcast wake-ups"))
        .map(|ns| ns as f64)
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples
}

/// The subscribers' CPU use (percent of a core, the mean over them) while
/// they wait on a channel whose publisher, once all have joined, sends
/// nothing for `IDLE_FOR` (1 s) and then leaves.
pub fn idle_cpu(one: &SingleThreaded, transport: &str, cfg: &Config) -> f64 {
    let (n, overflow) = parse(transport).expect("a broadcast transport");
    let ch = channel(64, n, overflow);
    let slots = Slots::new(n, 1);
    processes(
        one,
        cfg.pin,
        n,
        |i| {
            let mut rx = ch.receiver().expect("subscribe");
            let (cpu, wall) = (thread_cpu_ns(), Instant::now());
            // The one receive ends when the publisher leaves.
            match rx.recv() {
                Ok(_) => panic!("a message on an idle channel"),
                Err(RecvError::Disconnected) => {}
                Err(e) => panic!("idle subscriber: {e}"),
            }
            let pct =
                100.0 * (thread_cpu_ns() - cpu) as f64 / wall.elapsed().as_nanos().max(1) as f64;
            slots.put(i, &[pct.to_bits()]);
        },
        || {
            let tx = ch.sender().expect("publisher");
            wait_for_subscribers(&tx, n);
            std::thread::sleep(IDLE_FOR);
        },
    );
    (0..n)
        .map(|i| f64::from_bits(slots.expect(i, "broadcast idle")[0]))
        .sum::<f64>()
        / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(parse("shmchan-bcast-1"), Some((1, Overflow::Block)));
        assert_eq!(parse("shmchan-bcast-4"), Some((4, Overflow::Block)));
        assert_eq!(parse("shmchan-bcast-ow-2"), Some((2, Overflow::Overwrite)));
        assert_eq!(parse("shmchan-bcast-0"), None);
        assert_eq!(parse("shmchan-bcast-ow-"), None);
        assert_eq!(parse("shmchan-mpsc-1"), None);
        for t in TRANSPORTS {
            assert!(parse(t).is_some(), "{t}");
        }
    }

    #[test]
    fn the_check_takes_a_stream_with_its_lags() {
        for size in [1, 8, 15, 16, 64] {
            let mut c = SeqCheck::new(size);
            let mut buf = vec![0u8; size];
            for seq in (0..10).chain(15..20) {
                if seq == 15 {
                    c.lagged(5);
                }
                mark(&mut buf, seq);
                c.message(&buf);
            }
            assert_eq!((c.received(), c.missed()), (15, 5), "{size}");
        }
    }

    fn fails(f: impl FnOnce() + std::panic::UnwindSafe) -> bool {
        std::panic::catch_unwind(f).is_err()
    }

    #[test]
    fn the_check_refuses_what_is_wrong() {
        let good = |seq| {
            let mut b = vec![0u8; 64];
            mark(&mut b, seq);
            b
        };
        // A gap that no lag explains.
        assert!(fails(|| {
            let mut c = SeqCheck::new(64);
            c.message(&good(0));
            c.message(&good(2));
        }));
        // A message again.
        assert!(fails(|| {
            let mut c = SeqCheck::new(64);
            c.message(&good(0));
            c.message(&good(0));
        }));
        // A torn message: the head of one, the end of another.
        assert!(fails(|| {
            let mut torn = good(0);
            torn[32..].copy_from_slice(&good(7)[32..]);
            SeqCheck::new(64).message(&torn);
        }));
        // The wrong length.
        assert!(fails(|| SeqCheck::new(64).message(&good(0)[..63])));
        // A lag of nothing.
        assert!(fails(|| SeqCheck::new(64).lagged(0)));
    }

    #[test]
    fn subscriber_figures_are_medians_of_each_run() {
        let run = |published, rates: &[f64], missed: &[u64]| BroadcastRun {
            published,
            msgs_per_s: 1.0,
            subscribers: rates
                .iter()
                .zip(missed)
                .map(|(&r, &m)| SubscriberRun {
                    received: published - m,
                    missed: m,
                    msgs_per_s: r,
                })
                .collect(),
        };
        let s = Subscribers::of(&[
            run(100, &[10.0, 30.0], &[0, 20]),
            run(100, &[20.0, 40.0], &[10, 30]),
            run(100, &[5.0, 5.0], &[0, 0]),
        ])
        .unwrap();
        assert_eq!(s.count, 2);
        assert_eq!(s.min_msgs_per_s, 10.0);
        assert_eq!(s.mean_msgs_per_s, 20.0);
        assert_eq!(s.missed, 10.0);
        assert_eq!(s.missed_pct, 10.0);
        assert_eq!(Subscribers::of(&[]), None);
    }
}
