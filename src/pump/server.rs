//! The pump process's loop: owns the control socket of one `ipc_key`, the slave, and the
//! segment.
//!
//! The pump is started on demand by the first client and opens the slave when that client's
//! HELLO brings the configuration. It exits shortly after its last client leaves. Clients
//! that die are noticed by the hang-up of their socket and their lane is reclaimed at once;
//! the others never miss a period.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use super::admission::{Credentials, admit};
use super::engine::Engine;
use super::pacing::Pump;
use super::slave::AlsaSlave;
use crate::alsa::strerror;
use crate::config::{Bindings, Config};
use crate::dsp::format::Format;
use crate::error::{Error, Result};
use crate::shm::segment::{MAX_LANES, Segment};
use crate::shm::wire::{self, HELLO, Incoming, Msg, PROTO_VERSION, REPLY, SETUP, WELCOME};
use crate::sys;
use crate::sys::time::now_ns;

/// How long a pump with no clients keeps the device open, so that programs that close and
/// reopen (a player between tracks) do not pay for a new pump each time.
const LINGER_NS: u64 = 500_000_000;

fn log(msg: &str) {
    let _ = writeln!(std::io::stderr(), "rdmix-pump[{}]: {msg}", sys::process::pid());
}

struct Peer {
    sock: OwnedFd,
    cred: Credentials,
    /// Its lane, once its HELLO was accepted.
    slot: Option<usize>,
    bindings: Bindings,
}

/// What the pump runs once the first HELLO has opened the slave.
struct Running {
    /// The configuration the slave was opened with: the pump's own copy.
    cfg: Config,
    pump: Pump<AlsaSlave>,
    seg_fd: OwnedFd,
}

pub struct Server {
    key: u32,
    listener: OwnedFd,
    running: Option<Running>,
    peers: Vec<Peer>,
    /// Each lane's eventfd, to signal when its client's wake-up falls due.
    wakers: Vec<Option<OwnedFd>>,
    wake: Vec<usize>,
    due: u64,
    idle_since: Option<u64>,
}

impl Server {
    pub fn new(key: u32, listener: OwnedFd) -> Server {
        Server {
            key,
            listener,
            running: None,
            peers: Vec::new(),
            wakers: (0..MAX_LANES).map(|_| None).collect(),
            wake: Vec::new(),
            due: now_ns(),
            idle_since: Some(now_ns()),
        }
    }

    /// Runs until the last client has gone (and the linger passed) or the slave fails.
    /// Returns the process exit code.
    pub fn serve(mut self) -> i32 {
        let code = loop {
            let now = now_ns();
            if let Err(e) = self.service(now) {
                break self.give_up(&e);
            }
            if self.lingered_out(now) {
                break 0;
            }
            if let Err(e) = self.poll_once() {
                log(&format!("poll: {e}"));
                break 1;
            }
        };
        if let Some(r) = &self.running {
            log(&format!(
                "exiting ({code}) after {} periods, {} slave xruns",
                r.pump.stats.periods, r.pump.stats.slave_xruns
            ));
        }
        code
    }

    /// Mixes whatever is due and wakes the clients whose wake-up fell due.
    fn service(&mut self, now: u64) -> Result<()> {
        let Some(r) = &mut self.running else { return Ok(()) };
        if now < self.due {
            return Ok(());
        }
        self.wake.clear();
        self.due = r.pump.service(now, &mut self.wake)?;
        for &i in &self.wake {
            if let Some(w) = &self.wakers[i] {
                sys::fd::eventfd_signal(w.as_fd());
            }
        }
        Ok(())
    }

    /// The slave failed: tell every client through the segment, wake them all, exit.
    fn give_up(&self, e: &Error) -> i32 {
        let Some(r) = &self.running else { return 1 };
        log(&format!("slave \"{}\" failed: {}", r.cfg.slave.pcm, strerror(e.neg())));
        r.pump.fail(e);
        for w in self.wakers.iter().flatten() {
            sys::fd::eventfd_signal(w.as_fd());
        }
        1
    }

