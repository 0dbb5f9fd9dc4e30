//! What the engine knows about a forward graph: every tensor's element type,
//! static shape and (for initializers and Constants) value.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use ndarray::ArrayD;

use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::{self, Shape};
use crate::onnx::{self, GraphProto, NodeProto, tensor};

/// A tensor of the forward graph.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    /// ONNX element type code.
    pub elem: i32,
    pub shape: Shape,
    /// The value, when it is a float constant (initializer or Constant node).
    pub value: Option<ArrayD<f32>>,
    /// The value, flattened, when it is an integer (or boolean) tensor
    /// known before run time: a constant (shapes, axes, pads) or folded
    /// from one, such as the shape of a batch `[N, 64]`.
    pub ints: Option<Vec<Int>>,
}

/// An element of an integer tensor whose value is known before run time:
/// a number, or the batch size N, which only the run knows (the first
/// element of the `Shape` of a batch). Shape computations are folded over
/// these values, so that a Reshape to `[N, -1]` computed from `Shape(x)`
/// has a static shape but for the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int {
    Known(i64),
    Batch,
}

impl Int {
    /// The number, if known.
    pub fn known(self) -> Option<i64> {
        match self {
            Int::Known(v) => Some(v),
            Int::Batch => None,
        }
    }
}

impl TensorInfo {
    /// Whether the tensor holds floats, and so can carry a gradient.
    pub fn is_float(&self) -> bool {
        self.elem == DataType::Float as i32
    }

    /// A tensor whose value is not known before run time.
    pub fn new(name: &str, elem: i32, shape: Shape) -> Self {
        TensorInfo { name: name.to_string(), elem, shape, value: None, ints: None }
    }

    /// The integer value, when every element is a known number.
    pub fn known_ints(&self) -> Option<Vec<i64>> {
        self.ints.as_ref()?.iter().map(|v| v.known()).collect()
    }
}

/// A node of the forward graph with what is known about its tensors.
pub struct Node<'g> {
    pub proto: &'g NodeProto,
    /// One entry per input slot; `None` for an omitted optional input.
    pub inputs: Vec<Option<TensorInfo>>,
    pub outputs: Vec<TensorInfo>,
}

impl Node<'_> {
    /// The node's op type.
    pub fn op(&self) -> &str {
        self.proto.op_type()
    }

    /// The node as messages name it.
    pub fn describe(&self) -> String {
        onnx::describe(self.proto)
    }

    /// Input `i`, failing with the node's name when it is absent.
    pub fn input(&self, i: usize) -> Result<&TensorInfo> {
        self.inputs.get(i).and_then(Option::as_ref).with_context(|| format!("{} lacks input {i}", self.describe()))
    }

    /// Input `i` when present.
    pub fn opt_input(&self, i: usize) -> Option<&TensorInfo> {
        self.inputs.get(i).and_then(Option::as_ref)
    }

    /// The shape of input `i`.
    pub fn in_shape(&self, i: usize) -> Result<&Shape> {
        Ok(&self.input(i)?.shape)
    }

    /// Input `i`, a 1-D integer tensor (axes, pads, bounds), whose values
    /// must be known numbers before run time; `None` when it is omitted.
    pub fn known_vector(&self, i: usize) -> Result<Option<Vec<i64>>> {
        let Some(t) = self.opt_input(i) else { return Ok(None) };
        if t.shape.len() != 1 {
            bail!(
                "{} reads '{}' of shape {} as input {i}, which must be 1-D",
                self.describe(),
                t.name,
                shape::show(&t.shape)
            );
        }
        match t.known_ints() {
            Some(values) => Ok(Some(values)),
            None => {
                bail!("{} reads '{}' as input {i}, which advx cannot compute before run time", self.describe(), t.name)
            }
        }
    }

    /// An integer attribute.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        onnx::attr_int(self.proto, name, default)
    }

    /// A float attribute.
    pub fn float(&self, name: &str, default: f32) -> f32 {
        onnx::attr_float(self.proto, name, default)
    }

    /// An integer-list attribute.
    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        onnx::attr_ints(self.proto, name)
    }

    /// An axis attribute normalised to `0..rank`.
    pub fn axis(&self, name: &str, default: i64, rank: usize) -> Result<usize> {
        normalize_axis(self.int(name, default), rank).with_context(|| self.describe())
    }
}

/// Maps a possibly negative axis into `0..rank`.
pub fn normalize_axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        bail!("axis {axis} is out of range for rank {rank}");
    }
    Ok(if axis < 0 { (axis + r) as usize } else { axis as usize })
}

/// Every tensor of a graph by name, starting from its inputs and initializers.
#[derive(Default)]
pub struct Tensors(pub HashMap<String, TensorInfo>);

