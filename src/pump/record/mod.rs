//! Capture: the splitter plus pacing, reading the slave in whole periods, never faster
//! than real time, and only as often as the most eager reader needs.
//!
//! Filling ahead (`fill_ahead`, on by default), the device's buffer is large and the pump
//! lets it gather frames until the reader that asks soonest (its avail_min) is due, or
//! until all of the buffer but the margin is full; then it reads all the device holds at
//! once. A reader that starts while the device holds frames records from its start, not
//! from the oldest frame held. Without filling ahead, the pump reads every period.
//!
//! `Recorder::service` (through `Side`) is a non-blocking step like `Player::service`: it
//! reads every period that is ready at the time it is given and says when to call it
//! again, so tests drive it with a virtual clock and a fake source.
//!
//! The device runs only while some client records: the first start (a client's KICK)
//! prepares and starts it, and the step after the last client stops, pauses, drains or
//! overruns drops it. Nothing is captured for nobody.

pub mod splitter;

use self::splitter::Splitter;
use super::lanes::LaneTable;
use super::pace::{MISS_PERIODS, Next, Pace, margin_frames};
use super::side::{Device, Side, Source};
use crate::config::Bindings;
use crate::dsp::format::Format;
use crate::dsp::gain::Volume;
use crate::error::{Error, Result};
use crate::shm::clock::{frames_to_ns, ns_to_frames};

pub struct Recorder<S: Source> {
    pub split: Splitter,
    pub source: S,
    /// `realtime` starts true here: a card captures in real time. It is cleared for good
    /// when the source gives more than real time could have captured (`null`, a file), and
    /// the clock paces it instead.
    pub pace: Pace,
    started_ns: u64,
    /// Device frames read since the device last started.
    since_start: u64,
    /// One device period, filled by as many reads as it takes.
    period: Vec<u8>,
    have: usize,
    /// Whether the pump waits for the most eager reader (`fill_ahead`), not every period.
    eager: bool,
    /// The avail_min the slave was last given (0: none yet).
    told: u64,
}

impl<S: Source> Recorder<S> {
    pub fn new(split: Splitter, source: S, now_ns: u64) -> Recorder<S> {
        let bytes = split.device().period_frames as usize * split.frame_bytes();
        let pace = Pace::new(split.lanes.seg.clone(), split.device(), true, now_ns);
        Recorder {
            split,
            source,
            pace,
            started_ns: now_ns,
            since_start: 0,
            period: vec![0; bytes],
            have: 0,
            eager: false,
            told: 0,
        }
    }

    /// Whether the pump waits for its most eager reader (the `fill_ahead` option), or reads
    /// every period.
    pub fn fill_ahead(&mut self, on: bool) {
        self.eager = on;
    }

    /// The device's capture position now: what the pump has read, and the `held` frames the
    /// device holds.
    fn capture_pos(&self, now_ns: u64, held: u64) -> u64 {
        if !self.pace.realtime {
            return self.pace.due(now_ns).max(self.split.cap_pos() + self.have as u64);
        }
        // No card holds more than its buffer: a source that says so (a file) is not one.
        let held = held.min(self.split.device().buffer_frames as u64);
        self.split.cap_pos() + self.have as u64 + held
    }

    /// Device frames to capture past what has been handed out before the next read: as
    /// the readers want them, in whole periods, leaving the margin free; a period without
    /// filling ahead.
    fn target(&mut self) -> u64 {
        let dev = self.split.device();
        let (period, buffer) = (dev.period_frames as u64, dev.buffer_frames as u64);
        if !self.eager {
            return period;
        }
        let most = buffer.saturating_sub(margin_frames(dev.rate, period, buffer)) / period * period;
        let want = self.split.frames_wanted().unwrap_or(period);
        (want.div_ceil(period) * period).clamp(period, most.max(period))
    }

