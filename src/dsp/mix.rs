//! Mixing: decode any client sample format, sum lanes, saturate into the slave's.
//!
//! Lanes hold the client's own frames; conversion happens here, while summing, so a client that
//! already matches the slave pays only a widening add. The accumulator is chosen by the slave
//! format so that one client alone is bit-exact:
//! - slaves of up to 16 bits sum in `i32` at 16-bit scale (64 lanes cannot overflow it);
//! - wider integer slaves sum in `i64` at 32-bit scale;
//! - float slaves sum in `f64`, which holds every `f32` and `i32` sample exactly.
//!
//! Saturation happens once, at the end, so a sum that overshoots and comes back is not clipped.

use super::format::{Format, Kind};
use super::gain::Ramp;

const S32_SCALE: f64 = 2147483648.0;

/// Round to nearest (ties to even) without a libm call: adding 1.5 * 2^52 leaves no
/// fraction bits. Inputs are clamped first so the trick holds; NaN stays NaN (and `as`
/// turns it into 0).
#[inline(always)]
fn round(x: f64) -> f64 {
    const MAGIC: f64 = 6755399441055744.0;
    const LIMIT: f64 = (1u64 << 50) as f64;
    let x = x.clamp(-LIMIT, LIMIT);
    (x + MAGIC) - MAGIC
}

/// An accumulator for one slave sample.
pub trait Acc: Copy + Default + Send + 'static {
    /// Adds an integer sample given at 32-bit scale.
    fn add_s32(&mut self, v: i32);
    /// Adds a float sample (full scale is ±1.0). NaN adds nothing.
    fn add_f64(&mut self, v: f64);
    /// The sum, saturated, at 32-bit scale.
    fn sat_s32(self) -> i32;
    /// The sum, clamped to ±1.0.
    fn clamp_f64(self) -> f64;
}

impl Acc for i32 {
    #[inline(always)]
    fn add_s32(&mut self, v: i32) {
        *self += v >> 16;
    }
    #[inline(always)]
    fn add_f64(&mut self, v: f64) {
        *self = self.saturating_add(round(v * 32768.0) as i32);
    }
    #[inline(always)]
    fn sat_s32(self) -> i32 {
        self.clamp(i16::MIN as i32, i16::MAX as i32) << 16
    }
    fn clamp_f64(self) -> f64 {
        self.sat_s32() as f64 / S32_SCALE
    }
}

impl Acc for i64 {
    #[inline(always)]
    fn add_s32(&mut self, v: i32) {
        *self += v as i64;
    }
    #[inline(always)]
    fn add_f64(&mut self, v: f64) {
        *self = self.saturating_add(round(v * S32_SCALE) as i64);
    }
    #[inline(always)]
    fn sat_s32(self) -> i32 {
        self.clamp(i32::MIN as i64, i32::MAX as i64) as i32
    }
    fn clamp_f64(self) -> f64 {
        self.sat_s32() as f64 / S32_SCALE
    }
}

impl Acc for f64 {
    #[inline(always)]
    fn add_s32(&mut self, v: i32) {
        *self += v as f64 / S32_SCALE;
    }
    #[inline(always)]
    fn add_f64(&mut self, v: f64) {
        if !v.is_nan() {
            *self += v;
        }
    }
    fn sat_s32(self) -> i32 {
        // `as` saturates and maps NaN to 0.
        round(self * S32_SCALE).clamp(i32::MIN as f64, i32::MAX as f64) as i32
    }
    fn clamp_f64(self) -> f64 {
        if self.is_nan() { 0.0 } else { self.clamp(-1.0, 1.0) }
    }
}

/// A float accumulator, used to decode a lane into plain samples (full scale ±1.0).
impl Acc for f32 {
    #[inline(always)]
    fn add_s32(&mut self, v: i32) {
        *self += v as f32 * (1.0 / S32_SCALE as f32);
    }
    #[inline(always)]
    fn add_f64(&mut self, v: f64) {
        if !v.is_nan() {
            *self += v as f32;
        }
    }
    fn sat_s32(self) -> i32 {
        (self as f64).sat_s32()
    }
    fn clamp_f64(self) -> f64 {
        (self as f64).clamp_f64()
    }
}

