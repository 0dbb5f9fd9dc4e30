//! The drawing primitives every plot kind uses, over either backend.
//!
//! The plot kinds lay out their figures themselves (see `chart.rs`) rather
//! than through plotters' chart builder, so that tick labels can be measured
//! before they are placed and nothing overlaps or gets cut off; this module
//! is the thin layer they draw through.

use std::cell::RefCell;
use std::rc::Rc;

use anyhow::{Result, anyhow};
use image::RgbImage;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontTransform, RGBColor};

use super::font;

/// Turns plotters' drawing errors into anyhow errors.
pub(crate) trait Drawn<T> {
    fn drawn(self) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync> Drawn<T> for Result<T, DrawingAreaErrorKind<E>> {
    fn drawn(self) -> Result<T> {
        self.map_err(|e| anyhow!("drawing the figure failed: {e}"))
    }
}

/// How a piece of text is drawn: size, colour, which point of its box the
/// given position is, and whether it reads upwards (rotated a quarter turn).
#[derive(Clone, Copy)]
pub(crate) struct TextSpec {
    pub size: f64,
    pub color: RGBColor,
    pub h: HPos,
    pub v: VPos,
    pub upward: bool,
}

impl TextSpec {
    /// Text at `size` in the ink colour, anchored at its top centre.
    pub fn new(size: f64) -> TextSpec {
        TextSpec { size, color: super::INK, h: HPos::Center, v: VPos::Top, upward: false }
    }

    pub fn anchor(self, h: HPos, v: VPos) -> TextSpec {
        TextSpec { h, v, ..self }
    }

    pub fn color(self, color: RGBColor) -> TextSpec {
        TextSpec { color, ..self }
    }

    pub fn upward(self) -> TextSpec {
        TextSpec { upward: true, ..self }
    }
}

/// Marker shapes, one per series, so that series stay apart in greyscale.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
}

impl Marker {
    /// The marker of the `i`-th series.
    pub fn nth(i: usize) -> Marker {
        [Marker::Circle, Marker::Square, Marker::Triangle, Marker::Diamond][i % 4]
    }
}

/// A drawing area (the figure below its title) and how its backend places
/// text. Callers work in figure pixels; the canvas multiplies them by its
/// `k`, the factor the backend's pixels are finer than the figure's (the PNG
/// is drawn at k = 2 and then averaged down: plotters' raster text places
/// glyphs to the whole pixel, so at k = 1 letter spacing looks uneven).
pub(crate) struct Canvas<DB: DrawingBackend> {
    area: DrawingArea<DB, Shift>,
    k: i32,
    /// Fraction of the font size that text is moved down by. plotters' raster
    /// text sits higher in its box than the SVG text a browser draws; this
    /// puts the PNG's baselines where the SVG's are.
    text_drop: f64,
    /// On an SVG, the pictures too large to draw as rectangles, which the
    /// figure embeds once plotters has drawn the rest (see [`Canvas::picture`]).
    embedded: Option<Rc<RefCell<Vec<Embedded>>>>,
}

/// A picture embedded in an SVG as a PNG: where it goes, in the document's
/// pixels, and how large it is drawn.
pub(crate) struct Embedded {
    pub at: (i32, i32),
    pub size: (i32, i32),
    pub image: RgbImage,
}

/// Pictures of up to this many pixels (MNIST's and CIFAR's) are drawn as
/// rectangles, also in an SVG, where they stay pixel-exact vectors; larger
/// ones would take a rectangle for nearly every pixel, so an SVG embeds them
/// as a PNG each.
const RECTANGLES_MAX: u32 = 32 * 32;

impl<DB: DrawingBackend> Canvas<DB> {
    /// A canvas on `area`, whose pixels are `k` times finer than the
    /// figure's; raster backends get their text moved to match SVG's.
    pub fn new(area: DrawingArea<DB, Shift>, k: i32, raster: bool) -> Canvas<DB> {
        let embedded = (!raster).then(Rc::default);
        Canvas { area, k: k.max(1), text_drop: if raster { 0.11 } else { 0.0 }, embedded }
    }

    /// The pictures this canvas (or one below it) left to embed.
    pub fn take_embedded(&self) -> Vec<Embedded> {
        self.embedded.as_ref().map(|e| e.take()).unwrap_or_default()
    }

    /// Width and height in figure pixels.
    pub fn size(&self) -> (i32, i32) {
        let (w, h) = self.area.dim_in_pixel();
        (w as i32 / self.k, h as i32 / self.k)
    }

    /// The part of this canvas below its first `top` pixels.
    pub fn below(&self, top: i32) -> Canvas<DB> {
        let (_, h) = self.size();
        let (_, rest) = self.area.split_vertically(top.clamp(0, h) * self.k);
        Canvas { area: rest, k: self.k, text_drop: self.text_drop, embedded: self.embedded.clone() }
    }

    fn dev(&self, (x, y): (i32, i32)) -> (i32, i32) {
        (x * self.k, y * self.k)
    }

