//! Loom model of the SPSC zero-copy API: the producer reserves space,
//! writes the payload in place and commits, or drops a reservation
//! (abort: nothing is published and the space is reused); the consumer,
//! created in its own thread as a restarted receiver would be, reads
//! records in place and releases them in batches.
//!
//! Accepted outcome (the only one): the consumer sees exactly the
//! committed messages, in order and intact, never an aborted one; the
//! final positions account for every committed byte and the padding.
//! Loom reports a causality violation if a read of the region is not
//! ordered after the write it reads (publish) or a write after the read of
//! the space it reuses (release).
#![cfg(shmchan_loom)]

use loom::sync::Arc;
use loom::thread;
use shmchan::internals::spsc::{Consumer, Producer};
use shmchan::internals::sync::Ordering as MemOrdering;
use shmchan::internals::HeapRing;

/// (payload length, committed?). In a 64-byte ring:
///
/// ```text
/// a: len 16 commit -> [  0, 24)
/// b: len 24 abort     (would be [24, 56); nothing published)
/// c: len 20 commit -> [ 24, 56)  reuses b's reservation
///    padding          [ 56, 64)
/// d: len 12 commit -> [ 64, 88)  index 0, reuses a's space
/// ```
const PLAN: [(usize, bool); 4] = [(16, true), (24, false), (20, true), (12, true)];
const FINAL_TAIL: u64 = 88;
/// The consumer releases after every `BATCH` messages (and at the end).
const BATCH: usize = 2;

fn byte(i: usize, j: usize) -> u8 {
    (i * 50 + j + 1) as u8
}

#[test]
fn reserve_commit_abort_and_batched_release() {
    loom_tests::builder().check(|| {
        let ring = Arc::new(HeapRing::new(64, 56));
        // SAFETY: the only producer of this ring in the model.
        let mut p = unsafe { Producer::new(ring.view()) }.unwrap();

        let consumer = {
            let ring = ring.clone();
            thread::spawn(move || {
                // SAFETY: the only consumer of this ring in the model.
                let mut c = unsafe { Consumer::new(ring.view()) }.unwrap();
                let committed: Vec<usize> = (0..PLAN.len()).filter(|&i| PLAN[i].1).collect();
                for (n, &i) in committed.iter().enumerate() {
                    let (r, _) = loom_tests::peek_spinning(&mut c, &format!("message {i}"));
                    assert_eq!(r.len, PLAN[i].0, "length of message {i}");
                    let mut got = vec![0u8; r.len];
                    // SAFETY: r is the record this consumer's try_peek
                    // returned last, not yet released: committed, so the
                    // producer writes it no more.
                    unsafe { c.view().region().read(r.data_offset, &mut got) };
                    let want: Vec<u8> = (0..r.len).map(|j| byte(i, j)).collect();
                    assert_eq!(got, want, "payload of message {i}");
                    // SAFETY: r is the record try_peek returned last, not yet
                    // advanced past.
                    unsafe { c.advance(r) };
                    if (n + 1) % BATCH == 0 {
                        c.release();
                    }
                }
                c.release();
                assert!(
                    c.try_peek().unwrap().is_none(),
                    "an aborted record was published"
                );
                assert_eq!(c.wakeups().take(), 0);
            })
        };

        for (i, &(len, commit)) in PLAN.iter().enumerate() {
            let (r, _) = loom_tests::retry_full(&format!("message {i}"), || p.try_reserve(len));
            let payload: Vec<u8> = (0..len).map(|j| byte(i, j)).collect();
            // SAFETY: r is the reservation try_reserve just returned: free,
            // unpublished space, this producer's alone until it commits.
            unsafe { p.view().region().write(r.data_offset, &payload) };
            if commit {
                // SAFETY: r is the reservation this producer's try_reserve
                // returned last, not yet committed.
                unsafe { p.commit(r) };
            }
            // else: the reservation is dropped, as a dropped Grant is.
        }
        assert_eq!(p.wakeups().take(), 0);
        consumer.join().unwrap();
        // SAFETY: loads only.
        let st = unsafe { ring.state() };
        assert_eq!(st.producer.tail.load(MemOrdering::Relaxed), FINAL_TAIL);
        assert_eq!(st.consumer.head.load(MemOrdering::Relaxed), FINAL_TAIL);
    });
}
