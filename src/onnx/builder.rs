//! A small builder for ONNX graphs: fresh names, nodes, constants, and the
//! typed inputs and outputs that make a graph self-describing in Netron.

use std::collections::{HashMap, HashSet};

use ndarray::ArrayD;

use super::proto::tensor_proto::DataType;
use super::proto::tensor_shape_proto::{Dimension, dimension};
use super::proto::type_proto::{self, Tensor as TensorType};
use super::proto::{OperatorSetIdProto, TensorShapeProto, TypeProto, attribute_proto::AttributeType};
use super::{AttributeProto, GraphProto, IR_VERSION, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use super::{shape::Dim, tensor};

/// Element types advx's graphs use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F32,
    I64,
    Bool,
}

impl Elem {
    /// The ONNX data type code.
    pub fn code(self) -> i32 {
        match self {
            Elem::F32 => DataType::Float as i32,
            Elem::I64 => DataType::Int64 as i32,
            Elem::Bool => DataType::Bool as i32,
        }
    }
}

/// Builds one graph. Names are kept unique so that rules can add nodes
/// without knowing what else is in the graph.
#[derive(Default)]
pub struct GraphBuilder {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    pub inputs: Vec<ValueInfoProto>,
    pub outputs: Vec<ValueInfoProto>,
    taken: HashSet<String>,
    counters: HashMap<String, usize>,
    scalars: HashMap<u32, String>,
}

impl GraphBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks a name as used, so that [`fresh`](Self::fresh) never returns it.
    pub fn reserve(&mut self, name: &str) {
        self.taken.insert(name.to_string());
    }

    /// A name not yet used in the graph, derived from `hint`.
    pub fn fresh(&mut self, hint: &str) -> String {
        let counter = self.counters.entry(hint.to_string()).or_insert(0);
        loop {
            let name = if *counter == 0 { hint.to_string() } else { format!("{hint}_{counter}") };
            *counter += 1;
            if self.taken.insert(name.clone()) {
                return name;
            }
        }
    }

    /// Adds a node with one output and returns the output's name.
    pub fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.op_n(op, inputs, 1, attrs).pop().expect("one output")
    }

    /// Adds a node with `outputs` outputs and returns their names.
    pub fn op_n(&mut self, op: &str, inputs: &[&str], outputs: usize, attrs: Vec<AttributeProto>) -> Vec<String> {
        let base = self.fresh(&format!("{}_{}", NAME_PREFIX, op.to_lowercase()));
        let outs: Vec<String> =
            (0..outputs).map(|i| if i == 0 { base.clone() } else { self.fresh(&format!("{base}_{i}")) }).collect();
        self.nodes.push(NodeProto {
            name: Some(base),
            op_type: Some(op.to_string()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outs.clone(),
            attribute: attrs,
            ..Default::default()
        });
        outs
    }

    /// Adds an existing node verbatim (names must already be reserved).
    pub fn push(&mut self, node: NodeProto) {
        for name in node.output.iter().chain(node.name.iter()) {
            self.reserve(name);
        }
        self.nodes.push(node);
    }

    /// Adds a float initializer and returns its name.
    pub fn const_f32(&mut self, hint: &str, array: &ArrayD<f32>) -> String {
        let name = self.fresh(hint);
        self.initializers.push(tensor::from_f32(&name, array));
        name
    }

    /// Adds a 1-D int64 initializer (axes, shapes, pads) and returns its name.
    pub fn const_i64(&mut self, hint: &str, values: &[i64]) -> String {
        let name = self.fresh(hint);
        self.initializers.push(tensor::from_i64(&name, &[values.len()], values));
        name
    }

    /// A float scalar initializer, shared between all uses of the same value.
    pub fn scalar(&mut self, value: f32) -> String {
        if let Some(name) = self.scalars.get(&value.to_bits()) {
            return name.clone();
        }
        let name = self.fresh(&format!("{NAME_PREFIX}_const"));
        self.initializers.push(tensor::from_f32(&name, &ArrayD::from_elem(ndarray::IxDyn(&[]), value)));
        self.scalars.insert(value.to_bits(), name.clone());
        name
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem: Elem, dims: &[Dim]) {
        self.reserve(name);
        self.inputs.push(value_info(name, elem, dims));
    }

    /// Declares a graph output.
    pub fn output(&mut self, name: &str, elem: Elem, dims: &[Dim]) {
        self.outputs.push(value_info(name, elem, dims));
    }

    /// Wraps the graph into a model for the given opset.
    pub fn into_model(self, graph_name: &str, opset: i64, doc: &str) -> ModelProto {
        ModelProto {
            ir_version: Some(IR_VERSION),
            producer_name: Some("advx".into()),
            producer_version: Some(env!("CARGO_PKG_VERSION").into()),
            doc_string: Some(doc.to_string()),
            opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(opset) }],
            graph: Some(GraphProto {
                name: Some(graph_name.to_string()),
                node: self.nodes,
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// Prefix of every name advx invents, so that its nodes stand out in Netron.
pub const NAME_PREFIX: &str = "advx";

/// A typed value description for graph inputs and outputs.
pub fn value_info(name: &str, elem: Elem, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => dimension::Value::DimValue(*n as i64),
                Dim::Batch => dimension::Value::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(TensorType {
                elem_type: Some(elem.code()),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Attribute constructors, named after the ONNX attribute types.
pub mod attr {
    use super::*;

    fn base(name: &str, kind: AttributeType) -> AttributeProto {
        AttributeProto { name: Some(name.to_string()), r#type: Some(kind as i32), ..Default::default() }
    }

    pub fn int(name: &str, v: i64) -> AttributeProto {
        AttributeProto { i: Some(v), ..base(name, AttributeType::Int) }
    }

    pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto { ints: v.to_vec(), ..base(name, AttributeType::Ints) }
    }

    pub fn float(name: &str, v: f32) -> AttributeProto {
        AttributeProto { f: Some(v), ..base(name, AttributeType::Float) }
    }

    pub fn string(name: &str, v: &str) -> AttributeProto {
        AttributeProto { s: Some(v.as_bytes().to_vec()), ..base(name, AttributeType::String) }
    }

    pub fn tensor(name: &str, v: TensorProto) -> AttributeProto {
        AttributeProto { t: Some(v), ..base(name, AttributeType::Tensor) }
    }
}
