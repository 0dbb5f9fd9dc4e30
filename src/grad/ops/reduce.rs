//! ReduceSum and ReduceMean: the gradient spreads dY back over the reduced
//! axes (divided by their size for the mean).

use anyhow::{Result, bail};

use super::samples::{checked, uniform};
use super::signature::{Attribute, FLOAT, Kind, Port, Ty};
use super::{Rule, Sample, SampleInput, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::{Node, normalize_axis};
use crate::onnx::builder::attr;
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::{Dim, Shape};

pub const REDUCE_SUM: Rule = Rule {
    op: "ReduceSum",
    grads: "dX = expand(dY, shape(X)) (dY unsqueezed at the reduced axes if keepdims = 0)",
    signature: Signature {
        since: 1,
        inputs: 1..=2,
        outputs: 1..=1,
        inputs_since: &[],
        typed: &[(Port::Input(1), Ty::Is(DataType::Int64))],
        t: FLOAT,
        attributes: &[
            Attribute::of("keepdims", Kind::Int).flag(),
            Attribute::of("noop_with_empty_axes", Kind::Int).flag(),
        ],
    },
    infer,
    backward: sum_backward,
    samples: sum_samples,
    fold: None,
};

pub const REDUCE_MEAN: Rule = Rule {
    op: "ReduceMean",
    grads: "dX = expand(dY, shape(X)) / (number of reduced elements) (dY unsqueezed if keepdims = 0)",
    signature: Signature {
        since: 1,
        inputs: 1..=2,
        outputs: 1..=1,
        inputs_since: &[(1, 18)],
        typed: &[(Port::Input(1), Ty::Is(DataType::Int64))],
        t: FLOAT,
        attributes: &[
            Attribute::until("axes", Kind::Ints, 17),
            Attribute::of("keepdims", Kind::Int).flag(),
            Attribute::since("noop_with_empty_axes", Kind::Int, 18).flag(),
        ],
    },
    infer,
    backward: mean_backward,
    samples: mean_samples,
    fold: None,
};

/// What a reduction node reduces.
struct Reduction {
    /// Sorted, normalised axes; empty when the node passes X through.
    axes: Vec<usize>,
    keepdims: bool,
}

impl Reduction {
    /// Reads the axes from the `axes` input (ReduceSum 13+, the other
    /// reductions 18+) or attribute (before that).
    fn of(n: &Node) -> Result<Reduction> {
        let rank = n.in_shape(0)?.len();
        let axes = match (n.ints("axes"), n.opt_input(1)) {
            (Some(axes), _) => axes,
            (None, None) => vec![],
            (None, Some(t)) => match t.known_ints() {
                Some(axes) => axes,
                None => bail!(
                    "{} takes its axes from '{}', which is computed at run time; advx needs constant axes",
                    n.describe(),
                    t.name
                ),
            },
        };
        let mut axes = axes
            .iter()
            .map(|&a| normalize_axis(a, rank))
            .collect::<Result<Vec<usize>>>()
            .map_err(|e| anyhow::anyhow!("{}: {e}", n.describe()))?;
        axes.sort_unstable();
        axes.dedup();
        if axes.is_empty() && n.int("noop_with_empty_axes", 0) == 0 {
            axes = (0..rank).collect();
        }
        Ok(Reduction { axes, keepdims: n.int("keepdims", 1) != 0 })
    }
}

fn infer(n: &Node) -> Result<Vec<Shape>> {
    let r = Reduction::of(n)?;
    let x = n.in_shape(0)?;
    let out = x.iter().enumerate().filter_map(|(i, &d)| match r.axes.contains(&i) {
        false => Some(d),
        true => r.keepdims.then_some(Dim::Fixed(1)),
    });
    Ok(vec![out.collect()])
}

/// dY brought back to X's shape; `None` when the node reduces nothing.
fn spread(e: &mut Emit, n: &Node, dy: &str, r: &Reduction) -> Result<Option<String>> {
    if r.axes.is_empty() {
        return Ok(None);
    }
    let kept = if r.keepdims {
        dy.to_string()
    } else {
        let axes: Vec<i64> = r.axes.iter().map(|&a| a as i64).collect();
        let axes = e.ints(&axes);
        e.op("Unsqueeze", &[dy, &axes], vec![])
    };
    let shape = e.shape_of(&n.input(0)?.name);
    Ok(Some(e.op("Expand", &[&kept, &shape], vec![])))
}

fn sum_backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let mut grads = vec![None; n.inputs.len()];
    if let Some(dy) = &dy[0] {
        let r = Reduction::of(n)?;
        grads[0] = Some(spread(e, n, dy, &r)?.unwrap_or_else(|| dy.clone()));
    }
    Ok(grads)
}

