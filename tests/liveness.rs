//! Processes killed with SIGKILL: the peer sees it exactly like a clean
//! drop, and what was committed survives for a restarted endpoint.

mod common;
use common::*;
use shmchan::{
    Channel, Options, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// Child sends N messages, then sleeps; the parent kills it, drains all N
/// (order and bytes checked) and then gets Disconnected from every receive.
#[test]
fn killed_sender_receiver_drains_all_then_disconnected() {
    const N: u64 = 2000;
    let stream = Stream::new(500);
    let (ch, guard) = fresh(Options::default().capacity(1 << 20).max_message(500));
    let key = ch.key();
    let mut rx = ch.receiver().unwrap();
    let dog0 = Watchdog::new(key, Duration::from_secs(60));
    let sent = Notify::new();
    let mut child = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let mut tx = ch.sender().unwrap();
        for seq in 0..N {
            tx.try_send(&stream.message(seq)).unwrap();
        }
        sent.notify();
        sleep_forever()
    });
    assert!(sent.wait(T), "the sender did not send");
    child.kill();
    assert_eq!(child.wait(), 128 + libc::SIGKILL);
    for seq in 0..N {
        let m = rx
            .recv_timeout(T)
            .unwrap_or_else(|e| panic!("message {seq}: {e:?}"));
        stream.check(seq, &m).unwrap();
    }
    let t = Instant::now();
    assert_eq!(
        rx.recv_timeout(T).unwrap_err(),
        RecvTimeoutError::Disconnected
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "Disconnected took {:?}",
        t.elapsed()
    );
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Disconnected);
    // recv returns at once too; the watchdog bounds it if it would not.
    let dog = Watchdog::new(key, T);
    assert_eq!(rx.recv().unwrap_err(), RecvError::Disconnected);
    assert!(
        !dog.fired() && !dog0.fired(),
        "recv blocked after the sender was killed"
    );
    drop((dog, dog0));
    drop(rx);
    finish(ch, guard);
}

/// The sender is killed while asleep in `send` on a full ring. A receiver
/// child started afterwards drains, with blocking `recv`, exactly the
/// messages whose `send` returned, then gets `RecvError::Disconnected`.
#[test]
fn sender_killed_while_blocked_on_full_ring_child_recv_drains_then_disconnected() {
    let stream = Stream::new(1000);
    let (ch, guard) = fresh(Options::default().capacity(8192).max_message(1000));
    let key = ch.key();
    let progress = Notify::new();
    let mut sender = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let mut tx = ch.sender().unwrap();
        tx.set_spin_limit(0);
        for seq in 0.. {
            tx.send(&stream.message(seq)).unwrap();
            progress.notify(); // one token per message sent
        }
        unreachable!()
    });
    assert!(
        wait_until(T, || sem_ncnt(ch.sem_id(), SEM_SPACE) >= 1),
        "the sender never slept on the full ring"
    );
    sender.kill();
    let mut sent = 0u64;
    while progress.wait(Duration::ZERO) {
        sent += 1;
    }
    assert!(sent >= 5, "only {sent} messages fit");
    let mut receiver = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let mut rx = ch.receiver().unwrap();
        for seq in 0..sent {
            let m = rx
                .recv()
                .unwrap_or_else(|e| panic!("message {seq} of {sent}: {e:?}"));
            stream.check(seq, &m).unwrap();
        }
        assert_eq!(rx.recv().unwrap_err(), RecvError::Disconnected);
        0
    });
    assert_eq!(receiver.wait_timeout(T), 0, "receiver child failed");
    finish(ch, guard);
}

/// The receiver is killed while asleep in `recv`. The parent's sender keeps
/// sending while there is space, then `send` returns Disconnected (as do
/// `try_send` and `send_timeout`). A receiver opened afterwards (in the
/// parent) gets every message that was sent, and sending works again.
#[test]
fn killed_receiver_send_gets_disconnected_and_a_new_receiver_reads_all() {
    let stream = Stream::new(300);
    let (ch, guard) = fresh(Options::default().capacity(16 << 10).max_message(300));
    let key = ch.key();
    let mut tx = ch.sender().unwrap();
    let mut child = spawn_receiver_asleep(&ch);
    child.kill();
    assert_eq!(child.wait(), 128 + libc::SIGKILL);
    let dog = Watchdog::new(key, Duration::from_secs(20));
    let mut sent = 0u64;
    let t = Instant::now();
    let err = loop {
        match tx.send(&stream.message(sent)) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 10_000, "send never failed");
    };
    assert!(
        !dog.fired(),
        "send blocked on a ring whose receiver was killed"
    );
    drop(dog);
    assert_eq!(err, SendError::Disconnected);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "Disconnected took {:?}",
        t.elapsed()
    );
    assert!(
        sent >= 50,
        "only {sent} messages were sent before Disconnected"
    );
    assert_eq!(
        tx.try_send(&stream.message(sent)).unwrap_err(),
        TrySendError::Disconnected
    );
    assert_eq!(
        tx.send_timeout(&stream.message(sent), T).unwrap_err(),
        SendTimeoutError::Disconnected
    );
    // A restarted receiver reads every message sent, in order.
    let dog = Watchdog::new(key, Duration::from_secs(60));
    let mut rx = ch.receiver().unwrap();
    for seq in 0..sent {
        let m = rx
            .try_recv()
            .unwrap_or_else(|e| panic!("message {seq} of {sent}: {e:?}"));
        stream.check(seq, &m).unwrap();
    }
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    // The sender is connected again.
    tx.try_send(&stream.message(sent)).unwrap();
    stream.check(sent, &rx.recv_timeout(T).unwrap()).unwrap();
    assert!(!dog.fired(), "the watchdog had to remove the channel");
    drop(dog);
    drop(rx);
    drop(tx);
    finish(ch, guard);
}

