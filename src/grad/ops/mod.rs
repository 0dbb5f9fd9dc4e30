//! The derivative rules: one op per file, all registered in [`RULES`].
//!
//! Each rule states its derivative in words (the `grads` column, in the
//! spirit of PyTorch's derivatives.yaml), the op's [`Signature`] (inputs,
//! outputs, element types, attributes), infers its output shapes with the
//! checks ONNX makes, emits the gradient nodes, and supplies sample inputs
//! for the generic gradient check in `tests/gradcheck.rs`, which runs over
//! every entry of the table.
//! Adding an op means one new file here and one line in [`RULES`].

use anyhow::Result;
use ndarray::ArrayD;

use super::emit::Emit;
use super::graph::{Int, Node};
use crate::onnx::AttributeProto;
use crate::onnx::shape::Shape;

pub mod samples;
pub mod signature;

pub use signature::Signature;

mod arith;
mod average_pool;
mod batch_norm;
mod cast;
mod clip;
mod compare;
mod concat;
mod constant_of_shape;
mod conv;
mod expand;
mod gather;
mod gelu;
mod gemm;
mod global_average_pool;
mod hard;
mod identity;
mod layer_norm;
mod lrn;
mod matmul;
mod max_pool;
mod pad;
mod pow;
mod range;
mod reduce;
mod relu;
mod reshape;
mod select;
mod shape_of;
mod sigmoid;
mod slice;
mod softmax;
mod split;
mod squeeze;
mod transpose;
mod unary;
mod window;

/// Infers the shapes of a node's outputs from its inputs.
pub type InferFn = fn(&Node) -> Result<Vec<Shape>>;

/// Given the gradients of a node's outputs (`None` where no gradient flows),
/// emits and returns the gradients of its inputs (`None` where there is none).
pub type BackwardFn = fn(&mut Emit, &Node, &[Option<String>]) -> Result<Vec<Option<String>>>;

/// One row of the derivatives table.
pub struct Rule {
    pub op: &'static str,
    /// The derivative, written for people: `dX` is the gradient of input X,
    /// `dY` that of the output.
    pub grads: &'static str,
    pub signature: Signature,
    pub infer: InferFn,
    pub backward: BackwardFn,
    /// Inputs and attributes for the gradient check (none for ops whose
    /// outputs carry no gradient: see [`Signature::differentiable`]).
    pub samples: fn() -> Vec<Sample>,
    /// The value of the first output, for ops of shape computations.
    pub fold: Option<FoldFn>,
}

/// Computes the value of a node's first output, an integer tensor, from
/// the known values of its inputs: a shape computation folded before run
/// time. `None` when a value it needs is only known at run time.
pub type FoldFn = fn(&Node) -> Result<Option<Vec<Int>>>;

/// One case for the gradient check: a single node with these inputs.
pub struct Sample {
    pub inputs: Vec<SampleInput>,
    pub attrs: Vec<AttributeProto>,
    /// Outputs the node is declared with (most ops: 1).
    pub outputs: usize,
}

/// An input of a sample node.
pub enum SampleInput {
    /// A float input whose gradient is checked.
    Checked(ArrayD<f32>),
    /// A float constant (an initializer; not checked).
    Const(ArrayD<f32>),
    /// A 1-D int64 constant such as a shape or axes.
    Ints(Vec<i64>),
    /// An int64 constant of any shape, such as a scalar index.
    IntArray(ArrayD<i64>),
    /// A boolean constant, such as Where's condition.
    Bools(ArrayD<bool>),
    /// An omitted optional input.
    Absent,
}

/// The derivatives table.
pub static RULES: &[Rule] = &[
    arith::ADD,
    arith::DIV,
    arith::MUL,
    arith::SUB,
    average_pool::RULE,
    batch_norm::RULE,
    cast::CAST_LIKE,
    cast::RULE,
    clip::RULE,
    compare::EQUAL,
    concat::RULE,
    constant_of_shape::RULE,
    conv::RULE,
    expand::RULE,
    gather::RULE,
    gelu::RULE,
    gemm::RULE,
    global_average_pool::RULE,
    hard::HARD_SIGMOID,
    hard::HARD_SWISH,
    identity::DROPOUT,
    identity::IDENTITY,
    layer_norm::RULE,
    lrn::RULE,
    matmul::RULE,
    max_pool::RULE,
    pad::RULE,
    pow::RULE,
    range::RULE,
    reduce::REDUCE_MEAN,
    reduce::REDUCE_SUM,
    relu::RULE,
    reshape::FLATTEN,
    reshape::RESHAPE,
    select::RULE,
    shape_of::SHAPE,
    shape_of::SIZE,
    sigmoid::RULE,
    slice::RULE,
    softmax::LOG_SOFTMAX,
    softmax::SOFTMAX,
    split::RULE,
    squeeze::SQUEEZE,
    squeeze::UNSQUEEZE,
    transpose::RULE,
    unary::ERF,
    unary::EXP,
    unary::LOG,
    unary::NEG,
    unary::SQRT,
    unary::TANH,
];

/// The rule for an op type.
pub fn lookup(op: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.op == op)
}

/// The op types advx can differentiate, for error messages and `advx grad --ops`.
pub fn supported() -> Vec<&'static str> {
    RULES.iter().map(|r| r.op).collect()
}

/// The backward of ops whose outputs carry no gradient (shapes, masks).
pub fn no_gradient(_: &mut Emit, n: &Node, _: &[Option<String>]) -> Result<Vec<Option<String>>> {
    Ok(vec![None; n.inputs.len()])
}

/// The samples of ops whose outputs carry no gradient: none to check.
pub fn no_samples() -> Vec<Sample> {
    Vec::new()
}

/// Output shape of elementwise unary ops: the input's.
pub fn same_shape(n: &Node) -> Result<Vec<Shape>> {
    Ok(vec![n.in_shape(0)?.clone()])
}
