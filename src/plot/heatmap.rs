//! Heatmaps: a table of numbers as coloured, annotated cells, e.g. a
//! confusion table or the transfer table (error of the column's model on
//! the row model's adversarial examples).

use anyhow::{Result, bail, ensure};
use plotters::prelude::DrawingBackend;
use plotters::style::RGBColor;
use plotters::style::text_anchor::{HPos, VPos};

use super::axis::{self, Scale, Ticks};
use super::canvas::{Canvas, TextSpec};
use super::{AXIS, CAPTION, INK, LABEL, MIN_TEXT, TICK, font};

/// `values[r][c]` is shown in the cell of row `rows[r]` and column
/// `cols[c]`, coloured on a light-to-dark scale and written in the cell (as
/// "12.3%" when `percent`, the values then being fractions). NaN (any
/// non-finite value) leaves its cell empty. Empty `rows` or `cols` number
/// the rows or columns from 0.
#[derive(Clone, Debug, Default)]
pub struct Heatmap {
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    pub values: Vec<Vec<f64>>,
    pub x_label: String,
    pub y_label: String,
    pub percent: bool,
}

const EDGE: i32 = 12;
const GAP: i32 = 8;
const BAR_GAP: i32 = 18;
const BAR_W: i32 = 18;
/// The least cell side of the default size.
const CELL: i32 = 64;
const EMPTY: RGBColor = RGBColor(238, 238, 238);

/// Where everything goes, for a given canvas size.
struct Layout {
    /// Top left corner of the cell block, and the side of a cell.
    x0: i32,
    y0: i32,
    cell: i32,
    rows: Vec<String>,
    cols: Vec<String>,
    cols_upward: bool,
    x_label: (String, f64),
    y_label: (String, f64),
    bar_ticks: Ticks,
}

impl Heatmap {
    /// Cells wide enough for their numbers and, when the table stays under
    /// about 900 pixels that way, for the column names to stand side by side.
    pub(crate) fn default_size(&self) -> (u32, u32) {
        let (nr, nc) = (self.values.len().max(1) as i32, self.values.first().map_or(1, Vec::len).max(1) as i32);
        let format = self.formatter();
        let numbers: Vec<String> = self.values.iter().flatten().map(|&v| format(v)).collect();
        let wanted = (font::max_width(&numbers, CAPTION) + 14).max(CELL);
        let names = font::max_width(&Self::names(&self.cols, nc as usize), TICK) + 10;
        let wanted = if nc.saturating_mul(names) <= 900 { wanted.max(names) } else { wanted };
        let cell = wanted.min(1400 / nr.max(nc)).max(20);
        let (mx, my) = self.margins(cell);
        ((mx + nc * cell).clamp(360, 4000) as u32, (my + nr * cell).clamp(240, 4000) as u32)
    }

