//! Volume: a level per lane and a master, as a mixer control sets them, and the gain the
//! mix applies for them.
//!
//! A level is a step on a dB scale, as ALSA's `TLV_DB_SCALE` describes it: step 0 is
//! silence, and each step above it is 0.25 dB, up to 0 dB at `STEPS`. There is no boost:
//! at 100% a lane is mixed exactly as before, on the integer path, bit for bit. A change is
//! ramped linearly over one period, so that it makes no zipper noise.

/// The highest step: 0 dB.
pub const STEPS: u32 = 240;
/// dB per step, in hundredths (as the TLV gives it).
pub const STEP_CDB: i32 = 25;
/// The dB of step 0, in hundredths, were it not silence: the bottom of the scale.
pub const MIN_CDB: i32 = -(STEPS as i32) * STEP_CDB;

/// One volume control: a level and a switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Volume {
    /// 0 (silence) to `STEPS` (0 dB).
    pub step: u32,
    pub on: bool,
}

impl Default for Volume {
    fn default() -> Volume {
        Volume { step: STEPS, on: true }
    }
}

impl Volume {
    /// The level nearest `cdb` hundredths of a dB (clamped to the scale).
    pub fn from_cdb(cdb: i32, on: bool) -> Volume {
        let steps = (cdb.clamp(MIN_CDB, 0) - MIN_CDB + STEP_CDB / 2) / STEP_CDB;
        Volume { step: steps as u32, on }
    }

    /// The level in hundredths of a dB; `None` for silence (step 0).
    pub fn cdb(self) -> Option<i32> {
        (self.step > 0).then(|| MIN_CDB + self.step.min(STEPS) as i32 * STEP_CDB)
    }

    /// The linear gain: 1.0 exactly at 0 dB and switched on, 0.0 when off or at step 0.
    pub fn gain(self) -> f64 {
        match (self.on, self.cdb()) {
            (false, _) | (_, None) => 0.0,
            (true, Some(0)) => 1.0,
            (true, Some(cdb)) => 10f64.powf(cdb as f64 / 2000.0),
        }
    }

    /// Whether the mix may leave the samples untouched.
    pub fn is_unity(self) -> bool {
        self.gain() == 1.0
    }
}

/// The gain a lane (or the master) is applied at over one period: where the last period
/// left it (`from`), where the control wants it (`to`), and how far it moves each frame
/// (`step`), so that a change takes one period, whether it starts at a period's first
/// frame or in the middle of one.
///
/// `start` frames of the period stay at `from` before it moves: after a rewind into the
/// middle of a period, the slave plays its first frames as it had them, and the ramp must
/// begin where the new mix does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ramp {
    pub from: f64,
    pub to: f64,
    pub step: f64,
    pub start: usize,
}

impl Ramp {
    pub const UNITY: Ramp = Ramp::at(1.0);

    /// Steady at `g`.
    pub const fn at(g: f64) -> Ramp {
        Ramp {
            from: g,
            to: g,
            step: 0.0,
            start: 0,
        }
    }

    /// From `from` to `to` over `frames` frames.
    pub fn over(from: f64, to: f64, frames: usize) -> Ramp {
        Ramp {
            from,
            to,
            step: (to - from) / frames.max(1) as f64,
            start: 0,
        }
    }

    /// Whether the samples pass untouched: steady at exactly 1.
    pub fn is_unity(self) -> bool {
        self.from == 1.0 && self.to == 1.0
    }

    /// The gain of frame `i`: `step` a frame from `start` on, until it reaches `to`.
    #[inline(always)]
    pub fn frame(self, i: usize) -> f64 {
        if self.from == self.to || i < self.start {
            return self.from;
        }
        let g = self.from + self.step * (i + 1 - self.start) as f64;
        if self.to > self.from {
            g.min(self.to)
        } else {
            g.max(self.to)
        }
    }
}

/// Where a gain is heading, kept from period to period: the ramp toward a new target is
/// set when the target is first seen, and a period takes up where the last left off.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Glide {
    /// The gain at the end of the last period mixed; `None` before the first.
    pub at: Option<f64>,
    to: f64,
    step: f64,
}

impl Glide {
    /// This period's ramp toward `target`, over `frames` frames from wherever it starts,
    /// with `start` frames held first; the glide moves to its end.
    pub fn next(&mut self, target: f64, frames: usize, start: usize) -> Ramp {
        let from = self.at.unwrap_or(target);
        if from == target {
            (self.at, self.to, self.step) = (Some(target), target, 0.0);
            return Ramp::at(target);
        }
        if target != self.to || self.step == 0.0 {
            self.to = target;
            self.step = (target - from) / frames.max(1) as f64;
        }
        let ramp = Ramp {
            from,
            to: target,
            step: self.step,
            start,
        };
        self.at = Some(ramp.frame(frames.saturating_sub(1)));
        ramp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_runs_from_silence_to_unity_in_quarter_decibels() {
        assert_eq!(Volume::default().gain(), 1.0);
        assert!(Volume::default().is_unity());
        assert_eq!(Volume { step: 0, on: true }.gain(), 0.0);
        assert_eq!(Volume { step: STEPS, on: false }.gain(), 0.0);
        let half = Volume::from_cdb(-602, true);
        assert_eq!(half.cdb(), Some(-600), "the nearest quarter dB");
        assert!((half.gain() - 0.501187).abs() < 1e-6);
        assert_eq!(Volume::from_cdb(-10_000, true).step, 0, "below the scale is its bottom");
        assert_eq!(Volume::from_cdb(600, true).step, STEPS, "no boost");
        for step in 0..=STEPS {
            let v = Volume { step, on: true };
            assert_eq!(v.cdb().map_or(0, |c| Volume::from_cdb(c, true).step), step);
        }
    }

    #[test]
    fn a_ramp_reaches_its_target_at_the_last_frame() {
        let r = Ramp::over(1.0, 0.5, 256);
        assert_eq!(r.frame(255), 0.5);
        assert!((r.frame(0) - (1.0 - 0.5 / 256.0)).abs() < 1e-12);
        let steps: Vec<f64> = (0..256).map(|i| r.frame(i)).collect();
        assert!(steps.windows(2).all(|w| w[1] < w[0]), "monotonic");
        assert_eq!(Ramp::at(0.25).frame(3), 0.25);
        assert!(Ramp::UNITY.is_unity() && !r.is_unity());
        let late = Ramp { start: 100, ..r };
        assert_eq!(late.frame(99), 1.0, "held until the new mix begins");
        assert!(
            (late.frame(100) - (1.0 - 0.5 / 256.0)).abs() < 1e-12,
            "then moving at the same pace"
        );
    }

    /// A change begun in the middle of a period takes a whole period: the next one goes on
    /// from where it left off, at the same pace, and stops at the target.
    #[test]
    fn a_glide_takes_one_period_wherever_it_begins() {
        let mut g = Glide::default();
        assert_eq!(
            g.next(1.0, 256, 0),
            Ramp::at(1.0),
            "the first period starts at its volume"
        );
        let first = g.next(0.5, 256, 192);
        assert_eq!(first.frame(191), 1.0);
        let mid = g.at.unwrap();
        assert!(
            (mid - (1.0 - 0.5 * 64.0 / 256.0)).abs() < 1e-12,
            "a quarter of the way: {mid}"
        );
        let second = g.next(0.5, 256, 0);
        assert_eq!(second.from, mid);
        assert_eq!(second.frame(191), 0.5, "the whole change took 256 frames");
        assert_eq!(second.frame(255), 0.5);
        assert_eq!(g.next(0.5, 256, 0), Ramp::at(0.5), "and then holds");
    }
}
