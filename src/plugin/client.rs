//! The client PCM: what each program that opens rdmix runs, behind ioplug's callbacks.
//!
//! It never touches the device. Its lane is its DMA buffer: the program's frames go into
//! it (playback) or come out of it (capture), `pointer` reports how far the pump has moved
//! them, and the wake-up pipe the pump pokes is its poll descriptor.
//!
//! `Client<D>` is what both directions share: the attachment and its reconnection, the
//! lane positions and state, the stall watch, hw and sw params, and the callbacks whose
//! answers each direction gives in its own table (`D::poll`, `D::pointer`, `D::delay`: see
//! `play` and `record`). What a direction does that the other does not (copying in or out,
//! draining) is its own, behind `Direction`.
//!
//! The client trusts the pump no further than it must: a pump that stops advancing while
//! this stream runs is declared stalled after `stall_limit_ns` plus a margin (a pump with a
//! wedged slave reports that itself, sooner), and the stream then fails instead of waiting.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use alsa_sys as a;

use super::attach::{Attachment, attach};
use super::state::{Delay, Phase, Pointer, Poll, Pump};
use crate::alsa::ioplug::{DrainStep, HwChoice, IoView, Plugin, Revents, Space, SwChoice};
use crate::alsa::strerror;
use crate::config::Config;
use crate::dsp::chmap::standard_map;
use crate::dsp::convert::{MAX_CHANNELS, MAX_RATE, MIN_RATE};
use crate::dsp::format::{FORMATS, Format};
use crate::error::{Error, Result};
use crate::shm::clock::{STALL_MARGIN_NS, frames_to_ns, ns_to_frames, rescale, stall_limit_ns};
use crate::shm::ring::{Ctl, Geometry, Mixed, POS_MASK, State, pos_diff};
use crate::shm::segment::DeviceParams;
use crate::sys;
use crate::sys::time::now_ns;
use crate::wire::{self, Incoming, Msg, REPLY, SETUP, Stream};

/// What one direction decides, where the two differ. Its tables say what poll, the
/// pointer and delay report in each phase; the rest is how its frames move.
pub trait Direction: Sized + Send + 'static {
    const STREAM: Stream;
    /// What a ready stream's poll reports: POLLOUT (room to write) or POLLIN (frames to read).
    const EVENTS: i16;
    /// The largest client buffer a lane holds, in bytes.
    const MAX_BUFFER_BYTES: usize;
    fn poll(phase: Phase) -> Poll;
    fn pointer(phase: Phase) -> Pointer;
    fn delay(phase: Phase) -> Delay;
    /// Whether a stream in `state` can only go on while the pump advances.
    fn needs_pump(state: State) -> bool;
    /// Frames in the lane, from the program's position `appl` and the pump's `pumped`.
    fn in_lane(appl: u64, pumped: u64) -> i64;
    /// Frames the program can move now, with `in_lane` in a buffer of `buffer`.
    fn avail(in_lane: i64, buffer: i64) -> i64;
    /// Whether `avail` has passed the stop threshold: an xrun.
    fn xrun(avail: i64, stop_threshold: u64) -> bool;
    /// Where the pump takes the stream for stopped, as the lane's `stop_after` says.
    fn stop_after(stop_threshold: u64, buffer: u64) -> u64;
    /// The lane position at which the pump should wake a program waiting for `avail_min`.
    fn wake_at(appl: u64, buffer: u64, avail_min: u64) -> u64;
    /// The ring a client of `frame_bytes`-byte frames and a `buffer`-frame buffer uses.
    fn geometry(frame_bytes: usize, buffer: u64) -> Option<Geometry>;
    /// The pump's word for the lane, read through this direction's end.
    fn word(att: &Attachment) -> Mixed;
    /// Asks the pump for a wake-up at lane position `at`.
    fn arm(att: &Attachment, at: u64);
    /// Playback: takes the program's frames into the lane.
    fn transfer(c: &mut Client<Self>, io: &IoView, interleaved: &[u8], frames: u64) -> Result<u64>;
    /// Capture: copies frames out of the lane for the program.
    fn capture(c: &mut Client<Self>, io: &IoView, out: &mut [u8], frames: u64) -> Result<u64>;
    fn drain_begin(c: &mut Client<Self>) -> Instant;
    fn drain_step(c: &mut Client<Self>) -> Result<DrainStep>;
    fn drain_capture(c: &mut Client<Self>) -> bool;
}

