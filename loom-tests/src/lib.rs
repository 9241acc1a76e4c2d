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

/// Peeks until a record is there, yielding to the other threads in
/// between; returns it and how many times the ring was empty.
#[cfg(shmchan_loom)]
pub fn peek_spinning(
    c: &mut shmchan::ring::spsc::Consumer,
    what: &str,
) -> (shmchan::ring::Record, usize) {
    let mut rounds = 0;
    loop {
        if let Some(r) = c.try_peek().unwrap() {
            return (r, rounds);
        }
        rounds += 1;
        assert!(rounds < SPIN_LIMIT, "consumer spun out at {what}");
        loom::thread::yield_now();
    }
}
