//! The SPSC ring: one producer, one consumer, variable-length records.
//!
//! State, in positions (byte counts that only grow, `index = pos & mask`):
//! `{ head <= tail <= head + capacity }` (modulo 2^64: positions wrap), both multiples of 8.
//! - The producer owns `tail`. It writes a record (header word, payload)
//!   into free space, then publishes it with one Release store of `tail`.
//! - The consumer owns `head`. It reads records in `[head, tail)` and frees
//!   them with one Release store of `head` (per message, or per batch).
//! - Each side caches the other's position (`cached_head`, `cached_tail`,
//!   possibly stale, never ahead of the truth) and reloads it only when the
//!   cache says full or empty.
//! - A record never wraps: when one does not fit before the end of the
//!   region, the producer first publishes a padding record to the end.
//!
//! Every value read from shared memory is checked before use; a broken
//! invariant yields [`Corrupted`] and changes nothing.

use super::wake;
use super::{Corrupted, Record, Reservation, ReserveError, RingView};
use crate::layout::{kind, record_header, record_size, split_record_header, RECORD_HEADER};
use crate::sync::Ordering;

/// The Release ordering of a publishing store. Under the `shmchan_mutant`
/// cfg (with `shmchan_loom`) the producer's commit is weakened to Relaxed so
/// that the loom models can show they catch it.
#[cfg(not(all(shmchan_loom, shmchan_mutant)))]
const PUBLISH: Ordering = Ordering::Release;
#[cfg(all(shmchan_loom, shmchan_mutant))]
const PUBLISH: Ordering = Ordering::Relaxed;

/// Checks `tail - head` against the capacity and the alignment.
#[inline]
fn check_span(view: &RingView, head: u64, tail: u64) -> Result<u64, Corrupted> {
    let used = tail.wrapping_sub(head);
    if used > view.capacity() {
        return Err(Corrupted::new(
            "tail - head outside 0..=capacity",
            [head, tail, view.capacity()],
        ));
    }
    if !(head | tail).is_multiple_of(8) {
        return Err(Corrupted::new(
            "head or tail not a multiple of 8",
            [head, tail, view.capacity()],
        ));
    }
    Ok(used)
}

/// The producing end. Not `Sync`: one owner at a time.
#[derive(Debug)]
pub struct Producer {
    view: RingView,
    /// Our position: the end of what we published (equal to shared `tail`).
    tail: u64,
    /// The consumer's `head` as last seen; may be stale (behind).
    cached_head: u64,
    /// Waiters claimed by our publishes that the caller must still post for.
    wakeups: u32,
    /// Publishes and releases use the light fence (see
    /// [`wake::claim_with`]).
    light: bool,
}

impl Producer {
    /// Takes the producing end of `view`, continuing from the shared `tail`.
    pub fn new(view: RingView) -> Result<Producer, Corrupted> {
        let st = view.state();
        // Relaxed: `tail` is our own position, left by an earlier producer
        // (this one may replace one that exited). We write only past it,
        // into space that the Acquire load of head below (or in `free`)
        // orders after the consumer's reads, and those after the earlier
        // producer's writes; nothing the earlier producer wrote is read.
        // (In a channel, the registration's semop also orders this load
        // after the earlier producer's last store.)
        let tail = st.producer.tail.load(Ordering::Relaxed);
        // Acquire: pairs with the Release store of head in Consumer::release,
        // so the consumer's reads of the space up to head happened before
        // our writes to it (the `restart` loom model checks this).
        let head = st.consumer.head.load(Ordering::Acquire);
        check_span(&view, head, tail)?;
        Ok(Producer {
            view,
            tail,
            cached_head: head,
            wakeups: 0,
            light: false,
        })
    }

    /// The view this producer works on.
    pub fn view(&self) -> &RingView {
        &self.view
    }

    /// Free bytes, reloading `head` only if `need` does not fit the cache.
    #[inline]
    fn free(&mut self, need: u64) -> Result<u64, Corrupted> {
        let cap = self.view.capacity();
        let used = self.tail.wrapping_sub(self.cached_head);
        if cap - used.min(cap) >= need {
            return Ok(cap - used.min(cap));
        }
        // Acquire: pairs with the Release store of head in Consumer::release,
        // so the consumer's reads of the space we are about to reuse happened
        // before our writes to it.
        let head = self.view.state().consumer.head.load(Ordering::Acquire);
        let used = check_span(&self.view, head, self.tail)?;
        if head.wrapping_sub(self.cached_head) > cap {
            return Err(Corrupted::new(
                "head moved backwards",
                [self.cached_head, head, self.tail],
            ));
        }
        self.cached_head = head;
        Ok(cap - used)
    }

