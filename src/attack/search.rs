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
//! previous step's solution with the previous step's L-BFGS-B memory: the
//! objectives of two values of c differ by a multiple of |r|², so each
//! stored pair converts exactly ([`Solver::restart`]), and so do the value
//! and gradient at the start, which costs no evaluation. Every example
//! keeps its own c and memory; one ONNX Runtime call evaluates the loss
//! and gradient of all unfinished examples of a batch. The loss is
//! computed in f32, so each L-BFGS-B run stops once its steps could only
//! change f by f32 rounding ([`F32_NOISE`]), not at scipy's f64
//! tolerances, which no f32 network reaches.
//!
//! The cross-entropy's gradient mixes every class, weighted by its
//! probability, so the path of solutions over c crosses into the target's
//! region where that mix points, not at the region's nearest point: on
//! softmax regression, where the nearest point is a convex programme's
//! answer, the search alone lands up to 1.7 times too far. So a
//! refinement follows (on by default, `refine: false` gives the paper's
//! method alone): from each success, `attack::refine` linearises the
//! logit margins and solves for the nearest point of the region, a few
//! rounds; on softmax regression the first round is exact (within 0.3% of
//! an independent QP solver on 600 examples, `tests/attack.rs`). A success
//! keeps whichever answer is less distorted, so refining never loses.
//!
//! On a ReLU network the refinement's linearisation holds only in a small
//! piece of the input space and the search's answers stay 2-3% above the
//! nearest point strong attacks find. So by default, when refining, the
//! search over c gives way to `attack::lagrangian`, a first-order
//! augmented Lagrangian method (ALMA's) whose answers are within about
//! 0.5% of the best on the MNIST conv net, for fewer evaluations than the
//! search, and closer than the search's on the MLPs, for more; the
//! refinement's rounds follow as before and keep softmax regression exact.
//! `lagrangian: 0` keeps the search and the refinement; `refine: false` is
//! the paper's method alone, whatever `lagrangian` is.
//!
//! Ctrl-C or SIGTERM stops the attack within a round (every round of
//! L-BFGS-B, of the refinement and of the shrink polls
//! [`crate::interrupt::check`], and ONNX Runtime calls in flight are
//! terminated): the batches that finished are returned, marked
//! ([`Attacked::interrupted`]), each example exactly as an uninterrupted
//! run finds it, since batches are independent.

use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use ndarray::{ArrayView4, Axis};

use super::boundary::{self, Segment};
use super::gradient::{CrossEntropy, Margins};
use super::lagrangian;
use super::lbfgsb::{self, Solver};
use super::refine::{self, Walker};
use super::target::Target;
use super::workers::{self, Worker};
use crate::classifier::Classifier;
use crate::data::Label;
use crate::interrupt::{self, Interrupted, Signal};
use crate::parallel;

/// The relative rounding error of one f32 operation, which bounds how
/// finely the loss (an f32 network at f32 pixels) tells points apart: once
/// L-BFGS-B's next step could change f by less, it stops (see
/// [`lbfgsb::Options::noise`]) rather than spend its evaluation limit on
/// steps that round to the same image, as the reference code does.
pub const F32_NOISE: f64 = f32::EPSILON as f64;

/// The Lagrangian's steps per example at most: its examples stop on their
/// own after about 230-300 on MNIST's models.
pub const LAGRANGIAN_STEPS: usize = 500;

#[derive(Clone, Debug)]
pub struct Options {
    pub target: Target,
    /// The range the search for c explores.
    pub c_min: f64,
    pub c_max: f64,
    /// Values of c tried per example.
    pub steps: usize,
    pub solver: lbfgsb::Options,
    /// Examples per ONNX Runtime call. On the CPU each core attacks batches
    /// of its own ([`workers`](super::workers)): small ones keep every
    /// core busy to the end and a batch's solvers in its cache.
    pub batch: usize,
    /// Move each success to the nearest point of the target's region
    /// after the search over c (see the module's documentation).
    pub refine: bool,
    /// Steps of the walk along the boundary after the refinement's rounds
    /// (`attack::refine`; 0: none). One gradient evaluation each.
    pub walk: usize,
    /// Steps at most of the augmented Lagrangian method
    /// (`attack::lagrangian`) that replaces the search over c when
    /// refining (0: the paper's search, then the refinement).
    pub lagrangian: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: Target::Random { seed: 0 },
            c_min: 1e-3,
            c_max: 1e3,
            steps: 10,
            solver: lbfgsb::Options { max_iterations: 50, noise: F32_NOISE, ..lbfgsb::Options::default() },
            batch: 25,
            refine: true,
            walk: 0,
            lagrangian: LAGRANGIAN_STEPS,
        }
    }
}

