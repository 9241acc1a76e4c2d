//! A sender waiting outside a blocking call: the hooks a
//! [`crate::Select`] reads it through, its own file descriptor
//! ([`Sender::arm`], `AsFd`), and (feature `tokio`) `send_async` and
//! `reserve_async`. Each announces a socket doorbell where the consumer
//! looks (docs/FORMAT.md, 6.3).

use super::{Prod, Sender};
use crate::endpoint::receiver_left;
use crate::sys;
#[cfg(feature = "tokio")]
use {
    super::Grant,
    crate::{
        error::{SendError, WaitError},
        ring::Reservation,
        wait,
    },
    std::time::Duration,
};

impl Sender {
    /// [`crate::Select`]: whether a send may proceed now, from shared
    /// memory alone: room for a message of `max_message` bytes (a
    /// smaller one may fit sooner: `try_send` says), a receiver that left
    /// (a send reports it), or a sender that can only fail here
    /// (inherited through `fork`). It may say true spuriously.
    pub(crate) fn select_ready(&self) -> bool {
        self.ready_for(self.producer.view().max_message())
    }

    /// Whether a send of `len` bytes may proceed now, as
    /// [`Sender::select_ready`] says it for `max_message`.
    fn ready_for(&self, len: usize) -> bool {
        if self.reg.forked()
            || (receiver_left(self.producer.view().state()) && self.producer.needs_receiver())
        {
            return true;
        }
        match &self.producer {
            Prod::Spsc(p) => p.space_now(len),
            Prod::Broadcast(p, hold) => {
                // Held back for the recovery timeout: a send may release a
                // dead subscriber.
                p.space_now(len) || hold.since.is_some_and(|t| t.elapsed() >= hold.timeout)
            }
            Prod::Mpsc(p) => p.has_space(len).unwrap_or(true),
        }
    }

    /// [`crate::Select`]'s slower look (a system call): the receiver gone
    /// (killed: no flag says so) or the channel removed.
    pub(crate) fn select_stuck(&self) -> bool {
        self.gone()
    }

    /// [`crate::Select`]: announces the waiter's doorbell `id`: SPSC in
    /// `send_bell`, MPSC in the sender's slot (and the slot's bit of
    /// `sleeping_senders`, which the consumer claims after a release).
    pub(crate) fn select_announce(&self, id: u64) {
        let wake = &self.reg.segment().ring_state().wake;
        match &self.producer {
            Prod::Spsc(_) | Prod::Broadcast(..) => {
                crate::ring::wake::announce_bell(&wake.send_bell, id)
            }
            Prod::Mpsc(p) => {
                let slot = p.slot();
                let s = self.producer.view().sender_slot(slot);
                crate::ring::wake::announce_slot_bell(&s.bell, &wake.sleeping_senders, slot, id);
            }
        }
    }

    /// [`crate::Select`]: takes back the announcement of doorbell `id`.
    pub(crate) fn select_retract(&self, id: u64) {
        let wake = &self.reg.segment().ring_state().wake;
        let bell = match &self.producer {
            Prod::Spsc(_) | Prod::Broadcast(..) => &wake.send_bell,
            Prod::Mpsc(p) => &self.producer.view().sender_slot(p.slot()).bell,
        };
        crate::ring::wake::retract_bell(bell, id);
    }
}

/// What an async sender waits for: room for `len` bytes (feature `tokio`).
#[cfg(feature = "tokio")]
struct SpaceFor<'a> {
    tx: &'a Sender,
    len: usize,
}

#[cfg(feature = "tokio")]
impl crate::aio::Waitable for SpaceFor<'_> {
    fn ready(&self) -> bool {
        self.tx.ready_for(self.len)
    }
    fn announce(&self, id: u64) {
        self.tx.select_announce(id);
    }
    fn retract(&self, id: u64) {
        self.tx.select_retract(id);
    }
    fn poll_interval(&self) -> Duration {
        match &self.tx.producer {
            Prod::Broadcast(_, hold) => {
                (hold.timeout / 4).clamp(Duration::from_millis(1), wait::POLL_INTERVAL)
            }
            _ => wait::POLL_INTERVAL,
        }
    }
    fn spin_limit(&self) -> u32 {
        self.tx.spin_limit
    }
    fn gone(&self) -> bool {
        self.tx.gone()
    }
}

