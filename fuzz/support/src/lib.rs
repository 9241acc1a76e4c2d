//! The bodies of the cargo-fuzz targets in `fuzz/fuzz_targets/`, in a
//! crate of their own so that a normal test (`tests/corpus.rs`) can replay
//! their corpora on stable. They reach the ring through
//! `shmchan::internals`, whose functions that can break an invariant are
//! `unsafe`: each call here says why its contract holds (one thread, one
//! consumer and one producer per slot, records and reservations given back
//! to the endpoint that made them, and writes that stand for a hostile
//! process made while no reference into the ring is held).
//!
//! Every ring here lives in this process's own memory (a [`HeapRing`] or a
//! private heap image of a segment, never a shared segment) and is used by
//! one thread: no plain access to a data region can race with another.
//!
//! [`HeapRing`]: shmchan::internals::HeapRing

#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

use shmchan::internals::sync::Ordering;
use shmchan::internals::{Region, Reservation, RingView};
use shmchan::layout::{validate, HEADER_SIZE, LINE, MIN_CAPACITY, RECORD_HEADER};

/// Bytes of a `header` input that hold an explicit segment length.
const SEGMENT_LEN_BYTES: usize = 8;

/// The `header` target: an input is a segment image as an opener sees it.
///
/// - bytes `[0, 512)`: the copy of the header given to
///   [`validate`] (a shorter input is the whole, short, copy);
/// - bytes `[512, 520)`, if present: the real segment length, a
///   native-endian `u64` (truncated to `usize`); without them the input's
///   length stands in for it. Later bytes are ignored.
///
/// `validate` must not panic, and when it accepts, the layout it returns
/// must be safe to map: the data region inside the segment, a power-of-two
/// capacity, and room for the largest message and its record header.
pub fn header(data: &[u8]) {
    let (copy, segment_len) = split_header_input(data);
    match validate(copy, segment_len) {
        Ok(l) => {
            let end = l.data_offset.checked_add(l.capacity);
            assert!(
                end.is_some_and(|end| end <= segment_len),
                "region {}+{} outside the {segment_len}-byte segment",
                l.data_offset,
                l.capacity
            );
            assert!(l.capacity.is_power_of_two(), "capacity {}", l.capacity);
            assert!(l.capacity >= MIN_CAPACITY, "capacity {}", l.capacity);
            assert!(
                l.data_offset >= HEADER_SIZE,
                "data region {} overlaps the header",
                l.data_offset
            );
            assert!(
                l.max_message + 2 * RECORD_HEADER <= l.capacity,
                "max_message {} and the free word past it do not fit capacity {}",
                l.max_message,
                l.capacity
            );
            assert_eq!(l.segment_len, segment_len);
            // validate reads exactly what encode writes: the accepted
            // layout encodes back to the fields it was read from (line 0 up
            // to `pid_ns`, but `state`, which encode leaves at zero).
            use shmchan::layout::offset::{PID_NS, STATE};
            let encoded = l.encode();
            assert_eq!(encoded.len(), LINE);
            assert_eq!(
                &encoded[..STATE],
                &copy[..STATE],
                "fields do not round-trip"
            );
            assert_eq!(
                &encoded[STATE + 4..PID_NS + 8],
                &copy[STATE + 4..PID_NS + 8],
                "fields past state (sender_slots, sem_id, overflow, key, pid_ns) do not round-trip"
            );
            // Only a broadcast channel overwrites.
            assert!(
                l.flavor == shmchan::Flavor::Broadcast || l.overflow == shmchan::Overflow::Block,
                "{:?} with {:?}",
                l.flavor,
                l.overflow
            );
        }
        Err(e) => {
            // Display must not panic either, and says something.
            assert!(!e.to_string().is_empty());
        }
    }
}

/// Splits a `header` input into the header copy and the segment length
/// (see [`header`]).
pub fn split_header_input(data: &[u8]) -> (&[u8], usize) {
    let copy = &data[..data.len().min(HEADER_SIZE)];
    let segment_len = match data.get(HEADER_SIZE..HEADER_SIZE + SEGMENT_LEN_BYTES) {
        Some(b) => u64::from_ne_bytes(b.try_into().expect("8 bytes")) as usize,
        None => data.len(),
    };
    (copy, segment_len)
}

/// Reads input bytes front to back; past the end every read is zero, so
/// any input decodes.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A zeroed, page-aligned buffer standing in for a mapped segment.
struct Image {
    ptr: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
}

impl Image {
    fn new(len: usize) -> Image {
        let layout = std::alloc::Layout::from_size_align(len, 4096).expect("image layout");
        // SAFETY: len > 0 (a header and a data region).
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr =
            std::ptr::NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        Image { ptr, layout }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the allocation is layout.size() initialised bytes, and
        // &mut self excludes every other access (a view borrows `self`).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }

    /// The view of the ring in the image, whose header must validate (as
    /// `expect`) against the image's length. It borrows the image.
    fn view(&self, expect: &shmchan::layout::Layout) -> RingView<'_> {
        let len = self.layout.size();
        let checked = {
            // SAFETY: the allocation is `len` initialised bytes; &self
            // excludes `bytes_mut`, and nothing writes to them while this
            // slice lives (one thread, and it ends before this returns).
            let bytes = unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), len) };
            validate(&bytes[..HEADER_SIZE], len)
                .expect("the image's header is valid by construction")
        };
        assert_eq!(&checked, expect);
        // SAFETY: the allocation is page-aligned, readable and writable,
        // and stays allocated while the view borrows `self`; `checked` was
        // validated against its length (so the data region lies inside).
        unsafe { RingView::in_segment(self.ptr, &checked) }
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Copies `buf.len()` bytes at `off` out of `region`: a record's payload,
/// or words the checks inspect (free space, claims, headers).
fn read_bytes(region: &Region<'_>, off: usize, buf: &mut [u8]) {
    // SAFETY: nothing writes the region during the call: its ring lives in
    // this process's memory and is used by this one thread (see the crate
    // docs), whose endpoints and hostile writes run only between such calls.
    unsafe { region.read(off, buf) }
}

/// The word at `off` (a multiple of 8) of `region`, for the checks.
fn read_word(region: &Region<'_>, off: usize) -> u64 {
    // SAFETY: as in `read_bytes`: nothing writes the word during the call.
    unsafe { region.read_u64(off) }
}

/// Writes `msg` as the payload of `r`, a reservation of a producer of the
/// ring of `region` that it has not committed or aborted yet.
fn write_payload(region: &Region<'_>, r: &Reservation, msg: &[u8]) {
    // SAFETY: reserved, unpublished space is its producer's alone (no
    // consumer reads it before the commit, and no other producer claims
    // it), and one thread uses the ring (see the crate docs).
    unsafe { region.write(r.data_offset, msg) }
}

/// A hostile process writes `word` at `off` (a multiple of 8) of `region`.
fn hostile_write(region: &Region<'_>, off: usize, word: u64) {
    // SAFETY: made between two calls into the ring, by the one thread that
    // uses it (see the crate docs), while no reference into the region is
    // alive: a plain write then races with nothing in this process. What
    // it writes is the consumer's to check.
    unsafe { region.write_u64(off, word) }
}

/// `consumer` mode bit: the image is an MPSC segment (see [`consumer`]).
pub const CONSUMER_MPSC: u8 = 1 << 4;
/// `consumer` mode bit (MPSC): the consumer calls `try_recover` each time
/// it is blocked.
pub const CONSUMER_RECOVER: u8 = 1 << 7;
/// Kinds of MPSC hostile writes (`what & 0x7f`, modulo this).
const MPSC_WRITE_KINDS: u8 = 13;
/// MPSC hostile-write flag (`what & 0x80`): lengths in header writes are
/// plausible (reduced) rather than raw.
const PLAUSIBLE_LEN: u8 = 0x80;

/// The ready segment image for `layout`, with ring positions `head` and
/// `tail` and everything else zero.
fn segment_image(layout: &shmchan::layout::Layout, head: u64, tail: u64) -> Image {
    use shmchan::layout::{offset, STATE_READY};
    let mut image = Image::new(layout.segment_len);
    let b = image.bytes_mut();
    b[..LINE].copy_from_slice(&layout.encode());
    b[offset::STATE..offset::STATE + 4].copy_from_slice(&STATE_READY.to_ne_bytes());
    b[offset::HEAD..offset::HEAD + 8].copy_from_slice(&head.to_ne_bytes());
    b[offset::TAIL..offset::TAIL + 8].copy_from_slice(&tail.to_ne_bytes());
    image
}

/// The `consumer` target: a segment image, with arbitrary positions and
/// data region, read by the receive path; a hostile peer writes into the
/// image between the reads.
///
/// Input: capacity exponent (`64 << (b % 7)`, up to 4 KiB), `max_message`
/// (u16, clamped to what the ring holds), `head` and `tail` (u64 each), a
/// mode byte (bit 0 clear: positions forced into a plausible span; bits 1-3:
/// release every 1..=8 messages; bit 4 ([`CONSUMER_MPSC`]): an MPSC image,
/// below), then for SPSC the data region, then hostile writes of 10 bytes
/// each (step; what: tail, data word, swapped data word, or the count of
/// sleeping senders; value). The SPSC consumer of format 2 reads the
/// headers, not `tail`: the tail stores change nothing it does (kept so
/// that the corpus keeps its meaning), and an image whose headers form an
/// endless stream of records is read until the bound below, then left.
///
/// MPSC (mode bit 4 set; SPSC inputs of earlier versions with that bit set
/// now mean MPSC): mode bits 5-6 give the sender table's size (1..=4
/// slots) and bit 7 ([`CONSUMER_RECOVER`]) makes the consumer call
/// `try_recover` every time it is blocked. After the mode byte come the
/// liveness oracle (u64 `mask`: pid `p` is alive iff bit `p % 64` is set),
/// the sender table (per slot: `owner`, `claim`, u64 each), the data
/// region, then hostile writes of 12 bytes each: step (u8), what (u8), at
/// (u16), value (u64). `at` names the word `8 * at` bytes past the
/// consumer's read position (or, for the table, slot `at % slots`); with
/// bit 7 of `what` set, header lengths are reduced to plausible ones.
/// `(what & 0x7f) % 13`: 0 tail = value; 1 tail = read position +
/// `8 * at % (capacity + 8)`; 2 word = value; 3 message header (len =
/// low half); 4 padding header; 5 in-progress header (`CLAIM_BIT | high
/// half`); 6 zero header; 7 slot owner = value; 8 slot claim = value; 9
/// slot claim = read position + `8 * (value % (capacity / 8 + 1))`; 10
/// count of sleeping senders; 11 mask = value; 12 `try_recover` now.
///
/// The consumer must return records inside the data region, or
/// [`Corrupted`](shmchan::internals::Corrupted), and stop. MPSC: it cannot
/// read more records than the ring's bytes (plus what the hostile tail
/// stores add) can hold. MPSC also: `blocked()` says what the image holds at the read
/// position, `has_data()` false means `try_peek` finds nothing, and every
/// answer of `try_recover` is checked against the image and the oracle
/// (see `recover_checked`).
///
/// Broadcast (mode bit 4 clear, bit 5 ([`CONSUMER_BROADCAST`]) set; SPSC
/// inputs of earlier versions with that bit set now mean broadcast): a
/// [`HeapRing::broadcast`] whose every shared word the input forges, then
/// a subscriber that joins it and reads. `head` is the lap line's
/// `oldest_pos`, `tail` the publisher's; bit 6
/// ([`CONSUMER_OVERWRITE`]): `Overflow::Overwrite`; bit 7
/// ([`CONSUMER_OLDEST`]): the subscriber joins with `Start::Oldest` (else
/// `Start::Newest`). After the mode byte: the slot count (`1 + b % 4`),
/// the liveness oracle (u64 `mask`, as for MPSC), the lap line's `front`
/// (u64; with positions plausible, `tail + 8 * (v % (capacity / 8 +
/// 1))`), `joins`, `oldest_ver`, `oldest_seq`, the publisher's `next_seq`
/// and `tail_ver`, per slot `owner`, `position`, `seq`, `lagged` and
/// `missed` (u64 each), the data region, then hostile writes of 12 bytes
/// (step u8, what u8, at u16, value u64). `at & 0x7fff` names the word
/// `8 * at` past the subscriber's read position `p`; `at & 0x8000` keeps
/// header lengths raw. `what & 0x80`: the write is made between the copy
/// of a record and `intact()` (if a copy comes before the next look).
/// `(what & 0x7f) % 20`: 0 front = value; 1 front = p + 8 at; 2 front =
/// p - 8 at; 3 front = p + capacity + 8 (at % 8); 4 oldest_pos = p + 8 at
/// and oldest_seq = the subscriber's seq + value % (at + 1); 5
/// oldest_pos, 6 oldest_seq, 7 oldest_ver, 9 tail, 10 next_seq, 11
/// tail_ver = value; 8 tail = p + 8 at; 12 word = value; 13 message
/// header; 14 padding header (plausible: to the end of the region); 15
/// zero word; 16 a field of the subscriber's own slot (`at % 6`: owner,
/// position, seq, lagged, missed, bell) = value; 17 joins = value; 18 a
/// forged count of sleeping publishers; 19 a lap as a publisher makes it
/// (front a ring and 8-32 bytes past p, the oldest record 8-32 bytes past
/// p, a plausible oldest_seq).
///
/// Broadcast checks: `take_slot` takes the first free slot or the first
/// dead owner's; the join succeeds exactly when the start it reads is a
/// multiple of 8 within a ring behind `front`, and starts there with that
/// sequence number; `ready()`, `has_data()` and `try_peek()` agree with
/// the word at the read position, `front` and `tail` (`Lapped` only when
/// overwriting and more than a ring behind `front`); a record is the
/// header it was read from, at the read position or after padding to the
/// end of the region, inside the region; `intact()` says whether `front`
/// passed the record; the slot holds the released position and sequence
/// number; a lap moves the subscriber to the lap line's oldest record
/// (the missed count, the slot's `lagged` and `missed` agree), and must
/// move it (else the next look finds the same lap, for ever) or report
/// the damage. One post owed at most, whatever the forged count.
///
/// [`HeapRing::broadcast`]: shmchan::internals::HeapRing::broadcast
pub fn consumer(data: &[u8]) {
    use shmchan::internals::spsc::Consumer;
    use shmchan::layout::{max_message_for, Flavor, Layout, Overflow};

    let mut input = Bytes(data);
    let capacity = MIN_CAPACITY << (input.u8() % 7);
    let max_message = usize::from(input.u16()).min(max_message_for(capacity));
    let raw_head = input.u64();
    let raw_tail = input.u64();
    let mode = input.u8();
    let (head, tail) = if mode & 1 == 0 {
        let head = raw_head & !7;
        let span = (raw_tail % (capacity as u64 + 1)) & !7;
        (head, head.wrapping_add(span))
    } else {
        (raw_head, raw_tail)
    };
    let batch = 1 + usize::from((mode >> 1) & 7);
    if mode & CONSUMER_MPSC != 0 {
        return consumer_mpsc(input, capacity, max_message, head, tail, mode);
    }
    if mode & CONSUMER_BROADCAST != 0 {
        return consumer_broadcast(input, capacity, max_message, head, tail, mode);
    }

    let layout = Layout {
        flavor: Flavor::Spsc,
        overflow: Overflow::Block,
        data_offset: HEADER_SIZE,
        sender_slots: 0,
        capacity,
        max_message,
        segment_len: HEADER_SIZE + capacity,
        creator_pid: 1,
        creator_uid: 0,
        created_at: 0,
        sem_id: 0,
        key_path: (0, 0),
        pid_ns: 0,
    };
    let mut image = segment_image(&layout, head, tail);
    {
        let b = image.bytes_mut();
        let region = input.take(capacity);
        b[HEADER_SIZE..HEADER_SIZE + region.len()].copy_from_slice(region);
    }
    let view = image.view(&layout);
    // SAFETY: the only endpoint of the image's ring.
    let mut c = match unsafe { Consumer::new(view) } {
        Ok(c) => c,
        Err(_) => return,
    };

    // Hostile writes: (after step, what, value).
    let mut writes = Vec::new();
    while !input.is_empty() {
        writes.push((input.u8(), input.u8(), input.u64()));
    }
    // Each tail the consumer accepts lets it read at most `capacity` bytes,
    // 8 per record at least; padding and the stops add a few steps.
    let bound = (writes.len() + 1) * (capacity / RECORD_HEADER + 2);
    let mut steps = 0usize;
    let mut reads = 0usize;
    let mut held = 0usize;
    let mut buf = vec![0u8; max_message];
    let mut w = writes.iter().peekable();
    loop {
        while let Some(&&(at, what, value)) = w.peek() {
            if usize::from(at) > steps {
                break;
            }
            w.next();
            // SAFETY: a hostile write, made between calls into the ring by
            // its one thread (see hostile_write).
            let st = unsafe { view.shared_state() };
            match what % 4 {
                0 => st.producer.tail.store(value, Ordering::Release),
                1 => hostile_write(view.region(), view.index(value) & !7, value.rotate_left(32)),
                2 => hostile_write(view.region(), view.index(value) & !7, value),
                // A forged count of sleeping senders.
                _ => st.wake.send_waiters.store(value as u32, Ordering::Relaxed),
            }
        }
        steps += 1;
        // One sender sleeps at most: never more than one post owed.
        assert!(
            c.wakeups().take() <= 1,
            "wake-ups from a forged waiter count"
        );
        match c.try_peek() {
            Ok(Some(r)) => {
                reads += 1;
                if reads > bound {
                    // Headers that read as records lap after lap: a
                    // hostile producer's endless stream, not an error.
                    return;
                }
                assert!(r.len <= max_message, "record of {} > {max_message}", r.len);
                assert!(
                    r.data_offset >= RECORD_HEADER && r.data_offset + r.len <= capacity,
                    "record {}+{} outside the {capacity}-byte region",
                    r.data_offset,
                    r.len
                );
                read_bytes(view.region(), r.data_offset, &mut buf[..r.len]);
                held += 1;
                // SAFETY: `r` is the record `c.try_peek()` just returned.
                unsafe {
                    if held >= batch {
                        c.consume(r);
                        held = 0;
                    } else {
                        c.advance(r);
                    }
                }
            }
            Ok(None) => {
                c.release();
                held = 0;
                match w.peek() {
                    // Idle until the next hostile write.
                    Some(&&(at, _, _)) => steps = steps.max(usize::from(at)),
                    None => return,
                }
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                return;
            }
        }
    }
}

