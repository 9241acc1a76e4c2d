//! The event-count half of the wake protocol that lives in shared memory.
//!
//! A waiter counter `{ count: u32 }` per direction. A side about to sleep
//! announces itself (count + 1), issues a SeqCst fence, re-checks the ring,
//! and only then sleeps on the semaphore. The other side, after publishing,
//! issues a SeqCst fence and reads the counter; if it is non-zero it claims
//! every announced waiter at once (swap to 0) and posts that many times.
//!
//! The two fences order "announce, then re-check" against "publish, then
//! read the counter" (a store-load pair): either the waiter's re-check sees
//! the publish, or the publisher sees the announcement. In a channel the
//! publisher's fence is only a compiler fence when its process is
//! registered for `membarrier`, and the waiter then issues the barrier for
//! both (see [`claim_with`]). So no wake-up is
//! lost, no syscall is made when nobody sleeps, and every post answers one
//! announcement: the semaphore's value never exceeds the number of waiters.
//!
//! MPSC senders, of which many may sleep at once, do not share a counter:
//! each announces in its own sender slot (a flag, and its bit in the
//! `sleeping_senders` mask) and sleeps on a futex on that flag
//! ([`announce_slot`]). A counter shared by many sleepers cannot tell a
//! dead sleeper's announcement or unit from a live one's, so each sender
//! killed asleep would leave one behind for good; a flag has no count, and
//! whatever a dead owner left is cleared by the next claim.

use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};

/// Announces one waiter. The caller must re-check its condition after this
/// and before sleeping.
#[inline]
pub fn announce(waiters: &AtomicU32) {
    waiters.fetch_add(1, Ordering::Relaxed);
    // SeqCst fence: pairs with the fence in `claim`, so that this
    // announcement and the caller's following re-check of the ring (an
    // Acquire load of a header, tail or head) cannot both miss the peer's
    // publish.
    fence(Ordering::SeqCst);
}

/// After a publish: returns how many announced waiters this call claimed
/// (and must post for). Zero, with no write, when nobody waits.
#[inline]
pub fn claim(waiters: &AtomicU32) -> u32 {
    claim_with(waiters, false)
}

/// [`claim`], with `light`: a compiler fence instead of the SeqCst fence.
///
/// Only for a process registered for `membarrier`'s global expedited
/// barriers, whose sleepers issue one after announcing (see
/// [`crate::wait::Bell::barrier`]): that barrier runs a full fence in every
/// running thread of every registered process, so either this thread's
/// load of the counter comes after it (and sees the announcement) or its
/// publishing store (a header, tail or head) comes before it (and the
/// sleeper's re-check sees the store). The store-load fence then costs nothing on the fast path.
/// Under loom the fence stays SeqCst (the models check the symmetric
/// protocol, to which this reduces).
#[inline]
pub fn claim_with(waiters: &AtomicU32, light: bool) -> u32 {
    fence_after_publish(light);
    if waiters.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    waiters.swap(0, Ordering::Relaxed)
}

/// The waker's store-load fence, between its publish and its loads of the
/// announcements (see [`claim_with`] for `light`).
#[inline]
pub(crate) fn fence_after_publish(light: bool) {
    #[cfg(not(shmchan_loom))]
    if light {
        // A compiler fence: the caller's store is not moved after its
        // loads of the announcements by the compiler; the CPU's store-load
        // order comes from the sleeper's membarrier (see claim_with).
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
    } else {
        // SeqCst fence: pairs with the fence in `announce` and in
        // `announce_slot`; orders the caller's preceding Release store
        // (tail or head) before its loads of the announcements.
        fence(Ordering::SeqCst);
    }
    #[cfg(shmchan_loom)]
    {
        let _ = light;
        // SeqCst fence: pairs with the fence in `announce` and in
        // `announce_slot` (see above).
        fence(Ordering::SeqCst);
    }
}

