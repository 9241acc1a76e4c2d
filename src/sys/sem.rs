//! System V semaphore sets: `semget`, `semop`, `semtimedop`, `semctl`.

use super::{IpcError, Key};
use std::mem::MaybeUninit;
use std::time::Duration;

/// `SEM_UNDO`: the kernel reverses this operation when the process exits.
pub const SEM_UNDO: i16 = libc::SEM_UNDO as i16;
const IPC_NOWAIT: i16 = libc::IPC_NOWAIT as i16;

extern "C" {
    // glibc has semtimedop; the libc crate does not declare it.
    fn semtimedop(
        semid: libc::c_int,
        sops: *mut libc::sembuf,
        nsops: libc::size_t,
        timeout: *const libc::timespec,
    ) -> libc::c_int;
}

/// One operation of a `semop` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemOp {
    /// Index of the semaphore in the set.
    pub num: u16,
    /// Amount to add (positive), take (negative, waits while it would go
    /// below zero) or 0 (waits until the value is zero).
    pub op: i16,
    /// `SEM_UNDO` and/or `IPC_NOWAIT`.
    pub flags: i16,
}

impl SemOp {
    /// Adds `n` (never blocks).
    pub const fn post(num: u16, n: i16) -> SemOp {
        SemOp {
            num,
            op: n,
            flags: 0,
        }
    }
    /// Takes `n`, waiting while the value is below `n`.
    pub const fn wait(num: u16, n: i16) -> SemOp {
        SemOp {
            num,
            op: -n,
            flags: 0,
        }
    }
    /// Waits until the value is zero.
    pub const fn wait_zero(num: u16) -> SemOp {
        SemOp {
            num,
            op: 0,
            flags: 0,
        }
    }
    /// The same operation, undone by the kernel when this process exits.
    pub const fn undo(self) -> SemOp {
        SemOp {
            flags: self.flags | SEM_UNDO,
            ..self
        }
    }
    /// The same operation, failing with `WouldBlock` instead of waiting.
    pub const fn no_wait(self) -> SemOp {
        SemOp {
            flags: self.flags | IPC_NOWAIT,
            ..self
        }
    }
    fn raw(self) -> libc::sembuf {
        libc::sembuf {
            sem_num: self.num,
            sem_op: self.op,
            sem_flg: self.flags,
        }
    }
}

/// What `IPC_STAT` reports of a semaphore set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemStat {
    /// Number of semaphores in the set.
    pub nsems: u64,
    /// Uid of the owner.
    pub uid: u32,
    /// Uid of the creator.
    pub creator_uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Time of the last `semop`, seconds since the epoch (0 if never).
    pub op_time: i64,
}

/// A semaphore set, known by its id. Dropping it does nothing: the set lives
/// until [`SemSet::remove`] (or `ipcrm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemSet {
    id: i32,
}

impl SemSet {
    /// Creates a new set of `nsems` semaphores at `key`, failing with
    /// [`IpcError::AlreadyExists`] if one is there. Values start at zero on
    /// Linux; callers still initialise them before publishing the set.
    pub fn create(key: Key, nsems: u16, mode: u32) -> Result<SemSet, IpcError> {
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as i32;
        // SAFETY: semget takes plain integers.
        let id = unsafe { libc::semget(key.as_raw(), i32::from(nsems), flags) };
        if id < 0 {
            return Err(IpcError::last());
        }
        Ok(SemSet { id })
    }

    /// Opens the set that exists at `key`.
    pub fn open(key: Key) -> Result<SemSet, IpcError> {
        if key.is_private() {
            return Err(IpcError::NotFound);
        }
        // SAFETY: semget takes plain integers.
        let id = unsafe { libc::semget(key.as_raw(), 0, 0) };
        if id < 0 {
            return Err(IpcError::last());
        }
        Ok(SemSet { id })
    }

    /// A set known by id.
    pub fn from_id(id: i32) -> SemSet {
        SemSet { id }
    }

    /// The set id.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// `semop`: performs all `ops` atomically, waiting as they require.
    /// Returns [`IpcError::Interrupted`] on a signal (callers retry),
    /// [`IpcError::WouldBlock`] for a `no_wait` op that would wait, and
    /// [`IpcError::Removed`] if the set is removed meanwhile.
    pub fn op(&self, ops: &[SemOp]) -> Result<(), IpcError> {
        let mut raw: Vec<libc::sembuf> = ops.iter().map(|o| o.raw()).collect();
        // SAFETY: raw is a valid array of raw.len() sembufs for the call.
        let r = unsafe { libc::semop(self.id, raw.as_mut_ptr(), raw.len()) };
        if r < 0 {
            return Err(IpcError::last());
        }
        Ok(())
    }

