//! What ONNX allows a node of an op to be wired with: how many inputs and
//! outputs, the element type of each (the op's type `T`, or another one),
//! and which attributes, of which type (some only in some opsets).
//!
//! The engine checks every node against its rule's signature before it
//! infers shapes, so that a node ONNX Runtime or onnx.checker would reject
//! is an error naming the node, not a backward graph that fails to load.

use std::collections::HashSet;
use std::ops::RangeInclusive;

use anyhow::{Result, bail};

use crate::onnx::proto::attribute_proto::AttributeType;
/// Attribute types, as the rules' signatures name them.
pub use crate::onnx::proto::attribute_proto::AttributeType as Kind;
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::{self, NodeProto, tensor};

/// How a node of one op may be wired.
pub struct Signature {
    /// The first opset that has the op (1 for those of every opset advx reads).
    pub since: i64,
    pub inputs: RangeInclusive<usize>,
    pub outputs: RangeInclusive<usize>,
    /// Input slots that exist only from an opset on: (slot, first opset).
    pub inputs_since: &'static [(usize, i64)],
    /// Inputs and outputs that hold another element type than the op's `T`.
    pub typed: &'static [(Port, Ty)],
    /// The element types `T` may be: every port not in `typed` holds `T`,
    /// the same type throughout a node. Ops of shape computations also take
    /// integers, whose tensors carry no gradient.
    pub t: &'static [DataType],
    pub attributes: &'static [Attribute],
}

/// Float32 only: the op's values carry gradients.
pub const FLOAT: &[DataType] = &[DataType::Float];

/// Float32, or the integers of shape computations (what `torch.onnx.export`
/// writes for `x.view(x.size(0), -1)`: Shape, Gather, Concat... on int64).
pub const NUMERIC: &[DataType] = &[DataType::Float, DataType::Int64, DataType::Int32];

/// The integers of shape computations only (Range's bounds).
pub const INTEGER: &[DataType] = &[DataType::Int64, DataType::Int32];

/// The element type of a port that does not hold the op's `T`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ty {
    Is(DataType),
    /// Any element type (Shape reads any tensor).
    Any,
    /// The type an attribute names: an integer type code (Cast's `to`), or
    /// a tensor's type (ConstantOfShape's `value`); float32 when absent.
    Named(&'static str),
}

/// An input or output slot of a node.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Port {
    Input(usize),
    Output(usize),
}

/// An attribute an op accepts.
#[derive(Clone, Copy)]
pub struct Attribute {
    pub name: &'static str,
    pub kind: AttributeType,
    /// The first and last opsets whose version of the op has it.
    pub since: i64,
    pub until: i64,
    /// An integer that is a flag: 0 or 1. ONNX's shape inference and ONNX
    /// Runtime read other values differently (`keepdims = 2` keeps the
    /// axes in one, not the other), so advx takes no other.
    pub flag: bool,
}

impl Attribute {
    /// An attribute the op has in every opset advx reads.
    pub const fn of(name: &'static str, kind: AttributeType) -> Attribute {
        Attribute { name, kind, since: 1, until: i64::MAX, flag: false }
    }

    /// An attribute the op gained in opset `since`.
    pub const fn since(name: &'static str, kind: AttributeType, since: i64) -> Attribute {
        Attribute { name, kind, since, until: i64::MAX, flag: false }
    }

    /// An attribute the op lost after opset `until`.
    pub const fn until(name: &'static str, kind: AttributeType, until: i64) -> Attribute {
        Attribute { name, kind, since: 1, until, flag: false }
    }

    /// The same attribute, an integer flag: 0 or 1.
    pub const fn flag(self) -> Attribute {
        Attribute { flag: true, ..self }
    }
}

/// A Constant node: no input, one output, its value in one attribute
/// (advx reads the numeric ones).
pub const CONSTANT: Signature = Signature {
    since: 1,
    inputs: 0..=0,
    outputs: 1..=1,
    inputs_since: &[],
    typed: &[],
    t: FLOAT,
    attributes: &[
        Attribute::of("value", Kind::Tensor),
        Attribute::of("value_float", Kind::Float),
        Attribute::of("value_floats", Kind::Floats),
        Attribute::of("value_int", Kind::Int),
        Attribute::of("value_ints", Kind::Ints),
    ],
};

