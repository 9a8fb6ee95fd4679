//! Per-lane conversion for clients that do not match the device: rate (rubato's synchronous
//! FFT resampler), channel layout (a gain matrix from channel positions) and sample format.
//! [`Converter`] takes a playback lane to the device; [`Tap`] takes a captured device period
//! to a capture lane, with the same kinds of conversion the other way round.
//!
//! Conversion runs in the pump, per lane, so lanes stay the client's own frames: positions,
//! rewind and delay are exact in client frames, and a client that matches the device takes
//! the plain integer path in `mix` and pays nothing here.
//!
//! Why rubato's `Fft`: the ratio is fixed for a lane's life, and the FFT resampler gives
//! the quality of a long sinc filter at a fraction of the CPU (see BENCHMARKS.md and the
//! quality tests below: THD+N and passband are measured, not assumed).

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler, WindowFunction};

use super::format::Format;
use super::gain::Glide;
use super::mix::{Mixer, decode_f32};
use crate::error::{Error, Result};

/// Client rates rdmix converts from.
pub const MIN_RATE: u32 = 8000;
pub const MAX_RATE: u32 = 192_000;
/// Client channel counts rdmix maps.
pub const MAX_CHANNELS: u32 = 8;

/// Device frames a resampler block should yield, about: small enough that a lane is taken
/// barely ahead of the device (a just-in-time writer keeps only a few ms queued), large
/// enough for a good anti-aliasing filter.
const BLOCK_OUT: usize = 256;

