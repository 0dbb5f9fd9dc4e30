//! `model NAME = onnx PATH { options }`: a classifier with what lies beside
//! it, the manifest (how it was trained, its measured errors) when it
//! belongs to this model, the graph advx runs for it (the user's, or the
//! user's behind a prefix that adapts advx's pixels to its input:
//! `runtime::Adaptation`), and that graph's backward graph, verified or
//! exported when a gradient is first needed (`artefact::backward`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use anyhow::{Context, Result, anyhow, bail};

use super::value::{ImageSet, LoadedModel};
use crate::artefact::{self, provenance};
use crate::classifier::Classifier;
use crate::grad::Objective;
use crate::runtime::{Adaptation, Device, ImageInput, Preprocess, Runtime};
use crate::train::manifest::{self, Manifest};

/// The graph a model runs as: its file, hash and sessions.
pub struct Runner {
    /// The user's model file, or the adapted copy in the user cache.
    file: PathBuf,
    sha256: String,
    adaptation: Option<Adaptation>,
    /// ORT sessions run with `&mut self`; values are shared, so the
    /// session sits behind a lock.
    classifier: Mutex<Classifier>,
    /// The `xent` backward graph, made when a gradient is first needed:
    /// a model advx cannot differentiate still loads and evaluates.
    backward: OnceLock<PathBuf>,
}

impl LoadedModel {
    pub fn load(name: &str, path: &Path, device: Device, preprocess: Preprocess) -> Result<LoadedModel> {
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
        let input = classifier.image_input();
        if let Err(why) = &input
            && !preprocess.is_identity()
        {
            bail!("`model {name}` declares preprocessing ({preprocess}), but {why}");
        }
        let model = LoadedModel {
            name: name.to_string(),
            path: path.to_path_buf(),
            manifest: Manifest::beside(path, &sha256),
            sha256,
            device: classifier.model().device(),
            preprocess,
            input,
            runs: OnceLock::new(),
            unadapted: Mutex::new(Some(classifier)),
            making: Mutex::new(()),
        };
        // A flat input does not say its images' shape: the first images checked will.
        let image = model.input.as_ref().ok().and_then(ImageInput::image);
        if image.is_some() || !model.adapts() {
            model.runner_with(image, Some(&bytes))?;
        }
        Ok(model)
    }

    /// Fails unless `set`'s images fit the model's input, before `op`
    /// does any work: advx's message naming the model, both shapes and
    /// the set, rather than ONNX Runtime's from inside a run. The first
    /// images a flat model is given fix the shape it runs on.
    pub fn check_images(&self, op: &str, set: &ImageSet) -> Result<()> {
        self.check_shape(op, &set.name, set.images.shape())
    }

    /// [`check_images`](Self::check_images) for images shaped `shape` of the set named `set`.
    pub fn check_shape(&self, op: &str, set: &str, shape: &[usize]) -> Result<()> {
        let input = self.input.as_ref().map_err(|why| anyhow!("{op}: {why}"))?;
        input.check(&self.name, set, shape).map_err(|e| anyhow!("{op}: {e}"))?;
        let runner = self.runner_with(Some([shape[1], shape[2], shape[3]]), None)?;
        runner.classifier().check_images(&self.name, set, shape).map_err(|e| anyhow!("{op}: {e}"))
    }

    /// `[C, H, W]` of the images the model runs on, when known.
    pub fn image_shape(&self) -> Option<[usize; 3]> {
        match self.runs.get().and_then(|r| r.adaptation.as_ref()) {
            Some(adaptation) => Some(adaptation.image),
            None => self.input.as_ref().ok()?.image(),
        }
    }

    /// How advx's pixels reach the user's graph, when not as they are.
    pub fn adaptation(&self) -> Option<&Adaptation> {
        self.runs.get()?.adaptation.as_ref()
    }

