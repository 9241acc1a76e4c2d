//! The SPSC ring's unit tests (one thread, a `HeapRing`).

use super::*;
use crate::ring::heap::HeapRing;

// SAFETY (for every `unsafe` below): each test runs on one thread, with
// one producer and one consumer per ring, and hands each record and
// reservation back to the endpoint that made it.

fn pop(c: &mut Consumer) -> Option<Vec<u8>> {
    let r = c.try_peek().unwrap()?;
    let mut v = vec![0; r.len];
    // SAFETY: see the comment above the function.
    unsafe {
        c.view().region().read(r.data_offset, &mut v);
        c.consume(r);
    }
    Some(v)
}

fn endpoints(ring: &HeapRing) -> (Producer<'_>, Consumer<'_>) {
    // SAFETY: see above; the caller makes no other endpoint.
    unsafe {
        (
            Producer::new(ring.view()).unwrap(),
            Consumer::new(ring.view()).unwrap(),
        )
    }
}

/// Writes the header word at `idx`.
fn forge(ring: &HeapRing, idx: usize, word: u64) {
    // SAFETY: one thread; no reference into the region is alive.
    unsafe { ring.view().region().write_u64(idx, word) }
}

#[test]
fn wraps_with_padding_and_keeps_order() {
    let ring = HeapRing::new(64, 56);
    let (mut p, mut c) = endpoints(&ring);
    let mut next = 0u8;
    let mut expect = 0u8;
    let mut sent = 0usize;
    for round in 0..500usize {
        let len = (round * 7) % 40;
        let msg = vec![next; len];
        match p.try_push(&msg) {
            Ok(()) => {
                next = next.wrapping_add(1);
                sent += 1;
            }
            Err(ReserveError::Full) => {}
            Err(e) => panic!("{e:?}"),
        }
        if round % 3 != 0 {
            while let Some(m) = pop(&mut c) {
                assert!(m.iter().all(|&b| b == expect));
                expect = expect.wrapping_add(1);
            }
        }
    }
    while let Some(m) = pop(&mut c) {
        assert!(m.iter().all(|&b| b == expect));
        expect = expect.wrapping_add(1);
    }
    assert_eq!(expect, next);
    assert!(sent > 100, "only {sent} messages went through");
}

#[test]
fn full_and_too_large() {
    // 64 bytes less the free word: the largest payload is 48.
    let ring = HeapRing::new(64, 56);
    let (mut p, mut c) = endpoints(&ring);
    assert_eq!(
        p.try_push(&[0; 49]),
        Err(ReserveError::TooLarge { len: 49, max: 48 })
    );
    p.try_push(&[1; 48]).unwrap();
    assert_eq!(p.try_push(&[]), Err(ReserveError::Full));
    assert_eq!(pop(&mut c).unwrap(), vec![1; 48]);
    p.try_push(&[]).unwrap();
    assert_eq!(pop(&mut c).unwrap(), Vec::<u8>::new());
    assert_eq!(pop(&mut c), None);
}

#[test]
fn the_word_past_the_last_record_is_always_zero() {
    // Records of every size across many wraps: the consumer must never
    // take what an earlier lap left (a header or payload bytes) at its
    // read position for a record. Payload bytes are 0xff, which would
    // read as an unknown kind, and earlier lengths differ, so a stale
    // word shows as an error or a wrong length.
    let ring = HeapRing::new(256, 248);
    let (mut p, mut c) = endpoints(&ring);
    let mut lens = std::collections::VecDeque::new();
    for round in 0..5_000usize {
        let len = (round * 37) % 120;
        match p.try_push(&vec![0xff; len]) {
            Ok(()) => lens.push_back(len),
            Err(ReserveError::Full) => {}
            Err(e) => panic!("{e:?}"),
        }
        if round % 5 != 0 {
            while let Some(m) = pop(&mut c) {
                assert_eq!(Some(m.len()), lens.pop_front());
            }
            assert!(lens.is_empty());
        }
        let (head, tail) = ring.view().positions();
        assert!(tail.wrapping_sub(head) <= 256 - 8);
    }
}

