//! rdmix: an ALSA ioplug PCM that lets many programs share one copy-only (read/write) device.
//!
//! Clients write into lanes of a shared segment; one pump process per `ipc_key` mixes the
//! lanes and feeds the slave PCM with `snd_pcm_writei`.
//!
//! The house, from the top floor down:
//! - `plugin` (runs inside each application), `pump` (runs in `rdmix-pump`) and `status`
//!   (runs in `rdmix-status`), which never import each other;
//! - `config`, the options both read;
//! - `wire`, what they say over the control socket: the protocol and the status report;
//! - `shm`, the shared-memory contract between them: segment layout, lane ring, clock;
//! - `dsp`, sample formats, mixing and conversion;
//! - `alsa` and `sys`, thin wrappers over alsa-lib and Linux;
//! - `error`, the one error type.

pub mod alsa;
pub mod config;
pub mod dsp;
pub mod error;
pub mod plugin;
pub mod pump;
pub mod shm;
pub mod status;
pub mod sys;
pub mod wire;
