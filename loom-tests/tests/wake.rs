//! Loom model of the wake protocol (`ring::wake` + `wait::sleep_once`): a
//! consumer that sleeps on a mock semaphore, a producer that publishes one
//! message and posts for the waiters its publish claimed.
//!
//! Accepted outcome (the only one): the consumer gets the message, and the
//! semaphore ends at 0 (every post answered one announcement and was
//! consumed) having never exceeded 1 (one waiter). A lost wake-up leaves
//! the consumer blocked in `Semaphore::sleep`, which the mock never times
//! out of, and loom reports a deadlock.
#![cfg(shmchan_loom)]

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use loom::sync::Arc;
use loom::thread;
use loom_tests::Semaphore;
use shmchan::internals::spsc::{Consumer, Producer};
use shmchan::internals::wait::{sleep_once, Bell};
use shmchan::internals::{HeapRing, ReserveError};

const MESSAGE: &[u8] = b"wake up";
/// `sleep_once` rounds the consumer may need: a correct run needs at most
/// one (it returns once the message is visible or a post was consumed,
/// and either implies the message is visible); the second is slack.
const MAX_SLEEPS: usize = 2;

/// The paths through the protocol, counted over all executions (std
/// atomics, outside the model). Each must occur, or the model proves little.
static PATHS: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];
const PATH_NAMES: [&str; 4] = [
    "message seen before announcing",
    "announced, re-check saw the message, retracted",
    "announced and claimed, took the post without blocking",
    "announced and claimed, blocked and was woken",
];

/// One model run. With `consumer_yields_first` the consumer yields once
/// before it looks at the ring: loom's bounded exploration of the plain
/// program never runs the producer's publish before the consumer's first
/// look (path 0 above), and the yield makes that schedule reachable.
fn model(consumer_yields_first: bool) {
    loom_tests::builder().check(move || {
        let ring = Arc::new(HeapRing::new(64, 56));
        let bell = Arc::new(Semaphore::new(1));

        let producer = {
            let ring = ring.clone();
            let bell = bell.clone();
            thread::spawn(move || {
                // SAFETY: the only producer of this ring in the model.
                let mut p = unsafe { Producer::new(ring.view()) }.unwrap();
                p.try_push(MESSAGE).unwrap();
                let n = p.wakeups().take();
                assert!(n <= 1, "claimed {n} waiters, only one consumer exists");
                if n > 0 {
                    bell.ring(n).unwrap();
                }
                n
            })
        };

        if consumer_yields_first {
            thread::yield_now();
        }
        // SAFETY: the only consumer of this ring in the model.
        let mut c = unsafe { Consumer::new(ring.view()) }.unwrap();
        let mut sleeps = 0;
        let r = loop {
            if let Some(r) = c.try_peek().unwrap() {
                break r;
            }
            assert!(
                sleeps < MAX_SLEEPS,
                "woken {sleeps} times without a message"
            );
            sleeps += 1;
            let waiters = &ring.view().wake_line().recv_waiters;
            sleep_once(waiters, &*bell, &mut || c.has_data().unwrap(), None).unwrap();
        };
        let mut got = vec![0u8; r.len];
        // SAFETY: r is the record this consumer's try_peek returned last,
        // not yet consumed: committed, so the producer writes it no more.
        unsafe { c.view().region().read(r.data_offset, &mut got) };
        assert_eq!(got, MESSAGE);
        // SAFETY: as above.
        unsafe { c.consume(r) };

        let posted = producer.join().unwrap();
        let value = bell.value();
        assert!(value <= 1, "semaphore value {value} after the run");
        assert_eq!(value, 0, "a post was left unconsumed");

        let path = match (sleeps, posted, bell.blocked()) {
            (0, 0, _) => 0,
            (_, 0, _) => 1,
            (_, _, 0) => 2,
            _ => 3,
        };
        PATHS[path].fetch_add(1, Relaxed);
    });
}

#[test]
fn consumer_sleeping_on_recv_waiters_is_woken() {
    model(false);
    model(true);
    for (name, n) in PATH_NAMES.iter().zip(&PATHS) {
        eprintln!("{:6} executions: {name}", n.load(Relaxed));
    }
    for (name, n) in PATH_NAMES.iter().zip(&PATHS) {
        assert!(n.load(Relaxed) > 0, "no execution took the path: {name}");
    }
}

