//! The contract both processes share: the segment's layout, the lane ring and its memory
//! ordering, the device clock, and the control protocol. Everything here is read by one
//! side and written by the other, so everything read is validated before it is used.

pub mod clock;
pub mod lane;
pub mod map;
pub mod ring;
pub mod segment;
pub mod status;
pub mod wire;
