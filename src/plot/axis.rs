//! Axis scales and their ticks: where the ticks go and how they read.
//!
//! Ticks are computed here rather than by plotters so that their labels can
//! be measured first: an axis gets the most ticks whose labels do not touch,
//! and all labels of an axis share one number format ("0.50", "1.00", ...).

use anyhow::{Result, ensure};

/// A data range laid along an axis, linearly or logarithmically.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Scale {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
    /// Ticks only at whole numbers (for counts).
    pub integer: bool,
}

impl Scale {
    /// A scale over the data range lo..hi with `pad_lo` and `pad_hi` of its
    /// span added below and above. A zero-width range is widened, since a
    /// single value still deserves a readable axis. Log scales need lo > 0.
    pub fn fitted(lo: f64, hi: f64, log: bool, pad_lo: f64, pad_hi: f64) -> Result<Scale> {
        ensure!(lo.is_finite() && hi.is_finite() && lo <= hi, "cannot make an axis for the range {lo} to {hi}");
        ensure!(!log || lo > 0.0, "a logarithmic axis needs positive values, got {lo}");
        let (a, b) = if log { (lo.log10(), hi.log10()) } else { (lo, hi) };
        let (a, b) = widen(a, b, log);
        let span = b - a;
        let (a, b) = (a - pad_lo * span, b + pad_hi * span);
        let (start, end) = if log { (10f64.powf(a), 10f64.powf(b)) } else { (a, b) };
        let scale = Scale { lo: start, hi: end, log, integer: false };
        ensure!(
            scale.lo.is_finite() && scale.hi.is_finite() && scale.lo < scale.hi && (b - a).is_finite(),
            "values from {lo:.3e} to {hi:.3e} are too large to plot"
        );
        Ok(scale)
    }

    /// The same scale with ticks only at whole numbers.
    pub fn integer(self) -> Scale {
        Scale { integer: true, ..self }
    }

    /// Where `v` lies along the axis: 0 at its start, 1 at its end.
    pub fn frac(&self, v: f64) -> f64 {
        if self.log {
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    /// Whether `v` can be placed on this axis at all.
    pub fn accepts(&self, v: f64) -> bool {
        v.is_finite() && (!self.log || v > 0.0)
    }
}

/// Gives a zero-width range (one value) some width around that value.
pub(crate) fn widen(a: f64, b: f64, log: bool) -> (f64, f64) {
    if b > a {
        return (a, b);
    }
    let d = if log {
        0.5
    } else if a == 0.0 {
        1.0
    } else {
        a.abs() * 0.1
    };
    (a - d, b + d)
}

/// A labelled tick mark.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tick {
    pub value: f64,
    pub label: String,
}

/// An axis's labelled ticks and its unlabelled minor ticks.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Ticks {
    pub major: Vec<Tick>,
    pub minor: Vec<f64>,
}

/// The most ticks (at most 10) on an axis `length` pixels long whose labels,
/// `extent` pixels long each along the axis, stay `gap` pixels apart.
pub(crate) fn fitted(scale: &Scale, length: i32, extent: impl Fn(&str) -> i32, gap: i32) -> Ticks {
    fitted_at_most(scale, length, extent, gap, 10)
}

/// As [`fitted`], with at most about `most` ticks.
pub(crate) fn fitted_at_most(scale: &Scale, length: i32, extent: impl Fn(&str) -> i32, gap: i32, most: usize) -> Ticks {
    let fits = |ticks: &Ticks| {
        ticks.major.windows(2).all(|w| {
            let d = (scale.frac(w[1].value) - scale.frac(w[0].value)) * f64::from(length);
            d >= f64::from((extent(&w[0].label) + extent(&w[1].label)) / 2 + gap)
        })
    };
    (2..=most.max(2)).rev().map(|max| ticks(scale, max)).find(fits).unwrap_or_else(|| ticks(scale, 1))
}

