//! The refinement after the search over c: from each success, the
//! nearest point of the target's region, by sequential quadratic
//! programming on the logit margins.
//!
//! Around a point y0 the region where the model says l is, to first order,
//! the polyhedron { y : m_j + a_j · (y - y0) <= -κ for every j != l }, with
//! m_j = z_j - z_l the logit margins at y0 and a_j their gradients. Its
//! nearest point to x inside the box is a convex programme whose dual has
//! one variable per class:
//!
//!   maximise over λ >= 0:  q(λ) = |y(λ) - x|² + Σ_j λ_j (a_j · y(λ) - b_j),
//!   y(λ) = clip(x - Σ_j λ_j a_j / 2, 0, 1),   b_j = a_j · y0 - m_j - κ,
//!
//! concave and differentiable (∇q = A y(λ) - b), which L-BFGS-B solves in
//! f64 far past the precision of the model's f32 logits. Softmax
//! regression has linear margins, so one round gives the exact answer;
//! other models take a few rounds, each linearised at the last answer.

use anyhow::Result;
use ndarray::{Array2, Array4, ArrayView2};

use super::gradient::{Linearized, Margins};
use super::lbfgsb::{self, Solver};

/// Rounds of linearisation at most.
pub const ROUNDS: usize = 5;
/// How far past the boundary (in logits) each round aims, so that its
/// answer is inside the region; the final shrink takes it back.
const KAPPA: f64 = 1e-3;
/// A round that moves the answer's distortion by less than this
/// (relatively) ends the example's refinement.
const SETTLED: f64 = 1e-4;

/// One example being refined.
pub struct Refining<'a> {
    pub original: &'a [f64],
    pub target: usize,
    /// The point the next round linearises at.
    pub point: Vec<f64>,
}

/// One round for every example: the nearest point of each linearised
/// region. Returns the answers in order.
pub fn round(margins: &mut Margins, examples: &[Refining], shape: &[usize]) -> Result<Vec<Vec<f64>>> {
    let flat: Vec<f32> = examples.iter().flat_map(|e| e.point.iter().map(|&v| v as f32)).collect();
    let images = Array4::from_shape_vec([examples.len(), shape[1], shape[2], shape[3]], flat)?;
    let targets: Vec<usize> = examples.iter().map(|e| e.target).collect();
    let linear = margins.run(images.view(), &targets)?;
    let polytopes: Vec<Polytope> = examples.iter().zip(&linear).map(|(e, l)| Polytope::new(e, l)).collect();
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
    Ok(polytopes.iter().zip(&duals).map(|(p, d)| p.primal(d.x())).collect())
}

/// Whether a round changed a distortion too little to go on.
pub fn settled(before: f64, after: f64) -> bool {
    (before - after).abs() <= SETTLED * before.max(f64::MIN_POSITIVE)
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
    fn new(example: &Refining<'a>, linear: &Linearized) -> Polytope<'a> {
        let others: Vec<usize> = (0..linear.margins.len()).filter(|&j| j != example.target).collect();
        let a = linear.gradients.select(ndarray::Axis(0), &others);
        let y0 = ndarray::ArrayView1::from(&example.point);
        let b = others.iter().zip(a.rows()).map(|(&j, a_j)| a_j.dot(&y0) - linear.margins[j] - KAPPA).collect();
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
