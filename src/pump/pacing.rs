//! The engine plus pacing: keeps the slave fed without running ahead of real time.
//!
//! `Pump::service` is a non-blocking step: it does all the work that is due at the time it
//! is given and says when to call it again, so the process loop can also watch its sockets,
//! and tests can drive it with a virtual clock and a fake slave.

use super::engine::Engine;
use crate::error::{Error, Result};
use crate::shm::clock::{Clock, frames_to_ns, ns_to_frames};

/// A PCM the pump can feed: only non-blocking interleaved writes are needed. Errors are
/// bare errnos, as alsa-lib gives them.
pub trait Slave {
    /// Writes whole frames; returns frames taken, or an error (`EAGAIN` when full).
    fn write(&mut self, buf: &[u8], frames: usize) -> Result<usize>;
    /// Frames the slave can take now.
    fn avail(&mut self) -> Result<usize>;
    /// Frames queued in the slave and not yet played.
    fn delay(&mut self) -> Result<i64>;
    /// Recovers from an xrun or suspend reported as `err`.
    fn recover(&mut self, err: &Error) -> Result<()>;
    /// Stops the device. Everything it still holds is silence by then, so nothing audible
    /// is cut.
    fn stop(&mut self) -> Result<()> {
        Ok(())
    }
    /// Makes a stopped device ready to start again; it starts once its buffer is full.
    fn prepare(&mut self) -> Result<()> {
        Ok(())
    }
}

/// When the pump wants `service` again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// At this CLOCK_MONOTONIC instant: the slave does not block (`null`, `file`), or is
    /// between its period boundaries.
    At(u64),
    /// When the slave's own poll descriptors say it can take a period, so the card's
    /// interrupt paces the pump; at `by` at the latest, to notice a wedged device.
    Device { by: u64 },
    /// Never by itself: no lane wants mixing, the device is stopped, and only a client's
    /// KICK (`Pump::kick`) starts it again.
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

pub use crate::shm::clock::stall_limit_ns;

pub struct Pump<S: Slave> {
    pub engine: Engine,
    pub slave: S,
    /// The slave has shown a non-zero delay, so it consumes in real time and its own
    /// buffer paces us; otherwise (`null`, `file`) CLOCK_MONOTONIC does.
    paced: bool,
    /// Whether a paced slave's poll descriptors can be slept on.
    wait: DeviceWait,
    /// No lane wants mixing and the device is stopped (or was never started).
    idle: bool,
    /// The mix position just past the last period in which any lane was mixed: once the
    /// slave's whole buffer beyond it is silence, the device can stop without a click.
    audible_end: u64,
    /// Periods of silence still to lead a restarted device with (see `kick`).
    lead_in: u64,
    /// Until this period the slave's delay is probed to learn whether it is paced.
    probe_until: u64,
    anchor_ns: u64,
    anchor_frames: u64,
    last_progress_ns: u64,
    pub stats: Stats,
    /// Where the slave's take of the engine's last period stopped, while some is left.
    unsent: Option<usize>,
}

/// Whether a slave's error is one `snd_pcm_recover` mends (an xrun, a suspend, a signal);
/// anything else means the device is gone or broken.
pub(super) fn is_xrun(err: &Error) -> bool {
    err.is(libc::EPIPE) || err.is(libc::ESTRPIPE) || err.is(libc::EINTR)
}

/// Device wake-ups in a row that may find no room before the descriptors are distrusted.
pub(super) const SPURIOUS_LIMIT: u32 = 16;

/// Periods past the wait's start by which the slave's descriptors must have fired.
const MISS_PERIODS: u64 = 2;
/// Waits in a row that the deadline ended with work waiting before the descriptors are
/// distrusted: they do not fire (some plugins' never do).
const MISS_LIMIT: u32 = 4;

/// Whether the slave's poll descriptors can be slept on, judged wait by wait. They are
/// distrusted for good when they fire again and again with nothing to do (always ready),
/// or when the deadline keeps finding work they never announced (never ready). Either way
/// the clock paces the slave from then on. Both directions use it.
#[derive(Debug, Default)]
pub(super) struct DeviceWait {
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
    /// wait on the descriptors, or `None` when they are no longer to be trusted. `stall_by`
    /// bounds the wait for a device that has stopped.
    pub(super) fn next(&mut self, now_ns: u64, worked: bool, stall_by: u64, period_ns: u64) -> Option<u64> {
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
        let by = stall_by.min(now_ns + MISS_PERIODS * period_ns);
        self.by = Some(by);
        Some(by)
    }

