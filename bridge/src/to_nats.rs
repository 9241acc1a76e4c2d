//! `shmchan bridge to-nats`: the channel's receiver (or a broadcast
//! subscriber), publishing every message to a NATS subject.
//!
//! JetStream mode holds each message in the ring ([`Receiver::recv_held_into`])
//! until JetStream acknowledged it, up to a window of messages in flight,
//! and releases in order as the acknowledgements come. A failed or
//! missing acknowledgement (a timeout, a server restarted) publishes the
//! whole window again, oldest first: the message ids make JetStream drop
//! what it had stored already, and each message's
//! `Nats-Expected-Last-Msg-Id` (its predecessor's id) makes it refuse a
//! message whose predecessor it lost, so the stream never holds the
//! channel's messages out of order.

use std::collections::VecDeque;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, context::PublishAckFuture};
use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use shmchan::{Channel, Held, Key, Receiver, Start, TryRecvError};
use tokio::io::unix::AsyncFd;

use crate::nats::{ensure_stream, NatsArgs};
use crate::{status, BridgeError, Signals, HEADER_CHANNEL, HEADER_KEY, HEADER_POSITION};

/// Core NATS: the most messages released from the ring between two
/// round trips to the server (each confirms that the server has read what
/// was published before it). A `to-nats` bridge killed between two loses
/// at most this many.
pub const CORE_FLUSH_EVERY: u64 = 1024;

/// JetStream: the most messages published and not yet acknowledged.
const WINDOW_MESSAGES: usize = 4096;
/// JetStream: the most payload bytes published and not yet acknowledged
/// (copies kept to publish again), whatever their number.
const WINDOW_BYTES: usize = 32 << 20;
/// How long JetStream may take to acknowledge before the window is
/// published again.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopping bridge waits for the acknowledgements of what it
/// published.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often a bridge waiting for messages looks at the senders' liveness
/// (a sender killed rings no doorbell).
/// Core NATS: how long a round trip may take before the bridge goes on
/// without it (the server is away; what was published may be lost, as
/// core NATS allows).
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(2);
const LIVENESS_POLL: Duration = Duration::from_millis(100);
/// Refusals of the oldest message for a wrong predecessor, in a row
/// (each looked into: the stream's last message read), after which the
/// bridge stops naming predecessors (the stream's last message keeps
/// changing: someone else publishes to it).
const CHAIN_REFUSALS: u32 = 4;

/// What `to-nats` does.
#[derive(Debug, Clone)]
pub struct ToNats {
    /// The channel.
    pub key: Key,
    /// The server and NATS's own connection options.
    pub nats: NatsArgs,
    /// The subject every message is published to.
    pub subject: String,
    /// JetStream: the stream (created when missing); core NATS without.
    pub stream: Option<String>,
    /// Broadcast channels, core NATS: subscribe at the oldest message in
    /// the ring, not the newest. (JetStream mode always starts at the
    /// oldest: a restarted bridge publishes again what is still there,
    /// and JetStream drops the repeats.)
    pub from_oldest: bool,
}

/// What a `to-nats` bridge did, printed when it stops.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Messages taken from the ring and published (once each, however
    /// often they were published again).
    pub published: u64,
    /// JetStream: messages acknowledged and released from the ring.
    pub acknowledged: u64,
    /// JetStream: acknowledgements that said "duplicate" (stored already,
    /// by this bridge's predecessor or a publish repeated after a failed
    /// acknowledgement).
    pub duplicates: u64,
    /// JetStream: times the window was published again.
    pub republished: u64,
    /// Broadcast Overwrite: messages the publisher wrote over before the
    /// bridge read them.
    pub lost_to_lag: u64,
    /// Whether it stopped at the end of the stream (every sender gone).
    pub end_of_stream: bool,
    /// JetStream: messages it had published and not seen acknowledged
    /// when it stopped (they stay in the ring for the next bridge).
    pub unacknowledged: u64,
    /// Whether it published with core NATS (no acknowledgements).
    pub core: bool,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = if self.end_of_stream {
            "end of stream"
        } else {
            "signal"
        };
        if self.core {
            write!(
                f,
                "to-nats stopped ({why}): {} messages published (core NATS)",
                self.published
            )?;
        } else {
            write!(
                f,
                "to-nats stopped ({why}): {} messages published, {} acknowledged, {} duplicates, {} republished windows",
                self.published, self.acknowledged, self.duplicates, self.republished
            )?;
        }
        if self.unacknowledged > 0 {
            write!(
                f,
                ", {} unacknowledged left in the ring",
                self.unacknowledged
            )?;
        }
        if self.lost_to_lag > 0 {
            write!(
                f,
                ", {} overwritten before they were read",
                self.lost_to_lag
            )?;
        }
        Ok(())
    }
}

