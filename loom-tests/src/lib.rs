//! Loom models of `shmchan`'s lock-free algorithms (the models are in
//! `tests/`), and the loom stand-ins they share.
//!
//! Everything here exists only under `--cfg shmchan_loom`; without it this
//! crate is empty, so plain `cargo test` and `cargo clippy` of the workspace
//! stay unaffected. Run the models with
//!
//! ```text
//! RUSTFLAGS="--cfg shmchan_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test --release -p loom-tests --target-dir target/loom
//! ```
//!
//! The models reach the ring through `shmchan::internals`, whose views and
//! endpoints borrow the ring they work on: a model makes its `HeapRing`
//! first (in an `Arc` when threads share it), and each thread makes its
//! endpoints from its own clone.

#[cfg(shmchan_loom)]
mod futex;
#[cfg(shmchan_loom)]
mod semaphore;

#[cfg(shmchan_loom)]
pub use futex::FutexMock;
#[cfg(shmchan_loom)]
pub use semaphore::Semaphore;

#[cfg(shmchan_loom)]
use shmchan::internals::{mpsc, spsc, Corrupted, Record, ReserveError, RingView};

/// The preemption bound used when `LOOM_MAX_PREEMPTIONS` is not set, so a
/// model run without it still ends in seconds (unbounded runs of these
/// models take minutes to hours).
#[cfg(shmchan_loom)]
pub const DEFAULT_PREEMPTIONS: usize = 2;

/// A model builder: loom's defaults and environment variables, plus
/// [`DEFAULT_PREEMPTIONS`] when `LOOM_MAX_PREEMPTIONS` is unset.
#[cfg(shmchan_loom)]
pub fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    b
}

/// Rounds a side may find the ring full or empty before a model gives up:
/// `yield_now` makes loom run the other thread, so a correct run needs only
/// a few; the bound turns a livelock into a failure instead of a hang.
///
/// With three or more threads, never let two spin at once while they wait
/// for a third: at a `yield_now` loom may schedule either spinner, and it
/// explores the schedules where the two take turns for ever (the model
/// then spins out or exceeds loom's branch limit, a false failure).
#[cfg(shmchan_loom)]
pub const SPIN_LIMIT: usize = 1_000;

/// Calls `attempt` until it stops returning `Full`, yielding to the other
/// threads in between; returns the value and how many times it was full.
#[cfg(shmchan_loom)]
pub fn retry_full<T>(
    what: &str,
    mut attempt: impl FnMut() -> Result<T, ReserveError>,
) -> (T, usize) {
    let mut rounds = 0;
    loop {
        match attempt() {
            Ok(v) => return (v, rounds),
            Err(ReserveError::Full) => {
                rounds += 1;
                assert!(rounds < SPIN_LIMIT, "producer spun out at {what}");
                loom::thread::yield_now();
            }
            Err(e) => panic!("{what}: {e:?}"),
        }
    }
}

/// A consuming end that [`peek_spinning`] can poll: the SPSC and the MPSC
/// consumer.
#[cfg(shmchan_loom)]
pub trait Peek {
    /// The consumer's `try_peek`.
    fn peek(&mut self) -> Result<Option<Record>, Corrupted>;
}

#[cfg(shmchan_loom)]
impl Peek for spsc::Consumer<'_> {
    fn peek(&mut self) -> Result<Option<Record>, Corrupted> {
        self.try_peek()
    }
}

#[cfg(shmchan_loom)]
impl Peek for mpsc::Consumer<'_> {
    fn peek(&mut self) -> Result<Option<Record>, Corrupted> {
        self.try_peek()
    }
}

/// Peeks until a record is there, yielding to the other threads in
/// between; returns it and how many times the ring was empty.
#[cfg(shmchan_loom)]
pub fn peek_spinning<C: Peek>(c: &mut C, what: &str) -> (Record, usize) {
    let mut rounds = 0;
    loop {
        if let Some(r) = c.peek().unwrap() {
            return (r, rounds);
        }
        rounds += 1;
        assert!(rounds < SPIN_LIMIT, "consumer spun out at {what}");
        loom::thread::yield_now();
    }
}

/// The payload of record `r` (found by a consumer of `view`), copied out.
///
/// # Safety
/// `r` is a record that the consumer of `view`'s ring returned from
/// `try_peek` and has not released yet (read and held in a batch is fine):
/// committed, so no producer writes it any more, and unreleased, so no
/// producer reuses its space.
#[cfg(shmchan_loom)]
pub unsafe fn payload(view: &RingView<'_>, r: &Record) -> Vec<u8> {
    let mut v = vec![0u8; r.len];
    // SAFETY: the caller's contract: the record is committed and unreleased.
    unsafe { view.region().read(r.data_offset, &mut v) };
    v
}

