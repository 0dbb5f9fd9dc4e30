//! `images "DIR"`: a folder of PNG, JPEG or BMP files as an image set,
//! one subfolder per class or a flat folder labelled by a CSV.

use std::sync::Arc;

use anyhow::Result;

use super::{Args, Operation, Param};
use crate::data::folder::{self, Options};
use crate::session::Context;
use crate::session::value::{ImageSet, Value};

pub const OP: Operation = Operation {
    name: "images",
    summary: "images (and labels) from a folder of PNG, JPEG or BMP files",
    usage: "images \"DIR\" { size: 32, channels: \"rgb\", labels: \"labels.csv\" }",
    params: &[
        Param {
            name: "folder",
            positional: true,
            required: true,
            doc: "a folder, relative to the script: one subfolder per class (sorted names are the labels), or flat",
        },
        Param {
            name: "size",
            positional: false,
            required: false,
            doc: "resize the shorter side to N pixels, then crop the centre N x N (default: every image's own size, which must agree)",
        },
        Param {
            name: "channels",
            positional: false,
            required: false,
            doc: "\"gray\" or \"rgb\" (default: rgb when any image has colour)",
        },
        Param {
            name: "labels",
            positional: false,
            required: false,
            doc: "a flat folder's CSV of file,label rows (default: labels.csv in it, if any)",
        },
    ],
    run,
};

/// Sides at most: a larger `size` is a typo, not an image set.
const MAX_SIZE: usize = 4096;

fn run(args: &mut Args, ctx: &mut Context) -> Result<Value> {
    let dir = ctx.path(&args.string_or("folder", "")?);
    let size = args.get("size").map(|_| args.count_or("size", 1, 1..=MAX_SIZE)).transpose()?.map(|n| n as u32);
    let channels = args.get("channels").map(|_| args.string_or("channels", "")?.parse()).transpose()?;
    let labels = args.get("labels").map(|_| args.string_or("labels", "").map(|l| ctx.path(&l))).transpose()?;
    let bar = ctx.bar(0, &format!("images {}", dir.display()));
    let loaded = folder::load(&dir, &Options { size, channels, labels }, &bar)?;
    bar.finish_and_clear();
    let set = ImageSet::new(ctx.call.clone(), loaded.images, loaded.labels);
    Ok(Value::Images(Arc::new(ImageSet { classes: loaded.classes.map(Arc::from), ..set })))
}
