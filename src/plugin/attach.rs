//! Reaching a pump: find where the pump for our key listens (starting it if nobody does),
//! make sure it is one we trust, say HELLO with our configuration, and check and map what
//! it answers with.
//!
//! # Which pump a client trusts
//!
//! Judged on the kernel's credentials for the listening socket (`SO_PEERCRED`, and
//! `SO_PEERGROUPS`), never on anything the pump says:
//! - a pump that runs as this user, or as root;
//! - when the configuration shares the pump with a group (`ipc_perm` gives the group read
//!   and write, and `ipc_gid` names it), a pump run by a member of that group.
//!
//! Any other pump is refused before it hears a byte of configuration or audio.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{Config, saved};
use crate::error::{Error, Result};
use crate::shm::lane::LaneMem;
use crate::shm::ring::Producer;
use crate::shm::segment::{MAX_LANES, Segment};
use crate::shm::tap::Reader;
use crate::sys;
use crate::wire::{self, HELLO, Incoming, Msg, PROTO_VERSION, PumpArgs, Rendezvous, Stream, WATCH, WELCOME};

/// How long an open may take to reach a working pump, spawning included.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(5);
/// Pumps started for one open before giving up: a spawn can lose the race to bind to
/// another client's pump, which then answers.
const MAX_SPAWNS: u32 = 3;
/// Hang-ups tolerated: a lingering pump may close just as we arrive, but a listener that
/// always hangs up is not a pump.
const MAX_HANGUPS: u32 = 3;

/// A client's attachment: its control socket, the pump's header (read-only), its own lane,
/// and the read end of the wake-up pipe the pump pokes.
pub struct Attachment {
    pub sock: OwnedFd,
    pub seg: Segment,
    pub mem: LaneMem,
    pub wake: OwnedFd,
    pub slot: usize,
    pub pump_pid: i32,
}

impl Attachment {
    /// The client's end of its lane.
    pub fn lane(&self) -> Producer<'_> {
        Producer::new(&self.mem)
    }

    /// The client's end of its capture lane.
    pub fn tap(&self) -> Reader<'_> {
        Reader::new(&self.mem)
    }
}

/// What one greeting got.
enum Greeting<T> {
    Welcomed(T),
    /// The listener closed without answering.
    HungUp,
    /// The greeting could not even be sent: the pump was exiting.
    Gone,
}

/// Connects to the pump for `cfg` and `stream` (spawning it if nobody listens), and attaches.
pub fn attach(cfg: &Config, stream: Stream) -> Result<Attachment> {
    let mut hello = Msg::new(HELLO)
        .with_payload(cfg.encode())
        .ok_or_else(|| Error::config("slave.pcm", "the configuration is too large to hand to a pump"))?;
    hello.args[0] = PROTO_VERSION;
    // The volume this user last gave this program, read here, in the program's own
    // process: the pump never reads a user's files.
    let program = sys::process::program_of(std::process::id() as i32).unwrap_or_default();
    hello.args[1] = wire::level(saved::recall(stream, &program));
    if stream == Stream::Playback {
        hello.args[2] = wire::level(saved::recall_master(cfg.ipc_key));
    }
    let (mut a, pump_pid) = reach(cfg, stream, |sock, deadline| {
        greet(cfg.ipc_key, stream, sock, &hello, deadline)
    })?;
    a.pump_pid = pump_pid;
    Ok(a)
}

/// Connects a mixer to the pump for `cfg` and `stream` (spawning it if nobody listens: it
/// opens no device until a program comes) and says WATCH. The socket then carries
/// STATUS, VOLUME and the pump's CHANGED.
pub fn watch(cfg: &Config, stream: Stream) -> Result<OwnedFd> {
    let key = cfg.ipc_key;
    let mut m = Msg::new(WATCH);
    m.args[0] = PROTO_VERSION;
    if stream == Stream::Playback {
        m.args[1] = wire::level(saved::recall_master(key));
    }
    let (sock, _) = reach(cfg, stream, |sock, deadline| {
        let sent = wire::send(&sock, &m, &[]);
        match wire::recv_until(&sock, deadline) {
            Ok(Incoming::Msg(r, _)) if r.kind == WATCH || r.kind == WELCOME => match r.refusal() {
                Some(e) => Err(e),
                None if r.kind == WATCH => Ok(Greeting::Welcomed(sock)),
                None => Err(not_rdmix(key)),
            },
            Ok(Incoming::Msg(..) | Incoming::Garbage) => Err(not_rdmix(key)),
            _ if sent.is_err() => Ok(Greeting::Gone),
            Ok(Incoming::Closed) => Ok(Greeting::HungUp),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(Greeting::HungUp),
            Err(e) => Err(Error::new(
                libc::ETIMEDOUT,
                format!("rdmix: ipc_key {key:#x}: pump did not answer: {e}"),
            )),
        }
    })?;
    Ok(sock)
}

