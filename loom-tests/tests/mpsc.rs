//! Loom models of the MPSC ring (`ring::mpsc`): producers on their own
//! threads claim space with a CAS of `tail`, mark their records in
//! progress and commit them with a Release store of the header; the
//! consumer reads headers in order with Acquire loads, stops at the first
//! record not yet committed, and zeroes what it frees before releasing it.
//!
//! Each model states its accepted outcome. Besides the asserts, loom
//! reports a causality violation if a read of the data region is not
//! ordered after the write it reads (a commit without Release, a header
//! read without Acquire) or a write after the read of the space it reuses
//! (a release of `head` without Release, a claim without the Acquire of
//! `head`), and a deadlock if a sleeper's wake-up is lost.
//!
//! With `--cfg shmchan_mutant` the commit is Relaxed, and the models that
//! read payloads committed concurrently (all but the wake model, whose
//! consumer reads after joining the producers) must fail with a causality
//! violation; CI runs this file alone under the mutant to prove it.
//!
//! The models keep the state space small enough for CI at a preemption
//! bound of 4: a 64-byte ring, one-word payloads, sender slots taken
//! before the threads start (except in the race for space), and never two
//! threads spinning at once (at a `yield_now` loom may schedule any
//! runnable thread, so two spinners can starve a third for ever). An
//! endpoint borrows its ring, so a producer thread makes its producer
//! itself, in the slot taken for it (a [`loom_tests::Slot`]).
//!
//! Positions in the comments are ring positions (they grow past the
//! capacity; the region index is the position modulo 64).
#![cfg(shmchan_loom)]

use std::sync::atomic::Ordering::Relaxed;

use loom::sync::atomic::AtomicBool;
use loom::sync::Arc;
use loom::thread;
use loom_tests::{Coverage, FutexMock, Slot};
use shmchan::internals::mpsc::{self, Blocked, Consumer, Producer, Recovery, Stage};
use shmchan::internals::sync::Ordering::{Acquire, Release};
use shmchan::internals::wait::{Futex, Sleeper, SlotSleeper};
use shmchan::internals::{wake, HeapRing, Record, ReserveError};

/// Pids of the producers (any non-zero values; the alive oracles below
/// decide who is dead).
const PID: [u32; 2] = [10, 20];
/// The pid of the earlier sender that prepares the ring.
const EARLIER: usize = 3;

/// Byte `j` of message `seq` of producer `p`: distinct across messages
/// (the first byte identifies the message), never zero (what a zeroed
/// region holds).
fn byte(p: usize, seq: usize, j: usize) -> u8 {
    (p * 60 + seq * 20 + j + 1) as u8
}

fn message(p: usize, seq: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| byte(p, seq, j)).collect()
}

/// A 64-byte ring with two sender slots, for [`setup`].
fn new_ring() -> Arc<HeapRing> {
    Arc::new(HeapRing::with_senders(64, 56, 2))
}

/// On a new ring (see [`new_ring`]): the consumer, and the ring's two
/// sender slots, both taken (pids [`PID`]), once an earlier sender moved
/// the positions to `start` (a multiple of 8 up to 64: one message of
/// `start` bytes, sent and consumed) and then put a message of `fill`
/// payload bytes in (if not `None`), for the consumer to read.
fn setup(ring: &HeapRing, start: u64, fill: Option<usize>) -> ([Slot; 2], Consumer<'_>) {
    // SAFETY: the only consumer of this ring in the model.
    let mut c = unsafe { Consumer::new(ring.view()) }.unwrap();
    let mut earlier = loom_tests::mpsc_producer(ring.view(), EARLIER as u32);
    if start > 0 {
        earlier
            .try_push(&message(EARLIER, 0, start as usize - 8))
            .unwrap();
        let r = c.try_peek().unwrap().expect("the earlier message");
        // SAFETY: r is the record this consumer's try_peek just returned.
        unsafe { c.consume(r) };
    }
    if let Some(len) = fill {
        earlier.try_push(&message(EARLIER, 1, len)).unwrap();
    }
    earlier.leave();
    let slots = PID.map(|pid| Slot::take(&ring.view(), pid));
    (slots, c)
}

/// Reads the earlier sender's `fill` message (see [`setup`]), committed
/// before the model's threads started.
fn pop_fill(c: &mut Consumer, len: usize) {
    let r = c.try_peek().unwrap().expect("the earlier sender's message");
    // SAFETY: r is the record this consumer's try_peek just returned, not
    // yet consumed.
    let got = unsafe { loom_tests::payload(c.view(), &r) };
    assert_eq!(got, message(EARLIER, 1, len));
    // SAFETY: as above.
    unsafe { c.consume(r) };
}