/// Whether the `consumer` target's liveness oracle `mask` says `pid` lives.
fn mask_alive(mask: u64, pid: u32) -> bool {
    mask >> (pid % 64) & 1 == 1
}

/// The MPSC half of [`consumer`]; `input` is positioned after the mode byte.
fn consumer_mpsc(
    mut input: Bytes<'_>,
    capacity: usize,
    max_message: usize,
    head: u64,
    tail: u64,
    mode: u8,
) {
    use shmchan::internals::mpsc::{Blocked, Consumer, Recovery, CLAIM_BIT};
    use shmchan::internals::sync::Ordering::Relaxed;
    use shmchan::internals::MAX_WAKEUPS;
    use shmchan::layout::{data_offset_for, kind, offset, record_header, Flavor, Layout, Overflow};

    let batch = 1 + usize::from((mode >> 1) & 7);
    let slots = 1 + usize::from((mode >> 5) & 3);
    let recover_when_blocked = mode & CONSUMER_RECOVER != 0;
    let mut mask = input.u64();
    let data_offset = data_offset_for(slots);
    let layout = Layout {
        flavor: Flavor::Mpsc,
        overflow: Overflow::Block,
        data_offset,
        sender_slots: slots,
        capacity,
        max_message,
        segment_len: data_offset + capacity,
        creator_pid: 1,
        creator_uid: 0,
        created_at: 0,
        sem_id: 0,
        key_path: (0, 0),
        pid_ns: 0,
    };
    let mut image = segment_image(&layout, head, tail);
    {
        let b = image.bytes_mut();
        for i in 0..slots {
            let at = offset::SENDER_TABLE + i * LINE;
            b[at..at + 8].copy_from_slice(&input.u64().to_ne_bytes());
            b[at + 8..at + 16].copy_from_slice(&input.u64().to_ne_bytes());
        }
        let region = input.take(capacity);
        b[data_offset..data_offset + region.len()].copy_from_slice(region);
    }
    let view = image.view(&layout);
    assert_eq!(view.sender_slots(), slots);
    // SAFETY: the only endpoint of the image's ring (the producers are
    // hostile writes, below).
    let mut c = match unsafe { Consumer::new(view) } {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };

    // Hostile writes: (after step, what, at, value).
    let mut writes = Vec::new();
    while !input.is_empty() {
        writes.push((input.u8(), input.u8(), input.u16(), input.u64()));
    }
    // As for SPSC: each accepted tail lets the consumer move at most
    // `capacity` bytes, 8 per record or recovered claim at least.
    let bound = (writes.len() + 1) * (capacity / RECORD_HEADER + 2);
    let cap = capacity as u64;
    let mut steps = 0usize;
    let mut reads = 0usize;
    let mut recovered = 0usize;
    let mut held = 0usize;
    let mut buf = vec![0u8; max_message];
    let mut w = writes.iter().peekable();
    loop {
        while let Some(&&(step, what, at, value)) = w.peek() {
            if usize::from(step) > steps {
                break;
            }
            w.next();
            // SAFETY: hostile writes, made between calls into the ring by
            // its one thread (see hostile_write).
            let st = unsafe { view.shared_state() };
            let word_at = view.index(c.position().wrapping_add(8 * u64::from(at)));
            // SAFETY: as above.
            let slot = unsafe { view.shared_sender_slot(usize::from(at) % slots) };
            let plausible = what & PLAUSIBLE_LEN != 0;
            let len = if plausible {
                (value % (max_message as u64 + 17)) as u32
            } else {
                value as u32
            };
            let region = view.region();
            match (what & !PLAUSIBLE_LEN) % MPSC_WRITE_KINDS {
                0 => st.producer.tail.store(value, Relaxed),
                1 => st.producer.tail.store(
                    c.position().wrapping_add(8 * u64::from(at) % (cap + 8)),
                    Relaxed,
                ),
                2 => hostile_write(region, word_at, value),
                3 => hostile_write(region, word_at, record_header(kind::MESSAGE, len)),
                4 => {
                    let len = if plausible {
                        8 * (value % (cap / 8)) as u32
                    } else {
                        len
                    };
                    hostile_write(region, word_at, record_header(kind::PADDING, len))
                }
                5 => hostile_write(
                    region,
                    word_at,
                    record_header(CLAIM_BIT | (value >> 32) as u32, len),
                ),
                6 => hostile_write(region, word_at, 0),
                7 => slot.owner.store(value, Relaxed),
                8 => slot.claim.store(value, Relaxed),
                9 => slot.claim.store(
                    c.position().wrapping_add(8 * (value % (cap / 8 + 1))),
                    Relaxed,
                ),
                // A forged count of sleeping senders.
                10 => st.wake.send_waiters.store(value as u32, Relaxed),
                // Processes die (or come back).
                11 => mask = value,
                // The recovery timer fires between two peeks.
                _ => match recover_checked(&mut c, mask, None) {
                    None => return,
                    Some(Recovery::Recovered { .. }) => recovered += 1,
                    Some(_) => {}
                },
            }
        }
        steps += 1;
        assert!(
            c.wakeups().take() <= MAX_WAKEUPS,
            "wake-ups from a forged waiter count"
        );
        assert!(
            reads + recovered <= bound,
            "consumer read {reads} records and recovered {recovered} claims from a {capacity}-byte ring"
        );
        let has_data = match c.has_data() {
            Ok(h) => h,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                return;
            }
        };
        match c.try_peek() {
            Ok(Some(r)) => {
                reads += 1;
                assert!(r.len <= max_message, "record of {} > {max_message}", r.len);
                assert!(
                    r.data_offset >= RECORD_HEADER && r.data_offset + r.len <= capacity,
                    "record {}+{} outside the {capacity}-byte region",
                    r.data_offset,
                    r.len
                );
                assert!(has_data, "has_data said no, try_peek found a record");
                read_bytes(view.region(), r.data_offset, &mut buf[..r.len]);
                held += 1;
                // SAFETY: `r` is the record `c.try_peek()` just returned.
                unsafe {
                    if held >= batch {
                        c.consume(r);
                        held = 0;
                    } else {
                        c.advance(r);
                    }
                }
            }
            Ok(None) => {
                // What stopped the consumer is in the image.
                let p = c.position();
                let word = read_word(view.region(), view.index(p));
                let blocked = c.blocked();
                match blocked {
                    Blocked::Empty => {
                        assert_eq!(st_tail(&view), p, "blocked Empty with data left")
                    }
                    Blocked::Unmarked => assert_eq!(word, 0, "blocked Unmarked on {word:#x}"),
                    Blocked::InProgress(pid) => assert_eq!(
                        word >> 32,
                        u64::from(CLAIM_BIT | pid),
                        "blocked InProgress({pid}) on {word:#x}"
                    ),
                }
                c.release();
                held = 0;
                if recover_when_blocked {
                    match recover_checked(&mut c, mask, Some(blocked)) {
                        None => return,
                        Some(Recovery::Recovered { .. }) => {
                            recovered += 1;
                            continue;
                        }
                        Some(_) => {}
                    }
                }
                match w.peek() {
                    // Idle until the next hostile write.
                    Some(&&(step, ..)) => steps = steps.max(usize::from(step)),
                    None => return,
                }
            }
            Err(e) => {
                assert!(has_data, "has_data said no, try_peek failed: {e}");
                assert!(!e.to_string().is_empty());
                return;
            }
        }
    }
}

/// `consumer` mode bit (with [`CONSUMER_MPSC`] clear): the image is a
/// broadcast ring, read by a subscriber that joins it (see [`consumer`]).
pub const CONSUMER_BROADCAST: u8 = 1 << 5;
/// `consumer` mode bit (broadcast): the publisher overwrites.
pub const CONSUMER_OVERWRITE: u8 = 1 << 6;
/// `consumer` mode bit (broadcast): the subscriber joins at the oldest
/// message (else at the newest).
pub const CONSUMER_OLDEST: u8 = 1 << 7;
/// Kinds of broadcast hostile writes (`what & 0x7f`, modulo this).
const BROADCAST_WRITE_KINDS: u8 = 20;
/// Broadcast hostile-write flag (`what & 0x80`): made between the copy of
/// a record and the subscriber's `intact()` check (as a publisher lapping
/// the reader mid-copy), when one comes before the next look.
const MID_COPY: u8 = 0x80;
/// Broadcast hostile-write flag (`at & 0x8000`): header lengths are raw
/// (else reduced to plausible ones).
const RAW_LEN: u16 = 0x8000;
/// The pid of the `consumer` target's broadcast subscriber.
const SUBSCRIBER_PID: u32 = 4242;

/// A broadcast hostile write: (step, what, at, value); see [`consumer`].
type BroadcastWrite = (u8, u8, u16, u64);

/// The broadcast half of [`consumer`]; `input` is positioned after the
/// mode byte. `oldest` is the image's `oldest_pos` and `tail` its
/// publisher's `tail` (the target's `head` and `tail`).
fn consumer_broadcast(
    mut input: Bytes<'_>,
    capacity: usize,
    max_message: usize,
    oldest: u64,
    tail: u64,
    mode: u8,
) {
    use shmchan::internals::broadcast::{self, Start, Subscriber};
    use shmchan::internals::sync::Ordering::Relaxed;
    use shmchan::internals::HeapRing;

    let plausible = mode & 1 == 0;
    let batch = 1 + usize::from((mode >> 1) & 7);
    let overwrite = mode & CONSUMER_OVERWRITE != 0;
    let start = if mode & CONSUMER_OLDEST != 0 {
        Start::Oldest
    } else {
        Start::Newest
    };
    let cap = capacity as u64;
    let slots = 1 + usize::from(input.u8() % 4);
    let mask = input.u64();
    let raw_front = input.u64();
    let front = if plausible {
        // Where a publisher leaves it: up to a ring past tail.
        tail.wrapping_add(8 * (raw_front % (cap / 8 + 1)))
    } else {
        raw_front
    };
    let joins = input.u64();
    let oldest_ver = input.u64();
    let oldest_seq = input.u64();
    let next_seq = input.u64();
    let tail_ver = input.u64();
    // Per slot: owner, position, seq, lagged, missed.
    let table: Vec<[u64; 5]> = (0..slots).map(|_| [(); 5].map(|_| input.u64())).collect();
    let mut ring = HeapRing::broadcast(capacity, max_message, slots, overwrite);
    {
        let region = input.take(capacity);
        ring.data_mut()[..region.len()].copy_from_slice(region);
    }
    let view = ring.view();
    assert_eq!(view.capacity(), cap);
    assert_eq!(view.max_message(), max_message);
    assert!(view.is_broadcast() && view.overwrites() == overwrite);
    // SAFETY: hostile writes (the image's fields), made by the ring's one
    // thread before any endpoint exists (see hostile_write).
    let (st, lap) = unsafe { (view.shared_state(), view.shared_lap()) };
    st.producer.tail.store(tail, Relaxed);
    st.producer.next_seq.store(next_seq, Relaxed);
    st.producer.tail_ver.store(tail_ver, Relaxed);
    lap.front.store(front, Relaxed);
    lap.joins.store(joins, Relaxed);
    lap.oldest_ver.store(oldest_ver, Relaxed);
    lap.oldest_pos.store(oldest, Relaxed);
    lap.oldest_seq.store(oldest_seq, Relaxed);
    for (i, f) in table.iter().enumerate() {
        // SAFETY: as above.
        let (s, _) = unsafe { view.shared_subscriber_slot(i) };
        s.owner.store(f[0], Relaxed);
        s.position.store(f[1], Relaxed);
        s.seq.store(f[2], Relaxed);
        s.lagged.store(f[3], Relaxed);
        s.missed.store(f[4], Relaxed);
    }

    // The slot: the first free one, else the first whose owner (another
    // pid) the oracle calls dead.
    let alive = |pid: u32| mask_alive(mask, pid);
    let want = table.iter().position(|f| f[0] == 0).or_else(|| {
        table
            .iter()
            .position(|f| f[0] != 0 && f[0] != u64::from(SUBSCRIBER_PID) && !alive(f[0] as u32))
    });
    // SAFETY: the image's only subscriber; its other owners are forged
    // words, not processes, so freeing a slot the oracle calls dead takes
    // it from nobody.
    let got = unsafe { broadcast::take_slot(&view, SUBSCRIBER_PID, &mut |p| alive(p)) };
    assert_eq!(got, want, "take_slot in table {table:x?}, mask {mask:#x}");
    let Some(slot) = got else { return };
    // SAFETY: loads only (and the stores below are hostile writes, made
    // between calls into the ring by its one thread).
    let (own, _) = unsafe { view.shared_subscriber_slot(slot) };
    // Taken, still joining: waited for, not counted.
    assert_eq!(
        own.owner.load(Relaxed),
        u64::from(SUBSCRIBER_PID) | shmchan::layout::SLOT_JOINING
    );
    assert_eq!(own.position.load(Relaxed), shmchan::layout::NOT_JOINED);
    // The start the join reads (a seqlock with an odd or moving version
    // gives up and takes the words as they are: the same here), and
    // whether `front` lets it start there.
    let (pos, seq) = match start {
        Start::Newest => (tail, next_seq),
        Start::Oldest => (oldest, oldest_seq),
    };
    let joinable = pos.is_multiple_of(8) && front.wrapping_sub(pos) <= cap;
    if !joinable {
        // A join that fails looks JOIN_TRIES times, each a seqlock read
        // that, at an odd version, looks SEQLOCK_TRIES times: 10^7 looks,
        // a fifth of a second (bounded, but too slow to fuzz). The version
        // it reads is made even: odd versions are fuzzed with starts that
        // join, refused starts with even versions.
        let ver = match start {
            Start::Newest => &st.producer.tail_ver,
            Start::Oldest => &lap.oldest_ver,
        };
        ver.store(ver.load(Relaxed) & !1, Relaxed);
    }
    // SAFETY: `slot` was just taken for this subscriber, the only one
    // that uses it.
    let joined =
        unsafe { Subscriber::join(view, slot, start, &mut || {}, std::time::Duration::ZERO) };
    let mut c = match joined {
        Ok(c) => c,
        Err(e) => {
            assert!(!joinable, "join at {pos} (front {front}) failed: {e}");
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(joinable, "joined at {pos} with front {front}");
    assert_eq!((c.position(), c.seq(), c.slot()), (pos, seq, slot));
    assert_eq!(c.overwrites(), overwrite);
    assert_eq!(own.position.load(Relaxed), pos);
    assert_eq!(own.seq.load(Relaxed), seq);
    assert_eq!(own.owner.load(Relaxed), u64::from(SUBSCRIBER_PID), "joined");
    assert_eq!(lap.joins.load(Relaxed), joins.wrapping_add(1));

    let mut writes: Vec<BroadcastWrite> = Vec::new();
    while !input.is_empty() {
        writes.push((input.u8(), input.u8(), input.u16(), input.u64()));
    }
    // Each hostile write lets the subscriber read at most a ring of
    // records (an image can hold an endless stream of them: read until
    // this bound, then left, as for SPSC).
    let bound = (writes.len() + 1) * (capacity / RECORD_HEADER + 2);
    let mut steps = 0usize;
    let mut reads = 0usize;
    let mut held = 0usize;
    let mut deferred = false;
    let mut buf = vec![0u8; max_message];
    let mut w = writes.iter().peekable();
    let forge = |c: &Subscriber<'_>, (_, what, at, value): BroadcastWrite| {
        broadcast_write(c, what, at, value, max_message)
    };
    loop {
        // The writes due; one made mid-copy waits for a copy once.
        while let Some(&&wr) = w.peek() {
            if usize::from(wr.0) > steps || (wr.1 & MID_COPY != 0 && !deferred) {
                deferred = usize::from(wr.0) <= steps;
                break;
            }
            w.next();
            deferred = false;
            forge(&c, wr);
        }
        steps += 1;
        // One publisher waits at most: never more than one post owed.
        assert!(
            c.wakeups().take() <= 1,
            "wake-ups from a forged waiter count"
        );
        if reads > bound {
            return;
        }
        // What the subscriber must find, from the image as it is.
        let p = c.position();
        let word = read_word(view.region(), view.index(p));
        let front = lap.front.load(Relaxed);
        let lapped = overwrite && front.wrapping_sub(p) > cap;
        let ahead = st.producer.tail.load(Relaxed).wrapping_sub(p);
        // Block only: an Overwrite subscriber does not look behind tail
        // (a forged zero there heals when the publisher laps it).
        let stalled = !overwrite && word == 0 && ahead != 0 && ahead <= cap;
        assert_eq!(c.ready(), word != 0 || lapped, "ready() at {p}");
        let has_data = c.has_data().expect("has_data reports by try_peek");
        assert_eq!(
            has_data,
            word != 0 || lapped || stalled,
            "has_data() at {p}: word {word:#x}, front {front}, tail ahead by {ahead}"
        );
        // Whether the subscriber stored its position in its slot now (a
        // release stores nothing when nothing is held).
        let mut stored = false;
        let lap_at = match c.try_peek() {
            Ok(broadcast::Next::Record(r)) => {
                assert!(!lapped, "a record at {p}, lapped by front {front}");
                reads += 1;
                let at = check_broadcast_record(&c, p, word, r);
                assert!(
                    !overwrite || front.wrapping_sub(at) <= cap,
                    "a record at {at}, lapped by front {front}"
                );
                read_bytes(view.region(), r.data_offset, &mut buf[..r.len]);
                // The writes made mid-copy.
                while let Some(&&wr) = w.peek() {
                    if usize::from(wr.0) > steps || wr.1 & MID_COPY == 0 {
                        break;
                    }
                    w.next();
                    deferred = false;
                    forge(&c, wr);
                }
                // Overwrite: the copy is of the record unless a lap
                // (forged mid-copy) passed it.
                let front = lap.front.load(Relaxed);
                let torn = overwrite && front.wrapping_sub(at) > cap;
                if overwrite {
                    assert_eq!(c.intact(), !torn, "intact() at {at}, front {front}");
                }
                if torn {
                    stored = held > 0;
                    c.release();
                    held = 0;
                    Some(front)
                } else {
                    held += 1;
                    let seq = c.seq();
                    // SAFETY: `r` is the record `c.try_peek()` just
                    // returned.
                    unsafe {
                        if held >= batch {
                            c.consume(r);
                            held = 0;
                            stored = true;
                        } else {
                            c.advance(r);
                        }
                    }
                    assert_eq!((c.position(), c.seq()), (r.end, seq.wrapping_add(1)));
                    None
                }
            }
            Ok(broadcast::Next::Empty) => {
                // (Padding is data too: skipped, it may lead to nothing.)
                assert!(
                    !has_data || c.position() != p,
                    "has_data() said yes, try_peek() found nothing at {p}"
                );
                stored = held > 0;
                c.release();
                held = 0;
                match w.peek() {
                    // Idle until the next hostile write.
                    Some(&&(step, ..)) => steps = steps.max(usize::from(step)),
                    None => return,
                }
                None
            }
            Ok(broadcast::Next::Lapped) => {
                // At the read position, or past padding from it.
                let q = c.position();
                assert!(
                    overwrite && front.wrapping_sub(q) > cap && (q == p) == lapped,
                    "Lapped at {q} (looking at {p}) with front {front} (overwrite {overwrite})"
                );
                stored = held > 0;
                c.release();
                held = 0;
                Some(front)
            }
            Err(e) => {
                assert!(has_data, "has_data() said no, try_peek() failed: {e}");
                assert!(!e.to_string().is_empty());
                return;
            }
        };
        if stored {
            // What the subscriber released is in its slot.
            assert_eq!(own.position.load(Relaxed), c.position(), "slot position");
            assert_eq!(own.seq.load(Relaxed), c.seq(), "slot seq");
        }
        if let Some(front) = lap_at {
            if lagged_checked(&mut c, front).is_none() {
                return;
            }
        }
    }
}

/// Checks the record `r` that the broadcast subscriber `c` found looking
/// at position `p`, whose header word was `word`: a message at `p`, or at
/// the start of the region after padding from `p` to its end, inside the
/// region, at most `max_message`, with the header it was read from.
/// Returns the record's position.
fn check_broadcast_record(
    c: &shmchan::internals::broadcast::Subscriber<'_>,
    p: u64,
    word: u64,
    r: shmchan::internals::Record,
) -> u64 {
    use shmchan::layout::{kind, record_header, record_size};
    let view = c.view();
    let cap = view.capacity();
    assert!(r.len <= view.max_message(), "record of {} bytes", r.len);
    assert!(
        r.data_offset >= RECORD_HEADER && r.data_offset + r.len <= cap as usize,
        "record {}+{} outside the {cap}-byte region",
        r.data_offset,
        r.len
    );
    let at = r.end.wrapping_sub(record_size(r.len) as u64);
    assert_eq!(c.position(), at, "read position of the record");
    assert_eq!(view.index(at) + RECORD_HEADER, r.data_offset);
    if at != p {
        let room = cap - view.index(p) as u64;
        assert_eq!(at, p.wrapping_add(room), "a record at {at}, looking at {p}");
        assert_eq!(view.index(at), 0);
        assert_eq!(word, record_header(kind::PADDING, (room - 8) as u32));
    }
    assert_eq!(
        read_word(view.region(), view.index(at)),
        record_header(kind::MESSAGE, r.len as u32),
        "the header of the record at {at}"
    );
    at
}

/// A broadcast subscriber lapped by `front` (nothing held) goes on with
/// `lagged()`, checked against the lap line as it is: it moves to the
/// oldest record (and says what it missed, and counts it in its slot)
/// when that is past the read position, and it must move (else the
/// subscriber would find the same lap again, for ever) or report the
/// damage. Returns the messages missed, `None` when it reported
/// corruption.
fn lagged_checked(
    c: &mut shmchan::internals::broadcast::Subscriber<'_>,
    front: u64,
) -> Option<u64> {
    use shmchan::internals::sync::Ordering::Relaxed;
    let view = *c.view();
    // SAFETY: loads only.
    let (own, lap) = unsafe { view.shared_subscriber_slot(c.slot()) };
    let (pos, seq) = (lap.oldest_pos.load(Relaxed), lap.oldest_seq.load(Relaxed));
    let (read, read_seq) = (c.position(), c.seq());
    let (lags, missed) = (own.lagged.load(Relaxed), own.missed.load(Relaxed));
    let n = match c.lagged() {
        Ok(n) => n,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return None;
        }
    };
    let ahead = pos.wrapping_sub(read);
    assert!(
        ahead != 0 && ahead as i64 > 0,
        "lapped at {read} (front {front}), lagged() returned {n}: the oldest ({pos}) is not past the read position, and the next look finds the same lap"
    );
    assert_eq!(
        (c.position(), c.seq()),
        (pos, seq),
        "lagged() goes on from the oldest"
    );
    assert_eq!(n, seq.wrapping_sub(read_seq), "missed");
    assert!(
        pos.is_multiple_of(8) && n <= ahead / 8,
        "{n} missed in {ahead} bytes"
    );
    assert_eq!(own.position.load(Relaxed), pos, "slot position");
    assert_eq!(own.seq.load(Relaxed), seq, "slot seq");
    let counted = if n > 0 {
        (lags.wrapping_add(1), missed.wrapping_add(n))
    } else {
        (lags, missed)
    };
    assert_eq!(
        (own.lagged.load(Relaxed), own.missed.load(Relaxed)),
        counted,
        "the slot's lag statistics"
    );
    Some(n)
}

