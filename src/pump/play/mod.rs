//! Playback: the mixer plus pacing, keeping the slave fed without running ahead of real
//! time.
//!
//! `Player::service` (through `Side`) is a non-blocking step: it does all the work that is
//! due at the time it is given and says when to call it again, so the process loop can also
//! watch its sockets, and tests can drive it with a virtual clock and a fake slave.

pub mod mixer;

use std::sync::Arc;

use self::mixer::Mixer;
use super::lanes::LaneTable;
use super::pace::{MISS_PERIODS, Next, Pace};
use super::side::{Device, Side, Sink};
use crate::config::Bindings;
use crate::dsp::format::Format;
use crate::error::{Error, Result};
use crate::shm::clock::{frames_to_ns, ns_to_frames};
use crate::shm::segment::{DeviceParams, SegmentWriter};

pub struct Player<S: Sink> {
    pub mixer: Mixer,
    pub sink: S,
    pub pace: Pace,
    /// The mix position just past the last period in which any lane was mixed: once the
    /// slave's whole buffer beyond it is silence, the device can stop without a click.
    audible_end: u64,
    /// Periods of silence still to lead a restarted device with (see `kick`).
    lead_in: u64,
    /// Until this period the slave's delay is probed to learn whether it is paced.
    probe_until: u64,
    /// Where the slave's take of the mixer's last period stopped, while some is left.
    unsent: Option<usize>,
    fill: Fill,
}

/// Filling the slave ahead (see `Player::service`): the pump mixes as far ahead as every
/// running lane holds, and sleeps until the slave's fill falls to the watermark, instead of
/// waking at every device period.
struct Fill {
    on: bool,
    /// Device frames the slave must still hold when the pump wakes to refill it.
    watermark: u64,
    /// The lowest quiet whiles take it: half where it started.
    floor: u64,
    /// The avail_min the slave was last given (0: none yet).
    told: u64,
    /// Slave xruns seen, and since when there has been none.
    xruns: u32,
    clean_since_ns: u64,
}

/// A watermark this long without a slave xrun is lowered by a period (down to half where
/// it started): fewer wake-ups once the machine proves it keeps up. Each slave xrun raises
/// it by a period (up to all of the buffer but a period), as PulseAudio's timer scheduling
/// does.
const WATERMARK_QUIET_NS: u64 = 10_000_000_000;

/// The margin the pump keeps in the slave when it wakes, to start with: what it kept
/// before it filled ahead, at rdmix's default 4 periods of 5.3 ms (3 periods queued).
/// It is a time, not a share of the buffer: a larger buffer buys fewer wake-ups, never a
/// thinner margin (a slow copy, a loaded machine).
const MARGIN_NS: u64 = 16_000_000;

impl Fill {
    fn new(dev: &DeviceParams, now_ns: u64) -> Fill {
        let (period, buffer) = (dev.period_frames as u64, dev.buffer_frames as u64);
        let margin = ns_to_frames(MARGIN_NS, dev.rate).div_ceil(period) * period;
        let watermark = margin.min(buffer.saturating_sub(period)).max(period);
        Fill {
            on: true,
            watermark,
            floor: (watermark / 2 / period).max(1) * period,
            told: 0,
            xruns: 0,
            clean_since_ns: now_ns,
        }
    }

    /// The avail_min that wakes the pump at the watermark; every period when filling ahead
    /// is off.
    fn avail_min(&self, dev: &DeviceParams) -> u64 {
        let (period, buffer) = (dev.period_frames as u64, dev.buffer_frames as u64);
        if self.on {
            buffer.saturating_sub(self.watermark).max(period)
        } else {
            period
        }
    }

    /// How soon the descriptors must have fired, with `room` free now: when avail_min is
    /// reached, plus slack the device still covers. Filling ahead, half the watermark, so
    /// that a device whose descriptors never fire is found out before it runs dry.
    fn within_ns(&self, dev: &DeviceParams, room: u64) -> u64 {
        let period = dev.period_frames as u64;
        let slack = if self.on {
            (self.watermark / 2).max(1)
        } else {
            MISS_PERIODS * period
        };
        frames_to_ns(self.avail_min(dev).saturating_sub(room) + slack, dev.rate)
    }

    /// Raises the watermark after a slave xrun, lowers it after a quiet while.
    fn adapt(&mut self, dev: &DeviceParams, xruns: u32, now_ns: u64) {
        let (period, buffer) = (dev.period_frames as u64, dev.buffer_frames as u64);
        if xruns != self.xruns {
            self.xruns = xruns;
            self.watermark = (self.watermark + period).min(buffer.saturating_sub(period).max(period));
            self.clean_since_ns = now_ns;
        } else if now_ns.saturating_sub(self.clean_since_ns) > WATERMARK_QUIET_NS {
            self.watermark = self.watermark.saturating_sub(period).max(self.floor);
            self.clean_since_ns = now_ns;
        }
    }
}

