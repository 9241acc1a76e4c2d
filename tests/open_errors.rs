//! Opening, creating and removing: every `OpenError` a caller can meet,
//! foreign IPC objects left untouched, and removal under a sleeping peer.

mod common;
use common::*;
use shmchan::layout::{offset, HeaderError};
use shmchan::{
    Channel, Flavor, Key, OpenError, Options, RecvError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// Exit codes of children that try to take an endpoint.
const GOT_BUSY: i32 = 0;
const GOT_IT: i32 = 1;
const GOT_OTHER: i32 = 2;

fn outcome<E>(r: Result<E, OpenError>) -> i32 {
    match r {
        Err(OpenError::Busy) => GOT_BUSY,
        Ok(_) => GOT_IT,
        Err(_) => GOT_OTHER,
    }
}

fn busy_across_processes(sender: bool) {
    let (ch, guard) = fresh(Options::default().capacity(4096));
    let key = ch.key();
    let take = |ch: &Channel| -> i32 {
        if sender {
            outcome(ch.sender())
        } else {
            outcome(ch.receiver())
        }
    };
    // A child holds the endpoint.
    let ready = Notify::new();
    let mut holder = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let _keep = if sender {
            Some(ch.sender().unwrap())
        } else {
            None
        };
        let _keep2 = if sender {
            None
        } else {
            Some(ch.receiver().unwrap())
        };
        ready.notify();
        sleep_forever()
    });
    assert!(ready.wait(T), "the holder failed");
    // Busy in the parent, through the creating handle and a fresh open.
    assert_eq!(take(&ch), GOT_BUSY);
    assert_eq!(take(&Channel::open(key).unwrap()), GOT_BUSY);
    // Busy in a third process.
    let mut other = spawn(|| take(&Channel::open(key).unwrap()));
    assert_eq!(
        other.wait_timeout(T),
        GOT_BUSY,
        "a third process was not refused"
    );
    // The holder is killed: its place is free.
    holder.kill();
    let kind = if sender { SEM_SENDERS } else { SEM_RECEIVERS };
    assert_eq!(
        sem_val(ch.sem_id(), kind),
        0,
        "the killed holder still counts"
    );
    let mine = if sender {
        ch.sender().map(drop)
    } else {
        ch.receiver().map(drop)
    };
    mine.expect("the place of a killed holder is free");
    // Now the parent holds it: a child is refused, until the parent drops it.
    let keep = if sender {
        Some(ch.sender().unwrap())
    } else {
        None
    };
    let keep2 = if sender {
        None
    } else {
        Some(ch.receiver().unwrap())
    };
    let mut other = spawn(|| take(&Channel::open(key).unwrap()));
    assert_eq!(
        other.wait_timeout(T),
        GOT_BUSY,
        "a child was not refused while the parent holds it"
    );
    drop((keep, keep2));
    let mut other = spawn(|| take(&Channel::open(key).unwrap()));
    assert_eq!(
        other.wait_timeout(T),
        GOT_IT,
        "a child was refused after the parent dropped it"
    );
    finish(ch, guard);
}

#[test]
fn second_sender_is_busy_across_processes_until_holder_killed() {
    busy_across_processes(true);
}

#[test]
fn second_receiver_is_busy_across_processes_until_holder_killed() {
    busy_across_processes(false);
}

