//! ConstantOfShape: a tensor of a shape given as an int64 input, filled
//! with one value. Exporters make the `-1`s and ones of an `expand` with
//! it; the shape may hold N.

use anyhow::{Context, Result, bail};

use super::signature::{Attribute, FLOAT, Kind, Port, Ty};
use super::{Rule, Signature, no_gradient, no_samples};
use crate::grad::fold::MAX_FOLDED;
use crate::grad::graph::{Int, Node, constant_info};
use crate::onnx;
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::{self, Dim, Shape};

pub const RULE: Rule = Rule {
    op: "ConstantOfShape",
    grads: "none: the output is a constant",
    signature: Signature {
        since: 1,
        inputs: 1..=1,
        outputs: 1..=1,
        inputs_since: &[],
        typed: &[(Port::Input(0), Ty::Is(DataType::Int64)), (Port::Output(0), Ty::Named("value"))],
        t: FLOAT,
        attributes: &[Attribute::of("value", Kind::Tensor)],
    },
    infer,
    backward: no_gradient,
    samples: no_samples,
    fold: Some(fold),
};

fn infer(n: &Node) -> Result<Vec<Shape>> {
    let spec = n.input(0)?;
    if spec.shape.len() != 1 {
        bail!("{} takes a shape of shape {}, not a 1-D tensor", n.describe(), shape::show(&spec.shape));
    }
    let Some(values) = spec.ints.as_ref() else {
        bail!("{} takes its shape from '{}', which advx cannot compute before run time", n.describe(), spec.name);
    };
    let dims = values.iter().map(|v| match *v {
        Int::Batch => Ok(Dim::Batch),
        Int::Known(d) => {
            usize::try_from(d).map(Dim::Fixed).map_err(|_| anyhow::anyhow!("{} has dimension {d}", n.describe()))
        }
    });
    Ok(vec![dims.collect::<Result<Shape>>()?])
}

/// The fill value of an integer output, repeated, when the shape is fixed and small.
fn fold(n: &Node) -> Result<Option<Vec<Int>>> {
    let Ok(dims) = shape::all_fixed(&n.outputs[0].shape, "") else { return Ok(None) };
    let count: usize = dims.iter().product();
    if count > MAX_FOLDED {
        return Ok(None);
    }
    let value = match onnx::attr(n.proto, "value").and_then(|a| a.t.as_ref()) {
        Some(t) => constant_info("value", t)?.known_ints().and_then(|v| v.first().copied()),
        None => Some(0),
    };
    let value = value.with_context(|| format!("{} has an empty or non-integer 'value'", n.describe()))?;
    if n.outputs[0].elem == DataType::Bool as i32 && !matches!(value, 0 | 1) {
        bail!("{} fills booleans with {value}", n.describe());
    }
    Ok(Some(vec![Int::Known(value); count]))
}
