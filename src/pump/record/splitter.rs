//! The capture half of the pump: once per captured device period it gives every recording
//! lane its own copy, converted to that client's format, rate and layout. Pure: a period
//! in, lanes out, no clock and no device, so tests drive it directly.
//!
//! One writer, many readers, and no reader can hold the writer up: the pump writes each
//! lane whatever its client has read. A client that falls behind its own stop_threshold has
//! overrun; the pump stops writing its lane (as a card stops a stream in xrun) until it
//! prepares again, and nobody else notices.

use std::sync::Arc;

use crate::config::Bindings;
use crate::dsp::chmap;
use crate::dsp::convert::{Layout, Tap};
use crate::dsp::format::Format;
use crate::dsp::gain::{Glide, Volume};
use crate::error::Result;
use crate::pump::lanes::{Lane, LaneSetup, Lanes, Part, check_client, refuse};
use crate::shm::clock::rescale;
use crate::shm::lane::LaneMem;
use crate::shm::ring::{Ctl, Mixed, State, pos_add, pos_diff};
use crate::shm::segment::{DeviceParams, MAX_LANES, SegmentWriter};
use crate::shm::tap::{self, Writer};

/// When a reader is due, in device frames past the capture position: from `earliest` (it
/// has what it asked for) to `latest`.
#[derive(Clone, Copy, Debug)]
struct Due {
    earliest: u64,
    latest: u64,
}

/// Capture's part of a lane.
#[derive(Default)]
pub struct Recording {
    tap: Option<Tap>,
    /// The client's buffer, in its frames, as the pump accepted it.
    buffer: u64,
    /// Overran in this epoch: nothing more is written until the client prepares again.
    stopped: bool,
    /// The device position from which this lane records, fixed when the pump first saw it
    /// running (a start or a resume): what the device captured before it is not its own,
    /// however much of that the device still holds.
    joins_at: Option<u64>,
    /// The wake-up the client last asked for, and how far past the lane position it lay
    /// when the pump first saw it: the client's avail_min, near enough, for the while it
    /// has been woken and not yet asked again.
    seen_wake: Option<u64>,
    asked: Option<u64>,
    /// Where its volume's gain is and is heading.
    glide: Glide,
}

impl Recording {
    fn note_wake(&mut self, at: u64, pos: u64) {
        if self.seen_wake != Some(at) {
            self.seen_wake = Some(at);
            self.asked = Some(pos_diff(at, pos).max(0) as u64);
        }
    }
}

impl Part for Recording {
    fn restart(&mut self) {
        if let Some(t) = &mut self.tap {
            t.reset();
        }
        self.stopped = false;
        self.joins_at = None;
        self.seen_wake = None;
        self.asked = None;
        self.glide = Glide::default();
    }
    fn ctl(mem: &LaneMem) -> Option<Ctl> {
        Writer::new(mem).ctl()
    }
    fn publish(mem: &LaneMem, m: Mixed) {
        Writer::new(mem).publish(m)
    }
    fn reset(mem: &LaneMem) {
        Writer::new(mem).reset()
    }
}

/// Hands captured periods to the recording lanes.
pub struct Splitter {
    pub lanes: Lanes<Recording>,
    /// Device frames captured since the pump started.
    cap_pos: u64,
    /// The readers' windows, kept to be reused (see `frames_wanted`).
    windows: Vec<Due>,
}

impl Splitter {
    pub fn new(seg: Arc<SegmentWriter>, dev: DeviceParams, chmap: Vec<u32>) -> Result<Splitter> {
        Ok(Splitter {
            lanes: Lanes::new(seg, dev, chmap)?,
            cap_pos: 0,
            windows: Vec::with_capacity(MAX_LANES),
        })
    }

    pub fn device(&self) -> DeviceParams {
        self.lanes.dev
    }

    pub fn frame_bytes(&self) -> usize {
        self.lanes.frame_bytes()
    }

    /// Device frames captured and handed out since the pump started.
    pub fn cap_pos(&self) -> u64 {
        self.cap_pos
    }

    /// The conversion from the device to a client of this format, rate and layout.
    fn tap(&self, format: Format, channels: u32, rate: u32, bindings: &Bindings) -> Result<Tap> {
        let dev = self.lanes.dev;
        let matrix = if !bindings.is_empty() {
            Some(chmap::capture_binding_matrix(bindings.pairs(), dev.channels as usize))
        } else if channels != dev.channels {
            Some(chmap::matrix(&self.lanes.chmap, &chmap::standard_map(channels)))
        } else {
            None
        };
        let device = Layout {
            format: self.lanes.format,
            rate: dev.rate,
            channels: dev.channels as usize,
        };
        let client = Layout {
            format,
            rate,
            channels: channels as usize,
        };
        Tap::new(device, dev.period_frames as usize, client, matrix)
    }

