//! Per-example results as named columns, the form a shard records them in
//! and a merge gathers them from: every column's first axis is the
//! examples, so one example's results are one row of each.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use ndarray::{ArrayD, Axis, IxDyn};

/// One column: numbers of one type, `[examples, ...]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    I64(ArrayD<i64>),
}

impl Column {
    pub fn rows(&self) -> usize {
        match self {
            Column::F32(a) => a.len_of(Axis(0)),
            Column::F64(a) => a.len_of(Axis(0)),
            Column::I64(a) => a.len_of(Axis(0)),
        }
    }

    /// Row `pick.1` of `sources[pick.0]` for each pick, in order. A source
    /// without rows (a shard that owned no example) may have any shape.
    fn gather(sources: &[&Column], picks: &[(usize, usize)]) -> Result<Column> {
        let filled: Vec<&Column> = sources.iter().copied().filter(|c| c.rows() > 0).collect();
        let reference = filled.first().copied().unwrap_or(sources[0]);
        if filled.iter().any(|c| c.inner_shape() != reference.inner_shape()) {
            bail!("the shards recorded rows of different shapes");
        }
        let mut shape = vec![picks.len()];
        shape.extend(reference.inner_shape());
        Ok(match reference {
            Column::F32(_) => Column::F32(take(&shape, &typed(sources, |c| as_f32(c))?, picks)),
            Column::F64(_) => Column::F64(take(&shape, &typed(sources, |c| as_f64(c))?, picks)),
            Column::I64(_) => Column::I64(take(&shape, &typed(sources, |c| as_i64(c))?, picks)),
        })
    }

    /// The shape of one row.
    fn inner_shape(&self) -> &[usize] {
        match self {
            Column::F32(a) => &a.shape()[1..],
            Column::F64(a) => &a.shape()[1..],
            Column::I64(a) => &a.shape()[1..],
        }
    }
}

fn as_f32(c: &Column) -> Option<&ArrayD<f32>> {
    if let Column::F32(a) = c { Some(a) } else { None }
}

fn as_f64(c: &Column) -> Option<&ArrayD<f64>> {
    if let Column::F64(a) = c { Some(a) } else { None }
}

fn as_i64(c: &Column) -> Option<&ArrayD<i64>> {
    if let Column::I64(a) = c { Some(a) } else { None }
}

/// An array of `shape` whose rows are the picked rows of `arrays`.
fn take<T: Clone + Default>(shape: &[usize], arrays: &[&ArrayD<T>], picks: &[(usize, usize)]) -> ArrayD<T> {
    let mut out = ArrayD::default(IxDyn(shape));
    for (k, &(source, row)) in picks.iter().enumerate() {
        out.index_axis_mut(Axis(0), k).assign(&arrays[source].index_axis(Axis(0), row));
    }
    out
}

fn typed<'a, T>(
    sources: &[&'a Column],
    get: impl Fn(&'a Column) -> Option<&'a ArrayD<T>>,
) -> Result<Vec<&'a ArrayD<T>>> {
    sources
        .iter()
        .map(|c| get(c).ok_or_else(|| anyhow::anyhow!("the shards recorded a column with different types")))
        .collect()
}

/// Named columns of equal length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns(pub BTreeMap<String, Column>);

impl Columns {
    pub fn rows(&self) -> usize {
        self.0.values().next().map_or(0, Column::rows)
    }

    pub fn put(&mut self, name: &str, column: Column) {
        self.0.insert(name.to_string(), column);
    }

    pub fn f32(&self, name: &str) -> Result<&ArrayD<f32>> {
        match self.0.get(name) {
            Some(Column::F32(a)) => Ok(a),
            _ => bail!("the recorded results have no f32 column `{name}`"),
        }
    }

    pub fn f64(&self, name: &str) -> Result<&ArrayD<f64>> {
        match self.0.get(name) {
            Some(Column::F64(a)) => Ok(a),
            _ => bail!("the recorded results have no f64 column `{name}`"),
        }
    }

    pub fn i64(&self, name: &str) -> Result<&ArrayD<i64>> {
        match self.0.get(name) {
            Some(Column::I64(a)) => Ok(a),
            _ => bail!("the recorded results have no integer column `{name}`"),
        }
    }