    /// The classifier advx runs, once the images it runs on are known
    /// ([`check_images`](Self::check_images) comes first).
    pub fn classifier(&self) -> Result<MutexGuard<'_, Classifier>> {
        Ok(self.runner()?.classifier())
    }

    /// The file of the graph advx runs (the user's model, or its adapted
    /// copy), for an operation that loads it again (an attack's workers,
    /// a layer's graph): checked to be still what this binding loaded,
    /// since a model retrained or replaced meanwhile would pair its new
    /// weights with this binding's records and graphs.
    pub fn file(&self) -> Result<&Path> {
        self.unchanged(&self.path, &self.sha256)?;
        let runner = self.runner()?;
        if runner.adaptation.is_some() {
            self.unchanged(&runner.file, &runner.sha256)?;
        }
        Ok(&runner.file)
    }

    /// The `xent` backward graph of the graph advx runs, made when first
    /// asked for: the verified file beside it or in the cache, or one
    /// exported now. A model advx cannot differentiate fails here, naming
    /// the op and node.
    pub fn backward(&self) -> Result<&Path> {
        let runner = self.runner()?;
        if let Some(path) = runner.backward.get() {
            return Ok(path);
        }
        let _making = self.making.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(path) = runner.backward.get() {
            return Ok(path);
        }
        let path = artefact::backward::backward_graph(&runner.file, &runner.sha256, &Objective::Xent)?;
        Ok(runner.backward.get_or_init(|| path))
    }

    fn runner(&self) -> Result<&Runner> {
        self.runs.get().ok_or_else(|| {
            anyhow!(
                "{} takes flat inputs, and the shape of its images is not known before it is given images",
                self.name
            )
        })
    }

    /// Whether the graph advx runs is not the user's as it is.
    fn adapts(&self) -> bool {
        self.input.as_ref().is_ok_and(|input| Adaptation::needed(input, &self.preprocess))
    }

    /// The runner, made for `[C, H, W]` images if there is none yet, from
    /// the model's bytes (`bytes`, else its file, checked unchanged). Only
    /// an adapted graph needs the images' shape.
    fn runner_with(&self, image: Option<[usize; 3]>, bytes: Option<&[u8]>) -> Result<&Runner> {
        if let Some(runner) = self.runs.get() {
            return Ok(runner);
        }
        let _making = self.making.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(runner) = self.runs.get() {
            return Ok(runner);
        }
        let runner = match (&self.input, image) {
            (Ok(input), Some(image)) if self.adapts() => {
                let adaptation = Adaptation::new(input, image, &self.preprocess)
                    .with_context(|| format!("`model {}`", self.name))?;
                self.adapted(adaptation, bytes)?
            }
            _ if self.adapts() => return self.runner(),
            _ => self.as_is()?,
        };
        Ok(self.runs.get_or_init(|| runner))
    }

    fn as_is(&self) -> Result<Runner> {
        let mut unadapted = self.unadapted.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let classifier = unadapted.take().context("the model's session was taken twice")?;
        Ok(Runner::new(self.path.clone(), self.sha256.clone(), None, classifier))
    }

    /// Writes the adapted graph into the user cache (named by its own
    /// SHA-256, so every process that adapts a model the same way shares
    /// one file) and opens a session on it.
    fn adapted(&self, adaptation: Adaptation, bytes: Option<&[u8]>) -> Result<Runner> {
        let read;
        let bytes = match bytes {
            Some(bytes) => bytes,
            None => {
                self.unchanged(&self.path, &self.sha256)?;
                read = std::fs::read(&self.path)
                    .with_context(|| format!("cannot read ONNX model {}", self.path.display()))?;
                &read
            }
        };
        let proto =
            crate::onnx::decode(bytes).with_context(|| format!("{} is not an ONNX model", self.path.display()))?;
        let adapted = prost::Message::encode_to_vec(&adaptation.apply(&proto, &self.sha256)?);
        let sha256 = provenance::sha256(&adapted);
        let file = adapted_path(&self.path, &sha256);
        if manifest::sha256_file(&file).ok().as_ref() != Some(&sha256) {
            artefact::write_atomic(&file, &adapted)
                .with_context(|| format!("cannot write the adapted graph of {}", self.path.display()))?;
        }
        let name = format!("{} ({})", self.path.display(), adaptation);
        let classifier = Classifier::new(Runtime::get()?.load_bytes(&adapted, &name, self.device)?)?;
        self.unadapted.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        Ok(Runner::new(file, sha256, Some(adaptation), classifier))
    }

    /// Fails if the file at `path` no longer hashes to `sha256`.
    fn unchanged(&self, path: &Path, sha256: &str) -> Result<()> {
        let now = manifest::sha256_file(path)?;
        if now != sha256 {
            bail!(
                "{} changed since `model {}` loaded it (SHA-256 now {}…, loaded {}…): run the `model` statement again",
                path.display(),
                self.name,
                &now[..12],
                &sha256[..12]
            );
        }
        Ok(())
    }
}

impl Runner {
    fn new(file: PathBuf, sha256: String, adaptation: Option<Adaptation>, classifier: Classifier) -> Runner {
        Runner { file, sha256, adaptation, classifier: Mutex::new(classifier), backward: OnceLock::new() }
    }

    /// The classifier, whatever an earlier failure did to the lock.
    fn classifier(&self) -> MutexGuard<'_, Classifier> {
        self.classifier.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Where the user cache keeps an adapted graph: named after the model and
/// by the adapted graph's own SHA-256.
fn adapted_path(model: &Path, sha256: &str) -> PathBuf {
    let stem = model.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("advx")
        .join("adapted")
        .join(format!("{stem}.{}.onnx", &sha256[..16]))
}
