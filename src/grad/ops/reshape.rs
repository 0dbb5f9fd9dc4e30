//! Flatten and Reshape: the same values in a new shape, so the gradient is
//! dY reshaped back to the runtime shape of X. Both also reshape the int64
//! tensors of shape computations, whose values they keep.

use anyhow::{Context, Result, bail};

use super::samples::{checked, uniform};
use super::signature::{Attribute, Kind, NUMERIC, Port, Ty};
use super::{Rule, Sample, SampleInput, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::{Int, Node};
use crate::onnx::builder::attr;
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::{self, Dim, Shape};

pub const FLATTEN: Rule = Rule {
    op: "Flatten",
    grads: "dX = reshape(dY, shape(X))",
    signature: Signature::numeric(1, &[Attribute::of("axis", Kind::Int)]),
    infer: flatten_infer,
    backward,
    samples: flatten_samples,
    fold: Some(same_values),
};

pub const RESHAPE: Rule = Rule {
    op: "Reshape",
    grads: "dX = reshape(dY, shape(X)); the shape input has no gradient",
    signature: Signature {
        since: 1,
        inputs: 2..=2,
        outputs: 1..=1,
        inputs_since: &[],
        typed: &[(Port::Input(1), Ty::Is(DataType::Int64))],
        t: NUMERIC,
        attributes: &[Attribute::since("allowzero", Kind::Int, 14).flag()],
    },
    infer: reshape_infer,
    backward,
    samples: reshape_samples,
    fold: Some(same_values),
};

/// The values of X, in the same order.
pub fn same_values(n: &Node) -> Result<Option<Vec<Int>>> {
    Ok(n.input(0)?.ints.clone())
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let mut grads = vec![None; n.inputs.len()];
    if let Some(dy) = &dy[0] {
        grads[0] = Some(e.reshape_like(dy, &n.input(0)?.name));
    }
    Ok(grads)
}

/// The number of elements of some dims as a [`Dim`]: `N` times a fixed
/// count must be exactly `N`, or the shape cannot be written down.
fn count(dims: &[Dim]) -> Option<Dim> {
    let fixed: usize = dims.iter().filter_map(|d| d.fixed()).product();
    match dims.iter().filter(|d| d.fixed().is_none()).count() {
        0 => Some(Dim::Fixed(fixed)),
        1 if fixed == 1 => Some(Dim::Batch),
        _ => None,
    }
}

fn flatten_infer(n: &Node) -> Result<Vec<Shape>> {
    let x = n.in_shape(0)?;
    // Unlike most axes, Flatten's may equal the rank.
    let axis = if n.int("axis", 1) == x.len() as i64 { x.len() } else { n.axis("axis", 1, x.len())? };
    let (outer, inner) = x.split_at(axis);
    match (count(outer), count(inner)) {
        (Some(rows), Some(cols)) => Ok(vec![vec![rows, cols]]),
        _ => bail!(
            "{} flattens {} at axis {axis}, which mixes the batch size N with other dimensions",
            n.describe(),
            shape::show(x)
        ),
    }
}

fn reshape_infer(n: &Node) -> Result<Vec<Shape>> {
    let x = n.in_shape(0)?;
    let target = n.input(1)?;
    let Some(spec) = target.ints.as_ref() else {
        bail!(
            "{} takes its shape from '{}', which advx cannot compute before run time; advx needs a shape \
             that is constant, or computed from constants and the shapes of tensors with the batch size N \
             a dimension of its own (N times another number, as in nn.MultiheadAttention's reshapes, is not)",
            n.describe(),
            target.name
        );
    };
    if target.shape.len() != 1 {
        bail!(
            "{} takes its shape from '{}' of shape {}, not a 1-D tensor",
            n.describe(),
            target.name,
            shape::show(&target.shape)
        );
    }
    let out = reshaped(x, spec, n.int("allowzero", 0) != 0)
        .with_context(|| format!("{} cannot reshape {} to {}", n.describe(), shape::show(x), show(spec)))?;
    Ok(vec![out])
}

/// The result of reshaping `x` to `spec`, where 0 copies a dimension of `x`
/// (unless `allow_zero`), one -1 takes whatever is left, and N (a shape
/// computed from the batch's) is the batch dimension.
fn reshaped(x: &[Dim], spec: &[Int], allow_zero: bool) -> Result<Shape> {
    if allow_zero && spec.contains(&Int::Known(0)) && spec.contains(&Int::Known(-1)) {
        bail!("with allowzero, a shape may not hold both 0 and -1");
    }
    let mut out: Vec<Option<Dim>> = Vec::with_capacity(spec.len());
    for (i, &s) in spec.iter().enumerate() {
        out.push(match s {
            Int::Batch => Some(Dim::Batch),
            Int::Known(-1) => None,
            Int::Known(0) if !allow_zero => Some(*x.get(i).with_context(|| format!("0 at {i} copies no dimension"))?),
            Int::Known(s) if s >= 0 => Some(Dim::Fixed(usize::try_from(s)?)),
            Int::Known(s) => bail!("{s} is not a dimension"),
        });
    }
    let inferred = out.iter().filter(|d| d.is_none()).count();
    if inferred > 1 {
        bail!("only one dimension may be -1");
    }
    let known: Vec<Dim> = out.iter().flatten().copied().collect();
    let batch = |dims: &[Dim]| dims.iter().filter(|d| **d == Dim::Batch).count();
    // Checked: the spec's sizes come from the file, and the target cannot
    // hold more elements than X, whose count is bounded.
    let fixed_known = shape::per_example(&known).context("the element counts do not match")?;
    let fixed = |dims: &[Dim]| -> usize { dims.iter().filter_map(|d| d.fixed()).product() };
    let batch_left = batch(x).checked_sub(batch(&known));
    let rest = match (inferred, batch_left) {
        (0, Some(0)) if fixed(x) == fixed_known => None,
        (1, Some(b)) if fixed_known > 0 && fixed(x) % fixed_known == 0 => match (b, fixed(x) / fixed_known) {
            (0, f) => Some(Dim::Fixed(f)),
            (1, 1) => Some(Dim::Batch),
            _ => {
                bail!("the inferred dimension would mix the batch size N with other dimensions")
            }
        },
        _ => bail!("the element counts do not match (or the batch size N would move into a fixed dimension)"),
    };
    Ok(out.into_iter().map(|d| d.or(rest).expect("only the inferred dim is open")).collect())
}

/// A shape's value as messages show it: `[N, -1]`.
fn show(spec: &[Int]) -> String {
    let parts: Vec<String> = spec.iter().map(|v| v.known().map_or("N".into(), |v| v.to_string())).collect();
    format!("[{}]", parts.join(", "))
}

fn flatten_samples() -> Vec<Sample> {
    let axes = [1, -1, 0, 3].into_iter().zip(1..);
    axes.map(|(axis, seed)| checked(vec![uniform(&[2, 3, 2], seed)], vec![attr::int("axis", axis)])).collect()
}

fn reshape_samples() -> Vec<Sample> {
    let sample = |spec: &[i64], seed| Sample {
        inputs: vec![SampleInput::Checked(uniform(&[2, 3, 4], seed)), SampleInput::Ints(spec.to_vec())],
        attrs: vec![],
        outputs: 1,
    };
    vec![sample(&[0, -1], 1), sample(&[4, -1, 3], 2), sample(&[0, 4, 3], 3), sample(&[24], 4)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dim::{Batch, Fixed};

    fn known(spec: &[i64]) -> Vec<Int> {
        spec.iter().map(|&v| Int::Known(v)).collect()
    }

    #[test]
    fn flatten_and_reshape_carry_the_batch_dimension() {
        let image = [Batch, Fixed(1), Fixed(28), Fixed(28)];
        assert_eq!(count(&image[..1]), Some(Batch));
        assert_eq!(count(&image[1..]), Some(Fixed(784)));
        assert_eq!(count(&image[..2]), Some(Batch));
        assert_eq!(count(&image[..3]), None);
        assert_eq!(reshaped(&image, &known(&[0, -1]), false).unwrap(), vec![Batch, Fixed(784)]);
        assert_eq!(reshaped(&image, &known(&[-1, 784]), false).unwrap(), vec![Batch, Fixed(784)]);
        assert_eq!(reshaped(&[Batch, Fixed(784)], &known(&[-1, 1, 28, 28]), false).unwrap(), image.to_vec());
        assert_eq!(reshaped(&image, &known(&[0, 28, -1]), false).unwrap(), vec![Batch, Fixed(28), Fixed(28)]);
        assert_eq!(reshaped(&[Fixed(2), Fixed(6)], &known(&[0, 3, -1]), false).unwrap(), shape::fixed(&[2, 3, 2]));
        assert_eq!(reshaped(&[Fixed(6), Fixed(0)], &known(&[0, 6]), true).unwrap(), shape::fixed(&[0, 6]));
        assert!(reshaped(&image, &known(&[1, 784]), false).is_err());
        assert!(reshaped(&image, &known(&[0, 27, -1]), false).is_err());
        assert!(reshaped(&image, &known(&[-1, 28]), false).is_err());
        assert!(reshaped(&image, &known(&[-1, -1]), false).is_err());
        assert!(reshaped(&[Fixed(2), Fixed(6)], &known(&[5, -1]), false).is_err());
        let by_batch = [Int::Batch, Int::Known(-1)];
        assert_eq!(reshaped(&image, &by_batch, false).unwrap(), vec![Batch, Fixed(784)]);
        assert!(reshaped(&[Fixed(2), Fixed(6)], &by_batch, false).is_err(), "N does not appear from fixed dims");
        let heads = [Int::Batch, Int::Known(4), Int::Known(2), Int::Known(-1)];
        let tokens = [Batch, Fixed(4), Fixed(16)];
        assert_eq!(reshaped(&tokens, &heads, false).unwrap(), vec![Batch, Fixed(4), Fixed(2), Fixed(8)]);
    }
}
