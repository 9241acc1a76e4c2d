//! One-way latency at a fixed offered rate: the producer sends a message
//! at each intended time `t0 + i / rate` (spinning until it is due, never
//! skipping one when late), each carrying its intended time; the consumer
//! takes the time each arrives, on the same clock (`CLOCK_MONOTONIC` is
//! one clock for every process of the host). Latency is measured from the
//! intended time, not from when the send happened to start, so a producer
//! held up by a full channel or a slow send counts that time too: no
//! coordinated omission (a stall shows as every later message's delay, as
//! a user whose messages queue behind it would see it).
//!
//! Ping-pong measures one message in flight at a time; this measures a
//! stream, which is what a market-data or telemetry feed is.

use std::io::{Read, Write};

use shmchan::Flavor;

use crate::os::monotonic_ns;
use crate::{
    channel_of, over_bytes, over_limit_ring, ring_bytes, stamp, stamp_of, two_processes, Config,
    SingleThreaded,
};

/// The transports that measure it.
pub const TRANSPORTS: &[&str] = &[
    "shmchan",
    "shmchan-mpsc-1",
    "limit-ring",
    "pipe",
    "unix-stream",
    "unix-seqpacket",
];

/// How long after it starts the producer sends its first message (both
/// processes are running by then).
const START_DELAY_NS: u64 = 2_000_000;

/// What one run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// The offered rate, messages per second.
    pub rate: f64,
    /// The rate the consumer received at (below `rate` when the transport
    /// cannot keep up: its latencies then grow for as long as it runs, and
    /// the messages it was given no time to send are not counted, so its
    /// percentiles are a lower bound).
    pub received_per_s: f64,
    /// Median one-way latency, nanoseconds.
    pub p50_ns: f64,
    /// 99th percentile.
    pub p99_ns: f64,
    /// 99.99th percentile.
    pub p9999_ns: f64,
    /// The largest (in a row of the table: over all repetitions).
    pub max_ns: f64,
    /// Messages measured (after the warm-up).
    pub samples: u64,
}

/// A log-linear histogram of nanosecond values: exact below 64, then 64
/// buckets per power of two (each within 1/64 of its values), up to 2^40
/// ns; the largest value is kept exactly.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
const TOP_BIT: u32 = 40;

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; SUB + (TOP_BIT - SUB_BITS + 1) as usize * SUB],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        let v = v.min((1 << (TOP_BIT + 1)) - 1);
        if v < SUB as u64 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros();
        let sub = (v >> (e - SUB_BITS)) as usize & (SUB - 1);
        SUB + (e - SUB_BITS) as usize * SUB + sub
    }

    /// The smallest value of bucket `i`.
    fn low(i: usize) -> u64 {
        if i < SUB {
            return i as u64;
        }
        let e = (i - SUB) / SUB + SUB_BITS as usize;
        let sub = ((i - SUB) % SUB) as u64;
        (1 << e) | (sub << (e - SUB_BITS as usize))
    }

    /// Counts one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[Histogram::index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    /// Values counted.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The value at quantile `q` (0..=1): the low end of the bucket that
    /// holds it (the exact largest value for 1); `NaN` when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.total == 0 {
            return f64::NAN;
        }
        if q >= 1.0 {
            return self.max as f64;
        }
        let rank = ((self.total - 1) as f64 * q).round() as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return Histogram::low(i).min(self.max) as f64;
            }
        }
        self.max as f64
    }
}

/// Sends `n` messages of `size` bytes (at least 8) at `rate` per second,
/// each carrying its intended send time in its first 8 bytes. A transport
/// that cannot keep up gets twice the planned time, then the rest is not
/// sent (its latencies have grown for that long: enough to see it).
fn paced(rate: f64, n: u64, size: usize, mut send: impl FnMut(&[u8])) {
    let period = 1e9 / rate;
    let mut buf = vec![0u8; size.max(8)];
    let t0 = monotonic_ns() + START_DELAY_NS;
    let give_up = t0 + 2 * (n as f64 * period) as u64 + START_DELAY_NS;
    for i in 0..n {
        let due = t0 + (i as f64 * period) as u64;
        let mut now = monotonic_ns();
        while now < due {
            std::hint::spin_loop();
            now = monotonic_ns();
        }
        if now > give_up {
            break;
        }
        stamp(&mut buf, due);
        send(&buf);
    }
}

/// The consumer's half: `next` returns each message's intended time
/// (`None` at the end); the first `warmup` are not counted.
fn measure(warmup: u64, rate: f64, mut next: impl FnMut() -> Option<u64>) -> Latency {
    let mut h = Histogram::new();
    let mut seen = 0u64;
    let (mut first, mut last) = (0u64, 0u64);
    while let Some(due) = next() {
        let now = monotonic_ns();
        seen += 1;
        if seen <= warmup {
            continue;
        }
        if h.is_empty() {
            first = now;
        }
        last = now;
        h.record(now.saturating_sub(due));
    }
    let secs = last.saturating_sub(first) as f64 / 1e9;
    Latency {
        rate,
        received_per_s: if secs > 0.0 {
            h.len().saturating_sub(1) as f64 / secs
        } else {
            0.0
        },
        p50_ns: h.quantile(0.5),
        p99_ns: h.quantile(0.99),
        p9999_ns: h.quantile(0.9999),
        max_ns: h.quantile(1.0),
        samples: h.len(),
    }
}

