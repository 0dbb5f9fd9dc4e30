//! Image grids: digits or photos with captions, e.g. originals, their
//! adversarial versions and the magnified differences, one row each.
//!
//! Pixels are drawn whole: each image pixel becomes an s x s block for an
//! integer magnification s (3 for MNIST at the default size), so that what
//! a reader sees is exactly the image, not a resampling of it. Only images
//! larger than [`SHOWN`] pixels are resampled, by area averaging, so that a
//! grid of ImageNet-sized images stays a readable figure and a small file.

use anyhow::{Result, bail, ensure};
use image::RgbImage;
use ndarray::Array3;
use plotters::prelude::DrawingBackend;
use plotters::style::RGBColor;
use plotters::style::text_anchor::{HPos, VPos};

use super::canvas::{Canvas, TextSpec};
use super::{ALERT, CAPTION, MIN_TEXT, TICK, font};

/// Images in a grid of `cols` columns, filled row by row.
///
/// Each image is `[C, H, W]`: one channel is drawn in grey, three as red,
/// green and blue. Each value is mapped through `range`, every channel
/// alike: `range.0` is none of it (black), `range.1` all (white), values
/// outside are clamped (so `(-m, m)` shows differences with 0 as mid-grey;
/// a reversed range inverts). A pixel with a NaN is drawn magenta. `captions` go under the images and `alerts` turn a
/// caption red (or, without captions, frame the image in red);
/// `row_labels` go left of the rows and `col_labels` above the columns.
/// Each of these is either empty or has one entry per image, row or column.
#[derive(Clone, Debug)]
pub struct Grid {
    pub images: Vec<Array3<f32>>,
    pub cols: usize,
    pub range: (f32, f32),
    pub captions: Vec<String>,
    pub alerts: Vec<bool>,
    pub row_labels: Vec<String>,
    pub col_labels: Vec<String>,
}

impl Default for Grid {
    /// No images yet, 10 columns, values in [0, 1] (MNIST pixels).
    fn default() -> Grid {
        Grid {
            images: Vec::new(),
            cols: 10,
            range: (0.0, 1.0),
            captions: Vec::new(),
            alerts: Vec::new(),
            row_labels: Vec::new(),
            col_labels: Vec::new(),
        }
    }
}

const EDGE: i32 = 12;
/// Space between neighbouring cells.
const GAP: i32 = 10;
/// Side in pixels an image is magnified to at the default size (3 x 28).
const TARGET: f64 = 84.0;
const NAN: [u8; 3] = [255, 0, 255];
/// The longest side an image is shown at before magnification; larger ones
/// (ImageNet's 224 x 224) are area-averaged down to it.
pub const SHOWN: usize = 112;
const FRAME: RGBColor = RGBColor(150, 150, 150);
/// The longest a row label may be; longer ones are shrunk or shortened.
const ROW_LABEL_MAX: i32 = 320;

/// Where everything goes at one magnification.
struct Layout {
    scale: i32,
    /// Pixels from one cell to the next, across and down.
    pitch: (i32, i32),
    /// The largest image's size in pixels, after magnification.
    image: (i32, i32),
    row_band: i32,
    col_band: i32,
    caption_band: i32,
    size: (i64, i64),
}

impl Grid {
    pub(crate) fn default_size(&self) -> (u32, u32) {
        let (h, w) = self.largest();
        let scale = (TARGET / h.max(w).max(1) as f64).round().max(1.0) as i32;
        let l = self.layout_at(scale);
        let side = |v: i64| (v + 2 * i64::from(EDGE)).clamp(64, i64::from(u32::MAX)) as u32;
        (side(l.size.0), side(l.size.1))
    }

