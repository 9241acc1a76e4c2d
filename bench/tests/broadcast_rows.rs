//! The broadcast rows in a short run (`harness = false`: the harness forks,
//! which needs a process with one thread, and libtest runs its tests on
//! several): each `shmchan-bcast-*` row gives its figures, plausible and
//! non-zero, in the rows, the table and the JSON; and a subscriber that
//! fails, or whose count does not add up, gives no figure at all.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use shmchan_bench::broadcast::{self, SubscriberRun};
use shmchan_bench::{run, table, Config, Row, SingleThreaded};

/// The value of `"field":` in a JSON line: a number, or None for `null`.
fn field(line: &str, name: &str) -> Option<f64> {
    let key = format!("\"{name}\":");
    let at = line
        .find(&key)
        .unwrap_or_else(|| panic!("{name} missing in {line}"))
        + key.len();
    let rest = &line[at..];
    let v = &rest[..rest.find([',', '}']).expect("a value")];
    if v == "null" {
        None
    } else {
        Some(
            v.parse()
                .unwrap_or_else(|_| panic!("{name} = {v} in {line}")),
        )
    }
}

const SUB_FIELDS: [&str; 5] = [
    "subscribers",
    "sub_min_msgs_per_s",
    "sub_mean_msgs_per_s",
    "sub_missed",
    "sub_missed_pct",
];

/// Every broadcast row at two sizes, two repetitions, beside `shmchan`.
fn short_run_gives_the_broadcast_rows_their_figures(one: &SingleThreaded) {
    let mut transports = vec!["shmchan".to_string()];
    transports.extend(broadcast::TRANSPORTS.iter().map(|t| t.to_string()));
    let cfg = Config {
        sizes: vec![64, 1024],
        duration: Duration::from_millis(50),
        round_trips: 300,
        pin: false,
        reps: 2,
        transports,
        latency_rates: Vec::new(),
    };
    let rows: Vec<Row> = run(one, &cfg, |_| {});
    assert_eq!(rows.len(), 2 * cfg.transports.len(), "{rows:#?}");
    for r in &rows {
        let line = r.json();
        let Some((n, overflow)) = broadcast::parse(&r.transport) else {
            // The SPSC row: no subscriber figures, null in the JSON.
            assert!(r.subscribers.is_none(), "{line}");
            for f in SUB_FIELDS {
                assert_eq!(field(&line, f), None, "{f}: {line}");
            }
            continue;
        };
        let block = overflow == shmchan::Overflow::Block;
        // The publisher's rate, every repetition's, their median.
        let pub_rate = r.msgs_per_s.expect("the publisher's rate");
        assert!(pub_rate > 0.0, "{line}");
        assert_eq!(r.msgs_per_s_reps.len(), 2, "{line}");
        assert!(r.msgs_per_s_reps.iter().all(|&m| m > 0.0), "{line}");
        assert_eq!(
            field(&line, "msgs_per_s").unwrap(),
            pub_rate.round(),
            "{line}"
        );
        // The subscribers': each received something, the slowest no
        // faster than the mean; Block misses nothing, and its subscribers
        // keep the publisher's pace.
        let s = r.subscribers.as_ref().expect("the subscribers' figures");
        assert_eq!(s.count, n, "{line}");
        assert!(s.min_msgs_per_s > 0.0, "{line}");
        assert!(
            s.min_msgs_per_s <= s.mean_msgs_per_s * (1.0 + 1e-9),
            "{line}"
        );
        if block {
            assert_eq!((s.missed, s.missed_pct), (0.0, 0.0), "{line}");
            assert!(
                s.mean_msgs_per_s < 10.0 * pub_rate && s.mean_msgs_per_s > pub_rate / 10.0,
                "a Block subscriber's rate far from its publisher's: {line}"
            );
        } else {
            assert!((0.0..100.0).contains(&s.missed_pct), "{line}");
        }
        assert_eq!(field(&line, "subscribers"), Some(n as f64), "{line}");
        assert!(field(&line, "sub_min_msgs_per_s").unwrap() > 0.0, "{line}");
        assert!(field(&line, "sub_mean_msgs_per_s").unwrap() > 0.0, "{line}");
        assert!(field(&line, "sub_missed").is_some(), "{line}");
        assert!(field(&line, "sub_missed_pct").is_some(), "{line}");
        // No round trip; a sleeping Block subscriber's wake-up, and its
        // idle CPU on the first size's row.
        assert_eq!(r.rtt_p50_ns, None, "{line}");
        let wake = field(&line, "wake_p50_ns");
        assert_eq!(wake.is_some(), block, "{line}");
        if let Some(w) = wake {
            assert!(w > 0.0 && w < 1e9, "{line}");
        }
        let idle = field(&line, "idle_cpu_pct");
        assert_eq!(idle.is_some(), block && r.size == 64, "{line}");
        if let Some(p) = idle {
            assert!((0.0..=100.0).contains(&p), "{line}");
        }
    }
    let t = table(&rows);
    assert!(t.contains("\nbroadcast: "), "{t}");
    for name in broadcast::TRANSPORTS {
        // Two lines each: the main table's and the subscribers'.
        let lines = t
            .lines()
            .filter(|l| l.starts_with(&format!("{name} ")))
            .count();
        assert_eq!(lines, 4, "{name}: {t}");
    }
    println!("{t}");
}

/// A subscriber that fails, or whose messages received and missed do not
/// add up to those published, makes the measurement fail.
fn a_broken_subscriber_gives_no_figure(one: &SingleThreaded) {
    let ok = SubscriberRun {
        received: 10,
        missed: 0,
        msgs_per_s: 1e6,
    };
    let fan = |sub: &dyn Fn(usize) -> SubscriberRun| {
        catch_unwind(AssertUnwindSafe(|| {
            broadcast::fan_out(one, false, 2, sub, || (10, 1e-5))
        }))
    };
    let r = fan(&|_| ok).expect("two good subscribers");
    // The failures below are on purpose: one line each, no backtrace
    // (the subscribers' processes inherit the hook).
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| eprintln!("(on purpose) {info}")));
    assert_eq!(r.published, 10);
    assert_eq!(r.subscribers, vec![ok, ok]);
    assert!((r.msgs_per_s - 1e6).abs() < 1.0, "{r:?}");
    assert!(fan(&|i| if i == 1 {
        panic!("subscriber 1 fails on purpose")
    } else {
        ok
    })
    .is_err());
    assert!(fan(&|i| SubscriberRun {
        received: 10 - i as u64,
        ..ok
    })
    .is_err());
    assert!(fan(&|_| SubscriberRun {
        received: 7,
        missed: 3,
        ..ok
    })
    .is_ok());
    std::panic::set_hook(hook);
}

fn main() {
    // SAFETY: the main thread of a test without libtest's harness, which
    // starts no other.
    let one = unsafe { SingleThreaded::new() };
    a_broken_subscriber_gives_no_figure(&one);
    println!("a_broken_subscriber_gives_no_figure ... ok");
    short_run_gives_the_broadcast_rows_their_figures(&one);
    println!("short_run_gives_the_broadcast_rows_their_figures ... ok");
}
