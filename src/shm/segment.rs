//! The shared segment's layout: one header, one control slot per client, one lane (ring)
//! per client.
//!
//! The pump creates the segment as a sealed memfd and hands it to each admitted client over
//! the control socket. It therefore never appears in `/dev/shm`, vanishes with its last
//! mapping, cannot be shrunk under the pump (no SIGBUS from a hostile truncate), and cannot
//! be opened by anyone the pump did not admit.
//!
//! Every field is fixed-width and every offset is asserted below, so 32- and 64-bit
//! processes see the same layout. Live fields are atomics; the static ones are written once
//! by the pump before the segment is shared.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, Result};
use crate::sys;

/// "RDMX", little-endian.
pub const MAGIC: u32 = 0x584d_4452;
/// Bumped on any change to the layout or to the meaning of a field.
pub const LAYOUT_VERSION: u32 = 1;
/// At least 32 clients share one pump; 64 leaves headroom for programs that open twice.
pub const MAX_LANES: usize = 64;
/// Bytes of ring per client: the upper bound of a client's buffer.
pub const LANE_BYTES: usize = 1 << 20;
/// Largest channel count described by the header's channel map.
pub const MAX_CHMAP: usize = 16;

const PAGE: usize = 4096;
pub const HEADER_BYTES: usize = 512;
pub const SLOT_BYTES: usize = 128;
const LANES_OFFSET: usize = round_up(HEADER_BYTES + MAX_LANES * SLOT_BYTES, PAGE);
pub const SEGMENT_BYTES: usize = LANES_OFFSET + MAX_LANES * LANE_BYTES;

const fn round_up(v: usize, to: usize) -> usize {
    v.div_ceil(to) * to
}

