//! Every option of a rdmix definition, declared once: its name, how its value is written,
//! its range and default, whether it must match at HELLO, and its documentation.
//!
//! `Config::parse` (a definition), `Config::decode` (HELLO), `Config::encode`,
//! `Config::first_difference` and the option block of `asoundrc.example` are all driven
//! by [`OPTIONS`]; nothing else names an option.

use std::path::PathBuf;

use super::{Bindings, Config, Draft, MAX_PCM_NAME};
use crate::alsa::conf::{Conf, Value, expected, parse_int};
use crate::dsp::convert::MAX_CHANNELS;
use crate::dsp::format::Format;
use crate::error::{Error, Result};
use crate::shm::segment::{MAX_CHMAP, MAX_LANES};

/// How an option's value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An integer within `[min, max]`.
    Int(i64, i64),
    Bool,
    /// A PCM name; empty means "use card and device".
    Pcm,
    /// A card number 0..31, or a card's name.
    Card,
    /// A sample format's name (or its number).
    Format,
    /// A group's name (or its number).
    Group,
    /// An absolute path.
    Path,
    /// `{ N M; ... }`: client channel N on device channel M.
    Bindings,
}

/// Where an option stands when a client joins a running pump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Join {
    /// The client must ask what the pump runs, or it is refused naming the option.
    Match,
    /// Each client's own: sent, never compared.
    Own,
    /// The client's alone: folded into other options, or never sent.
    Local,
}

/// A value read, before it is set.
pub enum Val {
    Int(i64),
    Bool(bool),
    Str(String),
    Pairs(Vec<(u32, u32)>),
}

/// What the documentation says of an option.
pub struct Doc {
    /// The default, in words (`None`: there is none to speak of).
    pub default: Option<&'static str>,
    /// The value `asoundrc.example` shows, and whether it is set there or commented out.
    pub example: &'static str,
    pub set_in_example: bool,
    /// What it does, one line per comment line.
    pub lines: &'static [&'static str],
}

pub struct Opt {
    /// As written in a definition (`slave.rate`).
    pub name: &'static str,
    /// As HELLO carries it, when it is sent.
    pub wire: Option<&'static str>,
    pub kind: Kind,
    pub join: Join,
    pub doc: Doc,
    pub set: fn(&mut Draft, Val) -> Result<()>,
    /// The value as HELLO carries it (`None`: not set).
    pub get: fn(&Config) -> Option<String>,
}

/// A numeric slave option: sent at HELLO, and a client must match it.
const fn slave_number(
    name: &'static str,
    range: (i64, i64),
    doc: Doc,
    set: fn(&mut Draft, Val) -> Result<()>,
    get: fn(&Config) -> Option<String>,
) -> Opt {
    Opt {
        name,
        // The name in HELLO is the option's, less `slave.`.
        wire: Some(name.split_at(6).1),
        kind: Kind::Int(range.0, range.1),
        join: Join::Match,
        doc,
        set,
        get,
    }
}

fn int(v: Val) -> i64 {
    match v {
        Val::Int(i) => i,
        _ => 0,
    }
}

fn text(v: Val) -> String {
    match v {
        Val::Str(s) => s,
        _ => String::new(),
    }
}

fn some<T: ToString>(v: Option<T>) -> Option<String> {
    v.map(|v| v.to_string())
}

