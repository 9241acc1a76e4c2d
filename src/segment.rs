//! A channel's segment as this process maps it, and the typed views of its
//! memory: the header's words, the ring state, the sender table, the
//! ring. This is the only place above `sys` and `sync` that turns the
//! mapping's address into references, so every `unsafe` of the channel
//! layer is here.
//!
//! Trust: the memory is shared with every process that may attach the
//! segment, so nothing read from it is trusted. Header words are read with
//! volatile loads into private copies (validated by `layout::validate`),
//! the changing state only through atomics, and the data region only
//! through the ring, which checks every position and length it reads.

use crate::error::{open_err, OpenError};
use crate::layout::lines::{RingState, SenderSlot, SubscriberSlot};
use crate::layout::{self, offset, HeaderError, Layout, HEADER_SIZE, LINE};
use crate::ring::RingView;
use crate::sync::AtomicU32;
use crate::sys::{self, Attachment, Key, SemSet, Shm};

/// A mapping of a segment that holds at least a header ([`HEADER_SIZE`]
/// bytes), page-aligned. Its geometry is not known yet: only the header's
/// fixed words can be looked at.
#[derive(Debug)]
pub(crate) struct Mapping {
    att: Attachment,
}

impl Mapping {
    /// `att`, if it holds a header; [`OpenError::NotAChannel`] if not.
    pub(crate) fn new(att: Attachment) -> Result<Mapping, OpenError> {
        if att.len() < HEADER_SIZE {
            return Err(OpenError::NotAChannel);
        }
        Ok(Mapping { att })
    }

    /// Maps segment `shm` (read-only with `read_only`), once its size is
    /// known to hold a header.
    pub(crate) fn attach(shm: Shm, read_only: bool) -> Result<Mapping, OpenError> {
        let stat = shm.stat().map_err(|e| open_err("shmctl(IPC_STAT)", e))?;
        if stat.size < HEADER_SIZE {
            return Err(OpenError::NotAChannel);
        }
        let att = if read_only {
            shm.attach_read_only()
        } else {
            shm.attach()
        };
        Mapping::new(att.map_err(|e| open_err("shmat", e))?)
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.att.len()
    }

    /// The `state` word, which the creator stores last (Release).
    pub(crate) fn state_word(&self) -> &AtomicU32 {
        // SAFETY: offset 64 is 4-aligned inside the page-aligned mapping,
        // which holds at least HEADER_SIZE bytes (checked in `new`) and
        // outlives the reference; any bit pattern is a valid u32, and all
        // access to the word is atomic.
        unsafe { AtomicU32::from_ptr(self.att.as_ptr().add(offset::STATE).cast::<u32>()) }
    }

    /// The `magic` word, read once.
    pub(crate) fn magic(&self) -> u64 {
        // SAFETY: offset 0 of a mapping at least HEADER_SIZE long,
        // page-aligned. Volatile: one read of memory others may write; any
        // bit pattern is a valid u64.
        unsafe { std::ptr::read_volatile(self.att.as_ptr().cast::<u64>()) }
    }

    /// Copies the header out of the segment, one volatile word at a time,
    /// so that validation works on bytes no peer can change underneath it.
    pub(crate) fn copy_header(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
            // SAFETY: word i of the first HEADER_SIZE bytes of the mapping,
            // which is at least that long (checked in `new`) and
            // page-aligned; volatile, as in `magic`.
            let w = unsafe { std::ptr::read_volatile(self.att.as_ptr().cast::<u64>().add(i)) };
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        out
    }

    /// Writes the header's fixed line (creation only: the segment is new,
    /// created owner-only, and nobody reads it before the state word says
    /// ready).
    pub(crate) fn write_line0(&self, line0: &[u8; LINE]) {
        assert!(!self.att.is_read_only(), "writing a read-only mapping");
        for (i, chunk) in line0.chunks_exact(8).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            // SAFETY: word i of line 0, inside the writable mapping (at
            // least HEADER_SIZE long, page-aligned). Volatile: a plain
            // store into memory other processes may map.
            unsafe {
                std::ptr::write_volatile(
                    self.att.as_ptr().cast::<u64>().add(i),
                    u64::from_ne_bytes(w),
                )
            };
        }
    }

    /// The changing lines of the header (all atomics).
    pub(crate) fn ring_state(&self) -> &RingState {
        // SAFETY: RingState is 384 bytes of atomics at RING_STATE (128),
        // inside the header of a mapping at least HEADER_SIZE long
        // (checked in `new`), 128-aligned; any bit pattern is valid, and
        // the reference lives no longer than the mapping. Through a
        // read-only mapping it is only loaded from (see `Mapped`).
        unsafe {
            &*self
                .att
                .as_ptr()
                .add(offset::RING_STATE)
                .cast::<RingState>()
        }
    }

    /// Validates a copy of the header against this mapping, as every
    /// opener does: the geometry the endpoints may then trust.
    pub(crate) fn validate(self, segment_len: usize) -> Result<Mapped, OpenError> {
        let layout = layout::validate(&self.copy_header(), segment_len).map_err(|e| match e {
            HeaderError::BadMagic { .. } => OpenError::NotAChannel,
            HeaderError::UnsupportedVersion { found, supported } => {
                OpenError::IncompatibleVersion { found, supported }
            }
            e => OpenError::InvalidHeader(e),
        })?;
        Mapped::new(self, layout)
    }
}

/// A mapping whose header was validated: its geometry (a private copy) and
/// the typed views it allows.
#[derive(Debug)]
pub(crate) struct Mapped {
    map: Mapping,
    layout: Layout,
}

