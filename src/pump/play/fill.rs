//! Filling the slave ahead: how much margin the pump keeps when it sleeps (the
//! watermark), how it adapts, and what the slave is told. `Player` decides what to mix.

use crate::pump::pace::{MISS_PERIODS, margin_frames};
use crate::shm::clock::frames_to_ns;
use crate::shm::segment::DeviceParams;

/// Filling the slave ahead (see `Player::service`): the pump mixes as far ahead as every
/// running lane holds, and sleeps until the slave's fill falls to the watermark, instead of
/// waking at every device period.
pub(super) struct Fill {
    pub on: bool,
    /// Device frames the slave must still hold when the pump wakes to refill it.
    pub watermark: u64,
    /// The lowest quiet whiles take it: where it started. Below the margin a rewind keeps
    /// half of it, and on a 2-vCPU VM under load that xran (27 slave xruns in the VM soak
    /// with a floor at half, down to 5.3 ms; see BENCHMARKS.md), while the wake-ups it saves
    /// at a third of a second's buffer are a few percent.
    floor: u64,
    /// The avail_min the slave was last given (0: none yet).
    pub told: u64,
    /// Slave xruns seen, and since when there has been none.
    xruns: u32,
    clean_since_ns: u64,
}

/// Each slave xrun raises the watermark by a period (up to all of the buffer but a
/// period), as PulseAudio's timer scheduling does; a while this long without one lowers it
/// by a period again, down to where it started.
const WATERMARK_QUIET_NS: u64 = 10_000_000_000;

/// What a filling-ahead slave holds when it (re)starts: the margin and a period. It is the
/// slave's start threshold, since after a restart or a recovered xrun the lanes may hold
/// less than a large buffer.
pub fn start_frames(rate: u32, period: u64, buffer: u64) -> u64 {
    margin_frames(rate, period, buffer) + period
}

impl Fill {
    pub fn new(dev: &DeviceParams, now_ns: u64) -> Fill {
        let (period, buffer) = (dev.period_frames as u64, dev.buffer_frames as u64);
        let watermark = margin_frames(dev.rate, period, buffer);
        Fill {
            on: true,
            watermark,
            floor: watermark,
            told: 0,
            xruns: 0,
            clean_since_ns: now_ns,
        }
    }

    /// The avail_min that wakes the pump at the watermark; every period when filling ahead
    /// is off.
    pub fn avail_min(&self, dev: &DeviceParams) -> u64 {
        let (period, buffer) = (dev.period_frames as u64, dev.buffer_frames as u64);
        if self.on {
            buffer.saturating_sub(self.watermark).max(period)
        } else {
            period
        }
    }

    /// How low the fill may fall while the pump waits for a lane that lacks its next period
    /// (see `Player::wait_for_lanes`): half the watermark, as a rewind keeps, but at least two
    /// periods, and never above the watermark. At the watermark the slave still holds
    /// plenty, and a client with a buffer of a few periods, woken when the pump last took
    /// its frames, is given until here to write before it is mixed short.
    pub fn last_call(&self, dev: &DeviceParams) -> u64 {
        let period = dev.period_frames as u64;
        (self.watermark / 2).max(2 * period).min(self.watermark)
    }

    /// How soon the descriptors must have fired, with `room` free now: when avail_min is
    /// reached, plus slack the device still covers. Filling ahead, half the watermark, so
    /// that a device whose descriptors never fire is found out before it runs dry.
    pub fn within_ns(&self, dev: &DeviceParams, room: u64) -> u64 {
        let period = dev.period_frames as u64;
        let slack = if self.on {
            (self.watermark / 2).max(1)
        } else {
            MISS_PERIODS * period
        };
        frames_to_ns(self.avail_min(dev).saturating_sub(room) + slack, dev.rate)
    }

    /// Raises the watermark after a slave xrun, lowers it after a quiet while.
    pub fn adapt(&mut self, dev: &DeviceParams, xruns: u32, now_ns: u64) {
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
