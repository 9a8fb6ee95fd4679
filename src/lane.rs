//! The lane ring: a single-producer, single-consumer ring of one client's frames.
//!
//! The client (producer) copies frames in and publishes its application position together
//! with its state and epoch in one 64-bit word; the pump (consumer) publishes how far it has
//! mixed in another. Positions count frames since the epoch began (`prepare` starts a new
//! epoch) and live in 44 bits, compared modulo 2^44, so a word is always self-consistent and
//! a stale word from an earlier epoch is recognised instead of misread.

use std::sync::atomic::Ordering;

use crate::segment::{LANE_BYTES, Segment, Slot};

pub const POS_BITS: u32 = 44;
pub const POS_MASK: u64 = (1 << POS_BITS) - 1;
const TAG_SHIFT: u32 = POS_BITS;
const EPOCH_SHIFT: u32 = POS_BITS + 4;

/// A lane's state as the client publishes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Set up or stopped: not mixed, position frozen.
    Idle = 0,
    Prepared = 1,
    Running = 2,
    Paused = 3,
    Draining = 4,
}

impl State {
    fn from_tag(t: u8) -> Option<State> {
        Some(match t {
            0 => State::Idle,
            1 => State::Prepared,
            2 => State::Running,
            3 => State::Paused,
            4 => State::Draining,
            _ => return None,
        })
    }
}

/// Pump flag in the `hw` word: every frame of a draining lane has been mixed.
pub const HW_DRAINED: u8 = 1;
/// Pump flag in the `hw` word: the lane is being mixed in this epoch (`start_mix` is valid).
pub const HW_RUNNING: u8 = 2;

/// `epoch:16 | tag:4 | pos:44`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Word {
    pub epoch: u16,
    pub tag: u8,
    pub pos: u64,
}

impl Word {
    pub fn pack(self) -> u64 {
        ((self.epoch as u64) << EPOCH_SHIFT) | (((self.tag & 0xf) as u64) << TAG_SHIFT) | (self.pos & POS_MASK)
    }
    pub fn unpack(w: u64) -> Word {
        Word {
            epoch: (w >> EPOCH_SHIFT) as u16,
            tag: ((w >> TAG_SHIFT) & 0xf) as u8,
            pos: w & POS_MASK,
        }
    }
}

/// `a - b` modulo 2^44, as a signed distance.
pub fn pos_diff(a: u64, b: u64) -> i64 {
    let d = a.wrapping_sub(b) & POS_MASK;
    if d >= 1 << (POS_BITS - 1) {
        d as i64 - (1i64 << POS_BITS)
    } else {
        d as i64
    }
}

pub fn pos_add(a: u64, n: i64) -> u64 {
    (a as i64).wrapping_add(n) as u64 & POS_MASK
}

/// The client's view of its published control word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctl {
    pub epoch: u16,
    pub state: State,
    pub appl: u64,
}

impl Ctl {
    pub fn store(self, slot: &Slot) {
        slot.ctl.store(
            Word {
                epoch: self.epoch,
                tag: self.state as u8,
                pos: self.appl,
            }
            .pack(),
            Ordering::Release,
        );
    }
    /// Reads a control word; an unknown state tag (a corrupt slot) reads as `None`.
    pub fn load(slot: &Slot) -> Option<Ctl> {
        let w = Word::unpack(slot.ctl.load(Ordering::Acquire));
        Some(Ctl {
            epoch: w.epoch,
            state: State::from_tag(w.tag)?,
            appl: w.pos,
        })
    }
}

/// Where a lane's frames sit: its ring geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub frame_bytes: usize,
    pub buffer_frames: usize,
}

impl Geometry {
    /// `None` unless a whole buffer of such frames fits in a lane.
    pub fn new(frame_bytes: usize, buffer_frames: usize) -> Option<Geometry> {
        if frame_bytes == 0 || buffer_frames == 0 || frame_bytes.checked_mul(buffer_frames)? > LANE_BYTES {
            return None;
        }
        Some(Geometry {
            frame_bytes,
            buffer_frames,
        })
    }

    /// The (up to) two contiguous byte spans of lane memory that hold frames `[pos, pos+n)`.
    fn spans(&self, pos: u64, n: usize) -> [(usize, usize); 2] {
        let n = n.min(self.buffer_frames);
        let start = (pos % self.buffer_frames as u64) as usize;
        let first = n.min(self.buffer_frames - start);
        [
            (start * self.frame_bytes, first * self.frame_bytes),
            (0, (n - first) * self.frame_bytes),
        ]
    }

    /// Producer: copies interleaved frames into lane `idx` at position `pos`.
    /// Of a write longer than the ring, only the last `buffer_frames` frames can survive.
    pub fn write(&self, seg: &Segment, idx: usize, pos: u64, src: &[u8]) {
        let total = src.len() / self.frame_bytes;
        let skip = total.saturating_sub(self.buffer_frames);
        let (pos, src) = (pos + skip as u64, &src[skip * self.frame_bytes..]);
        let n = total - skip;
        let mut at = 0;
        for (off, len) in self.spans(pos, n) {
            seg.lane_write(idx, off, &src[at..at + len]);
            at += len;
        }
    }

