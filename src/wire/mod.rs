//! The control protocol between a client and its pump, and where the two meet.
//!
//! Attach and hw_params travel on a seqpacket socket per client (with descriptors the pump
//! creates and hands out); audio never does. Either side learns of the other's death at
//! once, from a hang-up on this socket.
//!
//! A message is a fixed header and a payload of at most [`MAX_PAYLOAD`] bytes:
//! - HELLO (client): `args[0]` the protocol version, the payload the client's whole
//!   configuration (`Config::encode`). This is the only way configuration reaches a pump.
//!   `args[1]` is 0, or [`level`] of the volume its user last gave this program
//!   (`config::saved`): the lane starts there. `args[2]` is 0, or [`level`] of the master
//!   its user last gave this key's playback pump.
//!   A client says HELLO only after it has checked who the pump is (`plugin::attach`).
//! - WELCOME (pump): the lane number in `slot`, and three descriptors, all made by the
//!   pump: the header segment (sealed, read-only to clients), the client's own lane memfd,
//!   and the read end of the client's wake-up pipe.
//! - SETUP (client): `args` = format, channels, rate, buffer frames of its hw_params.
//! - REPLY (pump): the answer to SETUP.
//! - STATUS (`rdmix-status`, instead of HELLO): `args[0]` the protocol version. The pump
//!   answers STATUS with a `status::PumpStatus` payload. It takes no lane and changes
//!   nothing.
//! - KICK (client, no answer): the client's lane has just started or stopped wanting mixing
//!   (start, pause and its release, drain, drop). A pump that went idle wakes on it; a busy
//!   one looks at the lanes at once, since a rewind may let the change be heard sooner. It
//!   is sent without waiting: a full queue already holds a message that wakes the pump.
//!
//! - VOLUME (a mixer, instead of HELLO): sets a volume. `args[0]` the lane, or [`MASTER`];
//!   `args[1]` the pid the lane must belong to (a lane given to another program since the
//!   mixer looked is refused, not changed); `args[2]` the level (`dsp::gain::Volume`'s
//!   step); `args[3]` 1 for on, 0 for muted. The pump answers VOLUME. A user may set only
//!   the lanes of their own programs, and only the pump's own user the master (on a shared
//!   key, its members too where the definition sets `ipc_member_master`).
//! - WATCH (a mixer, instead of HELLO): `args[0]` the protocol version, `args[1]` the
//!   remembered master as in HELLO. A pump takes the remembered master of its own user's
//!   first HELLO or WATCH that carries one, unless the master was set already. The pump answers
//!   WATCH and keeps the connection, on which the mixer may send STATUS and VOLUME again
//!   and again. It sends CHANGED (no answer, nothing else in it) whenever what that mixer
//!   may see changes: a program of its user comes or goes or is turned up or down, or the
//!   master moves. CHANGED is sent without waiting; one already queued says it all, so a
//!   mixer that reads slowly loses nothing but repeats. A watched pump stays, however long
//!   it has no program.
//!
//! Any answer may instead be an error: `status` 1 and the payload an `Error::encode`.
//!
//! # Where a pump listens ([`rendezvous`])
//!
//! - A **private** key (`ipc_perm` gives nobody but the owner access) listens at
//!   `<dir>/<key>.sock`, where `<dir>` is `$XDG_RUNTIME_DIR/rdmix` when that runtime
//!   directory is the user's own, else `/tmp/rdmix-<uid>`; either is created 0700 and
//!   refused if anyone else owns it or may enter it. Nobody else can bind there, so nobody
//!   can squat the key. `<key>.lock` (flock) makes binding race-free and lets a new pump
//!   replace the socket file a killed one left behind.
//! - A **shared** key listens in the abstract namespace, `@rdmix-<key>`, which every local
//!   user can reach; there the peer's kernel credentials decide everything, on both sides.
//!
//! A key's capture pump listens beside its playback pump, its names marked `capture-`
//! (`capture-<key>.sock`, `@rdmix-capture-<key>`): one key, two pumps that never collide.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::Instant;

use crate::dsp::gain::{self, Volume};
use crate::error::Error;
use crate::sys;
use crate::sys::socket::Addr;

pub use crate::shm::segment::Stream;

pub mod status;