/// A callback that only the other direction's streams get.
pub fn wrong_way(what: &str) -> Error {
    Error::new(
        libc::EBADFD,
        format!("rdmix: {what} on a stream of the other direction"),
    )
}

/// The hardware parameters the application chose.
#[derive(Clone, Copy, Debug)]
pub struct ClientParams {
    pub format: Format,
    pub channels: u32,
    pub rate: u32,
    pub period: u64,
    pub buffer: u64,
}

pub struct Client<D> {
    cfg: Config,
    dev: DeviceParams,
    chmap: Vec<u32>,
    /// Wakes a poller when the pump cannot: while a drained stream plays out, when the
    /// stream must look at the pump again (a stall watchdog), and when the client wakes
    /// itself (another thread's drain, a lost pump).
    timer: OwnedFd,
    att: Option<Attachment>,
    params: Option<ClientParams>,
    geom: Option<Geometry>,
    boundary: u64,
    avail_min: u64,
    stop_threshold: u64,
    epoch: u16,
    /// The lane state published for the pump.
    state: State,
    /// Unwrapped lane positions: frames written (read, for capture), and frames the pump has
    /// consumed (captured).
    appl: u64,
    pumped: u64,
    /// ioplug's appl_ptr when `appl` was last brought up to date (it can move without us:
    /// rewind and forward).
    io_appl: u64,
    /// The delay when the stream was paused (it is frozen while paused).
    paused_delay: i64,
    /// The errno with which the pump gave up on the slave, if it did.
    slave_failed: Option<i32>,
    /// Since when the stream has needed the pump to advance (it was started or resumed).
    expect_since_ns: u64,
    /// Why the pump was let go of as stalled, if it was.
    stalled: Option<Error>,
    _dir: std::marker::PhantomData<D>,
}

/// How stale the pump's clock may get, beyond the device's buffer time, before the client
/// checks whether the pump is alive. (A pump may take up to half the buffer per wake-up,
/// and publishes its clock once per wake-up; sooner, every call would cost a system call.)
const STALE_MARGIN_NS: u64 = 40_000_000;

fn pump_gone(what: &str) -> Error {
    Error::new(libc::EPIPE, format!("rdmix: {what}: the pump is gone"))
}

impl<D: Direction> Client<D> {
    /// Attaches to (or starts) the pump for `cfg` in this direction.
    pub fn open(cfg: Config) -> Result<Client<D>> {
        let timer = sys::fd::timerfd().map_err(|e| Error::io("rdmix: timerfd", e))?;
        let att = attach(&cfg, D::STREAM)?;
        let dev = att.seg.device();
        if Format::lookup(dev.format).is_none() {
            return Err(Error::new(
                libc::EPROTO,
                "rdmix: the pump runs a format this rdmix cannot read",
            ));
        }
        let chmap = att.seg.chmap();
        Ok(Client {
            cfg,
            dev,
            chmap,
            timer,
            att: Some(att),
            params: None,
            geom: None,
            boundary: u64::MAX,
            avail_min: 1,
            stop_threshold: 0,
            epoch: 0,
            state: State::Idle,
            appl: 0,
            pumped: 0,
            io_appl: 0,
            paused_delay: 0,
            slave_failed: None,
            expect_since_ns: 0,
            stalled: None,
            _dir: std::marker::PhantomData,
        })
    }

    /// The control socket, or the timer once the pump is gone.
    fn sock_fd(&self) -> i32 {
        self.att
            .as_ref()
            .map(|a| a.sock.as_raw_fd())
            .unwrap_or(self.timer.as_raw_fd())
    }

    /// The wake-up pipe the pump pokes, or the timer once the pump is gone.
    fn wake_fd(&self) -> i32 {
        self.att
            .as_ref()
            .map(|a| a.wake.as_raw_fd())
            .unwrap_or(self.timer.as_raw_fd())
    }

