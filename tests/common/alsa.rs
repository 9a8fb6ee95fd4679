//! A small safe wrapper over the ALSA C API for tests that drive rdmix in process.
// snd_pcm_sframes_t is 32 bits on 32-bit targets: the casts to i64 are not no-ops there.
#![allow(clippy::unnecessary_cast)]
#![allow(dead_code)]

use std::ffi::CString;
use std::sync::OnceLock;

use alsa_sys as a;

use super::World;

/// Independent device sets in the shared world: `pcm.mixN` is rdmix (its own pump) over
/// `pcm.cardN`, which records to `recN.wav`. Each test uses its own N.
pub const SETS: u32 = 36;
pub const APPEND_SETS: u32 = 24;

/// The key of set `n`.
pub fn set_key(n: u32) -> u32 {
    (std::process::id() % 0x10000) * 0x100 + 0x3000_0000 + n
}

/// The recording of set `n`.
pub fn rec_path(n: u32) -> std::path::PathBuf {
    world().dir.join(format!("rec{n}.wav"))
}

/// One private world for the whole test binary: alsa-lib reads its configuration once per
/// process, so every in-process test shares this HOME (each test still uses its own PCM).
pub fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let mut defs = String::new();
        for n in 0..SETS {
            // Sets APPEND_SETS..+4 record raw frames across device re-opens.
            let append = if (APPEND_SETS..APPEND_SETS + 4).contains(&n) {
                "; append true"
            } else {
                ""
            };
            defs += &format!(
                "pcm.card{n} {{ type rdmixfake; file \"{{dir}}/rec{n}.wav\"; log \"{{dir}}/card{n}.log\"{append} }}\n\
                 pcm.mix{n} {{ type rdmix; ipc_key {{key{n}}}; slave.pcm \"card{n}\" }}\n\
                 ctl.mix{n} {{ type rdmix; ipc_key {{key{n}}}; slave.pcm \"card{n}\" }}\n"
            );
        }
        // The test device wired as a loop-back cable, shared by both directions (tests/duplex.rs).
        defs += "pcm.cable { type rdmixfake; file \"{dir}/played.wav\"; loop \"{dir}/cable\" }\n\
                 pcm.duplex { type rdmix; slave { pcm \"cable\"; period_size 240; periods 4 } }\n";
        for n in 0..SETS {
            defs = defs.replace(&format!("{{key{n}}}"), &set_key(n).to_string());
        }
        let w = World::new(&defs);
        // SAFETY: runs once, before any test thread touches alsa-lib or the environment
        // (every test calls world() first, and OnceLock makes the others wait).
        unsafe {
            std::env::set_var("HOME", &w.dir);
            std::env::set_var("RDMIX_PUMP_LOG", w.dir.join("pump.log"));
            std::env::remove_var("ALSA_CONFIG_PATH");
        }
        w
    })
}

pub struct Pcm(pub *mut a::snd_pcm_t);

// SAFETY: alsa-lib PCM handles are thread-safe by default (it locks internally).
unsafe impl Send for Pcm {}
// SAFETY: as above.
unsafe impl Sync for Pcm {}

#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub access: a::snd_pcm_access_t,
    pub format: a::snd_pcm_format_t,
    pub channels: u32,
    pub rate: u32,
    pub period: u64,
    pub buffer: u64,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            access: a::SND_PCM_ACCESS_RW_INTERLEAVED,
            format: a::SND_PCM_FORMAT_S16_LE,
            channels: 2,
            rate: 48000,
            period: 480,
            buffer: 1920,
        }
    }
}

fn check(r: i32) -> Result<(), i32> {
    if r < 0 { Err(r) } else { Ok(()) }
}

impl Pcm {
    pub fn open(name: &str, nonblock: bool) -> Result<Pcm, i32> {
        Pcm::open_stream(name, a::SND_PCM_STREAM_PLAYBACK, nonblock)
    }

    pub fn open_capture(name: &str, nonblock: bool) -> Result<Pcm, i32> {
        Pcm::open_stream(name, a::SND_PCM_STREAM_CAPTURE, nonblock)
    }

