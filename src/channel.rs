//! The public API: [`Channel`], [`Sender`], [`Receiver`] and their options.

use std::cell::Cell;
use std::io;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{
    OpenError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError, WaitError,
};
use crate::layout::{
    self, Flavor, HeaderError, Layout, RingState, HEADER_SIZE, MAGIC, STATE_READY,
};
use crate::ring::{mpsc, spsc, Corrupted, Record, Reservation, ReserveError, RingView};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::sys::{self, Attachment, IpcError, Key, Segment, SegmentStat, SemOp, SemSet};
use crate::wait::{self, Bell, Removed};

/// Semaphore 0: the data doorbell, posted for sleeping receivers.
pub(crate) const SEM_DATA: u16 = 0;
/// Semaphore 1: the space doorbell, posted for sleeping senders.
pub(crate) const SEM_SPACE: u16 = 1;
/// Semaphore 2: live senders (each holds +1 with `SEM_UNDO`).
pub(crate) const SEM_SENDERS: u16 = 2;
/// Semaphore 3: live receivers (each holds +1 with `SEM_UNDO`).
pub(crate) const SEM_RECEIVERS: u16 = 3;
/// Semaphores in a channel's set.
pub(crate) const NSEMS: u16 = 4;

/// How long `open` waits for a creator to finish initialising.
const OPEN_WAIT: Duration = Duration::from_secs(1);
/// How long an MPSC receiver waits on a claimed record before it checks
/// whether the claimant died (see [`Receiver::set_recovery_timeout`]).
pub const DEFAULT_RECOVERY_TIMEOUT: Duration = Duration::from_millis(100);

/// Default spin budget (steps of [`Spinner`]) before sleeping.
/// About 40 µs of polling on the machines we measure: twice what a kernel
/// wake-up costs there, the classic bound for spinning before sleeping.
const DEFAULT_SPIN: u32 = 128;

/// Options for [`Channel::create`].
///
/// ```
/// use shmchan::{Flavor, Options};
/// let opts = Options::default().capacity(1 << 20).max_message(64 << 10).mode(0o600).flavor(Flavor::Spsc);
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    capacity: usize,
    max_message: Option<usize>,
    mode: u32,
    flavor: Flavor,
    sender_slots: Option<usize>,
    remove_on_drop: bool,
    init_stall: Option<Duration>,
}

impl Default for Options {
    /// 1 MiB ring, messages up to a quarter of it, mode `0o600`, SPSC, kept
    /// after the creator's handle drops.
    fn default() -> Options {
        Options {
            capacity: 1 << 20,
            max_message: None,
            mode: 0o600,
            flavor: Flavor::Spsc,
            sender_slots: None,
            remove_on_drop: false,
            init_stall: None,
        }
    }
}

impl Options {
    /// Size of the data region in bytes, rounded up to a power of two
    /// (at least 64).
    pub fn capacity(mut self, bytes: usize) -> Options {
        self.capacity = bytes;
        self
    }

    /// The largest message in bytes (default: a quarter of the capacity,
    /// less a record header). At most `capacity - 8`.
    pub fn max_message(mut self, bytes: usize) -> Options {
        self.max_message = Some(bytes);
        self
    }

    /// Permission bits of the segment and the semaphore set (default
    /// `0o600`). Users need read and write permission to use a channel.
    pub fn mode(mut self, mode: u32) -> Options {
        self.mode = mode;
        self
    }

    /// SPSC or MPSC.
    pub fn flavor(mut self, flavor: Flavor) -> Options {
        self.flavor = flavor;
        self
    }

    /// MPSC: the most senders alive at once, in all processes together
    /// (default [`layout::DEFAULT_SENDER_SLOTS`], at most
    /// [`layout::MAX_SENDER_SLOTS`]). Each takes one 128-byte line of the
    /// segment's sender table; one more sender gets
    /// [`OpenError::TooManySenders`].
    pub fn max_senders(mut self, senders: usize) -> Options {
        self.sender_slots = Some(senders);
        self
    }

    /// Test hook, not part of the API: `create` sleeps this long after
    /// writing the header and before marking the channel ready, so that a
    /// test can kill a creator in the middle of initialising.
    #[doc(hidden)]
    pub fn init_stall(mut self, stall: Duration) -> Options {
        self.init_stall = Some(stall);
        self
    }

    /// Remove the channel's IPC objects when the creating handle (and every
    /// clone of it in the creating process) is dropped.
    pub fn remove_on_drop(mut self, yes: bool) -> Options {
        self.remove_on_drop = yes;
        self
    }
}

/// Maps a system error to an [`OpenError`], keeping the call in the text.
pub(crate) fn open_err(what: &str, e: IpcError) -> OpenError {
    match e {
        IpcError::NotFound => OpenError::NotFound,
        IpcError::AlreadyExists => OpenError::AlreadyExists,
        IpcError::PermissionDenied => OpenError::PermissionDenied,
        e => OpenError::Io(io::Error::new(
            io::Error::from(e).kind(),
            format!("{what}: {e}"),
        )),
    }
}

/// The semaphore of one doorbell.
#[derive(Debug, Clone, Copy)]
struct SemBell {
    sems: SemSet,
    num: u16,
    /// The header counter of this side's semaphore waits.
    sleeps: NonNull<AtomicU64>,
}

