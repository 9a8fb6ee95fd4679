//! What the process loop needs of a pump, whichever way it moves frames: `server` drives a
//! playback `Pump` and a capture `Recorder` through this one narrow trait.

use std::sync::Arc;

use super::capture::Recorder;
use super::engine::LaneSetup;
use super::pacing::{Next, Pump, Stats};
use super::slave::AlsaSlave;
use crate::config::Bindings;
use crate::dsp::format::Format;
use crate::error::{Error, Result};
use crate::shm::lane::LaneMem;
use crate::shm::ring::State;
use crate::shm::segment::DeviceParams;

pub trait Side {
    /// A client's lane has started to want the device: an idle device starts.
    fn kick(&mut self, now_ns: u64) -> Result<()>;
    /// Does every transfer due at `now_ns`; says when to call again.
    fn service(&mut self, now_ns: u64, wake: &mut Vec<usize>) -> Result<Next>;
    fn is_idle(&self) -> bool;
    fn sleeps_on_device(&self) -> bool;
    fn pace_by_clock(&mut self);
    /// Marks the segment failed, so clients report the errno instead of waiting.
    fn fail(&self, err: &Error);
    fn stats(&self) -> Stats;
    fn device(&self) -> DeviceParams;
    fn slave(&self) -> &AlsaSlave;
    fn attach(&mut self, idx: usize, mem: Arc<LaneMem>);
    fn detach(&mut self, idx: usize);
    /// Accepts or refuses a client's hw_params.
    fn setup(&mut self, idx: usize, f: Format, channels: u32, rate: u32, buffer: u64, b: &Bindings) -> Result<()>;
    /// The pump's own setup and count for lane `idx`, and the state its client declares.
    fn lane_status(&self, idx: usize) -> Option<(Option<LaneSetup>, Option<State>, u32)>;
}

impl Side for Pump<AlsaSlave> {
    fn kick(&mut self, now_ns: u64) -> Result<()> {
        Pump::kick(self, now_ns)
    }
    fn service(&mut self, now_ns: u64, wake: &mut Vec<usize>) -> Result<Next> {
        Pump::service(self, now_ns, wake)
    }
    fn is_idle(&self) -> bool {
        Pump::is_idle(self)
    }
    fn sleeps_on_device(&self) -> bool {
        Pump::sleeps_on_device(self)
    }
    fn pace_by_clock(&mut self) {
        Pump::pace_by_clock(self)
    }
    fn fail(&self, err: &Error) {
        Pump::fail(self, err)
    }
    fn stats(&self) -> Stats {
        self.stats
    }
    fn device(&self) -> DeviceParams {
        self.engine.device()
    }
    fn slave(&self) -> &AlsaSlave {
        &self.slave
    }
    fn attach(&mut self, idx: usize, mem: Arc<LaneMem>) {
        self.engine.attach(idx, mem)
    }
    fn detach(&mut self, idx: usize) {
        self.engine.detach(idx)
    }
    fn setup(&mut self, idx: usize, f: Format, channels: u32, rate: u32, buffer: u64, b: &Bindings) -> Result<()> {
        self.engine.setup(idx, f, channels, rate, buffer, b)
    }
    fn lane_status(&self, idx: usize) -> Option<(Option<LaneSetup>, Option<State>, u32)> {
        self.engine.lane_status(idx)
    }
}

impl Side for Recorder<AlsaSlave> {
    fn kick(&mut self, now_ns: u64) -> Result<()> {
        Recorder::kick(self, now_ns)
    }
    fn service(&mut self, now_ns: u64, wake: &mut Vec<usize>) -> Result<Next> {
        Recorder::service(self, now_ns, wake)
    }
    fn is_idle(&self) -> bool {
        Recorder::is_idle(self)
    }
    fn sleeps_on_device(&self) -> bool {
        Recorder::sleeps_on_device(self)
    }
    fn pace_by_clock(&mut self) {
        Recorder::pace_by_clock(self)
    }
    fn fail(&self, err: &Error) {
        Recorder::fail(self, err)
    }
    fn stats(&self) -> Stats {
        self.stats
    }
    fn device(&self) -> DeviceParams {
        self.split.device()
    }
    fn slave(&self) -> &AlsaSlave {
        &self.source
    }
    fn attach(&mut self, idx: usize, mem: Arc<LaneMem>) {
        self.split.attach(idx, mem)
    }
    fn detach(&mut self, idx: usize) {
        self.split.detach(idx)
    }
    fn setup(&mut self, idx: usize, f: Format, channels: u32, rate: u32, buffer: u64, b: &Bindings) -> Result<()> {
        self.split.setup(idx, f, channels, rate, buffer, b)
    }
    fn lane_status(&self, idx: usize) -> Option<(Option<LaneSetup>, Option<State>, u32)> {
        self.split.lane_status(idx)
    }
}
