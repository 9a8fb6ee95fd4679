//! Volume end to end, through real alsa-lib and real programs: two `aplay`, one of a 1 kHz
//! tone and one of noise, play through rdmix into the paced copy-only test device while
//! `rdmix-status --volume` turns the tone down 6 dB, then the master down 6 dB, then the
//! master back up and the tone off. The recording is measured stretch by stretch.

#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;

const RATE: u32 = 48000;
const TONE: f64 = 0.25 * 32768.0;

/// Noise of about -24 dBFS that no stretch of the tone can be mistaken for.
fn noise(n: usize) -> Vec<i16> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 16) as i16) / 16
        })
        .collect()
}

/// The tone's amplitude and the noise's gain in a window of the left channel whose noise
/// part is `hiss` as played: one least-squares fit of a sine, a cosine and the noise itself,
/// so that neither's level is a guess from the other's leftovers.
fn measure(rec: &[[i16; 2]], hiss: &[i16]) -> (f64, f64) {
    let w = 2.0 * std::f64::consts::PI * 1000.0 / RATE as f64;
    let basis = |n: usize| [(w * n as f64).sin(), (w * n as f64).cos(), hiss[n] as f64];
    let (mut ata, mut atb) = ([[0.0f64; 3]; 3], [0.0f64; 3]);
    for (n, f) in rec.iter().enumerate() {
        let b = basis(n);
        for i in 0..3 {
            atb[i] += b[i] * f[0] as f64;
            for j in 0..3 {
                ata[i][j] += b[i] * b[j];
            }
        }
    }
    // Cramer's rule on the 3x3 normal equations.
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(ata);
    let solve = |k: usize| {
        let mut m = ata;
        for (i, row) in m.iter_mut().enumerate() {
            row[k] = atb[i];
        }
        det(m) / d
    };
    (solve(0).hypot(solve(1)), solve(2))
}

fn db(x: f64) -> f64 {
    20.0 * x.log10()
}

