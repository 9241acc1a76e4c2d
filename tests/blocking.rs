//! Sleeping and waking: every wait goes to the semaphore (spin limit 0),
//! and no wake-up is lost. A lost wake-up is not a hang here (sleepers
//! re-check every 100 ms, `POLL_INTERVAL`), so the tests detect it as a
//! round that takes about that long, with the sleeper confirmed asleep in
//! `semop` (`GETNCNT`) before the peer acts.

mod common;
use common::*;
use shmchan::{Channel, Options, RecvError, RecvTimeoutError, SendTimeoutError, TrySendError};
use std::time::{Duration, Instant};

/// A round slower than this is taken for a lost wake-up (the poll interval
/// is 100 ms; a real wake takes microseconds to a few milliseconds).
const SLOW: Duration = Duration::from_millis(50);

#[test]
fn ping_pong_2000_rounds_every_wait_sleeps() {
    ping_pong(2000, true, 10);
}

/// Ping-pong where each side sleeps at once and the peer sends without
/// waiting for it to be asleep: sends race with the peer's announce,
/// barrier and re-check. A wake-up lost in that race shows as a round of
/// about the 100 ms poll interval.
#[test]
fn racing_ping_pong_loses_no_wake_up() {
    ping_pong(20_000, false, 3);
}

/// `rounds` of ping-pong between this process and a child over two
/// channels, every wait on the semaphore (spin limit 0); with
/// `wait_for_sleep`, each ping goes only once the child is asleep in
/// `semop`. At most `max_slow` rounds may take longer than [`SLOW`].
fn ping_pong(rounds: u64, wait_for_sleep: bool, max_slow: usize) {
    let (ping, g1) = fresh(Options::default().capacity(4096));
    let (pong, g2) = fresh(Options::default().capacity(4096));
    let (kping, kpong) = (ping.key(), pong.key());
    let mut tx = ping.sender().unwrap();
    tx.set_spin_limit(0);
    let mut rx = pong.receiver().unwrap();
    rx.set_spin_limit(0);
    let dogs = (
        Watchdog::new(kping, Duration::from_secs(120)),
        Watchdog::new(kpong, Duration::from_secs(120)),
    );
    let mut child = spawn(move || {
        let ping = Channel::open(kping).unwrap();
        let pong = Channel::open(kpong).unwrap();
        let mut rx = ping.receiver().unwrap();
        rx.set_spin_limit(0);
        let mut tx = pong.sender().unwrap();
        tx.set_spin_limit(0);
        let mut expect = 0u64;
        loop {
            let v = match rx.recv() {
                Ok(m) => u64::from_le_bytes(m[..].try_into().expect("8-byte ping")),
                Err(RecvError::Disconnected) => break,
                Err(e) => panic!("recv: {e:?}"),
            };
            assert_eq!(v, expect, "ping out of order");
            expect += 1;
            tx.send(&(v * 3 + 1).to_le_bytes()).unwrap();
        }
        assert_eq!(expect, rounds);
        0
    });
    let semid = ping.sem_id();
    let mut slow = 0;
    let mut worst = Duration::ZERO;
    let start = Instant::now();
    for r in 0..rounds {
        if wait_for_sleep {
            // The child must be asleep on the data semaphore before each ping.
            assert!(
                wait_until(Duration::from_secs(10), || sem_ncnt(semid, SEM_DATA) >= 1),
                "round {r}: the child is not asleep in recv"
            );
        }
        let t = Instant::now();
        tx.send(&r.to_le_bytes()).unwrap();
        let m = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("round {r}: {e:?}"));
        assert_eq!(
            u64::from_le_bytes(m[..].try_into().unwrap()),
            r * 3 + 1,
            "round {r}"
        );
        drop(m);
        let dt = t.elapsed();
        worst = worst.max(dt);
        if dt > SLOW {
            slow += 1;
        }
    }
    eprintln!(
        "ping-pong: {rounds} rounds in {:?}, worst {worst:?}, {slow} over {SLOW:?}",
        start.elapsed()
    );
    drop(tx);
    assert_eq!(
        child.wait_timeout(Duration::from_secs(30)),
        0,
        "child failed"
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap_err(),
        RecvTimeoutError::Disconnected
    );
    assert!(
        slow <= max_slow,
        "{slow} of {rounds} rounds took over {SLOW:?}: lost wake-ups"
    );
    assert!(
        !dogs.0.fired() && !dogs.1.fired(),
        "a watchdog had to remove a channel"
    );
    drop(dogs);
    drop(rx);
    finish(ping, g1);
    finish(pong, g2);
}