impl Signature {
    /// `inputs` float inputs, one float output, these attributes.
    pub const fn floats(inputs: usize, attributes: &'static [Attribute]) -> Signature {
        Signature {
            since: 1,
            inputs: inputs..=inputs,
            outputs: 1..=1,
            inputs_since: &[],
            typed: &[],
            t: FLOAT,
            attributes,
        }
    }

    /// `inputs` inputs and one output, all of one type `T` among [`NUMERIC`].
    pub const fn numeric(inputs: usize, attributes: &'static [Attribute]) -> Signature {
        Signature { t: NUMERIC, ..Signature::floats(inputs, attributes) }
    }

    /// The same signature, of an op ONNX gained in `opset`.
    pub const fn introduced(self, opset: i64) -> Signature {
        Signature { since: opset, ..self }
    }

    /// The element type a port holds, `None` where it is the op's `T`.
    fn ty(&self, port: Port) -> Option<Ty> {
        self.typed.iter().find(|(p, _)| *p == port).map(|(_, t)| *t)
    }

    /// Whether gradients can flow through the op: it reads floats and some
    /// output holds `T` or a type an attribute names (Cast to float). Other
    /// ops (Shape, Equal, Range) compute shapes, masks and indices, and
    /// need no gradient-check samples.
    pub fn differentiable(&self) -> bool {
        let outputs = 0..(*self.outputs.end()).min(8);
        let float_out = |i| matches!(self.ty(Port::Output(i)), None | Some(Ty::Named(_)));
        let float_in = |i| matches!(self.ty(Port::Input(i)), None | Some(Ty::Any));
        let inputs = 0..(*self.inputs.end()).min(8);
        self.t.contains(&DataType::Float) && outputs.into_iter().any(float_out) && inputs.into_iter().any(float_in)
    }

    /// Checks the element types of a node's inputs (`None` for an omitted
    /// one) against the signature and returns the node's `T`: that of its
    /// `T` inputs, which must agree, or the first allowed when it has none.
    pub fn check_elems(&self, node: &NodeProto, inputs: &[Option<i32>]) -> Result<i32> {
        let mut t: Option<(usize, i32)> = None;
        for (i, elem) in inputs.iter().enumerate() {
            let Some(elem) = *elem else { continue };
            let name = node.input[i].as_str();
            match self.ty(Port::Input(i)) {
                Some(Ty::Is(expected)) => self.check_elem(node, Port::Input(i), name, elem, &[expected])?,
                Some(Ty::Any) => {}
                Some(Ty::Named(_)) => unreachable!("only outputs are named by attributes"),
                None => match t {
                    Some((first, t)) if t != elem => bail!(
                        "{} reads '{name}' of element type {} as input {i}, but input {first} is {}; they must agree",
                        onnx::describe(node),
                        tensor::elem_name(elem),
                        tensor::elem_name(t)
                    ),
                    Some(_) => {}
                    None => {
                        self.check_elem(node, Port::Input(i), name, elem, self.t)?;
                        t = Some((i, elem));
                    }
                },
            }
        }
        Ok(t.map_or(self.t[0] as i32, |(_, t)| t))
    }

    /// The element type of output `i` of a node whose `T` is `t`.
    pub fn output_elem(&self, node: &NodeProto, i: usize, t: i32) -> Result<i32> {
        Ok(match self.ty(Port::Output(i)) {
            None => t,
            Some(Ty::Is(elem)) => elem as i32,
            Some(Ty::Any) => unreachable!("an output's type is always known"),
            Some(Ty::Named(attribute)) => {
                let elem = match onnx::attr(node, attribute) {
                    None => DataType::Float as i32,
                    Some(a) => a.t.as_ref().map_or(i32::try_from(a.i()).unwrap_or(-1), |v| v.data_type()),
                };
                match DataType::try_from(elem) {
                    Ok(known) if known != DataType::Undefined => elem,
                    _ => bail!(
                        "{} names element type {elem} in '{attribute}', which ONNX does not have",
                        onnx::describe(node)
                    ),
                }
            }
        })
    }

