//! `shmchan bridge to-nats` and `from-nats`: the options, handed to the
//! `shmchan-bridge` crate.

use clap::Subcommand;
use shmchan_bridge::{from_nats, to_nats, BridgeError, NatsArgs};

use crate::{open_failure, Fail, KeyOpts};

#[derive(Subcommand)]
pub enum BridgeCommand {
    /// Receive every message of channel KEY (or subscribe to a broadcast
    /// channel) and publish it to NATS subject SUBJ. Core NATS (at most
    /// once) without --stream; with --stream, a message leaves the ring
    /// only once JetStream acknowledged it, and carries a message id, so a
    /// bridge restarted after a crash loses nothing and doubles nothing.
    ///
    /// Example: shmchan bridge to-nats /tmp/k --server nats://10.0.0.5:4222 --subject md.ticks --stream TICKS
    ToNats {
        #[command(flatten)]
        key: KeyOpts,
        #[command(flatten)]
        nats: NatsArgs,
        /// The subject every message is published to.
        #[arg(long, value_name = "SUBJ")]
        subject: String,
        /// JetStream: the stream to publish into (created with file
        /// storage, SUBJ and a two-minute duplicate window when missing).
        #[arg(long, value_name = "NAME")]
        stream: Option<String>,
        /// Broadcast: subscribe at the oldest message still in the ring
        /// (default: the next one published).
        #[arg(long)]
        from_oldest: bool,
    },
    /// Subscribe to NATS subject SUBJ and send every message into channel
    /// KEY. Core NATS (at most once) without --stream; with --stream, a
    /// durable consumer acknowledges a message only once it is committed
    /// into the ring, and the bridge waits while the ring is full.
    ///
    /// Example: shmchan bridge from-nats --server nats://10.0.0.5:4222 --subject md.ticks --stream TICKS --durable host-b /tmp/k
    FromNats {
        #[command(flatten)]
        nats: NatsArgs,
        /// The subject to read.
        #[arg(long, value_name = "SUBJ")]
        subject: String,
        /// JetStream: the stream to read (created as to-nats creates it
        /// when missing).
        #[arg(long, value_name = "NAME")]
        stream: Option<String>,
        /// JetStream: the durable consumer that keeps the bridge's place
        /// (default: shmchan-KEY).
        #[arg(long, value_name = "NAME", requires = "stream")]
        durable: Option<String>,
        #[command(flatten)]
        key: KeyOpts,
    },
}

pub fn run(cmd: BridgeCommand) -> Result<(), Fail> {
    let (side, at, result) = match cmd {
        BridgeCommand::ToNats {
            key,
            nats,
            subject,
            stream,
            from_oldest,
        } => {
            let k = key.resolve()?;
            let cfg = to_nats::ToNats {
                key: k,
                nats,
                subject,
                stream,
                from_oldest,
            };
            let r = shmchan_bridge::block_on(to_nats::run(cfg)).map(|s| s.to_string());
            ("to-nats", key.key.to_string(), r)
        }
        BridgeCommand::FromNats {
            nats,
            subject,
            stream,
            durable,
            key,
        } => {
            let k = key.resolve()?;
            let cfg = from_nats::FromNats {
                key: k,
                nats,
                subject,
                stream,
                durable,
            };
            let r = shmchan_bridge::block_on(from_nats::run(cfg)).map(|s| s.to_string());
            ("from-nats", key.key.to_string(), r)
        }
    };
    match result {
        Ok(summary) => {
            shmchan_bridge::status(summary);
            Ok(())
        }
        Err(BridgeError::Channel(e)) => Err(open_failure(&e, &at, "endpoint")),
        Err(e) => Err(format!("bridge {side}: {e}")),
    }
}
