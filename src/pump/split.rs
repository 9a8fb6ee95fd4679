//! The capture half of the pump: once per captured device period it gives every recording
//! lane its own copy, converted to that client's format, rate and layout. Pure: a period
//! in, lanes out, no clock and no device, so tests drive it directly.
//!
//! One writer, many readers, and no reader can hold the writer up: the pump writes each
//! lane whatever its client has read. A client that falls behind its own stop_threshold has
//! overrun; the pump stops writing its lane (as a card stops a stream in xrun) until it
//! prepares again, and nobody else notices.

use std::sync::Arc;

use super::engine::{LaneSetup, check_client, refuse};
use crate::config::Bindings;
use crate::dsp::chmap;
use crate::dsp::convert::{Layout, Tap};
use crate::dsp::format::Format;
use crate::error::{Error, Result};
use crate::shm::clock::rescale;
use crate::shm::lane::LaneMem;
use crate::shm::ring::{Mixed, State, pos_add, pos_diff};
use crate::shm::segment::{DeviceParams, MAX_LANES, SegmentWriter};
use crate::shm::tap::{self, Writer};

/// What the pump has made of one recording lane.
#[derive(Default)]
struct Lane {
    setup: Option<LaneSetup>,
    tap: Option<Tap>,
    epoch: u16,
    /// Client frames written in this epoch: the lane position.
    written: u64,
    /// Device frames converted for this lane in this epoch.
    fed: u64,
    /// Overran in this epoch: nothing more is written until the client prepares again.
    stopped: bool,
    overruns: u32,
}

impl Lane {
    fn restart(&mut self, epoch: u16) {
        if let Some(t) = &mut self.tap {
            t.reset();
        }
        self.epoch = epoch;
        self.written = 0;
        self.fed = 0;
        self.stopped = false;
    }
}

/// Hands captured periods to the recording lanes.
pub struct Splitter {
    seg: Arc<SegmentWriter>,
    mems: Vec<Option<Arc<LaneMem>>>,
    /// The pump's own copy of the device parameters: never re-read from shared memory.
    dev: DeviceParams,
    format: Format,
    chmap: Vec<u32>,
    lanes: Vec<Lane>,
    /// Device frames captured since the pump started.
    cap_pos: u64,
}

impl Splitter {
    pub fn new(seg: Arc<SegmentWriter>, dev: DeviceParams, chmap: Vec<u32>) -> Result<Splitter> {
        let format = Format::lookup(dev.format)
            .ok_or_else(|| Error::new(libc::EINVAL, format!("rdmix: unsupported slave format {}", dev.format)))?;
        if dev.channels == 0 || dev.period_frames == 0 || dev.rate == 0 {
            return Err(Error::new(
                libc::EINVAL,
                format!("rdmix: impossible device parameters {dev:?}"),
            ));
        }
        Ok(Splitter {
            seg,
            mems: (0..MAX_LANES).map(|_| None).collect(),
            dev,
            format,
            chmap,
            lanes: (0..MAX_LANES).map(|_| Lane::default()).collect(),
            cap_pos: 0,
        })
    }

    pub fn device(&self) -> DeviceParams {
        self.dev
    }

    pub fn frame_bytes(&self) -> usize {
        self.dev.channels as usize * self.format.sample_bytes()
    }

    pub fn segment(&self) -> &SegmentWriter {
        &self.seg
    }

    /// Device frames captured and handed out since the pump started.
    pub fn cap_pos(&self) -> u64 {
        self.cap_pos
    }

    pub fn attach(&mut self, idx: usize, mem: Arc<LaneMem>) {
        crate::shm::ring::Consumer::new(&mem).reset();
        self.mems[idx] = Some(mem);
        self.lanes[idx] = Lane::default();
    }

    pub fn detach(&mut self, idx: usize) {
        self.mems[idx] = None;
        self.lanes[idx] = Lane::default();
    }

