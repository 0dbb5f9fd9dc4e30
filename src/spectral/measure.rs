//! A measured lower bound of a model's Lipschitz constant, to set beside
//! the product of layer bounds. Any two inputs give
//! `||f(x1) - f(x2)|| / ||x1 - x2|| ≤ L` (class scores `f`, Euclidean
//! norms), so the largest ratio found is a lower bound of `L`. Forward
//! passes only:
//!
//! 1. **Pairs of images**: all pairs of the given images when there are at
//!    most `max_pairs` of them, else `max_pairs` random pairs (seeded). One
//!    forward pass over the images; the rest is arithmetic.
//! 2. **Zooming along the best segments**: cut a segment `[x1, x2]` into
//!    four; by the triangle inequality one piece has a ratio at least the
//!    whole segment's. Keep the steepest piece and cut again. The ratio
//!    climbs towards the largest directional derivative along the segment,
//!    where the scores turn fastest (typically a class boundary). Points on
//!    a segment between images stay in the pixel box `[0, 1]`. Zooming
//!    stops at pieces [`MIN_STEP`] long, where the f32 rounding of the
//!    scores (about 1e-6 of their size) is still negligible.
//!
//! Pairs of images alone give a loose lower bound (far-apart images whose
//! scores saturate); zooming typically tightens it severalfold for the
//! price of a few small forward passes.

use anyhow::{Result, bail};
use ndarray::{Array1, Array2, Array4, ArrayView4, Axis};
use rand::{Rng, SeedableRng};

use crate::classifier::{BATCH, Classifier};

/// How many of the steepest image pairs are zoomed into.
pub const ZOOM: usize = 8;
/// How many times a zoomed segment is cut into four, at most.
pub const LEVELS: usize = 12;
/// The shortest piece zoomed into (Euclidean distance in pixel space).
pub const MIN_STEP: f64 = 1e-2;

/// What the measurement found.
#[derive(Clone, Debug, PartialEq)]
pub struct Lower {
    /// The largest ratio found, pairs and zooming together.
    pub ratio: f64,
    /// The largest ratio between two images.
    pub pairs_ratio: f64,
    /// The two images of that ratio (indices into the images given).
    pub best: (usize, usize),
    /// Pairs of images compared.
    pub pairs: usize,
    /// Images given.
    pub images: usize,
}

/// Pairs whose ratios are computed between two checks for Ctrl-C.
const PAIRS_PER_CHECK: usize = 4096;

/// Measures a lower bound on `images` with at most `max_pairs` pairs.
/// The pairs are streamed, keeping only the steepest [`ZOOM`], so their
/// number costs time, never memory.
pub fn lower_bound(classifier: &mut Classifier, images: ArrayView4<f32>, max_pairs: usize, seed: u64) -> Result<Lower> {
    let scores = class_scores(classifier, images)?;
    lower_bound_with(classifier, images, scores.view(), max_pairs, seed)
}

/// [`lower_bound`] with the images' class scores already computed (a
/// merge of shards has them from the shards).
pub fn lower_bound_with(
    classifier: &mut Classifier,
    images: ArrayView4<f32>,
    scores: ndarray::ArrayView2<f32>,
    max_pairs: usize,
    seed: u64,
) -> Result<Lower> {
    let n = images.len_of(Axis(0));
    if n < 2 {
        bail!("a measured Lipschitz ratio needs at least 2 images, got {n}");
    }
    let points = flat(images);
    let scores = scores.mapv(f64::from);
    let mut steepest = Steepest::default();
    let mut pairs = Pairs::new(n, max_pairs, seed);
    loop {
        crate::interrupt::check()?;
        let piece: Vec<(usize, usize)> = pairs.by_ref().take(PAIRS_PER_CHECK).collect();
        if piece.is_empty() {
            break;
        }
        for (i, j) in piece {
            if let Some(r) = ratio(points.row(i), points.row(j), scores.row(i), scores.row(j)) {
                steepest.offer(r, i, j);
            }
        }
    }
    let Some(&(pairs_ratio, i, j)) = steepest.best.first() else {
        bail!("all {n} images are identical, so no ratio can be measured");
    };
    let shape = images.raw_dim();
    let segments: Vec<Segment> = steepest
        .best
        .iter()
        .map(|&(r, i, j)| Segment {
            ends: [points.row(i).to_owned(), points.row(j).to_owned()],
            scores: [scores.row(i).to_owned(), scores.row(j).to_owned()],
            ratio: r,
        })
        .collect();
    let zoomed = zoom(classifier, segments, [shape[1], shape[2], shape[3]])?;
    Ok(Lower { ratio: zoomed.max(pairs_ratio), pairs_ratio, best: (i, j), pairs: steepest.compared, images: n })
}