    /// Whether `try_reserve(len)` can make progress now: the record fits,
    /// or the padding that must precede it does.
    pub fn has_space(&mut self, len: usize) -> Result<bool, Corrupted> {
        let rec = record_size(len.min(self.view.max_message())) as u64;
        let contiguous = self.view.capacity() - self.view.index(self.tail) as u64;
        let need = if rec <= contiguous { rec } else { contiguous };
        Ok(self.free(need)? >= need)
    }

    /// Reserves space for a record of `len` payload bytes.
    ///
    /// May publish a padding record to reach the start of the region.
    pub fn try_reserve(&mut self, len: usize) -> Result<Reservation, ReserveError> {
        let max = self.view.max_message();
        if len > max {
            return Err(ReserveError::TooLarge { len, max });
        }
        let rec = record_size(len) as u64;
        // At most two rounds: the second starts at index 0, where any record
        // up to max_message fits the region.
        for _ in 0..2 {
            let idx = self.view.index(self.tail);
            let contiguous = self.view.capacity() - idx as u64;
            if rec <= contiguous {
                if self.free(rec).map_err(ReserveError::Corrupted)? < rec {
                    return Err(ReserveError::Full);
                }
                return Ok(Reservation {
                    start: self.tail,
                    data_offset: idx + RECORD_HEADER,
                    len,
                    end: self.tail.wrapping_add(rec),
                });
            }
            // Pad to the end of the region, then retry at index 0.
            if self.free(contiguous).map_err(ReserveError::Corrupted)? < contiguous {
                return Err(ReserveError::Full);
            }
            let pad_len = (contiguous - RECORD_HEADER as u64) as u32;
            self.view
                .region()
                .write_u64(idx, record_header(kind::PADDING, pad_len));
            self.publish(self.tail.wrapping_add(contiguous));
        }
        Err(ReserveError::Full)
    }

    /// Publishes a reserved record whose payload has been written.
    pub fn commit(&mut self, r: Reservation) {
        debug_assert_eq!(r.start, self.tail);
        let idx = self.view.index(r.start);
        self.view
            .region()
            .write_u64(idx, record_header(kind::MESSAGE, r.len as u32));
        self.publish(r.end);
    }

    /// Copies `msg` into the ring as one record.
    pub fn try_push(&mut self, msg: &[u8]) -> Result<(), ReserveError> {
        let r = self.try_reserve(msg.len())?;
        self.view.region().write(r.data_offset, msg);
        self.commit(r);
        Ok(())
    }

    #[inline]
    fn publish(&mut self, tail: u64) {
        self.tail = tail;
        // Release (PUBLISH): pairs with the Acquire load of tail in
        // Consumer::refresh; makes the record's header and payload visible
        // before the new tail.
        self.view.state().producer.tail.store(tail, PUBLISH);
        // At most one receiver sleeps (SPSC): we owe at most one post, even
        // if someone forged a larger count.
        if wake::claim_with(&self.view.state().wake.recv_waiters, self.light) > 0 {
            self.wakeups = 1;
        }
    }

    /// Use the light fence after publishing (see [`wake::claim_with`]):
    /// only in a process registered for `membarrier`'s global expedited
    /// barriers, with sleepers that issue one.
    pub fn set_light_fence(&mut self, light: bool) {
        self.light = light;
    }

    /// Returns, and resets, the number of sleeping receivers our publishes
    /// claimed: the caller posts the data semaphore that many times.
    #[inline]
    pub fn take_wakeups(&mut self) -> u32 {
        std::mem::take(&mut self.wakeups)
    }
}

