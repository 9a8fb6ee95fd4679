//! The lane ring: a single-producer, single-consumer ring of one client's frames.
//!
//! The client is the [`Producer`]: it copies frames into its lane and publishes its
//! application position, together with its state and epoch, in one 64-bit word (`ctl`).
//! The pump is the [`Consumer`]: it copies frames out and publishes how far it has consumed
//! them in another word (`mixed`). Each role is a type, and each type has only its own
//! side's writes: a `Producer` cannot publish a consumed position, a `Consumer` cannot
//! publish an application position.
//!
//! Positions count frames since the epoch began (`prepare` starts a new epoch) and live in
//! 44 bits, compared modulo 2^44, so a word is always self-consistent and a stale word from
//! an earlier epoch is recognised instead of misread.
//!
//! # Ordering
//!
//! | word | written by | publishes | store | load |
//! |---|---|---|---|---|
//! | `ctl` | client | the lane bytes up to `appl` | Release | Acquire (pump) |
//! | `mixed` | pump | `start_mix`, `drain_end`, and that the pump is done reading the lane below `consumed` (the client may overwrite it) | Release | Acquire (client) |
//! | `wake_armed` | client sets 1, pump swaps 0 | `wake_at` | Release / AcqRel swap | Acquire (pump) |
//! | `start_mix`, `drain_end` | pump | nothing: published by the next `mixed` | Relaxed | Relaxed, after an Acquire of `mixed` |
//! | `wake_at` | client | nothing: published by `wake_armed` | Relaxed | Relaxed, after an Acquire of `wake_armed` |
//! | `underruns` | pump | nothing: a counter | Relaxed | Relaxed |
//! | `stop_after` | client | nothing: a setting, read afresh each period | Relaxed | Relaxed |
//!
//! What each side may assume of what it reads:
//! - **always in sync:** a side's own words (it is their only writer); `start_mix` and
//!   `drain_end` as of the `mixed` word just read, when that word's epoch is the reader's
//!   and its tag says `running` or `drained` (each is written before the `mixed` store
//!   that makes the tag true, and never changes while the tag holds);
//! - **may be stale:** the other side's word (the pump may have consumed more since; the
//!   client may have written more); `underruns`; and `wake_at` seen without `wake_armed`.
//!
//! The pump never trusts what it loads: a position is clamped to the lane's ring, an
//! unknown state reads as stopped, and a lane's bytes are only copied, never interpreted as
//! anything but that client's samples.

use std::sync::atomic::Ordering;

use super::lane::{LANE_BYTES, LaneMem, Slot};

pub const POS_BITS: u32 = 44;
pub const POS_MASK: u64 = (1 << POS_BITS) - 1;
const TAG_SHIFT: u32 = POS_BITS;
const EPOCH_SHIFT: u32 = POS_BITS + 4;

/// `epoch:16 | tag:4 | pos:44`: the shape of both published words.
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
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Prepared => "prepared",
            State::Running => "running",
            State::Paused => "paused",
            State::Draining => "draining",
        }
    }

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

    /// Whether the pump mixes a lane in this state.
    pub fn is_mixed(self) -> bool {
        matches!(self, State::Running | State::Draining)
    }
}

/// The client's word: its epoch, state and application position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctl {
    pub epoch: u16,
    pub state: State,
    pub appl: u64,
}

impl Ctl {
    pub(super) fn pack(self) -> u64 {
        Word {
            epoch: self.epoch,
            tag: self.state as u8,
            pos: self.appl,
        }
        .pack()
    }

    /// An unknown state tag (a corrupt slot) reads as `None`.
    pub(super) fn unpack(w: u64) -> Option<Ctl> {
        let w = Word::unpack(w);
        Some(Ctl {
            epoch: w.epoch,
            state: State::from_tag(w.tag)?,
            appl: w.pos,
        })
    }
}

const TAG_DRAINED: u8 = 1;
const TAG_RUNNING: u8 = 2;
const TAG_STOPPED: u8 = 4;

