//! The plugin's configuration, with dmix's option names.
//!
//! A client reads it from its `pcm.NAME { type rdmix ... }` node ([`Config::parse`]) and hands
//! it to its pump whole, in HELLO ([`Config::encode`]); the pump reads it back with
//! [`Config::decode`]. Both readers go through the same setters, so a value the plugin
//! would refuse is refused by the pump too, whoever sent it.

use std::path::PathBuf;

use crate::alsa::conf::{Conf, Value};
use crate::dsp::convert::MAX_CHANNELS;
use crate::dsp::format::Format;
use crate::error::{Error, Result};
use crate::shm::segment::{MAX_CHMAP, MAX_LANES};
use crate::wire;

/// Longest `slave.pcm` name: it must fit HELLO whole, with the rest of the configuration.
pub const MAX_PCM_NAME: usize = 1024;

/// What the pump should ask of the slave. `None` means "rdmix's default".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlaveRequest {
    pub pcm: String,
    pub format: Option<i32>,
    pub rate: Option<u32>,
    pub channels: Option<u32>,
    pub period_size: Option<u32>,
    pub period_time: Option<u32>,
    pub buffer_size: Option<u32>,
    pub buffer_time: Option<u32>,
    pub periods: Option<u32>,
}

/// The numeric slave options and their ranges.
const SLAVE_NUMBERS: [(&str, i64, i64); 7] = [
    ("rate", 4000, 768_000),
    ("channels", 1, MAX_CHMAP as i64),
    ("period_size", 16, 1 << 16),
    ("period_time", 100, 2_000_000),
    ("buffer_size", 32, 1 << 18),
    ("buffer_time", 200, 10_000_000),
    ("periods", 2, 64),
];

impl SlaveRequest {
    fn number(&mut self, key: &str, v: i64) -> Result<()> {
        let Some(&(_, min, max)) = SLAVE_NUMBERS.iter().find(|(k, ..)| *k == key) else {
            return Err(Error::config(&format!("slave.{key}"), "unknown option"));
        };
        let v = Some(in_range(&format!("slave.{key}"), v, min, max)? as u32);
        match key {
            "rate" => self.rate = v,
            "channels" => self.channels = v,
            "period_size" => self.period_size = v,
            "period_time" => self.period_time = v,
            "buffer_size" => self.buffer_size = v,
            "buffer_time" => self.buffer_time = v,
            _ => self.periods = v,
        }
        Ok(())
    }

    fn numbers(&self) -> [(&'static str, Option<u32>); 7] {
        [
            ("rate", self.rate),
            ("channels", self.channels),
            ("period_size", self.period_size),
            ("period_time", self.period_time),
            ("buffer_size", self.buffer_size),
            ("buffer_time", self.buffer_time),
            ("periods", self.periods),
        ]
    }

    /// The first option in which `other` asks for something else, as `option "value"`.
    pub fn first_difference(&self, other: &SlaveRequest) -> Option<String> {
        if self.pcm != other.pcm {
            return Some(format!("slave.pcm \"{}\"", self.pcm));
        }
        if self.format != other.format {
            return Some(format!("slave.format {:?}", self.format));
        }
        self.numbers()
            .into_iter()
            .zip(other.numbers())
            .find(|(a, b)| a.1 != b.1)
            .map(|((k, v), _)| match v {
                Some(v) => format!("slave.{k} {v}"),
                None => format!("no slave.{k}"),
            })
    }

    fn set_pcm(&mut self, name: &str) -> Result<()> {
        if name.is_empty() {
            return Err(Error::config("slave.pcm", "must not be empty"));
        }
        if name.len() > MAX_PCM_NAME || name.contains('\0') {
            return Err(Error::config(
                "slave.pcm",
                format!("a name of {} bytes is longer than rdmix's {MAX_PCM_NAME}", name.len()),
            ));
        }
        self.pcm = name.to_string();
        Ok(())
    }

    fn set_format(&mut self, id: i64) -> Result<()> {
        let f = i32::try_from(id)
            .ok()
            .and_then(Format::lookup)
            .ok_or_else(|| Error::config("slave.format", format!("unsupported sample format {id}")))?;
        self.format = Some(f.id);
        Ok(())
    }
}

/// `bindings { N M }`: client channel N plays on device channel M (as in dmix). Every client
/// channel from 0 up is bound; each fits rdmix's limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bindings(Vec<(u32, u32)>);

impl Bindings {
    pub fn new(pairs: Vec<(u32, u32)>) -> Result<Bindings> {
        for &(c, d) in &pairs {
            if c >= MAX_CHANNELS {
                return Err(Error::config(
                    &format!("bindings.{c}"),
                    format!("the client channel must be 0..{}", MAX_CHANNELS - 1),
                ));
            }
            if d as usize >= MAX_CHMAP {
                return Err(Error::config(
                    &format!("bindings.{c}"),
                    format!("{d} is out of range [0, {}]", MAX_CHMAP - 1),
                ));
            }
        }
        if pairs.is_empty() {
            return Err(Error::config("bindings", "is empty"));
        }
        let channels = pairs.iter().map(|b| b.0 + 1).max().unwrap_or(0);
        if (0..channels).any(|ch| !pairs.iter().any(|b| b.0 == ch)) {
            return Err(Error::config(
                "bindings",
                format!("must bind every client channel 0..{}", channels - 1),
            ));
        }
        Ok(Bindings(pairs))
    }