/// A hostile write into the broadcast ring that `c` reads (see
/// [`consumer`]): `at` names a word `8 * (at & 0x7fff)` bytes from its
/// read position (`p`), `value` is the word or a count.
fn broadcast_write(
    c: &shmchan::internals::broadcast::Subscriber<'_>,
    what: u8,
    at: u16,
    value: u64,
    max_message: usize,
) {
    use shmchan::internals::sync::Ordering::Relaxed;
    use shmchan::layout::{kind, record_header};
    let view = *c.view();
    let cap = view.capacity();
    let p = c.position();
    let seq = c.seq();
    let off = 8 * u64::from(at & !RAW_LEN);
    let raw = at & RAW_LEN != 0;
    let word_at = view.index(p.wrapping_add(off));
    let region = view.region();
    // SAFETY: hostile writes, made between calls into the ring by its one
    // thread (see hostile_write).
    let (st, lap) = unsafe { (view.shared_state(), view.shared_lap()) };
    // SAFETY: as above.
    let (own, _) = unsafe { view.shared_subscriber_slot(c.slot()) };
    match (what & !MID_COPY) % BROADCAST_WRITE_KINDS {
        0 => lap.front.store(value, Relaxed),
        1 => lap.front.store(p.wrapping_add(off), Relaxed),
        2 => lap.front.store(p.wrapping_sub(off), Relaxed),
        // Around the lap of the read position.
        3 => lap
            .front
            .store(p.wrapping_add(cap + 8 * (u64::from(at) % 8)), Relaxed),
        // An oldest record ahead, its sequence number plausible.
        4 => {
            lap.oldest_pos.store(p.wrapping_add(off), Relaxed);
            lap.oldest_seq.store(
                seq.wrapping_add(value % (u64::from(at & !RAW_LEN) + 1)),
                Relaxed,
            );
        }
        5 => lap.oldest_pos.store(value, Relaxed),
        6 => lap.oldest_seq.store(value, Relaxed),
        7 => lap.oldest_ver.store(value, Relaxed),
        8 => st.producer.tail.store(p.wrapping_add(off), Relaxed),
        9 => st.producer.tail.store(value, Relaxed),
        10 => st.producer.next_seq.store(value, Relaxed),
        11 => st.producer.tail_ver.store(value, Relaxed),
        12 => hostile_write(region, word_at, value),
        13 => {
            let len = if raw {
                value as u32
            } else {
                (value % (max_message as u64 + 17)) as u32
            };
            hostile_write(region, word_at, record_header(kind::MESSAGE, len))
        }
        14 => {
            let len = if raw {
                value as u32
            } else {
                (cap - word_at as u64).saturating_sub(8) as u32
            };
            hostile_write(region, word_at, record_header(kind::PADDING, len))
        }
        15 => hostile_write(region, word_at, 0),
        // The subscriber's own slot (other processes may write it too).
        16 => match at % 6 {
            0 => own.owner.store(value, Relaxed),
            1 => own.position.store(value, Relaxed),
            2 => own.seq.store(value, Relaxed),
            3 => own.lagged.store(value, Relaxed),
            4 => own.missed.store(value, Relaxed),
            _ => own.bell.store(value, Relaxed),
        },
        17 => lap.joins.store(value, Relaxed),
        // A forged count of sleeping publishers.
        18 => st.wake.send_waiters.store(value as u32, Relaxed),
        // A whole lap as a publisher makes it: front past the read
        // position's ring, the oldest record just past it.
        _ => {
            let k = 8 * (1 + u64::from(at) % 4);
            lap.front.store(p.wrapping_add(cap + k), Relaxed);
            lap.oldest_pos.store(p.wrapping_add(k), Relaxed);
            lap.oldest_seq
                .store(seq.wrapping_add(value % (k / 8 + 1)), Relaxed);
        }
    }
}

/// The shared tail of `view`.
fn st_tail(view: &RingView<'_>) -> u64 {
    view.positions().1
}

/// Calls `try_recover` with the oracle `mask` (see [`consumer`]) and checks
/// its answer against the image as it was before the call:
/// - `Empty`: nothing is claimed at the read position; `Retry`: a
///   committed record or padding is there;
/// - `Alive(pid)`: the oracle says `pid` lives, and `pid` is the header's
///   claimant (in progress) or, for a zero header, the owner of a slot
///   naming the read position;
/// - `Recovered`: never while the header's pid, or the owner of a slot
///   naming the position, is alive; the claimant it names is the header's
///   pid or such an owner; the padding stays inside the data region and the
///   claimed space; an in-progress record keeps its size; an unmarked claim
///   ends exactly at the first boundary (tail, end of the region, a
///   non-zero word, another slot's claim) and covers only zero words (no
///   written header is swallowed). The header then is that padding.
/// - any other answer leaves the header as it was.
///
/// With `after` (the consumer's `blocked()` right after a `try_peek` that
/// found nothing, and nothing written since) the answer must match it:
/// `Empty` after `Empty`; the same pid `Alive` or `Recovered` after
/// `InProgress`; `Alive` or `Recovered` after `Unmarked`; and no error
/// after `Empty` or `Unmarked` unless the shared tail is invalid. (Only
/// `Empty` may also follow a stop at a header: `try_peek` reads its cached
/// tail, `try_recover` the shared one, which a hostile write may have
/// moved back to the read position.)
/// Returns `None` when the consumer reported corruption (it stops).
fn recover_checked(
    c: &mut shmchan::internals::mpsc::Consumer<'_>,
    mask: u64,
    after: Option<shmchan::internals::mpsc::Blocked>,
) -> Option<shmchan::internals::mpsc::Recovery> {
    use shmchan::internals::mpsc::{Blocked, Recovery, CLAIM_BIT};
    use shmchan::internals::sync::Ordering::Relaxed;
    use shmchan::layout::{kind, record_header, record_size, split_record_header};

    let view = *c.view();
    let cap = view.capacity();
    let p = c.position();
    let idx = view.index(p);
    let room = cap - idx as u64;
    // The words from the read position to the end of the region.
    let words: Vec<u64> = (idx..cap as usize)
        .step_by(8)
        .map(|o| read_word(view.region(), o))
        .collect();
    let word = words[0];
    let slots: Vec<(u64, u64)> = (0..view.sender_slots())
        .map(|i| {
            // SAFETY: loads only.
            let s = unsafe { view.shared_sender_slot(i) };
            (s.owner.load(Relaxed), s.claim.load(Relaxed))
        })
        .collect();
    let tail = st_tail(&view);
    // What try_recover's refresh checks (the consumer's head is the shared
    // one: no hostile write forges it).
    let head = view.positions().0;
    let tail_ok =
        tail.wrapping_sub(head) <= cap && tail.wrapping_sub(p) <= cap && tail.is_multiple_of(8);
    let alive = |pid: u32| mask_alive(mask, pid);
    // SAFETY: no process writes to this ring but this one: the image is
    // private memory, whose only writers besides the consumer are the
    // hostile writes, made by this thread between calls (so they race with
    // nothing, whatever the oracle says of the pids they name).
    let r = match unsafe { c.try_recover(&mut |pid| alive(pid)) } {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            // A peek that stopped at an unmarked claim read nothing that
            // recovery checks again, but the tail (try_peek may have used
            // its cached one).
            assert!(
                !tail_ok || !matches!(after, Some(Blocked::Empty | Blocked::Unmarked)),
                "try_recover failed ({e}) right after a peek that stopped at {after:?}"
            );
            return None;
        }
    };
    let (high, len) = split_record_header(word);
    let marked = high & CLAIM_BIT != 0;
    // Owned slots naming position `at`.
    let naming = |at: u64| {
        slots
            .iter()
            .filter(move |&&(owner, claim)| owner != 0 && claim == at)
            .map(|&(owner, _)| owner)
    };
    let ctx = || format!("pos {p} word {word:#x} tail {tail} slots {slots:x?} mask {mask:#x}");
    match r {
        Recovery::Empty => assert_eq!(tail, p, "Empty: {}", ctx()),
        Recovery::Retry => assert!(word != 0 && !marked, "Retry: {}", ctx()),
        Recovery::Alive(pid) => {
            assert!(alive(pid), "Alive({pid}) of a dead pid: {}", ctx());
            if marked {
                assert_eq!(pid, high & !CLAIM_BIT, "Alive: {}", ctx());
            } else {
                assert_eq!(word, 0, "Alive({pid}): {}", ctx());
                assert!(
                    naming(p).any(|o| o == u64::from(pid)),
                    "Alive({pid}) names no slot: {}",
                    ctx()
                );
            }
        }
        Recovery::Recovered { pid, size } => {
            let what = || format!("Recovered {{ {pid:?}, {size} }}: {}", ctx());
            assert!(size > 0 && size.is_multiple_of(8), "{}", what());
            assert!(size <= room && size <= tail.wrapping_sub(p), "{}", what());
            if marked {
                let claimant = high & !CLAIM_BIT;
                assert!(!alive(claimant), "a live claimant: {}", what());
                assert_eq!(pid, Some(claimant), "{}", what());
                assert_eq!(size, record_size(len as usize) as u64, "{}", what());
                assert!(len as usize <= view.max_message(), "{}", what());
            } else {
                assert_eq!(word, 0, "{}", what());
                for owner in naming(p) {
                    assert!(
                        owner > u64::from(u32::MAX) || !alive(owner as u32),
                        "slot owner {owner} is alive: {}",
                        what()
                    );
                }
                match pid {
                    Some(x) => assert!(naming(p).any(|o| o == u64::from(x)), "{}", what()),
                    None => assert!(naming(p).all(|o| o > u64::from(u32::MAX)), "{}", what()),
                }
                let n = (size / 8) as usize;
                assert!(
                    words[..n].iter().all(|&w| w == 0),
                    "a written word recovered as padding: {}",
                    what()
                );
                // Any slot's claim bounds it, owned or not.
                for &(_, claim) in &slots {
                    let d = claim.wrapping_sub(p);
                    assert!(
                        !claim.is_multiple_of(8) || d == 0 || d >= size,
                        "another claim ({claim}) swallowed: {}",
                        what()
                    );
                }
                let end = p.wrapping_add(size);
                assert!(
                    size == room
                        || end == tail
                        || words.get(n).is_some_and(|&w| w != 0)
                        || slots.iter().any(|&(_, claim)| claim == end),
                    "the claim does not end at a boundary: {}",
                    what()
                );
            }
            assert_eq!(
                read_word(view.region(), idx),
                record_header(kind::PADDING, (size - 8) as u32),
                "{}",
                what()
            );
        }
    }
    if !matches!(r, Recovery::Recovered { .. }) {
        assert_eq!(
            read_word(view.region(), idx),
            word,
            "{r:?} changed the header"
        );
    }
    if let Some(b) = after {
        let ok = match (b, r) {
            (Blocked::Empty, Recovery::Empty) => true,
            // try_peek stopped on a header using its cached tail; a forged
            // tail moved back to the read position since (checked above).
            (Blocked::Unmarked | Blocked::InProgress(_), Recovery::Empty) => true,
            (Blocked::InProgress(pid), Recovery::Alive(x)) => x == pid,
            (Blocked::InProgress(pid), Recovery::Recovered { pid: x, .. }) => x == Some(pid),
            (Blocked::Unmarked, Recovery::Alive(_) | Recovery::Recovered { .. }) => true,
            _ => false,
        };
        assert!(ok, "blocked {b:?}, then try_recover: {r:?} ({})", ctx());
    }
    Some(r)
}

/// What the `ops` model says a record in the ring is.
#[derive(Debug)]
enum Modeled {
    Message(Vec<u8>),
    Padding,
}

/// The reference for the `ops` target: the SPSC ring's byte accounting,
/// written plainly over a `VecDeque` of records.
struct Model {
    capacity: u64,
    max_message: usize,
    /// Records published and not yet read, with their sizes in bytes.
    queue: std::collections::VecDeque<(u64, Modeled)>,
    tail: u64,
    /// Read but not yet released.
    read: u64,
    head: u64,
}

/// Outcome of a reservation, in the model's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reserve {
    Ok,
    Full,
    TooLarge,
}

