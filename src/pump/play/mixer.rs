//! The mixing half of playback: once per device period it sums the running lanes at the
//! device position and saturates the sum into the slave format. Pure: lanes in, bytes
//! out, no clock and no device, so tests drive it directly.

use std::sync::Arc;

use crate::config::Bindings;
use crate::dsp::chmap;
use crate::dsp::convert::Converter;
use crate::dsp::format::Format;
use crate::dsp::mix;
use crate::error::Result;
use crate::pump::lanes::{Lane, LaneSetup, Lanes, Part, check_client, refuse};
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
}

impl Part for Playing {
    fn restart(&mut self) {
        if let Some(c) = &mut self.conv {
            c.reset();
        }
        self.short = 0;
        self.joined = false;
        self.phase = Phase::Live;
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
}

/// One period's shared working state, lent to each lane in turn.
struct Period<'a> {
    mix_pos: u64,
    frames: u64,
    device_rate: u32,
    sum: &'a mut mix::Mixer,
    scratch: &'a mut Vec<u8>,
}

/// Sums lanes into device periods.
pub struct Mixer {
    pub lanes: Lanes<Playing>,
    sum: mix::Mixer,
    scratch: Vec<u8>,
    out: Vec<u8>,
    mix_pos: u64,
    /// Whether the last period mixed any lane (silence otherwise).
    mixed_any: bool,
}

impl Mixer {
    pub fn new(seg: Arc<SegmentWriter>, dev: DeviceParams, chmap: Vec<u32>) -> Result<Mixer> {
        let lanes = Lanes::new(seg, dev, chmap)?;
        let samples = dev.period_frames as usize * dev.channels as usize;
        Ok(Mixer {
            sum: mix::Mixer::new(lanes.format, samples),
            out: vec![0; samples * lanes.format.sample_bytes()],
            lanes,
            scratch: Vec::new(),
            mix_pos: 0,
            mixed_any: false,
        })
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
                let queued = pos_diff(ctl.appl, if ctl.epoch == lane.epoch { lane.pos } else { 0 })
                    .clamp(0, setup.geometry.buffer_frames as i64) as u64;
                ctl.state == State::Draining || joining || queued >= lane.need(period)
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
        let mut p = Period {
            mix_pos: self.mix_pos,
            frames,
            device_rate: dev.rate,
            sum: &mut self.sum,
            scratch: &mut self.scratch,
        };
        let mut any = false;
        for (idx, lane, mem) in self.lanes.each() {
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
        self.sum.finish(&mut self.out);
        self.mix_pos += frames;
        &self.out
    }
}

/// One lane's part of a period: `None` if it was not mixed, else whether its client should
/// be woken.
fn mix_lane(lane: &mut Lane<Playing>, mem: &LaneMem, p: &mut Period) -> Option<bool> {
    let setup = lane.setup?;
    let end = Consumer::new(mem);
    // A slot with an impossible state tag is treated as stopped: it hurts only its owner.
    let ctl = end.ctl()?;
    lane.follow(&ctl, mem);
    if !ctl.state.is_mixed() || lane.done() {
        return None;
    }
    if !lane.part.joined {
        // A lane joins the device stream one period after the period it is first seen in,
        // so that frame 0 plays a whole device buffer after its start, wherever in the
        // period that came. Joined at once, a lane would owe the pump a whole period of
        // frames by the time the device held only `buffer - period` of the mix: a program
        // that keeps less than a period ahead (ffmpeg -re) would underrun whenever its
        // packets and the periods fell out of step.
        lane.part.joined = true;
        end.set_start_mix(lane.origin(p.mix_pos + p.frames));
        end.publish(Mixed {
            epoch: lane.epoch,
            running: true,
            ..Mixed::default()
        });
        return Some(false);
    }
    let origin = lane.origin(p.mix_pos);
    end.set_start_mix(origin);
    let need = lane.need(p.frames);
    // Never trust the client's position: clamp it to what its ring can hold.
    let queued = pos_diff(ctl.appl, lane.pos).clamp(0, setup.geometry.buffer_frames as i64) as u64;
    let took = queued.min(need);
    add_frames(lane, &setup, &end, took, p);
    lane.device_frames += p.frames;
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

/// Reads `n` frames at the lane position and adds them (converted, if need be) to the mix.
fn add_frames(lane: &mut Lane<Playing>, setup: &LaneSetup, end: &Consumer, n: u64, p: &mut Period) {
    let g = setup.geometry;
    p.scratch.resize(n as usize * g.frame_bytes, 0);
    if n > 0 {
        end.read(&g, lane.pos, p.scratch);
    }
    match &mut lane.part.conv {
        Some(c) => c.process(p.scratch, p.sum),
        None if n > 0 => p.sum.add(setup.format, p.scratch),
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