/// The [`ZOOM`] steepest pairs seen, steepest first (the earlier pair on
/// ties), and how many pairs had a ratio.
#[derive(Default)]
struct Steepest {
    best: Vec<(f64, usize, usize)>,
    compared: usize,
}

impl Steepest {
    fn offer(&mut self, ratio: f64, i: usize, j: usize) {
        self.compared += 1;
        if self.best.len() == ZOOM && self.best.last().is_some_and(|last| ratio <= last.0) {
            return;
        }
        let at = self.best.partition_point(|b| b.0 >= ratio);
        self.best.insert(at, (ratio, i, j));
        self.best.truncate(ZOOM);
    }
}

/// The pairs to compare: all of them, or `max` random ones (seeded), in
/// order.
enum Pairs {
    All { n: usize, i: usize, j: usize },
    Random { n: usize, left: usize, rng: Box<rand_chacha::ChaCha8Rng> },
}

impl Pairs {
    fn new(n: usize, max: usize, seed: u64) -> Pairs {
        if n * (n - 1) / 2 <= max {
            Pairs::All { n, i: 0, j: 1 }
        } else {
            Pairs::Random { n, left: max, rng: Box::new(rand_chacha::ChaCha8Rng::seed_from_u64(seed)) }
        }
    }
}

impl Iterator for Pairs {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        match self {
            Pairs::All { n, i, j } => {
                if *j >= *n {
                    *i += 1;
                    *j = *i + 1;
                }
                if *j >= *n {
                    return None;
                }
                *j += 1;
                Some((*i, *j - 1))
            }
            Pairs::Random { n, left, rng } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let i = rng.random_range(0..*n);
                let j = (i + rng.random_range(1..*n)) % *n;
                Some((i, j))
            }
        }
    }
}

/// `||f(a) - f(b)|| / ||a - b||`, or `None` for equal points.
fn ratio(
    a: ndarray::ArrayView1<f32>,
    b: ndarray::ArrayView1<f32>,
    fa: ndarray::ArrayView1<f64>,
    fb: ndarray::ArrayView1<f64>,
) -> Option<f64> {
    let dx: f64 = a.iter().zip(b).map(|(&p, &q)| (p as f64 - q as f64).powi(2)).sum::<f64>().sqrt();
    let df: f64 = fa.iter().zip(fb).map(|(&p, &q)| (p - q).powi(2)).sum::<f64>().sqrt();
    (dx > 0.0).then(|| df / dx)
}

/// A segment being zoomed into: its ends, their scores, and its ratio.
struct Segment {
    ends: [Array1<f32>; 2],
    scores: [Array1<f64>; 2],
    ratio: f64,
}

