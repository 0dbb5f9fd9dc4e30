//! `evaluate MODELS on DATA`: error rates, per-class errors and confusion
//! tables; for models of many classes, the most frequent confusions and the
//! worst classes instead.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use serde_json::json;

use super::{Args, Operation, Param};
use crate::classifier::Evaluation;
use crate::data::Label;
use crate::session::table::Table;
use crate::session::value::{Object, Shown, Value, short_class_name};
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
    data.labels("evaluate")?;
    for model in &models {
        model.check_images("evaluate", &data)?;
    }
    let key = super::record_key(ctx, &models);
    let bar = ctx.bar(models.len(), "evaluate");
    let (data, predictions) =
        ctx.per_example(key, &data, |part| super::predictions(ctx, "evaluate", &models, part, &bar))?;
    bar.finish_and_clear();
    let labels = data.labels("evaluate")?;
    let mut rows = Vec::new();
    for (model, (predicted, &classes)) in models.iter().zip(predictions.predicted.iter().zip(&predictions.classes)) {
        let evaluation = Evaluation::of(&model.name, predicted, classes, labels)
            .with_context(|| format!("evaluate: model {} on {}", model.name, data.name))?;
        rows.push((model.name.clone(), evaluation));
    }
    Ok(Value::Object(Arc::new(Evaluations { data: data.name.clone(), classes: data.classes.clone(), rows })))
}

/// Beyond this many classes (CIFAR-100, ImageNet) a column per class and a
/// confusion table are unreadable: the tables give the most frequent
/// confusions and the worst classes instead, and `results.yaml` the
/// confusion table's non-zero cells. MNIST's and CIFAR-10's ten classes keep
/// their full tables.
pub const MANY_CLASSES: usize = 20;

/// Rows of the confusion and worst-class tables of many classes.
const LISTED: usize = 10;

/// The evaluations of several models on one set.
pub struct Evaluations {
    data: String,
    /// The set's class names, for the tables of many classes.
    classes: Option<Arc<[String]>>,
    rows: Vec<(String, Evaluation)>,
}

impl Evaluations {
    /// Whether some model has more than [`MANY_CLASSES`] classes.
    fn many(&self) -> bool {
        self.rows.iter().any(|(_, e)| e.confusion.len() > MANY_CLASSES)
    }

    /// Class `k` as the tables write it: its number and, when the set names
    /// it, its name.
    fn class(&self, k: usize) -> String {
        match self.classes.as_deref().and_then(|c| short_class_name(c, k as Label)) {
            Some(name) => format!("{k} {name}"),
            None => k.to_string(),
        }
    }

    /// Each model's images, errors and error rate, with a column per class
    /// unless there are many.
    fn table(&self) -> Table {
        if self.many() {
            let mut table = Table::new(&["model", "images", "errors", "error", "classes"]);
            for (name, e) in &self.rows {
                let row = [e.total().to_string(), e.errors().to_string(), percent(e.error_rate())];
                table.row([name.clone()].into_iter().chain(row).chain([e.confusion.len().to_string()]).collect());
            }
            return table;
        }
        // Models of different class counts share the table; missing classes show "-".
        let classes = self.rows.iter().map(|(_, e)| e.confusion.len()).max().unwrap_or(0);
        let mut header = vec!["model".to_string(), "images".into(), "errors".into(), "error".into()];
        header.extend((0..classes).map(|c| format!("err {}", self.class(c))));
        let mut table = Table { header, rows: Vec::new() };
        for (name, e) in &self.rows {
            let mut row = vec![name.clone(), e.total().to_string(), e.errors().to_string(), percent(e.error_rate())];
            let per_class = e.per_class_error().into_iter().map(percent);
            row.extend(per_class.chain(std::iter::repeat("-".to_string())).take(classes));
            table.row(row);
        }
        table
    }

    /// The most frequent confusions of a model: true class, predicted class
    /// and how often, the commonest first.
    fn confusions(&self, e: &Evaluation) -> Table {
        let mut table = Table::new(&["true class", "predicted", "images"]);
        for (truth, predicted, n) in top_confusions(e, LISTED) {
            table.row(vec![self.class(truth), self.class(predicted), n.to_string()]);
        }
        table
    }

