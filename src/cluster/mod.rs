//! Job files for the engines researchers already run work on: a Slurm job
//! array and the merge job that waits for it (`slurm.rs`), a Kubernetes
//! Indexed Job and its merge Job (`k8s.rs`). advx has no scheduler of its
//! own: each task runs `advx run SCRIPT --shard auto`, which reads its
//! index from the engine's environment, into its own folder, and the
//! merge runs `advx merge` over those folders (see `crate::shard`).

pub mod k8s;
pub mod slurm;

use std::path::{Path, PathBuf};

/// What every engine's job files say: which script, how split, where
/// the outputs go, how each task runs.
#[derive(Debug, Clone)]
pub struct Job {
    /// A name for the jobs, from the script's (`advx-paper`).
    pub name: String,
    /// The advx binary the tasks run.
    pub advx: PathBuf,
    /// The folder the tasks start in, where relative paths resolve.
    pub workdir: PathBuf,
    pub script: PathBuf,
    pub shards: usize,
    /// `-p NAME=VALUE` of every task, as given.
    pub params: Vec<String>,
    /// The run's folder: shard I writes `OUT/shard-I`, the merge `OUT/merged`.
    pub out: PathBuf,
    /// GPUs per task; with any, the tasks run on `cuda`.
    pub gpus: usize,
    /// Environment the tasks need (ADVX_DATA, ORT_DYLIB_PATH), as set here.
    pub env: Vec<(String, String)>,
}

impl Job {
    /// The job name for a script: `advx-` and its stem in lower case,
    /// letters, digits and dashes only (what both engines accept).
    pub fn name_for(script: &Path) -> String {
        let stem = script.file_stem().map(|s| s.to_string_lossy().to_lowercase()).unwrap_or_default();
        let clean: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        format!("advx-{}", clean.trim_matches('-'))
    }

    /// The device the tasks run on.
    pub fn device(&self) -> &'static str {
        if self.gpus > 0 { "cuda" } else { "cpu" }
    }

    /// The folder shard `index` writes, as the task names it.
    pub fn shard_dir(&self, index: &str) -> PathBuf {
        self.out.join(format!("shard-{index}"))
    }

    /// Where the engine writes a task's log, `name` in OUT/logs, from anywhere.
    pub fn log(&self, name: &str) -> String {
        self.workdir.join(&self.out).join("logs").join(name).display().to_string()
    }

    pub fn merged_dir(&self) -> PathBuf {
        self.out.join("merged")
    }

    /// `advx run ... --shard auto` for one task, its folder named by `index`
    /// (a variable the engine fills in).
    pub fn run_args(&self, index: &str) -> Vec<String> {
        let mut args = vec!["run".to_string(), self.script.display().to_string()];
        for p in &self.params {
            args.extend(["-p".to_string(), p.clone()]);
        }
        args.extend(["--shard".into(), "auto".into(), "--shards".into(), self.shards.to_string()]);
        args.extend(["--device".into(), self.device().into()]);
        args.extend(["--out".into(), self.shard_dir(index).display().to_string()]);
        args
    }

    /// `advx merge` over every shard's folder.
    pub fn merge_args(&self) -> Vec<String> {
        let mut args = vec!["merge".to_string()];
        args.extend((0..self.shards).map(|i| self.shard_dir(&i.to_string()).display().to_string()));
        args.extend(["--device".into(), "cpu".into(), "--out".into(), self.merged_dir().display().to_string()]);
        args
    }
}

/// A word for a POSIX shell: as it is when it is safe, else in single quotes.
pub fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_words_are_what_the_engines_and_shells_take() {
        assert_eq!(Job::name_for(Path::new("notebooks/Paper_v2.advx")), "advx-paper-v2");
        assert_eq!(shell_word("n=20"), "n=20");
        assert_eq!(shell_word("name=\"it's\""), "'name=\"it'\\''s\"'");
        assert_eq!(shell_word(""), "''");
    }
}
