//! [`Receiver`]: the receiving end, and [`Message`], a received message
//! borrowed from the ring, with the iterators.

mod held;
mod waiting;
pub use held::Held;
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
use crate::ring::broadcast::{self, Next, Start};
use crate::ring::cursor::Cursor;
use crate::ring::mpsc::{self, DEFAULT_RECOVERY_TIMEOUT};
use crate::ring::{spsc, Corrupted, Record, RingView};
use crate::segment::Segment;
use crate::sys;
use crate::wait::{self, CounterSleeper, Sleeper, SlotSleeper, DEFAULT_SPIN};
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
    /// A subscriber of a broadcast channel.
    Broadcast(broadcast::Subscriber<'static>),
}

/// A receiver's ring state: the consumer and the received counters.
#[derive(Debug)]
struct ReadSide {
    consumer: Cons,
    /// The consumer's view (a copy, so that the hot path does not match
    /// on the flavor to reach it).
    view: RingView<'static>,
    shm_id: i32,
    /// The header's received counters.
    tally: Tally,
    /// Broadcast, `Overflow::Overwrite`: the record in hand, copied out of
    /// the ring and checked after the copy (the publisher may write over
    /// the ring's bytes at any time, so they are never lent out).
    scratch: Vec<u8>,
}

impl ReadSide {
    /// The positions all flavors share, to look at.
    fn cursor_ref(&self) -> &Cursor<'static> {
        match &self.consumer {
            Cons::Spsc(c) => c,
            Cons::Mpsc(c, _) => c,
            Cons::Broadcast(c) => c,
        }
    }

    /// The positions both flavors share.
    #[inline]
    fn cursor(&mut self) -> &mut Cursor<'static> {
        match &mut self.consumer {
            Cons::Spsc(c) => c,
            Cons::Mpsc(c, _) => c,
            Cons::Broadcast(c) => c,
        }
    }

    #[inline]
    fn view(&self) -> &RingView<'static> {
        &self.view
    }

    /// Whether the record in hand is a copy (in `scratch`), not the ring's
    /// bytes: a subscriber of an overwriting broadcast.
    #[inline]
    fn copied(&self) -> bool {
        matches!(&self.consumer, Cons::Broadcast(c) if c.overwrites())
    }

    /// The bytes of `r`, the record in hand.
    ///
    /// # Safety
    /// Unless [`ReadSide::copied`], `r` is committed and not released (no
    /// producer writes it while the slice lives).
    #[inline]
    unsafe fn bytes(&self, r: Record) -> &[u8] {
        if self.copied() {
            return &self.scratch;
        }
        // SAFETY: the caller's contract.
        unsafe { self.view().region().slice(r.data_offset, r.len) }
    }

    fn has_data(&mut self) -> Result<bool, Corrupted> {
        match &mut self.consumer {
            Cons::Spsc(c) => c.has_data(),
            Cons::Mpsc(c, _) => c.has_data(),
            Cons::Broadcast(c) => c.has_data(),
        }
    }

    /// How long a blocked receiver sleeps between looks (MPSC: a fraction
    /// of its recovery timeout).
    fn poll(&self) -> Duration {
        match &self.consumer {
            Cons::Spsc(_) | Cons::Broadcast(_) => wait::POLL_INTERVAL,
            Cons::Mpsc(_, rec) => rec.poll_interval(wait::POLL_INTERVAL),
        }
    }

    /// One look at the ring. MPSC: when a claim has blocked the read
    /// position for the recovery timeout (or at once with `force`, once
    /// every sender is gone), and its claimant is dead, the claim becomes
    /// padding and the look goes on.
    ///
    /// Broadcast: a subscriber lapped by an overwriting publisher goes on
    /// from the oldest record and says how many it missed
    /// ([`WaitError::Lagged`]); its record in hand is copied into
    /// `scratch` and checked after the copy.
    #[inline]
    fn attempt(&mut self, force: bool) -> Result<Option<Record>, WaitError> {
        match &mut self.consumer {
            Cons::Spsc(c) => c.try_peek().map_err(WaitError::Corrupted),
            Cons::Mpsc(c, rec) => {
                let shm_id = self.shm_id;
                let mut alive = |pid: u32| sys::process_attached(pid as i32, shm_id);
                // SAFETY: process_attached says false only for a process
                // that is gone or no longer maps the segment (see there).
                unsafe { rec.next(c, force, &mut alive) }.map_err(WaitError::Corrupted)
            }
            Cons::Broadcast(c) => {
                // A lap that cost only padding moves on and looks again;
                // a few rounds at most (each moves to a later oldest).
                for _ in 0..4 {
                    match c.try_peek().map_err(WaitError::Corrupted)? {
                        Next::Empty => return Ok(None),
                        Next::Record(r) if !c.overwrites() => return Ok(Some(r)),
                        Next::Record(r) => {
                            self.scratch.clear();
                            c.view()
                                .region()
                                .copy_out(r.data_offset, r.len, &mut self.scratch);
                            if c.intact() {
                                return Ok(Some(r));
                            }
                        }
                        Next::Lapped => {}
                    }
                    match c.lagged().map_err(WaitError::Corrupted)? {
                        0 => {}
                        missed => return Err(WaitError::Lagged(missed)),
                    }
                }
                Ok(None)
            }
        }
    }
}

