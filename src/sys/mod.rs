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

/// Forks this process has been the child of (counted by a `pthread_atfork`
/// handler, registered on the first call of [`fork_generation`]).
static FORKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn count_fork_in_child() {
    // Relaxed: read only by this process's threads after the fork returned.
    FORKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// A number that changes in a child created by `fork` (through libc's
/// `fork`, which runs `pthread_atfork` handlers; a raw `clone` system call
/// is not seen). An endpoint records it when made and compares it on each
/// operation: a relaxed load instead of a `getpid` system call.
pub fn fork_generation() -> u64 {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a child handler that only increments a static
        // atomic (async-signal-safe); no prepare or parent handler.
        unsafe { libc::pthread_atfork(None, None, Some(count_fork_in_child)) };
    });
    forks_seen()
}

/// [`fork_generation`] without the registration check, for the fast path
/// of an endpoint that called `fork_generation` when it was made.
#[inline]
pub fn forks_seen() -> u64 {
    // Relaxed: see count_fork_in_child.
    FORKS.load(std::sync::atomic::Ordering::Relaxed)
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

/// Whether process `pid` may still use System V segment `shm_id`: false
/// only when it is proven gone or detached.
///
/// - The pid does not exist (`kill(pid, 0)` gives `ESRCH`): gone.
/// - `/proc/<pid>/maps` lists mappings but none of the segment (a System V
///   segment shows as `/SYSV<key>` with the segment id as its inode): the
///   process detached, or the pid now belongs to another program.
/// - It lists nothing: a killed process not yet reaped (a zombie) maps
///   nothing, but so does a process whose main thread exited while other
///   threads run; then the threads' own maps (`/proc/<pid>/task/*/maps`)
///   decide, and with none that lists anything the process is gone.
/// - The maps cannot be read (no `/proc`, `hidepid`, another user's
///   process): alive, as long as the pid exists. A live process is never
///   taken for dead.
///
/// Pids are those of the caller's pid namespace: processes in other pid
/// namespaces cannot be told apart this way.
pub fn process_attached(pid: i32, shm_id: i32) -> bool {
    if !process_exists(pid) {
        return false;
    }
    let id = shm_id.to_string();
    // Some(true): maps the segment; Some(false): maps other things only;
    // None: maps nothing, or unreadable.
    let look = |path: &str| -> Result<Option<bool>, std::io::Error> {
        let maps = std::fs::read_to_string(path)?;
        if maps.is_empty() {
            return Ok(None);
        }
        Ok(Some(maps.lines().any(|line| {
            let mut fields = line.split_whitespace().skip(4);
            let inode = fields.next();
            let path = fields.next();
            inode == Some(id.as_str()) && path.is_some_and(|p| p.starts_with("/SYSV"))
        })))
    };
    match look(&format!("/proc/{pid}/maps")) {
        Ok(Some(mapped)) => mapped,
        Ok(None) => {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                return process_exists(pid);
            };
            // A live thread that maps the segment keeps the process alive;
            // threads that list other mappings only: detached; no thread
            // that lists anything: a zombie, gone.
            tasks.flatten().any(|task| {
                matches!(
                    look(&format!("{}/maps", task.path().display())),
                    Ok(Some(true))
                )
            })
        }
        // The pid may have exited just now, or /proc hides it from us.
        Err(_) => process_exists(pid),
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process of the
/// machine, so timestamps can cross processes.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// CPU time the calling thread has used, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec; both clocks exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A connected pair of Unix sequenced-packet sockets (message boundaries
/// kept, like a pipe that preserves writes).
pub fn seqpacket_pair() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints for the new descriptors.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: socketpair succeeded: both fds are open and owned by nobody
    // else.
    unsafe {
        Ok((
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        ))
    }
}

/// Anonymous shared memory: made before a `fork`, the parent and its
/// children see the same bytes. Page-aligned, zero-filled, unmapped on
/// drop.
#[derive(Debug)]
pub struct SharedMemory {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

impl SharedMemory {
    /// Maps `len` bytes (rounded up to pages by the kernel).
    pub fn new(len: usize) -> std::io::Result<SharedMemory> {
        // SAFETY: an anonymous shared mapping at an address of the kernel's
        // choice; no file descriptor, no existing memory involved.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(p.cast::<u8>()).expect("mmap returned null");
        Ok(SharedMemory { ptr, len })
    }

    /// The start of the mapping (page-aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty (never: `mmap` refuses a zero length).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// `membarrier(2)` commands (from `linux/membarrier.h`).
const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_long = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_long = 1 << 2;

fn membarrier(cmd: libc::c_long) -> libc::c_long {
    // SAFETY: membarrier takes two integer arguments (cmd, flags = 0) and
    // touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_long) }
}

/// Registers the calling process for `membarrier`'s global expedited
/// barriers, once per process (a forked child registers again); returns
/// whether it is registered. False on kernels before 4.16 or where a
/// seccomp filter forbids the call.
pub fn membarrier_register() -> bool {
    use std::sync::atomic::{AtomicI64, Ordering};
    // The pid of the process that registered (0: none yet). A failure is
    // not remembered: a later call tries again.
    static REGISTERED: AtomicI64 = AtomicI64::new(0);
    let pid = i64::from(current_pid());
    // Relaxed: a plain cache of a per-process fact; a race registers twice,
    // which is harmless.
    if REGISTERED.load(Ordering::Relaxed) == pid {
        return true;
    }
    if !membarrier_supported() {
        return false;
    }
    if membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0 {
        return false;
    }
    REGISTERED.store(pid, Ordering::Relaxed);
    true
}

/// Whether the kernel offers global expedited barriers (asked once per
/// process). Where it does not, no process can register for them, so no
/// waker uses the light fence.
fn membarrier_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let q = membarrier(MEMBARRIER_CMD_QUERY);
        q >= 0 && q & MEMBARRIER_CMD_GLOBAL_EXPEDITED != 0
    })
}

/// Issues a global expedited memory barrier: on return, every thread of
/// every process registered with [`membarrier_register`] that was running
/// has executed a full memory barrier (and the others will at their next
/// context switch), after this thread's preceding memory accesses.
///
/// Returns false only when a light-fenced waker may exist and the barrier
/// could not be issued (the kernel offers it, but the call failed here, as
/// under a seccomp filter that refuses it). On a kernel without it there is
/// nothing to issue: no process can have registered, so every waker keeps
/// the full fence, and this returns true.
pub fn membarrier_global() -> bool {
    !membarrier_supported() || membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0
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
