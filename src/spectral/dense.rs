//! Fully connected layers. `x ↦ W x + b` moves two inputs apart by
//! `||W (x - x')||`, so its Lipschitz constant is exactly the operator norm
//! `||W||₂ = σ_max(W)`, the largest singular value; the bias cancels.
//! Transposing `W` (Gemm's `transB`) keeps its singular values, and Gemm's
//! `alpha` scales them.

use anyhow::{Result, bail};
use ndarray::Ix2;

use super::graph::Step;
use super::layers::{base, constant};
use super::{Layer, svd};

/// Gemm `alpha · A·op(B) + beta·C` with the data as A and constant B.
pub fn gemm(step: &Step) -> Result<Layer> {
    let n = &step.node;
    if step.data != 0 {
        bail!("{} takes the data as its B input; advx bounds Gemm as data × weights only", n.describe());
    }
    if n.int("transA", 0) != 0 {
        bail!("{} transposes its data (transA = 1), which would mix the samples of a batch", n.describe());
    }
    let alpha = n.float("alpha", 1.0) as f64;
    let mut layer = weighted(step, 1)?;
    layer.bound *= alpha.abs();
    if alpha != 1.0 {
        layer.method.push_str(&format!(" × |alpha| {alpha}"));
    }
    Ok(layer)
}

/// MatMul of the data by a constant matrix.
pub fn matmul(step: &Step) -> Result<Layer> {
    if step.data != 0 {
        bail!("{} multiplies a constant by the data; advx bounds MatMul as data × weights only", step.node.describe());
    }
    weighted(step, 1)
}

/// The layer of a 2-D weight in input `slot`, bounded by its σ_max.
fn weighted(step: &Step, slot: usize) -> Result<Layer> {
    let (name, w) = constant(step, slot, "weight")?;
    let Ok(matrix) = w.view().into_dimensionality::<Ix2>() else {
        bail!("{}: weight '{name}' is shaped {:?}; advx bounds 2-D weights only", step.node.describe(), w.shape());
    };
    let (rows, cols) = matrix.dim();
    let mut layer = base(step, svd::sigma_max_f32(matrix)?, format!("σ_max of {rows}×{cols}"));
    layer.weight = Some((name.to_string(), w.shape().to_vec()));
    Ok(layer)
}
