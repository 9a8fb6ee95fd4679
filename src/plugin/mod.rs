//! What runs inside an application: the plugin's entry point, the client PCM behind ioplug's
//! callbacks, and attaching to (and starting) the pump.

pub mod attach;
pub mod capture;
pub mod client;
pub mod state;

use alsa_sys as a;

use crate::alsa::ioplug::OpenArgs;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::wire::Stream;
use client::Client;

/// Builds the client PCM for one `snd_pcm_open` of a `type rdmix` PCM: playback joins the
/// key's mixing pump, capture its recording pump.
fn open(args: &OpenArgs) -> Result<Client> {
    let stream = if args.stream == a::SND_PCM_STREAM_CAPTURE {
        Stream::Capture
    } else {
        Stream::Playback
    };
    if std::env::var_os("RDMIX_PUMP").is_some() {
        return Err(Error::new(
            libc::ELOOP,
            "rdmix: slave.pcm leads back to rdmix itself; the slave must be a real device or plugin chain",
        ));
    }
    let cfg = Config::parse(&args.conf, args.root.as_ref(), crate::sys::user::euid())?;
    Client::open(cfg, stream)
}

crate::ioplug_entry!(_snd_pcm_rdmix_open, __snd_pcm_rdmix_open_dlsym_pcm_001, open);
