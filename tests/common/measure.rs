//! Measuring a signal: least-squares sine fits and RMS, for the quality figures the tests
//! and benchmarks report (THD+N, levels, residuals).
//!
//! Test code, never shipped: the integration tests reach it through `tests/common`, and
//! `dsp::convert`'s unit tests include this one file by path.

/// Least-squares fit of a sine at `f` Hz to `x` sampled at `rate`: (sine, cosine) coefficients.
pub fn fit_sine(x: &[f64], f: f64, rate: f64) -> (f64, f64) {
    let w = 2.0 * std::f64::consts::PI * f / rate;
    let (mut ss, mut cc, mut sc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (n, v) in x.iter().enumerate() {
        let (s, c) = (w * n as f64).sin_cos();
        ss += s * s;
        cc += c * c;
        sc += s * c;
        xs += v * s;
        xc += v * c;
    }
    let det = ss * cc - sc * sc;
    ((xs * cc - xc * sc) / det, (xc * ss - xs * sc) / det)
}

/// Subtracts a fitted sine from `x` in place; returns its amplitude.
pub fn remove_sine(x: &mut [f64], f: f64, rate: f64) -> f64 {
    let (a, b) = fit_sine(x, f, rate);
    let w = 2.0 * std::f64::consts::PI * f / rate;
    for (n, v) in x.iter_mut().enumerate() {
        let (s, c) = (w * n as f64).sin_cos();
        *v -= a * s + b * c;
    }
    a.hypot(b)
}

/// Amplitude of a sine at `f` fitted to `x`, and the RMS of what is left without it.
pub fn sine_and_residual(x: &[f64], f: f64, rate: f64) -> (f64, f64) {
    let mut rest = x.to_vec();
    let amp = remove_sine(&mut rest, f, rate);
    (amp, rms(&rest))
}

/// Root mean square.
pub fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// Joint least-squares fit of sines at `freqs`: amplitudes and residual RMS.
#[allow(clippy::needless_range_loop)] // textbook elimination reads best with indices
pub fn fit_sines(x: &[f64], freqs: &[f64], rate: f64) -> (Vec<f64>, f64) {
    let k = 2 * freqs.len();
    let basis = |n: usize, j: usize| {
        let w = 2.0 * std::f64::consts::PI * freqs[j / 2] / rate * n as f64;
        if j.is_multiple_of(2) { w.sin() } else { w.cos() }
    };
    let mut ata = vec![vec![0.0; k + 1]; k];
    for (n, v) in x.iter().enumerate() {
        let b: Vec<f64> = (0..k).map(|j| basis(n, j)).collect();
        for i in 0..k {
            for j in 0..k {
                ata[i][j] += b[i] * b[j];
            }
            ata[i][k] += b[i] * v;
        }
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..k {
        let piv = (col..k)
            .max_by(|a, b| ata[*a][col].abs().partial_cmp(&ata[*b][col].abs()).unwrap())
            .unwrap();
        ata.swap(col, piv);
        for row in 0..k {
            if row != col {
                let f = ata[row][col] / ata[col][col];
                for j in col..=k {
                    ata[row][j] -= f * ata[col][j];
                }
            }
        }
    }
    let coef: Vec<f64> = (0..k).map(|i| ata[i][k] / ata[i][i]).collect();
    let amps = (0..freqs.len()).map(|i| coef[2 * i].hypot(coef[2 * i + 1])).collect();
    let res = x
        .iter()
        .enumerate()
        .map(|(n, v)| (v - (0..k).map(|j| coef[j] * basis(n, j)).sum::<f64>()).powi(2))
        .sum::<f64>()
        / x.len() as f64;
    (amps, res.sqrt())
}