/// Every option, in the order the documentation lists them.
pub static OPTIONS: [Opt; 20] = [
    Opt {
        name: "slave.pcm",
        wire: Some("pcm"),
        kind: Kind::Pcm,
        join: Join::Match,
        doc: Doc {
            default: None,
            example: "\"hw:0,0\"",
            set_in_example: true,
            lines: &["the device to share (required): any PCM name (hw, plugin chain, bluealsa, file)"],
        },
        set: |d, v| {
            d.pcm = Some(text(v));
            Ok(())
        },
        get: |c| Some(c.slave.pcm.clone()),
    },
    Opt {
        name: "slave.card",
        wire: None,
        kind: Kind::Card,
        join: Join::Local,
        doc: Doc {
            default: None,
            example: "0",
            set_in_example: false,
            lines: &["when pcm is absent or \"\", the device is hw:CARD,DEVICE"],
        },
        set: |d, v| {
            d.card = Some(text(v));
            Ok(())
        },
        get: |_| None,
    },
    Opt {
        name: "slave.device",
        wire: None,
        kind: Kind::Int(0, 255),
        join: Join::Local,
        doc: Doc {
            default: Some("0"),
            example: "0",
            set_in_example: false,
            lines: &["(how the installed pcm.rdmix:CARD=..,DEV=..,SLAVE=.. passes its arguments)"],
        },
        set: |d, v| {
            d.device = Some(int(v));
            Ok(())
        },
        get: |_| None,
    },
    Opt {
        name: "slave.format",
        wire: Some("format"),
        kind: Kind::Format,
        join: Join::Match,
        doc: Doc {
            default: Some("the first of S16_LE, S32_LE, S24_LE, S24_3LE, FLOAT_LE, U8 it accepts"),
            example: "S16_LE",
            set_in_example: true,
            lines: &["sample format the device runs at"],
        },
        set: |d, v| {
            let id = int(v);
            let f = i32::try_from(id)
                .ok()
                .and_then(Format::lookup)
                .ok_or_else(|| Error::config("slave.format", format!("unsupported sample format {id}")))?;
            d.cfg.slave.format = Some(f.id);
            Ok(())
        },
        get: |c| some(c.slave.format),
    },
    slave_number(
        "slave.rate",
        (4000, 768_000),
        Doc {
            default: Some("48000, nearest the device accepts"),
            example: "48000",
            set_in_example: true,
            lines: &["device rate in Hz"],
        },
        |d, v| {
            d.cfg.slave.rate = Some(int(v) as u32);
            Ok(())
        },
        |c| some(c.slave.rate),
    ),
    slave_number(
        "slave.channels",
        (1, MAX_CHMAP as i64),
        Doc {
            default: Some("2, nearest the device accepts"),
            example: "2",
            set_in_example: true,
            lines: &["device channels"],
        },
        |d, v| {
            d.cfg.slave.channels = Some(int(v) as u32);
            Ok(())
        },
        |c| some(c.slave.channels),
    ),
    slave_number(
        "slave.period_size",
        (16, 1 << 16),
        Doc {
            default: Some("from period_time"),
            example: "256",
            set_in_example: true,
            lines: &[
                "frames per device period (or period_time in us): the card's",
                "interrupt granularity; filling ahead, the pump wakes far less often",
                "(README: What the pump costs)",
            ],
        },
        |d, v| {
            d.cfg.slave.period_size = Some(int(v) as u32);
            Ok(())
        },
        |c| some(c.slave.period_size),
    ),
    slave_number(
        "slave.period_time",
        (100, 2_000_000),
        Doc {
            default: Some("5333 us"),
            example: "5333",
            set_in_example: false,
            lines: &["period length in microseconds, used when period_size is not given"],
        },
        |d, v| {
            d.cfg.slave.period_time = Some(int(v) as u32);
            Ok(())
        },
        |c| some(c.slave.period_time),
    ),
    slave_number(
        "slave.periods",
        (2, 64),
        Doc {
            default: Some("4, when not filling ahead"),
            example: "4",
            set_in_example: false,
            lines: &["periods per device buffer, instead of its size or time"],
        },
        |d, v| {
            d.cfg.slave.periods = Some(int(v) as u32);
            Ok(())
        },
        |c| some(c.slave.periods),
    ),
    slave_number(
        "slave.buffer_size",
        (32, 1 << 18),
        Doc {
            default: Some("from buffer_time or periods"),
            example: "16384",
            set_in_example: false,
            lines: &["device buffer in frames"],
        },
        |d, v| {
            d.cfg.slave.buffer_size = Some(int(v) as u32);
            Ok(())
        },
        |c| some(c.slave.buffer_size),
    ),
    slave_number(
        "slave.buffer_time",
        (200, 10_000_000),
        Doc {
            default: Some("341334 us when filling ahead"),
            example: "341334",
            set_in_example: false,
            lines: &[
                "device buffer in microseconds: filling ahead, as much as the device",
                "offers up to this; the pump rewinds it so a new sound is not delayed,",
                "and reads a capture device whenever its most eager reader is due",
            ],
        },
        |d, v| {
            d.cfg.slave.buffer_time = Some(int(v) as u32);
            Ok(())
        },
        |c| some(c.slave.buffer_time),
    ),
    Opt {
        name: "slave.fill_ahead",
        wire: Some("fill_ahead"),
        kind: Kind::Bool,
        join: Join::Match,
        doc: Doc {
            default: Some("true"),
            example: "true",
            set_in_example: false,
            lines: &[
                "mix as far ahead as every playing client allows, wake at a 16 ms",
                "watermark, rewind the slave when a stream starts or stops; capture:",
                "read when the reader that asks soonest (its avail_min) is due",
                "(false: a 4-period buffer, woken every period, no rewinds)",
            ],
        },
        set: |d, v| {
            d.cfg.fill_ahead = matches!(v, Val::Bool(true));
            Ok(())
        },
        get: |c| Some(if c.fill_ahead { "1" } else { "0" }.to_string()),
    },
    Opt {
        name: "ipc_key",
        wire: Some("ipc_key"),
        kind: Kind::Int(1, i32::MAX as i64),
        join: Join::Local,
        doc: Doc {
            default: Some("derived from slave.pcm"),
            example: "5678",
            set_in_example: true,
            lines: &["names the shared segment and its pump"],
        },
        set: |d, v| {
            d.key = Some(int(v) as u32);
            Ok(())
        },
        get: |c| Some(c.ipc_key.to_string()),
    },
    Opt {
        name: "ipc_key_add_uid",
        wire: None,
        kind: Kind::Bool,
        join: Join::Local,
        doc: Doc {
            default: Some("false"),
            example: "false",
            set_in_example: true,
            lines: &["add the user id to ipc_key: one pump per user"],
        },
        set: |d, v| {
            d.add_uid = matches!(v, Val::Bool(true));
            Ok(())
        },
        get: |_| None,
    },
    Opt {
        name: "ipc_perm",
        wire: Some("ipc_perm"),
        kind: Kind::Int(0, 0o777),
        join: Join::Match,
        doc: Doc {
            default: Some("0600"),
            example: "0660",
            set_in_example: true,
            lines: &["who may join: owner always; group bits let ipc_gid in; other bits everyone"],
        },
        set: |d, v| {
            d.cfg.ipc_perm = int(v) as u32;
            Ok(())
        },
        get: |c| Some(c.ipc_perm.to_string()),
    },
    Opt {
        name: "ipc_gid",
        wire: Some("ipc_gid"),
        kind: Kind::Group,
        join: Join::Match,
        doc: Doc {
            default: None,
            example: "audio",
            set_in_example: true,
            lines: &[
                "group admitted by ipc_perm's group bits, and trusted to run the shared pump",
                "(name or number). A shared pump reads its slave from the system-wide",
                "configuration only (/etc/asound.conf, /etc/alsa/conf.d), never ~/.asoundrc.",
            ],
        },
        set: |d, v| {
            d.cfg.ipc_gid = Some(int(v) as u32);
            Ok(())
        },
        get: |c| some(c.ipc_gid),
    },
    Opt {
        name: "ipc_user_lanes",
        wire: Some("ipc_user_lanes"),
        kind: Kind::Int(1, MAX_LANES as i64),
        join: Join::Match,
        doc: Doc {
            default: Some("16 of 64"),
            example: "16",
            set_in_example: true,
            lines: &["on a shared key, lanes one user other than the owner may hold"],
        },
        set: |d, v| {
            d.cfg.ipc_user_lanes = int(v) as u32;
            Ok(())
        },
        get: |c| Some(c.ipc_user_lanes.to_string()),
    },
    Opt {
        name: "ipc_member_master",
        wire: Some("ipc_member_master"),
        kind: Kind::Bool,
        join: Join::Match,
        doc: Doc {
            default: Some("false"),
            example: "false",
            set_in_example: false,
            lines: &[
                "on a shared key, whether users other than the owner may set the",
                "master volume (each may always set their own programs')",
            ],
        },
        set: |d, v| {
            d.cfg.ipc_member_master = matches!(v, Val::Bool(true));
            Ok(())
        },
        get: |c| Some(if c.ipc_member_master { "1" } else { "0" }.to_string()),
    },
    Opt {
        name: "bindings",
        wire: Some("bindings"),
        kind: Kind::Bindings,
        join: Join::Own,
        doc: Doc {
            default: Some("standard layouts, mapped by position"),
            example: "{ 0 0; 1 1 }",
            set_in_example: false,
            lines: &["client channel N plays on (records from) device channel M"],
        },
        set: |d, v| {
            if let Val::Pairs(p) = v {
                d.cfg.bindings = Bindings::new(p)?;
            }
            Ok(())
        },
        get: |c| {
            let b = c.bindings.pairs();
            (!b.is_empty()).then(|| b.iter().map(|(c, d)| format!("{c}:{d}")).collect::<Vec<_>>().join(","))
        },
    },
    Opt {
        name: "pump",
        wire: None,
        kind: Kind::Path,
        join: Join::Local,
        doc: Doc {
            default: Some("the rdmix-pump beside the plugin"),
            example: "\"/usr/lib/x86_64-linux-gnu/alsa-lib/rdmix-pump\"",
            set_in_example: false,
            lines: &[
                "pump executable, if not beside the plugin",
                "(private keys only: a shared pump runs only the installed one)",
            ],
        },
        set: |d, v| {
            d.cfg.pump = Some(PathBuf::from(text(v)));
            Ok(())
        },
        get: |_| None,
    },
];