#[test]
fn create_on_a_used_key_is_already_exists_and_leaves_it_alone() {
    let (ch, guard) = fresh(Options::default().capacity(4096));
    let key = ch.key();
    let (shm_id, sem_id) = (ch.shm_id(), ch.sem_id());
    assert!(matches!(
        Channel::create(key, Options::default()),
        Err(OpenError::AlreadyExists)
    ));
    let mut child = spawn(|| match Channel::create(key, Options::default()) {
        Err(OpenError::AlreadyExists) => 0,
        _ => 1,
    });
    assert_eq!(
        child.wait_timeout(T),
        0,
        "create in a child was not AlreadyExists"
    );
    // The channel is the same one and works.
    let again = Channel::open(key).unwrap();
    assert_eq!((again.shm_id(), again.sem_id()), (shm_id, sem_id));
    assert_eq!(again.capacity(), 4096);
    let mut tx = again.sender().unwrap();
    let mut rx = ch.receiver().unwrap();
    tx.send(b"still here").unwrap();
    assert_eq!(&*rx.recv_timeout(T).unwrap(), b"still here");
    drop((tx, rx, again));
    finish(ch, guard);

    // A foreign segment alone at the key: AlreadyExists; the segment is
    // untouched and the semaphore set `create` made first is taken back.
    let key = unique_key();
    let guard = KeyGuard(key);
    let seg = plain_segment(key, 8192);
    with_raw_segment(key, |b| b.fill(0x3C));
    assert!(matches!(
        Channel::create(key, Options::default()),
        Err(OpenError::AlreadyExists)
    ));
    assert_eq!(shm_at(key), Some(seg), "the foreign segment is gone");
    assert_eq!(sem_at(key), None, "create left a semaphore set");
    assert!(
        segment_bytes(key).iter().all(|&b| b == 0x3C),
        "the foreign segment was written"
    );
    drop(guard);
    assert!(!key_in_use(key));

    // A foreign semaphore set alone at the key: AlreadyExists, left alone.
    let key = unique_key();
    let guard = KeyGuard(key);
    let set = plain_semset(key, 2);
    assert!(matches!(
        Channel::create(key, Options::default()),
        Err(OpenError::AlreadyExists)
    ));
    assert_eq!(sem_at(key), Some(set));
    assert_eq!(shm_at(key), None, "create left a segment");
    drop(guard);
    assert!(!key_in_use(key));
}

#[test]
fn open_and_remove_key_of_an_unused_key_are_not_found() {
    let key = unique_key();
    let _guard = KeyGuard(key);
    assert!(matches!(Channel::open(key), Err(OpenError::NotFound)));
    assert!(matches!(Channel::remove_key(key), Err(OpenError::NotFound)));
    let mut child = spawn(|| match Channel::open(key) {
        Err(OpenError::NotFound) => 0,
        _ => 1,
    });
    assert_eq!(child.wait_timeout(T), 0);
    assert!(!key_in_use(key), "open or remove_key created something");
}

#[test]
fn invalid_options_create_nothing() {
    let key = unique_key();
    let _guard = KeyGuard(key);
    for opts in [
        Options::default().mode(0o1777),
        Options::default().capacity(1024).max_message(1017),
        Options::default().capacity(1 << 41),
    ] {
        assert!(matches!(
            Channel::create(key, opts),
            Err(OpenError::InvalidOptions(_))
        ));
        assert!(!key_in_use(key));
    }
    for opts in [
        Options::default().flavor(Flavor::Mpsc).max_senders(0),
        Options::default().flavor(Flavor::Mpsc).max_senders(4097),
        Options::default().max_senders(2),
    ] {
        assert!(matches!(
            Channel::create(key, opts),
            Err(OpenError::InvalidOptions(_))
        ));
        assert!(!key_in_use(key));
    }
    // The largest max_message is accepted.
    let ch = Channel::create(key, Options::default().capacity(1024).max_message(1008)).unwrap();
    assert_eq!(ch.max_message(), 1008);
    finish(ch, _guard);
}