pub const PROTO_VERSION: u64 = 6;
const MSG_MAGIC: u32 = 0x4d43_4452; // "RDCM"
const HEADER: usize = 48;
/// Room for a status report of every lane, with a slave name of the longest kind.
pub const MAX_PAYLOAD: usize = 16384;

pub const HELLO: u32 = 1;
pub const WELCOME: u32 = 2;
pub const SETUP: u32 = 3;
pub const REPLY: u32 = 4;
pub const STATUS: u32 = 5;
pub const KICK: u32 = 6;
pub const VOLUME: u32 = 7;
pub const WATCH: u32 = 8;
pub const CHANGED: u32 = 9;
/// VOLUME's `args[0]` for the master.
pub const MASTER: u64 = u64::MAX;

const STATUS_OK: u32 = 0;
const STATUS_ERROR: u32 = 1;

/// One control message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub kind: u32,
    pub slot: u32,
    pub args: [u64; 4],
    status: u32,
    payload: Vec<u8>,
}

impl Msg {
    pub fn new(kind: u32) -> Msg {
        Msg {
            kind,
            slot: 0,
            args: [0; 4],
            status: STATUS_OK,
            payload: Vec::new(),
        }
    }

    /// A message carrying `payload`; `None` if it is larger than any peer will read.
    pub fn with_payload(mut self, payload: Vec<u8>) -> Option<Msg> {
        (payload.len() <= MAX_PAYLOAD).then(|| {
            self.payload = payload;
            self
        })
    }

    /// An answer of kind `kind` that refuses, for the reason `e` gives.
    pub fn error(kind: u32, e: &Error) -> Msg {
        let mut b = e.encode();
        b.truncate(MAX_PAYLOAD);
        Msg {
            status: STATUS_ERROR,
            payload: b,
            ..Msg::new(kind)
        }
    }

    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The refusal this message carries, if it is one. A malformed refusal still refuses.
    pub fn refusal(&self) -> Option<Error> {
        (self.status != STATUS_OK).then(|| {
            Error::decode(&self.payload)
                .unwrap_or_else(|| Error::new(libc::EPROTO, "rdmix: the pump refused with a malformed answer"))
        })
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.payload.len());
        for v in [MSG_MAGIC, self.kind, self.status, self.slot] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for a in self.args {
            out.extend_from_slice(&a.to_le_bytes());
        }
        out.extend_from_slice(&self.payload);
        out
    }

    /// Parses a packet; anything malformed is `None`.
    fn from_bytes(b: &[u8]) -> Option<Msg> {
        if b.len() < HEADER || b.len() > HEADER + MAX_PAYLOAD {
            return None;
        }
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        if u32_at(0) != MSG_MAGIC {
            return None;
        }
        let mut args = [0u64; 4];
        for (i, a) in args.iter_mut().enumerate() {
            *a = u64::from_le_bytes(b[16 + i * 8..24 + i * 8].try_into().unwrap());
        }
        Some(Msg {
            kind: u32_at(4),
            status: u32_at(8),
            slot: u32_at(12),
            args,
            payload: b[HEADER..].to_vec(),
        })
    }
}

pub fn send(sock: &OwnedFd, m: &Msg, fds: &[BorrowedFd]) -> io::Result<()> {
    sys::socket::send(sock, &m.to_bytes(), fds)
}

/// Sends KICK; never waits, and a peer that is gone or behind is not an error here (the
/// caller learns of a dead pump from its hang-up).
pub fn kick(sock: &OwnedFd) {
    let _ = sys::socket::send_nowait(sock, &Msg::new(KICK).to_bytes());
}

/// A volume as one argument: 0 for none, else the step plus one, and the switch at bit 32.
pub fn level(v: Option<Volume>) -> u64 {
    v.map_or(0, |v| (v.step as u64 + 1) | (v.on as u64) << 32)
}

/// The volume an argument made by [`level`] carries; anything out of range is none.
pub fn level_of(arg: u64) -> Option<Volume> {
    let step = (arg & 0xffff_ffff).checked_sub(1)?;
    (step <= gain::STEPS as u64 && arg >> 33 == 0).then_some(Volume {
        step: step as u32,
        on: arg >> 32 == 1,
    })
}

/// Sends `m` if the peer's queue has room; a full queue is not an error (see CHANGED).
pub fn send_nowait(sock: &OwnedFd, m: &Msg) -> io::Result<()> {
    match sys::socket::send_nowait(sock, &m.to_bytes()) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        r => r,
    }
}