pub fn by_name(name: &str) -> Option<&'static Opt> {
    OPTIONS.iter().find(|o| o.name == name)
}

pub fn by_wire(key: &str) -> Option<&'static Opt> {
    OPTIONS.iter().find(|o| o.wire == Some(key))
}

fn in_range(key: &str, v: i64, min: i64, max: i64) -> Result<i64> {
    if v < min || v > max {
        return Err(Error::config(key, format!("{v} is out of range [{min}, {max}]")));
    }
    Ok(v)
}

impl Opt {
    /// The values an integer option takes, in words.
    pub fn range(&self) -> Option<String> {
        match (self.name, self.kind) {
            ("ipc_perm", _) => Some("0600 to 0777".into()),
            (_, Kind::Int(min, max)) => Some(format!("{min} to {max}")),
            _ => None,
        }
    }

    /// Reads the option's value from its node in a definition.
    pub fn read(&self, n: &Conf) -> Result<Val> {
        let key = self.name;
        Ok(match self.kind {
            Kind::Int(min, max) => Val::Int(in_range(key, n.integer(key)?, min, max)?),
            Kind::Bool => Val::Bool(n.flag(key)?),
            Kind::Pcm => match n.value() {
                Value::Compound => {
                    return Err(Error::config(
                        key,
                        "must be a PCM name; define the device as pcm.NAME { ... } and give its name here",
                    ));
                }
                Value::Str(name) => Val::Str(name),
                v => return Err(expected(key, "a string", &v)),
            },
            Kind::Card => Val::Str(match n.value() {
                Value::Integer(i) => in_range(key, i, 0, 31)?.to_string(),
                _ => n.string(key)?,
            }),
            Kind::Format => Val::Int(match n.value() {
                Value::Str(s) => Format::by_name(&s)
                    .map(|f| f.id as i64)
                    .ok_or_else(|| Error::config(key, format!("unknown or unsupported sample format \"{s}\"")))?,
                Value::Integer(i) => i,
                v => return Err(expected(key, "a format name", &v)),
            }),
            Kind::Group => match n.value() {
                Value::Str(name) if parse_int(&name).is_none() => Val::Int(
                    crate::sys::user::group_by_name(&name)
                        .ok_or_else(|| Error::config(key, format!("no such group \"{name}\"")))?
                        as i64,
                ),
                _ => Val::Int(in_range(key, n.integer(key)?, 0, u32::MAX as i64 - 1)?),
            },
            Kind::Path => {
                let p = n.string(key)?;
                if !p.starts_with('/') {
                    return Err(Error::config(key, format!("\"{p}\" is not an absolute path")));
                }
                Val::Str(p)
            }
            Kind::Bindings => Val::Pairs(read_bindings(n)?),
        })
    }

