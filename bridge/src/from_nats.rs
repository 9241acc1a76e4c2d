//! `shmchan bridge from-nats`: subscribes to a NATS subject and sends each
//! message into a channel.
//!
//! JetStream mode reads through a durable pull consumer with
//! `AckPolicy::All`, in stream order, and acknowledges only what is
//! committed into the ring. It keeps the stream order whatever the
//! deliveries do: a redelivery of a message committed already is dropped,
//! and a delivery that skipped messages (lost in a reconnection, or
//! delivered to a predecessor that died before committing them) is
//! preceded by those messages, fetched from the stream by sequence.

use std::fmt;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind};
use async_nats::Client;
use futures_util::StreamExt;
use shmchan::{Channel, Key, SendError, Sender, TrySendError};

use crate::nats::{ensure_stream, subject_matches, NatsArgs};
use crate::{status, BridgeError, Signals};

/// Messages committed between two acknowledgements (each acknowledges
/// all before it).
const ACK_EVERY: u64 = 256;
/// The longest a committed message waits for its acknowledgement.
const ACK_AFTER: Duration = Duration::from_millis(20);
/// Messages one pull asks for.
const BATCH: usize = 1024;
/// How long the server waits for an acknowledgement before it delivers
/// a message again.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// Filling a gap: how long the stream may deliver nothing before the gap
/// is taken as empty (its messages deleted, or on other subjects).
const FILL_IDLE: Duration = Duration::from_secs(5);
/// Deliveries the server lets this consumer have unacknowledged.
const MAX_ACK_PENDING: i64 = 20_000;

/// What `from-nats` does.
#[derive(Debug, Clone)]
pub struct FromNats {
    /// The channel the messages go into.
    pub key: Key,
    /// The server and NATS's own connection options.
    pub nats: NatsArgs,
    /// The subject to read.
    pub subject: String,
    /// JetStream: the stream (created when missing); core NATS without.
    pub stream: Option<String>,
    /// JetStream: the durable consumer's name (default
    /// [`default_durable`]: `shmchan-HOST-KEY`), which keeps the bridge's
    /// place across restarts. One bridge per durable consumer: two would
    /// share its deliveries and its acknowledgements.
    pub durable: Option<String>,
}

/// What a `from-nats` bridge did, printed when it stops.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Messages committed into the ring.
    pub committed: u64,
    /// JetStream: deliveries dropped as repeats of committed messages.
    pub redeliveries_dropped: u64,
    /// JetStream: messages fetched from the stream to fill a gap in the
    /// deliveries.
    pub gap_filled: u64,
    /// Core NATS: messages larger than the channel takes, dropped.
    pub too_large: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "from-nats stopped: {} messages committed, {} redeliveries dropped, {} fetched to fill gaps",
            self.committed, self.redeliveries_dropped, self.gap_filled
        )?;
        if self.too_large > 0 {
            write!(f, ", {} too large for the channel dropped", self.too_large)?;
        }
        Ok(())
    }
}

/// Runs the bridge until SIGTERM/SIGINT (or an error: the channel's
/// receiver gone, the channel removed).
pub async fn run(cfg: FromNats) -> Result<Summary, BridgeError> {
    let mut signals = Signals::install()?;
    let ch = Channel::open(cfg.key)?;
    let client = cfg.nats.connect("shmchan-bridge from-nats").await?;
    let mut tx = ch.sender()?;
    let key = ch.key().to_string();
    match &cfg.stream {
        None => {
            let sub = client
                .subscribe(cfg.subject.clone())
                .await
                .map_err(|e| BridgeError::Setup(format!("cannot subscribe: {e}")))?;
            status(format_args!(
                "from-nats {} subject {} -> {key}: core NATS, at most once (what is published while the bridge is away, or dropped for a slow subscriber, is lost)",
                cfg.nats.server, cfg.subject
            ));
            core(sub, &mut tx, &mut signals).await
        }
        Some(name) => {
            let durable = cfg
                .durable
                .clone()
                .unwrap_or_else(|| default_durable(ch.key()));
            let js = jetstream::new(client.clone());
            let st = ensure_stream(&js, name, &cfg.subject).await?;
            let consumer = durable_consumer(&st, &durable, &cfg.subject).await?;
            status(format_args!(
                "from-nats {} subject {}, JetStream stream {name}, durable {durable} -> {key}: acknowledged once committed into the ring (a bridge killed between the two commits a message again when restarted)",
                cfg.nats.server, cfg.subject
            ));
            let mut reader = JetStreamIn {
                st,
                client: client.clone(),
                subject: cfg.subject.clone(),
                last_stream: 0,
                last_consumer: 0,
                unacked: 0,
                to_ack: None,
                sum: Summary::default(),
            };
            reader.run(consumer, &mut tx, &mut signals).await
        }
    }
}