    /// `semtimedop`: like [`SemSet::op`], but gives up after `timeout` with
    /// [`IpcError::WouldBlock`].
    pub fn timed_op(&self, ops: &[SemOp], timeout: Duration) -> Result<(), IpcError> {
        let mut raw: Vec<libc::sembuf> = ops.iter().map(|o| o.raw()).collect();
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: raw is a valid array of raw.len() sembufs and ts a valid
        // timespec, both alive for the call.
        let r = unsafe { semtimedop(self.id, raw.as_mut_ptr(), raw.len(), &ts) };
        if r < 0 {
            return Err(IpcError::last());
        }
        Ok(())
    }

    /// `GETVAL`: the current value of semaphore `num`.
    pub fn value(&self, num: u16) -> Result<i32, IpcError> {
        // SAFETY: GETVAL takes no fourth argument.
        let r = unsafe { libc::semctl(self.id, i32::from(num), libc::GETVAL) };
        if r < 0 {
            return Err(IpcError::last());
        }
        Ok(r)
    }

    /// `SETVAL`: sets semaphore `num` to `value`.
    pub fn set_value(&self, num: u16, value: i32) -> Result<(), IpcError> {
        // SAFETY: SETVAL's fourth argument (union semun) is passed as its int
        // member, which is how the C ABI passes the union.
        let r = unsafe { libc::semctl(self.id, i32::from(num), libc::SETVAL, value) };
        if r < 0 {
            return Err(IpcError::last());
        }
        Ok(())
    }

    fn stat_raw(&self) -> Result<libc::semid_ds, IpcError> {
        let mut ds = MaybeUninit::<libc::semid_ds>::zeroed();
        // SAFETY: IPC_STAT's fourth argument (union semun) is its `buf`
        // member, a pointer to a writable semid_ds.
        let r = unsafe { libc::semctl(self.id, 0, libc::IPC_STAT, ds.as_mut_ptr()) };
        if r < 0 {
            return Err(IpcError::last());
        }
        // SAFETY: IPC_STAT succeeded and filled the struct; zeroed is valid too.
        Ok(unsafe { ds.assume_init() })
    }

    /// `IPC_STAT`: size, owner, mode and last operation time.
    pub fn stat(&self) -> Result<SemStat, IpcError> {
        let ds = self.stat_raw()?;
        Ok(SemStat {
            nsems: ds.sem_nsems,
            uid: ds.sem_perm.uid,
            creator_uid: ds.sem_perm.cuid,
            mode: u32::from(ds.sem_perm.mode) & 0o777,
            op_time: ds.sem_otime,
        })
    }

    /// `IPC_SET`: changes the permission bits.
    pub fn set_mode(&self, mode: u32) -> Result<(), IpcError> {
        let mut ds = self.stat_raw()?;
        ds.sem_perm.mode = (mode & 0o777) as u16;
        // SAFETY: IPC_SET's fourth argument is a pointer to a valid semid_ds.
        let r = unsafe { libc::semctl(self.id, 0, libc::IPC_SET, &mut ds as *mut libc::semid_ds) };
        if r < 0 {
            return Err(IpcError::last());
        }
        Ok(())
    }

    /// `IPC_RMID`: removes the set at once; every waiter wakes with
    /// [`IpcError::Removed`].
    pub fn remove(&self) -> Result<(), IpcError> {
        // SAFETY: IPC_RMID takes no fourth argument.
        let r = unsafe { libc::semctl(self.id, 0, libc::IPC_RMID) };
        if r < 0 {
            return Err(IpcError::last());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semop_undo_and_timeout() {
        let set = SemSet::create(Key::private(), 2, 0o600).unwrap();
        struct Rm(SemSet);
        impl Drop for Rm {
            fn drop(&mut self) {
                let _ = self.0.remove();
            }
        }
        let _rm = Rm(set);
        assert_eq!(set.value(0).unwrap(), 0);
        set.op(&[SemOp::post(0, 3)]).unwrap();
        assert_eq!(set.value(0).unwrap(), 3);
        // wait-for-zero with no_wait fails while the value is 3
        assert_eq!(
            set.op(&[SemOp::wait_zero(0).no_wait()]),
            Err(IpcError::WouldBlock)
        );
        let t = std::time::Instant::now();
        assert_eq!(
            set.timed_op(&[SemOp::wait(1, 1)], Duration::from_millis(50)),
            Err(IpcError::WouldBlock)
        );
        assert!(t.elapsed() >= Duration::from_millis(45));
        set.set_value(1, 7).unwrap();
        assert_eq!(set.value(1).unwrap(), 7);
        assert_eq!(set.stat().unwrap().nsems, 2);
        set.remove().unwrap();
        assert_eq!(set.value(0), Err(IpcError::InvalidArgument));
    }
}
