//! The error of each operation, one enum per operation.

use std::fmt;
use std::io;

use crate::layout::HeaderError;
use crate::ring::Corrupted;
use crate::sys::IpcError;

/// Why [`crate::Channel::create`], [`crate::Channel::open`],
/// [`crate::Channel::sender`] or [`crate::Channel::receiver`] failed.
#[derive(Debug)]
pub enum OpenError {
    /// No channel exists at the key.
    NotFound,
    /// `create`: something already exists at the key.
    AlreadyExists,
    /// The mode of the segment or semaphore set does not allow this user.
    PermissionDenied,
    /// The segment at the key is not a shmchan channel; nothing was written.
    NotAChannel,
    /// A shmchan channel of another format version.
    IncompatibleVersion {
        /// The version in the segment.
        found: u32,
        /// The version this crate reads.
        supported: u32,
    },
    /// The header is damaged; the values are in the inner error.
    InvalidHeader(HeaderError),
    /// The creator has not finished initialising within the wait bound (or
    /// died while doing so).
    NotInitialized,
    /// SPSC: the channel already has a live sender (or a live receiver);
    /// broadcast: it already has a live publisher.
    Busy,
    /// MPSC: every sender slot of the channel belongs to a live sender
    /// (see [`crate::Options::max_senders`]).
    TooManySenders {
        /// The channel's number of sender slots.
        slots: usize,
    },
    /// Broadcast: every subscriber slot of the channel belongs to a live
    /// subscriber (see [`crate::Options::max_subscribers`]).
    TooManySubscribers {
        /// The channel's number of subscriber slots.
        slots: usize,
    },
    /// MPSC: this process is in another pid namespace than the channel's
    /// creator. The receiver tells a dead sender from a live one by its
    /// pid, which means the same only within one namespace: such an
    /// endpoint could have its live claims skipped (or skip others').
    ForeignPidNamespace {
        /// The creator's pid namespace (the inode of its `/proc/self/ns/pid`).
        channel: u64,
        /// This process's.
        ours: u64,
    },
    /// The key came from `ftok` of a path, and the channel at it was
    /// created from another path that `ftok` maps to the same key (an ftok
    /// collision); nothing was touched.
    KeyCollision {
        /// Device of the path the channel was created from.
        dev: u64,
        /// Inode of the path the channel was created from.
        ino: u64,
    },
    /// The options cannot make a channel; the text says why.
    InvalidOptions(String),
    /// Any other system error.
    Io(io::Error),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NotFound => f.write_str("no channel exists at this key"),
            OpenError::AlreadyExists => f.write_str("a channel or IPC object already exists at this key"),
            OpenError::PermissionDenied => f.write_str("permission denied by the channel's mode"),
            OpenError::NotAChannel => f.write_str("the segment at this key is not a shmchan channel"),
            OpenError::IncompatibleVersion { found, supported } => write!(
                f,
                "channel format version {found} is not supported (this crate reads version {supported})"
            ),
            OpenError::InvalidHeader(e) => write!(f, "invalid channel header: {e}"),
            OpenError::NotInitialized => f.write_str("the channel's creator has not finished initialising it"),
            OpenError::Busy => f.write_str("the channel already has a live endpoint of this kind"),
            OpenError::TooManySubscribers { slots } => write!(
                f,
                "all {slots} subscriber slots of the broadcast channel belong to live subscribers"
            ),
            OpenError::TooManySenders { slots } => write!(
                f,
                "all {slots} sender slots of the channel are in use by live senders"
            ),
            OpenError::ForeignPidNamespace { channel, ours } => write!(
                f,
                "this process is in pid namespace {ours}, the MPSC channel's creator in {channel}: pids would not mean the same to its endpoints"
            ),
            OpenError::KeyCollision { dev, ino } => write!(
                f,
                "the channel at this key belongs to another path with the same ftok key (inode {ino} on device {dev:#x})"
            ),
            OpenError::InvalidOptions(why) => write!(f, "invalid options: {why}"),
            OpenError::Io(e) => write!(f, "system error: {e}"),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::InvalidHeader(e) => Some(e),
            OpenError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> OpenError {
        OpenError::Io(e)
    }
}

/// Maps a system error to an [`OpenError`], keeping the call in the text.
pub(crate) fn open_err(what: &str, e: IpcError) -> OpenError {
    match e {
        IpcError::NotFound => OpenError::NotFound,
        IpcError::AlreadyExists => OpenError::AlreadyExists,
        IpcError::PermissionDenied => OpenError::PermissionDenied,
        e => OpenError::Io(io::Error::new(
            io::Error::from(e).kind(),
            format!("{what}: {e}"),
        )),
    }
}

