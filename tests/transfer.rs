//! Bulk transfer between processes: order and integrity of every byte of
//! a million variable-length messages through a ring that wraps tens of
//! thousands of times, through the copy API and the zero-copy API.

mod common;
use common::*;
use shmchan::{Channel, Options, RecvTimeoutError, Sender, TryRecvError, TrySendError};
use std::time::{Duration, Instant};

/// Messages per bulk test. Keep a million (see the report in the PR).
const MESSAGES: u64 = 1_000_000;
/// Largest message of the bulk tests.
const MAX: usize = 4096;
/// Ring of the bulk tests: much smaller than the ~2 GB they move.
const CAPACITY: usize = 64 << 10;
/// Bound on each receive of the bulk tests (a stuck sender fails the test).
const STEP: Duration = Duration::from_secs(20);

/// Receives `MESSAGES` messages with `recv_timeout`, checks every byte, then
/// expects `Disconnected`; returns the bytes received.
fn receive_all(rx: &mut shmchan::Receiver, stream: &Stream) -> u64 {
    let mut total = 0u64;
    for seq in 0..MESSAGES {
        let m = rx
            .recv_timeout(STEP)
            .unwrap_or_else(|e| panic!("message {seq}: {e:?}"));
        if let Err(e) = stream.check(seq, &m) {
            panic!("{e}");
        }
        total += m.len() as u64;
    }
    assert_eq!(
        rx.recv_timeout(STEP).unwrap_err(),
        RecvTimeoutError::Disconnected
    );
    total
}

/// A child sends `MESSAGES` messages with `send_all`; the parent receives
/// and checks them all (`receive_all`), then both clean up.
fn million_messages_child_to_parent(api: &str, send_all: impl FnOnce(&mut Sender, &Stream)) {
    let stream = Stream::new(MAX);
    let (ch, guard) = fresh(Options::default().capacity(CAPACITY).max_message(MAX));
    assert_eq!(ch.capacity(), CAPACITY);
    assert_eq!(ch.max_message(), MAX);
    let key = ch.key();
    let mut rx = ch.receiver().unwrap();
    let dog = Watchdog::new(key, Duration::from_secs(90));
    let start = Instant::now();
    let mut child = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let mut tx = ch.sender().unwrap();
        assert_eq!(tx.max_message(), MAX);
        send_all(&mut tx, &stream);
        0
    });
    let total = receive_all(&mut rx, &stream);
    assert_eq!(
        child.wait_timeout(Duration::from_secs(30)),
        0,
        "sender child failed"
    );
    eprintln!(
        "{api}: {MESSAGES} messages, {} MB, ring wrapped {} times, {:?}",
        total >> 20,
        total / CAPACITY as u64,
        start.elapsed()
    );
    assert!(
        total / CAPACITY as u64 > 10_000,
        "the ring did not wrap enough: {total} bytes"
    );
    assert!(!dog.fired(), "the watchdog had to remove the channel");
    drop(dog);
    drop(rx);
    finish(ch, guard);
}

#[test]
fn million_messages_copy_api_child_to_parent() {
    million_messages_child_to_parent("copy API", |tx, stream| {
        let mut buf = vec![0u8; MAX];
        for seq in 0..MESSAGES {
            let n = stream.len(seq);
            stream.fill(seq, &mut buf[..n]);
            // Alternate the non-blocking and the blocking call.
            if seq % 2 == 0 {
                match tx.try_send(&buf[..n]) {
                    Ok(()) => continue,
                    Err(TrySendError::Full) => {}
                    Err(e) => panic!("try_send {seq}: {e:?}"),
                }
            }
            tx.send(&buf[..n])
                .unwrap_or_else(|e| panic!("send {seq}: {e:?}"));
        }
    });
}