/// What came in on a control socket.
pub enum Incoming {
    Msg(Box<Msg>, Vec<OwnedFd>),
    /// The peer hung up.
    Closed,
    /// A packet that is not a valid message.
    Garbage,
}

pub fn recv(sock: &OwnedFd) -> io::Result<Incoming> {
    let mut buf = [0u8; HEADER + MAX_PAYLOAD + 1];
    let (n, fds) = sys::socket::recv(sock, &mut buf)?;
    if n == 0 {
        return Ok(Incoming::Closed);
    }
    Ok(match Msg::from_bytes(&buf[..n]) {
        Some(m) => Incoming::Msg(Box::new(m), fds),
        None => Incoming::Garbage,
    })
}

/// Waits up to `deadline` for a message on a blocking socket.
pub fn recv_until(sock: &OwnedFd, deadline: Instant) -> io::Result<Incoming> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer"));
        }
        let mut p = [sys::fd::pollfd(sock.as_raw_fd(), libc::POLLIN)];
        if sys::fd::poll(&mut p, left.as_millis().max(1) as i32)? > 0 {
            return recv(sock);
        }
    }
}

/// Whether a key with this `ipc_perm` is shared with other users.
pub fn is_shared(perm: u32) -> bool {
    perm & 0o066 != 0
}

/// How the direction marks a socket's name: nothing for playback (as before capture
/// existed), `capture-` for capture.
fn socket_tag(stream: Stream) -> &'static str {
    match stream {
        Stream::Playback => "",
        Stream::Capture => "capture-",
    }
}

fn of_tag(tag: &str) -> Option<Stream> {
    match tag {
        "" => Some(Stream::Playback),
        "capture-" => Some(Stream::Capture),
        _ => None,
    }
}

/// The `HOME` a shared pump runs with: none, so alsa-lib reads only the system-wide
/// configuration and never one user's `~/.asoundrc`.
pub const SYSTEM_HOME: &str = "/nonexistent";

/// Where the pump for a key listens, and the lock that makes one pump per key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendezvous {
    pub addr: Addr,
    /// The flock a private pump holds while it owns the socket path.
    pub lock: Option<PathBuf>,
}

/// The private directory for this user's sockets (see the module docs).
fn private_dir() -> Result<PathBuf, Error> {
    let uid = sys::user::euid();
    let xdg = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute() && sys::fs::owned_dir(d, uid));
    let dir = match xdg {
        Some(d) => d.join("rdmix"),
        None => PathBuf::from(format!("/tmp/rdmix-{uid}")),
    };
    sys::fs::private_dir(&dir, uid).map_err(|e| {
        Error::io(
            &format!(
                "rdmix: cannot use {} for the pump's socket; remove it, or set XDG_RUNTIME_DIR to a directory of your own",
                dir.display()
            ),
            e,
        )
    })?;
    Ok(dir)
}

/// Where the pump for `key` and `stream` listens: a path in this user's private directory
/// for a private key, the abstract namespace for a shared one.
pub fn rendezvous(key: u32, shared: bool, stream: Stream) -> Result<Rendezvous, Error> {
    let tag = socket_tag(stream);
    if shared {
        return Ok(Rendezvous {
            addr: Addr::Abstract(format!("rdmix-{tag}{key:08x}")),
            lock: None,
        });
    }
    let dir = private_dir()?;
    Ok(Rendezvous {
        addr: Addr::Path(dir.join(format!("{tag}{key:08x}.sock"))),
        lock: Some(dir.join(format!("{tag}{key:08x}.lock"))),
    })
}

