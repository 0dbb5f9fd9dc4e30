//! The paper's attack: for an image x and a target l, the smallest
//! perturbation r with f(x + r) = l and x + r in the box [0, 1].
//!
//! The form advx minimises is `c · loss(x + r, l) + |r|²` over x + r in
//! [0, 1], searching for the *smallest* c that still reaches l. The paper
//! writes `c · |r| + loss(x + r, l)` and a search over c; dividing that
//! objective by c shows the two are the same family with c ↔ 1/c, so
//! the paper's "minimum c" is the largest c there, our smallest. Two
//! changes make the optimisation well behaved: the squared norm is smooth
//! at r = 0, where every search starts, while |r| is not; and weighing the
//! loss keeps the objective's scale near |r|² whatever c is. The minimal
//! perturbations found are the same points of the distortion/loss
//! trade-off; only the bookkeeping of c differs.
//!
//! The search over c is a bisection in log space: the first step tries
//! the largest c (success is likeliest), each success lowers the upper end,
//! each failure raises the lower end, and every step starts from the
//! previous step's solution. Every example keeps its own c and L-BFGS-B
//! memory; one ONNX Runtime call evaluates the loss and gradient of all
//! unfinished examples of a batch.

use anyhow::{Result, bail};
use ndarray::{Array2, Array4, ArrayView4, Axis};

use super::gradient::CrossEntropy;
use super::lbfgsb::{self, Solver};
use super::target::Target;
use crate::classifier::{Classifier, argmax};

#[derive(Clone, Debug)]
pub struct Options {
    pub target: Target,
    /// The range the search for c explores.
    pub c_min: f64,
    pub c_max: f64,
    /// Values of c tried per example.
    pub steps: usize,
    pub solver: lbfgsb::Options,
    /// Examples per ONNX Runtime call.
    pub batch: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: Target::Random { seed: 0 },
            c_min: 1e-3,
            c_max: 1e3,
            steps: 10,
            solver: lbfgsb::Options { max_iterations: 50, ..lbfgsb::Options::default() },
            batch: 100,
        }
    }
}

/// What the attack found for one example.
#[derive(Clone, Debug)]
pub struct Found {
    pub label: u8,
    /// None when the example's own label is the target.
    pub target: Option<usize>,
    /// The least distorted success, or the last attempt when none succeeded.
    pub image: Vec<f32>,
    pub success: bool,
    /// sqrt(Σ r² / n) of `image`.
    pub distortion: f64,
    /// The c of `image` (None when never tried).
    pub c: Option<f64>,
    pub iterations: usize,
    pub evaluations: usize,
}

/// Where one example's search over c stands.
struct Search {
    original: Vec<f64>,
    target: usize,
    c: f64,
    /// The largest c that failed and the smallest that succeeded.
    failed: Option<f64>,
    succeeded: Option<f64>,
    current: Vec<f64>,
    best: Option<(Vec<f64>, f64, f64)>,
    iterations: usize,
    evaluations: usize,
    done: bool,
}

/// Attacks every image, `options.batch` at a time. `on_batch` is called
/// after each batch with the number done (progress, Ctrl-C: an error from
/// it stops the attack).
pub fn attack(
    classifier: &mut Classifier,
    gradient: &mut CrossEntropy,
    images: ArrayView4<f32>,
    labels: &[u8],
    options: &Options,
    mut on_batch: impl FnMut(usize) -> Result<()>,
) -> Result<Vec<Found>> {
    if options.c_min <= 0.0 || options.c_min > options.c_max || !options.c_max.is_finite() {
        bail!("the range of c must be positive and increasing, not {}..{}", options.c_min, options.c_max);
    }
    let mut found = Vec::with_capacity(labels.len());
    for (chunk, chunk_labels) in
        images.axis_chunks_iter(Axis(0), options.batch.max(1)).zip(labels.chunks(options.batch.max(1)))
    {
        found.extend(attack_batch(classifier, gradient, chunk, chunk_labels, options)?);
        on_batch(found.len())?;
    }
    Ok(found)
}

