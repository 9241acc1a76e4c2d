//! The yardsticks of the benchmark: `limit-ring`, the simplest
//! shared-memory SPSC ring; memcpy at the message size; and the round trip
//! of one cache line between two cores.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::os::SharedMemory;
use crate::{two_processes, SingleThreaded};

/// Offsets in a limit ring's mapping: each index on its own 128-byte line.
const HEAD: usize = 0;
const TAIL: usize = 128;
const DONE: usize = 256;
const SLOTS: usize = 4096;

/// The simplest SPSC ring in shared memory, as a yardstick: fixed slots of
/// the message size rounded up to 64 bytes, head and tail counters on
/// their own cache lines, each side caching the other's counter, busy
/// spinning, no validation, no liveness, no sleeping.
#[derive(Debug)]
pub struct LimitRing {
    mem: SharedMemory,
    slot: usize,
    slots: u64,
}

impl LimitRing {
    /// A ring of about `bytes` bytes of `size`-byte slots (at least 16).
    pub fn new(size: usize, bytes: usize) -> LimitRing {
        let slot = size.max(1).next_multiple_of(64);
        let slots = (bytes / slot).max(16);
        let mem = SharedMemory::new(SLOTS + slot * slots).expect("mmap a limit ring");
        LimitRing {
            mem,
            slot,
            slots: slots as u64,
        }
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off + 8 <= SLOTS);
        // SAFETY: off is one of the 8-aligned counters inside the first
        // page of the mapping, which lives as long as self; zero-filled
        // memory is a valid AtomicU64.
        unsafe { &*self.mem.as_ptr().add(off).cast::<AtomicU64>() }
    }

    fn slot_ptr(&self, i: u64) -> *mut u8 {
        let off = SLOTS + (i % self.slots) as usize * self.slot;
        // SAFETY: off + slot <= the mapping's length (slots * slot bytes
        // after SLOTS).
        unsafe { self.mem.as_ptr().add(off) }
    }

    /// The producing side, from where the ring's last producer stopped.
    ///
    /// # Safety
    ///
    /// At most one [`LimitTx`] and one [`LimitRx`] of a ring are in use at
    /// a time, across every process that shares the mapping (it is shared
    /// with every child forked after [`LimitRing::new`]): two producers
    /// would write the same slot at once, or one slot while the consumer
    /// copies it out, a data race. A producer made after another one must
    /// be made after that one's last use (in the same thread, or after
    /// the process that used it was waited for).
    pub unsafe fn producer(&self) -> LimitTx<'_> {
        // Relaxed: only a producer stores tail, and the last one's stores
        // happen before this (the contract above).
        let tail = self.word(TAIL).load(Ordering::Relaxed);
        // Acquire: pairs with the Release store of head in recv (the slots
        // below head are free).
        let cached_head = self.word(HEAD).load(Ordering::Acquire);
        LimitTx {
            ring: self,
            tail,
            cached_head,
        }
    }

    /// The consuming side, from where the ring's last consumer stopped.
    ///
    /// # Safety
    ///
    /// At most one [`LimitTx`] and one [`LimitRx`] of a ring are in use at
    /// a time, across every process that shares the mapping (it is shared
    /// with every child forked after [`LimitRing::new`]): two consumers
    /// would copy out a slot that the producer, released by one of them,
    /// writes again at the same time, a data race. A consumer made after
    /// another one must be made after that one's last use (in the same
    /// thread, or after the process that used it was waited for).
    pub unsafe fn consumer(&self) -> LimitRx<'_> {
        // Relaxed: only a consumer stores head, and the last one's stores
        // happen before this (the contract above).
        let head = self.word(HEAD).load(Ordering::Relaxed);
        LimitRx {
            ring: self,
            head,
            // Nothing known to be published yet: recv loads tail first.
            cached_tail: head,
        }
    }
}

/// The producer of a [`LimitRing`].
#[derive(Debug)]
pub struct LimitTx<'a> {
    ring: &'a LimitRing,
    tail: u64,
    cached_head: u64,
}