/// Decodes samples of `fmt` into floats (full scale ±1.0). NaN decodes as 0.
pub fn decode_f32(fmt: Format, src: &[u8], out: &mut [f32]) {
    let n = (src.len() / fmt.sample_bytes()).min(out.len());
    out[..n].fill(0.0);
    accumulate(fmt, &src[..n * fmt.sample_bytes()], &mut out[..n]);
}

#[inline(always)]
fn load_int<const BYTES: usize, const BIG: bool>(b: &[u8]) -> u32 {
    // The common widths as whole-word loads, which the compiler vectorises.
    match (BYTES, BIG) {
        (2, false) => return u16::from_le_bytes([b[0], b[1]]) as u32,
        (4, false) => return u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        (4, true) => return u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        _ => {}
    }
    let mut v = 0u32;
    for i in 0..BYTES {
        let byte = if BIG { b[i] } else { b[BYTES - 1 - i] };
        v = (v << 8) | byte as u32;
    }
    v
}

/// Decodes a stored integer sample to 32-bit scale.
#[inline(always)]
fn int_to_s32<const BYTES: usize, const BITS: u32, const UNSIGNED: bool, const BIG: bool>(b: &[u8]) -> i32 {
    let raw = load_int::<BYTES, BIG>(b);
    let v = (raw << (32 - BITS)) as i32;
    if UNSIGNED { v ^ i32::MIN } else { v }
}

fn add_ints<A: Acc, const BYTES: usize, const BITS: u32, const UNSIGNED: bool, const BIG: bool>(
    src: &[u8],
    acc: &mut [A],
) {
    for (a, s) in acc.iter_mut().zip(src.chunks_exact(BYTES)) {
        a.add_s32(int_to_s32::<BYTES, BITS, UNSIGNED, BIG>(s));
    }
}

fn add_floats<A: Acc, const BYTES: usize, const BIG: bool>(src: &[u8], acc: &mut [A]) {
    for (a, s) in acc.iter_mut().zip(src.chunks_exact(BYTES)) {
        let v = match (BYTES, BIG) {
            (4, false) => f32::from_le_bytes(s.try_into().unwrap()) as f64,
            (4, true) => f32::from_be_bytes(s.try_into().unwrap()) as f64,
            (_, false) => f64::from_le_bytes(s.try_into().unwrap()),
            (_, true) => f64::from_be_bytes(s.try_into().unwrap()),
        };
        a.add_f64(v);
    }
}

/// Adds the samples in `src` (format `fmt`, interleaved like `acc`) into `acc`, from its start.
pub fn accumulate<A: Acc>(fmt: Format, src: &[u8], acc: &mut [A]) {
    match fmt.kind {
        Kind::Int {
            bytes,
            bits,
            unsigned,
            big,
        } => match (bytes, bits, unsigned, big) {
            (1, 8, false, _) => add_ints::<A, 1, 8, false, false>(src, acc),
            (1, 8, true, _) => add_ints::<A, 1, 8, true, false>(src, acc),
            (2, 16, false, false) => add_ints::<A, 2, 16, false, false>(src, acc),
            (2, 16, false, true) => add_ints::<A, 2, 16, false, true>(src, acc),
            (2, 16, true, false) => add_ints::<A, 2, 16, true, false>(src, acc),
            (2, 16, true, true) => add_ints::<A, 2, 16, true, true>(src, acc),
            (3, 24, false, false) => add_ints::<A, 3, 24, false, false>(src, acc),
            (3, 24, false, true) => add_ints::<A, 3, 24, false, true>(src, acc),
            (3, 24, true, false) => add_ints::<A, 3, 24, true, false>(src, acc),
            (3, 24, true, true) => add_ints::<A, 3, 24, true, true>(src, acc),
            // 24 bits in 4 bytes: the top byte is padding and ignored.
            (4, 24, false, false) => add_ints::<A, 4, 24, false, false>(src, acc),
            (4, 24, false, true) => add_ints::<A, 4, 24, false, true>(src, acc),
            (4, 24, true, false) => add_ints::<A, 4, 24, true, false>(src, acc),
            (4, 24, true, true) => add_ints::<A, 4, 24, true, true>(src, acc),
            (4, 32, false, false) => add_ints::<A, 4, 32, false, false>(src, acc),
            (4, 32, false, true) => add_ints::<A, 4, 32, false, true>(src, acc),
            (4, 32, true, false) => add_ints::<A, 4, 32, true, false>(src, acc),
            (4, 32, true, true) => add_ints::<A, 4, 32, true, true>(src, acc),
            _ => unreachable!("format table holds no other integer layout"),
        },
        Kind::Float { bytes: 4, big: false } => add_floats::<A, 4, false>(src, acc),
        Kind::Float { bytes: 4, big: true } => add_floats::<A, 4, true>(src, acc),
        Kind::Float { big: false, .. } => add_floats::<A, 8, false>(src, acc),
        Kind::Float { big: true, .. } => add_floats::<A, 8, true>(src, acc),
    }
}

