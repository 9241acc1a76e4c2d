//! The segment format, version 2, defined once.
//!
//! ```text
//!  offset  size  line  field            written by
//!  ------  ----  ----  ---------------  -------------------------------------
//!       0     8     0  magic            creator, once ("SHMCHAN\0")
//!       8     4     0  version          creator, once (1)
//!      12     4     0  flavor           creator, once (1 = SPSC, 2 = MPSC, 3 = broadcast)
//!      16     8     0  data_offset      creator, once (512)
//!      24     8     0  capacity         creator, once (power of two, bytes)
//!      32     8     0  max_message      creator, once (payload bytes)
//!      40     8     0  segment_len      creator, once (bytes, whole pages)
//!      48     4     0  creator_pid      creator, once
//!      52     4     0  creator_uid      creator, once
//!      56     8     0  created_at       creator, once (seconds since epoch)
//!      64     4     0  state            creator, last, Release (READY)
//!      68     4     0  sender_slots     creator, once (MPSC: slots; SPSC: 0)
//!      72     4     0  sem_id           creator, once (the semaphore set's id)
//!      76     4     0  overflow         creator, once (broadcast: 0 = block, 1 = overwrite)
//!      80     8     0  key_dev          creator, once (ftok key: the path's device)
//!      88     8     0  key_ino          creator, once (ftok key: the path's inode)
//!      96     8     0  pid_ns           creator, once (its pid namespace's inode, or 0)
//!     128     8     1  tail             producer: end of committed records
//!     136     8     1  next_seq         broadcast publisher: messages before tail
//!     144     8     1  tail_ver         broadcast publisher: seqlock of tail, next_seq
//!     192     8     1  sent_messages    SPSC producer: messages committed
//!     200     8     1  sent_bytes       SPSC producer: payload bytes committed
//!     208     8     1  receiver_gone    receiver: 1 on a clean drop, 0 on connect
//!     256     8     2  head             consumer: start of unreleased records
//!     320     8     2  received_messages consumer: messages released
//!     328     8     2  received_bytes   consumer: payload bytes released
//!     384     4     3  recv_waiters     consumer announces, producer claims
//!     388     4     3  send_waiters     producer announces, consumer claims
//!     392     8     3  sender_connects  every sender, on connect
//!     400     8     3  receiver_connects every receiver, on connect
//!     408     8     3  full_events      a sender that found the ring full
//!     416     8     3  sender_sleeps    a sender, per sleep (semaphore or futex wait)
//!     424     8     3  receiver_sleeps  a receiver, per semaphore wait
//!     432     8     3  sleeping_senders MPSC: mask of sender slots announced asleep
//!     512     …        sender slots     MPSC only: `sender_slots` lines of
//!                                        `{ owner: u64, claim: u64,
//!                                        sent_messages: u64, sent_bytes: u64,
//!                                        sleeping: u32 }`
//!     512   128        lap line         broadcast only: `{ front, joins,
//!                                        oldest_ver, oldest_pos, oldest_seq }`
//!     640     …        subscriber slots broadcast only: `sender_slots` lines
//!     512 + 128 × sender_slots           data region, `capacity` bytes
//!                                        (broadcast: 512 + 128 × (1 + slots))
//! ```
//!
//! Lines are 128 bytes, so the producer's and the consumer's fields never
//! share a cache line (128 covers the adjacent-line prefetcher on x86).
//!
//! A record is an 8-byte header word, `{ kind: u32 (high half), len: u32
//! (low half) }`, then `len` payload bytes, padded to a multiple of 8.
//! A record never wraps: a padding record fills the gap to the end of the
//! data region. Positions (`head`, `tail`) are byte counts that only grow;
//! the index of a position is `pos & (capacity - 1)`.
//!
//! Everything in the segment is untrusted: [`validate`] checks a copy of the
//! header, and the ring checks every position and length it reads.
//!
//! This module is the format's one definition in code: the constants
//! below (offsets, record kinds, semaphore numbers, the claim bit) are what
//! an implementation in another language needs, beside `docs/FORMAT.md`.
//! The `#[repr(C)]` structs of the shared lines are in `lines.rs`, the
//! header's validation in `header.rs`.

mod header;
pub(crate) mod lines;

use std::fmt;

pub use header::{data_offset_for, validate, HeaderError, Layout};

