//! Faults, with real processes: senders and receivers SIGKILLed at random
//! moments in loops, a creator killed in the middle of initialising, signals
//! hammering sleepers, the channel removed under running endpoints, and
//! endpoints used across `fork`.
//!
//! The loops run `SHMCHAN_FAULT_ITERS` iterations (default 200; set it
//! higher for a long local run).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    fresh, key_in_use, shm_at, spawn, unique_key, wait_until, KeyGuard, Rng, SharedWords, Watchdog,
};
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use shmchan::{
    Channel, Flavor, Found, OpenError, Options, RecvError, RecvTimeoutError, SendError,
    SendTimeoutError, TryRecvError, TrySendError,
};

fn iterations() -> usize {
    std::env::var("SHMCHAN_FAULT_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Message `seq` of sender `from`: its tag, number and every byte follow
/// from the two, so a torn, mixed or foreign message fails [`parse`].
fn message(from: u8, seq: u64) -> Vec<u8> {
    let len = 9 + (seq.wrapping_mul(2_654_435_761) % 700) as usize;
    let mut v = Vec::with_capacity(len);
    v.push(from);
    v.extend(seq.to_le_bytes());
    let mut x = seq ^ (u64::from(from) << 56) | 1;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x as u8);
    }
    v
}

/// The sender and number of a message, after checking every byte.
fn parse(m: &[u8]) -> (u8, u64) {
    assert!(m.len() >= 9, "a {}-byte message", m.len());
    let from = m[0];
    let seq = u64::from_le_bytes(m[1..9].try_into().unwrap());
    assert!(
        m == message(from, seq).as_slice(),
        "torn or foreign message (from {from}, seq {seq}, {} bytes)",
        m.len()
    );
    (from, seq)
}

/// A sender process SIGKILLed at a random moment, again and again, while
/// the receiver (this process) reads: every message arrives whole and in
/// order, every committed one arrives, then `Disconnected`; the next
/// sender resumes where the receiver stopped. MPSC: a second sender
/// process, which finishes normally, streams beside the victim.
fn sender_kill_loop(flavor: Flavor) {
    const STEADY: u64 = 40;
    let (ch, guard) = fresh(
        Options::default()
            .flavor(flavor)
            .capacity(16 << 10)
            .max_message(1024),
    );
    let _dog = Watchdog::new(guard.0, Duration::from_secs(240));
    let mut rx = ch.receiver().unwrap();
    rx.set_recovery_timeout(Duration::from_millis(4));
    // Word 0: messages the victim's sends returned; words 1 and 2: the
    // iteration whose victim, whose steady sender has registered.
    let committed = SharedWords::new(3);
    let mut rng = Rng::new();
    let mut next = [0u64; 2];
    let mut between = 0;
    let iters = iterations();
    for it in 1..=iters as u64 {
        committed.at(0).store(next[0], Ordering::SeqCst);
        let start = next[0];
        let mut victim = spawn(|| {
            let mut tx = ch.sender().expect("victim sender");
            committed.at(1).store(it, Ordering::SeqCst);
            let mut s = start;
            loop {
                tx.send(&message(0, s)).expect("victim send");
                s += 1;
                committed.at(0).store(s, Ordering::SeqCst);
            }
        });
        // Until the victim registers, its predecessor's death reads as the
        // end of the stream.
        assert!(wait_until(Duration::from_secs(10), || committed
            .at(1)
            .load(Ordering::SeqCst)
            == it));
        let mut steady = (flavor == Flavor::Mpsc).then(|| {
            let first = next[1];
            let ch = &ch;
            let committed = &committed;
            spawn(move || {
                let mut tx = ch.sender().expect("steady sender");
                committed.at(2).store(it, Ordering::SeqCst);
                for s in first..first + STEADY {
                    tx.send(&message(1, s)).expect("steady send");
                }
                0
            })
        });
        if steady.is_some() {
            assert!(wait_until(Duration::from_secs(10), || committed
                .at(2)
                .load(Ordering::SeqCst)
                == it));
        }
        let mut take = |m: &[u8]| {
            let (from, seq) = parse(m);
            assert!(from <= 1, "sender {from}");
            assert_eq!(seq, next[from as usize], "order of sender {from}");
            next[from as usize] += 1;
        };
        // Read a random number of messages (the victim streams meanwhile),
        // then kill it wherever it is.
        for _ in 0..rng.below(300) {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(m) => take(&m),
                Err(e) => panic!("while the victim streams: {e}"),
            }
        }
        // The kill comes from another thread while this one keeps
        // receiving, so that it lands anywhere in a send (not only while
        // the victim sleeps on a full ring).
        let pid = victim.pid;
        let delay = Duration::from_micros(rng.below(400));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            kill(pid, Signal::SIGKILL).expect("kill");
        });
        // Disconnected once the victim is dead and the steady sender has
        // finished.
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(m) => take(&m),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("draining after the kill: {e}"),
            }
        }
        killer.join().unwrap();
        victim.wait();
        if let Some(s) = steady.as_mut() {
            assert_eq!(s.wait(), 0, "the steady sender failed");
        }
        let c = committed.at(0).load(Ordering::SeqCst);
        assert!(
            next[0] == c || next[0] == c + 1,
            "committed {c} messages, received up to {}",
            next[0]
        );
        if next[0] == c + 1 {
            between += 1;
        }
    }
    if flavor == Flavor::Mpsc {
        assert_eq!(
            next[1],
            iters as u64 * STEADY,
            "the steady sender's messages"
        );
    }
    eprintln!(
        "{flavor}: {iters} kills, {} messages from the victims, {} claims recovered, \
         {between} kills between a publish and the return of its send",
        next[0],
        rx.recovered_claims()
    );
}

