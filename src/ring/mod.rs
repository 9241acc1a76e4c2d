//! The lock-free algorithms, over any memory that holds a [`RingState`] and
//! a data region. Nothing here makes a system call: the caller turns the
//! wake-ups the ring asks for into semaphore posts (see [`crate::wait`]).
//!
//! - [`spsc`]: one producer, one consumer, each record published by its
//!   header word (the producer is generic over its readers, [`spsc::Fan`]).
//! - [`broadcast`]: one publisher (the SPSC producer), many subscribers,
//!   each in its own slot; Block or Overwrite.
//! - [`mpsc`]: many producers, published by each record's header, with the
//!   recovery of claims whose producer died.
//! - [`cursor`]: the consumer's positions, shared by every flavor.
//! - [`wake`]: the shared-memory half of the wake protocol.
//!
//! The endpoints of every flavor are made by `unsafe` constructors: one
//! SPSC producer (or broadcast publisher) and one consumer (or one
//! subscriber per slot) at a time is the caller's promise (a channel keeps it with its liveness counts), and what they
//! hand out (a [`Reservation`], a [`Record`]) is given back only to the
//! endpoint it came from.

pub mod broadcast;
pub mod cursor;
#[cfg(any(shmchan_loom, feature = "internals", test))]
pub mod heap;
pub mod mpsc;
pub mod spsc;
pub mod wake;

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::layout::lines::{LapLine, RingState, SenderSlot, SubscriberSlot};
use crate::layout::record_size;
use crate::sync::Region;

/// A view of one ring: the shared state and the data region, plus the
/// validated geometry (a private copy, never re-read from shared memory).
/// It borrows the memory for `'a`.
#[derive(Debug, Clone, Copy)]
pub struct RingView<'a> {
    state: NonNull<RingState>,
    region: Region<'a>,
    mask: u64,
    max_message: usize,
    /// The MPSC sender table, or the broadcast subscriber table (dangling
    /// when `sender_slots` is 0).
    senders: NonNull<SenderSlot>,
    sender_slots: usize,
    /// Broadcast: the lap line; `None` for the other flavors.
    lap: Option<NonNull<LapLine>>,
    /// Broadcast: [`crate::layout::Overflow::Overwrite`].
    overwrite: bool,
    _memory: PhantomData<&'a RingState>,
}

// SAFETY: a RingView is pointers into memory shared by design; every access
// through it follows the ring protocol (atomics for the shared state, and
// data accesses ordered by them, each an unsafe call that says so).
unsafe impl Send for RingView<'_> {}
// SAFETY: as above.
unsafe impl Sync for RingView<'_> {}

