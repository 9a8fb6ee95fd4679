//! Thin, safe wrappers over the Linux calls rdmix needs. Nothing here knows about audio.

pub mod epoll;
pub mod fd;
pub mod fs;
pub mod memfd;
pub mod process;
pub mod socket;
pub mod time;
pub mod user;

use std::io;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}
