//! [`Select`]: one thread waiting on many channels, in the shape of
//! crossbeam's `Select`, with one wait in the kernel for all of them.
//!
//! The waiter owns a socket doorbell (`sys::BellSocket`, one per thread,
//! reused by every `Select` the thread makes). To wait, it announces the
//! doorbell's id in every channel it waits on (`recv_bell`, `send_bell`,
//! or an MPSC sender's slot: the words the wakers look at after each
//! publish, beside the semaphore sleepers' counters), issues the barrier
//! the sleepers issue, looks at every channel again, and only then waits
//! in `poll(2)` on the doorbell. A waker that claims an announcement
//! rings the doorbell with one datagram. The same store, fence, re-check
//! order as the semaphore sleepers' (docs/FORMAT.md, 6.2 and 6.3) makes a
//! lost wake-up impossible; no system call is made on the peers' fast
//! path when nobody waits.

use std::cell::RefCell;
use std::fmt;
use std::time::{Duration, Instant};

use crate::receiver::Receiver;
use crate::sender::Sender;
use crate::sys::{self, BellSocket};
use crate::wait::{POLL_INTERVAL, UNFENCED_POLL};

/// [`Select::ready_timeout`] found no operation ready in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyTimeoutError;

impl fmt::Display for ReadyTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out waiting for an operation to become ready")
    }
}

impl std::error::Error for ReadyTimeoutError {}

/// [`Select::try_ready`] found no operation ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TryReadyError;

impl fmt::Display for TryReadyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no operation is ready")
    }
}

impl std::error::Error for TryReadyError {}

#[derive(Debug, Clone, Copy)]
enum Op<'a> {
    Recv(&'a Receiver),
    Send(&'a Sender),
}

impl Op<'_> {
    /// From shared memory alone.
    fn ready(&self) -> bool {
        match self {
            Op::Recv(r) => r.select_ready(),
            Op::Send(s) => s.select_ready(),
        }
    }

    /// The looks that take system calls (liveness, removal; MPSC claims).
    fn stuck(&self) -> bool {
        match self {
            Op::Recv(r) => r.select_stuck(),
            Op::Send(s) => s.select_stuck(),
        }
    }

    fn announce(&self, id: u64) {
        match self {
            Op::Recv(r) => r.select_announce(id),
            Op::Send(s) => s.select_announce(id),
        }
    }

    fn retract(&self, id: u64) {
        match self {
            Op::Recv(r) => r.select_retract(id),
            Op::Send(s) => s.select_retract(id),
        }
    }
}

thread_local! {
    /// This thread's doorbell, made by its first wait and kept for the
    /// next `Select`s (a socket and a bind each time would cost more than
    /// most waits), with the process it was made in: a child of `fork`
    /// makes its own (an inherited socket would share the parent's rings).
    static BELL: RefCell<Option<(i32, BellSocket)>> = const { RefCell::new(None) };
}

/// Waits on several receivers and senders at once and says which may
/// proceed, with one wait in the kernel whatever their number (no thread
/// per channel), in the shape of crossbeam's `Select`.
///
/// Register operations with [`Select::recv`] and [`Select::send`] (each
/// returns the operation's index), then call [`Select::ready`] (or
/// [`Select::ready_timeout`], [`Select::try_ready`]), which returns the
/// index of an operation that may proceed. **Readiness may be spurious**,
/// as in crossbeam: then call the operation's `try_recv`/`try_send`, which
/// says what there is (`Empty`/`Full`: just wait again). A receive is
/// ready when a message is waiting; a send when a message of the
/// channel's `max_message` bytes would fit (a smaller one may fit earlier:
/// `try_send` it). A channel whose peers are all gone, or that was
/// removed, counts as ready: its `try_recv`/`try_send` says why. Ready
/// operations are taken in turn, not always the first, so that none
/// starves.
///
/// The waiting thread is woken by the peers' publishes and releases
/// (through a Unix datagram socket in the abstract namespace, named after
/// a per-thread id that the waiter writes into the channel), and looks at
/// liveness at least every 100 ms, as a blocking receive does. Peers in
/// another network namespace cannot ring it: a waiter then sees their
/// messages at its next 100 ms look.
///
/// ```
/// use shmchan::{Channel, Key, Options, Select};
///
/// let a = Channel::create(Key::private(), Options::default().remove_on_drop(true))?;
/// let b = Channel::create(Key::private(), Options::default().remove_on_drop(true))?;
/// let (mut rx_a, mut rx_b) = (a.receiver()?, b.receiver()?);
/// let mut tx_b = b.sender()?;
/// tx_b.send(b"to b")?;
///
/// let mut sel = Select::new();
/// let ia = sel.recv(&rx_a);
/// let ib = sel.recv(&rx_b);
/// let i = sel.ready();
/// assert_eq!(i, ib);
/// assert_ne!(i, ia);
/// assert_eq!(&*rx_b.try_recv()?, b"to b");
/// assert!(rx_a.try_recv().is_err()); // nothing there
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct Select<'a> {
    ops: Vec<Op<'a>>,
    /// Where the next look starts (turns, so that no operation starves).
    next: usize,
}

