//! Socket doorbells: what a waiter that a poll loop can watch (a
//! [`crate::Select`]) is woken through. A doorbell is a Unix datagram
//! socket bound to an abstract name made from its 64-bit id, so a waker in
//! any process of the same network namespace can ring it knowing only the
//! id it read from the segment, and the kernel removes it with its last
//! descriptor (a waiter killed leaves nothing behind). A ring is one
//! one-byte datagram, sent without blocking; what it says is only "look
//! again", so a full socket buffer (rings nobody has drained yet) loses
//! nothing.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The abstract socket name of doorbell `id` (without the leading NUL).
fn name(id: u64) -> [u8; 29] {
    let mut n = *b"shmchan-bell-0000000000000000";
    let hex = b"0123456789abcdef";
    for i in 0..16 {
        n[13 + i] = hex[((id >> (60 - 4 * i)) & 0xf) as usize];
    }
    n
}

/// The `sockaddr_un` of doorbell `id`, and its length.
fn address(id: u64) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: sockaddr_un is plain data; all zeros is a valid value.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let n = name(id);
    // sun_path[0] stays 0: the abstract namespace.
    for (dst, &b) in a.sun_path[1..].iter_mut().zip(n.iter()) {
        *dst = b as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + 1 + n.len();
    (a, len as libc::socklen_t)
}

/// A new non-blocking, close-on-exec datagram socket.
fn datagram_socket() -> io::Result<OwnedFd> {
    // SAFETY: a plain socket(2) call; the descriptor it returns is ours.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a descriptor we just opened and own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A doorbell this process waits on.
#[derive(Debug)]
pub struct BellSocket {
    fd: OwnedFd,
    id: u64,
}

impl BellSocket {
    /// A new doorbell with an id unique among the doorbells alive in this
    /// network namespace: the process id in the high half, a per-process
    /// count in the low half (a name taken, as by a process of the same
    /// pid in another pid namespace, moves on to the next count).
    pub fn new() -> io::Result<BellSocket> {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let pid = u64::from(std::process::id());
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let id = (pid << 32) | u64::from(n.max(1));
            let fd = datagram_socket()?;
            let (a, len) = address(id);
            // SAFETY: `a` is a valid sockaddr_un of `len` bytes.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    std::ptr::from_ref(&a).cast::<libc::sockaddr>(),
                    len,
                )
            };
            if r == 0 {
                return Ok(BellSocket { fd, id });
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EADDRINUSE) {
                return Err(e);
            }
        }
    }

    /// The id a waker needs to ring this doorbell (never 0).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The waiter's half of the protocol before it waits (docs/FORMAT.md,
    /// 6.3): drains the rings left from before, lets `announce` store this
    /// doorbell's id where the wakers look, and issues the sleepers'
    /// barrier (`membarrier`). Returns whether the barrier was issued:
    /// without it the wakers' light fence may miss the announcement, and
    /// the waiter must look again within `UNFENCED_POLL`. The caller looks
    /// at its condition again next, and only then waits.
    pub fn arm(&self, announce: impl FnOnce(u64)) -> bool {
        self.drain();
        announce(self.id);
        super::membarrier_global()
    }

    /// Reads every ring that arrived (non-blocking); returns how many.
    pub fn drain(&self) -> usize {
        let mut n = 0;
        let mut buf = [0u8; 16];
        loop {
            // SAFETY: buf is valid for writes of its length.
            let r = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return n;
            }
            n += 1;
        }
    }

    /// Waits until a ring arrives or `timeout` passes (a signal ends the
    /// wait early); returns whether the doorbell is readable.
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // Round a sub-millisecond rest up: poll(2) counts milliseconds.
        let ms = if ms == 0 && !timeout.is_zero() { 1 } else { ms };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        r > 0 && p.revents & libc::POLLIN != 0
    }
}

impl AsFd for BellSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for BellSocket {
    /// The same open descriptor for the socket's whole life (it owns it).
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

/// Rings doorbell `id` (0: nobody): one datagram, never blocking. A
/// doorbell that is gone (its waiter died or moved on), full, or in
/// another network namespace is not an error: a waiter polls at least
/// every [`crate::wait::POLL_INTERVAL`] as well.
///
/// Each ring sends from a socket of its own, closed at once: a socket
/// kept for the process would be shared with every child it forks (one
/// send buffer for all of them, which datagrams queued at slow readers can
/// fill, and then every ring of every process fails), and a failure to
/// make it would be kept too. A wake-up costs system calls anyway; this
/// adds two.
pub fn ring(id: u64) {
    if id == 0 {
        return;
    }
    let Ok(fd) = datagram_socket() else {
        return;
    };
    let (a, len) = address(id);
    // SAFETY: a one-byte buffer and a valid sockaddr_un of `len` bytes.
    unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            [1u8].as_ptr().cast(),
            1,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            std::ptr::from_ref(&a).cast::<libc::sockaddr>(),
            len,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_makes_the_doorbell_readable_once_drained_it_is_not() {
        let b = BellSocket::new().unwrap();
        assert_ne!(b.id(), 0);
        assert!(!b.wait(Duration::from_millis(1)));
        ring(b.id());
        ring(b.id());
        assert!(b.wait(Duration::from_secs(5)));
        assert_eq!(b.drain(), 2);
        assert!(!b.wait(Duration::from_millis(1)));
        // Two doorbells of one process have different names.
        let c = BellSocket::new().unwrap();
        assert_ne!(b.id(), c.id());
        ring(c.id());
        assert!(!b.wait(Duration::from_millis(1)));
        assert!(c.wait(Duration::from_secs(5)));
        // A doorbell that is gone: ringing it is nothing.
        let gone = c.id();
        drop(c);
        ring(gone);
        ring(0);
    }
}
