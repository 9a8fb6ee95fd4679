//! alsa-lib's external-PCM ("ioplug") interface as a safe trait.
//!
//! A plugin implements [`Plugin`]; [`open`] creates the ioplug PCM around it, and generic C
//! trampolines turn each callback into a plain method call on the plugin behind a mutex.
//! This is the only place that handles ioplug's raw pointers, and no panic crosses back
//! into C: every trampoline is guarded and turns a panic into `-EIO` and one line.
//!
//! Locking, as ioplug calls us: start, stop, pointer, transfer and pause run inside
//! ioplug's own mutex; prepare, sw_params, drain and the poll callbacks run outside it.
//! Our mutex serialises them all; `drain` takes it only per step and waits outside it, so
//! a drop from another thread can end a drain.

// snd_pcm_uframes_t is 32 bits on 32-bit targets: the casts to u64 are not no-ops there.
#![allow(clippy::unnecessary_cast)]

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_ushort, c_void};
use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use alsa_sys as a;
use libc::pollfd;
use parking_lot::Mutex;

use super::conf::Conf;
use super::ffi::*;
use crate::error::{Error, Result};
use crate::sys::fd::poll;

/// What ioplug knows at the moment of a call.
#[derive(Clone, Copy, Debug)]
pub struct IoView {
    /// The application pointer (modulo the boundary), which rewind and forward move silently.
    pub appl_ptr: u64,
    pub state: a::snd_pcm_state_t,
}

/// The hardware parameters the application chose.
#[derive(Clone, Copy, Debug)]
pub struct HwChoice {
    pub format: a::snd_pcm_format_t,
    pub channels: u32,
    pub rate: u32,
    pub period: u64,
    pub buffer: u64,
}

/// The software parameters the application installed.
#[derive(Clone, Copy, Debug)]
pub struct SwChoice {
    pub boundary: u64,
    pub avail_min: u64,
    pub stop_threshold: u64,
}

/// The hw_params space a plugin offers. Period and buffer limits are in bytes, as ioplug
/// takes them.
#[derive(Clone, Debug)]
pub struct Space {
    pub access: Vec<a::snd_pcm_access_t>,
    pub formats: Vec<a::snd_pcm_format_t>,
    pub channels: (u32, u32),
    pub rate: (u32, u32),
    pub period_bytes: (u32, u32),
    pub buffer_bytes: (u32, u32),
    pub periods: (u32, u32),
}

/// What a poll wake-up means, for ioplug.
#[derive(Clone, Copy, Debug, Default)]
pub struct Revents {
    pub events: i16,
    /// The stream cannot go on (its server is gone): a running stream becomes an xrun, which
    /// `snd_pcm_recover` turns into a `prepare`.
    pub xrun: bool,
}

/// One step of a drain.
#[derive(Clone, Copy, Debug)]
pub enum DrainStep {
    Done,
    /// Not yet: sleep on these descriptors for at most `ns`, then step again.
    Wait {
        fds: [RawFd; 2],
        ns: u64,
    },
}

/// What a PCM plugin does, in safe Rust.
pub trait Plugin: Send + 'static {
    /// The name `snd_pcm_info` reports.
    const NAME: &'static CStr;
    /// The hw_params space, applied once at open.
    fn space(&self) -> Space;
    /// The descriptors the application polls (ioplug's `poll_descriptors`).
    fn poll_descriptors(&self) -> Vec<pollfd>;
    fn start(&mut self) -> Result<()>;
    fn stop(&mut self);
    /// The hardware pointer modulo the boundary; an error reports an xrun.
    fn pointer(&mut self, io: &IoView) -> Result<u64>;
    /// Frame size of the installed parameters, `None` before hw_params.
    fn frame_bytes(&self) -> Option<usize>;
    /// Playback: takes `frames` interleaved frames at the application pointer.
    fn transfer(&mut self, io: &IoView, interleaved: &[u8], frames: u64) -> Result<u64>;
    /// Capture: fills `out` with `frames` interleaved frames from the application pointer.
    /// ioplug may ask for the same frames more than once (mmap access), so this must not
    /// move anything on: the application pointer says how far the program has read.
    fn capture(&mut self, io: &IoView, out: &mut [u8], frames: u64) -> Result<u64>;
    fn hw_params(&mut self, hw: HwChoice) -> Result<()>;
    fn hw_free(&mut self);
    fn sw_params(&mut self, sw: SwChoice);
    fn prepare(&mut self) -> Result<()>;
    fn pause(&mut self, io: &IoView, enable: bool) -> Result<()>;
    /// Begins a drain; returns the instant by which it must be done.
    fn drain_begin(&mut self) -> Instant;
    /// A capture drain: stops capturing; whether frames are left for the program to read.
    fn drain_capture(&mut self) -> bool;
    fn drain_step(&mut self) -> Result<DrainStep>;
    /// `fds` are the descriptors from `poll_descriptors` with their `revents`.
    fn poll_revents(&mut self, io: &IoView, fds: &[pollfd]) -> Revents;
    fn delay(&mut self, io: &IoView) -> Result<i64>;
    /// One fixed channel map per channel count the plugin accepts.
    fn query_chmaps(&self) -> Vec<Vec<u32>>;
    /// The map a stream of `channels` channels plays in (0: before hw_params).
    fn chmap(&self, channels: u32) -> Vec<u32>;
    /// The plugin's own line for `snd_pcm_dump` (the standard setup block follows it).
    fn dump(&self) -> String;
}