    /// Tells a device-paced slave to wake the pump once it holds `frames`. A slave that
    /// refuses is read every period, as before.
    fn tell_slave(&mut self, frames: u64) {
        if !self.pace.realtime || frames == self.told {
            return;
        }
        if self.source.wake_at_data(frames).is_err() {
            self.eager = false;
        }
        self.told = frames;
    }

    /// Reads into the period being filled; whether it is now whole. `None` when the source
    /// has nothing more now.
    fn read_some(&mut self) -> Result<Option<bool>> {
        let period = self.split.device().period_frames as usize;
        let fb = self.split.frame_bytes();
        let (have, want) = (self.have, period - self.have);
        match self.source.read(&mut self.period[have * fb..], want) {
            Ok(0) => Ok(None),
            Ok(n) => {
                self.have += n.min(want);
                Ok(Some(self.have == period))
            }
            Err(e) if e.is(libc::EAGAIN) => Ok(None),
            Err(e) => {
                self.recover(e)?;
                Ok(Some(false))
            }
        }
    }

    /// Hands the whole period out; learns whether the source is a real-time one.
    fn hand_out(&mut self, now_ns: u64, wake: &mut Vec<usize>) {
        let dev = self.split.device();
        let period = dev.period_frames as u64;
        self.have = 0;
        self.split.split_period(&self.period, wake);
        self.since_start += period;
        self.pace.progress(now_ns);
        // No card captures more than real time allows (a buffer of slack for start-up).
        let real = ns_to_frames(now_ns.saturating_sub(self.started_ns), dev.rate);
        if self.pace.realtime && self.since_start > real + dev.buffer_frames as u64 + period {
            self.pace.realtime = false;
            self.pace.anchor(now_ns, self.split.cap_pos());
        }
    }

    /// Frames the device holds unread, and when that held (none at `now_ns` for a
    /// clock-paced source).
    fn held(&mut self, now_ns: u64) -> Result<(u64, u64)> {
        if !self.pace.realtime {
            return Ok((0, now_ns));
        }
        match self.source.avail_at() {
            Ok((a, at)) => Ok((a as u64, at.unwrap_or_else(|| self.pace.read_at(now_ns)))),
            Err(e) => self.recover(e).map(|_| (0, self.pace.read_at(now_ns))),
        }
    }

    fn recover(&mut self, err: Error) -> Result<()> {
        // The part of a period already read is audio as captured: a resumed stream goes on
        // right after it, and an overrun loses what came after it, not before.
        let source = &mut self.source;
        self.pace.recover(err, |e| source.recover(e))
    }
}

impl<S: Source> Side for Recorder<S> {
    /// A client has started to record: an idle device starts capturing now, so the client's
    /// first frames are the ones captured after its start.
    fn kick(&mut self, now_ns: u64) -> Result<()> {
        if !self.pace.is_idle() || !self.split.wants_capture() {
            return Ok(());
        }
        self.source.start()?;
        self.have = 0;
        self.started_ns = now_ns;
        self.since_start = 0;
        self.pace.start(now_ns, self.split.cap_pos());
        // Everything the device captures from now on is theirs.
        self.split.admit(self.split.cap_pos());
        Ok(())
    }

