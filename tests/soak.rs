//! The soak test: two producer processes and one receiver process on an
//! MPSC channel, each SIGKILLed at random moments and restarted, for a set
//! time; beside it, a hostile process writing bad values into a second
//! running channel. It prints messages delivered, kills survived,
//! corruption attempts, and loss, which must be 0.
//!
//! The short run (3 s, or `SHMCHAN_SOAK_SECS`) is part of the suite; the
//! long one (10 minutes, or `SHMCHAN_SOAK_SECS`) runs on request:
//! `cargo test --release -- --ignored soak --nocapture`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{fresh, spawn, with_raw_segment, Child, Rng, SharedWords, Watchdog};
use shmchan::layout::offset;
use shmchan::{Channel, Flavor, OpenError, Options, RecvTimeoutError, SendTimeoutError};

/// `SHMCHAN_SOAK_SECS`, or `default` seconds.
fn soak_time(default: f64) -> Duration {
    let secs = std::env::var("SHMCHAN_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Duration::from_secs_f64(secs)
}

/// Message `seq` of producer `p`: every byte follows from the two.
fn message(p: u8, seq: u64) -> Vec<u8> {
    let len = 9 + (seq.wrapping_mul(0x9e37_79b9) % 300) as usize;
    let mut v = Vec::with_capacity(len);
    v.push(p);
    v.extend(seq.to_le_bytes());
    v.extend((v.len()..len).map(|i| (seq as usize).wrapping_add(i * 31) as u8 ^ p));
    v
}

/// The words the processes share.
mod word {
    /// Set by the orchestrator when the time is up.
    pub const FINISH: usize = 0;
    /// Per producer: 1 + the sequence number it is sending (stored before
    /// the send; 0: nothing sent yet).
    pub const ATTEMPT: usize = 1;
    /// Per producer: where it stopped, after a normal exit.
    pub const SENT: usize = 3;
    /// Per producer: the next sequence number the receivers expect.
    pub const NEXT: usize = 5;
    /// Messages delivered (first deliveries).
    pub const DELIVERED: usize = 7;
    /// Deliveries again of a message a killed receiver held.
    pub const AGAIN: usize = 8;
    /// Messages missing (never delivered, not in flight at a kill): loss.
    pub const LOST: usize = 9;
    /// Torn, foreign or out-of-order messages.
    pub const BAD: usize = 10;
    /// Per producer: how many sequence numbers are exempt (in flight when
    /// it was killed), then the list.
    pub const EXEMPT: usize = 16;
    /// Room per producer for exempt numbers.
    pub const EXEMPT_ROOM: usize = 1 << 16;
}

struct Shared(SharedWords);

impl Shared {
    fn at(&self, i: usize) -> &AtomicU64 {
        self.0.at(i)
    }
    fn get(&self, i: usize) -> u64 {
        self.at(i).load(Ordering::SeqCst)
    }
    fn set(&self, i: usize, v: u64) {
        self.at(i).store(v, Ordering::SeqCst)
    }
    fn add(&self, i: usize, v: u64) {
        self.at(i).fetch_add(v, Ordering::SeqCst);
    }
    fn exempt_base(p: usize) -> usize {
        word::EXEMPT + p * (word::EXEMPT_ROOM + 1)
    }
    fn exempt(&self, p: usize, seq: u64) {
        let base = Self::exempt_base(p);
        let n = self.get(base) as usize;
        assert!(n < word::EXEMPT_ROOM, "too many kills for the exempt list");
        self.set(base + 1 + n, seq);
        self.set(base, n as u64 + 1);
    }
    fn is_exempt(&self, p: usize, seq: u64) -> bool {
        let base = Self::exempt_base(p);
        (0..self.get(base) as usize).any(|i| self.get(base + 1 + i) == seq)
    }
}

fn producer(ch: &Channel, sh: &Shared, p: usize) -> Child {
    spawn(move || {
        let mut tx = loop {
            match ch.sender() {
                Ok(tx) => break tx,
                Err(OpenError::TooManySenders { .. }) => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("sender: {e}"),
            }
        };
        // Resume after the message the predecessor was sending (which
        // arrived, or is exempt).
        let mut seq = sh.get(word::ATTEMPT + p);
        while sh.get(word::FINISH) == 0 {
            sh.set(word::ATTEMPT + p, seq + 1);
            let m = message(p as u8, seq);
            loop {
                match tx.send_timeout(&m, Duration::from_millis(20)) {
                    Ok(()) => break,
                    // No receiver for now, or full: try again.
                    Err(SendTimeoutError::Timeout) | Err(SendTimeoutError::Disconnected) => {
                        if sh.get(word::FINISH) != 0 {
                            return 0;
                        }
                        std::thread::sleep(Duration::from_micros(100));
                    }
                    Err(e) => panic!("send: {e}"),
                }
            }
            sh.set(word::SENT + p, seq + 1);
            seq += 1;
        }
        0
    })
}

fn receiver(ch: &Channel, sh: &Shared) -> Child {
    spawn(move || {
        let mut rx = loop {
            match ch.receiver() {
                Ok(rx) => break rx,
                Err(OpenError::Busy) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => panic!("receiver: {e}"),
            }
        };
        rx.set_recovery_timeout(Duration::from_millis(5));
        let mut first = [true; 2];
        loop {
            let m = match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    if sh.get(word::FINISH) != 0 {
                        return 0;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
                Err(e) => panic!("recv: {e}"),
            };
            if m.len() < 9 {
                sh.add(word::BAD, 1);
                continue;
            }
            let (p, seq) = (
                m[0] as usize,
                u64::from_le_bytes(m[1..9].try_into().unwrap()),
            );
            if p > 1 || *m != *message(p as u8, seq) {
                sh.add(word::BAD, 1);
                continue;
            }
            let next = sh.get(word::NEXT + p);
            if seq + 1 == next && first[p] {
                sh.add(word::AGAIN, 1); // held by the killed receiver
            } else if seq < next {
                sh.add(word::BAD, 1);
            } else {
                for missing in next..seq {
                    if !sh.is_exempt(p, missing) {
                        sh.add(word::LOST, 1);
                    }
                }
                sh.set(word::NEXT + p, seq + 1);
                sh.add(word::DELIVERED, 1);
            }
            first[p] = false;
            drop(m);
        }
    })
}

/// A second channel under attack for the whole soak: a sender and a
/// receiver process with timeouts, and a process writing bad values into
/// the header and the ring. Returns the writes made; every process must
/// end normally.
fn attacked_channel(time: Duration) -> (Vec<Child>, Channel, common::KeyGuard, Shared) {
    let (ch, guard) = fresh(
        Options::default()
            .flavor(Flavor::Mpsc)
            .capacity(16 << 10)
            .max_message(512),
    );
    let key = guard.0;
    let layout = ch.layout();
    let end = Instant::now() + time;
    let writes = Shared(SharedWords::new(2));
    let mut kids = Vec::new();
    // Word 0: writes made; word 1: endpoints ready (the attack starts once
    // both are: opening an endpoint on a damaged channel fails, rightly).
    kids.push(spawn(|| {
        let mut tx = ch.sender().unwrap();
        writes.add(1, 1);
        while Instant::now() < end {
            let _ = tx.send_timeout(&[9; 100], Duration::from_millis(10));
        }
        0
    }));
    kids.push(spawn(|| {
        let mut rx = ch.receiver().unwrap();
        rx.set_recovery_timeout(Duration::from_millis(5));
        writes.add(1, 1);
        while Instant::now() < end {
            let _ = rx.recv_timeout(Duration::from_millis(10)).map(|m| m.len());
        }
        0
    }));
    kids.push(spawn(|| {
        let mut rng = Rng::new();
        let bad = [
            u64::MAX,
            7,
            1 << 40,
            (1 << 32) | 0xffff_fff0,
            (1 << 63) | 1,
            0,
        ];
        while writes.get(1) < 2 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
        with_raw_segment(key, |b| {
            while Instant::now() < end {
                let off = match rng.below(4) {
                    0 => offset::TAIL,
                    1 => offset::HEAD,
                    2 => offset::SENDER_TABLE + 8,
                    _ => layout.data_offset + (rng.below(layout.capacity as u64) as usize & !7),
                };
                let v = bad[rng.below(bad.len() as u64) as usize];
                // SAFETY: an 8-aligned word inside the attached segment.
                unsafe { std::ptr::write_volatile(b.as_mut_ptr().add(off).cast::<u64>(), v) };
                writes.add(0, 1);
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        0
    }));
    (kids, ch, guard, writes)
}

#[test]
fn soak_kills_restarts_and_corruption() {
    soak(soak_time(3.0));
}

#[test]
#[ignore = "the long soak, 10 minutes: cargo test --release -- --ignored soak"]
fn soak_long() {
    soak(soak_time(600.0));
}

fn soak(time: Duration) {
    let (ch, guard) = fresh(
        Options::default()
            .flavor(Flavor::Mpsc)
            .capacity(64 << 10)
            .max_message(512),
    );
    let _dog = Watchdog::new(guard.0, time + Duration::from_secs(120));
    let words = word::EXEMPT + 2 * (word::EXEMPT_ROOM + 1);
    let sh = Shared(SharedWords::new(words));
    let (attack_kids, _attacked, attacked_guard, writes) = attacked_channel(time);
    let _dog2 = Watchdog::new(attacked_guard.0, time + Duration::from_secs(120));
    let mut rng = Rng::new();
    let mut procs = [
        producer(&ch, &sh, 0),
        producer(&ch, &sh, 1),
        receiver(&ch, &sh),
    ];
    let start = Instant::now();
    let mut kills = 0u64;
    while start.elapsed() < time {
        std::thread::sleep(Duration::from_micros(500 + rng.below(4000)));
        let who = rng.below(3) as usize;
        procs[who].kill();
        kills += 1;
        procs[who] = if who < 2 {
            // Dead: its in-flight message may be lost.
            let attempt = sh.get(word::ATTEMPT + who);
            if attempt > 0 {
                sh.exempt(who, attempt - 1);
            }
            producer(&ch, &sh, who)
        } else {
            receiver(&ch, &sh)
        };
    }
    sh.set(word::FINISH, 1);
    for (i, p) in procs.iter_mut().enumerate() {
        assert_eq!(p.wait_timeout(Duration::from_secs(60)), 0, "process {i}");
    }
    let attacked: Vec<i32> = attack_kids
        .into_iter()
        .map(|mut k| k.wait_timeout(Duration::from_secs(60)))
        .collect();
    let mut tail_lost = 0;
    for p in 0..2 {
        // Whatever the last producer sent reached the receivers.
        let (next, sent) = (sh.get(word::NEXT + p), sh.get(word::SENT + p));
        if next < sent {
            tail_lost += sent - next;
        }
    }
    let (delivered, again, lost, bad) = (
        sh.get(word::DELIVERED),
        sh.get(word::AGAIN),
        sh.get(word::LOST) + tail_lost,
        sh.get(word::BAD),
    );
    println!(
        "soak {:.1} s: {delivered} messages delivered ({again} again after a receiver was killed \
         holding them), {kills} kills survived, {} corruption attempts on the attacked channel, \
         {bad} bad messages, {lost} lost",
        time.as_secs_f64(),
        writes.get(0)
    );
    assert_eq!(attacked, [0, 0, 0], "the attacked channel's processes");
    assert_eq!(bad, 0, "torn, foreign or out-of-order messages");
    assert_eq!(lost, 0, "messages lost");
    assert!(delivered > 1000, "only {delivered} messages went through");
    assert!(kills > 10);
}
