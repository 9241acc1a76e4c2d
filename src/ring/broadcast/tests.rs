//! The broadcast ring's unit tests (one thread, a `HeapRing`).

use super::*;
use crate::ring::heap::HeapRing;
use crate::ring::ReserveError;

// SAFETY (for every `unsafe` below): each test runs on one thread, with
// one publisher per ring and one subscriber per slot, and hands each
// record and reservation back to the endpoint that made it; `alive`
// closures answer for slots the test controls.

fn sub<'a>(ring: &'a HeapRing, pid: u32, start: Start) -> Subscriber<'a> {
    let view = ring.view();
    // SAFETY: see the top of the module.
    unsafe {
        let slot = take_slot(&view, pid, &mut |_| true).expect("a free slot");
        Subscriber::join(view, slot, start, &mut || {}, std::time::Duration::ZERO).unwrap()
    }
}

/// The next message: `Ok(None)` when empty, `Err(missed)` when lapped.
fn pop(s: &mut Subscriber) -> Result<Option<Vec<u8>>, u64> {
    loop {
        match s.try_peek().unwrap() {
            Next::Empty => return Ok(None),
            Next::Record(r) => {
                let mut v = Vec::new();
                s.view().region().copy_out(r.data_offset, r.len, &mut v);
                if !s.overwrites() || s.intact() {
                    // SAFETY: see the top of the module.
                    unsafe { s.consume(r) };
                    return Ok(Some(v));
                }
            }
            Next::Lapped => {}
        }
        match s.lagged().unwrap() {
            0 => {}
            n => return Err(n),
        }
    }
}

fn msg(i: u32) -> Vec<u8> {
    let len = (i as usize * 7) % 40;
    let mut v = vec![i as u8; len.max(4)];
    v[..4].copy_from_slice(&i.to_le_bytes());
    v
}

#[test]
fn block_every_subscriber_gets_every_message_in_order() {
    let ring = HeapRing::broadcast(256, 248, 4, false);
    // SAFETY: the only publisher.
    let mut p = unsafe { publisher(ring.view()) }.unwrap();
    let mut a = sub(&ring, 1, Start::Newest);
    let mut b = sub(&ring, 2, Start::Newest);
    let (mut sent, mut got_a, mut got_b) = (0u32, 0u32, 0u32);
    let mut fulls = 0;
    for round in 0..3000u32 {
        match p.try_push(&msg(sent)) {
            Ok(()) => sent += 1,
            Err(ReserveError::Full) => fulls += 1,
            Err(e) => panic!("{e:?}"),
        }
        // a reads often, b rarely: b holds the publisher back.
        while let Some(m) = pop(&mut a).unwrap() {
            assert_eq!(m, msg(got_a));
            got_a += 1;
        }
        if round % 13 == 0 {
            while let Some(m) = pop(&mut b).unwrap() {
                assert_eq!(m, msg(got_b));
                got_b += 1;
            }
        }
    }
    while let Some(m) = pop(&mut b).unwrap() {
        assert_eq!(m, msg(got_b));
        got_b += 1;
    }
    assert_eq!((got_a, got_b), (sent, sent));
    assert!(sent > 500 && fulls > 500, "{sent} sent, {fulls} full");
}

#[test]
fn block_with_no_subscriber_never_waits_and_a_late_one_starts_at_the_newest() {
    let ring = HeapRing::broadcast(256, 248, 2, false);
    // SAFETY: the only publisher.
    let mut p = unsafe { publisher(ring.view()) }.unwrap();
    for i in 0..1000 {
        p.try_push(&msg(i)).unwrap();
    }
    let mut s = sub(&ring, 1, Start::Newest);
    assert_eq!(pop(&mut s), Ok(None));
    p.try_push(&msg(1000)).unwrap();
    assert_eq!(pop(&mut s), Ok(Some(msg(1000))));
    // From the oldest: what is left of the last laps, in order, up to
    // the newest.
    let mut o = sub(&ring, 2, Start::Oldest);
    let mut got = vec![];
    while let Some(m) = pop(&mut o).unwrap() {
        got.push(u32::from_le_bytes(m[..4].try_into().unwrap()));
    }
    assert!(got.len() > 3, "{got:?}");
    assert_eq!(*got.last().unwrap(), 1000);
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
}