    fn open_stream(name: &str, stream: a::snd_pcm_stream_t, nonblock: bool) -> Result<Pcm, i32> {
        world();
        let c = CString::new(name).unwrap();
        let mut p = std::ptr::null_mut();
        let mode = if nonblock { a::SND_PCM_NONBLOCK as i32 } else { 0 };
        // SAFETY: standard open with a NUL-terminated name.
        check(unsafe { a::snd_pcm_open(&mut p, c.as_ptr(), stream, mode) })?;
        Ok(Pcm(p))
    }

    pub fn readi(&self, data: &mut [u8], frames: u64) -> i64 {
        // SAFETY: data has room for `frames` frames of the installed format.
        unsafe { a::snd_pcm_readi(self.0, data.as_mut_ptr() as *mut _, frames as _) as i64 }
    }

    /// Reads exactly `frames` frames (of `frame_bytes`), blocking; panics on an error.
    pub fn read_exact(&self, frames: u64, frame_bytes: usize) -> Vec<u8> {
        let mut out = vec![0u8; frames as usize * frame_bytes];
        let mut off = 0u64;
        while off < frames {
            let r = self.readi(&mut out[off as usize * frame_bytes..], frames - off);
            assert!(r > 0, "readi: {r}");
            off += r as u64;
        }
        out
    }

    pub fn readn(&self, bufs: &mut [Vec<u8>], frames: u64) -> i64 {
        let mut ptrs: Vec<*mut std::ffi::c_void> = bufs.iter_mut().map(|b| b.as_mut_ptr() as *mut _).collect();
        // SAFETY: one buffer per channel, each with room for `frames` samples.
        unsafe { a::snd_pcm_readn(self.0, ptrs.as_mut_ptr(), frames as _) as i64 }
    }

    /// Runs `f` over a fresh hw_params space (refined by `any`).
    pub fn with_space<R>(&self, f: impl FnOnce(*mut a::snd_pcm_hw_params_t) -> R) -> R {
        let mut hw = std::ptr::null_mut();
        // SAFETY: allocate, fill with the full space, use, free.
        unsafe {
            a::snd_pcm_hw_params_malloc(&mut hw);
            a::snd_pcm_hw_params_any(self.0, hw);
            let r = f(hw);
            a::snd_pcm_hw_params_free(hw);
            r
        }
    }

    pub fn test_rate(&self, rate: u32) -> bool {
        // SAFETY: live PCM and params.
        self.with_space(|hw| unsafe { a::snd_pcm_hw_params_test_rate(self.0, hw, rate, 0) } == 0)
    }
    pub fn test_channels(&self, ch: u32) -> bool {
        // SAFETY: live PCM and params.
        self.with_space(|hw| unsafe { a::snd_pcm_hw_params_test_channels(self.0, hw, ch) } == 0)
    }
    pub fn test_format(&self, f: a::snd_pcm_format_t) -> bool {
        // SAFETY: live PCM and params.
        self.with_space(|hw| unsafe { a::snd_pcm_hw_params_test_format(self.0, hw, f) } == 0)
    }
    pub fn test_access(&self, acc: a::snd_pcm_access_t) -> bool {
        // SAFETY: live PCM and params.
        self.with_space(|hw| unsafe { a::snd_pcm_hw_params_test_access(self.0, hw, acc) } == 0)
    }
    pub fn test_buffer_size(&self, frames: u64) -> bool {
        // SAFETY: live PCM and params.
        self.with_space(|hw| unsafe { a::snd_pcm_hw_params_test_buffer_size(self.0, hw, frames as _) } == 0)
    }

    /// Installs exactly these parameters; returns the period and buffer alsa-lib settled on.
    pub fn set_params(&self, p: Params) -> Result<(u64, u64), i32> {
        self.with_space(|hw| {
            // SAFETY: live PCM and params; out-parameters are our locals.
            unsafe {
                check(a::snd_pcm_hw_params_set_access(self.0, hw, p.access))?;
                check(a::snd_pcm_hw_params_set_format(self.0, hw, p.format))?;
                check(a::snd_pcm_hw_params_set_channels(self.0, hw, p.channels))?;
                check(a::snd_pcm_hw_params_set_rate(self.0, hw, p.rate, 0))?;
                let mut period = p.period as a::snd_pcm_uframes_t;
                let mut dir = 0;
                check(a::snd_pcm_hw_params_set_period_size_near(
                    self.0,
                    hw,
                    &mut period,
                    &mut dir,
                ))?;
                let mut buffer = p.buffer as a::snd_pcm_uframes_t;
                check(a::snd_pcm_hw_params_set_buffer_size_near(self.0, hw, &mut buffer))?;
                check(a::snd_pcm_hw_params(self.0, hw))?;
                Ok((period as u64, buffer as u64))
            }
        })
    }

