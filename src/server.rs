//! The pump process: owns the slave, the segment and the control socket of one `ipc_key`.
//!
//! It is started on demand by the first client (`control::attach`), detaches itself, and
//! exits shortly after its last client leaves. Clients that die are noticed by the hang-up
//! of their socket and their lane is reclaimed at once; the others never miss a period.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use crate::config::Config;
use crate::control::{self, HELLO, Incoming, Msg, PROTO_VERSION, REPLY, SETUP, WELCOME};
use crate::mix::Format;
use crate::pump::{Engine, Pump};
use crate::segment::{MAX_LANES, Segment, now_ns};
use crate::slave::AlsaSlave;
use crate::sys;

/// How long a pump with no clients keeps the device open, so that programs that close and
/// reopen (a player between tracks) do not pay for a new pump each time.
const LINGER_NS: u64 = 500_000_000;

struct Peer {
    sock: OwnedFd,
    slot: Option<usize>,
    pid: i32,
    /// Why this peer may not attach; told in answer to its HELLO, so it is read, not reset.
    denied: Option<String>,
}

fn log(msg: &str) {
    let _ = writeln!(std::io::stderr(), "rdmix-pump[{}]: {msg}", sys::pid());
}

/// Whether a peer may use this pump, following `ipc_perm` like file permissions.
fn admitted(cfg: &Config, sock: &OwnedFd) -> Result<i32, String> {
    let (pid, uid, gid) = sys::peer_cred(sock).map_err(|e| format!("cannot read peer credentials: {e}"))?;
    let owner = sys::euid();
    let group = cfg.ipc_gid.unwrap_or_else(sys::egid);
    let ok = uid == owner
        || uid == 0
        || (cfg.ipc_perm & 0o060 == 0o060 && (gid == group || sys::peer_groups(sock).contains(&group)))
        || cfg.ipc_perm & 0o006 == 0o006;
    if ok {
        Ok(pid)
    } else {
        Err(format!(
            "rdmix: ipc_key {:#x}: permission denied: the pump belongs to uid {owner} with ipc_perm {:04o} (group {group}); \
             set ipc_perm 0660 and ipc_gid to share it, or ipc_key_add_uid true for a pump per user",
            cfg.ipc_key, cfg.ipc_perm
        ))
    }
}

/// Entry point of `rdmix-pump`. Returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    sys::ignore_sigpipe();
    let cfg = match Config::from_pump_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rdmix-pump: {e}");
            return 2;
        }
    };
    let report = match sys::daemonize() {
        Ok(sys::Forked::Parent(r)) => return relay_startup(r),
        Ok(sys::Forked::Daemon(w)) => w,
        Err(e) => {
            eprintln!("rdmix: pump: cannot detach: {e}");
            return 1;
        }
    };
    run(cfg, report)
}

/// In the original process: pass the daemon's verdict to whoever started us.
fn relay_startup(r: OwnedFd) -> i32 {
    let mut s = String::new();
    let _ = std::fs::File::from(r).read_to_string(&mut s);
    let s = s.trim();
    if s == "ok" || s == "busy" {
        return 0;
    }
    match s.split_once(' ') {
        Some((code, msg)) => {
            eprintln!("{msg}");
            code.parse::<i32>()
                .map(|c| c.abs())
                .ok()
                .filter(|c| *c > 1)
                .unwrap_or(1)
        }
        None => {
            eprintln!("rdmix: pump died during start-up");
            1
        }
    }
}

fn say(report: &mut Option<std::fs::File>, text: &str) {
    if let Some(mut f) = report.take() {
        let _ = f.write_all(text.as_bytes());
    }
}

