//! The control plane: a seqpacket socket per client to its pump.
//!
//! Attach and hw_params travel here (with the client's eventfd and the segment's memfd as
//! passed descriptors); audio never does. Either side learns of the other's death at once,
//! from a hang-up on this socket. The socket is in the abstract namespace, so a dead pump
//! leaves nothing behind and binding it is the race-free "one pump per key" lock.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::segment::Segment;
use crate::sys;

pub const PROTO_VERSION: u64 = 1;
const MSG_MAGIC: u32 = 0x4d43_4452; // "RDCM"
const TEXT: usize = 216;

pub const HELLO: u32 = 1;
pub const WELCOME: u32 = 2;
pub const SETUP: u32 = 3;
pub const REPLY: u32 = 4;

/// One control message. Fixed-size and fixed-width, like the segment.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Msg {
    pub magic: u32,
    pub kind: u32,
    /// 0, or a negative errno with `text` explaining it.
    pub status: i32,
    pub slot: u32,
    pub args: [u64; 4],
    pub text: [u8; TEXT],
}

const MSG_BYTES: usize = std::mem::size_of::<Msg>();
const _: () = assert!(MSG_BYTES == 16 + 32 + TEXT);

impl Msg {
    pub fn new(kind: u32) -> Msg {
        Msg {
            magic: MSG_MAGIC,
            kind,
            status: 0,
            slot: 0,
            args: [0; 4],
            text: [0; TEXT],
        }
    }
    pub fn with_text(mut self, s: &str) -> Msg {
        let b = s.as_bytes();
        let n = b.len().min(TEXT - 1);
        self.text[..n].copy_from_slice(&b[..n]);
        self.text[n..].fill(0);
        self
    }
    pub fn error(kind: u32, errno: i32, s: &str) -> Msg {
        let mut m = Msg::new(kind).with_text(s);
        m.status = -errno.abs();
        m
    }
    pub fn text(&self) -> String {
        let end = self.text.iter().position(|b| *b == 0).unwrap_or(TEXT);
        String::from_utf8_lossy(&self.text[..end]).into_owned()
    }
    fn to_bytes(self) -> [u8; MSG_BYTES] {
        let mut out = [0u8; MSG_BYTES];
        out[0..4].copy_from_slice(&self.magic.to_le_bytes());
        out[4..8].copy_from_slice(&self.kind.to_le_bytes());
        out[8..12].copy_from_slice(&self.status.to_le_bytes());
        out[12..16].copy_from_slice(&self.slot.to_le_bytes());
        for (i, a) in self.args.iter().enumerate() {
            out[16 + i * 8..24 + i * 8].copy_from_slice(&a.to_le_bytes());
        }
        out[48..].copy_from_slice(&self.text);
        out
    }
    /// Parses a packet; anything malformed is `None`.
    fn from_bytes(b: &[u8]) -> Option<Msg> {
        if b.len() != MSG_BYTES {
            return None;
        }
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let mut m = Msg::new(u32_at(4));
        if u32_at(0) != MSG_MAGIC {
            return None;
        }
        m.status = u32_at(8) as i32;
        m.slot = u32_at(12);
        for i in 0..4 {
            m.args[i] = u64::from_le_bytes(b[16 + i * 8..24 + i * 8].try_into().unwrap());
        }
        m.text.copy_from_slice(&b[48..]);
        Some(m)
    }
}

pub fn send(sock: &OwnedFd, m: Msg, fd: Option<std::os::fd::BorrowedFd>) -> io::Result<()> {
    sys::send(sock, &m.to_bytes(), fd)
}

/// What came in on a control socket.
pub enum Incoming {
    Msg(Box<Msg>, Option<OwnedFd>),
    /// The peer hung up.
    Closed,
    /// A packet that is not a valid message.
    Garbage,
}

pub fn recv(sock: &OwnedFd) -> io::Result<Incoming> {
    let mut buf = [0u8; MSG_BYTES + 1];
    let (n, fd) = sys::recv(sock, &mut buf)?;
    if n == 0 {
        return Ok(Incoming::Closed);
    }
    Ok(match Msg::from_bytes(&buf[..n]) {
        Some(m) => Incoming::Msg(Box::new(m), fd),
        None => Incoming::Garbage,
    })
}

/// Waits up to `deadline` for a message on a blocking client socket.
pub fn recv_until(sock: &OwnedFd, deadline: Instant) -> io::Result<Incoming> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer"));
        }
        let mut p = [sys::pollfd(sock.as_raw_fd(), libc::POLLIN)];
        if sys::poll(&mut p, left.as_millis().max(1) as i32)? > 0 {
            return recv(sock);
        }
    }
}

