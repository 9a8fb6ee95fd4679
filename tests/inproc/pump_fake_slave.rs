//! The pump, in process, against a fake slave that accepts only interleaved writes, consumes
//! at a set rate on a virtual clock and records every frame. Several clients start, stop,
//! underrun and drain at different positions; every recorded frame is checked against the
//! saturated sum of what each client had written for that position.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use asound_module_pcm_rdmix as rdmix;
use rdmix::dsp::format::Format;
use rdmix::error::{Error, Result};
use rdmix::pump::lanes::LaneTable;
use rdmix::pump::pace::Next;
use rdmix::pump::play::Player;
use rdmix::pump::play::mixer::Mixer;
use rdmix::pump::side::{Device, Side, Sink};
use rdmix::shm::lane::LaneMem;
use rdmix::shm::ring::{Ctl, Geometry, Producer, State, pos_diff};
use rdmix::shm::segment::{DeviceParams, SegmentWriter};

/// An engine over `seg` at the device parameters it publishes.
fn engine(seg: &Arc<SegmentWriter>) -> Mixer {
    Mixer::new(seg.clone(), seg.device(), seg.chmap()).unwrap()
}

const RATE: u32 = 48000;
const CH: usize = 2;

/// A copy-only device: takes writes up to its free space and plays them at `RATE` frames per
/// virtual second. It records everything it is given.
struct FakeSlave {
    buffer: u64,
    written: u64,
    played_base: u64,
    start_ns: Option<u64>,
    now: Arc<std::sync::atomic::AtomicU64>,
    record: Vec<i16>,
    wedged: bool,
    /// `record` lengths (in samples) when the pump stopped the device, the frames it had
    /// played by then, and prepares since.
    stops: Vec<usize>,
    stopped_played: Vec<u64>,
    prepares: u32,
    /// What the pump last asked its descriptors to wait for (0: nothing yet).
    avail_min: u64,
    /// Whether it gives back what it has not played, as a card's driver does.
    rewinds: bool,
    /// Virtual nanoseconds each `avail` takes (a slow ioctl, or the pump preempted), on both
    /// the slave's clock and `SLOW_CLOCK`.
    slow_avail_ns: u64,
}

/// The clock a pump reads its stamps from in `the_device_clock_is_stamped_when_the_delay_was_read`
/// (a plain `fn` cannot hold the slave's `Arc`).
static SLOW_CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl FakeSlave {
    fn new(buffer: u64, now: Arc<std::sync::atomic::AtomicU64>) -> FakeSlave {
        FakeSlave {
            buffer,
            written: 0,
            played_base: 0,
            start_ns: None,
            now,
            record: Vec::new(),
            wedged: false,
            stops: Vec::new(),
            stopped_played: Vec::new(),
            prepares: 0,
            avail_min: 0,
            rewinds: false,
            slow_avail_ns: 0,
        }
    }
}

impl FakeSlave {
    fn played(&self) -> u64 {
        match self.start_ns {
            None => self.played_base,
            Some(t0) => {
                let ns = self.now.load(Ordering::Relaxed) - t0;
                (self.played_base + ns * RATE as u64 / 1_000_000_000).min(self.written)
            }
        }
    }
}

impl Device for FakeSlave {}
impl Sink for FakeSlave {
    fn write(&mut self, buf: &[u8], frames: usize) -> Result<usize> {
        let room = (self.buffer - (self.written - self.played())) as usize;
        let n = frames.min(room);
        if n == 0 || self.wedged {
            return Err(Error::errno(libc::EAGAIN));
        }
        self.record.extend(
            buf[..n * CH * 2]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]])),
        );
        self.written += n as u64;
        if self.start_ns.is_none() {
            self.start_ns = Some(self.now.load(Ordering::Relaxed));
        }
        Ok(n)
    }
    fn avail(&mut self) -> Result<usize> {
        if self.slow_avail_ns > 0 {
            self.now.fetch_add(self.slow_avail_ns, Ordering::Relaxed);
            SLOW_CLOCK.fetch_add(self.slow_avail_ns, Ordering::Relaxed);
        }
        if self.wedged {
            return Ok(0);
        }
        Ok((self.buffer - (self.written - self.played())) as usize)
    }
    fn delay(&mut self) -> Result<i64> {
        Ok((self.written - self.played()) as i64)
    }
    fn recover(&mut self, _err: &Error) -> Result<()> {
        Ok(())
    }
    /// snd_pcm_drop: what is queued is discarded.
    fn stop(&mut self) -> Result<()> {
        self.played_base = self.played();
        self.stopped_played.push(self.played_base);
        self.written = self.played_base;
        self.start_ns = None;
        self.stops.push(self.record.len());
        Ok(())
    }
    fn prepare(&mut self) -> Result<()> {
        self.prepares += 1;
        Ok(())
    }
    fn wake_at_room(&mut self, frames: u64) -> Result<()> {
        self.avail_min = frames;
        Ok(())
    }
    fn rewindable(&mut self) -> Result<u64> {
        Ok(if self.rewinds { self.written - self.played() } else { 0 })
    }
    /// Forgets the last `frames` written: they were never played.
    fn rewind(&mut self, frames: u64) -> Result<u64> {
        let n = frames.min(self.rewindable()?);
        self.written -= n;
        self.record.truncate(self.record.len() - n as usize * CH);
        Ok(n)
    }
}