/// `max_message + 1` is refused by every sending call and publishes
/// nothing; exactly `max_message` (and 0) bytes go through intact.
#[test]
fn too_large_is_refused_and_exactly_max_message_works() {
    const MAX: usize = 3000;
    let (ch, guard) = fresh(Options::default().capacity(8192).max_message(MAX));
    let key = ch.key();
    let mut tx = ch.sender().unwrap();
    // The receiver child could die before connecting: bound the blocking calls.
    let dog = Watchdog::new(key, Duration::from_secs(60));
    let big = vec![9u8; MAX + 1];
    let too = (MAX + 1, MAX);
    assert_eq!(
        tx.try_send(&big).unwrap_err(),
        TrySendError::TooLarge {
            len: too.0,
            max: too.1
        }
    );
    assert_eq!(
        tx.send(&big).unwrap_err(),
        SendError::TooLarge {
            len: too.0,
            max: too.1
        }
    );
    assert_eq!(
        tx.send_timeout(&big, T).unwrap_err(),
        SendTimeoutError::TooLarge {
            len: too.0,
            max: too.1
        }
    );
    assert_eq!(
        tx.reserve(MAX + 1).unwrap_err(),
        SendError::TooLarge {
            len: too.0,
            max: too.1
        }
    );
    assert_eq!(
        tx.try_reserve(MAX + 1).unwrap_err(),
        TrySendError::TooLarge {
            len: too.0,
            max: too.1
        }
    );
    assert_eq!(
        tx.try_send(&vec![0; 1 << 20]).unwrap_err(),
        TrySendError::TooLarge {
            len: 1 << 20,
            max: MAX
        }
    );
    let full: Vec<u8> = (0..MAX).map(|i| (i * 7 + 3) as u8).collect();
    let mut child = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let mut rx = ch.receiver().unwrap();
        assert_eq!(&*rx.recv_timeout(T).unwrap(), &full[..]);
        assert_eq!(rx.recv_timeout(T).unwrap().len(), 0);
        assert_eq!(&*rx.recv_timeout(T).unwrap(), &full[..]);
        assert_eq!(&*rx.recv_timeout(T).unwrap(), &full[..]);
        assert_eq!(
            rx.recv_timeout(T).unwrap_err(),
            shmchan::RecvTimeoutError::Disconnected
        );
        0
    });
    tx.send(&full).unwrap();
    tx.try_send(&[]).unwrap();
    // Full (two max records don't fit with the first) or not, it is no error.
    tx.send_timeout(&full, T).unwrap();
    let mut g = tx.reserve(MAX).unwrap();
    assert_eq!(g.len(), MAX);
    g.copy_from_slice(&full);
    g.commit();
    assert_eq!(
        tx.try_send(&big).unwrap_err(),
        TrySendError::TooLarge {
            len: too.0,
            max: too.1
        }
    );
    drop(tx);
    assert_eq!(child.wait_timeout(T), 0, "the receiver child failed");
    assert!(!dog.fired());
    drop(dog);
    finish(ch, guard);
}

/// Fills `bytes` with pseudo-random non-zero bytes.
fn scribble(bytes: &mut [u8]) {
    let mut x = 0x1234_5678_9abc_def1u64;
    for b in bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x as u8) | 1;
    }
}

#[test]
fn plain_segments_are_not_a_channel_and_never_written() {
    // Zeroed, no semaphore set.
    let key = unique_key();
    let guard = KeyGuard(key);
    plain_segment(key, 8192);
    assert!(matches!(Channel::open(key), Err(OpenError::NotAChannel)));
    assert!(matches!(
        Channel::remove_key(key),
        Err(OpenError::NotAChannel)
    ));
    assert!(
        segment_bytes(key).iter().all(|&b| b == 0),
        "a zeroed foreign segment was written"
    );
    drop(guard);
    assert!(!key_in_use(key));

    // Random non-zero bytes, no semaphore set; then also with a 4-semaphore
    // set at the key (so that open gets as far as the magic). Opened from a
    // child and from the parent; not a byte may change.
    let key = unique_key();
    let guard = KeyGuard(key);
    let seg = plain_segment(key, 3 * 4096);
    with_raw_segment(key, scribble);
    let before = segment_bytes(key);
    for with_set in [false, true] {
        if with_set {
            plain_semset(key, 4);
        }
        assert!(matches!(Channel::open(key), Err(OpenError::NotAChannel)));
        assert!(
            segment_bytes(key) == before,
            "open modified a foreign segment"
        );
        let mut child = spawn(|| match Channel::open(key) {
            Err(OpenError::NotAChannel) => 0,
            _ => 1,
        });
        assert_eq!(
            child.wait_timeout(T),
            0,
            "open in a child was not NotAChannel"
        );
        assert!(
            segment_bytes(key) == before,
            "open in a child modified a foreign segment"
        );
        assert!(matches!(
            Channel::remove_key(key),
            Err(OpenError::NotAChannel)
        ));
        assert_eq!(shm_at(key), Some(seg), "the foreign segment was removed");
        if with_set {
            assert!(sem_at(key).is_some(), "the foreign set was removed");
        }
        assert!(
            segment_bytes(key) == before,
            "remove_key modified a foreign segment"
        );
    }
    drop(guard);
    assert!(!key_in_use(key));

    // Smaller than a header.
    let key = unique_key();
    let guard = KeyGuard(key);
    plain_segment(key, 100);
    with_raw_segment(key, scribble);
    let before = segment_bytes(key);
    assert!(matches!(Channel::open(key), Err(OpenError::NotAChannel)));
    assert!(matches!(
        Channel::remove_key(key),
        Err(OpenError::NotAChannel)
    ));
    assert!(segment_bytes(key) == before);
    drop(guard);
    assert!(!key_in_use(key));
}

