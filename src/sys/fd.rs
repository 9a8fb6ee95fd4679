//! Descriptors to sleep on: wake-up pipes, timerfds and poll(2).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::cvt;

/// Clears a timerfd's expirations; returns whether it had fired.
pub fn timerfd_clear(fd: BorrowedFd) -> bool {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64; the fd is non-blocking.
    unsafe { libc::read(fd.as_raw_fd(), &mut v as *mut u64 as *mut libc::c_void, 8) == 8 }
}

/// A wake-up channel: `(read end, write end)` of a non-blocking pipe. The pump keeps the
/// write end and hands out the read end. The two ends are separate open files, so nothing
/// the reader does to its end (clearing O_NONBLOCK, never reading) can make the writer block.
pub fn wake_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into fds.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors are fresh and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Makes a wake-up channel readable. A full pipe already holds a wake-up, so failure is
/// ignored; the write end is non-blocking, so this never waits.
pub fn poke(w: BorrowedFd) {
    let b = 1u8;
    // SAFETY: writes one byte from a live u8.
    unsafe { libc::write(w.as_raw_fd(), &b as *const u8 as *const libc::c_void, 1) };
}

/// Empties a wake-up channel (one read takes up to 64 pending wake-ups); returns whether
/// it held any.
pub fn drain(r: BorrowedFd) -> bool {
    let mut b = [0u8; 64];
    // SAFETY: reads into a live buffer; the fd is non-blocking (and if a hostile pump made
    // it blocking, it also made it readable, so this returns).
    unsafe { libc::read(r.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, b.len()) > 0 }
}

/// A non-blocking CLOCK_MONOTONIC timerfd.
pub fn timerfd() -> io::Result<OwnedFd> {
    // SAFETY: timerfd_create returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC | libc::TFD_NONBLOCK) })?;
    // SAFETY: fd is fresh and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Arms a one-shot timer `ns` from now (0 disarms it).
pub fn timerfd_arm(fd: BorrowedFd, ns: u64) {
    let spec = libc::itimerspec {
        it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
        it_value: libc::timespec {
            tv_sec: (ns / 1_000_000_000) as _,
            tv_nsec: (ns % 1_000_000_000) as _,
        },
    };
    // SAFETY: arms our timer with a valid itimerspec.
    unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
}

/// poll(2), retried on EINTR as a zero-event wake-up.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: fds is a live slice of pollfd.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(r as usize)
}

pub fn pollfd(fd: RawFd, events: i16) -> libc::pollfd {
    libc::pollfd { fd, events, revents: 0 }
}
