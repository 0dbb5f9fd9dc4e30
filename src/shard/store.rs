//! The file a shard leaves for the merge, `SHARD_DIR/shard.npz`: a NumPy
//! archive with the shard's manifest (YAML, as the bytes of the array
//! `manifest`) and each record's arrays (`rK/ids`, `rK/hashes`, `rK/NAME`).
//! It is rewritten whole and atomically after every cell, so a merge (or a
//! retried task writing it again) never meets half of one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use ndarray::{Array1, ArrayD};
use ndarray_npy::{NpzReader, NpzWriter};
use serde::{Deserialize, Serialize};

use super::Shard;
use super::columns::{Column, Columns};

/// The shard's file in its folder.
pub const FILE: &str = "shard.npz";

/// What a shard says of itself: which run of which script it is part of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub advx: String,
    /// The script as given to `advx run`, the folder it ran in, and the
    /// SHA-256 of the script's text.
    pub script: PathBuf,
    pub cwd: PathBuf,
    pub script_sha256: String,
    /// Effective parameters, in script order, as JSON text.
    pub params: Vec<(String, String)>,
    pub shard: usize,
    pub shards: usize,
    /// `running`, `complete`, `failed`, `interrupted` or `terminated`.
    pub status: String,
    /// Each model loaded: name and SHA-256.
    pub models: Vec<(String, String)>,
    /// The device the shard ran on.
    pub device: String,
    pub records: Vec<RecordInfo>,
}

impl Manifest {
    pub fn shard(&self) -> Shard {
        Shard { index: self.shard, count: self.shards }
    }
}

/// What a record is the result of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordInfo {
    /// The operation and what it was given (the call, models' hashes).
    pub key: String,
    /// The image set its examples came from.
    pub data: String,
    pub examples: usize,
}

/// The per-example results of one operation in one shard.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub info: RecordInfo,
    /// Each example's index in its set ([`crate::session::value::ImageSet::ids`]).
    pub ids: Vec<u64>,
    /// Each example's hash (pixels and label, [`super::example_hash`]).
    pub hashes: Vec<u64>,
    pub columns: Columns,
}

/// Writes `DIR/shard.npz` atomically. The archive is built in memory
/// first: a full disk then fails the one write, with the OS's reason,
/// rather than inside the zip writer (which complains again as it drops).
pub fn write(dir: &Path, manifest: &Manifest, records: &[Record]) -> Result<()> {
    let archive = archive(manifest, records).context("cannot build the shard's record")?;
    crate::artefact::write_atomic(&dir.join(FILE), &archive)
}

/// The bytes of `shard.npz`.
fn archive(manifest: &Manifest, records: &[Record]) -> Result<Vec<u8>> {
    let yaml = serde_yaml::to_string(manifest)?;
    let mut npz = NpzWriter::new(Cursor::new(Vec::new()));
    npz.add_array("manifest", &Array1::from(yaml.into_bytes()))?;
    for (k, record) in records.iter().enumerate() {
        npz.add_array(format!("r{k}/ids"), &Array1::from(record.ids.clone()))?;
        npz.add_array(format!("r{k}/hashes"), &Array1::from(record.hashes.clone()))?;
        for (name, column) in &record.columns.0 {
            let key = format!("r{k}/{name}");
            match column {
                Column::F32(a) => npz.add_array(key, a)?,
                Column::F64(a) => npz.add_array(key, a)?,
                Column::I64(a) => npz.add_array(key, a)?,
            }
        }
    }
    Ok(npz.finish()?.into_inner())
}

/// A shard as read back: its folder, manifest and records.
pub struct Stored {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub records: Vec<Record>,
}

/// Reads `DIR/shard.npz`, every array checked against the manifest.
pub fn read(dir: &Path) -> Result<Stored> {
    let path = dir.join(FILE);
    let file = File::open(&path).with_context(|| {
        format!("{} is not a shard's folder: it has no {FILE} (`advx run --shard` writes one)", dir.display())
    })?;
    let read = || -> Result<Stored> {
        let mut npz = NpzReader::new(file)?;
        let bytes: Array1<u8> = npz.by_name("manifest")?;
        let manifest: Manifest = serde_yaml::from_slice(bytes.as_slice().unwrap_or_default())?;
        let names = npz.names()?;
        let mut records = Vec::new();
        for (k, info) in manifest.records.iter().enumerate() {
            let prefix = format!("r{k}/");
            let ids: Array1<u64> = npz.by_name(&format!("{prefix}ids"))?;
            let hashes: Array1<u64> = npz.by_name(&format!("{prefix}hashes"))?;
            let mut columns = Columns::default();
            for name in names.iter().filter_map(|n| n.strip_prefix(&prefix)) {
                let name = name.trim_end_matches(".npy");
                if name != "ids" && name != "hashes" {
                    columns.put(name, column(&mut npz, &format!("{prefix}{name}"))?);
                }
            }
            let record = Record { info: info.clone(), ids: ids.to_vec(), hashes: hashes.to_vec(), columns };
            check(&record)?;
            records.push(record);
        }
        Ok(Stored { dir: dir.to_path_buf(), manifest, records })
    };
    read().with_context(|| format!("cannot read the shard {}", path.display()))
}

fn column(npz: &mut NpzReader<File>, name: &str) -> Result<Column> {
    if let Ok(a) = npz.by_name::<ndarray::OwnedRepr<f32>, ndarray::IxDyn>(name) {
        return Ok(Column::F32(a));
    }
    if let Ok(a) = npz.by_name::<ndarray::OwnedRepr<f64>, ndarray::IxDyn>(name) {
        return Ok(Column::F64(a));
    }
    let a: ArrayD<i64> = npz.by_name(name).with_context(|| format!("the array {name} is not f32, f64 or i64"))?;
    Ok(Column::I64(a))
}

/// A record's arrays all have one row per example.
fn check(record: &Record) -> Result<()> {
    let n = record.info.examples;
    let lengths: BTreeMap<&str, usize> = record.columns.0.iter().map(|(k, c)| (k.as_str(), c.rows())).collect();
    if record.ids.len() != n || record.hashes.len() != n || lengths.values().any(|&l| l != n) {
        bail!("record `{}` should have {n} rows, but its arrays have {lengths:?}", record.info.key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::columns::{Rows, integers};

    #[test]
    fn a_shard_file_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut columns = ndarray::Array2::from_shape_fn((3, 2), |(i, j)| (i * 2 + j) as f32 * 0.1).to_columns();
        columns.put("class", integers([4, -1, 9]));
        let info = RecordInfo { key: "lbfgs m on s [abc]".into(), data: "s".into(), examples: 3 };
        let record = Record { info: info.clone(), ids: vec![1, 5, u64::MAX], hashes: vec![7, 8, 9], columns };
        let manifest = Manifest {
            advx: "0.1.0".into(),
            script: "s.advx".into(),
            cwd: "/w".into(),
            script_sha256: "ff".into(),
            params: vec![("n".into(), "20".into())],
            shard: 1,
            shards: 2,
            status: "complete".into(),
            models: vec![("m".into(), "abc".into())],
            device: "cpu".into(),
            records: vec![info],
        };
        write(dir.path(), &manifest, std::slice::from_ref(&record)).unwrap();
        let stored = read(dir.path()).unwrap();
        assert_eq!(stored.manifest, manifest);
        assert_eq!(stored.records, vec![record]);
    }

    #[test]
    fn a_corrupt_shard_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"not a zip").unwrap();
        let error = format!("{:#}", read(dir.path()).err().unwrap());
        assert!(error.contains("cannot read the shard") && error.contains(FILE), "{error}");
    }
}
