//! The client PCM: what each program that opens rdmix runs, behind ioplug's callbacks.
//!
//! It never touches the device. Its lane is its DMA buffer: `transfer` copies frames in,
//! `pointer` reports how far the pump has mixed them, and the eventfd the pump signals is
//! its poll descriptor. Every method here is safe Rust; `boundary::ioplug` calls them.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::control::{self, Attachment, Failure, Incoming, Msg, REPLY, SETUP};
use crate::lane::{Ctl, Geometry, HW_DRAINED, HW_RUNNING, POS_MASK, State, Word, pos_diff};
use crate::mix::Format;
use crate::segment::{DeviceParams, now_ns};
use crate::sys;

/// The ALSA-side view handed in by the boundary for each call.
#[derive(Clone, Copy, Debug)]
pub struct Io {
    pub appl_ptr: u64,
    pub state: alsa_sys::snd_pcm_state_t,
}

/// Hardware parameters the application chose.
#[derive(Clone, Copy, Debug)]
pub struct HwSetup {
    pub format: Format,
    pub channels: u32,
    pub rate: u32,
    pub period: u64,
    pub buffer: u64,
}

pub struct Client {
    pub cfg: Config,
    pub dev: DeviceParams,
    pub chmap: Vec<u32>,
    ev: OwnedFd,
    /// Wakes a poller while a drained stream plays out (the pump has nothing more to say).
    timer: OwnedFd,
    att: Option<Attachment>,
    hw: Option<HwSetup>,
    geom: Option<Geometry>,
    boundary: u64,
    avail_min: u64,
    stop_threshold: u64,
    epoch: u16,
    state: State,
    /// Unwrapped lane positions: frames written and frames the pump has consumed.
    appl: u64,
    hw_pos: u64,
    /// ioplug's appl_ptr when `appl` was last brought up to date (it can move without us:
    /// rewind and forward).
    io_appl: u64,
    /// Frames the slave still held when the stream was paused (delay is frozen while paused).
    paused_delay: i64,
    /// The errno with which the pump gave up on the slave, if it did.
    slave_failed: Option<i32>,
}

/// How stale the pump's clock may get before the client checks whether the pump is alive.
const STALE_NS: u64 = 40_000_000;

impl Client {
    /// Attaches to (or starts) the pump for `cfg`.
    pub fn open(cfg: Config) -> Result<Client, Failure> {
        let ev = sys::eventfd()
            .map_err(|e| Failure::new(e.raw_os_error().unwrap_or(libc::EMFILE), format!("rdmix: eventfd: {e}")))?;
        let timer = sys::timerfd()
            .map_err(|e| Failure::new(e.raw_os_error().unwrap_or(libc::EMFILE), format!("rdmix: timerfd: {e}")))?;
        let att = control::attach(&cfg, &ev)?;
        let dev = att.seg.device();
        if Format::lookup(dev.format).is_none() {
            return Err(Failure::new(
                libc::EPROTO,
                "rdmix: the pump runs a format this rdmix cannot read",
            ));
        }
        let chmap = att.seg.chmap();
        Ok(Client {
            cfg,
            dev,
            chmap,
            ev,
            timer,
            att: Some(att),
            hw: None,
            geom: None,
            boundary: u64::MAX,
            avail_min: 1,
            stop_threshold: 0,
            epoch: 0,
            state: State::Idle,
            appl: 0,
            hw_pos: 0,
            io_appl: 0,
            paused_delay: 0,
            slave_failed: None,
        })
    }

    pub fn poll_fd(&self) -> i32 {
        self.ev.as_raw_fd()
    }

    pub fn timer_fd(&self) -> i32 {
        self.timer.as_raw_fd()
    }

    pub fn sock_fd(&self) -> i32 {
        self.att
            .as_ref()
            .map(|a| a.sock.as_raw_fd())
            .unwrap_or(self.ev.as_raw_fd())
    }

    fn att(&self) -> Result<&Attachment, Failure> {
        self.att
            .as_ref()
            .ok_or_else(|| Failure::new(libc::ENODEV, "rdmix: the pump is gone; prepare to reconnect"))
    }

