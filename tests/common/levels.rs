//! Volume scenarios, shared by the tests against the built plugin and against the
//! installed package: two `aplay` (a 1 kHz tone and noise) play into the copy-only test
//! device while a mixer turns them down, and the recording is measured stretch by stretch;
//! alsamixer in tmux following programs; a volume restored on a program's next run.

use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::Duration;

use super::*;

pub const RATE: u32 = 48000;
pub const TONE: f64 = 0.25 * 32768.0;

/// Noise of about -24 dBFS that no stretch of the tone can be mistaken for.
pub fn noise(n: usize) -> Vec<i16> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 16) as i16) / 16
        })
        .collect()
}

pub fn tone(n: usize) -> Vec<[i16; 2]> {
    (0..n)
        .map(|k| {
            let v = (TONE * (2.0 * std::f64::consts::PI * 1000.0 * k as f64 / RATE as f64).sin()).round() as i16;
            [v, v]
        })
        .collect()
}

/// Writes `tone.wav` and `noise.wav` of `seconds` into `dir`; returns the noise as played.
pub fn write_tone_and_noise(dir: &Path, seconds: usize) -> Vec<i16> {
    let n = RATE as usize * seconds;
    let hiss = noise(n);
    write_wav_s16(&dir.join("tone.wav"), RATE, &tone(n));
    write_wav_s16(
        &dir.join("noise.wav"),
        RATE,
        &hiss.iter().map(|&v| [v, v]).collect::<Vec<_>>(),
    );
    hiss
}

/// The tone's amplitude and the noise's gain in a window of the left channel whose noise
/// part is `hiss` as played: one least-squares fit of a sine, a cosine and the noise itself,
/// so that neither's level is a guess from the other's leftovers.
pub fn measure(rec: &[[i16; 2]], hiss: &[i16]) -> (f64, f64) {
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

pub fn db(x: f64) -> f64 {
    20.0 * x.log10()
}

/// Checks that the recording of the tone and the noise passes through `stretches` (the
/// tone's and the noise's level in dB, in order, each within 0.1 dB and held for half a
/// second at least), and that in the last, with the noise at 0 dB, the noise is in the
/// device bit-exact. `what` names the mixer in the messages.
pub fn check_stretches(rec: &[[i16; 2]], hiss: &[i16], stretches: &[(f64, f64)], what: &str) {
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
    let windows: Vec<(usize, f64, f64)> = (start / 4800 + 1..rec.len() / 4800)
        .filter(|k| k * 4800 - start + 4800 <= hiss.len())
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
            .unwrap_or_else(|| {
                panic!("{what}: stretch {k} ({tone_db:.2} dB, {noise_db:.2} dB) never came: {windows:?}")
            });
        let last = windows[first..].iter().take_while(|w| matches(w)).count() + first;
        assert!(
            last - first >= 5,
            "{what}: stretch {k} held for only {} windows: {windows:?}",
            last - first
        );
        let (_, t, r) = windows[first + 2];
        eprintln!("MEASURE {what} stretch {k}: tone {t:.3} dB, noise {r:.3} dB (wanted {tone_db:.3}, {noise_db:.3})");
        at = last;
    }
    // With the tone off and everything else at 0 dB, the noise is in the device bit-exact.
    let (from, _, _) = windows[at - 4];
    for (i, f) in rec[from..from + 3 * 4800].iter().enumerate() {
        assert_eq!(
            f[0],
            hiss[from + i - start],
            "{what}: frame {} of the last stretch",
            from + i
        );
    }
}

/// How a scenario reaches the programs and the device under test.
pub struct Rig<'a> {
    /// Starts `aplay -q FILE` through rdmix.
    pub aplay: &'a dyn Fn(&str) -> Child,
    /// Runs `amixer` (or another program with `program`) on rdmix's controls: the caller
    /// adds `-D` where the control is not the default.
    pub amixer: &'a dyn Fn(&[&str]) -> Output,
    /// The test device's recording.
    pub rec: PathBuf,
}

/// Waits until the test device has taken another second of audio: each change a scenario
/// makes gets a second of its own in the recording.
pub fn another_second(rec: &Path) {
    let mark = rec_frames(rec);
    wait_until(
        Duration::from_secs(20),
        || rec_frames(rec) >= mark + RATE as usize,
        || format!("the device took no second of audio past frame {mark}"),
    );
}

