//! System V shared memory segments: `shmget`, `shmat`, `shmdt`, `shmctl`.

use super::{IpcError, Key};
use std::mem::MaybeUninit;
use std::ptr::NonNull;

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n <= 0 {
        4096
    } else {
        n as usize
    }
}

/// A shared memory segment, known by its id. Dropping it does nothing: the
/// segment lives until [`Shm::remove`] (or `ipcrm`) and its last detach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shm {
    id: i32,
}

/// What `IPC_STAT` reports of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmStat {
    /// The key it was created under (0 once it is marked for removal).
    pub key: i32,
    /// Size in bytes as requested at creation.
    pub size: usize,
    /// Number of current attachments.
    pub nattch: u64,
    /// Pid of the creating process.
    pub creator_pid: i32,
    /// Pid of the last `shmat`/`shmdt`.
    pub last_pid: i32,
    /// Uid of the creator.
    pub creator_uid: u32,
    /// Uid of the owner.
    pub uid: u32,
    /// Gid of the owner.
    pub gid: u32,
    /// Permission bits (`0o777`).
    pub mode: u32,
    /// Whether the segment is marked for removal (`SHM_DEST`).
    pub removed: bool,
    /// Time of the last change (creation or `IPC_SET`), seconds since the epoch.
    pub change_time: i64,
}

/// `SHM_DEST` from the kernel headers (not exported by `libc`).
const SHM_DEST: u16 = 0o1000;

impl Shm {
    /// Creates a new segment at `key` of at least `size` bytes (rounded up
    /// to whole pages), failing with [`IpcError::AlreadyExists`] if one is
    /// there. The memory starts zeroed.
    pub fn create(key: Key, size: usize, mode: u32) -> Result<Shm, IpcError> {
        let page = page_size();
        let size = size.checked_add(page - 1).ok_or(IpcError::TooBig)? / page * page;
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as i32;
        // SAFETY: shmget takes plain integers and has no memory preconditions.
        let id = unsafe { libc::shmget(key.as_raw(), size, flags) };
        if id < 0 {
            return Err(IpcError::last());
        }
        Ok(Shm { id })
    }

    /// Opens the segment that exists at `key`.
    pub fn open(key: Key) -> Result<Shm, IpcError> {
        if key.is_private() {
            return Err(IpcError::NotFound);
        }
        // SAFETY: shmget takes plain integers and has no memory preconditions.
        let id = unsafe { libc::shmget(key.as_raw(), 0, 0) };
        if id < 0 {
            return Err(IpcError::last());
        }
        Ok(Shm { id })
    }

    /// A segment known by id (for example from `/proc/sysvipc/shm`).
    pub fn from_id(id: i32) -> Shm {
        Shm { id }
    }

    /// The segment id.
    pub fn id(&self) -> i32 {
        self.id
    }

    fn stat_raw(&self) -> Result<libc::shmid_ds, IpcError> {
        let mut ds = MaybeUninit::<libc::shmid_ds>::zeroed();
        // SAFETY: ds points to a writable shmid_ds that IPC_STAT fills in.
        let r = unsafe { libc::shmctl(self.id, libc::IPC_STAT, ds.as_mut_ptr()) };
        if r < 0 {
            return Err(IpcError::last());
        }
        // SAFETY: shmctl(IPC_STAT) succeeded and filled the struct; zeroed is valid too.
        Ok(unsafe { ds.assume_init() })
    }

    /// `IPC_STAT`: size, attachments, creator, owner and mode.
    pub fn stat(&self) -> Result<ShmStat, IpcError> {
        let ds = self.stat_raw()?;
        Ok(ShmStat {
            key: ds.shm_perm.__key,
            size: ds.shm_segsz,
            nattch: ds.shm_nattch,
            creator_pid: ds.shm_cpid,
            last_pid: ds.shm_lpid,
            creator_uid: ds.shm_perm.cuid,
            uid: ds.shm_perm.uid,
            gid: ds.shm_perm.gid,
            mode: u32::from(ds.shm_perm.mode) & 0o777,
            removed: ds.shm_perm.mode & SHM_DEST != 0,
            change_time: ds.shm_ctime,
        })
    }

    /// `IPC_SET`: changes the permission bits.
    pub fn set_mode(&self, mode: u32) -> Result<(), IpcError> {
        let mut ds = self.stat_raw()?;
        ds.shm_perm.mode = (mode & 0o777) as u16;
        // SAFETY: ds is a valid shmid_ds obtained from IPC_STAT.
        let r = unsafe { libc::shmctl(self.id, libc::IPC_SET, &mut ds) };
        if r < 0 {
            return Err(IpcError::last());
        }
        Ok(())
    }

    /// Maps the segment read-write into this process.
    pub fn attach(&self) -> Result<Attachment, IpcError> {
        self.attach_with(0)
    }

    /// Maps the segment read-only into this process.
    pub fn attach_read_only(&self) -> Result<Attachment, IpcError> {
        self.attach_with(libc::SHM_RDONLY)
    }

    fn attach_with(&self, flags: i32) -> Result<Attachment, IpcError> {
        let len = self.stat()?.size;
        // SAFETY: a null address lets the kernel choose where to map; no
        // existing Rust memory is affected.
        let p = unsafe { libc::shmat(self.id, std::ptr::null(), flags) };
        if p as isize == -1 {
            return Err(IpcError::last());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(IpcError::InvalidArgument)?;
        Ok(Attachment {
            ptr,
            len,
            read_only: flags & libc::SHM_RDONLY != 0,
        })
    }

    /// `IPC_RMID`: marks the segment for removal. Its key is freed at once;
    /// the memory goes when the last attachment detaches.
    pub fn remove(&self) -> Result<(), IpcError> {
        // SAFETY: IPC_RMID ignores the buffer argument.
        let r = unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
        if r < 0 {
            return Err(IpcError::last());
        }
        Ok(())
    }
}

/// A mapping of a segment into this process; detached on drop.
///
/// The memory is shared with other processes, which may write to it at any
/// time: code above this module treats every byte as untrusted.
#[derive(Debug)]
pub struct Attachment {
    ptr: NonNull<u8>,
    len: usize,
    read_only: bool,
}

// SAFETY: the mapping is process-wide, not tied to the thread that made it;
// all access to its contents goes through atomics or explicitly unsafe code
// that states its own synchronisation.
unsafe impl Send for Attachment {}
// SAFETY: as above; &Attachment only hands out the raw pointer and length.
unsafe impl Sync for Attachment {}

impl Attachment {
    /// Start of the mapping (page-aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Start of the mapping (page-aligned), non-null.
    pub fn base(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Length of the mapping in bytes (the segment's size).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping was made with `SHM_RDONLY`.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // SAFETY: ptr came from a successful shmat and is detached only here.
        unsafe {
            libc::shmdt(self.ptr.as_ptr().cast());
        }
    }
}
