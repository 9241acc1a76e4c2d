//! `membarrier(2)`: the heavy half of the asymmetric fence of the wake
//! protocol (see `ring::wake::claim_with`).

use super::process::current_pid;

/// `membarrier(2)` commands (from `linux/membarrier.h`).
const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_long = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_long = 1 << 2;

fn membarrier(cmd: libc::c_long) -> libc::c_long {
    // SAFETY: membarrier takes two integer arguments (cmd, flags = 0) and
    // touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_long) }
}

/// What the kernel said of global expedited barriers, asked once per
/// process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Support {
    /// Offered: processes may register, wakers may use the light fence.
    Offered,
    /// Not offered (the query answered without the command): no process
    /// can have registered, so every waker keeps the full fence.
    Absent,
    /// The query failed (a seccomp filter, or a kernel before 4.3): other
    /// processes may well have registered, and we cannot issue barriers.
    Unknown,
}

/// Not a `OnceLock`: a child forked while another thread of its parent
/// was asking would wait for ever for an answer no thread of its own gives.
/// Threads that race ask the kernel twice and store the same answer.
fn support() -> Support {
    use std::sync::atomic::{AtomicU8, Ordering};
    // 0: not asked yet; else 1 + the answer's index.
    static SUPPORT: AtomicU8 = AtomicU8::new(0);
    const ANSWERS: [Support; 3] = [Support::Offered, Support::Absent, Support::Unknown];
    // Relaxed: a cache of a fact about the kernel and this process's
    // filters, the same for every thread.
    if let Some(&s) = ANSWERS.get(usize::from(SUPPORT.load(Ordering::Relaxed)).wrapping_sub(1)) {
        return s;
    }
    let s = match membarrier(MEMBARRIER_CMD_QUERY) {
        q if q < 0 => Support::Unknown,
        q if q & MEMBARRIER_CMD_GLOBAL_EXPEDITED != 0 => Support::Offered,
        _ => Support::Absent,
    };
    let code = 1 + ANSWERS.iter().position(|&a| a == s).unwrap_or(2) as u8;
    SUPPORT.store(code, Ordering::Relaxed);
    s
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
    if support() != Support::Offered {
        return false;
    }
    if membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0 {
        return false;
    }
    REGISTERED.store(pid, Ordering::Relaxed);
    true
}

/// Issues a global expedited memory barrier: on return, every thread of
/// every process registered with [`membarrier_register`] that was running
/// has executed a full memory barrier (and the others will at their next
/// context switch), after this thread's preceding memory accesses.
///
/// Returns false when a light-fenced waker may exist and the barrier was
/// not issued: the call failed, or the query of what the kernel offers
/// failed (as under a seccomp filter that refuses `membarrier`; another
/// process, unconfined, may have registered). Only where the kernel
/// answered that it does not offer the barrier is there nothing to issue
/// (no process can have registered): true.
pub fn membarrier_global() -> bool {
    match support() {
        Support::Absent => true,
        Support::Unknown => false,
        Support::Offered => membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0,
    }
}
