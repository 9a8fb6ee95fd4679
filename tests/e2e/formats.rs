//! Any format, rate and channel layout, through real alsa-lib into the 48 kHz stereo S16
//! test device. Each client channel carries its own sine; the recording is fitted with
//! every expected component, which must come out at the level the standard channel mapping
//! gives, with no clipping and no dropouts (a small residual after the fit).
//!
//! The quick run covers every format, every rate and every layout at least once;
//! `RDMIX_FULL=1` runs the whole product (22 formats x 5 rates x 3 layouts).

#[path = "../common/mod.rs"]
mod common;

use alsa_sys as a;
use asound_module_pcm_rdmix::dsp::chmap::{matrix, standard_map};
use asound_module_pcm_rdmix::dsp::format::{FORMATS, Format};
use asound_module_pcm_rdmix::dsp::mix::store;
use common::alsa::{Params, Pcm, rec_path};
use common::*;

const RATES: [u32; 5] = [8000, 22050, 44100, 48000, 96000];
const LAYOUTS: [u32; 3] = [1, 2, 6];
const AMP: f64 = 0.25;

fn freq(c: usize) -> f64 {
    300.0 + 150.0 * c as f64
}

/// Encodes `secs` of the test signal for `channels` at `rate` in `fmt`.
fn signal(fmt: Format, rate: u32, channels: u32, secs: f64) -> Vec<u8> {
    let frames = (rate as f64 * secs) as usize;
    let sb = fmt.sample_bytes();
    let mut out = vec![0u8; frames * channels as usize * sb];
    for n in 0..frames {
        for c in 0..channels as usize {
            let v = AMP * (2.0 * std::f64::consts::PI * freq(c) * n as f64 / rate as f64).sin();
            let at = (n * channels as usize + c) * sb;
            store(&[v], fmt, &mut out[at..at + sb]);
        }
    }
    out
}

/// Plays one combination through set `set` and checks the recording.
const UNDERRUN: &str = "writei: underrun (EPIPE)";

fn check(set: u32, fmt: Format, rate: u32, channels: u32) -> Result<String, String> {
    let secs = 0.4;
    let p = Pcm::open(&format!("mix{set}"), false).map_err(|e| format!("open {e}"))?;
    // Measured after the open: a new pump re-opens the device, which starts a new recording.
    let before = read_rec_s16(&rec_path(set)).len();
    p.set_params(Params {
        format: fmt.id,
        rate,
        channels,
        period: 512,
        buffer: 4096,
        ..Params::default()
    })
    .map_err(|e| format!("hw_params {e}"))?;
    let data = signal(fmt, rate, channels, secs);
    let fb = fmt.sample_bytes() * channels as usize;
    let frames = (data.len() / fb) as u64;
    let mut off = 0;
    while off < frames {
        let r = p.writei(&data[off as usize * fb..], frames - off);
        if r == -(libc::EPIPE as i64) {
            return Err(UNDERRUN.into());
        }
        if r < 0 {
            return Err(format!("writei {r}"));
        }
        off += r as u64;
    }
    if p.drain() != 0 {
        return Err("drain failed".into());
    }
    drop(p);
    let rec = read_rec_s16(&rec_path(set));
    let rec = &rec[before.min(rec.len())..];
    let first = rec
        .iter()
        .position(|f| f[0].abs() > 64 || f[1].abs() > 64)
        .ok_or("nothing recorded")?;
    let last = rec.iter().rposition(|f| f[0].abs() > 64 || f[1].abs() > 64).unwrap();
    let got_secs = (last - first) as f64 / 48000.0;
    if (got_secs - secs).abs() > 0.01 {
        return Err(format!("played {got_secs:.3} s of {secs} s"));
    }
    if rec.iter().flatten().any(|v| *v == i16::MAX || *v == i16::MIN) {
        return Err("clipped".into());
    }
    // Skip the resampler's ramp at both ends; fit the steady middle.
    let mid = &rec[first + 2400..last - 2400];
    let m = matrix(&standard_map(channels), &[a::SND_CHMAP_FL, a::SND_CHMAP_FR]);
    let freqs: Vec<f64> = (0..channels as usize).map(freq).collect();
    let narrow = matches!(
        fmt.kind,
        asound_module_pcm_rdmix::dsp::format::Kind::Int { bits: 8, .. }
    );
    let mut worst_db: f64 = 0.0;
    let mut worst_res: f64 = -200.0;
    for d in 0..2 {
        let x: Vec<f64> = mid.iter().map(|f| f[d] as f64 / 32768.0).collect();
        let (amps, res) = fit_sines(&x, &freqs, 48000.0);
        for (c, amp) in amps.iter().enumerate() {
            let want = AMP * m[d * channels as usize + c] as f64;
            if want == 0.0 {
                if *amp > 0.01 * AMP {
                    return Err(format!("channel {c} leaks into device channel {d}: {amp:.4}"));
                }
                continue;
            }
            let db = 20.0 * (amp / want).log10();
            worst_db = worst_db.max(db.abs());
            if db.abs() > 0.2 {
                return Err(format!(
                    "channel {c} ({} Hz) on device channel {d}: {db:+.2} dB",
                    freqs[c]
                ));
            }
        }
        // A dropout or glitch leaves a large residual; 8-bit formats have their own noise floor.
        let res_db = 20.0 * (res / AMP).log10();
        worst_res = worst_res.max(res_db);
        if res_db > if narrow { -35.0 } else { -60.0 } {
            return Err(format!("residual {res_db:.1} dB on device channel {d}"));
        }
    }
    Ok(format!("level error {worst_db:.3} dB, residual {worst_res:.1} dB"))
}