/// The consuming end. Not `Sync`: one owner at a time.
#[derive(Debug)]
pub struct Consumer {
    view: RingView,
    /// Start of the next record to read; may be ahead of shared `head` by
    /// records read but not yet released (a batch).
    read: u64,
    /// Our released position (equal to shared `head`).
    head: u64,
    /// The producer's `tail` as last seen; may be stale (behind).
    cached_tail: u64,
    /// Waiters claimed by our releases that the caller must still post for.
    wakeups: u32,
    /// Publishes and releases use the light fence (see
    /// [`wake::claim_with`]).
    light: bool,
}

impl Consumer {
    /// Takes the consuming end of `view`, continuing from the shared `head`
    /// (the first record not yet released).
    pub fn new(view: RingView) -> Result<Consumer, Corrupted> {
        let st = view.state();
        // Relaxed: `head` is our own position, left by an earlier consumer.
        // We read only records before tail (ordered by the Acquire below),
        // and our later Release of head orders our reads for the producer;
        // the earlier consumer's reads were ordered by its own Release.
        // (In a channel, the registration's semop also orders this load.)
        let head = st.consumer.head.load(Ordering::Relaxed);
        // Acquire: pairs with the Release store of tail in Producer::publish.
        let tail = st.producer.tail.load(Ordering::Acquire);
        check_span(&view, head, tail)?;
        Ok(Consumer {
            view,
            read: head,
            head,
            cached_tail: tail,
            wakeups: 0,
            light: false,
        })
    }

    /// The view this consumer works on.
    pub fn view(&self) -> &RingView {
        &self.view
    }

    /// Reloads `tail`; returns the bytes readable from `read`.
    #[inline]
    fn refresh(&mut self) -> Result<u64, Corrupted> {
        // Acquire: pairs with the Release store of tail in Producer::publish,
        // so the records before it are fully written when we read them.
        let tail = self.view.state().producer.tail.load(Ordering::Acquire);
        check_span(&self.view, self.head, tail)?;
        if tail.wrapping_sub(self.read) > self.view.capacity() {
            return Err(Corrupted::new(
                "tail moved backwards",
                [self.read, tail, self.cached_tail],
            ));
        }
        self.cached_tail = tail;
        Ok(tail.wrapping_sub(self.read))
    }

    /// Whether a record (or padding) is waiting, reloading `tail` if the
    /// cache says empty.
    pub fn has_data(&mut self) -> Result<bool, Corrupted> {
        if self.cached_tail != self.read {
            return Ok(true);
        }
        Ok(self.refresh()? > 0)
    }

    /// The next committed record, if any, without releasing it. Padding is
    /// skipped (and released if nothing else is held).
    pub fn try_peek(&mut self) -> Result<Option<Record>, Corrupted> {
        // At most two rounds: padding only ever runs to the end of the
        // region, so the record after it starts at index 0 and is not padding.
        for _ in 0..2 {
            let mut avail = self.cached_tail.wrapping_sub(self.read);
            if avail == 0 {
                avail = self.refresh()?;
                if avail == 0 {
                    return Ok(None);
                }
            }
            let idx = self.view.index(self.read);
            let (k, len) = split_record_header(self.view.region().read_u64(idx));
            let len = len as usize;
            let room = self.view.capacity() - idx as u64;
            match k {
                kind::MESSAGE => {
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
                    let size = (RECORD_HEADER + len) as u64;
                    if idx == 0 || size != room || size > avail {
                        return Err(Corrupted::new(
                            "padding record does not end the region",
                            [self.read, len as u64, avail],
                        ));
                    }
                    self.read = self.read.wrapping_add(size);
                    if self.head.wrapping_add(size) == self.read {
                        self.release_to(self.read);
                    }
                }
                _ => {
                    return Err(Corrupted::new(
                        "unknown record kind",
                        [self.read, u64::from(k), len as u64],
                    ))
                }
            }
        }
        Err(Corrupted::new(
            "padding follows padding",
            [self.read, self.head, self.cached_tail],
        ))
    }

    /// Marks `r` (the record last returned by `try_peek`) as read; it stays
    /// in the ring until [`Consumer::release`].
    pub fn advance(&mut self, r: Record) {
        self.read = r.end;
    }

    /// Frees every record read so far with one Release store of `head`.
    pub fn release(&mut self) {
        if self.head != self.read {
            self.release_to(self.read);
        }
    }

    /// Reads and frees `r` at once (one message per release).
    pub fn consume(&mut self, r: Record) {
        self.read = r.end;
        self.release_to(r.end);
    }

