//! Shared harness for the end-to-end tests: a private ALSA configuration that loads rdmix
//! and the copy-only test device from the build tree, real programs, and WAV helpers.
#![allow(dead_code)]

pub mod alsa;
pub mod fields;
pub mod levels;
pub mod maps;
pub mod mic;

#[allow(unused_imports)]
pub use maps::{Map, rdmix_maps};

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The directory holding the built plugin, pump and test device.
pub fn build_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let pump = PathBuf::from(env!("CARGO_BIN_EXE_rdmix-pump"));
        let dir = pump.parent().unwrap().to_path_buf();
        {
            // `cargo test` is not sure to rebuild the plugin's cdylib, nor the test device
            // (another workspace member): build both, so no test runs a stale plugin.
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut args = vec!["build".to_string(), "--workspace".to_string()];
            if dir.ends_with("release") {
                args.push("--release".into());
            }
            // target/<triple>/<profile>: a cross or sanitizer build names its target.
            if let Some(triple) = dir.parent().and_then(|p| p.file_name()).filter(|n| *n != "target") {
                args.extend(["--target".to_string(), triple.to_string_lossy().into_owned()]);
            }
            let st = Command::new(cargo)
                .args(&args)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("running cargo build");
            assert!(st.success(), "cargo build --workspace failed");
        }
        dir
    })
    .clone()
}

pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A private world: its own HOME with an .asoundrc, its own ipc_key, its own recording.
pub struct World {
    pub dir: PathBuf,
    pub key: u32,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Where worlds live: tmpfs when there is one. The test device writes its recording from
/// inside the pump's real-time loop, and a write to a disk file can stall for tens of
/// milliseconds while other tests (or cargo) fill the page cache: long enough to underrun
/// a device whose buffer is 21 ms. A real card has no such file; tmpfs never waits on a disk.
pub fn scratch_root() -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let usable = std::fs::metadata(shm).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o1777 == 0o1777);
    if usable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

