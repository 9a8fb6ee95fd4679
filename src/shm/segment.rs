//! The pump's header segment: the device parameters and the device clock, one page that
//! every client of a pump maps read-only.
//!
//! The pump creates it as a memfd, maps it writable, fills it in, and only then seals it
//! with `F_SEAL_FUTURE_WRITE`: from then on no mapping but the pump's own can write it, and
//! nobody can resize it. A client checks those seals before it maps the page, read-only.
//! Each client's own lane is a separate memfd (`lane.rs`), so nothing a client can write is
//! seen by another client.
//!
//! Every field is fixed-width and every offset is asserted below, so 32- and 64-bit
//! processes see the same layout.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

use super::lane::{LANE_BYTES, LANE_MEM_BYTES};
use super::map::{Mapping, PAGE};
use crate::error::{Error, Result};
use crate::sys;

/// Which way a pump moves frames. A playback pump and a capture pump of the same key are two
/// pumps, each with its own socket: the two directions never collide, and a capture device
/// is opened only while somebody records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stream {
    #[default]
    Playback,
    Capture,
}

impl Stream {
    pub fn is_capture(self) -> bool {
        self == Stream::Capture
    }

    pub fn name(self) -> &'static str {
        match self {
            Stream::Playback => "playback",
            Stream::Capture => "capture",
        }
    }
}

/// "RDMX", little-endian.
pub const MAGIC: u32 = 0x584d_4452;
/// Bumped on any change to the layout or to the meaning of a field.
pub const LAYOUT_VERSION: u32 = 4;
/// At least 32 clients share one pump; 64 leaves headroom for programs that open twice.
pub const MAX_LANES: usize = 64;
/// Largest channel count described by the header's channel map.
pub const MAX_CHMAP: usize = 16;

pub const HEADER_BYTES: usize = 512;
/// The header memfd: one page.
pub const SEGMENT_BYTES: usize = PAGE;

/// The segment header. Static fields first, then the device clock.
#[repr(C)]
pub struct Header {
    pub magic: u32,
    pub version: u32,
    pub header_bytes: u32,
    pub lane_bytes: u32,
    /// Bytes of each client's lane memfd (its slot page and its ring).
    pub lane_mem_bytes: u64,
    pub max_lanes: u32,
    /// The slave's sample format (`snd_pcm_format_t`).
    pub format: i32,
    pub rate: u32,
    pub channels: u32,
    pub period_frames: u32,
    pub buffer_frames: u32,
    pub pump_pid: u32,
    /// 0: the pump plays into the slave; 1: it records from it (`Stream`).
    pub stream: u32,
    /// The slave's channel map (`SND_CHMAP_*` positions), `channels` entries used.
    pub chmap: [u32; MAX_CHMAP],
    /// Seqlock over `mix_pos`, `slave_delay`, `tstamp_ns`: odd while the pump writes.
    pub clock_seq: AtomicU32,
    pub slave_xruns: AtomicU32,
    /// Device frames mixed and handed to the slave since the pump started.
    pub mix_pos: AtomicU64,
    /// Frames queued in the slave at `tstamp_ns`.
    pub slave_delay: AtomicU64,
    /// CLOCK_MONOTONIC nanoseconds when `mix_pos`/`slave_delay` were sampled.
    pub tstamp_ns: AtomicU64,
    /// Non-zero (a negative errno) once the pump has given up on the slave.
    pub failed: AtomicI32,
    _reserved: [u32; 89],
}

const _: () = {
    assert!(std::mem::size_of::<Header>() == HEADER_BYTES);
    assert!(std::mem::offset_of!(Header, chmap) == 56);
    assert!(std::mem::offset_of!(Header, clock_seq) == 120);
    assert!(std::mem::offset_of!(Header, mix_pos) == 128);
    assert!(std::mem::offset_of!(Header, failed) == 152);
    assert!(HEADER_BYTES <= SEGMENT_BYTES);
};

/// The device parameters a pump runs at, as published in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceParams {
    pub format: i32,
    pub rate: u32,
    pub channels: u32,
    pub period_frames: u32,
    pub buffer_frames: u32,
}

