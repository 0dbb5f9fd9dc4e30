//! Training recipes: the YAML files in `models/` that say how each of the
//! paper's networks is made.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::attack::target::Target;
use crate::attack::{lbfgsb, search};
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
    /// Training with a pool of adversarial examples (the paper's §4.2).
    #[serde(default)]
    pub adversarial: Option<Adversarial>,
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
    /// Dropout (Hinton et al. 2012) on what the layer before gives, or on
    /// the pixels as the first layer: while training, each value is zeroed
    /// with probability `rate` and the others scaled by `1/(1 − rate)`, a
    /// new draw every minibatch; the model written has no such layer.
    Dropout { rate: f32 },
}

impl Layer {
    /// The layer's key in a recipe, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Dense { .. } => "dense",
            Layer::Conv { .. } => "conv",
            Layer::MaxPool { .. } => "maxpool",
            Layer::Dropout { .. } => "dropout",
        }
    }

    fn weight_decay(&self) -> Option<f32> {
        match self {
            Layer::Dense { weight_decay, .. } | Layer::Conv { weight_decay, .. } => Some(*weight_decay),
            Layer::MaxPool { .. } | Layer::Dropout { .. } => None,
        }
    }
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

/// Adversarial training with a pool of adversarial examples: see
/// [`crate::train::pool`] for how the pool is kept and mixed in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Adversarial {
    /// The most examples the pool holds.
    pub pool: usize,
    /// Minibatch steps between two refreshes of the pool.
    pub refresh_every: usize,
    /// Training examples attacked at each refresh; each success replaces a
    /// pool example drawn at random once the pool is full.
    pub replace: usize,
    /// The pool's share of each minibatch once it holds examples, in (0, 1).
    pub share: f32,
    /// The first epoch (from 1) that refreshes the pool: the attack needs a
    /// model that classifies to make examples worth learning from.
    #[serde(default = "first_epoch")]
    pub from_epoch: usize,
    /// The attack, as `lbfgs`'s options; a smaller budget than `lbfgs`'s
    /// defaults is cheaper and still finds adversarial examples.
    #[serde(default)]
    pub attack: Attack,
}

fn first_epoch() -> usize {
    1
}

/// The options of the pool's `lbfgs`, with its defaults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Attack {
    /// `random` (each refresh draws new targets), `next`, `untargeted` or a
    /// class index.
    pub target: String,
    /// The range searched for c.
    pub c: [f64; 2],
    /// Values of c tried per example.
    pub steps: usize,
    /// L-BFGS-B iterations per value of c.
    pub iterations: usize,
    /// Move each success to the nearest point of the target's region.
    pub refine: bool,
    /// Examples per ONNX Runtime call.
    pub batch: usize,
}

impl Default for Attack {
    fn default() -> Self {
        let lbfgs = search::Options::default();
        Attack {
            target: "random".into(),
            c: [lbfgs.c_min, lbfgs.c_max],
            steps: lbfgs.steps,
            iterations: lbfgs.solver.max_iterations,
            refine: lbfgs.refine,
            batch: lbfgs.batch,
        }
    }
}

impl Attack {
    /// `lbfgs`'s options; `seed` draws the random targets.
    pub fn options(&self, seed: u64) -> Result<search::Options> {
        let target = match self.target.as_str() {
            "random" => Target::Random { seed },
            other => other.parse().with_context(|| format!("adversarial attack: `target` {other}"))?,
        };
        let defaults = search::Options::default();
        Ok(search::Options {
            target,
            c_min: self.c[0],
            c_max: self.c[1],
            steps: self.steps,
            solver: lbfgsb::Options { max_iterations: self.iterations, ..defaults.solver },
            refine: self.refine,
            batch: self.batch,
            walk: defaults.walk,
            // The pool's examples come from the search over c, as when the
            // committed adversarially trained models were made.
            lagrangian: 0,
        })
    }
}