/// A ring of exactly four 1 KiB records. The sender (a child, spin limit 0)
/// keeps reserving; each round the parent waits until it sleeps on the full
/// ring, notes the time, and frees one record. The child stamps into each
/// record the time its `reserve` returned: record `4 + r` can only have been
/// reserved after the parent freed record `r`, and promptly.
#[test]
fn sender_blocked_on_full_ring_is_woken_when_space_is_freed() {
    blocked_sender_is_woken(shmchan::Flavor::Spsc);
}

/// The same with an MPSC sender, which sleeps on a futex in its sender
/// slot: a lost wake-up there would cost the sender its 100 ms poll.
#[test]
fn mpsc_sender_blocked_on_full_ring_is_woken_when_space_is_freed() {
    blocked_sender_is_woken(shmchan::Flavor::Mpsc);
}

fn blocked_sender_is_woken(flavor: shmchan::Flavor) {
    const ROUNDS: usize = 200;
    // A record of 1016 bytes: four, and the free word past them, fit the
    // 4096-byte ring; a fifth does not.
    const SLOT: usize = 1008;
    let (ch, guard) = fresh(
        Options::default()
            .flavor(flavor)
            .capacity(4096)
            .max_message(SLOT),
    );
    let key = ch.key();
    let mut rx = ch.receiver().unwrap();
    let dog = Watchdog::new(key, Duration::from_secs(60));
    let mut child = spawn(move || {
        let ch = Channel::open(key).unwrap();
        let mut tx = ch.sender().unwrap();
        tx.set_spin_limit(0);
        for i in 0..(4 + ROUNDS) as u64 {
            let mut g = tx.reserve(SLOT).unwrap();
            let t = mono_ns();
            g[..8].copy_from_slice(&i.to_le_bytes());
            g[8..16].copy_from_slice(&t.to_le_bytes());
            g[16..].fill(i as u8);
            g.commit();
        }
        0
    });
    let semid = ch.sem_id();
    let mut reserved_at = Vec::new();
    let mut freed_at = Vec::new();
    let mut take = |rx: &mut shmchan::Receiver, freed_at: Option<&mut Vec<u64>>| {
        let m = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let i = reserved_at.len() as u64;
        assert_eq!(m.len(), SLOT);
        assert_eq!(
            u64::from_le_bytes(m[..8].try_into().unwrap()),
            i,
            "record out of order"
        );
        assert!(m[16..].iter().all(|&b| b == i as u8), "record {i} damaged");
        reserved_at.push(u64::from_le_bytes(m[8..16].try_into().unwrap()));
        if let Some(f) = freed_at {
            f.push(mono_ns());
        }
        drop(m); // frees the record
    };
    // SPSC: in semop on the space semaphore; MPSC: announced in its slot
    // (about to sleep, or asleep, in its futex wait).
    let asleep = || match flavor {
        shmchan::Flavor::Spsc => sem_ncnt(semid, SEM_SPACE) >= 1,
        _ => ch.stats().unwrap().send_waiters >= 1,
    };
    for r in 0..ROUNDS {
        assert!(
            wait_until(Duration::from_secs(10), asleep),
            "round {r}: the sender is not asleep on the full ring"
        );
        take(&mut rx, Some(&mut freed_at));
    }
    for _ in 0..4 {
        take(&mut rx, None);
    }
    assert_eq!(
        child.wait_timeout(Duration::from_secs(10)),
        0,
        "sender child failed"
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap_err(),
        RecvTimeoutError::Disconnected
    );
    let mut slow = 0;
    let mut worst = 0;
    for r in 0..ROUNDS {
        let (freed, reserved) = (freed_at[r], reserved_at[4 + r]);
        assert!(
            reserved > freed,
            "record {} was reserved before record {r} was freed",
            4 + r
        );
        let lat = reserved - freed;
        worst = worst.max(lat);
        if lat > SLOW.as_nanos() as u64 {
            slow += 1;
        }
    }
    eprintln!(
        "full ring ({flavor}): {ROUNDS} wakes, worst {} µs, {slow} over {SLOW:?}",
        worst / 1000
    );
    assert!(
        slow <= 5,
        "{flavor}: {slow} of {ROUNDS} wakes of a sender took over {SLOW:?}: lost wake-ups"
    );
    assert!(!dog.fired(), "the watchdog had to remove the channel");
    drop(dog);
    drop(rx);
    finish(ch, guard);
}

