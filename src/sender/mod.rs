//! [`Sender`]: the sending end, and [`Grant`], space reserved in the ring
//! for a message written in place.

mod holdback;
mod waiting;

use holdback::Holdback;

use std::cell::Cell;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::counters::{Counted, Tally};
use crate::endpoint::{
    check_pid_namespace, receiver_gone, receiver_left, Registration, LIVENESS_EVERY,
};
use crate::error::{
    bad_positions, OpenError, SendError, SendTimeoutError, TrySendError, WaitError,
};
use crate::layout::{Flavor, SEM_DATA, SEM_SENDERS, SEM_SPACE};
use crate::ring::broadcast::{self, Fanout};
use crate::ring::wake::Wakeups;
use crate::ring::{mpsc, spsc, Corrupted, Reservation, ReserveError, RingView};
use crate::segment::Segment;
use crate::sync::Ordering;
use crate::sys;
use crate::wait::{self, CounterSleeper, Sleeper, SlotSleeper, DEFAULT_SPIN};
#[cfg(doc)]
use crate::Channel;

/// The producing half of a ring, of either flavor. Its view's lifetime is
/// unbounded: the [`Sender`] holding it keeps the segment mapped (through
/// its registration's `Arc`).
#[derive(Debug)]
enum Prod {
    Spsc(spsc::Producer<'static>),
    Mpsc(mpsc::Producer<'static>),
    /// With the release of dead subscribers that hold it back.
    Broadcast(spsc::Producer<'static, Fanout>, Holdback),
}

impl Prod {
    #[inline]
    fn view(&self) -> &RingView<'static> {
        match self {
            Prod::Spsc(p) => p.view(),
            Prod::Mpsc(p) => p.view(),
            Prod::Broadcast(p, _) => p.view(),
        }
    }

    #[inline]
    fn try_reserve(&mut self, len: usize) -> Result<Reservation, ReserveError> {
        match self {
            Prod::Spsc(p) => p.try_reserve(len),
            Prod::Mpsc(p) => p.try_reserve(len),
            Prod::Broadcast(p, hold) => Prod::reserve_broadcast(p, hold, len),
        }
    }

    /// A broadcast publisher's reservation, releasing dead subscribers
    /// that hold it back. Out of line: the other flavors' reservation
    /// stays as small as it was.
    #[inline(never)]
    fn reserve_broadcast(
        p: &mut spsc::Producer<'static, Fanout>,
        hold: &mut Holdback,
        len: usize,
    ) -> Result<Reservation, ReserveError> {
        loop {
            match p.try_reserve(len) {
                Err(ReserveError::Full) if hold.release_dead(p, len) => continue,
                Err(e) => return Err(e),
                Ok(r) => {
                    hold.since = None;
                    return Ok(r);
                }
            }
        }
    }

    /// # Safety
    /// `r` came from this producer's `try_reserve`, not yet committed or
    /// aborted.
    #[inline]
    unsafe fn commit(&mut self, r: Reservation) {
        // SAFETY: the caller's contract.
        unsafe {
            match self {
                Prod::Spsc(p) => p.commit(r),
                Prod::Mpsc(p) => p.commit(r),
                Prod::Broadcast(p, _) => p.commit(r),
            }
        }
    }

    /// Commits a record of a batch: SPSC, unpublished until
    /// [`Prod::publish_pending`]; MPSC and broadcast, published by its
    /// header as any (a broadcast publisher moving `front` reads its own
    /// records' headers, which an unpublished batch keeps back).
    ///
    /// # Safety
    /// As for [`Prod::commit`].
    #[inline]
    unsafe fn commit_batched(&mut self, r: Reservation) {
        // SAFETY: the caller's contract.
        unsafe {
            match self {
                Prod::Spsc(p) => p.commit_unpublished(r),
                Prod::Mpsc(p) => p.commit(r),
                Prod::Broadcast(p, _) => p.commit(r),
            }
        }
    }

    /// Publishes a batch's records (SPSC: one store of `tail`).
    #[inline]
    fn publish_pending(&mut self) {
        if let Prod::Spsc(p) = self {
            p.publish_pending();
        }
    }

    /// Gives up a reservation. SPSC: nothing to do (the space is simply
    /// reserved again); MPSC: the record becomes padding.
    ///
    /// # Safety
    /// As for [`Prod::commit`].
    #[inline]
    unsafe fn abort(&mut self, r: Reservation) {
        match self {
            Prod::Spsc(_) | Prod::Broadcast(..) => {}
            // SAFETY: the caller's contract.
            Prod::Mpsc(p) => unsafe { p.abort(r) },
        }
    }

    fn has_space(&mut self, len: usize) -> Result<bool, Corrupted> {
        match self {
            Prod::Spsc(p) => p.has_space(len),
            Prod::Mpsc(p) => p.has_space(len),
            Prod::Broadcast(p, _) => p.has_space(len),
        }
    }

    /// The posts owed to a sleeping receiver.
    #[inline]
    fn wakeups(&mut self) -> &mut Wakeups {
        match self {
            Prod::Spsc(p) => p.wakeups(),
            Prod::Mpsc(p) => p.wakeups(),
            Prod::Broadcast(p, _) => p.wakeups(),
        }
    }

    /// Whether a receiver's departure ends this producer's sends (not a
    /// broadcast publisher's: it publishes with no subscriber).
    #[inline]
    fn needs_receiver(&self) -> bool {
        !matches!(self, Prod::Broadcast(..))
    }
}

/// The sending end of a channel. `Send`, not `Sync`: it owns the
/// producer's private position and cache. In an MPSC channel, every thread
/// or process that sends has its own `Sender` (see [`Sender::try_clone`]);
/// a broadcast channel has one, the publisher, which never gets
/// `Disconnected` for want of subscribers (see [`Sender::subscribers`]).
///
/// Not usable across `fork()`: a child that inherits a `Sender` is not a
/// registered sender (the kernel does not copy `SEM_UNDO` adjustments), so
/// it must call [`Channel::sender`] itself: the inherited one answers every
/// operation with `Forked` ([`SendError::Forked`], …). Dropping an
/// inherited `Sender` in the child leaves the liveness count alone.
#[derive(Debug)]
pub struct Sender {
    /// Declared before `reg`: dropped before the segment it views can be
    /// unmapped.
    producer: Prod,
    /// The producer's view (a copy, so that the hot path does not match
    /// on the flavor to reach it).
    view: RingView<'static>,
    tally: Tally,
    spin_limit: u32,
    /// Sends left before the next look at the receivers' liveness count.
    until_look: u32,
    reg: Registration,
    /// The async waiting state (feature `tokio`), made on first wait.
    #[cfg(feature = "tokio")]
    waiter: Option<Box<crate::aio::Waiter>>,
    /// The doorbell behind [`Sender::as_fd`], made on first use.
    fd_bell: std::cell::OnceCell<sys::BellSocket>,
    _not_sync: PhantomData<Cell<()>>,
}

impl Drop for Sender {
    fn drop(&mut self) {
        // Before the registration's drop (the fields drop after this): the
        // slot is free by the time the receiver can see us gone, and our
        // counts are in it before a new owner continues them.
        if !self.reg.owned_here() {
            return;
        }
        #[cfg(feature = "tokio")]
        self.disarm_async();
        if let Some(b) = self.fd_bell.get() {
            self.select_retract(b.id());
        }
        self.tally.store(&self.reg.segment().mapped);
        if let Prod::Mpsc(p) = &self.producer {
            // SAFETY: the sender is going: it makes no more claims, and a
            // grant borrows the sender, so none is held.
            unsafe { mpsc::free_slot(p.view(), p.slot()) };
        }
    }
}

impl Clone for Sender {
    /// A new registered sender on the same channel, as
    /// [`Sender::try_clone`].
    ///
    /// # Panics
    /// When `try_clone` fails: an SPSC channel (which allows one sender),
    /// an MPSC channel whose sender slots are all in use, or a channel that
    /// was removed. Use `try_clone` to handle those.
    fn clone(&self) -> Sender {
        self.try_clone()
            .unwrap_or_else(|e| panic!("cannot clone this Sender: {e}"))
    }
}

impl Sender {
    /// A sender on `seg` (see [`Channel::sender`]).
    pub(crate) fn new(seg: &Arc<Segment>) -> Result<Sender, OpenError> {
        // SAFETY: the view lives as long as the producer made from it,
        // which the Sender keeps beside its registration, holding `seg`'s
        // Arc: the mapping outlives it.
        let view: RingView<'static> = unsafe { seg.mapped.ring() };
        let (reg, mut producer, counted) = match seg.layout().flavor {
            Flavor::Spsc => {
                let reg = Registration::new(seg, SEM_SENDERS, true)?;
                reg.clear_stale_wake();
                // SAFETY: the registration is exclusive: no other SPSC
                // sender is registered, in any process (each holds its +1
                // with SEM_UNDO until it drops or dies; an inherited one in
                // a forked child refuses every operation).
                let p = unsafe { spsc::Producer::new(view) }.map_err(bad_positions)?;
                (reg, Prod::Spsc(p), Counted::SpscSender)
            }
            Flavor::Mpsc => {
                // Senders sleep in their own slots: what a predecessor in
                // ours killed asleep left (a flag) wakes nobody, and the
                // next claim clears it.
                check_pid_namespace(seg)?;
                let reg = Registration::new(seg, SEM_SENDERS, false)?;
                let pid = sys::current_pid() as u32;
                let shm_id = seg.shm.id();
                let mut alive = |pid: u32| sys::process_attached(pid as i32, shm_id);
                // SAFETY: process_attached says false only for a process
                // that is gone or no longer maps the segment (see there).
                let slot = unsafe { mpsc::take_slot(&view, pid, &mut alive) }.ok_or(
                    OpenError::TooManySenders {
                        slots: view.sender_slots(),
                    },
                )?;
                // SAFETY: the slot was just taken for this producer.
                match unsafe { mpsc::Producer::new(view, slot, pid) } {
                    Ok(p) => (reg, Prod::Mpsc(p), Counted::SenderSlot(slot)),
                    Err(c) => {
                        // SAFETY: the producer was never made: nothing
                        // claims from the slot.
                        unsafe { mpsc::free_slot(&view, slot) };
                        return Err(bad_positions(c));
                    }
                }
            }
            Flavor::Broadcast => {
                // It tells dead subscribers by their pids (see MPSC).
                check_pid_namespace(seg)?;
                // One publisher: an exclusive registration, as SPSC.
                let reg = Registration::new(seg, SEM_SENDERS, true)?;
                reg.clear_stale_wake();
                // SAFETY: the registration is exclusive (see SPSC above).
                let mut p = unsafe { broadcast::publisher(view) }.map_err(bad_positions)?;
                // Joiners issue the barrier (Subscriber::join): light only
                // when this process is registered for membarrier.
                p.fan().set_light_fence(sys::membarrier_register());
                let hold = Holdback {
                    since: None,
                    timeout: mpsc::DEFAULT_RECOVERY_TIMEOUT,
                    shm_id: seg.shm.id(),
                    released: 0,
                };
                (reg, Prod::Broadcast(p, hold), Counted::SpscSender)
            }
        };
        // Every sleeper of this crate issues the barrier (see
        // ring::wake::claim_with): light only when this process is
        // registered for membarrier.
        producer
            .wakeups()
            .set_light_fence(sys::membarrier_register());
        let tally = Tally::new(&seg.mapped, counted);
        reg.announce_connect();
        Ok(Sender {
            view: *producer.view(),
            producer,
            tally,
            spin_limit: DEFAULT_SPIN,
            until_look: LIVENESS_EVERY,
            reg,
            #[cfg(feature = "tokio")]
            waiter: None,
            fd_bell: std::cell::OnceCell::new(),
            _not_sync: PhantomData,
        })
    }

    /// A new sender on the same channel (MPSC), with its own registration
    /// and sender slot, and this one's spin limit: what [`Channel::sender`]
    /// returns. SPSC: [`OpenError::Busy`], the channel allows one sender.
    pub fn try_clone(&self) -> Result<Sender, OpenError> {
        let mut tx = Sender::new(self.reg.segment())?;
        tx.spin_limit = self.spin_limit;
        Ok(tx)
    }

    /// The largest message this channel takes.
    pub fn max_message(&self) -> usize {
        self.reg.segment().layout().max_message
    }

    /// Sets how many steps a blocked send spins before it sleeps on the
    /// semaphore (a few pause hints each, about 0.3 µs here; 0 sleeps at
    /// once, `u32::MAX` never sleeps).
    pub fn set_spin_limit(&mut self, steps: u32) {
        self.spin_limit = steps;
    }

    /// Broadcast, [`crate::Overflow::Block`]: how long the slowest
    /// subscribers may hold the publisher back before it checks whether
    /// they are alive (their pid gone, or no longer attached to the
    /// segment). A dead subscriber's slot is then released, and the
    /// publisher goes on; a live one is never released, however slow.
    /// Default [`crate::DEFAULT_RECOVERY_TIMEOUT`] (100 ms); a blocked
    /// send looks again every quarter of it. Other flavors: no effect.
    pub fn set_recovery_timeout(&mut self, timeout: Duration) {
        if let Prod::Broadcast(_, hold) = &mut self.producer {
            hold.timeout = timeout;
        }
    }

    /// Broadcast: how many slots of dead subscribers this publisher has
    /// released (0 for the other flavors).
    pub fn released_subscribers(&self) -> u64 {
        match &self.producer {
            Prod::Broadcast(_, hold) => hold.released,
            _ => 0,
        }
    }

    /// Broadcast: the subscribers joined now (a snapshot of the
    /// subscriber table, dead ones not yet released included); 0 for the
    /// other flavors. A subscriber is counted once its join is final, so
    /// every message sent after a count that includes it reaches it (in
    /// `Overflow::Overwrite`, or is reported to it as missed): waiting for
    /// `subscribers() >= n` before the first send loses nothing.
    pub fn subscribers(&self) -> usize {
        match &self.producer {
            Prod::Broadcast(p, _) => broadcast::joined(p.view(), p.tail()),
            _ => 0,
        }
    }

    #[inline]
    fn flush(&mut self) {
        self.reg.segment().pay(SEM_DATA, self.producer.wakeups());
    }

    /// Reserves space for a `len`-byte record, on behalf of `sends`
    /// messages (a batch's: they count toward the liveness look at once,
    /// the ones that will not fit too, which only brings the look closer).
    fn reserve_inner(
        &mut self,
        len: usize,
        sends: u32,
        block: bool,
        deadline: Option<Instant>,
    ) -> Result<Reservation, WaitError> {
        if self.reg.forked() {
            return Err(WaitError::Forked);
        }
        // A receiver that left cleanly said so in the line we hold; one
        // that was killed cannot, and is looked for every LIVENESS_EVERY
        // sends (a system call).
        if receiver_left(self.view.state()) && self.producer.needs_receiver() {
            return Err(WaitError::Disconnected);
        }
        self.until_look = self.until_look.saturating_sub(sends);
        if self.until_look == 0 {
            if self.gone() {
                // Look again at the next send, until a receiver is back.
                self.until_look = 1;
                return Err(WaitError::Disconnected);
            }
            self.until_look = LIVENESS_EVERY;
        }
        // Fast path: no syscall.
        match self.producer.try_reserve(len) {
            Ok(r) => return Ok(r),
            Err(ReserveError::TooLarge { len, max }) => {
                return Err(WaitError::TooLarge { len, max })
            }
            Err(ReserveError::Corrupted(c)) => return Err(WaitError::Corrupted(c)),
            Err(ReserveError::Full) => {}
        }
        self.flush();
        let seg = self.reg.segment().clone();
        self.tally.store(&seg.mapped);
        // Relaxed: a statistic (the slow path: the ring is full).
        seg.ring_state()
            .wake
            .full_events
            .fetch_add(1, Ordering::Relaxed);
        if !block {
            return Err(if self.gone() {
                WaitError::Disconnected
            } else {
                WaitError::Full
            });
        }
        // MPSC senders sleep in their own slot (ring::mpsc::sleepers).
        let slot = match &self.producer {
            Prod::Spsc(_) | Prod::Broadcast(..) => None,
            Prod::Mpsc(p) => Some(p.slot()),
        };
        // A held-back publisher looks at its subscribers' liveness within
        // a quarter of its recovery timeout.
        let poll = match &self.producer {
            Prod::Broadcast(_, hold) => {
                (hold.timeout / 4).clamp(Duration::from_millis(1), wait::POLL_INTERVAL)
            }
            _ => wait::POLL_INTERVAL,
        };
        let needs_receiver = self.producer.needs_receiver();
        let producer = Cell::new(Some(&mut self.producer));
        let with = |f: &mut dyn FnMut(&mut Prod) -> Result<Option<Reservation>, WaitError>| {
            let p = producer.take().expect("producer in use");
            let r = f(p);
            seg.pay(SEM_DATA, p.wakeups());
            producer.set(Some(p));
            r
        };
        let bell = seg.bell(SEM_SPACE);
        let futex = seg.slot_futex();
        let counted;
        let in_slot;
        let sleeper: &dyn Sleeper = match slot {
            None => {
                counted = CounterSleeper {
                    waiters: &seg.ring_state().wake.send_waiters,
                    bell: &bell,
                };
                &counted
            }
            Some(slot) => {
                in_slot = SlotSleeper {
                    flag: &seg.mapped.sender_slot(slot).sleeping,
                    mask: &seg.ring_state().wake.sleeping_senders,
                    slot,
                    futex: &futex,
                };
                &in_slot
            }
        };
        wait::block_on_polling(
            sleeper,
            self.spin_limit,
            deadline,
            poll,
            || {
                with(&mut |p| match p.try_reserve(len) {
                    Ok(r) => Ok(Some(r)),
                    Err(ReserveError::Full) => Ok(None),
                    Err(ReserveError::TooLarge { len, max }) => {
                        Err(WaitError::TooLarge { len, max })
                    }
                    Err(ReserveError::Corrupted(c)) => Err(WaitError::Corrupted(c)),
                })
            },
            || {
                let mut has = true;
                let _ = with(&mut |p| {
                    has = p.has_space(len).unwrap_or(true);
                    Ok(None)
                });
                has
            },
            || gone(&seg, needs_receiver),
        )
    }

    /// Whether sends end here: the receiver gone (not for a broadcast
    /// publisher), or the channel removed. A system call.
    fn gone(&self) -> bool {
        gone(self.reg.segment(), self.producer.needs_receiver())
    }

    fn send_inner(
        &mut self,
        msg: &[u8],
        block: bool,
        deadline: Option<Instant>,
    ) -> Result<(), WaitError> {
        let r = self.reserve_inner(msg.len(), 1, block, deadline)?;
        self.write_reserved(r, msg);
        Ok(())
    }

    /// Copies `msg` into `r` (the reservation our producer made last, for
    /// `msg.len()` bytes) and commits it.
    fn write_reserved(&mut self, r: Reservation, msg: &[u8]) {
        // Counted before the publish: see Tally.
        self.tally.add(r.len, &self.reg.segment().mapped);
        // SAFETY: `r` is the reservation our producer just made: space only
        // we may write until we commit it, which we do next, once.
        unsafe {
            self.view.region().copy_in(r.data_offset, msg);
            self.producer.commit(r);
        }
        self.flush();
    }

    /// Sends `msg`, waiting while the channel is full.
    ///
    /// Returns [`SendError::Disconnected`] when the receiver that had
    /// connected is gone: at the very next send after a receiver dropped
    /// (it says so in the line the sender holds; no system call), and
    /// within 1,024 sends after one was killed (a look at its liveness
    /// count every 1,024 sends), or when the ring is full, whichever comes
    /// first. The message is not sent then; the messages already in the
    /// ring stay for a receiver that opens the channel again, and once one
    /// has, sending works again. Before any receiver has ever connected, a
    /// full channel simply waits, like a pipe's writer.
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.send_inner(msg, true, None).map_err(SendError::from)
    }

    /// Sends a batch: the longest prefix of `msgs` that fits, at least
    /// one message (waiting while not even the first fits), published
    /// together; returns how many were sent, like a `write` of a prefix.
    ///
    /// In SPSC the receiver sees the whole batch with one store (and one
    /// look at it), which is what makes small messages cheap: pair it with
    /// [`crate::Receiver::recv_batch`]. In MPSC each record is claimed and
    /// published by itself, as by [`Sender::send`], and the receiver is
    /// woken at most once for the batch.
    ///
    /// Errors are those of [`Sender::send`], and come only when nothing
    /// was sent: a message after the first that is too large, or that
    /// does not fit now, ends the batch early (the next call sends it or
    /// reports why not). An empty `msgs` sends nothing and returns 0.
    ///
    /// ```no_run
    /// # fn f(tx: &mut shmchan::Sender, msgs: &[&[u8]]) -> Result<(), shmchan::SendError> {
    /// let mut rest = msgs;
    /// while !rest.is_empty() {
    ///     let n = tx.send_batch(rest)?;
    ///     rest = &rest[n..];
    /// }
    /// # Ok(()) }
    /// ```
    pub fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, SendError> {
        self.batch_inner(msgs, true).map_err(SendError::from)
    }

    /// [`Sender::send_batch`] without waiting: the prefix of `msgs` that
    /// fits now ([`TrySendError::Full`] when not even the first does).
    pub fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, TrySendError> {
        self.batch_inner(msgs, false).map_err(TrySendError::from)
    }

    fn batch_inner(&mut self, msgs: &[&[u8]], block: bool) -> Result<usize, WaitError> {
        let Some((first, rest)) = msgs.split_first() else {
            return if self.reg.forked() {
                Err(WaitError::Forked)
            } else {
                Ok(0)
            };
        };
        let mut r = self.reserve_inner(
            first.len(),
            u32::try_from(msgs.len()).unwrap_or(u32::MAX),
            block,
            None,
        )?;
        let mut sent = 0;
        let mut next = rest.iter();
        loop {
            // Counted before the publish: see Tally.
            self.tally.add(r.len, &self.reg.segment().mapped);
            // SAFETY: `r` is the reservation our producer just made: space
            // only we may write until we commit it, which we do next, once.
            unsafe {
                self.producer
                    .view()
                    .region()
                    .copy_in(r.data_offset, msgs[sent]);
                self.producer.commit_batched(r);
            }
            sent += 1;
            match next.next().map(|m| self.producer.try_reserve(m.len())) {
                Some(Ok(more)) => r = more,
                // Full, too large or damaged: the next call says which.
                Some(Err(_)) | None => break,
            }
        }
        self.producer.publish_pending();
        self.flush();
        Ok(sent)
    }

    /// Sends `msg` if there is space now.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), TrySendError> {
        self.send_inner(msg, false, None)
            .map_err(TrySendError::from)
    }

