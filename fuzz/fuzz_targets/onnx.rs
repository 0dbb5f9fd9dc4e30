//! The ONNX loader, `advx info` and `advx grad` on mutated models: decoding,
//! the info summary, validation and the export of every objective must
//! never panic, overflow or allocate without bound. When a model exports,
//! it must have passed validation, and the backward graph must itself be
//! well formed (opsets and names) and round-trip through protobuf.
//!
//! Random bytes rarely decode as a model, so a structure-aware mutator
//! (`fuzz_mutator!`) decodes the input, changes it as a model (dims,
//! attributes, op types, input and output names, opsets, element types,
//! raw data lengths, node order, IR version, domains), and encodes it
//! again; it falls back to libFuzzer's byte mutations when the input does
//! not decode, and now and then anyway. Nothing here runs ONNX Runtime.

#![no_main]

use advx::grad::{self, Objective, Reconstruction};
use advx::onnx::proto::attribute_proto::AttributeType;
use advx::onnx::proto::tensor_shape_proto::dimension;
use advx::onnx::proto::{OperatorSetIdProto, type_proto};
use advx::onnx::{self, AttributeProto, ModelProto, NodeProto, summary::Summary};
use libfuzzer_sys::{fuzz_mutator, fuzz_target, fuzzer_mutate};
use prost::Message;

/// Direction objectives per input: on the first and last node outputs.
const DIRECTIONS: usize = 4;

fuzz_target!(|data: &[u8]| {
    let Ok(model) = onnx::decode(data) else { return };
    let _ = Summary::of(&model).to_string();
    let valid = grad::validate(&model);
    for objective in objectives(&model) {
        let Ok(backward) = grad::export(&model, &objective) else { continue };
        assert!(valid.is_ok(), "exported {objective} from a model validation rejects: {valid:?}");
        if let Err(e) = onnx::validate::structure(&backward) {
            panic!("the {objective} backward graph is malformed: {e:#}");
        }
        let bytes = backward.encode_to_vec();
        let again = onnx::decode(&bytes).expect("a backward graph decodes");
        assert!(again.encode_to_vec() == bytes, "the {objective} backward graph does not round-trip");
    }
});

fn objectives(model: &ModelProto) -> Vec<Objective> {
    let mut all = vec![
        Objective::Xent,
        Objective::Train,
        Objective::Reconstruction(Reconstruction::SquaredError),
        Objective::Reconstruction(Reconstruction::BinaryCrossEntropy),
    ];
    let outputs: Vec<&String> = onnx::graph(model).node.iter().flat_map(|n| &n.output).collect();
    let picked = outputs.iter().take(DIRECTIONS / 2).chain(outputs.iter().rev().take(DIRECTIONS / 2));
    all.extend(picked.map(|t| Objective::Direction(t.to_string())));
    all
}

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    let mut rng = Rng(u64::from(seed) | 1 << 32);
    if rng.below(8) == 0 {
        return fuzzer_mutate(data, size, max_size);
    }
    let Ok(mut model) = ModelProto::decode(&data[..size]) else {
        return fuzzer_mutate(data, size, max_size);
    };
    for _ in 0..=rng.below(3) {
        mutate(&mut model, &mut rng);
    }
    let bytes = model.encode_to_vec();
    if bytes.len() > max_size {
        return fuzzer_mutate(data, size, max_size);
    }
    data[..bytes.len()].copy_from_slice(&bytes);
    bytes.len()
});

/// xorshift64: the mutator's only randomness, from libFuzzer's seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }

    /// A value that is likely to sit on an edge: small, negative, an opset
    /// boundary, a power of two near a limit, or the extremes.
    fn int(&mut self) -> i64 {
        const EDGES: [i64; 24] = [
            0,
            1,
            -1,
            2,
            3,
            4,
            -2,
            5,
            7,
            12,
            13,
            17,
            18,
            19,
            28,
            29,
            99,
            1 << 16,
            (1 << 26) + 1,
            1 << 31,
            1 << 32,
            (1 << 62) + 1,
            i64::MAX,
            i64::MIN,
        ];
        if self.below(4) == 0 { self.next() as i64 } else { EDGES[self.below(EDGES.len())] }
    }
}

const OPS: [&str; 52] = [
    "Add",
    "Sub",
    "Mul",
    "Div",
    "AveragePool",
    "BatchNormalization",
    "Clip",
    "Concat",
    "Conv",
    "Gemm",
    "GlobalAveragePool",
    "Dropout",
    "Identity",
    "LRN",
    "MatMul",
    "MaxPool",
    "ReduceMean",
    "ReduceSum",
    "Relu",
    "Flatten",
    "Reshape",
    "Sigmoid",
    "LogSoftmax",
    "Softmax",
    "Transpose",
    "Exp",
    "Log",
    "Neg",
    "Tanh",
    "Constant",
    "Erf",
    "",
    "Gather",
    "Cast",
    "Equal",
    "ConstantOfShape",
    "Expand",
    "Gelu",
    "HardSigmoid",
    "HardSwish",
    "LayerNormalization",
    "Pad",
    "Pow",
    "Range",
    "Where",
    "Shape",
    "Size",
    "Slice",
    "Split",
    "Unsqueeze",
    "Squeeze",
    "Sqrt",
];

