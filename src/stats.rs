//! Looking at channels without joining them: one channel's header,
//! positions, counters and endpoints ([`Channel::inspect`],
//! [`Channel::stats`]), every channel on the machine ([`Channel::list`]),
//! the removal of what nobody uses ([`Listing::is_garbage`],
//! [`Listing::remove`]), the signs of a channel whose header was
//! overwritten ([`Listing::looks_damaged`]), and the removal of whatever
//! is at a key ([`Channel::remove_key_forced`]).
//!
//! Inspection attaches the segment read-only and never registers: it
//! changes nothing in the channel, and works on a channel whose endpoints
//! are busy or dead. Everything read is a snapshot of untrusted memory:
//! the header is validated as [`Channel::open`] does, and the counters are
//! shown as found.

use std::io;

use crate::channel::Channel;
use crate::counters::Counters;
use crate::error::{open_err, OpenError};
use crate::layout::{
    data_offset_for, Layout, LINE, MAGIC, MAX_CAPACITY, MAX_SENDER_SLOTS, MIN_CAPACITY, NSEMS,
    SEM_RECEIVERS, SEM_SENDERS, STATE_READY,
};
use crate::segment::{check_key_path, remove_objects, Mapped, Mapping};
use crate::sync::Ordering;
use crate::sys::{self, IpcError, Key, SemSet, Shm};

/// One channel as [`Channel::inspect`] found it.
#[derive(Debug, Clone)]
pub struct Stats {
    /// The key it lives under (0 for a private channel).
    pub key: Key,
    /// The segment's id.
    pub shm_id: i32,
    /// The semaphore set's id, when it was found.
    pub sem_id: Option<i32>,
    /// The validated header.
    pub layout: Layout,
    /// The consumer's position (start of the first unreleased record).
    pub head: u64,
    /// The producers' position (end of the claimed or committed records).
    pub tail: u64,
    /// The header's counters.
    pub counters: Counters,
    /// Live registered senders (`None`: the semaphore set was not found).
    pub senders: Option<u32>,
    /// Live registered receivers (0 or 1).
    pub receivers: Option<u32>,
    /// Senders that ever connected.
    pub sender_connects: u64,
    /// Receivers that ever connected.
    pub receiver_connects: u64,
    /// Receivers announced as asleep.
    pub recv_waiters: u32,
    /// Senders announced as asleep.
    pub send_waiters: u32,
    /// Processes attached to the segment (not counting an inspection's own
    /// temporary attachment).
    pub attached: u64,
    /// The segment's permission bits.
    pub mode: u32,
    /// The segment's owner.
    pub uid: u32,
    /// The segment's group.
    pub gid: u32,
    /// Whether the creating process still exists.
    pub creator_alive: bool,
}

impl Stats {
    /// Bytes of the ring in use (records not yet released, and claims).
    pub fn used_bytes(&self) -> u64 {
        self.tail
            .wrapping_sub(self.head)
            .min(self.layout.capacity as u64)
    }
}

/// What a System V segment turned out to be.
#[derive(Debug)]
pub enum Found {
    /// A shmchan channel.
    Channel(Box<Stats>),
    /// Ours, but its creator has not finished (or died) initialising it.
    Initializing,
    /// Another program's segment; never written to.
    Foreign,
    /// It could not be read (permission denied, a damaged header, …).
    Unreadable(OpenError),
}

/// One segment of the machine, as [`Channel::list`] found it.
#[derive(Debug)]
pub struct Listing {
    /// The segment's key.
    pub key: Key,
    /// The segment's id.
    pub shm_id: i32,
    /// Its size in bytes.
    pub size: usize,
    /// Processes attached (before the listing looked).
    pub attached: u64,
    /// The creating process.
    pub creator_pid: i32,
    /// The owner.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Creation (or last `IPC_SET`) time, seconds since the epoch.
    pub changed_at: i64,
    /// What it is.
    pub found: Found,
}

impl Listing {
    /// Whether the segment is a shmchan channel (ready, initialising, or
    /// one whose header is damaged but whose magic is ours).
    pub fn is_ours(&self) -> bool {
        matches!(
            &self.found,
            Found::Channel(_)
                | Found::Initializing
                | Found::Unreadable(OpenError::InvalidHeader(_))
                | Found::Unreadable(OpenError::IncompatibleVersion { .. })
        )
    }

    /// Whether `shmchan gc` removes it: ours, no process attached (asked
    /// again now, not as listed), and its creator gone.
    pub fn is_garbage(&self) -> bool {
        let attached_now = Shm::from_id(self.shm_id)
            .stat()
            .map_or(u64::MAX, |s| s.nattch);
        self.is_ours() && attached_now == 0 && !self.creator_alive()
    }