    /// Empties the wake-up pipe: whoever calls this is looking at the stream now.
    pub(super) fn spend_wakeups(&self) {
        if let Some(att) = &self.att {
            sys::fd::drain(att.wake.as_fd());
        }
    }

    /// Makes the poll descriptors readable now: whoever polls looks at the stream again.
    pub(super) fn wake_self(&self) {
        sys::fd::timerfd_arm(self.timer.as_fd(), 1);
    }

    /// How long this stream lets the pump stand still while it runs.
    fn stall_limit(&self) -> u64 {
        stall_limit_ns(&self.dev) + STALL_MARGIN_NS
    }

    fn att(&self) -> Result<&Attachment> {
        self.att
            .as_ref()
            .ok_or_else(|| Error::new(libc::ENODEV, "rdmix: the pump is gone; prepare to reconnect"))
    }

    /// Lets go of a pump that is gone, remembering whether it gave up on the slave, and
    /// wakes any poller so that it sees.
    pub(super) fn lose_pump(&mut self) {
        if let Some(att) = self.att.take() {
            if let Some(failed) = att.seg.failed() {
                self.slave_failed = Some(failed);
            }
            self.wake_self();
        }
    }

    /// Whether the pump is still there; lets go of it if not. Cheap while its clock is fresh.
    pub(super) fn pump_alive(&mut self) -> bool {
        let Some(att) = &self.att else { return false };
        if att.seg.failed().is_some() {
            self.lose_pump();
            return false;
        }
        let now = now_ns();
        let tstamp = att.seg.clock().map_or(0, |c| c.tstamp_ns);
        if now.saturating_sub(tstamp) < frames_to_ns(self.dev.buffer_frames as u64, self.dev.rate) + STALE_MARGIN_NS {
            return true;
        }
        let mut p = [sys::fd::pollfd(att.sock.as_raw_fd(), libc::POLLIN)];
        if sys::fd::poll(&mut p, 0).unwrap_or(0) > 0 && p[0].revents != 0 {
            // The pump only ever writes to us in answer to a request; anything now is a hang-up.
            self.lose_pump();
            return false;
        }
        let still = now.saturating_sub(tstamp.max(self.expect_since_ns));
        if self.needs_pump() && still > self.stall_limit() {
            self.stalled = Some(Error::new(
                libc::EIO,
                format!(
                    "rdmix: ipc_key {:#x}: the pump (pid {}) stopped advancing for {} ms while this stream ran; \
                     reopen the PCM",
                    self.cfg.ipc_key,
                    att.pump_pid,
                    still / 1_000_000
                ),
            ));
            self.lose_pump();
            return false;
        }
        true
    }

    /// Whether the stream can only go on while the pump advances.
    fn needs_pump(&self) -> bool {
        D::needs_pump(self.state)
    }

    /// The stream's phase (see `state`): asks whether the pump is alive, and reads how far
    /// it has consumed the lane.
    pub(super) fn phase(&mut self, io: &IoView) -> Phase {
        let pump = if self.pump_alive() { self.refresh() } else { Pump::Gone };
        Phase::of(io.state, pump)
    }

    /// Tells the pump where this stream stops when it runs dry (see `pointer`), so that an
    /// xrun stream does not keep the pump and the device awake.
    fn publish_stop_after(&self) {
        let Some(att) = &self.att else { return };
        if self.stop_threshold >= self.boundary {
            att.lane().set_stop_after(u64::MAX);
            return;
        }
        let after = D::stop_after(self.stop_threshold, self.buffer() as u64);
        att.lane().set_stop_after(after);
    }

    /// Tells the pump this lane now wants mixing: a pump that stopped the device while
    /// nobody played starts it again. Never waits.
    fn kick(&self) {
        if let Some(att) = &self.att {
            wire::kick(&att.sock);
        }
    }

    /// Tells a playback pump this lane stopped wanting mixing (pause, drop), so that it can
    /// take the lane's frames back from a slave filled far ahead. A capture pump has nothing
    /// to take back, and stops its device by itself.
    fn kick_leaving(&self) {
        if D::STREAM == Stream::Playback {
            self.kick();
        }
    }

