//! Recovering from a producer that died in the middle: the mechanism
//! ([`Consumer::try_recover`], which turns a dead claimant's claim into
//! padding; see the module docs of [`super`] for why it is safe) and the
//! receiver's policy of when to use it ([`Recoverer`]: after a record has
//! blocked the read position for the recovery timeout, or at once once
//! every sender is gone).

use std::time::{Duration, Instant};

use super::super::{Corrupted, Record};
use super::consumer::{Blocked, Consumer};
use crate::layout::{kind, record_header, split_record_header, CLAIM_BIT};
use crate::sync::Ordering;

/// How long an MPSC receiver waits on a claimed record before it checks
/// whether the claimant died (see `Receiver::set_recovery_timeout`).
pub const DEFAULT_RECOVERY_TIMEOUT: Duration = Duration::from_millis(100);

/// Rounds of recovery one look may make while senders live: each turns a
/// dead claim into padding (or finds the header changed); the next look
/// goes on. Once every sender is gone, a look goes on until the ring holds
/// no claim (at most one round per 8 bytes of the ring, and a few more).
const RECOVERY_ROUNDS: u64 = 64;

/// What [`Consumer::try_recover`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing is claimed at the read position.
    Empty,
    /// The record at the read position is not (or no longer) blocked:
    /// peek again.
    Retry,
    /// The claimant (this pid) is alive: wait for it.
    Alive(u32),
    /// An abandoned claim of `size` bytes became padding; `pid` is its
    /// claimant if known.
    Recovered {
        /// The dead claimant, when a header or a slot named it.
        pid: Option<u32>,
        /// Bytes turned into padding.
        size: u64,
    },
}

impl Consumer<'_> {
    /// Turns the claim that blocks the read position into padding if its
    /// claimant is dead (`alive(pid)` false for every sender that may own
    /// it; see the module docs of [`super`]). The caller decides when to
    /// call it (see [`Recoverer`]).
    ///
    /// # Safety
    /// `alive(pid)` returns false only for a process that will never again
    /// write to the ring (gone, or detached from its memory): a live
    /// claimant's record turned into padding would be released and reused
    /// while it writes.
    pub unsafe fn try_recover(
        &mut self,
        alive: &mut dyn FnMut(u32) -> bool,
    ) -> Result<Recovery, Corrupted> {
        let p = self.cursor.position();
        let avail = self.cursor.refresh()?;
        if avail == 0 {
            return Ok(Recovery::Empty);
        }
        let view = *self.cursor.view();
        let cap = view.capacity();
        let idx = view.index(p);
        let room = cap - idx as u64;
        // Acquire: as in try_peek.
        let word = self.header(p).load(Ordering::Acquire);
        let (high, len) = split_record_header(word);
        if high & CLAIM_BIT != 0 {
            let pid = high & !CLAIM_BIT;
            if alive(pid) {
                return Ok(Recovery::Alive(pid));
            }
            let size = view.check_record("in-progress record does not fit", p, len, avail)?;
            return Ok(self.make_padding(p, word, size, Some(pid)));
        }
        if word != 0 {
            return Ok(Recovery::Retry);
        }
        // Claimed but unmarked. The tail we loaded (Acquire) makes the
        // claimant's slot store visible; a slot that moved on since was
        // moved after its owner marked its record (Release/Acquire), which
        // the re-read below then sees.
        let mut bound = p.wrapping_add(avail.min(room));
        let mut claimant = None;
        for i in 0..view.sender_slots() {
            let s = view.sender_slot(i);
            // Acquire: pairs with the Release store of claim in
            // Producer::try_reserve_until.
            let claim = s.claim.load(Ordering::Acquire);
            // Acquire: pairs with the Release store of 0 in free_slot (and
            // the take-over CAS that continues its release sequence).
            let owner = s.owner.load(Ordering::Acquire);
            if claim == p && owner != 0 {
                if owner <= u64::from(u32::MAX) && alive(owner as u32) {
                    return Ok(Recovery::Alive(owner as u32));
                }
                claimant = u32::try_from(owner).ok().or(claimant);
            } else if claim.is_multiple_of(8) {
                let d = claim.wrapping_sub(p);
                if d > 0 && d < bound.wrapping_sub(p) {
                    bound = claim;
                }
            }
        }
        // Acquire: as in try_peek.
        if self.header(p).load(Ordering::Acquire) != 0 {
            return Ok(Recovery::Retry);
        }
        // Nothing of the dead claim was written: it ends at the first
        // non-zero word (the next record's header) or at the bound.
        let mut end = p.wrapping_add(8);
        // Acquire: pairs with the Release header stores, as in try_peek.
        while end != bound && self.header(end).load(Ordering::Acquire) == 0 {
            end = end.wrapping_add(8);
        }
        Ok(self.make_padding(p, 0, end.wrapping_sub(p), claimant))
    }

    fn make_padding(&mut self, pos: u64, seen: u64, size: u64, pid: Option<u32>) -> Recovery {
        // A padding header covers at most u32::MAX & !7 bytes; a longer
        // claim is recovered in several steps.
        let pad = record_header(
            kind::PADDING,
            (size - 8).min(u64::from(u32::MAX - 7)) as u32,
        );
        // Relaxed: the padding publishes nothing (this thread reads it
        // next); a CAS so that a header a producer wrote after all is kept.
        match self
            .header(pos)
            .compare_exchange(seen, pad, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => Recovery::Recovered { pid, size },
            Err(_) => Recovery::Retry,
        }
    }
}