/// The pump's word: how far it has consumed the lane in which epoch, and what it has
/// made of the lane's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mixed {
    pub epoch: u16,
    /// The lane is being mixed in this epoch: `start_mix` is valid.
    pub running: bool,
    /// Every frame of a draining lane has been mixed: `drain_end` is valid.
    pub drained: bool,
    /// The pump found the running lane dry past its stop point and stopped mixing it in
    /// this epoch: an xrun. The pump's word, not the client's arithmetic, decides it, since
    /// a frame the client wrote after the pump read `appl` cannot undo it.
    pub stopped: bool,
    /// Client frames consumed in this epoch.
    pub consumed: u64,
}

impl Mixed {
    pub(super) fn pack(self) -> u64 {
        let tag = if self.running { TAG_RUNNING } else { 0 }
            | if self.drained { TAG_DRAINED } else { 0 }
            | if self.stopped { TAG_STOPPED } else { 0 };
        Word {
            epoch: self.epoch,
            tag,
            pos: self.consumed,
        }
        .pack()
    }

    pub(super) fn unpack(w: u64) -> Mixed {
        let w = Word::unpack(w);
        Mixed {
            epoch: w.epoch,
            running: w.tag & TAG_RUNNING != 0,
            drained: w.tag & TAG_DRAINED != 0,
            stopped: w.tag & TAG_STOPPED != 0,
            consumed: w.pos,
        }
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
    pub(super) fn spans(&self, pos: u64, n: usize) -> [(usize, usize); 2] {
        let n = n.min(self.buffer_frames);
        let start = (pos % self.buffer_frames as u64) as usize;
        let first = n.min(self.buffer_frames - start);
        [
            (start * self.frame_bytes, first * self.frame_bytes),
            (0, (n - first) * self.frame_bytes),
        ]
    }
}

impl Geometry {
    /// Copies frames `[pos, pos + dst.len()/frame_bytes)` of `mem`'s ring into `dst`.
    pub(super) fn copy_out(&self, mem: &LaneMem, pos: u64, dst: &mut [u8]) {
        let n = dst.len() / self.frame_bytes;
        let mut at = 0;
        for (off, len) in self.spans(pos, n) {
            mem.ring_read(off, &mut dst[at..at + len]);
            at += len;
        }
    }
}

/// The client's end of its lane.
pub struct Producer<'a> {
    mem: &'a LaneMem,
    slot: &'a Slot,
}

impl<'a> Producer<'a> {
    pub fn new(mem: &'a LaneMem) -> Producer<'a> {
        Producer { mem, slot: mem.slot() }
    }

    fn slot(&self) -> &'a Slot {
        self.slot
    }

    /// Copies interleaved frames into the lane at position `pos`. Of a write longer than the
    /// ring, only the last `buffer_frames` frames can survive.
    pub fn write(&self, g: &Geometry, pos: u64, src: &[u8]) {
        let total = src.len() / g.frame_bytes;
        let skip = total.saturating_sub(g.buffer_frames);
        let (pos, src) = (pos + skip as u64, &src[skip * g.frame_bytes..]);
        let mut at = 0;
        for (off, len) in g.spans(pos, total - skip) {
            self.mem.ring_write(off, &src[at..at + len]);
            at += len;
        }
    }

    /// Publishes the client's word; everything written below `appl` goes with it (Release).
    pub fn publish(&self, ctl: Ctl) {
        self.slot().ctl.store(ctl.pack(), Ordering::Release);
    }

    /// The pump's word (Acquire): after it, `start_mix` and `drain_end` are as the tags say.
    pub fn mixed(&self) -> Mixed {
        Mixed::unpack(self.slot().mixed.load(Ordering::Acquire))
    }

    /// Valid when the last `mixed()` of this epoch said `running`.
    pub fn start_mix(&self) -> u64 {
        self.slot().start_mix.load(Ordering::Relaxed)
    }

    /// Valid when the last `mixed()` of this epoch said `drained`.
    pub fn drain_end(&self) -> u64 {
        self.slot().drain_end.load(Ordering::Relaxed)
    }

    /// Times the pump mixed silence for this lane because it ran dry (may be stale).
    pub fn underruns(&self) -> u32 {
        self.slot().underruns.load(Ordering::Relaxed)
    }

    /// Tells the pump how many frames past running dry the stream stops (its xrun), so that
    /// the pump need not keep mixing a stream that has stopped. `u64::MAX`: never.
    pub fn set_stop_after(&self, frames: u64) {
        self.slot().stop_after.store(frames, Ordering::Relaxed);
    }

