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
//! A network is rarely a chain. [`graph`] walks every node on a path from
//! the input to the scores; [`Bounds::compose`] bounds each tensor by
//! induction over the graph: a node with one data input multiplies its
//! input's bound by its own constant, a sum of branches (a residual
//! `x + f(x)`, so `1 + L(f)`) adds theirs, and a `Concat` of branches takes
//! the root of the sum of their squares. For a chain that is the product of
//! the layers, the paper's bound.
//!
//! How each op is bounded, and why the bound is valid, is documented where
//! it is computed: [`dense`] (fully connected layers), [`conv`] (the
//! Fourier method), [`pool`], [`lrn`] (contrast normalisation), [`join`]
//! (nodes with several data inputs), and [`layers`] for everything else.
//!
//! Ctrl-C is heard between layers, between the frequencies of a
//! convolution and between pieces of the measurement; one SVD of a weight
//! matrix is one step (a fraction of a second for the paper's layers).

pub mod conv;
pub mod dense;
pub mod graph;
pub mod join;
pub mod lanczos;
pub mod layers;
pub mod lrn;
pub mod measure;
pub mod norm;
pub mod pool;
pub mod svd;

use std::time::Instant;

use anyhow::Result;

use crate::onnx::ModelProto;
use crate::runtime::Device;
pub use graph::Source;

/// The bound of one node on a path from input to scores.
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
    /// An upper bound of the node's Lipschitz constant (Euclidean norms)
    /// with respect to its data input; for a join, a factor applied to the
    /// combination of its inputs' bounds (1 for Add, Sub and Concat).
    pub bound: f64,
    /// The rule that gives the bound, in a few words.
    pub method: String,
    /// Where the node's data comes from, each source with the number of
    /// times broadcasting copies its values (1 but in joins).
    pub inputs: Vec<(Source, usize)>,
    /// How the inputs combine.
    pub join: Join,
    /// The time the bound took to compute.
    pub seconds: f64,
    /// The fixed dimensions of a sample of the layer's (first) data input
    /// and of its output.
    pub input: Vec<usize>,
    pub output: Vec<usize>,
    /// The layer's operator norm measured at the model's input size.
    pub norm: Measurement,
}

/// A layer's operator norm, measured at the model's input size ([`norm`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Measurement {
    /// Not asked for, or not a linear layer (its rule's constant is then
    /// what there is to know).
    None,
    Norm(norm::Norm),
    /// The measurement failed; the bound stands without it.
    Failed(String),
}

impl Measurement {
    pub fn value(&self) -> Option<f64> {
        match self {
            Measurement::Norm(n) => Some(n.value),
            _ => None,
        }
    }
}

/// What [`analyse_with`] does besides bounding.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Measure the linear layers' norms, running their graphs on this device.
    pub norms: Option<Device>,
    /// The relative residual at which a measurement stops.
    pub tolerance: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options { norms: None, tolerance: 1e-4 }
    }
}

/// How a node's data inputs combine into the bound of its output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Join {
    /// One data input.
    Through,
    /// A sum of branches (Add, Sub): `Σ √k_i · L_i`, the values of branch
    /// `i` copied `k_i` times by broadcasting (a copied difference counts
    /// `k_i` times in the squared norm).
    Sum,
    /// A concatenation of branches: `√(Σ k_i L_i²)`, since the squared
    /// norms of the parts add up.
    Stack,
}

/// The per-layer bounds of a model and the graph that composes them.
#[derive(Clone, Debug)]
pub struct Bounds {
    pub layers: Vec<Layer>,
    /// The layer that makes the model's first output.
    pub output: usize,
}

