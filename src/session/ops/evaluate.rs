//! `evaluate MODELS on DATA`: error rates, per-class errors and confusion
//! tables.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use serde_json::json;

use super::{Args, Operation, Param};
use crate::classifier::Evaluation;
use crate::session::table::Table;
use crate::session::value::{Object, Shown, Value};
use crate::session::{Context, MimeBundle};

pub const OP: Operation = Operation {
    name: "evaluate",
    summary: "error rate, per-class errors and confusion table of models on labelled images",
    usage: "evaluate MODELS on DATA",
    params: &[
        Param { name: "models", positional: true, required: true, doc: "a model or a list of models" },
        Param { name: "on", positional: true, required: true, doc: "labelled images, e.g. mnist.test" },
    ],
    run,
};

fn run(args: &mut Args, ctx: &mut Context) -> Result<Value> {
    let models = args.models("models")?;
    let data = args.pixels("on")?;
    let labels = data.labels("evaluate")?;
    for model in &models {
        model.check_images("evaluate", &data)?;
    }
    let bar = ctx.bar(models.len(), "evaluate");
    let mut rows = Vec::new();
    for model in models {
        ctx.check_interrupt()?;
        let evaluation = model
            .classifier()?
            .evaluate(data.images.view(), labels)
            .with_context(|| format!("evaluate: model {} on {}", model.name, data.name))?;
        rows.push((model.name.clone(), evaluation));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(Value::Object(Arc::new(Evaluations { data: data.name.clone(), rows })))
}

/// The evaluations of several models on one set.
pub struct Evaluations {
    data: String,
    rows: Vec<(String, Evaluation)>,
}

impl Evaluations {
    fn table(&self) -> Table {
        // Models of different class counts share the table; missing classes show "-".
        let classes = self.rows.iter().map(|(_, e)| e.confusion.len()).max().unwrap_or(0);
        let mut header = vec!["model".to_string(), "images".into(), "errors".into(), "error".into()];
        header.extend((0..classes).map(|c| format!("err {c}")));
        let mut table = Table { header, rows: Vec::new() };
        for (name, e) in &self.rows {
            let mut row = vec![name.clone(), e.total().to_string(), e.errors().to_string(), percent(e.error_rate())];
            let per_class = e.per_class_error().into_iter().map(percent);
            row.extend(per_class.chain(std::iter::repeat("-".to_string())).take(classes));
            table.row(row);
        }
        table
    }

    fn confusion_html(&self) -> String {
        self.rows
            .iter()
            .map(|(name, e)| {
                let classes = e.confusion.len();
                let mut header = vec!["true \\ predicted".to_string()];
                header.extend((0..classes).map(|c| c.to_string()));
                let mut table = Table { header, rows: Vec::new() };
                for (truth, counts) in e.confusion.iter().enumerate() {
                    table.row(std::iter::once(truth.to_string()).chain(counts.iter().map(usize::to_string)).collect());
                }
                let name = crate::session::table::escape(name);
                format!("<details><summary>confusion table of {name}</summary>{}</details>", table.html())
            })
            .collect()
    }

    fn one(&self, f: impl Fn(&Evaluation) -> Value) -> Value {
        match self.rows.as_slice() {
            [(_, only)] => f(only),
            rows => Value::List(rows.iter().map(|(_, e)| f(e)).collect()),
        }
    }
}

/// A rate as a percentage; "-" for an unknown one (a class with no images).
fn percent(fraction: f64) -> String {
    if fraction.is_nan() { "-".to_string() } else { format!("{:.2}%", 100.0 * fraction) }
}

fn numbers(values: impl IntoIterator<Item = f64>) -> Value {
    Value::List(values.into_iter().map(Value::Number).collect())
}

impl Object for Evaluations {
    fn kind(&self) -> &'static str {
        "an evaluation"
    }

    fn field_names(&self) -> Vec<String> {
        let mut names: Vec<String> = ["error", "errors", "per_class", "confusion", "models"].map(String::from).to_vec();
        names.extend(self.rows.iter().map(|(n, _)| n.clone()));
        names
    }

    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "error" => self.one(|e| Value::Number(e.error_rate())),
            "errors" => self.one(|e| Value::Number(e.errors() as f64)),
            "per_class" => self.one(|e| numbers(e.per_class_error())),
            "confusion" => {
                self.one(|e| Value::List(e.confusion.iter().map(|r| numbers(r.iter().map(|&c| c as f64))).collect()))
            }
            "models" => Value::List(self.rows.iter().map(|(n, _)| Value::Str(n.clone())).collect()),
            model => {
                let (n, e) = self.rows.iter().find(|(n, _)| n == model)?;
                Value::Object(Arc::new(Evaluations { data: self.data.clone(), rows: vec![(n.clone(), e.clone())] }))
            }
        })
    }

    fn show(&self) -> Result<Vec<Shown>> {
        let table = self.table();
        let text = format!(
            "error rates on {} ({} images)\n{}",
            self.data,
            self.rows.first().map_or(0, |(_, e)| e.total()),
            table.text()
        );
        let html = format!(
            "<p>error rates on <code>{}</code></p>{}{}",
            crate::session::table::escape(&self.data),
            table.html(),
            self.confusion_html()
        );
        Ok(vec![Shown::text(MimeBundle { text, html: Some(html), json: Some(self.to_json()), ..Default::default() })])
    }

    fn to_json(&self) -> serde_json::Value {
        use crate::session::value::Recorded;
        let models: Vec<_> = self
            .rows
            .iter()
            .map(|(name, e)| {
                json!({ "model": name, "images": e.total(), "errors": e.errors(), "error_rate": e.error_rate().recorded(),
                        "per_class_error": e.per_class_error().recorded(), "confusion": e.confusion })
            })
            .collect();
        json!({ "evaluate": { "data": self.data, "models": models } })
    }

    fn csv(&self) -> Option<Vec<Vec<String>>> {
        Some(self.table().csv())
    }
}
