//! Opening and configuring the slave, for playback or capture: read/write interleaved
//! access only, never mmap.

use std::fmt::Display;

use super::play::start_frames;
use super::side::{Device, Sink, Source};
use crate::alsa::pcm::{HwParams, Negotiated, Pcm};
use crate::alsa::strerror;
use crate::config::SlaveRequest;
use crate::dsp::chmap::standard_map;
use crate::dsp::format::{FORMATS, Format};
use crate::error::{Error, Result};
use crate::shm::segment::{DeviceParams, MAX_CHMAP};
use crate::wire::Stream;

/// rdmix's defaults, chosen for low latency: 5 ms periods, 4 of them (about 21 ms at 48 kHz,
/// against 1024-frame quanta in sound servers).
pub const DEFAULT_RATE: u32 = 48000;
pub const DEFAULT_CHANNELS: u32 = 2;
pub const DEFAULT_PERIOD_TIME_US: u32 = 5333;
pub const DEFAULT_PERIODS: u32 = 4;
/// The device buffer while the pump fills ahead (`fill_ahead`), if neither its size nor its
/// time is given: about a third of a second (16384 frames at 48 kHz, snd-dummy's largest),
/// so that the pump wakes a few times a second. The period stays the interrupt granularity.
/// Playback rewinds keep a new sound from waiting behind it (see `play`); capture reads it
/// as soon as its most eager reader wants frames (see `record`).
pub const DEFAULT_FILL_BUFFER_TIME_US: u32 = 341_334;

/// The slave PCM as the pump drives it.
pub struct AlsaSlave {
    pcm: Pcm,
    /// For a slave that takes only non-interleaved access (snd-dummy's device 3, some
    /// multi-channel codecs): the pump still mixes interleaved, and this splits it.
    planar: Option<Planar>,
    /// Whether what the slave says it can take back is true (see `trusts_rewinds`).
    rewinds: bool,
}

/// One buffer per channel, a device buffer long.
struct Planar {
    sample_bytes: usize,
    planes: Vec<Vec<u8>>,
}

impl Planar {
    fn new(format: i32, channels: u32, frames: usize) -> Planar {
        let sample_bytes = Format::lookup(format).map_or(4, |f| f.sample_bytes());
        Planar {
            sample_bytes,
            planes: (0..channels).map(|_| vec![0; frames * sample_bytes]).collect(),
        }
    }

    fn frames(&self) -> usize {
        self.planes.first().map_or(0, |p| p.len() / self.sample_bytes)
    }

    /// Splits interleaved frames into the planes.
    fn split(&mut self, buf: &[u8], frames: usize) {
        let (sb, ch) = (self.sample_bytes, self.planes.len());
        for (c, plane) in self.planes.iter_mut().enumerate() {
            for (f, s) in plane.chunks_exact_mut(sb).take(frames).enumerate() {
                let at = (f * ch + c) * sb;
                s.copy_from_slice(&buf[at..at + sb]);
            }
        }
    }

    /// Interleaves the planes' first frames into `buf`.
    fn join(&self, buf: &mut [u8], frames: usize) {
        let (sb, ch) = (self.sample_bytes, self.planes.len());
        for (c, plane) in self.planes.iter().enumerate() {
            for (f, s) in plane.chunks_exact(sb).take(frames).enumerate() {
                let at = (f * ch + c) * sb;
                buf[at..at + sb].copy_from_slice(s);
            }
        }
    }
}

/// `rdmix: slave.pcm "NAME": WHAT: CAUSE`
fn failed(name: &str, what: &str, e: Error) -> Error {
    let cause = strerror(e.neg());
    e.context(format!("rdmix: slave.pcm \"{name}\": {what}: {cause}"))
}

/// `rdmix: slave.KEY VALUE: refused by slave.pcm "NAME": CAUSE`
fn refused(name: &str, key: &str, value: impl Display, e: Error) -> Error {
    let cause = strerror(e.neg());
    e.context(format!(
        "rdmix: slave.{key} {value}: refused by slave.pcm \"{name}\": {cause}"
    ))
}