impl Bell for SemBell {
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
        // SAFETY: `sleeps` points into the attachment of the channel whose
        // handle made this bell and outlives every use of it (see
        // Inner::bell).
        let sleeps = unsafe { self.sleeps.as_ref() };
        // Relaxed: a statistic, read by nobody for synchronisation.
        sleeps.fetch_add(1, Ordering::Relaxed);
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

/// What every handle of one channel in this process shares.
#[derive(Debug)]
struct Inner {
    key: Key,
    segment: Segment,
    sems: SemSet,
    attachment: Attachment,
    layout: Layout,
    /// Pid of the process whose `create` asked for removal on drop, or 0.
    remove_on_drop_pid: i32,
}

impl Inner {
    fn view(&self) -> RingView {
        // SAFETY: the attachment is a page-aligned mapping of at least
        // `layout.segment_len` bytes (validated against the segment's size)
        // that lives as long as `self`, which every holder of the view keeps
        // alive through an Arc.
        unsafe { RingView::in_segment(self.attachment.base(), &self.layout) }
    }

    fn ring_state(&self) -> &RingState {
        // SAFETY: see `view`; the reference lives no longer than &self.
        unsafe {
            &*self
                .attachment
                .as_ptr()
                .add(layout::offset::RING_STATE)
                .cast::<RingState>()
        }
    }

    /// The doorbell `num`. It points into this attachment: use it only
    /// while `self` lives.
    fn bell(&self, num: u16) -> SemBell {
        let wake = &self.ring_state().wake;
        let sleeps = if num == SEM_DATA {
            &wake.receiver_sleeps
        } else {
            &wake.sender_sleeps
        };
        SemBell {
            sems: self.sems,
            num,
            sleeps: NonNull::from(sleeps),
        }
    }

    /// The live count of `num` (senders or receivers); `None` if the set is
    /// gone.
    fn alive(&self, num: u16) -> Option<i32> {
        self.sems.value(num).ok()
    }

    fn remove(&self) -> Result<(), OpenError> {
        let a = self.segment.remove();
        let b = self.sems.remove();
        a.and(b).map_err(|e| open_err("remove", e))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.remove_on_drop_pid != 0 && self.remove_on_drop_pid == sys::current_pid() {
            let _ = self.remove();
        }
    }
}

pub(crate) fn state_word(att: &Attachment) -> &AtomicU32 {
    // SAFETY: offset 64 is 4-aligned inside the page-aligned mapping, which
    // is at least HEADER_SIZE bytes long (checked by callers) and outlives
    // the reference.
    unsafe { AtomicU32::from_ptr(att.as_ptr().add(layout::offset::STATE).cast::<u32>()) }
}

pub(crate) fn read_magic(att: &Attachment) -> u64 {
    // SAFETY: offset 0 of a mapping at least HEADER_SIZE long, 8-aligned.
    unsafe { std::ptr::read_volatile(att.as_ptr().cast::<u64>()) }
}

/// Copies the header out of the segment, one volatile word at a time, so
/// that validation works on bytes no peer can change underneath it.
pub(crate) fn copy_header(att: &Attachment) -> [u8; HEADER_SIZE] {
    let mut out = [0u8; HEADER_SIZE];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        // SAFETY: word i of the first HEADER_SIZE bytes of the mapping,
        // which is at least that long (checked by callers) and 8-aligned.
        let w = unsafe { std::ptr::read_volatile(att.as_ptr().cast::<u64>().add(i)) };
        chunk.copy_from_slice(&w.to_ne_bytes());
    }
    out
}

/// Removes a channel's segment, then its semaphore set (if known).
pub(crate) fn remove_objects(segment: Segment, sems: Option<SemSet>) -> Result<(), OpenError> {
    segment
        .remove()
        .map_err(|e| open_err("shmctl(IPC_RMID)", e))?;
    if let Some(s) = sems {
        s.remove().map_err(|e| open_err("semctl(IPC_RMID)", e))?;
    }
    Ok(())
}

/// The segment's status and a read-only attachment of it, once it is
/// known to be large enough to hold a header ([`OpenError::NotAChannel`]
/// if not).
pub(crate) fn attach_read_only(segment: Segment) -> Result<(SegmentStat, Attachment), OpenError> {
    let stat = segment
        .stat()
        .map_err(|e| open_err("shmctl(IPC_STAT)", e))?;
    if stat.size < HEADER_SIZE {
        return Err(OpenError::NotAChannel);
    }
    let att = segment
        .attach_read_only()
        .map_err(|e| open_err("shmat", e))?;
    Ok((stat, att))
}

/// An `ftok` key opens only the channel created from its own path (or one
/// created without a path): see [`OpenError::KeyCollision`].
pub(crate) fn check_key_path(key: Key, layout: &Layout) -> Result<(), OpenError> {
    match key.path_identity() {
        Some(mine) if layout.key_path != (0, 0) && layout.key_path != mine => {
            Err(OpenError::KeyCollision {
                dev: layout.key_path.0,
                ino: layout.key_path.1,
            })
        }
        _ => Ok(()),
    }
}

/// Validates a copy of a header as `open` does, with its errors.
pub(crate) fn validate_header(
    header: &[u8; HEADER_SIZE],
    segment_len: usize,
) -> Result<Layout, OpenError> {
    layout::validate(header, segment_len).map_err(|e| match e {
        HeaderError::BadMagic { .. } => OpenError::NotAChannel,
        HeaderError::UnsupportedVersion { found, supported } => {
            OpenError::IncompatibleVersion { found, supported }
        }
        e => OpenError::InvalidHeader(e),
    })
}

/// A channel: a shared-memory segment with a ring, and a semaphore set,
/// under one System V key. `Send + Sync`; clones share one attachment.
///
/// Who removes what: the IPC objects live until [`Channel::remove`],
/// [`Channel::remove_key`], `shmchan rm`, `ipcrm`, or the drop of the
/// creating handle when it was created with
/// [`Options::remove_on_drop`]. Endpoints never remove anything.
#[derive(Debug, Clone)]
pub struct Channel {
    inner: Arc<Inner>,
}