/// What a creator killed between its semaphore set and its ready mark
/// leaves (a zeroed segment and a 4-semaphore set, made by a dead process):
/// open says NotInitialized without waiting, remove_key cleans it up.
#[test]
fn creator_died_while_initialising_not_initialized_and_remove_key_cleans() {
    let key = unique_key();
    let guard = KeyGuard(key);
    let mut creator = spawn(|| {
        plain_semset(key, 4);
        plain_segment(key, 4096 + 4096);
        0
    });
    assert_eq!(creator.wait_timeout(T), 0);
    let t = Instant::now();
    assert!(matches!(Channel::open(key), Err(OpenError::NotInitialized)));
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "open waited for a dead creator"
    );
    assert!(
        segment_bytes(key).iter().all(|&b| b == 0),
        "open wrote a half-made channel"
    );
    Channel::remove_key(key).unwrap();
    assert!(!key_in_use(key));
    drop(guard);
}

/// Rewrites `bytes` at `off` of the segment at `key`, then checks that
/// `open` fails as `check` says, from the parent and from a child, and that
/// it writes nothing; then `remove_key` removes the channel.
fn corrupt_then_open(off: usize, bytes: &[u8], check: fn(&OpenError) -> bool) {
    let (ch, guard) = fresh(Options::default().capacity(4096));
    let key = ch.key();
    drop(ch);
    with_raw_segment(key, |b| b[off..off + bytes.len()].copy_from_slice(bytes));
    let before = segment_bytes(key);
    let e = Channel::open(key).unwrap_err();
    assert!(check(&e), "unexpected error {e:?}");
    assert!(segment_bytes(key) == before, "open modified the segment");
    let mut child = spawn(|| match Channel::open(key) {
        Err(e) if check(&e) => 0,
        _ => 1,
    });
    assert_eq!(
        child.wait_timeout(T),
        0,
        "open in a child failed differently"
    );
    assert!(segment_bytes(key) == before, "open modified the segment");
    Channel::remove_key(key).unwrap();
    assert!(!key_in_use(key));
    drop(guard);
}

#[test]
fn version_edited_is_incompatible_version() {
    assert_eq!(offset::VERSION, 8);
    // A version-1 segment (SPSC records published by tail) is refused.
    corrupt_then_open(8, &1u32.to_ne_bytes(), |e| {
        matches!(
            e,
            OpenError::IncompatibleVersion {
                found: 1,
                supported: 2
            }
        )
    });
    corrupt_then_open(8, &3u32.to_ne_bytes(), |e| {
        matches!(
            e,
            OpenError::IncompatibleVersion {
                found: 3,
                supported: 2
            }
        )
    });
    corrupt_then_open(8, &u32::MAX.to_ne_bytes(), |e| {
        matches!(
            e,
            OpenError::IncompatibleVersion {
                found: u32::MAX,
                supported: 2
            }
        )
    });
}

#[test]
fn capacity_edited_is_invalid_header() {
    assert_eq!(offset::CAPACITY, 24);
    corrupt_then_open(24, &3000u64.to_ne_bytes(), |e| {
        matches!(
            e,
            OpenError::InvalidHeader(HeaderError::BadCapacity { found: 3000 })
        )
    });
    // A power of two larger than the segment.
    corrupt_then_open(24, &(1u64 << 20).to_ne_bytes(), |e| {
        matches!(
            e,
            OpenError::InvalidHeader(HeaderError::RegionOutside { .. })
        )
    });
    // max_message larger than the ring.
    corrupt_then_open(offset::MAX_MESSAGE, &4089u64.to_ne_bytes(), |e| {
        matches!(
            e,
            OpenError::InvalidHeader(HeaderError::MaxMessageTooLarge {
                max_message: 4089,
                ..
            })
        )
    });
}

#[test]
fn corrupted_magic_is_not_a_channel_and_remove_key_refuses_it() {
    let (ch, guard) = fresh(Options::default().capacity(4096));
    let key = ch.key();
    drop(ch);
    with_raw_segment(key, |b| b[..8].copy_from_slice(b"NOTOURS!"));
    let before = segment_bytes(key);
    assert!(matches!(Channel::open(key), Err(OpenError::NotAChannel)));
    assert!(matches!(
        Channel::remove_key(key),
        Err(OpenError::NotAChannel)
    ));
    assert!(segment_bytes(key) == before);
    drop(guard);
    assert!(!key_in_use(key));
}