fn unusable(name: &str, why: String) -> Error {
    Error::new(libc::EINVAL, format!("rdmix: slave.pcm \"{name}\": {why}"))
}

impl AlsaSlave {
    /// Opens and configures the slave; the error is one line naming the option and the cause.
    pub fn open(req: &SlaveRequest, stream: Stream, fill_ahead: bool) -> Result<(AlsaSlave, DeviceParams, Vec<u32>)> {
        let name = req.pcm.as_str();
        let pcm = Pcm::open(name, stream.is_capture()).map_err(|e| {
            if e.is(libc::ELOOP) {
                // The nested rdmix refused to open inside a pump (see plugin::open).
                e.context(format!(
                    "rdmix: slave.pcm \"{name}\": leads back to rdmix itself; name a device or plugin chain"
                ))
            } else {
                failed(name, &format!("cannot open for {}", stream.name()), e)
            }
        })?;
        let mut hw = pcm
            .hw_params()
            .map_err(|e| failed(name, "cannot read its parameters", e))?;
        // Interleaved where the slave takes it; else non-interleaved, split by the pump.
        let planar = match hw.set_access_rw_interleaved() {
            Ok(()) => false,
            Err(e) => {
                hw.set_access_rw_noninterleaved()
                    .map_err(|_| failed(name, "refuses both RW_INTERLEAVED and RW_NONINTERLEAVED access", e))?;
                true
            }
        };
        choose_format(&mut hw, req)?;
        choose_channels(&mut hw, req)?;
        choose_rate(&mut hw, req)?;
        choose_sizes(&mut hw, req, fill_ahead)?;
        hw.apply()
            .map_err(|e| failed(name, "refuses the asked parameters", e))?;
        let got = pcm
            .negotiated()
            .map_err(|e| failed(name, "cannot read back its parameters", e))?;
        check_usable(name, &got)?;
        // Playback starts once the buffer is full (filling ahead: once it holds the pump's
        // margin and a period, as it does after a restart or a recovered xrun, since the lanes
        // may hold less than a large buffer); an underrun is a real xrun, which the pump
        // recovers. The pump writes whole periods, so start at a whole period. Capture is
        // started by the pump itself, when the first client records.
        let whole = got.buffer / got.period * got.period;
        let start = if stream.is_capture() {
            got.buffer * 2
        } else if fill_ahead {
            whole.min(start_frames(got.rate, got.period, got.buffer))
        } else {
            whole
        };
        pcm.set_sw_params(start, got.buffer, got.period)
            .map_err(|e| failed(name, "refuses the software parameters", e))?;
        let chmap = pcm
            .chmap()
            .filter(|m| m.len() == got.channels as usize)
            .unwrap_or_else(|| standard_map(got.channels));
        let dev = DeviceParams {
            format: got.format,
            rate: got.rate,
            channels: got.channels,
            period_frames: got.period as u32,
            buffer_frames: got.buffer as u32,
        };
        let planar = planar.then(|| Planar::new(got.format, got.channels, got.buffer as usize));
        let rewinds = trusts_rewinds(&pcm);
        Ok((AlsaSlave { pcm, planar, rewinds }, dev, chmap))
    }
}

/// The asked format, or the first of rdmix's that the slave takes.
fn choose_format(hw: &mut HwParams, req: &SlaveRequest) -> Result<()> {
    let name = req.pcm.as_str();
    match req.format {
        Some(f) => {
            let n = Format::lookup(f).map(|f| f.name()).unwrap_or_default();
            hw.set_format(f).map_err(|e| refused(name, "format", n, e))
        }
        None => {
            let f = FORMATS
                .iter()
                .find(|f| hw.test_format(f.id))
                .ok_or_else(|| unusable(name, "offers no sample format rdmix can mix".into()))?;
            hw.set_format(f.id)
                .map_err(|e| failed(name, "cannot set its format", e))
        }
    }
}