    /// Whether the pump is still there. Cheap while its clock is fresh.
    /// Lets go of a pump that is gone, remembering whether it gave up on the slave.
    fn lose_pump(&mut self) {
        if let Some(att) = self.att.take() {
            let failed = att.seg.header().failed.load(Ordering::Acquire);
            if failed != 0 {
                self.slave_failed = Some(failed);
            }
        }
    }

    fn pump_alive(&mut self) -> bool {
        let Some(att) = &self.att else { return false };
        if att.seg.header().failed.load(Ordering::Acquire) != 0 {
            self.lose_pump();
            return false;
        }
        let fresh = att
            .seg
            .clock()
            .map(|c| now_ns().saturating_sub(c.tstamp_ns) < STALE_NS)
            .unwrap_or(false);
        if fresh {
            return true;
        }
        let mut p = [sys::pollfd(att.sock.as_raw_fd(), libc::POLLIN)];
        if sys::poll(&mut p, 0).unwrap_or(0) > 0 && p[0].revents != 0 {
            // The pump only ever writes to us in answer to a request; anything now is a hang-up.
            self.lose_pump();
            return false;
        }
        true
    }

    fn publish(&self) {
        if let Some(att) = &self.att {
            Ctl {
                epoch: self.epoch,
                state: self.state,
                appl: self.appl & POS_MASK,
            }
            .store(att.seg.slot(att.slot));
        }
    }

    /// Reads the pump's position for our lane into `hw_pos`; returns the DRAINED flag.
    fn refresh_hw(&mut self) -> bool {
        let Some(att) = &self.att else { return false };
        let w = Word::unpack(att.seg.slot(att.slot).hw.load(Ordering::Acquire));
        if w.epoch != self.epoch {
            return false; // the pump has not seen this epoch yet: nothing consumed
        }
        let d = pos_diff(w.pos, self.hw_pos & POS_MASK);
        if d > 0 {
            self.hw_pos += d as u64;
        }
        w.tag & HW_DRAINED != 0
    }

    /// Brings `appl` in line with ioplug's appl_ptr (which rewind/forward move silently).
    fn sync_appl(&mut self, io: &Io) {
        let b = self.boundary.max(1);
        let mut d = (io.appl_ptr % b + b - self.io_appl % b) % b;
        let back = d > b / 2;
        if back {
            d = b - d;
        }
        if back {
            self.appl = self.appl.saturating_sub(d);
        } else {
            self.appl += d;
        }
        self.io_appl = io.appl_ptr;
    }

    /// Frames written but not yet consumed by the pump (negative after an underrun).
    fn queued(&self) -> i64 {
        self.appl as i64 - self.hw_pos as i64
    }

    fn arm_wake(&self) {
        let (Some(att), Some(hw)) = (&self.att, &self.hw) else {
            return;
        };
        let slot = att.seg.slot(att.slot);
        let at = (self.appl as i64 - hw.buffer as i64 + self.avail_min as i64).max(0) as u64;
        slot.wake_at.store(at & POS_MASK, Ordering::Release);
        slot.wake_armed.store(1, Ordering::Release);
    }

    pub fn hw_params(&mut self, hw: HwSetup) -> Result<(), Failure> {
        let frame_bytes = hw.format.sample_bytes() * hw.channels as usize;
        let geom = usize::try_from(hw.buffer)
            .ok()
            .and_then(|b| Geometry::new(frame_bytes, b))
            .ok_or_else(|| {
                Failure::new(
                    libc::EINVAL,
                    format!("rdmix: hw_params: a buffer of {} frames does not fit a lane", hw.buffer),
                )
            })?;
        self.state = State::Idle;
        self.publish();
        self.send_setup(&hw)?;
        self.hw = Some(hw);
        self.geom = Some(geom);
        Ok(())
    }

