//! alsa-lib's own plugins as rdmix's slave, in both directions, through real aplay and
//! arecord: `null`, `file` (with and without `infile`), `plug`, `route`, `rate`, `linear`,
//! `multi`, `asym` and `softvol`; and slaves whose poll descriptors never fire, or always
//! fire. Each finishes within its audio's length plus a margin, and where the chain ends in
//! a file, what arrived is checked frame by frame. (dmix and dsnoop need a card: they are
//! tested in the VM, tests/vm/guest.py.)

#[path = "../common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::mic::counter_breaks;
use common::*;

/// One second of audio; every case must be done within it plus this.
const MARGIN: Duration = Duration::from_secs(4);
const FRAMES: u64 = 48_000;

/// Slave definitions every case can name. `out` is a raw S16 stereo file behind `null`;
/// `in.raw` is what a capture through `file`'s `infile` reads.
const DEFS: &str = r#"
pcm.fileout { type file; slave.pcm "null"; file "{dir}/out.raw"; format "raw" }
pcm.filein { type file; slave.pcm "null"; file "{dir}/unused.raw"; infile "{dir}/in.raw"; format "raw" }
pcm.s_null { type null }
pcm.s_file { type file; slave.pcm "null"; file "{dir}/out.raw"; format "raw" }
pcm.s_plug { type plug; slave.pcm "fileout" }
pcm.s_route { type route; slave { pcm "fileout"; channels 2 } ttable.0.0 1; ttable.1.1 1 }
pcm.s_rate { type rate; slave { pcm "fileout"; rate 44100 } }
pcm.s_linear { type linear; slave { pcm "fileout"; format S32_LE } }
pcm.s_multi { type multi; slaves.a { pcm "fileout"; channels 2 } slaves.b { pcm "null"; channels 2 }
    bindings.0 { slave a; channel 0 } bindings.1 { slave a; channel 1 } }
pcm.s_asym { type asym; playback.pcm "fileout"; capture.pcm "filein" }
pcm.s_softvol { type softvol; slave.pcm "fileout"; control { name "rdmix test"; card 0 } }
pcm.s_never { type rdmixfake; file "{dir}/rec.wav"; poll "never" }
pcm.s_always { type rdmixfake; file "{dir}/rec.wav"; poll "always" }
"#;

fn world(slave: &str) -> World {
    let w = World::new(&format!(
        "{DEFS}\npcm.over {{ type rdmix; ipc_key {{key}}; slave.pcm \"{slave}\" }}\n"
    ));
    let input = s16_bytes(&counting_stream(FRAMES * 3));
    std::fs::write(w.path("in.raw"), input).unwrap();
    w
}

/// Runs `program` to its end within a second of audio plus the margin.
fn timely(w: &World, program: &str, args: &[&str]) -> std::process::Output {
    let t0 = Instant::now();
    let o = wait_child(w.spawn(program, args), Duration::from_secs(1) + MARGIN, program);
    let took = t0.elapsed();
    assert!(
        took <= Duration::from_secs(1) + MARGIN,
        "{program} took {took:?} for 1 s of audio"
    );
    o
}

