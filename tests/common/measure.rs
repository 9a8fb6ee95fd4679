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