    fn send_setup(&self, hw: &HwSetup) -> Result<(), Failure> {
        let att = self.att()?;
        let mut m = Msg::new(SETUP).with_text(&control::format_bindings(&self.cfg.bindings));
        m.args = [hw.format.id as u64, hw.channels as u64, hw.rate as u64, hw.buffer];
        control::send(&att.sock, m, None)
            .map_err(|e| Failure::new(libc::EPIPE, format!("rdmix: hw_params: the pump is gone: {e}")))?;
        match control::recv_until(&att.sock, Instant::now() + Duration::from_secs(2)) {
            Ok(Incoming::Msg(r, _)) if r.kind == REPLY && r.status == 0 => Ok(()),
            Ok(Incoming::Msg(r, _)) if r.status < 0 => Err(Failure::new(r.status, r.text())),
            Ok(_) => Err(Failure::new(libc::EPIPE, "rdmix: hw_params: the pump hung up")),
            Err(e) => Err(Failure::new(
                libc::ETIMEDOUT,
                format!("rdmix: hw_params: the pump did not answer: {e}"),
            )),
        }
    }

    pub fn hw_free(&mut self) {
        self.state = State::Idle;
        self.publish();
        self.hw = None;
        self.geom = None;
    }

    pub fn sw_params(&mut self, boundary: u64, avail_min: u64, stop_threshold: u64) {
        self.boundary = boundary.max(1);
        self.avail_min = avail_min.max(1);
        self.stop_threshold = stop_threshold;
        self.arm_wake();
    }

    /// A new epoch: positions restart at zero, as ioplug's do. Reconnects if the pump died.
    pub fn prepare(&mut self) -> Result<(), Failure> {
        if !self.pump_alive() {
            // A pump that gave up on the device is not restarted behind the program's back:
            // the device is gone or broken, and the program should hear so.
            if let Some(e) = self.slave_failed {
                return Err(Failure::new(
                    e,
                    format!(
                        "rdmix: slave.pcm \"{}\" failed: {}; reopen the PCM once the device is back",
                        self.cfg.slave.pcm,
                        crate::boundary::pcm::strerror(e)
                    ),
                ));
            }
            // A pump that died (killed, crashed) is replaced: the program sees one xrun.
            let att = control::attach(&self.cfg, &self.ev)?;
            if att.seg.device() != self.dev {
                return Err(Failure::new(
                    libc::ENODEV,
                    "rdmix: the restarted pump runs the device differently; reopen the PCM",
                ));
            }
            self.att = Some(att);
            self.epoch = 0;
            if let Some(hw) = self.hw {
                self.send_setup(&hw)?;
            }
        }
        self.epoch = self.epoch.wrapping_add(1);
        self.state = State::Prepared;
        self.appl = 0;
        self.hw_pos = 0;
        self.io_appl = 0;
        self.paused_delay = 0;
        self.publish();
        sys::eventfd_clear(self.ev.as_fd());
        self.arm_wake();
        Ok(())
    }

    pub fn start(&mut self) -> Result<(), Failure> {
        if !self.pump_alive() {
            return Err(Failure::new(libc::EPIPE, "rdmix: start: the pump is gone"));
        }
        self.state = State::Running;
        self.publish();
        Ok(())
    }

    pub fn stop(&mut self) {
        self.state = State::Idle;
        self.publish();
        // A drain waiting in another thread wakes and sees the stream dropped.
        sys::eventfd_signal(self.ev.as_fd());
    }

    pub fn pause(&mut self, io: &Io, enable: bool) -> Result<(), Failure> {
        if enable {
            self.paused_delay = self.delay(io).unwrap_or(0);
            self.state = State::Paused;
        } else {
            self.state = State::Running;
        }
        self.publish();
        Ok(())
    }

    /// The hardware pointer for ioplug (modulo the boundary), or `Err` for an xrun.
    pub fn pointer(&mut self, io: &Io) -> Result<u64, i32> {
        if !self.pump_alive() {
            return Err(-libc::EPIPE);
        }
        self.refresh_hw();
        self.sync_appl(io);
        if self.state == State::Running {
            let buffer = self.hw.map(|h| h.buffer).unwrap_or(0) as i64;
            // An xrun is avail passing stop_threshold (never, if that is the boundary). The pump
            // takes a whole device period at once, so avail == buffer only means "all mixed";
            // the device has not played it yet and the client can still refill in time. Only
            // avail beyond that means the pump had to mix silence for us: a real underrun.
            if self.stop_threshold < self.boundary && buffer - self.queued() > self.stop_threshold as i64 {
                return Err(-libc::EPIPE);
            }
        }
        Ok(self.hw_pos % self.boundary)
    }