fn assert_took(elapsed: Duration, asked: Duration) {
    assert!(
        elapsed >= asked,
        "returned after {elapsed:?}, before the {asked:?} asked"
    );
    assert!(
        elapsed < asked + Duration::from_secs(2),
        "returned after {elapsed:?}, {asked:?} asked"
    );
}

#[test]
fn recv_timeout_times_out_then_a_later_send_wakes_it() {
    let (ch, guard) = fresh(Options::default().capacity(4096));
    let key = ch.key();
    let mut rx = ch.receiver().unwrap();
    rx.set_spin_limit(0);
    let dog = Watchdog::new(key, Duration::from_secs(60));
    let (ready, go) = (Notify::new(), Notify::new());
    let mut child = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let mut tx = ch.sender().unwrap();
        ready.notify();
        assert!(go.wait(Duration::from_secs(20)), "no go");
        std::thread::sleep(Duration::from_millis(300));
        tx.send(b"late").unwrap();
        0
    });
    assert!(ready.wait(Duration::from_secs(10)), "child not ready");
    // A live sender and an empty ring: Timeout, after about the time asked.
    for asked in [Duration::from_millis(200), Duration::from_secs(1)] {
        let t = Instant::now();
        assert_eq!(
            rx.recv_timeout(asked).unwrap_err(),
            RecvTimeoutError::Timeout
        );
        assert_took(t.elapsed(), asked);
    }
    let t = Instant::now();
    assert_eq!(
        rx.recv_timeout(Duration::ZERO).unwrap_err(),
        RecvTimeoutError::Timeout
    );
    assert!(t.elapsed() < Duration::from_secs(1));
    // A long wait is ended by the send ~300 ms later, not by its deadline.
    go.notify();
    let t = Instant::now();
    let m = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(&*m, b"late");
    drop(m);
    let dt = t.elapsed();
    assert!(
        dt >= Duration::from_millis(250) && dt < Duration::from_secs(5),
        "woke after {dt:?}"
    );
    assert_eq!(
        child.wait_timeout(Duration::from_secs(10)),
        0,
        "child failed"
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap_err(),
        RecvTimeoutError::Disconnected
    );
    assert!(!dog.fired(), "the watchdog had to remove the channel");
    drop(dog);
    drop(rx);
    finish(ch, guard);
}

