//! The box `lower <= x <= upper`.

use std::sync::Arc;

use anyhow::{Result, ensure};

use super::UNBOUNDED_STEP;

/// Shared: the problems of a batch over one box read one copy of it, and
/// the solver's passes are bound by memory traffic more than arithmetic.
#[derive(Clone, Debug)]
pub(super) struct Bounds {
    pub(super) lower: Arc<[f64]>,
    pub(super) upper: Arc<[f64]>,
    /// Some variable has a finite bound.
    pub(super) constrained: bool,
    /// Every variable has two finite bounds.
    pub(super) boxed: bool,
}

impl Bounds {
    pub(super) fn new(lower: Arc<[f64]>, upper: Arc<[f64]>) -> Result<Bounds> {
        ensure!(lower.len() == upper.len(), "{} lower bounds but {} upper bounds", lower.len(), upper.len());
        for (i, (&l, &u)) in lower.iter().zip(upper.iter()).enumerate() {
            ensure!(l <= u, "variable {i}: lower bound {l} is not <= upper bound {u}");
            ensure!(l < f64::INFINITY && u > f64::NEG_INFINITY, "variable {i}: the bounds [{l}, {u}] hold no number");
        }
        let finite = |v: &f64| v.is_finite();
        let constrained = lower.iter().any(finite) || upper.iter().any(finite);
        let boxed = lower.iter().all(finite) && upper.iter().all(finite);
        Ok(Bounds { lower, upper, constrained, boxed })
    }

    pub(super) fn len(&self) -> usize {
        self.lower.len()
    }

    #[inline(always)]
    pub(super) fn project(&self, i: usize, v: f64) -> f64 {
        v.max(self.lower[i]).min(self.upper[i])
    }

    #[inline(always)]
    pub(super) fn is_free(&self, i: usize, v: f64) -> bool {
        self.lower[i] < v && v < self.upper[i]
    }

    /// ‖P(x − g) − x‖∞, zero exactly at a KKT point (BLNZ §6).
    #[inline(always)]
    pub(super) fn projected_gradient_norm(&self, x: &[f64], g: &[f64]) -> f64 {
        (0..x.len())
            .map(|i| if g[i] < 0.0 { (self.upper[i] - x[i]).min(-g[i]) } else { (x[i] - self.lower[i]).min(g[i]) })
            .fold(0.0, f64::max)
    }

    /// The largest step along `d` from `x` that stays in the box (capped).
    #[inline(always)]
    pub(super) fn max_step(&self, x: &[f64], d: &[f64]) -> f64 {
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
    #[inline(always)]
    pub(super) fn breakpoint(&self, i: usize, x: f64, g: f64) -> f64 {
        if g < 0.0 && self.upper[i].is_finite() {
            (x - self.upper[i]) / g
        } else if g > 0.0 && self.lower[i].is_finite() {
            (x - self.lower[i]) / g
        } else {
            f64::INFINITY
        }
    }
}
