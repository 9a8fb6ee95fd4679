//! Opening and configuring the slave: read/write interleaved access only, never mmap.

use crate::boundary::pcm::{Pcm, strerror};
use crate::config::SlaveRequest;
use crate::mix::{FORMATS, Format};
use crate::pump::Slave;
use crate::segment::{DeviceParams, MAX_CHMAP};

/// The slave PCM as the pump drives it.
pub struct AlsaSlave {
    pcm: Pcm,
}

/// rdmix's defaults, chosen for low latency: 5 ms periods, 4 of them (about 21 ms at 48 kHz,
/// against 1024-frame quanta in sound servers).
pub const DEFAULT_RATE: u32 = 48000;
pub const DEFAULT_CHANNELS: u32 = 2;
pub const DEFAULT_PERIOD_TIME_US: u32 = 5333;
pub const DEFAULT_PERIODS: u32 = 4;

fn fail(pcm: &str, what: &str, err: i32) -> String {
    format!("rdmix: slave.pcm \"{pcm}\": {what}: {}", strerror(err))
}

impl AlsaSlave {
    /// Opens and configures the slave; the error is one line naming the option and the cause.
    pub fn open(req: &SlaveRequest) -> Result<(AlsaSlave, DeviceParams, Vec<u32>), (i32, String)> {
        let name = &req.pcm;
        let pcm = Pcm::open(name).map_err(|e| match e {
            // The nested rdmix refused to open inside a pump (see boundary::ioplug::open).
            e if e == -libc::ELOOP => (
                e,
                format!("rdmix: slave.pcm \"{name}\": leads back to rdmix itself; name a device or plugin chain"),
            ),
            e => (e, fail(name, "cannot open", e)),
        })?;
        let mut hw = pcm
            .hw_params()
            .map_err(|e| (e, fail(name, "cannot read its parameters", e)))?;
        hw.set_access_rw_interleaved()
            .map_err(|e| (e, fail(name, "refuses RW_INTERLEAVED access", e)))?;
        match req.format {
            Some(f) => hw.set_format(f).map_err(|e| {
                let n = Format::lookup(f).map(|f| f.name()).unwrap_or_default();
                (
                    e,
                    format!(
                        "rdmix: slave.format {n}: refused by slave.pcm \"{name}\": {}",
                        strerror(e)
                    ),
                )
            })?,
            None => {
                let f = FORMATS.iter().find(|f| hw.test_format(f.id)).ok_or_else(|| {
                    (
                        -libc::EINVAL,
                        format!("rdmix: slave.pcm \"{name}\": offers no sample format rdmix can mix"),
                    )
                })?;
                hw.set_format(f.id)
                    .map_err(|e| (e, fail(name, "cannot set its format", e)))?;
            }
        }
        match req.channels {
            Some(c) => hw.set_channels(c).map_err(|e| {
                (
                    e,
                    format!(
                        "rdmix: slave.channels {c}: refused by slave.pcm \"{name}\": {}",
                        strerror(e)
                    ),
                )
            })?,
            None => {
                hw.set_channels_near(DEFAULT_CHANNELS)
                    .map_err(|e| (e, fail(name, "cannot set channels", e)))?;
            }
        }
        match req.rate {
            Some(r) => hw.set_rate(r).map_err(|e| {
                (
                    e,
                    format!(
                        "rdmix: slave.rate {r}: refused by slave.pcm \"{name}\": {}",
                        strerror(e)
                    ),
                )
            })?,
            None => {
                hw.set_rate_near(DEFAULT_RATE)
                    .map_err(|e| (e, fail(name, "cannot set a rate", e)))?;
            }
        }
        let refused = |key: &str, v: u64, e: i32| {
            (
                e,
                format!(
                    "rdmix: slave.{key} {v}: refused by slave.pcm \"{name}\": {}",
                    strerror(e)
                ),
            )
        };
        if let Some(p) = req.period_size {
            hw.set_period_size_near(p as u64)
                .map_err(|e| refused("period_size", p as u64, e))?;
        } else if let Some(t) = req.period_time {
            hw.set_period_time_near(t)
                .map_err(|e| refused("period_time", t as u64, e))?;
        } else {
            hw.set_period_time_near(DEFAULT_PERIOD_TIME_US)
                .map_err(|e| refused("period_time", DEFAULT_PERIOD_TIME_US as u64, e))?;
        }
        if let Some(b) = req.buffer_size {
            hw.set_buffer_size_near(b as u64)
                .map_err(|e| refused("buffer_size", b as u64, e))?;
        } else if let Some(t) = req.buffer_time {
            hw.set_buffer_time_near(t)
                .map_err(|e| refused("buffer_time", t as u64, e))?;
        } else {
            let n = req.periods.unwrap_or(DEFAULT_PERIODS);
            hw.set_periods_near(n).map_err(|e| refused("periods", n as u64, e))?;
        }
        hw.apply()
            .map_err(|e| (e, fail(name, "refuses the asked parameters", e)))?;
        let got = pcm
            .negotiated()
            .map_err(|e| (e, fail(name, "cannot read back its parameters", e)))?;
        if Format::lookup(got.format).is_none() {
            return Err((
                -libc::EINVAL,
                format!("rdmix: slave.pcm \"{name}\": runs a format rdmix cannot mix"),
            ));
        }
        if got.channels == 0 || got.channels as usize > MAX_CHMAP {
            return Err((
                -libc::EINVAL,
                format!(
                    "rdmix: slave.pcm \"{name}\": {} channels is beyond rdmix's {MAX_CHMAP}",
                    got.channels
                ),
            ));
        }
        if got.period == 0 || got.buffer < 2 * got.period || got.period > 1 << 16 {
            return Err((
                -libc::EINVAL,
                format!(
                    "rdmix: slave.pcm \"{name}\": unusable period {} / buffer {} frames",
                    got.period, got.buffer
                ),
            ));
        }
        // Start once the buffer is full; an underrun is a real xrun, which the pump recovers.
        // The pump writes whole periods, so start at the last whole period that fits.
        let start = got.buffer / got.period * got.period;
        pcm.set_sw_params(start, got.buffer, got.period)
            .map_err(|e| (e, fail(name, "refuses the software parameters", e)))?;
        let chmap = pcm
            .chmap()
            .filter(|m| m.len() == got.channels as usize)
            .unwrap_or_else(|| crate::convert::standard_map(got.channels));
        let dev = DeviceParams {
            format: got.format,
            rate: got.rate,
            channels: got.channels,
            period_frames: got.period as u32,
            buffer_frames: got.buffer as u32,
        };
        Ok((AlsaSlave { pcm }, dev, chmap))
    }

    pub fn type_name(&self) -> String {
        self.pcm.type_name()
    }
}

impl Slave for AlsaSlave {
    fn write(&mut self, buf: &[u8], frames: usize) -> Result<usize, i32> {
        self.pcm.writei(buf, frames)
    }
    fn avail(&mut self) -> Result<usize, i32> {
        self.pcm.avail()
    }
    fn delay(&mut self) -> Result<i64, i32> {
        self.pcm.delay()
    }
    fn recover(&mut self, err: i32) -> Result<(), i32> {
        self.pcm.recover(err)
    }
}
