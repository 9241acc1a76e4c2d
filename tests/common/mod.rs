//! Support for the integration tests: unique keys, a guard that removes a
//! channel's IPC objects even when the test fails, and child processes.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use shmchan::{Channel, Key};

/// A key no other test (in this or a parallel test process) uses: the pid
/// in the high bits, a per-process counter in the low bits.
pub fn unique_key() -> Key {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(n <= 0xff, "more than 255 keys in one test process");
    let pid = std::process::id();
    // 0x4000_0000 | pid (22 bits) << 8 | n (8 bits): positive, never 0;
    // a test process must not take more than 256 keys.
    let raw = 0x4000_0000u32 | ((pid & 0x3f_ffff) << 8) | (n & 0xff);
    Key::raw(raw as i32)
}

/// Removes whatever is at `key` (segment and semaphore set) when dropped.
pub struct KeyGuard(pub Key);

impl Drop for KeyGuard {
    fn drop(&mut self) {
        remove_raw(self.0);
    }
}

/// The id of the segment at `key`, if there is one.
pub fn shm_at(key: Key) -> Option<i32> {
    // SAFETY: a lookup by integer key; no memory is passed.
    let id = unsafe { libc::shmget(key.as_raw(), 0, 0) };
    (id >= 0).then_some(id)
}

/// The id of the semaphore set at `key`, if there is one.
pub fn sem_at(key: Key) -> Option<i32> {
    // SAFETY: a lookup by integer key; no memory is passed.
    let id = unsafe { libc::semget(key.as_raw(), 0, 0) };
    (id >= 0).then_some(id)
}

/// Removes the segment and the semaphore set at `key`, ours or not.
pub fn remove_raw(key: Key) {
    if let Some(shm) = shm_at(key) {
        // SAFETY: IPC_RMID on an id takes no buffer; failure is ignored.
        unsafe { libc::shmctl(shm, libc::IPC_RMID, std::ptr::null_mut()) };
    }
    if let Some(sem) = sem_at(key) {
        // SAFETY: IPC_RMID on an id takes no fourth argument; failure is ignored.
        unsafe { libc::semctl(sem, 0, libc::IPC_RMID) };
    }
}

/// Forks a child that opens the channel at `ch`'s key, becomes its
/// receiver and sleeps in `recv` (spin limit 0); returns once the child is
/// asleep on the data semaphore. The child panics if `recv` ever returns.
pub fn spawn_receiver_asleep(ch: &Channel) -> Child {
    let key = ch.key();
    let child = spawn(move || {
        let ch = Channel::open(key).unwrap();
        let mut rx = ch.receiver().unwrap();
        rx.set_spin_limit(0);
        let _ = rx.recv();
        panic!("recv returned")
    });
    assert!(
        wait_until(Duration::from_secs(10), || sem_ncnt(ch.sem_id(), SEM_DATA)
            >= 1),
        "the receiver never slept in recv"
    );
    child
}

/// Whether anything exists at `key`.
pub fn key_in_use(key: Key) -> bool {
    shm_at(key).is_some() || sem_at(key).is_some()
}

/// A child process running `f`; killed and reaped on drop if still running.
pub struct Child {
    pub pid: Pid,
    reaped: Option<i32>,
}

/// The pid of the test process (set with the panic hook, before the first
/// fork).
static HARNESS_PID: AtomicU32 = AtomicU32::new(0);

/// Installs, once and before any fork, a panic hook that in a forked child
/// writes the panic straight to fd 2 (the harness captures a test thread's
/// output into the parent's memory; a child's copy of that buffer is lost)
/// and in the test process itself defers to the hook it replaced.
///
/// Installing it in the child instead would take the hook's lock after the
/// fork: if another test thread was panicking at that moment (its hook
/// running, the lock held), the child would wait for it for ever.
fn install_child_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        HARNESS_PID.store(std::process::id(), Ordering::Relaxed);
        let harness = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::process::id() == HARNESS_PID.load(Ordering::Relaxed) {
                return harness(info);
            }
            let msg = format!("[child {}] {info}\n", std::process::id());
            // SAFETY: writes a valid buffer to fd 2.
            unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
        }));
    });
}

