//! Identity, and Dropout at inference, which passes its input through.

use anyhow::{Result, bail};

use super::samples::{checked, uniform};
use super::signature::{Attribute, FLOAT, Kind, Port, Ty};
use super::{Rule, Sample, SampleInput, Signature, same_shape};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::Shape;

pub const IDENTITY: Rule = Rule {
    op: "Identity",
    grads: "dX = dY",
    signature: Signature::numeric(1, &[]),
    infer: same_shape,
    backward: pass,
    samples,
    fold: Some(super::reshape::same_values),
};

pub const DROPOUT: Rule = Rule {
    op: "Dropout",
    grads: "dX = dY (inference: the mask is all ones)",
    signature: Signature {
        since: 1,
        inputs: 1..=3,
        outputs: 1..=2,
        inputs_since: &[],
        typed: &[(Port::Input(2), Ty::Is(DataType::Bool)), (Port::Output(1), Ty::Is(DataType::Bool))],
        t: FLOAT,
        attributes: &[Attribute::of("seed", Kind::Int)],
    },
    infer: dropout_infer,
    backward: pass,
    samples: dropout_samples,
    fold: None,
};

fn pass(_: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let mut grads = vec![None; n.inputs.len()];
    grads[0] = dy[0].clone();
    Ok(grads)
}

fn dropout_infer(n: &Node) -> Result<Vec<Shape>> {
    if n.opt_input(2).is_some_and(|t| t.known_ints().as_deref() != Some(&[0])) {
        bail!(
            "{} may run in training mode (its training_mode input is not a constant false); advx differentiates inference graphs only",
            n.describe()
        );
    }
    for (i, what) in [(1, "ratio"), (2, "training_mode")] {
        if let Some(t) = n.opt_input(i).filter(|t| !t.shape.is_empty()) {
            bail!(
                "{} has {what} '{}' of shape {}, not a scalar",
                n.describe(),
                t.name,
                crate::onnx::shape::show(&t.shape)
            );
        }
    }
    let x = n.in_shape(0)?.clone();
    Ok(vec![x.clone(); n.proto.output.len().max(1)])
}

fn samples() -> Vec<Sample> {
    vec![checked(vec![uniform(&[2, 3], 1)], vec![])]
}

fn dropout_samples() -> Vec<Sample> {
    let ratio = ndarray::ArrayD::from_elem(ndarray::IxDyn(&[]), 0.5);
    vec![Sample {
        inputs: vec![SampleInput::Checked(uniform(&[2, 3], 2)), SampleInput::Const(ratio)],
        attrs: vec![],
        outputs: 1,
    }]
}
