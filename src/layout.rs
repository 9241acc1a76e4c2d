//! The segment format, version 1, defined once.
//!
//! ```text
//!  offset  size  line  field            written by
//!  ------  ----  ----  ---------------  -------------------------------------
//!       0     8     0  magic            creator, once ("SHMCHAN\0")
//!       8     4     0  version          creator, once (1)
//!      12     4     0  flavor           creator, once (1 = SPSC, 2 = MPSC)
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
//!      80     8     0  key_dev          creator, once (ftok key: the path's device)
//!      88     8     0  key_ino          creator, once (ftok key: the path's inode)
//!     128     8     1  tail             producer: end of committed records
//!     192     8     1  sent_messages    SPSC producer: messages committed
//!     200     8     1  sent_bytes       SPSC producer: payload bytes committed
//!     256     8     2  head             consumer: start of unreleased records
//!     320     8     2  received_messages consumer: messages released
//!     328     8     2  received_bytes   consumer: payload bytes released
//!     384     4     3  recv_waiters     consumer announces, producer claims
//!     388     4     3  send_waiters     producer announces, consumer claims
//!     392     8     3  sender_connects  every sender, on connect
//!     400     8     3  receiver_connects every receiver, on connect
//!     408     8     3  full_events      a sender that found the ring full
//!     416     8     3  sender_sleeps    a sender, per semaphore wait
//!     424     8     3  receiver_sleeps  a receiver, per semaphore wait
//!     512     …        sender slots     MPSC only: `sender_slots` lines of
//!                                        `{ owner: u64, claim: u64,
//!                                        sent_messages: u64, sent_bytes: u64 }`
//!     512 + 128 × sender_slots           data region, `capacity` bytes
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

use std::fmt;

use crate::sync::{AtomicU32, AtomicU64};

/// `b"SHMCHAN\0"` read as a native-endian `u64`.
pub const MAGIC: u64 = u64::from_ne_bytes(*b"SHMCHAN\0");
/// The format version this crate writes and reads.
pub const VERSION: u32 = 1;
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
/// A sender slot's `claim` when the slot's sender is not claiming.
pub const NO_CLAIM: u64 = 1;

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
    /// `key_dev`
    pub const KEY_DEV: usize = 80;
    /// `key_ino`
    pub const KEY_INO: usize = 88;
    /// The first sender slot (MPSC).
    pub const SENDER_TABLE: usize = super::HEADER_SIZE;
    /// The ring's shared state ([`super::RingState`]).
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

/// The largest payload a ring of `capacity` bytes can hold.
pub const fn max_message_for(capacity: usize) -> usize {
    capacity - RECORD_HEADER
}

/// Which algorithm a channel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Flavor {
    /// One sender, one receiver.
    #[default]
    Spsc,
    /// Many senders (in any processes), one receiver.
    Mpsc,
}

impl Flavor {
    /// The value stored in the header.
    pub const fn to_raw(self) -> u32 {
        match self {
            Flavor::Spsc => 1,
            Flavor::Mpsc => 2,
        }
    }

    /// The flavor a header value stands for.
    pub const fn from_raw(raw: u32) -> Option<Flavor> {
        match raw {
            1 => Some(Flavor::Spsc),
            2 => Some(Flavor::Mpsc),
            _ => None,
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::Spsc => "spsc",
            Flavor::Mpsc => "mpsc",
        })
    }
}

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
    /// Keeps the counters off `tail`'s 64-byte coherence unit, which the
    /// consumer reads: they cost the producer an L1 store, no transfer.
    _pad: [u64; 7],
    /// `{ count: u64 }`: SPSC messages committed, ever (statistics only;
    /// MPSC senders count in their sender slots).
    pub sent_messages: AtomicU64,
    /// `{ count: u64 }`: SPSC payload bytes committed, ever.
    pub sent_bytes: AtomicU64,
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
    _pad: [u64; 7],
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
    /// `{ count: u64 }`: semaphore waits of senders (statistics).
    pub sender_sleeps: AtomicU64,
    /// `{ count: u64 }`: semaphore waits of receivers (statistics).
    pub receiver_sleeps: AtomicU64,
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
}

impl Default for SenderSlot {
    /// A free slot: no owner, no claim.
    fn default() -> SenderSlot {
        SenderSlot {
            owner: AtomicU64::new(0),
            claim: AtomicU64::new(NO_CLAIM),
            sent_messages: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
        }
    }
}