fn sample(client: usize, k: u64) -> i16 {
    // Loud pseudo-random values: three clients together hit both rails often.
    let mut x = (k + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((client as u64 + 1) << 40);
    x ^= x >> 29;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (x >> 48) as i16
}

struct Client {
    idx: usize,
    mem: Arc<LaneMem>,
    geom: Geometry,
    epoch: u16,
    state: State,
    appl: u64,
    /// A quarter of `sample`'s level, so that sums never saturate.
    quiet: bool,
    /// Plays this value in every frame instead.
    constant: Option<i16>,
    /// `run` tops its ring up only every so many milliseconds (a writer that sleeps).
    writes_every: u64,
    /// A writer that sleeps until the pump wakes it (when it has room for a quarter of its
    /// ring, as alsa-lib's avail_min asks), and is scheduled this many milliseconds later.
    late_by: Option<u64>,
    write_at: Option<u64>,
}

impl Client {
    fn level(&self, k: u64) -> i16 {
        if let Some(v) = self.constant {
            return v;
        }
        let v = sample(self.idx, k);
        if self.quiet { v / 4 } else { v }
    }
    fn publish(&self) {
        Producer::new(&self.mem).publish(Ctl {
            epoch: self.epoch,
            state: self.state,
            appl: self.appl,
        });
    }
    fn consumed(&self) -> u64 {
        let m = Producer::new(&self.mem).mixed();
        if m.epoch == self.epoch { m.consumed } else { 0 }
    }
    /// Writes up to `max` frames of this client's signal, as much as the ring has room for.
    fn top_up(&mut self, max: u64) {
        let free = self.geom.buffer_frames as i64 - pos_diff(self.appl, self.consumed());
        let n = (free.max(0) as u64).min(max);
        let bytes: Vec<u8> = (self.appl..self.appl + n)
            .flat_map(|k| {
                let v = self.level(k).to_le_bytes();
                [v, v].concat()
            })
            .collect();
        Producer::new(&self.mem).write(&self.geom, self.appl, &bytes);
        self.appl += n;
        self.publish();
    }
    /// Asks to be woken once the ring has room for a quarter of itself.
    fn wake_with_room(&self) {
        let ring = self.geom.buffer_frames as u64;
        Producer::new(&self.mem).arm_wake(self.appl + ring / 4 - ring);
    }
    /// A new epoch, running on through underruns (stop_threshold = boundary) unless
    /// `stop_after` says where the stream stops.
    fn prepare(&mut self) {
        self.epoch += 1;
        self.appl = 0;
        self.state = State::Prepared;
        Producer::new(&self.mem).set_stop_after(u64::MAX);
        self.publish();
    }
}

/// One service call: the mix range it produced and each client's published view then.
struct Mixed {
    from: u64,
    to: u64,
    view: Vec<(State, u16, u64)>,
}

#[test]
fn clients_starting_stopping_and_underrunning_mix_exactly() {
    let dev = DeviceParams {
        format: alsa_sys::SND_PCM_FORMAT_S16_LE,
        rate: RATE,
        channels: CH as u32,
        period_frames: 240,
        buffer_frames: 960,
    };
    let seg = Arc::new(SegmentWriter::in_memory(&dev));
    let mut engine = engine(&seg);
    let s16 = Format::lookup(alsa_sys::SND_PCM_FORMAT_S16_LE).unwrap();
    let mut clients: Vec<Client> = (0..4)
        .map(|idx| {
            let mem = Arc::new(LaneMem::in_memory());
            engine.lanes.attach(idx, mem.clone());
            engine
                .setup(idx, s16, CH as u32, RATE, 2048, &Default::default())
                .unwrap();
            Client {
                idx,
                mem,
                geom: Geometry::new(4, 2048).unwrap(),
                epoch: 0,
                state: State::Idle,
                appl: 0,
                quiet: false,
                constant: None,
                writes_every: 1,
                late_by: None,
                write_at: None,
            }
        })
        .collect();
    let now = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let slave = FakeSlave::new(960, now.clone());
    let mut pump = Player::new(engine, slave, 0);
    let mut log: Vec<Mixed> = Vec::new();
    let mut start_mix: HashMap<(usize, u16), u64> = HashMap::new();
    let mut wake = Vec::new();
    let mut drained_seen = false;

    for ms in 0..1500u64 {
        let t = ms * 1_000_000;
        now.store(t, Ordering::Relaxed);
        let mut kick = false;
        for c in clients.iter_mut() {
            // Each client's script, in milliseconds.
            match (c.idx, ms) {
                (0, 0) | (1, 37) | (2, 101) | (3, 3) => {
                    c.prepare();
                    c.top_up(2048);
                    c.state = State::Running;
                    c.publish();
                    kick = true;
                }
                (1, 400) => {
                    c.state = State::Idle; // snd_pcm_drop
                    c.publish();
                }
                (1, 610) => {
                    c.prepare(); // and play again from frame 0 of a new epoch
                    c.top_up(2048);
                    c.state = State::Running;
                    c.publish();
                    kick = true;
                }
                (3, 900) => {
                    c.state = State::Draining;
                    c.publish();
                    kick = true;
                }
                _ => {}
            }
            let starving = c.idx == 2 && (300..390).contains(&ms); // underrun for 90 ms
            let paused_writer = c.idx == 0 && ms % 97 < 40; // writes in bursts, never runs dry
            if matches!(c.state, State::Running) && !starving && !paused_writer {
                c.top_up(4096);
            }
        }
        if kick {
            pump.kick(t).unwrap();
        }
        let from = pump.mixer.mix_pos();
        let view: Vec<_> = clients.iter().map(|c| (c.state, c.epoch, c.appl)).collect();
        pump.service(t, &mut wake).unwrap();
        let to = pump.mixer.mix_pos();
        for c in &clients {
            if matches!(c.state, State::Running | State::Draining) && to > from {
                start_mix
                    .entry((c.idx, c.epoch))
                    .or_insert(Producer::new(&c.mem).start_mix());
            }
        }
        if Producer::new(&clients[3].mem).mixed().drained {
            drained_seen = true;
        }
        log.push(Mixed { from, to, view });
    }

    let rec = &pump.sink.record;
    let total = pump.mixer.mix_pos();
    assert_eq!(rec.len() as u64, total * CH as u64, "the slave got every mixed frame");
    assert!(
        total > 48000 * 14 / 10,
        "1.5 s of virtual time mixed only {total} frames"
    );
    let (mut saturated_hi, mut saturated_lo, mut silent_checked) = (0, 0, 0);
    for m in &log {
        for pos in m.from..m.to {
            let mut sum = 0i32;
            for (idx, &(state, epoch, appl)) in m.view.iter().enumerate() {
                if !matches!(state, State::Running | State::Draining) {
                    continue;
                }
                let s = start_mix[&(idx, epoch)];
                if pos >= s && pos - s < appl {
                    sum += sample(idx, pos - s) as i32;
                }
            }
            let expect = sum.clamp(-32768, 32767) as i16;
            let got = &rec[pos as usize * CH..pos as usize * CH + CH];
            assert_eq!(got, &[expect, expect], "frame {pos} (sum {sum})");
            saturated_hi += (sum > 32767) as u32;
            saturated_lo += (sum < -32768) as u32;
            silent_checked += (m.view.iter().all(|v| v.0 != State::Running)) as u32;
        }
    }
    assert!(
        saturated_hi > 100 && saturated_lo > 100,
        "both rails exercised: {saturated_hi} {saturated_lo}"
    );
    assert!(drained_seen, "client 3's drain completed");
    assert!(
        Producer::new(&clients[2].mem).underruns() >= 1,
        "client 2's underrun was seen"
    );
    let _ = silent_checked;
}

#[test]
fn pump_paces_an_unpaced_slave_by_the_clock() {
    // A slave that never reports a delay (like `null` or `file`) must not be flooded.
    struct Null {
        frames: u64,
    }
    impl Device for Null {}
    impl Sink for Null {
        fn write(&mut self, _b: &[u8], f: usize) -> Result<usize> {
            self.frames += f as u64;
            Ok(f)
        }
        fn avail(&mut self) -> Result<usize> {
            Ok(1 << 20)
        }
        fn delay(&mut self) -> Result<i64> {
            Ok(0)
        }
        fn recover(&mut self, _e: &Error) -> Result<()> {
            Ok(())
        }
    }
    let dev = DeviceParams {
        format: alsa_sys::SND_PCM_FORMAT_S16_LE,
        rate: RATE,
        channels: 2,
        period_frames: 240,
        buffer_frames: 960,
    };
    let seg = Arc::new(SegmentWriter::in_memory(&dev));
    let mut engine = engine(&seg);
    let _lane = running_lane(&mut engine, 0);
    let mut pump = Player::new(engine, Null { frames: 0 }, 0);
    pump.kick(0).unwrap();
    let mut wake = Vec::new();
    let mut t = 0;
    for _ in 0..1000 {
        let next = match pump.service(t, &mut wake).unwrap() {
            Next::At(next) => next,
            other => panic!("an unpaced slave is paced by the clock, not {other:?}"),
        };
        assert!(next > t, "the pump asks to be called again later");
        // Never more than one buffer ahead of real time.
        let ahead = pump.sink.frames as i64 - (t as i64 * RATE as i64 / 1_000_000_000);
        assert!(ahead <= 960, "{ahead} frames ahead at {t} ns");
        t = next;
    }
    let elapsed_frames = t * RATE as u64 / 1_000_000_000;
    assert!(
        pump.sink.frames + 960 >= elapsed_frames,
        "kept up: {} of {elapsed_frames}",
        pump.sink.frames
    );
}

/// Attaches lane `idx` as a client that runs forever and never runs dry (its position is
/// always a full ring ahead), playing whatever its ring holds.
fn running_lane(engine: &mut Mixer, idx: usize) -> Arc<LaneMem> {
    let s16 = Format::lookup(alsa_sys::SND_PCM_FORMAT_S16_LE).unwrap();
    let mem = Arc::new(LaneMem::in_memory());
    engine.lanes.attach(idx, mem.clone());
    engine.setup(idx, s16, 2, RATE, 2048, &Default::default()).unwrap();
    Producer::new(&mem).publish(Ctl {
        epoch: 1,
        state: State::Running,
        appl: 1 << 40,
    });
    mem
}

fn dev_240() -> DeviceParams {
    DeviceParams {
        format: alsa_sys::SND_PCM_FORMAT_S16_LE,
        rate: RATE,
        channels: 2,
        period_frames: 240,
        buffer_frames: 960,
    }
}

/// A pump on the fake slave (240-frame periods, 960-frame buffer) with client 0 attached,
/// set up and idle, and the virtual clock the slave plays by.
fn one_client_pump() -> (Player<FakeSlave>, Client, Arc<std::sync::atomic::AtomicU64>) {
    let seg = Arc::new(SegmentWriter::in_memory(&dev_240()));
    let mut engine = engine(&seg);
    let s16 = Format::lookup(alsa_sys::SND_PCM_FORMAT_S16_LE).unwrap();
    let mem = Arc::new(LaneMem::in_memory());
    engine.lanes.attach(0, mem.clone());
    engine.setup(0, s16, 2, RATE, 2048, &Default::default()).unwrap();
    let c = Client {
        idx: 0,
        mem,
        geom: Geometry::new(4, 2048).unwrap(),
        epoch: 0,
        state: State::Idle,
        appl: 0,
        quiet: false,
        constant: None,
        writes_every: 1,
        late_by: None,
        write_at: None,
    };
    let now = Arc::new(std::sync::atomic::AtomicU64::new(0));
    (Player::new(engine, FakeSlave::new(960, now.clone()), 0), c, now)
}

#[test]
fn an_idle_pump_stops_the_device_on_silence_and_restarts_it_clean() {
    let (mut pump, mut c, now) = one_client_pump();
    let mut wake = Vec::new();
    assert_eq!(pump.service(0, &mut wake).unwrap(), Next::Idle, "a new pump is idle");
    pump.kick(0).unwrap();
    assert!(pump.pace.is_idle(), "a kick with no lane running changes nothing");
    assert_eq!(pump.sink.prepares, 0);

    // Play 100 ms, then stop (snd_pcm_drop) and let the pump wind down.
    c.prepare();
    c.top_up(2048);
    c.state = State::Running;
    c.publish();
    pump.kick(0).unwrap();
    let mut idle_at = None;
    for ms in 0..400u64 {
        let t = ms * 1_000_000;
        now.store(t, Ordering::Relaxed);
        if ms == 100 {
            c.state = State::Idle;
            c.publish();
        }
        if c.state == State::Running {
            c.top_up(4096);
        }
        if pump.service(t, &mut wake).unwrap() == Next::Idle {
            idle_at = Some(ms);
            break;
        }
    }
    let idle_at = idle_at.expect("the pump went idle once nobody played");
    assert!(
        idle_at <= 100 + 2 * 20 + 2,
        "idle after {idle_at} ms; a 20 ms buffer of silence is enough"
    );
    assert_eq!(pump.sink.stops.len(), 1, "the device was stopped once");
    let stop_at = pump.sink.stops[0];
    let rec = &pump.sink.record;
    let last_sound = rec.iter().rposition(|&v| v != 0).unwrap() + 1;
    let played = pump.sink.stopped_played[0] as usize * CH;
    assert!(
        last_sound <= played,
        "only silence is cut: the last sound ends at sample {last_sound}, {played} played"
    );
    // Idle: no wake-up of its own, and nothing written.
    for ms in idle_at..idle_at + 300 {
        assert_eq!(pump.service(ms * 1_000_000, &mut wake).unwrap(), Next::Idle);
    }
    assert_eq!(pump.sink.record.len(), stop_at);

    // A new stream after idle: the device is prepared again and filled at once with
    // silence, the buffer's last period being the one the stream is first seen in. The
    // stream joins in the period after it, from frame 0, a whole buffer after its start.
    let t = (idle_at + 300) * 1_000_000;
    now.store(t, Ordering::Relaxed);
    c.prepare();
    c.top_up(2048);
    c.state = State::Running;
    c.publish();
    pump.kick(t).unwrap();
    assert_eq!(pump.sink.prepares, 1);
    assert!(matches!(pump.service(t, &mut wake).unwrap(), Next::Device { .. }));
    let fresh = &pump.sink.record[stop_at..];
    assert_eq!(fresh.len(), 960 * 2, "the device's buffer was filled at once");
    assert!(
        fresh.iter().all(|&v| v == 0),
        "the lead-in is silence, never a stale period"
    );
    assert_eq!(c.consumed(), 0, "nothing is taken before the stream joins");
    // One period later the device has room for one more: the stream's own frames from 0.
    let t = t + 5_000_000;
    now.store(t, Ordering::Relaxed);
    pump.service(t, &mut wake).unwrap();
    let first = &pump.sink.record[stop_at + 960 * 2..];
    assert_eq!(first.len(), 240 * 2, "one period more, at the device's pace");
    for (k, f) in first.chunks_exact(2).enumerate() {
        let v = sample(0, k as u64);
        assert_eq!(f, [v, v], "frame {k} after the restart");
    }
    assert_eq!(
        c.consumed(),
        240,
        "the stream is taken at the device's pace, one period"
    );
}

/// Clients extrapolate snd_pcm_delay from the device clock: its stamp must be when the
/// slave's delay was read, not when the pump got round to publishing it. Here every avail
/// call takes 2 ms, between the reading and the publishing; stamped at publishing, every
/// client's delay would be 96 frames long.
#[test]
fn the_device_clock_is_stamped_when_the_delay_was_read() {
    let (mut pump, mut c, now) = one_client_pump();
    pump.pace.stamp_with(|| SLOW_CLOCK.load(Ordering::Relaxed));
    pump.sink.slow_avail_ns = 2_000_000;
    let mut wake = Vec::new();
    c.prepare();
    c.top_up(2048);
    c.state = State::Running;
    c.publish();
    pump.kick(0).unwrap();
    let mut worst = 0i64;
    for ms in 0..200u64 {
        // Each avail has moved the clock on as well.
        let t = (ms * 1_000_000).max(now.load(Ordering::Relaxed));
        now.store(t, Ordering::Relaxed);
        SLOW_CLOCK.store(t, Ordering::Relaxed);
        c.top_up(2048);
        pump.service(t, &mut wake).unwrap();
        let at = now.load(Ordering::Relaxed);
        let clock = pump.pace.segment().clock().expect("a published clock");
        let truth = (pump.sink.written - pump.sink.played()) as i64;
        let told = clock.queued_at(at, RATE) as i64;
        if worst.abs() < (told - truth).abs() {
            worst = told - truth;
        }
    }
    assert!(
        worst.abs() <= 1,
        "the device clock said the slave held {worst} frames more than it did"
    );
}

#[test]
fn a_stream_that_ran_dry_past_its_stop_point_lets_the_device_sleep() {
    let (mut pump, mut c, now) = one_client_pump();
    let mut wake = Vec::new();
    // A client that stops where ALSA stops by default (stop_threshold = buffer: at once),
    // writes 2048 frames and then nothing, never noticing: it still says it runs.
    c.prepare();
    Producer::new(&c.mem).set_stop_after(0);
    c.top_up(2048);
    c.state = State::Running;
    c.publish();
    pump.kick(0).unwrap();
    let mut idle_at = None;
    for ms in 0..300u64 {
        now.store(ms * 1_000_000, Ordering::Relaxed);
        if pump.service(ms * 1_000_000, &mut wake).unwrap() == Next::Idle {
            idle_at = Some(ms);
            break;
        }
    }
    assert!(idle_at.is_some(), "a stream in xrun does not keep the device running");
    let consumed = c.consumed();
    assert!(
        consumed > 2048,
        "the dry period was consumed, so the client sees its xrun"
    );
    assert!(consumed <= 2048 + 240, "and nothing after it: {consumed}");
    // The pump's word says so, and the client was woken to hear it: frames it writes now,
    // after the pump decided, cannot hide the xrun (once they did, and its drain waited
    // on a lane nobody would mix again).
    assert!(
        Producer::new(&c.mem).mixed().stopped,
        "the pump's word carries the xrun"
    );
    assert!(wake.contains(&0), "the client is woken to recover");
    c.top_up(2048);
    c.publish();
    pump.kick(300_000_000).unwrap();
    assert_eq!(pump.service(300_000_000, &mut wake).unwrap(), Next::Idle);
    assert!(Producer::new(&c.mem).mixed().stopped, "until the client prepares");
    // Its last frames were all played, in order.
    let rec = &pump.sink.record;
    let first = rec.iter().position(|&v| v != 0).unwrap() / 2;
    for k in 0..2048u64 {
        let v = sample(0, k);
        assert_eq!(rec[(first + k as usize) * 2], v, "frame {k}");
    }
    // The same stream with stop_threshold = boundary runs on through the dry spell.
    c.prepare();
    c.top_up(480);
    c.state = State::Running;
    c.publish();
    let t = 400_000_000;
    pump.kick(t).unwrap();
    for ms in 0..100u64 {
        let t = t + ms * 1_000_000;
        now.store(t, Ordering::Relaxed);
        assert_ne!(pump.service(t, &mut wake).unwrap(), Next::Idle, "at {ms} ms");
    }
    assert!(c.consumed() > 4000, "it was taken on, dry, by the device clock");
}

/// A pump kicked at time 0 over a paced fake slave of 960 frames, with one running lane
/// (kept alive by the caller) and the virtual clock it reads.
fn kicked_pump_on_one_lane() -> (Player<FakeSlave>, Arc<std::sync::atomic::AtomicU64>, Arc<LaneMem>) {
    kicked_pump_with_buffer(960)
}

/// The same over a device (and fake slave) of `buffer` frames in 240-frame periods.
fn kicked_pump_with_buffer(buffer: u32) -> (Player<FakeSlave>, Arc<std::sync::atomic::AtomicU64>, Arc<LaneMem>) {
    let dev = DeviceParams {
        buffer_frames: buffer,
        ..dev_240()
    };
    let seg = Arc::new(SegmentWriter::in_memory(&dev));
    let mut engine = engine(&seg);
    let lane = running_lane(&mut engine, 3);
    let now = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut pump = Player::new(engine, FakeSlave::new(buffer as u64, now.clone()), 0);
    pump.kick(0).unwrap();
    (pump, now, lane)
}

#[test]
fn a_paced_slave_is_slept_on_until_its_descriptors_prove_useless() {
    let (mut pump, now, _lane) = kicked_pump_on_one_lane();
    let mut wake = Vec::new();
    // The descriptors should fire at the watermark: the 16 ms margin, 3 of the 960-frame
    // buffer's 4 periods, so once a period is free (240 frames: 5 ms). The wait ends half a
    // watermark after that (360 frames: 7.5 ms) if they have not: a slave that never fires
    // is found out while the device still holds a period.
    assert_eq!(pump.watermark(), 720);
    let at_watermark = 5_000_000;
    let slack = 7_500_000;
    assert_eq!(
        pump.service(0, &mut wake).unwrap(),
        Next::Device {
            by: at_watermark + slack
        }
    );
    assert_eq!(
        pump.sink.avail_min, 240,
        "the slave is told to wake the pump at the watermark"
    );
    assert!(pump.pace.sleeps_on_device());
    // A device wake-up with room mixes; the deadline moves with the progress.
    now.store(5_000_000, Ordering::Relaxed);
    assert_eq!(
        pump.service(5_000_000, &mut wake).unwrap(),
        Next::Device {
            by: 5_000_000 + at_watermark + slack
        }
    );
    // Wake-ups that never find room: after 16 of them the clock paces the slave.
    let mut nexts = Vec::new();
    for _ in 0..20 {
        nexts.push(pump.service(5_000_001, &mut wake).unwrap());
    }
    assert!(
        nexts[..16].iter().all(|n| matches!(n, Next::Device { .. })),
        "{nexts:?}"
    );
    assert!(nexts[16..].iter().all(|n| matches!(n, Next::At(_))), "{nexts:?}");
    assert!(!pump.pace.sleeps_on_device());
}

/// Descriptors that never fire: every wait is ended by its deadline, with room waiting. After
/// a few such waits in a row the clock paces the slave, which goes on being fed.
#[test]
fn a_slave_whose_descriptors_never_fire_is_paced_by_the_clock() {
    let (mut pump, now, _lane) = kicked_pump_on_one_lane();
    let mut wake = Vec::new();
    let mut t = 0;
    let mut next = pump.service(t, &mut wake).unwrap();
    let mut waits = 0;
    while let Next::Device { by } = next {
        waits += 1;
        assert!(waits <= 8, "still sleeping on descriptors that never fire: {next:?}");
        t = by; // nothing fired: the deadline ends the wait
        now.store(t, Ordering::Relaxed);
        next = pump.service(t, &mut wake).unwrap();
    }
    assert!(matches!(next, Next::At(_)), "{next:?}");
    assert!(!pump.pace.sleeps_on_device());
    assert!(
        waits >= 2,
        "one late wake-up is not enough to distrust a device: {waits}"
    );
    // And the clock keeps it fed from then on.
    let before = pump.pace.stats.periods;
    for _ in 0..40 {
        if let Next::At(at) = next {
            t = at.max(t + 1);
        }
        now.store(t, Ordering::Relaxed);
        next = pump.service(t, &mut wake).unwrap();
    }
    assert!(
        pump.pace.stats.periods >= before + 20,
        "{} periods",
        pump.pace.stats.periods - before
    );
}

#[test]
fn hostile_positions_only_hurt_their_own_lane() {
    let dev = DeviceParams {
        format: alsa_sys::SND_PCM_FORMAT_S16_LE,
        rate: RATE,
        channels: 2,
        period_frames: 64,
        buffer_frames: 256,
    };
    let seg = Arc::new(SegmentWriter::in_memory(&dev));
    let mut engine = engine(&seg);
    let s16 = Format::lookup(alsa_sys::SND_PCM_FORMAT_S16_LE).unwrap();
    let (mem0, mem1) = (Arc::new(LaneMem::in_memory()), Arc::new(LaneMem::in_memory()));
    engine.lanes.attach(0, mem0.clone());
    engine.setup(0, s16, 2, RATE, 128, &Default::default()).unwrap();
    engine.lanes.attach(1, mem1.clone());
    engine.setup(1, s16, 2, RATE, 128, &Default::default()).unwrap();
    // Lane 0 plays a constant 1000.
    let g = Geometry::new(4, 128).unwrap();
    let ones: Vec<u8> = (0..128)
        .flat_map(|_| [1000i16.to_le_bytes(), 1000i16.to_le_bytes()].concat())
        .collect();
    let lane0 = Producer::new(&mem0);
    lane0.write(&g, 0, &ones);
    lane0.publish(Ctl {
        epoch: 1,
        state: State::Running,
        appl: 128,
    });
    let mut wake = Vec::new();
    let mut x: u64 = 1;
    for round in 0..2000 {
        // Lane 1 publishes garbage words every period: positions, states, epochs.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        mem1.scribble(0, x); // ctl
        mem1.scribble(1, x.rotate_left(7)); // wake_at
        mem1.scribble(5, x as u32 as u64); // wake_armed (and underruns)
        let out = engine.mix_period(&mut wake).to_vec();
        // Keep lane 0 fed so it always plays 1000.
        let pos = (round + 1) * 64;
        lane0.write(&g, pos as u64 + 64, &ones[..64 * 4]);
        lane0.publish(Ctl {
            epoch: 1,
            state: State::Running,
            appl: pos as u64 + 128,
        });
        for c in out.chunks_exact(2) {
            let v = i16::from_le_bytes([c[0], c[1]]);
            // Lane 1 can add anything in range, but lane 0's 1000 is always under it, and
            // the output is always a valid saturated sample.
            assert!((-32768..=32767).contains(&(v as i32)));
        }
    }
    // Lane 0 alone, after lane 1 is stopped, is exact again.
    Producer::new(&mem1).publish(Ctl {
        epoch: 7,
        state: State::Idle,
        appl: 0,
    });
    let out = engine.mix_period(&mut wake).to_vec();
    assert!(out.chunks_exact(2).all(|c| i16::from_le_bytes([c[0], c[1]]) == 1000));
}

/// Wake-ups of a pump over one second of a device whose descriptors fire as a card's do:
/// at a period boundary, once the slave's avail_min is free. Returns the wake-ups that
/// found work and the periods mixed.
fn wakeups_in_a_second(fill_ahead: bool) -> (u32, u64) {
    // A buffer of 10 periods (50 ms): the watermark keeps 4 of them (the 16 ms margin), so
    // the pump refills 6 at a time.
    let (mut pump, now, _lane) = kicked_pump_with_buffer(2400);
    // A slave that could not rewind would be filled only as far as the client's 2048-frame
    // ring (see `a_slave_that_cannot_rewind_is_filled_only_as_far_as_the_smallest_latency`).
    pump.sink.rewinds = true;
    pump.fill_ahead(fill_ahead);
    let mut wake = Vec::new();
    let mut next = pump.service(0, &mut wake).unwrap();
    let (mut woken, start) = (0, pump.pace.stats.periods);
    for period in 1..=200u64 {
        let t = period * 5_000_000;
        now.store(t, Ordering::Relaxed);
        let due = match next {
            Next::Device { by } => pump.sink.avail().unwrap() as u64 >= pump.sink.avail_min.max(240) || t >= by,
            Next::At(at) => t >= at,
            Next::Idle => false,
        };
        if due {
            let before = pump.pace.stats.periods;
            next = pump.service(t, &mut wake).unwrap();
            woken += u32::from(pump.pace.stats.periods > before);
        }
    }
    (woken, pump.pace.stats.periods - start)
}

/// Filling ahead, a pump whose one client holds plenty wakes once per buffer less the
/// margin, not once per period, and the device is fed just the same.
#[test]
fn filling_ahead_wakes_once_per_buffer_less_the_margin() {
    let (ahead, mixed_ahead) = wakeups_in_a_second(true);
    let (every, mixed_every) = wakeups_in_a_second(false);
    eprintln!("MEASURE wake-ups in 1 s, 240-frame periods, 2400-frame buffer: {ahead} filling ahead, {every} not");
    assert!(
        every >= 190,
        "without filling ahead the pump wakes every period: {every}"
    );
    assert!(ahead <= 36, "filling ahead it wakes every 6 periods: {ahead}");
    // The same audio either way: 200 periods of it, give or take the buffer's worth.
    assert!(
        mixed_ahead.abs_diff(mixed_every) <= 10,
        "{mixed_ahead} and {mixed_every} periods mixed"
    );
}

/// A device like rdmix's default, filling ahead: 256-frame periods in a 16384-frame buffer
/// (a third of a second), over a fake slave that gives back what it has not played.
fn rewinding_pump(rewinds: bool, rings: &[u64]) -> (Player<FakeSlave>, Vec<Client>, Arc<std::sync::atomic::AtomicU64>) {
    pump_of_period(256, rewinds, rings)
}

fn pump_of_period(
    period: u32,
    rewinds: bool,
    rings: &[u64],
) -> (Player<FakeSlave>, Vec<Client>, Arc<std::sync::atomic::AtomicU64>) {
    let dev = DeviceParams {
        period_frames: period,
        buffer_frames: 16384,
        ..dev_240()
    };
    let seg = Arc::new(SegmentWriter::in_memory(&dev));
    let mut engine = engine(&seg);
    let s16 = Format::lookup(alsa_sys::SND_PCM_FORMAT_S16_LE).unwrap();
    let clients = rings
        .iter()
        .enumerate()
        .map(|(idx, &ring)| {
            let mem = Arc::new(LaneMem::in_memory());
            engine.lanes.attach(idx, mem.clone());
            engine.setup(idx, s16, 2, RATE, ring, &Default::default()).unwrap();
            Client {
                idx,
                mem,
                geom: Geometry::new(4, ring as usize).unwrap(),
                epoch: 0,
                state: State::Idle,
                appl: 0,
                quiet: true,
                constant: None,
                writes_every: 1,
                late_by: None,
                write_at: None,
            }
        })
        .collect();
    let now = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut slave = FakeSlave::new(16384, now.clone());
    slave.rewinds = rewinds;
    (Player::new(engine, slave, 0), clients, now)
}

/// What happens to the clients at each millisecond (see `run`).
type Script<'a> = &'a mut dyn FnMut(u64, &mut [Client], &mut Player<FakeSlave>) -> bool;

/// Runs `pump` for `ms` milliseconds of virtual time from `from_ms`, as the process loop
/// would: each running client tops up its ring every millisecond, `script(ms, clients)`
/// changes their states (true: a client kicked the pump), and the pump is served when its
/// descriptors fire (its avail_min is free), its deadline falls, or a client kicked it.
/// Returns the largest slave delay seen after the first 200 ms.
fn run(
    pump: &mut Player<FakeSlave>,
    clients: &mut [Client],
    now: &std::sync::atomic::AtomicU64,
    ms: std::ops::Range<u64>,
    script: Script,
) -> u64 {
    let mut wake = Vec::new();
    let mut next = Next::Idle;
    let mut most = 0;
    for t_ms in ms {
        let t = t_ms * 1_000_000;
        now.store(t, Ordering::Relaxed);
        let kicked = script(t_ms, clients, pump);
        for c in clients.iter_mut() {
            if c.state != State::Running {
                continue;
            }
            match c.late_by {
                None if t_ms % c.writes_every == 0 => c.top_up(1 << 20),
                Some(_) if c.write_at.is_some_and(|at| t_ms >= at) => {
                    c.write_at = None;
                    c.top_up(1 << 20);
                    c.wake_with_room();
                }
                _ => {}
            }
        }
        if kicked {
            pump.kick(t).unwrap();
        }
        let due = kicked
            || match next {
                Next::Device { by } => pump.sink.avail().unwrap() as u64 >= pump.sink.avail_min.max(256) || t >= by,
                Next::At(at) => t >= at,
                Next::Idle => false,
            };
        if due {
            next = pump.service(t, &mut wake).unwrap();
        }
        for idx in wake.drain(..) {
            let c = &mut clients[idx];
            if let Some(late) = c.late_by {
                c.write_at.get_or_insert(t_ms + late);
            }
        }
        if t_ms >= 200 {
            most = most.max(pump.sink.delay().unwrap() as u64);
        }
    }
    most
}

fn start(c: &mut Client) -> bool {
    c.prepare();
    c.top_up(1 << 20);
    c.state = State::Running;
    c.publish();
    true
}

/// The frames the fake slave played (all it was given and kept), one per frame.
fn played_frames(pump: &Player<FakeSlave>) -> Vec<i16> {
    pump.sink.record.chunks_exact(CH).map(|f| f[0]).collect()
}

/// A 10 ms client starts while a 500 ms one plays with a third of a second queued in the
/// slave, then the 500 ms one drops. The slave is rewound each time: the new sound is heard
/// within the 10 ms client's latency plus a period, and the dropped one ends within that
/// too. Every frame the slave played is checked: the long client's stream is unbroken up
/// to its end, the short one's is exact from its frame 0, and nothing else is there.
#[test]
fn a_new_sound_is_heard_and_a_dropped_one_ends_within_a_period_of_the_shortest_latency() {
    let (mut pump, mut clients, now) = rewinding_pump(true, &[24000, 480]);
    let (mut heard_from, mut ended_from) = (0, 0);
    let most = run(&mut pump, &mut clients, &now, 0..1100, &mut |ms, c, pump| match ms {
        0 => start(&mut c[0]),
        400 => {
            heard_from = pump.sink.played();
            start(&mut c[1])
        }
        700 => {
            ended_from = pump.sink.played();
            c[0].state = State::Idle; // snd_pcm_drop
            c[0].publish();
            true
        }
        _ => false,
    });
    let stats = pump.rewinds();
    assert!(pump.rewinding(), "the slave's rewinds were proven");
    assert!(stats.done >= 2, "a rewind at the start and at the drop: {stats:?}");
    assert!(
        most > 12000,
        "a lone 500 ms client lets the slave fill ahead: at most {most} queued"
    );
    let (a, b) = (&clients[0], &clients[1]);
    let start_a = Producer::new(&a.mem).start_mix();
    let start_b = Producer::new(&b.mem).start_mix();
    let bound = 480 + 256;
    let heard = start_b - heard_from;
    eprintln!("MEASURE after a rewind, a 10 ms client's frame 0 plays {heard} frames after its start (bound {bound})");
    assert!(
        heard <= bound,
        "frame 0 of the 10 ms client plays {heard} frames after its start"
    );
    let rec = played_frames(&pump);
    let end_a = (ended_from..rec.len() as u64)
        .find(|&pos| {
            let with_a = a.level(pos - start_a) as i32 + b.level(pos - start_b) as i32;
            rec[pos as usize] as i32 != with_a
        })
        .expect("the dropped client ends");
    let ended = end_a - ended_from;
    eprintln!("MEASURE after a rewind, a dropped client's sound ends {ended} frames after its drop (bound {bound})");
    assert!(ended <= bound, "the dropped client went on for {ended} frames");
    for (pos, &got) in rec.iter().enumerate() {
        let pos = pos as u64;
        let mut want = 0i32;
        if pos >= start_a && pos < end_a {
            want += a.level(pos - start_a) as i32;
        }
        if pos >= start_b {
            want += b.level(pos - start_b) as i32;
        }
        assert_eq!(
            got as i32, want,
            "frame {pos}: a from {start_a} to {end_a}, b from {start_b}"
        );
    }
    assert!(rec.len() as u64 > start_b + 48000 / 2, "the 10 ms client played on");
    assert_eq!(Producer::new(&b.mem).underruns(), 0, "the 10 ms client never underran");
    assert_eq!(pump.pace.stats.slave_xruns, 0);
}

/// A client pauses with a third of a second queued in the slave and resumes later. Its
/// sound stops within its latency plus a period, and not one of its frames is lost or
/// played twice: those the slave gave back play first when it resumes.
#[test]
fn a_pause_is_heard_at_once_and_loses_nothing() {
    let (mut pump, mut clients, now) = rewinding_pump(true, &[24000]);
    let mut paused_at = 0;
    run(&mut pump, &mut clients, &now, 0..1200, &mut |ms, c, pump| match ms {
        0 => start(&mut c[0]),
        500 => {
            paused_at = pump.sink.played();
            c[0].state = State::Paused;
            c[0].publish();
            true
        }
        800 => {
            c[0].state = State::Running;
            c[0].publish();
            true
        }
        _ => false,
    });
    assert!(pump.rewinds().done >= 1, "the pause was rewound: {:?}", pump.rewinds());
    let a = &clients[0];
    let rec = played_frames(&pump);
    let first = rec.iter().position(|&v| v != 0).unwrap() as u64;
    // Runs of the client's stream, each the next frames after the last: the pause is the
    // one gap.
    let (mut k, mut pos, mut gaps) = (0u64, first, Vec::new());
    while (pos as usize) < rec.len() {
        if rec[pos as usize] == a.level(k) {
            k += 1;
            pos += 1;
            continue;
        }
        let silent = rec[pos as usize..].iter().take_while(|&&v| v == 0).count() as u64;
        assert!(
            silent > 0,
            "frame {pos}: {} is neither frame {k} nor silence",
            rec[pos as usize]
        );
        gaps.push((pos, silent));
        pos += silent;
    }
    assert_eq!(gaps.len(), 1, "one gap, the pause: {gaps:?}");
    let stopped = gaps[0].0 - paused_at;
    eprintln!("MEASURE after a rewind, a paused client's sound stops {stopped} frames after its pause");
    assert!(stopped <= 24000 + 256, "it played {stopped} frames past its pause");
    assert!(
        stopped <= 2 * 256 + 256,
        "the rewind left at most its margin: {stopped}"
    );
    assert!(k > 48000, "the stream went on after the pause: {k} frames");
}

/// A slave that cannot give back what it holds is filled no further than the smallest
/// latency any running client asked for, so that a change is heard within it.
#[test]
fn a_slave_that_cannot_rewind_is_filled_only_as_far_as_the_smallest_latency() {
    let (mut pump, mut clients, now) = rewinding_pump(false, &[24000, 2400]);
    let most = run(&mut pump, &mut clients, &now, 0..1000, &mut |ms, c, _| match ms {
        0 => start(&mut c[0]) | start(&mut c[1]),
        _ => false,
    });
    assert!(!pump.rewinding(), "the slave was found not to rewind");
    eprintln!("MEASURE a slave that cannot rewind held at most {most} frames for a 2400-frame client");
    assert!(most <= 2400 + 256, "it held {most} frames");
    assert!(most >= 1024, "it was still filled ahead: {most} frames");
}

/// A 500 ms client plays for 3 s while a 10 ms one starts, drops, runs dry into an xrun and
/// starts again, over and over: each change rewinds the slave. The long client's stream is
/// checked frame by frame through all of them: each of its frames exactly once, where its
/// start says, and besides it only the short client's constant or silence.
#[test]
fn a_stream_stays_exact_through_many_rewinds() {
    let (mut pump, mut clients, now) = rewinding_pump(true, &[24000, 480]);
    clients[1].constant = Some(3);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next_change = 300u64;
    let mut dry_until = 0u64;
    run(&mut pump, &mut clients, &now, 0..3000, &mut |ms, c, _| {
        if ms == 0 {
            return start(&mut c[0]);
        }
        let short = &mut c[1];
        if ms < dry_until && short.state == State::Running {
            // Starve it: undo the top-up the loop is about to make, by not running.
            short.state = State::Prepared;
            short.publish();
        }
        if ms < next_change {
            return false;
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        next_change = ms + 20 + rng % 120;
        match (short.state, rng % 3) {
            (State::Running, 0) => {
                short.state = State::Idle; // snd_pcm_drop
                short.publish();
                true
            }
            (State::Running, 1) => {
                dry_until = ms + 40; // an underrun past its stop point
                false
            }
            _ => start(short),
        }
    });
    let stats = pump.rewinds();
    assert!(stats.done >= 10, "the changes rewound the slave: {stats:?}");
    let a = &clients[0];
    let start_a = Producer::new(&a.mem).start_mix();
    let rec = played_frames(&pump);
    assert!(rec.len() as u64 > start_a + 2 * 48000, "the long client played on");
    for (pos, &got) in rec.iter().enumerate().skip(start_a as usize) {
        let k = pos as u64 - start_a;
        let rest = got as i32 - a.level(k) as i32;
        assert!(
            rest == 0 || rest == 3,
            "frame {pos} (the long client's {k}): {got}, the long client's {} and {rest} besides",
            a.level(k)
        );
    }
    assert_eq!(Producer::new(&a.mem).underruns(), 0, "the long client never underran");
    assert_eq!(pump.pace.stats.slave_xruns, 0);
}

/// Filling ahead, the pump takes all a small client's ring holds at once, so the ring is
/// empty long before a card would have played it. A lane that lacks its next period at the
/// watermark is waited for (the slave still holds plenty) down to the last call, half the
/// watermark, and only then mixed short. A client that writes in that while never
/// underruns; one that writes nothing more underruns once, with the slave still far from
/// dry.
#[test]
fn a_lane_that_lacks_its_period_at_the_watermark_is_waited_for() {
    for writes_at in [None, Some(())] {
        let (mut pump, mut clients, now) = pump_of_period(64, true, &[24000, 256]);
        clients[1].writes_every = u64::MAX; // only when the script says
        let watermark = pump.watermark();
        let (mut short_at, mut wrote_at, mut filled) = (None, None, false);
        run(&mut pump, &mut clients, &now, 0..1000, &mut |ms, c, pump| {
            if ms == 0 {
                return start(&mut c[0]) | start(&mut c[1]);
            }
            let queued = pump.sink.written - pump.sink.played();
            let b = &mut c[1];
            if short_at.is_none() && Producer::new(&b.mem).underruns() > 0 {
                short_at = Some(queued);
            }
            filled |= queued > watermark;
            // Once the fill has fallen below the watermark, above the last call: write the
            // rest of the stream.
            if writes_at.is_some() && wrote_at.is_none() && filled && queued < watermark * 3 / 4 {
                wrote_at = Some(queued);
                b.writes_every = 1;
            }
            false
        });
        let b = &clients[1];
        let underruns = Producer::new(&b.mem).underruns();
        match writes_at {
            None => {
                let q = short_at.expect("the silent client was mixed short in the end");
                eprintln!(
                    "MEASURE a lane that lacked its period was mixed short with {q} frames queued (watermark {watermark})"
                );
                assert!(
                    q <= watermark / 2 + 48,
                    "mixed short at {q} frames queued, watermark {watermark}"
                );
                assert!(q >= 2 * 64, "the slave was not left to run dry: {q} frames");
            }
            Some(()) => {
                eprintln!("MEASURE a client that wrote with {wrote_at:?} frames queued: {underruns} underruns");
                assert!(wrote_at.is_some(), "the fill fell below the watermark");
                assert_eq!(
                    underruns, 0,
                    "the client that wrote before the last call never underran"
                );
                assert!(b.appl > 48000 / 2, "it played on: {} frames", b.appl);
            }
        }
        assert_eq!(Producer::new(&clients[0].mem).underruns(), 0);
        assert_eq!(pump.pace.stats.slave_xruns, 0);
    }
}

/// The low-latency promise, in process: eight clients with 256-frame rings (5.3 ms)
/// on 64-frame device periods, filling ahead, each woken when it has room for a period and
/// scheduled only 1 to 3 ms later (a loaded machine). A card would never underrun them:
/// woken with 4 ms left, each writes within 3. Nor may the pump, though it takes all a ring
/// holds at once and the least filled lane sets how far it mixes.
#[test]
fn eight_clients_of_64_frame_periods_scheduled_late_never_underrun() {
    let late = [1, 3, 2, 3, 1, 3, 2, 3];
    let (mut pump, mut clients, now) = pump_of_period(64, true, &[256; 8]);
    for (c, &ms) in clients.iter_mut().zip(&late) {
        c.late_by = Some(ms);
    }
    run(&mut pump, &mut clients, &now, 0..3000, &mut |ms, c, _| {
        ms == 0
            && c.iter_mut().fold(false, |_, c| {
                start(c);
                c.wake_with_room();
                true
            })
    });
    for c in &clients {
        let underruns = Producer::new(&c.mem).underruns();
        eprintln!(
            "MEASURE client {} (writes {:?} ms after its wake-up): {underruns} underruns",
            c.idx, c.late_by
        );
        assert!(c.appl > 48000 * 5 / 2, "client {} played on: {} frames", c.idx, c.appl);
        assert_eq!(underruns, 0, "client {} never underran", c.idx);
    }
    assert_eq!(pump.pace.stats.slave_xruns, 0);
}

/// Two clients of constant levels, 8000 and 4000, play with a third of a second queued in
/// the slave. Lane 0 is turned down by 6 dB, then the master by 6 dB, then lane 0 is muted,
/// then both go back to 0 dB. Each change is heard within the rewind's margin and a period
/// of being made (the slave is rewound for it), ramps over one period with no step larger
/// than the ramp's, and settles exactly where the gains put it; back at 0 dB the sum is
/// exact again, and lane 1, never touched, is in every sum at its full level.
#[test]
fn a_volume_change_is_heard_at_once_ramped_and_lands_exactly() {
    use rdmix::dsp::gain::Volume;
    let (mut pump, mut clients, now) = rewinding_pump(true, &[24000, 24000]);
    clients[0].constant = Some(8000);
    clients[1].constant = Some(4000);
    let minus_6 = Volume::from_cdb(-600, true);
    let g = minus_6.gain();
    let steps: [(u64, Option<usize>, Volume); 5] = [
        (300, Some(0), minus_6),
        (500, None, minus_6),
        (700, Some(0), Volume { on: false, ..minus_6 }),
        (900, Some(0), Volume::default()),
        (1100, None, Volume::default()),
    ];
    let mut made = Vec::new();
    run(&mut pump, &mut clients, &now, 0..1400, &mut |ms, c, pump| {
        if ms == 0 {
            start(&mut c[0]);
            return start(&mut c[1]);
        }
        match steps.iter().find(|s| s.0 == ms) {
            Some(&(_, lane, v)) => {
                made.push(pump.sink.played());
                pump.set_volume(lane, v).unwrap();
                true
            }
            None => false,
        }
    });
    assert!(pump.rewinding(), "the slave's rewinds were proven");
    let rec = played_frames(&pump);
    let round = |x: f64| x.round() as i32;
    // What each stretch settles at: lane 0 at its gain, the master over the sum.
    let levels = [
        12000,
        round(8000.0 * g) + 4000,
        round((round(8000.0 * g) + 4000) as f64 * g),
        round(4000.0 * g),
        round(12000.0 * g),
        12000,
    ];
    let start = Producer::new(&clients[0].mem)
        .start_mix()
        .max(Producer::new(&clients[1].mem).start_mix());
    let mut at = start as usize;
    for (k, &level) in levels.iter().enumerate() {
        // Settled at the level before the change, up to where it is heard.
        let from = at;
        while at < rec.len() && rec[at] as i32 == level {
            at += 1;
        }
        assert!(
            at > from + 256,
            "stretch {k} at {level}: only {} frames from {from}",
            at - from
        );
        let Some(&when) = made.get(k) else {
            assert_eq!(at, rec.len(), "the last stretch holds its level to the end");
            break;
        };
        let heard = at as u64 - when;
        eprintln!("MEASURE volume change {k} heard {heard} frames after it was made");
        // Within one device period (the slave keeps half of one for a volume change).
        assert!(
            heard <= 256,
            "change {k} heard {heard} frames after it was made, more than a device period"
        );
        // The ramp: one period to the next level, each step no larger than the ramp's.
        let next = levels[k + 1];
        let ramp_end = (at..rec.len())
            .find(|&i| rec[i] as i32 == next)
            .expect("the next level is reached");
        assert!(ramp_end - at < 256, "change {k} ramps over {} frames", ramp_end - at);
        let most = (level - next).abs() / 256 + 2;
        for i in at.saturating_sub(1)..ramp_end {
            let step = (rec[i + 1] as i32 - rec[i] as i32).abs();
            assert!(
                step <= most,
                "change {k}: a step of {step} at frame {i} (at most {most})"
            );
        }
        at = ramp_end;
    }
    assert_eq!(pump.pace.stats.slave_xruns, 0);
}
