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
use crate::error::Result;
use crate::pump::lanes::{Lane, LaneSetup, Lanes, Part, check_client, refuse};
use crate::shm::clock::rescale;
use crate::shm::lane::LaneMem;
use crate::shm::ring::{Ctl, Mixed, State, pos_add, pos_diff};
use crate::shm::segment::{DeviceParams, SegmentWriter};
use crate::shm::tap::{self, Writer};

/// Capture's part of a lane.
#[derive(Default)]
pub struct Recording {
    tap: Option<Tap>,
    /// Overran in this epoch: nothing more is written until the client prepares again.
    stopped: bool,
}

impl Part for Recording {
    fn restart(&mut self) {
        if let Some(t) = &mut self.tap {
            t.reset();
        }
        self.stopped = false;
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
}

impl Splitter {
    pub fn new(seg: Arc<SegmentWriter>, dev: DeviceParams, chmap: Vec<u32>) -> Result<Splitter> {
        Ok(Splitter {
            lanes: Lanes::new(seg, dev, chmap)?,
            cap_pos: 0,
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
                stopped: false,
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
    let Some(tap) = lane.part.tap.as_mut() else {
        return false;
    };
    // Where the lane's frame 0 sits in the device stream: a pause moves it on.
    let delay = rescale(tap.delay_frames() as i64, setup.rate, dev_rate) as u64;
    end.set_start_mix(first.wrapping_sub(lane.device_frames).wrapping_sub(delay));
    let frames = tap.process(period);
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
