//! What users see when they ask: `rdmix-status` while three programs play, and the setup
//! block of `aplay -v`.

#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;

/// The row `rdmix-status` prints for `pid`, split into its columns.
fn row(table: &str, pid: u32) -> Option<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cols| cols.first().is_some_and(|c| *c == pid.to_string()))
}

#[test]
fn status_lists_three_programs_field_by_field() {
    assert!(have("aplay"), "aplay is required");
    let w = World::new("");
    let status = format!("{}/rdmix-status", build_dir().display());
    // (format, rate, channels) each program plays in, from /dev/zero for 30 s at most.
    let plays = [("S16_LE", 44100, 2), ("S32_LE", 32000, 1), ("FLOAT_LE", 22050, 2)];
    let mut kids: Vec<_> = plays
        .iter()
        .map(|(f, r, c)| {
            let (r, c) = (r.to_string(), c.to_string());
            w.spawn(
                "aplay",
                &["-q", "-t", "raw", "-f", f, "-r", &r, "-c", &c, "-d", "30", "/dev/zero"],
            )
        })
        .collect();
    let pids: Vec<u32> = kids.iter().map(|k| k.id()).collect();
    let table = || String::from_utf8_lossy(&w.run(&status, &[]).stdout).into_owned();
    wait_until(
        Duration::from_secs(10),
        || {
            let t = table();
            pids.iter()
                .all(|p| row(&t, *p).is_some_and(|r| r.get(6).is_some_and(|s| s == "running")))
        },
        || format!("rdmix-status never showed all three running: {}", table()),
    );
    let t = table();
    let me = String::from_utf8_lossy(&std::process::Command::new("id").arg("-un").output().unwrap().stdout)
        .trim()
        .to_string();
    // PID PROGRAM USER FORMAT RATE CH STATE BUFFER LATENCY ms UNDERRUNS VOLUME dB
    for ((f, r, c), pid) in plays.iter().zip(&pids) {
        let cols = row(&t, *pid).unwrap();
        assert_eq!(cols.len(), 13, "{cols:?}");
        assert_eq!(cols[11..], ["0.0", "dB"], "a new program plays at full volume");
        assert_eq!(cols[1], "aplay");
        assert_eq!(cols[2], me);
        assert_eq!(cols[3], *f, "format of pid {pid}");
        assert_eq!(cols[4], r.to_string(), "rate of pid {pid}");
        assert_eq!(cols[5], c.to_string(), "channels of pid {pid}");
        assert_eq!(cols[6], "running");
        let buffer: u64 = cols[7].parse().unwrap();
        // aplay asks for 500 ms; the latency adds the device's buffer on top.
        assert!(
            (*r as u64 / 4..=*r as u64).contains(&buffer),
            "buffer {buffer} of pid {pid}"
        );
        let latency: f64 = cols[8].parse().unwrap();
        assert!(
            latency >= buffer as f64 * 1000.0 / *r as f64,
            "latency {latency} ms of pid {pid}"
        );
        assert_eq!(cols[9], "ms");
        cols[10].parse::<u32>().unwrap();
    }
    // The pump's line names this world's device, and the document agrees with the table.
    assert!(t.contains("slave \"card\""), "{t}");
    assert!(t.contains("device running"), "three programs play: {t}");
    let doc = String::from_utf8_lossy(&w.run(&status, &["--json"]).stdout).into_owned();
    for ((f, r, c), pid) in plays.iter().zip(&pids) {
        let want = format!(
            "\"pid\":{pid},\"uid\":{},\"user\":\"{me}\",\"program\":\"aplay\",",
            uid_of(&me)
        );
        assert!(doc.contains(&want), "{want} in {doc}");
        let rec = doc.split(&want).nth(1).unwrap();
        assert!(
            rec.contains(&format!(
                "\"format\":\"{f}\",\"rate\":{r},\"channels\":{c},\"state\":\"running\""
            )),
            "{rec}"
        );
        assert!(rec.contains("\"volume\":{\"db\":0.00,\"muted\":false}"), "{rec}");
    }
    assert!(doc.contains("\"master\":{\"db\":0.00,\"muted\":false}"), "{doc}");
    assert!(t.contains("master 0.0 dB"), "{t}");
    for k in &mut kids {
        let _ = k.kill();
        let _ = k.wait();
    }
}

#[test]
fn aplay_v_shows_the_negotiated_setup() {
    assert!(have("aplay"), "aplay is required");
    let w = World::new("");
    write_wav_s16(&w.path("s.wav"), 48000, &vec![[0, 0]; 4800]);
    let o = w.run("aplay", &["-v", "--period-size=1024", "--buffer-size=4096", "s.wav"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    let line = out
        .lines()
        .position(|l| l.starts_with("rdmix PCM: slave \"card\""))
        .expect(&out);
    let setup = out.lines().position(|l| l == "Its setup is:").expect(&out);
    assert!(setup == line + 1, "the setup block follows rdmix's line: {out}");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(name)?
                    .trim()
                    .strip_prefix(':')
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("{name} in {out}"))
    };
    assert_eq!(field("buffer_size"), "4096");
    assert_eq!(field("period_size"), "1024");
    assert_eq!(field("format"), "S16_LE");
    assert_eq!(field("rate"), "48000");
    assert_eq!(field("access"), "RW_INTERLEAVED");
}
