//! A segment image (header copy, then the segment length) through
//! `shmchan::layout::validate`; see `shmchan_fuzz_support::header`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmchan_fuzz_support::header(data));
