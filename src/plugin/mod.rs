//! What runs inside an application: the plugin's entry points, the client PCM behind
//! ioplug's callbacks, the mixer controls behind ctl_ext's, and attaching to (and
//! starting) the pump.

pub mod attach;
pub mod client;
pub mod control;
pub mod play;
pub mod record;
pub mod state;

use crate::alsa::ioplug::OpenArgs;
use crate::config::Config;
use crate::error::{Error, Result};
use client::{Client, Direction};
use play::Play;
use record::Record;

fn open<D: Direction>(args: &OpenArgs) -> Result<Client<D>> {
    if std::env::var_os("RDMIX_PUMP").is_some() {
        return Err(Error::new(
            libc::ELOOP,
            "rdmix: slave.pcm leads back to rdmix itself; the slave must be a real device or plugin chain",
        ));
    }
    let cfg = Config::parse(&args.conf, args.root.as_ref(), crate::sys::user::euid())?;
    Client::open(cfg)
}

crate::ioplug_entry!(
    _snd_pcm_rdmix_open,
    __snd_pcm_rdmix_open_dlsym_pcm_001,
    playback: open::<Play>,
    capture: open::<Record>
);

crate::ctl_entry!(
    _snd_ctl_rdmix_open,
    __snd_ctl_rdmix_open_dlsym_control_001,
    control::open
);