    /// Reads the option's value as HELLO carries it, from a peer: checked as `read` checks.
    pub fn decode(&self, wire: &str, v: &str) -> Result<Val> {
        let num = || parse_int(v).ok_or_else(|| Error::config(wire, format!("\"{v}\" is not a number")));
        Ok(match self.kind {
            Kind::Int(min, max) => Val::Int(in_range(self.name, num()?, min, max)?),
            Kind::Format => Val::Int(num()?),
            Kind::Group => Val::Int(in_range(self.name, num()?, 0, u32::MAX as i64 - 1)?),
            Kind::Bindings => Val::Pairs(
                v.split(',')
                    .map(|p| {
                        let (cl, d) = p.split_once(':')?;
                        Some((cl.parse().ok()?, d.parse().ok()?))
                    })
                    .collect::<Option<Vec<(u32, u32)>>>()
                    .ok_or_else(|| Error::config(self.name, format!("malformed \"{v}\"")))?,
            ),
            Kind::Pcm | Kind::Card | Kind::Path => Val::Str(v.to_string()),
            Kind::Bool => Val::Bool(v == "1"),
        })
    }

    /// How a pump names its own value of this option, refusing a client that asks otherwise.
    pub fn shown(&self, c: &Config) -> String {
        match (self.name, (self.get)(c)) {
            ("slave.pcm", Some(v)) => format!("slave.pcm \"{v}\""),
            ("slave.format", Some(v)) => {
                let f = v.parse().ok().and_then(Format::lookup);
                format!("slave.format {}", f.map_or(v, |f| f.name().to_string()))
            }
            // Who may join is one setting, in two options.
            ("ipc_perm" | "ipc_gid", _) => format!(
                "ipc_perm {:04o}{}",
                c.ipc_perm,
                c.ipc_gid.map(|g| format!(", ipc_gid {g}")).unwrap_or_default()
            ),
            (name, Some(v)) => format!("{name} {v}"),
            (name, None) => format!("no {name}"),
        }
    }
}

