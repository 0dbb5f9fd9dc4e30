//! `line(X, Y)`: one or several series against a shared x axis, e.g. error
//! rate against weight decay.

use std::sync::Arc;

use anyhow::{Result, bail};

use super::{Args, Operation, Param};
use crate::plot::{Figure, Lines, Plot, Series};
use crate::session::Context;
use crate::session::value::Value;

pub const OP: Operation = Operation {
    name: "line",
    summary: "a line plot of one or more series",
    usage: "line(X, Y or [Y1, Y2, ...], names: LIST, title: TEXT, x_label: TEXT, y_label: TEXT, log_x: BOOL, log_y: BOOL)",
    params: &[
        Param { name: "x", positional: true, required: true, doc: "the x values" },
        Param { name: "y", positional: true, required: true, doc: "the y values, or a list of series" },
        Param { name: "names", positional: false, required: false, doc: "a name per series (a legend)" },
        Param { name: "title", positional: false, required: false, doc: "the figure's title" },
        Param { name: "x_label", positional: false, required: false, doc: "the x axis label" },
        Param { name: "y_label", positional: false, required: false, doc: "the y axis label" },
        Param { name: "log_x", positional: false, required: false, doc: "a logarithmic x axis" },
        Param { name: "log_y", positional: false, required: false, doc: "a logarithmic y axis" },
    ],
    run,
};

fn run(args: &mut Args, ctx: &mut Context) -> Result<Value> {
    let x = args.numbers("x")?;
    let ys = series(args, "y")?;
    let names = args.labels("names")?.unwrap_or_else(|| default_names(ys.len(), &args.text("y")));
    if names.len() != ys.len() {
        bail!("line: {} names for {} series", names.len(), ys.len());
    }
    let mut all = Vec::new();
    for (name, y) in names.into_iter().zip(ys) {
        if y.len() != x.len() {
            bail!("line: series `{name}` has {} values for {} x values", y.len(), x.len());
        }
        all.push(Series { name, points: x.iter().copied().zip(y).collect() });
    }
    let lines = Lines {
        series: all,
        x_label: args.string_or("x_label", &args.text("x"))?,
        y_label: args.string_or("y_label", &args.text("y"))?,
        log_x: args.bool_or("log_x", false)?,
        log_y: args.bool_or("log_y", false)?,
    };
    let title = args.string_or("title", &ctx.call)?;
    Ok(Value::Figure(Arc::new(Figure::new(title, Plot::Lines(lines)))))
}

/// A list of numbers is one series; a list of lists is several.
pub fn series(args: &Args, name: &str) -> Result<Vec<Vec<f64>>> {
    match args.get(name) {
        Some(Value::List(items)) if items.iter().all(|v| matches!(v, Value::List(_))) && !items.is_empty() => items
            .iter()
            .map(|v| match v {
                Value::List(inner) => inner
                    .iter()
                    .map(|x| x.as_number().ok_or_else(|| anyhow::anyhow!("{}: `{name}` must hold numbers", args.op)))
                    .collect(),
                _ => unreachable!("checked above"),
            })
            .collect(),
        _ => Ok(vec![args.numbers(name)?]),
    }
}

pub fn default_names(count: usize, written: &str) -> Vec<String> {
    match count {
        1 => vec![written.to_string()],
        n => (1..=n).map(|i| format!("series {i}")).collect(),
    }
}
