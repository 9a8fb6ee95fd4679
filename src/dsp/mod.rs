//! Signal code: sample formats, mixing with one saturation, and per-lane conversion of
//! rate, channel layout and format. Pure computation: no I/O, no shared memory, no `unsafe`.

pub mod chmap;
pub mod convert;
pub mod format;
pub mod gain;
pub mod mix;
