//! Sharded runs: one script's per-example work split over N processes (a
//! Slurm job array, a Kubernetes Indexed Job), then merged into exactly
//! the outputs of one run.
//!
//! **What shards.** Every shard runs the whole script. The operations that
//! compute something for each example of a set (`evaluate`, `predict`,
//! `lbfgs`, `transfer`, `units` and `lipschitz`'s measurement) compute it
//! only for the examples the shard owns: those whose index in their set
//! ([`ImageSet::ids`]) is the shard's index modulo N. Their results hold
//! only those examples, so what is made from them (an attack's adversarial
//! set, attacked again or transferred) stays within the shard's examples.
//! Everything else (loading, slicing, noise, figures) runs whole. An
//! example's result depends only on the example (random targets and noise
//! are drawn from a stream of its index), so any N gives the results of
//! one run.
//!
//! **What a shard records.** Each of those operations, in the order the
//! script runs them, leaves a [`store::Record`]: its results as columns,
//! one row per example, keyed by the example's index and a hash of its
//! pixels and label (`store.rs` writes them to `shard.npz`).
//!
//! **How a merge is exact.** `advx merge` runs the script once more over
//! the whole sets, and each of those operations takes its rows from the
//! shards' records instead of computing them, in the set's order, then
//! makes its result with the code of a single run: every summary (error
//! rates, quantiles, tables, rankings, bounds), figure and report is
//! recomputed from the merged examples. A record missing, an example
//! missing or recorded for other pixels, or shards of another script,
//! parameters, advx or model fail the merge naming them ([`merge`]).

pub mod columns;
pub mod merge;
pub mod store;

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use anyhow::{Result, bail};
use sha2::{Digest, Sha256};

pub use columns::Rows;
use merge::Merged;
use store::{Record, RecordInfo};

use crate::session::value::ImageSet;

/// Shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 || index >= count {
            bail!("shard {index}/{count} does not exist: a shard is I/N with 0 <= I < N");
        }
        Ok(Shard { index, count })
    }

    pub fn owns(&self, id: u64) -> bool {
        id % self.count as u64 == self.index as u64
    }

    /// The shard a cluster's array task is. Slurm: with `count` given, the
    /// array's indices are the shards' (`SLURM_ARRAY_TASK_ID` of `count`),
    /// so a resubmitted part of the array (`--array=5`) is still shard 5;
    /// without, the task's place in the array as submitted
    /// (`SLURM_ARRAY_TASK_ID` less `SLURM_ARRAY_TASK_MIN`, of
    /// `SLURM_ARRAY_TASK_COUNT`). Kubernetes: `JOB_COMPLETION_INDEX` of
    /// `count`, which an Indexed Job does not say.
    pub fn from_env(env: impl Fn(&str) -> Option<String>, count: Option<usize>) -> Result<Shard> {
        let number = |name: &str| -> Result<Option<usize>> {
            match env(name) {
                None => Ok(None),
                Some(text) => match text.trim().parse() {
                    Ok(n) => Ok(Some(n)),
                    Err(_) => bail!("{name}={text:?} is not a whole number"),
                },
            }
        };
        if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            if let Some(total) = count {
                return Shard::new(id, total);
            }
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let Some(total) = number("SLURM_ARRAY_TASK_COUNT")? else {
                bail!("--shard auto: SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT; give --shards N");
            };
            let Some(index) = id.checked_sub(min) else {
                bail!("--shard auto: SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}");
            };
            return Shard::new(index, total);
        }
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let Some(total) = count else {
                bail!("--shard auto: a Kubernetes Indexed Job does not say its completions; give --shards N");
            };
            return Shard::new(index, total);
        }
        bail!(
            "--shard auto: neither SLURM_ARRAY_TASK_ID (a Slurm job array) nor JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set"
        )
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// `--shard`: `I/N`, or `auto` for the cluster's array index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    Given(Shard),
    Auto,
}

impl FromStr for ShardArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(ShardArg::Auto);
        }
        let wrong = || format!("`{s}` is not a shard: write I/N (e.g. 0/4) or auto");
        let (i, n) = s.split_once('/').ok_or_else(wrong)?;
        let (i, n) = (i.trim().parse().map_err(|_| wrong())?, n.trim().parse().map_err(|_| wrong())?);
        Shard::new(i, n).map(ShardArg::Given).map_err(|e| e.to_string())
    }
}

