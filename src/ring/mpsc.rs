//! The MPSC ring: many producers (threads or processes), one consumer.
//!
//! Positions are as in SPSC (`head <= tail <= head + capacity`, modulo
//! 2^64, multiples of 8), but `tail` is the end of the *claimed* space:
//! - A producer owns a line of the sender table (see [`take_slot`]). Before
//!   each claim attempt it stores the tail value it claims from in its
//!   slot's `claim`; then it claims `[t, t + need)` with a CAS of `tail`.
//!   When its record does not fit before the end of the region, the claim
//!   also covers the gap, which it fills with a padding record.
//! - It marks its record as in progress (the header's high half is
//!   [`CLAIM_BIT`] | its pid), writes the payload, and commits with one
//!   Release store of the header (`kind::MESSAGE`). An aborted reservation
//!   becomes padding of the record's size. With a gap, the record is marked
//!   before the gap's padding header is written, so a consumer that passes
//!   the padding sees the mark.
//! - The consumer reads headers in order with Acquire loads and stops at
//!   the first record that is not committed (header zero: claimed but not
//!   yet marked; or in progress). Before it releases space (one Release
//!   store of `head`) it zeroes it, so every header beyond `head` reads as
//!   zero until a producer writes it.
//!
//! Unlike SPSC, padding may sit anywhere in the region (aborted grants,
//! recovered claims).
//!
//! # A producer that dies in the middle
//!
//! A claim whose producer died before committing would stop the consumer
//! for ever. [`Consumer::try_recover`] (called by the channel after the
//! record has blocked it for the recovery timeout) turns it into padding,
//! but only when its claimant is proven dead by the caller's liveness check:
//! - marked in progress: the pid is in the header; the record's size too.
//! - not marked yet (the producer died between its CAS and its first
//!   store): the claimant is the sender whose slot names this position (it
//!   wrote it before the CAS, and changes it only after marking). Its size
//!   is not written anywhere, but nothing of it is: it ends where the next
//!   claim starts, which is the first of: the tail, a position another slot
//!   names, or the first non-zero word (the next record's header; the
//!   consumer zeroed everything it released). A producer's slot names a
//!   position only from just before its CAS until its mark (then it is
//!   cleared, with Release, so a consumer that reads the cleared slot sees
//!   the mark). A slot of a dead owner is taken over only once its claim
//!   lies behind `head`, so a slot naming an unconsumed unmarked claim
//!   stays until the consumer has recovered it.
//!
//! The header is changed with a CAS from the value seen, so a producer that
//! commits after all is never overwritten. These are the cases Agrona's
//! `ManyToOneRingBuffer::unblock` had bugs in (a full ring, a gap exactly
//! one record header long, a record that did not fit at the wrap); each is
//! a test below.

use super::wake;
use super::{Corrupted, Record, Reservation, ReserveError, RingView};
use crate::layout::{
    kind, record_header, record_size, split_record_header, SenderSlot, NO_CLAIM, RECORD_HEADER,
};
use crate::sync::Ordering;

/// Set in the high half of a record header while its producer writes it;
/// the rest of the high half is the producer's pid.
pub const CLAIM_BIT: u32 = 0x8000_0000;

/// The most sleeping senders one release wakes (a forged count in the
/// segment must not turn into a storm of posts).
pub const MAX_WAKEUPS: u32 = 1 << 16;

/// The ordering of a commit. Under the `shmchan_mutant` cfg (with
/// `shmchan_loom`) it is weakened to Relaxed so that the loom models can
/// show they catch it.
#[cfg(not(all(shmchan_loom, shmchan_mutant)))]
const COMMIT: Ordering = Ordering::Release;
#[cfg(all(shmchan_loom, shmchan_mutant))]
const COMMIT: Ordering = Ordering::Relaxed;

/// Whether position `pos` lies behind `head` (consumed and released).
#[inline]
fn behind(pos: u64, head: u64) -> bool {
    (head.wrapping_sub(pos) as i64) > 0
}