/// Prints one line through alsa-lib's error handler, as `SNDERR` does, from the PCM.
pub fn snderr(func: &CStr, msg: &str) {
    snderr_from(c"pcm_rdmix", func, msg);
}

/// The same, naming `file` (`pcm_rdmix`, `ctl_rdmix`) as the line's source.
pub fn snderr_from(file: &CStr, func: &CStr, msg: &str) {
    let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // SAFETY: snd_lib_error is alsa-lib's current handler (never NULL after library init);
    // we pass a "%s" format and one NUL-terminated string argument.
    unsafe {
        if let Some(handler) = snd_lib_error {
            handler(file.as_ptr(), 0, func.as_ptr(), 0, c"%s".as_ptr(), msg.as_ptr());
        }
    }
}

fn report(func: &CStr, e: Error) -> c_int {
    snderr(func, &e.to_string());
    e.neg()
}

/// Runs `f`, turning a panic into an error line and `-EIO`.
fn guarded<R: From<i32>>(func: &CStr, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            snderr(func, "rdmix: internal error (a bug in rdmix); the call failed with EIO");
            R::from(-libc::EIO)
        }
    }
}

fn guarded_ptr<T>(f: impl FnOnce() -> *mut T) -> *mut T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(std::ptr::null_mut())
}

/// Newtype so the same guard serves callbacks returning `snd_pcm_sframes_t`.
struct Frames(a::snd_pcm_sframes_t);
impl From<i32> for Frames {
    fn from(v: i32) -> Frames {
        Frames(v as a::snd_pcm_sframes_t)
    }
}

/// One open PCM. `io` must stay first and at a fixed address: ioplug keeps a pointer to it,
/// and `io.callback` points at `callbacks`.
#[repr(C)]
struct Holder<P> {
    io: snd_pcm_ioplug_t,
    callbacks: snd_pcm_ioplug_callback_t,
    plugin: Mutex<P>,
}

/// # Safety
/// `io` must be the `io` field of a live `Holder<P>` (ioplug only calls us with the one we made).
unsafe fn holder<'a, P>(io: *mut snd_pcm_ioplug_t) -> &'a Holder<P> {
    // SAFETY: private_data was set to the Holder that contains this io.
    unsafe { &*((*io).private_data as *const Holder<P>) }
}

/// # Safety
/// As for `holder`.
unsafe fn io_view(io: *mut snd_pcm_ioplug_t) -> IoView {
    // SAFETY: reads of fields alsa-lib keeps current; volatile because other threads may move them.
    unsafe {
        IoView {
            appl_ptr: std::ptr::read_volatile(&(*io).appl_ptr) as u64,
            state: std::ptr::read_volatile(&(*io).state),
        }
    }
}

macro_rules! with_plugin {
    ($name:literal, $io:ident, |$p:ident, $v:ident| $body:expr) => {
        guarded($name, || {
            // SAFETY: ioplug passes back the io we registered; see `holder`.
            let (h, $v) = unsafe { (holder::<P>($io), io_view($io)) };
            let _ = &$v;
            #[allow(unused_mut)]
            let mut $p = h.plugin.lock();
            $body
        })
    };
}

unsafe extern "C" fn cb_start<P: Plugin>(io: *mut snd_pcm_ioplug_t) -> c_int {
    with_plugin!(c"start", io, |p, _v| p
        .start()
        .map_or_else(|e| report(c"start", e), |_| 0))
}

unsafe extern "C" fn cb_stop<P: Plugin>(io: *mut snd_pcm_ioplug_t) -> c_int {
    with_plugin!(c"stop", io, |p, _v| {
        p.stop();
        0
    })
}