impl Channel {
    /// Creates a channel at `key`, exclusively: [`OpenError::AlreadyExists`]
    /// if a segment or semaphore set is already there.
    ///
    /// The objects are created owner-only, initialised, marked ready, and
    /// only then given `options.mode`.
    pub fn create(key: Key, options: Options) -> Result<Channel, OpenError> {
        if options.mode & !0o777 != 0 {
            return Err(OpenError::InvalidOptions(format!(
                "mode {:#o} has bits outside 0o777",
                options.mode
            )));
        }
        let mut layout = Layout::new(options.flavor, options.capacity, options.max_message)
            .map_err(OpenError::InvalidOptions)?;
        if let Some(n) = options.sender_slots {
            layout = layout
                .with_sender_slots(n)
                .map_err(OpenError::InvalidOptions)?;
        }
        // The semaphore set first: an opener that finds the segment then
        // always finds the set too, so a segment without one is foreign.
        let sems = SemSet::create(key, NSEMS, 0o600).map_err(|e| open_err("semget", e))?;
        struct Undo(Option<SemSet>, Option<Segment>);
        impl Drop for Undo {
            fn drop(&mut self) {
                if let Some(s) = self.1.take() {
                    let _ = s.remove();
                }
                if let Some(s) = self.0.take() {
                    let _ = s.remove();
                }
            }
        }
        let mut undo = Undo(Some(sems), None);
        let segment =
            Segment::create(key, layout.segment_len, 0o600).map_err(|e| open_err("shmget", e))?;
        undo.1 = Some(segment);
        let attachment = segment.attach().map_err(|e| open_err("shmat", e))?;
        if attachment.len() < layout.segment_len {
            return Err(OpenError::Io(io::Error::other(
                "segment smaller than requested",
            )));
        }
        layout.creator_pid = sys::current_pid() as u32;
        layout.creator_uid = sys::current_uid();
        layout.sem_id = sems.id();
        layout.key_path = key.path_identity().unwrap_or((0, 0));
        layout.created_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let line0 = layout.encode();
        // SAFETY: the fresh mapping is at least HEADER_SIZE bytes, private to
        // us until the state word says ready; line0 is process memory.
        unsafe { std::ptr::copy_nonoverlapping(line0.as_ptr(), attachment.as_ptr(), line0.len()) };
        for num in 0..NSEMS {
            sems.set_value(num, 0)
                .map_err(|e| open_err("semctl(SETVAL)", e))?;
        }
        if let Some(stall) = options.init_stall {
            std::thread::sleep(stall);
        }
        // Release: pairs with the Acquire load of the state word in `open`;
        // the header fields and semaphore values above are set before it.
        state_word(&attachment).store(STATE_READY, Ordering::Release);
        sems.set_mode(options.mode)
            .map_err(|e| open_err("semctl(IPC_SET)", e))?;
        segment
            .set_mode(options.mode)
            .map_err(|e| open_err("shmctl(IPC_SET)", e))?;
        undo.0 = None;
        undo.1 = None;
        Ok(Channel {
            inner: Arc::new(Inner {
                key,
                segment,
                sems,
                attachment,
                layout,
                remove_on_drop_pid: if options.remove_on_drop {
                    sys::current_pid()
                } else {
                    0
                },
            }),
        })
    }

