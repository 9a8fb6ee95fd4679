//! The shared-memory contract both processes share: the segment's layout, the lane ring
//! and its memory ordering, and the device clock. (What they say over the socket is
//! `wire`.) Everything here is read by one
//! side and written by the other, so everything read is validated before it is used.

pub mod clock;
pub mod lane;
pub mod map;
pub mod ring;
pub mod segment;
pub mod tap;

// Clients and the pump synchronise only through atomics in shared memory. A lock-based
// emulation would keep its lock in one process's memory, where the other cannot see it, so
// 64-bit atomics must be native: on armv7 they are `ldrexd`/`strexd`, which scripts/ci/cross.sh
// checks in the built pump.
#[cfg(not(target_has_atomic = "64"))]
compile_error!("rdmix needs native lock-free 64-bit atomics for its shared-memory protocol");
