//! `type rdmixfake`: the copy-only sound card rdmix's end-to-end tests play into.
//!
//! It behaves like a driver with no mmap: only RW_INTERLEAVED access, one fixed format,
//! rate and channel count, and it consumes frames at the real rate from the moment it is
//! started (CLOCK_MONOTONIC), reporting an underrun when it runs dry. Every frame written
//! is appended to a WAV file, so the recording is exactly what the pump handed over.
//!
//! Options: `file` (WAV path, required), `format`, `rate`, `channels`, `log` (a text file
//! that gets one line per hw_params with the access asked for), and fault injection:
//! `fail_after` frames then `fail_errno` (default EIO) from every write; `wedge_after`
//! frames then the device stops consuming for good; `mmap_only` to offer no RW access;
//! `append` to append raw frames (no header) across opens.
//!
//! Opened for capture it is a microphone with a known signal, paced the same way: from
//! its start it captures at the real rate, reports an overrun when the program falls a
//! buffer behind, and frame `k` (counted since open, across restarts) holds `k` modulo
//! 65536 as a 16-bit sample on channel 0 and a `tone` Hz sine (default 1000) at half scale
//! on every other channel. So a recording proves by itself that it got every frame, in
//! order, and a converted one can be checked for level and pitch.
//!
//! `loop "FILE"` makes the two sides a loop-back cable instead, through FILE, for
//! round-trip tests: what the playback side plays at an instant is what the capture side
//! captures at that instant (silence where nothing played). Both run on CLOCK_MONOTONIC,
//! so two processes (a playback pump and a capture pump) share one timeline.

// snd_pcm_uframes_t is 32 bits on 32-bit targets: the casts to u64 are not no-ops there.
#![allow(clippy::unnecessary_cast)]

use std::ffi::{c_char, c_int, c_uint, c_ushort, c_void};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use alsa_sys as a;
use asound_module_pcm_rdmix::alsa::conf::{Conf, Value};
use asound_module_pcm_rdmix::alsa::ffi::*;
use asound_module_pcm_rdmix::dsp::format::Format;
use asound_module_pcm_rdmix::dsp::mix::Mixer;
use asound_module_pcm_rdmix::sys::time::now_ns;
use libc::pollfd;

/// The loop-back cable: a ring of the last `LOOP_SECONDS` of played frames, by the instant
/// they play (frames counted since boot at the device rate), each tagged with that instant
/// so that a stale one reads as silence.
struct Loop {
    file: File,
    fb: usize,
    rate: u32,
}

const LOOP_SECONDS: u64 = 4;

impl Loop {
    fn open(path: &str, fb: usize, rate: u32) -> std::io::Result<Loop> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        let l = Loop { file, fb, rate };
        if l.file.metadata()?.len() < l.slots() * (8 + fb as u64) {
            l.file.set_len(l.slots() * (8 + fb as u64))?;
        }
        Ok(l)
    }
    fn slots(&self) -> u64 {
        LOOP_SECONDS * self.rate as u64
    }
    /// The frame playing at `t_ns`.
    fn at(&self, t_ns: u64) -> u64 {
        (t_ns as u128 * self.rate as u128 / 1_000_000_000) as u64
    }
    /// The (up to two) slot runs holding frames `[abs, abs + n)`.
    fn runs(&self, abs: u64, n: u64) -> [(u64, u64, u64); 2] {
        let start = abs % self.slots();
        let first = n.min(self.slots() - start);
        [(start, 0, first), (0, first, n - first)]
    }
    fn put(&self, abs: u64, frames: &[u8]) {
        let n = (frames.len() / self.fb) as u64;
        for (slot, from, len) in self.runs(abs, n) {
            let tags: Vec<u8> = (0..len).flat_map(|i| (abs + from + i).to_le_bytes()).collect();
            let _ = self.file.write_all_at(&tags, slot * 8);
            let data = &frames[(from as usize) * self.fb..((from + len) as usize) * self.fb];
            let _ = self.file.write_all_at(data, self.slots() * 8 + slot * self.fb as u64);
        }
    }
    fn clear(&self, abs: u64, n: u64) {
        for (slot, _, len) in self.runs(abs, n.min(self.slots())) {
            let _ = self.file.write_all_at(&vec![0xff; len as usize * 8], slot * 8);
        }
    }
    fn get(&self, abs: u64, out: &mut [u8]) {
        let n = (out.len() / self.fb) as u64;
        for (slot, from, len) in self.runs(abs, n) {
            let mut tags = vec![0u8; len as usize * 8];
            let _ = self.file.read_exact_at(&mut tags, slot * 8);
            let o = &mut out[(from as usize) * self.fb..((from + len) as usize) * self.fb];
            let _ = self.file.read_exact_at(o, self.slots() * 8 + slot * self.fb as u64);
            for (i, t) in tags.chunks_exact(8).enumerate() {
                if u64::from_le_bytes(t.try_into().unwrap()) != abs + from + i as u64 {
                    o[i * self.fb..(i + 1) * self.fb].fill(0);
                }
            }
        }
    }
}

