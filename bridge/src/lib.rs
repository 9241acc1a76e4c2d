//! Bridges between a shmchan channel and NATS, for consumers (or
//! producers) on other hosts: `shmchan bridge to-nats` is the channel's
//! receiver and publishes every message to a NATS subject;
//! `shmchan bridge from-nats` subscribes to a subject and is a sender into
//! a channel. The transport across hosts is NATS's own (clustering, TLS,
//! authentication, leaf nodes): nothing here is a protocol of ours.
//!
//! Two modes:
//! - **Core NATS** (no `--stream`): at most once. `to-nats` releases a
//!   message from the ring when it hands it to the client, and flushes
//!   every [`to_nats::CORE_FLUSH_EVERY`] messages, so a `to-nats` crash
//!   loses at most that many; a message published while no `from-nats`
//!   is subscribed, or dropped by the server or the client for a slow
//!   consumer, is lost.
//! - **JetStream** (`--stream NAME`): `to-nats` releases a message from the
//!   ring only after JetStream acknowledged it, and gives each a message id
//!   (the channel's identity and the message's position), so a bridge
//!   restarted after a crash publishes again what it had not released and
//!   JetStream drops the repeats inside its duplicate window: nothing lost,
//!   nothing doubled. Each publish also names its predecessor
//!   (`Nats-Expected-Last-Msg-Id`), so a message lost in a server restart
//!   cannot be overtaken by the next one: the stream holds the channel's
//!   messages in order. `from-nats` reads through a durable consumer in
//!   stream order and acknowledges a message only after it is committed
//!   into the ring (waiting, not dropping, while the ring is full).
//!
//! The payload is the message's bytes, unchanged; the metadata is in NATS
//! headers ([`HEADER_KEY`], [`HEADER_CHANNEL`], [`HEADER_POSITION`], and
//! `Nats-Msg-Id` in JetStream mode).

pub mod bench;
pub mod from_nats;
mod nats;
pub mod to_nats;

use std::fmt;

pub use nats::NatsArgs;

/// The header with the source channel's key (as `shmchan` prints it).
pub const HEADER_KEY: &str = "Shmchan-Key";
/// The header with the source channel's identity: its key, its segment's
/// id and its creation time, which tell apart two channels created at one
/// key one after the other.
pub const HEADER_CHANNEL: &str = "Shmchan-Channel";
/// The header with the message's position in the source channel (bytes
/// the channel had carried before it; see [`shmchan::Held`]).
pub const HEADER_POSITION: &str = "Shmchan-Position";

/// Why a bridge stopped with an error.
#[derive(Debug)]
pub enum BridgeError {
    /// The NATS server could not be reached at start.
    Unreachable { server: String, reason: String },
    /// The channel could not be opened, or its endpoint made.
    Channel(shmchan::OpenError),
    /// The channel broke (a corrupted segment, a removed one).
    Ring(String),
    /// JetStream refused the stream or the consumer.
    JetStream(String),
    /// Reading the bridge's own options (a credentials file, say).
    Setup(String),
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::Unreachable { server, reason } => {
                write!(f, "cannot reach the NATS server at {server}: {reason}")
            }
            BridgeError::Channel(e) => write!(f, "{e}"),
            BridgeError::Ring(e) => write!(f, "the channel failed: {e}"),
            BridgeError::JetStream(e) => write!(f, "JetStream: {e}"),
            BridgeError::Setup(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BridgeError {}

impl From<shmchan::OpenError> for BridgeError {
    fn from(e: shmchan::OpenError) -> BridgeError {
        BridgeError::Channel(e)
    }
}

/// One line on stderr, marked as the bridge's.
pub fn status(line: impl fmt::Display) {
    eprintln!("shmchan bridge: {line}");
}

/// Runs `bridge` to completion on a single-threaded tokio runtime (the
/// channel's endpoints are not `Sync`, and one core is what a bridge
/// needs). `Ok` when it stopped cleanly: a signal, or the end of the
/// stream.
pub fn block_on<F, T>(bridge: F) -> Result<T, BridgeError>
where
    F: std::future::Future<Output = Result<T, BridgeError>>,
{
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BridgeError::Setup(format!("cannot start the runtime: {e}")))?
        .block_on(bridge)
}

/// SIGTERM and SIGINT, caught from the bridge's start (installed before
/// it connects, so that a signal at any point stops it cleanly).
pub(crate) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub(crate) fn install() -> Result<Signals, BridgeError> {
        use tokio::signal::unix::{signal, SignalKind};
        let e = |e: std::io::Error| BridgeError::Setup(format!("cannot catch signals: {e}"));
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(e)?,
            int: signal(SignalKind::interrupt()).map_err(e)?,
        })
    }

    /// Resolves at the next SIGTERM or SIGINT (or at once for one that
    /// came since the last call).
    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
