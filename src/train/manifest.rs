//! The manifest written beside each trained model: what was measured when
//! it was made, so that tables can cite it and tests can re-check it.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::pool::{self, Pool};
use super::recipe::{Adversarial, PaperFigures};

/// `models/<dataset>/<name>.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub description: String,
    /// The ONNX file, relative to the manifest.
    pub model: String,
    /// Its xent backward graph, relative to the manifest.
    pub backward: String,
    /// The recipe file, relative to the manifest, and the SHA-256 of its bytes.
    pub recipe: String,
    pub recipe_sha256: String,
    pub model_sha256: String,
    pub dataset: String,
    /// Training images used, `[start, end)`.
    pub train_subset: [usize; 2],
    pub parameters: usize,
    /// Error on the training images used.
    pub train_error: f64,
    /// Error on the dataset's test split.
    pub test_error: f64,
    pub final_loss: f64,
    pub training_seconds: f64,
    pub advx_version: String,
    pub onnxruntime_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper: Option<PaperFigures>,
    /// What the adversarial pool did, for a recipe that trains with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adversarial: Option<PoolRecord>,
}

/// The adversarial pool over a training run: its settings, what its
/// attacks made, how distorted and how long they took, in all and epoch by
/// epoch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PoolRecord {
    pub settings: Adversarial,
    /// Examples in the pool at the end.
    pub pool: usize,
    pub refreshes: usize,
    /// Training examples attacked, and the adversarial examples made.
    pub attacked: usize,
    pub made: usize,
    /// The mean distortion of the examples made.
    pub mean_distortion: f64,
    /// Time spent attacking, within `training_seconds`.
    pub attack_seconds: f64,
    pub epochs: Vec<EpochRecord>,
}

/// One epoch's refreshes of the pool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    pub attacked: usize,
    pub made: usize,
    pub mean_distortion: f64,
    pub attack_seconds: f64,
}

impl PoolRecord {
    pub fn of(pool: &Pool) -> PoolRecord {
        let total = pool::Totals::of(&pool.refreshes);
        let epochs = pool.refreshes.chunk_by(|a, b| a.epoch == b.epoch).map(|r| {
            let t = pool::Totals::of(r);
            EpochRecord {
                epoch: r[0].epoch,
                attacked: t.attacked,
                made: t.made,
                mean_distortion: round(t.mean_distortion),
                attack_seconds: round(t.seconds),
            }
        });
        PoolRecord {
            settings: pool.settings.clone(),
            pool: pool.len(),
            refreshes: pool.refreshes.len(),
            attacked: total.attacked,
            made: total.made,
            mean_distortion: round(total.mean_distortion),
            attack_seconds: round(total.seconds),
            epochs: epochs.collect(),
        }
    }
}

/// Four significant digits are what the record is read to.
fn round(x: f64) -> f64 {
    if x.is_finite() && x != 0.0 {
        let scale = 10f64.powi(3 - x.abs().log10().floor() as i32);
        (x * scale).round() / scale
    } else {
        x
    }
}

impl Manifest {
    /// Reads a manifest.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read manifest {}", path.display()))?;
        serde_yaml::from_str(&text).with_context(|| format!("{} is not a valid manifest", path.display()))
    }

    /// The manifest beside the model file `model` ([`path_for`]), if there
    /// is one and it is this model's: `model_sha256` must be `sha256`, the
    /// hash of the model's bytes. One that belongs to another model (the
    /// model was replaced or retrained) or cannot be read is ignored with a
    /// warning, so that it never lends the model another model's errors.
    pub fn beside(model: &Path, sha256: &str) -> Option<Manifest> {
        let path = path_for(model);
        if !path.is_file() {
            return None;
        }
        match Manifest::load(&path) {
            Ok(m) if m.model_sha256.eq_ignore_ascii_case(sha256) => Some(m),
            Ok(m) => {
                tracing::warn!(
                    "{} is ignored: it describes a model with SHA-256 {}…, not {} ({}…)",
                    path.display(),
                    m.model_sha256.get(..12).unwrap_or(&m.model_sha256),
                    model.display(),
                    sha256.get(..12).unwrap_or(sha256)
                );
                None
            }
            Err(e) => {
                tracing::warn!("{e:#}; it is ignored");
                None
            }
        }
    }

    /// [`Manifest::beside`] for a model file not yet hashed.
    pub fn for_model(model: &Path) -> Option<Manifest> {
        match sha256_file(model) {
            Ok(sha256) => Manifest::beside(model, &sha256),
            Err(e) => {
                tracing::warn!("{e:#}; its manifest is not read");
                None
            }
        }
    }

    /// Writes the manifest as YAML, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_yaml::to_string(self)?;
        crate::artefact::write_atomic(path, text.as_bytes())
    }
}

/// The hex SHA-256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(crate::artefact::provenance::sha256(&bytes))
}

/// The manifest path for a model file: `x.onnx` -> `x.yaml`.
pub fn path_for(model: &Path) -> std::path::PathBuf {
    model.with_extension("yaml")
}
