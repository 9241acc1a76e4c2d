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

/// Whether process `pid` exists and has System V segment `shm_id` mapped.
///
/// Read from `/proc/<pid>/maps`, where a System V segment shows as
/// `/SYSV<key>` with the segment id as its inode. A zombie (killed, not yet
/// reaped) has no mappings, so it is not attached. When the maps cannot be
/// read for another reason than the process being gone (no `/proc`, no
/// permission), the answer is whether the process exists: a live process
/// is never taken for dead.
pub fn process_attached(pid: i32, shm_id: i32) -> bool {
    if !process_exists(pid) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/maps")) {
        Ok(maps) => {
            let id = shm_id.to_string();
            maps.lines().any(|line| {
                let mut fields = line.split_whitespace().skip(4);
                let inode = fields.next();
                let path = fields.next();
                inode == Some(id.as_str()) && path.is_some_and(|p| p.starts_with("/SYSV"))
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(_) => true,
    }
}

/// Pins the calling thread to one CPU. Fails if the CPU does not exist or
/// is not allowed.
pub fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes a bit inside `set` (it checks the index).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: set is a valid cpu_set_t of the size given.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The CPUs this process may run on (its affinity mask), in order.
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid, writable cpu_set_t of the size given.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET reads a bit inside `set` (i < its size in bits).
    Ok((0..max)
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect())
}

/// Lets this process run on exactly `cpus`.
pub fn set_allowed_cpus(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: CPU_SET writes a bit inside `set` (it checks the index).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: set is a valid cpu_set_t of the size given.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Number of CPUs this process may run on.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
