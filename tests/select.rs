//! `Select` with real processes: one thread waiting on many channels fed
//! by other processes, woken through its socket doorbell (not the 100 ms
//! poll), senders waiting for space, timeouts, peers killed, channels
//! removed, and a waiter killed while announced.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shmchan::layout::offset;
use shmchan::{
    Channel, Flavor, Options, ReadyTimeoutError, Receiver, RecvError, Select, TryRecvError,
    TrySendError,
};

const T: Duration = Duration::from_secs(30);

/// 100 channels (SPSC and MPSC, every other one), fed by four processes in
/// a random order with random pauses; one thread selects over all of them
/// and receives each message once, in order per channel and sender.
#[test]
fn select_over_100_channels_fed_at_random_by_several_processes() {
    const CHANNELS: usize = 100;
    const KIDS: usize = 4;
    const PER_SENDER: u32 = 200;
    let chans: Vec<(Channel, KeyGuard)> = (0..CHANNELS)
        .map(|i| {
            let flavor = if i % 2 == 0 {
                Flavor::Spsc
            } else {
                Flavor::Mpsc
            };
            fresh(Options::default().flavor(flavor).capacity(4096))
        })
        .collect();
    let mut rxs: Vec<Receiver> = chans.iter().map(|(c, _)| c.receiver().unwrap()).collect();
    let keys: Vec<_> = chans.iter().map(|(c, _)| c.key()).collect();
    // Which kids send on channel i: one for SPSC, two for MPSC.
    let senders_of = |i: usize| -> Vec<usize> {
        if i.is_multiple_of(2) {
            vec![i % KIDS]
        } else {
            vec![i % KIDS, (i + 1) % KIDS]
        }
    };
    let kids: Vec<Child> = (0..KIDS)
        .map(|k| {
            let keys = keys.clone();
            spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (k as u64 + 1));
                let mut txs: Vec<(usize, shmchan::Sender, u32)> = keys
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| senders_of(*i).contains(&k))
                    .map(|(i, &key)| (i, Channel::open(key).unwrap().sender().unwrap(), 0))
                    .collect();
                while !txs.is_empty() {
                    let j = rng.below(txs.len() as u64) as usize;
                    let (i, tx, seq) = &mut txs[j];
                    let mut msg = [0u8; 12];
                    msg[..4].copy_from_slice(&(*i as u32).to_le_bytes());
                    msg[4..8].copy_from_slice(&(k as u32).to_le_bytes());
                    msg[8..].copy_from_slice(&seq.to_le_bytes());
                    tx.send(&msg).unwrap();
                    *seq += 1;
                    if *seq == PER_SENDER {
                        txs.swap_remove(j);
                    }
                    if rng.below(64) == 0 {
                        std::thread::sleep(Duration::from_micros(rng.below(2000)));
                    }
                }
                0
            })
        })
        .collect();
    let mut next = vec![[0u32; KIDS]; CHANNELS];
    // The channels not finished yet, by index: a finished one (drained,
    // every sender gone) stays ready for ever, so it leaves the selection.
    let mut live: Vec<usize> = (0..CHANNELS).collect();
    let mut got = 0u64;
    while !live.is_empty() {
        let j = {
            let mut sel = Select::new();
            for &i in &live {
                sel.recv(&rxs[i]);
            }
            sel.ready_timeout(T).expect("no channel ready in 30 s")
        };
        let i = live[j];
        loop {
            match rxs[i].try_recv() {
                Ok(m) => {
                    let ch = u32::from_le_bytes(m[..4].try_into().unwrap()) as usize;
                    let kid = u32::from_le_bytes(m[4..8].try_into().unwrap()) as usize;
                    let seq = u32::from_le_bytes(m[8..].try_into().unwrap());
                    assert_eq!(ch, i, "a message of channel {ch} in channel {i}");
                    assert_eq!(seq, next[i][kid], "channel {i}, sender {kid}: out of order");
                    next[i][kid] += 1;
                    got += 1;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    live.swap_remove(j);
                    break;
                }
                Err(e) => panic!("channel {i}: {e}"),
            }
        }
    }
    for mut kid in kids {
        assert_eq!(kid.wait_timeout(T), 0);
    }
    let want: u64 = (0..CHANNELS)
        .map(|i| senders_of(i).len() as u64)
        .sum::<u64>()
        * u64::from(PER_SENDER);
    assert_eq!(got, want);
    for (i, counts) in next.iter().enumerate() {
        for &k in &senders_of(i) {
            assert_eq!(counts[k], PER_SENDER, "channel {i}, sender {k}");
        }
    }
    drop(rxs);
    for (c, g) in chans {
        finish(c, g);
    }
}

/// A waiting `Select` is woken by the peer's publish through its doorbell,
/// within milliseconds, not by its 100 ms look: over 20 rounds, the median
/// time from a send in another process to the return of `ready` is under
/// 10 ms (with no doorbell it is about 80 ms).
#[test]
fn a_waiting_select_is_woken_by_a_send_in_another_process() {
    for flavor in [Flavor::Spsc, Flavor::Mpsc, Flavor::Broadcast] {
        let (ch, guard) = fresh(Options::default().flavor(flavor).capacity(4096));
        let mut rx = ch.receiver().unwrap();
        let (go, at) = (Notify::new(), SharedCounters::new(1));
        let peer = TimedPeer {
            key: ch.key(),
            rounds: 20,
            go: &go,
            at: &at,
        };
        let mut child = peer.sender();
        let mut delays = Vec::new();
        for _ in 0..peer.rounds {
            go.notify();
            let mut sel = Select::new();
            sel.recv(&rx);
            assert_eq!(sel.ready_timeout(T), Ok(0));
            delays.push(peer.since());
            assert_eq!(&*rx.try_recv().unwrap(), b"now");
        }
        assert_eq!(child.wait_timeout(T), 0);
        let median = median_of(&mut delays);
        assert!(
            median < 10_000_000,
            "{flavor:?}: median wake-up {median} ns (all: {delays:?})"
        );
        drop(rx);
        finish(ch, guard);
    }
}

