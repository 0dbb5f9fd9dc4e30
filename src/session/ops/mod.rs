//! The built-in operations of the language, one file each, registered in
//! `OPERATIONS`. Adding an operation is a new file with a `pub const OP`
//! and one line in the `operations!` list below; `advx check` and the error messages learn
//! its arguments from the signature.
//!
//! Every option goes through an [`Args`] accessor that checks it: numbers
//! finite, counts whole and bounded (so that no option can make an
//! operation allocate absurdly), ranges increasing, and images fed to a
//! model present and inside the pixel box [0, 1] ([`Args::pixels`]).
//!
//! **Stopping.** Ctrl-C or SIGTERM stops any operation within about a
//! second: ONNX Runtime calls in flight are terminated, and the Rust loops
//! between them poll [`crate::interrupt::check`] at least every 100 ms of
//! work. `lbfgs` keeps the batches it finished and returns them as a
//! result marked partial (the session then runs no later statement);
//! every other operation fails with [`crate::interrupt::Interrupted`],
//! since a part of an error rate, a ranking or a bound would be a
//! different number that looks like the same one.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use anyhow::{Result, bail};

use super::Context;
use super::value::{ImageSet, LoadedModel, Value};
use crate::lang::error::suggestion;

/// Declares each operation's module and lists its `OP` in `OPERATIONS`.
macro_rules! operations {
    ($($module:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every operation, in the order `advx check --ops` lists them.
        pub static OPERATIONS: &[&Operation] = &[$(&$module::OP),*];
    };
}

// The registry: one line per operation.
operations! {
    evaluate,
    predict,
    grid,
    histogram,
    line,
    bar,
    lbfgs,
    transfer,
    gaussian,
    magnify,
    lipschitz,
    units,
    visualize,
    numpy,
    images,
}

pub fn find(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().copied().find(|op| op.name == name)
}

pub fn names() -> Vec<String> {
    OPERATIONS.iter().map(|op| op.name.to_string()).collect()
}

pub struct Operation {
    pub name: &'static str,
    /// One line for listings.
    pub summary: &'static str,
    /// How it is written, e.g. `evaluate MODELS on DATA`.
    pub usage: &'static str,
    pub params: &'static [Param],
    pub run: fn(&mut Args, &mut Context) -> Result<Value>,
}

/// A parameter. Positional ones take the positional arguments in order;
/// every parameter can also be given by name (`on: test`).
pub struct Param {
    pub name: &'static str,
    pub positional: bool,
    pub required: bool,
    pub doc: &'static str,
}

impl Operation {
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    pub fn param_names(&self) -> Vec<String> {
        self.params.iter().map(|p| p.name.to_string()).collect()
    }

    /// Its summary, usage and parameters, as `advx check --ops` lists
    /// them and the Jupyter kernel's inspector shows them.
    pub fn describe(&self) -> String {
        let mut text = format!("{:<10} {}\n           usage: {}\n", self.name, self.summary, self.usage);
        for p in self.params {
            let how = if p.positional { "positional or named" } else { "named" };
            let need = if p.required { ", required" } else { "" };
            text += &format!("           {:<11} {} ({how}{need})\n", p.name, p.doc);
        }
        text
    }
}

/// Arguments bound to an operation's parameters, with typed accessors whose
/// errors name the operation and the argument.
pub struct Args {
    pub op: &'static str,
    values: BTreeMap<&'static str, Value>,
    /// The source text of each argument, for naming derived sets.
    texts: BTreeMap<&'static str, String>,
}

impl Args {
    /// Matches call arguments to `op`'s parameters.
    pub fn bind(
        op: &'static Operation,
        positional: Vec<(Value, String)>,
        named: Vec<(String, Value, String)>,
    ) -> Result<Args> {
        let mut args = Args { op: op.name, values: BTreeMap::new(), texts: BTreeMap::new() };
        let mut slots = op.params.iter().filter(|p| p.positional);
        for (value, text) in positional {
            let Some(param) = slots.next() else {
                bail!("{} takes {} positional argument(s); usage: {}", op.name, count_positional(op), op.usage);
            };
            args.insert(param.name, value, text);
        }
        for (name, value, text) in named {
            let Some(param) = op.param(&name) else {
                let help = suggestion(&name, &op.param_names()).map(|s| format!("; {s}")).unwrap_or_default();
                bail!("{} has no argument `{name}`{help} (usage: {})", op.name, op.usage);
            };
            if args.values.contains_key(param.name) {
                bail!("{}: argument `{name}` is given twice", op.name);
            }
            args.insert(param.name, value, text);
        }
        if let Some(missing) = op.params.iter().find(|p| p.required && !args.values.contains_key(p.name)) {
            bail!("{} needs `{}` ({}); usage: {}", op.name, missing.name, missing.doc, op.usage);
        }
        Ok(args)
    }

    fn insert(&mut self, name: &'static str, value: Value, text: String) {
        self.values.insert(name, value);
        self.texts.insert(name, text);
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// The argument as written in the script.
    pub fn text(&self, name: &str) -> String {
        self.texts.get(name).cloned().unwrap_or_default()
    }

    fn required(&self, name: &str) -> Result<&Value> {
        match self.values.get(name) {
            Some(v) => Ok(v),
            None => bail!("{} needs `{name}`", self.op),
        }
    }

    fn wrong(&self, name: &str, wanted: &str, got: &Value) -> anyhow::Error {
        anyhow::anyhow!("{}: `{name}` must be {wanted}, not {}", self.op, got.kind())
    }

    pub fn images(&self, name: &str) -> Result<Arc<ImageSet>> {
        let value = self.required(name)?;
        value.as_images().ok_or_else(|| self.wrong(name, "an image set (e.g. mnist.test[0..100])", value))
    }

    /// One model or a list of models.
    pub fn models(&self, name: &str) -> Result<Vec<Arc<LoadedModel>>> {
        match self.required(name)? {
            Value::Model(m) => Ok(vec![m.clone()]),
            Value::List(items) => items
                .iter()
                .map(|v| match v {
                    Value::Model(m) => Ok(m.clone()),
                    other => Err(self.wrong(name, "a model or a list of models", other)),
                })
                .collect(),
            other => Err(self.wrong(name, "a model or a list of models", other)),
        }
    }

    pub fn model(&self, name: &str) -> Result<Arc<LoadedModel>> {
        match self.required(name)? {
            Value::Model(m) => Ok(m.clone()),
            other => Err(self.wrong(name, "a model", other)),
        }
    }

    /// A finite number.
    pub fn number_or(&self, name: &str, default: f64) -> Result<f64> {
        let n = match self.values.get(name) {
            None => default,
            Some(Value::Number(n)) => *n,
            Some(other) => return Err(self.wrong(name, "a number", other)),
        };
        if !n.is_finite() {
            bail!("{}: `{name}` must be a finite number, not {n}", self.op);
        }
        Ok(n)
    }

    /// A finite number greater than 0.
    pub fn positive_or(&self, name: &str, default: f64) -> Result<f64> {
        let n = self.number_or(name, default)?;
        if n <= 0.0 {
            bail!("{}: `{name}` must be a number greater than 0, not {n}", self.op);
        }
        Ok(n)
    }

    /// A finite number of at least 0.
    pub fn non_negative_or(&self, name: &str, default: f64) -> Result<f64> {
        let n = self.number_or(name, default)?;
        if n < 0.0 {
            bail!("{}: `{name}` must be a number of at least 0, not {n}", self.op);
        }
        Ok(n)
    }

    /// A whole number in `allowed`: the upper end keeps a count from
    /// making the operation allocate or draw absurdly (`batch: 1e9`).
    pub fn count_or(&self, name: &str, default: usize, allowed: RangeInclusive<usize>) -> Result<usize> {
        let (min, max) = (*allowed.start(), *allowed.end());
        let n = match self.values.get(name) {
            None => return Ok(default),
            Some(Value::Number(n)) => *n,
            Some(other) => return Err(self.wrong(name, "a whole number", other)),
        };
        if !(n.fract() == 0.0 && n >= min as f64 && n <= max as f64) {
            bail!("{}: `{name}` must be a whole number of at least {min} and at most {max}, not {n}", self.op);
        }
        Ok(n as usize)
    }

    /// A random seed: a whole number from 0 to 2^53 (what a number holds
    /// exactly), 0 when not given.
    pub fn seed_or(&self, name: &str) -> Result<u64> {
        Ok(self.count_or(name, 0, 0..=MAX_SEED)? as u64)
    }

    /// A range `lo..hi` of finite numbers with `lo < hi`, if given.
    pub fn range(&self, name: &str) -> Result<Option<(f64, f64)>> {
        match self.values.get(name) {
            None => Ok(None),
            Some(&Value::Range(lo, hi)) if lo.is_finite() && hi.is_finite() && lo < hi => Ok(Some((lo, hi))),
            Some(Value::Range(lo, hi)) => {
                bail!("{}: `{name}` must be a range lo..hi of finite numbers with lo < hi, not {lo}..{hi}", self.op)
            }
            Some(other) => Err(self.wrong(name, "a range such as 1..10", other)),
        }
    }

    /// Images to feed a model: at least one, every pixel in [0, 1]. A
    /// difference such as `adv - test` is for display (`grid`), and a
    /// model given one would answer about inputs it never sees.
    pub fn pixels(&self, name: &str) -> Result<Arc<ImageSet>> {
        let set = self.images(name)?;
        if set.is_empty() {
            bail!("{}: `{name}` ({}) has no images", self.op, set.name);
        }
        crate::classifier::check_pixels(set.images.view())
            .map_err(|e| anyhow::anyhow!("{}: `{name}` ({}) {e}", self.op, set.name))?;
        Ok(set)
    }

    pub fn string_or(&self, name: &str, default: &str) -> Result<String> {
        match self.values.get(name) {
            None => Ok(default.to_string()),
            Some(Value::Str(s)) => Ok(s.clone()),
            Some(other) => Err(self.wrong(name, "a string", other)),
        }
    }

    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool> {
        match self.values.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.wrong(name, "true or false", other)),
        }
    }

    /// A list of numbers (or a single number as a list of one).
    pub fn numbers(&self, name: &str) -> Result<Vec<f64>> {
        match self.required(name)? {
            Value::Number(n) => Ok(vec![*n]),
            Value::List(items) => {
                items.iter().map(|v| v.as_number().ok_or_else(|| self.wrong(name, "a list of numbers", v))).collect()
            }
            other => Err(self.wrong(name, "a list of numbers", other)),
        }
    }

    /// A list of strings or numbers shown as text, if given.
    pub fn labels(&self, name: &str) -> Result<Option<Vec<String>>> {
        match self.values.get(name) {
            None => Ok(None),
            Some(Value::List(items)) => Ok(Some(items.iter().map(Value::summary).collect())),
            Some(other) => Err(self.wrong(name, "a list", other)),
        }
    }
}

