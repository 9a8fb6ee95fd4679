//! Capture: the pump writes each captured period into the lane, and the program reads it
//! out at ioplug's application pointer.
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
//! (`Underrun` is playback's: a capture pump never stops a lane that way.)

use std::time::Instant;

use super::attach::Attachment;
use super::client::{Client, Direction, wrong_way};
use super::state::{Delay, Phase, Pointer, Poll};
use crate::alsa::ioplug::{DrainStep, IoView};
use crate::error::{Error, Result};
use crate::shm::ring::{Geometry, Mixed, State, pos_diff};
use crate::shm::tap;
use crate::wire::Stream;

pub struct Record;

impl Direction for Record {
    const STREAM: Stream = Stream::Capture;
    const EVENTS: i16 = libc::POLLIN;
    /// A capture lane holds the client's buffer several times over (see `shm::tap`).
    const MAX_BUFFER_BYTES: usize = tap::MAX_BUFFER_BYTES;

    fn poll(phase: Phase) -> Poll {
        match phase {
            Phase::Gone => Poll::Error,
            // The program must recover, or read what a drain left: waking it is how it learns.
            Phase::Xrun | Phase::Underrun | Phase::Draining | Phase::PlayingOut => Poll::Ready,
            // The pump pokes the wake-up pipe when the lane holds avail_min.
            Phase::Idle | Phase::Running | Phase::Paused => Poll::WhenAvail,
        }
    }

    fn pointer(phase: Phase) -> Pointer {
        match phase {
            Phase::Gone => Pointer::Xrun,
            Phase::Running => Pointer::PositionOrOverrun,
            // ioplug ends a draining stream whose pointer fails: the kernel's DRAINING -> SETUP.
            Phase::Draining | Phase::PlayingOut => Pointer::UntilRead,
            Phase::Xrun | Phase::Underrun | Phase::Idle | Phase::Paused => Pointer::Position,
        }
    }

    fn delay(phase: Phase) -> Delay {
        match phase {
            Phase::Gone | Phase::Xrun | Phase::Underrun => Delay::Xrun,
            Phase::Paused => Delay::Frozen,
            Phase::Idle | Phase::Draining | Phase::PlayingOut => Delay::Lane,
            Phase::Running => Delay::LaneAndHeld,
        }
    }

    /// A lane is written only while it runs.
    fn needs_pump(state: State) -> bool {
        state == State::Running
    }

    /// Captured and not yet read (negative never, but for a lying pump).
    fn in_lane(appl: u64, pumped: u64) -> i64 {
        pumped as i64 - appl as i64
    }

    /// Frames to read.
    fn avail(in_lane: i64, _buffer: i64) -> i64 {
        in_lane
    }

    /// An overrun is avail reaching stop_threshold (never, if that is the boundary).
    fn xrun(avail: i64, stop_threshold: u64) -> bool {
        avail >= stop_threshold as i64
    }

    /// A buffer of slack: the pump sees our position a read late, and must never stop
    /// writing a lane whose client has not yet overrun.
    fn stop_after(stop_threshold: u64, buffer: u64) -> u64 {
        stop_threshold.saturating_add(buffer)
    }

    fn wake_at(appl: u64, _buffer: u64, avail_min: u64) -> u64 {
        appl + avail_min
    }

    /// The ring is the whole lane (see `shm::tap`).
    fn geometry(frame_bytes: usize, _buffer: u64) -> Option<Geometry> {
        tap::geometry(frame_bytes)
    }

    fn word(att: &Attachment) -> Mixed {
        att.tap().captured()
    }

    fn arm(att: &Attachment, at: u64) {
        att.tap().arm_wake(at);
    }

    fn transfer(_: &mut Client<Record>, _: &IoView, _: &[u8], _: u64) -> Result<u64> {
        Err(wrong_way("write"))
    }

    /// Copies `frames` frames from the lane at ioplug's application pointer. Nothing moves
    /// on: ioplug's appl_ptr says how far the program has read.
    fn capture(c: &mut Client<Record>, io: &IoView, out: &mut [u8], frames: u64) -> Result<u64> {
        let geom = c.geometry()?;
        c.sync_appl(io);
        let pos = c.appl_pos();
        let att = c
            .attachment("read")
            .map_err(|_| Error::new(libc::EPIPE, "rdmix: read: the pump is gone"))?;
        att.tap().read(&geom, pos, out);
        // A stream that never stops (stop_threshold at the boundary) can be lapped by the
        // pump while it copies: frames written over are not the program's to have.
        let m = att.tap().captured();
        if m.epoch == c.epoch() && pos_diff(m.consumed, pos) > geom.buffer_frames as i64 - c.device_chunk() {
            return Err(Error::errno(libc::EPIPE));
        }
        // The program may poll next, with its pointer past these frames: the pump must know
        // when to wake it (a program that takes fewer is woken early and looks again).
        if c.state() == State::Running {
            att.tap().arm_wake(pos + frames + c.avail_min());
            c.after_transfer(pos_diff(m.consumed, pos + frames) >= c.avail_min() as i64);
        }
        Ok(frames)
    }

    fn drain_begin(_: &mut Client<Record>) -> Instant {
        Instant::now()
    }

    fn drain_step(_: &mut Client<Record>) -> Result<DrainStep> {
        Ok(DrainStep::Done)
    }

    /// Stops capturing; whether frames are left to read.
    fn drain_capture(c: &mut Client<Record>) -> bool {
        if c.state() == State::Running {
            c.set_state(State::Draining);
        }
        c.refresh();
        c.attachment("drain").is_ok() && c.in_lane() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::play::Play;
    use crate::plugin::state::Pump;
    use alsa_sys as a;

    /// A drain leaves the stream readable until all is read; a lost pump is an error whatever
    /// ALSA's state, and an overrun stops the stream where it passed stop_threshold.
    #[test]
    fn a_capture_drain_ends_when_all_is_read() {
        let draining = Phase::of(a::SND_PCM_STATE_DRAINING, Pump::Mixing);
        assert_eq!(
            (
                Record::poll(draining),
                Record::pointer(draining),
                Record::delay(draining)
            ),
            (Poll::Ready, Pointer::UntilRead, Delay::Lane)
        );
        let gone = Phase::of(a::SND_PCM_STATE_RUNNING, Pump::Gone);
        assert_eq!(
            (Record::poll(gone), Record::pointer(gone)),
            (Poll::Error, Pointer::Xrun)
        );
        let running = Phase::of(a::SND_PCM_STATE_RUNNING, Pump::Mixing);
        assert_eq!(Record::pointer(running), Pointer::PositionOrOverrun);
        assert!(Record::xrun(100, 100) && !Record::xrun(99, 100));
        assert!(!Play::xrun(100, 100) && Play::xrun(101, 100));
    }
}
