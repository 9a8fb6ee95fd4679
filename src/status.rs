//! What runs in `rdmix-status`: the answer to "who holds my device?".
//!
//! It asks every pump the caller can see for a STATUS report. The pump decides whether the
//! caller may ask, by the same admission rule as for a client: nobody learns about a pump
//! they could not join. The tool takes no lane and touches no shared memory, so it cannot
//! disturb playback. Who a pump is (pid, user) comes from the kernel; everything else is the
//! pump's word, decoded defensively.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::config::saved;
use crate::dsp::gain::{self, Volume};
use crate::sys;
use crate::sys::socket::Addr;
use crate::wire::status::PumpStatus;
use crate::wire::{self, Incoming, MASTER, Msg, PROTO_VERSION, STATUS, Stream, VOLUME};

/// How long one pump has to answer: it answers from its loop within a period.
const ANSWER: Duration = Duration::from_millis(500);

/// One pump, as seen.
struct Seen {
    pid: i32,
    uid: u32,
    status: PumpStatus,
    addr: Option<Addr>,
}

fn ask(addr: &Addr) -> Option<Seen> {
    let sock = sys::socket::connect(addr).ok()?;
    let (pid, uid, _) = sys::socket::peer_cred(&sock).ok()?;
    let mut m = Msg::new(STATUS);
    m.args[0] = PROTO_VERSION;
    wire::send(&sock, &m, &[]).ok()?;
    match wire::recv_until(&sock, Instant::now() + ANSWER) {
        Ok(Incoming::Msg(r, _)) if r.kind == STATUS && r.refusal().is_none() => Some(Seen {
            pid,
            uid,
            status: PumpStatus::decode(r.payload()),
            addr: Some(addr.clone()),
        }),
        _ => None,
    }
}

fn survey() -> Vec<Seen> {
    wire::visible_pumps().iter().filter_map(|(_, a)| ask(a)).collect()
}

/// A level as the command line gives it: `-6dB` (nearest 0.25 dB, at most 0), `mute` or
/// `unmute` (the level as it is).
enum Level {
    Db(i32),
    Switch(bool),
}

fn parse_level(s: &str) -> Option<Level> {
    match s {
        "mute" | "off" => return Some(Level::Switch(false)),
        "unmute" | "on" => return Some(Level::Switch(true)),
        _ => {}
    }
    let db: f64 = s.strip_suffix("dB").or_else(|| s.strip_suffix("db"))?.parse().ok()?;
    (db.is_finite() && db <= 0.0).then(|| Level::Db((db * 100.0).round().max(gain::MIN_CDB as f64) as i32))
}

