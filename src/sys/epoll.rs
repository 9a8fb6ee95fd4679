//! epoll(7): one interest set, changed only when a descriptor comes or goes, so a wake-up
//! costs the same however many clients are connected. Waits end at a nanosecond deadline
//! (`epoll_pwait2`), so a timed wake-up is one system call and never rounded to a
//! millisecond.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use super::cvt;
use super::time::now_ns;

/// The kernel's own timespec, 64-bit on every architecture (what `epoll_pwait2` takes).
#[repr(C)]
struct KernelTimespec {
    tv_sec: i64,
    tv_nsec: i64,
}

/// Cleared once the kernel says it has no `epoll_pwait2` (before Linux 5.11): then waits
/// round up to whole milliseconds, which is late by less than one.
static HAVE_PWAIT2: AtomicBool = AtomicBool::new(true);

/// What one wake-up reported: the token a descriptor was registered with, and its events.
pub type Event = libc::epoll_event;

pub struct Epoll {
    fd: OwnedFd,
}

/// The set is itself a descriptor, readable while any watched one is ready: one
/// descriptor a program can poll for many.
impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 returns a new descriptor or -1.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: fd is fresh and ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: a live epoll descriptor and a live event.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) }).map(drop)
    }

    /// Watches `fd` for `events` (level-triggered), reporting it as `token`.
    pub fn add(&self, fd: RawFd, events: i16, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events as u16 as u32, token)
    }

    /// Stops watching `fd`. A descriptor that was never added is not an error.
    pub fn remove(&self, fd: RawFd) {
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
    }

    /// Waits until a watched descriptor is ready or the CLOCK_MONOTONIC instant `until`
    /// (`None`: no limit). Returns the ready events; an interrupted wait returns none.
    pub fn wait<'a>(&self, events: &'a mut [Event], until: Option<u64>) -> io::Result<&'a [Event]> {
        let max = events.len().min(i32::MAX as usize) as i32;
        let left = until.map(|t| t.saturating_sub(now_ns()));
        let mut r = -1;
        let mut tried = false;
        if let Some(ns) = left
            && HAVE_PWAIT2.load(Ordering::Relaxed)
        {
            let ts = KernelTimespec {
                tv_sec: (ns / 1_000_000_000) as i64,
                tv_nsec: (ns % 1_000_000_000) as i64,
            };
            // SAFETY: events is a live, writable buffer of `max` entries; ts is a live
            // kernel timespec; no signal mask. A raw call, so the pump needs no glibc 2.35.
            r = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    self.fd.as_raw_fd(),
                    events.as_mut_ptr(),
                    max,
                    &ts as *const KernelTimespec,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            } as i32;
            tried = !(r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS));
            if !tried {
                HAVE_PWAIT2.store(false, Ordering::Relaxed);
            }
        }
        if !tried {
            let ms = left.map_or(-1, |ns| ns.div_ceil(1_000_000).min(i32::MAX as u64) as i32);
            // SAFETY: events is a live, writable buffer of `max` entries.
            r = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, ms) };
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(&events[..0])
            } else {
                Err(e)
            };
        }
        Ok(&events[..r as usize])
    }
}

/// An empty event, to size a wait buffer.
pub const NO_EVENT: Event = libc::epoll_event { events: 0, u64: 0 };

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fd;
    use std::os::fd::AsFd;

    #[test]
    fn reports_the_token_of_what_stirred_and_forgets_what_was_removed() {
        let ep = Epoll::new().unwrap();
        let (r1, w1) = fd::wake_pair().unwrap();
        let (r2, w2) = fd::wake_pair().unwrap();
        ep.add(r1.as_raw_fd(), libc::POLLIN, 7).unwrap();
        ep.add(r2.as_raw_fd(), libc::POLLIN, 9).unwrap();
        let mut evs = [NO_EVENT; 4];
        assert!(ep.wait(&mut evs, Some(0)).unwrap().is_empty());
        fd::poke(w2.as_fd());
        let got: Vec<u64> = ep.wait(&mut evs, None).unwrap().iter().map(|e| e.u64).collect();
        assert_eq!(got, [9]);
        ep.remove(r2.as_raw_fd());
        fd::poke(w1.as_fd());
        let got: Vec<u64> = ep.wait(&mut evs, None).unwrap().iter().map(|e| e.u64).collect();
        assert_eq!(got, [7], "a removed descriptor is not reported, though still readable");
    }

    #[test]
    fn a_deadline_ends_the_wait_no_sooner() {
        let ep = Epoll::new().unwrap();
        let mut evs = [NO_EVENT; 1];
        let until = now_ns() + 3_000_000;
        assert!(ep.wait(&mut evs, Some(until)).unwrap().is_empty());
        assert!(now_ns() >= until, "woke before its deadline");
    }
}