    pub fn text(&self, text: &str, pos: (i32, i32), spec: &TextSpec) -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let size = spec.size * f64::from(self.k);
        let transform = if spec.upward { FontTransform::Rotate270 } else { FontTransform::None };
        let (dx, dy) = transform.transform(0, (self.text_drop * size).round() as i32);
        let style = font::at(size).color(&spec.color).pos(Pos::new(spec.h, spec.v)).transform(transform);
        let (x, y) = self.dev(pos);
        self.area.draw_text(text, &style, (x + dx, y + dy)).drawn()
    }

    /// Fills the pixels x0..x1, y0..y1 (ends excluded).
    pub fn fill(&self, p0: (i32, i32), p1: (i32, i32), color: RGBColor) -> Result<()> {
        if p1.0 <= p0.0 || p1.1 <= p0.1 {
            return Ok(());
        }
        self.area.draw(&Rectangle::new([self.dev(p0), self.dev(p1)], color.filled())).drawn()
    }

    /// `image`'s pixels as s x s blocks from (x, y); a run of equal pixels
    /// in a row is one rectangle, which keeps an SVG of small images small.
    /// Large images on an SVG are embedded as a PNG instead.
    pub fn picture(&self, image: &RgbImage, (x, y): (i32, i32), s: i32) -> Result<()> {
        if let Some(embedded) = &self.embedded
            && image.width() * image.height() > RECTANGLES_MAX
        {
            let (bx, by) = self.area.get_base_pixel();
            let (dx, dy) = self.dev((x, y));
            let size = (image.width() as i32 * s * self.k, image.height() as i32 * s * self.k);
            embedded.borrow_mut().push(Embedded { at: (bx + dx, by + dy), size, image: image.clone() });
            return Ok(());
        }
        for (r, row) in image.rows().enumerate() {
            let colors: Vec<RGBColor> = row.map(|p| RGBColor(p[0], p[1], p[2])).collect();
            let mut start = 0;
            while start < colors.len() {
                let end = (start..colors.len()).find(|&j| colors[j] != colors[start]).unwrap_or(colors.len());
                let top = y + r as i32 * s;
                self.fill((x + start as i32 * s, top), (x + end as i32 * s, top + s), colors[start])?;
                start = end;
            }
        }
        Ok(())
    }

    /// A one-pixel outline just inside x0..x1, y0..y1.
    pub fn outline(&self, (x0, y0): (i32, i32), (x1, y1): (i32, i32), color: RGBColor) -> Result<()> {
        self.fill((x0, y0), (x1, y0 + 1), color)?;
        self.fill((x0, y1 - 1), (x1, y1), color)?;
        self.fill((x0, y0), (x0 + 1, y1), color)?;
        self.fill((x1 - 1, y0), (x1, y1), color)
    }

    /// A line through `points`, `width` pixels wide. A horizontal or vertical
    /// segment covers whole pixels: from (x, y) it takes pixel column x or
    /// row y, so that axes and grid lines are crisp.
    pub fn line(&self, points: Vec<(i32, i32)>, color: RGBColor, width: u32) -> Result<()> {
        let w = width as i32;
        match points[..] {
            [] | [_] => Ok(()),
            [(x0, y0), (x1, y1)] if x0 == x1 => self.fill((x0, y0.min(y1)), (x0 + w, y0.max(y1) + 1), color),
            [(x0, y0), (x1, y1)] if y0 == y1 => self.fill((x0.min(x1), y0), (x0.max(x1) + 1, y0 + w), color),
            _ => {
                let points: Vec<(i32, i32)> = points.into_iter().map(|p| self.dev(p)).collect();
                self.area.draw(&PathElement::new(points, color.stroke_width(width * self.k as u32))).drawn()
            }
        }
    }

    /// A filled marker of about `r` pixels' radius centred on `(x, y)`.
    pub fn marker(&self, marker: Marker, center: (i32, i32), r: i32, color: RGBColor) -> Result<()> {
        let (x, y) = self.dev(center);
        let r = r * self.k;
        let style = color.filled();
        let scaled = |f: f64| (f64::from(r) * f).round() as i32;
        match marker {
            Marker::Circle => self.area.draw(&Circle::new((x, y), r as u32, style)).drawn(),
            Marker::Square => {
                let s = scaled(0.85);
                self.area.draw(&Rectangle::new([(x - s, y - s), (x + s, y + s)], style)).drawn()
            }
            Marker::Triangle => {
                let (h, w) = (scaled(1.2), scaled(1.15));
                self.area
                    .draw(&Polygon::new(vec![(x, y - h), (x + w, y + scaled(0.8)), (x - w, y + scaled(0.8))], style))
                    .drawn()
            }
            Marker::Diamond => {
                let d = scaled(1.25);
                self.area.draw(&Polygon::new(vec![(x, y - d), (x + d, y), (x, y + d), (x - d, y)], style)).drawn()
            }
        }
    }
}
