//! Histograms: how values are distributed, e.g. the size of the smallest
//! adversarial distortion over a test set.

use anyhow::{Result, anyhow, ensure};
use plotters::prelude::DrawingBackend;

use super::axis::{self, Scale};
use super::canvas::Canvas;
use super::chart::{self, ChartSpec, XAxis};
use super::series_color;

/// `values` counted in `bins` equal-width bins between their smallest and
/// largest value. `bins == 0` picks a count from the number of values.
/// Non-finite values are left out, and the x label says how many.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    pub values: Vec<f64>,
    pub bins: usize,
    pub x_label: String,
    pub y_label: String,
}

/// More bins than this cannot be told apart on any figure.
const MAX_BINS: usize = 10_000;

impl Histogram {
    pub(crate) fn draw<DB: DrawingBackend>(&self, canvas: &Canvas<DB>) -> Result<()> {
        let finite: Vec<f64> = self.values.iter().copied().filter(|v| v.is_finite()).collect();
        ensure!(!finite.is_empty(), "histogram: no finite values among the {} given", self.values.len());
        ensure!(self.bins <= MAX_BINS, "histogram: {} bins is too many (at most {MAX_BINS})", self.bins);
        let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let bins = self.bin_count(finite.len());
        let (lo, hi) = if lo < hi { (lo, hi) } else { centred(lo, bins) };
        let counts = count(&finite, lo, hi, bins);
        let most = counts.iter().copied().max().unwrap_or(0);
        let x_label = self.x_label_with_note(self.values.len() - finite.len());
        let spec = ChartSpec {
            x: XAxis::Numeric(Scale::fitted(lo, hi, false, 0.02, 0.02).map_err(|e| anyhow!("histogram: {e}"))?),
            y: Scale::fitted(0.0, most as f64, false, 0.0, 0.06)?.integer(),
            x_label: &x_label,
            y_label: &self.y_label,
            top: 0,
        };
        let frame = chart::layout(canvas.size(), &spec)?;
        chart::draw_frame(canvas, &frame)?;
        let edge = |i: usize| lo + (hi - lo) * i as f64 / bins as f64;
        for (i, &c) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            let (x0, x1) = (frame.x_px(edge(i)), frame.x_px(edge(i + 1)));
            // A one-pixel white gap between bars, where they are wide enough.
            let x1 = if x1 - x0 >= 4 { x1 - 1 } else { x1.max(x0 + 1) };
            canvas.fill((x0, frame.y_px(c as f64)), (x1, frame.bottom), series_color(0))?;
        }
        Ok(())
    }

    /// The number of bins: as asked, or about the square root of the number
    /// of values, which keeps each bin's count meaningful.
    fn bin_count(&self, n: usize) -> usize {
        if self.bins > 0 { self.bins } else { ((n as f64).sqrt().ceil() as usize).clamp(5, 60) }
    }

    fn x_label_with_note(&self, left_out: usize) -> String {
        match left_out {
            0 => self.x_label.clone(),
            n => format!("{} ({n} non-finite value{} left out)", self.x_label, if n == 1 { "" } else { "s" })
                .trim_start()
                .to_string(),
        }
    }
}

/// Bin edges around a single value `v`, which falls in the middle of the
/// middle bin.
fn centred(v: f64, bins: usize) -> (f64, f64) {
    let (a, b) = axis::widen(v, v, false);
    let width = (b - a) / bins as f64;
    let lo = v - ((bins / 2) as f64 + 0.5) * width;
    (lo, lo + width * bins as f64)
}

/// How many of `values` fall in each of `bins` equal bins over lo..hi (the
/// last bin includes hi).
fn count(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<usize> {
    let mut counts = vec![0; bins];
    for &v in values {
        let i = ((v - lo) / (hi - lo) * bins as f64).floor();
        counts[(i.max(0.0) as usize).min(bins - 1)] += 1;
    }
    counts
}
