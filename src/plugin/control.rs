//! `ctl.rdmix`: the mixer controls of a rdmix definition, for alsamixer and amixer.
//!
//! One playback volume and switch per program that plays through the definition's pumps,
//! named by program and pid (`aplay 4242 Playback Volume`), the same per program that
//! records (`... Capture Volume`), and the pump's `Master`. Every level is a step of
//! `dsp::gain`'s dB scale, which the elements' TLV gives, so mixers show dB.
//!
//! The control watches both pumps of its key (WATCH), starting them as a program would:
//! a pump opens no device until a program comes. The pump says CHANGED when what this user
//! may see changes; the control then asks for STATUS and turns the difference into element
//! events. Nothing is polled. The pump decides who may change what: the control only asks.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::attach;
use crate::alsa::conf::Conf;
use crate::alsa::ctl::snderr;
use crate::alsa::ctl::{Card, Change, Control, ElemId, Key, Kind};
use crate::config::{Config, saved};
use crate::dsp::gain::{self, Volume};
use crate::error::{Error, Result};
use crate::sys;
use crate::sys::epoll::{Epoll, NO_EVENT};
use crate::wire::status::PumpStatus;
use crate::wire::{self, CHANGED, Incoming, MASTER, Msg, PROTO_VERSION, STATUS, Stream, VOLUME};

/// How long a pump has to answer STATUS or VOLUME: it answers from its loop at once.
const ANSWER: Duration = Duration::from_millis(1000);
/// The longest element name ALSA keeps, less its NUL.
const NAME_MAX: usize = 43;
/// Messages read from one pump per look.
const MAX_DRAIN: usize = 64;
/// The longest program name kept in an element's name, so that the pid and the longest
/// suffix (` Playback Volume`) still fit.
const PROGRAM_MAX: usize = NAME_MAX - " 4194304".len() - " Playback Volume".len();

/// What an element sets.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Master,
    Program {
        stream: Stream,
        lane: u32,
        pid: i32,
        program: String,
    },
}

#[derive(Clone, Debug)]
struct Elem {
    id: ElemId,
    target: Target,
    kind: Kind,
    value: i64,
}

/// What an element is named for: its program and pid, or `Master`.
fn label(target: &Target) -> String {
    let Target::Program { program, pid, .. } = target else {
        return "Master".into();
    };
    let mut p: String = program.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    if p.is_empty() {
        p = "pid".into();
    }
    while p.len() > PROGRAM_MAX {
        p.pop();
    }
    format!("{p} {pid}")
}

fn suffix(target: &Target, kind: Kind) -> &'static str {
    let capture = matches!(
        target,
        Target::Program {
            stream: Stream::Capture,
            ..
        }
    );
    match (capture, kind) {
        (false, Kind::Level { .. }) => "Playback Volume",
        (false, Kind::Switch) => "Playback Switch",
        (true, Kind::Level { .. }) => "Capture Volume",
        (true, Kind::Switch) => "Capture Switch",
    }
}

fn values(v: Option<(u32, bool)>) -> [(Kind, i64); 2] {
    let (step, on) = v.unwrap_or((gain::STEPS, true));
    [
        (
            Kind::Level {
                max: gain::STEPS as i64,
            },
            step.min(gain::STEPS) as i64,
        ),
        (Kind::Switch, on as i64),
    ]
}

/// The elements, by position. A position whose element went stays empty, and a new
/// element takes a new position, until a program lists the elements afresh
/// (`Control::count`): ctl_ext resolves numids by position, and a program that has not yet
/// read a removal may still write by the old numid, which must then find nothing rather
/// than another program's element (the kernel never reuses a numid either).
#[derive(Default)]
struct Elements {
    at: Vec<Option<Elem>>,
}

