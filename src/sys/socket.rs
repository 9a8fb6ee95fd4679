//! Seqpacket unix sockets, at a path or in the abstract namespace: descriptor passing,
//! and peer credentials.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::cvt;

/// Where a listening socket lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    /// The abstract namespace: nothing on the filesystem, gone with its listener, and
    /// reachable by every local user (so the peer's credentials decide everything).
    Abstract(String),
    /// A filesystem path: reachable only by those who may search its directory.
    Path(PathBuf),
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Abstract(n) => write!(f, "@{n}"),
            Addr::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

fn sockaddr(addr: &Addr) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let (skip, bytes) = match addr {
        Addr::Abstract(n) => (1, n.as_bytes()),
        Addr::Path(p) => (0, p.as_os_str().as_bytes()),
    };
    // A path needs its NUL; an abstract name its leading NUL.
    if bytes.len() + 1 > sa.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket address {addr} is longer than {} bytes", sa.sun_path.len() - 1),
        ));
    }
    for (d, s) in sa.sun_path[skip..].iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + skip + bytes.len() + (1 - skip);
    Ok((sa, len as libc::socklen_t))
}

fn seqpacket(nonblock: bool) -> io::Result<OwnedFd> {
    let flags = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | if nonblock { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: socket() returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::socket(libc::AF_UNIX, flags, 0) })?;
    // SAFETY: fd is fresh and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds and listens. `AddrInUse` means someone else holds the address.
pub fn listen(addr: &Addr) -> io::Result<OwnedFd> {
    let fd = seqpacket(true)?;
    let (sa, len) = sockaddr(addr)?;
    // SAFETY: sa/len describe a valid sockaddr_un.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), &sa as *const _ as *const libc::sockaddr, len) })?;
    // A deep backlog: a flood of connections must not make an honest connect wait.
    // SAFETY: plain listen on our socket.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 4096) })?;
    Ok(fd)
}

/// Connects. `ConnectionRefused` (or `NotFound` for a path) means nobody listens there.
pub fn connect(addr: &Addr) -> io::Result<OwnedFd> {
    let fd = seqpacket(false)?;
    let (sa, len) = sockaddr(addr)?;
    loop {
        // SAFETY: sa/len describe a valid sockaddr_un.
        let r = unsafe { libc::connect(fd.as_raw_fd(), &sa as *const _ as *const libc::sockaddr, len) };
        match cvt(r) {
            Ok(_) => return Ok(fd),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Accepts one pending connection, non-blocking.
pub fn accept(listener: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    // SAFETY: accept4 with NULL address out-parameters is allowed.
    let r = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        )
    };
    match cvt(r) {
        // SAFETY: r is a fresh descriptor.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) })),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
        Err(e) => Err(e),
    }
}

/// The most descriptors one packet carries.
pub const MAX_FDS: usize = 4;
const CMSG_SPACE: usize = 64;

/// Sends one packet, with up to `MAX_FDS` descriptors attached.
pub fn send(sock: &OwnedFd, data: &[u8], fds: &[BorrowedFd]) -> io::Result<()> {
    send_with(sock, data, fds, libc::MSG_NOSIGNAL)
}

/// Sends without ever waiting: `WouldBlock` if the peer's queue is full.
pub fn send_nowait(sock: &OwnedFd, data: &[u8]) -> io::Result<()> {
    send_with(sock, data, &[], libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
}

fn send_with(sock: &OwnedFd, data: &[u8], fds: &[BorrowedFd], flags: libc::c_int) -> io::Result<()> {
    assert!(fds.len() <= MAX_FDS, "at most {MAX_FDS} descriptors per packet");
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; CMSG_SPACE / 8];
    // SAFETY: msghdr is plain old data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let bytes = std::mem::size_of_val(fds) as u32;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        // SAFETY: CMSG_SPACE is a pure size computation.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(bytes) } as _;
        // SAFETY: the control buffer (64 bytes) holds one SCM_RIGHTS header and MAX_FDS fds.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(bytes) as _;
            for (i, fd) in fds.iter().enumerate() {
                std::ptr::write_unaligned((libc::CMSG_DATA(c) as *mut RawFd).add(i), fd.as_raw_fd());
            }
        }
    }
    loop {
        // SAFETY: msg points at live buffers for the duration of the call.
        let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, flags) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives one packet and the descriptors attached to it (at most `MAX_FDS` are kept; the
/// rest are closed). `Ok((0, _))` is EOF.
pub fn recv(sock: &OwnedFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; CMSG_SPACE / 8];
    // SAFETY: msghdr is plain old data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = CMSG_SPACE as _;
    let n = loop {
        // SAFETY: msg points at live buffers for the duration of the call.
        let r = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if r >= 0 {
            break r as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut got: Vec<OwnedFd> = Vec::new();
    // SAFETY: walking the control messages the kernel just wrote into cbuf; every SCM_RIGHTS
    // descriptor is taken into an OwnedFd so that extras a peer sends are closed, not leaked.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c) as *const RawFd;
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    let fd = OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i)));
                    if got.len() < MAX_FDS {
                        got.push(fd);
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n, got))
}

/// The peer's pid, uid and gid, as the kernel recorded them at connect.
pub fn peer_cred(sock: &OwnedFd) -> io::Result<(i32, u32, u32)> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most len bytes into cred.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut _ as *mut libc::c_void,
            &mut len,
        )
    })?;
    Ok((cred.pid, cred.uid, cred.gid))
}

/// The peer's supplementary groups (SO_PEERGROUPS, Linux 4.13+); empty if unavailable.
pub fn peer_groups(sock: &OwnedFd) -> Vec<u32> {
    let mut groups = vec![0u32; 256];
    let mut len = (groups.len() * 4) as libc::socklen_t;
    // SAFETY: getsockopt writes at most len bytes into the vector's buffer.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERGROUPS,
            groups.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        return Vec::new();
    }
    groups.truncate(len as usize / 4);
    groups
}