/// Takes back one announcement when the waiter no longer sleeps. Returns
/// false when a peer has already claimed it: a post is then on its way and
/// the waiter must consume it (so the semaphore stays bounded).
#[inline]
pub fn retract(waiters: &AtomicU32) -> bool {
    let mut n = waiters.load(Ordering::Relaxed);
    loop {
        if n == 0 {
            return false;
        }
        match waiters.compare_exchange_weak(n, n - 1, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(cur) => n = cur,
        }
    }
}

/// A waiter that watches a socket doorbell (a [`crate::Select`]) announces
/// itself: its doorbell's id into `bell` (`recv_bell` or `send_bell`),
/// then a SeqCst fence, as in [`announce`]. The caller must re-check its
/// condition after this (and after the membarrier the sleepers issue)
/// before it waits; one word, not a count: what a waiter killed while
/// announced leaves there is taken by the next claim, which rings a
/// doorbell nobody has any more.
#[inline]
pub fn announce_bell(bell: &AtomicU64, id: u64) {
    bell.store(id, Ordering::Relaxed);
    // SeqCst fence: pairs with the waker's fence after its publish (see
    // `announce`).
    fence(Ordering::SeqCst);
}

/// An MPSC sender waiting for space in a poll loop announces its doorbell
/// `id` in its slot's `bell`, then its bit in `mask` (`sleeping_senders`)
/// with Release and a SeqCst fence, as [`announce_slot`] does for the flag.
#[inline]
pub fn announce_slot_bell(bell: &AtomicU64, mask: &AtomicU64, slot: usize, id: u64) {
    bell.store(id, Ordering::Relaxed);
    // Release: pairs with the Acquire swap of the mask by the consumer
    // (see `announce_slot`): a waker that takes our bit loads our id.
    mask.fetch_or(slot_bit(slot), Ordering::Release);
    // SeqCst fence: as in `announce_slot`.
    fence(Ordering::SeqCst);
}

