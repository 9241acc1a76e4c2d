//! Loom model of the SPSC ring: one producer thread, the consumer on the
//! model's main thread, variable-length records across the wrap.
//!
//! Accepted outcome (the only one): the consumer receives every message,
//! in order, with every byte as sent, and then nothing more; the producer's
//! final `tail` is 112, which includes the 16-byte padding record at the
//! wrap. Any other outcome, a panic, or a loom causality violation on the
//! data region (a record read before its publish happened-before, or space
//! reused before the consumer's read of it happened-before) fails the model.
//!
//! With `--cfg shmchan_mutant` the producer's publish is Relaxed and this
//! model must fail with a causality violation.
#![cfg(shmchan_loom)]

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use loom::sync::Arc;
use loom::thread;
use shmchan::internals::spsc::{Consumer, Producer};
use shmchan::internals::sync::Ordering as MemOrdering;
use shmchan::internals::HeapRing;

/// Payload lengths. In a 64-byte ring (record = 8-byte header + payload
/// rounded up to 8) they occupy, as positions:
///
/// ```text
/// 0: len 20 -> [  0,  32)
/// 1: len  8 -> [ 32,  48)
///    padding   [ 48,  64)   (16 bytes left, message 2 needs 40)
/// 2: len 30 -> [ 64, 104)   index 0..40, reuses 0 and 1's space
/// 3: len  0 -> [104, 112)   index 40..48
/// ```
const LENS: [usize; 4] = [20, 8, 30, 0];
/// The producer's `tail` after the last message.
const FINAL_TAIL: u64 = 112;
/// Byte `j` of message `i`: distinct across messages, never zero (the
/// initial content of the region).
fn byte(i: usize, j: usize) -> u8 {
    (i * 64 + j + 1) as u8
}

fn message(i: usize) -> Vec<u8> {
    (0..LENS[i]).map(|j| byte(i, j)).collect()
}

#[test]
fn records_cross_the_wrap_in_order() {
    // Coverage, counted across executions (std atomics, outside the model):
    // the model is only worth something if some execution made the
    // producer wait for space and some made the consumer find it empty.
    static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);
    static PRODUCER_FULL: AtomicUsize = AtomicUsize::new(0);
    static CONSUMER_EMPTY: AtomicUsize = AtomicUsize::new(0);

    loom_tests::builder().check(|| {
        EXECUTIONS.fetch_add(1, Relaxed);
        let ring = Arc::new(HeapRing::new(64, 56));
        assert_eq!(ring.view().capacity(), 64);

        let producer = {
            let ring = ring.clone();
            thread::spawn(move || {
                // SAFETY: the only producer of this ring in the model.
                let mut p = unsafe { Producer::new(ring.view()) }.unwrap();
                for i in 0..LENS.len() {
                    let msg = message(i);
                    let what = format!("message {i}");
                    let ((), full) = loom_tests::retry_full(&what, || p.try_push(&msg));
                    PRODUCER_FULL.fetch_add(full, Relaxed);
                }
                // Nobody sleeps in this model, so no publish claimed a waiter.
                assert_eq!(p.wakeups().take(), 0);
            })
        };

        // SAFETY: the only consumer of this ring in the model.
        let mut c = unsafe { Consumer::new(ring.view()) }.unwrap();
        for (i, &len) in LENS.iter().enumerate() {
            let (r, empty) = loom_tests::peek_spinning(&mut c, &format!("message {i}"));
            CONSUMER_EMPTY.fetch_add(empty, Relaxed);
            assert_eq!(r.len, len, "length of message {i}");
            let mut got = vec![0u8; r.len];
            // SAFETY: r is the record this consumer's try_peek returned
            // last, not yet consumed: committed, so the producer writes it
            // no more.
            unsafe { c.view().region().read(r.data_offset, &mut got) };
            assert_eq!(got, message(i), "payload of message {i}");
            // SAFETY: as above.
            unsafe { c.consume(r) };
        }
        assert_eq!(c.wakeups().take(), 0);

        producer.join().unwrap();
        assert!(
            c.try_peek().unwrap().is_none(),
            "a record after the last message"
        );
        // SAFETY: loads only.
        let st = unsafe { ring.state() };
        assert_eq!(
            st.producer.tail.load(MemOrdering::Relaxed),
            FINAL_TAIL,
            "padding at the wrap"
        );
        assert_eq!(st.consumer.head.load(MemOrdering::Relaxed), FINAL_TAIL);
    });

    let (n, full, empty) = (
        EXECUTIONS.load(Relaxed),
        PRODUCER_FULL.load(Relaxed),
        CONSUMER_EMPTY.load(Relaxed),
    );
    eprintln!(
        "{n} executions; producer found the ring full {full} times, consumer empty {empty} times"
    );
    assert!(full > 0 && empty > 0, "the model never made a side wait");
}