    pub(super) fn publish(&self) {
        if let Some(att) = &self.att {
            att.lane().publish(Ctl {
                epoch: self.epoch,
                state: self.state,
                appl: self.appl & POS_MASK,
            });
        }
    }

    /// The pump's word for our lane.
    pub(super) fn pump_word(&self) -> Option<Mixed> {
        self.att.as_ref().map(D::word)
    }

    /// Reads the pump's word for our lane into `consumed`; returns what it says of the lane.
    pub(super) fn refresh(&mut self) -> Pump {
        let Some(m) = self.pump_word() else { return Pump::Mixing };
        if m.epoch != self.epoch {
            return Pump::Mixing; // the pump has not seen this epoch yet: nothing consumed
        }
        let d = pos_diff(m.consumed, self.pumped & POS_MASK);
        if d > 0 {
            self.pumped += d as u64;
        }
        match () {
            _ if m.stopped => Pump::Stopped,
            _ if m.drained => Pump::Drained,
            _ => Pump::Mixing,
        }
    }

    /// Brings `appl` in line with ioplug's appl_ptr (which rewind/forward move silently).
    pub(super) fn sync_appl(&mut self, io: &IoView) {
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

    /// Frames in the lane: written and not yet mixed, or captured and not yet read.
    pub(super) fn in_lane(&self) -> i64 {
        D::in_lane(self.appl, self.pumped)
    }

    /// Frames the program can move now.
    pub(super) fn avail(&self) -> i64 {
        D::avail(self.in_lane(), self.buffer())
    }

    pub(super) fn buffer(&self) -> i64 {
        self.params.map_or(0, |p| p.buffer as i64)
    }

    pub(super) fn avail_reached(&self) -> bool {
        self.avail() >= self.avail_min as i64
    }

    /// Asks the pump for a wake-up when avail reaches avail_min. While the pump must
    /// advance for that to come, a watchdog makes sure a poller looks again before the
    /// stall limit: a pump that stands still is then noticed instead of waited on forever.
    pub(super) fn arm_wake(&self) {
        self.arm_pump_wake();
        self.arm_watchdog();
    }

    /// The pump's half of `arm_wake`: a wake-up when avail reaches avail_min.
    pub(super) fn arm_pump_wake(&self) {
        let (Some(att), Some(p)) = (&self.att, &self.params) else {
            return;
        };
        D::arm(att, D::wake_at(self.appl, p.buffer, self.avail_min));
    }

    /// After a transfer: where the program can move avail_min more at once (`ready`), the
    /// descriptors stay readable, since poll on a PCM is level-triggered and a program that
    /// moved less than there was may poll before it moves more. Otherwise the timer goes
    /// back to the watchdog. Each transfer decides anew: of one split at the ring's end, the
    /// last part has the say.
    pub(super) fn after_transfer(&self, ready: bool) {
        if ready {
            self.wake_self();
        } else if self.needs_pump() {
            self.arm_watchdog();
        } else {
            sys::fd::timerfd_arm(self.timer.as_fd(), 0);
        }
    }

    /// While the stream needs the pump to advance, makes a poller look again before the
    /// stall limit passes.
    fn arm_watchdog(&self) {
        if self.needs_pump() {
            sys::fd::timerfd_arm(self.timer.as_fd(), self.stall_limit() / 2);
        }
    }

    /// The stream now needs the pump to advance.
    fn expect_progress(&mut self) {
        self.expect_since_ns = now_ns();
    }

    fn send_setup(&self, p: &ClientParams) -> Result<()> {
        let att = self.att()?;
        let mut m = Msg::new(SETUP);
        m.args = [p.format.id as u64, p.channels as u64, p.rate as u64, p.buffer];
        wire::send(&att.sock, &m, &[])
            .map_err(|e| Error::new(libc::EPIPE, format!("rdmix: hw_params: the pump is gone: {e}")))?;
        match wire::recv_until(&att.sock, Instant::now() + Duration::from_secs(2)) {
            Ok(Incoming::Msg(r, _)) if r.kind == REPLY => r.refusal().map_or(Ok(()), Err),
            Ok(_) => Err(Error::new(libc::EPIPE, "rdmix: hw_params: the pump hung up")),
            Err(e) => Err(Error::new(
                libc::ETIMEDOUT,
                format!("rdmix: hw_params: the pump did not answer: {e}"),
            )),
        }
    }

    /// Client frames as device frames (the two differ when the pump resamples).
    fn to_device(&self, frames: u64) -> u64 {
        self.params
            .map_or(frames, |p| rescale(frames as i64, p.rate, self.dev.rate) as u64)
    }

    pub(super) fn to_client(&self, frames: i64) -> i64 {
        self.params.map_or(frames, |p| rescale(frames, self.dev.rate, p.rate))
    }

    /// Frames queued in the lane plus frames queued in the slave, by the pump's clock.
    fn device_delay(&self) -> Result<i64> {
        let att = self.att()?;
        let lane = att.lane();
        let clock = att.seg.clock().unwrap_or_default();
        let played = clock.played_at(now_ns(), self.dev.rate);
        let m = lane.mixed();
        // Where our last written frame sits in the device stream, minus what the device has
        // played. Until the pump has mixed us, the lane starts at the current mix position.
        let start = if m.epoch == self.epoch && m.running {
            lane.start_mix()
        } else {
            clock.mix_pos.wrapping_sub(self.to_device(self.pumped))
        };
        let device_frames = start.wrapping_add(self.to_device(self.appl)) as i64 - played as i64;
        Ok(self.to_client(device_frames))
    }

    /// `Some(ns)` until the drained lane's last frame has been played; `None` while the pump
    /// is still mixing the lane.
    pub(super) fn drain_remaining_ns(&self) -> Option<u64> {
        let att = self.att.as_ref()?;
        let lane = att.lane();
        let m = lane.mixed();
        if m.epoch != self.epoch || !m.drained {
            return None;
        }
        let end = lane.drain_end();
        let played = att.seg.clock()?.played_at(now_ns(), self.dev.rate);
        Some(frames_to_ns(end.saturating_sub(played), self.dev.rate))
    }

    /// The channel map a client with `channels` channels plays: the device's own when it
    /// matches, the configured bindings' device positions, or ALSA's standard layout.
    pub fn client_chmap(&self, channels: u32) -> Vec<u32> {
        let b = &self.cfg.bindings;
        if !b.is_empty() {
            let mut m = vec![a::SND_CHMAP_UNKNOWN; b.channels() as usize];
            for &(c, d) in b.pairs() {
                if let (Some(slot), Some(pos)) = (m.get_mut(c as usize), self.chmap.get(d as usize)) {
                    *slot = *pos;
                }
            }
            return m;
        }
        if channels == self.dev.channels {
            return self.chmap.clone();
        }
        standard_map(channels)
    }

    /// Channel counts a client may open with.
    pub fn channel_range(&self) -> (u32, u32) {
        match self.cfg.bindings.channels() {
            0 => (1, MAX_CHANNELS),
            n => (n, n),
        }
    }
    /// The stream's phase, with the program's position brought up to date.
    pub(super) fn look(&mut self, io: &IoView) -> Phase {
        let phase = self.phase(io);
        self.sync_appl(io);
        phase
    }

    /// The ring of the installed hw_params.
    pub(super) fn geometry(&self) -> Result<Geometry> {
        self.geom
            .ok_or_else(|| Error::new(libc::EBADFD, "rdmix: transfer before hw_params"))
    }

    /// The attachment, or why there is none.
    pub(super) fn attachment(&self, what: &str) -> Result<&Attachment> {
        self.att.as_ref().ok_or_else(|| pump_gone(what))
    }

    /// The program's lane position, as the ring addresses it.
    pub(super) fn appl_pos(&self) -> u64 {
        self.appl & POS_MASK
    }

    /// The program moved `frames` on past ioplug's appl_ptr in `io` (a transfer).
    pub(super) fn advance(&mut self, io: &IoView, frames: u64) {
        self.appl += frames;
        self.io_appl = io.appl_ptr + frames;
    }

    pub(super) fn epoch(&self) -> u16 {
        self.epoch
    }

    pub(super) fn state(&self) -> State {
        self.state
    }

    pub(super) fn avail_min(&self) -> u64 {
        self.avail_min
    }

    pub(super) fn device(&self) -> DeviceParams {
        self.dev
    }

    /// Client frames the pump may move in one go: a reader must never be within that of a
    /// frame the pump is writing.
    pub(super) fn device_chunk(&self) -> i64 {
        2 * self.to_client(self.dev.period_frames as i64) + 64
    }

    /// A new lane state, published.
    pub(super) fn set_state(&mut self, state: State) {
        self.state = state;
        self.publish();
    }

    /// A drain begins: the lane is to be emptied by the pump.
    pub(super) fn begin_draining(&mut self) {
        if self.state != State::Draining {
            self.state = State::Draining;
            self.expect_progress();
            self.publish();
            self.kick();
        }
    }

    /// The wake-up pipe and the control socket: what a drain sleeps on between steps.
    pub(super) fn drain_fds(&self) -> [i32; 2] {
        [self.wake_fd(), self.sock_fd()]
    }

    /// Frames queued in the lane, in device frames.
    pub(super) fn in_lane_on_device(&self) -> u64 {
        self.to_device(self.in_lane().max(0) as u64)
    }

    /// Frames the device holds, by the pump's clock, in client frames: for a capture
    /// stream, what it has captured that the pump has not read yet.
    fn held_by_device(&self) -> i64 {
        let Some(clock) = self.att.as_ref().and_then(|a| a.seg.clock()) else {
            return 0;
        };
        // The device has gone on capturing since the pump looked.
        let since = ns_to_frames(now_ns().saturating_sub(clock.tstamp_ns), self.dev.rate);
        let held = (clock.slave_delay + since).min(self.dev.buffer_frames as u64);
        self.to_client(held as i64)
    }
}

impl<D: Direction> Plugin for Client<D> {
    const NAME: &'static CStr = c"rdmix: share a copy-only device";

