//! Static tensor shapes with a symbolic batch dimension.
//!
//! advx's graphs take a batch of N independent examples; every other
//! dimension is known when a graph is differentiated, which lets gradient
//! rules decide broadcasting reductions and pooling geometry statically.

use std::fmt;

use anyhow::{Result, bail};

use super::ValueInfoProto;
use super::proto::tensor_shape_proto::dimension;
use super::proto::type_proto;

/// One dimension: known, or the batch size N.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    Fixed(usize),
    Batch,
}

impl Dim {
    /// The size, if known.
    pub fn fixed(self) -> Option<usize> {
        match self {
            Dim::Fixed(n) => Some(n),
            Dim::Batch => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Batch => write!(f, "N"),
        }
    }
}

/// A tensor's shape.
pub type Shape = Vec<Dim>;

/// Formats a shape as `[N, 1, 28, 28]`.
pub fn show(shape: &[Dim]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// Fixed dims from a known shape.
pub fn fixed(dims: &[usize]) -> Shape {
    dims.iter().map(|&d| Dim::Fixed(d)).collect()
}

/// All dimensions as numbers, failing if the batch dimension is among them.
pub fn all_fixed(shape: &[Dim], what: &str) -> Result<Vec<usize>> {
    shape.iter().map(|d| d.fixed().ok_or_else(|| anyhow::anyhow!("{what} depends on the batch size"))).collect()
}

/// The element type code and shape of a graph input or output; symbolic and
/// missing dimensions become the batch dimension.
pub fn of_value_info(v: &ValueInfoProto) -> Result<(i32, Shape)> {
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        bail!("'{}' is not a tensor", v.name());
    };
    let dims = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(dimension::Value::DimValue(n)) if n > 0 => Dim::Fixed(n as usize),
                    _ => Dim::Batch,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((t.elem_type(), dims))
}

/// Numpy-style broadcasting of two shapes.
pub fn broadcast(a: &[Dim], b: &[Dim]) -> Result<Shape> {
    let rank = a.len().max(b.len());
    let pad =
        |s: &[Dim]| -> Shape { std::iter::repeat_n(Dim::Fixed(1), rank - s.len()).chain(s.iter().copied()).collect() };
    let (a2, b2) = (pad(a), pad(b));
    a2.iter()
        .zip(&b2)
        .map(|(&x, &y)| match (x, y) {
            (x, y) if x == y => Ok(x),
            (Dim::Fixed(1), y) => Ok(y),
            (x, Dim::Fixed(1)) => Ok(x),
            _ => bail!("shapes {} and {} do not broadcast", show(a), show(b)),
        })
        .collect()
}

/// The axes of `out` along which a gradient must be summed to get back to
/// `input`'s shape (none when `input` has the higher rank: nothing was broadcast).
pub fn reduction_axes(input: &[Dim], out: &[Dim]) -> Vec<i64> {
    let Some(lead) = out.len().checked_sub(input.len()) else { return Vec::new() };
    (0..out.len())
        .filter(|&i| i < lead || (input[i - lead] == Dim::Fixed(1) && out[i] != Dim::Fixed(1)))
        .map(|i| i as i64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dim::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast(&[Batch, Fixed(3)], &[Fixed(3)]).unwrap(), vec![Batch, Fixed(3)]);
        assert_eq!(broadcast(&[Fixed(1), Fixed(3)], &[Fixed(4), Fixed(1)]).unwrap(), fixed(&[4, 3]));
        assert!(broadcast(&[Fixed(2)], &[Fixed(3)]).is_err());
    }

    #[test]
    fn reduction_axes_cover_leading_and_stretched_dims() {
        assert_eq!(reduction_axes(&[Fixed(3)], &[Batch, Fixed(3)]), vec![0]);
        assert_eq!(reduction_axes(&[Fixed(1), Fixed(3)], &[Batch, Fixed(3)]), vec![0]);
        assert_eq!(reduction_axes(&[Batch, Fixed(3)], &[Batch, Fixed(3)]), Vec::<i64>::new());
    }
}
