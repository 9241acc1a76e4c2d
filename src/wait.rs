//! Blocking: spin with backoff, then announce, re-check and sleep on a
//! doorbell (a System V semaphore in a channel, a loom mock in the models).
//!
//! See [`crate::ring::wake`] for the shared-memory half of the protocol and
//! why no wake-up is lost.

use std::time::Duration;

use crate::ring::wake;
use crate::sync::AtomicU32;

/// How long a sleeper sleeps at most before it re-checks liveness.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long a waiter whose announcement was claimed waits for the post that
/// the claim promised (it arrives within microseconds unless the poster died).
pub const ABSORB_TIMEOUT: Duration = Duration::from_millis(100);

/// The doorbell was removed (the channel's semaphore set is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removed;

/// A doorbell: a counting semaphore used only to sleep and wake.
pub trait Bell {
    /// Adds `n` to the doorbell, waking up to `n` sleepers.
    fn ring(&self, n: u32) -> Result<(), Removed>;
    /// Takes one unit, sleeping until one is there or `timeout` passes
    /// (`None`: no limit). Returns whether a unit was taken; an interrupted
    /// sleep returns `Ok(false)`.
    fn sleep(&self, timeout: Option<Duration>) -> Result<bool, Removed>;
}

/// Spins with exponential backoff, then yields, for a bounded number of
/// steps before the caller goes to sleep.
#[derive(Debug)]
pub struct Spinner {
    step: u32,
    limit: u32,
}

/// Steps that busy-spin (2^step pause hints each) before yielding starts.
const SPIN_STEPS: u32 = 7;

impl Spinner {
    /// A spinner that allows `limit` steps (see [`Spinner::spin`]).
    pub fn new(limit: u32) -> Spinner {
        Spinner { step: 0, limit }
    }

    /// One backoff step; returns false (without waiting) once the budget is
    /// spent and the caller should sleep.
    ///
    /// Steps 0..7 spin 1, 2, … 64 pause hints; later steps spin 64 hints
    /// each and yield the CPU every 8th step, so that a peer on the same core
    /// (an oversubscribed machine) gets to run.
    #[inline]
    pub fn spin(&mut self) -> bool {
        if self.step >= self.limit {
            return false;
        }
        if self.step < SPIN_STEPS || !self.step.is_multiple_of(8) {
            for _ in 0..1u32 << self.step.min(SPIN_STEPS - 1) {
                std::hint::spin_loop();
            }
        } else {
            #[cfg(not(shmchan_loom))]
            std::thread::yield_now();
            #[cfg(shmchan_loom)]
            loom::thread::yield_now();
        }
        self.step = self.step.saturating_add(1);
        true
    }
}

/// One round of sleeping: announce on `waiters`, re-check `ready`, and sleep
/// on `bell` for at most `timeout` unless ready.
///
/// Returns when the condition may have changed: ready on re-check, woken,
/// timed out or interrupted. The caller re-checks everything and loops.
/// Every announcement is either retracted or answered by exactly one
/// consumed post before this returns (unless the poster died between its
/// claim and its post), which keeps the semaphore's value bounded.
pub fn sleep_once<B: Bell + ?Sized>(
    waiters: &AtomicU32,
    bell: &B,
    ready: &mut dyn FnMut() -> bool,
    timeout: Option<Duration>,
) -> Result<(), Removed> {
    wake::announce(waiters);
    if ready() {
        if !wake::retract(waiters) {
            absorb(bell)?;
        }
        return Ok(());
    }
    if !bell.sleep(timeout)? && !wake::retract(waiters) {
        absorb(bell)?;
    }
    Ok(())
}

/// Consumes the post promised by a claim of our announcement.
fn absorb<B: Bell + ?Sized>(bell: &B) -> Result<(), Removed> {
    #[cfg(not(shmchan_loom))]
    let timeout = Some(ABSORB_TIMEOUT);
    // Under loom the mock has no timeouts; the claimer always posts.
    #[cfg(shmchan_loom)]
    let timeout = None;
    bell.sleep(timeout).map(drop)
}
