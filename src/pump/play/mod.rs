//! Playback: the mixer plus pacing, keeping the slave fed without running ahead of real
//! time.
//!
//! `Player::service` (through `Side`) is a non-blocking step: it does all the work that is
//! due at the time it is given and says when to call it again, so the process loop can also
//! watch its sockets, and tests can drive it with a virtual clock and a fake slave.

mod fill;
pub mod mixer;

pub use self::fill::start_frames;

use std::sync::Arc;

use self::fill::Fill;
use self::mixer::Mixer;
use super::lanes::LaneTable;
use super::pace::{Next, Pace};
use super::side::{Device, Side, Sink};
use crate::config::Bindings;
use crate::dsp::format::Format;
use crate::dsp::gain::Volume;
use crate::error::{Error, Result};
use crate::shm::clock::{frames_to_ns, ns_to_frames};
use crate::shm::segment::SegmentWriter;

pub struct Player<S: Sink> {
    pub mixer: Mixer,
    pub sink: S,
    pub pace: Pace,
    /// The mix position just past the last period in which any lane was mixed: once the
    /// slave's whole buffer beyond it is silence, the device can stop without a click.
    audible_end: u64,
    /// Periods of silence still to lead a restarted device with (see `kick`).
    lead_in: u64,
    /// Until this period the slave's delay is probed to learn whether it is paced.
    probe_until: u64,
    /// Where the slave's take of the mixer's last period stopped, while some is left.
    unsent: Option<usize>,
    /// Frames of the next mixed period the slave already holds: a rewind that gave back
    /// less than whole periods.
    skip: u64,
    fill: Fill,
    rewinds: Rewinds,
    /// A client kicked a busy pump (its lane started or left), and the lanes have not been
    /// looked at for a rewind since: only a kick (or a detach, which the loop turns into
    /// one) changes what a rewind would do, so no other wake-up asks the slave for it.
    kicked: bool,
}

/// Rewinding the slave (see `Player::rewind`).
#[derive(Debug, Default)]
struct Rewinds {
    /// Not yet disproven: filling ahead, and the slave has not refused a rewind.
    on: bool,
    /// The slave has once said it can take frames back.
    proven: bool,
    /// Attempts in a row that found nothing to take back, however much the slave held.
    refused: u32,
    stats: RewindStats,
}

/// What the slave held, and when.
#[derive(Clone, Copy, Debug)]
struct Queued {
    frames: u64,
    at_ns: u64,
}

/// Whether the pump waits for a lane that lacks its next period (see `wait_for_lanes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    No,
    /// Until the fill falls to the watermark, as when the slave is full.
    ForWatermark,
    /// Until this instant, when the fill reaches the last call.
    Until(u64),
}

/// What the rewinds did, for the log and the tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct RewindStats {
    pub done: u32,
    /// Frames the slave gave back, in all.
    pub frames: u64,
    /// The mix position the last rewind went back to.
    pub last_to: u64,
}

/// Attempts in a row a slave may refuse to rewind, holding plenty, before it is taken for
/// one that cannot: from then on the fill is capped at the smallest client latency.
const REWIND_REFUSALS: u32 = 3;

/// What a rewind leaves in the slave at least, beyond the hardware pointer, as a share of
/// the watermark: half of it, 8 ms to start with, and more after a slave xrun. It covers
/// mixing the first period again and writing it on a loaded machine; PulseAudio keeps
/// 1.33 ms, but rdmix's writes are copies the driver makes, and 4 ms xran snd-dummy in the
/// VM under TCG.
const REWIND_KEEP_OF_WATERMARK: u64 = 2;

impl<S: Sink> Player<S> {
    pub fn new(mixer: Mixer, sink: S, now_ns: u64) -> Player<S> {
        let seg: Arc<SegmentWriter> = mixer.lanes.seg.clone();
        // Paced until proven otherwise by the slave's delay (see `probe`).
        let pace = Pace::new(seg, mixer.device(), false, now_ns);
        let fill = Fill::new(&mixer.device(), now_ns);
        Player {
            mixer,
            sink,
            pace,
            audible_end: 0,
            lead_in: 0,
            probe_until: 0,
            unsent: None,
            skip: 0,
            fill,
            rewinds: Rewinds {
                on: true,
                ..Rewinds::default()
            },
            kicked: false,
        }
    }

    /// Whether the pump fills the slave ahead (the `fill_ahead` option; on by default), and
    /// so rewinds it.
    pub fn fill_ahead(&mut self, on: bool) {
        self.fill.on = on;
        self.rewinds.on = on;
        if !on {
            self.mixer.keep(false);
        }
    }

