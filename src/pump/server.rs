//! The pump process's loop: owns the control socket of one `ipc_key`, the slave, the
//! header segment, and every client's lane.
//!
//! The pump is started on demand by the first client (or mixer) and opens the slave when a
//! client's HELLO brings the configuration. It exits shortly after its last client leaves,
//! unless a mixer watches it (WATCH): then it closes the device instead (the card is
//! free) and stays, so the mixer's Master and its events outlive the programs. Clients
//! that die are noticed by the hang-up of their socket and their lane is reclaimed at once;
//! the others never miss a period.
//!
//! Nothing a peer sends is trusted, and no peer can make the loop wait:
//! - a peer that may not use the pump is refused at accept, before it says anything;
//! - a peer that says nothing is dropped after `HELLO_DEADLINE_NS`, and a user other than
//!   the owner may keep only `MAX_PENDING_PER_UID` connections waiting;
//! - running out of descriptors pauses accepting for `ACCEPT_BACKOFF_NS`, never a busy loop;
//! - every descriptor a client uses is made here, and every socket here is non-blocking, so
//!   nothing a client does to its end can block the pump.
//!
//! The loop sleeps in one epoll set, changed only when a peer comes or goes (and when the
//! slave's descriptors start or stop pacing it), so a wake-up costs the same for 1 client or
//! 64. It wakes for exactly three things: a socket that stirs, the slave's descriptors (a
//! card's interrupt), and the nanosecond of the next deadline. With no
//! lane running it has no deadline at all: the device is stopped and the pump sleeps until
//! a client's KICK.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::admission::{Credentials, admit, within_share};
use super::pace::Next;
use super::play::Player;
use super::play::mixer::Mixer;
use super::record::Recorder;
use super::record::splitter::Splitter;
use super::side::{Device, Side};
use super::slave::AlsaSlave;
use crate::alsa::strerror;
use crate::config::{Bindings, Config};
use crate::dsp::format::Format;
use crate::dsp::gain::{self, Volume};
use crate::error::{Error, Result};
use crate::shm::clock::frames_to_ns;
use crate::shm::lane::LaneMem;
use crate::shm::segment::{MAX_LANES, SegmentWriter};
use crate::sys;
use crate::sys::epoll::{Epoll, Event, NO_EVENT};
use crate::sys::socket::Addr;
use crate::sys::time::now_ns;
use crate::wire::Stream;
use crate::wire::status::{ClientStatus, PumpStatus};
use crate::wire::{
    self, CHANGED, HELLO, Incoming, KICK, MASTER, Msg, PROTO_VERSION, PumpArgs, REPLY, Rendezvous, SETUP, STATUS,
    VOLUME, WATCH, WELCOME,
};

/// The least time between two rewinds for volume changes (see `Server::set_volume`).
const VOLUME_REWIND_NS: u64 = 20_000_000;

/// How long a pump with no clients keeps the device open, so that programs that close and
/// reopen (a player between tracks) do not pay for a new pump each time.
const LINGER_NS: u64 = 500_000_000;
/// How long a connected peer has to say HELLO.
const HELLO_DEADLINE_NS: u64 = 2_000_000_000;
/// Connections one user other than the owner may keep waiting for their HELLO.
const MAX_PENDING_PER_UID: usize = 8;
/// Mixers one user other than the owner may keep watching (each holds a descriptor).
const MAX_WATCHERS_PER_UID: usize = 8;
/// How long to stop accepting after running out of descriptors.
const ACCEPT_BACKOFF_NS: u64 = 100_000_000;
/// Connections taken per wake-up, so that a flood cannot hold up a period.
const ACCEPT_BATCH: usize = 256;

/// epoll tokens: the listener, the slave's descriptors (by index), and peers (by
/// descriptor, which is unique while the peer is connected).
const TOKEN_LISTENER: u64 = 0;
const TOKEN_SLAVE: u64 = 1;
const TOKEN_PEER: u64 = 1 << 32;
/// Events taken per wake-up; more wait for the next (level-triggered) wake-up.
const EVENTS: usize = 64;

fn log(msg: &str) {
    // One write per line: the log is opened O_APPEND and shared by both directions' pumps,
    // whose lines must not interleave.
    let line = format!("rdmix-pump[{}]: {msg}\n", sys::process::pid());
    let _ = std::io::stderr().write_all(line.as_bytes());
}

struct Peer {
    sock: OwnedFd,
    cred: Credentials,
    /// When it must have said HELLO by; `None` once it holds a lane.
    hello_by: Option<u64>,
    /// Its program name, read when it took a lane (for `rdmix-status`).
    program: String,
    /// Its lane, once its HELLO was accepted.
    slot: Option<usize>,
    bindings: Bindings,
    /// A mixer that asked to hear of changes (WATCH).
    watcher: bool,
}

/// What watching mixers have yet to hear of (see `Server::tell_watchers`).
#[derive(Default)]
struct Changes {
    /// Everyone's concern (the master).
    all: bool,
    /// The users whose programs changed.
    uids: Vec<u32>,
}