/// Peeks until a committed record is there, yielding in between; each
/// empty round reports why the consumer stopped.
fn pop_spinning(c: &mut Consumer, what: &str, mut stopped: impl FnMut(Blocked)) -> Vec<u8> {
    let mut rounds = 0;
    let r: Record = loop {
        if let Some(r) = c.try_peek().unwrap() {
            break r;
        }
        stopped(c.blocked());
        rounds += 1;
        assert!(
            rounds < loom_tests::SPIN_LIMIT,
            "consumer spun out at {what}"
        );
        thread::yield_now();
    };
    // SAFETY: r is the record this consumer's try_peek just returned, not
    // yet consumed.
    unsafe {
        let got = loom_tests::payload(c.view(), &r);
        c.consume(r);
        got
    }
}

/// After every producer has finished and the consumer drained the ring:
/// nothing more to read, `head` caught up with `tail` (which is
/// `final_tail`), and everything freed is zero again.
///
/// # Safety
/// Every thread but the caller's has been joined (nobody else touches the
/// region).
unsafe fn check_drained(ring: &HeapRing, c: &mut Consumer, final_tail: u64) {
    assert!(c.try_peek().unwrap().is_none(), "a record after the last");
    assert_eq!(c.blocked(), Blocked::Empty);
    // SAFETY: loads only.
    let st = unsafe { ring.state() };
    assert_eq!(st.producer.tail.load(Relaxed), final_tail, "final tail");
    assert_eq!(st.consumer.head.load(Relaxed), final_tail, "final head");
    // SAFETY: the caller's contract: no other thread runs.
    let zero = unsafe { loom_tests::region_is_zero(&ring.view()) };
    assert!(zero, "freed space not zeroed");
}

/// Two producer threads and the consumer; one claim always lies across
/// the wrap. Positions start at 40; producer 0 sends two messages and
/// producer 1 one, all 16-byte records. In every order of the claims the
/// second one does not fit in the 8 bytes left before the end of the
/// region, so it also covers that gap (a gap exactly one header long),
/// which its claimant pads:
///
/// ```text
/// first claim   [40, 56)
/// second claim  gap [56, 64) + record [64, 80)
/// third claim   [80, 96)
/// ```
///
/// The 56 bytes fit in the ring whatever the consumer does, so no
/// producer ever finds it full (that would fail the model): producers
/// spinning on a full ring while the consumer spins on an unfinished
/// record is the starvation loom cannot rule out. The race for space is
/// the next model.
///
/// Accepted outcome: every message arrives exactly once, intact, and each
/// producer's in the order it sent them; the final tail is 96 and all of
/// the region is zero again. A lost or doubled claim (two producers on the
/// same space), a torn or reordered record, a gap the consumer misreads,
/// or a payload read before its commit (the mutant) fails the model.
#[test]
fn two_producers_across_the_wrap() {
    /// Payload lengths per producer.
    const LENS: [&[usize]; 2] = [&[8, 3], &[5]];
    const FINAL_TAIL: u64 = 96;
    static COVERAGE: Coverage<5> = Coverage::new([
        "consumer found the ring empty",
        "consumer stopped at a claimed, unmarked record",
        "consumer stopped at a record in progress",
        "producer 1's claim crossed the wrap",
        "producer 1's message first",
    ]);

    loom_tests::builder().check(|| {
        COVERAGE.execution();
        let ring = new_ring();
        let (slots, mut c) = setup(&ring, 40, None);
        let threads: Vec<_> = slots
            .into_iter()
            .enumerate()
            .map(|(p, slot)| {
                let ring = ring.clone();
                thread::spawn(move || {
                    let mut prod = slot.producer(ring.view());
                    let mut starts = Vec::new();
                    for (seq, &len) in LENS[p].iter().enumerate() {
                        let r = prod.try_reserve(len).unwrap();
                        // SAFETY: r is the reservation try_reserve just
                        // returned: claimed space, this producer's alone
                        // until it commits it.
                        unsafe {
                            prod.view()
                                .region()
                                .write(r.data_offset, &message(p, seq, len));
                            prod.commit(r);
                        }
                        starts.push(r.start);
                    }
                    // Nobody sleeps in this model.
                    assert_eq!(prod.wakeups().take(), 0);
                    starts
                })
            })
            .collect();

        let mut next = [0usize; 2];
        let mut first = None;
        for n in 0..LENS[0].len() + LENS[1].len() {
            let got = pop_spinning(&mut c, &format!("message {n}"), |b| match b {
                Blocked::Empty => COVERAGE.hit(0),
                Blocked::Unmarked => COVERAGE.hit(1),
                Blocked::InProgress(_) => COVERAGE.hit(2),
            });
            let p = (0..2)
                .find(|&p| {
                    LENS[p]
                        .get(next[p])
                        .is_some_and(|&len| got == message(p, next[p], len))
                })
                .unwrap_or_else(|| {
                    panic!("message {n} = {got:?} is no producer's next (next = {next:?})")
                });
            next[p] += 1;
            first.get_or_insert(p);
        }
        assert_eq!(c.wakeups().take(), 0);
        let starts: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        if starts[1][0] == 64 {
            COVERAGE.hit(3);
        }
        if first == Some(1) {
            COVERAGE.hit(4);
        }
        // SAFETY: both producer threads have been joined.
        unsafe { check_drained(&ring, &mut c, FINAL_TAIL) };
    });
    COVERAGE.check();
}

