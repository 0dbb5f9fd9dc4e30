//! Where: `Y = cond ? X : Z` elementwise, with numpy broadcasting of all
//! three. Exporters write it in shape computations (an `expand`'s -1s);
//! it is folded there.

use anyhow::{Context, Result};
use ndarray::{IxDyn, Zip};

use super::samples::{checked, uniform};
use super::signature::{NUMERIC, Port, Ty};
use super::{Rule, Sample, SampleInput, Signature};
use crate::grad::emit::Emit;
use crate::grad::fold;
use crate::grad::graph::{Int, Node};
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::{self, Shape};

pub const RULE: Rule = Rule {
    op: "Where",
    grads: "dX = dY where cond, else 0; dZ = dY where not cond (each summed to its input's shape)",
    signature: Signature {
        since: 1,
        inputs: 3..=3,
        outputs: 1..=1,
        inputs_since: &[],
        typed: &[(Port::Input(0), Ty::Is(DataType::Bool))],
        t: NUMERIC,
        attributes: &[],
    },
    infer,
    backward,
    samples,
    fold: Some(fold),
};

fn infer(n: &Node) -> Result<Vec<Shape>> {
    let (c, x, z) = (n.in_shape(0)?, n.in_shape(1)?, n.in_shape(2)?);
    let out = shape::broadcast(c, x).and_then(|s| shape::broadcast(&s, z)).with_context(|| n.describe())?;
    Ok(vec![out])
}

fn fold(n: &Node) -> Result<Option<Vec<Int>>> {
    let (Some(c), Some(x), Some(z)) = (fold::input(n, 0), fold::input(n, 1), fold::input(n, 2)) else {
        return Ok(None);
    };
    let Ok(out) = shape::all_fixed(&n.outputs[0].shape, "") else { return Ok(None) };
    let (Some(c), Some(x), Some(z)) = (c.broadcast(IxDyn(&out)), x.broadcast(IxDyn(&out)), z.broadcast(IxDyn(&out)))
    else {
        return Ok(None);
    };
    let picked = Zip::from(&c).and(&x).and(&z).map_collect(|&c, &x, &z| match c {
        Int::Known(0) => Some(z),
        Int::Known(_) => Some(x),
        Int::Batch => None,
    });
    Ok(picked.iter().copied().collect())
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else { return Ok(vec![None; 3]) };
    let (cond, y) = (&n.input(0)?.name, &n.outputs[0].shape);
    let chosen = e.mask(dy, cond);
    let not = e.op("Not", &[cond], vec![]);
    let other = e.mask(dy, &not);
    Ok(vec![None, Some(e.sum_to(&chosen, y, n.input(1)?)), Some(e.sum_to(&other, y, n.input(2)?))])
}

fn samples() -> Vec<Sample> {
    let sample = |x: &[usize], z: &[usize], seed| {
        let mut s = checked(vec![uniform(x, seed), uniform(z, seed + 1)], vec![]);
        // The condition, an input computed from a constant so that the
        // sample node reads a bool tensor: positive entries of a fixed draw.
        s.inputs.insert(0, SampleInput::Bools(uniform(&[2, 3], seed + 2).mapv(|v| v > 0.0)));
        s
    };
    vec![sample(&[2, 3], &[2, 3], 1), sample(&[3], &[2, 1], 4)]
}
