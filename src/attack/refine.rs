//! The last mile after the search over c: from each success, the nearest
//! point of the target's region, by sequential quadratic programming on
//! the logit margins, then (when asked) a walk along the boundary.
//!
//! Around a point y0 the region where the model says l is, to first order,
//! the polyhedron { y : m_j + a_j · (y - y0) <= -κ for every rival j }, with
//! m_j = z_j - z_l the logit margins at y0 and a_j their gradients, the
//! rivals being the [`RIVALS`] classes other than l scored highest at y0
//! (every class of MNIST's ten: softmax regression's nearest point binds
//! many of them). Its nearest point to x inside the box is a convex
//! programme whose dual has one variable per rival:
//!
//!   maximise over λ >= 0:  q(λ) = |y(λ) - x|² + Σ_j λ_j (a_j · y(λ) - b_j),
//!   y(λ) = clip(x - Σ_j λ_j a_j / 2, 0, 1),   b_j = a_j · y0 - m_j - κ,
//!
//! concave and differentiable (∇q = A y(λ) - b), which L-BFGS-B solves in
//! f64 far past the precision of the model's f32 logits. Softmax
//! regression has linear margins, so the first round gives the exact
//! answer.
//! Other models take a few rounds, each linearised at the last answer,
//! and every answer is taken back to the boundary along the ray from x
//! ([`boundary::shrink`]) and kept where it is less distorted.
//!
//! On a ReLU network the linearisation holds only inside one activation
//! pattern, a small piece of the input space around y0: the polytope's
//! answer lies outside it, fails, and the rounds change nothing (on the
//! MNIST conv net, 2-3% above the best of strong minimum-norm attacks).
//! `walk: N` then adds N steps along the boundary, one gradient each, of
//! the margin to the strongest rival: FAB's step, a combination of the
//! point's and the original's projections onto the linearised boundary,
//! the original's weight decaying from 0.3 to 0.005, aiming a little past
//! the boundary (more after a step that fell short). The least distorted
//! point past the boundary, and the ray through the last point, are taken
//! back to the boundary. After the search over c it closes about half the
//! gap in 120 steps; the default start, `attack::lagrangian`, closes most
//! of it for fewer evaluations, so the walk is off by default.

use anyhow::Result;
use ndarray::{Array2, ArrayView2};

use super::boundary::{self, Segment};
use super::gradient::{Linearized, Margins};
use super::lbfgsb::{self, Solver};
use super::search::distortion;
use crate::classifier::Classifier;

/// The rivals of the target whose margins a round linearises: the
/// strongest at the round's point (the others rarely bind, and a model of
/// 1000 classes would cost 1000 evaluations a round).
pub const RIVALS: usize = 20;
/// Rounds of the polytope's nearest point at most.
pub const ROUNDS: usize = 5;
/// Rounds in a row that find no better point end an example's rounds.
const FUTILE: usize = 2;
/// A round that moves the answer's distortion by less than this
/// (relatively) ends the example's rounds.
const SETTLED: f64 = 1e-4;
/// The weight of the original's projection in each step of the walk,
/// first and last (geometric in between): large early to move fast along
/// the boundary, small late to settle.
const PULL: (f64, f64) = (0.3, 0.005);
/// How far past the boundary (in logits) the polytope's rounds aim, so
/// that their answers are inside the region (the shrink takes them back),
/// and where the walk's steps aim at first: a step that lands short
/// doubles it for the example, one that lands past halves it, so that
/// the walk stays on both sides of the boundary.
const KAPPA: f64 = 1e-3;
/// The last point of a walk, short of the boundary, is taken this much
/// further from the original before the search along the ray.
const REACH: f64 = 1.05;

/// One example being refined.
pub struct Walker<'a> {
    pub original: &'a [f64],
    pub target: usize,
    /// The least distorted point found so far, on the boundary.
    pub point: Vec<f64>,
    pub distortion: f64,
    /// Gradient evaluations of the refinement.
    pub evaluations: usize,
}