#[test]
fn send_timeout_times_out_on_full_ring_then_succeeds_when_freed() {
    // As in blocked_sender_is_woken: four records fill the ring.
    const SLOT: usize = 1008;
    let (ch, guard) = fresh(Options::default().capacity(4096).max_message(SLOT));
    let key = ch.key();
    let mut tx = ch.sender().unwrap();
    tx.set_spin_limit(0);
    let dog = Watchdog::new(key, Duration::from_secs(60));
    let (ready, go) = (Notify::new(), Notify::new());
    let mut child = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let mut rx = ch.receiver().unwrap();
        ready.notify();
        assert!(go.wait(Duration::from_secs(20)), "no go");
        std::thread::sleep(Duration::from_millis(300));
        for i in 0..5u8 {
            let m = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(m.len(), SLOT);
            assert!(m.iter().all(|&b| b == i), "message {i} damaged");
        }
        0
    });
    assert!(ready.wait(Duration::from_secs(10)), "child not ready");
    for i in 0..4u8 {
        tx.try_send(&[i; SLOT]).unwrap();
    }
    assert_eq!(tx.try_send(&[4; SLOT]).unwrap_err(), TrySendError::Full);
    for asked in [Duration::from_millis(200), Duration::from_secs(1)] {
        let t = Instant::now();
        assert_eq!(
            tx.send_timeout(&[4; SLOT], asked).unwrap_err(),
            SendTimeoutError::Timeout
        );
        assert_took(t.elapsed(), asked);
    }
    // A long wait is ended by the receiver freeing space ~300 ms later.
    go.notify();
    let t = Instant::now();
    tx.send_timeout(&[4; SLOT], Duration::from_secs(30))
        .unwrap();
    let dt = t.elapsed();
    assert!(
        dt >= Duration::from_millis(250) && dt < Duration::from_secs(5),
        "woke after {dt:?}"
    );
    assert_eq!(
        child.wait_timeout(Duration::from_secs(10)),
        0,
        "child failed"
    );
    assert!(!dog.fired(), "the watchdog had to remove the channel");
    drop(dog);
    drop(tx);
    finish(ch, guard);
}

/// Before any receiver has connected, a full channel waits like a pipe's
/// writer: Timeout / Full, not Disconnected. A receiver that then connects
/// (in another process) gets everything.
#[test]
fn full_channel_before_any_receiver_waits_not_disconnected() {
    let (ch, guard) = fresh(Options::default().capacity(64).max_message(48));
    let key = ch.key();
    let mut tx = ch.sender().unwrap();
    let dog = Watchdog::new(key, Duration::from_secs(60));
    tx.send_timeout(&[7; 48], Duration::from_secs(5)).unwrap();
    assert_eq!(tx.try_send(b"x").unwrap_err(), TrySendError::Full);
    let t = Instant::now();
    let asked = Duration::from_millis(300);
    assert_eq!(
        tx.send_timeout(b"x", asked).unwrap_err(),
        SendTimeoutError::Timeout
    );
    assert_took(t.elapsed(), asked);
    let mut child = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let mut rx = ch.receiver().unwrap();
        assert_eq!(
            &*rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            &[7; 48]
        );
        assert_eq!(&*rx.recv_timeout(Duration::from_secs(10)).unwrap(), b"x");
        0
    });
    tx.send_timeout(b"x", Duration::from_secs(20)).unwrap();
    assert_eq!(
        child.wait_timeout(Duration::from_secs(10)),
        0,
        "child failed"
    );
    assert!(!dog.fired(), "the watchdog had to remove the channel");
    drop(dog);
    drop(tx);
    finish(ch, guard);
}

/// With a spin limit that never sleeps (`u32::MAX`, the busy-polling mode
/// of latency-critical users), a receiver still sees the sender leave and a
/// `recv_timeout` still times out: a spinner checks liveness and the
/// deadline as it spins. The spinning receiver is a child, so that a
/// spinner that never looks up fails the test (killed at the bound) rather
/// than hanging it.
#[test]
fn endless_spin_still_sees_disconnect_and_deadline() {
    let (ch, guard) = fresh(Options::default().capacity(4096));
    let key = ch.key();
    let timed_out = Notify::new();
    let mut receiver = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let mut rx = ch.receiver().unwrap();
        rx.set_spin_limit(u32::MAX);
        // Nobody connected yet: a timeout, in roughly the asked time.
        let t = Instant::now();
        let asked = Duration::from_millis(200);
        assert_eq!(
            rx.recv_timeout(asked).unwrap_err(),
            RecvTimeoutError::Timeout
        );
        assert_took(t.elapsed(), asked);
        timed_out.notify();
        for i in 0..3u64 {
            let m = rx.recv_timeout(Duration::from_secs(20)).unwrap();
            assert_eq!(&m[..], &i.to_le_bytes());
        }
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(20)).unwrap_err(),
            RecvTimeoutError::Disconnected
        );
        // recv (no deadline at all) sees it too.
        assert_eq!(rx.recv().unwrap_err(), RecvError::Disconnected);
        0
    });
    assert!(
        timed_out.wait(Duration::from_secs(20)),
        "recv_timeout did not time out while spinning"
    );
    let mut tx = ch.sender().unwrap();
    for i in 0..3u64 {
        tx.send(&i.to_le_bytes()).unwrap();
    }
    drop(tx);
    assert_eq!(receiver.wait_timeout(Duration::from_secs(30)), 0);
    finish(ch, guard);
}