/// Two producers race for the last free bytes: a 40-byte record fills
/// `[0, 40)`, so one 24-byte record fits in `[40, 64)` and a second does
/// not. Each producer takes a sender slot and tries once, concurrently
/// (the consumer starts only when both have tried, so that it frees
/// nothing during the race). Then the loser retries while the consumer
/// drains, until the consumer has freed space (its record goes to
/// `[64, 88)`). (A producer borrows the ring, so it cannot leave its
/// thread: the loser's retries are made by a new producer in its slot,
/// made before the consumer starts, so it is in the state the loser's
/// was in.)
///
/// Accepted outcome: the producers own different slots; exactly one first
/// attempt succeeds and the other gets `Full` (a claim CAS that let both
/// in would overlap their records; one that let neither in would report a
/// ring with room as full); the loser then succeeds; the consumer reads
/// the first record, the winner's, then the loser's, all intact, and the
/// region ends zeroed.
#[test]
fn race_for_the_last_free_bytes() {
    const FIRST: usize = 32;
    const LEN: usize = 16;
    const FINAL_TAIL: u64 = 88;
    static COVERAGE: Coverage<2> = Coverage::new(["producer 0 won", "producer 1 won"]);

    loom_tests::builder().check(|| {
        COVERAGE.execution();
        let ring = Arc::new(HeapRing::with_senders(64, 56, 2));
        {
            let mut earlier = loom_tests::mpsc_producer(ring.view(), EARLIER as u32);
            earlier.try_push(&message(EARLIER, 1, FIRST)).unwrap();
            earlier.leave();
        }
        let racers: Vec<_> = (0..2)
            .map(|p| {
                let ring = ring.clone();
                thread::spawn(move || {
                    let mut prod = loom_tests::mpsc_producer(ring.view(), PID[p]);
                    let first = prod.try_push(&message(p, 0, LEN));
                    // The slot stays taken: the producer does not leave.
                    (prod.slot(), first)
                })
            })
            .collect();
        let racers: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_ne!(racers[0].0, racers[1].0, "one slot, two owners");
        let won: Vec<bool> = racers
            .iter()
            .map(|(_, first)| match first {
                Ok(()) => true,
                Err(ReserveError::Full) => false,
                Err(e) => panic!("{e:?}"),
            })
            .collect();
        assert!(won[0] != won[1], "first attempts that succeeded: {won:?}");
        let winner = if won[0] { 0 } else { 1 };
        COVERAGE.hit(winner);
        let loser = 1 - winner;
        // SAFETY: the loser's thread took this slot for PID[loser] and has
        // ended (joined above) without giving it up; its producer is gone,
        // so this is the slot's only producer.
        let mut prod = unsafe { Producer::new(ring.view(), racers[loser].0, PID[loser]) }.unwrap();

        let consumer = {
            let ring = ring.clone();
            thread::spawn(move || {
                // SAFETY: the ring's only consumer until this thread ends.
                let mut c = unsafe { Consumer::new(ring.view()) }.unwrap();
                pop_fill(&mut c, FIRST);
                for (what, p) in [("the winner's record", winner), ("the loser's", loser)] {
                    let got = pop_spinning(&mut c, what, |_| {});
                    assert_eq!(got, message(p, 0, LEN), "{what}");
                }
                assert_eq!(c.wakeups().take(), 0);
                c.position()
            })
        };
        let msg = message(loser, 0, LEN);
        loom_tests::retry_full("the loser", || prod.try_push(&msg));
        assert_eq!(prod.wakeups().take(), 0);
        let position = consumer.join().unwrap();
        // The consumer's thread has ended; check the ring with a consumer
        // that continues where it stopped.
        // SAFETY: the ring's only consumer now (the thread's is gone).
        let mut c = unsafe { Consumer::new(ring.view()) }.unwrap();
        assert_eq!(c.position(), position, "where the consumer stopped");
        // SAFETY: the racers and the consumer have been joined.
        unsafe { check_drained(&ring, &mut c, FINAL_TAIL) };
    });
    COVERAGE.check();
}

