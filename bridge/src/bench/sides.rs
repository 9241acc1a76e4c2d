//! The two paths' sides: the channels A and B, and NATS's publisher and subscriber (core and JetStream).

use super::*;
/// The bench's sender into channel A.
pub(super) struct RingOut {
    pub(super) tx: Sender,
    pub(super) sh: Arc<Shared>,
}

impl Out for RingOut {
    async fn send(&mut self, msg: &[u8], _paced: bool) -> Result<(), String> {
        match self.tx.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full) | Err(TrySendError::Disconnected) => {}
            Err(e) => return Err(format!("sending into A: {e}")),
        }
        let since = Instant::now();
        loop {
            match self.tx.send_timeout(msg, SLICE) {
                Ok(()) => return Ok(()),
                Err(SendTimeoutError::Timeout) => {}
                // No receiver (yet, or to-nats died: the coordinator sees
                // that).
                Err(SendTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => return Err(format!("sending into A: {e}")),
            }
            if self.sh.stopped() {
                return Err(STOPPED.into());
            }
            if since.elapsed() > STALL {
                return Err(format!(
                    "A stayed full (or without a receiver) for {STALL:?}: to-nats takes nothing"
                ));
            }
        }
    }

    async fn finish(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// The bench's receiver of channel B.
pub(super) struct RingIn {
    pub(super) rx: Receiver,
    pub(super) buf: Vec<u8>,
}

impl In for RingIn {
    async fn recv(&mut self, wait: Duration) -> Result<Option<&[u8]>, String> {
        match self.rx.recv_timeout_into(&mut self.buf, wait) {
            Ok(_) => Ok(Some(&self.buf)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            // from-nats gone (the coordinator sees why, if it was not
            // stopped).
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(wait.min(Duration::from_millis(10)));
                Ok(None)
            }
            Err(e) => Err(format!("receiving from B: {e}")),
        }
    }
}

/// Plain NATS, core: a publisher.
pub(super) struct CoreOut {
    pub(super) client: Client,
    pub(super) subject: Subject,
}

impl Out for CoreOut {
    async fn send(&mut self, msg: &[u8], paced: bool) -> Result<(), String> {
        self.client
            .publish(self.subject.clone(), Bytes::copy_from_slice(msg))
            .await
            .map_err(|e| format!("publishing: {e}"))?;
        if paced {
            // The client's connection task writes it out now.
            tokio::task::yield_now().await;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), String> {
        tokio::time::timeout(STALL, self.client.flush())
            .await
            .map_err(|_| format!("the flush took more than {STALL:?}"))?
            .map_err(|e| format!("flushing: {e}"))
    }
}

pub(super) type AckFuture = <PublishAckFuture as IntoFuture>::IntoFuture;

/// Plain NATS, JetStream: a publisher with a window of acknowledgements
/// in flight (up to [`JS_WINDOW`], as to-nats).
pub(super) struct JsOut {
    pub(super) js: jetstream::Context,
    pub(super) subject: Subject,
    pub(super) acks: FuturesOrdered<AckFuture>,
}

impl JsOut {
    pub(super) fn acked(
        r: Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
    ) -> Result<(), String> {
        r.map(|_| ())
            .map_err(|e| format!("JetStream did not acknowledge: {e}"))
    }
}

impl Out for JsOut {
    async fn send(&mut self, msg: &[u8], paced: bool) -> Result<(), String> {
        while self.acks.len() >= JS_WINDOW {
            let r = self.acks.next().await.expect("a full window");
            JsOut::acked(r)?;
        }
        let ack = self
            .js
            .send_publish(
                self.subject.clone(),
                PublishMessage::build().payload(Bytes::copy_from_slice(msg)),
            )
            .await
            .map_err(|e| format!("publishing to JetStream: {e}"))?;
        self.acks.push_back(ack.into_future());
        if paced {
            tokio::task::yield_now().await;
            while let Some(Some(r)) = self.acks.next().now_or_never() {
                JsOut::acked(r)?;
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), String> {
        while let Some(r) = self.acks.next().await {
            JsOut::acked(r)?;
        }
        Ok(())
    }
}

/// Plain NATS, core: a subscriber.
pub(super) struct CoreIn {
    pub(super) sub: async_nats::Subscriber,
    pub(super) last: Option<async_nats::Message>,
}

impl In for CoreIn {
    async fn recv(&mut self, wait: Duration) -> Result<Option<&[u8]>, String> {
        match tokio::time::timeout(wait, self.sub.next()).await {
            Err(_) => Ok(None),
            Ok(None) => Err("the subscription ended".into()),
            Ok(Some(m)) => Ok(Some(&self.last.insert(m).payload[..])),
        }
    }
}

/// Plain NATS, JetStream: a durable pull consumer, acknowledging the
/// newest message (`AckPolicy::All`) every [`ACK_EVERY`] messages or
/// after [`ACK_AFTER`] without one, as from-nats (and, as from-nats,
/// after the message was handed on).
pub(super) struct JsIn {
    pub(super) messages: pull::Stream,
    pub(super) to_ack: Option<jetstream::Message>,
    pub(super) unacked: u64,
    pub(super) errors: u32,
}

impl JsIn {
    pub(super) async fn ack(&mut self) {
        if let Some(m) = self.to_ack.take() {
            let _ = m.ack().await;
        }
        self.unacked = 0;
    }
}

impl In for JsIn {
    async fn recv(&mut self, wait: Duration) -> Result<Option<&[u8]>, String> {
        if self.unacked >= ACK_EVERY {
            self.ack().await;
        }
        let w = if self.unacked > 0 {
            wait.min(ACK_AFTER)
        } else {
            wait
        };
        match tokio::time::timeout(w, self.messages.next()).await {
            Err(_) => {
                self.ack().await;
                Ok(None)
            }
            Ok(None) => Err("the consumer's messages ended".into()),
            Ok(Some(Err(e))) => {
                self.errors += 1;
                if self.errors > 50 {
                    return Err(format!("JetStream pull: {e}"));
                }
                Ok(None)
            }
            Ok(Some(Ok(m))) => {
                self.errors = 0;
                self.unacked += 1;
                Ok(Some(&self.to_ack.insert(m).payload[..]))
            }
        }
    }
}
