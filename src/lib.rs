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
//! (which may be inherited). Dropping an inherited endpoint, or a `Message`
//! received before the fork, in a child leaves the channel alone. (The fork
//! is seen through a `pthread_atfork` handler: a child made by a raw `clone`
//! system call is not detected.)

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod layout;
pub mod ring;
pub mod sync;
pub mod wait;

#[cfg(not(shmchan_loom))]
#[doc(hidden)]
pub mod bench;

#[cfg(not(shmchan_loom))]
#[doc(hidden)]
pub mod fuzz_support;

#[cfg(not(shmchan_loom))]
mod channel;
#[cfg(not(shmchan_loom))]
mod error;
#[cfg(not(shmchan_loom))]
mod stats;
#[cfg(not(shmchan_loom))]
pub mod sys;

#[cfg(not(shmchan_loom))]
pub use channel::{
    Channel, Grant, Iter, Message, Options, Receiver, Sender, TryIter, DEFAULT_RECOVERY_TIMEOUT,
};
#[cfg(not(shmchan_loom))]
pub use error::{
    OpenError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
pub use layout::{Flavor, HeaderError, Layout};
pub use ring::Corrupted;
#[cfg(not(shmchan_loom))]
pub use stats::{Counters, Found, Listing, Stats};
#[cfg(not(shmchan_loom))]
pub use sys::Key;

/// The README's code examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