/// Ring positions an endpoint cannot start from: a damaged header.
pub(crate) fn bad_positions(c: Corrupted) -> OpenError {
    OpenError::InvalidHeader(HeaderError::BadPositions {
        detail: c.to_string(),
    })
}

macro_rules! simple_display {
    ($ty:ident { $($variant:ident $( { $($f:ident),* } )? $( ($inner:ident) )? => $fmt:expr),* $(,)? }) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( $ty::$variant $( { $($f),* } )? $( ($inner) )? => write!(f, "{}", $fmt), )*
                }
            }
        }
        impl std::error::Error for $ty {}
    };
}

const FORKED: &str = "this endpoint belongs to the process that made it, not to this child of a fork; take a new one from the Channel";
const DISCONNECTED_SEND: &str = "the receiver is gone (or the channel was removed)";
const DISCONNECTED_RECV: &str =
    "every sender is gone and the channel is drained (or it was removed)";

fn lagged(missed: &u64) -> String {
    format!("the publisher wrote over {missed} messages this subscriber had not read (it goes on from the oldest one left)")
}

fn too_large(len: &usize, max: &usize) -> String {
    format!("message of {len} bytes is larger than the channel's maximum of {max}")
}

/// Why [`crate::Sender::try_send`] (or `try_reserve`) did not send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrySendError {
    /// No space now.
    Full,
    /// The receiver is gone.
    Disconnected,
    /// The message is larger than the channel's maximum.
    TooLarge {
        /// Length of the message.
        len: usize,
        /// The channel's maximum.
        max: usize,
    },
    /// The shared state is damaged.
    Corrupted(Corrupted),
    /// The endpoint was made by another process: this one is a child
    /// created by `fork` after it (see the crate documentation).
    Forked,
}

simple_display!(TrySendError {
    Full => "the channel is full",
    Disconnected => DISCONNECTED_SEND,
    TooLarge { len, max } => too_large(len, max),
    Corrupted(c) => c,
    Forked => FORKED,
});

/// Why [`crate::Sender::send`] (or `reserve`) did not send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The receiver is gone.
    Disconnected,
    /// The message is larger than the channel's maximum.
    TooLarge {
        /// Length of the message.
        len: usize,
        /// The channel's maximum.
        max: usize,
    },
    /// The shared state is damaged.
    Corrupted(Corrupted),
    /// The endpoint was made by another process: this one is a child
    /// created by `fork` after it (see the crate documentation).
    Forked,
}

simple_display!(SendError {
    Disconnected => DISCONNECTED_SEND,
    TooLarge { len, max } => too_large(len, max),
    Corrupted(c) => c,
    Forked => FORKED,
});

/// Why [`crate::Sender::send_timeout`] did not send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendTimeoutError {
    /// Still full when the time ran out.
    Timeout,
    /// The receiver is gone.
    Disconnected,
    /// The message is larger than the channel's maximum.
    TooLarge {
        /// Length of the message.
        len: usize,
        /// The channel's maximum.
        max: usize,
    },
    /// The shared state is damaged.
    Corrupted(Corrupted),
    /// The endpoint was made by another process: this one is a child
    /// created by `fork` after it (see the crate documentation).
    Forked,
}

simple_display!(SendTimeoutError {
    Timeout => "timed out waiting for space",
    Disconnected => DISCONNECTED_SEND,
    TooLarge { len, max } => too_large(len, max),
    Corrupted(c) => c,
    Forked => FORKED,
});

/// Why [`crate::Receiver::try_recv`] returned no message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TryRecvError {
    /// No message now.
    Empty,
    /// Every sender is gone and the channel is drained.
    Disconnected,
    /// Broadcast, [`crate::Overflow::Overwrite`]: this subscriber fell
    /// more than a ring behind and the publisher wrote over `missed`
    /// messages it had not read; the next receive gets the oldest message
    /// still in the ring. Reported once per lap; the count is exact.
    Lagged {
        /// Messages lost to this subscriber.
        missed: u64,
    },
    /// The shared state is damaged.
    Corrupted(Corrupted),
    /// The endpoint was made by another process: this one is a child
    /// created by `fork` after it (see the crate documentation).
    Forked,
}

simple_display!(TryRecvError {
    Empty => "the channel is empty",
    Disconnected => DISCONNECTED_RECV,
    Lagged { missed } => lagged(missed),
    Corrupted(c) => c,
    Forked => FORKED,
});

/// Why [`crate::Receiver::recv`] returned no message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecvError {
    /// Every sender is gone and the channel is drained.
    Disconnected,
    /// Broadcast, [`crate::Overflow::Overwrite`]: this subscriber fell
    /// more than a ring behind and the publisher wrote over `missed`
    /// messages it had not read; the next receive gets the oldest message
    /// still in the ring. Reported once per lap; the count is exact.
    Lagged {
        /// Messages lost to this subscriber.
        missed: u64,
    },
    /// The shared state is damaged.
    Corrupted(Corrupted),
    /// The endpoint was made by another process: this one is a child
    /// created by `fork` after it (see the crate documentation).
    Forked,
}