/// A mapped header: what a client sees (read-only) and what the pump reads back.
pub struct Segment {
    map: Mapping,
}

fn refused(why: String) -> Error {
    Error::new(libc::EPROTO, why)
}

impl Segment {
    /// Checks and maps a header received from a pump, read-only. The error's line says
    /// what is wrong; the caller names the pump it came from.
    pub fn attach(fd: OwnedFd) -> Result<Segment> {
        let seals = sys::memfd::SIZE_SEALS | sys::memfd::FUTURE_WRITE;
        let file = Mapping::verify(fd, "segment", SEGMENT_BYTES, seals)?;
        let map =
            Mapping::shared(&file, SEGMENT_BYTES, false).map_err(|e| refused(format!("cannot map segment: {e}")))?;
        let seg = Segment { map };
        let h = seg.header();
        if h.magic != MAGIC {
            return Err(refused(format!("segment magic {:#010x} is not rdmix's", h.magic)));
        }
        if h.version != LAYOUT_VERSION {
            return Err(refused(format!(
                "segment layout version {}, this rdmix speaks {LAYOUT_VERSION}",
                h.version
            )));
        }
        if h.header_bytes as usize != HEADER_BYTES
            || h.lane_bytes as usize != LANE_BYTES
            || h.lane_mem_bytes != LANE_MEM_BYTES as u64
            || h.max_lanes as usize != MAX_LANES
            || h.channels == 0
            || h.channels as usize > MAX_CHMAP
            || h.period_frames == 0
            || h.buffer_frames < h.period_frames
            || h.rate == 0
            || h.stream > 1
        {
            return Err(refused("segment header has impossible geometry".into()));
        }
        Ok(seg)
    }

    pub fn header(&self) -> &Header {
        // SAFETY: every mapping is at least SEGMENT_BYTES long and page-aligned; Header's
        // live fields are atomics, the rest are written before the segment is shared.
        unsafe { &*(self.map.base() as *const Header) }
    }

    pub fn device(&self) -> DeviceParams {
        let h = self.header();
        DeviceParams {
            format: h.format,
            rate: h.rate,
            channels: h.channels,
            period_frames: h.period_frames,
            buffer_frames: h.buffer_frames,
        }
    }

    /// Which way the pump moves frames.
    pub fn stream(&self) -> Stream {
        if self.header().stream == 1 {
            Stream::Capture
        } else {
            Stream::Playback
        }
    }

    pub fn chmap(&self) -> Vec<u32> {
        let h = self.header();
        h.chmap[..(h.channels as usize).min(MAX_CHMAP)].to_vec()
    }

    /// Whether this process may write the header: only the pump's own mapping can.
    pub fn writable(&self) -> bool {
        self.map.writable()
    }

    /// The errno the pump gave up with, if it did.
    pub fn failed(&self) -> Option<i32> {
        Some(self.header().failed.load(Ordering::Acquire)).filter(|e| *e != 0)
    }
}

/// The pump's side of the header: the only writer.
pub struct SegmentWriter {
    seg: Segment,
}

impl std::ops::Deref for SegmentWriter {
    type Target = Segment;
    fn deref(&self) -> &Segment {
        &self.seg
    }
}

impl SegmentWriter {
    /// Creates the header memfd, fills it in, and seals it so that only this mapping can
    /// ever write it. The descriptor is what clients are given.
    pub fn create(dev: &DeviceParams, chmap: &[u32], stream: Stream) -> std::io::Result<(SegmentWriter, OwnedFd)> {
        let fd = sys::memfd::create(c"rdmix-segment", SEGMENT_BYTES as u64)?;
        let map = Mapping::shared(&std::fs::File::from(fd.try_clone()?), SEGMENT_BYTES, true)?;
        let w = SegmentWriter { seg: Segment { map } };
        w.init(dev, chmap, stream);
        sys::memfd::seal(fd.as_fd(), sys::memfd::SIZE_SEALS | sys::memfd::FUTURE_WRITE)?;
        Ok((w, fd))
    }

