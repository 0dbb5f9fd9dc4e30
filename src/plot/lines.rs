//! Line charts: one or more series of (x, y) points, e.g. error rate against
//! distortion for several models, on linear or logarithmic axes.

use anyhow::{Result, anyhow, ensure};
use plotters::prelude::DrawingBackend;

use super::axis::Scale;
use super::canvas::{Canvas, Marker};
use super::chart::{self, ChartSpec, Legend, Swatch, XAxis};
use super::series_color;

/// A named series, drawn as a line through its points in the given order.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Series on shared axes, with a legend above the plot when there are
/// several. Points that cannot be placed (non-finite, or not positive on a
/// log axis) are left out, the line breaks there, and the x label says how
/// many were left out.
#[derive(Clone, Debug, Default)]
pub struct Lines {
    pub series: Vec<Series>,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
}

/// Series with at most this many points also get a marker at each point.
const MARKED: usize = 40;

impl Lines {
    pub(crate) fn draw<DB: DrawingBackend>(&self, canvas: &Canvas<DB>) -> Result<()> {
        ensure!(!self.series.is_empty(), "lines: no series to plot");
        let (x, y) = self.scales()?;
        let legend = self.legend(canvas.size().0 - 40);
        let x_label = self.x_label_with_note(&x, &y);
        let spec =
            ChartSpec { x: XAxis::Numeric(x), y, x_label: &x_label, y_label: &self.y_label, top: legend.height() };
        let frame = chart::layout(canvas.size(), &spec)?;
        chart::draw_frame(canvas, &frame)?;
        for (i, s) in self.series.iter().enumerate() {
            let runs = runs(&s.points, &x, &y);
            for run in &runs {
                canvas.line(run.iter().map(|&p| frame.px(p)).collect(), series_color(i), 2)?;
            }
            if s.points.len() <= MARKED {
                for &p in runs.iter().flatten() {
                    canvas.marker(Marker::nth(i), frame.px(p), 4, series_color(i))?;
                }
            }
        }
        legend.draw(canvas, &frame)
    }

    /// Axes spanning every point that can be placed, with a little room.
    fn scales(&self) -> Result<(Scale, Scale)> {
        let ok = |v: f64, log: bool| v.is_finite() && (!log || v > 0.0);
        let points: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&(x, y)| ok(x, self.log_x) && ok(y, self.log_y))
            .collect();
        ensure!(self.count_points() > 0, "lines: every series is empty");
        ensure!(!points.is_empty(), "lines: no point can be plotted ({})", self.left_out_note(self.count_points()));
        let (x_lo, x_hi) = bounds(points.iter().map(|p| p.0));
        let (y_lo, y_hi) = bounds(points.iter().map(|p| p.1));
        let x = Scale::fitted(x_lo, x_hi, self.log_x, 0.03, 0.03).map_err(|e| anyhow!("lines: x axis: {e}"))?;
        let y = Scale::fitted(y_lo, y_hi, self.log_y, 0.05, 0.05).map_err(|e| anyhow!("lines: y axis: {e}"))?;
        Ok((x, y))
    }

    fn count_points(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }

    /// The legend: one entry per series that has points, when there are two
    /// or more series.
    fn legend(&self, width: i32) -> Legend {
        if self.series.len() < 2 {
            return Legend::new(Vec::new(), width);
        }
        let entries = self
            .series
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.points.is_empty())
            .map(|(i, s)| {
                let marker = (s.points.len() <= MARKED).then_some(Marker::nth(i));
                (s.name.clone(), Swatch::Line(series_color(i), marker))
            })
            .collect();
        Legend::new(entries, width)
    }

    fn x_label_with_note(&self, x: &Scale, y: &Scale) -> String {
        let all = self.series.iter().flat_map(|s| s.points.iter());
        let left_out = all.filter(|(px, py)| !x.accepts(*px) || !y.accepts(*py)).count();
        if left_out == 0 {
            return self.x_label.clone();
        }
        format!("{} ({})", self.x_label, self.left_out_note(left_out)).trim_start().to_string()
    }

    fn left_out_note(&self, n: usize) -> String {
        let why = if self.log_x || self.log_y { "non-finite or not positive on a log axis" } else { "non-finite" };
        format!("{n} point{} left out: {why}", if n == 1 { "" } else { "s" })
    }
}

/// The smallest and largest of some values.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// The stretches of consecutive points that can be placed; the line breaks
/// where a point cannot.
fn runs(points: &[(f64, f64)], x: &Scale, y: &Scale) -> Vec<Vec<(f64, f64)>> {
    let mut runs = vec![Vec::new()];
    for &(px, py) in points {
        if x.accepts(px) && y.accepts(py) {
            if let Some(run) = runs.last_mut() {
                run.push((px, py));
            }
        } else if runs.last().is_some_and(|r| !r.is_empty()) {
            runs.push(Vec::new());
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}
