//! `numpy "FILE"`: images from a NumPy `.npy` file (labels from another
//! `.npy` beside it or named) or `.npz` archive (named arrays), as an
//! image set.

use std::sync::Arc;

use anyhow::Result;

use super::{Args, Operation, Param};
use crate::data::numpy::{self, Options};
use crate::session::Context;
use crate::session::value::{ImageSet, Value};

pub const OP: Operation = Operation {
    name: "numpy",
    summary: "images (and labels) from a NumPy .npy or .npz file",
    usage: "numpy \"FILE.npz\" { images: \"x\", labels: \"y\", layout: \"nhwc\" }, or numpy \"FILE.npy\" labels: \"LABELS.npy\"",
    params: &[
        Param { name: "file", positional: true, required: true, doc: "a .npy or .npz file, relative to the script" },
        Param {
            name: "labels",
            positional: false,
            required: false,
            doc: "the labels: an array of the .npz, or a .npy file (default: labels, y, ... in an .npz; \
                  FILE_labels.npy beside an .npy)",
        },
        Param {
            name: "images",
            positional: false,
            required: false,
            doc: "the images' array of an .npz (default: images, x, x_test, X or data)",
        },
        Param {
            name: "layout",
            positional: false,
            required: false,
            doc: "\"nchw\" or \"nhwc\" (default: detected from the shape, and said)",
        },
    ],
    run,
};

fn run(args: &mut Args, ctx: &mut Context) -> Result<Value> {
    let file = args.string_or("file", "")?;
    let path = ctx.path(&file);
    let labels = args.get("labels").map(|_| args.string_or("labels", "")).transpose()?;
    let labels = match (labels, path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))) {
        (Some(file), true) => Some(ctx.path(&file).display().to_string()),
        (labels, _) => labels,
    };
    let layout = args.get("layout").map(|_| args.string_or("layout", "")?.parse()).transpose()?;
    let images = args.get("images").map(|_| args.string_or("images", "")).transpose()?;
    ctx.check_interrupt()?;
    let loaded = numpy::load(&path, &Options { layout, images, labels })?;
    let set = ImageSet::new(ctx.call.clone(), loaded.images, loaded.labels);
    Ok(Value::Images(Arc::new(ImageSet { classes: loaded.classes.map(Arc::from), ..set })))
}
