//! `model NAME = onnx PATH`: a classifier with what lies beside it, the
//! manifest (how it was trained, its measured errors) when it belongs to
//! this model, and the backward graph the attacks need, verified or
//! exported when a gradient is first needed (`artefact::backward`).

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result, anyhow, bail};

use super::value::{ImageSet, LoadedModel};
use crate::artefact::{self, provenance};
use crate::classifier::Classifier;
use crate::grad::Objective;
use crate::runtime::{Device, Runtime};
use crate::train::manifest::{self, Manifest};

impl LoadedModel {
    pub fn load(name: &str, path: &Path, device: Device) -> Result<LoadedModel> {
        if !path.is_file() {
            bail!("model file {} not found", path.display());
        }
        // One read for the session and the hash, so the recorded SHA-256
        // is the model's that runs.
        let bytes = std::fs::read(path).with_context(|| format!("cannot read ONNX model {}", path.display()))?;
        let sha256 = provenance::sha256(&bytes);
        let mut classifier =
            Classifier::new(Runtime::get()?.load_bytes(&bytes, &path.display().to_string(), device)?)?;
        // ONNX Runtime loaded it, so a proto advx cannot decode only loses the layout hint.
        if let Ok(proto) = crate::onnx::decode(&bytes) {
            classifier = classifier.seen_in(crate::onnx::graph(&proto));
        }
        let device = classifier.model().device();
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

    /// Fails unless `set`'s images fit the model's input, before `op`
    /// does any work: advx's message naming the model, both shapes and
    /// the set, rather than ONNX Runtime's from inside a run.
    pub fn check_images(&self, op: &str, set: &ImageSet) -> Result<()> {
        self.classifier().check_images(&self.name, &set.name, set.images.shape()).map_err(|e| anyhow!("{op}: {e}"))
    }

    /// The classifier, whatever an earlier failure did to the lock.
    pub fn classifier(&self) -> std::sync::MutexGuard<'_, Classifier> {
        self.classifier.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The model's file, for an operation that loads it again (an attack's
    /// workers, a layer's graph): checked to be still the file this
    /// binding loaded, since a model retrained or replaced meanwhile would
    /// pair its new weights with this binding's records and graphs.
    pub fn file(&self) -> Result<&Path> {
        let now = manifest::sha256_file(&self.path)?;
        if now != self.sha256 {
            bail!(
                "{} changed since `model {}` loaded it (SHA-256 now {}…, loaded {}…): run the `model` statement again",
                self.path.display(),
                self.name,
                &now[..12],
                &self.sha256[..12]
            );
        }
        Ok(&self.path)
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