/// What the device's poll descriptor does: a period timer, as a card's interrupt; or, as
/// some plugins' descriptors do, never fire or always fire whatever the device holds.
#[derive(Clone, Copy, PartialEq)]
enum PollMode {
    Timer,
    Never,
    Always,
}

struct Fake {
    io: snd_pcm_ioplug_t,
    poll_mode: PollMode,
    /// The descriptor polled in the `never` and `always` modes (an eventfd), else -1.
    poll_fd: c_int,
    /// The loop-back cable, and (playback) frames written before the start, not yet on it.
    cable: Option<Loop>,
    pending: Vec<u8>,
    /// Opened for capture: `wav` is unused and the signal is generated.
    capture: bool,
    /// Capture: frames captured in earlier runs since open, so the counter goes on.
    cap_base: u64,
    tone: f64,
    wav: File,
    log: Option<File>,
    format: Format,
    rate: u32,
    channels: u32,
    timer: c_int,
    written: u64,
    played_base: u64,
    /// `played_base` when the device last started.
    run_base: u64,
    start_ns: Option<u64>,
    boundary: u64,
    /// The sw_params' avail_min: poll reports ready only once this much is free (or
    /// captured), as a card's driver does.
    avail_min: u64,
    data_bytes: u64,
    /// Frames recorded since open, across prepares: the recording's frame index.
    recorded: u64,
    fail_after: Option<u64>,
    fail_errno: i32,
    wedge_after: Option<u64>,
    append: bool,
}

impl Fake {
    /// Capture: frames captured since the last start.
    fn captured(&self) -> u64 {
        self.start_ns.map_or(0, |t0| {
            ((now_ns() - t0) as u128 * self.rate as u128 / 1_000_000_000) as u64
        })
    }

    /// Capture: the signal's frames `[first, first + n)`, counted since open, in the
    /// device's format.
    fn signal(&self, first: u64, n: usize, out: &mut [u8]) {
        let ch = self.channels as usize;
        let mut f = vec![0f32; n * ch];
        for (i, frame) in f.chunks_exact_mut(ch).enumerate() {
            let k = first + i as u64;
            frame[0] = (k as u16 as i16) as f32 / 32768.0;
            let phase = 2.0 * std::f64::consts::PI * self.tone * (k as f64 / self.rate as f64);
            for s in &mut frame[1..] {
                *s = (0.5 * phase.sin()) as f32;
            }
        }
        let identity: Vec<f32> = (0..ch * ch).map(|i| if i / ch == i % ch { 1.0 } else { 0.0 }).collect();
        let mut m = Mixer::new(self.format, n * ch);
        m.clear(n * ch);
        m.add_mapped(&f, ch, &identity);
        m.finish(out);
    }

