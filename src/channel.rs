//! [`Channel`]: creating, opening and removing a channel's two System V
//! objects, and making its endpoints.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{open_err, OpenError};
use crate::layout::{Flavor, Layout, MAGIC, NSEMS, STATE_READY};
use crate::options::Options;
use crate::receiver::Receiver;
use crate::ring::broadcast::Start;
use crate::segment::{check_key_path, remove_objects, Mapped, Mapping, Segment};
use crate::sender::Sender;
use crate::sync::Ordering;
use crate::sys::{self, IpcError, Key, SemSet, Shm};

/// How long `open` waits for a creator to finish initialising.
const OPEN_WAIT: Duration = Duration::from_secs(1);
/// How many times `open` looks the two objects up again when it found
/// them mismatched by a removal in between.
const OPEN_TRIES: usize = 8;

/// A channel: a shared-memory segment with a ring, and a semaphore set,
/// under one System V key. `Send + Sync`; clones share one attachment.
///
/// Who removes what: the IPC objects live until [`Channel::remove`],
/// [`Channel::remove_key`], [`Channel::remove_key_forced`] (whatever is
/// at a key, a damaged channel's objects among them), `shmchan rm`,
/// `ipcrm`, or the drop of the creating handle when it was created with
/// [`Options::remove_on_drop`]. Endpoints never remove anything.
#[derive(Debug, Clone)]
pub struct Channel {
    seg: Arc<Segment>,
}