fn run(cfg: Config, report: OwnedFd) -> i32 {
    let mut report = Some(std::fs::File::from(report));
    let listener = match sys::listen(&control::socket_name(cfg.ipc_key)) {
        Ok(l) => l,
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
            say(&mut report, "busy"); // another pump won the race; clients will reach it
            return 0;
        }
        Err(e) => {
            say(
                &mut report,
                &format!("{} rdmix: ipc_key {:#x}: cannot listen: {e}", -libc::EIO, cfg.ipc_key),
            );
            return 1;
        }
    };
    let (slave, dev, chmap) = match AlsaSlave::open(&cfg.slave) {
        Ok(s) => s,
        Err((e, msg)) => {
            say(&mut report, &format!("{e} {msg}"));
            return 1;
        }
    };
    let (seg, seg_fd) = match Segment::create(&dev, &chmap, cfg.ipc_perm, cfg.ipc_gid) {
        Ok(s) => s,
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            say(
                &mut report,
                &format!("-{errno} rdmix: ipc_perm/ipc_gid: cannot create the shared segment: {e}"),
            );
            return 1;
        }
    };
    let seg = Arc::new(seg);
    let engine = match Engine::new(seg.clone()) {
        Ok(e) => e,
        Err(e) => {
            say(
                &mut report,
                &format!("{} rdmix: slave.pcm \"{}\": {e}", -libc::EINVAL, cfg.slave.pcm),
            );
            return 1;
        }
    };
    say(&mut report, "ok");
    drop(report);
    sys::redirect_stdio(std::env::var_os("RDMIX_PUMP_LOG").as_deref().map(std::path::Path::new));
    log(&format!(
        "key {:#x}: slave \"{}\" ({}) at {} Hz, {} ch, {}, period {} / buffer {} frames",
        cfg.ipc_key,
        cfg.slave.pcm,
        slave.type_name(),
        dev.rate,
        dev.channels,
        Format::lookup(dev.format).map(|f| f.name()).unwrap_or_default(),
        dev.period_frames,
        dev.buffer_frames
    ));
    sys::raise_priority();
    let mut pump = Pump::new(engine, slave, now_ns());
    let code = serve(&cfg, &listener, &seg_fd, &mut pump);
    log(&format!(
        "exiting ({code}) after {} periods, {} slave xruns",
        pump.stats.periods, pump.stats.slave_xruns
    ));
    code
}

fn serve(cfg: &Config, listener: &OwnedFd, seg_fd: &OwnedFd, pump: &mut Pump<AlsaSlave>) -> i32 {
    let mut peers: Vec<Peer> = Vec::new();
    let mut wakers: Vec<Option<OwnedFd>> = (0..MAX_LANES).map(|_| None).collect();
    let mut idle_since: Option<u64> = Some(now_ns());
    let mut wake = Vec::new();
    let mut due = now_ns();
    loop {
        let now = now_ns();
        if now >= due {
            wake.clear();
            match pump.service(now, &mut wake) {
                Ok(next) => due = next,
                Err(e) => {
                    log(&format!(
                        "slave \"{}\" failed: {}",
                        cfg.slave.pcm,
                        crate::boundary::pcm::strerror(e)
                    ));
                    pump.fail(e);
                    for w in wakers.iter().flatten() {
                        sys::eventfd_signal(w.as_fd());
                    }
                    return 1;
                }
            }
            for &i in &wake {
                if let Some(w) = &wakers[i] {
                    sys::eventfd_signal(w.as_fd());
                }
            }
        }
        if peers.is_empty() {
            let since = *idle_since.get_or_insert(now);
            if now.saturating_sub(since) > LINGER_NS {
                return 0;
            }
        } else {
            idle_since = None;
        }
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(peers.len() + 1);
        fds.push(sys::pollfd(listener.as_raw_fd(), libc::POLLIN));
        fds.extend(peers.iter().map(|p| sys::pollfd(p.sock.as_raw_fd(), libc::POLLIN)));
        let timeout_ms = (due.saturating_sub(now_ns()).div_ceil(1_000_000)).min(LINGER_NS / 1_000_000) as i32;
        if let Err(e) = sys::poll(&mut fds, timeout_ms) {
            log(&format!("poll: {e}"));
            return 1;
        }
        let mut gone: Vec<usize> = Vec::new();
        for (i, pfd) in fds.iter().enumerate().skip(1) {
            if pfd.revents == 0 {
                continue;
            }
            let peer = &mut peers[i - 1];
            let keep = match control::recv(&peer.sock) {
                Ok(Incoming::Msg(m, fd)) => handle(cfg, pump, seg_fd, peer, &mut wakers, *m, fd),
                Ok(Incoming::Garbage) => false,
                Ok(Incoming::Closed) => false,
                Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            };
            if !keep {
                gone.push(i - 1);
            }
        }
        for i in gone.into_iter().rev() {
            let p = peers.swap_remove(i);
            if let Some(s) = p.slot {
                pump.engine.detach(s);
                wakers[s] = None;
                log(&format!("client pid {} left lane {s}", p.pid));
            }
        }
        if fds[0].revents != 0 {
            while let Ok(Some(sock)) = sys::accept(listener) {
                let (pid, denied) = match admitted(cfg, &sock) {
                    Ok(pid) => (pid, None),
                    Err(msg) => (0, Some(msg)),
                };
                peers.push(Peer {
                    sock,
                    slot: None,
                    pid,
                    denied,
                });
            }
        }
    }
}