impl<'a> RingView<'a> {
    /// # Safety
    /// `state` must point to a `RingState` valid for `'a`. `region.len()`
    /// must be a power of two of at least [`crate::layout::MIN_CAPACITY`]
    /// and `max_message` at most `region.len() - 8` (both are checked: a
    /// failure panics).
    pub unsafe fn new(
        state: NonNull<RingState>,
        region: Region<'a>,
        max_message: usize,
    ) -> RingView<'a> {
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
            lap: None,
            overwrite: false,
            _memory: PhantomData,
        }
    }

    /// The same view as a broadcast ring: the lap line at `lap`, `slots`
    /// subscriber slots at `subscribers`, overwriting or not.
    ///
    /// # Safety
    /// `lap` must point to a [`LapLine`] and `subscribers` to `slots`
    /// [`SubscriberSlot`]s, valid for `'a`.
    pub unsafe fn with_subscribers(
        mut self,
        lap: NonNull<LapLine>,
        subscribers: NonNull<SubscriberSlot>,
        slots: usize,
        overwrite: bool,
    ) -> RingView<'a> {
        self.lap = Some(lap);
        self.senders = subscribers.cast();
        self.sender_slots = slots;
        self.overwrite = overwrite;
        self
    }

    /// Whether this is a broadcast ring.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        self.lap.is_some()
    }

    /// Whether this is a broadcast ring whose publisher overwrites.
    #[inline]
    pub fn overwrites(&self) -> bool {
        self.overwrite
    }

    /// The broadcast lap line. Panics on a view of another flavor.
    #[inline]
    pub(crate) fn lap(&self) -> &'a LapLine {
        let lap = self.lap.expect("a broadcast view");
        // SAFETY: valid for 'a (with_subscribers contract).
        unsafe { lap.as_ref() }
    }

    /// Subscriber slot `i` of a broadcast ring (panics if `i` is not below
    /// [`Self::sender_slots`], or on a view of another flavor).
    #[inline]
    pub(crate) fn subscriber_slot(&self, i: usize) -> &'a SubscriberSlot {
        assert!(
            self.is_broadcast() && i < self.sender_slots,
            "subscriber slot {i} of {}",
            self.sender_slots
        );
        // SAFETY: in bounds (checked); the table holds SubscriberSlots
        // valid for 'a (with_subscribers contract).
        unsafe { &*self.senders.cast::<SubscriberSlot>().as_ptr().add(i) }
    }

    /// The `sleeping` flag and `bell` of slot `i` of either table (they lie
    /// at the same offsets in a sender and a subscriber slot).
    #[inline]
    pub(crate) fn slot_wake(
        &self,
        i: usize,
    ) -> (&'a crate::sync::AtomicU32, &'a crate::sync::AtomicU64) {
        if self.is_broadcast() {
            let s = self.subscriber_slot(i);
            (&s.sleeping, &s.bell)
        } else {
            let s = self.sender_slot(i);
            (&s.sleeping, &s.bell)
        }
    }

    /// The same view with the MPSC sender table at `senders`.
    ///
    /// # Safety
    /// `senders` must point to `slots` [`SenderSlot`]s valid for `'a`.
    pub unsafe fn with_senders(
        mut self,
        senders: NonNull<SenderSlot>,
        slots: usize,
    ) -> RingView<'a> {
        self.senders = senders;
        self.sender_slots = slots;
        self
    }

    /// The view of the ring in a mapped segment image at `base` whose
    /// header `layout` came from [`crate::layout::validate`].
    ///
    /// # Safety
    /// `base` must be 128-byte aligned (a mapping is page-aligned) and point
    /// to at least `layout.segment_len` bytes that stay mapped, readable and
    /// writable, for `'a`; `layout` must be validated against that length
    /// (so the data region lies inside it).
    #[cfg(not(shmchan_loom))]
    pub unsafe fn in_segment(base: NonNull<u8>, layout: &crate::layout::Layout) -> RingView<'a> {
        use crate::layout::offset::{LAP_LINE, RING_STATE, SENDER_TABLE, SUBSCRIBER_TABLE};
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
            let view = RingView::new(state, region, layout.max_message);
            if layout.flavor == crate::layout::Flavor::Broadcast {
                // The lap line and the subscriber table fill
                // LAP_LINE..data_offset (validate checked the length).
                debug_assert!(SUBSCRIBER_TABLE + layout.sender_slots * 128 <= layout.data_offset);
                let lap = NonNull::new_unchecked(base.add(LAP_LINE).cast::<LapLine>());
                let subs =
                    NonNull::new_unchecked(base.add(SUBSCRIBER_TABLE).cast::<SubscriberSlot>());
                view.with_subscribers(
                    lap,
                    subs,
                    layout.sender_slots,
                    layout.overflow == crate::layout::Overflow::Overwrite,
                )
            } else {
                view.with_senders(senders, layout.sender_slots)
            }
        }
    }

    /// Slots in the MPSC sender table (0 for SPSC).
    #[inline]
    pub fn sender_slots(&self) -> usize {
        self.sender_slots
    }

    /// Sender slot `i`, for the ring's own algorithms. Panics if `i` is
    /// not below [`Self::sender_slots`] (callers pass indices they range
    /// over or validated).
    #[inline]
    pub(crate) fn sender_slot(&self, i: usize) -> &'a SenderSlot {
        assert!(
            !self.is_broadcast() && i < self.sender_slots,
            "sender slot {i} of {}",
            self.sender_slots
        );
        // SAFETY: in bounds (checked); valid for the view's lifetime
        // (with_senders contract).
        unsafe { &*self.senders.as_ptr().add(i) }
    }

    /// The shared state, for the ring's own algorithms.
    #[inline]
    pub(crate) fn state(&self) -> &'a RingState {
        // SAFETY: valid for 'a (constructor contract).
        unsafe { self.state.as_ref() }
    }

    /// The wake line: waiter counts, connection counts, statistics. Safe
    /// to touch: a wrong value there costs wake-ups (bounded by the
    /// sleepers' polls), never memory safety.
    #[cfg(any(shmchan_loom, feature = "internals", test))]
    #[inline]
    pub fn wake_line(&self) -> &'a crate::layout::lines::WakeLine {
        &self.state().wake
    }

    /// `(head, tail)` as they are now (Relaxed loads: a snapshot).
    #[cfg(any(shmchan_loom, feature = "internals", test))]
    pub fn positions(&self) -> (u64, u64) {
        let st = self.state();
        (
            st.consumer.head.load(crate::sync::Ordering::Relaxed),
            st.producer.tail.load(crate::sync::Ordering::Relaxed),
        )
    }

    /// The shared state, for models and fuzz targets.
    ///
    /// # Safety
    /// Loads are always fine. A store must leave the ring in a state that
    /// every endpoint which may run meanwhile relies on: a forged position,
    /// slot or header lets an endpoint's plain accesses to the data region
    /// race (e.g. a `head` moved ahead lets the producer overwrite a record
    /// the consumer reads). Single-threaded fuzz targets store between
    /// endpoint calls, standing for a hostile process.
    #[cfg(any(shmchan_loom, feature = "internals"))]
    pub unsafe fn shared_state(&self) -> &'a RingState {
        self.state()
    }

    /// Sender slot `i` (panics if `i` is not below [`Self::sender_slots`]),
    /// for models and fuzz targets.
    ///
    /// # Safety
    /// Loads are always fine. A store must leave the ring in a state that
    /// every endpoint which may run meanwhile relies on: a forged position,
    /// slot or header lets an endpoint's plain accesses to the data region
    /// race (e.g. a `head` moved ahead lets the producer overwrite a record
    /// the consumer reads). Single-threaded fuzz targets store between
    /// endpoint calls, standing for a hostile process.
    #[cfg(any(shmchan_loom, feature = "internals"))]
    pub unsafe fn shared_sender_slot(&self, i: usize) -> &'a SenderSlot {
        self.sender_slot(i)
    }

    /// The lap line of a broadcast ring, for models and fuzz targets
    /// (panics on another flavor).
    ///
    /// # Safety
    /// As for [`Self::shared_sender_slot`].
    #[cfg(any(shmchan_loom, feature = "internals"))]
    pub unsafe fn shared_lap(&self) -> &'a LapLine {
        self.lap()
    }

    /// Subscriber slot `i` and the lap line of a broadcast ring, for models
    /// and fuzz targets (panics on another flavor).
    ///
    /// # Safety
    /// As for [`Self::shared_sender_slot`].
    #[cfg(any(shmchan_loom, feature = "internals"))]
    pub unsafe fn shared_subscriber_slot(&self, i: usize) -> (&'a SubscriberSlot, &'a LapLine) {
        (self.subscriber_slot(i), self.lap())
    }

    /// The data region.
    #[inline]
    pub fn region(&self) -> &Region<'a> {
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

    /// Checks `tail - head` against the capacity and both positions'
    /// alignment; returns the bytes in use.
    #[inline]
    pub fn check_span(&self, head: u64, tail: u64) -> Result<u64, Corrupted> {
        let used = tail.wrapping_sub(head);
        if used > self.capacity() || !(head | tail).is_multiple_of(8) {
            return Err(Corrupted::new(
                "tail - head outside 0..=capacity, or not a multiple of 8",
                [head, tail, self.capacity()],
            ));
        }
        Ok(used)
    }

    /// Checks a message (or in-progress) record of `len` payload bytes at
    /// position `pos`, with `avail` bytes published or claimed from there:
    /// at most `max_message`, inside the region, inside what is available.
    /// Returns the record's size.
    #[inline]
    pub fn check_record(
        &self,
        what: &'static str,
        pos: u64,
        len: u32,
        avail: u64,
    ) -> Result<u64, Corrupted> {
        let room = self.capacity() - self.index(pos) as u64;
        let size = record_size(len as usize) as u64;
        if len as usize > self.max_message || size > room || size > avail {
            return Err(Corrupted::new(what, [pos, u64::from(len), avail]));
        }
        Ok(size)
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

/// Space reserved by a producer for one record, not yet published. Only the
/// producer that made it may commit or abort it, once (those calls are
/// `unsafe` for that reason).
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

/// A committed record, found by the consumer, not yet released. Only the
/// consumer that found it may advance past it or consume it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Offset of the payload in the data region.
    pub data_offset: usize,
    /// Payload length.
    pub len: usize,
    /// Position just past the record.
    pub end: u64,
}