fn choose_channels(hw: &mut HwParams, req: &SlaveRequest) -> Result<()> {
    let name = req.pcm.as_str();
    match req.channels {
        Some(c) => hw.set_channels(c).map_err(|e| refused(name, "channels", c, e)),
        None => hw
            .set_channels_near(DEFAULT_CHANNELS)
            .map(drop)
            .map_err(|e| failed(name, "cannot set channels", e)),
    }
}

fn choose_rate(hw: &mut HwParams, req: &SlaveRequest) -> Result<()> {
    let name = req.pcm.as_str();
    match req.rate {
        Some(r) => hw.set_rate(r).map_err(|e| refused(name, "rate", r, e)),
        None => hw
            .set_rate_near(DEFAULT_RATE)
            .map(drop)
            .map_err(|e| failed(name, "cannot set a rate", e)),
    }
}

/// Period first (size, else time, else rdmix's default time), then the buffer (size, else
/// time, else a number of periods).
fn choose_sizes(hw: &mut HwParams, req: &SlaveRequest, fill_ahead: bool) -> Result<()> {
    let name = req.pcm.as_str();
    let period = match (req.period_size, req.period_time) {
        (Some(p), _) => hw.set_period_size_near(p as u64).map_err(|e| ("period_size", p, e)),
        (None, Some(t)) => hw
            .set_period_time_near(t)
            .map(u64::from)
            .map_err(|e| ("period_time", t, e)),
        (None, None) => hw
            .set_period_time_near(DEFAULT_PERIOD_TIME_US)
            .map(u64::from)
            .map_err(|e| ("period_time", DEFAULT_PERIOD_TIME_US, e)),
    };
    period.map_err(|(key, v, e)| refused(name, key, v, e))?;
    let buffer = match (req.buffer_size, req.buffer_time) {
        (Some(b), _) => hw.set_buffer_size_near(b as u64).map_err(|e| ("buffer_size", b, e)),
        (None, Some(t)) => hw
            .set_buffer_time_near(t)
            .map(u64::from)
            .map_err(|e| ("buffer_time", t, e)),
        (None, None) if fill_ahead && req.periods.is_none() => hw
            .set_buffer_time_near(DEFAULT_FILL_BUFFER_TIME_US)
            .map(u64::from)
            .map_err(|e| ("buffer_time", DEFAULT_FILL_BUFFER_TIME_US, e)),
        (None, None) => {
            let n = req.periods.unwrap_or(DEFAULT_PERIODS);
            hw.set_periods_near(n).map(u64::from).map_err(|e| ("periods", n, e))
        }
    };
    buffer.map(drop).map_err(|(key, v, e)| refused(name, key, v, e))
}

/// Whether the slave's rewinds can be believed: only where a kernel driver holds the
/// frames, at the bottom of the chain. An external (ioplug) plugin with read/write access has
/// had each frame handed to it at `writei`; alsa-lib's `snd_pcm_rewind` then only moves the
/// pointer back and says yes, and the frames play twice. `file` has written them out.
fn trusts_rewinds(pcm: &Pcm) -> bool {
    pcm.card().is_some() && !matches!(pcm.type_name().as_str(), "IOPLUG" | "EXTPLUG" | "FILE")
}

/// What the slave settled on must be something the engine can run.
fn check_usable(name: &str, got: &Negotiated) -> Result<()> {
    if Format::lookup(got.format).is_none() {
        return Err(unusable(name, "runs a format rdmix cannot mix".into()));
    }
    if got.channels == 0 || got.channels as usize > MAX_CHMAP {
        return Err(unusable(
            name,
            format!("{} channels is beyond rdmix's {MAX_CHMAP}", got.channels),
        ));
    }
    if got.period == 0 || got.buffer < 2 * got.period || got.period > 1 << 16 {
        return Err(unusable(
            name,
            format!("unusable period {} / buffer {} frames", got.period, got.buffer),
        ));
    }
    Ok(())
}

