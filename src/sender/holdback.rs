//! A broadcast publisher held back by its slowest subscribers: after the
//! recovery timeout, the slots of those that are dead are released (see
//! docs/FORMAT.md, 10.5).

use std::time::{Duration, Instant};

use crate::ring::broadcast::Fanout;
use crate::ring::spsc;
use crate::sys;

/// A broadcast publisher in `Overflow::Block` mode held back by its
/// slowest subscriber: since when, and after how long it looks whether
/// the subscribers holding it back are alive.
#[derive(Debug)]
pub(super) struct Holdback {
    pub(super) since: Option<Instant>,
    pub(super) timeout: Duration,
    pub(super) shm_id: i32,
    /// Slots of dead subscribers released, ever (by this publisher).
    pub(super) released: u64,
}

impl Holdback {
    /// After a reservation of `len` bytes found the ring full: when it has
    /// been full for the timeout, releases the slots of the dead
    /// subscribers holding the publisher back; whether any was.
    #[cold]
    pub(super) fn release_dead(&mut self, p: &spsc::Producer<'static, Fanout>, len: usize) -> bool {
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) < self.timeout {
            return false;
        }
        let view = p.view();
        let rec = crate::layout::record_size(len.min(view.max_message())) as u64;
        let contiguous = view.capacity() - view.index(p.tail()) as u64;
        let need = rec.min(contiguous) + 8;
        let shm_id = self.shm_id;
        let mut alive = |pid: u32| sys::process_attached(pid as i32, shm_id);
        // SAFETY: process_attached says false only for a process that is
        // gone or no longer maps the segment (see there).
        let n = unsafe { Fanout::recover(p.fan_ref(), view, p.tail(), need, &mut alive) };
        self.released += n as u64;
        // Look again a timeout later (a live subscriber stays).
        self.since = Some(now);
        n > 0
    }
}