impl<'a> Walker<'a> {
    pub fn new(original: &'a [f64], target: usize, point: Vec<f64>) -> Walker<'a> {
        let distortion = distortion(&point, original);
        Walker { original, target, point, distortion, evaluations: 0 }
    }
}

/// Rounds of the linearised polytope's nearest point, then `walk` steps
/// along the boundary, for every example.
pub fn refine(
    classifier: &mut Classifier,
    margins: &mut Margins,
    walkers: &mut [Walker],
    walk: usize,
    shape: &[usize],
) -> Result<()> {
    polytope_rounds(classifier, margins, walkers, shape)?;
    if walk > 0 {
        walk_along(classifier, margins, walkers, walk, shape)?;
    }
    Ok(())
}

/// Up to [`ROUNDS`] rounds, each linearised at the last round's answer;
/// an example whose answer stops moving leaves, and so does one whose
/// last [`FUTILE`] rounds found nothing better: its model is linear only on
/// pieces smaller than a round's step (a ReLU network's activation
/// patterns). On the MNIST conv net no round after the Lagrangian start
/// finds anything; on FC100-100-10 a round after one that failed often
/// does.
fn polytope_rounds(
    classifier: &mut Classifier,
    margins: &mut Margins,
    walkers: &mut [Walker],
    shape: &[usize],
) -> Result<()> {
    let mut active: Vec<usize> = (0..walkers.len()).collect();
    let mut points: Vec<Vec<f64>> = walkers.iter().map(|w| w.point.clone()).collect();
    let mut failures = vec![0; walkers.len()];
    for _ in 0..ROUNDS {
        crate::interrupt::check()?;
        if active.is_empty() {
            break;
        }
        let (answers, rivals) = nearest_linearized(classifier, margins, walkers, &active, &points, shape)?;
        let mut moved = Vec::with_capacity(active.len());
        for ((&i, answer), rivals) in active.iter().zip(&answers).zip(rivals) {
            walkers[i].evaluations += rivals;
            moved.push(distortion(answer, walkers[i].original));
        }
        let last: Vec<f64> = active.iter().zip(&points).map(|(&i, p)| distortion(p, walkers[i].original)).collect();
        let improved = keep_if_better(classifier, walkers, &active, &answers, shape)?;
        active.iter().zip(&improved).for_each(|(&i, &better)| failures[i] = if better { 0 } else { failures[i] + 1 });
        let going: Vec<bool> = active
            .iter()
            .zip(last.iter().zip(&moved))
            .map(|(&i, (&b, &a))| failures[i] < FUTILE && !settled(b, a))
            .collect();
        (active, points) = (only(active, &going), only(answers, &going));
    }
    Ok(())
}

/// Whether a round changed a distortion too little to go on.
fn settled(before: f64, after: f64) -> bool {
    (before - after).abs() <= SETTLED * before.max(f64::MIN_POSITIVE)
}

/// The items whose flag is set.
fn only<T>(items: Vec<T>, keep: &[bool]) -> Vec<T> {
    items.into_iter().zip(keep).filter(|(_, k)| **k).map(|(item, _)| item).collect()
}

/// `steps` steps along the boundary from each walker's point, one
/// gradient evaluation each (the margin to the strongest rival); the
/// least distorted point past the boundary, and the last point reached
/// for, are taken back to it along the ray from the original.
fn walk_along(
    classifier: &mut Classifier,
    margins: &mut Margins,
    walkers: &mut [Walker],
    steps: usize,
    shape: &[usize],
) -> Result<()> {
    let mut points: Vec<Vec<f64>> = walkers.iter().map(|w| w.point.clone()).collect();
    let mut best: Vec<Option<(f64, Vec<f64>)>> = vec![None; walkers.len()];
    let mut kappa = vec![KAPPA; walkers.len()];
    let targets: Vec<usize> = walkers.iter().map(|w| w.target).collect();
    for step in 0..steps {
        crate::interrupt::check()?;
        let pull = PULL.0 * (PULL.1 / PULL.0).powf(step as f64 / (steps - 1).max(1) as f64);
        let scores = boundary::scores(classifier, &points, shape)?;
        let mut rivals = Vec::with_capacity(walkers.len());
        for (i, row) in scores.rows().into_iter().enumerate() {
            let target = targets[i];
            let rival = (0..row.len()).filter(|&j| j != target).max_by(|&a, &b| row[a].total_cmp(&row[b]));
            let rival = rival.unwrap_or(target);
            rivals.push(rival);
            let past = row[target] > row[rival];
            kappa[i] = if past { (kappa[i] / 2.0).max(KAPPA) } else { kappa[i] * 2.0 };
            let d = distortion(&points[i], walkers[i].original);
            if past && best[i].as_ref().is_none_or(|(b, _)| d < *b) {
                best[i] = Some((d, points[i].clone()));
            }
        }
        let images = boundary::batch(&points, shape)?;
        let (m, grads) = margins.against(images.view(), &targets, &rivals)?;
        let steps = walkers.iter_mut().zip(&mut points).zip(m).zip(grads.rows()).zip(&kappa);
        for ((((w, point), m), g), &kappa) in steps {
            w.evaluations += 1;
            *point = step_along(w.original, point, m, g.as_slice().expect("contiguous"), pull, kappa);
        }
    }
    let all: Vec<usize> = (0..walkers.len()).collect();
    let found: Vec<Vec<f64>> =
        walkers.iter().zip(best).map(|(w, b)| b.map_or_else(|| w.point.clone(), |(_, p)| p)).collect();
    keep_if_better(classifier, walkers, &all, &found, shape)?;
    let reached: Vec<Vec<f64>> = walkers
        .iter()
        .zip(&points)
        .map(|(w, p)| w.original.iter().zip(p).map(|(x, p)| (x + REACH * (p - x)).clamp(0.0, 1.0)).collect())
        .collect();
    keep_if_better(classifier, walkers, &all, &reached, shape)?;
    Ok(())
}

/// One step: FAB's combination of the point's and the original's
/// projections onto the linearised boundary {m + g · (z - y) = kappa},
/// weighted `1 - pull` and `pull`, in the box.
fn step_along(original: &[f64], y: &[f64], m: f64, g: &[f64], pull: f64, kappa: f64) -> Vec<f64> {
    let norm2: f64 = g.iter().map(|g| g * g).sum();
    if !(norm2 > 0.0 && m.is_finite()) {
        return y.to_vec();
    }
    let own = (kappa - m) / norm2;
    let from_original = (kappa - m - g.iter().zip(original).zip(y).map(|((g, x), y)| g * (x - y)).sum::<f64>()) / norm2;
    y.iter()
        .zip(original)
        .zip(g)
        .map(|((&y, &x), &g)| ((1.0 - pull) * (y + own * g) + pull * (x + from_original * g)).clamp(0.0, 1.0))
        .collect()
}

/// Takes each candidate (one per walker of `which`) back to the boundary
/// along the ray from the original, and keeps it where it is less
/// distorted than the walker's point: whether it did, per candidate.
fn keep_if_better(
    classifier: &mut Classifier,
    walkers: &mut [Walker],
    which: &[usize],
    candidates: &[Vec<f64>],
    shape: &[usize],
) -> Result<Vec<bool>> {
    let segments: Vec<Segment> = which
        .iter()
        .zip(candidates)
        .map(|(&i, c)| Segment { from: walkers[i].original, to: c, target: walkers[i].target })
        .collect();
    let on_boundary = boundary::shrink(classifier, &segments, shape)?;
    let reached = boundary::predict(classifier, &on_boundary, shape)?;
    let mut improved = Vec::with_capacity(which.len());
    for ((&i, point), class) in which.iter().zip(on_boundary).zip(reached) {
        let w = &mut walkers[i];
        let d = distortion(&point, w.original);
        let better = class == w.target && d < w.distortion;
        if better {
            (w.distortion, w.point) = (d, point);
        }
        improved.push(better);
    }
    Ok(improved)
}

/// For each active walker, the nearest point to its original of the
/// target's region linearised at the active walker's point in `points`
/// (its [`RIVALS`] strongest rivals there), and how many rivals it took.
fn nearest_linearized(
    classifier: &mut Classifier,
    margins: &mut Margins,
    walkers: &[Walker],
    active: &[usize],
    points: &[Vec<f64>],
    shape: &[usize],
) -> Result<(Vec<Vec<f64>>, Vec<usize>)> {
    let images = boundary::batch(points, shape)?;
    let targets: Vec<usize> = active.iter().map(|&i| walkers[i].target).collect();
    let scores = classifier.scores(images.view())?;
    let rivals: Vec<Vec<usize>> =
        scores.rows().into_iter().zip(&targets).map(|(row, &t)| strongest_rivals(row, t, RIVALS)).collect();
    let linear = margins.run(images.view(), &targets, &rivals)?;
    let polytopes: Vec<Polytope> =
        active.iter().zip(points).zip(&linear).map(|((&i, p), l)| Polytope::new(&walkers[i], p, l)).collect();
    let mut duals: Vec<Solver> = polytopes
        .iter()
        .map(|p| {
            let k = p.a.nrows();
            Solver::new(vec![0.0; k], vec![0.0; k], vec![f64::INFINITY; k], dual_options())
        })
        .collect::<Result<_>>()?;
    lbfgsb::minimize_batch(&mut duals, |which, lambdas| {
        crate::interrupt::check()?;
        let mut values = Vec::with_capacity(which.len());
        let mut grads = Array2::zeros(lambdas.raw_dim());
        for (row, &i) in which.iter().enumerate() {
            let (value, grad) = polytopes[i].negative_dual(lambdas.row(row).as_slice().expect("contiguous"));
            values.push(value);
            grads.row_mut(row).assign(&ndarray::Array1::from(grad));
        }
        Ok((values, grads))
    })?;
    let answers = polytopes.iter().zip(&duals).map(|(p, d)| p.primal(d.x())).collect();
    Ok((answers, rivals.iter().map(Vec::len).collect()))
}

/// The `k` classes other than `target` with the highest scores.
fn strongest_rivals(scores: ndarray::ArrayView1<f32>, target: usize, k: usize) -> Vec<usize> {
    let mut others: Vec<usize> = (0..scores.len()).filter(|&j| j != target).collect();
    others.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    others.truncate(k);
    others
}

fn dual_options() -> lbfgsb::Options {
    lbfgsb::Options { max_iterations: 1000, max_evaluations: 2000, pgtol: 1e-9, factr: 10.0, ..Default::default() }
}

/// The linearised region of one example: a · y <= b, row per class j != l.
struct Polytope<'a> {
    x: &'a [f64],
    a: Array2<f64>,
    b: Vec<f64>,
}

