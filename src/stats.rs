//! Looking at channels without joining them: one channel's header,
//! positions, counters and endpoints ([`Channel::inspect`],
//! [`Channel::stats`]), every channel on the machine ([`Channel::list`]),
//! and the removal of what nobody uses ([`Listing::is_garbage`],
//! [`Listing::remove`]). Damaged channels (telling them, removing whatever
//! is at a key) are `removal.rs`'s.
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
use crate::layout::{Layout, MAGIC, NSEMS, SEM_RECEIVERS, SEM_SENDERS, STATE_READY};
use crate::segment::{check_key_path, remove_objects, Mapped, Mapping};
use crate::sync::Ordering;
use crate::sys::{self, Key, SemSet, Shm};

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
    /// The producers' position (MPSC: end of the claimed records; SPSC: end
    /// of the published records, stored just after each publish).
    pub tail: u64,
    /// The header's counters.
    pub counters: Counters,
    /// Live registered senders (`None`: the semaphore set was not found).
    pub senders: Option<u32>,
    /// Live registered receivers (0 or 1; broadcast: subscribers).
    pub receivers: Option<u32>,
    /// Senders that ever connected.
    pub sender_connects: u64,
    /// Receivers that ever connected.
    pub receiver_connects: u64,
    /// Receivers announced as asleep.
    pub recv_waiters: u32,
    /// Senders announced as asleep (MPSC: the sender slots that say so,
    /// plus any counted in `send_waiters`).
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
    /// Broadcast: each subscriber slot with an owner (empty for the other
    /// flavors).
    pub subscribers: Vec<SubscriberStats>,
}

/// One broadcast subscriber as [`Channel::inspect`] found it (a snapshot:
/// the position is stored at each release, the counters every 64
/// messages and when the subscriber waits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberStats {
    /// The slot's index in the subscriber table.
    pub slot: usize,
    /// The owning process.
    pub pid: u32,
    /// Whether that process still exists.
    pub alive: bool,
    /// Whether it has joined (a position, within a ring behind `tail` in
    /// Block mode).
    pub joined: bool,
    /// The start of the first record it has not released.
    pub position: u64,
    /// Bytes published past its position (in Overwrite mode more than the
    /// capacity when the publisher has lapped it: it has not read since).
    pub lag_bytes: u64,
    /// Messages published past its position (those of them that were
    /// written over are counted as missed when it reads next).
    pub lag_messages: u64,
    /// Messages it received (this slot's owners, in all).
    pub received_messages: u64,
    /// Times it was told it lagged (`Overflow::Overwrite`).
    pub lagged: u64,
    /// Messages it missed, in all.
    pub missed: u64,
}

impl Stats {
    /// Bytes of the ring in use (records not yet released, and claims).
    /// SPSC: the shared `tail` is stored just after each publish, so a
    /// snapshot can find the consumer a record ahead of it: that counts as
    /// empty (as do positions further apart than the capacity, which a
    /// damaged header has).
    pub fn used_bytes(&self) -> u64 {
        let used = self.tail.wrapping_sub(self.head);
        if used > self.layout.capacity as u64 {
            0
        } else {
            used
        }
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
    let broadcast = layout.flavor == crate::layout::Flavor::Broadcast;
    let tail = rs.producer.tail.load(Ordering::Relaxed);
    let subscribers = if broadcast {
        subscribers(mapped, tail)
    } else {
        Vec::new()
    };
    // Sleepers in slots: MPSC senders, broadcast subscribers.
    let asleep_in_slots = (0..layout.sender_slots)
        .filter(|&i| {
            let flag = if broadcast {
                &mapped.subscriber_slot(i).sleeping
            } else {
                &mapped.sender_slot(i).sleeping
            };
            flag.load(Ordering::Relaxed) != 0
        })
        .count() as u32;
    let (slot_senders, slot_receivers) = if broadcast {
        (0, asleep_in_slots)
    } else {
        (asleep_in_slots, 0)
    };
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
        head: match subscribers
            .iter()
            .filter(|s| s.joined)
            .max_by_key(|s| s.lag_bytes)
        {
            Some(slowest) => slowest.position,
            None if broadcast => tail,
            None => rs.consumer.head.load(Ordering::Relaxed),
        },
        tail,
        counters: Counters::read(mapped),
        senders: value(SEM_SENDERS),
        receivers: value(SEM_RECEIVERS),
        sender_connects: rs.wake.sender_connects.load(Ordering::Relaxed),
        receiver_connects: rs.wake.receiver_connects.load(Ordering::Relaxed),
        recv_waiters: rs
            .wake
            .recv_waiters
            .load(Ordering::Relaxed)
            .saturating_add(slot_receivers),
        send_waiters: rs
            .wake
            .send_waiters
            .load(Ordering::Relaxed)
            .saturating_add(slot_senders),
        attached: st.nattch.saturating_sub(u64::from(temporary)),
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        creator_alive: sys::process_exists(layout.creator_pid as i32),
        subscribers,
    })
}

/// The owned slots of a broadcast channel's subscriber table.
fn subscribers(mapped: &Mapped, tail: u64) -> Vec<SubscriberStats> {
    let cap = mapped.layout().capacity as u64;
    let overwrite = mapped.layout().overflow == crate::layout::Overflow::Overwrite;
    // Relaxed: a snapshot (the published count beside tail is under a
    // seqlock; one publish apart is good enough for display).
    let next_seq = mapped
        .ring_state()
        .producer
        .next_seq
        .load(Ordering::Relaxed);
    (0..mapped.layout().sender_slots)
        .filter_map(|slot| {
            let s = mapped.subscriber_slot(slot);
            let load = |a: &crate::sync::AtomicU64| a.load(Ordering::Relaxed);
            let pid = load(&s.owner);
            if pid == 0 {
                return None;
            }
            let position = load(&s.position);
            let lag = tail.wrapping_sub(position);
            let joined =
                crate::ring::broadcast::counts_as_joined(pid, position, tail, cap, overwrite);
            Some(SubscriberStats {
                slot,
                pid: pid as u32,
                alive: sys::process_exists(pid as i32),
                joined,
                position,
                lag_bytes: if joined { lag } else { 0 },
                lag_messages: if joined {
                    next_seq.saturating_sub(load(&s.seq))
                } else {
                    0
                },
                received_messages: load(&s.received_messages),
                lagged: load(&s.lagged),
                missed: load(&s.missed),
            })
        })
        .collect()
}

/// Inspects the segment `shm_id` (found at `key`) without registering.
pub(crate) fn inspect_segment(key: Key, shm_id: i32) -> Result<Stats, OpenError> {
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
