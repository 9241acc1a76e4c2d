//! Cross-process channels in System V shared memory.
//!
//! A channel is a segment holding a lock-free ring buffer of
//! variable-length messages, plus a semaphore set used only to sleep and to
//! track which endpoints are alive. Messages go from a [`Sender`] to a
//! [`Receiver`] in another process with no system call on the fast path,
//! and with pipe semantics: `recv` waits while empty, `send` waits while
//! full, the receiver sees [`RecvError::Disconnected`] once every sender is
//! gone and it has drained the ring, and a sender gets
//! [`SendError::Disconnected`] (never a signal) when the receiver is gone.
//! A process killed with SIGKILL is seen exactly like a clean drop.
//!
//! # Two processes
//!
//! ```no_run
//! use shmchan::{Channel, Key, Options};
//!
//! // Process A: create the channel and send.
//! let key = Key::ftok("/tmp", 1)?;
//! let channel = Channel::create(key, Options::default().capacity(1 << 20))?;
//! let mut tx = channel.sender()?;
//! tx.send(b"hello")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ```no_run
//! use shmchan::{Channel, Key};
//!
//! // Process B: open it by the same key and receive.
//! let channel = Channel::open(Key::ftok("/tmp", 1)?)?;
//! let mut rx = channel.receiver()?;
//! while let Ok(msg) = rx.recv() {
//!     println!("{} bytes", msg.len());
//! }
//! channel.remove()?; // the IPC objects outlive processes until removed
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # In one program, across `fork`
//!
//! ```
//! use shmchan::{Channel, Key, Options};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let channel = Channel::create(Key::private(), Options::default().remove_on_drop(true))?;
//! let mut rx = channel.receiver()?;
//! let mut tx = channel.sender()?;
//! tx.send(b"ping")?;
//! assert_eq!(&*rx.recv()?, b"ping");
//! drop(tx);
//! assert!(rx.recv().is_err()); // every sender gone, ring drained
//! # Ok(()) }
//! ```
//!
//! # Many senders
//!
//! [`Flavor::Mpsc`] channels take any number of senders, in any processes
//! and threads ([`Sender`] is `Clone`), and one receiver. A sender killed
//! between claiming space and committing costs only its own message: the
//! receiver skips the claim once the claimant is proven dead (see
//! [`Receiver::set_recovery_timeout`]).
//!
//! ```
//! use shmchan::{Channel, Flavor, Key, Options};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let opts = Options::default().flavor(Flavor::Mpsc).remove_on_drop(true);
//! let channel = Channel::create(Key::private(), opts)?;
//! let mut rx = channel.receiver()?;
//! let mut a = channel.sender()?;
//! let mut b = a.clone();
//! a.send(b"from a")?;
//! b.send(b"from b")?;
//! drop((a, b));
//! assert_eq!(rx.iter().count(), 2);
//! # Ok(()) }
//! ```
//!
//! # Lifecycle
//!
//! System V objects outlive processes. A channel's segment and semaphore
//! set are removed by [`Channel::remove`], [`Channel::remove_key`], the
//! `shmchan rm` command, `ipcrm`, or, with [`Options::remove_on_drop`], when
//! the creating process drops its [`Channel`]. Endpoints never remove them,
//! so messages in the ring survive a receiver's restart.
//!
//! # Keys
//!
//! [`Key::ftok`] derives a key from a path's inode and device and a project
//! id; different paths can collide. [`Key::raw`] takes a number, and
//! [`Key::private`] makes a channel only its creator and the children it
//! forks can reach.
//!
//! # Not across `fork`
//!
//! A [`Sender`] or [`Receiver`] belongs to the process that made it. A child
//! that inherits one through `fork` is not a registered endpoint (the kernel
//! does not copy `SEM_UNDO` adjustments), so every operation on it returns
//! the `Forked` error of the operation (e.g. [`SendError::Forked`]) and
//! changes nothing; the child takes its own endpoint from the [`Channel`]
//! (which may be inherited). Dropping an inherited endpoint in a child
//! leaves the channel alone; a [`Grant`] or a [`Message`] held across the
//! fork has no bytes in the child, and committing or dropping it there
//! does nothing (the parent's stays the parent's). (The fork
//! is seen through a `pthread_atfork` handler: a child made by a raw `clone`
//! system call is not detected.)
//!
//! # One publisher, many subscribers
//!
//! [`Flavor::Broadcast`] channels have one publisher ([`Channel::sender`])
//! and any number of subscribers ([`Channel::receiver`], up to
//! [`Options::max_subscribers`]), each of which receives every message.
//! With [`Overflow::Block`] (the default) the publisher waits for the
//! slowest subscriber (a killed one is released after
//! [`Sender::set_recovery_timeout`]); with [`Overflow::Overwrite`] it never
//! waits, and a subscriber a ring behind gets [`RecvError::Lagged`] with
//! the exact count it missed.
//!
//! ```
//! use shmchan::{Channel, Flavor, Key, Options, Overflow, RecvError};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let opts = Options::default()
//!     .flavor(Flavor::Broadcast)
//!     .overflow(Overflow::Overwrite)
//!     .capacity(4096)
//!     .remove_on_drop(true);
//! let channel = Channel::create(Key::private(), opts)?;
//! let mut tx = channel.sender()?;
//! let (mut a, mut b) = (channel.receiver()?, channel.receiver()?);
//! tx.send(b"tick")?;
//! assert_eq!(&*a.recv()?, b"tick");
//! assert_eq!(&*b.recv()?, b"tick");
//! // `b` falls behind: the publisher writes over what it has not read.
//! for i in 0..10_000u32 {
//!     tx.send(&i.to_le_bytes())?;
//!     a.recv()?;
//! }
//! assert!(matches!(b.recv(), Err(RecvError::Lagged { missed }) if missed > 9_000));
//! # Ok(()) }
//! ```
//!
//! # Trust
//!
//! Every process that may write the segment (its mode decides which) can
//! write any byte of it at any time. The crate trusts nothing it reads
//! there: the header is copied and validated, positions, lengths and kinds
//! are checked before use (a broken invariant is `Corrupted`, never a
//! panic or an access outside the ring), and the shared state is reached
//! only through atomics.
//!
//! The payload is another matter, and the API gives the choice:
//!
//! - **Copies are sound whatever others write.**
//!   [`Receiver::recv_into`], [`Receiver::try_recv_into`], the held
//!   receives ([`Receiver::recv_held_into`]) and the
//!   iterators copy a message out with atomic loads and never form a
//!   reference into the segment: a hostile or buggy writer can change the
//!   bytes you get, not break your program. [`Sender::send`] copies in with
//!   atomic stores, and an MPSC receiver zeroes what it releases with
//!   atomic stores, for the same reason.
//! - **The borrowed views assume well-behaved peers.** A [`Message`] (and
//!   the slices [`Receiver::recv_batch`] passes) is a `&[u8]`, a [`Grant`]
//!   a `&mut [u8]`, into shared memory. They are sound as long as no
//!   process writes those bytes while the view lives, which holds when
//!   every process that can write the segment runs this crate (or another
//!   correct implementation of `docs/FORMAT.md`) on its own endpoints: the
//!   ring protocol gives the bytes to one side at a time. A process that
//!   writes the segment outside the protocol (one that moves `head` so the
//!   honest producer overwrites a message still held, say) makes them a data
//!   race in yours. Use them for speed between processes you trust (same
//!   program, same user, mode `0600`); use the copies when a peer may not be.
//!   (A subscriber of an [`Overflow::Overwrite`] broadcast never lends out
//!   the ring: its `Message` is a copy checked after it was made, since the
//!   publisher may write over any slot at any time.)
//!
//! # Not across `exec`
//!
//! The kernel keeps a process's `SEM_UNDO` adjustments across `execve`: a
//! process that execs while it holds an endpoint stays registered until it
//! exits, so its peer does not see it gone (and a new endpoint of its side
//! gets [`OpenError::Busy`] in an SPSC channel). Drop endpoints before
//! calling `exec` in the process that made them. `std::process::Command`
//! is unaffected: its `exec` runs in a forked child, which never
//! registered.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