/// What the pump runs once the first HELLO has opened the slave.
struct Running {
    /// The configuration the slave was opened with: the pump's own copy.
    cfg: Config,
    pump: Box<dyn Side>,
    seg_fd: OwnedFd,
}

pub struct Server {
    args: PumpArgs,
    listener: OwnedFd,
    running: Option<Running>,
    peers: Vec<Peer>,
    /// The write end of each lane's wake-up pipe.
    wakers: Vec<Option<OwnedFd>>,
    wake: Vec<usize>,
    /// When the pump wants servicing next.
    next: Next,
    idle_since: Option<u64>,
    /// Accepting is paused until then (descriptors ran out); the listener is out of the set.
    accept_after: u64,
    listening: bool,
    started_ns: u64,
    epoll: Epoll,
    events: Vec<Event>,
    /// The slave's poll descriptors, fetched once; in the epoll set while they pace the pump.
    slave_fds: Vec<libc::pollfd>,
    slave_watched: bool,
    /// The log has said that the slave's descriptors pace the pump.
    said_paced: bool,
    /// A slave descriptor stirred and the slave says it can take a period.
    slave_ready: bool,
    /// A client asked an idle pump to start the device.
    kicked: bool,
    /// When a volume change last asked for a rewind (see `set_volume`).
    volume_kick_ns: u64,
    /// epoll wake-ups, for the exit log.
    wakeups: u64,
    /// The master, the pump's own: kept while no device is open, and set on the next.
    master: Volume,
    /// The master has been decided in this pump's life (set, or taken from the owner's
    /// remembered one): a remembered master no longer applies.
    master_decided: bool,
    changes: Changes,
}

impl Server {
    pub fn new(args: PumpArgs, listener: OwnedFd) -> std::io::Result<Server> {
        let epoll = Epoll::new()?;
        epoll.add(listener.as_raw_fd(), libc::POLLIN, TOKEN_LISTENER)?;
        Ok(Server {
            args,
            listener,
            running: None,
            peers: Vec::new(),
            wakers: (0..MAX_LANES).map(|_| None).collect(),
            wake: Vec::with_capacity(MAX_LANES),
            next: Next::Idle,
            idle_since: Some(now_ns()),
            accept_after: 0,
            listening: true,
            started_ns: now_ns(),
            epoll,
            events: vec![NO_EVENT; EVENTS],
            slave_fds: Vec::new(),
            slave_watched: false,
            said_paced: false,
            slave_ready: false,
            kicked: false,
            volume_kick_ns: 0,
            wakeups: 0,
            master: Volume::default(),
            master_decided: false,
            changes: Changes::default(),
        })
    }

    /// Runs until the last client has gone (and the linger passed) or the slave fails.
    /// Returns the process exit code.
    pub fn serve(mut self) -> i32 {
        let code = loop {
            let now = now_ns();
            if let Err(e) = self.service(now) {
                break self.give_up(&e);
            }
            self.expire_silent(now);
            if self.lingered_out(now) {
                break 0;
            }
            if let Err(e) = self.sleep(now) {
                log(&format!("epoll: {e}"));
                break 1;
            }
            self.tell_watchers();
        };
        let (cpu_us, switches) = (sys::process::cpu_us(), sys::process::context_switches());
        let periods = self.running.as_ref().map_or(0, |r| r.pump.pace().stats.periods);
        let xruns = self.running.as_ref().map_or(0, |r| r.pump.pace().stats.slave_xruns);
        log(&format!(
            "exiting ({code}) after {periods} periods, {xruns} slave xruns; cpu {cpu_us} us, {} wake-ups, {switches} context switches",
            self.wakeups
        ));
        code
    }

    /// Mixes whatever is due and wakes the clients whose wake-up fell due.
    fn service(&mut self, now: u64) -> Result<()> {
        let Some(r) = &mut self.running else { return Ok(()) };
        let kicked = std::mem::take(&mut self.kicked);
        if kicked {
            r.pump.kick(now)?;
        }
        let ready = std::mem::take(&mut self.slave_ready);
        // A kick is looked at at once: a lane that starts or leaves may call for a rewind.
        let due = kicked
            || match self.next {
                Next::Idle => !r.pump.pace().is_idle(),
                Next::At(t) => now >= t,
                Next::Device { by } => ready || now >= by,
            };
        if !due {
            return Ok(());
        }
        self.wake.clear();
        let xruns = r.pump.pace().stats.slave_xruns;
        let step = r.pump.service(now, &mut self.wake);
        let stats = r.pump.pace().stats;
        // Each slave xrun is worth a line (they are rare); past 20 the count in the exit
        // line and rdmix-status tell the rest, so a failing card cannot flood the log.
        if stats.slave_xruns > xruns && xruns < 20 {
            log(&format!(
                "slave xrun {} after {} periods; recovered",
                stats.slave_xruns, stats.periods
            ));
        }
        self.next = step?;
        for &i in &self.wake {
            if let Some(w) = &self.wakers[i] {
                sys::fd::poke(w.as_fd());
            }
        }
        self.watch_slave(now);
        Ok(())
    }

