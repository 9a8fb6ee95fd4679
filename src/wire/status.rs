//! What a pump tells `rdmix-status` about itself and its clients (wire kind `STATUS`).
//!
//! The encoding is `key=value` fields separated by NUL, as HELLO's configuration is. A
//! `client=` field starts each client's record; everything before the first belongs to the
//! pump. The reader trusts none of it: unknown fields are skipped, numbers that do not parse
//! are zero, and at most `MAX_LANES` clients are read. Who the pump is (its pid and user)
//! the reader learns from the kernel, never from here.

use crate::shm::segment::MAX_LANES;

/// The pump's own line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PumpStatus {
    pub key: u32,
    pub shared: bool,
    pub slave: String,
    /// alsa-lib's type of the slave (`HW`, `FILE`, ...).
    pub slave_type: String,
    pub format: String,
    pub rate: u32,
    pub channels: u32,
    pub period: u32,
    pub buffer: u32,
    pub uptime_ms: u64,
    pub periods: u64,
    pub slave_xruns: u32,
    /// `running`, or `idle` while nobody plays (records) and the device is stopped.
    pub device: String,
    /// `playback` or `capture`.
    pub stream: String,
    /// User plus system CPU over the pump's life.
    pub cpu_us: u64,
    /// The master volume's level and switch (`dsp::gain::Volume`), when the pump has one.
    pub master: Option<(u32, bool)>,
    pub clients: Vec<ClientStatus>,
}

/// One client, as the pump sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientStatus {
    /// From the kernel (`SO_PEERCRED`) when the client connected.
    pub pid: i32,
    pub uid: u32,
    /// `/proc/PID/comm`, read by the pump at HELLO.
    pub program: String,
    pub lane: u32,
    /// Empty until the client's hw_params.
    pub format: String,
    pub rate: u32,
    pub channels: u32,
    /// What the client declares in its lane (`idle`, `prepared`, `running`, ...).
    pub state: String,
    pub buffer: u64,
    /// The longest a frame written now can take to be heard: the client's buffer plus the
    /// device's, in microseconds.
    pub latency_us: u64,
    /// Dry spells the pump counted itself.
    pub underruns: u32,
    /// Its volume's level and switch, when the pump has one for it.
    pub volume: Option<(u32, bool)>,
}

fn field(out: &mut Vec<u8>, key: &str, value: &dyn std::fmt::Display) {
    out.extend_from_slice(format!("{key}={value}").replace('\0', " ").as_bytes());
    out.push(0);
}

