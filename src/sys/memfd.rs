//! Anonymous shared memory: sealed memfds.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::cvt;

/// A new memfd of `len` bytes that can never shrink, grow or take new seals, with file mode
/// `perm` and, if given, group `gid`.
pub fn sealed(name: &std::ffi::CStr, len: u64, perm: u32, gid: Option<u32>) -> io::Result<OwnedFd> {
    // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns a new fd or -1.
    let fd = cvt(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) })?;
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    File::from(fd.try_clone()?).set_len(len)?;
    let raw = fd.as_raw_fd();
    // SAFETY: plain fcntl/fchmod/fchown calls on a descriptor we own.
    unsafe {
        cvt(libc::fcntl(
            raw,
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
        ))?;
        cvt(libc::fchmod(raw, perm & 0o666))?;
        if let Some(g) = gid {
            cvt(libc::fchown(raw, u32::MAX, g))?;
        }
    }
    Ok(fd)
}

/// A plain memfd with no seals, for tests that play an impostor.
pub fn unsealed(name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns a new fd or -1.
    let fd = cvt(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
