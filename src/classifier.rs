//! A model used as a classifier of images: class scores, predictions and
//! error rates, computed in batches.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ndarray::{Array2, ArrayView4, Axis, Ix2};

use crate::data::Label;
use crate::runtime::{Device, Feed, ImageInput, Layout, Model, Runtime, check_finite};

/// Images per ONNX Runtime call when evaluating.
pub const BATCH: usize = 1000;

/// An ONNX model whose first input takes `[N, C, H, W]` pixels and whose
/// first output gives `[N, classes]` scores (logits or probabilities).
pub struct Classifier {
    model: Model,
    /// What the first input takes, or why it takes no images (said when
    /// images are given, so such a model still loads).
    image_input: std::result::Result<ImageInput, String>,
    output: String,
}

/// Errors of a classifier on a labelled set.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// `confusion[true][predicted]`: counts of each label pair.
    pub confusion: Vec<Vec<usize>>,
}

impl Classifier {
    /// Loads an ONNX classifier.
    pub fn load(path: &Path, device: Device) -> Result<Classifier> {
        Self::new(Runtime::get()?.load(path, device)?)
    }

    /// [`load`](Self::load) into a session of `threads` intra-op threads.
    pub fn load_with_threads(path: &Path, device: Device, threads: usize) -> Result<Classifier> {
        Self::new(Runtime::get()?.load_with_threads(path, device, threads)?)
    }

    /// Wraps a loaded model, taking its first input and first output.
    pub fn new(model: Model) -> Result<Classifier> {
        let image_input = model.image_input().map_err(|e| e.to_string());
        let output =
            model.output_names().into_iter().next().with_context(|| format!("{} has no outputs", model.name()))?;
        Ok(Classifier { model, image_input, output })
    }

    /// Reads the input's layout from the graph too (a Transpose at the
    /// input makes it channels last, whatever its channel count).
    pub fn seen_in(mut self, graph: &crate::onnx::GraphProto) -> Classifier {
        self.image_input = self.image_input.map(|input| input.seen_in(graph));
        self
    }

    /// Fails, before any work, unless images shaped `shape` fit the
    /// model's input as they are, naming the model (`model`, as the user
    /// calls it), both shapes and the set. A graph that takes channels
    /// last or flat images runs adapted (`runtime::Adaptation`), which
    /// `session::LoadedModel` and `advx eval` do.
    pub fn check_images(&self, model: &str, set: &str, shape: &[usize]) -> Result<()> {
        let input = self.image_input.as_ref().map_err(|why| anyhow::anyhow!("{why}"))?;
        input.check(model, set, shape)?;
        match input.layout {
            Layout::Nchw { .. } => Ok(()),
            _ => bail!("{model} takes {input} inputs, which advx feeds through an adapted graph; load it as a model"),
        }
    }

    /// What the first input takes, or why it takes no images.
    pub fn image_input(&self) -> std::result::Result<ImageInput, String> {
        self.image_input.clone()
    }

    /// The underlying model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Class scores for a batch of images, checked to be finite and
    /// shaped `[N, classes]`.
    pub fn scores(&mut self, images: ArrayView4<f32>) -> Result<Array2<f32>> {
        let name = self.model.name().to_string();
        self.check_images(&name, "the batch", images.shape())?;
        let input = self.image_input.as_ref().map_err(|why| anyhow::anyhow!("{why}"))?.name.clone();
        let images = images.as_standard_layout();
        let feeds = [(input.as_str(), Feed::F32(images.view().into_dyn()))];
        let mut outputs = self.model.run(&feeds)?;
        let scores = outputs.take(&self.output)?;
        check_finite(self.model.name(), &self.output, &scores.view())?;
        let got = scores.shape().to_vec();
        scores.into_dimensionality::<Ix2>().ok().filter(|s| s.nrows() == images.shape()[0]).with_context(|| {
            format!(
                "{}: output '{}' is shaped {got:?} for {} images; a classifier's first output must be [N, classes]",
                self.model.name(),
                self.output,
                images.shape()[0]
            )
        })
    }

    /// The predicted class of every image, in batches of [`BATCH`].
    pub fn predict(&mut self, images: ArrayView4<f32>) -> Result<Vec<usize>> {
        Ok(self.predict_classes(images)?.0)
    }

    /// The predictions and the number of classes the scores have (0 when
    /// there are no images).
    pub fn predict_classes(&mut self, images: ArrayView4<f32>) -> Result<(Vec<usize>, usize)> {
        let mut predictions = Vec::with_capacity(images.shape()[0]);
        let mut classes = 0;
        for chunk in images.axis_chunks_iter(Axis(0), BATCH) {
            crate::interrupt::check()?;
            let scores = self.scores(chunk)?;
            classes = scores.ncols();
            if classes < 2 {
                bail!(
                    "{}: output '{}' gives {classes} score per image, and a prediction needs at least 2 classes",
                    self.model.name(),
                    self.output
                );
            }
            predictions.extend(scores.rows().into_iter().map(|row| argmax(row.iter().copied())));
        }
        Ok((predictions, classes))
    }