/// Forks a child that runs `f` and exits with its return value (101 if it
/// panics). The child never returns into the test harness.
pub fn spawn(f: impl FnOnce() -> i32) -> Child {
    install_child_panic_hook();
    // SAFETY: the child only runs `f` and then `_exit`s; the test harness's
    // other threads are not touched in the child (they do not exist there).
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            // SAFETY: _exit ends the child without running the parent's
            // atexit handlers or destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => Child {
            pid: child,
            reaped: None,
        },
    }
}

/// Runs `f` in a forked child and asserts that it succeeded (its panic,
/// if any, is printed above): for the checks of a segment's attachment
/// count. A child inherits every attachment of the moment it is forked,
/// so another test thread's child counts as one more attachment of this
/// test's segment; in a child of its own (one thread, which forks nothing
/// while `f` runs) the count is exact.
pub fn in_child(f: impl FnOnce()) {
    let mut kid = spawn(|| {
        f();
        0
    });
    assert_eq!(
        kid.wait_timeout(Duration::from_secs(120)),
        0,
        "the test's child failed"
    );
}

impl Child {
    /// The child's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Waits for the child and returns its exit code (128 + signal if killed).
    pub fn wait(&mut self) -> i32 {
        if let Some(c) = self.reaped {
            return c;
        }
        let code = loop {
            match waitpid(self.pid, None) {
                Ok(WaitStatus::Exited(_, c)) => break c,
                Ok(WaitStatus::Signaled(_, s, _)) => break 128 + s as i32,
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => panic!("waitpid: {e}"),
            }
        };
        self.reaped = Some(code);
        code
    }

    /// Waits at most `limit` for the child; kills it and panics if it is
    /// still running then.
    pub fn wait_timeout(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(c) = self.reaped {
                return c;
            }
            match waitpid(self.pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, c)) => {
                    self.reaped = Some(c);
                }
                Ok(WaitStatus::Signaled(_, s, _)) => {
                    self.reaped = Some(128 + s as i32);
                }
                _ => {
                    if Instant::now() > deadline {
                        self.kill();
                        panic!("child {} still running after {limit:?}", self.pid);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill(&mut self) {
        if self.reaped.is_none() {
            let _ = kill(self.pid, Signal::SIGKILL);
            self.wait();
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Creates a channel at a fresh key with `options`, and a guard for it.
pub fn fresh(options: shmchan::Options) -> (Channel, KeyGuard) {
    let key = unique_key();
    let guard = KeyGuard(key);
    let ch = Channel::create(key, options).expect("create");
    (ch, guard)
}

/// The payload of message `seq`: a length in 0..=max and bytes derived
/// from the sequence number.
pub fn payload(seq: u64, max: usize) -> Vec<u8> {
    let len = (seq.wrapping_mul(2_654_435_761) % (max as u64 + 1)) as usize;
    let mut v = Vec::with_capacity(len);
    let mut x = seq ^ 0x9e37_79b9_7f4a_7c15;
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x as u8);
    }
    v
}

// ---------------------------------------------------------------------------
// Helpers added for the integration suite (transfer, blocking, liveness,
// open_errors).
// ---------------------------------------------------------------------------

/// Semaphore numbers of a channel's set (the format's, `shmchan::layout`):
/// the data doorbell (receivers sleep on it), the space doorbell (senders
/// sleep on it), live senders, live receivers.
/// (Each test binary uses some of them, as of the helpers here.)
#[allow(unused_imports)]
pub use shmchan::layout::{SEM_DATA, SEM_RECEIVERS, SEM_SENDERS, SEM_SPACE};

/// `CLOCK_MONOTONIC` in nanoseconds: comparable between processes.
pub fn mono_ns() -> u64 {
    shmchan_bench::os::monotonic_ns()
}

/// Polls `cond` (every ~100 µs) until it holds or `limit` passes; returns
/// whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// `GETNCNT`: how many processes sleep in `semop` waiting for semaphore
/// `num` of set `semid` to increase (-1 if the set is gone).
pub fn sem_ncnt(semid: i32, num: u16) -> i32 {
    // SAFETY: GETNCNT takes no fourth argument.
    unsafe { libc::semctl(semid, i32::from(num), libc::GETNCNT) }
}

/// Whether (single-threaded) process `pid` sleeps in the kernel now: the
/// state in `/proc/PID/stat` is `S` (interruptible sleep: a futex or
/// semaphore wait, never a process that spins or was preempted, which is
/// `R`). For the sleeps that no semaphore count shows (a futex wait).
pub fn kernel_asleep(pid: Pid) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) S ...": the state follows the last ')' (comm may hold
    // any byte).
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        == Some("S")
}

/// `GETVAL` of semaphore `num` of set `semid` (-1 if the set is gone).
pub fn sem_val(semid: i32, num: u16) -> i32 {
    // SAFETY: GETVAL takes no fourth argument.
    unsafe { libc::semctl(semid, i32::from(num), libc::GETVAL) }
}

/// Blocks until the process is killed (for children that must hold an
/// endpoint, a message or a grant until the parent kills them).
pub fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// A one-way "I am ready" signal from children to the parent: a pipe
/// created before the fork, so both sides hold both ends.
pub struct Notify {
    r: i32,
    w: i32,
}

impl Notify {
    pub fn new() -> Notify {
        let mut fds = [0i32; 2];
        // SAFETY: fds is a valid array of two ints.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
        Notify {
            r: fds[0],
            w: fds[1],
        }
    }