    pub(crate) fn draw<DB: DrawingBackend>(&self, canvas: &Canvas<DB>) -> Result<()> {
        self.check()?;
        let (lo, hi) = self.range();
        let l = self.layout(canvas.size(), lo, hi)?;
        let format = self.formatter();
        for (r, row) in self.values.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                let color = blues(((v - lo) / (hi - lo)).clamp(0.0, 1.0));
                draw_cell(canvas, &l, (r, c), v.is_finite().then(|| (color, format(v))))?;
            }
        }
        self.draw_labels(canvas, &l)?;
        self.draw_bar(canvas, &l, (lo, hi))
    }

    fn check(&self) -> Result<()> {
        let nr = self.values.len();
        ensure!(nr > 0, "heatmap: no values");
        let nc = self.values[0].len();
        ensure!(nc > 0, "heatmap: the first row of values is empty");
        if let Some((r, row)) = self.values.iter().enumerate().find(|(_, row)| row.len() != nc) {
            bail!("heatmap: row {r} has {} values but row 0 has {nc}", row.len());
        }
        ensure!(self.rows.is_empty() || self.rows.len() == nr, "heatmap: {} row names for {nr} rows", self.rows.len());
        ensure!(
            self.cols.is_empty() || self.cols.len() == nc,
            "heatmap: {} column names for {nc} columns",
            self.cols.len()
        );
        Ok(())
    }

    /// The values the colour scale spans: from zero (or the least value when
    /// some are negative) to the largest.
    fn range(&self) -> (f64, f64) {
        let finite = || self.values.iter().flatten().copied().filter(|v| v.is_finite());
        let lo = finite().fold(0.0, f64::min);
        let hi = finite().fold(lo, f64::max);
        axis::widen(lo, hi, false)
    }

    fn names(given: &[String], n: usize) -> Vec<String> {
        if given.is_empty() { (0..n).map(|i| i.to_string()).collect() } else { given.to_vec() }
    }

    /// Horizontal and vertical pixels taken by everything but the cells, for
    /// cells of side `cell`.
    fn margins(&self, cell: i32) -> (i32, i32) {
        let nr = self.values.len();
        let nc = self.values.first().map_or(0, Vec::len);
        let rows = Self::names(&self.rows, nr);
        let cols = Self::names(&self.cols, nc);
        let desc = |s: &str| if s.is_empty() { 0 } else { font::height(LABEL) + GAP };
        let row_w =
            rows.iter().map(|r| font::fit(r, TICK, MIN_TEXT, ACROSS_CAP).0).map(|r| font::width(&r, TICK)).max();
        let (lo, hi) = self.range();
        let bar_labels: Vec<String> = self.bar_ticks(lo, hi, 300).major.into_iter().map(|t| t.label).collect();
        let bar_w = BAR_GAP + BAR_W + 7 + font::max_width(&bar_labels, TICK);
        let left = EDGE + desc(&self.y_label) + row_w.unwrap_or(0) + GAP;
        let widest = font::max_width(&cols, TICK);
        let col_h = if widest > cell - 6 { widest.min(UPRIGHT_CAP) } else { font::height(TICK) };
        (left + bar_w + EDGE, EDGE + GAP + col_h + desc(&self.x_label) + EDGE)
    }

    /// Square cells as large as fit, the block centred in the canvas.
    fn layout(&self, (w, h): (i32, i32), lo: f64, hi: f64) -> Result<Layout> {
        let (nr, nc) = (self.values.len() as i32, self.values[0].len() as i32);
        // First with the column names across; if the cells come out too
        // narrow for that, again with them upright.
        let fit = |cell: i32| {
            let (mx, my) = self.margins(cell);
            ((w - mx) / nc).min((h - my) / nr)
        };
        let across = fit(i32::MAX / 4);
        let cell = across.min(fit(across));
        let (mx, my) = self.margins(cell);
        ensure!(cell >= 4, "heatmap: a figure of {w}x{h} pixels is too small for {nr}x{nc} cells and their labels");
        let desc = |s: &str| if s.is_empty() { 0 } else { font::height(LABEL) + GAP };
        let rows: Vec<String> =
            Self::names(&self.rows, nr as usize).iter().map(|r| font::fit(r, TICK, MIN_TEXT, ACROSS_CAP).0).collect();
        let left = EDGE + desc(&self.y_label) + font::max_width(&rows, TICK) + GAP;
        let cols_raw = Self::names(&self.cols, nc as usize);
        let cols_upward = font::max_width(&cols_raw, TICK) > cell - 6;
        let col_max = if cols_upward { UPRIGHT_CAP } else { cell - 2 };
        let cols = cols_raw.iter().map(|c| font::fit(c, TICK, TICK, col_max).0).collect();
        let x0 = left + (w - mx - cell * nc) / 2;
        let y0 = EDGE + (h - my - cell * nr) / 2;
        let bar_ticks = self.bar_ticks(lo, hi, cell * nr);
        let x_label = font::fit(&self.x_label, LABEL, MIN_TEXT, w - 2 * EDGE);
        let y_label = font::fit(&self.y_label, LABEL, MIN_TEXT, h - 2 * EDGE);
        Ok(Layout { x0, y0, cell, rows, cols, cols_upward, x_label, y_label, bar_ticks })
    }

    /// How values are written in their cells: as percentages, as whole
    /// numbers when all are (counts), else to three significant digits.
    fn formatter(&self) -> fn(f64) -> String {
        let integral = self.values.iter().flatten().all(|v| !v.is_finite() || (v.fract() == 0.0 && v.abs() < 1e7));
        if self.percent {
            |v| format!("{:.1}%", v * 100.0).replace('-', "−")
        } else if integral {
            |v| format!("{v:.0}").replace('-', "−")
        } else {
            axis::significant
        }
    }

    fn draw_labels<DB: DrawingBackend>(&self, canvas: &Canvas<DB>, l: &Layout) -> Result<()> {
        let (nr, nc) = (l.rows.len() as i32, l.cols.len() as i32);
        for (r, name) in l.rows.iter().enumerate() {
            let y = l.y0 + r as i32 * l.cell + l.cell / 2;
            canvas.text(name, (l.x0 - GAP, y), &TextSpec::new(TICK).anchor(HPos::Right, VPos::Center))?;
        }
        let below = l.y0 + nr * l.cell + GAP;
        for (c, name) in l.cols.iter().enumerate() {
            let x = l.x0 + c as i32 * l.cell + l.cell / 2;
            let spec = TextSpec::new(TICK);
            let spec = if l.cols_upward { spec.upward().anchor(HPos::Right, VPos::Center) } else { spec };
            canvas.text(name, (x, below), &spec)?;
        }
        let (_, h) = canvas.size();
        let (text, size) = &l.x_label;
        let spec = TextSpec::new(*size).anchor(HPos::Center, VPos::Bottom);
        canvas.text(text, (l.x0 + nc * l.cell / 2, h - EDGE), &spec)?;
        let (text, size) = &l.y_label;
        let spec = TextSpec::new(*size).upward().anchor(HPos::Center, VPos::Top);
        let x = l.x0 - GAP - font::max_width(&l.rows, TICK) - GAP - font::height(LABEL);
        canvas.text(text, (x.max(EDGE), l.y0 + nr * l.cell / 2), &spec)
    }

    /// Ticks of the colour bar, in percent when the values are fractions.
    fn bar_ticks(&self, lo: f64, hi: f64, length: i32) -> Ticks {
        let k = if self.percent { 100.0 } else { 1.0 };
        let scale = Scale { lo: lo * k, hi: hi * k, log: false, integer: false };
        let mut ticks = axis::fitted_at_most(&scale, length, |_| font::height(TICK), font::height(TICK) / 2, 6);
        for t in &mut ticks.major {
            t.value /= k;
            if self.percent {
                t.label.push('%');
            }
        }
        ticks
    }

    /// The colour bar right of the cells: `hi` (darkest) at the top, `lo` at
    /// the bottom, with ticks.
    fn draw_bar<DB: DrawingBackend>(&self, canvas: &Canvas<DB>, l: &Layout, (lo, hi): (f64, f64)) -> Result<()> {
        let x = l.x0 + l.cols.len() as i32 * l.cell + BAR_GAP;
        let (top, len) = (l.y0, l.cell * l.rows.len() as i32 - 1);
        for i in 0..len {
            let t = 1.0 - f64::from(i) / f64::from((len - 1).max(1));
            canvas.fill((x, top + i), (x + BAR_W, top + i + 1), blues(t))?;
        }
        canvas.outline((x, top), (x + BAR_W, top + len), AXIS)?;
        for t in &l.bar_ticks.major {
            let y = top + len - 1 - ((t.value - lo) / (hi - lo) * f64::from(len - 1)).round() as i32;
            canvas.line(vec![(x + BAR_W, y), (x + BAR_W + 4, y)], AXIS, 1)?;
            let spec = TextSpec::new(TICK).anchor(HPos::Left, VPos::Center);
            canvas.text(&t.label, (x + BAR_W + 7, y), &spec)?;
        }
        Ok(())
    }
}