// The format, public: its constants are what another implementation needs.
pub mod layout;

// The lock-free algorithms and the concurrency shim (loom or std); they
// compile under `--cfg shmchan_loom` too, for the models.
mod ring;
mod sync;
mod wait;

// The channel layer, over System V (not under loom).
#[cfg(all(feature = "tokio", not(shmchan_loom)))]
mod aio;
#[cfg(not(shmchan_loom))]
mod channel;
#[cfg(not(shmchan_loom))]
mod counters;
#[cfg(not(shmchan_loom))]
mod doorbell;
#[cfg(not(shmchan_loom))]
mod endpoint;
#[cfg(not(shmchan_loom))]
mod error;
#[cfg(not(shmchan_loom))]
mod options;
#[cfg(not(shmchan_loom))]
mod receiver;
#[cfg(not(shmchan_loom))]
mod removal;
#[cfg(not(shmchan_loom))]
mod segment;
#[cfg(not(shmchan_loom))]
mod select;
#[cfg(not(shmchan_loom))]
mod sender;
#[cfg(not(shmchan_loom))]
mod stats;
#[cfg(not(shmchan_loom))]
mod sys;

#[cfg(not(shmchan_loom))]
pub use channel::Channel;
#[cfg(not(shmchan_loom))]
pub use counters::Counters;
#[cfg(not(shmchan_loom))]
pub use error::{
    OpenError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
pub use layout::{Flavor, HeaderError, Layout, Overflow};
#[cfg(not(shmchan_loom))]
pub use options::Options;
#[cfg(all(feature = "tokio", not(shmchan_loom)))]
pub use receiver::RecvStream;
#[cfg(not(shmchan_loom))]
pub use receiver::{Held, Iter, Message, Receiver, TryIter};
#[cfg(not(shmchan_loom))]
pub use removal::{ForcedRemoval, RemovedSegment, RemovedSems, SegmentKind};
pub use ring::broadcast::Start;
pub use ring::mpsc::DEFAULT_RECOVERY_TIMEOUT;
pub use ring::Corrupted;
#[cfg(not(shmchan_loom))]
pub use select::{ReadyTimeoutError, Select, TryReadyError};
#[cfg(not(shmchan_loom))]
pub use sender::{Grant, Sender};
#[cfg(not(shmchan_loom))]
pub use stats::{Found, Listing, Stats, SubscriberStats};
#[cfg(not(shmchan_loom))]
pub use sys::Key;

/// The crate's insides, for its loom models and fuzz targets only: not an
/// API, hidden from the documentation, present only under
/// `--cfg shmchan_loom` or the `internals` feature, and changed by any
/// release. Every function here that can break an invariant of the ring
/// (a second producer, a forged reservation, a lying liveness check, a
/// plain access to the data region) is `unsafe`, with its contract under
/// `# Safety`; views borrow the memory they see.
///
/// The compiler holds users of this module to that. Each pair below is the
/// same code twice, once that compiles and once that must not:
///
/// A view cannot outlive its ring (a `Copy` view without a lifetime let
/// safe code write to freed memory):
///
/// ```
/// use shmchan::internals::HeapRing;
/// let ring = HeapRing::new(64, 56);
/// let view = ring.view();
/// assert_eq!(view.capacity(), 64);
/// ```
///
/// ```compile_fail
/// use shmchan::internals::HeapRing;
/// let view = {
///     let ring = HeapRing::new(64, 56);
///     ring.view() // `ring` does not live long enough
/// };
/// assert_eq!(view.capacity(), 64);
/// ```
///
/// A plain write to the data region, and an endpoint, need `unsafe` (two
/// producers on one ring, or a write racing a reader, are data races):
///
/// ```
/// use shmchan::internals::{spsc, HeapRing};
/// let ring = HeapRing::new(64, 56);
/// // SAFETY: one thread; nothing else touches word 8 during the call.
/// unsafe { ring.view().region().write_u64(8, 7) };
/// // SAFETY: the only producer of this ring.
/// let p = unsafe { spsc::Producer::new(ring.view()) }.unwrap();
/// assert_eq!(p.view().capacity(), 64);
/// ```
///
/// ```compile_fail
/// use shmchan::internals::HeapRing;
/// let ring = HeapRing::new(64, 56);
/// ring.view().region().write_u64(0, 7); // call to unsafe function
/// ```
///
/// ```compile_fail
/// use shmchan::internals::{spsc, HeapRing};
/// let ring = HeapRing::new(64, 56);
/// let p = spsc::Producer::new(ring.view()).unwrap(); // call to unsafe function
/// assert_eq!(p.view().capacity(), 64);
/// ```
#[cfg(any(shmchan_loom, feature = "internals"))]
#[doc(hidden)]
pub mod internals {
    pub use crate::layout::lines::{
        ConsumerLine, LapLine, ProducerLine, RingState, SenderSlot, SubscriberSlot, WakeLine,
    };
    pub use crate::ring::cursor::{Cursor, MAX_WAKEUPS};
    pub use crate::ring::heap::HeapRing;
    pub use crate::ring::{broadcast, mpsc, spsc, wake};
    pub use crate::ring::{Corrupted, Record, Reservation, ReserveError, RingView};
    pub use crate::sync::Region;

    /// The concurrency shim (std or loom atomics, the data region).
    pub mod sync {
        pub use crate::sync::*;
    }

    /// Blocking: spinning, announcing, sleeping on a doorbell.
    pub mod wait {
        pub use crate::wait::*;
    }
}

/// Hooks for this crate's own tests (feature `test-hooks`): not an API.
#[cfg(all(feature = "test-hooks", not(shmchan_loom)))]
#[doc(hidden)]
pub mod test_hooks {
    pub use crate::ring::mpsc::Stage;
}

/// The README's code examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
