//! The generic gradient check: gradients from an exported backward graph,
//! run by ONNX Runtime, against central finite differences of the same
//! graph's loss. It runs over every rule's samples (`tests/gradcheck.rs`)
//! and over whole models.

use anyhow::{Context, Result, bail};
use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::names;
use super::objective::Objective;
use super::ops::{Rule, Sample, SampleInput};
use crate::onnx::builder::{Elem, GraphBuilder, value_info};
use crate::onnx::proto::{TypeProto, type_proto};
use crate::onnx::{ModelProto, NodeProto, OPSET, ValueInfoProto, tensor};
use crate::runtime::{Device, Feed, Model, Runtime};

/// An owned input for a check run.
#[derive(Clone)]
pub enum Value {
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
}

/// How far the exported gradient is from finite differences.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// Entries compared.
    pub checked: usize,
    /// The largest |analytic - numeric| / max(1, |numeric|).
    pub worst: f32,
    /// The largest |numeric|, to show the check was not vacuous.
    pub largest: f32,
}

/// The step of the central differences, for f32 values of order one.
pub const STEP: f32 = 1e-2;

/// Checks the gradients of `wrt` from a backward graph with a `loss` output.
/// At most `per_input` entries of each input are perturbed (chosen at random
/// with a fixed seed) to bound the cost on large inputs.
pub fn against_finite_differences(
    backward: &ModelProto,
    feeds: &[(String, Value)],
    wrt: &[String],
    per_input: usize,
) -> Result<Report> {
    let rt = Runtime::get()?;
    let mut model = rt.load_proto(backward, "backward graph under check", Device::Cpu)?;
    let base = run(&mut model, feeds)?;
    let mut report = Report { checked: 0, worst: 0.0, largest: 0.0 };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for name in wrt {
        let analytic = base.get(&names::grad(name)).with_context(|| format!("no gradient output for '{name}'"))?;
        let slot = feeds.iter().position(|(n, _)| n == name).with_context(|| format!("no feed for '{name}'"))?;
        let len = analytic.len();
        let picks: Vec<usize> = if len <= per_input {
            (0..len).collect()
        } else {
            (0..per_input).map(|_| rng.random_range(0..len)).collect()
        };
        for i in picks {
            let numeric = central_difference(&mut model, feeds, slot, i)?;
            let exact = analytic.as_slice().context("gradient not contiguous")?[i];
            let err = (exact - numeric).abs() / numeric.abs().max(1.0);
            report.checked += 1;
            report.largest = report.largest.max(numeric.abs());
            if err > report.worst {
                report.worst = err;
            }
            if !exact.is_finite() {
                bail!("gradient of '{name}' at {i} is {exact}");
            }
        }
    }
    Ok(report)
}