impl Channel {
    /// Creates a channel at `key`, exclusively: [`OpenError::AlreadyExists`]
    /// if a segment or semaphore set is already there.
    ///
    /// The objects are created owner-only, initialised, marked ready, and
    /// only then given `options.mode`.
    pub fn create(key: Key, options: Options) -> Result<Channel, OpenError> {
        let mut layout = options.layout()?;
        // The semaphore set first: an opener that finds the segment then
        // always finds the set too, so a segment without one is foreign.
        let sems = SemSet::create(key, NSEMS, 0o600).map_err(|e| open_err("semget", e))?;
        struct Undo(Option<SemSet>, Option<Shm>);
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
        let shm = Shm::create(key, layout.segment_len, 0o600).map_err(|e| open_err("shmget", e))?;
        undo.1 = Some(shm);
        let map = Mapping::new(shm.attach().map_err(|e| open_err("shmat", e))?)?;
        if map.len() < layout.segment_len {
            return Err(OpenError::Io(io::Error::other(
                "segment smaller than requested",
            )));
        }
        layout.creator_pid = sys::current_pid() as u32;
        layout.creator_uid = sys::current_uid();
        layout.sem_id = sems.id();
        layout.key_path = key.path_identity().unwrap_or((0, 0));
        layout.pid_ns = sys::pid_namespace();
        layout.created_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        map.write_line0(&layout.encode());
        for num in 0..NSEMS {
            sems.set_value(num, 0)
                .map_err(|e| open_err("semctl(SETVAL)", e))?;
        }
        if let Some(stall) = options.stall() {
            std::thread::sleep(stall);
        }
        // Release: pairs with the Acquire load of the state word in `open`;
        // the header fields and semaphore values above are set before it.
        map.state_word().store(STATE_READY, Ordering::Release);
        let mode = options.mode_bits();
        sems.set_mode(mode)
            .map_err(|e| open_err("semctl(IPC_SET)", e))?;
        shm.set_mode(mode)
            .map_err(|e| open_err("shmctl(IPC_SET)", e))?;
        let mapped = Mapped::new(map, layout)?;
        undo.0 = None;
        undo.1 = None;
        Ok(Channel {
            seg: Arc::new(Segment {
                key,
                shm,
                sems,
                mapped,
                remove_on_drop_pid: if options.removes_on_drop() {
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
        // The segment and the set are looked up one after the other: a
        // channel removed and created again in between gives a pair that
        // does not belong together. Look again, a few times.
        for _ in 0..OPEN_TRIES {
            if let Some(ch) = Channel::open_pair(key)? {
                return Ok(ch);
            }
        }
        Err(OpenError::NotFound)
    }

    /// One attempt of `open`: `None` when the segment and the set found
    /// at `key` are not one channel's because the channel was removed (and
    /// perhaps created again) meanwhile.
    fn open_pair(key: Key) -> Result<Option<Channel>, OpenError> {
        // An object gone between two calls (IpcError::is_gone): the channel
        // was removed meanwhile; `open` looks again.
        let shm = Shm::open(key).map_err(|e| open_err("shmget", e))?;
        let stat = match shm.stat() {
            Ok(s) => s,
            Err(e) if e.is_gone() => return Ok(None),
            Err(e) => return Err(open_err("shmctl(IPC_STAT)", e)),
        };
        if stat.size < crate::layout::HEADER_SIZE {
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
            Err(e) if e.is_gone() => return Ok(None),
            Err(e) => return Err(open_err("semctl(IPC_STAT)", e)),
        }
        let map = match shm.attach() {
            Ok(att) => Mapping::new(att)?,
            Err(e) if e.is_gone() => return Ok(None),
            Err(e) => return Err(open_err("shmat", e)),
        };
        let deadline = Instant::now() + OPEN_WAIT;
        // Acquire: pairs with the Release store of the state word in `create`.
        while map.state_word().load(Ordering::Acquire) != STATE_READY {
            let magic = map.magic();
            if magic != 0 && magic != MAGIC {
                return Err(OpenError::NotAChannel);
            }
            if Instant::now() >= deadline || !sys::process_exists(stat.creator_pid) {
                return Err(OpenError::NotInitialized);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let mapped = map.validate(stat.size)?;
        check_key_path(key, mapped.layout())?;
        // The creator records its set's id: the pair is one channel's only
        // if that is the set we found, and the segment is still the one at
        // the key (not marked for removal).
        let removed = shm.stat().map_or(true, |s| s.removed);
        if removed || mapped.layout().sem_id != sems.id() {
            let now = (
                Shm::open(key).ok().map(|s| s.id()),
                SemSet::open(key).ok().map(|s| s.id()),
            );
            if removed || now != (Some(shm.id()), Some(sems.id())) {
                return Ok(None);
            }
            // Both still at the key and not a pair: this set is not the
            // segment's (another program's, or a channel's set replaced).
            return Err(OpenError::NotAChannel);
        }
        Ok(Some(Channel {
            seg: Arc::new(Segment {
                key,
                shm,
                sems,
                mapped,
                remove_on_drop_pid: 0,
            }),
        }))
    }

    /// Removes the channel's segment and semaphore set. Endpoints asleep on
    /// it wake with `Disconnected`; the memory goes when the last process
    /// detaches.
    pub fn remove(&self) -> Result<(), OpenError> {
        self.seg.remove()
    }

    /// Removes the channel at `key` without opening it as an endpoint.
    /// Refuses ([`OpenError::NotAChannel`]) a segment that is not ours
    /// (which [`Channel::remove_key_forced`] removes); a channel whose
    /// creator died while initialising it is removed.
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
        let shm = match Shm::open(key) {
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
        let map = Mapping::attach(shm, true)?;
        let magic = map.magic();
        if magic == MAGIC {
            // Another path's channel at a colliding ftok key stays.
            let size = map.len();
            if let Ok(mapped) = map.validate(size) {
                check_key_path(key, mapped.layout())?;
            }
        } else {
            drop(map);
        }
        let ours = magic == MAGIC || (magic == 0 && sems.is_some());
        if !ours {
            return Err(OpenError::NotAChannel);
        }
        remove_objects(shm, sems)
    }

    /// The key the channel lives under.
    pub fn key(&self) -> Key {
        self.seg.key
    }

    /// The channel's validated geometry.
    pub fn layout(&self) -> Layout {
        *self.seg.layout()
    }

    /// Size of the data region in bytes.
    pub fn capacity(&self) -> usize {
        self.seg.layout().capacity
    }

    /// The largest message in bytes.
    pub fn max_message(&self) -> usize {
        self.seg.layout().max_message
    }

    /// SPSC, MPSC or broadcast.
    pub fn flavor(&self) -> Flavor {
        self.seg.layout().flavor
    }

    /// The shared memory segment's id (as `ipcs -m` shows it).
    pub fn shm_id(&self) -> i32 {
        self.seg.shm.id()
    }

    /// The semaphore set's id (as `ipcs -s` shows it).
    pub fn sem_id(&self) -> i32 {
        self.seg.sems.id()
    }

    /// The shared segment, for the statistics.
    pub(crate) fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    /// The sending end.
    ///
    /// SPSC and broadcast (the publisher): [`OpenError::Busy`] while
    /// another sender (in any process) is alive; a killed sender frees its
    /// place. MPSC: any number, up to the channel's sender slots
    /// ([`OpenError::TooManySenders`]); a killed sender's slot is reused
    /// once its last claim has been received.
    pub fn sender(&self) -> Result<Sender, OpenError> {
        Sender::new(&self.seg)
    }

    /// The receiving end. [`OpenError::Busy`] while another receiver (in
    /// any process) is alive; a killed receiver frees its place, and the
    /// next one continues from the first message not yet released.
    ///
    /// Broadcast: a new subscriber, starting with the next message
    /// published ([`Start::Newest`]; see [`Channel::receiver_at`]). Any
    /// number of them, in any processes, up to the channel's subscriber
    /// slots ([`OpenError::TooManySubscribers`]); a killed subscriber's
    /// slot is taken over by the next one to join (and, in
    /// [`crate::Overflow::Block`], released by a publisher it holds back
    /// once the recovery timeout has passed).
    pub fn receiver(&self) -> Result<Receiver, OpenError> {
        Receiver::new(&self.seg, Start::Newest)
    }

    /// Broadcast: a new subscriber starting at `start`: with the next
    /// message published ([`Start::Newest`]), or with the oldest message
    /// still in the ring ([`Start::Oldest`]: up to a ring of history, less
    /// an eighth). Other flavors: as [`Channel::receiver`] (their one
    /// receiver continues from the first message not yet released).
    ///
    /// ```no_run
    /// # fn f(ch: &shmchan::Channel) -> Result<(), shmchan::OpenError> {
    /// let mut late = ch.receiver_at(shmchan::Start::Oldest)?;
    /// # Ok(()) }
    /// ```
    pub fn receiver_at(&self, start: Start) -> Result<Receiver, OpenError> {
        Receiver::new(&self.seg, start)
    }
}
