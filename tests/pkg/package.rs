//! The Debian packages end to end, as root: `scripts/pkg/package.sh` builds rdmix and
//! rdmix-status with cargo-deb, `lintian` finds no error and no warning, `dpkg -i` installs
//! them with their manual pages, and then,
//! with no asoundrc at all:
//! - `aplay -D rdmix:SLAVE=<a device defined system-wide>` plays through the installed plugin
//!   (found in alsa-lib's plugin directory, with no `pcm_type` line) and the installed pump;
//! - `rdmix-status --json` lists that pump and that aplay while it plays;
//! - `amixer -D rdmix:SLAVE=<device>` lists two aplay by name and pid, turns one down 6 dB
//!   (measured within 0.1 dB, the other bit-exact), the master, and mutes one; alsamixer
//!   in tmux follows a program's arrival and exit; a volume is restored on the next run;
//!   on a shared definition, a second real user's amixer neither lists the first's program
//!   nor sets the master.
//!
//! Then `dpkg -r` leaves no file behind, and `dpkg -P` no trace in dpkg's database.
//!
//! Beside it, the amd64 and i386 rdmix packages install together (Multi-Arch: same), and a
//! 64-bit and a 32-bit aplay share one installed pump whichever starts it; scripts/ci/cross.sh
//! runs that one, as it needs the i386 toolchain and Debian's aplay:i386.

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::levels;
use common::*;

const PLUGIN_DIR: &str = "/usr/lib/x86_64-linux-gnu/alsa-lib";
const LINK: &str = "/etc/alsa/conf.d/50-rdmix.conf";

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// Builds the packages for `targets` ("" for this machine) and the status tool's; their paths.
fn build_packages(targets: &[&str]) -> Vec<String> {
    let o = run("bash", &[&["scripts/pkg/package.sh"], targets].concat());
    assert!(o.status.success(), "scripts/pkg/package.sh: {}", text(&o));
    let debs: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| l.ends_with(".deb"))
        .collect();
    assert_eq!(
        debs.len(),
        targets.len() + 1,
        "a package per target and the tool's: {}",
        text(&o)
    );
    for d in &debs {
        assert!(Path::new(d).exists(), "{d} was not made");
        let lint = run("lintian", &["--fail-on", "warning", d]);
        let warnings: Vec<String> = text(&lint)
            .lines()
            .filter(|l| l.starts_with("W: "))
            .map(str::to_string)
            .collect();
        assert!(
            lint.status.success() && warnings.is_empty(),
            "lintian found errors or warnings in {d}: {}",
            text(&lint)
        );
        eprintln!(
            "MEASURE lintian {}: no warning, no error",
            Path::new(d).file_name().unwrap().to_string_lossy()
        );
    }
    debs
}

/// dpkg and the system's packages are one: the tests in this file take turns.
static DPKG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Removes the packages even when the test fails half-way.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        for p in ["rdmix-status", "rdmix:i386", "rdmix:amd64"] {
            let _ = run("dpkg", &["-r", p]);
        }
    }
}

