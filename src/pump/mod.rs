//! What runs in `rdmix-pump`: the process that owns the slave for one `ipc_key`.
//!
//! - `server`: the process (`main`), its loop, the control sockets and each client's
//!   lifecycle;
//! - `admission`: who may attach, and how many lanes each user may hold;
//! - `play` and `record`, side by side: each direction's pump (`Player`, `Recorder`),
//!   behind its narrow trait (`Sink`, `Source`), over its half (`play::mixer` sums the
//!   lanes into device periods, `record::splitter` hands each captured period to every
//!   lane);
//! - `pace`: the pacing both directions share (idle, clock, stall, descriptors, recovery);
//! - `lanes`: the lane table both directions share (setup checks, refusals, epochs);
//! - `side`: what the loop needs of either direction;
//! - `slave`: opening and configuring the slave through alsa-lib.
//!
//! A pump serves one direction of one key. Playback and capture of the same device are two
//! pumps (`--capture` starts the second), so a capture device is opened only while somebody
//! records, and a fault on one side never silences the other.

pub mod admission;
pub mod lanes;
pub mod pace;
pub mod play;
pub mod record;
pub mod server;
pub mod side;
pub mod slave;
