//! Reaching a pump: connect to the one for our key (starting it if nobody listens), say
//! HELLO with our configuration and eventfd, and map the segment it answers with.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::shm::ring::Producer;
use crate::shm::segment::{MAX_LANES, Segment};
use crate::shm::wire::{self, HELLO, Incoming, Msg, PROTO_VERSION, WELCOME};
use crate::sys;

/// How long an open may take to reach a working pump, spawning included.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(5);
/// Pumps started for one open before giving up: a spawn can lose the race to bind to
/// another client's pump, which then answers.
const MAX_SPAWNS: u32 = 3;
/// Hang-ups tolerated: a lingering pump may close just as we arrive, but a listener that
/// always hangs up is not a pump.
const MAX_HANGUPS: u32 = 3;

/// A client's attachment: its control socket, the mapped segment and its lane.
pub struct Attachment {
    pub sock: OwnedFd,
    pub seg: Segment,
    pub slot: usize,
}

impl Attachment {
    /// The client's end of its lane.
    pub fn lane(&self) -> Producer<'_> {
        Producer::new(&self.seg, self.slot)
    }
}

/// What one HELLO got.
enum Greeting {
    Welcomed(Attachment),
    /// The listener closed without answering.
    HungUp,
    /// HELLO could not even be sent: the pump was exiting.
    Gone,
}

/// Connects to the pump for `cfg` (spawning it if nobody listens), and attaches.
pub fn attach(cfg: &Config, eventfd: &OwnedFd) -> Result<Attachment> {
    let key = cfg.ipc_key;
    let mut hello = Msg::new(HELLO)
        .with_payload(cfg.encode())
        .ok_or_else(|| Error::config("slave.pcm", "the configuration is too large to hand to a pump"))?;
    hello.args[0] = PROTO_VERSION;
    let deadline = Instant::now() + ATTACH_TIMEOUT;
    let (mut spawns, mut hangups) = (0, 0);
    loop {
        if Instant::now() >= deadline {
            return Err(Error::new(
                libc::ETIMEDOUT,
                format!("rdmix: ipc_key {key:#x}: no pump answered within {ATTACH_TIMEOUT:?}"),
            ));
        }
        let Some(sock) = connect_or_spawn(cfg, deadline, &mut spawns)? else {
            continue;
        };
        match greet(key, sock, &hello, eventfd, deadline)? {
            Greeting::Welcomed(a) => return Ok(a),
            Greeting::Gone => continue,
            Greeting::HungUp => {
                hangups += 1;
                if hangups > MAX_HANGUPS {
                    return Err(Error::new(
                        libc::ECONNRESET,
                        format!(
                            "rdmix: ipc_key {key:#x}: the listener there hangs up without answering; \
                             is another program using this key?"
                        ),
                    ));
                }
            }
        }
    }
}

/// A socket to the pump, or `None` once a new pump has been started (connect again).
fn connect_or_spawn(cfg: &Config, deadline: Instant, spawns: &mut u32) -> Result<Option<OwnedFd>> {
    let key = cfg.ipc_key;
    match sys::socket::connect(&wire::socket_name(key)) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            // Nobody listens: start a pump. If another client's pump wins the race to bind,
            // ours exits quietly and the next connect reaches the winner.
            if *spawns >= MAX_SPAWNS {
                return Err(Error::new(
                    libc::EIO,
                    format!("rdmix: ipc_key {key:#x}: pump started but nobody listens"),
                ));
            }
            *spawns += 1;
            spawn_pump(cfg, deadline)?;
            Ok(None)
        }
        Err(e) => Err(Error::io(&format!("rdmix: ipc_key {key:#x}: cannot reach the pump"), e)),
    }
}

/// Says HELLO and reads the answer.
fn greet(key: u32, sock: OwnedFd, hello: &Msg, eventfd: &OwnedFd, deadline: Instant) -> Result<Greeting> {
    if wire::send(&sock, hello, Some(eventfd.as_fd())).is_err() {
        return Ok(Greeting::Gone);
    }
    let reply = match wire::recv_until(&sock, deadline) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(Incoming::Closed),
        r => r,
    };
    let not_rdmix = || {
        Error::new(
            libc::EPROTO,
            format!("rdmix: ipc_key {key:#x}: the listener there does not speak rdmix's protocol"),
        )
    };
    match reply {
        Ok(Incoming::Msg(m, fd)) if m.kind == WELCOME => {
            if let Some(e) = m.refusal() {
                return Err(e);
            }
            let fd = fd.ok_or_else(not_rdmix)?;
            welcome(key, sock, &m, fd).map(Greeting::Welcomed)
        }
        Ok(Incoming::Msg(m, _)) => Err(m.refusal().unwrap_or_else(not_rdmix)),
        Ok(Incoming::Closed) => Ok(Greeting::HungUp),
        Ok(Incoming::Garbage) => Err(not_rdmix()),
        Err(e) => Err(Error::new(
            libc::ETIMEDOUT,
            format!("rdmix: ipc_key {key:#x}: pump did not answer: {e}"),
        )),
    }
}

/// Maps the segment a WELCOME brought, after checking it is one this build understands.
fn welcome(key: u32, sock: OwnedFd, m: &Msg, fd: OwnedFd) -> Result<Attachment> {
    let seg = Segment::attach(fd).map_err(|e| {
        let why = e.line().to_string();
        e.context(format!("rdmix: ipc_key {key:#x}: refusing segment: {why}"))
    })?;
    let slot = m.slot as usize;
    if slot >= MAX_LANES {
        return Err(Error::new(
            libc::EPROTO,
            format!("rdmix: pump gave slot {slot}, out of range"),
        ));
    }
    Ok(Attachment { sock, seg, slot })
}

fn pump_path(cfg: &Config) -> Result<PathBuf> {
    if let Some(p) = &cfg.pump {
        return Ok(p.clone());
    }
    let dir = sys::process::own_object_dir()
        .ok_or_else(|| Error::new(libc::ENOENT, "rdmix: pump: cannot locate the plugin's own directory"))?;
    Ok(dir.join("rdmix-pump"))
}

/// Starts a pump and waits for its start-up report: it listens, or it says why it cannot.
///
/// The pump detaches itself (double fork), so it is never this program's child for long and
/// never becomes its zombie; the detached daemon writes the report on the standard output
/// it inherited, then lets go of it.
fn spawn_pump(cfg: &Config, deadline: Instant) -> Result<()> {
    let path = pump_path(cfg)?;
    let mut child = Command::new(&path)
        .args(wire::pump_args(cfg.ipc_key))
        .env("RDMIX_PUMP", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            Error::new(
                libc::ENOENT,
                format!("rdmix: pump: cannot start {}: {e}", path.display()),
            )
        })?;
    let mut out = child.stdout.take().expect("stdout is piped");
    let mut report = Vec::new();
    // The pipe reaches EOF when the daemon has reported and let go of it.
    let mut p = [sys::fd::pollfd(out.as_raw_fd(), libc::POLLIN)];
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::new(
                libc::ETIMEDOUT,
                format!("rdmix: pump {} did not start in time", path.display()),
            ));
        }
        if sys::fd::poll(&mut p, left.as_millis().max(1) as i32).unwrap_or(0) == 0 {
            continue;
        }
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => report.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = child.wait();
    wire::read_startup_report(&report)
}
