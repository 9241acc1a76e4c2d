//! The broadcast ring: one publisher, many subscribers, each of whom reads
//! every record. The records are SPSC records (see [`super::spsc`]: each
//! published by its header word, the word past it zeroed first), so a
//! subscriber reads them as an SPSC consumer does; what differs is whom
//! the publisher waits for and what it announces.
//!
//! State, in positions (byte counts that only grow):
//! - The publisher owns `tail` and, beside it under the seqlock `tail_ver`,
//!   `next_seq` (the sequence number of the record at `tail`: a
//!   subscriber joining at the newest message reads the pair).
//! - Each subscriber owns a slot of the subscriber table: its `position`
//!   (the start of the first record it has not released) and `seq` (that
//!   record's sequence number).
//! - The lap line: `front`, past which the publisher writes nothing
//!   before it has stored a larger `front` (stored once per chunk of the
//!   ring, an eighth at most, so subscribers that load it keep it cached);
//!   the bytes of position `p` are intact while `front <= p + capacity`.
//!   `oldest_pos`/`oldest_seq` (under the seqlock `oldest_ver`): the first
//!   record at or past `front - capacity`, and its sequence number, where
//!   a lapped subscriber goes on. `joins`: how many subscribers ever
//!   joined.
//!
//! `Overflow::Block`: the publisher's free space ends at the slowest
//! joined subscriber's position plus the capacity (or nowhere, with no
//! subscriber: it writes over the oldest records). `Overflow::Overwrite`:
//! it never waits; a subscriber checks `front` after loading each header
//! and again after copying each payload (seqlock style: a copy that a later
//! lap may have touched is dropped), and when lapped goes on from the
//! oldest record, counting what it missed from the sequence numbers.
//!
//! Joining: take a free slot (or a dead owner's), store the start
//! position, increment `joins`, issue the heavy fence (`membarrier`), then
//! load `front`: if it is more than a ring past the start, start again.
//! The publisher, each time it moves `front`, issues the light fence and
//! loads `joins`; a changed value makes it look at the table again. So
//! either the joiner sees the publisher's new `front` (and starts later),
//! or the publisher sees the joiner before it writes past the old one.
//!
//! Every value read from shared memory is checked before use; a broken
//! invariant yields [`Corrupted`] and changes nothing.

use std::time::{Duration, Instant};

use super::spsc::{Fan, Producer};
use super::wake::{self, Wakeups};
use super::{Corrupted, RingView};
use crate::layout::{kind, record_size, split_record_header, RECORD_HEADER, SLOT_JOINING};
use crate::sync::{fence, spin_hint, AtomicU64, Ordering};

/// The word past every record that must be free too (the next header).
const NEXT: u64 = RECORD_HEADER as u64;

/// How many times a join starts again before it gives up (a publisher
/// that laps the ring faster than a subscriber can join, or a forged
/// `front`).
const JOIN_TRIES: u32 = 1_000;

/// How many looks a seqlock read takes in a row before it pauses (see
/// [`SeqWait`]).
const SEQLOCK_TRIES: u32 = 1_000;

/// How long a subscriber of a channel waits, in all, for a seqlock writer
/// seen inside its window ([`Subscriber::set_seqlock_wait`]).
pub const SEQLOCK_WAIT: Duration = Duration::from_millis(500);

/// A pause between two rounds of looks at a seqlock whose writer is inside
/// its window: off the CPU, which the writer may need.
const SEQLOCK_PAUSE: Duration = Duration::from_micros(50);

/// How long a reader of a seqlock pair may wait for a writer seen inside
/// its window (an odd or moving version): a writer preempted there
/// finishes when it runs again, one killed there never does. Without a
/// budget, or once it is spent, a read takes the values as they are after
/// [`SEQLOCK_TRIES`] looks, which may be of two different writes (a
/// position and a sequence number that disagree: a lag counted wrong).
/// One budget serves one operation (a join's rounds, a lag), so a
/// forged or abandoned odd version costs it once.
#[derive(Debug, Clone, Copy)]
pub struct SeqWait {
    budget: Duration,
    until: Option<Instant>,
}

impl SeqWait {
    /// A wait of at most `budget` (zero: none, as in the models).
    pub fn new(budget: Duration) -> SeqWait {
        SeqWait {
            budget,
            until: None,
        }
    }

    /// After a round of looks that found the writer inside its window:
    /// pauses and returns true while the budget lasts.
    fn pause(&mut self) -> bool {
        if self.budget.is_zero() {
            return false;
        }
        let now = Instant::now();
        let until = *self.until.get_or_insert(now + self.budget);
        if now >= until {
            return false;
        }
        std::thread::sleep(SEQLOCK_PAUSE);
        true
    }
}