unsafe extern "C" fn cb_pointer<P: Plugin>(io: *mut snd_pcm_ioplug_t) -> a::snd_pcm_sframes_t {
    let pos = with_plugin!(c"pointer", io, |p, v| Frames(match p.pointer(&v) {
        Ok(pos) => pos as a::snd_pcm_sframes_t,
        Err(e) => e.neg() as a::snd_pcm_sframes_t,
    }))
    .0;
    if pos == -(libc::EPIPE as a::snd_pcm_sframes_t) {
        // SAFETY: ioplug's live io, and the plugin's lock is released (stop takes it).
        unsafe { stamp_xrun(io) };
    }
    pos
}

/// ioplug stamps `trigger_tstamp` only at start and drop, so a program asking how long an
/// xrun has lasted (aplay's "underrun!!! (at least N ms long)") would be told the time since
/// the start. A running stream whose xrun is seen is dropped here, which stamps the moment,
/// as the kernel stamps the interrupt that finds an xrun; ioplug then marks it XRUN on the
/// negative pointer, as for any xrun. ioplug drops a drained stream from the same place.
///
/// # Safety
/// `io` is ioplug's live handle, and no plugin lock is held.
unsafe fn stamp_xrun(io: *mut snd_pcm_ioplug_t) {
    // SAFETY: per the contract; the PCM's own lock is recursive, and held by our caller.
    unsafe {
        if (*io).state == a::SND_PCM_STATE_RUNNING && !(*io).pcm.is_null() {
            a::snd_pcm_drop((*io).pcm);
        }
    }
}

/// Copies frames `[offset, offset+size)` of `areas` into `out`, interleaved.
///
/// # Safety
/// `areas` must describe `channels` valid areas covering those frames.
unsafe fn gather(
    areas: *const a::snd_pcm_channel_area_t,
    channels: usize,
    sample_bytes: usize,
    offset: u64,
    size: u64,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.reserve(size as usize * channels * sample_bytes);
    // SAFETY: the caller guarantees `channels` areas; each sample address below lies in its area.
    unsafe {
        let areas = std::slice::from_raw_parts(areas, channels);
        for f in offset..offset + size {
            for ar in areas {
                let bit = ar.first as u64 + f * ar.step as u64;
                let p = (ar.addr as *const u8).add((bit / 8) as usize);
                out.extend_from_slice(std::slice::from_raw_parts(p, sample_bytes));
            }
        }
    }
}

/// Copies interleaved frames from `src` into frames `[offset, offset+size)` of `areas`.
///
/// # Safety
/// `areas` must describe `channels` valid, writable areas covering those frames.
unsafe fn scatter(
    areas: *const a::snd_pcm_channel_area_t,
    channels: usize,
    sample_bytes: usize,
    offset: u64,
    size: u64,
    src: &[u8],
) {
    // SAFETY: the caller guarantees `channels` areas; each sample address below lies in its area.
    unsafe {
        let areas = std::slice::from_raw_parts(areas, channels);
        let mut samples = src.chunks_exact(sample_bytes);
        for f in offset..offset + size {
            for ar in areas {
                let Some(s) = samples.next() else { return };
                let bit = ar.first as u64 + f * ar.step as u64;
                let p = (ar.addr as *mut u8).add((bit / 8) as usize);
                std::ptr::copy_nonoverlapping(s.as_ptr(), p, sample_bytes);
            }
        }
    }
}

/// Whether `areas` are plain interleaved frames of `fb` bytes from their start.
///
/// # Safety
/// `areas` must point at `channels` areas.
unsafe fn is_interleaved(areas: *const a::snd_pcm_channel_area_t, channels: usize, sb: usize, fb: usize) -> bool {
    // SAFETY: the caller guarantees `channels` areas.
    let first = unsafe { &*areas };
    first.first == 0
        && (0..channels).all(|ch| {
            // SAFETY: ch < channels.
            let ar = unsafe { &*areas.add(ch) };
            ar.addr == first.addr && ar.first as usize == ch * sb * 8 && ar.step as usize == fb * 8
        })
}

