//! The MPSC ring: many producers (threads or processes), one consumer.
//!
//! Work in progress toward the MPSC flavor: the algorithm and its tests;
//! the channel does not use it yet (`Flavor::Mpsc` still returns
//! `Unsupported`), and the recovery of a record claimed by a producer that
//! died before committing is still to come.
//!
//! Positions are as in SPSC (`head <= tail <= head + capacity`, modulo
//! 2^64, multiples of 8), but `tail` is the end of the *claimed* space:
//! - A producer claims `[t, t + need)` with a CAS of `tail`. When its record
//!   does not fit before the end of the region, the claim also covers the
//!   gap, which it fills with a padding record.
//! - It marks its record as in progress (the header's high half is
//!   [`CLAIM_BIT`] | its pid), writes the payload, and commits with one
//!   Release store of the header (`kind::MESSAGE`). An aborted reservation
//!   becomes padding of the record's size.
//! - The consumer reads headers in order with Acquire loads and stops at
//!   the first record that is not committed (header zero: claimed but not
//!   yet marked; or in progress). Before it releases space (one Release
//!   store of `head`) it zeroes it, so every header beyond `head` reads as
//!   zero until a producer writes it.
//!
//! Unlike SPSC, padding may sit anywhere in the region (aborted grants).

use super::wake;
use super::{Corrupted, Record, Reservation, ReserveError, RingView};
use crate::layout::{kind, record_header, record_size, split_record_header, RECORD_HEADER};
use crate::sync::Ordering;

/// Set in the high half of a record header while its producer writes it;
/// the rest of the high half is the producer's pid.
pub const CLAIM_BIT: u32 = 0x8000_0000;

/// The most sleeping senders one release wakes (a forged count in the
/// segment must not turn into a storm of posts).
pub const MAX_WAKEUPS: u32 = 1 << 16;

/// A producing end. Any number may work on one ring at once.
#[derive(Debug)]
pub struct Producer {
    view: RingView,
    /// The consumer's `head` as last seen; may be stale (behind).
    cached_head: u64,
    /// High half of our in-progress headers: `CLAIM_BIT | pid`.
    claim: u32,
    /// Receivers claimed by our commits that the caller must post for.
    wakeups: u32,
}

impl Producer {
    /// A producer that marks its claims with `pid`.
    pub fn new(view: RingView, pid: u32) -> Result<Producer, Corrupted> {
        // Acquire: pairs with the Release store of head in
        // Consumer::release_to: the consumer's reads (and zeroing) of the
        // space up to head happened before our writes to it.
        let head = view.state().consumer.head.load(Ordering::Acquire);
        if !head.is_multiple_of(8) {
            return Err(Corrupted::new("head not a multiple of 8", [head, 0, 0]));
        }
        Ok(Producer {
            view,
            cached_head: head,
            claim: CLAIM_BIT | (pid & !CLAIM_BIT),
            wakeups: 0,
        })
    }

    /// The view this producer works on.
    pub fn view(&self) -> &RingView {
        &self.view
    }

    /// Claims space for a record of `len` payload bytes and marks it in
    /// progress; the caller writes the payload and then calls
    /// [`Producer::commit`] or [`Producer::abort`].
    pub fn try_reserve(&mut self, len: usize) -> Result<Reservation, ReserveError> {
        let max = self.view.max_message();
        if len > max {
            return Err(ReserveError::TooLarge { len, max });
        }
        let cap = self.view.capacity();
        let rec = record_size(len) as u64;
        let st = self.view.state();
        // Relaxed: the CAS below is what makes a claim exclusive; nothing
        // is published through tail (records are published by their
        // headers).
        let mut tail = st.producer.tail.load(Ordering::Relaxed);
        let (start, pad) = loop {
            let contiguous = cap - self.view.index(tail) as u64;
            let (pad, need) = if rec <= contiguous {
                (0, rec)
            } else {
                (contiguous, contiguous + rec)
            };
            let used = tail.wrapping_sub(self.cached_head);
            if used > cap || cap - used < need {
                // Acquire: pairs with the Release store of head in
                // Consumer::release_to (see `new`).
                let head = st.consumer.head.load(Ordering::Acquire);
                let used = tail.wrapping_sub(head);
                if used > cap || !(head | tail).is_multiple_of(8) {
                    // Our tail may be stale (the consumer moved past it).
                    let now = st.producer.tail.load(Ordering::Relaxed);
                    if now != tail {
                        tail = now;
                        continue;
                    }
                    return Err(ReserveError::Corrupted(Corrupted::new(
                        "tail - head outside 0..=capacity",
                        [head, tail, cap],
                    )));
                }
                self.cached_head = head;
                if cap - used < need {
                    return Err(ReserveError::Full);
                }
            }
            // Relaxed: see the load of tail above.
            match st.producer.tail.compare_exchange_weak(
                tail,
                tail.wrapping_add(need),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break (tail.wrapping_add(pad), pad),
                Err(now) => tail = now,
            }
        };
        let region = self.view.region();
        if pad > 0 {
            // Release: pairs with the consumer's Acquire load of the header;
            // the gap's content does not matter, only its header.
            region.atomic_u64(self.view.index(tail)).store(
                record_header(kind::PADDING, (pad - 8) as u32),
                Ordering::Release,
            );
        }
        let idx = self.view.index(start);
        // Relaxed: an in-progress mark publishes nothing; the consumer only
        // waits on it.
        region
            .atomic_u64(idx)
            .store(record_header(self.claim, len as u32), Ordering::Relaxed);
        Ok(Reservation {
            start,
            data_offset: idx + RECORD_HEADER,
            len,
            end: start.wrapping_add(rec),
        })
    }

