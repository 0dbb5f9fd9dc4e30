//! Training recipes: the YAML files in `models/` that say how each of the
//! paper's networks is made.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::grad::Reconstruction;

/// A recipe, as written in `models/<dataset>/<name>.recipe.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The model's name; the trained files are `<name>.onnx` and `<name>.yaml`.
    pub name: String,
    /// One line for tables and `advx info`.
    #[serde(default)]
    pub description: String,
    /// The training dataset (`mnist` or `fashion-mnist`).
    #[serde(default = "default_dataset")]
    pub dataset: String,
    /// The training images used, as `[start, end)` of the training split
    /// (the paper's P1 is `[0, 30000]`, P2 `[30000, 60000]`).
    #[serde(default)]
    pub subset: Option<[usize; 2]>,
    /// The layers after the `[N, 1, 28, 28]` input, in order, each written
    /// as a one-key map (`- dense: {units: 100}`).
    #[serde(with = "serde_yaml::with::singleton_map_recursive")]
    pub layers: Vec<Layer>,
    /// Greedy pre-training of the first dense layer as an autoencoder.
    #[serde(default)]
    pub pretrain: Option<Pretrain>,
    pub optimizer: Optimizer,
    pub seed: u64,
    /// What the paper reports for this model, for side-by-side tables.
    #[serde(default)]
    pub paper: Option<PaperFigures>,
}

fn default_dataset() -> String {
    "mnist".into()
}

/// A layer of the network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Layer {
    /// A fully connected layer (flattens its input first).
    Dense {
        units: usize,
        #[serde(default)]
        activation: Activation,
        /// L2 penalty coefficient λ on the weights (not the bias); see [`Optimizer`].
        #[serde(default)]
        weight_decay: f32,
    },
    /// A 2-D convolution, stride 1.
    Conv {
        filters: usize,
        kernel: usize,
        #[serde(default)]
        pad: usize,
        #[serde(default)]
        activation: Activation,
        #[serde(default)]
        weight_decay: f32,
    },
    /// Max pooling with a square window and the same stride.
    MaxPool { size: usize },
}

/// An elementwise activation after a layer.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// No activation: the last layer's class scores.
    #[default]
    None,
    Sigmoid,
    Relu,
    Tanh,
}

/// Autoencoder pre-training of the first dense layer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pretrain {
    /// `bce` (binary cross-entropy) or `mse`, summed over pixels.
    pub loss: String,
    pub optimizer: Optimizer,
    /// Train only the classifier on the frozen code for this many epochs
    /// before fine-tuning the whole network with the main optimizer.
    #[serde(default)]
    pub classifier_epochs: usize,
}

impl Pretrain {
    /// The reconstruction loss `loss` names.
    pub fn reconstruction(&self) -> Reconstruction {
        if self.loss == "bce" { Reconstruction::BinaryCrossEntropy } else { Reconstruction::SquaredError }
    }
}

/// Minibatch optimisation. The loss minimised is the batch-mean
/// cross-entropy plus `λ/2 ‖W‖²` for each layer's weights W, i.e. each
/// step adds `λ W` to the weights' gradient.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Optimizer {
    /// `adam` or `sgd` (with momentum).
    pub kind: String,
    pub learning_rate: f32,
    #[serde(default)]
    pub momentum: f32,
    pub batch_size: usize,
    pub epochs: usize,
    /// The learning rate falls as a cosine to this fraction of itself by the last epoch.
    #[serde(default = "one")]
    pub final_lr_fraction: f32,
}

fn one() -> f32 {
    1.0
}

/// The paper's figures for a model (fractions, not percent).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PaperFigures {
    #[serde(default)]
    pub train_error: Option<f64>,
    #[serde(default)]
    pub test_error: Option<f64>,
}

impl Recipe {
    /// Reads and validates a recipe file.
    pub fn load(path: &Path) -> Result<Recipe> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read recipe {}", path.display()))?;
        let recipe: Recipe =
            serde_yaml::from_str(&text).with_context(|| format!("{} is not a valid recipe", path.display()))?;
        recipe.validate().with_context(|| format!("recipe {}", path.display()))?;
        Ok(recipe)
    }

    fn validate(&self) -> Result<()> {
        if self.layers.is_empty() {
            bail!("a recipe needs at least one layer");
        }
        for opt in std::iter::once(&self.optimizer).chain(self.pretrain.as_ref().map(|p| &p.optimizer)) {
            if !matches!(opt.kind.as_str(), "adam" | "sgd") {
                bail!("unknown optimizer '{}': expected adam or sgd", opt.kind);
            }
            if opt.batch_size == 0 || opt.learning_rate.is_nan() || opt.learning_rate <= 0.0 {
                bail!("batch_size and learning_rate must be positive");
            }
        }
        if let Some(p) = &self.pretrain {
            if !matches!(p.loss.as_str(), "bce" | "mse") {
                bail!("unknown pretraining loss '{}': expected bce or mse", p.loss);
            }
            if !matches!(self.layers.first(), Some(Layer::Dense { .. })) {
                bail!("pretraining needs a dense first layer");
            }
        }
        if let Some([start, end]) = self.subset
            && start >= end
        {
            bail!("subset [{start}, {end}] is empty");
        }
        Ok(())
    }
}