    /// Reads and hands out every period that is ready at `now_ns`; says when to call again.
    fn service(&mut self, now_ns: u64, wake: &mut Vec<usize>) -> Result<Next> {
        if self.pace.is_idle() {
            return Ok(Next::Idle);
        }
        if !self.split.wants_capture() {
            self.source.stop()?;
            self.pace.stop();
            self.pace.publish(now_ns, self.split.cap_pos(), 0);
            return Ok(Next::Idle);
        }
        self.split.note_wakes();
        // One look at what the device holds serves both a newcomer's start and whether a
        // reader is due.
        let (held_before, before_at) = self.held(now_ns)?;
        if self.split.has_newcomers() {
            let at = self.capture_pos(now_ns, held_before);
            self.split.admit(at);
        }
        let dev = self.split.device();
        let period = dev.period_frames as u64;
        let mut read_any = false;
        // Woken before the most eager reader is due (a device whose descriptors fire every
        // period, whatever its avail_min): nothing is read, and the wake-up counts against
        // the descriptors, so that such a device is soon paced by the clock instead.
        let due = !self.pace.realtime || held_before + self.have as u64 >= self.target();
        // At most a buffer per step, so that a source that never runs dry cannot hold the
        // loop (and the clients' sockets) for good.
        for _ in 0..(dev.buffer_frames / dev.period_frames).max(1) + 1 {
            if !due {
                break;
            }
            if !self.pace.realtime && self.split.cap_pos() + period > self.pace.due(now_ns) {
                break;
            }
            match self.read_some()? {
                None => break,
                Some(false) => continue,
                Some(true) => {}
            }
            self.hand_out(now_ns, wake);
            read_any = true;
        }
        let (held, at) = if due {
            self.held(now_ns)?
        } else {
            (held_before, before_at)
        };
        self.pace.publish(at, self.split.cap_pos(), held);
        let target = self.target();
        if !self.pace.realtime {
            let next = self.pace.due_at(self.split.cap_pos() + target);
            return Ok(Next::At(next.max(now_ns + 1)));
        }
        if self.pace.stalled(now_ns) {
            return Err(Error::errno(libc::EIO));
        }
        let have = self.have as u64;
        self.tell_slave(target.saturating_sub(have).max(period));
        let missing = target.saturating_sub(held + have);
        let within = frames_to_ns(missing, dev.rate) + MISS_PERIODS * self.pace.period_ns();
        if let Some(next) = self.pace.device_wait(now_ns, read_any, within) {
            return Ok(next);
        }
        Ok(Next::At(
            now_ns + frames_to_ns(missing, dev.rate).max(self.pace.period_ns() / 8),
        ))
    }

    fn setup(&mut self, idx: usize, f: Format, channels: u32, rate: u32, buffer: u64, b: &Bindings) -> Result<()> {
        self.split.setup(idx, f, channels, rate, buffer, b)
    }

    /// Each recorder's volume applies to what it receives. There is no capture master: a
    /// microphone's level is the card's own mixer's.
    fn set_volume(&mut self, idx: Option<usize>, v: Volume) -> Result<()> {
        match idx {
            Some(i) => {
                self.split.set_volume(i, v);
                Ok(())
            }
            None => Err(Error::new(
                libc::EINVAL,
                "rdmix: volume: a capture pump has no master; set each recorder's",
            )),
        }
    }

    fn volume(&self, idx: Option<usize>) -> Option<Volume> {
        self.split.volume(idx?)
    }

    fn pace(&self) -> &Pace {
        &self.pace
    }

    fn pace_mut(&mut self) -> &mut Pace {
        &mut self.pace
    }

    fn lanes(&self) -> &dyn LaneTable {
        &self.split.lanes
    }

    fn lanes_mut(&mut self) -> &mut dyn LaneTable {
        &mut self.split.lanes
    }

