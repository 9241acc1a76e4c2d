//! Blocking: spin with backoff, then announce, re-check and sleep on a
//! doorbell (a System V semaphore or a futex in a channel, loom mocks in
//! the models).
//!
//! See [`crate::ring::wake`] for the shared-memory half of the protocol and
//! why no wake-up is lost. Two kinds of [`Sleeper`]: [`CounterSleeper`] (a waiter
//! counter and a counting semaphore: the SPSC endpoints and every
//! receiver, one sleeper per counter) and [`SlotSleeper`] (an MPSC
//! sender: a flag in its own sender slot, and a futex on it).

use std::time::{Duration, Instant};

use crate::ring::wake;
use crate::sync::{AtomicU32, AtomicU64};

/// Default spin budget (steps of [`Spinner`]) before sleeping.
/// About 40 µs of polling on the machines we measure: twice what a kernel
/// wake-up costs there, the classic bound for spinning before sleeping.
#[cfg(not(shmchan_loom))]
pub(crate) const DEFAULT_SPIN: u32 = 128;

/// How long a sleeper sleeps at most before it re-checks liveness.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long a waiter whose announcement was claimed waits for the post that
/// the claim promised (it arrives within microseconds unless the poster died).
pub const ABSORB_TIMEOUT: Duration = Duration::from_millis(100);

/// The doorbell was removed (the channel's semaphore set is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removed;

/// A doorbell: a counting semaphore used only to sleep and wake.
pub trait Bell {
    /// Adds `n` to the doorbell, waking up to `n` sleepers.
    fn ring(&self, n: u32) -> Result<(), Removed>;
    /// Takes one unit, sleeping until one is there or `timeout` passes
    /// (`None`: no limit). Returns whether a unit was taken; an interrupted
    /// sleep returns `Ok(false)`.
    fn sleep(&self, timeout: Option<Duration>) -> Result<bool, Removed>;
    /// The sleeper's heavy half of the asymmetric fence, between its
    /// announcement and its re-check (see
    /// [`crate::ring::wake::claim_with`]); false when it could not be
    /// issued, and a waker with a light fence may then miss the
    /// announcement: the sleeper sleeps at most [`UNFENCED_POLL`].
    fn barrier(&self) -> bool {
        true
    }
}

/// How long a sleeper whose [`Bell::barrier`] failed sleeps at most.
pub const UNFENCED_POLL: Duration = Duration::from_millis(1);

/// The sleeper's half of the wake protocol: where it announces itself and
/// what it sleeps on.
pub trait Sleeper {
    /// One round: announce, re-check `ready`, sleep for at most `timeout`
    /// unless ready, and return with no announcement and no unit of ours
    /// left behind (see [`sleep_once`]). Returns when the condition may
    /// have changed; the caller re-checks everything and loops.
    fn sleep_once(
        &self,
        ready: &mut dyn FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<(), Removed>;
}

/// A sleeper that counts itself in a waiter counter and sleeps on a
/// counting semaphore: the only sleeper on that counter (an SPSC endpoint,
/// an MPSC receiver).
#[derive(Debug)]
pub struct CounterSleeper<'a, B: ?Sized> {
    /// The waiter counter (`recv_waiters`, `send_waiters`).
    pub waiters: &'a AtomicU32,
    /// The doorbell.
    pub bell: &'a B,
}

impl<B: Bell + ?Sized> Sleeper for CounterSleeper<'_, B> {
    fn sleep_once(
        &self,
        ready: &mut dyn FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<(), Removed> {
        sleep_once(self.waiters, self.bell, ready, timeout)
    }
}

/// A doorbell without a count: sleep while a word of shared memory holds
/// a value (a futex in a channel).
pub trait Futex {
    /// Sleeps while `word` holds `expected`, at most `timeout` (`None`: no
    /// limit); returns at once if it does not. A wake after the word
    /// changed cannot be missed. Spurious returns are allowed.
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>);
    /// Wakes whoever sleeps on `word` (the caller changed it first).
    fn wake(&self, word: &AtomicU32);
    /// As [`Bell::barrier`].
    fn barrier(&self) -> bool {
        true
    }
}

