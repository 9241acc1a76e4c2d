//! `shmchan`: use and inspect shmchan channels from a shell.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shmchan::{bench, Channel, Key, OpenError};

#[derive(Parser)]
#[command(
    name = "shmchan",
    version,
    about = "Cross-process channels in System V shared memory"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure shmchan (SPSC, zero-copy, MPSC with 1, 2 and 4 producers)
    /// against a pipe, Unix stream and seqpacket sockets and the speed
    /// limits (limit-ring, memcpy, a cache line's round trip), producer and
    /// consumer in separate processes: throughput, round trips, the wake-up
    /// of a sleeping receiver and an idle receiver's CPU use.
    ///
    /// Example: shmchan bench --sizes 64,1024 --duration 1
    Bench(bench::Args),
    /// Remove channels (segment and semaphore set). Refuses segments that
    /// are not shmchan channels.
    ///
    /// Example: shmchan rm 0x1234 /tmp/mychannel
    Rm {
        /// Keys: a number (0x1234, 4660) or an existing path (ftok).
        #[arg(required = true)]
        keys: Vec<String>,
        /// Project id for ftok keys.
        #[arg(long, default_value_t = 1)]
        proj: i32,
    },
}

fn parse_key(s: &str, proj: i32) -> Result<Key, String> {
    let num = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok().map(|v| v as i32)
    } else if s.chars().all(|c| c.is_ascii_digit() || c == '-') && !s.is_empty() {
        s.parse::<i32>().ok()
    } else {
        None
    };
    match num {
        Some(n) => Ok(Key::raw(n)),
        None => Key::ftok(s, proj)
            .map_err(|e| format!("key {s}: {e} (give a number or an existing path)")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(args) => {
            let cfg = match args.config() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("shmchan: {e}");
                    return ExitCode::from(2);
                }
            };
            let rows = bench::run(&cfg, |what| eprint!("\r\x1b[2Kmeasuring {what}"));
            eprintln!("\r\x1b[2K");
            args.print(&rows);
            ExitCode::SUCCESS
        }
        Command::Rm { keys, proj } => {
            let mut failed = false;
            for s in &keys {
                let key = match parse_key(s, proj) {
                    Ok(k) => k,
                    Err(e) => {
                        eprintln!("shmchan: {e}");
                        failed = true;
                        continue;
                    }
                };
                match Channel::remove_key(key) {
                    Ok(()) => println!("removed {s} (key {key})"),
                    Err(OpenError::NotAChannel) => {
                        eprintln!(
                            "shmchan: {s} (key {key}) is not a shmchan channel; left untouched"
                        );
                        failed = true;
                    }
                    Err(e) => {
                        eprintln!("shmchan: {s} (key {key}): {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
