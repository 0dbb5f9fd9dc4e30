//! L-BFGS-B: limited-memory quasi-Newton minimisation of a smooth function
//! over a box `lower <= x <= upper`, after Byrd, Lu, Nocedal and Zhu, "A
//! limited memory algorithm for bound constrained optimization" (SIAM J.
//! Sci. Comput. 16(5), 1995; "BLNZ" below) with the subspace step of
//! Morales and Nocedal, "Remark on Algorithm 778" (ACM TOMS 38(1), 2011).
//!
//! Each problem is a *reverse-communication* state machine ([`Solver`]): it
//! never calls the objective, it says where it wants the next value and
//! gradient ([`Solver::ask`]) and is told them ([`Solver::tell`]). The attack
//! solves one problem per image and its objective is one ONNX Runtime call
//! for a whole batch, so [`minimize_batch`] gathers the points of every
//! unfinished problem, evaluates them together and hands each problem its
//! own answer; problems finish independently and stop asking.
//!
//! One iteration from the iterate x with gradient g:
//!
//! 1. the generalized Cauchy point: the first local minimiser of the
//!    quadratic model along the projected steepest-descent path
//!    x(t) = P(x − t g), found by walking its breakpoints (BLNZ §4);
//! 2. subspace minimisation: the model's minimiser over the variables not
//!    at a bound there, by the direct primal method (BLNZ §5.1), projected
//!    back onto the box (Morales–Nocedal), or truncated where that
//!    projection is not a descent direction;
//! 3. a Moré–Thuente line search (strong Wolfe conditions, ftol 1e-3, gtol
//!    0.9, xtol 0.1, as the reference code) along the segment from x to
//!    that point, never past the box;
//! 4. the update of the compact limited-memory BFGS matrix
//!    B = θI − W M Wᵀ (BLNZ eq. 3.2), skipped when sᵀy <= ε yᵀy.
//!
//! The defaults are scipy's `fmin_l_bfgs_b`: m = 10, pgtol 1e-5, factr 1e7.
//! Departures from the reference code, all deliberate:
//!
//! - [`Solver::x`] is the best point evaluated, not the last iterate (the
//!   line search may accept a worse point on its rounding-error exits).
//! - A non-finite value or gradient stops that problem with
//!   [`Status::NonFinite`]; the other problems of a batch go on.
//! - The curvature test for the update is the paper's sᵀy > ε yᵀy (the
//!   code compares with −gᵀs instead).
//! - The small indefinite systems (the middle matrix M and the subspace
//!   system) are solved by block elimination with two Cholesky
//!   factorisations, as the reference does, but re-formed every iteration.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;

use anyhow::{Context, Result, bail, ensure};
use ndarray::{Array2, ArrayView1, ArrayView2, Axis, s};

/// Sufficient-decrease (Armijo) constant of the line search.
const FTOL: f64 = 1e-3;
/// Curvature constant of the line search (strong Wolfe).
const GTOL: f64 = 0.9;
/// Relative width below which the line search's bracket is too small.
const XTOL: f64 = 0.1;
/// Evaluations one line search may take before it counts as failed.
const LINE_SEARCH_EVALUATIONS: usize = 20;
/// The longest step allowed along a direction no bound limits.
const UNBOUNDED_STEP: f64 = 1e10;
const EPS: f64 = f64::EPSILON;

/// Settings of one problem; the defaults are scipy's `fmin_l_bfgs_b`.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Correction pairs (s, y) kept: the paper's m.
    pub memory: usize,
    /// Iterations (accepted line-search steps) before giving up.
    pub max_iterations: usize,
    /// Evaluations of f and g before giving up; the solver never asks for more.
    pub max_evaluations: usize,
    /// Stop when the projected gradient's largest component is at most this.
    pub pgtol: f64,
    /// Stop when (f_k − f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= factr · ε.
    pub factr: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options { memory: 10, max_iterations: 15_000, max_evaluations: 15_000, pgtol: 1e-5, factr: 1e7 }
    }
}

/// Why a problem converged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The projected gradient is within `pgtol` of zero.
    ProjectedGradient,
    /// The last step reduced f by less than `factr · ε` relatively.
    RelativeReduction,
}

/// How a problem finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Converged(Reason),
    IterationLimit,
    EvaluationLimit,
    /// No acceptable step along the search direction, even from steepest
    /// descent with the memory cleared (often: the tolerances are below
    /// what f's rounding allows).
    LineSearchFailed,
    /// f or g was NaN or infinite at the last point asked for.
    NonFinite,
    /// The caller stopped it ([`Solver::stop`], [`minimize_batch_until`]).
    Stopped,
}

impl Status {
    pub fn converged(&self) -> bool {
        matches!(self, Status::Converged(_))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Converged(Reason::ProjectedGradient) => "converged: projected gradient <= pgtol",
            Status::Converged(Reason::RelativeReduction) => "converged: relative reduction of f <= factr·ε",
            Status::IterationLimit => "iteration limit reached",
            Status::EvaluationLimit => "evaluation limit reached",
            Status::LineSearchFailed => "the line search found no acceptable step",
            Status::NonFinite => "f or its gradient is not finite",
            Status::Stopped => "stopped by the caller",
        })
    }
}

/// One box-constrained problem as a reverse-communication state machine:
/// `ask` for a point, evaluate f and g there, `tell` them, until `ask`
/// says `None`.
#[derive(Clone, Debug)]
pub struct Solver {
    bounds: Bounds,
    options: Options,
    /// The current iterate x_k with its value and gradient.
    x: Vec<f64>,
    f: f64,
    g: Vec<f64>,
    memory: Memory,
    phase: Phase,
    /// Where f and g are wanted next.
    point: Vec<f64>,
    best_x: Vec<f64>,
    best_f: f64,
    status: Option<Status>,
    iterations: usize,
    evaluations: usize,
}

#[derive(Clone, Debug)]
enum Phase {
    /// Waiting for f and g at the starting point.
    Start,
    LineSearch(LineSearch),
}

