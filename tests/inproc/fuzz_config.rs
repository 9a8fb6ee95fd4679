//! Config fuzzing through real alsa-lib: `snd_pcm_open` on generated rdmix nodes with wrong
//! types, huge and negative numbers, empty and enormous strings, nested compounds, unknown
//! keys and rdmix as its own slave. Every refused case must return a negative errno with one
//! `rdmix:` line; none may crash, hang or leak a descriptor.
//!
//! `RDMIX_FUZZ_CASES` sets the number of cases (default 400; `scripts/ci/fuzz.sh` runs 10,000).

#[path = "../common/mod.rs"]
mod common;

use std::ffi::{CStr, CString, c_char, c_int};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alsa_sys as a;
use common::alsa::world;
use common::{Rng, build_dir};

static LAST: Mutex<Vec<String>> = Mutex::new(Vec::new());

unsafe extern "C" {
    fn vsnprintf(s: *mut c_char, n: usize, fmt: *const c_char, ap: *mut a::__va_list_tag) -> c_int;
}

/// alsa-lib's per-thread error hook: collects the formatted messages.
unsafe extern "C" fn capture(
    _file: *const c_char,
    _line: c_int,
    _func: *const c_char,
    _err: c_int,
    fmt: *const c_char,
    ap: *mut a::__va_list_tag,
) {
    let mut buf = [0 as c_char; 1024];
    // SAFETY: formats alsa-lib's message into our buffer.
    unsafe { vsnprintf(buf.as_mut_ptr(), buf.len(), fmt, ap) };
    // SAFETY: vsnprintf NUL-terminates within the buffer.
    let s = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned();
    LAST.lock().unwrap().push(s);
}

fn pick<'a>(r: &mut Rng, v: &[&'a str]) -> &'a str {
    v[r.below(v.len() as u64) as usize]
}

fn value(r: &mut Rng, depth: u32) -> String {
    match r.below(if depth > 2 { 9 } else { 11 }) {
        0 => r.next().to_string(),
        1 => format!("-{}", r.below(1 << 40)),
        2 => pick(
            r,
            &[
                "0",
                "1",
                "-1",
                "48000",
                "2",
                "0660",
                "0x10",
                "9223372036854775807",
                "-9223372036854775808",
            ],
        )
        .into(),
        3 => "\"\"".into(),
        4 => format!(
            "\"{}\"",
            pick(
                r,
                &[
                    "card",
                    "S16_LE",
                    "FLOAT_LE",
                    "abc",
                    "audio",
                    "true",
                    "nosuch",
                    "selfloop",
                    "/bin/false",
                    "48000"
                ]
            )
        ),
        5 => format!("\"{}\"", "x".repeat(r.below(5000) as usize)),
        6 => pick(r, &["true", "false", "yes", "on"]).into(),
        7 => format!("{}.{}", r.below(1000), r.below(1000)),
        8 => "1e308".into(),
        _ => format!("{{ {} }}", items(r, depth + 1, 3)),
    }
}

fn key(r: &mut Rng) -> String {
    let keys = [
        "slave",
        "slave.pcm",
        "slave.format",
        "slave.rate",
        "slave.channels",
        "slave.period_size",
        "slave.period_time",
        "slave.buffer_size",
        "slave.buffer_time",
        "slave.periods",
        "ipc_key",
        "ipc_key_add_uid",
        "ipc_perm",
        "ipc_gid",
        "pump",
        "comment",
        "hint",
        "bindings",
        "slowptr",
        "zzz",
        "slave.zzz",
        "ipc_key.x",
    ];
    if r.below(10) == 0 {
        format!("k{}", r.below(1000))
    } else {
        pick(r, &keys).into()
    }
}

/// Keys that would redefine each other (`a` and `a.b`, or `a` twice) are skipped: alsa-lib's
/// parser rejects those before rdmix ever sees them.
fn clashes(used: &[String], k: &str) -> bool {
    used.iter()
        .any(|u| u == k || k.starts_with(&format!("{u}.")) || u.starts_with(&format!("{k}.")))
}

fn items_avoiding(r: &mut Rng, depth: u32, max: u64, used: &mut Vec<String>) -> String {
    let mut out = String::new();
    for _ in 0..r.below(max) + 1 {
        let k = key(r);
        if clashes(used, &k) {
            continue;
        }
        used.push(k.clone());
        out += &format!("{k} {}; ", value(r, depth));
    }
    out
}

fn items(r: &mut Rng, depth: u32, max: u64) -> String {
    items_avoiding(r, depth, max, &mut Vec::new())
}