/// A capture transfer: the plugin fills the program's areas.
///
/// # Safety
/// As for `cb_transfer`.
unsafe fn capture_into<P: Plugin>(
    p: &mut P,
    v: &IoView,
    areas: *const a::snd_pcm_channel_area_t,
    channels: usize,
    offset: u64,
    size: u64,
) -> Frames {
    let Some(fb) = p.frame_bytes() else {
        return Frames(-libc::EBADFD as _);
    };
    let sb = fb / channels.max(1);
    // SAFETY: ioplug hands `channels` areas, writable over [offset, offset+size).
    let r = unsafe {
        if is_interleaved(areas, channels, sb, fb) {
            let out = std::slice::from_raw_parts_mut(
                ((*areas).addr as *mut u8).add(offset as usize * fb),
                size as usize * fb,
            );
            p.capture(v, out, size)
        } else {
            let mut tmp = vec![0u8; size as usize * fb];
            let r = p.capture(v, &mut tmp, size);
            scatter(areas, channels, sb, offset, size, &tmp);
            r
        }
    };
    Frames(match r {
        Ok(n) => n as a::snd_pcm_sframes_t,
        Err(e) if e.is(libc::EPIPE) => -libc::EPIPE as a::snd_pcm_sframes_t, // an overrun is news, not an error line
        Err(e) => report(c"transfer", e) as a::snd_pcm_sframes_t,
    })
}

unsafe extern "C" fn cb_transfer<P: Plugin>(
    io: *mut snd_pcm_ioplug_t,
    areas: *const a::snd_pcm_channel_area_t,
    offset: a::snd_pcm_uframes_t,
    size: a::snd_pcm_uframes_t,
) -> a::snd_pcm_sframes_t {
    with_plugin!(c"transfer", io, |p, v| {
        // SAFETY: io is live; its channel count describes `areas`.
        let (channels, capture) = unsafe { ((*io).channels as usize, (*io).stream == a::SND_PCM_STREAM_CAPTURE) };
        if capture {
            // SAFETY: as below, for areas ioplug hands us to fill.
            return unsafe { capture_into(&mut *p, &v, areas, channels, offset as u64, size as u64) };
        }
        let Some(fb) = p.frame_bytes() else {
            return Frames(-libc::EBADFD as _);
        };
        let sb = fb / channels.max(1);
        // SAFETY: ioplug hands `channels` areas valid over [offset, offset+size).
        let first = unsafe { &*areas };
        let mut tmp = Vec::new();
        // SAFETY: as above.
        let data: &[u8] = if unsafe { is_interleaved(areas, channels, sb, fb) } {
            // SAFETY: contiguous interleaved frames starting at frame `offset`.
            unsafe {
                std::slice::from_raw_parts((first.addr as *const u8).add(offset as usize * fb), size as usize * fb)
            }
        } else {
            // SAFETY: as above, gathered sample by sample.
            unsafe { gather(areas, channels, sb, offset as u64, size as u64, &mut tmp) };
            &tmp
        };
        Frames(match p.transfer(&v, data, size as u64) {
            Ok(n) => n as a::snd_pcm_sframes_t,
            Err(e) => report(c"transfer", e) as a::snd_pcm_sframes_t,
        })
    })
    .0
}

unsafe extern "C" fn cb_close<P: Plugin>(io: *mut snd_pcm_ioplug_t) -> c_int {
    guarded(c"close", || {
        // SAFETY: close is the last callback; we reclaim the Box made in `open`.
        drop(unsafe { Box::from_raw((*io).private_data as *mut Holder<P>) });
        0
    })
}

unsafe extern "C" fn cb_hw_params<P: Plugin>(io: *mut snd_pcm_ioplug_t, _params: *mut a::snd_pcm_hw_params_t) -> c_int {
    with_plugin!(c"hw_params", io, |p, _v| {
        // SAFETY: ioplug filled these fields from the chosen params just before calling us.
        let hw = unsafe {
            HwChoice {
                format: (*io).format,
                channels: (*io).channels,
                rate: (*io).rate,
                period: (*io).period_size as u64,
                buffer: (*io).buffer_size as u64,
            }
        };
        p.hw_params(hw).map_or_else(|e| report(c"hw_params", e), |_| 0)
    })
}

unsafe extern "C" fn cb_hw_free<P: Plugin>(io: *mut snd_pcm_ioplug_t) -> c_int {
    with_plugin!(c"hw_free", io, |p, _v| {
        p.hw_free();
        // As on hw: after hw_free the PCM is back in OPEN, not SETUP.
        // SAFETY: io is live; setting the state is what this API is for.
        unsafe { snd_pcm_ioplug_set_state(io, a::SND_PCM_STATE_OPEN) };
        0
    })
}

unsafe extern "C" fn cb_sw_params<P: Plugin>(io: *mut snd_pcm_ioplug_t, params: *mut a::snd_pcm_sw_params_t) -> c_int {
    with_plugin!(c"sw_params", io, |p, _v| {
        let (mut boundary, mut avail_min, mut stop) = (0, 0, 0);
        // SAFETY: params is the live sw_params being installed; getters write our locals.
        unsafe {
            a::snd_pcm_sw_params_get_boundary(params, &mut boundary);
            a::snd_pcm_sw_params_get_avail_min(params, &mut avail_min);
            a::snd_pcm_sw_params_get_stop_threshold(params, &mut stop);
        }
        p.sw_params(SwChoice {
            boundary: boundary as u64,
            avail_min: avail_min as u64,
            stop_threshold: stop as u64,
        });
        0
    })
}

