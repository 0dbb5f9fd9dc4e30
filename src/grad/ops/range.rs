//! Range: `start, start + delta, ...` below `limit`, for integer bounds
//! (positions and indices exporters compute). Folded; no gradient.

use anyhow::{Result, bail};

use super::signature::INTEGER;
use super::{Rule, Signature, no_gradient, no_samples};
use crate::grad::fold::MAX_FOLDED;
use crate::grad::graph::{Int, Node};
use crate::onnx::shape::{Dim, Shape};

pub const RULE: Rule = Rule {
    op: "Range",
    grads: "none: integer bounds",
    signature: Signature {
        since: 1,
        inputs: 3..=3,
        outputs: 1..=1,
        inputs_since: &[],
        typed: &[],
        t: INTEGER,
        attributes: &[],
    },
    infer,
    backward: no_gradient,
    samples: no_samples,
    fold: Some(fold),
};

/// The values, from known scalar bounds.
fn values(n: &Node) -> Result<Vec<i64>> {
    let mut bounds = [0i64; 3];
    for (i, (bound, what)) in bounds.iter_mut().zip(["start", "limit", "delta"]).enumerate() {
        let t = n.input(i)?;
        match t.known_ints().as_deref() {
            Some(&[v]) if t.shape.is_empty() => *bound = v,
            _ => bail!("{} takes {what} '{}', which is not a scalar advx knows before run time", n.describe(), t.name),
        }
    }
    let [start, limit, delta] = bounds;
    if delta == 0 {
        bail!("{} has delta 0", n.describe());
    }
    let count =
        (i128::from(limit) - i128::from(start) + i128::from(delta) - i128::from(delta.signum())) / i128::from(delta);
    if count > MAX_FOLDED as i128 {
        bail!("{} would make {count} values; advx folds at most {MAX_FOLDED}", n.describe());
    }
    Ok((0..count.max(0) as i64).map(|i| start + i * delta).collect())
}

fn infer(n: &Node) -> Result<Vec<Shape>> {
    Ok(vec![vec![Dim::Fixed(values(n)?.len())]])
}

fn fold(n: &Node) -> Result<Option<Vec<Int>>> {
    Ok(Some(values(n)?.into_iter().map(Int::Known).collect()))
}
