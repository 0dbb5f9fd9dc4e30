//! Conversions between ONNX `TensorProto`s and ndarray arrays.

use anyhow::{Context, Result, anyhow, bail};
use ndarray::{ArrayD, IxDyn};

use super::proto::tensor_proto::DataType;
use super::{TensorProto, shape};

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

/// An ONNX element type as messages name it.
pub fn elem_name(code: i32) -> String {
    let name = match DataType::try_from(code) {
        Ok(DataType::Float) => "float32",
        Ok(DataType::Double) => "float64",
        Ok(DataType::Float16) => "float16",
        Ok(DataType::Bfloat16) => "bfloat16",
        Ok(DataType::Int64) => "int64",
        Ok(DataType::Int32) => "int32",
        Ok(DataType::Int8) => "int8",
        Ok(DataType::Uint8) => "uint8",
        Ok(DataType::Bool) => "bool",
        Ok(DataType::String) => "string",
        Ok(other) => return other.as_str_name().to_lowercase(),
        Err(_) => return format!("unknown type {code}"),
    };
    name.to_string()
}

/// The tensor's dimensions, rejecting negative ones and shapes too large
/// for any machine's memory (whose element count would overflow). Whether
/// the data is there is checked when the values are read.
pub fn dims(t: &TensorProto) -> Result<Vec<usize>> {
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| anyhow!("tensor '{}' has a negative dimension {d}", t.name())))
        .collect::<Result<Vec<usize>>>()?;
    if shape::stored_volume(&dims).is_none() {
        bail!("tensor '{}' has dimensions {dims:?}, more elements than any machine holds", t.name());
    }
    Ok(dims)
}

/// Reads a float tensor, whichever of its storage fields holds the data.
pub fn to_f32(t: &TensorProto) -> Result<ArrayD<f32>> {
    let name = t.name();
    if t.data_type != Some(DataType::Float as i32) {
        bail!("tensor '{name}' has element type {}, not float", elem_name(t.data_type()));
    }
    check_not_external(t)?;
    let dims = dims(t)?;
    let values: Vec<f32> = match &t.raw_data {
        Some(raw) if !raw.is_empty() || t.float_data.is_empty() => {
            raw_values::<_, 4>(t, &dims, raw, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))?
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
                raw_values::<_, 8>(t, &dims, raw, |b| {
                    i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                })?
            }
        }
        Some(x) if x == DataType::Int32 as i32 => {
            if raw.is_empty() {
                t.int32_data.iter().map(|&v| v as i64).collect()
            } else {
                raw_values::<_, 4>(t, &dims, raw, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)?
            }
        }
        Some(x) if x == DataType::Bool as i32 => {
            if raw.is_empty() {
                t.int32_data.iter().map(|&v| v as i64).collect()
            } else {
                raw_values::<_, 1>(t, &dims, raw, |b| b[0] as i64)?
            }
        }
        _ => bail!("tensor '{name}' has element type {}, not an integer", elem_name(t.data_type())),
    };
    shaped(name, dims, values)
}

/// Checks that a tensor holds its values in one place, as many as its
/// shape needs, in the field its element type goes in (onnx.checker's
/// rules), whether or not advx reads them: a backward graph copies the
/// model's initializers as they are.
pub fn check_storage(t: &TensorProto) -> Result<()> {
    check_not_external(t)?;
    let name = t.name();
    let count = dims(t)?.iter().product::<usize>();
    let code = t.data_type();
    let Some((bytes, field, per_value)) = layout(code) else {
        bail!("tensor '{name}' has element type {}, which advx does not read", elem_name(code));
    };
    let fields = [
        ("raw_data", t.raw_data.as_ref().map(Vec::len)),
        ("float_data", Some(t.float_data.len()).filter(|&n| n > 0)),
        ("int32_data", Some(t.int32_data.len()).filter(|&n| n > 0)),
        ("string_data", Some(t.string_data.len()).filter(|&n| n > 0)),
        ("int64_data", Some(t.int64_data.len()).filter(|&n| n > 0)),
        ("double_data", Some(t.double_data.len()).filter(|&n| n > 0)),
        ("uint64_data", Some(t.uint64_data.len()).filter(|&n| n > 0)),
    ];
    let mut used = fields.iter().filter_map(|(f, len)| len.map(|len| (*f, len)));
    let Some((used_field, len)) = used.next() else {
        if count > 0 {
            bail!("tensor '{name}' of shape {:?} holds no values", t.dims);
        }
        return Ok(());
    };
    if let Some((other, _)) = used.next() {
        bail!("tensor '{name}' holds values in both {used_field} and {other}");
    }
    let expected = match used_field {
        "raw_data" if bytes > 0 => count * bytes,
        f if f == field => count * per_value,
        f => bail!("tensor '{name}' of element type {} holds its values in {f}", elem_name(code)),
    };
    if len != expected {
        let unit = if used_field == "raw_data" { "bytes" } else { "values" };
        bail!("tensor '{name}' of shape {:?} has {len} {unit} in {used_field}, not {expected}", t.dims);
    }
    Ok(())
}

