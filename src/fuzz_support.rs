//! The bodies of the cargo-fuzz targets in `fuzz/`, kept in the library so
//! that a normal test (`tests/fuzz_corpus.rs`) can replay their corpora on
//! stable. Not part of the API.

use crate::layout::{validate, HEADER_SIZE, LINE, MIN_CAPACITY, RECORD_HEADER};

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
                l.max_message + RECORD_HEADER <= l.capacity,
                "max_message {} does not fit capacity {}",
                l.max_message,
                l.capacity
            );
            assert_eq!(l.segment_len, segment_len);
            // validate reads exactly what encode writes: the accepted
            // layout encodes back to the fields it was read from (line 0 up
            // to `state`, which encode leaves at zero).
            let state = crate::layout::offset::STATE;
            let encoded = l.encode();
            assert_eq!(encoded.len(), LINE);
            assert_eq!(
                &encoded[..state],
                &copy[..state],
                "fields do not round-trip"
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
        // &mut self excludes every other access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// The `consumer` target: a segment image, with arbitrary positions and
/// data region, read by the receive path; a hostile peer writes into the
/// image between the reads.
///
/// Input: capacity exponent (`64 << (b % 7)`, up to 4 KiB), `max_message`
/// (u16, clamped to what the ring holds), `head` and `tail` (u64 each), a
/// mode byte (bit 0 clear: positions forced into a plausible span; bits 1-3:
/// release every 1..=8 messages), the data region, then hostile writes of
/// 10 bytes each (step; what: tail, data word, swapped data word, or the
/// count of sleeping senders; value).
///
/// The consumer must return records inside the data region, or
/// [`Corrupted`](crate::ring::Corrupted), and stop: it cannot read more
/// records than the ring's bytes (plus what the hostile tail stores add)
/// can hold.
pub fn consumer(data: &[u8]) {
    use crate::layout::{max_message_for, offset, Flavor, Layout, STATE_READY};
    use crate::ring::spsc::Consumer;
    use crate::ring::RingView;

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

    let layout = Layout {
        flavor: Flavor::Spsc,
        data_offset: HEADER_SIZE,
        sender_slots: 0,
        capacity,
        max_message,
        segment_len: HEADER_SIZE + capacity,
        creator_pid: 1,
        creator_uid: 0,
        created_at: 0,
    };
    let mut image = Image::new(layout.segment_len);
    {
        let b = image.bytes_mut();
        b[..LINE].copy_from_slice(&layout.encode());
        b[offset::STATE..offset::STATE + 4].copy_from_slice(&STATE_READY.to_ne_bytes());
        b[offset::HEAD..offset::HEAD + 8].copy_from_slice(&head.to_ne_bytes());
        b[offset::TAIL..offset::TAIL + 8].copy_from_slice(&tail.to_ne_bytes());
        let region = input.take(capacity);
        b[HEADER_SIZE..HEADER_SIZE + region.len()].copy_from_slice(region);
    }
    let checked = validate(&image.bytes_mut()[..HEADER_SIZE], layout.segment_len)
        .expect("the image's header is valid by construction");
    assert_eq!(checked, layout);

    // SAFETY: the image is page-aligned, segment_len bytes long, outlives
    // the view (dropped at the end of this function, after it), and its
    // header passed validate.
    let view = unsafe { RingView::in_segment(image.ptr, &checked) };
    let mut c = match Consumer::new(view) {
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
            let st = view.state();
            match what % 4 {
                0 => st
                    .producer
                    .tail
                    .store(value, crate::sync::Ordering::Release),
                1 => view
                    .region()
                    .write_u64(view.index(value) & !7, value.rotate_left(32)),
                2 => view.region().write_u64(view.index(value) & !7, value),
                // A forged count of sleeping senders.
                _ => st
                    .wake
                    .send_waiters
                    .store(value as u32, crate::sync::Ordering::Relaxed),
            }
        }
        steps += 1;
        // One sender sleeps at most: never more than one post owed.
        assert!(c.take_wakeups() <= 1, "wake-ups from a forged waiter count");
        match c.try_peek() {
            Ok(Some(r)) => {
                reads += 1;
                assert!(
                    reads <= bound,
                    "consumer read {reads} records from a {capacity}-byte ring"
                );
                assert!(r.len <= max_message, "record of {} > {max_message}", r.len);
                assert!(
                    r.data_offset >= RECORD_HEADER && r.data_offset + r.len <= capacity,
                    "record {}+{} outside the {capacity}-byte region",
                    r.data_offset,
                    r.len
                );
                view.region().read(r.data_offset, &mut buf[..r.len]);
                held += 1;
                if held >= batch {
                    c.consume(r);
                    held = 0;
                } else {
                    c.advance(r);
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
#[derive(Debug, PartialEq, Eq)]
enum Reserve {
    Ok,
    Full,
    TooLarge,
}

impl Model {
    fn reserve(&mut self, len: usize) -> Reserve {
        if len > self.max_message {
            return Reserve::TooLarge;
        }
        let rec = crate::layout::record_size(len) as u64;
        let contiguous = self.capacity - self.tail % self.capacity;
        let free = self.capacity - (self.tail - self.head);
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
        if self.capacity - (self.tail - self.head) >= rec {
            Reserve::Ok
        } else {
            Reserve::Full
        }
    }

    fn commit(&mut self, msg: Vec<u8>) {
        let rec = crate::layout::record_size(msg.len()) as u64;
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

/// The `ops` target: a differential test of the SPSC ring. An arbitrary
/// sequence of operations (copy sends, zero-copy reserve then commit or
/// abort, receives that release at once or in batches, explicit releases,
/// space and data checks) runs on a ring and on [`Model`]; every outcome
/// (message bytes, `Full`, `Empty`, `TooLarge`) must agree.
///
/// Input: capacity exponent (`64 << (b % 5)`, up to 1 KiB), `max_message`
/// (u16, clamped), then operations of one byte each, most followed by a u16
/// length.
pub fn ops(data: &[u8]) {
    use crate::layout::max_message_for;
    use crate::ring::spsc::{Consumer, Producer};
    use crate::ring::{HeapRing, ReserveError};

    let mut input = Bytes(data);
    let capacity = MIN_CAPACITY << (input.u8() % 5);
    let max_message = usize::from(input.u16()).min(max_message_for(capacity));
    let ring = HeapRing::new(capacity, max_message);
    let mut p = Producer::new(ring.view()).expect("fresh ring");
    let mut c = Consumer::new(ring.view()).expect("fresh ring");
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

    let mut ops_done = 0;
    while !input.is_empty() && ops_done < 10_000 {
        ops_done += 1;
        match input.u8() % 7 {
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
                let r = p.try_reserve(len);
                let want = m.reserve(len);
                assert_eq!(outcome(r.as_ref().map(drop)), want, "try_reserve({len})");
                if let Ok(r) = r {
                    ring.view().region().write(r.data_offset, &msg);
                    if op == 1 {
                        p.commit(r);
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
                        ring.view().region().read(r.data_offset, &mut buf);
                        assert_eq!(buf, w, "message content");
                        m.advance();
                        if op == 3 {
                            c.consume(r);
                            m.release();
                        } else {
                            c.advance(r);
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
            // has_space / has_data agree with the model.
            _ => {
                let len = len_of(input.u16()).min(max_message);
                let rec = crate::layout::record_size(len) as u64;
                let contiguous = m.capacity - m.tail % m.capacity;
                let need = rec.min(contiguous);
                let free = m.capacity - (m.tail - m.head);
                assert_eq!(p.has_space(len).unwrap(), free >= need, "has_space({len})");
                let pending = m.tail != m.read;
                assert_eq!(c.has_data().unwrap(), pending, "has_data");
            }
        }
        // The shared positions are the model's.
        let st = ring.state();
        assert_eq!(
            st.producer.tail.load(crate::sync::Ordering::Relaxed),
            m.tail
        );
        assert_eq!(
            st.consumer.head.load(crate::sync::Ordering::Relaxed),
            m.head
        );
        // No wake-ups: nobody sleeps here.
        assert_eq!(p.take_wakeups() + c.take_wakeups(), 0);
    }
}

/// Seeds for the `consumer` target, as (name, input): images written by a
/// real producer (wrapping, padding, batches), then damaged ones.
pub fn consumer_seeds() -> Vec<(String, Vec<u8>)> {
    use crate::ring::spsc::Producer;
    use crate::ring::HeapRing;

    // An image made by a producer: `sends` lengths pushed, `reads` of them
    // consumed first (so positions wrap).
    let made = |exp: u8, max: u16, lens: &[usize], consumed: usize, mode: u8| -> Vec<u8> {
        let capacity = MIN_CAPACITY << exp;
        let ring = HeapRing::new(capacity, usize::from(max));
        let mut p = Producer::new(ring.view()).expect("fresh ring");
        let mut c = crate::ring::spsc::Consumer::new(ring.view()).expect("fresh ring");
        for (i, &len) in lens.iter().enumerate() {
            let msg: Vec<u8> = (0..len).map(|j| (i * 7 + j) as u8).collect();
            while p.try_push(&msg).is_err() {
                let r = c.try_peek().unwrap().expect("full ring has a record");
                c.consume(r);
            }
            if i < consumed {
                if let Some(r) = c.try_peek().unwrap() {
                    c.consume(r);
                }
            }
        }
        let st = ring.state();
        let head = st.consumer.head.load(crate::sync::Ordering::Relaxed);
        let tail = st.producer.tail.load(crate::sync::Ordering::Relaxed);
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
        made(4, 1016, &[1016, 8, 500], 1, 1),
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
    seeds
}

/// Seeds for the `ops` target, as (name, input).
pub fn ops_seeds() -> Vec<(String, Vec<u8>)> {
    let prog = |exp: u8, max: u16, ops: &[(u8, u16)]| -> Vec<u8> {
        let mut v = vec![exp];
        v.extend_from_slice(&max.to_le_bytes());
        for &(op, len) in ops {
            v.push(op);
            if !matches!(op % 7, 3..=5) {
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
    seeds
}
