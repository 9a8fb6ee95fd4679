//! What a capture client does differently from a playback one: its lane is read, not
//! written. The pump writes each captured period into it; `pointer` reports how far, and
//! `capture` copies frames out at ioplug's application pointer.
//!
//! | phase | poll | pointer (avail) | delay |
//! |---|---|---|---|
//! | `Gone` | POLLIN\|POLLERR, and a running stream becomes an xrun | -EPIPE | -EPIPE |
//! | `Xrun` | POLLIN | the position | -EPIPE |
//! | `Idle` | POLLIN once avail ≥ avail_min | the position | frames in the lane |
//! | `Running` | POLLIN once avail ≥ avail_min | the position, or -EPIPE once avail reaches stop_threshold | lane + device queue |
//! | `Paused` | POLLIN once avail ≥ avail_min | the position | as it was at pause |
//! | `Draining` | POLLIN | the position; -EPIPE once all is read, which ends the drain | frames in the lane |
//!
//! A drain stops capturing and leaves what was captured for the program to read, as the
//! kernel does: the stream stays DRAINING until it is all read, then goes to SETUP.

use super::client::Client;
use super::state::Phase;
use crate::alsa::ioplug::{IoView, Revents};
use crate::error::{Error, Result};
use crate::shm::clock::{ns_to_frames, rescale};
use crate::shm::ring::{POS_MASK, State, pos_diff};
use crate::sys::time::now_ns;

impl Client {
    /// Frames captured and not yet read (negative never, but for a lying pump).
    fn captured_avail(&self) -> i64 {
        self.consumed as i64 - self.appl as i64
    }

    /// Client frames the pump may write in one go: it must never be within that of a frame
    /// the client is reading.
    fn capture_chunk(&self) -> i64 {
        2 * self.to_client(self.dev.period_frames as i64) + 64
    }

    /// The stream has overrun: it stops, as a card's does, so the pump writes no more for
    /// it and may stop the device.
    fn overrun(&mut self) {
        self.state = State::Idle;
        self.publish();
    }

    pub(super) fn capture_pointer(&mut self, io: &IoView) -> Result<u64> {
        let phase = self.phase(io);
        self.sync_appl(io);
        // The pump compares its position with ours to decide when we have overrun.
        self.publish();
        let avail = self.captured_avail();
        match phase {
            Phase::Gone => return Err(Error::errno(libc::EPIPE)),
            // An overrun is avail reaching stop_threshold (never, if that is the boundary).
            Phase::Running if self.stop_threshold < self.boundary && avail >= self.stop_threshold as i64 => {
                self.overrun();
                return Err(Error::errno(libc::EPIPE));
            }
            // Everything left after a drain has been read: ioplug ends a draining stream
            // whose pointer fails, which is the kernel's DRAINING -> SETUP.
            Phase::Draining | Phase::PlayingOut if avail <= 0 => return Err(Error::errno(libc::EPIPE)),
            // A program that finds too little waits in poll next, without asking us first:
            // the pump must know now when to wake it.
            Phase::Running if avail < self.avail_min as i64 => self.arm_wake(),
            _ => {}
        }
        Ok(self.consumed % self.boundary)
    }

    /// Copies `frames` frames from the lane at ioplug's application pointer. Nothing moves
    /// on: ioplug's appl_ptr says how far the program has read.
    pub(super) fn capture_transfer(&mut self, io: &IoView, out: &mut [u8], frames: u64) -> Result<u64> {
        let geom = self
            .geom
            .ok_or_else(|| Error::new(libc::EBADFD, "rdmix: transfer before hw_params"))?;
        self.sync_appl(io);
        let pos = self.appl & POS_MASK;
        let att = self
            .att
            .as_ref()
            .ok_or_else(|| Error::new(libc::EPIPE, "rdmix: read: the pump is gone"))?;
        att.tap().read(&geom, pos, out);
        // A stream that never stops (stop_threshold at the boundary) can be lapped by the
        // pump while it copies: frames written over are not the program's to have.
        if let Some(m) = self.pump_word()
            && m.epoch == self.epoch
            && pos_diff(m.consumed, pos) > geom.buffer_frames as i64 - self.capture_chunk()
        {
            return Err(Error::errno(libc::EPIPE));
        }
        // The program may poll next, with its pointer past these frames: the pump must know
        // when to wake it (a program that takes fewer is woken early and looks again).
        if self.state == State::Running {
            att.tap().arm_wake(self.appl + frames + self.avail_min);
        }
        Ok(frames)
    }

    /// Stops capturing; whether frames are left to read.
    pub(super) fn capture_drain(&mut self) -> bool {
        if self.state == State::Running {
            self.state = State::Draining;
            self.publish();
        }
        self.refresh();
        self.att.is_some() && self.captured_avail() > 0
    }

    pub(super) fn capture_poll(&mut self, io: &IoView) -> Revents {
        let phase = self.phase(io);
        self.sync_appl(io);
        let ready = Revents {
            events: libc::POLLIN,
            xrun: false,
        };
        match phase {
            Phase::Gone => {
                self.lose_pump();
                Revents {
                    events: libc::POLLIN | libc::POLLERR,
                    xrun: true,
                }
            }
            // The program must recover, or read what a drain left: waking it is how it learns.
            // (`Underrun` is playback's: the capture pump never stops a lane that way.)
            Phase::Xrun | Phase::Underrun | Phase::Draining | Phase::PlayingOut => ready,
            Phase::Idle | Phase::Running | Phase::Paused => {
                if self.captured_avail() >= self.avail_min as i64 {
                    return ready;
                }
                self.arm_wake();
                // The pump may have written between our look and arming: look once more.
                self.refresh();
                if self.captured_avail() >= self.avail_min as i64 {
                    self.wake_self();
                    return ready;
                }
                Revents::default()
            }
        }
    }

    /// Frames captured and not yet read, plus what the device holds that the pump has not
    /// read yet.
    pub(super) fn capture_delay(&mut self, io: &IoView) -> Result<i64> {
        let phase = self.phase(io);
        self.sync_appl(io);
        let lane = self.captured_avail();
        match phase {
            Phase::Gone | Phase::Xrun | Phase::Underrun => Err(Error::errno(libc::EPIPE)),
            Phase::Paused => Ok(self.paused_delay),
            Phase::Idle | Phase::Draining | Phase::PlayingOut => Ok(lane),
            Phase::Running => {
                let Some(clock) = self.att.as_ref().and_then(|a| a.seg.clock()) else {
                    return Ok(lane);
                };
                // The device has gone on capturing since the pump looked.
                let since = ns_to_frames(now_ns().saturating_sub(clock.tstamp_ns), self.dev.rate);
                let held = (clock.slave_delay + since).min(self.dev.buffer_frames as u64);
                let held = self
                    .params
                    .map_or(held as i64, |p| rescale(held as i64, self.dev.rate, p.rate));
                Ok(lane + held)
            }
        }
    }
}