/// An MPSC sender's sleeper: the `sleeping` flag of its sender slot, its
/// bit in the `sleeping_senders` mask, and a futex on the flag.
#[derive(Debug)]
pub struct SlotSleeper<'a, F: ?Sized> {
    /// The slot's `sleeping` flag.
    pub flag: &'a AtomicU32,
    /// The wake line's `sleeping_senders`.
    pub mask: &'a AtomicU64,
    /// The slot's index.
    pub slot: usize,
    /// The doorbell.
    pub futex: &'a F,
}

impl<F: Futex + ?Sized> Sleeper for SlotSleeper<'_, F> {
    /// Announce in the slot, barrier, re-check, sleep while the flag says
    /// asleep (a waker clears it, then wakes the futex), then clear the
    /// flag. Nothing to absorb: a futex wake is not counted, and a wake
    /// that comes late finds nobody or ends a later sleep early once.
    fn sleep_once(
        &self,
        ready: &mut dyn FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<(), Removed> {
        wake::announce_slot(self.flag, self.mask, self.slot);
        let timeout = if self.futex.barrier() {
            timeout
        } else {
            Some(timeout.map_or(UNFENCED_POLL, |t| t.min(UNFENCED_POLL)))
        };
        if !ready() {
            self.futex.wait(self.flag, 1, timeout);
        }
        wake::retract_slot(self.flag);
        Ok(())
    }
}

/// Spins, then polls, for a bounded number of steps before the caller goes
/// to sleep.
///
/// The first steps back off exponentially (`crossbeam_utils::Backoff`: 1, 2,
/// 4 pause hints); after that each step is a short poll of
/// [`POLL_PAUSES`] hints, so that a side that spins for long (up to never
/// sleeping, for latency) still sees the peer's write within a fraction of
/// a microsecond. (Backoff's own schedule grows to 64 hints a step, which
/// on a machine with slow pause hints put several microseconds between two
/// looks.) Every [`YIELD_EVERY`]th step yields the CPU instead, so that a
/// peer on the same core (an oversubscribed machine) gets to run.
#[derive(Debug)]
pub struct Spinner {
    step: u32,
    limit: u32,
    #[cfg(not(shmchan_loom))]
    backoff: crossbeam_utils::Backoff,
}

/// Steps that back off exponentially (1, 2, 4 pause hints).
const BACKOFF_STEPS: u32 = 3;
/// Pause hints in each later step.
pub const POLL_PAUSES: u32 = 4;
/// Every this many steps, yield the CPU instead of pausing.
pub const YIELD_EVERY: u32 = 64;