/// Async sending (feature `tokio`).
#[cfg(feature = "tokio")]
impl Sender {
    /// Sends `msg`, waiting asynchronously while the channel is full: the
    /// same result as [`Sender::send`], without a thread blocked. While it
    /// waits, the task is woken through the sender's socket doorbell
    /// (registered with tokio's reactor) by the receiver's releases, or by
    /// a 100 ms timer that looks at the receiver's liveness. Poll it inside
    /// a tokio runtime with I/O and time enabled.
    ///
    /// Cancel-safe: a future dropped before it completed has sent nothing
    /// (the message is written only once space is reserved, in the same
    /// poll that commits it), and it takes back its announcement.
    pub fn send_async<'a>(
        &'a mut self,
        msg: &'a [u8],
    ) -> impl std::future::Future<Output = Result<(), SendError>> + 'a {
        let len = msg.len();
        ReserveFuture {
            tx: Some(self),
            len,
            finish: Some(move |tx: &'a mut Sender, r| tx.write_reserved(r, msg)),
        }
    }

    /// Reserves `len` bytes, waiting asynchronously while they do not fit;
    /// the [`Grant`] is [`Sender::reserve`]'s. Cancel-safe: a future
    /// dropped before it completed holds no space.
    pub fn reserve_async<'a>(
        &'a mut self,
        len: usize,
    ) -> impl std::future::Future<Output = Result<Grant<'a>, SendError>> + 'a {
        ReserveFuture {
            tx: Some(self),
            len,
            finish: Some(|tx: &'a mut Sender, res| {
                tx.flush();
                Grant { tx, res }
            }),
        }
    }

    /// A reservation of `len` bytes, or why there is none, waiting with
    /// `cx`.
    fn poll_reserve(
        &mut self,
        len: usize,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Reservation, SendError>> {
        use std::task::Poll;
        loop {
            match self.reserve_inner(len, 1, false, None) {
                Ok(r) => {
                    self.disarm_async();
                    return Poll::Ready(Ok(r));
                }
                Err(WaitError::Full) => {}
                Err(e) => {
                    self.disarm_async();
                    return Poll::Ready(Err(SendError::from(e)));
                }
            }
            let mut slot = self.waiter.take();
            let p = crate::aio::Waiter::poll_wait(&mut slot, &SpaceFor { tx: self, len }, cx);
            self.waiter = slot;
            // Gone or not, the next reserve_inner says (it looks at the
            // receiver's liveness when the ring is full).
            if p.is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// Takes back the async waiter's announcement, if any.
    pub(super) fn disarm_async(&mut self) {
        if let Some(mut w) = self.waiter.take() {
            w.disarm(&SpaceFor { tx: self, len: 0 });
            self.waiter = Some(w);
        }
    }
}

/// The future of [`Sender::reserve_async`] and [`Sender::send_async`]: a
/// reservation of `len` bytes, then `finish` with it (a grant, or the
/// copy and commit of the message), in the poll that reserved it.
#[cfg(feature = "tokio")]
struct ReserveFuture<'a, F> {
    tx: Option<&'a mut Sender>,
    len: usize,
    finish: Option<F>,
}

#[cfg(feature = "tokio")]
impl<'a, T, F> std::future::Future for ReserveFuture<'a, F>
where
    F: FnOnce(&'a mut Sender, Reservation) -> T + Unpin,
{
    type Output = Result<T, SendError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let me = &mut *self;
        let tx = me
            .tx
            .as_mut()
            .expect("the future was polled after it completed");
        match tx.poll_reserve(me.len, cx) {
            std::task::Poll::Pending => std::task::Poll::Pending,
            std::task::Poll::Ready(r) => {
                let tx = me.tx.take().expect("checked above");
                let finish = me.finish.take().expect("taken only here");
                std::task::Poll::Ready(r.map(|res| finish(tx, res)))
            }
        }
    }
}

#[cfg(feature = "tokio")]
impl<F> Drop for ReserveFuture<'_, F> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            tx.disarm_async();
        }
    }
}

/// A file descriptor to wait on in an event loop of your own: see
/// [`Sender::arm`].
impl Sender {
    /// The doorbell behind the file descriptor, made on first use.
    fn fd_bell(&self) -> std::io::Result<&sys::BellSocket> {
        if let Some(b) = self.fd_bell.get() {
            return Ok(b);
        }
        let b = sys::BellSocket::new()?;
        Ok(self.fd_bell.get_or_init(|| b))
    }

    /// Prepares a wait on the sender's file descriptor ([`AsFd`](std::os::fd::AsFd)) for room
    /// for a `len`-byte message: drains it, announces it in the channel,
    /// and looks at the ring. Returns `true` when a send may proceed
    /// already (call [`Sender::try_send`]); with `false`, wait for the
    /// descriptor to become readable. The rule is
    /// [`crate::Receiver::arm`]'s: arm, wait, then `try_send` (which may
    /// still say `Full`: arm again); a receiver SIGKILLed rings nothing, so
    /// wait with a timeout. One way of waiting at a time per sender.
    pub fn arm(&self, len: usize) -> std::io::Result<bool> {
        let fenced = self.fd_bell()?.arm(|id| self.select_announce(id));
        Ok(!fenced || self.ready_for(len))
    }
}

impl std::os::fd::AsFd for Sender {
    /// The sender's doorbell: readable after a release of the receiver
    /// that follows [`Sender::arm`].
    ///
    /// # Panics
    /// If the doorbell socket cannot be made on first use; call
    /// [`Sender::arm`] first to get that as an error.
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd_bell()
            .expect("the sender's doorbell socket could not be made")
            .as_fd()
    }
}

impl std::os::fd::AsRawFd for Sender {
    /// As [`std::os::fd::AsFd::as_fd`].
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.as_fd().as_raw_fd()
    }
}
