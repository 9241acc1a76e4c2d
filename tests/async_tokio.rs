//! The async endpoints (feature `tokio`) with real processes: an async
//! receiver fed by a blocking sender in another process and the reverse,
//! a sender killed while the async receiver waits, cancelled futures,
//! runtime timeouts, wake-ups through the doorbell (not the 100 ms timer),
//! and the stream.
#![cfg(feature = "tokio")]

mod common;

use std::time::{Duration, Instant};

use common::*;
use shmchan::layout::{offset, SEM_DATA, SEM_SPACE};
use shmchan::{Channel, Flavor, Options, RecvError, TryRecvError};

const T: Duration = Duration::from_secs(30);

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Message `seq`: its number, then `seq % 24` bytes derived from it.
fn message(seq: u64) -> Vec<u8> {
    let mut m = seq.to_le_bytes().to_vec();
    m.extend((0..seq % 24).map(|i| (seq as u8).wrapping_mul(7).wrapping_add(i as u8)));
    m
}

/// The doorbell word of the receiver (`recv_bell`) or sender (`send_bell`).
fn bell_word(key: shmchan::Key, at: usize) -> u64 {
    with_raw_segment(key, |b| {
        u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
    })
}

/// 1,000,000 messages (SPSC; 200,000 for MPSC from two processes) from
/// blocking senders in other processes to an async receiver on a
/// current-thread runtime: every message once, in order, intact.
#[test]
fn an_async_receiver_fed_by_blocking_senders_in_other_processes() {
    for (flavor, kids, per_kid) in [
        (Flavor::Spsc, 1u64, 1_000_000u64),
        (Flavor::Mpsc, 2, 100_000),
    ] {
        let (ch, guard) = fresh(Options::default().flavor(flavor).capacity(64 << 10));
        let key = ch.key();
        let mut rx = ch.receiver().unwrap();
        let children: Vec<Child> = (0..kids)
            .map(|k| {
                spawn(move || {
                    let mut tx = Channel::open(key).unwrap().sender().unwrap();
                    for seq in 0..per_kid {
                        tx.send(&message(seq * kids + k)).unwrap();
                    }
                    0
                })
            })
            .collect();
        let rt = current_thread();
        let next = rt.block_on(async {
            let mut next = vec![0u64; kids as usize];
            loop {
                match rx.recv_async().await {
                    Ok(m) => {
                        let n = u64::from_le_bytes(m[..8].try_into().unwrap());
                        let k = (n % kids) as usize;
                        assert_eq!(n / kids, next[k], "sender {k} out of order");
                        assert_eq!(&*m, &message(n)[..], "message {n} damaged");
                        next[k] += 1;
                    }
                    Err(RecvError::Disconnected) => break next,
                    Err(e) => panic!("{e}"),
                }
            }
        });
        assert!(next.iter().all(|&n| n == per_kid), "{flavor:?}: {next:?}");
        for mut c in children {
            assert_eq!(c.wait_timeout(T), 0);
        }
        assert_eq!(
            bell_word(key, offset::RECV_BELL),
            0,
            "an announcement was left"
        );
        drop(rx);
        finish(ch, guard);
    }
}

/// An async sender on a multi-thread runtime (`send_async` and
/// `reserve_async` in turn) feeds a blocking receiver in another process
/// through a small ring, so that it waits for space often.
#[test]
fn an_async_sender_feeds_a_blocking_receiver_in_another_process() {
    const N: u64 = 200_000;
    for flavor in [Flavor::Spsc, Flavor::Mpsc] {
        let (ch, guard) = fresh(Options::default().flavor(flavor).capacity(4096));
        let key = ch.key();
        let mut child = spawn(move || {
            let mut rx = Channel::open(key).unwrap().receiver().unwrap();
            for seq in 0..N {
                let m = rx.recv_timeout(T).unwrap();
                if *m != message(seq)[..] {
                    return 2;
                }
            }
            i32::from(rx.recv_timeout(T).unwrap_err() != shmchan::RecvTimeoutError::Disconnected)
        });
        let rt = multi_thread();
        let mut tx = ch.sender().unwrap();
        rt.block_on(async {
            for seq in 0..N {
                let m = message(seq);
                if seq % 2 == 0 {
                    tx.send_async(&m).await.unwrap();
                } else {
                    let mut g = tx.reserve_async(m.len()).await.unwrap();
                    g.copy_from_slice(&m);
                    g.commit();
                }
            }
        });
        drop(tx);
        assert_eq!(child.wait_timeout(T), 0, "{flavor:?}");
        let full = ch.stats().unwrap().counters.full_events;
        assert!(full > 0, "{flavor:?}: the sender never found the ring full");
        drop(rt);
        finish(ch, guard);
    }
}

/// A sender SIGKILLed while the async receiver waits: the receiver gets
/// what was sent, then `Disconnected`, within its liveness look.
#[test]
fn an_async_receiver_sees_its_killed_sender_go() {
    let (ch, guard) = fresh(Options::default().capacity(4096));
    let key = ch.key();
    let mut rx = ch.receiver().unwrap();
    let ready = Notify::new();
    let mut child = spawn(|| {
        let mut tx = Channel::open(key).unwrap().sender().unwrap();
        for i in 0..3u8 {
            tx.send(&[i; 5]).unwrap();
        }
        ready.notify();
        sleep_forever()
    });
    assert!(ready.wait(T));
    let rt = current_thread();
    rt.block_on(async {
        for i in 0..3u8 {
            assert_eq!(&*rx.recv_async().await.unwrap(), &[i; 5]);
        }
        let waiting = async {
            let t = Instant::now();
            let r = rx.recv_async().await.map(|m| m.len());
            (r, t.elapsed())
        };
        let killer = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            child.kill();
        };
        let ((r, took), ()) = tokio::join!(waiting, killer);
        assert_eq!(r, Err(RecvError::Disconnected));
        assert!(took < Duration::from_secs(2), "took {took:?}");
    });
    drop(rx);
    finish(ch, guard);
}