impl LimitTx<'_> {
    /// Copies `msg` (at most the slot size) into the next slot, spinning
    /// while the ring is full.
    #[inline]
    pub fn send(&mut self, msg: &[u8]) {
        let r = self.ring;
        while self.tail - self.cached_head == r.slots {
            // Acquire: pairs with the Release store of head in recv.
            self.cached_head = r.word(HEAD).load(Ordering::Acquire);
            std::hint::spin_loop();
        }
        assert!(msg.len() <= r.slot);
        // SAFETY: the slot is free (the consumer released it, Acquire
        // above) and msg fits in it; msg is process memory.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), r.slot_ptr(self.tail), msg.len()) };
        self.tail += 1;
        // Release: pairs with the Acquire load of tail in recv.
        r.word(TAIL).store(self.tail, Ordering::Release);
    }

    /// Tells the consumer that nothing more comes (for good: a later
    /// consumer of the ring, too, stops once it has read all there is).
    pub fn finish(&self) {
        // Release: pairs with the Acquire load of the flag in recv.
        self.ring.word(DONE).store(1, Ordering::Release);
    }
}

/// The consumer of a [`LimitRing`].
#[derive(Debug)]
pub struct LimitRx<'a> {
    ring: &'a LimitRing,
    head: u64,
    cached_tail: u64,
}

impl LimitRx<'_> {
    /// Copies the next message into `out`, spinning while the ring is
    /// empty; false once the producer has finished and all is read.
    #[inline]
    pub fn recv(&mut self, out: &mut [u8]) -> bool {
        let r = self.ring;
        while self.head == self.cached_tail {
            // Acquire: pairs with the Release store of tail in send.
            self.cached_tail = r.word(TAIL).load(Ordering::Acquire);
            if self.head == self.cached_tail {
                // Acquire: pairs with the Release store in finish; tail is
                // read again after it.
                if r.word(DONE).load(Ordering::Acquire) == 1
                    && r.word(TAIL).load(Ordering::Acquire) == self.head
                {
                    return false;
                }
                std::hint::spin_loop();
            }
        }
        let n = out.len().min(r.slot);
        // SAFETY: the slot holds a published message (Acquire above) that
        // the producer does not touch until we release it below.
        unsafe { std::ptr::copy_nonoverlapping(r.slot_ptr(self.head), out.as_mut_ptr(), n) };
        self.head += 1;
        // Release: pairs with the Acquire load of head in send.
        r.word(HEAD).store(self.head, Ordering::Release);
        true
    }
}

/// Copies `size` bytes between two cache-resident buffers for `duration`;
/// returns (copies, seconds).
pub fn memcpy_rate(size: usize, duration: Duration) -> (u64, f64) {
    let src = vec![0x5au8; size];
    let mut dst = vec![0u8; size];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < duration {
        for _ in 0..64 {
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&mut dst);
        }
        n += 64;
    }
    (n, start.elapsed().as_secs_f64())
}

/// One cache line in shared memory passed back and forth between two
/// processes (on two cores when pinned) `n` times; returns the sorted
/// round trips in nanoseconds.
pub fn cacheline_round_trips(one: &SingleThreaded, pinned: bool, n: usize) -> Vec<f64> {
    let mem = SharedMemory::new(4096).expect("mmap a cache line");
    // SAFETY: the first 8 bytes of a page-aligned, zero-filled mapping that
    // lives until the end of this function (the child exits before).
    let line = unsafe { &*mem.as_ptr().cast::<AtomicU64>() };
    let warmup = n / 10;
    let total = (n + warmup) as u64;
    let mut samples = Vec::with_capacity(n);
    two_processes(
        one,
        pinned,
        || {
            // Answers every odd value v with v + 1.
            let mut expect = 1u64;
            while expect < 2 * total {
                // Acquire/Release: each store answers the other side's last
                // store (pairs with the loads on the other side).
                if line.load(Ordering::Acquire) == expect {
                    line.store(expect + 1, Ordering::Release);
                    expect += 2;
                } else {
                    std::hint::spin_loop();
                }
            }
        },
        || {
            for i in 0..total {
                let v = 2 * i + 1;
                let t = Instant::now();
                // Release: pairs with the child's Acquire load.
                line.store(v, Ordering::Release);
                // Acquire: pairs with the child's Release store.
                while line.load(Ordering::Acquire) != v + 1 {
                    std::hint::spin_loop();
                }
                if i >= warmup as u64 {
                    samples.push(t.elapsed().as_nanos() as f64);
                }
            }
        },
    );
    samples.sort_by(|a, b| a.total_cmp(b));
    samples
}
