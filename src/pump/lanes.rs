//! The lane table, once for both directions: who holds which lane, what the pump accepted
//! of each client's hw_params, the epoch each lane is in, its volume, and the pump's own
//! counts.
//!
//! A direction adds its own part to each lane (`Part`): playback a converter and its dry
//! spells, capture a tap and its overrun. The words and the memory are shared; which end
//! of the lane the pump holds (`ring::Consumer` or `tap::Writer`) is the part's to say.

use std::sync::Arc;

use crate::config::Bindings;
use crate::dsp::convert;
use crate::dsp::format::Format;
use crate::dsp::gain::Volume;
use crate::error::{Error, Result};
use crate::shm::lane::LaneMem;
use crate::shm::ring::{Ctl, Geometry, Mixed, State};
use crate::shm::segment::{DeviceParams, MAX_LANES, SegmentWriter};

/// What a client declared at hw_params time (validated before it is accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneSetup {
    pub format: Format,
    pub channels: u32,
    pub rate: u32,
    pub geometry: Geometry,
}

/// A direction's part of a lane, and the pump's end of the lane's words.
pub trait Part: Default {
    /// A new epoch (prepare): the converter starts over.
    fn restart(&mut self);
    /// The client's word; `None` for a word no client could have written.
    fn ctl(mem: &LaneMem) -> Option<Ctl>;
    /// Publishes the pump's word.
    fn publish(mem: &LaneMem, m: Mixed);
    /// Zeroes every word, for a new client.
    fn reset(mem: &LaneMem);
}

/// What the pump has made of one lane.
#[derive(Default)]
pub struct Lane<X> {
    pub setup: Option<LaneSetup>,
    pub epoch: u16,
    /// Client frames consumed (playback) or written (capture) in this epoch: the lane
    /// position.
    pub pos: u64,
    /// Device frames this lane has been given (playback) or fed (capture) in this epoch.
    pub device_frames: u64,
    /// Underruns or overruns, counted here: the slot's counter is the client's to read
    /// (and scribble).
    pub xruns: u32,
    /// The volume the pump was told for this lane's program: kept through its hw_params,
    /// reset for a new program.
    pub volume: Volume,
    pub part: X,
}

impl<X: Part> Lane<X> {
    /// Follows the client into a new epoch, if it prepared since the last period: the
    /// positions restart, and the pump's word says so at once.
    pub fn follow(&mut self, ctl: &Ctl, mem: &LaneMem) {
        if ctl.epoch == self.epoch {
            return;
        }
        self.part.restart();
        self.epoch = ctl.epoch;
        self.pos = 0;
        self.device_frames = 0;
        X::publish(
            mem,
            Mixed {
                epoch: ctl.epoch,
                ..Mixed::default()
            },
        );
    }
}

/// What `rdmix-status` and the process loop need of a lane table, either direction.
pub trait LaneTable {
    /// Gives lane `idx` to a new client, with its own memory: every word starts at zero.
    fn attach(&mut self, idx: usize, mem: Arc<LaneMem>);
    fn detach(&mut self, idx: usize);
    /// The pump's own setup and count for lane `idx`, and the state its client declares
    /// (`None` when the lane is free or its word is corrupt).
    fn status(&self, idx: usize) -> Option<(Option<LaneSetup>, Option<State>, u32)>;
}

/// Every lane of one pump, with the device they are converted to or from.
pub struct Lanes<X> {
    pub seg: Arc<SegmentWriter>,
    /// The pump's own copy of the device parameters: never re-read from shared memory.
    pub dev: DeviceParams,
    /// The device's format, looked up once.
    pub format: Format,
    pub chmap: Vec<u32>,
    pub mems: Vec<Option<Arc<LaneMem>>>,
    pub lanes: Vec<Lane<X>>,
}