    /// Opens the channel at `key`.
    ///
    /// A segment that is not ours gives [`OpenError::NotAChannel`] and is
    /// never written to. If the creator has not finished, waits up to a
    /// second, then gives [`OpenError::NotInitialized`].
    pub fn open(key: Key) -> Result<Channel, OpenError> {
        let segment = Segment::open(key).map_err(|e| open_err("shmget", e))?;
        let stat = segment
            .stat()
            .map_err(|e| open_err("shmctl(IPC_STAT)", e))?;
        if stat.size < HEADER_SIZE {
            return Err(OpenError::NotAChannel);
        }
        let sems = match SemSet::open(key) {
            Ok(s) => s,
            Err(IpcError::NotFound) => return Err(OpenError::NotAChannel),
            Err(e) => return Err(open_err("semget", e)),
        };
        match sems.stat() {
            Ok(s) if s.nsems == u64::from(NSEMS) => {}
            Ok(_) => return Err(OpenError::NotAChannel),
            Err(e) => return Err(open_err("semctl(IPC_STAT)", e)),
        }
        let attachment = segment.attach().map_err(|e| open_err("shmat", e))?;
        let deadline = Instant::now() + OPEN_WAIT;
        // Acquire: pairs with the Release store of the state word in `create`.
        while state_word(&attachment).load(Ordering::Acquire) != STATE_READY {
            let magic = read_magic(&attachment);
            if magic != 0 && magic != MAGIC {
                return Err(OpenError::NotAChannel);
            }
            if Instant::now() >= deadline || !sys::process_exists(stat.creator_pid) {
                return Err(OpenError::NotInitialized);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let layout = validate_header(&copy_header(&attachment), stat.size)?;
        check_key_path(key, &layout)?;
        if attachment.len() < layout.segment_len {
            return Err(OpenError::NotAChannel);
        }
        Ok(Channel {
            inner: Arc::new(Inner {
                key,
                segment,
                sems,
                attachment,
                layout,
                remove_on_drop_pid: 0,
            }),
        })
    }

    /// Removes the channel's segment and semaphore set. Endpoints asleep on
    /// it wake with `Disconnected`; the memory goes when the last process
    /// detaches.
    pub fn remove(&self) -> Result<(), OpenError> {
        self.inner.remove()
    }

    /// Removes the channel at `key` without opening it as an endpoint.
    /// Refuses ([`OpenError::NotAChannel`]) a segment that is not ours; a
    /// channel whose creator died while initialising it is removed.
    pub fn remove_key(key: Key) -> Result<(), OpenError> {
        let sems = match SemSet::open(key) {
            Ok(s)
                if s.stat()
                    .map(|st| st.nsems == u64::from(NSEMS))
                    .unwrap_or(false) =>
            {
                Some(s)
            }
            Ok(_) => None,
            Err(IpcError::NotFound) => None,
            Err(e) => return Err(open_err("semget", e)),
        };
        let segment = match Segment::open(key) {
            Ok(s) => s,
            Err(IpcError::NotFound) => {
                // A creator that died between its two creations leaves a set.
                return match sems {
                    Some(s) => s.remove().map_err(|e| open_err("semctl(IPC_RMID)", e)),
                    None => Err(OpenError::NotFound),
                };
            }
            Err(e) => return Err(open_err("shmget", e)),
        };
        let (stat, att) = attach_read_only(segment)?;
        let magic = read_magic(&att);
        if magic == MAGIC {
            // Another path's channel at a colliding ftok key stays.
            if let Ok(layout) = validate_header(&copy_header(&att), stat.size) {
                check_key_path(key, &layout)?;
            }
        }
        let ours = magic == MAGIC || (magic == 0 && sems.is_some());
        drop(att);
        if !ours {
            return Err(OpenError::NotAChannel);
        }
        remove_objects(segment, sems)
    }

    /// The key the channel lives under.
    pub fn key(&self) -> Key {
        self.inner.key
    }

    /// The channel's validated geometry.
    pub fn layout(&self) -> Layout {
        self.inner.layout
    }

    /// Size of the data region in bytes.
    pub fn capacity(&self) -> usize {
        self.inner.layout.capacity
    }

    /// The largest message in bytes.
    pub fn max_message(&self) -> usize {
        self.inner.layout.max_message
    }

    /// SPSC or MPSC.
    pub fn flavor(&self) -> Flavor {
        self.inner.layout.flavor
    }

    /// The shared memory segment's id (as `ipcs -m` shows it).
    pub fn shm_id(&self) -> i32 {
        self.inner.segment.id()
    }

    /// The semaphore set's id (as `ipcs -s` shows it).
    pub fn sem_id(&self) -> i32 {
        self.inner.sems.id()
    }

    pub(crate) fn attachment(&self) -> &Attachment {
        &self.inner.attachment
    }

    /// Clears what a dead holder of this side may have left: an
    /// announcement of sleep that nobody will retract, and a doorbell unit
    /// posted for it. Only the side's one live holder (just registered)
    /// announces on this counter, so nothing live is lost; a peer that
    /// claimed the stale announcement just before may still post once, a
    /// single spurious wake-up at worst.
    fn clear_stale_wake(&self, waiters: &AtomicU32, bell: u16) {
        waiters.store(0, Ordering::Relaxed);
        let _ = self.inner.sems.set_value(bell, 0);
    }

    /// Registers in the semaphore set; `exclusive`: only while nobody else
    /// holds this side (SPSC senders, all receivers).
    fn register(&self, num: u16, exclusive: bool) -> Result<Registration, OpenError> {
        let both = [SemOp::wait_zero(num).no_wait(), SemOp::post(num, 1).undo()];
        let ops = if exclusive { &both[..] } else { &both[1..] };
        loop {
            match self.inner.sems.op(ops) {
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
            inner: self.inner.clone(),
            num,
            generation: sys::fork_generation(),
        })
    }

    /// The sending end.
    ///
    /// SPSC: [`OpenError::Busy`] while another sender (in any process) is
    /// alive; a killed sender frees its place. MPSC: any number, up to the
    /// channel's sender slots ([`OpenError::TooManySenders`]); a killed
    /// sender's slot is reused once its last claim has been received.
    pub fn sender(&self) -> Result<Sender, OpenError> {
        let positions = |c: Corrupted| {
            OpenError::InvalidHeader(HeaderError::BadPositions {
                detail: c.to_string(),
            })
        };
        let view = self.inner.view();
        let (reg, mut producer) = match self.flavor() {
            Flavor::Spsc => {
                let reg = self.register(SEM_SENDERS, true)?;
                self.clear_stale_wake(&self.inner.ring_state().wake.send_waiters, SEM_SPACE);
                (
                    reg,
                    Prod::Spsc(spsc::Producer::new(view).map_err(positions)?),
                )
            }
            Flavor::Mpsc => {
                // Other senders may be asleep: no clearing of the space
                // doorbell here (a dead sender's stale announcement costs
                // one spurious wake-up at most).
                let reg = self.register(SEM_SENDERS, false)?;
                let pid = sys::current_pid() as u32;
                let shm_id = self.shm_id();
                let mut alive = |pid: u32| sys::process_attached(pid as i32, shm_id);
                let slot =
                    mpsc::take_slot(&view, pid, &mut alive).ok_or(OpenError::TooManySenders {
                        slots: view.sender_slots(),
                    })?;
                match mpsc::Producer::new(view, slot, pid) {
                    Ok(p) => (reg, Prod::Mpsc(p)),
                    Err(c) => {
                        mpsc::free_slot(&view, slot);
                        return Err(positions(c));
                    }
                }
            }
        };
        producer.set_light_fence(sys::membarrier_register());
        let tally = match &producer {
            Prod::Spsc(_) => {
                let line = &self.inner.ring_state().producer;
                Tally::new(&line.sent_messages, &line.sent_bytes)
            }
            Prod::Mpsc(p) => {
                let slot = view.sender_slot(p.slot());
                Tally::new(&slot.sent_messages, &slot.sent_bytes)
            }
        };
        // Release: pairs with the Acquire load in Receiver::senders_gone, so
        // a receiver that sees the connect sees our registration before it.
        self.inner
            .ring_state()
            .wake
            .sender_connects
            .fetch_add(1, Ordering::Release);
        Ok(Sender {
            reg,
            producer,
            tally,
            spin_limit: DEFAULT_SPIN,
            _not_sync: PhantomData,
        })
    }

    /// The receiving end. [`OpenError::Busy`] while another receiver (in
    /// any process) is alive; a killed receiver frees its place, and the
    /// next one continues from the first message not yet released.
    pub fn receiver(&self) -> Result<Receiver, OpenError> {
        let reg = self.register(SEM_RECEIVERS, true)?;
        self.clear_stale_wake(&self.inner.ring_state().wake.recv_waiters, SEM_DATA);
        let view = self.inner.view();
        let mut consumer = match self.flavor() {
            Flavor::Spsc => spsc::Consumer::new(view).map(Cons::Spsc),
            Flavor::Mpsc => mpsc::Consumer::new(view).map(Cons::Mpsc),
        }
        .map_err(|c| {
            OpenError::InvalidHeader(HeaderError::BadPositions {
                detail: c.to_string(),
            })
        })?;
        consumer.set_light_fence(sys::membarrier_register());
        // Release: pairs with the Acquire load in Sender::receiver_gone.
        self.inner
            .ring_state()
            .wake
            .receiver_connects
            .fetch_add(1, Ordering::Release);
        Ok(Receiver {
            reg,
            side: ReadSide {
                consumer,
                stuck: None,
                recovery_timeout: DEFAULT_RECOVERY_TIMEOUT,
                recovered: 0,
                shm_id: self.shm_id(),
                tally: {
                    let line = &self.inner.ring_state().consumer;
                    Tally::new(&line.received_messages, &line.received_bytes)
                },
            },
            spin_limit: DEFAULT_SPIN,
            _not_sync: PhantomData,
        })
    }
}

/// A live endpoint's +1 in the semaphore set, taken back on drop by the
/// process that took it (a child that inherited it through `fork` does not
/// touch the count: the kernel does not copy `SEM_UNDO` adjustments).
#[derive(Debug)]
struct Registration {
    inner: Arc<Inner>,
    num: u16,
    /// [`sys::fork_generation`] when registered.
    generation: u64,
}

impl Registration {
    /// Whether this process made the registration (not a child that
    /// inherited it).
    fn owned_here(&self) -> bool {
        !self.forked()
    }

    /// Whether this process is a child forked after the registration: a
    /// relaxed load, cheap enough for every operation.
    #[inline]
    fn forked(&self) -> bool {
        // The handler was registered when this registration was made.
        self.generation != sys::forks_seen()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.owned_here() {
            return;
        }
        let op = [SemOp::wait(self.num, 1).undo().no_wait()];
        while let Err(IpcError::Interrupted) = self.inner.sems.op(&op) {}
        // Wake the peer so that it sees the disconnect now, not at its next
        // poll. The semop above is a full barrier; `claim` fences again.
        let (waiters, bell) = if self.num == SEM_SENDERS {
            (&self.inner.ring_state().wake.recv_waiters, SEM_DATA)
        } else {
            (&self.inner.ring_state().wake.send_waiters, SEM_SPACE)
        };
        wait::leave(waiters, &self.inner.bell(bell));
    }
}

/// One endpoint's message and byte counters in the header, which only it
/// writes (the SPSC producer's line, an MPSC sender's slot, the consumer's
/// line): it keeps the running totals privately and stores them, with no
/// atomic read-modify-write, every [`Tally::EVERY`] messages, whenever the
/// endpoint is about to wait, and when it is dropped. (Stored per message,
/// even in a 64-byte unit the peer does not read, they cost up to a quarter
/// of the zero-copy throughput: the peer's reads of the neighbouring unit
/// pull it away, so each store was another cache-line transfer.)
#[derive(Debug)]
struct Tally {
    messages: NonNull<AtomicU64>,
    bytes: NonNull<AtomicU64>,
    n: u64,
    b: u64,
}

// SAFETY: the pointers are into the channel's attachment, which the
// endpoint holding the tally keeps mapped (through its Registration's Arc),
// and are only used through atomics.
unsafe impl Send for Tally {}

impl Tally {
    /// Continues the totals left by earlier holders of this side or slot.
    /// The caller keeps the attachment holding both counters mapped for as
    /// long as the tally is used.
    fn new(messages: &AtomicU64, bytes: &AtomicU64) -> Tally {
        Tally {
            // Relaxed: statistics; an earlier holder's last stores are
            // ordered before ours by the registration's semop or the slot's
            // Acquire CAS.
            n: messages.load(Ordering::Relaxed),
            b: bytes.load(Ordering::Relaxed),
            messages: NonNull::from(messages),
            bytes: NonNull::from(bytes),
        }
    }

    /// Messages between two stores of the totals on the fast path.
    const EVERY: u64 = 64;

    #[inline]
    fn add(&mut self, len: usize) {
        self.n = self.n.wrapping_add(1);
        self.b = self.b.wrapping_add(len as u64);
        if self.n.is_multiple_of(Self::EVERY) {
            self.store();
        }
    }

    /// Stores the running totals.
    fn store(&self) {
        // SAFETY: see `new`: the counters stay mapped while the endpoint
        // lives.
        let (m, b) = unsafe { (self.messages.as_ref(), self.bytes.as_ref()) };
        // Relaxed: statistics, read by `Channel::inspect` and nobody else.
        m.store(self.n, Ordering::Relaxed);
        b.store(self.b, Ordering::Relaxed);
    }
}

/// The producing half of a ring, of either flavor.
#[derive(Debug)]
enum Prod {
    Spsc(spsc::Producer),
    Mpsc(mpsc::Producer),
}

impl Prod {
    #[inline]
    fn view(&self) -> &RingView {
        match self {
            Prod::Spsc(p) => p.view(),
            Prod::Mpsc(p) => p.view(),
        }
    }

    #[inline]
    fn try_reserve(&mut self, len: usize) -> Result<Reservation, ReserveError> {
        match self {
            Prod::Spsc(p) => p.try_reserve(len),
            Prod::Mpsc(p) => p.try_reserve(len),
        }
    }

    #[inline]
    fn commit(&mut self, r: Reservation) {
        match self {
            Prod::Spsc(p) => p.commit(r),
            Prod::Mpsc(p) => p.commit(r),
        }
    }

    /// Gives up a reservation. SPSC: nothing to do (the space is simply
    /// reserved again); MPSC: the record becomes padding.
    #[inline]
    fn abort(&mut self, r: Reservation) {
        match self {
            Prod::Spsc(_) => {}
            Prod::Mpsc(p) => p.abort(r),
        }
    }

    fn has_space(&mut self, len: usize) -> Result<bool, Corrupted> {
        match self {
            Prod::Spsc(p) => p.has_space(len),
            Prod::Mpsc(p) => p.has_space(len),
        }
    }

    #[inline]
    fn take_wakeups(&mut self) -> u32 {
        match self {
            Prod::Spsc(p) => p.take_wakeups(),
            Prod::Mpsc(p) => p.take_wakeups(),
        }
    }

    /// See [`crate::ring::wake::claim_with`]: only when this process is
    /// registered for `membarrier` (every sleeper of this crate issues the
    /// barrier).
    fn set_light_fence(&mut self, light: bool) {
        match self {
            Prod::Spsc(p) => p.set_light_fence(light),
            Prod::Mpsc(p) => p.set_light_fence(light),
        }
    }
}

/// The sending end of a channel. `Send`, not `Sync`: it owns the
/// producer's private position and cache. In an MPSC channel, every thread
/// or process that sends has its own `Sender` (see [`Sender::try_clone`]).
///
/// Not usable across `fork()`: a child that inherits a `Sender` is not a
/// registered sender (the kernel does not copy `SEM_UNDO` adjustments), so
/// it must call [`Channel::sender`] itself: the inherited one answers every
/// operation with `Forked` ([`SendError::Forked`], …). Dropping an
/// inherited `Sender` in the child leaves the liveness count alone.
#[derive(Debug)]
pub struct Sender {
    reg: Registration,
    producer: Prod,
    tally: Tally,
    spin_limit: u32,
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
        self.tally.store();
        if let Prod::Mpsc(p) = &self.producer {
            mpsc::free_slot(p.view(), p.slot());
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
    /// A new sender on the same channel (MPSC), with its own registration
    /// and sender slot, and this one's spin limit: what [`Channel::sender`]
    /// returns. SPSC: [`OpenError::Busy`], the channel allows one sender.
    pub fn try_clone(&self) -> Result<Sender, OpenError> {
        let channel = Channel {
            inner: self.reg.inner.clone(),
        };
        let mut tx = channel.sender()?;
        tx.spin_limit = self.spin_limit;
        Ok(tx)
    }

    /// The largest message this channel takes.
    pub fn max_message(&self) -> usize {
        self.reg.inner.layout.max_message
    }

    /// Sets how many backoff steps a blocked send spins before sleeping
    /// (see [`crate::wait::Spinner`]; 0 sleeps at once, `u32::MAX` never sleeps).
    pub fn set_spin_limit(&mut self, steps: u32) {
        self.spin_limit = steps;
    }

    #[inline]
    fn flush(&mut self) {
        let n = self.producer.take_wakeups();
        if n > 0 {
            let _ = self.reg.inner.bell(SEM_DATA).ring(n);
        }
    }

    fn receiver_gone(inner: &Inner) -> bool {
        // Acquire: pairs with the Release increment in Channel::receiver.
        let connects = inner
            .ring_state()
            .wake
            .receiver_connects
            .load(Ordering::Acquire);
        match inner.alive(SEM_RECEIVERS) {
            None => true,
            Some(n) => n == 0 && connects > 0,
        }
    }

    fn reserve_inner(
        &mut self,
        len: usize,
        block: bool,
        deadline: Option<Instant>,
    ) -> Result<Reservation, WaitError> {
        if self.reg.forked() {
            return Err(WaitError::Forked);
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
        let inner = self.reg.inner.clone();
        self.tally.store();
        // Relaxed: a statistic (the slow path: the ring is full).
        inner
            .ring_state()
            .wake
            .full_events
            .fetch_add(1, Ordering::Relaxed);
        if !block {
            return Err(if Self::receiver_gone(&inner) {
                WaitError::Disconnected
            } else {
                WaitError::Full
            });
        }
        let producer = Cell::new(Some(&mut self.producer));
        let with = |f: &mut dyn FnMut(&mut Prod) -> Result<Option<Reservation>, WaitError>| {
            let p = producer.take().expect("producer in use");
            let r = f(p);
            let bell_n = p.take_wakeups();
            producer.set(Some(p));
            if bell_n > 0 {
                let _ = inner.bell(SEM_DATA).ring(bell_n);
            }
            r
        };
        wait::block_on(
            &inner.ring_state().wake.send_waiters,
            &inner.bell(SEM_SPACE),
            self.spin_limit,
            deadline,
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
            || Self::receiver_gone(&inner),
        )
    }

    fn send_inner(
        &mut self,
        msg: &[u8],
        block: bool,
        deadline: Option<Instant>,
    ) -> Result<(), WaitError> {
        let r = self.reserve_inner(msg.len(), block, deadline)?;
        self.producer.view().region().write(r.data_offset, msg);
        // Counted before the publish: see Tally.
        self.tally.add(r.len);
        self.producer.commit(r);
        self.flush();
        Ok(())
    }

    /// Sends `msg`, waiting while the channel is full.
    ///
    /// Returns [`SendError::Disconnected`] when the receiver that had
    /// connected is gone (a sender notices that on its slow path: at the
    /// latest when the ring is full; messages already in the ring stay for
    /// a receiver that opens the channel again). Before any receiver has
    /// ever connected, a full channel simply waits, like a pipe's writer.
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.send_inner(msg, true, None).map_err(SendError::from)
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
            .reserve_inner(len, true, None)
            .map_err(SendError::from)?;
        self.flush();
        Ok(Grant { tx: self, res })
    }

    /// Test hook, not part of the API: in an MPSC channel, claims space
    /// for a `len`-byte message and stops after `stage`, as a sender killed
    /// there would leave it; the caller is expected to die next. Returns
    /// false (and claims nothing) for SPSC, a full ring or a bad length.
    #[doc(hidden)]
    pub fn claim_and_stop(&mut self, len: usize, stage: mpsc::Stage) -> bool {
        match &mut self.producer {
            Prod::Spsc(_) => false,
            Prod::Mpsc(p) => p.try_reserve_until(len, stage).is_ok(),
        }
    }

    /// Reserves `len` bytes if there is space now.
    pub fn try_reserve(&mut self, len: usize) -> Result<Grant<'_>, TrySendError> {
        let res = self
            .reserve_inner(len, false, None)
            .map_err(TrySendError::from)?;
        self.flush();
        Ok(Grant { tx: self, res })
    }
}

/// Space reserved in the ring by [`Sender::reserve`]; derefs to the
/// message's bytes (initially whatever the ring held there). Dropped
/// without [`Grant::commit`], it publishes nothing (MPSC: it becomes
/// padding that the receiver skips).
#[derive(Debug)]
pub struct Grant<'a> {
    tx: &'a mut Sender,
    res: Reservation,
}

impl Grant<'_> {
    /// Publishes the message.
    pub fn commit(self) {
        let mut me = ManuallyDrop::new(self);
        let res = me.res;
        me.tx.tally.add(res.len);
        me.tx.producer.commit(res);
        me.tx.flush();
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        self.tx.producer.abort(self.res);
        self.tx.flush();
    }
}