/// Converts one lane's frames into device periods and adds them to the mix.
///
/// The resampler runs block by block on fixed input, and what a block yields beyond the
/// period waits in `fifo` for the next one. The fifo starts a block full of silence, so a
/// period's frames are taken from the lane no sooner than a matching lane's would be: a
/// block's input is whole only a block after its first frame, and a just-in-time writer
/// (ffmpeg -re keeps a few ms queued) underran at every packet without that lead. The lead
/// is one block of latency (6.7 ms at 44.1 kHz), counted in `delay_frames`. Run on fixed
/// output instead, rubato's FFT resampler took 294 frames four periods in five and none in
/// the fifth, up to 10 ms ahead of the device.
pub struct Converter {
    format: Format,
    in_ch: usize,
    period: usize,
    matrix: Vec<f32>,
    resampler: Option<Fft<f32>>,
    /// Client frames a resampler block takes, and device frames it yields.
    block_in: usize,
    block_out: usize,
    input: Vec<f32>,
    /// Resampled frames not yet mixed (`fifo_frames` of them), then room for a block.
    fifo: Vec<f32>,
    fifo_frames: usize,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Converter {
    pub fn new(
        format: Format,
        in_rate: u32,
        in_ch: usize,
        out_rate: u32,
        period: usize,
        matrix: Vec<f32>,
    ) -> Result<Converter> {
        let (resampler, block_in, block_out) = if in_rate == out_rate {
            (None, period, period)
        } else {
            let r = block_resampler(in_rate as usize, out_rate as usize, in_ch)?;
            let (bi, bo) = (r.input_frames_max(), r.output_frames_max());
            (Some(r), bi, bo)
        };
        let blocks = period.div_ceil(block_out) + 1;
        Ok(Converter {
            format,
            in_ch,
            period,
            matrix,
            resampler,
            block_in,
            block_out,
            input: vec![0.0; blocks * block_in.max(period) * in_ch],
            fifo: vec![0.0; (period + block_out) * in_ch],
            fifo_frames: if in_rate == out_rate { 0 } else { block_out },
        })
    }

    /// Forgets all history, as for a freshly prepared stream.
    pub fn reset(&mut self) {
        if let Some(r) = &mut self.resampler {
            r.reset();
            self.fifo_frames = self.block_out;
            self.fifo.fill(0.0);
        }
    }

    /// Client frames the next period needs: whole blocks, as few as fill the period.
    pub fn input_frames_next(&self) -> usize {
        if self.resampler.is_none() {
            return self.period;
        }
        self.period.saturating_sub(self.fifo_frames).div_ceil(self.block_out) * self.block_in
    }

    /// Device frames between a client frame entering the converter and being mixed: the
    /// resampler's own delay and the block of silence that leads the fifo.
    pub fn delay_frames(&self) -> usize {
        self.resampler.as_ref().map_or(0, |r| r.output_delay() + self.block_out)
    }

    /// Converts the next period from `src` (up to `input_frames_next()` client frames;
    /// missing frames are silence) and adds it to `mix`.
    pub fn process(&mut self, src: &[u8], mix: &mut Mixer) {
        let ch = self.in_ch;
        let need = self.input_frames_next();
        let samples = need * ch;
        decode_f32(self.format, src, &mut self.input[..samples]);
        let have = (src.len() / self.format.sample_bytes()).min(samples);
        self.input[have..samples].fill(0.0);
        let Some(r) = &mut self.resampler else {
            mix.add_mapped(&self.input[..samples], ch, &self.matrix);
            return;
        };
        for block in self.input[..samples].chunks_exact(self.block_in * ch) {
            let at = self.fifo_frames * ch;
            let room = &mut self.fifo[at..at + self.block_out * ch];
            let inp = InterleavedSlice::new(block, ch, self.block_in).expect("sized above");
            let mut out = InterleavedSlice::new_mut(room, ch, self.block_out).expect("sized above");
            // Buffers are sized from the resampler's own figures, so this cannot fail; if
            // it ever did, the block is silent for this lane rather than garbage.
            let got = match r.process_into_buffer(&inp, &mut out, None) {
                Ok((_, got)) => got.min(self.block_out),
                Err(_) => 0,
            };
            self.fifo[at + got * ch..at + self.block_out * ch].fill(0.0);
            self.fifo_frames += self.block_out;
        }
        let period = self.period * ch;
        mix.add_mapped(&self.fifo[..period], ch, &self.matrix);
        self.fifo.copy_within(period..self.fifo_frames * ch, 0);
        self.fifo_frames -= self.period;
    }
}

/// rubato's FFT resampler in its smallest valid blocks (`rate / gcd` frames on each side),
/// repeated until a block yields about `BLOCK_OUT` device frames.
fn block_resampler(in_rate: usize, out_rate: usize, ch: usize) -> Result<Fft<f32>> {
    let g = gcd(in_rate, out_rate);
    let (min_in, min_out) = (in_rate / g, out_rate / g);
    let chunk = min_in * BLOCK_OUT.div_ceil(min_out).max(1);
    Fft::<f32>::new_custom(
        in_rate,
        out_rate,
        chunk,
        1,
        ch,
        WindowFunction::BlackmanHarris2,
        FixedSync::Input,
    )
    .map_err(|e| {
        Error::new(
            libc::EINVAL,
            format!("rdmix: hw_params: no resampler for {in_rate} -> {out_rate} Hz: {e}"),
        )
    })
}

/// Turns captured device periods into one capture client's frames.
///
/// A client that matches the device in rate and channel layout takes the plain path: the
/// mixer's integer accumulator for its format, which passes the device's samples bit-exact
/// when the formats match too. Anything else is decoded to float, resampled at the device's
/// channel count, mapped to the client's channels and stored in its format.
pub struct Tap {
    device: Format,
    dev_ch: usize,
    client_ch: usize,
    client_bytes: usize,
    period: usize,
    /// `None` on the plain path.
    matrix: Option<Vec<f32>>,
    resampler: Option<Fft<f32>>,
    input: Vec<f32>,
    output: Vec<f32>,
    mix: Mixer,
    out: Vec<u8>,
}

/// One end of a conversion: a sample format, a rate and a channel count.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub format: Format,
    pub rate: u32,
    pub channels: usize,
}