impl Model {
    /// Free bytes: the region less what is in use and the header word past
    /// the last record, which always stays free (zero).
    fn free(&self) -> u64 {
        (self.capacity - RECORD_HEADER as u64).saturating_sub(self.tail - self.head)
    }

    fn reserve(&mut self, len: usize) -> Reserve {
        if len > self.max_message {
            return Reserve::TooLarge;
        }
        let rec = shmchan::layout::record_size(len) as u64;
        let contiguous = self.capacity - self.tail % self.capacity;
        let free = self.free();
        if rec <= contiguous {
            return if free >= rec {
                Reserve::Ok
            } else {
                Reserve::Full
            };
        }
        // Padding to the end of the region first, published on its own.
        if free < contiguous {
            return Reserve::Full;
        }
        self.queue.push_back((contiguous, Modeled::Padding));
        self.tail += contiguous;
        if self.free() >= rec {
            Reserve::Ok
        } else {
            Reserve::Full
        }
    }

    fn commit(&mut self, msg: Vec<u8>) {
        let rec = shmchan::layout::record_size(msg.len()) as u64;
        self.queue.push_back((rec, Modeled::Message(msg)));
        self.tail += rec;
    }

    /// The next message, skipping padding as the consumer does (released at
    /// once when nothing else is held).
    fn peek(&mut self) -> Option<&[u8]> {
        while let Some((size, Modeled::Padding)) = self.queue.front() {
            let size = *size;
            self.queue.pop_front();
            self.read += size;
            if self.head + size == self.read {
                self.head = self.read;
            }
        }
        match self.queue.front() {
            Some((_, Modeled::Message(m))) => Some(m),
            _ => None,
        }
    }

    fn advance(&mut self) {
        let (size, _) = self.queue.pop_front().expect("a peeked message");
        self.read += size;
    }

    fn release(&mut self) {
        self.head = self.read;
    }
}

/// The `ops` target: a differential test of the SPSC ring, or of the MPSC
/// ring with several in-process producers. An arbitrary sequence of
/// operations (copy sends, zero-copy reserve then commit or abort, receives
/// that release at once or in batches, explicit releases, space and data
/// checks; MPSC also producers that die, leave or are replaced, and
/// recovery) runs on a ring and on a plain model (`Model`,
/// `MpscModel`); every outcome (message bytes, `Full`, `Empty`,
/// `TooLarge`, why the consumer stopped, what recovery did, which slot a
/// new producer gets) must agree.
///
/// Input: a first byte, `max_message` (u16, clamped), then operations of
/// one byte each, most followed by a u16 length.
///
/// First byte below 0x80 (SPSC; the inputs of earlier versions, except
/// those whose first byte was 0x80 or more): capacity exponent
/// (`64 << (b % 5)`, up to 1 KiB). SPSC operations: `op % 8`: 0 try_push,
/// 1 reserve + commit, 2 reserve + abort (each with a u16), 3 recv, 4 recv
/// kept for a batch, 5 release, 6 has_space (u16) and has_data, 7 a batch
/// of `1 + b % 8` records (a byte, then a u16 each) committed unpublished
/// and published once (an earlier version took the op modulo 7, so an
/// old input's op bytes from 7 up mean other operations now).
///
/// First byte with bit 7 set (MPSC): bit 6 set gives 3 producers (pids
/// 10, 20, 30; else 2), `(b & 0x3f) % 5` the capacity exponent; the
/// sender table has a slot per producer. `op % 11` is the operation and
/// `op / 11 % producers` the producer it acts for: 0 try_push (u16),
/// 1 reserve, the grant stays open (u16), 2 write and commit the open
/// grant, 3 abort it, 4 die (u16; with an open grant: it stays marked;
/// else a claim of `len_of(u16 >> 1)` bytes stopped by
/// `try_reserve_until` at `Claimed` (bit 0 clear) or `RecordMarked`; the
/// oracle calls the pid dead from then on), 5 leave (live, no grant) or
/// be replaced by a new pid that calls `take_slot`; for the consumer:
/// 6 recv, 7 recv kept for a batch, 8 release, 9 `try_recover`, 10
/// has_space (u16) of the producer and has_data.
///
/// MPSC checks besides the outcomes: the shared tail and head, the read
/// position, every sender slot's owner and claim are the model's; the free
/// space reads as zero; nobody is owed a wake-up.
///
/// First byte with bit 7 clear and bit 6 set (broadcast; SPSC inputs of
/// earlier versions with a first byte in 0x40..0x80 now mean broadcast):
/// a publisher and `2 + (b >> 3 & 3) % 3` subscribers (processes that
/// join, leave, die and come back as new pids) on a ring of `64 << ((b &
/// 7) % 5)` bytes; bit 5 set: `Overflow::Overwrite`. `op % 11` is the
/// operation and `op / 11 % subscribers` the subscriber it acts for: 0
/// try_push (u16), 1 reserve + commit (u16), 2 reserve, then dropped
/// (u16), 3 a batch as `Sender::send_batch` makes it (a count byte, then
/// `1 + count % 4` u16 lengths, each committed at once); 4 recv, 5 recv
/// kept for a batch, 6 release; 7 (u8) leave when joined, else a new
/// process takes a slot and joins (`Start::Oldest` with bit 0 set, else
/// `Start::Newest`); 8 killed (dropped without leaving: its slot stays
/// its dead pid's); 9 the publisher's `Fanout::recover` with `need = u16
/// % (capacity + 9)`; 10 (u16) the subscriber's `ready`/`has_data`, the
/// publisher's `space_now`/`has_space`.
///
/// The model (`BcModel`) holds every record published and the
/// subscriber table. Blocking: the publisher is `Full` exactly when the
/// slowest joined subscriber (killed ones included until recovered)
/// leaves no room, never with none; every subscriber gets exactly the
/// messages published since its join point, in order, with their bytes;
/// a joined subscriber's unreleased records are never written over.
/// Overwriting: the publisher is never `Full`; a subscriber more than a
/// ring behind `front` is `Lapped` and goes on from the model's oldest
/// record with the model's missed count (its slot's `lagged` and
/// `missed` too); every message it gets is intact, in order, with its
/// bytes. Both: the join points (the newest: tail and next_seq; the
/// oldest: the first record at or past `front - capacity`), which slot
/// `take_slot` takes, what `recover` frees (only dead pids' slots that
/// hold the publisher back by `need`), `ready`/`has_data`/`has_space`/
/// `space_now`; after each operation tail, next_seq, tail_ver, joins,
/// the lap line's oldest record, every slot's owner, position, seq and
/// statistics, `slowest` and `joined` are the model's, `front` only moves
/// forward (by multiples of 8), covers the word past tail and stays
/// within a ring past it, and nobody is owed a wake-up. At the end every
/// joined subscriber drains the ring: received + missed (0 when
/// blocking) = published since it joined.
pub fn ops(data: &[u8]) {
    use shmchan::internals::{HeapRing, ReserveError};
    use shmchan::layout::max_message_for;

    let mut input = Bytes(data);
    let first = input.u8();
    if first & OPS_MPSC != 0 {
        return ops_mpsc(input, first);
    }
    if first & OPS_BROADCAST != 0 {
        return ops_broadcast(input, first);
    }
    let capacity = MIN_CAPACITY << (first % 5);
    let max_message = usize::from(input.u16()).min(max_message_for(capacity));
    let ring = HeapRing::new(capacity, max_message);
    let (mut p, mut c) = spsc_endpoints(&ring);
    let mut m = Model {
        capacity: capacity as u64,
        max_message,
        queue: Default::default(),
        tail: 0,
        read: 0,
        head: 0,
    };
    let mut seq = 0u32;
    // Lengths reach a little past max_message, to hit TooLarge.
    let len_of = |raw: u16| usize::from(raw) % (max_message + 17);
    let payload = |seq: u32, len: usize| -> Vec<u8> {
        (0..len)
            .map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i) as u8)
            .collect()
    };
    let outcome = |r: Result<(), &ReserveError>| match r {
        Ok(()) => Reserve::Ok,
        Err(ReserveError::Full) => Reserve::Full,
        Err(ReserveError::TooLarge { .. }) => Reserve::TooLarge,
        Err(ReserveError::Corrupted(e)) => panic!("a well-used ring is corrupted: {e}"),
    };
    // A reservation of `len` bytes, its outcome the model's, with `msg`
    // written into it when it succeeds.
    let reserve_checked = |p: &mut shmchan::internals::spsc::Producer<'_>,
                           m: &mut Model,
                           len: usize,
                           msg: &[u8]|
     -> Option<Reservation> {
        let r = p.try_reserve(len);
        let want = m.reserve(len);
        assert_eq!(outcome(r.as_ref().map(drop)), want, "try_reserve({len})");
        let r = r.ok()?;
        write_payload(ring.view().region(), &r, msg);
        Some(r)
    };

    let mut ops_done = 0;
    while !input.is_empty() && ops_done < 10_000 {
        ops_done += 1;
        match input.u8() % 8 {
            // try_send: copy.
            0 => {
                let len = len_of(input.u16());
                let msg = payload(seq, len);
                seq += 1;
                let got = outcome(p.try_push(&msg).as_ref().map(drop));
                let want = m.reserve(len);
                assert_eq!(got, want, "try_push({len})");
                if want == Reserve::Ok {
                    m.commit(msg);
                }
            }
            // reserve, fill, then commit (even) or abort (odd).
            op @ (1 | 2) => {
                let len = len_of(input.u16());
                let msg = payload(seq, len);
                seq += 1;
                if let Some(r) = reserve_checked(&mut p, &mut m, len, &msg) {
                    if op == 1 {
                        // SAFETY: `r` is what `p.try_reserve` just returned.
                        unsafe { p.commit(r) };
                        m.commit(msg);
                    }
                }
            }
            // recv: release at once (3) or keep for a batch (4).
            op @ (3 | 4) => {
                let got = c.try_peek().expect("a well-used ring is corrupted");
                let want = m.peek().map(<[u8]>::to_vec);
                match (got, want) {
                    (None, None) => {}
                    (Some(r), Some(w)) => {
                        let mut buf = vec![0u8; r.len];
                        read_bytes(ring.view().region(), r.data_offset, &mut buf);
                        assert_eq!(buf, w, "message content");
                        m.advance();
                        if op == 3 {
                            // SAFETY: `r` is what `c.try_peek()` just returned.
                            unsafe { c.consume(r) };
                            m.release();
                        } else {
                            // SAFETY: as above.
                            unsafe { c.advance(r) };
                        }
                    }
                    (got, want) => panic!("recv: ring {got:?}, model {want:?}"),
                }
            }
            // Batch release.
            5 => {
                c.release();
                m.release();
            }
            // A batch: up to 8 records committed unpublished, then one
            // publish (what Sender::send_batch does); the model takes them
            // one by one, and the shared tail is checked after the op.
            7 => {
                let k = 1 + usize::from(input.u8() % 8);
                for _ in 0..k {
                    let len = len_of(input.u16());
                    let msg = payload(seq, len);
                    seq += 1;
                    let Some(r) = reserve_checked(&mut p, &mut m, len, &msg) else {
                        break;
                    };
                    // SAFETY: `r` is what `p.try_reserve` just returned.
                    unsafe { p.commit_unpublished(r) };
                    m.commit(msg);
                }
                p.publish_pending();
            }
            // has_space / has_data agree with the model.
            _ => {
                let len = len_of(input.u16()).min(max_message);
                let rec = shmchan::layout::record_size(len) as u64;
                let contiguous = m.capacity - m.tail % m.capacity;
                let need = rec.min(contiguous);
                assert_eq!(
                    p.has_space(len).unwrap(),
                    m.free() >= need,
                    "has_space({len})"
                );
                let pending = m.tail != m.read;
                assert_eq!(c.has_data().unwrap(), pending, "has_data");
            }
        }
        // The shared positions are the model's.
        let (head, tail) = ring.view().positions();
        assert_eq!(tail, m.tail);
        assert_eq!(head, m.head);
        // No wake-ups: nobody sleeps here.
        assert_eq!(p.wakeups().take() + c.wakeups().take(), 0);
    }
}

/// The SPSC producer and consumer of `ring`; the caller makes no other
/// endpoint of it.
fn spsc_endpoints(
    ring: &shmchan::internals::HeapRing,
) -> (
    shmchan::internals::spsc::Producer<'_>,
    shmchan::internals::spsc::Consumer<'_>,
) {
    use shmchan::internals::spsc::{Consumer, Producer};
    // SAFETY: the ring's only producer and only consumer (every caller
    // makes its endpoints here, once per ring), used by one thread.
    unsafe {
        (
            Producer::new(ring.view()).expect("fresh ring"),
            Consumer::new(ring.view()).expect("fresh ring"),
        )
    }
}

/// `ops` first-byte bit: the MPSC ring (see [`ops`]).
const OPS_MPSC: u8 = 0x80;
/// `ops` first-byte bit (MPSC): three producers instead of two.
const OPS_THREE: u8 = 0x40;
/// Operations of the MPSC `ops` mode: an op byte modulo this is the
/// operation, the quotient (modulo the number of producers) the producer.
const MPSC_OPS: u8 = 11;

/// Whether MPSC `ops` operation `kind` is followed by a u16.
fn mpsc_op_takes_u16(kind: u8) -> bool {
    matches!(kind, 0 | 1 | 4 | 10)
}

/// What the MPSC `ops` model says a claim in the ring is.
#[derive(Debug)]
enum Claim {
    /// Committed.
    Message(Vec<u8>),
    /// Aborted, a gap's padding, or recovered.
    Padding,
    /// Marked in progress by this pid: a live producer's open grant, or a
    /// dead one's.
    Marked(u32),
    /// Claimed, nothing written: a producer that died right after its CAS,
    /// or the gap of one that died before writing the gap's padding.
    Unmarked,
}

/// The reference for the MPSC `ops` mode, written plainly: the claims
/// from the read position to the tail, in position (claim) order, and the
/// sender table.
struct MpscModel {
    capacity: u64,
    max_message: usize,
    /// (start, size, what) of each claim not yet read.
    claims: std::collections::VecDeque<(u64, u64, Claim)>,
    tail: u64,
    read: u64,
    head: u64,
    /// The sender table: (owner, claim) per slot.
    slots: Vec<(u64, u64)>,
}

impl MpscModel {
    /// A claim for `len` payload bytes by the producer in `slot` (marking
    /// with `pid`) that gets as far as `stage`: the record's start, or why
    /// it failed. A record that does not fit before the end of the region
    /// also claims the gap up to the end; the claim fails unless both fit
    /// in the free space. When gap and record together are more than the
    /// ring, the gap is claimed alone first (padding at once), and the
    /// record then from index 0. The slot names the claim's start (gap
    /// included) while the claim is not fully marked, and nothing after
    /// `Full`.
    fn claim(
        &mut self,
        slot: usize,
        pid: u32,
        len: usize,
        stage: shmchan::internals::mpsc::Stage,
    ) -> Result<u64, Reserve> {
        use shmchan::internals::mpsc::Stage;
        if len > self.max_message {
            return Err(Reserve::TooLarge);
        }
        let rec = shmchan::layout::record_size(len) as u64;
        let mut contiguous = self.capacity - self.tail % self.capacity;
        if rec > contiguous && contiguous + rec > self.capacity {
            // The gap alone, published as padding, if it fits.
            if self.capacity - (self.tail - self.head) < contiguous {
                self.slots[slot].1 = shmchan::layout::NO_CLAIM;
                return Err(Reserve::Full);
            }
            self.claims
                .push_back((self.tail, contiguous, Claim::Padding));
            self.tail += contiguous;
            self.slots[slot].1 = shmchan::layout::NO_CLAIM;
            contiguous = self.capacity;
        }
        let pad = if rec <= contiguous { 0 } else { contiguous };
        let free = self.capacity - (self.tail - self.head);
        if free < pad + rec {
            // A producer that finds the ring full names no claim while it
            // waits.
            self.slots[slot].1 = shmchan::layout::NO_CLAIM;
            return Err(Reserve::Full);
        }
        let start = self.tail;
        // The slot names the claim (its gap included) from before the CAS
        // until the claim is marked in full (gap included).
        self.slots[slot].1 = if stage == Stage::Reserved {
            shmchan::layout::NO_CLAIM
        } else {
            start
        };
        if pad > 0 {
            let gap = match stage {
                Stage::Reserved => Claim::Padding,
                _ => Claim::Unmarked,
            };
            self.claims.push_back((start, pad, gap));
        }
        let record = match stage {
            Stage::Claimed => Claim::Unmarked,
            _ => Claim::Marked(pid),
        };
        self.claims.push_back((start + pad, rec, record));
        self.tail = start + pad + rec;
        Ok(start + pad)
    }

    /// The open grant at `start` is committed with `msg`, or aborted.
    fn finish(&mut self, start: u64, msg: Option<Vec<u8>>) {
        let c = self
            .claims
            .iter_mut()
            .find(|c| c.0 == start)
            .expect("the model holds every open grant");
        assert!(
            matches!(c.2, Claim::Marked(_)),
            "grant at {start}: {:?}",
            c.2
        );
        c.2 = msg.map_or(Claim::Padding, Claim::Message);
    }

    /// The next message, or why there is none: padding is skipped (and
    /// released at once when nothing else is held); the first claim that
    /// is neither committed nor padding stops the consumer.
    fn peek(&mut self) -> Result<Vec<u8>, shmchan::internals::mpsc::Blocked> {
        use shmchan::internals::mpsc::Blocked;
        loop {
            match self.claims.front() {
                Some(&(_, size, Claim::Padding)) => {
                    self.claims.pop_front();
                    let held = self.read != self.head;
                    self.read += size;
                    if !held {
                        self.head = self.read;
                    }
                }
                Some((_, _, Claim::Message(m))) => return Ok(m.clone()),
                Some(&(_, _, Claim::Marked(pid))) => return Err(Blocked::InProgress(pid)),
                Some((_, _, Claim::Unmarked)) => return Err(Blocked::Unmarked),
                None => return Err(Blocked::Empty),
            }
        }
    }