/// A producer may find `tail` claimed by another producer that saw a newer
/// `head` than it has seen itself. The ring is full (a 56-byte record at
/// position 8, the largest: 8 bytes free, less than a message needs);
/// producer 0 retries until the consumer has freed it and then claims
/// `[64, 80)`; producer 1 tries once, at any point: before the release it
/// finds the ring full, after it gets in. Its loads may meet producer 0's
/// claim (tail 80) and the `head` from before the release (8): 72 bytes
/// "in use" in a 64-byte ring, which only means that its `head` is stale
/// (producer 0 read a newer one before claiming).
///
/// Accepted outcome: producer 1's attempt is `Ok` or `Full`, never
/// `Corrupted`; the consumer reads the first record, then producer 0's and
/// producer 1's (if it got in), intact.
#[test]
fn a_stale_head_behind_another_producers_claim_is_not_corruption() {
    const FIRST: usize = 48;
    const LEN: usize = 8;
    static COVERAGE: Coverage<2> =
        Coverage::new(["producer 1 found the ring full", "producer 1 got in"]);

    loom_tests::builder().check(|| {
        COVERAGE.execution();
        let ring = new_ring();
        let ([s0, s1], mut c) = setup(&ring, 8, Some(FIRST));
        let retrying = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut p0 = s0.producer(ring.view());
                let msg = message(0, 0, LEN);
                loom_tests::retry_full("producer 0", || p0.try_push(&msg));
            })
        };
        let once = {
            let ring = ring.clone();
            thread::spawn(move || s1.producer(ring.view()).try_push(&message(1, 0, LEN)))
        };

        pop_fill(&mut c, FIRST);
        // Joined before the consumer spins: producer 0 may still spin.
        let mut want = vec![message(0, 0, LEN)];
        match once.join().unwrap() {
            Ok(()) => {
                COVERAGE.hit(1);
                want.push(message(1, 0, LEN));
            }
            Err(ReserveError::Full) => COVERAGE.hit(0),
            Err(e) => panic!("producer 1: {e:?}"),
        }
        let mut got: Vec<_> = (0..want.len())
            .map(|n| pop_spinning(&mut c, &format!("message {n}"), |_| {}))
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        retrying.join().unwrap();
        // SAFETY: both producer threads have been joined.
        unsafe { check_drained(&ring, &mut c, 64 + 16 * want.len() as u64) };
    });
    COVERAGE.check();
}

/// Producer 0 reserves a record, writes into it and aborts it (a dropped
/// grant); producer 1 sends a message meanwhile, so its claim may land
/// before or after producer 0's.
///
/// Accepted outcome: the consumer receives producer 1's message, intact,
/// and nothing else: the aborted record's padding is skipped (and zeroed;
/// the final tail is 32). An abort that published the record, one that
/// left it blocking the ring for ever (the consumer spins out), or one
/// stored without Release (the consumer's zeroing of the aborted bytes
/// would race with their writes: a causality violation) fails the model.
#[test]
fn abort_while_another_commits() {
    const LEN: usize = 8;
    static COVERAGE: Coverage<2> = Coverage::new([
        "consumer stopped at producer 0's reservation (before the abort)",
        "producer 1's claim came first",
    ]);

    loom_tests::builder().check(|| {
        COVERAGE.execution();
        let ring = new_ring();
        let ([s0, s1], mut c) = setup(&ring, 0, None);
        let aborting = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut p0 = s0.producer(ring.view());
                let r = p0.try_reserve(LEN).unwrap();
                // SAFETY: r is the reservation try_reserve just returned:
                // claimed space, this producer's alone until it aborts it.
                unsafe {
                    // Never to be read: the aborted grant's payload.
                    p0.view().region().write(r.data_offset, &message(0, 0, LEN));
                    p0.abort(r);
                }
                assert_eq!(p0.wakeups().take(), 0);
                r.start
            })
        };
        let committing = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut p1 = s1.producer(ring.view());
                let r = p1.try_reserve(LEN).unwrap();
                // SAFETY: r is the reservation try_reserve just returned:
                // claimed space, this producer's alone until it commits it.
                unsafe {
                    p1.view().region().write(r.data_offset, &message(1, 0, LEN));
                    p1.commit(r);
                }
                assert_eq!(p1.wakeups().take(), 0);
                r.start
            })
        };

        let got = pop_spinning(&mut c, "producer 1's message", |b| {
            if b == Blocked::InProgress(PID[0]) {
                COVERAGE.hit(0);
            }
        });
        assert_eq!(got, message(1, 0, LEN));
        let aborted_at = aborting.join().unwrap();
        let committed_at = committing.join().unwrap();
        if committed_at < aborted_at {
            COVERAGE.hit(1);
        }
        // SAFETY: both producer threads have been joined.
        unsafe { check_drained(&ring, &mut c, 32) };
    });
    COVERAGE.check();
}

