//! Thin, safe wrappers over the system calls this crate needs, one file
//! per OS concept: System V segments (`shm.rs`), semaphore sets (`sem.rs`)
//! and keys (`key.rs`), processes and fork (`process.rs`), `membarrier`
//! (`membarrier.rs`), futexes (`futex.rs`), socket doorbells (`bell.rs`),
//! and the one errno table (`error.rs`).
//!
//! This is the only module that calls `libc` directly. Everything above it
//! sees typed handles ([`Shm`], [`Attachment`], [`SemSet`]) and typed
//! errors ([`IpcError`]) built from one errno table.

mod bell;
mod error;
mod futex;
mod key;
mod membarrier;
mod process;
mod sem;
mod shm;

pub use bell::{ring as ring_bell_socket, BellSocket};
pub use error::IpcError;
pub use futex::{futex_wait, futex_wake, Woken};
pub use key::Key;
pub use membarrier::{membarrier_global, membarrier_register};
pub use process::{
    current_pid, current_uid, fork_generation, forks_seen, pid_namespace, process_attached,
    process_exists,
};
pub use sem::{SemOp, SemSet};
pub use shm::{page_size, Attachment, Shm};