/// The identity of the channel's segment: its key, its id, its creation
/// time. Two channels made at one key one after the other differ in the
/// id (the kernel's sequence number) and usually in the time.
pub fn channel_identity(ch: &Channel) -> String {
    format!(
        "{:08x}.{:x}.{:x}",
        ch.key().as_raw() as u32,
        ch.shm_id(),
        ch.layout().created_at
    )
}

/// The message id of the message at `position` of the channel `identity`.
pub fn message_id(identity: &str, position: u64) -> String {
    format!("{identity}.{position:x}")
}

/// Runs the bridge until the end of the stream or SIGTERM/SIGINT.
pub async fn run(cfg: ToNats) -> Result<Summary, BridgeError> {
    let mut signals = Signals::install()?;
    let ch = Channel::open(cfg.key)?;
    let client = cfg.nats.connect("shmchan-bridge to-nats").await?;
    if ch.max_message() > client.server_info().max_payload {
        status(format_args!(
            "warning: the channel's messages may be {} bytes, the NATS server takes at most {} (a larger one stops the bridge, and stays in the ring)",
            ch.max_message(),
            client.server_info().max_payload
        ));
    }
    // JetStream: a restarted bridge publishes again what is still in a
    // broadcast ring (JetStream drops the repeats), so it starts at the
    // oldest message; core NATS at the newest unless asked.
    let start = if cfg.from_oldest || cfg.stream.is_some() {
        Start::Oldest
    } else {
        Start::Newest
    };
    let mut rx = ch.receiver_at(start)?;
    let ring = RingWait::new(&rx)?;
    let out = Out {
        subject: cfg.subject.clone(),
        key: ch.key().to_string(),
        identity: channel_identity(&ch),
    };
    match &cfg.stream {
        None => {
            status(format_args!(
                "to-nats {} -> {} subject {}: core NATS, at most once (a message in flight when the bridge or the server fails, or sent while nobody subscribes, is lost)",
                out.key, cfg.nats.server, cfg.subject
            ));
            core(&client, &mut rx, &ring, &out, &mut signals).await
        }
        Some(name) => {
            let js = jetstream::ContextBuilder::new()
                .timeout(ACK_TIMEOUT)
                .ack_timeout(ACK_TIMEOUT)
                .max_ack_inflight(WINDOW_MESSAGES + 1)
                .build(client.clone());
            let stream = ensure_stream(&js, name, &cfg.subject).await?;
            status(format_args!(
                "to-nats {} -> {} subject {}, JetStream stream {name}: a message leaves the ring once JetStream has it; repeats after a crash are dropped by message id",
                out.key, cfg.nats.server, cfg.subject
            ));
            let mut bridge = JetStreamOut::new(js, stream, out);
            bridge.run(&mut rx, &ring, &mut signals).await
        }
    }
}

/// Where and how messages go out.
struct Out {
    subject: String,
    key: String,
    identity: String,
}

impl Out {
    /// The metadata headers of the message at `position`.
    fn headers(&self, position: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER_KEY, self.key.as_str());
        h.insert(HEADER_CHANNEL, self.identity.as_str());
        h.insert(HEADER_POSITION, position.to_string().as_str());
        h
    }
}

/// The receiver's doorbell in tokio's reactor (a duplicate of its
/// descriptor, so that the reactor's copy is ours to keep open).
struct RingWait {
    fd: AsyncFd<OwnedFd>,
}

impl RingWait {
    fn new(rx: &Receiver) -> Result<RingWait, BridgeError> {
        let e = |e: std::io::Error| BridgeError::Setup(format!("cannot wait on the channel: {e}"));
        // arm first: it reports a doorbell that cannot be made.
        rx.arm().map_err(e)?;
        let dup = rx.as_fd().try_clone_to_owned().map_err(e)?;
        // SAFETY: the descriptor is an OwnedFd the AsyncFd owns: open, and
        // the same, for as long as the AsyncFd lives.
        let fd = unsafe { AsyncFd::register_with_interest(dup, tokio::io::Interest::READABLE) }
            .map_err(|r| e(r.into()))?;
        Ok(RingWait { fd })
    }