    /// The slave's descriptors pace the pump only while it waits on the device; a stopped
    /// device's descriptors would report an error state without end.
    fn watch_slave(&mut self, now: u64) {
        let Some(r) = &mut self.running else { return };
        let watch = r.pump.pace().sleeps_on_device() && matches!(self.next, Next::Device { .. });
        if watch != self.slave_watched {
            let mut refused = None;
            for (i, p) in self.slave_fds.iter().enumerate() {
                if !watch {
                    self.epoll.remove(p.fd);
                } else if let Err(e) = self.epoll.add(p.fd, p.events, TOKEN_SLAVE + i as u64) {
                    refused = Some(e);
                    break;
                }
            }
            if let Some(e) = refused {
                // Some plugins' descriptors are files epoll cannot watch (null's /dev/null
                // and /dev/full: EPERM). Sleeping on them would sleep until the stall limit.
                for p in &self.slave_fds {
                    self.epoll.remove(p.fd);
                }
                log(&format!(
                    "the slave's poll descriptors cannot be watched ({e}); pacing it by the clock"
                ));
                r.pump.pace_mut().pace_by_clock();
                self.next = Next::At(now);
                self.slave_watched = false;
                return;
            }
            self.slave_watched = watch;
        }
        if watch && !self.said_paced {
            log(&format!(
                "sleeping on the slave's {} poll descriptor(s)",
                self.slave_fds.len()
            ));
            self.said_paced = true;
        }
    }

    /// The slave failed: tell every client through the segment, wake them all, exit.
    fn give_up(&self, e: &Error) -> i32 {
        let Some(r) = &self.running else { return 1 };
        log(&format!("slave \"{}\" failed: {}", r.cfg.slave.pcm, strerror(e.neg())));
        r.pump.pace().fail(e);
        for w in self.wakers.iter().flatten() {
            sys::fd::poke(w.as_fd());
        }
        1
    }

    /// Whether the linger has passed with no program (and no connection on its way to
    /// being one): then a pump nobody watches exits, and one a mixer watches closes the
    /// device and stays, for the mixer's Master and events.
    fn lingered_out(&mut self, now: u64) -> bool {
        if self.peers.iter().any(|p| !p.watcher) {
            self.idle_since = None;
            return false;
        }
        let since = *self.idle_since.get_or_insert(now);
        if now.saturating_sub(since) <= LINGER_NS {
            return false;
        }
        if self.peers.is_empty() {
            return true;
        }
        if self.running.is_some() {
            self.close_device();
        }
        false
    }

    /// Closes the slave and forgets what was opened with it; the next HELLO opens it anew.
    fn close_device(&mut self) {
        for p in &self.slave_fds {
            self.epoll.remove(p.fd);
        }
        self.slave_fds.clear();
        (self.slave_watched, self.said_paced, self.slave_ready, self.kicked) = (false, false, false, false);
        self.next = Next::Idle;
        if let Some(r) = self.running.take() {
            let s = r.pump.pace().stats;
            log(&format!(
                "no program for {} ms: closing \"{}\" after {} periods, {} slave xruns; {} mixer(s) watch",
                LINGER_NS / 1_000_000,
                r.cfg.slave.pcm,
                s.periods,
                s.slave_xruns,
                self.peers.len()
            ));
        }
        self.changes.all = true;
    }

    /// Drops the peers that connected and never said HELLO.
    fn expire_silent(&mut self, now: u64) {
        for i in (0..self.peers.len()).rev() {
            if self.peers[i].hello_by.is_some_and(|t| now > t) {
                self.drop_peer(i);
            }
        }
    }

    /// When the loop must wake next even if nothing stirs; `None`: only an event wakes it.
    fn next_deadline(&self) -> Option<u64> {
        let pump = self.running.as_ref().and_then(|_| self.next.deadline());
        let linger = self
            .idle_since
            .filter(|_| self.peers.is_empty() || self.running.is_some())
            .map(|t| t + LINGER_NS + 1);
        let hello = self.peers.iter().filter_map(|p| p.hello_by).min().map(|t| t + 1);
        let accept = (!self.listening).then_some(self.accept_after);
        [pump, linger, hello, accept].into_iter().flatten().min()
    }

