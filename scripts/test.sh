#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, clippy, unit, integration
# and doc tests of every workspace crate (the library, cli/ with the NATS
# bridge's end-to-end tests, bridge/, bench/, and the
# fuzz corpora replayed by fuzz/support/), a build of the peers benchmark,
# the loom models (and proof that they can fail), a short cargo-fuzz smoke
# run of every fuzz target, and the fault and hostile-writer tests again
# under AddressSanitizer.
#
#   scripts/test.sh              everything
#   FUZZ_SECS=60 scripts/test.sh longer fuzz runs (default 20 s per target)
#   SHMCHAN_FAULT_ITERS=5000 scripts/test.sh   longer kill loops (default 200)
#
# Needs: a Rust toolchain; the nightly toolchain for cargo-fuzz and
# AddressSanitizer (falls back to RUSTC_BOOTSTRAP=1 on stable); installs
# cargo-fuzz if it is missing, and nats-server (Debian's package, for the
# NATS bridge's tests, which start their own on loopback) when it is
# missing and apt-get can install it.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECS=${FUZZ_SECS:-20}
FUZZ_TARGETS=(header consumer ops)
LOOM_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-2}
LOOM_DEEP=${LOOM_DEEP:-4}
LOOM_DEEP_MPSC=${LOOM_DEEP_MPSC:-3}

step() { printf '\n==> %s\n' "$*"; }

# IPC objects owned by us before the suite: the check at the end compares.
ipc_ids() { ipcs -m | awk 'NR>3 && $2 ~ /^[0-9]+$/ {print "m" $2}'; ipcs -s | awk 'NR>3 && $2 ~ /^[0-9]+$/ {print "s" $2}'; }
before=$(ipc_ids | sort)

if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
    step "installing nats-server"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
# The library, the CLI, the bench harness and the fuzz support (peers is
# linted in its own step below, the loom models under their cfg).
cargo clippy --workspace --exclude peers --all-targets -- -D warnings
RUSTFLAGS="--cfg shmchan_loom" cargo clippy -p loom-tests --all-targets \
    --target-dir target/loom -- -D warnings

step "cargo test (unit, integration, doc tests)"
# peers (the benchmark against other IPC crates) has no tests, and its
# heavy dependencies are built once, in its own step below.
cargo test --workspace --exclude peers

# The peers benchmark is built and linted so that it does not rot, never
# run: it measures, and CI machines are no place for measurements.
step "peers: build and clippy (not run)"
cargo build -p peers
cargo clippy -p peers --all-targets -- -D warnings

step "loom models (--cfg shmchan_loom, LOOM_MAX_PREEMPTIONS=$LOOM_PREEMPTIONS)"
RUSTFLAGS="--cfg shmchan_loom" LOOM_MAX_PREEMPTIONS=$LOOM_PREEMPTIONS \
    cargo test --release -p loom-tests --target-dir target/loom
