//! A client stream's phase, and the answers a direction's table gives for it.
//!
//! Three sources run side by side, and this is where they are read together:
//! - ALSA's state (`io.state`), which alsa-lib moves through start, drain, pause and xrun;
//! - the lane state the client publishes for the pump (`ring::State`), which follows it;
//! - what the pump has made of the lane (`ring::Mixed`: running, drained, stopped), and
//!   whether the pump is there at all (`Pump`).
//!
//! What poll, the pointer (and so avail) and delay report in each phase is each
//! direction's table: `play` and `record`.

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
    /// The position, or -EPIPE once avail passes stop_threshold.
    PositionOrXrun,
    /// As `PositionOrXrun`, and the stream stops there (a capture overrun); a program
    /// short of avail_min is to be woken when it is reached.
    PositionOrOverrun,
    /// The position, or -EPIPE once nothing is left to read (the end of a capture drain).
    UntilRead,
}

/// What `delay` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delay {
    Xrun,
    Frozen,
    Lane,
    /// Frames in the lane, plus the device's queue ahead of them (playback).
    LaneAndDevice,
    /// Frames in the lane, plus what the device has captured and the pump not yet read.
    LaneAndHeld,
}
