//! The MPSC ring's unit tests, each on a heap ring.
//!
//! SAFETY (for the helpers below and every `unsafe` block): each test has
//! one consumer per ring and one producer per slot; records and
//! reservations go back to the endpoint that made them; a pid that
//! `alive` calls dead belongs to a producer the test never uses again
//! (it stands for a killed process).

use super::*;
use crate::layout::{kind, record_header, NO_CLAIM};
use crate::ring::heap::HeapRing;
use crate::ring::wake;
use crate::ring::{Corrupted, ReserveError};
use crate::sync::Ordering;
use std::sync::Arc;

fn pop(c: &mut Consumer) -> Option<Vec<u8>> {
    let r = c.try_peek().unwrap()?;
    let mut v = vec![0u8; r.len];
    // SAFETY: see the module docs.
    unsafe {
        c.view().region().read(r.data_offset, &mut v);
        c.consume(r);
    }
    Some(v)
}

fn slot(
    view: &crate::ring::RingView,
    pid: u32,
    alive: &mut dyn FnMut(u32) -> bool,
) -> Option<usize> {
    // SAFETY: see the module docs.
    unsafe { take_slot(view, pid, alive) }
}

fn producer<'a>(view: crate::ring::RingView<'a>, slot: usize, pid: u32) -> Producer<'a> {
    // SAFETY: see the module docs.
    unsafe { Producer::new(view, slot, pid) }.unwrap()
}