    fn played(&self) -> u64 {
        let Some(t0) = self.start_ns else {
            return self.played_base;
        };
        let mut p = self.played_base + ((now_ns() - t0) as u128 * self.rate as u128 / 1_000_000_000) as u64;
        if let Some(w) = self.wedge_after {
            p = p.min(w);
        }
        p.min(self.written)
    }

    fn wav_header(&self) -> [u8; 44] {
        let bits = self.format.sample_bytes() as u16 * 8;
        let block = bits / 8 * self.channels as u16;
        let float = matches!(
            self.format.kind,
            asound_module_pcm_rdmix::dsp::format::Kind::Float { .. }
        );
        let mut h = [0u8; 44];
        h[0..4].copy_from_slice(b"RIFF");
        h[4..8].copy_from_slice(&((36 + self.data_bytes) as u32).to_le_bytes());
        h[8..16].copy_from_slice(b"WAVEfmt ");
        h[16..20].copy_from_slice(&16u32.to_le_bytes());
        h[20..22].copy_from_slice(&(if float { 3u16 } else { 1u16 }).to_le_bytes());
        h[22..24].copy_from_slice(&(self.channels as u16).to_le_bytes());
        h[24..28].copy_from_slice(&self.rate.to_le_bytes());
        h[28..32].copy_from_slice(&(self.rate * block as u32).to_le_bytes());
        h[32..34].copy_from_slice(&block.to_le_bytes());
        h[34..36].copy_from_slice(&bits.to_le_bytes());
        h[36..40].copy_from_slice(b"data");
        h[40..44].copy_from_slice(&(self.data_bytes as u32).to_le_bytes());
        h
    }
}

unsafe fn fake<'a>(io: *mut snd_pcm_ioplug_t) -> &'a mut Fake {
    // SAFETY: private_data is the Fake that contains io; ioplug serialises the callbacks.
    unsafe { &mut *((*io).private_data as *mut Fake) }
}

fn guard<R>(fail: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fail)
}

unsafe extern "C" fn start(io: *mut snd_pcm_ioplug_t) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: see `fake`.
        let f = unsafe { fake(io) };
        let t = now_ns();
        f.start_ns = Some(t);
        f.run_base = f.played_base;
        if let Some(c) = &f.cable
            && !f.capture
        {
            c.put(c.at(t), &f.pending);
            f.pending.clear();
        }
        if f.capture {
            if let Some(log) = &mut f.log {
                let _ = writeln!(log, "capture start ns={t} at={}", f.cap_base);
            }
        } else if let Some(log) = &mut f.log {
            // Ground truth for delay tests: the device plays frame `at` + n at `t` + n / rate.
            let _ = writeln!(
                log,
                "start ns={t} at={} recorded={} written={} base={}",
                f.recorded - (f.written - f.played_base),
                f.recorded,
                f.written,
                f.played_base
            );
        }
        let period_ns = f.io.period_size as u64 * 1_000_000_000 / f.rate as u64;
        // Whole seconds apart: a period may be longer than one, and tv_nsec is 32-bit on
        // 32-bit targets.
        let period = libc::timespec {
            tv_sec: (period_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (period_ns % 1_000_000_000) as libc::c_long,
        };
        let spec = libc::itimerspec {
            it_interval: period,
            it_value: period,
        };
        // SAFETY: arms our timerfd.
        unsafe { libc::timerfd_settime(f.timer, 0, &spec, std::ptr::null_mut()) };
        0
    })
}

const OFF: libc::itimerspec = libc::itimerspec {
    it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
    it_value: libc::timespec { tv_sec: 0, tv_nsec: 0 },
};