#[cfg(not(shmchan_loom))]
mod asserts {
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
    const_assert!(offset::SEM_ID + 4 <= offset::KEY_DEV);
    const_assert!(offset::KEY_INO + 8 <= LINE);
    const_assert_eq!(offset::RING_STATE + size_of::<RingState>(), HEADER_SIZE);
    const_assert_eq!(size_of::<AtomicU64>(), 8);
    const_assert_eq!(size_of::<AtomicU32>(), 4);
    const_assert!(offset::STATE + 4 <= LINE);
    const_assert_eq!(HEADER_SIZE % LINE, 0);
    const_assert_eq!(size_of::<SenderSlot>(), LINE);
    const_assert!(offset::SENDER_SLOTS + 4 <= LINE);
}

/// The validated geometry of a channel: a private copy, read once from the
/// header and trusted from then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The algorithm.
    pub flavor: Flavor,
    /// Where the data region starts (after the sender table).
    pub data_offset: usize,
    /// Lines in the sender table (MPSC; 0 for SPSC).
    pub sender_slots: usize,
    /// Size of the data region, a power of two.
    pub capacity: usize,
    /// The largest payload a sender may send.
    pub max_message: usize,
    /// Length of the whole segment.
    pub segment_len: usize,
    /// Pid of the creating process.
    pub creator_pid: u32,
    /// Uid of the creating process.
    pub creator_uid: u32,
    /// Creation time, seconds since the epoch.
    pub created_at: u64,
    /// The id of the channel's semaphore set, as the creator recorded it
    /// (for finding the set of a channel with a private key; a hint, to be
    /// checked against the set itself).
    pub sem_id: i32,
    /// For a channel created with an `ftok` key: the device and inode of
    /// the path (0, 0 otherwise). Tells a colliding path from the real one.
    pub key_path: (u64, u64),
}

impl Layout {
    /// The geometry for a new channel; `capacity` is rounded up to a power
    /// of two. Fails with the reason when the options cannot make a channel.
    pub fn new(
        flavor: Flavor,
        capacity: usize,
        max_message: Option<usize>,
    ) -> Result<Layout, String> {
        if capacity > MAX_CAPACITY {
            return Err(format!("capacity {capacity} is larger than {MAX_CAPACITY}"));
        }
        let capacity = capacity.max(MIN_CAPACITY).next_power_of_two();
        let max_message = max_message.unwrap_or(capacity / 4 - RECORD_HEADER);
        if max_message > max_message_for(capacity) || max_message > u32::MAX as usize {
            return Err(format!(
                "max_message {max_message} does not fit a ring of {capacity} bytes (at most {})",
                max_message_for(capacity).min(u32::MAX as usize)
            ));
        }
        let layout = Layout {
            flavor,
            data_offset: HEADER_SIZE,
            sender_slots: 0,
            capacity,
            max_message,
            segment_len: 0,
            creator_pid: 0,
            creator_uid: 0,
            created_at: 0,
            sem_id: 0,
            key_path: (0, 0),
        };
        let slots = match flavor {
            Flavor::Spsc => 0,
            Flavor::Mpsc => DEFAULT_SENDER_SLOTS,
        };
        layout.with_sender_slots(slots)
    }

    /// The same geometry with `slots` sender slots (MPSC: 1 to
    /// [`MAX_SENDER_SLOTS`], the most senders alive at once; SPSC: 0).
    pub fn with_sender_slots(mut self, slots: usize) -> Result<Layout, String> {
        let ok = match self.flavor {
            Flavor::Spsc => slots == 0,
            Flavor::Mpsc => (1..=MAX_SENDER_SLOTS).contains(&slots),
        };
        if !ok {
            return Err(format!(
                "{slots} sender slots: an MPSC channel has 1 to {MAX_SENDER_SLOTS}, an SPSC channel none"
            ));
        }
        self.sender_slots = slots;
        self.data_offset = data_offset_for(slots);
        let page = crate_page_size();
        self.segment_len = (self.data_offset + self.capacity).div_ceil(page) * page;
        Ok(self)
    }

