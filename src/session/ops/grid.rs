//! `grid(IMAGES, cols: 8, labels: ...)`: images in a grid with captions and
//! row and column labels. A list of sets draws one row per set, e.g.
//! `grid([test, adv, 10 * (adv - test)])`. Grey and colour images of any
//! size (see `plot::Grid`); classes are captioned by name where the set has
//! class names.

use std::sync::Arc;

use anyhow::{Result, bail};
use ndarray::Array3;

use super::{Args, Operation, Param};
use crate::plot::{Figure, Grid, Plot};
use crate::session::Context;
use crate::session::value::{ImageSet, Value};
use crate::data::Label;

pub const OP: Operation = Operation {
    name: "grid",
    summary: "an image grid with captions and row and column labels",
    usage: "grid(IMAGES or [IMAGES, ...], cols: N, labels: LIST, row_labels: LIST, col_labels: LIST, title: TEXT)",
    params: &[
        Param {
            name: "images",
            positional: true,
            required: true,
            doc: "an image set, or a list of sets (one row each)",
        },
        Param { name: "cols", positional: false, required: false, doc: "images per row (default 8)" },
        Param {
            name: "labels",
            positional: false,
            required: false,
            doc: "a caption per image, e.g. predictions (class numbers are written as the set's class names when it \
                  has them)",
        },
        Param { name: "row_labels", positional: false, required: false, doc: "a label per row" },
        Param { name: "col_labels", positional: false, required: false, doc: "a label per column" },
        Param { name: "title", positional: false, required: false, doc: "the figure's title" },
    ],
    run,
};

/// Beyond this a grid is unreadable; the user should slice the set.
const MAX_IMAGES: usize = 400;

fn run(args: &mut Args, ctx: &mut Context) -> Result<Value> {
    let (sets, rows_mode) = match args.get("images") {
        Some(Value::List(items)) => (items.iter().map(|v| as_set(v, args.op)).collect::<Result<Vec<_>>>()?, true),
        _ => (vec![args.images("images")?], false),
    };
    let total: usize = sets.iter().map(|s| s.len()).sum();
    if total == 0 {
        bail!("grid: no images to draw");
    }
    if total > MAX_IMAGES {
        bail!("grid: {total} images are too many to read (at most {MAX_IMAGES}); slice the set, e.g. test[0..64]");
    }
    let cols = match rows_mode {
        true => args.count_or("cols", sets.iter().map(|s| s.len()).max().unwrap_or(1), 1..=MAX_IMAGES)?,
        false => args.count_or("cols", total.min(8), 1..=MAX_IMAGES)?,
    };
    let given = args.labels("labels")?.unwrap_or_default();
    check_count("labels", given.len(), total)?;
    let owners: Vec<&ImageSet> = sets.iter().flat_map(|s| std::iter::repeat_n(s.as_ref(), s.len())).collect();
    let truth: Vec<Option<Label>> = sets.iter().flat_map(|s| truths(s)).collect();
    let alerts =
        given.iter().zip(&truth).map(|(c, t)| t.is_some_and(|t| c.parse::<Label>().is_ok_and(|p| p != t))).collect();
    let captions = given.iter().zip(&owners).map(|(c, set)| named(c, set)).collect();
    let default_rows = if rows_mode { sets.iter().map(|s| s.name.clone()).collect() } else { Vec::new() };
    let grid = Grid {
        images: sets.iter().map(|s| pictures(s)).collect::<Result<Vec<_>>>()?.concat(),
        cols,
        range: (0.0, 1.0),
        captions,
        alerts,
        row_labels: args.labels("row_labels")?.unwrap_or(default_rows),
        col_labels: args.labels("col_labels")?.unwrap_or_default(),
    };
    let title = args.string_or("title", &ctx.call)?;
    Ok(Value::Figure(Arc::new(Figure::new(title, Plot::Grid(grid)))))
}

fn as_set(value: &Value, op: &str) -> Result<Arc<ImageSet>> {
    match value.as_images() {
        Some(set) => Ok(set),
        None => bail!("{op}: a list of rows must hold image sets, not {}", value.kind()),
    }
}

fn check_count(what: &str, given: usize, images: usize) -> Result<()> {
    if given != 0 && given != images {
        bail!("grid: {given} {what} for {images} images");
    }
    Ok(())
}

/// A caption that is a class number, as predictions are, named by the
/// image's set when it has class names; any other caption as given.
fn named(caption: &str, set: &ImageSet) -> String {
    match caption.parse::<Label>() {
        Ok(label) => set.caption(label),
        Err(_) => caption.to_string(),
    }
}

fn truths(set: &ImageSet) -> Vec<Option<Label>> {
    match &set.labels {
        Some(labels) => labels.iter().map(|&l| Some(l)).collect(),
        None => vec![None; set.len()],
    }
}

/// Each image `[C, H, W]` in [0, 1]. Sets with values outside [0, 1]
/// (differences, magnified perturbations) are drawn with 0 as mid-grey and
/// the largest magnitude in the set as black or white: one scale for every
/// channel, so a colour difference keeps its hue (red where only red grew).
fn pictures(set: &ImageSet) -> Result<Vec<Array3<f32>>> {
    let (lo, hi) = set.images.iter().fold((0f32, 1f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let signed = lo < 0.0 || hi > 1.0;
    let scale = lo.abs().max(hi.abs()).max(f32::EPSILON);
    let pictures = set.pictures()?;
    Ok(pictures.into_iter().map(|p| if signed { p.mapv(|v| 0.5 + v / (2.0 * scale)) } else { p }).collect())
}

/// The first images of a set with their labels: what `show SET` draws.
pub fn preview(set: &ImageSet) -> Result<Figure> {
    const SHOWN: usize = 32;
    let n = set.len().min(SHOWN);
    if n == 0 {
        bail!("{} has no images to show", set.name);
    }
    let images: Vec<Array3<f32>> = pictures(set)?.into_iter().take(n).collect();
    let captions = set.labels.as_ref().map(|l| l.iter().take(n).map(|&l| set.caption(l)).collect()).unwrap_or_default();
    let title = match set.len() > n {
        true => format!("{} (first {n} of {})", set.name, set.len()),
        false => set.name.clone(),
    };
    let grid = Grid {
        images,
        cols: n.min(8),
        range: (0.0, 1.0),
        captions,
        alerts: Vec::new(),
        row_labels: Vec::new(),
        col_labels: Vec::new(),
    };
    Ok(Figure::new(title, Plot::Grid(grid)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn differences_share_one_scale_over_the_channels_so_a_red_change_stays_red() {
        let mut d = Array4::<f32>::zeros((2, 3, 2, 2));
        d[[0, 0, 0, 0]] = 2.0;
        d[[1, 2, 1, 1]] = -1.0;
        let shown = pictures(&ImageSet::new("d", d, None)).unwrap();
        assert_eq!([0, 1, 2].map(|c| shown[0][[c, 0, 0]]), [1.0, 0.5, 0.5], "+2 of red alone: full red on grey");
        assert_eq!(shown[1][[2, 1, 1]], 0.25, "-1 of blue on the same scale");
        assert_eq!(shown[1][[0, 0, 0]], 0.5, "no change is mid-grey");
    }

    #[test]
    fn numbers_are_captioned_by_class_name_and_other_captions_kept() {
        let classes: Arc<[String]> = ["cat", "dog"].map(String::from).into();
        let set = ImageSet { classes: Some(classes), ..ImageSet::new("pets", Array4::zeros((1, 3, 2, 2)), None) };
        assert_eq!([named("1", &set), named("7", &set), named("cat?", &set)], ["dog", "7", "cat?"]);
    }
}
