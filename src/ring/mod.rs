//! The lock-free algorithms, over any memory that holds a [`RingState`] and
//! a data region. Nothing here makes a system call: the caller turns the
//! wake-ups the ring asks for into semaphore posts (see [`crate::wait`]).

mod heap;
pub mod mpsc;
pub mod spsc;
pub mod wake;

use std::fmt;
use std::ptr::NonNull;

use crate::layout::{RingState, SenderSlot};
use crate::sync::Region;

pub use heap::HeapRing;

/// A view of one ring: the shared state and the data region, plus the
/// validated geometry (a private copy, never re-read from shared memory).
#[derive(Debug, Clone, Copy)]
pub struct RingView {
    state: NonNull<RingState>,
    region: Region,
    mask: u64,
    max_message: usize,
    /// The MPSC sender table (dangling when `sender_slots` is 0).
    senders: NonNull<SenderSlot>,
    sender_slots: usize,
}

// SAFETY: a RingView is pointers into memory shared by design; every access
// through it follows the ring protocol (atomics for the shared state, and
// data accesses ordered by them).
unsafe impl Send for RingView {}
// SAFETY: as above.
unsafe impl Sync for RingView {}

impl RingView {
    /// # Safety
    /// `state` must point to a `RingState` and `region` be valid, both for
    /// as long as this view or a copy of it is used. `region.len()` must be
    /// a power of two of at least [`crate::layout::MIN_CAPACITY`] and
    /// `max_message` at most `region.len() - 8`.
    pub unsafe fn new(state: NonNull<RingState>, region: Region, max_message: usize) -> RingView {
        let capacity = region.len();
        assert!(capacity.is_power_of_two() && capacity >= crate::layout::MIN_CAPACITY);
        assert!(max_message <= crate::layout::max_message_for(capacity));
        RingView {
            state,
            region,
            mask: capacity as u64 - 1,
            max_message,
            senders: NonNull::dangling(),
            sender_slots: 0,
        }
    }

    /// The same view with the MPSC sender table at `senders`.
    ///
    /// # Safety
    /// `senders` must point to `slots` [`SenderSlot`]s that stay valid for
    /// as long as the view or a copy of it is used.
    pub unsafe fn with_senders(mut self, senders: NonNull<SenderSlot>, slots: usize) -> RingView {
        self.senders = senders;
        self.sender_slots = slots;
        self
    }

    /// The view of the ring in a mapped segment image at `base` whose
    /// header `layout` came from [`crate::layout::validate`].
    ///
    /// # Safety
    /// `base` must be 128-byte aligned (a mapping is page-aligned) and point
    /// to at least `layout.segment_len` bytes that stay mapped for as long
    /// as the view or a copy of it is used; `layout` must be validated
    /// against that length (so the data region lies inside it).
    #[cfg(not(shmchan_loom))]
    pub unsafe fn in_segment(base: NonNull<u8>, layout: &crate::layout::Layout) -> RingView {
        use crate::layout::offset::{RING_STATE, SENDER_TABLE};
        let base = base.as_ptr();
        debug_assert!((base as usize).is_multiple_of(128));
        debug_assert!(layout.data_offset + layout.capacity <= layout.segment_len);
        // SAFETY: the ring state lies at RING_STATE (128-aligned, inside the
        // header) and the data region at data_offset..+capacity, inside the
        // mapping by the caller's contract and validate's checks; the
        // sender table (128-aligned lines) fills SENDER_TABLE..data_offset.
        unsafe {
            let state = NonNull::new_unchecked(base.add(RING_STATE).cast::<RingState>());
            let region = Region::from_raw(base.add(layout.data_offset), layout.capacity);
            let senders = NonNull::new_unchecked(base.add(SENDER_TABLE).cast::<SenderSlot>());
            debug_assert!(SENDER_TABLE + layout.sender_slots * 128 <= layout.data_offset);
            RingView::new(state, region, layout.max_message)
                .with_senders(senders, layout.sender_slots)
        }
    }

    /// Slots in the MPSC sender table (0 for SPSC).
    #[inline]
    pub fn sender_slots(&self) -> usize {
        self.sender_slots
    }

    /// Sender slot `i`. Panics if `i` is not below [`Self::sender_slots`]
    /// (callers pass indices they range over or validated).
    #[inline]
    pub fn sender_slot(&self, i: usize) -> &SenderSlot {
        assert!(
            i < self.sender_slots,
            "sender slot {i} of {}",
            self.sender_slots
        );
        // SAFETY: in bounds (checked); valid for the view's lifetime
        // (with_senders contract).
        unsafe { &*self.senders.as_ptr().add(i) }
    }

    /// The shared state.
    #[inline]
    pub fn state(&self) -> &RingState {
        // SAFETY: valid for the view's lifetime (constructor contract).
        unsafe { self.state.as_ref() }
    }

    /// The data region.
    #[inline]
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Size of the data region in bytes.
    #[inline]
    pub fn capacity(&self) -> u64 {
        self.mask + 1
    }

    /// The largest payload.
    #[inline]
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Index of position `pos` in the data region.
    #[inline]
    pub fn index(&self, pos: u64) -> usize {
        (pos & self.mask) as usize
    }
}

/// The ring's shared state broke an invariant: another process wrote
/// something no correct peer writes. Carries what was wrong and the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupted {
    what: &'static str,
    values: [u64; 3],
}

impl Corrupted {
    pub(crate) fn new(what: &'static str, values: [u64; 3]) -> Corrupted {
        Corrupted { what, values }
    }

    /// A short name of the broken invariant.
    pub fn what(&self) -> &'static str {
        self.what
    }
}

impl fmt::Display for Corrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c] = self.values;
        write!(f, "corrupted ring: {} ({a}, {b}, {c})", self.what)
    }
}

impl std::error::Error for Corrupted {}

/// Why a reservation did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveError {
    /// Not enough free space now.
    Full,
    /// The payload is larger than the channel's maximum.
    TooLarge {
        /// Requested payload length.
        len: usize,
        /// The channel's maximum.
        max: usize,
    },
    /// The shared state is damaged.
    Corrupted(Corrupted),
}

/// Space reserved by a producer for one record, not yet published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// Position of the record header.
    pub start: u64,
    /// Offset of the payload in the data region.
    pub data_offset: usize,
    /// Payload length.
    pub len: usize,
    /// Position just past the record.
    pub end: u64,
}

/// A committed record, found by the consumer, not yet released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Offset of the payload in the data region.
    pub data_offset: usize,
    /// Payload length.
    pub len: usize,
    /// Position just past the record.
    pub end: u64,
}