/// `rdmix-status --volume PID|master LEVEL`: sets one program's volume on whichever pump it
/// plays through, or the master of the one playback pump the caller can see.
fn set_volume(target: &str, level: &str) -> Result<String, String> {
    let level = parse_level(level)
        .ok_or_else(|| format!("rdmix-status: volume: {level:?} is not a level (-6dB, 0dB, mute, unmute)"))?;
    let seen = survey();
    let playback = |p: &&Seen| p.status.stream != "capture";
    let (pump, lane, pid, now, program) = if let Some(key) = target.strip_prefix("master") {
        // `master:KEY` names the pump by its ipc_key (hex with 0x, or decimal).
        let key = match key.strip_prefix(':') {
            None if key.is_empty() => None,
            Some(k) => Some(
                k.strip_prefix("0x")
                    .map_or_else(|| k.parse::<u32>(), |h| u32::from_str_radix(h, 16))
                    .map_err(|_| format!("rdmix-status: volume: {k:?} is not an ipc_key"))?,
            ),
            None => return Err(format!("rdmix-status: volume: {target:?} is neither a pid nor master")),
        };
        let mut pumps = seen
            .iter()
            .filter(playback)
            .filter(|p| key.is_none_or(|k| p.status.key == k));
        let (Some(p), None) = (pumps.next(), pumps.next()) else {
            return Err(match key {
                Some(k) => format!("rdmix-status: volume: no playback pump of ipc_key {k:#x} that you can see"),
                None => "rdmix-status: volume: the master needs exactly one playback pump you can see; \
                         name it: master:KEY"
                    .into(),
            });
        };
        (p, MASTER, 0, p.status.master, None)
    } else {
        let pid: i32 = target
            .parse()
            .map_err(|_| format!("rdmix-status: volume: {target:?} is neither a pid nor master"))?;
        // A program that both plays and records is turned down where it plays.
        let capture = |p: &&Seen| !playback(p);
        seen.iter()
            .filter(playback)
            .chain(seen.iter().filter(capture))
            .find_map(|p| {
                p.status
                    .clients
                    .iter()
                    .find(|c| c.pid == pid)
                    .map(|c| (p, c.lane as u64, pid as u64, c.volume, Some(c.program.clone())))
            })
            .ok_or_else(|| {
                format!("rdmix-status: volume: no program of pid {pid} plays or records through a pump you can see")
            })?
    };
    let (step, on) = now.unwrap_or((gain::STEPS, true));
    let v = match level {
        Level::Db(cdb) => Volume::from_cdb(cdb, on),
        Level::Switch(on) => Volume { step, on },
    };
    let addr = pump
        .addr
        .as_ref()
        .ok_or("rdmix-status: volume: the pump has no address")?;
    let sock = sys::socket::connect(addr).map_err(|e| format!("rdmix-status: volume: cannot reach the pump: {e}"))?;
    let mut m = Msg::new(VOLUME);
    m.args = [lane, pid, v.step as u64, v.on as u64];
    wire::send(&sock, &m, &[]).map_err(|e| format!("rdmix-status: volume: {e}"))?;
    match wire::recv_until(&sock, Instant::now() + ANSWER) {
        Ok(Incoming::Msg(r, _)) if r.kind == VOLUME => match r.refusal() {
            None => {
                // Remembered for the program's next run (or the pump's), in this user's
                // own state.
                if program.is_none()
                    && let Err(e) = saved::remember_master(pump.status.key, v)
                {
                    eprintln!("rdmix-status: volume: set, but not remembered for the master: {e}");
                }
                if let Some(program) = program {
                    let stream = if pump.status.stream == "capture" {
                        Stream::Capture
                    } else {
                        Stream::Playback
                    };
                    if let Err(e) = saved::remember(stream, &program, v) {
                        eprintln!("rdmix-status: volume: set, but not remembered for {program}: {e}");
                    }
                }
                Ok(format!("{target}: {}\n", volume_text(Some((v.step, v.on)))))
            }
            Some(e) => Err(e.line().to_string()),
        },
        _ => Err("rdmix-status: volume: the pump did not answer".into()),
    }
}

/// A volume as the table shows it: `0.0 dB`, `-6.0 dB`, `-inf dB`, `muted`, or `-` for none.
fn volume_text(v: Option<(u32, bool)>) -> String {
    match v {
        None => "-".into(),
        Some((_, false)) => "muted".into(),
        Some((step, true)) => match (Volume { step, on: true }).cdb() {
            Some(cdb) => format!("{:.1} dB", cdb as f64 / 100.0),
            None => "-inf dB".into(),
        },
    }
}

fn user(uid: u32) -> String {
    sys::user::name_of(uid).unwrap_or_else(|| uid.to_string())
}

fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn text(seen: &[Seen]) -> String {
    if seen.is_empty() {
        return "rdmix-status: no rdmix pump is running that you can see\n".into();
    }
    let mut o = String::new();
    for p in seen {
        pump_lines(&mut o, p);
        client_table(&mut o, &p.status);
    }
    o
}

