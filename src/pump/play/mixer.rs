//! The mixing half of playback: once per device period it sums the running lanes at the
//! device position and saturates the sum into the slave format. Pure: lanes in, bytes
//! out, no clock and no device, so tests drive it directly.
//!
//! Where the slave can take back what it was given (`Sink::rewind`), each lane's share of
//! each period is kept, in the slave's sum type, for as long as the slave may still hold
//! it. A rewind then mixes those periods again from the shares of the lanes that stay,
//! without reading their rings again: what their clients were told they consumed stays
//! true, and a lone client stays bit-exact (its share plus nothing). A lane that left loses
//! its shares; a paused one keeps them, to play first when it resumes, so that nothing its
//! client wrote is lost; a lane that starts is placed just past what the slave kept.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::config::Bindings;
use crate::dsp::chmap;
use crate::dsp::convert::Converter;
use crate::dsp::format::Format;
use crate::dsp::gain::{Glide, Ramp, Volume};
use crate::dsp::mix;
use crate::error::Result;
use crate::pump::lanes::{Lane, LaneSetup, LaneTable, Lanes, Part, check_client, refuse};
use crate::shm::clock::rescale;
use crate::shm::lane::LaneMem;
use crate::shm::ring::{Consumer, Ctl, Geometry, Mixed, State, pos_add, pos_diff};
use crate::shm::segment::{DeviceParams, SegmentWriter};

/// What the pump has made of a lane in the current epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    /// Mixed whenever the client says it runs. `starved` through a dry spell, so that each
    /// spell counts as one underrun.
    #[default]
    Live,
    Starved,
    /// A drain's last frame has been mixed: nothing more is taken.
    Drained,
    /// Ran dry past the client's stop point: its stream is in xrun, as a card's would be,
    /// until the client prepares again. Nothing more is taken, and the pump may sleep.
    Stopped,
}

/// Playback's part of a lane.
#[derive(Default)]
pub struct Playing {
    /// Present unless the client matches the device in rate, channels and layout.
    conv: Option<Converter>,
    /// Client frames the lane has been short of in its current dry spell.
    short: u64,
    /// The lane has been given its first device period in this epoch (see `mix_lane`).
    joined: bool,
    phase: Phase,
    /// Its share of each recent period, oldest first, while the slave may give it back.
    held: VecDeque<Share>,
    /// Shares a rewind took back while the lane was paused: they play first on resume.
    pending: VecDeque<Share>,
    /// The mix position past the last period the lane was mixed in from its ring. Below it
    /// (after a rewind) its held shares are played again as they were.
    mixed_until: u64,
    /// Set by a rewind for a lane yet to join: device frames of silence before its frame 0,
    /// in place of the join period.
    lead: Option<u64>,
    /// Where its gain is and is heading (`at` is `None` before the first period of the
    /// epoch, which starts at the lane's volume, not ramping to it).
    glide: Glide,
}

/// One lane's part of the period mixed at `at`, in the slave's sum type, before its volume:
/// mixed again after a rewind, it is heard at the volume of the moment. `gain` is the one
/// its period started at.
struct Share {
    at: u64,
    gain: f64,
    mix: mix::Mixer,
}

impl Part for Playing {
    fn restart(&mut self) {
        if let Some(c) = &mut self.conv {
            c.reset();
        }
        self.short = 0;
        self.joined = false;
        self.phase = Phase::Live;
        self.held.clear();
        self.pending.clear();
        self.mixed_until = 0;
        self.lead = None;
        self.glide = Glide::default();
    }
    fn ctl(mem: &LaneMem) -> Option<Ctl> {
        Consumer::new(mem).ctl()
    }
    fn publish(mem: &LaneMem, m: Mixed) {
        Consumer::new(mem).publish(m)
    }
    fn reset(mem: &LaneMem) {
        Consumer::new(mem).reset()
    }
}

impl Lane<Playing> {
    /// Whether the lane is done in this epoch: drained, or stopped by an xrun.
    fn done(&self) -> bool {
        matches!(self.part.phase, Phase::Drained | Phase::Stopped)
    }

    /// Whether the lane wants mixing now, by its client's word `ctl`: running or draining,
    /// and (in that epoch) neither drained to its end nor stopped in an xrun.
    fn wanted(&self, ctl: &Ctl) -> bool {
        ctl.state.is_mixed() && !(ctl.epoch == self.epoch && self.done())
    }