    /// Sleeps until a descriptor stirs or the next deadline, then handles what came in.
    fn sleep(&mut self, now: u64) -> std::io::Result<()> {
        if !self.listening && now >= self.accept_after {
            self.epoll
                .add(self.listener.as_raw_fd(), libc::POLLIN, TOKEN_LISTENER)?;
            self.listening = true;
        }
        let until = self.next_deadline();
        let mut events = std::mem::take(&mut self.events);
        let n = self.epoll.wait(&mut events, until)?.len();
        self.wakeups += 1;
        let mut slave_stirred = false;
        for ev in &events[..n] {
            let (token, revents) = (ev.u64, ev.events);
            match token {
                TOKEN_LISTENER => self.accept_all(),
                t if t >= TOKEN_PEER => self.peer_event((t - TOKEN_PEER) as RawFd),
                t => {
                    if let Some(p) = self.slave_fds.get_mut((t - TOKEN_SLAVE) as usize) {
                        p.revents = revents as i16;
                        slave_stirred = true;
                    }
                }
            }
        }
        self.events = events;
        if slave_stirred && let Some(r) = &self.running {
            self.slave_ready = r.pump.device().ready(&mut self.slave_fds);
            for p in &mut self.slave_fds {
                p.revents = 0;
            }
        }
        Ok(())
    }

    /// Peer `fd` has a message or hung up.
    fn peer_event(&mut self, fd: RawFd) {
        let Some(i) = self.peers.iter().position(|p| p.sock.as_raw_fd() == fd) else {
            return;
        };
        if !self.receive(i) {
            self.drop_peer(i);
        }
    }

    /// Reads one message from peer `i`; `false` drops the peer.
    fn receive(&mut self, i: usize) -> bool {
        match wire::recv(&self.peers[i].sock) {
            // Descriptors a client sends are closed unread: the pump makes its own.
            Ok(Incoming::Msg(m, _)) => self.handle(i, *m),
            Ok(Incoming::Garbage | Incoming::Closed) => false,
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        }
    }

    fn drop_peer(&mut self, i: usize) {
        let p = self.peers.swap_remove(i);
        self.epoll.remove(p.sock.as_raw_fd());
        if let Some(s) = p.slot {
            if let Some(r) = &mut self.running {
                r.pump.lanes_mut().detach(s);
                // What it left in the slave may be taken back.
                self.kicked = true;
            }
            self.wakers[s] = None;
            self.changes.uids.push(p.cred.uid);
            log(&format!("client pid {} left lane {s}", p.cred.pid));
        }
    }

    /// Sends CHANGED to every mixer that may see what changed since the last time: the
    /// pump's own user sees everything, anyone else only their own programs and the master.
    fn tell_watchers(&mut self) {
        let c = std::mem::take(&mut self.changes);
        if !c.all && c.uids.is_empty() {
            return;
        }
        let owner = sys::user::euid();
        let m = Msg::new(CHANGED);
        for p in self.peers.iter().filter(|p| p.watcher) {
            if c.all || p.cred.uid == owner || c.uids.contains(&p.cred.uid) {
                // A mixer whose queue is full has a CHANGED in it already; a dead one hangs
                // up, and is dropped for that.
                let _ = wire::send_nowait(&p.sock, &m);
            }
        }
    }

