//! Figures for papers: image grids, histograms, line charts, grouped bars
//! and heatmaps, rendered to PNG and to SVG with plotters.
//!
//! A [`Figure`] is plain data (a title, a size in pixels and one [`Plot`]),
//! so a notebook can build one, adjust its fields and render it as often as
//! it likes. The drawing code is generic over plotters' backends, so the PNG
//! and the SVG of a figure come from the same code and look alike.
//!
//! Layout is done here rather than by plotters' chart builder: every label
//! is measured with the embedded font (see `font.rs`) before it is placed,
//! so tick labels never overlap, long labels shrink or are shortened instead
//! of being cut off, and image pixels stay whole (nearest-neighbour, integer
//! magnification; only images too large for a grid's cell are area-averaged
//! down, see `grid.rs`). Bad input (no data, NaN, mismatched lengths, a log axis
//! over non-positive values) is an error that names the problem, or is
//! skipped with a note on the figure; nothing panics on it.

mod axis;
mod bars;
mod canvas;
mod chart;
mod font;
mod grid;
mod heatmap;
mod histogram;
mod lines;

use anyhow::{Context, Result, ensure};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::RGBColor;
use plotters::style::text_anchor::{HPos, VPos};

pub use bars::Bars;
pub use grid::Grid;
pub use heatmap::Heatmap;
pub use histogram::Histogram;
pub use lines::{Lines, Series};

use canvas::{Canvas, Drawn, TextSpec};

/// A titled figure of one plot, `width` x `height` pixels (the PNG's size,
/// and the SVG's in CSS pixels).
#[derive(Clone, Debug)]
pub struct Figure {
    pub title: String,
    pub width: u32,
    pub height: u32,
    pub plot: Plot,
}

/// What a figure shows.
#[derive(Clone, Debug)]
pub enum Plot {
    Grid(Grid),
    Histogram(Histogram),
    Lines(Lines),
    Bars(Bars),
    Heatmap(Heatmap),
}

// Text sizes in pixels (plotters' font size: the line height), chosen so
// that an 800-pixel chart shrunk to a paper's column stays readable.
const TITLE: f64 = 26.0;
const LABEL: f64 = 21.0;
const TICK: f64 = 18.0;
const LEGEND: f64 = 18.0;
const CAPTION: f64 = 17.0;
/// The smallest size a long label is shrunk to before it is shortened.
const MIN_TEXT: f64 = 15.0;

const INK: RGBColor = RGBColor(25, 25, 25);
const AXIS: RGBColor = RGBColor(70, 70, 70);
const GRID: RGBColor = RGBColor(226, 226, 226);
/// Captions of images flagged in `Grid::alerts`, e.g. wrong predictions.
const ALERT: RGBColor = RGBColor(205, 30, 30);

/// Series colours (Tableau 10): distinct, colour-blind safe in the first
/// few, and of similar weight so that no series dominates.
const PALETTE: [RGBColor; 10] = [
    RGBColor(78, 121, 167),
    RGBColor(242, 142, 43),
    RGBColor(225, 87, 89),
    RGBColor(118, 183, 178),
    RGBColor(89, 161, 79),
    RGBColor(237, 201, 72),
    RGBColor(176, 122, 161),
    RGBColor(255, 157, 167),
    RGBColor(156, 117, 95),
    RGBColor(186, 176, 172),
];

/// The colour of the `i`-th series.
fn series_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Sides outside this range are refused: plotters needs room for its text,
/// and a huge figure is almost surely a mistake (and memory).
const MIN_SIDE: u32 = 32;
const MAX_SIDE: u32 = 16_384;
const MAX_PIXELS: u64 = 64 << 20;
/// PNGs up to this many pixels are drawn at twice the size (see `png`).
const SUPERSAMPLED_PIXELS: u64 = 16 << 20;

impl Figure {
    /// A figure of a size that suits its plot: an image grid as large as its
    /// images at 3x (for MNIST) plus labels, a heatmap from its cell count,
    /// other charts 800 x 500.
    pub fn new(title: impl Into<String>, plot: Plot) -> Figure {
        let title = title.into();
        let (width, height) = plot.default_size();
        let width = width.max(font::width(&title, TITLE) as u32 + 48);
        let height = height.saturating_add(title_band(&title) as u32);
        Figure { title, width, height, plot }
    }

    /// The same figure at another size.
    pub fn with_size(self, width: u32, height: u32) -> Figure {
        Figure { width, height, ..self }
    }