fn combos() -> Vec<(Format, u32, u32)> {
    let full = std::env::var_os("RDMIX_FULL").is_some();
    let mut v = Vec::new();
    for (i, fmt) in FORMATS.iter().enumerate() {
        for (j, rate) in RATES.iter().enumerate() {
            for (k, ch) in LAYOUTS.iter().enumerate() {
                // Quick: each format once, cycling through rates and layouts so each is hit.
                if full || (j == i % RATES.len() && k == (i / RATES.len()) % LAYOUTS.len()) {
                    v.push((*fmt, *rate, *ch));
                }
            }
        }
    }
    if !full {
        // Every rate with every layout too, in the device's own format.
        let s16 = Format::lookup(a::SND_PCM_FORMAT_S16_LE).unwrap();
        for rate in RATES {
            for ch in LAYOUTS {
                v.push((s16, rate, ch));
            }
        }
    }
    v
}

#[test]
fn every_format_rate_and_layout_plays_at_the_right_level() {
    let all = combos();
    // Four pumps in parallel (sets 28..31), each playing its share in turn.
    let chunks: Vec<Vec<(Format, u32, u32)>> = (0..4)
        .map(|t| all.iter().copied().skip(t).step_by(4).collect())
        .collect();
    let handles: Vec<_> = chunks
        .into_iter()
        .enumerate()
        .map(|(t, list)| {
            std::thread::spawn(move || {
                let mut fails = Vec::new();
                let mut notes = Vec::new();
                let mut underruns = 0;
                for (fmt, rate, ch) in list {
                    // Four pumps resampling in a debug build can keep a test thread from its
                    // buffer on a 2-core machine: an underrun is load, not a wrong level, so
                    // that combination plays again (twice at most), and the count is reported.
                    let mut r = check(28 + t as u32, fmt, rate, ch);
                    for _ in 0..2 {
                        if r.as_ref().err().is_none_or(|e| e != UNDERRUN) {
                            break;
                        }
                        underruns += 1;
                        r = check(28 + t as u32, fmt, rate, ch);
                    }
                    match r {
                        Ok(n) => notes.push(n),
                        Err(e) => fails.push(format!("{} {rate} Hz {ch} ch: {e}", fmt.name())),
                    }
                }
                (fails, notes.len(), underruns)
            })
        })
        .collect();
    let (mut fails, mut ok, mut underruns) = (Vec::new(), 0, 0);
    for h in handles {
        let (f, n, u) = h.join().unwrap();
        fails.extend(f);
        ok += n;
        underruns += u;
    }
    eprintln!(
        "MEASURE formats: {ok} of {} format/rate/layout combinations exact in level and clean ({underruns} replayed after an underrun)",
        all.len()
    );
    assert!(fails.is_empty(), "{} failed:\n{}", fails.len(), fails.join("\n"));
}
