//! Loom model of a restarted producer: a full ring left by an earlier
//! producer, a consumer draining it, and a new producer created in its own
//! thread (as in a new process) while the consumer runs. The new producer's
//! first write reuses space the consumer is reading or has just freed.
//!
//! Accepted outcome (the only one): the consumer reads the old messages and
//! then the new one, intact. Loom reports a causality violation if the new
//! producer's write to reused space is not ordered after the consumer's
//! read of it (the Acquire load of `head` in `Producer::new`).
#![cfg(shmchan_loom)]

use loom::sync::Arc;
use loom::thread;
use shmchan::internals::spsc::{Consumer, Producer};
use shmchan::internals::HeapRing;

const OLD: [&[u8]; 2] = [&[1; 16], &[2; 16]];
const NEW: &[u8] = &[3; 24];

#[test]
fn restarted_producer_reuses_space_after_the_consumer() {
    loom_tests::builder().check(|| {
        let ring = Arc::new(HeapRing::new(64, 56));
        {
            // The earlier producer fills the ring (2 x 24 bytes and the free
            // word past them) and exits.
            // SAFETY: the ring's only producer until the end of this block,
            // where it is dropped (before the new one is made).
            let mut p = unsafe { Producer::new(ring.view()) }.unwrap();
            for m in OLD {
                p.try_push(m).unwrap();
            }
        }
        // SAFETY: the only consumer of this ring in the model.
        let mut c = unsafe { Consumer::new(ring.view()) }.unwrap();

        let producer = {
            let ring = ring.clone();
            thread::spawn(move || {
                // SAFETY: the ring's only producer now: the earlier one was
                // dropped before this thread was spawned.
                let mut p = unsafe { Producer::new(ring.view()) }.unwrap();
                loom_tests::retry_full("the new message", || p.try_push(NEW));
            })
        };

        for want in OLD.iter().chain([&NEW]) {
            let (r, _) = loom_tests::peek_spinning(&mut c, "a message");
            let mut got = vec![0u8; r.len];
            // SAFETY: r is the record this consumer's try_peek returned
            // last, not yet consumed: committed, so no producer writes it.
            unsafe { c.view().region().read(r.data_offset, &mut got) };
            assert_eq!(&got[..], *want);
            // SAFETY: as above.
            unsafe { c.consume(r) };
        }
        producer.join().unwrap();
    });
}
