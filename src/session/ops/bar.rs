//! `bar(CATEGORIES, VALUES)`: grouped bars, e.g. the per-class error of
//! several models.

use std::sync::Arc;

use anyhow::{Result, bail};

use super::line::{default_names, series};
use super::{Args, Operation, Param};
use crate::plot::{Bars, Figure, Plot};
use crate::session::Context;
use crate::session::value::Value;

pub const OP: Operation = Operation {
    name: "bar",
    summary: "a bar chart, grouped when there are several series",
    usage: "bar(CATEGORIES, VALUES or [V1, V2, ...], names: LIST, title: TEXT, x_label: TEXT, y_label: TEXT)",
    params: &[
        Param { name: "categories", positional: true, required: true, doc: "a label per bar group" },
        Param { name: "values", positional: true, required: true, doc: "a value per category, or a list of series" },
        Param { name: "names", positional: false, required: false, doc: "a name per series (a legend)" },
        Param { name: "title", positional: false, required: false, doc: "the figure's title" },
        Param { name: "x_label", positional: false, required: false, doc: "the x axis label" },
        Param { name: "y_label", positional: false, required: false, doc: "the y axis label" },
    ],
    run,
};

fn run(args: &mut Args, ctx: &mut Context) -> Result<Value> {
    let categories = args.labels("categories")?.unwrap_or_default();
    let values = series(args, "values")?;
    let names = args.labels("names")?.unwrap_or_else(|| default_names(values.len(), &args.text("values")));
    if names.len() != values.len() {
        bail!("bar: {} names for {} series", names.len(), values.len());
    }
    if let Some(bad) = values.iter().find(|v| v.len() != categories.len()) {
        bail!("bar: a series has {} values for {} categories", bad.len(), categories.len());
    }
    let bars = Bars {
        categories,
        series: names.into_iter().zip(values).collect(),
        x_label: args.string_or("x_label", &args.text("categories"))?,
        y_label: args.string_or("y_label", &args.text("values"))?,
    };
    let title = args.string_or("title", &ctx.call)?;
    Ok(Value::Figure(Arc::new(Figure::new(title, Plot::Bars(bars)))))
}