    fn accept_all(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            let sock = match sys::socket::accept(&self.listener) {
                Ok(Some(s)) => s,
                Ok(None) => return,
                Err(e) => {
                    // EMFILE and friends leave the connection queued, so the listener stays
                    // readable: stop polling it for a while instead of spinning on it.
                    log(&format!("cannot accept: {e}; pausing new connections"));
                    self.accept_after = now_ns() + ACCEPT_BACKOFF_NS;
                    self.epoll.remove(self.listener.as_raw_fd());
                    self.listening = false;
                    return;
                }
            };
            // A peer whose credentials cannot be read is not a peer.
            let Ok(cred) = Credentials::of(&sock) else { continue };
            if let Err(e) = admit(&cred, &self.args).and_then(|()| self.may_wait(&cred)) {
                // Best effort: the socket is non-blocking, and the refusal is all it gets.
                let _ = wire::send(&sock, &Msg::error(WELCOME, &e), &[]);
                continue;
            }
            if let Err(e) = self
                .epoll
                .add(sock.as_raw_fd(), libc::POLLIN, TOKEN_PEER + sock.as_raw_fd() as u64)
            {
                log(&format!("cannot watch a new connection: {e}"));
                continue;
            }
            self.peers.push(Peer {
                sock,
                cred,
                hello_by: Some(now_ns() + HELLO_DEADLINE_NS),
                program: String::new(),
                slot: None,
                bindings: Bindings::default(),
                watcher: false,
            });
        }
    }

    /// Whether another connection from this peer's user may wait for its HELLO.
    fn may_wait(&self, cred: &Credentials) -> Result<()> {
        if cred.uid == sys::user::euid() {
            return Ok(());
        }
        let waiting = self
            .peers
            .iter()
            .filter(|p| p.hello_by.is_some() && p.cred.uid == cred.uid)
            .count();
        if waiting < MAX_PENDING_PER_UID {
            return Ok(());
        }
        Err(Error::new(
            libc::EAGAIN,
            format!(
                "rdmix: ipc_key {:#x}: {} has {waiting} connections waiting already",
                self.args.key,
                sys::user::describe(cred.uid)
            ),
        ))
    }

    /// Handles one message from peer `i`; `false` drops the peer.
    fn handle(&mut self, i: usize, m: Msg) -> bool {
        match (m.kind, self.peers[i].slot) {
            // A status request takes no lane; the peer hangs up (or times out) after it.
            (STATUS, None) => {
                let reply = if m.args[0] == PROTO_VERSION {
                    Msg::new(STATUS).with_payload(self.status(self.peers[i].cred.uid).encode())
                } else {
                    None
                };
                reply.is_some_and(|r| wire::send(&self.peers[i].sock, &r, &[]).is_ok())
            }
            (HELLO, None) => match self.hello(i, &m) {
                Ok(()) => true,
                Err(e) => {
                    let _ = wire::send(&self.peers[i].sock, &Msg::error(WELCOME, &e), &[]);
                    false
                }
            },
            (WATCH, None) if !self.peers[i].watcher => {
                let reply = match self.watch(i, &m) {
                    Ok(()) => Msg::new(WATCH),
                    Err(e) => Msg::error(WATCH, &e),
                };
                wire::send(&self.peers[i].sock, &reply, &[]).is_ok() && self.peers[i].watcher
            }
            (VOLUME, None) => {
                let reply = match self.set_volume(i, &m) {
                    Ok(()) => Msg::new(VOLUME),
                    Err(e) => Msg::error(VOLUME, &e),
                };
                wire::send(&self.peers[i].sock, &reply, &[]).is_ok()
            }
            // Wakes an idle pump; the lane's state itself is read from its slot, as always.
            (KICK, Some(_)) => {
                self.kicked = true;
                true
            }
            (SETUP, Some(slot)) => {
                let reply = match self.setup(i, slot, &m) {
                    Ok(()) => Msg::new(REPLY),
                    Err(e) => Msg::error(REPLY, &e),
                };
                wire::send(&self.peers[i].sock, &reply, &[]).is_ok()
            }
            // Anything else is a protocol violation: drop the peer, keep everyone else.
            _ => false,
        }
    }

    /// A mixer's WATCH: it stays connected, past the HELLO deadline, and hears of changes.
    fn watch(&mut self, i: usize, m: &Msg) -> Result<()> {
        if m.args[0] != PROTO_VERSION {
            return Err(Error::new(
                libc::EPROTO,
                format!(
                    "rdmix: ipc_key {:#x}: the running pump speaks protocol {PROTO_VERSION}, this mixer {}",
                    self.args.key, m.args[0]
                ),
            ));
        }
        let uid = self.peers[i].cred.uid;
        let watching = self.peers.iter().filter(|p| p.watcher && p.cred.uid == uid).count();
        if uid != sys::user::euid() && watching >= MAX_WATCHERS_PER_UID {
            return Err(Error::new(
                libc::EAGAIN,
                format!(
                    "rdmix: ipc_key {:#x}: {} has {watching} mixers open on it already",
                    self.args.key,
                    sys::user::describe(uid)
                ),
            ));
        }
        self.recall_master(uid, m.args[1]);
        let p = &mut self.peers[i];
        p.watcher = true;
        p.hello_by = None;
        Ok(())
    }

    /// Takes the master its owner last gave this key's pump (HELLO's or WATCH's word for
    /// it), once, and only from the owner: only the owner's choice is theirs to restore.
    fn recall_master(&mut self, uid: u32, arg: u64) {
        if self.master_decided || uid != sys::user::euid() || self.args.stream != Stream::Playback {
            return;
        }
        let Some(v) = wire::level_of(arg) else { return };
        self.master_decided = true;
        self.master = v;
        if let Some(r) = self.running.as_mut() {
            let _ = r.pump.set_volume(None, v);
        }
        self.changes.all = true;
    }

    /// A mixer's VOLUME: checked against who asks (the kernel's word for it) and against
    /// the pump's own record of each lane's owner, never against anything the asker says
    /// of itself.
    fn set_volume(&mut self, i: usize, m: &Msg) -> Result<()> {
        let [target, pid, step, on] = m.args;
        let asker = self.peers[i].cred.uid;
        let refuse = |why: String| {
            Error::new(
                libc::EPERM,
                format!("rdmix: ipc_key {:#x}: volume: {why}", self.args.key),
            )
        };
        let lane = if target == MASTER {
            // On a shared key a member may set the master where the definition the pump
            // was opened with lets them (the pump's own copy of it, never the asker's).
            let members = self.args.shared() && self.running.as_ref().is_some_and(|r| r.cfg.ipc_member_master);
            if asker != sys::user::euid() && !members {
                return Err(refuse(format!(
                    "only {} sets the master (ipc_member_master is off); {} may set their own programs'",
                    sys::user::describe(sys::user::euid()),
                    sys::user::describe(asker)
                )));
            }
            None
        } else {
            let owner = self.peers.iter().find(|p| p.slot.is_some_and(|s| s as u64 == target));
            match owner {
                Some(p) if p.cred.pid as u64 == pid && p.cred.uid == asker => p.slot,
                Some(p) if p.cred.pid as u64 == pid => {
                    return Err(refuse(format!(
                        "pid {pid} belongs to {}, not {}",
                        sys::user::describe(p.cred.uid),
                        sys::user::describe(asker)
                    )));
                }
                _ => {
                    return Err(Error::new(
                        libc::ENOENT,
                        format!(
                            "rdmix: ipc_key {:#x}: volume: no program of pid {pid} plays on lane {target}",
                            self.args.key
                        ),
                    ));
                }
            }
        };
        let v = Volume {
            step: step.min(gain::STEPS as u64) as u32,
            on: on != 0,
        };
        if lane.is_none() && self.args.stream == Stream::Capture {
            return Err(Error::new(
                libc::EINVAL,
                format!("rdmix: ipc_key {:#x}: volume: capture has no master", self.args.key),
            ));
        }
        match self.running.as_mut() {
            Some(r) => r.pump.set_volume(lane, v)?,
            // No device open: the master waits for the next one; a lane has none without it.
            None if lane.is_some() => {
                return Err(Error::new(libc::ENODEV, "rdmix: volume: the pump has no device open"));
            }
            None => {}
        }
        match lane {
            None => {
                self.master = v;
                self.master_decided = true;
                self.changes.all = true;
            }
            Some(_) => self.changes.uids.push(asker),
        }
        let Some(_) = self.running else { return Ok(()) };
        // Looked at at once: what the slave holds was mixed at the old volume. A rewind
        // mixes again all that the slave gives back, so a stream of changes asks for one at
        // most every VOLUME_REWIND_NS: a slider's dozens a second are all heard at once, and
        // a member who floods VOLUME cannot make the pump remix without end (what it set is
        // still mixed from the next period on).
        let now = now_ns();
        if now.saturating_sub(self.volume_kick_ns) >= VOLUME_REWIND_NS {
            self.volume_kick_ns = now;
            self.kicked = true;
        }
        Ok(())
    }

    /// Reads a client's configuration, checks it against the pump's, and opens the slave if
    /// this is the first client.
    fn configure(&mut self, m: &Msg) -> Result<Config> {
        let key = self.args.key;
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
        let busy = |what: String| {
            Error::new(
                libc::EBUSY,
                format!(
                    "rdmix: ipc_key {key:#x}: in use by a pump with {what}, which this configuration does not ask for; \
                     give each configuration its own ipc_key"
                ),
            )
        };
        if (cfg.ipc_key, cfg.ipc_perm, cfg.ipc_gid) != (key, self.args.perm, self.args.gid) {
            return Err(busy(format!("ipc_perm {:04o}", self.args.perm)));
        }
        if self.running.is_none() {
            let mut r = start(&self.args, &cfg)?;
            if self.args.stream == Stream::Playback {
                r.pump.set_volume(None, self.master)?;
            }
            self.slave_fds = r.pump.device().poll_fds();
            if self.slave_fds.is_empty() {
                r.pump.pace_mut().pace_by_clock();
            }
            self.running = Some(r);
        }
        if let Some(d) = self.running.as_ref().and_then(|r| r.cfg.first_difference(&cfg)) {
            return Err(busy(d));
        }
        Ok(cfg)
    }

    /// Admits peer `i` to a lane of its own, with memory and a wake-up pipe made for it.
    fn hello(&mut self, i: usize, m: &Msg) -> Result<()> {
        let key = self.args.key;
        let uid = self.peers[i].cred.uid;
        if m.args[0] == PROTO_VERSION {
            self.recall_master(uid, m.args[2]);
        }
        let held = self
            .peers
            .iter()
            .filter(|p| p.slot.is_some() && p.cred.uid == uid)
            .count();
        let slot = (0..MAX_LANES).find(|s| self.wakers[*s].is_none());
        let bindings = self.configure(m)?.bindings;
        let Some(r) = self.running.as_mut() else {
            return Err(Error::new(libc::EIO, "rdmix: the pump has no device open"));
        };
        within_share(uid, held, r.cfg.ipc_user_lanes, key)?;
        let Some(slot) = slot else {
            return Err(Error::new(
                libc::EBUSY,
                format!("rdmix: ipc_key {key:#x}: all {MAX_LANES} lanes are in use"),
            ));
        };
        let lost = |e| Error::io("rdmix: pump: cannot make a lane", e);
        let (mem, lane_fd) = LaneMem::create().map_err(lost)?;
        let (theirs, mine) = sys::fd::wake_pair().map_err(lost)?;
        let peer = &self.peers[i];
        let mut w = Msg::new(WELCOME);
        w.slot = slot as u32;
        // The lane is the engine's before the client can see it.
        r.pump.lanes_mut().attach(slot, Arc::new(mem));
        // A new program starts at the volume its user last gave it (HELLO `args[1]`), else
        // at full volume, whatever the lane's last one was. It is the client's word, but
        // only for its own lane.
        let start = wire::level_of(m.args[1]).unwrap_or_default();
        if let Err(e) = r.pump.set_volume(Some(slot), start) {
            r.pump.lanes_mut().detach(slot);
            return Err(e);
        }
        if let Err(e) = wire::send(&peer.sock, &w, &[r.seg_fd.as_fd(), lane_fd.as_fd(), theirs.as_fd()]) {
            r.pump.lanes_mut().detach(slot);
            return Err(Error::io("rdmix: the client left during its HELLO", e));
        }
        self.wakers[slot] = Some(mine);
        let peer = &mut self.peers[i];
        peer.slot = Some(slot);
        peer.hello_by = None;
        peer.bindings = bindings;
        peer.program = sys::process::program_of(peer.cred.pid).unwrap_or_default();
        self.changes.uids.push(uid);
        log(&format!("client pid {} (uid {uid}) took lane {slot}", peer.cred.pid));
        Ok(())
    }

    /// What `rdmix-status` shows: the pump's own records, never the clients' say-so (but for
    /// the state each client declares).
    /// What `asker` may read: everything for the pump's own user, and on a shared pump
    /// only their own programs for anyone else (a member learns nothing of another's).
    fn status(&self, asker: u32) -> PumpStatus {
        let mut s = PumpStatus {
            key: self.args.key,
            shared: self.args.shared(),
            uptime_ms: now_ns().saturating_sub(self.started_ns) / 1_000_000,
            cpu_us: sys::process::cpu_us(),
            ..PumpStatus::default()
        };
        s.stream = self.args.stream.name().to_string();
        if self.args.stream == Stream::Playback {
            s.master = Some((self.master.step, self.master.on));
        }
        let Some(r) = &self.running else { return s };
        let dev = r.pump.pace().device();
        s.slave = r.cfg.slave.pcm.clone();
        s.slave_type = r.pump.device().type_name();
        s.format = Format::lookup(dev.format).map(|f| f.name()).unwrap_or_default();
        (s.rate, s.channels, s.period, s.buffer) = (dev.rate, dev.channels, dev.period_frames, dev.buffer_frames);
        s.periods = r.pump.pace().stats.periods;
        s.slave_xruns = r.pump.pace().stats.slave_xruns;
        s.device = if r.pump.pace().is_idle() { "idle" } else { "running" }.to_string();
        let dev_us = frames_to_ns(dev.buffer_frames as u64, dev.rate) / 1000;
        let everything = asker == sys::user::euid();
        for p in self.peers.iter().filter(|p| everything || p.cred.uid == asker) {
            let Some(lane) = p.slot else { continue };
            let Some((setup, state, underruns)) = r.pump.lanes().status(lane) else {
                continue;
            };
            let mut c = ClientStatus {
                pid: p.cred.pid,
                uid: p.cred.uid,
                program: p.program.clone(),
                lane: lane as u32,
                state: state.map_or("corrupt", |s| s.name()).to_string(),
                underruns,
                latency_us: dev_us,
                ..ClientStatus::default()
            };
            c.volume = r.pump.volume(Some(lane)).map(|v| (v.step, v.on));
            if let Some(l) = setup {
                c.format = l.format.name();
                (c.rate, c.channels) = (l.rate, l.channels);
                c.buffer = l.geometry.buffer_frames as u64;
                c.latency_us += frames_to_ns(c.buffer, l.rate) / 1000;
            }
            s.clients.push(c);
        }
        s.clients.sort_by_key(|c| c.lane);
        s
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
        let Some(r) = self.running.as_mut() else {
            return Err(Error::new(libc::EIO, "rdmix: hw_params: the pump has no device open"));
        };
        r.pump.setup(slot, f, channels, rate, buffer, &self.peers[i].bindings)
    }
}

