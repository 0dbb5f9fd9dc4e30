//! Step 3: the Moré–Thuente line search along the segment from x_k to x̄.

use super::bounds::Bounds;
use super::{FTOL, GTOL, XTOL};

/// A line search along x_k + step·(x̄ − x_k); the direction and x̄ are the
/// solver's buffers.
#[derive(Clone, Debug)]
pub(super) struct LineSearch {
    pub(super) search: MoreThuente,
    pub(super) evaluations: usize,
}

/// The trial point x + step·direction in the box, into `point`; exactly
/// x̄ at step 1.
#[inline(always)]
pub(super) fn trial(step: f64, x: &[f64], direction: &[f64], xbar: &[f64], bounds: &Bounds, point: &mut [f64]) {
    if step == 1.0 {
        point.copy_from_slice(xbar);
        return;
    }
    for (i, p) in point.iter_mut().enumerate() {
        *p = bounds.project(i, x[i] + step * direction[i]);
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
pub(super) enum SearchStep {
    /// The step just evaluated is accepted.
    Accept,
    /// Evaluate at the new `step`.
    Evaluate,
    /// No acceptable step can be found from here.
    Fail,
    /// The next step is too short to lower f by more than its noise.
    BelowNoise,
}

/// The Moré–Thuente line search (ACM TOMS 20(3), 1994) for φ(α) = f(x +
/// αd): it finds a step with sufficient decrease φ(α) <= φ(0) + ftol·α·φ′(0)
/// and curvature |φ′(α)| <= gtol·|φ′(0)|, keeping a bracket [best, other]
/// that it shrinks with safeguarded cubic and quadratic interpolation.
#[derive(Clone, Debug)]
pub(super) struct MoreThuente {
    pub(super) step: f64,
    step_max: f64,
    /// Steps shorter than this cannot lower f by more than its noise.
    step_min: f64,
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

    /// None when `slope` is no descent or the first step is outside [0,
    /// step_max]. `noise` is the absolute error of f's evaluations: f falls
    /// by at most about step·|slope| (the model's minimiser is at step 1),
    /// so no step with that below the noise is tried.
    pub(super) fn start(f: f64, slope: f64, step: f64, step_max: f64, noise: f64) -> Option<MoreThuente> {
        if !(slope < 0.0 && step > 0.0 && step <= step_max) {
            return None;
        }
        let origin = Sample { step: 0.0, f, g: slope };
        Some(MoreThuente {
            step,
            step_max,
            step_min: noise / -slope,
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
    pub(super) fn next(&mut self, f: f64, g: f64) -> SearchStep {
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
        if !(self.step > 0.0 && self.step.is_finite()) {
            SearchStep::Fail
        } else if self.below_noise() {
            SearchStep::BelowNoise
        } else {
            SearchStep::Evaluate
        }
    }

    /// The step is too short for f's change to be told from its noise.
    pub(super) fn below_noise(&self) -> bool {
        self.step <= self.step_min
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