    /// Whether this foreign segment looks like a shmchan channel whose
    /// header was overwritten (its magic word, say): a set of [`NSEMS`]
    /// semaphores is at its key (asked now), and its size is one a
    /// channel's segment can have (a power-of-two capacity and the header
    /// with 0 to [`MAX_SENDER_SLOTS`] sender slots, in whole pages).
    ///
    /// Only ever true for [`Found::Foreign`]. A guess: another program's
    /// segment of such a size beside four semaphores looks the same. It
    /// changes nothing about [`Listing::is_ours`], [`Listing::is_garbage`]
    /// and [`Listing::remove`], which still refuse the segment; only
    /// [`Channel::remove_key_forced`] removes it.
    pub fn looks_damaged(&self) -> bool {
        matches!(self.found, Found::Foreign) && channel_shaped(self.key, self.size)
    }

    /// Whether a process with the creator's pid (`creator_pid`) exists,
    /// possibly another user's (a pid can be reused: true may be another
    /// program). False for a pid of 0 or less.
    pub fn creator_alive(&self) -> bool {
        sys::process_exists(self.creator_pid)
    }

    /// Removes the segment and its semaphore set, refusing a foreign
    /// segment ([`OpenError::NotAChannel`]). By key when it has one, else
    /// by id (the set by the id its header records, checked against the
    /// set's size and owner).
    pub fn remove(&self) -> Result<(), OpenError> {
        if !self.is_ours() {
            return Err(OpenError::NotAChannel);
        }
        if !self.key.is_private() {
            return Channel::remove_key(self.key);
        }
        let sems = match &self.found {
            Found::Channel(st) => st.sem_id.map(SemSet::from_id),
            _ => None,
        };
        remove_objects(Shm::from_id(self.shm_id), sems)
    }
}

/// What a segment looked like to [`Channel::remove_key_forced`] just
/// before it removed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// A shmchan channel ([`Found::Channel`]), or one of another format
    /// version, or another path's channel at a colliding `ftok` key.
    Channel,
    /// A channel its creator has not finished (or died) initialising
    /// ([`Found::Initializing`]).
    Initializing,
    /// A damaged channel: shmchan's magic with a header that does not
    /// validate, or another magic on a segment of a channel's shape
    /// ([`Listing::looks_damaged`]).
    Damaged,
    /// Another program's segment (or a channel damaged past recognition).
    Foreign,
    /// It could not be looked at (its mode does not let this user read
    /// it, say).
    Unreadable,
}

/// The segment [`Channel::remove_key_forced`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovedSegment {
    /// Its id.
    pub shm_id: i32,
    /// Its size in bytes.
    pub size: usize,
    /// Processes attached to it when it was removed (not counting the
    /// removal's own look): they keep the memory until they detach.
    pub attached: u64,
    /// What it looked like.
    pub kind: SegmentKind,
    /// Its first 8 bytes as a native-endian `u64` (shmchan's is
    /// [`MAGIC`]); `None` when it was not read (a segment smaller than a
    /// channel's header, or unreadable).
    pub magic: Option<u64>,
}

/// The semaphore set [`Channel::remove_key_forced`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovedSems {
    /// Its id.
    pub sem_id: i32,
    /// Its number of semaphores (a channel's has [`NSEMS`]).
    pub nsems: u64,
}

/// What [`Channel::remove_key_forced`] found at a key and removed: a
/// segment, a semaphore set, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForcedRemoval {
    /// The key.
    pub key: Key,
    /// The segment, if one was there.
    pub segment: Option<RemovedSegment>,
    /// The semaphore set, if one was there.
    pub sems: Option<RemovedSems>,
}

/// An object that went away between two calls (`EINVAL`, `EIDRM`):
/// removed meanwhile.
fn gone(e: IpcError) -> bool {
    matches!(e, IpcError::InvalidArgument | IpcError::Removed)
}

