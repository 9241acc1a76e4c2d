//! An endpoint's file descriptor in an event loop of the user's own: a
//! plain `epoll_wait` loop over several receivers fed by other processes,
//! and the time from a peer's send or release to the descriptor becoming
//! readable (the doorbell, not a poll).

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use common::*;
use shmchan::{Channel, Flavor, Options, Receiver, TryRecvError};

const T: Duration = Duration::from_secs(30);

/// Waits at most `ms` for `fd` to be readable.
fn readable(fd: i32, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

/// Three receivers (SPSC, MPSC with two senders, SPSC) in one epoll set,
/// level-triggered for two and edge-triggered for one, fed at random by
/// four processes: following the rule (receive until Empty, arm, wait),
/// every message arrives once, in order per sender.
#[test]
fn receivers_in_a_plain_epoll_loop_get_every_message() {
    const PER: u32 = 3000;
    let flavors = [Flavor::Spsc, Flavor::Mpsc, Flavor::Spsc];
    let chans: Vec<_> = flavors
        .iter()
        .map(|&f| fresh(Options::default().flavor(f).capacity(4096)))
        .collect();
    let mut rxs: Vec<Receiver> = chans.iter().map(|(c, _)| c.receiver().unwrap()).collect();
    // (channel, sender number) per child.
    let plan = [(0usize, 0u32), (1, 0), (1, 1), (2, 0)];
    let kids: Vec<Child> = plan
        .iter()
        .map(|&(c, s)| {
            let key = chans[c].0.key();
            spawn(move || {
                let mut rng = Rng(0x51ed_270b_0d5c_3a9f ^ u64::from(s + 1) ^ (c as u64) << 8);
                let mut tx = Channel::open(key).unwrap().sender().unwrap();
                for seq in 0..PER {
                    let mut m = [0u8; 8];
                    m[..4].copy_from_slice(&s.to_le_bytes());
                    m[4..].copy_from_slice(&seq.to_le_bytes());
                    tx.send(&m).unwrap();
                    if rng.below(32) == 0 {
                        std::thread::sleep(Duration::from_micros(rng.below(3000)));
                    }
                }
                0
            })
        })
        .collect();
    // SAFETY: plain epoll calls on descriptors this test owns.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0);
    for (i, rx) in rxs.iter().enumerate() {
        let flags = if i == 2 { libc::EPOLLET } else { 0 };
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | flags) as u32,
            u64: i as u64,
        };
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, rx.as_raw_fd(), &mut ev) },
            0
        );
    }
    let mut next = [[0u32; 2]; 3];
    let mut open = [true; 3];
    let mut wakes = 0;
    while open.iter().any(|&o| o) {
        let mut now = false;
        for (i, rx) in rxs.iter_mut().enumerate() {
            if !open[i] {
                continue;
            }
            loop {
                match rx.try_recv() {
                    Ok(m) => {
                        let s = u32::from_le_bytes(m[..4].try_into().unwrap()) as usize;
                        let seq = u32::from_le_bytes(m[4..].try_into().unwrap());
                        assert_eq!(seq, next[i][s], "channel {i}, sender {s}");
                        next[i][s] += 1;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open[i] = false;
                        break;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            if open[i] {
                now |= rx.arm().unwrap();
            }
        }
        if !now {
            let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 4];
            // SAFETY: as above; evs has room for 4 events.
            let n = unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), 4, 100) };
            assert!(n >= 0);
            wakes += usize::from(n > 0);
        }
    }
    // SAFETY: ep is ours.
    unsafe { libc::close(ep) };
    for mut k in kids {
        assert_eq!(k.wait_timeout(T), 0);
    }
    assert_eq!(next, [[PER, 0], [PER, PER], [PER, 0]]);
    assert!(wakes > 0, "epoll never reported a descriptor readable");
    drop(rxs);
    for (c, g) in chans {
        finish(c, g);
    }
}

/// An armed receiver's descriptor becomes readable on a send in another
/// process, and an armed sender's on a release, within milliseconds: the
/// medians over 20 rounds are under 10 ms (a 100 ms poll alone would give
/// about 80 ms here), SPSC and MPSC.
#[test]
fn armed_descriptors_become_readable_on_the_peers_publish() {
    for flavor in [Flavor::Spsc, Flavor::Mpsc, Flavor::Broadcast] {
        let (ch, guard) = fresh(
            Options::default()
                .flavor(flavor)
                .capacity(4096)
                .max_message(1000),
        );
        let (go, at) = (Notify::new(), SharedCounters::new(1));
        let peer = TimedPeer {
            key: ch.key(),
            rounds: 20,
            go: &go,
            at: &at,
        };
        // Receiving.
        let mut rx = ch.receiver().unwrap();
        let mut child = peer.sender();
        let mut delays = Vec::new();
        for _ in 0..peer.rounds {
            assert!(!rx.arm().unwrap(), "ready before the send");
            go.notify();
            assert!(readable(rx.as_raw_fd(), 10_000), "never readable");
            delays.push(peer.since());
            assert_eq!(&*rx.try_recv().unwrap(), b"now");
        }
        assert_eq!(child.wait_timeout(T), 0);
        let median = median_of(&mut delays);
        assert!(median < 10_000_000, "{flavor:?} receive: {delays:?}");
        drop(rx);
        // Sending, on a full ring (the child says when it has freed its
        // two records, so that the second release's ring is not taken for
        // the next round's).
        let (connected, done) = (Notify::new(), Notify::new());
        let mut child = peer.freer(&connected, &done);
        assert!(connected.wait(T));
        let mut tx = ch.sender().unwrap();
        let mut delays = Vec::new();
        for round in 0..peer.rounds {
            while tx.try_send(&[round as u8; 1000]).is_ok() {}
            assert!(!tx.arm(1000).unwrap(), "room before the release");
            go.notify();
            assert!(readable(tx.as_raw_fd(), 10_000), "never readable");
            delays.push(peer.since());
            assert!(done.wait(T));
            tx.try_send(&[9; 1000]).unwrap();
        }
        drop(tx);
        assert_eq!(child.wait_timeout(T), 0);
        let median = median_of(&mut delays);
        assert!(median < 10_000_000, "{flavor:?} send: {delays:?}");
        finish(ch, guard);
    }
}