    /// Accepts or refuses a recording client's hw_params.
    pub fn setup(
        &mut self,
        idx: usize,
        format: Format,
        channels: u32,
        rate: u32,
        buffer_frames: u64,
        bindings: &Bindings,
    ) -> Result<()> {
        check_client(&self.lanes.dev, channels, rate, bindings)?;
        let frame_bytes = format.sample_bytes() * channels as usize;
        let geometry = tap::geometry(frame_bytes).ok_or_else(|| refuse("impossible frame size".into()))?;
        let tap = self.tap(format, channels, rate, bindings)?;
        // The pump writes up to a buffer past the client's stop point, and the period being
        // written must never reach a frame the client may still read.
        let room = geometry.buffer_frames as u64;
        let fits = buffer_frames
            .checked_mul(2)
            .and_then(|b| b.checked_add(2 * tap.max_frames() as u64))
            .is_some_and(|need| need <= room);
        if !fits {
            return Err(refuse(format!(
                "a capture buffer of {buffer_frames} frames of {frame_bytes} bytes does not fit a lane \
                 (at most {} frames)",
                room.saturating_sub(2 * tap.max_frames() as u64) / 2
            )));
        }
        let setup = LaneSetup {
            format,
            channels,
            rate,
            geometry,
        };
        self.lanes.accept(
            idx,
            setup,
            Recording {
                tap: Some(tap),
                buffer: buffer_frames,
                ..Recording::default()
            },
        );
        Ok(())
    }

    /// Whether any lane records now: its client says it runs, and it has not overrun in
    /// that epoch. A corrupt word reads as stopped.
    pub fn wants_capture(&self) -> bool {
        self.lanes
            .declared()
            .any(|(lane, c)| c.state == State::Running && !(c.epoch == lane.epoch && lane.part.stopped))
    }

    /// Lane `idx`'s volume: what its reader receives from the next period on, ramped.
    pub fn set_volume(&mut self, idx: usize, v: Volume) {
        self.lanes.set_volume(idx, v);
    }

    pub fn volume(&self, idx: usize) -> Option<Volume> {
        self.lanes.volume(idx)
    }

    /// Whether a lane runs that the pump has not yet given a start position (`admit`).
    pub fn has_newcomers(&self) -> bool {
        self.lanes
            .declared()
            .any(|(lane, c)| c.state == State::Running && (c.epoch != lane.epoch || lane.part.joins_at.is_none()))
    }

    /// Gives each lane that has started or resumed since the last look the device position
    /// `at`, the device's capture position now: it records from there. A lane that does
    /// not run forgets its position, so a resume starts afresh.
    pub fn admit(&mut self, at: u64) {
        for (_, lane, mem) in self.lanes.each() {
            let Some(ctl) = Writer::new(mem).ctl() else { continue };
            if lane.setup.is_none() {
                continue;
            }
            lane.follow(&ctl, mem);
            if ctl.state != State::Running {
                lane.part.joins_at = None;
            } else if lane.part.joins_at.is_none() {
                lane.part.joins_at = Some(at);
            }
        }
    }

    /// Notes each new wake-up a client has asked for, and how far past the lane position it
    /// lies, before the lane is fed again: the client's avail_min, near enough, for the
    /// while after it is woken and before it asks again.
    pub fn note_wakes(&mut self) {
        for (_, lane, mem) in self.lanes.each() {
            if let Some(at) = Writer::new(mem).wake_target() {
                lane.part.note_wake(at, lane.pos);
            }
        }
    }

