//! Pacing, once for both directions: when the device runs, how fast, and what the pump
//! tells the clients of it.
//!
//! `Pace` keeps what playback's `Player` and capture's `Recorder` share: whether the
//! device is idle, the clock anchor that paces a slave which does not block, the progress
//! that proves a paced device alive, the fall-back from its poll descriptors to the clock,
//! the counters, the recovery of an xrun, and the clock and failure the clients read.
//! Each direction moves its own frames; neither knows the other.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::shm::clock::{Clock, frames_to_ns, ns_to_frames, stall_limit_ns};
use crate::shm::segment::{DeviceParams, SegmentWriter};

/// When the pump wants `service` again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// At this CLOCK_MONOTONIC instant: the slave does not block (`null`, `file`), or is
    /// between its period boundaries.
    At(u64),
    /// When the slave's own poll descriptors say it can take (or give) a period, so the
    /// card's interrupt paces the pump; at `by` at the latest, to notice a wedged device.
    Device { by: u64 },
    /// Never by itself: no lane wants the device, it is stopped, and only a client's KICK
    /// starts it again.
    Idle,
}

impl Next {
    /// The instant a timer must fire at, if any.
    pub fn deadline(self) -> Option<u64> {
        match self {
            Next::At(t) | Next::Device { by: t } => Some(t),
            Next::Idle => None,
        }
    }
}

/// What the pump did, for its owner and its tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub periods: u64,
    pub slave_xruns: u32,
}

/// Whether a slave's error is one `snd_pcm_recover` mends (an xrun, a suspend, a signal);
/// anything else means the device is gone or broken.
pub fn is_xrun(err: &Error) -> bool {
    err.is(libc::EPIPE) || err.is(libc::ESTRPIPE) || err.is(libc::EINTR)
}

/// Device wake-ups in a row that may find nothing to do before the descriptors are
/// distrusted.
const SPURIOUS_LIMIT: u32 = 16;
/// Periods past the moment they should fire by which the slave's descriptors must have
/// fired, where the device holds that much more (capture; playback without filling ahead).
pub const MISS_PERIODS: u64 = 2;
/// Waits in a row that the deadline ended with work waiting before the descriptors are
/// distrusted: they do not fire (some plugins' never do).
const MISS_LIMIT: u32 = 4;

/// The margin the pump keeps in the slave when it wakes, either way: playback's starting
/// watermark (what it kept before it filled ahead, at rdmix's default 4 periods of 5.3 ms,
/// 3 periods queued), and the room capture leaves free. It is a time, not a share of the
/// buffer: a larger buffer buys fewer wake-ups, never a thinner margin (a slow copy, a
/// loaded machine).
const MARGIN_NS: u64 = 16_000_000;

/// The margin in whole periods, within the buffer less a period.
pub fn margin_frames(rate: u32, period: u64, buffer: u64) -> u64 {
    let margin = ns_to_frames(MARGIN_NS, rate).div_ceil(period) * period;
    margin.min(buffer.saturating_sub(period)).max(period)
}

/// Whether the slave's poll descriptors can be slept on, judged wait by wait. They are
/// distrusted for good when they fire again and again with nothing to do (always ready),
/// or when the deadline keeps finding work they never announced (never ready). Either way
/// the clock paces the slave from then on.
#[derive(Debug, Default)]
struct DeviceWait {
    /// Wake-ups in a row that found nothing to do, before the deadline.
    spurious: u32,
    /// Waits in a row that only the deadline ended, with work waiting.
    missed: u32,
    /// When the current wait's deadline falls, while waiting.
    by: Option<u64>,
    distrusted: bool,
}

