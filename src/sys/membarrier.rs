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
