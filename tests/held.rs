//! Held receives (`Receiver::recv_held_into`, `release_held`): a held
//! message keeps its space until released, and a receiver that dies
//! holding messages leaves them, at the same positions, to the next one.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use shmchan::{Flavor, Options, TryRecvError};

fn options(flavor: Flavor) -> Options {
    Options::default()
        .flavor(flavor)
        .capacity(4096)
        .max_message(1000)
}

/// A child receives five messages held, releases the first two and is
/// SIGKILLed holding three: the next receiver gets those three again, at
/// the positions the child saw, and the ring's head is where the child
/// released to.
#[test]
fn a_receiver_killed_holding_messages_leaves_them_to_the_next_at_the_same_positions() {
    for flavor in [Flavor::Spsc, Flavor::Mpsc] {
        let (ch, guard) = fresh(options(flavor));
        let mut tx = ch.sender().unwrap();
        for i in 0..5u8 {
            tx.send(&[i; 200]).unwrap();
        }
        // The child reports the positions through shared memory.
        let shared = SharedCounters::new(6);
        let key = ch.key();
        let mut child = spawn(|| {
            let ch = shmchan::Channel::open(key).unwrap();
            let mut rx = ch.receiver().unwrap();
            let mut buf = Vec::new();
            let held: Vec<_> = (0..5)
                .map(|_| rx.recv_held_into(&mut buf).unwrap())
                .collect();
            assert!(rx.release_held(held[1]));
            for (i, h) in held.iter().enumerate() {
                shared.at(i).store(h.position(), Ordering::SeqCst);
            }
            shared.at(5).store(1, Ordering::SeqCst);
            sleep_forever()
        });
        assert!(wait_until(Duration::from_secs(30), || shared
            .at(5)
            .load(Ordering::SeqCst)
            == 1));
        child.kill();
        let mut rx = ch.receiver().unwrap();
        let mut buf = Vec::new();
        assert_eq!(
            ch.stats().unwrap().head,
            shared.at(2).load(Ordering::SeqCst),
            "{flavor:?}"
        );
        for i in 2..5 {
            let h = rx.try_recv_held_into(&mut buf).unwrap();
            assert_eq!(buf, [i as u8; 200], "{flavor:?}");
            assert_eq!(
                h.position(),
                shared.at(i).load(Ordering::SeqCst),
                "{flavor:?}"
            );
        }
        assert_eq!(rx.try_recv_held_into(&mut buf), Err(TryRecvError::Empty));
        assert!(rx.held_bytes() > 0);
        rx.release_all_held();
        assert_eq!(rx.held_bytes(), 0);
        let st = ch.stats().unwrap();
        assert_eq!(st.head, st.tail, "{flavor:?}");
        drop((rx, tx));
        finish(ch, guard);
    }
}

/// Held messages fill the ring (the sender is refused although everything
/// was received), a release makes room, and releasing twice, or a message
/// already released by another receive, frees nothing.
#[test]
fn held_messages_keep_their_space_until_released() {
    let (ch, guard) = fresh(options(Flavor::Spsc));
    let mut tx = ch.sender().unwrap();
    let mut rx = ch.receiver().unwrap();
    let mut buf = Vec::new();
    let mut held = Vec::new();
    while tx.try_send(&[7; 500]).is_ok() {
        held.push(rx.try_recv_held_into(&mut buf).unwrap());
    }
    assert!(
        held.len() >= 6,
        "a 4 KiB ring holds several 500-byte messages"
    );
    assert!(held.windows(2).all(|w| w[0].end() <= w[1].position()));
    assert_eq!(ch.stats().unwrap().head, held[0].position());
    assert!(tx.try_send(&[7; 500]).is_err(), "full: all of it is held");
    assert!(rx.release_held(held[1]));
    assert!(!rx.release_held(held[1]), "released twice");
    assert!(!rx.release_held(held[0]), "released with the second");
    assert_eq!(ch.stats().unwrap().head, held[1].end());
    tx.try_send(&[8; 500]).unwrap();
    let h = rx.try_recv_held_into(&mut buf).unwrap();
    assert_eq!(buf, [8; 500]);
    assert!(h.position() >= held.last().unwrap().end());
    // An ordinary receive releases what is held with its own message.
    tx.try_send(&[9; 10]).unwrap();
    assert_eq!(&*rx.try_recv().unwrap(), &[9; 10]);
    assert_eq!(rx.held_bytes(), 0);
    assert!(!rx.release_held(h));
    let n = held.len() as u64 + 2;
    drop((rx, tx));
    // The counters are stored when the receiver waits or goes.
    let st = ch.stats().unwrap();
    assert_eq!(st.head, st.tail);
    assert_eq!(st.counters.received_messages, n);
    finish(ch, guard);
}

/// A `Held` of another receiver (here, of another channel, at a position
/// that falls inside one of this channel's records) releases nothing.
#[test]
fn another_receivers_held_releases_nothing() {
    for flavor in [Flavor::Spsc, Flavor::Mpsc] {
        let (a, ga) = fresh(options(flavor));
        let (b, gb) = fresh(options(flavor));
        let (mut ta, mut tb) = (a.sender().unwrap(), b.sender().unwrap());
        let (mut ra, mut rb) = (a.receiver().unwrap(), b.receiver().unwrap());
        let mut buf = Vec::new();
        ta.send(&[1; 10]).unwrap();
        ta.send(&[2; 10]).unwrap();
        tb.send(&[3; 200]).unwrap();
        let small = ra.try_recv_held_into(&mut buf).unwrap();
        let _second = ra.try_recv_held_into(&mut buf).unwrap();
        let big = rb.try_recv_held_into(&mut buf).unwrap();
        assert!(small.end() < big.end(), "A's first record ends inside B's");
        assert!(!rb.release_held(small), "{flavor:?}");
        assert!(!ra.release_held(big), "{flavor:?}");
        assert_eq!(b.stats().unwrap().head, big.position());
        assert_eq!(a.stats().unwrap().head, small.position());
        assert!(rb.release_held(big));
        assert!(ra.release_held(small));
        drop((ra, rb, ta, tb));
        finish(a, ga);
        finish(b, gb);
    }
}
