//! A hostile member of a shared rdmix pump, for tests/isolation.rs (run as a real user):
//!
//! - `rdmix-hostile scribble PCM WRITES SEED`: opens PCM through alsa-lib, starts a stream,
//!   checks which of its mappings it can write, then writes random words anywhere it can in
//!   rdmix's shared memory, WRITES times;
//! - `rdmix-hostile flood NAME COUNT`: opens COUNT connections to the abstract socket NAME
//!   and says nothing; reports how many the pump refused, then holds the rest until stdin
//!   closes;
//! - `rdmix-hostile volume NAME LANE PID`: a VOLUME for another's lane;
//! - `rdmix-hostile watch NAME COUNT`: COUNT mixers' WATCH connections that never read.
//!
//! It prints `MEASURE` lines and exits non-zero if anything it should not reach was reachable.

use std::ffi::CString;
use std::io::Read;
use std::time::{Duration, Instant};

use alsa_sys as a;
use asound_module_pcm_rdmix::sys;
use asound_module_pcm_rdmix::sys::socket::Addr;

#[path = "../../common/maps.rs"]
mod maps;
use maps::{Map, rdmix_maps};

fn check(what: &str, r: i32) {
    if r < 0 {
        eprintln!("rdmix-hostile: {what}: {}", std::io::Error::from_raw_os_error(-r));
        std::process::exit(3);
    }
}

fn scribble(pcm_name: &str, writes: u64, mut x: u64) {
    let name = CString::new(pcm_name).unwrap();
    let mut pcm: *mut a::snd_pcm_t = std::ptr::null_mut();
    // SAFETY: alsa-lib calls on a PCM this function owns; pointers are live for each call.
    unsafe {
        check(
            "open",
            a::snd_pcm_open(&mut pcm, name.as_ptr(), a::SND_PCM_STREAM_PLAYBACK, 0),
        );
        check(
            "set_params",
            a::snd_pcm_set_params(
                pcm,
                a::SND_PCM_FORMAT_S16_LE,
                a::SND_PCM_ACCESS_RW_INTERLEAVED,
                1,
                48000,
                1,
                100_000,
            ),
        );
        let frames = vec![0x1234i16; 4800];
        a::snd_pcm_writei(pcm, frames.as_ptr() as *const libc::c_void, 4800);
    }
    let maps = rdmix_maps();
    let writable: Vec<&Map> = maps.iter().filter(|m| m.perms.starts_with("rw")).collect();
    let header = maps.iter().find(|m| m.name.contains("rdmix-segment"));
    // The header is read-only, and cannot be made writable.
    // SAFETY: mprotect on a mapping of this process; failure is the expected outcome.
    let upgrade = header.map(|h| unsafe {
        libc::mprotect(
            h.start as *mut libc::c_void,
            h.end - h.start,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    });
    let upgrade_err = std::io::Error::last_os_error();
    println!(
        "MEASURE hostile: rdmix mappings: {}; writable: {} ({} bytes); making the header writable: {}",
        maps.iter()
            .map(|m| format!("{} {}", m.perms, m.name))
            .collect::<Vec<_>>()
            .join(", "),
        writable.len(),
        writable.iter().map(|m| m.end - m.start).sum::<usize>(),
        match upgrade {
            Some(0) => "ALLOWED".to_string(),
            Some(_) => format!("refused ({upgrade_err})"),
            None => "no header mapped".to_string(),
        }
    );
    if writable.len() != 1 || !writable[0].name.contains("rdmix-lane") || upgrade != Some(-1) {
        eprintln!("rdmix-hostile: this client can write more than its own lane");
        std::process::exit(4);
    }
    let lane = writable[0];
    let words = (lane.end - lane.start) / 8;
    let t0 = Instant::now();
    for i in 0..writes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Half the writes hit the slot (the first page), half anywhere in the ring.
        let w = if i % 2 == 0 {
            (x >> 40) as usize % 512
        } else {
            (x >> 20) as usize % words
        };
        // SAFETY: w < words keeps the write inside this process's own writable lane mapping.
        unsafe { std::ptr::write_volatile((lane.start as *mut u64).add(w), x) };
        // Spread over about half a second, so that the writes land across many periods.
        if i % 20 == 0 {
            let _ = sys::fd::poll(&mut [], 1);
        }
    }
    println!("MEASURE hostile: {writes} random words written in {:?}", t0.elapsed());
    // SAFETY: closing the PCM this function opened.
    unsafe { a::snd_pcm_close(pcm) };
}