/// The wake protocol on the space side with two sleepers and what a third,
/// killed asleep, left behind: the ring is full (a 56-byte record at
/// position 8, 8 bytes free), and
/// sender slot 2's flag and its bit in `sleeping_senders` say asleep
/// though nobody is (its owner died in its sleep). Two producers find the
/// ring full, announce themselves in their own slots, re-check and sleep
/// on their flags (a mock futex). The consumer frees the record: its
/// release claims the mask's bits, and it clears and wakes every flag of
/// those slots that says asleep. Then it waits for both producers and
/// reads their messages.
///
/// The re-check is `has_space`, whose error counts as "ready", as in the
/// channel (the attempt that follows reports real damage).
///
/// Accepted outcome: both producers get their message in, and the
/// consumer reads all three, intact; no flag is left set (the dead
/// sleeper's was cleared by the first claim: nothing of it survives to
/// cost a later sleeper). A lost wake-up (a release that misses an
/// announcement whose re-check missed the release) leaves a producer
/// blocked in the mock, which has no timeouts: loom reports a deadlock.
#[test]
fn two_producers_sleeping_in_their_slots_beside_a_dead_one_are_woken() {
    static COVERAGE: Coverage<4> = Coverage::new([
        "neither announcement was claimed by the release",
        "a producer's re-check saw the space, it took its announcement back",
        "a producer blocked in its futex wait and was woken",
        "both producers blocked and were woken",
    ]);
    const FIRST: usize = 48;
    const LEN: usize = 8;
    /// The slot whose owner died asleep.
    const DEAD: usize = 2;
    /// Rounds of `sleep_once` a producer may need: one (after its wake,
    /// or its re-check, the space is there); the second is slack.
    const MAX_SLEEPS: usize = 2;

    loom_tests::builder().check(|| {
        COVERAGE.execution();
        let ring = Arc::new(HeapRing::with_senders(64, 56, 3));
        let (slots, mut c) = setup(&ring, 8, Some(FIRST));
        {
            let view = ring.view();
            // SAFETY: before the threads start; a flag and a mask bit are
            // what a sender killed asleep leaves, which endpoints must
            // cope with. Relaxed: the spawns below order the stores.
            unsafe {
                view.shared_sender_slot(DEAD).sleeping.store(1, Relaxed);
                view.shared_state()
                    .wake
                    .sleeping_senders
                    .store(wake::slot_bit(DEAD), Relaxed);
            }
        }
        let futex = Arc::new(FutexMock::new());
        let threads: Vec<_> = slots
            .into_iter()
            .enumerate()
            .map(|(p, slot)| {
                let ring = ring.clone();
                let futex = futex.clone();
                thread::spawn(move || {
                    let index = slot.index();
                    let mut prod = slot.producer(ring.view());
                    let msg = message(p, 0, LEN);
                    let mut sleeps = 0;
                    let mut retracted = false;
                    loop {
                        match prod.try_push(&msg) {
                            Ok(()) => break,
                            Err(ReserveError::Full) => {}
                            Err(e) => panic!("producer {p}: {e:?}"),
                        }
                        assert!(sleeps < MAX_SLEEPS, "producer {p} woken without space");
                        sleeps += 1;
                        let view = ring.view();
                        let sleeper = SlotSleeper {
                            // SAFETY: only loaded and stored as the
                            // protocol says, by this slot's producer.
                            flag: unsafe { &view.shared_sender_slot(index).sleeping },
                            mask: &view.wake_line().sleeping_senders,
                            slot: index,
                            futex: &*futex,
                        };
                        let mut ready = || {
                            let r = prod.has_space(LEN).unwrap_or(true);
                            retracted |= r;
                            r
                        };
                        sleeper.sleep_once(&mut ready, None).unwrap();
                    }
                    // Nobody sleeps on data here.
                    assert_eq!(prod.wakeups().take(), 0);
                    retracted
                })
            })
            .collect();

        pop_fill(&mut c, FIRST);
        let groups = c.wakeups().take_groups();
        assert_ne!(groups & wake::slot_bit(DEAD), 0, "the dead sleeper's bit");
        let view = ring.view();
        let claimed = mpsc::claim_sleepers(&view, groups, &mut |flag| futex.wake(flag));
        assert!(
            claimed <= 3,
            "claimed {claimed} sleepers, three slots exist"
        );
        let retracted: Vec<bool> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let mut got: Vec<_> = (0..2)
            .map(|n| pop_spinning(&mut c, &format!("message {n}"), |_| {}))
            .collect();
        got.sort();
        assert_eq!(got, [message(0, 0, LEN), message(1, 0, LEN)]);
        for i in 0..3 {
            assert_eq!(
                // SAFETY: a load.
                unsafe { view.shared_sender_slot(i) }.sleeping.load(Relaxed),
                0,
                "slot {i}'s flag left set"
            );
        }
        // The dead sleeper's flag is claimed (and wakes nobody) whenever
        // the release comes; only the live ones may have retracted.
        if claimed == 1 {
            COVERAGE.hit(0);
        }
        if retracted.iter().any(|&r| r) {
            COVERAGE.hit(1);
        }
        match futex.blocked() {
            0 => {}
            1 => COVERAGE.hit(2),
            _ => COVERAGE.hit(3),
        }
        // SAFETY: both producer threads have been joined.
        unsafe { check_drained(&ring, &mut c, 96) };
    });
    COVERAGE.check();
}

