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
    anchor_ns: u64,
    anchor_frames: u64,
    last_progress_ns: u64,
    pub stats: Stats,
    /// A mixed period (or its tail) the slave has not taken yet.
    pending: Vec<u8>,
    pending_off: usize,
}

impl<S: Slave> Pump<S> {
    pub fn new(engine: Engine, slave: S, now_ns: u64) -> Pump<S> {
        Pump {
            engine,
            slave,
            paced: false,
            anchor_ns: now_ns,
            anchor_frames: 0,
            last_progress_ns: now_ns,
            stats: Stats::default(),
            pending: Vec::new(),
            pending_off: 0,
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

    /// Mixes and writes every period that is due at `now_ns`. Returns the time at which the
    /// next one will be due; lanes whose wake-up fell due are pushed onto `wake`.
    pub fn service(&mut self, now_ns: u64, wake: &mut Vec<usize>) -> Result<u64> {
        let dev = self.engine.device();
        let period = dev.period_frames as u64;
        let period_ns = frames_to_ns(period, dev.rate);
        loop {
            if !self.flush_pending()? {
                return Ok(now_ns + period_ns / 4);
            }
            let queued = self.queued(now_ns)?;
            let room = match self.room(queued) {
                Ok(r) => r,
                Err(e) => {
                    self.recover(e)?;
                    continue;
                }
            };
            if room < period {
                if self.paced && now_ns.saturating_sub(self.last_progress_ns) > stall_limit_ns(&dev) {
                    return Err(Error::errno(libc::EIO));
                }
                self.publish(now_ns, queued);
                return Ok(now_ns + frames_to_ns(period - room, dev.rate).max(period_ns / 8));
            }
            let buf = self.engine.mix_period(wake);
            self.pending.clear();
            self.pending.extend_from_slice(buf);
            self.stats.periods += 1;
            self.last_progress_ns = now_ns;
            self.flush_pending()?;
            if !self.paced && self.slave.delay().map(|d| d > 0).unwrap_or(false) {
                self.paced = true;
            }
            let queued = self.queued(now_ns).unwrap_or(0);
            self.publish(now_ns, queued);
        }
    }

    /// Writes what is left of the last mixed period. `Ok(false)` if the slave is full.
    fn flush_pending(&mut self) -> Result<bool> {
        let fb = self.engine.frame_bytes();
        while self.pending_off < self.pending.len() {
            let rest = &self.pending[self.pending_off..];
            match self.slave.write(rest, rest.len() / fb) {
                Ok(0) => return Ok(false),
                Ok(n) => self.pending_off += n * fb,
                Err(e) if e.is(libc::EAGAIN) => return Ok(false),
                Err(e) => self.recover(e)?,
            }
        }
        self.pending.clear();
        self.pending_off = 0;
        Ok(true)
    }

    fn recover(&mut self, err: Error) -> Result<()> {
        if err.is(libc::EPIPE) || err.is(libc::ESTRPIPE) || err.is(libc::EINTR) {
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