    /// Sends `msg`, waiting at most `timeout` for space.
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), SendTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        self.send_inner(msg, true, deadline)
            .map_err(SendTimeoutError::from)
    }

    /// Reserves `len` bytes in the ring for a message written in place,
    /// waiting while full. Publish it with [`Grant::commit`]; dropping the
    /// grant publishes nothing.
    ///
    /// In an MPSC channel other senders' messages queue behind an
    /// uncommitted grant (the receiver reads in order), so write it
    /// promptly. A grant kept past the receiver's recovery timeout is not
    /// skipped while its process lives; one leaked with `mem::forget`
    /// blocks the channel until that process exits.
    ///
    /// ```no_run
    /// # fn f(tx: &mut shmchan::Sender) -> Result<(), shmchan::SendError> {
    /// let mut grant = tx.reserve(5)?;
    /// grant.copy_from_slice(b"hello");
    /// grant.commit();
    /// # Ok(()) }
    /// ```
    pub fn reserve(&mut self, len: usize) -> Result<Grant<'_>, SendError> {
        let res = self
            .reserve_inner(len, 1, true, None)
            .map_err(SendError::from)?;
        self.flush();
        Ok(Grant { tx: self, res })
    }

    /// Test hook (feature `test-hooks`, for this crate's own tests only):
    /// in an MPSC channel, claims space for a `len`-byte message and stops
    /// after `stage`, as a sender killed there would leave it; the caller
    /// is expected to die next. Returns false (and claims nothing) for
    /// SPSC, a full ring or a bad length.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn claim_and_stop(&mut self, len: usize, stage: mpsc::Stage) -> bool {
        match &mut self.producer {
            Prod::Spsc(_) | Prod::Broadcast(..) => false,
            Prod::Mpsc(p) => p.try_reserve_until(len, stage).is_ok(),
        }
    }

    /// Reserves `len` bytes if there is space now.
    pub fn try_reserve(&mut self, len: usize) -> Result<Grant<'_>, TrySendError> {
        let res = self
            .reserve_inner(len, 1, false, None)
            .map_err(TrySendError::from)?;
        self.flush();
        Ok(Grant { tx: self, res })
    }
}

