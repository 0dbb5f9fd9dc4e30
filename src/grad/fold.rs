//! Shape computations folded before run time. Exporters compute shapes in
//! the graph (`x.view(x.size(0), -1)` becomes Shape, Gather, Unsqueeze,
//! Concat, Reshape on int64 tensors); advx follows the values of such
//! integer tensors through the rules' `fold` functions, with the batch size
//! N symbolic ([`Int::Batch`]), so the ops that read them (Reshape, Expand)
//! get static shapes. The nodes themselves stay in the graph and ONNX
//! Runtime computes them, N included, when it runs; their tensors carry no
//! gradient.

use ndarray::{ArrayD, IxDyn, Zip};

use super::graph::{Int, Node, TensorInfo};
use crate::onnx::shape;

/// The most elements advx folds in one tensor: shapes, axes and indices
/// are a few numbers; anything larger is left to run time.
pub const MAX_FOLDED: usize = 4096;

/// A tensor's value as an array of its static shape, when it is known and small.
pub fn array(t: &TensorInfo) -> Option<ArrayD<Int>> {
    let dims = shape::all_fixed(&t.shape, "").ok()?;
    let values = t.ints.as_ref()?;
    (values.len() <= MAX_FOLDED).then(|| ArrayD::from_shape_vec(IxDyn(&dims), values.clone()).ok())?
}

/// Input `i`'s value as an array, when known.
pub fn input(n: &Node, i: usize) -> Option<ArrayD<Int>> {
    array(n.opt_input(i)?)
}

/// Input `i`'s value when every element is a known number.
pub fn known(n: &Node, i: usize) -> Option<Vec<i64>> {
    n.opt_input(i)?.known_ints()
}

/// The values of an array in logical order, if not too many.
pub fn flat(a: ArrayD<Int>) -> Option<Vec<Int>> {
    (a.len() <= MAX_FOLDED).then(|| a.iter().copied().collect())
}

/// `f` applied elementwise with numpy broadcasting; `None` when the shapes
/// do not broadcast or `f` cannot say (a value that depends on N).
pub fn zip(a: &ArrayD<Int>, b: &ArrayD<Int>, f: impl Fn(Int, Int) -> Option<Int>) -> Option<Vec<Int>> {
    let out = shape::broadcast(&shape::fixed(a.shape()), &shape::fixed(b.shape())).ok()?;
    let dims = shape::all_fixed(&out, "").ok()?;
    let (a, b) = (a.broadcast(IxDyn(&dims))?, b.broadcast(IxDyn(&dims))?);
    let values = Zip::from(&a).and(&b).map_collect(|&x, &y| f(x, y));
    (values.len() <= MAX_FOLDED).then(|| values.iter().copied().collect())?
}