unsafe extern "C" fn stop(io: *mut snd_pcm_ioplug_t) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: see `fake`.
        let f = unsafe { fake(io) };
        if f.capture {
            f.cap_base += f.captured();
            f.start_ns = None;
            if let Some(log) = &mut f.log {
                let _ = writeln!(log, "capture stop ns={} at={}", now_ns(), f.cap_base);
            }
            // SAFETY: disarms our timerfd.
            unsafe { libc::timerfd_settime(f.timer, 0, &OFF, std::ptr::null_mut()) };
            return 0;
        }
        f.played_base = f.played();
        if let (Some(c), Some(t0)) = (&f.cable, f.start_ns) {
            // What was queued and will never play comes off the cable.
            c.clear(c.at(t0) + (f.played_base - f.run_base), f.written - f.played_base);
        }
        f.pending.clear();
        if let Some(log) = &mut f.log {
            let dropped = f.written - f.played_base;
            let _ = writeln!(log, "stop ns={} recorded={} dropped={dropped}", now_ns(), f.recorded);
        }
        f.written = f.played_base;
        f.start_ns = None;
        // SAFETY: disarms our timerfd: a stopped device has no period interrupts.
        unsafe { libc::timerfd_settime(f.timer, 0, &OFF, std::ptr::null_mut()) };
        0
    })
}

unsafe extern "C" fn pointer(io: *mut snd_pcm_ioplug_t) -> a::snd_pcm_sframes_t {
    guard(-libc::EIO as _, || {
        // SAFETY: see `fake`.
        let f = unsafe { fake(io) };
        if f.capture {
            let hw = f.captured();
            if hw.saturating_sub(f.io.appl_ptr as u64) > f.io.buffer_size as u64 {
                return -libc::EPIPE as _; // the program fell a buffer behind: an overrun
            }
            return (hw % f.boundary.max(1)) as a::snd_pcm_sframes_t;
        }
        let p = f.played();
        if f.start_ns.is_some() && p >= f.written && f.wedge_after.is_none_or(|w| p < w) {
            return -libc::EPIPE as _; // ran dry: an underrun, as a driver reports it
        }
        (p % f.boundary.max(1)) as a::snd_pcm_sframes_t
    })
}

unsafe extern "C" fn transfer(
    io: *mut snd_pcm_ioplug_t,
    areas: *const a::snd_pcm_channel_area_t,
    offset: a::snd_pcm_uframes_t,
    size: a::snd_pcm_uframes_t,
) -> a::snd_pcm_sframes_t {
    guard(-libc::EIO as _, || {
        // SAFETY: see `fake`.
        let f = unsafe { fake(io) };
        let fb = f.format.sample_bytes() * f.channels as usize;
        if f.capture {
            // SAFETY: RW_INTERLEAVED: one area, frames contiguous from `offset`, ours to fill.
            let out = unsafe {
                let ar = &*areas;
                std::slice::from_raw_parts_mut(
                    (ar.addr as *mut u8).add(ar.first as usize / 8 + offset as usize * fb),
                    size as usize * fb,
                )
            };
            match (&f.cable, f.start_ns) {
                (Some(c), Some(t0)) => c.get(c.at(t0) + f.io.appl_ptr as u64, out),
                (Some(_), None) => out.fill(0),
                (None, _) => f.signal(f.cap_base + f.io.appl_ptr as u64, size as usize, out),
            }
            return size as a::snd_pcm_sframes_t;
        }
        if let Some(n) = f.fail_after
            && f.written >= n
        {
            return -f.fail_errno as _;
        }
        // SAFETY: RW_INTERLEAVED: one area, frames contiguous from `offset`.
        let data = unsafe {
            let ar = &*areas;
            std::slice::from_raw_parts(
                (ar.addr as *const u8).add(ar.first as usize / 8 + offset as usize * fb),
                size as usize * fb,
            )
        };
        if f.wav.write_all(data).is_err() {
            return -libc::EIO as _;
        }
        if let Some(c) = &f.cable {
            match f.start_ns {
                Some(t0) => c.put(c.at(t0) + f.written - f.run_base, data),
                None => f.pending.extend_from_slice(data),
            }
        }
        f.data_bytes += data.len() as u64;
        if !f.append {
            let _ = f.wav.write_all_at(&f.wav_header(), 0);
        }
        f.written += size as u64;
        f.recorded += size as u64;
        size as a::snd_pcm_sframes_t
    })
}

