//! Damaged channels: a segment whose header another process overwrote is
//! told apart from another program's by its shape (`Listing::looks_damaged`),
//! and still never removed without being asked to.

mod common;
use common::*;
use shmchan::layout::offset;
use shmchan::{Channel, Flavor, Found, Key, Listing, OpenError, Options};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// The listing of the segment at `key` (panics if it is not listed).
fn listed(key: Key) -> Listing {
    Channel::list()
        .expect("Channel::list")
        .into_iter()
        .find(|l| l.key == key)
        .unwrap_or_else(|| panic!("{key} not listed"))
}

/// A plain segment of `size` bytes at `key`, filled with `0xa5` (a zeroed
/// one beside four semaphores is a half-created channel), and a set of
/// `nsems` semaphores if asked.
fn foreign(key: Key, size: usize, nsems: Option<i32>) {
    plain_segment(key, size);
    with_raw_segment(key, |b| b.fill(0xa5));
    if let Some(n) = nsems {
        plain_semset(key, n);
    }
}

#[test]
fn looks_damaged_is_a_foreign_segment_with_a_channels_shape() {
    // Channels made by a process that has exited (so that each would be
    // garbage if it were ours): SPSC, and MPSC with the most sender slots.
    let (spsc, mpsc) = (unique_key(), unique_key());
    let _guards = (KeyGuard(spsc), KeyGuard(mpsc));
    let mut creator = spawn(move || {
        let a = Channel::create(spsc, Options::default().capacity(4096));
        let opts = Options::default()
            .flavor(Flavor::Mpsc)
            .capacity(1 << 20)
            .max_senders(shmchan::layout::MAX_SENDER_SLOTS);
        let b = Channel::create(mpsc, opts);
        i32::from(a.is_err() || b.is_err())
    });
    assert_eq!(creator.wait_timeout(T), 0, "the creator failed");
    for key in [spsc, mpsc] {
        let l = listed(key);
        assert!(matches!(l.found, Found::Channel(_)), "{l:?}");
        assert!(!l.looks_damaged(), "a healthy channel: {l:?}");
        with_raw_segment(key, |b| b[..8].copy_from_slice(b"NOTOURS!"));
        let before = segment_bytes(key);
        let l = listed(key);
        assert!(matches!(l.found, Found::Foreign), "{l:?}");
        assert!(l.looks_damaged(), "{l:?}");
        // Still not ours: gc, remove and remove_key leave it.
        assert!(!l.is_ours() && !l.is_garbage(), "{l:?}");
        assert!(matches!(l.remove(), Err(OpenError::NotAChannel)));
        assert!(matches!(
            Channel::remove_key(key),
            Err(OpenError::NotAChannel)
        ));
        assert!(segment_bytes(key) == before, "the segment was written");
        assert!(shm_at(key).is_some() && sem_at(key).is_some());
    }

    // A header damaged past the magic is ours already (unreadable), not a
    // foreign segment that looks damaged.
    let (ch, guard) = fresh(Options::default().capacity(4096));
    let key = ch.key();
    drop(ch);
    with_raw_segment(key, |b| {
        b[offset::CAPACITY..offset::CAPACITY + 8].copy_from_slice(&3000u64.to_ne_bytes())
    });
    let l = listed(key);
    assert!(matches!(l.found, Found::Unreadable(_)), "{l:?}");
    assert!(l.is_ours() && !l.looks_damaged(), "{l:?}");
    drop(guard);

    // Plain segments: only a channel's size with four semaphores beside it.
    for (size, nsems, damaged) in [
        (8192, Some(4), true),
        (4096, Some(4), true),
        (8192, None, false),
        (8192, Some(1), false),
        (8192, Some(5), false),
        (5000, Some(4), false),    // not whole pages
        (3 << 20, Some(4), false), // too far above any power of two
    ] {
        let key = unique_key();
        let guard = KeyGuard(key);
        foreign(key, size, nsems);
        let l = listed(key);
        assert!(matches!(l.found, Found::Foreign), "{l:?}");
        assert_eq!(l.looks_damaged(), damaged, "{size} bytes, {nsems:?}");
        assert!(!l.is_ours());
        drop(guard);
        assert!(!key_in_use(key));
    }

    // A zeroed segment beside four semaphores is a half-created channel.
    let key = unique_key();
    let guard = KeyGuard(key);
    plain_segment(key, 8192);
    plain_semset(key, 4);
    let l = listed(key);
    assert!(matches!(l.found, Found::Initializing), "{l:?}");
    assert!(!l.looks_damaged());
    drop(guard);
    assert!(!key_in_use(key));
}