    /// Copies `frames` interleaved frames into the lane at ioplug's application pointer.
    pub fn transfer(&mut self, io: &Io, interleaved: &[u8], frames: u64) -> Result<u64, Failure> {
        let geom = self
            .geom
            .ok_or_else(|| Failure::new(libc::EBADFD, "rdmix: transfer before hw_params"))?;
        self.sync_appl(io);
        let att = self.att()?;
        geom.write(&att.seg, att.slot, self.appl & POS_MASK, interleaved);
        self.appl += frames;
        self.io_appl = io.appl_ptr + frames;
        self.publish();
        self.arm_wake();
        Ok(frames)
    }

    pub fn frame_bytes(&self) -> Option<usize> {
        self.hw.map(|h| h.format.sample_bytes() * h.channels as usize)
    }

    /// Frames queued in the lane plus frames queued in the slave.
    pub fn delay(&mut self, io: &Io) -> Result<i64, Failure> {
        if io.state == alsa_sys::SND_PCM_STATE_XRUN {
            return Err(Failure::new(libc::EPIPE, ""));
        }
        if self.state == State::Paused {
            return Ok(self.paused_delay);
        }
        if !self.pump_alive() {
            return Err(Failure::new(libc::EPIPE, "rdmix: the pump is gone"));
        }
        self.refresh_hw();
        let att = self.att()?;
        if !matches!(self.state, State::Running | State::Draining) {
            return Ok(self.queued());
        }
        let slot = att.seg.slot(att.slot);
        let clock = att.seg.clock().unwrap_or_default();
        let played = clock.played_at(now_ns(), self.dev.rate);
        let w = Word::unpack(slot.hw.load(Ordering::Acquire));
        // Where our last written frame sits in the device stream, minus what the device has
        // played. Until the pump has mixed us, the lane starts at the current mix position.
        let start = if w.epoch == self.epoch && w.tag & HW_RUNNING != 0 {
            slot.start_mix.load(Ordering::Relaxed)
        } else {
            clock.mix_pos.wrapping_sub(self.to_device(self.hw_pos))
        };
        let device_frames = start.wrapping_add(self.to_device(self.appl)) as i64 - played as i64;
        Ok(self.to_client(device_frames))
    }

    /// Client frames as device frames (the two differ when the pump resamples).
    fn to_device(&self, frames: u64) -> u64 {
        match self.hw {
            Some(h) if h.rate != self.dev.rate => (frames as u128 * self.dev.rate as u128 / h.rate as u128) as u64,
            _ => frames,
        }
    }

    fn to_client(&self, frames: i64) -> i64 {
        match self.hw {
            Some(h) if h.rate != self.dev.rate => (frames as i128 * h.rate as i128 / self.dev.rate as i128) as i64,
            _ => frames,
        }
    }

    /// The channel map a client with `channels` channels plays: the device's own when it
    /// matches, the configured bindings' device positions, or ALSA's standard layout.
    pub fn client_chmap(&self, channels: u32) -> Vec<u32> {
        if !self.cfg.bindings.is_empty() {
            let mut m = vec![alsa_sys::SND_CHMAP_UNKNOWN; self.cfg.bindings.len()];
            for &(c, d) in &self.cfg.bindings {
                if let (Some(slot), Some(pos)) = (m.get_mut(c as usize), self.chmap.get(d as usize)) {
                    *slot = *pos;
                }
            }
            return m;
        }
        if channels == self.dev.channels {
            return self.chmap.clone();
        }
        crate::convert::standard_map(channels)
    }

    /// Channel counts a client may open with.
    pub fn channel_range(&self) -> (u32, u32) {
        match self.cfg.bindings.len() as u32 {
            0 => (1, crate::convert::MAX_CHANNELS),
            n => (n, n),
        }
    }