unsafe extern "C" fn cb_prepare<P: Plugin>(io: *mut snd_pcm_ioplug_t) -> c_int {
    with_plugin!(c"prepare", io, |p, _v| p
        .prepare()
        .map_or_else(|e| report(c"prepare", e), |_| 0))
}

unsafe extern "C" fn cb_drain<P: Plugin>(io: *mut snd_pcm_ioplug_t) -> c_int {
    guarded(c"drain", || {
        // SAFETY: see `holder`.
        let (h, capture) = unsafe { (holder::<P>(io), (*io).stream == a::SND_PCM_STREAM_CAPTURE) };
        if capture {
            // ioplug drops a stream whose drain returns 0, and with it what is left to
            // read; a positive answer keeps it DRAINING until the program has read the
            // rest (then `pointer` ends it, as the kernel does).
            return h.plugin.lock().drain_capture() as c_int;
        }
        let deadline = h.plugin.lock().drain_begin();
        loop {
            let step = h.plugin.lock().drain_step();
            match step {
                Ok(DrainStep::Done) => return 0,
                Ok(DrainStep::Wait { fds, ns }) => {
                    // SAFETY: see `io_view`.
                    let (v, nonblock) = unsafe { (io_view(io), std::ptr::read_volatile(&(*io).nonblock)) };
                    if v.state != a::SND_PCM_STATE_DRAINING {
                        return 0; // dropped by another thread
                    }
                    if nonblock != 0 {
                        return -libc::EAGAIN;
                    }
                    if Instant::now() > deadline {
                        snderr(c"drain", "rdmix: drain: the device stopped consuming; giving up");
                        return -libc::EIO;
                    }
                    let mut p = fds.map(|fd| crate::sys::fd::pollfd(fd, libc::POLLIN));
                    let _ = poll(&mut p, ns.div_ceil(1_000_000).clamp(1, 200) as i32);
                }
                Err(e) => return report(c"drain", e),
            }
        }
    })
}

unsafe extern "C" fn cb_pause<P: Plugin>(io: *mut snd_pcm_ioplug_t, enable: c_int) -> c_int {
    with_plugin!(c"pause", io, |p, v| p
        .pause(&v, enable != 0)
        .map_or_else(|e| report(c"pause", e), |_| 0))
}

unsafe extern "C" fn cb_poll_count<P: Plugin>(io: *mut snd_pcm_ioplug_t) -> c_int {
    with_plugin!(c"poll_descriptors_count", io, |p, _v| p.poll_descriptors().len()
        as c_int)
}

unsafe extern "C" fn cb_poll_descriptors<P: Plugin>(
    io: *mut snd_pcm_ioplug_t,
    pfd: *mut pollfd,
    space: c_uint,
) -> c_int {
    with_plugin!(c"poll_descriptors", io, |p, _v| {
        let fds = p.poll_descriptors();
        if (space as usize) < fds.len() {
            return -libc::EINVAL;
        }
        // SAFETY: alsa-lib gives room for `space` (>= fds.len()) descriptors.
        unsafe { std::ptr::copy_nonoverlapping(fds.as_ptr(), pfd, fds.len()) };
        fds.len() as c_int
    })
}

unsafe extern "C" fn cb_poll_revents<P: Plugin>(
    io: *mut snd_pcm_ioplug_t,
    pfd: *mut pollfd,
    nfds: c_uint,
    revents: *mut c_ushort,
) -> c_int {
    with_plugin!(c"poll_revents", io, |p, v| {
        // SAFETY: alsa-lib passes back the `nfds` descriptors we returned.
        let fds = unsafe { std::slice::from_raw_parts(pfd, nfds as usize) };
        let r = p.poll_revents(&v, fds);
        if r.xrun && v.state == a::SND_PCM_STATE_RUNNING {
            // SAFETY: io is live; setting the state is what this API is for.
            unsafe { snd_pcm_ioplug_set_state(io, a::SND_PCM_STATE_XRUN) };
        }
        // SAFETY: revents points at alsa-lib's output variable.
        unsafe { *revents = r.events as c_ushort };
        0
    })
}