#[test]
fn spsc_sender_killed_at_random_points() {
    sender_kill_loop(Flavor::Spsc);
}

#[test]
fn mpsc_sender_killed_at_random_points_beside_a_live_one() {
    sender_kill_loop(Flavor::Mpsc);
}

/// Receiver processes SIGKILLed at random moments while they hold a
/// message, and restarted, while this process sends: the messages logged by
/// all the receivers, in order, are every message once, except that the
/// first one a new receiver gets may be the one its killed predecessor held
/// (at-least-once for the message in hand).
#[test]
fn receiver_killed_while_holding_a_message_loses_nothing() {
    receiver_kill_loop(1);
}

/// As above, with receivers taking batches of up to 32 messages
/// (`recv_batch`, released at the end of each): a receiver killed in the
/// middle of a batch leaves the whole batch to the next one.
#[test]
fn receiver_killed_in_the_middle_of_a_batch_loses_nothing() {
    receiver_kill_loop(32);
}

/// `batch` 1: `recv`, holding each message a little; more: `recv_batch`.
fn receiver_kill_loop(batch: usize) {
    const MARK: u64 = u64::MAX;
    let kills = iterations() as u64;
    // The sender streams until the kills are over (at most this many).
    const MAX: u64 = 4 << 20;
    let (ch, guard) = fresh(Options::default().capacity(8 << 10).max_message(1024));
    let _dog = Watchdog::new(guard.0, Duration::from_secs(240));
    // Word 0: entries in the log; then the log (seqs, and MARK where a
    // receiver starts).
    let log = SharedWords::new(2 * MAX as usize + kills as usize + 16);
    let done = AtomicBool::new(false);
    let mut total = 0;
    let append = |v: u64| {
        let i = log.at(0).load(Ordering::SeqCst) as usize;
        log.at(i + 1).store(v, Ordering::SeqCst);
        log.at(0).store(i as u64 + 1, Ordering::SeqCst);
    };
    let mut tx = ch.sender().unwrap();
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            let mut seq = 0;
            while seq < MAX && !done.load(Ordering::Relaxed) {
                loop {
                    match tx.send_timeout(&message(0, seq), Duration::from_millis(50)) {
                        Ok(()) => break,
                        // Between two receivers.
                        Err(SendTimeoutError::Disconnected) | Err(SendTimeoutError::Timeout) => {
                            std::thread::sleep(Duration::from_micros(200))
                        }
                        Err(e) => panic!("send: {e}"),
                    }
                }
                seq += 1;
            }
            drop(tx);
            seq
        });
        let mut rng = Rng::new();
        for _ in 0..kills {
            let hold = rng.below(3);
            let mut child = spawn(|| {
                let mut rx = loop {
                    match ch.receiver() {
                        Ok(rx) => break rx,
                        Err(OpenError::Busy) => std::thread::sleep(Duration::from_millis(1)),
                        Err(e) => panic!("receiver: {e}"),
                    }
                };
                append(MARK);
                if batch > 1 {
                    loop {
                        let r = rx.recv_batch(batch, |m| {
                            append(parse(m).1);
                            for _ in 0..hold * 50 {
                                std::hint::spin_loop();
                            }
                        });
                        match r {
                            Ok(n) => assert!((1..=batch).contains(&n)),
                            Err(RecvError::Disconnected) => return 0,
                            Err(e) => panic!("recv_batch: {e}"),
                        }
                    }
                }
                loop {
                    let m = match rx.recv() {
                        Ok(m) => m,
                        Err(RecvError::Disconnected) => return 0,
                        Err(e) => panic!("recv: {e}"),
                    };
                    let (_, seq) = parse(&m);
                    append(seq);
                    // Hold it a little, so that kills land in the hand.
                    for _ in 0..hold * 200 {
                        std::hint::spin_loop();
                    }
                    drop(m);
                }
            });
            std::thread::sleep(Duration::from_micros(300 + rng.below(1500)));
            child.kill();
        }
        done.store(true, Ordering::Relaxed);
        // The last receiver: this process, to the end (the sender thread
        // ends, and the scope joins it).
        let mut rx = ch.receiver().unwrap();
        append(MARK);
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(m) => append(parse(&m).1),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("last receiver: {e}"),
            }
        }
        total = sender.join().unwrap();
    });
    let n = log.at(0).load(Ordering::SeqCst) as usize;
    // Each receiver's log runs on consecutively from where it started; a
    // new one starts at the first message not yet delivered, or up to
    // `batch` messages before it (what its killed predecessor held).
    let mut expect = 0u64;
    let mut at: Option<u64> = None; // the next value this receiver logs
    let mut again = 0;
    for i in 0..n {
        let v = log.at(i + 1).load(Ordering::SeqCst);
        if v == MARK {
            at = None;
            continue;
        }
        match at {
            None => assert!(
                v <= expect && expect - v <= batch as u64,
                "log entry {i}: a receiver started at {v}, the first not delivered was {expect}"
            ),
            Some(a) => assert_eq!(v, a, "log entry {i}: out of order"),
        }
        at = Some(v + 1);
        if v == expect {
            expect += 1;
        } else {
            again += 1;
        }
    }
    assert_eq!(expect, total, "messages received");
    eprintln!(
        "batch {batch}: {kills} receivers killed, {total} messages, {again} delivered again \
         (held by a killed receiver)"
    );
}

