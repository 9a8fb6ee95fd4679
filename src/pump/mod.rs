//! What runs in `rdmix-pump`: the process that owns the slave for one `ipc_key`.
//!
//! - `server`: the process loop, the control sockets and each client's lifecycle;
//! - `admission`: who may attach;
//! - `engine`: mixing the lanes into device periods;
//! - `pacing`: feeding the slave in real time, behind the narrow `Slave` trait;
//! - `slave`: opening and configuring the slave through alsa-lib.

pub mod admission;
pub mod engine;
pub mod pacing;
pub mod server;
pub mod slave;

use crate::error::Error;
use crate::shm::wire;
use crate::sys;

fn report(r: Result<(), Error>) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(&wire::startup_report(&r));
    let _ = std::io::stdout().flush();
}

/// Entry point of `rdmix-pump`. Returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    sys::process::ignore_sigpipe();
    let Some(key) = wire::parse_pump_args(args) else {
        eprintln!("rdmix-pump: usage: rdmix-pump --key KEY (started by the rdmix plugin, not by hand)");
        return 2;
    };
    match sys::process::daemonize() {
        Ok(sys::process::Forked::Parent) => return 0,
        Ok(sys::process::Forked::Daemon) => {}
        Err(e) => {
            report(Err(Error::io("rdmix: pump: cannot detach", e)));
            return 1;
        }
    }
    let listener = match sys::socket::listen(&wire::socket_name(key)) {
        Ok(l) => l,
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
            report(Ok(())); // another pump won the race; clients will reach it
            return 0;
        }
        Err(e) => {
            report(Err(Error::io(&format!("rdmix: ipc_key {key:#x}: cannot listen"), e)));
            return 1;
        }
    };
    report(Ok(()));
    sys::process::redirect_stdio(std::env::var_os("RDMIX_PUMP_LOG").as_deref().map(std::path::Path::new));
    sys::process::raise_priority();
    server::Server::new(key, listener).serve()
}