/// The Release fence after a store of `front`, before the writes it
/// covers. Under `shmchan_mutant_broadcast` (with `shmchan_loom`) it is
/// left out, so that the models can show they catch it.
#[inline]
fn front_fence() {
    #[cfg(not(all(shmchan_loom, shmchan_mutant_broadcast)))]
    // Release fence: pairs with the Acquire fence in Subscriber::intact
    // and the Acquire load of a header in Subscriber::try_peek: a reader
    // that sees any word we write after this sees this front, or a later.
    fence(Ordering::Release);
}

/// The ordering of the publisher's load of `joins` after it moves `front`
/// (in `Fanout::cover`): Acquire. Under `shmchan_mutant_broadcast` (with
/// `shmchan_loom`) it is Relaxed, so that the models can show they catch
/// it (a publisher that sees the count change but not the joiner's
/// position takes the ring for unread and writes over the joiner's start).
#[cfg(not(all(shmchan_loom, shmchan_mutant_broadcast)))]
const JOINS_LOAD: Ordering = Ordering::Acquire;
#[cfg(all(shmchan_loom, shmchan_mutant_broadcast))]
const JOINS_LOAD: Ordering = Ordering::Relaxed;

/// Where a new subscriber starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Start {
    /// With the next message published (none that were published before).
    #[default]
    Newest,
    /// With the oldest message still in the ring.
    Oldest,
}

/// Reads a pair of words written under the seqlock `ver` (odd while the
/// writer stores them). After [`SEQLOCK_TRIES`] looks at an odd or moving
/// version, pauses while `wait` lasts and looks again; then the values as
/// they are.
fn read_pair(ver: &AtomicU64, a: &AtomicU64, b: &AtomicU64, wait: &mut SeqWait) -> (u64, u64) {
    let mut last = (0, 0);
    for _ in 0.. {
        if let Some(pair) = look_pair(ver, a, b, &mut last) {
            return pair;
        }
        if !wait.pause() {
            break;
        }
    }
    last
}

/// [`SEQLOCK_TRIES`] looks at a seqlock pair: the pair, or `None` with the
/// values of the last look in `last`.
fn look_pair(
    ver: &AtomicU64,
    a: &AtomicU64,
    b: &AtomicU64,
    last: &mut (u64, u64),
) -> Option<(u64, u64)> {
    for _ in 0..SEQLOCK_TRIES {
        // Acquire: pairs with the Release store of the even version after
        // the writer's stores of the pair.
        let v1 = ver.load(Ordering::Acquire);
        // Relaxed: the version loads around them decide.
        let x = a.load(Ordering::Relaxed);
        let y = b.load(Ordering::Relaxed);
        // Acquire fence: pairs with the Release fence after the writer's
        // store of the odd version: if we saw any of its new values, the
        // version below reads odd or later.
        fence(Ordering::Acquire);
        let v2 = ver.load(Ordering::Relaxed);
        if v1 == v2 && v1.is_multiple_of(2) {
            return Some((x, y));
        }
        *last = (x, y);
        spin_hint();
    }
    None
}

/// Stores a pair under the seqlock `ver`, whose current (even) value the
/// single writer keeps in `mine`.
fn write_pair(ver: &AtomicU64, mine: &mut u64, a: &AtomicU64, x: u64, b: &AtomicU64, y: u64) {
    *mine = mine.wrapping_add(1);
    // Relaxed: ordered before the pair by the fence below.
    ver.store(*mine, Ordering::Relaxed);
    // Release fence: pairs with the Acquire fence in `read_pair`.
    fence(Ordering::Release);
    // Relaxed: published by the version store below.
    a.store(x, Ordering::Relaxed);
    b.store(y, Ordering::Relaxed);
    *mine = mine.wrapping_add(1);
    // Release: pairs with the first Acquire load in `read_pair`.
    ver.store(*mine, Ordering::Release);
}

/// The broadcast publisher's side of the ring: what an SPSC producer
/// ([`Producer`]) needs to publish to subscribers (see the module docs).
#[derive(Debug)]
pub struct Fanout {
    overwrite: bool,
    /// The sequence number of the next message.
    next_seq: u64,
    tail_ver: u64,
    /// The shared `front` as we stored it.
    front: u64,
    /// How far past the end of a write `front` is moved: a power of two
    /// that divides the capacity (at most an eighth of it), or 0 when the
    /// largest record leaves no room for more.
    chunk: u64,
    /// For the last ring's chunks, by chunk number modulo their count: the
    /// first record starting at or past the chunk's start, and its
    /// sequence number (`front - capacity` is a chunk's start, so the
    /// oldest record is found here, not by walking the records, which a
    /// ring behind are out of the cache). Empty without chunks.
    starts: Box<[(u64, u64)]>,
    /// The first chunk whose first record is not yet known.
    next_chunk: u64,
    oldest_pos: u64,
    oldest_seq: u64,
    oldest_ver: u64,
    /// `joins` as last loaded.
    joins: u64,
    /// Use the light fence before loading `joins` (see
    /// `wake::claim_with`).
    light: bool,
}

