//! Channel layouts: ALSA's standard positions, and the gain matrix that plays one layout on
//! another (or follows a `bindings` table).

use alsa_sys as a;

const HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// ALSA's standard positions for `n` channels (mono, stereo, 2.1, quad, 4.1... 7.1).
pub fn standard_map(n: u32) -> Vec<u32> {
    use a::*;
    let surround = [
        SND_CHMAP_FL,
        SND_CHMAP_FR,
        SND_CHMAP_RL,
        SND_CHMAP_RR,
        SND_CHMAP_FC,
        SND_CHMAP_LFE,
        SND_CHMAP_SL,
        SND_CHMAP_SR,
    ];
    match n {
        1 => vec![SND_CHMAP_MONO],
        3 => vec![SND_CHMAP_FL, SND_CHMAP_FR, SND_CHMAP_LFE],
        7 => vec![
            SND_CHMAP_FL,
            SND_CHMAP_FR,
            SND_CHMAP_RL,
            SND_CHMAP_RR,
            SND_CHMAP_FC,
            SND_CHMAP_LFE,
            SND_CHMAP_RC,
        ],
        n if (n as usize) <= surround.len() => surround[..n as usize].to_vec(),
        n => vec![SND_CHMAP_UNKNOWN; n as usize],
    }
}

/// The gain matrix (`out.len()` rows of `inp.len()`) that plays channels at positions `inp`
/// on a device whose channels sit at `out`. Same positions pass at unity; mono goes to both
/// front sides; what the device lacks folds into the nearest front side at -3 dB (ITU-R
/// BS.775 downmix); LFE and unknown positions the device lacks are dropped. A downmix is
/// then scaled so that no output can exceed full scale (see `normalise`).
pub fn matrix(inp: &[u32], out: &[u32]) -> Vec<f32> {
    use a::*;
    let mut m = vec![0f32; inp.len() * out.len()];
    let col = |pos: u32| out.iter().position(|p| *p == pos);
    let device_mono = out.len() == 1;
    let audible = inp
        .iter()
        .filter(|p| !matches!(**p, SND_CHMAP_LFE | SND_CHMAP_UNKNOWN | SND_CHMAP_NA))
        .count();
    for (c, &p) in inp.iter().enumerate() {
        let mut put = |pos: u32, g: f32| {
            if let Some(d) = col(pos) {
                m[d * inp.len() + c] += g;
            }
        };
        if device_mono {
            if !matches!(p, SND_CHMAP_LFE | SND_CHMAP_UNKNOWN | SND_CHMAP_NA) {
                m[c] = 1.0 / audible.max(1) as f32;
            }
            continue;
        }
        if col(p).is_some() {
            put(p, 1.0);
            continue;
        }
        match p {
            SND_CHMAP_MONO => {
                put(SND_CHMAP_FL, 1.0);
                put(SND_CHMAP_FR, 1.0);
            }
            SND_CHMAP_FC => {
                put(SND_CHMAP_FL, HALF);
                put(SND_CHMAP_FR, HALF);
            }
            SND_CHMAP_RL | SND_CHMAP_SL | SND_CHMAP_FLC | SND_CHMAP_RLC | SND_CHMAP_FLW => put(SND_CHMAP_FL, HALF),
            SND_CHMAP_RR | SND_CHMAP_SR | SND_CHMAP_FRC | SND_CHMAP_RRC | SND_CHMAP_FRW => put(SND_CHMAP_FR, HALF),
            SND_CHMAP_RC => {
                put(SND_CHMAP_FL, 0.5);
                put(SND_CHMAP_FR, 0.5);
            }
            _ => {} // LFE and unknown extras are dropped
        }
    }
    normalise(&mut m, inp.len());
    m
}

