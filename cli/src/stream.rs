//! `shmchan send` and `shmchan recv`: standard input into a channel, a
//! channel onto standard output.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

use shmchan::{
    Channel, Flavor, OpenError, RecvError, RecvTimeoutError, SendError, Sender, Start, TryRecvError,
};

use crate::{open_failure, Fail, KeyOpts};

/// A sender that counts what it sent, for the error messages.
struct Out {
    tx: Sender,
    at: String,
    sent: u64,
}

/// The message for a failed send of `what`, after `sent` messages to `at`.
fn failure(at: &str, sent: u64, e: SendError, what: &str) -> Fail {
    match e {
            SendError::TooLarge { len, max } => format!(
                "{what} is {len} bytes, more than the largest message of {} ({max} bytes); it was not sent ({} messages were before it); create the channel with a larger --max-message",
                at, sent
            ),
            SendError::Disconnected => format!(
                "the receiver of {at} is gone (disconnected) after {sent} messages; the rest of the input was not sent"
            ),
            SendError::Corrupted(c) => format!(
                "the channel at {at} is damaged ({c}); remove it with `shmchan rm {at}`"
            ),
            e @ SendError::Forked => e.to_string(),
        }
}

impl Out {
    fn put(&mut self, msg: &[u8], what: impl FnOnce() -> String) -> Result<(), Fail> {
        match self.tx.send(msg) {
            Ok(()) => {
                self.sent += 1;
                Ok(())
            }
            Err(e) => Err(failure(&self.at, self.sent, e, &what())),
        }
    }

    /// One framed record from `r` straight into the ring (zero-copy);
    /// false at a clean end of input.
    fn put_frame(&mut self, r: &mut impl Read) -> Result<bool, Fail> {
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match r.read(&mut len[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(format!(
                        "input ends inside the length of record {} (framed records are a u32 little-endian length and that many bytes)",
                        self.sent + 1
                    ))
                }
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading standard input: {e}")),
            }
        }
        let len = u32::from_le_bytes(len) as usize;
        let n = self.sent + 1;
        let (at, sent) = (&self.at, self.sent);
        let mut grant = self
            .tx
            .reserve(len)
            .map_err(|e| failure(at, sent, e, &format!("record {n}")))?;
        // A failed read drops the grant, which publishes nothing.
        r.read_exact(&mut grant).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                format!("input ends inside record {n} (its length said {len} bytes)")
            }
            _ => format!("reading standard input: {e}"),
        })?;
        grant.commit();
        self.sent += 1;
        Ok(true)
    }
}

/// `shmchan send`.
pub fn send(key: &KeyOpts, framed: bool, file: Option<&Path>) -> Result<(), Fail> {
    let k = key.resolve()?;
    let at = key.key.to_string();
    let ch = Channel::open(k).map_err(|e| open_failure(&e, &at, "sender"))?;
    let tx = ch.sender().map_err(|e| match e {
        OpenError::Busy if ch.flavor() == Flavor::Broadcast => format!(
            "the broadcast channel at {at} already has a live publisher; it allows one (for several senders, an MPSC channel: `shmchan create KEY --mpsc`)"
        ),
        e => open_failure(&e, &at, "sender"),
    })?;
    let mut out = Out { tx, at, sent: 0 };
    if let Some(path) = file {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        return out.put(&data, || format!("file {}", path.display()));
    }
    let mut input = BufReader::with_capacity(1 << 16, io::stdin().lock());
    if framed {
        while out.put_frame(&mut input)? {}
        return Ok(());
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading standard input: {e}")),
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let n = out.sent + 1;
        out.put(&line, || format!("line {n}"))?;
    }
}

/// Writes one message: the bytes and a newline, or a framed record.
fn emit(w: &mut impl Write, msg: &[u8], framed: bool) -> io::Result<()> {
    if framed {
        let len = u32::try_from(msg.len()).map_err(io::Error::other)?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(msg)
    } else {
        w.write_all(msg)?;
        w.write_all(b"\n")
    }
}

/// What `recv` does with a failed write: a closed output (as with `| head`)
/// ends quietly; anything else is a failure.
fn output(r: io::Result<()>) -> Result<bool, Fail> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(format!("writing standard output: {e}")),
    }
}

/// A subscriber of an overwriting broadcast fell a ring behind: one line
/// on stderr, and the stream goes on from the oldest message left.
fn lagged(missed: u64) {
    eprintln!(
        "shmchan: lagged: {missed} messages were overwritten before this subscriber read them"
    );
}

/// `shmchan recv`; on a broadcast channel, a subscriber from `start`.
pub fn recv(
    key: &KeyOpts,
    framed: bool,
    start: Start,
    count: Option<u64>,
    timeout: Option<Duration>,
) -> Result<(), Fail> {
    let k = key.resolve()?;
    let at = key.key.to_string();
    let ch = Channel::open(k).map_err(|e| open_failure(&e, &at, "receiver"))?;
    let mut rx = ch
        .receiver_at(start)
        .map_err(|e| open_failure(&e, &at, "receiver"))?;
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let damaged = |c: shmchan::Corrupted| {
        format!("the channel at {at} is damaged ({c}); remove it with `shmchan rm {at}`")
    };
    let mut n = 0u64;
    while count.is_none_or(|c| n < c) {
        // Messages already waiting go out without a flush in between.
        match rx.try_recv() {
            Ok(m) => {
                if !output(emit(&mut out, &m, framed))? {
                    return Ok(());
                }
                n += 1;
                continue;
            }
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Lagged { missed }) => {
                lagged(missed);
                continue;
            }
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Corrupted(c)) => return Err(damaged(c)),
            Err(e @ TryRecvError::Forked) => return Err(e.to_string()),
        }
        // Nothing waiting: what was written goes out before we wait.
        if !output(out.flush())? {
            return Ok(());
        }
        let m = match timeout {
            Some(t) => match rx.recv_timeout(t) {
                Ok(m) => m,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Lagged { missed }) => {
                    lagged(missed);
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no message came from {at} within {t:?} ({n} received)"
                    ))
                }
                Err(RecvTimeoutError::Corrupted(c)) => return Err(damaged(c)),
                Err(e @ RecvTimeoutError::Forked) => return Err(e.to_string()),
            },
            None => match rx.recv() {
                Ok(m) => m,
                Err(RecvError::Disconnected) => break,
                Err(RecvError::Lagged { missed }) => {
                    lagged(missed);
                    continue;
                }
                Err(RecvError::Corrupted(c)) => return Err(damaged(c)),
                Err(e @ RecvError::Forked) => return Err(e.to_string()),
            },
        };
        if !output(emit(&mut out, &m, framed))? {
            return Ok(());
        }
        n += 1;
    }
    output(out.flush()).map(drop)
}