/// The producer's half: the ring is full (one 48-byte message, a 56-byte
/// record and the free word past it, fills the 64-byte ring), the producer sleeps on `send_waiters` until the consumer
/// frees the space and posts for the waiter its release claimed.
///
/// The producer runs on the model's main thread and the consumer on a
/// spawned one: the producer fills the ring before the consumer starts,
/// and an endpoint borrows its ring, so it cannot move into a thread.
///
/// Accepted outcome: the producer's second message goes in and the
/// consumer reads both, in order; the semaphore never exceeds 1 and ends
/// at 0. A lost wake-up leaves the producer blocked: loom reports a
/// deadlock.
#[test]
fn producer_sleeping_on_send_waiters_is_woken() {
    static SLEPT: AtomicUsize = AtomicUsize::new(0);
    loom_tests::builder().check(|| {
        let ring = Arc::new(HeapRing::new(64, 56));
        let bell = Arc::new(Semaphore::new(1));
        let first = [1u8; 48];
        let second = [2u8; 10];
        // SAFETY: the only producer of this ring in the model.
        let mut p = unsafe { Producer::new(ring.view()) }.unwrap();
        p.try_push(&first).unwrap();
        assert_eq!(p.wakeups().take(), 0);

        let consumer = {
            let ring = ring.clone();
            let bell = bell.clone();
            thread::spawn(move || {
                // SAFETY: the only consumer of this ring in the model.
                let mut c = unsafe { Consumer::new(ring.view()) }.unwrap();
                for want in [&first[..], &second[..]] {
                    let (r, _) = loom_tests::peek_spinning(&mut c, "a message");
                    let mut got = vec![0u8; r.len];
                    // SAFETY: r is the record this consumer's try_peek
                    // returned last, not yet consumed: committed, so the
                    // producer writes it no more.
                    unsafe { c.view().region().read(r.data_offset, &mut got) };
                    assert_eq!(got, want);
                    // SAFETY: as above.
                    unsafe { c.consume(r) };
                    let n = c.wakeups().take();
                    assert!(n <= 1, "claimed {n} waiters, only one producer exists");
                    if n > 0 {
                        bell.ring(n).unwrap();
                    }
                }
            })
        };

        let mut sleeps = 0;
        loop {
            match p.try_push(&second) {
                Ok(()) => break,
                Err(ReserveError::Full) => {}
                Err(e) => panic!("{e:?}"),
            }
            assert!(sleeps < MAX_SLEEPS, "woken {sleeps} times without space");
            sleeps += 1;
            let waiters = &ring.view().wake_line().send_waiters;
            let mut ready = || p.has_space(second.len()).unwrap();
            sleep_once(waiters, &*bell, &mut ready, None).unwrap();
        }
        if sleeps > 0 {
            SLEPT.fetch_add(1, Relaxed);
        }
        // Nobody sleeps on data here.
        assert_eq!(p.wakeups().take(), 0);
        consumer.join().unwrap();
        assert_eq!(bell.value(), 0, "a post was left unconsumed");
    });
    assert!(
        SLEPT.load(Relaxed) > 0,
        "no execution made the producer sleep"
    );
}

/// The doorbell side of the protocol (`ring::wake::announce_bell`, what a
/// `Select` waiting on a receiver does): the consumer announces a doorbell
/// id in `recv_bell`, re-checks the ring and waits on the doorbell (the
/// mock semaphore standing for the socket: a ring is a post); the
/// producer publishes one message and rings the doorbells its publish
/// claimed.
///
/// Accepted outcome: the consumer gets the message. A lost wake-up (the
/// re-check missed the publish, and the publish missed the announcement)
/// leaves the consumer blocked in the mock: loom reports a deadlock. A ring
/// whose announcement was claimed after the consumer had already seen the
/// message (its retract failed) is drained, as the socket's is.
#[test]
fn consumer_waiting_on_a_doorbell_is_woken() {
    use shmchan::internals::wake::{announce_bell, retract_bell};
    const ID: u64 = 0x1234_0000_0001;
    static PATHS: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];
    loom_tests::builder().check(|| {
        let ring = Arc::new(HeapRing::new(64, 56));
        let bell = Arc::new(Semaphore::new(1));
        let producer = {
            let ring = ring.clone();
            let bell = bell.clone();
            thread::spawn(move || {
                // SAFETY: the only producer of this ring in the model.
                let mut p = unsafe { Producer::new(ring.view()) }.unwrap();
                p.try_push(MESSAGE).unwrap();
                for id in p.wakeups().take_bells() {
                    if id != 0 {
                        assert_eq!(id, ID, "a doorbell nobody announced");
                        bell.ring(1).unwrap();
                    }
                }
            })
        };
        // SAFETY: the only consumer of this ring in the model.
        let mut c = unsafe { Consumer::new(ring.view()) }.unwrap();
        let recv_bell = &ring.view().wake_line().recv_bell;
        let r = loop {
            if let Some(r) = c.try_peek().unwrap() {
                PATHS[0].fetch_add(1, Relaxed);
                break r;
            }
            announce_bell(recv_bell, ID);
            if c.has_data().unwrap() {
                PATHS[1].fetch_add(1, Relaxed);
            } else {
                PATHS[2].fetch_add(1, Relaxed);
                bell.sleep(None).unwrap();
            }
            retract_bell(recv_bell, ID);
        };
        let mut got = vec![0u8; r.len];
        // SAFETY: r is the record this consumer's try_peek returned last,
        // not yet consumed: committed, so the producer writes it no more.
        unsafe { c.view().region().read(r.data_offset, &mut got) };
        assert_eq!(got, MESSAGE);
        // SAFETY: as above.
        unsafe { c.consume(r) };
        producer.join().unwrap();
        // What is left is a ring for an announcement retracted too late:
        // at most one, which the next wait drains.
        assert!(bell.value() <= 1, "{} rings left", bell.value());
    });
    for (name, n) in [
        "message seen first",
        "re-check saw it",
        "waited and was rung",
    ]
    .iter()
    .zip(&PATHS)
    {
        eprintln!("{:6} executions: {name}", n.load(Relaxed));
        assert!(n.load(Relaxed) > 0, "no execution took the path: {name}");
    }
}