    /// Where this lane's frame 0 sits in the device stream (a pause moves it on).
    fn origin(&self, mix_pos: u64) -> u64 {
        let delay = self.part.conv.as_ref().map_or(0, |c| c.delay_frames() as u64);
        mix_pos.wrapping_sub(self.device_frames).wrapping_add(delay)
    }

    /// Client frames the next device period takes.
    fn need(&self, period: u64) -> u64 {
        self.part.conv.as_ref().map_or(period, |c| c.input_frames_next() as u64)
    }

    /// Whether a rewind to below `mix_pos` left this lane shares to play again there.
    fn replaying(&self, ctl: &Ctl, mix_pos: u64) -> bool {
        ctl.epoch == self.epoch && mix_pos < self.part.mixed_until
    }

    /// Client frames its client has written and the pump has not taken, by its word.
    fn queued(&self, ctl: &Ctl, setup: &LaneSetup) -> u64 {
        let pos = if ctl.epoch == self.epoch { self.pos } else { 0 };
        pos_diff(ctl.appl, pos).clamp(0, setup.geometry.buffer_frames as i64) as u64
    }
}

/// One period's shared working state, lent to each lane in turn.
struct Period<'a> {
    mix_pos: u64,
    frames: u64,
    device_rate: u32,
    channels: usize,
    /// Frames of this period the slave kept from before a rewind: no ramp begins before.
    ramp_start: usize,
    sum: &'a mut mix::Mixer,
    scratch: &'a mut Vec<u8>,
    /// Spare shares, when lanes' shares are kept (see `Mixer::keep`).
    pool: Option<&'a mut Vec<mix::Mixer>>,
    /// A lane's part, to be added at its volume, when shares are not kept.
    spare: &'a mut mix::Mixer,
}

impl Period<'_> {
    /// A cleared share for one lane's part of this period.
    fn share(&mut self) -> Option<mix::Mixer> {
        let samples = self.sum.len();
        let format = self.sum.format();
        let pool = self.pool.as_mut()?;
        let mut m = pool.pop().unwrap_or_else(|| mix::Mixer::new(format, samples));
        m.clear(samples);
        Some(m)
    }
}

/// Sums lanes into device periods.
pub struct Mixer {
    pub lanes: Lanes<Playing>,
    master: Volume,
    /// Where the master's gain is and is heading, and the gain each recent period started
    /// at, for a rewind to go back to.
    master_glide: Glide,
    master_history: VecDeque<(u64, f64)>,
    /// A volume changed since the last rewind was looked for: what the slave holds was
    /// mixed at the old one.
    volume_changed: bool,
    /// After a rewind into the middle of a period: that period, and the frames of it the
    /// slave kept, before which no ramp begins.
    ramp_after: Option<(u64, usize)>,
    spare: mix::Mixer,
    sum: mix::Mixer,
    scratch: Vec<u8>,
    out: Vec<u8>,
    mix_pos: u64,
    /// Whether the last period mixed any lane (silence otherwise).
    mixed_any: bool,
    /// Lanes' shares are kept from this mix position on (`None`: not kept).
    kept_since: Option<u64>,
    pool: Vec<mix::Mixer>,
    /// The mix position past the last share of a detached lane: the slave may still
    /// hold it.
    gone_until: u64,
}

impl Mixer {
    pub fn new(seg: Arc<SegmentWriter>, dev: DeviceParams, chmap: Vec<u32>) -> Result<Mixer> {
        let lanes = Lanes::new(seg, dev, chmap)?;
        let samples = dev.period_frames as usize * dev.channels as usize;
        Ok(Mixer {
            master: Volume::default(),
            master_glide: Glide::default(),
            master_history: VecDeque::new(),
            volume_changed: false,
            ramp_after: None,
            spare: mix::Mixer::new(lanes.format, samples),
            sum: mix::Mixer::new(lanes.format, samples),
            out: vec![0; samples * lanes.format.sample_bytes()],
            lanes,
            scratch: Vec::new(),
            mix_pos: 0,
            mixed_any: false,
            kept_since: None,
            pool: Vec::new(),
            gone_until: 0,
        })
    }

    /// Lane `idx`'s volume, heard from the next period mixed (ramped over it), or sooner
    /// by a rewind.
    pub fn set_volume(&mut self, idx: usize, v: Volume) {
        if self.lanes.set_volume(idx, v) {
            self.volume_changed = true;
        }
    }

