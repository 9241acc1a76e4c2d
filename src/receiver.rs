//! [`Receiver`]: the receiving end, and [`Message`], a received message
//! borrowed from the ring, with the iterators.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::counters::{Counted, Tally};
use crate::endpoint::{check_pid_namespace, senders_gone, set_receiver_gone, Registration};
use crate::error::{
    bad_positions, OpenError, RecvError, RecvTimeoutError, TryRecvError, WaitError,
};
use crate::layout::{Flavor, SEM_DATA, SEM_RECEIVERS, SEM_SPACE};
use crate::ring::cursor::Cursor;
use crate::ring::mpsc::{self, DEFAULT_RECOVERY_TIMEOUT};
use crate::ring::wake;
use crate::ring::{spsc, Corrupted, Record, RingView};
use crate::segment::Segment;
use crate::sync::Ordering;
use crate::sys;
use crate::wait::{self, CounterSleeper, DEFAULT_SPIN};
#[cfg(doc)]
use crate::Channel;

/// The consuming half of a ring, of either flavor: the record format
/// differs, the cursor is shared. Its view's lifetime is unbounded: the
/// [`Receiver`] holding it keeps the segment mapped (through its
/// registration's `Arc`).
#[derive(Debug)]
enum Cons {
    Spsc(spsc::Consumer<'static>),
    /// With the recovery policy for claims of dead senders.
    Mpsc(mpsc::Consumer<'static>, mpsc::Recoverer),
}

/// A receiver's ring state: the consumer and the received counters.
#[derive(Debug)]
struct ReadSide {
    consumer: Cons,
    shm_id: i32,
    /// The header's received counters.
    tally: Tally,
}

impl ReadSide {
    /// The positions both flavors share.
    #[inline]
    fn cursor(&mut self) -> &mut Cursor<'static> {
        match &mut self.consumer {
            Cons::Spsc(c) => c,
            Cons::Mpsc(c, _) => c,
        }
    }

    #[inline]
    fn view(&self) -> &RingView<'static> {
        match &self.consumer {
            Cons::Spsc(c) => c.view(),
            Cons::Mpsc(c, _) => c.view(),
        }
    }

    fn has_data(&mut self) -> Result<bool, Corrupted> {
        match &mut self.consumer {
            Cons::Spsc(c) => c.has_data(),
            Cons::Mpsc(c, _) => c.has_data(),
        }
    }

    /// How long a blocked receiver sleeps between looks (MPSC: a fraction
    /// of its recovery timeout).
    fn poll(&self) -> Duration {
        match &self.consumer {
            Cons::Spsc(_) => wait::POLL_INTERVAL,
            Cons::Mpsc(_, rec) => rec.poll_interval(wait::POLL_INTERVAL),
        }
    }

    /// One look at the ring. MPSC: when a claim has blocked the read
    /// position for the recovery timeout (or at once with `force`, once
    /// every sender is gone), and its claimant is dead, the claim becomes
    /// padding and the look goes on.
    #[inline]
    fn attempt(&mut self, force: bool) -> Result<Option<Record>, Corrupted> {
        match &mut self.consumer {
            Cons::Spsc(c) => c.try_peek(),
            Cons::Mpsc(c, rec) => {
                let shm_id = self.shm_id;
                let mut alive = |pid: u32| sys::process_attached(pid as i32, shm_id);
                // SAFETY: process_attached says false only for a process
                // that is gone or no longer maps the segment (see there).
                unsafe { rec.next(c, force, &mut alive) }
            }
        }
    }
}

/// The receiving end of a channel. `Send`, not `Sync`: it owns the
/// consumer's private position and cache.
///
/// Not usable across `fork()`, like [`crate::Sender`].
#[derive(Debug)]
pub struct Receiver {
    /// Declared before `reg`: dropped before the segment it views can be
    /// unmapped.
    side: ReadSide,
    spin_limit: u32,
    reg: Registration,
    /// The async waiting state (feature `tokio`), made on first wait.
    #[cfg(feature = "tokio")]
    waiter: Option<Box<crate::aio::Waiter>>,
    /// The doorbell behind [`Receiver::as_fd`], made on first use.
    fd_bell: std::cell::OnceCell<sys::BellSocket>,
    _not_sync: PhantomData<Cell<()>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Before the registration's drop: the counts are stored before a
        // new receiver can register and continue them.
        if self.reg.owned_here() {
            #[cfg(feature = "tokio")]
            self.disarm_async();
            if let Some(b) = self.fd_bell.get() {
                self.select_retract(b.id());
            }
            self.side.tally.store(&self.reg.segment().mapped);
            // Senders see it at their next send.
            set_receiver_gone(self.reg.segment(), true);
        }
    }
}

