//! See `shmchan_fuzz_support::consumer` for the input format and what is
//! checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmchan_fuzz_support::consumer(data));