    fn advance(&mut self) {
        let (_, size, _) = self.claims.pop_front().expect("a peeked message");
        self.read += size;
    }

    fn release(&mut self) {
        self.head = self.read;
    }

    /// `has_data`: a committed record or padding at the read position.
    fn has_data(&self) -> bool {
        matches!(
            self.claims.front(),
            Some((_, _, Claim::Message(_) | Claim::Padding))
        )
    }

    /// `has_space(len)`: the record (and the gap before it) fits now.
    fn has_space(&self, len: usize) -> bool {
        let rec = shmchan::layout::record_size(len.min(self.max_message)) as u64;
        let contiguous = self.capacity - self.tail % self.capacity;
        let need = if rec <= contiguous {
            rec
        } else if contiguous + rec <= self.capacity {
            contiguous + rec
        } else {
            contiguous
        };
        self.capacity - (self.tail - self.head) >= need
    }

    /// `try_recover`: the claim at the read position becomes padding when
    /// its claimant is dead: the pid in its mark, or (unmarked) the owner of
    /// the slot naming its start; its size is the claim's (an unmarked
    /// claim after a gap is named by no slot: its claimant is unknown).
    fn recover(&mut self, alive: &dyn Fn(u32) -> bool) -> shmchan::internals::mpsc::Recovery {
        use shmchan::internals::mpsc::Recovery;
        let Some((start, size, claim)) = self.claims.front_mut() else {
            return Recovery::Empty;
        };
        let pid = match *claim {
            Claim::Message(_) | Claim::Padding => return Recovery::Retry,
            Claim::Marked(pid) if alive(pid) => return Recovery::Alive(pid),
            Claim::Marked(pid) => Some(pid),
            Claim::Unmarked => {
                let mut claimant = None;
                for &(owner, at) in &self.slots {
                    if owner != 0 && at == *start {
                        if alive(owner as u32) {
                            return Recovery::Alive(owner as u32);
                        }
                        claimant = Some(owner as u32);
                    }
                }
                claimant
            }
        };
        *claim = Claim::Padding;
        Recovery::Recovered { pid, size: *size }
    }

    /// `take_slot`: the first free slot, or else the first whose owner is
    /// dead and whose last claim lies behind head.
    fn take_slot(&mut self, pid: u32, alive: &dyn Fn(u32) -> bool) -> Option<usize> {
        use shmchan::layout::NO_CLAIM;
        let head = self.head;
        let i = self.slots.iter().position(|s| s.0 == 0).or_else(|| {
            self.slots.iter().position(|&(owner, claim)| {
                !alive(owner as u32) && (claim == NO_CLAIM || (head.wrapping_sub(claim) as i64) > 0)
            })
        })?;
        self.slots[i] = (u64::from(pid), NO_CLAIM);
        Some(i)
    }
}

/// A producer of the MPSC `ops` mode.
struct Sender<'a> {
    /// `None` once it died (its slot stays its pid's) or left (its slot is
    /// free again).
    p: Option<shmchan::internals::mpsc::Producer<'a>>,
    pid: u32,
    /// Its open grant and the payload it will write.
    open: Option<(shmchan::internals::Reservation, Vec<u8>)>,
}

/// A new MPSC producer of `view`, marking with `pid`, in the first free
/// sender slot (taking over none: the ring is fresh).
fn first_free_producer(view: RingView<'_>, pid: u32) -> shmchan::internals::mpsc::Producer<'_> {
    use shmchan::internals::mpsc::{take_slot, Producer};
    // SAFETY: an oracle that calls every pid alive lets take_slot take only
    // a free slot, never a live producer's.
    let slot = unsafe { take_slot(&view, pid, &mut |_| true) }.expect("a free slot");
    // SAFETY: `slot` was just taken for this producer, the only one that
    // uses it.
    unsafe { Producer::new(view, slot, pid) }.expect("fresh ring")
}

/// A reservation's outcome in the model's terms (a well-used ring is never
/// corrupted).
fn reserve_outcome<T>(r: Result<T, shmchan::internals::ReserveError>) -> Result<T, Reserve> {
    use shmchan::internals::ReserveError;
    r.map_err(|e| match e {
        ReserveError::Full => Reserve::Full,
        ReserveError::TooLarge { .. } => Reserve::TooLarge,
        ReserveError::Corrupted(e) => panic!("a well-used ring is corrupted: {e}"),
    })
}

/// The MPSC mode of [`ops`]; `input` is positioned after the first byte.
fn ops_mpsc(mut input: Bytes<'_>, first: u8) {
    use shmchan::internals::mpsc::{take_slot, Consumer, Producer, Stage};
    use shmchan::internals::sync::Ordering::Relaxed;
    use shmchan::internals::HeapRing;
    use shmchan::layout::{max_message_for, NO_CLAIM};

    let capacity = MIN_CAPACITY << ((first & 0x3f) % 5);
    let n: usize = if first & OPS_THREE != 0 { 3 } else { 2 };
    let max_message = usize::from(input.u16()).min(max_message_for(capacity));
    let ring = HeapRing::with_senders(capacity, max_message, n);
    let view = ring.view();
    let mut senders: Vec<Sender<'_>> = (1..=n as u32)
        .map(|i| {
            let pid = 10 * i;
            Sender {
                p: Some(first_free_producer(view, pid)),
                pid,
                open: None,
            }
        })
        .collect();
    // SAFETY: the ring's only consumer.
    let mut c = unsafe { Consumer::new(view) }.expect("fresh ring");
    let mut m = MpscModel {
        capacity: capacity as u64,
        max_message,
        claims: Default::default(),
        tail: 0,
        read: 0,
        head: 0,
        slots: (1..=n as u64).map(|i| (10 * i, NO_CLAIM)).collect(),
    };
    let mut seq = 0u32;
    let mut next_pid = 100u32;
    // Lengths reach a little past max_message, to hit TooLarge.
    let len_of = |raw: u16| usize::from(raw) % (max_message + 17);
    let payload = |seq: u32, len: usize| -> Vec<u8> {
        (0..len)
            .map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i) as u8)
            .collect()
    };

    let mut ops_done = 0;
    while !input.is_empty() && ops_done < 10_000 {
        ops_done += 1;
        let op = input.u8();
        let kind = op % MPSC_OPS;
        let i = usize::from(op / MPSC_OPS) % n;
        let raw = if mpsc_op_takes_u16(kind) {
            input.u16()
        } else {
            0
        };
        // The liveness oracle: the pids of the producers that live.
        let live: Vec<u32> = senders
            .iter()
            .filter(|s| s.p.is_some())
            .map(|s| s.pid)
            .collect();
        let alive = |pid: u32| live.contains(&pid);
        let s = &mut senders[i];
        match kind {
            // try_push: copy (a producer with an open grant may push too).
            0 => {
                let len = len_of(raw);
                let msg = payload(seq, len);
                seq += 1;
                if let Some(p) = s.p.as_mut() {
                    let got = reserve_outcome(p.try_push(&msg));
                    let want = m.claim(p.slot(), s.pid, len, Stage::Reserved);
                    assert_eq!(
                        got,
                        want.as_ref().map(drop).map_err(|e| *e),
                        "producer {i}: try_push({len})"
                    );
                    if let Ok(start) = want {
                        m.finish(start, Some(msg));
                    }
                }
            }
            // reserve: the grant stays open.
            1 => {
                let len = len_of(raw);
                let msg = payload(seq, len);
                seq += 1;
                if let (Some(p), None) = (s.p.as_mut(), &s.open) {
                    let got = reserve_outcome(p.try_reserve(len));
                    let want = m.claim(p.slot(), s.pid, len, Stage::Reserved);
                    assert_eq!(
                        got.map(|r| r.start),
                        want,
                        "producer {i}: try_reserve({len})"
                    );
                    if let Ok(r) = got {
                        assert_eq!(r.len, len);
                        s.open = Some((r, msg));
                    }
                }
            }
            // Write and commit (2), or abort (3), the open grant.
            2 | 3 => {
                if let (Some(p), Some((r, msg))) = (s.p.as_mut(), s.open.take()) {
                    if kind == 2 {
                        write_payload(view.region(), &r, &msg);
                        // SAFETY: `r` is an open grant of `p`, the producer
                        // that made it (a sender's grant is dropped when it
                        // dies, before a successor takes its place).
                        unsafe { p.commit(r) };
                        m.finish(r.start, Some(msg));
                    } else {
                        // SAFETY: as for the commit.
                        unsafe { p.abort(r) };
                        m.finish(r.start, None);
                    }
                }
            }
            // Die: with the open grant marked, or else after a claim that
            // stops unmarked (bit 0 of the u16 clear) or marked.
            4 => {
                if let Some(mut p) = s.p.take() {
                    if s.open.take().is_none() {
                        let stage = if raw & 1 == 0 {
                            Stage::Claimed
                        } else {
                            Stage::RecordMarked
                        };
                        let len = len_of(raw >> 1);
                        let got = reserve_outcome(p.try_reserve_until(len, stage));
                        let want = m.claim(p.slot(), s.pid, len, stage);
                        assert_eq!(
                            got.map(|r| r.start),
                            want,
                            "producer {i}: try_reserve_until({len}, {stage:?})"
                        );
                    }
                    // Dropped without leaving: the slot stays the dead
                    // pid's.
                }
            }
            // A live producer without a grant leaves; a dead (or gone) one
            // is replaced by a new process that takes a slot.
            5 => match s.p.take() {
                Some(p) if s.open.is_none() => {
                    m.slots[p.slot()] = (0, NO_CLAIM);
                    p.leave();
                }
                Some(p) => s.p = Some(p),
                None => {
                    let pid = next_pid;
                    next_pid += 1;
                    // SAFETY: the oracle calls dead only pids whose producer
                    // was dropped (died or left): they write no more.
                    let got = unsafe { take_slot(&view, pid, &mut |x| alive(x)) };
                    let want = m.take_slot(pid, &alive);
                    assert_eq!(got, want, "producer {i}: take_slot");
                    if let Some(slot) = got {
                        // SAFETY: `slot` was just taken for this producer,
                        // the only one that uses it.
                        let p = unsafe { Producer::new(view, slot, pid) };
                        s.p = Some(p.expect("a well-used ring"));
                        s.pid = pid;
                    }
                }
            },
            // recv: release at once (6) or keep for a batch (7).
            6 | 7 => {
                let got = c.try_peek().expect("a well-used ring is corrupted");
                match (got, m.peek()) {
                    (None, Err(b)) => assert_eq!(c.blocked(), b, "why the consumer stopped"),
                    (Some(r), Ok(w)) => {
                        let mut buf = vec![0u8; r.len];
                        read_bytes(view.region(), r.data_offset, &mut buf);
                        assert_eq!(buf, w, "message content");
                        m.advance();
                        if kind == 6 {
                            // SAFETY: `r` is what `c.try_peek()` just returned.
                            unsafe { c.consume(r) };
                            m.release();
                        } else {
                            // SAFETY: as above.
                            unsafe { c.advance(r) };
                        }
                    }
                    (got, want) => panic!("recv: ring {got:?}, model {want:?}"),
                }
            }
            // Batch release.
            8 => {
                c.release();
                m.release();
            }
            // The recovery timer fires.
            9 => {
                // SAFETY: the oracle calls dead only pids whose producer
                // was dropped (died or left): they write no more.
                let got = unsafe { c.try_recover(&mut |x| alive(x)) }
                    .expect("a well-used ring is corrupted");
                assert_eq!(got, m.recover(&alive), "try_recover (live {live:?})");
            }
            // has_space / has_data agree with the model.
            _ => {
                let len = len_of(raw);
                if let Some(p) = s.p.as_mut() {
                    assert_eq!(
                        p.has_space(len).expect("a well-used ring"),
                        m.has_space(len),
                        "producer {i}: has_space({len})"
                    );
                }
                assert_eq!(
                    c.has_data().expect("a well-used ring"),
                    m.has_data(),
                    "has_data"
                );
            }
        }
        // The shared positions and the sender table are the model's.
        let (head, tail) = view.positions();
        assert_eq!(tail, m.tail, "tail");
        assert_eq!(head, m.head, "head");
        assert_eq!(c.position(), m.read, "read position");
        for (j, &want) in m.slots.iter().enumerate() {
            // SAFETY: loads only.
            let slot = unsafe { view.shared_sender_slot(j) };
            let got = (slot.owner.load(Relaxed), slot.claim.load(Relaxed));
            assert_eq!(got, want, "sender slot {j}");
        }
        // The free space reads as zero (so unmarked claims end at the
        // next header).
        let mut pos = m.tail;
        while pos != m.head + m.capacity {
            let word = read_word(view.region(), view.index(pos));
            assert_eq!(
                word, 0,
                "free word at {pos} (head {}, tail {})",
                m.head, m.tail
            );
            pos += 8;
        }
        // No wake-ups: nobody sleeps here.
        for s in &mut senders {
            if let Some(p) = s.p.as_mut() {
                assert_eq!(p.wakeups().take(), 0);
            }
        }
        assert_eq!(c.wakeups().take(), 0);
    }
}

/// `ops` first-byte bit (bit 7 clear): the broadcast ring (see [`ops`]).
const OPS_BROADCAST: u8 = 0x40;
/// `ops` first-byte bit (broadcast): the publisher overwrites.
const OPS_OVERWRITE: u8 = 0x20;
/// Operations of the broadcast `ops` mode: an op byte modulo this is the
/// operation, the quotient (modulo the number of subscribers) the
/// subscriber.
const BC_OPS: u8 = 11;

/// What follows a broadcast `ops` operation byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BcParam {
    None,
    U8,
    U16,
    /// A count byte, then a u16 per record.
    Batch,
}

/// The parameter of broadcast `ops` operation `kind`.
fn bc_param(kind: u8) -> BcParam {
    match kind {
        0 | 1 | 2 | 9 | 10 => BcParam::U16,
        3 => BcParam::Batch,
        7 => BcParam::U8,
        _ => BcParam::None,
    }
}

/// A record of the broadcast `ops` model: its size, the sequence number
/// of the message it is (padding: of the next message), and the message.
#[derive(Debug)]
struct BcRecord {
    size: u64,
    seq: u64,
    msg: Option<Vec<u8>>,
}

/// A subscriber slot of the broadcast `ops` model, as the ring stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct BcSlot {
    owner: u64,
    position: u64,
    seq: u64,
    lagged: u64,
    missed: u64,
}

/// The reference for the broadcast `ops` mode, written plainly: every
/// record ever published, by position; the publisher's counts; the
/// subscriber table.
struct BcModel {
    cap: u64,
    max_message: usize,
    overwrite: bool,
    tail: u64,
    next_seq: u64,
    /// Publishes so far (each moves `tail_ver` by 2).
    publishes: u64,
    /// Records committed unpublished, waiting for a publish.
    pending: bool,
    records: std::collections::BTreeMap<u64, BcRecord>,
    slots: Vec<BcSlot>,
    joins: u64,
    /// The shared `front` as last checked.
    front: u64,
}

impl BcModel {
    /// The slots that count as joined: owned, within a ring behind tail
    /// (overwriting, a subscriber further behind is not counted).
    fn joined(&self) -> impl Iterator<Item = (usize, &BcSlot)> {
        // A lapped Overwrite subscriber has joined all the same.
        self.within_a_ring().chain(
            self.slots.iter().enumerate().filter(|(_, s)| {
                self.overwrite && s.owner != 0 && self.tail - s.position > self.cap
            }),
        )
    }

    /// The joined subscribers within a ring behind tail (those that can
    /// hold a Block publisher back).
    fn within_a_ring(&self) -> impl Iterator<Item = (usize, &BcSlot)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.owner != 0 && self.tail - s.position <= self.cap)
    }

    /// The slowest joined subscriber (the most behind tail; the first
    /// such slot): its position and slot.
    fn slowest(&self) -> Option<(u64, usize)> {
        let mut best: Option<(u64, usize)> = None;
        for (i, s) in self.within_a_ring() {
            if best.is_none_or(|(p, _)| self.tail - p < self.tail - s.position) {
                best = Some((s.position, i));
            }
        }
        best
    }

    /// Whether `need` bytes past tail are free: always when overwriting;
    /// else up to a ring past the slowest joined subscriber (anywhere,
    /// with none).
    fn room(&self, need: u64) -> bool {
        let head = self.slowest().map_or(self.tail, |(p, _)| p);
        self.overwrite || self.cap - (self.tail - head) >= need
    }

    /// A record's room: itself and the word past it.
    fn reserve(&mut self, len: usize) -> Reserve {
        if len > self.max_message {
            return Reserve::TooLarge;
        }
        let rec = shmchan::layout::record_size(len) as u64;
        let contiguous = self.cap - self.tail % self.cap;
        if rec <= contiguous {
            return if self.room(rec + 8) {
                Reserve::Ok
            } else {
                Reserve::Full
            };
        }
        // Padding to the end of the region first, published at once (with
        // any records of the batch before it).
        if !self.room(contiguous + 8) {
            return Reserve::Full;
        }
        let seq = self.next_seq;
        self.records.insert(
            self.tail,
            BcRecord {
                size: contiguous,
                seq,
                msg: None,
            },
        );
        self.tail += contiguous;
        self.publishes += 1;
        self.pending = false;
        if self.room(rec + 8) {
            Reserve::Ok
        } else {
            Reserve::Full
        }
    }

    /// A message committed, not yet published.
    fn commit(&mut self, msg: Vec<u8>) {
        let size = shmchan::layout::record_size(msg.len()) as u64;
        let seq = self.next_seq;
        self.records.insert(
            self.tail,
            BcRecord {
                size,
                seq,
                msg: Some(msg),
            },
        );
        self.tail += size;
        self.next_seq += 1;
        self.pending = true;
    }

    fn publish(&mut self) {
        if std::mem::take(&mut self.pending) {
            self.publishes += 1;
        }
    }

    /// The sequence number of the record at boundary `pos`.
    fn seq_at(&self, pos: u64) -> u64 {
        match self.records.get(&pos) {
            Some(r) => r.seq,
            None => {
                assert_eq!(pos, self.tail, "{pos} is no record boundary");
                self.next_seq
            }
        }
    }

    /// The oldest record for `front`: the first at or past `front -
    /// capacity` (tail when none is), and its sequence number.
    fn oldest(&self, front: u64) -> (u64, u64) {
        let lo = front.saturating_sub(self.cap);
        let pos = self
            .records
            .range(lo..)
            .next()
            .map_or(self.tail, |(&p, _)| p);
        (pos, self.seq_at(pos))
    }

    /// `take_slot` for `pid`: the first free slot, else the first whose
    /// owner is another pid that is dead.
    fn take_slot(&mut self, pid: u32, alive: &dyn Fn(u32) -> bool) -> Option<usize> {
        let i = self.slots.iter().position(|s| s.owner == 0).or_else(|| {
            self.slots
                .iter()
                .position(|s| s.owner != u64::from(pid) && !alive(s.owner as u32))
        })?;
        self.slots[i].owner = u64::from(pid);
        self.slots[i].position = shmchan::layout::NOT_JOINED;
        Some(i)
    }
}