impl PumpStatus {
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::new();
        field(&mut o, "key", &self.key);
        field(&mut o, "shared", &(self.shared as u8));
        field(&mut o, "slave", &self.slave);
        field(&mut o, "slave_type", &self.slave_type);
        field(&mut o, "format", &self.format);
        field(&mut o, "rate", &self.rate);
        field(&mut o, "channels", &self.channels);
        field(&mut o, "period", &self.period);
        field(&mut o, "buffer", &self.buffer);
        field(&mut o, "uptime_ms", &self.uptime_ms);
        field(&mut o, "periods", &self.periods);
        field(&mut o, "slave_xruns", &self.slave_xruns);
        field(&mut o, "device", &self.device);
        field(&mut o, "stream", &self.stream);
        field(&mut o, "cpu_us", &self.cpu_us);
        if let Some((step, on)) = self.master {
            field(&mut o, "master", &step);
            field(&mut o, "master_on", &(on as u8));
        }
        for c in &self.clients {
            field(&mut o, "client", &c.pid);
            field(&mut o, "uid", &c.uid);
            field(&mut o, "program", &c.program);
            field(&mut o, "lane", &c.lane);
            field(&mut o, "format", &c.format);
            field(&mut o, "rate", &c.rate);
            field(&mut o, "channels", &c.channels);
            field(&mut o, "state", &c.state);
            field(&mut o, "buffer", &c.buffer);
            field(&mut o, "latency_us", &c.latency_us);
            field(&mut o, "underruns", &c.underruns);
            if let Some((step, on)) = c.volume {
                field(&mut o, "volume", &step);
                field(&mut o, "volume_on", &(on as u8));
            }
        }
        o
    }

    /// Reads what a pump sent. Never fails: what does not parse is left at its default.
    pub fn decode(bytes: &[u8]) -> PumpStatus {
        let mut p = PumpStatus::default();
        for f in bytes.split(|b| *b == 0).filter(|f| !f.is_empty()) {
            let text = String::from_utf8_lossy(f);
            let Some((k, v)) = text.split_once('=') else { continue };
            let v = v.trim();
            if k == "client" {
                if p.clients.len() >= MAX_LANES {
                    break;
                }
                p.clients.push(ClientStatus {
                    pid: v.parse().unwrap_or(0),
                    ..ClientStatus::default()
                });
                continue;
            }
            let n = || v.parse::<u64>().unwrap_or(0);
            let n32 = || v.parse::<u32>().unwrap_or(0);
            let text = || v.chars().filter(|c| !c.is_control()).take(1024).collect::<String>();
            match p.clients.last_mut() {
                None => match k {
                    "key" => p.key = n32(),
                    "shared" => p.shared = v == "1",
                    "slave" => p.slave = text(),
                    "slave_type" => p.slave_type = text(),
                    "format" => p.format = text(),
                    "rate" => p.rate = n32(),
                    "channels" => p.channels = n32(),
                    "period" => p.period = n32(),
                    "buffer" => p.buffer = n32(),
                    "uptime_ms" => p.uptime_ms = n(),
                    "periods" => p.periods = n(),
                    "slave_xruns" => p.slave_xruns = n32(),
                    "device" => p.device = text(),
                    "stream" => p.stream = text(),
                    "cpu_us" => p.cpu_us = n(),
                    "master" => p.master = Some((n32(), p.master.is_none_or(|m| m.1))),
                    "master_on" => p.master = p.master.map(|(s, _)| (s, v == "1")),
                    _ => {}
                },
                Some(c) => match k {
                    "uid" => c.uid = n32(),
                    "program" => c.program = text(),
                    "lane" => c.lane = n32(),
                    "format" => c.format = text(),
                    "rate" => c.rate = n32(),
                    "channels" => c.channels = n32(),
                    "state" => c.state = text(),
                    "buffer" => c.buffer = n(),
                    "latency_us" => c.latency_us = n(),
                    "underruns" => c.underruns = n32(),
                    "volume" => c.volume = Some((n32(), c.volume.is_none_or(|m| m.1))),
                    "volume_on" => c.volume = c.volume.map(|(s, _)| (s, v == "1")),
                    _ => {}
                },
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PumpStatus {
        PumpStatus {
            key: 0x1234,
            shared: true,
            slave: "hw:CARD=x,DEV=0 \"q\"=1".into(),
            slave_type: "HW".into(),
            format: "S16_LE".into(),
            rate: 48000,
            channels: 2,
            period: 256,
            buffer: 1024,
            uptime_ms: 5000,
            periods: 937,
            slave_xruns: 1,
            device: "running".into(),
            stream: "capture".into(),
            cpu_us: 12_345,
            master: Some((200, true)),
            clients: vec![
                ClientStatus {
                    pid: 42,
                    uid: 1000,
                    program: "aplay".into(),
                    lane: 0,
                    format: "FLOAT_LE".into(),
                    rate: 44100,
                    channels: 1,
                    state: "running".into(),
                    buffer: 22050,
                    latency_us: 521_333,
                    underruns: 2,
                    volume: Some((216, false)),
                },
                ClientStatus {
                    pid: 43,
                    program: "mpv".into(),
                    lane: 3,
                    state: "idle".into(),
                    ..ClientStatus::default()
                },
            ],
        }
    }

    #[test]
    fn a_status_survives_the_wire() {
        let s = sample();
        assert_eq!(PumpStatus::decode(&s.encode()), s);
    }

    #[test]
    fn hostile_bytes_decode_to_something_harmless() {
        let mut junk = b"rate=-1\0periods=99999999999999999999999\0=\0noequals\0slave=a\x07b\0".to_vec();
        for i in 0..(MAX_LANES + 10) {
            junk.extend_from_slice(format!("client={i}\0rate=x\0").as_bytes());
        }
        junk.extend_from_slice(&[0xff, 0xfe, b'=', 0xfd, 0]);
        let p = PumpStatus::decode(&junk);
        assert_eq!((p.rate, p.periods), (0, 0));
        assert_eq!(p.slave, "ab", "control characters are dropped");
        assert_eq!(p.clients.len(), MAX_LANES, "no more clients than lanes");
        assert!(p.clients.iter().all(|c| c.rate == 0));
    }
}