#[test]
fn a_batch_is_published_by_its_first_header() {
    let ring = HeapRing::new(256, 248);
    let (mut p, mut c) = endpoints(&ring);
    for i in 0..3u8 {
        let r = p.try_reserve(8).unwrap();
        // SAFETY: see the top of the module.
        unsafe {
            p.view().region().write(r.data_offset, &[i; 8]);
            p.commit_unpublished(r);
        }
        assert_eq!(pop(&mut c), None, "record {i} seen before the publish");
    }
    p.publish_pending();
    for i in 0..3u8 {
        assert_eq!(pop(&mut c).unwrap(), vec![i; 8]);
    }
    assert_eq!(pop(&mut c), None);
    assert_eq!(ring.view().positions(), (48, 48));
}

#[test]
fn a_successor_continues_past_records_published_after_the_stored_tail() {
    // A producer that dies between a publish and its store of tail
    // leaves published records past the shared tail: its successor
    // must not write over them.
    let ring = HeapRing::new(256, 248);
    let (mut p, mut c) = endpoints(&ring);
    p.try_push(&[1; 8]).unwrap();
    p.try_push(&[2; 16]).unwrap();
    // The producer is used no more: it "died" here.
    // SAFETY: one thread; the tail the dead producer did not store.
    unsafe { ring.state() }
        .producer
        .tail
        .store(16, Ordering::Relaxed);
    // SAFETY: the only producer now.
    let mut p = unsafe { Producer::new(ring.view()) }.unwrap();
    p.try_push(&[3; 4]).unwrap();
    assert_eq!(pop(&mut c).unwrap(), vec![1; 8]);
    assert_eq!(pop(&mut c).unwrap(), vec![2; 16]);
    assert_eq!(pop(&mut c).unwrap(), vec![3; 4]);
    assert_eq!(pop(&mut c), None);
    // The consumer ahead of the stored tail does not stop a successor
    // (the last producer is used no more).
    // SAFETY: as above.
    unsafe { ring.state() }
        .producer
        .tail
        .store(16, Ordering::Relaxed);
    // SAFETY: as above.
    let mut p = unsafe { Producer::new(ring.view()) }.unwrap();
    p.try_push(&[4; 1]).unwrap();
    assert_eq!(pop(&mut c).unwrap(), vec![4; 1]);
}

#[test]
fn batch_release_holds_space_until_released() {
    let ring = HeapRing::new(64, 56);
    let (mut p, mut c) = endpoints(&ring);
    // Three 16-byte records and the free word fill 56 of 64 bytes.
    for i in 0..3u8 {
        p.try_push(&[i; 8]).unwrap();
    }
    assert_eq!(p.try_push(&[9; 8]), Err(ReserveError::Full));
    for _ in 0..2 {
        let r = c.try_peek().unwrap().unwrap();
        // SAFETY: see the top of the module.
        unsafe { c.advance(r) };
    }
    assert_eq!(
        p.try_push(&[9; 8]),
        Err(ReserveError::Full),
        "read but not released"
    );
    c.release();
    p.try_push(&[9; 8]).unwrap();
}

#[test]
fn corrupted_positions_and_records_are_errors() {
    let ring = HeapRing::new(64, 56);
    // SAFETY: one thread; a forged tail for the next call to see.
    unsafe { ring.state() }
        .producer
        .tail
        .store(200, Ordering::Relaxed);
    // SAFETY: see the top of the module (it fails, nothing is used).
    assert!(unsafe { Producer::new(ring.view()) }.is_err());
    // SAFETY: one thread; a forged head for the next call to see.
    unsafe { ring.state() }
        .consumer
        .head
        .store(4, Ordering::Relaxed);
    // SAFETY: as above.
    assert!(unsafe { Consumer::new(ring.view()) }.is_err());
    // SAFETY: one thread; the positions put back.
    unsafe {
        ring.state().consumer.head.store(0, Ordering::Relaxed);
        ring.state().producer.tail.store(0, Ordering::Relaxed);
    }
    // SAFETY: the only consumer.
    let mut c = unsafe { Consumer::new(ring.view()) }.unwrap();
    // kind 7
    forge(&ring, 0, record_header(7, 0));
    assert!(c.try_peek().is_err());
    // SAFETY: the producer finds the broken record past tail.
    assert!(unsafe { Producer::new(ring.view()) }.is_err());
    // a length past the region less the free word
    forge(&ring, 0, record_header(kind::MESSAGE, 50));
    assert!(c.try_peek().is_err());
    // padding that does not reach the end
    forge(&ring, 0, record_header(kind::PADDING, 8));
    assert!(c.try_peek().is_err());
    // a good record still reads
    forge(&ring, 0, record_header(kind::MESSAGE, 8));
    assert_eq!(c.try_peek().unwrap().unwrap().len, 8);
}