/// Checks a whole network's gradient of `wrt` along directions rather than
/// entry by entry: along the gradient itself and `random` random sign
/// vectors, each of unit length, the central difference of the loss with
/// `step` against the gradient's dot product with the direction,
/// relative to the gradient's norm. A step spread over every pixel moves
/// each by little, so it rarely crosses a kink of ReLU or max-pool, which
/// one pixel moved by the whole step often does; and the loss changes by
/// far more than its rounding.
pub fn directional(
    backward: &ModelProto,
    feeds: &[(String, Value)],
    wrt: &str,
    random: usize,
    step: f32,
) -> Result<Report> {
    let mut model = Runtime::get()?.load_proto(backward, "backward graph under check", Device::Cpu)?;
    let analytic = run(&mut model, feeds)?.take(&names::grad(wrt))?;
    if let Some(bad) = analytic.iter().find(|g| !g.is_finite()) {
        bail!("the gradient of '{wrt}' holds {bad}");
    }
    let slot = feeds.iter().position(|(n, _)| n == wrt).with_context(|| format!("no feed for '{wrt}'"))?;
    let norm = analytic.iter().map(|&g| f64::from(g).powi(2)).sum::<f64>().sqrt();
    if norm == 0.0 {
        bail!("the gradient of '{wrt}' is zero");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let mut directions = vec![analytic.mapv(|g| (f64::from(g) / norm) as f32)];
    let scale = 1.0 / (analytic.len() as f32).sqrt();
    directions.extend((0..random).map(|_| analytic.mapv(|_| if rng.random::<bool>() { scale } else { -scale })));
    let mut report = Report { checked: 0, worst: 0.0, largest: 0.0 };
    for d in directions {
        let exact: f64 = analytic.iter().zip(&d).map(|(&g, &v)| f64::from(g) * f64::from(v)).sum();
        let mut at = |sign: f32| -> Result<f64> {
            let mut nudged = feeds.to_vec();
            if let Value::F32(a) = &mut nudged[slot].1 {
                a.zip_mut_with(&d, |x, &v| *x += sign * step * v);
            }
            Ok(run(&mut model, &nudged)?.take(names::LOSS)?.iter().map(|&v| f64::from(v)).sum())
        };
        let numeric = (at(1.0)? - at(-1.0)?) / (2.0 * f64::from(step));
        report.checked += 1;
        report.largest = report.largest.max(numeric.abs() as f32);
        report.worst = report.worst.max(((exact - numeric).abs() / norm) as f32);
    }
    Ok(report)
}

fn central_difference(model: &mut Model, feeds: &[(String, Value)], slot: usize, i: usize) -> Result<f32> {
    let mut nudged = feeds.to_vec();
    let mut at = |delta: f32, nudged: &mut Vec<(String, Value)>| -> Result<f64> {
        if let Value::F32(a) = &mut nudged[slot].1 {
            a.as_slice_mut().expect("standard layout")[i] += delta;
        }
        let loss = run(model, nudged)?.take(names::LOSS)?;
        Ok(loss.iter().map(|&v| v as f64).sum())
    };
    let plus = at(STEP, &mut nudged)?;
    let minus = at(-2.0 * STEP, &mut nudged)?;
    Ok(((plus - minus) / (2.0 * STEP as f64)) as f32)
}

fn run(model: &mut Model, feeds: &[(String, Value)]) -> Result<crate::runtime::Outputs> {
    let views: Vec<(&str, Feed)> = feeds
        .iter()
        .map(|(n, v)| {
            (
                n.as_str(),
                match v {
                    Value::F32(a) => Feed::F32(a.view()),
                    Value::I64(a) => Feed::I64(a.view()),
                },
            )
        })
        .collect();
    model.run(&views)
}

/// A one-node model for a rule's sample: checked inputs become graph inputs
/// `x0, x1, ...`, constants become initializers, the output is `y0`. It
/// imports [`OPSET`], or the first opset that has the op.
pub fn sample_model(rule: &Rule, sample: &Sample) -> (ModelProto, Vec<(String, Value)>) {
    let mut b = GraphBuilder::new();
    let mut inputs = Vec::new();
    let mut feeds = Vec::new();
    for (i, input) in sample.inputs.iter().enumerate() {
        let name = format!("x{i}");
        match input {
            SampleInput::Checked(a) => {
                b.input(&name, Elem::F32, &crate::onnx::shape::fixed(a.shape()));
                feeds.push((name.clone(), Value::F32(a.clone())));
            }
            SampleInput::Const(a) => b.initializers.push(tensor::from_f32(&name, a)),
            SampleInput::Ints(v) => b.initializers.push(tensor::from_i64(&name, &[v.len()], v)),
            SampleInput::IntArray(a) => {
                let values: Vec<i64> = a.iter().copied().collect();
                b.initializers.push(tensor::from_i64(&name, a.shape(), &values))
            }
            SampleInput::Bools(a) => b.initializers.push(crate::onnx::TensorProto {
                name: Some(name.clone()),
                dims: a.shape().iter().map(|&d| d as i64).collect(),
                data_type: Some(crate::onnx::proto::tensor_proto::DataType::Bool as i32),
                raw_data: Some(a.iter().map(|&v| u8::from(v)).collect()),
                ..Default::default()
            }),
            SampleInput::Absent => {
                inputs.push(String::new());
                continue;
            }
        }
        inputs.push(name);
    }
    let outputs: Vec<String> = (0..sample.outputs).map(|i| format!("y{i}")).collect();
    b.push(NodeProto {
        name: Some(format!("{}_under_check", rule.op)),
        op_type: Some(rule.op.into()),
        input: inputs,
        output: outputs,
        attribute: sample.attrs.clone(),
        ..Default::default()
    });
    b.outputs.push(unshaped_output("y0"));
    let opset = OPSET.max(rule.signature.since);
    (b.into_model(&format!("check_{}", rule.op), opset, "gradient-check sample"), feeds)
}

fn unshaped_output(name: &str) -> ValueInfoProto {
    let mut v = value_info(name, Elem::F32, &[]);
    if let Some(TypeProto { value: Some(type_proto::Value::TensorType(t)), .. }) = v.r#type.as_mut() {
        t.shape = None;
    }
    v
}

/// Checks one sample of one rule: the objective is `<y0, v>` for a random
/// direction `v`, so every entry of the output's Jacobian is weighed.
pub fn check_sample(rule: &Rule, sample: &Sample) -> Result<Report> {
    let (model, mut feeds) = sample_model(rule, sample);
    let wrt: Vec<String> = feeds.iter().map(|(n, _)| n.clone()).collect();
    let backward = super::export_wrt(&model, &Objective::Direction("y0".into()), &wrt, false)?;
    let y_shape = output_shape(&backward)?;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let v = ArrayD::from_shape_simple_fn(IxDyn(&y_shape), || rng.random_range(-1.0f32..1.0));
    feeds.push((names::DIRECTION.to_string(), Value::F32(v)));
    against_finite_differences(&backward, &feeds, &wrt, usize::MAX)
}

/// The static shape the engine inferred for the direction input.
fn output_shape(backward: &ModelProto) -> Result<Vec<usize>> {
    let graph = crate::onnx::graph(backward);
    let v = graph.input.iter().find(|i| i.name() == names::DIRECTION).context("no direction input")?;
    let (_, shape) = crate::onnx::shape::of_value_info(v)?;
    crate::onnx::shape::all_fixed(&shape, "the sample's output")
}