/// `Channel::remove` from the parent while a child sleeps in `recv` (with a
/// live sender in the parent, so only the removal can end it): the child
/// gets Disconnected within a second and exits with the code the parent
/// expects; nothing is left at the key; the key is free for a new channel.
#[test]
fn remove_wakes_receiver_sleeping_in_child() {
    let (ch, guard) = fresh(Options::default().capacity(4096));
    let key = ch.key();
    let _tx = ch.sender().unwrap();
    let mut child = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let mut rx = ch.receiver().unwrap();
        rx.set_spin_limit(0);
        match rx.recv() {
            Err(RecvError::Disconnected) => {}
            Ok(_) => return 3,
            Err(_) => return 4,
        }
        let code = match rx.try_recv() {
            Err(TryRecvError::Disconnected) => 42,
            _ => 5,
        };
        code
    });
    assert!(
        wait_until(T, || sem_ncnt(ch.sem_id(), SEM_DATA) >= 1),
        "the receiver never slept in recv"
    );
    let t = Instant::now();
    ch.remove().unwrap();
    assert!(!key_in_use(key), "remove left IPC objects");
    let code = child.wait_timeout(T);
    let dt = t.elapsed();
    assert_eq!(code, 42, "the child's recv did not end with Disconnected");
    assert!(
        dt < Duration::from_secs(1),
        "the child took {dt:?} to notice the removal"
    );
    assert!(matches!(Channel::open(key), Err(OpenError::NotFound)));
    assert!(matches!(ch.receiver(), Err(OpenError::NotFound)));
    // The key can be used again.
    drop(_tx);
    drop(ch);
    let ch = Channel::create(key, Options::default().capacity(4096)).unwrap();
    finish(ch, guard);
}

/// The same for a sender asleep in `send` on a full ring in a child.
#[test]
fn remove_wakes_sender_blocked_on_full_ring_in_child() {
    let (ch, guard) = fresh(Options::default().capacity(64).max_message(48));
    let key = ch.key();
    let _rx = ch.receiver().unwrap();
    let mut child = spawn(|| {
        let ch = Channel::open(key).unwrap();
        let mut tx = ch.sender().unwrap();
        tx.set_spin_limit(0);
        tx.send(&[1; 48]).unwrap();
        match tx.send(&[2; 48]) {
            Err(SendError::Disconnected) => 42,
            Ok(()) => 3,
            Err(_) => 4,
        }
    });
    assert!(
        wait_until(T, || sem_ncnt(ch.sem_id(), SEM_SPACE) >= 1),
        "the sender never slept on the full ring"
    );
    let t = Instant::now();
    ch.remove().unwrap();
    assert!(!key_in_use(key), "remove left IPC objects");
    let code = child.wait_timeout(T);
    let dt = t.elapsed();
    assert_eq!(code, 42, "the child's send did not end with Disconnected");
    assert!(
        dt < Duration::from_secs(1),
        "the child took {dt:?} to notice the removal"
    );
    drop(_rx);
    drop(ch);
    drop(guard);
    assert!(!key_in_use(key));
}

/// `remove_key` removes a live channel (both objects) that another process
/// created, and endpoints in the creator see Disconnected.
#[test]
fn remove_key_removes_a_channel_made_by_another_process() {
    let key = unique_key();
    let guard = KeyGuard(key);
    let made = Notify::new();
    let mut creator = spawn(|| {
        let ch = Channel::create(key, Options::default().capacity(4096)).unwrap();
        let mut tx = ch.sender().unwrap();
        tx.send(b"one").unwrap();
        made.notify();
        let t = Instant::now();
        loop {
            match tx.send_timeout(b"more", Duration::from_millis(50)) {
                Ok(()) | Err(SendTimeoutError::Timeout) => {}
                Err(SendTimeoutError::Disconnected) => return 42,
                Err(_) => return 2,
            }
            if t.elapsed() > T {
                return 3;
            }
        }
    });
    assert!(made.wait(T), "the creator failed");
    Channel::remove_key(key).unwrap();
    assert!(!key_in_use(key));
    assert_eq!(
        creator.wait_timeout(T),
        42,
        "the creator's sender did not see the removal"
    );
    assert!(matches!(Channel::remove_key(key), Err(OpenError::NotFound)));
    drop(guard);
}

