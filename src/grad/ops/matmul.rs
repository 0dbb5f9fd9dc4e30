//! MatMul: numpy's matrix product of operands of rank >= 2, whose leading
//! (batch) dimensions broadcast.

use anyhow::{Result, bail};

use super::samples::{checked, uniform};
use super::{Rule, Sample, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;
use crate::onnx::shape::{self, Shape};

pub const RULE: Rule = Rule {
    op: "MatMul",
    grads: "dA = dY @ B^T; dB = A^T @ dY (^T swaps the last two axes; each summed over broadcast batch dims)",
    signature: Signature::floats(2, &[]),
    infer,
    backward,
    samples,
    fold: None,
};

fn infer(n: &Node) -> Result<Vec<Shape>> {
    let (a, b) = (n.in_shape(0)?, n.in_shape(1)?);
    if a.len() < 2 || b.len() < 2 {
        bail!(
            "{} multiplies {} by {}; advx differentiates MatMul of operands with rank >= 2 only",
            n.describe(),
            shape::show(a),
            shape::show(b)
        );
    }
    let (ra, rb) = (a.len(), b.len());
    if a[ra - 1] != b[rb - 2] {
        bail!("{}: the inner dimensions of {} and {} differ", n.describe(), shape::show(a), shape::show(b));
    }
    let mut out = shape::broadcast(&a[..ra - 2], &b[..rb - 2])
        .map_err(|e| anyhow::anyhow!("{}: batch dimensions: {e}", n.describe()))?;
    out.extend([a[ra - 2], b[rb - 1]]);
    Ok(vec![out])
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else {
        return Ok(vec![None, None]);
    };
    let (a, b, y) = (n.input(0)?, n.input(1)?, &n.outputs[0].shape);
    let bt = transpose_last_two(e, &b.name, b.shape.len());
    let at = transpose_last_two(e, &a.name, a.shape.len());
    let da = e.op("MatMul", &[dy, &bt], vec![]);
    let db = e.op("MatMul", &[&at, dy], vec![]);
    // Before summing, each gradient has the output's batch dims and its
    // operand's matrix dims.
    let unreduced = |operand: &Shape| -> Shape {
        let (r, ry) = (operand.len(), y.len());
        y[..ry - 2].iter().chain(&operand[r - 2..]).copied().collect()
    };
    Ok(vec![Some(e.sum_to(&da, &unreduced(&a.shape), a)), Some(e.sum_to(&db, &unreduced(&b.shape), b))])
}

fn transpose_last_two(e: &mut Emit, x: &str, rank: usize) -> String {
    let mut perm: Vec<i64> = (0..rank as i64).collect();
    perm.swap(rank - 2, rank - 1);
    e.transpose(x, &perm)
}

fn samples() -> Vec<Sample> {
    let pair = |a: &[usize], b: &[usize], seed: u64| checked(vec![uniform(a, seed), uniform(b, seed + 1)], vec![]);
    vec![
        pair(&[3, 4], &[4, 5], 1),
        pair(&[2, 3, 4], &[4, 5], 3),
        pair(&[3, 4], &[2, 4, 2], 5),
        pair(&[2, 1, 3, 4], &[3, 4, 2], 7),
        pair(&[2, 2, 3], &[2, 3, 2], 9),
    ]
}

#[cfg(test)]
mod tests {
    use anyhow::Result;
    use ndarray::{Array1, Array2, ArrayD, Axis, s};

    use crate::grad::check::{self, Value};
    use crate::grad::{Objective, export, names};
    use crate::onnx::builder::{Elem, GraphBuilder, attr};
    use crate::onnx::shape::Dim;
    use crate::onnx::{ModelProto, OPSET};
    use crate::runtime::{Device, Feed, Runtime};

    /// x [N, 3] -> MatMul [3, 4] -> Add [4] -> Tanh -> Softmax.
    fn tiny_classifier() -> ModelProto {
        let mut b = GraphBuilder::new();
        b.input("x", Elem::F32, &[Dim::Batch, Dim::Fixed(3)]);
        let w = Array2::from_shape_fn((3, 4), |(i, j)| 0.3 * i as f32 - 0.2 * j as f32 + 0.1).into_dyn();
        let w = b.const_f32("w", &w);
        let bias = b.const_f32("bias", &ndarray::arr1(&[0.1f32, -0.2, 0.3, 0.0]).into_dyn());
        let h = b.op("MatMul", &["x", &w], vec![]);
        let h = b.op("Add", &[&h, &bias], vec![]);
        let h = b.op("Tanh", &[&h], vec![]);
        let probs = b.op("Softmax", &[&h], vec![attr::int("axis", -1)]);
        b.output(&probs, Elem::F32, &[Dim::Batch, Dim::Fixed(4)]);
        b.into_model("tiny", OPSET, "MatMul, Add, Tanh, Softmax")
    }

    fn inputs(batch: usize) -> (ArrayD<f32>, ArrayD<i64>) {
        let x = Array2::from_shape_fn((batch, 3), |(i, j)| 0.5 - 0.25 * j as f32 + 0.1 * i as f32).into_dyn();
        (x, Array1::from_shape_fn(batch, |i| (i % 4) as i64).into_dyn())
    }

    fn input_gradient(backward: &ModelProto, batch: usize) -> Result<ArrayD<f32>> {
        let mut session = Runtime::get()?.load_proto(backward, "tiny backward graph", Device::Cpu)?;
        let (x, target) = inputs(batch);
        let mut outputs = session.run(&[("x", Feed::F32(x.view())), (names::TARGET, Feed::I64(target.view()))])?;
        outputs.take(&names::grad("x"))
    }

    #[test]
    fn xent_gradient_has_the_batch_shape_and_rows_are_independent() -> Result<()> {
        let backward = export(&tiny_classifier(), &Objective::Xent)?;
        let one = input_gradient(&backward, 1)?;
        let five = input_gradient(&backward, 5)?;
        assert_eq!(one.shape(), &[1, 3]);
        assert_eq!(five.shape(), &[5, 3]);
        assert!(one.iter().any(|&g| g.abs() > 1e-4), "vacuous gradient {one}");
        let (row1, row5) = (one.index_axis(Axis(0), 0), five.slice(s![0, ..]));
        for (g1, g5) in row1.iter().zip(row5.iter()) {
            assert!((g1 - g5).abs() <= 1e-6, "row 0 differs between batch 1 and 5: {row1} vs {row5}");
        }
        // The per-sample losses sum to a function whose gradient is every row's.
        let (x, target) = inputs(5);
        let feeds = [("x".to_string(), Value::F32(x)), (names::TARGET.to_string(), Value::I64(target))];
        let report = check::against_finite_differences(&backward, &feeds, &["x".to_string()], usize::MAX)?;
        assert!(report.worst < 1e-3 && report.largest > 0.0, "{report:?}");
        Ok(())
    }
}
