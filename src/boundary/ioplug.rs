//! The plugin's C entry points: `_snd_pcm_rdmix_open` and the ioplug callback table.
//!
//! Each callback turns raw pointers into plain values, calls the safe `Client`, and turns
//! the result back into an errno. No panic crosses into C: every callback is guarded.

// snd_pcm_uframes_t is 32 bits on 32-bit targets: the casts to u64 are not no-ops there.
#![allow(clippy::unnecessary_cast)]

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_ushort, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use alsa_sys as a;
use libc::pollfd;
use parking_lot::Mutex;

use super::conf::Conf;
use super::ffi::*;
use crate::client::{Client, HwSetup, Io, drain_wait};
use crate::config::Config;
use crate::control::Failure;
use crate::convert::{MAX_RATE, MIN_RATE};
use crate::mix::{FORMATS, Format};
use crate::segment::LANE_BYTES;
use crate::sys;

/// Prints one line through alsa-lib's error handler, as `SNDERR` does.
pub fn snderr(func: &CStr, msg: &str) {
    let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // SAFETY: snd_lib_error is alsa-lib's current handler (never NULL after library init);
    // we pass a "%s" format and one NUL-terminated string argument.
    unsafe {
        if let Some(handler) = snd_lib_error {
            handler(c"pcm_rdmix".as_ptr(), 0, func.as_ptr(), 0, c"%s".as_ptr(), msg.as_ptr());
        }
    }
}

