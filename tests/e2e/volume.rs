//! Volume end to end, through real alsa-lib and real programs: two `aplay`, one of a 1 kHz
//! tone and one of noise, play through rdmix into the paced copy-only test device while
//! `rdmix-status --volume` turns the tone down 6 dB, then the master down 6 dB, then the
//! master back up and the tone off. The recording is measured stretch by stretch.

#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use common::levels::{self, Rig, db};
use common::*;

#[test]
fn rdmix_status_sets_a_programs_volume_and_the_master() {
    assert!(have("aplay"), "aplay is required");
    let w = World::new("");
    let status = format!("{}/rdmix-status", build_dir().display());
    let hiss = levels::write_tone_and_noise(&w.dir, 40);
    let mut kids = [
        w.spawn("aplay", &["-q", "tone.wav"]),
        w.spawn("aplay", &["-q", "noise.wav"]),
    ];
    let tone_pid = kids[0].id().to_string();
    w.wait_lanes(2, Duration::from_secs(10));
    let set = |args: &[&str]| {
        levels::another_second(&w.path("rec.wav"));
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
    levels::another_second(&w.path("rec.wav"));
    for k in &mut kids {
        let _ = k.kill();
        let _ = k.wait();
    }
    w.wait_pump_gone(Duration::from_secs(10));

    let rec = read_rec_s16(&w.path("rec.wav"));
    let g = db(10f64.powf(-6.0 / 20.0));
    levels::check_stretches(
        &rec,
        &hiss,
        &[(0.0, 0.0), (g, 0.0), (2.0 * g, g), (f64::NEG_INFINITY, 0.0)],
        "rdmix-status",
    );
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
    levels::write_tone_and_noise(&w.dir, 30);
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

/// The scenarios of `common::levels` on a world's own `ctl.!default`, over the built plugin.
fn rig<'a>(
    w: &World,
    aplay: &'a dyn Fn(&str) -> std::process::Child,
    amixer: &'a dyn Fn(&[&str]) -> std::process::Output,
) -> Rig<'a> {
    Rig {
        aplay,
        amixer,
        rec: w.path("rec.wav"),
    }
}

#[test]
fn amixer_turns_each_program_and_the_master_down() {
    assert!(have("aplay") && have("amixer"), "aplay and amixer are required");
    let w = World::new("");
    let hiss = levels::write_tone_and_noise(&w.dir, 40);
    let aplay = |f: &str| w.spawn("aplay", &["-q", f]);
    let amixer = |a: &[&str]| w.run("amixer", a);
    levels::amixer_turns_programs_and_the_master_down(&rig(&w, &aplay, &amixer), &hiss);
}

#[test]
fn alsamixer_follows_programs_as_they_come_and_go() {
    assert!(have("aplay") && have("amixer"), "aplay and amixer are required");
    let w = World::new("");
    levels::write_tone_and_noise(&w.dir, 60);
    let aplay = |f: &str| w.spawn("aplay", &["-q", f]);
    let amixer = |a: &[&str]| w.run("amixer", a);
    let cmd = format!(
        "env HOME={} RDMIX_PUMP_LOG={} TERM=xterm alsamixer",
        w.dir.display(),
        w.path("pump.log").display()
    );
    levels::alsamixer_follows_programs(&rig(&w, &aplay, &amixer), &cmd, &format!("rdmix-{}", w.key));
}

#[test]
fn a_volume_set_with_amixer_is_restored_on_the_next_run() {
    assert!(have("aplay") && have("amixer"), "aplay and amixer are required");
    let w = World::new("");
    levels::write_tone_and_noise(&w.dir, 30);
    let aplay = |f: &str| w.spawn("aplay", &["-q", f]);
    let amixer = |a: &[&str]| w.run("amixer", a);
    levels::amixer_volume_is_restored(&rig(&w, &aplay, &amixer));
}