fn consumer(view: crate::ring::RingView<'_>) -> Consumer<'_> {
    // SAFETY: see the module docs.
    unsafe { Consumer::new(view) }.unwrap()
}

fn recover(c: &mut Consumer, alive: &mut dyn FnMut(u32) -> bool) -> Result<Recovery, Corrupted> {
    // SAFETY: see the module docs.
    unsafe { c.try_recover(alive) }
}

/// `n` producers (pids 10, 20, ...) in slots 0..n of `ring`, and its
/// consumer.
fn setup(ring: &HeapRing, n: u32) -> (Vec<Producer<'_>>, Consumer<'_>) {
    let ps = (0..n)
        .map(|i| {
            let pid = 10 * (i + 1);
            let s = slot(&ring.view(), pid, &mut |_| true).unwrap();
            producer(ring.view(), s, pid)
        })
        .collect();
    (ps, consumer(ring.view()))
}

fn zeroed(ring: HeapRing) -> bool {
    let mut ring = ring;
    ring.data_mut().iter().all(|&b| b == 0)
}

#[test]
fn commit_abort_wrap_and_in_progress() {
    let ring = HeapRing::with_senders(64, 56, 8);
    let (mut ps, mut c) = setup(&ring, 2);
    let (a, b) = ps.split_at_mut(1);
    let (a, b) = (&mut a[0], &mut b[0]);
    // a: [0, 24) committed later; b: [24, 40) aborted; a: [40, 56).
    let ra = a.try_reserve(16).unwrap();
    let rb = b.try_reserve(8).unwrap();
    assert_eq!(c.try_peek().unwrap(), None);
    assert_eq!(c.blocked(), Blocked::InProgress(10));
    // SAFETY: see the module docs.
    unsafe { b.abort(rb) };
    assert_eq!(c.try_peek().unwrap(), None, "a's record blocks the rest");
    // SAFETY: see the module docs (a's reservation).
    unsafe { ring.view().region().write(ra.data_offset, &[1; 16]) };
    // SAFETY: see the module docs.
    unsafe { a.commit(ra) };
    assert_eq!(pop(&mut c).unwrap(), vec![1; 16]);
    a.try_push(b"ab").unwrap(); // [40, 56)
    assert_eq!(pop(&mut c).unwrap(), b"ab", "aborted padding skipped");
    // 8 bytes left before the end: a 16-byte record claims the gap too.
    a.try_push(b"wrapped!").unwrap();
    assert_eq!(ring.view().positions().1, 80);
    assert_eq!(pop(&mut c).unwrap(), b"wrapped!");
    assert_eq!(c.try_peek().unwrap(), None);
    assert_eq!(c.blocked(), Blocked::Empty);
    // A receiver announced asleep is claimed by the next commit, once.
    wake::announce(&ring.view().wake_line().recv_waiters);
    a.try_push(b"wake").unwrap();
    assert_eq!(a.wakeups().take(), 1);
    assert_eq!(a.wakeups().take() + b.wakeups().take(), 0);
    assert_eq!(pop(&mut c).unwrap(), b"wake");
    drop(ps);
    assert!(zeroed(ring), "everything consumed is zero again");
}

#[test]
fn full_and_too_large() {
    let _ring = HeapRing::with_senders(64, 56, 8);
    let (mut ps, mut c) = setup(&_ring, 1);
    let p = &mut ps[0];
    // The largest payload of a 64-byte ring is 48 (max_message_for).
    p.try_push(&[7; 48]).unwrap();
    p.try_push(b"").unwrap();
    assert!(!p.has_space(1).unwrap());
    assert!(matches!(p.try_push(b"x"), Err(ReserveError::Full)));
    assert!(matches!(
        p.try_reserve(49),
        Err(ReserveError::TooLarge { len: 49, max: 48 })
    ));
    assert_eq!(pop(&mut c).unwrap(), vec![7; 48]);
    assert_eq!(pop(&mut c).unwrap(), b"");
    assert!(p.has_space(1).unwrap());
    p.try_push(b"x").unwrap();
    assert_eq!(pop(&mut c).unwrap(), b"x");
}

#[test]
fn forged_headers_are_corrupted_not_panics() {
    for word in [
        record_header(kind::MESSAGE, 1000),
        record_header(kind::PADDING, 3),
        record_header(kind::PADDING, 1 << 20),
        record_header(7, 1),
        u64::from(u32::MAX),
    ] {
        let ring = HeapRing::with_senders(64, 56, 8);
        let (mut ps, mut c) = setup(&ring, 1);
        ps[0].try_push(b"hello").unwrap();
        ring.view()
            .region()
            .atomic_u64(0)
            .store(word, Ordering::Relaxed);
        assert!(c.try_peek().is_err(), "word {word:#x} accepted");
    }
    // An in-progress header of a dead pid whose length does not fit.
    let ring = HeapRing::with_senders(64, 56, 8);
    let (mut ps, mut c) = setup(&ring, 1);
    ps[0].try_push(b"hello").unwrap();
    ring.view()
        .region()
        .atomic_u64(0)
        .store(record_header(CLAIM_BIT | 5, 500), Ordering::Relaxed);
    assert_eq!(c.try_peek().unwrap(), None);
    assert!(recover(&mut c, &mut |_| false).is_err());
}

#[test]
fn slots_are_taken_freed_and_reclaimed_only_when_consumed() {
    let ring = HeapRing::with_senders(64, 56, 2);
    let v = ring.view();
    let a = slot(&v, 1, &mut |_| true).unwrap();
    let b = slot(&v, 2, &mut |_| true).unwrap();
    assert_ne!(a, b);
    assert_eq!(slot(&v, 3, &mut |_| true), None, "all owners alive");
    // Pid 2 dies having claimed (unmarked) at position 0: its slot
    // names an unconsumed claim and is not taken over.
    let mut pb = producer(v, b, 2);
    pb.try_reserve_until(8, Stage::Claimed).unwrap();
    let mut alive2 = |pid: u32| pid != 2;
    assert_eq!(slot(&v, 3, &mut alive2), None);
    // Once the consumer has recovered and released it, it is.
    let mut c = consumer(v);
    assert_eq!(c.try_peek().unwrap(), None);
    assert_eq!(
        recover(&mut c, &mut alive2).unwrap(),
        Recovery::Recovered {
            pid: Some(2),
            size: 16
        }
    );
    assert_eq!(c.try_peek().unwrap(), None);
    assert_eq!(c.blocked(), Blocked::Empty);
    assert_eq!(slot(&v, 3, &mut alive2), Some(b));
    // A slot given back is free for anyone.
    producer(v, a, 1).leave();
    assert_eq!(slot(&v, 4, &mut |_| true), Some(a));
}

/// A live producer is never skipped, at any stage; a dead one costs
/// only its own record, at any stage.
#[test]
fn recovery_at_every_stage_and_never_of_the_living() {
    for stage in [Stage::Claimed, Stage::RecordMarked, Stage::Reserved] {
        for wrap in [false, true] {
            let ring = HeapRing::with_senders(128, 100, 8);
            let (mut ps, mut c) = setup(&ring, 2);
            let (a, b) = ps.split_at_mut(1);
            let (a, b) = (&mut a[0], &mut b[0]);
            if wrap {
                // Leave 24 bytes before the end: a 24-byte record
                // claims the gap as well.
                a.try_push(&[0; 96]).unwrap();
                assert_eq!(pop(&mut c).unwrap(), vec![0; 96]);
            }
            // a (pid 10) claims and stops at `stage`; b commits after.
            a.try_reserve_until(20, stage).unwrap();
            b.try_push(b"after").unwrap();
            assert_eq!(c.try_peek().unwrap(), None);
            // Alive: never skipped, however often asked.
            for _ in 0..3 {
                assert_eq!(
                    recover(&mut c, &mut |_| true).unwrap(),
                    Recovery::Alive(10),
                    "{stage:?} wrap={wrap}"
                );
            }
            assert_eq!(c.try_peek().unwrap(), None);
            // Dead: its claim becomes padding (in one or two steps: the
            // gap, then the record), b's message arrives.
            let mut dead10 = |pid: u32| pid != 10;
            let mut recovered = 0;
            let got = loop {
                if let Some(m) = pop(&mut c) {
                    break m;
                }
                match recover(&mut c, &mut dead10).unwrap() {
                    Recovery::Recovered { pid, .. } => {
                        assert!(pid.is_none() || pid == Some(10));
                        recovered += 1;
                    }
                    r => panic!("{stage:?} wrap={wrap}: {r:?}"),
                }
                assert!(recovered <= 2);
            };
            assert_eq!(got, b"after", "{stage:?} wrap={wrap}");
            assert_eq!(recover(&mut c, &mut dead10).unwrap(), Recovery::Empty);
            drop(ps);
            assert!(zeroed(ring), "{stage:?} wrap={wrap}");
        }
    }
}

/// A sender that lost the CAS for the position a dead sender then
/// claimed, and now waits for space (the dead claim keeps the ring
/// full), does not keep the receiver from recovering that claim.
#[test]
fn a_waiting_loser_of_the_cas_does_not_block_recovery() {
    let ring = HeapRing::with_senders(64, 56, 8);
    let (mut ps, mut c) = setup(&ring, 2);
    ps[0].try_reserve_until(48, Stage::Claimed).unwrap(); // [0, 56), pid 10
                                                          // Pid 20 read tail 0 and lost the CAS to pid 10: its slot names 0.
    let slot = ps[1].slot();
    ring.view()
        .sender_slot(slot)
        .claim
        .store(0, Ordering::Relaxed);
    let mut dead10 = |p: u32| p != 10;
    assert_eq!(recover(&mut c, &mut dead10).unwrap(), Recovery::Alive(20));
    // It retries, finds the ring full and waits: its slot names nothing.
    assert!(matches!(ps[1].try_push(&[1; 8]), Err(ReserveError::Full)));
    assert!(matches!(
        recover(&mut c, &mut dead10).unwrap(),
        Recovery::Recovered { pid: Some(10), .. }
    ));
    assert_eq!(c.try_peek().unwrap(), None);
    ps[1].try_push(&[1; 8]).unwrap();
    assert_eq!(pop(&mut c).unwrap(), vec![1; 8]);
}

/// A receiver killed while zeroing what it released (after zeroing,
/// before storing head) leaves zero headers at head. The live producer
/// whose record was there does not name it any more (its slot names a
/// position only until it marks), so the successor recovers the span
/// instead of waiting for that producer for ever.
#[test]
fn zeros_left_by_a_receiver_killed_in_release_are_recovered() {
    let ring = HeapRing::with_senders(64, 56, 8);
    let (mut ps, mut c) = setup(&ring, 1);
    ps[0].try_push(b"request").unwrap(); // [0, 16)
    assert_eq!(
        ring.view()
            .sender_slot(ps[0].slot())
            .claim
            .load(Ordering::Relaxed),
        NO_CLAIM
    );
    let r = c.try_peek().unwrap().unwrap();
    assert_eq!(r.end, 16);
    // The receiver zeroes [0, 16) and dies before storing head.
    // SAFETY: see the module docs (the dying receiver's span).
    unsafe { ring.view().region().zero(0, 16) };
    // A new receiver starts from the shared head (the old one is not used again).
    let mut c2 = consumer(ring.view());
    assert_eq!(c2.try_peek().unwrap(), None);
    assert_eq!(c2.blocked(), Blocked::Unmarked);
    assert_eq!(
        recover(&mut c2, &mut |_| true).unwrap(),
        Recovery::Recovered {
            pid: None,
            size: 16
        },
        "everyone is alive, but nobody claimed these zeros"
    );
    assert_eq!(c2.try_peek().unwrap(), None);
    assert_eq!(c2.blocked(), Blocked::Empty);
    ps[0].try_push(b"next").unwrap();
    assert_eq!(pop(&mut c2).unwrap(), b"next");
}

/// A misaligned tail written into the segment is `Corrupted` for a
/// sender, never a panic on an unaligned header word.
#[test]
fn misaligned_tail_is_corrupted_for_the_producer() {
    for tail in [4u64, 12, 61] {
        let ring = HeapRing::with_senders(64, 56, 8);
        let (mut ps, _c) = setup(&ring, 1);
        // SAFETY: one thread; a forged tail for the next call to see.
        unsafe { ring.state() }
            .producer
            .tail
            .store(tail, Ordering::Relaxed);
        assert!(
            matches!(ps[0].try_reserve(8), Err(ReserveError::Corrupted(_))),
            "tail {tail}"
        );
    }
}

/// Agrona's `unblock` cases: a full ring, a gap exactly one record
/// header long, and a record that did not fit at the wrap.
#[test]
fn recovery_edge_cases() {
    // A full ring whose first record is a dead unmarked claim.
    let _ring = HeapRing::with_senders(64, 56, 8);
    let (mut ps, mut c) = setup(&_ring, 2);
    ps[0].try_reserve_until(16, Stage::Claimed).unwrap(); // [0, 24)
    ps[1].try_push(&[2; 32]).unwrap(); // [24, 64): full
    assert!(matches!(ps[1].try_push(b""), Err(ReserveError::Full)));
    assert_eq!(
        recover(&mut c, &mut |p| p != 10).unwrap(),
        Recovery::Recovered {
            pid: Some(10),
            size: 24
        }
    );
    assert_eq!(pop(&mut c).unwrap(), vec![2; 32]);
    // The dead claim was the last one of a full ring: it ends at tail.
    let _ring = HeapRing::with_senders(64, 56, 8);
    let (mut ps, mut c) = setup(&_ring, 2);
    ps[1].try_push(&[3; 32]).unwrap(); // [0, 40)
    ps[0].try_reserve_until(16, Stage::Claimed).unwrap(); // [40, 64)
    assert_eq!(pop(&mut c).unwrap(), vec![3; 32]);
    assert_eq!(
        recover(&mut c, &mut |p| p != 10).unwrap(),
        Recovery::Recovered {
            pid: Some(10),
            size: 24
        }
    );
    assert_eq!(c.try_peek().unwrap(), None);
    assert_eq!(c.blocked(), Blocked::Empty);
    // A dead claim exactly one header long (an empty message), unmarked,
    // followed by an unmarked claim of a live producer: the bound comes
    // from the live one's slot, not from a scan into its space.
    let _ring = HeapRing::with_senders(64, 56, 8);
    let (mut ps, mut c) = setup(&_ring, 3);
    ps[0].try_reserve_until(0, Stage::Claimed).unwrap(); // [0, 8)
    let r = ps[1].try_reserve_until(8, Stage::Claimed).unwrap(); // [8, 24)
    ps[2].try_push(b"x").unwrap(); // [24, 40)
    assert_eq!(
        recover(&mut c, &mut |p| p != 10).unwrap(),
        Recovery::Recovered {
            pid: Some(10),
            size: 8
        }
    );
    assert_eq!(c.try_peek().unwrap(), None);
    assert_eq!(
        recover(&mut c, &mut |p| p != 10).unwrap(),
        Recovery::Alive(20)
    );
    // SAFETY: see the module docs.
    unsafe { ps[1].commit(r) };
    assert_eq!(pop(&mut c).unwrap(), vec![0; 8]);
    assert_eq!(pop(&mut c).unwrap(), b"x");
    // A gap of exactly one header at the wrap, claimed by a producer
    // that died before writing anything.
    let _ring = HeapRing::with_senders(64, 56, 8);
    let (mut ps, mut c) = setup(&_ring, 2);
    ps[1].try_push(&[4; 48]).unwrap(); // [0, 56)
    assert_eq!(pop(&mut c).unwrap(), vec![4; 48]);
    ps[0].try_reserve_until(1, Stage::Claimed).unwrap(); // gap [56, 64) + [64, 80)
    ps[1].try_push(b"y").unwrap(); // [80, 96)
    let mut dead10 = |p: u32| p != 10;
    assert_eq!(
        recover(&mut c, &mut dead10).unwrap(),
        Recovery::Recovered {
            pid: Some(10),
            size: 8
        },
        "the gap, up to the end of the region"
    );
    assert_eq!(c.try_peek().unwrap(), None);
    assert_eq!(
        recover(&mut c, &mut dead10).unwrap(),
        Recovery::Recovered {
            pid: None,
            size: 16
        },
        "the record after the gap, up to the next header"
    );
    assert_eq!(pop(&mut c).unwrap(), b"y");
}

/// Four producer threads, one consumer: nothing lost or duplicated,
/// every message intact, per-producer order kept, across many wraps.
#[test]
fn four_producers_per_producer_fifo() {
    const PER: u64 = 20_000;
    let ring = Arc::new(HeapRing::with_senders(1024, 200, 4));
    let producers: Vec<_> = (0..4u64)
        .map(|id| {
            let ring = ring.clone();
            std::thread::spawn(move || {
                let pid = id as u32 + 1;
                let slot = slot(&ring.view(), pid, &mut |_| true).unwrap();
                let mut p = producer(ring.view(), slot, pid);
                let mut msg = Vec::new();
                for seq in 0..PER {
                    let len = 16 + ((seq * 7 + id * 13) % 150) as usize;
                    msg.clear();
                    msg.extend_from_slice(&id.to_le_bytes());
                    msg.extend_from_slice(&seq.to_le_bytes());
                    msg.resize(len, (seq ^ id) as u8);
                    loop {
                        // Every fifth message goes through an aborted
                        // grant first.
                        if seq % 5 == 0 {
                            if let Ok(r) = p.try_reserve(len) {
                                // SAFETY: see the module docs.
                                unsafe { p.abort(r) };
                            }
                        }
                        match p.try_push(&msg) {
                            Ok(()) => break,
                            Err(ReserveError::Full) => std::thread::yield_now(),
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                }
                p.leave();
            })
        })
        .collect();
    let mut c = consumer(ring.view());
    let mut next = [0u64; 4];
    let mut total = 0;
    while total < 4 * PER {
        match pop(&mut c) {
            Some(m) => {
                let id = u64::from_le_bytes(m[..8].try_into().unwrap());
                let seq = u64::from_le_bytes(m[8..16].try_into().unwrap());
                assert_eq!(seq, next[id as usize], "producer {id} out of order");
                let len = 16 + ((seq * 7 + id * 13) % 150) as usize;
                assert_eq!(m.len(), len);
                assert!(m[16..].iter().all(|&b| b == (seq ^ id) as u8), "torn");
                next[id as usize] += 1;
                total += 1;
            }
            None => std::thread::yield_now(),
        }
    }
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(c.try_peek().unwrap(), None);
    assert_eq!(next, [PER; 4]);
}

/// A producer that gives up grant after grant (each becomes padding) while
/// the consumer reads: one look may skip more padding than the ring holds,
/// as long as each stretch came with a new tail. Never `Corrupted`.
#[test]
fn padding_from_many_aborts_is_not_corruption() {
    const ABORTS: u64 = 200_000;
    let ring = Arc::new(HeapRing::with_senders(64, 56, 2));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let ring = ring.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let s = slot(&ring.view(), 1, &mut |_| true).unwrap();
            let mut p = producer(ring.view(), s, 1);
            let mut aborted = 0;
            while aborted < ABORTS {
                if let Ok(r) = p.try_reserve(0) {
                    // SAFETY: see the module docs.
                    unsafe { p.abort(r) };
                    aborted += 1;
                }
            }
            while p.try_push(b"last").is_err() {}
            done.store(true, std::sync::atomic::Ordering::Release);
        })
    };
    let mut c = consumer(ring.view());
    let got = loop {
        match c.try_peek() {
            Ok(Some(_)) => break pop(&mut c).unwrap(),
            Ok(None) => std::hint::spin_loop(),
            Err(e) => panic!("a healthy ring read as corrupted: {e}"),
        }
    };
    assert_eq!(got, b"last");
    producer.join().unwrap();
    assert!(done.load(std::sync::atomic::Ordering::Acquire));
}

