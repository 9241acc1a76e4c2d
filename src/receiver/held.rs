//! Held receives: a message copied out but left in the ring until the
//! caller releases it, for consumers that forward messages and may free
//! them only once the next hop has them (a bridge that waits for a
//! server's acknowledgement, a write-ahead log that waits for fsync).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Receiver;
use crate::error::{RecvError, RecvTimeoutError, TryRecvError};
use crate::ring::Record;

/// A message received with [`Receiver::recv_held_into`] and not yet
/// released: where it lies in the channel's stream of bytes.
///
/// Positions count the bytes the channel has carried since it was created
/// (records and padding), so within one channel (one segment: a channel
/// removed and created again starts at 0) a message's position never
/// changes and no two messages share one. A receiver that takes over after
/// a receiver died gets the unreleased messages again at the same
/// positions: forwarders use the position as the message's identity, to
/// drop the duplicates a crash makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Held {
    position: u64,
    end: u64,
    /// The receiver that holds it.
    receiver: u64,
}

/// A new receiver's identity for its [`Held`]s.
pub(super) fn next_receiver_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    // Relaxed: a unique number, ordered with nothing.
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Held {
    /// The position of the message's record.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The position just past it: where the next record starts, or the
    /// padding before it.
    pub fn end(&self) -> u64 {
        self.end
    }
}

impl Receiver {
    /// Receives the next message into `buf` (replacing its contents),
    /// waiting while the channel is empty, as [`Receiver::recv_into`]
    /// does, but leaves its space in the ring: the message stays the
    /// channel's until [`Receiver::release_held`] frees it and every
    /// message held before it. Several may be held at once; they are
    /// released in order.
    ///
    /// If this process dies, or the receiver is dropped, before a held
    /// message is released, the next receiver gets it again, at the same
    /// [`Held::position`]: at-least-once, with the position to tell a
    /// repeat. (A broadcast subscriber's held messages hold the publisher
    /// back while it lives; a subscriber that joins after it died starts
    /// where it asks, [`crate::Start::Oldest`] with the oldest message the
    /// publisher has not written over since.) Senders wait for space while
    /// the held messages fill the ring, so hold only as many as the next
    /// hop can take before it confirms them.
    ///
    /// Any other receive (`recv`, `recv_into`, `recv_batch`, ...)
    /// releases what is held when it releases its own message (the ring
    /// frees in order). In a broadcast channel with
    /// [`crate::Overflow::Overwrite`] nothing can be held (the publisher
    /// does not wait for subscribers): the message is released at once.
    ///
    /// ```no_run
    /// # fn forward(_: &[u8]) -> std::io::Result<()> { Ok(()) }
    /// # fn f(rx: &mut shmchan::Receiver) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut buf = Vec::new();
    /// let held = rx.recv_held_into(&mut buf)?;
    /// forward(&buf)?; // on failure the message stays in the ring
    /// rx.release_held(held);
    /// # Ok(()) }
    /// ```
    pub fn recv_held_into(&mut self, buf: &mut Vec<u8>) -> Result<Held, RecvError> {
        let r = self.next_inner(true, None).map_err(RecvError::from)?;
        Ok(self.hold(r, buf))
    }

    /// [`Receiver::recv_held_into`] if a message is waiting.
    pub fn try_recv_held_into(&mut self, buf: &mut Vec<u8>) -> Result<Held, TryRecvError> {
        let r = self.next_inner(false, None).map_err(TryRecvError::from)?;
        Ok(self.hold(r, buf))
    }

    /// [`Receiver::recv_held_into`], waiting at most `timeout`.
    pub fn recv_held_timeout_into(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<Held, RecvTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        let r = self
            .next_inner(true, deadline)
            .map_err(RecvTimeoutError::from)?;
        Ok(self.hold(r, buf))
    }

    /// Releases `through` and every message held before it, with one
    /// store (and at most one wake-up of a sleeping sender). Returns
    /// `false`, releasing nothing, when `through` is not held by this
    /// receiver (released already, by this call or another receive, or
    /// another receiver's).
    pub fn release_held(&mut self, through: Held) -> bool {
        if self.reg.forked() || through.receiver != self.held_id {
            return false;
        }
        let freed = if through.end == self.newest_held_end {
            // The newest: whatever padding was skipped after it goes too.
            let c = self.side.cursor();
            let held = c.position() != c.head();
            c.release();
            held
        } else {
            self.side.cursor().release_through(through.end)
        };
        self.flush();
        freed
    }

    /// Releases every held message.
    pub fn release_all_held(&mut self) {
        if self.reg.forked() {
            return;
        }
        self.side.cursor().release();
        self.flush();
    }

    /// The bytes between the oldest held message and the next one to be
    /// received (0 when nothing is held): space senders cannot use yet.
    pub fn held_bytes(&self) -> u64 {
        let c = self.side.cursor_ref();
        c.position().wrapping_sub(c.head())
    }

    /// Copies `r`, the record our consumer returned last, into `buf` and
    /// marks it read but not released.
    fn hold(&mut self, r: Record, buf: &mut Vec<u8>) -> Held {
        let position = self.side.cursor().position();
        self.copy_counted(r, buf);
        if self.side.copied() {
            // Nothing to hold: an overwriting publisher does not wait.
            // SAFETY: `r` is the record our consumer returned last.
            unsafe { self.side.cursor().consume(r) };
            self.flush();
        } else {
            // SAFETY: `r` is the record our consumer returned last.
            unsafe { self.side.cursor().advance(r) };
        }
        self.newest_held_end = r.end;
        Held {
            position,
            end: r.end,
            receiver: self.held_id,
        }
    }
}
