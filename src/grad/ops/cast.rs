//! Cast: converts element types. Exporters cast shapes between integer
//! types and to float (`size ** -0.5`); gradients pass through a cast from
//! float to float only, integer tensors carrying none.

use anyhow::{Result, bail};

use super::samples::{checked, uniform};
use super::signature::{Attribute, FLOAT, Kind, Port, Ty};
use super::{Rule, Sample, Signature};
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