    /// The rows `picks` name, `(source, row)` each, from columns of the
    /// same names in every source.
    pub fn gather(sources: &[&Columns], picks: &[(usize, usize)]) -> Result<Columns> {
        let Some(first) = sources.first() else { return Ok(Columns::default()) };
        let mut out = Columns::default();
        for name in first.0.keys() {
            let columns: Vec<&Column> = sources
                .iter()
                .map(|s| s.0.get(name).ok_or_else(|| anyhow::anyhow!("a shard recorded no column `{name}`")))
                .collect::<Result<_>>()?;
            out.put(name, Column::gather(&columns, picks)?);
        }
        Ok(out)
    }
}

/// A per-example result that a shard can record and a merge rebuild: its
/// rows as columns, and back.
pub trait Rows: Sized {
    fn to_columns(&self) -> Columns;
    fn from_columns(columns: &Columns) -> Result<Self>;
    /// Whether it holds every example asked for; a part (an interrupted
    /// attack) is not recorded.
    fn complete(&self) -> bool {
        true
    }
}

/// Whole numbers (classes, counts) as a column.
pub fn integers(values: impl IntoIterator<Item = i64>) -> Column {
    let values: Vec<i64> = values.into_iter().collect();
    Column::I64(ArrayD::from_shape_vec(IxDyn(&[values.len()]), values).expect("one axis"))
}

/// Real numbers as a column.
pub fn reals(values: impl IntoIterator<Item = f64>) -> Column {
    let values: Vec<f64> = values.into_iter().collect();
    Column::F64(ArrayD::from_shape_vec(IxDyn(&[values.len()]), values).expect("one axis"))
}

/// The predicted class of each example by each of several models, and
/// how many classes each model has: what `evaluate`, `predict` and
/// `transfer` record.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// `predicted[model][example]`.
    pub predicted: Vec<Vec<usize>>,
    /// The class count of each model's scores (0 when it saw no images).
    pub classes: Vec<usize>,
}

impl Rows for Predictions {
    /// A column of predictions per model, and one of its class count (the
    /// same in every row, so that rows from any shard carry it).
    fn to_columns(&self) -> Columns {
        let mut columns = Columns::default();
        for (m, (predicted, &classes)) in self.predicted.iter().zip(&self.classes).enumerate() {
            columns.put(&format!("model{m:03}"), integers(predicted.iter().map(|&c| c as i64)));
            columns.put(&format!("classes{m:03}"), integers(predicted.iter().map(|_| classes as i64)));
        }
        columns
    }

    fn from_columns(columns: &Columns) -> Result<Self> {
        let models = columns.0.len() / 2;
        let (mut predicted, mut classes) = (Vec::new(), Vec::new());
        for m in 0..models {
            predicted.push(columns.i64(&format!("model{m:03}"))?.iter().map(|&c| c.max(0) as usize).collect());
            classes.push(columns.i64(&format!("classes{m:03}"))?.iter().map(|&c| c.max(0) as usize).max().unwrap_or(0));
        }
        Ok(Predictions { predicted, classes })
    }
}

/// A matrix of f32 rows (activations, class scores).
impl Rows for ndarray::Array2<f32> {
    fn to_columns(&self) -> Columns {
        let mut columns = Columns::default();
        columns.put("rows", Column::F32(self.clone().into_dyn()));
        columns
    }

    fn from_columns(columns: &Columns) -> Result<Self> {
        Ok(columns.f32("rows")?.clone().into_dimensionality()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathering_takes_rows_from_each_source_in_the_order_asked() {
        let a = Predictions { predicted: vec![vec![1, 2, 3]], classes: vec![10] }.to_columns();
        let b = Predictions { predicted: vec![vec![7, 8]], classes: vec![10] }.to_columns();
        let merged = Columns::gather(&[&a, &b], &[(1, 1), (0, 0), (1, 0)]).unwrap();
        let expected = Predictions { predicted: vec![vec![8, 1, 7]], classes: vec![10] };
        assert_eq!(Predictions::from_columns(&merged).unwrap(), expected);
    }

    #[test]
    fn rows_of_another_shape_or_type_are_refused() {
        let a = ndarray::Array2::<f32>::zeros((2, 3)).to_columns();
        let b = ndarray::Array2::<f32>::zeros((2, 4)).to_columns();
        assert!(Columns::gather(&[&a, &b], &[(0, 0), (1, 0)]).is_err());
        let c = Predictions { predicted: vec![vec![1, 2]], classes: vec![3] }.to_columns();
        let mut renamed = Columns::default();
        renamed.put("rows", c.0["model000"].clone());
        assert!(Columns::gather(&[&a, &renamed], &[(0, 0)]).is_err());
    }
}
