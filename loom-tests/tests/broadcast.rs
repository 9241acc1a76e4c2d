//! Loom models of the broadcast ring (`ring::broadcast`): one publisher
//! (an SPSC producer whose readers are the subscriber table) and
//! subscribers that each read every record, in a 64-byte ring.
//!
//! - `Overflow::Block` (`block_*`, `a_joiner_*`): the publisher waits for
//!   the slowest joined subscriber. Payloads go through the region's
//!   cells, so loom reports a causality violation when a subscriber reads
//!   a record its publish does not happen-before (a header without
//!   Release/Acquire), or the publisher writes over a record whose read
//!   does not happen-before the write (a publisher that misses a joiner;
//!   a subscriber's position stored without Release would be one too, but
//!   for a fence loom models more strongly than C++: see `BLOCK_LENS`).
//! - `Overflow::Overwrite` (`overwrite_*`): the publisher never waits, so
//!   a subscriber's copy legitimately races the next lap's writes: the
//!   payloads go through the region's atoms (`copy_in`, `copy_out`, as in
//!   a channel), and the model checks what the subscriber accepts: every
//!   message whole, in order, and what it missed counted exactly.
//!
//! With `--cfg shmchan_mutant_broadcast` two orderings of the publisher
//! are weakened, and a model must catch each (CI runs this file under it,
//! at a preemption bound of 3):
//! - the Release fence after its store of `front` (`front_fence`) is left
//!   out: the overwrite model fails (a torn message accepted, or a later
//!   lap's bytes taken for a header);
//! - its load of `joins` after it moves `front` is Relaxed: the joiner
//!   model fails with a causality violation (the publisher saw the count
//!   change but not the joiner's position, and wrote over its start).
//!
//! Positions in the comments are ring positions (they grow past the
//! capacity; the region index is the position modulo 64).
#![cfg(shmchan_loom)]

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use loom_tests::Coverage;
use shmchan::internals::broadcast::{self, Next, Start, Subscriber};
use shmchan::internals::sync::{fence, Ordering};
use shmchan::internals::{HeapRing, ReserveError, RingView};

/// Pids of the subscribers (any non-zero values; every owner counts as
/// alive, so no slot is taken over).
const PID: [u32; 2] = [10, 20];

/// Takes a free subscriber slot for `pid`.
fn take(view: &RingView<'_>, pid: u32) -> usize {
    // SAFETY: the oracle calls no process dead, so no live owner's slot is
    // taken over.
    unsafe { broadcast::take_slot(view, pid, &mut |_| true) }
        .unwrap_or_else(|| panic!("no free subscriber slot for pid {pid}"))
}