fn attack_batch(
    classifier: &mut Classifier,
    gradient: &mut CrossEntropy,
    images: ArrayView4<f32>,
    labels: &[u8],
    options: &Options,
) -> Result<Vec<Found>> {
    let shape = images.shape().to_vec();
    let scores = classifier.scores(images)?;
    let targets = options.target.choose(labels, &scores);
    let mut searches: Vec<Option<Search>> = images
        .axis_iter(Axis(0))
        .zip(&targets)
        .map(|(image, target)| target.map(|t| Search::new(image.iter().map(|&v| v as f64).collect(), t, options.c_max)))
        .collect();
    for _ in 0..options.steps {
        let active: Vec<usize> =
            (0..searches.len()).filter(|&i| searches[i].as_ref().is_some_and(|s| !s.done)).collect();
        if active.is_empty() {
            break;
        }
        let solutions = solve_step(gradient, &mut searches, &active, &shape, options)?;
        let predictions = predict(classifier, &solutions, &shape)?;
        for ((&i, solution), predicted) in active.iter().zip(solutions).zip(predictions) {
            let search = searches[i].as_mut().expect("active searches exist");
            search.record(solution, predicted, options.c_min);
        }
    }
    shrink_to_boundary(classifier, &mut searches, &shape)?;
    Ok(searches
        .into_iter()
        .zip(labels)
        .zip(images.axis_iter(Axis(0)))
        .map(|((s, &label), image)| finish(s, label, image.iter().copied().collect()))
        .collect())
}

/// One value of c for every active example: L-BFGS-B on
/// `c · loss + |x' - x|²` over x' in [0, 1], all examples batched.
fn solve_step(
    gradient: &mut CrossEntropy,
    searches: &mut [Option<Search>],
    active: &[usize],
    shape: &[usize],
    options: &Options,
) -> Result<Vec<Vec<f64>>> {
    let mut solvers: Vec<Solver> = active
        .iter()
        .map(|&i| {
            let s = searches[i].as_ref().expect("active");
            let n = s.current.len();
            Solver::new(s.current.clone(), vec![0.0; n], vec![1.0; n], options.solver.clone())
        })
        .collect::<Result<_>>()?;
    let per_example: Vec<(f64, usize, &[f64])> = active
        .iter()
        .map(|&i| {
            let s = searches[i].as_ref().expect("active");
            (s.c, s.target, s.original.as_slice())
        })
        .collect();
    lbfgsb::minimize_batch(&mut solvers, |which, points| {
        let k = which.len();
        let batch_shape = [k, shape[1], shape[2], shape[3]];
        let images = Array4::from_shape_vec(batch_shape, points.iter().map(|&v| v as f32).collect())?;
        let targets: Vec<usize> = which.iter().map(|&j| per_example[j].1).collect();
        let (loss, grad) = gradient.run(images.view(), &targets)?;
        let grad = grad.as_standard_layout();
        let grad = grad.as_slice().expect("standard layout");
        let mut values = Vec::with_capacity(k);
        let mut grads = Array2::zeros(points.raw_dim());
        for (row, &j) in which.iter().enumerate() {
            let (c, _, original) = per_example[j];
            let point = points.row(row);
            let mut distance = 0.0;
            for (col, (&x, &x0)) in point.iter().zip(original).enumerate() {
                let r = x - x0;
                distance += r * r;
                grads[[row, col]] = c * grad[row * point.len() + col] as f64 + 2.0 * r;
            }
            values.push(c * loss[row] as f64 + distance);
        }
        Ok((values, grads))
    })?;
    for (&i, solver) in active.iter().zip(&solvers) {
        let s = searches[i].as_mut().expect("active");
        s.iterations += solver.iterations();
        s.evaluations += solver.evaluations();
    }
    Ok(solvers.iter().map(|s| s.x().to_vec()).collect())
}

/// Bisection steps of the final shrink along x + t · r.
const SHRINK_STEPS: usize = 10;