impl<'a> Polytope<'a> {
    fn new(example: &Walker<'a>, point: &[f64], linear: &Linearized) -> Polytope<'a> {
        let a = linear.gradients.clone();
        let y0 = ndarray::ArrayView1::from(point);
        let b = linear.margins.iter().zip(a.rows()).map(|(m, a_j)| a_j.dot(&y0) - m - KAPPA).collect();
        Polytope { x: example.original, a, b }
    }

    /// y(λ) = clip(x - Aᵀλ / 2, 0, 1): the box's minimiser of the Lagrangian.
    fn primal(&self, lambda: &[f64]) -> Vec<f64> {
        let pull = self.a.t().dot(&ndarray::ArrayView1::from(lambda));
        self.x.iter().zip(&pull).map(|(x, p)| (x - p / 2.0).clamp(0.0, 1.0)).collect()
    }

    /// -q(λ) and its gradient b - A y(λ), for a minimiser.
    fn negative_dual(&self, lambda: &[f64]) -> (f64, Vec<f64>) {
        let y = self.primal(lambda);
        let distance: f64 = y.iter().zip(self.x).map(|(y, x)| (y - x) * (y - x)).sum();
        let slack = residuals(self.a.view(), &y, &self.b);
        let value = distance + lambda.iter().zip(&slack).map(|(l, s)| l * s).sum::<f64>();
        (-value, slack.iter().map(|s| -s).collect())
    }
}

/// A y - b.
fn residuals(a: ArrayView2<f64>, y: &[f64], b: &[f64]) -> Vec<f64> {
    a.dot(&ndarray::ArrayView1::from(y)).iter().zip(b).map(|(ay, b)| ay - b).collect()
}