impl Elements {
    /// Brings the table to what the pumps report, returning what changed.
    fn update(&mut self, reports: &[&PumpStatus]) -> Vec<(ElemId, Key, Change)> {
        let mut want: Vec<(Target, Kind, i64)> = Vec::new();
        for r in reports {
            let stream = if r.stream == "capture" {
                Stream::Capture
            } else {
                Stream::Playback
            };
            if stream == Stream::Playback && r.master.is_some() {
                for (k, v) in values(r.master) {
                    want.push((Target::Master, k, v));
                }
            }
            for c in &r.clients {
                let target = Target::Program {
                    stream,
                    lane: c.lane,
                    pid: c.pid,
                    program: c.program.clone(),
                };
                for (k, v) in values(c.volume) {
                    want.push((target.clone(), k, v));
                }
            }
        }
        let mut events = Vec::new();
        for (key, slot) in self.at.iter_mut().enumerate() {
            let gone = slot
                .as_ref()
                .is_some_and(|e| !want.iter().any(|(t, k, _)| *t == e.target && *k == e.kind));
            if gone && let Some(e) = slot.take() {
                events.push((e.id, key, Change::Removed));
            }
        }
        for (target, kind, value) in want {
            let live = self
                .at
                .iter_mut()
                .enumerate()
                .find(|(_, s)| s.as_ref().is_some_and(|e| e.target == target && e.kind == kind));
            if let Some((key, Some(e))) = live {
                if e.value != value {
                    e.value = value;
                    events.push((e.id.clone(), key, Change::Value));
                }
                continue;
            }
            let name = format!("{} {}", label(&target), suffix(&target, kind));
            let index = (0..)
                .find(|i| !self.at.iter().flatten().any(|e| e.id.name == name && e.id.index == *i))
                .unwrap_or(0);
            let id = ElemId { name, index };
            let e = Elem {
                id: id.clone(),
                target,
                kind,
                value,
            };
            self.at.push(Some(e));
            let key = self.at.len() - 1;
            events.push((id, key, Change::Added));
        }
        events
    }

    /// Closes up the empty positions, as a fresh listing allows.
    fn compact(&mut self) {
        self.at.retain(Option::is_some);
    }

    fn get(&self, key: Key) -> Option<&Elem> {
        self.at.get(key).and_then(Option::as_ref)
    }

    fn find(&self, id: &ElemId) -> Option<Key> {
        self.at.iter().position(|s| s.as_ref().is_some_and(|e| e.id == *id))
    }

    /// The volume a program's (or the master's) pair of elements stands at.
    fn volume(&self, target: &Target) -> Volume {
        let mut v = Volume::default();
        for e in self.at.iter().flatten().filter(|e| e.target == *target) {
            match e.kind {
                Kind::Level { .. } => v.step = e.value as u32,
                Kind::Switch => v.on = e.value != 0,
            }
        }
        v
    }
}

/// One pump watched: its socket (gone once it hung up) and its last report.
struct Watch {
    stream: Stream,
    sock: Option<OwnedFd>,
    report: PumpStatus,
    stale: bool,
}

pub struct Mixer {
    cfg: Config,
    watches: [Watch; 2],
    elems: Elements,
    events: VecDeque<(ElemId, Key, Change)>,
    subscribed: bool,
    /// The descriptor programs poll: the watched sockets and `flag`, whose read end is
    /// readable while events wait (so a descriptor drained outside a poll still wakes it).
    epoll: Epoll,
    flag: (OwnedFd, OwnedFd),
}

fn token(stream: Stream) -> u64 {
    match stream {
        Stream::Playback => 0,
        Stream::Capture => 1,
    }
}

const TOKEN_FLAG: u64 = 2;

/// Opens `ctl.NAME { type rdmix ... }`: the same options as the PCM definition.
pub fn open(conf: Conf, root: Option<Conf>) -> Result<(Mixer, Card)> {
    if std::env::var_os("RDMIX_PUMP").is_some() {
        return Err(Error::new(libc::ELOOP, "rdmix: the pump does not open rdmix controls"));
    }
    let cfg = Config::parse(&conf, root.as_ref(), sys::user::euid())?;
    let lost = |e| Error::io("rdmix: control: cannot make its poll descriptor", e);
    let epoll = Epoll::new().map_err(lost)?;
    let flag = sys::fd::wake_pair().map_err(lost)?;
    epoll.add(flag.0.as_raw_fd(), libc::POLLIN, TOKEN_FLAG).map_err(lost)?;
    let watch = |stream| Watch {
        stream,
        sock: None,
        report: PumpStatus::default(),
        stale: true,
    };
    let mut m = Mixer {
        cfg,
        watches: [watch(Stream::Playback), watch(Stream::Capture)],
        elems: Elements::default(),
        events: VecDeque::new(),
        subscribed: false,
        epoll,
        flag,
    };
    for i in 0..2 {
        m.connect(i)?;
    }
    m.refresh()?;
    let card = Card {
        id: "rdmix".into(),
        name: "rdmix".into(),
        longname: format!("rdmix on {}", m.cfg.slave.pcm),
    };
    Ok((m, card))
}

impl Mixer {
    fn connect(&mut self, i: usize) -> Result<()> {
        let w = &mut self.watches[i];
        let sock = attach::watch(&self.cfg, w.stream)?;
        self.epoll
            .add(sock.as_raw_fd(), libc::POLLIN, token(w.stream))
            .map_err(|e| Error::io("rdmix: control: cannot watch the pump", e))?;
        w.sock = Some(sock);
        w.stale = true;
        Ok(())
    }