/// At most about `max` ticks over the scale, at round numbers.
pub(crate) fn ticks(scale: &Scale, max: usize) -> Ticks {
    if scale.log { log_ticks(scale.lo, scale.hi, max) } else { linear_ticks(scale.lo, scale.hi, max, scale.integer) }
}

/// Ticks at multiples of 1, 2 or 5 times a power of ten.
fn linear_ticks(lo: f64, hi: f64, max: usize, integer: bool) -> Ticks {
    let step = nice_step((hi - lo) / max.max(1) as f64);
    let step = if integer { step.max(1.0) } else { step };
    let first = (lo / step - 1e-9).ceil();
    let values: Vec<f64> =
        (0..=max + 1).map(|k| (first + k as f64) * step).take_while(|v| *v <= hi + step * 1e-9).collect();
    let largest = values.iter().fold(0.0, |m: f64, v| m.max(v.abs()));
    let sci = largest >= 1e6 || step < 1e-4;
    let exponent = largest.log10().floor() as i32;
    let label = |v: f64| if sci { sci_label(v, step, exponent) } else { fixed(v, step) };
    let major = values.iter().map(|&v| Tick { value: v, label: label(v) }).collect();
    Ticks { major, minor: Vec::new() }
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw * (1.0 - 1e-9)).unwrap_or(10.0 * mag)
}

/// Ticks for a log axis: at 1, 2 and 5 times powers of ten when the range
/// spans under three decades (there would be too few powers), else at
/// powers of ten (every few when they are many); linear ticks when not even
/// two of those fall in the range.
fn log_ticks(lo: f64, hi: f64, max: usize) -> Ticks {
    let (a, b) = ((lo.log10() - 1e-9).ceil() as i32, (hi.log10() + 1e-9).floor() as i32);
    let within = |v: &f64| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9);
    let times = |ms: &'static [f64]| -> Vec<f64> {
        (a - 1..=b).flat_map(|k| ms.iter().map(move |m| m * 10f64.powi(k))).filter(within).collect()
    };
    let multiples = times(&[1.0, 2.0, 5.0]);
    if b - a < 2 && (2..=max).contains(&multiples.len()) {
        let major = multiples.into_iter().map(|v| Tick { value: v, label: significant(v) }).collect();
        return Ticks { major, minor: times(&[3.0, 4.0, 6.0, 7.0, 8.0, 9.0]) };
    }
    if b > a {
        decade_ticks(a, b, max, times(&[2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]))
    } else {
        linear_ticks(lo, hi, max, false)
    }
}

/// Ticks at powers of ten a..=b, every few when there are more than `max`;
/// the skipped powers (or, with none skipped, `between`) are minor ticks.
fn decade_ticks(a: i32, b: i32, max: usize, between: Vec<f64>) -> Ticks {
    let every = ((b - a + 1) as usize).div_ceil(max.max(1)) as i32;
    let (major, skipped): (Vec<i32>, Vec<i32>) = (a..=b).partition(|k| k.rem_euclid(every) == 0);
    let minor = if every == 1 { between } else { skipped.into_iter().map(|k| 10f64.powi(k)).collect() };
    let major = major.into_iter().map(|k| Tick { value: 10f64.powi(k), label: power_label(k) }).collect();
    Ticks { major, minor }
}

/// 10 to the power `k`, as a plain number when that is short.
fn power_label(k: i32) -> String {
    if (-3..=4).contains(&k) { significant(10f64.powi(k)) } else { format!("10{}", superscript(k)) }
}

/// `v` with the decimals a tick step of `step` needs, and a true minus sign.
pub(crate) fn fixed(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10() - 1e-9).ceil().clamp(0.0, 12.0) as usize };
    minus(format!("{:.*}", decimals, v + 0.0))
}