unsafe extern "C" fn cb_delay<P: Plugin>(io: *mut snd_pcm_ioplug_t, delayp: *mut a::snd_pcm_sframes_t) -> c_int {
    // Errors are silent: -EPIPE from delay during an xrun is the normal answer, not news.
    with_plugin!(c"delay", io, |p, v| match p.delay(&v) {
        Ok(d) => {
            // SAFETY: delayp points at alsa-lib's output variable.
            unsafe { *delayp = d as a::snd_pcm_sframes_t };
            0
        }
        Err(e) => e.neg(),
    })
}

/// Writes `map` into a `snd_pcm_chmap_t` that has room for `map.len()` positions.
///
/// # Safety
/// `dst` must point at such a map.
unsafe fn fill_chmap(dst: *mut a::snd_pcm_chmap_t, map: &[u32]) {
    // SAFETY: the caller sized the allocation for the header and every position.
    unsafe {
        (*dst).channels = map.len() as u32;
        std::ptr::copy_nonoverlapping(map.as_ptr(), (*dst).pos.as_mut_ptr(), map.len());
    }
}

/// Allocates a `snd_pcm_chmap_query_t` with `malloc`, for alsa-lib to free; NULL on failure.
fn chmap_query(map: &[u32]) -> *mut a::snd_pcm_chmap_query_t {
    // SAFETY: header plus one position per channel, written before it is handed out.
    unsafe {
        let q = libc::malloc(std::mem::size_of::<a::snd_pcm_chmap_query_t>() + 4 * map.len())
            as *mut a::snd_pcm_chmap_query_t;
        if !q.is_null() {
            (*q).type_ = a::SND_CHMAP_TYPE_FIXED;
            fill_chmap(&mut (*q).map, map);
        }
        q
    }
}

unsafe extern "C" fn cb_query_chmaps<P: Plugin>(io: *mut snd_pcm_ioplug_t) -> *mut *mut a::snd_pcm_chmap_query_t {
    guarded_ptr(|| {
        // SAFETY: see `holder`.
        let h = unsafe { holder::<P>(io) };
        let maps = h.plugin.lock().query_chmaps();
        // SAFETY: a NULL-terminated, malloc'd array of malloc'd queries, freed by alsa-lib
        // (snd_pcm_free_chmaps); on a failed allocation everything made so far is freed.
        unsafe {
            let list = libc::calloc(maps.len() + 1, std::mem::size_of::<*mut a::snd_pcm_chmap_query_t>())
                as *mut *mut a::snd_pcm_chmap_query_t;
            if list.is_null() {
                return list;
            }
            for (i, m) in maps.iter().enumerate() {
                let q = chmap_query(m);
                if q.is_null() {
                    for j in 0..i {
                        libc::free(*list.add(j) as *mut c_void);
                    }
                    libc::free(list as *mut c_void);
                    return std::ptr::null_mut();
                }
                *list.add(i) = q;
            }
            list
        }
    })
}

unsafe extern "C" fn cb_get_chmap<P: Plugin>(io: *mut snd_pcm_ioplug_t) -> *mut a::snd_pcm_chmap_t {
    guarded_ptr(|| {
        // SAFETY: see `holder`; channels is 0 before hw_params, then the chosen count.
        let (h, channels) = unsafe { (holder::<P>(io), (*io).channels) };
        let map = h.plugin.lock().chmap(channels);
        // SAFETY: malloc'd for alsa-lib to free; header plus one position per channel.
        unsafe {
            let m = libc::malloc(std::mem::size_of::<a::snd_pcm_chmap_t>() + 4 * map.len()) as *mut a::snd_pcm_chmap_t;
            if m.is_null() {
                return m;
            }
            fill_chmap(m, &map);
            m
        }
    })
}

unsafe extern "C" fn cb_dump<P: Plugin>(io: *mut snd_pcm_ioplug_t, out: *mut a::snd_output_t) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `holder`.
        let text = unsafe { holder::<P>(io) }.plugin.lock().dump();
        let t = CString::new(text.replace('\0', " ")).unwrap_or_default();
        // SAFETY: out is alsa-lib's live output; "%s" with one string argument.
        unsafe { a::snd_output_printf(out, c"%s".as_ptr(), t.as_ptr()) };
        // A dump callback replaces ioplug's whole dump, so the standard block that `aplay -v`
        // users and bug reports rely on is printed here, as ioplug would, once set up.
        // SAFETY: io is alsa-lib's live ioplug; its pcm is the PCM being dumped.
        unsafe {
            if (*io).state != a::SND_PCM_STATE_OPEN {
                a::snd_output_printf(out, c"Its setup is:\n".as_ptr());
                a::snd_pcm_dump_setup((*io).pcm, out);
            }
        }
    }));
}

