//! Batched sends (`Sender::send_batch`, `try_send_batch`) with real
//! processes: every message arrives once, in order and intact, whatever
//! the batch sizes, the ring's size and the flavor; short batches are
//! reported, and errors come only when nothing was sent.

mod common;

use std::time::Duration;

use common::*;
use shmchan::{Flavor, Options, RecvError, SendError, TrySendError};

fn options(flavor: Flavor, capacity: usize, max: usize) -> Options {
    Options::default()
        .flavor(flavor)
        .capacity(capacity)
        .max_message(max)
}

/// 50,000 messages of 0..=300 bytes in batches of 1 to 97 through a
/// 4 KiB ring (so batches are often cut short by a full ring), received
/// by a child process with recv_batch and checked there.
#[test]
fn batches_arrive_whole_and_in_order() {
    const N: u64 = 50_000;
    const MAX: usize = 300;
    for flavor in [Flavor::Spsc, Flavor::Mpsc] {
        let (ch, guard) = fresh(options(flavor, 4096, MAX));
        let key = ch.key();
        let dog = Watchdog::new(key, Duration::from_secs(120));
        let mut child = spawn(move || {
            let ch = shmchan::Channel::open(key).unwrap();
            let mut rx = ch.receiver().unwrap();
            let stream = Stream::new(MAX);
            let mut seq = 0u64;
            let mut bad = None;
            loop {
                match rx.recv_batch(50, |m| {
                    if bad.is_none() {
                        if let Err(e) = stream.check(seq, m) {
                            bad = Some(e);
                        }
                    }
                    seq += 1;
                }) {
                    Ok(_) => {}
                    Err(RecvError::Disconnected) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(bad, None);
            assert_eq!(seq, N, "messages received");
            0
        });
        let mut tx = ch.sender().unwrap();
        let stream = Stream::new(MAX);
        let all: Vec<Vec<u8>> = (0..N).map(|s| stream.message(s)).collect();
        let mut rng = Rng::new();
        let (mut at, mut short, mut several) = (0usize, 0u32, 0u32);
        while at < all.len() {
            let want = (1 + rng.below(97) as usize).min(all.len() - at);
            let batch: Vec<&[u8]> = all[at..at + want].iter().map(Vec::as_slice).collect();
            let n = tx.send_batch(&batch).unwrap();
            assert!((1..=want).contains(&n), "sent {n} of {want}");
            short += u32::from(n < want);
            several += u32::from(n > 1);
            at += n;
        }
        assert!(
            short > 0,
            "{flavor:?}: no batch was ever cut short by the full ring"
        );
        assert!(
            several > 100,
            "{flavor:?}: only {several} batches sent more than one message"
        );
        drop(tx);
        assert_eq!(child.wait(), 0, "{flavor:?}");
        assert!(!dog.fired());
        finish(ch, guard);
    }
}

/// A full ring: `try_send_batch` says Full and sends nothing; a message
/// too large for the channel ends a batch before it, and the next call
/// reports it without sending; an empty batch sends nothing; a batch
/// after the receiver left says Disconnected.
#[test]
fn short_batches_and_errors() {
    for flavor in [Flavor::Spsc, Flavor::Mpsc] {
        let (ch, guard) = fresh(options(flavor, 256, 100));
        let mut tx = ch.sender().unwrap();
        let mut rx = ch.receiver().unwrap();
        let big = [9u8; 101];
        let small = [1u8; 10];
        assert_eq!(tx.send_batch(&[]).unwrap(), 0);
        let n = tx.send_batch(&[&small, &small, &big, &small]).unwrap();
        assert_eq!(n, 2, "{flavor:?}: the batch ends before the large one");
        // Nothing of a batch is left unpublished once the call returns.
        assert_eq!(ch.stats().unwrap().used_bytes(), 2 * 24, "{flavor:?}");
        assert!(matches!(
            tx.send_batch(&[&big, &small]),
            Err(SendError::TooLarge { len: 101, max: 100 })
        ));
        // Fill the ring (24-byte records), then try a batch.
        let fill: Vec<&[u8]> = vec![&small; 64];
        let n = tx.try_send_batch(&fill).unwrap();
        assert!(n > 0 && n < 64, "{flavor:?}: {n} fit");
        assert!(matches!(tx.try_send_batch(&fill), Err(TrySendError::Full)));
        let mut got = 0;
        while let Ok(m) = rx.try_recv() {
            assert_eq!(&*m, &small[..]);
            got += 1;
        }
        assert_eq!(
            got,
            2 + n,
            "{flavor:?}: what was sent arrived, nothing more"
        );
        drop(rx);
        assert!(matches!(
            tx.send_batch(&[&small]),
            Err(SendError::Disconnected)
        ));
        drop(tx);
        finish(ch, guard);
    }
}
