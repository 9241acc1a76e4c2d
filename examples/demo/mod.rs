//! What both examples need: their command line, the demo's key, and
//! opening the channel or creating it, whichever side comes first.

use std::path::{Path, PathBuf};

use shmchan::{Channel, Key, OpenError, Options};

/// `--path P`, `--count N` and `--size BYTES` (each optional; the path
/// defaults to `shmchan-demo` in the temporary directory); `usage` is the
/// message for anything else.
pub fn parse_args(usage: &str) -> Result<(PathBuf, Option<u64>, Option<usize>), String> {
    let mut path = std::env::temp_dir().join("shmchan-demo");
    let (mut count, mut size) = (None, None);
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let flag = pair[0].as_str();
        let v = || pair.get(1).ok_or(format!("{flag} needs a value; {usage}"));
        let num = || v()?.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag {
            "--path" => path = v()?.into(),
            "--count" => count = Some(num()?),
            "--size" => size = Some(num()? as usize),
            _ => Err(usage.to_string())?,
        }
    }
    Ok((path, count, size))
}

/// The key of `path` (created empty if missing) with proj id 1.
pub fn demo_key(path: &Path) -> Result<Key, String> {
    match std::fs::File::create_new(path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(format!("cannot create {}: {e}", path.display()))
        }
        _ => Key::ftok(path, 1).map_err(|e| e.to_string()),
    }
}

/// Opens the channel at `key`, or creates it; `true` if created here.
pub fn create_or_open(key: Key, options: Options) -> Result<(Channel, bool), OpenError> {
    for _ in 0..10 {
        match Channel::open(key) {
            Err(OpenError::NotFound) => {}
            other => return other.map(|ch| (ch, false)),
        }
        match Channel::create(key, options.clone()) {
            // The other side created it between our open and our create.
            Err(OpenError::AlreadyExists) => {}
            other => return other.map(|ch| (ch, true)),
        }
    }
    Err(OpenError::AlreadyExists)
}
