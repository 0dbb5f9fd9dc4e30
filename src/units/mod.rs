//! Unit analysis, Section 3 of Szegedy et al. (2014): are the units of a
//! hidden layer (the natural basis) any more meaningful than random
//! directions of the same space?
//!
//! The paper answers by looking at the images that maximise
//! `<phi(x), v>` for each direction `v`. advx shows the same images and
//! adds numbers, so that "no distinction" becomes a measured comparison:
//! for each direction, the *purity* of its top `k` images (the share of the
//! commonest label) and the *similarity* of their representations (mean
//! pairwise cosine of phi), summarised over many directions per family and
//! set against a chance level (`k` images drawn at random).
//!
//! `phi` says what phi is for a layer (a convolutional layer's channels,
//! reduced over space), `layer` computes it over a dataset, `directions`
//! makes the directions,
//! `metrics` holds the numbers, `ascent` the gradient alternative: images
//! optimised to maximise `<phi(x), v>` inside the pixel box.
//!
//! The ranking and the chance level poll [`crate::interrupt::check`]
//! between pieces of about [`WORK_PER_CHECK`] multiply-adds (tens of
//! milliseconds), so Ctrl-C stops them within a second on any layer.

pub mod ascent;
pub mod directions;
pub mod layer;
pub mod metrics;
pub mod phi;

use anyhow::{Result, bail};
use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

use crate::data::Label;

pub use directions::{Direction, Family, Natural};
pub use layer::Layer;
pub use metrics::Summary;
pub use phi::{Phi, Reduction, Spec};

/// One direction's top images and how coherent they are.
#[derive(Clone, Debug)]
pub struct Ranked {
    pub direction: Direction,
    /// Indices into the dataset, highest score first.
    pub indices: Vec<usize>,
    /// `<phi(x), v>` of those images.
    pub scores: Vec<f32>,
    /// Share of the commonest label among them; `None` without labels.
    pub purity: Option<f64>,
    /// Mean pairwise cosine similarity of their phi.
    pub similarity: f64,
}

/// The coherence of `k` images drawn at random: what a direction with no
/// meaning at all would score.
#[derive(Clone, Debug)]
pub struct Chance {
    pub purity: Vec<f64>,
    pub similarity: Vec<f64>,
}

/// Multiply-adds between two checks for Ctrl-C: tens of milliseconds.
pub const WORK_PER_CHECK: usize = 20_000_000;

/// Ranks the dataset for each direction: the `k` images with the largest
/// `<phi(x), v>` and their purity and similarity. `phi` is `[N, units]`.
/// The directions are scored a few at a time, so that Ctrl-C is heard.
pub fn rank(phi: ArrayView2<f32>, labels: Option<&[Label]>, directions: &[Direction], k: usize) -> Result<Vec<Ranked>> {
    let (n, width) = phi.dim();
    check_k(n, k)?;
    // Scoring the images, then comparing the top k pairwise.
    let per_direction = (n + k * k / 2) * width;
    let per_piece = (WORK_PER_CHECK / per_direction.max(1)).max(1);
    let mut ranked = Vec::with_capacity(directions.len());
    for piece in directions.chunks(per_piece) {
        crate::interrupt::check()?;
        let scores = phi.dot(&directions::matrix(piece, width).t());
        for (direction, column) in piece.iter().zip(scores.columns()) {
            let indices = metrics::top_k(column, k);
            let scores = indices.iter().map(|&i| column[i]).collect();
            let (purity, similarity) = coherence(phi, labels, &indices);
            ranked.push(Ranked { direction: direction.clone(), indices, scores, purity, similarity });
        }
    }
    Ok(ranked)
}

/// `draws` random sets of `k` distinct images, seeded, scored like the top
/// images of a direction.
pub fn chance(phi: ArrayView2<f32>, labels: Option<&[Label]>, k: usize, draws: usize, seed: u64) -> Result<Chance> {
    let n = phi.len_of(Axis(0));
    check_k(n, k)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Another stream than the random directions drawn from the same seed.
    rng.set_stream(1);
    let (mut purity, mut similarity) = (Vec::new(), Vec::new());
    let per_piece = (WORK_PER_CHECK / (k * k * phi.len_of(Axis(1))).max(1)).max(1);
    for draw in 0..draws {
        if draw % per_piece == 0 {
            crate::interrupt::check()?;
        }
        let indices = sample(&mut rng, n, k).into_vec();
        let (p, s) = coherence(phi, labels, &indices);
        purity.extend(p);
        similarity.push(s);
    }
    Ok(Chance { purity, similarity })
}

/// Purity and similarity of the images at `indices`.
fn coherence(phi: ArrayView2<f32>, labels: Option<&[Label]>, indices: &[usize]) -> (Option<f64>, f64) {
    let purity = labels.and_then(|l| metrics::purity(&indices.iter().map(|&i| l[i]).collect::<Vec<_>>()));
    let rows: Array2<f32> = phi.select(Axis(0), indices);
    (purity, metrics::mean_pairwise_cosine(rows.view()).unwrap_or(f64::NAN))
}

/// Similarity needs pairs, and there must be `k` images to pick.
fn check_k(images: usize, k: usize) -> Result<()> {
    if k < 2 {
        bail!("the top images must be at least 2 per direction to compare them, not {k}");
    }
    if k > images {
        bail!("cannot take the top {k} images of a set of {images}");
    }
    Ok(())
}