/// `bindings` as sent in a SETUP message: `client:device` pairs, comma-separated.
pub fn format_bindings(b: &[(u32, u32)]) -> String {
    b.iter().map(|(c, d)| format!("{c}:{d}")).collect::<Vec<_>>().join(",")
}

/// The inverse of `format_bindings`; anything malformed is refused.
pub fn parse_bindings(s: &str) -> Result<Vec<(u32, u32)>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|p| {
            let (c, d) = p.split_once(':').ok_or_else(|| format!("bad binding \"{p}\""))?;
            let n = |v: &str| v.parse::<u32>().map_err(|_| format!("bad binding \"{p}\""));
            Ok((n(c)?, n(d)?))
        })
        .collect()
}

pub fn socket_name(key: u32) -> String {
    format!("rdmix-{key:08x}")
}

/// An error for alsa-lib: a negative errno and the one line explaining it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub errno: i32,
    pub msg: String,
}

impl Failure {
    pub fn new(errno: i32, msg: impl Into<String>) -> Failure {
        Failure {
            errno: -errno.abs(),
            msg: msg.into(),
        }
    }
}

/// A client's attachment: its control socket, the mapped segment and its slot.
pub struct Attachment {
    pub sock: OwnedFd,
    pub seg: Segment,
    pub slot: usize,
}

fn pump_path(cfg: &Config) -> Result<PathBuf, Failure> {
    if let Some(p) = &cfg.pump {
        return Ok(p.clone());
    }
    let dir = sys::own_object_dir()
        .ok_or_else(|| Failure::new(libc::ENOENT, "rdmix: pump: cannot locate the plugin's own directory"))?;
    Ok(dir.join("rdmix-pump"))
}

/// How long an open may take to reach a working pump, spawning included.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the pump for `cfg` (spawning it if nobody listens), and attaches.
pub fn attach(cfg: &Config, eventfd: &OwnedFd) -> Result<Attachment, Failure> {
    let name = socket_name(cfg.ipc_key);
    let deadline = Instant::now() + ATTACH_TIMEOUT;
    let mut spawns = 0;
    let mut hangups = 0;
    loop {
        if Instant::now() >= deadline {
            return Err(Failure::new(
                libc::ETIMEDOUT,
                format!(
                    "rdmix: ipc_key {:#x}: no pump answered within {:?}",
                    cfg.ipc_key, ATTACH_TIMEOUT
                ),
            ));
        }
        let sock = match sys::connect(&name) {
            Ok(s) => s,
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                // Nobody listens: start a pump. If another client's pump wins the race to
                // bind, ours exits quietly and the next connect reaches the winner.
                if spawns >= 3 {
                    return Err(Failure::new(
                        libc::EIO,
                        format!("rdmix: ipc_key {:#x}: pump started but nobody listens", cfg.ipc_key),
                    ));
                }
                spawns += 1;
                spawn_pump(cfg, &pump_path(cfg)?, deadline)?;
                continue;
            }
            Err(e) => {
                return Err(Failure::new(
                    e.raw_os_error().unwrap_or(libc::EIO),
                    format!("rdmix: ipc_key {:#x}: cannot reach the pump: {e}", cfg.ipc_key),
                ));
            }
        };
        let mut hello = Msg::new(HELLO).with_text(&cfg.slave.pcm);
        hello.args[0] = PROTO_VERSION;
        if send(&sock, hello, Some(eventfd.as_fd())).is_err() {
            continue; // the pump was exiting; start over
        }
        let reply = match recv_until(&sock, deadline) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(Incoming::Closed),
            r => r,
        };
        match reply {
            Ok(Incoming::Msg(m, Some(fd))) if m.kind == WELCOME && m.status == 0 => {
                let seg = Segment::attach(fd).map_err(|e| {
                    Failure::new(
                        libc::EPROTO,
                        format!("rdmix: ipc_key {:#x}: refusing segment: {e}", cfg.ipc_key),
                    )
                })?;
                let slot = m.slot as usize;
                if slot >= crate::segment::MAX_LANES {
                    return Err(Failure::new(
                        libc::EPROTO,
                        format!("rdmix: pump gave slot {slot}, out of range"),
                    ));
                }
                return Ok(Attachment { sock, seg, slot });
            }
            Ok(Incoming::Msg(m, _)) if m.status < 0 => {
                return Err(Failure::new(m.status, m.text()));
            }
            Ok(Incoming::Closed) => {
                // A lingering pump may close just as we arrive; a listener that always hangs
                // up is not a pump.
                hangups += 1;
                if hangups > 3 {
                    return Err(Failure::new(
                        libc::ECONNRESET,
                        format!(
                            "rdmix: ipc_key {:#x}: the listener there hangs up without answering; \
                             is another program using this key?",
                            cfg.ipc_key
                        ),
                    ));
                }
                continue;
            }
            Ok(_) => {
                return Err(Failure::new(
                    libc::EPROTO,
                    format!(
                        "rdmix: ipc_key {:#x}: the listener there does not speak rdmix's protocol",
                        cfg.ipc_key
                    ),
                ));
            }
            Err(e) => {
                return Err(Failure::new(
                    libc::ETIMEDOUT,
                    format!("rdmix: ipc_key {:#x}: pump did not answer: {e}", cfg.ipc_key),
                ));
            }
        }
    }
}

