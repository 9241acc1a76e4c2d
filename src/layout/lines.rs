//! The shared, changing lines of the header and the MPSC sender table, as
//! `#[repr(C)]` structs of atomics only (the padding too: another process
//! may write any byte of them while this one holds a reference): the only
//! way the crate reads or writes them. Their offsets are the constants of [`super::offset`], checked
//! below at compile time.

use super::NO_CLAIM;
use crate::sync::{AtomicU32, AtomicU64};

/// The shared, changing part of the header: one 128-byte line per writer.
#[repr(C)]
#[derive(Debug, Default)]
pub struct RingState {
    /// Written by the producer.
    pub producer: ProducerLine,
    /// Written by the consumer.
    pub consumer: ConsumerLine,
    /// Written rarely: by a side that goes to sleep, and on connect.
    pub wake: WakeLine,
}

/// The producer's line.
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub struct ProducerLine {
    /// `{ position: u64 }`: the end of the committed records; the producer
    /// stores it with Release after writing them.
    pub tail: AtomicU64,
    /// `{ count: u64 }`, broadcast: the messages published before `tail`
    /// (the sequence number of the record at `tail`); with `tail`, under
    /// the seqlock `tail_ver`.
    pub next_seq: AtomicU64,
    /// `{ version: u64 }`, broadcast: odd while the publisher stores `tail`
    /// and `next_seq`, even between (a joining subscriber reads the pair
    /// between two equal even values).
    pub tail_ver: AtomicU64,
    _pad: [AtomicU64; 5],
    /// `{ count: u64 }`: SPSC messages committed, ever (statistics only;
    /// MPSC senders count in their sender slots).
    pub sent_messages: AtomicU64,
    /// `{ count: u64 }`: SPSC payload bytes committed, ever.
    pub sent_bytes: AtomicU64,
    /// `{ flag: u64 }`: non-zero once a receiver has left cleanly (its
    /// drop stores 1), 0 again when the next receiver connects. The one
    /// word of this line the consumer writes, at departure and connect
    /// only. A sender loads it on every send and says `Disconnected` at
    /// once instead of filling a ring nobody reads; it lies in the half
    /// of the line the consumer does not poll (beside `tail` it cost a
    /// round trip a quarter slower: the load waited on the line the
    /// consumer reads `tail` from).
    pub receiver_gone: AtomicU64,
    _pad_end: [AtomicU64; 5],
}

/// The consumer's line.
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub struct ConsumerLine {
    /// `{ position: u64 }`: the start of the first unreleased record; the
    /// consumer stores it with Release after it is done with the records
    /// before it.
    pub head: AtomicU64,
    /// Keeps the counters off `head`'s 64-byte coherence unit, which the
    /// producer reads.
    _pad: [AtomicU64; 7],
    /// `{ count: u64 }`: messages released, ever (statistics only).
    pub received_messages: AtomicU64,
    /// `{ count: u64 }`: payload bytes released, ever.
    pub received_bytes: AtomicU64,
}

/// Sleep announcements and connection counters.
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub struct WakeLine {
    /// `{ count: u32 }`: receivers that announced they are about to sleep on
    /// the data semaphore and were not claimed yet.
    pub recv_waiters: AtomicU32,
    /// `{ count: u32 }`: senders that announced they are about to sleep on
    /// the space semaphore and were not claimed yet.
    pub send_waiters: AtomicU32,
    /// How many senders have ever connected.
    pub sender_connects: AtomicU64,
    /// How many receivers have ever connected.
    pub receiver_connects: AtomicU64,
    /// `{ count: u64 }`: times a sender found the ring full (statistics).
    pub full_events: AtomicU64,
    /// `{ count: u64 }`: sleeps of senders: semaphore waits (SPSC), futex
    /// waits (MPSC) (statistics).
    pub sender_sleeps: AtomicU64,
    /// `{ count: u64 }`: semaphore waits of receivers (statistics).
    pub receiver_sleeps: AtomicU64,
    /// `{ mask: u64 }`, MPSC: bit `i % 64` is set by the sender in slot
    /// `i` when it announces that it is about to sleep (on its slot's
    /// `sleeping` word); the consumer claims the mask after each release
    /// (swap with 0) and wakes the slots it names that say so.
    pub sleeping_senders: AtomicU64,
    /// `{ id: u64 }`: the socket doorbell of a receiver waiting in a poll
    /// loop (a `Select`), 0 when none; the producer that claims it (swap
    /// with 0) after a publish rings it. A word, not a count.
    pub recv_bell: AtomicU64,
    /// `{ id: u64 }`: the same for an SPSC sender waiting for space; the
    /// consumer claims it after a release.
    pub send_bell: AtomicU64,
}

