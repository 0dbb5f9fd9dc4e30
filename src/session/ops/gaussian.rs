//! `gaussian DATA stddev: S seed: K`: noisy copies clipped to [0, 1], the
//! paper's baseline rows beside adversarial examples.

use std::sync::Arc;

use anyhow::{Result, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::{Args, Operation, Param};
use crate::session::Context;
use crate::session::perturbed::{Perturbed, distortions};
use crate::session::value::{ImageSet, Value};

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

fn run(args: &mut Args, _: &mut Context) -> Result<Value> {
    let data = args.images("data")?;
    let stddev = args.number_or("stddev", 0.0)?;
    if !(stddev.is_finite() && stddev >= 0.0) {
        bail!("gaussian: `stddev` must be a finite number >= 0, not {stddev}");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(args.count_or("seed", 0, 0)? as u64);
    let noise = Normal::new(0.0f32, stddev as f32)?;
    let images = data.images.mapv(|v| (v + noise.sample(&mut rng)).clamp(0.0, 1.0));
    let label = format!("Gaussian noise, stddev {stddev}");
    let noisy = ImageSet { name: format!("{} + {}", data.name, label), images, labels: data.labels.clone() };
    let distortion = distortions(&noisy, &data);
    Ok(Value::Object(Arc::new(Perturbed { label, images: Arc::new(noisy), distortion })))
}