    pub(crate) fn draw<DB: DrawingBackend>(&self, canvas: &Canvas<DB>) -> Result<()> {
        self.check()?;
        let (w, h) = canvas.size();
        let fits = |l: &Layout| l.size.0 <= i64::from(w - 2 * EDGE) && l.size.1 <= i64::from(h - 2 * EDGE);
        let Some(l) = (1..=64).rev().map(|s| self.layout_at(s)).find(fits) else {
            bail!("grid: a figure of {w}x{h} pixels is too small for {} images and their labels", self.images.len());
        };
        let origin = ((i64::from(w) - l.size.0) as i32 / 2, (i64::from(h) - l.size.1) as i32 / 2);
        self.draw_labels(canvas, &l, origin)?;
        for i in 0..self.images.len() {
            self.draw_cell(canvas, &l, origin, i)?;
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        let n = self.images.len();
        ensure!(n > 0, "grid: no images");
        ensure!(self.cols > 0, "grid: cols must be at least 1");
        if let Some((i, im)) = self.images.iter().enumerate().find(|(_, im)| im.is_empty()) {
            let (c, h, w) = im.dim();
            bail!("grid: image {i} is empty ({c} channels of {h}x{w})");
        }
        if let Some((i, im)) = self.images.iter().enumerate().find(|(_, im)| ![1, 3].contains(&im.dim().0)) {
            bail!("grid: image {i} has {} channels; grids draw 1 (grey) or 3 (red, green, blue)", im.dim().0);
        }
        let (lo, hi) = self.range;
        ensure!(
            lo.is_finite() && hi.is_finite() && lo != hi,
            "grid: range ({lo}, {hi}) must be two different finite values"
        );
        let counts = [("captions", self.captions.len(), n), ("alerts", self.alerts.len(), n)];
        let labels =
            [("row labels", self.row_labels.len(), self.rows()), ("column labels", self.col_labels.len(), self.cols)];
        for (what, have, want) in counts.into_iter().chain(labels) {
            ensure!(have == 0 || have == want, "grid: {have} {what} for {want} (give one each, or none)");
        }
        Ok(())
    }

    fn rows(&self) -> usize {
        self.images.len().div_ceil(self.cols.max(1))
    }

    /// Columns that take room: all of them with column labels, else no
    /// more than there are images (a lone short row needs no empty cells).
    fn used_cols(&self) -> usize {
        if self.col_labels.is_empty() { self.cols.min(self.images.len()) } else { self.cols }
    }

    /// The largest height and width among the images as shown.
    fn largest(&self) -> (usize, usize) {
        self.images.iter().map(shown_size).fold((0, 0), |(h, w), (ih, iw)| (h.max(ih), w.max(iw)))
    }

    /// The layout at magnification `scale`.
    /// A cell is as wide as its image, or as its widest caption or column
    /// label up to twice that, so that labels of neighbours do not touch.
    fn layout_at(&self, scale: i32) -> Layout {
        let (h, w) = self.largest();
        let image = ((w as i32).saturating_mul(scale), (h as i32).saturating_mul(scale));
        let text_w = font::max_width(&self.captions, CAPTION).max(font::max_width(&self.col_labels, TICK));
        let pitch = (image.0.max(text_w.min(2 * image.0)) + GAP, image.1 + GAP);
        let caption_band = if self.captions.is_empty() { 0 } else { 4 + font::height(CAPTION) };
        let pitch = (pitch.0, pitch.1 + caption_band);
        let row_w = self.row_labels.iter().map(|r| font::width(&font::fit(r, TICK, MIN_TEXT, ROW_LABEL_MAX).0, TICK));
        let row_band = row_w.max().map_or(0, |w| w + 12);
        let col_band = if self.col_labels.is_empty() { 0 } else { font::height(TICK) + 8 };
        let (rows, cols) = (self.rows() as i64, self.used_cols() as i64);
        let size = (
            i64::from(row_band) + cols * i64::from(pitch.0) - i64::from(GAP),
            i64::from(col_band) + rows * i64::from(pitch.1) - i64::from(GAP),
        );
        Layout { scale, pitch, image, row_band, col_band, caption_band, size }
    }

    fn draw_labels<DB: DrawingBackend>(&self, canvas: &Canvas<DB>, l: &Layout, (x0, y0): (i32, i32)) -> Result<()> {
        for (r, label) in self.row_labels.iter().enumerate() {
            let (label, size) = font::fit(label, TICK, MIN_TEXT, ROW_LABEL_MAX);
            let y = y0 + l.col_band + r as i32 * l.pitch.1 + l.image.1 / 2;
            canvas.text(&label, (x0 + l.row_band - 12, y), &TextSpec::new(size).anchor(HPos::Right, VPos::Center))?;
        }
        for (c, label) in self.col_labels.iter().enumerate() {
            let (label, size) = font::fit(label, TICK, MIN_TEXT, l.pitch.0 - 4);
            let x = x0 + l.row_band + c as i32 * l.pitch.0 + (l.pitch.0 - GAP) / 2;
            canvas.text(&label, (x, y0 + l.col_band - 8), &TextSpec::new(size).anchor(HPos::Center, VPos::Bottom))?;
        }
        Ok(())
    }

    /// Image `i`, centred in its cell and framed, and its caption.
    fn draw_cell<DB: DrawingBackend>(
        &self,
        canvas: &Canvas<DB>,
        l: &Layout,
        (x0, y0): (i32, i32),
        i: usize,
    ) -> Result<()> {
        let (r, c) = ((i / self.cols) as i32, (i % self.cols) as i32);
        let (cx, cy) = (x0 + l.row_band + c * l.pitch.0, y0 + l.col_band + r * l.pitch.1);
        let cell_w = l.pitch.0 - GAP;
        let im = self.colours(&self.images[i]);
        let size = (im.width() as i32 * l.scale, im.height() as i32 * l.scale);
        let (ix, iy) = (cx + (cell_w - size.0) / 2, cy + (l.image.1 - size.1) / 2);
        let alert = self.alerts.get(i).copied().unwrap_or(false);
        let frame = if alert && self.captions.is_empty() { ALERT } else { FRAME };
        canvas.outline((ix - 1, iy - 1), (ix + size.0 + 1, iy + size.1 + 1), frame)?;
        if alert && self.captions.is_empty() {
            canvas.outline((ix - 2, iy - 2), (ix + size.0 + 2, iy + size.1 + 2), frame)?;
        }
        canvas.picture(&im, (ix, iy), l.scale)?;
        if let Some(caption) = self.captions.get(i) {
            let (caption, size) = font::fit(caption, CAPTION, MIN_TEXT, l.pitch.0 - 4);
            let spec = TextSpec::new(size).color(if alert { ALERT } else { super::INK });
            canvas.text(&caption, (cx + cell_w / 2, cy + l.image.1 + l.caption_band - font::height(CAPTION)), &spec)?;
        }
        Ok(())
    }

    /// The image's colours through `range`, area-averaged down to at most
    /// [`SHOWN`] pixels a side.
    fn colours(&self, im: &Array3<f32>) -> RgbImage {
        let (c, h, w) = im.dim();
        let full = RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let v = |channel: usize| im[[channel.min(c - 1), y as usize, x as usize]];
            let values = [v(0), v(1), v(2)];
            image::Rgb(if values.iter().any(|v| v.is_nan()) { NAN } else { values.map(|v| self.level(v)) })
        });
        let (sh, sw) = shown_size(im);
        if (sh, sw) == (h, w) { full } else { image::imageops::thumbnail(&full, sw as u32, sh as u32) }
    }

    /// The level 0..255 a value maps to through `range`.
    fn level(&self, v: f32) -> u8 {
        let (lo, hi) = self.range;
        (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// Height and width of an image `[C, H, W]` as shown: the longer side at
/// most [`SHOWN`], the aspect kept.
fn shown_size(im: &Array3<f32>) -> (usize, usize) {
    let (_, h, w) = im.dim();
    let longer = h.max(w);
    if longer <= SHOWN {
        return (h, w);
    }
    let shrink = |side: usize| ((side * SHOWN + longer / 2) / longer).max(1);
    (shrink(h), shrink(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_images_keep_their_channels_and_grey_ones_repeat_theirs() {
        let grid = Grid::default();
        let rgb = Array3::from_shape_fn((3, 1, 2), |(c, _, x)| [0.0, 0.5, 1.0][c] * x as f32);
        assert_eq!(grid.colours(&rgb).get_pixel(1, 0).0, [0, 128, 255]);
        let grey = Array3::from_elem((1, 1, 1), 0.2);
        assert_eq!(grid.colours(&grey).get_pixel(0, 0).0, [51, 51, 51]);
        let nan = Array3::from_shape_fn((3, 1, 1), |(c, ..)| if c == 1 { f32::NAN } else { 0.0 });
        assert_eq!(grid.colours(&nan).get_pixel(0, 0).0, NAN);
    }

    #[test]
    fn large_images_are_area_averaged_to_the_shown_size_keeping_their_aspect() {
        let stripes = Array3::from_shape_fn((1, 224, 448), |(_, _, x)| (x % 2) as f32);
        let shown = Grid::default().colours(&stripes);
        assert_eq!(shown.dimensions(), (SHOWN as u32, SHOWN as u32 / 2));
        assert!(shown.pixels().all(|p| p.0 == [128; 3]), "black and white stripes average to grey");
        assert_eq!(shown_size(&Array3::zeros((3, 32, 32))), (32, 32), "CIFAR's images are drawn as they are");
    }
}