/// Opens the slave and makes the header segment: what the first HELLO sets going.
fn start(args: &PumpArgs, cfg: &Config) -> Result<Running> {
    let (slave, dev, chmap) = AlsaSlave::open(&cfg.slave, args.stream, cfg.fill_ahead).map_err(|e| {
        if args.shared() && e.is(libc::ENOENT) {
            let line = e.line().to_string();
            e.context(format!(
                "{line}; a pump shared with other users reads only the system-wide ALSA configuration \
                 (/etc/asound.conf, /etc/alsa/conf.d), never one user's ~/.asoundrc: define the slave there"
            ))
        } else {
            e
        }
    })?;
    let (seg, seg_fd) = SegmentWriter::create(&dev, &chmap, args.stream)
        .map_err(|e| Error::io("rdmix: pump: cannot create the shared segment", e))?;
    log(&format!(
        "key {:#x}: {} slave \"{}\" ({}) at {} Hz, {} ch, {}, period {} / buffer {} frames{}",
        args.key,
        args.stream.name(),
        cfg.slave.pcm,
        slave.type_name(),
        dev.rate,
        dev.channels,
        Format::lookup(dev.format).map(|f| f.name()).unwrap_or_default(),
        dev.period_frames,
        dev.buffer_frames,
        if args.shared() {
            ", shared, system configuration only"
        } else {
            ""
        }
    ));
    let seg = Arc::new(seg);
    let pump: Box<dyn Side> = if args.stream.is_capture() {
        let mut recorder = Recorder::new(Splitter::new(seg, dev, chmap)?, slave, now_ns());
        recorder.fill_ahead(cfg.fill_ahead);
        recorder.pace.stamp_with(now_ns);
        Box::new(recorder)
    } else {
        let mut player = Player::new(Mixer::new(seg, dev, chmap)?, slave, now_ns());
        player.pace.stamp_with(now_ns);
        player.fill_ahead(cfg.fill_ahead);
        Box::new(player)
    };
    Ok(Running {
        cfg: cfg.clone(),
        pump,
        seg_fd,
    })
}

