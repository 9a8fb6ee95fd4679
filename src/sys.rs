//! Thin, safe wrappers over the Linux calls rdmix needs: abstract seqpacket sockets with
//! descriptor passing and peer credentials, eventfds, poll, and user/group look-ups.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// An abstract-namespace unix address: nothing on the filesystem, gone with its listener.
fn abstract_addr(name: &str) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = name.as_bytes();
    let n = bytes.len().min(addr.sun_path.len() - 1);
    for (d, s) in addr.sun_path[1..=n].iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + 1 + n;
    (addr, len as libc::socklen_t)
}

fn seqpacket(nonblock: bool) -> io::Result<OwnedFd> {
    let flags = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | if nonblock { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: socket() returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::socket(libc::AF_UNIX, flags, 0) })?;
    // SAFETY: fd is fresh and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds and listens on an abstract name. `AddrInUse` means another pump holds it.
pub fn listen(name: &str) -> io::Result<OwnedFd> {
    let fd = seqpacket(true)?;
    let (addr, len) = abstract_addr(name);
    // SAFETY: addr/len describe a valid sockaddr_un.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), &addr as *const _ as *const libc::sockaddr, len) })?;
    // SAFETY: plain listen on our socket.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 64) })?;
    Ok(fd)
}

/// Connects to an abstract name. `ConnectionRefused` means nobody listens there.
pub fn connect(name: &str) -> io::Result<OwnedFd> {
    let fd = seqpacket(false)?;
    let (addr, len) = abstract_addr(name);
    loop {
        // SAFETY: addr/len describe a valid sockaddr_un.
        let r = unsafe { libc::connect(fd.as_raw_fd(), &addr as *const _ as *const libc::sockaddr, len) };
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

const CMSG_SPACE: usize = 64;

/// Sends one packet, with at most one descriptor attached.
pub fn send(sock: &OwnedFd, data: &[u8], fd: Option<BorrowedFd>) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; CMSG_SPACE / 8];
    // SAFETY: msghdr is plain old data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        let raw: RawFd = fd.as_raw_fd();
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        // SAFETY: CMSG_SPACE is a pure size computation.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as _;
        // SAFETY: the control buffer is large enough for one SCM_RIGHTS header and one fd.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut RawFd, raw);
        }
    }
    loop {
        // SAFETY: msg points at live buffers for the duration of the call.
        let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives one packet and the descriptor attached to it, if any. `Ok((0, None))` is EOF.
pub fn recv(sock: &OwnedFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
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
    let mut got: Option<OwnedFd> = None;
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
                    if got.is_none() {
                        got = Some(fd);
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

/// A non-blocking eventfd: the client's poll descriptor.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: fd is fresh and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes an eventfd readable. Errors (a full counter) are harmless: it is readable then anyway.
pub fn eventfd_signal(fd: BorrowedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64.
    unsafe { libc::write(fd.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
}

/// Clears an eventfd; returns whether it had been signalled.
pub fn eventfd_clear(fd: BorrowedFd) -> bool {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64; the fd is non-blocking.
    unsafe { libc::read(fd.as_raw_fd(), &mut v as *mut u64 as *mut libc::c_void, 8) == 8 }
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

pub fn group_by_name(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    let mut grp: libc::group = unsafe_zeroed_group();
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: getgrnam_r writes into grp and buf, which outlive the call.
    let r = unsafe { libc::getgrnam_r(c.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut out) };
    (r == 0 && !out.is_null()).then_some(grp.gr_gid)
}

fn unsafe_zeroed_group() -> libc::group {
    // SAFETY: libc::group is plain old data; all-zero (NULL pointers) is valid before getgrnam_r fills it.
    unsafe { std::mem::zeroed() }
}

pub fn euid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() }
}

pub fn egid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::getegid() }
}

pub fn pid() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::getpid() }
}

/// Asks for real-time scheduling, then for a higher nice level; silently keeps what it gets.
pub fn raise_priority() {
    let p = libc::sched_param { sched_priority: 10 };
    // SAFETY: plain scheduler calls on this process.
    unsafe {
        if libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &p) != 0 {
            libc::setpriority(libc::PRIO_PROCESS, 0, -11);
        }
    }
}

/// Ignores SIGPIPE: a dead peer must show up as EPIPE, not kill the pump.
pub fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN for SIGPIPE has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// The directory of the shared object (or executable) that contains this code.
pub fn own_object_dir() -> Option<std::path::PathBuf> {
    // SAFETY: dladdr only reads loader tables for an address inside this object.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: as above; the function address is valid for the life of the object.
    if unsafe { libc::dladdr(own_object_dir as *const libc::c_void, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated path owned by the loader.
    let path = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }
        .to_string_lossy()
        .into_owned();
    std::fs::canonicalize(path).ok()?.parent().map(|p| p.to_path_buf())
}

/// The two halves of a detached start-up.
pub enum Forked {
    /// The original process: read the daemon's start-up report here, then exit.
    Parent(OwnedFd),
    /// The detached daemon (new session, not our parent's child): report here, then close it.
    Daemon(OwnedFd),
}

/// Double-forks so the daemon is re-parented away from whoever started us.
/// Call only while single-threaded.
pub fn daemonize() -> io::Result<Forked> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors are fresh and ours.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the process is single-threaded here, so fork is sound.
    match cvt(unsafe { libc::fork() })? {
        0 => {
            drop(r);
            // SAFETY: still single-threaded; setsid detaches from the terminal and session.
            unsafe { libc::setsid() };
            // SAFETY: as above.
            match unsafe { libc::fork() } {
                0 => Ok(Forked::Daemon(w)),
                // SAFETY: _exit skips atexit handlers that belong to the parent image.
                _ => unsafe { libc::_exit(0) },
            }
        }
        child => {
            drop(w);
            let mut st = 0;
            // SAFETY: reaps the intermediate child, which exits at once.
            unsafe { libc::waitpid(child, &mut st, 0) };
            Ok(Forked::Parent(r))
        }
    }
}

/// Points stdin/stdout at /dev/null and stderr at `log` (or /dev/null).
pub fn redirect_stdio(log: Option<&std::path::Path>) {
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null");
    let err = log.and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
    if let Ok(null) = null {
        // SAFETY: dup2 onto the standard descriptors; the sources stay open until the end of scope.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
            libc::dup2(err.as_ref().map(|f| f.as_raw_fd()).unwrap_or(null.as_raw_fd()), 2);
        }
    }
}
