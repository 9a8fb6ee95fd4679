//! The device pump: once per slave period it sums the running lanes at the device position,
//! saturates the sum into the slave format and hands it to the slave with a plain write.
//!
//! `Engine` is the mixing half (pure: segment in, bytes out); `Pump` adds pacing and the
//! slave. Neither blocks: `Pump::service` does all the work that is due and says when to
//! call it again, so the process loop (`server`) can also watch its sockets, and tests can
//! drive it with a virtual clock.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::convert::{self, Converter};
use crate::lane::{Ctl, Geometry, HW_DRAINED, HW_RUNNING, State, Word, pos_add, pos_diff};
use crate::mix::{Format, Mixer};
use crate::segment::{Clock, DeviceParams, MAX_LANES, Segment};

/// What a client declared at hw_params time (validated before it is accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneSetup {
    pub format: Format,
    pub channels: u32,
    pub rate: u32,
    pub geometry: Geometry,
}

#[derive(Default)]
struct LaneState {
    setup: Option<LaneSetup>,
    /// Present unless the client matches the device in rate, channels and layout.
    conv: Option<Converter>,
    rate_out: u32,
    epoch: u16,
    /// Client frames consumed (lane position).
    hw: u64,
    /// Device frames produced for this lane in this epoch (mixed periods).
    out: u64,
    drained: bool,
    starved: bool,
}

impl LaneState {
    /// Device frames for `k` client frames (exact for a matching client).
    fn scale(&self, k: u64) -> u64 {
        match self.setup {
            Some(s) if self.conv.is_some() => (k as u128 * self.rate_out as u128 / s.rate as u128) as u64,
            _ => k,
        }
    }
}

/// Sums lanes into device periods.
pub struct Engine {
    seg: Arc<Segment>,
    dev: DeviceParams,
    lanes: Vec<LaneState>,
    mixer: Mixer,
    scratch: Vec<u8>,
    out: Vec<u8>,
    mix_pos: u64,
}

impl Engine {
    pub fn new(seg: Arc<Segment>) -> Result<Engine, String> {
        let dev = seg.device();
        let fmt = Format::lookup(dev.format).ok_or_else(|| format!("unsupported slave format {}", dev.format))?;
        let samples = dev.period_frames as usize * dev.channels as usize;
        Ok(Engine {
            seg,
            dev,
            lanes: (0..MAX_LANES).map(|_| LaneState::default()).collect(),
            mixer: Mixer::new(fmt, samples),
            scratch: Vec::new(),
            out: vec![0; samples * fmt.sample_bytes()],
            mix_pos: 0,
        })
    }

    pub fn mix_pos(&self) -> u64 {
        self.mix_pos
    }

    /// Gives slot `idx` to a new client: every word starts at zero (epoch 0, idle).
    pub fn attach(&mut self, idx: usize) {
        let s = self.seg.slot(idx);
        for w in [&s.ctl, &s.wake_at, &s.hw, &s.drain_end, &s.start_mix] {
            w.store(0, Ordering::Relaxed);
        }
        s.wake_armed.store(0, Ordering::Relaxed);
        s.underruns.store(0, Ordering::Release);
        self.lanes[idx] = LaneState::default();
    }