/// Handles one message; `false` drops the peer.
fn handle(
    cfg: &Config,
    pump: &mut Pump<AlsaSlave>,
    seg_fd: &OwnedFd,
    peer: &mut Peer,
    wakers: &mut [Option<OwnedFd>],
    m: Msg,
    fd: Option<OwnedFd>,
) -> bool {
    if let Some(why) = &peer.denied {
        let _ = control::send(&peer.sock, Msg::error(WELCOME, libc::EACCES, why), None);
        return false;
    }
    match (m.kind, peer.slot) {
        (HELLO, None) => {
            if m.args[0] != PROTO_VERSION {
                let msg = format!(
                    "rdmix: ipc_key {:#x}: the running pump speaks protocol {PROTO_VERSION}, this client {}; \
                     close the programs using the old rdmix or give this one another ipc_key",
                    cfg.ipc_key, m.args[0]
                );
                let _ = control::send(&peer.sock, Msg::error(WELCOME, libc::EPROTO, &msg), None);
                return false;
            }
            if m.text() != cfg.slave.pcm {
                let msg = format!(
                    "rdmix: ipc_key {:#x}: in use by a pump for slave.pcm \"{}\", not \"{}\"; give each device its own ipc_key",
                    cfg.ipc_key,
                    cfg.slave.pcm,
                    m.text()
                );
                let _ = control::send(&peer.sock, Msg::error(WELCOME, libc::EBUSY, &msg), None);
                return false;
            }
            let Some(ev) = fd else { return false };
            let Some(slot) = (0..MAX_LANES).find(|i| wakers[*i].is_none()) else {
                let msg = format!("rdmix: ipc_key {:#x}: all {MAX_LANES} lanes are in use", cfg.ipc_key);
                let _ = control::send(&peer.sock, Msg::error(WELCOME, libc::EBUSY, &msg), None);
                return false;
            };
            pump.engine.attach(slot);
            wakers[slot] = Some(ev);
            peer.slot = Some(slot);
            let mut w = Msg::new(WELCOME);
            w.slot = slot as u32;
            log(&format!("client pid {} took lane {slot}", peer.pid));
            control::send(&peer.sock, w, Some(seg_fd.as_fd())).is_ok()
        }
        (SETUP, Some(slot)) => {
            let [format, channels, rate, buffer] = m.args;
            let r = i32::try_from(format)
                .ok()
                .and_then(Format::lookup)
                .ok_or_else(|| format!("unsupported sample format {format}"))
                .and_then(|f| {
                    let bindings = control::parse_bindings(&m.text())?;
                    pump.engine
                        .setup(slot, f, channels as u32, rate as u32, buffer, &bindings)
                });
            let reply = match r {
                Ok(()) => Msg::new(REPLY),
                Err(e) => Msg::error(REPLY, libc::EINVAL, &format!("rdmix: hw_params: {e}")),
            };
            control::send(&peer.sock, reply, None).is_ok()
        }
        // Anything else is a protocol violation: drop the peer, keep everyone else.
        _ => false,
    }
}