impl Bounds {
    /// An upper bound of each layer's output's Lipschitz constant as a
    /// function of the model's input, by induction over the graph, each
    /// layer taken with the constant `own` gives it.
    pub fn compose(&self, own: impl Fn(&Layer) -> f64) -> Vec<f64> {
        let mut reach: Vec<f64> = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let of = |&(source, copies): &(Source, usize)| {
                (copies as f64).sqrt()
                    * match source {
                        Source::Input => 1.0,
                        Source::Vertex(v) => reach[v],
                    }
            };
            let branches = layer.inputs.iter().map(of);
            let inputs = match layer.join {
                Join::Through => layer.inputs.first().map_or(1.0, of),
                Join::Sum => branches.sum(),
                Join::Stack => branches.map(|b| b * b).sum::<f64>().sqrt(),
            };
            reach.push(own(layer) * inputs);
        }
        reach
    }

    /// Whether every layer reads the one before it, so the network's bound
    /// is the product of the layers'.
    pub fn is_chain(&self) -> bool {
        let previous = |i: usize| if i == 0 { Source::Input } else { Source::Vertex(i - 1) };
        self.output + 1 == self.layers.len()
            && self.layers.iter().enumerate().all(|(i, l)| l.inputs == [(previous(i), 1)])
    }

    /// The bound of each layer's output from the model's input with every
    /// measured norm in place of its layer's bound: what the bound would be
    /// were each layer's bound exact (not a bound itself: the norms are
    /// measured from below).
    pub fn reach_measured(&self) -> Vec<f64> {
        self.compose(|l| l.norm.value().unwrap_or(l.bound))
    }

    /// Whether any layer's norm was measured.
    pub fn measured(&self) -> bool {
        self.layers.iter().any(|l| l.norm != Measurement::None)
    }

    /// The bound of each layer's output from the model's input.
    pub fn reach(&self) -> Vec<f64> {
        self.compose(|l| l.bound)
    }

    /// An upper bound of the whole network's Lipschitz constant: the
    /// product of the layers' bounds along a chain, composed over the
    /// graph otherwise.
    pub fn network(&self) -> f64 {
        self.reach()[self.output]
    }
}

/// Bounds every node on a path from the model's input to its first
/// output. Fails, naming the node, on an op without a bound.
pub fn analyse(model: &ModelProto) -> Result<Bounds> {
    analyse_with(model, &Options::default())
}

/// [`analyse`], and the linear layers' norms measured as `options` asks.
/// A measurement that fails is recorded beside its layer's bound; a stop
/// (Ctrl-C) ends the analysis.
pub fn analyse_with(model: &ModelProto, options: &Options) -> Result<Bounds> {
    let walk = graph::walk(model)?;
    let mut layers = Vec::with_capacity(walk.vertices.len());
    for vertex in &walk.vertices {
        crate::interrupt::check()?;
        let start = Instant::now();
        let mut layer = match vertex.data.as_slice() {
            &[(_, source)] => Layer { inputs: vec![(source, 1)], ..layers::bound(&vertex.step)? },
            _ => join::bound(vertex, &walk.vertices)?,
        };
        layer.seconds = start.elapsed().as_secs_f64();
        let fixed = |shape: &[crate::onnx::shape::Dim]| shape.iter().filter_map(|d| d.fixed()).collect();
        (layer.input, layer.output) = (fixed(vertex.step.input()), fixed(&vertex.step.output));
        if let Some(device) = options.norms {
            layer.norm = measure(&vertex.step, device, options.tolerance)?;
        }
        layers.push(layer);
    }
    Ok(Bounds { layers, output: walk.output })
}

/// A layer's measured norm, a failure kept beside its bound, or a stop.
fn measure(step: &graph::Step, device: Device, tolerance: f64) -> Result<Measurement> {
    match norm::measure(step, device, tolerance) {
        Ok(Some(norm)) => Ok(Measurement::Norm(norm)),
        Ok(None) => Ok(Measurement::None),
        Err(e) if crate::interrupt::is_interrupted(&e) => Err(e),
        Err(e) => Ok(Measurement::Failed(format!("{e:#}"))),
    }
}
