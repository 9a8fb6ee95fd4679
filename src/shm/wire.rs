//! The control protocol between a client and its pump: a seqpacket socket per client.
//!
//! Attach and hw_params travel here (with the segment's memfd and the client's eventfd as
//! passed descriptors); audio never does. Either side learns of the other's death at once,
//! from a hang-up on this socket. The socket is in the abstract namespace, so a dead pump
//! leaves nothing behind and binding it is the race-free "one pump per key" lock.
//!
//! A message is a fixed header and a payload of at most [`MAX_PAYLOAD`] bytes:
//! - HELLO (client): `args[0]` the protocol version, the payload the client's whole
//!   configuration (`Config::encode`), and its eventfd. This is the only way configuration
//!   reaches a pump.
//! - WELCOME (pump): the lane in `slot`, and the segment's memfd.
//! - SETUP (client): `args` = format, channels, rate, buffer frames of its hw_params.
//! - REPLY (pump): the answer to SETUP.
//!
//! Any answer may instead be an error: `status` 1 and the payload an `Error::encode`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use crate::error::Error;
use crate::sys;

pub const PROTO_VERSION: u64 = 2;
const MSG_MAGIC: u32 = 0x4d43_4452; // "RDCM"
const HEADER: usize = 48;
pub const MAX_PAYLOAD: usize = 4096;

pub const HELLO: u32 = 1;
pub const WELCOME: u32 = 2;
pub const SETUP: u32 = 3;
pub const REPLY: u32 = 4;

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

pub fn send(sock: &OwnedFd, m: &Msg, fd: Option<BorrowedFd>) -> io::Result<()> {
    sys::socket::send(sock, &m.to_bytes(), fd)
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
    let mut buf = [0u8; HEADER + MAX_PAYLOAD + 1];
    let (n, fd) = sys::socket::recv(sock, &mut buf)?;
    if n == 0 {
        return Ok(Incoming::Closed);
    }
    Ok(match Msg::from_bytes(&buf[..n]) {
        Some(m) => Incoming::Msg(Box::new(m), fd),
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

/// The abstract socket name of the pump for `key`.
pub fn socket_name(key: u32) -> String {
    format!("rdmix-{key:08x}")
}

/// How a pump is started: `rdmix-pump --key KEY`. The key names the socket the pump must
/// bind before anyone can reach it; everything else reaches it in HELLO.
pub fn pump_args(key: u32) -> Vec<String> {
    vec!["--key".into(), key.to_string()]
}

/// The inverse of `pump_args`.
pub fn parse_pump_args(args: &[String]) -> Option<u32> {
    match args {
        [flag, key] if flag == "--key" => key.parse().ok().filter(|k| *k != 0),
        _ => None,
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
        assert_eq!(parse_pump_args(&pump_args(0x1234)), Some(0x1234));
        assert_eq!(parse_pump_args(&["--key".into(), "0".into()]), None);
        assert_eq!(parse_pump_args(&["--slave".into(), "hw:0".into()]), None);
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
        let name = format!("rdmix-test-{}", sys::process::pid());
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
        let ev = sys::fd::eventfd().unwrap();
        send(&c, &Msg::new(HELLO), Some(ev.as_fd())).unwrap();
        let Incoming::Msg(m, Some(fd)) = recv_until(&s, Instant::now() + Duration::from_secs(5)).unwrap() else {
            panic!("expected a message with a descriptor")
        };
        assert_eq!(m.kind, HELLO);
        sys::fd::eventfd_signal(fd.as_fd());
        assert!(
            sys::fd::eventfd_clear(ev.as_fd()),
            "the passed descriptor is the same eventfd"
        );
        let (_, uid, _) = sys::socket::peer_cred(&s).unwrap();
        assert_eq!(uid, sys::user::euid());
        drop(c);
        assert!(matches!(recv(&s).unwrap(), Incoming::Closed));
    }
}
