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
        /// (default: shmchan-HOST-KEY; one bridge per consumer).
        #[arg(long, value_name = "NAME", requires = "stream")]
        durable: Option<String>,
        #[command(flatten)]
        key: KeyOpts,
    },
    /// Measure the bridge: the path A -> to-nats -> NATS -> from-nats -> B
    /// (real bridge processes) beside plain NATS (a publisher and a
    /// subscriber connection) against the same server in the same run,
    /// for each size and mode (core NATS; JetStream, with a stream made
    /// for the run and deleted after it): throughput (messages as fast as
    /// the sender goes, and what core NATS lost) and one-way latency at a
    /// fixed rate (p50, p99), and the ratio of the two paths, the bridge's
    /// own cost. Starts its own nats-server (JetStream in a temporary
    /// directory, on a free loopback port) unless given --server.
    ///
    /// Example: shmchan bridge bench --sizes 64,1024 --modes core,jetstream --rate 20000
    Bench(shmchan_bridge::bench::BenchArgs),
}

pub fn run(cmd: BridgeCommand) -> Result<(), Fail> {
    let (side, at, result) = match cmd {
        BridgeCommand::Bench(args) => {
            return shmchan_bridge::bench::main(&args).map_err(|e| format!("bridge bench: {e}"))
        }
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