    #[inline]
    fn release_to(&mut self, head: u64) {
        self.head = head;
        // Release: pairs with the Acquire load of head in Producer::free, so
        // our reads of the freed records happen before the producer reuses
        // the space.
        self.view
            .state()
            .consumer
            .head
            .store(head, Ordering::Release);
        // At most one sender sleeps (SPSC); see Producer::publish.
        if wake::claim_with(&self.view.state().wake.send_waiters, self.light) > 0 {
            self.wakeups = 1;
        }
    }

    /// Bytes read but not yet released.
    pub fn unreleased(&self) -> u64 {
        self.read.wrapping_sub(self.head)
    }

    /// Use the light fence after publishing (see [`wake::claim_with`]):
    /// only in a process registered for `membarrier`'s global expedited
    /// barriers, with sleepers that issue one.
    pub fn set_light_fence(&mut self, light: bool) {
        self.light = light;
    }

    /// Returns, and resets, the number of sleeping senders our releases
    /// claimed: the caller posts the space semaphore that many times.
    #[inline]
    pub fn take_wakeups(&mut self) -> u32 {
        std::mem::take(&mut self.wakeups)
    }
}

#[cfg(all(test, not(shmchan_loom)))]
mod tests {
    use super::*;
    use crate::ring::HeapRing;

    fn pop(c: &mut Consumer) -> Option<Vec<u8>> {
        let r = c.try_peek().unwrap()?;
        let mut v = vec![0; r.len];
        c.view().region().read(r.data_offset, &mut v);
        c.consume(r);
        Some(v)
    }

    #[test]
    fn wraps_with_padding_and_keeps_order() {
        let ring = HeapRing::new(64, 56);
        let mut p = Producer::new(ring.view()).unwrap();
        let mut c = Consumer::new(ring.view()).unwrap();
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
        let ring = HeapRing::new(64, 56);
        let mut p = Producer::new(ring.view()).unwrap();
        assert_eq!(
            p.try_push(&[0; 57]),
            Err(ReserveError::TooLarge { len: 57, max: 56 })
        );
        p.try_push(&[1; 56]).unwrap();
        assert_eq!(p.try_push(&[]), Err(ReserveError::Full));
        let mut c = Consumer::new(ring.view()).unwrap();
        assert_eq!(pop(&mut c).unwrap(), vec![1; 56]);
        p.try_push(&[]).unwrap();
        assert_eq!(pop(&mut c).unwrap(), Vec::<u8>::new());
        assert_eq!(pop(&mut c), None);
    }

    #[test]
    fn batch_release_holds_space_until_released() {
        let ring = HeapRing::new(64, 56);
        let mut p = Producer::new(ring.view()).unwrap();
        let mut c = Consumer::new(ring.view()).unwrap();
        for i in 0..4u8 {
            p.try_push(&[i; 8]).unwrap();
        }
        assert_eq!(p.try_push(&[9; 8]), Err(ReserveError::Full));
        for _ in 0..2 {
            let r = c.try_peek().unwrap().unwrap();
            c.advance(r);
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
        let mut ring = HeapRing::new(64, 56);
        ring.state().producer.tail.store(200, Ordering::Relaxed);
        assert!(Consumer::new(ring.view()).is_err());
        assert!(Producer::new(ring.view()).is_err());
        ring.state().producer.tail.store(16, Ordering::Relaxed);
        let mut c = Consumer::new(ring.view()).unwrap();
        // kind 7
        ring.data_mut()[..8].copy_from_slice(&record_header(7, 0).to_ne_bytes());
        assert!(c.try_peek().is_err());
        // a length past tail
        ring.data_mut()[..8].copy_from_slice(&record_header(kind::MESSAGE, 40).to_ne_bytes());
        assert!(c.try_peek().is_err());
        // padding that does not reach the end
        ring.data_mut()[..8].copy_from_slice(&record_header(kind::PADDING, 8).to_ne_bytes());
        assert!(c.try_peek().is_err());
        // a good record still reads
        ring.data_mut()[..8].copy_from_slice(&record_header(kind::MESSAGE, 8).to_ne_bytes());
        assert_eq!(c.try_peek().unwrap().unwrap().len, 8);
    }
}
