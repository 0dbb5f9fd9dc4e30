//! One problem as a reverse-communication state machine.

use std::sync::Arc;

use anyhow::{Result, bail, ensure};

use super::bounds::Bounds;
use super::cauchy::CauchyPoint;
use super::compact::Compact;
use super::kernels::{difference_dot, fast, finite_and_dot};
use super::line_search::{self, LineSearch, MoreThuente, SearchStep};
use super::memory::Memory;
use super::subspace::Subspace;
use super::{EPS, LINE_SEARCH_EVALUATIONS, MAX_MEMORY, Options, Reason, Status, UNBOUNDED_STEP, dot};

/// One box-constrained problem as a reverse-communication state machine:
/// `ask` for a point, evaluate f and g there, `tell` them, until `ask`
/// says `None`. Every buffer an iteration needs is allocated here once.
#[derive(Clone, Debug)]
pub struct Solver {
    bounds: Bounds,
    options: Options,
    /// The current iterate x_k with its value and gradient.
    x: Vec<f64>,
    f: f64,
    g: Vec<f64>,
    memory: Memory,
    model: Compact,
    cauchy: CauchyPoint,
    subspace: Subspace,
    phase: Phase,
    /// The line search's segment: x̄ and x̄ − x_k.
    xbar: Vec<f64>,
    direction: Vec<f64>,
    /// Where f and g are wanted next.
    point: Vec<f64>,
    /// The best point evaluated, its value and gradient (for
    /// [`restart`](Self::restart)). Usually the iterate itself, which
    /// then stands for it and nothing is copied; `best_x` and `best_g`
    /// only hold a better line-search point that was not accepted.
    best_is_iterate: bool,
    best_x: Vec<f64>,
    best_f: f64,
    best_g: Vec<f64>,
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
    /// infinite; `lower[i] == upper[i]` fixes a variable. Problems of a
    /// batch over the same box may share its bounds (an `Arc<[f64]>`).
    pub fn new(
        x0: Vec<f64>,
        lower: impl Into<Arc<[f64]>>,
        upper: impl Into<Arc<[f64]>>,
        options: Options,
    ) -> Result<Solver> {
        validate_options(&options)?;
        let bounds = Bounds::new(lower.into(), upper.into())?;
        ensure!(x0.len() == bounds.len(), "x0 has {} variables but the bounds {}", x0.len(), bounds.len());
        if let Some(i) = x0.iter().position(|v| !v.is_finite()) {
            bail!("x0[{i}] is {}: the starting point must be finite", x0[i]);
        }
        let x: Vec<f64> = x0.iter().enumerate().map(|(i, &v)| bounds.project(i, v)).collect();
        let (n, m) = (x.len(), options.memory);
        Ok(Solver {
            memory: Memory::new(m, n),
            model: Compact::default(),
            cauchy: CauchyPoint::new(n, m),
            subspace: Subspace::new(m),
            bounds,
            options,
            xbar: vec![0.0; n],
            direction: vec![0.0; n],
            point: x.clone(),
            best_is_iterate: true,
            best_x: vec![0.0; n],
            best_f: f64::NAN,
            best_g: vec![0.0; n],
            x,
            f: f64::NAN,
            g: vec![0.0; n],
            phase: Phase::Start,
            status: None,
            iterations: 0,
            evaluations: 0,
        })
    }