    fn lingered_out(&mut self, now: u64) -> bool {
        if !self.peers.is_empty() {
            self.idle_since = None;
            return false;
        }
        let since = *self.idle_since.get_or_insert(now);
        now.saturating_sub(since) > LINGER_NS
    }

    /// Sleeps until the next period is due or a socket stirs, then handles what came in.
    fn poll_once(&mut self) -> std::io::Result<()> {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(self.peers.len() + 1);
        fds.push(sys::fd::pollfd(self.listener.as_raw_fd(), libc::POLLIN));
        fds.extend(
            self.peers
                .iter()
                .map(|p| sys::fd::pollfd(p.sock.as_raw_fd(), libc::POLLIN)),
        );
        let wait_ns = if self.running.is_some() {
            self.due.saturating_sub(now_ns())
        } else {
            LINGER_NS
        };
        let timeout_ms = wait_ns.div_ceil(1_000_000).min(LINGER_NS / 1_000_000) as i32;
        sys::fd::poll(&mut fds, timeout_ms)?;
        let mut gone: Vec<usize> = Vec::new();
        for (i, pfd) in fds.iter().enumerate().skip(1) {
            if pfd.revents != 0 && !self.receive(i - 1) {
                gone.push(i - 1);
            }
        }
        for i in gone.into_iter().rev() {
            self.drop_peer(i);
        }
        if fds[0].revents != 0 {
            self.accept_all();
        }
        Ok(())
    }

    /// Reads one message from peer `i`; `false` drops the peer.
    fn receive(&mut self, i: usize) -> bool {
        match wire::recv(&self.peers[i].sock) {
            Ok(Incoming::Msg(m, fd)) => self.handle(i, *m, fd),
            Ok(Incoming::Garbage | Incoming::Closed) => false,
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        }
    }

    fn drop_peer(&mut self, i: usize) {
        let p = self.peers.swap_remove(i);
        if let Some(s) = p.slot {
            if let Some(r) = &mut self.running {
                r.pump.engine.detach(s);
            }
            self.wakers[s] = None;
            log(&format!("client pid {} left lane {s}", p.cred.pid));
        }
    }

    fn accept_all(&mut self) {
        while let Ok(Some(sock)) = sys::socket::accept(&self.listener) {
            // A peer whose credentials cannot be read is not a peer.
            if let Ok(cred) = Credentials::of(&sock) {
                self.peers.push(Peer {
                    sock,
                    cred,
                    slot: None,
                    bindings: Bindings::default(),
                });
            }
        }
    }

    /// Handles one message from peer `i`; `false` drops the peer.
    fn handle(&mut self, i: usize, m: Msg, fd: Option<OwnedFd>) -> bool {
        match (m.kind, self.peers[i].slot) {
            (HELLO, None) => match self.hello(i, &m, fd) {
                Ok(()) => true,
                Err(e) => {
                    let _ = wire::send(&self.peers[i].sock, &Msg::error(WELCOME, &e), None);
                    false
                }
            },
            (SETUP, Some(slot)) => {
                let reply = match self.setup(i, slot, &m) {
                    Ok(()) => Msg::new(REPLY),
                    Err(e) => Msg::error(REPLY, &e),
                };
                wire::send(&self.peers[i].sock, &reply, None).is_ok()
            }
            // Anything else is a protocol violation: drop the peer, keep everyone else.
            _ => false,
        }
    }

