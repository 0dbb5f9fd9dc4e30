//! Adversarial examples: the optimisation the attacks run on.
//!
//! `lbfgsb` is a batched, box-constrained L-BFGS-B solver: each image is
//! one problem, and the loss and gradient of all unfinished problems come
//! from one ONNX Runtime call per round. `search` is the paper's attack on
//! top of it (the objective and the search over c), `gradient` runs the
//! model's exported backward graph, `target` picks each example's label.

pub mod gradient;
pub mod lbfgsb;
pub mod search;
pub mod target;
