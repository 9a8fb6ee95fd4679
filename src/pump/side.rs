//! The narrow traits between the pump's parts. `Side` is what the process loop needs of a
//! pump, whichever way it moves frames: `server` drives a playback `Player` and a capture
//! `Recorder` through it, and reaches their shared parts (the pacing, `Pace`, and the lane
//! table, `LaneTable`) instead of having them forwarded. `Sink` and `Source` are what each
//! direction needs of the slave, so that tests drive both with fakes on a virtual clock.

use super::lanes::LaneTable;
use super::pace::{Next, Pace};
use crate::config::Bindings;
use crate::dsp::format::Format;
use crate::dsp::gain::Volume;
use crate::error::{Error, Result};

/// What the loop watches of the slave itself. A fake has no descriptors and no name.
pub trait Device {
    /// The descriptors that wake the pump when the slave can move a period (its avail_min).
    fn poll_fds(&self) -> Vec<libc::pollfd> {
        Vec::new()
    }
    /// Whether the woken descriptors mean the slave wants service.
    fn ready(&self, _fds: &mut [libc::pollfd]) -> bool {
        true
    }
    /// The slave's PCM type, for the log and `rdmix-status`.
    fn type_name(&self) -> String {
        String::new()
    }
}

/// A PCM the pump can feed: only non-blocking interleaved writes are needed. Errors are
/// bare errnos, as alsa-lib gives them.
pub trait Sink: Device {
    /// Writes whole frames; returns frames taken, or an error (`EAGAIN` when full).
    fn write(&mut self, buf: &[u8], frames: usize) -> Result<usize>;
    /// Frames the slave can take now.
    fn avail(&mut self) -> Result<usize>;
    /// Frames queued in the slave and not yet played.
    fn delay(&mut self) -> Result<i64>;
    /// The delay, and when it held by the slave's own timestamp where it gives one that can
    /// be trusted (`None`: the caller's clock, read right after, must do).
    fn delay_at(&mut self) -> Result<(i64, Option<u64>)> {
        self.delay().map(|d| (d, None))
    }
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
    /// Makes the device's descriptors fire once `frames` are free (its avail_min).
    fn wake_at_room(&mut self, _frames: u64) -> Result<()> {
        Ok(())
    }
    /// Frames written that the slave can still take back: 0 for one that cannot rewind.
    fn rewindable(&mut self) -> Result<u64> {
        Ok(0)
    }
    /// Takes back up to `frames` of the last written, to be written again; returns how many.
    fn rewind(&mut self, _frames: u64) -> Result<u64> {
        Ok(0)
    }
}

/// A PCM the pump can record from: only non-blocking interleaved reads are needed. Errors
/// are bare errnos, as alsa-lib gives them.
pub trait Source: Device {
    /// Reads whole frames; returns frames read, or an error (`EAGAIN` when none are ready).
    fn read(&mut self, buf: &mut [u8], frames: usize) -> Result<usize>;
    /// Frames captured and not yet read.
    fn avail(&mut self) -> Result<usize>;
    /// The avail, and when it held by the slave's own timestamp, as `Sink::delay_at`.
    fn avail_at(&mut self) -> Result<(usize, Option<u64>)> {
        self.avail().map(|a| (a, None))
    }
    /// Recovers from an overrun or suspend reported as `err`, and captures again.
    fn recover(&mut self, err: &Error) -> Result<()>;
    /// Prepares and starts capturing.
    fn start(&mut self) -> Result<()>;
    /// Stops capturing and drops what the device holds.
    fn stop(&mut self) -> Result<()>;
    /// Makes the device's descriptors fire once `frames` are captured (its avail_min).
    fn wake_at_data(&mut self, _frames: u64) -> Result<()> {
        Ok(())
    }
}

pub trait Side {
    /// A client's lane has started to want the device: an idle device starts.
    fn kick(&mut self, now_ns: u64) -> Result<()>;
    /// Does every transfer due at `now_ns`; says when to call again. Lanes whose wake-up
    /// fell due are pushed onto `wake`.
    fn service(&mut self, now_ns: u64, wake: &mut Vec<usize>) -> Result<Next>;
    /// Accepts or refuses a client's hw_params on lane `idx`.
    fn setup(&mut self, idx: usize, f: Format, channels: u32, rate: u32, buffer: u64, b: &Bindings) -> Result<()>;
    /// Sets lane `idx`'s volume, or the master's (`None`); the next `service` may rewind so
    /// that it is heard sooner (the caller kicks).
    fn set_volume(&mut self, idx: Option<usize>, v: Volume) -> Result<()>;
    /// Lane `idx`'s volume, or the master's; `None` where this direction has none.
    fn volume(&self, idx: Option<usize>) -> Option<Volume>;
    fn pace(&self) -> &Pace;
    fn pace_mut(&mut self) -> &mut Pace;
    fn lanes(&self) -> &dyn LaneTable;
    fn lanes_mut(&mut self) -> &mut dyn LaneTable;
    fn device(&self) -> &dyn Device;
}