impl Spinner {
    /// A spinner that allows `limit` steps (see [`Spinner::spin`]).
    pub fn new(limit: u32) -> Spinner {
        Spinner {
            step: 0,
            limit,
            #[cfg(not(shmchan_loom))]
            backoff: crossbeam_utils::Backoff::new(),
        }
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u32 {
        self.step
    }

    /// One step; returns false (without waiting) once the budget is spent
    /// and the caller should sleep.
    #[inline]
    pub fn spin(&mut self) -> bool {
        if self.step >= self.limit {
            return false;
        }
        if self.step < BACKOFF_STEPS {
            #[cfg(not(shmchan_loom))]
            self.backoff.spin();
            #[cfg(shmchan_loom)]
            std::hint::spin_loop();
        } else if self.step.is_multiple_of(YIELD_EVERY) {
            #[cfg(not(shmchan_loom))]
            std::thread::yield_now();
            #[cfg(shmchan_loom)]
            loom::thread::yield_now();
        } else {
            for _ in 0..POLL_PAUSES {
                std::hint::spin_loop();
            }
        }
        self.step = self.step.saturating_add(1);
        true
    }
}

/// One round of sleeping: announce on `waiters`, re-check `ready`, and sleep
/// on `bell` for at most `timeout` unless ready.
///
/// Returns when the condition may have changed: ready on re-check, woken,
/// timed out or interrupted. The caller re-checks everything and loops.
/// Every announcement is either retracted or answered by exactly one
/// consumed post before this returns (unless the poster died between its
/// claim and its post), which keeps the semaphore's value bounded. A unit
/// taken while our announcement is still there was not posted for it (a
/// leftover: posted for a sleeper that died, or after our absorb timed
/// out): the announcement is then taken back, so the leftover is used up
/// rather than passed on to every later sleep.
pub fn sleep_once<B: Bell + ?Sized>(
    waiters: &AtomicU32,
    bell: &B,
    ready: &mut dyn FnMut() -> bool,
    timeout: Option<Duration>,
) -> Result<(), Removed> {
    wake::announce(waiters);
    let timeout = if bell.barrier() {
        timeout
    } else {
        Some(timeout.map_or(UNFENCED_POLL, |t| t.min(UNFENCED_POLL)))
    };
    if ready() {
        if !wake::retract(waiters) {
            absorb(bell)?;
        }
        return Ok(());
    }
    match bell.sleep(timeout) {
        Ok(true) => {
            // Only this sleeper announces on `waiters` (see `CounterSleeper`): a
            // count still there is ours, and the unit was a leftover.
            wake::retract(waiters);
        }
        Ok(false) => {
            if !wake::retract(waiters) {
                absorb(bell)?;
            }
        }
        Err(Removed) => {
            // Nobody will post any more; take the announcement back.
            wake::retract(waiters);
            return Err(Removed);
        }
    }
    Ok(())
}

/// Consumes the post promised by a claim of our announcement.
fn absorb<B: Bell + ?Sized>(bell: &B) -> Result<(), Removed> {
    // Under loom the mock has no timeouts; the claimer always posts.
    #[cfg(shmchan_loom)]
    {
        bell.sleep(None).map(drop)
    }
    // An interrupted sleep (EINTR) is retried until the bound: giving up
    // early would leave the promised post behind as a stray unit.
    #[cfg(not(shmchan_loom))]
    {
        let deadline = Instant::now() + ABSORB_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || bell.sleep(Some(left))? {
                return Ok(());
            }
        }
    }
}

/// Spin steps between liveness and deadline checks in [`block_on`] (about
/// 0.1 ms of polling).
const CHECK_EVERY: u32 = 256;

/// Why [`block_on`] stopped without a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The peer is gone (or the doorbell was removed), and a last attempt
    /// after seeing that found nothing.
    Disconnected,
    /// The deadline passed.
    Timeout,
}

/// Waits until `attempt` yields a value: tries, spins up to `spin_limit`
/// [`Spinner`] steps, then sleeps as `sleeper` in rounds of
/// [`Sleeper::sleep_once`] of at most [`POLL_INTERVAL`], until `deadline`.
///
/// - `attempt`: the non-blocking operation (`Ok(None)`: not yet).
/// - `ready`: a cheap check that `attempt` may now succeed (data or space),
///   made after announcing, before sleeping.
/// - `gone`: whether the peer is gone (in a channel, a system call; only
///   on the slow path). It is checked before each sleep *and* as part of the
///   re-check after announcing, so that a peer leaving between the two is
///   not missed: its [`leave`] claims only announced waiters.
///
/// When the peer is gone, one more attempt is made (what it did before it
/// left counts), then [`Stop::Disconnected`].
#[cfg(any(test, shmchan_loom))]
pub fn block_on<T, E: From<Stop>, S: Sleeper + ?Sized>(
    sleeper: &S,
    spin_limit: u32,
    deadline: Option<Instant>,
    attempt: impl FnMut() -> Result<Option<T>, E>,
    ready: impl FnMut() -> bool,
    gone: impl FnMut() -> bool,
) -> Result<T, E> {
    block_on_polling(
        sleeper,
        spin_limit,
        deadline,
        POLL_INTERVAL,
        attempt,
        ready,
        gone,
    )
}