    /// Publishes a reserved record whose payload has been written.
    pub fn commit(&mut self, r: Reservation) {
        // Release: pairs with the Acquire load of the header in
        // Consumer::try_peek; makes the payload visible before the header.
        self.view
            .region()
            .atomic_u64(self.view.index(r.start))
            .store(
                record_header(kind::MESSAGE, r.len as u32),
                Ordering::Release,
            );
        self.claim_receiver();
    }

    /// Gives a reservation up: the record becomes padding of its size.
    pub fn abort(&mut self, r: Reservation) {
        let size = r.end.wrapping_sub(r.start);
        // Release: pairs with the Acquire load in Consumer::try_peek (the
        // padding's bytes are never read, so nothing else is ordered).
        self.view
            .region()
            .atomic_u64(self.view.index(r.start))
            .store(
                record_header(kind::PADDING, (size - 8) as u32),
                Ordering::Release,
            );
        // The padding may unblock records committed after it.
        self.claim_receiver();
    }

    /// The wake protocol after a header store (see [`wake`]): claims a
    /// sleeping receiver, whom the caller must post for.
    fn claim_receiver(&mut self) {
        // One receiver sleeps at most; a larger count is forged.
        if wake::claim(&self.view.state().wake.recv_waiters) > 0 {
            self.wakeups = 1;
        }
    }

    /// Returns, and resets, the number of sleeping receivers our commits
    /// claimed: the caller posts the data semaphore that many times.
    pub fn take_wakeups(&mut self) -> u32 {
        std::mem::take(&mut self.wakeups)
    }

    /// Copies `msg` into the ring as one record.
    pub fn try_push(&mut self, msg: &[u8]) -> Result<(), ReserveError> {
        let r = self.try_reserve(msg.len())?;
        self.view.region().write(r.data_offset, msg);
        self.commit(r);
        Ok(())
    }
}

/// What the consumer found at its read position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// Nothing claimed past the read position.
    Empty,
    /// Claimed, but the producer has not marked it yet (header zero).
    Unmarked,
    /// Marked in progress by the producer with this pid.
    InProgress(u32),
}

/// The consuming end.
#[derive(Debug)]
pub struct Consumer {
    view: RingView,
    /// Start of the next record to read (ahead of `head` by what is held).
    read: u64,
    /// Our released position (equal to shared `head`).
    head: u64,
    /// The claimed end as last seen.
    cached_tail: u64,
    /// Why the last `try_peek` found nothing.
    blocked: Blocked,
    wakeups: u32,
}

impl Consumer {
    /// Takes the consuming end of `view`, continuing from the shared `head`.
    pub fn new(view: RingView) -> Result<Consumer, Corrupted> {
        let st = view.state();
        // Relaxed: our own position (see spsc::Consumer::new).
        let head = st.consumer.head.load(Ordering::Relaxed);
        // Relaxed: tail only says how far producers claimed; records are
        // published by their headers.
        let tail = st.producer.tail.load(Ordering::Relaxed);
        let used = tail.wrapping_sub(head);
        if used > view.capacity() || !(head | tail).is_multiple_of(8) {
            return Err(Corrupted::new(
                "tail - head outside 0..=capacity",
                [head, tail, view.capacity()],
            ));
        }
        Ok(Consumer {
            view,
            read: head,
            head,
            cached_tail: tail,
            blocked: Blocked::Empty,
            wakeups: 0,
        })
    }