impl<S: Sink> Player<S> {
    pub fn new(mixer: Mixer, sink: S, now_ns: u64) -> Player<S> {
        let seg: Arc<SegmentWriter> = mixer.lanes.seg.clone();
        // Paced until proven otherwise by the slave's delay (see `probe`).
        let pace = Pace::new(seg, mixer.device(), false, now_ns);
        let fill = Fill::new(&mixer.device(), now_ns);
        Player {
            mixer,
            sink,
            pace,
            audible_end: 0,
            lead_in: 0,
            probe_until: 0,
            unsent: None,
            fill,
        }
    }

    /// Whether the pump fills the slave ahead (the `fill_ahead` option; on by default).
    pub fn fill_ahead(&mut self, on: bool) {
        self.fill.on = on;
    }

    /// The watermark the pump refills the slave at, in device frames.
    pub fn watermark(&self) -> u64 {
        self.fill.watermark
    }

    /// Tells a device-paced slave when to wake the pump: at the watermark. A slave that
    /// refuses is woken every period, as before.
    fn tell_slave(&mut self) {
        let dev = self.mixer.device();
        let want = self.fill.avail_min(&dev);
        if !self.pace.realtime || want == self.fill.told {
            return;
        }
        if self.sink.wake_at_room(want).is_err() {
            self.fill.on = false;
        }
        self.fill.told = want;
    }

    /// Filling ahead, the device holds enough, and some running lane lacks the next
    /// period: wait for its client (or for the watermark) rather than mix silence for it.
    fn wait_for_lanes(&self, queued: u64) -> bool {
        let period = self.mixer.device().period_frames as u64;
        self.fill.on
            && self.pace.realtime
            && self.lead_in == 0
            && queued >= self.fill.watermark + period
            && !self.mixer.lanes_hold_a_period()
    }

    /// Frames the slave still holds at `now_ns`, by its own report or by the clock.
    fn queued(&mut self, now_ns: u64) -> Result<u64> {
        let dev = self.mixer.device();
        if self.pace.realtime {
            return match self.sink.delay() {
                Ok(d) => Ok(d.clamp(0, dev.buffer_frames as i64) as u64),
                Err(e) => self.recover(e).map(|_| 0),
            };
        }
        let played = self.pace.due(now_ns);
        let mix_pos = self.mixer.mix_pos();
        if played >= mix_pos {
            // Ran dry (or just started): restart the virtual device clock at the current position.
            self.pace.anchor(now_ns, mix_pos);
            return Ok(0);
        }
        Ok(mix_pos - played)
    }

    /// Frames the slave can take now.
    fn room(&mut self, queued: u64) -> Result<u64> {
        let buffer = self.mixer.device().buffer_frames as u64;
        if !self.pace.realtime {
            return Ok(buffer - queued.min(buffer));
        }
        self.sink.avail().map(|a| a as u64)
    }

    /// Mixes (or leads in with silence) one period and hands it to the slave.
    fn mix_one(&mut self, now_ns: u64, wake: &mut Vec<usize>) -> Result<()> {
        if self.lead_in > 0 {
            self.lead_in -= 1;
            self.mixer.silence_period();
        } else {
            self.mixer.mix_period(wake);
        }
        if self.mixer.mixed_any() {
            self.audible_end = self.mixer.mix_pos();
        }
        self.unsent = Some(0);
        self.pace.progress(now_ns);
        self.flush_unsent()?;
        self.probe();
        Ok(())
    }

    /// A slave that consumes in real time shows a delay from its first period on (it holds
    /// what it has not played); one that shows none for a whole buffer never will.
    fn probe(&mut self) {
        if !self.pace.realtime && self.pace.stats.periods <= self.probe_until {
            self.pace.realtime = self.sink.delay().map(|d| d > 0).unwrap_or(false);
        }
    }

    /// The slave is full: when to look again.
    fn when_room(&mut self, now_ns: u64, room: u64, mixed: bool) -> Next {
        let dev = self.mixer.device();
        self.tell_slave();
        if let Some(next) = self.pace.device_wait(now_ns, mixed, self.fill.within_ns(&dev, room)) {
            return next;
        }
        let period = dev.period_frames as u64;
        // Clock-paced, the pump may take several periods per wake-up: as many as keep half
        // the device's buffer queued, and as every running lane can give with half its own
        // buffer to spare. A lane with a small buffer keeps it at one.
        let want = if self.pace.realtime {
            period
        } else {
            period * self.mixer.periods_per_take(dev.buffer_frames as u64 / (2 * period))
        };
        Next::At(now_ns + frames_to_ns(want.max(room) - room, dev.rate).max(self.pace.period_ns() / 8))
    }