/// `bindings { 0 1; 1 0 }`: each entry maps a client channel (its id) to a device channel.
fn read_bindings(node: &Conf) -> Result<Vec<(u32, u32)>> {
    if node.value() != Value::Compound {
        return Err(expected("bindings", "a compound", &node.value()));
    }
    let mut out = Vec::new();
    for c in node.children() {
        let id = c.id();
        let key = format!("bindings.{id}");
        let client = id
            .parse::<u32>()
            .map_err(|_| Error::config(&key, format!("the client channel must be 0..{}", MAX_CHANNELS - 1)))?;
        let device = in_range(&key, c.integer(&key)?, 0, MAX_CHMAP as i64 - 1)? as u32;
        out.push((client, device));
    }
    Ok(out)
}

/// The `slave.pcm` checks both readers share.
pub fn check_pcm(name: &str) -> Result<()> {
    if name.len() > MAX_PCM_NAME || name.contains('\0') {
        return Err(Error::config(
            "slave.pcm",
            format!("a name of {} bytes is longer than rdmix's {MAX_PCM_NAME}", name.len()),
        ));
    }
    Ok(())
}

/// Text for roff: a backslash is `\e`, a hyphen `\-` (not a line-breaking dash), and a
/// line that would start with a control character is guarded.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// rdmix(7): the PCM and control definitions and every option, its range and its default, written from
/// this table, so that the manual cannot say what the code does not do.
/// `config::tests` checks `doc/rdmix.7` against it.
pub fn manual_page() -> String {
    let mut o = String::new();
    o.push_str(".TH RDMIX 7 \"\" \"rdmix\" \"rdmix\"\n");
    o.push_str(".SH NAME\nrdmix \\- many ALSA programs, one copy\\-only sound device\n");
    o.push_str(
        ".SH SYNOPSIS\n.nf\npcm.NAME {\n    type rdmix\n    slave.pcm \"DEVICE\"\n    OPTION VALUE ...\n}\n\
         ctl.NAME {\n    type rdmix\n    slave.pcm \"DEVICE\"\n    OPTION VALUE ...\n}\n.fi\n",
    );
    o.push_str(".PP\nor, with the package's definitions, \\fBrdmix:CARD=\\fR\\fIn\\fR or \\fBrdmix:SLAVE=\\fR\\fIname\\fR as the device or control name (\\fBaplay \\-D\\fR, \\fBamixer \\-D\\fR, \\fBalsamixer \\-D\\fR).\n");
    o.push_str(
        ".SH DESCRIPTION\n\
         An ALSA PCM plugin that lets any number of programs share one device whose driver \
         supports only read/write transfers, where \\fBdmix\\fR(7)'s mmap cannot reach. Each \
         program writes into a lane of its own in shared memory; a pump process, \
         \\fBrdmix\\-pump\\fR(8), started on demand, mixes the lanes and feeds the device with \
         \\fBsnd_pcm_writei\\fR(3). Capture is shared the same way. The device can be any ALSA \
         PCM: a copy\\-only card, a plugin chain, a file.\n\
         .PP\n\
         The definitions that name one \\fBipc_key\\fR share one pump, and their options must \
         agree where the pump depends on them; the first program's open decides.\n",
    );
    o.push_str(
        ".SH CONTROLS\n\
         A \\fBctl\\fR definition of \\fBtype rdmix\\fR takes the same options as the PCM \
         definition it goes with (only \\fBslave\\fR and the \\fBipc_\\fR options matter: \
         they name the pumps) and shows, in \\fBalsamixer\\fR(1) and \\fBamixer\\fR(1):\n\
         .TP\n\\fBMaster Playback Volume\\fR, \\fBMaster Playback Switch\\fR\n\
         The mix as a whole, applied once, where it is saturated to the device's format.\n\
         .TP\n\\fIprogram pid\\fR \\fBPlayback Volume\\fR, \\fBPlayback Switch\\fR\n\
         One pair per program that plays, named by its program name and pid \
         (\\fBaplay 4242\\fR), there from its open to its close. A program with two streams \
         has a second pair, of index 1.\n\
         .TP\n\\fIprogram pid\\fR \\fBCapture Volume\\fR, \\fBCapture Switch\\fR\n\
         The same for each program that records, applied to what it receives.\n\
         .PP\n\
         Every volume runs from 0 (silence) to 240 (0 dB) in steps of 0.25 dB, and says so \
         in its dB scale, so mixers show dB: \\fBamixer sset 'aplay 4242' \\-\\- \\-6dB\\fR. \
         There is no boost: at 0 dB and on, a program is mixed bit for bit as before. A \
         change is heard within a device period on a slave the pump can rewind (it keeps \
         half a period, at least 1 ms), ramped over a device period. Mixers hear of programs that come or go, and of each other's changes, from \
         the pump at once.\n\
         .PP\n\
         A user sees and sets only their own programs; the pump's own user sees everyone's. \
         Only the pump's user sets the master, unless \\fBipc_member_master\\fR lets the \
         members of a shared key. A program's volume is remembered by program name in \
         \\fI$XDG_STATE_HOME/rdmix/volumes\\fR, and a program that was turned down starts \
         turned down next time; the master is remembered by its pump's key, and the next \
         pump takes it from its own user's first program or mixer.\n",
    );
    o.push_str(".SH OPTIONS\n");
    for opt in OPTIONS.iter() {
        let doc = &opt.doc;
        o.push_str(&format!(
            ".TP\n\\fB{}\\fR \\fI{}\\fR\n",
            roff(opt.name),
            roff(doc.example)
        ));
        o.push_str(&roff(&doc.lines.join(" ")));
        o.push('\n');
        let said: Vec<String> = opt
            .range()
            .map(|r| format!("Range: {r}."))
            .into_iter()
            .chain(doc.default.map(|d| format!("Default: {d}.")))
            .collect();
        if !said.is_empty() {
            o.push_str(&format!(".br\n{}\n", roff(&said.join(" "))));
        }
    }
    o.push_str(
        ".SH FILES\n\
         .TP\n/usr/share/alsa/alsa.conf.d/50\\-rdmix.conf\n\
         Defines the PCM and the control \\fBrdmix\\fR with their \\fBCARD\\fR, \\fBDEV\\fR and \\fBSLAVE\\fR arguments.\n\
         .TP\n$XDG_STATE_HOME/rdmix/volumes\n\
         The volumes this user gave programs, by name (else \\fI~/.local/state/rdmix/volumes\\fR).\n\
         .TP\n/usr/share/doc/rdmix/asoundrc.example\n\
         Every option above in a definition, as this table writes it.\n\
         .SH SEE ALSO\n\
         \\fBrdmix\\-status\\fR(1), \\fBrdmix\\-pump\\fR(8), \\fBaplay\\fR(1), \\fBalsamixer\\fR(1), \\fBamixer\\fR(1), \\fBasoundrc\\fR(5)\n",
    );
    o
}