unsafe extern "C" fn close(io: *mut snd_pcm_ioplug_t) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: reclaims the Box made in open; the last callback.
        let f = unsafe { Box::from_raw((*io).private_data as *mut Fake) };
        if !f.append && !f.capture {
            let _ = f.wav.write_all_at(&f.wav_header(), 0);
        }
        // SAFETY: our timerfd and eventfd.
        unsafe {
            libc::close(f.timer);
            if f.poll_fd >= 0 {
                libc::close(f.poll_fd);
            }
        }
        0
    })
}

unsafe extern "C" fn hw_params(io: *mut snd_pcm_ioplug_t, _p: *mut a::snd_pcm_hw_params_t) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: see `fake`.
        let f = unsafe { fake(io) };
        if let Some(log) = &mut f.log {
            let access = match f.io.access {
                a::SND_PCM_ACCESS_RW_INTERLEAVED => "RW_INTERLEAVED",
                a::SND_PCM_ACCESS_MMAP_INTERLEAVED => "MMAP_INTERLEAVED",
                _ => "OTHER",
            };
            let _ = writeln!(
                log,
                "hw_params access={access} format={} rate={} channels={} period={} buffer={}",
                f.format.name(),
                f.rate,
                f.channels,
                f.io.period_size,
                f.io.buffer_size
            );
        }
        0
    })
}

unsafe extern "C" fn sw_params(io: *mut snd_pcm_ioplug_t, p: *mut a::snd_pcm_sw_params_t) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: see `fake`; the getter writes our local.
        let f = unsafe { fake(io) };
        let (mut b, mut m) = (0, 0);
        // SAFETY: p is the live sw_params being installed.
        unsafe {
            a::snd_pcm_sw_params_get_boundary(p, &mut b);
            a::snd_pcm_sw_params_get_avail_min(p, &mut m);
        }
        f.boundary = b as u64;
        f.avail_min = (m as u64).max(1);
        0
    })
}

unsafe extern "C" fn prepare(io: *mut snd_pcm_ioplug_t) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: see `fake`.
        let f = unsafe { fake(io) };
        if f.capture && f.start_ns.is_some() {
            f.cap_base += f.captured();
        }
        f.written = 0;
        f.played_base = 0;
        f.run_base = 0;
        f.start_ns = None;
        f.pending.clear();
        0
    })
}

unsafe extern "C" fn poll_revents(
    io: *mut snd_pcm_ioplug_t,
    pfd: *mut pollfd,
    _n: c_uint,
    revents: *mut c_ushort,
) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: see `fake`; reads the timerfd to clear it, writes alsa-lib's output.
        unsafe {
            let f = fake(io);
            let ready = if f.capture { libc::POLLIN } else { libc::POLLOUT };
            match f.poll_mode {
                PollMode::Never => {
                    *revents = 0;
                    return 0;
                }
                PollMode::Always => {
                    *revents = ready as c_ushort;
                    return 0;
                }
                PollMode::Timer => {}
            }
            let mut v = 0u64;
            libc::read(f.timer, &mut v as *mut u64 as *mut c_void, 8);
            let (avail, ready) = if f.capture {
                (f.captured().saturating_sub(f.io.appl_ptr as u64), libc::POLLIN)
            } else {
                (f.io.buffer_size as u64 - (f.written - f.played()), libc::POLLOUT)
            };
            // A period boundary is when the device looks, as a card's interrupt; the
            // program's avail_min is how much it must then find.
            *revents = if (*pfd).revents != 0 && avail >= (f.io.period_size as u64).max(f.avail_min) {
                ready as c_ushort
            } else {
                0
            };
        }
        0
    })
}

static CALLBACKS: snd_pcm_ioplug_callback_t = snd_pcm_ioplug_callback {
    start: Some(start),
    stop: Some(stop),
    pointer: Some(pointer),
    transfer: Some(transfer),
    close: Some(close),
    hw_params: Some(hw_params),
    hw_free: None,
    sw_params: Some(sw_params),
    prepare: Some(prepare),
    drain: None,
    pause: None,
    resume: None,
    poll_descriptors_count: None,
    poll_descriptors: None,
    poll_revents: Some(poll_revents),
    dump: None,
    delay: None,
    query_chmaps: None,
    get_chmap: None,
    set_chmap: None,
};