    pub fn volume(&self, idx: usize) -> Option<Volume> {
        self.lanes.volume(idx)
    }

    /// The master volume, applied to the sum at its one saturation.
    pub fn set_master(&mut self, v: Volume) {
        if self.master != v {
            self.master = v;
            self.volume_changed = true;
        }
    }

    pub fn master(&self) -> Volume {
        self.master
    }

    /// Keeps each lane's share of each period from now on, for rewinds (or stops keeping).
    pub fn keep(&mut self, on: bool) {
        if on != self.kept_since.is_some() {
            self.kept_since = on.then_some(self.mix_pos);
            if !on {
                for lane in &mut self.lanes.lanes {
                    lane.part.held.clear();
                }
                self.pool.clear();
            }
        }
    }

    pub fn keeps(&self) -> bool {
        self.kept_since.is_some()
    }

    /// How far back the mix can be taken: every lane's shares are held that far.
    pub fn held_frames(&self) -> u64 {
        let buffer = self.lanes.dev.buffer_frames as u64;
        self.kept_since.map_or(0, |t| (self.mix_pos - t).min(buffer))
    }

    /// Whether a volume changed since the last rewind, and the mix holds frames past
    /// `beyond` that were mixed at the old one.
    pub fn volume_changed_past(&self, beyond: u64) -> bool {
        self.volume_changed && self.mix_pos > beyond
    }

    /// Whether the lanes have changed so that a rewind would let it be heard sooner, with
    /// `queued` frames in the slave: a lane that starts (wants mixing, not mixed yet in its
    /// epoch) would wait behind more than its own buffer's worth; or one that left (paused,
    /// stopped, dropped, detached) was mixed into what the slave holds past `beyond` (what
    /// it plays next and the margin a rewind leaves: a drained client that closes has
    /// nothing there). A music player's 500 ms start behind a third of a second is not
    /// worth a rewind, but every stop is: it should be heard at once.
    pub fn lanes_changed(&self, beyond: u64, queued: u64) -> bool {
        let dev = self.lanes.dev;
        let period = dev.period_frames as u64;
        self.gone_until > beyond
            || self.lanes.declared().any(|(lane, ctl)| {
                let same = ctl.epoch == lane.epoch;
                let latency = lane
                    .setup
                    .map_or(0, |s| rescale(s.geometry.buffer_frames as i64, s.rate, dev.rate) as u64);
                let starts =
                    lane.wanted(&ctl) && (!same || (!lane.part.joined && lane.part.lead.is_none())) && queued > latency;
                let left =
                    !(same && ctl.state.is_mixed()) && lane.part.held.back().is_some_and(|c| c.at + period > beyond);
                starts || left
            })
    }

    /// Takes the mix back to `to`, a period boundary: the slave has given back everything
    /// from `skip` frames past it (`to` = `mix_pos` only settles the lanes that left). A
    /// lane that still runs or drains plays its held shares again, as they were. One that
    /// left loses them, but a paused one keeps those taken back, to play first on resume
    /// (the first `skip` frames silent: the slave kept and plays them). A lane yet to join
    /// is placed `lead(frames it holds)` device frames past `to`, in place of the join
    /// period.
    pub fn rewind(&mut self, to: u64, skip: u64, lead: &dyn Fn(u64) -> u64) {
        let dev = self.lanes.dev;
        let period = dev.period_frames as u64;
        let rewound = to < self.mix_pos;
        let pool = &mut self.pool;
        for (_, lane, mem) in self.lanes.each() {
            let Some(setup) = lane.setup else { continue };
            let Some(ctl) = Playing::ctl(mem) else {
                pool.extend(lane.part.held.drain(..).map(|c| c.mix));
                continue;
            };
            lane.follow(&ctl, mem);
            if ctl.state.is_mixed() {
                // Mixed again from `to`, it ramps from the gain it was heard at there.
                if let Some(c) = lane.part.held.iter().find(|c| c.at == to) {
                    lane.part.glide.at = Some(c.gain);
                }
                if rewound && !lane.part.joined && lane.part.lead.is_none() {
                    let held = rescale(lane.queued(&ctl, &setup) as i64, setup.rate, dev.rate) as u64;
                    lane.part.lead = Some(lead(held));
                }
                continue;
            }
            let part = &mut lane.part;
            let keep_from = part.held.partition_point(|c| c.at < to);
            let mut back = part.held.split_off(keep_from);
            if let Some(first) = back.front_mut().filter(|c| c.at == to) {
                first.mix.silence_head(skip as usize * dev.channels as usize);
            }
            if ctl.state == State::Paused {
                lane.device_frames = lane.device_frames.wrapping_sub(back.len() as u64 * period);
                for c in back.into_iter().rev() {
                    part.pending.push_front(c);
                }
            } else {
                pool.extend(back.into_iter().map(|c| c.mix));
            }
            pool.extend(part.held.drain(..).map(|c| c.mix));
            part.mixed_until = part.mixed_until.min(to);
        }
        if let Some(at) = self.master_history.iter().position(|&(at, _)| at >= to) {
            if self.master_history[at].0 == to {
                self.master_glide.at = Some(self.master_history[at].1);
            }
            self.master_history.truncate(at);
        }
        self.mix_pos = to;
        self.gone_until = 0;
        self.volume_changed = false;
        self.ramp_after = (skip > 0).then_some((to, skip as usize));
    }