const ATTRIBUTES: [&str; 24] = [
    "axis",
    "axes",
    "perm",
    "kernel_shape",
    "pads",
    "strides",
    "dilations",
    "group",
    "auto_pad",
    "ceil_mode",
    "count_include_pad",
    "storage_order",
    "transA",
    "transB",
    "alpha",
    "beta",
    "bias",
    "size",
    "keepdims",
    "noop_with_empty_axes",
    "allowzero",
    "epsilon",
    "training_mode",
    "value_ints",
];

fn mutate(model: &mut ModelProto, rng: &mut Rng) {
    let Some(graph) = model.graph.as_mut() else { return };
    let nodes = graph.node.len();
    let names = tensor_names(model);
    let graph = model.graph.as_mut().expect("checked above");
    match rng.below(14) {
        0 => {
            if let Some(t) = pick_mut(&mut graph.initializer, rng) {
                mutate_ints(&mut t.dims, rng);
            }
        }
        1 => {
            let values = graph.input.iter_mut().chain(graph.output.iter_mut());
            let mut values: Vec<_> = values.collect();
            let i = rng.below(values.len());
            if let Some(v) = values.get_mut(i) {
                mutate_value_info(v, rng);
            }
        }
        2 | 3 => {
            if let Some(node) = pick_mut(&mut graph.node, rng) {
                mutate_attribute(node, rng);
            }
        }
        4 => {
            let op = rng.pick(&OPS).copied().unwrap_or_default();
            if let Some(node) = pick_mut(&mut graph.node, rng) {
                node.op_type = Some(op.to_string());
            }
        }
        5 => {
            let name = rng.pick(&names).cloned().unwrap_or_default();
            if let Some(node) = pick_mut(&mut graph.node, rng) {
                rewire(&mut node.input, name, rng);
            }
        }
        6 => {
            let name = rng.pick(&names).cloned().unwrap_or_default();
            if let Some(node) = pick_mut(&mut graph.node, rng) {
                rewire(&mut node.output, name, rng);
            }
        }
        7 => match rng.below(4) {
            0 => model.ir_version = [None, Some(2), Some(3), Some(8), Some(14), Some(15)][rng.below(6)],
            1 => {
                let domain = ["", "ai.onnx", "ai.onnx.ml", "com.microsoft"][rng.below(4)];
                if let Some(node) = pick_mut(&mut graph.node, rng) {
                    node.domain = Some(domain.into());
                }
            }
            _ => mutate_opsets(&mut model.opset_import, rng),
        },
        8 => {
            let code = [0, 1, 6, 7, 9, 10, 11, 16, 99][rng.below(9)];
            if rng.below(2) == 0 {
                if let Some(t) = pick_mut(&mut graph.initializer, rng) {
                    t.data_type = Some(code);
                }
            } else if let Some(v) = pick_mut(&mut graph.input, rng)
                && let Some(type_proto::Value::TensorType(t)) = v.r#type.as_mut().and_then(|t| t.value.as_mut())
            {
                t.elem_type = Some(code);
            }
        }
        9 => {
            if let Some(t) = pick_mut(&mut graph.initializer, rng) {
                let raw = t.raw_data.get_or_insert_with(Vec::new);
                match rng.below(3) {
                    0 => raw.truncate(rng.below(raw.len() + 1)),
                    1 => raw.extend(std::iter::repeat_n(0x3f, 1 + rng.below(9))),
                    _ => t.raw_data = None,
                }
            }
        }
        10 if nodes > 1 => {
            let (a, b) = (rng.below(nodes), rng.below(nodes));
            graph.node.swap(a, b);
        }
        11 if nodes > 0 => {
            let i = rng.below(nodes);
            if rng.below(2) == 0 {
                let copy = graph.node[i].clone();
                graph.node.insert(rng.below(nodes + 1), copy);
            } else {
                graph.node.remove(i);
            }
        }
        12 => {
            let name = rng.pick(&names).cloned().unwrap_or_default();
            match (rng.below(3), graph.output.first().cloned()) {
                (0, Some(first)) => graph.output.push(first),
                (1, _) if !graph.output.is_empty() => {
                    graph.output.remove(rng.below(graph.output.len()));
                }
                (_, _) => {
                    if let Some(o) = pick_mut(&mut graph.output, rng) {
                        o.name = Some(name);
                    }
                }
            }
        }
        _ => {
            let output = format!("fuzz_{}", rng.below(1000));
            let values = vec![rng.int(), rng.int()];
            graph.node.insert(
                rng.below(nodes + 1),
                NodeProto {
                    name: Some(output.clone()),
                    op_type: Some("Constant".into()),
                    output: vec![output],
                    attribute: vec![ints_attribute("value_ints", values)],
                    ..Default::default()
                },
            );
        }
    }
}

