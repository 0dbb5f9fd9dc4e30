//! The manifest written beside each trained model: what was measured when
//! it was made, so that tables can cite it and tests can re-check it.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::recipe::PaperFigures;

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
}

impl Manifest {
    /// Reads a manifest.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read manifest {}", path.display()))?;
        serde_yaml::from_str(&text).with_context(|| format!("{} is not a valid manifest", path.display()))
    }

    /// Writes the manifest as YAML.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_yaml::to_string(self)?;
        std::fs::write(path, text).with_context(|| format!("cannot write manifest {}", path.display()))
    }
}

/// The hex SHA-256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// The manifest path for a model file: `x.onnx` -> `x.yaml`.
pub fn path_for(model: &Path) -> std::path::PathBuf {
    model.with_extension("yaml")
}