    /// No lane wants mixing, and the slave's whole buffer past the last audible frame is
    /// silence: stopping now cuts nothing and replays nothing.
    fn quiet(&self) -> bool {
        let buffer = self.mixer.device().buffer_frames as u64;
        self.mixer.mix_pos() >= self.audible_end + buffer && !self.mixer.wants_mixing()
    }

    fn go_idle(&mut self) -> Result<()> {
        if self.pace.realtime {
            self.sink.stop()?;
        }
        self.pace.stop();
        Ok(())
    }

    /// Writes what is left of the last mixed period. `Ok(false)` if the slave is full.
    fn flush_unsent(&mut self) -> Result<bool> {
        let fb = self.mixer.frame_bytes();
        while let Some(off) = self.unsent {
            let out = self.mixer.output();
            if off >= out.len() {
                self.unsent = None;
                break;
            }
            let rest = &out[off..];
            match self.sink.write(rest, rest.len() / fb) {
                Ok(0) => return Ok(false),
                Ok(n) => self.unsent = Some(off + n * fb),
                Err(e) if e.is(libc::EAGAIN) => return Ok(false),
                Err(e) => self.recover(e)?,
            }
        }
        Ok(true)
    }

    fn recover(&mut self, err: Error) -> Result<()> {
        let sink = &mut self.sink;
        self.pace.recover(err, |e| sink.recover(e))
    }

    fn publish(&self, now_ns: u64, queued: u64) {
        self.pace.publish(now_ns, self.mixer.mix_pos(), queued);
    }
}

impl<S: Sink> Side for Player<S> {
    /// A client's lane has started to want mixing. An idle pump readies the device again;
    /// the next `service` fills its buffer and so starts it. A busy pump has nothing to do.
    ///
    /// The buffer is filled with silence but for its last period, in which the lanes are
    /// first seen (and which they join a period later, as every lane does: see
    /// `mixer::mix_lane`). The device starts full, so a lane's frame 0 plays one buffer
    /// from now, and from then on the lanes are taken at the device's pace, as they are by
    /// a pump that never stopped. (Had the whole buffer come from the lanes, a client that
    /// started with less than that queued would underrun at once.)
    fn kick(&mut self, now_ns: u64) -> Result<()> {
        if !self.pace.is_idle() || !self.mixer.wants_mixing() {
            return Ok(());
        }
        if self.pace.realtime {
            self.sink.prepare()?;
        }
        let dev = self.mixer.device();
        let periods = (dev.buffer_frames / dev.period_frames) as u64;
        self.lead_in = periods.saturating_sub(1);
        self.probe_until = self.pace.stats.periods + periods + 1;
        self.pace.start(now_ns, self.mixer.mix_pos());
        Ok(())
    }

    /// Mixes and writes every period that is due at `now_ns`; says when to call again.
    /// Lanes whose wake-up fell due are pushed onto `wake`.
    fn service(&mut self, now_ns: u64, wake: &mut Vec<usize>) -> Result<Next> {
        if self.pace.is_idle() {
            return Ok(Next::Idle);
        }
        let dev = self.mixer.device();
        self.fill.adapt(&dev, self.pace.stats.slave_xruns, now_ns);
        let period = dev.period_frames as u64;
        let mut mixed = false;
        loop {
            let flushed = self.flush_unsent()?;
            let queued = self.queued(now_ns)?;
            let room = if flushed {
                match self.room(queued) {
                    Ok(r) => r,
                    Err(e) => {
                        self.recover(e)?;
                        continue;
                    }
                }
            } else {
                0
            };
            if room < period {
                if self.pace.stalled(now_ns) {
                    return Err(Error::errno(libc::EIO));
                }
                self.publish(now_ns, queued);
                return Ok(self.when_room(now_ns, room, mixed));
            }
            if self.wait_for_lanes(queued) {
                self.publish(now_ns, queued);
                return Ok(self.when_room(now_ns, room, mixed));
            }
            if self.lead_in == 0 && self.quiet() {
                self.publish(now_ns, queued);
                self.go_idle()?;
                return Ok(Next::Idle);
            }
            self.mix_one(now_ns, wake)?;
            mixed = true;
            let queued = self.queued(now_ns).unwrap_or(0);
            self.publish(now_ns, queued);
        }
    }

    fn setup(&mut self, idx: usize, f: Format, channels: u32, rate: u32, buffer: u64, b: &Bindings) -> Result<()> {
        self.mixer.setup(idx, f, channels, rate, buffer, b)
    }

    fn pace(&self) -> &Pace {
        &self.pace
    }

    fn pace_mut(&mut self) -> &mut Pace {
        &mut self.pace
    }

    fn lanes(&self) -> &dyn LaneTable {
        &self.mixer.lanes
    }

    fn lanes_mut(&mut self) -> &mut dyn LaneTable {
        &mut self.mixer.lanes
    }

    fn device(&self) -> &dyn Device {
        &self.sink
    }
}