impl Solver {
    /// A problem starting from `x0` projected into the box. Bounds may be
    /// infinite; `lower[i] == upper[i]` fixes a variable.
    pub fn new(x0: Vec<f64>, lower: Vec<f64>, upper: Vec<f64>, options: Options) -> Result<Solver> {
        validate_options(&options)?;
        let bounds = Bounds::new(lower, upper)?;
        ensure!(x0.len() == bounds.len(), "x0 has {} variables but the bounds {}", x0.len(), bounds.len());
        if let Some(i) = x0.iter().position(|v| !v.is_finite()) {
            bail!("x0[{i}] is {}: the starting point must be finite", x0[i]);
        }
        let x: Vec<f64> = x0.iter().enumerate().map(|(i, &v)| bounds.project(i, v)).collect();
        let n = x.len();
        Ok(Solver {
            memory: Memory::new(options.memory),
            bounds,
            options,
            point: x.clone(),
            best_x: x.clone(),
            best_f: f64::NAN,
            x,
            f: f64::NAN,
            g: vec![0.0; n],
            phase: Phase::Start,
            status: None,
            iterations: 0,
            evaluations: 0,
        })
    }

    /// The point where the solver wants f and g next, or None when finished.
    pub fn ask(&self) -> Option<&[f64]> {
        if self.status.is_some() { None } else { Some(&self.point) }
    }

    /// f and its gradient at the point [`ask`](Self::ask) returned. An error
    /// only for misuse (a finished solver, a gradient of the wrong length);
    /// non-finite numbers finish the problem with [`Status::NonFinite`].
    pub fn tell(&mut self, f: f64, g: &[f64]) -> Result<()> {
        if let Some(status) = &self.status {
            bail!("told f and g after finishing ({status})");
        }
        ensure!(g.len() == self.x.len(), "gradient of length {} for {} variables", g.len(), self.x.len());
        self.evaluations += 1;
        if !f.is_finite() || g.iter().any(|v| !v.is_finite()) {
            self.finish(Status::NonFinite);
            return Ok(());
        }
        // best_f starts as NaN, so the first finite f always wins.
        if self.best_f.is_nan() || f < self.best_f {
            self.best_f = f;
            self.best_x.clone_from(&self.point);
        }
        match std::mem::replace(&mut self.phase, Phase::Start) {
            Phase::Start => self.started(f, g),
            Phase::LineSearch(search) => self.line_search_step(search, f, g),
        }
        Ok(())
    }

    /// Finishes the problem now with [`Status::Stopped`] (no-op when finished).
    pub fn stop(&mut self) {
        if self.status.is_none() {
            self.finish(Status::Stopped);
        }
    }

    /// The best point evaluated so far (the projected x0 before any); always in the box.
    #[allow(clippy::misnamed_getters)] // The answer is the best point, not the current iterate.
    pub fn x(&self) -> &[f64] {
        &self.best_x
    }

    /// f at [`x`](Self::x); NaN before the first evaluation.
    #[allow(clippy::misnamed_getters)] // The value at the best point, as `x` is.
    pub fn f(&self) -> f64 {
        self.best_f
    }

    /// None while the problem is running.
    pub fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }

    /// Accepted steps so far.
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// Evaluations of f and g so far (those told).
    pub fn evaluations(&self) -> usize {
        self.evaluations
    }

    fn finish(&mut self, status: Status) {
        self.status = Some(status);
    }

    fn started(&mut self, f: f64, g: &[f64]) {
        self.f = f;
        self.g.copy_from_slice(g);
        if self.bounds.projected_gradient_norm(&self.x, &self.g) <= self.options.pgtol {
            self.finish(Status::Converged(Reason::ProjectedGradient));
        } else if self.options.max_iterations == 0 {
            self.finish(Status::IterationLimit);
        } else {
            self.next_iteration();
        }
    }

    /// Picks a search direction from x_k and asks for the line search's
    /// first point; a failure clears the memory and tries again from
    /// steepest descent (as the reference code), or finishes when the
    /// memory was already empty.
    fn next_iteration(&mut self) {
        loop {
            let search = self.search_point().and_then(|xbar| self.begin_line_search(xbar));
            match search {
                Some(search) => return self.ask_line_search(search),
                None if self.memory.is_empty() => return self.finish(Status::LineSearchFailed),
                None => self.memory.clear(),
            }
        }
    }

    /// x̄, the end of the segment the line search explores: the generalized
    /// Cauchy point improved by subspace minimisation. None when the
    /// limited-memory matrices are numerically singular.
    fn search_point(&self) -> Option<Vec<f64>> {
        let model = Compact::new(&self.memory, self.x.len())?;
        let cauchy = if !self.bounds.constrained && !self.memory.is_empty() {
            // Nothing to project onto: the Cauchy step only costs (as the reference skips it).
            CauchyPoint { x: self.x.clone(), c: vec![0.0; 2 * model.k()] }
        } else {
            generalized_cauchy_point(&self.x, &self.g, &self.bounds, &model)
        };
        subspace_minimization(&self.x, &self.g, &self.bounds, &model, &cauchy)
    }

    /// A line search from x_k toward x̄, or None when x̄ − x_k is no descent direction.
    fn begin_line_search(&self, xbar: Vec<f64>) -> Option<LineSearch> {
        let direction: Vec<f64> = xbar.iter().zip(&self.x).map(|(b, x)| b - x).collect();
        let slope = dot(&self.g, &direction);
        let max_step = if !self.bounds.constrained {
            UNBOUNDED_STEP
        } else if self.iterations == 0 {
            1.0
        } else {
            self.bounds.max_step(&self.x, &direction)
        };
        // The first direction has no curvature information: a unit-length step.
        let step = if self.iterations == 0 && !self.bounds.boxed {
            (1.0 / dot(&direction, &direction).sqrt()).min(max_step)
        } else {
            1.0_f64.min(max_step)
        };
        let search = MoreThuente::start(self.f, slope, step, max_step)?;
        Some(LineSearch { direction, xbar, search, evaluations: 0 })
    }

    fn ask_line_search(&mut self, mut search: LineSearch) {
        if self.evaluations >= self.options.max_evaluations {
            return self.finish(Status::EvaluationLimit);
        }
        self.point = search.trial(&self.x, &self.bounds);
        search.evaluations += 1;
        self.phase = Phase::LineSearch(search);
    }

    fn line_search_step(&mut self, mut search: LineSearch, f: f64, g: &[f64]) {
        match search.search.next(f, dot(g, &search.direction)) {
            SearchStep::Accept => self.accept(f, g),
            SearchStep::Evaluate if search.evaluations < LINE_SEARCH_EVALUATIONS => self.ask_line_search(search),
            _ if self.memory.is_empty() => self.finish(Status::LineSearchFailed),
            _ => {
                self.memory.clear();
                self.next_iteration();
            }
        }
    }

    /// Moves to the line search's point, tests for convergence and updates the memory.
    fn accept(&mut self, f: f64, g: &[f64]) {
        let s: Vec<f64> = self.point.iter().zip(&self.x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g.iter().zip(&self.g).map(|(a, b)| a - b).collect();
        let f_old = self.f;
        self.x.clone_from(&self.point);
        self.f = f;
        self.g.copy_from_slice(g);
        self.iterations += 1;
        let reduction = (f_old - f) / f_old.abs().max(f.abs()).max(1.0);
        if self.bounds.projected_gradient_norm(&self.x, &self.g) <= self.options.pgtol {
            self.finish(Status::Converged(Reason::ProjectedGradient));
        } else if reduction <= self.options.factr * EPS {
            self.finish(Status::Converged(Reason::RelativeReduction));
        } else if self.iterations >= self.options.max_iterations {
            self.finish(Status::IterationLimit);
        } else {
            self.memory.push(s, y);
            self.next_iteration();
        }
    }
}

