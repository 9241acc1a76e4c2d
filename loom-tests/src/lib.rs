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