    /// Starts again from the best point, [`x`](Self::x), on a new
    /// objective whose value there is `f` and gradient `g`, keeping the
    /// memory. The new objective must be `scale · f_old + (curvature / 2)
    /// · |x|²` plus an affine term: each pair's y then becomes `scale · y +
    /// curvature · s`, the new objective's exact difference of gradients
    /// between the same points, so the first iterations already have
    /// curvature information and the start costs no evaluation. The
    /// attack's search over c changes its objective this way from one c to
    /// the next. Pairs that fail the update's curvature test after the
    /// change are dropped.
    pub fn restart(&mut self, scale: f64, curvature: f64, f: f64, g: &[f64]) -> Result<()> {
        ensure!(scale > 0.0 && scale.is_finite(), "the objective's scale must be positive and finite, not {scale}");
        ensure!(curvature.is_finite(), "the added curvature must be finite, not {curvature}");
        ensure!(self.best_f.is_finite(), "a restart needs an evaluated best point");
        ensure!(g.len() == self.x.len(), "gradient of length {} for {} variables", g.len(), self.x.len());
        ensure!(f.is_finite() && g.iter().all(|v| v.is_finite()), "a restart needs a finite value and gradient");
        if !self.best_is_iterate {
            self.x.copy_from_slice(&self.best_x);
        }
        self.point.copy_from_slice(&self.x);
        (self.best_f, self.best_is_iterate) = (f, true);
        self.memory.reweight(scale, curvature);
        (self.phase, self.status, self.iterations, self.evaluations) = (Phase::Start, None, 0, 0);
        self.started(f, g);
        Ok(())
    }

    /// The point where the solver wants f and g next, or None when finished.
    pub fn ask(&self) -> Option<&[f64]> {
        if self.status.is_some() { None } else { Some(&self.point) }
    }

    /// The number of variables.
    pub(super) fn variables(&self) -> usize {
        self.x.len()
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
        fast(
            #[inline(always)]
            || self.told(f, g),
        );
        Ok(())
    }

    #[inline(always)]
    fn told(&mut self, f: f64, g: &[f64]) {
        // φ′ of the line search (meaningless, and unused, at the start).
        let (finite, slope) = finite_and_dot(g, &self.direction);
        if !f.is_finite() || !finite {
            return self.finish(Status::NonFinite);
        }
        // best_f starts as NaN, so the first finite f always wins.
        let improves = self.best_f.is_nan() || f < self.best_f;
        match std::mem::replace(&mut self.phase, Phase::Start) {
            Phase::Start => {
                if improves {
                    (self.best_f, self.best_is_iterate) = (f, true);
                }
                self.started(f, g)
            }
            Phase::LineSearch(search) => self.line_search_step(search, f, g, slope, improves),
        }
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
        if self.best_is_iterate { &self.x } else { &self.best_x }
    }

    /// f at [`x`](Self::x); NaN before the first evaluation.
    #[allow(clippy::misnamed_getters)] // The value at the best point, as `x` is.
    pub fn f(&self) -> f64 {
        self.best_f
    }