/// The last values of c leave each success a little past the decision
/// boundary; a bisection on t in x + t · r, t in [0, 1], keeps the
/// smallest t that still reaches the target. The box holds along the way,
/// since x and x + r are both in it.
fn shrink_to_boundary(classifier: &mut Classifier, searches: &mut [Option<Search>], shape: &[usize]) -> Result<()> {
    let found: Vec<usize> =
        (0..searches.len()).filter(|&i| searches[i].as_ref().is_some_and(|s| s.best.is_some())).collect();
    let mut bounds = vec![(0.0f64, 1.0f64); found.len()];
    for _ in 0..SHRINK_STEPS {
        let points: Vec<Vec<f64>> = found
            .iter()
            .zip(&bounds)
            .map(|(&i, &(lo, hi))| searches[i].as_ref().expect("found").along((lo + hi) / 2.0))
            .collect();
        if points.is_empty() {
            return Ok(());
        }
        let predicted = predict(classifier, &points, shape)?;
        for ((&i, bound), p) in found.iter().zip(&mut bounds).zip(predicted) {
            let mid = (bound.0 + bound.1) / 2.0;
            if p == searches[i].as_ref().expect("found").target { bound.1 = mid } else { bound.0 = mid }
        }
    }
    for (&i, &(_, hi)) in found.iter().zip(&bounds) {
        let s = searches[i].as_mut().expect("found");
        let image = s.along(hi);
        let d = distortion(&image, &s.original);
        if let Some(best) = s.best.as_mut() {
            (best.0, best.1) = (image, d);
        }
    }
    Ok(())
}

fn predict(classifier: &mut Classifier, points: &[Vec<f64>], shape: &[usize]) -> Result<Vec<usize>> {
    let flat: Vec<f32> = points.iter().flatten().map(|&v| v as f32).collect();
    let images = Array4::from_shape_vec([points.len(), shape[1], shape[2], shape[3]], flat)?;
    let scores = classifier.scores(images.view())?;
    Ok(scores.rows().into_iter().map(|r| argmax(r.iter().copied())).collect())
}

impl Search {
    fn new(original: Vec<f64>, target: usize, c_max: f64) -> Search {
        Search {
            current: original.clone(),
            original,
            target,
            c: c_max,
            failed: None,
            succeeded: None,
            best: None,
            iterations: 0,
            evaluations: 0,
            done: false,
        }
    }

    /// The point x + t · (best - x).
    fn along(&self, t: f64) -> Vec<f64> {
        let (best, _, _) = self.best.as_ref().expect("a success");
        self.original.iter().zip(best).map(|(o, b)| o + t * (b - o)).collect()
    }

    /// Takes one step's solution and picks the next c.
    fn record(&mut self, solution: Vec<f64>, predicted: usize, c_min: f64) {
        if predicted == self.target {
            let d = distortion(&solution, &self.original);
            if self.best.as_ref().is_none_or(|(_, best, _)| d < *best) {
                self.best = Some((solution.clone(), d, self.c));
            }
            self.succeeded = Some(self.c);
        } else {
            self.failed = Some(self.c);
        }
        self.current = solution;
        match (self.failed, self.succeeded) {
            (_, None) => self.done = true,
            (None, Some(hi)) => self.c = (hi * c_min).sqrt().max(c_min),
            (Some(lo), Some(hi)) => self.c = (lo * hi).sqrt(),
        }
        if self.succeeded.is_some_and(|hi| hi <= c_min) {
            self.done = true;
        }
    }
}

fn finish(search: Option<Search>, label: u8, original: Vec<f32>) -> Found {
    let Some(s) = search else {
        return Found {
            label,
            target: None,
            distortion: 0.0,
            image: original,
            success: false,
            c: None,
            iterations: 0,
            evaluations: 0,
        };
    };
    let (image, distortion, c, success) = match s.best {
        Some((image, d, c)) => (image, d, Some(c), true),
        None => {
            let d = distortion(&s.current, &s.original);
            (s.current, d, s.failed, false)
        }
    };
    Found {
        label,
        target: Some(s.target),
        image: image.into_iter().map(|v| v as f32).collect(),
        success,
        distortion,
        c,
        iterations: s.iterations,
        evaluations: s.evaluations,
    }
}

/// The paper's measure: sqrt(Σ (x' - x)² / n), pixels in [0, 1].
pub fn distortion(adversarial: &[f64], original: &[f64]) -> f64 {
    let n = original.len().max(1) as f64;
    (adversarial.iter().zip(original).map(|(a, o)| (a - o) * (a - o)).sum::<f64>() / n).sqrt()
}