/// [`block_on`] with sleeps of at most `poll` instead of [`POLL_INTERVAL`]
/// (an MPSC receiver blocked on a claim looks again within a fraction of
/// its recovery timeout).
#[allow(clippy::too_many_arguments)]
pub fn block_on_polling<T, E: From<Stop>, S: Sleeper + ?Sized>(
    sleeper: &S,
    spin_limit: u32,
    deadline: Option<Instant>,
    poll: Duration,
    mut attempt: impl FnMut() -> Result<Option<T>, E>,
    mut ready: impl FnMut() -> bool,
    mut gone: impl FnMut() -> bool,
) -> Result<T, E> {
    let mut spinner = Spinner::new(spin_limit);
    loop {
        if let Some(v) = attempt()? {
            return Ok(v);
        }
        if spinner.spin() {
            // A long spin (up to never sleeping) still notices a departed
            // peer and the deadline, every CHECK_EVERY steps.
            if spinner.steps().is_multiple_of(CHECK_EVERY) {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(Stop::Timeout.into());
                }
                if gone() {
                    return match attempt()? {
                        Some(v) => Ok(v),
                        None => Err(Stop::Disconnected.into()),
                    };
                }
            }
            continue;
        }
        if gone() {
            return match attempt()? {
                Some(v) => Ok(v),
                None => Err(Stop::Disconnected.into()),
            };
        }
        let timeout = match deadline {
            None => poll,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Stop::Timeout.into());
                }
                left.min(poll)
            }
        };
        let mut recheck = || ready() || gone();
        if sleeper.sleep_once(&mut recheck, Some(timeout)).is_err() {
            // The channel was removed: what was sent before still counts.
            return match attempt()? {
                Some(v) => Ok(v),
                None => Err(Stop::Disconnected.into()),
            };
        }
    }
}

/// The leaving side's half of disconnection: after the caller has made its
/// departure visible (in a channel, the `semop` that drops its liveness
/// count, a full barrier), wakes every peer that announced itself asleep,
/// so it sees the departure now rather than at its next poll: at most
/// `max` of them (the most sleepers the side can have; a larger count in
/// the segment is forged).
pub fn leave<B: Bell + ?Sized>(waiters: &AtomicU32, bell: &B, max: u32) {
    let n = wake::claim(waiters).min(max);
    if n > 0 {
        let _ = bell.ring(n);
    }
}

