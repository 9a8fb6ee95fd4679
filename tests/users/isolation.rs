//! Trust and isolation, attacked as real users (created by the test, which runs as root as
//! the README's test command does):
//!
//! - a squatter's pump (another uid, `ipc_perm 0666`) never receives a user's audio;
//! - a member of a shared pump writing random words anywhere it can write hurts nobody:
//!   the pump lives on and the other client's output stays exact;
//! - thousands of silent connections, from an outsider and from a member, cost the owner
//!   nothing: the owner's open still succeeds at once and the pump's CPU stays low;
//! - a client can write only its own lane (read from `/proc/self/maps`);
//! - a `slave.pcm` name of 1000 bytes reaches the pump whole; a longer one is refused;
//! - on a shared pump, a member can neither list another's programs nor change their
//!   volume, by `rdmix-status` or by a VOLUME of its own making.
//!
//! (Impostor pumps that hand over truncatable memory, or stall, are `faults::fault6`.)

#[path = "../common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::alsa::{Params, Pcm};
use common::*;

const GROUP: &str = "rdmixisog";
const MEMBER_A: &str = "rdmixisoa";
const MEMBER_B: &str = "rdmixisob";
const OUTSIDER: &str = "rdmixisoc";

fn users() -> bool {
    if !is_root() {
        eprintln!("SKIPPED: creating test users needs root; the README's test command runs as root");
        return false;
    }
    assert!(have("runuser") && have("aplay"), "runuser and aplay are required");
    ensure_test_users(GROUP, &[MEMBER_A, MEMBER_B], &[OUTSIDER]);
    true
}

const USERS: [&str; 3] = [MEMBER_A, MEMBER_B, OUTSIDER];

fn open_world(extra: &str) -> World {
    World::open_to_all(extra, &["rec.wav", "card.log", "sys.wav"])
}

/// `rdmix-hostile ARGS` as `user`, once it says it is ready (holding what it opened until
/// its stdin closes); what it printed by then.
fn hostile_ready(w: &World, user: &str, args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let bin = build_dir().join("rdmix-hostile");
    let mut all = vec![bin.to_str().unwrap()];
    all.extend_from_slice(args);
    let mut child = w
        .as_user(user, &all)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut r = std::io::BufReader::new(child.stdout.take().unwrap());
    while r.read_line(&mut line).unwrap() > 0 && !line.contains("ready") {}
    (child, line)
}

/// A world with `pcm.group` and `ctl.group`, one definition shared with GROUP (plus
/// `options`), over a test device defined system-wide (removed with the returned guard).
fn group_world(options: &str) -> (World, SystemConf) {
    let def = format!(
        "type rdmix; ipc_key {{key}}; ipc_perm 0660; ipc_gid \"{GROUP}\"; slave.pcm \"rdmixsys_{{key}}\"; {options}"
    );
    let w = open_world(&format!("pcm.group {{ {def} }}\nctl.group {{ {def} }}"));
    let sys = SystemConf::card(&format!("rdmixsys_{}", w.key), &w.path("sys.wav"));
    (w, sys)
}

