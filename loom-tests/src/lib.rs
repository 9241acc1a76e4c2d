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

#[cfg(shmchan_loom)]
mod semaphore;

#[cfg(shmchan_loom)]
pub use semaphore::Semaphore;

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
    mut attempt: impl FnMut() -> Result<T, shmchan::ring::ReserveError>,
) -> (T, usize) {
    let mut rounds = 0;
    loop {
        match attempt() {
            Ok(v) => return (v, rounds),
            Err(shmchan::ring::ReserveError::Full) => {
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
    fn peek(&mut self) -> Result<Option<shmchan::ring::Record>, shmchan::ring::Corrupted>;
}

#[cfg(shmchan_loom)]
impl Peek for shmchan::ring::spsc::Consumer {
    fn peek(&mut self) -> Result<Option<shmchan::ring::Record>, shmchan::ring::Corrupted> {
        self.try_peek()
    }
}

#[cfg(shmchan_loom)]
impl Peek for shmchan::ring::mpsc::Consumer {
    fn peek(&mut self) -> Result<Option<shmchan::ring::Record>, shmchan::ring::Corrupted> {
        self.try_peek()
    }
}

/// Peeks until a record is there, yielding to the other threads in
/// between; returns it and how many times the ring was empty.
#[cfg(shmchan_loom)]
pub fn peek_spinning<C: Peek>(c: &mut C, what: &str) -> (shmchan::ring::Record, usize) {
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
#[cfg(shmchan_loom)]
pub fn payload(view: &shmchan::ring::RingView, r: &shmchan::ring::Record) -> Vec<u8> {
    let mut v = vec![0u8; r.len];
    view.region().read(r.data_offset, &mut v);
    v
}

/// An MPSC producer of process `pid`, in a sender slot it takes (a free
/// one: every owner counts as alive). Panics if the table is full.
#[cfg(shmchan_loom)]
pub fn mpsc_producer(view: shmchan::ring::RingView, pid: u32) -> shmchan::ring::mpsc::Producer {
    use shmchan::ring::mpsc;
    let slot = mpsc::take_slot(&view, pid, &mut |_| true)
        .unwrap_or_else(|| panic!("no free sender slot for pid {pid}"));
    mpsc::Producer::new(view, slot, pid).unwrap()
}

/// Whether every word of the data region of `view` is zero, both as
/// payload and as header (what a consumer leaves behind once it has
/// released everything). Call it only when no other thread runs.
#[cfg(shmchan_loom)]
pub fn region_is_zero(view: &shmchan::ring::RingView) -> bool {
    use shmchan::sync::Ordering::Relaxed;
    let region = view.region();
    (0..region.len())
        .step_by(8)
        .all(|off| region.read_u64(off) == 0 && region.atomic_u64(off).load(Relaxed) == 0)
}
