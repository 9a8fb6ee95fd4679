//! The plugin's configuration, with dmix's option names.
//!
//! A client reads it from its `pcm.NAME { type rdmix ... }` node ([`Config::parse`]) and hands
//! it to its pump whole, in HELLO ([`Config::encode`]); the pump reads it back with
//! [`Config::decode`]. Both readers go through the same setters, so a value the plugin
//! would refuse is refused by the pump too, whoever sent it.

mod options;
pub mod saved;

use std::path::PathBuf;

use crate::alsa::conf::{Conf, Value, expected};
use crate::dsp::convert::MAX_CHANNELS;
use crate::error::{Error, Result};
use crate::shm::segment::{MAX_CHMAP, MAX_LANES};
use crate::wire;
use options::{Join, OPTIONS};

pub use options::{example_block, manual_page};

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
    /// On a shared key, users other than the pump's owner may set the master volume.
    pub ipc_member_master: bool,
    /// The pump executable, if not the one beside the plugin (the client's own business:
    /// it is not sent to the pump).
    pub pump: Option<PathBuf>,
    pub bindings: Bindings,
    /// The pump fills the slave as far ahead as the clients allow, and wakes at a
    /// watermark, instead of at every device period.
    pub fill_ahead: bool,
}

/// FNV-1a, so each slave gets its own default key.
fn default_key(pcm: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in pcm.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    (h & 0x3fff_ffff) | 0x4000_0000
}

/// Lanes one user other than the pump's owner may hold by default: a quarter, so no one
/// user can fill a shared pump.
pub const DEFAULT_USER_LANES: u32 = MAX_LANES as u32 / 4;

/// A configuration being read, by either reader, with what is folded in at the end.
pub struct Draft {
    cfg: Config,
    pcm: Option<String>,
    card: Option<String>,
    device: Option<i64>,
    key: Option<u32>,
    add_uid: bool,
}

impl Draft {
    fn new() -> Draft {
        Draft {
            cfg: Config {
                slave: SlaveRequest::default(),
                ipc_key: 0,
                ipc_perm: 0o600,
                ipc_gid: None,
                ipc_user_lanes: DEFAULT_USER_LANES,
                ipc_member_master: false,
                pump: None,
                bindings: Bindings::default(),
                fill_ahead: true,
            },
            pcm: None,
            card: None,
            device: None,
            key: None,
            add_uid: false,
        }
    }

    /// `card` and `device` name `hw:CARD,DEV` when `pcm` is absent or empty: that is how a
    /// definition with arguments (`rdmix:CARD=1` or `rdmix:SLAVE=name`, see
    /// `50-rdmix.conf`) says "this card, unless a PCM is named", as alsa-lib's config
    /// language has no conditional.
    fn slave_pcm(&self) -> Result<Option<String>> {
        match (&self.pcm, &self.card) {
            (Some(name), _) if !name.is_empty() => Ok(Some(name.clone())),
            (_, Some(card)) => Ok(Some(format!("hw:{card},{}", self.device.unwrap_or(0)))),
            (_, None) if self.device.is_some() => Err(Error::config("slave.device", "needs slave.card")),
            (Some(_), None) => Err(Error::config("slave.pcm", "must not be empty")),
            (None, None) => Ok(None),
        }
    }

    /// The checks that span options, the same for both readers.
    fn finish(mut self, uid: u32) -> Result<Config> {
        let Some(pcm) = self.slave_pcm()? else {
            return Err(Error::config("slave.pcm", "missing: name the PCM rdmix should share"));
        };
        options::check_pcm(&pcm)?;
        self.cfg.slave.pcm = pcm;
        let mut key = self.key.unwrap_or_else(|| default_key(&self.cfg.slave.pcm));
        if self.add_uid {
            key = key.wrapping_add(uid);
        }
        self.cfg.ipc_key = key;
        let perm = self.cfg.ipc_perm;
        if perm & 0o600 != 0o600 {
            return Err(Error::config(
                "ipc_perm",
                format!("{perm:#o} must give the owner read and write (0600)"),
            ));
        }
        if let (true, Some(p)) = (wire::is_shared(perm), &self.cfg.pump) {
            return Err(Error::config(
                "pump",
                format!(
                    "\"{}\": a pump shared with other users (ipc_perm {perm:04o}) runs only the rdmix-pump \
                     installed beside the plugin; remove the option, or make the key private (ipc_perm 0600)",
                    p.display()
                ),
            ));
        }
        Ok(self.cfg)
    }

    /// Reads a slave compound's options.
    fn slave(&mut self, node: &Conf) -> Result<()> {
        for c in node.children() {
            let name = format!("slave.{}", c.id());
            let opt = options::by_name(&name).ok_or_else(|| Error::config(&name, "unknown option"))?;
            (opt.set)(self, opt.read(&c)?)?;
        }
        Ok(())
    }
}

