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

/// `log2` of [`MAX_ELEMENTS`], as messages state the limit.
pub const MAX_ELEMENTS_LOG2: u32 = 26;

/// The most elements advx accepts in a tensor whose size is not backed by
/// data in the file: a graph input or a tensor a node makes (per example:
/// the batch dimension is not counted), and any array advx builds from such
/// sizes or from attributes: 2^26, 256 MiB of f32. No model advx is for
/// comes near it; under it every size computed from shapes and attributes
/// stays far from overflow, and every allocation is one a machine can make.
pub const MAX_ELEMENTS: usize = 1 << MAX_ELEMENTS_LOG2;

/// The number of elements of an array with these dimensions, failing when
/// it exceeds [`MAX_ELEMENTS`]. Zero dimensions count as one for the bound
/// (ndarray's rule), so every sub-product of accepted dimensions is bounded too.
pub fn volume(dims: &[usize]) -> Result<usize> {
    if product_within(dims, MAX_ELEMENTS).is_none() {
        bail!(
            "{dims:?} would hold more than 2^{MAX_ELEMENTS_LOG2} elements, the most advx builds or infers for a tensor"
        );
    }
    Ok(dims.iter().product())
}

/// The number of elements of a tensor whose values are in the file, when
/// its size in bytes fits in memory at all (checked, as ndarray counts:
/// zero dimensions count as one).
pub fn stored_volume(dims: &[usize]) -> Option<usize> {
    product_within(dims, isize::MAX as usize / 8).map(|_| dims.iter().product())
}

/// The product of the dimensions, zeros counted as one, if it is at most `limit`.
fn product_within(dims: &[usize], limit: usize) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)).filter(|&v| v <= limit))
}

/// The number of elements per example: the fixed dimensions' [`volume`].
pub fn per_example(shape: &[Dim]) -> Result<usize> {
    let fixed: Vec<usize> = shape.iter().filter_map(|d| d.fixed()).collect();
    volume(&fixed)
}

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
/// missing dimensions become the batch dimension. A tensor without a shape
/// (not even its rank), or with a negative dimension, is an error.
pub fn of_value_info(v: &ValueInfoProto) -> Result<(i32, Shape)> {
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        bail!("'{}' is not a tensor", v.name());
    };
    let Some(shape) = &t.shape else {
        bail!("'{}' has no shape (not even a rank)", v.name());
    };
    let dims = shape
        .dim
        .iter()
        .map(|d| match d.value {
            Some(dimension::Value::DimValue(n)) => match usize::try_from(n) {
                Ok(n) => Ok(Dim::Fixed(n)),
                Err(_) => bail!("'{}' has a negative dimension {n}", v.name()),
            },
            _ => Ok(Dim::Batch),
        })
        .collect::<Result<Shape>>()?;
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
    fn volumes_are_checked_and_bounded() {
        assert_eq!(volume(&[2, 3, 4]).unwrap(), 24);
        assert_eq!(volume(&[]).unwrap(), 1);
        assert_eq!(volume(&[0, 5]).unwrap(), 0);
        assert_eq!(volume(&[MAX_ELEMENTS]).unwrap(), MAX_ELEMENTS);
        assert!(volume(&[MAX_ELEMENTS, 2]).is_err());
        assert!(volume(&[1 << 32, 1 << 32]).is_err(), "overflows usize");
        assert!(volume(&[0, 1 << 20, 1 << 20]).is_err(), "empty, but its other dims are not bounded");
        assert_eq!(stored_volume(&[1 << 20, 1 << 20]), Some(1 << 40));
        assert_eq!(stored_volume(&[1 << 32, 1 << 32]), None);
        assert_eq!(stored_volume(&[0, 1 << 40, 1 << 40]), None);
        assert_eq!(per_example(&[Batch, Fixed(3), Fixed(4)]).unwrap(), 12);
    }

    #[test]
    fn reduction_axes_cover_leading_and_stretched_dims() {
        assert_eq!(reduction_axes(&[Fixed(3)], &[Batch, Fixed(3)]), vec![0]);
        assert_eq!(reduction_axes(&[Fixed(1), Fixed(3)], &[Batch, Fixed(3)]), vec![0]);
        assert_eq!(reduction_axes(&[Batch, Fixed(3)], &[Batch, Fixed(3)]), Vec::<i64>::new());
    }
}