fn callbacks<P: Plugin>() -> snd_pcm_ioplug_callback_t {
    snd_pcm_ioplug_callback {
        start: Some(cb_start::<P>),
        stop: Some(cb_stop::<P>),
        pointer: Some(cb_pointer::<P>),
        transfer: Some(cb_transfer::<P>),
        close: Some(cb_close::<P>),
        hw_params: Some(cb_hw_params::<P>),
        hw_free: Some(cb_hw_free::<P>),
        sw_params: Some(cb_sw_params::<P>),
        prepare: Some(cb_prepare::<P>),
        drain: Some(cb_drain::<P>),
        pause: Some(cb_pause::<P>),
        resume: None,
        poll_descriptors_count: Some(cb_poll_count::<P>),
        poll_descriptors: Some(cb_poll_descriptors::<P>),
        poll_revents: Some(cb_poll_revents::<P>),
        dump: Some(cb_dump::<P>),
        delay: Some(cb_delay::<P>),
        query_chmaps: Some(cb_query_chmaps::<P>),
        get_chmap: Some(cb_get_chmap::<P>),
        set_chmap: None,
    }
}

/// Applies the space a plugin offers.
///
/// # Safety
/// `io` must be an ioplug created by `snd_pcm_ioplug_create`.
unsafe fn constrain(io: *mut snd_pcm_ioplug_t, s: &Space) -> std::result::Result<(), c_int> {
    let check = |r: c_int| if r < 0 { Err(r) } else { Ok(()) };
    let access: Vec<c_uint> = s.access.iter().map(|v| *v as c_uint).collect();
    let formats: Vec<c_uint> = s.formats.iter().map(|v| *v as c_uint).collect();
    let ranges = [
        (SND_PCM_IOPLUG_HW_CHANNELS, s.channels),
        (SND_PCM_IOPLUG_HW_RATE, s.rate),
        (SND_PCM_IOPLUG_HW_PERIOD_BYTES, s.period_bytes),
        (SND_PCM_IOPLUG_HW_BUFFER_BYTES, s.buffer_bytes),
        (SND_PCM_IOPLUG_HW_PERIODS, s.periods),
    ];
    // SAFETY: io is live; the lists outlive the calls (alsa-lib copies them).
    unsafe {
        for (param, list) in [
            (SND_PCM_IOPLUG_HW_ACCESS, &access),
            (SND_PCM_IOPLUG_HW_FORMAT, &formats),
        ] {
            check(snd_pcm_ioplug_set_param_list(
                io,
                param as c_int,
                list.len() as c_uint,
                list.as_ptr(),
            ))?;
        }
        for (param, (lo, hi)) in ranges {
            check(snd_pcm_ioplug_set_param_minmax(io, param as c_int, lo, hi))?;
        }
    }
    Ok(())
}

/// What an open call is given.
pub struct OpenArgs<'a> {
    /// The plugin's own node (`pcm.NAME { type ... }`).
    pub conf: Conf<'a>,
    /// The whole configuration, for references such as `pcm_slave.NAME`.
    pub root: Option<Conf<'a>>,
    pub stream: a::snd_pcm_stream_t,
    pub nonblock: bool,
}

/// A PCM plugin's open function: builds the plugin with `make` and wraps it in an ioplug.
///
/// # Safety
/// The arguments must be those alsa-lib passes to a plugin's `_snd_pcm_NAME_open`.
pub unsafe fn open<P: Plugin>(
    pcmp: *mut *mut a::snd_pcm_t,
    name: *const c_char,
    root: *mut a::snd_config_t,
    conf: *mut a::snd_config_t,
    stream: a::snd_pcm_stream_t,
    mode: c_int,
    make: impl FnOnce(&OpenArgs) -> Result<P>,
) -> c_int {
    guarded(c"open", || {
        // SAFETY: alsa-lib keeps both nodes alive for the duration of the open call.
        let (node, root) = unsafe { (Conf::from_raw(conf), Conf::from_raw(root)) };
        let Some(node) = node else {
            snderr(c"open", "rdmix: no configuration node");
            return -libc::EINVAL;
        };
        let args = OpenArgs {
            conf: node,
            root,
            stream,
            nonblock: mode & a::SND_PCM_NONBLOCK as c_int != 0,
        };
        let plugin = match make(&args) {
            Ok(p) => p,
            Err(e) => return report(c"open", e),
        };
        let space = plugin.space();
        let poll_fd = plugin.poll_descriptors().first().map_or(-1, |p| p.fd);
        let h = Box::into_raw(Box::new(Holder {
            // SAFETY: snd_pcm_ioplug_t is a C struct for which all-zero is the documented start.
            io: unsafe { std::mem::zeroed() },
            callbacks: callbacks::<P>(),
            plugin: Mutex::new(plugin),
        }));
        // SAFETY: h is fresh and ours; the other arguments are alsa-lib's own.
        unsafe { create(h, pcmp, name, stream, mode, poll_fd, args.nonblock, &space) }
    })
}

