//! Two (and three) real users on one machine. As root, the test creates the users and a
//! group, then runs `aplay` as each with `runuser`.
//!
//! - defaults (`ipc_perm 0600`, one key): each user's private pump is their own;
//! - `ipc_key_add_uid true`: each user gets a pump of their own;
//! - `ipc_perm 0660` + `ipc_gid`: group members share one pump, which reads its slave from
//!   the system-wide configuration only; an outsider is refused, and nobody but the pump's
//!   user can open the pump's segment through its descriptor;
//! - a shared key whose slave is defined only in a user's `~/.asoundrc` is refused clearly.

#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;

const GROUP: &str = "rdmixtestg";
const IN_A: &str = "rdmixtesta";
const IN_B: &str = "rdmixtestb";
const OUT: &str = "rdmixtestc";

/// A world every test user can read and write, with a second of sound to play.
fn shared_world(extra: &str) -> World {
    let w = World::open_to_all(extra, &["rec.wav", "card.log"]);
    write_wav_s16(&w.path("s.wav"), 48000, &vec![[1, -1]; 2 * 48_000]);
    w
}

fn as_user(w: &World, user: &str, args: &[&str]) -> std::process::Child {
    w.as_user(user, args).spawn().unwrap()
}

fn pump_logs(w: &World) -> String {
    w.user_logs(&[IN_A, IN_B, OUT])
}

fn wait_attached(w: &World) {
    wait_until(
        Duration::from_secs(10),
        || pump_logs(w).contains("took lane"),
        || "first user never attached".into(),
    );
}

#[test]
fn users_and_permissions() {
    if !is_root() {
        eprintln!("SKIPPED: creating test users needs root; the README's test command runs as root");
        return;
    }
    assert!(
        have("runuser") && have("aplay"),
        "runuser (util-linux) and aplay are required"
    );
    common::ensure_test_users(GROUP, &[IN_A, IN_B], &[OUT]);

    // 1. Defaults: one key, ipc_perm 0600. A private key's socket lives in each user's own
    //    0700 directory, so the second user gets a pump of their own: nobody can join, or
    //    squat, another user's private pump.
    let w = shared_world("");
    let a = as_user(&w, IN_A, &["aplay", "-q", "s.wav"]);
    wait_attached(&w);
    let o = wait_child(
        as_user(&w, IN_B, &["aplay", "-q", "s.wav"]),
        Duration::from_secs(30),
        "user B",
    );
    assert!(o.status.success(), "user B: {}", String::from_utf8_lossy(&o.stderr));
    assert!(wait_child(a, Duration::from_secs(30), "user A").status.success());
    w.wait_pump_gone(Duration::from_secs(10));
    let logs = pump_logs(&w);
    assert_eq!(
        logs.matches(" at 48000 Hz").count(),
        2,
        "a private pump per user: {logs}"
    );

    // 2. ipc_key_add_uid: a pump per user, both play.
    let w = shared_world("pcm.peruser { type rdmix; ipc_key {key}; ipc_key_add_uid true; slave.pcm \"card\" }");
    let a = as_user(&w, IN_A, &["aplay", "-q", "-D", "peruser", "s.wav"]);
    let b = as_user(&w, IN_B, &["aplay", "-q", "-D", "peruser", "s.wav"]);
    for (who, c) in [("A", a), ("B", b)] {
        let o = wait_child(c, Duration::from_secs(30), who);
        // Both pumps open the same test device file; what matters here is that both play.
        assert!(o.status.success(), "user {who}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let logs = pump_logs(&w);
    assert_eq!(
        logs.matches(" at 48000 Hz").count(),
        2,
        "two pumps, one per user: {logs}"
    );

    // 3. ipc_perm 0660 + ipc_gid: group members share one pump; an outsider is refused.
    //    A shared pump reads its slave from the system-wide configuration only.
    let w = shared_world(&format!(
        "pcm.group {{ type rdmix; ipc_key {{key}}; ipc_perm 0660; ipc_gid \"{GROUP}\"; slave.pcm \"rdmixsys_{{key}}\" }}
pcm.private_slave {{ type rdmix; ipc_key {{key}}; ipc_perm 0660; ipc_gid \"{GROUP}\"; slave.pcm \"card\" }}"
    ));
    let _sys = SystemConf::card(&format!("rdmixsys_{}", w.key), &w.path("rec.wav"));
    let o = wait_child(
        as_user(&w, IN_A, &["aplay", "-q", "-D", "private_slave", "s.wav"]),
        Duration::from_secs(30),
        "user A, slave in ~/.asoundrc",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("slave.pcm \"card\"") && err.contains("system-wide ALSA configuration"),
        "a shared pump must not read one user's ~/.asoundrc: {err}"
    );
    let a = as_user(&w, IN_A, &["aplay", "-q", "-D", "group", "s.wav"]);
    wait_attached(&w);
    let b = as_user(&w, IN_B, &["aplay", "-q", "-D", "group", "s.wav"]);
    let o = wait_child(
        as_user(&w, OUT, &["aplay", "-q", "-D", "group", "s.wav"]),
        Duration::from_secs(30),
        "outsider",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("permission denied"),
        "outsider: {err}"
    );
    // Nobody but the pump's own user can open its segment through its descriptor: not an
    // outsider, and not a group member either (members get it from the pump, read-only).
    let memfd = segment_fd(&w.pumps()).expect("the pump's segment");
    for who in [OUT, IN_B] {
        let peek = w
            .cmd("runuser")
            .args(["-u", who, "--", "head", "-c", "4", &memfd.display().to_string()])
            .output()
            .unwrap();
        assert!(!peek.status.success(), "{who} read the pump's segment");
        eprintln!(
            "MEASURE permissions: {who} opening the pump's segment: {}",
            String::from_utf8_lossy(&peek.stderr).trim()
        );
    }
    for (who, c) in [("A", a), ("B", b)] {
        let o = wait_child(c, Duration::from_secs(30), who);
        assert!(
            o.status.success(),
            "group member {who}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    w.wait_pump_gone(Duration::from_secs(10));
    let logs = pump_logs(&w);
    assert_eq!(logs.matches(" at 48000 Hz").count(), 1, "one shared pump: {logs}");
    assert_eq!(logs.matches(" took lane ").count(), 2, "{logs}");
    let rec = read_rec_s16(&w.path("rec.wav"));
    let sum: i64 = rec.iter().map(|f| f[0] as i64).sum();
    assert_eq!(sum, 2 * 2 * 48_000, "both members' frames were mixed");
}
