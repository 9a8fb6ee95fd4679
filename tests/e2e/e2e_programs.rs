//! Real programs against rdmix as `pcm.!default`, with their output checked in the recording:
//! `aplay -N` (non-blocking, polls), `speaker-test -t sine -l 1`, and `aplay -M -N`.

#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;

fn play_exact(args: &[&str]) {
    assert!(have("aplay"), "aplay is required");
    let w = World::new("");
    let data = counting_stream(96_000);
    write_wav_s16(&w.path("s.wav"), 48000, &data);
    let mut all = args.to_vec();
    all.push("s.wav");
    w.play("aplay", &all);
    assert_eq!(
        heard(&read_rec_s16(&w.path("rec.wav"))),
        data,
        "aplay {args:?} is heard exactly"
    );
}

#[test]
fn aplay_nonblocking_polls_and_plays_exactly() {
    play_exact(&["-q", "-N"]);
}

#[test]
fn aplay_mmap_nonblocking_plays_exactly() {
    play_exact(&["-q", "-M", "-N"]);
}

/// Goertzel power of `freq` in `x` (normalised so a full-scale sine gives about 0.5).
fn tone_power(x: &[f64], freq: f64, rate: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for v in x {
        let s = v + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - c * s1 * s2) / (x.len() as f64 * x.len() as f64 / 4.0)
}

#[test]
fn speaker_test_plays_a_sine_on_each_channel() {
    assert!(have("speaker-test"), "speaker-test is required (alsa-utils)");
    let w = World::new("");
    let o = wait_child(
        w.spawn(
            "speaker-test",
            &["-t", "sine", "-f", "440", "-l", "1", "-c", "2", "-r", "48000"],
        ),
        Duration::from_secs(60),
        "speaker-test",
    );
    assert!(
        o.status.success(),
        "speaker-test: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    w.wait_pump_gone(Duration::from_secs(10));
    let rec = read_rec_s16(&w.path("rec.wav"));
    // speaker-test plays the left channel, then the right: each gets a 440 Hz sine, alone.
    for ch in 0..2 {
        let x: Vec<f64> = rec.iter().map(|f| f[ch] as f64 / 32768.0).collect();
        let first = x.iter().position(|v| v.abs() > 1e-3).expect("channel has sound");
        let last = x.iter().rposition(|v| v.abs() > 1e-3).unwrap();
        assert!(last - first > 48_000, "channel {ch} played {} frames", last - first);
        // In 100 ms blocks across the sound, 440 Hz dominates everything else we probe.
        let blocks: Vec<&[f64]> = x[first..last].chunks_exact(4800).collect();
        let good = blocks
            .iter()
            .filter(|b| {
                let p = tone_power(b, 440.0, 48000.0);
                p > 1e-3
                    && [220.0, 1000.0, 3000.0]
                        .iter()
                        .all(|f| p > 1000.0 * tone_power(b, *f, 48000.0))
            })
            .count();
        assert!(
            good * 10 >= blocks.len() * 9,
            "channel {ch}: 440 Hz in {good} of {} blocks",
            blocks.len()
        );
    }
    // And never both at once.
    let both = rec.iter().filter(|f| f[0].abs() > 64 && f[1].abs() > 64).count();
    assert!(both < 4800, "{both} frames had sound on both channels");
}