/// `b"SHMCHAN\0"` read as a native-endian `u64`.
pub const MAGIC: u64 = u64::from_ne_bytes(*b"SHMCHAN\0");
/// The format version this crate writes and reads.
pub const VERSION: u32 = 2;
/// The `state` value once the creator has finished initialising.
pub const STATE_READY: u32 = 0x5245_4459; // "REDY"
/// Bytes of header before the data region.
pub const HEADER_SIZE: usize = 512;
/// Size of a cache line as far as layout is concerned.
pub const LINE: usize = 128;
/// Size of a record header.
pub const RECORD_HEADER: usize = 8;
/// Records start at multiples of this.
pub const RECORD_ALIGN: usize = 8;
/// The smallest data region.
pub const MIN_CAPACITY: usize = 64;
/// The largest data region (1 TiB).
pub const MAX_CAPACITY: usize = 1 << 40;
/// Sender slots of an MPSC channel unless the creator asks otherwise.
pub const DEFAULT_SENDER_SLOTS: usize = 64;
/// The most sender slots an MPSC channel may have.
pub const MAX_SENDER_SLOTS: usize = 4096;
/// Subscriber slots of a broadcast channel unless the creator asks
/// otherwise.
pub const DEFAULT_SUBSCRIBERS: usize = 16;
/// The most subscriber slots a broadcast channel may have (with the lap
/// line, its table is as long as the longest sender table).
pub const MAX_SUBSCRIBERS: usize = MAX_SENDER_SLOTS - 1;
/// A subscriber slot's `position` while its owner has not joined yet (not
/// a multiple of 8, so never a position).
pub const NOT_JOINED: u64 = 1;
/// Set in a subscriber slot's `owner` (above the pid) from the moment the
/// slot is taken until its owner has joined: the publisher waits for such
/// a slot's position as for any (the join protocol needs it), but does not
/// count it as a subscriber, so a count that includes a subscriber means
/// every message published after it reaches that subscriber.
pub const SLOT_JOINING: u64 = 1 << 32;
/// A sender slot's `claim` when the slot's sender is not claiming.
pub const NO_CLAIM: u64 = 1;
/// Set in the high half of an MPSC record header while its producer writes
/// it; the rest of the high half is the producer's pid.
pub const CLAIM_BIT: u32 = 0x8000_0000;

/// Semaphore 0 of a channel's set: the data doorbell, posted for sleeping
/// receivers.
pub const SEM_DATA: u16 = 0;
/// Semaphore 1: the space doorbell, posted for sleeping senders.
pub const SEM_SPACE: u16 = 1;
/// Semaphore 2: live senders (each holds +1 with `SEM_UNDO`).
pub const SEM_SENDERS: u16 = 2;
/// Semaphore 3: live receivers (each holds +1 with `SEM_UNDO`).
pub const SEM_RECEIVERS: u16 = 3;
/// Semaphores in a channel's set.
pub const NSEMS: u16 = 4;

/// Offsets of the header fields (see the table above).
pub mod offset {
    /// `magic`
    pub const MAGIC: usize = 0;
    /// `version`
    pub const VERSION: usize = 8;
    /// `flavor`
    pub const FLAVOR: usize = 12;
    /// `data_offset`
    pub const DATA_OFFSET: usize = 16;
    /// `capacity`
    pub const CAPACITY: usize = 24;
    /// `max_message`
    pub const MAX_MESSAGE: usize = 32;
    /// `segment_len`
    pub const SEGMENT_LEN: usize = 40;
    /// `creator_pid`
    pub const CREATOR_PID: usize = 48;
    /// `creator_uid`
    pub const CREATOR_UID: usize = 52;
    /// `created_at`
    pub const CREATED_AT: usize = 56;
    /// `state`
    pub const STATE: usize = 64;
    /// `sender_slots`
    pub const SENDER_SLOTS: usize = 68;
    /// `sem_id`
    pub const SEM_ID: usize = 72;
    /// `overflow` (broadcast: 0 block, 1 overwrite; 0 for the others)
    pub const OVERFLOW: usize = 76;
    /// `key_dev`
    pub const KEY_DEV: usize = 80;
    /// `key_ino`
    pub const KEY_INO: usize = 88;
    /// `pid_ns`
    pub const PID_NS: usize = 96;
    /// The first sender slot (MPSC).
    pub const SENDER_TABLE: usize = super::HEADER_SIZE;
    /// The broadcast lap line (broadcast only).
    pub const LAP_LINE: usize = super::HEADER_SIZE;
    /// The first subscriber slot (broadcast only), after the lap line.
    pub const SUBSCRIBER_TABLE: usize = super::HEADER_SIZE + super::LINE;
    /// `next_seq` (broadcast): messages published before `tail`.
    pub const NEXT_SEQ: usize = 136;
    /// `tail_ver` (broadcast): the seqlock of `tail` and `next_seq`.
    pub const TAIL_VER: usize = 144;
    /// The ring's shared state (the producer, consumer and wake lines).
    pub const RING_STATE: usize = 128;
    /// `tail`
    pub const TAIL: usize = 128;
    /// `head`
    pub const HEAD: usize = 256;
    /// `recv_waiters`
    pub const RECV_WAITERS: usize = 384;
    /// `send_waiters`
    pub const SEND_WAITERS: usize = 388;
    /// `sender_connects`
    pub const SENDER_CONNECTS: usize = 392;
    /// `receiver_connects`
    pub const RECEIVER_CONNECTS: usize = 400;
    /// `sent_messages` (SPSC)
    pub const SENT_MESSAGES: usize = 192;
    /// `sent_bytes` (SPSC)
    pub const SENT_BYTES: usize = 200;
    /// `receiver_gone`
    pub const RECEIVER_GONE: usize = 208;
    /// `received_messages`
    pub const RECEIVED_MESSAGES: usize = 320;
    /// `received_bytes`
    pub const RECEIVED_BYTES: usize = 328;
    /// `full_events`
    pub const FULL_EVENTS: usize = 408;
    /// `sender_sleeps`
    pub const SENDER_SLEEPS: usize = 416;
    /// `receiver_sleeps`
    pub const RECEIVER_SLEEPS: usize = 424;
    /// `sleeping_senders` (MPSC)
    pub const SLEEPING_SENDERS: usize = 432;
    /// `recv_bell`: the doorbell id of a receiver waiting in a poll loop
    pub const RECV_BELL: usize = 440;
    /// `send_bell`: the doorbell id of an SPSC sender waiting in a poll loop
    pub const SEND_BELL: usize = 448;
    /// `sleeping`, in a sender slot: its offset within the slot's line.
    pub const SLOT_SLEEPING: usize = 32;
    /// `bell`, in a sender slot: its offset within the slot's line.
    pub const SLOT_BELL: usize = 40;
}

