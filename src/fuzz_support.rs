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
