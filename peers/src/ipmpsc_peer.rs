//! [`ipmpsc`] as a peer: a `SharedRingBuffer` (a memory-mapped file with a
//! process-shared mutex and condition variable) per direction.
//!
//! - Payload: the message's bytes as a `serde_bytes::Bytes`, which bincode
//!   writes as a length and one copy of the bytes (a plain `&[u8]` would be
//!   serialized byte by byte); received in place with a `ZeroCopyContext`
//!   as a `&[u8]` and copied out, as the harness's shmchan receiver does.
//! - Ring: [`ring_bytes`] of data, the same as shmchan's, in a fresh file
//!   in `/dev/shm` (memory, as shmchan's segments; a file on disk would add
//!   writeback), removed when the measurement ends.
//! - End of stream: ipmpsc has no disconnect, so the sender ends with a
//!   message of another length ([`sentinel_len`]); a receiver that hears
//!   nothing, or a sender that finds no room, for [`STALL`] gives up.
//! - Receiving: streaming, [`SPINS`] attempts with `try_recv`, then the
//!   blocking receive (as shmchan's receiver: spin, then sleep); round
//!   trips, both sides spin on `try_recv`.

use std::path::PathBuf;

use ipmpsc::{Receiver, Sender, SharedRingBuffer};
use serde_bytes::Bytes;
use shmchan_bench::{
    count_until, ring_bytes, stamp, stream_for, two_processes, Config, Peer, SingleThreaded,
};

use crate::{sentinel_len, unique_name, Stall, SPINS, STALL};

/// ipmpsc, from crates.io.
pub struct Ipmpsc;

/// A ring buffer in a file of its own, removed on drop.
struct Ring {
    path: String,
    buffer: SharedRingBuffer,
}

impl Ring {
    /// A fresh ring for `size`-byte messages.
    fn create(size: usize) -> Ring {
        let dir = PathBuf::from("/dev/shm");
        let dir = if dir.is_dir() {
            dir
        } else {
            std::env::temp_dir()
        };
        let path = dir
            .join(unique_name("ipmpsc"))
            .to_str()
            .expect("a UTF-8 temporary path")
            .to_string();
        let bytes = u32::try_from(ring_bytes(size)).expect("ring size fits in u32");
        let buffer = SharedRingBuffer::create(&path, bytes).expect("ipmpsc: create the ring");
        Ring { path, buffer }
    }

    /// The ring as another process opens it.
    fn open(&self) -> SharedRingBuffer {
        SharedRingBuffer::open(&self.path).expect("ipmpsc: open the ring")
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Receives the next message and hands it to `f` where it lies in the ring:
/// `spins` attempts with `try_recv`, then the blocking receive (at most
/// [`STALL`]).
fn recv_with<R>(rx: &mut Receiver, spins: u32, f: impl FnOnce(&[u8]) -> R) -> R {
    let mut stall = Stall::new("ipmpsc receive");
    let mut tries = 0u32;
    loop {
        let mut ctx = rx.zero_copy_context();
        if tries < spins {
            if let Some(m) = ctx.try_recv::<&[u8]>().expect("ipmpsc: try_recv") {
                return f(m);
            }
            tries += 1;
            stall.poll();
            std::hint::spin_loop();
            continue;
        }
        let m = ctx
            .recv_timeout::<&[u8]>(STALL)
            .expect("ipmpsc: recv")
            .unwrap_or_else(|| {
                panic!(
                    "ipmpsc receive: nothing for {} s; the other process has died or hangs",
                    STALL.as_secs()
                )
            });
        return f(m);
    }
}

/// Sends `m`, waiting for room at most [`STALL`] (ipmpsc's blocking send
/// would wait forever for a receiver that has died).
fn send(tx: &Sender, m: &[u8]) {
    let sent = tx
        .send_timeout(&Bytes::new(m), STALL)
        .expect("ipmpsc: send");
    assert!(
        sent,
        "ipmpsc send: no room for {} s; the other process has died or hangs",
        STALL.as_secs()
    );
}

impl Peer for Ipmpsc {
    fn name(&self) -> String {
        "ipmpsc".to_string()
    }

    fn throughput(&self, one: &SingleThreaded, size: usize, cfg: &Config) -> (u64, f64) {
        let ring = Ring::create(size);
        let duration = cfg.duration;
        two_processes(
            one,
            cfg.pin,
            || {
                let tx = Sender::new(ring.open());
                stream_for(duration, size, |m| send(&tx, m));
                send(&tx, &vec![0u8; sentinel_len(size)]);
            },
            || {
                let mut rx = Receiver::new(ring.buffer.clone());
                let mut buf = vec![0u8; size];
                count_until(|| {
                    recv_with(&mut rx, SPINS, |m| {
                        if m.len() != size {
                            return false;
                        }
                        buf.copy_from_slice(m);
                        true
                    })
                })
            },
        )
    }

    fn round_trips(&self, one: &SingleThreaded, size: usize, cfg: &Config) -> Option<Vec<f64>> {
        let n = cfg.round_trips;
        let warmup = shmchan_bench::warmup_round_trips(size, n);
        let mut samples = Vec::with_capacity(n);
        let (ping, pong) = (Ring::create(size), Ring::create(size));
        two_processes(
            one,
            cfg.pin,
            || {
                let mut rx = Receiver::new(ping.open());
                let tx = Sender::new(pong.open());
                while recv_with(&mut rx, u32::MAX, |m| {
                    if m.len() != size {
                        return false;
                    }
                    send(&tx, m);
                    true
                }) {}
            },
            || {
                let tx = Sender::new(ping.buffer.clone());
                let mut rx = Receiver::new(pong.buffer.clone());
                let mut buf = vec![0u8; size];
                for i in 0..n + warmup {
                    stamp(&mut buf, i as u64);
                    let t = std::time::Instant::now();
                    send(&tx, &buf);
                    recv_with(&mut rx, u32::MAX, |m| buf.copy_from_slice(m));
                    let dt = t.elapsed();
                    if i >= warmup {
                        samples.push(dt.as_nanos() as f64);
                    }
                }
                send(&tx, &vec![0u8; sentinel_len(size)]);
            },
        );
        samples.sort_by(|a, b| a.total_cmp(b));
        Some(samples)
    }
}