    pub fn pairs(&self) -> &[(u32, u32)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Client channels bound (0 when there are no bindings).
    pub fn channels(&self) -> u32 {
        self.0.len() as u32
    }
}

/// Everything one `pcm.NAME { type rdmix ... }` node says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub slave: SlaveRequest,
    /// The key naming the pump and its socket, after `ipc_key_add_uid`.
    pub ipc_key: u32,
    pub ipc_perm: u32,
    pub ipc_gid: Option<u32>,
    /// On a shared key, how many lanes one user other than the pump's owner may hold.
    pub ipc_user_lanes: u32,
    /// The pump executable, if not the one beside the plugin (the client's own business:
    /// it is not sent to the pump).
    pub pump: Option<PathBuf>,
    pub bindings: Bindings,
}

fn describe(v: &Value) -> String {
    match v {
        Value::Integer(i) => format!("the integer {i}"),
        Value::Real(r) => format!("the real {r}"),
        Value::Str(s) => format!("the string \"{s}\""),
        Value::Compound => "a compound".into(),
        Value::Other => "an unsupported value".into(),
    }
}

fn integer(key: &str, n: &Conf) -> Result<i64> {
    let v = n.value();
    match &v {
        Value::Integer(i) => Ok(*i),
        Value::Str(s) => {
            parse_int(s).ok_or_else(|| Error::config(key, format!("expected an integer, got {}", describe(&v))))
        }
        _ => Err(Error::config(key, format!("expected an integer, got {}", describe(&v)))),
    }
}

fn in_range(key: &str, v: i64, min: i64, max: i64) -> Result<i64> {
    if v < min || v > max {
        return Err(Error::config(key, format!("{v} is out of range [{min}, {max}]")));
    }
    Ok(v)
}

/// Decimal, `0x` hex or leading-zero octal, as alsa-lib reads numbers.
fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        i64::from_str_radix(&body[1..], 8).ok()?
    } else {
        body.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

fn string(key: &str, n: &Conf) -> Result<String> {
    match n.value() {
        Value::Str(s) if !s.is_empty() => Ok(s),
        Value::Str(_) => Err(Error::config(key, "must not be empty")),
        v => Err(Error::config(key, format!("expected a string, got {}", describe(&v)))),
    }
}

fn format_value(key: &str, n: &Conf) -> Result<i64> {
    match n.value() {
        Value::Str(s) => Format::by_name(&s)
            .map(|f| f.id as i64)
            .ok_or_else(|| Error::config(key, format!("unknown or unsupported sample format \"{s}\""))),
        Value::Integer(i) => Ok(i),
        v => Err(Error::config(
            key,
            format!("expected a format name, got {}", describe(&v)),
        )),
    }
}

/// Reads a slave compound. `card` and `device` name `hw:CARD,DEV` when `pcm` is absent or
/// empty: that is how a definition with arguments (`rdmix:CARD=1` or `rdmix:SLAVE=name`, see
/// `50-rdmix.conf`) says "this card, unless a PCM is named", as alsa-lib's config language
/// has no conditional.
fn parse_slave(node: &Conf, req: &mut SlaveRequest) -> Result<()> {
    let (mut pcm, mut card, mut device) = (None, None, None);
    for c in node.children() {
        let id = c.id();
        let key = format!("slave.{id}");
        match id.as_str() {
            "pcm" => match c.value() {
                Value::Compound => {
                    return Err(Error::config(
                        &key,
                        "must be a PCM name; define the device as pcm.NAME { ... } and give its name here",
                    ));
                }
                Value::Str(name) => pcm = Some(name),
                v => return Err(Error::config(&key, format!("expected a string, got {}", describe(&v)))),
            },
            "card" => {
                card = Some(match c.value() {
                    Value::Integer(i) => in_range(&key, i, 0, 31)?.to_string(),
                    _ => string(&key, &c)?,
                })
            }
            "device" => device = Some(in_range(&key, integer(&key, &c)?, 0, 255)?),
            "format" => req.set_format(format_value(&key, &c)?)?,
            _ if SLAVE_NUMBERS.iter().any(|(k, ..)| *k == id) => req.number(&id, integer(&key, &c)?)?,
            _ => return Err(Error::config(&key, "unknown option")),
        }
    }
    match (pcm, card) {
        (Some(name), _) if !name.is_empty() => req.set_pcm(&name),
        (_, Some(card)) => req.set_pcm(&format!("hw:{card},{}", device.unwrap_or(0))),
        (_, None) if device.is_some() => Err(Error::config("slave.device", "needs slave.card")),
        (Some(_), None) => Err(Error::config("slave.pcm", "must not be empty")),
        (None, None) => Ok(()),
    }
}

/// `bindings { 0 1; 1 0 }`: each entry maps a client channel (its id) to a device channel.
fn parse_bindings(node: &Conf) -> Result<Bindings> {
    if node.value() != Value::Compound {
        return Err(Error::config(
            "bindings",
            format!("expected a compound, got {}", describe(&node.value())),
        ));
    }
    let mut out = Vec::new();
    for c in node.children() {
        let id = c.id();
        let key = format!("bindings.{id}");
        let client = id
            .parse::<u32>()
            .map_err(|_| Error::config(&key, format!("the client channel must be 0..{}", MAX_CHANNELS - 1)))?;
        let device = in_range(&key, integer(&key, &c)?, 0, MAX_CHMAP as i64 - 1)? as u32;
        out.push((client, device));
    }
    Bindings::new(out)
}

/// FNV-1a, so each slave gets its own default key.
fn default_key(pcm: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in pcm.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    (h & 0x3fff_ffff) | 0x4000_0000
}

fn group_id(key: &str, n: &Conf) -> Result<u32> {
    if let Value::Str(name) = n.value()
        && parse_int(&name).is_none()
    {
        return crate::sys::user::group_by_name(&name)
            .ok_or_else(|| Error::config(key, format!("no such group \"{name}\"")));
    }
    Ok(in_range(key, integer(key, n)?, 0, u32::MAX as i64 - 1)? as u32)
}

/// Lanes one user other than the pump's owner may hold by default: a quarter, so no one
/// user can fill a shared pump.
pub const DEFAULT_USER_LANES: u32 = MAX_LANES as u32 / 4;

/// `perm` is already within 0..=0o777: both callers check its range first.
fn check_perm(perm: u32) -> Result<u32> {
    if perm & 0o600 != 0o600 {
        return Err(Error::config(
            "ipc_perm",
            format!("{perm:#o} must give the owner read and write (0600)"),
        ));
    }
    Ok(perm)
}

fn user_lanes_value(v: i64) -> Result<u32> {
    Ok(in_range("ipc_user_lanes", v, 1, MAX_LANES as i64)? as u32)
}

impl Config {
    /// Whether the pump is shared with other users (`ipc_perm` gives group or others access).
    pub fn shared(&self) -> bool {
        wire::is_shared(self.ipc_perm)
    }

    /// The first setting in which a client's configuration differs from the one a pump runs,
    /// as `option value` of the pump's; `None` if the client may join.
    pub fn first_difference(&self, client: &Config) -> Option<String> {
        if let Some(d) = self.slave.first_difference(&client.slave) {
            return Some(d);
        }
        if (self.ipc_perm, self.ipc_gid) != (client.ipc_perm, client.ipc_gid) {
            return Some(format!(
                "ipc_perm {:04o}{}",
                self.ipc_perm,
                self.ipc_gid.map(|g| format!(", ipc_gid {g}")).unwrap_or_default()
            ));
        }
        (self.ipc_user_lanes != client.ipc_user_lanes).then(|| format!("ipc_user_lanes {}", self.ipc_user_lanes))
    }

    /// Reads a plugin node. `root` resolves `slave "NAME"` references to `pcm_slave.NAME`.
    pub fn parse(node: &Conf, root: Option<&Conf>, uid: u32) -> Result<Config> {
        let mut slave = SlaveRequest::default();
        let mut key: Option<u32> = None;
        let mut add_uid = false;
        let mut perm = 0o600;
        let mut gid = None;
        let mut user_lanes = DEFAULT_USER_LANES;
        let mut pump = None;
        let mut bindings = Bindings::default();
        for c in node.children() {
            let id = c.id();
            match id.as_str() {
                "type" | "comment" | "hint" => {}
                "slave" => match c.value() {
                    Value::Compound => parse_slave(&c, &mut slave)?,
                    Value::Str(name) => {
                        let def = root
                            .and_then(|r| r.definition("pcm_slave", &name))
                            .ok_or_else(|| Error::config("slave", format!("no pcm_slave.{name} definition")))?;
                        parse_slave(&def.get(), &mut slave)?;
                    }
                    v => {
                        return Err(Error::config(
                            "slave",
                            format!("expected a compound or a pcm_slave name, got {}", describe(&v)),
                        ));
                    }
                },
                "ipc_key" => key = Some(in_range("ipc_key", integer("ipc_key", &c)?, 1, i32::MAX as i64)? as u32),
                "ipc_key_add_uid" => {
                    add_uid = c.boolean().ok_or_else(|| {
                        Error::config(&id, format!("expected a boolean, got {}", describe(&c.value())))
                    })?
                }
                "ipc_perm" => perm = in_range("ipc_perm", integer("ipc_perm", &c)?, 0, 0o777)? as u32,
                "ipc_gid" => gid = Some(group_id("ipc_gid", &c)?),
                "ipc_user_lanes" => user_lanes = user_lanes_value(integer(&id, &c)?)?,
                "bindings" => bindings = parse_bindings(&c)?,
                "pump" => {
                    let p = PathBuf::from(string("pump", &c)?);
                    if !p.is_absolute() {
                        return Err(Error::config(
                            "pump",
                            format!("\"{}\" is not an absolute path", p.display()),
                        ));
                    }
                    pump = Some(p);
                }
                _ => return Err(Error::config(&id, "unknown option")),
            }
        }
        if slave.pcm.is_empty() {
            return Err(Error::config("slave.pcm", "missing: name the PCM rdmix should share"));
        }
        let mut ipc_key = key.unwrap_or_else(|| default_key(&slave.pcm));
        if add_uid {
            ipc_key = ipc_key.wrapping_add(uid);
        }
        let perm = check_perm(perm)?;
        if wire::is_shared(perm)
            && let Some(p) = &pump
        {
            return Err(Error::config(
                "pump",
                format!(
                    "\"{}\": a pump shared with other users (ipc_perm {perm:04o}) runs only the rdmix-pump \
                     installed beside the plugin; remove the option, or make the key private (ipc_perm 0600)",
                    p.display()
                ),
            ));
        }
        Ok(Config {
            slave,
            ipc_key,
            ipc_perm: perm,
            ipc_gid: gid,
            ipc_user_lanes: user_lanes,
            pump,
            bindings,
        })
    }

    /// The configuration as HELLO carries it: `key=value` fields separated by NUL, which no
    /// value can contain. Everything but the client-side `pump` path.
    pub fn encode(&self) -> Vec<u8> {
        let s = &self.slave;
        let mut fields = vec![
            format!("pcm={}", s.pcm),
            format!("ipc_key={}", self.ipc_key),
            format!("ipc_perm={}", self.ipc_perm),
        ];
        if let Some(f) = s.format {
            fields.push(format!("format={f}"));
        }
        for (k, v) in s.numbers() {
            if let Some(v) = v {
                fields.push(format!("{k}={v}"));
            }
        }
        if let Some(g) = self.ipc_gid {
            fields.push(format!("ipc_gid={g}"));
        }
        fields.push(format!("ipc_user_lanes={}", self.ipc_user_lanes));
        if !self.bindings.is_empty() {
            let b: Vec<String> = self.bindings.pairs().iter().map(|(c, d)| format!("{c}:{d}")).collect();
            fields.push(format!("bindings={}", b.join(",")));
        }
        fields.join("\0").into_bytes()
    }

    /// The inverse of `encode`, for bytes that came from a peer: everything is checked as
    /// `parse` checks it.
    pub fn decode(b: &[u8]) -> Result<Config> {
        let text = std::str::from_utf8(b).map_err(|_| Error::config("HELLO", "the configuration is not UTF-8"))?;
        let mut c = Config {
            slave: SlaveRequest::default(),
            ipc_key: 0,
            ipc_perm: 0o600,
            ipc_gid: None,
            ipc_user_lanes: DEFAULT_USER_LANES,
            pump: None,
            bindings: Bindings::default(),
        };
        for field in text.split('\0') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| Error::config("HELLO", format!("malformed field \"{field}\"")))?;
            let num = || parse_int(v).ok_or_else(|| Error::config(k, format!("\"{v}\" is not a number")));
            match k {
                "pcm" => c.slave.set_pcm(v)?,
                "ipc_key" => c.ipc_key = in_range(k, num()?, 1, i32::MAX as i64)? as u32,
                "ipc_perm" => c.ipc_perm = check_perm(in_range(k, num()?, 0, 0o777)? as u32)?,
                "ipc_gid" => c.ipc_gid = Some(in_range(k, num()?, 0, u32::MAX as i64 - 1)? as u32),
                "ipc_user_lanes" => c.ipc_user_lanes = user_lanes_value(num()?)?,
                "format" => c.slave.set_format(num()?)?,
                "bindings" => {
                    let pairs = v
                        .split(',')
                        .map(|p| {
                            let (cl, d) = p.split_once(':')?;
                            Some((cl.parse().ok()?, d.parse().ok()?))
                        })
                        .collect::<Option<Vec<(u32, u32)>>>()
                        .ok_or_else(|| Error::config("bindings", format!("malformed \"{v}\"")))?;
                    c.bindings = Bindings::new(pairs)?;
                }
                _ => c.slave.number(k, num()?)?,
            }
        }
        if c.slave.pcm.is_empty() || c.ipc_key == 0 {
            return Err(Error::config("HELLO", "the configuration lacks slave.pcm or ipc_key"));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_like_alsa() {
        assert_eq!(parse_int("0660"), Some(0o660));
        assert_eq!(parse_int("0x10"), Some(16));
        assert_eq!(parse_int("-5"), Some(-5));
        assert_eq!(parse_int("0"), Some(0));
        assert_eq!(parse_int("12a"), None);
        assert_eq!(parse_int(""), None);
    }

    fn sample() -> Config {
        Config {
            slave: SlaveRequest {
                pcm: "hw:1,0 \"quoted\"=x".into(),
                format: Some(2),
                rate: Some(44100),
                channels: None,
                period_size: Some(256),
                period_time: None,
                buffer_size: None,
                buffer_time: Some(40000),
                periods: Some(4),
            },
            ipc_key: 1234,
            ipc_perm: 0o660,
            ipc_gid: Some(29),
            ipc_user_lanes: 5,
            pump: None,
            bindings: Bindings::new(vec![(0, 1), (1, 0)]).unwrap(),
        }
    }

    #[test]
    fn hello_config_roundtrips() {
        let c = sample();
        assert_eq!(Config::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn hostile_hello_configs_are_refused_as_parse_refuses_them() {
        let good = String::from_utf8(sample().encode()).unwrap();
        for (from, to, want) in [
            ("rate=44100", "rate=1", "rdmix: slave.rate: 1 is out of range"),
            ("periods=4", "periods=x", "rdmix: periods: \"x\" is not a number"),
            (
                "ipc_perm=432",
                "ipc_perm=256",
                "rdmix: ipc_perm: 0o400 must give the owner",
            ),
            (
                "bindings=0:1,1:0",
                "bindings=0:1,2:0",
                "rdmix: bindings: must bind every client channel",
            ),
            (
                "bindings=0:1,1:0",
                "bindings=0:99",
                "rdmix: bindings.0: 99 is out of range",
            ),
            (
                "format=2",
                "format=9999",
                "rdmix: slave.format: unsupported sample format 9999",
            ),
            ("periods=4", "surprise=4", "rdmix: slave.surprise: unknown option"),
            ("periods=4", "periods", "rdmix: HELLO: malformed field"),
        ] {
            let bad = good.replace(from, to);
            assert_ne!(bad, good, "{from}");
            let e = Config::decode(bad.as_bytes()).unwrap_err();
            assert!(e.line().starts_with(want), "{to}: {e}");
            assert!(e.is(libc::EINVAL));
        }
        assert!(Config::decode(&[0xff, 0xfe]).is_err());
        let long = format!("pcm={}\0ipc_key=1", "x".repeat(MAX_PCM_NAME + 1));
        assert!(
            Config::decode(long.as_bytes())
                .unwrap_err()
                .line()
                .contains("longer than")
        );
    }

    #[test]
    fn a_pump_names_the_first_setting_a_client_differs_in() {
        let pump = sample();
        assert_eq!(pump.first_difference(&pump.clone()), None);
        let mut c = sample();
        c.bindings = Bindings::default();
        assert_eq!(pump.first_difference(&c), None, "bindings are each client's own");
        c.slave.period_size = None;
        assert_eq!(pump.first_difference(&c).as_deref(), Some("slave.period_size 256"));
        let mut c = sample();
        c.slave.pcm = "other".into();
        assert!(pump.first_difference(&c).unwrap().starts_with("slave.pcm"));
        let mut c = sample();
        c.ipc_gid = None;
        assert_eq!(pump.first_difference(&c).as_deref(), Some("ipc_perm 0660, ipc_gid 29"));
        let mut c = sample();
        c.ipc_user_lanes = 64;
        assert_eq!(pump.first_difference(&c).as_deref(), Some("ipc_user_lanes 5"));
        assert!(
            pump.shared()
                && !Config {
                    ipc_perm: 0o600,
                    ..sample()
                }
                .shared()
        );
    }

    #[test]
    fn default_keys_differ_per_slave_and_are_positive() {
        let a = default_key("hw:0");
        let b = default_key("hw:1");
        assert_ne!(a, b);
        assert!(a > 0 && a <= i32::MAX as u32);
    }
}
