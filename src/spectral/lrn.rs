//! Contrast normalisation: ONNX's LRN,
//! `y_c = x_c / (k + a S_c)^β` with `a = alpha / size` and `S_c` the sum of
//! `x_j²` over the window `N(c)` of `size` channels around `c`, at each
//! pixel on its own (so a pixel's bound is the layer's).
//!
//! The paper (§4.3) bounds its contrast normalisation
//! `φ(x) = x / (ε + ||x||²)^γ` by `ε^-γ` for `γ ∈ [0.5, 1]`. That is LRN
//! when every window holds every channel (`k = ε`, `β = γ`; scaling `x` by
//! `√a` leaves the constant unchanged). advx uses:
//!
//! - **Whole windows** (`⌊(size-1)/2⌋ ≥ C - 1`): the Jacobian is
//!   `D^-β (I - 2βa x xᵀ / D)`, `D = k + a||x||²`, with eigenvalues `D^-β`
//!   and, along `x`, `D^-β (1 - 2βt)` where `t = a||x||²/D ∈ [0, 1)` and
//!   `D = k/(1-t)`. The first is at most `k^-β`; the second is
//!   `k^-β (1-t)^β |1 - 2βt|`, at most `k^-β` too (when `2βt > 1`,
//!   `(1-t)^β (2βt - 1) ≤ e^-u (2u - 1) ≤ 2e^-1.5 < 1` with `u = βt`).
//!   So `L = k^-β`, reached at `x = 0`: the paper's `ε^-γ`, for every `β ≥ 0`.
//! - **Partial windows** (the usual case, e.g. AlexNet's size 5): the
//!   Jacobian is `diag(D_c^-β) - M` with
//!   `M_cj = 2βa x_c x_j D_c^(-β-1) [j ∈ N(c)]`. By the Schur test with
//!   weights `|x|`: a row gives `|x_c| 2β aS_c / D_c^(β+1) ≤ |x_c| 2βg`,
//!   `g = sup_u u/(k+u)^(β+1) = k^-β β^β/(1+β)^(β+1)`; a column sums at
//!   most `size` terms `2βa x_c²/D_c^(β+1) ≤ 2βg` (`x_c` is in its own
//!   window), giving `|x_j| 2β size g`. So `||M|| ≤ 2βg√size` and
//!   `L ≤ k^-β (1 + 2β √size β^β/(1+β)^(β+1))`, about `2.0 k^-β` for
//!   size 5 and `β = 0.75`. Numerical searches (the test below, and
//!   hill-climbing on the Jacobian norm) find nothing above `k^-β` here
//!   either, but without a proof advx reports the bound it can prove.

use anyhow::{Result, bail};

use super::Layer;
use super::graph::Step;
use super::layers::base;
use crate::onnx::shape::Dim;

/// LRN's parameters and the channel count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lrn {
    pub size: usize,
    pub alpha: f64,
    pub beta: f64,
    pub bias: f64,
    pub channels: usize,
}

impl Lrn {
    /// Whether every channel's window holds every channel.
    pub fn whole_windows(&self) -> bool {
        (self.size - 1) / 2 + 1 >= self.channels
    }

    /// The Lipschitz bound of the module doc.
    pub fn bound(&self) -> f64 {
        let (b, k) = (self.beta, self.bias);
        if self.whole_windows() {
            k.powf(-b)
        } else {
            let g = b.powf(b) / (1.0 + b).powf(b + 1.0);
            k.powf(-b) * (1.0 + 2.0 * b * (self.size as f64).sqrt() * g)
        }
    }
}

/// An LRN node.
pub fn layer(step: &Step) -> Result<Layer> {
    let n = &step.node;
    let channels = match step.input().get(1) {
        Some(&Dim::Fixed(c)) => c,
        _ => bail!("{} needs a static channel count", n.describe()),
    };
    let size = n.int("size", 0);
    let lrn = Lrn {
        size: size.max(1) as usize,
        alpha: n.float("alpha", 1e-4) as f64,
        beta: n.float("beta", 0.75) as f64,
        bias: n.float("bias", 1.0) as f64,
        channels,
    };
    if size < 1 || lrn.bias <= 0.0 || lrn.alpha < 0.0 || lrn.beta < 0.0 {
        bail!("{} needs size ≥ 1, bias > 0, alpha ≥ 0 and beta ≥ 0 for a bound", n.describe());
    }
    let method = match lrn.whole_windows() {
        true => "k^-β (the paper's ε^-γ)",
        false => "k^-β (1 + 2β√size β^β/(1+β)^(β+1))",
    };
    Ok(base(step, lrn.bound(), method))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spectral::svd;
    use nalgebra::DMatrix;
    use rand::{Rng, SeedableRng};

    fn forward(p: &Lrn, x: &[f64]) -> Vec<f64> {
        let c = x.len() as i64;
        let (down, up) = ((p.size as i64 - 1) / 2, (p.size as i64) / 2);
        (0..c)
            .map(|i| {
                let s: f64 = ((i - down).max(0)..=(i + up).min(c - 1)).map(|j| x[j as usize].powi(2)).sum();
                x[i as usize] / (p.bias + p.alpha / p.size as f64 * s).powf(p.beta)
            })
            .collect()
    }

    /// The largest Jacobian norm over random points (central differences).
    fn measured(p: &Lrn, seed: u64) -> f64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut worst = 0.0f64;
        for _ in 0..300 {
            let scale = 10f64.powf(rng.random_range(-1.0..2.0));
            let x: Vec<f64> = (0..p.channels).map(|_| scale * rng.random_range(-1.0..1.0)).collect();
            let h = 1e-6 * scale.max(1.0);
            let jacobian = DMatrix::from_fn(p.channels, p.channels, |i, j| {
                let (mut plus, mut minus) = (x.clone(), x.clone());
                plus[j] += h;
                minus[j] -= h;
                (forward(p, &plus)[i] - forward(p, &minus)[i]) / (2.0 * h)
            });
            worst = worst.max(svd::sigma_max(jacobian));
        }
        worst
    }

    #[test]
    fn the_bound_holds_at_random_points_for_partial_and_whole_windows() {
        for (size, beta, channels) in [(3, 0.75, 7), (5, 0.75, 9), (15, 0.75, 6), (15, 1.5, 6), (3, 1.5, 5)] {
            let p = Lrn { size, alpha: 0.5, beta, bias: 2.0, channels };
            let (m, b) = (measured(&p, size as u64), p.bound());
            assert!(m <= b * (1.0 + 1e-6), "size {size} beta {beta}: measured {m} > bound {b}");
            let tight = if p.whole_windows() { 0.99 } else { 0.4 };
            assert!(m >= tight * b, "size {size} beta {beta}: measured {m} is far below bound {b}");
        }
    }
}