/// The hash an example is recorded under: SHA-256 of its label and its
/// pixels (f32, little-endian), the first 8 bytes.
pub fn example_hash(set: &ImageSet, position: usize) -> u64 {
    let mut hasher = Sha256::new();
    let label = set.labels.as_ref().map_or(u32::MAX, |l| l[position]);
    hasher.update(label.to_le_bytes());
    for pixel in set.images.index_axis(ndarray::Axis(0), position) {
        hasher.update(pixel.to_le_bytes());
    }
    let digest = hasher.finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

fn hashes(set: &ImageSet) -> Vec<u64> {
    (0..set.len()).map(|p| example_hash(set, p)).collect()
}

/// How a session runs its per-example operations when sharded.
pub enum Mode {
    /// Compute the owned examples and record them.
    Shard(Shard),
    /// Take every example from the shards' records.
    Merge(Merged),
}

/// A session's sharding: the mode, and the records so far.
pub struct Sharding {
    mode: Mode,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Records taken so far (a merge).
    next: usize,
    /// Records made (a shard).
    records: Vec<Record>,
}

impl Sharding {
    pub fn new(mode: Mode) -> Arc<Sharding> {
        Arc::new(Sharding { mode, state: Mutex::default() })
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// What a report says of the run: a shard's part, or a merge's shards.
    pub fn describe(&self) -> String {
        match &self.mode {
            Mode::Shard(s) => format!(
                "shard {s} of a sharded run: the per-example results here are those of the examples whose index is \
                 {} modulo {}; `advx merge` makes the whole run's",
                s.index, s.count
            ),
            Mode::Merge(m) => format!("merged from the {} shards of a sharded run", m.manifest().shards),
        }
    }

    /// In a merge, what the shards recorded that the script did not take
    /// (they ran another script), if anything.
    pub fn unused(&self) -> Option<String> {
        let Mode::Merge(merged) = &self.mode else { return None };
        let taken = self.state.lock().unwrap_or_else(|p| p.into_inner()).next;
        merged.unused(taken)
    }

    /// The records this shard made so far.
    pub fn records(&self) -> Vec<Record> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).records.clone()
    }

    /// The examples of `data` an operation works on, and its rows for
    /// them: all of them computed by `compute` (no sharding), the owned
    /// ones computed and recorded (a shard), or all of them from the
    /// shards' records (a merge; `compute` is not called). `key` names the
    /// operation and what it was given beyond the images.
    pub fn per_example<T: Rows>(
        &self,
        key: String,
        data: &Arc<ImageSet>,
        compute: impl FnOnce(&Arc<ImageSet>) -> Result<T>,
    ) -> Result<(Arc<ImageSet>, T)> {
        match &self.mode {
            Mode::Shard(shard) => {
                let owned: Vec<usize> = (0..data.len()).filter(|&p| shard.owns(data.ids[p])).collect();
                let part = Arc::new(data.select(&owned, data.name.clone())?);
                let rows = compute(&part)?;
                if rows.complete() {
                    let columns = rows.to_columns();
                    let info = RecordInfo { key, data: data.name.clone(), examples: part.len() };
                    let record = Record { info, ids: part.ids.to_vec(), hashes: hashes(&part), columns };
                    self.state.lock().unwrap_or_else(|p| p.into_inner()).records.push(record);
                }
                Ok((part, rows))
            }
            Mode::Merge(merged) => {
                let k = {
                    let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                    state.next += 1;
                    state.next - 1
                };
                let columns = merged.take(k, &key, data, &hashes(data))?;
                Ok((data.clone(), T::from_columns(&columns)?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn a_shard_is_read_from_slurm_or_kubernetes() {
        let slurm = [("SLURM_ARRAY_TASK_ID", "12"), ("SLURM_ARRAY_TASK_MIN", "10"), ("SLURM_ARRAY_TASK_COUNT", "4")];
        assert_eq!(Shard::from_env(env(&slurm), None).unwrap(), Shard { index: 2, count: 4 });
        // A failed task resubmitted alone (`sbatch --array=5`) with the job file's --shards.
        let retried = [("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_MIN", "5"), ("SLURM_ARRAY_TASK_COUNT", "1")];
        assert_eq!(Shard::from_env(env(&retried), Some(64)).unwrap(), Shard { index: 5, count: 64 });
        let k8s = [("JOB_COMPLETION_INDEX", "63")];
        assert_eq!(Shard::from_env(env(&k8s), Some(64)).unwrap(), Shard { index: 63, count: 64 });
        let errors = [
            (Shard::from_env(env(&k8s), None), "give --shards N"),
            (Shard::from_env(env(&k8s), Some(8)), "shard 63/8 does not exist"),
            (Shard::from_env(env(&[("SLURM_ARRAY_TASK_ID", "x")]), None), "not a whole number"),
            (Shard::from_env(env(&[("SLURM_ARRAY_TASK_ID", "1")]), None), "SLURM_ARRAY_TASK_COUNT"),
            (Shard::from_env(env(&[]), Some(4)), "neither SLURM_ARRAY_TASK_ID"),
        ];
        for (result, message) in errors {
            let error = result.unwrap_err().to_string();
            assert!(error.contains(message), "{error}");
        }
    }

    #[test]
    fn shards_split_indices_modulo_their_count() {
        assert_eq!("3/4".parse::<ShardArg>().unwrap(), ShardArg::Given(Shard { index: 3, count: 4 }));
        assert_eq!("auto".parse::<ShardArg>().unwrap(), ShardArg::Auto);
        for wrong in ["4/4", "1/0", "1", "a/b", "-1/4"] {
            assert!(wrong.parse::<ShardArg>().is_err(), "{wrong}");
        }
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        for id in 0..30u64 {
            assert_eq!(shards.iter().filter(|s| s.owns(id)).count(), 1);
        }
        assert!(shards[1].owns(7) && !shards[1].owns(8));
    }

    #[test]
    fn the_hash_of_an_example_covers_its_pixels_and_label() {
        let images = ndarray::Array4::<f32>::zeros((2, 1, 2, 2));
        let set = ImageSet::new("s", images.clone(), Some(vec![1, 1]));
        assert_eq!(example_hash(&set, 0), example_hash(&set, 1));
        let relabelled = ImageSet::new("s", images.clone(), Some(vec![1, 2]));
        assert_ne!(example_hash(&relabelled, 0), example_hash(&relabelled, 1));
        let mut changed = images;
        changed[[1, 0, 1, 1]] = 1e-7;
        let set = ImageSet::new("s", changed, Some(vec![1, 1]));
        assert_ne!(example_hash(&set, 0), example_hash(&set, 1));
    }
}