    pub fn rewinds(&self) -> RewindStats {
        self.rewinds.stats
    }

    /// Whether rewinds are on: filling ahead, on a slave that has not proven it cannot.
    pub fn rewinding(&self) -> bool {
        self.mixer.keeps()
    }

    /// The first time the slave holds plenty, asks whether it can give any back: one that
    /// says no is filled only as far as the smallest client latency (see `capped`).
    fn prove_rewinds(&mut self, queued: u64) {
        let period = self.mixer.device().period_frames as u64;
        if self.rewinds.proven || !self.mixer.keeps() || queued < self.fill.watermark + 2 * period {
            return;
        }
        if self.sink.rewindable().is_ok_and(|n| n > 0) {
            self.rewinds.proven = true;
        } else {
            self.stop_rewinding();
        }
    }

    fn stop_rewinding(&mut self) {
        self.rewinds.on = false;
        self.mixer.keep(false);
    }

    /// A lane started or left: take back what the slave holds beyond a safe margin, and mix
    /// it again without the lane that left, or with the one that started placed as soon as
    /// it can be. So a change is heard within about a period, not behind a whole buffer
    /// that was mixed before it (as PulseAudio does on cards it can timer-schedule).
    ///
    /// A new lane's frame 0 goes where what it already holds carries the slave past the
    /// watermark, so that it is not mixed as silence ahead of its client.
    fn rewind(&mut self) -> Result<()> {
        if !self.mixer.keeps() {
            self.kicked = false;
            return Ok(());
        }
        // A kick that must wait for the unsent rest of a period, or the lead-in, stays.
        if self.unsent.is_some() || self.lead_in > 0 {
            return Ok(());
        }
        self.kicked = false;
        let dev = self.mixer.device();
        let period = dev.period_frames as u64;
        let Ok(queued) = self.sink.delay() else { return Ok(()) };
        let queued = queued.clamp(0, dev.buffer_frames as i64) as u64;
        let mix_pos = self.mixer.mix_pos();
        let played = mix_pos.saturating_sub(queued);
        let keep = self.fill.watermark / REWIND_KEEP_OF_WATERMARK;
        // A volume change alone comes closer: the slave keeps half a period (at least 1 ms,
        // PulseAudio's rewind safeguard is 1.33 ms), so that it is heard within a device
        // period. The margin is smaller only at that moment: a pump preempted for longer
        // than it, right then, underruns the slave once.
        let volume_keep = (period / 2).max(ns_to_frames(1_000_000, dev.rate)).min(keep);
        let keep = if self.mixer.lanes_changed(played + keep, queued) {
            keep
        } else if self.mixer.volume_changed_past(played + volume_keep) {
            volume_keep
        } else {
            return Ok(());
        };
        // Every lane's share of the period the rewind lands in must still be held.
        let can = match self.sink.rewindable() {
            Ok(n) => n.min(queued).min(self.mixer.held_frames().saturating_sub(period)),
            Err(_) => 0,
        };
        // Not in whole periods: the slave keeps just the margin, and the first period
        // mixed again is written from where the slave stopped (`skip`).
        let want = can.saturating_sub(keep);
        let got = if want >= period {
            self.sink.rewind(want).unwrap_or(0).min(want)
        } else {
            0
        };
        if got == 0 {
            // Nothing comes back: the lanes that left play out what the slave holds.
            self.mixer.rewind(mix_pos, 0, &|_| 0);
            if queued >= keep + 2 * period && self.mixer.held_frames() >= queued {
                self.rewinds.refused += 1;
                if self.rewinds.refused >= REWIND_REFUSALS {
                    self.stop_rewinding();
                }
            }
            return Ok(());
        }
        self.rewinds.refused = 0;
        // The mix goes back to a period boundary; the slave already holds the first `skip`
        // frames of that period.
        let back = got.div_ceil(period) * period;
        let to = mix_pos - back;
        self.skip = back - got;
        let stats = &mut self.rewinds.stats;
        stats.done += 1;
        stats.frames += got;
        stats.last_to = to;
        // Frame 0 of a lane yet to join goes as early as what it holds can carry the mix
        // to a period's end past the watermark and a moment more: there the pump stops
        // without mixing silence for it, and its client, woken as the pump takes its frames,
        // has that moment to write the next ones before the pump wakes at the watermark.
        // A 10 ms client is heard 7 to 13 ms after its start at rdmix's defaults (16 ms
        // margin, 5.3 ms periods); one that holds more, as soon as the slave's margin allows.
        let moment = (period / 4).max(ns_to_frames(1_000_000, dev.rate));
        let past = (played + self.fill.watermark + moment).saturating_sub(to);
        let end = to + past.div_ceil(period).max(1) * period;
        let first = to + self.skip;
        self.mixer
            .rewind(to, self.skip, &|held| end.saturating_sub(held).max(first) - to);
        // The clock needs no new word: what has played is what it was, and the next period
        // mixed publishes the new position with the slave's delay then.
        Ok(())
    }

