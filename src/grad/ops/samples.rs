//! Helpers for the rules' gradient-check samples: deterministic random
//! tensors, kept away from the kinks of piecewise ops.

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Sample, SampleInput};
use crate::onnx::AttributeProto;

/// Uniform values in [-1, 1] from a fixed seed.
pub fn uniform(dims: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    ArrayD::from_shape_simple_fn(IxDyn(dims), || rng.random_range(-1.0f32..1.0))
}

/// Values in ±[0.2, 1], so that a finite-difference step never crosses zero.
pub fn away_from_zero(dims: &[usize], seed: u64) -> ArrayD<f32> {
    uniform(dims, seed).mapv(|v| v.signum() * (0.2 + 0.8 * v.abs()))
}

/// Distinct values (a shuffled ramp), so that max and comparisons have no ties.
pub fn distinct(dims: &[usize], seed: u64) -> ArrayD<f32> {
    let n: usize = dims.iter().product();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values: Vec<f32> = (0..n).map(|i| (i as f32 - n as f32 / 2.0) * 0.1).collect();
    for i in (1..n).rev() {
        values.swap(i, rng.random_range(0..=i));
    }
    ArrayD::from_shape_vec(IxDyn(dims), values).expect("length matches")
}

/// Positive values in [0.5, 1.5], for logs, divisors and variances.
pub fn positive(dims: &[usize], seed: u64) -> ArrayD<f32> {
    uniform(dims, seed).mapv(|v| 1.0 + 0.5 * v)
}

/// A sample with checked float inputs and attributes.
pub fn checked(inputs: Vec<ArrayD<f32>>, attrs: Vec<AttributeProto>) -> Sample {
    Sample { inputs: inputs.into_iter().map(SampleInput::Checked).collect(), attrs, outputs: 1 }
}