simple_display!(RecvError {
    Disconnected => DISCONNECTED_RECV,
    Lagged { missed } => lagged(missed),
    Corrupted(c) => c,
    Forked => FORKED,
});

/// Why [`crate::Receiver::recv_timeout`] returned no message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// Still empty when the time ran out.
    Timeout,
    /// Every sender is gone and the channel is drained.
    Disconnected,
    /// Broadcast, [`crate::Overflow::Overwrite`]: this subscriber fell
    /// more than a ring behind and the publisher wrote over `missed`
    /// messages it had not read; the next receive gets the oldest message
    /// still in the ring. Reported once per lap; the count is exact.
    Lagged {
        /// Messages lost to this subscriber.
        missed: u64,
    },
    /// The shared state is damaged.
    Corrupted(Corrupted),
    /// The endpoint was made by another process: this one is a child
    /// created by `fork` after it (see the crate documentation).
    Forked,
}

simple_display!(RecvTimeoutError {
    Timeout => "timed out waiting for a message",
    Disconnected => DISCONNECTED_RECV,
    Lagged { missed } => lagged(missed),
    Corrupted(c) => c,
    Forked => FORKED,
});

/// The outcome of a wait, mapped to each operation's error.
#[derive(Debug)]
pub(crate) enum WaitError {
    Full,
    Timeout,
    Disconnected,
    TooLarge {
        len: usize,
        max: usize,
    },
    Corrupted(Corrupted),
    Forked,
    /// A broadcast subscriber lapped: the messages it missed.
    Lagged(u64),
}

impl From<crate::wait::Stop> for WaitError {
    fn from(s: crate::wait::Stop) -> Self {
        match s {
            crate::wait::Stop::Disconnected => WaitError::Disconnected,
            crate::wait::Stop::Timeout => WaitError::Timeout,
        }
    }
}

impl From<WaitError> for TrySendError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Full | WaitError::Timeout | WaitError::Lagged(_) => TrySendError::Full,
            WaitError::Disconnected => TrySendError::Disconnected,
            WaitError::TooLarge { len, max } => TrySendError::TooLarge { len, max },
            WaitError::Corrupted(c) => TrySendError::Corrupted(c),
            WaitError::Forked => TrySendError::Forked,
        }
    }
}

impl From<WaitError> for SendError {
    fn from(e: WaitError) -> Self {
        match e {
            // A blocking send never times out; treat as disconnected if it does.
            WaitError::Full
            | WaitError::Timeout
            | WaitError::Disconnected
            | WaitError::Lagged(_) => SendError::Disconnected,
            WaitError::TooLarge { len, max } => SendError::TooLarge { len, max },
            WaitError::Corrupted(c) => SendError::Corrupted(c),
            WaitError::Forked => SendError::Forked,
        }
    }
}

impl From<WaitError> for SendTimeoutError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Full | WaitError::Timeout | WaitError::Lagged(_) => {
                SendTimeoutError::Timeout
            }
            WaitError::Disconnected => SendTimeoutError::Disconnected,
            WaitError::TooLarge { len, max } => SendTimeoutError::TooLarge { len, max },
            WaitError::Corrupted(c) => SendTimeoutError::Corrupted(c),
            WaitError::Forked => SendTimeoutError::Forked,
        }
    }
}

impl From<WaitError> for TryRecvError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Disconnected => TryRecvError::Disconnected,
            WaitError::Lagged(missed) => TryRecvError::Lagged { missed },
            WaitError::Corrupted(c) => TryRecvError::Corrupted(c),
            WaitError::Forked => TryRecvError::Forked,
            _ => TryRecvError::Empty,
        }
    }
}

impl From<WaitError> for RecvError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Corrupted(c) => RecvError::Corrupted(c),
            WaitError::Forked => RecvError::Forked,
            WaitError::Lagged(missed) => RecvError::Lagged { missed },
            _ => RecvError::Disconnected,
        }
    }
}

impl From<WaitError> for RecvTimeoutError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Timeout | WaitError::Full | WaitError::TooLarge { .. } => {
                RecvTimeoutError::Timeout
            }
            WaitError::Disconnected => RecvTimeoutError::Disconnected,
            WaitError::Lagged(missed) => RecvTimeoutError::Lagged { missed },
            WaitError::Corrupted(c) => RecvTimeoutError::Corrupted(c),
            WaitError::Forked => RecvTimeoutError::Forked,
        }
    }
}