    /// Sets start_threshold, stop_threshold (None = boundary) and avail_min.
    pub fn set_sw(&self, start: u64, stop: Option<u64>, avail_min: u64) -> Result<(), i32> {
        let mut sw = std::ptr::null_mut();
        // SAFETY: allocate, configure, install, free an sw_params container.
        unsafe {
            a::snd_pcm_sw_params_malloc(&mut sw);
            a::snd_pcm_sw_params_current(self.0, sw);
            let mut boundary = 0;
            a::snd_pcm_sw_params_get_boundary(sw, &mut boundary);
            a::snd_pcm_sw_params_set_start_threshold(self.0, sw, start as _);
            a::snd_pcm_sw_params_set_stop_threshold(self.0, sw, stop.map(|s| s as _).unwrap_or(boundary));
            a::snd_pcm_sw_params_set_avail_min(self.0, sw, avail_min as _);
            let r = a::snd_pcm_sw_params(self.0, sw);
            a::snd_pcm_sw_params_free(sw);
            check(r)
        }
    }

    /// Asks for CLOCK_MONOTONIC timestamps (sw_params `tstamp_type`), as a program that
    /// compares them with its own monotonic clock does.
    pub fn set_tstamp_monotonic(&self) -> Result<(), i32> {
        let mut sw = std::ptr::null_mut();
        // SAFETY: allocate, configure, install, free an sw_params container.
        unsafe {
            a::snd_pcm_sw_params_malloc(&mut sw);
            a::snd_pcm_sw_params_current(self.0, sw);
            a::snd_pcm_sw_params_set_tstamp_mode(self.0, sw, a::SND_PCM_TSTAMP_ENABLE);
            a::snd_pcm_sw_params_set_tstamp_type(self.0, sw, a::SND_PCM_TSTAMP_TYPE_MONOTONIC);
            let r = a::snd_pcm_sw_params(self.0, sw);
            a::snd_pcm_sw_params_free(sw);
            check(r)
        }
    }

    /// Whether the installed hw_params say the timestamps are monotonic.
    pub fn is_monotonic(&self) -> bool {
        let mut hw = std::ptr::null_mut();
        // SAFETY: allocate, read the current setup into, free an hw_params container.
        unsafe {
            a::snd_pcm_hw_params_malloc(&mut hw);
            a::snd_pcm_hw_params_current(self.0, hw);
            let m = a::snd_pcm_hw_params_is_monotonic(hw) == 1;
            a::snd_pcm_hw_params_free(hw);
            m
        }
    }

