//! Sends numbered messages to `examples/consumer.rs`. Start the two in
//! either order, in two terminals:
//!
//! ```sh
//! cargo run --release --example consumer     # terminal 1
//! cargo run --release --example producer     # terminal 2 (-- --count 2000000 --size 4000)
//! ```
//!
//! Options: `--count N` messages (default 1000000) of `--size BYTES` bytes
//! (default 64, at least 8); `--path P` names the channel by `ftok(P, 1)`
//! (default `$TMPDIR/shmchan-demo`, created empty if missing).
//!
//! Messages start with a sequence number (`u64`, little endian). Even ones
//! are copied in by `send`; odd ones are written in place in the ring with
//! the zero-copy `reserve` and `Grant::commit`. The producer opens the
//! channel, or creates it if the consumer is not up yet, and never removes
//! it: the consumer does once it has drained it. Until a consumer connects, a
//! full ring waits like a pipe, and the rate printed counts that wait.
//!
//! Ctrl-C on either side is harmless (a killed endpoint is seen like a clean
//! drop); messages already sent wait in the ring for the next consumer. By
//! hand: `cargo run --bin shmchan -- rm /tmp/shmchan-demo` removes a channel
//! left behind (or `Channel::remove_key`).

mod demo;

use demo::{create_or_open, demo_key};

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use shmchan::{OpenError, Options, SendError};

/// The bytes after the sequence number.
const FILL: u8 = 0xa5;

const USAGE: &str = "usage: producer [--count N] [--size BYTES] [--path P]";

/// `--path`, `--count` (default a million) and `--size` (default 64).
fn parse_args() -> Result<(PathBuf, u64, usize), String> {
    let (path, count, size) = demo::parse_args(USAGE)?;
    let (count, size) = (count.unwrap_or(1_000_000), size.unwrap_or(64));
    if count == 0 || size < 8 {
        Err("--count must be at least 1, --size at least 8 (the sequence number)")?;
    }
    Ok((path, count, size))
}

fn run() -> Result<(), String> {
    let (path, count, size) = parse_args()?;
    let key = demo_key(&path)?;
    let at = format!("channel {key} ({})", path.display());
    // Not remove_on_drop: the consumer may still be draining when we exit.
    let (channel, created) =
        create_or_open(key, Options::default()).map_err(|e| format!("{at}: {e}"))?;
    if size > channel.max_message() {
        if created {
            let _ = channel.remove();
        }
        let max = channel.max_message();
        return Err(format!(
            "--size {size} is larger than the largest message of {at}, {max}"
        ));
    }
    let mut tx = channel.sender().map_err(|e| match e {
        OpenError::Busy => format!("{at}: another producer is already sending"),
        e => format!("{at}: {e}"),
    })?;
    let verb = if created { "created" } else { "opened" };
    println!("producer: {verb} {at}; sending {count} messages of {size} bytes");
    let mut buf = vec![FILL; size];
    let start = Instant::now();
    for seq in 0..count {
        let sent = if seq % 2 == 1 {
            // Zero-copy: write the message in place in the ring, then publish it.
            tx.reserve(size).map(|mut grant| {
                grant[..8].copy_from_slice(&seq.to_le_bytes());
                grant[8..].fill(FILL);
                grant.commit();
            })
        } else {
            buf[..8].copy_from_slice(&seq.to_le_bytes());
            tx.send(&buf)
        };
        sent.map_err(|e| match e {
            SendError::Disconnected => format!(
                "after {seq} messages: {e}; if no consumer ran, {at} may be left over from \
                 an earlier run: `shmchan rm {}` removes it",
                path.display()
            ),
            e => format!("send {seq}: {e}"),
        })?;
    }
    let secs = start.elapsed().as_secs_f64();
    // The consumer sees the end of the stream once it has drained the ring.
    drop(tx);
    let bytes = count * size as u64;
    println!(
        "producer: {count} messages ({} zero-copy), {bytes} bytes in {secs:.3} s: \
         {:.2} M msg/s, {:.1} MB/s",
        count / 2,
        count as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("producer: {e}");
            ExitCode::FAILURE
        }
    }
}
