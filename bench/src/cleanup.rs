//! The harness's channels when it is interrupted. Each measurement makes
//! its channels in the parent process, private and removed when the
//! handle drops (`remove_on_drop`), and its children only attach; but a
//! signal that kills the parent (Ctrl-C's SIGINT, SIGTERM, SIGHUP) runs no
//! destructor, and would leave the segment and the semaphore set behind.
//! So while a channel lives its two ids are in a table here, and a
//! handler for those signals, in the process that made them, removes
//! whatever is in the table (`shmctl`/`semctl(IPC_RMID)`: system calls,
//! safe in a signal handler) and then dies of the signal as it would have
//! (its default action, raised again). A forked child inherits the
//! handler and dies as before, removing nothing (the parent's channels
//! stay the parent's). A signal the process ignores (a background job's
//! SIGINT) stays ignored. SIGKILL cannot be caught: `shmchan gc` removes
//! what a killed harness left.

use std::ops::Deref;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::Once;

use shmchan::Channel;

/// Channels the table holds at once (`shmchan-select-1000` has 1,000);
/// one more is not covered (it is still removed when dropped).
const SLOTS: usize = 2048;

/// The segment ids of the live channels (-1: a free slot).
static SHM: [AtomicI64; SLOTS] = [const { AtomicI64::new(-1) }; SLOTS];
/// Their semaphore sets' ids, in the same slots.
static SEM: [AtomicI64; SLOTS] = [const { AtomicI64::new(-1) }; SLOTS];
/// The process that installed the handler (and made the channels).
///
/// The table is used by this process's one thread and by the handler,
/// which interrupts that thread: SeqCst everywhere, so that the handler
/// sees the stores in the order the thread made them (channels are made
/// rarely; the cost does not matter).
static OWNER: AtomicI32 = AtomicI32::new(0);

/// The signals whose default action kills the harness and that can be
/// caught.
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

extern "C" fn on_signal(sig: libc::c_int) {
    // SAFETY: getpid is async-signal-safe.
    if unsafe { libc::getpid() } == OWNER.load(Ordering::SeqCst) {
        for (shm, sem) in SHM.iter().zip(&SEM) {
            let (shm, sem) = (shm.load(Ordering::SeqCst), sem.load(Ordering::SeqCst));
            if shm >= 0 {
                // SAFETY: shmctl(IPC_RMID) of an id this process made and
                // has not removed: a system call, async-signal-safe.
                unsafe { libc::shmctl(shm as libc::c_int, libc::IPC_RMID, std::ptr::null_mut()) };
            }
            if sem >= 0 {
                // SAFETY: as above, semctl(IPC_RMID) of our set.
                unsafe { libc::semctl(sem as libc::c_int, 0, libc::IPC_RMID) };
            }
        }
    }
    // SAFETY: signal and raise are async-signal-safe; the signal is
    // blocked while its handler runs, so it is delivered, with its default
    // action, when the handler returns.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Installs the handler once (in the process that calls it first: the
/// harness's parent), for each signal not ignored.
fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: getpid has no preconditions.
        OWNER.store(unsafe { libc::getpid() }, Ordering::SeqCst);
        for sig in SIGNALS {
            // SAFETY: sigaction is plain data; zeroed is a valid value (no
            // flags, an empty mask).
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: a query (no new action) into a valid struct.
            if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0
                || old.sa_sigaction == libc::SIG_IGN
            {
                continue;
            }
            // SAFETY: as above.
            let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
            act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            // SAFETY: installs a handler that only makes async-signal-safe
            // calls; act is a valid, initialised struct.
            unsafe { libc::sigaction(sig, &act, std::ptr::null_mut()) };
        }
    });
}

/// A channel of the harness (made private, with `remove_on_drop`): removed
/// when dropped, and by the signal handler if the harness is interrupted
/// while it lives. Derefs to the channel.
#[derive(Debug)]
pub(crate) struct Guarded {
    ch: Channel,
    slot: Option<usize>,
}

impl Guarded {
    /// Puts `ch`'s ids in the table (when there is room) and installs the
    /// handler.
    pub(crate) fn new(ch: Channel) -> Guarded {
        install();
        let shm = i64::from(ch.shm_id());
        let slot = SHM.iter().position(|s| {
            s.compare_exchange(-1, shm, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        if let Some(i) = slot {
            SEM[i].store(i64::from(ch.sem_id()), Ordering::SeqCst);
        }
        Guarded { ch, slot }
    }
}

impl Deref for Guarded {
    type Target = Channel;
    fn deref(&self) -> &Channel {
        &self.ch
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // Out of the table first, then removed (the field's drop, after
        // this): the handler never removes an id that may name another
        // object by then.
        if let Some(i) = self.slot {
            SEM[i].store(-1, Ordering::SeqCst);
            SHM[i].store(-1, Ordering::SeqCst);
        }
    }
}