#[cfg(all(test, not(shmchan_loom)))]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A doorbell that has been removed.
    struct Gone;

    impl Bell for Gone {
        fn ring(&self, _: u32) -> Result<(), Removed> {
            Err(Removed)
        }
        fn sleep(&self, _: Option<Duration>) -> Result<bool, Removed> {
            Err(Removed)
        }
    }

    /// The channel removed while we sleep: a message published before the
    /// removal is still delivered, then `Disconnected`.
    #[test]
    fn removal_while_asleep_keeps_what_was_sent() {
        let waiters = AtomicU32::new(0);
        let sent = Cell::new(false);
        let calls = Cell::new(0);
        let sleeper = CounterSleeper {
            waiters: &waiters,
            bell: &Gone,
        };
        let r: Result<u32, Stop> = block_on(
            &sleeper,
            0,
            None,
            || {
                calls.set(calls.get() + 1);
                // The peer publishes after our first look.
                let seen = sent.get();
                sent.set(true);
                Ok(seen.then_some(7))
            },
            || false,
            || false,
        );
        assert_eq!(r, Ok(7));
        assert_eq!(calls.get(), 2);
        // Nothing left: removal means Disconnected.
        let r: Result<u32, Stop> = block_on(&sleeper, 0, None, || Ok(None), || false, || false);
        assert_eq!(r, Err(Stop::Disconnected));
        assert_eq!(waiters.load(crate::sync::Ordering::Relaxed), 0);
    }

    /// A doorbell that records what the sleeper does, in order.
    struct Recorder<'a> {
        waiters: &'a AtomicU32,
        barrier_ok: bool,
        log: std::cell::RefCell<Vec<String>>,
    }

    impl Bell for Recorder<'_> {
        fn ring(&self, _: u32) -> Result<(), Removed> {
            Ok(())
        }
        fn sleep(&self, timeout: Option<Duration>) -> Result<bool, Removed> {
            self.log.borrow_mut().push(format!("sleep {timeout:?}"));
            Ok(false)
        }
        fn barrier(&self) -> bool {
            let n = self.waiters.load(crate::sync::Ordering::Relaxed);
            self.log
                .borrow_mut()
                .push(format!("barrier after announce={n}"));
            self.barrier_ok
        }
    }

    /// The sleeper's barrier comes after its announcement and before its
    /// re-check; when the barrier fails, it sleeps at most UNFENCED_POLL.
    #[test]
    fn barrier_between_announce_and_recheck_and_short_sleeps_without_it() {
        for ok in [true, false] {
            let waiters = AtomicU32::new(0);
            let bell = Recorder {
                waiters: &waiters,
                barrier_ok: ok,
                log: Default::default(),
            };
            let mut ready = || {
                bell.log.borrow_mut().push("re-check".into());
                false
            };
            sleep_once(&waiters, &bell, &mut ready, Some(POLL_INTERVAL)).unwrap();
            sleep_once(&waiters, &bell, &mut ready, None).unwrap();
            let cap = if ok { POLL_INTERVAL } else { UNFENCED_POLL };
            let endless = if ok { None } else { Some(UNFENCED_POLL) };
            assert_eq!(
                *bell.log.borrow(),
                [
                    "barrier after announce=1".to_string(),
                    "re-check".into(),
                    format!("sleep {:?}", Some(cap)),
                    "barrier after announce=1".into(),
                    "re-check".into(),
                    format!("sleep {endless:?}"),
                ],
                "barrier ok: {ok}"
            );
            // Each timed-out sleep took its announcement back.
            assert_eq!(waiters.load(crate::sync::Ordering::Relaxed), 0);
        }
    }

    /// A doorbell holding units nobody claimed for (a leftover).
    struct Leftovers(Cell<u32>);

    impl Bell for Leftovers {
        fn ring(&self, n: u32) -> Result<(), Removed> {
            self.0.set(self.0.get() + n);
            Ok(())
        }
        fn sleep(&self, _: Option<Duration>) -> Result<bool, Removed> {
            let n = self.0.get();
            self.0.set(n.saturating_sub(1));
            Ok(n > 0)
        }
    }

    /// A leftover unit wakes the next sleeper once, and is used up: the
    /// sleeper takes its announcement back, so no later claim posts for it
    /// again (which would hand the leftover on to every later sleep).
    #[test]
    fn a_leftover_unit_is_used_up() {
        let waiters = AtomicU32::new(0);
        let bell = Leftovers(Cell::new(1));
        sleep_once(&waiters, &bell, &mut || false, None).unwrap();
        assert_eq!(bell.0.get(), 0);
        assert_eq!(
            waiters.load(crate::sync::Ordering::Relaxed),
            0,
            "the announcement stayed behind the leftover"
        );
        // A claimed announcement's unit is the sleeper's own: nothing to
        // take back then.
        sleep_once(
            &waiters,
            &bell,
            &mut || {
                let n = wake::claim(&waiters);
                bell.ring(n).unwrap();
                false
            },
            None,
        )
        .unwrap();
        assert_eq!(bell.0.get(), 0);
        assert_eq!(waiters.load(crate::sync::Ordering::Relaxed), 0);
    }

    #[test]
    fn spinner_budget_and_schedule() {
        let mut s = Spinner::new(3);
        assert!(s.spin() && s.spin() && s.spin());
        assert!(!s.spin(), "a fourth step past a budget of 3");
        assert_eq!(s.steps(), 3);
        let mut s = Spinner::new(0);
        assert!(!s.spin());
    }
}