fn err(msg: &str) -> c_int {
    eprintln!("rdmixfake: {msg}");
    -libc::EINVAL
}

fn open(
    pcmp: *mut *mut a::snd_pcm_t,
    name: *const c_char,
    conf: *mut a::snd_config_t,
    stream: a::snd_pcm_stream_t,
    mode: c_int,
) -> c_int {
    // SAFETY: alsa-lib keeps the node alive during open.
    let Some(node) = (unsafe { Conf::from_raw(conf) }) else {
        return err("no config");
    };
    let (mut file, mut log, mut format, mut rate, mut channels) = (None, None, "S16_LE".to_string(), 48000u32, 2u32);
    let (mut fail_after, mut fail_errno, mut wedge_after) = (None, libc::EIO, None);
    let mut mmap_only = false;
    let mut append = false;
    let mut tone = 1000.0;
    let mut cable = None;
    let mut poll_mode = PollMode::Timer;
    for c in node.children() {
        let int = || match c.value() {
            Value::Integer(i) => Some(i),
            _ => None,
        };
        let s = || match c.value() {
            Value::Str(s) => Some(s),
            _ => None,
        };
        match c.id().as_str() {
            "type" | "comment" | "hint" => {}
            "file" => file = s(),
            "log" => log = s(),
            "format" => format = s().unwrap_or_default(),
            "rate" => rate = int().unwrap_or(0) as u32,
            "channels" => channels = int().unwrap_or(0) as u32,
            "fail_after" => fail_after = int().map(|v| v as u64),
            "fail_errno" => fail_errno = int().unwrap_or(libc::EIO as i64) as i32,
            "wedge_after" => wedge_after = int().map(|v| v as u64),
            // Pretend to be an mmap-only driver, to test that rdmix refuses it cleanly.
            "mmap_only" => mmap_only = c.boolean().unwrap_or(false),
            // Raw frames appended, no header: one recording across several device opens.
            "append" => append = c.boolean().unwrap_or(false),
            // Capture: the sine's frequency on channels 1 and up.
            "tone" => tone = int().unwrap_or(1000) as f64,
            // Both sides: a loop-back cable through this file.
            "loop" => cable = s(),
            // A poll descriptor that never fires, or always does, as some plugins' do.
            "poll" => {
                poll_mode = match s().as_deref() {
                    Some("timer") => PollMode::Timer,
                    Some("never") => PollMode::Never,
                    Some("always") => PollMode::Always,
                    _ => return err("poll is timer, never or always"),
                }
            }
            other => return err(&format!("unknown option {other}")),
        }
    }
    let capture = stream == a::SND_PCM_STREAM_CAPTURE;
    // A capture device writes no file: its `file` (shared with the playback side) is unused.
    let file = if capture { Some("/dev/null".to_string()) } else { file };
    let Some(file) = file else {
        return err("file is required");
    };
    let Some(fmt) = Format::by_name(&format) else {
        return err("bad format");
    };
    if rate == 0 || channels == 0 {
        return err("a rate and channels are required");
    }
    let opened = if capture {
        OpenOptions::new().write(true).open(&file)
    } else if append {
        OpenOptions::new().create(true).append(true).open(&file)
    } else {
        OpenOptions::new().create(true).write(true).truncate(true).open(&file)
    };
    let wav = match opened {
        Ok(f) => f,
        Err(e) => return err(&format!("{file}: {e}")),
    };
    let log = log.and_then(|l| OpenOptions::new().create(true).append(true).open(l).ok());
    let cable = match cable.map(|p| Loop::open(&p, fmt.sample_bytes() * channels as usize, rate)) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => return err(&format!("loop: {e}")),
        None => None,
    };
    // SAFETY: timerfd_create returns a new descriptor or -1.
    let timer = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC | libc::TFD_NONBLOCK) };
    let poll_fd = match poll_mode {
        PollMode::Timer => -1,
        // SAFETY: eventfd returns a new descriptor or -1; `always` starts it readable and
        // nobody ever reads it.
        PollMode::Never => unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) },
        // SAFETY: as above.
        PollMode::Always => unsafe { libc::eventfd(1, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) },
    };
    let f = Box::into_raw(Box::new(Fake {
        // SAFETY: all-zero is the documented starting state of snd_pcm_ioplug_t.
        io: unsafe { std::mem::zeroed() },
        poll_mode,
        poll_fd,
        cable,
        pending: Vec::new(),
        capture,
        cap_base: 0,
        tone,
        wav,
        log,
        format: fmt,
        rate,
        channels,
        timer,
        written: 0,
        played_base: 0,
        run_base: 0,
        start_ns: None,
        boundary: u64::MAX,
        avail_min: 1,
        data_bytes: 0,
        recorded: 0,
        fail_after,
        fail_errno,
        wedge_after,
        append,
    }));
    // SAFETY: f is ours until create succeeds, then ioplug's (freed in `close`).
    unsafe {
        if !(*f).append && !capture {
            let _ = (*f).wav.write_all(&(*f).wav_header());
        }
        let io = &mut (*f).io;
        io.version = SND_PCM_IOPLUG_VERSION;
        io.name = c"rdmix test device (copy-only)".as_ptr();
        io.flags = SND_PCM_IOPLUG_FLAG_MONOTONIC | SND_PCM_IOPLUG_FLAG_BOUNDARY_WA;
        io.poll_fd = if poll_fd >= 0 { poll_fd } else { timer };
        io.poll_events = libc::POLLIN as c_uint;
        io.callback = &CALLBACKS;
        io.private_data = f as *mut c_void;
        let r = snd_pcm_ioplug_create(io, name, stream, mode);
        if r < 0 {
            drop(Box::from_raw(f));
            return r;
        }
        io.nonblock = (mode & a::SND_PCM_NONBLOCK as c_int != 0) as c_int;
        let access = [if mmap_only {
            a::SND_PCM_ACCESS_MMAP_INTERLEAVED
        } else {
            a::SND_PCM_ACCESS_RW_INTERLEAVED
        } as c_uint];
        let formats = [fmt.id as c_uint];
        let fb = (fmt.sample_bytes() as u32) * channels;
        snd_pcm_ioplug_set_param_list(io, SND_PCM_IOPLUG_HW_ACCESS as c_int, 1, access.as_ptr());
        snd_pcm_ioplug_set_param_list(io, SND_PCM_IOPLUG_HW_FORMAT as c_int, 1, formats.as_ptr());
        snd_pcm_ioplug_set_param_minmax(io, SND_PCM_IOPLUG_HW_CHANNELS as c_int, channels, channels);
        snd_pcm_ioplug_set_param_minmax(io, SND_PCM_IOPLUG_HW_RATE as c_int, rate, rate);
        snd_pcm_ioplug_set_param_minmax(io, SND_PCM_IOPLUG_HW_PERIOD_BYTES as c_int, 16 * fb, 65536 * fb);
        snd_pcm_ioplug_set_param_minmax(io, SND_PCM_IOPLUG_HW_PERIODS as c_int, 2, 64);
        *pcmp = io.pcm;
    }
    0
}

/// # Safety
/// Called by alsa-lib as a PCM plugin open function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _snd_pcm_rdmixfake_open(
    pcmp: *mut *mut a::snd_pcm_t,
    name: *const c_char,
    _root: *mut a::snd_config_t,
    conf: *mut a::snd_config_t,
    stream: a::snd_pcm_stream_t,
    mode: c_int,
) -> c_int {
    guard(-libc::EIO, || open(pcmp, name, conf, stream, mode))
}

#[unsafe(no_mangle)]
pub static __snd_pcm_rdmixfake_open_dlsym_pcm_001: c_char = 0;
