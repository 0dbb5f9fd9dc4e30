//! The values a script computes with. Results of operations that have
//! structure (an evaluation, later an adversarial set) are `Object`s: each
//! operation file defines its own result type and how it shows.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Result, bail};
use ndarray::{Array3, Array4, Axis};
use serde_json::{Value as Json, json};

use super::model::Runner;
use super::output::MimeBundle;
use crate::classifier::Classifier;
use crate::data::{Dataset, Label};
use crate::plot::Figure;
use crate::runtime::{Device, ImageInput, Preprocess};
use crate::train::manifest::Manifest;

#[derive(Clone)]
pub enum Value {
    Number(f64),
    Bool(bool),
    Str(String),
    List(Vec<Value>),
    /// `start..end`, end excluded.
    Range(f64, f64),
    /// A dataset by name (`mnist`); its splits are fields.
    Dataset(String),
    Images(Arc<ImageSet>),
    Model(Arc<LoadedModel>),
    Figure(Arc<Figure>),
    Object(Arc<dyn Object>),
}

/// Images with their labels when known: a dataset slice, noisy or
/// adversarial copies, or differences between sets.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// Where the set came from, as written (`mnist.test[0..100]`).
    pub name: String,
    /// `[N, C, H, W]`: pixels in [0, 1] when loaded (differences and
    /// magnified perturbations go outside it).
    pub images: Array4<f32>,
    pub labels: Option<Vec<Label>>,
    /// The name of each class the labels index, when the data has them;
    /// kept through slices, filters and arithmetic.
    pub classes: Option<Arc<[String]>>,
    /// Each image's index in the set it was loaded as (`mnist.test[5..9]`
    /// holds 5 to 8), kept through slices, filters, arithmetic and attacks:
    /// what a sharded run splits examples by, and what random targets and
    /// noise are drawn by, so that an example's result never depends on
    /// which other examples share its set.
    pub ids: Arc<[u64]>,
}

/// A `model NAME = onnx PATH` binding.
pub struct LoadedModel {
    pub name: String,
    pub path: PathBuf,
    /// Of the user's file, as loaded.
    pub sha256: String,
    pub manifest: Option<Manifest>,
    pub device: Device,
    /// What the model does to pixels before its first layer, as declared.
    pub preprocess: Preprocess,
    /// The user's graph's image input, or why it takes no images.
    pub(super) input: std::result::Result<ImageInput, String>,
    /// The graph advx runs ([`Runner`]): fixed at load when the
    /// declaration says the images' shape, else by the first images
    /// checked (a flat input says only their size).
    pub(super) runs: OnceLock<Runner>,
    /// The session on the user's graph, until a runner takes it.
    pub(super) unadapted: Mutex<Option<Classifier>>,
    /// Held while the runner or the backward graph is made, so each is made once.
    pub(super) making: Mutex<()>,
}

/// A structured result: named fields, a display, and data for results files.
pub trait Object: Send + Sync {
    /// What it is, for error messages ("an evaluation").
    fn kind(&self) -> &'static str;
    fn field_names(&self) -> Vec<String>;
    fn field(&self, name: &str) -> Option<Value>;
    /// Representations for `show`, each becoming one output (a table, then
    /// figures).
    fn show(&self) -> Result<Vec<Shown>>;
    fn to_json(&self) -> Json;
    /// Rows for `save ... to "x.csv"`, with the header first.
    fn csv(&self) -> Option<Vec<Vec<String>>> {
        None
    }
    /// The figure `save ... to "x.png"` writes.
    fn figure(&self) -> Option<Arc<Figure>> {
        None
    }
    /// The images this result stands for where an image set is expected
    /// (`adv - test`, `evaluate m on adv`), e.g. an attack's adversarial
    /// examples.
    fn images(&self) -> Option<Arc<ImageSet>> {
        None
    }
}

/// One representation produced by `show`: a bundle, and for figures the
/// suffix of the file name a batch run saves it under.
pub struct Shown {
    pub bundle: MimeBundle,
    pub figure: Option<String>,
}

