//! Receives the messages of `examples/producer.rs`, checks their order and
//! reports the rate. Start the two in either order, in two terminals:
//!
//! ```sh
//! cargo run --release --example consumer     # terminal 1
//! cargo run --release --example producer     # terminal 2 (-- --count 2000000 --size 4000)
//! ```
//!
//! Options: `--path P` names the channel by `ftok(P, 1)` (default
//! `$TMPDIR/shmchan-demo`, created empty if missing); `--count N` and `--size
//! BYTES` check the number and size of the messages. Prints a line per 100000.
//!
//! It creates the channel, or opens it if the producer came first. Messages
//! start with a sequence number (`u64`, little endian); a gap is an error
//! (exit status 1). It ends when the producer is gone and the ring drained,
//! then removes the channel if it created it or if its creator (a producer
//! that came first) has exited, and leaves it to a creator that still runs.
//!
//! Ctrl-C on either side is harmless (a killed endpoint is seen like a clean
//! drop). A channel left behind keeps its messages: the next consumer resumes
//! at the first one not received, and removes the channel at its end (an
//! empty one at once, then makes a new one). By hand:
//! `cargo run --bin shmchan -- rm /tmp/shmchan-demo` (or `Channel::remove_key`).

mod demo;

use demo::{create_or_open, demo_key};

use std::process::ExitCode;
use std::time::{Duration, Instant};

use shmchan::{Channel, OpenError, Options, RecvError};

const USAGE: &str = "usage: consumer [--path P] [--count N] [--size BYTES]";
/// A progress line per this many messages.
const EVERY: u64 = 100_000;

/// Whether the channel's creator has exited, waiting up to 2 s for it (a
/// producer that created the channel exits right after its last message).
fn creator_gone(channel: &Channel) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while channel.stats().is_ok_and(|s| s.creator_alive) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

fn run() -> Result<(), String> {
    let (path, count, size) = demo::parse_args(USAGE)?;
    let key = demo_key(&path)?;
    let at = format!("channel {key} ({})", path.display());
    loop {
        // remove_on_drop: a channel created here is removed on every return.
        let (channel, created) = create_or_open(key, Options::default().remove_on_drop(true))
            .map_err(|e| format!("{at}: {e}"))?;
        let mut rx = channel.receiver().map_err(|e| match e {
            OpenError::Busy => format!("{at}: another consumer is already receiving"),
            e => format!("{at}: {e}"),
        })?;
        let verb = if created { "created" } else { "opened" };
        println!("consumer: {verb} {at}; waiting for messages");
        let (mut n, mut bytes, mut next, mut start) = (0u64, 0u64, 0u64, Instant::now());
        loop {
            let msg = match rx.recv() {
                Ok(msg) => msg,
                Err(RecvError::Disconnected) => break,
                Err(e) => return Err(format!("recv: {e}")),
            };
            let Some(&seq) = msg.first_chunk::<8>() else {
                return Err(format!("message {n} is shorter than 8 bytes"));
            };
            let seq = u64::from_le_bytes(seq);
            if n == 0 {
                start = Instant::now();
                next = seq;
                if seq != 0 {
                    println!("consumer: resuming at sequence {seq}, left by an earlier run");
                }
            }
            if seq != next {
                return Err(format!("sequence gap: expected {next}, got {seq}"));
            }
            if let Some(s) = size.filter(|&s| s != msg.len()) {
                return Err(format!("message {seq} has {} bytes, not {s}", msg.len()));
            }
            (n, bytes, next) = (n + 1, bytes + msg.len() as u64, next + 1);
            if n % EVERY == 0 {
                let rate = n as f64 / start.elapsed().as_secs_f64();
                println!("consumer: {n:>10} messages, {:.2} M msg/s", rate / 1e6);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        drop(rx);
        if n == 0 && !created && creator_gone(&channel) {
            // The producer had gone and left nothing: a leftover. Start afresh.
            channel.remove().map_err(|e| format!("{at}: remove: {e}"))?;
            println!("consumer: removed an empty {at} left by an earlier run");
            continue;
        }
        println!(
            "consumer: {n} messages, {bytes} bytes in {secs:.3} s: {:.2} M msg/s, {:.1} MB/s",
            n as f64 / secs / 1e6,
            bytes as f64 / secs / 1e6
        );
        if created {
            println!("consumer: removing {at}, created here");
        } else if creator_gone(&channel) {
            channel.remove().map_err(|e| format!("{at}: remove: {e}"))?;
            println!("consumer: removed {at}, whose creator has exited");
        } else {
            println!("consumer: leaving {at} to its creator, which still runs");
        }
        return match count {
            _ if n == 0 => Err("the producer left without sending a message".into()),
            Some(c) if c != n => Err(format!("expected {c} messages, received {n}")),
            _ => Ok(()),
        };
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("consumer: {e}");
            ExitCode::FAILURE
        }
    }
}