    /// Wakes pending since the last poll; returns POLLOUT/POLLERR for ioplug.
    pub fn poll_revents(&mut self, io: &Io, sock_revents: i16) -> i16 {
        sys::eventfd_clear(self.ev.as_fd());
        sys::eventfd_clear(self.timer.as_fd()); // a timerfd reads like an eventfd
        if sock_revents != 0 || !self.pump_alive() {
            self.lose_pump();
            return libc::POLLOUT | libc::POLLERR;
        }
        let drained = self.refresh_hw();
        self.sync_appl(io);
        let ready = |c: &Client| match io.state {
            alsa_sys::SND_PCM_STATE_XRUN => true,
            alsa_sys::SND_PCM_STATE_DRAINING => drained && c.drain_remaining_ns().is_some_and(|r| r == 0),
            _ => {
                let buffer = c.hw.map(|h| h.buffer).unwrap_or(0) as i64;
                buffer - c.queued() >= c.avail_min as i64
            }
        };
        if ready(self) {
            return libc::POLLOUT;
        }
        if io.state == alsa_sys::SND_PCM_STATE_DRAINING
            && let Some(ns) = self.drain_remaining_ns()
        {
            // Everything is mixed; the device is still playing it out. Wake when it should be done.
            sys::timerfd_arm(self.timer.as_fd(), ns.max(1));
            return 0;
        }
        self.arm_wake();
        // The pump may have moved between our check and arming: look once more.
        self.refresh_hw();
        if ready(self) {
            sys::eventfd_signal(self.ev.as_fd());
            return libc::POLLOUT;
        }
        0
    }

    /// Begins a drain: the pump mixes what is queued, then marks the lane drained.
    pub fn begin_drain(&mut self) {
        if self.state != State::Draining {
            self.state = State::Draining;
            self.publish();
        }
    }

    /// `Some(ns)` until the drained lane's last frame has been played; `None` while the pump
    /// is still mixing the lane.
    fn drain_remaining_ns(&self) -> Option<u64> {
        let att = self.att.as_ref()?;
        let slot = att.seg.slot(att.slot);
        let w = Word::unpack(slot.hw.load(Ordering::Acquire));
        if w.epoch != self.epoch || w.tag & HW_DRAINED == 0 {
            return None;
        }
        let end = slot.drain_end.load(Ordering::Relaxed);
        let c = att.seg.clock()?;
        let now = now_ns();
        let played = c.played_at(now, self.dev.rate);
        Some(if played >= end {
            0
        } else {
            (end - played) * 1_000_000_000 / self.dev.rate as u64
        })
    }

    /// One step of a drain: `Ok(true)` when done, `Ok(false)` to wait and call again.
    /// The wait happens in `drain_wait`, outside the client lock.
    pub fn drain_step(&mut self) -> Result<Option<(i32, i32, u64)>, Failure> {
        if !self.pump_alive() {
            return Err(Failure::new(
                libc::EPIPE,
                "rdmix: drain: the pump is gone; the queued frames are lost",
            ));
        }
        self.refresh_hw();
        match self.drain_remaining_ns() {
            Some(0) => Ok(None),
            Some(ns) => Ok(Some((self.ev.as_raw_fd(), self.sock_fd(), ns))),
            None => {
                self.arm_wake_drained();
                let period_ns = self.dev.period_frames as u64 * 1_000_000_000 / self.dev.rate as u64;
                Ok(Some((self.ev.as_raw_fd(), self.sock_fd(), period_ns)))
            }
        }
    }

    fn arm_wake_drained(&self) {
        if let Some(att) = &self.att {
            let slot = att.seg.slot(att.slot);
            slot.wake_at.store(self.appl & POS_MASK, Ordering::Release);
            slot.wake_armed.store(1, Ordering::Release);
        }
    }

    /// The longest a drain may take before rdmix reports the device stuck.
    pub fn drain_deadline(&self) -> Instant {
        let queued = self.to_device(self.queued().max(0) as u64) + self.dev.buffer_frames as u64;
        Instant::now() + Duration::from_nanos(queued * 1_000_000_000 / self.dev.rate as u64) + Duration::from_secs(2)
    }
}

/// Sleeps until the eventfd or the socket wakes, or `ns` pass.
pub fn drain_wait(ev: i32, sock: i32, ns: u64) {
    let mut p = [sys::pollfd(ev, libc::POLLIN), sys::pollfd(sock, libc::POLLIN)];
    let ms = ns.div_ceil(1_000_000).clamp(1, 200) as i32;
    let _ = sys::poll(&mut p, ms);
}