/// Takes a slot of the sender table for a producer of process `pid`
/// (non-zero): a free one, or else one whose owner `alive` says is dead
/// and whose last claim the consumer has released. `None` when every slot
/// belongs to a live sender (or to a dead one whose claim is still to be
/// recovered).
pub fn take_slot(view: &RingView, pid: u32, alive: &mut dyn FnMut(u32) -> bool) -> Option<usize> {
    let me = u64::from(pid.max(1));
    let take = |s: &SenderSlot| {
        // Release: pairs with the Acquire load of claim in try_recover (a
        // consumer that reads this value sees everything the slot's
        // previous owner did before giving it up).
        s.claim.store(NO_CLAIM, Ordering::Release);
    };
    for i in 0..view.sender_slots() {
        let s = view.sender_slot(i);
        // Acquire (on success): pairs with the Release store of 0 in
        // Producer::leave: the previous owner's use of the slot is over.
        if s.owner.load(Ordering::Relaxed) == 0
            && s.owner
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            take(s);
            return Some(i);
        }
    }
    // Acquire: pairs with the Release store of head in Consumer::release_to
    // (a claim behind head was consumed, recovered or not).
    let head = view.state().consumer.head.load(Ordering::Acquire);
    for i in 0..view.sender_slots() {
        let s = view.sender_slot(i);
        let owner = s.owner.load(Ordering::Relaxed);
        // Relaxed: a dead owner writes no more; a live one is not taken over.
        let claim = s.claim.load(Ordering::Relaxed);
        let dead = owner > u64::from(u32::MAX) || !alive(owner as u32);
        if owner != 0
            && dead
            && (claim == NO_CLAIM || behind(claim, head))
            && s.owner
                .compare_exchange(owner, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            take(s);
            return Some(i);
        }
    }
    None
}

/// Gives sender slot `slot` back; its producer must hold no reservation
/// and make no more claims.
pub fn free_slot(view: &RingView, slot: usize) {
    let s = view.sender_slot(slot);
    // Release: pairs with the Acquire load of claim in try_recover.
    s.claim.store(NO_CLAIM, Ordering::Release);
    // Release: pairs with the Acquire CAS in take_slot and the Acquire load
    // of owner in try_recover.
    s.owner.store(0, Ordering::Release);
}

/// How far [`Producer::try_reserve_until`] goes: a producer that dies at
/// each of these points, for tests, fuzzing and models.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The CAS of tail only: nothing written.
    Claimed,
    /// The record marked in progress, not the gap's padding (if any).
    RecordMarked,
    /// Everything a reservation does.
    Reserved,
}

/// A producing end. Any number may work on one ring at once, each with its
/// own sender slot.
#[derive(Debug)]
pub struct Producer {
    view: RingView,
    /// Our line in the sender table.
    slot: usize,
    /// The consumer's `head` as last seen; may be stale (behind).
    cached_head: u64,
    /// High half of our in-progress headers: `CLAIM_BIT | pid`.
    claim: u32,
    /// Receivers claimed by our commits that the caller must post for.
    wakeups: u32,
    /// Publishes and releases use the light fence (see
    /// [`wake::claim_with`]).
    light: bool,
}

impl Producer {
    /// A producer using sender slot `slot` (taken with [`take_slot`]) that
    /// marks its claims with `pid`.
    pub fn new(view: RingView, slot: usize, pid: u32) -> Result<Producer, Corrupted> {
        if slot >= view.sender_slots() {
            return Err(Corrupted::new(
                "no such sender slot",
                [slot as u64, view.sender_slots() as u64, 0],
            ));
        }
        // Acquire: pairs with the Release store of head in
        // Consumer::release_to: the consumer's reads (and zeroing) of the
        // space up to head happened before our writes to it.
        let head = view.state().consumer.head.load(Ordering::Acquire);
        if !head.is_multiple_of(8) {
            return Err(Corrupted::new("head not a multiple of 8", [head, 0, 0]));
        }
        Ok(Producer {
            view,
            slot,
            cached_head: head,
            claim: CLAIM_BIT | (pid & !CLAIM_BIT),
            wakeups: 0,
            light: false,
        })
    }

