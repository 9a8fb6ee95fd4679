//! Bad configuration fails `snd_pcm_open` cleanly: a non-zero exit from a real program and
//! one line that names rdmix, the option and the cause. No pump is left behind.

#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;

/// (PCM definition body, what the error line must say)
const CASES: &[(&str, &str)] = &[
    (
        r#"type rdmix; ipc_key {k}; slave.pcm "card"; bogus 1"#,
        "rdmix: bogus: unknown option",
    ),
    (
        r#"type rdmix; ipc_key {k}; slave { pcm "card"; rate "fast" }"#,
        "rdmix: slave.rate: expected an integer",
    ),
    (
        r#"type rdmix; ipc_key {k}; slave { pcm "card"; channels 0 }"#,
        "rdmix: slave.channels: 0 is out of range",
    ),
    (
        r#"type rdmix; ipc_key {k}; slave { pcm "card"; period_size -5 }"#,
        "rdmix: slave.period_size: -5 is out of range",
    ),
    (
        r#"type rdmix; ipc_key {k}; slave { pcm "card"; format "S17_LE" }"#,
        "rdmix: slave.format: unknown",
    ),
    (
        r#"type rdmix; ipc_key {k}; slave { pcm "card"; surprise 3 }"#,
        "rdmix: slave.surprise: unknown option",
    ),
    (r#"type rdmix; ipc_key {k}"#, "rdmix: slave.pcm: missing"),
    (
        r#"type rdmix; ipc_key {k}; slave.pcm """#,
        "rdmix: slave.pcm: must not be empty",
    ),
    (
        r#"type rdmix; ipc_key {k}; slave.pcm 42"#,
        "rdmix: slave.pcm: expected a string",
    ),
    (
        r#"type rdmix; ipc_key {k}; slave { pcm ""; device 1 }"#,
        "rdmix: slave.device: needs slave.card",
    ),
    (
        r#"type rdmix; ipc_key {k}; slave { card 32 }"#,
        "rdmix: slave.card: 32 is out of range",
    ),
    // An empty pcm with a card is hw:CARD,DEV (how 50-rdmix.conf's arguments arrive).
    (
        r#"type rdmix; ipc_key {k}; slave { pcm ""; card "rdmixnosuchcard"; device 3 }"#,
        "\"hw:rdmixnosuchcard,3\"",
    ),
    (
        r#"type rdmix; ipc_key 0; slave.pcm "card""#,
        "rdmix: ipc_key: 0 is out of range",
    ),
    (
        r#"type rdmix; ipc_key {k}; ipc_perm 0400; slave.pcm "card""#,
        "rdmix: ipc_perm",
    ),
    (
        r#"type rdmix; ipc_key {k}; ipc_gid "no-such-group-rdmix"; slave.pcm "card""#,
        "rdmix: ipc_gid: no such group",
    ),
    (
        r#"type rdmix; ipc_key {k}; ipc_key_add_uid "maybe"; slave.pcm "card""#,
        "rdmix: ipc_key_add_uid: expected a boolean",
    ),
    (
        r#"type rdmix; ipc_key {k}; pump "relative/path"; slave.pcm "card""#,
        "rdmix: pump",
    ),
    (
        r#"type rdmix; ipc_key {k}; slave.pcm "nosuchpcm""#,
        "rdmix: slave.pcm \"nosuchpcm\": cannot open",
    ),
    (
        r#"type rdmix; ipc_key {k}; slave.pcm "mmaponly""#,
        "refuses both RW_INTERLEAVED and RW_NONINTERLEAVED access",
    ),
    (
        r#"type rdmix; ipc_key {k}; slave { pcm "card"; rate 44100 }"#,
        "rdmix: slave.rate 44100: refused",
    ),
    (
        r#"type rdmix; ipc_key {k}; slave { pcm "card"; channels 6 }"#,
        "rdmix: slave.channels 6: refused",
    ),
    (
        r#"type rdmix; ipc_key {k}; slave { pcm "card"; format "S32_LE" }"#,
        "rdmix: slave.format S32_LE: refused",
    ),
    (r#"type rdmix; ipc_key {k}; slave.pcm "bad""#, "leads back to rdmix"),
    (
        r#"type rdmix; ipc_key {k}; pump "/nonexistent/rdmix-pump"; slave.pcm "card""#,
        "rdmix: pump: cannot start /nonexistent/rdmix-pump",
    ),
    (
        r#"type rdmix; ipc_key {k}; ipc_perm 0660; pump "/tmp/rdmix-pump"; slave.pcm "card""#,
        "rdmix: pump: \"/tmp/rdmix-pump\": a pump shared with other users (ipc_perm 0660) runs only the rdmix-pump installed",
    ),
    (
        r#"type rdmix; ipc_key {k}; ipc_user_lanes 0; slave.pcm "card""#,
        "rdmix: ipc_user_lanes: 0 is out of range [1, 64]",
    ),
];

#[test]
fn bad_configs_fail_with_one_clear_line() {
    assert!(have("aplay"), "aplay is required (alsa-utils)");
    let probe = World::new("");
    write_wav_s16(&probe.path("x.wav"), 48000, &[[0, 0]; 480]);
    let mut keys = Vec::new();
    for (i, (body, want)) in CASES.iter().enumerate() {
        let key = probe.key + 0x1000 + i as u32;
        keys.push(key);
        let extra = format!(
            "pcm.mmaponly {{ type rdmixfake; file \"{}/mm.wav\"; mmap_only true }}\npcm.bad {{ {} }}",
            probe.dir.display(),
            body.replace("{k}", &key.to_string())
        );
        let w = World::new(&extra);
        write_wav_s16(&w.path("x.wav"), 48000, &[[0, 0]; 480]);
        let c = w.spawn("aplay", &["-q", "-D", "bad", "x.wav"]);
        let o = wait_child(c, Duration::from_secs(20), &format!("case {i}"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "case {i} ({body}) should fail");
        assert!(err.contains(want), "case {i} ({body}): expected «{want}» in:\n{err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.contains("rdmix:")).collect();
        assert_eq!(lines.len(), 1, "case {i}: exactly one rdmix line:\n{err}");
    }
    for k in keys {
        wait_until(
            Duration::from_secs(5),
            || pumps_for_key(k).is_empty(),
            || format!("pump left for key {k:#x}"),
        );
    }
}