/// Registers a holder with ioplug and applies its space.
///
/// # Safety
/// `h` must come from `Box::into_raw` and be owned by nobody else; the other arguments must
/// be those alsa-lib passed to the open function. After this returns, ioplug owns `h`
/// (freed through `cb_close`), or it has been freed on failure.
#[allow(clippy::too_many_arguments)]
unsafe fn create<P: Plugin>(
    h: *mut Holder<P>,
    pcmp: *mut *mut a::snd_pcm_t,
    name: *const c_char,
    stream: a::snd_pcm_stream_t,
    mode: c_int,
    poll_fd: c_int,
    nonblock: bool,
    space: &Space,
) -> c_int {
    // SAFETY: h is exclusively ours until snd_pcm_ioplug_create succeeds (see above).
    unsafe {
        let io = &mut (*h).io;
        io.version = SND_PCM_IOPLUG_VERSION;
        io.name = P::NAME.as_ptr();
        // No FLAG_MONOTONIC: ioplug's refine cannot say so (it never sets
        // SND_PCM_INFO_MONOTONIC), and aplay, asking snd_pcm_hw_params_is_monotonic before
        // hw_params, then read monotonic stamps as wall-clock time ("underrun!!! (at least
        // 1796220618763 ms long)"). Without it ioplug stamps on the clock the program chose
        // in sw_params (tstamp_type; gettimeofday unless it asks), as a card does.
        io.flags = SND_PCM_IOPLUG_FLAG_BOUNDARY_WA;
        io.poll_fd = poll_fd;
        io.poll_events = libc::POLLIN as c_uint;
        io.mmap_rw = 0;
        io.callback = &(*h).callbacks;
        io.private_data = h as *mut c_void;
        let r = snd_pcm_ioplug_create(io, name, stream, mode);
        if r < 0 {
            drop(Box::from_raw(h));
            snderr(
                c"open",
                &format!("rdmix: cannot create the PCM: {}", super::strerror(r)),
            );
            return r;
        }
        // ioplug does not take this from the open mode.
        io.nonblock = nonblock as c_int;
        if let Err(r) = constrain(io, space) {
            snderr(
                c"open",
                &format!("rdmix: cannot set hw constraints: {}", super::strerror(r)),
            );
            snd_pcm_ioplug_delete(io); // closes, which frees the holder
            return r;
        }
        *pcmp = io.pcm;
    }
    0
}

/// Exports a PCM plugin's entry points for alsa-lib: `_snd_pcm_NAME_open` and the version
/// symbol `__snd_pcm_NAME_open_dlsym_pcm_001` it checks for.
#[macro_export]
macro_rules! ioplug_entry {
    ($open_fn:ident, $version_sym:ident, playback: $play:expr, capture: $record:expr) => {
        /// The plugin's entry point, found by alsa-lib from the PCM's `type`.
        ///
        /// # Safety
        /// Called by alsa-lib with valid pointers, as for every PCM plugin open function.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $open_fn(
            pcmp: *mut *mut ::alsa_sys::snd_pcm_t,
            name: *const ::std::ffi::c_char,
            root: *mut ::alsa_sys::snd_config_t,
            conf: *mut ::alsa_sys::snd_config_t,
            stream: ::alsa_sys::snd_pcm_stream_t,
            mode: ::std::ffi::c_int,
        ) -> ::std::ffi::c_int {
            // Each direction is its own plugin type: the stream chooses which is opened.
            let (play, record) = ($play, $record);
            if stream == ::alsa_sys::SND_PCM_STREAM_CAPTURE {
                // SAFETY: these are alsa-lib's own arguments to a plugin open function.
                unsafe { $crate::alsa::ioplug::open(pcmp, name, root, conf, stream, mode, record) }
            } else {
                // SAFETY: as above.
                unsafe { $crate::alsa::ioplug::open(pcmp, name, root, conf, stream, mode, play) }
            }
        }

        /// alsa-lib checks for this symbol to verify the plugin's API version.
        #[unsafe(no_mangle)]
        pub static $version_sym: ::std::ffi::c_char = 0;
    };
}