    /// The view this producer works on.
    pub fn view(&self) -> &RingView {
        &self.view
    }

    /// The sender slot this producer owns.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// Gives the sender slot back (the producer must hold no reservation).
    pub fn leave(self) {
        free_slot(&self.view, self.slot);
    }

    /// Whether a record of `len` bytes (and the gap before it, if any)
    /// fits in the free space now.
    pub fn has_space(&mut self, len: usize) -> Result<bool, Corrupted> {
        let st = self.view.state();
        let cap = self.view.capacity();
        // Acquire: pairs with the Release CAS of tail by the producer that
        // claimed last, so the head it saw (Acquire) is at most the head we
        // read next (see try_reserve_until).
        let mut tail = st.producer.tail.load(Ordering::Acquire);
        // Acquire: pairs with the Release store of head in release_to.
        let mut head = st.consumer.head.load(Ordering::Acquire);
        if tail.wrapping_sub(head) > cap {
            // Our tail was older than our head: a consumer that freed space
            // and a producer that claimed it between our two loads.
            tail = st.producer.tail.load(Ordering::Acquire);
            // Acquire: as above.
            head = st.consumer.head.load(Ordering::Acquire);
        }
        let used = tail.wrapping_sub(head);
        if used > cap || !(head | tail).is_multiple_of(8) {
            return Err(Corrupted::new(
                "tail - head outside 0..=capacity",
                [head, tail, cap],
            ));
        }
        let rec = record_size(len.min(self.view.max_message())) as u64;
        let contiguous = cap - self.view.index(tail) as u64;
        let need = if rec <= contiguous {
            rec
        } else {
            contiguous + rec
        };
        Ok(cap - used >= need)
    }

    /// Claims space for a record of `len` payload bytes and marks it in
    /// progress; the caller writes the payload and then calls
    /// [`Producer::commit`] or [`Producer::abort`].
    pub fn try_reserve(&mut self, len: usize) -> Result<Reservation, ReserveError> {
        self.try_reserve_until(len, Stage::Reserved)
    }

