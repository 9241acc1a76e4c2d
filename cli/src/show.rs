//! `shmchan ls` and `shmchan stat`: what the channels of this machine hold.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shmchan::{Channel, Flavor, Found, Layout, Listing, OpenError, Stats, SubscriberStats};

use crate::{open_failure, Fail, KeyOpts};

/// `1536` -> `1.5 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Seconds since the epoch -> `42s`, `5m`, `3h`, `2d` ago.
fn age(since_epoch: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let s = now.saturating_sub(since_epoch);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// A word for what a segment is.
pub fn state_word(found: &Found) -> String {
    match found {
        Found::Channel(s) => format!("{} channel", s.layout.flavor),
        Found::Initializing => "half-created channel".into(),
        Found::Foreign => "foreign".into(),
        Found::Unreadable(e) => format!("unreadable: {e}"),
    }
}

/// The flavor, with a broadcast channel's overflow mode:
/// `spsc`, `mpsc`, `broadcast/block`, `broadcast/overwrite`.
pub fn flavor_word(l: &Layout) -> String {
    match l.flavor {
        Flavor::Broadcast => format!("{}/{}", l.flavor, l.overflow),
        f => f.to_string(),
    }
}

/// Messages waiting: broadcast, the slowest joined subscriber's lag (the
/// counters' sent minus received adds every subscriber's receipts).
fn waiting(s: &Stats) -> u64 {
    if s.layout.flavor == Flavor::Broadcast {
        s.subscribers
            .iter()
            .map(|b| b.lag_messages)
            .max()
            .unwrap_or(0)
    } else {
        s.counters.waiting()
    }
}

/// `1 message`, `2 messages`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One broadcast subscriber in one line: pid and liveness, position, lag,
/// receipts, lags and messages missed.
pub fn subscriber(b: &SubscriberStats, s: &Stats) -> String {
    let state = if b.alive { "alive" } else { "dead" };
    let head = format!("pid {} ({state})", b.pid);
    let tally = format!(
        "received {}, lagged {}, missed {}",
        b.received_messages,
        count(b.lagged, "time", "times"),
        b.missed
    );
    let lapped = b.lag_bytes > s.layout.capacity as u64;
    let at = if b.joined && !lapped {
        format!(
            "position {}, lag {} ({})",
            b.position,
            count(b.lag_messages, "message", "messages"),
            bytes(b.lag_bytes)
        )
    } else if b.joined {
        // More than a ring behind (Overwrite): its next receive says how
        // many messages it missed, and goes on from the oldest.
        format!(
            "position {}, lapped: lag {} ({} behind, more than the ring)",
            b.position,
            count(b.lag_messages, "message", "messages"),
            bytes(b.lag_bytes)
        )
    } else {
        // Not a position within reach: it has taken the slot and not
        // joined yet.
        "joining".to_string()
    };
    format!("{head}, {at}, {tally}")
}

fn opt(v: Option<u32>) -> String {
    v.map_or_else(|| "?".into(), |v| v.to_string())
}

fn creator(pid: i32, alive: bool) -> String {
    format!("{pid} ({})", if alive { "alive" } else { "dead" })
}

fn row(l: &Listing) -> [String; 12] {
    let key = l.key.to_string();
    let id = l.shm_id.to_string();
    let mode = format!("{:04o}", l.mode);
    let dash = || "-".to_string();
    match &l.found {
        Found::Channel(s) => [
            key,
            id,
            flavor_word(&s.layout),
            bytes(s.layout.capacity as u64),
            bytes(s.used_bytes()),
            waiting(s).to_string(),
            opt(s.senders),
            opt(s.receivers),
            l.attached.to_string(),
            creator(s.layout.creator_pid as i32, s.creator_alive),
            mode,
            age(s.layout.created_at),
        ],
        other => {
            let what = match other {
                Found::Initializing => "half-created".to_string(),
                Found::Foreign if l.looks_damaged() => "damaged?".to_string(),
                Found::Foreign => "foreign".to_string(),
                _ => "unreadable".to_string(),
            };
            let alive = l.creator_alive();
            [
                key,
                id,
                what,
                bytes(l.size as u64),
                dash(),
                dash(),
                dash(),
                dash(),
                l.attached.to_string(),
                creator(l.creator_pid, alive),
                mode,
                age(l.changed_at.max(0) as u64),
            ]
        }
    }
}

/// `shmchan ls`.
pub fn ls(all: bool) -> Result<(), Fail> {
    let listing = Channel::list().map_err(|e| format!("cannot read the segment list: {e}"))?;
    let head = [
        "KEY", "SHMID", "FLAVOR", "CAPACITY", "USED", "WAITING", "SENDERS", "RECEIVER", "ATTACHED",
        "CREATOR", "MODE", "AGE",
    ]
    .map(String::from);
    let shown: Vec<&Listing> = listing.iter().filter(|l| all || l.is_ours()).collect();
    let rows: Vec<[String; 12]> = shown.iter().map(|l| row(l)).collect();
    let damaged = all && listing.iter().any(Listing::looks_damaged);
    if rows.is_empty() {
        println!(
            "no shmchan channels{}",
            if all { " or other segments" } else { "" }
        );
        return Ok(());
    }
    let mut width = head.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let table_line = |r: &[String; 12]| {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(width).enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}  ");
            }
        }
        line
    };
    println!("{}", table_line(&head));
    for (l, r) in shown.iter().zip(&rows) {
        println!("{}", table_line(r));
        // A broadcast channel's subscribers, one line each under its row.
        if let Found::Channel(s) = &l.found {
            for b in &s.subscribers {
                println!("  subscriber {}: {}", b.slot, subscriber(b, s));
            }
        }
    }
    if damaged {
        println!(
            "damaged?: a foreign segment with a channel's size and 4 semaphores at its key, \
             likely a channel whose header was overwritten; `shmchan rm --force KEY` \
             removes both (another program's objects too, if it is one)"
        );
    }
    Ok(())
}

