//! A client stream's state in one place: what poll, the pointer (and so avail) and delay
//! report in each phase.
//!
//! Three sources run side by side, and this is where they are read together:
//! - ALSA's state (`io.state`), which alsa-lib moves through start, drain, pause and xrun;
//! - the lane state the client publishes for the pump (`ring::State`), which follows it;
//! - what the pump has made of the lane (`ring::Mixed`: running, drained, stopped), and
//!   whether the pump is there at all (`Pump`).
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

use alsa_sys as a;

/// Where a client stream stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The pump is gone: it hung up, or it gave up on the slave.
    Gone,
    Xrun,
    /// Running (or draining), but the pump found the lane dry past its stop point and
    /// stopped mixing it: an xrun, however much the program has written since. The pump
    /// read `appl` before those frames came, and its clock went on without them.
    Underrun,
    /// Not started, or stopped (OPEN, SETUP, PREPARED).
    Idle,
    Running,
    Paused,
    /// Draining, and the pump is still mixing what is queued.
    Draining,
    /// Draining, every frame mixed: the device is playing the tail.
    PlayingOut,
}

/// What the pump has said of the lane in the stream's current epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pump {
    /// It hung up, or gave up on the slave.
    Gone,
    /// Mixing, or not yet: nothing decided.
    Mixing,
    /// Every frame of the draining lane is mixed.
    Drained,
    /// It stopped the running lane in an xrun.
    Stopped,
}

impl Phase {
    pub fn of(alsa: a::snd_pcm_state_t, pump: Pump) -> Phase {
        match (alsa, pump) {
            (_, Pump::Gone) => Phase::Gone,
            (a::SND_PCM_STATE_XRUN, _) => Phase::Xrun,
            (a::SND_PCM_STATE_RUNNING | a::SND_PCM_STATE_DRAINING, Pump::Stopped) => Phase::Underrun,
            (a::SND_PCM_STATE_RUNNING, _) => Phase::Running,
            (a::SND_PCM_STATE_PAUSED, _) => Phase::Paused,
            (a::SND_PCM_STATE_DRAINING, Pump::Drained) => Phase::PlayingOut,
            (a::SND_PCM_STATE_DRAINING, _) => Phase::Draining,
            _ => Phase::Idle,
        }
    }

    pub fn poll(self) -> Poll {
        match self {
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

    pub fn pointer(self) -> Pointer {
        match self {
            Phase::Gone | Phase::Underrun => Pointer::Xrun,
            // Only a running stream underruns: the pump mixes silence for a lane that has run
            // dry and keeps its clock going, as hardware does.
            Phase::Running => Pointer::PositionOrXrun,
            Phase::Xrun | Phase::Idle | Phase::Paused | Phase::Draining | Phase::PlayingOut => Pointer::Position,
        }
    }

    pub fn delay(self) -> Delay {
        match self {
            Phase::Gone | Phase::Xrun | Phase::Underrun => Delay::Xrun,
            // Nothing plays while paused, so the delay is what it was.
            Phase::Paused => Delay::Frozen,
            // Nothing has reached the device: only the lane holds frames.
            Phase::Idle => Delay::Lane,
            // Frames in the lane, plus the device's queue, from the pump's clock.
            Phase::Running | Phase::Draining | Phase::PlayingOut => Delay::LaneAndDevice,
        }
    }
}

/// What `poll_revents` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    Error,
    Ready,
    WhenAvail,
    WhenMixed,
    WhenPlayedOut,
}

/// What `pointer` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pointer {
    Xrun,
    Position,
    PositionOrXrun,
}

/// What `delay` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delay {
    Xrun,
    Frozen,
    Lane,
    LaneAndDevice,
}

#[cfg(test)]
mod tests {
    use super::*;

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
                (p.poll(), p.pointer(), p.delay()),
                (Poll::Error, Pointer::Xrun, Delay::Xrun)
            );
        }
    }

    #[test]
    fn draining_waits_for_the_mix_then_for_the_device() {
        assert_eq!(
            Phase::of(a::SND_PCM_STATE_DRAINING, Pump::Mixing).poll(),
            Poll::WhenMixed
        );
        assert_eq!(
            Phase::of(a::SND_PCM_STATE_DRAINING, Pump::Drained).poll(),
            Poll::WhenPlayedOut
        );
        assert_eq!(Phase::of(a::SND_PCM_STATE_PREPARED, Pump::Drained), Phase::Idle);
        assert_eq!(
            Phase::of(a::SND_PCM_STATE_RUNNING, Pump::Mixing).pointer(),
            Pointer::PositionOrXrun
        );
        assert_eq!(Phase::of(a::SND_PCM_STATE_PAUSED, Pump::Mixing).delay(), Delay::Frozen);
    }

    /// A frame written after the pump read the lane cannot undo the xrun it decided: the
    /// program hears of it, wakes, and prepares, instead of waiting on a lane nobody mixes.
    #[test]
    fn the_pumps_xrun_outranks_what_was_written_since() {
        for s in [a::SND_PCM_STATE_RUNNING, a::SND_PCM_STATE_DRAINING] {
            let p = Phase::of(s, Pump::Stopped);
            assert_eq!(p, Phase::Underrun);
            assert_eq!(
                (p.poll(), p.pointer(), p.delay()),
                (Poll::Ready, Pointer::Xrun, Delay::Xrun)
            );
        }
        // A paused or prepared stream is not being mixed, whatever the word still says.
        assert_eq!(Phase::of(a::SND_PCM_STATE_PAUSED, Pump::Stopped), Phase::Paused);
        assert_eq!(Phase::of(a::SND_PCM_STATE_PREPARED, Pump::Stopped), Phase::Idle);
    }
}