#[test]
fn rdmix_status_sets_a_programs_volume_and_the_master() {
    assert!(have("aplay"), "aplay is required");
    let w = World::new("");
    let status = format!("{}/rdmix-status", build_dir().display());
    let n = RATE as usize * 40;
    let tone: Vec<[i16; 2]> = (0..n)
        .map(|k| {
            let v = (TONE * (2.0 * std::f64::consts::PI * 1000.0 * k as f64 / RATE as f64).sin()).round() as i16;
            [v, v]
        })
        .collect();
    let hiss = noise(n);
    write_wav_s16(&w.path("tone.wav"), RATE, &tone);
    write_wav_s16(
        &w.path("noise.wav"),
        RATE,
        &hiss.iter().map(|&v| [v, v]).collect::<Vec<_>>(),
    );
    let mut kids = [
        w.spawn("aplay", &["-q", "tone.wav"]),
        w.spawn("aplay", &["-q", "noise.wav"]),
    ];
    let tone_pid = kids[0].id().to_string();
    w.wait_lanes(2, Duration::from_secs(10));
    let frames = || rec_frames(&w.path("rec.wav"));
    // Each change once another second has been written since the last.
    let set = |args: &[&str]| {
        let mark = frames();
        wait_until(
            Duration::from_secs(20),
            || frames() >= mark + RATE as usize,
            || format!("the device took no second of audio past {mark}: {}", w.pump_log()),
        );
        let mut all = vec!["--volume"];
        all.extend_from_slice(args);
        let o = w.run(&status, &all);
        assert!(
            o.status.success(),
            "rdmix-status {all:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(set(&[&tone_pid, "-6dB"]), format!("{tone_pid}: -6.0 dB\n"));
    let table = String::from_utf8_lossy(&w.run(&status, &[]).stdout).into_owned();
    assert!(
        table
            .lines()
            .any(|l| l.trim_start().starts_with(&tone_pid) && l.ends_with("-6.0 dB")),
        "{table}"
    );
    let master = format!("master:{:#x}", w.key);
    set(&[&master, "-6dB"]);
    set(&[&master, "0dB"]);
    set(&[&tone_pid, "mute"]);
    let mark = frames();
    wait_until(
        Duration::from_secs(20),
        || frames() >= mark + RATE as usize,
        || "the device took no more audio".into(),
    );
    for k in &mut kids {
        let _ = k.kill();
        let _ = k.wait();
    }
    w.wait_pump_gone(Duration::from_secs(10));

    let rec = read_rec_s16(&w.path("rec.wav"));
    let g = 10f64.powf(-6.0 / 20.0);
    // Where the noise starts in the recording: found in the last stretch, where it plays
    // alone and untouched. It plays on with no gap from there (no underrun is allowed).
    let start = (1..rec.len() / 4800)
        .rev()
        .find_map(|k| {
            let at = k * 4800;
            let probe: Vec<i16> = rec[at..at + 64].iter().map(|f| f[0]).collect();
            let off = hiss.windows(64).position(|w| w == probe.as_slice())?;
            at.checked_sub(off)
        })
        .expect("the noise, untouched, is in the recording's last stretch");
    // Each stretch: the tone's level and the noise's, in dB against their full levels.
    let stretches = [(0.0, 0.0), (db(g), 0.0), (2.0 * db(g), db(g)), (f64::NEG_INFINITY, 0.0)];
    let windows: Vec<(usize, f64, f64)> = (start / 4800 + 1..rec.len() / 4800)
        .map(|k| {
            let at = k * 4800;
            let (tone, noise) = measure(&rec[at..at + 4800], &hiss[at - start..]);
            (at, db(tone / TONE), db(noise))
        })
        .collect();
    let mut at = 0;
    for (k, &(tone_db, noise_db)) in stretches.iter().enumerate() {
        let matches = |&(_, t, r): &(usize, f64, f64)| {
            let tone_ok = if tone_db.is_finite() {
                (t - tone_db).abs() < 0.1
            } else {
                t < -60.0
            };
            tone_ok && (r - noise_db).abs() < 0.1
        };
        let first = windows[at..]
            .iter()
            .position(matches)
            .map(|p| p + at)
            .unwrap_or_else(|| panic!("stretch {k} ({tone_db:.2} dB, {noise_db:.2} dB) never came: {windows:?}"));
        let last = windows[first..].iter().take_while(|w| matches(w)).count() + first;
        assert!(
            last - first >= 5,
            "stretch {k} held for only {} windows: {windows:?}",
            last - first
        );
        let (_, t, r) = windows[first + 2];
        eprintln!("MEASURE stretch {k}: tone {t:.3} dB, noise {r:.3} dB (wanted {tone_db:.3}, {noise_db:.3})");
        at = last;
    }
    // With the tone off and everything else at 0 dB, the noise is in the device bit-exact.
    let (from, _, _) = windows[at - 4];
    for (i, f) in rec[from..from + 3 * 4800].iter().enumerate() {
        assert_eq!(f[0], hiss[from + i - start], "frame {} of the muted stretch", from + i);
    }
}

/// A program turned down starts turned down next time, as PulseAudio's stream-restore
/// does: `rdmix-status --volume` remembers the level by program name in the user's state
/// directory, and the program's next open asks its pump for it. Back at 0 dB it is
/// forgotten, and the next run plays at full level again.
#[test]
fn a_programs_volume_is_restored_on_its_next_run() {
    assert!(have("aplay"), "aplay is required");
    let w = World::new("");
    let status = format!("{}/rdmix-status", build_dir().display());
    let hiss = noise(RATE as usize * 30);
    write_wav_s16(
        &w.path("noise.wav"),
        RATE,
        &hiss.iter().map(|&v| [v, v]).collect::<Vec<_>>(),
    );
    let table = || String::from_utf8_lossy(&w.run(&status, &[]).stdout).into_owned();
    let row_of = |pid: &str| {
        table()
            .lines()
            .find(|l| l.trim_start().starts_with(pid))
            .map(str::to_string)
    };
    let mut runs = Vec::new();
    for (run, set) in [(0, Some("-6dB")), (1, Some("0dB")), (2, None)] {
        let mut kid = w.spawn("aplay", &["-q", "noise.wav"]);
        let pid = kid.id().to_string();
        wait_until(
            Duration::from_secs(10),
            || row_of(&pid).is_some_and(|r| r.contains("running")),
            || format!("run {run}: aplay never ran: {}", table()),
        );
        runs.push(row_of(&pid).unwrap());
        if let Some(level) = set {
            let o = w.run(&status, &["--volume", &pid, level]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let _ = kid.kill();
        let _ = kid.wait();
    }
    assert!(runs[0].ends_with("0.0 dB"), "the first run at full volume: {}", runs[0]);
    assert!(
        runs[1].ends_with("-6.0 dB"),
        "the second run starts turned down: {}",
        runs[1]
    );
    assert!(
        runs[2].ends_with("0.0 dB"),
        "back at 0 dB, it is forgotten: {}",
        runs[2]
    );
    let saved = std::fs::read_to_string(w.path(".local/state/rdmix/volumes")).unwrap_or_default();
    assert!(!saved.contains("aplay"), "nothing left to remember: {saved:?}");
}
