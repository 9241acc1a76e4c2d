//! A receiver waiting outside a blocking call: the hooks a
//! [`crate::Select`] reads it through, its own file descriptor
//! ([`Receiver::arm`], `AsFd`), and (feature `tokio`) `recv_async` and the
//! stream. Each announces a socket doorbell where the producers look
//! (docs/FORMAT.md, 6.3).

use super::{Cons, Receiver};
use crate::endpoint::senders_gone;
use crate::ring::wake;
use crate::sync::Ordering;
use crate::sys;
#[cfg(feature = "tokio")]
use {
    super::Message,
    crate::{error::RecvError, ring::Record},
    std::time::Duration,
};

impl Receiver {
    /// [`crate::Select`]: whether a receive may proceed now, from shared
    /// memory alone (no system call): a record or padding at the read
    /// position (MPSC: committed), or a receiver that can only fail here
    /// (inherited through `fork`). It may say true spuriously: the receive
    /// says what there is.
    pub(crate) fn select_ready(&self) -> bool {
        if self.reg.forked() || self.lag_owed != 0 {
            return true;
        }
        let (view, pos) = match &self.side.consumer {
            Cons::Spsc(c) => (*c.view(), c.position()),
            Cons::Mpsc(c, _) => (*c.view(), c.position()),
            Cons::Broadcast(c) => return c.ready(),
        };
        // Acquire: pairs with the producers' Release store of the header
        // (spsc::Producer::publish_pending, mpsc::Producer::commit).
        let word = view
            .region()
            .atomic_u64(view.index(pos))
            .load(Ordering::Acquire);
        match &self.side.consumer {
            Cons::Spsc(_) | Cons::Broadcast(_) => word != 0,
            Cons::Mpsc(..) => word != 0 && (word >> 32) as u32 & crate::layout::CLAIM_BIT == 0,
        }
    }

    /// [`crate::Select`]'s slower look (system calls): every sender gone,
    /// the channel removed, or (MPSC) a claim blocking the read position,
    /// whose sender may have died (a receive recovers it once the recovery
    /// timeout has passed). Spurious answers are allowed, as above.
    pub(crate) fn select_stuck(&self) -> bool {
        let seg = self.reg.segment();
        if senders_gone(seg) {
            return true;
        }
        match &self.side.consumer {
            Cons::Spsc(_) | Cons::Broadcast(_) => false,
            Cons::Mpsc(c, _) => {
                // Relaxed: a hint (the receive that follows looks again).
                let tail = seg.ring_state().producer.tail.load(Ordering::Relaxed);
                tail != c.position()
            }
        }
    }

    /// [`crate::Select`]: announces the waiter's doorbell `id` in the
    /// channel's `recv_bell` (a subscriber: in its slot, and the slot's bit
    /// of `sleeping_senders`, which the publisher claims after a publish;
    /// the caller re-checks after its barrier).
    pub(crate) fn select_announce(&self, id: u64) {
        let seg = self.reg.segment();
        let wake = &seg.ring_state().wake;
        match &self.side.consumer {
            Cons::Broadcast(c) => {
                let slot = c.slot();
                let bell = &seg.mapped.subscriber_slot(slot).bell;
                wake::announce_slot_bell(bell, &wake.sleeping_senders, slot, id);
            }
            _ => wake::announce_bell(&wake.recv_bell, id),
        }
    }

    /// [`crate::Select`]: takes back the announcement of doorbell `id`.
    pub(crate) fn select_retract(&self, id: u64) {
        let seg = self.reg.segment();
        let bell = match &self.side.consumer {
            Cons::Broadcast(c) => &seg.mapped.subscriber_slot(c.slot()).bell,
            _ => &seg.ring_state().wake.recv_bell,
        };
        wake::retract_bell(bell, id);
    }
}

#[cfg(feature = "tokio")]
impl crate::aio::Waitable for Receiver {
    fn ready(&self) -> bool {
        self.select_ready()
    }
    fn announce(&self, id: u64) {
        self.select_announce(id);
    }
    fn retract(&self, id: u64) {
        self.select_retract(id);
    }
    fn poll_interval(&self) -> Duration {
        self.side.poll()
    }
    fn spin_limit(&self) -> u32 {
        self.spin_limit
    }
    fn gone(&self) -> bool {
        senders_gone(self.reg.segment())
    }
}

