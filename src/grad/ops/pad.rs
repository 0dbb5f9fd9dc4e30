//! Pad in constant mode: X with `pads` elements of `constant_value` added
//! before and after each axis (negative pads crop). torch.onnx.export
//! writes one before an AveragePool (DenseNet's transitions).

use anyhow::{Result, bail};
use ndarray::{ArrayD, IxDyn};

use super::samples::uniform;
use super::signature::{Attribute, FLOAT, Kind, Port, Ty};
use super::{Rule, Sample, SampleInput, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::{Node, normalize_axis};
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::{self, Dim, Shape};

pub const RULE: Rule = Rule {
    op: "Pad",
    grads: "dX = dY cut back to X (and zero where X was cropped); dconstant_value = the sum of dY over the padding",
    signature: Signature {
        since: 1,
        inputs: 2..=4,
        outputs: 1..=1,
        inputs_since: &[(3, 18)],
        typed: &[(Port::Input(1), Ty::Is(DataType::Int64)), (Port::Input(3), Ty::Is(DataType::Int64))],
        t: FLOAT,
        attributes: &[Attribute::of("mode", Kind::String)],
    },
    infer,
    backward,
    samples,
    fold: None,
};

/// Pads before and after each axis of X, from the constant `pads` (and `axes`).
fn pads(n: &Node) -> Result<(Vec<i64>, Vec<i64>)> {
    let x = n.in_shape(0)?;
    if let Some(mode) = crate::onnx::attr_string(n.proto, "mode").filter(|m| m != "constant") {
        bail!("{} pads in mode '{mode}'; advx differentiates constant padding", n.describe());
    }
    let constant = |i: usize| n.known_vector(i);
    let values = constant(1)?.unwrap_or_default();
    let axes = match constant(3)? {
        Some(axes) => axes.iter().map(|&a| normalize_axis(a, x.len())).collect::<Result<Vec<_>>>()?,
        None => (0..x.len()).collect(),
    };
    if values.len() != 2 * axes.len() {
        bail!("{} has {} pads for {} axes", n.describe(), values.len(), axes.len());
    }
    let (mut before, mut after) = (vec![0; x.len()], vec![0; x.len()]);
    for (i, &a) in axes.iter().enumerate() {
        before[a] = values[i];
        after[a] = values[axes.len() + i];
    }
    if let Some(v) =
        n.opt_input(2).filter(|v| shape::per_example(&v.shape).ok() != Some(1) || v.shape.contains(&Dim::Batch))
    {
        bail!("{} has constant_value '{}' of shape {}, not one value", n.describe(), v.name, shape::show(&v.shape));
    }
    Ok((before, after))
}

fn infer(n: &Node) -> Result<Vec<Shape>> {
    let x = n.in_shape(0)?;
    let (before, after) = pads(n)?;
    let dims = x.iter().zip(before.iter().zip(&after)).map(|(d, (&b, &a))| match d {
        Dim::Batch if b == 0 && a == 0 => Ok(Dim::Batch),
        Dim::Batch => bail!("{} pads the batch dimension of {}", n.describe(), shape::show(x)),
        Dim::Fixed(size) => match (*size as i64).checked_add(b).and_then(|s| s.checked_add(a)) {
            Some(s) if s >= 0 => Ok(Dim::Fixed(s as usize)),
            _ => bail!("{} pads {} by {before:?} and {after:?}, leaving no size", n.describe(), shape::show(x)),
        },
    });
    Ok(vec![dims.collect::<Result<Shape>>()?])
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let mut grads = vec![None; n.inputs.len()];
    let Some(dy) = &dy[0] else { return Ok(grads) };
    let (before, after) = pads(n)?;
    let out = &n.outputs[0].shape;
    let rank = out.len() as i64;
    // Keep what came from X: cut the positive pads off, then put back zeros where X was cropped.
    let starts: Vec<i64> = before.iter().map(|&b| b.max(0)).collect();
    let ends: Vec<i64> =
        after.iter().zip(out).map(|(&a, d)| d.fixed().map_or(i64::MAX, |s| s as i64 - a.max(0))).collect();
    let (s, t, axes) = (e.ints(&starts), e.ints(&ends), e.ints(&(0..rank).collect::<Vec<_>>()));
    let kept = e.op("Slice", &[dy, &s, &t, &axes], vec![]);
    let cropped: Vec<i64> = before.iter().chain(&after).map(|&p| (-p).max(0)).collect();
    grads[0] = Some(if cropped.iter().any(|&p| p > 0) {
        let p = e.ints(&cropped);
        e.op("Pad", &[&kept, &p], vec![])
    } else {
        kept.clone()
    });
    if let Some(v) = n.opt_input(2) {
        let all = e.reduce_sum(dy, &(0..rank).collect::<Vec<_>>(), false);
        let inside = e.reduce_sum(&kept, &(0..rank).collect::<Vec<_>>(), false);
        let padding = e.sub(&all, &inside);
        grads[2] = Some(e.reshape_like(&padding, &v.name));
    }
    Ok(grads)
}

fn samples() -> Vec<Sample> {
    let sample = |x: &[usize], pads: &[i64], value: Option<f32>, seed| {
        let mut inputs = vec![SampleInput::Checked(uniform(x, seed)), SampleInput::Ints(pads.to_vec())];
        inputs.extend(value.map(|v| SampleInput::Checked(ArrayD::from_elem(IxDyn(&[]), v))));
        Sample { inputs, attrs: vec![], outputs: 1 }
    };
    vec![
        sample(&[2, 3, 4], &[0, 1, 2, 0, 2, 1], None, 1),
        sample(&[2, 3, 4], &[0, -1, 1, 0, 1, -2], Some(0.5), 2),
        sample(&[1, 2, 3, 3], &[0, 0, 0, 0, 0, 0, 0, 0], Some(-1.0), 3),
    ]
}