/// The receiving end of a channel. `Send`, not `Sync`: it owns the
/// consumer's private position and cache. In a broadcast channel, a
/// subscriber: it has its own position in the ring (and its own slot of
/// the segment), and receives every message published after it joined.
///
/// Not usable across `fork()`, like [`crate::Sender`].
#[derive(Debug)]
pub struct Receiver {
    /// Declared before `reg`: dropped before the segment it views can be
    /// unmapped.
    side: ReadSide,
    spin_limit: u32,
    /// Broadcast: messages missed in a lap found in the middle of a
    /// `recv_batch`, reported by the next receive.
    lag_owed: u64,
    /// Held receives: this receiver's identity (no two receivers of this
    /// process share one), which its [`Held`]s carry, and the end of the
    /// newest message it holds.
    held_id: u64,
    newest_held_end: u64,
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
            match &self.side.consumer {
                // SAFETY: the receiver is going: no message borrows it.
                Cons::Broadcast(c) => unsafe { c.leave() },
                // Senders see it at their next send.
                _ => set_receiver_gone(self.reg.segment(), true),
            }
        }
    }
}

impl Receiver {
    /// The receiver of `seg` (see [`Channel::receiver`]); a broadcast
    /// subscriber starts at `start`.
    pub(crate) fn new(seg: &Arc<Segment>, start: Start) -> Result<Receiver, OpenError> {
        check_pid_namespace(seg)?;
        if seg.layout().flavor == Flavor::Broadcast {
            return Receiver::subscribe(seg, start);
        }
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
        let consumer = match seg.layout().flavor {
            // SAFETY: the only consumer (see above).
            Flavor::Spsc => unsafe { spsc::Consumer::new(view) }.map(Cons::Spsc),
            // SAFETY: the only consumer (see above).
            Flavor::Mpsc => unsafe { mpsc::Consumer::new(view) }
                .map(|c| Cons::Mpsc(c, mpsc::Recoverer::new(DEFAULT_RECOVERY_TIMEOUT))),
            Flavor::Broadcast => unreachable!("subscribers are made by subscribe"),
        }
        .map_err(bad_positions)?;
        Ok(Receiver::made(seg, reg, consumer, Counted::Receiver))
    }

    /// A new subscriber of the broadcast channel `seg`, at `start`.
    fn subscribe(seg: &Arc<Segment>, start: Start) -> Result<Receiver, OpenError> {
        // Subscribers sleep in their own slots: what a predecessor in ours
        // killed asleep left (a flag) wakes nobody.
        let reg = Registration::new(seg, SEM_RECEIVERS, false)?;
        // SAFETY: as in `new`.
        let view: RingView<'static> = unsafe { seg.mapped.ring() };
        let pid = sys::current_pid() as u32;
        let shm_id = seg.shm.id();
        let mut alive = |pid: u32| sys::process_attached(pid as i32, shm_id);
        // SAFETY: process_attached says false only for a process that is
        // gone or no longer maps the segment (see there).
        let slot = unsafe { broadcast::take_slot(&view, pid, &mut alive) }.ok_or(
            OpenError::TooManySubscribers {
                slots: view.sender_slots(),
            },
        )?;
        // The joiner's heavy fence (the publisher's is light when its
        // process is registered for membarrier, which then works here too).
        let mut barrier = || {
            sys::membarrier_global();
        };
        // SAFETY: the slot was just taken for this subscriber.
        let sub = match unsafe {
            broadcast::Subscriber::join(view, slot, start, &mut barrier, broadcast::SEQLOCK_WAIT)
        } {
            Ok(sub) => sub,
            Err(c) => {
                // SAFETY: the slot was taken above for this subscriber,
                // whose join failed: nobody reads through it.
                unsafe { broadcast::free_slot(&view, slot) };
                return Err(bad_positions(c));
            }
        };
        Ok(Receiver::made(
            seg,
            reg,
            Cons::Broadcast(sub),
            Counted::SubscriberSlot(slot),
        ))
    }