    /// A slave that cannot rewind is filled no further than the smallest client latency,
    /// so that a change is heard within it.
    fn capped(&self, queued: u64) -> bool {
        let period = self.mixer.device().period_frames as u64;
        self.fill.on
            && self.pace.realtime
            && !self.rewinds.on
            && self.lead_in == 0
            && queued >= (self.fill.watermark + period).max(self.mixer.min_latency())
    }

    /// The watermark the pump refills the slave at, in device frames.
    pub fn watermark(&self) -> u64 {
        self.fill.watermark
    }

    /// Tells a device-paced slave when to wake the pump: at the watermark. A slave that
    /// refuses is woken every period, as before.
    fn tell_slave(&mut self) {
        let dev = self.mixer.device();
        let want = self.fill.avail_min(&dev);
        if !self.pace.realtime || want == self.fill.told {
            return;
        }
        if self.sink.wake_at_room(want).is_err() {
            self.fill.on = false;
        }
        self.fill.told = want;
    }

    /// Filling ahead, some running lane lacks the next period: wait for its client rather
    /// than mix silence for it.
    /// - Above the watermark (not a period above it: woken a little below it, as a card
    ///   fires at its period boundaries, the pump tops up one period, and a client with a
    ///   buffer of under two periods, 10 ms at 256, must not be asked for two), until the
    ///   watermark.
    /// - From there down to the last call, on a timer, since a client's write does not wake
    ///   the pump. Filling ahead, the pump takes every frame a lane holds, so a small
    ///   client's ring is left empty. Mixed short at the watermark, its client would have
    ///   had only until the next wake-up to refill, a period at worst, where a card gives it
    ///   its whole buffer: 8 clients of 256 frames on 64-frame periods underran about 75
    ///   times a minute on a loaded machine so.
    fn wait_for_lanes(&self, now_ns: u64, queued: u64) -> Wait {
        if !self.fill.on || self.lead_in > 0 || self.mixer.lanes_hold_a_period() {
            return Wait::No;
        }
        let dev = self.mixer.device();
        let last = self.fill.last_call(&dev);
        if queued > self.fill.watermark {
            Wait::ForWatermark
        } else if queued > last {
            Wait::Until(now_ns + frames_to_ns(queued - last, dev.rate).max(self.pace.period_ns() / 8))
        } else {
            Wait::No
        }
    }

    /// Frames the slave still holds, by its own report or by the clock, and when that held.
    fn queued(&mut self, now_ns: u64) -> Result<Queued> {
        let dev = self.mixer.device();
        if self.pace.realtime {
            return match self.sink.delay_at() {
                Ok((d, at)) => Ok(Queued {
                    frames: d.clamp(0, dev.buffer_frames as i64) as u64,
                    at_ns: at.unwrap_or_else(|| self.pace.read_at(now_ns)),
                }),
                Err(e) => self.recover(e).map(|_| Queued {
                    frames: 0,
                    at_ns: self.pace.read_at(now_ns),
                }),
            };
        }
        let played = self.pace.due(now_ns);
        let mix_pos = self.mixer.mix_pos();
        let frames = if played >= mix_pos {
            // Ran dry (or just started): restart the virtual device clock at the current position.
            self.pace.anchor(now_ns, mix_pos);
            0
        } else {
            mix_pos - played
        };
        Ok(Queued { frames, at_ns: now_ns })
    }

    /// Frames the slave can take now.
    fn room(&mut self, queued: u64) -> Result<u64> {
        let buffer = self.mixer.device().buffer_frames as u64;
        if !self.pace.realtime {
            return Ok(buffer - queued.min(buffer));
        }
        self.sink.avail().map(|a| a as u64)
    }

