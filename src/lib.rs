//! rdmix: an ALSA ioplug PCM that lets many programs share one copy-only (read/write) device.
//!
//! Clients write into lanes of a shared segment; one pump process per segment mixes the lanes
//! and feeds the slave PCM with `snd_pcm_writei`.

pub mod boundary;
pub mod client;
pub mod config;
pub mod control;
pub mod convert;
pub mod lane;
pub mod mix;
pub mod pump;
pub mod segment;
pub mod server;
pub mod slave;
pub mod sys;
