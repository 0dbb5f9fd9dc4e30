//! The frame of an x-y chart (plot rectangle, axes, ticks, axis labels) and
//! the legend above it, shared by lines, histograms and bars.
//!
//! The layout is measured, not guessed: the left margin is as wide as the
//! widest y tick label, category labels turn upright when they do not fit
//! side by side, and long axis labels shrink or are shortened rather than
//! run off the figure.

use anyhow::{Result, bail};
use plotters::prelude::DrawingBackend;
use plotters::style::RGBColor;
use plotters::style::text_anchor::{HPos, VPos};

use super::axis::{self, Scale, Tick, Ticks};
use super::canvas::{Canvas, Marker, TextSpec};
use super::{AXIS, GRID, LABEL, LEGEND, MIN_TEXT, TICK, font};

const EDGE: i32 = 12;
const TICK_LEN: i32 = 5;
const TICK_GAP: i32 = 4;
const DESC_GAP: i32 = 8;

/// The horizontal axis: numbers, or named categories in equal slots.
pub(crate) enum XAxis {
    Numeric(Scale),
    Categories(Vec<String>),
}

/// What a chart shows around its data.
pub(crate) struct ChartSpec<'a> {
    pub x: XAxis,
    pub y: Scale,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// Pixels kept free above the plot (for the legend).
    pub top: i32,
}

/// A laid-out chart: the plot rectangle in canvas pixels and its axes.
pub(crate) struct Frame {
    pub left: i32,
    pub top: i32,
    pub right: i32,
    pub bottom: i32,
    pub x: Scale,
    pub y: Scale,
    x_ticks: Ticks,
    y_ticks: Ticks,
    /// Category labels drawn reading upwards, as they do not fit across.
    x_upward: bool,
    x_vertical_grid: bool,
    x_label: (String, f64),
    y_label: (String, f64),
    canvas_height: i32,
}

impl Frame {
    pub fn x_px(&self, x: f64) -> i32 {
        self.left + (self.x.frac(x) * f64::from(self.right - self.left)).round() as i32
    }

    pub fn y_px(&self, y: f64) -> i32 {
        self.bottom - (self.y.frac(y) * f64::from(self.bottom - self.top)).round() as i32
    }

    pub fn px(&self, (x, y): (f64, f64)) -> (i32, i32) {
        (self.x_px(x), self.y_px(y))
    }
}

/// Places the plot rectangle so that every label fits around it. Two passes:
/// upright category labels make the bottom margin taller, which changes the
/// y ticks and so the left margin.
pub(crate) fn layout(size: (i32, i32), spec: &ChartSpec) -> Result<Frame> {
    let mut x_extent = font::height(TICK);
    let mut frame = place(size, spec, x_extent)?;
    if frame.x_upward {
        x_extent = frame.x_ticks.major.iter().map(|t| font::width(&t.label, TICK)).max().unwrap_or(0);
        frame = place(size, spec, x_extent)?;
        frame.x_upward = true;
    }
    Ok(frame)
}

/// One layout pass, with the x tick labels `x_extent` pixels tall.
fn place(size: (i32, i32), spec: &ChartSpec, x_extent: i32) -> Result<Frame> {
    let (w, h) = size;
    let desc = |s: &str| if s.is_empty() { 0 } else { font::height(LABEL) + DESC_GAP };
    let top = EDGE + spec.top;
    let bottom = h - EDGE - desc(spec.x_label) - x_extent - TICK_GAP - TICK_LEN;
    let y_ticks = axis::fitted(&spec.y, bottom - top, |_| font::height(TICK), 8);
    let y_tick_w = y_ticks.major.iter().map(|t| font::width(&t.label, TICK)).max().unwrap_or(0);
    let left = EDGE + desc(spec.y_label) + y_tick_w + TICK_GAP + TICK_LEN;
    let (right, x, x_ticks, upward) = place_right(spec, (w, h), left);
    if right - left < 40 || bottom - top < 40 {
        bail!("a figure of {w}x{h} pixels is too small for its labels");
    }
    let x_label = font::fit(spec.x_label, LABEL, MIN_TEXT, right - left);
    let y_label = font::fit(spec.y_label, LABEL, MIN_TEXT, bottom - top);
    let x_vertical_grid = matches!(spec.x, XAxis::Numeric(_));
    Ok(Frame {
        left,
        top,
        right,
        bottom,
        x,
        y: spec.y,
        x_ticks,
        y_ticks,
        x_upward: upward,
        x_vertical_grid,
        x_label,
        y_label,
        canvas_height: h,
    })
}

