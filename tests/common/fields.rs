//! Signals that survive mixing: stream i plays `((k mod m_i) + 1) << 5i` on the left and its
//! negation on the right. The fields never overlap or carry, so each stream's start is found
//! by decoding its field, and the whole recording can then be compared with the exact sum.

use super::{World, write_wav_s16};

pub const MODULI: [u64; 3] = [31, 29, 23];

pub fn value(stream: usize, k: u64) -> i16 {
    (((k % MODULI[stream]) + 1) as i16) << (5 * stream)
}

pub fn field(v: i16, stream: usize) -> u64 {
    ((v as u16 >> (5 * stream)) & 31) as u64
}

pub fn write_stream(w: &World, stream: usize, frames: u64) -> String {
    let name = format!("s{stream}.wav");
    let data: Vec<[i16; 2]> = (0..frames).map(|k| [value(stream, k), -value(stream, k)]).collect();
    write_wav_s16(&w.path(&name), 48000, &data);
    name
}

/// Where each stream starts in the recording, and how many of its frames are present.
pub fn locate(rec: &[[i16; 2]], stream: usize) -> Option<(usize, usize)> {
    let start = rec.iter().position(|f| field(f[0], stream) != 0)?;
    let len = rec[start..].iter().take_while(|f| field(f[0], stream) != 0).count();
    Some((start, len))
}

/// Checks every recorded frame against the saturated sum of what was playing there.
pub fn check_exact(rec: &[[i16; 2]], spans: &[(usize, usize)]) {
    for (m, got) in rec.iter().enumerate() {
        let mut sum = 0i32;
        for (i, &(start, len)) in spans.iter().enumerate() {
            if m >= start && m < start + len {
                sum += value(i, (m - start) as u64) as i32;
            }
        }
        let l = sum.clamp(-32768, 32767) as i16;
        let r = (-sum).clamp(-32768, 32767) as i16;
        assert_eq!(*got, [l, r], "frame {m} of {}: spans {spans:?}", rec.len());
    }
}
