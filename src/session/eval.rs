//! Evaluating expressions. Errors carry the span of the innermost
//! expression that failed, so the diagnostic points at it.

use std::sync::Arc;

use anyhow::{Result, anyhow, bail};

use super::ops::{self, Args};
use super::value::{ImageSet, Value};
use super::{Context, Session};
use crate::data::{self, Split};
use crate::lang::ast::{Arg, BinaryOp, Expr, ExprKind, Ident, Span, UnaryOp};
use crate::lang::error::suggestion;

pub struct EvalError {
    pub span: Span,
    pub error: anyhow::Error,
}

pub type EvalResult<T> = std::result::Result<T, EvalError>;

fn at<T>(span: &Span, result: Result<T>) -> EvalResult<T> {
    result.map_err(|error| EvalError { span: span.clone(), error })
}

impl Session {
    pub(super) fn eval(&mut self, expr: &Expr, src: &str) -> EvalResult<Value> {
        let span = &expr.span;
        match &expr.kind {
            ExprKind::Number(n) => Ok(Value::Number(*n)),
            ExprKind::Str(s) => Ok(Value::Str(s.clone())),
            ExprKind::Bool(b) => Ok(Value::Bool(*b)),
            ExprKind::Name(name) => at(span, self.lookup(name)),
            ExprKind::List(items) => {
                Ok(Value::List(items.iter().map(|e| self.eval(e, src)).collect::<EvalResult<_>>()?))
            }
            ExprKind::Range { start, end } => {
                let (a, b) = (self.eval(start, src)?, self.eval(end, src)?);
                match (a, b) {
                    (Value::Number(a), Value::Number(b)) => Ok(Value::Range(a, b)),
                    (a, b) => at(span, Err(anyhow!("a range needs numbers, not {} and {}", a.kind(), b.kind()))),
                }
            }
            ExprKind::Unary { op, operand } => {
                let value = self.eval(operand, src)?;
                at(span, unary(*op, value, text(src, span)))
            }
            ExprKind::Binary { op: BinaryOp::And | BinaryOp::Or, .. } => self.logical(expr, src),
            ExprKind::Binary { op, left, right } => {
                let (l, r) = (self.eval(left, src)?, self.eval(right, src)?);
                at(span, binary(*op, l, r, text(src, span)))
            }
            ExprKind::Field { target, field } => {
                let value = self.eval(target, src)?;
                at(&field.span, self.field(value, field))
            }
            ExprKind::Index { target, index } => {
                let (value, index_value) = (self.eval(target, src)?, self.eval(index, src)?);
                at(span, index_into(value, index_value))
            }
            ExprKind::Call { op, args } => self.call(op, args, span, src),
            ExprKind::Where { data, predicate } => {
                let value = self.eval(data, src)?;
                self.filter(value, predicate, span, src)
            }
        }
    }

    fn lookup(&self, name: &str) -> Result<Value> {
        if let Some((_, value)) = self.locals.iter().rev().find(|(n, _)| n == name) {
            return Ok(value.clone());
        }
        if let Some(value) = self.bindings.get(name) {
            return Ok(value.clone());
        }
        if let Some(known) = data::by_script_name(name) {
            return Ok(Value::Dataset(known.name.to_string()));
        }
        if ops::find(name).is_some() {
            bail!("`{name}` is an operation: call it, e.g. `{name}(...)`");
        }
        let help = suggestion(name, &self.known_names()).map(|s| format!("; {s}")).unwrap_or_default();
        bail!("unknown name `{name}`{help}")
    }

    fn logical(&mut self, expr: &Expr, src: &str) -> EvalResult<Value> {
        let ExprKind::Binary { op, left, right } = &expr.kind else { unreachable!("logical of a non-binary") };
        let l = truth(self.eval(left, src)?, &left.span)?;
        if (*op == BinaryOp::And && !l) || (*op == BinaryOp::Or && l) {
            return Ok(Value::Bool(l));
        }
        Ok(Value::Bool(truth(self.eval(right, src)?, &right.span)?))
    }