/// A pump's own two lines: who runs it, and the device it holds.
fn pump_lines(o: &mut String, p: &Seen) {
    let s = &p.status;
    let _ = writeln!(
        o,
        "pump {:#010x} {}  pid {}  user {}  {}  up {}  cpu {:.2} s",
        s.key,
        if s.stream.is_empty() { "playback" } else { &s.stream },
        p.pid,
        user(p.uid),
        if s.shared { "shared" } else { "private" },
        clock(s.uptime_ms),
        s.cpu_us as f64 / 1e6
    );
    if s.slave.is_empty() {
        let _ = writeln!(o, "  no device open yet");
        return;
    }
    let _ = writeln!(
        o,
        "  slave \"{}\" ({})  {} {} Hz {} ch  period {} / buffer {}  periods {}  slave xruns {}  device {}{}",
        s.slave,
        s.slave_type,
        s.format,
        s.rate,
        s.channels,
        s.period,
        s.buffer,
        s.periods,
        s.slave_xruns,
        s.device,
        s.master
            .map_or(String::new(), |m| format!("  master {}", volume_text(Some(m))))
    );
}

/// One row per client of the pump.
fn client_table(o: &mut String, s: &PumpStatus) {
    if s.clients.is_empty() {
        let _ = writeln!(o, "  no clients");
        return;
    }
    let _ = writeln!(
        o,
        "  {:>7} {:<15} {:<10} {:<10} {:>6} {:>2} {:<9} {:>7} {:>10} {:>9} {:>8}",
        "PID",
        "PROGRAM",
        "USER",
        "FORMAT",
        "RATE",
        "CH",
        "STATE",
        "BUFFER",
        "LATENCY",
        // A capture stream's xruns are overruns.
        if s.stream == "capture" { "OVERRUNS" } else { "UNDERRUNS" },
        "VOLUME"
    );
    for c in &s.clients {
        let _ = writeln!(
            o,
            "  {:>7} {:<15} {:<10} {:<10} {:>6} {:>2} {:<9} {:>7} {:>7.1} ms {:>9} {:>8}",
            c.pid,
            c.program,
            user(c.uid),
            if c.format.is_empty() { "-" } else { &c.format },
            c.rate,
            c.channels,
            c.state,
            c.buffer,
            c.latency_us as f64 / 1000.0,
            c.underruns,
            volume_text(c.volume)
        );
    }
}

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A volume in the document: its level in dB (`null` at silence) and its switch, or `null`
/// for none.
fn volume_json(v: Option<(u32, bool)>) -> String {
    let Some((step, on)) = v else { return "null".into() };
    let db = (Volume { step, on: true })
        .cdb()
        .map_or("null".to_string(), |c| format!("{:.2}", c as f64 / 100.0));
    format!("{{\"db\":{db},\"muted\":{}}}", !on)
}

fn json(seen: &[Seen]) -> String {
    let pumps: Vec<String> = seen
        .iter()
        .map(|p| {
            let s = &p.status;
            let clients: Vec<String> = s
                .clients
                .iter()
                .map(|c| {
                    format!(
                        "{{\"pid\":{},\"uid\":{},\"user\":{},\"program\":{},\"lane\":{},\"format\":{},\"rate\":{},\
                         \"channels\":{},\"state\":{},\"buffer\":{},\"latency_ms\":{:.3},\"underruns\":{},\
                         \"volume\":{}}}",
                        c.pid,
                        c.uid,
                        js(&user(c.uid)),
                        js(&c.program),
                        c.lane,
                        js(&c.format),
                        c.rate,
                        c.channels,
                        js(&c.state),
                        c.buffer,
                        c.latency_us as f64 / 1000.0,
                        c.underruns,
                        volume_json(c.volume)
                    )
                })
                .collect();
            format!(
                "{{\"key\":{},\"pid\":{},\"uid\":{},\"user\":{},\"shared\":{},\"slave\":{},\"slave_type\":{},\
                 \"format\":{},\"rate\":{},\"channels\":{},\"period\":{},\"buffer\":{},\"uptime_s\":{:.3},\
                 \"periods\":{},\"slave_xruns\":{},\"device\":{},\"stream\":{},\"cpu_s\":{:.6},\"master\":{},\
                 \"clients\":[{}]}}",
                s.key,
                p.pid,
                p.uid,
                js(&user(p.uid)),
                s.shared,
                js(&s.slave),
                js(&s.slave_type),
                js(&s.format),
                s.rate,
                s.channels,
                s.period,
                s.buffer,
                s.uptime_ms as f64 / 1000.0,
                s.periods,
                s.slave_xruns,
                js(&s.device),
                js(&s.stream),
                s.cpu_us as f64 / 1e6,
                volume_json(s.master),
                clients.join(",")
            )
        })
        .collect();
    format!("{{\"pumps\":[{}]}}\n", pumps.join(","))
}

