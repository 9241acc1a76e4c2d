//! The SPSC ring: one producer, one consumer, variable-length records,
//! published by each record's header word.
//!
//! State, in positions (byte counts that only grow, `index = pos & mask`):
//! `{ head <= tail <= head + capacity - 8 }` (modulo 2^64: positions wrap),
//! all multiples of 8.
//! - The producer owns `tail`, the end of what it published. Every header
//!   word at `tail` reads as zero: before a record's header is stored (the
//!   publishing store, Release), the word just past the record is zeroed.
//!   So the consumer polls the word at its read position and never loads
//!   the producer's line: a caught-up consumer costs one line transfer per
//!   message, not two. The shared `tail` is stored after each publish (a
//!   lower bound of the truth, for statistics and for a successor).
//! - The consumer owns `head`. It reads records from `head` while their
//!   header is non-zero and frees them with one Release store of `head`
//!   (per message, or per batch).
//! - The producer caches the consumer's `head` (possibly stale, never ahead
//!   of the truth) and reloads it only when the cache says full. The word
//!   past every record is the next one's header, so a record and that word
//!   must both fit the free space: 8 bytes of the region always stay free.
//! - A record never wraps: when one does not fit before the end of the
//!   region, the producer first publishes a padding record to the end.
//! - A batch of records (`commit_unpublished`) is published by the first
//!   one's header, stored last.
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
/// cfg (with `shmchan_loom`) the producer's publish is weakened to Relaxed
/// so that the loom models can show they catch it.
#[cfg(not(all(shmchan_loom, shmchan_mutant)))]
const PUBLISH: Ordering = Ordering::Release;
#[cfg(all(shmchan_loom, shmchan_mutant))]
const PUBLISH: Ordering = Ordering::Relaxed;

/// The word past every record that must be free too (the next header).
const NEXT: u64 = RECORD_HEADER as u64;