/// The variables a shared pump keeps: where to log, and how to find programs.
const SHARED_ENV_KEEP: [&str; 3] = ["RDMIX_PUMP", "RDMIX_PUMP_LOG", "PATH"];

fn report(r: Result<()>) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(&wire::startup_report(&r));
    let _ = std::io::stdout().flush();
}

/// Why binding the key's socket did not give us a listener.
enum Bound {
    Listening(OwnedFd, Option<OwnedFd>),
    /// Another live pump holds the key: the clients will reach it.
    Taken,
}

/// Binds the key's socket. A private key's path is owned by whoever holds its flock: the
/// holder replaces any socket file a killed pump left, and a newcomer that finds the lock
/// held waits for the holder to listen (or to finish exiting).
fn bind(rv: &Rendezvous) -> std::io::Result<Bound> {
    let Some(lock_path) = &rv.lock else {
        return match sys::socket::listen(&rv.addr) {
            Ok(l) => Ok(Bound::Listening(l, None)),
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Ok(Bound::Taken),
            Err(e) => Err(e),
        };
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(lock) = sys::fs::try_lock(lock_path)? {
            if let Addr::Path(p) = &rv.addr {
                sys::fs::remove(p)?;
            }
            return Ok(Bound::Listening(sys::socket::listen(&rv.addr)?, Some(lock)));
        }
        if sys::socket::connect(&rv.addr).is_ok() || Instant::now() >= deadline {
            return Ok(Bound::Taken);
        }
        let _ = sys::fd::poll(&mut [], 10);
    }
}