    /// The master's ramp for the period at `mix_pos`, remembered for a rewind.
    fn master_ramp(&mut self, start: usize) -> Ramp {
        let frames = self.lanes.dev.period_frames as usize;
        let ramp = self.master_glide.next(self.master.gain(), frames, start);
        if self.kept_since.is_some() {
            let oldest = self.mix_pos.saturating_sub(self.lanes.dev.buffer_frames as u64);
            while self.master_history.front().is_some_and(|&(at, _)| at < oldest) {
                self.master_history.pop_front();
            }
            self.master_history.push_back((self.mix_pos, ramp.from));
        }
        ramp
    }

    /// Frames every lane that wants mixing lets the slave hold: the smallest buffer among
    /// them, in device frames (`u64::MAX` when none does). A slave that cannot rewind is
    /// filled no further, so that a change is heard within that.
    pub fn min_latency(&self) -> u64 {
        let rate = self.lanes.dev.rate;
        self.wanting()
            .map(|s| rescale(s.geometry.buffer_frames as i64, s.rate, rate) as u64)
            .min()
            .unwrap_or(u64::MAX)
    }

    pub fn device(&self) -> DeviceParams {
        self.lanes.dev
    }

    /// Bytes of one device frame.
    pub fn frame_bytes(&self) -> usize {
        self.lanes.frame_bytes()
    }

    pub fn mix_pos(&self) -> u64 {
        self.mix_pos
    }

    /// Accepts or refuses a client's hw_params. The lane is not mixed until this succeeds.
    /// `bindings` replace the standard channel mapping.
    pub fn setup(
        &mut self,
        idx: usize,
        format: Format,
        channels: u32,
        rate: u32,
        buffer_frames: u64,
        bindings: &Bindings,
    ) -> Result<()> {
        let geometry = self.check(format, channels, rate, buffer_frames, bindings)?;
        let conv = self.converter(format, channels, rate, bindings)?;
        let setup = LaneSetup {
            format,
            channels,
            rate,
            geometry,
        };
        self.lanes.accept(
            idx,
            setup,
            Playing {
                conv,
                ..Playing::default()
            },
        );
        Ok(())
    }

    /// Whether the pump can mix such a client; its ring geometry if so.
    fn check(
        &self,
        format: Format,
        channels: u32,
        rate: u32,
        buffer_frames: u64,
        bindings: &Bindings,
    ) -> Result<Geometry> {
        check_client(&self.lanes.dev, channels, rate, bindings)?;
        let frame_bytes = format.sample_bytes() * channels as usize;
        usize::try_from(buffer_frames)
            .ok()
            .and_then(|b| Geometry::new(frame_bytes, b))
            .ok_or_else(|| {
                refuse(format!(
                    "a buffer of {buffer_frames} frames of {frame_bytes} bytes does not fit a lane"
                ))
            })
    }

    /// The converter a client needs, or `None` when it matches the device: the plain
    /// integer path, which a lone client passes bit-exact.
    fn converter(&self, format: Format, channels: u32, rate: u32, bindings: &Bindings) -> Result<Option<Converter>> {
        let dev = &self.lanes.dev;
        if bindings.is_empty() && channels == dev.channels && rate == dev.rate {
            return Ok(None);
        }
        let matrix = if bindings.is_empty() {
            chmap::matrix(&chmap::standard_map(channels), &self.lanes.chmap)
        } else {
            chmap::binding_matrix(bindings.pairs(), dev.channels as usize)
        };
        Converter::new(
            format,
            rate,
            channels as usize,
            dev.rate,
            dev.period_frames as usize,
            matrix,
        )
        .map(Some)
    }