impl Receiver {
    /// The receiver of `seg` (see [`Channel::receiver`]).
    pub(crate) fn new(seg: &Arc<Segment>) -> Result<Receiver, OpenError> {
        check_pid_namespace(seg)?;
        let reg = Registration::new(seg, SEM_RECEIVERS, true)?;
        set_receiver_gone(seg, false);
        reg.clear_stale_wake();
        // SAFETY: the view lives as long as the consumer made from it,
        // which the Receiver keeps beside its registration, holding `seg`'s
        // Arc: the mapping outlives it.
        let view: RingView<'static> = unsafe { seg.mapped.ring() };
        // The registration is exclusive: no other receiver is registered,
        // in any process (each holds its +1 with SEM_UNDO until it drops or
        // dies; an inherited one in a forked child refuses every operation).
        let mut consumer = match seg.layout().flavor {
            // SAFETY: the only consumer (see above).
            Flavor::Spsc => unsafe { spsc::Consumer::new(view) }.map(Cons::Spsc),
            // SAFETY: the only consumer (see above).
            Flavor::Mpsc => unsafe { mpsc::Consumer::new(view) }
                .map(|c| Cons::Mpsc(c, mpsc::Recoverer::new(DEFAULT_RECOVERY_TIMEOUT))),
        }
        .map_err(bad_positions)?;
        // Light only when this process is registered for membarrier (see
        // ring::wake::claim_with).
        let light = sys::membarrier_register();
        match &mut consumer {
            Cons::Spsc(c) => c.wakeups().set_light_fence(light),
            Cons::Mpsc(c, _) => c.wakeups().set_light_fence(light),
        }
        reg.announce_connect();
        Ok(Receiver {
            side: ReadSide {
                consumer,
                shm_id: seg.shm.id(),
                tally: Tally::new(&seg.mapped, Counted::Receiver),
            },
            spin_limit: DEFAULT_SPIN,
            reg,
            #[cfg(feature = "tokio")]
            waiter: None,
            fd_bell: std::cell::OnceCell::new(),
            _not_sync: PhantomData,
        })
    }

    /// Sets how many steps a blocked receive spins before it sleeps on the
    /// semaphore (a few pause hints each, about 0.3 µs here; 0 sleeps at
    /// once, `u32::MAX` never sleeps).
    pub fn set_spin_limit(&mut self, steps: u32) {
        self.spin_limit = steps;
    }

    /// MPSC: how long a message claimed but not committed may block the
    /// receiver before it checks whether the claiming sender is dead
    /// (its pid gone, or no longer attached to the segment). A dead
    /// sender's claim is then skipped, costing only that message; a live
    /// sender is never skipped, however slow. Default
    /// [`DEFAULT_RECOVERY_TIMEOUT`] (100 ms). The receiver looks again
    /// every quarter of it while blocked.
    pub fn set_recovery_timeout(&mut self, timeout: Duration) {
        if let Cons::Mpsc(_, rec) = &mut self.side.consumer {
            rec.set_timeout(timeout);
        }
    }

    /// MPSC: how many claims of dead senders this receiver has skipped.
    pub fn recovered_claims(&self) -> u64 {
        match &self.side.consumer {
            Cons::Spsc(_) => 0,
            Cons::Mpsc(_, rec) => rec.recovered(),
        }
    }

    #[inline]
    fn flush(&mut self) {
        self.reg
            .segment()
            .pay(SEM_SPACE, self.side.cursor().wakeups());
    }

    /// One look at the ring. Skipping padding can release space and claim a
    /// sleeping sender, so the wake-up is posted here, whatever the result.
    #[inline]
    fn peek(&mut self, force: bool) -> Result<Option<Record>, WaitError> {
        let r = self.side.attempt(force).map_err(WaitError::Corrupted);
        self.flush();
        r
    }