/// Another process writes ring positions or a record header no correct
/// peer writes: the endpoints report Corrupted (and new endpoints refuse
/// the positions) instead of reading or writing outside the ring.
#[test]
fn corrupted_ring_state_written_by_another_process_is_reported() {
    use shmchan::layout::{kind, record_header, HEADER_SIZE};
    use shmchan::{RecvTimeoutError, TryRecvError};
    let (ch, guard) = fresh(Options::default().capacity(4096).max_message(56));
    let key = ch.key();
    let mut rx = ch.receiver().unwrap();
    let dog = Watchdog::new(key, Duration::from_secs(60));
    // Runs `f` on the segment's bytes in a child (the "bad peer").
    let poke = |f: fn(&mut [u8])| {
        let mut c = spawn(|| {
            with_raw_segment(key, f);
            0
        });
        assert_eq!(c.wait_timeout(T), 0);
    };
    // A header (the SPSC consumer reads headers, not tail) whose message
    // runs past the region less the free word past it.
    poke(|b| {
        b[HEADER_SIZE..HEADER_SIZE + 8]
            .copy_from_slice(&record_header(kind::MESSAGE, 4090).to_ne_bytes())
    });
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Corrupted(_))));
    assert!(matches!(
        rx.recv_timeout(T),
        Err(RecvTimeoutError::Corrupted(_))
    ));
    assert!(matches!(rx.recv(), Err(RecvError::Corrupted(_))));
    // A sender refuses the broken record past tail, and a tail beyond
    // head + capacity.
    assert!(matches!(
        ch.sender(),
        Err(OpenError::InvalidHeader(HeaderError::BadPositions { .. }))
    ));
    poke(|b| {
        b[HEADER_SIZE..HEADER_SIZE + 8].copy_from_slice(&0u64.to_ne_bytes());
        b[offset::TAIL..offset::TAIL + 8].copy_from_slice(&(4096u64 + 8).to_ne_bytes());
    });
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    assert!(matches!(
        ch.sender(),
        Err(OpenError::InvalidHeader(HeaderError::BadPositions { .. }))
    ));
    // a record of an unknown kind
    poke(|b| {
        b[offset::TAIL..offset::TAIL + 8].copy_from_slice(&0u64.to_ne_bytes());
        b[HEADER_SIZE..HEADER_SIZE + 8].copy_from_slice(&record_header(7, 8).to_ne_bytes());
    });
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Corrupted(_))));
    // padding that does not end the region
    poke(|b| {
        b[HEADER_SIZE..HEADER_SIZE + 8]
            .copy_from_slice(&record_header(kind::PADDING, 40).to_ne_bytes())
    });
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Corrupted(_))));
    // a well-formed record written by the peer is received
    poke(|b| {
        b[HEADER_SIZE..HEADER_SIZE + 8]
            .copy_from_slice(&record_header(kind::MESSAGE, 8).to_ne_bytes());
        b[HEADER_SIZE + 8..HEADER_SIZE + 16].copy_from_slice(b"by hand!");
    });
    assert_eq!(&*rx.try_recv().unwrap(), b"by hand!");
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    // The sender side: a full ring whose head is then moved past tail.
    let mut tx = ch.sender().unwrap();
    while tx.try_send(&[5; 56]).is_ok() {}
    poke(|b| {
        let tail = u64::from_ne_bytes(b[offset::TAIL..offset::TAIL + 8].try_into().unwrap());
        b[offset::HEAD..offset::HEAD + 8].copy_from_slice(&(tail + 64).to_ne_bytes());
    });
    assert!(matches!(
        tx.try_send(&[5; 56]),
        Err(TrySendError::Corrupted(_))
    ));
    assert!(matches!(tx.send(&[5; 56]), Err(SendError::Corrupted(_))));
    assert!(matches!(
        tx.send_timeout(&[5; 56], T),
        Err(SendTimeoutError::Corrupted(_))
    ));
    assert!(!dog.fired(), "the watchdog had to remove the channel");
    drop(dog);
    drop((tx, rx));
    finish(ch, guard);
}