/// Receivers killed while holding a message (not dropped): the next
/// receiver, in a new child and then in the parent, starts with that same
/// message (at-least-once for the one in hand), then every later one, in
/// order; messages sent while no receiver lives are kept.
#[test]
fn restarted_receiver_gets_held_message_again_and_everything_after() {
    let stream = Stream::new(300);
    let (ch, guard) = fresh(Options::default().capacity(64 << 10).max_message(300));
    let key = ch.key();
    let mut tx = ch.sender().unwrap();
    for seq in 0..100 {
        tx.try_send(&stream.message(seq)).unwrap();
    }
    // Receiver 1 releases 0..30 and dies holding 30.
    let held = Notify::new();
    let mut r1 = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let mut rx = ch.receiver().unwrap();
        for seq in 0..30 {
            stream.check(seq, &rx.try_recv().unwrap()).unwrap();
        }
        let m = rx.try_recv().unwrap();
        stream.check(30, &m).unwrap();
        held.notify();
        let _in_hand = m;
        sleep_forever()
    });
    assert!(held.wait(T), "receiver 1 failed");
    r1.kill();
    // Sent while no receiver lives.
    for seq in 100..150 {
        tx.try_send(&stream.message(seq)).unwrap();
    }
    // Receiver 2 must start at 30; it releases 30..80 and dies holding 80.
    let mut r2 = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let mut rx = ch.receiver().unwrap();
        for seq in 30..80 {
            stream.check(seq, &rx.try_recv().unwrap()).unwrap();
        }
        let m = rx.try_recv().unwrap();
        stream.check(80, &m).unwrap();
        held.notify();
        let _in_hand = m;
        sleep_forever()
    });
    assert!(held.wait(T), "receiver 2 failed (see its message above)");
    r2.kill();
    // Receiver 3, in the parent, starts at 80.
    let mut rx = ch.receiver().unwrap();
    for seq in 80..150 {
        let m = rx
            .try_recv()
            .unwrap_or_else(|e| panic!("message {seq}: {e:?}"));
        stream.check(seq, &m).unwrap();
    }
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    drop(tx);
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Disconnected);
    drop(rx);
    finish(ch, guard);
}

/// A sender killed while holding a scribbled-on, uncommitted grant: nothing
/// of it is ever received; a new sender (another child) takes its place and
/// the stream continues where the committed messages end.
#[test]
fn killed_sender_with_open_grant_is_replaced_and_grant_never_seen() {
    const A: u64 = 300;
    const B: u64 = 300;
    let stream = Stream::new(300);
    let (ch, guard) = fresh(Options::default().capacity(256 << 10).max_message(300));
    let key = ch.key();
    let mut rx = ch.receiver().unwrap();
    let dog = Watchdog::new(key, Duration::from_secs(60));
    let ready = Notify::new();
    let mut s1 = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let mut tx = ch.sender().unwrap();
        for seq in 0..A {
            tx.send(&stream.message(seq)).unwrap();
        }
        let mut g = tx.reserve(300).unwrap();
        g.fill(0xEE);
        ready.notify();
        let _open = g;
        sleep_forever()
    });
    assert!(ready.wait(T), "sender 1 failed");
    s1.kill();
    let mut s2 = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let mut tx = ch.sender().expect("the killed sender's place is free");
        for seq in A..A + B {
            tx.send(&stream.message(seq)).unwrap();
        }
        0
    });
    assert_eq!(s2.wait_timeout(T), 0, "sender 2 failed");
    for seq in 0..A + B {
        let m = rx
            .recv_timeout(T)
            .unwrap_or_else(|e| panic!("message {seq}: {e:?}"));
        stream.check(seq, &m).unwrap();
    }
    assert_eq!(
        rx.recv_timeout(T).unwrap_err(),
        RecvTimeoutError::Disconnected
    );
    assert!(!dog.fired(), "the watchdog had to remove the channel");
    drop(dog);
    drop(rx);
    finish(ch, guard);
}

