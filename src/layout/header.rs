//! The header's fixed line: [`Layout`] (the geometry, encoded by the
//! creator) and [`validate`] (the pure check every opener runs on a copy).

use std::fmt;

use super::{
    max_message_for, offset, Flavor, Overflow, DEFAULT_SENDER_SLOTS, DEFAULT_SUBSCRIBERS,
    HEADER_SIZE, LINE, MAGIC, MAX_CAPACITY, MAX_SENDER_SLOTS, MAX_SUBSCRIBERS, MIN_CAPACITY,
    RECORD_HEADER, STATE_READY, VERSION,
};

/// The validated geometry of a channel: a private copy, read once from the
/// header and trusted from then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The algorithm.
    pub flavor: Flavor,
    /// Broadcast: what the publisher does when a subscriber is a ring
    /// behind ([`Overflow::Block`] for the other flavors).
    pub overflow: Overflow,
    /// Where the data region starts (after the sender table, or the lap
    /// line and the subscriber table).
    pub data_offset: usize,
    /// Lines in the sender table (MPSC), or subscriber slots (broadcast);
    /// 0 for SPSC.
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
    /// The inode of the creator's pid namespace (`/proc/self/ns/pid`), or 0
    /// when unknown. MPSC recovery compares pids, so every endpoint of an
    /// MPSC channel must share it.
    pub pid_ns: u64,
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
            overflow: Overflow::Block,
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
            pid_ns: 0,
        };
        let slots = match flavor {
            Flavor::Spsc => 0,
            Flavor::Mpsc => DEFAULT_SENDER_SLOTS,
            Flavor::Broadcast => DEFAULT_SUBSCRIBERS,
        };
        layout.with_sender_slots(slots)
    }

    /// The same geometry with `slots` sender slots (MPSC: 1 to
    /// [`MAX_SENDER_SLOTS`], the most senders alive at once; SPSC: 0), or
    /// subscriber slots (broadcast: 1 to [`MAX_SUBSCRIBERS`]).
    pub fn with_sender_slots(mut self, slots: usize) -> Result<Layout, String> {
        if !slots_fit(self.flavor, slots) {
            return Err(format!(
                "{slots} slots: an MPSC channel has 1 to {MAX_SENDER_SLOTS} sender slots, a broadcast channel 1 to {MAX_SUBSCRIBERS} subscriber slots, an SPSC channel none"
            ));
        }
        self.sender_slots = slots;
        self.data_offset = table_end(self.flavor, slots);
        let page = crate_page_size();
        self.segment_len = (self.data_offset + self.capacity).div_ceil(page) * page;
        Ok(self)
    }

    /// The same geometry with the broadcast overflow mode `overflow` (the
    /// other flavors have only [`Overflow::Block`]).
    pub fn with_overflow(mut self, overflow: Overflow) -> Result<Layout, String> {
        if self.flavor != Flavor::Broadcast && overflow != Overflow::Block {
            return Err(format!(
                "overflow {overflow} is for broadcast channels only"
            ));
        }
        self.overflow = overflow;
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
        put(
            &mut b,
            offset::OVERFLOW,
            &self.overflow.to_raw().to_ne_bytes(),
        );
        put(&mut b, offset::KEY_DEV, &self.key_path.0.to_ne_bytes());
        put(&mut b, offset::KEY_INO, &self.key_path.1.to_ne_bytes());
        put(&mut b, offset::PID_NS, &self.pid_ns.to_ne_bytes());
        b
    }
}

/// Where the data region starts when the header is followed by `slots`
/// sender slots (a broadcast channel's lap line and `n` subscriber slots
/// are `n + 1` lines: `data_offset_for(n + 1)`).
pub const fn data_offset_for(slots: usize) -> usize {
    HEADER_SIZE + slots * LINE
}

/// Where a `flavor` channel with `slots` slots has its data region.
const fn table_end(flavor: Flavor, slots: usize) -> usize {
    match flavor {
        Flavor::Broadcast => data_offset_for(slots + 1),
        _ => data_offset_for(slots),
    }
}