/// Where an element type's values go: bytes per value in `raw_data` (0:
/// never raw), the typed field, and how many of its entries make a value.
fn layout(code: i32) -> Option<(usize, &'static str, usize)> {
    use DataType::*;
    Some(match DataType::try_from(code).ok()? {
        Float => (4, "float_data", 1),
        Complex64 => (8, "float_data", 2),
        Int32 => (4, "int32_data", 1),
        Int16 | Uint16 | Float16 | Bfloat16 => (2, "int32_data", 1),
        Int8 | Uint8 | Bool | Float8e4m3fn | Float8e4m3fnuz | Float8e5m2 | Float8e5m2fnuz | Float8e8m0 => {
            (1, "int32_data", 1)
        }
        String => (0, "string_data", 1),
        Int64 => (8, "int64_data", 1),
        Double => (8, "double_data", 1),
        Complex128 => (16, "double_data", 2),
        Uint32 => (4, "uint64_data", 1),
        Uint64 => (8, "uint64_data", 1),
        _ => return None,
    })
}

fn check_not_external(t: &TensorProto) -> Result<()> {
    if t.data_location == Some(1) || !t.external_data.is_empty() {
        bail!("tensor '{}' keeps its data in an external file, which advx does not read", t.name());
    }
    Ok(())
}

/// Decodes `raw_data` of `N`-byte elements, checking first that it holds
/// exactly the shape's values.
fn raw_values<T, const N: usize>(
    t: &TensorProto,
    dims: &[usize],
    raw: &[u8],
    decode: impl Fn(&[u8]) -> T,
) -> Result<Vec<T>> {
    let count: usize = dims.iter().product();
    if raw.len() != count * N {
        bail!(
            "tensor '{}' has {} bytes of raw data for shape {dims:?}, which needs {} ({count} values of {N} bytes)",
            t.name(),
            raw.len(),
            count * N
        );
    }
    Ok(raw.chunks_exact(N).map(decode).collect())
}

fn shaped<T>(name: &str, dims: Vec<usize>, values: Vec<T>) -> Result<ArrayD<T>> {
    let expected: usize = dims.iter().product();
    if values.len() != expected {
        bail!("tensor '{name}' has {} values for shape {dims:?}", values.len());
    }
    ArrayD::from_shape_vec(IxDyn(&dims), values).with_context(|| format!("tensor '{name}' of shape {dims:?}"))
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
        assert!(err.contains("'w'") && err.contains("7 bytes") && err.contains("needs 16"), "{err}");
        let mut t = from_i64("s", &[2], &[1, 2]);
        t.raw_data.as_mut().unwrap().push(0);
        let err = to_i64(&t).unwrap_err().to_string();
        assert!(err.contains("'s'") && err.contains("17 bytes"), "{err}");
    }

    #[test]
    fn storage_holds_as_many_values_as_the_shape_in_one_field() {
        assert!(check_storage(&from_f32("w", &ArrayD::zeros(IxDyn(&[2, 3])))).is_ok());
        assert!(check_storage(&from_i64("s", &[2], &[1, 2])).is_ok());
        let mut t = from_f32("w", &ArrayD::zeros(IxDyn(&[2])));
        t.float_data = vec![1.0, 2.0];
        assert!(check_storage(&t).unwrap_err().to_string().contains("both raw_data and float_data"));
        t.raw_data = None;
        assert!(check_storage(&t).is_ok());
        t.data_type = Some(DataType::Double as i32);
        assert!(check_storage(&t).unwrap_err().to_string().contains("float64 holds its values in float_data"));
        t.data_type = Some(DataType::Int8 as i32);
        t.float_data.clear();
        t.raw_data = Some(vec![1, 2, 3]);
        let e = check_storage(&t).unwrap_err().to_string();
        assert!(e.contains("'w'") && e.contains("3 bytes in raw_data, not 2"), "{e}");
        t.raw_data = None;
        assert!(check_storage(&t).unwrap_err().to_string().contains("holds no values"));
        t.data_type = Some(99);
        assert!(check_storage(&t).unwrap_err().to_string().contains("unknown type 99"));
    }

    /// Dims whose product wraps to 0 in release builds (2^32 * 2^32) once
    /// panicked in ndarray's shape check ("length checked").
    #[test]
    fn dims_whose_product_overflows_are_an_error_naming_the_tensor() {
        let mut t = from_f32("w", &ArrayD::zeros(IxDyn(&[0])));
        t.dims = vec![1 << 32, 1 << 32];
        let err = format!("{:#}", to_f32(&t).unwrap_err());
        assert!(err.contains("'w'") && err.contains("more elements than any machine holds"), "{err}");
        t.dims = vec![0, 1 << 40, 1 << 40];
        assert!(to_f32(&t).is_err(), "an empty tensor with unbounded dims");
        t.dims = vec![3, -1];
        let err = format!("{:#}", to_f32(&t).unwrap_err());
        assert!(err.contains("'w'") && err.contains("negative dimension -1"), "{err}");
    }
}