    /// [`Producer::try_reserve`], stopping after `stage` (a producer killed
    /// there). Not for use outside tests, fuzzing and models.
    #[doc(hidden)]
    pub fn try_reserve_until(
        &mut self,
        len: usize,
        stage: Stage,
    ) -> Result<Reservation, ReserveError> {
        let max = self.view.max_message();
        if len > max {
            return Err(ReserveError::TooLarge { len, max });
        }
        let cap = self.view.capacity();
        let rec = record_size(len) as u64;
        let st = self.view.state();
        let slot = self.view.sender_slot(self.slot);
        // Acquire: pairs with the Release CAS of the producer that claimed
        // up to this tail: it read head (Acquire) before claiming, so the
        // head we read below is at least that one and `tail - head` cannot
        // look larger than the capacity. (Relaxed here let a healthy ring
        // look corrupted: found by a loom model.) The CAS, not this load,
        // makes a claim exclusive.
        let mut tail = st.producer.tail.load(Ordering::Acquire);
        let (start, pad) = loop {
            if !tail.is_multiple_of(8) {
                return Err(ReserveError::Corrupted(Corrupted::new(
                    "tail not a multiple of 8",
                    [tail, self.cached_head, cap],
                )));
            }
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
                    // Acquire: as for the first load of tail.
                    let now = st.producer.tail.load(Ordering::Acquire);
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
                    // Our slot may still name a tail value from a CAS we
                    // lost; a claim there that blocks the receiver (and so
                    // keeps the ring full) must not look like ours while we
                    // wait for space. Release: as for the store below.
                    slot.claim.store(NO_CLAIM, Ordering::Release);
                    return Err(ReserveError::Full);
                }
            }
            // Release: pairs with the Acquire loads of the slots in
            // Consumer::try_recover: a consumer that sees this value, or a
            // later one, also sees the mark of the record we claimed before.
            slot.claim.store(tail, Ordering::Release);
            // Release (success): pairs with the Acquire load of tail in
            // Consumer::try_recover: a consumer that sees this claim sees
            // the slot store above naming it; and with the Acquire loads of
            // tail by other producers (see the first load). Acquire
            // (failure): as for the first load of tail.
            match st.producer.tail.compare_exchange_weak(
                tail,
                tail.wrapping_add(need),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => break (tail.wrapping_add(pad), pad),
                Err(now) => tail = now,
            }
        };
        let region = self.view.region();
        let idx = self.view.index(start);
        let res = Reservation {
            start,
            data_offset: idx + RECORD_HEADER,
            len,
            end: start.wrapping_add(rec),
        };
        if stage == Stage::Claimed {
            return Ok(res);
        }
        // Relaxed: an in-progress mark publishes nothing; the consumer only
        // waits on it (and the padding below orders it, see there).
        region
            .atomic_u64(idx)
            .store(record_header(self.claim, len as u32), Ordering::Relaxed);
        if stage == Stage::RecordMarked {
            return Ok(res);
        }
        if pad > 0 {
            // Release: pairs with the consumer's Acquire load of this
            // header in try_peek: a consumer that skips the gap sees our
            // mark of the record after it. The gap's bytes do not matter.
            region.atomic_u64(self.view.index(tail)).store(
                record_header(kind::PADDING, (pad - 8) as u32),
                Ordering::Release,
            );
        }
        // The claim is marked: our slot names nothing any more (a slot
        // names a position only between the CAS and the mark, so a
        // receiver that finds a zero header there, left by a predecessor
        // killed while zeroing, is not kept waiting for us). Release:
        // pairs with the Acquire load of claim in try_recover, which then
        // sees the marks above.
        slot.claim.store(NO_CLAIM, Ordering::Release);
        Ok(res)
    }

    /// Publishes a reserved record whose payload has been written.
    pub fn commit(&mut self, r: Reservation) {
        // Release (COMMIT): pairs with the Acquire load of the header in
        // Consumer::try_peek; makes the payload visible before the header.
        self.view
            .region()
            .atomic_u64(self.view.index(r.start))
            .store(record_header(kind::MESSAGE, r.len as u32), COMMIT);
        self.claim_receiver();
    }

    /// Gives a reservation up: the record becomes padding of its size.
    pub fn abort(&mut self, r: Reservation) {
        let size = r.end.wrapping_sub(r.start);
        // Release: pairs with the Acquire load in Consumer::try_peek: our
        // writes to the aborted payload happen before the consumer zeroes
        // it (the padding's bytes are never read).
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

/// What [`Consumer::try_recover`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing is claimed at the read position.
    Empty,
    /// The record at the read position is not (or no longer) blocked:
    /// peek again.
    Retry,
    /// The claimant (this pid) is alive: wait for it.
    Alive(u32),
    /// An abandoned claim of `size` bytes became padding; `pid` is its
    /// claimant if known.
    Recovered {
        /// The dead claimant, when a header or a slot named it.
        pid: Option<u32>,
        /// Bytes turned into padding.
        size: u64,
    },
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
    /// Publishes and releases use the light fence (see
    /// [`wake::claim_with`]).
    light: bool,
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
            light: false,
        })
    }

    /// The view this consumer works on.
    pub fn view(&self) -> &RingView {
        &self.view
    }

    /// The read position (the start of the next record).
    pub fn position(&self) -> u64 {
        self.read
    }

    /// Why the last [`Consumer::try_peek`] that returned `None` stopped.
    pub fn blocked(&self) -> Blocked {
        self.blocked
    }

    fn refresh(&mut self) -> Result<u64, Corrupted> {
        // Acquire: pairs with the Release CAS of tail in
        // Producer::try_reserve (needed by try_recover: the claimant's slot
        // store is visible; free on the common targets).
        let tail = self.view.state().producer.tail.load(Ordering::Acquire);
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

    /// The header word at position `pos`.
    #[inline]
    fn header(&self, pos: u64) -> &crate::sync::AtomicU64 {
        self.view.region().atomic_u64(self.view.index(pos))
    }

    /// Whether [`Consumer::try_peek`] may make progress now: a committed
    /// record or padding at the read position.
    pub fn has_data(&mut self) -> Result<bool, Corrupted> {
        if self.cached_tail == self.read && self.refresh()? == 0 {
            return Ok(false);
        }
        // Acquire: as in try_peek.
        let word = self.header(self.read).load(Ordering::Acquire);
        Ok(word != 0 && split_record_header(word).0 & CLAIM_BIT == 0)
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
            // Producer::commit (and abort, and a gap's padding): the
            // payload (or the mark after the gap) is written.
            let word = self.header(self.read).load(Ordering::Acquire);
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

    /// Turns the claim that blocks the read position into padding if its
    /// claimant is dead (`alive(pid)` false for every sender that may own
    /// it; see the module docs). The caller decides when to call it: after
    /// a record has blocked it for the recovery timeout, or once every
    /// sender is gone.
    pub fn try_recover(
        &mut self,
        alive: &mut dyn FnMut(u32) -> bool,
    ) -> Result<Recovery, Corrupted> {
        let p = self.read;
        let avail = self.refresh()?;
        if avail == 0 {
            return Ok(Recovery::Empty);
        }
        let cap = self.view.capacity();
        let idx = self.view.index(p);
        let room = cap - idx as u64;
        // Acquire: as in try_peek.
        let word = self.header(p).load(Ordering::Acquire);
        let (high, len) = split_record_header(word);
        if high & CLAIM_BIT != 0 {
            let pid = high & !CLAIM_BIT;
            if alive(pid) {
                return Ok(Recovery::Alive(pid));
            }
            let size = record_size(len as usize) as u64;
            if len as usize > self.view.max_message() || size > room || size > avail {
                return Err(Corrupted::new(
                    "in-progress record does not fit",
                    [p, u64::from(len), avail],
                ));
            }
            return Ok(self.make_padding(p, word, size, Some(pid)));
        }
        if word != 0 {
            return Ok(Recovery::Retry);
        }
        // Claimed but unmarked. The tail we loaded (Acquire) makes the
        // claimant's slot store visible; a slot that moved on since was
        // moved after its owner marked its record (Release/Acquire), which
        // the re-read below then sees.
        let mut bound = p.wrapping_add(avail.min(room));
        let mut claimant = None;
        for i in 0..self.view.sender_slots() {
            let s = self.view.sender_slot(i);
            // Acquire: pairs with the Release store of claim in
            // Producer::try_reserve_until.
            let claim = s.claim.load(Ordering::Acquire);
            // Acquire: pairs with the Release store of 0 in free_slot (and
            // the take-over CAS that continues its release sequence).
            let owner = s.owner.load(Ordering::Acquire);
            if claim == p && owner != 0 {
                if owner <= u64::from(u32::MAX) && alive(owner as u32) {
                    return Ok(Recovery::Alive(owner as u32));
                }
                claimant = u32::try_from(owner).ok().or(claimant);
            } else if claim.is_multiple_of(8) {
                let d = claim.wrapping_sub(p);
                if d > 0 && d < bound.wrapping_sub(p) {
                    bound = claim;
                }
            }
        }
        // Acquire: as in try_peek.
        if self.header(p).load(Ordering::Acquire) != 0 {
            return Ok(Recovery::Retry);
        }
        // Nothing of the dead claim was written: it ends at the first
        // non-zero word (the next record's header) or at the bound.
        let mut end = p.wrapping_add(8);
        // Acquire: pairs with the Release header stores, as in try_peek.
        while end != bound && self.header(end).load(Ordering::Acquire) == 0 {
            end = end.wrapping_add(8);
        }
        Ok(self.make_padding(p, 0, end.wrapping_sub(p), claimant))
    }

    fn make_padding(&mut self, pos: u64, seen: u64, size: u64, pid: Option<u32>) -> Recovery {
        // A padding header covers at most u32::MAX & !7 bytes; a longer
        // claim is recovered in several steps.
        let pad = record_header(
            kind::PADDING,
            (size - 8).min(u64::from(u32::MAX - 7)) as u32,
        );
        // Relaxed: the padding publishes nothing (this thread reads it
        // next); a CAS so that a header a producer wrote after all is kept.
        match self
            .header(pos)
            .compare_exchange(seen, pad, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => Recovery::Recovered { pid, size },
            Err(_) => Recovery::Retry,
        }
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

    fn release_to(&mut self, head: u64) {
        // Zero what we free, so that headers past head read as zero until
        // a producer writes them. A receiver killed in here must leave what
        // a successor (starting at the old head) reads as whole records or
        // padding, never a half-zeroed message: first padding over each
        // piece, then the bodies, then the headers, last piece first.
        let region = self.view.region();
        for (off, n) in self.pieces(head) {
            // Relaxed: only this consumer (or a successor after it died)
            // reads these words until head is released below.
            region.atomic_u64(off).store(
                record_header(kind::PADDING, (n - 8) as u32),
                Ordering::Relaxed,
            );
        }
        for (off, n) in self.pieces(head) {
            region.zero(off + RECORD_HEADER, n - RECORD_HEADER);
        }
        for (off, _) in self.pieces(head).rev() {
            region.atomic_u64(off).store(0, Ordering::Relaxed);
        }
        self.head = head;
        // Release: pairs with the Acquire loads of head in Producer::new,
        // try_reserve and take_slot: our reads and zeroing of the freed
        // space happen before a producer reuses it.
        self.view
            .state()
            .consumer
            .head
            .store(head, Ordering::Release);
        let claimed =
            wake::claim_with(&self.view.state().wake.send_waiters, self.light).min(MAX_WAKEUPS);
        self.wakeups = self.wakeups.saturating_add(claimed).min(MAX_WAKEUPS);
    }

    /// Use the light fence after publishing (see [`wake::claim_with`]):
    /// only in a process registered for `membarrier`'s global expedited
    /// barriers, with sleepers that issue one.
    pub fn set_light_fence(&mut self, light: bool) {
        self.light = light;
    }

    /// Returns, and resets, the number of sleeping senders our releases
    /// claimed.
    pub fn take_wakeups(&mut self) -> u32 {
        std::mem::take(&mut self.wakeups)
    }
}

#[cfg(all(test, not(shmchan_loom)))]
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

    /// A ring with `n` producers (pids 10, 20, ...) in slots 0..n.
    fn setup(cap: usize, max: usize, n: u32) -> (HeapRing, Vec<Producer>, Consumer) {
        let ring = HeapRing::with_senders(cap, max, 8);
        let ps = (0..n)
            .map(|i| {
                let pid = 10 * (i + 1);
                let slot = take_slot(&ring.view(), pid, &mut |_| true).unwrap();
                Producer::new(ring.view(), slot, pid).unwrap()
            })
            .collect();
        let c = Consumer::new(ring.view()).unwrap();
        (ring, ps, c)
    }

    fn zeroed(ring: HeapRing) -> bool {
        let mut ring = ring;
        ring.data_mut().iter().all(|&b| b == 0)
    }

    #[test]
    fn commit_abort_wrap_and_in_progress() {
        let (ring, mut ps, mut c) = setup(64, 56, 2);
        let (a, b) = ps.split_at_mut(1);
        let (a, b) = (&mut a[0], &mut b[0]);
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
        drop(ps);
        assert!(zeroed(ring), "everything consumed is zero again");
    }

    #[test]
    fn full_and_too_large() {
        let (_ring, mut ps, mut c) = setup(64, 56, 1);
        let p = &mut ps[0];
        p.try_push(&[7; 56]).unwrap();
        assert!(!p.has_space(1).unwrap());
        assert!(matches!(p.try_push(b"x"), Err(ReserveError::Full)));
        assert!(matches!(
            p.try_reserve(57),
            Err(ReserveError::TooLarge { len: 57, max: 56 })
        ));
        assert_eq!(pop(&mut c).unwrap(), vec![7; 56]);
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
            let (ring, mut ps, mut c) = setup(64, 56, 1);
            ps[0].try_push(b"hello").unwrap();
            ring.view()
                .region()
                .atomic_u64(0)
                .store(word, Ordering::Relaxed);
            assert!(c.try_peek().is_err(), "word {word:#x} accepted");
        }
        // An in-progress header of a dead pid whose length does not fit.
        let (ring, mut ps, mut c) = setup(64, 56, 1);
        ps[0].try_push(b"hello").unwrap();
        ring.view()
            .region()
            .atomic_u64(0)
            .store(record_header(CLAIM_BIT | 5, 500), Ordering::Relaxed);
        assert_eq!(c.try_peek().unwrap(), None);
        assert!(c.try_recover(&mut |_| false).is_err());
    }

    #[test]
    fn slots_are_taken_freed_and_reclaimed_only_when_consumed() {
        let ring = HeapRing::with_senders(64, 56, 2);
        let v = ring.view();
        let a = take_slot(&v, 1, &mut |_| true).unwrap();
        let b = take_slot(&v, 2, &mut |_| true).unwrap();
        assert_ne!(a, b);
        assert_eq!(take_slot(&v, 3, &mut |_| true), None, "all owners alive");
        // Pid 2 dies having claimed (unmarked) at position 0: its slot
        // names an unconsumed claim and is not taken over.
        let mut pb = Producer::new(v, b, 2).unwrap();
        pb.try_reserve_until(8, Stage::Claimed).unwrap();
        let mut alive2 = |pid: u32| pid != 2;
        assert_eq!(take_slot(&v, 3, &mut alive2), None);
        // Once the consumer has recovered and released it, it is.
        let mut c = Consumer::new(v).unwrap();
        assert_eq!(c.try_peek().unwrap(), None);
        assert_eq!(
            c.try_recover(&mut alive2).unwrap(),
            Recovery::Recovered {
                pid: Some(2),
                size: 16
            }
        );
        assert_eq!(c.try_peek().unwrap(), None);
        assert_eq!(c.blocked(), Blocked::Empty);
        assert_eq!(take_slot(&v, 3, &mut alive2), Some(b));
        // A slot given back is free for anyone.
        Producer::new(v, a, 1).unwrap().leave();
        assert_eq!(take_slot(&v, 4, &mut |_| true), Some(a));
    }

    /// A live producer is never skipped, at any stage; a dead one costs
    /// only its own record, at any stage.
    #[test]
    fn recovery_at_every_stage_and_never_of_the_living() {
        for stage in [Stage::Claimed, Stage::RecordMarked, Stage::Reserved] {
            for wrap in [false, true] {
                let (ring, mut ps, mut c) = setup(128, 100, 2);
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
                        c.try_recover(&mut |_| true).unwrap(),
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
                    match c.try_recover(&mut dead10).unwrap() {
                        Recovery::Recovered { pid, .. } => {
                            assert!(pid.is_none() || pid == Some(10));
                            recovered += 1;
                        }
                        r => panic!("{stage:?} wrap={wrap}: {r:?}"),
                    }
                    assert!(recovered <= 2);
                };
                assert_eq!(got, b"after", "{stage:?} wrap={wrap}");
                assert_eq!(c.try_recover(&mut dead10).unwrap(), Recovery::Empty);
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
        let (ring, mut ps, mut c) = setup(64, 56, 2);
        ps[0].try_reserve_until(48, Stage::Claimed).unwrap(); // [0, 56), pid 10
                                                              // Pid 20 read tail 0 and lost the CAS to pid 10: its slot names 0.
        let slot = ps[1].slot();
        ring.view()
            .sender_slot(slot)
            .claim
            .store(0, Ordering::Relaxed);
        let mut dead10 = |p: u32| p != 10;
        assert_eq!(c.try_recover(&mut dead10).unwrap(), Recovery::Alive(20));
        // It retries, finds the ring full and waits: its slot names nothing.
        assert!(matches!(ps[1].try_push(&[1; 8]), Err(ReserveError::Full)));
        assert!(matches!(
            c.try_recover(&mut dead10).unwrap(),
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
        let (ring, mut ps, mut c) = setup(64, 56, 1);
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
        ring.view().region().zero(0, 16);
        // A new receiver starts from the shared head (the old one is not used again).
        let mut c2 = Consumer::new(ring.view()).unwrap();
        assert_eq!(c2.try_peek().unwrap(), None);
        assert_eq!(c2.blocked(), Blocked::Unmarked);
        assert_eq!(
            c2.try_recover(&mut |_| true).unwrap(),
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
            let (ring, mut ps, _c) = setup(64, 56, 1);
            ring.state().producer.tail.store(tail, Ordering::Relaxed);
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
        let (_ring, mut ps, mut c) = setup(64, 56, 2);
        ps[0].try_reserve_until(16, Stage::Claimed).unwrap(); // [0, 24)
        ps[1].try_push(&[2; 32]).unwrap(); // [24, 64): full
        assert!(matches!(ps[1].try_push(b""), Err(ReserveError::Full)));
        assert_eq!(
            c.try_recover(&mut |p| p != 10).unwrap(),
            Recovery::Recovered {
                pid: Some(10),
                size: 24
            }
        );
        assert_eq!(pop(&mut c).unwrap(), vec![2; 32]);
        // The dead claim was the last one of a full ring: it ends at tail.
        let (_ring, mut ps, mut c) = setup(64, 56, 2);
        ps[1].try_push(&[3; 32]).unwrap(); // [0, 40)
        ps[0].try_reserve_until(16, Stage::Claimed).unwrap(); // [40, 64)
        assert_eq!(pop(&mut c).unwrap(), vec![3; 32]);
        assert_eq!(
            c.try_recover(&mut |p| p != 10).unwrap(),
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
        let (_ring, mut ps, mut c) = setup(64, 56, 3);
        ps[0].try_reserve_until(0, Stage::Claimed).unwrap(); // [0, 8)
        let r = ps[1].try_reserve_until(8, Stage::Claimed).unwrap(); // [8, 24)
        ps[2].try_push(b"x").unwrap(); // [24, 40)
        assert_eq!(
            c.try_recover(&mut |p| p != 10).unwrap(),
            Recovery::Recovered {
                pid: Some(10),
                size: 8
            }
        );
        assert_eq!(c.try_peek().unwrap(), None);
        assert_eq!(
            c.try_recover(&mut |p| p != 10).unwrap(),
            Recovery::Alive(20)
        );
        ps[1].commit(r);
        assert_eq!(pop(&mut c).unwrap(), vec![0; 8]);
        assert_eq!(pop(&mut c).unwrap(), b"x");
        // A gap of exactly one header at the wrap, claimed by a producer
        // that died before writing anything.
        let (_ring, mut ps, mut c) = setup(64, 56, 2);
        ps[1].try_push(&[4; 48]).unwrap(); // [0, 56)
        assert_eq!(pop(&mut c).unwrap(), vec![4; 48]);
        ps[0].try_reserve_until(1, Stage::Claimed).unwrap(); // gap [56, 64) + [64, 80)
        ps[1].try_push(b"y").unwrap(); // [80, 96)
        let mut dead10 = |p: u32| p != 10;
        assert_eq!(
            c.try_recover(&mut dead10).unwrap(),
            Recovery::Recovered {
                pid: Some(10),
                size: 8
            },
            "the gap, up to the end of the region"
        );
        assert_eq!(c.try_peek().unwrap(), None);
        assert_eq!(
            c.try_recover(&mut dead10).unwrap(),
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
                    let slot = take_slot(&ring.view(), pid, &mut |_| true).unwrap();
                    let mut p = Producer::new(ring.view(), slot, pid).unwrap();
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
                    p.leave();
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
