//! Grouped bar charts: one group per category, one bar per series, e.g. the
//! test error of each model (category) on clean and adversarial sets (series).

use anyhow::{Result, anyhow, ensure};
use plotters::prelude::DrawingBackend;

use super::axis::Scale;
use super::canvas::Canvas;
use super::chart::{self, ChartSpec, Frame, Legend, Swatch, XAxis};
use super::{AXIS, series_color};

/// `series[s].1[c]` is the height of series `s`'s bar in category `c`; each
/// series has one value per category. Bars grow from zero, so negative
/// values point down. A non-finite value leaves its bar out, and the x label
/// says how many were left out. A legend names the series when there are
/// several.
#[derive(Clone, Debug, Default)]
pub struct Bars {
    pub categories: Vec<String>,
    pub series: Vec<(String, Vec<f64>)>,
    pub x_label: String,
    pub y_label: String,
}

/// The share of a category's slot its group of bars takes.
const GROUP: f64 = 0.8;

impl Bars {
    pub(crate) fn draw<DB: DrawingBackend>(&self, canvas: &Canvas<DB>) -> Result<()> {
        self.check()?;
        let legend = self.legend(canvas.size().0 - 40);
        let x_label = self.x_label_with_note();
        let spec = ChartSpec {
            x: XAxis::Categories(self.categories.clone()),
            y: self.y_scale()?,
            x_label: &x_label,
            y_label: &self.y_label,
            top: legend.height(),
        };
        let frame = chart::layout(canvas.size(), &spec)?;
        chart::draw_frame(canvas, &frame)?;
        self.draw_bars(canvas, &frame)?;
        if frame.y.lo < 0.0 {
            canvas.line(vec![(frame.left, frame.y_px(0.0)), (frame.right, frame.y_px(0.0))], AXIS, 1)?;
        }
        legend.draw(canvas, &frame)
    }

    fn check(&self) -> Result<()> {
        ensure!(!self.categories.is_empty(), "bars: no categories");
        ensure!(!self.series.is_empty(), "bars: no series");
        for (name, values) in &self.series {
            ensure!(
                values.len() == self.categories.len(),
                "bars: series {name:?} has {} values for {} categories",
                values.len(),
                self.categories.len()
            );
        }
        Ok(())
    }

    /// From zero (or the most negative value) to the largest value.
    fn y_scale(&self) -> Result<Scale> {
        let finite = || self.series.iter().flat_map(|s| s.1.iter().copied()).filter(|v| v.is_finite());
        ensure!(finite().next().is_some(), "bars: no finite values");
        let lo = finite().fold(0.0, f64::min);
        let hi = finite().fold(0.0, f64::max);
        Scale::fitted(lo, hi, false, if lo < 0.0 { 0.06 } else { 0.0 }, if hi > 0.0 { 0.06 } else { 0.0 })
            .map_err(|e| anyhow!("bars: {e}"))
    }

    fn draw_bars<DB: DrawingBackend>(&self, canvas: &Canvas<DB>, frame: &Frame) -> Result<()> {
        let k = self.series.len() as f64;
        let zero = frame.y_px(0.0);
        for (s, (_, values)) in self.series.iter().enumerate() {
            for (c, &v) in values.iter().enumerate().filter(|(_, v)| v.is_finite()) {
                let start = c as f64 + (1.0 - GROUP) / 2.0 + GROUP * s as f64 / k;
                let (x0, x1) = (frame.x_px(start), frame.x_px(start + GROUP / k));
                // Bars of a group stand a pixel apart, where they are wide enough.
                let x1 = if k > 1.0 && x1 - x0 >= 6 { x1 - 1 } else { x1.max(x0 + 1) };
                let y = frame.y_px(v);
                canvas.fill((x0, y.min(zero)), (x1, y.max(zero)), series_color(s))?;
            }
        }
        Ok(())
    }

    fn legend(&self, width: i32) -> Legend {
        let entries = if self.series.len() < 2 {
            Vec::new()
        } else {
            self.series
                .iter()
                .enumerate()
                .map(|(i, (name, _))| (name.clone(), Swatch::Block(series_color(i))))
                .collect()
        };
        Legend::new(entries, width)
    }

    fn x_label_with_note(&self) -> String {
        let left_out = self.series.iter().flat_map(|s| s.1.iter()).filter(|v| !v.is_finite()).count();
        match left_out {
            0 => self.x_label.clone(),
            n => format!("{} ({n} non-finite value{} left out)", self.x_label, if n == 1 { "" } else { "s" })
                .trim_start()
                .to_string(),
        }
    }
}