/// The detail of one channel, as `key: value` lines.
fn detail(s: &Stats, at: &str) -> String {
    let l = &s.layout;
    let c = &s.counters;
    let mut o = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(o, "{k:<18} {v}");
    };
    line("channel", at.to_string());
    line("key", s.key.to_string());
    line("shmid", s.shm_id.to_string());
    line(
        "semid",
        s.sem_id
            .map_or_else(|| "not found".into(), |v| v.to_string()),
    );
    let broadcast = l.flavor == Flavor::Broadcast;
    line("flavor", l.flavor.to_string());
    if broadcast {
        line("overflow", l.overflow.to_string());
    }
    line(
        "capacity",
        format!("{} ({} bytes)", bytes(l.capacity as u64), l.capacity),
    );
    line(
        "max message",
        format!("{} ({} bytes)", bytes(l.max_message as u64), l.max_message),
    );
    if broadcast {
        line("subscriber slots", l.sender_slots.to_string());
    } else if l.sender_slots > 0 {
        line("sender slots", l.sender_slots.to_string());
    }
    line("data offset", l.data_offset.to_string());
    line("segment length", l.segment_len.to_string());
    line("creator", creator(l.creator_pid as i32, s.creator_alive));
    line("creator uid", l.creator_uid.to_string());
    line("created", format!("{} ago", age(l.created_at)));
    line(
        "mode",
        format!("{:04o} (uid {}, gid {})", s.mode, s.uid, s.gid),
    );
    line("head", s.head.to_string());
    line("tail", s.tail.to_string());
    line(
        "used",
        format!("{} ({} bytes)", bytes(s.used_bytes()), s.used_bytes()),
    );
    if broadcast {
        line(
            "waiting",
            format!("{} messages (the slowest subscriber's lag)", waiting(s)),
        );
    } else {
        line("waiting", format!("{} messages", c.waiting()));
    }
    line(
        "senders",
        format!("{} alive, {} ever", opt(s.senders), s.sender_connects),
    );
    let receivers = if broadcast {
        "subscribers"
    } else {
        "receivers"
    };
    line(
        receivers,
        format!("{} alive, {} ever", opt(s.receivers), s.receiver_connects),
    );
    line(
        "asleep",
        format!("{} senders, {} {receivers}", s.send_waiters, s.recv_waiters),
    );
    line("attached", format!("{} processes", s.attached));
    line(
        "sent",
        format!("{} messages, {}", c.sent_messages, bytes(c.sent_bytes)),
    );
    line(
        "received",
        format!(
            "{} messages, {}{}",
            c.received_messages,
            bytes(c.received_bytes),
            if broadcast {
                " (all subscribers together)"
            } else {
                ""
            }
        ),
    );
    line("full", format!("{} times", c.full_events));
    line("sender sleeps", c.sender_sleeps.to_string());
    line("receiver sleeps", c.receiver_sleeps.to_string());
    for b in &s.subscribers {
        line(&format!("subscriber {}", b.slot), subscriber(b, s));
    }
    o
}

/// `shmchan stat`.
pub fn stat(key: &KeyOpts, watch: bool) -> Result<(), Fail> {
    let k = key.resolve()?;
    let at = key.key.to_string();
    let inspect = || Channel::inspect(k).map_err(|e| open_failure(&e, &at, "endpoint"));
    let mut s = inspect()?;
    print!("{}", detail(&s, &at));
    if !watch {
        return Ok(());
    }
    let tty = std::io::stdout().is_terminal();
    let mut then = Instant::now();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now_s = match Channel::inspect(k) {
            Ok(n) => n,
            Err(OpenError::NotFound) => {
                println!("the channel at {at} was removed");
                return Ok(());
            }
            Err(e) => return Err(open_failure(&e, &at, "endpoint")),
        };
        let now = Instant::now();
        let secs = now.duration_since(then).as_secs_f64().max(1e-9);
        let rate = |a: u64, b: u64| b.wrapping_sub(a) as f64 / secs;
        let (p, c) = (&s.counters, &now_s.counters);
        if tty {
            print!("\x1b[H\x1b[2J");
        } else {
            println!();
        }
        print!("{}", detail(&now_s, &at));
        println!(
            "{:<18} {:.0} msgs/s, {:.1} MB/s",
            "send rate",
            rate(p.sent_messages, c.sent_messages),
            rate(p.sent_bytes, c.sent_bytes) / 1e6
        );
        println!(
            "{:<18} {:.0} msgs/s, {:.1} MB/s",
            "receive rate",
            rate(p.received_messages, c.received_messages),
            rate(p.received_bytes, c.received_bytes) / 1e6
        );
        s = now_s;
        then = now;
    }
}
