//! The MPSC ring: many producers (threads or processes), one consumer.
//!
//! Positions are as in SPSC (`head <= tail <= head + capacity`, modulo
//! 2^64, multiples of 8), but `tail` is the end of the *claimed* space:
//! - A producer owns a line of the sender table (see [`take_slot`]). Before
//!   each claim attempt it stores the tail value it claims from in its
//!   slot's `claim`; then it claims `[t, t + need)` with a CAS of `tail`.
//!   When its record does not fit before the end of the region, the claim
//!   also covers the gap, which it fills with a padding record; when the
//!   two together are more than the ring (a record longer than the ring
//!   less the gap), the gap is claimed alone first, published as padding at
//!   once, and the record claimed at index 0 (so any allowed size fits an
//!   empty ring).
//! - It marks its record as in progress (the header's high half is
//!   [`CLAIM_BIT`] | its pid), writes the payload, and commits with one
//!   Release store of the header (`kind::MESSAGE`). An aborted reservation
//!   becomes padding of the record's size. With a gap, the record is marked
//!   before the gap's padding header is written, so a consumer that passes
//!   the padding sees the mark.
//! - The consumer reads headers in order with Acquire loads and stops at
//!   the first record that is not committed (header zero: claimed but not
//!   yet marked; or in progress). Before it releases space (one Release
//!   store of `head`) it zeroes it, so every header beyond `head` reads as
//!   zero until a producer writes it.
//!
//! Unlike SPSC, padding may sit anywhere in the region (aborted grants,
//! recovered claims).
//!
//! # A producer that dies in the middle
//!
//! A claim whose producer died before committing would stop the consumer
//! for ever. [`Consumer::try_recover`] (called by the channel after the
//! record has blocked it for the recovery timeout) turns it into padding,
//! but only when its claimant is proven dead by the caller's liveness check:
//! - marked in progress: the pid is in the header; the record's size too.
//! - not marked yet (the producer died between its CAS and its first
//!   store): the claimant is the sender whose slot names this position (it
//!   wrote it before the CAS, and changes it only after marking). Its size
//!   is not written anywhere, but nothing of it is: it ends where the next
//!   claim starts, which is the first of: the tail, a position another slot
//!   names, or the first non-zero word (the next record's header; the
//!   consumer zeroed everything it released). A producer's slot names a
//!   position only from just before its CAS until its mark (then it is
//!   cleared, with Release, so a consumer that reads the cleared slot sees
//!   the mark). A slot of a dead owner is taken over only once its claim
//!   lies behind `head`, so a slot naming an unconsumed unmarked claim
//!   stays until the consumer has recovered it.
//!
//! The header is changed with a CAS from the value seen, so a producer that
//! commits after all is never overwritten. These are the cases Agrona's
//! `ManyToOneRingBuffer::unblock` had bugs in (a full ring, a gap exactly
//! one record header long, a record that did not fit at the wrap); each is
//! a test (in `tests.rs`).

//!
//! Files: `producer.rs` (slots, claim, mark, commit, abort),
//! `consumer.rs` (reading headers in order), `recovery.rs` (turning a dead
//! claim into padding, and the receiver's policy of when to try),
//! `sleepers.rs` (which sleeping senders a release wakes).

mod consumer;
mod producer;
mod recovery;
mod sleepers;
#[cfg(all(test, not(shmchan_loom)))]
mod tests;

pub use consumer::Consumer;
pub use producer::{free_slot, take_slot, Producer};
pub use recovery::{Recoverer, DEFAULT_RECOVERY_TIMEOUT};
pub use sleepers::{claim_all_sleepers, claim_sleepers, claim_slot_bells};
// For the models, the fuzz targets and the tests.
#[cfg(any(shmchan_loom, feature = "internals", feature = "test-hooks", test))]
pub use producer::Stage;
#[cfg(any(shmchan_loom, feature = "internals", test))]
pub use {crate::layout::CLAIM_BIT, consumer::Blocked, recovery::Recovery};

/// Whether position `pos` lies behind `head` (consumed and released).
#[inline]
fn behind(pos: u64, head: u64) -> bool {
    (head.wrapping_sub(pos) as i64) > 0
}
