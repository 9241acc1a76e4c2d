//! Damaged channels: the signs of a channel whose header was overwritten
//! ([`Listing::looks_damaged`]), and the removal of whatever segment and
//! semaphore set are at a key, channel or not ([`Channel::remove_key_forced`],
//! behind `shmchan rm --force`), which [`Channel::remove_key`] and
//! [`Listing::remove`] refuse.

use std::io;

use crate::channel::Channel;
use crate::error::{open_err, OpenError};
#[cfg(doc)]
use crate::layout::MAGIC;
use crate::layout::{data_offset_for, LINE, MAX_CAPACITY, MAX_SENDER_SLOTS, MIN_CAPACITY, NSEMS};
use crate::segment::Mapping;
use crate::stats::{inspect_segment, Found, Listing};
use crate::sys::{self, IpcError, Key, SemSet, Shm};

impl Listing {
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
}

impl Channel {
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
            Some((_, Err(e))) if e.is_gone() => None,
            Some((_, Err(e))) => return Err(open_err("semctl(IPC_STAT)", e)),
            None => None,
        };
        let mut failed = None;
        if let Some(seg) = segment {
            match Shm::from_id(seg.shm_id).remove() {
                Ok(()) => {}
                Err(e) if e.is_gone() => segment = None,
                Err(e) => failed = Some(open_err("shmctl(IPC_RMID)", e)),
            }
        }
        if let Some(s) = set {
            match SemSet::from_id(s.sem_id).remove() {
                Ok(()) => {}
                Err(e) if e.is_gone() => set = None,
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

/// What the segment `shm` at `key` is, before [`Channel::remove_key_forced`]
/// removes it; `None` if it went away meanwhile.
fn look_at_segment(key: Key, shm: Shm) -> Result<Option<RemovedSegment>, OpenError> {
    let st = match shm.stat() {
        Ok(st) => st,
        Err(e) if e.is_gone() => return Ok(None),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;

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