/// One MPSC sender's line in the sender table. The sender that owns it is
/// the only writer of `claim`; the receiver reads the table only to decide
/// whether a claimed but unmarked record belongs to a live sender.
#[repr(C, align(128))]
#[derive(Debug)]
pub struct SenderSlot {
    /// `{ pid: u64 }`: the owning sender's process, 0 when free. Taken with
    /// a CAS from 0, or from a dead process whose last claim was consumed.
    pub owner: AtomicU64,
    /// `{ position: u64 }`: the tail value the owner is claiming from (or
    /// last claimed from), stored before every claim attempt; [`NO_CLAIM`]
    /// when none.
    pub claim: AtomicU64,
    /// `{ count: u64 }`: messages committed by this slot's owners, ever
    /// (statistics; a new owner continues the count).
    pub sent_messages: AtomicU64,
    /// `{ count: u64 }`: payload bytes committed by this slot's owners.
    pub sent_bytes: AtomicU64,
    /// `{ flag: u32 }`: 1 while the owner has announced that it is about
    /// to sleep on a full ring, 0 otherwise; the owner sleeps in a futex
    /// wait on this word, and a waker stores 0 before it wakes it. A word,
    /// not a count: whatever an owner killed asleep leaves here is cleared
    /// by the next claim and wakes nobody.
    pub sleeping: AtomicU32,
    /// `{ id: u64 }`: the socket doorbell of the owner when it waits for
    /// space in a poll loop (a `Select`), 0 when none; announced with the
    /// slot's bit in `sleeping_senders`, claimed (swap with 0) and rung by
    /// the consumer like the flag. A word, not a count.
    pub bell: AtomicU64,
}

impl Default for SenderSlot {
    /// A free slot: no owner, no claim.
    fn default() -> SenderSlot {
        SenderSlot {
            owner: AtomicU64::new(0),
            claim: AtomicU64::new(NO_CLAIM),
            sent_messages: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
            sleeping: AtomicU32::new(0),
            bell: AtomicU64::new(0),
        }
    }
}

/// The broadcast publisher's lap line, after the header: how far it may
/// write, and the oldest message it has not overwritten. Written once per
/// chunk of the ring (an eighth of it, at most), read by every subscriber
/// of an `Overwrite` channel after each copy, and by every joining one.
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub struct LapLine {
    /// `{ position: u64 }`: the publisher writes no byte at or past
    /// `front` before it has stored a larger `front`; so the bytes of a
    /// position `p` are intact while `front <= p + capacity`.
    pub front: AtomicU64,
    /// `{ count: u64 }`: subscribers that have joined, ever. The publisher
    /// loads it each time it moves `front` and then looks at the
    /// subscriber table again.
    pub joins: AtomicU64,
    /// `{ version: u64 }`: the seqlock of `oldest_pos` and `oldest_seq`.
    pub oldest_ver: AtomicU64,
    /// `{ position: u64 }`: the first record at or past `front - capacity`
    /// (a record boundary; intact).
    pub oldest_pos: AtomicU64,
    /// `{ count: u64 }`: the sequence number of the record at `oldest_pos`.
    pub oldest_seq: AtomicU64,
    _pad: [AtomicU64; 11],
}

/// One broadcast subscriber's line in the subscriber table. Its owner is
/// the only writer but for `owner` (a publisher or a joiner frees the slot
/// of a dead owner) and `sleeping`/`bell` (the publisher clears them when
/// it wakes the owner). `sleeping` and `bell` are where a sender slot has
/// them, so the wake code serves both tables.
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub struct SubscriberSlot {
    /// `{ pid: u64 }`: the owning subscriber's process, 0 when free; with
    /// [`super::SLOT_JOINING`] added until the owner has joined.
    pub owner: AtomicU64,
    /// `{ position: u64 }`: the start of the first record the owner has not
    /// released; [`super::NOT_JOINED`] until it has joined.
    pub position: AtomicU64,
    /// `{ count: u64 }`: messages received by this slot's owners (stored
    /// every 64 messages and when waiting).
    pub received_messages: AtomicU64,
    /// `{ count: u64 }`: payload bytes received by this slot's owners.
    pub received_bytes: AtomicU64,
    /// `{ flag: u32 }`: 1 while the owner has announced that it is about to
    /// sleep on an empty ring (as a sender slot's `sleeping`).
    pub sleeping: AtomicU32,
    _reserved: AtomicU32,
    /// `{ id: u64 }`: the owner's socket doorbell while it waits in a poll
    /// loop (as a sender slot's `bell`).
    pub bell: AtomicU64,
    /// `{ count: u64 }`: the sequence number of the record at `position`.
    pub seq: AtomicU64,
    /// `{ count: u64 }`: times the owner was told it lagged (overwrite).
    pub lagged: AtomicU64,
    /// `{ count: u64 }`: messages the owner missed, in all (overwrite).
    pub missed: AtomicU64,
    _pad: [AtomicU64; 7],
}

#[cfg(not(shmchan_loom))]
mod asserts {
    use super::super::{offset, HEADER_SIZE, LINE};
    use super::*;
    use static_assertions::{const_assert, const_assert_eq};
    use std::mem::{align_of, offset_of, size_of};