    /// The status' trigger timestamp, in ns on the PCM's own clock.
    pub fn trigger_ns(&self) -> i64 {
        let mut st = std::ptr::null_mut();
        let mut ts = a::snd_htimestamp_t { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: allocate, fill, read, free a status container.
        unsafe {
            a::snd_pcm_status_malloc(&mut st);
            a::snd_pcm_status(self.0, st);
            a::snd_pcm_status_get_trigger_htstamp(st, &mut ts);
            a::snd_pcm_status_free(st);
        }
        ts_ns(&ts)
    }

    pub fn writei(&self, data: &[u8], frames: u64) -> i64 {
        // SAFETY: data holds `frames` frames of the installed format.
        unsafe { a::snd_pcm_writei(self.0, data.as_ptr() as *const _, frames as _) as i64 }
    }

    /// Writes every frame of `data` (frames of `frame_bytes`), blocking; panics on an error.
    pub fn write_all(&self, data: &[u8], frame_bytes: usize) {
        let frames = (data.len() / frame_bytes) as u64;
        let mut off = 0u64;
        while off < frames {
            let r = self.writei(&data[off as usize * frame_bytes..], frames - off);
            assert!(r > 0, "writei: {r}");
            off += r as u64;
        }
    }

    pub fn writen(&self, bufs: &[&[u8]], frames: u64) -> i64 {
        let mut ptrs: Vec<*mut std::ffi::c_void> = bufs.iter().map(|b| b.as_ptr() as *mut _).collect();
        // SAFETY: one buffer per channel, each holding `frames` samples.
        unsafe { a::snd_pcm_writen(self.0, ptrs.as_mut_ptr(), frames as _) as i64 }
    }

    pub fn state(&self) -> a::snd_pcm_state_t {
        // SAFETY: live PCM.
        unsafe { a::snd_pcm_state(self.0) }
    }
    pub fn prepare(&self) -> i32 {
        // SAFETY: live PCM.
        unsafe { a::snd_pcm_prepare(self.0) }
    }
    pub fn start(&self) -> i32 {
        // SAFETY: live PCM.
        unsafe { a::snd_pcm_start(self.0) }
    }
    pub fn drain(&self) -> i32 {
        // SAFETY: live PCM.
        unsafe { a::snd_pcm_drain(self.0) }
    }
    pub fn drop_(&self) -> i32 {
        // SAFETY: live PCM.
        unsafe { a::snd_pcm_drop(self.0) }
    }
    pub fn pause(&self, on: bool) -> i32 {
        // SAFETY: live PCM.
        unsafe { a::snd_pcm_pause(self.0, on as i32) }
    }
    pub fn avail(&self) -> i64 {
        // SAFETY: live PCM.
        unsafe { a::snd_pcm_avail(self.0) as i64 }
    }
    pub fn delay(&self) -> Result<i64, i32> {
        let mut d = 0;
        // SAFETY: live PCM; d is ours.
        check(unsafe { a::snd_pcm_delay(self.0, &mut d) })?;
        Ok(d as i64)
    }
    pub fn rewindable(&self) -> i64 {
        // SAFETY: live PCM.
        unsafe { a::snd_pcm_rewindable(self.0) as i64 }
    }
    pub fn rewind(&self, frames: u64) -> i64 {
        // SAFETY: live PCM.
        unsafe { a::snd_pcm_rewind(self.0, frames as _) as i64 }
    }
    pub fn recover(&self, err: i32) -> i32 {
        // SAFETY: live PCM.
        unsafe { a::snd_pcm_recover(self.0, err, 1) }
    }
    pub fn wait(&self, ms: i32) -> i32 {
        // SAFETY: live PCM.
        unsafe { a::snd_pcm_wait(self.0, ms) }
    }
    pub fn nonblock(&self, on: bool) -> i32 {
        // SAFETY: live PCM.
        unsafe { a::snd_pcm_nonblock(self.0, on as i32) }
    }
    pub fn poll_fds(&self) -> Vec<libc::pollfd> {
        // SAFETY: sized by poll_descriptors_count, filled by poll_descriptors.
        unsafe {
            let n = a::snd_pcm_poll_descriptors_count(self.0).max(0) as usize;
            let mut v = vec![
                libc::pollfd {
                    fd: -1,
                    events: 0,
                    revents: 0
                };
                n
            ];
            let got = a::snd_pcm_poll_descriptors(self.0, v.as_mut_ptr(), n as u32).max(0) as usize;
            v.truncate(got);
            v
        }
    }
    pub fn poll_revents(&self, fds: &mut [libc::pollfd]) -> u16 {
        let mut r: u16 = 0;
        // SAFETY: fds came from poll_descriptors.
        unsafe { a::snd_pcm_poll_descriptors_revents(self.0, fds.as_mut_ptr(), fds.len() as u32, &mut r) };
        r
    }
    pub fn chmap(&self) -> Option<Vec<u32>> {
        // SAFETY: returns a malloc'd map or NULL; copied and freed.
        unsafe {
            let m = a::snd_pcm_get_chmap(self.0);
            if m.is_null() {
                return None;
            }
            let v = std::slice::from_raw_parts((*m).pos.as_ptr(), (*m).channels as usize).to_vec();
            libc::free(m as *mut _);
            Some(v)
        }
    }
}

impl Drop for Pcm {
    fn drop(&mut self) {
        // SAFETY: we own the handle.
        unsafe { a::snd_pcm_close(self.0) };
    }
}

/// What `snd_pcm_status` reports.
#[derive(Debug, Clone, Copy)]
pub struct Status {
    pub state: a::snd_pcm_state_t,
    pub avail: i64,
    pub delay: i64,
    pub tstamp_ns: i64,
    pub audio_tstamp_ns: i64,
}

/// Nanoseconds in a timespec (its fields are 32-bit on 32-bit x86 and ARM).
fn ts_ns(t: &a::snd_htimestamp_t) -> i64 {
    t.tv_sec as i64 * 1_000_000_000 + t.tv_nsec as i64
}

impl Pcm {
    pub fn status(&self) -> Result<Status, i32> {
        let mut st = std::ptr::null_mut();
        // SAFETY: allocate, fill, read, free a status container.
        unsafe {
            a::snd_pcm_status_malloc(&mut st);
            let r = a::snd_pcm_status(self.0, st);
            let mut ts: a::snd_htimestamp_t = std::mem::zeroed();
            let mut ats: a::snd_htimestamp_t = std::mem::zeroed();
            a::snd_pcm_status_get_htstamp(st, &mut ts);
            a::snd_pcm_status_get_audio_htstamp(st, &mut ats);
            let s = Status {
                state: a::snd_pcm_status_get_state(st),
                avail: a::snd_pcm_status_get_avail(st) as i64,
                delay: a::snd_pcm_status_get_delay(st) as i64,
                tstamp_ns: ts_ns(&ts),
                audio_tstamp_ns: ts_ns(&ats),
            };
            a::snd_pcm_status_free(st);
            check(r).map(|_| s)
        }
    }

