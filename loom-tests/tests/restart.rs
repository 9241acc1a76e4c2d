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
use shmchan::ring::spsc::{Consumer, Producer};
use shmchan::ring::{HeapRing, ReserveError};

const OLD: [&[u8]; 2] = [&[1; 24], &[2; 24]];
const NEW: &[u8] = &[3; 24];
const SPIN_LIMIT: usize = 1_000;

#[test]
fn restarted_producer_reuses_space_after_the_consumer() {
    loom_tests::builder().check(|| {
        let ring = Arc::new(HeapRing::new(64, 56));
        {
            // The earlier producer fills the ring (2 x 32 bytes) and exits.
            let mut p = Producer::new(ring.view()).unwrap();
            for m in OLD {
                p.try_push(m).unwrap();
            }
        }
        let mut c = Consumer::new(ring.view()).unwrap();

        let producer = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut p = Producer::new(ring.view()).unwrap();
                let mut rounds = 0;
                loop {
                    match p.try_push(NEW) {
                        Ok(()) => break,
                        Err(ReserveError::Full) => {
                            rounds += 1;
                            assert!(rounds < SPIN_LIMIT, "producer spun out");
                            thread::yield_now();
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                }
            })
        };

        for want in OLD.iter().chain([&NEW]) {
            let mut rounds = 0;
            let r = loop {
                if let Some(r) = c.try_peek().unwrap() {
                    break r;
                }
                rounds += 1;
                assert!(rounds < SPIN_LIMIT, "consumer spun out");
                thread::yield_now();
            };
            let mut got = vec![0u8; r.len];
            c.view().region().read(r.data_offset, &mut got);
            assert_eq!(&got[..], *want);
            c.consume(r);
        }
        producer.join().unwrap();
    });
}