    /// Reads what the pumps said since the last look, without waiting; a pump that hung up
    /// is reached again (or started anew) at once, as its programs reach it.
    fn drain(&mut self) {
        for i in 0..2 {
            let w = &mut self.watches[i];
            let Some(sock) = &w.sock else { continue };
            let mut hung_up = false;
            // At most a queue's worth per look: a pump that never stops talking (a hostile
            // member's, on a shared key) costs a mixer a bounded step, never a hang; what
            // is left keeps the descriptor readable for the next.
            for _ in 0..MAX_DRAIN {
                let mut p = [sys::fd::pollfd(sock.as_raw_fd(), libc::POLLIN)];
                if !matches!(sys::fd::poll(&mut p, 0), Ok(1)) {
                    break;
                }
                match wire::recv(sock) {
                    Ok(Incoming::Msg(m, _)) if m.kind == CHANGED => w.stale = true,
                    Ok(Incoming::Msg(..)) => {}
                    _ => {
                        hung_up = true;
                        break;
                    }
                }
            }
            if hung_up {
                self.reconnect(i);
            }
        }
    }

    /// Drops pump `i` and reaches it again (a new one, if it is gone: it starts as for a
    /// program). Its elements go until its report comes.
    fn reconnect(&mut self, i: usize) {
        self.lose(i);
        if let Err(e) = self.connect(i) {
            snderr(c"ctl", &format!("{e} (its controls are gone until the mixer reopens)"));
        }
    }

    fn lose(&mut self, i: usize) {
        let w = &mut self.watches[i];
        if let Some(s) = w.sock.take() {
            self.epoll.remove(s.as_raw_fd());
        }
        // Its elements go at the next look, whether or not it is reached again.
        w.report = PumpStatus::default();
        w.stale = true;
    }

    /// Sends `m` to pump `i` and waits for its answer of the same kind; a CHANGED that
    /// comes first only says to look again.
    fn ask(&mut self, i: usize, m: &Msg) -> Result<Msg> {
        let key = self.cfg.ipc_key;
        let w = &mut self.watches[i];
        let Some(sock) = &w.sock else {
            return Err(Error::new(
                libc::ENODEV,
                format!("rdmix: ipc_key {key:#x}: the {} pump is gone", w.stream.name()),
            ));
        };
        let deadline = Instant::now() + ANSWER;
        let unsent = wire::send(sock, m, &[]).err();
        loop {
            match wire::recv_until(sock, deadline) {
                Ok(Incoming::Msg(r, _)) if r.kind == CHANGED => w.stale = true,
                Ok(Incoming::Msg(r, _)) if r.kind == m.kind => return Ok(*r),
                Ok(Incoming::Msg(..)) => {}
                r => {
                    let why = match (&unsent, r) {
                        (Some(e), _) => e.to_string(),
                        (_, Err(e)) => e.to_string(),
                        _ => "it hung up".to_string(),
                    };
                    self.reconnect(i);
                    return Err(Error::new(
                        libc::EIO,
                        format!(
                            "rdmix: ipc_key {key:#x}: the {} pump did not answer: {why}",
                            self.watches[i].stream.name()
                        ),
                    ));
                }
            }
        }
    }

    /// Asks each pump that said CHANGED for its report, and queues the difference.
    fn refresh(&mut self) -> Result<()> {
        let mut status = Msg::new(STATUS);
        status.args[0] = PROTO_VERSION;
        let mut failed = None;
        for i in 0..2 {
            if !self.watches[i].stale {
                continue;
            }
            self.watches[i].stale = false;
            match self.ask(i, &status) {
                Ok(r) => match r.refusal() {
                    None => self.watches[i].report = PumpStatus::decode(r.payload()),
                    Some(e) => failed = Some(e),
                },
                Err(e) => failed = Some(e),
            }
        }
        let reports: Vec<&PumpStatus> = self.watches.iter().map(|w| &w.report).collect();
        let changes = self.elems.update(&reports);
        if self.subscribed {
            self.events.extend(changes);
        }
        self.flag_events();
        failed.map_or(Ok(()), Err)
    }

    /// Keeps `flag` readable exactly while events wait.
    fn flag_events(&self) {
        sys::fd::drain(self.flag.0.as_fd());
        if !self.events.is_empty() {
            sys::fd::poke(self.flag.1.as_fd());
        }
    }

