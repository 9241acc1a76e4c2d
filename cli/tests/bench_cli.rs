//! `shmchan bench` as a user runs it (a short run): every transport gives
//! its row, with the figures it measures, in the table and in `--json`.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_shmchan");

/// The value of `"field":` in a JSON line: a number, or None for `null`.
fn field(line: &str, name: &str) -> Option<f64> {
    let key = format!("\"{name}\":");
    let at = line
        .find(&key)
        .unwrap_or_else(|| panic!("{name} missing in {line}"))
        + key.len();
    let rest = &line[at..];
    let end = rest.find([',', '}']).expect("a value");
    let v = &rest[..end];
    if v == "null" {
        None
    } else {
        Some(
            v.parse()
                .unwrap_or_else(|_| panic!("{name} = {v} in {line}")),
        )
    }
}

/// The numbers of the array field `name` of a JSON row.
fn array(line: &str, name: &str) -> Vec<f64> {
    let key = format!("\"{name}\":[");
    let at = line
        .find(&key)
        .unwrap_or_else(|| panic!("{name} missing in {line}"))
        + key.len();
    let rest = &line[at..];
    let body = &rest[..rest.find(']').expect("the array's end")];
    body.split(',')
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: {v} in {line}"))
        })
        .collect()
}

/// Every repetition's throughput is in the JSON, and the row's figure is
/// their median.
#[test]
fn each_repetition_is_reported_and_the_figure_is_their_median() {
    let out = Command::new(BIN)
        .args([
            "bench",
            "--sizes",
            "64",
            "--transports",
            "shmchan,limit-ring",
            "--reps",
            "3",
            "--duration",
            "0.05",
            "--round-trips",
            "300",
            "--json",
            "--no-pin",
        ])
        .output()
        .expect("run shmchan bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    for line in text.lines() {
        let mut reps = array(line, "msgs_per_s_reps");
        assert_eq!(reps.len(), 3, "{line}");
        assert!(reps.iter().all(|&m| m > 0.0), "{line}");
        reps.sort_by(f64::total_cmp);
        assert_eq!(field(line, "msgs_per_s"), Some(reps[1]), "{line}");
    }
}

