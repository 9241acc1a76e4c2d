//! The consumer's positions, shared by both flavors.
//!
//! State, in positions (byte counts that only grow, `index = pos & mask`):
//! `{ head <= read <= cached_tail <= tail }` (modulo 2^64).
//! - `head` is ours and equal to the shared `head`: the start of the first
//!   record not yet released.
//! - `read` is the start of the next record to look at; it runs ahead of
//!   `head` by the records read but held (a [`Record`] in the caller's
//!   hand, a batch).
//! - `cached_tail` is the producers' `tail` as last loaded; possibly stale
//!   (behind), never ahead. Only the MPSC consumer loads it: the SPSC one
//!   finds records by their headers (see [`super::spsc`]), and its cursor
//!   keeps `cached_tail` at the position it started from.
//!
//! Releasing stores `head` with Release, then claims the producers that
//! announced they sleep for space (see [`super::wake`]). An MPSC cursor
//! first zeroes what it frees, so that every header past `head` reads as
//! zero until a producer writes it (the MPSC ring's commit protocol and
//! its recovery rely on it).

use super::wake::Wakeups;
use super::{Corrupted, Record, RingView};
use crate::layout::{kind, record_header, RECORD_HEADER};
use crate::sync::Ordering;

/// The most sleeping senders one release wakes: one per sender slot (each
/// sleeper is a sender holding one), so a forged count in the segment
/// cannot turn into a storm of posts, and below the semaphore maximum
/// (SEMVMX, 32,767: a post past it fails with `ERANGE`).
pub const MAX_WAKEUPS: u32 = crate::layout::MAX_SENDER_SLOTS as u32;

/// Whose positions a cursor keeps, which decides where it releases to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reader {
    /// The SPSC consumer: `head`.
    Spsc,
    /// The MPSC consumer: `head`, zeroing what it releases.
    Mpsc,
    /// A broadcast subscriber: the `position` (and `seq`) of its slot.
    Subscriber(usize),
}

/// A consumer's positions and owed wake-ups (see the module docs).
#[derive(Debug)]
pub struct Cursor<'a> {
    view: RingView<'a>,
    read: u64,
    head: u64,
    cached_tail: u64,
    /// The sequence number of the record at `read`: messages read past
    /// (broadcast subscribers store it with their position).
    seq: u64,
    reader: Reader,
    wake: Wakeups,
    /// The most posts one release may owe: 1 for SPSC (one sender at
    /// most), the number of sender slots for MPSC (at most
    /// [`MAX_WAKEUPS`]).
    max_wakeups: u32,
    /// MPSC: zero what is released, and wake senders in their slots.
    mpsc: bool,
}

impl<'a> Cursor<'a> {
    /// A broadcast subscriber's cursor in slot `slot`, at `pos`, whose
    /// record has sequence number `seq`.
    pub(crate) fn subscriber(view: RingView<'a>, slot: usize, pos: u64, seq: u64) -> Cursor<'a> {
        let mut c = Cursor::new(view, pos, pos, false);
        c.reader = Reader::Subscriber(slot);
        c.seq = seq;
        c
    }

    /// The sequence number of the record at the read position (public
    /// for the fuzz targets: a load of our own field).
    #[inline]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Moves a cursor that holds nothing to `pos`, whose record has
    /// sequence number `seq` (a lapped subscriber), and releases to it.
    pub(crate) fn reset(&mut self, pos: u64, seq: u64) {
        debug_assert_eq!(self.read, self.head);
        self.read = pos;
        self.seq = seq;
        self.release_to(pos);
    }
}

impl<'a> Cursor<'a> {
    /// A cursor at the shared `head`, with `tail` as first seen; `mpsc`
    /// zeroes what it releases and wakes any number of senders.
    pub(crate) fn new(view: RingView<'a>, head: u64, tail: u64, mpsc: bool) -> Cursor<'a> {
        Cursor {
            view,
            read: head,
            head,
            cached_tail: tail,
            seq: 0,
            reader: if mpsc { Reader::Mpsc } else { Reader::Spsc },
            wake: Wakeups::default(),
            // MPSC: one sleeper per sender slot at most.
            max_wakeups: if mpsc {
                (view.sender_slots() as u32).clamp(1, MAX_WAKEUPS)
            } else {
                1
            },
            mpsc,
        }
    }

    /// The view this cursor reads.
    #[inline]
    pub fn view(&self) -> &RingView<'a> {
        &self.view
    }

    /// The read position (the start of the next record).
    #[inline]
    pub fn position(&self) -> u64 {
        self.read
    }

    /// The released position (equal to the shared `head`).
    #[inline]
    pub(crate) fn head(&self) -> u64 {
        self.head
    }

    /// Bytes published (SPSC) or claimed (MPSC) past the read position, as
    /// last seen.
    #[inline]
    pub(crate) fn cached_available(&self) -> u64 {
        self.cached_tail.wrapping_sub(self.read)
    }

    /// Reloads `tail`; returns the bytes past the read position.
    #[inline]
    pub(crate) fn refresh(&mut self) -> Result<u64, Corrupted> {
        // Acquire: pairs with the Release CAS of tail in
        // mpsc::Producer::try_reserve (the claimant's slot store is visible
        // to try_recover). Only the MPSC consumer calls this.
        let tail = self.view.state().producer.tail.load(Ordering::Acquire);
        self.view.check_span(self.head, tail)?;
        if tail.wrapping_sub(self.read) > self.view.capacity() {
            return Err(Corrupted::new(
                "tail moved backwards",
                [self.read, tail, self.cached_tail],
            ));
        }
        self.cached_tail = tail;
        Ok(tail.wrapping_sub(self.read))
    }

