//! The doorbells: the wake protocol's glue to the semaphore set. Semaphore
//! [`SEM_DATA`] is posted for a sleeping receiver, [`SEM_SPACE`] for
//! sleeping senders; the sleeper's heavy fence is `membarrier` (see
//! `ring::wake` for the shared-memory half and `wait` for the sleeping).

use std::time::Duration;

use crate::layout::SEM_DATA;
#[cfg(doc)]
use crate::layout::SEM_SPACE;
use crate::segment::Segment;
use crate::sync::{AtomicU64, Ordering};
use crate::sys::{self, IpcError, SemOp, SemSet};
use crate::wait::{Bell, Removed};

/// The semaphore of one doorbell.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SemBell<'a> {
    sems: SemSet,
    num: u16,
    /// The header counter of this side's semaphore waits.
    sleeps: &'a AtomicU64,
}

impl Segment {
    /// The doorbell `num` ([`SEM_DATA`] or [`SEM_SPACE`]).
    pub(crate) fn bell(&self, num: u16) -> SemBell<'_> {
        let wake = &self.ring_state().wake;
        let sleeps = if num == SEM_DATA {
            &wake.receiver_sleeps
        } else {
            &wake.sender_sleeps
        };
        SemBell {
            sems: self.sems,
            num,
            sleeps,
        }
    }

    /// Posts doorbell `num` `n` times (nothing when `n` is 0); a removed
    /// set is ignored (every sleeper has woken with `EIDRM`).
    #[inline]
    pub(crate) fn ring_bell(&self, num: u16, n: u32) {
        if n > 0 {
            let _ = self.bell(num).ring(n);
        }
    }
}

impl Bell for SemBell<'_> {
    fn ring(&self, mut n: u32) -> Result<(), Removed> {
        while n > 0 {
            let k = n.min(i16::MAX as u32);
            match self.sems.op(&[SemOp::post(self.num, k as i16)]) {
                Ok(()) => n -= k,
                Err(IpcError::Interrupted) => {}
                Err(_) => return Err(Removed),
            }
        }
        Ok(())
    }

    fn barrier(&self) -> bool {
        sys::membarrier_global()
    }

    fn sleep(&self, timeout: Option<Duration>) -> Result<bool, Removed> {
        // Relaxed: a statistic, read by nobody for synchronisation.
        self.sleeps.fetch_add(1, Ordering::Relaxed);
        let op = [SemOp::wait(self.num, 1)];
        let r = match timeout {
            Some(t) => self.sems.timed_op(&op, t),
            None => self.sems.op(&op),
        };
        match r {
            Ok(()) => Ok(true),
            Err(IpcError::WouldBlock) | Err(IpcError::Interrupted) => Ok(false),
            Err(_) => Err(Removed),
        }
    }
}