fn report(func: &CStr, f: Failure) -> c_int {
    snderr(func, &f.msg);
    f.errno
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

/// Newtype so the same guard serves callbacks returning `snd_pcm_sframes_t`.
struct Frames(a::snd_pcm_sframes_t);
impl From<i32> for Frames {
    fn from(v: i32) -> Frames {
        Frames(v as a::snd_pcm_sframes_t)
    }
}

/// One open rdmix PCM. `io` must stay first and at a fixed address: ioplug keeps a pointer.
#[repr(C)]
struct Plugin {
    io: snd_pcm_ioplug_t,
    client: Mutex<Client>,
}

/// # Safety
/// `io` must be the `io` field of a live `Plugin` (ioplug only calls us with the one we made).
unsafe fn plugin<'a>(io: *mut snd_pcm_ioplug_t) -> &'a Plugin {
    // SAFETY: private_data was set to the Plugin that contains this io.
    unsafe { &*((*io).private_data as *const Plugin) }
}

/// # Safety
/// As for `plugin`.
unsafe fn io_view(io: *mut snd_pcm_ioplug_t) -> Io {
    // SAFETY: reads of fields alsa-lib keeps current; volatile because other threads may move them.
    unsafe {
        Io {
            appl_ptr: std::ptr::read_volatile(&(*io).appl_ptr) as u64,
            state: std::ptr::read_volatile(&(*io).state),
        }
    }
}

macro_rules! with_client {
    ($name:literal, $io:ident, |$c:ident, $v:ident| $body:expr) => {
        guarded($name, || {
            // SAFETY: ioplug passes back the io we registered; see `plugin`.
            let (p, $v) = unsafe { (plugin($io), io_view($io)) };
            let _ = &$v;
            #[allow(unused_mut)]
            let mut $c = p.client.lock();
            $body
        })
    };
}

unsafe extern "C" fn cb_start(io: *mut snd_pcm_ioplug_t) -> c_int {
    with_client!(c"start", io, |c, _v| match c.start() {
        Ok(()) => 0,
        Err(f) => report(c"start", f),
    })
}

unsafe extern "C" fn cb_stop(io: *mut snd_pcm_ioplug_t) -> c_int {
    with_client!(c"stop", io, |c, _v| {
        c.stop();
        0
    })
}

unsafe extern "C" fn cb_pointer(io: *mut snd_pcm_ioplug_t) -> a::snd_pcm_sframes_t {
    with_client!(c"pointer", io, |c, v| Frames(match c.pointer(&v) {
        Ok(p) => p as a::snd_pcm_sframes_t,
        Err(e) => e as a::snd_pcm_sframes_t,
    }))
    .0
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

unsafe extern "C" fn cb_transfer(
    io: *mut snd_pcm_ioplug_t,
    areas: *const a::snd_pcm_channel_area_t,
    offset: a::snd_pcm_uframes_t,
    size: a::snd_pcm_uframes_t,
) -> a::snd_pcm_sframes_t {
    with_client!(c"transfer", io, |c, v| {
        let Some(fb) = c.frame_bytes() else {
            return Frames(-libc::EBADFD as _);
        };
        // SAFETY: io is live; its channel count describes `areas`.
        let channels = unsafe { (*io).channels } as usize;
        let sb = fb / channels.max(1);
        // SAFETY: ioplug hands `channels` areas valid over [offset, offset+size).
        let first = unsafe { &*areas };
        let interleaved = (0..channels).all(|ch| {
            // SAFETY: ch < channels.
            let ar = unsafe { &*areas.add(ch) };
            ar.addr == first.addr && ar.first as usize == ch * sb * 8 && ar.step as usize == fb * 8
        });
        let mut tmp = Vec::new();
        let data: &[u8] = if interleaved && first.first == 0 {
            // SAFETY: contiguous interleaved frames starting at frame `offset`.
            unsafe {
                std::slice::from_raw_parts((first.addr as *const u8).add(offset as usize * fb), size as usize * fb)
            }
        } else {
            // SAFETY: as above, gathered sample by sample.
            unsafe { gather(areas, channels, sb, offset as u64, size as u64, &mut tmp) };
            &tmp
        };
        Frames(match c.transfer(&v, data, size as u64) {
            Ok(n) => n as a::snd_pcm_sframes_t,
            Err(f) => report(c"transfer", f) as a::snd_pcm_sframes_t,
        })
    })
    .0
}

unsafe extern "C" fn cb_close(io: *mut snd_pcm_ioplug_t) -> c_int {
    guarded(c"close", || {
        // SAFETY: close is the last callback; we reclaim the Box made in open. Dropping it
        // closes the control socket, which is how the pump learns we left.
        drop(unsafe { Box::from_raw((*io).private_data as *mut Plugin) });
        0
    })
}

unsafe extern "C" fn cb_hw_params(io: *mut snd_pcm_ioplug_t, _params: *mut a::snd_pcm_hw_params_t) -> c_int {
    with_client!(c"hw_params", io, |c, _v| {
        // SAFETY: ioplug filled these fields from the chosen params just before calling us.
        let (format, channels, rate, period, buffer) = unsafe {
            (
                (*io).format,
                (*io).channels,
                (*io).rate,
                (*io).period_size,
                (*io).buffer_size,
            )
        };
        let Some(format) = Format::lookup(format) else {
            snderr(
                c"hw_params",
                &format!("rdmix: hw_params: format {format} is not supported"),
            );
            return -libc::EINVAL;
        };
        match c.hw_params(HwSetup {
            format,
            channels,
            rate,
            period: period as u64,
            buffer: buffer as u64,
        }) {
            Ok(()) => 0,
            Err(f) => report(c"hw_params", f),
        }
    })
}

unsafe extern "C" fn cb_hw_free(io: *mut snd_pcm_ioplug_t) -> c_int {
    with_client!(c"hw_free", io, |c, _v| {
        c.hw_free();
        // As on hw: after hw_free the PCM is back in OPEN, not SETUP.
        // SAFETY: io is live; setting the state is what this API is for.
        unsafe { snd_pcm_ioplug_set_state(io, a::SND_PCM_STATE_OPEN) };
        0
    })
}

unsafe extern "C" fn cb_sw_params(io: *mut snd_pcm_ioplug_t, params: *mut a::snd_pcm_sw_params_t) -> c_int {
    with_client!(c"sw_params", io, |c, _v| {
        let (mut boundary, mut avail_min, mut stop) = (0, 0, 0);
        // SAFETY: params is the live sw_params being installed; getters write our locals.
        unsafe {
            a::snd_pcm_sw_params_get_boundary(params, &mut boundary);
            a::snd_pcm_sw_params_get_avail_min(params, &mut avail_min);
            a::snd_pcm_sw_params_get_stop_threshold(params, &mut stop);
        }
        c.sw_params(boundary as u64, avail_min as u64, stop as u64);
        0
    })
}

unsafe extern "C" fn cb_prepare(io: *mut snd_pcm_ioplug_t) -> c_int {
    with_client!(c"prepare", io, |c, _v| match c.prepare() {
        Ok(()) => 0,
        Err(f) => report(c"prepare", f),
    })
}

unsafe extern "C" fn cb_drain(io: *mut snd_pcm_ioplug_t) -> c_int {
    guarded(c"drain", || {
        // SAFETY: see `plugin`.
        let p = unsafe { plugin(io) };
        let deadline = {
            let mut c = p.client.lock();
            c.begin_drain();
            c.drain_deadline()
        };
        loop {
            let step = p.client.lock().drain_step();
            match step {
                Ok(None) => return 0,
                Ok(Some((ev, sock, ns))) => {
                    // SAFETY: see `io_view`.
                    let (v, nonblock) = unsafe { (io_view(io), std::ptr::read_volatile(&(*io).nonblock)) };
                    if v.state != a::SND_PCM_STATE_DRAINING {
                        return 0; // dropped by another thread
                    }
                    if nonblock != 0 {
                        return -libc::EAGAIN;
                    }
                    if std::time::Instant::now() > deadline {
                        snderr(c"drain", "rdmix: drain: the device stopped consuming; giving up");
                        return -libc::EIO;
                    }
                    drain_wait(ev, sock, ns);
                }
                Err(f) => return report(c"drain", f),
            }
        }
    })
}

unsafe extern "C" fn cb_pause(io: *mut snd_pcm_ioplug_t, enable: c_int) -> c_int {
    with_client!(c"pause", io, |c, v| match c.pause(&v, enable != 0) {
        Ok(()) => 0,
        Err(f) => report(c"pause", f),
    })
}

/// The eventfd the pump signals, the control socket (hang-up = pump gone), and a timer for
/// the play-out at the end of a drain.
const POLL_FDS: usize = 3;

unsafe extern "C" fn cb_poll_count(_io: *mut snd_pcm_ioplug_t) -> c_int {
    POLL_FDS as c_int
}

unsafe extern "C" fn cb_poll_descriptors(io: *mut snd_pcm_ioplug_t, pfd: *mut pollfd, space: c_uint) -> c_int {
    with_client!(c"poll_descriptors", io, |c, _v| {
        if (space as usize) < POLL_FDS {
            return -libc::EINVAL;
        }
        // SAFETY: alsa-lib gives room for `space` (>= POLL_FDS) descriptors.
        unsafe {
            *pfd = sys::pollfd(c.poll_fd(), libc::POLLIN);
            *pfd.add(1) = sys::pollfd(c.sock_fd(), libc::POLLIN);
            *pfd.add(2) = sys::pollfd(c.timer_fd(), libc::POLLIN);
        }
        POLL_FDS as c_int
    })
}

unsafe extern "C" fn cb_poll_revents(
    io: *mut snd_pcm_ioplug_t,
    pfd: *mut pollfd,
    nfds: c_uint,
    revents: *mut c_ushort,
) -> c_int {
    with_client!(c"poll_revents", io, |c, v| {
        // SAFETY: alsa-lib passes back the `nfds` descriptors we returned.
        let sock_revents = if nfds >= 2 && unsafe { (*pfd.add(1)).fd } != c.poll_fd() {
            // SAFETY: as above.
            unsafe { (*pfd.add(1)).revents }
        } else {
            0
        };
        let r = c.poll_revents(&v, sock_revents);
        if r & libc::POLLERR != 0 && v.state == a::SND_PCM_STATE_RUNNING {
            // The pump is gone: report an xrun, which snd_pcm_recover turns into a reconnect.
            // SAFETY: io is live; setting the state is what this API is for.
            unsafe { snd_pcm_ioplug_set_state(io, a::SND_PCM_STATE_XRUN) };
        }
        // SAFETY: revents points at alsa-lib's output variable.
        unsafe { *revents = r as c_ushort };
        0
    })
}

unsafe extern "C" fn cb_delay(io: *mut snd_pcm_ioplug_t, delayp: *mut a::snd_pcm_sframes_t) -> c_int {
    with_client!(c"delay", io, |c, v| match c.delay(&v) {
        Ok(d) => {
            // SAFETY: delayp points at alsa-lib's output variable.
            unsafe { *delayp = d as a::snd_pcm_sframes_t };
            0
        }
        Err(f) => f.errno,
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

unsafe extern "C" fn cb_query_chmaps(io: *mut snd_pcm_ioplug_t) -> *mut *mut a::snd_pcm_chmap_query_t {
    guarded_ptr(|| {
        // SAFETY: see `plugin`.
        let maps: Vec<Vec<u32>> = {
            let c = unsafe { plugin(io) }.client.lock();
            let (lo, hi) = c.channel_range();
            (lo..=hi).map(|n| c.client_chmap(n)).collect()
        };
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

unsafe extern "C" fn cb_get_chmap(io: *mut snd_pcm_ioplug_t) -> *mut a::snd_pcm_chmap_t {
    guarded_ptr(|| {
        // SAFETY: see `plugin`; channels is 0 before hw_params, then the chosen count.
        let map = {
            let channels = unsafe { (*io).channels };
            let c = unsafe { plugin(io) }.client.lock();
            c.client_chmap(if channels == 0 { c.dev.channels } else { channels })
        };
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

fn guarded_ptr<T>(f: impl FnOnce() -> *mut T) -> *mut T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(std::ptr::null_mut())
}

unsafe extern "C" fn cb_dump(io: *mut snd_pcm_ioplug_t, out: *mut a::snd_output_t) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see `plugin`.
        let c = unsafe { plugin(io) }.client.lock();
        let text = format!(
            "rdmix PCM: slave \"{}\", ipc_key {:#x}, device {} Hz, {} ch, period {} / buffer {} frames\n",
            c.cfg.slave.pcm, c.cfg.ipc_key, c.dev.rate, c.dev.channels, c.dev.period_frames, c.dev.buffer_frames
        );
        let t = CString::new(text).unwrap_or_default();
        // SAFETY: out is alsa-lib's live output; "%s" with one string argument.
        unsafe { a::snd_output_printf(out, c"%s".as_ptr(), t.as_ptr()) };
    }));
}

static CALLBACKS: snd_pcm_ioplug_callback_t = snd_pcm_ioplug_callback {
    start: Some(cb_start),
    stop: Some(cb_stop),
    pointer: Some(cb_pointer),
    transfer: Some(cb_transfer),
    close: Some(cb_close),
    hw_params: Some(cb_hw_params),
    hw_free: Some(cb_hw_free),
    sw_params: Some(cb_sw_params),
    prepare: Some(cb_prepare),
    drain: Some(cb_drain),
    pause: Some(cb_pause),
    resume: None,
    poll_descriptors_count: Some(cb_poll_count),
    poll_descriptors: Some(cb_poll_descriptors),
    poll_revents: Some(cb_poll_revents),
    dump: Some(cb_dump),
    delay: Some(cb_delay),
    query_chmaps: Some(cb_query_chmaps),
    get_chmap: Some(cb_get_chmap),
    set_chmap: None,
};

/// Applies the hw_params space clients may choose from: exactly what the pump accepts.
///
/// # Safety
/// `io` must be an ioplug created by `snd_pcm_ioplug_create`.
unsafe fn constrain(io: *mut snd_pcm_ioplug_t, c: &Client) -> Result<(), i32> {
    let access = [
        a::SND_PCM_ACCESS_RW_INTERLEAVED,
        a::SND_PCM_ACCESS_RW_NONINTERLEAVED,
        a::SND_PCM_ACCESS_MMAP_INTERLEAVED,
        a::SND_PCM_ACCESS_MMAP_NONINTERLEAVED,
    ];
    let formats: Vec<c_uint> = FORMATS.iter().map(|f| f.id as c_uint).collect();
    let (ch_lo, ch_hi) = c.channel_range();
    // The pump takes a device period's worth from each lane at once, so a client buffer must
    // hold at least that. Constraints are in bytes: the floor is a device period of 8-byte
    // samples at the device's channel count (for S16 stereo at the device rate, four periods).
    let min_buffer_bytes = c.dev.period_frames * c.dev.channels * 8;
    let check = |r: c_int| if r < 0 { Err(r) } else { Ok(()) };
    // SAFETY: io is live; the lists outlive the calls (alsa-lib copies them).
    unsafe {
        check(snd_pcm_ioplug_set_param_list(
            io,
            SND_PCM_IOPLUG_HW_ACCESS as c_int,
            4,
            access.as_ptr(),
        ))?;
        check(snd_pcm_ioplug_set_param_list(
            io,
            SND_PCM_IOPLUG_HW_FORMAT as c_int,
            formats.len() as c_uint,
            formats.as_ptr(),
        ))?;
        check(snd_pcm_ioplug_set_param_minmax(
            io,
            SND_PCM_IOPLUG_HW_CHANNELS as c_int,
            ch_lo,
            ch_hi,
        ))?;
        check(snd_pcm_ioplug_set_param_minmax(
            io,
            SND_PCM_IOPLUG_HW_RATE as c_int,
            MIN_RATE,
            MAX_RATE,
        ))?;
        check(snd_pcm_ioplug_set_param_minmax(
            io,
            SND_PCM_IOPLUG_HW_PERIOD_BYTES as c_int,
            32,
            LANE_BYTES as u32 / 2,
        ))?;
        check(snd_pcm_ioplug_set_param_minmax(
            io,
            SND_PCM_IOPLUG_HW_BUFFER_BYTES as c_int,
            min_buffer_bytes,
            LANE_BYTES as u32,
        ))?;
        check(snd_pcm_ioplug_set_param_minmax(
            io,
            SND_PCM_IOPLUG_HW_PERIODS as c_int,
            2,
            1024,
        ))?;
    }
    Ok(())
}

fn open(
    pcmp: *mut *mut a::snd_pcm_t,
    name: *const c_char,
    root: *mut a::snd_config_t,
    conf: *mut a::snd_config_t,
    stream: a::snd_pcm_stream_t,
    mode: c_int,
) -> c_int {
    if stream != a::SND_PCM_STREAM_PLAYBACK {
        snderr(c"open", "rdmix: only playback is supported; capture is not mixed");
        return -libc::EINVAL;
    }
    if std::env::var_os("RDMIX_PUMP").is_some() {
        snderr(
            c"open",
            "rdmix: slave.pcm leads back to rdmix itself; the slave must be a real device or plugin chain",
        );
        return -libc::ELOOP;
    }
    // SAFETY: alsa-lib keeps both nodes alive for the duration of the open call.
    let (node, root) = unsafe { (Conf::from_raw(conf), Conf::from_raw(root)) };
    let Some(node) = node else {
        snderr(c"open", "rdmix: no configuration node");
        return -libc::EINVAL;
    };
    let cfg = match Config::parse(&node, root.as_ref(), sys::euid()) {
        Ok(c) => c,
        Err(e) => {
            snderr(c"open", &e.to_string());
            return -libc::EINVAL;
        }
    };
    let client = match Client::open(cfg) {
        Ok(c) => c,
        Err(f) => return report(c"open", f),
    };
    let poll_fd = client.poll_fd();
    let plugin = Box::into_raw(Box::new(Plugin {
        // SAFETY: snd_pcm_ioplug_t is a C struct for which all-zero is the documented start.
        io: unsafe { std::mem::zeroed() },
        client: Mutex::new(client),
    }));
    // SAFETY: plugin is a fresh, exclusively owned allocation; after create succeeds ioplug
    // owns its lifetime and frees it through cb_close.
    unsafe {
        let io = &mut (*plugin).io;
        io.version = SND_PCM_IOPLUG_VERSION;
        io.name = c"rdmix: share a copy-only device".as_ptr();
        io.flags = SND_PCM_IOPLUG_FLAG_MONOTONIC | SND_PCM_IOPLUG_FLAG_BOUNDARY_WA;
        io.poll_fd = poll_fd;
        io.poll_events = libc::POLLIN as c_uint;
        io.mmap_rw = 0;
        io.callback = &CALLBACKS;
        io.private_data = plugin as *mut c_void;
        let r = snd_pcm_ioplug_create(io, name, stream, mode);
        if r < 0 {
            drop(Box::from_raw(plugin));
            snderr(
                c"open",
                &format!("rdmix: cannot create the PCM: {}", super::pcm::strerror(r)),
            );
            return r;
        }
        io.nonblock = (mode & a::SND_PCM_NONBLOCK as c_int != 0) as c_int;
        if let Err(r) = constrain(io, &(*plugin).client.lock()) {
            snderr(
                c"open",
                &format!("rdmix: cannot set hw constraints: {}", super::pcm::strerror(r)),
            );
            snd_pcm_ioplug_delete(io); // closes, which frees the plugin
            return r;
        }
        *pcmp = io.pcm;
    }
    0
}

/// The plugin's entry point, found by alsa-lib from `type rdmix`.
///
/// # Safety
/// Called by alsa-lib with valid pointers, as for every PCM plugin open function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _snd_pcm_rdmix_open(
    pcmp: *mut *mut a::snd_pcm_t,
    name: *const c_char,
    root: *mut a::snd_config_t,
    conf: *mut a::snd_config_t,
    stream: a::snd_pcm_stream_t,
    mode: c_int,
) -> c_int {
    guarded(c"open", || open(pcmp, name, root, conf, stream, mode))
}

/// alsa-lib checks for this symbol to verify the plugin's API version.
#[unsafe(no_mangle)]
pub static __snd_pcm_rdmix_open_dlsym_pcm_001: c_char = 0;