impl Tap {
    /// Takes periods of `period` frames from `device` to `client`. `matrix` has a row of
    /// device-channel gains per client channel; `None` when the layouts match.
    pub fn new(device: Layout, period: usize, client: Layout, matrix: Option<Vec<f32>>) -> Result<Tap> {
        let (dev_rate, dev_ch, client_rate, client_ch) = (device.rate, device.channels, client.rate, client.channels);
        let (device, client) = (device.format, client.format);
        let resampler = if dev_rate == client_rate {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    dev_rate as usize,
                    client_rate as usize,
                    period,
                    dev_ch,
                    FixedSync::Input,
                )
                .map_err(|e| {
                    Error::new(
                        libc::EINVAL,
                        format!("rdmix: hw_params: no resampler for {dev_rate} -> {client_rate} Hz: {e}"),
                    )
                })?,
            )
        };
        let matrix = match (matrix, &resampler) {
            (None, Some(_)) => Some(identity(dev_ch)),
            (m, _) => m,
        };
        let max_out = resampler.as_ref().map_or(period, |r| r.output_frames_max());
        Ok(Tap {
            device,
            dev_ch,
            client_ch,
            client_bytes: client.sample_bytes(),
            period,
            matrix,
            resampler,
            input: vec![0.0; period * dev_ch],
            output: vec![0.0; max_out * dev_ch],
            mix: Mixer::new(client, max_out * client_ch),
            out: vec![0; max_out * client_ch * client.sample_bytes()],
        })
    }

    /// The most client frames one device period can give.
    pub fn max_frames(&self) -> usize {
        self.resampler.as_ref().map_or(self.period, |r| r.output_frames_max())
    }

    /// Client frames between a device frame entering and leaving the resampler.
    pub fn delay_frames(&self) -> usize {
        self.resampler.as_ref().map_or(0, |r| r.output_delay())
    }

    /// Forgets all history, as for a freshly prepared stream.
    pub fn reset(&mut self) {
        if let Some(r) = &mut self.resampler {
            r.reset();
        }
    }

    /// Converts one device period (`period` frames of the device's format) into the client's
    /// frames, at full volume.
    pub fn process(&mut self, src: &[u8]) -> &[u8] {
        self.process_at(src, &mut Glide::default(), 1.0)
    }

    /// The same at a volume: `glide` moves toward `target` over the period's client frames.
    /// At 1 the samples pass untouched (the plain path stays bit-exact).
    pub fn process_at(&mut self, src: &[u8], glide: &mut Glide, target: f64) -> &[u8] {
        let Some(matrix) = &self.matrix else {
            let samples = self.period * self.client_ch;
            self.mix.clear(samples);
            self.mix.add(self.device, src);
            self.mix.scale(glide.next(target, self.period, 0), self.client_ch);
            self.mix.finish(&mut self.out[..samples * self.client_bytes]);
            return &self.out[..samples * self.client_bytes];
        };
        let samples = self.period * self.dev_ch;
        decode_f32(self.device, src, &mut self.input[..samples]);
        let (frames, n) = match &mut self.resampler {
            None => (&self.input[..samples], self.period),
            Some(r) => {
                let n = r.output_frames_next();
                let inp = InterleavedSlice::new(&self.input[..samples], self.dev_ch, self.period).expect("sized above");
                let mut out = InterleavedSlice::new_mut(&mut self.output[..n * self.dev_ch], self.dev_ch, n)
                    .expect("sized above");
                // Sized from the resampler's own figures, so this cannot fail; if it ever
                // did, the client gets silence for the period rather than garbage.
                let n = match r.process_into_buffer(&inp, &mut out, None) {
                    Ok((_, got)) => got.min(n),
                    Err(_) => {
                        self.output[..n * self.dev_ch].fill(0.0);
                        n
                    }
                };
                (&self.output[..n * self.dev_ch], n)
            }
        };
        let samples = n * self.client_ch;
        self.mix.clear(samples);
        self.mix.add_mapped(frames, self.dev_ch, matrix);
        self.mix.scale(glide.next(target, n, 0), self.client_ch);
        self.mix.finish(&mut self.out[..samples * self.client_bytes]);
        &self.out[..samples * self.client_bytes]
    }
}

