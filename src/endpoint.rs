//! Liveness: how an endpoint registers in the semaphore set, how it leaves,
//! how its peer sees it gone, and how an endpoint inherited through `fork`
//! is told apart.
//!
//! - A live endpoint holds +1 on its side's semaphore ([`SEM_SENDERS`],
//!   [`SEM_RECEIVERS`]) with `SEM_UNDO`: the kernel takes it back when the
//!   process dies, however it dies.
//! - A side is gone when its count is 0 and it has connected at least
//!   once (`sender_connects`, `receiver_connects` in the header): before
//!   any receiver connected, a full channel simply waits, like a pipe's
//!   writer.
//! - Leaving (a drop) takes the +1 back and wakes every peer announced
//!   asleep, so it sees the departure now rather than at its next poll.
//! - A child that inherits an endpoint through `fork` is not registered
//!   (the kernel does not copy `SEM_UNDO` adjustments): the endpoint
//!   records the process's fork generation ([`sys::fork_generation`]) and
//!   every operation compares it, a relaxed load.

use std::sync::Arc;

use crate::error::{open_err, OpenError};
use crate::layout::lines::RingState;
use crate::layout::{SEM_DATA, SEM_RECEIVERS, SEM_SENDERS, SEM_SPACE};
use crate::segment::Segment;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::sys::{self, IpcError, SemOp};
use crate::wait;

/// A live endpoint's +1 in the semaphore set, taken back on drop by the
/// process that took it (a child that inherited it through `fork` does not
/// touch the count).
#[derive(Debug)]
pub(crate) struct Registration {
    seg: Arc<Segment>,
    num: u16,
    /// [`sys::fork_generation`] when registered.
    generation: u64,
}

impl Registration {
    /// Registers on semaphore `num` of `seg`'s set; `exclusive`: only
    /// while nobody else holds this side (SPSC senders, all receivers),
    /// else [`OpenError::Busy`].
    pub(crate) fn new(
        seg: &Arc<Segment>,
        num: u16,
        exclusive: bool,
    ) -> Result<Registration, OpenError> {
        let both = [SemOp::wait_zero(num).no_wait(), SemOp::post(num, 1).undo()];
        let ops = if exclusive { &both[..] } else { &both[1..] };
        loop {
            match seg.sems.op(ops) {
                Ok(()) => break,
                Err(IpcError::Interrupted) => continue,
                Err(IpcError::WouldBlock) => return Err(OpenError::Busy),
                Err(IpcError::Removed) | Err(IpcError::InvalidArgument) => {
                    return Err(OpenError::NotFound)
                }
                Err(e) => return Err(open_err("semop", e)),
            }
        }
        Ok(Registration {
            seg: seg.clone(),
            num,
            generation: sys::fork_generation(),
        })
    }

    /// The channel this registration is in.
    #[inline]
    pub(crate) fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    /// Whether this process made the registration (not a child that
    /// inherited it).
    pub(crate) fn owned_here(&self) -> bool {
        !self.forked()
    }

    /// Whether this process is a child forked after the registration: a
    /// relaxed load, cheap enough for every operation.
    #[inline]
    pub(crate) fn forked(&self) -> bool {
        // The handler was registered when this registration was made.
        self.generation != sys::forks_seen()
    }

    /// Counts this endpoint's connection in the header, once it is ready:
    /// the peer's "gone" test needs a side to have connected once.
    pub(crate) fn announce_connect(&self) {
        let wake = &self.seg.ring_state().wake;
        let connects = if self.num == SEM_SENDERS {
            &wake.sender_connects
        } else {
            &wake.receiver_connects
        };
        // Release: pairs with the Acquire load in `side_gone`, so a peer
        // that sees the connect sees our registration before it.
        connects.fetch_add(1, Ordering::Release);
    }

    /// Clears what a dead holder of this side may have left: an
    /// announcement of sleep that nobody will retract, and a doorbell unit
    /// posted for it. Only for a side with one live holder (the one just
    /// registered), which alone announces on this counter, so nothing live
    /// is lost; a peer that claimed the stale announcement just before may
    /// still post once, a single spurious wake-up at worst.
    pub(crate) fn clear_stale_wake(&self) {
        let wake = &self.seg.ring_state().wake;
        let (waiters, bell) = if self.num == SEM_SENDERS {
            (&wake.send_waiters, SEM_SPACE)
        } else {
            (&wake.recv_waiters, SEM_DATA)
        };
        clear(waiters);
        let _ = self.seg.sems.set_value(bell, 0);
    }
}

