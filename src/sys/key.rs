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
///
/// A key made by [`Key::ftok`] also remembers the device and inode of its
/// path: a channel created with it records them in its header, and opening
/// it with a key from another path that `ftok` maps to the same number
/// gives [`crate::OpenError::KeyCollision`] instead of someone else's
/// channel. Keys compare (and hash) by their number only.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    raw: i32,
    /// `(st_dev, st_ino)` of the path an `ftok` key came from.
    path: Option<(u64, u64)>,
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.raw == other.raw
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}

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
        let meta = std::fs::metadata(path)?;
        use std::os::unix::fs::MetadataExt;
        Ok(Key {
            raw: key,
            path: Some((meta.dev(), meta.ino())),
        })
    }

    /// A key given as a number (`0x1234`). Zero is `IPC_PRIVATE`.
    pub const fn raw(key: i32) -> Key {
        Key {
            raw: key,
            path: None,
        }
    }

    /// Test hook (feature `test-hooks`, for this crate's own tests only):
    /// the key `raw` as if `ftok` had made it from a path with this device
    /// and inode (to stand for a colliding path, which is hard to come by
    /// on purpose).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub const fn with_path_identity(raw: i32, dev: u64, ino: u64) -> Key {
        Key {
            raw,
            path: Some((dev, ino)),
        }
    }

    /// `(device, inode)` of the path of an `ftok` key.
    pub const fn path_identity(self) -> Option<(u64, u64)> {
        self.path
    }

    /// `IPC_PRIVATE`: a channel with no key, for a parent and the children it
    /// forks after creating it. It cannot be opened by key.
    pub const fn private() -> Key {
        Key {
            raw: libc::IPC_PRIVATE,
            path: None,
        }
    }

    /// Whether this is `IPC_PRIVATE`.
    pub const fn is_private(self) -> bool {
        self.raw == libc::IPC_PRIVATE
    }

    /// The numeric key.
    pub const fn as_raw(self) -> i32 {
        self.raw
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.raw as u32)
    }
}
