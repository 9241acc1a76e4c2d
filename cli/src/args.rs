//! Parsing of the tool's values: keys, sizes, modes, durations.

use std::path::PathBuf;
use std::time::Duration;

use shmchan::Key;

/// A channel's key as given on the command line: a number, or a path for
/// `ftok` (resolved when the command runs, with `--proj`).
#[derive(Debug, Clone)]
pub enum KeyArg {
    /// `0x1234` or `4660`.
    Number(i32),
    /// An existing path.
    Path(PathBuf),
}

impl KeyArg {
    /// The System V key; for a path, `ftok(path, proj)`.
    pub fn resolve(&self, proj: u8) -> Result<Key, String> {
        match self {
            KeyArg::Number(n) => Ok(Key::raw(*n)),
            KeyArg::Path(p) => Key::ftok(p, i32::from(proj)).map_err(|e| {
                let why = match e.kind() {
                    std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
                    _ => e.to_string(),
                };
                format!(
                    "key {}: {why}; give an existing path or a number (0x1234)",
                    p.display()
                )
            }),
        }
    }
}

impl std::fmt::Display for KeyArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyArg::Number(n) => write!(f, "{}", Key::raw(*n)),
            KeyArg::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// `0x1234` (hex), `4660` (decimal, up to 2^32 - 1) or a path. Zero is
/// refused: it is `IPC_PRIVATE`, which no other process can open.
pub fn key(s: &str) -> Result<KeyArg, String> {
    let n = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(
            u32::from_str_radix(hex, 16)
                .map_err(|_| format!("{s:?} is not a hexadecimal key (0x1 to 0xffffffff)"))?,
        )
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        Some(
            s.parse::<u32>()
                .map_err(|_| format!("{s:?} is out of range for a key (1 to 4294967295)"))?,
        )
    } else {
        None
    };
    match n {
        Some(0) => {
            Err("key 0 is IPC_PRIVATE, which no other process can open; give another".into())
        }
        Some(n) => Ok(KeyArg::Number(n as i32)),
        None if s.is_empty() => Err("empty key".into()),
        None => Ok(KeyArg::Path(PathBuf::from(s))),
    }
}

/// A byte count: `4096`, `64K`, `1M`, `1G` (powers of 1024; `KiB`, `kb`,
/// … accepted).
pub fn size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 4096, 64K, 1M)"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use K, M or G)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Permission bits in octal: `600`, `0640`.
pub fn mode(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s.trim_start_matches("0o"), 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!("{s:?} is not an octal mode (000 to 777)")),
    }
}

/// A duration: `5s`, `250ms`, `2m`, `1.5s`, or a number of seconds.
pub fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 5s, 250ms, 2m)"))?;
    let secs = match unit {
        "" | "s" => v,
        "ms" => v / 1e3,
        "us" => v / 1e6,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a valid duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(matches!(key("0x1234"), Ok(KeyArg::Number(0x1234))));
        assert!(matches!(key("4660"), Ok(KeyArg::Number(4660))));
        assert!(matches!(key("0xffffffff"), Ok(KeyArg::Number(-1))));
        assert!(matches!(key("/tmp/x"), Ok(KeyArg::Path(_))));
        assert!(key("0xzz").is_err());
        assert!(key("0").is_err());
        assert!(key("99999999999").is_err());
        assert!(key("").is_err());
    }

    #[test]
    fn sizes_modes_durations() {
        assert_eq!(size("4096"), Ok(4096));
        assert_eq!(size("64K"), Ok(64 << 10));
        assert_eq!(size("1MiB"), Ok(1 << 20));
        assert_eq!(size("2g"), Ok(2 << 30));
        assert!(size("1X").is_err());
        assert!(size("M").is_err());
        assert_eq!(mode("600"), Ok(0o600));
        assert_eq!(mode("0640"), Ok(0o640));
        assert!(mode("800").is_err());
        assert!(mode("1777").is_err());
        assert_eq!(duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(duration("5 parsecs").is_err());
        assert!(duration("-1s").is_err());
    }
}