/// Takes back a doorbell announcement if it is still ours. Returns false
/// when a waker claimed it (a ring is on its way, which the waiter drains
/// before it next waits: nothing to consume).
#[inline]
pub fn retract_bell(bell: &AtomicU64, id: u64) -> bool {
    bell.compare_exchange(id, 0, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
}

/// The bit of the `sleeping_senders` mask for sender slot `slot`: slots
/// `slot % 64` share one (a set bit tells a waker which slots to look at).
#[inline]
pub const fn slot_bit(slot: usize) -> u64 {
    1 << (slot % 64)
}

/// An MPSC sender in slot `slot` announces that it is about to sleep: its
/// slot's `flag` (the word it will sleep on) to 1, then its bit in `mask`
/// (`sleeping_senders`). The caller must re-check its condition after this
/// and before sleeping, and sleep only while the flag is still 1.
#[inline]
pub fn announce_slot(flag: &AtomicU32, mask: &AtomicU64, slot: usize) {
    flag.store(1, Ordering::Relaxed);
    // Release: pairs with the Acquire swap of the mask in
    // `Wakeups::claim_senders_after_publish` (and in a departing
    // receiver's `mpsc::claim_all_sleepers`): a waker that takes our bit
    // then loads our flag as 1 (or later).
    mask.fetch_or(slot_bit(slot), Ordering::Release);
    // SeqCst fence: pairs with the waker's fence after its publish, as in
    // `announce`: our re-check or the waker's load of the mask sees the
    // other's store.
    fence(Ordering::SeqCst);
}

/// Takes back a slot announcement (after the re-check, or after the
/// sleep). Returns whether it was still there (nobody claimed it); a claim
/// leaves nothing to consume (a futex wake is not counted), so either way
/// nothing is left behind.
#[inline]
pub fn retract_slot(flag: &AtomicU32) -> bool {
    flag.swap(0, Ordering::Relaxed) != 0
}

/// The posts an endpoint owes after its publishes or releases: the waiters
/// they claimed, which the caller turns into semaphore posts (nothing here
/// makes a system call). Shared by every producer and consumer.
#[derive(Debug, Default)]
pub struct Wakeups {
    /// Claimed waiters not yet posted for.
    owed: u32,
    /// MPSC consumer: claimed bits of `sleeping_senders` whose slots are
    /// still to be looked at and woken.
    groups: u64,
    /// Use the light fence after publishing (see [`claim_with`]).
    light: bool,
    /// Claimed doorbell announcements (ids) not yet rung: one per claim,
    /// and a claim per publish at most, so two hold what the publishes
    /// between two takes can claim (a third, older one is rung late by the
    /// waiter's own poll).
    bells: [u64; 2],
}

impl Wakeups {
    /// After a publish (a Release store of tail, head or a record header):
    /// claims the announced waiters on `waiters`, owing at most `max` posts
    /// in all (one for a side that has one sleeper at most: a larger count
    /// in the segment is forged, and must not turn into a storm of posts).
    #[inline]
    pub fn claim_after_publish(&mut self, waiters: &AtomicU32, max: u32) {
        let n = claim_with(waiters, self.light);
        if n > 0 {
            self.owed = self.owed.saturating_add(n).min(max);
        }
    }

    /// [`Wakeups::claim_after_publish`], and, after the same fence, the
    /// doorbell announcement in `bell`.
    #[inline]
    pub fn claim_after_publish_with_bell(
        &mut self,
        waiters: &AtomicU32,
        max: u32,
        bell: &AtomicU64,
    ) {
        self.claim_after_publish(waiters, max);
        self.claim_bell(bell);
    }

    /// Claims the doorbell announcement in `bell`, if any (the caller has
    /// issued the fence after its publish).
    #[inline]
    pub fn claim_bell(&mut self, bell: &AtomicU64) {
        if bell.load(Ordering::Relaxed) != 0 {
            let id = bell.swap(0, Ordering::Relaxed);
            if id != 0 && !self.bells.contains(&id) {
                self.bells = [id, self.bells[0]];
            }
        }
    }

    /// Whether anything is owed: posts, sender slots, or doorbells (a
    /// second doorbell is only ever claimed beside a first).
    #[inline]
    pub fn owes(&self) -> bool {
        self.owed != 0 || self.groups != 0 || self.bells[0] != 0
    }

    /// Returns, and resets, the claimed doorbells (0: none), which the
    /// caller rings.
    #[inline]
    pub fn take_bells(&mut self) -> [u64; 2] {
        std::mem::take(&mut self.bells)
    }

    /// An MPSC consumer, after a release (a Release store of head): as
    /// [`Wakeups::claim_after_publish`] for `waiters` (senders that count
    /// themselves there: none of this crate's), and claims the bits of the
    /// sender slots that announced themselves asleep in `mask`, after the
    /// same fence.
    #[inline]
    pub fn claim_senders_after_publish(&mut self, waiters: &AtomicU32, max: u32, mask: &AtomicU64) {
        fence_after_publish(self.light);
        if waiters.load(Ordering::Relaxed) != 0 {
            let n = waiters.swap(0, Ordering::Relaxed);
            self.owed = self.owed.saturating_add(n).min(max);
        }
        if mask.load(Ordering::Relaxed) != 0 {
            // Acquire: pairs with the Release fetch_or in `announce_slot`:
            // the flags of the slots we take bits of read as announced.
            self.groups |= mask.swap(0, Ordering::Acquire);
        }
    }

    /// Returns, and resets, the claimed bits of `sleeping_senders`, whose
    /// slots the caller wakes (`ring::mpsc::claim_sleepers`).
    #[inline]
    pub fn take_groups(&mut self) -> u64 {
        std::mem::take(&mut self.groups)
    }

    /// Use the light fence after publishing (see [`claim_with`]): only in a
    /// process registered for `membarrier`'s global expedited barriers,
    /// whose sleepers issue one.
    pub fn set_light_fence(&mut self, light: bool) {
        self.light = light;
    }

    /// Returns, and resets, the posts owed.
    #[inline]
    pub fn take(&mut self) -> u32 {
        std::mem::take(&mut self.owed)
    }
}
