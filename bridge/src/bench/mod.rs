//! `shmchan bridge bench`: the path A -> `to-nats` -> NATS -> `from-nats`
//! -> B measured beside plain NATS (a publisher connection and a
//! subscriber connection) in the same run, against the same server, so
//! that what the bridge itself costs shows.
//!
//! For each size and mode (core NATS; JetStream, with a stream made for
//! the row and deleted after it) two rows:
//! - `nats`: the bench's publisher and subscriber, each a thread with its
//!   own connection (JetStream: windowed asynchronous acknowledgements, up
//!   to 4,096 in flight, and a durable pull consumer acknowledging every
//!   256 messages, `AckPolicy::All`, as the bridges do);
//! - `bridge`: channels A and B, real `to-nats` and `from-nats` processes,
//!   the bench sending into A from one thread and receiving from B in
//!   another.
//!
//! Each row: a probe (one message at a time until one arrives: the
//! subscriptions are in place) and a warm-up, a throughput phase (N
//! messages as fast as the sender goes; msgs/s over the first send to the
//! last receipt, and what core NATS lost), and a latency phase (messages
//! at a fixed rate; one-way latency, from the send time each message
//! carries in its first 8 bytes, CLOCK_MONOTONIC, which is one clock for
//! every process of the machine, to its receipt).
//!
//! Robustness: every wait has a limit (a stuck row is reported as failed
//! and the next one runs); channels, children, streams and the server's
//! directory are guards, released on error and on panic; SIGINT, SIGTERM
//! and SIGHUP stop the run and clean up (a second signal, or a cleanup
//! that takes more than ten seconds, kills the children, removes the
//! channels and the directory at once and exits).

use std::fmt::Write as _;
use std::fs::File;
use std::future::{Future, IntoFuture};
use std::io::IsTerminal;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use async_nats::{Client, Subject};
use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use nix::sys::signal::{kill, Signal};
use nix::time::{clock_gettime, ClockId};
use nix::unistd::Pid;
use shmchan::{
    Channel, Key, OpenError, Options, Receiver, RecvTimeoutError, SendTimeoutError, Sender,
    TrySendError,
};

use crate::nats::DUPLICATE_WINDOW;
use crate::status;

/// What `shmchan bridge bench` measures.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Use this NATS server (nats://HOST:PORT) instead of starting one.
    /// Default: a nats-server (on PATH or in /usr/sbin) started for the
    /// run on a free loopback port, JetStream in a temporary directory,
    /// stopped and removed at the end.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Message sizes in bytes, comma-separated (at least 16: each message
    /// starts with its send time and its number).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "64,1024",
        value_name = "BYTES"
    )]
    pub sizes: Vec<usize>,
    /// Messages per throughput phase (default: 200,000 up to 256 bytes,
    /// 100,000 above, fewer past 2.5 KiB: at most 256 MiB a phase).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// The latency phase's offered rate, messages per second.
    #[arg(long, default_value_t = 20_000.0, value_name = "R")]
    pub rate: f64,
    /// Messages in the latency phase.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub latency_count: u64,
    /// Modes, comma-separated: core (at most once), jetstream (a stream
    /// made for each row and deleted after it).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "core,jetstream",
        value_name = "MODES"
    )]
    pub modes: Vec<Mode>,
    /// One JSON object per row instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Core NATS or JetStream.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Core NATS: at most once.
    Core,
    /// JetStream: a stream, acknowledged publishes, a durable consumer.
    Jetstream,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Core => "core",
            Mode::Jetstream => "jetstream",
        }
    }
}

/// Which path a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Plain NATS: the bench's publisher and subscriber.
    Nats,
    /// A -> to-nats -> NATS -> from-nats -> B.
    Bridge,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Nats => "nats",
            Route::Bridge => "bridge",
        }
    }
}

/// One row: what it measured, or why it failed.
#[derive(Debug, Clone)]
pub struct Row {
    pub size: usize,
    pub mode: Mode,
    pub route: Route,
    pub outcome: Result<Measured, String>,
}

/// The figures of a row.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Throughput phase: messages sent and received.
    pub sent: u64,
    pub received: u64,
    /// Received messages per second, from the first send to the last
    /// receipt.
    pub msgs_per_s: f64,
    /// Latency phase: messages sent and received, the offered rate and
    /// the rates achieved (sent, received).
    pub lat_sent: u64,
    pub lat_received: u64,
    pub lat_offered_per_s: f64,
    pub lat_sent_per_s: f64,
    pub lat_received_per_s: f64,
    /// One-way latency percentiles, nanoseconds.
    pub p50_ns: f64,
    pub p99_ns: f64,
    pub max_ns: f64,
    /// Anything odd (a bridge that did not stop cleanly, say).
    pub notes: Vec<String>,
}

