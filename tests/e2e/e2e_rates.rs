//! Programs at their media's own rates and layouts, through `pcm.!default { type rdmix }`
//! with no `plug` in front: clients at 44.1, 48 and 22.05 kHz mixed at once, and real
//! programs playing 44.1 kHz mono, 96 kHz 24-bit and FLOAT files, and 5.1 speaker-test.

#[path = "../common/mod.rs"]
mod common;

use common::alsa::{Params, Pcm, rec_path};
use common::*;

fn tone_s16(rate: u32, f: f64, amp: f64, secs: f64) -> Vec<u8> {
    (0..(rate as f64 * secs) as usize)
        .flat_map(|n| {
            let v = (amp * 32767.0 * (2.0 * std::f64::consts::PI * f * n as f64 / rate as f64).sin()).round() as i16;
            [v.to_le_bytes(), v.to_le_bytes()].concat()
        })
        .collect()
}

#[test]
fn clients_at_44k1_48k_and_22k05_mix_at_their_levels() {
    let set = 32;
    let clients = [(44100u32, 500.0f64), (48000, 1100.0), (22050, 1700.0)];
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(clients.len()));
    let threads: Vec<_> = clients
        .iter()
        .map(|&(rate, f)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let p = Pcm::open(&format!("mix{set}"), false).unwrap();
                p.set_params(Params {
                    rate,
                    period: 4096,
                    buffer: 32768, // 0.7 s: a loaded machine does not starve the writers
                    ..Params::default()
                })
                .unwrap();
                let data = tone_s16(rate, f, 0.3, 2.0);
                barrier.wait();
                p.write_all(&data, 4);
                assert_eq!(p.drain(), 0);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let rec = read_rec_s16(&rec_path(set));
    let first = rec.iter().position(|f| f[0].unsigned_abs() > 64).unwrap();
    // Well inside the span all three play.
    let mid: Vec<f64> = rec[first + 24_000..first + 72_000]
        .iter()
        .map(|f| f[0] as f64 / 32768.0)
        .collect();
    let mut residual = mid.clone();
    for &(rate, f) in &clients {
        let (amp, _) = sine_and_residual(&mid, f, 48000.0);
        let db = 20.0 * (amp / 0.3).log10();
        eprintln!("MEASURE mixed rates: {rate} Hz client's {f} Hz tone at {db:+.3} dB");
        assert!(db.abs() < 0.2, "{rate} Hz client: {db:+.2} dB");
        remove_sine(&mut residual, f, 48000.0);
    }
    let rest = rms(&residual);
    let rest_db = 20.0 * (rest / 0.3).log10();
    eprintln!("MEASURE mixed rates: residual after removing the three tones {rest_db:.1} dB");
    assert!(rest_db < -60.0, "residual {rest_db:.1} dB: dropouts or distortion");
    // The sum never exceeds 0.9 of full scale, so nothing may sit at the rails.
    assert!(
        rec.iter().flatten().all(|v| *v != i16::MAX && *v != i16::MIN),
        "clipped where the sum does not"
    );
}

fn analyse(w: &World, f: f64, want_amp: f64, secs: f64, what: &str) {
    let rec = read_rec_s16(&w.path("rec.wav"));
    let loud = |x: &[i16; 2]| x.iter().any(|v| v.unsigned_abs() > 64);
    let first = rec
        .iter()
        .position(loud)
        .unwrap_or_else(|| panic!("{what}: nothing recorded"));
    let last = rec.iter().rposition(loud).unwrap();
    let dur = (last - first) as f64 / 48000.0;
    assert!((dur - secs).abs() < 0.02, "{what}: played {dur:.3} s of {secs} s");
    for ch in 0..2 {
        let x: Vec<f64> = rec[first + 4800..last - 4800]
            .iter()
            .map(|v| v[ch] as f64 / 32768.0)
            .collect();
        let (amp, res) = sine_and_residual(&x, f, 48000.0);
        let db = 20.0 * (amp / want_amp).log10();
        let res_db = 20.0 * (res / want_amp).log10();
        eprintln!("MEASURE {what}: channel {ch}: {f} Hz at {db:+.3} dB, residual {res_db:.1} dB");
        assert!(
            db.abs() < 0.2 && res_db < -60.0,
            "{what} channel {ch}: {db:+.2} dB, residual {res_db:.1} dB"
        );
    }
}