    /// The header bytes (line 0) for this layout, `state` still zero.
    pub fn encode(&self) -> [u8; LINE] {
        let mut b = [0u8; LINE];
        put(&mut b, offset::MAGIC, &MAGIC.to_ne_bytes());
        put(&mut b, offset::VERSION, &VERSION.to_ne_bytes());
        put(&mut b, offset::FLAVOR, &self.flavor.to_raw().to_ne_bytes());
        put(
            &mut b,
            offset::DATA_OFFSET,
            &(self.data_offset as u64).to_ne_bytes(),
        );
        put(
            &mut b,
            offset::CAPACITY,
            &(self.capacity as u64).to_ne_bytes(),
        );
        put(
            &mut b,
            offset::MAX_MESSAGE,
            &(self.max_message as u64).to_ne_bytes(),
        );
        put(
            &mut b,
            offset::SEGMENT_LEN,
            &(self.segment_len as u64).to_ne_bytes(),
        );
        put(&mut b, offset::CREATOR_PID, &self.creator_pid.to_ne_bytes());
        put(&mut b, offset::CREATOR_UID, &self.creator_uid.to_ne_bytes());
        put(&mut b, offset::CREATED_AT, &self.created_at.to_ne_bytes());
        put(
            &mut b,
            offset::SENDER_SLOTS,
            &(self.sender_slots as u32).to_ne_bytes(),
        );
        put(&mut b, offset::SEM_ID, &self.sem_id.to_ne_bytes());
        put(&mut b, offset::KEY_DEV, &self.key_path.0.to_ne_bytes());
        put(&mut b, offset::KEY_INO, &self.key_path.1.to_ne_bytes());
        b
    }
}

/// Where the data region starts when the header is followed by `slots`
/// sender slots.
pub const fn data_offset_for(slots: usize) -> usize {
    HEADER_SIZE + slots * LINE
}

#[cfg(not(shmchan_loom))]
fn crate_page_size() -> usize {
    crate::sys::page_size()
}

#[cfg(shmchan_loom)]
fn crate_page_size() -> usize {
    4096
}

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

fn get_u32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_ne_bytes(a)
}

fn get_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(a)
}

/// Why a header was rejected. Each variant carries the values it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes than a header.
    TooShort {
        /// Bytes available.
        len: usize,
    },
    /// Not our magic value: not a shmchan segment.
    BadMagic {
        /// The value found.
        found: u64,
    },
    /// A format version this crate does not read.
    UnsupportedVersion {
        /// The version found.
        found: u32,
        /// The version this crate reads.
        supported: u32,
    },
    /// The creator has not finished (or the state word is damaged).
    NotReady {
        /// The state value found.
        state: u32,
    },
    /// An unknown flavor.
    BadFlavor {
        /// The value found.
        found: u32,
    },
    /// The sender table's size does not suit the flavor.
    BadSenderSlots {
        /// The number of slots found.
        found: u32,
    },
    /// The data region does not start where version 1 puts it (right after
    /// the sender table).
    BadDataOffset {
        /// The offset found.
        found: u64,
    },
    /// The capacity is not a power of two in the allowed range.
    BadCapacity {
        /// The capacity found.
        found: u64,
    },
    /// The header's segment length disagrees with the real segment.
    SegmentLenMismatch {
        /// Length recorded in the header.
        header: u64,
        /// Length of the segment.
        actual: u64,
    },
    /// The data region would extend past the end of the segment.
    RegionOutside {
        /// Where the data region starts.
        data_offset: u64,
        /// Its length.
        capacity: u64,
        /// Length of the segment.
        segment_len: u64,
    },
    /// The ring positions (head, tail) break an invariant.
    BadPositions {
        /// What is wrong, with the values.
        detail: String,
    },
    /// The largest message would not fit in the ring.
    MaxMessageTooLarge {
        /// The max_message found.
        max_message: u64,
        /// The capacity found.
        capacity: u64,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::TooShort { len } => {
                write!(f, "{len} bytes is shorter than a {HEADER_SIZE}-byte header")
            }
            HeaderError::BadMagic { found } => {
                write!(f, "magic {found:#018x} is not shmchan's {MAGIC:#018x}")
            }
            HeaderError::UnsupportedVersion { found, supported } => {
                write!(
                    f,
                    "format version {found} is not the supported version {supported}"
                )
            }
            HeaderError::NotReady { state } => {
                write!(f, "state {state:#x} is not ready ({STATE_READY:#x})")
            }
            HeaderError::BadFlavor { found } => {
                write!(f, "flavor {found} is neither 1 (spsc) nor 2 (mpsc)")
            }
            HeaderError::BadSenderSlots { found } => write!(
                f,
                "{found} sender slots: an MPSC channel has 1 to {MAX_SENDER_SLOTS}, an SPSC channel none"
            ),
            HeaderError::BadDataOffset { found } => {
                write!(
                    f,
                    "data offset {found} is not where the sender table ends"
                )
            }
            HeaderError::BadCapacity { found } => write!(
                f,
                "capacity {found} is not a power of two between {MIN_CAPACITY} and {MAX_CAPACITY}"
            ),
            HeaderError::SegmentLenMismatch { header, actual } => {
                write!(
                    f,
                    "header says the segment is {header} bytes, it is {actual}"
                )
            }
            HeaderError::RegionOutside {
                data_offset,
                capacity,
                segment_len,
            } => write!(
                f,
                "data region {data_offset}+{capacity} lies outside the {segment_len}-byte segment"
            ),
            HeaderError::BadPositions { detail } => write!(f, "ring positions: {detail}"),
            HeaderError::MaxMessageTooLarge {
                max_message,
                capacity,
            } => write!(
                f,
                "max message {max_message} does not fit a ring of {capacity} bytes"
            ),
        }
    }
}

