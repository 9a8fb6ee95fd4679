//! The Debian package end to end, as root: `cargo deb` builds it, `lintian` finds no error,
//! `dpkg -i` installs it, and then, with no asoundrc at all:
//! - `aplay -D rdmix:SLAVE=<a device defined system-wide>` plays through the installed plugin
//!   (found in alsa-lib's plugin directory, with no `pcm_type` line) and the installed pump;
//! - `rdmix-status --json` lists that pump and that aplay while it plays.
//!
//! Then `dpkg -r` leaves no file behind, and `dpkg -P` no trace in dpkg's database.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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

/// Removes the package even when the test fails half-way.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = run("dpkg", &["-r", "rdmix"]);
    }
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
        "cargo-deb, lintian and aplay are required (scripts/setup.sh installs them)"
    );
    let o = run(&std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()), &["deb"]);
    assert!(o.status.success(), "cargo deb: {}", text(&o));
    let deb = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(
        deb.ends_with(".deb") && Path::new(&deb).exists(),
        "cargo deb made no .deb: {}",
        text(&o)
    );

    let lint = run("lintian", &["--fail-on", "error", &deb]);
    assert!(lint.status.success(), "lintian found errors: {}", text(&lint));
    eprintln!(
        "MEASURE lintian: {}",
        text(&lint).lines().filter(|l| l.contains(": ")).count()
    );

    let o = run("dpkg", &["-i", &deb]);
    let guard = Installed;
    assert!(o.status.success(), "dpkg -i: {}", text(&o));
    let files: Vec<PathBuf> = String::from_utf8_lossy(&run("dpkg", &["-L", "rdmix"]).stdout)
        .lines()
        .map(PathBuf::from)
        .filter(|p| !p.is_dir())
        .collect();
    for want in [
        format!("{PLUGIN_DIR}/libasound_module_pcm_rdmix.so"),
        format!("{PLUGIN_DIR}/rdmix-pump"),
        "/usr/bin/rdmix-status".into(),
        "/usr/share/alsa/alsa.conf.d/50-rdmix.conf".into(),
    ] {
        assert!(
            files.contains(&PathBuf::from(&want)),
            "{want} in the package: {files:?}"
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
    let aplay = Command::new("aplay")
        .args(["-q", "-D", &format!("rdmix:SLAVE={dev}"), "s.wav"])
        .current_dir(&w.dir)
        .env("HOME", &home)
        .env_remove("ALSA_CONFIG_PATH")
        .env("RDMIX_PUMP_LOG", w.path("pkg-pump.log"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
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

    drop(guard);
    let left: Vec<&PathBuf> = files.iter().filter(|f| std::fs::symlink_metadata(f).is_ok()).collect();
    assert!(left.is_empty(), "dpkg -r left {left:?}");
    assert!(std::fs::symlink_metadata(LINK).is_err(), "dpkg -r left {LINK}");
    // dpkg keeps a removed package's maintainer scripts ("rc") until a purge, as for every
    // package that has them; the purge leaves no trace in its database either.
    let st = text(&run("dpkg-query", &["-W", "-f", "${db:Status-Abbrev}", "rdmix"]));
    assert!(!st.starts_with("ii"), "dpkg -r left rdmix installed: {st}");
    let o = run("dpkg", &["-P", "rdmix"]);
    assert!(o.status.success(), "dpkg -P: {}", text(&o));
    let st = text(&run("dpkg-query", &["-W", "-f", "${db:Status-Abbrev}", "rdmix"]));
    assert!(!st.starts_with("ii") && !st.starts_with("rc"), "dpkg -P left {st}");
}