    /// Mixes (or leads in with silence) one period and hands it to the slave.
    fn mix_one(&mut self, now_ns: u64, wake: &mut Vec<usize>) -> Result<()> {
        if self.lead_in > 0 {
            self.lead_in -= 1;
            self.mixer.silence_period();
        } else {
            self.mixer.mix_period(wake);
        }
        if self.mixer.mixed_any() {
            self.audible_end = self.mixer.mix_pos();
        }
        self.unsent = Some(std::mem::take(&mut self.skip) as usize * self.mixer.frame_bytes());
        self.pace.progress(now_ns);
        self.flush_unsent()?;
        self.probe();
        Ok(())
    }

    /// A slave that consumes in real time shows a delay from its first period on (it holds
    /// what it has not played); one that shows none for a whole buffer never will.
    fn probe(&mut self) {
        if !self.pace.realtime && self.pace.stats.periods <= self.probe_until {
            self.pace.realtime = self.sink.delay().map(|d| d > 0).unwrap_or(false);
            // Only a slave that moves in real time can give back what it has not played.
            self.mixer.keep(self.pace.realtime && self.rewinds.on);
        }
    }

    /// The slave is full: when to look again.
    fn when_room(&mut self, now_ns: u64, room: u64, mixed: bool) -> Next {
        let dev = self.mixer.device();
        self.tell_slave();
        if let Some(next) = self.pace.device_wait(now_ns, mixed, self.fill.within_ns(&dev, room)) {
            return next;
        }
        let period = dev.period_frames as u64;
        // Filling ahead, paced by the clock (`null`, `file`, or descriptors that cannot be
        // trusted): when the fill falls to the watermark, as a card's avail_min would say.
        // Otherwise clock-paced, the pump may take several periods per wake-up: as many as
        // keep half the device's buffer queued, and as every running lane can give with half
        // its own buffer to spare. A lane with a small buffer keeps it at one.
        let want = if self.fill.on {
            self.fill.avail_min(&dev)
        } else if self.pace.realtime {
            period
        } else {
            period * self.mixer.periods_per_take(dev.buffer_frames as u64 / (2 * period))
        };
        Next::At(now_ns + frames_to_ns(want.max(room) - room, dev.rate).max(self.pace.period_ns() / 8))
    }

    /// No lane wants mixing, and the slave has played the last audible frame (it holds
    /// `queued`): stopping now cuts nothing and replays nothing.
    fn quiet(&self, queued: u64) -> bool {
        self.mixer.mix_pos().saturating_sub(queued) >= self.audible_end && !self.mixer.wants_mixing()
    }

    /// Filling ahead, no lane wants mixing, and the slave holds more than the watermark:
    /// silence is not mixed ahead. The pump stops the device once what was audible has
    /// played, and a stream that starts meanwhile is not queued behind a buffer of silence
    /// (on a slave that cannot rewind, a third of a second).
    fn only_silence(&self, queued: u64) -> bool {
        self.fill.on && self.lead_in == 0 && queued > self.fill.watermark && !self.mixer.wants_mixing()
    }

    fn go_idle(&mut self) -> Result<()> {
        if self.pace.realtime {
            self.sink.stop()?;
        }
        self.pace.stop();
        Ok(())
    }

    /// Writes what is left of the last mixed period. `Ok(false)` if the slave is full.
    fn flush_unsent(&mut self) -> Result<bool> {
        let fb = self.mixer.frame_bytes();
        while let Some(off) = self.unsent {
            let out = self.mixer.output();
            if off >= out.len() {
                self.unsent = None;
                break;
            }
            let rest = &out[off..];
            match self.sink.write(rest, rest.len() / fb) {
                Ok(0) => return Ok(false),
                Ok(n) => self.unsent = Some(off + n * fb),
                Err(e) if e.is(libc::EAGAIN) => return Ok(false),
                Err(e) => self.recover(e)?,
            }
        }
        Ok(true)
    }

    fn recover(&mut self, err: Error) -> Result<()> {
        let sink = &mut self.sink;
        self.pace.recover(err, |e| sink.recover(e))
    }

    /// Publishes the device clock: the slave held `q.frames` at `q.at_ns`. The stamp is the
    /// moment of the reading, not of the publishing: between the two the pump may ask the
    /// slave for room, set its avail_min or be preempted, and a later stamp would make every
    /// client's snd_pcm_delay long by that much (2 ms seen under TCG).
    fn publish(&self, q: Queued) {
        self.pace.publish(q.at_ns, self.mixer.mix_pos(), q.frames);
    }
}