    /// Exactly what the pump accepts.
    fn space(&self) -> Space {
        // The pump takes a device period's worth from each lane at once, so a client buffer
        // must hold at least that. Constraints are in bytes: the floor is a device period of
        // 8-byte samples at the device's channel count (for S16 stereo, four periods).
        let min_buffer_bytes = self.dev.period_frames * self.dev.channels * 8;
        let max_buffer_bytes = D::MAX_BUFFER_BYTES as u32;
        Space {
            access: vec![
                a::SND_PCM_ACCESS_RW_INTERLEAVED,
                a::SND_PCM_ACCESS_RW_NONINTERLEAVED,
                a::SND_PCM_ACCESS_MMAP_INTERLEAVED,
                a::SND_PCM_ACCESS_MMAP_NONINTERLEAVED,
            ],
            formats: FORMATS.iter().map(|f| f.id).collect(),
            channels: self.channel_range(),
            rate: (MIN_RATE, MAX_RATE),
            period_bytes: (32, max_buffer_bytes / 2),
            buffer_bytes: (min_buffer_bytes, max_buffer_bytes),
            periods: (2, 1024),
        }
    }

    /// The wake-up pipe the pump pokes, the control socket (a hang-up means the pump is
    /// gone), and the timer.
    fn poll_descriptors(&self) -> Vec<libc::pollfd> {
        if self.att.is_none() {
            self.wake_self(); // the program must come back and see the error
        }
        vec![
            sys::fd::pollfd(self.wake_fd(), libc::POLLIN),
            sys::fd::pollfd(self.sock_fd(), libc::POLLIN),
            sys::fd::pollfd(self.timer.as_raw_fd(), libc::POLLIN),
        ]
    }