    /// The view this consumer works on.
    pub fn view(&self) -> &RingView {
        &self.view
    }

    /// Why the last [`Consumer::try_peek`] that returned `None` stopped.
    pub fn blocked(&self) -> Blocked {
        self.blocked
    }

    fn refresh(&mut self) -> Result<u64, Corrupted> {
        // Relaxed: see `new`.
        let tail = self.view.state().producer.tail.load(Ordering::Relaxed);
        let cap = self.view.capacity();
        if tail.wrapping_sub(self.head) > cap
            || tail.wrapping_sub(self.read) > cap
            || !tail.is_multiple_of(8)
        {
            return Err(Corrupted::new(
                "tail outside head..=head + capacity",
                [self.head, self.read, tail],
            ));
        }
        self.cached_tail = tail;
        Ok(tail.wrapping_sub(self.read))
    }

    /// The next committed record, if any, without releasing it. Padding is
    /// skipped (and released if nothing else is held).
    pub fn try_peek(&mut self) -> Result<Option<Record>, Corrupted> {
        let cap = self.view.capacity();
        // Each round skips at least 8 bytes of padding.
        for _ in 0..=cap / 8 {
            let mut avail = self.cached_tail.wrapping_sub(self.read);
            if avail == 0 {
                avail = self.refresh()?;
                if avail == 0 {
                    self.blocked = Blocked::Empty;
                    return Ok(None);
                }
            }
            let idx = self.view.index(self.read);
            let room = cap - idx as u64;
            // Acquire: pairs with the Release store of the header in
            // Producer::commit (and abort): the payload is written.
            let word = self.view.region().atomic_u64(idx).load(Ordering::Acquire);
            let (high, len) = split_record_header(word);
            match high {
                0 if len == 0 => {
                    self.blocked = Blocked::Unmarked;
                    return Ok(None);
                }
                kind::MESSAGE => {
                    let len = len as usize;
                    let rec = record_size(len) as u64;
                    if len > self.view.max_message() || rec > room || rec > avail {
                        return Err(Corrupted::new(
                            "message record does not fit",
                            [self.read, len as u64, avail],
                        ));
                    }
                    return Ok(Some(Record {
                        data_offset: idx + RECORD_HEADER,
                        len,
                        end: self.read.wrapping_add(rec),
                    }));
                }
                kind::PADDING => {
                    let size = RECORD_HEADER as u64 + u64::from(len);
                    if !size.is_multiple_of(8) || size > room || size > avail {
                        return Err(Corrupted::new(
                            "padding record does not fit",
                            [self.read, u64::from(len), avail],
                        ));
                    }
                    let held = self.read != self.head;
                    self.read = self.read.wrapping_add(size);
                    if !held {
                        self.release_to(self.read);
                    }
                }
                h if h & CLAIM_BIT != 0 => {
                    self.blocked = Blocked::InProgress(h & !CLAIM_BIT);
                    return Ok(None);
                }
                _ => {
                    return Err(Corrupted::new(
                        "unknown record kind",
                        [self.read, u64::from(high), u64::from(len)],
                    ))
                }
            }
        }
        Err(Corrupted::new(
            "more padding records than the ring holds",
            [self.read, self.head, self.cached_tail],
        ))
    }

    /// Marks `r` (the record last returned by `try_peek`) as read.
    pub fn advance(&mut self, r: Record) {
        self.read = r.end;
    }

    /// Frees every record read so far.
    pub fn release(&mut self) {
        if self.head != self.read {
            self.release_to(self.read);
        }
    }

    /// Reads and frees `r` at once.
    pub fn consume(&mut self, r: Record) {
        self.read = r.end;
        self.release_to(r.end);
    }

    fn release_to(&mut self, head: u64) {
        // Zero what we free, so that headers past head read as zero until
        // a producer writes them. Records never wrap, so the range is at
        // most two pieces.
        let cap = self.view.capacity();
        let mut pos = self.head;
        while pos != head {
            let idx = self.view.index(pos);
            let n = (cap - idx as u64).min(head.wrapping_sub(pos));
            self.view.region().zero(idx, n as usize);
            pos = pos.wrapping_add(n);
        }
        self.head = head;
        // Release: pairs with the Acquire loads of head in Producer::new and
        // Producer::try_reserve: our reads and zeroing of the freed space
        // happen before a producer reuses it.
        self.view
            .state()
            .consumer
            .head
            .store(head, Ordering::Release);
        let claimed = wake::claim(&self.view.state().wake.send_waiters).min(MAX_WAKEUPS);
        self.wakeups = self.wakeups.saturating_add(claimed).min(MAX_WAKEUPS);
    }

