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
//! the publish, or the publisher sees the announcement. So no wake-up is
//! lost, no syscall is made when nobody sleeps, and every post answers one
//! announcement: the semaphore's value never exceeds the number of waiters.

use crate::sync::{fence, AtomicU32, Ordering};

/// Announces one waiter. The caller must re-check its condition after this
/// and before sleeping.
#[inline]
pub fn announce(waiters: &AtomicU32) {
    waiters.fetch_add(1, Ordering::Relaxed);
    // SeqCst fence: pairs with the fence in `claim`, so that this
    // announcement and the caller's following re-check of the ring (an
    // Acquire load of tail or head) cannot both miss the peer's publish.
    fence(Ordering::SeqCst);
}

/// After a publish: returns how many announced waiters this call claimed
/// (and must post for). Zero, with no write, when nobody waits.
#[inline]
pub fn claim(waiters: &AtomicU32) -> u32 {
    // SeqCst fence: pairs with the fence in `announce`; orders the caller's
    // preceding Release store (tail or head) before the load below.
    fence(Ordering::SeqCst);
    if waiters.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    waiters.swap(0, Ordering::Relaxed)
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