/// A receiver killed while asleep leaves its announcement behind; the
/// sender's next publish claims it and posts a doorbell unit nobody takes.
/// A new receiver clears both when it registers, so the stray unit does
/// not turn into spurious wake-ups (and one more post per sleep) forever.
#[test]
fn new_receiver_clears_what_a_receiver_killed_asleep_left() {
    let (ch, guard) = fresh(Options::default().capacity(4096));
    let key = ch.key();
    let mut tx = ch.sender().unwrap();
    let mut child = spawn_receiver_asleep(&ch);
    child.kill();
    use shmchan::layout::offset::RECV_WAITERS;
    let recv_waiters =
        |b: &[u8]| u32::from_ne_bytes(b[RECV_WAITERS..RECV_WAITERS + 4].try_into().unwrap());
    assert_eq!(recv_waiters(&segment_bytes(key)), 1, "announcement left");
    tx.send(b"after").unwrap();
    assert_eq!(
        sem_val(ch.sem_id(), SEM_DATA),
        1,
        "the post for a dead sleeper"
    );
    assert_eq!(recv_waiters(&segment_bytes(key)), 0, "claimed by the send");

    let mut rx = ch.receiver().unwrap();
    assert_eq!(sem_val(ch.sem_id(), SEM_DATA), 0, "stray unit cleared");
    assert_eq!(&rx.recv_timeout(T).unwrap()[..], b"after");
    drop((rx, tx));
    finish(ch, guard);
}

/// A receiver that drops is seen by the sender's very next send
/// (`Disconnected`, the message not sent), in both flavors; the messages
/// sent before stay for the next receiver, after which sending works again.
/// (Before, the sender went on filling a 1 MiB ring for thousands of
/// messages.)
#[test]
fn a_receiver_that_left_is_seen_at_the_next_send() {
    for flavor in [shmchan::Flavor::Spsc, shmchan::Flavor::Mpsc] {
        let (ch, guard) = fresh(Options::default().flavor(flavor).capacity(1 << 20));
        let key = ch.key();
        // All three are in before the receiver exists: it takes the first
        // and leaves, and a send after its departure must fail.
        let mut tx = ch.sender().unwrap();
        for m in [&b"0"[..], b"1", b"2"] {
            tx.send(m).unwrap();
        }
        let mut child = spawn(move || {
            let ch = Channel::open(key).unwrap();
            let mut rx = ch.receiver().unwrap();
            let m = rx.recv_timeout(T).unwrap();
            assert_eq!(&*m, b"0");
            0 // the receiver drops here, cleanly
        });
        assert_eq!(child.wait(), 0);
        assert_eq!(
            tx.try_send(b"3"),
            Err(TrySendError::Disconnected),
            "{flavor}"
        );
        assert_eq!(tx.send(b"3"), Err(SendError::Disconnected), "{flavor}");
        // A new receiver: what was sent before is there, and sending works.
        let mut rx = ch.receiver().unwrap();
        tx.send(b"4").unwrap();
        for want in [&b"1"[..], b"2", b"4"] {
            assert_eq!(&*rx.recv_timeout(T).unwrap(), want, "{flavor}");
        }
        drop((tx, rx));
        finish(ch, guard);
    }
}

/// A receiver killed (it cannot say it left) is seen within 1,024 sends,
/// long before a 1 MiB ring is full.
#[test]
fn a_killed_receiver_is_seen_within_1024_sends() {
    for flavor in [shmchan::Flavor::Spsc, shmchan::Flavor::Mpsc] {
        let (ch, guard) = fresh(Options::default().flavor(flavor).capacity(1 << 20));
        let key = ch.key();
        let ready = Notify::new();
        let mut child = spawn(|| {
            let ch = Channel::open(key).unwrap();
            let _rx = ch.receiver().unwrap();
            ready.notify();
            sleep_forever()
        });
        assert!(ready.wait(T), "the receiver never started");
        let mut tx = ch.sender().unwrap();
        child.kill();
        let sent = (0..2000)
            .take_while(|_| tx.try_send(b"12345678").is_ok())
            .count();
        assert!(sent <= 1024, "{flavor}: {sent} sends to a killed receiver");
        assert_eq!(
            tx.try_send(b"x"),
            Err(TrySendError::Disconnected),
            "{flavor}"
        );
        drop(tx);
        finish(ch, guard);
    }
}
