//! Processes: who we are, whether another process lives (and still maps a
//! segment), and the fork counter that tells an endpoint it was inherited.

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
///
/// The handler is registered on the first call, without a lock that a
/// fork could leave held: a `Once` taken by another thread at the moment
/// of a fork stays "running" in the child for ever, and the child's first
/// endpoint would wait for it for ever.
pub fn fork_generation() -> u64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    // 0: not registered; -pid: process pid is registering; +pid: process
    // pid registered (and so did, for its handlers, every child it forked
    // after: fork copies the registration).
    static REGISTRATION: AtomicI64 = AtomicI64::new(0);
    loop {
        // Acquire: pairs with the Release store of +pid below: the
        // handler is registered before an endpoint relies on it.
        let state = REGISTRATION.load(Ordering::Acquire);
        if state > 0 {
            break;
        }
        let me = i64::from(current_pid());
        if state == -me {
            // Another thread of this process is registering: a moment.
            std::thread::yield_now();
            continue;
        }
        // Nobody yet, or a parent was registering when it forked us (it
        // will not finish here, and its handler may or may not be in our
        // image: a second registration only counts our forks twice).
        // AcqRel: one thread of this process wins the right to register.
        if REGISTRATION
            .compare_exchange(state, -me, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // SAFETY: registers a child handler that only increments a
            // static atomic (async-signal-safe); no prepare or parent
            // handler.
            unsafe { libc::pthread_atfork(None, None, Some(count_fork_in_child)) };
            // Release: pairs with the Acquire load above.
            REGISTRATION.store(me, Ordering::Release);
            break;
        }
    }
    forks_seen()
}

/// [`fork_generation`] without the registration check, for the fast path
/// of an endpoint that called `fork_generation` when it was made.
#[inline]
pub fn forks_seen() -> u64 {
    // Relaxed: see count_fork_in_child.
    FORKS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The inode of the calling process's pid namespace (`/proc/self/ns/pid`),
/// or 0 when it cannot be read: pids mean the same only within one.
pub fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
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