/// Async receiving (feature `tokio`).
#[cfg(feature = "tokio")]
impl Receiver {
    /// Receives the next message, waiting asynchronously while the channel
    /// is empty: the same result as [`Receiver::recv`], without a thread
    /// blocked. While it waits, the task is woken through the receiver's
    /// socket doorbell (registered with tokio's reactor), or by a 100 ms
    /// timer that looks at the senders' liveness, as a blocking receive
    /// does. Poll it inside a tokio runtime with I/O and time enabled.
    ///
    /// Cancel-safe: a future dropped before it completed has received
    /// nothing (the next receive gets the message it would have), and it
    /// takes back its announcement in the channel. Timeouts come from the
    /// runtime: `tokio::time::timeout(d, rx.recv_async())`.
    pub fn recv_async(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Message<'_>, RecvError>> + '_ {
        RecvFuture { rx: Some(self) }
    }

    /// The messages as a [`futures_core::Stream`] of owned copies (each
    /// copied out with atomic loads, as [`Receiver::recv_into`] does, and
    /// released at once). It ends when every sender is gone and the ring
    /// is drained, or at the first error; [`RecvStream::ended_by`] says
    /// which. Cancel-safe like [`Receiver::recv_async`].
    ///
    /// ```no_run
    /// # async fn f(rx: &mut shmchan::Receiver) {
    /// let mut s = rx.stream();
    /// while let Some(m) = s.next().await {
    ///     println!("{} bytes", m.len());
    /// }
    /// # }
    /// ```
    pub fn stream(&mut self) -> RecvStream<'_> {
        RecvStream {
            rx: self,
            ended: None,
            missed: 0,
        }
    }

    /// The next record, or why there is none, waiting with `cx`.
    fn poll_record(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Record, RecvError>> {
        use std::task::Poll;
        if self.reg.forked() {
            return Poll::Ready(Err(RecvError::Forked));
        }
        loop {
            // The look without the liveness system call that `try_recv`
            // makes when empty: the waiter looks around its real waits.
            match self.peek(false) {
                Ok(Some(r)) => {
                    self.disarm_async();
                    return Poll::Ready(Ok(r));
                }
                Ok(None) => {}
                Err(e) => {
                    self.disarm_async();
                    return Poll::Ready(Err(RecvError::from(e)));
                }
            }
            // Nothing waiting: the counts go out before we wait (two stores
            // into our own line).
            self.side.tally.store(&self.reg.segment().mapped);
            let mut slot = self.waiter.take();
            let p = crate::aio::Waiter::poll_wait(&mut slot, self, cx);
            self.waiter = slot;
            match p {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(false) => {}
                Poll::Ready(true) => {
                    // Every sender gone: what is left (a last message, a
                    // claim its dead sender abandoned) first, as recv does.
                    return Poll::Ready(match self.peek(true) {
                        Ok(Some(r)) => Ok(r),
                        Ok(None) => Err(RecvError::Disconnected),
                        Err(e) => Err(RecvError::from(e)),
                    });
                }
            }
        }
    }

    /// Takes back the async waiter's announcement, if any.
    pub(super) fn disarm_async(&mut self) {
        if let Some(mut w) = self.waiter.take() {
            w.disarm(self);
            self.waiter = Some(w);
        }
    }
}

/// The future of [`Receiver::recv_async`].
#[cfg(feature = "tokio")]
struct RecvFuture<'a> {
    rx: Option<&'a mut Receiver>,
}

#[cfg(feature = "tokio")]
impl<'a> std::future::Future for RecvFuture<'a> {
    type Output = Result<Message<'a>, RecvError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let rx = self
            .rx
            .as_mut()
            .expect("RecvFuture polled after it completed");
        match rx.poll_record(cx) {
            std::task::Poll::Pending => std::task::Poll::Pending,
            std::task::Poll::Ready(r) => {
                let rx = self.rx.take().expect("checked above");
                std::task::Poll::Ready(r.map(|rec| Message { rx, rec }))
            }
        }
    }
}

#[cfg(feature = "tokio")]
impl Drop for RecvFuture<'_> {
    fn drop(&mut self) {
        if let Some(rx) = self.rx.take() {
            rx.disarm_async();
        }
    }
}

/// The messages of a receiver as a stream of owned copies: see
/// [`Receiver::stream`] (feature `tokio`).
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub struct RecvStream<'a> {
    rx: &'a mut Receiver,
    ended: Option<RecvError>,
    /// Messages an overwriting broadcast publisher wrote over before this
    /// subscriber's stream read them.
    missed: u64,
}

