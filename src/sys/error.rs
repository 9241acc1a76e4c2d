//! The one errno table: every System V failure becomes an [`IpcError`].

use std::fmt;
use std::io;

/// A raw `errno` value, kept when no typed variant fits.
pub type Errno = i32;

/// What a System V call failed with.
///
/// Built from `errno` by [`IpcError::from_errno`], the only place that reads
/// errno values; the raw number survives in [`IpcError::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpcError {
    /// `ENOENT`: no object exists at this key.
    NotFound,
    /// `EEXIST`: an object already exists at this key.
    AlreadyExists,
    /// `EACCES` / `EPERM`: the object's mode or owner forbids this.
    PermissionDenied,
    /// `EIDRM`: the object was removed (also while waiting on it).
    Removed,
    /// `EINTR`: a signal interrupted the call.
    Interrupted,
    /// `EAGAIN`: the operation would block, or a timed wait timed out.
    WouldBlock,
    /// `EINVAL`: an argument does not fit the object (size, index, id).
    InvalidArgument,
    /// `ENOSPC` / `ENOMEM`: a system-wide IPC limit or memory is exhausted.
    NoSpace,
    /// `ERANGE`: a semaphore value would leave `0..=SEMVMX`.
    OutOfRange,
    /// `E2BIG` / `EFBIG`: too many operations or too large a request.
    TooBig,
    /// Any other errno, kept raw.
    Other(Errno),
}

impl IpcError {
    /// Maps an errno value through the table.
    pub fn from_errno(errno: Errno) -> IpcError {
        match errno {
            libc::ENOENT => IpcError::NotFound,
            libc::EEXIST => IpcError::AlreadyExists,
            libc::EACCES | libc::EPERM => IpcError::PermissionDenied,
            libc::EIDRM => IpcError::Removed,
            libc::EINTR => IpcError::Interrupted,
            libc::EAGAIN => IpcError::WouldBlock,
            libc::EINVAL => IpcError::InvalidArgument,
            libc::ENOSPC | libc::ENOMEM => IpcError::NoSpace,
            libc::ERANGE => IpcError::OutOfRange,
            libc::E2BIG | libc::EFBIG => IpcError::TooBig,
            other => IpcError::Other(other),
        }
    }

    /// Whether the object went away (`EINVAL`: no such id any more;
    /// `EIDRM`: removed): between two calls, it was removed meanwhile.
    pub fn is_gone(self) -> bool {
        matches!(self, IpcError::InvalidArgument | IpcError::Removed)
    }

    /// The error of the last failed libc call on this thread.
    pub fn last() -> IpcError {
        IpcError::from_errno(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The errno value this error stands for.
    pub fn errno(self) -> Errno {
        match self {
            IpcError::NotFound => libc::ENOENT,
            IpcError::AlreadyExists => libc::EEXIST,
            IpcError::PermissionDenied => libc::EACCES,
            IpcError::Removed => libc::EIDRM,
            IpcError::Interrupted => libc::EINTR,
            IpcError::WouldBlock => libc::EAGAIN,
            IpcError::InvalidArgument => libc::EINVAL,
            IpcError::NoSpace => libc::ENOSPC,
            IpcError::OutOfRange => libc::ERANGE,
            IpcError::TooBig => libc::E2BIG,
            IpcError::Other(e) => e,
        }
    }
}

impl fmt::Display for IpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", io::Error::from_raw_os_error(self.errno()))
    }
}

impl std::error::Error for IpcError {}

impl From<IpcError> for io::Error {
    fn from(e: IpcError) -> io::Error {
        io::Error::from_raw_os_error(e.errno())
    }
}
