//! The capture lane: the same memory and the same words as a playback lane (`ring`), with
//! the frames flowing the other way.
//!
//! The pump is the [`Writer`]: it copies each captured period, converted, into the lane
//! and publishes how far it has written in the `mixed` word. The client is the [`Reader`]:
//! it copies frames out and publishes how far it has read (its application position) in
//! `ctl`, with its state and epoch. Nobody else maps the lane, so a recording client sees
//! only what the pump wrote for it, from the moment its stream started, and can write
//! nothing another client reads.
//!
//! The ring is the whole lane, not just the client's buffer: it holds the client's buffer
//! plus at least two periods' worth (`Tap::new` refuses less), so the period being written
//! never lands on a frame the client may still read before its own overrun point.
//!
//! # Ordering
//!
//! | word | written by | publishes | store | load |
//! |---|---|---|---|---|
//! | `mixed` | pump | the lane frames below `captured`, and `start_mix` | Release | Acquire (client) |
//! | `ctl` | client | nothing but itself: the pump only compares positions with it | Release | Acquire (pump) |
//! | `wake_armed` | client sets 1, pump swaps 0 | `wake_at` | Release / AcqRel swap | Acquire (pump) |
//! | `start_mix` | pump | nothing: published by the next `mixed` | Relaxed | Relaxed, after an Acquire of `mixed` |
//! | `underruns` | pump | nothing: a counter of overruns | Relaxed | Relaxed |
//! | `stop_after` | client | nothing: its stop_threshold, read afresh each period | Relaxed | Relaxed |
//!
//! The pump never trusts the client's word: its position only decides when the client's own
//! stream overruns, and an unknown state reads as stopped. The client trusts the pump's
//! word no further than its own ring: a position is clamped to what the ring can hold.

use std::sync::atomic::Ordering;

use super::lane::{LANE_BYTES, LaneMem, Slot};
use super::ring::{Ctl, Geometry, Mixed, POS_MASK, pos_diff};

/// The ring a capture client of `frame_bytes`-byte frames reads: the whole lane, so that
/// the period being written is far from anything the client may still read. Both sides
/// compute it; neither reads it from the other.
pub fn geometry(frame_bytes: usize) -> Option<Geometry> {
    Geometry::new(frame_bytes, LANE_BYTES / frame_bytes.max(1))
}

/// The largest capture buffer a client may ask for, in bytes: a quarter of the lane, so
/// that the pump may run a buffer past the client's stop point and still never write over
/// a frame the client can read.
pub const MAX_BUFFER_BYTES: usize = LANE_BYTES / 4;

/// The client's end of its capture lane.
pub struct Reader<'a> {
    mem: &'a LaneMem,
    slot: &'a Slot,
}

impl<'a> Reader<'a> {
    pub fn new(mem: &'a LaneMem) -> Reader<'a> {
        Reader { mem, slot: mem.slot() }
    }

    /// Copies frames `[pos, pos + dst.len()/frame_bytes)` of the lane into `dst`.
    pub fn read(&self, g: &Geometry, pos: u64, dst: &mut [u8]) {
        g.copy_out(self.mem, pos, dst);
    }

    /// Publishes the client's word: its epoch, state and read position.
    pub fn publish(&self, ctl: Ctl) {
        self.slot.ctl.store(ctl.pack(), Ordering::Release);
    }

    /// The pump's word (Acquire): the frames below `consumed` (here: captured) are in the lane.
    pub fn captured(&self) -> Mixed {
        Mixed::unpack(self.slot.mixed.load(Ordering::Acquire))
    }

    /// The device position of lane frame 0; valid when the last `captured()` of this epoch
    /// said `running`.
    pub fn start_mix(&self) -> u64 {
        self.slot.start_mix.load(Ordering::Relaxed)
    }

    /// Times this client's stream overran, as the pump counted them (may be stale).
    pub fn overruns(&self) -> u32 {
        self.slot.underruns.load(Ordering::Relaxed)
    }

    /// Tells the pump the avail at which this stream stops (its stop_threshold); `u64::MAX`
    /// for never.
    pub fn set_stop_after(&self, frames: u64) {
        self.slot.stop_after.store(frames, Ordering::Relaxed);
    }

    /// Asks the pump to wake this client once it has captured up to `at`.
    pub fn arm_wake(&self, at: u64) {
        self.slot.wake_at.store(at & POS_MASK, Ordering::Relaxed);
        self.slot.wake_armed.store(1, Ordering::Release);
    }
}

/// The pump's end of a client's capture lane.
pub struct Writer<'a> {
    mem: &'a LaneMem,
    slot: &'a Slot,
}