    /// Accepts or refuses a client's hw_params. The lane is not mixed until this succeeds.
    /// `bindings` (client channel, device channel) replace the standard channel mapping.
    pub fn setup(
        &mut self,
        idx: usize,
        format: Format,
        channels: u32,
        rate: u32,
        buffer_frames: u64,
        bindings: &[(u32, u32)],
    ) -> Result<(), String> {
        if !(convert::MIN_RATE..=convert::MAX_RATE).contains(&rate) {
            return Err(format!(
                "rate {rate} is outside {}..{} Hz",
                convert::MIN_RATE,
                convert::MAX_RATE
            ));
        }
        if channels == 0 || channels > convert::MAX_CHANNELS {
            return Err(format!(
                "{channels} channels; rdmix maps 1 to {}",
                convert::MAX_CHANNELS
            ));
        }
        if bindings.iter().any(|&(c, d)| c >= channels || d >= self.dev.channels) {
            return Err(format!(
                "bindings {bindings:?} do not fit {channels} channels on a {}-channel device",
                self.dev.channels
            ));
        }
        let frame_bytes = format.sample_bytes() * channels as usize;
        let geometry = usize::try_from(buffer_frames)
            .ok()
            .and_then(|b| Geometry::new(frame_bytes, b))
            .ok_or_else(|| format!("a buffer of {buffer_frames} frames of {frame_bytes} bytes does not fit a lane"))?;
        let dev_map = self.seg.chmap();
        let matrix = if bindings.is_empty() {
            convert::matrix(&convert::standard_map(channels), &dev_map)
        } else {
            convert::binding_matrix(bindings, self.dev.channels as usize)
        };
        let identity = bindings.is_empty() && channels == self.dev.channels;
        let conv = if identity && rate == self.dev.rate {
            None // the client matches the device: the plain integer path, no conversion
        } else {
            Some(Converter::new(
                format,
                rate,
                channels as usize,
                self.dev.rate,
                self.dev.period_frames as usize,
                matrix,
            )?)
        };
        self.lanes[idx] = LaneState {
            setup: Some(LaneSetup {
                format,
                channels,
                rate,
                geometry,
            }),
            conv,
            rate_out: self.dev.rate,
            ..LaneState::default()
        };
        Ok(())
    }

    pub fn detach(&mut self, idx: usize) {
        self.lanes[idx] = LaneState::default();
    }

    /// Mixes the next device period. Lanes whose wake-up fell due are pushed onto `wake`.
    pub fn mix_period(&mut self, wake: &mut Vec<usize>) -> &[u8] {
        let period = self.dev.period_frames as u64;
        let ch = self.dev.channels as usize;
        self.mixer.clear(period as usize * ch);
        for (idx, st) in self.lanes.iter_mut().enumerate() {
            let Some(setup) = st.setup else { continue };
            let slot = self.seg.slot(idx);
            // A slot with an impossible state tag is treated as stopped: it hurts only its owner.
            let Some(ctl) = Ctl::load(slot) else { continue };
            if ctl.epoch != st.epoch {
                // A new epoch (prepare): positions restart, and so does the converter.
                let conv = st.conv.take().map(|mut c| {
                    c.reset();
                    c
                });
                *st = LaneState {
                    setup: Some(setup),
                    conv,
                    rate_out: st.rate_out,
                    epoch: ctl.epoch,
                    ..LaneState::default()
                };
                slot.hw.store(
                    Word {
                        epoch: st.epoch,
                        tag: 0,
                        pos: 0,
                    }
                    .pack(),
                    Ordering::Release,
                );
            }
            if !matches!(ctl.state, State::Running | State::Draining) || st.drained {
                continue;
            }
            // Where this lane's frame 0 sits in the device stream (a pause moves it on).
            let delay = st.conv.as_ref().map_or(0, |c| c.delay_frames() as u64);
            let origin = self.mix_pos.wrapping_sub(st.out).wrapping_add(delay);
            slot.start_mix.store(origin, Ordering::Relaxed);
            let g = setup.geometry;
            let need = st.conv.as_ref().map_or(period, |c| c.input_frames_next() as u64);
            // Never trust the client's position: clamp it to what its ring can hold.
            let queued = pos_diff(ctl.appl, st.hw).clamp(0, g.buffer_frames as i64) as u64;
            let n = queued.min(need) as usize;
            self.scratch.resize(n * g.frame_bytes, 0);
            if n > 0 {
                g.read(&self.seg, idx, st.hw, &mut self.scratch);
            }
            match &mut st.conv {
                Some(c) => c.process(&self.scratch, &mut self.mixer),
                None if n > 0 => self.mixer.add(setup.format, &self.scratch),
                None => {}
            }
            st.out += period;
            let mut tag = HW_RUNNING;
            if ctl.state == State::Draining && queued <= need {
                // Everything is in; the lane is done once the device stream has passed its
                // last frame (for a converted lane, the resampler's tail included).
                st.hw = pos_add(st.hw, n as i64);
                let end = origin.wrapping_add(st.scale(st.hw));
                if self.mix_pos + period >= end {
                    st.drained = true;
                    tag |= HW_DRAINED;
                    slot.drain_end.store(end, Ordering::Relaxed);
                    wake.push(idx);
                }
            } else {
                // The device clock moves on whether or not the client kept up, as on hardware.
                st.hw = pos_add(st.hw, need as i64);
                if (n as u64) < need && !st.starved {
                    slot.underruns.fetch_add(1, Ordering::Relaxed);
                }
                st.starved = (n as u64) < need;
            }
            slot.hw.store(
                Word {
                    epoch: st.epoch,
                    tag,
                    pos: st.hw,
                }
                .pack(),
                Ordering::Release,
            );
            if tag & HW_DRAINED == 0
                && slot.wake_armed.load(Ordering::Acquire) != 0
                && pos_diff(st.hw, slot.wake_at.load(Ordering::Acquire)) >= 0
                && slot.wake_armed.swap(0, Ordering::AcqRel) != 0
            {
                wake.push(idx);
            }
        }
        self.mixer.finish(&mut self.out);
        self.mix_pos += period;
        &self.out
    }
}

