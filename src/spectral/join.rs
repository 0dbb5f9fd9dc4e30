//! Nodes with several data inputs (joins), bounded by combining the bounds
//! of their inputs ([`super::Bounds::compose`]):
//!
//! - Add, Sub: `||Δ(a ± b)|| ≤ ||Δa|| + ||Δb||` (the triangle inequality),
//!   so the output's bound is `L(a) + L(b)`; a residual block `x + f(x)`
//!   gets `(1 + L(f)) · L(x)`. A branch broadcast up, each value copied `k`
//!   times, counts `√k` times.
//! - Concat: the squared norm of a concatenation is the sum of its parts',
//!   so the bound is `√(L(a)² + L(b)²)`.
//! - Mul of `x` by `σ(x)` (Swish, SiLU): an elementwise function of `x`
//!   whose slope `σ(x)(1 + x(1 − σ(x)))` is at most 1.099839 (the maximum
//!   on a fine grid), rounded up to 1.0999.
//!
//! Any other product or quotient of two tensors that depend on the input
//! is refused: `x · y` has no Lipschitz constant on unbounded inputs.

use anyhow::{Result, bail};

use super::graph::{Source, Vertex};
use super::layers::{base, per_sample};
use super::{Join, Layer};

/// The largest slope of `x σ(x)`.
const SWISH: f64 = 1.0999;

/// The bound of a node with several data inputs.
pub fn bound(vertex: &Vertex, vertices: &[Vertex]) -> Result<Layer> {
    let step = &vertex.step;
    let n = &step.node;
    let sources = || vertex.data.iter().map(|&(_, source)| (source, 1));
    let layer = match n.op() {
        "Add" | "Sub" => {
            let copies = vertex.data.iter().map(|&(slot, source)| {
                let before = n.inputs[slot].as_ref().map_or(0, |t| per_sample(&t.shape));
                match per_sample(&step.output) {
                    after if before > 0 && after % before == 0 => Ok((source, after / before)),
                    after => bail!("{} maps {before} values per sample to {after}", n.describe()),
                }
            });
            let inputs = copies.collect::<Result<Vec<_>>>()?;
            let method = if inputs.iter().all(|&(_, k)| k == 1) { "L(a) + L(b)" } else { "√k·L(a) + √k·L(b)" };
            Layer { inputs, join: Join::Sum, ..base(step, 1.0, format!("sum of branches: {method}")) }
        }
        "Concat" => Layer { inputs: sources().collect(), join: Join::Stack, ..base(step, 1.0, "√(L(a)² + L(b)²)") },
        "Mul" => match swish_input(vertex, vertices) {
            Some(x) => Layer { inputs: vec![(x, 1)], ..base(step, SWISH, "Swish x·σ(x): max slope 1.0999") },
            None => bail!(
                "{} multiplies two tensors that both depend on the input; a product of signals has no \
                 Lipschitz bound (advx bounds x·σ(x), Swish, only)",
                n.describe()
            ),
        },
        op => bail!(
            "{} reads {} tensors that depend on the input; advx bounds joins by Add, Sub and Concat, not {op}",
            n.describe(),
            vertex.data.len()
        ),
    };
    Ok(layer)
}

/// `x` when the node is `x · Sigmoid(x)`.
fn swish_input(vertex: &Vertex, vertices: &[Vertex]) -> Option<Source> {
    let &[(_, a), (_, b)] = vertex.data.as_slice() else { return None };
    let sigmoid_of = |s: Source| match s {
        Source::Vertex(v) if vertices[v].step.node.op() == "Sigmoid" => Some(vertices[v].data[0].1),
        _ => None,
    };
    match (sigmoid_of(a), sigmoid_of(b)) {
        (_, Some(x)) if x == a => Some(a),
        (Some(x), _) if x == b => Some(b),
        _ => None,
    }
}