fn ok(o: Output, what: &str) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{what}: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// amixer lists each running aplay by name and pid; `sset` to -6 dB halves the tone within
/// 0.1 dB and leaves the noise bit-exact; the master halves both; mute silences only the
/// tone. The files come from `write_tone_and_noise` (40 s).
pub fn amixer_turns_programs_and_the_master_down(rig: &Rig, hiss: &[i16]) {
    let mut kids = [(rig.aplay)("tone.wav"), (rig.aplay)("noise.wav")];
    let tone = format!("aplay {}", kids[0].id());
    let other = format!("aplay {}", kids[1].id());
    let listed = || ok((rig.amixer)(&["scontrols"]), "amixer scontrols");
    wait_until(
        Duration::from_secs(20),
        || {
            let l = listed();
            l.contains(&format!("'{tone}',0")) && l.contains(&format!("'{other}',0"))
        },
        || format!("amixer never listed both programs: {}", listed()),
    );
    eprintln!("MEASURE amixer scontrols: {}", listed().trim().replace('\n', "; "));
    let set = |control: &str, level: &str| {
        another_second(&rig.rec);
        ok((rig.amixer)(&["sset", control, "--", level]), "amixer sset")
    };
    let said = set(&tone, "-6dB");
    assert!(said.contains("[-6.00dB]"), "{said}");
    set("Master", "-6dB");
    set("Master", "0dB");
    set(&tone, "mute");
    another_second(&rig.rec);
    for k in &mut kids {
        let _ = k.kill();
        let _ = k.wait();
    }
    let gone = || {
        let l = listed();
        !l.contains(&format!("'{tone}'")) && !l.contains(&format!("'{other}'"))
    };
    wait_until(Duration::from_secs(10), gone, || {
        format!("the programs stayed listed: {}", listed())
    });
    let rec = read_rec_s16(&rig.rec);
    let g = db(10f64.powf(-6.0 / 20.0));
    check_stretches(
        &rec,
        hiss,
        &[(0.0, 0.0), (g, 0.0), (2.0 * g, g), (f64::NEG_INFINITY, 0.0)],
        "amixer",
    );
}

/// A tmux session on a private server, killed with it.
pub struct Tmux(pub String);

impl Tmux {
    /// Starts `command` (a shell line) in a 160x40 terminal.
    pub fn start(name: &str, command: &str) -> Tmux {
        let t = Tmux(name.to_string());
        let _ = t.run(&["kill-server"]);
        let o = t.run(&["new-session", "-d", "-x", "160", "-y", "40", command]);
        assert!(o.status.success(), "tmux: {}", String::from_utf8_lossy(&o.stderr));
        t
    }

    fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new("tmux")
            .args(["-L", &self.0])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("tmux")
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p"]).stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// alsamixer (in tmux, on `alsamixer_cmd`, a shell line) shows rdmix's card and Master,
/// follows a program's arrival and exit, and shows a change another mixer makes.
pub fn alsamixer_follows_programs(rig: &Rig, alsamixer_cmd: &str, session: &str) {
    assert!(have("tmux") && have("alsamixer"), "tmux and alsamixer are required");
    let t = Tmux::start(session, alsamixer_cmd);
    wait_until(
        Duration::from_secs(20),
        || {
            let s = t.screen();
            s.contains("Card: rdmix") && s.contains("Master")
        },
        || format!("alsamixer never showed rdmix's Master:\n{}", t.screen()),
    );
    let mut kid = (rig.aplay)("tone.wav");
    let name = format!("aplay {}", kid.id());
    wait_until(
        Duration::from_secs(20),
        || t.screen().contains(&name),
        || format!("alsamixer never showed {name}:\n{}", t.screen()),
    );
    // Another mixer's change reaches the one on screen (its focus is on the Master).
    ok((rig.amixer)(&["sset", "Master", "--", "-12dB"]), "amixer sset Master");
    wait_until(
        Duration::from_secs(20),
        || t.screen().contains("Master [dB gain: -12.00]"),
        || format!("alsamixer never showed the Master at -12 dB:\n{}", t.screen()),
    );
    let _ = kid.kill();
    let _ = kid.wait();
    wait_until(
        Duration::from_secs(20),
        || !t.screen().contains(&name),
        || format!("alsamixer still shows {name} after it exited:\n{}", t.screen()),
    );
    let screen = t.screen();
    eprintln!(
        "MEASURE alsamixer: showed {name} while it played and not after; Master at -12 dB from amixer:\n{}",
        screen
            .lines()
            .filter(|l| l.contains("Item:") || l.contains("Master"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    ok((rig.amixer)(&["sset", "Master", "--", "0dB"]), "amixer sset Master");
}

/// A program turned down with amixer starts turned down on its next run; back at 0 dB it
/// is forgotten.
pub fn amixer_volume_is_restored(rig: &Rig) {
    let level_of = |control: &str| {
        let c = control.to_string();
        let mut last = String::new();
        wait_until(
            Duration::from_secs(20),
            || {
                last = String::from_utf8_lossy(&(rig.amixer)(&["sget", &c]).stdout).into_owned();
                last.contains("Playback") && last.contains("dB]")
            },
            || format!("amixer never showed {c}"),
        );
        last
    };
    let mut runs = Vec::new();
    for set in [Some("-6dB"), Some("0dB"), None] {
        let mut kid = (rig.aplay)("noise.wav");
        let name = format!("aplay {}", kid.id());
        runs.push(level_of(&name));
        if let Some(level) = set {
            ok((rig.amixer)(&["sset", &name, "--", level]), "amixer sset");
        }
        let _ = kid.kill();
        let _ = kid.wait();
    }
    assert!(
        runs[0].contains("[0.00dB]"),
        "the first run at full volume: {}",
        runs[0]
    );
    assert!(
        runs[1].contains("[-6.00dB]"),
        "the second run starts turned down: {}",
        runs[1]
    );
    assert!(
        runs[2].contains("[0.00dB]"),
        "back at 0 dB, it is forgotten: {}",
        runs[2]
    );
    eprintln!("MEASURE restore: runs at 0.00, -6.00, 0.00 dB, as amixer set them");
}