/// Recovery asked for while the claimants are slow but alive: producers 0
/// and 1 each send a message, and whenever the consumer finds nothing
/// committed it calls `try_recover` with an oracle that says everyone is
/// alive (as the channel does once a record has blocked it for the
/// recovery timeout).
///
/// Accepted outcome: recovery never turns anything into padding (a live
/// claimant is never skipped, whatever stage it is at: claimed and not yet
/// marked, found through its sender slot, or marked in progress, found
/// through its header); both messages arrive intact. A claim whose slot
/// store the consumer cannot see (say, the tail CAS without Release, or
/// the consumer's tail load without Acquire) would be taken for a dead
/// producer's and padded.
#[test]
fn recovery_never_skips_a_live_claimant() {
    const LEN: usize = 8;
    static COVERAGE: Coverage<2> = Coverage::new([
        "recovery found an unmarked claim's claimant alive (by its slot)",
        "recovery found a marked claimant alive (by its header)",
    ]);

    loom_tests::builder().check(|| {
        COVERAGE.execution();
        let ring = new_ring();
        let (slots, mut c) = setup(&ring, 0, None);
        let threads: Vec<_> = slots
            .into_iter()
            .enumerate()
            .map(|(p, slot)| {
                let ring = ring.clone();
                thread::spawn(move || {
                    slot.producer(ring.view())
                        .try_push(&message(p, 0, LEN))
                        .unwrap()
                })
            })
            .collect();

        let mut got = Vec::new();
        let mut rounds = 0;
        while got.len() < 2 {
            if let Some(r) = c.try_peek().unwrap() {
                // SAFETY: r is the record this consumer's try_peek just
                // returned, not yet consumed.
                unsafe {
                    got.push(loom_tests::payload(c.view(), &r));
                    c.consume(r);
                }
                continue;
            }
            let blocked = c.blocked();
            // SAFETY: the oracle says false of no process.
            match unsafe { c.try_recover(&mut |_| true) }.unwrap() {
                Recovery::Alive(pid) => {
                    assert!(PID.contains(&pid), "alive: unknown pid {pid}");
                    match blocked {
                        Blocked::Unmarked => COVERAGE.hit(0),
                        Blocked::InProgress(_) => COVERAGE.hit(1),
                        Blocked::Empty => {}
                    }
                }
                Recovery::Empty | Recovery::Retry => {}
                r @ Recovery::Recovered { .. } => panic!("a live claimant skipped: {r:?}"),
            }
            rounds += 1;
            assert!(rounds < loom_tests::SPIN_LIMIT, "consumer spun out");
            thread::yield_now();
        }
        got.sort();
        assert_eq!(got, [message(0, 0, LEN), message(1, 0, LEN)]);
        for t in threads {
            t.join().unwrap();
        }
        // SAFETY: both producer threads have been joined.
        unsafe { check_drained(&ring, &mut c, 32) };
    });
    COVERAGE.check();
}