fn store_int(s: i32, bytes: usize, bits: u32, unsigned: bool, big: bool, out: &mut [u8]) {
    // Narrowing rounds to nearest (no half-LSB DC bias); a sum whose dropped bits are zero,
    // such as a lone client of the device's own width, passes unchanged.
    let s = if bits < 32 {
        let half = 1i64 << (31 - bits);
        (s as i64 + half).min(i32::MAX as i64) as i32 & !((half << 1) as i32 - 1)
    } else {
        s
    };
    let mut raw = (s as u32) >> (32 - bits);
    if unsigned {
        raw ^= 1 << (bits - 1);
    } else if bits < 32 && bytes == 4 && raw & (1 << (bits - 1)) != 0 {
        raw |= !0u32 << bits; // sign-extend into the padding byte
    }
    for (i, o) in out.iter_mut().enumerate().take(bytes) {
        let shift = if big { 8 * (bytes - 1 - i) } else { 8 * i };
        *o = (raw >> shift) as u8;
    }
}

/// Writes the saturated sums in `acc` into `out` in format `fmt`.
pub fn store<A: Acc>(acc: &[A], fmt: Format, out: &mut [u8]) {
    match fmt.kind {
        Kind::Int {
            bytes: 2,
            bits: 16,
            unsigned: false,
            big: false,
        } => {
            for (a, o) in acc.iter().zip(out.chunks_exact_mut(2)) {
                o.copy_from_slice(&((a.sat_s32() >> 16) as i16).to_le_bytes());
            }
        }
        Kind::Int {
            bytes: 4,
            bits: 32,
            unsigned: false,
            big: false,
        } => {
            for (a, o) in acc.iter().zip(out.chunks_exact_mut(4)) {
                o.copy_from_slice(&a.sat_s32().to_le_bytes());
            }
        }
        Kind::Int {
            bytes,
            bits,
            unsigned,
            big,
        } => {
            for (a, o) in acc.iter().zip(out.chunks_exact_mut(bytes as usize)) {
                store_int(a.sat_s32(), bytes as usize, bits as u32, unsigned, big, o);
            }
        }
        Kind::Float { bytes, big } => {
            for (a, o) in acc.iter().zip(out.chunks_exact_mut(bytes as usize)) {
                let v = a.clamp_f64();
                match (bytes, big) {
                    (4, false) => o.copy_from_slice(&(v as f32).to_le_bytes()),
                    (4, true) => o.copy_from_slice(&(v as f32).to_be_bytes()),
                    (_, false) => o.copy_from_slice(&v.to_le_bytes()),
                    (_, true) => o.copy_from_slice(&v.to_be_bytes()),
                }
            }
        }
    }
}

fn add_mapped<A: Acc>(frames: &[f32], in_ch: usize, matrix: &[f32], acc: &mut [A]) {
    let out_ch = matrix.len() / in_ch.max(1);
    for (inp, out) in frames.chunks_exact(in_ch).zip(acc.chunks_exact_mut(out_ch)) {
        for (row, a) in matrix.chunks_exact(in_ch).zip(out.iter_mut()) {
            let v: f32 = row.iter().zip(inp).map(|(g, x)| g * x).sum();
            a.add_f64(v as f64);
        }
    }
}