/// The durable consumer's name when `--durable` is not given:
/// `shmchan-HOST-KEY`, so that bridges on two hosts into channels with the
/// same key do not share one consumer (and its acknowledgements). Only
/// the characters NATS allows in a consumer name are kept.
pub fn default_durable(key: Key) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("shmchan-{host}-{:08x}", key.as_raw() as u32)
}

/// Core NATS: every message into the ring, in arrival order.
async fn core(
    mut sub: async_nats::Subscriber,
    tx: &mut Sender,
    signals: &mut Signals,
) -> Result<Summary, BridgeError> {
    let mut sum = Summary::default();
    loop {
        let m = tokio::select! {
            m = sub.next() => m,
            _ = signals.recv() => break,
        };
        let Some(m) = m else {
            return Err(BridgeError::Setup("the subscription ended".into()));
        };
        match commit(tx, &m.payload, signals).await {
            Ok(true) => sum.committed += 1,
            Ok(false) => break,
            Err(Commit::TooLarge) => {
                sum.too_large += 1;
                status(format_args!(
                    "dropped a message of {} bytes: larger than the channel takes ({})",
                    m.payload.len(),
                    tx.max_message()
                ));
            }
            Err(Commit::Failed(e)) => return Err(e),
        }
    }
    Ok(sum)
}

/// Why a message did not go into the ring.
enum Commit {
    TooLarge,
    Failed(BridgeError),
}

/// Sends `payload` into the ring, waiting while it is full. `Ok(false)`:
/// a signal came while it waited (nothing was sent).
async fn commit(tx: &mut Sender, payload: &[u8], signals: &mut Signals) -> Result<bool, Commit> {
    let failed = |e: &dyn fmt::Display| Commit::Failed(BridgeError::Ring(e.to_string()));
    match tx.try_send(payload) {
        Ok(()) => return Ok(true),
        Err(TrySendError::Full) => {}
        Err(TrySendError::TooLarge { .. }) => return Err(Commit::TooLarge),
        Err(e) => return Err(failed(&e)),
    }
    tokio::select! {
        r = tx.send_async(payload) => match r {
            Ok(()) => Ok(true),
            Err(SendError::TooLarge { .. }) => Err(Commit::TooLarge),
            Err(e) => Err(failed(&e)),
        },
        _ = signals.recv() => Ok(false),
    }
}

/// The durable consumer `name` of `st`, made when missing: all its
/// messages, acknowledged cumulatively. An existing one must acknowledge
/// cumulatively too (the bridge acknowledges only the newest committed
/// message) and read `subject`.
async fn durable_consumer(
    st: &jetstream::stream::Stream,
    name: &str,
    subject: &str,
) -> Result<PullConsumer, BridgeError> {
    let config = pull::Config {
        durable_name: Some(name.to_string()),
        ack_policy: AckPolicy::All,
        ack_wait: ACK_WAIT,
        max_ack_pending: MAX_ACK_PENDING,
        filter_subject: subject.to_string(),
        ..Default::default()
    };
    let mut consumer: PullConsumer =
        st.get_or_create_consumer(name, config).await.map_err(|e| {
            BridgeError::JetStream(format!("cannot find or create consumer {name}: {e}"))
        })?;
    let info = consumer
        .info()
        .await
        .map_err(|e| BridgeError::JetStream(format!("cannot read consumer {name}: {e}")))?;
    if info.config.ack_policy != AckPolicy::All {
        return Err(BridgeError::JetStream(format!(
            "consumer {name} acknowledges {:?}; the bridge needs AckPolicy::All (delete it or name another with --durable)",
            info.config.ack_policy
        )));
    }
    let filter = &info.config.filter_subject;
    if !filter.is_empty() && filter != subject {
        return Err(BridgeError::JetStream(format!(
            "consumer {name} reads subject {filter}, not {subject}"
        )));
    }
    Ok(consumer)
}