    pub fn avail_delay(&self) -> Result<(i64, i64), i32> {
        let (mut av, mut d) = (0, 0);
        // SAFETY: live PCM; out-parameters are ours.
        check(unsafe { a::snd_pcm_avail_delay(self.0, &mut av, &mut d) })?;
        Ok((av as i64, d as i64))
    }
    pub fn forwardable(&self) -> i64 {
        // SAFETY: live PCM.
        unsafe { a::snd_pcm_forwardable(self.0) as i64 }
    }
    pub fn forward(&self, frames: u64) -> i64 {
        // SAFETY: live PCM.
        unsafe { a::snd_pcm_forward(self.0, frames as _) as i64 }
    }
    pub fn reset(&self) -> i32 {
        // SAFETY: live PCM.
        unsafe { a::snd_pcm_reset(self.0) }
    }
    pub fn hw_free(&self) -> i32 {
        // SAFETY: live PCM.
        unsafe { a::snd_pcm_hw_free(self.0) }
    }
    pub fn can_pause(&self) -> bool {
        self.with_current(|hw| {
            // SAFETY: hw holds the installed params.
            unsafe { a::snd_pcm_hw_params_can_pause(hw) == 1 }
        })
    }
    fn with_current<R>(&self, f: impl FnOnce(*mut a::snd_pcm_hw_params_t) -> R) -> R {
        let mut hw = std::ptr::null_mut();
        // SAFETY: allocate, fill with the installed params, use, free.
        unsafe {
            a::snd_pcm_hw_params_malloc(&mut hw);
            a::snd_pcm_hw_params_current(self.0, hw);
            let r = f(hw);
            a::snd_pcm_hw_params_free(hw);
            r
        }
    }
    pub fn query_chmaps(&self) -> Vec<Vec<u32>> {
        let mut out = Vec::new();
        // SAFETY: a NULL-terminated array from alsa-lib, freed with snd_pcm_free_chmaps.
        unsafe {
            let maps = a::snd_pcm_query_chmaps(self.0);
            if maps.is_null() {
                return out;
            }
            let mut i = 0;
            while !(*maps.add(i)).is_null() {
                let m = &(**maps.add(i)).map;
                out.push(std::slice::from_raw_parts(m.pos.as_ptr(), m.channels as usize).to_vec());
                i += 1;
            }
            a::snd_pcm_free_chmaps(maps);
        }
        out
    }
}

pub fn real_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: writes our timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts_ns(&ts)
}

pub fn mono_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: writes our timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts_ns(&ts)
}

/// CPU time this thread has used.
pub fn thread_cpu_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: writes our timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts_ns(&ts)
}

