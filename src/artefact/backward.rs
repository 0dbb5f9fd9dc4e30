//! A model's backward graph as a file ONNX Runtime can load. The graph
//! beside the model (`backward/x.<objective>.onnx`) is used when its
//! provenance says it was exported from this very model, for this
//! objective, by this advx; else a verified copy in the user cache; else one
//! is exported now, beside the model when its folder takes it, into the
//! cache when not. A file that does not match is never used: it is named,
//! with why, in one warning, and replaced (beside the model, atomically)
//! or passed over.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::provenance::{self, Provenance, Stale};
use crate::grad::{self, Objective};

/// The verified backward graph of the model file at `model`, whose bytes
/// hash to `model_sha256` (the model as it was loaded: a file changed
/// since is an error, not the source of a graph for another model).
pub fn backward_graph(model: &Path, model_sha256: &str, objective: &Objective) -> Result<PathBuf> {
    let expected = Provenance::current(model_sha256, objective);
    let beside = grad::backward_path(model, objective);
    let cached = cache_path(model_sha256, objective);
    let mut stale = Vec::new();
    for candidate in [&beside, &cached] {
        match provenance::verify(candidate, &expected) {
            Ok(()) => {
                warn_stale(&stale, &format!("using {}", candidate.display()));
                return Ok(candidate.clone());
            }
            Err(Stale::Missing) => {}
            Err(why) => stale.push(format!("{} {why}", candidate.display())),
        }
    }
    let exported = export(model, model_sha256, objective)?;
    let beside_error = match crate::onnx::save(&exported, &beside) {
        Ok(()) => {
            warn_stale(&stale, &format!("exported afresh to {}", beside.display()));
            return Ok(beside);
        }
        Err(e) => e,
    };
    crate::onnx::save(&exported, &cached).with_context(|| {
        format!(
            "cannot write the backward graph of {} beside it ({beside_error:#}) nor into the cache",
            model.display()
        )
    })?;
    let why = format!("{} cannot be written ({beside_error:#})", beside.display());
    match stale.is_empty() {
        true => tracing::info!("{why}; exported the backward graph of {} to {}", model.display(), cached.display()),
        false => warn_stale(&stale, &format!("{why}; exported afresh to {}", cached.display())),
    }
    Ok(cached)
}

/// Where the user cache keeps a model's graph: named by the model's SHA-256
/// and the objective, so that no two models or objectives share a file.
pub fn cache_path(model_sha256: &str, objective: &Objective) -> PathBuf {
    let tag: String =
        objective.to_string().chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect();
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("advx")
        .join("backward")
        .join(format!("{}.{tag}.onnx", model_sha256.to_ascii_lowercase()))
}

/// Exports from the model's bytes as they are now, if they are still the
/// ones loaded.
fn export(model: &Path, model_sha256: &str, objective: &Objective) -> Result<crate::onnx::ModelProto> {
    let bytes = std::fs::read(model).with_context(|| format!("cannot read ONNX model {}", model.display()))?;
    let now = provenance::sha256(&bytes);
    if !now.eq_ignore_ascii_case(model_sha256) {
        bail!(
            "{} changed since it was loaded (SHA-256 {}…, loaded as {}…): load it again",
            model.display(),
            &now[..12],
            model_sha256.get(..12).unwrap_or(model_sha256)
        );
    }
    grad::export_bytes(&bytes, model, objective)
}

/// One line for every file passed over, and what was done instead.
fn warn_stale(stale: &[String], instead: &str) {
    if !stale.is_empty() {
        tracing::warn!("{}; {instead}", stale.join("; "));
    }
}
