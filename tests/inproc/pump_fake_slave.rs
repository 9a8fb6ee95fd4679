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
    /// `record` lengths (in samples) when the pump stopped the device, and prepares since.
    stops: Vec<usize>,
    prepares: u32,
    /// What the pump last asked its descriptors to wait for (0: nothing yet).
    avail_min: u64,
}

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
            prepares: 0,
            avail_min: 0,
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
}

impl Client {
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
                let v = sample(self.idx, k).to_le_bytes();
                [v, v].concat()
            })
            .collect();
        Producer::new(&self.mem).write(&self.geom, self.appl, &bytes);
        self.appl += n;
        self.publish();
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
    assert!(
        stop_at - last_sound >= 960 * 2,
        "only silence is cut: {} samples of it after the last sound",
        stop_at - last_sound
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
