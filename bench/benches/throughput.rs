//! `cargo bench`: the same harness as `shmchan bench`, producer and consumer
//! in two processes, shmchan against a pipe and a Unix socket in one run.
//!
//! Arguments after `--` are message sizes, e.g. `cargo bench -- 64 1024`.
//! `SHMCHAN_BENCH_SECS` sets the streaming time per run (default 1).

use std::time::Duration;

use shmchan_bench as bench;

fn main() {
    let mut cfg = bench::Config::default();
    // cargo passes `--bench`; anything numeric is a message size.
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if !sizes.is_empty() {
        cfg.sizes = sizes;
    }
    if let Some(secs) = std::env::var("SHMCHAN_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
    {
        cfg.duration = Duration::from_secs_f64(secs.max(0.01));
    }
    // SAFETY: the main thread of a bench without libtest's harness, which
    // starts no other.
    let one = unsafe { bench::SingleThreaded::new() };
    let rows = bench::run(&one, &cfg, bench::progress_line());
    bench::progress_end();
    print!("{}", bench::table(&rows));
}