/// What the segment `shm` at `key` is, before [`Channel::remove_key_forced`]
/// removes it; `None` if it went away meanwhile.
fn look_at_segment(key: Key, shm: Shm) -> Result<Option<RemovedSegment>, OpenError> {
    let st = match shm.stat() {
        Ok(st) => st,
        Err(e) if gone(e) => return Ok(None),
        Err(e) => return Err(open_err("shmctl(IPC_STAT)", e)),
    };
    let kind = match inspect_segment(key, shm.id()) {
        Ok(_)
        | Err(OpenError::IncompatibleVersion { .. })
        | Err(OpenError::KeyCollision { .. }) => SegmentKind::Channel,
        Err(OpenError::NotInitialized) => SegmentKind::Initializing,
        Err(OpenError::InvalidHeader(_)) => SegmentKind::Damaged,
        Err(OpenError::NotAChannel) if channel_shaped(key, st.size) => SegmentKind::Damaged,
        Err(OpenError::NotAChannel) => SegmentKind::Foreign,
        Err(_) => SegmentKind::Unreadable,
    };
    // A segment smaller than a header is not mapped (Mapping refuses it).
    let magic = Mapping::attach(shm, true).ok().map(|m| m.magic());
    Ok(Some(RemovedSegment {
        shm_id: shm.id(),
        size: st.size,
        attached: st.nattch,
        kind,
        magic,
    }))
}

/// Whether `size` is the length of some channel's segment: the header
/// with `slots` sender slots (0 to [`MAX_SENDER_SLOTS`]; SPSC has 0) and a
/// power-of-two capacity in [`MIN_CAPACITY`]`..=`[`MAX_CAPACITY`], rounded
/// up to whole pages of `page` bytes (as `Layout::with_sender_slots` does).
fn channel_size(size: usize, page: usize) -> bool {
    if size == 0 || !size.is_multiple_of(page) {
        return false;
    }
    let (lo, hi) = (data_offset_for(0), MAX_SENDER_SLOTS);
    (MIN_CAPACITY.trailing_zeros()..=MAX_CAPACITY.trailing_zeros())
        .filter_map(|bit| size.checked_sub(1 << bit))
        .any(|rest| {
            // `size` is whole pages, so the header (data_offset_for(slots))
            // rounds up to it iff rest - page < header <= rest; headers are
            // lo + k * LINE for k in 0..=hi: the largest not above `rest`
            // decides.
            rest >= lo && lo + ((rest - lo) / LINE).min(hi) * LINE + page > rest
        })
}

/// Whether a segment of `size` bytes at `key` has a channel's shape: a
/// channel's size ([`channel_size`]) and a set of [`NSEMS`] semaphores at
/// the key.
fn channel_shaped(key: Key, size: usize) -> bool {
    !key.is_private()
        && channel_size(size, sys::page_size())
        && SemSet::open(key)
            .and_then(|s| s.stat())
            .is_ok_and(|st| st.nsems == u64::from(NSEMS))
}

/// The semaphore set of a channel at `key`, or (private key) the one its
/// header names, if it has the channel's shape (and, by id, the segment's
/// creator).
fn find_sems(key: Key, sem_id: i32, creator_uid: u32) -> Option<SemSet> {
    let sems = if key.is_private() {
        SemSet::from_id(sem_id)
    } else {
        SemSet::open(key).ok()?
    };
    match sems.stat() {
        Ok(st)
            if st.nsems == u64::from(NSEMS)
                && (!key.is_private() || st.creator_uid == creator_uid) =>
        {
            Some(sems)
        }
        _ => None,
    }
}

/// Reads the changing part of the header of a mapped, validated channel,
/// and the live counts of `sems`. `temporary`: the mapping was made only
/// to look, and is not counted in [`Stats::attached`].
fn read_stats(
    mapped: &Mapped,
    temporary: bool,
    key: Key,
    shm_id: i32,
    sems: Option<SemSet>,
) -> Result<Stats, OpenError> {
    let st = Shm::from_id(shm_id)
        .stat()
        .map_err(|e| open_err("shmctl(IPC_STAT)", e))?;
    let rs = mapped.ring_state();
    let layout = *mapped.layout();
    let value = |num: u16| {
        sems.and_then(|s| s.value(num).ok())
            .map(|v| v.max(0) as u32)
    };
    // Relaxed everywhere below: a snapshot for display, ordered with nothing.
    Ok(Stats {
        key,
        shm_id,
        sem_id: sems.map(|s| s.id()),
        layout,
        head: rs.consumer.head.load(Ordering::Relaxed),
        tail: rs.producer.tail.load(Ordering::Relaxed),
        counters: Counters::read(mapped),
        senders: value(SEM_SENDERS),
        receivers: value(SEM_RECEIVERS),
        sender_connects: rs.wake.sender_connects.load(Ordering::Relaxed),
        receiver_connects: rs.wake.receiver_connects.load(Ordering::Relaxed),
        recv_waiters: rs.wake.recv_waiters.load(Ordering::Relaxed),
        send_waiters: rs.wake.send_waiters.load(Ordering::Relaxed),
        attached: st.nattch.saturating_sub(u64::from(temporary)),
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        creator_alive: sys::process_exists(layout.creator_pid as i32),
    })
}