    /// Waits until a message may be waiting: the doorbell rang after the
    /// arm, or the liveness poll is due (a killed sender rings nothing).
    async fn ready(&self, rx: &Receiver) {
        match rx.arm() {
            Ok(false) => {}
            // Ready already, or no doorbell (look again after the poll).
            Ok(true) => return,
            Err(_) => {
                tokio::time::sleep(LIVENESS_POLL).await;
                return;
            }
        }
        if let Ok(Ok(mut guard)) = tokio::time::timeout(LIVENESS_POLL, self.fd.readable()).await {
            // The next arm drains the socket; until then, wait for a new
            // edge.
            guard.clear_ready();
        }
    }
}

/// What one look at the ring gave.
enum Next {
    Message(Held),
    Empty,
    End,
}

/// One non-blocking receive into `buf`, held.
fn next(rx: &mut Receiver, buf: &mut Vec<u8>, lost: &mut u64) -> Result<Next, BridgeError> {
    loop {
        return match rx.try_recv_held_into(buf) {
            Ok(h) => Ok(Next::Message(h)),
            Err(TryRecvError::Empty) => Ok(Next::Empty),
            Err(TryRecvError::Disconnected) => Ok(Next::End),
            Err(TryRecvError::Lagged { missed }) => {
                status(format_args!(
                    "the publisher wrote over {missed} messages before the bridge read them"
                ));
                *lost += missed;
                continue;
            }
            Err(e) => Err(BridgeError::Ring(e.to_string())),
        };
    }
}

/// Core NATS: release, then publish (at most once), and make a round trip
/// to the server every [`CORE_FLUSH_EVERY`] messages and whenever the ring
/// is empty; no more is released until a round trip succeeds.
async fn core(
    client: &Client,
    rx: &mut Receiver,
    ring: &RingWait,
    out: &Out,
    signals: &mut Signals,
) -> Result<Summary, BridgeError> {
    let mut sum = Summary {
        core: true,
        ..Summary::default()
    };
    let mut buf = Vec::new();
    let mut unconfirmed = 0u64;
    let mut stopping = false;
    while !stopping {
        match next(rx, &mut buf, &mut sum.lost_to_lag)? {
            Next::Message(held) => {
                let headers = out.headers(held.position());
                let max = client.server_info().max_payload;
                if buf.len() + headers_len(&headers) > max {
                    // Not released: it stays in the ring.
                    return Err(BridgeError::Setup(format!(
                        "the message at position {} ({} bytes) is larger than the NATS server takes ({max} bytes with its headers); it stays in the ring",
                        held.position(),
                        buf.len()
                    )));
                }
                rx.release_held(held);
                let payload = Bytes::copy_from_slice(&buf);
                let publish = client.publish_with_headers(out.subject.clone(), headers, payload);
                tokio::pin!(publish);
                let r = tokio::select! {
                    r = &mut publish => r,
                    _ = signals.recv() => {
                        // Released already: hand it over before going (if
                        // the client takes it within the grace period).
                        stopping = true;
                        match tokio::time::timeout(STOP_GRACE, publish).await {
                            Ok(r) => r,
                            Err(_) => break,
                        }
                    }
                };
                r.map_err(|e| BridgeError::Ring(format!("publishing failed: {e}")))?;
                sum.published += 1;
                unconfirmed += 1;
                if unconfirmed >= CORE_FLUSH_EVERY && !stopping {
                    if !confirm(client, signals).await {
                        break;
                    }
                    unconfirmed = 0;
                }
            }
            Next::Empty => {
                if unconfirmed > 0 {
                    if !confirm(client, signals).await {
                        break;
                    }
                    unconfirmed = 0;
                }
                tokio::select! {
                    _ = ring.ready(rx) => {}
                    _ = signals.recv() => break,
                }
            }
            Next::End => {
                sum.end_of_stream = true;
                break;
            }
        }
    }
    // What was handed to the client reaches the server before the bridge
    // goes.
    let _ = tokio::time::timeout(STOP_GRACE, round_trip(client)).await;
    Ok(sum)
}

/// The bytes `headers` take in a NATS message (`NATS/1.0`, a line per
/// header, the blank line).
fn headers_len(headers: &HeaderMap) -> usize {
    let lines: usize = headers
        .iter()
        .flat_map(|(name, values)| {
            values
                .iter()
                .map(move |v| AsRef::<str>::as_ref(name).len() + v.as_str().len() + 4)
        })
        .sum();
    "NATS/1.0\r\n\r\n".len() + lines
}

