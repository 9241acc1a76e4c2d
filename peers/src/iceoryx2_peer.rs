//! [`iceoryx2`] as a peer: publish-subscribe of `[u8]` slices over IPC
//! services (`ipc::Service`), one service per direction.
//!
//! - Payload: a `size`-byte slice loaned from the publisher's data segment
//!   (zero-copy), written in place from the harness's message and sent; the
//!   subscriber reads the sample where it lies and copies it out, as the
//!   harness's shmchan receiver does.
//! - Buffering: the subscriber's queue holds as many samples as shmchan's
//!   ring holds messages ([`ring_bytes`] / `size`, at most
//!   [`MAX_BUFFER`]); no history; one loan and one borrowed sample at a
//!   time (each side handles one message at a time).
//! - Overflow: off (`enable_safe_overflow(false)`), with the publisher's
//!   backpressure strategy `RetryUntilDelivered`: a full subscriber queue
//!   makes the publisher wait (spin, then yield, then sleep: iceoryx2's
//!   adaptive wait), as a full ring does in shmchan. (The default,
//!   safe overflow, would let a fast publisher overwrite the oldest queued
//!   samples, and the subscriber would count fewer messages than were
//!   sent.)
//! - Nodes are created after the fork, in each process, in a domain of the
//!   measurement's own (a fresh root directory and shared memory prefix,
//!   removed afterwards: [`Domain`]); service names are unique per run.
//! - Connection: a publisher waits until its service has a subscriber
//!   before it sends (samples sent earlier would reach nobody).
//! - Receiving: both sides spin on `receive()` (iceoryx2's publish-subscribe
//!   has no blocking receive; waiting would need an event service beside).
//! - End of stream: a sample of another length ([`sentinel_len`]); the
//!   sender then waits until the receiver has dropped its subscriber, so
//!   that no queued sample outlives its publisher. A receiver that sees
//!   nothing, or a publisher that cannot deliver, for [`STALL`] gives up.
//!
//! [`Iceoryx2Broadcast`] (`iceoryx2-bcast-N`): one publisher (this
//! process) and N subscriber processes of one service, each receiving
//! every sample, as shmchan's `shmchan-bcast-N` rows (Block) measure it
//! ([`shmchan_bench::broadcast::fan_out`]): the same buffering per
//! subscriber, the publisher waiting for the fullest queue
//! (`RetryUntilDelivered`), and every subscriber checking each sample's
//! number and check word ([`SeqCheck`]) as copied out. The publisher waits
//! until all N have subscribed before it sends, and at the end until all
//! have left.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::port::{BackpressureAction, BackpressureInfo};
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSubFactory;
use shmchan_bench::broadcast::{self, BroadcastRun, SeqCheck, SubscriberRun};
use shmchan_bench::{
    count_until, ring_bytes, stamp, stream_for, two_processes, Config, Peer, SingleThreaded,
};

use crate::{sentinel_len, unique_name, Stall, STALL};

/// The largest subscriber queue, in samples.
pub const MAX_BUFFER: usize = 16_384;

type Svc = ipc::Service;
type PubSub = PubSubFactory<Svc, [u8], ()>;

/// iceoryx2, from crates.io.
pub struct Iceoryx2;

/// The subscriber queue for `size`-byte messages, in samples.
fn buffer_samples(size: usize) -> usize {
    (ring_bytes(size) / size.max(1)).clamp(2, MAX_BUFFER)
}

/// An iceoryx2 domain of this measurement's own: a fresh root directory and
/// a unique prefix for the shared memory objects. Removed on drop, with
/// whatever iceoryx2 leaves in it, such as the domain's management segment
/// (`<prefix><hash>_node.<version>.global_mgmt` in `/dev/shm`), which
/// iceoryx2 keeps for the next node of the domain.
struct Domain {
    dir: PathBuf,
    prefix: String,
    config: iceoryx2::config::Config,
}

impl Domain {
    fn create() -> Domain {
        let name = unique_name("iceoryx2");
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir(&dir).expect("iceoryx2: create the root directory");
        let mut root = dir.to_str().expect("a UTF-8 temporary path").to_string();
        root.push('/');
        let prefix = format!("{name}_");
        let mut config = iceoryx2::config::Config::default();
        config
            .global
            .set_root_path(&Path::new(root.as_bytes()).expect("iceoryx2: a valid root path"));
        config.global.prefix =
            FileName::new(prefix.as_bytes()).expect("iceoryx2: a valid file name prefix");
        Domain {
            dir,
            prefix,
            config,
        }
    }