impl Fanout {
    /// Continues from the shared state (zeros in a new channel).
    fn resume(view: &RingView<'_>) -> Result<Fanout, Corrupted> {
        let st = view.state();
        let lap = view.lap();
        let cap = view.capacity();
        // Relaxed: an earlier publisher's values; no publisher runs beside
        // us (the caller's contract), and in a channel the registration's
        // semop orders these loads after its last stores.
        let front = lap.front.load(Ordering::Relaxed);
        let oldest_pos = lap.oldest_pos.load(Ordering::Relaxed);
        let oldest_seq = lap.oldest_seq.load(Ordering::Relaxed);
        let tail = st.producer.tail.load(Ordering::Relaxed);
        view.check_span(oldest_pos, tail)?;
        if front.wrapping_sub(tail) > cap || !front.is_multiple_of(8) {
            return Err(Corrupted::new(
                "front is not within a ring past tail",
                [tail, front, oldest_pos],
            ));
        }
        let largest = record_size(view.max_message()) as u64 + NEXT;
        let even = |v: u64| v.wrapping_add(1) & !1;
        let room = (cap / 8).min(cap - largest);
        // The largest power of two within the room (at least 8), so that
        // chunks divide the capacity; none when there is no room.
        let chunk = if room >= 8 {
            1u64 << (63 - room.leading_zeros())
        } else {
            0
        };
        let chunks = cap.checked_div(chunk).unwrap_or(0) as usize;
        Ok(Fanout {
            overwrite: view.overwrites(),
            next_seq: st.producer.next_seq.load(Ordering::Relaxed),
            tail_ver: even(st.producer.tail_ver.load(Ordering::Relaxed)),
            front,
            chunk,
            // Unknown for the records an earlier publisher wrote: `advance`
            // walks those (an entry is used only when it lies in the chunk).
            starts: vec![(u64::MAX, 0); chunks].into_boxed_slice(),
            next_chunk: if chunk == 0 { 0 } else { tail.div_ceil(chunk) },
            oldest_pos,
            oldest_seq,
            oldest_ver: even(lap.oldest_ver.load(Ordering::Relaxed)),
            // Acquire: pairs with the SeqCst increment by a joiner, after
            // its position: the table look in `publisher` sees it.
            joins: lap.joins.load(Ordering::Acquire),
            light: false,
        })
    }

    /// Use the light fence before loading `joins`: only in a process
    /// registered for `membarrier`, whose joiners issue the barrier.
    pub fn set_light_fence(&mut self, light: bool) {
        self.light = light;
    }

    /// Moves `front` to cover `end`: first the oldest record past the
    /// new `front - capacity`, then `front`.
    fn advance(&mut self, view: &RingView<'_>, tail: u64, end: u64) -> Result<(), Corrupted> {
        let cap = view.capacity();
        let front = if self.chunk == 0 {
            end
        } else {
            end.wrapping_add((self.chunk - end % self.chunk) % self.chunk)
        };
        let (mut pos, mut seq) = (self.oldest_pos, self.oldest_seq);
        if self.chunk != 0 && front.wrapping_sub(pos) > cap {
            // front - capacity starts a chunk: its first record, if we wrote
            // it (it lies within the largest record of the chunk's start).
            let from = front.wrapping_sub(cap);
            let k = ((from / self.chunk) as usize) & (self.starts.len() - 1);
            let (at, at_seq) = self.starts[k];
            let largest = record_size(view.max_message()) as u64 + NEXT;
            if at.wrapping_sub(from) < largest && at.wrapping_sub(pos) <= cap {
                (pos, seq) = (at, at_seq);
            }
        }
        // Otherwise (records of an earlier publisher), walk them.
        while front.wrapping_sub(pos) > cap {
            // Our own records, published (behind tail: front is at most a
            // ring past it), and not yet overwritten (past the old front
            // less the capacity).
            let ahead = tail.wrapping_sub(pos);
            let idx = view.index(pos);
            // Relaxed: words we wrote.
            let word = view.region().atomic_u64(idx).load(Ordering::Relaxed);
            let room = cap - idx as u64;
            let size = match split_record_header(word) {
                (kind::MESSAGE, len) if ahead <= cap => {
                    seq = seq.wrapping_add(1);
                    view.check_record("a record behind tail does not fit", pos, len, ahead)?
                }
                (kind::PADDING, len)
                    if idx != 0 && RECORD_HEADER as u64 + len as u64 == room && ahead <= cap =>
                {
                    room
                }
                (k, len) => {
                    return Err(Corrupted::new(
                        "a record behind tail is broken",
                        [pos, u64::from(k), u64::from(len)],
                    ))
                }
            };
            pos = pos.wrapping_add(size);
        }
        let lap = view.lap();
        if (pos, seq) != (self.oldest_pos, self.oldest_seq) {
            (self.oldest_pos, self.oldest_seq) = (pos, seq);
            write_pair(
                &lap.oldest_ver,
                &mut self.oldest_ver,
                &lap.oldest_pos,
                pos,
                &lap.oldest_seq,
                seq,
            );
        }
        // Release: pairs with the Acquire load in Subscriber::lapped: a
        // subscriber that sees this front sees the oldest record above.
        lap.front.store(front, Ordering::Release);
        front_fence();
        self.front = front;
        Ok(())
    }