/// The right end of the plot, leaving room for half the last x tick label,
/// and the x axis laid out up to there.
fn place_right(spec: &ChartSpec, (w, h): (i32, i32), left: i32) -> (i32, Scale, Ticks, bool) {
    let right = w - 2 * EDGE;
    let (x, ticks, upward) = x_axis(&spec.x, right - left, h / 3);
    if let (XAxis::Numeric(_), Some(last)) = (&spec.x, ticks.major.last()) {
        let at = left + (x.frac(last.value) * f64::from(right - left)).round() as i32;
        let overflow = at + font::width(&last.label, TICK) / 2 - (w - EDGE / 2);
        if overflow > 0 {
            let (x, ticks, upward) = x_axis(&spec.x, right - overflow - left, h / 3);
            return (right - overflow, x, ticks, upward);
        }
    }
    (right, x, ticks, upward)
}

/// The x scale, its ticks, and whether their labels must read upwards (and
/// are then cut to `upright_max` pixels).
fn x_axis(axis: &XAxis, length: i32, upright_max: i32) -> (Scale, Ticks, bool) {
    match axis {
        XAxis::Numeric(scale) => (*scale, axis::fitted(scale, length, |s| font::width(s, TICK), 14), false),
        XAxis::Categories(names) => {
            let n = names.len().max(1);
            let slot = length / n as i32;
            let upward = font::max_width(names, TICK) > slot - 6;
            let longest = if upward { upright_max.min(220) } else { slot };
            let major = names
                .iter()
                .enumerate()
                .map(|(i, name)| Tick { value: i as f64 + 0.5, label: font::fit(name, TICK, TICK, longest).0 })
                .collect();
            (Scale { lo: 0.0, hi: n as f64, log: false, integer: false }, Ticks { major, minor: Vec::new() }, upward)
        }
    }
}

/// Draws grid lines, axes, ticks, tick labels and axis labels.
pub(crate) fn draw_frame<DB: DrawingBackend>(canvas: &Canvas<DB>, f: &Frame) -> Result<()> {
    draw_grid(canvas, f)?;
    canvas.line(vec![(f.left, f.top), (f.left, f.bottom)], AXIS, 1)?;
    canvas.line(vec![(f.left, f.bottom), (f.right, f.bottom)], AXIS, 1)?;
    let tick_spec = TextSpec::new(TICK);
    for t in &f.y_ticks.major {
        let y = f.y_px(t.value);
        canvas.line(vec![(f.left - TICK_LEN, y), (f.left, y)], AXIS, 1)?;
        let spec = tick_spec.anchor(HPos::Right, VPos::Center);
        canvas.text(&t.label, (f.left - TICK_LEN - TICK_GAP, y), &spec)?;
    }
    for &v in &f.y_ticks.minor {
        canvas.line(vec![(f.left - TICK_LEN / 2 - 1, f.y_px(v)), (f.left, f.y_px(v))], AXIS, 1)?;
    }
    for t in &f.x_ticks.major {
        let x = f.x_px(t.value);
        canvas.line(vec![(x, f.bottom), (x, f.bottom + TICK_LEN)], AXIS, 1)?;
        let spec = if f.x_upward { tick_spec.upward().anchor(HPos::Right, VPos::Center) } else { tick_spec };
        canvas.text(&t.label, (x, f.bottom + TICK_LEN + TICK_GAP), &spec)?;
    }
    for &v in &f.x_ticks.minor {
        canvas.line(vec![(f.x_px(v), f.bottom), (f.x_px(v), f.bottom + TICK_LEN / 2 + 1)], AXIS, 1)?;
    }
    draw_axis_labels(canvas, f)
}