    /// Checks a node's inputs, outputs and attributes against the signature
    /// of its op in `opset` (element types are checked once shapes are known).
    pub fn check(&self, node: &NodeProto, opset: i64) -> Result<()> {
        let what = onnx::describe(node);
        let (inputs, outputs) = (node.input.len(), node.output.len());
        let slots = |r: &RangeInclusive<usize>| match (*r.start(), *r.end()) {
            (a, b) if a == b => format!("{a}"),
            (a, usize::MAX) => format!("at least {a}"),
            (a, b) => format!("{a} to {b}"),
        };
        if opset < self.since {
            bail!(
                "{what} uses {}, which ONNX has only from opset {} (the model uses {opset})",
                node.op_type(),
                self.since
            );
        }
        if !self.inputs.contains(&inputs) {
            bail!("{what} has {inputs} inputs; {} takes {}", node.op_type(), slots(&self.inputs));
        }
        if let Some((slot, since)) = self.inputs_since.iter().find(|(slot, since)| inputs > *slot && opset < *since) {
            bail!(
                "{what} has input {slot}, which {} has only from opset {since} (the model uses {opset})",
                node.op_type()
            );
        }
        if !self.outputs.contains(&outputs) {
            bail!("{what} has {outputs} outputs; {} gives {}", node.op_type(), slots(&self.outputs));
        }
        if node.output.first().is_some_and(|o| o.is_empty()) {
            bail!("{what} leaves its first output unnamed");
        }
        let mut seen = HashSet::new();
        for a in &node.attribute {
            let kind = onnx::validate::attribute(a).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
            if !seen.insert(a.name()) {
                bail!("{what} has attribute '{}' twice", a.name());
            }
            let Some(spec) =
                self.attributes.iter().find(|s| s.name == a.name() && (s.since..=s.until).contains(&opset))
            else {
                bail!("{what} has attribute '{}', which {} does not have in opset {opset}", a.name(), node.op_type());
            };
            if spec.kind != kind {
                bail!(
                    "{what} has attribute '{}' of type {}, where {} takes {}",
                    a.name(),
                    kind.as_str_name(),
                    node.op_type(),
                    spec.kind.as_str_name()
                );
            }
            if spec.flag && !matches!(a.i, Some(0 | 1)) {
                bail!("{what} has {} {}; it is a flag, 0 or 1", a.name(), a.i());
            }
        }
        Ok(())
    }