/// Runs `args` as `user` to its end: whether it succeeded, and all it printed.
fn run_as(w: &World, user: &str, args: &[&str]) -> (bool, String) {
    let o = w.as_user(user, args).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

fn logs(w: &World) -> String {
    w.user_logs(&USERS)
}

#[test]
fn a_squatters_pump_never_hears_a_user() {
    if !users() {
        return;
    }
    let w = open_world(
        "pcm.squat { type rdmix; ipc_key {key}; ipc_perm 0666; slave.pcm \"rdmixsys_{key}\" }
pcm.mine { type rdmix; ipc_key {key}; slave.pcm \"card\" }
pcm.mine_shared { type rdmix; ipc_key {key}; ipc_perm 0666; slave.pcm \"rdmixsys_{key}\" }",
    );
    let _sys = SystemConf::card(&format!("rdmixsys_{}", w.key), &w.path("sys.wav"));
    write_wav_s16(&w.path("quiet.wav"), 48000, &vec![[0, 0]; 6 * 48_000]);
    write_wav_s16(&w.path("s.wav"), 48000, &counting_stream(24_000));
    // The squatter (an outsider) holds the key first, world-writable, with a slave that
    // records into a file of its own.
    let squatter = w
        .as_user(OUTSIDER, &["aplay", "-q", "-D", "squat", "quiet.wav"])
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        || logs(&w).contains("took lane"),
        || format!("the squatter never attached: {}", logs(&w)),
    );
    // The victim's private configuration of the same key never even finds the squatter:
    // its socket lives in the victim's own directory.
    let o = w
        .as_user(MEMBER_A, &["aplay", "-q", "-D", "mine", "s.wav"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "victim, private key: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A shared configuration of the same key finds it, and refuses it: it is not run by the
    // victim, nor root, nor a group the configuration trusts.
    let o = w
        .as_user(MEMBER_A, &["aplay", "-q", "-D", "mine_shared", "s.wav"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!(
        "MEASURE isolation: victim on the squatted shared key: {}",
        err.lines().next().unwrap_or("")
    );
    assert!(!o.status.success(), "the victim must refuse the squatter's pump");
    assert!(
        err.contains("refusing the pump there") && err.contains(&format!("uid {} ({OUTSIDER})", uid_of(OUTSIDER))),
        "{err}"
    );
    assert!(
        wait_child(squatter, Duration::from_secs(30), "squatter")
            .status
            .success()
    );
    wait_until(
        Duration::from_secs(10),
        || pumps_for_key(w.key).is_empty(),
        || "pumps still running".into(),
    );
    let squatted = read_rec_s16(&w.path("sys.wav"));
    assert!(!squatted.is_empty(), "the squatter's pump recorded");
    assert!(heard(&squatted).is_empty(), "the squatter heard the victim");
    let mine = heard(&read_rec_s16(&w.path("rec.wav")));
    assert_eq!(mine, counting_stream(24_000), "the victim's own pump played it exactly");
    let dir = std::path::PathBuf::from(format!("/tmp/rdmix-{}", uid_of(MEMBER_A)));
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(&dir).unwrap();
        assert_eq!(
            (m.uid(), m.mode() & 0o777),
            (uid_of(MEMBER_A), 0o700),
            "{}",
            dir.display()
        );
    }
}

#[test]
fn a_hostile_member_hurts_nobody() {
    if !users() {
        return;
    }
    let shared = format!("ipc_key {{key}}; ipc_perm 0660; ipc_gid \"{GROUP}\"; slave.pcm \"rdmixsys_{{key}}\"");
    let w = open_world(&format!(
        "pcm.steady {{ type rdmix; {shared}; bindings {{ 0 0 }} }}
pcm.hostile {{ type rdmix; {shared}; bindings {{ 0 1 }} }}"
    ));
    let _sys = SystemConf::card(&format!("rdmixsys_{}", w.key), &w.path("sys.wav"));
    // The steady member plays a mono counting stream onto device channel 0; the hostile one
    // is bound to channel 1 only, so channel 0 must come out exact whatever it does.
    let n = 4 * 48_000u64;
    let mono: Vec<[i16; 2]> = counting_stream(n);
    let bytes: Vec<u8> = mono.iter().flat_map(|f| f[0].to_le_bytes()).collect();
    std::fs::write(w.path("steady.raw"), &bytes).unwrap();
    let steady = w
        .as_user(
            MEMBER_A,
            &[
                "aplay",
                "-q",
                "-D",
                "steady",
                "-t",
                "raw",
                "-f",
                "S16_LE",
                "-c",
                "1",
                "-r",
                "48000",
                "steady.raw",
            ],
        )
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        || logs(&w).contains("took lane"),
        || format!("the steady member never attached: {}", logs(&w)),
    );
    let pump = pumps_for_key(w.key);
    let hostile_bin = build_dir().join("rdmix-hostile");
    let o = w
        .as_user(
            MEMBER_B,
            &[hostile_bin.to_str().unwrap(), "scribble", "hostile", "10000", "7"],
        )
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    eprint!("{out}");
    assert!(
        o.status.success(),
        "the hostile member: {}{}",
        out,
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("10000 random words written"), "{out}");
    assert!(
        wait_child(steady, Duration::from_secs(30), "steady member")
            .status
            .success()
    );
    assert_eq!(pumps_for_key(w.key), pump, "the same pump served throughout");
    wait_until(
        Duration::from_secs(10),
        || pumps_for_key(w.key).is_empty(),
        || "pump gone".into(),
    );
    let log = logs(&w);
    assert!(!log.contains("panicked") && log.contains("exiting (0)"), "{log}");
    let ch0: Vec<i16> = read_rec_s16(&w.path("sys.wav"))
        .iter()
        .map(|f| f[0])
        .filter(|v| *v != 0)
        .collect();
    let want: Vec<i16> = mono.iter().map(|f| f[0]).collect();
    assert_eq!(ch0.len(), want.len(), "every steady frame was played");
    assert!(ch0 == want, "the steady member's channel is exact");
}

#[test]
fn silent_connections_cost_the_owner_nothing() {
    if !users() {
        return;
    }
    let (w, _sys) = group_world("");
    write_wav_s16(&w.path("long.wav"), 48000, &vec![[0, 0]; 8 * 48_000]);
    write_wav_s16(&w.path("blip.wav"), 48000, &vec![[0, 0]; 480]);
    let owner = w
        .as_user(MEMBER_A, &["aplay", "-q", "-D", "group", "long.wav"])
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        || logs(&w).contains("took lane"),
        || format!("the owner never attached: {}", logs(&w)),
    );
    let pump = pumps_for_key(w.key)[0];
    let name = format!("rdmix-{:08x}", w.key);
    for (who, user) in [("outsider", OUTSIDER), ("member", MEMBER_B)] {
        let cpu0 = cpu_ticks(pump);
        let t0 = Instant::now();
        let (mut child, line) = hostile_ready(&w, user, &["flood", &name, "2000"]);
        eprint!("{who}: {line}");
        // With the flood's connections still open, the owner opens the PCM again.
        let open_t = Instant::now();
        let o = w
            .as_user(MEMBER_A, &["aplay", "-q", "-D", "group", "blip.wav"])
            .output()
            .unwrap();
        let opened = open_t.elapsed();
        assert!(
            o.status.success(),
            "{who}: the owner's open: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        drop(child.stdin.take());
        let _ = wait_child(child, Duration::from_secs(30), "flood");
        let cpu = cpu_ticks(pump) - cpu0;
        let wall = t0.elapsed();
        eprintln!(
            "MEASURE isolation: 2000 silent connections from the {who}: the owner's aplay took {opened:?}; \
             pump CPU {cpu} ticks over {wall:?}"
        );
        assert!(
            opened < Duration::from_secs(1),
            "{who}: the owner's aplay took {opened:?}"
        );
        // A busy loop would burn a tick per 10 ms of wall time; playing costs a fraction.
        let ticks = wall.as_millis() as u64 / 10;
        assert!(cpu * 2 < ticks.max(20), "{who}: pump used {cpu} of {ticks} ticks");
        if who == "outsider" {
            assert!(
                line.contains("2000 connected, 0 failed to connect, 2000 refused"),
                "{line}"
            );
        } else {
            // A member may keep a few connections waiting for its HELLO, never thousands.
            assert!(
                line.contains("2000 connected, 0 failed to connect, 1992 refused"),
                "{line}"
            );
        }
    }
    // A member's mixers that never read: a few are let watch, the rest refused. The member's
    // own programs then pile CHANGED up in them unread, which costs the owner nothing (and
    // the owner's programs send them nothing: they are not the member's to see).
    let (mut child, line) = hostile_ready(&w, MEMBER_B, &["watch", &name, "20"]);
    eprint!("member: {line}");
    assert!(
        line.contains("20 mixers: 8 watching, 12 refused") && line.contains("mixers open on it already"),
        "{line}"
    );
    for k in 0..40 {
        let user = if k % 2 == 0 { MEMBER_B } else { MEMBER_A };
        let o = w
            .as_user(user, &["aplay", "-q", "-D", "group", "blip.wav"])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{user}'s open beside mixers that never read: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    drop(child.stdin.take());
    let _ = wait_child(child, Duration::from_secs(30), "watch");
    assert!(wait_child(owner, Duration::from_secs(30), "owner").status.success());
}

#[test]
fn a_client_can_write_only_its_own_lane() {
    assert!(rdmix_maps().is_empty());
    let p = Pcm::open("mix3", false).expect("open");
    p.set_params(Params::default()).unwrap();
    let maps = rdmix_maps();
    eprintln!("MEASURE isolation: a client's rdmix mappings: {maps:?}");
    let writable: Vec<_> = maps.iter().filter(|m| m.perms.contains('w')).collect();
    assert_eq!(writable.len(), 1, "{maps:?}");
    assert!(writable[0].name.contains("rdmix-lane"), "{maps:?}");
    assert_eq!(
        writable[0].end - writable[0].start,
        asound_module_pcm_rdmix::shm::lane::LANE_MEM_BYTES
    );
    let header = maps
        .iter()
        .find(|m| m.name.contains("rdmix-segment"))
        .expect("the header is mapped");
    assert_eq!(&header.perms[..3], "r--");
    // SAFETY: mprotect on our own mapping; refusing is the point.
    let r = unsafe {
        libc::mprotect(
            header.start as *mut libc::c_void,
            header.end - header.start,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
    assert_eq!(r, -1, "the header can be made writable");
    drop(p);
    assert!(rdmix_maps().is_empty(), "closing unmaps everything");
}

#[test]
fn long_slave_names_reach_the_pump_whole() {
    let long = format!("card{}", "x".repeat(996));
    let too_long = format!("card{}", "x".repeat(1021));
    let w = World::new(&format!(
        "pcm.{long} {{ type rdmixfake; file \"{{dir}}/rec.wav\" }}
pcm.longname {{ type rdmix; ipc_key {{key}}; slave.pcm \"{long}\" }}
pcm.toolong {{ type rdmix; ipc_key {{key}}; slave.pcm \"{too_long}\" }}"
    ));
    write_wav_s16(&w.path("s.wav"), 48000, &counting_stream(4800));
    w.play("aplay", &["-q", "-D", "longname", "s.wav"]);
    assert_eq!(heard(&read_rec_s16(&w.path("rec.wav"))), counting_stream(4800));
    let o = w.run("aplay", &["-q", "-D", "toolong", "s.wav"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("rdmix: slave.pcm: a name of 1025 bytes is longer than"),
        "{err}"
    );
}

#[test]
fn a_member_can_neither_see_nor_turn_down_anothers_program() {
    if !users() {
        return;
    }
    let (w, _sys) = group_world("");
    write_wav_s16(&w.path("long.wav"), 48000, &vec![[0, 0]; 8 * 48_000]);
    let status = build_dir().join("rdmix-status");
    let status = status.to_str().unwrap();
    // A first, so that A's program starts the pump and A owns it.
    let a = w
        .as_user(MEMBER_A, &["aplay", "-q", "-D", "group", "long.wav"])
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        || logs(&w).contains("took lane"),
        || format!("A never attached: {}", logs(&w)),
    );
    let b = w
        .as_user(MEMBER_B, &["aplay", "-q", "-D", "group", "long.wav"])
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        || logs(&w).matches("took lane").count() >= 2,
        || format!("both members never attached: {}", logs(&w)),
    );
    // Each program's pid and lane, from the pump's log (runuser stands between the test
    // and the program).
    let of = |user: &str| {
        let mark = format!("(uid {}) took lane ", uid_of(user));
        logs(&w)
            .lines()
            .find_map(|l| {
                let (head, lane) = l.split_once(&mark)?;
                let pid = head.rsplit_once("client pid ")?.1.trim().to_string();
                Some((pid, lane.trim().parse::<u64>().ok()?))
            })
            .unwrap_or_else(|| panic!("{user}'s program in the log: {}", logs(&w)))
    };
    let ((a_pid, lane), (b_pid, _)) = (of(MEMBER_A), of(MEMBER_B));
    let run = |user: &str, args: &[&str]| run_as(&w, user, &[&[status], args].concat());
    // The pump's owner is whoever started it: the first member. The other sees only
    // their own program.
    let (_, seen_by_b) = run(MEMBER_B, &["--json"]);
    assert!(
        seen_by_b.contains(&format!("\"pid\":{b_pid},")),
        "B sees their own: {seen_by_b}"
    );
    assert!(
        !seen_by_b.contains(&format!("\"pid\":{a_pid},")),
        "B must not see A's program: {seen_by_b}"
    );
    let (ok, said) = run(MEMBER_B, &["--volume", &a_pid, "-20dB"]);
    assert!(
        !ok && said.contains(&format!("no program of pid {a_pid} plays")),
        "{said}"
    );
    // Nor by a VOLUME of B's own making, naming A's lane and pid.
    let hostile = build_dir().join("rdmix-hostile");
    let name = format!("rdmix-{:08x}", w.key);
    let o = w
        .as_user(
            MEMBER_B,
            &[hostile.to_str().unwrap(), "volume", &name, &lane.to_string(), &a_pid],
        )
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stdout);
    eprintln!("MEASURE isolation: a member muting another's program: {}", said.trim());
    assert!(
        said.contains("refused") && said.contains(&format!("pid {a_pid} belongs to")),
        "{said}"
    );
    // B's mixer (the ALSA control plugin) lists B's program and not A's, and cannot
    // reach A's by name either.
    let amixer = |user: &str, args: &[&str]| run_as(&w, user, &[&["amixer", "-D", "group"], args].concat());
    let (ok, listed) = amixer(MEMBER_B, &["scontrols"]);
    assert!(
        ok && listed.contains(&format!("'aplay {b_pid}',0")),
        "B's mixer shows B's program: {listed}"
    );
    assert!(
        !listed.contains(&format!("aplay {a_pid}")),
        "B's mixer must not show A's program: {listed}"
    );
    let (ok, said) = amixer(MEMBER_B, &["cset", &format!("name=aplay {a_pid} Playback Volume"), "0"]);
    assert!(!ok, "B's mixer must not reach A's program: {said}");
    let (ok, said) = amixer(MEMBER_B, &["sset", "Master", "--", "-6dB"]);
    assert!(
        !ok && said.contains("sets the master"),
        "B's mixer must not set the master: {said}"
    );
    eprintln!(
        "MEASURE isolation: B's amixer lists {} and is refused the master",
        listed.trim().replace('\n', "; ")
    );
    let (_, listed) = amixer(MEMBER_A, &["scontrols"]);
    assert!(
        listed.contains(&format!("'aplay {a_pid}',0")) && listed.contains(&format!("'aplay {b_pid}',0")),
        "the owner's mixer shows both: {listed}"
    );
    // B may set their own, and the master is the owner's alone.
    let (ok, said) = run(MEMBER_B, &["--volume", &b_pid, "-6dB"]);
    assert!(ok, "{said}");
    let (ok, said) = run(MEMBER_B, &["--volume", &format!("master:{:#x}", w.key), "-6dB"]);
    assert!(!ok && said.contains("sets the master"), "{said}");
    let (_, seen_by_a) = run(MEMBER_A, &["--json"]);
    assert!(
        seen_by_a.contains(&format!("\"pid\":{a_pid},")) && seen_by_a.contains(&format!("\"pid\":{b_pid},")),
        "the owner sees both: {seen_by_a}"
    );
    assert!(
        seen_by_a.contains("\"volume\":{\"db\":-6.00,\"muted\":false}"),
        "B's own change took: {seen_by_a}"
    );
    for c in [a, b] {
        let _ = wait_child(c, Duration::from_secs(30), "aplay");
    }
}

/// `ipc_member_master true` lets the members of a shared key set its master: B's mixer
/// then turns down the master of A's pump, and the pump's report says so.
#[test]
fn ipc_member_master_lets_members_set_the_master() {
    if !users() {
        return;
    }
    let (w, _sys) = group_world("ipc_member_master true");
    write_wav_s16(&w.path("long.wav"), 48000, &vec![[0, 0]; 6 * 48_000]);
    let a = w
        .as_user(MEMBER_A, &["aplay", "-q", "-D", "group", "long.wav"])
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        || logs(&w).contains("took lane"),
        || format!("A never attached: {}", logs(&w)),
    );
    let o = w
        .as_user(MEMBER_B, &["amixer", "-D", "group", "sset", "Master", "--", "-6dB"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && said.contains("[-6.00dB]"),
        "B sets the master: {said}"
    );
    let status = build_dir().join("rdmix-status");
    let o = w
        .as_user(MEMBER_A, &[status.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let doc = String::from_utf8_lossy(&o.stdout);
    assert!(
        doc.contains("\"master\":{\"db\":-6.00,\"muted\":false}"),
        "the owner's pump has the master B set: {doc}"
    );
    let _ = wait_child(a, Duration::from_secs(30), "aplay");
}
