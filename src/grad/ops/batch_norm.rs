//! BatchNormalization at inference: `Y = (X - mean) / sqrt(var + eps) * scale + B`
//! per channel (axis 1), with the running mean and variance as inputs.

use anyhow::{Result, bail};

use super::samples::{checked, positive, uniform};
use super::signature::{Attribute, FLOAT, Kind};
use super::{Rule, Sample, SampleInput, Signature};
use crate::grad::emit::Emit;
use crate::grad::graph::Node;
use crate::onnx::shape::{self, Dim, Shape};

pub const RULE: Rule = Rule {
    op: "BatchNormalization",
    grads: "with r = 1 / sqrt(var + eps), summing over all axes but 1: dX = dY * scale * r; \
            dscale = sum(dY * (X - mean)) * r; dB = sum(dY); dmean = -sum(dY) * scale * r; \
            dvar = -sum(dY * (X - mean)) * scale * r^3 / 2",
    signature: Signature {
        since: 1,
        inputs: 5..=5,
        outputs: 1..=5,
        inputs_since: &[],
        typed: &[],
        t: FLOAT,
        attributes: &[
            Attribute::of("epsilon", Kind::Float),
            Attribute::of("momentum", Kind::Float),
            Attribute::since("training_mode", Kind::Int, 14).flag(),
        ],
    },
    infer,
    backward,
    samples,
    fold: None,
};

fn infer(n: &Node) -> Result<Vec<Shape>> {
    let training = n.int("training_mode", 0) != 0;
    let extra = n.proto.output.iter().skip(1).any(|o| !o.is_empty());
    if training || extra {
        bail!(
            "{} runs in training mode (training_mode = 1 or running statistics as outputs); \
             advx differentiates BatchNormalization at inference only",
            n.describe()
        );
    }
    let x = n.in_shape(0)?;
    let Some(&Dim::Fixed(c)) = x.get(1).filter(|_| x.len() >= 2) else {
        bail!("{} needs an input [N, C, ...] with a static C, got {}", n.describe(), shape::show(x));
    };
    for (i, what) in [(1, "scale"), (2, "B"), (3, "mean"), (4, "var")] {
        let s = n.in_shape(i)?;
        if s.as_slice() != [Dim::Fixed(c)] {
            bail!("{} has {what} of shape {}, but X has {c} channels", n.describe(), shape::show(s));
        }
    }
    Ok(vec![x.clone()])
}

fn backward(e: &mut Emit, n: &Node, dy: &[Option<String>]) -> Result<Vec<Option<String>>> {
    let Some(dy) = &dy[0] else {
        return Ok(vec![None; 5]);
    };
    let names: Vec<&str> = (0..5).map(|i| n.input(i).map(|t| t.name.as_str())).collect::<Result<_>>()?;
    let &[x, scale, _, mean, var] = names.as_slice() else { unreachable!("five names") };
    let rank = n.in_shape(0)?.len();
    // [C] -> [C, 1, ..., 1], to broadcast against X's channels.
    let per_channel = |e: &mut Emit, t: &str| {
        if rank == 2 {
            return t.to_string();
        }
        let mut dims = vec![-1i64];
        dims.resize(rank - 1, 1);
        e.reshape(t, &dims)
    };
    let eps = e.scalar(n.float("epsilon", 1e-5));
    let var_eps = e.add(var, &eps);
    let root = e.op("Sqrt", &[&var_eps], vec![]);
    let one = e.scalar(1.0);
    let r = e.div(&one, &root);
    let gain = e.mul(scale, &r);

    let gain_c = per_channel(e, &gain);
    let dx = e.mul(dy, &gain_c);

    let axes: Vec<i64> = std::iter::once(0).chain(2..rank as i64).collect();
    let mean_c = per_channel(e, mean);
    let centred = e.sub(x, &mean_c);
    let weighted = e.mul(dy, &centred);
    let sum_weighted = e.reduce_sum(&weighted, &axes, false);
    let sum_dy = e.reduce_sum(dy, &axes, false);

    let dscale = e.mul(&sum_weighted, &r);
    let along = e.mul(&sum_dy, &gain);
    let dmean = e.neg(&along);
    let scaled = e.mul(&sum_weighted, &gain);
    let over_var = e.div(&scaled, &var_eps);
    let dvar = e.scale(&over_var, -0.5);
    Ok(vec![Some(dx), Some(dscale), Some(sum_dy), Some(dmean), Some(dvar)])
}

fn samples() -> Vec<Sample> {
    let all = |x: &[usize], seed: u64, epsilon: Option<f32>| {
        let c = x[1];
        let attrs = epsilon.map(|v| vec![crate::onnx::builder::attr::float("epsilon", v)]).unwrap_or_default();
        checked(
            vec![
                uniform(x, seed),
                uniform(&[c], seed + 1),
                uniform(&[c], seed + 2),
                uniform(&[c], seed + 3),
                positive(&[c], seed + 4),
            ],
            attrs,
        )
    };
    let constants = Sample {
        inputs: vec![
            SampleInput::Checked(uniform(&[2, 3, 3, 3], 20)),
            SampleInput::Const(uniform(&[3], 21)),
            SampleInput::Const(uniform(&[3], 22)),
            SampleInput::Const(uniform(&[3], 23)),
            SampleInput::Const(positive(&[3], 24)),
        ],
        attrs: vec![],
        outputs: 1,
    };
    vec![all(&[2, 3, 4, 4], 1, Some(1e-3)), all(&[4, 3], 10, None), constants]
}