/// A creator killed after writing the header and before marking the
/// channel ready (the test hook stalls it there): openers get
/// `NotInitialized` at once, what `shmchan gc` does (`Listing::is_garbage`,
/// `Listing::remove`; the tool itself is run on such a channel in
/// cli/tests/cli.rs) and `Channel::remove_key` clean up, and a new
/// `create` succeeds.
#[test]
fn creator_killed_while_initialising() {
    for cleaner in ["gc", "remove_key"] {
        let key = unique_key();
        let _guard = KeyGuard(key);
        let mut creator = spawn(|| {
            let opts = Options::default().init_stall(Duration::from_secs(60));
            Channel::create(key, opts).map_or(1, |_| 0)
        });
        let header_written =
            || shm_at(key).is_some() && common::with_raw_segment(key, |b| b[..8] == *b"SHMCHAN\0");
        assert!(wait_until(Duration::from_secs(10), header_written));
        creator.kill();
        let t = Instant::now();
        assert!(matches!(Channel::open(key), Err(OpenError::NotInitialized)));
        assert!(
            t.elapsed() < Duration::from_millis(1100),
            "{:?}",
            t.elapsed()
        );
        assert!(matches!(
            Channel::inspect(key),
            Err(OpenError::NotInitialized)
        ));
        match cleaner {
            "gc" => {
                let list = Channel::list().unwrap();
                let l = list.iter().find(|l| l.key == key).expect("listed");
                assert!(matches!(l.found, Found::Initializing), "{:?}", l.found);
                assert!(l.is_garbage());
                l.remove().unwrap();
            }
            _ => Channel::remove_key(key).unwrap(),
        }
        assert!(!key_in_use(key), "{cleaner} left something");
        let ch = Channel::create(key, Options::default()).expect("create after cleanup");
        ch.remove().unwrap();
    }
}

extern "C" fn on_sigusr1(_: i32) {}