    /// What lane `idx` holds, for `rdmix-status`.
    pub fn lane_status(&self, idx: usize) -> Option<(Option<LaneSetup>, Option<State>, u32)> {
        let (lane, mem) = (self.lanes.get(idx)?, self.mems.get(idx)?.as_ref()?);
        Some((lane.setup, Writer::new(mem).ctl().map(|c| c.state), lane.overruns))
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
        check_client(&self.dev, channels, rate, bindings)?;
        let frame_bytes = format.sample_bytes() * channels as usize;
        let geometry = tap::geometry(frame_bytes).ok_or_else(|| refuse("impossible frame size".into()))?;
        let matrix = if !bindings.is_empty() {
            Some(chmap::capture_binding_matrix(
                bindings.pairs(),
                self.dev.channels as usize,
            ))
        } else if channels != self.dev.channels {
            Some(chmap::matrix(&self.chmap, &chmap::standard_map(channels)))
        } else {
            None
        };
        let device = Layout {
            format: self.format,
            rate: self.dev.rate,
            channels: self.dev.channels as usize,
        };
        let client = Layout {
            format,
            rate,
            channels: channels as usize,
        };
        let tap = Tap::new(device, self.dev.period_frames as usize, client, matrix)?;
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
        self.lanes[idx] = Lane {
            setup: Some(LaneSetup {
                format,
                channels,
                rate,
                geometry,
            }),
            tap: Some(tap),
            ..Lane::default()
        };
        Ok(())
    }

    /// Whether any lane records now: its client says it runs, and it has not overrun in
    /// that epoch. A corrupt word reads as stopped.
    pub fn wants_capture(&self) -> bool {
        self.lanes.iter().zip(&self.mems).any(|(lane, mem)| {
            let (Some(_), Some(mem)) = (lane.setup, mem) else {
                return false;
            };
            Writer::new(mem)
                .ctl()
                .is_some_and(|c| c.state == State::Running && !(c.epoch == lane.epoch && lane.stopped))
        })
    }

    /// Hands one captured device period (`period_frames` frames of the device's format) to
    /// every recording lane. Lanes whose wake-up fell due, or that just overran, are pushed
    /// onto `wake`.
    pub fn split_period(&mut self, period: &[u8], wake: &mut Vec<usize>) {
        let first = self.cap_pos;
        self.cap_pos += self.dev.period_frames as u64;
        for (idx, (lane, mem)) in self.lanes.iter_mut().zip(&self.mems).enumerate() {
            let Some(mem) = mem else { continue };
            if feed(lane, &Writer::new(mem), period, first, &self.dev) {
                wake.push(idx);
            }
        }
    }
}

/// One lane's part of a period; whether its client should be woken.
fn feed(lane: &mut Lane, end: &Writer, period: &[u8], first: u64, dev: &DeviceParams) -> bool {
    let (period_frames, dev_rate) = (dev.period_frames as u64, dev.rate);
    let Some(setup) = lane.setup else { return false };
    // A slot with an impossible state tag is treated as stopped: it hurts only its owner.
    let Some(ctl) = end.ctl() else { return false };
    if ctl.epoch != lane.epoch {
        lane.restart(ctl.epoch);
        end.publish(Mixed {
            epoch: ctl.epoch,
            ..Mixed::default()
        });
    }
    // Paused, drained, stopped or not yet started: nothing is captured for it, as a card
    // captures nothing for a stream that is not running.
    if ctl.state != State::Running || lane.stopped {
        return false;
    }
    let Some(tap) = lane.tap.as_mut() else { return false };
    // Where the lane's frame 0 sits in the device stream: a pause moves it on.
    let delay = rescale(tap.delay_frames() as i64, setup.rate, dev_rate) as u64;
    end.set_start_mix(first.wrapping_sub(lane.fed).wrapping_sub(delay));
    let frames = tap.process(period);
    let n = frames.len() / setup.geometry.frame_bytes;
    end.write(&setup.geometry, lane.written, frames);
    lane.written = pos_add(lane.written, n as i64);
    lane.fed += period_frames;
    end.publish(Mixed {
        epoch: lane.epoch,
        running: true,
        drained: false,
        stopped: false,
        consumed: lane.written,
    });
    // Never trust the client's position: a lie only moves its own overrun.
    let avail = pos_diff(lane.written, ctl.appl).max(0) as u64;
    if avail >= end.stop_after().max(1) {
        lane.stopped = true;
        lane.overruns = lane.overruns.wrapping_add(1);
        end.count_overrun();
        return true;
    }
    end.take_wake(lane.written)
}