impl DeviceWait {
    /// After a step that did (`worked`) or did not find work: the deadline of the next
    /// wait on the descriptors, or `None` when they are no longer to be trusted. They
    /// should have fired `within_ns` from now; `stall_by` bounds the wait for a device that
    /// has stopped.
    fn next(&mut self, now_ns: u64, worked: bool, stall_by: u64, within_ns: u64) -> Option<u64> {
        if self.distrusted {
            return None;
        }
        let late = self.by.is_some_and(|t| now_ns >= t);
        if worked {
            self.spurious = 0;
            self.missed = if late { self.missed + 1 } else { 0 };
        } else if !late {
            self.spurious += 1;
        }
        if self.spurious > SPURIOUS_LIMIT || self.missed > MISS_LIMIT {
            self.distrust();
            return None;
        }
        let by = stall_by.min(now_ns + within_ns);
        self.by = Some(by);
        Some(by)
    }

    fn distrust(&mut self) {
        self.distrusted = true;
        self.by = None;
    }

    /// A new wait starts fresh (the device was stopped and started again).
    fn restart(&mut self) {
        self.spurious = 0;
        self.missed = 0;
        self.by = None;
    }
}

/// The pacing state of one pump, either direction.
pub struct Pace {
    seg: Arc<SegmentWriter>,
    /// The pump's own copy of the device parameters: never re-read from shared memory.
    dev: DeviceParams,
    /// No lane wants the device, and it is stopped (or was never started).
    idle: bool,
    /// The slave moves in real time, so its own buffer paces the pump; otherwise (`null`,
    /// `file`) CLOCK_MONOTONIC does. Each direction learns it its own way.
    pub realtime: bool,
    wait: DeviceWait,
    /// The clock pacing a slave that does not block: device position `anchor_frames` was
    /// due at `anchor_ns`.
    anchor_ns: u64,
    anchor_frames: u64,
    /// When the device last took or gave a period.
    last_progress_ns: u64,
    /// The clock read right after the slave's delay or avail, where the slave stamps none
    /// itself; `None`: the instant `service` was called at (a virtual clock in tests).
    clock: Option<fn() -> u64>,
    pub stats: Stats,
}

impl Pace {
    pub fn new(seg: Arc<SegmentWriter>, dev: DeviceParams, realtime: bool, now_ns: u64) -> Pace {
        Pace {
            seg,
            dev,
            idle: true,
            realtime,
            wait: DeviceWait::default(),
            anchor_ns: now_ns,
            anchor_frames: 0,
            last_progress_ns: now_ns,
            clock: None,
            stats: Stats::default(),
        }
    }

    /// Stamps the published device clock with `clock` read just after the slave's delay or
    /// avail, not with the instant `service` was called at: one `service` may mix, write or
    /// read many periods, and a stamp from its start would make every client's
    /// snd_pcm_delay off by however long that took.
    pub fn stamp_with(&mut self, clock: fn() -> u64) {
        self.clock = Some(clock);
    }

    /// When a delay or avail just read held, where the slave gave no stamp of its own.
    pub fn read_at(&self, now_ns: u64) -> u64 {
        self.clock.map_or(now_ns, |now| now().max(now_ns))
    }

    pub fn device(&self) -> DeviceParams {
        self.dev
    }

    pub fn segment(&self) -> &SegmentWriter {
        &self.seg
    }

    /// Whether the pump is idle: the device stopped, waiting for a KICK.
    pub fn is_idle(&self) -> bool {
        self.idle
    }

    /// The device starts (again) at device position `pos`.
    pub fn start(&mut self, now_ns: u64, pos: u64) {
        self.idle = false;
        self.wait.restart();
        self.anchor(now_ns, pos);
        self.last_progress_ns = now_ns;
    }

    /// The device has stopped: nobody wants it.
    pub fn stop(&mut self) {
        self.idle = true;
    }

    /// The device took or gave a period.
    pub fn progress(&mut self, now_ns: u64) {
        self.stats.periods += 1;
        self.last_progress_ns = now_ns;
    }