#[test]
fn overwrite_a_slow_subscriber_is_told_exactly_what_it_missed() {
    let ring = HeapRing::broadcast(512, 248, 2, true);
    // SAFETY: the only publisher.
    let mut p = unsafe { publisher(ring.view()) }.unwrap();
    let mut fast = sub(&ring, 1, Start::Newest);
    let mut slow = sub(&ring, 2, Start::Newest);
    let (mut got, mut missed, mut lags) = (0u64, 0u64, 0);
    let mut next = 0u32;
    for i in 0..5000u32 {
        p.try_push(&msg(i))
            .expect("an overwriting publisher never waits");
        assert_eq!(pop(&mut fast), Ok(Some(msg(i))));
        if i % 97 == 0 {
            loop {
                match pop(&mut slow) {
                    Ok(Some(m)) => {
                        let seq = u32::from_le_bytes(m[..4].try_into().unwrap());
                        assert_eq!(seq, next, "a message out of order");
                        assert_eq!(m, msg(seq), "a torn message");
                        next += 1;
                        got += 1;
                    }
                    Ok(None) => break,
                    Err(n) => {
                        missed += n;
                        lags += 1;
                        next += n as u32;
                    }
                }
            }
        }
    }
    loop {
        match pop(&mut slow) {
            Ok(Some(_)) => got += 1,
            Ok(None) => break,
            Err(n) => {
                missed += n;
                lags += 1;
            }
        }
    }
    assert_eq!(got + missed, 5000);
    assert!(lags > 10 && missed > 1000, "{lags} lags, {missed} missed");
    let s = ring.view().subscriber_slot(slow.slot());
    assert_eq!(s.missed.load(Ordering::Relaxed), missed);
    assert_eq!(s.lagged.load(Ordering::Relaxed), lags);
}

#[test]
fn a_successor_publisher_finds_the_oldest_record_by_walking_its_predecessors() {
    // The first publisher's record starts are its own; a successor
    // walks the records it did not write to find the oldest one, and
    // the counts of a lagging subscriber stay exact across the change.
    let ring = HeapRing::broadcast(512, 248, 1, true);
    let mut slow = sub(&ring, 1, Start::Newest);
    let (mut next, mut got, mut missed) = (0u32, 0u64, 0u64);
    for half in 0..2 {
        // SAFETY: one publisher at a time (the first is dropped).
        let mut p = unsafe { publisher(ring.view()) }.unwrap();
        for i in 0..1000u32 {
            p.try_push(&msg(half * 1000 + i)).unwrap();
            if i % 50 == 0 {
                loop {
                    match pop(&mut slow) {
                        Ok(Some(m)) => {
                            let seq = u32::from_le_bytes(m[..4].try_into().unwrap());
                            assert_eq!(seq, next);
                            assert_eq!(m, msg(seq));
                            next += 1;
                            got += 1;
                        }
                        Ok(None) => break,
                        Err(n) => {
                            next += n as u32;
                            missed += n;
                        }
                    }
                }
            }
        }
    }
    loop {
        match pop(&mut slow) {
            Ok(Some(_)) => got += 1,
            Ok(None) => break,
            Err(n) => missed += n,
        }
    }
    assert_eq!(got + missed, 2000);
    assert!(missed > 100, "{missed}");
}

#[test]
fn a_dead_subscriber_is_released_and_a_live_one_never() {
    let ring = HeapRing::broadcast(256, 248, 2, false);
    // SAFETY: the only publisher.
    let mut p = unsafe { publisher(ring.view()) }.unwrap();
    let dead = sub(&ring, 7, Start::Newest);
    let live = sub(&ring, 8, Start::Newest);
    while p.try_push(&[1; 32]).is_ok() {}
    let tail = p.tail();
    // SAFETY: "7" is dead, "8" alive.
    let freed = unsafe {
        p.fan_ref()
            .recover(&ring.view(), tail, 48, &mut |pid| pid == 8)
    };
    assert_eq!(freed, 1);
    assert_eq!(
        p.try_push(&[1; 32]),
        Err(ReserveError::Full),
        "8 holds it back"
    );
    // SAFETY: as above.
    let freed = unsafe {
        p.fan_ref()
            .recover(&ring.view(), tail, 48, &mut |pid| pid == 8)
    };
    assert_eq!(freed, 0);
    // SAFETY: the subscriber leaves; the publisher goes on.
    unsafe { live.leave() };
    p.try_push(&[1; 32]).unwrap();
    // The dead one's slot is taken by the next joiner.
    assert_eq!(dead.slot(), sub(&ring, 9, Start::Newest).slot());
}

#[test]
fn a_joiner_waits_for_a_front_within_a_ring() {
    let ring = HeapRing::broadcast(256, 248, 1, false);
    // A forged front far ahead of every start: the join gives up.
    // One thread; a forged value for the join to see.
    ring.view().lap().front.store(1 << 20, Ordering::Relaxed);
    let view = ring.view();
    // SAFETY: see the top of the module.
    let slot = unsafe { take_slot(&view, 1, &mut |_| true) }.unwrap();
    // SAFETY: as above.
    assert!(unsafe {
        Subscriber::join(
            view,
            slot,
            Start::Newest,
            &mut || {},
            std::time::Duration::ZERO,
        )
    }
    .is_err());
}