/// What the attack found for one example.
#[derive(Clone, Debug)]
pub struct Found {
    /// The example's index among the images attacked.
    pub index: usize,
    pub label: Label,
    /// None when the example's own label is the target.
    pub target: Option<usize>,
    /// The least distorted success, or the last attempt when none succeeded.
    pub image: Vec<f32>,
    pub success: bool,
    /// sqrt(Σ r² / n) of `image`.
    pub distortion: f64,
    /// The c of the search's answer (the refinement keeps it; None when
    /// never tried).
    pub c: Option<f64>,
    pub iterations: usize,
    /// Gradient evaluations of one image: the search's, plus one per class
    /// and round of the refinement.
    pub evaluations: usize,
}

/// What an attack finished.
#[derive(Clone, Debug)]
pub struct Attacked {
    /// One per example finished, by increasing index: every example, unless
    /// `interrupted`.
    pub found: Vec<Found>,
    /// The examples asked for.
    pub requested: usize,
    /// The signal that stopped the attack: `found` then holds the batches
    /// that had finished, with several workers not necessarily the first.
    pub interrupted: Option<Signal>,
}

impl Attacked {
    /// Every example, or [`Interrupted`] for callers that have no use for a
    /// part of the examples (the benchmark).
    pub fn complete(self) -> Result<Vec<Found>> {
        match self.interrupted {
            Some(signal) => Err(Interrupted(signal).into()),
            None => Ok(self.found),
        }
    }
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
    /// The last step's solver and its c: the next step restarts it, memory
    /// and all (see [`Solver::restart`]).
    solver: Option<(Solver, f64)>,
    /// The least distorted success, its distortion and its c (None for
    /// the Lagrangian's).
    best: Option<(Vec<f64>, f64, Option<f64>)>,
    iterations: usize,
    evaluations: usize,
    done: bool,
}

/// Attacks every image, `options.batch` at a time, each worker (see
/// [`workers`](super::workers)) taking the next batch. `on_batch` is
/// called after each batch with the number of examples done (progress,
/// Ctrl-C: an error from it stops the attack; an [`Interrupted`] one, or
/// a signal, returns the batches finished, marked).
pub fn attack(
    workers: &mut [Worker],
    images: ArrayView4<f32>,
    labels: &[Label],
    options: &Options,
    on_batch: impl FnMut(usize) -> Result<()>,
) -> Result<Attacked> {
    let ids: Vec<u64> = (0..labels.len() as u64).collect();
    attack_examples(workers, images, labels, &ids, options, on_batch)
}

/// [`attack`] for examples whose random targets are drawn from the
/// streams `ids` (their indices in the set they come from), so that an
/// example gets the same target in any part of its set.
pub fn attack_examples(
    workers: &mut [Worker],
    images: ArrayView4<f32>,
    labels: &[Label],
    ids: &[u64],
    options: &Options,
    mut on_batch: impl FnMut(usize) -> Result<()>,
) -> Result<Attacked> {
    let (c_min, c_max) = (options.c_min, options.c_max);
    if !(c_min > 0.0 && c_min < c_max && c_max.is_finite()) {
        bail!("the range of c must be finite, positive and increasing (lo < hi), not {c_min}..{c_max}");
    }
    ensure!(options.steps >= 1, "the search over c needs at least 1 step, not {}", options.steps);
    ensure!(images.len_of(Axis(0)) == labels.len(), "{} images but {} labels", images.len_of(Axis(0)), labels.len());
    ensure!(ids.len() == labels.len(), "{} labels but {} example indices", labels.len(), ids.len());
    let size = options.batch.max(1);
    let mut done = 0;
    let ran = workers::run_all(
        workers,
        labels.len().div_ceil(size),
        |worker, b| {
            let range = b * size..((b + 1) * size).min(labels.len());
            let images = images.slice_axis(Axis(0), range.clone().into());
            attack_batch(worker, images, &labels[range.clone()], &ids[range.clone()], range.start, options)
        },
        |batch| {
            done += batch.len();
            on_batch(done)
        },
    )?;
    let found = ran.results.into_iter().flatten().flatten().collect();
    Ok(Attacked { found, requested: labels.len(), interrupted: ran.interrupted })
}