impl World {
    /// `extra` is appended to the .asoundrc; `{dir}` and `{key}` are substituted.
    /// `pcm.card` is the copy-only test device recording to `{dir}/rec.wav`, and
    /// `pcm.!default` is rdmix over it, `ctl.!default` its mixer controls.
    pub fn new(extra: &str) -> World {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = scratch_root().join(format!("rdmix-e2e-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = 0x5000_0000 + (std::process::id() % 0x10000) * 0x100 + n;
        let b = build_dir();
        let rc = format!(
            r#"pcm_type.rdmix {{ lib "{b}/libasound_module_pcm_rdmix.so" }}
ctl_type.rdmix {{ lib "{b}/libasound_module_pcm_rdmix.so" }}
pcm_type.rdmixfake {{ lib "{b}/libasound_module_pcm_rdmixfake.so" }}
pcm.card {{ type rdmixfake; file "{{dir}}/rec.wav"; log "{{dir}}/card.log" }}
pcm.!default {{ type rdmix; ipc_key {{key}}; slave.pcm "card" }}
ctl.!default {{ type rdmix; ipc_key {{key}}; slave.pcm "card" }}
{extra}
"#,
            b = b.display()
        )
        .replace("{dir}", &dir.display().to_string())
        .replace("{key}", &key.to_string());
        std::fs::write(dir.join(".asoundrc"), rc).unwrap();
        World { dir, key }
    }

    /// A world every test user can read and write. `files` (the test device's) are made
    /// writable by whichever user's pump opens the device.
    pub fn open_to_all(extra: &str, files: &[&str]) -> World {
        let w = World::new(extra);
        chmod(&w.dir, 0o777);
        for f in files {
            std::fs::write(w.path(f), b"").unwrap();
            chmod(&w.path(f), 0o666);
        }
        w
    }

    /// `args` run as `user` (with `runuser`) in this world, its pump logging to
    /// `pump-USER.log`.
    pub fn as_user(&self, user: &str, args: &[&str]) -> Command {
        let mut c = self.cmd("runuser");
        c.args(["-u", user, "--", "env"])
            .arg(format!("HOME={}", self.dir.display()))
            .arg(format!("RDMIX_PUMP_LOG={}/pump-{user}.log", self.dir.display()))
            .args(args);
        c
    }

    /// What the pumps these users started logged, together.
    pub fn user_logs(&self, users: &[&str]) -> String {
        users
            .iter()
            .map(|u| std::fs::read_to_string(self.path(&format!("pump-{u}.log"))).unwrap_or_default())
            .collect()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A command with this world's environment.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("HOME", &self.dir)
            .env("RDMIX_PUMP_LOG", self.dir.join("pump.log"))
            .env_remove("ALSA_CONFIG_PATH")
            // Saved volumes stay in this world's HOME (~/.local/state/rdmix).
            .env_remove("XDG_STATE_HOME")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    pub fn spawn(&self, program: &str, args: &[&str]) -> Child {
        self.cmd(program)
            .args(args)
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"))
    }

    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.cmd(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"))
    }

    /// Runs a program to completion (60 s at most), asserts it succeeded, and waits for the
    /// pump to go (so the recording is complete).
    pub fn play(&self, program: &str, args: &[&str]) {
        let o = wait_child(self.spawn(program, args), Duration::from_secs(60), program);
        assert!(
            o.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        self.wait_pump_gone(Duration::from_secs(10));
    }

    pub fn pump_log(&self) -> String {
        std::fs::read_to_string(self.path("pump.log")).unwrap_or_default()
    }

    /// Pids of live pumps serving this world's key.
    pub fn pumps(&self) -> Vec<i32> {
        pumps_for_key(self.key)
    }

    /// Waits until `n` clients have taken lanes, by the pump's log.
    pub fn wait_lanes(&self, n: usize, limit: Duration) {
        wait_until(
            limit,
            || self.pump_log().matches("took lane").count() >= n,
            || format!("{n} lanes never taken: {}", self.pump_log()),
        );
    }

    /// Waits until the pump has gone (it lingers briefly after the last client).
    pub fn wait_pump_gone(&self, limit: Duration) {
        wait_until(
            limit,
            || self.pumps().is_empty(),
            || format!("pump still running: {}", self.pump_log()),
        );
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Debian's aplay for architecture `deb` (i386, arm64, armhf), which scripts/ci/cross.sh
/// unpacks from alsa-utils under `target/foreign/DEB` (or `$RDMIX_FOREIGN/DEB`).
pub fn foreign_aplay(deb: &str) -> PathBuf {
    let root = std::env::var_os("RDMIX_FOREIGN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/foreign"));
    let p = root.join(deb).join("usr/bin/aplay");
    assert!(
        p.exists(),
        "{}: missing; scripts/ci/cross.sh unpacks alsa-utils:{deb} there",
        p.display()
    );
    p
}

/// Live (not zombie) rdmix-pump processes whose command line names `key`.
pub fn pumps_for_key(key: u32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        // A foreign pump under qemu-user shows as `qemu-ARCH PUMP ARGS`.
        let skip = usize::from(
            args.first()
                .is_some_and(|a| a.rsplit('/').next().unwrap_or("").starts_with("qemu-")),
        );
        if !args.get(skip).is_some_and(|a| a.ends_with("rdmix-pump")) {
            continue;
        }
        if args.windows(2).any(|w| w[0] == "--key" && w[1] == key.to_string()) {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let state = stat.rsplit(')').next().unwrap_or("").trim().chars().next();
            if state != Some('Z') {
                out.push(pid);
            }
        }
    }
    out
}

/// Polls `cond` until it holds or `limit` passes (then panics with `why()`).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool, why: impl Fn() -> String) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out after {limit:?}: {}", why());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for a child with a deadline; kills it and panics if it overruns.
/// Waits (up to `within`) for a program that must succeed; returns its standard error.
#[allow(dead_code)]
pub fn finish(c: Child, within: Duration, what: &str) -> String {
    let o = wait_child(c, within, what);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{what}: {err}");
    err
}

pub fn wait_child(mut c: Child, limit: Duration, what: &str) -> Output {
    let end = Instant::now() + limit;
    loop {
        if c.try_wait().unwrap().is_some() {
            return c.wait_with_output().unwrap();
        }
        if Instant::now() > end {
            let _ = c.kill();
            let o = c.wait_with_output().unwrap();
            panic!(
                "{what} did not finish within {limit:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Writes a 16-bit stereo WAV at `rate`.
pub fn write_wav_s16(path: &Path, rate: u32, frames: &[[i16; 2]]) {
    let data: Vec<u8> = frames
        .iter()
        .flat_map(|f| [f[0].to_le_bytes(), f[1].to_le_bytes()].concat())
        .collect();
    let mut h = Vec::with_capacity(44 + data.len());
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * 4).to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&(data.len() as u32).to_le_bytes());
    h.extend_from_slice(&data);
    std::fs::write(path, h).unwrap();
}

/// Reads the test device's recording (16-bit stereo after a 44-byte header).
pub fn read_rec_s16(path: &Path) -> Vec<[i16; 2]> {
    let b = std::fs::read(path).unwrap_or_default();
    if b.len() < 44 {
        return Vec::new();
    }
    b[44..]
        .chunks_exact(4)
        .map(|c| [i16::from_le_bytes([c[0], c[1]]), i16::from_le_bytes([c[2], c[3]])])
        .collect()
}

/// Reads a raw (headerless) 16-bit stereo recording.
pub fn read_raw_s16(path: &Path) -> Vec<[i16; 2]> {
    let b = std::fs::read(path).unwrap_or_default();
    b.chunks_exact(4)
        .map(|c| [i16::from_le_bytes([c[0], c[1]]), i16::from_le_bytes([c[2], c[3]])])
        .collect()
}

/// poll(2) through rdmix's own wrapper: descriptors ready, 0 on timeout.
pub fn rdmix_poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> usize {
    asound_module_pcm_rdmix::sys::fd::poll(fds, timeout_ms).expect("poll")
}

/// Sets a file's permission bits.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// The `/proc/PID/fd/N` path of the shared segment, held by whichever of `pids` holds one
/// (a pump that lost the race to start can be alive beside the winner for a moment).
pub fn segment_fd(pids: &[i32]) -> Option<PathBuf> {
    pids.iter().find_map(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()?
            .flatten()
            .find(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().contains("rdmix-segment")))
            .map(|e| e.path())
    })
}

/// A snippet of system-wide ALSA configuration (`/etc/alsa/conf.d`), removed on drop: what
/// a pump shared with other users reads instead of anyone's `~/.asoundrc`. Root only.
pub struct SystemConf(pub PathBuf);

impl SystemConf {
    pub fn install(text: &str) -> SystemConf {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = Path::new("/etc/alsa/conf.d");
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(format!("99-rdmix-test-{}-{n}.conf", std::process::id()));
        std::fs::write(&p, text).unwrap();
        chmod(&p, 0o644);
        SystemConf(p)
    }

    /// Defines `pcm.NAME`, the copy-only test device recording to `file`, system-wide.
    pub fn card(name: &str, file: &Path) -> SystemConf {
        let b = build_dir();
        SystemConf::install(&format!(
            "pcm_type.rdmixfake {{ lib \"{}/libasound_module_pcm_rdmixfake.so\" }}\npcm.{name} {{ type rdmixfake; file \"{}\" }}\n",
            b.display(),
            file.display()
        ))
    }
}

impl Drop for SystemConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Open descriptors and threads of a process.
pub fn fds_and_threads(pid: i32) -> (usize, usize) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0);
    (fds, threads)
}

/// A tiny deterministic PRNG (xorshift64*), so random tests replay exactly.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Frame k of the counting stream: never silent, and k (mod 30000) reads back: L = k+1, R = -L.
pub fn sig(k: u64) -> [i16; 2] {
    let v = (k % 30000 + 1) as i16;
    [v, -v]
}

/// Frames 0..n of the counting stream.
pub fn counting_stream(n: u64) -> Vec<[i16; 2]> {
    (0..n).map(sig).collect()
}

/// Interleaved little-endian bytes of 16-bit stereo frames.
pub fn s16_bytes(frames: &[[i16; 2]]) -> Vec<u8> {
    frames
        .iter()
        .flat_map(|f| [f[0].to_le_bytes(), f[1].to_le_bytes()].concat())
        .collect()
}

/// The frames of a recording that are not silent.
pub fn heard(rec: &[[i16; 2]]) -> Vec<[i16; 2]> {
    rec.iter().copied().filter(|f| *f != [0, 0]).collect()
}

/// Sends `sig` to `pid`.
pub fn kill(pid: i32, sig: i32) {
    // SAFETY: sending a signal to a pid.
    unsafe { libc::kill(pid, sig) };
}

#[allow(dead_code)]
pub mod measure;
#[allow(unused_imports)]
pub use measure::{fit_sine, fit_sines, remove_sine, rms, sine_and_residual};

/// Frames recorded so far, from the file size.
pub fn rec_frames(path: &Path) -> usize {
    std::fs::metadata(path)
        .map(|m| (m.len().saturating_sub(44) / 4) as usize)
        .unwrap_or(0)
}

/// Creates `group`, its `members` and the `others` (kept between runs). Root only.
pub fn ensure_test_users(group: &str, members: &[&str], others: &[&str]) {
    let run = |args: &[&str]| {
        let o = Command::new(args[0]).args(&args[1..]).output().expect(args[0]);
        // 9: already exists.
        assert!(
            o.status.success() || o.status.code() == Some(9),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&["groupadd", "-f", group]);
    for u in members {
        run(&["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", "-G", group, u]);
    }
    for u in others {
        run(&["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", u]);
    }
}

/// Whether this process runs as root (tests that create users need it).
pub fn uid_of(user: &str) -> u32 {
    let o = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

pub fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// CPU time (user + system) a process has used, in clock ticks.
pub fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}