    fn field(&mut self, value: Value, field: &Ident) -> Result<Value> {
        let name = field.name.as_str();
        let found = match &value {
            Value::Dataset(dataset) => Some(self.dataset(dataset, name)?),
            Value::Images(set) => match name {
                "labels" => {
                    Some(Value::List(set.labels("`labels`")?.iter().map(|&l| Value::Number(l.into())).collect()))
                }
                "count" => Some(Value::Number(set.len() as f64)),
                "shape" => Some(Value::List(set.image_shape().iter().map(|&d| Value::Number(d as f64)).collect())),
                "classes" => set.classes.as_ref().map(|c| Value::List(c.iter().cloned().map(Value::Str).collect())),
                _ => None,
            },
            Value::Model(m) => match name {
                "name" => Some(Value::Str(m.name.clone())),
                "path" => Some(Value::Str(m.path.display().to_string())),
                "test_error" => m.manifest.as_ref().map(|x| Value::Number(x.test_error)),
                "train_error" => m.manifest.as_ref().map(|x| Value::Number(x.train_error)),
                "parameters" => m.manifest.as_ref().map(|x| Value::Number(x.parameters as f64)),
                _ => None,
            },
            Value::Object(object) => object.field(name),
            _ => None,
        };
        found.ok_or_else(|| {
            let fields = value.field_names();
            let help = suggestion(name, &fields).map(|s| format!("; {s}")).unwrap_or_default();
            let listing = if fields.is_empty() { "no fields".into() } else { format!("fields {}", fields.join(", ")) };
            anyhow!("{} has no field `{name}` ({listing}){help}", value.kind())
        })
    }

    /// `mnist.test`: loaded once per session.
    fn dataset(&mut self, dataset: &str, split: &str) -> Result<Value> {
        let split: Split =
            split.parse().map_err(|_| anyhow!("dataset {dataset} has splits `train` and `test`, not `{split}`"))?;
        let key = format!("{}.{split}", data::known_dataset(dataset)?.script_name);
        if let Some(set) = self.datasets.get(&key) {
            return Ok(Value::Images(set.clone()));
        }
        let set = Arc::new(ImageSet::from_dataset(key.clone(), data::load(dataset, split)?));
        self.datasets.insert(key, set.clone());
        Ok(Value::Images(set))
    }

    fn call(&mut self, op: &Ident, args: &[Arg], span: &Span, src: &str) -> EvalResult<Value> {
        let Some(operation) = ops::find(&op.name) else {
            let help = suggestion(&op.name, &ops::names()).map(|s| format!("; {s}")).unwrap_or_default();
            return at(&op.span, Err(anyhow!("unknown operation `{}`{help}", op.name)));
        };
        let (mut positional, mut named) = (Vec::new(), Vec::new());
        for arg in args {
            let value = self.eval(&arg.value, src)?;
            let written = text(src, &arg.value.span);
            match &arg.name {
                Some(name) => named.push((name.name.clone(), value, written)),
                None => positional.push((value, written)),
            }
        }
        let mut bound = at(span, Args::bind(operation, positional, named))?;
        let mut context = Context {
            call: text(src, span),
            progress: self.progress.clone(),
            base_dir: self.base_dir.clone(),
            sharding: self.sharding.clone(),
        };
        at(span, (operation.run)(&mut bound, &mut context))
    }

    fn filter(&mut self, value: Value, predicate: &Expr, span: &Span, src: &str) -> EvalResult<Value> {
        let Value::Images(set) = as_operand(value.clone()) else {
            return at(span, Err(anyhow!("`where` filters image sets, not {}", value.kind())));
        };
        let labels = at(span, set.labels("`where`"))?.to_vec();
        let mut keep = Vec::new();
        for (index, label) in labels.into_iter().enumerate() {
            self.locals.push(("label".into(), Value::Number(label.into())));
            self.locals.push(("index".into(), Value::Number(index as f64)));
            let verdict = self.eval(predicate, src);
            self.locals.truncate(self.locals.len() - 2);
            if truth(verdict?, &predicate.span)? {
                keep.push(index);
            }
        }
        let name = format!("{} where {}", set.name, text(src, &predicate.span));
        at(span, set.select(&keep, name).map(|s| Value::Images(Arc::new(s))))
    }
}