#[test]
fn short_run_gives_every_transport_its_figures() {
    let out = Command::new(BIN)
        .args([
            "bench",
            "--sizes",
            "64,1024",
            "--reps",
            "1",
            "--duration",
            "0.05",
            "--round-trips",
            "300",
            "--json",
            "--no-pin",
        ])
        .output()
        .expect("run shmchan bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let transports = shmchan_bench::TRANSPORTS;
    assert_eq!(lines.len(), 2 * transports.len(), "{text}");
    for line in &lines {
        let t = transports
            .iter()
            .find(|t| line.contains(&format!("\"transport\":\"{t}\"")))
            .unwrap_or_else(|| panic!("unknown transport in {line}"));
        let size = field(line, "size").unwrap();
        assert!(size == 64.0 || size == 1024.0);
        let streams = !matches!(
            *t,
            "limit-cacheline" | "shmchan-async-mt" | "shmchan-select" | "shmchan-select-1000"
        );
        let pings = !matches!(
            *t,
            "shmchan-zc"
                | "shmchan-batch"
                | "shmchan-mpsc-1"
                | "shmchan-mpsc-2"
                | "shmchan-mpsc-4"
                | "shmchan-bcast-1"
                | "shmchan-bcast-2"
                | "shmchan-bcast-4"
                | "shmchan-bcast-ow-1"
                | "shmchan-bcast-ow-2"
                | "shmchan-bcast-ow-4"
                | "shmchan-async"
                | "shmchan-async-mt"
                | "shmchan-select"
                | "shmchan-select-1000"
                | "limit-memcpy"
        );
        let wakes = matches!(
            *t,
            "shmchan"
                | "shmchan-mpsc-1"
                | "shmchan-bcast-1"
                | "shmchan-bcast-2"
                | "shmchan-bcast-4"
                | "shmchan-async"
                | "shmchan-async-mt"
                | "shmchan-select"
                | "shmchan-select-1000"
                | "pipe"
                | "unix-stream"
                | "unix-seqpacket"
        );
        let mps = field(line, "msgs_per_s");
        assert_eq!(mps.is_some(), streams, "{line}");
        assert_eq!(
            array(line, "msgs_per_s_reps"),
            Vec::from_iter(mps),
            "{line}"
        );
        if let Some(m) = mps {
            assert!(m > 0.0, "{line}");
            let mb = field(line, "mb_per_s").unwrap();
            assert!((mb - m * size / 1e6).abs() <= 0.1 + mb * 1e-3, "{line}");
        }
        for f in ["rtt_p50_ns", "rtt_p99_ns", "rtt_p999_ns"] {
            assert_eq!(field(line, f).is_some(), pings, "{f}: {line}");
        }
        if pings {
            let (p50, p99, p999) = (
                field(line, "rtt_p50_ns").unwrap(),
                field(line, "rtt_p99_ns").unwrap(),
                field(line, "rtt_p999_ns").unwrap(),
            );
            assert!(p50 > 0.0 && p50 <= p99 && p99 <= p999, "{line}");
        }
        let wake = field(line, "wake_p50_ns");
        assert_eq!(wake.is_some(), wakes, "{line}");
        if let Some(w) = wake {
            assert!(w > 0.0, "{line}");
        }
        // Idle CPU: once per transport, on the first size's row.
        let idle = field(line, "idle_cpu_pct");
        assert_eq!(idle.is_some(), wakes && size == 64.0, "{line}");
        if let Some(p) = idle {
            assert!((0.0..=100.0).contains(&p), "{line}");
        }
    }
}

/// Standard error captured (a pipe, not a terminal): no progress line, so
/// no escape sequence and no "measuring", and the table on stdout.
#[test]
fn no_progress_line_when_stderr_is_not_a_terminal() {
    let out = Command::new(BIN)
        .args([
            "bench",
            "--sizes",
            "64",
            "--reps",
            "1",
            "--duration",
            "0.05",
            "--round-trips",
            "300",
            "--transports",
            "shmchan,pipe",
            "--no-pin",
        ])
        .output()
        .expect("run shmchan bench");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!out.stderr.contains(&0x1b), "an escape sequence: {err:?}");
    assert!(!err.contains("measuring"), "a progress line: {err:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("transport"), "{text}");
    assert_eq!(text.lines().count(), 3, "{text}");
}

#[test]
fn unknown_transport_is_a_usage_error() {
    let out = Command::new(BIN)
        .args(["bench", "--transports", "carrier-pigeon"])
        .output()
        .expect("run shmchan bench");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown transport carrier-pigeon"), "{err}");
}

/// `--latency-at`: one row per transport that measures it, after the
/// usual rows, with the offered rate, what arrived, ordered percentiles
/// and enough samples; the table has its own section for it.
#[test]
fn latency_at_a_fixed_rate_has_its_rows() {
    let run = |json: bool| {
        let mut args = vec![
            "bench",
            "--sizes",
            "64",
            "--transports",
            "shmchan,shmchan-zc,limit-ring,pipe",
            "--latency-at",
            "200k",
            "--reps",
            "1",
            "--duration",
            "0.05",
            "--round-trips",
            "300",
            "--no-pin",
        ];
        if json {
            args.push("--json");
        }
        let out = Command::new(BIN)
            .args(&args)
            .output()
            .expect("run shmchan bench");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(true);
    let fixed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"latency_at\""))
        .collect();
    let names: Vec<&str> = fixed
        .iter()
        .map(|l| {
            let at = l.find("\"transport\":\"").unwrap() + 13;
            &l[at..at + l[at..].find('"').unwrap()]
        })
        .collect();
    // shmchan-zc has no fixed-rate figure; the others do.
    assert_eq!(names, ["shmchan", "limit-ring", "pipe"], "{text}");
    for l in &fixed {
        assert_eq!(field(l, "latency_at"), Some(200_000.0), "{l}");
        assert_eq!(field(l, "size"), Some(64.0), "{l}");
        let got = field(l, "received_per_s").unwrap();
        assert!(got > 50_000.0 && got < 400_000.0, "{l}");
        assert!(field(l, "samples").unwrap() >= 1000.0, "{l}");
        let p: Vec<f64> = ["lat_p50_ns", "lat_p99_ns", "lat_p9999_ns", "lat_max_ns"]
            .iter()
            .map(|f| field(l, f).unwrap())
            .collect();
        assert!(p[0] > 0.0 && p.windows(2).all(|w| w[0] <= w[1]), "{l}");
    }
    assert_eq!(
        text.lines().count(),
        4 + fixed.len(),
        "the usual rows stay: {text}"
    );
    let table = run(false);
    assert!(
        table.contains("one-way latency at a fixed offered rate"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("limit-ring") && l.contains("200k")),
        "{table}"
    );
}
