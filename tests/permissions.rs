//! Two (and three) real users on one machine. As root, the test creates the users and a
//! group, then runs `aplay` as each with `runuser`.
//!
//! - defaults (`ipc_perm 0600`, one key): the second user gets a clear EACCES naming the option;
//! - `ipc_key_add_uid true`: each user gets a pump of their own;
//! - `ipc_perm 0660` + `ipc_gid`: group members share one pump; an outsider is refused and
//!   cannot open the segment through the pump's descriptor either.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const GROUP: &str = "rdmixtestg";
const IN_A: &str = "rdmixtesta";
const IN_B: &str = "rdmixtestb";
const OUT: &str = "rdmixtestc";

fn root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn ensure_users() {
    let run = |args: &[&str]| {
        let o = Command::new(args[0]).args(&args[1..]).output().expect(args[0]);
        // 9: already exists — the users are kept between runs.
        assert!(
            o.status.success() || o.status.code() == Some(9),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&["groupadd", "-f", GROUP]);
    for u in [IN_A, IN_B] {
        run(&["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", "-G", GROUP, u]);
    }
    run(&["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", OUT]);
}

/// A world every test user can read and write.
fn shared_world(extra: &str) -> World {
    let w = World::new(extra);
    chmod(&w.dir, 0o777);
    // The test device's files, writable by whichever user's pump opens the device.
    for f in ["rec.wav", "card.log"] {
        std::fs::write(w.path(f), b"").unwrap();
        chmod(&w.path(f), 0o666);
    }
    write_wav_s16(&w.path("s.wav"), 48000, &vec![[1, -1]; 2 * 48_000]);
    w
}

fn as_user(w: &World, user: &str, args: &[&str]) -> std::process::Child {
    let mut all: Vec<String> = ["-u", user, "--", "env"].iter().map(|s| s.to_string()).collect();
    all.push(format!("HOME={}", w.dir.display()));
    all.push(format!("RDMIX_PUMP_LOG={}/pump-{user}.log", w.dir.display()));
    all.extend(args.iter().map(|s| s.to_string()));
    w.cmd("runuser").args(&all).spawn().unwrap()
}

fn pump_logs(w: &World) -> String {
    [IN_A, IN_B, OUT]
        .iter()
        .map(|u| std::fs::read_to_string(w.path(&format!("pump-{u}.log"))).unwrap_or_default())
        .collect()
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
    if !root() {
        eprintln!("SKIPPED: creating test users needs root; the README's test command runs as root");
        return;
    }
    assert!(
        have("runuser") && have("aplay"),
        "runuser (util-linux) and aplay are required"
    );
    ensure_users();

    // 1. Defaults: one key, ipc_perm 0600. The second user is refused, clearly.
    let w = shared_world("");
    let a = as_user(&w, IN_A, &["aplay", "-q", "s.wav"]);
    wait_attached(&w);
    let o = wait_child(
        as_user(&w, IN_B, &["aplay", "-q", "s.wav"]),
        Duration::from_secs(30),
        "user B",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "user B must not join user A's 0600 pump");
    assert!(
        err.contains("rdmix: ipc_key") && err.contains("permission denied") && err.contains("ipc_perm"),
        "{err}"
    );
    assert!(wait_child(a, Duration::from_secs(30), "user A").status.success());
    w.wait_pump_gone(Duration::from_secs(10));

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
    let w = shared_world(&format!(
        "pcm.group {{ type rdmix; ipc_key {{key}}; ipc_perm 0660; ipc_gid \"{GROUP}\"; slave.pcm \"card\" }}"
    ));
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
    // The outsider cannot open the segment through the pump's descriptor either.
    let memfd = segment_fd(&w.pumps()).expect("the pump's segment");
    // The segment itself carries ipc_perm and ipc_gid, like dmix's shm.
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&memfd).unwrap();
        let gid = Command::new("getent").args(["group", GROUP]).output().unwrap();
        let gid: u32 = String::from_utf8_lossy(&gid.stdout)
            .split(':')
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            (meta.mode() & 0o777, meta.gid()),
            (0o660, gid),
            "segment mode and group"
        );
    }
    let peek = w
        .cmd("runuser")
        .args(["-u", OUT, "--", "head", "-c", "4", &memfd.display().to_string()])
        .output()
        .unwrap();
    assert!(!peek.status.success(), "the outsider read the segment");
    let peek_member = w
        .cmd("runuser")
        .args(["-u", IN_B, "--", "head", "-c", "4", &memfd.display().to_string()])
        .output()
        .unwrap();
    eprintln!(
        "MEASURE permissions: outsider reading the segment: {}; group member: {}",
        String::from_utf8_lossy(&peek.stderr).trim(),
        if peek_member.status.success() {
            "allowed".to_string()
        } else {
            String::from_utf8_lossy(&peek_member.stderr).trim().to_string()
        }
    );
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
