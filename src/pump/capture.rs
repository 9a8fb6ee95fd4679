//! The splitter plus pacing: reads the slave's capture side in whole periods, as soon as
//! each is captured, and never faster than real time.
//!
//! `Recorder::service` is a non-blocking step like `Pump::service`: it reads every period
//! that is ready at the time it is given and says when to call it again, so tests drive it
//! with a virtual clock and a fake source.
//!
//! The device runs only while some client records: the first start (a client's KICK)
//! prepares and starts it, and the step after the last client stops, pauses, drains or
//! overruns drops it. Nothing is captured for nobody.

use super::pacing::{Next, SPURIOUS_LIMIT, Stats};
use super::split::Splitter;
use crate::error::{Error, Result};
use crate::shm::clock::{Clock, frames_to_ns, ns_to_frames, stall_limit_ns};

/// A PCM the pump can record from: only non-blocking interleaved reads are needed. Errors
/// are bare errnos, as alsa-lib gives them.
pub trait Source {
    /// Reads whole frames; returns frames read, or an error (`EAGAIN` when none are ready).
    fn read(&mut self, buf: &mut [u8], frames: usize) -> Result<usize>;
    /// Frames captured and not yet read.
    fn avail(&mut self) -> Result<usize>;
    /// Recovers from an overrun or suspend reported as `err`, and captures again.
    fn recover(&mut self, err: &Error) -> Result<()>;
    /// Prepares and starts capturing.
    fn start(&mut self) -> Result<()>;
    /// Stops capturing and drops what the device holds.
    fn stop(&mut self) -> Result<()>;
}

pub struct Recorder<S: Source> {
    pub split: Splitter,
    pub source: S,
    /// The device is stopped: nobody records.
    idle: bool,
    /// The source captures in real time (a card); cleared for good when it gives more than
    /// real time could have captured (`null`, a file), and the clock paces it instead.
    realtime: bool,
    /// The source's poll descriptors can be slept on; cleared when they prove useless.
    sleep_on_device: bool,
    spurious: u32,
    started_ns: u64,
    /// Device frames read since the device last started.
    since_start: u64,
    anchor_ns: u64,
    anchor_frames: u64,
    last_progress_ns: u64,
    /// One device period, filled by as many reads as it takes.
    period: Vec<u8>,
    have: usize,
    pub stats: Stats,
}

impl<S: Source> Recorder<S> {
    pub fn new(split: Splitter, source: S, now_ns: u64) -> Recorder<S> {
        let bytes = split.device().period_frames as usize * split.frame_bytes();
        Recorder {
            split,
            source,
            idle: true,
            realtime: true,
            sleep_on_device: true,
            spurious: 0,
            started_ns: now_ns,
            since_start: 0,
            anchor_ns: now_ns,
            anchor_frames: 0,
            last_progress_ns: now_ns,
            period: vec![0; bytes],
            have: 0,
            stats: Stats::default(),
        }
    }

    pub fn is_idle(&self) -> bool {
        self.idle
    }

    pub fn pace_by_clock(&mut self) {
        self.sleep_on_device = false;
    }

    pub fn sleeps_on_device(&self) -> bool {
        self.realtime && self.sleep_on_device && !self.idle
    }

    /// A client has started to record: an idle device starts capturing now, so the client's
    /// first frames are the ones captured after its start.
    pub fn kick(&mut self, now_ns: u64) -> Result<()> {
        if !self.idle || !self.split.wants_capture() {
            return Ok(());
        }
        self.source.start()?;
        self.idle = false;
        self.spurious = 0;
        self.have = 0;
        self.started_ns = now_ns;
        self.since_start = 0;
        self.anchor_ns = now_ns;
        self.anchor_frames = self.split.cap_pos();
        self.last_progress_ns = now_ns;
        Ok(())
    }

