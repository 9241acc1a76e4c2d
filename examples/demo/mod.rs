//! What both examples need: the demo's key, and opening the channel or
//! creating it, whichever side comes first.

use std::path::Path;

use shmchan::{Channel, Key, OpenError, Options};

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