/// A subscriber of the broadcast `ops` mode and what the model says of it.
struct BcSub<'a> {
    /// `None` before it joins, once it left, or once it was killed (its
    /// slot stays its pid's until recovered or taken).
    s: Option<shmchan::internals::broadcast::Subscriber<'a>>,
    pid: u32,
    slot: usize,
    /// The read position and the sequence number there; the released
    /// position (the slot's) and its sequence number.
    read: u64,
    seq: u64,
    head: u64,
    head_seq: u64,
    /// The sequence number it joined at; messages received and missed
    /// since.
    join_seq: u64,
    received: u64,
    missed: u64,
}

impl BcSub<'_> {
    /// The subscriber releases what it read (the model's half).
    fn release(&mut self, m: &mut BcModel) {
        self.head = self.read;
        self.head_seq = self.seq;
        let s = &mut m.slots[self.slot];
        s.position = self.head;
        s.seq = self.head_seq;
    }
}

/// What the broadcast model says a subscriber's look finds.
#[derive(Debug, PartialEq, Eq)]
enum BcNext {
    /// A message: its sequence number, bytes and size.
    Message(u64, Vec<u8>, u64),
    Empty,
    Lapped,
    /// Overwriting: the record at the read position does not fit what a
    /// reader may hold (a ring less the free word) beside the records it
    /// holds; `try_peek` reports it as `Corrupted` (`Receiver::recv_batch`
    /// ends the batch there, releases, and reads it next time).
    HeldTooMuch,
}

/// The look of subscriber `sub` in the model: lapped when overwriting and
/// more than a ring behind `front`; else padding is skipped (released at
/// once when nothing is held), then the message at the read position, or
/// nothing at tail.
fn bc_peek(m: &mut BcModel, sub: &mut BcSub<'_>) -> BcNext {
    loop {
        if m.overwrite && m.front.wrapping_sub(sub.read) > m.cap {
            return BcNext::Lapped;
        }
        if sub.read == m.tail {
            return BcNext::Empty;
        }
        let r = m
            .records
            .get(&sub.read)
            .unwrap_or_else(|| panic!("no record at {}", sub.read));
        if r.size > (m.cap - 8).saturating_sub(sub.read - sub.head) {
            assert!(
                m.overwrite,
                "a blocking publisher let a reader hold more than a ring"
            );
            return BcNext::HeldTooMuch;
        }
        match &r.msg {
            Some(msg) => return BcNext::Message(r.seq, msg.clone(), r.size),
            None => {
                let held = sub.read != sub.head;
                sub.read += r.size;
                if !held {
                    sub.release(m);
                }
            }
        }
    }
}

/// One receive of subscriber `sub` (consumed at once, or kept), checked
/// against the model: a message must be the model's (bytes, order,
/// intact); a lap makes it release and go on from the oldest record, its
/// missed count the model's. Returns what it found.
fn bc_recv(m: &mut BcModel, sub: &mut BcSub<'_>, consume: bool) -> BcNext {
    use shmchan::internals::broadcast::Next;
    // Taken out while the model moves the subscriber, put back below.
    let Some(mut s) = sub.s.take() else {
        return BcNext::Empty;
    };
    let got = s.try_peek();
    let want = bc_peek(m, sub);
    let got = match (got, &want) {
        (Err(e), BcNext::HeldTooMuch) => {
            assert!(
                e.what().contains("does not fit") || e.what().contains("does not end"),
                "{e}"
            );
            s.release();
            sub.release(m);
            sub.s = Some(s);
            return want;
        }
        (got, _) => got.expect("a well-used ring is corrupted"),
    };
    match (got, &want) {
        (Next::Record(r), BcNext::Message(seq, msg, size)) => {
            assert_eq!(*seq, sub.seq, "a message out of order");
            assert_eq!(s.position(), sub.read, "read position");
            assert_eq!(r.end, sub.read + size, "record end");
            let mut buf = vec![0u8; r.len];
            read_bytes(s.view().region(), r.data_offset, &mut buf);
            assert_eq!(&buf, msg, "message {seq}");
            if m.overwrite {
                assert!(s.intact(), "message {seq} (front {}) not intact", m.front);
            }
            // SAFETY: `r` is the record `s.try_peek()` just returned.
            unsafe {
                if consume {
                    s.consume(r);
                } else {
                    s.advance(r);
                }
            }
            sub.read = r.end;
            sub.seq += 1;
            sub.received += 1;
            if consume {
                sub.release(m);
            }
        }
        (Next::Empty, BcNext::Empty) => {}
        (Next::Lapped, BcNext::Lapped) => {
            s.release();
            sub.release(m);
            let n = s.lagged().expect("a well-used ring is corrupted");
            let (pos, seq) = m.oldest(m.front);
            assert!(pos > sub.read, "lapped at {}, oldest {pos}", sub.read);
            assert_eq!(n, seq - sub.seq, "missed at {} (oldest {pos})", sub.read);
            sub.read = pos;
            sub.seq = seq;
            sub.missed += n;
            sub.release(m);
            if n > 0 {
                m.slots[sub.slot].lagged += 1;
                m.slots[sub.slot].missed += n;
            }
        }
        (got, want) => panic!(
            "subscriber {} at {}: ring {got:?}, model {want:?}",
            sub.pid, sub.read
        ),
    }
    sub.s = Some(s);
    want
}

/// The broadcast mode of [`ops`]; `input` is positioned after the first
/// byte.
fn ops_broadcast(mut input: Bytes<'_>, first: u8) {
    use shmchan::internals::broadcast::{self, Start, Subscriber};
    use shmchan::internals::sync::Ordering::Relaxed;
    use shmchan::internals::HeapRing;
    use shmchan::layout::{max_message_for, record_size};

    let capacity = MIN_CAPACITY << ((first & 7) % 5);
    let cap = capacity as u64;
    let overwrite = first & OPS_OVERWRITE != 0;
    let n = 2 + usize::from((first >> 3) & 3) % 3;
    let max_message = usize::from(input.u16()).min(max_message_for(capacity));
    let ring = HeapRing::broadcast(capacity, max_message, n, overwrite);
    let view = ring.view();
    // SAFETY: the ring's only publisher.
    let mut p = unsafe { broadcast::publisher(view) }.expect("fresh ring");
    // SAFETY: loads only.
    let lap = unsafe { view.shared_lap() };
    let mut m = BcModel {
        cap,
        max_message,
        overwrite,
        tail: 0,
        next_seq: 0,
        publishes: 0,
        pending: false,
        records: Default::default(),
        slots: vec![BcSlot::default(); n],
        joins: 0,
        front: 0,
    };
    let mut subs: Vec<BcSub<'_>> = (0..n)
        .map(|_| BcSub {
            s: None,
            pid: 0,
            slot: 0,
            read: 0,
            seq: 0,
            head: 0,
            head_seq: 0,
            join_seq: 0,
            received: 0,
            missed: 0,
        })
        .collect();
    let mut seq = 0u32;
    let mut next_pid = 100u32;
    // Lengths reach a little past max_message, to hit TooLarge.
    let len_of = |raw: u16| usize::from(raw) % (max_message + 17);
    let payload = |seq: u32, len: usize| -> Vec<u8> {
        (0..len)
            .map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i) as u8)
            .collect()
    };
    let outcome = |r: Result<(), &shmchan::internals::ReserveError>| {
        reserve_outcome(r.map_err(Clone::clone)).map_or_else(|e| e, |()| Reserve::Ok)
    };

    let mut ops_done = 0;
    while !input.is_empty() && ops_done < 10_000 {
        ops_done += 1;
        let op = input.u8();
        let kind = op % BC_OPS;
        let i = usize::from(op / BC_OPS) % n;
        let raw = match bc_param(kind) {
            BcParam::U16 => input.u16(),
            BcParam::U8 | BcParam::Batch => u16::from(input.u8()),
            BcParam::None => 0,
        };
        // The liveness oracle: the pids of the subscribers that live.
        let live: Vec<u32> = subs
            .iter()
            .filter(|s| s.s.is_some())
            .map(|s| s.pid)
            .collect();
        let alive = |pid: u32| live.contains(&pid);
        match kind {
            // Publish: copy (0); reserve, then commit (1) or drop (2); a
            // batch as `Sender::send_batch` makes it (3): each record
            // committed at once (a broadcast publisher moving `front`
            // reads its own records' headers, which `commit_unpublished`
            // keeps back: a batch longer than a ring finds its own first
            // header zero).
            0..=3 => {
                let k = if kind == 3 { 1 + raw % 4 } else { 1 };
                for _ in 0..k {
                    let len = len_of(if kind == 3 { input.u16() } else { raw });
                    let msg = payload(seq, len);
                    seq += 1;
                    let got = if kind == 0 {
                        p.try_push(&msg).map(|()| None)
                    } else {
                        p.try_reserve(len).map(Some)
                    };
                    let want = m.reserve(len);
                    assert_eq!(outcome(got.as_ref().map(drop)), want, "publish {len}");
                    if want == Reserve::Full {
                        assert!(!overwrite, "an overwriting publisher was full");
                        assert!(m.slowest().is_some(), "full with no subscriber");
                    }
                    let Ok(r) = got else { break };
                    if let Some(r) = r {
                        assert_eq!((r.start, r.len), (m.tail, len), "reservation");
                        assert!(
                            lap.front.load(Relaxed).wrapping_sub(r.end) >= 8,
                            "a reservation up to {} past front {}",
                            r.end,
                            lap.front.load(Relaxed)
                        );
                        if kind == 2 {
                            // Dropped: nothing is published.
                            continue;
                        }
                        write_payload(view.region(), &r, &msg);
                        // SAFETY: `r` is what `p.try_reserve` just
                        // returned.
                        unsafe { p.commit(r) };
                    }
                    m.commit(msg);
                    m.publish();
                }
                // Nothing is pending: a no-op.
                p.publish_pending();
            }
            // Receive: consumed at once (4) or kept for a batch (5).
            4 | 5 => {
                bc_recv(&mut m, &mut subs[i], kind == 4);
            }
            // Release what was kept.
            6 => {
                let sub = &mut subs[i];
                if let Some(s) = sub.s.as_mut() {
                    s.release();
                    sub.release(&mut m);
                }
            }
            // Leave (joined), or join a new process (at the oldest message
            // with bit 0 of the u8 set, else at the newest).
            7 => {
                let sub = &mut subs[i];
                if let Some(s) = sub.s.take() {
                    // SAFETY: the subscriber is used no more (dropped
                    // right after), and nothing it handed out is in use.
                    unsafe { s.leave() };
                    m.slots[sub.slot].owner = 0;
                } else {
                    let pid = next_pid;
                    next_pid += 1;
                    let want = m.take_slot(pid, &alive);
                    // SAFETY: the oracle calls dead only pids whose
                    // subscriber was dropped (killed or left): they read
                    // no more.
                    let got = unsafe { broadcast::take_slot(&view, pid, &mut |x| alive(x)) };
                    assert_eq!(got, want, "subscriber {i}: take_slot (live {live:?})");
                    let slot = got.expect("a slot for every subscriber");
                    let start = if raw & 1 == 0 {
                        Start::Newest
                    } else {
                        Start::Oldest
                    };
                    // SAFETY: `slot` was just taken for this subscriber,
                    // the only one that uses it.
                    let s = unsafe {
                        Subscriber::join(view, slot, start, &mut || {}, std::time::Duration::ZERO)
                    }
                    .expect("a well-used ring");
                    let (pos, seq) = match start {
                        Start::Newest => (m.tail, m.next_seq),
                        Start::Oldest => m.oldest(m.front),
                    };
                    assert_eq!(
                        (s.position(), s.seq(), s.slot()),
                        (pos, seq, slot),
                        "{start:?}"
                    );
                    m.joins += 1;
                    *sub = BcSub {
                        s: Some(s),
                        pid,
                        slot,
                        read: pos,
                        seq,
                        head: pos,
                        head_seq: seq,
                        join_seq: seq,
                        received: 0,
                        missed: 0,
                    };
                    sub.release(&mut m);
                }
            }
            // Killed: dropped without leaving; its slot stays its pid's.
            8 => drop(subs[i].s.take()),
            // The publisher frees the slots of dead subscribers that hold
            // it back by `need` bytes.
            9 => {
                let need = u64::from(raw) % (cap + 9);
                // SAFETY: the oracle calls dead only pids whose subscriber
                // was dropped (killed or left): they read no more.
                let got = unsafe {
                    p.fan_ref()
                        .recover(&view, p.tail(), need, &mut |x| alive(x))
                };
                let mut want = 0;
                for s in &mut m.slots {
                    let lag = m.tail - s.position;
                    if s.owner != 0 && lag <= cap && cap - lag < need && !alive(s.owner as u32) {
                        s.owner = 0;
                        want += 1;
                    }
                }
                assert_eq!(got, want, "recover(need {need}) (live {live:?})");
            }
            // has_data / ready of the subscriber, has_space / space_now
            // of the publisher.
            _ => {
                let sub = &mut subs[i];
                if let Some(s) = sub.s.as_mut() {
                    let lapped = overwrite && m.front.wrapping_sub(sub.read) > cap;
                    let want = lapped || sub.read != m.tail;
                    assert_eq!(s.ready(), want, "ready() at {}", sub.read);
                    assert_eq!(s.has_data(), Ok(want), "has_data() at {}", sub.read);
                }
                let len = len_of(raw).min(max_message);
                let contiguous = cap - m.tail % cap;
                let need = (record_size(len) as u64).min(contiguous) + 8;
                let want = m.room(need);
                assert_eq!(p.space_now(len), want, "space_now({len})");
                assert_eq!(
                    p.has_space(len).expect("a well-used ring"),
                    want,
                    "has_space({len})"
                );
            }
        }
        bc_check(&view, &mut p, &mut m, &mut subs);
    }
    // Every subscriber still joined reads to the end: in order, each
    // message published since it joined, received or (overwriting)
    // counted as missed.
    for sub in &mut subs {
        if sub.s.is_none() {
            continue;
        }
        for round in 0.. {
            assert!(round <= m.records.len() + 2, "the drain does not end");
            if bc_recv(&mut m, sub, true) == BcNext::Empty {
                break;
            }
        }
        bc_check(&view, &mut p, &mut m, &mut []);
        let published = m.next_seq - sub.join_seq;
        assert_eq!(
            sub.received + sub.missed,
            published,
            "subscriber {}: {} received, {} missed, {published} published since it joined",
            sub.pid,
            sub.received,
            sub.missed
        );
        if !overwrite {
            assert_eq!(sub.missed, 0);
        }
    }
}