/// Starts a pump and waits until it is listening (or has said why it cannot).
///
/// The pump detaches itself (double fork), so it is never this program's child for long and
/// never becomes its zombie; its first process exits once the pump is ready, with the reason
/// on stderr if it is not.
fn spawn_pump(cfg: &Config, path: &Path, deadline: Instant) -> Result<(), Failure> {
    let mut child = Command::new(path)
        .args(cfg.pump_args())
        .env("RDMIX_PUMP", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Failure::new(
                libc::ENOENT,
                format!("rdmix: pump: cannot start {}: {e}", path.display()),
            )
        })?;
    let mut err = child.stderr.take().expect("stderr is piped");
    let mut text = String::new();
    // The pipe reaches EOF when the pump's first process exits.
    let mut p = [sys::pollfd(err.as_raw_fd(), libc::POLLIN)];
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Failure::new(
                libc::ETIMEDOUT,
                format!("rdmix: pump {} did not start in time", path.display()),
            ));
        }
        if sys::poll(&mut p, left.as_millis().max(1) as i32).unwrap_or(0) == 0 {
            continue;
        }
        match err.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let status = child
        .wait()
        .map_err(|e| Failure::new(libc::EIO, format!("rdmix: pump: {e}")))?;
    match status.code() {
        Some(0) => Ok(()),
        code => {
            let errno = code.filter(|c| *c > 1).unwrap_or(libc::EIO);
            let line = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string();
            let msg = if line.is_empty() {
                format!("rdmix: pump exited with {status}")
            } else {
                line
            };
            Err(Failure::new(errno, msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_roundtrip_and_reject_garbage() {
        let mut m = Msg::error(REPLY, libc::EACCES, "rdmix: nope");
        m.args = [1, 2, 3, u64::MAX];
        m.slot = 7;
        let b = m.to_bytes();
        let back = Msg::from_bytes(&b).unwrap();
        assert_eq!(
            (back.kind, back.status, back.slot, back.args),
            (REPLY, -libc::EACCES, 7, [1, 2, 3, u64::MAX])
        );
        assert_eq!(back.text(), "rdmix: nope");
        assert!(Msg::from_bytes(&b[..10]).is_none());
        let mut bad = b;
        bad[0] ^= 1;
        assert!(Msg::from_bytes(&bad).is_none());
        let long = "x".repeat(1000);
        assert_eq!(Msg::new(HELLO).with_text(&long).text().len(), TEXT - 1);
    }

    #[test]
    fn descriptors_travel_with_messages() {
        let name = format!("rdmix-test-{}", sys::pid());
        let l = sys::listen(&name).unwrap();
        assert_eq!(sys::listen(&name).unwrap_err().raw_os_error(), Some(libc::EADDRINUSE));
        let c = sys::connect(&name).unwrap();
        let s = loop {
            if let Some(s) = sys::accept(&l).unwrap() {
                break s;
            }
        };
        let ev = sys::eventfd().unwrap();
        send(&c, Msg::new(HELLO), Some(ev.as_fd())).unwrap();
        let Incoming::Msg(m, Some(fd)) = recv_until(&s, Instant::now() + Duration::from_secs(5)).unwrap() else {
            panic!("expected a message with a descriptor")
        };
        assert_eq!(m.kind, HELLO);
        sys::eventfd_signal(fd.as_fd());
        assert!(
            sys::eventfd_clear(ev.as_fd()),
            "the passed descriptor is the same eventfd"
        );
        let (_, uid, _) = sys::peer_cred(&s).unwrap();
        assert_eq!(uid, sys::euid());
        drop(c);
        assert!(matches!(recv(&s).unwrap(), Incoming::Closed));
    }
}