    fn start(&mut self) -> Result<()> {
        if !self.pump_alive() {
            return Err(pump_gone("start"));
        }
        self.state = State::Running;
        self.expect_progress();
        self.publish();
        self.kick();
        self.arm_watchdog();
        Ok(())
    }

    fn stop(&mut self) {
        self.state = State::Idle;
        self.publish();
        self.kick_leaving();
        // A drain waiting in another thread wakes and sees the stream dropped.
        self.wake_self();
    }

    fn pointer(&mut self, io: &IoView) -> Result<u64> {
        let phase = self.look(io);
        // The pump compares its position with ours (a capture pump, to see an overrun).
        self.publish();
        let stop = self.stop_threshold < self.boundary;
        let avail = self.avail();
        match D::pointer(phase) {
            Pointer::Xrun => return Err(Error::errno(libc::EPIPE)),
            Pointer::PositionOrXrun if stop && D::xrun(avail, self.stop_threshold) => {
                return Err(Error::errno(libc::EPIPE));
            }
            Pointer::PositionOrOverrun if stop && D::xrun(avail, self.stop_threshold) => {
                // It stops, as a card's does, so the pump writes no more for it and may
                // stop the device.
                self.set_state(State::Idle);
                return Err(Error::errno(libc::EPIPE));
            }
            // A program that finds too little waits in poll next, without asking us first:
            // the pump must know now when to wake it.
            Pointer::PositionOrOverrun if avail < self.avail_min as i64 => self.arm_wake(),
            // Everything left after a drain has been read: ioplug ends a draining stream
            // whose pointer fails, which is the kernel's DRAINING -> SETUP.
            Pointer::UntilRead if avail <= 0 => return Err(Error::errno(libc::EPIPE)),
            _ => {}
        }
        Ok(self.pumped % self.boundary)
    }

