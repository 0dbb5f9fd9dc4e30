//! What made a derived ONNX graph, recorded in its `metadata_props`: the
//! SHA-256 of the model it was exported from, the objective, and the
//! exporter (advx and its version). A graph is only used for a model when
//! all three match, so a graph left beside a model that was since replaced,
//! retrained or exported by another advx is never taken for its gradient.
//!
//! The record is the last thing encoded in the file (`metadata_props` is
//! field 14 of `ModelProto`, after the graph, and advx writes no training
//! info or functions), so it also marks the file complete: a file cut
//! anywhere either fails to decode or lacks part of the record.

use std::fmt;
use std::path::Path;

use crate::grad::Objective;
use crate::onnx::ModelProto;
use crate::onnx::proto::StringStringEntryProto;

/// The `metadata_props` keys of the record.
pub mod keys {
    pub const SOURCE_SHA256: &str = "advx.source_sha256";
    pub const OBJECTIVE: &str = "advx.objective";
    pub const EXPORTER: &str = "advx.exporter";
}

/// This build of advx as an exporter.
pub const EXPORTER: &str = concat!("advx ", env!("CARGO_PKG_VERSION"));

/// The hex SHA-256 of `bytes`: how a model file is named in records.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

/// What a derived graph was made from and by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// Hex SHA-256 of the source model file's bytes.
    pub source_sha256: String,
    pub objective: String,
    pub exporter: String,
}

impl Provenance {
    /// The provenance of a graph this advx exports now from the model whose
    /// file hashes to `source_sha256`.
    pub fn current(source_sha256: &str, objective: &Objective) -> Provenance {
        Provenance {
            source_sha256: source_sha256.to_ascii_lowercase(),
            objective: objective.to_string(),
            exporter: EXPORTER.to_string(),
        }
    }

    /// Records the provenance in `model`, replacing any earlier record.
    pub fn stamp(&self, model: &mut ModelProto) {
        let ours = [keys::SOURCE_SHA256, keys::OBJECTIVE, keys::EXPORTER];
        model.metadata_props.retain(|p| !ours.contains(&p.key()));
        for (key, value) in [
            (keys::SOURCE_SHA256, &self.source_sha256),
            (keys::OBJECTIVE, &self.objective),
            (keys::EXPORTER, &self.exporter),
        ] {
            model.metadata_props.push(StringStringEntryProto { key: Some(key.into()), value: Some(value.clone()) });
        }
    }

    /// The provenance recorded in `model`, if all of it is there.
    pub fn of(model: &ModelProto) -> Option<Provenance> {
        let get = |key: &str| model.metadata_props.iter().rev().find(|p| p.key() == key).map(|p| p.value().to_string());
        Some(Provenance {
            source_sha256: get(keys::SOURCE_SHA256)?,
            objective: get(keys::OBJECTIVE)?,
            exporter: get(keys::EXPORTER)?,
        })
    }
}

/// Why a derived graph cannot stand for the one asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    Missing,
    /// Unreadable, or not a decodable ONNX model (a truncated write).
    Corrupt(String),
    /// No complete provenance record: not written by this advx's exporter,
    /// or cut short.
    Unrecorded,
    OtherSource {
        found: String,
        expected: String,
    },
    OtherObjective {
        found: String,
        expected: String,
    },
    OtherExporter {
        found: String,
        expected: String,
    },
}

impl fmt::Display for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = |sha: &str| sha.chars().take(12).collect::<String>();
        match self {
            Stale::Missing => write!(f, "does not exist"),
            Stale::Corrupt(why) => write!(f, "is not a readable ONNX model (truncated or corrupt: {why})"),
            Stale::Unrecorded => {
                write!(f, "records no provenance (made by another tool or an older advx, or cut short)")
            }
            Stale::OtherSource { found, expected } => write!(
                f,
                "was exported from another model (SHA-256 {}…, not this model's {}…)",
                short(found),
                short(expected)
            ),
            Stale::OtherObjective { found, expected } => {
                write!(f, "was exported for objective {found}, not {expected}")
            }
            Stale::OtherExporter { found, expected } => write!(f, "was exported by {found}, not {expected}"),
        }
    }
}

