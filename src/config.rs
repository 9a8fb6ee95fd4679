//! The plugin's configuration, with dmix's option names, and its hand-over to the pump.

use std::fmt;
use std::path::PathBuf;

use crate::boundary::conf::{Conf, Value};
use crate::mix::Format;

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

/// Everything one `pcm.NAME { type rdmix ... }` node says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub slave: SlaveRequest,
    /// The key naming the segment and its pump, after `ipc_key_add_uid`.
    pub ipc_key: u32,
    pub ipc_perm: u32,
    pub ipc_gid: Option<u32>,
    /// The pump executable, if not the one beside the plugin.
    pub pump: Option<PathBuf>,
    /// `bindings { N M }`: client channel N plays on device channel M (as in dmix).
    pub bindings: Vec<(u32, u32)>,
}

/// A configuration problem: the option and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub msg: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rdmix: {}: {}", self.key, self.msg)
    }
}

fn err<T>(key: &str, msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError {
        key: key.to_string(),
        msg: msg.into(),
    })
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

fn integer(key: &str, n: &Conf, min: i64, max: i64) -> Result<i64, ConfigError> {
    let v = n.value();
    let i = match &v {
        Value::Integer(i) => *i,
        Value::Str(s) => match parse_int(s) {
            Some(i) => i,
            None => return err(key, format!("expected an integer, got {}", describe(&v))),
        },
        _ => return err(key, format!("expected an integer, got {}", describe(&v))),
    };
    if i < min || i > max {
        return err(key, format!("{i} is out of range [{min}, {max}]"));
    }
    Ok(i)
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

fn string(key: &str, n: &Conf) -> Result<String, ConfigError> {
    match n.value() {
        Value::Str(s) if !s.is_empty() => Ok(s),
        Value::Str(_) => err(key, "must not be empty"),
        v => err(key, format!("expected a string, got {}", describe(&v))),
    }
}

fn format_value(key: &str, n: &Conf) -> Result<i32, ConfigError> {
    let f = match n.value() {
        Value::Str(s) => Format::by_name(&s).ok_or_else(|| ConfigError {
            key: key.into(),
            msg: format!("unknown or unsupported sample format \"{s}\""),
        })?,
        Value::Integer(i) => i32::try_from(i)
            .ok()
            .and_then(Format::lookup)
            .ok_or_else(|| ConfigError {
                key: key.into(),
                msg: format!("unsupported sample format {i}"),
            })?,
        v => return err(key, format!("expected a format name, got {}", describe(&v))),
    };
    Ok(f.id)
}

fn parse_slave(node: &Conf, req: &mut SlaveRequest) -> Result<(), ConfigError> {
    for c in node.children() {
        let id = c.id();
        let key = format!("slave.{id}");
        let u = |min, max| integer(&key, &c, min, max).map(|v| Some(v as u32));
        match id.as_str() {
            "pcm" => {
                req.pcm = match c.value() {
                    Value::Compound => {
                        return err(
                            &key,
                            "must be a PCM name; define the device as pcm.NAME { ... } and give its name here",
                        );
                    }
                    _ => string(&key, &c)?,
                }
            }
            "format" => req.format = Some(format_value(&key, &c)?),
            "rate" => req.rate = u(4000, 768_000)?,
            "channels" => req.channels = u(1, crate::segment::MAX_CHMAP as i64)?,
            "period_size" => req.period_size = u(16, 1 << 16)?,
            "period_time" => req.period_time = u(100, 2_000_000)?,
            "buffer_size" => req.buffer_size = u(32, 1 << 18)?,
            "buffer_time" => req.buffer_time = u(200, 10_000_000)?,
            "periods" => req.periods = u(2, 64)?,
            _ => return err(&key, "unknown option"),
        }
    }
    Ok(())
}

/// `bindings { 0 1; 1 0 }`: each entry maps a client channel (its id) to a device channel.
fn parse_bindings(node: &Conf) -> Result<Vec<(u32, u32)>, ConfigError> {
    if node.value() != Value::Compound {
        return err(
            "bindings",
            format!("expected a compound, got {}", describe(&node.value())),
        );
    }
    let mut out: Vec<(u32, u32)> = Vec::new();
    for c in node.children() {
        let id = c.id();
        let key = format!("bindings.{id}");
        let client = match id.parse::<u32>() {
            Ok(n) if n < crate::convert::MAX_CHANNELS => n,
            _ => {
                return err(
                    &key,
                    format!("the client channel must be 0..{}", crate::convert::MAX_CHANNELS - 1),
                );
            }
        };
        let device = integer(&key, &c, 0, crate::segment::MAX_CHMAP as i64 - 1)? as u32;
        out.push((client, device));
    }
    if out.is_empty() {
        return err("bindings", "is empty");
    }
    let channels = out.iter().map(|b| b.0 + 1).max().unwrap_or(0);
    if (0..channels).any(|ch| !out.iter().any(|b| b.0 == ch)) {
        return err(
            "bindings",
            format!("must bind every client channel 0..{}", channels - 1),
        );
    }
    Ok(out)
}

/// FNV-1a, so each slave gets its own default key.
fn default_key(pcm: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in pcm.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    (h & 0x3fff_ffff) | 0x4000_0000
}

fn group_id(key: &str, n: &Conf) -> Result<u32, ConfigError> {
    if let Value::Str(name) = n.value()
        && parse_int(&name).is_none()
    {
        return crate::sys::group_by_name(&name).ok_or_else(|| ConfigError {
            key: key.into(),
            msg: format!("no such group \"{name}\""),
        });
    }
    integer(key, n, 0, u32::MAX as i64 - 1).map(|g| g as u32)
}

impl Config {
    /// Reads a plugin node. `root` resolves `slave "NAME"` references to `pcm_slave.NAME`.
    pub fn parse(node: &Conf, root: Option<&Conf>, uid: u32) -> Result<Config, ConfigError> {
        let mut slave = SlaveRequest::default();
        let mut key: Option<u32> = None;
        let mut add_uid = false;
        let mut perm = 0o600;
        let mut gid = None;
        let mut pump = None;
        let mut bindings = Vec::new();
        for c in node.children() {
            let id = c.id();
            match id.as_str() {
                "type" | "comment" | "hint" => {}
                "slave" => match c.value() {
                    Value::Compound => parse_slave(&c, &mut slave)?,
                    Value::Str(name) => {
                        let def = root
                            .and_then(|r| r.definition("pcm_slave", &name))
                            .ok_or_else(|| ConfigError {
                                key: "slave".into(),
                                msg: format!("no pcm_slave.{name} definition"),
                            })?;
                        parse_slave(&def.get(), &mut slave)?;
                    }
                    v => {
                        return err(
                            "slave",
                            format!("expected a compound or a pcm_slave name, got {}", describe(&v)),
                        );
                    }
                },
                "ipc_key" => key = Some(integer("ipc_key", &c, 1, i32::MAX as i64)? as u32),
                "ipc_key_add_uid" => {
                    add_uid = c.boolean().ok_or_else(|| ConfigError {
                        key: id.clone(),
                        msg: format!("expected a boolean, got {}", describe(&c.value())),
                    })?
                }
                "ipc_perm" => perm = integer("ipc_perm", &c, 0, 0o777)? as u32,
                "ipc_gid" => gid = Some(group_id("ipc_gid", &c)?),
                "bindings" => bindings = parse_bindings(&c)?,
                "pump" => {
                    let p = PathBuf::from(string("pump", &c)?);
                    if !p.is_absolute() {
                        return err("pump", format!("\"{}\" is not an absolute path", p.display()));
                    }
                    pump = Some(p);
                }
                _ => return err(&id, "unknown option"),
            }
        }
        if slave.pcm.is_empty() {
            return err("slave.pcm", "missing: name the PCM rdmix should share");
        }
        if perm & 0o600 != 0o600 {
            return err(
                "ipc_perm",
                format!("{perm:#o} must give the owner read and write (0600)"),
            );
        }
        let mut ipc_key = key.unwrap_or_else(|| default_key(&slave.pcm));
        if add_uid {
            ipc_key = ipc_key.wrapping_add(uid);
        }
        Ok(Config {
            slave,
            ipc_key,
            ipc_perm: perm,
            ipc_gid: gid,
            pump,
            bindings,
        })
    }

    /// The command line that hands this configuration to a pump.
    pub fn pump_args(&self) -> Vec<String> {
        let mut a = vec![
            "--key".into(),
            self.ipc_key.to_string(),
            "--perm".into(),
            format!("{:o}", self.ipc_perm),
        ];
        if let Some(g) = self.ipc_gid {
            a.extend(["--gid".into(), g.to_string()]);
        }
        a.extend(["--slave".into(), self.slave.pcm.clone()]);
        let s = &self.slave;
        for (k, v) in [
            ("--format", s.format.map(|v| v as i64)),
            ("--rate", s.rate.map(Into::into)),
            ("--channels", s.channels.map(Into::into)),
            ("--period-size", s.period_size.map(Into::into)),
            ("--period-time", s.period_time.map(Into::into)),
            ("--buffer-size", s.buffer_size.map(Into::into)),
            ("--buffer-time", s.buffer_time.map(Into::into)),
            ("--periods", s.periods.map(Into::into)),
        ] {
            if let Some(v) = v {
                a.extend([k.to_string(), v.to_string()]);
            }
        }
        a
    }

    /// The inverse of `pump_args`.
    pub fn from_pump_args(args: &[String]) -> Result<Config, String> {
        let mut c = Config {
            slave: SlaveRequest::default(),
            ipc_key: 0,
            ipc_perm: 0o600,
            ipc_gid: None,
            pump: None,
            bindings: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(k) = it.next() {
            let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
            let num = || v.parse::<i64>().map_err(|_| format!("{k}: \"{v}\" is not a number"));
            let u = || num().and_then(|n| u32::try_from(n).map_err(|_| format!("{k}: {n} out of range")));
            match k.as_str() {
                "--key" => c.ipc_key = u()?,
                "--perm" => c.ipc_perm = u32::from_str_radix(v, 8).map_err(|_| format!("--perm: bad mode {v}"))?,
                "--gid" => c.ipc_gid = Some(u()?),
                "--slave" => c.slave.pcm = v.clone(),
                "--format" => c.slave.format = Some(num()? as i32),
                "--rate" => c.slave.rate = Some(u()?),
                "--channels" => c.slave.channels = Some(u()?),
                "--period-size" => c.slave.period_size = Some(u()?),
                "--period-time" => c.slave.period_time = Some(u()?),
                "--buffer-size" => c.slave.buffer_size = Some(u()?),
                "--buffer-time" => c.slave.buffer_time = Some(u()?),
                "--periods" => c.slave.periods = Some(u()?),
                _ => return Err(format!("unknown argument {k}")),
            }
        }
        if c.slave.pcm.is_empty() || c.ipc_key == 0 {
            return Err("--slave and --key are required".into());
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

    #[test]
    fn pump_args_roundtrip() {
        let c = Config {
            slave: SlaveRequest {
                pcm: "hw:1,0".into(),
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
            pump: None,
            bindings: Vec::new(),
        };
        assert_eq!(Config::from_pump_args(&c.pump_args()).unwrap(), c);
    }

    #[test]
    fn default_keys_differ_per_slave_and_are_positive() {
        let a = default_key("hw:0");
        let b = default_key("hw:1");
        assert_ne!(a, b);
        assert!(a > 0 && a <= i32::MAX as u32);
    }
}