    /// Asks the pump to wake this client once it has consumed up to `at`.
    pub fn arm_wake(&self, at: u64) {
        let s = self.slot();
        s.wake_at.store(at & POS_MASK, Ordering::Relaxed);
        s.wake_armed.store(1, Ordering::Release);
    }
}

/// The pump's end of a client's lane.
pub struct Consumer<'a> {
    mem: &'a LaneMem,
    slot: &'a Slot,
}

impl<'a> Consumer<'a> {
    pub fn new(mem: &'a LaneMem) -> Consumer<'a> {
        Consumer { mem, slot: mem.slot() }
    }

    fn slot(&self) -> &'a Slot {
        self.slot
    }

    /// Gives the slot to a new client: every word starts at zero (epoch 0, idle).
    pub fn reset(&self) {
        self.slot().reset();
    }

    /// The client's word (Acquire): the lane bytes below `appl` are written. `None` for a
    /// word that no client could have written (a corrupt slot).
    pub fn ctl(&self) -> Option<Ctl> {
        Ctl::unpack(self.slot().ctl.load(Ordering::Acquire))
    }

    /// Copies frames `[pos, pos + dst.len()/frame_bytes)` of the lane into `dst`.
    pub fn read(&self, g: &Geometry, pos: u64, dst: &mut [u8]) {
        g.copy_out(self.mem, pos, dst);
    }

    /// Frames past running dry at which the client's stream stops, as it says (a lie hurts
    /// only its own stream).
    pub fn stop_after(&self) -> u64 {
        self.slot().stop_after.load(Ordering::Relaxed)
    }

    /// Published by the next `publish`.
    pub fn set_start_mix(&self, mix_pos: u64) {
        self.slot().start_mix.store(mix_pos, Ordering::Relaxed);
    }

    /// Published by the next `publish`.
    pub fn set_drain_end(&self, mix_pos: u64) {
        self.slot().drain_end.store(mix_pos, Ordering::Relaxed);
    }

    pub fn count_underrun(&self) {
        self.slot().underruns.fetch_add(1, Ordering::Relaxed);
    }

    /// Publishes the pump's word (Release), and with it `start_mix` and `drain_end`.
    pub fn publish(&self, m: Mixed) {
        self.slot().mixed.store(m.pack(), Ordering::Release);
    }