/// The receiver's recovery policy: how long a claim may block it before it
/// asks whether the claimant is dead, and how many claims it recovered.
#[derive(Debug)]
pub struct Recoverer {
    /// The read position blocked by a claim, and since when.
    stuck: Option<(u64, Instant)>,
    timeout: Duration,
    /// Abandoned claims turned into padding so far.
    recovered: u64,
}

impl Recoverer {
    /// A policy with the given recovery timeout.
    pub fn new(timeout: Duration) -> Recoverer {
        Recoverer {
            stuck: None,
            timeout,
            recovered: 0,
        }
    }

    /// Sets the recovery timeout.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Claims of dead senders skipped so far.
    pub fn recovered(&self) -> u64 {
        self.recovered
    }

    /// How long a blocked receiver sleeps between looks: a quarter of the
    /// timeout, between 1 ms and `max`.
    pub fn poll_interval(&self, max: Duration) -> Duration {
        (self.timeout / 4).clamp(Duration::from_millis(1), max)
    }

    /// One look at the ring: the next record, if any. When a claim has
    /// blocked the read position for the recovery timeout (or at once with
    /// `force`, once every sender is gone), and its claimant is dead, the
    /// claim becomes padding and the look goes on.
    ///
    /// # Safety
    /// As for [`Consumer::try_recover`]: `alive` says false only of
    /// processes that will never write to the ring again.
    pub unsafe fn next(
        &mut self,
        c: &mut Consumer<'_>,
        force: bool,
        alive: &mut dyn FnMut(u32) -> bool,
    ) -> Result<Option<Record>, Corrupted> {
        let rounds = if force {
            c.view().capacity() / 8 + RECOVERY_ROUNDS
        } else {
            RECOVERY_ROUNDS
        };
        // After one recovery the receiver has waited its timeout already:
        // dead claims right behind it go at once (liveness is checked for
        // each all the same).
        let mut hurry = force;
        for _ in 0..rounds {
            if let Some(r) = c.try_peek()? {
                self.stuck = None;
                return Ok(Some(r));
            }
            if c.blocked() == Blocked::Empty {
                self.stuck = None;
                return Ok(None);
            }
            let pos = c.position();
            let now = Instant::now();
            let since = match self.stuck {
                Some((p, t)) if p == pos => t,
                _ => {
                    self.stuck = Some((pos, now));
                    now
                }
            };
            if !hurry && now.saturating_duration_since(since) < self.timeout {
                return Ok(None);
            }
            // SAFETY: the caller's contract on `alive`.
            match unsafe { c.try_recover(alive) }? {
                Recovery::Recovered { .. } => {
                    self.recovered += 1;
                    self.stuck = None;
                    hurry = true;
                }
                Recovery::Retry => {}
                Recovery::Alive(_) => {
                    // A live, slow sender: ask again a timeout later.
                    self.stuck = Some((pos, now));
                    return Ok(None);
                }
                Recovery::Empty => return Ok(None),
            }
        }
        Ok(None)
    }
}