# The models are small enough to go deeper: bound 4 for all but the MPSC
# models (about a minute and a half, nearly all of it the broadcast
# models), bound 3 for those (about 35 s; at bound 4 they take nearly five
# minutes here, a quarter of CI's time limit: LOOM_DEEP_MPSC=4 runs them
# so).
step "loom models, deeper (LOOM_MAX_PREEMPTIONS=$LOOM_DEEP; MPSC $LOOM_DEEP_MPSC)"
deep_files=()
for f in loom-tests/tests/*.rs; do
    name=$(basename "$f" .rs)
    [ "$name" = mpsc ] || deep_files+=(--test "$name")
done
RUSTFLAGS="--cfg shmchan_loom" LOOM_MAX_PREEMPTIONS=$LOOM_DEEP \
    cargo test --release -p loom-tests --target-dir target/loom "${deep_files[@]}"
RUSTFLAGS="--cfg shmchan_loom" LOOM_MAX_PREEMPTIONS=$LOOM_DEEP_MPSC \
    cargo test --release -p loom-tests --target-dir target/loom --test mpsc

# Runs loom models (the cargo test arguments name them) under a mutant
# ordering and requires them to fail as a model catches it; prints which
# tests caught it.
#   mutant_caught_by CFG BOUND PATTERN MUST WHAT ARGS...
# CFG: the mutant's cfg (--cfg CFG beside --cfg shmchan_loom); BOUND: the
# preemption bound; PATTERN: what a catch prints (grep -E: a data race loom
# found, or a model's own assertion); MUST: the tests that must each catch
# it (space-separated, may be empty); WHAT: the models' name for messages.
mutant_caught_by() {
    local cfg=$1 bound=$2 pattern=$3 must=$4 what=$5
    shift 5
    local log caught t
    log=$(mktemp)
    if RUSTFLAGS="--cfg shmchan_loom --cfg $cfg" LOOM_MAX_PREEMPTIONS=$bound \
        cargo test --release -p loom-tests --target-dir target/loom-mutant --no-fail-fast "$@" >"$log" 2>&1; then
        tail -n 30 "$log"
        echo "FAIL: the $what models passed with the mutant ordering; they cannot catch it" >&2
        exit 1
    fi
    if ! grep -Eq "$pattern" "$log"; then
        tail -n 40 "$log"
        echo "FAIL: the $what mutant run failed, but not as a model catches it ($pattern): build error, spin-out?" >&2
        exit 1
    fi
    caught=$(awk -v pat="$pattern" '/^---- .* stdout ----$/ {t = $2} $0 ~ pat && t {print t; t = ""}' "$log")
    for t in $must; do
        if ! grep -qx "$t" <<<"$caught"; then
            tail -n 40 "$log"
            echo "FAIL: $t did not catch the $what mutant" >&2
            exit 1
        fi
    done
    sed 's/^/    caught by: /' <<<"$caught"
    rm -f "$log"
}

# The SPSC and MPSC mutant (--cfg shmchan_mutant): caught by a data race.
mutant_caught() {
    mutant_caught_by shmchan_mutant "$LOOM_PREEMPTIONS" "Causality violation" "" "$@"
}

step "loom models must catch the mutant (--cfg shmchan_mutant)"
# The SPSC models (every file but mpsc.rs: broadcast records are SPSC
# records) and the MPSC models, each on their own: the mutant weakens both
# rings' publish.
spsc_models=()
for f in loom-tests/tests/*.rs; do
    t=$(basename "$f" .rs)
    [ "$t" = mpsc ] || spsc_models+=(--test "$t")
done
mutant_caught SPSC "${spsc_models[@]}"
mutant_caught MPSC --test mpsc

step "broadcast models must catch the mutant (--cfg shmchan_mutant_broadcast)"
# Two orderings of the broadcast publisher, each caught by its own model
# (see loom-tests/tests/broadcast.rs): the Release fence after its store of
# front, which the overwrite model catches as a torn message accepted (or
# a later lap's bytes read as a header), and the Acquire of its load of
# joins, which the joiner model catches as a data race (or a wrong
# payload, or its subscriber lapped in Block mode), at a preemption bound
# of 3 (one more than the default).
broadcast_bound=$((LOOM_PREEMPTIONS > 3 ? LOOM_PREEMPTIONS : 3))
mutant_caught_by shmchan_mutant_broadcast "$broadcast_bound" \
    "Causality violation|accepted a torn message|found a broken record|wrong payload|lapped a joined subscriber" \
    "overwrite_a_lapped_subscriber_never_accepts_a_torn_message a_joiner_gets_every_message_after_its_start" \
    broadcast --test broadcast

step "cargo-fuzz smoke run (${FUZZ_SECS} s per target)"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi
for t in "${FUZZ_TARGETS[@]}"; do
    scratch=$(mktemp -d)
    # New inputs go to the scratch directory; the seeds are read only.
    "${fuzz[@]}" run "$t" "$scratch" "fuzz/corpus/$t" -- \
        -max_total_time="$FUZZ_SECS" -print_final_stats=1 >"$scratch.log" 2>&1 \
        || { tail -n 80 "$scratch.log"; exit 1; }
    tail -n 5 "$scratch.log"
    rm -f "$scratch.log"
    rm -rf "$scratch"
done

step "faults and the hostile writer under AddressSanitizer"
# Runs in a subshell: RUSTC_BOOTSTRAP (set above without a nightly) and the
# sanitizer flags stay here.
(
    if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        asan=(cargo +nightly)
    else
        export RUSTC_BOOTSTRAP=1
        asan=(cargo)
    fi
    RUSTFLAGS="-Zsanitizer=address" "${asan[@]}" test --quiet \
        --target x86_64-unknown-linux-gnu --target-dir target/asan \
        --test hostile --test faults
)

step "no IPC objects left behind"
after=$(ipc_ids | sort)
leaked=$(comm -13 <(echo "$before") <(echo "$after"))
if [ -n "$leaked" ]; then
    ipcs
    echo "FAIL: the suite left IPC objects: $leaked" >&2
    exit 1
fi
echo "ok: ipcs shows nothing new"
echo
echo "all checks passed"