    /// The setups of the lanes that want mixing now: the client declares the lane running or
    /// draining, and (in that epoch) it has neither been drained to its end nor stopped in
    /// an xrun. A corrupt word reads as stopped.
    fn wanting(&self) -> impl Iterator<Item = LaneSetup> + '_ {
        self.lanes
            .declared()
            .filter(|(lane, ctl)| lane.wanted(ctl))
            .filter_map(|(lane, _)| lane.setup)
    }

    /// Whether every lane that wants mixing already holds what the next device period
    /// takes from it: only then may the pump mix ahead, since a lane is never mixed as
    /// silence ahead of frames its client has yet to write. A draining lane's tail is all
    /// there is, and a lane yet to join takes nothing.
    pub fn lanes_hold_a_period(&self) -> bool {
        let period = self.lanes.dev.period_frames as u64;
        self.lanes
            .declared()
            .filter(|(lane, ctl)| lane.wanted(ctl))
            .all(|(lane, ctl)| {
                let Some(setup) = lane.setup else { return true };
                let joining = ctl.epoch != lane.epoch || !lane.part.joined;
                let replaying = lane.replaying(&ctl, self.mix_pos) || !lane.part.pending.is_empty();
                ctl.state == State::Draining || joining || replaying || lane.queued(&ctl, &setup) >= lane.need(period)
            })
    }

    /// Whether any lane wants mixing now.
    pub fn wants_mixing(&self) -> bool {
        self.wanting().next().is_some()
    }

    /// How many device periods each lane can give at once with half its buffer to spare:
    /// the fewest any lane that wants mixing can (at least 1, and `cap` at most).
    pub fn periods_per_take(&self, cap: u64) -> u64 {
        let dev = self.lanes.dev;
        let period = dev.period_frames as u64;
        self.wanting()
            .map(|setup| {
                let buffer = rescale(setup.geometry.buffer_frames as i64, setup.rate, dev.rate) as u64;
                (buffer / (2 * period)).max(1)
            })
            .fold(cap.max(1), u64::min)
    }

    /// Whether the last period mixed any lane.
    pub fn mixed_any(&self) -> bool {
        self.mixed_any
    }

    /// The last mixed period, in the device format.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// Produces a period of silence without touching any lane: the lanes join the device
    /// stream after it, as after a pause.
    pub fn silence_period(&mut self) -> &[u8] {
        let dev = self.lanes.dev;
        let frames = dev.period_frames as u64;
        self.sum.clear(frames as usize * dev.channels as usize);
        self.sum.finish(&mut self.out);
        self.mix_pos += frames;
        self.mixed_any = false;
        &self.out
    }

    /// Mixes the next device period. Lanes whose wake-up fell due are pushed onto `wake`.
    pub fn mix_period(&mut self, wake: &mut Vec<usize>) -> &[u8] {
        let dev = self.lanes.dev;
        let frames = dev.period_frames as u64;
        self.sum.clear(frames as usize * dev.channels as usize);
        let oldest = self.mix_pos.saturating_sub(dev.buffer_frames as u64);
        let keep = self.kept_since.is_some();
        let ramp_start = match self.ramp_after.take() {
            Some((at, skip)) if at == self.mix_pos => skip,
            _ => 0,
        };
        let mut p = Period {
            mix_pos: self.mix_pos,
            frames,
            device_rate: dev.rate,
            channels: dev.channels as usize,
            ramp_start,
            sum: &mut self.sum,
            scratch: &mut self.scratch,
            pool: keep.then_some(&mut self.pool),
            spare: &mut self.spare,
        };
        let mut any = false;
        for (idx, lane, mem) in self.lanes.each() {
            // Shares the slave can no longer give back are spare.
            while lane.part.held.front().is_some_and(|c| c.at < oldest) {
                if let (Some(c), Some(pool)) = (lane.part.held.pop_front(), p.pool.as_mut()) {
                    pool.push(c.mix);
                }
            }
            match mix_lane(lane, mem, &mut p) {
                Some(true) => {
                    any = true;
                    wake.push(idx);
                }
                Some(false) => any = true,
                None => {}
            }
        }
        self.mixed_any = any;
        let master = self.master_ramp(ramp_start);
        self.sum.scale(master, dev.channels as usize);
        self.sum.finish(&mut self.out);
        self.mix_pos += frames;
        &self.out
    }
}