/// Generates a test file with `sox` in the world's directory.
fn make_with_sox(w: &World, args: &[&str]) {
    let o = w.run("sox", args);
    assert!(
        o.status.success(),
        "sox {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn aplay_plays_44k1_mono_as_is() {
    assert!(have("aplay") && have("sox"), "aplay and sox are required");
    let w = World::new("");
    make_with_sox(
        &w,
        &[
            "-q", "-n", "-r", "44100", "-c", "1", "-b", "16", "m.wav", "synth", "1", "sine", "1000", "vol", "0.5",
        ],
    );
    w.play("aplay", &["-q", "m.wav"]);
    // Mono reaches both sides at full level.
    analyse(&w, 1000.0, 0.5, 1.0, "aplay 44.1 kHz mono");
}

#[test]
fn aplay_plays_96k_24_bit_as_is() {
    assert!(have("aplay") && have("sox"), "aplay and sox are required");
    let w = World::new("");
    make_with_sox(
        &w,
        &[
            "-q", "-n", "-r", "96000", "-c", "2", "-b", "24", "h.wav", "synth", "1", "sine", "3000", "vol", "0.4",
        ],
    );
    w.play("aplay", &["-q", "h.wav"]);
    analyse(&w, 3000.0, 0.4, 1.0, "aplay 96 kHz 24-bit");
}

#[test]
fn sox_plays_a_float_file_as_is() {
    assert!(have("sox"), "sox is required");
    let w = World::new("");
    make_with_sox(
        &w,
        &[
            "-q",
            "-n",
            "-r",
            "44100",
            "-c",
            "2",
            "-e",
            "floating-point",
            "-b",
            "32",
            "f.wav",
            "synth",
            "1",
            "sine",
            "700",
            "vol",
            "0.3",
        ],
    );
    // -D: no dither, so sox hands over exactly what the file holds.
    w.play("sox", &["-q", "-D", "f.wav", "-t", "alsa", "default"]);
    analyse(&w, 700.0, 0.3, 1.0, "sox FLOAT 44.1 kHz");
}

#[test]
fn speaker_test_plays_5_1_through_the_stereo_device() {
    assert!(have("speaker-test"), "speaker-test is required");
    let w = World::new("");
    w.play(
        "speaker-test",
        &["-t", "sine", "-f", "440", "-c", "6", "-l", "1", "-r", "48000"],
    );
    let rec = read_rec_s16(&w.path("rec.wav"));
    // Six channels in turn: FL, FR, RL, RR, FC, LFE (speaker-test's 5.1 order). On stereo:
    // left only, right only, left only, right only, both at -3 dB, and LFE dropped.
    let loud = |v: i16| v.unsigned_abs() > 300;
    let left_only = rec.iter().filter(|f| loud(f[0]) && !loud(f[1])).count();
    let right_only = rec.iter().filter(|f| loud(f[1]) && !loud(f[0])).count();
    let both = rec.iter().filter(|f| loud(f[0]) && loud(f[1])).count();
    eprintln!("MEASURE speaker-test -c 6: frames left-only {left_only}, right-only {right_only}, both {both}");
    assert!(
        left_only > 48_000 && right_only > 48_000 && both > 24_000,
        "{left_only} {right_only} {both}"
    );
}

#[test]
fn bindings_route_channels_as_configured() {
    assert!(have("aplay") && have("sox"), "aplay and sox are required");
    let w = World::new("pcm.bound { type rdmix; ipc_key {key}; bindings { 0 1 }; slave.pcm \"card\" }");
    make_with_sox(
        &w,
        &[
            "-q", "-n", "-r", "48000", "-c", "1", "-b", "16", "m.wav", "synth", "0.5", "sine", "800", "vol", "0.5",
        ],
    );
    w.play("aplay", &["-q", "-D", "bound", "m.wav"]);
    let rec = read_rec_s16(&w.path("rec.wav"));
    let left = rec.iter().filter(|f| f[0] != 0).count();
    let right = rec.iter().filter(|f| f[1].unsigned_abs() > 64).count();
    assert_eq!(left, 0, "bindings {{ 0 1 }}: nothing on device channel 0");
    assert!(
        right > 20_000,
        "the mono channel plays on device channel 1 ({right} frames)"
    );
}

#[test]
fn a_resampled_stream_drains_its_tail_and_its_delay_is_the_time_left() {
    use common::alsa::{Params, Pcm};
    let set = 33;
    let p = Pcm::open(&format!("mix{set}"), false).unwrap();
    p.set_params(Params {
        rate: 44100,
        period: 441,
        buffer: 8820,
        ..Params::default()
    })
    .unwrap();
    // Ask for 44.1 kHz, get 44.1 kHz (no "nearest" 48 kHz).
    let data = tone_s16(44100, 1000.0, 0.3, 1.0);
    p.write_all(&data, 4);
    let d = p.delay().unwrap();
    let t0 = std::time::Instant::now();
    assert_eq!(p.drain(), 0);
    let took = t0.elapsed().as_secs_f64();
    let predicted = d as f64 / 44100.0;
    eprintln!(
        "MEASURE 44.1 kHz client: delay {d} frames = {:.2} ms; drain took {:.2} ms",
        predicted * 1e3,
        took * 1e3
    );
    // The delay (lane + resampler + device queue) is the time the drain takes, within two
    // device periods and some scheduling slack.
    assert!(
        (took - predicted).abs() < 0.035,
        "delay says {predicted:.4} s, drain took {took:.4} s"
    );
    // And the whole second of tone was played, tail included.
    let rec = read_rec_s16(&rec_path(set));
    let loud = |x: &[i16; 2]| x.iter().any(|v| v.unsigned_abs() > 300);
    let first = rec.iter().position(loud).unwrap();
    let last = rec.iter().rposition(loud).unwrap();
    let dur = (last - first) as f64 / 48000.0;
    assert!((dur - 1.0).abs() < 0.005, "played {dur:.4} s of 1 s");
}