/// Recovery of a producer that died right after its claim CAS
/// (`Stage::Claimed`: nothing written, not even the in-progress mark),
/// while another producer claims and commits after it. Positions start at
/// 48, so the dead claim crosses the wrap when it comes first:
///
/// ```text
/// dead claim first:  gap [48, 64) + record [64, 88), then the live
///                    producer's [88, 104)
/// live claim first:  the live producer's [48, 64), then the dead
///                    record [64, 88)
/// ```
///
/// The dead producer's death is a loom flag set (Release) after its CAS;
/// the consumer's alive oracle reads it (Acquire), as a liveness check of
/// a process that has exited sees everything it did. The consumer calls
/// `try_recover` whenever nothing is committed at its read position.
///
/// Accepted outcome: the live producer's message arrives intact; every
/// recovered piece is the dead producer's (by header or slot) or unnamed,
/// never the live one's, and they add up to exactly the dead claim (40
/// bytes with the gap, 24 without): recovery neither stops short of the
/// next claim nor eats into it, even while that claim is unmarked. The
/// dead producer's slot is then taken over by a newcomer (the live one
/// keeps its own, so the table is full); the region ends zeroed.
#[test]
fn recovery_of_a_dead_unmarked_claim_before_a_live_one() {
    const DEAD_LEN: usize = 16;
    const LIVE_LEN: usize = 8;
    const START: u64 = 48;
    static COVERAGE: Coverage<4> = Coverage::new([
        "the dead claim crossed the wrap (recovered in two pieces)",
        "the live claim came first",
        "recovery bounded by the live producer's unmarked claim",
        "recovery saw the dead claimant alive (not yet dead)",
    ]);

    loom_tests::builder().check(|| {
        COVERAGE.execution();
        let ring = new_ring();
        let ([dying, live], mut c) = setup(&ring, START, None);
        let dead_slot = dying.index();
        let dead = Arc::new(AtomicBool::new(false));
        let dying = {
            let ring = ring.clone();
            let dead = dead.clone();
            thread::spawn(move || {
                let mut dying = dying.producer(ring.view());
                let r = dying.try_reserve_until(DEAD_LEN, Stage::Claimed).unwrap();
                // Release: pairs with the Acquire load in the consumer's
                // alive oracle: the claim is done before we are dead.
                dead.store(true, Release);
                r
            })
        };
        let live = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut live = live.producer(ring.view());
                let r = live.try_reserve(LIVE_LEN).unwrap();
                // SAFETY: r is the reservation try_reserve just returned:
                // claimed space, this producer's alone until it commits it.
                unsafe {
                    live.view()
                        .region()
                        .write(r.data_offset, &message(1, 0, LIVE_LEN));
                    live.commit(r);
                }
                // It keeps its slot: the table stays full, and a newcomer
                // must take over the dead producer's.
                r
            })
        };

        // Acquire: pairs with the dying producer's Release store.
        let mut alive = |pid: u32| pid != PID[0] || !dead.load(Acquire);
        let mut got = None;
        let mut recovered = 0;
        let mut rounds = 0;
        loop {
            // Read before the peek: once it is true, the dead claim lies
            // within the tail the peek loads.
            let is_dead = !alive(PID[0]);
            if let Some(r) = c.try_peek().unwrap() {
                assert!(got.is_none(), "a second message");
                // SAFETY: r is the record this consumer's try_peek just
                // returned, not yet consumed.
                unsafe {
                    got = Some(loom_tests::payload(c.view(), &r));
                    c.consume(r);
                }
                continue;
            }
            let blocked = c.blocked();
            if got.is_some() && is_dead && blocked == Blocked::Empty {
                break;
            }
            // SAFETY: a load only.
            let tail_before = unsafe { ring.state() }.producer.tail.load(Relaxed);
            // SAFETY: the oracle says false only of PID[0], and only once
            // its thread has set `dead`, after the last thing it does to
            // the ring (its claim); the Release/Acquire pair orders that
            // claim before the oracle's answer.
            match unsafe { c.try_recover(&mut alive) }.unwrap() {
                Recovery::Recovered { pid, size } => {
                    assert!(
                        pid.is_none() || pid == Some(PID[0]),
                        "recovered a claim of pid {pid:?}"
                    );
                    recovered += size;
                    // The piece ended short of the tail seen before, not at
                    // the end of the region, at a word still zero: the
                    // live producer's claim, unmarked (the bound came from
                    // its slot). Headers only go from zero to non-zero
                    // until consumed, so it was zero during the scan too.
                    let end = c.position() + size;
                    let index = c.view().index(end);
                    if blocked == Blocked::Unmarked
                        && index != 0
                        && tail_before.wrapping_sub(end) as i64 > 0
                        // SAFETY: a load only.
                        && unsafe { c.view().region().shared_word(index) }.load(Relaxed) == 0
                    {
                        COVERAGE.hit(2);
                    }
                }
                Recovery::Alive(pid) => {
                    if pid == PID[0] {
                        COVERAGE.hit(3);
                    } else {
                        assert_eq!(pid, PID[1], "alive: unknown pid");
                    }
                }
                Recovery::Empty | Recovery::Retry => {}
            }
            rounds += 1;
            assert!(rounds < loom_tests::SPIN_LIMIT, "consumer spun out");
            thread::yield_now();
        }
        assert_eq!(got.unwrap(), message(1, 0, LIVE_LEN));
        let dead_r = dying.join().unwrap();
        let live_r = live.join().unwrap();
        let dead_claim = if live_r.start == START {
            COVERAGE.hit(1);
            24
        } else {
            COVERAGE.hit(0);
            40
        };
        assert_eq!(recovered, dead_claim, "recovered bytes (dead {dead_r:?})");
        let final_tail = dead_r.end.max(live_r.end);
        assert_eq!(final_tail, START + 16 + dead_claim);
        // SAFETY: both producer threads have been joined.
        unsafe { check_drained(&ring, &mut c, final_tail) };
        // The dead producer's slot is taken over: its claim is behind head.
        let mut dead_oracle = |pid: u32| pid != PID[0];
        // SAFETY: the oracle says false only of PID[0], whose thread has
        // ended (joined above).
        let slot = unsafe { mpsc::take_slot(&ring.view(), 30, &mut dead_oracle) };
        assert_eq!(slot, Some(dead_slot), "the dead producer's slot");
    });
    COVERAGE.check();
}

