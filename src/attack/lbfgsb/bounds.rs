//! The box `lower <= x <= upper`.

use std::sync::Arc;

use anyhow::{Result, ensure};

use super::UNBOUNDED_STEP;
use super::kernels::{largest, smallest};

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

    /// ‖P(x − g) − x‖∞, zero exactly at a KKT point (BLNZ §6).
    #[inline(always)]
    pub(super) fn projected_gradient_norm(&self, x: &[f64], g: &[f64]) -> f64 {
        let (lower, upper, g) = (&self.lower[..x.len()], &self.upper[..x.len()], &g[..x.len()]);
        largest(x.len(), |i| {
            let (above, below) = (upper[i] - x[i], x[i] - lower[i]);
            let room = if g[i] < 0.0 { above } else { below };
            room.min(g[i].abs())
        })
    }

    /// The largest step along `d` from `x` that stays in the box (capped).
    #[inline(always)]
    pub(super) fn max_step(&self, x: &[f64], d: &[f64]) -> f64 {
        let (lower, upper, d) = (&self.lower[..x.len()], &self.upper[..x.len()], &d[..x.len()]);
        let step = smallest(x.len(), |i| {
            let (down, up) = (lower[i] - x[i], upper[i] - x[i]);
            let ratio = if d[i] < 0.0 { down } else { up } / d[i];
            if d[i] != 0.0 { ratio } else { f64::INFINITY }
        });
        // A step <= 0: x already sits on a bound that d points through.
        if step <= 0.0 { 0.0 } else { step.min(UNBOUNDED_STEP) }
    }
}
