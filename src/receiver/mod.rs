//! [`Receiver`]: the receiving end, and [`Message`], a received message
//! borrowed from the ring, with the iterators.

mod waiting;
#[cfg(feature = "tokio")]
pub use waiting::RecvStream;

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
use crate::ring::{spsc, Corrupted, Record, RingView};
use crate::segment::Segment;
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
