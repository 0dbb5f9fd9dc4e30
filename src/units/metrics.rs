//! The numbers that replace the paper's visual inspection: how coherent a
//! direction's top images are, and how those numbers spread over many
//! directions.

use anyhow::Result;
use ndarray::{ArrayView1, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::Label;
use crate::stats::{mean, quantile};

/// The indices of the `k` largest scores, largest first. Ties go to the
/// lower index so that results do not depend on the sort's internals.
pub fn top_k(scores: ArrayView1<f32>, k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    let by_score = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
    let k = k.min(order.len());
    if k > 0 && k < order.len() {
        order.select_nth_unstable_by(k - 1, by_score);
        order.truncate(k);
    }
    order.sort_unstable_by(by_score);
    order.truncate(k);
    order
}

/// The share of the most common label: 1 when all images show the same
/// digit, 1/k at best chance when all differ. `None` for no labels.
pub fn purity(labels: &[Label]) -> Option<f64> {
    if labels.is_empty() {
        return None;
    }
    let most = counts(labels).values().copied().max().unwrap_or(0);
    Some(most as f64 / labels.len() as f64)
}

/// The most common label (the lowest on a tie), to caption a direction.
pub fn majority(labels: &[Label]) -> Option<Label> {
    let counts = counts(labels);
    let most = counts.values().copied().max()?;
    counts.into_iter().find(|&(_, c)| c == most).map(|(l, _)| l)
}

/// How many times each label occurs, in label order.
fn counts(labels: &[Label]) -> std::collections::BTreeMap<Label, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for &l in labels {
        *counts.entry(l).or_insert(0) += 1;
    }
    counts
}

/// The mean cosine similarity over all pairs of rows: how alike the
/// representations of a direction's top images are. A pair with a zero
/// row (a dead ReLU layer) counts as 0, neither alike nor opposed. `None`
/// with fewer than two rows.
pub fn mean_pairwise_cosine(rows: ArrayView2<f32>) -> Option<f64> {
    let n = rows.len_of(Axis(0));
    if n < 2 {
        return None;
    }
    let norms: Vec<f64> = rows.axis_iter(Axis(0)).map(|r| dot(r, r).sqrt()).collect();
    let mut total = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            let denominator = norms[i] * norms[j];
            if denominator > 0.0 {
                total += dot(rows.row(i), rows.row(j)) / denominator;
            }
        }
    }
    Some(total / (n * (n - 1) / 2) as f64)
}

/// A dot product accumulated in f64: phi can have thousands of entries.
fn dot(a: ArrayView1<f32>, b: ArrayView1<f32>) -> f64 {
    a.iter().zip(b.iter()).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// Where a set of per-direction numbers lies and how far it spreads.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    pub count: usize,
    pub mean: f64,
    /// The sample standard deviation (n - 1); 0 for a single value.
    pub std: f64,
    pub min: f64,
    pub q25: f64,
    pub median: f64,
    pub q75: f64,
    pub max: f64,
}

impl Summary {
    /// Summarises the finite values; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let variance = sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
        Some(Summary {
            count: n,
            mean,
            std: variance.sqrt(),
            min: sorted[0],
            q25: quantile(&sorted, 0.25),
            median: quantile(&sorted, 0.5),
            q75: quantile(&sorted, 0.75),
            max: sorted[n - 1],
        })
    }
}

/// A two-sided permutation test of equal means: the share of random
/// relabellings of the pooled values whose difference of means is at
/// least the observed one, counting the observed labelling itself (so
/// never 0). Exchangeability is all it assumes, which suits bounded,
/// skewed numbers such as purities. `None` when a sample is empty; fails
/// only when Ctrl-C stops it.
pub fn permutation_p(a: &[f64], b: &[f64], rounds: usize, seed: u64) -> Result<Option<f64>> {
    if a.is_empty() || b.is_empty() {
        return Ok(None);
    }
    let observed = (mean(a) - mean(b)).abs();
    let mut pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut extreme = 0usize;
    // A shuffle draws a random number per value: a million between checks.
    let per_check = (1_000_000 / pooled.len().max(1)).max(1);
    for round in 0..rounds {
        if round % per_check == 0 {
            crate::interrupt::check()?;
        }
        shuffle(&mut pooled, &mut rng);
        let (x, y) = pooled.split_at(a.len());
        if (mean(x) - mean(y)).abs() >= observed - 1e-12 {
            extreme += 1;
        }
    }
    Ok(Some((extreme + 1) as f64 / (rounds + 1) as f64))
}