/// Whether the ONNX file at `path` was made as `expected` says: from the
/// same model, for the same objective, by the same exporter.
pub fn verify(path: &Path, expected: &Provenance) -> Result<(), Stale> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Stale::Missing),
        Err(e) => return Err(Stale::Corrupt(e.to_string())),
    };
    let model = crate::onnx::decode(&bytes).map_err(|e| Stale::Corrupt(format!("{e:#}")))?;
    let found = Provenance::of(&model).ok_or(Stale::Unrecorded)?;
    compare(found, expected)
}

fn compare(found: Provenance, expected: &Provenance) -> Result<(), Stale> {
    let expected = expected.clone();
    if !found.source_sha256.eq_ignore_ascii_case(&expected.source_sha256) {
        Err(Stale::OtherSource { found: found.source_sha256, expected: expected.source_sha256 })
    } else if found.objective != expected.objective {
        Err(Stale::OtherObjective { found: found.objective, expected: expected.objective })
    } else if found.exporter != expected.exporter {
        Err(Stale::OtherExporter { found: found.exporter, expected: expected.exporter })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::onnx::builder::{Elem, GraphBuilder};
    use crate::onnx::shape::Dim;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn model() -> ModelProto {
        let mut b = GraphBuilder::new();
        b.input("x", Elem::F32, &[Dim::Batch, Dim::Fixed(3)]);
        let y = b.op("Relu", &["x"], vec![]);
        b.output(&y, Elem::F32, &[Dim::Batch, Dim::Fixed(3)]);
        b.into_model("g", crate::onnx::OPSET, "a graph")
    }

    fn written(dir: &Path, model: &ModelProto) -> std::path::PathBuf {
        let path = dir.join("g.onnx");
        std::fs::write(&path, model.encode_to_vec()).unwrap();
        path
    }

    #[test]
    fn a_stamped_graph_verifies_and_any_difference_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let expected = Provenance::current(SHA, &Objective::Xent);
        let mut m = model();
        expected.stamp(&mut m);
        expected.stamp(&mut m);
        assert_eq!(m.metadata_props.len(), 3, "a second stamp replaces the first");
        assert_eq!(verify(&written(dir.path(), &m), &expected), Ok(()));

        let other_model = Provenance::current(&SHA.replace('9', "8"), &Objective::Xent);
        assert!(matches!(verify(&written(dir.path(), &m), &other_model), Err(Stale::OtherSource { .. })));
        let other_objective = Provenance::current(SHA, &Objective::Train);
        let why = verify(&written(dir.path(), &m), &other_objective).unwrap_err();
        assert_eq!(why.to_string(), "was exported for objective xent, not train");
        let mut old = expected.clone();
        old.exporter = "advx 0.0.1".into();
        old.stamp(&mut m);
        let why = verify(&written(dir.path(), &m), &expected).unwrap_err();
        assert_eq!(why.to_string(), format!("was exported by advx 0.0.1, not {EXPORTER}"));
    }

    #[test]
    fn a_graph_without_a_record_or_not_onnx_at_all_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let expected = Provenance::current(SHA, &Objective::Xent);
        assert_eq!(verify(&written(dir.path(), &model()), &expected), Err(Stale::Unrecorded));
        let text = dir.path().join("t.onnx");
        std::fs::write(&text, "not a model").unwrap();
        assert!(matches!(verify(&text, &expected), Err(Stale::Corrupt(_))));
        assert_eq!(verify(&dir.path().join("none.onnx"), &expected), Err(Stale::Missing));
    }

    #[test]
    fn a_graph_cut_anywhere_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let expected = Provenance::current(SHA, &Objective::Xent);
        let mut m = model();
        expected.stamp(&mut m);
        let bytes = m.encode_to_vec();
        let path = dir.path().join("cut.onnx");
        for len in 0..bytes.len() {
            std::fs::write(&path, &bytes[..len]).unwrap();
            assert!(verify(&path, &expected).is_err(), "cut at {len} of {} bytes passed", bytes.len());
        }
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(verify(&path, &expected), Ok(()));
    }
}