fn not_rdmix(key: u32) -> Error {
    Error::new(
        libc::EPROTO,
        format!("rdmix: ipc_key {key:#x}: the listener there does not speak rdmix's protocol"),
    )
}

/// Finds a pump we trust for `cfg` and `stream`, starting one if nobody listens, and lets
/// `speak` greet it; returns what the greeting got and the pump's pid.
fn reach<T>(
    cfg: &Config,
    stream: Stream,
    mut speak: impl FnMut(OwnedFd, Instant) -> Result<Greeting<T>>,
) -> Result<(T, i32)> {
    let key = cfg.ipc_key;
    let rv = wire::rendezvous(key, cfg.shared(), stream)?;
    let deadline = Instant::now() + ATTACH_TIMEOUT;
    let (mut spawns, mut hangups) = (0, 0);
    loop {
        if Instant::now() >= deadline {
            return Err(Error::new(
                libc::ETIMEDOUT,
                format!("rdmix: ipc_key {key:#x}: no pump answered within {ATTACH_TIMEOUT:?}"),
            ));
        }
        let Some(sock) = connect_or_spawn(cfg, stream, &rv, deadline, &mut spawns)? else {
            continue;
        };
        let pump_pid = trust(cfg, &sock)?;
        match speak(sock, deadline)? {
            Greeting::Welcomed(t) => return Ok((t, pump_pid)),
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

/// The pump's pid if the process listening on `sock` is one this configuration trusts.
fn trust(cfg: &Config, sock: &OwnedFd) -> Result<i32> {
    let key = cfg.ipc_key;
    let (pid, uid, gid) = sys::socket::peer_cred(sock)
        .map_err(|e| Error::io(&format!("rdmix: ipc_key {key:#x}: cannot tell who the pump is"), e))?;
    let me = sys::user::euid();
    let group = cfg
        .ipc_gid
        .filter(|_| cfg.ipc_perm & 0o060 == 0o060)
        .is_some_and(|g| gid == g || sys::socket::peer_groups(sock).contains(&g));
    if uid == me || uid == 0 || group {
        return Ok(pid);
    }
    let who = sys::user::describe(uid);
    let fix = match cfg.ipc_gid {
        Some(g) if cfg.ipc_perm & 0o060 == 0o060 => format!("it is not a member of ipc_gid {g}"),
        _ if cfg.shared() => "set ipc_gid to a group you trust to run a shared pump".to_string(),
        _ => "a private pump must run as you".to_string(),
    };
    Err(Error::new(
        libc::EACCES,
        format!(
            "rdmix: ipc_key {key:#x}: refusing the pump there (pid {pid}): it runs as {who}, whom this \
             configuration does not trust ({fix}); give this PCM another ipc_key"
        ),
    ))
}

/// A socket to the pump, or `None` once a new pump has been started (connect again).
fn connect_or_spawn(
    cfg: &Config,
    stream: Stream,
    rv: &Rendezvous,
    deadline: Instant,
    spawns: &mut u32,
) -> Result<Option<OwnedFd>> {
    let key = cfg.ipc_key;
    match sys::socket::connect(&rv.addr) {
        Ok(s) => Ok(Some(s)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNREFUSED | libc::ENOENT)) => {
            // Nobody listens: start a pump. If another client's pump wins the race to bind,
            // ours exits quietly and the next connect reaches the winner.
            if *spawns >= MAX_SPAWNS {
                return Err(Error::new(
                    libc::EIO,
                    format!(
                        "rdmix: ipc_key {key:#x}: pump started but nobody listens at {}",
                        rv.addr
                    ),
                ));
            }
            *spawns += 1;
            spawn_pump(cfg, stream, deadline)?;
            Ok(None)
        }
        Err(e) => Err(Error::io(
            &format!("rdmix: ipc_key {key:#x}: cannot reach the pump at {}", rv.addr),
            e,
        )),
    }
}

/// Says HELLO and reads the answer.
fn greet(key: u32, stream: Stream, sock: OwnedFd, hello: &Msg, deadline: Instant) -> Result<Greeting<Attachment>> {
    // A pump refuses a peer it will not admit as soon as it connects, so HELLO may find
    // the socket closed with the refusal waiting in it: read before giving up.
    let sent = wire::send(&sock, hello, &[]);
    let reply = match wire::recv_until(&sock, deadline) {
        // A pump that closes with our HELLO unread resets the connection, and the kernel
        // reports that before the refusal still queued for us: read once more.
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => match wire::recv(&sock) {
            Ok(m @ Incoming::Msg(..)) => Ok(m),
            _ => Ok(Incoming::Closed),
        },
        r => r,
    };
    if sent.is_err() && !matches!(reply, Ok(Incoming::Msg(..))) {
        return Ok(Greeting::Gone);
    }
    let not_rdmix = || not_rdmix(key);
    match reply {
        Ok(Incoming::Msg(m, fds)) if m.kind == WELCOME => {
            if let Some(e) = m.refusal() {
                return Err(e);
            }
            let Ok([seg, mem, wake]) = <[OwnedFd; 3]>::try_from(fds) else {
                return Err(not_rdmix());
            };
            welcome(key, stream, sock, &m, [seg, mem, wake]).map(Greeting::Welcomed)
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

/// Checks and maps what a WELCOME brought: nothing is mapped before its seals and size
/// are checked, so a pump cannot cut memory short under us.
fn welcome(key: u32, stream: Stream, sock: OwnedFd, m: &Msg, fds: [OwnedFd; 3]) -> Result<Attachment> {
    let [seg, mem, wake] = fds;
    let refusing = |e: Error| {
        let why = e.line().to_string();
        e.context(format!("rdmix: ipc_key {key:#x}: refusing segment: {why}"))
    };
    let seg = Segment::attach(seg).map_err(refusing)?;
    if seg.stream() != stream {
        return Err(Error::new(
            libc::EPROTO,
            format!(
                "rdmix: ipc_key {key:#x}: refusing segment: the pump there runs {}, this stream is {}",
                seg.stream().name(),
                stream.name()
            ),
        ));
    }
    let mem = LaneMem::attach(mem).map_err(refusing)?;
    let slot = m.slot as usize;
    if slot >= MAX_LANES {
        return Err(Error::new(
            libc::EPROTO,
            format!("rdmix: pump gave slot {slot}, out of range"),
        ));
    }
    Ok(Attachment {
        sock,
        seg,
        mem,
        wake,
        slot,
        pump_pid: 0,
    })
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
///
/// A pump other users will share starts with a clean environment (no `LD_PRELOAD`, no
/// `ALSA_CONFIG_PATH`, no `HOME`): it must not run on this user's private settings.
fn spawn_pump(cfg: &Config, stream: Stream, deadline: Instant) -> Result<()> {
    let path = pump_path(cfg)?;
    let mut child = pump_command(cfg, stream, &path)
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
    let report = startup_report(&mut child, deadline);
    let _ = child.wait();
    match report {
        Some(r) => wire::read_startup_report(&r),
        None => Err(Error::new(
            libc::ETIMEDOUT,
            format!("rdmix: pump {} did not start in time", path.display()),
        )),
    }
}

/// The pump's command line, and the environment it may see.
fn pump_command(cfg: &Config, stream: Stream, path: &std::path::Path) -> Command {
    let args = PumpArgs {
        key: cfg.ipc_key,
        perm: cfg.ipc_perm,
        gid: cfg.ipc_gid,
        stream,
    };
    let mut cmd = Command::new(path);
    if cfg.shared() {
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", wire::SYSTEM_HOME);
        if let Some(log) = std::env::var_os("RDMIX_PUMP_LOG") {
            cmd.env("RDMIX_PUMP_LOG", log);
        }
    }
    cmd.args(args.to_args()).env("RDMIX_PUMP", "1");
    cmd
}

/// Reads the start-up report until the pipe's EOF, which comes when the daemon has
/// reported and let go of it; `None` (and the child killed) past the deadline.
fn startup_report(child: &mut std::process::Child, deadline: Instant) -> Option<Vec<u8>> {
    let mut report = Vec::new();
    // (Never without a pipe: an empty report then says the pump told us nothing.)
    let Some(mut out) = child.stdout.take() else {
        return Some(report);
    };
    let mut p = [sys::fd::pollfd(out.as_raw_fd(), libc::POLLIN)];
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = child.kill();
            return None;
        }
        if sys::fd::poll(&mut p, left.as_millis().max(1) as i32).unwrap_or(0) == 0 {
            continue;
        }
        match out.read(&mut buf) {
            Ok(0) => return Some(report),
            Ok(n) => report.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Some(report),
        }
    }
}
