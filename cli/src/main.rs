//! `shmchan`: use and inspect shmchan channels from a shell.

mod args;
#[cfg(feature = "bridge")]
mod bridge;
mod show;
mod stream;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use shmchan::{Channel, Flavor, Key, OpenError, Options, Overflow, SegmentKind, Start};
use shmchan_bench as bench;

use args::KeyArg;

#[derive(Parser)]
#[command(
    name = "shmchan",
    version,
    about = "Cross-process channels in System V shared memory",
    after_help = "Example, a named pipe between two shells:\n  \
        shmchan create /tmp/k\n  \
        shmchan recv /tmp/k > out &\n  \
        seq 1000000 | shmchan send /tmp/k\n  \
        shmchan rm /tmp/k"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// KEY and --proj, shared by the commands that take one channel.
#[derive(clap::Args)]
struct KeyOpts {
    /// The channel's key: an existing path (ftok with --proj) or a number
    /// (0x1234, 4660).
    #[arg(value_parser = args::key)]
    key: KeyArg,
    /// Project id for a path key (ftok's second argument, 1-255).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
    proj: u8,
}

impl KeyOpts {
    fn resolve(&self) -> Result<Key, String> {
        self.key.resolve(self.proj)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create a channel (a segment and a semaphore set) at KEY: SPSC by
    /// default, MPSC with --mpsc, broadcast (one publisher, every
    /// subscriber gets every message) with --broadcast.
    ///
    /// Example: shmchan create /tmp/k --capacity 4M --max-message 64K --mode 660
    ///
    /// Example: shmchan create 0x5eed --broadcast --overwrite --max-subscribers 4
    Create {
        #[command(flatten)]
        key: KeyOpts,
        /// Size of the ring (rounded up to a power of two): 4096, 64K, 1M.
        #[arg(long, default_value = "1M", value_parser = args::size)]
        capacity: usize,
        /// Largest message (default: a quarter of the capacity).
        #[arg(long, value_parser = args::size)]
        max_message: Option<usize>,
        /// Many senders (MPSC) instead of one (SPSC).
        #[arg(long)]
        mpsc: bool,
        /// MPSC: the most senders alive at once.
        #[arg(long, requires = "mpsc")]
        max_senders: Option<usize>,
        /// One publisher, many subscribers (each `recv` is one, and gets
        /// every message published after it joined).
        #[arg(long, conflicts_with_all = ["mpsc", "max_senders"])]
        broadcast: bool,
        /// Broadcast: the publisher never waits; it writes over the oldest
        /// messages, and a subscriber a ring behind is told how many it
        /// missed (default: the publisher waits for the slowest subscriber).
        #[arg(long)]
        overwrite: bool,
        /// Broadcast: the most subscribers alive at once (default 16).
        #[arg(long)]
        max_subscribers: Option<usize>,
        /// Permission bits, octal, of the segment and the semaphore set.
        #[arg(long, default_value = "600", value_parser = args::mode)]
        mode: u32,
    },
    /// Send standard input: one message per line (without the newline),
    /// length-prefixed records with --framed, or one file with --file.
    /// Waits while the channel is full; exits 0 when the input ends.
    ///
    /// Example: seq 1000000 | shmchan send /tmp/k
    Send {
        #[command(flatten)]
        key: KeyOpts,
        /// Read records of a u32 little-endian length and that many bytes.
        #[arg(long, conflicts_with = "file")]
        framed: bool,
        /// Send this whole file as one message (instead of standard input).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Write received messages to standard output, one per line, or as
    /// length-prefixed records with --framed. Exits 0 once every sender
    /// that connected is gone and the channel is drained.
    ///
    /// On a broadcast channel each recv is a subscriber of its own: it gets
    /// every message published after it joined (--from-oldest: from the
    /// oldest still in the ring), whatever the other subscribers read. With
    /// --overwrite, one that fell a ring behind says on stderr how many
    /// messages it missed (`lagged: N messages ...`) and goes on.
    ///
    /// Example: shmchan recv /tmp/k --count 10 --timeout 5s
    ///
    /// Example: shmchan recv 0x5eed --from-oldest
    Recv {
        #[command(flatten)]
        key: KeyOpts,
        /// Write records of a u32 little-endian length and the bytes.
        #[arg(long)]
        framed: bool,
        /// Broadcast: start with the oldest message still in the ring
        /// (default: with the next one published). The other flavors'
        /// receiver always starts with the oldest message not yet received.
        #[arg(long)]
        from_oldest: bool,
        /// Stop after this many messages.
        #[arg(long)]
        count: Option<u64>,
        /// Fail (status 1) when no message comes for this long: 5s, 250ms.
        #[arg(long, value_parser = args::duration)]
        timeout: Option<Duration>,
    },
    /// List the shmchan channels of this machine. A broadcast channel's
    /// FLAVOR says its overflow mode (broadcast/block, broadcast/overwrite),
    /// RECEIVER counts its live subscribers, WAITING is the slowest one's
    /// lag, and each subscriber has a line below it: pid, alive or dead,
    /// position, lag in messages and bytes (or lapped), messages received,
    /// times lagged and messages missed.
    ///
    /// Example: shmchan ls --all
    Ls {
        /// List other programs' segments too, marked foreign.
        #[arg(long)]
        all: bool,
    },
    /// Show one channel in detail: header, positions, counters, endpoints;
    /// broadcast: the overflow mode and a line per subscriber (pid, alive
    /// or dead, position, lag in messages and bytes, messages received,
    /// times lagged, messages missed).
    ///
    /// Example: shmchan stat /tmp/k --watch
    Stat {
        #[command(flatten)]
        key: KeyOpts,
        /// Refresh every second, with message and byte rates.
        #[arg(long)]
        watch: bool,
    },
    /// Remove channels (segment and semaphore set). Refuses segments that
    /// are not shmchan channels, unless --force.
    ///
    /// Example: shmchan rm 0x1234 /tmp/k
    ///
    /// With --force, removes whatever segment and semaphore set are at each
    /// key, and says what they were: a channel whose header was overwritten
    /// (`ls --all` shows it as damaged?), or another program's objects.
    /// Processes still attached keep the memory until they detach; the key
    /// is free at once.
    ///
    /// Example: shmchan rm --force 0x1234
    Rm {
        /// Keys: existing paths (ftok with --proj) or numbers (0x1234).
        #[arg(required = true, value_parser = args::key)]
        keys: Vec<KeyArg>,
        /// Remove whatever segment and semaphore set are at each key,
        /// shmchan channel or not (another program's too), even attached.
        #[arg(long)]
        force: bool,
        /// Project id for path keys.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
        proj: u8,
    },
    /// Remove the channels nobody is attached to and whose creator is
    /// dead (including private ones and half-created ones), and list them.
    ///
    /// Example: shmchan gc --dry-run
    Gc {
        /// List what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only these keys (paths or numbers); default: every channel.
        #[arg(value_parser = args::key)]
        keys: Vec<KeyArg>,
        /// Project id for path keys.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
        proj: u8,
    },
    /// Measure shmchan (SPSC, zero-copy, MPSC with 1, 2 and 4 producers)
    /// against a pipe, Unix stream and seqpacket sockets and the speed
    /// limits (limit-ring, memcpy, a cache line's round trip), producer and
    /// consumer in separate processes: throughput, round trips, the wake-up
    /// of a sleeping receiver and an idle receiver's CPU use.
    ///
    /// Example: shmchan bench --sizes 64,1024 --duration 1
    Bench(bench::Args),
    /// Bridge a channel to NATS, to reach other hosts: `to-nats` is the
    /// channel's receiver and publishes to a subject, `from-nats`
    /// subscribes and sends into a channel. Core NATS (at most once), or
    /// JetStream with --stream (nothing lost or doubled across a bridge
    /// crash or a server restart). NATS's own TLS and authentication
    /// options pass through (--creds, --tls-ca, ...).
    ///
    /// Example: shmchan bridge to-nats /tmp/k --server nats://10.0.0.5:4222 --subject md.ticks --stream TICKS
    #[cfg(feature = "bridge")]
    #[command(subcommand)]
    Bridge(bridge::BridgeCommand),
}

/// What went wrong, said in one line with what to do.
type Fail = String;

/// The one-line message for an `OpenError` at `at`, saying what to do.
pub fn open_failure(e: &OpenError, at: &str, side: &str) -> String {
    match e {
        OpenError::NotFound => {
            format!("no channel at {at}; create one with `shmchan create {at}`")
        }
        OpenError::AlreadyExists => format!(
            "something already exists at {at}; remove it with `shmchan rm {at}` or pick another key"
        ),
        OpenError::PermissionDenied => format!(
            "permission denied for the channel at {at}; run as its owner, or have it created with a wider --mode"
        ),
        OpenError::NotAChannel => format!(
            "{at} is another program's System V segment, not a shmchan channel; left untouched"
        ),
        OpenError::NotInitialized => format!(
            "the channel at {at} was never finished by its creator; remove it with `shmchan rm {at}`"
        ),
        OpenError::InvalidHeader(h) => format!(
            "the channel at {at} has a damaged header ({h}); remove it with `shmchan rm {at}`"
        ),
        OpenError::IncompatibleVersion { .. } => {
            format!("the channel at {at}: {e}; use the shmchan version that created it")
        }
        OpenError::Busy => format!(
            "the channel at {at} already has a live {side}; an SPSC channel allows one (create it with --mpsc for several senders)"
        ),
        OpenError::KeyCollision { .. } => format!(
            "{at}: {e}; pick another --proj or a numeric key"
        ),
        OpenError::TooManySenders { .. } => {
            format!("the channel at {at}: {e}; create it with a larger --max-senders")
        }
        OpenError::TooManySubscribers { .. } => {
            format!("the channel at {at}: {e}; create it with a larger --max-subscribers")
        }
        e => format!("{at}: {e}"),
    }
}

/// The broadcast-only flags of `create` without --broadcast: a usage
/// error (status 2), in clap's words, saying what to add.
fn check_create_flags(cli: &Cli) {
    let Command::Create {
        broadcast: false,
        overwrite,
        max_subscribers,
        ..
    } = &cli.command
    else {
        return;
    };
    let flag = if *overwrite {
        "--overwrite"
    } else if max_subscribers.is_some() {
        "--max-subscribers"
    } else {
        return;
    };
    let mut cmd = Cli::command();
    // Built: the subcommand's usage line names the binary too.
    cmd.build();
    let create = cmd
        .find_subcommand_mut("create")
        .expect("the create subcommand");
    let bin = create
        .get_bin_name()
        .unwrap_or("shmchan create")
        .to_string();
    create
        .error(
            ErrorKind::MissingRequiredArgument,
            format!(
                "{flag} is for broadcast channels only; add --broadcast ({bin} KEY --broadcast {flag}{})",
                if flag == "--overwrite" { "" } else { " N" }
            ),
        )
        .exit()
}

fn create(
    key: &KeyOpts,
    capacity: usize,
    max_message: Option<usize>,
    flavor: Flavor,
    overflow: Overflow,
    slots: Option<usize>,
    mode: u32,
) -> Result<(), Fail> {
    let k = key.resolve()?;
    let mut opts = Options::default()
        .capacity(capacity)
        .mode(mode)
        .flavor(flavor)
        .overflow(overflow);
    if let Some(m) = max_message {
        opts = opts.max_message(m);
    }
    if let Some(n) = slots {
        opts = match flavor {
            Flavor::Broadcast => opts.max_subscribers(n),
            _ => opts.max_senders(n),
        };
    }
    let at = key.key.to_string();
    let ch = Channel::create(k, opts).map_err(|e| match e {
        OpenError::InvalidOptions(why) => format!("cannot create {at}: {why}"),
        e => open_failure(&e, &at, "endpoint"),
    })?;
    let l = ch.layout();
    let flavor = match l.flavor {
        Flavor::Broadcast => format!(
            "{}, at most {} subscribers",
            show::flavor_word(&l),
            l.sender_slots
        ),
        f => f.to_string(),
    };
    println!(
        "created {at} (key {k}, shmid {}, {flavor}, capacity {}, max message {}, mode {:04o})",
        ch.shm_id(),
        show::bytes(ch.capacity() as u64),
        show::bytes(ch.max_message() as u64),
        mode
    );
    Ok(())
}

/// Whether the segment at `key` is foreign but looks like a damaged
/// channel (`Listing::looks_damaged`).
fn looks_damaged(key: Key) -> bool {
    Channel::list().is_ok_and(|list| list.iter().any(|l| l.key == key && l.looks_damaged()))
}

/// `rm` without --force: the channel at `k`, or a line saying why not.
fn rm_channel(k: Key, at: &str, proj: u8) -> Result<(), Fail> {
    match Channel::remove_key(k) {
        Ok(()) => {
            println!("removed {at} (key {k})");
            Ok(())
        }
        Err(OpenError::NotAChannel) if looks_damaged(k) => {
            let proj = if proj == 1 || at == k.to_string() {
                String::new()
            } else {
                format!(" --proj {proj}")
            };
            Err(format!(
                "{at} looks like a damaged shmchan channel (not our magic word, but a channel's size and 4 semaphores at its key); left untouched; `shmchan rm --force{proj} {at}` removes both"
            ))
        }
        Err(e) => Err(open_failure(&e, at, "endpoint")),
    }
}

/// `rm --force`: whatever is at `k`, said in one line.
fn rm_forced(k: Key, at: &str) -> Result<(), Fail> {
    let at = if at == k.to_string() {
        format!("key {k}")
    } else {
        format!("{at} (key {k})")
    };
    let r = Channel::remove_key_forced(k).map_err(|e| match e {
        OpenError::NotFound => format!("nothing at {at}: no segment and no semaphore set"),
        OpenError::PermissionDenied => {
            format!("permission denied removing what is at {at}; run as its owner or creator")
        }
        e => format!("{at}: {e}"),
    })?;
    let seg = r.segment.map(|s| {
        let magic = s.magic.map_or_else(String::new, magic_word);
        let kind = match s.kind {
            SegmentKind::Channel => "channel".to_string(),
            SegmentKind::Initializing => "half-created channel".to_string(),
            SegmentKind::Damaged => format!("damaged channel{magic}"),
            SegmentKind::Foreign => format!("foreign{magic}"),
            SegmentKind::Unreadable => "unreadable".to_string(),
        };
        format!(
            "segment {} ({} bytes, {kind}, {} attached)",
            s.shm_id, s.size, s.attached
        )
    });
    let set = r.sems.map(|s| {
        let plural = if s.nsems == 1 { "" } else { "s" };
        format!("semaphore set {} ({} semaphore{plural})", s.sem_id, s.nsems)
    });
    match (seg, set) {
        (Some(seg), Some(set)) => println!("removed {seg} and {set} at {at}"),
        (Some(seg), None) => println!("removed {seg} at {at}; no semaphore set there"),
        (None, Some(set)) => println!("removed {set} at {at}; no segment there"),
        (None, None) => println!("removed nothing at {at}"),
    }
    Ok(())
}

/// `: magic 0x…`, and the eight bytes as text when they are printable.
fn magic_word(m: u64) -> String {
    let b = m.to_ne_bytes();
    if b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
        format!(": magic {m:#018x} ({:?})", String::from_utf8_lossy(&b))
    } else {
        format!(": magic {m:#018x}")
    }
}

fn rm(keys: &[KeyArg], force: bool, proj: u8) -> Result<(), Fail> {
    let mut failures = Vec::new();
    for key in keys {
        let at = key.to_string();
        let r = key.resolve(proj).and_then(|k| {
            if force {
                rm_forced(k, &at)
            } else {
                rm_channel(k, &at, proj)
            }
        });
        if let Err(e) = r {
            failures.push(e);
        }
    }
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.remove(0)),
        _ => {
            let last = failures.pop().unwrap_or_default();
            for f in failures {
                eprintln!("shmchan: {f}");
            }
            Err(last)
        }
    }
}

