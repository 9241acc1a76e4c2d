//! A hostile process attaches a running channel's segment with plain
//! `shmat` and writes into the header and the ring, random bytes and chosen
//! bad values (positions past the end, misaligned or backwards, huge and
//! "negative" lengths, unknown record kinds, forged claims and sender
//! slots, a wrong magic, the flavor flipped), while a sender process and a
//! receiver run. They must report `Corrupted` or keep working: never panic,
//! read or write outside the segment, or wait for ever. `scripts/test.sh`
//! also runs this file under AddressSanitizer.

mod common;

use std::time::{Duration, Instant};

use common::{fresh, spawn, with_raw_segment, Rng, Watchdog};
use shmchan::layout::offset;
use shmchan::{Channel, Flavor, Options, RecvTimeoutError, SendTimeoutError};

/// How long the attack lasts.
const ATTACK: Duration = Duration::from_millis(1200);

/// One write of the attack: an offset in the segment and 8 bytes.
fn blow(rng: &mut Rng, len: usize, data: usize, capacity: u64, targeted: bool) -> (usize, u64) {
    if !targeted {
        let off = (rng.next() as usize % (len - 8)) & !7;
        return (off, rng.next());
    }
    let bad = [
        u64::MAX,
        capacity + 8,
        capacity * 3,
        7,
        (-8i64) as u64,
        0xffff_ffff,
        (1u64 << 32) | 0xffff_fff0, // message of a huge length
        (2u64 << 32) | 0x7fff_ffff, // padding of a huge length
        7u64 << 32,                 // unknown kind
        (1u64 << 63) | 1,           // an in-progress claim by pid 1
        0,
    ];
    let value = bad[rng.next() as usize % bad.len()];
    let off = match rng.next() % 8 {
        0 => offset::TAIL,
        1 => offset::HEAD,
        2 => offset::RECV_WAITERS,
        3 => offset::MAGIC,
        4 => offset::VERSION, // with FLAVOR: the flavor flipped
        5 => offset::SENDER_TABLE + 128 * (rng.next() as usize % 4),
        _ => data + ((rng.next() % capacity) as usize & !7),
    };
    (off.min(len - 8), value)
}

fn attack(flavor: Flavor, targeted: bool) {
    let (ch, guard) = fresh(
        Options::default()
            .flavor(flavor)
            .capacity(16 << 10)
            .max_message(1024),
    );
    let key = guard.0;
    let dog = Watchdog::new(key, Duration::from_secs(60));
    let layout = ch.layout();
    let end = Instant::now() + ATTACK;
    let mut rx = ch.receiver().unwrap();
    rx.set_recovery_timeout(Duration::from_millis(5));
    // Set once the sender has registered: the attack starts after it (an
    // endpoint opened on a damaged channel is refused, rightly).
    let ready = shmchan_bench::os::SharedMemory::new(4096).unwrap();
    // SAFETY: the first word of a zero-filled shared mapping that outlives
    // the reference; zero is a valid AtomicU64.
    let ready = unsafe { &*ready.as_ptr().cast::<std::sync::atomic::AtomicU64>() };
    let mut sender = spawn(|| {
        let mut tx = ch.sender().expect("sender");
        ready.store(1, std::sync::atomic::Ordering::SeqCst);
        let mut n = 0u64;
        while Instant::now() < end {
            let len = (n % 700) as usize;
            match tx.send_timeout(&vec![n as u8; len], Duration::from_millis(20)) {
                Ok(()) | Err(SendTimeoutError::Timeout) | Err(SendTimeoutError::Corrupted(_)) => {}
                Err(SendTimeoutError::Disconnected) => break,
                Err(e) => panic!("send: {e}"),
            }
            n += 1;
        }
        0
    });
    let mut attacker = spawn(|| {
        let mut rng = Rng::new();
        // Let some traffic flow first.
        while ready.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(50));
        with_raw_segment(key, |b| {
            let len = b.len();
            while Instant::now() < end {
                let (off, v) = blow(
                    &mut rng,
                    len,
                    layout.data_offset,
                    layout.capacity as u64,
                    targeted,
                );
                // SAFETY: off + 8 <= len, inside the attached segment;
                // volatile, as another process reads it concurrently.
                unsafe {
                    std::ptr::write_volatile(
                        b.as_mut_ptr().add(off).cast::<[u8; 8]>(),
                        v.to_ne_bytes(),
                    )
                };
                std::thread::sleep(Duration::from_micros(50));
            }
        });
        0
    });
    let (mut got, mut corrupted) = (0u64, 0u64);
    let mut buf = Vec::new();
    while Instant::now() < end + Duration::from_millis(200) {
        // The copy that is sound whatever the attacker writes (atomic loads,
        // no reference into the segment; ASan checks each access).
        match rx.recv_timeout_into(&mut buf, Duration::from_millis(20)) {
            Ok(n) => {
                assert!(
                    n <= 1024 && n == buf.len(),
                    "{n} bytes, {} copied",
                    buf.len()
                );
                std::hint::black_box(buf.iter().fold(0u8, |a, &b| a ^ b));
                got += 1;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Corrupted(_)) => corrupted += 1,
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("recv: {e}"),
        }
    }
    assert_eq!(attacker.wait_timeout(Duration::from_secs(10)), 0);
    assert_eq!(
        sender.wait_timeout(Duration::from_secs(10)),
        0,
        "the sender panicked or died"
    );
    assert!(!dog.fired(), "something waited for ever");
    // Opening what is left gives an answer, not a crash.
    match Channel::open(key) {
        Ok(c) => {
            let _ = c.receiver().map(|mut r| r.try_recv().map(|m| m.len()));
            let _ = c.stats();
        }
        Err(e) => eprintln!("open after the attack: {e}"),
    }
    eprintln!("{flavor} targeted={targeted}: {got} messages received, {corrupted} Corrupted");
}