impl Measured {
    fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }

    /// The path could not take the offered rate: the latencies grew for as
    /// long as the phase lasted.
    fn overloaded(&self) -> bool {
        self.lat_sent_per_s < 0.95 * self.lat_offered_per_s
            || self.lat_received_per_s < 0.95 * self.lat_offered_per_s
    }
}

/// Runs the benchmark and prints it (the table, or JSON lines with
/// `--json`). An error when it could not run at all, when it was
/// interrupted, or when a row failed (the others are printed).
pub fn main(args: &BenchArgs) -> Result<(), String> {
    let sizes = args.sizes.clone();
    if sizes.is_empty() || args.modes.is_empty() {
        return Err("nothing to measure (--sizes and --modes need at least one each)".into());
    }
    if let Some(&s) = sizes.iter().find(|&&s| s < HEADER) {
        return Err(format!(
            "size {s} is too small: a message carries its send time and its number, {HEADER} bytes"
        ));
    }
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err(format!("--rate {} is not a positive rate", args.rate));
    }
    if args.count == Some(0) || args.latency_count == 0 {
        return Err("--count and --latency-count must be positive".into());
    }
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the shmchan binary to run the bridges: {e}"))?;
    watch_signals()?;
    let scratch = Scratch::new()?;
    // Declared after the directory: stopped before it is removed.
    let (server, url) = match &args.server {
        Some(url) => (None, url.clone()),
        None => {
            let s = NatsServer::start(&scratch.0)?;
            let url = s.url();
            (Some(s), url)
        }
    };
    let info = admin(&url, |js| async move {
        let info = js.client().server_info();
        Ok(info)
    })
    .map_err(|e| format!("cannot reach the NATS server at {url}: {e}"))?;
    if !args.json {
        let whose = match &server {
            Some(_) => format!(
                "started for this run, JetStream in {}",
                scratch.0.join("js").display()
            ),
            None => "given with --server".to_string(),
        };
        println!(
            "bridge bench: nats-server {} at {url} ({whose}); {} cores",
            info.version,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let counts: Vec<String> = sizes
            .iter()
            .map(|&s| format!("{} ({s} B)", args.count.unwrap_or_else(|| default_count(s))))
            .collect();
        println!(
            "throughput: {} messages as fast as the sender goes; latency: {} messages at {} msg/s, one-way (send time to receipt, CLOCK_MONOTONIC); rings A and B: {}",
            counts.join(", "),
            args.latency_count,
            args.rate,
            sizes
                .iter()
                .map(|&s| format!("{} MiB ({s} B)", ring_capacity(s).next_power_of_two() >> 20))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let ctx = Ctx {
        url,
        exe,
        scratch: scratch.0.clone(),
        ids: AtomicU32::new(0),
    };
    let mut progress = progress_line();
    let mut rows = Vec::new();
    'all: for &size in &sizes {
        for &mode in &args.modes {
            for route in [Route::Nats, Route::Bridge] {
                if interrupted() {
                    break 'all;
                }
                let count = args.count.unwrap_or_else(|| default_count(size));
                let plan = Plan {
                    size,
                    warm: (count / 20).clamp(100, 5_000),
                    count,
                    lat_count: args.latency_count,
                    rate: args.rate,
                };
                progress(&format!("{size} B {} {}", mode.name(), route.name()));
                let outcome = if size > info.max_payload {
                    Err(format!(
                        "the server takes messages of at most {} bytes",
                        info.max_payload
                    ))
                } else if mode == Mode::Jetstream && !info.jetstream {
                    Err("the server has no JetStream".to_string())
                } else {
                    match route {
                        Route::Nats => nats_row(&ctx, mode, &plan),
                        Route::Bridge => bridge_row(&ctx, mode, &plan),
                    }
                };
                rows.push(Row {
                    size,
                    mode,
                    route,
                    outcome,
                });
            }
        }
    }
    progress_end();
    if args.json {
        for r in &rows {
            println!("{}", r.json(&rows));
        }
    } else {
        print!("{}", table(&rows));
    }
    drop(server);
    drop(scratch);
    if interrupted() {
        return Err("interrupted".into());
    }
    let failed = rows.iter().filter(|r| r.outcome.is_err()).count();
    if failed > 0 {
        return Err(format!("{failed} of {} rows failed", rows.len()));
    }
    Ok(())
}

/// The throughput phase's default message count for `size`.
fn default_count(size: usize) -> u64 {
    if size <= 256 {
        200_000
    } else {
        ((256usize << 20) / size).clamp(1_000, 100_000) as u64
    }
}

/// The capacity of rings A and B: room for 8,192 messages (to-nats holds
/// up to 4,096 in the ring until JetStream acknowledged them), at least
/// 4 MiB (the bridge tests' size).
fn ring_capacity(size: usize) -> usize {
    ((size + 16) * 8192).clamp(4 << 20, 256 << 20)
}

mod guards;
mod phases;
mod report;
mod rows;
mod sides;

use guards::*;
use phases::*;
use report::*;
use rows::*;
use sides::*;