impl Tensors {
    /// Collects the graph inputs and initializers; node outputs are added as
    /// shapes are inferred. An input gets a shape whose dimensions are
    /// fixed but for the first, the batch; an initializer also declared as
    /// an input is declared with its own type and shape.
    pub fn of_graph(graph: &GraphProto) -> Result<Tensors> {
        let mut map = HashMap::new();
        for init in &graph.initializer {
            let info = constant_info(init.name(), init)?;
            map.insert(info.name.clone(), info);
        }
        for input in &graph.input {
            let name = input.name();
            let (elem, shape) = shape::of_value_info(input).with_context(|| format!("the model's input '{name}'"))?;
            if !matches!(DataType::try_from(elem), Ok(t) if t != DataType::Undefined) {
                bail!("the model's input '{name}' has element type {}", tensor::elem_name(elem));
            }
            if let Some(init) = map.get(name) {
                let same = init.elem == elem
                    && init.shape.len() == shape.len()
                    && init.shape.iter().zip(&shape).all(|(i, d)| d.fixed().is_none_or(|_| i == d));
                if !same {
                    bail!(
                        "the model's input '{name}' is declared {} {}, but its initializer is {} {}",
                        tensor::elem_name(elem),
                        shape::show(&shape),
                        tensor::elem_name(init.elem),
                        shape::show(&init.shape)
                    );
                }
                continue;
            }
            if let Some(i) = shape.iter().skip(1).position(|d| d.fixed().is_none()) {
                bail!(
                    "the model's input '{name}' is {}: dimension {} is not fixed; advx needs every dimension \
                     but the first (the batch) fixed",
                    shape::show(&shape),
                    i + 1
                );
            }
            shape::per_example(&shape)
                .with_context(|| format!("the model's input '{name}' of shape {}", shape::show(&shape)))?;
            map.insert(name.to_string(), TensorInfo::new(name, elem, shape));
        }
        Ok(Tensors(map))
    }

    /// The info of a tensor by name.
    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        self.0.get(name)
    }
}

/// The info of a constant tensor (an initializer or a Constant node's
/// value), keeping its value for the rules and the spectral analysis.
pub fn constant_info(name: &str, t: &onnx::TensorProto) -> Result<TensorInfo> {
    let dims = tensor::dims(t).with_context(|| format!("constant '{name}'"))?;
    tensor::check_storage(t).with_context(|| format!("constant '{name}'"))?;
    let elem = t.data_type();
    let mut info = TensorInfo { name: name.to_string(), elem, shape: shape::fixed(&dims), value: None, ints: None };
    if elem == DataType::Float as i32 {
        info.value = Some(tensor::to_f32(t)?);
    } else if [DataType::Int64, DataType::Int32, DataType::Bool].iter().any(|&d| d as i32 == elem) {
        info.ints = Some(tensor::to_i64(t)?.into_iter().map(Int::Known).collect());
    }
    Ok(info)
}

/// The tensor a Constant node holds, whichever attribute it uses
/// (`value`, or the opset-12 shorthands `value_float(s)`, `value_int(s)`).
pub fn constant_value(node: &NodeProto) -> Result<onnx::TensorProto> {
    let out = node.output.first().map_or("", String::as_str);
    let attribute = node.attribute.first().with_context(|| format!("{} has no value", onnx::describe(node)))?;
    let tensor = match attribute.name() {
        "value" => attribute.t.clone().with_context(|| format!("{} has an empty 'value'", onnx::describe(node)))?,
        "value_float" => tensor::from_f32(out, &ArrayD::from_elem(ndarray::IxDyn(&[]), attribute.f())),
        "value_floats" => tensor::from_f32(out, &ndarray::arr1(&attribute.floats).into_dyn()),
        "value_int" => tensor::from_i64(out, &[], &[attribute.i()]),
        "value_ints" => tensor::from_i64(out, &[attribute.ints.len()], &attribute.ints),
        other => bail!("{} holds a '{other}', which advx does not read", onnx::describe(node)),
    };
    Ok(tensor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::builder::attr;

    fn constant(attribute: onnx::AttributeProto) -> NodeProto {
        NodeProto {
            op_type: Some("Constant".into()),
            output: vec!["c".into()],
            attribute: vec![attribute],
            ..Default::default()
        }
    }

    #[test]
    fn constant_shorthands_become_tensors() {
        let ints = constant_info("c", &constant_value(&constant(attr::ints("value_ints", &[0, -1]))).unwrap()).unwrap();
        assert_eq!(ints.known_ints().as_deref(), Some(&[0, -1][..]));
        assert_eq!(ints.shape, shape::fixed(&[2]));
        let float = constant_info("c", &constant_value(&constant(attr::float("value_float", 0.5))).unwrap()).unwrap();
        assert_eq!(float.value.unwrap().iter().copied().collect::<Vec<_>>(), vec![0.5]);
        assert!(float.shape.is_empty());
        let err = constant_value(&constant(attr::string("value_string", "x"))).unwrap_err().to_string();
        assert!(err.contains("value_string"), "{err}");
    }

    #[test]
    fn bool_constants_read_as_zero_and_one() {
        let t = onnx::TensorProto {
            name: Some("training_mode".into()),
            data_type: Some(DataType::Bool as i32),
            raw_data: Some(vec![0]),
            ..Default::default()
        };
        assert_eq!(constant_info("training_mode", &t).unwrap().known_ints().as_deref(), Some(&[0][..]));
    }
}
