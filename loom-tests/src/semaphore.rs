//! A mock of the channel's System V semaphore, on loom primitives.

use std::time::Duration;

use loom::sync::{Condvar, Mutex};
use shmchan::internals::wait::{Bell, Removed};

/// A counting semaphore: a `u32` behind a loom mutex, and a condition
/// variable for sleepers.
///
/// It has no timeouts: `sleep` blocks until a unit is there whatever its
/// timeout, so a wake-up the protocol loses leaves the sleeper blocked for
/// good, which loom reports as a deadlock.
#[derive(Debug)]
pub struct Semaphore {
    state: Mutex<State>,
    posted: Condvar,
    /// The largest value `ring` may leave; more is a protocol bug (the wake
    /// protocol posts at most once per announced waiter).
    limit: u32,
}

#[derive(Debug, Default)]
struct State {
    /// The semaphore's value.
    value: u32,
    /// How many times a sleeper found the value at 0 and blocked.
    blocked: u32,
}

impl Semaphore {
    /// A semaphore at zero whose value must never exceed `limit`.
    pub fn new(limit: u32) -> Semaphore {
        Semaphore {
            state: Mutex::new(State::default()),
            posted: Condvar::new(),
            limit,
        }
    }

    /// The current value.
    pub fn value(&self) -> u32 {
        self.state.lock().unwrap().value
    }

    /// How many times a sleeper has blocked (found no unit and waited).
    pub fn blocked(&self) -> u32 {
        self.state.lock().unwrap().blocked
    }
}

impl Bell for Semaphore {
    fn ring(&self, n: u32) -> Result<(), Removed> {
        let mut st = self.state.lock().unwrap();
        st.value += n;
        assert!(
            st.value <= self.limit,
            "semaphore value {} exceeds {}",
            st.value,
            self.limit
        );
        drop(st);
        self.posted.notify_all();
        Ok(())
    }

    fn sleep(&self, _timeout: Option<Duration>) -> Result<bool, Removed> {
        // The timeout is ignored (see the type's docs): the protocol must
        // not rely on one to make progress.
        let mut st = self.state.lock().unwrap();
        if st.value == 0 {
            st.blocked += 1;
        }
        while st.value == 0 {
            st = self.posted.wait(st).unwrap();
        }
        st.value -= 1;
        Ok(true)
    }
}