fn attack_batch(
    worker: &mut Worker,
    images: ArrayView4<f32>,
    labels: &[Label],
    ids: &[u64],
    first: usize,
    options: &Options,
) -> Result<Vec<Found>> {
    let Worker { classifier, gradients, solver_threads } = worker;
    let shape = images.shape().to_vec();
    let scores = classifier.scores(images)?;
    let targets = options.target.choose_for(labels, &scores, ids)?;
    let mut searches: Vec<Option<Search>> = images
        .axis_iter(Axis(0))
        .zip(&targets)
        .map(|(image, target)| target.map(|t| Search::new(image.iter().map(|&v| v as f64).collect(), t, options.c_max)))
        .collect();
    if options.refine && options.lagrangian > 0 {
        descend(classifier, &mut gradients.margins, &mut searches, options.lagrangian, &shape)?;
    } else {
        search_over_c(classifier, &mut gradients.xent, &mut searches, &shape, options, *solver_threads)?;
        shrink_best(classifier, &mut searches, &shape)?;
    }
    if options.refine {
        refine(classifier, &mut gradients.margins, &mut searches, options.walk, &shape)?;
    }
    Ok(searches
        .into_iter()
        .zip(labels)
        .zip(images.axis_iter(Axis(0)))
        .enumerate()
        .map(|(i, ((s, &label), image))| finish(s, first + i, label, image.iter().copied().collect()))
        .collect())
}

/// The paper's search: `options.steps` values of c per example, each
/// solved by L-BFGS-B from the last one's solution.
fn search_over_c(
    classifier: &mut Classifier,
    xent: &mut CrossEntropy,
    searches: &mut [Option<Search>],
    shape: &[usize],
    options: &Options,
    threads: usize,
) -> Result<()> {
    for _ in 0..options.steps {
        interrupt::check()?;
        let active: Vec<usize> =
            (0..searches.len()).filter(|&i| searches[i].as_ref().is_some_and(|s| !s.done)).collect();
        if active.is_empty() {
            break;
        }
        let solutions = solve_step(xent, searches, &active, shape, options, threads)?;
        let predictions = boundary::predict(classifier, &solutions, shape)?;
        for ((&i, solution), predicted) in active.iter().zip(solutions).zip(predictions) {
            let search = searches[i].as_mut().expect("active searches exist");
            search.record(solution, predicted, options.c_min);
        }
    }
    Ok(())
}

/// Instead of the search over c, `steps` steps of the augmented
/// Lagrangian method (`attack::lagrangian`) for every example, its best
/// candidates taken to the boundary along their rays.
fn descend(
    classifier: &mut Classifier,
    margins: &mut Margins,
    searches: &mut [Option<Search>],
    steps: usize,
    shape: &[usize],
) -> Result<()> {
    let started: Vec<usize> = (0..searches.len()).filter(|&i| searches[i].is_some()).collect();
    let (originals, targets): (Vec<&[f64]>, Vec<usize>) = started
        .iter()
        .map(|&i| searches[i].as_ref().map(|s| (s.original.as_slice(), s.target)).expect("started"))
        .unzip();
    let found = lagrangian::descend(classifier, margins, &originals, &targets, steps, shape)?;
    let segments: Vec<Segment> = found
        .iter()
        .enumerate()
        .flat_map(|(k, (points, _))| {
            let (from, target) = (originals[k], targets[k]);
            points.iter().map(move |p| Segment { from, to: p, target })
        })
        .collect();
    let on_boundary = boundary::shrink(classifier, &segments, shape)?;
    let reached = boundary::predict(classifier, &on_boundary, shape)?;
    let mut candidates = on_boundary.into_iter().zip(reached);
    for ((&i, (points, evaluations)), &target) in started.iter().zip(&found).zip(&targets) {
        let s = searches[i].as_mut().expect("started");
        (s.iterations, s.evaluations, s.done) = (*evaluations, *evaluations, true);
        for (point, class) in candidates.by_ref().take(points.len()) {
            let d = distortion(&point, &s.original);
            if class == target && s.best.as_ref().is_none_or(|(_, best, _)| d < *best) {
                s.best = Some((point, d, None));
            }
        }
    }
    Ok(())
}

