//! `predict MODEL on DATA` (or `model.predict(data)`): the predicted class
//! of each image.

use anyhow::Result;

use super::{Args, Operation, Param};
use crate::session::Context;
use crate::session::value::Value;

pub const OP: Operation = Operation {
    name: "predict",
    summary: "the class a model predicts for each image",
    usage: "predict MODEL on DATA, or MODEL.predict(DATA)",
    params: &[
        Param { name: "model", positional: true, required: true, doc: "a model" },
        Param { name: "on", positional: true, required: true, doc: "images" },
    ],
    run,
};

fn run(args: &mut Args, ctx: &mut Context) -> Result<Value> {
    let model = args.model("model")?;
    let data = args.pixels("on")?;
    model.check_images("predict", &data)?;
    let models = [model];
    let key = super::record_key(ctx, &models);
    let bar = indicatif::ProgressBar::hidden();
    let (_, predictions) =
        ctx.per_example(key, &data, |part| super::predictions(ctx, "predict", &models, part, &bar))?;
    let classes = predictions.predicted.into_iter().next().unwrap_or_default();
    Ok(Value::List(classes.into_iter().map(|c| Value::Number(c as f64)).collect()))
}
