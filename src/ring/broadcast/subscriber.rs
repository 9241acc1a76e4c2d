//! A broadcast subscriber: its slot in the table (taken, freed), joining
//! at the newest or the oldest record, reading (and, in Overwrite mode,
//! checking after the copy and going on when lapped), releasing, leaving.
//! The module docs of [`super`] give the protocol.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use super::{read_pair, SeqWait, Start, JOIN_TRIES};
use crate::layout::{NOT_JOINED, SLOT_JOINING};
use crate::ring::cursor::Cursor;
use crate::ring::{spsc, Corrupted, Record, RingView};
use crate::sync::{fence, spin_hint, Ordering};

/// Takes a free subscriber slot, or one whose owner `alive` says is dead,
/// for the process `pid`; `None` when every slot has a live owner.
///
/// The slot is taken as `pid + SLOT_JOINING` (a slot the publisher waits
/// for but does not count as a subscriber: the position it holds may still
/// be the previous owner's, or a fresh segment's zero);
/// [`Subscriber::join`] clears the flag once it has joined.
///
/// # Safety
/// `alive` must never call a live subscriber's process dead.
pub unsafe fn take_slot(
    view: &RingView<'_>,
    pid: u32,
    alive: &mut dyn FnMut(u32) -> bool,
) -> Option<usize> {
    let n = view.sender_slots();
    let take = |i: usize, from: u64| {
        let s = view.subscriber_slot(i);
        // Acquire: pairs with the Release store of 0 by a leaving owner
        // (or the CAS that freed a dead one's slot).
        if s.owner
            .compare_exchange(
                from,
                u64::from(pid) | SLOT_JOINING,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return false;
        }
        // Relaxed: until the join stores a position the publisher skips the
        // slot (or, seeing the old owner's position, waits a little more).
        s.position.store(NOT_JOINED, Ordering::Relaxed);
        s.sleeping.store(0, Ordering::Relaxed);
        s.bell.store(0, Ordering::Relaxed);
        true
    };
    // Relaxed: a hint; the CAS decides.
    if let Some(i) =
        (0..n).find(|&i| view.subscriber_slot(i).owner.load(Ordering::Relaxed) == 0 && take(i, 0))
    {
        return Some(i);
    }
    (0..n).find(|&i| {
        // Relaxed: a hint; the CAS decides.
        let owner = view.subscriber_slot(i).owner.load(Ordering::Relaxed);
        owner != 0 && owner != u64::from(pid) && !alive(owner as u32) && take(i, owner)
    })
}

/// Gives back a slot taken with [`take_slot`] whose subscriber never
/// joined.
///
/// # Safety
/// `slot` is the caller's, taken for a subscriber that never joined (a
/// joined subscriber's slot freed under it would let the publisher write
/// over the records it reads).
pub unsafe fn free_slot(view: &RingView<'_>, slot: usize) {
    // Release: pairs with the Acquire CAS of the next taker.
    view.subscriber_slot(slot).owner.store(0, Ordering::Release);
}

/// What a subscriber's look at the ring found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A message (in `Overwrite` mode: copy it, then ask
    /// [`Subscriber::intact`] before using the copy).
    Record(Record),
    /// Nothing published yet.
    Empty,
    /// The publisher has written over the read position
    /// ([`Subscriber::lagged`] goes on from the oldest record).
    Lapped,
}

/// A broadcast subscriber: a [`Cursor`] (which it derefs to, for
/// `advance`, `release`, `consume` and the wake-ups) in its own slot.
#[derive(Debug)]
pub struct Subscriber<'a> {
    cursor: Cursor<'a>,
    slot: usize,
    overwrite: bool,
    /// Found by [`Subscriber::has_data`] (see `spsc::Consumer`).
    stalled: Option<Corrupted>,
    /// The budget of each lag's seqlock read ([`SeqWait`]).
    seq_wait: Duration,
}

impl<'a> Deref for Subscriber<'a> {
    type Target = Cursor<'a>;
    fn deref(&self) -> &Cursor<'a> {
        &self.cursor
    }
}

impl DerefMut for Subscriber<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.cursor
    }
}

