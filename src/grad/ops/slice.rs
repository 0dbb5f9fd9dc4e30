//! Slice: `Y = X[starts:ends:steps]` along some axes, the bounds int64
//! inputs (opset 13). On floats it drops a class token (`x[:, 1:]`) or
//! splits channels; on int64 it cuts shapes, and is folded.

use anyhow::{Result, bail};
use ndarray::{ArrayD, Axis};

use super::samples::uniform;
use super::signature::{NUMERIC, Port, Ty};
use super::{Rule, Sample, SampleInput, Signature};
use crate::grad::emit::Emit;
use crate::grad::fold;
use crate::grad::graph::{Int, Node, normalize_axis};
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::{self, Dim, Shape};

pub const RULE: Rule = Rule {
    op: "Slice",
    grads: "dX = dY padded with zeros back to X's shape (steps of 1)",
    signature: Signature {
        since: 1,
        inputs: 3..=5,
        outputs: 1..=1,
        inputs_since: &[],
        typed: &[
            (Port::Input(1), Ty::Is(DataType::Int64)),
            (Port::Input(2), Ty::Is(DataType::Int64)),
            (Port::Input(3), Ty::Is(DataType::Int64)),
            (Port::Input(4), Ty::Is(DataType::Int64)),
        ],
        t: NUMERIC,
        attributes: &[],
    },
    infer,
    backward,
    samples,
    fold: Some(fold),
};

/// What a Slice takes along one axis: `len` elements from `start`, `step` apart.
struct Cut {
    axis: usize,
    start: i64,
    step: i64,
    len: usize,
}

/// The cuts of a node, from its constant bounds. An axis of X whose size is
/// the batch's can only be taken whole (start 0, step 1, end past it).
fn cuts(n: &Node) -> Result<Vec<Cut>> {
    let x = n.in_shape(0)?;
    let constant = |i: usize| n.known_vector(i);
    let (starts, ends) = (constant(1)?.unwrap_or_default(), constant(2)?.unwrap_or_default());
    let axes = constant(3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = constant(4)?.unwrap_or_else(|| vec![1; starts.len()]);
    if [ends.len(), axes.len(), steps.len()].iter().any(|&l| l != starts.len()) {
        bail!("{} has starts, ends, axes and steps of different lengths", n.describe());
    }
    let mut cuts = Vec::with_capacity(starts.len());
    for (((&start, &end), &axis), &step) in starts.iter().zip(&ends).zip(&axes).zip(&steps) {
        let axis = normalize_axis(axis, x.len()).map_err(|e| anyhow::anyhow!("{}: {e}", n.describe()))?;
        if cuts.iter().any(|c: &Cut| c.axis == axis) {
            bail!("{} slices axis {axis} twice", n.describe());
        }
        if step == 0 {
            bail!("{} has a step of 0", n.describe());
        }
        let Some(size) = x[axis].fixed() else {
            if start == 0 && step == 1 && end >= i64::from(i32::MAX) {
                continue;
            }
            bail!("{} slices axis {axis} of {}, the batch dimension", n.describe(), shape::show(x));
        };
        cuts.push(cut(axis, size as i64, start, end, step));
    }
    Ok(cuts)
}

/// ONNX's clamping: negative bounds count from the end, then starts and
/// ends are clamped to the axis (to `-1..size-1` going backwards).
fn cut(axis: usize, size: i64, start: i64, end: i64, step: i64) -> Cut {
    let from_end = |v: i64| if v < 0 { v.saturating_add(size) } else { v };
    let (start, end) = (from_end(start), from_end(end));
    let (start, span) = if step > 0 {
        let (s, e) = (start.clamp(0, size), end.clamp(0, size));
        (s, e - s)
    } else {
        let last = (size - 1).max(0);
        let (s, e) = (start.clamp(0, last), end.clamp(-1, last));
        (s, if size == 0 { 0 } else { s - e })
    };
    let len = if span <= 0 { 0 } else { (span.unsigned_abs() - 1) / step.unsigned_abs() + 1 };
    Cut { axis, start, step, len: len as usize }
}

fn infer(n: &Node) -> Result<Vec<Shape>> {
    let mut out = n.in_shape(0)?.clone();
    for c in cuts(n)? {
        out[c.axis] = Dim::Fixed(c.len);
    }
    Ok(vec![out])
}

fn fold(n: &Node) -> Result<Option<Vec<Int>>> {
    let Some(mut x) = fold::input(n, 0) else { return Ok(None) };
    for c in cuts(n)? {
        let picks: Vec<usize> = (0..c.len as i64).map(|i| (c.start + i * c.step) as usize).collect();
        x = x.select(Axis(c.axis), &picks);
    }
    Ok(fold::flat(x))
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let mut grads = vec![None; n.inputs.len()];
    let Some(dy) = &dy[0] else { return Ok(grads) };
    let x = n.in_shape(0)?;
    let mut pads = vec![0i64; 2 * x.len()];
    for c in cuts(n)? {
        if c.step != 1 && c.len > 1 {
            bail!("{} slices axis {} with step {}; advx differentiates steps of 1", n.describe(), c.axis, c.step);
        }
        let size = x[c.axis].fixed().unwrap_or(0) as i64;
        pads[c.axis] = c.start;
        pads[x.len() + c.axis] = size - c.start - c.len as i64;
    }
    let pads = e.ints(&pads);
    grads[0] = Some(e.op("Pad", &[dy, &pads], vec![]));
    Ok(grads)
}

fn samples() -> Vec<Sample> {
    let sample = |x: &[usize], bounds: [&[i64]; 4], seed| {
        let mut inputs = vec![SampleInput::Checked(uniform(x, seed))];
        inputs.extend(bounds.iter().map(|b| SampleInput::Ints(b.to_vec())));
        Sample { inputs, attrs: vec![], outputs: 1 }
    };
    let x: ArrayD<f32> = uniform(&[5, 2, 3], 5);
    vec![
        sample(&[2, 5, 3], [&[1], &[i64::MAX], &[1], &[1]], 1),
        sample(&[2, 5, 3], [&[0, -2], &[i64::MAX, -1], &[0, 2], &[1, 1]], 2),
        sample(&[4, 6], [&[-3, 1], &[100, 4], &[0, -1], &[1, 1]], 3),
        Sample {
            inputs: vec![SampleInput::Checked(x), SampleInput::Ints(vec![2]), SampleInput::Ints(vec![4])],
            attrs: vec![],
            outputs: 1,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::cut;

    fn len(size: i64, start: i64, end: i64, step: i64) -> (i64, usize) {
        let c = cut(0, size, start, end, step);
        (c.start, c.len)
    }

    /// numpy's `range(size)[start:end:step]`, as ONNX defines Slice.
    #[test]
    fn bounds_are_clamped_as_onnx_says() {
        assert_eq!(len(5, 1, i64::MAX, 1), (1, 4));
        assert_eq!(len(5, -2, -1, 1), (3, 1));
        assert_eq!(len(5, 0, 5, 2), (0, 3));
        assert_eq!(len(5, -1, i64::MIN, -1), (4, 5), "reversed whole");
        assert_eq!(len(5, 4, 0, -2), (4, 2));
        assert_eq!(len(5, 3, 3, 1), (3, 0));
        assert_eq!(len(5, 100, -100, i64::MIN), (4, 1));
        assert_eq!(len(0, 0, -1, -1), (0, 0), "an empty axis");
        assert_eq!(len(4, i64::MIN, i64::MAX, i64::MAX), (0, 1));
    }
}