    /// The descriptors pace nothing from now on.
    pub(super) fn distrust(&mut self) {
        self.distrusted = true;
        self.by = None;
    }

    pub(super) fn trusted(&self) -> bool {
        !self.distrusted
    }

    /// A new wait starts fresh (the device was stopped and started again).
    pub(super) fn restart(&mut self) {
        self.spurious = 0;
        self.missed = 0;
        self.by = None;
    }
}

impl<S: Slave> Pump<S> {
    pub fn new(engine: Engine, slave: S, now_ns: u64) -> Pump<S> {
        Pump {
            engine,
            slave,
            paced: false,
            wait: DeviceWait::default(),
            idle: true,
            audible_end: 0,
            lead_in: 0,
            probe_until: 0,
            anchor_ns: now_ns,
            anchor_frames: 0,
            last_progress_ns: now_ns,
            stats: Stats::default(),
            unsent: None,
        }
    }

    /// Frames the slave still holds at `now_ns`, by its own report or by the clock.
    fn queued(&mut self, now_ns: u64) -> Result<u64> {
        let dev = self.engine.device();
        if self.paced {
            return match self.slave.delay() {
                Ok(d) => Ok(d.clamp(0, dev.buffer_frames as i64) as u64),
                Err(e) => self.recover(e).map(|_| 0),
            };
        }
        let played = self.anchor_frames + ns_to_frames(now_ns.saturating_sub(self.anchor_ns), dev.rate);
        let mix_pos = self.engine.mix_pos();
        if played >= mix_pos {
            // Ran dry (or just started): restart the virtual device clock at the current position.
            self.anchor_ns = now_ns;
            self.anchor_frames = mix_pos;
            return Ok(0);
        }
        Ok(mix_pos - played)
    }

    /// Frames the slave can take now.
    fn room(&mut self, queued: u64) -> Result<u64> {
        let buffer = self.engine.device().buffer_frames as u64;
        if !self.paced {
            return Ok(buffer - queued.min(buffer));
        }
        self.slave.avail().map(|a| a as u64)
    }

    /// Whether the pump is idle: the device stopped, waiting for a KICK.
    pub fn is_idle(&self) -> bool {
        self.idle
    }

    /// A client's lane has started to want mixing. An idle pump readies the device again;
    /// the next `service` fills its buffer and so starts it. A busy pump has nothing to do.
    ///
    /// The buffer is filled with silence but for its last period, in which the lanes are
    /// first seen (and which they join a period later, as every lane does: see
    /// `engine::mix_lane`). The device starts full, so a lane's frame 0 plays one buffer
    /// from now, and from then on the lanes are taken at the device's pace, as they are by
    /// a pump that never stopped. (Had the whole buffer come from the lanes, a client that
    /// started with less than that queued would underrun at once.)
    pub fn kick(&mut self, now_ns: u64) -> Result<()> {
        if !self.idle || !self.engine.wants_mixing() {
            return Ok(());
        }
        if self.paced {
            self.slave.prepare()?;
        }
        self.idle = false;
        self.wait.restart();
        let dev = self.engine.device();
        self.lead_in = (dev.buffer_frames / dev.period_frames).saturating_sub(1) as u64;
        self.probe_until = self.stats.periods + (dev.buffer_frames / dev.period_frames) as u64 + 1;
        self.anchor_ns = now_ns;
        self.anchor_frames = self.engine.mix_pos();
        self.last_progress_ns = now_ns;
        Ok(())
    }