impl<'a> Writer<'a> {
    pub fn new(mem: &'a LaneMem) -> Writer<'a> {
        Writer { mem, slot: mem.slot() }
    }

    /// Gives the slot to a new client: every word starts at zero (epoch 0, idle).
    pub fn reset(&self) {
        self.slot.reset();
    }

    /// The client's word (Acquire); `None` for a word no client could have written.
    pub fn ctl(&self) -> Option<Ctl> {
        Ctl::unpack(self.slot.ctl.load(Ordering::Acquire))
    }

    /// Copies interleaved frames into the lane at position `pos`.
    pub fn write(&self, g: &Geometry, pos: u64, src: &[u8]) {
        let total = src.len() / g.frame_bytes;
        let mut at = 0;
        for (off, len) in g.spans(pos, total) {
            self.mem.ring_write(off, &src[at..at + len]);
            at += len;
        }
    }

    /// Published by the next `publish`.
    pub fn set_start_mix(&self, device_pos: u64) {
        self.slot.start_mix.store(device_pos, Ordering::Relaxed);
    }

    /// Publishes the pump's word (Release): every frame below `m.consumed` is written.
    pub fn publish(&self, m: Mixed) {
        self.slot.mixed.store(m.pack(), Ordering::Release);
    }

    pub fn count_overrun(&self) {
        self.slot.underruns.fetch_add(1, Ordering::Relaxed);
    }

    /// The avail at which the client's stream stops, as it says (a lie hurts only its own).
    pub fn stop_after(&self) -> u64 {
        self.slot.stop_after.load(Ordering::Relaxed)
    }

    /// Where the client asks to be woken, while it asks (Acquire: the position its arm
    /// stored is the one read). A lie moves only its own wake-up, and the pump bounds it.
    pub fn wake_target(&self) -> Option<u64> {
        let s = self.slot;
        (s.wake_armed.load(Ordering::Acquire) != 0).then(|| s.wake_at.load(Ordering::Relaxed))
    }

    /// Whether the client asked to be woken at or before `captured`; disarms the request.
    pub fn take_wake(&self, captured: u64) -> bool {
        let s = self.slot;
        s.wake_armed.load(Ordering::Acquire) != 0
            && pos_diff(captured, s.wake_at.load(Ordering::Relaxed)) >= 0
            && s.wake_armed.swap(0, Ordering::AcqRel) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::ring::{Consumer, State, pos_add};
    use std::sync::Arc;

    /// The pump writes a counter period by period while the client reads it at its own
    /// pace: every frame arrives once, in order. Runs under Miri too.
    #[test]
    fn capture_stream_is_exact() {
        let lane = Arc::new(LaneMem::in_memory());
        let g = Geometry::new(4, 64).unwrap();
        let total: u32 = if cfg!(miri) { 300 } else { 100_000 };
        let reader = {
            let lane = lane.clone();
            std::thread::spawn(move || {
                let r = Reader::new(&lane);
                let (mut appl, mut expect) = (0u64, 0u32);
                while expect < total {
                    let avail = pos_diff(r.captured().consumed, appl);
                    assert!(avail <= 64 - 8, "the writer never laps the reader here");
                    let n = avail.min(5);
                    if n <= 0 {
                        std::thread::yield_now();
                        continue;
                    }
                    let mut buf = vec![0u8; n as usize * 4];
                    r.read(&g, appl, &mut buf);
                    for b in buf.chunks_exact(4) {
                        assert_eq!(u32::from_le_bytes(b.try_into().unwrap()), expect);
                        expect += 1;
                    }
                    appl = pos_add(appl, n);
                    r.publish(Ctl {
                        epoch: 0,
                        state: State::Running,
                        appl,
                    });
                }
            })
        };
        let w = Writer::new(&lane);
        let mut captured = 0u64;
        let mut next = 0u32;
        while next < total {
            let appl = w.ctl().map_or(0, |c| c.appl);
            if pos_diff(captured, appl) > 64 - 16 {
                std::thread::yield_now();
                continue;
            }
            let n = 8.min(total - next);
            let bytes: Vec<u8> = (next..next + n).flat_map(|v| v.to_le_bytes()).collect();
            w.write(&g, captured, &bytes);
            captured = pos_add(captured, n as i64);
            next += n;
            w.publish(Mixed {
                consumed: captured,
                running: true,
                ..Mixed::default()
            });
        }
        reader.join().unwrap();
        Consumer::new(&lane).reset();
        assert_eq!(
            Reader::new(&lane).captured(),
            Mixed::default(),
            "reset clears the pump's word"
        );
    }
}