/// A record longer than the ring less the gap before its end (a 56-byte
/// record at position 16 of a 64-byte ring: gap and record together are
/// 104 bytes) claims the gap alone first and publishes it as padding; the
/// record is claimed at index 0 once the consumer has skipped (zeroed,
/// released) the padding:
///
/// ```text
/// gap claim     [16, 64)   padding at once
/// record claim  [64, 120)  after the consumer released the gap
/// ```
///
/// Accepted outcome: the message arrives intact; the final tail is 120;
/// all of the region is zero again. A producer that reuses the gap before
/// the consumer's release (a missing Acquire of head), a padding header
/// the consumer reads before it is written, or a payload read before its
/// commit (the mutant) fails the model.
#[test]
fn a_record_longer_than_the_ring_less_the_gap_claims_the_gap_alone() {
    const LEN: usize = 48;
    const FINAL_TAIL: u64 = 120;
    loom_tests::builder().check(|| {
        let ring = new_ring();
        let (slots, mut c) = setup(&ring, 16, None);
        let [slot, _] = slots;
        let producer = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut prod = slot.producer(ring.view());
                let (r, _) = loom_tests::retry_full("the long record", || prod.try_reserve(LEN));
                assert_eq!(r.start, 64, "the record starts at index 0");
                // SAFETY: r is the reservation try_reserve just returned:
                // claimed space, this producer's alone until it commits.
                unsafe {
                    prod.view()
                        .region()
                        .write(r.data_offset, &message(0, 0, LEN));
                    prod.commit(r);
                }
            })
        };
        let got = pop_spinning(&mut c, "the long record", |_| {});
        assert_eq!(got, message(0, 0, LEN));
        producer.join().unwrap();
        // SAFETY: the producer thread has been joined.
        unsafe { check_drained(&ring, &mut c, FINAL_TAIL) };
    });
}
