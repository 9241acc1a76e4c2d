//! `futex(2)` on a word of the shared segment: how an MPSC sender sleeps
//! (see `ring::mpsc::sleepers`). The futexes are not private: the word is
//! in memory that other processes map, at other addresses, and the kernel
//! keys a shared futex on the page it lies in, not on the address.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// How a futex wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// Woken by a `FUTEX_WAKE`, or the word no longer held the expected
    /// value when the call began (`EAGAIN`): a waker has been here.
    Yes,
    /// The timeout passed, or a signal interrupted the wait.
    No,
    /// The call failed (`ENOSYS`, a seccomp filter's `EPERM`, …): it did
    /// not wait at all.
    Failed,
}

/// Sleeps while `word` holds `expected`, for at most `timeout` (`None`:
/// no limit) (`FUTEX_WAIT`, shared). The check and the sleep are one step
/// in the kernel: a waker that changes the word and then calls
/// [`futex_wake`] cannot be missed.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Woken {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT reads the u32 at `word` (a live atomic, which the
    // reference keeps alive for the call) and the timespec `ts_ptr` points
    // to (`ts`, alive until the call returns) or none (null); it writes no
    // memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if r == 0 {
        return Woken::Yes;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => Woken::Yes,
        Some(libc::ETIMEDOUT | libc::EINTR) => Woken::No,
        _ => Woken::Failed,
    }
}

/// Wakes every thread sleeping in [`futex_wait`] on `word` (`FUTEX_WAKE`,
/// shared); returns how many were woken.
pub fn futex_wake(word: &AtomicU32) -> u32 {
    // SAFETY: FUTEX_WAKE only uses `word`'s address as a key; it reads and
    // writes no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    r.max(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_changed_word_returns_at_once_and_a_wake_ends_a_wait() {
        let word = Arc::new(AtomicU32::new(0));
        assert_eq!(futex_wait(&word, 1, None), Woken::Yes);
        let t = Instant::now();
        assert_eq!(
            futex_wait(&word, 0, Some(Duration::from_millis(20))),
            Woken::No
        );
        assert!(t.elapsed() >= Duration::from_millis(20));
        word.store(1, Ordering::Relaxed);
        let sleeper = {
            let word = word.clone();
            std::thread::spawn(move || futex_wait(&word, 1, Some(Duration::from_secs(30))))
        };
        // Until the sleeper is in the kernel, a wake finds nobody; then
        // one wake ends its wait.
        while futex_wake(&word) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(sleeper.join().unwrap(), Woken::Yes);
    }
}