/// The JetStream side of `from-nats`.
struct JetStreamIn {
    st: jetstream::stream::Stream,
    client: Client,
    subject: String,
    /// The stream sequence of the newest message committed (or the
    /// consumer's acknowledgement floor at start).
    last_stream: u64,
    /// The consumer sequence of the newest delivery seen (0 at start).
    last_consumer: u64,
    /// Committed since the last acknowledgement.
    unacked: u64,
    /// The newest committed delivery, whose acknowledgement acknowledges
    /// every message before it.
    to_ack: Option<jetstream::Message>,
    sum: Summary,
}

impl JetStreamIn {
    async fn run(
        &mut self,
        mut consumer: PullConsumer,
        tx: &mut Sender,
        signals: &mut Signals,
    ) -> Result<Summary, BridgeError> {
        let info = consumer
            .info()
            .await
            .map_err(|e| BridgeError::JetStream(format!("cannot read the consumer: {e}")))?;
        // Everything up to the floor is committed (by this bridge's
        // predecessors); past it, a predecessor may have had deliveries it
        // never committed, which the gap rule fetches again.
        self.last_stream = info.ack_floor.stream_sequence;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(BATCH)
            .messages()
            .await
            .map_err(|e| BridgeError::JetStream(format!("cannot pull: {e}")))?;
        let mut tick = tokio::time::interval(ACK_AFTER);
        let mut pull_errors = 0u32;
        loop {
            let m = tokio::select! {
                biased;
                _ = signals.recv() => break,
                m = messages.next() => m,
                _ = tick.tick(), if self.unacked > 0 => {
                    self.ack().await;
                    continue;
                }
            };
            let m = match m {
                Some(Ok(m)) => {
                    if pull_errors > 0 {
                        status("JetStream delivers again");
                        pull_errors = 0;
                    }
                    m
                }
                Some(Err(e)) => {
                    if pull_errors == 0 {
                        status(format_args!("JetStream pull: {e} (retrying)"));
                    }
                    pull_errors += 1;
                    continue;
                }
                None => {
                    return Err(BridgeError::JetStream(
                        "the consumer's messages ended".into(),
                    ))
                }
            };
            let (sseq, cseq) = match m.info() {
                Ok(i) => (i.stream_sequence, i.consumer_sequence),
                Err(e) => {
                    status(format_args!(
                        "a delivery without JetStream metadata ({e}): skipped"
                    ));
                    continue;
                }
            };
            let first = self.last_consumer == 0;
            let skipped = first || cseq > self.last_consumer + 1;
            self.last_consumer = cseq;
            if sseq <= self.last_stream {
                // Committed already: acknowledged with the next
                // acknowledgement, or now if none is due.
                self.sum.redeliveries_dropped += 1;
                if self.to_ack.is_none() {
                    let _ = m.ack_with(AckKind::Ack).await;
                }
                continue;
            }
            if skipped && sseq > self.last_stream + 1 {
                match self.fill(sseq, tx, signals).await? {
                    true => {}
                    false => break,
                }
            }
            if !subject_matches(&self.subject, m.subject.as_str()) {
                // A consumer without our filter (made by someone else):
                // not ours to commit, but acknowledged with the rest.
                self.last_stream = sseq;
                self.to_ack = Some(m);
                self.unacked += 1;
                continue;
            }
            match commit(tx, &m.payload, signals).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(Commit::TooLarge) => return Err(too_large(sseq, m.payload.len(), tx)),
                Err(Commit::Failed(e)) => {
                    self.ack().await;
                    return Err(e);
                }
            }
            self.last_stream = sseq;
            self.sum.committed += 1;
            self.unacked += 1;
            self.to_ack = Some(m);
            if self.unacked >= ACK_EVERY {
                self.ack().await;
            }
        }
        // Stopping: acknowledge what is committed (and nothing else), and
        // make sure the acknowledgement left.
        self.ack().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.client.flush()).await;
        Ok(std::mem::take(&mut self.sum))
    }

    /// Acknowledges the newest committed delivery (and so all before it).
    async fn ack(&mut self) {
        if let Some(m) = self.to_ack.take() {
            // A lost acknowledgement costs a redelivery, which is dropped.
            let _ = m.ack_with(AckKind::Ack).await;
        }
        self.unacked = 0;
    }

    /// Commits the stream's messages on our subject between the newest
    /// committed one and `upto` (excluded): deliveries that never reached
    /// this bridge. They are read in one pass through an ordered consumer
    /// (ephemeral, without acknowledgements) from the stream; a failure
    /// is retried with a growing pause. `Ok(false)`: a signal came.
    async fn fill(
        &mut self,
        upto: u64,
        tx: &mut Sender,
        signals: &mut Signals,
    ) -> Result<bool, BridgeError> {
        let mut failures = 0usize;
        loop {
            match self.fill_once(upto, tx, signals).await {
                Ok(done) => return Ok(done),
                Err(Fill::Stop(e)) => return Err(e),
                Err(Fill::Retry(why)) => {
                    if failures == 0 {
                        status(format_args!(
                            "cannot read the stream to fill a gap before message {upto} ({why}); retrying"
                        ));
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(crate::nats::backoff(failures)) => {}
                        _ = signals.recv() => return Ok(false),
                    }
                    failures += 1;
                }
            }
        }
    }

    async fn fill_once(
        &mut self,
        upto: u64,
        tx: &mut Sender,
        signals: &mut Signals,
    ) -> Result<bool, Fill> {
        let retry = |e: &dyn fmt::Display| Fill::Retry(e.to_string());
        let config = pull::OrderedConfig {
            filter_subject: self.subject.clone(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: self.last_stream + 1,
            },
            ..Default::default()
        };
        let consumer = tokio::select! {
            biased;
            _ = signals.recv() => return Ok(false),
            r = self.st.create_consumer(config) => r.map_err(|e| retry(&e))?,
        };
        let mut msgs = tokio::select! {
            biased;
            _ = signals.recv() => return Ok(false),
            r = consumer.messages() => r.map_err(|e| retry(&e))?,
        };
        while self.last_stream + 1 < upto {
            let m = tokio::select! {
                biased;
                _ = signals.recv() => return Ok(false),
                m = tokio::time::timeout(FILL_IDLE, msgs.next()) => m,
            };
            let m = match m {
                // Nothing more on our subject before `upto` (deleted, or
                // other subjects).
                Err(_) => break,
                Ok(None) => return Err(Fill::Retry("the stream ended".into())),
                Ok(Some(Err(e))) => return Err(retry(&e)),
                Ok(Some(Ok(m))) => m,
            };
            let sseq = m.info().map_err(|e| retry(&e))?.stream_sequence;
            if sseq >= upto {
                break;
            }
            if sseq <= self.last_stream || !subject_matches(&self.subject, m.subject.as_str()) {
                continue;
            }
            match commit(tx, &m.payload, signals).await {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(Commit::TooLarge) => {
                    return Err(Fill::Stop(too_large(sseq, m.payload.len(), tx)))
                }
                Err(Commit::Failed(e)) => return Err(Fill::Stop(e)),
            }
            self.last_stream = sseq;
            self.sum.committed += 1;
            self.sum.gap_filled += 1;
            self.unacked += 1;
        }
        Ok(true)
    }
}

/// Why a gap could not be filled.
enum Fill {
    /// For now (the server away, say): try again.
    Retry(String),
    /// For good (the channel gone, a message too large).
    Stop(BridgeError),
}

/// A JetStream message the channel cannot take: the bridge stops and
/// leaves it (unacknowledged) in the stream.
fn too_large(seq: u64, len: usize, tx: &Sender) -> BridgeError {
    BridgeError::Setup(format!(
        "stream message {seq} ({len} bytes) is larger than the channel takes ({}); it stays in the stream",
        tx.max_message()
    ))
}