    /// Returns, and resets, the number of sleeping senders our releases
    /// claimed.
    pub fn take_wakeups(&mut self) -> u32 {
        std::mem::take(&mut self.wakeups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::HeapRing;
    use std::sync::Arc;

    fn pop(c: &mut Consumer) -> Option<Vec<u8>> {
        let r = c.try_peek().unwrap()?;
        let mut v = vec![0u8; r.len];
        c.view().region().read(r.data_offset, &mut v);
        c.consume(r);
        Some(v)
    }

    #[test]
    fn commit_abort_wrap_and_in_progress() {
        let ring = HeapRing::new(64, 56);
        let mut a = Producer::new(ring.view(), 10).unwrap();
        let mut b = Producer::new(ring.view(), 20).unwrap();
        let mut c = Consumer::new(ring.view()).unwrap();
        // a: [0, 24) committed later; b: [24, 40) aborted; a: [40, 56).
        let ra = a.try_reserve(16).unwrap();
        let rb = b.try_reserve(8).unwrap();
        assert_eq!(c.try_peek().unwrap(), None);
        assert_eq!(c.blocked(), Blocked::InProgress(10));
        b.abort(rb);
        assert_eq!(c.try_peek().unwrap(), None, "a's record blocks the rest");
        ring.view().region().write(ra.data_offset, &[1; 16]);
        a.commit(ra);
        assert_eq!(pop(&mut c).unwrap(), vec![1; 16]);
        a.try_push(b"ab").unwrap(); // [40, 56)
        assert_eq!(pop(&mut c).unwrap(), b"ab", "aborted padding skipped");
        // 8 bytes left before the end: a 16-byte record claims the gap too.
        a.try_push(b"wrapped!").unwrap();
        assert_eq!(ring.state().producer.tail.load(Ordering::Relaxed), 80);
        assert_eq!(pop(&mut c).unwrap(), b"wrapped!");
        assert_eq!(c.try_peek().unwrap(), None);
        assert_eq!(c.blocked(), Blocked::Empty);
        // A receiver announced asleep is claimed by the next commit, once.
        wake::announce(&ring.state().wake.recv_waiters);
        a.try_push(b"wake").unwrap();
        assert_eq!(a.take_wakeups(), 1);
        assert_eq!(a.take_wakeups() + b.take_wakeups(), 0);
        assert_eq!(pop(&mut c).unwrap(), b"wake");
        // Everything consumed is zero again.
        let mut ring = ring;
        assert!(ring.data_mut().iter().all(|&b| b == 0));
    }

    #[test]
    fn full_and_too_large() {
        let ring = HeapRing::new(64, 56);
        let mut p = Producer::new(ring.view(), 1).unwrap();
        let mut c = Consumer::new(ring.view()).unwrap();
        p.try_push(&[7; 56]).unwrap();
        assert!(matches!(p.try_push(b"x"), Err(ReserveError::Full)));
        assert!(matches!(
            p.try_reserve(57),
            Err(ReserveError::TooLarge { len: 57, max: 56 })
        ));
        assert_eq!(pop(&mut c).unwrap(), vec![7; 56]);
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
            let ring = HeapRing::new(64, 56);
            let mut p = Producer::new(ring.view(), 1).unwrap();
            let mut c = Consumer::new(ring.view()).unwrap();
            p.try_push(b"hello").unwrap();
            ring.view()
                .region()
                .atomic_u64(0)
                .store(word, Ordering::Relaxed);
            assert!(c.try_peek().is_err(), "word {word:#x} accepted");
        }
    }

    /// Four producer threads, one consumer: nothing lost or duplicated,
    /// every message intact, per-producer order kept, across many wraps.
    #[test]
    fn four_producers_per_producer_fifo() {
        const PER: u64 = 20_000;
        let ring = Arc::new(HeapRing::new(1024, 200));
        let producers: Vec<_> = (0..4u64)
            .map(|id| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    let mut p = Producer::new(ring.view(), id as u32 + 1).unwrap();
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
                                    p.abort(r);
                                }
                            }
                            match p.try_push(&msg) {
                                Ok(()) => break,
                                Err(ReserveError::Full) => std::thread::yield_now(),
                                Err(e) => panic!("{e:?}"),
                            }
                        }
                    }
                })
            })
            .collect();
        let mut c = Consumer::new(ring.view()).unwrap();
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
}
