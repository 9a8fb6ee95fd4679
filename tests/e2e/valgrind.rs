//! Memcheck over the real thing: `aplay`, `aplay -M` and `aplay -N` load the plugin under
//! valgrind, `amixer` its control plugin, and the pumps they spawn run under valgrind too
//! (through the `pump` option).
//! Any invalid access, use of uninitialised memory or definite leak fails the test.
//! (Sanitizers need a nightly toolchain; valgrind works on the stable build, inside aplay.)
//! `scripts/ci/valgrind.sh` also runs the in-process C-API suites under memcheck.

#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;

const BAD: &[&str] = &[
    "Invalid read",
    "Invalid write",
    "Invalid free",
    "uninitialised",
    "definitely lost in",
    "Mismatched free",
    "Syscall param",
    "Process terminating",
];

#[test]
fn plugin_and_pump_are_memcheck_clean() {
    assert!(have("valgrind") && have("aplay"), "valgrind and aplay are required");
    let w = World::new("");
    let pump = format!("{}/rdmix-pump", build_dir().display());
    let vg = |log: &str| {
        vec![
            "-q".to_string(),
            "--leak-check=full".into(),
            "--errors-for-leak-kinds=definite".into(),
            format!("--log-file={}/{log}.%p.vg", w.dir.display()),
        ]
    };
    let wrapper = w.path("pump.sh");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec valgrind {} {pump} \"$@\"\n", vg("pump").join(" ")),
    )
    .unwrap();
    chmod(&wrapper, 0o755);
    std::fs::write(
        w.path(".asoundrc"),
        std::fs::read_to_string(w.path(".asoundrc")).unwrap()
            + &format!(
                "pcm.vgmix {{ type rdmix; ipc_key {k}; pump \"{p}\"; slave.pcm \"card\" }}\n\
                 ctl.vgmix {{ type rdmix; ipc_key {k}; pump \"{p}\"; slave.pcm \"card\" }}\n",
                k = w.key + 0x100,
                p = wrapper.display()
            ),
    )
    .unwrap();
    write_wav_s16(&w.path("s.wav"), 48000, &vec![[1000, -1000]; 48_000]);
    let spawn = |i: usize, flags: &[&str]| {
        let mut args = vg(&format!("aplay{i}"));
        args.push("aplay".into());
        args.extend(flags.iter().map(|s| s.to_string()));
        args.extend(["-D".into(), "vgmix".into(), "s.wav".into()]);
        w.cmd("valgrind").args(&args).spawn().unwrap()
    };
    // The first starts the pump alone: three programs and a pump starting under valgrind at
    // once on two cores can outlast the plugin's 5 s attach deadline.
    let mut kids = vec![spawn(0, &["-q"])];
    wait_until(
        Duration::from_secs(60),
        || w.pump_log().contains("took lane"),
        || format!("the first aplay never attached: {}", w.pump_log()),
    );
    kids.push(spawn(1, &["-q", "-M"]));
    kids.push(spawn(2, &["-q", "-N"]));
    // The control plugin too, in amixer: it lists, reads and writes while they play (and
    // starts the capture pump, under valgrind as well).
    for (i, a) in [
        &["scontents"][..],
        &["sset", "Master", "--", "-3dB"],
        &["sset", "Master", "--", "0dB"],
    ]
    .iter()
    .enumerate()
    {
        let mut args = vg(&format!("amixer{i}"));
        args.extend(["amixer", "-D", "vgmix"].iter().map(|s| s.to_string()));
        args.extend(a.iter().map(|s| s.to_string()));
        let o = wait_child(
            w.cmd("valgrind").args(&args).spawn().unwrap(),
            Duration::from_secs(120),
            &format!("amixer {a:?} under valgrind"),
        );
        assert!(
            o.status.success(),
            "amixer {a:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    for (i, k) in kids.into_iter().enumerate() {
        let o = wait_child(k, Duration::from_secs(120), &format!("aplay {i} under valgrind"));
        assert!(o.status.success(), "aplay {i}: {}", String::from_utf8_lossy(&o.stderr));
    }
    // The pump exits after its linger; its memcheck report is written then.
    wait_until(
        Duration::from_secs(60),
        || pumps_for_key(w.key + 0x100).is_empty(),
        || "pump still running".into(),
    );
    wait_until(
        Duration::from_secs(30),
        || {
            !std::process::Command::new("pgrep")
                .args(["-f", &wrapper.display().to_string()])
                .status()
                .unwrap()
                .success()
        },
        || "valgrind'd pump still exiting".into(),
    );
    let mut reports = 0;
    for e in std::fs::read_dir(&w.dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".vg") {
            continue;
        }
        reports += 1;
        let text = std::fs::read_to_string(e.path()).unwrap();
        for bad in BAD {
            assert!(!text.contains(bad), "{name}: {bad}\n{text}");
        }
    }
    eprintln!("MEASURE valgrind: {reports} memcheck reports (3 aplay, 3 amixer, 2 pumps), 0 errors");
    assert!(
        reports >= 8,
        "expected reports from 3 clients, 3 mixers and the two pumps, got {reports}"
    );
}