impl Deref for Grant<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
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

/// The consuming half of a ring, of either flavor.
#[derive(Debug)]
enum Cons {
    Spsc(spsc::Consumer),
    Mpsc(mpsc::Consumer),
}

impl Cons {
    /// As [`Prod::set_light_fence`].
    fn set_light_fence(&mut self, light: bool) {
        match self {
            Cons::Spsc(c) => c.set_light_fence(light),
            Cons::Mpsc(c) => c.set_light_fence(light),
        }
    }
}

/// A receiver's ring state: the consumer, and for MPSC how long the record
/// at the read position has blocked it.
#[derive(Debug)]
struct ReadSide {
    consumer: Cons,
    /// The read position blocked by a claim, and since when (MPSC).
    stuck: Option<(u64, Instant)>,
    recovery_timeout: Duration,
    /// Abandoned claims turned into padding so far.
    recovered: u64,
    shm_id: i32,
    /// The header's received counters.
    tally: Tally,
}

/// Rounds of recovery one look may make while senders live: each turns a
/// dead claim into padding (or finds the header changed); the next look
/// goes on. Once every sender is gone, a look goes on until the ring holds
/// no claim (at most one round per 8 bytes of the ring, and a few more).
const RECOVERY_ROUNDS: u64 = 64;

impl ReadSide {
    #[inline]
    fn view(&self) -> &RingView {
        match &self.consumer {
            Cons::Spsc(c) => c.view(),
            Cons::Mpsc(c) => c.view(),
        }
    }