impl std::error::Error for HeaderError {}

/// Checks a copy of a header (`bytes`, at least [`HEADER_SIZE`] long) of a
/// segment `segment_len` bytes long. Pure: it reads only its arguments.
///
/// On success every region of the returned [`Layout`] lies inside the
/// segment: `data_offset + capacity <= segment_len`.
///
/// ```
/// use shmchan::layout::{validate, Flavor, Layout, HeaderError, HEADER_SIZE, offset, STATE_READY};
/// let layout = Layout::new(Flavor::Spsc, 4096, None).unwrap();
/// let mut bytes = vec![0u8; HEADER_SIZE];
/// bytes[..128].copy_from_slice(&layout.encode());
/// assert!(matches!(validate(&bytes, layout.segment_len), Err(HeaderError::NotReady { .. })));
/// bytes[offset::STATE..offset::STATE + 4].copy_from_slice(&STATE_READY.to_ne_bytes());
/// assert_eq!(validate(&bytes, layout.segment_len).unwrap().capacity, 4096);
/// bytes[offset::CAPACITY] = 3;
/// assert!(validate(&bytes, layout.segment_len).unwrap_err().to_string().contains("power of two"));
/// ```
pub fn validate(bytes: &[u8], segment_len: usize) -> Result<Layout, HeaderError> {
    if bytes.len() < HEADER_SIZE {
        return Err(HeaderError::TooShort { len: bytes.len() });
    }
    let magic = get_u64(bytes, offset::MAGIC);
    if magic != MAGIC {
        return Err(HeaderError::BadMagic { found: magic });
    }
    let version = get_u32(bytes, offset::VERSION);
    if version != VERSION {
        return Err(HeaderError::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    let state = get_u32(bytes, offset::STATE);
    if state != STATE_READY {
        return Err(HeaderError::NotReady { state });
    }
    let raw_flavor = get_u32(bytes, offset::FLAVOR);
    let flavor =
        Flavor::from_raw(raw_flavor).ok_or(HeaderError::BadFlavor { found: raw_flavor })?;
    let slots = get_u32(bytes, offset::SENDER_SLOTS);
    let slots_ok = match flavor {
        Flavor::Spsc => slots == 0,
        Flavor::Mpsc => slots >= 1 && slots as usize <= MAX_SENDER_SLOTS,
    };
    if !slots_ok {
        return Err(HeaderError::BadSenderSlots { found: slots });
    }
    let data_offset = get_u64(bytes, offset::DATA_OFFSET);
    if data_offset != data_offset_for(slots as usize) as u64 {
        return Err(HeaderError::BadDataOffset { found: data_offset });
    }
    let capacity = get_u64(bytes, offset::CAPACITY);
    if !capacity.is_power_of_two()
        || capacity < MIN_CAPACITY as u64
        || capacity > MAX_CAPACITY as u64
    {
        return Err(HeaderError::BadCapacity { found: capacity });
    }
    let header_len = get_u64(bytes, offset::SEGMENT_LEN);
    if header_len != segment_len as u64 {
        return Err(HeaderError::SegmentLenMismatch {
            header: header_len,
            actual: segment_len as u64,
        });
    }
    // Both terms are bounded above (data_offset <= 512 + 128 * 4096,
    // capacity <= 2^40), so the sum cannot overflow.
    if data_offset + capacity > segment_len as u64 {
        return Err(HeaderError::RegionOutside {
            data_offset,
            capacity,
            segment_len: segment_len as u64,
        });
    }
    let max_message = get_u64(bytes, offset::MAX_MESSAGE);
    if max_message > (capacity - RECORD_HEADER as u64).min(u32::MAX as u64) {
        return Err(HeaderError::MaxMessageTooLarge {
            max_message,
            capacity,
        });
    }
    Ok(Layout {
        flavor,
        data_offset: data_offset as usize,
        sender_slots: slots as usize,
        capacity: capacity as usize,
        max_message: max_message as usize,
        segment_len,
        creator_pid: get_u32(bytes, offset::CREATOR_PID),
        creator_uid: get_u32(bytes, offset::CREATOR_UID),
        created_at: get_u64(bytes, offset::CREATED_AT),
        sem_id: get_u32(bytes, offset::SEM_ID) as i32,
        key_path: (
            get_u64(bytes, offset::KEY_DEV),
            get_u64(bytes, offset::KEY_INO),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(layout: &Layout) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_SIZE];
        b[..LINE].copy_from_slice(&layout.encode());
        b[offset::STATE..offset::STATE + 4].copy_from_slice(&STATE_READY.to_ne_bytes());
        b
    }

    #[test]
    fn accepts_what_it_encodes() {
        let l = Layout::new(Flavor::Mpsc, 5000, Some(100)).unwrap();
        assert_eq!(l.capacity, 8192);
        let got = validate(&image(&l), l.segment_len).unwrap();
        assert_eq!(got, l);
    }

    #[test]
    fn rejects_each_field_with_its_value() {
        let l = Layout::new(Flavor::Spsc, 4096, None).unwrap();
        let base = image(&l);
        let cases: Vec<(usize, Vec<u8>, &str)> = vec![
            (
                offset::MAGIC,
                7u64.to_ne_bytes().to_vec(),
                "magic 0x0000000000000007",
            ),
            (
                offset::VERSION,
                9u32.to_ne_bytes().to_vec(),
                "format version 9",
            ),
            (offset::STATE, 1u32.to_ne_bytes().to_vec(), "state 0x1"),
            (offset::FLAVOR, 3u32.to_ne_bytes().to_vec(), "flavor 3"),
            (
                offset::DATA_OFFSET,
                64u64.to_ne_bytes().to_vec(),
                "data offset 64",
            ),
            (
                offset::CAPACITY,
                3000u64.to_ne_bytes().to_vec(),
                "capacity 3000",
            ),
            (
                offset::CAPACITY,
                (1u64 << 50).to_ne_bytes().to_vec(),
                "capacity 1125899906842624",
            ),
            (
                offset::SEGMENT_LEN,
                99u64.to_ne_bytes().to_vec(),
                "header says the segment is 99",
            ),
            (
                offset::MAX_MESSAGE,
                4089u64.to_ne_bytes().to_vec(),
                "max message 4089",
            ),
        ];
        for (off, val, want) in cases {
            let mut b = base.clone();
            b[off..off + val.len()].copy_from_slice(&val);
            let e = validate(&b, l.segment_len).unwrap_err();
            assert!(e.to_string().contains(want), "{e} lacks {want}");
        }
        // the region must fit the segment
        let mut b = base.clone();
        b[offset::CAPACITY..offset::CAPACITY + 8].copy_from_slice(&(1u64 << 20).to_ne_bytes());
        assert!(matches!(
            validate(&b, l.segment_len),
            Err(HeaderError::RegionOutside { .. })
        ));
        assert_eq!(
            validate(&base[..100], l.segment_len),
            Err(HeaderError::TooShort { len: 100 })
        );
    }

    #[test]
    fn record_sizes() {
        assert_eq!(record_size(0), 8);
        assert_eq!(record_size(1), 16);
        assert_eq!(record_size(8), 16);
        assert_eq!(record_size(9), 24);
        let w = record_header(kind::PADDING, 1234);
        assert_eq!(split_record_header(w), (kind::PADDING, 1234));
    }

    #[test]
    fn options_are_checked() {
        assert!(Layout::new(Flavor::Spsc, 1024, Some(1017)).is_err());
        assert_eq!(
            Layout::new(Flavor::Spsc, 1024, Some(1016))
                .unwrap()
                .max_message,
            1016
        );
        assert_eq!(
            Layout::new(Flavor::Spsc, 1, None).unwrap().capacity,
            MIN_CAPACITY
        );
    }
}