/// A sleeping receiver and a sleeping sender hammered with a handled
/// SIGUSR1 (no SA_RESTART) every 100 µs keep working: timeouts end on
/// time, and blocking calls return what was sent.
#[test]
fn signals_hammering_sleepers_change_nothing() {
    let (to_child, g1) = fresh(Options::default().capacity(4096));
    let (from_child, g2) = fresh(Options::default().capacity(4096).max_message(64));
    let _d1 = Watchdog::new(g1.0, Duration::from_secs(60));
    let _d2 = Watchdog::new(g2.0, Duration::from_secs(60));
    let ready = SharedWords::new(1);
    let mut tx = to_child.sender().unwrap();
    let mut rx = from_child.receiver().unwrap();
    let mut child = spawn(|| {
        let act = SigAction::new(
            SigHandler::Handler(on_sigusr1),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler does nothing.
        unsafe { sigaction(Signal::SIGUSR1, &act) }.unwrap();
        let mut rx = to_child.receiver().unwrap();
        let mut tx = from_child.sender().unwrap();
        ready.at(0).store(1, Ordering::SeqCst);
        let t = Instant::now();
        match rx.recv_timeout(Duration::from_millis(300)) {
            Err(RecvTimeoutError::Timeout) => {}
            other => panic!("recv_timeout: {other:?}"),
        }
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_millis(800), "{took:?}");
        while tx.try_send(&[7; 64]).is_ok() {}
        let t = Instant::now();
        match tx.send_timeout(&[7; 64], Duration::from_millis(300)) {
            Err(SendTimeoutError::Timeout) => {}
            other => panic!("send_timeout: {other:?}"),
        }
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_millis(800), "{took:?}");
        // Blocking: woken by the parent's send, then by its receives.
        assert_eq!(&*rx.recv().expect("recv"), b"wake");
        tx.send(b"last").expect("send");
        0
    });
    assert!(wait_until(Duration::from_secs(10), || ready
        .at(0)
        .load(Ordering::SeqCst)
        == 1));
    let stop = Arc::new(AtomicBool::new(false));
    let pid = child.pid;
    let hammer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if kill(pid, Signal::SIGUSR1).is_err() {
                    break;
                }
                sent += 1;
                std::thread::sleep(Duration::from_micros(100));
            }
            sent
        })
    };
    std::thread::sleep(Duration::from_millis(900));
    tx.send(b"wake").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut got_last = false;
    while !got_last {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(m) => got_last = &*m == b"last",
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(child.wait_timeout(Duration::from_secs(20)), 0);
    stop.store(true, Ordering::Relaxed);
    let signals = hammer.join().unwrap();
    assert!(signals > 1000, "only {signals} signals sent");
}