    /// The gradient at [`x`](Self::x) (zeros before the first evaluation).
    pub fn gradient(&self) -> &[f64] {
        if self.best_is_iterate { &self.g } else { &self.best_g }
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
            let search = if self.search_point() { self.begin_line_search() } else { None };
            match search {
                Some(search) if search.search.below_noise() => return self.finish(Status::Converged(Reason::Noise)),
                Some(search) => return self.ask_line_search(search),
                None if self.memory.is_empty() => return self.finish(Status::LineSearchFailed),
                None => self.memory.clear(),
            }
        }
    }

    /// x̄, the end of the segment the line search explores, into `xbar`:
    /// the generalized Cauchy point improved by subspace minimisation.
    /// False when the limited-memory matrices are numerically singular.
    fn search_point(&mut self) -> bool {
        if !self.model.form(&self.memory) {
            return false;
        }
        if !self.bounds.constrained && !self.memory.is_empty() {
            self.cauchy.at(&self.x);
        } else {
            self.cauchy.find(&self.x, &self.g, &self.bounds, &self.memory, &self.model);
        }
        let (x, g, bounds) = (&self.x, &self.g, &self.bounds);
        self.subspace.minimize((x, g), bounds, &mut self.memory, &self.model, &self.cauchy, &mut self.xbar)
    }

    /// A line search from x_k toward x̄, or None when x̄ − x_k is no descent direction.
    fn begin_line_search(&mut self) -> Option<LineSearch> {
        fast(
            #[inline(always)]
            || self.segment(),
        )
    }

    #[inline(always)]
    fn segment(&mut self) -> Option<LineSearch> {
        let slope = difference_dot(&mut self.direction, &self.xbar, &self.x, &self.g);
        let direction = &self.direction;
        // The reference code's first iteration, before any curvature
        // information (a restarted problem has its memory).
        let first = self.iterations == 0 && self.memory.is_empty();
        let max_step = if !self.bounds.constrained {
            UNBOUNDED_STEP
        } else if first {
            1.0
        } else {
            self.bounds.max_step(&self.x, direction)
        };
        // Steepest descent has no scale: a unit-length step.
        let step = if first && !self.bounds.boxed {
            (1.0 / dot(direction, direction).sqrt()).min(max_step)
        } else {
            1.0_f64.min(max_step)
        };
        let noise = self.options.noise * self.f.abs();
        let search = MoreThuente::start(self.f, slope, step, max_step, noise)?;
        Some(LineSearch { search, evaluations: 0 })
    }

    #[inline(always)]
    fn ask_line_search(&mut self, mut search: LineSearch) {
        if self.evaluations >= self.options.max_evaluations {
            return self.finish(Status::EvaluationLimit);
        }
        let step = search.search.step;
        line_search::trial(step, &self.x, &self.direction, &self.xbar, &self.bounds, &mut self.point);
        search.evaluations += 1;
        self.phase = Phase::LineSearch(search);
    }

    #[inline(always)]
    fn line_search_step(&mut self, mut search: LineSearch, f: f64, g: &[f64], slope: f64, improves: bool) {
        let step = search.search.next(f, slope);
        if improves {
            self.best_f = f;
            // An accepted point becomes the iterate; any other is kept now, before the next trial overwrites it.
            self.best_is_iterate = matches!(step, SearchStep::Accept);
            if !self.best_is_iterate {
                self.best_x.copy_from_slice(&self.point);
                self.best_g.copy_from_slice(g);
            }
        }
        match step {
            SearchStep::Accept => self.accept(f, g),
            SearchStep::Evaluate if search.evaluations < LINE_SEARCH_EVALUATIONS => self.ask_line_search(search),
            SearchStep::BelowNoise => self.finish(Status::Converged(Reason::Noise)),
            _ if self.memory.is_empty() => self.finish(Status::LineSearchFailed),
            _ => {
                self.memory.clear();
                self.next_iteration();
            }
        }
    }

    /// Moves to the line search's point, tests for convergence and updates
    /// the memory (with the step's pair, before x and g move).
    fn accept(&mut self, f: f64, g: &[f64]) {
        let f_old = self.f;
        self.iterations += 1;
        let reduction = (f_old - f) / f_old.abs().max(f.abs()).max(1.0);
        let finished = if self.bounds.projected_gradient_norm(&self.point, g) <= self.options.pgtol {
            Some(Status::Converged(Reason::ProjectedGradient))
        } else if reduction <= self.options.factr * EPS {
            Some(Status::Converged(Reason::RelativeReduction))
        } else if self.iterations >= self.options.max_iterations {
            Some(Status::IterationLimit)
        } else {
            None
        };
        if finished.is_none() {
            self.memory.push(&self.x, &self.point, &self.g, g);
        }
        self.x.copy_from_slice(&self.point);
        self.f = f;
        self.g.copy_from_slice(g);
        match finished {
            Some(status) => self.finish(status),
            None => self.next_iteration(),
        }
    }
}

fn validate_options(options: &Options) -> Result<()> {
    ensure!(options.memory >= 1, "L-BFGS-B needs a memory of at least 1 pair");
    ensure!(
        options.memory <= MAX_MEMORY,
        "a memory of {} pairs is more than the {MAX_MEMORY} supported",
        options.memory
    );
    ensure!(options.pgtol >= 0.0, "pgtol must be >= 0, not {}", options.pgtol);
    ensure!(options.factr >= 0.0, "factr must be >= 0, not {}", options.factr);
    ensure!(options.noise >= 0.0 && options.noise < 1.0, "noise must be in [0, 1), not {}", options.noise);
    Ok(())
}