    /// A private, heap-backed header for in-process tests (and Miri, which cannot mmap).
    pub fn in_memory(dev: &DeviceParams) -> SegmentWriter {
        let w = SegmentWriter {
            seg: Segment {
                map: Mapping::heap(SEGMENT_BYTES),
            },
        };
        w.init(dev, &[], Stream::Playback);
        w
    }

    fn init(&self, dev: &DeviceParams, chmap: &[u32], stream: Stream) {
        // SAFETY: called only on a header that is new and not yet shared, so the write is exclusive.
        let h = unsafe { &mut *(self.seg.map.base() as *mut Header) };
        h.magic = MAGIC;
        h.version = LAYOUT_VERSION;
        h.header_bytes = HEADER_BYTES as u32;
        h.lane_bytes = LANE_BYTES as u32;
        h.lane_mem_bytes = LANE_MEM_BYTES as u64;
        h.max_lanes = MAX_LANES as u32;
        h.format = dev.format;
        h.rate = dev.rate;
        h.channels = dev.channels;
        h.period_frames = dev.period_frames;
        h.buffer_frames = dev.buffer_frames;
        h.pump_pid = sys::process::pid() as u32;
        h.stream = stream.is_capture() as u32;
        for (d, s) in h.chmap.iter_mut().zip(chmap) {
            *d = *s;
        }
    }

    /// Tells every client the pump gave up on the slave with `errno` (negative).
    pub fn set_failed(&self, errno: i32) {
        self.header().failed.store(errno, Ordering::Release);
    }

    pub fn count_slave_xrun(&self) {
        self.header().slave_xruns.fetch_add(1, Ordering::Relaxed);
    }
}

/// Device parameters for unit tests: S16_LE stereo at 48 kHz, periods of 256 in 1024.
#[cfg(test)]
pub(crate) fn test_device() -> DeviceParams {
    DeviceParams {
        format: 2,
        rate: 48000,
        channels: 2,
        period_frames: 256,
        buffer_frames: 1024,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    #[test]
    fn the_header_reaches_clients_sealed_and_read_only() {
        let (w, fd) = SegmentWriter::create(&test_device(), &[3, 4], Stream::Capture).unwrap();
        let seg = Segment::attach(fd.try_clone().unwrap()).unwrap();
        assert_eq!(seg.device(), test_device());
        assert_eq!(seg.chmap(), vec![3, 4]);
        assert_eq!(seg.stream(), Stream::Capture);
        assert!(!seg.writable() && w.writable());
        w.set_failed(-5);
        assert_eq!(seg.failed(), Some(-5), "the pump's writes reach the client's mapping");
        // Nobody but the pump's own mapping can write it, nor change its size.
        let f = File::from(fd.try_clone().unwrap());
        assert!(f.set_len(0).is_err());
        assert!(std::os::unix::fs::FileExt::write_at(&f, b"x", 0).is_err());
        assert!(
            Mapping::shared(&f, SEGMENT_BYTES, true).is_err(),
            "a writable mapping is refused"
        );
    }

    #[test]
    fn foreign_segments_are_refused() {
        let (w, fd) = SegmentWriter::create(&test_device(), &[], Stream::Playback).unwrap();
        // SAFETY: test-only corruption through the pump's own writable mapping.
        unsafe { (*(w.map.base() as *mut Header)).magic = 0xdead_beef };
        assert!(Segment::attach(fd).err().unwrap().line().contains("magic"));

        let (w, fd) = SegmentWriter::create(&test_device(), &[], Stream::Playback).unwrap();
        // SAFETY: as above.
        unsafe { (*(w.map.base() as *mut Header)).version = 99 };
        assert!(Segment::attach(fd).err().unwrap().line().contains("version 99"));

        let bare = sys::memfd::unsealed(c"t").unwrap();
        File::from(bare.try_clone().unwrap())
            .set_len(SEGMENT_BYTES as u64)
            .unwrap();
        let e = Segment::attach(bare).err().unwrap();
        assert!(e.line().contains("lacks its seals"), "{e}");
        assert!(e.is(libc::EPROTO));

        let (pipe, _w) = std::io::pipe().unwrap();
        let e = Segment::attach(OwnedFd::from(pipe)).err().unwrap();
        assert!(e.line().contains("not a sealed memfd"), "{e}");
    }
}