/// Every pump socket this user can see, by key and direction: the private ones in this
/// user's directory (for root, every user's), and the shared ones in the abstract namespace.
pub fn visible_pumps() -> Vec<(u32, Addr)> {
    let key_of = |name: &str, suffix: &str| {
        let rest = name.strip_suffix(suffix)?;
        let (tag, hex) = rest.split_at(rest.len().checked_sub(8)?);
        of_tag(tag)?;
        u32::from_str_radix(hex, 16).ok()
    };
    let mut dirs: Vec<PathBuf> = private_dir().into_iter().collect();
    if sys::user::euid() == 0 {
        let listing = |d: &str| std::fs::read_dir(d).into_iter().flatten().flatten().map(|e| e.path());
        dirs.extend(
            listing("/tmp").filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("rdmix-"))),
        );
        dirs.extend(listing("/run/user").map(|p| p.join("rdmix")));
    }
    let mut out: Vec<(u32, Addr)> = Vec::new();
    for d in dirs {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if let Some(k) = key_of(&e.file_name().to_string_lossy(), ".sock") {
                out.push((k, Addr::Path(e.path())));
            }
        }
    }
    // The last column of /proc/net/unix is the bound name; '@' marks the abstract namespace.
    let unix = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    for name in unix.lines().filter_map(|l| l.split_whitespace().nth(7)) {
        if let Some(n) = name.strip_prefix("@rdmix-")
            && let Some(k) = key_of(n, "")
        {
            out.push((k, Addr::Abstract(format!("rdmix-{n}"))));
        }
    }
    // A listener and its accepted connections share a name, and root's own directory is
    // also among every user's: one entry per address.
    out.sort_by_key(|(k, a)| (*k, a.to_string()));
    out.dedup_by(|a, b| a.0 == b.0 && a.1.to_string() == b.1.to_string());
    out
}

/// How a pump is started. The key and its sharing are all it needs before anyone can reach
/// it: where to listen, and whom to let in. Everything else reaches it in HELLO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PumpArgs {
    pub key: u32,
    pub perm: u32,
    pub gid: Option<u32>,
    pub stream: Stream,
}

impl PumpArgs {
    pub fn shared(&self) -> bool {
        is_shared(self.perm)
    }

    /// `--key KEY --perm PERM [--gid GID] [--capture]`.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "--key".into(),
            self.key.to_string(),
            "--perm".into(),
            format!("{:o}", self.perm),
        ];
        if let Some(g) = self.gid {
            v.extend(["--gid".into(), g.to_string()]);
        }
        if self.stream.is_capture() {
            v.push("--capture".into());
        }
        v
    }

    /// The inverse of `to_args`; `None` for anything else.
    pub fn parse(args: &[String]) -> Option<PumpArgs> {
        let (args, stream) = match args.split_last() {
            Some((last, rest)) if last == "--capture" => (rest, Stream::Capture),
            _ => (args, Stream::Playback),
        };
        let (key, perm, gid) = match args {
            [k, key, p, perm] if k == "--key" && p == "--perm" => (key, perm, None),
            [k, key, p, perm, g, gid] if k == "--key" && p == "--perm" && g == "--gid" => {
                (key, perm, Some(gid.parse().ok()?))
            }
            _ => return None,
        };
        let perm = u32::from_str_radix(perm, 8)
            .ok()
            .filter(|p| *p <= 0o777 && p & 0o600 == 0o600)?;
        Some(PumpArgs {
            key: key.parse().ok().filter(|k| *k != 0)?,
            perm,
            gid,
            stream,
        })
    }
}

/// The pump's start-up report, on its standard output: four zero bytes once it listens (or
/// found another pump listening), else an encoded `Error`.
pub fn startup_report(r: &Result<(), Error>) -> Vec<u8> {
    match r {
        Ok(()) => vec![0; 4],
        Err(e) => e.encode(),
    }
}

