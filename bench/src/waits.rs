//! The waits that watch a file descriptor: `shmchan-async` (the receiver's
//! `recv_async` on a tokio current-thread runtime), `shmchan-async-mt`
//! (the same on a multi-thread runtime of two workers), `shmchan-select`
//! (a `Select` over the one channel) and `shmchan-select-1000` (a
//! `Select` over 1,000 channels, the message on the last): streaming
//! through `recv_async`, wake-ups of a waiter asleep, and the waiter's CPU
//! while every channel is idle. A current-thread runtime starts no thread,
//! so the harness stays single-threaded between its forks; the
//! multi-thread one runs in the forked child, which reports its samples
//! through shared memory.

use std::time::Instant;

use shmchan::{Channel, Flavor, Receiver, Select};

use crate::cleanup::Guarded;
use crate::{
    channel, channel_of, stamp, stamp_of, stream_for, two_processes, Config, SingleThreaded,
    IDLE_FOR, WAKE_PAUSE, WAKE_SAMPLES,
};

/// The transports of this module.
pub const TRANSPORTS: [&str; 4] = [
    "shmchan-async",
    "shmchan-async-mt",
    "shmchan-select",
    "shmchan-select-1000",
];

/// How many channels a transport's waiter watches.
fn channels(transport: &str) -> usize {
    if transport == "shmchan-select-1000" {
        1000
    } else {
        1
    }
}

/// A tokio multi-thread runtime of two workers (for a forked child only).
fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio multi-thread runtime")
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
fn waiting_channels(transport: &str, size: usize) -> Vec<Guarded> {
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

/// Sends [`WAKE_SAMPLES`] `size`-byte messages on `ch`, one every
/// [`WAKE_PAUSE`], each stamped with its send time.
fn send_stamped(ch: &Channel, size: usize) {
    let mut tx = ch.sender().expect("sender");
    let mut buf = vec![0u8; size];
    for _ in 0..WAKE_SAMPLES {
        std::thread::sleep(WAKE_PAUSE);
        stamp(&mut buf, crate::os::monotonic_ns());
        tx.send(&buf).expect("send");
    }
}

/// Wake-ups of a waiter asleep: [`WAKE_SAMPLES`] messages, one every
/// [`WAKE_PAUSE`], each carrying its send time; nanoseconds from each send
/// to the waiter's return with it.
pub fn wake_ups(one: &SingleThreaded, transport: &str, size: usize, cfg: &Config) -> Vec<f64> {
    let size = size.max(8);
    if transport == "shmchan-async-mt" {
        return wake_ups_multi_thread(one, size, cfg);
    }
    let chans = waiting_channels(transport, size);
    let mut rxs: Vec<Receiver> = chans
        .iter()
        .map(|c| c.receiver().expect("receiver"))
        .collect();
    let last = chans.last().expect("a channel");
    two_processes(
        one,
        cfg.pin,
        || send_stamped(last, size),
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
    if transport == "shmchan-async-mt" {
        return idle_multi_thread(one, cfg);
    }
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

/// [`wake_ups`] of `recv_async` on a multi-thread runtime (two workers),
/// which runs in the forked child (its threads never meet a fork): the
/// child receives, the parent sends, and the child's samples come back
/// through an anonymous shared mapping.
fn wake_ups_multi_thread(one: &SingleThreaded, size: usize, cfg: &Config) -> Vec<f64> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let ch = channel_of(size, Flavor::Spsc);
    let shared = crate::os::SharedMemory::new(8 * (WAKE_SAMPLES + 1)).expect("mmap");
    let word = |i: usize| {
        // SAFETY: i <= WAKE_SAMPLES: inside the zeroed, page-aligned
        // mapping, which lives as long as `shared`; a zero is a valid
        // AtomicU64.
        unsafe { &*shared.as_ptr().cast::<AtomicU64>().add(i) }
    };
    two_processes(
        one,
        cfg.pin,
        || {
            // The child's own receiver (an endpoint does not cross fork);
            // what is sent before it connects waits in the ring.
            let mut rx = ch.receiver().expect("receiver");
            rx.set_spin_limit(0);
            let rt = multi_thread_runtime();
            let n = rt.block_on(async {
                let mut n = 0;
                while let Ok(m) = rx.recv_async().await {
                    let sent = stamp_of(&m);
                    if n < WAKE_SAMPLES {
                        word(n + 1).store(
                            crate::os::monotonic_ns().saturating_sub(sent),
                            Ordering::Relaxed,
                        );
                        n += 1;
                    }
                }
                n
            });
            // Release: the parent reads the samples after the count.
            word(0).store(n as u64, Ordering::Release);
        },
        || send_stamped(&ch, size),
    );
    // two_processes has waited for the child. Acquire: pairs with the
    // child's Release store of the count.
    let n = word(0).load(Ordering::Acquire) as usize;
    (1..=n)
        .map(|i| word(i).load(Ordering::Relaxed) as f64)
        .collect()
}

/// [`idle_cpu`] of `recv_async` on a multi-thread runtime, in the forked
/// child: the CPU of the child's whole process (its runtime's threads).
fn idle_multi_thread(one: &SingleThreaded, cfg: &Config) -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    let ch = channel_of(64, Flavor::Spsc);
    let shared = crate::os::SharedMemory::new(8).expect("mmap");
    // SAFETY: one zeroed, page-aligned word that lives as long as `shared`.
    let word = unsafe { &*shared.as_ptr().cast::<AtomicU64>() };
    two_processes(
        one,
        cfg.pin,
        || {
            let mut rx = ch.receiver().expect("receiver");
            let process_cpu_ns = || {
                // SAFETY: rusage is plain data; all zeros is a valid value.
                let mut u: libc::rusage = unsafe { std::mem::zeroed() };
                // SAFETY: getrusage fills the struct it is given.
                unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
                let t =
                    |v: libc::timeval| v.tv_sec as u64 * 1_000_000_000 + v.tv_usec as u64 * 1000;
                t(u.ru_utime) + t(u.ru_stime)
            };
            let rt = multi_thread_runtime();
            let (cpu, wall) = (process_cpu_ns(), Instant::now());
            rt.block_on(async { while rx.recv_async().await.is_ok() {} });
            let pct =
                100.0 * (process_cpu_ns() - cpu) as f64 / wall.elapsed().as_nanos().max(1) as f64;
            // Release: the parent reads it after waiting for us.
            word.store(pct.to_bits(), Ordering::Release);
        },
        || {
            let _tx = ch.sender().expect("sender");
            std::thread::sleep(IDLE_FOR);
        },
    );
    // Acquire: pairs with the child's Release store.
    f64::from_bits(word.load(Ordering::Acquire))
}