    /// Mixes and writes every period that is due at `now_ns`; says when to call again.
    /// Lanes whose wake-up fell due are pushed onto `wake`.
    pub fn service(&mut self, now_ns: u64, wake: &mut Vec<usize>) -> Result<Next> {
        if self.idle {
            return Ok(Next::Idle);
        }
        let dev = self.engine.device();
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
                if self.paced && now_ns.saturating_sub(self.last_progress_ns) > stall_limit_ns(&dev) {
                    return Err(Error::errno(libc::EIO));
                }
                self.publish(now_ns, queued);
                return Ok(self.when_room(now_ns, room, mixed));
            }
            if self.lead_in == 0 && self.quiet() {
                self.publish(now_ns, queued);
                self.go_idle()?;
                return Ok(Next::Idle);
            }
            if self.lead_in > 0 {
                self.lead_in -= 1;
                self.engine.silence_period();
            } else {
                self.engine.mix_period(wake);
            }
            if self.engine.mixed_any() {
                self.audible_end = self.engine.mix_pos();
            }
            self.unsent = Some(0);
            self.stats.periods += 1;
            self.last_progress_ns = now_ns;
            mixed = true;
            self.flush_unsent()?;
            // A slave that consumes in real time shows a delay from its first period on (it
            // holds what it has not played); one that shows none for a whole buffer never will.
            if !self.paced && self.stats.periods <= self.probe_until {
                self.paced = self.slave.delay().map(|d| d > 0).unwrap_or(false);
            }
            let queued = self.queued(now_ns).unwrap_or(0);
            self.publish(now_ns, queued);
        }
    }

    /// The slave is full: when to look again.
    fn when_room(&mut self, now_ns: u64, room: u64, mixed: bool) -> Next {
        let dev = self.engine.device();
        let period = dev.period_frames as u64;
        let period_ns = frames_to_ns(period, dev.rate);
        if self.paced {
            let stall_by = self.last_progress_ns + stall_limit_ns(&dev) + 1;
            if let Some(by) = self.wait.next(now_ns, mixed, stall_by, period_ns) {
                return Next::Device { by };
            }
        }
        // Clock-paced, the pump may take several periods per wake-up: as many as keep half
        // the device's buffer queued, and as every running lane can give with half its own
        // buffer to spare. A lane with a small buffer keeps it at one.
        let want = if self.paced {
            period
        } else {
            period * self.engine.periods_per_take(dev.buffer_frames as u64 / (2 * period))
        };
        Next::At(now_ns + frames_to_ns(want.max(room) - room, dev.rate).max(period_ns / 8))
    }

    /// No lane wants mixing, and the slave's whole buffer past the last audible frame is
    /// silence: stopping now cuts nothing and replays nothing.
    fn quiet(&self) -> bool {
        let buffer = self.engine.device().buffer_frames as u64;
        self.engine.mix_pos() >= self.audible_end + buffer && !self.engine.wants_mixing()
    }

    fn go_idle(&mut self) -> Result<()> {
        if self.paced {
            self.slave.stop()?;
        }
        self.idle = true;
        Ok(())
    }

    /// The slave offers no descriptors to sleep on: the clock paces it.
    pub fn pace_by_clock(&mut self) {
        self.wait.distrust();
    }

    /// Whether the device has been told to sleep on its descriptors, for the caller that
    /// watches them.
    pub fn sleeps_on_device(&self) -> bool {
        self.paced && self.wait.trusted() && !self.idle
    }

    /// Writes what is left of the last mixed period. `Ok(false)` if the slave is full.
    fn flush_unsent(&mut self) -> Result<bool> {
        let fb = self.engine.frame_bytes();
        while let Some(off) = self.unsent {
            let out = self.engine.output();
            if off >= out.len() {
                self.unsent = None;
                break;
            }
            let rest = &out[off..];
            match self.slave.write(rest, rest.len() / fb) {
                Ok(0) => return Ok(false),
                Ok(n) => self.unsent = Some(off + n * fb),
                Err(e) if e.is(libc::EAGAIN) => return Ok(false),
                Err(e) => self.recover(e)?,
            }
        }
        Ok(true)
    }

    fn recover(&mut self, err: Error) -> Result<()> {
        if is_xrun(&err) {
            self.stats.slave_xruns += 1;
            self.engine.segment().count_slave_xrun();
            return self.slave.recover(&err);
        }
        Err(err)
    }

    fn publish(&self, now_ns: u64, queued: u64) {
        self.engine.segment().publish_clock(Clock {
            mix_pos: self.engine.mix_pos(),
            slave_delay: queued,
            tstamp_ns: now_ns,
        });
    }

    /// Marks the segment failed, so clients report the errno instead of waiting.
    pub fn fail(&self, err: &Error) {
        self.engine.segment().set_failed(err.neg());
    }
}