/// After each broadcast `ops` operation: the shared state is the model's
/// (tail, next_seq, the seqlocks' versions, the subscriber table, joins),
/// `front` moves forward by multiples of 8, covers what was written and
/// stays within a ring past tail, the oldest record is the model's first
/// at or past `front - capacity`, the table's slowest and joined count
/// are the model's; a blocking publisher never wrote into a joined
/// subscriber's unreleased records; nobody is owed a wake-up.
fn bc_check(
    view: &RingView<'_>,
    p: &mut shmchan::internals::spsc::Producer<'_, shmchan::internals::broadcast::Fanout>,
    m: &mut BcModel,
    subs: &mut [BcSub<'_>],
) {
    use shmchan::internals::broadcast;
    use shmchan::internals::sync::Ordering::Relaxed;
    // SAFETY: loads only.
    let (st, lap) = unsafe { (view.shared_state(), view.shared_lap()) };
    let cap = m.cap;
    assert_eq!(st.producer.tail.load(Relaxed), m.tail, "tail");
    assert_eq!(p.tail(), m.tail, "the publisher's tail");
    assert_eq!(st.producer.next_seq.load(Relaxed), m.next_seq, "next_seq");
    assert_eq!(
        st.producer.tail_ver.load(Relaxed),
        2 * m.publishes,
        "tail_ver"
    );
    let front = lap.front.load(Relaxed);
    assert!(
        front.is_multiple_of(8) && front.wrapping_sub(m.front) as i64 >= 0,
        "front {front} after {}",
        m.front
    );
    assert!(
        front.wrapping_sub(m.tail) <= cap,
        "front {front}, tail {}",
        m.tail
    );
    if m.publishes > 0 {
        assert!(
            front.wrapping_sub(m.tail) >= 8,
            "front {front} does not cover the word past tail {}",
            m.tail
        );
    }
    m.front = front;
    let (pos, seq) = m.oldest(front);
    assert_eq!(
        (lap.oldest_pos.load(Relaxed), lap.oldest_seq.load(Relaxed)),
        (pos, seq),
        "the oldest record (front {front})"
    );
    assert!(lap.oldest_ver.load(Relaxed).is_multiple_of(2));
    assert_eq!(lap.joins.load(Relaxed), m.joins, "joins");
    for (j, want) in m.slots.iter().enumerate() {
        // SAFETY: loads only.
        let (s, _) = unsafe { view.shared_subscriber_slot(j) };
        let got = BcSlot {
            owner: s.owner.load(Relaxed),
            position: s.position.load(Relaxed),
            seq: s.seq.load(Relaxed),
            lagged: s.lagged.load(Relaxed),
            missed: s.missed.load(Relaxed),
        };
        assert_eq!(&got, want, "subscriber slot {j}");
        if !m.overwrite && want.owner != 0 {
            assert!(
                m.tail - want.position <= cap - 8,
                "slot {j} at {} is overwritten (tail {})",
                want.position,
                m.tail
            );
        }
    }
    assert_eq!(broadcast::slowest(view, m.tail), m.slowest(), "slowest");
    assert_eq!(
        broadcast::joined(view, m.tail),
        m.joined().count(),
        "joined"
    );
    assert_eq!(p.wakeups().take(), 0, "the publisher owes a post");
    for sub in subs {
        if let Some(s) = sub.s.as_mut() {
            assert_eq!(
                (s.position(), s.seq()),
                (sub.read, sub.seq),
                "subscriber {}",
                sub.pid
            );
            assert_eq!(s.slot(), sub.slot);
            assert_eq!(s.wakeups().take(), 0, "a subscriber owes a post");
        }
    }
}

/// Seeds for the `consumer` target, as (name, input): images written by a
/// real producer (wrapping, padding, batches), then damaged ones.
pub fn consumer_seeds() -> Vec<(String, Vec<u8>)> {
    use shmchan::internals::HeapRing;

    // An image made by a producer: `sends` lengths pushed, `reads` of them
    // consumed first (so positions wrap).
    let made = |exp: u8, max: u16, lens: &[usize], consumed: usize, mode: u8| -> Vec<u8> {
        let capacity = MIN_CAPACITY << exp;
        let ring = HeapRing::new(capacity, usize::from(max));
        let (mut p, mut c) = spsc_endpoints(&ring);
        for (i, &len) in lens.iter().enumerate() {
            let msg: Vec<u8> = (0..len).map(|j| (i * 7 + j) as u8).collect();
            while p.try_push(&msg).is_err() {
                let r = c.try_peek().unwrap().expect("full ring has a record");
                // SAFETY: `r` is what `c.try_peek()` just returned.
                unsafe { c.consume(r) };
            }
            if i < consumed {
                if let Some(r) = c.try_peek().unwrap() {
                    // SAFETY: as above.
                    unsafe { c.consume(r) };
                }
            }
        }
        let (head, tail) = ring.view().positions();
        let mut ring = ring;
        let mut v = vec![exp];
        v.extend_from_slice(&max.to_le_bytes());
        v.extend_from_slice(&head.to_le_bytes());
        v.extend_from_slice(&tail.to_le_bytes());
        v.push(mode);
        v.extend_from_slice(ring.data_mut());
        v
    };
    let mut seeds = Vec::new();
    let lens = [0, 1, 7, 8, 9, 20, 3, 40, 0, 13];
    seeds.push(("empty-64".to_string(), made(0, 56, &[], 0, 1)));
    seeds.push(("one-message".to_string(), made(0, 56, &[5], 0, 1)));
    seeds.push(("wrapped-padding-64".into(), made(0, 56, &lens, 6, 1)));
    seeds.push((
        "wrapped-256-batch-4".into(),
        made(2, 100, &lens, 3, 1 | (3 << 1)),
    ));
    seeds.push(("full-128".into(), made(1, 120, &[30, 30, 30], 0, 1)));
    seeds.push((
        "max-message-1k".into(),
        made(4, 1008, &[1008, 8, 500], 1, 1),
    ));
    seeds.push(("forced-span-4k".into(), made(6, 4000, &[100; 30], 10, 0)));
    // Damaged: a length past the record, an unknown kind, padding at 0, a
    // tail far ahead, and hostile writes while reading.
    let mut d = made(0, 56, &[5, 6], 0, 1);
    // The data region starts at byte 20; a record header's low half (the
    // first 4 bytes, little-endian) is the length, the high half the kind.
    d[23] = 0x7f; // huge length
    seeds.push(("huge-length".into(), d));
    let mut d = made(0, 56, &[5, 6], 0, 1);
    d[24] = 9; // kind 9
    seeds.push(("unknown-kind".into(), d));
    let mut d = made(0, 56, &[5], 0, 1);
    d[24] = 2; // padding at index 0
    seeds.push(("padding-at-zero".into(), d));
    let mut d = made(1, 120, &[10], 0, 1);
    d[11..19].copy_from_slice(&u64::MAX.to_le_bytes());
    seeds.push(("tail-far-ahead".into(), d));
    let mut d = made(2, 200, &lens, 2, 1);
    for (at, what, value) in [
        (1u8, 0u8, 1u64 << 40),
        (2, 1, 0x0000_0001_0000_00ff),
        (3, 2, 8),
    ] {
        d.push(at);
        d.push(what);
        d.extend_from_slice(&value.to_le_bytes());
    }
    seeds.push(("hostile-writes".into(), d));
    seeds.extend(consumer_mpsc_seeds());
    seeds.extend(consumer_broadcast_seeds());
    seeds
}

/// Seeds for the `ops` target, as (name, input).
pub fn ops_seeds() -> Vec<(String, Vec<u8>)> {
    let prog = |exp: u8, max: u16, ops: &[(u8, u16)]| -> Vec<u8> {
        let mut v = vec![exp];
        v.extend_from_slice(&max.to_le_bytes());
        for &(op, len) in ops {
            v.push(op);
            if !matches!(op % 8, 3..=5) {
                v.extend_from_slice(&len.to_le_bytes());
            }
        }
        v
    };
    let mut seeds = Vec::new();
    let send_recv: Vec<(u8, u16)> = (0..40).flat_map(|i| [(0, i * 3), (3, 0)]).collect();
    seeds.push(("send-recv-wrap".to_string(), prog(0, 56, &send_recv)));
    let fill: Vec<(u8, u16)> = (0..20)
        .map(|i| (0, 10 + i))
        .chain((0..20).map(|_| (3, 0)))
        .collect();
    seeds.push(("fill-then-drain".into(), prog(1, 100, &fill)));
    let zc: Vec<(u8, u16)> = (0..30)
        .flat_map(|i| [(1, i * 5), (2, i), (4, 0), (4, 0), (5, 0)])
        .collect();
    seeds.push(("zero-copy-batches".into(), prog(2, 200, &zc)));
    let big: Vec<(u8, u16)> = [(0, 1016), (0, 1017), (0, 2000), (6, 1016), (3, 0), (6, 0)].to_vec();
    seeds.push(("too-large".into(), prog(4, 1016, &big)));
    let held: Vec<(u8, u16)> = (0..50)
        .flat_map(|i| [(0, 20 + i % 9), (4, 0), (6, 40)])
        .chain([(5, 0)])
        .collect();
    seeds.push(("held-until-full".into(), prog(0, 56, &held)));
    // Batches of 4 records across the wrap of a 128-byte ring, each
    // drained by 4 receives (op 7: a count byte, then a u16 per record).
    let mut batches = vec![1u8];
    batches.extend_from_slice(&100u16.to_le_bytes());
    for i in 0..30u16 {
        batches.extend_from_slice(&[7, 3]);
        for j in 0..4 {
            batches.extend_from_slice(&((i * 7 + j * 5) % 24).to_le_bytes());
        }
        batches.extend_from_slice(&[3, 3, 3, 3]);
    }
    seeds.push(("batches-wrap".to_string(), batches));
    seeds.extend(ops_mpsc_seeds());
    seeds.extend(ops_broadcast_seeds());
    seeds
}

/// An MPSC `consumer` input made by real producers: a ring of
/// `64 << exp` bytes with `slots` sender slots and `producers` producers
/// (pids 10, 20, ... in slots 0, 1, ...), after `script` ran on them and
/// the consumer; `mode` is or-ed into the mode byte, `mask` is the oracle.
fn mpsc_image(
    exp: u8,
    max: u16,
    (slots, producers): (usize, u32),
    mode: u8,
    mask: u64,
    script: &dyn Fn(
        &mut [shmchan::internals::mpsc::Producer<'_>],
        &mut shmchan::internals::mpsc::Consumer<'_>,
    ),
) -> Vec<u8> {
    use shmchan::internals::mpsc::{Consumer, Producer};
    use shmchan::internals::sync::Ordering::Relaxed;
    use shmchan::internals::HeapRing;

    let mut ring = HeapRing::with_senders(MIN_CAPACITY << exp, usize::from(max), slots);
    let view = ring.view();
    {
        let mut ps: Vec<Producer<'_>> = (1..=producers)
            .map(|i| first_free_producer(view, 10 * i))
            .collect();
        // SAFETY: the ring's only consumer.
        let mut c = unsafe { Consumer::new(view) }.expect("fresh ring");
        script(&mut ps, &mut c);
    }
    let (head, tail) = view.positions();
    let mut v = vec![exp];
    v.extend_from_slice(&max.to_le_bytes());
    v.extend_from_slice(&head.to_le_bytes());
    v.extend_from_slice(&tail.to_le_bytes());
    v.push(mode | CONSUMER_MPSC | (((slots - 1) as u8) << 5));
    v.extend_from_slice(&mask.to_le_bytes());
    for i in 0..slots {
        // SAFETY: loads only.
        let s = unsafe { view.shared_sender_slot(i) };
        v.extend_from_slice(&s.owner.load(Relaxed).to_le_bytes());
        v.extend_from_slice(&s.claim.load(Relaxed).to_le_bytes());
    }
    v.extend_from_slice(ring.data_mut());
    v
}

/// Appends an MPSC hostile write (see [`consumer`]) to a `consumer` input.
fn mpsc_write(v: &mut Vec<u8>, step: u8, what: u8, at: u16, value: u64) {
    v.push(step);
    v.push(what);
    v.extend_from_slice(&at.to_le_bytes());
    v.extend_from_slice(&value.to_le_bytes());
}

/// Seeds of MPSC `consumer` images: written by real producers (wraps,
/// aborted grants, in-progress grants, dead claims marked or not, at a
/// gap or not), then damaged.
fn consumer_mpsc_seeds() -> Vec<(String, Vec<u8>)> {
    use shmchan::internals::mpsc::{Consumer, Producer, Stage};

    fn pop(c: &mut Consumer<'_>) -> bool {
        match c.try_peek().expect("a well-used ring") {
            Some(r) => {
                // SAFETY: `r` is what `c.try_peek()` just returned.
                unsafe { c.consume(r) };
                true
            }
            None => false,
        }
    }
    fn push(p: &mut Producer<'_>, len: usize, fill: u8) {
        p.try_push(&vec![fill; len]).expect("room for the seed");
    }
    let all = u64::MAX;
    let dead10 = !(1u64 << 10);
    let rec = CONSUMER_RECOVER | 1;
    let mut seeds = Vec::new();
    // Two producers taking turns, every third grant aborted, half of the
    // messages consumed as they go: padding everywhere, several wraps.
    let turns = |ps: &mut [Producer], c: &mut Consumer| {
        for i in 0..24usize {
            let p = &mut ps[i % 2];
            let len = (i * 7) % 50;
            for attempt in 0.. {
                assert!(attempt < 4, "the consumer frees the ring");
                match p.try_reserve(len) {
                    Ok(r) => {
                        if i % 3 == 0 {
                            // SAFETY: `r` is what `p.try_reserve` just
                            // returned.
                            unsafe { p.abort(r) };
                        } else {
                            write_payload(p.view().region(), &r, &vec![i as u8; len]);
                            // SAFETY: as for the abort.
                            unsafe { p.commit(r) };
                        }
                        break;
                    }
                    // Full: consume a message (skipping padding frees
                    // room too).
                    Err(_) => {
                        pop(c);
                    }
                }
            }
            if i % 2 == 0 {
                pop(c);
            }
        }
    };
    seeds.push((
        "mpsc-wrapped-aborts".to_string(),
        mpsc_image(1, 100, (2, 2), rec, all, &turns),
    ));
    seeds.push((
        "mpsc-wrapped-aborts-batch-3".into(),
        mpsc_image(2, 100, (4, 2), rec | (2 << 1), all, &turns),
    ));
    // A live producer's open grant, a message committed after it.
    let open = |ps: &mut [Producer], _: &mut Consumer| {
        ps[0].try_reserve(16).expect("room");
        push(&mut ps[1], 5, 2);
    };
    seeds.push((
        "mpsc-in-progress-alive".into(),
        mpsc_image(0, 56, (2, 2), rec, all, &open),
    ));
    // The same producer dead (as the oracle says): its grant is marked.
    seeds.push((
        "mpsc-in-progress-dead".into(),
        mpsc_image(0, 56, (2, 2), rec, dead10, &open),
    ));
    // Dead producers stopped at each stage, with and without a gap.
    for (name, stage) in [
        ("unmarked", Stage::Claimed),
        ("marked", Stage::RecordMarked),
    ] {
        let plain = move |ps: &mut [Producer], _: &mut Consumer| {
            ps[0].try_reserve_until(20, stage).expect("room");
            push(&mut ps[1], 5, 2);
            push(&mut ps[2], 0, 3);
        };
        seeds.push((
            format!("mpsc-dead-{name}"),
            mpsc_image(1, 100, (3, 3), rec, dead10, &plain),
        ));
        // 24 bytes left before the end: a 24-byte record claims the gap.
        let gap = move |ps: &mut [Producer], c: &mut Consumer| {
            push(&mut ps[1], 96, 1);
            assert!(pop(c));
            ps[0].try_reserve_until(20, stage).expect("room");
            push(&mut ps[1], 5, 2);
        };
        seeds.push((
            format!("mpsc-dead-gap-{name}"),
            mpsc_image(1, 100, (2, 2), rec, dead10, &gap),
        ));
    }
    // A full ring whose first claim is dead and unmarked.
    let full = |ps: &mut [Producer], _: &mut Consumer| {
        ps[0].try_reserve_until(16, Stage::Claimed).expect("room");
        push(&mut ps[1], 32, 2);
    };
    seeds.push((
        "mpsc-full-dead-first".into(),
        mpsc_image(0, 56, (2, 2), rec, dead10, &full),
    ));
    // Without recovery when blocked: only a hostile write's recovery.
    let plain = |ps: &mut [Producer], _: &mut Consumer| {
        ps[0].try_reserve_until(8, Stage::Claimed).expect("room");
        push(&mut ps[1], 5, 2);
    };
    let mut d = mpsc_image(1, 100, (2, 2), 1, dead10, &plain);
    mpsc_write(&mut d, 1, 12, 0, 0);
    seeds.push(("mpsc-recover-on-write".into(), d));
    // Hostile writes over a dead unmarked claim: forged table words,
    // in-progress headers with huge lengths, zero headers with the tail
    // past them, padding, raw tails, a forged waiter count.
    let mut d = mpsc_image(1, 100, (2, 2), 1, dead10, &plain);
    for (step, what, at, value) in [
        (0u8, 12u8, 0u16, 0u64),
        (1, 5, 2, (77 << 32) | 0xffff_fff0),
        (2, 6, 0, 0),
        (3, 1, 8, 0),
        (4, 9, 0, 0),
        (5, 7, 1, u64::MAX),
        (6, 12, 0, 0),
        (7, 11, 0, 0),
        (8, 12, 0, 0),
        (9, 4 | PLAUSIBLE_LEN, 3, 1),
        (10, 3 | PLAUSIBLE_LEN, 0, 5),
        (11, 5, 0, (10 << 32) | 0x8000_0000),
        (12, 8, 0, 7),
        (13, 0, 0, 1 << 40),
        (14, 10, 0, u64::from(u32::MAX)),
    ] {
        mpsc_write(&mut d, step, what, at, value);
    }
    seeds.push(("mpsc-hostile-writes".into(), d));
    seeds
}

/// Seeds of the MPSC `ops` mode: programs of (operation, producer, u16).
fn ops_mpsc_seeds() -> Vec<(String, Vec<u8>)> {
    let prog = |three: bool, exp: u8, max: u16, ops: &[(u8, u8, u16)]| -> Vec<u8> {
        let mut v = vec![OPS_MPSC | if three { OPS_THREE } else { 0 } | exp];
        v.extend_from_slice(&max.to_le_bytes());
        for &(kind, producer, raw) in ops {
            v.push(kind + MPSC_OPS * producer);
            if mpsc_op_takes_u16(kind) {
                v.extend_from_slice(&raw.to_le_bytes());
            }
        }
        v
    };
    // Die with a claim that stops unmarked / marked, of `len` bytes.
    let unmarked = |len: u16| len << 1;
    let marked = |len: u16| (len << 1) | 1;
    let mut seeds = Vec::new();
    // Grants held across other producers' sends, committed or aborted,
    // received one by one or in batches; a live grant is never skipped.
    let interleaved: Vec<(u8, u8, u16)> = (0..16u16)
        .flat_map(|i| {
            let (a, b) = ((i % 2) as u8, ((i + 1) % 2) as u8);
            [
                (1, a, 10 + i * 3),
                (0, b, i * 5),
                (6, 0, 0),
                (9, 0, 0),
                (2 + (i % 3 == 0) as u8, a, 0),
                (7, 0, 0),
                (6, 0, 0),
                (10, b, 40),
                (8, 0, 0),
            ]
        })
        .collect();
    seeds.push((
        "mpsc-2-interleaved".to_string(),
        prog(false, 1, 100, &interleaved),
    ));
    // Deaths at every stage, recoveries, and new processes taking the
    // slots once the dead claims are behind head.
    let deaths: Vec<(u8, u8, u16)> = vec![
        (4, 0, unmarked(10)),
        (0, 1, 5),
        (4, 2, marked(7)),
        (0, 1, 3),
        (5, 0, 0),
        (6, 0, 0),
        (9, 0, 0),
        (6, 0, 0),
        (6, 0, 0),
        (9, 0, 0),
        (6, 0, 0),
        (6, 0, 0),
        (5, 0, 0),
        (5, 2, 0),
        (1, 1, 30),
        (4, 1, 0),
        (0, 0, 4),
        (9, 0, 0),
        (6, 0, 0),
        (6, 0, 0),
        (5, 1, 0),
        (0, 1, 9),
        (0, 2, 9),
        (6, 0, 0),
        (6, 0, 0),
    ];
    seeds.push(("mpsc-3-deaths".into(), prog(true, 2, 200, &deaths)));
    // Dead claims at the wrap: a gap left unmarked, then marked.
    let gaps: Vec<(u8, u8, u16)> = vec![
        (0, 0, 40),
        (6, 0, 0),
        (4, 1, unmarked(20)),
        (0, 0, 1),
        (6, 0, 0),
        (9, 0, 0),
        (6, 0, 0),
        (9, 0, 0),
        (6, 0, 0),
        (5, 1, 0),
        (0, 1, 30),
        (6, 0, 0),
        (4, 0, marked(20)),
        (0, 1, 2),
        (9, 0, 0),
        (9, 0, 0),
        (6, 0, 0),
        (6, 0, 0),
        (5, 0, 0),
        (1, 0, 20),
        (0, 1, 0),
        (4, 0, 0),
        (9, 0, 0),
        (6, 0, 0),
        (6, 0, 0),
    ];
    seeds.push(("mpsc-wrap-gaps".into(), prog(false, 0, 56, &gaps)));
    // Fill to Full, TooLarge, space checks, drain.
    let full: Vec<(u8, u8, u16)> = (0..12u16)
        .map(|i| (0, (i % 3) as u8, 20 + i))
        .chain([(0, 0, 201), (1, 1, 2000), (10, 2, 100), (10, 0, 0)])
        .chain((0..12).map(|_| (7, 0, 0)))
        .chain([(8, 0, 0), (10, 1, 200)])
        .collect();
    seeds.push(("mpsc-full-too-large".into(), prog(true, 2, 200, &full)));
    // Leave, take the free slot; a dead claim still unconsumed keeps its
    // slot from a new process until recovered and released.
    let slots: Vec<(u8, u8, u16)> = vec![
        (5, 0, 0),
        (5, 0, 0),
        (0, 0, 8),
        (4, 1, unmarked(8)),
        (5, 1, 0),
        (6, 0, 0),
        (6, 0, 0),
        (9, 0, 0),
        (5, 1, 0),
        (6, 0, 0),
        (5, 1, 0),
        (0, 1, 8),
        (6, 0, 0),
    ];
    seeds.push(("mpsc-leave-and-take".into(), prog(false, 1, 100, &slots)));
    seeds
}

/// A broadcast hostile write (see [`consumer`]) appended to an input.
fn bc_write(v: &mut Vec<u8>, step: u8, what: u8, at: u16, value: u64) {
    v.push(step);
    v.push(what);
    v.extend_from_slice(&at.to_le_bytes());
    v.extend_from_slice(&value.to_le_bytes());
}

/// A broadcast `consumer` input made by a real publisher: a ring of `64
/// << exp` bytes with `slots` subscriber slots, after `script` ran on its
/// publisher and on subscribers that it joins (pids 10, 20, ...; those it
/// leaves joined and does not call alive in `mask` are dead); `mode` is
/// or-ed into the mode byte (positions are raw: the image's own).
fn bc_image(
    exp: u8,
    max: u16,
    (slots, overwrite): (usize, bool),
    mode: u8,
    mask: u64,
    script: &dyn Fn(
        &RingView<'_>,
        &mut shmchan::internals::spsc::Producer<'_, shmchan::internals::broadcast::Fanout>,
    ),
) -> Vec<u8> {
    use shmchan::internals::broadcast;
    use shmchan::internals::sync::Ordering::Relaxed;
    use shmchan::internals::HeapRing;

    let mut ring = HeapRing::broadcast(MIN_CAPACITY << exp, usize::from(max), slots, overwrite);
    let mut v = vec![exp];
    v.extend_from_slice(&max.to_le_bytes());
    {
        let view = ring.view();
        // SAFETY: the ring's only publisher.
        let mut p = unsafe { broadcast::publisher(view) }.expect("fresh ring");
        script(&view, &mut p);
        // SAFETY: loads only.
        let (st, lap) = unsafe { (view.shared_state(), view.shared_lap()) };
        v.extend_from_slice(&lap.oldest_pos.load(Relaxed).to_le_bytes());
        v.extend_from_slice(&st.producer.tail.load(Relaxed).to_le_bytes());
        let ow = if overwrite { CONSUMER_OVERWRITE } else { 0 };
        v.push(mode | 1 | CONSUMER_BROADCAST | ow);
        v.push((slots - 1) as u8);
        v.extend_from_slice(&mask.to_le_bytes());
        for w in [
            &lap.front,
            &lap.joins,
            &lap.oldest_ver,
            &lap.oldest_seq,
            &st.producer.next_seq,
            &st.producer.tail_ver,
        ] {
            v.extend_from_slice(&w.load(Relaxed).to_le_bytes());
        }
        for i in 0..slots {
            // SAFETY: loads only.
            let (s, _) = unsafe { view.shared_subscriber_slot(i) };
            for w in [&s.owner, &s.position, &s.seq, &s.lagged, &s.missed] {
                v.extend_from_slice(&w.load(Relaxed).to_le_bytes());
            }
        }
    }
    v.extend_from_slice(ring.data_mut());
    v
}

/// A subscriber of `view` for `pid`, at `start`, in the first free slot.
fn bc_join<'a>(
    view: &RingView<'a>,
    pid: u32,
    start: shmchan::internals::broadcast::Start,
) -> shmchan::internals::broadcast::Subscriber<'a> {
    use shmchan::internals::broadcast::{take_slot, Subscriber};
    // SAFETY: an oracle that calls every pid alive lets take_slot take only
    // a free slot.
    let slot = unsafe { take_slot(view, pid, &mut |_| true) }.expect("a free slot");
    // SAFETY: `slot` was just taken for this subscriber, the only one that
    // uses it.
    unsafe { Subscriber::join(*view, slot, start, &mut || {}, std::time::Duration::ZERO) }
        .expect("a well-used ring")
}