/// What a producer of SPSC records needs to know of its readers: where
/// they have released up to, what it must announce before it writes, and
/// how it makes a publish known. [`Single`] is the one SPSC consumer; the
/// broadcast publisher's subscribers are [`super::broadcast::Fanout`].
pub trait Fan: std::fmt::Debug {
    /// The readers' released position as it is now (the slow path: the
    /// cache says full), given our `tail` and the position last cached.
    fn reload(&self, view: &RingView<'_>, tail: u64, cached: u64) -> Result<u64, Corrupted>;

    /// Before the producer writes `[tail, end)` (a record and the free word
    /// past it), whose space the cache says is free: announce it. `false`
    /// when a look at the readers (new ones) finds it is not free after
    /// all; `cached` is then updated.
    fn cover(
        &mut self,
        view: &RingView<'_>,
        tail: u64,
        end: u64,
        cached: &mut u64,
    ) -> Result<bool, Corrupted>;

    /// A record starting at `start` was written (a message, or padding):
    /// for the sequence numbers, and where records start.
    fn wrote(&mut self, start: u64, message: bool);

    /// After the publishing header store: store `tail` (and what goes with
    /// it) and claim the readers that sleep.
    fn published(&mut self, view: &RingView<'_>, tail: u64, wake: &mut Wakeups);
}

/// The one SPSC consumer: its `head`, and `recv_waiters`/`recv_bell`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Single;

impl Fan for Single {
    #[inline]
    fn reload(&self, view: &RingView<'_>, tail: u64, cached: u64) -> Result<u64, Corrupted> {
        // Acquire: pairs with the Release store of head in
        // Cursor::release_to, so the consumer's reads of the space we are
        // about to reuse happened before our writes to it.
        let head = view.state().consumer.head.load(Ordering::Acquire);
        view.check_span(head, tail)?;
        if head.wrapping_sub(cached) > view.capacity() {
            return Err(Corrupted::new("head moved backwards", [cached, head, tail]));
        }
        Ok(head)
    }

    #[inline(always)]
    fn cover(&mut self, _: &RingView<'_>, _: u64, _: u64, _: &mut u64) -> Result<bool, Corrupted> {
        Ok(true)
    }

    #[inline(always)]
    fn wrote(&mut self, _: u64, _: bool) {}

    #[inline]
    fn published(&mut self, view: &RingView<'_>, tail: u64, wake: &mut Wakeups) {
        let st = view.state();
        // Release: pairs with the Acquire load of tail in
        // Consumer::has_data (a receiver about to sleep checks that no
        // published header behind tail reads as zero). Nobody reads tail to
        // learn what was published: it is a snapshot for statistics, and a
        // successor's starting point, after which it looks at the headers.
        st.producer.tail.store(tail, Ordering::Release);
        // At most one receiver sleeps: we owe at most one post, even if
        // someone forged a larger count.
        wake.claim_after_publish_with_bell(&st.wake.recv_waiters, 1, &st.wake.recv_bell);
    }
}

/// The producing end. Not `Sync`: one owner at a time.
#[derive(Debug)]
pub struct Producer<'a, F: Fan = Single> {
    view: RingView<'a>,
    /// Our position: the end of what we committed (equal to the shared
    /// `tail` unless `pending`).
    tail: u64,
    /// The readers' released position as last seen; may be stale (behind).
    cached_head: u64,
    /// The first record committed with `commit_unpublished` and not yet
    /// published: its header's index and word, stored last.
    pending: Option<(usize, u64)>,
    /// Receivers claimed by our publishes that the caller must post for.
    wake: Wakeups,
    /// Who reads what we publish.
    fan: F,
}

impl<'a> Producer<'a, Single> {
    /// Takes the producing end of `view`, continuing from the shared `tail`
    /// and the records published past it (a producer that died between a
    /// publish and its store of `tail` leaves one behind).
    ///
    /// # Safety
    /// No other SPSC producer of this ring (in any thread or process) is
    /// used while this one is.
    pub unsafe fn new(view: RingView<'a>) -> Result<Producer<'a, Single>, Corrupted> {
        // Acquire (in reload): pairs with the Release store of head in
        // Cursor::release_to, so the consumer's reads of the space up to
        // head happened before our writes to it (the `restart` loom model
        // checks this).
        // SAFETY: the caller's contract.
        unsafe {
            Producer::with_fan(view, Single, |view, _, _| {
                Ok(view.state().consumer.head.load(Ordering::Acquire))
            })
        }
    }
}

impl<'a, F: Fan> Producer<'a, F> {
    /// [`Producer::new`] for the readers `fan`, whose released position
    /// `head(view, stored_tail)` gives.
    ///
    /// # Safety
    /// As for [`Producer::new`].
    pub(crate) unsafe fn with_fan(
        view: RingView<'a>,
        mut fan: F,
        head: impl FnOnce(&RingView<'a>, &F, u64) -> Result<u64, Corrupted>,
    ) -> Result<Producer<'a, F>, Corrupted> {
        let st = view.state();
        // Relaxed: `tail` is our own position, left by an earlier producer
        // (this one may replace one that exited). We write only past the
        // records published from it, into space that the Acquire load of
        // the readers' position (in `head`, or in `fits`) orders after
        // their reads, and those after the earlier producer's writes. (In a
        // channel, the registration's semop also orders these loads after
        // the earlier producer's last store.)
        let stored = st.producer.tail.load(Ordering::Relaxed);
        let head = head(&view, &fan, stored)?;
        view.check_span(head.min(stored), head.max(stored))?;
        let tail = Self::published_end(&view, stored, &mut fan)?;
        if tail.wrapping_sub(head) > view.capacity() - NEXT {
            return Err(Corrupted::new(
                "published records end outside head..head + capacity - 8",
                [head, stored, tail],
            ));
        }
        Ok(Producer {
            view,
            tail,
            cached_head: head,
            pending: None,
            wake: Wakeups::default(),
            fan,
        })
    }

    /// The readers (the channel layer sets their fence; not compiled
    /// under loom).
    #[cfg_attr(shmchan_loom, allow(dead_code))]
    pub(crate) fn fan(&mut self) -> &mut F {
        &mut self.fan
    }