/// The channel removed (as `ipcrm` does) while a sender process streams
/// and this process receives: both end with `Disconnected` promptly, and
/// a message received before the removal stays readable.
#[test]
fn removal_under_running_endpoints_disconnects_both() {
    let (ch, guard) = fresh(Options::default().capacity(16 << 10).max_message(1024));
    let _dog = Watchdog::new(guard.0, Duration::from_secs(60));
    let mut rx = ch.receiver().unwrap();
    let mut child = spawn(|| {
        let mut tx = ch.sender().unwrap();
        let mut s = 0;
        loop {
            match tx.send(&message(0, s)) {
                Ok(()) => s += 1,
                Err(SendError::Disconnected) => return 0,
                Err(e) => panic!("{e}"),
            }
        }
    });
    let mut next = 0;
    for _ in 0..5000 {
        let m = rx.recv().unwrap();
        assert_eq!(parse(&m).1, next);
        next += 1;
    }
    let held = rx.recv().unwrap().to_vec();
    let m = rx.recv().unwrap();
    Channel::remove_key(guard.0).unwrap();
    let t = Instant::now();
    // The message in hand is still there, whole.
    assert_eq!(parse(&m).1, next + 1);
    assert_eq!(parse(&held).1, next);
    drop(m);
    loop {
        match rx.recv() {
            Ok(m) => {
                parse(&m);
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(child.wait_timeout(Duration::from_secs(10)), 0);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // What the sender wrote before it noticed (it looks only when the ring
    // is full) is still readable, then the end again.
    loop {
        match rx.try_recv() {
            Ok(m) => {
                parse(&m);
            }
            Err(TryRecvError::Disconnected) => break,
            Err(e) => panic!("after the sender ended: {e}"),
        }
    }
}

/// Endpoints inherited through `fork` refuse every operation with `Forked`
/// and change nothing; the child's own endpoint works.
#[test]
fn inherited_endpoints_are_refused_in_a_forked_child() {
    let (ch, _guard) = fresh(Options::default().flavor(Flavor::Mpsc).capacity(4096));
    let mut tx = ch.sender().unwrap();
    let mut rx = ch.receiver().unwrap();
    tx.send(b"one").unwrap();
    tx.send(b"two").unwrap();
    // Received before the fork and dropped in the child: not released. (The
    // parent's copy is never dropped, so only the child's drop could move
    // head.)
    let held = std::mem::ManuallyDrop::new(rx.recv().unwrap());
    let head = ch.stats().unwrap().head;
    let mut child = spawn(move || {
        drop(std::mem::ManuallyDrop::into_inner(held));
        0
    });
    assert_eq!(child.wait(), 0);
    let mut child = spawn(|| {
        assert!(matches!(tx.send(b"x"), Err(SendError::Forked)));
        assert!(matches!(tx.try_send(b"x"), Err(TrySendError::Forked)));
        assert!(matches!(tx.reserve(1), Err(SendError::Forked)));
        assert!(matches!(
            tx.send_timeout(b"x", Duration::from_millis(1)),
            Err(SendTimeoutError::Forked)
        ));
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Forked)));
        assert!(matches!(rx.recv(), Err(RecvError::Forked)));
        let mut own = ch.sender().expect("the child's own sender");
        own.send(b"from the child").unwrap();
        0
    });
    assert_eq!(child.wait(), 0);
    assert_eq!(
        ch.stats().unwrap().head,
        head,
        "the child released a message"
    );
    assert_eq!(
        ch.stats().unwrap().senders,
        Some(1),
        "liveness count changed"
    );
    // Dropping inherited endpoints in a child leaves the registrations,
    // the sender slot and the counters alone.
    let before = ch.stats().unwrap();
    let mut child = spawn(|| {
        // SAFETY: the child's own copies of the parent's endpoints (fork
        // copied the memory); the parent's are not touched, and the child
        // drops each copy once.
        let (t, r) = unsafe { (std::ptr::read(&tx), std::ptr::read(&rx)) };
        drop((t, r));
        0
    });
    assert_eq!(child.wait(), 0);
    let after = ch.stats().unwrap();
    assert_eq!((after.senders, after.receivers), (Some(1), Some(1)));
    assert_eq!(after.counters, before.counters);
    assert_eq!(after.head, head);
    tx.send(b"still mine").unwrap();
    assert_eq!(&*rx.recv().unwrap(), b"one");
    assert_eq!(&*rx.recv().unwrap(), b"two");
    assert_eq!(&*rx.recv().unwrap(), b"from the child");
    assert_eq!(&*rx.recv().unwrap(), b"still mine");
}

/// A grant held across `fork` stays the parent's: in the child it has no
/// bytes, and committing it there publishes nothing, dropping it aborts
/// nothing; the parent's commit then delivers its message, once. A message
/// held across `fork` has no bytes in the child either (the parent may
/// release it, and a sender reuse the space, at any time).
#[test]
fn grants_and_messages_held_across_fork_stay_the_parents() {
    for flavor in [Flavor::Spsc, Flavor::Mpsc] {
        let (ch, _guard) = fresh(Options::default().flavor(flavor).capacity(4096));
        let mut tx = ch.sender().unwrap();
        let mut rx = ch.receiver().unwrap();
        let mut grant = tx.reserve(5).unwrap();
        grant.copy_from_slice(b"hello");
        for commit in [true, false] {
            let mut child = spawn(|| {
                // SAFETY: the child's own copy of the parent's grant (fork
                // copied the memory), used once; the parent's is untouched.
                let mut g = unsafe { std::ptr::read(&grant) };
                let empty = g.is_empty() && g.iter_mut().next().is_none();
                if commit {
                    g.commit();
                } else {
                    drop(g);
                }
                i32::from(!empty)
            });
            assert_eq!(child.wait(), 0, "{flavor}: the child saw the grant's bytes");
            assert!(
                matches!(rx.try_recv(), Err(TryRecvError::Empty)),
                "{flavor}: the child's commit={commit} published or aborted the grant"
            );
        }
        grant.commit();
        // Bounded: a message lost to the child's abort must fail, not hang.
        let m = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(&*m, b"hello", "{flavor}");
        let mut child = spawn(|| i32::from(!m.is_empty()));
        assert_eq!(child.wait(), 0, "{flavor}: the child read a held message");
        assert_eq!(&*m, b"hello");
        drop(m);
        assert!(
            matches!(rx.try_recv(), Err(TryRecvError::Empty)),
            "{flavor}"
        );
        tx.send(b"after").unwrap();
        assert_eq!(&*rx.recv().unwrap(), b"after", "{flavor}");
    }
}