    /// Reads and hands out every period that is ready at `now_ns`; says when to call again.
    pub fn service(&mut self, now_ns: u64, wake: &mut Vec<usize>) -> Result<Next> {
        if self.idle {
            return Ok(Next::Idle);
        }
        if !self.split.wants_capture() {
            self.source.stop()?;
            self.idle = true;
            self.publish(now_ns, 0);
            return Ok(Next::Idle);
        }
        let dev = self.split.device();
        let period = dev.period_frames as usize;
        let fb = self.split.frame_bytes();
        let buffer = dev.buffer_frames as u64;
        let mut read_any = false;
        // At most a buffer per step, so that a source that never runs dry cannot hold the
        // loop (and the clients' sockets) for good.
        for _ in 0..(buffer as usize / period).max(1) + 1 {
            if !self.realtime && self.split.cap_pos() + period as u64 > self.clock_due(now_ns) {
                break;
            }
            let (have, want) = (self.have, period - self.have);
            match self.source.read(&mut self.period[have * fb..], want) {
                Ok(0) => break,
                Ok(n) => self.have += n.min(want),
                Err(e) if e.is(libc::EAGAIN) => break,
                Err(e) => {
                    self.recover(e)?;
                    continue;
                }
            }
            if self.have < period {
                continue;
            }
            self.have = 0;
            self.split.split_period(&self.period, wake);
            self.stats.periods += 1;
            self.since_start += period as u64;
            self.last_progress_ns = now_ns;
            read_any = true;
            // No card captures more than real time allows (a buffer of slack for start-up).
            let real = ns_to_frames(now_ns.saturating_sub(self.started_ns), dev.rate);
            if self.realtime && self.since_start > real + buffer + period as u64 {
                self.realtime = false;
                self.anchor_ns = now_ns;
                self.anchor_frames = self.split.cap_pos();
            }
        }
        let avail = if self.realtime {
            match self.source.avail() {
                Ok(a) => a as u64,
                Err(e) => {
                    self.recover(e)?;
                    0
                }
            }
        } else {
            0
        };
        self.publish(now_ns, avail);
        if !self.realtime {
            let next =
                self.anchor_ns + frames_to_ns(self.split.cap_pos() + period as u64 - self.anchor_frames, dev.rate);
            return Ok(Next::At(next.max(now_ns + 1)));
        }
        if now_ns.saturating_sub(self.last_progress_ns) > stall_limit_ns(&dev) {
            return Err(Error::errno(libc::EIO));
        }
        if self.sleep_on_device {
            self.spurious = if read_any { 0 } else { self.spurious + 1 };
            if self.spurious <= SPURIOUS_LIMIT {
                return Ok(Next::Device {
                    by: self.last_progress_ns + stall_limit_ns(&dev) + 1,
                });
            }
            self.sleep_on_device = false;
        }
        let missing = (period as u64).saturating_sub(avail.max(self.have as u64));
        let period_ns = frames_to_ns(period as u64, dev.rate);
        Ok(Next::At(now_ns + frames_to_ns(missing, dev.rate).max(period_ns / 8)))
    }

    /// Device frames a source that does not block may have given by `now_ns`.
    fn clock_due(&self, now_ns: u64) -> u64 {
        self.anchor_frames + ns_to_frames(now_ns.saturating_sub(self.anchor_ns), self.split.device().rate)
    }

    fn recover(&mut self, err: Error) -> Result<()> {
        if err.is(libc::EPIPE) || err.is(libc::ESTRPIPE) || err.is(libc::EINTR) {
            self.stats.slave_xruns += 1;
            self.split.segment().count_slave_xrun();
            self.have = 0;
            return self.source.recover(&err);
        }
        Err(err)
    }

    /// The capture clock: device frames handed out, and frames the device holds unread.
    fn publish(&self, now_ns: u64, held: u64) {
        self.split.segment().publish_clock(Clock {
            mix_pos: self.split.cap_pos(),
            slave_delay: held,
            tstamp_ns: now_ns,
        });
    }

    pub fn fail(&self, err: &Error) {
        self.split.segment().set_failed(err.neg());
    }
}
