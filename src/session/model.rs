//! `model NAME = onnx PATH`: a classifier with what lies beside it, the
//! manifest (how it was trained, its measured errors) and the backward
//! graph the attacks need, exported and cached when it is missing.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};

use super::value::LoadedModel;
use crate::classifier::Classifier;
use crate::grad::{self, Objective};
use crate::runtime::Device;
use crate::train::manifest::{self, Manifest};

impl LoadedModel {
    pub fn load(name: &str, path: &Path, device: Device) -> Result<LoadedModel> {
        if !path.is_file() {
            bail!("model file {} not found", path.display());
        }
        let classifier = Classifier::load(path, device)?;
        let device = classifier.model().device();
        let manifest_path = manifest::path_for(path);
        let manifest = match manifest_path.is_file() {
            true => Some(Manifest::load(&manifest_path)?),
            false => None,
        };
        Ok(LoadedModel {
            name: name.to_string(),
            path: path.to_path_buf(),
            sha256: manifest::sha256_file(path)?,
            manifest,
            backward: backward_graph(path)?,
            device,
            classifier: Mutex::new(classifier),
        })
    }

    /// The classifier, whatever an earlier failure did to the lock.
    pub fn classifier(&self) -> std::sync::MutexGuard<'_, Classifier> {
        self.classifier.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The `xent` backward graph beside the model, or one exported now into
/// `backward/` beside it, or into the user cache when that folder is not
/// writable.
fn backward_graph(path: &Path) -> Result<PathBuf> {
    let beside = grad::backward_path(path, &Objective::Xent);
    if beside.is_file() {
        return Ok(beside);
    }
    let model = crate::onnx::load(path)?;
    let exported = grad::export(&model, &Objective::Xent)
        .with_context(|| format!("exporting the backward graph of {}", path.display()))?;
    if write(&exported, &beside).is_ok() {
        return Ok(beside);
    }
    let digest = manifest::sha256_file(path)?;
    let cached = dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("advx/backward")
        .join(format!("{}.xent.onnx", &digest[..16]));
    write(&exported, &cached)?;
    Ok(cached)
}

fn write(model: &crate::onnx::ModelProto, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::onnx::save(model, path)
}
