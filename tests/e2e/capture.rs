//! Shared capture, end to end: real recorders (`arecord`, `arecord -M`, `arecord -N`, `sox`)
//! record at once through one `pcm.!default` from the copy-only test device, whose capture
//! side counts frames on channel 0 and plays a 1 kHz tone on channel 1. A recording proves
//! by itself that no frame was lost or repeated.

#[path = "../common/mod.rs"]
mod common;

use std::process::Child;
use std::time::Duration;

use common::mic::*;
use common::*;

fn arecord(w: &World, extra: &[&str], secs: u32, out: &str) -> Child {
    let secs = secs.to_string();
    let mut args = vec!["-D", "default", "-f", "S16_LE", "-c", "2", "-r", "48000", "-d", &secs];
    args.extend_from_slice(extra);
    args.push(out);
    w.spawn("arecord", &args)
}

fn finish(c: Child, what: &str) -> String {
    common::finish(c, Duration::from_secs(60), what)
}

/// Where `part` sits in `whole`, frame for frame (the counter repeats every 65536 frames, so
/// every candidate is compared whole).
fn offset_in(whole: &[i16], part: &[i16]) -> Option<usize> {
    (0..whole.len().saturating_sub(part.len()) + 1).find(|&i| whole[i] == part[0] && &whole[i..i + part.len()] == part)
}

fn status_json(w: &World) -> String {
    let st = w.run(&build_dir().join("rdmix-status").display().to_string(), &["--json"]);
    String::from_utf8_lossy(&st.stdout).into_owned()
}