/// Inspects the segment `shm_id` (found at `key`) without registering.
fn inspect_segment(key: Key, shm_id: i32) -> Result<Stats, OpenError> {
    let shm = Shm::from_id(shm_id);
    let map = Mapping::attach(shm, true)?;
    let st = shm.stat().map_err(|e| open_err("shmctl(IPC_STAT)", e))?;
    // Acquire: pairs with the Release store of the state word in
    // Channel::create; the header is complete once it reads READY.
    let ready = map.state_word().load(Ordering::Acquire) == STATE_READY;
    let magic = map.magic();
    if magic != MAGIC {
        // A zeroed segment is ours (mid-creation) only with our semaphore
        // set at its key: the creator makes the set first.
        let half_made =
            magic == 0 && !key.is_private() && find_sems(key, 0, st.creator_uid).is_some();
        return Err(if half_made {
            OpenError::NotInitialized
        } else {
            OpenError::NotAChannel
        });
    }
    if !ready {
        return Err(OpenError::NotInitialized);
    }
    let size = map.len();
    let mapped = map.validate(size)?;
    check_key_path(key, mapped.layout())?;
    let sems = find_sems(key, mapped.layout().sem_id, st.creator_uid);
    read_stats(&mapped, true, key, shm_id, sems)
}

impl Channel {
    /// The channel at `key`, inspected without joining it: header,
    /// positions, counters, live endpoints. [`OpenError::NotFound`],
    /// [`OpenError::NotAChannel`] (a foreign segment, left untouched),
    /// [`OpenError::NotInitialized`], [`OpenError::PermissionDenied`],
    /// [`OpenError::InvalidHeader`] as for [`Channel::open`].
    pub fn inspect(key: Key) -> Result<Stats, OpenError> {
        let shm = Shm::open(key).map_err(|e| open_err("shmget", e))?;
        inspect_segment(key, shm.id())
    }

    /// This channel's statistics now (as [`Channel::inspect`]).
    pub fn stats(&self) -> Result<Stats, OpenError> {
        let sems = Some(SemSet::from_id(self.sem_id()));
        let seg = self.segment();
        read_stats(&seg.mapped, false, self.key(), self.shm_id(), sems)
    }

