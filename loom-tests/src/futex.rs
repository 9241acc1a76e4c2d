//! A mock of a futex on a word of the segment, on loom primitives.

use std::time::Duration;

use loom::sync::{Condvar, Mutex};
use shmchan::internals::sync::{AtomicU32, Ordering};
use shmchan::internals::wait::Futex;

/// A futex: sleepers check the word under a mutex and wait on a condition
/// variable; a waker (which changed the word first) takes the mutex and
/// wakes them all, so a sleeper either sees the change or is woken.
///
/// It has no timeouts: `wait` blocks until a `wake` whatever its timeout,
/// so a wake-up the protocol loses leaves the sleeper blocked for good,
/// which loom reports as a deadlock. One mock may stand for the futexes
/// of several words: a wake then also ends the others' waits, a spurious
/// return, which the real one allows too.
#[derive(Debug, Default)]
pub struct FutexMock {
    lock: Mutex<Counts>,
    woken: Condvar,
}

#[derive(Debug, Default)]
struct Counts {
    /// Waits that found the expected value and blocked.
    blocked: u32,
    /// Calls of `wake`.
    wakes: u32,
}

impl FutexMock {
    /// A futex nobody waits on.
    pub fn new() -> FutexMock {
        FutexMock::default()
    }

    /// How many waits blocked (found the word at the expected value).
    pub fn blocked(&self) -> u32 {
        self.lock.lock().unwrap().blocked
    }

    /// How many times `wake` was called.
    pub fn wakes(&self) -> u32 {
        self.lock.lock().unwrap().wakes
    }
}

impl Futex for FutexMock {
    fn wait(&self, word: &AtomicU32, expected: u32, _timeout: Option<Duration>) {
        let mut counts = self.lock.lock().unwrap();
        // Relaxed: the mutex orders this load after a waker's change of
        // the word, when the waker held the mutex first.
        if word.load(Ordering::Relaxed) != expected {
            return;
        }
        counts.blocked += 1;
        drop(self.woken.wait(counts).unwrap());
    }

    fn wake(&self, _word: &AtomicU32) {
        self.lock.lock().unwrap().wakes += 1;
        self.woken.notify_all();
    }
}