    const_assert_eq!(size_of::<ProducerLine>(), LINE);
    const_assert_eq!(size_of::<ConsumerLine>(), LINE);
    const_assert_eq!(size_of::<WakeLine>(), LINE);
    const_assert_eq!(align_of::<RingState>(), LINE);
    const_assert_eq!(size_of::<RingState>(), 3 * LINE);
    const_assert_eq!(
        offset::RING_STATE + offset_of!(RingState, producer) + offset_of!(ProducerLine, tail),
        offset::TAIL
    );
    const_assert_eq!(
        offset::RING_STATE + offset_of!(RingState, consumer) + offset_of!(ConsumerLine, head),
        offset::HEAD
    );
    const_assert_eq!(
        offset::RING_STATE
            + offset_of!(RingState, producer)
            + offset_of!(ProducerLine, receiver_gone),
        offset::RECEIVER_GONE
    );
    const_assert_eq!(
        offset::RING_STATE + offset_of!(RingState, wake) + offset_of!(WakeLine, recv_waiters),
        offset::RECV_WAITERS
    );
    const_assert_eq!(
        offset::RING_STATE + offset_of!(RingState, wake) + offset_of!(WakeLine, send_waiters),
        offset::SEND_WAITERS
    );
    const_assert_eq!(
        offset::RING_STATE + offset_of!(RingState, wake) + offset_of!(WakeLine, sender_connects),
        offset::SENDER_CONNECTS
    );
    const_assert_eq!(
        offset::RING_STATE + offset_of!(RingState, wake) + offset_of!(WakeLine, receiver_connects),
        offset::RECEIVER_CONNECTS
    );
    macro_rules! at {
        ($line:ident, $ty:ident, $field:ident) => {
            offset::RING_STATE + offset_of!(RingState, $line) + offset_of!($ty, $field)
        };
    }
    const_assert_eq!(
        at!(producer, ProducerLine, sent_messages),
        offset::SENT_MESSAGES
    );
    const_assert_eq!(at!(producer, ProducerLine, sent_bytes), offset::SENT_BYTES);
    const_assert_eq!(
        at!(consumer, ConsumerLine, received_messages),
        offset::RECEIVED_MESSAGES
    );
    const_assert_eq!(
        at!(consumer, ConsumerLine, received_bytes),
        offset::RECEIVED_BYTES
    );
    const_assert_eq!(at!(wake, WakeLine, full_events), offset::FULL_EVENTS);
    const_assert_eq!(at!(wake, WakeLine, sender_sleeps), offset::SENDER_SLEEPS);
    const_assert_eq!(
        at!(wake, WakeLine, receiver_sleeps),
        offset::RECEIVER_SLEEPS
    );
    const_assert_eq!(offset_of!(SenderSlot, sent_messages), 16);
    const_assert_eq!(offset_of!(SenderSlot, sent_bytes), 24);
    const_assert_eq!(offset_of!(SenderSlot, sleeping), offset::SLOT_SLEEPING);
    const_assert_eq!(offset_of!(SenderSlot, bell), offset::SLOT_BELL);
    const_assert_eq!(
        at!(wake, WakeLine, sleeping_senders),
        offset::SLEEPING_SENDERS
    );
    const_assert_eq!(at!(wake, WakeLine, recv_bell), offset::RECV_BELL);
    const_assert_eq!(at!(wake, WakeLine, send_bell), offset::SEND_BELL);
    const_assert!(offset::SEM_ID + 4 <= offset::KEY_DEV);
    const_assert!(offset::KEY_INO + 8 <= offset::PID_NS);
    const_assert!(offset::PID_NS + 8 <= LINE);
    const_assert_eq!(offset::RING_STATE + size_of::<RingState>(), HEADER_SIZE);
    const_assert_eq!(size_of::<AtomicU64>(), 8);
    const_assert_eq!(size_of::<AtomicU32>(), 4);
    const_assert!(offset::STATE + 4 <= LINE);
    const_assert_eq!(HEADER_SIZE % LINE, 0);
    const_assert_eq!(size_of::<SenderSlot>(), LINE);
    const_assert_eq!(size_of::<SubscriberSlot>(), LINE);
    const_assert_eq!(size_of::<LapLine>(), LINE);
    const_assert_eq!(
        offset_of!(SubscriberSlot, sleeping),
        offset_of!(SenderSlot, sleeping)
    );
    const_assert_eq!(
        offset_of!(SubscriberSlot, bell),
        offset_of!(SenderSlot, bell)
    );
    const_assert_eq!(offset_of!(SubscriberSlot, position), 8);
    const_assert_eq!(offset_of!(SubscriberSlot, seq), 48);
    const_assert_eq!(offset_of!(SubscriberSlot, lagged), 56);
    const_assert_eq!(offset_of!(SubscriberSlot, missed), 64);
    const_assert_eq!(offset_of!(LapLine, oldest_seq), 32);
    const_assert_eq!(offset::SUBSCRIBER_TABLE, offset::LAP_LINE + LINE);
    const_assert_eq!(at!(producer, ProducerLine, next_seq), offset::NEXT_SEQ);
    const_assert_eq!(at!(producer, ProducerLine, tail_ver), offset::TAIL_VER);
    const_assert!(offset::SENDER_SLOTS + 4 <= LINE);
}