    /// Removes whatever segment and semaphore set are at `key`, channel or
    /// not, and says what they were: for a channel whose header was
    /// overwritten ([`Listing::looks_damaged`]), which [`Channel::remove_key`]
    /// refuses.
    ///
    /// **This removes another program's objects too**: a foreign segment
    /// and a semaphore set of any size at the key go, without a question.
    /// The segment goes even while processes are attached
    /// ([`RemovedSegment::attached`] says how many): its key is free at
    /// once, and its memory stays theirs until they detach. Nothing at
    /// another key is touched.
    ///
    /// Both objects are looked at first, then both removed (the set even
    /// when removing the segment failed). Errors: [`OpenError::NotFound`]
    /// when nothing is at the key (or it all went meanwhile);
    /// [`OpenError::PermissionDenied`] when this user may not look at or
    /// remove them (nothing is removed if it may not look); a private key
    /// (`IPC_PRIVATE`, which names no object) is refused with an
    /// [`OpenError::Io`] of kind `InvalidInput`, touching nothing (a
    /// private channel is removed by id: [`Listing::remove`]).
    ///
    /// ```no_run
    /// let gone = shmchan::Channel::remove_key_forced(shmchan::Key::raw(0x5eed))?;
    /// if let Some(seg) = gone.segment {
    ///     println!("segment {}: {:?}, {} attached", seg.shm_id, seg.kind, seg.attached);
    /// }
    /// # Ok::<(), shmchan::OpenError>(())
    /// ```
    pub fn remove_key_forced(key: Key) -> Result<ForcedRemoval, OpenError> {
        if key.is_private() {
            return Err(OpenError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "IPC_PRIVATE names no object to remove by key",
            )));
        }
        let shm = match Shm::open(key) {
            Ok(s) => Some(s),
            Err(IpcError::NotFound) => None,
            Err(e) => return Err(open_err("shmget", e)),
        };
        let sems = match SemSet::open(key) {
            Ok(s) => Some(s),
            Err(IpcError::NotFound) => None,
            Err(e) => return Err(open_err("semget", e)),
        };
        let mut segment = match shm {
            Some(shm) => look_at_segment(key, shm)?,
            None => None,
        };
        let mut set = match sems.map(|s| (s, s.stat())) {
            Some((s, Ok(st))) => Some(RemovedSems {
                sem_id: s.id(),
                nsems: st.nsems,
            }),
            Some((_, Err(e))) if gone(e) => None,
            Some((_, Err(e))) => return Err(open_err("semctl(IPC_STAT)", e)),
            None => None,
        };
        let mut failed = None;
        if let Some(seg) = segment {
            match Shm::from_id(seg.shm_id).remove() {
                Ok(()) => {}
                Err(e) if gone(e) => segment = None,
                Err(e) => failed = Some(open_err("shmctl(IPC_RMID)", e)),
            }
        }
        if let Some(s) = set {
            match SemSet::from_id(s.sem_id).remove() {
                Ok(()) => {}
                Err(e) if gone(e) => set = None,
                Err(e) => failed = failed.or(Some(open_err("semctl(IPC_RMID)", e))),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if segment.is_none() && set.is_none() {
            return Err(OpenError::NotFound);
        }
        Ok(ForcedRemoval {
            key,
            segment,
            sems: set,
        })
    }

    /// Every System V segment of the machine that this process can see
    /// (from `/proc/sysvipc/shm`), each inspected: shmchan channels with
    /// their statistics, and the others marked foreign.
    pub fn list() -> io::Result<Vec<Listing>> {
        let text = std::fs::read_to_string("/proc/sysvipc/shm")?;
        let mut out = Vec::new();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(key), Some(id)) = (
                f.first().and_then(|v| v.parse::<i64>().ok()),
                f.get(1).and_then(|v| v.parse::<i32>().ok()),
            ) else {
                continue;
            };
            let key = Key::raw(key as i32);
            let Ok(st) = Shm::from_id(id).stat() else {
                continue; // removed meanwhile, or not ours to see
            };
            let found = match inspect_segment(key, id) {
                Ok(s) => Found::Channel(Box::new(s)),
                Err(OpenError::NotInitialized) => Found::Initializing,
                Err(OpenError::NotAChannel) => Found::Foreign,
                Err(OpenError::NotFound) => continue,
                Err(e) => Found::Unreadable(e),
            };
            out.push(Listing {
                key,
                shm_id: id,
                size: st.size,
                attached: st.nattch,
                creator_pid: st.creator_pid,
                uid: st.uid,
                mode: st.mode,
                changed_at: st.change_time,
                found,
            });
        }
        out.sort_by_key(|l| l.shm_id);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every segment length a channel can have with a capacity up to
    /// `2^max_bit`, by trying every sender slot count.
    fn sizes_by_brute_force(max_bit: u32, page: usize) -> std::collections::HashSet<usize> {
        let mut all = std::collections::HashSet::new();
        for bit in MIN_CAPACITY.trailing_zeros()..=max_bit {
            for slots in 0..=MAX_SENDER_SLOTS {
                all.insert((data_offset_for(slots) + (1 << bit)).div_ceil(page) * page);
            }
        }
        all
    }

    #[test]
    fn channel_size_is_what_a_layout_can_be() {
        for page in [4096, 16384, 65536] {
            // Capacities up to 2^22 make every length below 2^22 + 512.
            let all = sizes_by_brute_force(22, page);
            for size in (0..=(1 << 22) + 512).step_by(page) {
                assert_eq!(
                    channel_size(size, page),
                    all.contains(&size),
                    "size {size}, page {page}"
                );
            }
            assert!(!channel_size(page + 1, page));
            assert!(!channel_size(5000, page));
        }
        let page = 4096;
        assert!(channel_size(page, page));
        assert!(!channel_size(3 << 20, page));
        assert!(channel_size(MAX_CAPACITY + page, page));
        assert!(channel_size(
            (data_offset_for(MAX_SENDER_SLOTS) + MAX_CAPACITY).div_ceil(page) * page,
            page
        ));
        assert!(!channel_size(MAX_CAPACITY + (1 << 20), page));
        assert!(!channel_size(2 * MAX_CAPACITY, page));
        // The real layouts, SPSC and MPSC.
        for cap in [64, 4096, 1 << 20, 1 << 30] {
            let l = Layout::new(crate::Flavor::Spsc, cap, None).unwrap();
            assert!(channel_size(l.segment_len, sys::page_size()), "{l:?}");
            for slots in [1, 64, MAX_SENDER_SLOTS] {
                let l = Layout::new(crate::Flavor::Mpsc, cap, None)
                    .unwrap()
                    .with_sender_slots(slots)
                    .unwrap();
                assert!(channel_size(l.segment_len, sys::page_size()), "{l:?}");
            }
        }
    }
}
