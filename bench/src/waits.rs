//! The waits that watch a file descriptor: `shmchan-async` (the receiver's
//! `recv_async` on a tokio current-thread runtime), `shmchan-select` (a
//! `Select` over the one channel) and `shmchan-select-1000` (a `Select`
//! over 1,000 channels, the message on the last): streaming through
//! `recv_async`, wake-ups of a waiter asleep, and the waiter's CPU while
//! every channel is idle. A current-thread runtime starts no thread, so
//! the harness stays single-threaded between its forks.

use std::time::Instant;

use shmchan::{Channel, Flavor, Receiver, Select};

use crate::{
    channel, channel_of, stamp, stamp_of, stream_for, two_processes, Config, SingleThreaded,
    IDLE_FOR, WAKE_PAUSE, WAKE_SAMPLES,
};

/// The transports of this module.
pub const TRANSPORTS: [&str; 3] = ["shmchan-async", "shmchan-select", "shmchan-select-1000"];

/// How many channels a transport's waiter watches.
fn channels(transport: &str) -> usize {
    if transport == "shmchan-select-1000" {
        1000
    } else {
        1
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio current-thread runtime")
}

/// Streams `size`-byte messages for `cfg.duration` from a blocking sender
/// to `recv_async` (each message copied out, as `shmchan`'s row does);
/// (messages, seconds) as [`crate::count_until`] counts them.
pub fn async_throughput(one: &SingleThreaded, size: usize, cfg: &Config) -> (u64, f64) {
    let ch = channel(size);
    let mut rx = ch.receiver().expect("receiver");
    // As the blocking row's receiver.
    rx.set_spin_limit(1000);
    let duration = cfg.duration;
    two_processes(
        one,
        cfg.pin,
        || {
            let mut tx = ch.sender().expect("sender");
            stream_for(duration, size, |m| tx.send(m).expect("send"));
        },
        || {
            runtime().block_on(async {
                let mut buf = vec![0u8; size];
                let (mut n, mut first, mut last) = (0u64, None, Instant::now());
                while let Ok(m) = rx.recv_async().await {
                    let k = m.len().min(size);
                    buf[..k].copy_from_slice(&m[..k]);
                    n += 1;
                    if first.is_none() {
                        first = Some(Instant::now());
                    }
                    if n.is_multiple_of(1024) {
                        last = Instant::now();
                    }
                }
                std::hint::black_box(&buf);
                let secs = last.duration_since(first.unwrap_or(last)).as_secs_f64();
                (n - n % 1024, secs)
            })
        },
    )
}

/// The channels a waiter watches (private, removed on drop), the sender
/// sending on the last.
fn waiting_channels(transport: &str, size: usize) -> Vec<Channel> {
    (0..channels(transport))
        .map(|_| channel_of(size, Flavor::Spsc))
        .collect()
}

/// Waits for the next message on any of `rxs` the way `transport` does;
/// `None` once the last channel's sender is gone.
fn wait_next(transport: &str, rxs: &mut [Receiver], rt: &tokio::runtime::Runtime) -> Option<u64> {
    let last = rxs.len() - 1;
    if transport == "shmchan-async" {
        return rt
            .block_on(rxs[last].recv_async())
            .ok()
            .map(|m| stamp_of(&m));
    }
    loop {
        let i = {
            let mut sel = Select::new();
            for rx in rxs.iter() {
                sel.recv(rx);
            }
            sel.ready()
        };
        match rxs[i].try_recv() {
            Ok(m) => return Some(stamp_of(&m)),
            Err(shmchan::TryRecvError::Empty) => {}
            Err(_) => return None,
        }
    }
}

/// Wake-ups of a waiter asleep: [`WAKE_SAMPLES`] messages, one every
/// [`WAKE_PAUSE`], each carrying its send time; nanoseconds from each send
/// to the waiter's return with it.
pub fn wake_ups(one: &SingleThreaded, transport: &str, size: usize, cfg: &Config) -> Vec<f64> {
    let size = size.max(8);
    let chans = waiting_channels(transport, size);
    let mut rxs: Vec<Receiver> = chans
        .iter()
        .map(|c| c.receiver().expect("receiver"))
        .collect();
    let last = chans.last().expect("a channel");
    two_processes(
        one,
        cfg.pin,
        || {
            let mut tx = last.sender().expect("sender");
            let mut buf = vec![0u8; size];
            for _ in 0..WAKE_SAMPLES {
                std::thread::sleep(WAKE_PAUSE);
                stamp(&mut buf, crate::os::monotonic_ns());
                tx.send(&buf).expect("send");
            }
        },
        || {
            let rt = runtime();
            let mut samples = Vec::with_capacity(WAKE_SAMPLES);
            while let Some(sent) = wait_next(transport, &mut rxs, &rt) {
                samples.push(crate::os::monotonic_ns().saturating_sub(sent) as f64);
            }
            samples
        },
    )
}

/// The waiter's CPU use (percent of a core) while its channels stay idle
/// for [`IDLE_FOR`] (their senders connected and silent).
pub fn idle_cpu(one: &SingleThreaded, transport: &str, cfg: &Config) -> f64 {
    let chans = waiting_channels(transport, 64);
    let mut rxs: Vec<Receiver> = chans
        .iter()
        .map(|c| c.receiver().expect("receiver"))
        .collect();
    two_processes(
        one,
        cfg.pin,
        || {
            let _txs: Vec<_> = chans.iter().map(|c| c.sender().expect("sender")).collect();
            std::thread::sleep(IDLE_FOR);
        },
        || {
            let rt = runtime();
            let (cpu, wall) = (crate::os::thread_cpu_ns(), Instant::now());
            while wait_next(transport, &mut rxs, &rt).is_some() {}
            let cpu = crate::os::thread_cpu_ns() - cpu;
            100.0 * cpu as f64 / wall.elapsed().as_nanos().max(1) as f64
        },
    )
}