    fn next_inner(&mut self, block: bool, deadline: Option<Instant>) -> Result<Record, WaitError> {
        if self.reg.forked() {
            return Err(WaitError::Forked);
        }
        if let Some(r) = self.peek(false)? {
            return Ok(r);
        }
        // Nothing waiting: the counts go out before we wait.
        let seg = self.reg.segment().clone();
        self.side.tally.store(&seg.mapped);
        if !block {
            if senders_gone(&seg) {
                // Re-check after seeing no sender: a last message sent just
                // before the sender left must not be lost (nor one queued
                // behind a claim its dead sender never committed).
                return self.peek(true)?.ok_or(WaitError::Disconnected);
            }
            return Err(WaitError::Full);
        }
        let poll = self.side.poll();
        let side = Cell::new(Some(&mut self.side));
        let with = |f: &mut dyn FnMut(&mut ReadSide) -> Result<Option<Record>, WaitError>| {
            let s = side.take().expect("consumer in use");
            let r = f(s);
            seg.pay(SEM_SPACE, s.cursor().wakeups());
            side.set(Some(s));
            r
        };
        let bell = seg.bell(SEM_DATA);
        let sleeper = CounterSleeper {
            waiters: &seg.ring_state().wake.recv_waiters,
            bell: &bell,
        };
        let r = wait::block_on_polling(
            &sleeper,
            self.spin_limit,
            deadline,
            poll,
            || with(&mut |s| s.attempt(false).map_err(WaitError::Corrupted)),
            || {
                let mut has = true;
                let _ = with(&mut |s| {
                    has = s.has_data().unwrap_or(true);
                    Ok(None)
                });
                has
            },
            || senders_gone(&seg),
        );
        match r {
            // Every sender is gone: a claim that still blocks was abandoned.
            Err(WaitError::Disconnected) => self.peek(true)?.ok_or(WaitError::Disconnected),
            r => r,
        }
    }

    /// [`crate::Select`]: whether a receive may proceed now, from shared
    /// memory alone (no system call): a record or padding at the read
    /// position (MPSC: committed), or a receiver that can only fail here
    /// (inherited through `fork`). It may say true spuriously: the receive
    /// says what there is.
    pub(crate) fn select_ready(&self) -> bool {
        if self.reg.forked() {
            return true;
        }
        let (view, pos) = match &self.side.consumer {
            Cons::Spsc(c) => (*c.view(), c.position()),
            Cons::Mpsc(c, _) => (*c.view(), c.position()),
        };
        // Acquire: pairs with the producers' Release store of the header
        // (spsc::Producer::publish_pending, mpsc::Producer::commit).
        let word = view
            .region()
            .atomic_u64(view.index(pos))
            .load(Ordering::Acquire);
        match &self.side.consumer {
            Cons::Spsc(_) => word != 0,
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
            Cons::Spsc(_) => false,
            Cons::Mpsc(c, _) => {
                // Relaxed: a hint (the receive that follows looks again).
                let tail = seg.ring_state().producer.tail.load(Ordering::Relaxed);
                tail != c.position()
            }
        }
    }

    /// [`crate::Select`]: announces the waiter's doorbell `id` in the
    /// channel's `recv_bell` (the caller re-checks after its barrier).
    pub(crate) fn select_announce(&self, id: u64) {
        wake::announce_bell(&self.reg.segment().ring_state().wake.recv_bell, id);
    }

    /// [`crate::Select`]: takes back the announcement of doorbell `id`.
    pub(crate) fn select_retract(&self, id: u64) {
        wake::retract_bell(&self.reg.segment().ring_state().wake.recv_bell, id);
    }

