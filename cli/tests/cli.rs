//! The `shmchan` tool, end to end: the binary spawned as a process on real
//! channels (create, send, recv, ls, stat, rm, gc), and every error path
//! with its message and exit status (2 for usage, 1 for failures).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use common::{plain_segment, sem_at, shm_at, unique_key, with_raw_segment, KeyGuard, Rng};
use shmchan::{Channel, Found, Key, Options};

fn shmchan() -> Command {
    Command::cargo_bin("shmchan").expect("the shmchan binary")
}

/// Runs `shmchan args…` to completion (at most 60 s).
fn run(args: &[&str]) -> Output {
    let child = shmchan()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmchan");
    finish(child, Duration::from_secs(60))
}

/// Waits for `child` at most `limit`, killing it (and failing) past that.
fn finish(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "shmchan did not finish within {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts exit status `code` and one line on stderr containing `text`.
fn fails_with(o: &Output, code: i32, text: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(text), "{text:?} not in stderr: {err}");
    if code == 1 {
        assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
        assert!(err.starts_with("shmchan: "), "{err}");
    }
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "status {:?}, stderr: {}",
        o.status,
        stderr(o)
    );
}

fn hex(key: Key) -> String {
    format!("{:#x}", key.as_raw() as u32)
}

/// A fresh key and a guard that removes whatever ends up there.
fn fresh_key() -> (Key, String, KeyGuard) {
    let key = unique_key();
    (key, hex(key), KeyGuard(key))
}

/// A file under the temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, content: &[u8]) -> TempFile {
        let p = std::env::temp_dir().join(format!(
            "shmchan-cli-{tag}-{}-{}",
            std::process::id(),
            common::mono_ns()
        ));
        std::fs::write(&p, content).expect("write a temp file");
        TempFile(p)
    }
    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Waits until the channel at `key` has a live receiver.
fn await_receiver(key: Key) {
    assert!(
        common::wait_until(Duration::from_secs(10), || Channel::inspect(key)
            .map(|s| s.receivers == Some(1))
            .unwrap_or(false)),
        "the receiver never connected"
    );
}