/// The lane table, as the process loop sees it: a lane detached while the slave may still
/// hold its shares calls for a rewind, as a stop does.
impl LaneTable for Mixer {
    fn attach(&mut self, idx: usize, mem: Arc<LaneMem>) {
        self.lanes.attach(idx, mem)
    }

    fn detach(&mut self, idx: usize) {
        let period = self.lanes.dev.period_frames as u64;
        if let Some(last) = self.lanes.lanes.get(idx).and_then(|l| l.part.held.back()) {
            self.gone_until = self.gone_until.max(last.at + period);
        }
        self.lanes.detach(idx)
    }

    fn status(&self, idx: usize) -> Option<(Option<LaneSetup>, Option<State>, u32)> {
        self.lanes.status(idx)
    }
}

/// One lane's part of a period: `None` if it was not mixed, else whether its client should
/// be woken.
fn mix_lane(lane: &mut Lane<Playing>, mem: &LaneMem, p: &mut Period) -> Option<bool> {
    let setup = lane.setup?;
    let end = Consumer::new(mem);
    // A slot with an impossible state tag is treated as stopped: it hurts only its owner.
    let ctl = end.ctl()?;
    // A lane that is not mixed this period keeps its glide where it was.
    let mut glide = lane.part.glide;
    let ramp = glide.next(lane.volume.gain(), p.frames as usize, p.ramp_start);
    if lane.replaying(&ctl, p.mix_pos) {
        // Given back by a rewind: played again as it was, at the volume of the moment, and
        // the lane is not touched.
        let share = lane.part.held.iter_mut().find(|c| c.at == p.mix_pos)?;
        p.sum.add_mix_gain(&share.mix, ramp, p.channels);
        share.gain = ramp.from;
        lane.part.glide = glide;
        return Some(false);
    }
    lane.follow(&ctl, mem);
    if !ctl.state.is_mixed() || lane.done() {
        return None;
    }
    let mut lead = 0;
    if !lane.part.joined {
        match lane.part.lead {
            // Placed by a rewind past this period: nothing of it yet.
            Some(j) if j >= p.frames => {
                lane.part.lead = Some(j - p.frames);
                return Some(join(lane, &end, p.mix_pos + j));
            }
            // Frame 0 is `j` frames into this period.
            Some(j) => {
                lane.part.joined = true;
                lane.part.lead = None;
                lane.device_frames = lane.device_frames.wrapping_sub(j);
                lead = j;
            }
            // A lane joins the device stream one period after the period it is first seen
            // in, so that frame 0 plays a whole device buffer after its start, wherever in
            // the period that came. Joined at once, a lane would owe the pump a whole period
            // of frames by the time the device held only `buffer - period` of the mix: a
            // program that keeps less than a period ahead (ffmpeg -re) would underrun
            // whenever its packets and the periods fell out of step.
            None => {
                lane.part.joined = true;
                return Some(join(lane, &end, p.mix_pos + p.frames));
            }
        }
    }
    let origin = lane.origin(p.mix_pos);
    end.set_start_mix(origin);
    if let Some(share) = lane.part.pending.pop_front() {
        // Taken back from the slave when the lane paused: it plays first, as it was.
        p.sum.add_mix_gain(&share.mix, ramp, p.channels);
        lane.part.glide = glide;
        lane.device_frames = lane.device_frames.wrapping_add(p.frames);
        lane.part.mixed_until = p.mix_pos + p.frames;
        hold(lane, p, share.mix, ramp.from);
        end.publish(Mixed {
            epoch: lane.epoch,
            running: true,
            consumed: lane.pos,
            ..Mixed::default()
        });
        return Some(false);
    }
    let need = lane.need(p.frames);
    let silent = (rescale(lead as i64, p.device_rate, setup.rate) as u64).min(need);
    let need = need - silent;
    // Never trust the client's position: clamp it to what its ring can hold.
    let queued = lane.queued(&ctl, &setup);
    let took = queued.min(need);
    // At its full volume a lane is added straight to the sum: bit-exact alone.
    match p.share() {
        Some(mut share) => {
            add_frames(lane, &setup, &end, silent, took, p.scratch, &mut share);
            p.sum.add_mix_gain(&share, ramp, p.channels);
            hold(lane, p, share, ramp.from);
        }
        None if ramp.is_unity() => add_frames(lane, &setup, &end, silent, took, p.scratch, p.sum),
        None => {
            p.spare.clear(p.sum.len());
            add_frames(lane, &setup, &end, silent, took, p.scratch, p.spare);
            p.sum.add_mix_gain(p.spare, ramp, p.channels);
        }
    }
    lane.part.glide = glide;
    lane.part.mixed_until = p.mix_pos + p.frames;
    lane.device_frames = lane.device_frames.wrapping_add(p.frames);
    let mixed = if ctl.state == State::Draining && queued <= need {
        finish_drain(lane, &setup, &end, took, origin, p)
    } else {
        advance(lane, &end, took, need, ctl.state == State::Running)
    };
    end.publish(mixed);
    if mixed.drained || mixed.stopped {
        // A drain waiting on its end, or a program that must hear of its xrun to recover,
        // is always woken: no later period will.
        return Some(true);
    }
    Some(end.take_wake(lane.pos))
}