/// Round trips until one succeeds: `false` if a signal came first. While
/// the server does not answer, nothing more is released (the ring fills
/// and its senders wait), so a crash loses at most what was released
/// before the last round trip that succeeded, and what came after it.
async fn confirm(client: &Client, signals: &mut Signals) -> bool {
    let mut failures = 0usize;
    loop {
        tokio::select! {
            ok = round_trip(client) => {
                if ok {
                    return true;
                }
            }
            _ = signals.recv() => return false,
        }
        if failures == 0 {
            status("the NATS server does not answer; releasing nothing more until it does");
        }
        tokio::select! {
            _ = tokio::time::sleep(crate::nats::backoff(failures)) => {}
            _ = signals.recv() => return false,
        }
        failures += 1;
    }
}

/// A round trip to the server: once it returns `true`, the server has
/// read everything this client published before it (and queued it for
/// the subscribers). A request to a fresh inbox, which nobody listens on:
/// the server answers "no responders" after the publishes before it. A
/// flush would only put them in the socket, which a killed process may
/// lose. `false` when the server did not answer in time (disconnected).
async fn round_trip(client: &Client) -> bool {
    let probe = client.request(client.new_inbox(), Bytes::new());
    match tokio::time::timeout(ROUND_TRIP_TIMEOUT, probe).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => e.kind() == async_nats::RequestErrorKind::NoResponders,
        Err(_) => false,
    }
}

/// Whose the stream's last message is.
enum Last {
    /// This channel's, at this position.
    Ours(u64),
    /// Another publisher's.
    Foreign,
}

/// A message published to JetStream and not yet acknowledged.
struct InFlight {
    held: Held,
    id: String,
    payload: Bytes,
}

type AckFuture = <PublishAckFuture as std::future::IntoFuture>::IntoFuture;

/// The JetStream side of `to-nats`: the window of messages in flight,
/// oldest first, and their acknowledgements, in the same order.
struct JetStreamOut {
    js: jetstream::Context,
    out: Out,
    window: VecDeque<InFlight>,
    window_bytes: usize,
    acks: FuturesOrdered<AckFuture>,
    /// The id of the last message acknowledged: the predecessor of the
    /// oldest in flight (`None` before the first).
    last_acked: Option<String>,
    /// Whether publishes name their predecessor.
    chain: bool,
    chain_refusals: u32,
    /// The next publish names no predecessor (the server has forgotten
    /// or never had it).
    reseed: bool,
    wrong_stream_said: bool,
    /// The stream, to look at its last message after a refusal.
    stream: jetstream::stream::Stream,
    /// Failed acknowledgements in a row (for the pause before publishing
    /// again, and for one status line per outage).
    failures: u32,
    /// The newest acknowledged message, not yet released.
    pending_release: Option<Held>,
    sum: Summary,
}

impl JetStreamOut {
    fn new(js: jetstream::Context, stream: jetstream::stream::Stream, out: Out) -> JetStreamOut {
        JetStreamOut {
            js,
            out,
            window: VecDeque::new(),
            window_bytes: 0,
            acks: FuturesOrdered::new(),
            last_acked: None,
            chain: true,
            chain_refusals: 0,
            reseed: false,
            wrong_stream_said: false,
            stream,
            failures: 0,
            pending_release: None,
            sum: Summary::default(),
        }
    }

    fn has_room(&self) -> bool {
        self.window.len() < WINDOW_MESSAGES && self.window_bytes < WINDOW_BYTES
    }

