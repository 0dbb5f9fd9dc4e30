//! `transfer SETS to MODELS`: the error rate of each model on each set of
//! adversarial (or noisy) examples, the paper's Table 2, with each set's
//! average distortion as the last column.

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use super::{Args, Operation, Param};
use crate::classifier::Evaluation;
use crate::plot::{Figure, Heatmap, Plot};
use crate::session::show::figure_output;
use crate::session::table::Table;
use crate::session::value::{ImageSet, Object, Shown, Value, format_number};
use crate::session::{Context, MimeBundle};

pub const OP: Operation = Operation {
    name: "transfer",
    summary: "error rate of each model on each adversarial or noisy set (cross-model generalisation)",
    usage: "transfer [ADV, ...] to [MODELS]",
    params: &[
        Param {
            name: "sets",
            positional: true,
            required: true,
            doc: "adversarial sets (lbfgs), noisy sets (gaussian, magnify), or image sets",
        },
        Param { name: "to", positional: true, required: true, doc: "the models to evaluate" },
    ],
    run,
};

struct Row {
    label: String,
    images: Arc<ImageSet>,
    distortion: Option<f64>,
}

fn run(args: &mut Args, ctx: &mut Context) -> Result<Value> {
    let mut rows = match args.get("sets") {
        Some(Value::List(items)) => items.iter().map(row).collect::<Result<Vec<_>>>()?,
        Some(one) => vec![row(one)?],
        None => bail!("transfer needs sets"),
    };
    let models = args.models("to")?;
    for row in &rows {
        for model in &models {
            model.check_images("transfer", &row.images)?;
        }
    }
    let mut errors = vec![vec![f64::NAN; models.len()]; rows.len()];
    let bar = ctx.bar(rows.len() * models.len(), "transfer");
    for (r, row) in rows.iter_mut().enumerate() {
        row.images.labels("transfer")?;
        let key = format!("{} {}", super::record_key(ctx, &models), row.label);
        let (images, predictions) =
            ctx.per_example(key, &row.images, |part| super::predictions(ctx, "transfer", &models, part, &bar))?;
        row.images = images;
        let labels = row.images.labels("transfer")?;
        // An empty set (an attack that found nothing) has no error rate: its cells show "-".
        if labels.is_empty() {
            continue;
        }
        for (m, model) in models.iter().enumerate() {
            let evaluation = Evaluation::of(&model.name, &predictions.predicted[m], predictions.classes[m], labels)
                .with_context(|| format!("transfer: model {} on {}", model.name, row.label))?;
            errors[r][m] = evaluation.error_rate();
        }
    }
    bar.finish_and_clear();
    let names = models.iter().map(|m| m.name.clone()).collect();
    Ok(Value::Object(Arc::new(Transfer { rows, models: names, errors })))
}

fn row(value: &Value) -> Result<Row> {
    let Some(images) = value.as_images() else { bail!("transfer: a set must hold images, not {}", value.kind()) };
    crate::classifier::check_pixels(images.images.view())
        .map_err(|e| anyhow::anyhow!("transfer: set {} {e}", images.name))?;
    let (label, distortion) = match value {
        Value::Object(o) => {
            let label = match o.field("label") {
                Some(Value::Str(s)) => s,
                _ => images.name.clone(),
            };
            (label, o.field("mean_distortion").and_then(|d| d.as_number()))
        }
        _ => (images.name.clone(), None),
    };
    Ok(Row { label, images, distortion })
}

pub struct Transfer {
    rows: Vec<Row>,
    models: Vec<String>,
    /// `errors[set][model]`.
    errors: Vec<Vec<f64>>,
}

impl Transfer {
    fn table(&self) -> Table {
        let mut header = vec!["examples made for".to_string(), "images".to_string()];
        header.extend(self.models.iter().cloned());
        header.push("av. distortion".into());
        let mut table = Table { header, rows: Vec::new() };
        for (row, errors) in self.rows.iter().zip(&self.errors) {
            let mut cells = vec![row.label.clone(), row.images.len().to_string()];
            cells.extend(errors.iter().map(|e| if e.is_nan() { "-".into() } else { format!("{:.1}%", 100.0 * e) }));
            cells.push(row.distortion.map_or("-".into(), format_number));
            table.row(cells);
        }
        table
    }

    fn heatmap(&self) -> Figure {
        let heatmap = Heatmap {
            rows: self.rows.iter().map(|r| r.label.clone()).collect(),
            cols: self.models.clone(),
            values: self.errors.clone(),
            x_label: "evaluated on model".into(),
            y_label: "examples made for".into(),
            percent: true,
        };
        Figure::new("Error rate on adversarial and noisy examples", Plot::Heatmap(heatmap))
    }
}

impl Object for Transfer {
    fn kind(&self) -> &'static str {
        "a transfer table"
    }

    fn field_names(&self) -> Vec<String> {
        ["errors", "models", "sets", "distortion"].map(String::from).to_vec()
    }

    fn field(&self, name: &str) -> Option<Value> {
        let numbers = |v: &[f64]| Value::List(v.iter().map(|&x| Value::Number(x)).collect());
        Some(match name {
            "errors" => Value::List(self.errors.iter().map(|r| numbers(r)).collect()),
            "models" => Value::List(self.models.iter().map(|m| Value::Str(m.clone())).collect()),
            "sets" => Value::List(self.rows.iter().map(|r| Value::Str(r.label.clone())).collect()),
            "distortion" => Value::List(
                self.rows.iter().map(|r| r.distortion.map_or(Value::Number(f64::NAN), Value::Number)).collect(),
            ),
            _ => return None,
        })
    }

    fn show(&self) -> Result<Vec<Shown>> {
        let table = self.table();
        let text = format!("error rate of each model (columns) on each set (rows)\n{}", table.text());
        Ok(vec![
            Shown::text(MimeBundle {
                text,
                html: Some(table.html()),
                json: Some(self.to_json()),
                ..Default::default()
            }),
            figure_output(&self.heatmap(), "transfer")?,
        ])
    }

    fn to_json(&self) -> serde_json::Value {
        use crate::session::value::Recorded;
        let rows: Vec<_> = self
            .rows
            .iter()
            .zip(&self.errors)
            .map(|(r, e)| {
                let errors: serde_json::Map<_, _> = self.models.iter().cloned().zip(e.iter().map(f64::recorded)).collect();
                json!({ "set": r.label, "images": r.images.len(), "error_rate": errors,
                        "mean_distortion": r.distortion.recorded() })
            })
            .collect();
        json!({ "transfer": rows })
    }

    fn csv(&self) -> Option<Vec<Vec<String>>> {
        Some(self.table().csv())
    }

    fn figure(&self) -> Option<Arc<Figure>> {
        Some(Arc::new(self.heatmap()))
    }
}