impl Sink for AlsaSlave {
    fn write(&mut self, buf: &[u8], frames: usize) -> Result<usize> {
        let Some(p) = &mut self.planar else {
            return self.pcm.writei(buf, frames);
        };
        let n = frames.min(p.frames());
        p.split(buf, n);
        // On the stack: nothing is allocated per period.
        let mut planes: [&[u8]; MAX_CHMAP] = [&[]; MAX_CHMAP];
        for (r, v) in planes.iter_mut().zip(&p.planes) {
            *r = v;
        }
        self.pcm.writen(&planes[..p.planes.len()], n, p.sample_bytes)
    }
    fn avail(&mut self) -> Result<usize> {
        self.pcm.avail()
    }
    fn delay(&mut self) -> Result<i64> {
        self.pcm.delay()
    }
    fn delay_at(&mut self) -> Result<(i64, Option<u64>)> {
        // Not running (or no status): snd_pcm_delay, which also gives an xrun's or a
        // suspend's errno as the pump's recovery expects it.
        match self.pcm.stamped() {
            Ok(Some(s)) => Ok((s.delay, s.at_ns)),
            _ => self.pcm.delay().map(|d| (d, None)),
        }
    }
    fn recover(&mut self, err: &Error) -> Result<()> {
        self.pcm.recover(err)
    }
    fn stop(&mut self) -> Result<()> {
        self.pcm.drop_frames()
    }
    fn prepare(&mut self) -> Result<()> {
        self.pcm.prepare()
    }
    fn wake_at_room(&mut self, frames: u64) -> Result<()> {
        self.pcm.set_avail_min(frames)
    }
    fn rewindable(&mut self) -> Result<u64> {
        if !self.rewinds {
            return Ok(0);
        }
        self.pcm.rewindable()
    }
    fn rewind(&mut self, frames: u64) -> Result<u64> {
        if !self.rewinds {
            return Ok(0);
        }
        self.pcm.rewind(frames)
    }
}

impl Source for AlsaSlave {
    fn read(&mut self, buf: &mut [u8], frames: usize) -> Result<usize> {
        let Some(p) = &mut self.planar else {
            return self.pcm.readi(buf, frames);
        };
        let want = frames.min(p.frames());
        let sb = p.sample_bytes;
        let count = p.planes.len();
        let mut planes: [&mut [u8]; MAX_CHMAP] = Default::default();
        for (r, v) in planes.iter_mut().zip(p.planes.iter_mut()) {
            *r = v;
        }
        let n = self.pcm.readn(&mut planes[..count], want, sb)?;
        p.join(buf, n);
        Ok(n)
    }
    fn avail(&mut self) -> Result<usize> {
        self.pcm.avail()
    }
    fn avail_at(&mut self) -> Result<(usize, Option<u64>)> {
        // As `delay_at`: not running, snd_pcm_avail gives the errno recovery expects.
        match self.pcm.stamped() {
            Ok(Some(s)) => Ok((s.avail as usize, s.at_ns)),
            _ => self.pcm.avail().map(|a| (a, None)),
        }
    }
    fn recover(&mut self, err: &Error) -> Result<()> {
        self.pcm.recover(err)?;
        // A recover that resumed a suspended stream leaves it running where it was; one
        // that prepared it (an overrun, a driver with no resume) must start it again.
        if self.pcm.is_prepared() {
            self.pcm.start()
        } else {
            Ok(())
        }
    }
    fn start(&mut self) -> Result<()> {
        self.pcm.prepare()?;
        self.pcm.start()
    }
    fn stop(&mut self) -> Result<()> {
        self.pcm.drop_frames()
    }
    fn wake_at_data(&mut self, frames: u64) -> Result<()> {
        self.pcm.set_avail_min(frames)
    }
}

impl Device for AlsaSlave {
    fn poll_fds(&self) -> Vec<libc::pollfd> {
        self.pcm.poll_descriptors().unwrap_or_default()
    }

    /// Room, frames captured, or an error that the next transfer reports.
    fn ready(&self, fds: &mut [libc::pollfd]) -> bool {
        self.pcm.poll_revents(fds).map_or(true, |r| {
            r & (libc::POLLOUT | libc::POLLIN | libc::POLLERR | libc::POLLHUP) as u16 != 0
        })
    }

    fn type_name(&self) -> String {
        self.pcm.type_name()
    }
}