    fn device(&self) -> &dyn Device {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Bindings;
    use crate::dsp::format::Format;
    use crate::shm::lane::LaneMem;
    use crate::shm::ring::{Ctl, State, pos_add};
    use crate::shm::segment::{DeviceParams, SegmentWriter, test_device};
    use crate::shm::tap::{self, Reader};
    use std::sync::Arc;

    /// A source on a virtual clock: a card captures in real time from its start; a file
    /// (`endless`) has everything at once. Frame `k` holds `k` on both channels.
    struct FakeSource {
        now: Arc<std::sync::atomic::AtomicU64>,
        endless: bool,
        started: Option<u64>,
        read: u64,
        total: u64,
        starts: u32,
        stops: u32,
        /// The avail_min the pump last gave it.
        told: u64,
        /// Virtual nanoseconds each read takes, on both its clock and `SLOW_CLOCK`.
        slow_read_ns: u64,
    }

    /// The clock a recorder stamps from in `the_device_clock_is_stamped_when_avail_was_read`.
    static SLOW_CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    impl FakeSource {
        fn captured(&self) -> u64 {
            match self.started {
                None => 0,
                Some(_) if self.endless => u64::MAX / 2,
                Some(t0) => ns_to_frames(self.now.load(std::sync::atomic::Ordering::Relaxed) - t0, 48000),
            }
        }
    }

    impl Device for FakeSource {}

    impl Source for FakeSource {
        fn read(&mut self, buf: &mut [u8], frames: usize) -> Result<usize> {
            self.now
                .fetch_add(self.slow_read_ns, std::sync::atomic::Ordering::Relaxed);
            SLOW_CLOCK.fetch_add(self.slow_read_ns, std::sync::atomic::Ordering::Relaxed);
            let n = (self.captured() - self.read).min(frames as u64) as usize;
            if n == 0 {
                return Err(Error::errno(libc::EAGAIN));
            }
            for (i, f) in buf.chunks_exact_mut(4).take(n).enumerate() {
                let v = (self.total + i as u64) as u16;
                f[..2].copy_from_slice(&v.to_le_bytes());
                f[2..].copy_from_slice(&v.to_le_bytes());
            }
            self.read += n as u64;
            self.total += n as u64;
            Ok(n)
        }
        fn avail(&mut self) -> Result<usize> {
            Ok((self.captured() - self.read).min(1 << 20) as usize)
        }
        fn recover(&mut self, _: &Error) -> Result<()> {
            Ok(())
        }
        fn start(&mut self) -> Result<()> {
            self.started = Some(self.now.load(std::sync::atomic::Ordering::Relaxed));
            self.read = 0;
            self.starts += 1;
            Ok(())
        }
        fn stop(&mut self) -> Result<()> {
            self.started = None;
            self.stops += 1;
            Ok(())
        }
        fn wake_at_data(&mut self, frames: u64) -> Result<()> {
            self.told = frames;
            Ok(())
        }
    }

    struct Rig {
        rec: Recorder<FakeSource>,
        lanes: Vec<Arc<LaneMem>>,
        now: Arc<std::sync::atomic::AtomicU64>,
    }

    /// A recorder over the test device (S16 stereo, 48 kHz, periods of 256 in 1024) with
    /// `n` matching S16 stereo lanes of 1024-frame buffers, all prepared in epoch 1.
    fn rig(n: usize, endless: bool) -> Rig {
        rig_of(test_device(), &vec![1024; n], endless)
    }

    /// The same over `dev`, with S16 stereo lanes of the given buffers (their stop point a
    /// buffer past it, as the plugin sets it).
    fn rig_of(dev: DeviceParams, buffers: &[u64], endless: bool) -> Rig {
        let n = buffers.len();
        let now = Arc::new(std::sync::atomic::AtomicU64::new(1_000_000_000));
        let seg = Arc::new(SegmentWriter::in_memory(&dev));
        let mut split = Splitter::new(seg, dev, vec![3, 4]).unwrap();
        let s16 = Format::lookup(2).unwrap();
        let lanes: Vec<Arc<LaneMem>> = (0..n).map(|_| Arc::new(LaneMem::in_memory())).collect();
        for (i, l) in lanes.iter().enumerate() {
            split.lanes.attach(i, l.clone());
            split.setup(i, s16, 2, 48000, buffers[i], &Bindings::default()).unwrap();
            let r = Reader::new(l);
            r.set_stop_after(2 * buffers[i]);
            r.publish(Ctl {
                epoch: 1,
                state: State::Prepared,
                appl: 0,
            });
        }
        let source = FakeSource {
            now: now.clone(),
            endless,
            started: None,
            read: 0,
            total: 0,
            starts: 0,
            stops: 0,
            told: 0,
            slow_read_ns: 0,
        };
        let t = now.load(std::sync::atomic::Ordering::Relaxed);
        Rig {
            rec: Recorder::new(split, source, t),
            lanes,
            now,
        }
    }

    impl Rig {
        fn at(&self) -> u64 {
            self.now.load(std::sync::atomic::Ordering::Relaxed)
        }
        fn advance(&self, ns: u64) {
            self.now.fetch_add(ns, std::sync::atomic::Ordering::Relaxed);
        }
        fn set(&self, lane: usize, state: State, appl: u64) {
            Reader::new(&self.lanes[lane]).publish(Ctl { epoch: 1, state, appl });
        }
        fn step(&mut self) -> Next {
            let mut wake = Vec::new();
            self.rec.service(self.at(), &mut wake).unwrap()
        }
        /// Reads everything lane `i` holds from `appl` on; returns the channel-0 values.
        fn drain_lane(&self, i: usize, appl: &mut u64) -> Vec<u16> {
            let r = Reader::new(&self.lanes[i]);
            let n = crate::shm::ring::pos_diff(r.captured().consumed, *appl).max(0) as usize;
            let mut b = vec![0u8; n * 4];
            r.read(&tap::geometry(4).unwrap(), *appl, &mut b);
            *appl = pos_add(*appl, n as i64);
            self.set(i, State::Running, *appl);
            b.chunks_exact(4).map(|f| u16::from_le_bytes([f[0], f[1]])).collect()
        }
    }

    #[test]
    fn the_device_runs_only_while_somebody_records() {
        let mut r = rig(1, false);
        assert_eq!(r.step(), Next::Idle);
        r.rec.kick(r.at()).unwrap();
        assert_eq!(r.rec.source.starts, 0, "a prepared lane does not start the device");
        r.set(0, State::Running, 0);
        r.rec.kick(r.at()).unwrap();
        assert_eq!(r.rec.source.starts, 1);
        let mut appl = 0;
        let mut got = Vec::new();
        for _ in 0..40 {
            r.advance(1_000_000);
            r.step();
            got.extend(r.drain_lane(0, &mut appl));
        }
        assert!(got.len() >= 1536, "{} frames in 40 ms", got.len());
        assert!(
            got.iter().enumerate().all(|(i, v)| *v == i as u16),
            "every frame, in order, from the start"
        );
        r.set(0, State::Paused, appl);
        assert_eq!(r.step(), Next::Idle, "nobody records: the device stops");
        assert_eq!(r.rec.source.stops, 1);
    }

    /// A reader's snd_pcm_delay counts what the device holds from the device clock: its
    /// stamp must be when the avail was read. Here each read takes 1 ms; stamped when the
    /// step began, the clock would say the device held 48 frames more for each read.
    #[test]
    fn the_device_clock_is_stamped_when_avail_was_read() {
        let mut r = rig(1, false);
        r.rec
            .pace
            .stamp_with(|| SLOW_CLOCK.load(std::sync::atomic::Ordering::Relaxed));
        r.rec.source.slow_read_ns = 1_000_000;
        r.set(0, State::Running, 0);
        r.rec.kick(r.at()).unwrap();
        let mut appl = 0;
        let mut worst = 0i64;
        for _ in 0..100 {
            r.advance(3_000_000);
            SLOW_CLOCK.store(r.at(), std::sync::atomic::Ordering::Relaxed);
            r.step();
            r.drain_lane(0, &mut appl);
            let c = r.rec.pace.segment().clock().unwrap();
            let told = (c.slave_delay + ns_to_frames(r.at() - c.tstamp_ns, 48000)) as i64;
            let truth = (r.rec.source.captured() - r.rec.source.read) as i64;
            if worst.abs() < (told - truth).abs() {
                worst = told - truth;
            }
        }
        assert!(
            worst.abs() <= 1,
            "the device clock said the device held {worst} frames more than it did"
        );
    }

    #[test]
    fn a_reader_that_falls_behind_overruns_alone() {
        let mut r = rig(2, false);
        r.set(0, State::Running, 0);
        r.set(1, State::Running, 0);
        r.rec.kick(r.at()).unwrap();
        let mut appl = 0;
        let mut got = Vec::new();
        for _ in 0..200 {
            r.advance(1_000_000);
            r.step();
            got.extend(r.drain_lane(0, &mut appl));
        }
        assert!(
            got.iter().enumerate().all(|(i, v)| *v == i as u16),
            "the reader that keeps up is exact"
        );
        assert!(got.len() > 9000);
        let slow = Reader::new(&r.lanes[1]);
        assert_eq!(slow.overruns(), 1, "the one that never read overran, once");
        assert!(
            slow.captured().consumed <= 2048 + 256,
            "and nothing more was written for it: {}",
            slow.captured().consumed
        );
        // Its overrun alone leaves the device running for the other.
        assert!(!r.rec.pace.is_idle());
    }

    #[test]
    fn a_source_that_never_runs_dry_is_paced_by_the_clock() {
        let mut r = rig(1, true);
        r.set(0, State::Running, 0);
        r.rec.kick(r.at()).unwrap();
        let mut appl = 0;
        let mut got = 0;
        for _ in 0..100 {
            r.advance(1_000_000);
            r.step();
            got += r.drain_lane(0, &mut appl).len();
        }
        // 100 ms at 48 kHz is 4800 frames; the first step may take a buffer and a period.
        assert!(got <= 4800 + 1024 + 256 + 256, "{got} frames in 100 ms");
        assert!(got >= 4800 - 256, "{got} frames in 100 ms");
        assert!(matches!(r.step(), Next::At(_)), "a clock-paced source sets a deadline");
    }

    /// snd-dummy's shape, as a filling-ahead pump opens it: periods of 256 in 16384.
    fn big_device() -> DeviceParams {
        DeviceParams {
            buffer_frames: 16384,
            ..test_device()
        }
    }

    /// A program that polls: once woken it reads all it has, and asks to be woken again
    /// `avail_min` frames on, as the plugin does.
    struct Poller {
        avail_min: u64,
        appl: u64,
        got: Vec<u16>,
        /// The least and the most it found to read when woken.
        least: u64,
        most: u64,
    }

    impl Poller {
        fn new(avail_min: u64) -> Poller {
            Poller {
                avail_min,
                appl: 0,
                got: Vec::new(),
                least: u64::MAX,
                most: 0,
            }
        }
    }

    impl Rig {
        /// Starts lane `i` and asks for its first wake-up, as a program's start and poll do.
        fn start(&mut self, i: usize, p: &Poller) {
            self.set(i, State::Running, p.appl);
            Reader::new(&self.lanes[i]).arm_wake(p.appl + p.avail_min);
            self.rec.kick(self.at()).unwrap();
        }

        /// Runs the pump as its loop does until `until`: each step at the instant it asked
        /// for, a wait on the device ending when the device holds the avail_min it was
        /// told (or at the deadline). Wakes the pollers it names; returns the steps taken.
        fn run(&mut self, until: u64, readers: &mut [Option<&mut Poller>]) -> u32 {
            let mut steps = 0;
            let mut next = Next::At(self.at());
            loop {
                let t = match next {
                    Next::At(t) => t,
                    Next::Device { by } => {
                        let src = &self.rec.source;
                        let t0 = src.started.expect("a device wait on a stopped device");
                        let fire = t0 + frames_to_ns(src.read + src.told, 48000) + 1_000;
                        fire.min(by)
                    }
                    Next::Idle => break,
                };
                if t > until {
                    break;
                }
                self.now.store(t.max(self.at()), std::sync::atomic::Ordering::Relaxed);
                let mut wake = Vec::new();
                next = self.rec.service(self.at(), &mut wake).unwrap();
                steps += 1;
                for i in wake {
                    let Some(p) = readers[i].as_deref_mut() else { continue };
                    let got = self.drain_lane(i, &mut p.appl);
                    p.least = p.least.min(got.len() as u64);
                    p.most = p.most.max(got.len() as u64);
                    p.got.extend(got);
                    Reader::new(&self.lanes[i]).arm_wake(p.appl + p.avail_min);
                }
            }
            self.now
                .store(until.max(self.at()), std::sync::atomic::Ordering::Relaxed);
            steps
        }
    }

    fn exact_from(got: &[u16], first: u16) -> bool {
        got.iter().enumerate().all(|(i, v)| *v == first.wrapping_add(i as u16))
    }

    /// Filling ahead, the device gathers frames until the reader that asks soonest is due:
    /// a reader of avail_min 1024 beside one of 4096 has the pump read every 1024 frames,
    /// not every 256-frame period, and alone the other has it read every 4096. Each is
    /// woken with at least what it asked for and at most a period more, every frame exact.
    #[test]
    fn the_device_is_read_as_often_as_the_most_eager_reader_asks() {
        let mut r = rig_of(big_device(), &[8192, 4096], false);
        r.rec.fill_ahead(true);
        let (mut slow, mut eager) = (Poller::new(4096), Poller::new(1024));
        r.start(0, &slow);
        r.start(1, &eager);
        let t0 = r.at();
        let steps = r.run(t0 + 2_000_000_000, &mut [Some(&mut slow), Some(&mut eager)]);
        // 96000 frames in 2 s: 93 reads of 1024, and the device's start.
        assert!(
            (88..=100).contains(&steps),
            "{steps} reads in 2 s with a reader of avail_min 1024"
        );
        for (p, name) in [(&slow, "avail_min 4096"), (&eager, "avail_min 1024")] {
            assert!(
                p.least >= p.avail_min && p.most <= p.avail_min + 256,
                "the reader of {name} was woken with {}..{} frames",
                p.least,
                p.most
            );
            assert!(exact_from(&p.got, 0), "the reader of {name} got every frame in order");
        }
        assert!(
            eager.got.len() >= 96000 - 1024 - 256,
            "{} frames in 2 s",
            eager.got.len()
        );
        // The eager one pauses: the other alone sets the pace.
        r.set(1, State::Paused, eager.appl);
        let t1 = r.at();
        let steps = r.run(t1 + 2_000_000_000, &mut [Some(&mut slow), None]);
        assert!(
            (20..=28).contains(&steps),
            "{steps} reads in 2 s with a reader of avail_min 4096"
        );
        assert!(
            exact_from(&slow.got, 0),
            "every frame, in order, across the other's pause"
        );
        assert_eq!(Reader::new(&r.lanes[0]).overruns(), 0);
        assert_eq!(Reader::new(&r.lanes[1]).overruns(), 0);
    }

    /// Without filling ahead, the pump reads every period, as it always did.
    #[test]
    fn without_filling_ahead_every_period_is_read() {
        let mut r = rig_of(big_device(), &[8192], false);
        let mut slow = Poller::new(4096);
        r.start(0, &slow);
        let t0 = r.at();
        let steps = r.run(t0 + 1_000_000_000, &mut [Some(&mut slow)]);
        assert!((180..=190).contains(&steps), "{steps} reads in 1 s, 187.5 periods");
        assert!(exact_from(&slow.got, 0));
    }

    /// A reader that starts while the device holds frames gathered for another records
    /// from its own start, as it would on a card of its own: not from the oldest frame the
    /// device holds.
    #[test]
    fn a_reader_that_starts_while_the_device_gathers_records_from_its_start() {
        let mut r = rig_of(big_device(), &[8192, 4096], false);
        r.rec.fill_ahead(true);
        let (mut slow, mut late) = (Poller::new(8192), Poller::new(1024));
        r.start(0, &slow);
        let t0 = r.at();
        r.run(t0 + 150_000_000, &mut [Some(&mut slow), None]);
        assert!(slow.got.is_empty(), "nothing read yet for a reader of avail_min 8192");
        // 150 ms in, the device holds 7200 frames.
        let held = ns_to_frames(r.at() - t0, 48000);
        r.start(1, &late);
        r.run(t0 + 400_000_000, &mut [Some(&mut slow), Some(&mut late)]);
        let first = *late.got.first().expect("the late reader got frames");
        assert!(
            (held.saturating_sub(256)..=held).contains(&(first as u64)),
            "the late reader's first frame is {first}; it started at {held}"
        );
        assert!(exact_from(&late.got, first), "and every frame from there, in order");
        assert!(exact_from(&slow.got, 0), "the first reader lost nothing");
        assert!(
            slow.got.len() >= 16384,
            "{} frames for the first reader",
            slow.got.len()
        );
    }

    /// Readers whose wake-ups fall close together share one: eight of avail_min 4096 that
    /// started 5 ms apart have the pump read about once per 4096 frames, not once for each
    /// of them, and none is woken later than half its avail_min past it.
    #[test]
    fn readers_due_close_together_share_a_wake_up() {
        let mut r = rig_of(big_device(), &[16384; 8], false);
        r.rec.fill_ahead(true);
        let mut ps: Vec<Poller> = (0..8).map(|_| Poller::new(4096)).collect();
        let t0 = r.at();
        for i in 0..8 {
            r.run(
                t0 + i as u64 * 5_000_000,
                &mut ps.iter_mut().map(Some).collect::<Vec<_>>(),
            );
            r.start(i, &ps[i]);
        }
        let t1 = r.at();
        let steps = r.run(t1 + 2_000_000_000, &mut ps.iter_mut().map(Some).collect::<Vec<_>>());
        // 96000 frames in 2 s: 23 cycles of 4096; one wake-up each for all eight.
        assert!(steps <= 30, "{steps} reads in 2 s for eight readers of avail_min 4096");
        for (i, p) in ps.iter().enumerate() {
            assert!(
                p.least >= 4096 && p.most <= 4096 + 2048 + 256,
                "reader {i} was woken with {}..{} frames",
                p.least,
                p.most
            );
            let first = p.got[0];
            assert!(exact_from(&p.got, first), "reader {i} got every frame in order");
            assert_eq!(Reader::new(&r.lanes[i]).overruns(), 0);
        }
    }

    /// A recorder's volume applies to what it receives, ramped over a period: before the
    /// change every frame is the device's own, after the ramp each is the device's at the
    /// gain, and another recorder of the same device is untouched.
    #[test]
    fn a_recorders_volume_scales_what_it_receives_and_no_one_elses() {
        use crate::dsp::gain::Volume;
        let mut r = rig(2, false);
        r.set(0, State::Running, 0);
        r.set(1, State::Running, 0);
        r.rec.kick(r.at()).unwrap();
        let (mut a0, mut a1) = (0, 0);
        let (mut got0, mut got1) = (Vec::new(), Vec::new());
        for _ in 0..20 {
            r.advance(1_000_000);
            r.step();
            got0.extend(r.drain_lane(0, &mut a0));
            got1.extend(r.drain_lane(1, &mut a1));
        }
        let before = got0.len();
        let v = Volume::from_cdb(-600, true);
        r.rec.set_volume(Some(0), v).unwrap();
        assert!(r.rec.set_volume(None, v).is_err(), "a capture pump has no master");
        for _ in 0..40 {
            r.advance(1_000_000);
            r.step();
            got0.extend(r.drain_lane(0, &mut a0));
            got1.extend(r.drain_lane(1, &mut a1));
        }
        let dev = |k: usize| k as u16 as i16;
        assert!(
            got0[..before].iter().enumerate().all(|(k, v)| *v == k as u16),
            "exact before the change"
        );
        let g = v.gain();
        for (k, v) in got0.iter().enumerate().skip(before + 256) {
            assert_eq!(*v as i16, (dev(k) as f64 * g).round() as i16, "frame {k} at -6 dB");
        }
        assert!(got0.len() > before + 1024);
        assert!(
            got1.iter().enumerate().all(|(k, v)| *v == k as u16),
            "the other recorder is exact"
        );
        assert_eq!(r.rec.volume(Some(0)), Some(v));
    }
}