impl Config {
    /// Whether the pump is shared with other users (`ipc_perm` gives group or others access).
    pub fn shared(&self) -> bool {
        wire::is_shared(self.ipc_perm)
    }

    /// The first setting in which a client's configuration differs from the one a pump runs,
    /// as `option value` of the pump's; `None` if the client may join.
    pub fn first_difference(&self, client: &Config) -> Option<String> {
        OPTIONS
            .iter()
            .filter(|o| o.join == Join::Match)
            .find(|o| (o.get)(self) != (o.get)(client))
            .map(|o| o.shown(self))
    }

    /// Reads a plugin node. `root` resolves `slave "NAME"` references to `pcm_slave.NAME`.
    pub fn parse(node: &Conf, root: Option<&Conf>, uid: u32) -> Result<Config> {
        let mut d = Draft::new();
        for c in node.children() {
            let id = c.id();
            match id.as_str() {
                "type" | "comment" | "hint" => {}
                "slave" => match c.value() {
                    Value::Compound => d.slave(&c)?,
                    Value::Str(name) => {
                        let def = root
                            .and_then(|r| r.definition("pcm_slave", &name))
                            .ok_or_else(|| Error::config("slave", format!("no pcm_slave.{name} definition")))?;
                        d.slave(&def.get())?;
                    }
                    v => return Err(expected("slave", "a compound or a pcm_slave name", &v)),
                },
                _ => {
                    let opt = options::by_name(&id)
                        .filter(|o| !o.name.starts_with("slave."))
                        .ok_or_else(|| Error::config(&id, "unknown option"))?;
                    (opt.set)(&mut d, opt.read(&c)?)?;
                }
            }
        }
        d.finish(uid)
    }

    /// The configuration as HELLO carries it: `key=value` fields separated by NUL, which no
    /// value can contain. Every option the table sends.
    pub fn encode(&self) -> Vec<u8> {
        let fields: Vec<String> = OPTIONS
            .iter()
            .filter_map(|o| Some(format!("{}={}", o.wire?, (o.get)(self)?)))
            .collect();
        fields.join("\0").into_bytes()
    }

    /// The inverse of `encode`, for bytes that came from a peer: everything is checked as
    /// `parse` checks it.
    pub fn decode(b: &[u8]) -> Result<Config> {
        let text = std::str::from_utf8(b).map_err(|_| Error::config("HELLO", "the configuration is not UTF-8"))?;
        let mut d = Draft::new();
        for field in text.split('\0') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| Error::config("HELLO", format!("malformed field \"{field}\"")))?;
            let opt = options::by_wire(k).ok_or_else(|| Error::config(&format!("slave.{k}"), "unknown option"))?;
            (opt.set)(&mut d, opt.decode(k, v)?)?;
        }
        if d.pcm.is_none() || d.key.is_none() {
            return Err(Error::config("HELLO", "the configuration lacks slave.pcm or ipc_key"));
        }
        // The uid is the pump's business (it came with ipc_key already added).
        d.finish(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_like_alsa() {
        use crate::alsa::conf::parse_int;
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
            ipc_member_master: true,
            pump: None,
            bindings: Bindings::new(vec![(0, 1), (1, 0)]).unwrap(),
            fill_ahead: false,
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

    /// rdmix(7) is the table's: every option, its range, its default. `RDMIX_BLESS=1`
    /// rewrites it from the table.
    #[test]
    fn the_manual_page_shows_every_option_as_the_table_says() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/doc/rdmix.7");
        let want = manual_page();
        if std::env::var_os("RDMIX_BLESS").is_some() {
            std::fs::write(path, &want).unwrap();
            return;
        }
        let text = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            text, want,
            "doc/rdmix.7 drifted from the option table (RDMIX_BLESS=1 rewrites it)"
        );
        for o in &OPTIONS {
            assert!(
                want.contains(&format!(".TP\n\\fB{}\\fR ", o.name.replace('-', "\\-"))),
                "{} is not shown",
                o.name
            );
        }
    }

    /// The option block of `asoundrc.example` is the table's: every option, its range of
    /// use, its default. `RDMIX_BLESS=1` rewrites it from the table.
    #[test]
    fn asoundrc_example_shows_every_option_as_the_table_says() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/asoundrc.example");
        let text = std::fs::read_to_string(path).unwrap();
        let start = text.find("pcm.!default {\n").expect("the example's first definition");
        let end = start + text[start..].find("\n}\n").expect("its end") + 3;
        let want = example_block();
        if std::env::var_os("RDMIX_BLESS").is_some() {
            std::fs::write(path, format!("{}{want}{}", &text[..start], &text[end..])).unwrap();
            return;
        }
        assert_eq!(
            &text[start..end],
            want,
            "asoundrc.example drifted from the option table (RDMIX_BLESS=1 rewrites it)"
        );
        for o in &OPTIONS {
            let short = o.name.trim_start_matches("slave.");
            assert!(want.contains(&format!(" {short} ")), "{} is not shown", o.name);
        }
    }
}