/// `program` playing `file` through the installed rdmix (`rdmix:SLAVE=dev`) with `home` as
/// its HOME and no asoundrc of the test's: only the system's configuration. The pump logs to
/// the world's `pump.log`.
fn installed_aplay(program: &Path, w: &World, home: &Path, dev: &str, file: &str) -> std::process::Child {
    Command::new(program)
        .args(["-q", "-D", &format!("rdmix:SLAVE={dev}"), file])
        .current_dir(&w.dir)
        .env("HOME", home)
        .env_remove("ALSA_CONFIG_PATH")
        .env("RDMIX_PUMP_LOG", w.path("pump.log"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
}

/// The installed files of package `p`.
fn files_of(p: &str) -> Vec<PathBuf> {
    String::from_utf8_lossy(&run("dpkg", &["-L", p]).stdout)
        .lines()
        .map(PathBuf::from)
        .filter(|p| !p.is_dir())
        .collect()
}

/// Installed aplay, and amixer on `ctl.rdmix:SLAVE=dev`, as a user whose HOME is `home`
/// and who has no asoundrc.
fn installed_tools<'a>(
    w: &'a World,
    home: &'a Path,
    dev: &'a str,
) -> (
    impl Fn(&str) -> std::process::Child + 'a,
    impl Fn(&[&str]) -> std::process::Output + 'a,
) {
    let aplay = move |f: &str| installed_aplay(Path::new("aplay"), w, home, dev, f);
    let amixer = move |a: &[&str]| {
        Command::new("amixer")
            .args(["-D", &format!("rdmix:SLAVE={dev}")])
            .args(a)
            .current_dir(&w.dir)
            .env("HOME", home)
            .env_remove("ALSA_CONFIG_PATH")
            .env_remove("XDG_STATE_HOME")
            .env("RDMIX_PUMP_LOG", w.path("pump.log"))
            .output()
            .unwrap()
    };
    (aplay, amixer)
}

/// The installed mixer controls (`amixer -D rdmix:SLAVE=dev`, `alsamixer -D ...`, with no
/// asoundrc: alsa-lib finds `ctl.rdmix` in the package's snippet and the control plugin by
/// its linked name) over installed aplay: the scenarios of `common::levels`, each with a
/// fresh HOME so that no volume one remembers reaches another.
fn installed_mixer(w: &World) {
    let dev = format!("rdmixpkgmix{}", std::process::id());
    let _sys = SystemConf::card(&dev, &w.path("mix.wav"));
    let hiss = levels::write_tone_and_noise(&w.dir, 40);
    let ctl = format!("rdmix:SLAVE={dev}");
    let homes: Vec<PathBuf> = (0..3).map(|k| w.path(&format!("mixhome{k}"))).collect();
    for h in &homes {
        std::fs::create_dir_all(h).unwrap();
    }
    let (a0, m0) = installed_tools(w, &homes[0], &dev);
    levels::amixer_turns_programs_and_the_master_down(
        &levels::Rig {
            aplay: &a0,
            amixer: &m0,
            rec: w.path("mix.wav"),
        },
        &hiss,
    );
    let (a1, m1) = installed_tools(w, &homes[1], &dev);
    let cmd = format!(
        "env -u ALSA_CONFIG_PATH HOME={} RDMIX_PUMP_LOG={} TERM=xterm alsamixer -D {ctl}",
        homes[1].display(),
        w.path("pump.log").display()
    );
    levels::alsamixer_follows_programs(
        &levels::Rig {
            aplay: &a1,
            amixer: &m1,
            rec: w.path("mix.wav"),
        },
        &cmd,
        &format!("rdmixpkg{}", std::process::id()),
    );
    let (a2, m2) = installed_tools(w, &homes[2], &dev);
    levels::amixer_volume_is_restored(&levels::Rig {
        aplay: &a2,
        amixer: &m2,
        rec: w.path("mix.wav"),
    });
    installed_mixer_as_two_users(w);
}

/// Two real users on one shared definition, system-wide, through the installed package:
/// the second's mixer neither lists the first's program nor sets the master.
fn installed_mixer_as_two_users(w: &World) {
    const GROUP: &str = "rdmixpkgg";
    let (a, b) = ("rdmixpkga", "rdmixpkgb");
    ensure_test_users(GROUP, &[a, b], &[]);
    let dev = format!("rdmixpkgsh{}", std::process::id());
    std::fs::write(w.path("shared.wav"), b"").unwrap();
    chmod(&w.path("shared.wav"), 0o666);
    let _card = SystemConf::card(&dev, &w.path("shared.wav"));
    let def = format!(
        "type rdmix; ipc_key {}; ipc_perm 0660; ipc_gid \"{GROUP}\"; slave.pcm \"{dev}\"",
        w.key + 0x77
    );
    let _defs = SystemConf::install(&format!("pcm.pkgshared {{ {def} }}\nctl.pkgshared {{ {def} }}\n"));
    let home = w.path("sharedhome");
    std::fs::create_dir_all(&home).unwrap();
    chmod(&home, 0o777);
    write_wav_s16(&w.path("shared-in.wav"), 48000, &vec![[0, 0]; 6 * 48_000]);
    let as_user = |user: &str, args: &[&str]| {
        let mut c = Command::new("runuser");
        c.args(["-u", user, "--", "env", "-u", "ALSA_CONFIG_PATH"])
            .arg(format!("HOME={}", home.display()))
            .arg(format!(
                "RDMIX_PUMP_LOG={}",
                w.path(&format!("pump-{user}.log")).display()
            ))
            .args(args)
            .current_dir(&w.dir);
        c
    };
    let player = as_user(a, &["aplay", "-q", "-D", "pkgshared", "shared-in.wav"])
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(w.path(&format!("pump-{a}.log"))).unwrap_or_default();
    wait_until(
        Duration::from_secs(20),
        || log().contains("took lane"),
        || format!("{a}'s aplay never attached: {}", log()),
    );
    let pid = log()
        .split("client pid ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .map(str::to_string)
        .unwrap();
    let mixer = |user: &str, args: &[&str]| {
        let mut all = vec!["amixer", "-D", "pkgshared"];
        all.extend_from_slice(args);
        let o = as_user(user, &all).output().unwrap();
        (o.status.success(), text(&o))
    };
    let (ok, seen_by_a) = mixer(a, &["scontrols"]);
    assert!(
        ok && seen_by_a.contains(&format!("'aplay {pid}',0")),
        "{a} sees their own: {seen_by_a}"
    );
    let (ok, seen_by_b) = mixer(b, &["scontrols"]);
    assert!(
        ok && !seen_by_b.contains(&format!("aplay {pid}")),
        "{b} must not see {a}'s program: {seen_by_b}"
    );
    let (ok, said) = mixer(b, &["sset", "Master", "--", "-6dB"]);
    assert!(
        !ok && said.contains("sets the master"),
        "{b} must not set the master: {said}"
    );
    eprintln!(
        "MEASURE installed, two users: {b}'s amixer lists {}; the master refused",
        seen_by_b.trim().replace('\n', "; ")
    );
    let o = wait_child(player, Duration::from_secs(30), "aplay");
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn the_package_installs_plays_reports_and_leaves_nothing() {
    if !is_root() {
        eprintln!("SKIPPED: installing a package needs root; the README's test command runs as root");
        return;
    }
    if !cfg!(target_arch = "x86_64") {
        eprintln!("SKIPPED: the package test installs the amd64 package");
        return;
    }
    assert!(
        have("cargo-deb") && have("lintian") && have("aplay"),
        "cargo-deb, lintian and aplay are required (scripts/ci/setup.sh installs them)"
    );
    let _turn = DPKG.lock().unwrap_or_else(|e| e.into_inner());
    let debs = build_packages(&[""]);
    let o = run(
        "dpkg",
        &[&["-i"], &debs.iter().map(String::as_str).collect::<Vec<_>>()[..]].concat(),
    );
    let guard = Installed;
    assert!(o.status.success(), "dpkg -i: {}", text(&o));
    let files: Vec<PathBuf> = [files_of("rdmix"), files_of("rdmix-status")].concat();
    for want in [
        format!("{PLUGIN_DIR}/libasound_module_pcm_rdmix.so"),
        format!("{PLUGIN_DIR}/libasound_module_ctl_rdmix.so"),
        format!("{PLUGIN_DIR}/rdmix-pump"),
        "/usr/bin/rdmix-status".into(),
        "/usr/share/alsa/alsa.conf.d/50-rdmix.conf".into(),
        "/usr/share/man/man7/rdmix.7.gz".into(),
        "/usr/share/man/man8/rdmix-pump.8.gz".into(),
        "/usr/share/man/man1/rdmix-status.1.gz".into(),
    ] {
        assert!(
            files.contains(&PathBuf::from(&want)),
            "{want} in the packages: {files:?}"
        );
    }
    assert!(
        std::fs::symlink_metadata(LINK).is_ok_and(|m| m.is_symlink()),
        "{LINK} links the snippet"
    );

    // A fresh HOME with no asoundrc; the device is defined system-wide, as a board's would be.
    let w = World::open_to_all("", &[]);
    let home = w.path("fresh");
    std::fs::create_dir_all(&home).unwrap();
    let dev = format!("rdmixpkg{}", std::process::id());
    let _sys = SystemConf::card(&dev, &w.path("pkg.wav"));
    write_wav_s16(&w.path("s.wav"), 48000, &vec![[3000, -3000]; 3 * 48_000]);
    let aplay = installed_aplay(Path::new("aplay"), &w, &home, &dev, "s.wav");
    let pid = aplay.id() as i32;
    let status = || {
        let o = Command::new("/usr/bin/rdmix-status")
            .arg("--json")
            .env("HOME", &home)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    wait_until(
        Duration::from_secs(10),
        || status().contains(&format!("\"pid\":{pid},")),
        || format!("rdmix-status --json never listed aplay (pid {pid}): {}", status()),
    );
    let doc = status();
    assert!(
        doc.starts_with("{\"pumps\":[") && doc.trim_end().ends_with("]}"),
        "{doc}"
    );
    assert!(doc.contains(&format!("\"slave\":\"{dev}\"")), "the pump's slave: {doc}");
    assert!(doc.contains("\"program\":\"aplay\""), "{doc}");
    let pump: i32 = doc
        .split(&format!("\"slave\":\"{dev}\""))
        .next()
        .and_then(|head| head.rsplit("\"pid\":").next())
        .and_then(|t| t.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the pump's pid: {doc}"));
    assert_eq!(
        std::fs::read_link(format!("/proc/{pump}/exe")).unwrap(),
        PathBuf::from(format!("{PLUGIN_DIR}/rdmix-pump")),
        "the installed pump serves"
    );
    let o = wait_child(aplay, Duration::from_secs(60), "aplay");
    assert!(o.status.success(), "aplay through the package: {}", text(&o));
    wait_until(
        Duration::from_secs(10),
        || !Path::new(&format!("/proc/{pump}")).exists(),
        || "the installed pump never exited".into(),
    );
    let rec = read_rec_s16(&w.path("pkg.wav"));
    assert!(
        rec.iter().filter(|f| **f == [3000, -3000]).count() >= 3 * 48_000 - 10,
        "the device heard the stream"
    );

    installed_mixer(&w);

    drop(guard);
    let left: Vec<&PathBuf> = files.iter().filter(|f| std::fs::symlink_metadata(f).is_ok()).collect();
    assert!(left.is_empty(), "dpkg -r left {left:?}");
    assert!(std::fs::symlink_metadata(LINK).is_err(), "dpkg -r left {LINK}");
    // dpkg keeps a removed package's maintainer scripts ("rc") until a purge, as for every
    // package that has them; the purge leaves no trace in its database either.
    let st = text(&run("dpkg-query", &["-W", "-f", "${db:Status-Abbrev}", "rdmix"]));
    assert!(!st.starts_with("ii"), "dpkg -r left rdmix installed: {st}");
    let o = run("dpkg", &["-P", "rdmix", "rdmix-status"]);
    assert!(o.status.success(), "dpkg -P: {}", text(&o));
    let st = text(&run("dpkg-query", &["-W", "-f", "${db:Status-Abbrev}", "rdmix"]));
    assert!(!st.starts_with("ii") && !st.starts_with("rc"), "dpkg -P left {st}");
}

/// The test device, installed in alsa-lib's plugin directory of both architectures for the
/// length of a test, so one system-wide definition serves a pump of either.
struct FakeDevInstalled(Vec<PathBuf>);

impl FakeDevInstalled {
    fn new(builds: &[(&Path, &str)]) -> FakeDevInstalled {
        let mut put = Vec::new();
        for (dir, triple) in builds {
            let to = Path::new("/usr/lib")
                .join(triple)
                .join("alsa-lib/libasound_module_pcm_rdmixfake.so");
            std::fs::copy(dir.join("libasound_module_pcm_rdmixfake.so"), &to).unwrap();
            put.push(to);
        }
        FakeDevInstalled(put)
    }
}

impl Drop for FakeDevInstalled {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[test]
#[ignore = "needs the i386 toolchain and aplay:i386; scripts/ci/cross.sh runs it"]
fn amd64_and_i386_packages_install_side_by_side_and_share_a_pump() {
    use common::fields::*;
    assert!(is_root(), "installing packages needs root");
    let _turn = DPKG.lock().unwrap_or_else(|e| e.into_inner());
    let debs = build_packages(&["", "i686-unknown-linux-gnu"]);
    let o = run(
        "dpkg",
        &[&["-i"], &debs.iter().map(String::as_str).collect::<Vec<_>>()[..]].concat(),
    );
    let guard = Installed;
    assert!(o.status.success(), "dpkg -i both architectures: {}", text(&o));
    let dirs = [
        ("x86_64-linux-gnu", PathBuf::from(PLUGIN_DIR)),
        ("i386-linux-gnu", PathBuf::from("/usr/lib/i386-linux-gnu/alsa-lib")),
    ];
    for (_, d) in &dirs {
        for f in ["libasound_module_pcm_rdmix.so", "rdmix-pump"] {
            assert!(d.join(f).exists(), "{} installed", d.join(f).display());
        }
    }
    // The i386 build of the test device beside the amd64 one (the package test built both).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = run(
        &std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
        &["build", "--workspace", "--target", "i686-unknown-linux-gnu"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let b32 = root.join("target/i686-unknown-linux-gnu/debug");
    let b64 = build_dir();
    let _fake = FakeDevInstalled::new(&[(&b64, "x86_64-linux-gnu"), (&b32, "i386-linux-gnu")]);
    let aplay32 = foreign_aplay("i386");

    for first_is_32 in [true, false] {
        let w = World::open_to_all("", &[]);
        let home = w.path("fresh");
        std::fs::create_dir_all(&home).unwrap();
        let dev = format!("rdmixpkg{}x{}", std::process::id(), u8::from(first_is_32));
        let rec = w.path("pkg.wav");
        let _sys = SystemConf::install(&format!("pcm.{dev} {{ type rdmixfake; file \"{}\" }}\n", rec.display()));
        let a = write_stream(&w, 0, 144_000);
        let b = write_stream(&w, 1, 48_000);
        let player = |is_32: bool, file: &str| {
            let program = if is_32 { aplay32.as_path() } else { Path::new("aplay") };
            installed_aplay(program, &w, &home, &dev, file)
        };
        let first = player(first_is_32, &a);
        w.wait_lanes(1, Duration::from_secs(20));
        let second = player(!first_is_32, &b);
        w.wait_lanes(2, Duration::from_secs(20));
        let pumps: Vec<i32> = w
            .pump_log()
            .lines()
            .filter_map(|l| l.split('[').nth(1)?.split(']').next()?.parse().ok())
            .collect();
        assert!(pumps.windows(2).all(|p| p[0] == p[1]), "one pump: {}", w.pump_log());
        let exe = std::fs::read_link(format!("/proc/{}/exe", pumps[0])).unwrap();
        let want = dirs[usize::from(first_is_32)].1.join("rdmix-pump");
        assert_eq!(
            exe, want,
            "the first client's installed pump serves (32-bit first: {first_is_32})"
        );
        for (c, what) in [(first, "first aplay"), (second, "second aplay")] {
            let o = wait_child(c, Duration::from_secs(60), what);
            assert!(o.status.success(), "{what}: {}", text(&o));
        }
        wait_until(
            Duration::from_secs(20),
            || !Path::new(&format!("/proc/{}", pumps[0])).exists(),
            || "the installed pump never exited".into(),
        );
        let got = read_rec_s16(&rec);
        let spans: Vec<(usize, usize)> = (0..2).map(|i| locate(&got, i).expect("both recorded")).collect();
        assert_eq!((spans[0].1, spans[1].1), (144_000, 48_000), "every frame of both, once");
        check_exact(&got, &spans);
        eprintln!(
            "MEASURE package multiarch: 32-bit first: {first_is_32}: one installed pump ({}), mix exact",
            exe.display()
        );
    }
    drop(guard);
    for (_, d) in &dirs {
        assert!(!d.join("rdmix-pump").exists(), "dpkg -r left {}", d.display());
    }
    assert!(std::fs::symlink_metadata(LINK).is_err(), "dpkg -r left {LINK}");
    let _ = run("dpkg", &["-P", "rdmix:amd64", "rdmix:i386", "rdmix-status"]);
}
