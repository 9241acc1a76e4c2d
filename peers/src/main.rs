//! `peers`: shmchan's benchmark harness ([`shmchan_bench`]) with other
//! shared-memory IPC crates as extra transports, measured by the same rules
//! and printed in the same table: [`ipmpsc`] and [`iceoryx2`] (and
//! iceoryx2 publish-subscribe with 1 and 3 subscriber processes beside
//! shmchan's broadcast rows: `iceoryx2-bcast-1`, `iceoryx2-bcast-3`).
//!
//! `cargo run --release -p peers -- bench [flags]` takes the flags of
//! `shmchan bench`.

mod iceoryx2_peer;
mod ipmpsc_peer;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use shmchan_bench::{self as bench, Peer};

use crate::iceoryx2_peer::{Iceoryx2, Iceoryx2Broadcast};
use crate::ipmpsc_peer::Ipmpsc;

#[derive(Parser)]
#[command(
    name = "peers",
    about = "shmchan's benchmark with other IPC crates (ipmpsc, iceoryx2) as extra transports"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure the built-in transports of `shmchan bench` and, after them,
    /// ipmpsc and iceoryx2 (producer and consumer in separate processes,
    /// the same harness): throughput and round trips; and iceoryx2
    /// publish-subscribe with 1 and 3 subscriber processes
    /// (iceoryx2-bcast-1, iceoryx2-bcast-3: one publisher, each subscriber
    /// receiving and checking every sample, the publisher waiting for the
    /// slowest, as shmchan-bcast-N): the publisher's rate, and the
    /// subscribers' below the table.
    ///
    /// The peers run whatever --transports says, unless it names one of
    /// them (ipmpsc, iceoryx2, iceoryx2-bcast-1, iceoryx2-bcast-3): then
    /// only the peers it names run.
    ///
    /// Example: peers bench --sizes 64,1024 --transports shmchan,pipe
    Bench(bench::Args),
}

/// The peers this crate measures, by name.
const PEERS: &[&str] = &["ipmpsc", "iceoryx2", "iceoryx2-bcast-1", "iceoryx2-bcast-3"];

/// How long a receiver waits for the next message (or a publisher for its
/// subscriber) before it gives up: the other process must have died.
pub const STALL: Duration = Duration::from_secs(10);

/// Receive attempts a streaming consumer spins through before it blocks
/// (where the transport can block), as shmchan's receivers do in the
/// harness (spin limit 1000).
pub const SPINS: u32 = 1000;

/// The length of the end-of-stream message for `size`-byte payloads: any
/// length but `size` (neither ipmpsc nor iceoryx2 tells a receiver that the
/// sender left).
pub fn sentinel_len(size: usize) -> usize {
    usize::from(size == 0)
}

/// A name no other run uses: `peers-<what>-<pid>-<counter>`. Call it in
/// the parent, before the fork, so that both processes agree on it.
pub fn unique_name(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "peers-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Tracks how long a wait has lasted without progress; reads the clock only
/// every 4096 polls.
pub struct Stall {
    what: &'static str,
    polls: u32,
    since: Option<Instant>,
}

impl Stall {
    /// A fresh wait for `what` (the text of the panic if it stalls).
    pub fn new(what: &'static str) -> Stall {
        Stall {
            what,
            polls: 0,
            since: None,
        }
    }

    /// One more unsuccessful poll: panics (in a benchmark process, like
    /// the harness's `expect`s) once [`STALL`] has passed without progress.
    pub fn poll(&mut self) {
        self.polls = self.polls.wrapping_add(1);
        if self.polls.is_multiple_of(4096) {
            let since = *self.since.get_or_insert_with(Instant::now);
            if since.elapsed() > STALL {
                panic!(
                    "{}: nothing for {} s; the other process has died or hangs",
                    self.what,
                    STALL.as_secs()
                );
            }
        }
    }
}

/// Which peers `--transports` asks for, taking their names out of it.
fn select_peers(args: &mut bench::Args) -> Vec<&'static str> {
    let Some(t) = &mut args.transports else {
        return PEERS.to_vec();
    };
    let named: Vec<&'static str> = PEERS
        .iter()
        .copied()
        .filter(|p| t.iter().any(|n| n == p))
        .collect();
    t.retain(|n| !PEERS.contains(&n.as_str()));
    if named.is_empty() {
        PEERS.to_vec()
    } else {
        named
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(mut args) => {
            let selected = select_peers(&mut args);
            let cfg = match args.config() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("peers: {e} (and the peers: {})", PEERS.join(", "));
                    return ExitCode::from(2);
                }
            };
            let (bcast_1, bcast_3) = (
                Iceoryx2Broadcast { subscribers: 1 },
                Iceoryx2Broadcast { subscribers: 3 },
            );
            let peers: Vec<&dyn Peer> = selected
                .iter()
                .map(|&p| match p {
                    "ipmpsc" => &Ipmpsc as &dyn Peer,
                    "iceoryx2-bcast-1" => &bcast_1 as &dyn Peer,
                    "iceoryx2-bcast-3" => &bcast_3 as &dyn Peer,
                    _ => &Iceoryx2 as &dyn Peer,
                })
                .collect();
            // SAFETY: the main thread, and nothing here starts another (ipmpsc
            // and iceoryx2 start no threads of their own).
            let one = unsafe { bench::SingleThreaded::new() };
            let rows = bench::run_with(&one, &cfg, &peers, bench::progress_line());
            bench::progress_end();
            args.print(&rows);
            ExitCode::SUCCESS
        }
    }
}
