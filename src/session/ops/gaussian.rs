//! `gaussian DATA stddev: S seed: K`: noisy copies clipped to [0, 1], the
//! paper's baseline rows beside adversarial examples.

use std::sync::Arc;

use anyhow::Result;
use ndarray::Axis;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::{Args, Operation, Param};
use crate::session::Context;
use crate::session::perturbed::{Perturbed, distortions};
use crate::session::value::Value;

pub const OP: Operation = Operation {
    name: "gaussian",
    summary: "copies with Gaussian noise, clipped to [0, 1], with their distortion",
    usage: "gaussian DATA stddev: S seed: K",
    params: &[
        Param { name: "data", positional: true, required: true, doc: "images" },
        Param {
            name: "stddev",
            positional: false,
            required: true,
            doc: "the noise's standard deviation, in pixel units",
        },
        Param { name: "seed", positional: false, required: false, doc: "the random seed (default 0)" },
    ],
    run,
};

fn run(args: &mut Args, ctx: &mut Context) -> Result<Value> {
    let data = args.pixels("data")?;
    let stddev = args.non_negative_or("stddev", 0.0)?;
    let seed = args.seed_or("seed")?;
    let noise = Normal::new(0.0f32, stddev as f32)?;
    let mut images = data.images.clone();
    // Each image's noise comes from the stream of its index, so that it is
    // the same in any part of the set (a shard's) as in the whole.
    for (mut image, &id) in images.axis_iter_mut(Axis(0)).zip(data.ids.iter()) {
        ctx.check_interrupt()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(id);
        image.mapv_inplace(|v| (v + noise.sample(&mut rng)).clamp(0.0, 1.0));
    }
    let label = format!("Gaussian noise, stddev {stddev}");
    let noisy = data.derived(format!("{} + {}", data.name, label), images);
    let distortion = distortions(&noisy, &data);
    Ok(Value::Object(Arc::new(Perturbed { label, images: Arc::new(noisy), distortion })))
}
