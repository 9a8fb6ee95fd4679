//! What runs in `rdmix-pump`: the process that owns the slave for one `ipc_key`.
//!
//! - `server`: the process loop, the control sockets and each client's lifecycle;
//! - `admission`: who may attach, and how many lanes each user may hold;
//! - `engine`: mixing the lanes into device periods (playback);
//! - `pacing`: feeding the slave in real time, behind the narrow `Slave` trait;
//! - `split`: handing each captured period to every recording lane (capture);
//! - `capture`: reading the slave in real time, behind the narrow `Source` trait;
//! - `side`: what the loop needs of either direction;
//! - `slave`: opening and configuring the slave through alsa-lib.
//!
//! A pump serves one direction of one key. Playback and capture of the same device are two
//! pumps (`--capture` starts the second), so a capture device is opened only while somebody
//! records, and a fault on one side never silences the other.

pub mod admission;
pub mod capture;
pub mod engine;
pub mod pacing;
pub mod server;
pub mod side;
pub mod slave;
pub mod split;

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::shm::wire::{self, PumpArgs, Rendezvous};
use crate::sys;
use crate::sys::socket::Addr;

/// The variables a shared pump keeps: where to log, and how to find programs.
const SHARED_ENV_KEEP: [&str; 3] = ["RDMIX_PUMP", "RDMIX_PUMP_LOG", "PATH"];

fn report(r: Result<(), Error>) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(&wire::startup_report(&r));
    let _ = std::io::stdout().flush();
}

/// Why binding the key's socket did not give us a listener.
enum Bound {
    Listening(OwnedFd, Option<OwnedFd>),
    /// Another live pump holds the key: the clients will reach it.
    Taken,
}

/// Binds the key's socket. A private key's path is owned by whoever holds its flock: the
/// holder replaces any socket file a killed pump left, and a newcomer that finds the lock
/// held waits for the holder to listen (or to finish exiting).
fn bind(rv: &Rendezvous) -> std::io::Result<Bound> {
    let Some(lock_path) = &rv.lock else {
        return match sys::socket::listen(&rv.addr) {
            Ok(l) => Ok(Bound::Listening(l, None)),
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Ok(Bound::Taken),
            Err(e) => Err(e),
        };
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(lock) = sys::fs::try_lock(lock_path)? {
            if let Addr::Path(p) = &rv.addr {
                sys::fs::remove(p)?;
            }
            return Ok(Bound::Listening(sys::socket::listen(&rv.addr)?, Some(lock)));
        }
        if sys::socket::connect(&rv.addr).is_ok() || Instant::now() >= deadline {
            return Ok(Bound::Taken);
        }
        let _ = sys::fd::poll(&mut [], 10);
    }
}

/// Entry point of `rdmix-pump`. Returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    sys::process::ignore_sigpipe();
    let Some(args) = PumpArgs::parse(args) else {
        eprintln!(
            "rdmix-pump: usage: rdmix-pump --key KEY --perm PERM [--gid GID] [--capture] (started by the rdmix plugin)"
        );
        return 2;
    };
    if args.shared() {
        // A pump other users join must not run on its starter's private settings: alsa-lib
        // then reads only the system-wide configuration. (The plugin already started us
        // with a clean environment; this holds for a pump started by hand too.)
        sys::process::reset_env(&SHARED_ENV_KEEP, &[("HOME", wire::SYSTEM_HOME)]);
    }
    match sys::process::daemonize() {
        Ok(sys::process::Forked::Parent) => return 0,
        Ok(sys::process::Forked::Daemon) => {}
        Err(e) => {
            report(Err(Error::io("rdmix: pump: cannot detach", e)));
            return 1;
        }
    }
    let key = args.key;
    let bound = wire::rendezvous(key, args.shared(), args.stream).and_then(|rv| {
        bind(&rv)
            .map(|b| (b, rv.clone()))
            .map_err(|e| Error::io(&format!("rdmix: ipc_key {key:#x}: cannot listen at {}", rv.addr), e))
    });
    let (listener, lock, rv) = match bound {
        Ok((Bound::Listening(l, lock), rv)) => (l, lock, rv),
        Ok((Bound::Taken, _)) => {
            report(Ok(())); // another pump won the race; clients will reach it
            return 0;
        }
        Err(e) => {
            report(Err(e));
            return 1;
        }
    };
    report(Ok(()));
    sys::process::redirect_stdio(std::env::var_os("RDMIX_PUMP_LOG").as_deref().map(std::path::Path::new));
    sys::process::raise_priority();
    sys::process::raise_nofile_limit();
    let code = match server::Server::new(args, listener) {
        Ok(s) => s.serve(),
        Err(e) => {
            eprintln!("rdmix-pump[{}]: cannot set up its event loop: {e}", sys::process::pid());
            1
        }
    };
    // Remove the socket while still holding the lock, so a successor never loses its own.
    if let (Addr::Path(p), Some(_)) = (&rv.addr, &lock) {
        let _ = sys::fs::remove(p);
    }
    drop(lock);
    code
}
