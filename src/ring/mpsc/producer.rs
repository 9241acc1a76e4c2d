//! An MPSC producer: its sender slot, the claim (a CAS of `tail`), the
//! in-progress mark, the commit and the abort.

use super::super::wake::Wakeups;
use super::super::{Corrupted, Reservation, ReserveError, RingView};
use super::behind;
use crate::layout::lines::SenderSlot;
use crate::layout::{kind, record_header, record_size, CLAIM_BIT, NO_CLAIM, RECORD_HEADER};
use crate::sync::Ordering;

/// The ordering of a commit. Under the `shmchan_mutant` cfg (with
/// `shmchan_loom`) it is weakened to Relaxed so that the loom models can
/// show they catch it.
#[cfg(not(all(shmchan_loom, shmchan_mutant)))]
const COMMIT: Ordering = Ordering::Release;
#[cfg(all(shmchan_loom, shmchan_mutant))]
const COMMIT: Ordering = Ordering::Relaxed;

/// What a claim at a tail with `contiguous` bytes before the end of a
/// `cap`-byte region covers for a record of `rec` bytes: `(gap, claimed)`.
/// A record that fits before the end: no gap. One that does not: the gap
/// (padding) and the record, in one claim, when both fit in the ring; the
/// gap alone when they cannot (a record longer than the ring less the
/// gap), so that a record of any allowed size can be sent into an empty
/// ring: its own claim then starts at index 0.
#[inline]
fn claim_size(rec: u64, contiguous: u64, cap: u64) -> (u64, u64) {
    if rec <= contiguous {
        (0, rec)
    } else if contiguous + rec <= cap {
        (contiguous, contiguous + rec)
    } else {
        (contiguous, contiguous)
    }
}

/// Takes a slot of the sender table for a producer of process `pid`
/// (non-zero): a free one, or else one whose owner `alive` says is dead
/// and whose last claim the consumer has released. `None` when every slot
/// belongs to a live sender (or to a dead one whose claim is still to be
/// recovered).
///
/// # Safety
/// `alive(pid)` returns false only for a process that will never again
/// write to the ring (gone, or detached from its memory): a live owner's
/// slot taken over would let the receiver's recovery skip its claim while
/// it writes.
pub unsafe fn take_slot(
    view: &RingView<'_>,
    pid: u32,
    alive: &mut dyn FnMut(u32) -> bool,
) -> Option<usize> {
    let me = u64::from(pid.max(1));
    let take = |s: &SenderSlot| {
        // Relaxed: a flag a previous owner killed asleep left; it wakes
        // nobody, and our own announcements set it again.
        s.sleeping.store(0, Ordering::Relaxed);
        // Relaxed: a doorbell a previous owner left, the same way.
        s.bell.store(0, Ordering::Relaxed);
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
    // Acquire: pairs with the Release store of head in Cursor::release_to
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

/// Gives sender slot `slot` back.
///
/// # Safety
/// The slot's producer holds no reservation and makes no more claims (the
/// receiver's recovery reads the slot to tell whose a claim is).
pub unsafe fn free_slot(view: &RingView<'_>, slot: usize) {
    let s = view.sender_slot(slot);
    // Release: pairs with the Acquire load of claim in try_recover.
    s.claim.store(NO_CLAIM, Ordering::Release);
    // Release: pairs with the Acquire CAS in take_slot and the Acquire load
    // of owner in try_recover.
    s.owner.store(0, Ordering::Release);
}

/// How far [`Producer::try_reserve_until`] goes: a producer that dies at
/// each of these points, for tests, fuzzing and models (reachable only
/// through `internals` and the test hooks; a normal build runs every stage).
#[cfg_attr(
    not(any(shmchan_loom, feature = "internals", feature = "test-hooks", test)),
    allow(dead_code)
)]
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
pub struct Producer<'a> {
    view: RingView<'a>,
    /// Our line in the sender table.
    slot: usize,
    /// The consumer's `head` as last seen; may be stale (behind).
    cached_head: u64,
    /// High half of our in-progress headers: `CLAIM_BIT | pid`.
    claim: u32,
    /// Receivers claimed by our commits that the caller must post for.
    wake: Wakeups,
}