/// The sender's side of the same: spinning forever on a full ring, it sees
/// the receiver killed and returns `Disconnected` (the sender is a child
/// too, for the same reason).
#[test]
fn endless_spin_sender_sees_receiver_killed() {
    let (ch, guard) = fresh(Options::default().capacity(4096).max_message(1000));
    let key = ch.key();
    let connected = Notify::new();
    let mut receiver = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let _rx = ch.receiver().unwrap();
        connected.notify();
        sleep_forever()
    });
    assert!(
        connected.wait(Duration::from_secs(20)),
        "receiver never connected"
    );
    let full = Notify::new();
    let mut sender = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let mut tx = ch.sender().unwrap();
        tx.set_spin_limit(u32::MAX);
        let msg = [7u8; 1000];
        // The receiver never reads: fill the ring.
        while tx.try_send(&msg).is_ok() {}
        assert_eq!(tx.try_send(&msg).unwrap_err(), TrySendError::Full);
        full.notify();
        assert_eq!(
            tx.send_timeout(&msg, Duration::from_secs(20)).unwrap_err(),
            SendTimeoutError::Disconnected
        );
        0
    });
    assert!(full.wait(Duration::from_secs(20)), "the ring never filled");
    receiver.kill();
    assert_eq!(sender.wait_timeout(Duration::from_secs(30)), 0);
    finish(ch, guard);
}

/// A sleeper in a process that may not call `membarrier` (a seccomp
/// filter: even the query fails) cannot know whether wakers in other
/// processes use the light fence, so it must sleep at most 1 ms at a time
/// (`UNFENCED_POLL`), never the 100 ms poll: otherwise a wake-up lost to
/// the missing barrier costs up to 100 ms. The confined receiver is this
/// test binary run again (a fresh process, which has asked the kernel
/// nothing yet), filtered before it opens the channel.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_sleeper_denied_membarrier_polls_every_millisecond() {
    const NAME: &str = "a_sleeper_denied_membarrier_polls_every_millisecond";
    const CHILD: &str = "SHMCHAN_TEST_CONFINED_KEY";
    const WAIT: Duration = Duration::from_millis(300);
    if let Ok(raw) = std::env::var(CHILD) {
        deny_membarrier();
        let ch = Channel::open(shmchan::Key::raw(raw.parse().unwrap())).unwrap();
        let mut rx = ch.receiver().unwrap();
        rx.set_spin_limit(0);
        assert_eq!(
            rx.recv_timeout(WAIT).unwrap_err(),
            RecvTimeoutError::Timeout
        );
        return;
    }
    let (ch, guard) = fresh(Options::default().capacity(4096));
    // A sender is connected: the receiver waits rather than see the end.
    let tx = ch.sender().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
        .env(CHILD, ch.key().as_raw().to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the confined receiver failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let sleeps = ch.stats().unwrap().counters.receiver_sleeps;
    // About 300 sleeps of 1 ms; 3 of 100 ms if the failed query is trusted.
    assert!(
        sleeps >= 50,
        "{sleeps} semaphore waits in {WAIT:?}: the sleeper trusted a failed membarrier query"
    );
    drop(tx);
    finish(ch, guard);
}