    /// Whether the client asked to be woken at or before `consumed`; disarms the request.
    pub fn take_wake(&self, consumed: u64) -> bool {
        let s = self.slot();
        s.wake_armed.load(Ordering::Acquire) != 0
            && pos_diff(consumed, s.wake_at.load(Ordering::Relaxed)) >= 0
            && s.wake_armed.swap(0, Ordering::AcqRel) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    fn seg() -> LaneMem {
        LaneMem::in_memory()
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
        let m = Mixed {
            epoch: 9,
            running: true,
            drained: true,
            stopped: false,
            consumed: 12345,
        };
        assert_eq!(Mixed::unpack(m.pack()), m);
        let s = Mixed {
            stopped: true,
            drained: false,
            ..m
        };
        assert_eq!(Mixed::unpack(s.pack()), s);
    }

    #[test]
    fn corrupt_state_tag_is_rejected() {
        let s = seg();
        s.scribble(
            0,
            Word {
                epoch: 1,
                tag: 9,
                pos: 5,
            }
            .pack(),
        );
        assert_eq!(Consumer::new(&s).ctl(), None);
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
        Producer::new(&s).write(&g, 7, &src); // frames 7,8,9 then 0,1,2
        let mut out = vec![0u8; 24];
        Consumer::new(&s).read(&g, 17, &mut out); // same ring slots, one lap later
        assert_eq!(out, src);
        let mut first = [0u8; 4];
        s.ring_read(0, &mut first);
        assert_eq!(first, [12, 13, 14, 15]);
    }

    #[test]
    fn wake_requests_are_taken_once() {
        let s = seg();
        let (p, c) = (Producer::new(&s), Consumer::new(&s));
        assert!(!c.take_wake(100), "nothing armed");
        p.arm_wake(50);
        assert!(!c.take_wake(49), "not yet consumed up to it");
        assert!(c.take_wake(50));
        assert!(!c.take_wake(60), "disarmed by the first take");
    }

    /// Streams the counter `base..base + total` into `lane` as a client would: a few frames
    /// at a time, each batch published with a Release store of `ctl`.
    fn produce(lane: &LaneMem, g: Geometry, base: u32, total: u32) {
        let p = Producer::new(lane);
        let mut appl = 0u64;
        let mut next = 0u32;
        while next < total {
            let consumed = p.mixed().consumed;
            let free = g.buffer_frames as i64 - pos_diff(appl, consumed);
            let n = free.min(5).min((total - next) as i64);
            if n <= 0 {
                std::thread::yield_now();
                continue;
            }
            let bytes: Vec<u8> = (next..next + n as u32).flat_map(|v| (base + v).to_le_bytes()).collect();
            p.write(&g, appl, &bytes);
            appl = pos_add(appl, n);
            next += n as u32;
            p.publish(Ctl {
                epoch: 0,
                state: State::Running,
                appl,
            });
        }
    }

    /// The pump's side of `produce`: takes up to `max` frames from `lane`, checks that they
    /// continue the counter at `*expect`, and hands the space back.
    fn consume(lane: &LaneMem, g: Geometry, consumed: &mut u64, expect: &mut u32, max: i64) {
        let c = Consumer::new(lane);
        let ctl = c.ctl().unwrap();
        let n = pos_diff(ctl.appl, *consumed).min(max);
        if n <= 0 {
            return;
        }
        let mut buf = vec![0u8; n as usize * 4];
        c.read(&g, *consumed, &mut buf);
        for b in buf.chunks_exact(4) {
            assert_eq!(u32::from_le_bytes(b.try_into().unwrap()), *expect);
            *expect += 1;
        }
        *consumed = pos_add(*consumed, n);
        c.publish(Mixed {
            consumed: *consumed,
            ..Mixed::default()
        });
    }

    /// A producer and a consumer thread stream a counter through a small ring; every frame
    /// arrives once, in order. Runs under Miri too (`cargo miri test ring`).
    #[test]
    fn spsc_stream_is_exact() {
        let s = Arc::new(seg());
        let g = Geometry::new(4, 16).unwrap();
        let total: u32 = if cfg!(miri) { 200 } else { 100_000 };
        let done = Arc::new(AtomicBool::new(false));
        let prod = {
            let (s, done) = (s.clone(), done.clone());
            std::thread::spawn(move || {
                produce(&s, g, 0, total);
                done.store(true, Ordering::Release);
            })
        };
        let (mut consumed, mut expect) = (0u64, 0u32);
        while expect < total {
            consume(&s, g, &mut consumed, &mut expect, 3);
            std::thread::yield_now();
        }
        prod.join().unwrap();
        assert!(done.load(Ordering::Acquire));
    }

    /// Many clients at once, as the pump sees them: one thread per lane streams its own
    /// counter while one consumer visits the lanes in turn. Every lane arrives exact and
    /// none sees another's frames. On ARM (run under qemu by scripts/ci/cross.sh) this is
    /// where a missing Acquire or Release would show as a stale or torn frame.
    #[test]
    fn many_lanes_stream_exactly_at_once() {
        const LANES: usize = 16;
        let total: u32 = if cfg!(miri) { 50 } else { 20_000 };
        let g = Geometry::new(4, 32).unwrap();
        let lanes: Vec<Arc<LaneMem>> = (0..LANES).map(|_| Arc::new(seg())).collect();
        let producers: Vec<_> = lanes
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let l = l.clone();
                std::thread::spawn(move || produce(&l, g, i as u32 * 1_000_000, total))
            })
            .collect();
        let mut consumed = [0u64; LANES];
        let mut expect: Vec<u32> = (0..LANES as u32).map(|i| i * 1_000_000).collect();
        while expect
            .iter()
            .enumerate()
            .any(|(i, e)| *e < i as u32 * 1_000_000 + total)
        {
            for (i, l) in lanes.iter().enumerate() {
                consume(l, g, &mut consumed[i], &mut expect[i], 7);
            }
            std::thread::yield_now();
        }
        for p in producers {
            p.join().unwrap();
        }
    }
}