/// A sender that waits for space in a `Select` (SPSC and MPSC) is woken
/// by the release of a receiver in another process through its doorbell:
/// over 10 rounds of a full ring, the median time from the release to the
/// return of `ready` is under 10 ms (with the 100 ms look alone, about
/// 80 ms here).
#[test]
fn a_select_on_a_full_channel_is_woken_when_space_is_freed() {
    for flavor in [Flavor::Spsc, Flavor::Mpsc, Flavor::Broadcast] {
        let (ch, guard) = fresh(
            Options::default()
                .flavor(flavor)
                .capacity(4096)
                .max_message(1000),
        );
        let mut tx = ch.sender().unwrap();
        let (go, at, connected, done) = (
            Notify::new(),
            SharedCounters::new(1),
            Notify::new(),
            Notify::new(),
        );
        let peer = TimedPeer {
            key: ch.key(),
            rounds: 10,
            go: &go,
            at: &at,
        };
        let mut child = peer.freer(&connected, &done);
        assert!(connected.wait(T));
        let mut delays = Vec::new();
        for round in 0..peer.rounds {
            while tx.try_send(&[round as u8; 1000]).is_ok() {}
            assert_eq!(tx.try_send(&[7; 1000]), Err(TrySendError::Full));
            go.notify();
            {
                let mut sel = Select::new();
                sel.send(&tx);
                assert_eq!(sel.ready_timeout(T), Ok(0));
            }
            delays.push(peer.since());
            assert!(done.wait(T));
            tx.try_send(&[8; 1000]).unwrap();
        }
        drop(tx);
        assert_eq!(child.wait_timeout(T), 0);
        let median = median_of(&mut delays);
        assert!(
            median < 10_000_000,
            "{flavor:?}: median wake-up {median} ns after the release (all: {delays:?})"
        );
        finish(ch, guard);
    }
}

/// `ready_timeout` times out on idle channels (and `try_ready` says so);
/// a channel whose sender is SIGKILLed counts as ready, its `try_recv`
/// saying Disconnected after the messages left; a removed one too.
#[test]
fn timeouts_and_channels_whose_peers_are_gone_or_that_were_removed() {
    let (a, ga) = fresh(Options::default().capacity(4096));
    let (b, gb) = fresh(Options::default().capacity(4096));
    let mut ra = a.receiver().unwrap();
    let rb = b.receiver().unwrap();
    {
        let mut sel = Select::new();
        sel.recv(&ra);
        sel.recv(&rb);
        assert!(sel.try_ready().is_err());
        let t = Instant::now();
        assert_eq!(
            sel.ready_timeout(Duration::from_millis(200)),
            Err(ReadyTimeoutError)
        );
        assert!(t.elapsed() >= Duration::from_millis(200));
    }
    // The sender of `a` sends one message, then waits to be killed.
    let key = a.key();
    let ready = Notify::new();
    let mut child = spawn(|| {
        let mut tx = Channel::open(key).unwrap().sender().unwrap();
        tx.send(b"last").unwrap();
        ready.notify();
        sleep_forever()
    });
    assert!(ready.wait(T));
    assert_eq!(&*ra.try_recv().unwrap(), b"last");
    let t = Instant::now();
    child.kill();
    {
        let mut sel = Select::new();
        sel.recv(&rb);
        let ia = sel.recv(&ra);
        assert_eq!(sel.ready_timeout(T), Ok(ia));
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(ra.try_recv().unwrap_err(), TryRecvError::Disconnected);
    // `b` removed by another process while the selection waits.
    let key_b = b.key();
    let mut remover = spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        Channel::open(key_b).unwrap().remove().unwrap();
        0
    });
    {
        let mut sel = Select::new();
        sel.recv(&rb);
        assert_eq!(sel.ready_timeout(T), Ok(0));
    }
    assert_eq!(remover.wait_timeout(T), 0);
    drop(rb);
    drop(b);
    drop(gb);
    drop(ra);
    finish(a, ga);
}

/// A waiter killed while announced leaves its doorbell id in the channel;
/// the next publish takes it (and rings a socket that is gone): nothing
/// stays behind, and a receive works as before.
#[test]
fn a_select_killed_while_waiting_leaves_nothing_behind() {
    let (ch, guard) = fresh(Options::default().capacity(4096));
    let key = ch.key();
    let mut waiter = spawn(move || {
        let ch = Channel::open(key).unwrap();
        let rx = ch.receiver().unwrap();
        let mut sel = Select::new();
        sel.recv(&rx);
        let _ = sel.ready();
        0
    });
    let bell = |b: &mut [u8]| {
        u64::from_ne_bytes(
            b[offset::RECV_BELL..offset::RECV_BELL + 8]
                .try_into()
                .unwrap(),
        )
    };
    assert!(
        wait_until(Duration::from_secs(10), || with_raw_segment(key, |b| bell(
            b
        )) != 0),
        "the waiter never announced its doorbell"
    );
    waiter.kill();
    let mut tx = ch.sender().unwrap();
    let mut rx = ch.receiver().unwrap();
    tx.send(b"after").unwrap();
    assert_eq!(
        with_raw_segment(key, |b| bell(b)),
        0,
        "the dead waiter's doorbell stayed"
    );
    assert_eq!(&*rx.recv().unwrap(), b"after");
    drop(tx);
    assert_eq!(rx.recv().unwrap_err(), RecvError::Disconnected);
    drop(rx);
    finish(ch, guard);
}