/// Live pumps of set `n` (`pcm.mixN`, over `pcm.cardN`).
pub fn pumps_of_set(n: u32) -> Vec<i32> {
    world();
    super::pumps_for_key(set_key(n))
}

/// A control handle (`snd_ctl_t`), as a mixer opens one.
pub struct Ctl(pub *mut a::snd_ctl_t);

// SAFETY: a handle used from one thread at a time (the tests hold it in one).
unsafe impl Send for Ctl {}

/// What an element event says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtlEvent {
    Add(String),
    Remove(String),
    Value(String),
}

impl Ctl {
    pub fn open(name: &str) -> Result<Ctl, i32> {
        world();
        let c = CString::new(name).unwrap();
        let mut h = std::ptr::null_mut();
        // SAFETY: standard open with a NUL-terminated name.
        check(unsafe { a::snd_ctl_open(&mut h, c.as_ptr(), 0) })?;
        Ok(Ctl(h))
    }

    pub fn subscribe(&self) {
        // SAFETY: a live handle.
        check(unsafe { a::snd_ctl_subscribe_events(self.0, 1) }).unwrap();
    }

    /// Writes one integer (or boolean) value to the mixer element `name`.
    pub fn write(&self, name: &str, v: i64) -> Result<(), i32> {
        let c = CString::new(name).unwrap();
        let mut val = std::ptr::null_mut();
        // SAFETY: a value container allocated, filled and freed here, on a live handle.
        unsafe {
            check(a::snd_ctl_elem_value_malloc(&mut val))?;
            a::snd_ctl_elem_value_set_interface(val, a::SND_CTL_ELEM_IFACE_MIXER);
            a::snd_ctl_elem_value_set_name(val, c.as_ptr());
            a::snd_ctl_elem_value_set_integer(val, 0, v as _);
            let r = a::snd_ctl_elem_write(self.0, val);
            a::snd_ctl_elem_value_free(val);
            check(r)
        }
    }

    /// Waits on the handle's poll descriptors until `limit`, and reads the events waiting.
    pub fn events(&self, limit: std::time::Duration) -> Vec<CtlEvent> {
        let mut fds = [libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        }; 4];
        // SAFETY: room for 4 descriptors.
        let n = unsafe { a::snd_ctl_poll_descriptors(self.0, fds.as_mut_ptr(), 4) }.max(0) as usize;
        // SAFETY: n descriptors alsa-lib just gave.
        unsafe { libc::poll(fds.as_mut_ptr(), n as _, limit.as_millis() as i32) };
        let mut out = Vec::new();
        let mut ev = std::ptr::null_mut();
        // SAFETY: an event container allocated and freed here; reads on a live handle, made
        // non-blocking so that the last read returns -EAGAIN.
        unsafe {
            a::snd_ctl_nonblock(self.0, 1);
            a::snd_ctl_event_malloc(&mut ev);
            while a::snd_ctl_read(self.0, ev) > 0 {
                let name = std::ffi::CStr::from_ptr(a::snd_ctl_event_elem_get_name(ev))
                    .to_string_lossy()
                    .into_owned();
                let mask = a::snd_ctl_event_elem_get_mask(ev);
                out.push(if mask == a::SND_CTL_EVENT_MASK_REMOVE as u32 {
                    CtlEvent::Remove(name)
                } else if mask & a::SND_CTL_EVENT_MASK_ADD != 0 {
                    CtlEvent::Add(name)
                } else {
                    CtlEvent::Value(name)
                });
            }
            a::snd_ctl_event_free(ev);
        }
        out
    }

    /// Reads events until `want` holds of all read so far, or panics at `limit`.
    pub fn wait_events(&self, limit: std::time::Duration, want: impl Fn(&[CtlEvent]) -> bool) -> Vec<CtlEvent> {
        let end = std::time::Instant::now() + limit;
        let mut seen = Vec::new();
        while !want(&seen) {
            let left = end.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "timed out after {limit:?}; events so far: {seen:?}");
            seen.extend(self.events(left.min(std::time::Duration::from_millis(200))));
        }
        seen
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        // SAFETY: a live handle, closed once.
        unsafe { a::snd_ctl_close(self.0) };
    }
}