    async fn run(
        &mut self,
        rx: &mut Receiver,
        ring: &RingWait,
        signals: &mut Signals,
    ) -> Result<Summary, BridgeError> {
        let mut buf = Vec::new();
        let mut ended = false;
        loop {
            // Take what the ring has, while the window has room.
            while !ended && self.has_room() {
                match next(rx, &mut buf, &mut self.sum.lost_to_lag)? {
                    Next::Message(held) => {
                        let payload = Bytes::from(std::mem::take(&mut buf));
                        let id = crate::to_nats::message_id(&self.out.identity, held.position());
                        let msg = InFlight { held, id, payload };
                        let prev = match self.window.back() {
                            Some(m) => Some(m.id.clone()),
                            // A refusal emptied the window: the server
                            // does not know our last id.
                            None if std::mem::take(&mut self.reseed) => None,
                            None => self.last_acked.clone(),
                        };
                        self.window_bytes += msg.payload.len();
                        let ack = tokio::select! {
                            r = self.publish(&msg, prev.as_deref()) => r?,
                            _ = signals.recv() => return Ok(self.stop(rx).await),
                        };
                        self.window.push_back(msg);
                        self.acks.push_back(ack);
                        self.sum.published += 1;
                    }
                    Next::Empty => break,
                    Next::End => ended = true,
                }
            }
            if self.window.is_empty() {
                if ended {
                    self.sum.end_of_stream = true;
                    return Ok(std::mem::take(&mut self.sum));
                }
                tokio::select! {
                    _ = ring.ready(rx) => {}
                    _ = signals.recv() => return Ok(self.stop(rx).await),
                }
                continue;
            }
            let room = !ended && self.has_room();
            tokio::select! {
                biased;
                _ = signals.recv() => return Ok(self.stop(rx).await),
                r = self.acks.next() => {
                    let r = r.expect("one acknowledgement per message in flight");
                    match r {
                        Ok(ack) => {
                            self.acked_by(&ack);
                            // Take every acknowledgement that is in, then
                            // release once.
                            while let Some(Some(r)) = self.acks.next().now_or_never() {
                                match r {
                                    Ok(ack) => self.acked_by(&ack),
                                    Err(e) => {
                                        self.release(rx);
                                        let stopping = self.failed(e, signals).await?;
                                        self.release(rx);
                                        if stopping {
                                            return Ok(self.stop(rx).await);
                                        }
                                        break;
                                    }
                                }
                            }
                            self.release(rx);
                        }
                        Err(e) => {
                            let stopping = self.failed(e, signals).await?;
                            self.release(rx);
                            if stopping {
                                return Ok(self.stop(rx).await);
                            }
                        }
                    }
                }
                _ = ring.ready(rx), if room => {}
            }
        }
    }

    /// Publishes `msg`, naming `prev` as its predecessor (if the chain is
    /// on); returns the acknowledgement to wait for.
    async fn publish(&self, msg: &InFlight, prev: Option<&str>) -> Result<AckFuture, BridgeError> {
        let mut p = PublishMessage::build()
            .payload(msg.payload.clone())
            .headers(self.out.headers(msg.held.position()))
            .message_id(&msg.id);
        if let (true, Some(prev)) = (self.chain, prev) {
            p = p.expected_last_message_id(prev);
        }
        match self.js.send_publish(self.out.subject.clone(), p).await {
            Ok(ack) => Ok(std::future::IntoFuture::into_future(ack)),
            Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => Err(too_large(msg, &e)),
            // Not sent (the client is closing, say): an acknowledgement
            // that failed, handled as one.
            Err(e) => Ok(Box::pin(async move { Err(e) })),
        }
    }

    /// The oldest message in flight is acknowledged by `stream`.
    fn acked_by(&mut self, ack: &async_nats::jetstream::publish::PublishAck) {
        if ack.stream != self.stream.cached_info().config.name && !self.wrong_stream_said {
            status(format_args!(
                "warning: JetStream stored a message in stream {}, not {} (another stream takes the subject too)",
                ack.stream,
                self.stream.cached_info().config.name
            ));
            self.wrong_stream_said = true;
        }
        self.acked(ack.duplicate);
    }

    /// The oldest message in flight is acknowledged.
    fn acked(&mut self, duplicate: bool) {
        let m = self
            .window
            .pop_front()
            .expect("a message per acknowledgement");
        self.window_bytes -= m.payload.len();
        self.sum.acknowledged += 1;
        if duplicate {
            self.sum.duplicates += 1;
        }
        self.last_acked = Some(m.id);
        self.pending_release = Some(m.held);
        if self.failures > 0 {
            status("JetStream acknowledges again");
            self.failures = 0;
        }
        self.chain_refusals = 0;
    }

    fn release(&mut self, rx: &mut Receiver) {
        if let Some(h) = self.pending_release.take() {
            rx.release_held(h);
        }
    }

    fn chain_off(&mut self) {
        if self.chain {
            status("another publisher writes to the stream: publishing without naming predecessors (the stream's order across a server restart is no longer guaranteed)");
            self.chain = false;
        }
    }

    /// After a refusal for a wrong predecessor: whose is the stream's last
    /// message, and for ours its position (`None`: the stream is empty).
    async fn resolve_refusal(&self) -> Result<Option<Last>, BridgeError> {
        let e = |e: &dyn fmt::Display| BridgeError::JetStream(e.to_string());
        let mut st = self.stream.clone();
        let last = st.info().await.map_err(|x| e(&x))?.state.last_sequence;
        if last == 0 {
            return Ok(None);
        }
        let m = st.get_raw_message(last).await.map_err(|x| e(&x))?;
        let header = |name: &str| m.headers.get(name).map(|v| v.as_str().to_string());
        if header(HEADER_CHANNEL).as_deref() != Some(self.out.identity.as_str()) {
            return Ok(Some(Last::Foreign));
        }
        match header(HEADER_POSITION).and_then(|p| p.parse().ok()) {
            Some(position) => Ok(Some(Last::Ours(position))),
            None => Ok(Some(Last::Foreign)),
        }
    }

