//! The senders' doorbells: which sender slots to wake after a release.
//!
//! A sender about to sleep on a full ring announces itself in its own slot
//! (`ring::wake::announce_slot`: its `sleeping` flag, then its bit in
//! `sleeping_senders`) and sleeps in a futex wait on the flag. The consumer
//! takes the mask's bits after each release
//! (`Wakeups::claim_senders_after_publish`); here it looks at the slots
//! those bits stand for, clears each flag that says asleep, and the caller
//! wakes that flag's futex. A flag cleared before its sender is in the
//! kernel makes the sender's futex wait return at once, so no wake-up is
//! lost; a flag has no count, so nothing accumulates, whoever dies where.

use crate::ring::RingView;
use crate::sync::{AtomicU32, Ordering};

/// Claims the sleepers of the slots whose bits `groups` has (bit `b`:
/// slots `b`, `b + 64`, …): for each slot whose flag says asleep, clears
/// it and calls `wake` with it. Returns how many were claimed.
pub fn claim_sleepers(view: &RingView<'_>, groups: u64, wake: &mut dyn FnMut(&AtomicU32)) -> u32 {
    let slots = view.sender_slots();
    let mut claimed = 0;
    let mut bits = groups;
    while bits != 0 {
        let b = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        for i in (b..slots).step_by(64) {
            claimed += claim_one(view.slot_wake(i).0, wake);
        }
    }
    claimed
}

/// Claims every sender slot's sleeper, whatever the mask says (a receiver
/// that leaves, a channel being removed: rare, and every sleeper must
/// hear of it). Returns how many were claimed.
pub fn claim_all_sleepers(view: &RingView<'_>, wake: &mut dyn FnMut(&AtomicU32)) -> u32 {
    // Acquire: pairs with the Release fetch_or in `announce_slot` (the
    // flags below read as announced); the bits are dropped, since every
    // slot is looked at.
    view.state()
        .wake
        .sleeping_senders
        .swap(0, Ordering::Acquire);
    (0..view.sender_slots())
        .map(|i| claim_one(view.slot_wake(i).0, wake))
        .sum()
}

/// Claims the socket doorbells announced in the slots whose bits `groups`
/// has (see [`claim_sleepers`]; a `Select` waiting for space announces
/// its doorbell in the slot and the slot's bit): each is swapped with 0
/// and handed to `ring`. `all`: every slot, whatever `groups` says.
pub fn claim_slot_bells(view: &RingView<'_>, groups: u64, all: bool, ring: &mut dyn FnMut(u64)) {
    let slots = view.sender_slots();
    let mut take = |i: usize| {
        let bell = view.slot_wake(i).1;
        // Relaxed: made visible by the mask's Release/Acquire pair, as the
        // flags; the swap decides who rings it.
        if bell.load(Ordering::Relaxed) != 0 {
            let id = bell.swap(0, Ordering::Relaxed);
            if id != 0 {
                ring(id);
            }
        }
    };
    if all {
        (0..slots).for_each(&mut take);
        return;
    }
    let mut bits = groups;
    while bits != 0 {
        let b = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        (b..slots).step_by(64).for_each(&mut take);
    }
}

#[inline]
fn claim_one(flag: &AtomicU32, wake: &mut dyn FnMut(&AtomicU32)) -> u32 {
    // Relaxed: the flag was made visible by the mask's Release/Acquire
    // pair (see `announce_slot`); the swap decides who wakes it, and the
    // futex call orders the rest.
    if flag.load(Ordering::Relaxed) != 0 && flag.swap(0, Ordering::Relaxed) != 0 {
        wake(flag);
        1
    } else {
        0
    }
}
