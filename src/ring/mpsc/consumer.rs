//! The MPSC consumer: reads record headers in order, each with an Acquire
//! load, and stops at the first that is not committed.

use std::ops::{Deref, DerefMut};

use super::super::cursor::Cursor;
use super::super::{Corrupted, Record, RingView};
use crate::layout::{kind, split_record_header, CLAIM_BIT, RECORD_HEADER};
use crate::sync::{AtomicU64, Ordering};

/// What the consumer found at its read position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// Nothing claimed past the read position.
    Empty,
    /// Claimed, but the producer has not marked it yet (header zero).
    Unmarked,
    /// Marked in progress by the producer with this pid.
    InProgress(u32),
}

/// The consuming end: a [`Cursor`] (which it derefs to, for `advance`,
/// `release`, `consume` and the wake-ups) and the MPSC record format.
#[derive(Debug)]
pub struct Consumer<'a> {
    pub(super) cursor: Cursor<'a>,
    /// Why the last `try_peek` found nothing.
    blocked: Blocked,
}

impl<'a> Deref for Consumer<'a> {
    type Target = Cursor<'a>;
    fn deref(&self) -> &Cursor<'a> {
        &self.cursor
    }
}

impl DerefMut for Consumer<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.cursor
    }
}

impl<'a> Consumer<'a> {
    /// Takes the consuming end of `view`, continuing from the shared `head`.
    ///
    /// # Safety
    /// No other consumer of this ring (in any thread or process) is used
    /// while this one is.
    pub unsafe fn new(view: RingView<'a>) -> Result<Consumer<'a>, Corrupted> {
        let st = view.state();
        // Relaxed: our own position (see spsc::Consumer::new).
        let head = st.consumer.head.load(Ordering::Relaxed);
        // Relaxed: tail only says how far producers claimed; records are
        // published by their headers.
        let tail = st.producer.tail.load(Ordering::Relaxed);
        view.check_span(head, tail)?;
        Ok(Consumer {
            cursor: Cursor::new(view, head, tail, true),
            blocked: Blocked::Empty,
        })
    }

    /// Why the last [`Consumer::try_peek`] that returned `None` stopped.
    pub fn blocked(&self) -> Blocked {
        self.blocked
    }

    /// The header word at position `pos`.
    #[inline]
    pub(super) fn header(&self, pos: u64) -> &'a AtomicU64 {
        let view = self.cursor.view();
        view.region().atomic_u64(view.index(pos))
    }

    /// Whether [`Consumer::try_peek`] may make progress now: a committed
    /// record or padding at the read position.
    pub fn has_data(&mut self) -> Result<bool, Corrupted> {
        if self.cursor.cached_available() == 0 && self.cursor.refresh()? == 0 {
            return Ok(false);
        }
        // Acquire: as in try_peek.
        let word = self.header(self.cursor.position()).load(Ordering::Acquire);
        Ok(word != 0 && split_record_header(word).0 & CLAIM_BIT == 0)
    }

    /// The next committed record, if any, without releasing it. Padding is
    /// skipped (and released if nothing else is held).
    pub fn try_peek(&mut self) -> Result<Option<Record>, Corrupted> {
        let view = *self.cursor.view();
        let cap = view.capacity();
        // Each round skips at least 8 bytes of padding of the `avail` bytes
        // seen at the last load of tail (a padding record longer than that
        // is corruption), so at most `capacity / 8` rounds run between two
        // loads, and a load that finds more means producers published more
        // (a run of aborted grants is progress: its space is released as we
        // go). No bound on the rounds in all: a healthy ring whose
        // producers abort fast can give one look more padding than the
        // ring holds.
        loop {
            let mut avail = self.cursor.cached_available();
            if avail == 0 {
                avail = self.cursor.refresh()?;
                if avail == 0 {
                    self.blocked = Blocked::Empty;
                    return Ok(None);
                }
            }
            let read = self.cursor.position();
            let idx = view.index(read);
            // Acquire: pairs with the Release store of the header in
            // Producer::commit (and abort, and a gap's padding): the
            // payload (or the mark after the gap) is written.
            let word = self.header(read).load(Ordering::Acquire);
            let (high, len) = split_record_header(word);
            match high {
                0 if len == 0 => {
                    self.blocked = Blocked::Unmarked;
                    return Ok(None);
                }
                kind::MESSAGE => {
                    let rec = view.check_record("message record does not fit", read, len, avail)?;
                    return Ok(Some(Record {
                        data_offset: idx + RECORD_HEADER,
                        len: len as usize,
                        end: read.wrapping_add(rec),
                    }));
                }
                kind::PADDING => {
                    let size = RECORD_HEADER as u64 + u64::from(len);
                    let room = cap - idx as u64;
                    if !size.is_multiple_of(8) || size > room || size > avail {
                        return Err(Corrupted::new(
                            "padding record does not fit",
                            [read, u64::from(len), avail],
                        ));
                    }
                    self.cursor.skip(size);
                }
                h if h & CLAIM_BIT != 0 => {
                    self.blocked = Blocked::InProgress(h & !CLAIM_BIT);
                    return Ok(None);
                }
                _ => {
                    return Err(Corrupted::new(
                        "unknown record kind",
                        [read, u64::from(high), u64::from(len)],
                    ))
                }
            }
        }
    }
}