    /// The receiver around `consumer`, registered as `reg`, counting into
    /// `counted`.
    fn made(
        seg: &Arc<Segment>,
        reg: Registration,
        mut consumer: Cons,
        counted: Counted,
    ) -> Receiver {
        // Light only when this process is registered for membarrier (see
        // ring::wake::claim_with).
        let light = sys::membarrier_register();
        match &mut consumer {
            Cons::Spsc(c) => c.wakeups().set_light_fence(light),
            Cons::Mpsc(c, _) => c.wakeups().set_light_fence(light),
            Cons::Broadcast(c) => c.wakeups().set_light_fence(light),
        }
        reg.announce_connect();
        let view = match &consumer {
            Cons::Spsc(c) => *c.view(),
            Cons::Mpsc(c, _) => *c.view(),
            Cons::Broadcast(c) => *c.view(),
        };
        Receiver {
            side: ReadSide {
                consumer,
                view,
                shm_id: seg.shm.id(),
                tally: Tally::new(&seg.mapped, counted),
                scratch: Vec::new(),
            },
            spin_limit: DEFAULT_SPIN,
            lag_owed: 0,
            held_id: held::next_receiver_id(),
            newest_held_end: 0,
            reg,
            #[cfg(feature = "tokio")]
            waiter: None,
            fd_bell: std::cell::OnceCell::new(),
            _not_sync: PhantomData,
        }
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
            Cons::Spsc(_) | Cons::Broadcast(_) => 0,
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
        let r = self.side.attempt(force);
        self.flush();
        r
    }

    fn next_inner(&mut self, block: bool, deadline: Option<Instant>) -> Result<Record, WaitError> {
        if self.reg.forked() {
            return Err(WaitError::Forked);
        }
        if self.lag_owed != 0 {
            return Err(WaitError::Lagged(std::mem::take(&mut self.lag_owed)));
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
        let sub_slot = match &self.side.consumer {
            Cons::Broadcast(c) => Some(c.slot()),
            _ => None,
        };
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
        let futex = seg.slot_futex();
        let counted;
        let in_slot;
        // Subscribers sleep in their own slots, as MPSC senders do.
        let sleeper: &dyn Sleeper = match sub_slot {
            Some(slot) => {
                in_slot = SlotSleeper {
                    flag: &seg.mapped.subscriber_slot(slot).sleeping,
                    mask: &seg.ring_state().wake.sleeping_senders,
                    slot,
                    futex: &futex,
                };
                &in_slot
            }
            None => {
                counted = CounterSleeper {
                    waiters: &seg.ring_state().wake.recv_waiters,
                    bell: &bell,
                };
                &counted
            }
        };
        let r = wait::block_on_polling(
            sleeper,
            self.spin_limit,
            deadline,
            poll,
            || with(&mut |s| s.attempt(false)),
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
        self.copy_counted(r, buf);
        // SAFETY: `r` is the record our consumer returned last, released
        // once, here.
        unsafe { self.side.cursor().consume(r) };
        self.flush();
        r.len
    }

    /// Copies `r` (the record our consumer returned last) into `buf`,
    /// replacing its contents, and counts it as received.
    #[inline]
    fn copy_counted(&mut self, r: Record, buf: &mut Vec<u8>) {
        buf.clear();
        if self.side.copied() {
            // Copied and checked already: hand over the copy.
            std::mem::swap(buf, &mut self.side.scratch);
        } else {
            self.side
                .view()
                .region()
                .copy_out(r.data_offset, r.len, buf);
        }
        self.side.tally.add(r.len, &self.reg.segment().mapped);
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
            // at the end), so no producer writes it while `f` reads it (or
            // it is a copy).
            let msg = unsafe { self.side.bytes(r) };
            f(msg);
            self.side.tally.add(r.len, &self.reg.segment().mapped);
            if self.side.copied() {
                // A copy holds nothing in the ring (an overwriting
                // publisher does not wait for it): released at once, so a
                // lap is told from the read position alone.
                // SAFETY: `r` is the record our consumer returned last.
                unsafe { self.side.cursor().consume(r) };
            } else {
                // SAFETY: `r` is the record our consumer returned last.
                unsafe { self.side.cursor().advance(r) };
            }
            n += 1;
            if n >= max {
                break;
            }
            match self.side.attempt(false) {
                Ok(Some(next)) => r = next,
                // A lag, like an error, ends the batch; the next call
                // reports it (the subscriber has moved to the oldest
                // record, and counted what it missed).
                Err(WaitError::Lagged(missed)) => {
                    self.lag_owed = missed;
                    break;
                }
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
        // Release store of its header, which our Acquire load saw) and
        // not yet released, so no producer writes it while we hold it;
        // or, in an overwriting broadcast, the bytes are a copy.
        unsafe { self.rx.side.bytes(self.rec) }
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