    #[inline]
    fn consume(&mut self, r: Record) {
        match &mut self.consumer {
            Cons::Spsc(c) => c.consume(r),
            Cons::Mpsc(c) => c.consume(r),
        }
    }

    /// Reads `r` without releasing it (a batch).
    #[inline]
    fn advance(&mut self, r: Record) {
        match &mut self.consumer {
            Cons::Spsc(c) => c.advance(r),
            Cons::Mpsc(c) => c.advance(r),
        }
    }

    /// Releases everything read so far.
    #[inline]
    fn release(&mut self) {
        match &mut self.consumer {
            Cons::Spsc(c) => c.release(),
            Cons::Mpsc(c) => c.release(),
        }
    }

    #[inline]
    fn take_wakeups(&mut self) -> u32 {
        match &mut self.consumer {
            Cons::Spsc(c) => c.take_wakeups(),
            Cons::Mpsc(c) => c.take_wakeups(),
        }
    }

    fn has_data(&mut self) -> Result<bool, Corrupted> {
        match &mut self.consumer {
            Cons::Spsc(c) => c.has_data(),
            Cons::Mpsc(c) => c.has_data(),
        }
    }

    /// How long a blocked MPSC receiver sleeps between looks.
    fn poll(&self) -> Duration {
        match self.consumer {
            Cons::Spsc(_) => wait::POLL_INTERVAL,
            Cons::Mpsc(_) => {
                (self.recovery_timeout / 4).clamp(Duration::from_millis(1), wait::POLL_INTERVAL)
            }
        }
    }

