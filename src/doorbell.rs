//! The doorbells: the wake protocol's glue to the kernel. Semaphore
//! [`SEM_DATA`] is posted for a sleeping receiver, [`SEM_SPACE`] for a
//! sleeping SPSC sender; an MPSC sender sleeps on a futex on its sender
//! slot's `sleeping` flag ([`SlotFutex`]). The sleeper's heavy fence is
//! `membarrier` (see `ring::wake` for the shared-memory half and `wait`
//! for the sleeping).

use std::time::Duration;

use crate::layout::SEM_DATA;
#[cfg(doc)]
use crate::layout::SEM_SPACE;
use crate::ring::mpsc;
use crate::ring::wake::Wakeups;
use crate::segment::Segment;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::sys::{self, IpcError, SemOp, SemSet};
use crate::wait::{Bell, Futex, Removed};

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

    /// Pays what `w` owes after publishes or releases: the posts of
    /// doorbell `num`, the MPSC senders' futex wakes, and the rings of
    /// the socket doorbells (`crate::Select` waiters) it claimed.
    #[inline]
    pub(crate) fn pay(&self, num: u16, w: &mut Wakeups) {
        // Nothing owed is the fast path: one test, no call.
        if w.owes() {
            self.pay_owed(num, w);
        }
    }

    #[cold]
    #[inline(never)]
    fn pay_owed(&self, num: u16, w: &mut Wakeups) {
        self.ring_bell(num, w.take());
        self.wake_senders(w.take_groups());
        for id in w.take_bells() {
            sys::ring_bell_socket(id);
        }
    }

    /// The futex doorbell of MPSC senders, and of broadcast subscribers
    /// (which count their sleeps as receivers').
    pub(crate) fn slot_futex(&self) -> SlotFutex<'_> {
        let wake = &self.ring_state().wake;
        SlotFutex {
            sleeps: if self.layout().flavor == crate::layout::Flavor::Broadcast {
                &wake.receiver_sleeps
            } else {
                &wake.sender_sleeps
            },
        }
    }

    /// MPSC: wakes the sleeping senders of the slots whose bits a release
    /// claimed (`groups`, from `Wakeups::take_groups`; nothing when 0).
    #[inline]
    pub(crate) fn wake_senders(&self, groups: u64) {
        if groups != 0 {
            // SAFETY: the view lives as long as `self`'s mapping, which
            // outlives this call.
            let view = unsafe { self.mapped.ring() };
            let futex = self.slot_futex();
            mpsc::claim_sleepers(&view, groups, &mut |flag| futex.wake(flag));
            mpsc::claim_slot_bells(&view, groups, false, &mut sys::ring_bell_socket);
        }
    }

    /// MPSC: wakes every sender asleep on a full ring (a receiver that
    /// leaves, a channel being removed); broadcast: every subscriber asleep
    /// in its slot (a publisher that leaves, a removal); nothing for SPSC.
    pub(crate) fn wake_all_senders(&self) {
        if self.layout().flavor != crate::layout::Flavor::Spsc {
            // SAFETY: as in wake_senders.
            let view = unsafe { self.mapped.ring() };
            let futex = self.slot_futex();
            mpsc::claim_all_sleepers(&view, &mut |flag| futex.wake(flag));
            mpsc::claim_slot_bells(&view, 0, true, &mut sys::ring_bell_socket);
        }
    }
}

/// The futex an MPSC sender sleeps on: its slot's `sleeping` flag.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotFutex<'a> {
    /// The header counter of senders' sleeps.
    sleeps: &'a AtomicU64,
}

impl Futex for SlotFutex<'_> {
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        // Relaxed: a statistic, read by nobody for synchronisation.
        self.sleeps.fetch_add(1, Ordering::Relaxed);
        if sys::futex_wait(word, expected, timeout) == sys::Woken::Failed {
            // No futex here (a seccomp filter, say): sleep a little instead
            // of returning at once, so that a blocked send polls rather
            // than spins; it sees space within UNFENCED_POLL.
            let t = timeout.map_or(crate::wait::UNFENCED_POLL, |t| {
                t.min(crate::wait::UNFENCED_POLL)
            });
            std::thread::sleep(t);
        }
    }

    fn wake(&self, word: &AtomicU32) {
        sys::futex_wake(word);
    }

    fn barrier(&self) -> bool {
        sys::membarrier_global()
    }
}

impl Bell for SemBell<'_> {
    fn ring(&self, mut n: u32) -> Result<(), Removed> {
        while n > 0 {
            let k = n.min(i16::MAX as u32);
            match self.sems.op(&[SemOp::post(self.num, k as i16)]) {
                Ok(()) => n -= k,
                Err(IpcError::Interrupted) => {}
                // At the semaphore's maximum (only a forged or foreign
                // value gets there): every sleeper has a unit already.
                Err(IpcError::OutOfRange) => return Ok(()),
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