    /// Sends one token.
    pub fn notify(&self) {
        let b = [1u8];
        // SAFETY: writes one byte from a valid buffer.
        let n = unsafe { libc::write(self.w, b.as_ptr().cast(), 1) };
        assert_eq!(n, 1, "write to notify pipe");
    }

    /// Waits at most `limit` for one token; returns whether one came.
    pub fn wait(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.r,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: pfd is one valid pollfd.
            let r =
                unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
            if r > 0 {
                let mut b = [0u8];
                // SAFETY: reads one byte into a valid buffer.
                let n = unsafe { libc::read(self.r, b.as_mut_ptr().cast(), 1) };
                return n == 1;
            }
            if r == 0 || left.is_zero() {
                return false;
            }
            // r < 0: EINTR; retry
        }
    }
}

impl Default for Notify {
    fn default() -> Self {
        Notify::new()
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        // SAFETY: closes the two fds this value owns.
        unsafe {
            libc::close(self.r);
            libc::close(self.w);
        }
    }
}

/// Bounds a blocking call in the parent: after `limit`, unless dropped
/// first, it removes the IPC objects at `key` (which makes any blocked
/// endpoint return within a poll interval) and records that it fired; the
/// test then asserts `!fired()`.
pub struct Watchdog {
    stop: Option<std::sync::mpsc::Sender<()>>,
    fired: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    pub fn new(key: Key, limit: Duration) -> Watchdog {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let fired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = fired.clone();
        let thread = std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                f.store(true, Ordering::SeqCst);
                remove_raw(key);
            }
        });
        Watchdog {
            stop: Some(tx),
            fired,
            thread: Some(thread),
        }
    }

    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Creates a plain System V segment of `size` bytes at `key` (not a
/// channel); returns its id.
pub fn plain_segment(key: Key, size: usize) -> i32 {
    // SAFETY: shmget takes plain integers.
    let id = unsafe { libc::shmget(key.as_raw(), size, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
    assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
    id
}

/// Creates a plain semaphore set of `nsems` at `key`; returns its id.
pub fn plain_semset(key: Key, nsems: i32) -> i32 {
    // SAFETY: semget takes plain integers.
    let id = unsafe {
        libc::semget(
            key.as_raw(),
            nsems,
            libc::IPC_CREAT | libc::IPC_EXCL | 0o600,
        )
    };
    assert!(id >= 0, "semget: {}", std::io::Error::last_os_error());
    id
}

/// Attaches the segment at `key` through a raw `shmat` and runs `f` on all
/// of its bytes (read-write), then detaches.
pub fn with_raw_segment<R>(key: Key, f: impl FnOnce(&mut [u8]) -> R) -> R {
    // SAFETY: plain System V calls; the slice covers exactly the mapping
    // (shm_segsz bytes) and does not outlive it. Other processes may write
    // the memory meanwhile; the tests only touch it while no peer does.
    unsafe {
        let id = libc::shmget(key.as_raw(), 0, 0);
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
        let mut ds: libc::shmid_ds = std::mem::zeroed();
        assert_eq!(
            libc::shmctl(id, libc::IPC_STAT, &mut ds),
            0,
            "shmctl(IPC_STAT)"
        );
        let p = libc::shmat(id, std::ptr::null(), 0);
        assert_ne!(p as isize, -1, "shmat: {}", std::io::Error::last_os_error());
        let bytes = std::slice::from_raw_parts_mut(p.cast::<u8>(), ds.shm_segsz);
        let r = f(bytes);
        libc::shmdt(p);
        r
    }
}

/// A copy of every byte of the segment at `key`.
pub fn segment_bytes(key: Key) -> Vec<u8> {
    with_raw_segment(key, |b| b.to_vec())
}

/// Removes the channel through the API, drops the guard, and asserts that
/// nothing is left at the key.
pub fn finish(ch: Channel, guard: KeyGuard) {
    let key = ch.key();
    ch.remove().expect("Channel::remove");
    drop(ch);
    drop(guard);
    assert!(!key_in_use(key), "IPC objects left at {key}");
}

/// A deterministic message stream, cheap to produce and to check even in a
/// debug build: message `seq` has the length `payload(seq, max)` has (every
/// length in 0..=max occurs in any max+1 consecutive messages); its first
/// (up to) 8 bytes are `seq` little-endian and the rest is a slice of a
/// pseudo-random pool at an offset derived from `seq`. Every byte of a
/// message is compared (as slices, so with memcmp) by `check`.
pub struct Stream {
    pool: Vec<u8>,
    max: usize,
}

const POOL_LEN: usize = 1 << 20;

impl Stream {
    pub fn new(max: usize) -> Stream {
        let mut pool = vec![0u8; POOL_LEN + max + 8];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for chunk in pool.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = chunk.len();
            chunk.copy_from_slice(&x.to_le_bytes()[..n]);
        }
        Stream { pool, max }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Length of message `seq` (the same as `payload(seq, max).len()`).
    pub fn len(&self, seq: u64) -> usize {
        (seq.wrapping_mul(2_654_435_761) % (self.max as u64 + 1)) as usize
    }

    fn offset(seq: u64) -> usize {
        (seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 44) as usize // 20 bits
    }

    /// Writes message `seq` into `out`, which must be `len(seq)` long.
    pub fn fill(&self, seq: u64, out: &mut [u8]) {
        let n = out.len();
        assert_eq!(n, self.len(seq));
        let k = n.min(8);
        out[..k].copy_from_slice(&seq.to_le_bytes()[..k]);
        if n > 8 {
            let off = Self::offset(seq);
            out[8..].copy_from_slice(&self.pool[off + 8..off + n]);
        }
    }

    /// Message `seq` as a vector.
    pub fn message(&self, seq: u64) -> Vec<u8> {
        let mut v = vec![0u8; self.len(seq)];
        self.fill(seq, &mut v);
        v
    }

    /// Whether `got` is exactly message `seq`; on mismatch, says where.
    pub fn check(&self, seq: u64, got: &[u8]) -> Result<(), String> {
        let n = self.len(seq);
        if got.len() != n {
            return Err(format!(
                "message {seq}: length {} instead of {n}",
                got.len()
            ));
        }
        let k = n.min(8);
        let off = Self::offset(seq);
        if got[..k] == seq.to_le_bytes()[..k] && (n <= 8 || got[8..] == self.pool[off + 8..off + n])
        {
            return Ok(());
        }
        let want = self.message(seq);
        let i = want.iter().zip(got).position(|(a, b)| a != b).unwrap_or(0);
        let stamp = if n >= 8 {
            u64::from_le_bytes(got[..8].try_into().unwrap())
        } else {
            0
        };
        Err(format!(
            "message {seq} (len {n}): first wrong byte at {i}: {:#04x} instead of {:#04x} (stamp in message: {stamp})",
            got[i], want[i]
        ))
    }
}

/// `n` counters in an anonymous shared mapping: made before a fork, the
/// parent and its children see the same memory. Unmapped on drop.
pub struct SharedCounters {
    mem: shmchan_bench::os::SharedMemory,
    n: usize,
}

impl SharedCounters {
    pub fn new(n: usize) -> SharedCounters {
        let mem = shmchan_bench::os::SharedMemory::new(n * 8).expect("mmap");
        SharedCounters { mem, n }
    }

    /// Counter `i` (zero at first).
    pub fn at(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.n);
        // SAFETY: in bounds; the mapping is page-aligned, zeroed (a valid
        // AtomicU64) and lives as long as self.
        unsafe { &*self.mem.as_ptr().cast::<AtomicU64>().add(i) }
    }
}

/// xorshift64 for the tests' random choices; [`Rng::new`] seeds it from the
/// clock and prints the seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn new() -> Rng {
        let s = mono_ns() | 1;
        eprintln!("seed {s:#x}");
        Rng(s)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// 8-byte words in an anonymous shared mapping, visible to forked children.
pub struct SharedWords(shmchan_bench::os::SharedMemory);

impl SharedWords {
    pub fn new(words: usize) -> SharedWords {
        SharedWords(
            shmchan_bench::os::SharedMemory::new((words * 8).max(4096)).expect("shared mapping"),
        )
    }
    pub fn at(&self, i: usize) -> &AtomicU64 {
        assert!((i + 1) * 8 <= self.0.len());
        // SAFETY: word i of a zero-filled, page-aligned shared mapping that
        // lives as long as self; zero is a valid AtomicU64.
        unsafe { &*self.0.as_ptr().cast::<AtomicU64>().add(i) }
    }
}

/// Installs a seccomp filter in this process that makes `membarrier(2)`
/// fail with `EPERM` (x86-64 syscall numbers; the filter is inherited by
/// children and cannot be removed). For a process that must start
/// confined: call it before anything asks the kernel about membarrier.
#[cfg(target_arch = "x86_64")]
pub fn deny_membarrier() {
    const NR_OFFSET: u32 = 0; // seccomp_data.nr
    let ins = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let mut filter = [
        ins(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, NR_OFFSET),
        ins(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            1,
            libc::SYS_membarrier as u32,
        ),
        ins(
            libc::BPF_RET | libc::BPF_K,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
        ins(libc::BPF_RET | libc::BPF_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: prctl with integer arguments, then with a pointer to a valid
    // sock_fprog whose filter outlives the call (the kernel copies it).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        let r = libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        );
        assert_eq!(r, 0, "seccomp: {}", std::io::Error::last_os_error());
        assert_eq!(
            libc::syscall(libc::SYS_membarrier, 0, 0),
            -1,
            "membarrier still allowed"
        );
    }
}

/// The peers of the timed wake-up tests (`select.rs`, `async_tokio.rs`,
/// `fd.rs`): a child process that, for each of `rounds` rounds, waits for
/// a token on `go`, sleeps 20 ms, stores the time into `at` and then acts
/// on the channel at `key`; the parent measures from `at` to its own
/// return from the wait under test.
pub struct TimedPeer<'a> {
    pub key: Key,
    pub rounds: usize,
    pub go: &'a Notify,
    pub at: &'a SharedCounters,
}

impl TimedPeer<'_> {
    fn round(&self) -> bool {
        if !self.go.wait(Duration::from_secs(30)) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
        self.at.at(0).store(mono_ns(), Ordering::SeqCst);
        true
    }

    /// A sender that sends `b"now"` each round.
    pub fn sender(&self) -> Child {
        spawn(|| {
            let mut tx = Channel::open(self.key).unwrap().sender().unwrap();
            for _ in 0..self.rounds {
                if !self.round() {
                    return 1;
                }
                tx.send(b"now").unwrap();
            }
            0
        })
    }

    /// A receiver that frees two records each round (room for the
    /// largest message), then says so on `done`; it says on `connected`
    /// when it has connected (a receiver that left tells senders so until
    /// the next one connects), and drains what is left at the end.
    pub fn freer(&self, connected: &Notify, done: &Notify) -> Child {
        spawn(|| {
            let mut rx = Channel::open(self.key).unwrap().receiver().unwrap();
            connected.notify();
            for _ in 0..self.rounds {
                if !self.round() {
                    return 1;
                }
                drop(rx.recv_timeout(Duration::from_secs(30)).unwrap());
                drop(rx.recv_timeout(Duration::from_secs(30)).unwrap());
                done.notify();
            }
            while rx.recv_timeout(Duration::from_secs(2)).is_ok() {}
            0
        })
    }

    /// Nanoseconds from the peer's last stored time to now.
    pub fn since(&self) -> u64 {
        mono_ns().saturating_sub(self.at.at(0).load(Ordering::SeqCst))
    }
}

/// The median of `v` (sorted in place).
pub fn median_of(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}
