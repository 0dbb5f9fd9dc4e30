//! `magnify ADV to: D`: each adversarial perturbation rescaled to
//! distortion D (the paper's "magnified distortion" rows), clipped to the
//! box, with the distortion measured after clipping.

use std::sync::Arc;

use anyhow::{Result, bail};
use ndarray::{Axis, Zip};

use super::{Args, Operation, Param};
use crate::session::Context;
use crate::session::perturbed::{Perturbed, distortions};
use crate::session::value::Value;

pub const OP: Operation = Operation {
    name: "magnify",
    summary: "adversarial perturbations rescaled to a given distortion",
    usage: "magnify ADV to: D",
    params: &[
        Param { name: "adversarial", positional: true, required: true, doc: "an adversarial set (from lbfgs)" },
        Param { name: "to", positional: false, required: true, doc: "the distortion sqrt(Σr²/n) to scale to" },
    ],
    run,
};

fn run(args: &mut Args, ctx: &mut Context) -> Result<Value> {
    let target = args.positive_or("to", 0.0)?;
    let Some(Value::Object(adv)) = args.get("adversarial") else {
        bail!("magnify: needs an adversarial set from lbfgs, whose originals are known");
    };
    let (Some(Value::Images(adversarial)), Some(Value::Images(originals))) =
        (adv.field("images"), adv.field("originals"))
    else {
        bail!("magnify: {} has no adversarial images and originals", adv.kind());
    };
    if adversarial.is_empty() {
        bail!("magnify: {} holds no adversarial examples (the attack found none) to magnify", adversarial.name);
    }
    if adversarial.images.shape() != originals.images.shape() {
        bail!(
            "magnify: {} is shaped {:?} but its originals {:?}",
            adversarial.name,
            adversarial.images.shape(),
            originals.images.shape()
        );
    }
    for set in [&adversarial, &originals] {
        crate::classifier::check_pixels(set.images.view()).map_err(|e| anyhow::anyhow!("magnify: {} {e}", set.name))?;
    }
    let mut images = adversarial.images.clone();
    for (mut image, original) in images.axis_iter_mut(Axis(0)).zip(originals.images.axis_iter(Axis(0))) {
        ctx.check_interrupt()?;
        let n = original.len() as f64;
        let norm = Zip::from(&image).and(&original).fold(0.0f64, |acc, &a, &o| acc + ((a - o) as f64).powi(2));
        let scale = if norm > 0.0 { (target / (norm / n).sqrt()) as f32 } else { 0.0 };
        Zip::from(&mut image).and(&original).for_each(|a, &o| *a = (o + scale * (*a - o)).clamp(0.0, 1.0));
    }
    let label = format!("{} magnified to {target}", adversarial.name);
    let magnified = adversarial.derived(label.clone(), images);
    let distortion = distortions(&magnified, &originals);
    Ok(Value::Object(Arc::new(Perturbed { label, images: Arc::new(magnified), distortion })))
}