/// Light lines at the major ticks, behind the data.
fn draw_grid<DB: DrawingBackend>(canvas: &Canvas<DB>, f: &Frame) -> Result<()> {
    for t in &f.y_ticks.major {
        canvas.line(vec![(f.left, f.y_px(t.value)), (f.right, f.y_px(t.value))], GRID, 1)?;
    }
    if f.x_vertical_grid {
        for t in &f.x_ticks.major {
            canvas.line(vec![(f.x_px(t.value), f.top), (f.x_px(t.value), f.bottom)], GRID, 1)?;
        }
    }
    Ok(())
}

fn draw_axis_labels<DB: DrawingBackend>(canvas: &Canvas<DB>, f: &Frame) -> Result<()> {
    let (text, size) = &f.x_label;
    let spec = TextSpec::new(*size).anchor(HPos::Center, VPos::Bottom);
    canvas.text(text, ((f.left + f.right) / 2, f.canvas_height - EDGE), &spec)?;
    let (text, size) = &f.y_label;
    let spec = TextSpec::new(*size).upward().anchor(HPos::Center, VPos::Top);
    canvas.text(text, (EDGE, (f.top + f.bottom) / 2), &spec)
}

/// How a legend entry shows its series.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Swatch {
    Line(RGBColor, Option<Marker>),
    Block(RGBColor),
}

const SWATCH_W: i32 = 30;
const ENTRY_GAP: i32 = 22;

/// A legend: one row (or more, when they do not fit) of entries above the
/// plot, where it can never hide data.
pub(crate) struct Legend {
    rows: Vec<Vec<(String, Swatch, i32)>>,
}

impl Legend {
    /// Lays the entries out in rows at most `width` pixels wide.
    pub fn new(entries: Vec<(String, Swatch)>, width: i32) -> Legend {
        let mut rows: Vec<Vec<(String, Swatch, i32)>> = vec![];
        let mut used = 0;
        for (name, swatch) in entries {
            let (name, _) = font::fit(&name, LEGEND, LEGEND, (width - SWATCH_W - 6).max(20));
            let w = SWATCH_W + 6 + font::width(&name, LEGEND);
            match rows.last_mut() {
                Some(row) if used + ENTRY_GAP + w <= width => {
                    row.push((name, swatch, w));
                    used += ENTRY_GAP + w;
                }
                _ => {
                    rows.push(vec![(name, swatch, w)]);
                    used = w;
                }
            }
        }
        Legend { rows }
    }

    fn row_height() -> i32 {
        font::height(LEGEND) + 8
    }

    /// Pixels the legend takes above the plot; 0 when it is empty.
    pub fn height(&self) -> i32 {
        if self.rows.is_empty() { 0 } else { self.rows.len() as i32 * Self::row_height() + 4 }
    }

    /// Draws the legend in the top `height()` pixels, centred on the plot.
    pub fn draw<DB: DrawingBackend>(&self, canvas: &Canvas<DB>, f: &Frame) -> Result<()> {
        let (w, _) = canvas.size();
        for (r, row) in self.rows.iter().enumerate() {
            let total: i32 = row.iter().map(|e| e.2).sum::<i32>() + ENTRY_GAP * (row.len() as i32 - 1);
            let mut x = ((f.left + f.right - total) / 2).clamp(4, (w - total - 4).max(4));
            let y = EDGE / 2 + r as i32 * Self::row_height() + Self::row_height() / 2;
            for (name, swatch, width) in row {
                draw_swatch(canvas, *swatch, (x, y))?;
                let spec = TextSpec::new(LEGEND).anchor(HPos::Left, VPos::Center);
                canvas.text(name, (x + SWATCH_W + 6, y), &spec)?;
                x += width + ENTRY_GAP;
            }
        }
        Ok(())
    }
}

fn draw_swatch<DB: DrawingBackend>(canvas: &Canvas<DB>, swatch: Swatch, (x, y): (i32, i32)) -> Result<()> {
    match swatch {
        Swatch::Line(color, marker) => {
            canvas.line(vec![(x, y), (x + SWATCH_W, y)], color, 2)?;
            match marker {
                Some(m) => canvas.marker(m, (x + SWATCH_W / 2, y), 4, color),
                None => Ok(()),
            }
        }
        Swatch::Block(color) => canvas.fill((x + 6, y - 8), (x + SWATCH_W - 6, y + 9), color),
    }
}
