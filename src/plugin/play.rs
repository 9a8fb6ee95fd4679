//! Playback: the program writes its lane and the pump mixes it into the device.
//!
//! | phase | poll | pointer (avail) | delay |
//! |---|---|---|---|
//! | `Gone` | POLLOUT\|POLLERR, and a running stream becomes an xrun | -EPIPE | -EPIPE |
//! | `Xrun` | POLLOUT | the position | -EPIPE |
//! | `Underrun` | POLLOUT | -EPIPE | -EPIPE |
//! | `Idle` | POLLOUT once avail ≥ avail_min | the position | frames in the lane |
//! | `Running` | POLLOUT once avail ≥ avail_min | the position, or -EPIPE past stop_threshold | lane + device queue |
//! | `Paused` | POLLOUT once avail ≥ avail_min | the position | as it was at pause |
//! | `Draining` | nothing until the pump has mixed the last frame | the position | lane + device queue |
//! | `PlayingOut` | POLLOUT once the device has played the last frame | the position | lane + device queue |

use std::time::{Duration, Instant};

use super::attach::Attachment;
use super::client::{Client, Direction, wrong_way};
use super::state::{Delay, Phase, Pointer, Poll, Pump};
use crate::alsa::ioplug::{DrainStep, IoView};
use crate::error::{Error, Result};
use crate::shm::clock::frames_to_ns;
use crate::shm::lane::LANE_BYTES;
use crate::shm::ring::{Geometry, Mixed, State};
use crate::wire::Stream;

pub struct Play;

impl Direction for Play {
    const STREAM: Stream = Stream::Playback;
    const EVENTS: i16 = libc::POLLOUT;
    const MAX_BUFFER_BYTES: usize = LANE_BYTES;

    fn poll(phase: Phase) -> Poll {
        match phase {
            // A hang-up is the only news a dead pump gives: wake the program so it sees the error.
            Phase::Gone => Poll::Error,
            // The program must recover; waking it is how it learns.
            Phase::Xrun | Phase::Underrun => Poll::Ready,
            // The pump pokes the wake-up pipe when the lane reaches avail_min.
            Phase::Idle | Phase::Running | Phase::Paused => Poll::WhenAvail,
            // The pump wakes a drained lane itself, once, when its last frame is mixed.
            Phase::Draining => Poll::WhenMixed,
            // The pump has nothing more to say: a timer marks the end of the play-out.
            Phase::PlayingOut => Poll::WhenPlayedOut,
        }
    }

    fn pointer(phase: Phase) -> Pointer {
        match phase {
            Phase::Gone | Phase::Underrun => Pointer::Xrun,
            // Only a running stream underruns: the pump mixes silence for a lane that has run
            // dry and keeps its clock going, as hardware does.
            Phase::Running => Pointer::PositionOrXrun,
            Phase::Xrun | Phase::Idle | Phase::Paused | Phase::Draining | Phase::PlayingOut => Pointer::Position,
        }
    }

    fn delay(phase: Phase) -> Delay {
        match phase {
            Phase::Gone | Phase::Xrun | Phase::Underrun => Delay::Xrun,
            // Nothing plays while paused, so the delay is what it was.
            Phase::Paused => Delay::Frozen,
            // Nothing has reached the device: only the lane holds frames.
            Phase::Idle => Delay::Lane,
            // Frames in the lane, plus the device's queue, from the pump's clock.
            Phase::Running | Phase::Draining | Phase::PlayingOut => Delay::LaneAndDevice,
        }
    }

    /// A lane is mixed while it runs or drains.
    fn needs_pump(state: State) -> bool {
        state.is_mixed()
    }

    /// Written and not yet mixed (negative after an underrun).
    fn in_lane(appl: u64, pumped: u64) -> i64 {
        appl as i64 - pumped as i64
    }

    /// Room to write.
    fn avail(in_lane: i64, buffer: i64) -> i64 {
        buffer - in_lane
    }

    /// An xrun is avail passing stop_threshold (never, if that is the boundary). The pump
    /// takes a whole device period at once, so avail == buffer only means "all mixed"; the
    /// device has not played it yet and the client can still refill in time. Only avail
    /// beyond that means the pump had to mix silence for us.
    fn xrun(avail: i64, stop_threshold: u64) -> bool {
        avail > stop_threshold as i64
    }

    /// The pump counts how far past running dry a lane is: stop_threshold less the buffer.
    fn stop_after(stop_threshold: u64, buffer: u64) -> u64 {
        stop_threshold.saturating_sub(buffer)
    }

    /// avail reaches avail_min once the pump has consumed up to here.
    fn wake_at(appl: u64, buffer: u64, avail_min: u64) -> u64 {
        (appl as i64 - buffer as i64 + avail_min as i64).max(0) as u64
    }

    /// The ring is the client's buffer.
    fn geometry(frame_bytes: usize, buffer: u64) -> Option<Geometry> {
        Geometry::new(frame_bytes, usize::try_from(buffer).ok()?)
    }

    fn word(att: &Attachment) -> Mixed {
        att.lane().mixed()
    }

    fn arm(att: &Attachment, at: u64) {
        att.lane().arm_wake(at);
    }