/// A period in which the lane is seen but takes nothing: its frame 0 is at `first`.
fn join(lane: &Lane<Playing>, end: &Consumer, first: u64) -> bool {
    end.set_start_mix(lane.origin(first));
    end.publish(Mixed {
        epoch: lane.epoch,
        running: true,
        ..Mixed::default()
    });
    false
}

/// Keeps the lane's share of this period, for a rewind.
fn hold(lane: &mut Lane<Playing>, p: &Period, mix: mix::Mixer, gain: f64) {
    if p.pool.is_some() {
        lane.part.held.push_back(Share {
            at: p.mix_pos,
            gain,
            mix,
        });
    }
}

/// Reads `n` frames at the lane position, after `silent` frames of silence, and adds them
/// (converted, if need be) to `to`.
fn add_frames(
    lane: &mut Lane<Playing>,
    setup: &LaneSetup,
    end: &Consumer,
    silent: u64,
    n: u64,
    scratch: &mut Vec<u8>,
    to: &mut mix::Mixer,
) {
    let g = setup.geometry;
    let quiet = silent as usize * g.frame_bytes;
    scratch.resize(quiet + n as usize * g.frame_bytes, 0);
    setup.format.silence(&mut scratch[..quiet]);
    if n > 0 {
        end.read(&g, lane.pos, &mut scratch[quiet..]);
    }
    match &mut lane.part.conv {
        Some(c) => c.process(scratch, to),
        None if !scratch.is_empty() => to.add(setup.format, scratch),
        None => {}
    }
}

/// Everything of a draining lane is in: it is done once the device stream has passed its
/// last frame (for a converted lane, the resampler's tail included).
fn finish_drain(
    lane: &mut Lane<Playing>,
    setup: &LaneSetup,
    end: &Consumer,
    took: u64,
    origin: u64,
    p: &Period,
) -> Mixed {
    lane.pos = pos_add(lane.pos, took as i64);
    let last = origin.wrapping_add(rescale(lane.pos as i64, setup.rate, p.device_rate) as u64);
    let drained = p.mix_pos + p.frames >= last;
    if drained {
        lane.part.phase = Phase::Drained;
        end.set_drain_end(last);
    }
    Mixed {
        epoch: lane.epoch,
        running: true,
        drained,
        stopped: false,
        consumed: lane.pos,
    }
}

/// The device clock moves on whether or not the client kept up, as on hardware; a client
/// that could not give what the period needed has underrun (counted once per dry spell).
/// A running stream dry past the point its client says it stops at is in xrun: it is not
/// mixed again this epoch (the client sees the xrun and prepares anew).
fn advance(lane: &mut Lane<Playing>, end: &Consumer, took: u64, need: u64, running: bool) -> Mixed {
    lane.pos = pos_add(lane.pos, need as i64);
    let dry = took < need;
    let part = &mut lane.part;
    if dry && part.phase != Phase::Starved {
        end.count_underrun();
        lane.xruns = lane.xruns.wrapping_add(1);
    }
    part.short = if dry { part.short.saturating_add(need - took) } else { 0 };
    part.phase = match () {
        _ if running && part.short > end.stop_after() => Phase::Stopped,
        _ if dry => Phase::Starved,
        _ => Phase::Live,
    };
    Mixed {
        epoch: lane.epoch,
        running: true,
        drained: false,
        stopped: part.phase == Phase::Stopped,
        consumed: lane.pos,
    }
}
