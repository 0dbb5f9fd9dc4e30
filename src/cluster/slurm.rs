//! Slurm: an sbatch array script (one task per shard), a merge script, and
//! `submit.sh`, which submits the array and then the merge with
//! `--dependency=afterok` on it, so the merge starts once every task has
//! succeeded.

use super::{Job, shell_word};

/// What `#SBATCH` lines say beyond the array.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub partition: Option<String>,
    /// `--time`, as Slurm writes it (`2:00:00`, `1-0`).
    pub time: Option<String>,
    pub cpus_per_task: Option<usize>,
    /// `--mem`, as Slurm writes it (`16G`).
    pub memory: Option<String>,
}

/// The array script: each task runs its shard.
pub fn array_script(job: &Job, resources: &Resources) -> String {
    let mut s = header(job, &format!("{}-shards", job.name), resources);
    s.push_str(&format!("#SBATCH --array=0-{}\n", job.shards - 1));
    s.push_str(&format!("#SBATCH --output={}\n", shell_word(&job.log("shard-%a.log"))));
    if job.gpus > 0 {
        s.push_str(&format!("#SBATCH --gpus-per-task={}\n#SBATCH --ntasks=1\n", job.gpus));
    }
    s.push_str(&body(job));
    s.push_str("# The array's indices are the shards': task I runs shard I of N into OUT/shard-I.\n");
    s.push_str(&command(job, &job.run_args("${SLURM_ARRAY_TASK_ID}")));
    s
}

/// The merge script, submitted to start after the whole array.
pub fn merge_script(job: &Job, resources: &Resources) -> String {
    let merge = Resources { cpus_per_task: resources.cpus_per_task, ..resources.clone() };
    let mut s = header(job, &format!("{}-merge", job.name), &merge);
    s.push_str(&format!("#SBATCH --output={}\n", shell_word(&job.log("merge.log"))));
    s.push_str(&body(job));
    s.push_str(&command(job, &job.merge_args()));
    s
}

/// Submits the array, then the merge depending on it; prints both job ids.
pub fn submit_script(job: &Job, array: &str, merge: &str) -> String {
    format!(
        "#!/bin/bash\n# Submits the shards as a job array, then the merge to run once every task has succeeded.\n\
         set -euo pipefail\nmkdir -p {logs}\ncd \"$(dirname \"$0\")\"\n\
         array=$(sbatch --parsable {array})\narray=${{array%%;*}}\n\
         merge=$(sbatch --parsable --dependency=afterok:\"$array\" {merge})\n\
         echo \"submitted the shards as job $array and the merge as job $merge\"\n",
        logs = shell_word(&job.log("")),
    )
}

fn header(job: &Job, name: &str, resources: &Resources) -> String {
    let mut s = format!("#!/bin/bash\n# Written by `advx cluster slurm` for {}.\n", job.script.display());
    s.push_str(&format!("#SBATCH --job-name={name}\n"));
    s.push_str(&format!("#SBATCH --chdir={}\n", shell_word(&job.workdir.display().to_string())));
    let lines = [
        ("partition", resources.partition.clone()),
        ("time", resources.time.clone()),
        ("cpus-per-task", resources.cpus_per_task.map(|c| c.to_string())),
        ("mem", resources.memory.clone()),
    ];
    for (option, value) in lines {
        if let Some(value) = value {
            s.push_str(&format!("#SBATCH --{option}={}\n", shell_word(&value)));
        }
    }
    s
}

fn body(job: &Job) -> String {
    let mut s = String::from("set -euo pipefail\n");
    for (name, value) in &job.env {
        s.push_str(&format!("export {name}={}\n", shell_word(value)));
    }
    s
}

/// `exec advx ARGS`, the words quoted except a `${VAR}` the task fills in.
fn command(job: &Job, args: &[String]) -> String {
    let words: Vec<String> = std::iter::once(job.advx.display().to_string())
        .chain(args.iter().cloned())
        .map(|w| if w.contains("${") { format!("\"{w}\"") } else { shell_word(&w) })
        .collect();
    format!("exec {}\n", words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn job(gpus: usize) -> Job {
        Job {
            name: "advx-paper".into(),
            advx: PathBuf::from("/opt/advx/bin/advx"),
            workdir: PathBuf::from("/home/me/study"),
            script: PathBuf::from("notebooks/paper.advx"),
            shards: 64,
            params: vec!["n=10000".into()],
            out: PathBuf::from("runs/paper"),
            gpus,
            env: vec![("ADVX_DATA".into(), "/data/my sets".into())],
        }
    }

    #[test]
    fn the_array_runs_one_shard_per_task_and_the_merge_waits_for_all() {
        let resources = Resources { partition: Some("gpu".into()), time: Some("2:00:00".into()), ..Default::default() };
        let array = array_script(&job(1), &resources);
        for line in [
            "#SBATCH --array=0-63",
            "#SBATCH --chdir=/home/me/study",
            "#SBATCH --output=/home/me/study/runs/paper/logs/shard-%a.log",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=2:00:00",
            "#SBATCH --gpus-per-task=1",
            "export ADVX_DATA='/data/my sets'",
            "exec /opt/advx/bin/advx run notebooks/paper.advx -p n=10000 --shard auto --shards 64 --device cuda \
             --out \"runs/paper/shard-${SLURM_ARRAY_TASK_ID}\"",
        ] {
            assert!(array.lines().any(|l| l == line), "no line {line:?} in\n{array}");
        }
        let merge = merge_script(&job(0), &resources);
        assert!(merge.contains("merge runs/paper/shard-0 runs/paper/shard-1 "), "{merge}");
        assert!(merge.contains("runs/paper/shard-63 --device cpu --out runs/paper/merged"), "{merge}");
        assert!(!array_script(&job(0), &resources).contains("gpus"));
        assert!(submit_script(&job(0), "a.sbatch", "m.sbatch").contains("--dependency=afterok:\"$array\" m.sbatch"));
    }
}