    /// How many device frames past the capture position the pump may let the device gather
    /// before it reads for its readers. Each running client is due where it asked to be
    /// woken (its avail_min past what it has read), or, while it has not asked again since
    /// its last wake-up, as far as it asked then, or half its buffer; a lie only moves its
    /// own wake-up, never past its buffer. It may be woken later than that by half of its
    /// avail_min or of the room its buffer has beyond it, whichever is less. The pump reads
    /// at the last moment a reader is due before any reader's window closes: alone, a
    /// reader is woken as soon as it is due; readers due close together share a wake-up.
    /// `None` when no lane records.
    pub fn frames_wanted(&mut self) -> Option<u64> {
        let dev = self.lanes.dev;
        let cap_pos = self.cap_pos;
        let windows = &mut self.windows;
        windows.clear();
        for (_, lane, mem) in self.lanes.each() {
            let (Some(setup), Some(delay)) = (lane.setup, lane.part.tap.as_ref().map(Tap::delay_frames)) else {
                continue;
            };
            let end = Writer::new(mem);
            if end
                .ctl()
                .is_none_or(|c| c.state != State::Running || c.epoch != lane.epoch)
                || lane.part.stopped
            {
                continue;
            }
            let part = &mut lane.part;
            let ahead = match end.wake_target() {
                Some(at) => {
                    part.note_wake(at, lane.pos);
                    pos_diff(at, lane.pos).max(0) as u64
                }
                None => part.asked.unwrap_or(part.buffer / 2),
            }
            .min(part.buffer);
            let ask = part.asked.unwrap_or(ahead).min(part.buffer);
            let slack = ask.min(part.buffer - ask) / 2;
            let device = |client: u64| (client as u128 * dev.rate as u128).div_ceil(setup.rate.max(1) as u128) as u64;
            let late = part.joins_at.map_or(0, |j| j.saturating_sub(cap_pos));
            let earliest = device(ahead + delay as u64).saturating_add(late);
            windows.push(Due {
                earliest,
                latest: earliest.saturating_add(device(slack)),
            });
        }
        let closes = windows.iter().map(|w| w.latest).min()?;
        windows.iter().map(|w| w.earliest).filter(|&e| e <= closes).max()
    }

    /// Hands one captured device period (`period_frames` frames of the device's format) to
    /// every recording lane. Lanes whose wake-up fell due, or that just overran, are pushed
    /// onto `wake`.
    pub fn split_period(&mut self, period: &[u8], wake: &mut Vec<usize>) {
        let first = self.cap_pos;
        let dev = self.lanes.dev;
        self.cap_pos += dev.period_frames as u64;
        for (idx, lane, mem) in self.lanes.each() {
            if feed(lane, mem, period, first, &dev) {
                wake.push(idx);
            }
        }
    }
}

/// One lane's part of a period; whether its client should be woken.
fn feed(lane: &mut Lane<Recording>, mem: &LaneMem, period: &[u8], first: u64, dev: &DeviceParams) -> bool {
    let (period_frames, dev_rate) = (dev.period_frames as u64, dev.rate);
    let Some(setup) = lane.setup else { return false };
    let end = Writer::new(mem);
    // A slot with an impossible state tag is treated as stopped: it hurts only its owner.
    let Some(ctl) = end.ctl() else { return false };
    lane.follow(&ctl, mem);
    // Paused, drained, stopped or not yet started: nothing is captured for it, as a card
    // captures nothing for a stream that is not running.
    if ctl.state != State::Running || lane.part.stopped {
        return false;
    }
    // Captured before the lane started (or before the pump saw it start, when it has not
    // been admitted yet): the device still held it, but it is not this client's.
    if lane.part.joins_at.is_none_or(|j| first + period_frames <= j) {
        return false;
    }
    let volume = lane.volume;
    let part = &mut lane.part;
    let Some(tap) = part.tap.as_mut() else {
        return false;
    };
    // Where the lane's frame 0 sits in the device stream: a pause moves it on.
    let delay = rescale(tap.delay_frames() as i64, setup.rate, dev_rate) as u64;
    end.set_start_mix(first.wrapping_sub(lane.device_frames).wrapping_sub(delay));
    let frames = tap.process_at(period, &mut part.glide, volume.gain());
    let n = frames.len() / setup.geometry.frame_bytes;
    end.write(&setup.geometry, lane.pos, frames);
    lane.pos = pos_add(lane.pos, n as i64);
    lane.device_frames += period_frames;
    end.publish(Mixed {
        epoch: lane.epoch,
        running: true,
        drained: false,
        stopped: false,
        consumed: lane.pos,
    });
    // Never trust the client's position: a lie only moves its own overrun.
    let avail = pos_diff(lane.pos, ctl.appl).max(0) as u64;
    if avail >= end.stop_after().max(1) {
        lane.part.stopped = true;
        lane.xruns = lane.xruns.wrapping_add(1);
        end.count_overrun();
        return true;
    }
    end.take_wake(lane.pos)
}