    /// The figure as an encoded PNG file (8-bit RGB). It is drawn at twice
    /// the size and averaged down, which smooths lines and places letters to
    /// half a pixel; image pixels stay exact, as they cover whole 2x2 blocks.
    pub fn png(&self) -> Result<Vec<u8>> {
        self.check_size()?;
        let (w, h) = (self.width, self.height);
        let k = if u64::from(w) * u64::from(h) <= SUPERSAMPLED_PIXELS { 2 } else { 1 };
        let (dw, dh) = (w * k, h * k);
        let mut fine = vec![0u8; dw as usize * dh as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut fine, (dw, dh)).into_drawing_area();
            self.render(root.clone(), k as i32, true)?;
            root.present().drawn()?;
        }
        encode_png(&downsample(&fine, (dw, dh), k), w, h)
    }

    /// The figure as an SVG document. Its text is real text in the viewer's
    /// sans-serif font, laid out with DejaVu Sans' measures.
    pub fn svg(&self) -> Result<String> {
        self.check_size()?;
        let mut svg = String::new();
        let embedded = {
            let root = SVGBackend::with_string(&mut svg, (self.width, self.height)).into_drawing_area();
            let embedded = self.render(root.clone(), 1, false)?;
            root.present().drawn()?;
            embedded
        };
        embed(&mut svg, &embedded)?;
        Ok(svg)
    }

    fn check_size(&self) -> Result<()> {
        let (w, h) = (self.width, self.height);
        ensure!(
            (MIN_SIDE..=MAX_SIDE).contains(&w) && (MIN_SIDE..=MAX_SIDE).contains(&h),
            "figure size {w}x{h}: each side must be {MIN_SIDE} to {MAX_SIDE} pixels"
        );
        ensure!(u64::from(w) * u64::from(h) <= MAX_PIXELS, "figure size {w}x{h} has too many pixels");
        Ok(())
    }

    /// Draws the white background, the title, then the plot below it; gives
    /// the pictures an SVG is to embed.
    fn render<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, Shift>,
        k: i32,
        raster: bool,
    ) -> Result<Vec<canvas::Embedded>> {
        font::register()?;
        root.fill(&WHITE).drawn()?;
        let canvas = Canvas::new(root, k, raster);
        let band = title_band(&self.title);
        if band > 0 {
            let (w, _) = canvas.size();
            let (title, size) = font::fit(&self.title, TITLE, MIN_TEXT, w - 24);
            canvas.text(&title, (w / 2, 12), &TextSpec::new(size).anchor(HPos::Center, VPos::Top))?;
        }
        let body = canvas.below(band);
        self.plot.draw(&body)?;
        Ok(canvas.take_embedded())
    }
}

/// Puts each picture into the SVG document as a PNG image element, drawn
/// with whole pixels, at the end of the document (over nothing: a grid's
/// frames and captions are beside its images).
fn embed(svg: &mut String, pictures: &[canvas::Embedded]) -> Result<()> {
    use base64::Engine;
    let Some(end) = svg.rfind("</svg>") else { return Ok(()) };
    let mut elements = String::new();
    for p in pictures {
        let (w, h) = p.image.dimensions();
        let png = encode_png(p.image.as_raw(), w, h)?;
        let data = base64::engine::general_purpose::STANDARD.encode(png);
        elements.push_str(&format!(
            "<image x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" preserveAspectRatio=\"none\" \
             style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{data}\"/>\n",
            p.at.0, p.at.1, p.size.0, p.size.1
        ));
    }
    svg.insert_str(end, &elements);
    Ok(())
}

/// Pixels the title takes at the top, 0 without a title.
fn title_band(title: &str) -> i32 {
    if title.is_empty() { 0 } else { 12 + font::height(TITLE) + 6 }
}

/// Averages each k x k block of an RGB image of `size` into one pixel.
fn downsample(fine: &[u8], (w, h): (u32, u32), k: u32) -> Vec<u8> {
    if k == 1 {
        return fine.to_vec();
    }
    let (w, h, k) = (w as usize, h as usize, k as usize);
    let (cw, ch) = (w / k, h / k);
    let mut out = vec![0u8; cw * ch * 3];
    for (i, px) in out.chunks_mut(3).enumerate() {
        let (x, y) = (i % cw * k, i / cw * k);
        for (c, v) in px.iter_mut().enumerate() {
            let sum: usize = (0..k * k).map(|j| usize::from(fine[((y + j / k) * w + x + j % k) * 3 + c])).sum();
            *v = ((sum + k * k / 2) / (k * k)) as u8;
        }
    }
    out
}

/// Encodes an RGB buffer as a PNG file.
fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("encoding the PNG")?;
    writer.write_image_data(rgb).context("encoding the PNG")?;
    writer.finish().context("encoding the PNG")?;
    Ok(out)
}

impl Plot {
    /// The size that suits the plot, without the title.
    fn default_size(&self) -> (u32, u32) {
        // Layout measures text, which needs the font; if it cannot be
        // registered, drawing reports that, so it is ignored here.
        let _ = font::register();
        match self {
            Plot::Grid(g) => g.default_size(),
            Plot::Heatmap(h) => h.default_size(),
            Plot::Histogram(_) | Plot::Lines(_) | Plot::Bars(_) => (800, 500),
        }
    }

    fn draw<DB: DrawingBackend>(&self, canvas: &Canvas<DB>) -> Result<()> {
        match self {
            Plot::Grid(g) => g.draw(canvas),
            Plot::Histogram(h) => h.draw(canvas),
            Plot::Lines(l) => l.draw(canvas),
            Plot::Bars(b) => b.draw(canvas),
            Plot::Heatmap(h) => h.draw(canvas),
        }
    }
}

impl From<Grid> for Plot {
    fn from(g: Grid) -> Plot {
        Plot::Grid(g)
    }
}

impl From<Histogram> for Plot {
    fn from(h: Histogram) -> Plot {
        Plot::Histogram(h)
    }
}

impl From<Lines> for Plot {
    fn from(l: Lines) -> Plot {
        Plot::Lines(l)
    }
}

impl From<Bars> for Plot {
    fn from(b: Bars) -> Plot {
        Plot::Bars(b)
    }
}

impl From<Heatmap> for Plot {
    fn from(h: Heatmap) -> Plot {
        Plot::Heatmap(h)
    }
}