fn text(src: &str, span: &Span) -> String {
    src.get(span.clone()).unwrap_or("").to_string()
}

fn truth(value: Value, span: &Span) -> EvalResult<bool> {
    match value {
        Value::Bool(b) => Ok(b),
        other => at(span, Err(anyhow!("expected true or false, got {}", other.kind()))),
    }
}

fn unary(op: UnaryOp, value: Value, written: String) -> Result<Value> {
    match (op, value) {
        (UnaryOp::Neg, Value::Number(n)) => Ok(Value::Number(-n)),
        (UnaryOp::Neg, Value::Images(set)) => Ok(images(set.derived(written, set.images.mapv(|v| -v)))),
        (UnaryOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
        (UnaryOp::Neg, other) => bail!("cannot negate {}", other.kind()),
        (UnaryOp::Not, other) => bail!("`not` needs true or false, not {}", other.kind()),
    }
}

fn images(set: ImageSet) -> Value {
    Value::Images(Arc::new(set))
}

/// Results that stand for images (an attack's examples) compute as images.
fn as_operand(value: Value) -> Value {
    match value.as_images() {
        Some(set) if matches!(value, Value::Object(_)) => Value::Images(set),
        _ => value,
    }
}

fn binary(op: BinaryOp, left: Value, right: Value, written: String) -> Result<Value> {
    use BinaryOp::*;
    let (left, right) = (as_operand(left), as_operand(right));
    use Value::{Bool, Images, Number, Str};
    Ok(match (op, left, right) {
        (Add | Sub | Mul | Div, Number(a), Number(b)) => Number(arithmetic(op, a, b)),
        (Add, Str(a), Str(b)) => Str(a + &b),
        (Add | Sub | Mul | Div, Images(a), Images(b)) => {
            if a.images.shape() != b.images.shape() {
                bail!("{} ({}) and {} ({}) differ in shape", a.name, a.shape_text(), b.name, b.shape_text());
            }
            let mut pixels = a.images.clone();
            pixels.zip_mut_with(&b.images, |x, &y| *x = arithmetic(op, *x as f64, y as f64) as f32);
            images(a.derived(written, pixels))
        }
        (Add | Sub | Mul | Div, Number(n), Images(set)) => {
            images(set.derived(written, set.images.mapv(|v| arithmetic(op, n, v as f64) as f32)))
        }
        (Add | Sub | Mul | Div, Images(set), Number(n)) => {
            images(set.derived(written, set.images.mapv(|v| arithmetic(op, v as f64, n) as f32)))
        }
        (Eq, a, b) => Bool(equal(&a, &b)),
        (Ne, a, b) => Bool(!equal(&a, &b)),
        (Lt | Le | Gt | Ge, Number(a), Number(b)) => Bool(match op {
            Lt => a < b,
            Le => a <= b,
            Gt => a > b,
            _ => a >= b,
        }),
        (In, item, Value::List(items)) => Bool(items.iter().any(|x| equal(&item, x))),
        (In, Number(x), Value::Range(a, b)) => Bool(a <= x && x < b),
        (op, a, b) => bail!("cannot apply `{op}` to {} and {}", a.kind(), b.kind()),
    })
}

fn arithmetic(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        _ => a / b,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::List(x), Value::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b)),
        _ => false,
    }
}

fn index_into(value: Value, index: Value) -> Result<Value> {
    match (as_operand(value), index) {
        (Value::Images(set), index) => {
            let picked = positions(&index, set.len(), &set.name)?;
            Ok(Value::Images(Arc::new(set.select(&picked, slice_name(&set.name, &index))?)))
        }
        (Value::List(items), Value::Number(n)) => {
            let i = whole(n, items.len())?;
            items.get(i).cloned().ok_or_else(|| anyhow!("index {i} is outside a list of {}", items.len()))
        }
        (Value::List(items), index @ Value::Range(..)) => {
            let picked = positions(&index, items.len(), "the list")?;
            Ok(Value::List(picked.into_iter().map(|i| items[i].clone()).collect()))
        }
        (value, index) => bail!("cannot index {} with {}", value.kind(), index.kind()),
    }
}