impl<X: Part> Lanes<X> {
    /// Refuses device parameters no pump could run.
    pub fn new(seg: Arc<SegmentWriter>, dev: DeviceParams, chmap: Vec<u32>) -> Result<Lanes<X>> {
        let format = Format::lookup(dev.format)
            .ok_or_else(|| Error::new(libc::EINVAL, format!("rdmix: unsupported slave format {}", dev.format)))?;
        if dev.channels == 0 || dev.period_frames == 0 || dev.rate == 0 {
            return Err(Error::new(
                libc::EINVAL,
                format!("rdmix: impossible device parameters {dev:?}"),
            ));
        }
        Ok(Lanes {
            seg,
            dev,
            format,
            chmap,
            mems: (0..MAX_LANES).map(|_| None).collect(),
            lanes: (0..MAX_LANES).map(|_| Lane::default()).collect(),
        })
    }

    /// Bytes of one device frame.
    pub fn frame_bytes(&self) -> usize {
        self.dev.channels as usize * self.format.sample_bytes()
    }

    /// Accepts a client's hw_params on lane `idx`, with the direction's part for it.
    pub fn accept(&mut self, idx: usize, setup: LaneSetup, part: X) {
        self.lanes[idx] = Lane {
            setup: Some(setup),
            volume: self.lanes[idx].volume,
            part,
            ..Lane::default()
        };
    }

    /// Sets lane `idx`'s volume; whether it changed.
    pub fn set_volume(&mut self, idx: usize, v: Volume) -> bool {
        let Some(lane) = self.lanes.get_mut(idx) else {
            return false;
        };
        let changed = lane.volume != v;
        lane.volume = v;
        changed
    }

    pub fn volume(&self, idx: usize) -> Option<Volume> {
        self.lanes.get(idx).map(|l| l.volume)
    }

    /// Each attached lane with its memory, by index.
    pub fn each(&mut self) -> impl Iterator<Item = (usize, &mut Lane<X>, &LaneMem)> {
        self.lanes
            .iter_mut()
            .zip(&self.mems)
            .enumerate()
            .filter_map(|(i, (l, m))| Some((i, l, &**m.as_ref()?)))
    }

    /// Each set-up lane whose client's word reads, with that word.
    pub fn declared(&self) -> impl Iterator<Item = (&Lane<X>, Ctl)> {
        self.lanes.iter().zip(&self.mems).filter_map(|(lane, mem)| {
            lane.setup?;
            Some((lane, X::ctl(mem.as_ref()?)?))
        })
    }
}

impl<X: Part> LaneTable for Lanes<X> {
    fn attach(&mut self, idx: usize, mem: Arc<LaneMem>) {
        X::reset(&mem);
        self.mems[idx] = Some(mem);
        self.lanes[idx] = Lane::default();
    }

    fn detach(&mut self, idx: usize) {
        self.mems[idx] = None;
        self.lanes[idx] = Lane::default();
    }

    fn status(&self, idx: usize) -> Option<(Option<LaneSetup>, Option<State>, u32)> {
        let (lane, mem) = (self.lanes.get(idx)?, self.mems.get(idx)?.as_ref()?);
        Some((lane.setup, X::ctl(mem).map(|c| c.state), lane.xruns))
    }
}

/// A client's hw_params refused, for the reason given.
pub fn refuse(why: String) -> Error {
    Error::new(libc::EINVAL, format!("rdmix: hw_params: {why}"))
}

/// Whether a client's rate, channels and bindings are ones rdmix converts, on a device like
/// `dev`, in either direction.
pub fn check_client(dev: &DeviceParams, channels: u32, rate: u32, bindings: &Bindings) -> Result<()> {
    if !(convert::MIN_RATE..=convert::MAX_RATE).contains(&rate) {
        return Err(refuse(format!(
            "rate {rate} is outside {}..{} Hz",
            convert::MIN_RATE,
            convert::MAX_RATE
        )));
    }
    if channels == 0 || channels > convert::MAX_CHANNELS {
        return Err(refuse(format!(
            "{channels} channels; rdmix maps 1 to {}",
            convert::MAX_CHANNELS
        )));
    }
    if bindings
        .pairs()
        .iter()
        .any(|&(c, d)| c >= channels || d >= dev.channels)
    {
        return Err(refuse(format!(
            "bindings {:?} do not fit {channels} channels on a {}-channel device",
            bindings.pairs(),
            dev.channels
        )));
    }
    Ok(())
}
