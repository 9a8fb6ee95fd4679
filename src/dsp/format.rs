//! The sample formats rdmix reads from lanes and writes to slaves: every linear PCM format
//! alsa-lib has, U8 to FLOAT64, in both endians.

use alsa_sys as a;

/// How one sample of a format is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `bits` significant bits in the low end of `bytes` bytes.
    Int {
        bytes: u8,
        bits: u8,
        unsigned: bool,
        big: bool,
    },
    Float {
        bytes: u8,
        big: bool,
    },
}

/// A sample format rdmix can read from a lane or write to a slave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    pub id: a::snd_pcm_format_t,
    pub kind: Kind,
}

const fn int(id: a::snd_pcm_format_t, bytes: u8, bits: u8, unsigned: bool, big: bool) -> Format {
    Format {
        id,
        kind: Kind::Int {
            bytes,
            bits,
            unsigned,
            big,
        },
    }
}
const fn float(id: a::snd_pcm_format_t, bytes: u8, big: bool) -> Format {
    Format {
        id,
        kind: Kind::Float { bytes, big },
    }
}

/// Every format rdmix accepts, in the order it prefers them for a slave.
pub const FORMATS: &[Format] = &[
    int(a::SND_PCM_FORMAT_S16_LE, 2, 16, false, false),
    int(a::SND_PCM_FORMAT_S32_LE, 4, 32, false, false),
    int(a::SND_PCM_FORMAT_S24_LE, 4, 24, false, false),
    int(a::SND_PCM_FORMAT_S24_3LE, 3, 24, false, false),
    float(a::SND_PCM_FORMAT_FLOAT_LE, 4, false),
    int(a::SND_PCM_FORMAT_U8, 1, 8, true, false),
    int(a::SND_PCM_FORMAT_S8, 1, 8, false, false),
    int(a::SND_PCM_FORMAT_S16_BE, 2, 16, false, true),
    int(a::SND_PCM_FORMAT_U16_LE, 2, 16, true, false),
    int(a::SND_PCM_FORMAT_U16_BE, 2, 16, true, true),
    int(a::SND_PCM_FORMAT_S24_BE, 4, 24, false, true),
    int(a::SND_PCM_FORMAT_U24_LE, 4, 24, true, false),
    int(a::SND_PCM_FORMAT_U24_BE, 4, 24, true, true),
    int(a::SND_PCM_FORMAT_S32_BE, 4, 32, false, true),
    int(a::SND_PCM_FORMAT_U32_LE, 4, 32, true, false),
    int(a::SND_PCM_FORMAT_U32_BE, 4, 32, true, true),
    int(a::SND_PCM_FORMAT_S24_3BE, 3, 24, false, true),
    int(a::SND_PCM_FORMAT_U24_3LE, 3, 24, true, false),
    int(a::SND_PCM_FORMAT_U24_3BE, 3, 24, true, true),
    float(a::SND_PCM_FORMAT_FLOAT_BE, 4, true),
    float(a::SND_PCM_FORMAT_FLOAT64_LE, 8, false),
    float(a::SND_PCM_FORMAT_FLOAT64_BE, 8, true),
];

impl Format {
    pub fn lookup(id: a::snd_pcm_format_t) -> Option<Format> {
        FORMATS.iter().copied().find(|f| f.id == id)
    }
    pub fn sample_bytes(&self) -> usize {
        match self.kind {
            Kind::Int { bytes, .. } | Kind::Float { bytes, .. } => bytes as usize,
        }
    }
    /// Fills `buf` with this format's silence: zero, or the midpoint of an unsigned format.
    pub fn silence(&self, buf: &mut [u8]) {
        let Kind::Int {
            bytes,
            bits,
            unsigned: true,
            big,
        } = self.kind
        else {
            buf.fill(0);
            return;
        };
        let mid = (1u64 << (bits - 1)).to_le_bytes();
        let n = bytes as usize;
        for sample in buf.chunks_exact_mut(n) {
            for (i, b) in sample.iter_mut().enumerate() {
                *b = mid[if big { n - 1 - i } else { i }];
            }
        }
    }
    /// ALSA's name for the format, e.g. `S16_LE`.
    pub fn name(&self) -> String {
        crate::alsa::format_name(self.id).unwrap_or_else(|| format!("format {}", self.id))
    }
    /// Looks a format up by ALSA name (`S16_LE`, `FLOAT`, ...), case-insensitively.
    pub fn by_name(name: &str) -> Option<Format> {
        Format::lookup(crate::alsa::format_by_name(name))
    }
}
