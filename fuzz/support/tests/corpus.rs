//! Replays the fuzz corpora (`fuzz/corpus/<target>/`) through the bodies of
//! the fuzz targets in this crate, on stable, and keeps the
//! committed seeds (`seed-*` files) in step with the generator below.
//!
//! After a change to the header format or to the seeds, rewrite them with
//!
//! ```text
//! SHMCHAN_WRITE_CORPUS=1 cargo test -p shmchan-fuzz-support --test corpus
//! ```
//!
//! Files the fuzzer adds (named by hash) are replayed too but not checked.
//! Header fields are native-endian, so the seeds are those of a
//! little-endian machine.

use std::collections::BTreeSet;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;

use shmchan::layout::{
    data_offset_for, offset, validate, Flavor, HeaderError, Layout, Overflow, DEFAULT_SENDER_SLOTS,
    DEFAULT_SUBSCRIBERS, HEADER_SIZE, LINE, MAGIC, MAX_CAPACITY, MAX_SENDER_SLOTS, MAX_SUBSCRIBERS,
    STATE_READY,
};
use shmchan_fuzz_support as fuzz_support;

const WRITE_VAR: &str = "SHMCHAN_WRITE_CORPUS";
const SEED_PREFIX: &str = "seed-";

/// `fuzz/`, where cargo-fuzz keeps the corpora and this crate lives.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus_dir(target: &str) -> PathBuf {
    fuzz_dir().join("corpus").join(target)
}

/// One seed of the `header` target, and the outcome `validate` must give.
struct Seed {
    name: String,
    expect: &'static str,
    bytes: Vec<u8>,
}

/// The name of an outcome of `validate`. Exhaustive on purpose: a new
/// error variant fails to compile here until it has a seed.
fn outcome(r: &Result<Layout, HeaderError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(HeaderError::TooShort { .. }) => "too-short",
        Err(HeaderError::BadMagic { .. }) => "bad-magic",
        Err(HeaderError::UnsupportedVersion { .. }) => "bad-version",
        Err(HeaderError::NotReady { .. }) => "not-ready",
        Err(HeaderError::BadFlavor { .. }) => "bad-flavor",
        Err(HeaderError::BadOverflow { .. }) => "bad-overflow",
        Err(HeaderError::BadSenderSlots { .. }) => "bad-sender-slots",
        Err(HeaderError::BadDataOffset { .. }) => "bad-data-offset",
        Err(HeaderError::BadCapacity { .. }) => "bad-capacity",
        Err(HeaderError::SegmentLenMismatch { .. }) => "segment-len-mismatch",
        Err(HeaderError::RegionOutside { .. }) => "region-outside",
        Err(HeaderError::BadPositions { .. }) => "bad-positions",
        Err(HeaderError::MaxMessageTooLarge { .. }) => "max-message-too-large",
    }
}

/// Outcomes `validate` can give (it never checks ring positions).
const OUTCOMES: [&str; 13] = [
    "ok",
    "too-short",
    "bad-magic",
    "bad-version",
    "not-ready",
    "bad-flavor",
    "bad-overflow",
    "bad-sender-slots",
    "bad-data-offset",
    "bad-capacity",
    "segment-len-mismatch",
    "region-outside",
    "max-message-too-large",
];

/// A layout with fixed creator fields (no page size, pid or clock, so the
/// seeds are the same on every run).
fn layout(flavor: Flavor, capacity: usize, max_message: usize, segment_len: usize) -> Layout {
    let sender_slots = match flavor {
        Flavor::Spsc => 0,
        Flavor::Mpsc => DEFAULT_SENDER_SLOTS,
        Flavor::Broadcast => DEFAULT_SUBSCRIBERS,
    };
    // A broadcast channel's lap line comes before its subscriber table.
    let lines = sender_slots + usize::from(flavor == Flavor::Broadcast);
    Layout {
        flavor,
        overflow: Overflow::Block,
        data_offset: data_offset_for(lines),
        sender_slots,
        capacity,
        max_message,
        segment_len,
        creator_pid: 4242,
        creator_uid: 1000,
        created_at: 1_700_000_000,
        sem_id: 0,
        key_path: (0, 0),
        pid_ns: 0,
    }
}