    /// Consumer: copies frames `[pos, pos + dst.len()/frame_bytes)` of lane `idx` into `dst`.
    pub fn read(&self, seg: &Segment, idx: usize, pos: u64, dst: &mut [u8]) {
        let n = dst.len() / self.frame_bytes;
        let mut at = 0;
        for (off, len) in self.spans(pos, n) {
            seg.lane_read(idx, off, &mut dst[at..at + len]);
            at += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::DeviceParams;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    fn seg() -> Segment {
        Segment::in_memory(&DeviceParams {
            format: 2,
            rate: 48000,
            channels: 2,
            period_frames: 64,
            buffer_frames: 256,
        })
    }

    #[test]
    fn words_pack_and_wrap() {
        let w = Word {
            epoch: 0xbeef,
            tag: 4,
            pos: POS_MASK,
        };
        assert_eq!(Word::unpack(w.pack()), w);
        assert_eq!(pos_diff(3, POS_MASK), 4);
        assert_eq!(pos_diff(POS_MASK, 3), -4);
        assert_eq!(pos_add(POS_MASK, 2), 1);
        assert_eq!(pos_add(1, -2), POS_MASK);
    }

    #[test]
    fn corrupt_state_tag_is_rejected() {
        let s = seg();
        s.slot(0).ctl.store(
            Word {
                epoch: 1,
                tag: 9,
                pos: 5,
            }
            .pack(),
            Ordering::Release,
        );
        assert_eq!(Ctl::load(s.slot(0)), None);
    }

    #[test]
    fn geometry_refuses_what_does_not_fit() {
        assert!(Geometry::new(4, LANE_BYTES / 4).is_some());
        assert!(Geometry::new(4, LANE_BYTES / 4 + 1).is_none());
        assert!(Geometry::new(0, 10).is_none());
        assert!(Geometry::new(usize::MAX, 2).is_none());
    }

    #[test]
    fn ring_wraps_without_losing_a_byte() {
        let s = seg();
        let g = Geometry::new(4, 10).unwrap();
        let src: Vec<u8> = (0..24).collect();
        g.write(&s, 1, 7, &src); // frames 7,8,9 then 0,1,2
        let mut out = vec![0u8; 24];
        g.read(&s, 1, 17, &mut out); // same ring slots, one lap later
        assert_eq!(out, src);
        let mut first = [0u8; 4];
        s.lane_read(1, 0, &mut first);
        assert_eq!(first, [12, 13, 14, 15]);
    }

    /// A producer and a consumer thread stream a counter through a small ring; every frame
    /// arrives once, in order. Runs under Miri too (`cargo miri test lane`).
    #[test]
    fn spsc_stream_is_exact() {
        let s = Arc::new(seg());
        let g = Geometry::new(4, 16).unwrap();
        let total: u32 = if cfg!(miri) { 200 } else { 100_000 };
        let done = Arc::new(AtomicBool::new(false));
        let prod = {
            let (s, done) = (s.clone(), done.clone());
            std::thread::spawn(move || {
                let slot = s.slot(2);
                let mut appl = 0u64;
                let mut next = 0u32;
                while next < total {
                    let hw = Word::unpack(slot.hw.load(Ordering::Acquire)).pos;
                    let free = g.buffer_frames as i64 - pos_diff(appl, hw);
                    let n = free.min(5).min((total - next) as i64);
                    if n <= 0 {
                        std::thread::yield_now();
                        continue;
                    }
                    let bytes: Vec<u8> = (next..next + n as u32).flat_map(|v| v.to_le_bytes()).collect();
                    g.write(&s, 2, appl, &bytes);
                    appl = pos_add(appl, n);
                    next += n as u32;
                    Ctl {
                        epoch: 0,
                        state: State::Running,
                        appl,
                    }
                    .store(slot);
                }
                done.store(true, Ordering::Release);
            })
        };
        let slot = s.slot(2);
        let mut hw = 0u64;
        let mut expect = 0u32;
        while expect < total {
            let ctl = Ctl::load(slot).unwrap();
            let n = pos_diff(ctl.appl, hw).min(3);
            if n <= 0 {
                std::thread::yield_now();
                continue;
            }
            let mut buf = vec![0u8; n as usize * 4];
            g.read(&s, 2, hw, &mut buf);
            for c in buf.chunks_exact(4) {
                assert_eq!(u32::from_le_bytes(c.try_into().unwrap()), expect);
                expect += 1;
            }
            hw = pos_add(hw, n);
            slot.hw.store(
                Word {
                    epoch: 0,
                    tag: 0,
                    pos: hw,
                }
                .pack(),
                Ordering::Release,
            );
        }
        prod.join().unwrap();
        assert!(done.load(Ordering::Acquire));
    }
}
