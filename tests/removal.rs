//! Damaged channels: a segment whose header another process overwrote is
//! told apart from another program's by its shape (`Listing::looks_damaged`),
//! never removed without being asked to, and removed when asked
//! (`Channel::remove_key_forced`, which removes whatever is at a key).

mod common;
use common::*;
use shmchan::layout::{offset, MAGIC};
use shmchan::{
    Channel, Flavor, ForcedRemoval, Found, Key, Listing, OpenError, Options, RemovedSems,
    SegmentKind,
};
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

/// `remove_key_forced(key)`, which must succeed and leave nothing at the
/// key.
fn forced(key: Key) -> ForcedRemoval {
    let r = Channel::remove_key_forced(key).expect("remove_key_forced");
    assert_eq!(r.key, key);
    assert!(!key_in_use(key), "something left at {key}");
    r
}

#[test]
fn remove_key_forced_removes_a_healthy_channel_and_calls_it_one() {
    // In a child of its own: the attachment counts are exact there.
    in_child(|| {
        let (neighbour, _ng) = fresh(Options::default().capacity(4096));
        let (ch, _guard) = fresh(Options::default().capacity(1 << 16));
        let key = ch.key();
        let _rx = ch.receiver().unwrap();
        let r = forced(key);
        let seg = r.segment.expect("the segment");
        assert_eq!(seg.shm_id, ch.shm_id());
        assert_eq!(seg.size, ch.layout().segment_len);
        assert_eq!(seg.attached, 1, "this process's attachment");
        assert_eq!(seg.kind, SegmentKind::Channel);
        assert_eq!(seg.magic, Some(MAGIC));
        assert_eq!(
            r.sems,
            Some(RemovedSems {
                sem_id: ch.sem_id(),
                nsems: 4
            })
        );
        assert!(matches!(
            Channel::remove_key_forced(key),
            Err(OpenError::NotFound)
        ));
        // The channel at the other key is whole.
        let again = Channel::open(neighbour.key()).expect("the neighbour");
        assert_eq!(again.shm_id(), neighbour.shm_id());
        assert_eq!(again.sem_id(), neighbour.sem_id());
    });
}

#[test]
fn remove_key_forced_removes_damaged_foreign_and_half_made_objects() {
    // In a child of its own: the attachment counts are exact there.
    in_child(|| {
        let (neighbour, _ng) = fresh(Options::default().capacity(4096));

        // The magic overwritten: a damaged channel (by its shape).
        let (ch, _g) = fresh(Options::default().capacity(4096));
        let (key, shm, sem, len) = (ch.key(), ch.shm_id(), ch.sem_id(), ch.layout().segment_len);
        drop(ch);
        with_raw_segment(key, |b| b[..8].copy_from_slice(b"NOTOURS!"));
        let r = forced(key);
        let seg = r.segment.unwrap();
        assert_eq!((seg.shm_id, seg.size, seg.attached), (shm, len, 0));
        assert_eq!(seg.kind, SegmentKind::Damaged);
        assert_eq!(seg.magic, Some(u64::from_ne_bytes(*b"NOTOURS!")));
        assert_eq!(
            r.sems,
            Some(RemovedSems {
                sem_id: sem,
                nsems: 4
            })
        );

        // Our magic, an impossible capacity: damaged too.
        let (ch, _g) = fresh(Options::default().capacity(4096));
        let key = ch.key();
        drop(ch);
        with_raw_segment(key, |b| {
            b[offset::CAPACITY..offset::CAPACITY + 8].copy_from_slice(&3000u64.to_ne_bytes())
        });
        let seg = forced(key).segment.unwrap();
        assert_eq!((seg.kind, seg.magic), (SegmentKind::Damaged, Some(MAGIC)));

        // Another program's segment, attached here, and a set of one.
        let key = unique_key();
        let _g = KeyGuard(key);
        let shm = plain_segment(key, 8192);
        let sem = plain_semset(key, 1);
        let r = with_raw_segment(key, |b| {
            b.fill(0x5a);
            forced(key)
        });
        let seg = r.segment.unwrap();
        assert_eq!((seg.shm_id, seg.attached), (shm, 1));
        assert_eq!(seg.kind, SegmentKind::Foreign);
        assert_eq!(seg.magic, Some(0x5a5a_5a5a_5a5a_5a5a));
        assert_eq!(
            r.sems,
            Some(RemovedSems {
                sem_id: sem,
                nsems: 1
            })
        );

        // A segment smaller than a header, alone: its magic is not read.
        let shm = plain_segment(key, 100);
        let r = forced(key);
        let seg = r.segment.unwrap();
        assert_eq!(
            (seg.shm_id, seg.size, seg.kind),
            (shm, 100, SegmentKind::Foreign)
        );
        assert_eq!((seg.magic, r.sems), (None, None));

        // A set alone.
        let sem = plain_semset(key, 4);
        let r = forced(key);
        assert_eq!(r.segment, None);
        assert_eq!(
            r.sems,
            Some(RemovedSems {
                sem_id: sem,
                nsems: 4
            })
        );

        // What a creator killed half-way leaves: a zeroed segment and a set.
        let mut creator = spawn(move || {
            plain_semset(key, 4);
            plain_segment(key, 8192);
            0
        });
        assert_eq!(creator.wait_timeout(T), 0);
        let seg = forced(key).segment.unwrap();
        assert_eq!((seg.kind, seg.magic), (SegmentKind::Initializing, Some(0)));

        // Nothing there.
        assert!(matches!(
            Channel::remove_key_forced(key),
            Err(OpenError::NotFound)
        ));
        let again = Channel::open(neighbour.key()).expect("the neighbour");
        assert_eq!(again.shm_id(), neighbour.shm_id());
    });
}

#[test]
fn remove_key_forced_refuses_a_private_key() {
    let ch = Channel::create(Key::private(), Options::default().remove_on_drop(true)).unwrap();
    match Channel::remove_key_forced(Key::private()) {
        Err(OpenError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput),
        other => panic!("{other:?}"),
    }
    let l = Channel::list()
        .unwrap()
        .into_iter()
        .find(|l| l.shm_id == ch.shm_id())
        .expect("the private channel is still there");
    assert!(matches!(l.found, Found::Channel(_)));
    assert_eq!(
        sem_val(ch.sem_id(), SEM_SENDERS),
        0,
        "its set is still there"
    );
}