#[test]
fn million_messages_zero_copy_api_child_to_parent() {
    million_messages_child_to_parent("zero-copy API", |tx, stream| {
        for seq in 0..MESSAGES {
            let n = stream.len(seq);
            if seq % 1000 == 500 {
                // An aborted grant: scribbled on, dropped without commit. It
                // must publish nothing.
                let mut g = tx
                    .reserve(MAX)
                    .unwrap_or_else(|e| panic!("reserve {seq}: {e:?}"));
                assert_eq!(g.len(), MAX);
                g.fill(0xA5);
                // `g` goes out of scope here, uncommitted.
            }
            let mut g = tx
                .reserve(n)
                .unwrap_or_else(|e| panic!("reserve {seq}: {e:?}"));
            assert_eq!(g.len(), n);
            stream.fill(seq, &mut g);
            g.commit();
        }
    });
}

/// The other direction, with the receiver's blocking iterator in the child:
/// `iter` yields every message in order and ends when the sender is gone.
#[test]
fn parent_to_child_iter_ends_at_disconnect() {
    const N: u64 = 30_000;
    const MAX_SMALL: usize = 2000;
    let stream = Stream::new(MAX_SMALL);
    let (ch, guard) = fresh(Options::default().capacity(16 << 10).max_message(MAX_SMALL));
    let key = ch.key();
    let mut tx = ch.sender().unwrap();
    let mut child = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let mut rx = ch.receiver().unwrap();
        let mut seq = 0u64;
        for m in rx.iter() {
            if let Err(e) = stream.check(seq, &m) {
                panic!("{e}");
            }
            seq += 1;
        }
        assert_eq!(seq, N, "iter ended early");
        assert_eq!(rx.try_iter().count(), 0);
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Disconnected);
        0
    });
    // A child that stops reading would block send forever: bound it.
    let dog = Watchdog::new(key, Duration::from_secs(40));
    for seq in 0..N {
        tx.send(&stream.message(seq))
            .unwrap_or_else(|e| panic!("send {seq}: {e:?}"));
    }
    drop(tx);
    assert_eq!(
        child.wait_timeout(Duration::from_secs(30)),
        0,
        "receiver child failed"
    );
    assert!(!dog.fired(), "the watchdog had to remove the channel");
    drop(dog);
    finish(ch, guard);
}

/// `recv_batch` passes up to `max` waiting messages in order, in place,
/// and releases them together at the end (head does not move while `f`
/// runs); SPSC and MPSC.
#[test]
fn recv_batch_reads_in_order_and_releases_at_the_end() {
    // In a child of its own: the attachment count is exact there.
    in_child(|| {
        for flavor in [shmchan::Flavor::Spsc, shmchan::Flavor::Mpsc] {
            let (ch, _guard) = fresh(Options::default().flavor(flavor).capacity(4096));
            let mut tx = ch.sender().unwrap();
            let mut rx = ch.receiver().unwrap();
            for i in 0..10u8 {
                tx.send(&[i; 24]).unwrap();
            }
            let head = ch.stats().unwrap().head;
            // One attachment: this process's (an inspection's own is not counted).
            assert_eq!(ch.stats().unwrap().attached, 1);
            assert_eq!(Channel::inspect(ch.key()).unwrap().attached, 1);
            let mut seen = Vec::new();
            let n = rx
                .recv_batch(4, |m| {
                    assert_eq!(ch.stats().unwrap().head, head, "released inside the batch");
                    seen.push(m.to_vec());
                })
                .unwrap();
            assert_eq!(n, 4);
            assert_eq!(seen, (0..4u8).map(|i| vec![i; 24]).collect::<Vec<_>>());
            assert_eq!(ch.stats().unwrap().head, head + 4 * 32, "{flavor}");
            let n = rx.recv_batch(100, |m| seen.push(m.to_vec())).unwrap();
            assert_eq!(n, 6);
            assert_eq!(seen, (0..10u8).map(|i| vec![i; 24]).collect::<Vec<_>>());
            drop(tx);
            assert!(rx.recv_batch(8, |_| panic!("nothing is left")).is_err());
        }
    });
}

/// `recv_batch` of at most zero messages is a read of zero bytes: `Ok(0)`,
/// `f` never called, the waiting message still there.
#[test]
fn recv_batch_of_zero_takes_nothing() {
    let (ch, guard) = fresh(Options::default().capacity(4096));
    let mut tx = ch.sender().unwrap();
    let mut rx = ch.receiver().unwrap();
    tx.send(b"kept").unwrap();
    let mut called = 0;
    assert_eq!(rx.recv_batch(0, |_| called += 1), Ok(0));
    assert_eq!(called, 0);
    assert_eq!(&*rx.try_recv().unwrap(), b"kept");
    drop((tx, rx));
    finish(ch, guard);
}

