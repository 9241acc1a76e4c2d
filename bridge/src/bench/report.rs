//! The report: the table, the cost of the bridge, JSON.

use super::*;
/// The bridge row's cost against the nats row of the same size and mode:
/// (throughput ratio, added p50, added p99).
pub(super) fn cost(rows: &[Row], r: &Row) -> Option<(f64, f64, f64)> {
    if r.route != Route::Bridge {
        return None;
    }
    let b = r.outcome.as_ref().ok()?;
    let n = rows
        .iter()
        .find(|n| n.route == Route::Nats && n.size == r.size && n.mode == r.mode)?
        .outcome
        .as_ref()
        .ok()?;
    Some((
        b.msgs_per_s / n.msgs_per_s,
        b.p50_ns - n.p50_ns,
        b.p99_ns - n.p99_ns,
    ))
}

pub(super) fn us(ns: f64) -> String {
    format!("{:.1}", ns / 1e3)
}

/// The rows as a table, and the bridge's own cost per size and mode.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:>6}  {:<10} {:<7} {:>10} {:>8} {:>9} {:>9} {:>14}",
        "size", "mode", "path", "msgs/s", "MB/s", "p50 µs", "p99 µs", "lost"
    );
    let mut overloaded = false;
    let mut notes = Vec::new();
    for r in rows {
        let head = format!("{:>6}  {:<10} {:<7}", r.size, r.mode.name(), r.route.name());
        match &r.outcome {
            Ok(m) => {
                let star = if m.overloaded() { "*" } else { "" };
                overloaded |= m.overloaded();
                let lost = match m.lost() {
                    0 => "0".to_string(),
                    n => format!("{n} ({:.2}%)", 100.0 * n as f64 / m.sent as f64),
                };
                let _ = writeln!(
                    out,
                    "{head} {:>10.0} {:>8.1} {:>9} {:>9} {:>14}",
                    m.msgs_per_s,
                    m.msgs_per_s * r.size as f64 / 1e6,
                    format!("{}{star}", us(m.p50_ns)),
                    format!("{}{star}", us(m.p99_ns)),
                    lost
                );
                for n in &m.notes {
                    notes.push(format!(
                        "{} B {} {}: {n}",
                        r.size,
                        r.mode.name(),
                        r.route.name()
                    ));
                }
            }
            Err(e) => {
                let _ = writeln!(out, "{head} failed: {e}");
            }
        }
    }
    if overloaded {
        out += "* the path did not keep up with the offered rate in the latency phase (sent or received below 95% of it): latency grew while the phase lasted\n";
    }
    let costs: Vec<(&Row, (f64, f64, f64))> = rows
        .iter()
        .filter_map(|r| cost(rows, r).map(|c| (r, c)))
        .collect();
    if !costs.is_empty() {
        let _ = writeln!(
            out,
            "\nthe bridge's own cost (the bridge row against the nats row of the same size and mode)\n{:>6}  {:<10} {:>12} {:>14} {:>14}",
            "size", "mode", "bridge/nats", "p50 added µs", "p99 added µs"
        );
        for (r, (ratio, p50, p99)) in costs {
            let _ = writeln!(
                out,
                "{:>6}  {:<10} {:>12} {:>14} {:>14}",
                r.size,
                r.mode.name(),
                format!("{ratio:.2}x"),
                format!("{:+.1}", p50 / 1e3),
                format!("{:+.1}", p99 / 1e3),
            );
        }
    }
    if !notes.is_empty() {
        out += "\n";
        for n in notes {
            let _ = writeln!(out, "note: {n}");
        }
    }
    out
}

impl Row {
    /// The row as one JSON object; a bridge row also has its cost against
    /// the nats row (`vs_nats_msgs_per_s`, `added_p50_ns`,
    /// `added_p99_ns`), and a failed one its `error`.
    pub fn json(&self, rows: &[Row]) -> String {
        let num = |v: Option<f64>, digits: usize| match v {
            Some(x) if x.is_finite() => format!("{x:.digits$}"),
            _ => "null".to_string(),
        };
        let m = self.outcome.as_ref().ok();
        let c = cost(rows, self);
        let notes = m
            .map(|m| {
                m.notes
                    .iter()
                    .map(|n| json_string(n))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        format!(
            "{{\"size\":{},\"mode\":\"{}\",\"path\":\"{}\",\"msgs_per_s\":{},\"mb_per_s\":{},\"sent\":{},\"received\":{},\"lost\":{},\"lat_offered_per_s\":{},\"lat_sent_per_s\":{},\"lat_received_per_s\":{},\"lat_samples\":{},\"lat_p50_ns\":{},\"lat_p99_ns\":{},\"lat_max_ns\":{},\"vs_nats_msgs_per_s\":{},\"added_p50_ns\":{},\"added_p99_ns\":{},\"notes\":[{}],\"error\":{}}}",
            self.size,
            self.mode.name(),
            self.route.name(),
            num(m.map(|m| m.msgs_per_s), 0),
            num(m.map(|m| m.msgs_per_s * self.size as f64 / 1e6), 1),
            num(m.map(|m| m.sent as f64), 0),
            num(m.map(|m| m.received as f64), 0),
            num(m.map(|m| m.lost() as f64), 0),
            num(m.map(|m| m.lat_offered_per_s), 0),
            num(m.map(|m| m.lat_sent_per_s), 0),
            num(m.map(|m| m.lat_received_per_s), 0),
            num(m.map(|m| m.lat_received as f64), 0),
            num(m.map(|m| m.p50_ns), 0),
            num(m.map(|m| m.p99_ns), 0),
            num(m.map(|m| m.max_ns), 0),
            num(c.map(|c| c.0), 3),
            num(c.map(|c| c.1), 0),
            num(c.map(|c| c.2), 0),
            notes,
            match &self.outcome {
                Ok(_) => "null".to_string(),
                Err(e) => json_string(e),
            }
        )
    }
}

pub(super) fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out += "\\\"",
            '\\' => out += "\\\\",
            '\n' => out += "\\n",
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `measuring …` line on standard error, rewritten in place, when it is
/// a terminal (as `shmchan bench`).
pub(super) fn progress_line() -> impl FnMut(&str) {
    let tty = std::io::stderr().is_terminal();
    move |what| {
        if tty {
            eprint!("\r\x1b[2Kmeasuring {what}");
        }
    }
}

pub(super) fn progress_end() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K");
    }
}
