//! A safe handle on an alsa-lib PCM, with just what the pump needs to drive its slave.
//! Failures are bare errnos ([`Error::errno`]); the caller knows what it was asking for.

use std::ffi::{CStr, CString};

use alsa_sys as a;

use crate::error::{Error, Result};

fn check(r: libc::c_int) -> Result<()> {
    if r < 0 { Err(Error::errno(r)) } else { Ok(()) }
}

/// A frame count alsa-lib returns, or the negative errno in its place.
// snd_pcm_sframes_t is 32 bits on 32-bit targets: the cast is no cast there.
#[allow(clippy::unnecessary_cast)]
fn counted(r: a::snd_pcm_sframes_t) -> Result<usize> {
    if r < 0 {
        Err(Error::errno(r as i32))
    } else {
        Ok(r as usize)
    }
}

/// Channels `writen`/`readn` take at most (the pump's own limit is lower).
const MAX_PLANES: usize = 64;

/// An open PCM, closed on drop.
pub struct Pcm {
    pcm: *mut a::snd_pcm_t,
    /// Reused by every `stamped` call: nothing is allocated per period.
    status: *mut a::snd_pcm_status_t,
}

/// What a running PCM holds, with the moment it was true by the PCM itself.
#[derive(Clone, Copy, Debug)]
pub struct Stamped {
    /// Frames queued and not yet played (playback) or captured (capture).
    pub delay: i64,
    /// Frames that can be written (playback) or read (capture) now.
    pub avail: u64,
    /// CLOCK_MONOTONIC nanoseconds of the PCM's own timestamp; `None` where it gave none
    /// that falls within the call (a plugin without timestamps, or another clock).
    pub at_ns: Option<u64>,
}

// SAFETY: the handle is used from one thread at a time (the pump's loop owns it).
unsafe impl Send for Pcm {}

/// A hw_params container tied to a PCM during negotiation.
pub struct HwParams<'a> {
    pcm: &'a Pcm,
    hw: *mut a::snd_pcm_hw_params_t,
}

impl Drop for HwParams<'_> {
    fn drop(&mut self) {
        // SAFETY: allocated by snd_pcm_hw_params_malloc in Pcm::hw_params.
        unsafe { a::snd_pcm_hw_params_free(self.hw) };
    }
}