    /// Brings the elements up to date with what the pumps said, without waiting when they
    /// said nothing. A failure is reported once, here; the elements stay as last seen.
    fn look(&mut self) {
        self.drain();
        if self.watches.iter().any(|w| w.stale)
            && let Err(e) = self.refresh()
        {
            snderr(c"ctl", e.line());
        }
    }
}

impl Control for Mixer {
    const DB_SCALE: (i32, i32, bool) = (gain::MIN_CDB, gain::STEP_CDB, true);

    fn count(&mut self) -> usize {
        self.look();
        self.elems.compact();
        // Events queued before the listing name positions that may have moved.
        for ev in self.events.iter_mut() {
            ev.1 = self.elems.find(&ev.0).unwrap_or(0);
        }
        self.elems.at.len()
    }

    fn id(&self, key: Key) -> Option<ElemId> {
        self.elems.get(key).map(|e| e.id.clone())
    }

    fn find(&self, id: &ElemId) -> Option<Key> {
        self.elems.find(id)
    }

    fn kind(&self, key: Key) -> Option<Kind> {
        self.elems.get(key).map(|e| e.kind)
    }

    fn read(&mut self, key: Key) -> Result<i64> {
        self.look();
        self.elems
            .get(key)
            .map(|e| e.value)
            .ok_or_else(|| Error::new(libc::ENOENT, "rdmix: control: that program has gone"))
    }

    fn write(&mut self, key: Key, value: i64) -> Result<bool> {
        // The other half of the pair (and this one) as the pump has them now, not as this
        // mixer last saw them: another mixer may have moved either.
        self.look();
        let Some(e) = self.elems.get(key).cloned() else {
            return Err(Error::new(libc::ENOENT, "rdmix: control: that program has gone"));
        };
        let value = match e.kind {
            Kind::Level { max } => value.clamp(0, max),
            Kind::Switch => (value != 0) as i64,
        };
        if value == e.value {
            return Ok(false);
        }
        let mut v = self.elems.volume(&e.target);
        match e.kind {
            Kind::Level { .. } => v.step = value as u32,
            Kind::Switch => v.on = value != 0,
        }
        let (i, lane, pid) = match &e.target {
            Target::Master => (0, MASTER, 0),
            Target::Program { stream, lane, pid, .. } => (token(*stream) as usize, *lane as u64, *pid as u64),
        };
        let mut m = Msg::new(VOLUME);
        m.args = [lane, pid, v.step as u64, v.on as u64];
        if let Some(err) = self.ask(i, &m)?.refusal() {
            return Err(err);
        }
        if let Some(Some(slot)) = self.elems.at.get_mut(key) {
            slot.value = value;
        }
        // Remembered for the program's next run (and the master for the pump's), in this
        // user's own state.
        let (kept, what) = match &e.target {
            Target::Program { stream, program, .. } => (saved::remember(*stream, program, v), program.as_str()),
            Target::Master => (saved::remember_master(self.cfg.ipc_key, v), "the master"),
        };
        if let Err(err) = kept {
            snderr(
                c"ctl",
                &format!("rdmix: control: the volume is set, but not remembered for {what}: {err}"),
            );
        }
        Ok(true)
    }

    fn subscribe(&mut self, on: bool) {
        self.subscribed = on;
        if !on {
            self.events.clear();
            self.flag_events();
        }
    }

    fn next_event(&mut self) -> Option<(ElemId, Key, Change)> {
        if self.events.is_empty() {
            self.look();
        }
        let ev = self.events.pop_front();
        self.flag_events();
        ev
    }

    fn poll_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    fn pending(&mut self) -> bool {
        // Clears the epoll descriptor's readiness (level-triggered: what stirred is read
        // by `look`, and the flag is set again if events wait).
        let mut evs = [NO_EVENT; 4];
        let _ = self.epoll.wait(&mut evs, Some(0));
        self.look();
        !self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::status::ClientStatus;

    /// A client as a report lists it: pid, lane, program, volume.
    type Seen<'a> = (i32, u32, &'a str, Option<(u32, bool)>);

    fn report(stream: &str, master: Option<(u32, bool)>, clients: &[Seen]) -> PumpStatus {
        PumpStatus {
            stream: stream.into(),
            master,
            clients: clients
                .iter()
                .map(|&(pid, lane, program, volume)| ClientStatus {
                    pid,
                    lane,
                    program: program.into(),
                    volume,
                    ..ClientStatus::default()
                })
                .collect(),
            ..PumpStatus::default()
        }
    }

