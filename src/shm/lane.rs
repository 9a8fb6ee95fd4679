//! One client's shared memory: its control slot and its ring, in a memfd of its own.
//!
//! The pump creates a lane memfd for each client it admits, seals its size, and hands it
//! to that client alone. The client can write anything in it, and that reaches nobody but
//! the pump, which reads it as untrusted input (`ring` says how). No client maps another's
//! lane, so one client cannot read, inject into or stop another's stream.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::map::{Mapping, PAGE};
use crate::error::Result;
use crate::sys;

/// Bytes of ring per client: the upper bound of a client's buffer.
pub const LANE_BYTES: usize = 1 << 20;
pub const SLOT_BYTES: usize = 128;
/// The ring starts on the page after the slot.
const RING_OFFSET: usize = PAGE;
/// A lane memfd: the slot's page, then the ring.
pub const LANE_MEM_BYTES: usize = RING_OFFSET + LANE_BYTES;

/// A client's control slot. `ctl` and `wake_*` are written by the client, the rest by the
/// pump; `ring::Producer` and `ring::Consumer` are the only ways in, and `ring` says which
/// word publishes what.
#[repr(C)]
pub struct Slot {
    /// Client: `epoch:16 | state:4 | appl:44` (see `ring::Ctl`).
    pub(super) ctl: AtomicU64,
    /// Client: lane position at which the pump should wake the client.
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
    /// Client: how many frames past running dry its stream stops (its stop_threshold less its
    /// buffer; `u64::MAX` for never). 0, the reset value, is ALSA's default: at once.
    pub(super) stop_after: AtomicU64,
    _reserved: [u64; 9],
}

impl Slot {
    /// Gives the slot to a new client: every word starts at zero (epoch 0, idle). The pump
    /// does this through either direction's end of the lane.
    pub(super) fn reset(&self) {
        use std::sync::atomic::Ordering;
        for w in [
            &self.ctl,
            &self.wake_at,
            &self.mixed,
            &self.drain_end,
            &self.start_mix,
            &self.stop_after,
        ] {
            w.store(0, Ordering::Relaxed);
        }
        self.wake_armed.store(0, Ordering::Relaxed);
        self.underruns.store(0, Ordering::Release);
    }
}

const _: () = {
    assert!(std::mem::size_of::<Slot>() == SLOT_BYTES);
    assert!(std::mem::offset_of!(Slot, wake_armed) == 40);
    assert!(std::mem::offset_of!(Slot, stop_after) == 48);
    assert!(SLOT_BYTES <= RING_OFFSET);
    assert!(LANE_BYTES.is_multiple_of(PAGE));
};

/// A mapped lane memfd (slot and ring), on either side.
pub struct LaneMem {
    map: Mapping,
}

impl LaneMem {
    /// A new lane for one client: zeroed, its size sealed, mapped by the pump.
    pub fn create() -> std::io::Result<(LaneMem, OwnedFd)> {
        let fd = sys::memfd::create(c"rdmix-lane", LANE_MEM_BYTES as u64)?;
        sys::memfd::seal(fd.as_fd(), sys::memfd::SIZE_SEALS)?;
        let map = Mapping::shared(&std::fs::File::from(fd.try_clone()?), LANE_MEM_BYTES, true)?;
        Ok((LaneMem { map }, fd))
    }

    /// Checks and maps the lane a pump handed this client.
    pub fn attach(fd: OwnedFd) -> Result<LaneMem> {
        let file = Mapping::verify(fd, "lane", LANE_MEM_BYTES, sys::memfd::SIZE_SEALS)?;
        let map = Mapping::shared(&file, LANE_MEM_BYTES, true)
            .map_err(|e| crate::error::Error::new(libc::EPROTO, format!("cannot map the lane: {e}")))?;
        Ok(LaneMem { map })
    }

    /// A private, heap-backed lane for in-process tests (and Miri, which cannot mmap).
    pub fn in_memory() -> LaneMem {
        LaneMem {
            map: Mapping::heap(LANE_MEM_BYTES),
        }
    }

    pub(super) fn slot(&self) -> &Slot {
        // SAFETY: every lane mapping is LANE_MEM_BYTES long and page-aligned, and the slot
        // sits at its start; Slot is all atomics.
        unsafe { &*(self.map.base() as *const Slot) }
    }

    /// Copies `src` into the ring at byte offset `off`. Out-of-range requests are clipped.
    pub(super) fn ring_write(&self, off: usize, src: &[u8]) {
        let n = src.len().min(LANE_BYTES.saturating_sub(off));
        // SAFETY: [off, off+n) lies inside the ring, which the mapping holds whole; the
        // ring is plain bytes that the pump only copies out.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.map.base().add(RING_OFFSET + off), n) };
    }

    /// Copies ring bytes from offset `off` into `dst`. Out-of-range requests are clipped.
    pub(super) fn ring_read(&self, off: usize, dst: &mut [u8]) {
        let n = dst.len().min(LANE_BYTES.saturating_sub(off));
        debug_assert!(RING_OFFSET + LANE_BYTES <= self.map.len());
        // SAFETY: [off, off+n) lies inside the ring. The client may be rewriting those bytes
        // (a rewind race, or hostility); that garbles only its own samples, never our state.
        unsafe { std::ptr::copy_nonoverlapping(self.map.base().add(RING_OFFSET + off), dst.as_mut_ptr(), n) };
    }

    /// Writes `value` over word `word` of the slot: what a hostile client can do to its own
    /// slot, for tests that prove it hurts nobody else.
    #[doc(hidden)]
    pub fn scribble(&self, word: usize, value: u64) {
        assert!(word < SLOT_BYTES / 8, "word {word} is outside a slot");
        let base = self.slot() as *const Slot as *const AtomicU64;
        // SAFETY: the slot is SLOT_BYTES of 8-byte-aligned words and word < SLOT_BYTES / 8.
        unsafe { (*base.add(word)).store(value, Ordering::Release) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    #[test]
    fn a_lane_reaches_its_client_with_its_size_sealed() {
        let (pump, fd) = LaneMem::create().unwrap();
        let client = LaneMem::attach(fd.try_clone().unwrap()).unwrap();
        client.ring_write(100, &[1, 2, 3]);
        client.scribble(0, 77);
        let mut b = [0u8; 3];
        pump.ring_read(100, &mut b);
        assert_eq!(b, [1, 2, 3]);
        assert_eq!(pump.slot().ctl.load(Ordering::Acquire), 77);
        let f = File::from(fd);
        assert!(f.set_len(0).is_err(), "nobody can shrink a lane under the pump");
        assert!(f.set_len(2 * LANE_MEM_BYTES as u64).is_err());
    }

    #[test]
    fn unsealed_or_wrong_sized_lanes_are_refused() {
        let bare = sys::memfd::unsealed(c"t").unwrap();
        File::from(bare.try_clone().unwrap())
            .set_len(LANE_MEM_BYTES as u64)
            .unwrap();
        assert!(LaneMem::attach(bare).err().unwrap().line().contains("lacks its seals"));
        let small = sys::memfd::create(c"t", PAGE as u64).unwrap();
        sys::memfd::seal(small.as_fd(), sys::memfd::SIZE_SEALS).unwrap();
        let e = LaneMem::attach(small).err().unwrap();
        assert!(e.line().contains("4096 bytes, expected"), "{e}");
    }
}