/// aplay of a second of the counting stream through rdmix over `slave`; returns the
/// world, once its pump is gone.
fn play_over(slave: &str) -> World {
    let w = world(slave);
    write_wav_s16(&w.path("s.wav"), 48000, &counting_stream(FRAMES));
    let o = timely(&w, "aplay", &["-q", "-D", "over", "s.wav"]);
    assert!(
        o.status.success(),
        "aplay over {slave}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    w.wait_pump_gone(Duration::from_secs(10));
    w
}

/// arecord of a second through rdmix over `slave`; returns the frames.
fn record_over(slave: &str) -> (World, Vec<[i16; 2]>) {
    let w = world(slave);
    let got = record_a_second(&w, &format!("arecord over {slave}"));
    (w, got)
}

/// arecord of a second through `w`'s `over`, within a second plus the margin; the frames.
fn record_a_second(w: &World, what: &str) -> Vec<[i16; 2]> {
    let args = [
        "-q", "-D", "over", "-f", "S16_LE", "-c", "2", "-r", "48000", "-d", "1", "-t", "raw", "r.raw",
    ];
    let o = timely(w, "arecord", &args);
    assert!(o.status.success(), "{what}: {}", String::from_utf8_lossy(&o.stderr));
    let got = read_raw_s16(&w.path("r.raw"));
    assert_eq!(got.len() as u64, FRAMES, "{what}: frames recorded");
    got
}

/// The counting stream arrived whole and in order in the raw file `out.raw`.
fn out_is_exact(w: &World, slave: &str) {
    let out = read_raw_s16(&w.path("out.raw"));
    assert_eq!(heard(&out), counting_stream(FRAMES), "{slave}: what the file received");
}

#[test]
fn null_both_ways() {
    play_over("s_null");
    let (_, got) = record_over("s_null");
    assert!(got.iter().all(|f| *f == [0, 0]), "null captures silence");
}

#[test]
fn file_both_ways_with_and_without_infile() {
    let w = play_over("s_file");
    out_is_exact(&w, "file");
    // Without infile, capture reads its slave (null): silence, in real time.
    let (_, got) = record_over("s_file");
    assert!(
        got.iter().all(|f| *f == [0, 0]),
        "file without infile captures its slave"
    );
    // With infile, the recording is the file, from its start, paced by the clock.
    let (_, got) = record_over("filein");
    assert_eq!(
        got,
        counting_stream(FRAMES),
        "file with infile: the recording is the file"
    );
}

#[test]
fn plug_route_and_linear_pass_every_frame() {
    for slave in ["s_plug", "s_route"] {
        let w = play_over(slave);
        out_is_exact(&w, slave);
        record_over(slave);
    }
    let w = play_over("s_linear");
    let b = std::fs::read(w.path("out.raw")).unwrap();
    let got: Vec<[i16; 2]> = b
        .chunks_exact(8)
        .map(|c| {
            let l = i32::from_le_bytes(c[0..4].try_into().unwrap());
            let r = i32::from_le_bytes(c[4..8].try_into().unwrap());
            [(l >> 16) as i16, (r >> 16) as i16]
        })
        .collect();
    assert_eq!(
        heard(&got),
        counting_stream(FRAMES),
        "linear to S32: every frame, shifted"
    );
    record_over("s_linear");
}

#[test]
fn rate_multi_and_asym_both_ways() {
    let w = play_over("s_rate");
    let out = read_raw_s16(&w.path("out.raw"));
    let n = heard(&out).len() as i64;
    assert!((n - 44_100).abs() < 441, "rate to 44.1 kHz: {n} frames for 1 s");
    record_over("s_rate");
    let w = play_over("s_multi");
    out_is_exact(&w, "multi");
    record_over("s_multi");
    let w = play_over("s_asym");
    out_is_exact(&w, "asym");
    let (_, got) = record_over("s_asym");
    assert_eq!(got, counting_stream(FRAMES), "asym's capture side is its infile");
}

/// softvol needs a card's control: with none it cannot open, and rdmix says so in one line
/// naming the slave, in both directions, without hanging.
#[test]
fn softvol_opens_or_says_why() {
    for (program, args) in [
        ("aplay", vec!["-q", "-D", "over", "s.wav"]),
        (
            "arecord",
            vec![
                "-q", "-D", "over", "-f", "S16_LE", "-c", "2", "-r", "48000", "-d", "1", "-t", "raw", "r.raw",
            ],
        ),
    ] {
        let w = world("s_softvol");
        write_wav_s16(&w.path("s.wav"), 48000, &counting_stream(FRAMES));
        let o = timely(&w, program, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        if o.status.success() {
            continue;
        }
        assert!(
            err.lines().any(|l| l.contains("rdmix: slave.pcm \"s_softvol\"")),
            "{program} over softvol failed without rdmix's line: {err}"
        );
    }
}

/// A slave whose descriptor never fires, and one whose descriptor always fires: the pump
/// stops trusting them and paces the device by the clock, in both directions.
#[test]
fn useless_poll_descriptors_are_paced_by_the_clock() {
    for slave in ["s_never", "s_always"] {
        let w = play_over(slave);
        assert_eq!(
            heard(&read_rec_s16(&w.path("rec.wav"))),
            counting_stream(FRAMES),
            "{slave}: played exactly"
        );
        let log = w.pump_log();
        assert!(!log.contains(": slave xrun "), "{slave}: {log}");
        let (w, got) = record_over(slave);
        let ch0: Vec<i16> = got.iter().map(|f| f[0]).collect();
        assert!(
            counter_breaks(&ch0).is_empty(),
            "{slave}: the capture counter is unbroken"
        );
        assert!(!w.pump_log().contains(": slave xrun "), "{slave}: {}", w.pump_log());
    }
}

/// A mixer open on the definition (alsamixer in tmux) keeps both pumps: each closes its
/// slave, here `asym` over `file` (playback) and `file`'s `infile` (capture), a linger
/// after its program, and opens it again for the next, exact both times in both
/// directions.
#[test]
fn a_watched_pump_closes_and_reopens_alsas_own_plugins_both_ways() {
    assert!(have("tmux") && have("alsamixer"), "tmux and alsamixer are required");
    let w = World::new(&format!(
        "{DEFS}\npcm.over {{ type rdmix; ipc_key {{key}}; slave.pcm \"s_asym\" }}\n\
         ctl.over {{ type rdmix; ipc_key {{key}}; slave.pcm \"s_asym\" }}\n"
    ));
    std::fs::write(w.path("in.raw"), s16_bytes(&counting_stream(FRAMES * 3))).unwrap();
    write_wav_s16(&w.path("s.wav"), 48000, &counting_stream(FRAMES));
    let t = common::levels::Tmux::start(
        &format!("rdmix-slaves-{}", w.key),
        &format!(
            "env HOME={} RDMIX_PUMP_LOG={} TERM=xterm alsamixer -D over",
            w.dir.display(),
            w.path("pump.log").display()
        ),
    );
    wait_until(
        Duration::from_secs(20),
        || w.pumps().len() == 2,
        || format!("alsamixer never started both pumps:\n{}", t.screen()),
    );
    let closings = || w.pump_log().matches("closing \"s_asym\"").count();
    // Which pumps closed the slave, by the pids their log lines carry (a pump's start-up
    // forks, so the processes seen before it logs may not be the daemon's).
    let closers = || {
        let mut pids: Vec<String> = w
            .pump_log()
            .lines()
            .filter(|l| l.contains("closing \"s_asym\""))
            .filter_map(|l| Some(l.strip_prefix("rdmix-pump[")?.split(']').next()?.to_string()))
            .collect();
        pids.sort();
        pids.dedup();
        pids
    };
    for round in 1..=2 {
        let o = timely(&w, "aplay", &["-q", "-D", "over", "s.wav"]);
        assert!(
            o.status.success(),
            "aplay, round {round}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got = record_a_second(&w, &format!("arecord, round {round}"));
        wait_until(
            Duration::from_secs(10),
            || closings() >= 2 * round,
            || {
                format!(
                    "round {round}: the watched pumps did not close their slaves: {}",
                    w.pump_log()
                )
            },
        );
        out_is_exact(&w, "asym (playback), watched");
        assert_eq!(
            got,
            counting_stream(FRAMES),
            "round {round}: the recording is the infile from its start"
        );
        assert_eq!(
            closers().len(),
            2,
            "round {round}: the same two pumps closed it each time: {}",
            w.pump_log()
        );
    }
    drop(t);
    w.wait_pump_gone(Duration::from_secs(10));
}