/// A sender slot of an MPSC ring, taken for one producer: the one
/// [`Slot::producer`] makes (it consumes the slot, so no second producer
/// can use it). Lets a model take its slots before its threads start and
/// make each producer in the thread that uses it (a producer borrows the
/// ring, so it cannot move into a spawned thread).
#[cfg(shmchan_loom)]
#[derive(Debug)]
pub struct Slot {
    /// The ring's state (its address), which `producer` checks.
    ring: usize,
    index: usize,
    pid: u32,
}

#[cfg(shmchan_loom)]
impl Slot {
    /// Takes a free slot of `view`'s sender table for a producer of
    /// process `pid` (every owner counts as alive, so no taken slot is
    /// taken over). Panics if the table is full.
    pub fn take(view: &RingView<'_>, pid: u32) -> Slot {
        // SAFETY: the oracle says false of no process, so take_slot takes
        // over no slot (whose owner might still write).
        let index = unsafe { mpsc::take_slot(view, pid, &mut |_| true) }
            .unwrap_or_else(|| panic!("no free sender slot for pid {pid}"));
        Slot {
            ring: ring_id(view),
            index,
            pid,
        }
    }

    /// The slot's index in the sender table.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The producer of process `pid` in this slot, on `view` (a view of
    /// the ring the slot was taken in; panics otherwise).
    pub fn producer(self, view: RingView<'_>) -> mpsc::Producer<'_> {
        assert_eq!(ring_id(&view), self.ring, "a slot of another ring");
        // SAFETY: the slot was taken with take_slot in this ring (checked)
        // for this producer; `self` is consumed, so no other producer is
        // made in it.
        unsafe { mpsc::Producer::new(view, self.index, self.pid) }.unwrap()
    }
}

/// Which ring `view` sees (the address of its shared state).
#[cfg(shmchan_loom)]
fn ring_id(view: &RingView<'_>) -> usize {
    std::ptr::from_ref(view.wake_line()) as usize
}

/// An MPSC producer of process `pid`, in a sender slot it takes (a free
/// one: every owner counts as alive). Panics if the table is full.
#[cfg(shmchan_loom)]
pub fn mpsc_producer(view: RingView<'_>, pid: u32) -> mpsc::Producer<'_> {
    Slot::take(&view, pid).producer(view)
}

/// Whether every word of the data region of `view` is zero, both as
/// payload and as header (what a consumer leaves behind once it has
/// released everything).
///
/// # Safety
/// No other thread accesses the region during the call (every thread
/// that wrote to it has been joined).
#[cfg(shmchan_loom)]
pub unsafe fn region_is_zero(view: &RingView<'_>) -> bool {
    use shmchan::internals::sync::Ordering::Relaxed;
    let region = view.region();
    (0..region.len()).step_by(8).all(|off| {
        // SAFETY: the caller's contract: nobody else accesses the region.
        let word = unsafe { region.read_u64(off) };
        // SAFETY: a load only.
        word == 0 && unsafe { region.shared_word(off) }.load(Relaxed) == 0
    })
}

/// Coverage counters (std atomics, outside the model, summed over the
/// executions of one test): a model only proves something if the
/// interleavings it is about occurred.
pub struct Coverage<const N: usize> {
    names: [&'static str; N],
    counts: [std::sync::atomic::AtomicUsize; N],
    executions: std::sync::atomic::AtomicUsize,
}

impl<const N: usize> Coverage<N> {
    pub const fn new(names: [&'static str; N]) -> Self {
        Coverage {
            names,
            counts: [const { std::sync::atomic::AtomicUsize::new(0) }; N],
            executions: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Counts one execution (call at the start of the model's closure).
    pub fn execution(&self) {
        self.executions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn hit(&self, i: usize) {
        self.counts[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Prints the counts and fails if some path never occurred.
    pub fn check(&self) {
        eprintln!(
            "{} executions",
            self.executions.load(std::sync::atomic::Ordering::Relaxed)
        );
        for (name, n) in self.names.iter().zip(&self.counts) {
            eprintln!("{:8} {name}", n.load(std::sync::atomic::Ordering::Relaxed));
        }
        for (name, n) in self.names.iter().zip(&self.counts) {
            assert!(
                n.load(std::sync::atomic::Ordering::Relaxed) > 0,
                "no execution covered: {name}"
            );
        }
    }
}