/// A ready 512-byte header copy for `l`.
fn header(l: &Layout) -> Vec<u8> {
    let mut b = vec![0u8; HEADER_SIZE];
    b[..LINE].copy_from_slice(&l.encode());
    b[offset::STATE..offset::STATE + 4].copy_from_slice(&STATE_READY.to_ne_bytes());
    b
}

/// A `header` input: the copy, then the segment length.
fn input(header: &[u8], segment_len: u64) -> Vec<u8> {
    let mut b = header.to_vec();
    b.extend_from_slice(&segment_len.to_ne_bytes());
    b
}

fn set(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

fn header_seeds() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut add = |expect: &'static str, what: &str, bytes: Vec<u8>| {
        let name = format!("{SEED_PREFIX}{:02}-{what}", seeds.len());
        seeds.push(Seed {
            name,
            expect,
            bytes,
        });
    };

    // Accepted images, at the edges of each field's range.
    let ok =
        |flavor, cap, max, seg: usize| input(&header(&layout(flavor, cap, max, seg)), seg as u64);
    add("ok", "spsc-64", ok(Flavor::Spsc, 64, 48, 4096));
    add(
        "ok",
        "spsc-64-tight-segment",
        ok(Flavor::Spsc, 64, 48, HEADER_SIZE + 64),
    );
    add("ok", "spsc-64-max-0", ok(Flavor::Spsc, 64, 0, 4096));
    add("ok", "spsc-4096", ok(Flavor::Spsc, 4096, 1008, 8192));
    add(
        "ok",
        "mpsc-8192-max-100",
        ok(Flavor::Mpsc, 8192, 100, 20480),
    );
    add(
        "ok",
        "spsc-1m-max-full",
        ok(Flavor::Spsc, 1 << 20, (1 << 20) - 16, (1 << 20) + 4096),
    );
    add(
        "ok",
        "mpsc-1t-max-u32",
        ok(
            Flavor::Mpsc,
            MAX_CAPACITY,
            u32::MAX as usize,
            MAX_CAPACITY + 12288,
        ),
    );
    let mut b = header(&layout(Flavor::Spsc, 4096, 1008, 8192));
    set(&mut b, offset::CREATOR_PID, &[0xff; 16]); // pid, uid, created_at
    set(&mut b, offset::SEM_ID, &[0xff; 4]); // any sem_id
    let pad = offset::PID_NS + 8;
    set(&mut b, pad, &[0xa5; LINE - offset::PID_NS - 8]); // line 0 padding
    set(&mut b, LINE, &[0x5a; HEADER_SIZE - LINE]); // ring state lines
    add("ok", "spsc-4096-noise-outside-fields", input(&b, 8192));

    // Too short: the segment length is then the input's length.
    let base = header(&layout(Flavor::Spsc, 4096, 1008, 8192));
    add("too-short", "empty", Vec::new());
    add("too-short", "one-byte", vec![b'S']);
    add("too-short", "magic-only", MAGIC.to_ne_bytes().to_vec());
    add("too-short", "511-bytes", base[..HEADER_SIZE - 1].to_vec());
    add(
        "segment-len-mismatch",
        "header-without-length",
        base.clone(),
    );
    let mut b = base.clone();
    b.extend_from_slice(&[0; 4]);
    add("segment-len-mismatch", "half-a-length", b);

    // Each field wrong in turn, on top of a good spsc-4096 image.
    let mut bad = |expect, what: &str, off: usize, v: &[u8], seg: u64| {
        let mut b = base.clone();
        set(&mut b, off, v);
        add(expect, what, input(&b, seg));
    };
    bad(
        "bad-magic",
        "magic-0",
        offset::MAGIC,
        &0u64.to_ne_bytes(),
        8192,
    );
    bad(
        "bad-magic",
        "magic-swapped",
        offset::MAGIC,
        &MAGIC.swap_bytes().to_ne_bytes(),
        8192,
    );
    bad(
        "bad-version",
        "version-0",
        offset::VERSION,
        &0u32.to_ne_bytes(),
        8192,
    );
    bad(
        "bad-version",
        "version-1",
        offset::VERSION,
        &1u32.to_ne_bytes(),
        8192,
    );
    bad(
        "not-ready",
        "state-0",
        offset::STATE,
        &0u32.to_ne_bytes(),
        8192,
    );
    bad(
        "not-ready",
        "state-swapped",
        offset::STATE,
        &STATE_READY.swap_bytes().to_ne_bytes(),
        8192,
    );
    bad(
        "bad-flavor",
        "flavor-0",
        offset::FLAVOR,
        &0u32.to_ne_bytes(),
        8192,
    );
    bad(
        "bad-flavor",
        "flavor-4",
        offset::FLAVOR,
        &4u32.to_ne_bytes(),
        8192,
    );
    for v in [0u64, 511, 513, u64::MAX] {
        bad(
            "bad-data-offset",
            &format!("data-offset-{v}"),
            offset::DATA_OFFSET,
            &v.to_ne_bytes(),
            8192,
        );
    }
    for v in [
        0u64,
        32,
        3000,
        (MAX_CAPACITY as u64) << 1,
        1 << 63,
        u64::MAX,
    ] {
        bad(
            "bad-capacity",
            &format!("capacity-{v}"),
            offset::CAPACITY,
            &v.to_ne_bytes(),
            8192,
        );
    }
    bad(
        "segment-len-mismatch",
        "segment-one-more",
        offset::SEGMENT_LEN,
        &8192u64.to_ne_bytes(),
        8193,
    );
    bad(
        "segment-len-mismatch",
        "segment-0",
        offset::SEGMENT_LEN,
        &8192u64.to_ne_bytes(),
        0,
    );
    bad(
        "region-outside",
        "capacity-1m-in-8k",
        offset::CAPACITY,
        &(1u64 << 20).to_ne_bytes(),
        8192,
    );
    bad(
        "region-outside",
        "one-byte-short",
        offset::SEGMENT_LEN,
        &4607u64.to_ne_bytes(),
        4607,
    );
    bad(
        "max-message-too-large",
        "max-capacity-minus-15",
        offset::MAX_MESSAGE,
        &4081u64.to_ne_bytes(),
        8192,
    );
    bad(
        "max-message-too-large",
        "max-u64",
        offset::MAX_MESSAGE,
        &u64::MAX.to_ne_bytes(),
        8192,
    );
    let mut b = header(&layout(Flavor::Mpsc, MAX_CAPACITY, 0, MAX_CAPACITY + 12288));
    set(
        &mut b,
        offset::MAX_MESSAGE,
        &(u64::from(u32::MAX) + 1).to_ne_bytes(),
    );
    add(
        "max-message-too-large",
        "max-past-u32",
        input(&b, (MAX_CAPACITY + 12288) as u64),
    );
    // The sender table: SPSC has none, MPSC 1 to MAX_SENDER_SLOTS, and
    // the data region starts right after it.
    let mut b = base.clone();
    set(&mut b, offset::SENDER_SLOTS, &1u32.to_ne_bytes());
    add("bad-sender-slots", "spsc-with-slots", input(&b, 8192));
    let mpsc = header(&layout(Flavor::Mpsc, 8192, 100, 20480));
    for (what, slots) in [
        ("mpsc-0-slots", 0u32),
        ("mpsc-too-many-slots", MAX_SENDER_SLOTS as u32 + 1),
    ] {
        let mut b = mpsc.clone();
        set(&mut b, offset::SENDER_SLOTS, &slots.to_ne_bytes());
        add("bad-sender-slots", what, input(&b, 20480));
    }
    let mut b = mpsc.clone();
    set(&mut b, offset::SENDER_SLOTS, &1u32.to_ne_bytes());
    add(
        "bad-data-offset",
        "mpsc-1-slot-offset-of-64",
        input(&b, 20480),
    );
    set(
        &mut b,
        offset::DATA_OFFSET,
        &(data_offset_for(1) as u64).to_ne_bytes(),
    );
    add("ok", "mpsc-1-slot", input(&b, 20480));
    // Flavor 3 (broadcast) on an SPSC image: no lap line, no subscriber
    // slots.
    let mut b = base.clone();
    set(&mut b, offset::FLAVOR, &3u32.to_ne_bytes());
    add(
        "bad-sender-slots",
        "flavor-3-without-slots",
        input(&b, 8192),
    );
    // Overflow: 0 or 1 for broadcast, 0 for the others.
    let mut b = base.clone();
    set(&mut b, offset::OVERFLOW, &1u32.to_ne_bytes());
    add("bad-overflow", "spsc-overwrite", input(&b, 8192));
    // Broadcast: the lap line, then 1 to MAX_SUBSCRIBERS subscriber
    // slots, then the data region; block or overwrite.
    let bc = |overflow: u32, slots: usize, seg: usize| {
        let mut b = header(&layout(Flavor::Broadcast, 4096, 1000, seg));
        set(&mut b, offset::OVERFLOW, &overflow.to_ne_bytes());
        set(&mut b, offset::SENDER_SLOTS, &(slots as u32).to_ne_bytes());
        let data = data_offset_for(slots + 1) as u64;
        set(&mut b, offset::DATA_OFFSET, &data.to_ne_bytes());
        b
    };
    add(
        "ok",
        "broadcast-block",
        input(&bc(0, DEFAULT_SUBSCRIBERS, 8192), 8192),
    );
    add(
        "ok",
        "broadcast-overwrite-1-slot",
        input(&bc(1, 1, 8192), 8192),
    );
    let seg = data_offset_for(MAX_SUBSCRIBERS + 1) + 4096;
    add(
        "ok",
        "broadcast-most-slots",
        input(&bc(1, MAX_SUBSCRIBERS, seg), seg as u64),
    );
    add(
        "bad-overflow",
        "broadcast-overflow-2",
        input(&bc(2, 1, 8192), 8192),
    );
    add(
        "bad-sender-slots",
        "broadcast-0-slots",
        input(&bc(0, 0, 8192), 8192),
    );
    add(
        "bad-sender-slots",
        "broadcast-too-many-slots",
        input(&bc(0, MAX_SUBSCRIBERS + 1, 1 << 20), 1 << 20),
    );
    // The data offset an MPSC table of the same size would have (no lap
    // line).
    let mut b = bc(0, 4, 8192);
    set(
        &mut b,
        offset::DATA_OFFSET,
        &(data_offset_for(4) as u64).to_ne_bytes(),
    );
    add(
        "bad-data-offset",
        "broadcast-without-lap-line",
        input(&b, 8192),
    );
    seeds
}