/// The option block of `asoundrc.example`'s first definition, as the table says.
pub fn example_block() -> String {
    let mut o = String::from("pcm.!default {\n    type rdmix\n    slave {\n");
    let line = |o: &mut String, indent: &str, name: &str, opt: &Opt| {
        let doc = &opt.doc;
        let set = format!(
            "{indent}{}{name} {}",
            if doc.set_in_example { "" } else { "# " },
            doc.example
        );
        let pad = 32usize.saturating_sub(set.len()).max(1);
        let said: Vec<String> = opt
            .range()
            .into_iter()
            .chain(doc.default.map(|d| format!("default {d}")))
            .collect();
        let said = if said.is_empty() {
            String::new()
        } else {
            format!(" ({})", said.join("; "))
        };
        for (i, line) in doc.lines.iter().enumerate() {
            let (lead, pad, tail) = if i == 0 {
                (set.as_str(), pad, said.as_str())
            } else {
                ("", 32, "")
            };
            o.push_str(&format!("{lead}{:pad$}# {line}{tail}\n", ""));
        }
    };
    for opt in OPTIONS.iter().filter(|o| o.name.starts_with("slave.")) {
        line(&mut o, "        ", &opt.name["slave.".len()..], opt);
    }
    o.push_str("    }\n");
    for opt in OPTIONS.iter().filter(|o| !o.name.starts_with("slave.")) {
        line(&mut o, "    ", opt.name, opt);
    }
    o.push_str("}\n");
    o
}