fn mean_backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let mut grads = vec![None; n.inputs.len()];
    let Some(dy) = &dy[0] else {
        return Ok(grads);
    };
    let r = Reduction::of(n)?;
    let Some(spread) = spread(e, n, dy, &r)? else {
        grads[0] = Some(dy.clone());
        return Ok(grads);
    };
    let x = n.input(0)?;
    grads[0] = Some(match r.axes.iter().map(|&a| x.shape[a].fixed()).product::<Option<usize>>() {
        Some(count) => e.scale(&spread, 1.0 / count as f32),
        None => {
            // The batch dimension is among the reduced ones: count at run time.
            let size = |e: &mut Emit, t: &str| {
                let s = e.op("Size", &[t], vec![]);
                e.op("Cast", &[&s], vec![attr::int("to", DataType::Float as i64)])
            };
            let (all, left) = (size(e, &x.name), size(e, &n.outputs[0].name));
            let count = e.div(&all, &left);
            e.div(&spread, &count)
        }
    });
    Ok(grads)
}

fn sum_samples() -> Vec<Sample> {
    let sample = |axes: Option<&[i64]>, keepdims: i64, noop: i64, seed| Sample {
        inputs: vec![
            SampleInput::Checked(uniform(&[2, 3, 4], seed)),
            axes.map_or(SampleInput::Absent, |a| SampleInput::Ints(a.to_vec())),
        ],
        attrs: vec![attr::int("keepdims", keepdims), attr::int("noop_with_empty_axes", noop)],
        outputs: 1,
    };
    vec![
        sample(Some(&[1]), 1, 0, 1),
        sample(Some(&[-1, 0]), 0, 0, 2),
        sample(None, 0, 0, 3),
        sample(None, 1, 0, 4),
        sample(None, 1, 1, 5),
        sample(Some(&[]), 0, 1, 6),
    ]
}

fn mean_samples() -> Vec<Sample> {
    let sample = |axes: Option<&[i64]>, keepdims: i64, seed| {
        let mut attrs = vec![attr::int("keepdims", keepdims)];
        attrs.extend(axes.map(|a| attr::ints("axes", a)));
        checked(vec![uniform(&[2, 3, 4], seed)], attrs)
    };
    vec![sample(Some(&[1]), 1, 1), sample(Some(&[-1, 0]), 0, 2), sample(None, 0, 3), sample(Some(&[2]), 0, 4)]
}

#[cfg(test)]
mod tests {
    use anyhow::Result;
    use ndarray::{ArrayD, IxDyn};

    use crate::grad::check::{self, Value};
    use crate::grad::{Objective, export_wrt, names};
    use crate::onnx::OPSET;
    use crate::onnx::builder::{Elem, GraphBuilder, attr};
    use crate::onnx::shape::Dim;

    /// Flatten, Reshape, Concat and Transpose carry the batch dimension to a
    /// ReduceMean over it, whose count is only known at run time.
    #[test]
    fn batch_dims_flow_to_a_mean_over_the_batch() -> Result<()> {
        let mut b = GraphBuilder::new();
        b.input("x", Elem::F32, &[Dim::Batch, Dim::Fixed(2), Dim::Fixed(3)]);
        let flat = b.op("Flatten", &["x"], vec![]);
        let shape = b.const_i64("shape", &[-1, 6]);
        let rows = b.op("Reshape", &["x", &shape], vec![]);
        let both = b.op("Concat", &[&flat, &rows], vec![attr::int("axis", 1)]);
        let cols = b.op("Transpose", &[&both], vec![]);
        let mean = b.op("ReduceMean", &[&cols], vec![attr::ints("axes", &[1]), attr::int("keepdims", 0)]);
        let y = b.op("Tanh", &[&mean], vec![]);
        b.output(&y, Elem::F32, &[Dim::Fixed(12)]);
        let model = b.into_model("batch_flow", OPSET, "shape ops over a batch");
        let backward = export_wrt(&model, &Objective::Direction(y.clone()), &["x".to_string()], false)?;
        for batch in [1, 4] {
            let x = ArrayD::from_shape_fn(IxDyn(&[batch, 2, 3]), |i| (i[0] * 6 + i[1] * 3 + i[2]) as f32 * 0.1 - 0.6);
            let v = ArrayD::from_shape_fn(IxDyn(&[12]), |i| 1.0 - 0.15 * i[0] as f32);
            let feeds = [("x".to_string(), Value::F32(x)), (names::DIRECTION.to_string(), Value::F32(v))];
            let report = check::against_finite_differences(&backward, &feeds, &["x".to_string()], usize::MAX)?;
            assert!(report.worst < 1e-3 && report.largest > 0.0, "batch {batch}: {report:?}");
        }
        Ok(())
    }
}