    /// Receives the next message, waiting while the channel is empty.
    ///
    /// The message borrows the ring; its space is freed when it is dropped.
    /// Returns [`RecvError::Disconnected`] once every sender that had
    /// connected is gone and every message has been received.
    pub fn recv(&mut self) -> Result<Message<'_>, RecvError> {
        let r = self.next_inner(true, None).map_err(RecvError::from)?;
        Ok(Message { rx: self, rec: r })
    }

    /// Receives a message if one is waiting.
    pub fn try_recv(&mut self) -> Result<Message<'_>, TryRecvError> {
        let r = self.next_inner(false, None).map_err(TryRecvError::from)?;
        Ok(Message { rx: self, rec: r })
    }

    /// Receives the next message into `buf` (replacing its contents),
    /// waiting while the channel is empty; returns its length. The copy is
    /// made with atomic loads and no reference into the segment is ever
    /// formed, so this is sound whatever other processes write there (see
    /// the crate docs, "Trust"): a hostile writer can change the bytes you
    /// get, not break your program. The message's space is released
    /// before this returns.
    ///
    /// ```no_run
    /// # fn f(rx: &mut shmchan::Receiver) -> Result<(), shmchan::RecvError> {
    /// let mut buf = Vec::new();
    /// let n = rx.recv_into(&mut buf)?;
    /// assert_eq!(n, buf.len());
    /// # Ok(()) }
    /// ```
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, RecvError> {
        let r = self.next_inner(true, None).map_err(RecvError::from)?;
        Ok(self.copy_out(r, buf))
    }

    /// [`Receiver::recv_into`] if a message is waiting.
    pub fn try_recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, TryRecvError> {
        let r = self.next_inner(false, None).map_err(TryRecvError::from)?;
        Ok(self.copy_out(r, buf))
    }

    /// [`Receiver::recv_into`], waiting at most `timeout`.
    pub fn recv_timeout_into(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        let r = self
            .next_inner(true, deadline)
            .map_err(RecvTimeoutError::from)?;
        Ok(self.copy_out(r, buf))
    }

    /// Copies `r` (the record our consumer returned last) into `buf` and
    /// releases it.
    fn copy_out(&mut self, r: Record, buf: &mut Vec<u8>) -> usize {
        buf.clear();
        self.side
            .view()
            .region()
            .copy_out(r.data_offset, r.len, buf);
        self.side.tally.add(r.len, &self.reg.segment().mapped);
        // SAFETY: `r` is the record our consumer returned last, released
        // once, here.
        unsafe { self.side.cursor().consume(r) };
        self.flush();
        r.len
    }

    /// Receives the next message, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message<'_>, RecvTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        let r = self
            .next_inner(true, deadline)
            .map_err(RecvTimeoutError::from)?;
        Ok(Message { rx: self, rec: r })
    }

    /// Messages as owned vectors (copied as [`Receiver::recv_into`] does),
    /// blocking, until disconnected or an error ([`Iter::ended_by`] tells
    /// which).
    pub fn iter(&mut self) -> Iter<'_> {
        Iter {
            rx: self,
            ended_by: None,
        }
    }

    /// Messages as owned vectors, until none is waiting (or an error:
    /// [`TryIter::ended_by`] tells which).
    pub fn try_iter(&mut self) -> TryIter<'_> {
        TryIter {
            rx: self,
            ended_by: None,
        }
    }

    /// Receives a batch: waits while the channel is empty, then passes up
    /// to `max` waiting messages (at least one) to `f` in order, in place,
    /// and releases them all at the end with one store (and at most one
    /// wake-up of a sleeping sender). Returns how many `f` got.
    ///
    /// If this process dies before the batch is released, the next
    /// receiver gets the whole batch again: at-least-once for the batch,
    /// as for a held [`Message`]. Errors are those of [`Receiver::recv`]; a
    /// corrupted record met after the first message ends the batch early
    /// (the next call reports it).
    ///
    /// ```no_run
    /// # fn f(rx: &mut shmchan::Receiver) -> Result<(), shmchan::RecvError> {
    /// let mut total = 0;
    /// let n = rx.recv_batch(64, |msg| total += msg.len())?;
    /// # Ok(()) }
    /// ```
    pub fn recv_batch(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        if max == 0 {
            // Like a read of zero bytes: no wait, nothing taken.
            return if self.reg.forked() {
                Err(RecvError::Forked)
            } else {
                Ok(0)
            };
        }
        let mut r = self.next_inner(true, None).map_err(RecvError::from)?;
        let mut n = 0;
        loop {
            // SAFETY: the record is committed and not released (we release
            // at the end), so no producer writes it while `f` reads it.
            let msg = unsafe { self.side.view().region().slice(r.data_offset, r.len) };
            f(msg);
            self.side.tally.add(r.len, &self.reg.segment().mapped);
            // SAFETY: `r` is the record our consumer returned last.
            unsafe { self.side.cursor().advance(r) };
            n += 1;
            if n >= max {
                break;
            }
            match self.side.attempt(false) {
                Ok(Some(next)) => r = next,
                Ok(None) | Err(_) => break,
            }
        }
        self.side.cursor().release();
        self.flush();
        Ok(n)
    }
}