#[test]
fn random_bytes_into_a_running_spsc_channel() {
    attack(Flavor::Spsc, false);
}

#[test]
fn bad_values_into_a_running_spsc_channel() {
    attack(Flavor::Spsc, true);
}

#[test]
fn random_bytes_into_a_running_mpsc_channel() {
    attack(Flavor::Mpsc, false);
}

#[test]
fn bad_values_into_a_running_mpsc_channel() {
    attack(Flavor::Mpsc, true);
}

/// A forged count of sleepers is never posted in full: a release wakes at
/// most one sender per sender slot (MPSC) and a leaving sender at most the
/// one receiver, so the doorbells stay far below the semaphore maximum
/// (32,767, past which every post fails) whatever the segment says.
#[test]
fn forged_sleeper_counts_are_clamped() {
    let (ch, guard) = fresh(
        Options::default()
            .flavor(Flavor::Mpsc)
            .max_senders(2)
            .capacity(4096),
    );
    let mut tx = ch.sender().unwrap();
    let mut rx = ch.receiver().unwrap();
    tx.send(b"m").unwrap();
    let forge = |at: usize, n: u32| {
        with_raw_segment(ch.key(), |b| {
            b[at..at + 4].copy_from_slice(&n.to_ne_bytes())
        })
    };
    forge(offset::SEND_WAITERS, 60_000);
    drop(rx.recv().unwrap()); // the release claims the "sleepers"
    let space = common::sem_val(ch.sem_id(), common::SEM_SPACE);
    assert_eq!(space, 2, "posts for 60,000 forged sleeping senders");
    forge(offset::RECV_WAITERS, 1000);
    drop(tx); // the sender leaves and wakes the "sleeping receivers"
    let data = common::sem_val(ch.sem_id(), common::SEM_DATA);
    assert_eq!(data, 1, "posts for 1000 forged sleeping receivers");
    drop(rx);
    common::finish(ch, guard);
}

/// Every MPSC sender slot forged to say "asleep", and every bit of the
/// mask: a release clears every flag (one futex wake each, nobody there),
/// sending and receiving go on, and a sender that then sleeps for real is
/// woken by the next release.
#[test]
fn forged_sleeping_senders_are_cleared_once() {
    const SLOTS: usize = 70; // more than the mask's 64 bits
    let (ch, guard) = fresh(
        Options::default()
            .flavor(Flavor::Mpsc)
            .max_senders(SLOTS)
            .capacity(4096)
            .max_message(1000),
    );
    let mut tx = ch.sender().unwrap();
    let mut rx = ch.receiver().unwrap();
    tx.send(b"m").unwrap();
    let flag_at =
        |i: usize| offset::SENDER_TABLE + i * shmchan::layout::LINE + offset::SLOT_SLEEPING;
    with_raw_segment(ch.key(), |b| {
        b[offset::SLEEPING_SENDERS..offset::SLEEPING_SENDERS + 8].copy_from_slice(&[0xff; 8]);
        for i in 0..SLOTS {
            b[flag_at(i)..flag_at(i) + 4].copy_from_slice(&1u32.to_ne_bytes());
        }
    });
    assert_eq!(ch.stats().unwrap().send_waiters, SLOTS as u32);
    drop(rx.recv().unwrap()); // the release claims every forged sleeper
    let bytes = common::segment_bytes(ch.key());
    assert!(
        (0..SLOTS).all(|i| bytes[flag_at(i)..flag_at(i) + 4] == [0; 4]),
        "a forged flag survived the release"
    );
    assert_eq!(
        bytes[offset::SLEEPING_SENDERS..offset::SLEEPING_SENDERS + 8],
        [0; 8]
    );
    // A real sleeper now: fill the ring, block in another thread, free.
    while tx.try_send(&[1; 1000]).is_ok() {}
    tx.set_spin_limit(0);
    let t = std::thread::spawn(move || {
        tx.send(&[2; 1000]).unwrap();
        tx
    });
    assert!(common::wait_until(Duration::from_secs(10), || ch
        .stats()
        .unwrap()
        .send_waiters
        == 1));
    drop(rx.recv_timeout(Duration::from_secs(10)).unwrap());
    let tx = t.join().unwrap();
    drop(tx);
    drop(rx);
    common::finish(ch, guard);
}
