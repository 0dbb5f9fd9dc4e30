//! Spectral analysis (Szegedy et al. 2014, §4.3, Table 5): an upper bound on
//! the Lipschitz constant of each layer of a model, and their product, an
//! upper bound for the whole network.
//!
//! The paper's argument: a network is a composition `f = φ_K ∘ … ∘ φ_1`,
//! and `||f(x) - f(x + r)|| ≤ L_1 ⋯ L_K ||r||` when each `φ_k` is
//! `L_k`-Lipschitz in the Euclidean norm. Large products leave room for
//! adversarial examples; small ones would rule them out. A bound is only
//! an upper bound: [`measure`] gives a lower bound of the same constant,
//! measured on images, so the gap can be seen.
//!
//! How each op is bounded, and why the bound is valid, is documented where
//! it is computed: [`dense`] (fully connected layers), [`conv`] (the
//! Fourier method), [`pool`], [`lrn`] (contrast normalisation), and
//! [`layers`] for everything else. [`chain`] finds the layers: the path from
//! the model's input to its first output, which must be a chain (one data
//! input per node) for the product to be a bound.
//!
//! Ctrl-C is heard between layers, between the frequencies of a
//! convolution and between pieces of the measurement; one SVD of a weight
//! matrix is one step (a fraction of a second for the paper's layers).

pub mod chain;
pub mod conv;
pub mod dense;
pub mod lanczos;
pub mod layers;
pub mod lrn;
pub mod measure;
pub mod norm;
pub mod pool;
pub mod svd;

use anyhow::Result;

use crate::onnx::ModelProto;

/// The bound of one node on the path from input to scores.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// The node's name (or, unnamed, its output tensor).
    pub name: String,
    /// The ONNX op type.
    pub op: String,
    /// The weight tensor the bound comes from, with its shape.
    pub weight: Option<(String, Vec<usize>)>,
    /// The stride of convolutions and pools.
    pub stride: Option<[usize; 2]>,
    /// An upper bound of the node's Lipschitz constant (Euclidean norms).
    pub bound: f64,
    /// How the bound was obtained, in a few words.
    pub method: String,
}

/// The per-layer bounds of a chain model.
#[derive(Clone, Debug)]
pub struct Bounds {
    pub layers: Vec<Layer>,
}

impl Bounds {
    /// The product of the per-layer bounds: an upper bound of the whole
    /// network's Lipschitz constant, since the layers compose in a chain.
    pub fn product(&self) -> f64 {
        self.layers.iter().map(|l| l.bound).product()
    }
}

/// Bounds every node on the path from the model's input to its first
/// output. Fails, naming the node, on an op without a bound or a graph
/// that is not a chain.
pub fn analyse(model: &ModelProto) -> Result<Bounds> {
    let steps = chain::walk(model)?;
    let layers = steps
        .iter()
        .map(|step| crate::interrupt::check().and_then(|()| layers::bound(step)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Bounds { layers })
}