impl Shown {
    pub fn text(bundle: MimeBundle) -> Shown {
        Shown { bundle, figure: None }
    }
}

impl Value {
    /// "a number", "an image set": for messages about wrong types.
    pub fn kind(&self) -> String {
        match self {
            Value::Number(_) => "a number".into(),
            Value::Bool(_) => "a boolean".into(),
            Value::Str(_) => "a string".into(),
            Value::List(_) => "a list".into(),
            Value::Range(..) => "a range".into(),
            Value::Dataset(_) => "a dataset".into(),
            Value::Images(_) => "an image set".into(),
            Value::Model(_) => "a model".into(),
            Value::Figure(_) => "a figure".into(),
            Value::Object(o) => o.kind().into(),
        }
    }

    pub fn to_json(&self) -> Json {
        match self {
            Value::Number(n) => number_json(*n),
            Value::Bool(b) => json!(b),
            Value::Str(s) => json!(s),
            Value::List(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Range(a, b) => json!({ "start": number_json(*a), "end": number_json(*b) }),
            Value::Dataset(name) => json!({ "dataset": name }),
            Value::Images(set) => set.to_json(),
            Value::Model(m) => m.to_json(),
            Value::Figure(f) => json!({ "figure": f.title }),
            Value::Object(o) => o.to_json(),
        }
    }

    /// The fields `.` reads from it.
    pub fn field_names(&self) -> Vec<String> {
        let names: &[&str] = match self {
            Value::Dataset(_) => &["train", "test"],
            Value::Images(_) => &["labels", "count", "shape", "classes"],
            Value::Model(_) => &["name", "path", "test_error", "train_error", "parameters"],
            Value::Object(o) => return o.field_names(),
            _ => &[],
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Plain text, as a terminal shows it. Long lists are shortened.
    pub fn summary(&self) -> String {
        match self {
            Value::Number(n) => format_number(*n),
            Value::Bool(b) => b.to_string(),
            Value::Str(s) => s.clone(),
            Value::List(items) => list_summary(items),
            Value::Range(a, b) => format!("{}..{}", format_number(*a), format_number(*b)),
            Value::Dataset(name) => format!("dataset {name} (fields: train, test)"),
            Value::Images(set) => set.summary(),
            Value::Model(m) => m.summary(),
            Value::Figure(f) => format!("[figure: {}]", f.title),
            Value::Object(o) => o.kind().to_string(),
        }
    }

    /// An image set, or a result that stands for one.
    pub fn as_images(&self) -> Option<Arc<ImageSet>> {
        match self {
            Value::Images(set) => Some(set.clone()),
            Value::Object(o) => o.images(),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

/// A script's number as recorded data: whole numbers as integers.
fn number_json(n: f64) -> Json {
    if n.fract() == 0.0 && n.abs() < 9e15 { json!(n as i64) } else { n.recorded() }
}

/// The key of the one-key object that stands for a non-finite number in
/// recorded data: `{"$float": "nan"}`, `"inf"` or `"-inf"`.
pub const FLOAT_KEY: &str = "$float";

/// Numbers as recorded data (`application/json`, what `results.yaml`
/// records). JSON has no NaN or infinity, and serde_json writes them as
/// `null`, which reads as "no value": a mean of nothing or an overflowed
/// bound would look like a missing number. So every number that goes into
/// recorded data goes through here, and a non-finite one becomes
/// `{"$float": "nan" | "inf" | "-inf"}`: still valid JSON (Jupyter's
/// bundles), not to be mistaken for a string (`"NaN"` stays a string), and
/// turned back into a YAML float by [`to_yaml`].
pub trait Recorded {
    fn recorded(&self) -> Json;
}

impl Recorded for f64 {
    fn recorded(&self) -> Json {
        match serde_json::Number::from_f64(*self) {
            Some(n) => Json::Number(n),
            None => json!({ FLOAT_KEY: non_finite_name(*self) }),
        }
    }
}

impl Recorded for f32 {
    /// As f32 (shortest digits: `0.1`, not `0.10000000149011612`).
    fn recorded(&self) -> Json {
        if self.is_finite() { json!(self) } else { (*self as f64).recorded() }
    }
}

impl<T: Recorded> Recorded for Option<T> {
    fn recorded(&self) -> Json {
        self.as_ref().map_or(Json::Null, Recorded::recorded)
    }
}

impl<T: Recorded> Recorded for [T] {
    fn recorded(&self) -> Json {
        Json::Array(self.iter().map(Recorded::recorded).collect())
    }
}

impl<T: Recorded> Recorded for Vec<T> {
    fn recorded(&self) -> Json {
        self.as_slice().recorded()
    }
}

fn non_finite_name(x: f64) -> &'static str {
    if x.is_nan() {
        "nan"
    } else if x > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

/// The number `{"$float": ...}` stands for, if `value` is one.
pub fn recorded_float(value: &Json) -> Option<f64> {
    let Json::Object(map) = value else { return None };
    if map.len() != 1 {
        return None;
    }
    match map.get(FLOAT_KEY)?.as_str()? {
        "nan" => Some(f64::NAN),
        "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Recorded data as YAML, non-finite numbers as the YAML floats `.nan`,
/// `.inf` and `-.inf`.
pub fn to_yaml(value: &Json) -> serde_yaml::Value {
    use serde_yaml::Value as Yaml;
    if let Some(x) = recorded_float(value) {
        return Yaml::Number(x.into());
    }
    match value {
        Json::Null => Yaml::Null,
        Json::Bool(b) => Yaml::Bool(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Yaml::Number(u.into()),
            (None, Some(i), _) => Yaml::Number(i.into()),
            (None, None, Some(x)) => Yaml::Number(x.into()),
            (None, None, None) => Yaml::String(n.to_string()),
        },
        Json::String(s) => Yaml::String(s.clone()),
        Json::Array(items) => Yaml::Sequence(items.iter().map(to_yaml).collect()),
        Json::Object(map) => Yaml::Mapping(map.iter().map(|(k, v)| (Yaml::String(k.clone()), to_yaml(v))).collect()),
    }
}

/// Integers without a decimal point, others with four significant digits.
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else if n != 0.0 && (n.abs() < 1e-3 || n.abs() >= 1e6) {
        format!("{n:.3e}")
    } else {
        let digits = (4 - n.abs().log10().floor() as i32 - 1).clamp(0, 8) as usize;
        format!("{n:.digits$}")
    }
}

/// The name of class `label` in `classes`, shortened to its first synonym
/// ("tench, Tinca tinca" is "tench", as ImageNet lists them); none for a
/// class without a name (or beyond the list).
pub fn short_class_name(classes: &[String], label: Label) -> Option<&str> {
    let name = classes.get(label as usize)?;
    let first = name.split(", ").next().unwrap_or(name).trim();
    (!first.is_empty()).then_some(first)
}

fn list_summary(items: &[Value]) -> String {
    const SHOWN: usize = 20;
    let mut parts: Vec<String> = items.iter().take(SHOWN).map(Value::summary).collect();
    if items.len() > SHOWN {
        parts.push(format!("… ({} values)", items.len()));
    }
    format!("[{}]", parts.join(", "))
}

impl ImageSet {
    /// A set without class names.
    pub fn new(name: impl Into<String>, images: Array4<f32>, labels: Option<Vec<Label>>) -> ImageSet {
        let ids = (0..images.len_of(Axis(0)) as u64).collect();
        ImageSet { name: name.into(), images, labels, classes: None, ids }
    }

    /// A loaded dataset (or split), named as the script writes it.
    pub fn from_dataset(name: impl Into<String>, data: Dataset) -> ImageSet {
        let classes = data.classes.map(Arc::from);
        ImageSet { classes, ..ImageSet::new(name, data.images, Some(data.labels)) }
    }

    /// Other pixels for the same examples (noisy, negated, scaled copies):
    /// the labels and class names stay.
    pub fn derived(&self, name: impl Into<String>, images: Array4<f32>) -> ImageSet {
        let (labels, classes, ids) = (self.labels.clone(), self.classes.clone(), self.ids.clone());
        ImageSet { name: name.into(), images, labels, classes, ids }
    }

    /// `[C, H, W]`, the shape of each image.
    pub fn image_shape(&self) -> [usize; 3] {
        let shape = self.images.shape();
        [shape[1], shape[2], shape[3]]
    }

    /// `[N, C, H, W]` written out, for messages.
    pub fn shape_text(&self) -> String {
        let [c, h, w] = self.image_shape();
        format!("[{}, {c}, {h}, {w}]", self.len())
    }

    /// Each image `[C, H, W]`, for figures, which draw grey (one channel) and
    /// colour (three) images; another channel count is an error naming the
    /// set's shape.
    pub fn pictures(&self) -> Result<Vec<Array3<f32>>> {
        self.check_drawable()?;
        Ok(self.images.axis_iter(Axis(0)).map(|image| image.to_owned()).collect())
    }

    /// Fails unless figures can draw the images: one channel (grey) or
    /// three (red, green, blue) each.
    pub fn check_drawable(&self) -> Result<()> {
        let [channels, ..] = self.image_shape();
        if channels != 1 && channels != 3 {
            bail!(
                "{} is {} ({channels} channels); figures draw grey images (1 channel) and colour ones (3: red, \
                 green, blue)",
                self.name,
                self.shape_text()
            );
        }
        Ok(())
    }

    /// How a caption names class `label`: the set's name for it, shortened
    /// to its first synonym ("tench, Tinca tinca" is "tench", as ImageNet
    /// lists them), or the number when the set names no classes (or not
    /// this one).
    pub fn caption(&self, label: Label) -> String {
        match self.classes.as_deref().and_then(|c| short_class_name(c, label)) {
            Some(name) => name.to_string(),
            None => label.to_string(),
        }
    }

    pub fn len(&self) -> usize {
        self.images.len_of(Axis(0))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The labels, or an error saying that `what` needs them.
    pub fn labels(&self, what: &str) -> Result<&[Label]> {
        match &self.labels {
            Some(labels) => Ok(labels),
            None => bail!("{what} needs labels, and {} has none", self.name),
        }
    }

    /// The examples at `indices`, in that order.
    pub fn select(&self, indices: &[usize], name: String) -> Result<ImageSet> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            bail!("index {bad} is outside {}, which has {} images", self.name, self.len());
        }
        let images = self.images.select(Axis(0), indices);
        let labels = self.labels.as_ref().map(|l| indices.iter().map(|&i| l[i]).collect());
        let ids = indices.iter().map(|&i| self.ids[i]).collect();
        Ok(ImageSet { name, images, labels, classes: self.classes.clone(), ids })
    }

    pub fn summary(&self) -> String {
        let shape = self.images.shape();
        let labels = match &self.labels {
            Some(l) => {
                let first: Vec<String> = l.iter().take(16).map(Label::to_string).collect();
                let more = if l.len() > 16 { " …" } else { "" };
                format!(", labels {}{more}", first.join(" "))
            }
            None => ", no labels".into(),
        };
        let size = match shape[1] {
            1 => format!("{}×{}", shape[2], shape[3]),
            c => format!("{c}×{}×{}", shape[2], shape[3]),
        };
        let classes = self.classes.as_ref().map(|c| format!(", {} named classes", c.len())).unwrap_or_default();
        format!("{}: {} images {size}{labels}{classes}", self.name, self.len())
    }

    fn to_json(&self) -> Json {
        let (lo, hi) =
            self.images.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let range = |x: f32| (!self.is_empty()).then_some(x);
        let mut recorded = json!({ "images": self.name, "count": self.len(), "shape": self.image_shape(),
                "min": range(lo).recorded(), "max": range(hi).recorded(),
                "labels": self.labels.as_ref().map(|l| l.to_vec()) });
        if let Some(classes) = &self.classes {
            recorded["classes"] = json!(classes.to_vec());
        }
        recorded
    }
}

impl LoadedModel {
    pub fn summary(&self) -> String {
        let error = match &self.manifest {
            Some(m) => format!(", test error {:.2}% (manifest)", 100.0 * m.test_error),
            None => String::new(),
        };
        let adapted = match self.adaptation() {
            Some(a) => format!(", run as {a}"),
            None => String::new(),
        };
        format!("model {} = {}{error}, on {}{adapted}", self.name, self.path.display(), self.device)
    }

    fn to_json(&self) -> Json {
        let mut json = json!({ "model": self.name, "path": self.path.display().to_string(), "sha256": self.sha256,
                "test_error": self.manifest.as_ref().map(|m| m.test_error).recorded() });
        if let Some(adaptation) = self.adaptation() {
            json["adaptation"] = json!(adaptation.to_string());
        }
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb() -> ImageSet {
        let images = Array4::from_shape_fn((3, 3, 4, 5), |(n, c, h, w)| (n * 60 + c * 20 + h * 5 + w) as f32 / 200.0);
        let classes: Arc<[String]> = (0..1200).map(|i| format!("class {i}")).collect();
        ImageSet { classes: Some(classes), ..ImageSet::new("rgb", images, Some(vec![1100, 7, 1199])) }
    }

    #[test]
    fn a_selection_keeps_labels_class_names_and_every_channel() {
        let set = rgb();
        let picked = set.select(&[2, 0], "picked".into()).unwrap();
        assert_eq!(picked.images.shape(), &[2, 3, 4, 5]);
        assert_eq!(picked.labels.as_deref(), Some(&[1199, 1100][..]));
        assert_eq!(picked.images[[0, 2, 3, 4]], set.images[[2, 2, 3, 4]]);
        assert!(Arc::ptr_eq(picked.classes.as_ref().unwrap(), set.classes.as_ref().unwrap()));
        assert!(set.select(&[3], "x".into()).is_err());
    }

    #[test]
    fn figures_draw_grey_and_colour_and_refuse_other_channel_counts_naming_the_shape() {
        let set = rgb();
        let pictures = set.pictures().unwrap();
        assert_eq!(pictures[2].dim(), (3, 4, 5));
        assert_eq!(pictures[2][[1, 3, 4]], set.images[[2, 1, 3, 4]]);
        let gray = ImageSet::new("gray", Array4::zeros((2, 1, 4, 5)), None);
        assert_eq!(gray.pictures().unwrap()[1].dim(), (1, 4, 5));
        for c in [2, 4] {
            let e = ImageSet::new("odd", Array4::zeros((2, c, 4, 5)), None).pictures().unwrap_err().to_string();
            assert!(e.contains(&format!("odd is [2, {c}, 4, 5] ({c} channels)")), "{e}");
        }
    }

    #[test]
    fn captions_name_classes_by_their_first_synonym_and_number_the_rest() {
        let names: Arc<[String]> = ["tench, Tinca tinca", "", "goldfish"].map(String::from).into();
        let set = ImageSet { classes: Some(names), ..ImageSet::new("fish", Array4::zeros((1, 3, 2, 2)), None) };
        let captions: Vec<String> = (0..4).map(|l| set.caption(l)).collect();
        assert_eq!(captions, ["tench", "1", "goldfish", "3"]);
        assert_eq!(ImageSet::new("digits", Array4::zeros((1, 1, 2, 2)), None).caption(7), "7");
    }

    #[test]
    fn recorded_data_and_summary_give_the_shape_and_class_names() {
        let set = rgb();
        let recorded = set.to_json();
        assert_eq!(recorded["shape"], json!([3, 4, 5]));
        assert_eq!(recorded["labels"], json!([1100, 7, 1199]));
        assert_eq!(recorded["classes"][1100], json!("class 1100"));
        assert_eq!(set.summary(), "rgb: 3 images 3×4×5, labels 1100 7 1199, 1200 named classes");
        let gray = ImageSet::new("gray", Array4::zeros((1, 1, 28, 28)), None);
        assert_eq!(gray.summary(), "gray: 1 images 28×28, no labels");
        assert!(gray.to_json().get("classes").is_none());
    }
}