/// Record kinds (the high half of a record header word).
pub mod kind {
    /// A message of `len` payload bytes.
    pub const MESSAGE: u32 = 1;
    /// Filler: `len` bytes follow the header and are skipped (up to the
    /// end of the data region, an aborted grant, a recovered claim).
    pub const PADDING: u32 = 2;
}

/// Packs a record header word.
#[inline]
pub const fn record_header(kind: u32, len: u32) -> u64 {
    ((kind as u64) << 32) | len as u64
}

/// Unpacks a record header word into `(kind, len)`.
#[inline]
pub const fn split_record_header(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// Bytes a record with `len` payload bytes takes in the ring.
#[inline]
pub const fn record_size(len: usize) -> usize {
    (RECORD_HEADER + len + RECORD_ALIGN - 1) & !(RECORD_ALIGN - 1)
}

/// The largest payload a ring of `capacity` bytes can hold: a record, and
/// the header word that must stay free past it.
pub const fn max_message_for(capacity: usize) -> usize {
    capacity - 2 * RECORD_HEADER
}

/// Which algorithm a channel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Flavor {
    /// One sender, one receiver.
    #[default]
    Spsc,
    /// Many senders (in any processes), one receiver.
    Mpsc,
    /// One publisher, many subscribers (in any processes), each of whom
    /// receives every message (see [`Overflow`] for a slow one).
    Broadcast,
}

/// What a broadcast publisher does when the slowest subscriber is a ring
/// behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Overflow {
    /// The publisher waits (as a pipe's writer): no live subscriber loses
    /// a message. A subscriber that dies is released after the recovery
    /// timeout ([`crate::Sender::set_recovery_timeout`]).
    #[default]
    Block,
    /// The publisher never waits: a subscriber a ring behind loses the
    /// oldest messages and is told how many (`Lagged { missed }`).
    Overwrite,
}

impl Overflow {
    /// The value stored in the header.
    pub const fn to_raw(self) -> u32 {
        match self {
            Overflow::Block => 0,
            Overflow::Overwrite => 1,
        }
    }

    /// The mode a header value stands for.
    pub const fn from_raw(raw: u32) -> Option<Overflow> {
        match raw {
            0 => Some(Overflow::Block),
            1 => Some(Overflow::Overwrite),
            _ => None,
        }
    }
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Overflow::Block => "block",
            Overflow::Overwrite => "overwrite",
        })
    }
}

impl Flavor {
    /// The value stored in the header.
    pub const fn to_raw(self) -> u32 {
        match self {
            Flavor::Spsc => 1,
            Flavor::Mpsc => 2,
            Flavor::Broadcast => 3,
        }
    }

    /// The flavor a header value stands for.
    pub const fn from_raw(raw: u32) -> Option<Flavor> {
        match raw {
            1 => Some(Flavor::Spsc),
            2 => Some(Flavor::Mpsc),
            3 => Some(Flavor::Broadcast),
            _ => None,
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::Spsc => "spsc",
            Flavor::Mpsc => "mpsc",
            Flavor::Broadcast => "broadcast",
        })
    }
}
