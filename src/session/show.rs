//! `show VALUE`: each value's representations, rendered once for every
//! consumer (terminal, report, notebook).

use anyhow::Result;

use super::ops::grid;
use super::output::MimeBundle;
use super::value::{Shown, Value};
use crate::plot::{Figure, Plot};

/// The representations of a value: text for all, plus tables and figures.
pub fn show(value: &Value) -> Result<Vec<Shown>> {
    match value {
        Value::Figure(figure) => Ok(vec![figure_output(figure, kind_of(figure))?]),
        Value::Object(object) => object.show(),
        Value::Images(set) => {
            let text = Shown::text(MimeBundle { json: Some(value.to_json()), ..MimeBundle::text(set.summary()) });
            let preview = grid::preview(set)?;
            Ok(vec![text, figure_output(&preview, "images")?])
        }
        other => Ok(vec![Shown::text(MimeBundle { json: Some(other.to_json()), ..MimeBundle::text(other.summary()) })]),
    }
}

/// A figure as PNG and SVG, saved by batch runs under `<cell>-<suffix>`.
pub fn figure_output(figure: &Figure, suffix: &str) -> Result<Shown> {
    let bundle = MimeBundle {
        text: format!("[figure: {}]", figure.title),
        png: Some(figure.png()?),
        svg: Some(figure.svg()?),
        json: Some(serde_json::json!({ "figure": figure.title })),
        ..Default::default()
    };
    Ok(Shown { bundle, figure: Some(suffix.to_string()) })
}

/// The file-name suffix of a figure: what kind of plot it is.
fn kind_of(figure: &Figure) -> &'static str {
    match figure.plot {
        Plot::Grid(_) => "grid",
        Plot::Histogram(_) => "histogram",
        Plot::Lines(_) => "lines",
        Plot::Bars(_) => "bars",
        Plot::Heatmap(_) => "heatmap",
    }
}