impl<'a> Subscriber<'a> {
    /// Joins the ring in `slot` (taken with [`take_slot`]) at `start`.
    /// `barrier` is the heavy fence (in a channel, `membarrier`; it
    /// returns whether it ran: if not, the caller's publisher uses the
    /// full fence anyway). Its seqlock reads (of the start, and later of
    /// each lag) may wait up to `seq_wait` for a writer seen inside its
    /// window ([`SeqWait`]; a channel's subscriber uses
    /// [`super::SEQLOCK_WAIT`], the models none).
    ///
    /// # Safety
    /// `slot` was taken for this subscriber and is used by nobody else.
    pub unsafe fn join(
        view: RingView<'a>,
        slot: usize,
        start: Start,
        barrier: &mut dyn FnMut(),
        seq_wait: Duration,
    ) -> Result<Subscriber<'a>, Corrupted> {
        let mut wait = SeqWait::new(seq_wait);
        let st = view.state();
        let lap = view.lap();
        let s = view.subscriber_slot(slot);
        for _ in 0..JOIN_TRIES {
            let (pos, seq) = match start {
                Start::Newest => read_pair(
                    &st.producer.tail_ver,
                    &st.producer.tail,
                    &st.producer.next_seq,
                    &mut wait,
                ),
                Start::Oldest => {
                    read_pair(&lap.oldest_ver, &lap.oldest_pos, &lap.oldest_seq, &mut wait)
                }
            };
            if !pos.is_multiple_of(8) {
                return Err(Corrupted::new(
                    "a start position is not a multiple of 8",
                    [pos, seq, 0],
                ));
            }
            // Relaxed: statistics.
            s.seq.store(seq, Ordering::Relaxed);
            // SeqCst: with the increment and the fence below, the joiner's
            // half of the store-load pair against the publisher's store of
            // front and load of joins (see the module docs).
            s.position.store(pos, Ordering::SeqCst);
            lap.joins.fetch_add(1, Ordering::SeqCst);
            barrier();
            // SeqCst fence: pairs with the publisher's fence between its
            // store of front and its load of joins (the barrier above is
            // the heavy half when the publisher's fence is light).
            fence(Ordering::SeqCst);
            // Acquire: as in `lapped`.
            let front = lap.front.load(Ordering::Acquire);
            if front.wrapping_sub(pos) <= view.capacity() {
                // Joined for good: counted from now on. Release: pairs with
                // the Acquire load of owner in `joined` (a publisher that
                // counts us sees this start, and publishes after it).
                s.owner.fetch_and(!SLOT_JOINING, Ordering::Release);
                return Ok(Subscriber {
                    cursor: Cursor::subscriber(view, slot, pos, seq),
                    slot,
                    overwrite: view.overwrites(),
                    stalled: None,
                    seq_wait,
                });
            }
            spin_hint();
        }
        Err(Corrupted::new(
            "front stays more than a ring past every start",
            [lap.front.load(Ordering::Relaxed), 0, 0],
        ))
    }

    /// The slot this subscriber owns.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// Whether the publisher overwrites (copies must be checked with
    /// [`Subscriber::intact`]).
    pub fn overwrites(&self) -> bool {
        self.overwrite
    }

    /// Whether a receive may proceed now (a record, padding, or a lap
    /// waiting): a hint for a look from outside the receiving path.
    pub fn ready(&self) -> bool {
        let view = self.cursor.view();
        // Acquire: as in try_peek.
        let word = view
            .region()
            .atomic_u64(view.index(self.cursor.position()))
            .load(Ordering::Acquire);
        word != 0 || (self.overwrite && self.lapped())
    }

    /// Whether the publisher may have written over the read position.
    #[inline]
    fn lapped(&self) -> bool {
        let view = self.cursor.view();
        // Acquire: pairs with the Release store of front in
        // Fanout::advance (the oldest record it stored before is visible
        // to `lagged`). Ordered after the caller's Acquire load or fence.
        let front = view.lap().front.load(Ordering::Acquire);
        front.wrapping_sub(self.cursor.position()) > view.capacity()
    }

    /// After copying the record at the read position (`Overwrite`):
    /// whether the copy is of that record, with no byte of a later lap.
    #[inline]
    pub fn intact(&self) -> bool {
        // Acquire fence: pairs with the Release fence after the store of
        // front in Fanout::advance: if the copy read any word written after
        // it, the load in `lapped` sees that front (or a later one).
        fence(Ordering::Acquire);
        !self.lapped()
    }

    /// The next committed record, if any, without releasing it; padding is
    /// skipped. `Overwrite`: [`Next::Lapped`] when the publisher has
    /// written over the read position.
    #[inline]
    pub fn try_peek(&mut self) -> Result<Next, Corrupted> {
        // At most two rounds, as for SPSC.
        for _ in 0..2 {
            let view = *self.cursor.view();
            // Acquire: pairs with the Release store of the header in
            // Producer::publish_pending; and, when a later lap wrote the
            // word, with the fence after the store of front that covers it
            // (front_fence), which `lapped` then sees.
            let word = view
                .region()
                .atomic_u64(view.index(self.cursor.position()))
                .load(Ordering::Acquire);
            if self.overwrite && self.lapped() {
                return Ok(Next::Lapped);
            }
            if word == 0 {
                return match self.stalled.take() {
                    None => Ok(Next::Empty),
                    Some(e) => Err(e),
                };
            }
            if let Some(r) = spsc::parse(&mut self.cursor, word)? {
                return Ok(Next::Record(r));
            }
        }
        Err(Corrupted::new(
            "padding follows padding",
            [self.cursor.position(), self.cursor.head(), 0],
        ))
    }

    /// Whether a record (or a lap) is waiting: the look of a subscriber
    /// about to sleep (in Block mode a zero header behind `tail` is
    /// reported by the next `try_peek`, as for SPSC).
    pub fn has_data(&mut self) -> Result<bool, Corrupted> {
        let view = self.cursor.view();
        // Relaxed: a hint; try_peek loads the word again with Acquire.
        let word = view
            .region()
            .atomic_u64(view.index(self.cursor.position()))
            .load(Ordering::Relaxed);
        if self.overwrite {
            // No look behind `tail` here: a zero word behind it may be a
            // later lap's (the front loaded may be older than the word),
            // and a forged one heals by itself (the publisher, which never
            // waits, laps it).
            return Ok(word != 0 || self.lapped());
        }
        if word != 0 {
            return Ok(true);
        }
        self.stalled = spsc::zero_behind_tail(&self.cursor);
        Ok(self.stalled.is_some())
    }

    /// After [`Next::Lapped`] (nothing held): goes on from the oldest
    /// record still intact; returns how many messages were missed (0 when
    /// only padding was, or when the subscriber is not lapped and the
    /// publisher's oldest record is not past the read position yet: then
    /// nothing moves). Lapped, with the oldest record not past the read
    /// position, is [`Corrupted`] (the next look would find the same lap,
    /// for ever).
    pub fn lagged(&mut self) -> Result<u64, Corrupted> {
        let view = *self.cursor.view();
        let lap = view.lap();
        // Acquire: pairs with the Release store of front in
        // Fanout::advance: the oldest record it stored before this front
        // (at or past front - capacity) is what read_pair sees, or later.
        let front = lap.front.load(Ordering::Acquire);
        let (pos, seq) = read_pair(
            &lap.oldest_ver,
            &lap.oldest_pos,
            &lap.oldest_seq,
            &mut SeqWait::new(self.seq_wait),
        );
        let read = self.cursor.position();
        let ahead = pos.wrapping_sub(read);
        if ahead == 0 || ahead as i64 <= 0 {
            if front.wrapping_sub(read) > view.capacity() {
                return Err(Corrupted::new(
                    "lapped, but the oldest record is not past the read position",
                    [read, front, pos],
                ));
            }
            return Ok(0);
        }
        let missed = seq.wrapping_sub(self.cursor.seq());
        // Every message takes 8 bytes at least.
        if !pos.is_multiple_of(8) || missed > ahead / 8 {
            return Err(Corrupted::new(
                "the oldest record's position and sequence number disagree",
                [read, pos, missed],
            ));
        }
        self.cursor.reset(pos, seq);
        if missed > 0 {
            let s = view.subscriber_slot(self.slot);
            // Relaxed: statistics, written by this slot's owner only.
            // Wrapping: another process may have written any count.
            s.lagged.store(
                s.lagged.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            );
            s.missed.store(
                s.missed.load(Ordering::Relaxed).wrapping_add(missed),
                Ordering::Relaxed,
            );
        }
        Ok(missed)
    }

    /// Gives the slot back: the publisher stops waiting for it.
    ///
    /// # Safety
    /// Nothing this subscriber handed out (a record) is in use, and it is
    /// used no more.
    pub unsafe fn leave(&self) {
        let s = self.cursor.view().subscriber_slot(self.slot);
        // Release: pairs with the Acquire load of owner in `slowest`: our
        // reads happen before the publisher writes over what we held.
        s.owner.store(0, Ordering::Release);
    }
}