    fn names(e: &Elements) -> Vec<Option<String>> {
        e.at.iter()
            .map(|s| s.as_ref().map(|e| format!("{}#{}", e.id.name, e.id.index)))
            .collect()
    }

    #[test]
    fn programs_come_and_go_as_element_pairs_that_keep_their_positions() {
        let mut e = Elements::default();
        let ev = e.update(&[&report("playback", Some((240, true)), &[(10, 0, "aplay", None)])]);
        assert_eq!(ev.iter().filter(|x| x.2 == Change::Added).count(), 4);
        assert_eq!(
            names(&e),
            [
                "Master Playback Volume#0",
                "Master Playback Switch#0",
                "aplay 10 Playback Volume#0",
                "aplay 10 Playback Switch#0"
            ]
            .map(|s| Some(s.to_string()))
        );
        // A second program, then the first leaves: the second keeps its positions, and
        // the first's stay empty; the next to come takes new ones.
        let two = report(
            "playback",
            Some((240, true)),
            &[(10, 0, "aplay", None), (11, 1, "mpv", None)],
        );
        e.update(&[&two]);
        let ev = e.update(&[&report("playback", Some((240, true)), &[(11, 1, "mpv", None)])]);
        assert_eq!(
            ev.iter().map(|x| (x.0.name.as_str(), x.1, x.2)).collect::<Vec<_>>(),
            [
                ("aplay 10 Playback Volume", 2, Change::Removed),
                ("aplay 10 Playback Switch", 3, Change::Removed)
            ]
        );
        assert_eq!(
            e.find(&ElemId {
                name: "mpv 11 Playback Volume".into(),
                index: 0
            }),
            Some(4)
        );
        let ev = e.update(&[&report(
            "playback",
            Some((240, true)),
            &[(11, 1, "mpv", None), (12, 0, "sox", None)],
        )]);
        assert_eq!(ev.iter().map(|x| x.1).collect::<Vec<_>>(), [6, 7]);
        assert!(
            e.get(2).is_none() && e.get(3).is_none(),
            "a gone program's numids find nothing"
        );
        e.compact();
        assert_eq!(e.at.len(), 6);
        assert_eq!(
            e.find(&ElemId {
                name: "sox 12 Playback Volume".into(),
                index: 0
            }),
            Some(4)
        );
    }

    #[test]
    fn a_value_that_moved_is_an_event_and_one_that_did_not_is_none() {
        let mut e = Elements::default();
        e.update(&[&report(
            "playback",
            Some((240, true)),
            &[(10, 0, "aplay", Some((240, true)))],
        )]);
        assert!(
            e.update(&[&report(
                "playback",
                Some((240, true)),
                &[(10, 0, "aplay", Some((240, true)))]
            )])
            .is_empty()
        );
        let ev = e.update(&[&report(
            "playback",
            Some((200, true)),
            &[(10, 0, "aplay", Some((240, false)))],
        )]);
        assert_eq!(
            ev.iter().map(|x| (x.0.name.as_str(), x.2)).collect::<Vec<_>>(),
            [
                ("Master Playback Volume", Change::Value),
                ("aplay 10 Playback Switch", Change::Value)
            ]
        );
        assert_eq!(e.volume(&Target::Master), Volume { step: 200, on: true });
    }

    #[test]
    fn recorders_get_capture_elements_and_twins_get_an_index() {
        let mut e = Elements::default();
        let play = report("playback", Some((240, true)), &[(10, 0, "duplex", None)]);
        let rec = report("capture", None, &[(10, 3, "duplex", None), (10, 4, "duplex", None)]);
        e.update(&[&play, &rec]);
        let n = names(&e);
        assert!(n.contains(&Some("duplex 10 Capture Volume#0".into())), "{n:?}");
        assert!(n.contains(&Some("duplex 10 Capture Volume#1".into())), "{n:?}");
        assert!(!n.iter().flatten().any(|s| s.starts_with("Master Capture")), "{n:?}");
    }

    #[test]
    fn a_long_or_odd_program_name_still_fits_alsas_element_names() {
        let t = Target::Program {
            stream: Stream::Playback,
            lane: 0,
            pid: 4_194_304,
            program: "a-very-long-program\u{7}name-indeed".into(),
        };
        let name = format!("{} {}", label(&t), suffix(&t, Kind::Switch));
        assert!(name.len() <= NAME_MAX, "{name}");
        assert!(name.starts_with("a-very-long-program 4194304"), "{name}");
        let odd = Target::Program {
            stream: Stream::Playback,
            lane: 0,
            pid: 7,
            program: "a\nb".into(),
        };
        assert!(label(&odd).starts_with("a?b "));
    }
}