    /// Frees the slots of dead subscribers that hold the publisher back
    /// (their position is less than `need` bytes from a ring behind
    /// `tail`); returns how many.
    ///
    /// # Safety
    /// `alive` must never call a live subscriber's process dead (its slot
    /// would be freed under it, and its records overwritten while it reads
    /// them).
    pub unsafe fn recover(
        &self,
        view: &RingView<'_>,
        tail: u64,
        need: u64,
        alive: &mut dyn FnMut(u32) -> bool,
    ) -> usize {
        let cap = view.capacity();
        let mut freed = 0;
        for i in 0..view.sender_slots() {
            let s = view.subscriber_slot(i);
            // Acquire: as in `slowest`.
            let owner = s.owner.load(Ordering::Acquire);
            if owner == 0 {
                continue;
            }
            let pos = s.position.load(Ordering::Acquire);
            let lag = tail.wrapping_sub(pos);
            if !pos.is_multiple_of(8) || lag > cap || cap - lag >= need {
                continue;
            }
            if !alive(owner as u32)
                && s.owner
                    .compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                freed += 1;
            }
        }
        freed
    }
}

/// The slowest joined subscriber: its position and slot, or `None` when
/// no subscriber has joined. A slot whose position is not a multiple of 8
/// or more than a ring behind `tail` is joining (its owner will see that
/// `front` passed it and start again) and is not counted.
pub fn slowest(view: &RingView<'_>, tail: u64) -> Option<(u64, usize)> {
    let cap = view.capacity();
    let mut best: Option<(u64, usize)> = None;
    for i in 0..view.sender_slots() {
        let s = view.subscriber_slot(i);
        // Acquire: pairs with the Release store of 0 in Subscriber::leave
        // (the leaver's reads are done). A slot still joining counts: the
        // join protocol needs us to wait for its position.
        if s.owner.load(Ordering::Acquire) == 0 {
            continue;
        }
        // Acquire: pairs with the Release store of the position in
        // Cursor::release_to: the subscriber's reads of what it released
        // happen before we write over them.
        let pos = s.position.load(Ordering::Acquire);
        let lag = tail.wrapping_sub(pos);
        if !pos.is_multiple_of(8) || lag > cap {
            continue;
        }
        if best.is_none_or(|(p, _)| tail.wrapping_sub(p) < lag) {
            best = Some((pos, i));
        }
    }
    best
}

/// How many subscribers have joined (owned slots whose owner has finished
/// [`Subscriber::join`], with a position within a ring behind `tail` in
/// Block mode). A subscriber is counted only once its join can no longer
/// start again: every message published after a count that includes it
/// reaches it (in Overwrite mode, or is counted as missed).
pub fn joined(view: &RingView<'_>, tail: u64) -> usize {
    let cap = view.capacity();
    (0..view.sender_slots())
        .filter(|&i| {
            let s = view.subscriber_slot(i);
            // Acquire: pairs with the Release clearing of SLOT_JOINING in
            // Subscriber::join (the position loaded next is its start, or
            // a later one).
            let owner = s.owner.load(Ordering::Acquire);
            // Relaxed: ordered after the load above.
            let pos = s.position.load(Ordering::Relaxed);
            counts_as_joined(owner, pos, tail, cap, view.overwrites())
        })
        .count()
}