    /// The confusion table on labelled images, one row and column per
    /// class of the model's scores. A label the model has no class for is
    /// an error rather than a row the table would make up.
    pub fn evaluate(&mut self, images: ArrayView4<f32>, labels: &[Label]) -> Result<Evaluation> {
        let name = self.model.name().to_string();
        if images.shape()[0] != labels.len() {
            bail!("{} images but {} labels", images.shape()[0], labels.len());
        }
        if labels.is_empty() {
            bail!("no images to evaluate {name} on");
        }
        let (predictions, classes) = self.predict_classes(images)?;
        Evaluation::of(&name, &predictions, classes, labels)
    }
}

/// Fails unless every pixel lies in [0, 1], the box models are trained
/// and attacked in, saying how many do not and the range found.
pub fn check_pixels(images: ArrayView4<f32>) -> Result<()> {
    let inside = |v: &f32| (0.0..=1.0).contains(v);
    if images.iter().all(inside) {
        return Ok(());
    }
    let outside = images.iter().filter(|v| !inside(v)).count();
    let nan = images.iter().filter(|v| v.is_nan()).count();
    let (lo, hi) = images
        .iter()
        .filter(|v| !v.is_nan())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let found = match (nan, lo <= hi) {
        (0, _) => format!("values from {lo} to {hi}"),
        (_, true) => format!("{nan} NaN and values from {lo} to {hi}"),
        (_, false) => "only NaN".to_string(),
    };
    bail!("has {outside} of {} pixel values outside [0, 1] (found {found}); models take pixels in [0, 1]", images.len())
}

/// The index of the largest value (the first on ties).
pub fn argmax(values: impl Iterator<Item = f32>) -> usize {
    values.enumerate().fold((0, f32::NEG_INFINITY), |best, (i, v)| if v > best.1 { (i, v) } else { best }).0
}

impl Evaluation {
    /// The confusion table of `model`'s predictions of `classes` classes.
    pub fn of(model: &str, predictions: &[usize], classes: usize, labels: &[Label]) -> Result<Evaluation> {
        if let Some((i, &label)) = labels.iter().enumerate().find(|&(_, &l)| l as usize >= classes) {
            bail!(
                "image {i} is labelled {label}, but {model} has {classes} classes (0 to {}): \
                 the labels are not this model's",
                classes.saturating_sub(1)
            );
        }
        let mut confusion = vec![vec![0; classes]; classes];
        for (&p, &l) in predictions.iter().zip(labels) {
            confusion[l as usize][p] += 1;
        }
        Ok(Evaluation { confusion })
    }

    /// Images evaluated.
    pub fn total(&self) -> usize {
        self.confusion.iter().flatten().sum()
    }

    /// Misclassified images.
    pub fn errors(&self) -> usize {
        self.total() - (0..self.confusion.len()).map(|i| self.confusion[i][i]).sum::<usize>()
    }

    /// The fraction misclassified.
    pub fn error_rate(&self) -> f64 {
        self.errors() as f64 / self.total().max(1) as f64
    }

    /// The error rate among images of each true class: NaN for a class
    /// no image has, whose rate is unknown rather than 0.
    pub fn per_class_error(&self) -> Vec<f64> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let n: usize = row.iter().sum();
                if n == 0 { f64::NAN } else { (n - row[i]) as f64 / n as f64 }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax([0.1, 0.7, 0.7, 0.2].into_iter()), 1);
        assert_eq!(argmax([f32::NAN, 0.5].into_iter()), 1);
    }

    #[test]
    fn error_rates_come_from_the_confusion_table() {
        let mut confusion = vec![vec![0; 10]; 10];
        confusion[0][0] = 8;
        confusion[0][3] = 2;
        confusion[1][1] = 10;
        let e = Evaluation { confusion };
        assert_eq!((e.total(), e.errors()), (20, 2));
        assert!((e.error_rate() - 0.1).abs() < 1e-12);
        assert!((e.per_class_error()[0] - 0.2).abs() < 1e-12);
        assert!(e.per_class_error()[2].is_nan(), "no image of class 2: its error rate is unknown");
    }

    #[test]
    fn pixels_outside_the_box_are_counted_with_their_range() {
        let mut images = ndarray::Array4::<f32>::from_elem((2, 1, 2, 2), 0.5);
        assert!(check_pixels(images.view()).is_ok());
        images[[0, 0, 0, 0]] = -0.25;
        images[[1, 0, 1, 1]] = 1.5;
        let e = check_pixels(images.view()).unwrap_err().to_string();
        assert!(e.contains("2 of 8 pixel values outside [0, 1]") && e.contains("from -0.25 to 1.5"), "{e}");
        images[[1, 0, 0, 0]] = f32::NAN;
        let e = check_pixels(images.view()).unwrap_err().to_string();
        assert!(e.contains("3 of 8") && e.contains("1 NaN and values from -0.25 to 1.5"), "{e}");
    }
}
