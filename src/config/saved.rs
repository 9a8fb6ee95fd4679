//! Volumes a user set, remembered by program name, as PulseAudio's stream-restore does: a
//! program that was turned down starts turned down next time.
//!
//! They live in the user's own state directory, `$XDG_STATE_HOME/rdmix/volumes` (else
//! `~/.local/state/rdmix/volumes`), one line per direction and program:
//! `playback 216 1 aplay` (the level's step, the switch, then the name, which may hold
//! spaces). `rdmix-status --volume` writes it; the plugin reads it at open, in the program's
//! own process and as its own user, and asks its pump for that volume in HELLO. A line
//! that does not read is skipped: a damaged file costs a remembered volume, never an open.
//!
//! The master is remembered the same way, by its pump's key: `master 120 1 0x5000a1b2`.
//! A program's HELLO and a mixer's WATCH carry it, and a new pump takes it from its own
//! user's first one (see `wire`).

use std::path::PathBuf;

use crate::dsp::gain::{STEPS, Volume};
use crate::wire::Stream;

/// No more programs than this are remembered; the oldest go first.
const MAX_ENTRIES: usize = 256;
/// A file larger than this is not read: it is not one rdmix wrote.
const MAX_BYTES: u64 = 64 * 1024;

fn path() -> Option<PathBuf> {
    let dir = match std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".local/state"),
    };
    Some(dir.join("rdmix").join("volumes"))
}

fn parse(text: &str) -> Vec<(String, Volume, String)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(4, ' ');
            let (dir, step, on, name) = (f.next()?, f.next()?, f.next()?, f.next()?);
            if !matches!(dir, "playback" | "capture" | "master") || name.is_empty() {
                return None;
            }
            let step: u32 = step.parse().ok().filter(|s| *s <= STEPS)?;
            let on = match on {
                "1" => true,
                "0" => false,
                _ => return None,
            };
            Some((dir.to_string(), Volume { step, on }, name.to_string()))
        })
        .collect()
}

fn read_all() -> Vec<(String, Volume, String)> {
    let Some(p) = path() else { return Vec::new() };
    match std::fs::metadata(&p) {
        Ok(m) if m.is_file() && m.len() <= MAX_BYTES => {}
        _ => return Vec::new(),
    }
    std::fs::read_to_string(&p).map(|t| parse(&t)).unwrap_or_default()
}

/// The volume remembered for `program` in `stream`'s direction, if any.
pub fn recall(stream: Stream, program: &str) -> Option<Volume> {
    recall_entry(stream.name(), program)
}

fn master_name(key: u32) -> String {
    format!("{key:#010x}")
}

/// The master this user last gave the playback pump of `key`, if any.
pub fn recall_master(key: u32) -> Option<Volume> {
    recall_entry("master", &master_name(key))
}

/// Remembers the master of the playback pump of `key` (forgotten back at 0 dB and on).
pub fn remember_master(key: u32, v: Volume) -> std::io::Result<()> {
    remember_entry("master", &master_name(key), v)
}

fn recall_entry(dir: &str, program: &str) -> Option<Volume> {
    read_all()
        .into_iter()
        .rev()
        .find(|(d, _, n)| d == dir && n == program)
        .map(|(_, v, _)| v)
}

/// Remembers `v` for `program` in `stream`'s direction; a program back at full volume is
/// forgotten. Written whole to a new file and renamed over the old one, so a reader never
/// sees half of it.
pub fn remember(stream: Stream, program: &str, v: Volume) -> std::io::Result<()> {
    remember_entry(stream.name(), program, v)
}

fn remember_entry(dir: &str, program: &str, v: Volume) -> std::io::Result<()> {
    let Some(p) = path() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "neither XDG_STATE_HOME nor HOME is set",
        ));
    };
    if program.is_empty() || program.contains('\n') {
        return Ok(());
    }
    let mut all: Vec<_> = read_all()
        .into_iter()
        .filter(|(d, _, n)| !(d == dir && n == program))
        .collect();
    if v != Volume::default() {
        all.push((dir.to_string(), v, program.to_string()));
    }
    let skip = all.len().saturating_sub(MAX_ENTRIES);
    let text: String = all[skip..]
        .iter()
        .map(|(d, v, n)| format!("{d} {} {} {n}\n", v.step, v.on as u8))
        .collect();
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = p.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_lines_are_skipped_and_names_keep_their_spaces() {
        let got = parse(
            "playback 216 1 aplay\ncapture 999 1 big\nplayback x 1 bad\nplayback 10 2 bad\n\
             nonsense\nplayback 0 0 my player\ncapture 100 1 \nmaster 120 1 0x00001234\nmain 1 1 x\n",
        );
        assert_eq!(
            got,
            vec![
                ("playback".into(), Volume { step: 216, on: true }, "aplay".into()),
                ("playback".into(), Volume { step: 0, on: false }, "my player".into()),
                ("master".into(), Volume { step: 120, on: true }, "0x00001234".into()),
            ]
        );
    }
}