    /// The oldest message's acknowledgement failed: after a pause, publish
    /// the whole window again, oldest first (what JetStream had stored
    /// already comes back as a duplicate). Returns `true` when a signal
    /// came during the pause (nothing was published again).
    async fn failed(
        &mut self,
        e: async_nats::jetstream::context::PublishError,
        signals: &mut Signals,
    ) -> Result<bool, BridgeError> {
        // Whatever else is pending belongs to the failed round (dropped
        // before any acknowledged message leaves the window below, so
        // that the futures and the window stay one to one).
        self.acks = FuturesOrdered::new();
        let front = self
            .window
            .front()
            .expect("a failed acknowledgement is the oldest's");
        match e.kind() {
            PublishErrorKind::MaxPayloadExceeded => return Err(too_large(front, &e)),
            PublishErrorKind::WrongLastMessageId if self.chain => {
                self.chain_refusals += 1;
                match self.resolve_refusal().await {
                    // Not ours: someone else publishes to the stream.
                    Ok(Some(Last::Foreign)) => self.chain_off(),
                    // Ours: the server forgot its last id (a restart after
                    // the duplicate window), or stored more of the window
                    // than it acknowledged: those count as acknowledged,
                    // and the next publish names no predecessor.
                    Ok(Some(Last::Ours(position))) => {
                        while self
                            .window
                            .front()
                            .is_some_and(|m| m.held.position() <= position)
                        {
                            self.acked(true);
                        }
                        self.reseed = true;
                    }
                    Ok(None) => self.reseed = true,
                    // Could not look: try again as for any failure.
                    Err(_) => {}
                }
                if self.chain_refusals >= CHAIN_REFUSALS {
                    // Resolved and refused again, more than once: the
                    // stream's last message keeps changing under us.
                    self.chain_off();
                }
                if self.window.is_empty() {
                    return Ok(false);
                }
            }
            _ => {}
        }
        let front = self.window.front().expect("not empty");
        if self.failures == 0 {
            status(format_args!(
                "JetStream did not acknowledge ({e}); publishing {} messages again from position {}",
                self.window.len(),
                front.held.position()
            ));
        }
        self.failures = self.failures.saturating_add(1);
        let pause = crate::nats::backoff(self.failures.saturating_sub(1) as usize);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = signals.recv() => return Ok(true),
        }
        self.sum.republished += 1;
        let reseed = std::mem::take(&mut self.reseed);
        let republish = async {
            let mut prev = if reseed {
                None
            } else {
                self.last_acked.clone()
            };
            for i in 0..self.window.len() {
                let ack = self.publish(&self.window[i], prev.as_deref()).await?;
                self.acks.push_back(ack);
                prev = Some(self.window[i].id.clone());
            }
            Ok::<(), BridgeError>(())
        };
        tokio::select! {
            r = republish => r.map(|()| false),
            // Stopping: what was published again so far may still be
            // acknowledged in the grace period.
            _ = signals.recv() => Ok(true),
        }
    }

    /// SIGTERM/SIGINT: waits (a while) for the acknowledgements of what is
    /// in flight, releases what they confirm, and leaves the rest in the
    /// ring.
    async fn stop(&mut self, rx: &mut Receiver) -> Summary {
        let drain = async {
            while let Some(r) = self.acks.next().await {
                match r {
                    Ok(ack) => self.acked_by(&ack),
                    Err(_) => break,
                }
            }
        };
        let _ = tokio::time::timeout(STOP_GRACE, drain).await;
        self.release(rx);
        self.sum.unacknowledged = self.window.len() as u64;
        std::mem::take(&mut self.sum)
    }
}

/// A message NATS cannot carry: the bridge stops, and it stays in the
/// ring.
fn too_large(msg: &InFlight, e: &dyn fmt::Display) -> BridgeError {
    BridgeError::Setup(format!(
        "the message at position {} ({} bytes) is larger than the NATS server takes ({e}); it stays in the ring",
        msg.held.position(),
        msg.payload.len()
    ))
}