    /// The readers, to look at (public for the fuzz targets: a
    /// broadcast publisher's `Fanout::recover`, itself `unsafe`).
    pub fn fan_ref(&self) -> &F {
        &self.fan
    }

    /// Our position: the end of what we committed (public for the fuzz
    /// targets: a load of our own field).
    pub fn tail(&self) -> u64 {
        self.tail
    }

    /// The end of the records published from `from`: the first position
    /// past it whose header word is zero.
    fn published_end(view: &RingView<'a>, from: u64, fan: &mut F) -> Result<u64, Corrupted> {
        let mut pos = from;
        while pos.wrapping_sub(from) <= view.capacity() {
            let idx = view.index(pos);
            // Relaxed: these are an earlier producer's records, ordered for
            // us by the caller's contract (no producer runs beside us).
            let word = view.region().atomic_u64(idx).load(Ordering::Relaxed);
            if word == 0 {
                return Ok(pos);
            }
            let room = view.capacity() - idx as u64;
            pos = pos.wrapping_add(match split_record_header(word) {
                (kind::MESSAGE, len) => {
                    fan.wrote(pos, true);
                    view.check_record("message record does not fit", pos, len, room)?
                }
                (kind::PADDING, len) if idx != 0 && RECORD_HEADER as u64 + len as u64 == room => {
                    fan.wrote(pos, false);
                    room
                }
                (k, len) => {
                    return Err(Corrupted::new(
                        "a published record past tail is broken",
                        [pos, u64::from(k), u64::from(len)],
                    ))
                }
            });
        }
        Err(Corrupted::new(
            "records past tail fill more than the region",
            [from, pos, view.capacity()],
        ))
    }

    /// The view this producer works on.
    pub fn view(&self) -> &RingView<'a> {
        &self.view
    }

    /// Whether `need` bytes past our position are free, reloading the
    /// readers' position only if they do not fit the cache; and, when they
    /// are, announced to the readers (see [`Fan::cover`]).
    #[inline]
    fn fits(&mut self, need: u64) -> Result<bool, Corrupted> {
        let cap = self.view.capacity();
        let used = self.tail.wrapping_sub(self.cached_head);
        if cap - used.min(cap) < need {
            let head = self.fan.reload(&self.view, self.tail, self.cached_head)?;
            self.cached_head = head;
            if cap - self.tail.wrapping_sub(head) < need {
                return Ok(false);
            }
        }
        let end = self.tail.wrapping_add(need);
        self.fan
            .cover(&self.view, self.tail, end, &mut self.cached_head)
    }

    /// Whether `try_reserve(len)` can make progress now: the record fits,
    /// or the padding that must precede it does.
    pub fn has_space(&mut self, len: usize) -> Result<bool, Corrupted> {
        let rec = record_size(len.min(self.view.max_message())) as u64;
        let contiguous = self.view.capacity() - self.view.index(self.tail) as u64;
        self.fits(rec.min(contiguous) + NEXT)
    }

    /// As [`Producer::has_space`], from the shared `head` as it is now and
    /// without touching the cache (for a look from outside the sending
    /// path); a broken `head` counts as space (the send reports it).
    pub fn space_now(&self, len: usize) -> bool {
        let rec = record_size(len.min(self.view.max_message())) as u64;
        let contiguous = self.view.capacity() - self.view.index(self.tail) as u64;
        // Acquire (in reload): as in `fits`.
        match self.fan.reload(&self.view, self.tail, self.cached_head) {
            Ok(head) => {
                self.view.capacity() - self.tail.wrapping_sub(head) >= rec.min(contiguous) + NEXT
            }
            Err(_) => true,
        }
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
                if !self.fits(rec + NEXT).map_err(ReserveError::Corrupted)? {
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
            if !self
                .fits(contiguous + NEXT)
                .map_err(ReserveError::Corrupted)?
            {
                return Err(ReserveError::Full);
            }
            let pad_len = (contiguous - NEXT) as u32;
            let end = self.tail.wrapping_add(contiguous);
            self.put(idx, end, record_header(kind::PADDING, pad_len));
            self.publish_pending();
        }
        Err(ReserveError::Full)
    }

