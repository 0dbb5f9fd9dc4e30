//! `histogram(VALUES, bins: 30)`: the distribution of numbers, e.g. the
//! distortions of an adversarial set.

use std::sync::Arc;

use anyhow::{Result, bail};

use super::{Args, Operation, Param};
use crate::plot::{Figure, Histogram, Plot};
use crate::session::Context;
use crate::session::value::Value;

pub const OP: Operation = Operation {
    name: "histogram",
    summary: "a histogram of numbers",
    usage: "histogram(VALUES, bins: N, title: TEXT, x_label: TEXT, y_label: TEXT)",
    params: &[
        Param { name: "values", positional: true, required: true, doc: "a list of numbers" },
        Param { name: "bins", positional: false, required: false, doc: "number of bins (default 30)" },
        Param { name: "title", positional: false, required: false, doc: "the figure's title" },
        Param { name: "x_label", positional: false, required: false, doc: "the x axis label" },
        Param { name: "y_label", positional: false, required: false, doc: "the y axis label (default: count)" },
    ],
    run,
};

/// Bins at most: beyond this a histogram cannot draw them apart.
const MAX_BINS: usize = 1000;

fn run(args: &mut Args, ctx: &mut Context) -> Result<Value> {
    let values = args.numbers("values")?;
    if values.is_empty() {
        bail!("histogram: no values");
    }
    let histogram = Histogram {
        values,
        bins: args.count_or("bins", 30, 1..=MAX_BINS)?,
        x_label: args.string_or("x_label", &args.text("values"))?,
        y_label: args.string_or("y_label", "count")?,
    };
    let title = args.string_or("title", &ctx.call)?;
    Ok(Value::Figure(Arc::new(Figure::new(title, Plot::Histogram(histogram)))))
}