/// Whether `slots` suits `flavor`.
fn slots_fit(flavor: Flavor, slots: usize) -> bool {
    match flavor {
        Flavor::Spsc => slots == 0,
        Flavor::Mpsc => (1..=MAX_SENDER_SLOTS).contains(&slots),
        Flavor::Broadcast => (1..=MAX_SUBSCRIBERS).contains(&slots),
    }
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
    /// An unknown overflow mode, or one set on a channel that is not a
    /// broadcast.
    BadOverflow {
        /// The value found.
        found: u32,
    },
    /// The sender table's size does not suit the flavor.
    BadSenderSlots {
        /// The number of slots found.
        found: u32,
    },
    /// The data region does not start where the format puts it (right after
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
                write!(
                    f,
                    "flavor {found} is not 1 (spsc), 2 (mpsc) or 3 (broadcast)"
                )
            }
            HeaderError::BadOverflow { found } => write!(
                f,
                "overflow {found}: a broadcast channel has 0 (block) or 1 (overwrite), the others 0"
            ),
            HeaderError::BadSenderSlots { found } => write!(
                f,
                "{found} slots: an MPSC channel has 1 to {MAX_SENDER_SLOTS}, a broadcast channel 1 to {MAX_SUBSCRIBERS}, an SPSC channel none"
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
    let raw_overflow = get_u32(bytes, offset::OVERFLOW);
    let overflow = match (flavor, Overflow::from_raw(raw_overflow)) {
        (Flavor::Broadcast, Some(o)) => o,
        (_, Some(Overflow::Block)) => Overflow::Block,
        _ => {
            return Err(HeaderError::BadOverflow {
                found: raw_overflow,
            })
        }
    };
    let slots = get_u32(bytes, offset::SENDER_SLOTS);
    if !slots_fit(flavor, slots as usize) {
        return Err(HeaderError::BadSenderSlots { found: slots });
    }
    let data_offset = get_u64(bytes, offset::DATA_OFFSET);
    if data_offset != table_end(flavor, slots as usize) as u64 {
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
    if max_message > (max_message_for(capacity as usize) as u64).min(u32::MAX as u64) {
        return Err(HeaderError::MaxMessageTooLarge {
            max_message,
            capacity,
        });
    }
    Ok(Layout {
        flavor,
        overflow,
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
        pid_ns: get_u64(bytes, offset::PID_NS),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{kind, record_header, record_size, split_record_header};

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
    fn a_broadcast_layout_has_the_lap_line_and_its_subscribers() {
        let l = Layout::new(Flavor::Broadcast, 4096, None)
            .unwrap()
            .with_overflow(Overflow::Overwrite)
            .unwrap();
        assert_eq!(l.sender_slots, DEFAULT_SUBSCRIBERS);
        assert_eq!(
            l.data_offset,
            HEADER_SIZE + LINE * (1 + DEFAULT_SUBSCRIBERS)
        );
        let img = image(&l);
        assert_eq!(validate(&img, l.segment_len).unwrap(), l);
        let mut b = img.clone();
        b[offset::OVERFLOW..offset::OVERFLOW + 4].copy_from_slice(&2u32.to_ne_bytes());
        assert_eq!(
            validate(&b, l.segment_len),
            Err(HeaderError::BadOverflow { found: 2 })
        );
        // The data region after the table less the lap line: refused.
        let mut b = img;
        let short = (HEADER_SIZE + LINE * DEFAULT_SUBSCRIBERS) as u64;
        b[offset::DATA_OFFSET..offset::DATA_OFFSET + 8].copy_from_slice(&short.to_ne_bytes());
        assert!(matches!(
            validate(&b, l.segment_len),
            Err(HeaderError::BadDataOffset { .. })
        ));
        assert!(Layout::new(Flavor::Spsc, 4096, None)
            .unwrap()
            .with_overflow(Overflow::Overwrite)
            .is_err());
        assert!(Layout::new(Flavor::Broadcast, 4096, None)
            .unwrap()
            .with_sender_slots(MAX_SUBSCRIBERS + 1)
            .is_err());
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
            (offset::FLAVOR, 4u32.to_ne_bytes().to_vec(), "flavor 4"),
            // overwrite is for broadcast channels only
            (offset::OVERFLOW, 1u32.to_ne_bytes().to_vec(), "overflow 1"),
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
        // A record, and the header word past it (kept free), fill the ring.
        assert!(Layout::new(Flavor::Spsc, 1024, Some(1009)).is_err());
        assert_eq!(
            Layout::new(Flavor::Spsc, 1024, Some(1008))
                .unwrap()
                .max_message,
            1008
        );
        assert_eq!(
            Layout::new(Flavor::Spsc, 1, None).unwrap().capacity,
            MIN_CAPACITY
        );
    }
}