fn pick_mut<'a, T>(items: &'a mut [T], rng: &mut Rng) -> Option<&'a mut T> {
    let i = rng.below(items.len());
    items.get_mut(i)
}

/// Every tensor name the graph mentions, to rewire nodes with.
fn tensor_names(model: &ModelProto) -> Vec<String> {
    let graph = onnx::graph(model);
    let inputs = graph.input.iter().map(|i| i.name().to_string());
    let inits = graph.initializer.iter().map(|t| t.name().to_string());
    let outputs = graph.node.iter().flat_map(|n| n.output.iter().cloned());
    inputs.chain(inits).chain(outputs).chain([String::new()]).collect()
}

fn mutate_ints(values: &mut Vec<i64>, rng: &mut Rng) {
    match rng.below(4) {
        0 if !values.is_empty() => {
            values.remove(rng.below(values.len()));
        }
        1 => values.insert(rng.below(values.len() + 1), rng.int()),
        _ => {
            if let Some(v) = pick_mut(values, rng) {
                *v = rng.int();
            }
        }
    }
}

fn mutate_value_info(v: &mut onnx::ValueInfoProto, rng: &mut Rng) {
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_mut().and_then(|t| t.value.as_mut()) else { return };
    let Some(shape) = t.shape.as_mut() else { return };
    let i = rng.below(shape.dim.len() + 1);
    match rng.below(4) {
        0 => shape.dim.truncate(i),
        1 => shape.dim.insert(i.min(shape.dim.len()), shape.dim.first().cloned().unwrap_or_default()),
        2 => t.shape = None,
        _ => {
            if let Some(d) = shape.dim.get_mut(i) {
                d.value = Some(match rng.below(3) {
                    0 => dimension::Value::DimParam("M".into()),
                    _ => dimension::Value::DimValue(rng.int()),
                });
            }
        }
    }
}

fn mutate_attribute(node: &mut NodeProto, rng: &mut Rng) {
    let name = rng.pick(&ATTRIBUTES).copied().unwrap_or("axis");
    let count = node.attribute.len();
    match rng.below(6) {
        0 if count > 0 => {
            node.attribute.remove(rng.below(count));
        }
        1 => node.attribute.push(AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Int as i32),
            i: Some(rng.int()),
            ..Default::default()
        }),
        2 => node.attribute.push(ints_attribute(name, (0..rng.below(5)).map(|_| rng.int()).collect())),
        3 => {
            if let Some(a) = pick_mut(&mut node.attribute, rng) {
                a.r#type = Some([0, 1, 2, 3, 4, 6, 7][rng.below(7)]);
            }
        }
        _ => {
            if let Some(a) = pick_mut(&mut node.attribute, rng) {
                if a.i.is_some() {
                    a.i = Some(rng.int());
                } else if a.f.is_some() {
                    a.f = Some([0.0, -1.0, f32::NAN, f32::INFINITY, 1e30][rng.below(5)]);
                } else if a.s.is_some() {
                    a.s = Some([&b"SAME_UPPER"[..], b"SAME_LOWER", b"VALID", b"NOTSET", b"x"][rng.below(5)].to_vec());
                } else {
                    mutate_ints(&mut a.ints, rng);
                }
            }
        }
    }
}

fn ints_attribute(name: &str, values: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: values,
        ..Default::default()
    }
}

/// Points a slot at another tensor, or adds or drops a slot.
fn rewire(slots: &mut Vec<String>, name: String, rng: &mut Rng) {
    match rng.below(4) {
        0 if !slots.is_empty() => {
            slots.pop();
        }
        1 => slots.push(name),
        _ => {
            if let Some(s) = pick_mut(slots, rng) {
                *s = name;
            }
        }
    }
}

fn mutate_opsets(imports: &mut Vec<OperatorSetIdProto>, rng: &mut Rng) {
    match rng.below(4) {
        0 => imports.push(OperatorSetIdProto {
            domain: Some(["", "ai.onnx", "ai.onnx.ml", "com.microsoft"][rng.below(4)].into()),
            version: Some(rng.int()),
        }),
        1 if !imports.is_empty() => {
            imports.remove(rng.below(imports.len()));
        }
        2 => {
            if let Some(i) = pick_mut(imports, rng) {
                i.domain = Some(["", "ai.onnx", "x"][rng.below(3)].into());
            }
        }
        _ => {
            if let Some(i) = pick_mut(imports, rng) {
                i.version = Some([12, 13, 17, 18, 19, 21, 28, 29, 99, 0, -1][rng.below(11)]);
            }
        }
    }
}
