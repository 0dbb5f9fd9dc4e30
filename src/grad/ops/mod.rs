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
use super::graph::Node;
use crate::onnx::AttributeProto;
use crate::onnx::shape::Shape;

pub mod samples;
pub mod signature;

pub use signature::Signature;

mod arith;
mod average_pool;
mod batch_norm;
mod clip;
mod concat;
mod conv;
mod gemm;
mod global_average_pool;
mod identity;
mod lrn;
mod matmul;
mod max_pool;
mod reduce;
mod relu;
mod reshape;
mod sigmoid;
mod softmax;
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
    /// Inputs and attributes for the gradient check.
    pub samples: fn() -> Vec<Sample>,
}

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
    /// An int64 constant such as a shape or axes.
    Ints(Vec<i64>),
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
    clip::RULE,
    concat::RULE,
    conv::RULE,
    gemm::RULE,
    global_average_pool::RULE,
    identity::DROPOUT,
    identity::IDENTITY,
    lrn::RULE,
    matmul::RULE,
    max_pool::RULE,
    reduce::REDUCE_MEAN,
    reduce::REDUCE_SUM,
    relu::RULE,
    reshape::FLATTEN,
    reshape::RESHAPE,
    sigmoid::RULE,
    softmax::LOG_SOFTMAX,
    softmax::SOFTMAX,
    transpose::RULE,
    unary::EXP,
    unary::LOG,
    unary::NEG,
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

/// Output shape of elementwise unary ops: the input's.
pub fn same_shape(n: &Node) -> Result<Vec<Shape>> {
    Ok(vec![n.in_shape(0)?.clone()])
}
