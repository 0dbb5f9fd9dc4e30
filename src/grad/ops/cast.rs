//! Cast and CastLike: convert element types. Exporters cast shapes between
//! integer types and to float (`size ** -0.5`), and the dynamo exporter
//! casts its constants like the tensor they meet (CastLike, opset 15);
//! gradients pass through a cast from float to float only, integer tensors
//! carrying none.

use anyhow::{Result, bail};

use super::samples::{checked, uniform};
use super::signature::{Attribute, FLOAT, Kind, NUMERIC, Port, Ty};
use super::{Rule, Sample, SampleInput, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::{Int, Node};
use crate::onnx;
use crate::onnx::builder::attr;
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::Shape;

pub const RULE: Rule = Rule {
    op: "Cast",
    grads: "dX = dY from float to float; none from or to integers",
    signature: Signature {
        since: 1,
        inputs: 1..=1,
        outputs: 1..=1,
        inputs_since: &[],
        typed: &[(Port::Input(0), Ty::Any), (Port::Output(0), Ty::Named("to"))],
        t: FLOAT,
        attributes: &[Attribute::of("to", Kind::Int), Attribute::since("saturate", Kind::Int, 19).flag()],
    },
    infer,
    backward,
    samples,
    fold: Some(fold),
};

/// `CastLike(X, like)`: X in the element type of `like`, which is the
/// node's `T` and is read for its type only.
pub const CAST_LIKE: Rule = Rule {
    op: "CastLike",
    grads: "dX = dY from float to float; none from or to integers; none for the tensor whose type it takes",
    signature: Signature {
        since: 15,
        inputs: 2..=2,
        outputs: 1..=1,
        inputs_since: &[],
        typed: &[(Port::Input(0), Ty::Any)],
        t: NUMERIC,
        attributes: &[Attribute::since("saturate", Kind::Int, 19).flag()],
    },
    infer: like_infer,
    backward: like_backward,
    samples: like_samples,
    fold: Some(fold),
};

/// X's shape; `to` is required.
fn infer(n: &Node) -> Result<Vec<Shape>> {
    if onnx::attr(n.proto, "to").is_none() {
        bail!("{} has no 'to' attribute", n.describe());
    }
    Ok(vec![n.in_shape(0)?.clone()])
}

fn backward(_: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let float = n.input(0)?.is_float() && n.outputs[0].is_float();
    Ok(vec![dy[0].clone().filter(|_| float)])
}

fn like_infer(n: &Node) -> Result<Vec<Shape>> {
    Ok(vec![n.in_shape(0)?.clone()])
}

fn like_backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    Ok(vec![backward(e, n, dy)?.swap_remove(0), None])
}

/// Integers stay themselves (advx folds int64 and int32 shapes, whose
/// values fit both), booleans become 0 or 1; N is never 0.
fn fold(n: &Node) -> Result<Option<Vec<Int>>> {
    let Some(values) = n.input(0)?.ints.clone() else { return Ok(None) };
    if n.outputs[0].elem != DataType::Bool as i32 {
        return Ok(Some(values));
    }
    Ok(Some(values.into_iter().map(|v| Int::Known(i64::from(v != Int::Known(0)))).collect()))
}

fn samples() -> Vec<Sample> {
    vec![checked(vec![uniform(&[2, 3], 1)], vec![attr::int("to", DataType::Float as i64)])]
}

fn like_samples() -> Vec<Sample> {
    let like = |dims: &[usize]| SampleInput::Const(uniform(dims, 3));
    vec![
        Sample { inputs: vec![SampleInput::Checked(uniform(&[2, 3], 2)), like(&[4])], attrs: vec![], outputs: 1 },
        Sample { inputs: vec![SampleInput::Checked(uniform(&[], 4)), like(&[2, 2])], attrs: vec![], outputs: 1 },
    ]
}
