//! Loom model of disconnection: the sender sends two messages and leaves
//! (its liveness count drops to zero, then it wakes announced sleepers,
//! as `Registration::drop` does) while the receiver blocks in
//! `wait::block_on` with no spinning.
//!
//! The liveness count, a semaphore in a channel, is a loom atomic here,
//! decremented with Release and read with Acquire: the kernel takes the
//! semaphore set's lock in both `semop` and `semctl(GETVAL)`, which orders
//! them at least that much. (With Relaxed the model fails: the receiver
//! can see the count at zero and still miss the last message, which no
//! kernel allows.) Beyond that the model relies only on the SeqCst fences
//! of the wake protocol.
//!
//! Accepted outcome (the only one): the receiver gets both messages, in
//! order, then `Disconnected`; the semaphore never exceeds 1 and ends at 0.
//! A lost wake-up (say, the receiver's re-check after announcing ignored
//! liveness, and the sender left just after the receiver last looked)
//! leaves the receiver blocked, and loom reports a deadlock.
#![cfg(shmchan_loom)]

use loom::sync::atomic::AtomicU32;
use loom::sync::Arc;
use loom::thread;
use loom_tests::Semaphore;
use shmchan::internals::spsc::{Consumer, Producer};
use shmchan::internals::sync::Ordering::{Acquire, Release};
use shmchan::internals::wait::{self, Bell, Stop};
use shmchan::internals::HeapRing;

const MESSAGES: [&[u8]; 2] = [b"first", b"last"];

#[derive(Debug, PartialEq)]
enum Error {
    Stop(Stop),
}

impl From<Stop> for Error {
    fn from(s: Stop) -> Error {
        Error::Stop(s)
    }
}

#[test]
fn receiver_drains_then_sees_disconnected() {
    loom_tests::builder().check(|| {
        let ring = Arc::new(HeapRing::new(64, 56));
        let bell = Arc::new(Semaphore::new(1));
        // One sender registered (and connected) before the model starts.
        let senders = Arc::new(AtomicU32::new(1));

        let sender = {
            let ring = ring.clone();
            let bell = bell.clone();
            let senders = senders.clone();
            thread::spawn(move || {
                // SAFETY: the only producer of this ring in the model.
                let mut p = unsafe { Producer::new(ring.view()) }.unwrap();
                for m in MESSAGES {
                    p.try_push(m).unwrap();
                    let n = p.wakeups().take();
                    if n > 0 {
                        bell.ring(n).unwrap();
                    }
                }
                // Drop: the liveness count goes to zero, then wake sleepers.
                // Release: stands for the semop (the kernel's lock); pairs with
                // the Acquire load in the receiver's liveness check.
                senders.fetch_sub(1, Release);
                wait::leave(&ring.view().wake_line().recv_waiters, &*bell, 1);
            })
        };

        // SAFETY: the only consumer of this ring in the model.
        let mut c = unsafe { Consumer::new(ring.view()) }.unwrap();
        let c = std::cell::RefCell::new(&mut c);
        let waiters = &ring.view().wake_line().recv_waiters;
        let mut got = Vec::new();
        let end = loop {
            let sleeper = wait::CounterSleeper {
                waiters,
                bell: &*bell,
            };
            let r = wait::block_on(
                &sleeper,
                0,
                None,
                || Ok::<_, Error>(c.borrow_mut().try_peek().unwrap()),
                || c.borrow_mut().has_data().unwrap(),
                // Acquire: stands for semctl(GETVAL); pairs with the Release
                // decrement above.
                || senders.load(Acquire) == 0,
            );
            match r {
                Ok(r) => {
                    let mut c = c.borrow_mut();
                    let mut buf = vec![0u8; r.len];
                    // SAFETY: r is the record this consumer's try_peek (in
                    // block_on's attempt) returned last, not yet consumed:
                    // committed, so the producer writes it no more.
                    unsafe {
                        c.view().region().read(r.data_offset, &mut buf);
                        c.consume(r);
                    }
                    assert_eq!(c.wakeups().take(), 0, "nobody sleeps on space");
                    got.push(buf);
                }
                Err(e) => break e,
            }
        };
        assert_eq!(end, Error::Stop(Stop::Disconnected));
        assert_eq!(got, MESSAGES.map(<[u8]>::to_vec));
        sender.join().unwrap();
        assert_eq!(bell.value(), 0, "a post was left unconsumed");
    });
}