    fn frame_bytes(&self) -> Option<usize> {
        self.params.map(|p| p.format.sample_bytes() * p.channels as usize)
    }

    fn capture(&mut self, io: &IoView, out: &mut [u8], frames: u64) -> Result<u64> {
        D::capture(self, io, out, frames)
    }

    fn drain_capture(&mut self) -> bool {
        D::drain_capture(self)
    }

    fn transfer(&mut self, io: &IoView, interleaved: &[u8], frames: u64) -> Result<u64> {
        D::transfer(self, io, interleaved, frames)
    }

    fn hw_params(&mut self, hw: HwChoice) -> Result<()> {
        let format = Format::lookup(hw.format).ok_or_else(|| {
            Error::new(
                libc::EINVAL,
                format!("rdmix: hw_params: format {} is not supported", hw.format),
            )
        })?;
        let p = ClientParams {
            format,
            channels: hw.channels,
            rate: hw.rate,
            period: hw.period,
            buffer: hw.buffer,
        };
        let frame_bytes = format.sample_bytes() * p.channels as usize;
        let geom = D::geometry(frame_bytes, p.buffer).ok_or_else(|| {
            Error::new(
                libc::EINVAL,
                format!("rdmix: hw_params: a buffer of {} frames does not fit a lane", p.buffer),
            )
        })?;
        self.state = State::Idle;
        self.publish();
        self.send_setup(&p)?;
        self.params = Some(p);
        self.geom = Some(geom);
        Ok(())
    }

    fn hw_free(&mut self) {
        self.state = State::Idle;
        self.publish();
        self.params = None;
        self.geom = None;
    }

    fn sw_params(&mut self, sw: SwChoice) {
        self.boundary = sw.boundary.max(1);
        self.avail_min = sw.avail_min.max(1);
        self.stop_threshold = sw.stop_threshold;
        self.publish_stop_after();
        self.arm_wake();
    }

    /// A new epoch: positions restart at zero, as ioplug's do. Reconnects if the pump died.
    fn prepare(&mut self) -> Result<()> {
        if !self.pump_alive() {
            // A pump that gave up on the device is not restarted behind the program's back:
            // the device is gone or broken, and the program should hear so.
            if let Some(e) = self.slave_failed {
                return Err(Error::new(
                    e,
                    format!(
                        "rdmix: slave.pcm \"{}\" failed: {}; reopen the PCM once the device is back",
                        self.cfg.slave.pcm,
                        strerror(e)
                    ),
                ));
            }
            // Nor is one that stood still while we ran: it may do so again.
            if let Some(e) = &self.stalled {
                return Err(e.clone());
            }
            // A pump that died (killed, crashed) is replaced: the program sees one xrun.
            let att = attach(&self.cfg, D::STREAM)?;
            if att.seg.device() != self.dev {
                return Err(Error::new(
                    libc::ENODEV,
                    "rdmix: the restarted pump runs the device differently; reopen the PCM",
                ));
            }
            self.att = Some(att);
            self.epoch = 0;
            if let Some(p) = self.params {
                self.send_setup(&p)?;
            }
            self.publish_stop_after();
        }
        self.epoch = self.epoch.wrapping_add(1);
        self.state = State::Prepared;
        self.appl = 0;
        self.pumped = 0;
        self.io_appl = 0;
        self.paused_delay = 0;
        self.publish();
        self.spend_wakeups();
        self.arm_wake();
        Ok(())
    }