#[test]
fn named_pipe_moves_a_million_lines() {
    let keyfile = TempFile::new("key", b"");
    let key = Key::ftok(keyfile.path(), 1).expect("ftok");
    let _guard = KeyGuard(key);
    let mut input = Vec::new();
    for i in 1..=1_000_000u32 {
        writeln!(input, "{i}").unwrap();
    }
    let infile = TempFile::new("in", &input);
    ok(&run(&["create", keyfile.path(), "--capacity", "256K"]));
    // Output to a file: a pipe nobody reads until the end would fill up.
    let outfile = TempFile::new("out", b"");
    let recv = shmchan()
        .args(["recv", keyfile.path()])
        .stdout(std::fs::File::create(&outfile.0).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn recv");
    await_receiver(key);
    let send = shmchan()
        .args(["send", keyfile.path()])
        .stdin(std::fs::File::open(&infile.0).expect("open input"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn send");
    let sent = finish(send, Duration::from_secs(120));
    ok(&sent);
    ok(&finish(recv, Duration::from_secs(120)));
    let got = std::fs::read(&outfile.0).unwrap();
    assert_eq!(got.len(), input.len(), "bytes received");
    assert!(got == input, "the lines differ");
    let st = Channel::inspect(key).expect("inspect");
    assert_eq!(st.counters.sent_messages, 1_000_000);
    assert_eq!(st.counters.received_messages, 1_000_000);
    assert_eq!(st.counters.waiting(), 0);
    ok(&run(&["rm", keyfile.path()]));
    assert_eq!(shm_at(key), None);
    assert_eq!(sem_at(key), None);
}

#[test]
fn framed_records_of_random_bytes_round_trip() {
    let (key, k, _guard) = fresh_key();
    ok(&run(&[
        "create",
        &k,
        "--capacity",
        "64K",
        "--max-message",
        "8K",
    ]));
    let mut rng = Rng::new();
    let mut input = Vec::new();
    let mut records = 0;
    for i in 0..3000 {
        // Empty records, and lengths up to the maximum, included.
        let len = match i % 100 {
            0 => 0,
            1 => 8192,
            _ => (rng.next() % 8193) as usize,
        };
        input.extend_from_slice(&(len as u32).to_le_bytes());
        input.extend(rng.bytes(len));
        records += 1;
    }
    let infile = TempFile::new("framed", &input);
    let outfile = TempFile::new("framed-out", b"");
    let recv = shmchan()
        .args(["recv", &k, "--framed", "--count", &records.to_string()])
        .stdout(std::fs::File::create(&outfile.0).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn recv");
    let send = shmchan()
        .args(["send", &k, "--framed"])
        .stdin(std::fs::File::open(&infile.0).expect("open"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn send");
    ok(&finish(send, Duration::from_secs(60)));
    ok(&finish(recv, Duration::from_secs(60)));
    assert!(
        std::fs::read(&outfile.0).unwrap() == input,
        "framed records differ"
    );

    // From here a receiver of this process reads: once a receiver has left
    // (the `recv` above), a sender is told the channel is disconnected,
    // and a `recv` started after every sender left drains and exits.
    let ch = Channel::open(key).unwrap();
    let mut rx = ch.receiver().unwrap();

    // --file: a whole file is one message.
    let file = TempFile::new("file", &rng.bytes(5000));
    ok(&run(&["send", &k, "--file", file.path()]));
    let body = std::fs::read(&file.0).unwrap();
    let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(got[..] == body[..], "--file content differs");
    drop(got);

    // A truncated frame is an error, and nothing of it is sent.
    let mut cut = 100u32.to_le_bytes().to_vec();
    cut.extend([7u8; 40]);
    let cutfile = TempFile::new("cut", &cut);
    let o = shmchan()
        .args(["send", &k, "--framed"])
        .stdin(std::fs::File::open(&cutfile.0).unwrap())
        .output()
        .unwrap();
    fails_with(&o, 1, "input ends inside record 1");
    drop(rx); // stores its counts
    let st = Channel::inspect(key).unwrap();
    assert_eq!(st.counters.waiting(), 0, "a torn record was sent");
}

#[test]
fn ls_and_stat_show_the_channel_and_its_counters() {
    let (key, k, _guard) = fresh_key();
    ok(&run(&[
        "create",
        &k,
        "--mpsc",
        "--capacity",
        "128K",
        "--mode",
        "640",
    ]));
    let o = shmchan()
        .args(["send", &k])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(b"one\ntwo\nthree\nfour\nfive\n")?;
            c.wait_with_output()
        })
        .unwrap();
    ok(&o);

    let ls = run(&["ls"]);
    ok(&ls);
    let text = stdout(&ls);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{key}")))
        .unwrap_or_else(|| panic!("{key} not listed:\n{text}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    // KEY SHMID FLAVOR CAPACITY(2) USED(2) WAITING SENDERS RECEIVER ...
    assert_eq!(cols[1], Channel::inspect(key).unwrap().shm_id.to_string());
    assert_eq!(cols[2], "mpsc");
    assert_eq!(&cols[3..5], ["128", "KiB"]);
    assert_eq!(cols[7], "5", "messages waiting: {line}");
    assert_eq!(cols[8], "0", "senders alive: {line}");
    assert!(line.contains("0640"), "{line}");

    let st = run(&["stat", &k]);
    ok(&st);
    let text = stdout(&st);
    for want in [
        "flavor             mpsc",
        "waiting            5 messages",
        "sent               5 messages, 19 B",
        "received           0 messages",
        "senders            0 alive, 1 ever",
        "receivers          0 alive, 0 ever",
        "mode               0640",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }

    let got = run(&["recv", &k, "--count", "2"]);
    ok(&got);
    assert_eq!(stdout(&got), "one\ntwo\n");
    let text = stdout(&run(&["stat", &k]));
    assert!(
        text.contains("received           2 messages, 6 B"),
        "{text}"
    );
    assert!(text.contains("waiting            3 messages"), "{text}");

    // --watch refreshes with rates until stopped.
    let watch = shmchan()
        .args(["stat", &k, "--watch"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watch.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = finish(watch, Duration::from_secs(10));
    let text = stdout(&out);
    assert!(text.matches("send rate").count() >= 2, "{text}");
    assert!(text.contains("receive rate       0 msgs/s"), "{text}");
}

#[test]
fn rm_and_gc_remove_what_they_should_and_nothing_else() {
    // Created by a process that has exited, nobody attached: garbage.
    let (dead, d, _g1) = fresh_key();
    ok(&run(&["create", &d]));
    // Created by this (living) process: kept.
    let (live, l, _g2) = fresh_key();
    let _ch = Channel::create(live, Options::default()).unwrap();

    let o = run(&["gc", "--dry-run", &d, &l]);
    ok(&o);
    assert!(
        stdout(&o).contains(&format!("would remove key {dead}")),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains(&format!("{live}")), "{}", stdout(&o));
    assert!(shm_at(dead).is_some(), "--dry-run removed something");

    let o = run(&["gc", &d, &l]);
    ok(&o);
    assert!(stdout(&o).contains(&format!("removed key {dead}")));
    assert_eq!(shm_at(dead), None);
    assert_eq!(sem_at(dead), None);
    assert!(shm_at(live).is_some() && sem_at(live).is_some());
    let o = run(&["gc", &d, &l]);
    ok(&o);
    assert!(stdout(&o).contains("nothing to remove"));

    let o = run(&["rm", &l]);
    ok(&o);
    assert_eq!(shm_at(live), None);
    assert_eq!(sem_at(live), None);
    fails_with(&run(&["rm", &l]), 1, "no channel at");
}

#[test]
fn gc_finds_a_private_channel_and_its_semaphores() {
    // A private channel whose creator (a child) died without removing it.
    let (mut r, w) = std::io::pipe().unwrap();
    let mut child = common::spawn(move || {
        let ch = Channel::create(Key::private(), Options::default()).unwrap();
        let mut w = w;
        w.write_all(&ch.shm_id().to_le_bytes()).unwrap();
        w.write_all(&ch.sem_id().to_le_bytes()).unwrap();
        0
    });
    let mut ids = [0u8; 8];
    std::io::Read::read_exact(&mut r, &mut ids).unwrap();
    assert_eq!(child.wait(), 0);
    let shm = i32::from_le_bytes(ids[..4].try_into().unwrap());
    let sem = i32::from_le_bytes(ids[4..].try_into().unwrap());
    let cleanup = scopeguard(move || {
        // SAFETY: IPC_RMID by id; failure (already removed) is ignored.
        unsafe {
            libc::shmctl(shm, libc::IPC_RMID, std::ptr::null_mut());
            libc::semctl(sem, 0, libc::IPC_RMID);
        }
    });
    let list = Channel::list().unwrap();
    let l = list.iter().find(|l| l.shm_id == shm).expect("listed");
    match &l.found {
        Found::Channel(s) => assert_eq!(s.sem_id, Some(sem)),
        other => panic!("{other:?}"),
    }
    assert!(l.is_garbage());
    l.remove().unwrap();
    let gone = |r: i32| r == -1;
    // SAFETY: shmid_ds is plain data; zeroed is a valid value.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT writes into a valid shmid_ds.
    assert!(gone(unsafe { libc::shmctl(shm, libc::IPC_STAT, &mut ds) }));
    // SAFETY: GETVAL takes no fourth argument.
    assert!(gone(unsafe { libc::semctl(sem, 0, libc::GETVAL) }));
    drop(cleanup);
}

/// Runs `f` when dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct G<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for G<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    G(Some(f))
}

/// A creator killed after writing the header and before marking the
/// channel ready (the test hook stalls it there): `shmchan gc` removes the
/// half-created channel, segment and semaphore set.
#[test]
fn gc_removes_a_channel_whose_creator_died_initialising() {
    let (key, k, _guard) = fresh_key();
    let mut creator = common::spawn(move || {
        let opts = Options::default().init_stall(Duration::from_secs(60));
        Channel::create(key, opts).map_or(1, |_| 0)
    });
    let header_written =
        || shm_at(key).is_some() && with_raw_segment(key, |b| b[..8] == *b"SHMCHAN\0");
    assert!(common::wait_until(Duration::from_secs(10), header_written));
    creator.kill();
    let o = run(&["gc", &k]);
    ok(&o);
    let text = stdout(&o);
    assert!(text.contains(&format!("removed key {key}")), "{text}");
    assert!(text.contains("half-created"), "{text}");
    assert_eq!(shm_at(key), None);
    assert_eq!(sem_at(key), None);
}

#[test]
fn foreign_segments_are_never_touched() {
    let (key, k, _guard) = fresh_key();
    let id = plain_segment(key, 4096);
    with_raw_segment(key, |b| b.fill(0xa5));
    let untouched = || {
        assert_eq!(shm_at(key), Some(id), "the foreign segment is gone");
        with_raw_segment(key, |b| assert!(b.iter().all(|&x| x == 0xa5), "written"));
    };
    fails_with(&run(&["stat", &k]), 1, "not a shmchan channel");
    fails_with(&run(&["rm", &k]), 1, "not a shmchan channel");
    fails_with(&run(&["send", &k]), 1, "not a shmchan channel");
    fails_with(&run(&["recv", &k]), 1, "not a shmchan channel");
    untouched();
    let o = run(&["ls"]);
    ok(&o);
    assert!(
        !stdout(&o).contains(&format!("{key}")),
        "listed without --all"
    );
    let o = run(&["ls", "--all"]);
    ok(&o);
    let text = stdout(&o);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{key}")))
        .unwrap_or_else(|| panic!("not in ls --all:\n{text}"));
    assert!(line.contains("foreign"), "{line}");
    let o = run(&["gc", &k]);
    ok(&o);
    assert!(stdout(&o).contains("nothing to remove"));
    untouched();
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    fails_with(&run(&["stat", "0xzz"]), 2, "not a hexadecimal key");
    fails_with(&run(&["stat", "0"]), 2, "IPC_PRIVATE");
    fails_with(
        &run(&["create", "0x1234", "--capacity", "12X"]),
        2,
        "unknown unit",
    );
    fails_with(
        &run(&["create", "0x1234", "--mode", "999"]),
        2,
        "octal mode",
    );
    fails_with(
        &run(&["recv", "0x1234", "--timeout", "soon"]),
        2,
        "not a duration",
    );
    fails_with(&run(&["frobnicate"]), 2, "unrecognized subcommand");
    fails_with(
        &run(&["stat", "/no/such/path/for/shmchan"]),
        1,
        "no such file or directory",
    );
    let (_key, k, _guard) = fresh_key();
    fails_with(&run(&["stat", &k]), 1, "no channel at");
    fails_with(&run(&["send", &k]), 1, "create one with `shmchan create");
    ok(&run(&["create", &k]));
    fails_with(&run(&["create", &k]), 1, "already exists");
    fails_with(
        &run(&[
            "create",
            &hex(unique_key()),
            "--capacity",
            "64",
            "--max-message",
            "1K",
        ]),
        1,
        "cannot create",
    );
}

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in ["create", "send", "recv", "ls", "stat", "rm", "gc", "bench"] {
        let o = run(&[cmd, "--help"]);
        ok(&o);
        assert!(
            stdout(&o).contains("Example"),
            "{cmd} --help:\n{}",
            stdout(&o)
        );
    }
    let o = run(&["--help"]);
    ok(&o);
    for cmd in ["create", "send", "recv", "ls", "stat", "rm", "gc", "bench"] {
        assert!(stdout(&o).contains(cmd));
    }
}

#[test]
fn recv_honours_count_and_timeout() {
    // --timeout on a channel nobody sends to.
    let (_key0, k0, _guard0) = fresh_key();
    ok(&run(&["create", &k0]));
    let start = Instant::now();
    let o = run(&["recv", &k0, "--timeout", "300ms"]);
    let took = start.elapsed();
    fails_with(&o, 1, "no message came");
    assert!(took >= Duration::from_millis(300), "gave up after {took:?}");
    // --count on one a sender filled before any receiver came (once a
    // receiver has left, senders are told the channel is disconnected).
    let (_key, k, _guard) = fresh_key();
    ok(&run(&["create", &k]));
    let mut send = shmchan()
        .args(["send", &k])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    send.stdin.take().unwrap().write_all(b"a\nb\nc\n").unwrap();
    ok(&finish(send, Duration::from_secs(30)));
    let o = run(&["recv", &k, "--count", "2", "--timeout", "5s"]);
    ok(&o);
    assert_eq!(stdout(&o), "a\nb\n");
    // Every sender gone, one message left: it comes, then status 0.
    let o = run(&["recv", &k, "--timeout", "5s"]);
    ok(&o);
    assert_eq!(stdout(&o), "c\n");
}

#[test]
fn send_reports_a_gone_receiver_and_a_too_large_line() {
    let (key, k, _guard) = fresh_key();
    ok(&run(&[
        "create",
        &k,
        "--capacity",
        "4K",
        "--max-message",
        "100",
    ]));
    let recv = shmchan()
        .args(["recv", &k, "--count", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    await_receiver(key);
    let lines: Vec<u8> = (0..20_000)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let infile = TempFile::new("many", &lines);
    let send = shmchan()
        .args(["send", &k])
        .stdin(std::fs::File::open(&infile.0).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    ok(&finish(recv, Duration::from_secs(30)));
    let o = finish(send, Duration::from_secs(30));
    fails_with(&o, 1, "is gone (disconnected)");

    let (_key2, k2, _guard2) = fresh_key();
    ok(&run(&[
        "create",
        &k2,
        "--capacity",
        "4K",
        "--max-message",
        "100",
    ]));
    let mut send = shmchan()
        .args(["send", &k2])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = b"short\n".to_vec();
    input.extend([b'x'; 200]);
    input.push(b'\n');
    send.stdin.take().unwrap().write_all(&input).unwrap();
    let o = finish(send, Duration::from_secs(30));
    fails_with(&o, 1, "line 2 is 200 bytes, more than the largest message");
}

/// The binary, copied where any user may run it (the build directory may
/// not be reachable by `nobody`).
fn binary_for_anyone() -> TempFile {
    let src = assert_cmd::cargo::cargo_bin("shmchan");
    let f = TempFile::new("bin", &std::fs::read(src).unwrap());
    std::fs::set_permissions(&f.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    f
}

fn as_user(bin: &Path, uid: u32, gid: u32, args: &[&str]) -> Output {
    let child = Command::new(bin)
        .args(args)
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn as another user");
    finish(child, Duration::from_secs(30))
}

#[test]
fn permission_denied_follows_the_mode() {
    const NOBODY: u32 = 65534;
    let bin = binary_for_anyone();
    for (mode, uid, gid, allowed) in [
        (0o600, NOBODY, NOBODY, false),
        (0o666, NOBODY, NOBODY, true),
        (0o660, NOBODY, 0, true),  // the group (root's) may
        (0o640, NOBODY, 0, false), // the group may only read
    ] {
        let (key, k, _guard) = fresh_key();
        let ch = Channel::create(key, Options::default().mode(mode)).unwrap();
        let mut tx = ch.sender().unwrap();
        tx.send(b"hello").unwrap();
        drop(tx);
        let o = as_user(&bin.0, uid, gid, &["recv", &k, "--count", "1"]);
        if allowed {
            ok(&o);
            assert_eq!(stdout(&o), "hello\n", "mode {mode:o}");
        } else {
            fails_with(&o, 1, "permission denied");
            assert_eq!(Channel::inspect(key).unwrap().counters.waiting(), 1);
        }
    }
}

/// The line of `shmchan ls --all` for `key` (panics if it is not listed).
fn ls_all_line(key: Key) -> String {
    let o = run(&["ls", "--all"]);
    ok(&o);
    let text = stdout(&o);
    text.lines()
        .find(|l| l.starts_with(&format!("{key}")))
        .unwrap_or_else(|| panic!("{key} not in ls --all:\n{text}"))
        .to_string()
}

/// A channel whose magic word another process overwrote: `ls --all` says
/// it looks damaged, `rm` refuses it and points at `--force`, `gc` leaves
/// it, `rm --force` removes the segment and the semaphore set and says
/// what they were.
#[test]
fn rm_force_removes_a_channel_whose_magic_was_overwritten() {
    let (key, k, _guard) = fresh_key();
    // A healthy channel beside it, which nothing here may touch.
    let (other, _o, _g2) = fresh_key();
    let _neighbour = Channel::create(other, Options::default()).unwrap();
    ok(&run(&["create", &k, "--capacity", "64K"]));
    let shm = shm_at(key).expect("the segment");
    let sem = sem_at(key).expect("the semaphore set");
    with_raw_segment(key, |b| b[..8].copy_from_slice(b"NOTOURS!"));

    let line = ls_all_line(key);
    assert!(line.contains("damaged?"), "{line}");
    assert!(!line.contains("foreign"), "{line}");
    fails_with(&run(&["rm", &k]), 1, "--force");
    let o = run(&["gc", &k]);
    ok(&o);
    assert!(stdout(&o).contains("nothing to remove"), "{}", stdout(&o));
    assert_eq!((shm_at(key), sem_at(key)), (Some(shm), Some(sem)));

    let o = run(&["rm", "--force", &k]);
    ok(&o);
    let text = stdout(&o);
    assert_eq!(text.lines().count(), 1, "{text}");
    for want in [
        format!("removed segment {shm} ("),
        "damaged channel: magic ".to_string(),
        "(\"NOTOURS!\")".to_string(),
        "0 attached".to_string(),
        format!("and semaphore set {sem} (4 semaphores)"),
        format!("at key {key}"),
    ] {
        assert!(text.contains(&want), "{want:?} not in {text}");
    }
    assert!(!common::key_in_use(key), "something left at {key}");
    assert!(shm_at(other).is_some() && sem_at(other).is_some());
    fails_with(&run(&["rm", "--force", &k]), 1, "nothing at");
}

/// Another program's segment, still attached, and a set of one semaphore
/// at one key: `rm --force` removes both and says they were foreign and
/// attached.
#[test]
fn rm_force_removes_a_foreign_segment_and_set_even_attached() {
    let (key, k, _guard) = fresh_key();
    let shm = plain_segment(key, 8192);
    let sem = common::plain_semset(key, 1);
    fails_with(&run(&["rm", &k]), 1, "not a shmchan channel");
    let o = with_raw_segment(key, |b| {
        b.fill(0x5a);
        run(&["rm", "--force", &k])
    });
    ok(&o);
    let text = stdout(&o);
    for want in [
        format!(
            "removed segment {shm} (8192 bytes, foreign: magic 0x5a5a5a5a5a5a5a5a (\"ZZZZZZZZ\"), 1 attached)"
        ),
        format!("and semaphore set {sem} (1 semaphore)"),
        format!("at key {key}"),
    ] {
        assert!(text.contains(&want), "{want:?} not in {text}");
    }
    assert!(!common::key_in_use(key), "something left at {key}");

    // A set alone, and a segment alone.
    let sem = common::plain_semset(key, 3);
    let o = run(&["rm", "--force", &k]);
    ok(&o);
    assert!(
        stdout(&o).contains(&format!(
            "removed semaphore set {sem} (3 semaphores) at key {key}"
        )),
        "{}",
        stdout(&o)
    );
    let shm = plain_segment(key, 4096);
    let o = run(&["rm", "--force", &k]);
    ok(&o);
    assert!(
        stdout(&o).contains(&format!("removed segment {shm} (4096 bytes, foreign: magic 0x0000000000000000, 0 attached) at key {key}")),
        "{}",
        stdout(&o)
    );
    assert!(!common::key_in_use(key));
}

/// `ls --all` calls a foreign segment damaged only when it has a channel's
/// size and a set of four semaphores at its key.
#[test]
fn ls_all_calls_damaged_only_a_channel_shaped_foreign_segment() {
    // Non-zero bytes: a zeroed segment beside four semaphores is a
    // half-created channel, not a foreign segment.
    let foreign = |key: Key, size: usize, nsems: Option<i32>| {
        plain_segment(key, size);
        with_raw_segment(key, |b| b.fill(0xa5));
        if let Some(n) = nsems {
            common::plain_semset(key, n);
        }
    };
    // A channel's size (8 KiB: capacity 4096, SPSC) with four semaphores.
    let (a, ka, _ga) = fresh_key();
    foreign(a, 8192, Some(4));
    // The same size, no set; and with a set of one.
    let (b, kb, _gb) = fresh_key();
    foreign(b, 8192, None);
    let (c, kc, _gc) = fresh_key();
    foreign(c, 8192, Some(1));
    // Four semaphores, but no channel has this size (not whole pages, or
    // 3 MiB: too far above any power of two).
    let (d, kd, _gd) = fresh_key();
    foreign(d, 5000, Some(4));
    let (e, ke, _ge) = fresh_key();
    foreign(e, 3 << 20, Some(4));

    let line = ls_all_line(a);
    assert!(line.contains("damaged?"), "{line}");
    for key in [b, c, d, e] {
        let line = ls_all_line(key);
        assert!(
            line.contains("foreign") && !line.contains("damaged"),
            "{line}"
        );
    }
    // `ls` without --all lists none of them, and gc removes none.
    let o = run(&["ls"]);
    ok(&o);
    for key in [a, b, c, d, e] {
        assert!(!stdout(&o).contains(&format!("{key}")), "{}", stdout(&o));
    }
    let o = run(&["gc", &ka, &kb, &kc, &kd, &ke]);
    ok(&o);
    assert!(stdout(&o).contains("nothing to remove"), "{}", stdout(&o));
    for key in [a, b, c, d, e] {
        assert!(shm_at(key).is_some());
    }
}

/// A `shmchan` process in the background, killed and reaped on drop: a
/// failing test leaves none behind (a stopped one included).
struct Bg(Option<Child>);

impl Bg {
    /// Spawns `shmchan args…` with standard output and error piped.
    fn spawn(args: &[&str], stdin: Stdio) -> Bg {
        let child = shmchan()
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shmchan");
        Bg(Some(child))
    }

    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("still running")
    }

    fn pid(&self) -> u32 {
        self.0.as_ref().expect("still running").id()
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, sig).expect("kill");
    }

    /// Waits for the process to end (at most `limit`; see `finish`).
    fn finish(mut self, limit: Duration) -> Output {
        finish(self.0.take().expect("still running"), limit)
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `shmchan stat k` until its output satisfies `done` (at most 20 s),
/// and returns that output; panics with the last one, saying `what`.
fn stat_until(k: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let o = run(&["stat", k]);
        ok(&o);
        let text = stdout(&o);
        if done(&text) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: not shown by `shmchan stat {k}` within 20 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines of a `stat` or `ls` output about subscribers
/// (`subscriber 3 …`, `  subscriber 3: …`).
fn subscriber_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|l| {
        l.trim_start()
            .strip_prefix("subscriber ")
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// The line of a `stat` or `ls` output about the subscriber with `pid`.
fn subscriber_line(text: &str, pid: u32) -> Option<&str> {
    let who = format!(" pid {pid} (");
    subscriber_lines(text).find(|l| l.contains(&who))
}

/// Whether `pid` is listed as a live subscriber that has joined (it has a
/// position, so it gets every message published from now on).
fn joined(text: &str, pid: u32) -> bool {
    subscriber_line(text, pid).is_some_and(|l| l.contains("(alive), position "))
}

/// The number after `name ` in `line` (`lagged 1 time` -> 1).
fn number_after(line: &str, name: &str) -> u64 {
    let at = line
        .find(&format!("{name} "))
        .unwrap_or_else(|| panic!("no {name:?} in {line:?}"));
    line[at + name.len() + 1..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {name:?} in {line:?}"))
}

/// Two `recv --count 3` subscribers of a broadcast channel each get all
/// three messages one `send` publishes; `stat` and `ls` show the flavor,
/// the overflow mode and each subscriber with its pid while it is there;
/// `--from-oldest` replays what the ring still holds; `--timeout` works
/// for a subscriber.
#[test]
fn broadcast_subscribers_each_get_every_message() {
    let (key, k, _guard) = fresh_key();
    let o = run(&["create", &k, "--broadcast", "--max-subscribers", "4"]);
    ok(&o);
    assert!(
        stdout(&o).contains(", broadcast/block, at most 4 subscribers,"),
        "{}",
        stdout(&o)
    );
    // One waits with a timeout, one without (the two ways recv waits).
    let a = Bg::spawn(&["recv", &k, "--count", "3"], Stdio::null());
    let b = Bg::spawn(
        &["recv", &k, "--count", "3", "--timeout", "60s"],
        Stdio::null(),
    );
    let (pa, pb) = (a.pid(), b.pid());
    let text = stat_until(&k, "two joined subscribers", |t| {
        joined(t, pa) && joined(t, pb)
    });
    for want in [
        "flavor             broadcast\n",
        "overflow           block\n",
        "subscriber slots   4\n",
        "subscribers        2 alive, 2 ever\n",
        "waiting            0 messages",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    let line = subscriber_line(&text, pa).unwrap();
    assert!(
        line.contains(&format!(
            "pid {pa} (alive), position 0, lag 0 messages (0 B)"
        )),
        "{line}"
    );
    assert!(line.contains("lagged 0 times, missed 0"), "{line}");

    let ls = run(&["ls"]);
    ok(&ls);
    let text = stdout(&ls);
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("{key}")))
        .unwrap_or_else(|| panic!("{k} not listed:\n{text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[2], "broadcast/block", "{row}");
    assert_eq!(cols[9], "2", "live subscribers (RECEIVER): {row}");
    for pid in [pa, pb] {
        let l = subscriber_line(&text, pid).unwrap_or_else(|| panic!("{pid} not in:\n{text}"));
        assert!(l.starts_with("  subscriber "), "{l}");
        assert!(l.contains("(alive), position 0, lag 0 messages"), "{l}");
    }

    let mut send = Bg::spawn(&["send", &k], Stdio::piped());
    send.child()
        .stdin
        .take()
        .unwrap()
        .write_all(b"one\ntwo\nthree\n")
        .unwrap();
    ok(&send.finish(Duration::from_secs(30)));
    for sub in [a, b] {
        let o = sub.finish(Duration::from_secs(30));
        ok(&o);
        assert_eq!(stdout(&o), "one\ntwo\nthree\n");
        assert_eq!(stderr(&o), "");
    }
    let text = stat_until(&k, "both subscribers gone", |t| {
        subscriber_lines(t).next().is_none()
    });
    for want in [
        "sent               3 messages, 11 B",
        "received           6 messages, 22 B (all subscribers together)",
        "subscribers        0 alive, 2 ever",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }

    // The publisher has left: a new subscriber from the newest message
    // ends at once; one from the oldest gets what the ring still holds.
    let o = run(&["recv", &k, "--timeout", "10s"]);
    ok(&o);
    assert_eq!(stdout(&o), "");
    let o = run(&["recv", &k, "--from-oldest", "--timeout", "10s"]);
    ok(&o);
    assert_eq!(stdout(&o), "one\ntwo\nthree\n");
    let o = run(&["recv", &k, "--from-oldest", "--count", "2"]);
    ok(&o);
    assert_eq!(stdout(&o), "one\ntwo\n");

    // A subscriber of a channel nobody publishes to times out.
    let (_key2, k2, _guard2) = fresh_key();
    ok(&run(&["create", &k2, "--broadcast"]));
    let start = Instant::now();
    let o = run(&["recv", &k2, "--timeout", "300ms"]);
    fails_with(&o, 1, "no message came");
    assert!(start.elapsed() >= Duration::from_millis(300));
}

/// The broadcast flags of `create` without --broadcast, and --broadcast
/// with the MPSC flags: usage errors (status 2) that say what to do, and
/// nothing is created.
#[test]
fn broadcast_flags_need_broadcast() {
    let (key, k, _guard) = fresh_key();
    for (args, text) in [
        (
            &["--overwrite"][..],
            "--overwrite is for broadcast channels only; add --broadcast",
        ),
        (
            &["--max-subscribers", "4"][..],
            "--max-subscribers is for broadcast channels only; add --broadcast",
        ),
        (
            &["--mpsc", "--overwrite"][..],
            "--overwrite is for broadcast channels only",
        ),
        (
            &["--broadcast", "--mpsc"][..],
            "'--broadcast' cannot be used with '--mpsc'",
        ),
        (
            &["--broadcast", "--max-senders", "4"][..],
            "'--broadcast' cannot be used with '--max-senders",
        ),
    ] {
        let mut all = vec!["create", &k];
        all.extend(args);
        let o = run(&all);
        fails_with(&o, 2, text);
        assert!(!common::key_in_use(key), "{all:?} created something");
    }
    // The library's own limit, said as a failure.
    fails_with(
        &run(&["create", &k, "--broadcast", "--max-subscribers", "0"]),
        1,
        "cannot create",
    );
    assert!(!common::key_in_use(key));
}

/// An overwriting broadcast channel and a subscriber (a `recv` held
/// stopped) that reads nothing while the publisher goes on: `stat` shows
/// its lag in messages, then that it was lapped; once it runs again it
/// says on stderr how many messages it missed and goes on from the oldest
/// left, and `stat` shows the lag counted and the messages missed.
#[test]
fn overwrite_shows_a_slow_subscriber_lagging() {
    use nix::sys::signal::Signal;
    let (_key, k, _guard) = fresh_key();
    ok(&run(&[
        "create",
        &k,
        "--broadcast",
        "--overwrite",
        "--capacity",
        "4K",
        "--max-message",
        "100",
    ]));
    let slow = Bg::spawn(&["recv", &k], Stdio::null());
    let pid = slow.pid();
    stat_until(&k, "the subscriber joined", |t| joined(t, pid));
    slow.signal(Signal::SIGSTOP);

    // One publisher, kept alive by the open pipe to its standard input.
    let mut publisher = Bg::spawn(&["send", &k], Stdio::piped());
    let mut input = publisher.child().stdin.take().unwrap();
    for i in 1..=10 {
        writeln!(input, "{i}").unwrap();
    }
    input.flush().unwrap();
    let text = stat_until(&k, "a lag of 10 messages", |t| {
        subscriber_line(t, pid).is_some_and(|l| l.contains(", lag 10 messages ("))
    });
    assert!(text.contains("overflow           overwrite\n"), "{text}");
    assert!(text.contains("waiting            10 messages"), "{text}");
    let line = subscriber_line(&text, pid).unwrap();
    assert!(line.contains("lagged 0 times, missed 0"), "{line}");
    // A broadcast channel has one publisher.
    fails_with(&run(&["send", &k]), 1, "already has a live publisher");

    // Far more than the 4 KiB ring holds (each record takes 16 bytes).
    const TOTAL: u64 = 2000;
    for i in 11..=TOTAL {
        writeln!(input, "{i}").unwrap();
    }
    input.flush().unwrap();
    stat_until(&k, "the subscriber lapped", |t| {
        subscriber_line(t, pid).is_some_and(|l| l.contains(", lapped: lag "))
    });
    let ls = run(&["ls"]);
    ok(&ls);
    let text = stdout(&ls);
    let l = subscriber_line(&text, pid).unwrap_or_else(|| panic!("{pid} not in:\n{text}"));
    assert!(l.contains("(alive), position 0, lapped: lag "), "{l}");
    // Its lag in messages is still known (all it has not read).
    assert!(number_after(l, "lag") > 1000, "{l}");
    assert!(text.contains("broadcast/overwrite"), "{text}");

    slow.signal(Signal::SIGCONT);
    let text = stat_until(&k, "the lag counted", |t| {
        subscriber_line(t, pid).is_some_and(|l| number_after(l, "lagged") >= 1)
    });
    let line = subscriber_line(&text, pid).unwrap();
    let missed = number_after(line, "missed");
    assert!(missed > 0 && missed < TOTAL, "{line}");

    drop(input); // the publisher ends, and so does the subscriber
    ok(&publisher.finish(Duration::from_secs(30)));
    let o = slow.finish(Duration::from_secs(30));
    ok(&o);
    let err = stderr(&o);
    let told: u64 = err
        .lines()
        .map(|l| {
            assert!(l.starts_with("shmchan: lagged: "), "{err}");
            number_after(l, "lagged:")
        })
        .sum();
    assert!(told >= missed, "stderr {err:?}, stat said {missed} missed");
    // What it printed is in order up to the last message, with a gap only
    // where it was told of a lag, and with what it missed makes them all.
    let got: Vec<u64> = stdout(&o).lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(got.last(), Some(&TOTAL), "{got:?}");
    assert_eq!(got.len() as u64 + told, TOTAL, "{got:?} and {told} missed");
    let gaps = got.windows(2).filter(|w| w[1] != w[0] + 1).count();
    assert!(got.windows(2).all(|w| w[1] > w[0]), "{got:?}");
    assert!(gaps < err.lines().count(), "{gaps} gaps, stderr {err:?}");
}