/// One run of `transport` at `rate` messages per second of `size` bytes,
/// for `cfg.duration` (after a warm-up of a tenth of that, and at least
/// one pass over the ring, so that no measured message is the first touch
/// of a page); `None` for a transport that does not measure it.
pub fn fixed_rate(
    one: &SingleThreaded,
    transport: &str,
    size: usize,
    rate: f64,
    cfg: &Config,
) -> Option<Latency> {
    let size = size.max(8);
    let measured = (rate * cfg.duration.as_secs_f64()).max(1000.0) as u64;
    // One pass over the ring of the transport with the smallest records
    // (shmchan's: header and payload rounded to 8 bytes), so that no
    // measured message touches a page for the first time.
    let record = shmchan::layout::record_size(size) as u64;
    let warmup = (measured / 10).max(ring_bytes(size) as u64 / record + 1);
    let n = measured + warmup;
    Some(match transport {
        "shmchan" | "shmchan-mpsc-1" => {
            let flavor = if transport == "shmchan" {
                Flavor::Spsc
            } else {
                Flavor::Mpsc
            };
            let ch = channel_of(size, flavor);
            let mut rx = ch.receiver().expect("receiver");
            // Both sides spin, as in the round trips: the figure is the
            // transport's, not a wake-up's.
            rx.set_spin_limit(u32::MAX);
            two_processes(
                one,
                cfg.pin,
                || {
                    let mut tx = ch.sender().expect("sender");
                    tx.set_spin_limit(u32::MAX);
                    paced(rate, n, size, |m| tx.send(m).expect("send"));
                },
                || measure(warmup, rate, || rx.recv().ok().map(|m| stamp_of(&m))),
            )
        }
        "limit-ring" => over_limit_ring(
            one,
            cfg.pin,
            size,
            |send| paced(rate, n, size, send),
            |recv| {
                let mut buf = vec![0u8; size];
                measure(warmup, rate, || recv(&mut buf).then(|| stamp_of(&buf)))
            },
        ),
        "pipe" | "unix-stream" | "unix-seqpacket" => over_bytes(
            one,
            transport,
            cfg.pin,
            |w: &mut dyn Write| paced(rate, n, size, |m| w.write_all(m).expect("write")),
            |r: &mut dyn Read| {
                let mut buf = vec![0u8; size];
                measure(warmup, rate, || {
                    r.read_exact(&mut buf).ok().map(|()| stamp_of(&buf))
                })
            },
        ),
        _ => return None,
    })
}

/// Parses a rate: a number of messages per second with an optional `k`,
/// `M` or `G` suffix (`250k`, `1M`, `2.5M`, `1000000`).
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1e3),
        Some((i, 'm' | 'M')) => (&s[..i], 1e6),
        Some((i, 'g' | 'G')) => (&s[..i], 1e9),
        _ => (s, 1.0),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v * mult <= 1e10 => Ok(v * mult),
        _ => Err(format!(
            "{s:?} is not a rate (messages per second, e.g. 250k, 1M, 10M; at most 10G)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_a_bucket() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, want) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.9999, 99_990.0)] {
            let got = h.quantile(q);
            assert!(
                got <= want && got >= want * (1.0 - 1.0 / 64.0) - 1.0,
                "q {q}: {got} for {want}"
            );
        }
        assert_eq!(h.quantile(1.0), 100_000.0);
        assert_eq!(h.len(), 100_000);
        let mut small = Histogram::new();
        for v in [3, 3, 7] {
            small.record(v);
        }
        assert_eq!(small.quantile(0.5), 3.0);
        assert_eq!(small.quantile(1.0), 7.0);
        // Huge values are clamped into the last bucket, the maximum kept.
        small.record(u64::MAX);
        assert_eq!(small.quantile(1.0), u64::MAX as f64);
        assert!(Histogram::new().quantile(0.5).is_nan());
    }

    #[test]
    fn bucket_bounds_round_trip() {
        for v in [0u64, 1, 63, 64, 65, 127, 128, 1000, 123_456, 1 << 39] {
            let i = Histogram::index(v);
            assert!(Histogram::low(i) <= v, "{v}");
            assert!(Histogram::low(i + 1) > v, "{v}");
        }
    }

    #[test]
    fn rates_parse_with_suffixes() {
        assert_eq!(parse_rate("1M"), Ok(1e6));
        assert_eq!(parse_rate("250k"), Ok(250e3));
        assert_eq!(parse_rate("2.5M"), Ok(2.5e6));
        assert_eq!(parse_rate("1000"), Ok(1000.0));
        assert_eq!(parse_rate(" 10M"), Ok(10e6), "a space after a comma");
        assert_eq!(parse_rate("250k "), Ok(250e3));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("-1M").is_err());
        assert!(parse_rate("100G").is_err());
    }
}