/// Entry point of `rdmix-pump`. Returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    sys::process::ignore_sigpipe();
    let Some(args) = PumpArgs::parse(args) else {
        eprintln!(
            "rdmix-pump: usage: rdmix-pump --key KEY --perm PERM [--gid GID] [--capture] (started by the rdmix plugin)"
        );
        return 2;
    };
    if args.shared() {
        // A pump other users join must not run on its starter's private settings: alsa-lib
        // then reads only the system-wide configuration. (The plugin already started us
        // with a clean environment; this holds for a pump started by hand too.)
        sys::process::reset_env(&SHARED_ENV_KEEP, &[("HOME", wire::SYSTEM_HOME)]);
    }
    match sys::process::daemonize() {
        Ok(sys::process::Forked::Parent) => return 0,
        Ok(sys::process::Forked::Daemon) => {}
        Err(e) => {
            report(Err(Error::io("rdmix: pump: cannot detach", e)));
            return 1;
        }
    }
    let key = args.key;
    let bound = wire::rendezvous(key, args.shared(), args.stream).and_then(|rv| {
        bind(&rv)
            .map(|b| (b, rv.clone()))
            .map_err(|e| Error::io(&format!("rdmix: ipc_key {key:#x}: cannot listen at {}", rv.addr), e))
    });
    let (listener, lock, rv) = match bound {
        Ok((Bound::Listening(l, lock), rv)) => (l, lock, rv),
        Ok((Bound::Taken, _)) => {
            report(Ok(())); // another pump won the race; clients will reach it
            return 0;
        }
        Err(e) => {
            report(Err(e));
            return 1;
        }
    };
    report(Ok(()));
    sys::process::redirect_stdio(std::env::var_os("RDMIX_PUMP_LOG").as_deref().map(std::path::Path::new));
    sys::process::raise_priority();
    sys::process::raise_nofile_limit();
    let code = match Server::new(args, listener) {
        Ok(s) => s.serve(),
        Err(e) => {
            eprintln!("rdmix-pump[{}]: cannot set up its event loop: {e}", sys::process::pid());
            1
        }
    };
    // Remove the socket while still holding the lock, so a successor never loses its own.
    if let (Addr::Path(p), Some(_)) = (&rv.addr, &lock) {
        let _ = sys::fs::remove(p);
    }
    drop(lock);
    code
}
