//! Expand: X broadcast to a shape given as an int64 input (numpy's rule,
//! dims of 1 stretched). Exporters expand a class token to the batch with
//! a shape computed from it, so the shape may hold N.

use anyhow::{Result, bail};
use ndarray::IxDyn;

use super::samples::uniform;
use super::signature::{NUMERIC, Port, Ty};
use super::{Rule, Sample, SampleInput, Signature};
use crate::grad::emit::Emit;
use crate::grad::fold;
use crate::grad::graph::{Int, Node};
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::{self, Dim, Shape};

pub const RULE: Rule = Rule {
    op: "Expand",
    grads: "dX = dY summed over the broadcast axes back to X's shape",
    signature: Signature {
        since: 1,
        inputs: 2..=2,
        outputs: 1..=1,
        inputs_since: &[],
        typed: &[(Port::Input(1), Ty::Is(DataType::Int64))],
        t: NUMERIC,
        attributes: &[],
    },
    infer,
    backward,
    samples,
    fold: Some(fold),
};

fn infer(n: &Node) -> Result<Vec<Shape>> {
    let (x, target) = (n.in_shape(0)?, n.input(1)?);
    let Some(values) = target.ints.as_ref().filter(|_| target.shape.len() == 1) else {
        bail!("{} takes its shape from '{}', which advx cannot compute before run time", n.describe(), target.name);
    };
    let dims = values.iter().map(|v| match *v {
        Int::Batch => Ok(Dim::Batch),
        Int::Known(d) => {
            usize::try_from(d).map(Dim::Fixed).map_err(|_| anyhow::anyhow!("{} expands to dimension {d}", n.describe()))
        }
    });
    let dims = dims.collect::<Result<Shape>>()?;
    let out = shape::broadcast(x, &dims).map_err(|e| anyhow::anyhow!("{}: {e}", n.describe()))?;
    Ok(vec![out])
}

fn fold(n: &Node) -> Result<Option<Vec<Int>>> {
    let (Some(x), Ok(out)) = (fold::input(n, 0), shape::all_fixed(&n.outputs[0].shape, "")) else { return Ok(None) };
    Ok(x.broadcast(IxDyn(&out)).map(|v| v.to_owned()).and_then(fold::flat))
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else { return Ok(vec![None, None]) };
    Ok(vec![Some(e.sum_to(dy, &n.outputs[0].shape, n.input(0)?)), None])
}

fn samples() -> Vec<Sample> {
    let sample = |x: &[usize], to: &[i64], seed| Sample {
        inputs: vec![SampleInput::Checked(uniform(x, seed)), SampleInput::Ints(to.to_vec())],
        attrs: vec![],
        outputs: 1,
    };
    vec![sample(&[1, 1, 3], &[2, 4, 3], 1), sample(&[3, 1], &[2, 1, 4], 2), sample(&[2, 3], &[1, 1], 3)]
}