/// The largest seed: every whole number up to 2^53 is exact in an f64.
const MAX_SEED: usize = 1 << 53;

fn count_positional(op: &Operation) -> usize {
    op.params.iter().filter(|p| p.positional).count()
}

/// What a per-example operation's record is keyed by beyond its examples:
/// the call as written and the SHA-256 of each model it runs, so that a
/// merge meets the same operation on the same models.
pub(super) fn record_key(ctx: &Context, models: &[Arc<LoadedModel>]) -> String {
    let hashes: Vec<&str> = models.iter().map(|m| m.sha256.as_str()).collect();
    format!("{} [{}]", ctx.call, hashes.join(", "))
}

/// Each model's predicted class of every image of `set`, for `what`,
/// a step of `bar` per model.
pub(super) fn predictions(
    ctx: &Context,
    what: &str,
    models: &[Arc<LoadedModel>],
    set: &ImageSet,
    bar: &indicatif::ProgressBar,
) -> Result<crate::shard::columns::Predictions> {
    let (mut predicted, mut classes) = (Vec::new(), Vec::new());
    for model in models {
        ctx.check_interrupt()?;
        let (p, c) = model
            .classifier()?
            .predict_classes(set.images.view())
            .map_err(|e| anyhow::anyhow!("{what}: model {} on {}: {e:#}", model.name, set.name))?;
        predicted.push(p);
        classes.push(c);
        bar.inc(1);
    }
    Ok(crate::shard::columns::Predictions { predicted, classes })
}