impl Mapped {
    /// `map` with the geometry `layout` (from `layout::validate` of its
    /// header, or the creator's own); [`OpenError::NotAChannel`] if the
    /// geometry does not lie inside the mapping.
    pub(crate) fn new(map: Mapping, layout: Layout) -> Result<Mapped, OpenError> {
        let table_start = if layout.flavor == crate::layout::Flavor::Broadcast {
            offset::SUBSCRIBER_TABLE
        } else {
            offset::SENDER_TABLE
        };
        let table_end = table_start + layout.sender_slots * LINE;
        if map.len() < layout.segment_len
            || layout.data_offset.checked_add(layout.capacity) > Some(layout.segment_len)
            || table_end > layout.data_offset
        {
            return Err(OpenError::NotAChannel);
        }
        Ok(Mapped { map, layout })
    }

    /// The validated geometry.
    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The changing lines of the header.
    pub(crate) fn ring_state(&self) -> &RingState {
        self.map.ring_state()
    }

    /// Broadcast subscriber slot `i` (panics if `i` is not below the
    /// table's size, or on another flavor).
    pub(crate) fn subscriber_slot(&self, i: usize) -> &SubscriberSlot {
        assert!(
            self.layout.flavor == crate::layout::Flavor::Broadcast && i < self.layout.sender_slots,
            "subscriber slot {i}"
        );
        // SAFETY: slot i lies at SUBSCRIBER_TABLE + i * LINE, inside the
        // table that `new` checked to end before the data region, inside
        // the mapping; 128-aligned; atomics only, any bit pattern valid.
        unsafe {
            &*self
                .map
                .att
                .as_ptr()
                .add(offset::SUBSCRIBER_TABLE + i * LINE)
                .cast::<SubscriberSlot>()
        }
    }

    /// MPSC sender slot `i` (panics if `i` is not below the table's size).
    pub(crate) fn sender_slot(&self, i: usize) -> &SenderSlot {
        assert!(
            self.layout.flavor == crate::layout::Flavor::Mpsc && i < self.layout.sender_slots,
            "sender slot {i}"
        );
        // SAFETY: slot i lies at SENDER_TABLE + i * LINE, inside the table
        // that `new` checked to end before the data region, inside the
        // mapping; 128-aligned; atomics only, any bit pattern valid.
        unsafe {
            &*self
                .map
                .att
                .as_ptr()
                .add(offset::SENDER_TABLE + i * LINE)
                .cast::<SenderSlot>()
        }
    }

    /// The ring, for as long as `'a` (which the caller chooses).
    ///
    /// # Safety
    /// The caller keeps this mapping alive for `'a` (an endpoint holds the
    /// `Arc<Segment>` beside the ring endpoint made from the view).
    pub(crate) unsafe fn ring<'a>(&self) -> RingView<'a> {
        assert!(
            !self.map.att.is_read_only(),
            "a ring over a read-only mapping"
        );
        // SAFETY: the mapping is page-aligned, writable and at least
        // segment_len long, and the layout lies inside it (checked in
        // `new`); it stays mapped for 'a by the caller's contract.
        unsafe { RingView::in_segment(self.map.att.base(), &self.layout) }
    }
}

/// One channel as this process has it: the key, the segment and its
/// mapping, the semaphore set. Shared (`Arc`) by the [`crate::Channel`]
/// handles and every endpoint made from them, so the mapping outlives
/// them all.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) key: Key,
    pub(crate) shm: Shm,
    pub(crate) sems: SemSet,
    pub(crate) mapped: Mapped,
    /// Pid of the process whose `create` asked for removal on drop, or 0.
    pub(crate) remove_on_drop_pid: i32,
}

impl Segment {
    /// The validated geometry.
    pub(crate) fn layout(&self) -> &Layout {
        self.mapped.layout()
    }

    /// The changing lines of the header.
    pub(crate) fn ring_state(&self) -> &RingState {
        self.mapped.ring_state()
    }

    /// The live count of semaphore `num` (senders or receivers); `None`
    /// if the set is gone.
    pub(crate) fn alive(&self, num: u16) -> Option<i32> {
        self.sems.value(num).ok()
    }

    /// Removes the segment and the semaphore set (each tried, whatever
    /// the other did).
    pub(crate) fn remove(&self) -> Result<(), OpenError> {
        let a = self.shm.remove().map_err(|e| open_err("remove", e));
        let b = self.sems.remove().map_err(|e| open_err("remove", e));
        // Semaphore sleepers woke with EIDRM; MPSC senders asleep on their
        // slots' futexes are woken here, and see the set gone, and so are
        // the waiters of poll loops (a `Select`) on either side.
        self.wake_all_senders();
        let wake = &self.ring_state().wake;
        for bell in [&wake.recv_bell, &wake.send_bell] {
            // Relaxed: the swap decides who rings it; the waiter then sees
            // the removal in its own look.
            sys::ring_bell_socket(bell.swap(0, crate::sync::Ordering::Relaxed));
        }
        a.and(b)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.remove_on_drop_pid != 0 && self.remove_on_drop_pid == sys::current_pid() {
            let _ = self.remove();
        }
    }
}

/// Removes a channel's segment, then (if that worked) its semaphore set,
/// if known.
pub(crate) fn remove_objects(shm: Shm, sems: Option<SemSet>) -> Result<(), OpenError> {
    shm.remove().map_err(|e| open_err("shmctl(IPC_RMID)", e))?;
    if let Some(s) = sems {
        s.remove().map_err(|e| open_err("semctl(IPC_RMID)", e))?;
    }
    Ok(())
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