fn validate_options(options: &Options) -> Result<()> {
    ensure!(options.memory >= 1, "L-BFGS-B needs a memory of at least 1 pair");
    ensure!(options.pgtol >= 0.0, "pgtol must be >= 0, not {}", options.pgtol);
    ensure!(options.factr >= 0.0, "factr must be >= 0, not {}", options.factr);
    Ok(())
}

/// Runs every solver to the end, evaluating all unfinished ones together:
/// each round calls `evaluate(which, points)` once, with `which` the
/// indices (into `solvers`, increasing) of the solvers still asking and
/// `points` their points as rows of a [k, n] array; it returns the k values
/// and the [k, n] gradients. All solvers must have the same n.
///
/// An error from `evaluate` (or a malformed answer) stops everything and
/// is returned; each solver keeps its best point so far, and its `status`
/// stays None. To stop early without an error use [`minimize_batch_until`].
pub fn minimize_batch<E>(solvers: &mut [Solver], evaluate: E) -> Result<()>
where
    E: FnMut(&[usize], ArrayView2<f64>) -> Result<(Vec<f64>, Array2<f64>)>,
{
    minimize_batch_until(solvers, || false, evaluate)
}

/// [`minimize_batch`] that asks `should_stop` before each round (for
/// Ctrl-C or a deadline); when it says true, the unfinished solvers finish
/// with [`Status::Stopped`] and this returns Ok.
pub fn minimize_batch_until<S, E>(solvers: &mut [Solver], mut should_stop: S, mut evaluate: E) -> Result<()>
where
    S: FnMut() -> bool,
    E: FnMut(&[usize], ArrayView2<f64>) -> Result<(Vec<f64>, Array2<f64>)>,
{
    let n = solvers.first().map_or(0, |s| s.x.len());
    if let Some(i) = solvers.iter().position(|s| s.x.len() != n) {
        bail!("solver {i} has {} variables, solver 0 has {n}: one batch needs one size", solvers[i].x.len());
    }
    loop {
        let which: Vec<usize> = (0..solvers.len()).filter(|&i| solvers[i].ask().is_some()).collect();
        if which.is_empty() {
            return Ok(());
        }
        if should_stop() {
            which.iter().for_each(|&i| solvers[i].stop());
            return Ok(());
        }
        let mut points = Array2::zeros((which.len(), n));
        for (mut row, &i) in points.rows_mut().into_iter().zip(&which) {
            row.iter_mut().zip(solvers[i].point.iter()).for_each(|(to, &from)| *to = from);
        }
        let (values, gradients) = evaluate(&which, points.view())?;
        tell_all(solvers, &which, &values, gradients)?;
    }
}