    /// Publishes a reserved record whose payload has been written.
    ///
    /// # Safety
    /// `r` is the reservation this producer's `try_reserve` returned last,
    /// not yet committed.
    #[inline]
    pub unsafe fn commit(&mut self, r: Reservation) {
        // SAFETY: the caller's contract.
        unsafe { self.commit_unpublished(r) };
        self.publish_pending();
    }

    /// Writes a reserved record's header like [`Producer::commit`] but
    /// does not publish it (not for a broadcast publisher, which reads its
    /// own headers behind `tail` when it moves `front`: a batch longer
    /// than what that walk leaves alone is reported `Corrupted`; the
    /// channel's broadcast sender commits each record): it becomes visible to the consumer with the
    /// first record of the batch, whose header is stored last (by the next
    /// commit, a padding record, or [`Producer::publish_pending`]), so a
    /// batch of records costs one publishing store, and one wake-up look.
    ///
    /// # Safety
    /// As for [`Producer::commit`].
    #[inline]
    pub unsafe fn commit_unpublished(&mut self, r: Reservation) {
        debug_assert_eq!(r.start, self.tail);
        self.put(
            self.view.index(r.start),
            r.end,
            record_header(kind::MESSAGE, r.len as u32),
        );
    }

    /// Writes the header `word` of a record at index `idx` that ends at
    /// `end`, after zeroing the word at `end` (the next header), and moves
    /// our position to `end`. The first record since the last publish
    /// keeps its header back: its store publishes them all.
    #[inline]
    fn put(&mut self, idx: usize, end: u64, word: u64) {
        let region = self.view.region();
        // Relaxed: the publishing store (Release) orders it before the
        // consumer's look at this word; free space (we checked `fits` for
        // the record and this word), atomic as every word another process
        // may write.
        region
            .atomic_u64(self.view.index(end))
            .store(0, Ordering::Relaxed);
        if self.pending.is_none() {
            self.pending = Some((idx, word));
        } else {
            // Relaxed: ordered by the publishing store of the batch's first
            // header, which the consumer must pass first.
            region.atomic_u64(idx).store(word, Ordering::Relaxed);
        }
        self.fan
            .wrote(self.tail, split_record_header(word).0 == kind::MESSAGE);
        self.tail = end;
    }

    /// Publishes the records committed with
    /// [`Producer::commit_unpublished`] since the last publish (one
    /// Release store for all of them); nothing when there are none.
    #[inline]
    pub fn publish_pending(&mut self) {
        let Some((idx, word)) = self.pending.take() else {
            return;
        };
        // Release (PUBLISH): pairs with the Acquire load of the header in
        // Consumer::try_peek (and broadcast::Subscriber::try_peek); makes
        // the records' headers and payloads, and the zero past the last,
        // visible before this header.
        self.view.region().atomic_u64(idx).store(word, PUBLISH);
        self.fan.published(&self.view, self.tail, &mut self.wake);
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
    /// Found by [`Consumer::has_data`]: a zero header behind the published
    /// `tail`; the next `try_peek` that finds nothing returns it.
    stalled: Option<Corrupted>,
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
        // Relaxed: `head` is our own position, left by an earlier consumer.
        // We read only records whose header we load with Acquire, and our
        // later Release of head orders our reads for the producer; the
        // earlier consumer's reads were ordered by its own Release. (In a
        // channel, the registration's semop also orders this load.)
        let head = view.state().consumer.head.load(Ordering::Relaxed);
        view.check_span(head, head)?;
        Ok(Consumer {
            cursor: Cursor::new(view, head, head, false),
            stalled: None,
        })
    }

    /// The header word at the read position.
    #[inline]
    fn next_header(&self, order: Ordering) -> u64 {
        let view = self.cursor.view();
        view.region()
            .atomic_u64(view.index(self.cursor.position()))
            .load(order)
    }