/// Scales a matrix whose rows could sum past full scale (5.1 to stereo: 1 + 0.707 + 0.707)
/// by its largest row sum of |gain|, so that full-scale material cannot clip, as ffmpeg's
/// swresample and PulseAudio do. One factor for every row keeps the balance between the
/// outputs; a matrix that cannot clip (mono to stereo, stereo to 5.1) is left as it is.
fn normalise(m: &mut [f32], inputs: usize) {
    let worst = m
        .chunks(inputs.max(1))
        .map(|row| row.iter().map(|g| g.abs()).sum::<f32>())
        .fold(0f32, f32::max);
    if worst > 1.0 {
        m.iter_mut().for_each(|g| *g /= worst);
    }
}

/// A `bindings { N M }` table as a matrix: client channel N plays on device channel M.
pub fn binding_matrix(bindings: &[(u32, u32)], out_ch: usize) -> Vec<f32> {
    let in_ch = bindings.iter().map(|b| b.0 as usize + 1).max().unwrap_or(0);
    let mut m = vec![0f32; in_ch * out_ch];
    for &(c, d) in bindings {
        if (d as usize) < out_ch {
            m[d as usize * in_ch + c as usize] = 1.0;
        }
    }
    m
}

/// A capture `bindings { N M }` table as a matrix (client channel rows of `dev_ch` gains):
/// client channel N records device channel M.
pub fn capture_binding_matrix(bindings: &[(u32, u32)], dev_ch: usize) -> Vec<f32> {
    let client_ch = bindings.iter().map(|b| b.0 as usize + 1).max().unwrap_or(0);
    let mut m = vec![0f32; client_ch * dev_ch];
    for &(c, d) in bindings {
        if (d as usize) < dev_ch {
            m[c as usize * dev_ch + d as usize] = 1.0;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use alsa_sys::*;

    #[test]
    fn standard_layouts_map_by_the_usual_rules() {
        let st = standard_map(2);
        // Mono to both sides of stereo.
        assert_eq!(matrix(&standard_map(1), &st), vec![1.0, 1.0]);
        // Stereo to 5.1 front only.
        let m = matrix(&st, &standard_map(6));
        assert_eq!(m, vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // 5.1 down to stereo: L = FL + 0.707 FC + 0.707 RL, LFE dropped, scaled by the
        // row's sum so that it cannot clip.
        let m = matrix(&standard_map(6), &st);
        let (l, r) = m.split_at(6);
        let k = 1.0 / (1.0 + 2.0 * HALF);
        assert_eq!(l, &[k, 0.0, HALF * k, 0.0, HALF * k, 0.0]);
        assert_eq!(r, &[0.0, k, 0.0, HALF * k, HALF * k, 0.0]);
        // Unknown extra channels are dropped.
        let m = matrix(&[SND_CHMAP_FL, SND_CHMAP_FR, SND_CHMAP_UNKNOWN], &st);
        assert_eq!(m, vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        // Bindings route explicitly.
        assert_eq!(binding_matrix(&[(0, 1), (1, 0)], 2), vec![0.0, 1.0, 1.0, 0.0]);
        // Capture: client 0 records device 2 of 3.
        assert_eq!(capture_binding_matrix(&[(0, 2)], 3), vec![0.0, 0.0, 1.0]);
    }

    /// Full-scale material of any layout, at the signs that add up worst, stays within full
    /// scale on any smaller layout. Six channels at 0.2 came out at 0.483 before.
    #[test]
    fn no_downmix_can_clip() {
        for from in 1..=8u32 {
            for to in 1..=8u32 {
                let (inp, out) = (standard_map(from), standard_map(to));
                let m = matrix(&inp, &out);
                for (d, row) in m.chunks(inp.len()).enumerate() {
                    let peak: f32 = row.iter().map(|g| g.abs()).sum();
                    assert!(
                        peak <= 1.0 + 1e-6,
                        "{from} to {to} channels: output {d} peaks at {peak}"
                    );
                }
            }
        }
        let m = matrix(&standard_map(6), &standard_map(2));
        let left: f32 = m[..6].iter().map(|g| g * 0.2).sum();
        assert!((left - 0.2).abs() < 1e-6, "six channels at 0.2 give {left} on the left");
    }
}