/// The master a user set lasts beyond its pump: a mixer's change is remembered by the
/// pump's key, and the next pump, started by a program that knows nothing of mixers, takes
/// it from that program's HELLO. Back at 0 dB it is forgotten.
#[test]
fn the_master_is_restored_by_the_next_pump() {
    assert!(have("aplay") && have("amixer"), "aplay and amixer are required");
    let w = World::new("");
    levels::write_tone_and_noise(&w.dir, 30);
    let status = format!("{}/rdmix-status", build_dir().display());
    let master_of_pump = || {
        let doc = String::from_utf8_lossy(&w.run(&status, &["--json"]).stdout).into_owned();
        doc.split(&format!("\"key\":{},", w.key))
            .nth(1)
            .and_then(|rest| rest.split("\"master\":").nth(1))
            .map(|m| m.split('}').next().unwrap_or_default().to_string() + "}")
            .unwrap_or_default()
    };
    // With no program at all: the mixer's own pump keeps the master it is given, and the
    // next mixer's pump takes it from that mixer's WATCH.
    let amixer = |args: &[&str]| {
        let o = w.run("amixer", args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    amixer(&["sset", "Master", "--", "-3dB"]);
    w.wait_pump_gone(Duration::from_secs(10));
    let said = amixer(&["sget", "Master"]);
    assert!(
        said.contains("[-3.00dB]"),
        "a new mixer's pump takes the remembered master: {said}"
    );
    amixer(&["sset", "Master", "--", "0dB"]);
    w.wait_pump_gone(Duration::from_secs(10));
    let mut seen = Vec::new();
    for set in [Some("-6dB"), Some("0dB"), None] {
        let mut kid = w.spawn("aplay", &["-q", "noise.wav"]);
        let pid = kid.id().to_string();
        wait_until(
            Duration::from_secs(10),
            || String::from_utf8_lossy(&w.run(&status, &[]).stdout).contains(&pid),
            || format!("aplay never ran: {}", w.pump_log()),
        );
        seen.push(master_of_pump());
        if let Some(level) = set {
            let o = w.run("amixer", &["sset", "Master", "--", level]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let _ = kid.kill();
        let _ = kid.wait();
        w.wait_pump_gone(Duration::from_secs(10));
    }
    assert_eq!(
        seen,
        [
            "{\"db\":0.00,\"muted\":false}",
            "{\"db\":-6.00,\"muted\":false}",
            "{\"db\":0.00,\"muted\":false}"
        ],
        "the master in three pumps' lives, set to -6 dB in the first and to 0 dB in the second"
    );
}

/// A control that cannot work says why in one line naming rdmix and the cause, and the
/// mixer fails cleanly: an option out of range, a pump that cannot start.
#[test]
fn a_mixer_that_cannot_reach_its_pump_says_why_in_one_line() {
    assert!(have("amixer"), "amixer is required");
    let w = World::new(
        "ctl.nopump { type rdmix; ipc_key {key}; slave.pcm \"card\"; pump \"/nonexistent/rdmix-pump\" }\n\
         ctl.badperm { type rdmix; slave.pcm \"card\"; ipc_perm 0999 }\n",
    );
    for (ctl, cause) in [
        (
            "nopump",
            "rdmix: pump: cannot start /nonexistent/rdmix-pump: No such file or directory",
        ),
        ("badperm", "rdmix: ipc_perm: expected an integer"),
    ] {
        let o = w.run("amixer", &["-D", ctl, "scontrols"]);
        let err = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| l.contains("rdmix:")).collect();
        assert!(!o.status.success(), "amixer -D {ctl} succeeded: {err}");
        assert!(
            lines.len() == 1 && lines[0].contains("ctl_rdmix") && lines[0].contains(cause),
            "amixer -D {ctl}: one line naming the cause ({cause}): {err}"
        );
        eprintln!("MEASURE ctl {ctl}: {}", lines[0]);
    }
}

/// Each recorder has its own capture volume: amixer turns one `arecord` down 6 dB, and
/// what it records from then on is 6 dB down (within 0.1 dB), while another recorder's
/// recording stays exact (the device's frame counter unbroken, its tone at full level).
#[test]
fn amixer_turns_one_recorder_down_and_not_another() {
    use common::mic::{counter_breaks, read_wav, tone};
    assert!(have("arecord") && have("amixer"), "arecord and amixer are required");
    let w = World::new("");
    let rec = |out: &str| {
        w.spawn(
            "arecord",
            &[
                "-q", "-D", "default", "-f", "S16_LE", "-c", "2", "-r", "48000", "-d", "6", out,
            ],
        )
    };
    let (a, b) = (rec("a.wav"), rec("b.wav"));
    let name = format!("arecord {}", a.id());
    let control = format!("name={name} Capture Volume");
    let listed = || String::from_utf8_lossy(&w.run("amixer", &["scontents"]).stdout).into_owned();
    wait_until(
        Duration::from_secs(20),
        || listed().contains(&format!("'{name}',0")),
        || format!("amixer never listed {name}: {}", listed()),
    );
    assert!(
        listed().contains("Capabilities: cvolume"),
        "a recorder's control is a capture one: {}",
        listed()
    );
    // Two seconds in, well before the end: the rest is recorded at -6 dB.
    let frames_of = |f: &str| std::fs::metadata(w.path(f)).map_or(0, |m| m.len().saturating_sub(44) / 4);
    wait_until(
        Duration::from_secs(20),
        || frames_of("a.wav") >= 2 * 48_000,
        || "arecord recorded no two seconds".into(),
    );
    let o = w.run("amixer", &["cset", &control, "216"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    common::finish(a, Duration::from_secs(30), "arecord a");
    common::finish(b, Duration::from_secs(30), "arecord b");
    let (sa, sb) = (read_wav(&w.path("a.wav")), read_wav(&w.path("b.wav")));
    let (ta, tb) = (sa.channel(1), sb.channel(1));
    let n = ta.len();
    let (before, _) = tone(&ta[..48_000], 48000, 0);
    let (after, _) = tone(&ta[n - 48_000..], 48000, 0);
    let (other, _) = tone(&tb[tb.len() - 48_000..], 48000, 0);
    let (other0, _) = tone(&tb[..48_000], 48000, 0);
    let drop = db(after / before);
    eprintln!(
        "MEASURE capture volume: the turned-down recorder {drop:.3} dB, the other {:.3} dB",
        db(other / other0)
    );
    assert!((drop + 6.0).abs() < 0.1, "the recorder's tone fell {drop:.3} dB");
    assert!(db(other / other0).abs() < 0.01, "the other recorder's tone moved");
    assert!(
        counter_breaks(&sb.counter()).is_empty(),
        "the other recorder's counter broke"
    );
}