/// Fisher-Yates, written out so that the sequence depends only on the seed
/// and not on how a rand version implements `shuffle`.
fn shuffle(values: &mut [f64], rng: &mut impl Rng) {
    for i in (1..values.len()).rev() {
        values.swap(i, rng.random_range(0..=i));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2};

    #[test]
    fn purity_and_majority_count_labels_of_any_class() {
        let labels = [999, 1500, 999, 300];
        assert_eq!(purity(&labels), Some(0.5));
        assert_eq!(majority(&labels), Some(999));
        assert_eq!(majority(&[1500, 300]), Some(300), "the lowest label on a tie");
        assert_eq!((purity(&[]), majority(&[])), (None, None));
    }

    #[test]
    fn top_k_takes_the_largest_first_and_breaks_ties_by_index() {
        let scores = arr1(&[0.1f32, 0.9, 0.5, 0.9, -1.0, 0.7]);
        assert_eq!(top_k(scores.view(), 3), vec![1, 3, 5]);
        assert_eq!(top_k(scores.view(), 10), vec![1, 3, 5, 2, 0, 4]);
        assert!(top_k(scores.view(), 0).is_empty());
    }

    #[test]
    fn purity_is_the_share_of_the_commonest_label() {
        assert_eq!(purity(&[3, 3, 3, 3]), Some(1.0));
        assert_eq!(purity(&[1, 2, 3, 4]), Some(0.25));
        assert_eq!(purity(&[7, 1, 7, 2, 7, 1, 0, 9]), Some(3.0 / 8.0));
        assert_eq!(purity(&[]), None);
        assert_eq!(majority(&[7, 1, 7, 1, 2]), Some(1), "ties go to the lower label");
    }

    #[test]
    fn cosine_of_known_rows() {
        let same = arr2(&[[1.0f32, 2.0], [2.0, 4.0], [0.5, 1.0]]);
        assert!((mean_pairwise_cosine(same.view()).unwrap() - 1.0).abs() < 1e-12);
        // Pairs: (e1, e2) = 0, (e1, -e1) = -1, (e2, -e1) = 0.
        let mixed = arr2(&[[1.0f32, 0.0], [0.0, 3.0], [-2.0, 0.0]]);
        assert!((mean_pairwise_cosine(mixed.view()).unwrap() + 1.0 / 3.0).abs() < 1e-12);
        // 45 degrees apart; the zero row counts as 0 in its two pairs.
        let with_zero = arr2(&[[1.0f32, 0.0], [1.0, 1.0], [0.0, 0.0]]);
        let expected = (0.5f64.sqrt() + 0.0 + 0.0) / 3.0;
        assert!((mean_pairwise_cosine(with_zero.view()).unwrap() - expected).abs() < 1e-7);
        assert_eq!(mean_pairwise_cosine(arr2(&[[1.0f32, 0.0]]).view()), None);
    }

    #[test]
    fn summary_matches_hand_computed_quartiles() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((s.count, s.min, s.max), (4, 1.0, 4.0));
        assert_eq!((s.q25, s.median, s.q75), (1.75, 2.5, 3.25));
        assert!((s.mean - 2.5).abs() < 1e-12);
        assert!((s.std - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(Summary::of(&[2.0]).unwrap().std, 0.0);
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn permutation_test_tells_apart_separated_samples_only() {
        let low: Vec<f64> = (0..20).map(|i| i as f64 * 0.01).collect();
        let high: Vec<f64> = low.iter().map(|v| v + 1.0).collect();
        assert!(permutation_p(&low, &high, 2000, 1).unwrap().unwrap() < 0.01);
        let p = permutation_p(&low, &low, 2000, 1).unwrap().unwrap();
        assert!(p > 0.5, "identical samples: p = {p}");
        assert_eq!(permutation_p(&low, &high, 500, 3).unwrap(), permutation_p(&low, &high, 500, 3).unwrap(), "seeded");
        assert_eq!(permutation_p(&[], &high, 500, 3).unwrap(), None);
    }
}