/// 10,000 `recv_async` futures cancelled by `tokio::time::timeout` on an
/// empty channel: each times out, none takes anything, and none leaves its
/// announcement or a semaphore unit; then a message sent by another
/// process arrives at the next one. A long timeout takes as long as asked.
#[test]
fn cancelled_futures_lose_nothing_and_leave_nothing() {
    let (ch, guard) = fresh(Options::default().capacity(4096));
    let key = ch.key();
    let mut rx = ch.receiver().unwrap();
    let go = Notify::new();
    let mut child = spawn(|| {
        let mut tx = Channel::open(key).unwrap().sender().unwrap();
        if !go.wait(T) {
            return 1;
        }
        tx.send(b"after all that").unwrap();
        0
    });
    let rt = current_thread();
    rt.block_on(async {
        for i in 0..10_000u32 {
            let d = Duration::from_micros(u64::from(i % 50));
            assert!(tokio::time::timeout(d, rx.recv_async()).await.is_err());
        }
        assert_eq!(
            bell_word(key, offset::RECV_BELL),
            0,
            "a dropped future's announcement"
        );
        assert_eq!(sem_val(ch.sem_id(), SEM_DATA), 0);
        let t = Instant::now();
        let asked = Duration::from_millis(200);
        assert!(tokio::time::timeout(asked, rx.recv_async()).await.is_err());
        assert_took(t.elapsed(), asked);
        go.notify();
        let m = tokio::time::timeout(T, rx.recv_async())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&*m, b"after all that");
    });
    assert_eq!(child.wait_timeout(T), 0);
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Disconnected);
    drop(rx);
    finish(ch, guard);
}

/// Between `asked` and a generous bound.
fn assert_took(took: Duration, asked: Duration) {
    assert!(
        took >= asked && took < asked + Duration::from_secs(2),
        "took {took:?} for {asked:?}"
    );
}

/// A waiting async receiver (and, on a full ring, a waiting async sender)
/// is woken through its doorbell by the peer in another process: the
/// median over 20 rounds from the peer's send or release to the future's
/// completion is under 10 ms (the 100 ms timer alone gives about 80 ms).
#[test]
fn async_waits_are_woken_through_the_doorbell() {
    for flavor in [Flavor::Spsc, Flavor::Mpsc, Flavor::Broadcast] {
        // The receiving side.
        let (ch, guard) = fresh(
            Options::default()
                .flavor(flavor)
                .capacity(4096)
                .max_message(1000),
        );
        let key = ch.key();
        let mut rx = ch.receiver().unwrap();
        let (go, at) = (Notify::new(), SharedCounters::new(1));
        let peer = TimedPeer {
            key,
            rounds: 20,
            go: &go,
            at: &at,
        };
        let mut child = peer.sender();
        let rt = current_thread();
        let mut delays = rt.block_on(async {
            let mut d = Vec::new();
            for _ in 0..peer.rounds {
                go.notify();
                let m = rx.recv_async().await.unwrap();
                d.push(peer.since());
                assert_eq!(&*m, b"now");
            }
            d
        });
        assert_eq!(child.wait_timeout(T), 0);
        let median = median_of(&mut delays);
        assert!(median < 10_000_000, "{flavor:?} receive: {delays:?}");
        drop(rx);

        // The sending side: a full ring, freed by a receiver in a child.
        let (connected, done) = (Notify::new(), Notify::new());
        let mut rx_child = peer.freer(&connected, &done);
        assert!(connected.wait(T));
        let mut tx = ch.sender().unwrap();
        let mut delays = rt.block_on(async {
            let mut d = Vec::new();
            for round in 0..peer.rounds {
                while tx.try_send(&[round as u8; 1000]).is_ok() {}
                go.notify();
                tx.send_async(&[9; 1000]).await.unwrap();
                d.push(peer.since());
                assert!(done.wait(T));
            }
            d
        });
        drop(tx);
        assert_eq!(rx_child.wait_timeout(T), 0);
        let median = median_of(&mut delays);
        assert!(median < 10_000_000, "{flavor:?} send: {delays:?}");
        assert_eq!(bell_word(key, offset::SEND_BELL), 0);
        assert_eq!(sem_val(ch.sem_id(), SEM_SPACE), 0);
        drop(rt);
        finish(ch, guard);
    }
}

/// The stream gives every message as an owned copy, then ends, saying
/// why (`Disconnected`).
#[test]
fn the_stream_yields_every_message_then_ends() {
    let (ch, guard) = fresh(Options::default().capacity(4096));
    let key = ch.key();
    let mut rx = ch.receiver().unwrap();
    let mut child = spawn(move || {
        let mut tx = Channel::open(key).unwrap().sender().unwrap();
        for seq in 0..10_000 {
            tx.send(&message(seq)).unwrap();
        }
        0
    });
    let rt = current_thread();
    rt.block_on(async {
        let mut s = rx.stream();
        let mut seq = 0;
        while let Some(m) = s.next().await {
            assert_eq!(m, message(seq));
            seq += 1;
        }
        assert_eq!(seq, 10_000);
        assert_eq!(s.ended_by(), Some(&RecvError::Disconnected));
    });
    assert_eq!(child.wait_timeout(T), 0);
    drop(rx);
    finish(ch, guard);
}