    fn pause(&mut self, io: &IoView, enable: bool) -> Result<()> {
        if enable {
            self.paused_delay = self.delay(io).unwrap_or(0);
            self.state = State::Paused;
        } else {
            self.state = State::Running;
            self.expect_progress();
        }
        self.publish();
        if enable {
            self.kick_leaving();
        } else {
            self.kick();
        }
        self.arm_watchdog();
        Ok(())
    }

    fn drain_begin(&mut self) -> Instant {
        D::drain_begin(self)
    }

    fn drain_step(&mut self) -> Result<DrainStep> {
        D::drain_step(self)
    }

    fn poll_revents(&mut self, io: &IoView, fds: &[libc::pollfd]) -> Revents {
        self.spend_wakeups();
        sys::fd::timerfd_clear(self.timer.as_fd());
        let sock = self.sock_fd();
        if self.att.is_some() && fds.iter().any(|p| p.fd == sock && p.revents != 0) {
            self.lose_pump(); // the pump only ever writes in answer: this is a hang-up
        }
        let phase = self.look(io);
        let ready = match D::poll(phase) {
            Poll::Error => {
                self.lose_pump();
                return Revents {
                    events: D::EVENTS | libc::POLLERR,
                    xrun: true,
                };
            }
            Poll::Ready => true,
            Poll::WhenAvail if self.avail_reached() => true,
            Poll::WhenPlayedOut => match self.drain_remaining_ns() {
                Some(0) => true,
                Some(ns) => {
                    sys::fd::timerfd_arm(self.timer.as_fd(), ns.max(1));
                    false
                }
                None => false,
            },
            Poll::WhenAvail | Poll::WhenMixed => {
                self.arm_wake();
                // The pump may have moved between our check and arming: look once more.
                let pump = self.refresh();
                match D::poll(phase) {
                    _ if pump == Pump::Stopped => true,
                    Poll::WhenMixed => pump == Pump::Drained && self.drain_remaining_ns() == Some(0),
                    _ => self.avail_reached(),
                }
            }
        };
        if !ready {
            return Revents::default();
        }
        // Ready stays ready until the program acts (level-triggered, as a card's poll is):
        // the pipe was drained above, so the timer keeps the descriptors readable.
        self.wake_self();
        Revents {
            events: D::EVENTS,
            xrun: false,
        }
    }

    fn delay(&mut self, io: &IoView) -> Result<i64> {
        match D::delay(self.look(io)) {
            Delay::Xrun => Err(Error::errno(libc::EPIPE)),
            Delay::Frozen => Ok(self.paused_delay),
            Delay::Lane => Ok(self.in_lane()),
            Delay::LaneAndDevice => self.device_delay(),
            Delay::LaneAndHeld => Ok(self.in_lane() + self.held_by_device()),
        }
    }

    fn query_chmaps(&self) -> Vec<Vec<u32>> {
        let (lo, hi) = self.channel_range();
        (lo..=hi).map(|n| self.client_chmap(n)).collect()
    }

    fn chmap(&self, channels: u32) -> Vec<u32> {
        self.client_chmap(if channels == 0 { self.dev.channels } else { channels })
    }

    fn dump(&self) -> String {
        format!(
            "rdmix PCM: slave \"{}\", ipc_key {:#x}, device {} Hz, {} ch, period {} / buffer {} frames\n",
            self.cfg.slave.pcm,
            self.cfg.ipc_key,
            self.dev.rate,
            self.dev.channels,
            self.dev.period_frames,
            self.dev.buffer_frames
        )
    }
}