    /// A node of this process.
    fn node(&self) -> Node<Svc> {
        NodeBuilder::new()
            .config(&self.config)
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<Svc>()
            .expect("iceoryx2: create a node")
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Ok(entries) = std::fs::read_dir("/dev/shm") {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&self.prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// Opens (or creates: the processes race to it) the service `name` for
/// `size`-byte messages, one publisher and `subscribers` subscribers, each
/// in a node of its own.
fn service(node: &Node<Svc>, name: &str, size: usize, subscribers: usize) -> PubSub {
    let name: ServiceName = name.try_into().expect("iceoryx2: a valid service name");
    node.service_builder(&name)
        .publish_subscribe::<[u8]>()
        .enable_safe_overflow(false)
        .subscriber_max_buffer_size(buffer_samples(size))
        .subscriber_max_borrowed_samples(1)
        .history_size(0)
        .max_publishers(1)
        .max_subscribers(subscribers)
        .max_nodes(subscribers + 1)
        .open_or_create()
        .expect("iceoryx2: open or create the service")
}

fn subscriber(service: &PubSub, size: usize) -> Subscriber<Svc, [u8], ()> {
    service
        .subscriber_builder()
        .buffer_size(buffer_samples(size))
        .create()
        .expect("iceoryx2: create a subscriber")
}

/// A publisher of `size`-byte slices, returned once the service has its
/// `subscribers` subscribers.
fn publisher(service: &PubSub, size: usize, subscribers: usize) -> Publisher<Svc, [u8], ()> {
    let publisher = service
        .publisher_builder()
        .initial_max_slice_len(size.max(sentinel_len(size)))
        .max_loaned_samples(1)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        // Retry until delivered, but not forever: a subscriber whose
        // process died would block the publisher for good.
        .set_backpressure_handler(|info: &BackpressureInfo| {
            if info.elapsed_time > STALL {
                BackpressureAction::DiscardDataAndFail
            } else {
                BackpressureAction::Retry
            }
        })
        .create()
        .expect("iceoryx2: create a publisher");
    wait_while("iceoryx2 publisher waiting for its subscribers", || {
        service.dynamic_config().number_of_subscribers() < subscribers
    });
    publisher
}

/// Sleeps in short steps while `cond` holds, at most [`STALL`].
fn wait_while(what: &'static str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while cond() {
        if start.elapsed() > STALL {
            panic!(
                "{what}: nothing for {} s; the other process has died or hangs",
                STALL.as_secs()
            );
        }
        std::thread::sleep(Duration::from_micros(20));
    }
}

fn send(publisher: &Publisher<Svc, [u8], ()>, m: &[u8]) {
    publisher
        .loan_slice_uninit(m.len())
        .expect("iceoryx2: loan")
        .write_from_slice(m)
        .send()
        .expect("iceoryx2: send");
}

/// Ends the stream: sends the end-of-stream sample and waits until the
/// subscribers have seen it and left.
fn finish(service: &PubSub, publisher: &Publisher<Svc, [u8], ()>, size: usize) {
    send(publisher, &vec![0u8; sentinel_len(size)]);
    wait_while(
        "iceoryx2 publisher waiting for its subscribers to leave",
        || service.dynamic_config().number_of_subscribers() > 0,
    );
}

/// Spins on `receive()` until a sample comes; hands it to `f` where it lies.
fn recv_with<R>(subscriber: &Subscriber<Svc, [u8], ()>, f: impl FnOnce(&[u8]) -> R) -> R {
    let mut stall = Stall::new("iceoryx2 receive");
    loop {
        if let Some(sample) = subscriber.receive().expect("iceoryx2: receive") {
            return f(sample.payload());
        }
        stall.poll();
        std::hint::spin_loop();
    }
}

impl Peer for Iceoryx2 {
    fn name(&self) -> String {
        "iceoryx2".to_string()
    }

    fn throughput(&self, one: &SingleThreaded, size: usize, cfg: &Config) -> (u64, f64) {
        let domain = Domain::create();
        let name = unique_name("stream");
        let duration = cfg.duration;
        two_processes(
            one,
            cfg.pin,
            || {
                let node = domain.node();
                let service = service(&node, &name, size, 1);
                let publisher = publisher(&service, size, 1);
                stream_for(duration, size, |m| send(&publisher, m));
                finish(&service, &publisher, size);
            },
            || {
                let node = domain.node();
                let service = service(&node, &name, size, 1);
                let subscriber = subscriber(&service, size);
                let mut buf = vec![0u8; size];
                count_until(|| {
                    recv_with(&subscriber, |m| {
                        if m.len() != size {
                            return false;
                        }
                        buf.copy_from_slice(m);
                        true
                    })
                })
            },
        )
    }

    fn round_trips(&self, one: &SingleThreaded, size: usize, cfg: &Config) -> Option<Vec<f64>> {
        let n = cfg.round_trips;
        let warmup = shmchan_bench::warmup_round_trips(size, n);
        let mut samples = Vec::with_capacity(n);
        let domain = Domain::create();
        let (ping, pong) = (unique_name("ping"), unique_name("pong"));
        two_processes(
            one,
            cfg.pin,
            || {
                let node = domain.node();
                let (ping, pong) = (
                    service(&node, &ping, size, 1),
                    service(&node, &pong, size, 1),
                );
                let rx = subscriber(&ping, size);
                let tx = publisher(&pong, size, 1);
                while recv_with(&rx, |m| {
                    if m.len() != size {
                        return false;
                    }
                    send(&tx, m);
                    true
                }) {}
            },
            || {
                let node = domain.node();
                let (ping, pong) = (
                    service(&node, &ping, size, 1),
                    service(&node, &pong, size, 1),
                );
                let rx = subscriber(&pong, size);
                let tx = publisher(&ping, size, 1);
                let mut buf = vec![0u8; size];
                for i in 0..n + warmup {
                    stamp(&mut buf, i as u64);
                    let t = Instant::now();
                    send(&tx, &buf);
                    recv_with(&rx, |m| buf.copy_from_slice(m));
                    let dt = t.elapsed();
                    if i >= warmup {
                        samples.push(dt.as_nanos() as f64);
                    }
                }
                finish(&ping, &tx, size);
            },
        );
        samples.sort_by(|a, b| a.total_cmp(b));
        Some(samples)
    }
}

/// iceoryx2 publish-subscribe with `subscribers` subscriber processes
/// (`iceoryx2-bcast-N`): see the module docs.
pub struct Iceoryx2Broadcast {
    /// Subscriber processes.
    pub subscribers: usize,
}

impl Iceoryx2Broadcast {
    /// One run: the publisher streams [`broadcast::mark`]ed samples for
    /// `cfg.duration`; each subscriber copies out and checks every one.
    fn run(&self, one: &SingleThreaded, size: usize, cfg: &Config) -> BroadcastRun {
        let n = self.subscribers;
        let domain = Domain::create();
        let name = unique_name("fanout");
        let duration = cfg.duration;
        broadcast::fan_out(
            one,
            cfg.pin,
            n,
            |_| {
                let node = domain.node();
                let service = service(&node, &name, size, n);
                let subscriber = subscriber(&service, size);
                let mut check = SeqCheck::new(size);
                let mut buf = vec![0u8; size];
                let (got, secs) = count_until(|| {
                    recv_with(&subscriber, |m| {
                        // The end-of-stream sample (another of a wrong
                        // length ends the count short, and fan_out's
                        // total fails).
                        if m.len() != size {
                            return false;
                        }
                        check.message(m);
                        buf.copy_from_slice(m);
                        true
                    })
                });
                std::hint::black_box(&buf);
                SubscriberRun {
                    received: check.received(),
                    missed: 0,
                    msgs_per_s: if secs > 0.0 { got as f64 / secs } else { 0.0 },
                }
            },
            || {
                let node = domain.node();
                let service = service(&node, &name, size, n);
                let publisher = publisher(&service, size, n);
                let r = broadcast::publish_for(duration, size, |m| send(&publisher, m));
                finish(&service, &publisher, size);
                r
            },
        )
    }
}

impl Peer for Iceoryx2Broadcast {
    fn name(&self) -> String {
        format!("iceoryx2-bcast-{}", self.subscribers)
    }

    /// The publisher's messages and seconds (the harness asks for
    /// [`Peer::broadcast`] instead).
    fn throughput(&self, one: &SingleThreaded, size: usize, cfg: &Config) -> (u64, f64) {
        let r = self.run(one, size, cfg);
        let secs = if r.msgs_per_s > 0.0 {
            r.published as f64 / r.msgs_per_s
        } else {
            0.0
        };
        (r.published, secs)
    }

    fn round_trips(&self, _one: &SingleThreaded, _size: usize, _cfg: &Config) -> Option<Vec<f64>> {
        None
    }

    fn broadcast(&self, one: &SingleThreaded, size: usize, cfg: &Config) -> Option<BroadcastRun> {
        Some(self.run(one, size, cfg))
    }
}
