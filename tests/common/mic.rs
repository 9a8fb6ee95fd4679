//! The test device's capture signal, as a recording proves it: channel 0 counts frames
//! (modulo 65536, as 16-bit samples), every other channel carries a 1 kHz sine at half
//! scale (see `tests/fakedev`).

use std::path::Path;

/// The tone on channels 1 and up.
pub const TONE_HZ: f64 = 1000.0;
pub const TONE_AMP: f64 = 0.5;

/// Where the counter on channel 0 does not go up by exactly one: every frame lost, repeated
/// or out of order shows here.
/// Channel 0 of S16 stereo frames: the test device's frame counter.
#[allow(dead_code)]
pub fn s16_counter(b: &[u8]) -> Vec<i16> {
    b.chunks_exact(4).map(|f| i16::from_le_bytes([f[0], f[1]])).collect()
}

pub fn counter_breaks(ch0: &[i16]) -> Vec<usize> {
    (1..ch0.len())
        .filter(|&i| (ch0[i] as u16).wrapping_sub(ch0[i - 1] as u16) != 1)
        .collect()
}

/// A WAV file's format and data, found by walking its chunks (sox writes an extensible
/// header, arecord the plain one).
pub struct Wav {
    pub channels: usize,
    pub rate: u32,
    pub bits: u16,
    pub float: bool,
    pub data: Vec<u8>,
}

pub fn read_wav(path: &Path) -> Wav {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WAVE",
        "{} is no WAV",
        path.display()
    );
    let (mut i, mut w) = (12, None);
    let mut fmt = (0usize, 0u32, 0u16, false);
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let size = u32::from_le_bytes(b[i + 4..i + 8].try_into().unwrap()) as usize;
        let body = &b[i + 8..(i + 8 + size).min(b.len())];
        if id == b"fmt " {
            let tag = u16::from_le_bytes([body[0], body[1]]);
            let sub = if tag == 0xfffe && body.len() >= 26 {
                u16::from_le_bytes([body[24], body[25]])
            } else {
                tag
            };
            fmt = (
                u16::from_le_bytes([body[2], body[3]]) as usize,
                u32::from_le_bytes(body[4..8].try_into().unwrap()),
                u16::from_le_bytes([body[14], body[15]]),
                sub == 3,
            );
        }
        if id == b"data" {
            w = Some(body.to_vec());
        }
        i += 8 + size + (size & 1);
    }
    Wav {
        channels: fmt.0,
        rate: fmt.1,
        bits: fmt.2,
        float: fmt.3,
        data: w.expect("a data chunk"),
    }
}

impl Wav {
    /// Channel `ch` as floats (full scale ±1.0).
    pub fn channel(&self, ch: usize) -> Vec<f64> {
        let sb = self.bits as usize / 8;
        self.data
            .chunks_exact(sb * self.channels)
            .map(|f| {
                let s = &f[ch * sb..ch * sb + sb];
                match (sb, self.float) {
                    (2, _) => i16::from_le_bytes([s[0], s[1]]) as f64 / 32768.0,
                    (3, _) => (i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8) as f64 / 8388608.0,
                    (4, false) => i32::from_le_bytes(s.try_into().unwrap()) as f64 / 2147483648.0,
                    (4, true) => f32::from_le_bytes(s.try_into().unwrap()) as f64,
                    (1, _) => (s[0] as f64 - 128.0) / 128.0,
                    _ => panic!("{} bits", self.bits),
                }
            })
            .collect()
    }

    /// Channel 0 as the 16-bit counter it carries.
    pub fn counter(&self) -> Vec<i16> {
        self.channel(0).iter().map(|v| (v * 32768.0).round() as i16).collect()
    }
}

/// The tone's amplitude and the residual RMS of `x` (a channel at `rate`), past the first
/// `skip` frames (a resampler's start-up).
pub fn tone(x: &[f64], rate: u32, skip: usize) -> (f64, f64) {
    super::sine_and_residual(&x[skip.min(x.len())..], TONE_HZ, rate as f64)
}