fn clear(waiters: &AtomicU32) {
    // Relaxed: see clear_stale_wake; the semctl after it is a barrier.
    waiters.store(0, Ordering::Relaxed);
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.owned_here() {
            return;
        }
        let op = [SemOp::wait(self.num, 1).undo().no_wait()];
        while let Err(IpcError::Interrupted) = self.seg.sems.op(&op) {}
        // Wake the peer so that it sees the disconnect now, not at its next
        // poll. The semop above is a full barrier; `claim` fences again.
        // One receiver sleeps at most; senders, one per sender slot (MPSC).
        let wake = &self.seg.ring_state().wake;
        let (waiters, bell, max, socket) = if self.num == SEM_SENDERS {
            (&wake.recv_waiters, SEM_DATA, 1, &wake.recv_bell)
        } else {
            let senders = self.seg.layout().sender_slots.max(1) as u32;
            (&wake.send_waiters, SEM_SPACE, senders, &wake.send_bell)
        };
        wait::leave(waiters, &self.seg.bell(bell), max);
        // A peer waiting in a poll loop (a `Select`): after the fence in
        // `leave`. Relaxed: the swap decides who rings it.
        sys::ring_bell_socket(socket.swap(0, Ordering::Relaxed));
        // MPSC senders sleep in their slots, not on the counter; so do
        // broadcast subscribers (woken when the publisher leaves).
        let slots_sleep = match self.seg.layout().flavor {
            crate::layout::Flavor::Mpsc => self.num == SEM_RECEIVERS,
            crate::layout::Flavor::Broadcast => self.num == SEM_SENDERS,
            crate::layout::Flavor::Spsc => false,
        };
        if slots_sleep {
            self.seg.wake_all_senders();
        }
    }
}

/// MPSC and broadcast: refuses an endpoint in another pid namespace than
/// the channel's creator (its pids would not mean the same to the
/// receiver's recovery, or the publisher's release of dead subscribers).
/// A channel that records none (0: an older creator, or unknown) is not
/// checked.
pub(crate) fn check_pid_namespace(seg: &Segment) -> Result<(), OpenError> {
    let channel = seg.layout().pid_ns;
    if seg.layout().flavor == crate::layout::Flavor::Spsc || channel == 0 {
        return Ok(());
    }
    match sys::pid_namespace() {
        ours if ours != 0 && ours != channel => {
            Err(OpenError::ForeignPidNamespace { channel, ours })
        }
        _ => Ok(()),
    }
}

/// Messages a sender sends between two looks at the receivers' liveness
/// count (a system call): a killed receiver (which cannot say it left) is
/// seen within this many messages, not only when the ring is full.
pub(crate) const LIVENESS_EVERY: u32 = 1024;

/// Whether the receiver left cleanly (it says so in the producer line,
/// which a sender holds anyway): one load, for every send.
#[inline]
pub(crate) fn receiver_left(state: &RingState) -> bool {
    // Relaxed: a flag, ordered with nothing: it only decides whether this
    // send reports Disconnected; a stale 0 is caught by the next send.
    state.producer.receiver_gone.load(Ordering::Relaxed) != 0
}

/// A receiver says whether it is leaving cleanly (`gone`, in its drop) or
/// has connected (not `gone`): see [`receiver_left`].
pub(crate) fn set_receiver_gone(seg: &Segment, gone: bool) {
    // Relaxed: see receiver_left; the semop that follows a departure, or
    // preceded a connect, is a full barrier besides.
    seg.ring_state()
        .producer
        .receiver_gone
        .store(u64::from(gone), Ordering::Relaxed);
}

/// Whether every receiver is gone (having connected once), or the channel
/// was removed. A system call: for the slow path only.
pub(crate) fn receiver_gone(seg: &Segment) -> bool {
    side_gone(seg, SEM_RECEIVERS, &seg.ring_state().wake.receiver_connects)
}

/// Whether every sender is gone (having connected once), or the channel
/// was removed. A system call: for the slow path only.
pub(crate) fn senders_gone(seg: &Segment) -> bool {
    side_gone(seg, SEM_SENDERS, &seg.ring_state().wake.sender_connects)
}

fn side_gone(seg: &Segment, num: u16, connects: &AtomicU64) -> bool {
    // Acquire: pairs with the Release increment in announce_connect.
    let connects = connects.load(Ordering::Acquire);
    match seg.alive(num) {
        None => true,
        Some(n) => n == 0 && connects > 0,
    }
}
