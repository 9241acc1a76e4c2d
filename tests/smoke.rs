mod common;
use common::*;
use shmchan::{Channel, Options, RecvTimeoutError};
use std::time::Duration;

#[test]
fn child_sends_parent_receives() {
    let (ch, _g) = fresh(Options::default().capacity(4096).max_message(1000));
    let key = ch.key();
    let mut rx = ch.receiver().unwrap();
    let mut child = spawn(move || {
        let ch = Channel::open(key).unwrap();
        let mut tx = ch.sender().unwrap();
        for i in 0..10_000u64 {
            tx.send(&payload(i, 1000)).unwrap();
        }
        0
    });
    for i in 0..10_000u64 {
        // Bounded: a child that failed before connecting must not hang us.
        let m = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(&*m, &payload(i, 1000)[..], "message {i}");
    }
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(20)).unwrap_err(),
        RecvTimeoutError::Disconnected
    );
    assert_eq!(child.wait_timeout(Duration::from_secs(10)), 0);
}