/// `f(acc, sample, gain)` for each sample of `src`, the gain that of its frame.
#[inline(always)]
fn scaled<A: Copy, B: Copy>(acc: &mut [A], src: &[B], ramp: Ramp, ch: usize, f: impl Fn(&mut A, B, f64)) {
    // A steady gain (a volume that is not moving, the common case) is one flat loop the
    // compiler vectorises; only a ramp needs the gain frame by frame.
    if ramp.from == ramp.to {
        let g = ramp.from;
        acc.iter_mut().zip(src).for_each(|(x, y)| f(x, *y, g));
        return;
    }
    for (i, (a, b)) in acc.chunks_exact_mut(ch).zip(src.chunks_exact(ch)).enumerate() {
        let g = ramp.frame(i);
        a.iter_mut().zip(b).for_each(|(x, y)| f(x, *y, g));
    }
}

#[inline(always)]
fn scale_in_place<A>(acc: &mut [A], ramp: Ramp, ch: usize, f: impl Fn(&mut A, f64)) {
    if ramp.from == ramp.to {
        let g = ramp.from;
        acc.iter_mut().for_each(|x| f(x, g));
        return;
    }
    for (i, a) in acc.chunks_exact_mut(ch).enumerate() {
        let g = ramp.frame(i);
        a.iter_mut().for_each(|x| f(x, g));
    }
}

enum Sums {
    Narrow(Vec<i32>),
    Wide(Vec<i64>),
    Float(Vec<f64>),
}

/// One period's mix for a slave format: clear, add lanes, store.
pub struct Mixer {
    out: Format,
    sums: Sums,
    len: usize,
}

impl Mixer {
    pub fn new(out: Format, samples: usize) -> Mixer {
        let sums = match out.kind {
            Kind::Float { .. } => Sums::Float(vec![0.0; samples]),
            Kind::Int { bits, .. } if bits <= 16 => Sums::Narrow(vec![0; samples]),
            Kind::Int { .. } => Sums::Wide(vec![0; samples]),
        };
        Mixer {
            out,
            sums,
            len: samples,
        }
    }