impl<'a> Producer<'a> {
    /// A producer using sender slot `slot` that marks its claims with `pid`.
    ///
    /// # Safety
    /// `slot` was taken with [`take_slot`] for this producer, and no other
    /// producer uses it while this one does.
    pub unsafe fn new(
        view: RingView<'a>,
        slot: usize,
        pid: u32,
    ) -> Result<Producer<'a>, Corrupted> {
        if slot >= view.sender_slots() {
            return Err(Corrupted::new(
                "no such sender slot",
                [slot as u64, view.sender_slots() as u64, 0],
            ));
        }
        // Acquire: pairs with the Release store of head in
        // Cursor::release_to: the consumer's reads (and zeroing) of the
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
            wake: Wakeups::default(),
        })
    }

    /// The view this producer works on.
    pub fn view(&self) -> &RingView<'a> {
        &self.view
    }

    /// The sender slot this producer owns.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// Gives the sender slot back. Abort a reservation still held first:
    /// otherwise it blocks the receiver for as long as this process lives.
    #[cfg(any(shmchan_loom, feature = "internals", test))]
    pub fn leave(self) {
        // SAFETY: `self` is consumed: it makes no more claims, and nothing
        // can commit or abort through it any more.
        unsafe { free_slot(&self.view, self.slot) };
    }

    /// Whether a record of `len` bytes (and the gap before it, if any)
    /// fits in the free space now.
    pub fn has_space(&self, len: usize) -> Result<bool, Corrupted> {
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
        Ok(cap - used >= claim_size(rec, contiguous, cap).1)
    }

    /// Claims space for a record of `len` payload bytes and marks it in
    /// progress; the caller writes the payload and then calls
    /// [`Producer::commit`] or [`Producer::abort`].
    pub fn try_reserve(&mut self, len: usize) -> Result<Reservation, ReserveError> {
        self.reserve_stages(len, Stage::Reserved)
    }

    /// [`Producer::try_reserve`], stopping after `stage` (a producer killed
    /// there). Not for use outside tests, fuzzing and models.
    #[cfg(any(shmchan_loom, feature = "internals", feature = "test-hooks", test))]
    pub fn try_reserve_until(
        &mut self,
        len: usize,
        stage: Stage,
    ) -> Result<Reservation, ReserveError> {
        self.reserve_stages(len, stage)
    }

    /// The reservation's steps; `stop`: return after that one.
    #[inline]
    fn reserve_stages(&mut self, len: usize, stage: Stage) -> Result<Reservation, ReserveError> {
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
            let (pad, need) = claim_size(rec, contiguous, cap);
            let used = tail.wrapping_sub(self.cached_head);
            if used > cap || cap - used < need {
                // Acquire: pairs with the Release store of head in
                // Cursor::release_to (see `new`).
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
                Ok(_) if need == pad => {
                    // The gap alone (the record and the gap do not fit in
                    // the ring together): it is padding at once, and the
                    // record is claimed at index 0 next. Release: pairs
                    // with the consumer's Acquire load of the header.
                    self.view.region().atomic_u64(self.view.index(tail)).store(
                        record_header(kind::PADDING, (pad - 8) as u32),
                        Ordering::Release,
                    );
                    // Release: pairs with the Acquire load of claim in
                    // try_recover, which then sees the padding.
                    slot.claim.store(NO_CLAIM, Ordering::Release);
                    // The receiver must skip it to free the space (it may
                    // be asleep on an empty ring).
                    self.claim_receiver();
                    tail = tail.wrapping_add(pad);
                }
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
    ///
    /// # Safety
    /// `r` is a reservation this producer's `try_reserve` returned (or
    /// `try_reserve_until` with `Stage::Reserved`: a claim stopped at an
    /// earlier stage is abandoned, and the receiver may recover it), not
    /// yet committed or aborted.
    pub unsafe fn commit(&mut self, r: Reservation) {
        // Release (COMMIT): pairs with the Acquire load of the header in
        // Consumer::try_peek; makes the payload visible before the header.
        self.view
            .region()
            .atomic_u64(self.view.index(r.start))
            .store(record_header(kind::MESSAGE, r.len as u32), COMMIT);
        self.claim_receiver();
    }

    /// Gives a reservation up: the record becomes padding of its size.
    ///
    /// # Safety
    /// As for [`Producer::commit`].
    pub unsafe fn abort(&mut self, r: Reservation) {
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

    /// The wake protocol after a header store (see [`super::super::wake`]):
    /// claims a sleeping receiver, whom the caller must post for.
    #[inline]
    fn claim_receiver(&mut self) {
        // One receiver sleeps at most; a larger count is forged.
        let wake = &self.view.state().wake;
        self.wake
            .claim_after_publish_with_bell(&wake.recv_waiters, 1, &wake.recv_bell);
    }

    /// The posts owed to a sleeping receiver.
    #[inline]
    pub fn wakeups(&mut self) -> &mut Wakeups {
        &mut self.wake
    }

    /// Copies `msg` into the ring as one record.
    #[cfg(any(shmchan_loom, feature = "internals", test))]
    pub fn try_push(&mut self, msg: &[u8]) -> Result<(), ReserveError> {
        let r = self.try_reserve(msg.len())?;
        // SAFETY: the reservation is claimed space, ours alone until its
        // header is committed; it is the one try_reserve just returned.
        unsafe {
            self.view.region().write(r.data_offset, msg);
            self.commit(r);
        }
        Ok(())
    }
}