/// One generated `pcm.fuzz` body. Most are broken somewhere; some are valid.
fn case(r: &mut Rng, key_base: u32, i: u32) -> String {
    let mut body = format!("type rdmix; ipc_key {}; ", key_base + (i % 64));
    if r.below(25) == 0 {
        // Now and then a valid one, so the success path (and its pump) is exercised too.
        return body + "slave.pcm \"card\"; ipc_perm 0660";
    }
    let mut used = vec!["type".to_string(), "ipc_key".to_string()];
    match r.below(4) {
        // Mostly a plausible slave, with random extras that may break it.
        0 | 1 => {
            body += &format!("slave.pcm {}; ", value(r, 0));
            used.push("slave.pcm".into());
        }
        2 => {
            body += &format!("slave {{ pcm \"card\"; {} }} ", items(r, 1, 3));
            used.push("slave".into());
        }
        _ => {}
    }
    body += &items_avoiding(r, 0, 4, &mut used);
    body
}

fn open_lconf(text: &str) -> (c_int, Vec<String>) {
    LAST.lock().unwrap().clear();
    let c = CString::new(text).unwrap();
    let mut conf = std::ptr::null_mut();
    let mut input = std::ptr::null_mut();
    // SAFETY: builds a config tree from our text, opens and closes a PCM on it, frees it all.
    let r = unsafe {
        a::snd_config_top(&mut conf);
        a::snd_input_buffer_open(&mut input, c.as_ptr(), text.len() as isize);
        let lr = a::snd_config_load(conf, input);
        a::snd_input_close(input);
        if lr < 0 {
            a::snd_config_delete(conf);
            return (lr, vec!["<alsa-lib parser>".into()]);
        }
        let mut pcm = std::ptr::null_mut();
        let r = a::snd_pcm_open_lconf(&mut pcm, c"fuzz".as_ptr(), a::SND_PCM_STREAM_PLAYBACK, 0, conf);
        if r == 0 {
            a::snd_pcm_close(pcm);
        }
        a::snd_config_delete(conf);
        r
    };
    (r, LAST.lock().unwrap().clone())
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

#[test]
fn fuzzed_configs_fail_cleanly() {
    let w = world();
    let cases: u32 = std::env::var("RDMIX_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    // SAFETY: installs our per-thread error hook (alsa-lib keeps a thread-local pointer).
    unsafe { a::snd_lib_error_set_local(Some(capture)) };
    let lib = format!("{}/libasound_module_pcm_rdmix.so", build_dir().display());
    std::fs::OpenOptions::new()
        .append(true)
        .open(w.dir.join(".asoundrc"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"pcm.selfloop { type rdmix; slave.pcm \"selfloop\" }\n"))
        .unwrap();
    // Warm up alsa-lib's own allocations before counting descriptors.
    let _ = open_lconf(&format!(
        "pcm_type.rdmix {{ lib \"{lib}\" }} pcm.fuzz {{ type rdmix; bogus 1 }}"
    ));
    let fds0 = fd_count();
    let progress = std::sync::Arc::new(AtomicU64::new(0));
    {
        // A case that hangs is a failure: abort loudly instead of waiting forever.
        let progress = progress.clone();
        std::thread::spawn(move || {
            let mut last = (0, Instant::now());
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let p = progress.load(Ordering::Relaxed);
                if p != last.0 {
                    last = (p, Instant::now());
                } else if last.1.elapsed() > Duration::from_secs(30) {
                    eprintln!("fuzz case {p} hung for 30 s");
                    std::process::abort();
                }
            }
        });
    }
    let mut r = Rng(0xf022_c0f1);
    let key_base = 0x4100_0000 + (std::process::id() % 0x1000) * 0x100;
    let (mut refused, mut accepted, mut parser) = (0u32, 0u32, 0u32);
    for i in 0..cases {
        let text = format!(
            "pcm_type.rdmix {{ lib \"{lib}\" }}\npcm.fuzz {{ {} }}",
            case(&mut r, key_base, i)
        );
        let (rc, msgs) = open_lconf(&text);
        progress.store(i as u64 + 1, Ordering::Relaxed);
        if msgs.first().is_some_and(|m| m == "<alsa-lib parser>") {
            if parser < 3 && std::env::var_os("RDMIX_FUZZ_SHOW").is_some() {
                eprintln!(
                    "parser rejected: {}",
                    text.lines().nth(1).unwrap_or("").chars().take(300).collect::<String>()
                );
            }
            parser += 1;
            continue;
        }
        if rc == 0 {
            accepted += 1;
            continue;
        }
        refused += 1;
        let ours: Vec<&String> = msgs.iter().filter(|m| m.starts_with("rdmix:")).collect();
        assert!(rc < 0, "case {i}: {rc}");
        assert_eq!(ours.len(), 1, "case {i}: one rdmix line for {rc}, got {msgs:?}\n{text}");
        if i % 500 == 499 {
            assert!(
                fd_count() <= fds0 + 2,
                "descriptors leak: {} -> {} after {i} cases",
                fds0,
                fd_count()
            );
        }
    }
    let fds1 = fd_count();
    eprintln!(
        "MEASURE fuzz: {cases} configs: {refused} refused with one rdmix line, {accepted} valid and opened, {parser} rejected by alsa-lib's parser; fds {fds0} -> {fds1}"
    );
    assert!(fds1 <= fds0 + 2, "descriptors leaked: {fds0} -> {fds1}");
    assert!(refused > cases / 2, "most generated configs are broken");
}