/// Reads `k` messages (or until none) of broadcast subscriber `s`, going on
/// after laps.
fn bc_pop(s: &mut shmchan::internals::broadcast::Subscriber<'_>, k: usize) {
    use shmchan::internals::broadcast::Next;
    for _ in 0..k {
        match s.try_peek().expect("a well-used ring") {
            Next::Empty => return,
            // SAFETY: `r` is what `s.try_peek()` just returned.
            Next::Record(r) => unsafe { s.consume(r) },
            Next::Lapped => {
                s.lagged().expect("a well-used ring");
            }
        }
    }
}

/// Seeds of broadcast `consumer` images: written by a real publisher, read
/// by real subscribers (some left joined, dead), then damaged.
fn consumer_broadcast_seeds() -> Vec<(String, Vec<u8>)> {
    use shmchan::internals::broadcast::Start;
    let msg = |i: usize| vec![i as u8; (i * 7) % 40];
    let mut seeds = Vec::new();
    // Block: a subscriber (left joined, alive) that read half of what was
    // published across several wraps; the new one joins at the oldest
    // message in the free slot and reads it all, in batches of 3.
    let half = |view: &RingView<'_>, p: &mut shmchan::internals::spsc::Producer<'_, _>| {
        let mut s = bc_join(view, 10, Start::Newest);
        for i in 0..60 {
            while p.try_push(&msg(i)).is_err() {
                bc_pop(&mut s, 1);
            }
            if i % 2 == 0 {
                bc_pop(&mut s, 1);
            }
        }
    };
    let all = u64::MAX;
    seeds.push((
        "bc-block-oldest-batch-3".to_string(),
        bc_image(2, 100, (2, false), CONSUMER_OLDEST | (2 << 1), all, &half),
    ));
    seeds.push((
        "bc-block-newest".to_string(),
        bc_image(2, 100, (2, false), 0, all, &half),
    ));
    // Overwrite: a slow subscriber (dead by the oracle) lapped many times;
    // the new one takes its slot, joins at the oldest, and a publisher
    // laps it mid-copy.
    let lapped = |view: &RingView<'_>, p: &mut shmchan::internals::spsc::Producer<'_, _>| {
        let mut s = bc_join(view, 10, Start::Newest);
        for i in 0..100 {
            p.try_push(&msg(i))
                .expect("an overwriting publisher never waits");
            if i % 30 == 0 {
                bc_pop(&mut s, 2);
            }
        }
    };
    let dead10 = !(1u64 << 10);
    let mut d = bc_image(1, 60, (1, true), CONSUMER_OLDEST, dead10, &lapped);
    bc_write(&mut d, 2, MID_COPY | 19, 1, 1);
    bc_write(&mut d, 3, 3, 1, 0);
    seeds.push(("bc-overwrite-dead-slot-lapped-mid-copy".into(), d));
    // Forged lap lines: a front far past the read position with the
    // oldest record not past it (a subscriber that went on looking would
    // spin), an oldest record far ahead, sequence numbers that disagree,
    // odd versions, torn tails.
    let mut d = bc_image(1, 60, (1, true), CONSUMER_OLDEST, dead10, &lapped);
    bc_write(&mut d, 1, 1, 1000, 0);
    seeds.push(("bc-overwrite-front-far-ahead".into(), d));
    let mut d = bc_image(1, 60, (1, true), 0, dead10, &lapped);
    for (step, what, at, value) in [
        (0u8, 4u8, 40u16, 3u64),
        (1, 19, 2, 9),
        (2, 16, 3, u64::MAX),
        (3, 19, 1, 1),
        (4, 5, 0, 1 << 62),
        (5, 6, 0, u64::MAX),
        (6, 7, 0, 1),
        (7, 0, 0, u64::MAX - 7),
        (8, 13, 0, 20),
        (9, 8, 4, 0),
        (10, 15, 0, 0),
        (11, 14, 2, 0),
        (12, 18, 0, 7),
    ] {
        bc_write(&mut d, step, what, at, value);
    }
    seeds.push(("bc-overwrite-hostile-lap-line".into(), d));
    // The statistics a lap adds to, forged at their largest (another
    // process may write the slot): they wrap, nothing panics.
    let mut d = bc_image(1, 60, (1, true), 0, dead10, &lapped);
    bc_write(&mut d, 0, 16, 3, u64::MAX);
    bc_write(&mut d, 0, 16, 4, u64::MAX);
    bc_write(&mut d, 1, 19, 0, 1);
    seeds.push(("bc-overwrite-lag-counts-at-max".into(), d));
    let mut d = bc_image(2, 100, (2, false), 0, all, &half);
    for (step, what, at, value) in [
        (0u8, 13u8, 0u16, 16u64),
        (1, 8, 3, 0),
        (2, 12, 1, 0x0000_0001_0000_0008),
        (3, 14, 5 | RAW_LEN, 8),
        (4, 9, 0, u64::MAX),
        (5, 11, 0, 3),
        (6, 10, 0, 1 << 40),
        (7, 17, 0, u64::MAX),
        (8, 16, 1, 12),
    ] {
        bc_write(&mut d, step, what, at, value);
    }
    seeds.push(("bc-block-hostile-records".into(), d));
    // A join refused: front two rings past tail (the join starts again,
    // then gives up), and an unaligned oldest record.
    let mut d = bc_image(2, 100, (2, false), 0, all, &half);
    let front = u64::from_le_bytes(d[11..19].try_into().expect("tail")) + (2 << 8);
    // The front word follows the prefix (20 bytes), the slot count and
    // the mask.
    d[29..37].copy_from_slice(&front.to_le_bytes());
    seeds.push(("bc-block-join-refused-front-far".into(), d));
    let mut d = bc_image(2, 100, (2, false), CONSUMER_OLDEST, all, &half);
    d[3..11].copy_from_slice(&4u64.to_le_bytes());
    seeds.push(("bc-block-join-refused-unaligned-oldest".into(), d));
    seeds
}

/// Seeds of the broadcast `ops` mode: programs of (operation, subscriber,
/// parameter); a batch's parameter is its count, its lengths follow.
fn ops_broadcast_seeds() -> Vec<(String, Vec<u8>)> {
    let prog = |first: u8, max: u16, ops: &[(u8, u8, u16)]| -> Vec<u8> {
        let mut v = vec![OPS_BROADCAST | first];
        v.extend_from_slice(&max.to_le_bytes());
        for &(kind, sub, raw) in ops {
            v.push(kind + BC_OPS * sub);
            match bc_param(kind) {
                BcParam::U16 => v.extend_from_slice(&raw.to_le_bytes()),
                BcParam::U8 => v.push(raw as u8),
                BcParam::Batch => {
                    v.push((raw % 4) as u8);
                    for j in 0..=raw % 4 {
                        v.extend_from_slice(&(raw * 3 + j * 11).to_le_bytes());
                    }
                }
                BcParam::None => {}
            }
        }
        v
    };
    // Subscribers: (first-byte bits) 2 + (b >> 3 & 3) % 3.
    let three = 1 << 3;
    let four = 2 << 3;
    let (join_newest, join_oldest) = ((7, 0), (7, 1));
    let mut seeds = Vec::new();
    // Block, three subscribers: one reads at once, one rarely (the
    // publisher waits for it), one joins at the oldest mid-run, leaves
    // and joins again; space checks.
    let mut ops: Vec<(u8, u8, u16)> = vec![];
    for s in 0..2 {
        ops.push((join_newest.0, s, join_newest.1));
    }
    for i in 0..40u16 {
        ops.push((0, 0, i * 5));
        ops.push((4, 0, 0));
        if i % 7 == 0 {
            ops.extend([(4, 1, 0), (5, 1, 0), (6, 1, 0)]);
        }
        if i == 10 || i == 25 {
            ops.push((join_oldest.0, 2, join_oldest.1));
        }
        if i == 20 {
            ops.push((7, 2, 0));
        }
        ops.push((10, (i % 3) as u8, i * 3));
        ops.push((4, 2, 0));
    }
    seeds.push((
        "bc-block-3-slow-and-oldest".to_string(),
        prog(three | 2, 100, &ops),
    ));
    // Block: a subscriber killed holds the publisher back until recovered;
    // a new process takes its slot; a batch across the wrap.
    let mut ops: Vec<(u8, u8, u16)> = vec![(7, 0, 0), (7, 1, 0)];
    ops.extend((0..8).map(|i| (0, 0, 20 + i)));
    ops.extend([(8, 1, 0), (4, 0, 0), (4, 0, 0), (4, 0, 0), (0, 0, 30)]);
    ops.extend([(9, 0, 0), (9, 0, 200), (0, 0, 30), (3, 0, 3)]);
    ops.extend([(7, 1, 1), (4, 1, 0), (4, 0, 0), (4, 0, 0), (4, 1, 0)]);
    ops.extend([(1, 0, 40), (2, 0, 10), (10, 1, 50)]);
    seeds.push(("bc-block-kill-recover".into(), prog(1, 100, &ops)));
    // Overwrite, four subscribers: a slow one lapped again and again
    // (missed counts), batches, kept records, an oldest joiner.
    let mut ops: Vec<(u8, u8, u16)> = (0..3).map(|s| (7, s, 0)).collect();
    for i in 0..50u16 {
        ops.push(if i % 5 == 0 { (3, 0, i) } else { (0, 0, i * 7) });
        ops.push((4, 0, 0));
        ops.push((5, 1, 0));
        if i % 3 == 0 {
            ops.push((6, 1, 0));
        }
        if i % 17 == 0 {
            ops.extend([(4, 2, 0), (4, 2, 0), (10, 2, i)]);
        }
        if i == 30 {
            ops.push((7, 3, 1));
        }
    }
    seeds.push((
        "bc-overwrite-4-laps".into(),
        prog(OPS_OVERWRITE | four | 1, 60, &ops),
    ));
    // Block: a publisher that wrote laps with nobody joined caches a
    // position far ahead of the oldest record; a subscriber joins there,
    // reads nothing, and must hold it back from then on (the publisher
    // looks at the table again when it moves front past a new join).
    let mut ops: Vec<(u8, u8, u16)> = vec![(0, 0, 24); 4];
    ops.push((7, 0, 1));
    ops.extend([(0, 1, 24); 8]);
    ops.extend([(10, 0, 20), (4, 0, 0), (4, 0, 0), (0, 1, 10), (10, 0, 20)]);
    seeds.push((
        "bc-block-oldest-joiner-holds-back".into(),
        prog(1, 100, &ops),
    ));
    // Block, 128 bytes: a subscriber killed 48 bytes behind tail holds the
    // publisher back by 81 bytes, not by 80 (recover frees exactly those
    // slots); a new process then takes the dead slot 1, not the live 0.
    let ops: Vec<(u8, u8, u16)> = vec![
        (7, 0, 0),
        (7, 1, 0),
        (8, 1, 0),
        (0, 0, 8),
        (0, 0, 8),
        (0, 0, 8),
        (4, 0, 0),
        (4, 0, 0),
        (4, 0, 0),
        (9, 0, 80),
        (9, 0, 81),
        (8, 0, 0),
        (7, 0, 0),
        (7, 1, 1),
        (7, 2, 0),
        (8, 0, 0),
        (7, 0, 1),
        (0, 1, 30),
        (4, 1, 0),
    ];
    seeds.push((
        "bc-block-recover-boundary-and-slots".into(),
        prog(three | 1, 100, &ops),
    ));
    // Overwrite: has_data and ready of a subscriber lapped twice, whose
    // word is the free one past tail (32-byte records: tail at 256), then
    // its lap.
    let mut ops: Vec<(u8, u8, u16)> = vec![(7, 0, 0), (7, 1, 0)];
    ops.extend([(0, 0, 24); 8]);
    ops.extend([(10, 1, 0), (10, 0, 0), (4, 1, 0), (10, 1, 0), (4, 1, 0)]);
    seeds.push((
        "bc-overwrite-lapped-has-data".into(),
        prog(OPS_OVERWRITE | 1, 60, &ops),
    ));
    seeds
}
