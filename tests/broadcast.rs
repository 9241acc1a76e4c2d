//! Broadcast channels with real processes: one publisher, several
//! subscriber processes that each get every message (Block), subscribers
//! killed at random without stalling the publisher or costing the others
//! anything, an overwriting publisher with a slow subscriber whose losses
//! are counted exactly, and the limits (one publisher, the subscriber
//! slots).

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use shmchan::{
    Channel, Flavor, OpenError, Options, Overflow, RecvError, Start, TryRecvError, TrySendError,
};

const T: Duration = Duration::from_secs(120);

fn broadcast(capacity: usize, max_message: usize, overflow: Overflow) -> Options {
    Options::default()
        .flavor(Flavor::Broadcast)
        .capacity(capacity)
        .max_message(max_message)
        .overflow(overflow)
}

/// Waits until `n` subscribers have joined the channel of `tx`.
fn wait_for_subscribers(tx: &shmchan::Sender, n: usize) {
    assert!(
        wait_until(T, || tx.subscribers() >= n),
        "only {} of {n} subscribers joined",
        tx.subscribers()
    );
}

/// A subscriber that receives until `Disconnected`, checking each message
/// against the stream (sequence numbers 0, 1, 2, ... from its first one);
/// stores the count in `out`. Returns the child's exit code: 0 when every
/// message came, intact and in order.
fn checking_subscriber(
    key: shmchan::Key,
    stream: &Stream,
    out: &std::sync::atomic::AtomicU64,
) -> i32 {
    let ch = Channel::open(key).unwrap();
    let mut rx = ch.receiver().unwrap();
    let mut seq = 0u64;
    loop {
        match rx.recv() {
            Ok(m) => {
                // A panic in a child reaches stderr (see common::spawn).
                if let Err(e) = stream.check(seq, &m) {
                    panic!("subscriber {}: {e}", std::process::id());
                }
                seq += 1;
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("subscriber {}: {e}", std::process::id()),
        }
    }
    out.store(seq, Ordering::SeqCst);
    0
}

/// One publisher and three subscriber processes, 1,000,000 messages of
/// varying length through a 64 KiB ring (Block): each subscriber gets every
/// message, intact (every byte compared) and in order, then
/// `Disconnected`; nothing is lost though the publisher outruns the
/// slowest subscriber (it waits for it).
#[test]
fn three_subscriber_processes_each_get_a_million_messages_in_order() {
    const N: u64 = 1_000_000;
    const SUBS: usize = 3;
    let (ch, guard) = fresh(broadcast(64 << 10, 256, Overflow::Block));
    let key = ch.key();
    let dog = Watchdog::new(key, Duration::from_secs(300));
    let stream = Stream::new(120);
    let counts = SharedCounters::new(SUBS);
    let mut tx = ch.sender().unwrap();
    let mut kids: Vec<Child> = (0..SUBS)
        .map(|i| {
            let (stream, counts) = (&stream, &counts);
            spawn(move || checking_subscriber(key, stream, counts.at(i)))
        })
        .collect();
    wait_for_subscribers(&tx, SUBS);
    let mut buf = vec![0u8; stream.max()];
    for seq in 0..N {
        let n = stream.len(seq);
        stream.fill(seq, &mut buf[..n]);
        // Every 5th through a grant (zero-copy), the rest copied.
        if seq % 5 == 0 {
            let mut g = tx.reserve(n).unwrap();
            g.copy_from_slice(&buf[..n]);
            g.commit();
        } else {
            tx.send(&buf[..n]).unwrap();
        }
    }
    drop(tx);
    for (i, k) in kids.iter_mut().enumerate() {
        assert_eq!(k.wait_timeout(T), 0, "subscriber {i}");
        assert_eq!(counts.at(i).load(Ordering::SeqCst), N, "subscriber {i}");
    }
    assert!(!dog.fired(), "the watchdog removed the channel");
    let stats = ch.stats().unwrap();
    assert_eq!(stats.counters.sent_messages, N);
    assert_eq!(stats.counters.received_messages, N * SUBS as u64);
    finish(ch, guard);
}

/// Shared words of the kill test.
const STOP: usize = 0;
/// The publisher's messages sent, and its longest single send, in µs.
const SENT: usize = 1;
const LONGEST_US: usize = 2;
const RELEASED: usize = 3;
/// What steady subscriber `i` received (4 + i).
const GOT: usize = 4;

/// A subscriber SIGKILLed at random moments and restarted, 100 times,
/// while two steady subscribers stream from a Block publisher: the steady
/// ones get every message, intact and in order; the publisher goes on
/// after each death within the recovery timeout plus one poll (its
/// longest single send is bounded by that, plus scheduling slack); every
/// dead subscriber's slot is released or taken over, so the 4 slots never
/// run out.
#[test]
fn subscribers_killed_at_random_stall_nobody() {
    const KILLS: usize = 100;
    const RECOVERY: Duration = Duration::from_millis(40);
    let (ch, guard) = fresh(broadcast(16 << 10, 200, Overflow::Block).max_subscribers(4));
    let key = ch.key();
    let dog = Watchdog::new(key, Duration::from_secs(300));
    let stream = Stream::new(100);
    let shared = SharedWords::new(8);
    let (st, sh) = (&stream, &shared);
    let mut steady: Vec<Child> = (0..2)
        .map(|i| spawn(move || checking_subscriber(key, st, sh.at(GOT + i))))
        .collect();
    let mut publisher = spawn(move || {
        let ch = Channel::open(key).unwrap();
        let mut tx = ch.sender().unwrap();
        tx.set_recovery_timeout(RECOVERY);
        wait_for_subscribers(&tx, 2);
        let mut buf = vec![0u8; st.max()];
        let mut longest = Duration::ZERO;
        let mut seq = 0u64;
        while sh.at(STOP).load(Ordering::SeqCst) == 0 {
            let n = st.len(seq);
            st.fill(seq, &mut buf[..n]);
            let t = Instant::now();
            tx.send(&buf[..n]).unwrap();
            longest = longest.max(t.elapsed());
            seq += 1;
            sh.at(SENT).store(seq, Ordering::SeqCst);
        }
        sh.at(LONGEST_US)
            .store(longest.as_micros() as u64, Ordering::SeqCst);
        sh.at(RELEASED)
            .store(tx.released_subscribers(), Ordering::SeqCst);
        0
    });
    // The victims come once the publisher has begun: before, one could be
    // among the two subscribers it waits for, and it could then start with
    // a steady one not yet there.
    assert!(
        wait_until(T, || shared.at(SENT).load(Ordering::SeqCst) > 0),
        "the publisher never began"
    );
    let mut rng = Rng::new();
    for _ in 0..KILLS {
        // A victim that joins and reads at full speed (checking what it
        // gets) until it is killed.
        let mut victim = spawn(move || {
            let mut rx = Channel::open(key).unwrap().receiver().unwrap();
            let mut last: Option<u64> = None;
            loop {
                match rx.recv() {
                    Ok(m) => {
                        let seq = u64::from_le_bytes({
                            let mut b = [0u8; 8];
                            let k = m.len().min(8);
                            b[..k].copy_from_slice(&m[..k]);
                            b
                        });
                        // Short messages carry part of the stamp only.
                        if m.len() >= 8 {
                            if let Some(l) = last {
                                assert!(seq > l, "victim: {seq} after {l}");
                            }
                            last = Some(seq);
                        }
                    }
                    Err(e) => panic!("victim: {e}"),
                }
            }
        });
        std::thread::sleep(Duration::from_micros(2_000 + rng.below(20_000)));
        victim.kill();
    }
    // The publisher goes on after the last death too.
    let sent = shared.at(SENT).load(Ordering::SeqCst);
    assert!(
        wait_until(T, || shared.at(SENT).load(Ordering::SeqCst) > sent + 1000),
        "the publisher stalled after the last kill"
    );
    shared.at(STOP).store(1, Ordering::SeqCst);
    assert_eq!(publisher.wait_timeout(T), 0);
    let sent = shared.at(SENT).load(Ordering::SeqCst);
    for (i, k) in steady.iter_mut().enumerate() {
        assert_eq!(k.wait_timeout(T), 0, "steady subscriber {i}");
        assert_eq!(
            shared.at(GOT + i).load(Ordering::SeqCst),
            sent,
            "steady {i}"
        );
    }
    let longest = Duration::from_micros(shared.at(LONGEST_US).load(Ordering::SeqCst));
    // The recovery timeout, one poll (a quarter of it), and slack for a
    // loaded two-core machine (a process start, the kill and the reaping).
    let bound = RECOVERY + RECOVERY / 4 + Duration::from_millis(250);
    assert!(
        longest <= bound,
        "a send waited {longest:?} (bound {bound:?})"
    );
    eprintln!(
        "{sent} sent, longest send {longest:?}, {} slots released by the publisher",
        shared.at(RELEASED).load(Ordering::SeqCst)
    );
    assert!(!dog.fired(), "the watchdog removed the channel");
    finish(ch, guard);
}

/// Overwrite: a publisher that never waits, a subscriber that keeps up and
/// one that sleeps now and then. Each one's messages received plus
/// messages missed equals what was published, every message received is
/// intact (every byte compared: no torn message), in order, and right
/// after a `Lagged { missed }` comes exactly the message `missed` past the
/// last one received. The slow one did lag; the channel's statistics hold
/// its lags.
#[test]
fn overwrite_a_slow_subscriber_counts_exactly_what_it_missed() {
    const N: u64 = 300_000;
    let (ch, guard) = fresh(broadcast(8 << 10, 200, Overflow::Overwrite));
    let key = ch.key();
    let dog = Watchdog::new(key, Duration::from_secs(300));
    let stream = Stream::new(100);
    // Per subscriber: received, missed, lags.
    let counts = SharedCounters::new(6);
    let mut tx = ch.sender().unwrap();
    let mut kids: Vec<Child> = (0..2)
        .map(|i| {
            let (stream, counts) = (&stream, &counts);
            spawn(move || {
                let mut rx = Channel::open(key).unwrap().receiver().unwrap();
                let (mut next, mut got, mut missed, mut lags) = (0u64, 0u64, 0u64, 0u64);
                loop {
                    match rx.recv() {
                        Ok(m) => {
                            if let Err(e) = stream.check(next, &m) {
                                panic!("subscriber {i}: {e}");
                            }
                            next += 1;
                            got += 1;
                            if i == 1 && got % 500 == 0 {
                                std::thread::sleep(Duration::from_millis(2));
                            }
                        }
                        Err(RecvError::Lagged { missed: n }) => {
                            assert!(n > 0);
                            next += n;
                            missed += n;
                            lags += 1;
                        }
                        Err(RecvError::Disconnected) => break,
                        Err(e) => panic!("subscriber {i}: {e}"),
                    }
                }
                counts.at(3 * i).store(got, Ordering::SeqCst);
                counts.at(3 * i + 1).store(missed, Ordering::SeqCst);
                counts.at(3 * i + 2).store(lags, Ordering::SeqCst);
                // Keep the slot (and its counters) for the parent's look.
                drop(rx);
                0
            })
        })
        .collect();
    wait_for_subscribers(&tx, 2);
    let mut buf = vec![0u8; stream.max()];
    for seq in 0..N {
        let n = stream.len(seq);
        stream.fill(seq, &mut buf[..n]);
        match tx.try_send(&buf[..n]) {
            Ok(()) => {}
            Err(e) => panic!("an overwriting publisher never waits: {e}"),
        }
    }
    drop(tx);
    for (i, k) in kids.iter_mut().enumerate() {
        assert_eq!(k.wait_timeout(T), 0, "subscriber {i}");
        let (got, missed) = (
            counts.at(3 * i).load(Ordering::SeqCst),
            counts.at(3 * i + 1).load(Ordering::SeqCst),
        );
        assert_eq!(got + missed, N, "subscriber {i}: {got} + {missed}");
    }
    let lags = counts.at(5).load(Ordering::SeqCst);
    assert!(lags > 0, "the slow subscriber never lagged");
    eprintln!(
        "fast: {} missed in {} lags; slow: {} missed in {lags} lags",
        counts.at(1).load(Ordering::SeqCst),
        counts.at(2).load(Ordering::SeqCst),
        counts.at(4).load(Ordering::SeqCst),
    );
    assert!(!dog.fired(), "the watchdog removed the channel");
    finish(ch, guard);
}

/// One publisher (a second is `Busy`); subscribers up to the slots
/// (`TooManySubscribers`); a killed subscriber's slot is taken over by the
/// next one to join; options that do not suit the flavor are refused.
#[test]
fn one_publisher_and_as_many_subscribers_as_slots() {
    let (ch, guard) = fresh(broadcast(4096, 100, Overflow::Block).max_subscribers(2));
    let tx = ch.sender().unwrap();
    assert!(matches!(ch.sender(), Err(OpenError::Busy)));
    let a = ch.receiver().unwrap();
    let ready = Notify::new();
    let mut dead = spawn(|| {
        let _rx = Channel::open(ch.key()).unwrap().receiver().unwrap();
        ready.notify();
        sleep_forever()
    });
    assert!(ready.wait(T));
    assert!(matches!(
        ch.receiver(),
        Err(OpenError::TooManySubscribers { slots: 2 })
    ));
    dead.kill();
    let b = ch
        .receiver()
        .expect("the dead subscriber's slot is taken over");
    assert_eq!(tx.subscribers(), 2);
    drop((a, b));
    assert_eq!(tx.subscribers(), 0);
    drop(tx);
    for bad in [
        Options::default().overflow(Overflow::Overwrite),
        Options::default().max_subscribers(4),
        Options::default().flavor(Flavor::Broadcast).max_senders(4),
        Options::default()
            .flavor(Flavor::Broadcast)
            .max_subscribers(0),
    ] {
        assert!(matches!(
            Channel::create(unique_key(), bad),
            Err(OpenError::InvalidOptions(_))
        ));
    }
    finish(ch, guard);
}

/// A publisher with no subscriber keeps publishing (it never waits nor
/// says `Disconnected`: it writes over its oldest messages). A subscriber
/// that joins at the newest message gets only what comes after it; one
/// that joins at the oldest gets what the ring still holds, in order, up
/// to the newest. Both drain and get `Disconnected` once the publisher is
/// gone; a subscriber that left stops holding the publisher back.
#[test]
fn publishing_without_subscribers_and_joining_at_newest_or_oldest() {
    let (ch, guard) = fresh(broadcast(4096, 100, Overflow::Block));
    let mut tx = ch.sender().unwrap();
    for i in 0..10_000u32 {
        tx.try_send(&i.to_le_bytes())
            .expect("a publisher with no subscriber never waits");
    }
    let mut newest = ch.receiver_at(Start::Newest).unwrap();
    let mut oldest = ch.receiver_at(Start::Oldest).unwrap();
    assert_eq!(newest.try_recv().unwrap_err(), TryRecvError::Empty);
    let mut kept = Vec::new();
    while let Ok(m) = oldest.try_recv() {
        kept.push(u32::from_le_bytes(m[..4].try_into().unwrap()));
    }
    assert!(kept.len() > 100, "{} kept", kept.len());
    assert_eq!(*kept.last().unwrap(), 9_999);
    assert!(kept.windows(2).all(|w| w[1] == w[0] + 1));
    tx.send(b"after").unwrap();
    assert_eq!(&*newest.recv().unwrap(), b"after");
    assert_eq!(&*oldest.recv().unwrap(), b"after");
    // `newest` stops reading: the ring fills and the publisher waits ...
    let mut n = 0;
    while tx.try_send(&[0; 64]).is_ok() {
        n += 1;
        while oldest.try_recv().is_ok() {}
    }
    assert!(n > 10);
    assert!(matches!(tx.try_send(&[0; 64]), Err(TrySendError::Full)));
    // ... until it leaves.
    drop(newest);
    tx.try_send(&[1; 64]).unwrap();
    drop(tx);
    let mut left = Vec::new();
    loop {
        match oldest.recv() {
            Ok(m) => left.push(m.to_vec()),
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        left,
        vec![vec![1u8; 64]],
        "what was left, then Disconnected"
    );
    drop(oldest);
    finish(ch, guard);
}

/// A subscriber asleep in another process (a blocking `recv`) is woken by
/// each publish: 200 messages sent one by one, each once the subscriber
/// is asleep (its slot's flag announced and the process in the kernel: the
/// flag alone is also up while it looks at the ring once more before the
/// futex wait, and a send then needs no wake-up), all arrive with a median
/// delay under 10 ms (its 100 ms poll alone would give about 50), and its
/// sleeps are counted, one at least per message; the publisher's departure
/// wakes it with `Disconnected`.
#[test]
fn a_sleeping_subscriber_is_woken_by_each_publish_and_by_the_departure() {
    let (ch, guard) = fresh(broadcast(4096, 100, Overflow::Block));
    let key = ch.key();
    let got = SharedCounters::new(1);
    let g = &got;
    let mut tx = ch.sender().unwrap();
    let mut kid = spawn(move || {
        let mut rx = Channel::open(key).unwrap().receiver().unwrap();
        rx.set_spin_limit(0);
        loop {
            match rx.recv() {
                Ok(m) => {
                    assert_eq!(&*m, &g.at(0).load(Ordering::SeqCst).to_le_bytes());
                    g.at(0).fetch_add(1, Ordering::SeqCst);
                }
                Err(RecvError::Disconnected) => return 0,
                Err(e) => panic!("{e}"),
            }
        }
    });
    wait_for_subscribers(&tx, 1);
    let mut delays = Vec::new();
    let pid = kid.pid();
    let asleep = || ch.stats().unwrap().recv_waiters == 1 && kernel_asleep(pid);
    for i in 0..200u64 {
        // Wait until the subscriber is asleep again.
        assert!(
            wait_until(T, asleep),
            "message {i}: the subscriber never slept"
        );
        let t = Instant::now();
        tx.send(&i.to_le_bytes()).unwrap();
        assert!(wait_until(T, || got.at(0).load(Ordering::SeqCst) == i + 1));
        delays.push(t.elapsed().as_nanos() as u64);
    }
    // Woken by the publish (a futex wake of its slot), not by its 100 ms
    // poll, which would put the median near 50 ms.
    let median = median_of(&mut delays);
    assert!(median < 10_000_000, "median wake-up {median} ns");
    assert!(wait_until(T, asleep));
    let t = Instant::now();
    drop(tx);
    assert_eq!(kid.wait_timeout(T), 0);
    assert!(
        t.elapsed() < Duration::from_millis(90),
        "woken by the poll, not the departure"
    );
    assert!(ch.stats().unwrap().counters.receiver_sleeps >= 200);
    finish(ch, guard);
}

/// Async subscribers: `recv_async` gets every message of a Block
/// publisher in another process, in order and intact; the stream of an
/// Overwrite subscriber that dawdles goes on past its lags, and its items
/// plus `missed()` are what was published, each item intact.
#[test]
fn async_subscribers_block_and_overwrite() {
    const N: u64 = 100_000;
    for overflow in [Overflow::Block, Overflow::Overwrite] {
        let (ch, guard) = fresh(broadcast(8 << 10, 200, overflow));
        let key = ch.key();
        let stream = Stream::new(100);
        let mut rx = ch.receiver().unwrap();
        let st = &stream;
        let mut publisher = spawn(move || {
            let mut tx = Channel::open(key).unwrap().sender().unwrap();
            let mut buf = vec![0u8; st.max()];
            for seq in 0..N {
                let n = st.len(seq);
                st.fill(seq, &mut buf[..n]);
                tx.send(&buf[..n]).unwrap();
            }
            0
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (got, missed) = rt.block_on(async {
            if overflow == Overflow::Block {
                let mut seq = 0;
                loop {
                    match rx.recv_async().await {
                        Ok(m) => {
                            stream.check(seq, &m).unwrap();
                            seq += 1;
                        }
                        Err(RecvError::Disconnected) => break (seq, 0),
                        Err(e) => panic!("{e}"),
                    }
                }
            } else {
                let mut s = rx.stream();
                let mut got = 0u64;
                while let Some(m) = s.next().await {
                    let seq = u64::from_le_bytes({
                        let mut b = [0u8; 8];
                        b[..m.len().min(8)].copy_from_slice(&m[..m.len().min(8)]);
                        b
                    });
                    if m.len() >= 8 {
                        stream.check(seq, &m).unwrap();
                    }
                    got += 1;
                    if got.is_multiple_of(1000) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                assert_eq!(s.ended_by(), Some(&RecvError::Disconnected));
                (got, s.missed())
            }
        });
        assert_eq!(publisher.wait_timeout(T), 0);
        assert_eq!(got + missed, N, "{overflow:?}: {got} + {missed}");
        if overflow == Overflow::Overwrite {
            assert!(missed > 0, "the dawdling stream never lagged");
        }
        drop(rx);
        finish(ch, guard);
    }
}