/// Drops the held connections the pump has hung up on; returns how many.
fn reap(held: &mut Vec<std::os::fd::OwnedFd>) -> usize {
    let mut fds: Vec<libc::pollfd> = held
        .iter()
        .map(|s| sys::fd::pollfd(std::os::fd::AsRawFd::as_raw_fd(s), libc::POLLIN))
        .collect();
    let _ = sys::fd::poll(&mut fds, 0);
    let before = held.len();
    let mut i = 0;
    held.retain(|_| {
        i += 1;
        fds[i - 1].revents & (libc::POLLHUP | libc::POLLIN) == 0
    });
    before - held.len()
}

fn flood(name: &str, count: usize) {
    sys::process::raise_nofile_limit();
    let addr = Addr::Abstract(name.to_string());
    let mut held = Vec::new();
    let t0 = Instant::now();
    let (mut connected, mut failed, mut refused) = (0, 0, 0);
    for i in 0..count {
        match sys::socket::connect(&addr) {
            Ok(s) => {
                held.push(s);
                connected += 1;
            }
            Err(_) => failed += 1,
        }
        // Let go of what the pump refused, as a real flood would, to keep going past our
        // own descriptor limit.
        if i % 100 == 99 {
            refused += reap(&mut held);
        }
    }
    // Wait (bounded) until the pump has answered each connection it will refuse.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        refused += reap(&mut held);
        if held.len() <= 8 || Instant::now() >= deadline {
            break;
        }
        let _ = sys::fd::poll(&mut [], 20);
    }
    println!(
        "MEASURE flood: {count} connections in {:?}: {connected} connected, {failed} failed to connect, \
         {refused} refused by the pump, {} held",
        t0.elapsed(),
        held.len()
    );
    println!("ready");
    let _ = std::io::stdin().read(&mut [0u8; 1]);
}

/// Asks the pump at NAME to mute lane LANE as if it were pid PID's, as whoever runs this;
/// prints the answer.
fn volume(name: &str, lane: u64, pid: u64) {
    use asound_module_pcm_rdmix::wire::{self, Incoming, Msg, VOLUME};
    let sock = sys::socket::connect(&Addr::Abstract(name.to_string())).expect("connect");
    let mut m = Msg::new(VOLUME);
    m.args = [lane, pid, 0, 0];
    wire::send(&sock, &m, &[]).expect("send");
    match wire::recv_until(&sock, Instant::now() + Duration::from_secs(2)) {
        Ok(Incoming::Msg(r, _)) => match r.refusal() {
            None => println!("volume: ALLOWED"),
            Some(e) => println!("volume: refused: {}", e.line()),
        },
        _ => println!("volume: no answer"),
    }
}

/// Opens COUNT mixers' connections (WATCH) to the pump at NAME and never reads from them:
/// reports how many the pump took and how it refused the rest, then holds them (and lets
/// CHANGED pile up unread) until stdin closes.
fn watch(name: &str, count: usize) {
    use asound_module_pcm_rdmix::wire::{self, Incoming, Msg, PROTO_VERSION, WATCH};
    let mut held = Vec::new();
    let (mut taken, mut refused, mut why) = (0, 0, String::new());
    for _ in 0..count {
        let Ok(sock) = sys::socket::connect(&Addr::Abstract(name.to_string())) else {
            continue;
        };
        let mut m = Msg::new(WATCH);
        m.args[0] = PROTO_VERSION;
        let _ = wire::send(&sock, &m, &[]);
        match wire::recv_until(&sock, Instant::now() + Duration::from_secs(2)) {
            Ok(Incoming::Msg(r, _)) if r.refusal().is_none() => {
                taken += 1;
                held.push(sock);
            }
            Ok(Incoming::Msg(r, _)) => {
                refused += 1;
                why = r.refusal().map(|e| e.line().to_string()).unwrap_or_default();
            }
            _ => refused += 1,
        }
    }
    println!("MEASURE watch: {count} mixers: {taken} watching, {refused} refused ({why})");
    println!("ready");
    let _ = std::io::stdin().read(&mut [0u8; 1]);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let argv: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    match argv.as_slice() {
        [_, "scribble", pcm, n, seed] => scribble(pcm, n.parse().unwrap(), seed.parse().unwrap()),
        [_, "flood", name, n] => flood(name, n.parse().unwrap()),
        [_, "volume", name, lane, pid] => volume(name, lane.parse().unwrap(), pid.parse().unwrap()),
        [_, "watch", name, n] => watch(name, n.parse().unwrap()),
        _ => {
            eprintln!(
                "usage: rdmix-hostile scribble PCM WRITES SEED | flood NAME COUNT | volume NAME LANE PID | watch NAME COUNT"
            );
            std::process::exit(2);
        }
    }
}