/// The inverse of `startup_report`.
pub fn read_startup_report(b: &[u8]) -> Result<(), Error> {
    if b == [0, 0, 0, 0] {
        return Ok(());
    }
    Err(Error::decode(b).unwrap_or_else(|| {
        Error::new(
            libc::EIO,
            if b.is_empty() {
                "rdmix: pump died during start-up".to_string()
            } else {
                "rdmix: pump: malformed start-up report".to_string()
            },
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::time::Duration;

    #[test]
    fn a_level_argument_carries_a_volume_or_none_and_nothing_out_of_range() {
        for v in [
            Volume { step: 0, on: false },
            Volume { step: 216, on: true },
            Volume::default(),
        ] {
            assert_eq!(level_of(level(Some(v))), Some(v));
        }
        assert_eq!(level_of(level(None)), None);
        for hostile in [gain::STEPS as u64 + 2, u64::MAX, 3 << 32 | 5, 1 << 40 | 1] {
            assert_eq!(level_of(hostile), None, "{hostile:#x}");
        }
    }

    #[test]
    fn messages_roundtrip_and_reject_garbage() {
        let e = Error::new(libc::EACCES, "rdmix: nope");
        let mut m = Msg::error(REPLY, &e);
        m.args = [1, 2, 3, u64::MAX];
        m.slot = 7;
        let b = m.to_bytes();
        let back = Msg::from_bytes(&b).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.refusal(), Some(e));
        assert_eq!(Msg::new(REPLY).refusal(), None);
        assert!(Msg::from_bytes(&b[..10]).is_none());
        let mut bad = b;
        bad[0] ^= 1;
        assert!(Msg::from_bytes(&bad).is_none());
        assert!(Msg::new(HELLO).with_payload(vec![b'x'; MAX_PAYLOAD + 1]).is_none());
        let full = Msg::new(HELLO).with_payload(vec![b'x'; MAX_PAYLOAD]).unwrap();
        assert_eq!(Msg::from_bytes(&full.to_bytes()).unwrap().payload().len(), MAX_PAYLOAD);
        let mut long = full.to_bytes();
        long.push(0);
        assert!(
            Msg::from_bytes(&long).is_none(),
            "a packet over the limit is refused, not cut"
        );
    }

    #[test]
    fn the_pump_is_started_with_its_key_and_reports_in_one_encoding() {
        for a in [
            PumpArgs {
                key: 0x1234,
                perm: 0o600,
                gid: None,
                stream: Stream::Playback,
            },
            PumpArgs {
                key: 7,
                perm: 0o660,
                gid: Some(29),
                stream: Stream::Capture,
            },
        ] {
            assert_eq!(PumpArgs::parse(&a.to_args()), Some(a));
        }
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(PumpArgs::parse(&s(&["--key", "0", "--perm", "600"])), None);
        assert_eq!(PumpArgs::parse(&s(&["--key", "5", "--perm", "400"])), None);
        assert_eq!(PumpArgs::parse(&s(&["--key", "5"])), None);
        assert_eq!(PumpArgs::parse(&s(&["--slave", "hw:0"])), None);
        assert_eq!(read_startup_report(&startup_report(&Ok(()))), Ok(()));
        let e = Error::new(libc::EADDRNOTAVAIL, "rdmix: ipc_key 0x1: cannot listen: nope");
        assert_eq!(read_startup_report(&startup_report(&Err(e.clone()))), Err(e));
        assert!(
            read_startup_report(b"")
                .unwrap_err()
                .line()
                .contains("died during start-up")
        );
    }

    #[test]
    fn descriptors_travel_with_messages() {
        let name = Addr::Abstract(format!("rdmix-test-{}", sys::process::pid()));
        let l = sys::socket::listen(&name).unwrap();
        assert_eq!(
            sys::socket::listen(&name).unwrap_err().raw_os_error(),
            Some(libc::EADDRINUSE)
        );
        let c = sys::socket::connect(&name).unwrap();
        let s = loop {
            if let Some(s) = sys::socket::accept(&l).unwrap() {
                break s;
            }
        };
        let (theirs, mine) = sys::fd::wake_pair().unwrap();
        let mem = sys::memfd::create(c"t", 4096).unwrap();
        send(&c, &Msg::new(WELCOME), &[theirs.as_fd(), mem.as_fd()]).unwrap();
        let Incoming::Msg(m, fds) = recv_until(&s, Instant::now() + Duration::from_secs(5)).unwrap() else {
            panic!("expected a message with descriptors")
        };
        assert_eq!((m.kind, fds.len()), (WELCOME, 2));
        sys::fd::poke(mine.as_fd());
        sys::fd::poke(mine.as_fd());
        assert!(sys::fd::drain(fds[0].as_fd()), "the passed end is the pair's other end");
        assert!(!sys::fd::drain(fds[0].as_fd()), "one read takes every pending wake-up");
        sys::memfd::seal(fds[1].as_fd(), libc::F_SEAL_GROW).unwrap();
        assert_eq!(
            sys::memfd::seals(mem.as_fd()).unwrap() & libc::F_SEAL_GROW,
            libc::F_SEAL_GROW,
            "the second descriptor is the same memfd, in order"
        );
        let (_, uid, _) = sys::socket::peer_cred(&s).unwrap();
        assert_eq!(uid, sys::user::euid());
        drop(c);
        assert!(matches!(recv(&s).unwrap(), Incoming::Closed));
    }
}