/// Joins in `slot` (taken with [`take`] for this subscriber) at `start`,
/// with `fence(SeqCst)` as the heavy barrier (under loom the publisher's
/// fence is a full one too).
fn join_slot(view: RingView<'_>, slot: usize, start: Start) -> Subscriber<'_> {
    // SAFETY: the slot was taken for this subscriber, which alone uses it
    // (each caller takes it just before, or in the same thread).
    unsafe {
        Subscriber::join(
            view,
            slot,
            start,
            &mut || {
                // SeqCst fence: the heavy half of the join's store-load
                // pair (pairs with the publisher's fence between its store
                // of front and its load of joins; see `broadcast`'s module
                // docs).
                fence(Ordering::SeqCst)
            },
            // No pause in a model: its reads look SEQLOCK_TRIES times, and
            // loom runs the writer while they yield.
            std::time::Duration::ZERO,
        )
    }
    .unwrap()
}

/// Takes a free slot for `pid` and joins in it at `start`.
fn join(view: RingView<'_>, pid: u32, start: Start) -> Subscriber<'_> {
    let slot = take(&view, pid);
    join_slot(view, slot, start)
}

/// The shared positions of a broadcast ring, for a failure's message.
fn ring_state(view: &RingView<'_>) -> String {
    // SAFETY: loads only.
    let lap = unsafe { view.shared_lap() };
    let slots: Vec<_> = (0..view.sender_slots())
        .map(|i| {
            // SAFETY: loads only.
            let (slot, _) = unsafe { view.shared_subscriber_slot(i) };
            slot.position.load(Ordering::Relaxed)
        })
        .collect();
    format!(
        "tail {}, front {}, joins {}, slot positions {slots:?}",
        view.positions().1,
        lap.front.load(Ordering::Relaxed),
        lap.joins.load(Ordering::Relaxed)
    )
}

/// Block mode: peeks until a message is there (yielding while the ring
/// is empty), copies its payload out of the cells and consumes it;
/// returns the payload and how many times the ring was empty.
fn pop_block(s: &mut Subscriber, what: &str) -> (Vec<u8>, usize) {
    let mut empty = 0;
    loop {
        match s.try_peek().unwrap_or_else(|e| panic!("{what}: {e:?}")) {
            Next::Record(r) => {
                let mut got = vec![0u8; r.len];
                // SAFETY: r is the record this subscriber's try_peek just
                // returned: committed (the publisher writes it no more) and
                // not released (in Block mode the publisher reuses its
                // space only after our position passes it).
                unsafe { s.view().region().read(r.data_offset, &mut got) };
                // SAFETY: as above; r is consumed once.
                unsafe { s.consume(r) };
                return (got, empty);
            }
            Next::Empty => {
                // Block mode: the publisher never publishes past a joined
                // subscriber's position plus the ring (a later record's
                // zero would read as "empty" here for ever). `tail` is a
                // lower bound of what it published.
                // SAFETY: a load, for the model's check.
                let tail = unsafe { s.view().shared_state() }
                    .producer
                    .tail
                    .load(std::sync::atomic::Ordering::Relaxed);
                // (Signed: the subscriber may be ahead of the stored tail;
                // less 8: the zero past the last record is written too.)
                assert!(
                    tail.wrapping_sub(s.position()) as i64 <= s.view().capacity() as i64 - 8,
                    "{what}: the publisher lapped a joined subscriber in Block mode (tail {tail})"
                );
                empty += 1;
                assert!(
                    empty < loom_tests::SPIN_LIMIT,
                    "{what}: spun out at {} ({})",
                    s.position(),
                    ring_state(s.view())
                );
                thread::yield_now();
            }
            Next::Lapped => panic!("{what}: lapped in Block mode"),
        }
    }
}

/// The Block models' payloads: byte `j` of message `seq`, distinct across
/// messages, never zero (the initial content of the region).
fn block_message(seq: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (seq * 64 + j + 1) as u8).collect()
}

/// The two subscribers' progress in the Block model, for their waits
/// (blocking ones: see the model's docs).
#[derive(Default)]
struct Pace {
    /// Whether the follower joined, and the messages each subscriber
    /// consumed (leader, follower).
    state: Mutex<(bool, [usize; 2])>,
    changed: Condvar,
}

impl Pace {
    /// Changes the state and wakes the other side.
    fn update(&self, f: impl FnOnce(&mut (bool, [usize; 2]))) {
        f(&mut self.state.lock().unwrap());
        self.changed.notify_all();
    }

    /// Blocks until `until` holds.
    fn wait(&self, mut until: impl FnMut(&(bool, [usize; 2])) -> bool) {
        let mut st = self.state.lock().unwrap();
        while !until(&st) {
            st = self.changed.wait(st).unwrap();
        }
    }
}

/// Payload lengths of the first model. In the 64-byte ring (record =
/// 8-byte header + payload rounded up to 8, and the free word past it):
///
/// ```text
/// 0: len 40 -> [  0,  48)
///    padding   [ 48,  64)   (message 1 needs 32 + 8)
/// 1: len 24 -> [ 64,  96)   index 0..32: 0's header and payload
/// ```
///
/// The padding needs both subscribers past message 0 (its free word is
/// index 0, 0's header), and so does message 1, which writes over 0's
/// payload: the publisher reuses the space of the record whose release
/// it has just seen, whose reads only the Release store of the position
/// orders before its writes in the C++ model. (Loom cannot show a missing
/// Release there: the `fence(SeqCst)` of the subscriber's wake-up claim
/// follows the store with no scheduling point between, and loom makes
/// every `fence(SeqCst)` synchronize with the earlier ones, so the
/// publisher's fence in `cover`, after its load of the position and
/// before its writes, orders the reads anyway. With that claim left out
/// this model reports the Relaxed store at once.)
const BLOCK_LENS: [usize; 2] = [40, 24];
/// The publisher's `tail` after the last message.
const BLOCK_FINAL: u64 = 96;

/// Block mode, a publisher and two subscriber threads (the leader on the
/// model's main thread, the follower on its own) across the wrap.
///
/// Accepted outcome (the only one): each subscriber receives every
/// message, in order, with every byte as sent, and then nothing more; both
/// slots' positions and the shared `tail` end at 96. Loom's causality
/// check covers both directions of each record: its publish before the
/// leader's read (the follower reads after the leader), and both
/// subscribers' reads before the publisher writes over it.
///
/// The follower joins in its own thread before the publisher's thread
/// starts (the main thread waits for it), so both read from message 0.
///
/// Never two threads spin at once (two spinners waiting for a third let
/// loom starve the third, a false spin-out; see `loom_tests::SPIN_LIMIT`):
/// the follower reads message `i` only after the leader consumed it (so
/// it never finds the ring empty), blocked in between; the leader, finding
/// the ring empty while the follower is behind, blocks until the follower
/// caught up (the publisher may be waiting for it). So only the leader
/// spins on an empty ring, and only when both caught up with the
/// publisher, which then does not wait; and the publisher spins on a
/// full ring only while the subscriber it waits for is running. The
/// waits are on a loom mutex and condition variable ([`Pace`]), which
/// order the two subscribers, never a subscriber with the publisher.
#[test]
fn block_every_subscriber_gets_every_message_across_the_wrap() {
    static COVERAGE: Coverage<3> = Coverage::new([
        "publisher found the ring full",
        "leader found the ring empty",
        "leader waited for the follower",
    ]);

    loom_tests::builder().check(|| {
        COVERAGE.execution();
        let ring = Arc::new(HeapRing::broadcast(64, 40, 2, false));
        assert_eq!(ring.view().capacity(), 64);
        let mut leader = join(ring.view(), PID[0], Start::Newest);
        let pace = Arc::new(Pace::default());

        let follower = {
            let (ring, pace) = (ring.clone(), pace.clone());
            thread::spawn(move || {
                let mut s = join(ring.view(), PID[1], Start::Newest);
                assert_eq!(s.position(), 0);
                // The main thread starts the publisher only after both
                // joined (the join is the joiner model's business).
                pace.update(|st| st.0 = true);
                for (i, &len) in BLOCK_LENS.iter().enumerate() {
                    pace.wait(|st| st.1[0] > i);
                    let what = format!("follower, message {i}");
                    let (got, empty) = pop_block(&mut s, &what);
                    assert_eq!(empty, 0, "{what}: not there after the leader read it");
                    assert_eq!(got, block_message(i, len), "{what}: wrong payload");
                    pace.update(|st| st.1[1] = i + 1);
                }
                assert_eq!(s.wakeups().take(), 0, "nobody sleeps in this model");
                s.position()
            })
        };
        pace.wait(|st| st.0);

        let publisher = {
            let ring = ring.clone();
            thread::spawn(move || {
                // SAFETY: the only publisher of this ring in the model.
                let mut p = unsafe { broadcast::publisher(ring.view()) }.unwrap();
                let mut full = 0;
                for (i, &len) in BLOCK_LENS.iter().enumerate() {
                    let msg = block_message(i, len);
                    let ((), f) =
                        loom_tests::retry_full(&format!("message {i}"), || p.try_push(&msg));
                    full += f;
                }
                if full > 0 {
                    COVERAGE.hit(0);
                }
                assert_eq!(p.wakeups().take(), 0, "nobody sleeps in this model");
                p.tail()
            })
        };

        for (i, &len) in BLOCK_LENS.iter().enumerate() {
            let what = format!("leader, message {i}");
            let mut empty = 0;
            let got = loop {
                match leader
                    .try_peek()
                    .unwrap_or_else(|e| panic!("{what}: {e:?}"))
                {
                    Next::Record(r) => {
                        let mut got = vec![0u8; r.len];
                        // SAFETY: r is the record this subscriber's try_peek
                        // just returned: committed and not released (see
                        // `pop_block`).
                        unsafe { leader.view().region().read(r.data_offset, &mut got) };
                        // SAFETY: as above; r is consumed once.
                        unsafe { leader.consume(r) };
                        break got;
                    }
                    Next::Empty => {
                        COVERAGE.hit(1);
                        empty += 1;
                        assert!(empty < loom_tests::SPIN_LIMIT, "{what}: spun out");
                        let mut behind = false;
                        pace.wait(|st| {
                            behind |= st.1[1] < i;
                            st.1[1] >= i
                        });
                        if behind {
                            COVERAGE.hit(2);
                        }
                        thread::yield_now();
                    }
                    Next::Lapped => panic!("{what}: lapped in Block mode"),
                }
            };
            assert_eq!(got, block_message(i, len), "{what}: wrong payload");
            pace.update(|st| st.1[0] = i + 1);
        }
        assert_eq!(leader.wakeups().take(), 0);
        assert_eq!(leader.position(), BLOCK_FINAL);
        assert_eq!(follower.join().unwrap(), BLOCK_FINAL, "the follower's end");
        assert_eq!(
            publisher.join().unwrap(),
            BLOCK_FINAL,
            "the publisher's tail"
        );
        assert_eq!(
            leader.try_peek().unwrap(),
            Next::Empty,
            "a message after the last"
        );
        assert_eq!(ring.view().positions().1, BLOCK_FINAL, "the shared tail");
        for i in 0..2 {
            // SAFETY: loads only.
            let (slot, _) = unsafe { ring.view().shared_subscriber_slot(i) };
            assert_eq!(slot.position.load(Ordering::Relaxed), BLOCK_FINAL);
            assert_eq!(slot.seq.load(Ordering::Relaxed), BLOCK_LENS.len() as u64);
        }
    });
    COVERAGE.check();
}

/// Payload lengths of the overwrite model. In the 64-byte ring:
///
/// ```text
/// 0: len  8 -> [  0,  16)
/// 1: len  8 -> [ 16,  32)
///    padding   [ 32,  64)   its free word (index 0) is 0's header: front 72
/// 2: len 32 -> [ 64, 104)   front 112: index 8..40 is 0's payload and
///                           1's header and payload
/// ```
///
/// Message 2 writes over message 1 past the `front` (72) that the padding
/// stored: the subscriber sees that its copy of 1 may be torn only from
/// the `front` message 2 stored (112), which the Release fence after that
/// store (`front_fence`) makes visible to a reader of 2's bytes. Without
/// the fence, the fences the publisher issued before (the seqlock's, the
/// publish's) only carry `front` 72, under which message 1 is intact.
const OVERWRITE_LENS: [usize; 3] = [8, 8, 32];
/// The overwrite model's payloads: every byte of message `seq` is
/// `0xa0 + seq` (never zero, and no byte of another message).
fn overwrite_message(seq: usize) -> Vec<u8> {
    vec![0xa0 + seq as u8; OVERWRITE_LENS[seq]]
}

/// Overwrite mode: the publisher writes three messages into the ring
/// without ever waiting (the padding laps the first, the last the
/// second), while the subscriber (on the model's main thread, joined
/// before the publisher starts) reads with the protocol: `try_peek`, copy
/// the payload out, ask `intact`; on `Lapped` or a copy that is not
/// intact, `lagged`.
///
/// Accepted outcomes: the subscriber accepts a subsequence of the
/// messages, each whole (its length, every byte `0xa0 + seq`), in order,
/// the message it accepts being the one its cursor's sequence number
/// names; every gap is exactly what `lagged` reported missed; received +
/// missed = 3, the last message always received (nothing laps it), and
/// the slot's `lagged`/`missed` statistics agree.
#[test]
fn overwrite_a_lapped_subscriber_never_accepts_a_torn_message() {
    static COVERAGE: Coverage<4> = Coverage::new([
        "subscriber received every message",
        "subscriber missed messages",
        "a copy was dropped (not intact)",
        "try_peek found the read position lapped",
    ]);
    const N: usize = OVERWRITE_LENS.len();

    loom_tests::builder().check(|| {
        COVERAGE.execution();
        let ring = Arc::new(HeapRing::broadcast(64, 32, 1, true));
        let mut s = join(ring.view(), PID[0], Start::Newest);
        assert!(s.overwrites());

        let publisher = {
            let ring = ring.clone();
            thread::spawn(move || {
                // SAFETY: the only publisher of this ring in the model.
                let mut p = unsafe { broadcast::publisher(ring.view()) }.unwrap();
                for (i, &len) in OVERWRITE_LENS.iter().enumerate() {
                    let r = match p.try_reserve(len) {
                        Ok(r) => r,
                        Err(ReserveError::Full) => {
                            panic!("message {i}: an overwriting publisher waited")
                        }
                        Err(e) => panic!("message {i}: {e:?}"),
                    };
                    // SAFETY: r is the reservation try_reserve just
                    // returned: space past every subscriber's intact
                    // range, unpublished, ours until the commit (a
                    // subscriber may still be copying the lap before out of
                    // these words: atomics, and its `intact` check drops
                    // that copy).
                    unsafe {
                        p.view()
                            .region()
                            .copy_in(r.data_offset, &overwrite_message(i))
                    };
                    // SAFETY: r is the reservation try_reserve returned
                    // last, not yet committed.
                    unsafe { p.commit(r) };
                }
                p.tail()
            })
        };

        let (mut next, mut received, mut missed, mut lags) = (0usize, 0usize, 0u64, 0u64);
        let mut rounds = 0;
        while next < N {
            rounds += 1;
            assert!(
                rounds < loom_tests::SPIN_LIMIT,
                "subscriber spun out at {next}"
            );
            // A broken record here is a later lap's bytes read as a header
            // that the check of `front` let through.
            let next_record = s.try_peek();
            match next_record
                .unwrap_or_else(|e| panic!("message {next}: found a broken record: {e:?}"))
            {
                Next::Empty => {
                    thread::yield_now();
                    continue;
                }
                Next::Record(r) => {
                    let seq = s.seq() as usize;
                    assert_eq!(seq, next, "the cursor's sequence number");
                    let mut copy = Vec::new();
                    s.view().region().copy_out(r.data_offset, r.len, &mut copy);
                    if s.intact() {
                        assert_eq!(
                            copy,
                            overwrite_message(seq),
                            "accepted a torn message: {seq}"
                        );
                        // SAFETY: r is the record try_peek returned last, not
                        // yet consumed.
                        unsafe { s.consume(r) };
                        received += 1;
                        next += 1;
                        continue;
                    }
                    COVERAGE.hit(2);
                }
                Next::Lapped => COVERAGE.hit(3),
            }
            // Lapped, or a copy a later lap may have touched: go on from the
            // oldest intact record.
            let n = s
                .lagged()
                .unwrap_or_else(|e| panic!("lagged at {next}: {e:?}"));
            if n > 0 {
                lags += 1;
                missed += n;
                next += n as usize;
                assert!(next < N, "lagged past the last message ({next})");
            }
        }
        assert_eq!(publisher.join().unwrap(), 104, "the publisher's tail");
        assert_eq!(received as u64 + missed, N as u64);
        assert_eq!(
            s.try_peek().unwrap(),
            Next::Empty,
            "a message after the last"
        );
        assert_eq!(s.wakeups().take(), 0);
        // SAFETY: loads only.
        let (slot, _) = unsafe { ring.view().shared_subscriber_slot(s.slot()) };
        assert_eq!(
            slot.missed.load(Ordering::Relaxed),
            missed,
            "missed statistics"
        );
        assert_eq!(
            slot.lagged.load(Ordering::Relaxed),
            lags,
            "lagged statistics"
        );
        COVERAGE.hit(if missed == 0 { 0 } else { 1 });
    });
    COVERAGE.check();
}

/// Payload lengths of the joiner model: five 16-byte records, four to a
/// lap: the free word of the fourth (`[48, 64)`) is index 0, the first
/// one's header, and the fifth (`[64, 80)`) writes over the first.
const JOIN_LENS: [usize; 5] = [8; 5];

/// Block mode: a subscriber joins (on the model's main thread, in a slot
/// taken before the publisher's thread starts: read the newest position,
/// store it as its start, count itself in `joins`, the barrier, check
/// `front`) while the publisher publishes across the wrap, writing over
/// what nobody holds until it sees the joiner.
///
/// Accepted outcome: the subscriber starts at a record boundary with the
/// sequence number of the message there (its cursor's `seq`: message `i`
/// at `16 * i`), and receives every message from it on, in order and
/// intact, and then nothing more. Loom reports a causality violation if
/// the publisher writes over a record the joiner reads without the read
/// happening before the write (the publisher missed the joiner); a
/// publisher that wrote over a record before the joiner read its header
/// shows as a wrong payload or a zero header (a spin-out).
///
/// The slot is taken before the publisher starts: a slot taken but not
/// joined (position NOT_JOINED) is skipped, and one whose new owner the
/// publisher sees with the position of before makes it wait a little
/// more, harmless and costly to explore.
///
/// With `--cfg shmchan_mutant_broadcast` the publisher's load of `joins`
/// is Relaxed: it may see the new count but not the joiner's position,
/// and then, trusting the space it cached, write over the joiner's start
/// (a causality violation at a preemption bound of 3).
#[test]
fn a_joiner_gets_every_message_after_its_start() {
    static COVERAGE: Coverage<4> = Coverage::new([
        "joined before the first message",
        "joined while the publisher published",
        "joined after the last message",
        "the publisher waited for the joiner",
    ]);
    const N: usize = JOIN_LENS.len();
    const FINAL: u64 = 80;

    loom_tests::builder().check(|| {
        COVERAGE.execution();
        let ring = Arc::new(HeapRing::broadcast(64, 8, 1, false));
        let slot = take(&ring.view(), PID[0]);

        let publisher = {
            let ring = ring.clone();
            thread::spawn(move || {
                // SAFETY: the only publisher of this ring in the model.
                let mut p = unsafe { broadcast::publisher(ring.view()) }.unwrap();
                let mut full = 0;
                for (i, &len) in JOIN_LENS.iter().enumerate() {
                    let msg = block_message(i, len);
                    let ((), f) =
                        loom_tests::retry_full(&format!("message {i}"), || p.try_push(&msg));
                    full += f;
                }
                if full > 0 {
                    COVERAGE.hit(3);
                }
                p.tail()
            })
        };

        let mut s = join_slot(ring.view(), slot, Start::Newest);
        let (start, seq) = (s.position(), s.seq() as usize);
        assert!(
            seq <= N && start == 16 * seq as u64,
            "started at {start} with message {seq}"
        );
        COVERAGE.hit(match seq {
            0 => 0,
            s if s == N => 2,
            _ => 1,
        });
        for (i, &len) in JOIN_LENS.iter().enumerate().skip(seq) {
            assert_eq!(s.seq() as usize, i);
            let (got, _) = pop_block(&mut s, &format!("message {i} (joined at {seq})"));
            assert_eq!(
                got,
                block_message(i, len),
                "message {i} (joined at {seq}): wrong payload"
            );
        }
        assert_eq!(publisher.join().unwrap(), FINAL, "the publisher's tail");
        assert_eq!(
            s.try_peek().unwrap(),
            Next::Empty,
            "a message after the last"
        );
        assert_eq!(s.position(), FINAL);
    });
    COVERAGE.check();
}

/// Block mode: the publisher waits until the subscriber table counts a
/// subscriber (`broadcast::joined`, what `Sender::subscribers` reports),
/// then publishes; the subscriber, which takes its slot and joins at the
/// newest message on the model's main thread meanwhile, must get the
/// first message published after the count. A slot counted before its
/// join is final (taken, its old position, here the zero of a fresh
/// table, not yet reset; or a start the join may still give up) lets the
/// join start after that message.
#[test]
fn a_counted_subscriber_gets_what_is_published_after_the_count() {
    const LENS: [usize; 2] = [8; 2];

    loom_tests::builder().check(|| {
        let ring = Arc::new(HeapRing::broadcast(64, 8, 1, false));
        let publisher = {
            let ring = ring.clone();
            thread::spawn(move || {
                let view = ring.view();
                // SAFETY: the only publisher of this ring in the model.
                let mut p = unsafe { broadcast::publisher(ring.view()) }.unwrap();
                while broadcast::joined(&view, p.tail()) == 0 {
                    thread::yield_now();
                }
                for (i, &len) in LENS.iter().enumerate() {
                    let msg = block_message(i, len);
                    loom_tests::retry_full(&format!("message {i}"), || p.try_push(&msg));
                }
            })
        };
        let mut s = join(ring.view(), PID[0], Start::Newest);
        for (i, &len) in LENS.iter().enumerate() {
            let (got, _) = pop_block(&mut s, &format!("message {i}"));
            assert_eq!(
                got,
                block_message(i, len),
                "message {i}: not the one published after the count ({})",
                ring_state(&ring.view())
            );
        }
        publisher.join().unwrap();
    });
}