/// A received message, borrowed from the ring. Derefs to its bytes (a
/// `&[u8]` into shared memory: see the crate docs, "Trust", for what that
/// assumes of other processes; [`Receiver::recv_into`] copies instead); its
/// space is released when it is dropped. If this process dies while holding
/// it, the next receiver gets it again (at-least-once for the one in hand).
///
/// A message belongs to the process that received it: in a child forked
/// while it was held, it derefs to no bytes (the parent may release the
/// space and a sender reuse it at any time) and dropping it releases
/// nothing.
#[derive(Debug)]
pub struct Message<'a> {
    rx: &'a mut Receiver,
    rec: Record,
}

impl Deref for Message<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        if self.rx.reg.forked() {
            return &[];
        }
        // SAFETY: the record is committed (published by the producer's
        // Release store, of tail or of its header, which our Acquire load
        // saw) and not yet released, so no producer writes it while we
        // hold it.
        unsafe {
            self.rx
                .side
                .view()
                .region()
                .slice(self.rec.data_offset, self.rec.len)
        }
    }
}

impl Drop for Message<'_> {
    fn drop(&mut self) {
        // A message inherited through fork stays the parent's to release.
        if self.rx.reg.forked() {
            return;
        }
        let rx = &mut *self.rx;
        rx.side.tally.add(self.rec.len, &rx.reg.segment().mapped);
        // SAFETY: the message's record is the one our consumer returned
        // last (the message borrows the receiver), released once, here.
        unsafe { rx.side.cursor().consume(self.rec) };
        rx.flush();
    }
}

/// Blocking iterator of owned messages; see [`Receiver::iter`].
#[derive(Debug)]
pub struct Iter<'a> {
    rx: &'a mut Receiver,
    ended_by: Option<RecvError>,
}

impl Iter<'_> {
    /// Why the last call of `next` returned `None` (`None` if none did):
    /// [`RecvError::Disconnected`] at the end of the stream, or the error
    /// that stopped it ([`RecvError::Corrupted`], [`RecvError::Forked`]).
    ///
    /// ```no_run
    /// # fn f(rx: &mut shmchan::Receiver) {
    /// let mut it = rx.iter();
    /// let n = it.by_ref().count();
    /// if let Some(e) = it.ended_by().filter(|e| **e != shmchan::RecvError::Disconnected) {
    ///     eprintln!("stopped after {n} messages: {e}");
    /// }
    /// # }
    /// ```
    pub fn ended_by(&self) -> Option<&RecvError> {
        self.ended_by.as_ref()
    }
}

impl Iterator for Iter<'_> {
    type Item = Vec<u8>;
    fn next(&mut self) -> Option<Vec<u8>> {
        let mut v = Vec::new();
        match self.rx.recv_into(&mut v) {
            Ok(_) => Some(v),
            Err(e) => {
                self.ended_by = Some(e);
                None
            }
        }
    }
}

/// Non-blocking iterator of owned messages; see [`Receiver::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a> {
    rx: &'a mut Receiver,
    ended_by: Option<TryRecvError>,
}

impl TryIter<'_> {
    /// Why the last call of `next` returned `None` (`None` if none did):
    /// [`TryRecvError::Empty`] when nothing more was waiting,
    /// [`TryRecvError::Disconnected`] at the end of the stream, or the
    /// error that stopped it ([`TryRecvError::Corrupted`],
    /// [`TryRecvError::Forked`]).
    pub fn ended_by(&self) -> Option<&TryRecvError> {
        self.ended_by.as_ref()
    }
}

impl Iterator for TryIter<'_> {
    type Item = Vec<u8>;
    fn next(&mut self) -> Option<Vec<u8>> {
        let mut v = Vec::new();
        match self.rx.try_recv_into(&mut v) {
            Ok(_) => Some(v),
            Err(e) => {
                self.ended_by = Some(e);
                None
            }
        }
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
    fn disarm_async(&mut self) {
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
        match me.rx.poll_record(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(rec)) => {
                let mut v = Vec::new();
                me.rx.copy_out(rec, &mut v);
                Poll::Ready(Some(v))
            }
            Poll::Ready(Err(e)) => {
                me.ended = Some(e);
                Poll::Ready(None)
            }
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
        let b = self.fd_bell()?;
        b.drain();
        self.select_announce(b.id());
        let fenced = sys::membarrier_global();
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