fn gc(dry_run: bool, keys: &[KeyArg], proj: u8) -> Result<(), Fail> {
    let only = keys
        .iter()
        .map(|k| k.resolve(proj))
        .collect::<Result<Vec<Key>, _>>()?;
    let listing = Channel::list().map_err(|e| format!("cannot read the segment list: {e}"))?;
    let mut failed = None;
    let mut n = 0;
    for l in listing {
        if !l.is_garbage() || !(only.is_empty() || only.contains(&l.key)) {
            continue;
        }
        n += 1;
        let what = format!(
            "key {} shmid {} ({}, creator {} gone, nobody attached)",
            l.key,
            l.shm_id,
            show::state_word(&l.found),
            l.creator_pid
        );
        if dry_run {
            println!("would remove {what}");
            continue;
        }
        match l.remove() {
            Ok(()) => println!("removed {what}"),
            Err(e) => failed = Some(format!("removing {what}: {e}")),
        }
    }
    if n == 0 {
        println!("nothing to remove");
    }
    failed.map_or(Ok(()), Err)
}

fn run(cli: Cli) -> Result<(), Fail> {
    match cli.command {
        Command::Create {
            key,
            capacity,
            max_message,
            mpsc,
            max_senders,
            broadcast,
            overwrite,
            max_subscribers,
            mode,
        } => {
            let flavor = if broadcast {
                Flavor::Broadcast
            } else if mpsc {
                Flavor::Mpsc
            } else {
                Flavor::Spsc
            };
            let overflow = if overwrite {
                Overflow::Overwrite
            } else {
                Overflow::Block
            };
            let slots = max_senders.or(max_subscribers);
            create(&key, capacity, max_message, flavor, overflow, slots, mode)
        }
        Command::Send { key, framed, file } => stream::send(&key, framed, file.as_deref()),
        Command::Recv {
            key,
            framed,
            from_oldest,
            count,
            timeout,
        } => {
            let start = if from_oldest {
                Start::Oldest
            } else {
                Start::Newest
            };
            stream::recv(&key, framed, start, count, timeout)
        }
        Command::Ls { all } => show::ls(all),
        Command::Stat { key, watch } => show::stat(&key, watch),
        Command::Rm { keys, force, proj } => rm(&keys, force, proj),
        Command::Gc {
            dry_run,
            keys,
            proj,
        } => gc(dry_run, &keys, proj),
        #[cfg(feature = "bridge")]
        Command::Bridge(cmd) => bridge::run(cmd),
        Command::Bench(args) => {
            let cfg = args.config().unwrap_or_else(|e| {
                eprintln!("shmchan: {e}");
                std::process::exit(2)
            });
            // SAFETY: the tool's main thread, and it starts no other.
            let one = unsafe { bench::SingleThreaded::new() };
            let rows = bench::run(&one, &cfg, bench::progress_line());
            bench::progress_end();
            args.print(&rows);
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // Usage errors exit with 2 (clap's convention), failures with 1.
    let cli = Cli::parse();
    check_create_flags(&cli);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmchan: {e}");
            ExitCode::FAILURE
        }
    }
}