const USAGE: &str = "usage: rdmix-status [--json | --watch | --volume PID|master[:KEY] LEVEL]\n\
    Lists the rdmix pumps you can see, the device each holds, and every program playing through it.\n\
    --json    one machine-readable document\n\
    --watch   refresh every second, like top (Ctrl-C ends it)\n\
    --volume  sets a program's volume, or the master's: LEVEL is -6dB, 0dB, mute or unmute\n";

/// Entry point of `rdmix-status`. Returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    use std::io::Write;
    sys::process::ignore_sigpipe();
    let mut out = std::io::stdout();
    match args {
        [] => {
            let _ = out.write_all(text(&survey()).as_bytes());
            0
        }
        [a] if a == "--json" => {
            let _ = out.write_all(json(&survey()).as_bytes());
            0
        }
        [a] if a == "--watch" => loop {
            // Home, clear, then the table: one write, so a refresh never flickers half-drawn.
            let frame = format!("\x1b[H\x1b[2J{}", text(&survey()));
            if out.write_all(frame.as_bytes()).and_then(|()| out.flush()).is_err() {
                return 0;
            }
            let _ = sys::fd::poll(&mut [], 1000);
        },
        [a, target, level] if a == "--volume" => match set_volume(target, level) {
            Ok(line) => {
                let _ = out.write_all(line.as_bytes());
                0
            }
            Err(line) => {
                eprintln!("{line}");
                1
            }
        },
        [a] if a == "-h" || a == "--help" => {
            let _ = out.write_all(USAGE.as_bytes());
            0
        }
        _ => {
            eprint!("rdmix-status: unknown arguments {args:?}\n{USAGE}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::status::ClientStatus;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(js("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\u000a\\u0001é\"");
    }

    #[test]
    fn the_table_and_the_document_carry_every_field() {
        let seen = [Seen {
            pid: 7,
            uid: 0,
            addr: None,
            status: PumpStatus {
                key: 0xabc,
                slave: "hw:0,0".into(),
                slave_type: "HW".into(),
                format: "S16_LE".into(),
                rate: 48000,
                channels: 2,
                period: 256,
                buffer: 1024,
                device: "idle".into(),
                clients: vec![ClientStatus {
                    pid: 9,
                    program: "aplay".into(),
                    format: "S32_LE".into(),
                    rate: 44100,
                    channels: 1,
                    state: "running".into(),
                    buffer: 4410,
                    latency_us: 121_333,
                    underruns: 3,
                    ..ClientStatus::default()
                }],
                ..PumpStatus::default()
            },
        }];
        let t = text(&seen);
        for want in [
            "0x00000abc",
            "pid 7",
            "\"hw:0,0\" (HW)",
            "aplay",
            "S32_LE",
            "44100",
            "running",
            "121.3 ms",
            "device idle",
        ] {
            assert!(t.contains(want), "{want} in {t}");
        }
        let j = json(&seen);
        for want in [
            "\"key\":2748",
            "\"program\":\"aplay\"",
            "\"rate\":44100",
            "\"latency_ms\":121.333",
            "\"underruns\":3",
            "\"device\":\"idle\"",
        ] {
            assert!(j.contains(want), "{want} in {j}");
        }
        assert_eq!(text(&[]).lines().count(), 1, "nothing running is one line");
    }
}