/// Whether a slot with `owner` and `position` counts as a joined
/// subscriber ([`joined`], and the statistics' `joined`): owned, its join
/// final, a position, within a ring behind `tail` in Block mode (a lapped
/// Overwrite subscriber has joined all the same).
pub fn counts_as_joined(owner: u64, position: u64, tail: u64, cap: u64, overwrite: bool) -> bool {
    owner != 0
        && owner & SLOT_JOINING == 0
        && position.is_multiple_of(8)
        && (overwrite || tail.wrapping_sub(position) <= cap)
}

impl Fan for Fanout {
    #[inline]
    fn reload(&self, view: &RingView<'_>, tail: u64, _: u64) -> Result<u64, Corrupted> {
        if self.overwrite {
            return Ok(tail);
        }
        Ok(slowest(view, tail).map_or(tail, |(pos, _)| pos))
    }

    #[inline]
    fn cover(
        &mut self,
        view: &RingView<'_>,
        tail: u64,
        end: u64,
        cached: &mut u64,
    ) -> Result<bool, Corrupted> {
        if end.wrapping_sub(self.front) as i64 <= 0 {
            return Ok(true);
        }
        self.advance(view, tail, end)?;
        if self.overwrite {
            return Ok(true);
        }
        // The store-load fence between our store of front and our load of
        // joins (light: the joiner's membarrier is the other half).
        wake::fence_after_publish(self.light);
        // Acquire (JOINS_LOAD): pairs with the SeqCst increment by a
        // joiner, after its store of its position: a look at the table
        // that follows sees that position. (Ordered after our store of
        // front by the fence above: see the module docs.)
        let joins = view.lap().joins.load(JOINS_LOAD);
        if joins == self.joins {
            return Ok(true);
        }
        self.joins = joins;
        *cached = self.reload(view, tail, *cached)?;
        Ok(view.capacity() - tail.wrapping_sub(*cached) >= end.wrapping_sub(tail))
    }

    #[inline]
    fn wrote(&mut self, start: u64, message: bool) {
        if self.chunk != 0 {
            // The chunks whose first record starts here: usually none,
            // once per chunk one, a few for a record longer than a chunk.
            let shift = self.chunk.trailing_zeros();
            let last = start >> shift;
            while self.next_chunk.wrapping_sub(last) as i64 <= 0 {
                let k = (self.next_chunk as usize) & (self.starts.len() - 1);
                self.starts[k] = (start, self.next_seq);
                self.next_chunk = self.next_chunk.wrapping_add(1);
            }
        }
        if message {
            self.next_seq = self.next_seq.wrapping_add(1);
        }
    }

    #[inline]
    fn published(&mut self, view: &RingView<'_>, tail: u64, wake: &mut Wakeups) {
        let st = view.state();
        // `tail` Release: pairs with the Acquire load of tail in
        // spsc::zero_behind_tail (as for SPSC).
        self.tail_ver = self.tail_ver.wrapping_add(1);
        // Relaxed: ordered before the pair by the fence below.
        st.producer.tail_ver.store(self.tail_ver, Ordering::Relaxed);
        // Release fence: pairs with the Acquire fence in `read_pair`.
        fence(Ordering::Release);
        // Relaxed: published by the version store below.
        st.producer.next_seq.store(self.next_seq, Ordering::Relaxed);
        // Release: pairs with the Acquire load in spsc::zero_behind_tail.
        st.producer.tail.store(tail, Ordering::Release);
        self.tail_ver = self.tail_ver.wrapping_add(1);
        // Release: pairs with the first Acquire load in `read_pair`.
        st.producer.tail_ver.store(self.tail_ver, Ordering::Release);
        // Subscribers sleep in their slots, as MPSC senders do; none
        // counts itself in recv_waiters (max 0: nothing posted for it).
        wake.claim_senders_after_publish(&st.wake.recv_waiters, 0, &st.wake.sleeping_senders);
    }
}

/// Takes the publishing end of a broadcast `view`, continuing from the
/// shared state.
///
/// # Safety
/// No other publisher of this ring (in any thread or process) is used
/// while this one is.
pub unsafe fn publisher(view: RingView<'_>) -> Result<Producer<'_, Fanout>, Corrupted> {
    let fan = Fanout::resume(&view)?;
    // SAFETY: the caller's contract.
    unsafe {
        Producer::with_fan(view, fan, |view, fan, stored| {
            fan.reload(view, stored, stored)
        })
    }
}

mod subscriber;
pub use subscriber::{free_slot, take_slot, Next, Subscriber};

#[cfg(all(test, not(shmchan_loom)))]
mod tests;
