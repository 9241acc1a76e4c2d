//! Async endpoints (feature `tokio`): `Receiver::recv_async`,
//! `Receiver::stream`, `Sender::send_async`, `Sender::reserve_async`.
//!
//! The fast path is the blocking API's (`try_recv`, `try_reserve`): no
//! system call while there is something to do. When an endpoint must wait,
//! it waits as a [`crate::Select`] does, on its own socket doorbell
//! (docs/FORMAT.md, 6.3), registered with the tokio reactor (`AsyncFd`):
//! it announces the doorbell in the channel, issues the sleepers'
//! barrier, looks again, and returns `Pending` until the doorbell is rung
//! or its liveness timer (100 ms, as a blocking wait's poll) fires. No
//! thread per endpoint. A future dropped while waiting takes its
//! announcement back (cancel safety: nothing is received or sent by a
//! future that did not complete, and nothing is left in the channel).
//!
//! The futures must be polled inside a tokio runtime with its I/O and
//! time drivers enabled (`#[tokio::main]`, or a builder with
//! `enable_all`); they panic otherwise, as tokio's own do. Timeouts come
//! from the runtime (`tokio::time::timeout`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::{Instant, Sleep};

use crate::sys::BellSocket;
use crate::wait::{Spinner, UNFENCED_POLL};

/// An endpoint's async waiting state: its doorbell in the reactor (none
/// when no socket could be made: the timer alone then wakes the task,
/// every millisecond), the liveness timer, and the doorbell id while it is
/// announced in the channel.
#[derive(Debug)]
pub(crate) struct Waiter {
    fd: Option<AsyncFd<BellSocket>>,
    timer: Pin<Box<Sleep>>,
    armed: Option<u64>,
    /// The timer was set by the current announcement (or nap).
    timing: bool,
}

/// What a waiting endpoint gives [`Waiter::poll_wait`].
pub(crate) trait Waitable {
    /// Whether the operation may proceed now (shared memory only).
    fn ready(&self) -> bool;
    /// Announces doorbell `id` where the peers look.
    fn announce(&self, id: u64);
    /// Takes the announcement of `id` back, if it is still there.
    fn retract(&self, id: u64);
    /// The longest wait between two looks (liveness, recovery).
    fn poll_interval(&self) -> Duration;
    /// How many spinning steps to take before announcing (the
    /// endpoint's `set_spin_limit`, as its blocking waits do).
    fn spin_limit(&self) -> u32;
    /// Whether the peers are gone (or the channel removed): a system
    /// call, made only around a real wait.
    fn gone(&self) -> bool;
}

impl Waiter {
    fn new() -> Waiter {
        Waiter {
            fd: BellSocket::new().ok().and_then(|bell| {
                // SAFETY: a BellSocket owns its descriptor for its whole
                // life and always returns that one from as_raw_fd.
                unsafe { AsyncFd::register_with_interest(bell, Interest::READABLE) }.ok()
            }),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
            timing: false,
        }
    }

    /// Takes the announcement back (a future dropped, an endpoint that
    /// proceeds or leaves).
    pub(crate) fn disarm(&mut self, w: &dyn Waitable) {
        self.timing = false;
        if let Some(id) = self.armed.take() {
            w.retract(id);
        }
    }

    /// One step of waiting: `Ready` when the caller should try its
    /// operation again (found ready while spinning or in the look after
    /// announcing, the doorbell rung, the timer fired), with `true` when
    /// the peers are gone (looked at before a real wait and after one,
    /// never on the spinning path); `Pending` when the task will be woken
    /// by the doorbell or the timer. `slot` holds the waiter, made on
    /// first use.
    pub(crate) fn poll_wait(
        slot: &mut Option<Box<Waiter>>,
        w: &dyn Waitable,
        cx: &mut Context<'_>,
    ) -> Poll<bool> {
        let me = slot.get_or_insert_with(|| Box::new(Waiter::new()));
        if !me.timing {
            // A short spin first, as a blocking wait does: a peer that is
            // streaming publishes again within microseconds, and arming
            // costs system calls (the drain, the barrier).
            let mut spinner = Spinner::new(w.spin_limit());
            while spinner.spin() {
                if w.ready() {
                    return Poll::Ready(false);
                }
            }
            let mut nap = UNFENCED_POLL;
            if let Some(fd) = &me.fd {
                let fenced = fd.get_ref().arm(|id| w.announce(id));
                me.armed = Some(fd.get_ref().id());
                if fenced {
                    nap = w.poll_interval();
                }
            }
            me.timer.as_mut().reset(Instant::now() + nap);
            me.timing = true;
            if w.ready() {
                me.disarm(w);
                return Poll::Ready(false);
            }
            if w.gone() {
                me.disarm(w);
                return Poll::Ready(true);
            }
        }
        if let Some(fd) = &me.fd {
            match fd.poll_read_ready(cx) {
                Poll::Ready(Ok(mut guard)) => {
                    guard.get_inner().drain();
                    guard.clear_ready();
                    me.disarm(w);
                    return Poll::Ready(w.gone());
                }
                Poll::Ready(Err(_)) => {
                    me.disarm(w);
                    return Poll::Ready(w.gone());
                }
                Poll::Pending => {}
            }
        }
        match me.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                me.disarm(w);
                Poll::Ready(w.gone())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