/// SPSC records are published by their headers: a peer that zeroes the
/// header of a published record (behind the published tail) would leave a
/// receiver waiting for it for ever, with the sender blocked behind it. The
/// receiver about to sleep reports it as `Corrupted` instead.
#[test]
fn a_zeroed_header_behind_the_published_tail_is_reported_not_waited_for() {
    use shmchan::layout::HEADER_SIZE;
    use shmchan::RecvTimeoutError;
    let (ch, guard) = fresh(Options::default().capacity(4096).max_message(56));
    let key = ch.key();
    let mut tx = ch.sender().unwrap();
    let mut rx = ch.receiver().unwrap();
    let dog = Watchdog::new(key, Duration::from_secs(60));
    tx.send(b"first").unwrap();
    tx.send(b"second").unwrap();
    let mut c = spawn(move || {
        with_raw_segment(key, |b| b[HEADER_SIZE..HEADER_SIZE + 8].fill(0));
        0
    });
    assert_eq!(c.wait_timeout(T), 0);
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    assert!(matches!(rx.recv(), Err(RecvError::Corrupted(_))));
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(30)),
        Err(RecvTimeoutError::Corrupted(_))
    ));
    assert!(!dog.fired(), "the watchdog had to remove the channel");
    drop(dog);
    drop((tx, rx));
    finish(ch, guard);
}

