//! System V keys: from `ftok`, raw, or `IPC_PRIVATE`.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The System V key a channel lives under.
///
/// Both IPC objects of a channel (its segment and its semaphore set) use the
/// same key; the kernel keeps separate namespaces for the two kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(i32);

impl Key {
    /// `ftok(path, proj_id)`: a key derived from an existing file's inode and
    /// device and the low 8 bits of `proj_id`, which must not be zero.
    ///
    /// Two different paths can give the same key (`ftok` keeps only a few
    /// bits of the inode and device); see the crate documentation.
    ///
    /// ```
    /// let key = shmchan::Key::ftok("/", 1).unwrap();
    /// assert_eq!(key, shmchan::Key::ftok("/", 1).unwrap());
    /// ```
    pub fn ftok(path: impl AsRef<Path>, proj_id: impl Into<i32>) -> io::Result<Key> {
        let proj_id = proj_id.into();
        if proj_id & 0xff == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("ftok: the low 8 bits of proj_id {proj_id:#x} must not be zero"),
            ));
        }
        let path = path.as_ref();
        let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("ftok: path {} contains a NUL byte", path.display()),
            )
        })?;
        // SAFETY: c_path is a valid NUL-terminated string that outlives the call.
        let key = unsafe { libc::ftok(c_path.as_ptr(), proj_id) };
        if key == -1 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("ftok({}, {proj_id}): {e}", path.display()),
            ));
        }
        Ok(Key(key))
    }

    /// A key given as a number (`0x1234`). Zero is `IPC_PRIVATE`.
    pub const fn raw(key: i32) -> Key {
        Key(key)
    }

    /// `IPC_PRIVATE`: a channel with no key, for a parent and the children it
    /// forks after creating it. It cannot be opened by key.
    pub const fn private() -> Key {
        Key(libc::IPC_PRIVATE)
    }

    /// Whether this is `IPC_PRIVATE`.
    pub const fn is_private(self) -> bool {
        self.0 == libc::IPC_PRIVATE
    }

    /// The numeric key.
    pub const fn as_raw(self) -> i32 {
        self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0 as u32)
    }
}