/// Hands each solver of `which` (increasing) its row of the answer. The
/// solvers' own work (the Cauchy point, the subspace step) is as long as a
/// small network's gradient for n = 784, so large batches share it between
/// threads; each solver computes alone, so the results do not depend on
/// how many.
fn tell_all(solvers: &mut [Solver], which: &[usize], values: &[f64], gradients: Array2<f64>) -> Result<()> {
    let n = solvers[which[0]].x.len();
    ensure!(values.len() == which.len(), "evaluate returned {} values for {} points", values.len(), which.len());
    ensure!(
        gradients.dim() == (which.len(), n),
        "evaluate returned gradients of shape {:?} for {} points of {n} variables",
        gradients.shape(),
        which.len()
    );
    let gradients = gradients.as_standard_layout();
    let flat = gradients.as_slice().context("gradients in standard layout")?;
    let mut answers: Vec<(&mut Solver, f64, &[f64])> = Vec::with_capacity(which.len());
    let mut solvers = solvers.iter_mut().enumerate();
    for (row, (&i, &f)) in which.iter().zip(values).enumerate() {
        let (_, solver) = solvers.find(|(j, _)| *j == i).context("solver indices must increase")?;
        answers.push((solver, f, &flat[row * n..(row + 1) * n]));
    }
    let threads = if answers.len() * n < PARALLEL_WORK { 1 } else { worker_threads().min(answers.len()) };
    if threads == 1 {
        return answers.into_iter().try_for_each(|(solver, f, g)| solver.tell(f, g));
    }
    let chunk = answers.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = answers
            .chunks_mut(chunk)
            .map(|part| scope.spawn(move || part.iter_mut().try_for_each(|(solver, f, g)| solver.tell(*f, g))))
            .collect();
        workers
            .into_iter()
            .try_for_each(|worker| worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

/// Batches with fewer variables in all than this are told on one thread.
const PARALLEL_WORK: usize = 16 * 784;

/// `ADVX_THREADS` (as ONNX Runtime's sessions), else every core.
fn worker_threads() -> usize {
    let cores = || std::thread::available_parallelism().map_or(1, |n| n.get());
    std::env::var("ADVX_THREADS").ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or_else(cores)
}

// ---------------------------------------------------------------------------
// The box

#[derive(Clone, Debug)]
struct Bounds {
    lower: Vec<f64>,
    upper: Vec<f64>,
    /// Some variable has a finite bound.
    constrained: bool,
    /// Every variable has two finite bounds.
    boxed: bool,
}

impl Bounds {
    fn new(lower: Vec<f64>, upper: Vec<f64>) -> Result<Bounds> {
        ensure!(lower.len() == upper.len(), "{} lower bounds but {} upper bounds", lower.len(), upper.len());
        for (i, (&l, &u)) in lower.iter().zip(&upper).enumerate() {
            ensure!(l <= u, "variable {i}: lower bound {l} is not <= upper bound {u}");
            ensure!(l < f64::INFINITY && u > f64::NEG_INFINITY, "variable {i}: the bounds [{l}, {u}] hold no number");
        }
        let finite = |v: &f64| v.is_finite();
        let constrained = lower.iter().any(finite) || upper.iter().any(finite);
        let boxed = lower.iter().all(finite) && upper.iter().all(finite);
        Ok(Bounds { lower, upper, constrained, boxed })
    }

    fn len(&self) -> usize {
        self.lower.len()
    }

    fn project(&self, i: usize, v: f64) -> f64 {
        v.max(self.lower[i]).min(self.upper[i])
    }

    fn is_free(&self, i: usize, v: f64) -> bool {
        self.lower[i] < v && v < self.upper[i]
    }

    /// ‖P(x − g) − x‖∞, zero exactly at a KKT point (BLNZ §6).
    fn projected_gradient_norm(&self, x: &[f64], g: &[f64]) -> f64 {
        (0..x.len())
            .map(|i| if g[i] < 0.0 { (self.upper[i] - x[i]).min(-g[i]) } else { (x[i] - self.lower[i]).min(g[i]) })
            .fold(0.0, f64::max)
    }

    /// The largest step along `d` from `x` that stays in the box (capped).
    fn max_step(&self, x: &[f64], d: &[f64]) -> f64 {
        let mut step = UNBOUNDED_STEP;
        for i in 0..x.len() {
            let room = if d[i] < 0.0 {
                self.lower[i] - x[i]
            } else if d[i] > 0.0 {
                self.upper[i] - x[i]
            } else {
                continue;
            };
            // room has d's sign unless x already sits on that bound.
            if room / d[i] <= 0.0 {
                return 0.0;
            }
            step = step.min(room / d[i]);
        }
        step
    }

    /// The t at which x_i − t g_i reaches its bound (BLNZ eq. 4.1): 0 for
    /// a variable held at its bound, infinite for one that never gets there.
    fn breakpoint(&self, i: usize, x: f64, g: f64) -> f64 {
        if g < 0.0 && self.upper[i].is_finite() {
            (x - self.upper[i]) / g
        } else if g > 0.0 && self.lower[i].is_finite() {
            (x - self.lower[i]) / g
        } else {
            f64::INFINITY
        }
    }
}

// ---------------------------------------------------------------------------
// The limited-memory matrix

/// The last m correction pairs s = x_{k+1} − x_k, y = g_{k+1} − g_k, oldest
/// first, with their inner products kept up to date.
#[derive(Clone, Debug)]
struct Memory {
    capacity: usize,
    s: VecDeque<Vec<f64>>,
    y: VecDeque<Vec<f64>>,
    /// ss[i][j] = s_i·s_j and sy[i][j] = s_i·y_j.
    ss: Vec<Vec<f64>>,
    sy: Vec<Vec<f64>>,
    /// θ = yᵀy / sᵀy of the newest pair; 1 when empty.
    theta: f64,
}

impl Memory {
    fn new(capacity: usize) -> Memory {
        Memory { capacity, s: VecDeque::new(), y: VecDeque::new(), ss: Vec::new(), sy: Vec::new(), theta: 1.0 }
    }

    fn len(&self) -> usize {
        self.s.len()
    }

    fn is_empty(&self) -> bool {
        self.s.is_empty()
    }

    fn clear(&mut self) {
        *self = Memory::new(self.capacity);
    }

    /// Adds a pair unless its curvature sᵀy is too small to keep B
    /// positive definite (BLNZ §6: sᵀy > ε yᵀy).
    fn push(&mut self, s: Vec<f64>, y: Vec<f64>) {
        let sy = dot(&s, &y);
        let yy = dot(&y, &y);
        if sy.partial_cmp(&(EPS * yy)) != Some(std::cmp::Ordering::Greater) {
            return;
        }
        if self.len() == self.capacity {
            self.forget_oldest();
        }
        for (i, si) in self.s.iter().enumerate() {
            self.ss[i].push(dot(si, &s));
            self.sy[i].push(dot(si, &y));
        }
        let k = self.len();
        let mut ss_row: Vec<f64> = (0..k).map(|j| self.ss[j][k]).collect();
        ss_row.push(dot(&s, &s));
        let mut sy_row: Vec<f64> = self.y.iter().map(|yj| dot(&s, yj)).collect();
        sy_row.push(sy);
        self.ss.push(ss_row);
        self.sy.push(sy_row);
        self.s.push_back(s);
        self.y.push_back(y);
        self.theta = yy / sy;
    }

    fn forget_oldest(&mut self) {
        self.s.pop_front();
        self.y.pop_front();
        for matrix in [&mut self.ss, &mut self.sy] {
            matrix.remove(0);
            matrix.iter_mut().for_each(|row| {
                row.remove(0);
            });
        }
    }
}

/// The compact form B = θI − W M Wᵀ with W = [Y θS] (n × 2k) and
/// M⁻¹ = [[−D, Lᵀ], [L, θSᵀS]] (BLNZ eq. 3.2–3.4), D = diag(s_i·y_i),
/// L_ij = s_i·y_j for i > j.
struct Compact<'a> {
    memory: &'a Memory,
    theta: f64,
    /// W, one row per variable, so that the row-wise work of the Cauchy
    /// point and the products over the free variables run on contiguous memory.
    w: Array2<f64>,
    /// M itself (2k × 2k): the Cauchy point multiplies by it once per
    /// breakpoint, so it is formed once from the factored M⁻¹.
    m: Array2<f64>,
}

impl<'a> Compact<'a> {
    /// None when M⁻¹ cannot be factored (nearly dependent pairs).
    fn new(memory: &'a Memory, n: usize) -> Option<Compact<'a>> {
        let k = memory.len();
        let theta = memory.theta;
        let d = Array2::from_shape_fn((k, k), |(i, j)| if i == j { memory.sy[i][i] } else { 0.0 });
        let l = Array2::from_shape_fn((k, k), |(i, j)| if i > j { memory.sy[i][j] } else { 0.0 });
        let r = Array2::from_shape_fn((k, k), |(i, j)| theta * memory.ss[i][j]);
        let m = Saddle::new(d, l, r)?.inverse();
        Some(Compact { memory, theta, w: stack_w(memory, n), m })
    }

    fn k(&self) -> usize {
        self.memory.len()
    }

    /// Row i of W: (y_1[i], …, y_k[i], θ s_1[i], …, θ s_k[i]).
    fn row_into(&self, i: usize, out: &mut [f64]) {
        out.iter_mut().zip(self.w.row(i)).for_each(|(to, &from)| *to = from);
    }

    /// Wᵀ v.
    fn transpose_times(&self, v: &[f64]) -> Vec<f64> {
        transpose_times(&self.w, v)
    }

    /// M v.
    fn m_times(&self, v: &[f64]) -> Vec<f64> {
        self.m.rows().into_iter().map(|row| row.iter().zip(v).map(|(a, b)| a * b).sum()).collect()
    }

    /// The rows of W of the variables in `rows`.
    fn rows(&self, rows: &[usize]) -> Array2<f64> {
        self.w.select(Axis(0), rows)
    }

    /// K = M⁻¹ − WᵀZZᵀW/θ with Z the free variables (rows `w_free` of W),
    /// the matrix of the subspace step (BLNZ eq. 5.10–5.11 after
    /// Sherman–Morrison–Woodbury): [[−D − Y_FᵀY_F/θ, Lᵀ − Y_FᵀS_F],
    /// [L − S_FᵀY_F, θ S_AᵀS_A]] with A the variables held at a bound.
    /// None when it cannot be factored.
    fn subspace_system(&self, w_free: &Array2<f64>, active: &[usize]) -> Option<Saddle> {
        let (k, theta) = (self.k(), self.theta);
        // [[Y_FᵀY_F, θY_FᵀS_F], [θS_FᵀY_F, θ²S_FᵀS_F]]
        let free_products = w_free.t().dot(w_free);
        let theta_s_active = self.w.slice(s![.., k..]).select(Axis(0), active);
        let active_products = theta_s_active.t().dot(&theta_s_active);
        let sy = &self.memory.sy;
        let p =
            Array2::from_shape_fn((k, k), |(i, j)| free_products[[i, j]] / theta + if i == j { sy[i][i] } else { 0.0 });
        let q = Array2::from_shape_fn((k, k), |(i, j)| {
            let lower = if i > j { sy[i][j] } else { 0.0 };
            lower - free_products[[k + i, j]] / theta
        });
        let r = active_products / theta;
        Saddle::new(p, q, r)
    }
}

/// W = [Y θS] as an n × 2k array.
fn stack_w(memory: &Memory, n: usize) -> Array2<f64> {
    let k = memory.len();
    let columns: Vec<(&[f64], f64)> = memory
        .y
        .iter()
        .map(|y| (y.as_slice(), 1.0))
        .chain(memory.s.iter().map(|s| (s.as_slice(), memory.theta)))
        .collect();
    let mut w = Array2::zeros((n, 2 * k));
    for (i, mut row) in w.rows_mut().into_iter().enumerate() {
        row.iter_mut().zip(&columns).for_each(|(to, (column, scale))| *to = scale * column[i]);
    }
    w
}

/// Solves [[−P, Qᵀ], [Q, R]] (a, b) = (u, v) for SPD P and SPD
/// R + Q P⁻¹ Qᵀ by block elimination: b = (R + QP⁻¹Qᵀ)⁻¹ (v + QP⁻¹u), a =
/// P⁻¹(Qᵀb − u). Both M⁻¹ and the subspace system have this shape.
#[derive(Debug)]
struct Saddle {
    p: Cholesky,
    q: Array2<f64>,
    schur: Cholesky,
}

impl Saddle {
    fn new(p: Array2<f64>, q: Array2<f64>, r: Array2<f64>) -> Option<Saddle> {
        let p = Cholesky::new(&p)?;
        let k = q.nrows();
        // P⁻¹Qᵀ column by column: column j is P⁻¹ (row j of Q).
        let mut p_inv_qt = Array2::zeros((k, k));
        for j in 0..k {
            let column = p.solve(&q.row(j).to_vec());
            p_inv_qt.column_mut(j).iter_mut().zip(column).for_each(|(to, v)| *to = v);
        }
        let schur = Cholesky::new(&(r + q.dot(&p_inv_qt)))?;
        Some(Saddle { p, q, schur })
    }

    /// The whole inverse, column by column.
    fn inverse(&self) -> Array2<f64> {
        let size = 2 * self.q.nrows();
        let mut inverse = Array2::zeros((size, size));
        let mut unit = vec![0.0; size];
        for j in 0..size {
            unit[j] = 1.0;
            inverse.column_mut(j).iter_mut().zip(self.solve(&unit)).for_each(|(to, v)| *to = v);
            unit[j] = 0.0;
        }
        inverse
    }

    fn solve(&self, rhs: &[f64]) -> Vec<f64> {
        let k = self.q.nrows();
        let (u, v) = rhs.split_at(k);
        let p_inv_u = self.p.solve(u);
        let q = &self.q;
        let rhs_b: Vec<f64> = (0..k).map(|i| v[i] + (0..k).map(|j| q[[i, j]] * p_inv_u[j]).sum::<f64>()).collect();
        let b = self.schur.solve(&rhs_b);
        let qt_b_minus_u: Vec<f64> = (0..k).map(|j| (0..k).map(|i| q[[i, j]] * b[i]).sum::<f64>() - u[j]).collect();
        let mut a = self.p.solve(&qt_b_minus_u);
        a.extend(b);
        a
    }
}

/// The lower-triangular factor L of a symmetric positive definite A = LLᵀ.
#[derive(Debug)]
struct Cholesky {
    l: Array2<f64>,
}

impl Cholesky {
    /// None unless A is numerically positive definite.
    fn new(a: &Array2<f64>) -> Option<Cholesky> {
        let k = a.nrows();
        let mut l = Array2::<f64>::zeros((k, k));
        for j in 0..k {
            let pivot = a[[j, j]] - (0..j).map(|p| l[[j, p]] * l[[j, p]]).sum::<f64>();
            if !(pivot > 0.0 && pivot.is_finite()) {
                return None;
            }
            let diagonal = pivot.sqrt();
            l[[j, j]] = diagonal;
            for i in j + 1..k {
                let below = a[[i, j]] - (0..j).map(|p| l[[i, p]] * l[[j, p]]).sum::<f64>();
                l[[i, j]] = below / diagonal;
            }
        }
        Some(Cholesky { l })
    }

    /// A⁻¹ b by forward then backward substitution.
    fn solve(&self, b: &[f64]) -> Vec<f64> {
        let k = b.len();
        let l = &self.l;
        let mut z = vec![0.0; k];
        for i in 0..k {
            z[i] = (b[i] - (0..i).map(|p| l[[i, p]] * z[p]).sum::<f64>()) / l[[i, i]];
        }
        for i in (0..k).rev() {
            z[i] = (z[i] - (i + 1..k).map(|p| l[[p, i]] * z[p]).sum::<f64>()) / l[[i, i]];
        }
        z
    }
}

// ---------------------------------------------------------------------------
// Step 1: the generalized Cauchy point

/// The Cauchy point x^c and c = Wᵀ(x^c − x), which the subspace step reuses.
struct CauchyPoint {
    x: Vec<f64>,
    c: Vec<f64>,
}

/// The first local minimiser of the model m(x + z) = gᵀz + ½zᵀBz along the
/// piecewise-linear path P(x − tg), segment by segment between the
/// breakpoints (BLNZ §4, Algorithm CP). On each segment m is a parabola in
/// the step Δt with slope f′ and curvature f″; both are updated in O(k²)
/// per breakpoint from p = Wᵀd and c = Wᵀz (eq. 4.9–4.11).
fn generalized_cauchy_point(x: &[f64], g: &[f64], bounds: &Bounds, model: &Compact) -> CauchyPoint {
    let n = x.len();
    let (k, theta) = (model.k(), model.theta);
    let mut xc = x.to_vec();
    let mut c = vec![0.0; 2 * k];
    // d: the direction of the current segment; variables held at a bound don't move.
    let mut d = vec![0.0; n];
    let mut breakpoints = Vec::new();
    for i in 0..n {
        let t = bounds.breakpoint(i, x[i], g[i]);
        if t > 0.0 && g[i] != 0.0 {
            d[i] = -g[i];
            if t.is_finite() {
                breakpoints.push(Breakpoint { t, index: i });
            }
        }
    }
    let mut moving = d.iter().filter(|&&v| v != 0.0).count();
    if moving == 0 {
        return CauchyPoint { x: xc, c };
    }
    // A heap, as the reference: the walk usually stops long before the last breakpoint.
    let mut breakpoints = BinaryHeap::from(breakpoints);
    let mut p = model.transpose_times(&d);
    let mut slope = -dot(&d, &d);
    let curvature_initial = -theta * slope - dot(&p, &model.m_times(&p));
    let mut curvature = curvature_initial;
    let mut dt_min = -slope / curvature;
    let mut t_old = 0.0;
    let mut w_b = vec![0.0; 2 * k];
    while let Some(Breakpoint { t, index: b }) = breakpoints.pop() {
        let dt = t - t_old;
        if dt_min < dt {
            break;
        }
        // Variable b reaches its bound and stops there.
        xc[b] = if d[b] > 0.0 { bounds.upper[b] } else { bounds.lower[b] };
        let z_b = xc[b] - x[b];
        axpy(dt, &p, &mut c);
        model.row_into(b, &mut w_b);
        let m_w_b = model.m_times(&w_b);
        let g_b = g[b];
        slope += dt * curvature + g_b * g_b + theta * g_b * z_b - g_b * dot(&m_w_b, &c);
        curvature -= theta * g_b * g_b + 2.0 * g_b * dot(&m_w_b, &p) + g_b * g_b * dot(&m_w_b, &w_b);
        // Rounding can make f″ vanish or turn negative (Morales–Nocedal's safeguard).
        curvature = curvature.max(EPS * curvature_initial);
        axpy(g_b, &w_b, &mut p);
        d[b] = 0.0;
        moving -= 1;
        dt_min = -slope / curvature;
        t_old = t;
    }
    let dt_min = if moving == 0 { 0.0 } else { dt_min.max(0.0) };
    let t = t_old + dt_min;
    for i in (0..n).filter(|&i| d[i] != 0.0) {
        xc[i] = bounds.project(i, x[i] + t * d[i]);
    }
    axpy(dt_min, &p, &mut c);
    CauchyPoint { x: xc, c }
}

/// Where variable `index` meets its bound on the path; ordered so that a
/// (max-)heap yields the earliest first, ties by index.
#[derive(PartialEq)]
struct Breakpoint {
    t: f64,
    index: usize,
}

impl Eq for Breakpoint {}

impl Ord for Breakpoint {
    fn cmp(&self, other: &Self) -> Ordering {
        other.t.total_cmp(&self.t).then(other.index.cmp(&self.index))
    }
}

impl PartialOrd for Breakpoint {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

// ---------------------------------------------------------------------------
// Step 2: subspace minimisation

/// x̄: the model's minimiser over the variables free at the Cauchy point,
/// the others held there (BLNZ §5.1, direct primal method), brought back
/// into the box. None when the subspace system is singular.
fn subspace_minimization(
    x: &[f64],
    g: &[f64],
    bounds: &Bounds,
    model: &Compact,
    cauchy: &CauchyPoint,
) -> Option<Vec<f64>> {
    let xc = &cauchy.x;
    let (free, active): (Vec<usize>, Vec<usize>) = (0..x.len()).partition(|&i| bounds.is_free(i, xc[i]));
    if free.is_empty() || model.k() == 0 {
        // With B = θI the Cauchy point already minimises over its free variables.
        return Some(xc.clone());
    }
    let theta = model.theta;
    let w_free = model.rows(&free);
    // Reduced gradient r = Zᵀ(g + θ(x^c − x) − W M c)   (eq. 5.4)
    let w_m_c = w_free.dot(&ArrayView1::from(&model.m_times(&cauchy.c)));
    let r: Vec<f64> = free.iter().zip(&w_m_c).map(|(&i, &wmc)| g[i] + theta * (xc[i] - x[i]) - wmc).collect();
    // du = −B̂⁻¹r with B̂⁻¹ = I/θ + ZᵀW (M⁻¹ − WᵀZZᵀW/θ)⁻¹ WᵀZ / θ²   (eq. 5.10–5.11)
    let wt_z_r = transpose_times(&w_free, &r);
    let v = model.subspace_system(&w_free, &active)?.solve(&wt_z_r);
    let w_v = w_free.dot(&ArrayView1::from(&v));
    let du: Vec<f64> = r.iter().zip(&w_v).map(|(&r_i, &wv)| -r_i / theta - wv / theta.powi(2)).collect();
    Some(project_or_truncate(x, g, bounds, xc, &free, &du))
}

/// x^c + du brought into the box: projected when that still descends from
/// x (Morales–Nocedal 2011), otherwise truncated at the first bound the
/// segment from x^c meets (the original BLNZ eq. 5.8).
fn project_or_truncate(x: &[f64], g: &[f64], bounds: &Bounds, xc: &[f64], free: &[usize], du: &[f64]) -> Vec<f64> {
    let mut projected = xc.to_vec();
    for (&i, &step) in free.iter().zip(du) {
        projected[i] = bounds.project(i, xc[i] + step);
    }
    let slope: f64 = (0..x.len()).map(|i| (projected[i] - x[i]) * g[i]).sum();
    if slope <= 0.0 {
        return projected;
    }
    let mut alpha = 1.0;
    let mut limiting = None;
    for (j, (&i, &step)) in free.iter().zip(du).enumerate() {
        let room = if step < 0.0 { bounds.lower[i] - xc[i] } else { bounds.upper[i] - xc[i] };
        let fits = room / step;
        if step != 0.0 && fits < alpha {
            alpha = fits.max(0.0);
            limiting = Some(j);
        }
    }
    let mut truncated = xc.to_vec();
    for (j, (&i, &step)) in free.iter().zip(du).enumerate() {
        truncated[i] = match limiting {
            Some(l) if l == j && step > 0.0 => bounds.upper[i],
            Some(l) if l == j => bounds.lower[i],
            _ => bounds.project(i, xc[i] + alpha * step),
        };
    }
    truncated
}

// ---------------------------------------------------------------------------
// Step 3: the line search

/// A line search along x_k + step·(x̄ − x_k).
#[derive(Clone, Debug)]
struct LineSearch {
    direction: Vec<f64>,
    xbar: Vec<f64>,
    search: MoreThuente,
    evaluations: usize,
}

impl LineSearch {
    /// The trial point of the current step, in the box; exactly x̄ at step 1.
    fn trial(&self, x: &[f64], bounds: &Bounds) -> Vec<f64> {
        let step = self.search.step;
        if step == 1.0 {
            return self.xbar.clone();
        }
        (0..x.len()).map(|i| bounds.project(i, x[i] + step * self.direction[i])).collect()
    }
}

/// A point of the line search: the step, φ(step) and φ′(step).
#[derive(Clone, Copy, Debug)]
struct Sample {
    step: f64,
    f: f64,
    g: f64,
}

/// What the line search wants after an evaluation.
enum SearchStep {
    /// The step just evaluated is accepted.
    Accept,
    /// Evaluate at the new `step`.
    Evaluate,
    /// No acceptable step can be found from here.
    Fail,
}

/// The Moré–Thuente line search (ACM TOMS 20(3), 1994) for φ(α) = f(x +
/// αd): it finds a step with sufficient decrease φ(α) <= φ(0) + ftol·α·φ′(0)
/// and curvature |φ′(α)| <= gtol·|φ′(0)|, keeping a bracket [best, other]
/// that it shrinks with safeguarded cubic and quadratic interpolation.
#[derive(Clone, Debug)]
struct MoreThuente {
    step: f64,
    step_max: f64,
    f_init: f64,
    g_init: f64,
    /// ftol·φ′(0): the slope of the sufficient-decrease line.
    g_test: f64,
    /// Until a step has sufficient decrease and φ′ >= 0, work on the
    /// auxiliary ψ(α) = φ(α) − φ(0) − α·g_test (MT94 §3).
    first_stage: bool,
    bracketed: bool,
    /// The best step so far (lowest ψ) and the other end of the bracket.
    best: Sample,
    other: Sample,
    /// Where the next step may fall.
    interval: (f64, f64),
    width: f64,
    previous_width: f64,
}

impl MoreThuente {
    const EXTRAPOLATE_MIN: f64 = 1.1;
    const EXTRAPOLATE_MAX: f64 = 4.0;

    /// None when `slope` is no descent or the first step is outside [0, step_max].
    fn start(f: f64, slope: f64, step: f64, step_max: f64) -> Option<MoreThuente> {
        if !(slope < 0.0 && step > 0.0 && step <= step_max) {
            return None;
        }
        let origin = Sample { step: 0.0, f, g: slope };
        Some(MoreThuente {
            step,
            step_max,
            f_init: f,
            g_init: slope,
            g_test: FTOL * slope,
            first_stage: true,
            bracketed: false,
            best: origin,
            other: origin,
            interval: (0.0, step + Self::EXTRAPOLATE_MAX * step),
            width: step_max,
            previous_width: 2.0 * step_max,
        })
    }

    /// Takes φ and φ′ at `self.step` and decides.
    fn next(&mut self, f: f64, g: f64) -> SearchStep {
        let f_test = self.f_init + self.step * self.g_test;
        if self.first_stage && f <= f_test && g >= 0.0 {
            self.first_stage = false;
        }
        if self.should_stop(f, g, f_test) {
            return SearchStep::Accept;
        }
        let trial = Sample { step: self.step, f, g };
        let next = if self.first_stage && f <= self.best.f && f > f_test {
            self.step_on_auxiliary(trial)
        } else {
            safeguarded_step(&mut self.best, &mut self.other, trial, &mut self.bracketed, self.interval)
        };
        self.step = self.safeguard(next);
        if self.step > 0.0 && self.step.is_finite() { SearchStep::Evaluate } else { SearchStep::Fail }
    }

    /// Convergence, or one of the reference's warnings (which also accept the step).
    fn should_stop(&self, f: f64, g: f64, f_test: f64) -> bool {
        let (lo, hi) = self.interval;
        let rounding = self.bracketed && (self.step <= lo || self.step >= hi);
        let narrow = self.bracketed && hi - lo <= XTOL * hi;
        let at_max = self.step == self.step_max && f <= f_test && g <= self.g_test;
        let converged = f <= f_test && g.abs() <= GTOL * -self.g_init;
        rounding || narrow || at_max || converged
    }

    /// The step chosen on ψ, whose minimisers have sufficient decrease.
    fn step_on_auxiliary(&mut self, trial: Sample) -> f64 {
        let g_test = self.g_test;
        let shift = |s: Sample| Sample { step: s.step, f: s.f - s.step * g_test, g: s.g - g_test };
        let unshift = |s: Sample| Sample { step: s.step, f: s.f + s.step * g_test, g: s.g + g_test };
        let (mut best, mut other) = (shift(self.best), shift(self.other));
        let next = safeguarded_step(&mut best, &mut other, shift(trial), &mut self.bracketed, self.interval);
        (self.best, self.other) = (unshift(best), unshift(other));
        next
    }

    /// Forces enough shrinkage of the bracket (bisecting when it shrank too
    /// little), updates where the next step may fall, and keeps it there.
    fn safeguard(&mut self, mut step: f64) -> f64 {
        let (best, other) = (self.best.step, self.other.step);
        if self.bracketed {
            if (other - best).abs() >= 0.66 * self.previous_width {
                step = best + 0.5 * (other - best);
            }
            self.previous_width = self.width;
            self.width = (other - best).abs();
            self.interval = (best.min(other), best.max(other));
        } else {
            self.interval =
                (step + Self::EXTRAPOLATE_MIN * (step - best), step + Self::EXTRAPOLATE_MAX * (step - best));
        }
        step = step.max(0.0).min(self.step_max);
        let (lo, hi) = self.interval;
        if self.bracketed && (step <= lo || step >= hi || hi - lo <= XTOL * hi) {
            step = best;
        }
        step
    }
}

/// One safeguarded step of MT94 (their `dcstep`): from the best point
/// `best`, the bracket's other end `other` and the new `trial`, the next
/// step, with the bracket updated. `interval` bounds the step when no
/// minimiser is bracketed yet.
fn safeguarded_step(
    best: &mut Sample,
    other: &mut Sample,
    trial: Sample,
    bracketed: &mut bool,
    interval: (f64, f64),
) -> f64 {
    let opposite_slopes = trial.g * best.g.signum() < 0.0;
    let next = if trial.f > best.f {
        *bracketed = true;
        higher_value_step(*best, trial)
    } else if opposite_slopes {
        *bracketed = true;
        opposite_slope_step(*best, trial)
    } else if trial.g.abs() < best.g.abs() {
        flatter_slope_step(*best, *other, trial, *bracketed, interval)
    } else if *bracketed {
        cubic_step(trial, *other)
    } else if trial.step > best.step {
        interval.1
    } else {
        interval.0
    };
    if trial.f > best.f {
        *other = trial;
    } else {
        if opposite_slopes {
            *other = *best;
        }
        *best = trial;
    }
    next
}

/// Case 1 of MT94: a higher value brackets a minimiser; the cubic step if
/// it is closer to the best point, else between cubic and quadratic.
fn higher_value_step(best: Sample, trial: Sample) -> f64 {
    let cubic = cubic_step(best, trial);
    let quadratic =
        best.step + best.g / ((best.f - trial.f) / (trial.step - best.step) + best.g) / 2.0 * (trial.step - best.step);
    if (cubic - best.step).abs() < (quadratic - best.step).abs() { cubic } else { cubic + (quadratic - cubic) / 2.0 }
}

/// Case 2: slopes of opposite sign bracket a minimiser; the step farther
/// from the trial of the cubic and the secant.
fn opposite_slope_step(best: Sample, trial: Sample) -> f64 {
    let cubic = cubic_step(trial, best);
    let secant = secant_step(trial, best);
    if (cubic - trial.step).abs() > (secant - trial.step).abs() { cubic } else { secant }
}

/// Case 3: lower value, same slope sign, smaller slope magnitude.
fn flatter_slope_step(best: Sample, other: Sample, trial: Sample, bracketed: bool, interval: (f64, f64)) -> f64 {
    let (r, gamma) = cubic_ratio(trial, best);
    let cubic = if r < 0.0 && gamma != 0.0 {
        trial.step + r * (best.step - trial.step)
    } else if trial.step > best.step {
        interval.1
    } else {
        interval.0
    };
    let secant = secant_step(trial, best);
    let distance = |s: f64| (s - trial.step).abs();
    if bracketed {
        let step = if distance(cubic) < distance(secant) { cubic } else { secant };
        let limit = trial.step + 0.66 * (other.step - trial.step);
        if trial.step > best.step { step.min(limit) } else { step.max(limit) }
    } else {
        let step = if distance(cubic) > distance(secant) { cubic } else { secant };
        step.min(interval.1).max(interval.0)
    }
}

/// The minimiser of the cubic interpolating f and f′ at `a` and `b`.
fn cubic_step(a: Sample, b: Sample) -> f64 {
    a.step + cubic_ratio(a, b).0 * (b.step - a.step)
}

/// r with the cubic's minimiser at a + r(b − a), and γ (zero when the
/// cubic has no minimiser).
fn cubic_ratio(a: Sample, b: Sample) -> (f64, f64) {
    let theta = 3.0 * (a.f - b.f) / (b.step - a.step) + a.g + b.g;
    let s = theta.abs().max(a.g.abs()).max(b.g.abs());
    let mut gamma = s * ((theta / s).powi(2) - (a.g / s) * (b.g / s)).max(0.0).sqrt();
    if b.step < a.step {
        gamma = -gamma;
    }
    let p = (gamma - a.g) + theta;
    let q = ((gamma - a.g) + gamma) + b.g;
    (p / q, gamma)
}

/// Where the secant of f′ through `a` and `b` vanishes.
fn secant_step(a: Sample, b: Sample) -> f64 {
    a.step + a.g / (a.g - b.g) * (b.step - a.step)
}

// ---------------------------------------------------------------------------

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Aᵀv, row by row (rows of A are contiguous; zeros of v are common).
fn transpose_times(a: &Array2<f64>, v: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.ncols()];
    for (row, &v_i) in a.rows().into_iter().zip(v).filter(|(_, v_i)| **v_i != 0.0) {
        out.iter_mut().zip(row).for_each(|(o, &a)| *o += v_i * a);
    }
    out
}

/// y += alpha x.
fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += alpha * x);
}