    /// One look at the ring. MPSC: when a claim has blocked the read
    /// position for the recovery timeout (or at once with `force`, once
    /// every sender is gone), and its claimant is dead, the claim becomes
    /// padding and the look goes on.
    #[inline]
    fn attempt(&mut self, force: bool) -> Result<Option<Record>, Corrupted> {
        let c = match &mut self.consumer {
            Cons::Spsc(c) => return c.try_peek(),
            Cons::Mpsc(c) => c,
        };
        let rounds = if force {
            c.view().capacity() / 8 + RECOVERY_ROUNDS
        } else {
            RECOVERY_ROUNDS
        };
        // After one recovery the receiver has waited its timeout already:
        // dead claims right behind it go at once (liveness is checked for
        // each all the same).
        let mut hurry = force;
        for _ in 0..rounds {
            if let Some(r) = c.try_peek()? {
                self.stuck = None;
                return Ok(Some(r));
            }
            if c.blocked() == mpsc::Blocked::Empty {
                self.stuck = None;
                return Ok(None);
            }
            let pos = c.position();
            let now = Instant::now();
            let since = match self.stuck {
                Some((p, t)) if p == pos => t,
                _ => {
                    self.stuck = Some((pos, now));
                    now
                }
            };
            if !hurry && now.saturating_duration_since(since) < self.recovery_timeout {
                return Ok(None);
            }
            let shm_id = self.shm_id;
            let mut alive = |pid: u32| sys::process_attached(pid as i32, shm_id);
            match c.try_recover(&mut alive)? {
                mpsc::Recovery::Recovered { .. } => {
                    self.recovered += 1;
                    self.stuck = None;
                    hurry = true;
                }
                mpsc::Recovery::Retry => {}
                mpsc::Recovery::Alive(_) => {
                    // A live, slow sender: ask again a timeout later.
                    self.stuck = Some((pos, now));
                    return Ok(None);
                }
                mpsc::Recovery::Empty => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// The receiving end of a channel. `Send`, not `Sync`: it owns the
/// consumer's private position and cache.
///
/// Not usable across `fork()`, like [`Sender`].
#[derive(Debug)]
pub struct Receiver {
    reg: Registration,
    side: ReadSide,
    spin_limit: u32,
    _not_sync: PhantomData<Cell<()>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Before the registration's drop: the counts are stored before a
        // new receiver can register and continue them.
        if self.reg.owned_here() {
            self.side.tally.store();
        }
    }
}

impl Receiver {
    /// Sets how many backoff steps a blocked receive spins before sleeping
    /// (see [`crate::wait::Spinner`]; 0 sleeps at once, `u32::MAX` never sleeps).
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
        self.side.recovery_timeout = timeout;
    }

    /// MPSC: how many claims of dead senders this receiver has skipped.
    pub fn recovered_claims(&self) -> u64 {
        self.side.recovered
    }

    #[inline]
    fn flush(&mut self) {
        let n = self.side.take_wakeups();
        if n > 0 {
            let _ = self.reg.inner.bell(SEM_SPACE).ring(n);
        }
    }

    fn senders_gone(inner: &Inner) -> bool {
        // Acquire: pairs with the Release increment in Channel::sender.
        let connects = inner
            .ring_state()
            .wake
            .sender_connects
            .load(Ordering::Acquire);
        match inner.alive(SEM_SENDERS) {
            None => true,
            Some(n) => n == 0 && connects > 0,
        }
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
        self.side.tally.store();
        let inner = self.reg.inner.clone();
        if !block {
            if Self::senders_gone(&inner) {
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
            let n = s.take_wakeups();
            side.set(Some(s));
            if n > 0 {
                let _ = inner.bell(SEM_SPACE).ring(n);
            }
            r
        };
        let r = wait::block_on_polling(
            &inner.ring_state().wake.recv_waiters,
            &inner.bell(SEM_DATA),
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
            || Self::senders_gone(&inner),
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

    /// Receives the next message, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message<'_>, RecvTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        let r = self
            .next_inner(true, deadline)
            .map_err(RecvTimeoutError::from)?;
        Ok(Message { rx: self, rec: r })
    }

    /// Messages as owned vectors, blocking, until disconnected (or an error).
    pub fn iter(&mut self) -> Iter<'_> {
        Iter { rx: self }
    }

    /// Messages as owned vectors, until none is waiting.
    pub fn try_iter(&mut self) -> TryIter<'_> {
        TryIter { rx: self }
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
        let mut r = self.next_inner(true, None).map_err(RecvError::from)?;
        let mut n = 0;
        loop {
            // SAFETY: the record is committed and not released (we release
            // at the end), so no producer writes it while `f` reads it.
            let msg = unsafe { self.side.view().region().slice(r.data_offset, r.len) };
            f(msg);
            self.side.tally.add(r.len);
            self.side.advance(r);
            n += 1;
            if n >= max {
                break;
            }
            match self.side.attempt(false) {
                Ok(Some(next)) => r = next,
                Ok(None) | Err(_) => break,
            }
        }
        self.side.release();
        self.flush();
        Ok(n)
    }
}

/// A received message, borrowed from the ring. Derefs to its bytes; its
/// space is released when it is dropped. If this process dies while holding
/// it, the next receiver gets it again (at-least-once for the one in hand).
#[derive(Debug)]
pub struct Message<'a> {
    rx: &'a mut Receiver,
    rec: Record,
}

impl Deref for Message<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
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
        self.rx.side.tally.add(self.rec.len);
        self.rx.side.consume(self.rec);
        self.rx.flush();
    }
}

/// Blocking iterator of owned messages; see [`Receiver::iter`].
#[derive(Debug)]
pub struct Iter<'a> {
    rx: &'a mut Receiver,
}

impl Iterator for Iter<'_> {
    type Item = Vec<u8>;
    fn next(&mut self) -> Option<Vec<u8>> {
        self.rx.recv().ok().map(|m| m.to_vec())
    }
}

/// Non-blocking iterator of owned messages; see [`Receiver::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a> {
    rx: &'a mut Receiver,
}

impl Iterator for TryIter<'_> {
    type Item = Vec<u8>;
    fn next(&mut self) -> Option<Vec<u8>> {
        self.rx.try_recv().ok().map(|m| m.to_vec())
    }
}
