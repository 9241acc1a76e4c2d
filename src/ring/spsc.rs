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

use std::ops::{Deref, DerefMut};

use super::cursor::Cursor;
use super::wake::Wakeups;
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

/// The producing end. Not `Sync`: one owner at a time.
#[derive(Debug)]
pub struct Producer<'a> {
    view: RingView<'a>,
    /// Our position: the end of what we committed (equal to the shared
    /// `tail` unless `pending`).
    tail: u64,
    /// The consumer's `head` as last seen; may be stale (behind).
    cached_head: u64,
    /// Records committed with `commit_unpublished` and not yet published.
    pending: bool,
    /// Receivers claimed by our publishes that the caller must post for.
    wake: Wakeups,
}

impl<'a> Producer<'a> {
    /// Takes the producing end of `view`, continuing from the shared `tail`.
    ///
    /// # Safety
    /// No other SPSC producer of this ring (in any thread or process) is
    /// used while this one is.
    pub unsafe fn new(view: RingView<'a>) -> Result<Producer<'a>, Corrupted> {
        let st = view.state();
        // Relaxed: `tail` is our own position, left by an earlier producer
        // (this one may replace one that exited). We write only past it,
        // into space that the Acquire load of head below (or in `free`)
        // orders after the consumer's reads, and those after the earlier
        // producer's writes; nothing the earlier producer wrote is read.
        // (In a channel, the registration's semop also orders this load
        // after the earlier producer's last store.)
        let tail = st.producer.tail.load(Ordering::Relaxed);
        // Acquire: pairs with the Release store of head in
        // Cursor::release_to, so the consumer's reads of the space up to
        // head happened before our writes to it (the `restart` loom model
        // checks this).
        let head = st.consumer.head.load(Ordering::Acquire);
        view.check_span(head, tail)?;
        Ok(Producer {
            view,
            tail,
            cached_head: head,
            pending: false,
            wake: Wakeups::default(),
        })
    }

    /// The view this producer works on.
    pub fn view(&self) -> &RingView<'a> {
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
        // Acquire: pairs with the Release store of head in
        // Cursor::release_to, so the consumer's reads of the space we are
        // about to reuse happened before our writes to it.
        let head = self.view.state().consumer.head.load(Ordering::Acquire);
        let used = self.view.check_span(head, self.tail)?;
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
            // Relaxed: the store of tail below (Release) publishes it;
            // atomic, as every word another process may write.
            self.view
                .region()
                .atomic_u64(idx)
                .store(record_header(kind::PADDING, pad_len), Ordering::Relaxed);
            self.publish(self.tail.wrapping_add(contiguous));
        }
        Err(ReserveError::Full)
    }

    /// Publishes a reserved record whose payload has been written.
    ///
    /// # Safety
    /// `r` is the reservation this producer's `try_reserve` returned last,
    /// not yet committed.
    pub unsafe fn commit(&mut self, r: Reservation) {
        debug_assert_eq!(r.start, self.tail);
        self.write_header(r);
        self.publish(r.end);
    }

    /// Writes a reserved record's header like [`Producer::commit`] but
    /// does not publish it: it becomes visible to the consumer with the
    /// next store of `tail` (the next commit, a padding record, or
    /// [`Producer::publish_pending`]), so a batch of records costs one
    /// store of `tail`, and one look at it.
    ///
    /// # Safety
    /// As for [`Producer::commit`].
    pub unsafe fn commit_unpublished(&mut self, r: Reservation) {
        debug_assert_eq!(r.start, self.tail);
        self.write_header(r);
        self.tail = r.end;
        self.pending = true;
    }

    /// Stores the header word of reservation `r` (free, unpublished space:
    /// the callers' contract).
    #[inline]
    fn write_header(&self, r: Reservation) {
        // Relaxed: the store of tail that publishes the record (Release)
        // orders it; atomic, as every word another process may write.
        self.view
            .region()
            .atomic_u64(self.view.index(r.start))
            .store(
                record_header(kind::MESSAGE, r.len as u32),
                Ordering::Relaxed,
            );
    }

    /// Publishes the records committed with
    /// [`Producer::commit_unpublished`] since the last store of `tail`
    /// (one Release store for all of them); nothing when there are none.
    #[inline]
    pub fn publish_pending(&mut self) {
        if self.pending {
            self.publish(self.tail);
        }
    }

    /// Copies `msg` into the ring as one record.
    #[cfg(any(shmchan_loom, feature = "internals", test))]
    pub fn try_push(&mut self, msg: &[u8]) -> Result<(), ReserveError> {
        let r = self.try_reserve(msg.len())?;
        // SAFETY: the reservation is free, unpublished space, ours until
        // the commit; it is the one try_reserve just returned.
        unsafe {
            self.view.region().write(r.data_offset, msg);
            self.commit(r);
        }
        Ok(())
    }

    #[inline]
    fn publish(&mut self, tail: u64) {
        self.tail = tail;
        self.pending = false;
        // Release (PUBLISH): pairs with the Acquire load of tail in
        // Cursor::refresh; makes the record's header and payload visible
        // before the new tail.
        self.view.state().producer.tail.store(tail, PUBLISH);
        // At most one receiver sleeps: we owe at most one post, even if
        // someone forged a larger count.
        self.wake
            .claim_after_publish(&self.view.state().wake.recv_waiters, 1);
    }

    /// The posts owed to a sleeping receiver.
    #[inline]
    pub fn wakeups(&mut self) -> &mut Wakeups {
        &mut self.wake
    }
}