impl<'a> Select<'a> {
    /// An empty selection.
    pub fn new() -> Select<'a> {
        Select {
            ops: Vec::new(),
            next: 0,
        }
    }

    /// Adds a receive on `rx`; returns its index.
    pub fn recv(&mut self, rx: &'a Receiver) -> usize {
        self.ops.push(Op::Recv(rx));
        self.ops.len() - 1
    }

    /// Adds a send on `tx`; returns its index.
    pub fn send(&mut self, tx: &'a Sender) -> usize {
        self.ops.push(Op::Send(tx));
        self.ops.len() - 1
    }

    /// The index of an operation that may proceed now, without waiting.
    pub fn try_ready(&mut self) -> Result<usize, TryReadyError> {
        self.first(|op| op.ready())
            .or_else(|| self.first(|op| op.stuck()))
            .ok_or(TryReadyError)
    }

    /// Waits until an operation may proceed; returns its index.
    ///
    /// # Panics
    /// With no operation registered (it would wait for ever).
    pub fn ready(&mut self) -> usize {
        assert!(!self.ops.is_empty(), "Select::ready with no operation");
        self.wait(None)
            .expect("a wait without a deadline ends ready")
    }

    /// Waits at most `timeout` for an operation to become ready.
    pub fn ready_timeout(&mut self, timeout: Duration) -> Result<usize, ReadyTimeoutError> {
        self.wait(Some(Instant::now() + timeout))
            .ok_or(ReadyTimeoutError)
    }

    /// The first operation, from `next` on, for which `f` holds; `next`
    /// moves past it.
    fn first(&mut self, mut f: impl FnMut(&Op<'a>) -> bool) -> Option<usize> {
        let n = self.ops.len();
        let i = (0..n)
            .map(|k| (self.next + k) % n)
            .find(|&i| f(&self.ops[i]))?;
        self.next = (i + 1) % n;
        Some(i)
    }

    fn wait(&mut self, deadline: Option<Instant>) -> Option<usize> {
        if let Ok(i) = self.try_ready() {
            return Some(i);
        }
        BELL.with(|cell| {
            let mut cell = cell.borrow_mut();
            let pid = sys::current_pid();
            if cell.as_ref().is_none_or(|(p, _)| *p != pid) {
                *cell = BellSocket::new().ok().map(|b| (pid, b));
            }
            self.wait_on(cell.as_ref().map(|(_, b)| b), deadline)
        })
    }

    /// The waiting loop, on `bell` (none: the socket could not be made,
    /// and the loop polls every [`UNFENCED_POLL`]).
    fn wait_on(&mut self, bell: Option<&BellSocket>, deadline: Option<Instant>) -> Option<usize> {
        let id = bell.map_or(0, BellSocket::id);
        let mut last_slow = Instant::now();
        loop {
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return None;
            }
            let mut nap = POLL_INTERVAL;
            if let Some(bell) = bell {
                let ops = &self.ops;
                if !bell.arm(|id| ops.iter().for_each(|op| op.announce(id))) {
                    nap = UNFENCED_POLL;
                }
            } else {
                nap = UNFENCED_POLL;
            }
            // The re-check after the announcement: a publish it misses has
            // seen the announcement, and rings.
            let found = self.first(|op| op.ready());
            if found.is_none() {
                let left = deadline.map_or(nap, |d| d.saturating_duration_since(now).min(nap));
                match bell {
                    Some(bell) => {
                        bell.wait(left);
                    }
                    None => std::thread::sleep(left),
                }
            }
            if bell.is_some() {
                for op in &self.ops {
                    op.retract(id);
                }
            }
            if let Some(i) = found.or_else(|| self.first(|op| op.ready())) {
                return Some(i);
            }
            // Liveness and removal, at most every POLL_INTERVAL.
            if last_slow.elapsed() >= POLL_INTERVAL {
                last_slow = Instant::now();
                if let Some(i) = self.first(|op| op.stuck()) {
                    return Some(i);
                }
            }
        }
    }
}