/// The cell at row `r`, column `c`: its colour and its number, or empty.
fn draw_cell<DB: DrawingBackend>(
    canvas: &Canvas<DB>,
    l: &Layout,
    (r, c): (usize, usize),
    content: Option<(RGBColor, String)>,
) -> Result<()> {
    let (x, y) = (l.x0 + c as i32 * l.cell, l.y0 + r as i32 * l.cell);
    // Cells stand a pixel apart, where they are large enough.
    let inner = if l.cell >= 10 { l.cell - 1 } else { l.cell };
    let Some((color, text)) = content else {
        return canvas.fill((x, y), (x + inner, y + inner), EMPTY);
    };
    canvas.fill((x, y), (x + inner, y + inner), color)?;
    let size = (f64::from(l.cell) * 0.3).min(CAPTION + 2.0);
    let (text, size) = font::fit(&text, size, 8.0, inner - 4);
    if size < 8.0 || font::width(&text, size) > inner - 2 {
        return Ok(());
    }
    let spec = TextSpec::new(size).color(contrasting(color)).anchor(HPos::Center, VPos::Center);
    canvas.text(&text, (x + inner / 2, y + inner / 2), &spec)
}

/// The longest a row name may be.
const ACROSS_CAP: i32 = 320;

/// The longest an upright column name may be.
const UPRIGHT_CAP: i32 = 220;

/// ColorBrewer's sequential "Blues": white for nothing, dark blue for most,
/// and it prints well in greyscale.
const BLUES: [(u8, u8, u8); 9] = [
    (247, 251, 255),
    (222, 235, 247),
    (198, 219, 239),
    (158, 202, 225),
    (107, 174, 214),
    (66, 146, 198),
    (33, 113, 181),
    (8, 81, 156),
    (8, 48, 107),
];

/// The colour at `t` in 0..1 on the Blues scale.
fn blues(t: f64) -> RGBColor {
    let x = t.clamp(0.0, 1.0) * (BLUES.len() - 1) as f64;
    let i = (x.floor() as usize).min(BLUES.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    let (a, b) = (BLUES[i], BLUES[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// White on dark cells, ink on light ones.
fn contrasting(c: RGBColor) -> RGBColor {
    let luma = 0.2126 * f64::from(c.0) + 0.7152 * f64::from(c.1) + 0.0722 * f64::from(c.2);
    if luma < 140.0 { RGBColor(255, 255, 255) } else { INK }
}
