//! The one font every figure uses, embedded so that a figure looks the same
//! on every machine and in every notebook, and text measurement with it.
//!
//! plotters keeps its fonts in a process-wide table. In evcxr every notebook
//! cell links its own copy of this crate, so a font registered by one cell is
//! not seen by the next: [`register`] is therefore called at the start of
//! every rendering (and of every layout computation), never once globally.

use anyhow::{Result, anyhow};
use plotters::style::{FontDesc, FontFamily, FontStyle, register_font};

/// DejaVu Sans: wide Unicode coverage (×, −, superscripts, Greek letters)
/// under a free licence (assets/fonts/DejaVu-LICENSE).
const DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Makes the embedded font plotters' "sans-serif". Cheap: it parses only the
/// font's table directory.
pub(crate) fn register() -> Result<()> {
    register_font("sans-serif", FontStyle::Normal, DEJAVU_SANS)
        .map_err(|_| anyhow!("the embedded font DejaVuSans.ttf could not be parsed"))
}

/// The font at `size` pixels (plotters' size: the line height, not the em).
pub(crate) fn at(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::SansSerif, size, FontStyle::Normal)
}

/// Width in pixels of `text` at `size`; the same estimate both backends use
/// to place text, so layouts computed from it match what is drawn.
pub(crate) fn width(text: &str, size: f64) -> i32 {
    at(size).box_size(text).map(|(w, _)| w as i32).unwrap_or(0)
}

/// Height in pixels of one line of text at `size`.
pub(crate) fn height(size: f64) -> i32 {
    (size / 1.24).ceil() as i32
}

/// The widest of `texts` at `size`, 0 when there are none.
pub(crate) fn max_width<S: AsRef<str>>(texts: &[S], size: f64) -> i32 {
    texts.iter().map(|t| width(t.as_ref(), size)).max().unwrap_or(0)
}

/// `text` made to fit `max_width` pixels: first by shrinking the font down
/// to `min_size`, then by cutting the end off with an ellipsis, so a long
/// label is still shown whole where possible and never spills over others.
pub(crate) fn fit(text: &str, size: f64, min_size: f64, max_width: i32) -> (String, f64) {
    let full = width(text, size);
    if full <= max_width {
        return (text.to_string(), size);
    }
    let shrunk = (size * f64::from(max_width) / f64::from(full.max(1))).max(min_size).min(size);
    if width(text, shrunk) <= max_width {
        return (text.to_string(), shrunk);
    }
    (truncate(text, shrunk, max_width), shrunk)
}

/// The longest prefix of `text` that, followed by "…", fits `max_width`.
fn truncate(text: &str, size: f64, max_width: i32) -> String {
    let chars: Vec<char> = text.chars().collect();
    let (mut lo, mut hi) = (0, chars.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let candidate: String = chars[..mid].iter().chain(['…'].iter()).collect();
        if width(&candidate, size) <= max_width { lo = mid } else { hi = mid - 1 }
    }
    chars[..lo].iter().chain(['…'].iter()).collect()
}