/// A PCM the pump can feed: only non-blocking interleaved writes are needed.
pub trait Slave {
    /// Writes whole frames; returns frames taken, or a negative errno (`-EAGAIN` when full).
    fn write(&mut self, buf: &[u8], frames: usize) -> Result<usize, i32>;
    /// Frames the slave can take now.
    fn avail(&mut self) -> Result<usize, i32>;
    /// Frames queued in the slave and not yet played.
    fn delay(&mut self) -> Result<i64, i32>;
    /// Recovers from an xrun or suspend reported as `err`.
    fn recover(&mut self, err: i32) -> Result<(), i32>;
}

/// Frames that take `ns` nanoseconds at `rate`.
fn frames_in(ns: u64, rate: u32) -> u64 {
    (ns as u128 * rate as u128 / 1_000_000_000) as u64
}

fn ns_for(frames: u64, rate: u32) -> u64 {
    (frames as u128 * 1_000_000_000 / rate as u128) as u64
}

/// What the pump did, for its owner and its tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub periods: u64,
    pub slave_xruns: u32,
}

/// The engine plus pacing: keeps the slave fed without running ahead of real time.
pub struct Pump<S: Slave> {
    pub engine: Engine,
    pub slave: S,
    /// The slave has shown a non-zero delay, so it consumes in real time and its own
    /// buffer paces us; otherwise (`null`, `file`) CLOCK_MONOTONIC does.
    paced: bool,
    anchor_ns: u64,
    anchor_frames: u64,
    last_progress_ns: u64,
    pub stats: Stats,
    /// A mixed period (or its tail) the slave has not taken yet.
    pending: Vec<u8>,
    pending_off: usize,
}

/// How long a paced slave may refuse data before the pump declares it wedged.
pub fn stall_limit_ns(dev: &DeviceParams) -> u64 {
    (4 * ns_for(dev.buffer_frames as u64, dev.rate)).max(2_000_000_000)
}

impl<S: Slave> Pump<S> {
    pub fn new(engine: Engine, slave: S, now_ns: u64) -> Pump<S> {
        Pump {
            engine,
            slave,
            paced: false,
            anchor_ns: now_ns,
            anchor_frames: 0,
            last_progress_ns: now_ns,
            stats: Stats::default(),
            pending: Vec::new(),
            pending_off: 0,
        }
    }