impl<S: Sink> Side for Player<S> {
    /// A client's lane has started to want mixing. An idle pump readies the device again;
    /// the next `service` fills its buffer and so starts it. A busy pump has nothing to do.
    ///
    /// The buffer is filled with silence but for its last period, in which the lanes are
    /// first seen (and which they join a period later, as every lane does: see
    /// `mixer::mix_lane`). The device starts full, so a lane's frame 0 plays one buffer
    /// from now, and from then on the lanes are taken at the device's pace, as they are by
    /// a pump that never stopped. (Had the whole buffer come from the lanes, a client that
    /// started with less than that queued would underrun at once.)
    fn kick(&mut self, now_ns: u64) -> Result<()> {
        if !self.pace.is_idle() {
            // Looked at in the next `service`: it may call for a rewind.
            self.kicked = true;
            return Ok(());
        }
        if !self.mixer.wants_mixing() {
            return Ok(());
        }
        if self.pace.realtime {
            self.sink.prepare()?;
        }
        let dev = self.mixer.device();
        let (period, buffer) = (dev.period_frames as u64, dev.buffer_frames as u64);
        let periods = buffer / period;
        // Filling ahead, the slave starts once it holds the margin and a period, however
        // large its buffer (see `start_frames`).
        let start = if self.fill.on {
            start_frames(dev.rate, period, buffer).min(periods * period) / period
        } else {
            periods
        };
        self.lead_in = start.saturating_sub(1);
        self.probe_until = self.pace.stats.periods + periods + 1;
        self.pace.start(now_ns, self.mixer.mix_pos());
        Ok(())
    }

    /// Mixes and writes every period that is due at `now_ns`; says when to call again.
    /// Lanes whose wake-up fell due are pushed onto `wake`.
    fn service(&mut self, now_ns: u64, wake: &mut Vec<usize>) -> Result<Next> {
        if self.pace.is_idle() {
            return Ok(Next::Idle);
        }
        let dev = self.mixer.device();
        self.fill.adapt(&dev, self.pace.stats.slave_xruns, now_ns);
        let period = dev.period_frames as u64;
        // A kick is work, not a spurious wake-up of the descriptors.
        let mut mixed = self.kicked;
        if self.kicked {
            self.rewind()?;
        }
        loop {
            let flushed = self.flush_unsent()?;
            let q = self.queued(now_ns)?;
            let queued = q.frames;
            let room = if flushed {
                match self.room(queued) {
                    Ok(r) => r,
                    Err(e) => {
                        self.recover(e)?;
                        continue;
                    }
                }
            } else {
                0
            };
            if room < period {
                if self.pace.stalled(now_ns) {
                    return Err(Error::errno(libc::EIO));
                }
                self.publish(q);
                return Ok(self.when_room(now_ns, room, mixed));
            }
            self.prove_rewinds(queued);
            let lacking = self.wait_for_lanes(now_ns, queued);
            if let Wait::Until(t) = lacking {
                self.publish(q);
                return Ok(Next::At(t));
            }
            if lacking == Wait::ForWatermark || self.capped(queued) || self.only_silence(queued) {
                self.publish(q);
                return Ok(self.when_room(now_ns, room, mixed));
            }
            if self.lead_in == 0 && self.quiet(queued) {
                self.publish(q);
                self.go_idle()?;
                return Ok(Next::Idle);
            }
            self.mix_one(now_ns, wake)?;
            mixed = true;
            if let Ok(q) = self.queued(now_ns) {
                self.publish(q);
            }
        }
    }

    fn setup(&mut self, idx: usize, f: Format, channels: u32, rate: u32, buffer: u64, b: &Bindings) -> Result<()> {
        self.mixer.setup(idx, f, channels, rate, buffer, b)
    }

    fn set_volume(&mut self, idx: Option<usize>, v: Volume) -> Result<()> {
        match idx {
            Some(i) => self.mixer.set_volume(i, v),
            None => self.mixer.set_master(v),
        }
        Ok(())
    }

    fn volume(&self, idx: Option<usize>) -> Option<Volume> {
        match idx {
            Some(i) => self.mixer.volume(i),
            None => Some(self.mixer.master()),
        }
    }

    fn pace(&self) -> &Pace {
        &self.pace
    }

    fn pace_mut(&mut self) -> &mut Pace {
        &mut self.pace
    }

    fn lanes(&self) -> &dyn LaneTable {
        &self.mixer
    }

    fn lanes_mut(&mut self) -> &mut dyn LaneTable {
        &mut self.mixer
    }

    fn device(&self) -> &dyn Device {
        &self.sink
    }
}
