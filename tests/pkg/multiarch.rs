//! Programs of other architectures through rdmix, each loading its own architecture's plugin:
//! a 32-bit x86 `aplay` beside a 64-bit one on one pump (whichever starts it), and an ARM
//! `aplay` with an ARM pump under qemu-user.
//!
//! The foreign `aplay`s are Debian's own (alsa-utils for i386, arm64 and armhf, unpacked
//! under `target/foreign/ARCH`), with the multiarch alsa-lib. `scripts/ci/cross.sh` installs the
//! targets and packages, unpacks them and runs these tests; plain `cargo test` lists them as
//! ignored.
//!
//! Each foreign program gets an ALSA configuration of its own (`ALSA_CONFIG_PATH`), naming the
//! same PCMs with its architecture's plugin and test device, and nothing from the system's:
//! a 64-bit conf.d hook (libasound2-plugins' pulse hook, say) cannot load in it.

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

use common::fields::*;
use common::*;

/// A foreign architecture: its Rust target, its Debian name, and how to run its programs.
struct Arch {
    triple: &'static str,
    deb: &'static str,
    qemu: Option<&'static str>,
}

const I386: Arch = Arch {
    triple: "i686-unknown-linux-gnu",
    deb: "i386",
    qemu: None,
};
const ARM64: Arch = Arch {
    triple: "aarch64-unknown-linux-gnu",
    deb: "arm64",
    qemu: Some("qemu-aarch64"),
};
const ARMHF: Arch = Arch {
    triple: "armv7-unknown-linux-gnueabihf",
    deb: "armhf",
    qemu: Some("qemu-arm"),
};

impl Arch {
    /// The plugin, pump and test device built for this architecture.
    /// Built once per test process, as `build_dir()` builds the native one.
    fn build(&self) -> PathBuf {
        static BUILT: Mutex<Vec<&str>> = Mutex::new(Vec::new());
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        if !built.contains(&self.triple) {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let st = Command::new(cargo)
                .args(["build", "--workspace", "--target", self.triple])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("running cargo build");
            assert!(st.success(), "cargo build --workspace --target {} failed", self.triple);
            built.push(self.triple);
        }
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join(self.triple)
            .join("debug")
    }

    fn aplay(&self) -> PathBuf {
        foreign_aplay(self.deb)
    }

    /// Writes `w`'s PCMs for this architecture and returns the file. Under emulation the pump
    /// runs through a wrapper that starts it under qemu: the kernel here cannot exec an ARM
    /// binary by itself (no binfmt_misc handler).
    fn conf(&self, w: &World) -> PathBuf {
        let b = self.build();
        let pump = match self.qemu {
            None => String::new(),
            Some(q) => {
                let wrapper = w.path(&format!("pump-{}.sh", self.deb));
                std::fs::write(
                    &wrapper,
                    format!("#!/bin/sh\nexec {q} {} \"$@\"\n", b.join("rdmix-pump").display()),
                )
                .unwrap();
                std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
                format!("pump \"{}\"", wrapper.display())
            }
        };
        let conf = format!(
            "pcm_type.rdmix {{ lib \"{b}/libasound_module_pcm_rdmix.so\" }}\n\
             pcm_type.rdmixfake {{ lib \"{b}/libasound_module_pcm_rdmixfake.so\" }}\n\
             pcm.card {{ type rdmixfake; file \"{d}/rec.wav\"; log \"{d}/card.log\" }}\n\
             pcm.!default {{ type rdmix; ipc_key {k}; slave.pcm \"card\"; {pump} }}\n",
            b = b.display(),
            d = w.dir.display(),
            k = w.key,
        );
        let path = w.path(&format!("asound-{}.conf", self.deb));
        std::fs::write(&path, conf).unwrap();
        path
    }

    /// This architecture's aplay playing `file` in `w`.
    fn spawn_aplay(&self, w: &World, file: &str) -> Child {
        let conf = self.conf(w);
        let aplay = self.aplay();
        let mut c = match self.qemu {
            None => w.cmd(aplay.to_str().unwrap()),
            Some(q) => {
                let mut c = w.cmd(q);
                c.arg(&aplay);
                c
            }
        };
        c.env("ALSA_CONFIG_PATH", conf)
            .args(["-q", file])
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", aplay.display()))
    }
}

