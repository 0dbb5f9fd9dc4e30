//! The shards of one run, checked to belong together, and their records
//! as one: [`Merged::take`] answers a merging operation with the rows of
//! every example of its set, from whichever shard recorded each.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{Result, bail};

use super::columns::Columns;
use super::store::{Manifest, Stored};
use crate::session::value::ImageSet;

/// Complete shards 0..N of one run.
pub struct Merged {
    /// The shards, by index.
    shards: Vec<Stored>,
}

impl Merged {
    /// Checks that `shards` are every shard of one run, once each, all
    /// complete and alike in script, parameters, advx and models; every
    /// problem found is listed in the error.
    pub fn new(mut shards: Vec<Stored>) -> Result<Merged> {
        let Some(first) = shards.first() else { bail!("no shards to merge") };
        let reference = first.manifest.clone();
        let mut problems = Vec::new();
        for s in &shards {
            problems
                .extend(differences(&reference, &s.manifest).into_iter().map(|d| format!("{}: {d}", s.dir.display())));
            if s.manifest.status != "complete" {
                problems.push(format!(
                    "{}: shard {} is {}, not complete; rerun it",
                    s.dir.display(),
                    s.manifest.shard(),
                    s.manifest.status
                ));
            }
        }
        let mut seen: BTreeMap<usize, Vec<PathBuf>> = BTreeMap::new();
        for s in &shards {
            seen.entry(s.manifest.shard).or_default().push(s.dir.clone());
        }
        for (index, dirs) in &seen {
            if dirs.len() > 1 {
                let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                problems.push(format!(
                    "shard {index}/{} is given {} times: {}",
                    reference.shards,
                    dirs.len(),
                    dirs.join(", ")
                ));
            }
        }
        let missing: Vec<String> = (0..reference.shards)
            .filter(|i| !seen.contains_key(i))
            .map(|i| format!("{i}/{}", reference.shards))
            .collect();
        if !missing.is_empty() {
            problems.push(format!("shard(s) {} missing", missing.join(", ")));
        }
        if !problems.is_empty() {
            bail!("these shards do not merge into one run:\n  - {}", problems.join("\n  - "));
        }
        shards.sort_by_key(|s| s.manifest.shard);
        Ok(Merged { shards })
    }

    /// What the shards say of the run (the first's manifest).
    pub fn manifest(&self) -> &Manifest {
        &self.shards[0].manifest
    }

    /// Says which records no operation took when the script took `taken`.
    pub fn unused(&self, taken: usize) -> Option<String> {
        let records = &self.shards[0].records;
        (records.len() > taken).then(|| {
            let keys: Vec<&str> = records[taken..].iter().map(|r| r.info.key.as_str()).collect();
            format!("the shards recorded operations this script did not run: {}", keys.join("; "))
        })
    }

    /// The script the shards ran: as they named it when that names the
    /// same file from here (so the reports name it alike), else where it
    /// was.
    pub fn script(&self) -> PathBuf {
        let manifest = self.manifest();
        let there = manifest.cwd.join(&manifest.script);
        let same = |a: &std::path::Path, b: &std::path::Path| matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y);
        if same(&manifest.script, &there) { manifest.script.clone() } else { there }
    }

    /// The rows of every example of `data`, in its order, for the `k`th
    /// per-example operation of the script, which must be the one each
    /// shard recorded `k`th (`key`).
    pub fn take(&self, k: usize, key: &str, data: &ImageSet, hashes: &[u64]) -> Result<Columns> {
        let mut rows = Vec::with_capacity(self.shards.len());
        for s in &self.shards {
            let Some(record) = s.records.get(k) else {
                bail!(
                    "shard {} ({}) recorded {} operations, but this script runs at least {}: it is not this run's shard",
                    s.manifest.shard(),
                    s.dir.display(),
                    s.records.len(),
                    k + 1
                );
            };
            if record.info.key != key || record.info.data != data.name {
                bail!(
                    "shard {} ({}) recorded `{}` on {} as per-example operation {}, but this script runs `{key}` on {} there",
                    s.manifest.shard(),
                    s.dir.display(),
                    record.info.key,
                    record.info.data,
                    k + 1,
                    data.name
                );
            }
            rows.push(record);
        }
        let mut index: HashMap<(u64, u64), (usize, usize)> = HashMap::new();
        for (source, record) in rows.iter().enumerate() {
            for (row, pair) in record.ids.iter().zip(&record.hashes).enumerate() {
                index.entry((*pair.0, *pair.1)).or_insert((source, row));
            }
        }
        let mut picks = Vec::with_capacity(data.len());
        let mut missing = Vec::new();
        for (p, (&id, &hash)) in data.ids.iter().zip(hashes).enumerate() {
            match index.get(&(id, hash)) {
                Some(&pick) => picks.push(pick),
                None => missing.push((p, id)),
            }
        }
        if !missing.is_empty() {
            let shown: Vec<String> = missing.iter().take(10).map(|(_, id)| id.to_string()).collect();
            let more = if missing.len() > 10 { format!(" and {} more", missing.len() - 10) } else { String::new() };
            bail!(
                "`{key}`: no shard recorded {} example(s) of {} with these pixels and label (indices {}{more}): \
                 the shards ran on other data",
                missing.len(),
                data.name,
                shown.join(", ")
            );
        }
        let columns: Vec<&Columns> = rows.iter().map(|r| &r.columns).collect();
        Columns::gather(&columns, &picks)
    }
}

/// How `other` differs from `reference` in what makes shards of one run.
fn differences(reference: &Manifest, other: &Manifest) -> Vec<String> {
    let mut found = Vec::new();
    let mut differ = |what: &str, a: String, b: String| {
        if a != b {
            found.push(format!("{what} is {b}, not {a} as in the first shard"));
        }
    };
    differ(
        "the script",
        reference.cwd.join(&reference.script).display().to_string(),
        other.cwd.join(&other.script).display().to_string(),
    );
    differ("the script's SHA-256", reference.script_sha256.clone(), other.script_sha256.clone());
    differ("the shard count", reference.shards.to_string(), other.shards.to_string());
    differ("advx", reference.advx.clone(), other.advx.clone());
    differ("the parameters", format!("{:?}", reference.params), format!("{:?}", other.params));
    if other.status == "complete" && reference.status == "complete" {
        differ("the models", format!("{:?}", reference.models), format!("{:?}", other.models));
    }
    found
}