/// One value of c for every active example: L-BFGS-B on
/// `c · xent + |x' - x|²` over x' in [0, 1], all examples batched.
fn solve_step(
    xent: &mut CrossEntropy,
    searches: &mut [Option<Search>],
    active: &[usize],
    shape: &[usize],
    options: &Options,
    threads: usize,
) -> Result<Vec<Vec<f64>>> {
    let n = shape[1..].iter().product();
    let (lower, upper): (Arc<[f64]>, Arc<[f64]>) = (vec![0.0; n].into(), vec![1.0; n].into());
    let mut solvers: Vec<Solver> = active
        .iter()
        .map(|&i| searches[i].as_mut().expect("active").next_solver(&lower, &upper, &options.solver))
        .collect::<Result<_>>()?;
    let problems: Vec<Problem> = active
        .iter()
        .map(|&i| {
            let s = searches[i].as_ref().expect("active");
            Problem { original: &s.original, target: s.target, weight: s.c }
        })
        .collect();
    minimize(xent, &problems, &mut solvers, shape, threads)?;
    let solutions = solvers.iter().map(|s| s.x().to_vec()).collect();
    for (&i, solver) in active.iter().zip(solvers) {
        searches[i].as_mut().expect("active").count(solver);
    }
    Ok(solutions)
}

/// One example's `weight · loss(x', target) + |x' - original|²`.
struct Problem<'a> {
    original: &'a [f64],
    target: usize,
    weight: f64,
}

/// L-BFGS-B on every problem over the box [0, 1], batched. Each round
/// converts the points into one f32 buffer kept across rounds and writes
/// c·∇loss + 2r straight into the solver's gradient buffer, both passes
/// shared by `threads` threads.
fn minimize(
    loss: &mut CrossEntropy,
    problems: &[Problem],
    solvers: &mut [Solver],
    shape: &[usize],
    threads: usize,
) -> Result<()> {
    let (mut pixels, mut targets) = (Vec::<f32>::new(), Vec::new());
    let n = shape[1] * shape[2] * shape[3];
    lbfgsb::minimize_batch_into(solvers, threads, |which, points, values, mut grads| {
        interrupt::check()?;
        let (points, gradients) = (points.as_slice().context("points")?, grads.as_slice_mut().context("gradients")?);
        let rows = parallel::rows_per_part(which.len(), n, threads);
        let width = (rows * n).max(1);
        pixels.resize(points.len(), 0.0);
        parallel::for_each_part(pixels.chunks_mut(width).zip(points.chunks(width)), |(pixels, points)| {
            pixels.iter_mut().zip(points).for_each(|(p, &x)| *p = x as f32)
        });
        targets.clear();
        targets.extend(which.iter().map(|&j| problems[j].target));
        let images = ArrayView4::from_shape([which.len(), shape[1], shape[2], shape[3]], &pixels)?;
        loss.run(images, &targets, |losses, grad| {
            let grad = grad.as_standard_layout();
            let grad = grad.as_slice().expect("standard layout");
            let parts = gradients
                .chunks_mut(width)
                .zip(values.chunks_mut(rows))
                .zip(points.chunks(width).zip(grad.chunks(width)))
                .zip(which.chunks(rows).zip(losses.chunks(rows)));
            parallel::for_each_part(parts, |(((gradients, values), (points, grad)), (which, losses))| {
                let examples = gradients.chunks_mut(n).zip(points.chunks(n)).zip(grad.chunks(n));
                let answers = values.iter_mut().zip(losses);
                for ((((out, point), loss_grad), &j), (value, &loss)) in examples.zip(which).zip(answers) {
                    *value = problems[j].objective(point, loss, loss_grad, out);
                }
            });
            Ok(())
        })
    })
}

impl Problem<'_> {
    /// `weight · loss + |point - original|²` at `point`, given the loss
    /// and its gradient there; the objective's gradient goes to `out`.
    fn objective(&self, point: &[f64], loss: f32, loss_grad: &[f32], out: &mut [f64]) -> f64 {
        let mut distance = 0.0;
        for (((g, &x), &x0), &dl) in out.iter_mut().zip(point).zip(self.original).zip(loss_grad) {
            let r = x - x0;
            distance += r * r;
            *g = self.weight * dl as f64 + 2.0 * r;
        }
        self.weight * loss as f64 + distance
    }
}