    /// The classes a model gets wrong most often, of those the set has.
    fn worst(&self, e: &Evaluation) -> Table {
        let mut table = Table::new(&["class", "images", "errors", "error"]);
        for (k, images, errors) in worst_classes(e, LISTED) {
            table.row(vec![self.class(k), images.to_string(), errors.to_string(), percent(errors as f64 / images as f64)]);
        }
        table
    }

    /// For many classes, each model's commonest confusions and worst classes,
    /// as `render` writes a table (text or HTML), each under its heading.
    fn details(&self, heading: impl Fn(&str) -> String, render: impl Fn(&Table) -> String) -> String {
        if !self.many() {
            return String::new();
        }
        let mut out = String::new();
        for (name, e) in &self.rows {
            out.push_str(&heading(&format!("most frequent confusions of {name}")));
            out.push_str(&render(&self.confusions(e)));
            out.push_str(&heading(&format!("classes {name} gets wrong most often")));
            out.push_str(&render(&self.worst(e)));
        }
        out
    }

    fn confusion_html(&self) -> String {
        if self.many() {
            let heading = |h: &str| format!("<p>{}</p>", crate::session::table::escape(h));
            return self.details(heading, Table::html);
        }
        self.rows
            .iter()
            .map(|(name, e)| {
                let classes = e.confusion.len();
                let mut header = vec!["true \\ predicted".to_string()];
                header.extend((0..classes).map(|c| self.class(c)));
                let mut table = Table { header, rows: Vec::new() };
                for (truth, counts) in e.confusion.iter().enumerate() {
                    table.row(std::iter::once(self.class(truth)).chain(counts.iter().map(usize::to_string)).collect());
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

/// The `n` largest off-diagonal cells of the confusion table as (true class,
/// predicted class, images), the largest first, ties by class.
fn top_confusions(e: &Evaluation, n: usize) -> Vec<(usize, usize, usize)> {
    let mut cells: Vec<(usize, usize, usize)> = cells(e).filter(|&(t, p, _)| t != p).collect();
    cells.sort_by_key(|&(t, p, count)| (std::cmp::Reverse(count), t, p));
    cells.truncate(n);
    cells
}

/// The `n` classes of highest error among those with images, as (class,
/// images, errors), the worst first; ties by more errors, then by class.
fn worst_classes(e: &Evaluation, n: usize) -> Vec<(usize, usize, usize)> {
    let mut classes: Vec<(usize, usize, usize)> = e
        .confusion
        .iter()
        .enumerate()
        .map(|(k, row)| (k, row.iter().sum::<usize>(), row.iter().sum::<usize>() - row[k]))
        .filter(|&(_, images, _)| images > 0)
        .collect();
    // errors / images compared without division: a/b > c/d iff a*d > c*b.
    classes.sort_by(|a, b| (b.2 * a.1).cmp(&(a.2 * b.1)).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
    classes.truncate(n);
    classes
}

/// The non-zero cells of the confusion table, row by row.
fn cells(e: &Evaluation) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    e.confusion.iter().enumerate().flat_map(|(t, row)| {
        row.iter().enumerate().filter(|&(_, &count)| count > 0).map(move |(p, &count)| (t, p, count))
    })
}

/// A confusion table of many classes as recorded data: its size and its
/// non-zero cells `[true, predicted, images]` (the diagonal too), which
/// hold everything the table does in a few lines for a few images.
fn sparse(e: &Evaluation) -> serde_json::Value {
    let cells: Vec<[usize; 3]> = cells(e).map(|(t, p, n)| [t, p, n]).collect();
    json!({ "classes": e.confusion.len(), "cells": cells })
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
                let rows = vec![(n.clone(), e.clone())];
                Value::Object(Arc::new(Evaluations { data: self.data.clone(), classes: self.classes.clone(), rows }))
            }
        })
    }

    fn show(&self) -> Result<Vec<Shown>> {
        let table = self.table();
        let text = format!(
            "error rates on {} ({} images)\n{}{}",
            self.data,
            self.rows.first().map_or(0, |(_, e)| e.total()),
            table.text(),
            self.details(|h| format!("\n{h}\n"), Table::text)
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
                let mut recorded = json!({ "model": name, "images": e.total(), "errors": e.errors(),
                                           "error_rate": e.error_rate().recorded() });
                if e.confusion.len() > MANY_CLASSES {
                    recorded["confusion"] = sparse(e);
                } else {
                    recorded["per_class_error"] = e.per_class_error().recorded();
                    recorded["confusion"] = json!(e.confusion);
                }
                recorded
            })
            .collect();
        json!({ "evaluate": { "data": self.data, "models": models } })
    }