    /// A device that moves in real time has stood still past the stall limit: wedged.
    pub fn stalled(&self, now_ns: u64) -> bool {
        self.realtime && now_ns.saturating_sub(self.last_progress_ns) > stall_limit_ns(&self.dev)
    }

    /// Restarts the clock that paces a slave which does not block: `pos` is due now.
    pub fn anchor(&mut self, now_ns: u64, pos: u64) {
        self.anchor_ns = now_ns;
        self.anchor_frames = pos;
    }

    /// The device position the clock says is due at `now_ns`.
    pub fn due(&self, now_ns: u64) -> u64 {
        self.anchor_frames + ns_to_frames(now_ns.saturating_sub(self.anchor_ns), self.dev.rate)
    }

    /// When the clock says device position `pos` falls due.
    pub fn due_at(&self, pos: u64) -> u64 {
        self.anchor_ns + frames_to_ns(pos.saturating_sub(self.anchor_frames), self.dev.rate)
    }

    pub fn period_ns(&self) -> u64 {
        frames_to_ns(self.dev.period_frames as u64, self.dev.rate)
    }

    /// After a step that did (`worked`) or did not move a period: sleep on the device's
    /// descriptors, if they can be trusted, until the returned deadline. They should have
    /// fired `within_ns` from now: a wait that ends there, with work waiting, counts
    /// against them.
    pub fn device_wait(&mut self, now_ns: u64, worked: bool, within_ns: u64) -> Option<Next> {
        if !self.realtime {
            return None;
        }
        let stall_by = self.last_progress_ns + stall_limit_ns(&self.dev) + 1;
        self.wait
            .next(now_ns, worked, stall_by, within_ns)
            .map(|by| Next::Device { by })
    }

    /// The slave offers no descriptors to sleep on: the clock paces it.
    pub fn pace_by_clock(&mut self) {
        self.wait.distrust();
    }

    /// Whether the device has been told to sleep on its descriptors, for the caller that
    /// watches them.
    pub fn sleeps_on_device(&self) -> bool {
        self.realtime && !self.wait.distrusted && !self.idle
    }

    /// Counts and mends an xrun with `mend` (the slave's recover); passes any other error on.
    pub fn recover(&mut self, err: Error, mend: impl FnOnce(&Error) -> Result<()>) -> Result<()> {
        if is_xrun(&err) {
            self.stats.slave_xruns += 1;
            self.seg.count_slave_xrun();
            return mend(&err);
        }
        Err(err)
    }

    /// Publishes the device clock: `pos` device frames moved, `held` in the slave.
    pub fn publish(&self, now_ns: u64, pos: u64, held: u64) {
        self.seg.publish_clock(Clock {
            mix_pos: pos,
            slave_delay: held,
            tstamp_ns: now_ns,
        });
    }

    /// Marks the segment failed, so clients report the errno instead of waiting.
    pub fn fail(&self, err: &Error) {
        self.seg.set_failed(err.neg());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A paced slave whose descriptors are always ready: the pump wakes, finds no room, and
    /// after a few such wake-ups distrusts them for the clock.
    #[test]
    fn always_ready_descriptors_are_distrusted() {
        let mut w = DeviceWait::default();
        let mut t = 0;
        for _ in 0..SPURIOUS_LIMIT {
            assert!(w.next(t, false, u64::MAX, 10_000_000).is_some());
            t += 1_000;
        }
        assert_eq!(w.next(t, false, u64::MAX, 10_000_000), None);
    }

    /// Descriptors that never fire: only the deadline ends each wait, with work waiting.
    #[test]
    fn never_ready_descriptors_are_distrusted() {
        let mut w = DeviceWait::default();
        let mut t = 0;
        let mut by = w.next(t, true, u64::MAX, 10_000_000).unwrap();
        for _ in 0..MISS_LIMIT {
            t = by;
            by = w.next(t, true, u64::MAX, 10_000_000).unwrap();
        }
        assert_eq!(w.next(by, true, u64::MAX, 10_000_000), None);
    }
}