impl Adversarial {
    fn validate(&self, epochs: usize) -> Result<()> {
        let attack = &self.attack;
        let counts = [
            ("pool", self.pool),
            ("refresh_every", self.refresh_every),
            ("replace", self.replace),
            ("attack: steps", attack.steps),
            ("attack: iterations", attack.iterations),
            ("attack: batch", attack.batch),
        ];
        if let Some((option, _)) = counts.iter().find(|(_, value)| *value == 0) {
            bail!("adversarial: `{option}` must be at least 1");
        }
        if !(self.share.is_finite() && self.share > 0.0 && self.share < 1.0) {
            bail!("adversarial: `share` must be a number in (0, 1), not {}", self.share);
        }
        if !(1..=epochs).contains(&self.from_epoch) {
            bail!("adversarial: `from_epoch` must be an epoch of the training, 1 to {epochs}, not {}", self.from_epoch);
        }
        let [lo, hi] = self.attack.c;
        if !(lo > 0.0 && lo < hi && hi.is_finite()) {
            bail!("adversarial: attack `c` must be two positive numbers, increasing, not [{lo}, {hi}]");
        }
        self.attack.options(0)?;
        Ok(())
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

impl Optimizer {
    /// Every number finite and in its range.
    fn validate(&self) -> Result<()> {
        if !matches!(self.kind.as_str(), "adam" | "sgd") {
            bail!("unknown optimizer '{}': expected adam or sgd", self.kind);
        }
        if self.batch_size == 0 || self.epochs == 0 {
            bail!("optimizer: `batch_size` and `epochs` must be at least 1");
        }
        let checks = [
            ("learning_rate", self.learning_rate, self.learning_rate > 0.0, "> 0"),
            ("momentum", self.momentum, (0.0..1.0).contains(&self.momentum), "in [0, 1)"),
            ("final_lr_fraction", self.final_lr_fraction, (0.0..=1.0).contains(&self.final_lr_fraction), "in [0, 1]"),
        ];
        for (option, value, in_range, range) in checks {
            if !(value.is_finite() && in_range) {
                bail!("optimizer: `{option}` must be a finite number {range}, not {value}");
            }
        }
        Ok(())
    }
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
        crate::train::arch::shapes(&self.layers)?;
        for (i, layer) in self.layers.iter().enumerate() {
            if let Some(decay) = layer.weight_decay()
                && !(decay.is_finite() && decay >= 0.0)
            {
                bail!("layer {} ({}): `weight_decay` must be a finite number >= 0, not {decay}", i + 1, layer.kind());
            }
        }
        for opt in std::iter::once(&self.optimizer).chain(self.pretrain.as_ref().map(|p| &p.optimizer)) {
            opt.validate()?;
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
        if let Some(adversarial) = &self.adversarial {
            adversarial.validate(self.optimizer.epochs)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recipe with these layers (YAML list items) and optimizer options.
    fn recipe(layers: &str, optimizer: &str) -> String {
        format!(
            "name: t\nlayers:\n{layers}\noptimizer: {{kind: adam, learning_rate: 0.001, batch_size: 10, epochs: 1{optimizer}}}\nseed: 1\n"
        )
    }

    fn load(text: &str) -> Result<Recipe> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.recipe.yaml");
        std::fs::write(&path, text).unwrap();
        Recipe::load(&path)
    }

    fn error(layers: &str, optimizer: &str) -> String {
        format!("{:#}", load(&recipe(layers, optimizer)).expect_err("an invalid recipe"))
    }

    #[test]
    fn a_valid_recipe_loads() {
        let layers = "  - conv: {filters: 4, kernel: 5, pad: 2}\n  - maxpool: {size: 2}\n  - dense: {units: 10}";
        let r = load(&recipe(layers, ", momentum: 0.9, final_lr_fraction: 0.1")).unwrap();
        assert_eq!(crate::train::arch::shapes(&r.layers).unwrap(), vec![vec![4, 28, 28], vec![4, 14, 14], vec![10]]);
    }

    /// `units: 10^12` asked for a 10^12 x 784 weight, and the allocation
    /// failure aborted the process.
    #[test]
    fn absurd_sizes_are_errors_naming_the_layer_and_option() {
        let e = error("  - dense: {units: 10}\n  - dense: {units: 1000000000000}", "");
        assert!(e.contains("layer 2 (dense): `units` 1000000000000: its weight") && e.contains("2^26"), "{e}");
        let e = error("  - conv: {filters: 4, kernel: 40}\n  - dense: {units: 10}", "");
        assert!(e.contains("layer 1 (conv)") && e.contains("`kernel` 40 is larger than its padded 28x28 input"), "{e}");
        let e = error("  - conv: {filters: 3, kernel: 3, pad: 18446744073709551615}", "");
        assert!(e.contains("layer 1 (conv)") && e.contains("`pad`"), "{e}");
        let e = error("  - maxpool: {size: 0}\n  - dense: {units: 10}", "");
        assert!(e.contains("layer 1 (maxpool)") && e.contains("`size` must be at least 1"), "{e}");
        let e = error("  - maxpool: {size: 29}", "");
        assert!(e.contains("`size` 29 is larger than its 28x28 input"), "{e}");
        let e = error("  - dense: {units: 10}\n  - conv: {filters: 2, kernel: 1}", "");
        assert!(e.contains("layer 2 (conv)") && e.contains("needs an image input"), "{e}");
        let e = error("  - dense: {units: 0}", "");
        assert!(e.contains("`units` must be at least 1"), "{e}");
        let e = error("  - dense: {units: 10}\n  - dropout: {rate: 1.0}", "");
        assert!(
            e.contains("layer 2 (dropout)") && e.contains("`rate` must be a finite number in [0, 1), not 1"),
            "{e}"
        );
    }

    #[test]
    fn options_are_finite_and_in_range() {
        let dense = "  - dense: {units: 10}";
        assert!(error(dense, ", momentum: .nan").contains("`momentum` must be a finite number in [0, 1), not NaN"));
        assert!(error(dense, ", final_lr_fraction: 2.0").contains("`final_lr_fraction`"));
        assert!(error("  - dense: {units: 10, weight_decay: .inf}", "").contains("layer 1 (dense): `weight_decay`"));
        let e = format!("{:#}", load(&recipe(dense, "").replace("epochs: 1", "epochs: 0")).unwrap_err());
        assert!(e.contains("`epochs` must be at least 1"), "{e}");
    }

    #[test]
    fn building_checks_the_sizes_too() {
        let huge = Layer::Dense { units: 1 << 40, activation: Activation::None, weight_decay: 0.0 };
        let e = format!("{:#}", crate::train::arch::build("t", &[huge], 10, 1).err().expect("refused"));
        assert!(e.contains("layer 1 (dense)"), "{e}");
    }
}