    /// Frames the slave still holds at `now_ns`, by its own report or by the clock.
    fn queued(&mut self, now_ns: u64) -> Result<u64, i32> {
        let dev = self.engine.dev;
        if self.paced {
            return match self.slave.delay() {
                Ok(d) => Ok(d.clamp(0, dev.buffer_frames as i64) as u64),
                Err(e) => self.recover(e).map(|_| 0),
            };
        }
        let played = self.anchor_frames + frames_in(now_ns.saturating_sub(self.anchor_ns), dev.rate);
        let mix_pos = self.engine.mix_pos;
        if played >= mix_pos {
            // Ran dry (or just started): restart the virtual device clock at the current position.
            self.anchor_ns = now_ns;
            self.anchor_frames = mix_pos;
            return Ok(0);
        }
        Ok(mix_pos - played)
    }

    /// Mixes and writes every period that is due at `now_ns`. Returns the time at which the
    /// next one will be due; lanes whose wake-up fell due are pushed onto `wake`.
    pub fn service(&mut self, now_ns: u64, wake: &mut Vec<usize>) -> Result<u64, i32> {
        let dev = self.engine.dev;
        let period = dev.period_frames as u64;
        let period_ns = ns_for(period, dev.rate);
        loop {
            if !self.flush_pending()? {
                return Ok(now_ns + period_ns / 4);
            }
            let queued = self.queued(now_ns)?;
            let room = if self.paced {
                match self.slave.avail() {
                    Ok(a) => a as u64,
                    Err(e) => {
                        self.recover(e)?;
                        continue;
                    }
                }
            } else {
                dev.buffer_frames as u64 - queued.min(dev.buffer_frames as u64)
            };
            if room < period {
                if self.paced && now_ns.saturating_sub(self.last_progress_ns) > stall_limit_ns(&dev) {
                    return Err(-libc::EIO);
                }
                self.publish(now_ns, queued);
                return Ok(now_ns + ns_for(period - room, dev.rate).max(period_ns / 8));
            }
            let buf = self.engine.mix_period(wake);
            self.pending.clear();
            self.pending.extend_from_slice(buf);
            self.stats.periods += 1;
            self.last_progress_ns = now_ns;
            self.flush_pending()?;
            if !self.paced && self.slave.delay().map(|d| d > 0).unwrap_or(false) {
                self.paced = true;
            }
            let queued = self.queued(now_ns).unwrap_or(0);
            self.publish(now_ns, queued);
        }
    }

    /// Writes what is left of the last mixed period. `Ok(false)` if the slave is full.
    fn flush_pending(&mut self) -> Result<bool, i32> {
        let fb = self.engine.dev.channels as usize * self.engine.mixer.format().sample_bytes();
        while self.pending_off < self.pending.len() {
            let rest = &self.pending[self.pending_off..];
            match self.slave.write(rest, rest.len() / fb) {
                Ok(0) => return Ok(false),
                Ok(n) => self.pending_off += n * fb,
                Err(e) if e == -libc::EAGAIN => return Ok(false),
                Err(e) => self.recover(e)?,
            }
        }
        self.pending.clear();
        self.pending_off = 0;
        Ok(true)
    }

    fn recover(&mut self, err: i32) -> Result<(), i32> {
        if err == -libc::EPIPE || err == -libc::ESTRPIPE || err == -libc::EINTR {
            self.stats.slave_xruns += 1;
            self.engine.seg.header().slave_xruns.fetch_add(1, Ordering::Relaxed);
            return self.slave.recover(err);
        }
        Err(err)
    }

    fn publish(&self, now_ns: u64, queued: u64) {
        self.engine.seg.publish_clock(Clock {
            mix_pos: self.engine.mix_pos,
            slave_delay: queued,
            tstamp_ns: now_ns,
        });
    }

    /// Marks the segment failed, so clients report the errno instead of waiting.
    pub fn fail(&self, err: i32) {
        self.engine.seg.header().failed.store(err, Ordering::Release);
    }
}
