//! The statistics counters in a channel's header (see `docs/FORMAT.md`):
//! what each endpoint counts ([`Tally`]), and what an inspection reads
//! back ([`Counters`]).
//!
//! Each counter has one writer: the SPSC producer's line, an MPSC sender's
//! slot, the consumer's line. The writer keeps its running totals
//! privately and stores them, with no atomic read-modify-write, every
//! [`Tally::EVERY`] messages, whenever the endpoint is about to wait, and
//! when it is dropped. (Stored per message, even in a 64-byte unit the peer
//! does not read, they cost up to a quarter of the zero-copy throughput:
//! the peer's reads of the neighbouring unit pull it away, so each store
//! was another cache-line transfer.) The price: an inspection may be up to
//! 63 messages behind a streaming endpoint, and a killed endpoint's last
//! unstored counts are lost.

use crate::layout::Flavor;
use crate::segment::Mapped;
use crate::sync::{AtomicU64, Ordering};

/// The statistics counters kept in a channel's header, totals since the
/// channel was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages committed by senders.
    pub sent_messages: u64,
    /// Payload bytes committed by senders.
    pub sent_bytes: u64,
    /// Messages released by receivers (broadcast: by all subscribers
    /// together, each message counted once per subscriber).
    pub received_messages: u64,
    /// Payload bytes released by receivers (broadcast: all subscribers').
    pub received_bytes: u64,
    /// Times a sender found the ring full.
    pub full_events: u64,
    /// Semaphore waits of senders (sleeps, including the periodic wake-ups
    /// of a long wait).
    pub sender_sleeps: u64,
    /// Semaphore waits of receivers.
    pub receiver_sleeps: u64,
}

impl Counters {
    /// Messages sent and not yet received (sent minus received; a message
    /// in a receiver's hand counts as waiting). Not for broadcast, whose
    /// received count is all subscribers' together: each subscriber's lag
    /// is in [`crate::SubscriberStats::lag_messages`].
    pub fn waiting(&self) -> u64 {
        self.sent_messages.saturating_sub(self.received_messages)
    }

    /// The counters of the channel mapped at `mapped`, as found (a
    /// snapshot of untrusted memory).
    pub(crate) fn read(mapped: &Mapped) -> Counters {
        let rs = mapped.ring_state();
        // Relaxed everywhere: a snapshot for display, ordered with nothing.
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (mut sent_messages, mut sent_bytes) = (0u64, 0u64);
        match mapped.layout().flavor {
            Flavor::Spsc | Flavor::Broadcast => {
                sent_messages = load(&rs.producer.sent_messages);
                sent_bytes = load(&rs.producer.sent_bytes);
            }
            Flavor::Mpsc => {
                for i in 0..mapped.layout().sender_slots {
                    let slot = mapped.sender_slot(i);
                    sent_messages = sent_messages.wrapping_add(load(&slot.sent_messages));
                    sent_bytes = sent_bytes.wrapping_add(load(&slot.sent_bytes));
                }
            }
        }
        let (mut received_messages, mut received_bytes) = (
            load(&rs.consumer.received_messages),
            load(&rs.consumer.received_bytes),
        );
        if mapped.layout().flavor == Flavor::Broadcast {
            // Every subscriber's, together (each slot continues the counts
            // of its earlier owners).
            for i in 0..mapped.layout().sender_slots {
                let slot = mapped.subscriber_slot(i);
                received_messages = received_messages.wrapping_add(load(&slot.received_messages));
                received_bytes = received_bytes.wrapping_add(load(&slot.received_bytes));
            }
        }
        Counters {
            sent_messages,
            sent_bytes,
            received_messages,
            received_bytes,
            full_events: load(&rs.wake.full_events),
            sender_sleeps: load(&rs.wake.sender_sleeps),
            receiver_sleeps: load(&rs.wake.receiver_sleeps),
        }
    }
}

/// Whose message and byte counters a [`Tally`] keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counted {
    /// The SPSC producer's line.
    SpscSender,
    /// An MPSC sender's slot.
    SenderSlot(usize),
    /// The consumer's line.
    Receiver,
    /// A broadcast subscriber's slot.
    SubscriberSlot(usize),
}

impl Counted {
    fn cells(self, mapped: &Mapped) -> (&AtomicU64, &AtomicU64) {
        let rs = mapped.ring_state();
        match self {
            Counted::SpscSender => (&rs.producer.sent_messages, &rs.producer.sent_bytes),
            Counted::SenderSlot(i) => {
                let s = mapped.sender_slot(i);
                (&s.sent_messages, &s.sent_bytes)
            }
            Counted::Receiver => (&rs.consumer.received_messages, &rs.consumer.received_bytes),
            Counted::SubscriberSlot(i) => {
                let s = mapped.subscriber_slot(i);
                (&s.received_messages, &s.received_bytes)
            }
        }
    }
}

/// One endpoint's running totals (see the module docs).
#[derive(Debug)]
pub(crate) struct Tally {
    counted: Counted,
    n: u64,
    b: u64,
}

impl Tally {
    /// Messages between two stores of the totals on the fast path.
    pub(crate) const EVERY: u64 = 64;

    /// Continues the totals left by earlier holders of this side or slot.
    pub(crate) fn new(mapped: &Mapped, counted: Counted) -> Tally {
        let (m, b) = counted.cells(mapped);
        Tally {
            counted,
            // Relaxed: statistics; an earlier holder's last stores are
            // ordered before ours by the registration's semop or the slot's
            // Acquire CAS.
            n: m.load(Ordering::Relaxed),
            b: b.load(Ordering::Relaxed),
        }
    }

    /// Counts one message of `len` bytes.
    #[inline]
    pub(crate) fn add(&mut self, len: usize, mapped: &Mapped) {
        self.n = self.n.wrapping_add(1);
        self.b = self.b.wrapping_add(len as u64);
        if self.n.is_multiple_of(Self::EVERY) {
            self.store(mapped);
        }
    }

    /// Stores the running totals.
    pub(crate) fn store(&self, mapped: &Mapped) {
        let (m, b) = self.counted.cells(mapped);
        // Relaxed: statistics, read by `Channel::inspect` and nobody else.
        m.store(self.n, Ordering::Relaxed);
        b.store(self.b, Ordering::Relaxed);
    }
}