#[cfg(feature = "tokio")]
impl RecvStream<'_> {
    /// The next message, as `StreamExt::next` would give it (without
    /// needing the trait in scope).
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        std::future::poll_fn(|cx| {
            futures_core::Stream::poll_next(std::pin::Pin::new(&mut *self), cx)
        })
        .await
    }

    /// Why the stream ended: `Disconnected` after the last message, or the
    /// error that stopped it; `None` while it runs.
    pub fn ended_by(&self) -> Option<&RecvError> {
        self.ended.as_ref()
    }

    /// Broadcast, [`crate::Overflow::Overwrite`]: the messages lost so far
    /// because the publisher wrote over them before this subscriber read
    /// them (a lag does not end the stream: it goes on with the oldest
    /// message left, as [`Receiver::recv`] does after
    /// [`RecvError::Lagged`]).
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

#[cfg(feature = "tokio")]
impl futures_core::Stream for RecvStream<'_> {
    type Item = Vec<u8>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Vec<u8>>> {
        use std::task::Poll;
        let me = &mut *self;
        if me.ended.is_some() {
            return Poll::Ready(None);
        }
        loop {
            return match me.rx.poll_record(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(rec)) => {
                    let mut v = Vec::new();
                    me.rx.copy_out(rec, &mut v);
                    Poll::Ready(Some(v))
                }
                Poll::Ready(Err(RecvError::Lagged { missed })) => {
                    me.missed = me.missed.saturating_add(missed);
                    continue;
                }
                Poll::Ready(Err(e)) => {
                    me.ended = Some(e);
                    Poll::Ready(None)
                }
            };
        }
    }
}

#[cfg(feature = "tokio")]
impl Drop for RecvStream<'_> {
    fn drop(&mut self) {
        self.rx.disarm_async();
    }
}

/// A file descriptor to wait on in an event loop of your own (epoll, mio,
/// calloop): see [`Receiver::arm`].
impl Receiver {
    /// The doorbell behind the file descriptor, made on first use.
    fn fd_bell(&self) -> std::io::Result<&sys::BellSocket> {
        if let Some(b) = self.fd_bell.get() {
            return Ok(b);
        }
        let b = sys::BellSocket::new()?;
        Ok(self.fd_bell.get_or_init(|| b))
    }

    /// Prepares a wait on the receiver's file descriptor ([`AsFd`](std::os::fd::AsFd)):
    /// drains it, announces it in the channel, and looks at the ring.
    /// Returns `true` when a receive may proceed already (do not wait:
    /// call [`Receiver::try_recv`]); with `false`, wait for the descriptor
    /// to become readable (`POLLIN`/`EPOLLIN`).
    ///
    /// The rule: **arm, then wait; when readable (or after your timeout),
    /// receive with `try_recv` until `Empty`, then arm again.** The
    /// descriptor becomes readable when a sender publishes after the arm
    /// (one ring per arm: it works edge- and level-triggered alike, since
    /// `arm` drains what is left), and stays readable until the next arm.
    /// Readiness may be spurious (a ring for a message you received
    /// already): `try_recv` says `Empty`, and you arm again. A sender
    /// SIGKILLed rings nothing: wait with a timeout (this crate's own
    /// waits look every 100 ms) and call `try_recv`, which then says
    /// `Disconnected`. Use one way of waiting at a time on a receiver:
    /// its descriptor, a [`crate::Select`], or (feature `tokio`)
    /// `recv_async`; each announces itself in the same place.
    ///
    /// Errors: the doorbell socket could not be made (file descriptors
    /// exhausted, say).
    ///
    /// ```no_run
    /// use std::os::fd::AsRawFd;
    /// # fn f(rx: &mut shmchan::Receiver) -> std::io::Result<()> {
    /// loop {
    ///     while let Ok(m) = rx.try_recv() {
    ///         println!("{} bytes", m.len());
    ///     }
    ///     if !rx.arm()? {
    ///         let mut p = libc::pollfd { fd: rx.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    ///         unsafe { libc::poll(&mut p, 1, 100) };
    ///     }
    /// }
    /// # }
    /// ```
    pub fn arm(&self) -> std::io::Result<bool> {
        let fenced = self.fd_bell()?.arm(|id| self.select_announce(id));
        // Without the barrier the wakers' light fence may miss the
        // announcement: say "look now" rather than risk a long wait.
        Ok(!fenced || self.select_ready())
    }
}

impl std::os::fd::AsFd for Receiver {
    /// The receiver's doorbell: readable after a publish that follows
    /// [`Receiver::arm`] (see there for the rule).
    ///
    /// # Panics
    /// If the doorbell socket cannot be made on first use (file
    /// descriptors exhausted); call [`Receiver::arm`] first to get that
    /// as an error.
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd_bell()
            .expect("the receiver's doorbell socket could not be made")
            .as_fd()
    }
}

impl std::os::fd::AsRawFd for Receiver {
    /// As [`std::os::fd::AsFd::as_fd`].
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.as_fd().as_raw_fd()
    }
}
