//! `model NAME = onnx PATH`: a classifier with what lies beside it, the
//! manifest (how it was trained, its measured errors) when it belongs to
//! this model, and the backward graph the attacks need, verified or
//! exported when a gradient is first needed (`artefact::backward`).

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use anyhow::{Result, bail};

use super::value::LoadedModel;
use crate::artefact;
use crate::classifier::Classifier;
use crate::grad::Objective;
use crate::runtime::Device;
use crate::train::manifest::{self, Manifest};

impl LoadedModel {
    pub fn load(name: &str, path: &Path, device: Device) -> Result<LoadedModel> {
        if !path.is_file() {
            bail!("model file {} not found", path.display());
        }
        let classifier = Classifier::load(path, device)?;
        let device = classifier.model().device();
        let sha256 = manifest::sha256_file(path)?;
        Ok(LoadedModel {
            name: name.to_string(),
            path: path.to_path_buf(),
            manifest: Manifest::beside(path, &sha256),
            sha256,
            backward: OnceLock::new(),
            exporting: Mutex::new(()),
            device,
            classifier: Mutex::new(classifier),
        })
    }

    /// The classifier, whatever an earlier failure did to the lock.
    pub fn classifier(&self) -> std::sync::MutexGuard<'_, Classifier> {
        self.classifier.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The model's `xent` backward graph, made when first asked for: the
    /// verified file beside the model or in the cache, or one exported now.
    /// A model advx cannot differentiate fails here, naming the op and node.
    pub fn backward(&self) -> Result<&Path> {
        if let Some(path) = self.backward.get() {
            return Ok(path);
        }
        let _exporting = self.exporting.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(path) = self.backward.get() {
            return Ok(path);
        }
        let path = artefact::backward::backward_graph(&self.path, &self.sha256, &Objective::Xent)?;
        Ok(self.backward.get_or_init(|| path))
    }
}