/// Each channel to itself.
fn identity(ch: usize) -> Vec<f32> {
    (0..ch * ch).map(|i| if i / ch == i % ch { 1.0 } else { 0.0 }).collect()
}

#[cfg(test)]
#[allow(dead_code)]
#[path = "../../tests/common/measure.rs"]
mod measure;

#[cfg(test)]
mod tests {
    use super::measure;
    use super::*;
    use alsa_sys::*;

    fn s16() -> Format {
        Format::lookup(SND_PCM_FORMAT_S16_LE).unwrap()
    }

    /// Runs a mono float signal through a converter into a FLOAT mono device; returns the output.
    fn resample(input: &[f32], in_rate: u32, out_rate: u32) -> (Vec<f32>, usize) {
        let fl = Format::lookup(SND_PCM_FORMAT_FLOAT_LE).unwrap();
        let period = 256;
        let mut c = Converter::new(fl, in_rate, 1, out_rate, period, vec![1.0]).unwrap();
        let mut mix = Mixer::new(fl, period);
        let mut out = Vec::new();
        let mut pos = 0;
        let mut bytes = vec![0u8; period * 4];
        while pos < input.len() {
            let need = c.input_frames_next();
            let end = (pos + need).min(input.len());
            let src: Vec<u8> = input[pos..end].iter().flat_map(|v| v.to_le_bytes()).collect();
            mix.clear(period);
            c.process(&src, &mut mix);
            mix.finish(&mut bytes);
            out.extend(bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())));
            pos = end;
        }
        (out, c.delay_frames())
    }

    /// Least-squares fit of a sine at `f`: (amplitude, residual RMS).
    fn fit(x: &[f64], f: f64, rate: f64) -> (f64, f64) {
        measure::sine_and_residual(x, f, rate)
    }

    fn tone(f: f64, rate: u32, secs: f64, amp: f64) -> Vec<f32> {
        (0..(rate as f64 * secs) as usize)
            .map(|n| (amp * (2.0 * std::f64::consts::PI * f * n as f64 / rate as f64).sin()) as f32)
            .collect()
    }

    /// THD+N of a 1 kHz tone resampled 44.1 -> 48 kHz, measured in float (the mixer's own
    /// precision); the device format's quantisation is a separate, known floor.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn resampling_44k1_to_48k_keeps_thd_n_below_minus_90_db() {
        let (out, delay) = resample(&tone(1000.0, 44100, 1.0, 0.5), 44100, 48000);
        let steady: Vec<f64> = out[delay + 4800..out.len() - 4800].iter().map(|v| *v as f64).collect();
        let (amp, resid) = fit(&steady, 1000.0, 48000.0);
        let thd_n = 20.0 * (resid / (amp / 2f64.sqrt())).log10();
        eprintln!(
            "MEASURE resampler 44.1->48 kHz, 1 kHz: amplitude {amp:.6}, THD+N {thd_n:.1} dB, delay {delay} frames"
        );
        assert!((amp - 0.5).abs() < 0.005, "level kept: {amp}");
        assert!(thd_n < -90.0, "THD+N {thd_n:.1} dB");
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn passband_is_flat_to_20_khz() {
        let mut worst: f64 = 0.0;
        for f in [20.0, 100.0, 1000.0, 5000.0, 10000.0, 15000.0, 18000.0, 19000.0, 20000.0] {
            let (out, delay) = resample(&tone(f, 44100, 0.5, 0.5), 44100, 48000);
            let steady: Vec<f64> = out[delay + 2400..out.len() - 2400].iter().map(|v| *v as f64).collect();
            let (amp, _) = fit(&steady, f, 48000.0);
            let db = 20.0 * (amp / 0.5).log10();
            worst = worst.max(db.abs());
            assert!(db.abs() < 0.1, "{f} Hz: {db:.3} dB");
        }
        eprintln!("MEASURE resampler 44.1->48 kHz passband 20 Hz..20 kHz: worst deviation {worst:.4} dB");
    }

    #[test]
    fn matching_rate_only_maps_channels() {
        let mut c = Converter::new(s16(), 48000, 1, 48000, 4, vec![1.0, 1.0]).unwrap();
        assert_eq!(c.input_frames_next(), 4);
        let mut mix = Mixer::new(s16(), 8);
        mix.clear(8);
        let src: Vec<u8> = [1000i16, -2000, 3000, 32767]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        c.process(&src[..6], &mut mix); // three frames; the fourth is missing and silent
        let mut out = vec![0u8; 16];
        mix.finish(&mut out);
        let got: Vec<i16> = out.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        assert_eq!(got, vec![1000, 1000, -2000, -2000, 3000, 3000, 0, 0]);
    }

    #[test]
    fn a_matching_capture_client_gets_the_device_samples_bit_exact() {
        let src: Vec<u8> = [1i16, -2, 32767, -32768, 5, 6]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let lay = |format, rate, channels| Layout { format, rate, channels };
        let mut t = Tap::new(lay(s16(), 48000, 2), 3, lay(s16(), 48000, 2), None).unwrap();
        assert_eq!(t.process(&src), &src[..]);
        let s32 = Format::lookup(SND_PCM_FORMAT_S32_LE).unwrap();
        let mut t = Tap::new(lay(s16(), 48000, 2), 3, lay(s32, 48000, 2), None).unwrap();
        let got: Vec<i32> = t
            .process(&src)
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(got, vec![1 << 16, -2 << 16, 32767 << 16, i32::MIN, 5 << 16, 6 << 16]);
    }

    #[test]
    fn a_mono_capture_client_hears_both_sides() {
        let src: Vec<u8> = [1000i16, 3000, -2000, -4000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let m = super::super::chmap::matrix(
            &super::super::chmap::standard_map(2),
            &super::super::chmap::standard_map(1),
        );
        let (dev, client) = (
            Layout {
                format: s16(),
                rate: 48000,
                channels: 2,
            },
            Layout {
                format: s16(),
                rate: 48000,
                channels: 1,
            },
        );
        let mut t = Tap::new(dev, 2, client, Some(m)).unwrap();
        let got: Vec<i16> = t
            .process(&src)
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(got, vec![2000, -3000]);
    }

    /// A 1 kHz tone captured at 48 kHz reaches a 44.1 kHz client at its level and pitch, and
    /// the client frames add up to the rate ratio.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_resampled_capture_keeps_level_and_pitch() {
        let fl = Format::lookup(SND_PCM_FORMAT_FLOAT_LE).unwrap();
        let input = tone(1000.0, 48000, 1.0, 0.5);
        let period = 240;
        let (dev, client) = (
            Layout {
                format: fl,
                rate: 48000,
                channels: 1,
            },
            Layout {
                format: fl,
                rate: 44100,
                channels: 1,
            },
        );
        let mut t = Tap::new(dev, period, client, None).unwrap();
        let mut out = Vec::new();
        for chunk in input.chunks_exact(period) {
            let src: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
            out.extend(
                t.process(&src)
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64),
            );
        }
        assert!(
            (out.len() as i64 - 44100).abs() <= t.max_frames() as i64,
            "{} frames",
            out.len()
        );
        let delay = t.delay_frames();
        let (amp, resid) = fit(&out[delay + 4410..out.len() - 4410], 1000.0, 44100.0);
        assert!((amp - 0.5).abs() < 0.005, "level kept: {amp}");
        assert!(resid < 0.5e-3, "residual {resid}");
    }
}