    /// Steps over `size` bytes of padding at the read position, releasing
    /// them at once when nothing before them is held.
    #[inline]
    pub(crate) fn skip(&mut self, size: u64) {
        let held = self.read != self.head;
        self.read = self.read.wrapping_add(size);
        if !held {
            self.release_to(self.read);
        }
    }

    /// Marks `r` as read; it stays in the ring until [`Cursor::release`].
    ///
    /// # Safety
    /// `r` is the record this consumer's `try_peek` returned last, not yet
    /// advanced past or consumed.
    #[inline]
    pub unsafe fn advance(&mut self, r: Record) {
        self.read = r.end;
        self.seq = self.seq.wrapping_add(1);
    }

    /// Frees the records read so far up to `end`, the end of one of them:
    /// returns `false` (and frees nothing) unless `end` lies past the
    /// released position and not past the read position.
    #[inline]
    pub fn release_through(&mut self, end: u64) -> bool {
        let ahead = end.wrapping_sub(self.head);
        if ahead == 0 || ahead > self.read.wrapping_sub(self.head) {
            return false;
        }
        self.release_to(end);
        true
    }

    /// Frees every record read so far with one Release store of `head`.
    #[inline]
    pub fn release(&mut self) {
        if self.head != self.read {
            self.release_to(self.read);
        }
    }

    /// Reads and frees `r` at once (one message per release).
    ///
    /// # Safety
    /// As for [`Cursor::advance`].
    #[inline]
    pub unsafe fn consume(&mut self, r: Record) {
        self.read = r.end;
        self.seq = self.seq.wrapping_add(1);
        self.release_to(r.end);
    }

    /// The posts owed to sleeping senders.
    #[inline]
    pub fn wakeups(&mut self) -> &mut Wakeups {
        &mut self.wake
    }

    #[inline]
    fn release_to(&mut self, head: u64) {
        if let Reader::Subscriber(slot) = self.reader {
            self.release_slot_to(slot, head);
            return;
        }
        if self.mpsc {
            self.zero_to(head);
        }
        self.head = head;
        // Release: pairs with the Acquire loads of head in spsc::Producer
        // (new, free) and mpsc (Producer::new, try_reserve, take_slot): our
        // reads (and zeroing) of the freed space happen before a producer
        // reuses it.
        self.view
            .state()
            .consumer
            .head
            .store(head, Ordering::Release);
        let wake = &self.view.state().wake;
        if self.mpsc {
            // MPSC: senders announce in their slots (ring::mpsc::sleepers).
            self.wake.claim_senders_after_publish(
                &wake.send_waiters,
                self.max_wakeups,
                &wake.sleeping_senders,
            );
        } else {
            self.wake.claim_after_publish_with_bell(
                &wake.send_waiters,
                self.max_wakeups,
                &wake.send_bell,
            );
        }
    }

    /// A broadcast subscriber's release: its slot's `seq` and `position`,
    /// then the publisher waiting for space. Out of line, so that the
    /// other flavors' release stays as small as it was.
    #[inline(never)]
    fn release_slot_to(&mut self, slot: usize, head: u64) {
        self.head = head;
        let s = self.view.subscriber_slot(slot);
        // Relaxed: statistics (lag in messages), read with the position.
        s.seq.store(self.seq, Ordering::Relaxed);
        // Release: pairs with the Acquire load of the position in
        // broadcast::Fanout::reload: our reads of the records before it
        // happen before the publisher reuses their space.
        s.position.store(head, Ordering::Release);
        let wake = &self.view.state().wake;
        // One publisher at most waits for space.
        self.wake
            .claim_after_publish_with_bell(&wake.send_waiters, 1, &wake.send_bell);
    }

    /// The pieces of `[self.head, head)` in the region, each at most
    /// `u32::MAX - 7` bytes (what one padding header covers), front to back.
    fn pieces(&self, head: u64) -> impl DoubleEndedIterator<Item = (usize, usize)> {
        const CHUNK: usize = 1 << 31;
        let cap = self.view.capacity();
        let idx = self.view.index(self.head);
        let total = head.wrapping_sub(self.head).min(cap) as usize;
        let first = total.min(cap as usize - idx);
        let split = move |start: usize, n: usize| {
            (0..n)
                .step_by(CHUNK)
                .map(move |o| (start + o, CHUNK.min(n - o)))
        };
        split(idx, first).chain(split(0, total - first))
    }

    /// MPSC: zeroes `[self.head, head)`. A receiver killed in here must
    /// leave what a successor (starting at the old head) reads as whole
    /// records or padding, never a half-zeroed message: first padding over
    /// each piece, then the bodies, then the headers, last piece first.
    fn zero_to(&self, head: u64) {
        let region = self.view.region();
        for (off, n) in self.pieces(head) {
            // Relaxed: only this consumer (or a successor after it died)
            // reads these words until head is released.
            region.atomic_u64(off).store(
                record_header(kind::PADDING, (n - 8) as u32),
                Ordering::Relaxed,
            );
        }
        for (off, n) in self.pieces(head) {
            // SAFETY: [head, new head) holds records this consumer has read
            // (committed, so no producer writes them) and not released (so
            // no producer reuses them): ours alone.
            unsafe { region.zero(off + RECORD_HEADER, n - RECORD_HEADER) };
        }
        for (off, _) in self.pieces(head).rev() {
            // Relaxed: as above.
            region.atomic_u64(off).store(0, Ordering::Relaxed);
        }
    }
}