    /// Whether a record (or padding) is waiting: the look of a receiver
    /// about to sleep. Finding nothing, it also looks at the shared `tail`:
    /// past our read position, the header there was published, so a zero
    /// one was written by someone outside the protocol, and waiting for it
    /// would wait for ever. That is reported as `true` (do not sleep), and
    /// the next [`Consumer::try_peek`] returns the [`Corrupted`].
    pub fn has_data(&mut self) -> Result<bool, Corrupted> {
        // Relaxed: a hint; try_peek loads the word again with Acquire.
        if self.next_header(Ordering::Relaxed) != 0 {
            return Ok(true);
        }
        self.stalled = zero_behind_tail(&self.cursor);
        Ok(self.stalled.is_some())
    }

    /// The next committed record, if any, without releasing it. Padding is
    /// skipped (and released if nothing else is held).
    #[inline]
    pub fn try_peek(&mut self) -> Result<Option<Record>, Corrupted> {
        // At most two rounds: padding only ever runs to the end of the
        // region, so the record after it starts at index 0 and is not padding.
        for _ in 0..2 {
            // Acquire: pairs with the Release store of the header in
            // Producer::publish_pending (the record, and the zero past it,
            // are written). Loaded once, as an atomic: a writer outside the
            // protocol can change the word, not what this one load returned.
            let word = self.next_header(Ordering::Acquire);
            if word == 0 {
                return match self.stalled.take() {
                    None => Ok(None),
                    Some(e) => Err(e),
                };
            }
            if let Some(r) = parse(&mut self.cursor, word)? {
                return Ok(Some(r));
            }
        }
        Err(Corrupted::new(
            "padding follows padding",
            [self.cursor.position(), self.cursor.head(), 0],
        ))
    }
}

/// Finding a zero header at the read position of `c`, a reader about to
/// sleep looks at the shared `tail`: past the read position, the header
/// there was published, so a zero one was written by someone outside the
/// protocol, and waiting for it would wait for ever.
pub(super) fn zero_behind_tail(c: &Cursor<'_>) -> Option<Corrupted> {
    let view = c.view();
    // Acquire: pairs with the Release store of tail in Fan::published,
    // after the headers it covers.
    let tail = view.state().producer.tail.load(Ordering::Acquire);
    let read = c.position();
    let ahead = tail.wrapping_sub(read);
    if ahead == 0 || ahead > view.capacity() {
        return None;
    }
    // Relaxed: ordered by the Acquire load of tail above.
    let word = view
        .region()
        .atomic_u64(view.index(read))
        .load(Ordering::Relaxed);
    (word == 0).then(|| {
        Corrupted::new(
            "the header at the read position is zero, behind the published tail",
            [read, tail, c.head()],
        )
    })
}

/// The record whose header `word` (non-zero) was loaded at the read
/// position of `c` (SPSC records: also a broadcast ring's): `Some` for a
/// message, `None` for padding, which is skipped.
#[inline]
pub(super) fn parse(c: &mut Cursor<'_>, word: u64) -> Result<Option<Record>, Corrupted> {
    let read = c.position();
    let view = *c.view();
    let idx = view.index(read);
    // What may still be published past `read`: the region less what
    // we hold and the word that stays free.
    let avail = (view.capacity() - NEXT).saturating_sub(read.wrapping_sub(c.head()));
    let (k, len) = split_record_header(word);
    match k {
        kind::MESSAGE => {
            let rec = view.check_record("message record does not fit", read, len, avail)?;
            Ok(Some(Record {
                data_offset: idx + RECORD_HEADER,
                len: len as usize,
                end: read.wrapping_add(rec),
            }))
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
            Ok(None)
        }
        _ => Err(Corrupted::new(
            "unknown record kind",
            [read, u64::from(k), u64::from(len)],
        )),
    }
}

#[cfg(all(test, not(shmchan_loom)))]
mod tests;
