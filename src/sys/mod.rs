//! Thin, safe wrappers over the System V IPC calls this crate needs.
//!
//! This is the only module that calls `libc` directly. Everything above it
//! sees typed handles ([`Segment`], [`Attachment`], [`SemSet`]) and typed
//! errors ([`IpcError`]) built from one errno table.

mod error;
mod key;
mod sem;
mod shm;

pub use error::{Errno, IpcError};
pub use key::Key;
pub use sem::{SemOp, SemSet, SemStat, SEM_UNDO};
pub use shm::{page_size, Attachment, Segment, SegmentStat};

/// The calling process's id.
pub fn current_pid() -> i32 {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

/// The calling process's effective user id.
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether a process with this pid exists (it may belong to another user).
pub fn process_exists(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}
