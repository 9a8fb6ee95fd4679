//! The device clock: how far the pump has mixed, how much the slave still holds, and when
//! that was true. The pump publishes it under a seqlock in the header; clients extrapolate
//! from it to answer `snd_pcm_delay` without asking the pump anything.
//!
//! Ordering: `clock_seq` is odd while the pump writes. The writer bumps it (Relaxed), fences
//! (Release), stores the three fields (Relaxed) and bumps it again (Release). A reader loads
//! it (Acquire), loads the fields (Relaxed), fences (Acquire) and checks it is unchanged and
//! even; otherwise it retries. A reading is always consistent, and may be one period stale.

use std::sync::atomic::{Ordering, fence};

use super::segment::{DeviceParams, Segment, SegmentWriter};

/// A consistent reading of the device clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    /// Device frames mixed and handed to the slave since the pump started.
    pub mix_pos: u64,
    /// Frames queued in the slave at `tstamp_ns`.
    pub slave_delay: u64,
    /// CLOCK_MONOTONIC nanoseconds when the two were sampled.
    pub tstamp_ns: u64,
}

/// Nanoseconds that `frames` take at `rate`.
pub fn frames_to_ns(frames: u64, rate: u32) -> u64 {
    (frames as u128 * 1_000_000_000 / rate.max(1) as u128) as u64
}

/// How long a paced slave may refuse data before the pump declares it wedged. A client
/// gives a running pump this long, and `STALL_MARGIN_NS` more, before it declares the pump
/// itself stalled: a pump with a wedged slave says so first.
pub fn stall_limit_ns(dev: &DeviceParams) -> u64 {
    (4 * frames_to_ns(dev.buffer_frames as u64, dev.rate)).max(2_000_000_000)
}

pub const STALL_MARGIN_NS: u64 = 1_000_000_000;

/// Whole frames played in `ns` at `rate`.
pub fn ns_to_frames(ns: u64, rate: u32) -> u64 {
    (ns as u128 * rate as u128 / 1_000_000_000) as u64
}

/// `frames` at rate `from` expressed at rate `to` (client frames to device frames and back).
pub fn rescale(frames: i64, from: u32, to: u32) -> i64 {
    if from == to {
        return frames;
    }
    (frames as i128 * to as i128 / from.max(1) as i128) as i64
}

impl Clock {
    /// Frames still queued in the slave at `now_ns`, extrapolated from the last sample.
    pub fn queued_at(&self, now_ns: u64, rate: u32) -> u64 {
        let played = ns_to_frames(now_ns.saturating_sub(self.tstamp_ns), rate);
        self.slave_delay.saturating_sub(played)
    }

    /// Mix position the device has played up to at `now_ns`.
    pub fn played_at(&self, now_ns: u64, rate: u32) -> u64 {
        self.mix_pos - self.queued_at(now_ns, rate).min(self.mix_pos)
    }
}

impl SegmentWriter {
    /// Publishes the device clock (pump only).
    pub fn publish_clock(&self, c: Clock) {
        let h = self.header();
        let s = h.clock_seq.load(Ordering::Relaxed);
        h.clock_seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        h.mix_pos.store(c.mix_pos, Ordering::Relaxed);
        h.slave_delay.store(c.slave_delay, Ordering::Relaxed);
        h.tstamp_ns.store(c.tstamp_ns, Ordering::Relaxed);
        h.clock_seq.store(s.wrapping_add(2), Ordering::Release);
    }
}

impl Segment {
    /// Reads the device clock consistently; `None` if the writer never settles (a dead pump
    /// mid-write).
    pub fn clock(&self) -> Option<Clock> {
        let h = self.header();
        for _ in 0..1000 {
            let s1 = h.clock_seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let c = Clock {
                mix_pos: h.mix_pos.load(Ordering::Relaxed),
                slave_delay: h.slave_delay.load(Ordering::Relaxed),
                tstamp_ns: h.tstamp_ns.load(Ordering::Relaxed),
            };
            fence(Ordering::Acquire);
            if h.clock_seq.load(Ordering::Relaxed) == s1 {
                return Some(c);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::segment::test_device as dev;

    #[test]
    fn clock_extrapolates_playback() {
        let seg = SegmentWriter::in_memory(&dev());
        seg.publish_clock(Clock {
            mix_pos: 10_000,
            slave_delay: 960,
            tstamp_ns: 1_000_000_000,
        });
        let c = seg.clock().unwrap();
        assert_eq!(c.queued_at(1_000_000_000, 48000), 960);
        assert_eq!(c.queued_at(1_010_000_000, 48000), 480);
        assert_eq!(c.queued_at(2_000_000_000, 48000), 0);
        assert_eq!(c.played_at(1_010_000_000, 48000), 10_000 - 480);
    }

    #[test]
    fn frames_and_nanoseconds_convert_both_ways() {
        assert_eq!(frames_to_ns(48_000, 48_000), 1_000_000_000);
        assert_eq!(ns_to_frames(1_000_000_000, 44_100), 44_100);
        assert_eq!(rescale(44_100, 44_100, 48_000), 48_000);
        assert_eq!(rescale(-441, 44_100, 48_000), -480);
        assert_eq!(rescale(7, 48_000, 48_000), 7);
    }
}