/// The iterators tell the end of the stream from an error that stopped
/// them: `Disconnected` after the last message; `Forked` for an inherited
/// receiver in a child; `Corrupted` for a forged header; `Empty` for a
/// drained `try_iter`.
#[test]
fn iterators_say_why_they_ended() {
    let (ch, guard) = fresh(Options::default().capacity(4096));
    let mut tx = ch.sender().unwrap();
    let mut rx = ch.receiver().unwrap();
    for m in [&b"a"[..], b"b"] {
        tx.send(m).unwrap();
    }
    let mut it = rx.try_iter();
    assert_eq!(it.ended_by(), None);
    assert_eq!(it.by_ref().count(), 2);
    assert_eq!(it.ended_by(), Some(&TryRecvError::Empty));
    tx.send(b"c").unwrap();
    // An inherited receiver: the child's iteration ends at once, Forked.
    let mut child = spawn(|| {
        let mut it = rx.iter();
        let none = it.next().is_none();
        i32::from(!(none && it.ended_by() == Some(&shmchan::RecvError::Forked)))
    });
    assert_eq!(child.wait(), 0, "the child's iteration did not end Forked");
    drop(tx);
    let mut it = rx.iter();
    assert_eq!(it.by_ref().collect::<Vec<_>>(), vec![b"c".to_vec()]);
    assert_eq!(it.ended_by(), Some(&shmchan::RecvError::Disconnected));
    // A forged header of an unknown kind: the iteration stops on Corrupted.
    let (ch2, guard2) = fresh(Options::default().capacity(4096));
    let mut tx2 = ch2.sender().unwrap();
    let mut rx2 = ch2.receiver().unwrap();
    tx2.send(b"x").unwrap();
    with_raw_segment(ch2.key(), |b| {
        let at = shmchan::layout::HEADER_SIZE;
        b[at..at + 8].copy_from_slice(&shmchan::layout::record_header(7, 1).to_ne_bytes());
    });
    let mut it = rx2.try_iter();
    assert_eq!(it.by_ref().count(), 0);
    assert!(
        matches!(it.ended_by(), Some(TryRecvError::Corrupted(_))),
        "{:?}",
        it.ended_by()
    );
    drop((tx2, rx2, rx));
    finish(ch2, guard2);
    finish(ch, guard);
}

/// `recv_into`, `try_recv_into` and `recv_timeout_into` copy each message
/// out whole (every length up to the maximum, across many wraps) and
/// release its space at once; the iterators copy the same way.
#[test]
fn the_copying_receives_deliver_every_byte_and_release_the_space() {
    let (ch, guard) = fresh(Options::default().capacity(1024).max_message(255));
    let mut tx = ch.sender().unwrap();
    let mut rx = ch.receiver().unwrap();
    let mut buf = vec![9u8; 3]; // replaced, not appended to
    for seq in 0..3000u64 {
        let want = payload(seq, 255);
        tx.send(&want).unwrap();
        let n = match seq % 3 {
            0 => rx.recv_into(&mut buf).unwrap(),
            1 => rx.try_recv_into(&mut buf).unwrap(),
            _ => rx
                .recv_timeout_into(&mut buf, Duration::from_secs(5))
                .unwrap(),
        };
        assert_eq!(n, want.len(), "message {seq}");
        assert_eq!(buf, want, "message {seq}");
    }
    assert!(matches!(
        rx.try_recv_into(&mut buf),
        Err(TryRecvError::Empty)
    ));
    for seq in 0..3 {
        tx.send(&payload(seq, 255)).unwrap();
    }
    let got: Vec<_> = rx.try_iter().collect();
    assert_eq!(got, (0..3).map(|s| payload(s, 255)).collect::<Vec<_>>());
    drop((tx, rx));
    finish(ch, guard);
}
