//! Conversions between ONNX `TensorProto`s and ndarray arrays.

use anyhow::{Result, bail};
use ndarray::{ArrayD, IxDyn};

use super::TensorProto;
use super::proto::tensor_proto::DataType;

/// A float tensor as an initializer named `name`, stored as raw little-endian bytes.
pub fn from_f32(name: &str, array: &ArrayD<f32>) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: array.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(array.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// An int64 tensor as an initializer named `name`.
pub fn from_i64(name: &str, dims: &[usize], values: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(DataType::Int64 as i32),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// The tensor's dimensions, rejecting negative ones.
pub fn dims(t: &TensorProto) -> Result<Vec<usize>> {
    t.dims.iter().map(|&d| usize::try_from(d).map_err(|_| anyhow::anyhow!("negative dimension {d}"))).collect()
}

/// Reads a float tensor, whichever of its storage fields holds the data.
pub fn to_f32(t: &TensorProto) -> Result<ArrayD<f32>> {
    let name = t.name();
    if t.data_type != Some(DataType::Float as i32) {
        bail!("tensor '{name}' has element type {}, not float", t.data_type());
    }
    check_not_external(t)?;
    let dims = dims(t)?;
    let values: Vec<f32> = match &t.raw_data {
        Some(raw) if !raw.is_empty() || t.float_data.is_empty() => {
            raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        }
        _ => t.float_data.clone(),
    };
    shaped(name, dims, values)
}

/// Reads an int64 tensor (also accepting int32, as some exporters write
/// shapes so, and bool, as 0 and 1).
pub fn to_i64(t: &TensorProto) -> Result<ArrayD<i64>> {
    let name = t.name();
    check_not_external(t)?;
    let dims = dims(t)?;
    let raw = t.raw_data.as_deref().unwrap_or_default();
    let values: Vec<i64> = match t.data_type {
        Some(x) if x == DataType::Int64 as i32 => {
            if raw.is_empty() {
                t.int64_data.clone()
            } else {
                raw.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8-byte chunk"))).collect()
            }
        }
        Some(x) if x == DataType::Int32 as i32 => {
            if raw.is_empty() {
                t.int32_data.iter().map(|&v| v as i64).collect()
            } else {
                raw.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().expect("4-byte chunk")) as i64).collect()
            }
        }
        Some(x) if x == DataType::Bool as i32 => {
            if raw.is_empty() {
                t.int32_data.iter().map(|&v| v as i64).collect()
            } else {
                raw.iter().map(|&b| b as i64).collect()
            }
        }
        _ => bail!("tensor '{name}' has element type {}, not an integer", t.data_type()),
    };
    shaped(name, dims, values)
}

fn check_not_external(t: &TensorProto) -> Result<()> {
    if t.data_location == Some(1) || !t.external_data.is_empty() {
        bail!("tensor '{}' keeps its data in an external file, which advx does not read", t.name());
    }
    Ok(())
}

fn shaped<T>(name: &str, dims: Vec<usize>, values: Vec<T>) -> Result<ArrayD<T>> {
    let expected: usize = dims.iter().product();
    if values.len() != expected {
        bail!("tensor '{name}' has {} values for shape {dims:?}", values.len());
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&dims), values).expect("length checked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_round_trip_keeps_shape_and_values() {
        let a = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0, -2.5, 3.0, 0.0, 1e-7, 9.0]).unwrap();
        assert_eq!(to_f32(&from_f32("w", &a)).unwrap(), a);
    }

    #[test]
    fn truncated_raw_data_is_an_error_naming_the_tensor() {
        let mut t = from_f32("w", &ArrayD::zeros(IxDyn(&[4])));
        t.raw_data.as_mut().unwrap().truncate(7);
        let err = to_f32(&t).unwrap_err().to_string();
        assert!(err.contains("'w'") && err.contains("1 values"), "{err}");
    }
}