/// Zooms into each segment (module doc, step 2); the largest ratio seen.
fn zoom(classifier: &mut Classifier, mut segments: Vec<Segment>, image: [usize; 3]) -> Result<f64> {
    let mut best = segments.iter().map(|s| s.ratio).fold(0.0, f64::max);
    for _ in 0..LEVELS {
        crate::interrupt::check()?;
        segments.retain(|s| distance(&s.ends[0], &s.ends[1]) >= 4.0 * MIN_STEP);
        if segments.is_empty() {
            break;
        }
        let inner: Vec<Array1<f32>> = segments
            .iter()
            .flat_map(|s| [0.25f32, 0.5, 0.75].map(|t| &s.ends[0] + &((&s.ends[1] - &s.ends[0]) * t)))
            .collect();
        let views: Vec<_> = inner.iter().map(|p| p.view()).collect();
        let batch = ndarray::stack(Axis(0), &views)?;
        let batch = batch.into_shape_with_order((inner.len(), image[0], image[1], image[2]))?;
        let inner_scores = class_scores(classifier, batch.view())?.mapv(f64::from);
        for (k, segment) in segments.iter_mut().enumerate() {
            let mut points: Vec<(Array1<f32>, Array1<f64>)> =
                vec![(segment.ends[0].clone(), segment.scores[0].clone())];
            points.extend((0..3).map(|m| (inner[3 * k + m].clone(), inner_scores.row(3 * k + m).to_owned())));
            points.push((segment.ends[1].clone(), segment.scores[1].clone()));
            let (r, piece) = points
                .windows(2)
                .enumerate()
                .filter_map(|(p, w)| ratio(w[0].0.view(), w[1].0.view(), w[0].1.view(), w[1].1.view()).map(|r| (r, p)))
                .fold((0.0, 0), |acc, x| if x.0 > acc.0 { x } else { acc });
            let (from, to) = (points[piece].clone(), points[piece + 1].clone());
            *segment = Segment { ends: [from.0, to.0], scores: [from.1, to.1], ratio: r };
            best = best.max(r);
        }
    }
    Ok(best)
}

fn distance(a: &Array1<f32>, b: &Array1<f32>) -> f64 {
    a.iter().zip(b).map(|(&p, &q)| (p as f64 - q as f64).powi(2)).sum::<f64>().sqrt()
}

/// Images as rows of pixels.
fn flat(images: ArrayView4<f32>) -> Array2<f32> {
    let n = images.len_of(Axis(0));
    let owned: Array4<f32> = images.as_standard_layout().into_owned();
    owned.into_shape_with_order((n, images.len() / n)).expect("contiguous")
}

/// Class scores in f64, in batches.
/// The class scores of every image (none of no images).
pub fn class_scores(classifier: &mut Classifier, images: ArrayView4<f32>) -> Result<Array2<f32>> {
    if images.len_of(Axis(0)) == 0 {
        return Ok(Array2::zeros((0, 0)));
    }
    let parts = images
        .axis_chunks_iter(Axis(0), BATCH)
        .map(|chunk| {
            crate::interrupt::check()?;
            classifier.scores(chunk)
        })
        .collect::<Result<Vec<_>>>()?;
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    Ok(ndarray::concatenate(Axis(0), &views)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_in_order_or_as_many_random_ones_as_asked() {
        let all: Vec<_> = Pairs::new(4, 6, 0).collect();
        assert_eq!(all, [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]);
        let random: Vec<_> = Pairs::new(4, 5, 3).collect();
        assert_eq!(random.len(), 5);
        assert!(random.iter().all(|&(i, j)| i < 4 && j < 4 && i != j));
        assert_eq!(random, Pairs::new(4, 5, 3).collect::<Vec<_>>(), "seeded");
    }

    #[test]
    fn the_steepest_pairs_are_kept_steepest_first() {
        let mut steepest = Steepest::default();
        let ratios = [0.5, 3.0, 1.0, 3.0, 0.1, 2.0, 7.0, 0.2, 4.0, 0.3, 5.0];
        for (k, &r) in ratios.iter().enumerate() {
            steepest.offer(r, k, k + 1);
        }
        let kept: Vec<(f64, usize)> = steepest.best.iter().map(|&(r, i, _)| (r, i)).collect();
        let expected = [(7.0, 6), (5.0, 10), (4.0, 8), (3.0, 1), (3.0, 3), (2.0, 5), (1.0, 2), (0.5, 0)];
        assert_eq!(kept, expected, "ties keep the earlier pair first");
        assert_eq!(steepest.compared, ratios.len());
    }
}