impl HwParams<'_> {
    pub fn set_access_rw_interleaved(&mut self) -> Result<()> {
        // SAFETY: live pcm and params.
        check(unsafe { a::snd_pcm_hw_params_set_access(self.pcm.pcm, self.hw, a::SND_PCM_ACCESS_RW_INTERLEAVED) })
    }
    pub fn set_access_rw_noninterleaved(&mut self) -> Result<()> {
        // SAFETY: live pcm and params.
        check(unsafe { a::snd_pcm_hw_params_set_access(self.pcm.pcm, self.hw, a::SND_PCM_ACCESS_RW_NONINTERLEAVED) })
    }
    pub fn test_format(&self, f: a::snd_pcm_format_t) -> bool {
        // SAFETY: live pcm and params.
        unsafe { a::snd_pcm_hw_params_test_format(self.pcm.pcm, self.hw, f) == 0 }
    }
    pub fn set_format(&mut self, f: a::snd_pcm_format_t) -> Result<()> {
        // SAFETY: live pcm and params.
        check(unsafe { a::snd_pcm_hw_params_set_format(self.pcm.pcm, self.hw, f) })
    }
    pub fn set_channels(&mut self, c: u32) -> Result<()> {
        // SAFETY: live pcm and params.
        check(unsafe { a::snd_pcm_hw_params_set_channels(self.pcm.pcm, self.hw, c) })
    }
    pub fn set_channels_near(&mut self, c: u32) -> Result<u32> {
        let mut v = c;
        // SAFETY: live pcm and params; v is ours.
        check(unsafe { a::snd_pcm_hw_params_set_channels_near(self.pcm.pcm, self.hw, &mut v) }).map(|_| v)
    }
    pub fn set_rate(&mut self, r: u32) -> Result<()> {
        // SAFETY: live pcm and params.
        check(unsafe { a::snd_pcm_hw_params_set_rate(self.pcm.pcm, self.hw, r, 0) })
    }
    pub fn set_rate_near(&mut self, r: u32) -> Result<u32> {
        let mut v = r;
        // SAFETY: live pcm and params; v is ours.
        check(unsafe { a::snd_pcm_hw_params_set_rate_near(self.pcm.pcm, self.hw, &mut v, std::ptr::null_mut()) })
            .map(|_| v)
    }
    pub fn set_period_size_near(&mut self, f: u64) -> Result<u64> {
        let mut v = f as a::snd_pcm_uframes_t;
        let mut dir = 0;
        // SAFETY: live pcm and params; v and dir are ours.
        check(unsafe { a::snd_pcm_hw_params_set_period_size_near(self.pcm.pcm, self.hw, &mut v, &mut dir) })
            .map(|_| v as u64)
    }
    pub fn set_period_time_near(&mut self, us: u32) -> Result<u32> {
        let mut v = us;
        let mut dir = 0;
        // SAFETY: live pcm and params; v and dir are ours.
        check(unsafe { a::snd_pcm_hw_params_set_period_time_near(self.pcm.pcm, self.hw, &mut v, &mut dir) }).map(|_| v)
    }
    pub fn set_buffer_size_near(&mut self, f: u64) -> Result<u64> {
        let mut v = f as a::snd_pcm_uframes_t;
        // SAFETY: live pcm and params; v is ours.
        check(unsafe { a::snd_pcm_hw_params_set_buffer_size_near(self.pcm.pcm, self.hw, &mut v) }).map(|_| v as u64)
    }
    pub fn set_buffer_time_near(&mut self, us: u32) -> Result<u32> {
        let mut v = us;
        let mut dir = 0;
        // SAFETY: live pcm and params; v and dir are ours.
        check(unsafe { a::snd_pcm_hw_params_set_buffer_time_near(self.pcm.pcm, self.hw, &mut v, &mut dir) }).map(|_| v)
    }
    pub fn set_periods_near(&mut self, n: u32) -> Result<u32> {
        let mut v = n;
        let mut dir = 0;
        // SAFETY: live pcm and params; v and dir are ours.
        check(unsafe { a::snd_pcm_hw_params_set_periods_near(self.pcm.pcm, self.hw, &mut v, &mut dir) }).map(|_| v)
    }
    /// Installs the parameters on the PCM.
    pub fn apply(self) -> Result<()> {
        // SAFETY: live pcm and params.
        check(unsafe { a::snd_pcm_hw_params(self.pcm.pcm, self.hw) })
    }
}

/// What the slave ended up running at.
#[derive(Debug, Clone, Copy)]
pub struct Negotiated {
    pub format: a::snd_pcm_format_t,
    pub channels: u32,
    pub rate: u32,
    pub period: u64,
    pub buffer: u64,
}

impl Pcm {
    /// Opens `name` non-blocking, for playback or (`capture`) for capture.
    pub fn open(name: &str, capture: bool) -> Result<Pcm> {
        let c = CString::new(name).map_err(|_| Error::errno(libc::EINVAL))?;
        let mut pcm = std::ptr::null_mut();
        // SAFETY: c is NUL-terminated; pcm receives a handle on success.
        check(unsafe {
            a::snd_pcm_open(
                &mut pcm,
                c.as_ptr(),
                if capture {
                    a::SND_PCM_STREAM_CAPTURE
                } else {
                    a::SND_PCM_STREAM_PLAYBACK
                },
                a::SND_PCM_NONBLOCK as i32,
            )
        })?;
        let mut status = std::ptr::null_mut();
        // SAFETY: status receives a container on success; on failure the PCM just opened is
        // closed here, exactly once, and never used again.
        if let Err(e) = check(unsafe { a::snd_pcm_status_malloc(&mut status) }) {
            // SAFETY: as above.
            unsafe { a::snd_pcm_close(pcm) };
            return Err(e);
        }
        Ok(Pcm { pcm, status })
    }