/// The segment header. Static fields first, then the device clock.
#[repr(C)]
pub struct Header {
    pub magic: u32,
    pub version: u32,
    pub header_bytes: u32,
    pub slot_bytes: u32,
    pub segment_bytes: u64,
    pub lane_bytes: u32,
    pub max_lanes: u32,
    /// The slave's sample format (`snd_pcm_format_t`).
    pub format: i32,
    pub rate: u32,
    pub channels: u32,
    pub period_frames: u32,
    pub buffer_frames: u32,
    pub pump_pid: u32,
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

/// A client's control slot. `ctl` and `wake_*` are written by the client, the rest by the
/// pump; `ring::Producer` and `ring::Consumer` are the only ways in, and `ring` says which
/// word publishes what.
#[repr(C)]
pub struct Slot {
    /// Client: `epoch:16 | state:4 | appl:44` (see `ring::Ctl`).
    pub(super) ctl: AtomicU64,
    /// Client: lane position at which the pump should signal the client's eventfd.
    pub(super) wake_at: AtomicU64,
    /// Pump: `epoch:16 | tags:4 | consumed:44` (see `ring::Mixed`).
    pub(super) mixed: AtomicU64,
    /// Pump: mix position just past the last frame of a drained lane.
    pub(super) drain_end: AtomicU64,
    /// Pump: the mix position of lane frame 0 as the lane currently runs (`mix_pos - consumed`):
    /// fixed while it runs, underruns included; a pause shifts it.
    pub(super) start_mix: AtomicU64,
    /// Client sets 1 when it wants a wake-up at `wake_at`; the pump clears it when it signals.
    pub(super) wake_armed: AtomicU32,
    /// Pump: times this lane ran dry while running (frames of silence were mixed for it).
    pub(super) underruns: AtomicU32,
    _reserved: [u64; 10],
}

const _: () = {
    assert!(std::mem::size_of::<Header>() == HEADER_BYTES);
    assert!(std::mem::offset_of!(Header, chmap) == 56);
    assert!(std::mem::offset_of!(Header, clock_seq) == 120);
    assert!(std::mem::offset_of!(Header, mix_pos) == 128);
    assert!(std::mem::offset_of!(Header, failed) == 152);
    assert!(std::mem::size_of::<Slot>() == SLOT_BYTES);
    assert!(std::mem::offset_of!(Slot, wake_armed) == 40);
    assert!(LANE_BYTES.is_multiple_of(PAGE));
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

enum Backing {
    Map(#[allow(dead_code)] MmapRaw),
    /// A leaked boxed slice, reclaimed in `Drop`: a raw pointer, so that moving the
    /// `Segment` does not re-assert unique ownership over memory `base` points into.
    Heap(*mut [u64]),
}

impl Drop for Backing {
    fn drop(&mut self) {
        if let Backing::Heap(p) = *self {
            // SAFETY: p came from Box::into_raw in Segment::in_memory and is dropped once.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// A mapped segment. All access to shared memory goes through here.
pub struct Segment {
    base: *mut u8,
    _backing: Backing,
}

// SAFETY: the mapping is process-wide and every shared field is an atomic or is accessed by
// raw byte copies; the pointer itself is never reassigned.
unsafe impl Send for Segment {}
// SAFETY: as above.
unsafe impl Sync for Segment {}

fn refused(why: String) -> Error {
    Error::new(libc::EPROTO, why)
}

impl Segment {
    /// Creates a fresh, sealed memfd segment with its header filled in.
    pub fn create(
        dev: &DeviceParams,
        chmap: &[u32],
        perm: u32,
        gid: Option<u32>,
    ) -> std::io::Result<(Segment, OwnedFd)> {
        let fd = sys::memfd::sealed(c"rdmix-segment", SEGMENT_BYTES as u64, perm, gid)?;
        let seg = Self::map_file(&File::from(fd.try_clone()?))?;
        seg.init_header(dev, chmap);
        Ok((seg, fd))
    }

    /// Maps a segment received from a pump and checks that it is one this build understands.
    /// The error's line says what is wrong; the caller names the pump it came from.
    pub fn attach(fd: OwnedFd) -> Result<Segment> {
        let file = File::from(fd);
        let len = file
            .metadata()
            .map_err(|e| refused(format!("cannot stat segment: {e}")))?
            .len();
        if len < HEADER_BYTES as u64 {
            return Err(refused(format!("segment is {len} bytes, smaller than its header")));
        }
        let seg = Self::map_file(&file).map_err(|e| refused(format!("cannot map segment: {e}")))?;
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
        if h.segment_bytes != SEGMENT_BYTES as u64 || len != SEGMENT_BYTES as u64 {
            return Err(refused(format!(
                "segment claims {} bytes, expected {SEGMENT_BYTES}",
                h.segment_bytes.min(len)
            )));
        }
        if h.header_bytes as usize != HEADER_BYTES
            || h.slot_bytes as usize != SLOT_BYTES
            || h.lane_bytes as usize != LANE_BYTES
            || h.max_lanes as usize != MAX_LANES
            || h.channels == 0
            || h.channels as usize > MAX_CHMAP
            || h.period_frames == 0
            || h.buffer_frames < h.period_frames
            || h.rate == 0
        {
            return Err(refused("segment header has impossible geometry".into()));
        }
        Ok(seg)
    }

    fn map_file(file: &File) -> std::io::Result<Segment> {
        let len = file.metadata()?.len() as usize;
        let map = MmapOptions::new().len(len.max(HEADER_BYTES)).map_raw(file)?;
        let base = map.as_mut_ptr();
        Ok(Segment {
            base,
            _backing: Backing::Map(map),
        })
    }

    /// A private, heap-backed segment for in-process tests (and Miri, which cannot mmap).
    pub fn in_memory(dev: &DeviceParams) -> Segment {
        let heap = Box::into_raw(vec![0u64; SEGMENT_BYTES / 8].into_boxed_slice());
        let base = heap as *mut u64 as *mut u8;
        let seg = Segment {
            base,
            _backing: Backing::Heap(heap),
        };
        seg.init_header(dev, &[]);
        seg
    }

    fn init_header(&self, dev: &DeviceParams, chmap: &[u32]) {
        // SAFETY: called only on a segment that is new and not yet shared, so the write is exclusive.
        let h = unsafe { &mut *(self.base as *mut Header) };
        h.magic = MAGIC;
        h.version = LAYOUT_VERSION;
        h.header_bytes = HEADER_BYTES as u32;
        h.slot_bytes = SLOT_BYTES as u32;
        h.segment_bytes = SEGMENT_BYTES as u64;
        h.lane_bytes = LANE_BYTES as u32;
        h.max_lanes = MAX_LANES as u32;
        h.format = dev.format;
        h.rate = dev.rate;
        h.channels = dev.channels;
        h.period_frames = dev.period_frames;
        h.buffer_frames = dev.buffer_frames;
        // SAFETY: getpid has no preconditions.
        h.pump_pid = unsafe { libc::getpid() } as u32;
        for (d, s) in h.chmap.iter_mut().zip(chmap) {
            *d = *s;
        }
    }

    pub fn header(&self) -> &Header {
        // SAFETY: every mapping is at least HEADER_BYTES long and page-aligned; Header's live
        // fields are atomics, the rest are written before the segment is shared.
        unsafe { &*(self.base as *const Header) }
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

    pub fn chmap(&self) -> Vec<u32> {
        let h = self.header();
        h.chmap[..(h.channels as usize).min(MAX_CHMAP)].to_vec()
    }

    /// The control slot of lane `i`. Panics on an index outside the segment (a bug, not input).
    pub(super) fn slot(&self, i: usize) -> &Slot {
        assert!(i < MAX_LANES, "slot index {i} out of range");
        // SAFETY: i < MAX_LANES keeps the slot inside the header region; Slot is all atomics.
        unsafe { &*(self.base.add(HEADER_BYTES + i * SLOT_BYTES) as *const Slot) }
    }

    /// Copies `src` into lane `i` at byte offset `off`. Out-of-range requests are clipped to the lane.
    pub(super) fn lane_write(&self, i: usize, off: usize, src: &[u8]) {
        assert!(i < MAX_LANES, "lane index {i} out of range");
        let n = src.len().min(LANE_BYTES.saturating_sub(off));
        // SAFETY: [off, off+n) lies inside lane i; the lane is plain bytes that the pump only copies out.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.base.add(LANES_OFFSET + i * LANE_BYTES + off), n) };
    }

    /// Copies bytes of lane `i` from offset `off` into `dst`. Out-of-range requests are clipped.
    pub(super) fn lane_read(&self, i: usize, off: usize, dst: &mut [u8]) {
        assert!(i < MAX_LANES, "lane index {i} out of range");
        let n = dst.len().min(LANE_BYTES.saturating_sub(off));
        // SAFETY: [off, off+n) lies inside lane i. A client may be rewriting those bytes (a rewind
        // race); that garbles only its own samples, as on hardware, and never our control state.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base.add(LANES_OFFSET + i * LANE_BYTES + off), dst.as_mut_ptr(), n)
        };
    }

    /// Writes `value` over word `word` of slot `i`: what a hostile client can do to its own
    /// slot, for tests that prove it hurts nobody else.
    #[doc(hidden)]
    pub fn scribble(&self, i: usize, word: usize, value: u64) {
        assert!(word < SLOT_BYTES / 8, "word {word} is outside a slot");
        let base = self.slot(i) as *const Slot as *const AtomicU64;
        // SAFETY: the slot is SLOT_BYTES of 8-byte-aligned words and word < SLOT_BYTES / 8.
        unsafe { (*base.add(word)).store(value, Ordering::Release) };
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

    fn dev() -> DeviceParams {
        test_device()
    }

    #[test]
    fn memfd_segment_roundtrips_and_validates() {
        let (seg, fd) = Segment::create(&dev(), &[3, 4], 0o600, None).unwrap();
        seg.scribble(3, 0, 77);
        seg.lane_write(5, 100, &[1, 2, 3]);
        let other = Segment::attach(fd.try_clone().unwrap()).unwrap();
        assert_eq!(other.device(), dev());
        assert_eq!(other.chmap(), vec![3, 4]);
        assert_eq!(other.slot(3).ctl.load(Ordering::Acquire), 77);
        let mut b = [0u8; 3];
        other.lane_read(5, 100, &mut b);
        assert_eq!(b, [1, 2, 3]);
        // The seals forbid shrinking the segment under the pump.
        let f = File::from(fd);
        assert!(f.set_len(0).is_err());
    }

    #[test]
    fn foreign_segments_are_refused() {
        let (seg, fd) = Segment::create(&dev(), &[], 0o600, None).unwrap();
        // SAFETY: test-only corruption of a private mapping's header.
        unsafe { (*(seg.base as *mut Header)).magic = 0xdead_beef };
        let e = Segment::attach(fd).err().unwrap();
        assert!(e.line().contains("magic"), "{e}");

        let (seg, fd) = Segment::create(&dev(), &[], 0o600, None).unwrap();
        // SAFETY: as above.
        unsafe { (*(seg.base as *mut Header)).version = 99 };
        assert!(Segment::attach(fd).err().unwrap().line().contains("version 99"));

        let empty = sys::memfd::unsealed(c"t").unwrap();
        assert!(
            Segment::attach(empty)
                .err()
                .unwrap()
                .line()
                .contains("smaller than its header")
        );
    }
}
