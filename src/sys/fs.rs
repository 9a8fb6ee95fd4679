//! Private directories and lock files: where a user's own sockets may live.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::cvt;

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Owner and mode of `p` itself (a symlink is not followed), if it is a directory.
fn dir_owner_mode(p: &Path) -> io::Result<Option<(u32, u32)>> {
    let c = cpath(p)?;
    // SAFETY: stat is plain old data; lstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated and st is live.
    cvt(unsafe { libc::lstat(c.as_ptr(), &mut st) })?;
    Ok((st.st_mode & libc::S_IFMT == libc::S_IFDIR).then_some((st.st_uid, st.st_mode & 0o7777)))
}

/// Makes sure `p` is a directory that only `uid` can enter: created 0700 if missing,
/// refused (with the reason) if it is anyone else's, open to others, or a symlink.
pub fn private_dir(p: &Path, uid: u32) -> io::Result<()> {
    let c = cpath(p)?;
    // SAFETY: c is NUL-terminated.
    if unsafe { libc::mkdir(c.as_ptr(), 0o700) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
    }
    match dir_owner_mode(p)? {
        None => Err(io::Error::other(format!("{} is not a directory", p.display()))),
        Some((owner, _)) if owner != uid => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} belongs to uid {owner}, not to uid {uid}", p.display()),
        )),
        Some((_, mode)) if mode & 0o077 != 0 => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} has mode {mode:04o}; only its owner may enter it (0700)",
                p.display()
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// Whether `p` is a directory owned by `uid` that nobody else may write.
pub fn owned_dir(p: &Path, uid: u32) -> bool {
    matches!(dir_owner_mode(p), Ok(Some((owner, mode))) if owner == uid && mode & 0o022 == 0)
}

/// Takes an exclusive lock on `p` (created 0600), without waiting: `None` if another
/// process holds it. The lock goes with the descriptor, so a dead holder frees it.
pub fn try_lock(p: &Path) -> io::Result<Option<OwnedFd>> {
    let c = cpath(p)?;
    // SAFETY: c is NUL-terminated; open returns a new descriptor or -1.
    let fd = cvt(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            0o600,
        )
    })?;
    // SAFETY: fd is fresh and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: flock on a descriptor we own.
    match cvt(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }) {
        Ok(_) => Ok(Some(fd)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes a file; a missing one is fine.
pub fn remove(p: &Path) -> io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