    /// Fails unless a tensor read or made at `port` has one of the element types the op takes there.
    fn check_elem(&self, node: &NodeProto, port: Port, tensor: &str, elem: i32, allowed: &[DataType]) -> Result<()> {
        if !allowed.iter().any(|&t| t as i32 == elem) {
            let names: Vec<String> = allowed.iter().map(|&t| tensor::elem_name(t as i32)).collect();
            let (slot, verb) = match port {
                Port::Input(i) => (format!("input {i}"), "reads"),
                Port::Output(i) => (format!("output {i}"), "makes"),
            };
            bail!(
                "{} {verb} '{tensor}' of element type {} as {slot}, which must be {}",
                onnx::describe(node),
                tensor::elem_name(elem),
                names.join(" or ")
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::builder::attr as make;

    fn node(op: &str, inputs: usize, outputs: usize, attrs: Vec<crate::onnx::AttributeProto>) -> NodeProto {
        NodeProto {
            name: Some("n".into()),
            op_type: Some(op.into()),
            input: (0..inputs).map(|i| format!("x{i}")).collect(),
            output: (0..outputs).map(|i| format!("y{i}")).collect(),
            attribute: attrs,
            ..Default::default()
        }
    }

    const SOFTMAX: Signature = Signature::floats(1, &[Attribute::of("axis", AttributeType::Int)]);

    fn error(s: &Signature, n: &NodeProto, opset: i64) -> String {
        s.check(n, opset).unwrap_err().to_string()
    }

    #[test]
    fn arity_attributes_and_their_types_are_checked() {
        assert!(SOFTMAX.check(&node("Softmax", 1, 1, vec![make::int("axis", 1)]), 17).is_ok());
        assert!(error(&SOFTMAX, &node("Softmax", 2, 1, vec![]), 17).contains("has 2 inputs; Softmax takes 1"));
        assert!(error(&SOFTMAX, &node("Softmax", 1, 2, vec![]), 17).contains("2 outputs"));
        let unknown = error(&SOFTMAX, &node("Softmax", 1, 1, vec![make::int("foo", 1)]), 17);
        assert!(unknown.contains("'n'") && unknown.contains("attribute 'foo'"), "{unknown}");
        let float = error(&SOFTMAX, &node("Softmax", 1, 1, vec![make::float("axis", 1.0)]), 17);
        assert!(float.contains("type FLOAT") && float.contains("takes INT"), "{float}");
        let twice = error(&SOFTMAX, &node("Softmax", 1, 1, vec![make::int("axis", 1), make::int("axis", 0)]), 17);
        assert!(twice.contains("'axis' twice"), "{twice}");
        const SUM: Signature = Signature::floats(1, &[Attribute::of("keepdims", AttributeType::Int).flag()]);
        assert!(SUM.check(&node("ReduceSum", 1, 1, vec![make::int("keepdims", 0)]), 17).is_ok());
        let flag = error(&SUM, &node("ReduceSum", 1, 1, vec![make::int("keepdims", 2)]), 17);
        assert!(flag.contains("keepdims 2; it is a flag, 0 or 1"), "{flag}");
    }

    #[test]
    fn opset_dependent_inputs_and_attributes() {
        const MEAN: Signature = Signature {
            since: 1,
            inputs: 1..=2,
            outputs: 1..=1,
            inputs_since: &[(1, 18)],
            typed: &[(Port::Input(1), Ty::Is(DataType::Int64))],
            t: FLOAT,
            attributes: &[Attribute::until("axes", AttributeType::Ints, 17)],
        };
        let mean = MEAN;
        assert!(mean.check(&node("ReduceMean", 2, 1, vec![]), 18).is_ok());
        assert!(error(&mean, &node("ReduceMean", 2, 1, vec![]), 17).contains("only from opset 18"));
        assert!(mean.check(&node("ReduceMean", 1, 1, vec![make::ints("axes", &[1])]), 17).is_ok());
        assert!(error(&mean, &node("ReduceMean", 1, 1, vec![make::ints("axes", &[1])]), 18).contains("opset 18"));
        let n = node("ReduceMean", 2, 1, vec![]);
        let (float, int64) = (DataType::Float as i32, DataType::Int64 as i32);
        assert_eq!(mean.check_elems(&n, &[Some(float), Some(int64)]).unwrap(), float);
        let err = mean.check_elems(&n, &[Some(float), Some(float)]).unwrap_err().to_string();
        assert!(err.contains("'x1' of element type float32 as input 1, which must be int64"), "{err}");
        let err = mean.check_elems(&n, &[Some(int64), None]).unwrap_err().to_string();
        assert!(err.contains("as input 0, which must be float32"), "{err}");
    }

    #[test]
    fn numeric_ops_take_one_type_throughout_and_named_outputs_read_the_attribute() {
        const ADD: Signature = Signature::numeric(2, &[]);
        let n = node("Add", 2, 1, vec![]);
        let (float, int64) = (DataType::Float as i32, DataType::Int64 as i32);
        assert_eq!(ADD.check_elems(&n, &[Some(int64), Some(int64)]).unwrap(), int64);
        assert_eq!(ADD.output_elem(&n, 0, int64).unwrap(), int64);
        let err = ADD.check_elems(&n, &[Some(int64), Some(float)]).unwrap_err().to_string();
        assert!(err.contains("'x1' of element type float32 as input 1, but input 0 is int64"), "{err}");
        const CAST: Signature = Signature {
            since: 1,
            inputs: 1..=1,
            outputs: 1..=1,
            inputs_since: &[],
            typed: &[(Port::Input(0), Ty::Any), (Port::Output(0), Ty::Named("to"))],
            t: FLOAT,
            attributes: &[Attribute::of("to", AttributeType::Int)],
        };
        let cast = node("Cast", 1, 1, vec![make::int("to", DataType::Int64 as i64)]);
        assert_eq!(CAST.check_elems(&cast, &[Some(DataType::Bool as i32)]).unwrap(), float);
        assert_eq!(CAST.output_elem(&cast, 0, float).unwrap(), int64);
        let bad = node("Cast", 1, 1, vec![make::int("to", 99)]);
        assert!(CAST.output_elem(&bad, 0, float).unwrap_err().to_string().contains("element type 99"));
        assert!(ADD.differentiable() && CAST.differentiable());
        const HARD_SWISH: Signature = Signature::floats(1, &[]).introduced(14);
        assert!(HARD_SWISH.check(&node("HardSwish", 1, 1, vec![]), 14).is_ok());
        let early = error(&HARD_SWISH, &node("HardSwish", 1, 1, vec![]), 13);
        assert!(early.contains("uses HardSwish, which ONNX has only from opset 14 (the model uses 13)"), "{early}");
    }
}