/// Runs `body` on every file of `dir`, naming the file that panics.
fn replay(dir: &Path, body: fn(&[u8])) -> usize {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in &files {
        let data = fs::read(f).unwrap();
        if panic::catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            panic!("{} fails the fuzz target", f.display());
        }
    }
    files.len()
}

/// Named seeds: (file name, bytes).
type Seeds = Vec<(String, Vec<u8>)>;
/// A target: its name, its body and its seeds.
type Target = (&'static str, fn(&[u8]), Seeds);

/// The targets, their bodies and their seeds.
fn targets() -> Vec<Target> {
    let named = |seeds: Seeds| {
        seeds
            .into_iter()
            .enumerate()
            .map(|(i, (n, b))| (format!("{SEED_PREFIX}{i:02}-{n}"), b))
            .collect()
    };
    vec![
        (
            "header",
            fuzz_support::header as fn(&[u8]),
            header_seeds()
                .into_iter()
                .map(|s| (s.name, s.bytes))
                .collect(),
        ),
        (
            "consumer",
            fuzz_support::consumer,
            named(fuzz_support::consumer_seeds()),
        ),
        ("ops", fuzz_support::ops, named(fuzz_support::ops_seeds())),
    ]
}

/// In write mode (`SHMCHAN_WRITE_CORPUS` set), rewrites the seeds once,
/// before any test of this file reads the corpus.
fn write_seeds_if_asked() {
    static ONCE: Once = Once::new();
    if std::env::var_os(WRITE_VAR).is_none() {
        return;
    }
    ONCE.call_once(|| {
        for (target, _, seeds) in targets() {
            let dir = corpus_dir(target);
            let names: BTreeSet<&str> = seeds.iter().map(|s| s.0.as_str()).collect();
            fs::create_dir_all(&dir).unwrap();
            for old in committed_seeds(&dir)
                .iter()
                .filter(|n| !names.contains(n.as_str()))
            {
                fs::remove_file(dir.join(old)).unwrap();
            }
            for (name, bytes) in &seeds {
                fs::write(dir.join(name), bytes).unwrap();
            }
            eprintln!("wrote {} seeds to {}", seeds.len(), dir.display());
        }
    });
}

/// The names of the `seed-*` files in `dir`.
fn committed_seeds(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(SEED_PREFIX))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn corpora_replay() {
    write_seeds_if_asked();
    for (target, body, seeds) in targets() {
        let n = replay(&corpus_dir(target), body);
        assert!(n >= seeds.len(), "only {n} files in the {target} corpus");
        // The seeds themselves, from memory: the targets accept them.
        for (name, bytes) in &seeds {
            if panic::catch_unwind(AssertUnwindSafe(|| body(bytes))).is_err() {
                panic!("{target} seed {name} fails the target");
            }
        }
    }
}

#[test]
fn header_seeds_give_their_outcomes_and_cover_every_check() {
    let mut seen = BTreeSet::new();
    for s in header_seeds() {
        let (copy, segment_len) = fuzz_support::split_header_input(&s.bytes);
        let got = outcome(&validate(copy, segment_len));
        assert_eq!(got, s.expect, "seed {}", s.name);
        seen.insert(got);
    }
    let missing: Vec<_> = OUTCOMES.iter().filter(|o| !seen.contains(*o)).collect();
    assert!(missing.is_empty(), "no seed for {missing:?}");
}

/// Inputs on which a target once failed (named after the bug), kept as
/// regression tests: `fuzz/regressions/<target>/`.
#[test]
fn regressions_replay() {
    let root = fuzz_dir().join("regressions");
    let mut total = 0;
    for (target, body, _) in targets() {
        let dir = root.join(target);
        if dir.is_dir() {
            total += replay(&dir, body);
        }
    }
    // The consumer target found bugs: positions near 2^64, a forged
    // waiter count, and two in broadcast subscribers (a forged lap that
    // went on for ever, forged lag statistics that overflowed).
    assert!(total >= 1, "no regression inputs under {}", root.display());
}

#[test]
fn seeds_are_current() {
    write_seeds_if_asked();
    let hint = format!("run `{WRITE_VAR}=1 cargo test -p shmchan-fuzz-support --test corpus`");
    for (target, _, seeds) in targets() {
        let dir = corpus_dir(target);
        let names: BTreeSet<&str> = seeds.iter().map(|s| s.0.as_str()).collect();
        for (name, bytes) in &seeds {
            let on_disk = fs::read(dir.join(name)).unwrap_or_default();
            assert!(
                &on_disk == bytes,
                "{target} seed {name} is missing or stale: {hint}"
            );
        }
        let stale: Vec<_> = committed_seeds(&dir)
            .into_iter()
            .filter(|n| !names.contains(n.as_str()))
            .collect();
        assert!(stale.is_empty(), "stale {target} seeds {stale:?}: {hint}");
    }
}
