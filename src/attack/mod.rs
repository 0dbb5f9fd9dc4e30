//! Adversarial examples: the optimisation the attacks run on.
//!
//! `lbfgsb` is a batched, box-constrained L-BFGS-B solver: each image is
//! one problem, and the loss and gradient of all unfinished problems come
//! from one ONNX Runtime call per round. `search` is the paper's attack on
//! top of it (the objective and the search over c); by default
//! `lagrangian`, a first-order augmented Lagrangian method, starts instead
//! of the search, closer to the boundary's nearest point on nonlinear
//! models. `refine` then walks
//! each success along the decision boundary to the nearest point of its
//! target's region, `boundary` finds where a line crosses it, `gradient`
//! runs the model's backward graphs, `target` picks each example's label,
//! `workers` runs batches side by side, one per core.

pub mod boundary;
pub mod gradient;
pub mod lagrangian;
pub mod lbfgsb;
pub mod refine;
pub mod search;
pub mod sizing;
pub mod target;
pub mod workers;