/// The consuming end: a [`Cursor`] (which it derefs to, for `advance`,
/// `release`, `consume` and the wake-ups) and the SPSC record format. Not
/// `Sync`: one owner at a time.
#[derive(Debug)]
pub struct Consumer<'a> {
    cursor: Cursor<'a>,
}

impl<'a> Deref for Consumer<'a> {
    type Target = Cursor<'a>;
    fn deref(&self) -> &Cursor<'a> {
        &self.cursor
    }
}

impl DerefMut for Consumer<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.cursor
    }
}

impl<'a> Consumer<'a> {
    /// Takes the consuming end of `view`, continuing from the shared `head`
    /// (the first record not yet released).
    ///
    /// # Safety
    /// No other consumer of this ring (in any thread or process) is used
    /// while this one is.
    pub unsafe fn new(view: RingView<'a>) -> Result<Consumer<'a>, Corrupted> {
        let st = view.state();
        // Relaxed: `head` is our own position, left by an earlier consumer.
        // We read only records before tail (ordered by the Acquire below),
        // and our later Release of head orders our reads for the producer;
        // the earlier consumer's reads were ordered by its own Release.
        // (In a channel, the registration's semop also orders this load.)
        let head = st.consumer.head.load(Ordering::Relaxed);
        // Acquire: pairs with the Release store of tail in Producer::publish.
        let tail = st.producer.tail.load(Ordering::Acquire);
        view.check_span(head, tail)?;
        Ok(Consumer {
            cursor: Cursor::new(view, head, tail, false),
        })
    }

    /// Whether a record (or padding) is waiting, reloading `tail` if the
    /// cache says empty.
    pub fn has_data(&mut self) -> Result<bool, Corrupted> {
        if self.cursor.cached_available() != 0 {
            return Ok(true);
        }
        Ok(self.cursor.refresh()? > 0)
    }

    /// The next committed record, if any, without releasing it. Padding is
    /// skipped (and released if nothing else is held).
    pub fn try_peek(&mut self) -> Result<Option<Record>, Corrupted> {
        // At most two rounds: padding only ever runs to the end of the
        // region, so the record after it starts at index 0 and is not padding.
        for _ in 0..2 {
            let c = &mut self.cursor;
            let mut avail = c.cached_available();
            if avail == 0 {
                avail = c.refresh()?;
                if avail == 0 {
                    return Ok(None);
                }
            }
            let read = c.position();
            let view = *c.view();
            let idx = view.index(read);
            // Relaxed: the header lies before tail (avail > 0): published,
            // and ordered by our Acquire load of tail. Loaded once, as an
            // atomic: a writer outside the protocol can change the word,
            // not what this one load returned.
            let word = view.region().atomic_u64(idx).load(Ordering::Relaxed);
            let (k, len) = split_record_header(word);
            match k {
                kind::MESSAGE => {
                    let rec = view.check_record("message record does not fit", read, len, avail)?;
                    return Ok(Some(Record {
                        data_offset: idx + RECORD_HEADER,
                        len: len as usize,
                        end: read.wrapping_add(rec),
                    }));
                }
                kind::PADDING => {
                    let size = (RECORD_HEADER + len as usize) as u64;
                    let room = view.capacity() - idx as u64;
                    if idx == 0 || size != room || size > avail {
                        return Err(Corrupted::new(
                            "padding record does not end the region",
                            [read, u64::from(len), avail],
                        ));
                    }
                    c.skip(size);
                }
                _ => {
                    return Err(Corrupted::new(
                        "unknown record kind",
                        [read, u64::from(k), u64::from(len)],
                    ))
                }
            }
        }
        Err(Corrupted::new(
            "padding follows padding",
            [
                self.cursor.position(),
                self.cursor.head(),
                self.cursor.cached_tail(),
            ],
        ))
    }
}

#[cfg(all(test, not(shmchan_loom)))]
mod tests {
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
        let ring = HeapRing::new(64, 56);
        let (mut p, mut c) = endpoints(&ring);
        assert_eq!(
            p.try_push(&[0; 57]),
            Err(ReserveError::TooLarge { len: 57, max: 56 })
        );
        p.try_push(&[1; 56]).unwrap();
        assert_eq!(p.try_push(&[]), Err(ReserveError::Full));
        assert_eq!(pop(&mut c).unwrap(), vec![1; 56]);
        p.try_push(&[]).unwrap();
        assert_eq!(pop(&mut c).unwrap(), Vec::<u8>::new());
        assert_eq!(pop(&mut c), None);
    }

    #[test]
    fn batch_release_holds_space_until_released() {
        let ring = HeapRing::new(64, 56);
        let (mut p, mut c) = endpoints(&ring);
        for i in 0..4u8 {
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
        // SAFETY: see the top of the module (each fails, nothing is used).
        unsafe {
            assert!(Consumer::new(ring.view()).is_err());
            assert!(Producer::new(ring.view()).is_err());
        }
        // SAFETY: one thread; a forged tail for the next call to see.
        unsafe { ring.state() }
            .producer
            .tail
            .store(16, Ordering::Relaxed);
        // SAFETY: the only consumer.
        let mut c = unsafe { Consumer::new(ring.view()) }.unwrap();
        // kind 7
        forge(&ring, 0, record_header(7, 0));
        assert!(c.try_peek().is_err());
        // a length past tail
        forge(&ring, 0, record_header(kind::MESSAGE, 40));
        assert!(c.try_peek().is_err());
        // padding that does not reach the end
        forge(&ring, 0, record_header(kind::PADDING, 8));
        assert!(c.try_peek().is_err());
        // a good record still reads
        forge(&ring, 0, record_header(kind::MESSAGE, 8));
        assert_eq!(c.try_peek().unwrap().unwrap().len, 8);
    }
}