/// The program the one pump serving `w` runs: its executable, or under qemu-user the guest
/// program qemu was given.
fn pump_program(w: &World) -> PathBuf {
    let pumps = w.pumps();
    assert_eq!(pumps.len(), 1, "one pump for the key: {pumps:?}");
    let exe = std::fs::read_link(format!("/proc/{}/exe", pumps[0])).unwrap();
    if !exe.file_name().unwrap().to_string_lossy().starts_with("qemu-") {
        return exe;
    }
    let cmd = std::fs::read(format!("/proc/{}/cmdline", pumps[0])).unwrap();
    let guest = cmd.split(|b| *b == 0).nth(1).unwrap();
    std::fs::canonicalize(String::from_utf8_lossy(guest).as_ref()).unwrap()
}

fn finish(c: Child, what: &str) {
    common::finish(c, Duration::from_secs(90), what);
}

/// One foreign aplay alone: it starts its own architecture's pump, and the device records
/// exactly what it played.
fn alone_is_bit_exact(arch: &Arch) {
    let w = World::new("");
    let n = 48_000;
    let name = write_stream(&w, 0, n);
    let c = arch.spawn_aplay(&w, &name);
    w.wait_lanes(1, Duration::from_secs(30));
    let exe = pump_program(&w);
    assert_eq!(
        exe,
        arch.build().join("rdmix-pump").canonicalize().unwrap(),
        "the client started the pump beside its own plugin"
    );
    finish(c, &format!("aplay:{}", arch.deb));
    w.wait_pump_gone(Duration::from_secs(20));
    let rec = read_rec_s16(&w.path("rec.wav"));
    let span = locate(&rec, 0).expect("the stream was recorded");
    assert_eq!(span.1 as u64, n, "every frame, once");
    check_exact(&rec, &[span]);
    eprintln!(
        "MEASURE multiarch: aplay:{} and its pump {}: {} frames exact",
        arch.deb,
        exe.display(),
        span.1
    );
}

#[test]
#[ignore = "needs foreign-architecture builds and aplay; scripts/ci/cross.sh runs it"]
fn a_32_bit_client_alone_starts_a_32_bit_pump_and_is_bit_exact() {
    alone_is_bit_exact(&I386);
}

/// A 32-bit and a 64-bit aplay on one pump, both ways round: the first one started the pump
/// (its own architecture's), the second joins it, and the mix is exact.
#[test]
#[ignore = "needs foreign-architecture builds and aplay; scripts/ci/cross.sh runs it"]
fn thirty_two_and_sixty_four_bit_programs_share_one_pump_either_way_round() {
    for first_is_32 in [true, false] {
        let w = World::new("");
        // The first plays long enough for the second to join while it plays.
        let a = write_stream(&w, 0, 144_000);
        let b = write_stream(&w, 1, 48_000);
        let native = |f: &str| w.spawn("aplay", &["-q", f]);
        let first = if first_is_32 {
            I386.spawn_aplay(&w, &a)
        } else {
            native(&a)
        };
        w.wait_lanes(1, Duration::from_secs(30));
        let second = if first_is_32 {
            native(&b)
        } else {
            I386.spawn_aplay(&w, &b)
        };
        w.wait_lanes(2, Duration::from_secs(30));
        let expect = if first_is_32 {
            I386.build().join("rdmix-pump")
        } else {
            build_dir().join("rdmix-pump")
        };
        assert_eq!(
            pump_program(&w),
            expect.canonicalize().unwrap(),
            "the pump is the first client's (32-bit first: {first_is_32})"
        );
        finish(first, "first aplay");
        finish(second, "second aplay");
        w.wait_pump_gone(Duration::from_secs(20));
        let rec = read_rec_s16(&w.path("rec.wav"));
        let spans: Vec<(usize, usize)> = (0..2).map(|i| locate(&rec, i).expect("both recorded")).collect();
        assert_eq!((spans[0].1, spans[1].1), (144_000, 48_000), "every frame of both, once");
        assert!(
            spans[1].0 < spans[0].0 + spans[0].1,
            "the second played while the first did: {spans:?}"
        );
        check_exact(&rec, &spans);
        eprintln!("MEASURE multiarch: 32-bit first: {first_is_32}: spans {spans:?}, exact");
    }
}

#[test]
#[ignore = "needs foreign-architecture builds and aplay; scripts/ci/cross.sh runs it"]
fn an_aarch64_client_and_pump_under_qemu_are_bit_exact() {
    alone_is_bit_exact(&ARM64);
}

#[test]
#[ignore = "needs foreign-architecture builds and aplay; scripts/ci/cross.sh runs it"]
fn an_armv7_client_and_pump_under_qemu_are_bit_exact() {
    alone_is_bit_exact(&ARMHF);
}