/// Whether a sender's sends end: the receiver gone when it `needs` one,
/// else only the channel removed.
fn gone(seg: &Segment, needs: bool) -> bool {
    if needs {
        receiver_gone(seg)
    } else {
        seg.alive(crate::layout::SEM_RECEIVERS).is_none()
    }
}

/// Space reserved in the ring by [`Sender::reserve`]; derefs to the
/// message's bytes (initially whatever the ring held there; a `&mut [u8]`
/// into shared memory: see the crate docs, "Trust"). Dropped
/// without [`Grant::commit`], it publishes nothing (MPSC: it becomes
/// padding that the receiver skips).
///
/// A grant belongs to the process that reserved it. In a child forked
/// while it was held, it derefs to no bytes, and committing or dropping it
/// does nothing: the parent's grant, and the parent's commit, are
/// unaffected (an inherited endpoint changes nothing, see
/// [`SendError::Forked`]).
#[derive(Debug)]
pub struct Grant<'a> {
    tx: &'a mut Sender,
    res: Reservation,
}

impl Grant<'_> {
    /// Publishes the message. (In a child forked while the grant was held,
    /// it publishes nothing: see [`Grant`].)
    pub fn commit(self) {
        let mut me = ManuallyDrop::new(self);
        let res = me.res;
        let tx = &mut *me.tx;
        if tx.reg.forked() {
            return;
        }
        tx.tally.add(res.len, &tx.reg.segment().mapped);
        // SAFETY: the grant's reservation came from this sender's producer
        // and is committed once: the grant is consumed (not dropped).
        unsafe { tx.producer.commit(res) };
        tx.flush();
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        // A grant inherited through fork stays the parent's to finish.
        if self.tx.reg.forked() {
            return;
        }
        // SAFETY: the grant's reservation came from this sender's producer;
        // dropped without commit, it is given up once.
        unsafe { self.tx.producer.abort(self.res) };
        self.tx.flush();
    }
}

impl Deref for Grant<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        if self.tx.reg.forked() {
            return &[];
        }
        // SAFETY: the reservation is unpublished space that only this
        // producer may touch until it commits; the grant borrows the sender.
        unsafe {
            self.tx
                .producer
                .view()
                .region()
                .slice(self.res.data_offset, self.res.len)
        }
    }
}

impl DerefMut for Grant<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        if self.tx.reg.forked() {
            return &mut [];
        }
        // SAFETY: as in deref; &mut self makes this the only view.
        unsafe {
            self.tx
                .producer
                .view()
                .region()
                .slice_mut(self.res.data_offset, self.res.len)
        }
    }
}