    pub fn hw_params(&self) -> Result<HwParams<'_>> {
        let mut hw = std::ptr::null_mut();
        // SAFETY: allocation of an opaque container; freed by HwParams::drop.
        check(unsafe { a::snd_pcm_hw_params_malloc(&mut hw) })?;
        let p = HwParams { pcm: self, hw };
        // SAFETY: live pcm and params.
        check(unsafe { a::snd_pcm_hw_params_any(self.pcm, hw) })?;
        Ok(p)
    }

    /// Reads back the installed hw_params.
    pub fn negotiated(&self) -> Result<Negotiated> {
        let p = self.hw_params()?;
        // SAFETY: snd_pcm_hw_params_current fills p.hw from the live PCM; getters write our locals.
        unsafe {
            check(a::snd_pcm_hw_params_current(self.pcm, p.hw))?;
            let mut n = Negotiated {
                format: 0,
                channels: 0,
                rate: 0,
                period: 0,
                buffer: 0,
            };
            let mut period: a::snd_pcm_uframes_t = 0;
            let mut buffer: a::snd_pcm_uframes_t = 0;
            let mut dir = 0;
            check(a::snd_pcm_hw_params_get_format(p.hw, &mut n.format))?;
            check(a::snd_pcm_hw_params_get_channels(p.hw, &mut n.channels))?;
            check(a::snd_pcm_hw_params_get_rate(p.hw, &mut n.rate, &mut dir))?;
            check(a::snd_pcm_hw_params_get_period_size(p.hw, &mut period, &mut dir))?;
            check(a::snd_pcm_hw_params_get_buffer_size(p.hw, &mut buffer))?;
            n.period = period as u64;
            n.buffer = buffer as u64;
            Ok(n)
        }
    }

    /// start_threshold, stop_threshold and avail_min, in frames.
    pub fn set_sw_params(&self, start: u64, stop: u64, avail_min: u64) -> Result<()> {
        let mut sw = std::ptr::null_mut();
        // SAFETY: allocation, configuration and release of an opaque sw_params container.
        unsafe {
            check(a::snd_pcm_sw_params_malloc(&mut sw))?;
            let r = (|| {
                check(a::snd_pcm_sw_params_current(self.pcm, sw))?;
                check(a::snd_pcm_sw_params_set_start_threshold(self.pcm, sw, start as _))?;
                check(a::snd_pcm_sw_params_set_stop_threshold(self.pcm, sw, stop as _))?;
                check(a::snd_pcm_sw_params_set_avail_min(self.pcm, sw, avail_min as _))?;
                // Timestamps for `stamped`. A chain that cannot give monotonic ones still
                // plays: its stamps fall outside the call and are not used.
                let _ = a::snd_pcm_sw_params_set_tstamp_mode(self.pcm, sw, a::SND_PCM_TSTAMP_ENABLE);
                let _ = a::snd_pcm_sw_params_set_tstamp_type(self.pcm, sw, a::SND_PCM_TSTAMP_TYPE_MONOTONIC);
                check(a::snd_pcm_sw_params(self.pcm, sw))
            })();
            a::snd_pcm_sw_params_free(sw);
            r
        }
    }

    /// A new avail_min, in frames: poll reports the PCM ready once that much is free (or
    /// captured). Allowed while it runs.
    pub fn set_avail_min(&self, frames: u64) -> Result<()> {
        let mut sw = std::ptr::null_mut();
        // SAFETY: allocation, configuration and release of an opaque sw_params container.
        unsafe {
            check(a::snd_pcm_sw_params_malloc(&mut sw))?;
            let r = (|| {
                check(a::snd_pcm_sw_params_current(self.pcm, sw))?;
                check(a::snd_pcm_sw_params_set_avail_min(self.pcm, sw, frames as _))?;
                check(a::snd_pcm_sw_params(self.pcm, sw))
            })();
            a::snd_pcm_sw_params_free(sw);
            r
        }
    }

    /// The slave's channel map, if it has one.
    pub fn chmap(&self) -> Option<Vec<u32>> {
        // SAFETY: snd_pcm_get_chmap returns a malloc'd map or NULL; we copy it and free it.
        unsafe {
            let m = a::snd_pcm_get_chmap(self.pcm);
            if m.is_null() {
                return None;
            }
            let n = (*m).channels as usize;
            let pos = std::slice::from_raw_parts((*m).pos.as_ptr(), n).to_vec();
            libc::free(m as *mut libc::c_void);
            Some(pos)
        }
    }

    pub fn writei(&self, buf: &[u8], frames: usize) -> Result<usize> {
        // SAFETY: buf holds at least `frames` frames (the caller sizes it from the negotiated format).
        let r = unsafe { a::snd_pcm_writei(self.pcm, buf.as_ptr() as *const libc::c_void, frames as _) };
        counted(r)
    }

    /// Reads up to `frames` whole frames into `buf`; `EAGAIN` when none are captured yet.
    pub fn readi(&self, buf: &mut [u8], frames: usize) -> Result<usize> {
        // SAFETY: buf has room for `frames` frames (the caller sizes it from the negotiated format).
        let r = unsafe { a::snd_pcm_readi(self.pcm, buf.as_mut_ptr() as *mut libc::c_void, frames as _) };
        counted(r)
    }

    /// Writes `frames` frames from one buffer per channel (`snd_pcm_writen`), for a slave
    /// that takes only non-interleaved access.
    pub fn writen(&self, planes: &[&[u8]], frames: usize, sample_bytes: usize) -> Result<usize> {
        let mut ptrs = [std::ptr::null_mut::<libc::c_void>(); MAX_PLANES];
        if planes.len() > MAX_PLANES || planes.iter().any(|p| p.len() < frames * sample_bytes) {
            return Err(Error::errno(libc::EINVAL));
        }
        for (p, plane) in ptrs.iter_mut().zip(planes) {
            *p = plane.as_ptr() as *mut libc::c_void;
        }
        // SAFETY: one pointer per channel, each to at least `frames` samples (checked above);
        // alsa-lib only reads through them for playback.
        let r = unsafe { a::snd_pcm_writen(self.pcm, ptrs.as_mut_ptr(), frames as _) };
        counted(r)
    }

    /// Reads up to `frames` frames into one buffer per channel (`snd_pcm_readn`).
    pub fn readn(&self, planes: &mut [&mut [u8]], frames: usize, sample_bytes: usize) -> Result<usize> {
        let mut ptrs = [std::ptr::null_mut::<libc::c_void>(); MAX_PLANES];
        if planes.len() > MAX_PLANES || planes.iter().any(|p| p.len() < frames * sample_bytes) {
            return Err(Error::errno(libc::EINVAL));
        }
        for (p, plane) in ptrs.iter_mut().zip(planes.iter_mut()) {
            *p = plane.as_mut_ptr() as *mut libc::c_void;
        }
        // SAFETY: one pointer per channel, each with room for `frames` samples (checked above).
        let r = unsafe { a::snd_pcm_readn(self.pcm, ptrs.as_mut_ptr(), frames as _) };
        counted(r)
    }

    /// Whether the PCM is prepared and waits for a start (after a recover that prepared
    /// it, rather than one that resumed it where it was).
    pub fn is_prepared(&self) -> bool {
        // SAFETY: live pcm.
        unsafe { a::snd_pcm_state(self.pcm) == a::SND_PCM_STATE_PREPARED }
    }

    /// Starts a prepared PCM (`snd_pcm_start`): a capture stream begins capturing.
    pub fn start(&self) -> Result<()> {
        // SAFETY: live pcm.
        check(unsafe { a::snd_pcm_start(self.pcm) })
    }

    pub fn avail(&self) -> Result<usize> {
        // SAFETY: live pcm.
        let r = unsafe { a::snd_pcm_avail(self.pcm) };
        counted(r)
    }

    pub fn delay(&self) -> Result<i64> {
        let mut d: a::snd_pcm_sframes_t = 0;
        // SAFETY: live pcm; d is ours.
        check(unsafe { a::snd_pcm_delay(self.pcm, &mut d) })?;
        Ok(d as i64)
    }

    /// The delay and avail of a running kernel PCM and when they held (`snd_pcm_status`);
    /// `None` when it is not running or is not a kernel PCM. The kernel takes its stamp with
    /// the hardware pointer, under the stream's lock, so a pump preempted around the call
    /// still knows when the delay held. The stamp is kept only if it falls within the call
    /// on the pump's own clock. A plugin is not asked: its status may count the delay
    /// otherwise than its `snd_pcm_delay` does (dmix, rate).
    // snd_pcm_sframes_t and snd_pcm_uframes_t are 32 bits on 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    pub fn stamped(&self) -> Result<Option<Stamped>> {
        // SAFETY: live pcm.
        if unsafe { a::snd_pcm_type(self.pcm) } != a::SND_PCM_TYPE_HW {
            return Ok(None);
        }
        let before = crate::sys::time::now_ns();
        // SAFETY: live pcm; the status container is ours and sized by alsa-lib.
        check(unsafe { a::snd_pcm_status(self.pcm, self.status) })?;
        let after = crate::sys::time::now_ns();
        let mut ts = a::snd_htimestamp_t { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: the status was filled above; ts is ours.
        let (state, delay, avail) = unsafe {
            a::snd_pcm_status_get_htstamp(self.status, &mut ts);
            (
                a::snd_pcm_status_get_state(self.status),
                a::snd_pcm_status_get_delay(self.status),
                a::snd_pcm_status_get_avail(self.status),
            )
        };
        if state != a::SND_PCM_STATE_RUNNING && state != a::SND_PCM_STATE_DRAINING {
            return Ok(None);
        }
        let at = (ts.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec as u64);
        Ok(Some(Stamped {
            delay: delay as i64,
            avail: avail as u64,
            at_ns: (ts.tv_sec >= 0 && ts.tv_nsec >= 0 && (before..=after).contains(&at)).then_some(at),
        }))
    }

    /// Frames of what was written that the PCM can still take back (`snd_pcm_rewindable`):
    /// what it holds beyond the hardware pointer, less what its driver keeps for itself.
    pub fn rewindable(&self) -> Result<u64> {
        // SAFETY: live pcm.
        let r = unsafe { a::snd_pcm_rewindable(self.pcm) };
        counted(r).map(|n| n as u64)
    }

    /// Moves the application pointer back by up to `frames` (`snd_pcm_rewind`), so that they
    /// are written again; returns how many it moved.
    pub fn rewind(&self, frames: u64) -> Result<u64> {
        // SAFETY: live pcm.
        let r = unsafe { a::snd_pcm_rewind(self.pcm, frames as _) };
        counted(r).map(|n| n as u64)
    }

    pub fn recover(&self, err: &Error) -> Result<()> {
        // SAFETY: live pcm.
        check(unsafe { a::snd_pcm_recover(self.pcm, err.neg(), 1) })
    }

    /// Stops the PCM at once, discarding what it holds (`snd_pcm_drop`).
    pub fn drop_frames(&self) -> Result<()> {
        // SAFETY: live pcm.
        check(unsafe { a::snd_pcm_drop(self.pcm) })
    }

    /// Readies a stopped PCM to start again (`snd_pcm_prepare`).
    pub fn prepare(&self) -> Result<()> {
        // SAFETY: live pcm.
        check(unsafe { a::snd_pcm_prepare(self.pcm) })
    }

    /// The descriptors to poll for this PCM's readiness (`snd_pcm_poll_descriptors`).
    pub fn poll_descriptors(&self) -> Result<Vec<libc::pollfd>> {
        // SAFETY: live pcm.
        let n = unsafe { a::snd_pcm_poll_descriptors_count(self.pcm) };
        if n < 0 {
            return Err(Error::errno(n));
        }
        let mut fds = vec![
            libc::pollfd {
                fd: -1,
                events: 0,
                revents: 0
            };
            n as usize
        ];
        // SAFETY: fds holds `n` pollfds.
        let got = unsafe { a::snd_pcm_poll_descriptors(self.pcm, fds.as_mut_ptr(), n as u32) };
        if got < 0 {
            return Err(Error::errno(got));
        }
        fds.truncate(got as usize);
        Ok(fds)
    }

    /// What the polled descriptors' `revents` mean for the PCM (`POLLOUT`, `POLLERR`, ...):
    /// plugins turn their private descriptors' events into the stream's.
    pub fn poll_revents(&self, fds: &mut [libc::pollfd]) -> Result<u16> {
        let mut rev: libc::c_ushort = 0;
        // SAFETY: fds is a live slice of pollfds from poll_descriptors; rev is ours.
        check(unsafe { a::snd_pcm_poll_descriptors_revents(self.pcm, fds.as_mut_ptr(), fds.len() as u32, &mut rev) })?;
        Ok(rev)
    }

    /// The sound card at the bottom of the PCM's chain (`snd_pcm_info`), if a kernel
    /// driver is there: plugins report their slave's, and `null`, `file` and external
    /// plugins none.
    pub fn card(&self) -> Option<i32> {
        let mut info = std::ptr::null_mut();
        // SAFETY: allocation, query and release of an opaque info container.
        unsafe {
            if a::snd_pcm_info_malloc(&mut info) < 0 {
                return None;
            }
            let card = (a::snd_pcm_info(self.pcm, info) >= 0).then(|| a::snd_pcm_info_get_card(info));
            a::snd_pcm_info_free(info);
            card.filter(|&c| c >= 0)
        }
    }

    /// The PCM's type name as alsa-lib reports it (`HW`, `FILE`, `IOPLUG`, ...).
    pub fn type_name(&self) -> String {
        // SAFETY: live pcm; the returned names are static.
        unsafe {
            let p = a::snd_pcm_type_name(a::snd_pcm_type(self.pcm));
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }
}

impl Drop for Pcm {
    fn drop(&mut self) {
        // SAFETY: we own the handle and the status; each is released exactly once.
        unsafe {
            a::snd_pcm_close(self.pcm);
            a::snd_pcm_status_free(self.status);
        }
    }
}
