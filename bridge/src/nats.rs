//! The NATS side shared by both bridges: connecting (with NATS's own TLS
//! and authentication options, passed through), the status lines of a
//! reconnecting client, and the JetStream stream both bridges use.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions, Event, ServerAddr};

use crate::{status, BridgeError};

/// The smallest duplicate window a stream this bridge creates has: a
/// bridge restarted within it after a crash doubles nothing.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How to reach the NATS server: its address, and the NATS options for
/// TLS and authentication, handed to the client as they are.
#[derive(clap::Args, Debug, Clone)]
pub struct NatsArgs {
    /// The NATS server: nats://HOST:PORT (tls://HOST:PORT for TLS; a
    /// comma-separated list for a cluster; nats://USER:PASS@HOST:PORT).
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// A NATS credentials file (JWT and nkey seed), as `nats --creds`.
    #[arg(long, value_name = "FILE")]
    pub creds: Option<PathBuf>,
    /// User name (with --password).
    #[arg(long, requires = "password")]
    pub user: Option<String>,
    /// Password (with --user).
    #[arg(long, requires = "user")]
    pub password: Option<String>,
    /// An authentication token.
    #[arg(long)]
    pub token: Option<String>,
    /// CA certificates (PEM) that the server's certificate must chain to.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// This client's certificate (PEM), for servers that verify clients.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Refuse a connection without TLS.
    #[arg(long)]
    pub tls_required: bool,
}

impl NatsArgs {
    /// Connects, or says why not (the server unreachable, refused
    /// credentials). Once connected, the client reconnects by itself,
    /// forever, with a growing pause (up to two seconds); each change is a
    /// status line on stderr.
    pub(crate) async fn connect(&self, name: &str) -> Result<Client, BridgeError> {
        let mut opts = match &self.creds {
            Some(path) => ConnectOptions::new()
                .credentials_file(path)
                .await
                .map_err(|e| {
                    BridgeError::Setup(format!("cannot read credentials {}: {e}", path.display()))
                })?,
            None => ConnectOptions::new(),
        };
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            opts = opts.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &self.token {
            opts = opts.token(token.clone());
        }
        if let Some(ca) = &self.tls_ca {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
        // The client says "connected" for the first connection too: only
        // one after a disconnection is news.
        let lost = Arc::new(AtomicBool::new(false));
        let opts = opts
            .require_tls(self.tls_required)
            .name(name)
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(5))
            .reconnect_delay_callback(backoff)
            .event_callback(move |event| {
                let lost = lost.clone();
                async move { report(event, &lost) }
            });
        opts.connect(self.addresses()?)
            .await
            .map_err(|e| BridgeError::Unreachable {
                server: self.server.clone(),
                reason: e.to_string(),
            })
    }
}

impl NatsArgs {
    /// The servers of `--server`, a comma-separated list.
    fn addresses(&self) -> Result<Vec<ServerAddr>, BridgeError> {
        self.server
            .split(',')
            .map(|a| {
                let bad = |why: &dyn fmt::Display| {
                    BridgeError::Setup(format!("bad NATS server address {a:?}: {why}"))
                };
                match a.trim() {
                    "" => Err(bad(&"empty")),
                    a => a.parse::<ServerAddr>().map_err(|e| bad(&e)),
                }
            })
            .collect()
    }
}

/// The status line of a client event; `lost` says whether the connection
/// was lost since the last "connected".
fn report(event: Event, lost: &AtomicBool) {
    match event {
        Event::Disconnected => {
            lost.store(true, Ordering::Relaxed);
            status("disconnected from NATS; reconnecting")
        }
        Event::Connected => {
            if lost.swap(false, Ordering::Relaxed) {
                status("connected to NATS again")
            }
        }
        Event::SlowConsumer(_) => status("NATS dropped messages for a slow subscriber (core NATS)"),
        Event::LameDuckMode => status("the NATS server is shutting down (lame duck)"),
        Event::ServerError(e) => status(format_args!("NATS server error: {e}")),
        Event::ClientError(e) => status(format_args!("NATS client error: {e}")),
        Event::Draining | Event::Closed => {}
    }
}

/// The pause before reconnection attempt `attempts`: 50 ms doubling, at
/// most [`MAX_BACKOFF`].
pub(crate) fn backoff(attempts: usize) -> Duration {
    let ms = 50u64.saturating_mul(1 << attempts.min(16));
    Duration::from_millis(ms).min(MAX_BACKOFF)
}

/// The stream `name`, created (file storage, `subject`, a duplicate
/// window of [`DUPLICATE_WINDOW`]) when it does not exist. Both bridges
/// call this with the same configuration, so whichever starts first
/// creates it and the other finds it (creating an existing stream with the
/// same configuration succeeds, so a race of the two is harmless too).
/// An existing stream must take `subject`; a shorter duplicate window is
/// a warning (a restarted bridge may then double what it published
/// longer ago than the window).
pub(crate) async fn ensure_stream(
    js: &jetstream::Context,
    name: &str,
    subject: &str,
) -> Result<stream::Stream, BridgeError> {
    let config = stream::Config {
        name: name.to_string(),
        subjects: vec![subject.to_string()],
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    };
    let mut st = match js.get_or_create_stream(config).await {
        Ok(st) => st,
        // The other bridge created it between our look and our create
        // (with another subject, say): it is there now.
        Err(first) => js.get_stream(name).await.map_err(|_| {
            BridgeError::JetStream(format!("cannot find or create stream {name}: {first}"))
        })?,
    };
    let info = st
        .info()
        .await
        .map_err(|e| BridgeError::JetStream(format!("cannot read stream {name}: {e}")))?;
    let cfg = &info.config;
    if !cfg.subjects.iter().any(|f| subject_matches(f, subject)) {
        return Err(BridgeError::JetStream(format!(
            "stream {name} does not take subject {subject} (its subjects: {})",
            cfg.subjects.join(", ")
        )));
    }
    if cfg.duplicate_window < DUPLICATE_WINDOW {
        status(format_args!(
            "warning: stream {name} drops duplicates only within {:?} (a bridge restarted later may publish a message twice)",
            cfg.duplicate_window
        ));
    }
    Ok(st)
}

/// Whether NATS subject `subject` matches `filter` (tokens split at `.`;
/// `*` matches one token, a final `>` one or more).
pub(crate) fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_as_nats_matches_them() {
        assert!(subject_matches("a.b", "a.b"));
        assert!(!subject_matches("a.b", "a.c"));
        assert!(!subject_matches("a.b", "a.b.c"));
        assert!(!subject_matches("a.b.c", "a.b"));
        assert!(subject_matches("a.*", "a.b"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(subject_matches("*.b.>", "x.b.y"));
    }

    #[test]
    fn a_server_list_is_split_at_commas() {
        let args = |server: &str| NatsArgs {
            server: server.into(),
            creds: None,
            user: None,
            password: None,
            token: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            tls_required: false,
        };
        let a = args("nats://a:4222, nats://b:4223").addresses().unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!((a[1].host(), a[1].port()), ("b", 4223));
        assert_eq!(args("tls://c:1").addresses().unwrap()[0].port(), 1);
        assert!(matches!(
            args("nats://a:4222,").addresses(),
            Err(BridgeError::Setup(_))
        ));
    }

    #[test]
    fn the_backoff_grows_to_its_ceiling() {
        assert_eq!(backoff(0), Duration::from_millis(50));
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert!(backoff(3) < MAX_BACKOFF);
        assert_eq!(backoff(10), MAX_BACKOFF);
        assert_eq!(backoff(usize::MAX), MAX_BACKOFF);
    }
}