    /// Copies `frames` interleaved frames into the lane at ioplug's application pointer.
    fn transfer(c: &mut Client<Play>, io: &IoView, interleaved: &[u8], frames: u64) -> Result<u64> {
        let geom = c.geometry()?;
        c.sync_appl(io);
        c.attachment("write")?.lane().write(&geom, c.appl_pos(), interleaved);
        c.advance(io, frames);
        c.publish();
        c.arm_pump_wake();
        c.after_transfer(c.avail_reached());
        Ok(frames)
    }

    fn capture(_: &mut Client<Play>, _: &IoView, _: &mut [u8], _: u64) -> Result<u64> {
        Err(wrong_way("read"))
    }

    /// The pump mixes what is queued, then marks the lane drained. Returns the latest the
    /// drain may end before rdmix reports the device stuck.
    fn drain_begin(c: &mut Client<Play>) -> Instant {
        c.begin_draining();
        let dev = c.device();
        let queued = c.in_lane_on_device() + dev.buffer_frames as u64;
        Instant::now() + Duration::from_nanos(frames_to_ns(queued, dev.rate)) + Duration::from_secs(2)
    }

    /// One step of a drain: done once the device has played the last frame, else what to
    /// sleep on (outside the client lock) before the next step.
    fn drain_step(c: &mut Client<Play>) -> Result<DrainStep> {
        if !c.pump_alive() {
            return Err(Error::new(
                libc::EPIPE,
                "rdmix: drain: the pump is gone; the queued frames are lost",
            ));
        }
        // Left in the pipe, the wake-ups this step answers would make every wait of the
        // drain return at once (a spin for as long as the device plays out).
        c.spend_wakeups();
        if c.refresh() == Pump::Stopped {
            // The lane ran dry before the drain began, and the pump ended it there: the
            // frames written since can never play, so waiting for them would only time out.
            return Err(Error::new(
                libc::EPIPE,
                "rdmix: drain: the stream underran before its drain began; prepare to play the rest",
            ));
        }
        let fds = c.drain_fds();
        Ok(match c.drain_remaining_ns() {
            Some(0) => DrainStep::Done,
            Some(ns) => DrainStep::Wait { fds, ns },
            None => {
                // Still mixing: the pump wakes us once the lane's last frame is mixed.
                if let Ok(att) = c.attachment("drain") {
                    att.lane().arm_wake(c.appl_pos());
                }
                let dev = c.device();
                DrainStep::Wait {
                    fds,
                    ns: frames_to_ns(dev.period_frames as u64, dev.rate),
                }
            }
        })
    }

    fn drain_capture(_: &mut Client<Play>) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alsa_sys as a;

    #[test]
    fn a_gone_pump_outranks_every_alsa_state() {
        for s in [
            a::SND_PCM_STATE_OPEN,
            a::SND_PCM_STATE_PREPARED,
            a::SND_PCM_STATE_RUNNING,
            a::SND_PCM_STATE_PAUSED,
            a::SND_PCM_STATE_DRAINING,
            a::SND_PCM_STATE_XRUN,
        ] {
            let p = Phase::of(s, Pump::Gone);
            assert_eq!(
                (Play::poll(p), Play::pointer(p), Play::delay(p)),
                (Poll::Error, Pointer::Xrun, Delay::Xrun)
            );
        }
    }

    #[test]
    fn draining_waits_for_the_mix_then_for_the_device() {
        assert_eq!(
            Play::poll(Phase::of(a::SND_PCM_STATE_DRAINING, Pump::Mixing)),
            Poll::WhenMixed
        );
        assert_eq!(
            Play::poll(Phase::of(a::SND_PCM_STATE_DRAINING, Pump::Drained)),
            Poll::WhenPlayedOut
        );
        assert_eq!(Phase::of(a::SND_PCM_STATE_PREPARED, Pump::Drained), Phase::Idle);
        assert_eq!(
            Play::pointer(Phase::of(a::SND_PCM_STATE_RUNNING, Pump::Mixing)),
            Pointer::PositionOrXrun
        );
        assert_eq!(
            Play::delay(Phase::of(a::SND_PCM_STATE_PAUSED, Pump::Mixing)),
            Delay::Frozen
        );
    }

    /// A frame written after the pump read the lane cannot undo the xrun it decided: the
    /// program hears of it, wakes, and prepares, instead of waiting on a lane nobody mixes.
    #[test]
    fn the_pumps_xrun_outranks_what_was_written_since() {
        for s in [a::SND_PCM_STATE_RUNNING, a::SND_PCM_STATE_DRAINING] {
            let p = Phase::of(s, Pump::Stopped);
            assert_eq!(p, Phase::Underrun);
            assert_eq!(
                (Play::poll(p), Play::pointer(p), Play::delay(p)),
                (Poll::Ready, Pointer::Xrun, Delay::Xrun)
            );
        }
        // A paused or prepared stream is not being mixed, whatever the word still says.
        assert_eq!(Phase::of(a::SND_PCM_STATE_PAUSED, Pump::Stopped), Phase::Paused);
        assert_eq!(Phase::of(a::SND_PCM_STATE_PREPARED, Pump::Stopped), Phase::Idle);
    }
}