/// Refines each success (`attack::refine`: the polytope's rounds, then
/// `walk` steps along the boundary) and keeps the least distorted answer.
fn refine(
    classifier: &mut Classifier,
    margins: &mut Margins,
    searches: &mut [Option<Search>],
    walk: usize,
    shape: &[usize],
) -> Result<()> {
    let found: Vec<usize> = (0..searches.len()).filter(|&i| best_of(searches, i).is_some()).collect();
    let mut walkers: Vec<Walker> = found
        .iter()
        .map(|&i| {
            let s = searches[i].as_ref().expect("found");
            Walker::new(&s.original, s.target, s.best.as_ref().expect("found").0.clone())
        })
        .collect();
    refine::refine(classifier, margins, &mut walkers, walk, shape)?;
    let ended: Vec<(Vec<f64>, f64, usize)> =
        walkers.into_iter().map(|w| (w.point, w.distortion, w.evaluations)).collect();
    for (&i, (point, d, evaluations)) in found.iter().zip(ended) {
        let s = searches[i].as_mut().expect("found");
        s.evaluations += evaluations;
        let best = s.best.as_mut().expect("found");
        (best.0, best.1) = (point, d);
    }
    Ok(())
}

fn best_of(searches: &[Option<Search>], i: usize) -> Option<&(Vec<f64>, f64, Option<f64>)> {
    searches[i].as_ref().and_then(|s| s.best.as_ref())
}

/// Shrinks every success of the search over c.
fn shrink_best(classifier: &mut Classifier, searches: &mut [Option<Search>], shape: &[usize]) -> Result<()> {
    let found: Vec<usize> = (0..searches.len()).filter(|&i| best_of(searches, i).is_some()).collect();
    let segments: Vec<Segment> = found
        .iter()
        .map(|&i| {
            let s = searches[i].as_ref().expect("found");
            Segment { from: &s.original, to: &s.best.as_ref().expect("found").0, target: s.target }
        })
        .collect();
    let shrunk = boundary::shrink(classifier, &segments, shape)?;
    for (&i, image) in found.iter().zip(shrunk) {
        let s = searches[i].as_mut().expect("found");
        let d = distortion(&image, &s.original);
        if let Some(best) = s.best.as_mut() {
            (best.0, best.1) = (image, d);
        }
    }
    Ok(())
}

impl Search {
    fn new(original: Vec<f64>, target: usize, c_max: f64) -> Search {
        Search {
            current: original.clone(),
            solver: None,
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

    /// The solver for this step's c: the last step's, restarted at its
    /// solution on the new objective, or a new one.
    fn next_solver(&mut self, lower: &Arc<[f64]>, upper: &Arc<[f64]>, options: &lbfgsb::Options) -> Result<Solver> {
        match self.solver.take() {
            Some((mut solver, c)) if solver.f().is_finite() => {
                // c'·loss + |r|² = a·(c·loss + |r|²) + (1 − a)·|r|² with a = c'/c.
                let a = self.c / c;
                let (x, f, g) = (solver.x(), solver.f(), solver.gradient());
                let mut distance = 0.0;
                let mut gradient = Vec::with_capacity(x.len());
                for ((&x, &x0), &g) in x.iter().zip(&self.original).zip(g) {
                    let r = x - x0;
                    distance += r * r;
                    gradient.push(a * g + 2.0 * (1.0 - a) * r);
                }
                solver.restart(a, 2.0 * (1.0 - a), a * f + (1.0 - a) * distance, &gradient)?;
                Ok(solver)
            }
            _ => Solver::new(self.current.clone(), lower.clone(), upper.clone(), options.clone()),
        }
    }

    fn count(&mut self, solver: Solver) {
        self.iterations += solver.iterations();
        self.evaluations += solver.evaluations();
        self.solver = Some((solver, self.c));
    }

    /// Takes one step's solution and picks the next c.
    fn record(&mut self, solution: Vec<f64>, predicted: usize, c_min: f64) {
        if predicted == self.target {
            let d = distortion(&solution, &self.original);
            if self.best.as_ref().is_none_or(|(_, best, _)| d < *best) {
                self.best = Some((solution.clone(), d, Some(self.c)));
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

fn finish(search: Option<Search>, index: usize, label: Label, original: Vec<f32>) -> Found {
    let Some(s) = search else {
        return Found {
            index,
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
        Some((image, d, c)) => (image, d, c, true),
        None => {
            let d = distortion(&s.current, &s.original);
            (s.current, d, s.failed, false)
        }
    };
    Found {
        index,
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