/// The overruns the pump counted for the client with pid `pid`, by `rdmix-status`.
fn overruns_of(w: &World, pid: u32) -> Option<u64> {
    let json = status_json(w);
    let at = json.find(&format!("\"pid\":{pid},"))?;
    let rest = &json[at..];
    let u = rest.find("\"underruns\":")? + "\"underruns\":".len();
    rest[u..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[test]
fn three_programs_record_at_once_each_from_its_own_start() {
    assert!(
        have("arecord") && have("sox"),
        "arecord and sox are required: run the README's test command"
    );
    let w = World::new("");
    let a = arecord(&w, &["-q"], 4, "a.wav");
    w.wait_lanes(1, Duration::from_secs(10));
    wait_until(
        Duration::from_secs(10),
        || rec_frames(&w.path("a.wav")) > 4800,
        || "arecord never recorded".into(),
    );
    let m = arecord(&w, &["-q", "-M"], 2, "m.wav");
    let s = w.spawn(
        "sox",
        &[
            "-q", "-t", "alsa", "-r", "44100", "-c", "2", "-b", "32", "default", "s.wav", "trim", "0", "1.5",
        ],
    );
    for (c, what) in [(a, "arecord"), (m, "arecord -M"), (s, "sox")] {
        finish(c, what);
    }
    let (a, m, s) = (
        read_wav(&w.path("a.wav")),
        read_wav(&w.path("m.wav")),
        read_wav(&w.path("s.wav")),
    );
    let (ca, cm) = (a.counter(), m.counter());
    assert_eq!((ca.len(), cm.len()), (4 * 48000, 2 * 48000), "every frame asked for");
    assert_eq!(
        counter_breaks(&ca),
        Vec::<usize>::new(),
        "arecord lost or repeated frames"
    );
    assert_eq!(
        counter_breaks(&cm),
        Vec::<usize>::new(),
        "arecord -M lost or repeated frames"
    );
    // Bit-exact: the later recorder got the very samples the first did, from its own start.
    let at = offset_in(&ca, &cm).expect("arecord -M's recording is a stretch of arecord's");
    assert!(at > 0, "arecord -M started later, so later in the device's signal");
    assert_eq!(a.channel(1)[at..at + cm.len()], m.channel(1)[..], "the tone, bit-exact");
    // Converted: sox asked for 44.1 kHz and 32 bits, and hears the tone at its level and pitch.
    assert_eq!((s.rate, s.bits, s.channels), (44100, 32, 2));
    let frames = s.data.len() / 8;
    assert_eq!(frames, 66150, "sox recorded 1.5 s");
    let (amp, resid) = tone(&s.channel(1), 44100, 4410);
    assert!((amp - TONE_AMP).abs() < 0.005, "level {amp}");
    assert!(resid < 1e-3, "a clean 1 kHz tone at 44.1 kHz: residual {resid}");
    w.wait_pump_gone(Duration::from_secs(10));
    assert!(w.pump_log().contains("capture slave \"card\""), "{}", w.pump_log());
}

#[test]
fn a_stopped_recorder_overruns_alone_and_recovers() {
    assert!(have("arecord"), "arecord is required: run the README's test command");
    let w = World::new("");
    let a = arecord(&w, &["-q"], 5, "a.wav");
    // The stopped one reads non-blocking (-N): poll wake-ups and EAGAIN, then an overrun.
    let b = arecord(&w, &["-N"], 5, "b.wav");
    let pid = b.id();
    w.wait_lanes(2, Duration::from_secs(10));
    wait_until(
        Duration::from_secs(10),
        || rec_frames(&w.path("b.wav")) > 4800,
        || "arecord -N never recorded".into(),
    );
    kill(pid as i32, libc::SIGSTOP);
    // It is stopped until the pump has seen it overrun: its stream alone stops.
    wait_until(
        Duration::from_secs(10),
        || overruns_of(&w, pid).is_some_and(|n| n >= 1),
        || format!("the pump never saw the stopped recorder overrun: {}", status_json(&w)),
    );
    kill(pid as i32, libc::SIGCONT);
    finish(a, "arecord");
    let err = finish(b, "arecord -N");
    assert!(err.contains("overrun"), "arecord -N saw its overrun: {err}");
    let ca = read_wav(&w.path("a.wav")).counter();
    assert_eq!(ca.len(), 5 * 48000);
    assert_eq!(
        counter_breaks(&ca),
        Vec::<usize>::new(),
        "the other recording went on untouched"
    );
    let cb = read_wav(&w.path("b.wav")).counter();
    let breaks = counter_breaks(&cb);
    assert_eq!(
        breaks.len(),
        1,
        "one gap, where it was stopped, then exact again: {breaks:?}"
    );
    assert_eq!(cb.len(), 5 * 48000, "it recovered and recorded all it asked for");
}

#[test]
fn a_killed_recorder_leaves_the_others_and_a_killed_pump_is_replaced() {
    assert!(have("arecord"), "arecord is required: run the README's test command");
    let w = World::new("");
    let a = arecord(&w, &[], 4, "a.wav");
    let b = arecord(&w, &["-q"], 30, "b.wav");
    w.wait_lanes(2, Duration::from_secs(10));
    wait_until(
        Duration::from_secs(10),
        || rec_frames(&w.path("b.wav")) > 4800 && rec_frames(&w.path("a.wav")) > 4800,
        || "the recorders never recorded".into(),
    );
    kill(b.id() as i32, libc::SIGKILL);
    let _ = wait_child(b, Duration::from_secs(10), "killed arecord");
    wait_until(
        Duration::from_secs(10),
        || w.pump_log().contains("left lane"),
        || format!("the pump never noticed: {}", w.pump_log()),
    );
    let before = rec_frames(&w.path("a.wav"));
    wait_until(
        Duration::from_secs(10),
        || rec_frames(&w.path("a.wav")) > before + 4800,
        || "the other recorder stopped with the killed one".into(),
    );
    let pumps = w.pumps();
    assert_eq!(pumps.len(), 1, "one capture pump");
    kill(pumps[0], libc::SIGKILL);
    let err = finish(a, "arecord");
    assert!(err.contains("overrun"), "the lost pump is an xrun to arecord: {err}");
    let ca = read_wav(&w.path("a.wav")).counter();
    assert_eq!(ca.len(), 4 * 48000, "it recovered and recorded all it asked for");
    let breaks = counter_breaks(&ca);
    assert!(
        !breaks.is_empty() && breaks.len() <= 2,
        "a gap where the pump died, then exact again: {breaks:?}"
    );
    assert_eq!(
        w.pump_log().matches("capture slave").count(),
        2,
        "a new pump took over: {}",
        w.pump_log()
    );
}