    fn csv(&self) -> Option<Vec<Vec<String>>> {
        Some(self.table().csv())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 30 classes: class 7 always read as 3 (5 images), class 12 as 11 twice
    /// of 4, class 20 right (6 images), class 25 as 0 twice of 2.
    fn evaluation() -> Evaluation {
        let mut confusion = vec![vec![0; 30]; 30];
        confusion[7][3] = 5;
        confusion[12][11] = 2;
        confusion[12][12] = 2;
        confusion[20][20] = 6;
        confusion[25][0] = 2;
        Evaluation { confusion }
    }

    /// Whether a line of `text` has `words`, however the columns are padded.
    fn has_line(text: &str, words: &str) -> bool {
        text.lines().any(|l| l.split_whitespace().eq(words.split_whitespace()))
    }

    fn evaluations(classes: Option<Arc<[String]>>) -> Evaluations {
        Evaluations { data: "d".into(), classes, rows: vec![("m".into(), evaluation())] }
    }

    #[test]
    fn the_commonest_confusions_come_first_ties_by_class() {
        assert_eq!(top_confusions(&evaluation(), 10), [(7, 3, 5), (12, 11, 2), (25, 0, 2)]);
        assert_eq!(top_confusions(&evaluation(), 1), [(7, 3, 5)]);
    }

    #[test]
    fn the_worst_classes_are_those_of_highest_error_with_images() {
        assert_eq!(worst_classes(&evaluation(), 10), [(7, 5, 5), (25, 2, 2), (12, 4, 2), (20, 6, 0)]);
    }

    #[test]
    fn many_classes_give_no_column_per_class_and_a_sparse_confusion_table() {
        let names: Arc<[String]> = (0..30).map(|k| format!("thing {k}, other name")).collect();
        let e = evaluations(Some(names));
        assert_eq!(e.table().header, ["model", "images", "errors", "error", "classes"]);
        let bundle = &e.show().unwrap()[0].bundle;
        assert!(has_line(&bundle.text, "7 thing 7 3 thing 3 5"), "{}", bundle.text);
        assert!(has_line(&bundle.text, "12 thing 12 4 2 50.00%"), "{}", bundle.text);
        assert!(bundle.html.as_ref().unwrap().contains("<td>7 thing 7</td><td>3 thing 3</td>"));
        let recorded = &e.to_json()["evaluate"]["models"][0];
        assert_eq!(recorded["confusion"]["classes"], 30);
        assert_eq!(recorded["confusion"]["cells"], json!([[7, 3, 5], [12, 11, 2], [12, 12, 2], [20, 20, 6], [25, 0, 2]]));
        assert!(recorded.get("per_class_error").is_none());
        assert!(has_line(&evaluations(None).show().unwrap()[0].bundle.text, "7 3 5"), "numbers without names");
    }

    #[test]
    fn ten_classes_keep_a_column_per_class_and_the_full_confusion_table() {
        let mut confusion = vec![vec![0; 10]; 10];
        confusion[1][2] = 3;
        let e = Evaluations { data: "d".into(), classes: None, rows: vec![("m".into(), Evaluation { confusion })] };
        assert_eq!(e.table().header.len(), 4 + 10);
        assert_eq!(e.to_json()["evaluate"]["models"][0]["confusion"][1][2], 3);
        assert!(!e.show().unwrap()[0].bundle.text.contains("most frequent confusions"));
        assert_eq!(e.table().header[4..6], ["err 0", "err 1"], "numbers without class names, as for MNIST");
        let names: Arc<[String]> = (0..10).map(|k| format!("thing {k}")).collect();
        let named = Evaluations { classes: Some(names), ..e };
        assert_eq!(named.table().header[5], "err 1 thing 1");
        assert!(named.show().unwrap()[0].bundle.html.as_ref().unwrap().contains("<th>2 thing 2</th>"));
    }
}