/// `v` as "m×10ⁿ" for the axis's common exponent n, with as many mantissa
/// digits as a step of `step` needs.
fn sci_label(v: f64, step: f64, exponent: i32) -> String {
    if v.abs() < step * 1e-6 {
        return "0".to_string();
    }
    let digits = (exponent - step.log10().floor() as i32).clamp(0, 6) as usize;
    minus(format!("{:.*}×10{}", digits, v / 10f64.powi(exponent), superscript(exponent)))
}

/// `v` to three significant digits, without trailing zeros; in scientific
/// form when very large or very small.
pub(crate) fn significant(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{}", v + 0.0);
    }
    let e = v.abs().log10().floor() as i32;
    if !(-3..6).contains(&e) {
        let mantissa = trim(format!("{:.2}", v / 10f64.powi(e)));
        return minus(format!("{mantissa}×10{}", superscript(e)));
    }
    let decimals = (2 - e).max(0) as usize;
    minus(trim(format!("{:.*}", decimals, v)))
}

/// Removes trailing zeros after a decimal point, and the point if bare.
fn trim(s: String) -> String {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// Uses the typographic minus sign (U+2212) instead of a hyphen.
fn minus(s: String) -> String {
    s.replace('-', "−")
}

/// An integer in superscript digits, for exponents.
fn superscript(k: i32) -> String {
    k.to_string()
        .chars()
        .map(|c| match c {
            '-' => '⁻',
            d => ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'][d.to_digit(10).unwrap_or(0) as usize],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(t: &Ticks) -> Vec<&str> {
        t.major.iter().map(|t| t.label.as_str()).collect()
    }

    #[test]
    fn linear_ticks_are_round_and_evenly_formatted() {
        let t = ticks(&Scale { lo: 0.0, hi: 1.0, log: false, integer: false }, 5);
        assert_eq!(labels(&t), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let t = ticks(&Scale { lo: -3.0, hi: 7.0, log: false, integer: false }, 5);
        assert_eq!(labels(&t), ["−2", "0", "2", "4", "6"]);
    }

    #[test]
    fn log_ticks_use_decades() {
        let t = ticks(&Scale { lo: 1e-6, hi: 1.0, log: true, integer: false }, 10);
        assert_eq!(labels(&t), ["10⁻⁶", "10⁻⁵", "10⁻⁴", "0.001", "0.01", "0.1", "1"]);
        let t = ticks(&Scale { lo: 1e-8, hi: 1e8, log: true, integer: false }, 5);
        assert!(t.major.len() <= 5, "{:?}", labels(&t));
        let t = ticks(&Scale { lo: 1.5, hi: 8.0, log: true, integer: false }, 10);
        assert_eq!(labels(&t), ["2", "5"]);
        let t = ticks(&Scale { lo: 0.04, hi: 1.1, log: true, integer: false }, 10);
        assert_eq!(labels(&t), ["0.05", "0.1", "0.2", "0.5", "1"]);
    }

    #[test]
    fn degenerate_ranges_are_widened() {
        let s = Scale::fitted(3.0, 3.0, false, 0.0, 0.0).unwrap();
        assert!(s.lo < 3.0 && s.hi > 3.0);
        let s = Scale::fitted(0.0, 0.0, false, 0.0, 0.0).unwrap();
        assert!(s.lo < 0.0 && s.hi > 0.0);
        assert!(Scale::fitted(0.0, 1.0, true, 0.0, 0.0).is_err());
        assert!(Scale::fitted(-f64::MAX, f64::MAX, false, 0.1, 0.1).is_err());
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(significant(0.001), "0.001");
        assert_eq!(significant(12.34), "12.3");
        assert_eq!(significant(2e-5), "2×10⁻⁵");
        assert_eq!(fixed(-0.0, 0.5), "0.0");
        assert_eq!(sci_label(2e-5, 1e-5, -5), "2×10⁻⁵");
        let t = ticks(&Scale { lo: 0.0, hi: 2e6, log: false, integer: false }, 4);
        assert_eq!(labels(&t), ["0", "0.5×10⁶", "1.0×10⁶", "1.5×10⁶", "2.0×10⁶"]);
    }
}
