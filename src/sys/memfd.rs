//! Anonymous shared memory: sealed memfds, and the checks a receiver makes on one.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt;

/// The size seals: together they make a mapping of the whole file safe from SIGBUS.
pub const SIZE_SEALS: i32 = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
/// No new writable mapping and no write(2); mappings made before the seal keep writing.
pub const FUTURE_WRITE: i32 = libc::F_SEAL_FUTURE_WRITE;

/// A new memfd of `len` bytes, readable and writable by its owner only. It takes seals.
pub fn create(name: &std::ffi::CStr, len: u64) -> io::Result<OwnedFd> {
    // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns a new fd or -1.
    let fd = cvt(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) })?;
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    File::from(fd.try_clone()?).set_len(len)?;
    // SAFETY: fchmod on a descriptor we own. The memfd's mode guards /proc/PID/fd reopens.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), 0o600) })?;
    Ok(fd)
}

/// Adds `seals` (`F_SEAL_*`) to a memfd.
pub fn seal(fd: BorrowedFd, seals: i32) -> io::Result<()> {
    // SAFETY: F_ADD_SEALS on a descriptor we hold.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) }).map(drop)
}

/// The seals a descriptor carries (EINVAL for a file that is not a memfd).
pub fn seals(fd: BorrowedFd) -> io::Result<i32> {
    // SAFETY: F_GET_SEALS on a descriptor we hold.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })
}

/// A plain memfd with no seals, for tests that play an impostor.
pub fn unsealed(name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns a new fd or -1.
    let fd = cvt(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