/// `mnist.test[0..1000]` sliced by `0..16` is `mnist.test[0..16]`: names
/// say which examples a set holds, with the values used, not the variables.
fn slice_name(base: &str, index: &Value) -> String {
    let inner = base.strip_suffix(']').and_then(|b| b.rsplit_once('[')).and_then(|(stem, range)| {
        let (a, _) = range.split_once("..")?;
        Some((stem, a.parse::<f64>().ok()?))
    });
    match (inner, index) {
        (Some((stem, offset)), Value::Range(a, b)) => format!("{stem}[{}..{}]", offset + a, offset + b),
        _ => format!("{base}[{}]", index.summary()),
    }
}

/// The positions a number, range or list of numbers picks from `len` items.
fn positions(index: &Value, len: usize, what: &str) -> Result<Vec<usize>> {
    let picked: Vec<usize> = match index {
        Value::Number(n) => vec![whole(*n, len)?],
        Value::Range(a, b) => {
            let (a, b) = (whole(*a, usize::MAX)?, whole(*b, usize::MAX)?);
            if a > b || b > len {
                bail!("{a}..{b} is outside {what}, which has {len} items");
            }
            (a..b).collect()
        }
        Value::List(items) => items
            .iter()
            .map(|v| v.as_number().ok_or_else(|| anyhow!("indices must be numbers")).and_then(|n| whole(n, len)))
            .collect::<Result<_>>()?,
        other => bail!("cannot index with {}", other.kind()),
    };
    if let Some(bad) = picked.iter().find(|&&i| i >= len) {
        bail!("index {bad} is outside {what}, which has {len} items");
    }
    Ok(picked)
}

fn whole(n: f64, len: usize) -> Result<usize> {
    if n.fract() != 0.0 || n < 0.0 || !n.is_finite() {
        bail!("an index must be a whole number from 0, not {n}");
    }
    if len != usize::MAX && n >= len as f64 {
        bail!("index {n} is outside {len} items");
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    fn named(n: usize) -> Arc<ImageSet> {
        let classes: Arc<[String]> = ["cat", "dog"].map(String::from).into();
        let images = Array4::from_elem((n, 3, 2, 2), 0.5);
        Arc::new(ImageSet { classes: Some(classes), ..ImageSet::new("pets", images, Some(vec![1; n])) })
    }

    fn set_of(value: Value) -> Arc<ImageSet> {
        value.as_images().expect("an image set")
    }

    #[test]
    fn arithmetic_slices_and_negation_keep_labels_and_class_names() {
        let set = named(3);
        let results = [
            binary(BinaryOp::Mul, Value::Number(2.0), Value::Images(set.clone()), "2 * pets".into()).unwrap(),
            binary(BinaryOp::Sub, Value::Images(set.clone()), Value::Images(set.clone()), "d".into()).unwrap(),
            unary(UnaryOp::Neg, Value::Images(set.clone()), "-pets".into()).unwrap(),
            index_into(Value::Images(set.clone()), Value::Range(1.0, 3.0)).unwrap(),
        ];
        for result in results {
            let got = set_of(result);
            assert_eq!(got.image_shape(), [3, 2, 2], "{}", got.name);
            assert_eq!(got.classes.as_deref(), set.classes.as_deref(), "{}", got.name);
            assert!(got.labels.as_ref().is_some_and(|l| l.iter().all(|&l| l == 1)), "{}", got.name);
        }
    }

    #[test]
    fn sets_of_different_shapes_do_not_combine() {
        let gray = Value::Images(Arc::new(ImageSet::new("gray", Array4::zeros((3, 1, 2, 2)), None)));
        let e = binary(BinaryOp::Add, Value::Images(named(3)), gray, "x".into()).unwrap_err().to_string();
        assert!(e.contains("pets ([3, 3, 2, 2]) and gray ([3, 1, 2, 2]) differ in shape"), "{e}");
    }
}