/// Keys from `ftok` of two paths can collide. The header records the
/// device and inode of the creator's path, so a colliding path gets
/// `KeyCollision` from open, inspect and remove_key, and the real channel is
/// untouched. (A colliding path is stood for by a key with the same number
/// and another inode: real collisions need inodes 65536 apart.)
#[test]
fn ftok_collision_is_told_apart_from_the_real_channel() {
    let path = std::env::temp_dir().join(format!("shmchan-ftok-{}", std::process::id()));
    std::fs::write(&path, b"").unwrap();
    struct Rm(std::path::PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _rm = Rm(path.clone());
    let key = Key::ftok(&path, 0x5c).unwrap();
    let _guard = KeyGuard(key);
    let ch = Channel::create(key, Options::default().capacity(4096)).unwrap();
    ch.sender().unwrap().send(b"mine").unwrap();
    let (dev, ino) = key.path_identity().expect("an ftok key knows its path");
    assert_eq!(ch.layout().key_path, (dev, ino));
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(ch.layout().creator_uid, uid);
    // The same path, and the bare number, open it.
    Channel::open(Key::ftok(&path, 0x5c).unwrap()).unwrap();
    Channel::open(Key::raw(key.as_raw())).unwrap();
    // Another path with the same key does not.
    let other = Key::with_path_identity(key.as_raw(), dev, ino + 65536);
    assert_eq!(other, key, "keys compare by number");
    let collision = |r: OpenError| matches!(r, OpenError::KeyCollision { dev: d, ino: i } if d == dev && i == ino);
    assert!(collision(Channel::open(other).unwrap_err()));
    assert!(collision(Channel::inspect(other).unwrap_err()));
    assert!(collision(Channel::remove_key(other).unwrap_err()));
    assert!(key_in_use(key), "remove_key removed another path's channel");
    let st = Channel::inspect(key).unwrap();
    assert_eq!(st.counters.waiting(), 1, "the channel was changed");
}

/// A foreign segment with a foreign semaphore set of another size at our
/// key: open, inspect and remove_key say NotAChannel, and neither the
/// segment's bytes nor the set's values change.
#[test]
fn foreign_segment_and_semaphore_set_of_other_sizes_are_left_alone() {
    for nsems in [1, 3, 5, 7] {
        let key = unique_key();
        let guard = KeyGuard(key);
        plain_segment(key, 8192);
        with_raw_segment(key, scribble);
        let set = plain_semset(key, nsems);
        for n in 0..nsems {
            // SAFETY: SETVAL on a set we created, with an int argument.
            assert_eq!(unsafe { libc::semctl(set, n, libc::SETVAL, 40 + n) }, 0);
        }
        let bytes = segment_bytes(key);
        assert!(matches!(Channel::open(key), Err(OpenError::NotAChannel)));
        assert!(matches!(Channel::inspect(key), Err(OpenError::NotAChannel)));
        assert!(matches!(
            Channel::remove_key(key),
            Err(OpenError::NotAChannel)
        ));
        assert!(
            segment_bytes(key) == bytes,
            "the foreign segment was written"
        );
        for n in 0..nsems {
            assert_eq!(sem_val(set, n as u16), 40 + n, "semaphore {n} of {nsems}");
        }
        assert_eq!(sem_at(key), Some(set));
        drop(guard);
        assert!(!key_in_use(key));
    }
}

/// Runs `f` in a child that has dropped to `uid`/`gid` (no supplementary
/// groups); returns its exit code.
fn as_user(uid: u32, gid: u32, f: impl FnOnce() -> i32) -> i32 {
    let mut child = spawn(|| {
        // SAFETY: plain credential calls in a single-threaded child: groups
        // first, then gid, then uid (after which no more changes are allowed).
        let ok = unsafe {
            libc::setgroups(0, std::ptr::null()) == 0
                && libc::setgid(gid) == 0
                && libc::setuid(uid) == 0
        };
        if !ok {
            return 90;
        }
        f()
    });
    child.wait_timeout(T)
}

/// The mode is honoured for the segment and for the semaphore set, by a
/// process of another user: 0600 refuses it, 0666 lets it send, 0660 lets
/// it in through its group, 0640 refuses it (it cannot write), and a
/// semaphore set narrower than its segment refuses it too.
#[test]
fn the_mode_is_honoured_for_another_user() {
    const NOBODY: u32 = 65534;
    const DENIED: i32 = 3;
    let attempt = |key: shmchan::Key| {
        move || match Channel::open(key).and_then(|c| c.sender()) {
            Ok(mut tx) => match tx.send(b"from nobody") {
                Ok(()) => 0,
                Err(_) => 2,
            },
            Err(OpenError::PermissionDenied) => DENIED,
            Err(_) => 1,
        }
    };
    for (mode, gid, want) in [
        (0o600, NOBODY, DENIED),
        (0o666, NOBODY, 0),
        (0o660, 0, 0),
        (0o640, 0, DENIED),
    ] {
        let (ch, _guard) = fresh(Options::default().mode(mode).capacity(4096));
        assert_eq!(
            as_user(NOBODY, gid, attempt(ch.key())),
            want,
            "mode {mode:o}"
        );
        let st = Channel::inspect(ch.key()).unwrap();
        let sent = if want == 0 { 1 } else { 0 };
        assert_eq!(st.counters.sent_messages, sent, "mode {mode:o}");
        if want == 0 {
            let mut rx = ch.receiver().unwrap();
            assert_eq!(&*rx.recv().unwrap(), b"from nobody");
        }
    }
    // The segment open to all, the semaphore set owner-only.
    let (ch, _guard) = fresh(Options::default().mode(0o666).capacity(4096));
    // SAFETY: semid_ds is plain data; zeroed is a valid value.
    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT then IPC_SET on our own set with a valid semid_ds.
    unsafe {
        assert_eq!(libc::semctl(ch.sem_id(), 0, libc::IPC_STAT, &mut ds), 0);
        ds.sem_perm.mode = 0o600;
        assert_eq!(libc::semctl(ch.sem_id(), 0, libc::IPC_SET, &mut ds), 0);
    }
    assert_eq!(as_user(NOBODY, NOBODY, attempt(ch.key())), DENIED);
}

/// A segment whose semaphore set was replaced (removed, and a new set of
/// four made at the key) is not opened with the stranger: the header
/// records its set's id. `NotAChannel`, nothing written; before, the
/// opener registered in the new set while reading the old segment.
#[test]
fn a_segment_is_not_paired_with_a_set_that_is_not_its_own() {
    let (ch, guard) = fresh(Options::default().capacity(4096));
    let key = ch.key();
    // SAFETY: removes the channel's set by id (no memory involved).
    assert_eq!(unsafe { libc::semctl(ch.sem_id(), 0, libc::IPC_RMID) }, 0);
    let stranger = plain_semset(key, 4);
    let before = segment_bytes(key);
    match Channel::open(key) {
        Err(OpenError::NotAChannel) => {}
        r => panic!("opened with a set that is not the segment's: {r:?}"),
    }
    assert_eq!(segment_bytes(key), before, "the segment was written");
    assert_eq!(sem_val(stranger, SEM_RECEIVERS), 0);
    drop(ch);
    drop(guard);
    assert!(!key_in_use(key));
}