/// Every allowed message size can be sent whenever the ring is empty, at
/// any position: a record longer than the ring less the gap before the end
/// claims the gap alone first, and once the consumer has skipped that
/// padding (as in SPSC, one `Full` in between), the record at index 0.
/// (Before, the claim of gap and record needed more than the whole ring,
/// and the producer found it full for ever.)
#[test]
fn the_largest_message_fits_an_empty_ring_at_every_position() {
    for (cap, max) in [(64, 48), (128, 112), (128, 64), (4096, 4080)] {
        let ring = HeapRing::with_senders(cap, max, 2);
        let (mut ps, mut c) = setup(&ring, 1);
        let p = &mut ps[0];
        for step in 0..(2 * cap / 8) {
            // Move the empty ring's position on by 8 bytes (an empty message).
            p.try_push(b"").unwrap();
            assert_eq!(pop(&mut c).unwrap(), b"");
            let big = vec![step as u8; max];
            assert!(p.has_space(max).unwrap(), "cap {cap} max {max} step {step}");
            let mut fulls = 0;
            while let Err(e) = p.try_push(&big) {
                assert_eq!(e, ReserveError::Full, "cap {cap} max {max} step {step}");
                fulls += 1;
                assert_eq!(fulls, 1, "cap {cap} max {max} step {step}: full for ever");
                assert_eq!(c.try_peek().unwrap(), None, "only the gap's padding");
            }
            assert_eq!(pop(&mut c).unwrap(), big);
            assert_eq!(c.try_peek().unwrap(), None);
        }
    }
}