    /// Admits peer `i`, opening the slave if this is the first client, and gives it a lane.
    fn hello(&mut self, i: usize, m: &Msg, eventfd: Option<OwnedFd>) -> Result<()> {
        let key = self.key;
        // Until a configuration is running, the pump is its owner's alone (ipc_perm 0600).
        let (perm, gid) = self
            .running
            .as_ref()
            .map_or((0o600, None), |r| (r.cfg.ipc_perm, r.cfg.ipc_gid));
        admit(&self.peers[i].cred, key, perm, gid)?;
        if m.args[0] != PROTO_VERSION {
            return Err(Error::new(
                libc::EPROTO,
                format!(
                    "rdmix: ipc_key {key:#x}: the running pump speaks protocol {PROTO_VERSION}, this client {}; \
                     close the programs using the old rdmix or give this one another ipc_key",
                    m.args[0]
                ),
            ));
        }
        let cfg = Config::decode(m.payload())?;
        let Some(ev) = eventfd else {
            return Err(Error::new(libc::EPROTO, "rdmix: HELLO came without an eventfd"));
        };
        match &self.running {
            Some(r) if r.cfg.slave.pcm != cfg.slave.pcm => {
                return Err(Error::new(
                    libc::EBUSY,
                    format!(
                        "rdmix: ipc_key {key:#x}: in use by a pump for slave.pcm \"{}\", not \"{}\"; give each device its own ipc_key",
                        r.cfg.slave.pcm, cfg.slave.pcm
                    ),
                ));
            }
            Some(_) => {}
            None => self.running = Some(start(key, &cfg)?),
        }
        let Some(slot) = (0..MAX_LANES).find(|s| self.wakers[*s].is_none()) else {
            return Err(Error::new(
                libc::EBUSY,
                format!("rdmix: ipc_key {key:#x}: all {MAX_LANES} lanes are in use"),
            ));
        };
        let Some(r) = self.running.as_mut() else {
            return Err(Error::new(libc::EIO, "rdmix: the pump has no device open"));
        };
        r.pump.engine.attach(slot);
        self.wakers[slot] = Some(ev);
        let peer = &mut self.peers[i];
        peer.slot = Some(slot);
        peer.bindings = cfg.bindings;
        log(&format!("client pid {} took lane {slot}", peer.cred.pid));
        let mut w = Msg::new(WELCOME);
        w.slot = slot as u32;
        wire::send(&peer.sock, &w, Some(r.seg_fd.as_fd()))
            .map_err(|e| Error::io("rdmix: the client left during its HELLO", e))
    }

    /// A client's hw_params.
    fn setup(&mut self, i: usize, slot: usize, m: &Msg) -> Result<()> {
        let [format, channels, rate, buffer] = m.args;
        let f = i32::try_from(format).ok().and_then(Format::lookup).ok_or_else(|| {
            Error::new(
                libc::EINVAL,
                format!("rdmix: hw_params: unsupported sample format {format}"),
            )
        })?;
        let (channels, rate) = (channels.min(u32::MAX as u64) as u32, rate.min(u32::MAX as u64) as u32);
        let r = self
            .running
            .as_mut()
            .expect("a peer with a lane implies a running pump");
        r.pump
            .engine
            .setup(slot, f, channels, rate, buffer, &self.peers[i].bindings)
    }
}

/// Opens the slave and makes the segment: what the first HELLO sets going.
fn start(key: u32, cfg: &Config) -> Result<Running> {
    let (slave, dev, chmap) = AlsaSlave::open(&cfg.slave)?;
    let (seg, seg_fd) = Segment::create(&dev, &chmap, cfg.ipc_perm, cfg.ipc_gid)
        .map_err(|e| Error::io("rdmix: ipc_perm/ipc_gid: cannot create the shared segment", e))?;
    let engine = Engine::new(Arc::new(seg), dev, chmap)?;
    log(&format!(
        "key {key:#x}: slave \"{}\" ({}) at {} Hz, {} ch, {}, period {} / buffer {} frames",
        cfg.slave.pcm,
        slave.type_name(),
        dev.rate,
        dev.channels,
        Format::lookup(dev.format).map(|f| f.name()).unwrap_or_default(),
        dev.period_frames,
        dev.buffer_frames
    ));
    Ok(Running {
        cfg: cfg.clone(),
        pump: Pump::new(engine, slave, now_ns()),
        seg_fd,
    })
}