    /// Samples in the current mix.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn format(&self) -> Format {
        self.out
    }

    /// Starts a new mix of `samples` samples, all silent.
    pub fn clear(&mut self, samples: usize) {
        self.len = samples;
        match &mut self.sums {
            Sums::Narrow(v) => v.resize(samples, 0),
            Sums::Wide(v) => v.resize(samples, 0),
            Sums::Float(v) => v.resize(samples, 0.0),
        }
        match &mut self.sums {
            Sums::Narrow(v) => v.fill(0),
            Sums::Wide(v) => v.fill(0),
            Sums::Float(v) => v.fill(0.0),
        }
    }

    /// Adds samples of format `fmt` from the start of the mix. Extra samples are ignored.
    pub fn add(&mut self, fmt: Format, src: &[u8]) {
        let len = self.len;
        match &mut self.sums {
            Sums::Narrow(v) => accumulate(fmt, src, &mut v[..len]),
            Sums::Wide(v) => accumulate(fmt, src, &mut v[..len]),
            Sums::Float(v) => accumulate(fmt, src, &mut v[..len]),
        }
    }

    /// Adds float frames of `in_ch` channels through a gain matrix (`out_ch` rows of `in_ch`),
    /// from the start of the mix.
    pub fn add_mapped(&mut self, frames: &[f32], in_ch: usize, matrix: &[f32]) {
        let len = self.len;
        match &mut self.sums {
            Sums::Narrow(v) => add_mapped(frames, in_ch, matrix, &mut v[..len]),
            Sums::Wide(v) => add_mapped(frames, in_ch, matrix, &mut v[..len]),
            Sums::Float(v) => add_mapped(frames, in_ch, matrix, &mut v[..len]),
        }
    }

    /// Adds another mix for the same slave format (one lane's share of a period, kept so
    /// that it can be mixed again after a rewind). Integer sums saturate, so a hostile
    /// share cannot wrap the total.
    pub fn add_mix(&mut self, other: &Mixer) {
        let len = self.len.min(other.len);
        match (&mut self.sums, &other.sums) {
            (Sums::Narrow(a), Sums::Narrow(b)) => a[..len]
                .iter_mut()
                .zip(&b[..len])
                .for_each(|(x, y)| *x = x.saturating_add(*y)),
            (Sums::Wide(a), Sums::Wide(b)) => a[..len]
                .iter_mut()
                .zip(&b[..len])
                .for_each(|(x, y)| *x = x.saturating_add(*y)),
            (Sums::Float(a), Sums::Float(b)) => a[..len].iter_mut().zip(&b[..len]).for_each(|(x, y)| *x += *y),
            // Mixers of one pump share its slave format: no other pairing is ever made.
            _ => {}
        }
    }

    /// Adds another mix, as `add_mix` does, at a gain ramped over its frames of `channels`
    /// samples (`gain::Ramp`). A gain of at most 1 cannot wrap an integer sum; it rounds to
    /// the nearest step of the sum's scale.
    pub fn add_mix_gain(&mut self, other: &Mixer, ramp: Ramp, channels: usize) {
        if ramp.is_unity() {
            return self.add_mix(other);
        }
        let len = self.len.min(other.len);
        let ch = channels.max(1);
        match (&mut self.sums, &other.sums) {
            (Sums::Narrow(a), Sums::Narrow(b)) => scaled(&mut a[..len], &b[..len], ramp, ch, |x, y, g| {
                *x = x.saturating_add(round(y as f64 * g) as i32)
            }),
            (Sums::Wide(a), Sums::Wide(b)) => scaled(&mut a[..len], &b[..len], ramp, ch, |x, y, g| {
                *x = x.saturating_add(round(y as f64 * g) as i64)
            }),
            (Sums::Float(a), Sums::Float(b)) => scaled(&mut a[..len], &b[..len], ramp, ch, |x, y, g| *x += y * g),
            _ => {}
        }
    }

    /// Scales the whole mix by a gain ramped over its frames of `channels` samples: the
    /// master, applied to the sum once, before its one saturation, so a sum past full
    /// scale that the master brings back is not clipped.
    pub fn scale(&mut self, ramp: Ramp, channels: usize) {
        if ramp.is_unity() {
            return;
        }
        let len = self.len;
        let ch = channels.max(1);
        match &mut self.sums {
            Sums::Narrow(v) => scale_in_place(&mut v[..len], ramp, ch, |x, g| *x = round(*x as f64 * g) as i32),
            Sums::Wide(v) => scale_in_place(&mut v[..len], ramp, ch, |x, g| *x = round(*x as f64 * g) as i64),
            Sums::Float(v) => scale_in_place(&mut v[..len], ramp, ch, |x, g| *x *= g),
        }
    }

    /// Silences the first `samples` samples of the mix.
    pub fn silence_head(&mut self, samples: usize) {
        let n = samples.min(self.len);
        match &mut self.sums {
            Sums::Narrow(v) => v[..n].fill(0),
            Sums::Wide(v) => v[..n].fill(0),
            Sums::Float(v) => v[..n].fill(0.0),
        }
    }

    /// Writes the saturated mix into `out` (`samples * out.sample_bytes()` bytes).
    pub fn finish(&self, out: &mut [u8]) {
        match &self.sums {
            Sums::Narrow(v) => store(&v[..self.len], self.out, out),
            Sums::Wide(v) => store(&v[..self.len], self.out, out),
            Sums::Float(v) => store(&v[..self.len], self.out, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::FORMATS;
    use super::*;
    use alsa_sys as a;

    fn f(id: a::snd_pcm_format_t) -> Format {
        Format::lookup(id).unwrap()
    }

    fn mix(out: Format, lanes: &[(Format, Vec<u8>)], samples: usize) -> Vec<u8> {
        let mut m = Mixer::new(out, samples);
        m.clear(samples);
        for (fmt, b) in lanes {
            m.add(*fmt, b);
        }
        let mut o = vec![0u8; samples * out.sample_bytes()];
        m.finish(&mut o);
        o
    }

    fn s16(v: &[i16]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn s16_saturates_at_both_rails() {
        let s = f(a::SND_PCM_FORMAT_S16_LE);
        let out = mix(
            s,
            &[
                (s, s16(&[30000, -30000, 100, 32767, -32768])),
                (s, s16(&[30000, -30000, -300, 1, -1])),
            ],
            5,
        );
        assert_eq!(out, s16(&[32767, -32768, -200, 32767, -32768]));
    }

    #[test]
    fn saturation_is_applied_to_the_sum_not_per_lane() {
        let s = f(a::SND_PCM_FORMAT_S16_LE);
        let out = mix(s, &[(s, s16(&[30000])), (s, s16(&[30000])), (s, s16(&[-30000]))], 1);
        assert_eq!(out, s16(&[30000]));
    }

    #[test]
    fn silence_is_zero_in_every_format() {
        for fmt in FORMATS {
            let out = mix(*fmt, &[], 4);
            let mut expect = vec![0u8; 4 * fmt.sample_bytes()];
            store(&[0i64; 4], *fmt, &mut expect);
            assert_eq!(out, expect, "{}", fmt.name());
            if let Kind::Int { unsigned: false, .. } | Kind::Float { .. } = fmt.kind {
                assert!(out.iter().all(|b| *b == 0), "{}", fmt.name());
            }
        }
    }

    /// One lane of the slave's own format comes out bit-exact, for every format, including
    /// the extreme codes.
    #[test]
    fn single_lane_is_bit_exact_in_every_format() {
        for fmt in FORMATS {
            let n = 257;
            let bytes = fmt.sample_bytes();
            let mut src = vec![0u8; n * bytes];
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            for (i, s) in src.chunks_exact_mut(bytes).enumerate() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = match i {
                    0 => i32::MAX,
                    1 => i32::MIN,
                    _ => x as i32,
                };
                match fmt.kind {
                    Kind::Int {
                        bytes,
                        bits,
                        unsigned,
                        big,
                    } => store_int(v, bytes as usize, bits as u32, unsigned, big, s),
                    Kind::Float { .. } => {
                        let fv = [v as f64 / S32_SCALE, (x as f32 as f64) / 1e10];
                        store(&[fv[i % 2].clamp(-1.0, 1.0)], *fmt, s)
                    }
                }
            }
            let out = mix(*fmt, &[(*fmt, src.clone())], n);
            assert_eq!(out, src, "{}", fmt.name());
        }
    }

    #[test]
    fn widening_conversions_are_lossless() {
        let s16f = f(a::SND_PCM_FORMAT_S16_LE);
        let s32f = f(a::SND_PCM_FORMAT_S32_LE);
        let out = mix(s32f, &[(s16f, s16(&[1, -1, 32767, -32768]))], 4);
        let got: Vec<i32> = out
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(got, vec![1 << 16, -(1 << 16), 32767 << 16, -32768 << 16]);

        let s24 = f(a::SND_PCM_FORMAT_S24_LE);
        let src: Vec<u8> = [0x7fffffi32, -0x800000, 5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let out = mix(s32f, &[(s24, src)], 3);
        let got: Vec<i32> = out
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(got, vec![0x7fffff << 8, -0x800000 << 8, 5 << 8]);
    }

    #[test]
    fn float_lanes_saturate_and_ignore_nan() {
        let fl = f(a::SND_PCM_FORMAT_FLOAT_LE);
        let s = f(a::SND_PCM_FORMAT_S16_LE);
        let src: Vec<u8> = [0.5f32, 2.0, -2.0, f32::NAN, f32::INFINITY]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(mix(s, &[(fl, src.clone())], 5), s16(&[16384, 32767, -32768, 0, 32767]));
        let out = mix(fl, &[(fl, src)], 5);
        let got: Vec<f32> = out
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(got, vec![0.5, 1.0, -1.0, 0.0, 1.0]);
    }

    #[test]
    fn unsigned_and_big_endian_decode_to_the_same_value() {
        let s = f(a::SND_PCM_FORMAT_S16_LE);
        let u8f = f(a::SND_PCM_FORMAT_U8);
        let be = f(a::SND_PCM_FORMAT_S16_BE);
        let s24_3be = f(a::SND_PCM_FORMAT_S24_3BE);
        assert_eq!(mix(s, &[(u8f, vec![0x80, 0xff, 0x00])], 3), s16(&[0, 127 << 8, -32768]));
        assert_eq!(mix(s, &[(be, vec![0x12, 0x34])], 1), s16(&[0x1234]));
        assert_eq!(mix(s, &[(s24_3be, vec![0x12, 0x34, 0x56])], 1), s16(&[0x1234]));
    }

    #[test]
    fn many_lanes_do_not_overflow_the_accumulator() {
        let s32f = f(a::SND_PCM_FORMAT_S32_LE);
        let lanes: Vec<_> = (0..64).map(|_| (s32f, i32::MAX.to_le_bytes().to_vec())).collect();
        assert_eq!(mix(s32f, &lanes, 1), i32::MAX.to_le_bytes().to_vec());
        let s = f(a::SND_PCM_FORMAT_S16_LE);
        let lanes: Vec<_> = (0..64).map(|_| (s, s16(&[-32768]))).collect();
        assert_eq!(mix(s, &lanes, 1), s16(&[-32768]));
    }

    fn lane(out: Format, fmt: Format, b: &[u8]) -> Mixer {
        let n = b.len() / fmt.sample_bytes();
        let mut m = Mixer::new(out, n);
        m.clear(n);
        m.add(fmt, b);
        m
    }

    fn stored(m: &Mixer) -> Vec<u8> {
        let mut o = vec![0u8; m.len() * m.format().sample_bytes()];
        m.finish(&mut o);
        o
    }

    /// At unity a lane's share is added as it is, in every format: the bit-exact path.
    #[test]
    fn a_lane_at_unity_is_untouched_in_every_format() {
        for fmt in FORMATS.iter() {
            let n = 64;
            let src: Vec<u8> = (0..n * fmt.sample_bytes()).map(|i| (i * 37 + 11) as u8).collect();
            let share = lane(*fmt, *fmt, &src);
            let mut sum = Mixer::new(*fmt, n);
            sum.clear(n);
            sum.add_mix_gain(&share, Ramp::UNITY, 2);
            sum.scale(Ramp::UNITY, 2);
            assert_eq!(stored(&sum), stored(&share), "{}", fmt.name());
        }
    }

    /// A steady gain scales every sample, in each kind of sum, to within a step of its scale.
    #[test]
    fn a_steady_gain_scales_each_kind_of_sum() {
        let g = 0.5011872336272722; // -6 dB
        for id in [
            a::SND_PCM_FORMAT_S16_LE,
            a::SND_PCM_FORMAT_S32_LE,
            a::SND_PCM_FORMAT_FLOAT_LE,
        ] {
            let fmt = f(id);
            let share = lane(fmt, f(a::SND_PCM_FORMAT_S16_LE), &s16(&[20000, -20000, 1000, -7]));
            let mut sum = Mixer::new(fmt, 4);
            sum.clear(4);
            sum.add_mix_gain(&share, Ramp::at(g), 2);
            let mut back = vec![0f32; 4];
            decode_f32(fmt, &stored(&sum), &mut back);
            for (got, x) in back.iter().zip([20000.0f64, -20000.0, 1000.0, -7.0]) {
                let want = x * g / 32768.0;
                assert!(
                    (*got as f64 - want).abs() <= 0.5 / 32768.0 + 1e-9,
                    "{}: {got} for {want}",
                    fmt.name()
                );
            }
        }
    }

    /// The master scales the sum before its one saturation: two lanes that together pass
    /// full scale, halved, come back unclipped.
    #[test]
    fn the_master_is_applied_before_the_saturation() {
        let s = f(a::SND_PCM_FORMAT_S16_LE);
        let mut sum = Mixer::new(s, 2);
        sum.clear(2);
        sum.add(s, &s16(&[30000, -30000]));
        sum.add(s, &s16(&[30000, -30000]));
        sum.scale(Ramp::at(0.5), 2);
        assert_eq!(stored(&sum), s16(&[30000, -30000]));
    }

    /// A ramp moves each frame a little, both channels alike, and lands on its target.
    #[test]
    fn a_ramp_moves_by_frames_and_lands_on_its_target() {
        let s = f(a::SND_PCM_FORMAT_S16_LE);
        let share = lane(s, s, &s16(&[16384; 512]));
        let mut sum = Mixer::new(s, 512);
        sum.clear(512);
        sum.add_mix_gain(&share, Ramp::over(1.0, 0.5, 256), 2);
        let out: Vec<i16> = stored(&sum)
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(out[510..], [8192, 8192], "the last frame at the target");
        assert!(out.chunks_exact(2).all(|f| f[0] == f[1]), "both channels alike");
        let steps: Vec<i16> = out.chunks_exact(2).map(|f| f[0]).collect();
        assert!(
            steps.windows(2).all(|w| (0..=33).contains(&(w[0] - w[1]))),
            "no step larger than the ramp's"
        );
    }
}
