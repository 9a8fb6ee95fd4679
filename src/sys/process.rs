//! The process itself: detaching, standard streams, priority, signals, where we live.

use std::io;
use std::os::fd::AsRawFd;

use super::cvt;

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

/// Raises the open-file limit to its hard maximum: a pump holds descriptors for every
/// client, and running out must be rare, never routine.
pub fn raise_nofile_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a live rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// Replaces the environment with `keep` (the variables of those names that are set) and
/// `set`. Call only while single-threaded.
pub fn reset_env(keep: &[&str], set: &[(&str, &str)]) {
    for (k, _) in std::env::vars_os() {
        if !keep.iter().any(|n| k == std::ffi::OsStr::new(n)) {
            // SAFETY: the process is single-threaded here, so nothing reads the environment concurrently.
            unsafe { std::env::remove_var(&k) };
        }
    }
    for (k, v) in set {
        // SAFETY: as above.
        unsafe { std::env::set_var(k, v) };
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
    /// The process that was started: its job is done once the daemon exists.
    Parent,
    /// The detached daemon: a new session, not its starter's child. It inherits the
    /// standard streams, so it reports on them before `redirect_stdio`.
    Daemon,
}

/// Double-forks so the daemon is re-parented away from whoever started us.
/// Call only while single-threaded.
pub fn daemonize() -> io::Result<Forked> {
    // SAFETY: the process is single-threaded here, so fork is sound.
    match cvt(unsafe { libc::fork() })? {
        0 => {
            // SAFETY: still single-threaded; setsid detaches from the terminal and session.
            unsafe { libc::setsid() };
            // SAFETY: as above.
            match unsafe { libc::fork() } {
                0 => Ok(Forked::Daemon),
                // SAFETY: _exit skips atexit handlers that belong to the parent image.
                _ => unsafe { libc::_exit(0) },
            }
        }
        child => {
            let mut st = 0;
            // SAFETY: reaps the intermediate child, which exits at once.
            unsafe { libc::waitpid(child, &mut st, 0) };
            Ok(Forked::Parent)
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

/// This process's user plus system CPU time so far, in microseconds.
pub fn cpu_us() -> u64 {
    // SAFETY: rusage is plain old data; getrusage fills it.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a live rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) } != 0 {
        return 0;
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(r.ru_utime) + us(r.ru_stime)
}

/// Voluntary plus involuntary context switches of this process so far.
pub fn context_switches() -> u64 {
    // SAFETY: rusage is plain old data; getrusage fills it.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a live rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) } != 0 {
        return 0;
    }
    (r.ru_nvcsw + r.ru_nivcsw) as u64
}

/// The program name of `pid` (`/proc/PID/comm`), if it can be read.
pub fn program_of(pid: i32) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(s.trim_end().to_string())
}
