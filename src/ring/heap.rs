//! A ring on the heap: the same algorithms without a segment. Used by the
//! loom models, the fuzz targets and unit tests (compiled only for them).

use std::ptr::NonNull;

use super::RingView;
use crate::layout::lines::{LapLine, RingState, SenderSlot, SubscriberSlot};
use crate::layout::{max_message_for, MIN_CAPACITY};
use crate::sync::Region;

#[cfg(not(shmchan_loom))]
type Cell = std::cell::UnsafeCell<u64>;
#[cfg(shmchan_loom)]
type Cell = loom::cell::UnsafeCell<u64>;

/// A heap-allocated ring state and data region.
#[derive(Debug)]
pub struct HeapRing {
    state: Box<RingState>,
    cells: Box<[Cell]>,
    #[cfg(shmchan_loom)]
    atoms: Box<[crate::sync::AtomicU64]>,
    senders: Box<[SenderSlot]>,
    /// Broadcast: the lap line, the subscriber table, overwriting or not.
    broadcast: Option<(Box<LapLine>, Box<[SubscriberSlot]>, bool)>,
    max_message: usize,
}

// SAFETY: the cells are only reached through RingView, whose protocol
// orders every access (and loom checks it).
unsafe impl Sync for HeapRing {}
// SAFETY: as above; the boxes own their memory.
unsafe impl Send for HeapRing {}

impl HeapRing {
    /// A zeroed ring of `capacity` bytes (rounded up to a power of two, at
    /// least 64) whose messages hold at most `max_message` bytes (clamped to
    /// what the ring can hold).
    pub fn new(capacity: usize, max_message: usize) -> HeapRing {
        HeapRing::with_senders(capacity, max_message, 0)
    }

    /// As [`HeapRing::new`], with an MPSC sender table of `slots` lines.
    pub fn with_senders(capacity: usize, max_message: usize, slots: usize) -> HeapRing {
        let capacity = capacity.max(MIN_CAPACITY).next_power_of_two();
        let cells: Box<[Cell]> = (0..capacity / 8).map(|_| Cell::new(0)).collect();
        HeapRing {
            state: Box::default(),
            cells,
            #[cfg(shmchan_loom)]
            atoms: (0..capacity / 8)
                .map(|_| crate::sync::AtomicU64::new(0))
                .collect(),
            senders: (0..slots).map(|_| SenderSlot::default()).collect(),
            broadcast: None,
            max_message: max_message.min(max_message_for(capacity)),
        }
    }

    /// As [`HeapRing::new`], a broadcast ring with `subscribers` slots,
    /// whose publisher overwrites or not.
    pub fn broadcast(
        capacity: usize,
        max_message: usize,
        subscribers: usize,
        overwrite: bool,
    ) -> HeapRing {
        let mut ring = HeapRing::new(capacity, max_message);
        let table = (0..subscribers)
            .map(|_| SubscriberSlot::default())
            .collect();
        ring.broadcast = Some((Box::default(), table, overwrite));
        ring
    }

    /// The shared state (see [`RingView::shared_state`]; loads and the
    /// wake line are safe through [`RingView::positions`] and
    /// [`RingView::wake_line`]).
    ///
    /// # Safety
    /// As for [`RingView::shared_state`].
    pub unsafe fn state(&self) -> &RingState {
        &self.state
    }

    /// A view of this ring, borrowing it.
    pub fn view(&self) -> RingView<'_> {
        let len = self.cells.len() * 8;
        #[cfg(not(shmchan_loom))]
        // SAFETY: the cells are 8-byte aligned u64 cells that `self` owns;
        // UnsafeCell permits writes through the shared pointer.
        let region = unsafe { Region::from_raw(self.cells.as_ptr() as *mut u8, len) };
        #[cfg(shmchan_loom)]
        // SAFETY: the cells and atoms (one per word each) are owned by `self`.
        let region = unsafe { Region::from_cells(self.cells.as_ptr(), self.atoms.as_ptr(), len) };
        // SAFETY: state, cells and senders are owned by self, which the
        // view borrows; geometry as `new` made it (checked again by
        // RingView::new).
        let view = unsafe {
            RingView::new(NonNull::from(&*self.state), region, self.max_message).with_senders(
                NonNull::new_unchecked(self.senders.as_ptr().cast_mut()),
                self.senders.len(),
            )
        };
        match &self.broadcast {
            None => view,
            // SAFETY: the lap line and the table are owned by self, which
            // the view borrows.
            Some((lap, table, overwrite)) => unsafe {
                view.with_subscribers(
                    NonNull::from(&**lap),
                    NonNull::new_unchecked(table.as_ptr().cast_mut()),
                    table.len(),
                    *overwrite,
                )
            },
        }
    }

    /// The data region's bytes (std only), for tests and fuzzing: `&mut
    /// self`, so no view (and no endpoint) of the ring is alive.
    #[cfg(not(shmchan_loom))]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let len = self.cells.len() * 8;
        // SAFETY: &mut self gives exclusive access to the cells, which are
        // len bytes of initialised u64s.
        unsafe { std::slice::from_raw_parts_mut(self.cells.as_mut_ptr().cast::<u8>(), len) }
    }
}
