//! [`Options`]: how [`crate::Channel::create`] makes a channel.

use std::time::Duration;

use crate::error::OpenError;
use crate::layout::{Flavor, Layout, Overflow};

/// Options for [`crate::Channel::create`].
///
/// ```
/// use shmchan::{Flavor, Options};
/// let opts = Options::default().capacity(1 << 20).max_message(64 << 10).mode(0o600).flavor(Flavor::Spsc);
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    capacity: usize,
    max_message: Option<usize>,
    mode: u32,
    flavor: Flavor,
    sender_slots: Option<usize>,
    subscriber_slots: Option<usize>,
    overflow: Overflow,
    remove_on_drop: bool,
    #[cfg(feature = "test-hooks")]
    init_stall: Option<Duration>,
}

impl Default for Options {
    /// 1 MiB ring, messages up to a quarter of it, mode `0o600`, SPSC, kept
    /// after the creator's handle drops.
    fn default() -> Options {
        Options {
            capacity: 1 << 20,
            max_message: None,
            mode: 0o600,
            flavor: Flavor::Spsc,
            sender_slots: None,
            subscriber_slots: None,
            overflow: Overflow::Block,
            remove_on_drop: false,
            #[cfg(feature = "test-hooks")]
            init_stall: None,
        }
    }
}

impl Options {
    /// Size of the data region in bytes, rounded up to a power of two
    /// (at least 64).
    pub fn capacity(mut self, bytes: usize) -> Options {
        self.capacity = bytes;
        self
    }

    /// The largest message in bytes (default: a quarter of the capacity,
    /// less a record header). At most `capacity - 16`: the largest record
    /// and the free header word past it fill the ring.
    pub fn max_message(mut self, bytes: usize) -> Options {
        self.max_message = Some(bytes);
        self
    }

    /// Permission bits of the segment and the semaphore set (default
    /// `0o600`). Users need read and write permission to use a channel.
    pub fn mode(mut self, mode: u32) -> Options {
        self.mode = mode;
        self
    }

    /// SPSC, MPSC or broadcast.
    pub fn flavor(mut self, flavor: Flavor) -> Options {
        self.flavor = flavor;
        self
    }

    /// MPSC: the most senders alive at once, in all processes together
    /// (default [`crate::layout::DEFAULT_SENDER_SLOTS`], at most
    /// [`crate::layout::MAX_SENDER_SLOTS`]). Each takes one 128-byte line of the
    /// segment's sender table; one more sender gets
    /// [`OpenError::TooManySenders`].
    pub fn max_senders(mut self, senders: usize) -> Options {
        self.sender_slots = Some(senders);
        self
    }

    /// Broadcast: the most subscribers alive at once, in all processes
    /// together (default [`crate::layout::DEFAULT_SUBSCRIBERS`], 16; at
    /// most [`crate::layout::MAX_SUBSCRIBERS`]). Each takes one 128-byte
    /// line of the segment; one more gets
    /// [`OpenError::TooManySubscribers`].
    pub fn max_subscribers(mut self, subscribers: usize) -> Options {
        self.subscriber_slots = Some(subscribers);
        self
    }

    /// Broadcast: what the publisher does when the slowest subscriber is a
    /// ring behind: wait ([`Overflow::Block`], the default: nothing is lost
    /// for a live subscriber), or write over the oldest messages
    /// ([`Overflow::Overwrite`]: the publisher never waits, and a
    /// subscriber that lagged gets `Lagged { missed }` once). Other
    /// flavors: only `Block`.
    pub fn overflow(mut self, overflow: Overflow) -> Options {
        self.overflow = overflow;
        self
    }

    /// Test hook (feature `test-hooks`, for this crate's own tests only):
    /// `create` sleeps this long after writing the header and before
    /// marking the channel ready, so that a test can kill a creator in the
    /// middle of initialising.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn init_stall(mut self, stall: Duration) -> Options {
        self.init_stall = Some(stall);
        self
    }

    /// Remove the channel's IPC objects when the creating handle (and every
    /// clone of it in the creating process) is dropped.
    pub fn remove_on_drop(mut self, yes: bool) -> Options {
        self.remove_on_drop = yes;
        self
    }

    /// The layout these options ask for (the flavor, the capacity rounded
    /// up, the maximum message, the sender table), or why they cannot
    /// make a channel.
    pub(crate) fn layout(&self) -> Result<Layout, OpenError> {
        if self.mode & !0o777 != 0 {
            return Err(OpenError::InvalidOptions(format!(
                "mode {:#o} has bits outside 0o777",
                self.mode
            )));
        }
        let mut layout = Layout::new(self.flavor, self.capacity, self.max_message)
            .map_err(OpenError::InvalidOptions)?;
        let slots = match self.flavor {
            Flavor::Broadcast => {
                if self.sender_slots.is_some() {
                    return Err(OpenError::InvalidOptions(
                        "max_senders is for MPSC channels; a broadcast channel has one publisher"
                            .into(),
                    ));
                }
                self.subscriber_slots
            }
            _ => {
                if self.subscriber_slots.is_some() {
                    return Err(OpenError::InvalidOptions(
                        "max_subscribers is for broadcast channels".into(),
                    ));
                }
                self.sender_slots
            }
        };
        if let Some(n) = slots {
            layout = layout
                .with_sender_slots(n)
                .map_err(OpenError::InvalidOptions)?;
        }
        layout
            .with_overflow(self.overflow)
            .map_err(OpenError::InvalidOptions)
    }

    /// The permission bits to give the objects once initialised.
    pub(crate) fn mode_bits(&self) -> u32 {
        self.mode
    }

    /// Whether the creating handle removes the objects when dropped.
    pub(crate) fn removes_on_drop(&self) -> bool {
        self.remove_on_drop
    }

    /// The test hook's stall, if any.
    pub(crate) fn stall(&self) -> Option<Duration> {
        #[cfg(feature = "test-hooks")]
        return self.init_stall;
        #[cfg(not(feature = "test-hooks"))]
        None
    }
}
