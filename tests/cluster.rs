//! The cluster job files. On a real Slurm: a one-node cluster started from Debian's packages
//! (tests/slurm/start.sh), the job files `advx cluster slurm --submit`
//! writes and submits (a 4-task array of the paper's script and the merge
//! that depends on it), and the merged results against one process's run,
//! also after one task is resubmitted alone.

mod common;

use common::{numbers, ok, root};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A free port on loopback (free when asked; the cluster binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The cluster, stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let (ctld, d) = (free_port(), free_port());
        let out = Command::new(root().join("tests/slurm/start.sh"))
            .args([dir.path().to_str().unwrap(), &ctld.to_string(), &d.to_string()])
            .output()
            .unwrap();
        let cluster = Cluster { dir };
        ok(&out);
        cluster
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    fn squeue(&self) -> String {
        let out = Command::new("squeue")
            .args(["--noheader", "--format=%i %T %j %r"])
            .env("SLURM_CONF", self.conf())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn logs(&self) -> String {
        ["slurmctld.log", "slurmd.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.path().join("log").join(f)).unwrap_or_default())
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(root().join("tests/slurm/stop.sh")).arg(self.dir.path()).status();
    }
}

#[test]
fn a_slurm_job_array_and_its_merge_give_the_numbers_of_one_run() {
    let cluster = Cluster::start();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("paper");
    let advx = env!("CARGO_BIN_EXE_advx");
    let written = Command::new(advx)
        .current_dir(root())
        .args(["cluster", "slurm", "notebooks/paper.advx", "--shards", "4", "-p", "n=12", "--cpus-per-task", "1"])
        .args(["--out", out.to_str().unwrap(), "--submit"])
        .env("SLURM_CONF", cluster.conf())
        .env("ADVX_THREADS", "1")
        .output()
        .unwrap();
    ok(&written);
    let submitted = String::from_utf8_lossy(&written.stdout).into_owned();
    assert!(submitted.contains("submitted the shards as job"), "{submitted}");

    let merged = out.join("merged");
    let started = Instant::now();
    loop {
        let queue = cluster.squeue();
        if queue.trim().is_empty() {
            break;
        }
        // afterok: a failed shard leaves the merge pending for ever.
        let failed = queue.contains("DependencyNeverSatisfied");
        assert!(
            !failed && started.elapsed() < Duration::from_secs(600),
            "{}:\n{queue}\n{}\n{}",
            if failed { "a shard task failed" } else { "still queued after 10 minutes" },
            job_logs(&out),
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(merged.join("results.yaml").exists(), "no merge:\n{}", job_logs(&out));
    for i in 0..4 {
        assert!(out.join(format!("shard-{i}/shard.npz")).exists(), "no record of shard {i}:\n{}", job_logs(&out));
    }

    let one = work.path().join("one");
    let single = Command::new(advx)
        .current_dir(root())
        .args(["run", "notebooks/paper.advx", "-p", "n=12", "--device", "cpu", "--out", one.to_str().unwrap()])
        .env("ADVX_THREADS", "1")
        .output()
        .unwrap();
    ok(&single);
    assert_eq!(numbers(&merged), numbers(&one));

    // A task resubmitted alone, as the README says to retry a failed one,
    // is still its shard: it replaces its folder's record, and the merge
    // run again still gives one run's numbers.
    let record = out.join("shard-1/shard.npz");
    let before = std::fs::metadata(&record).unwrap().modified().unwrap();
    std::fs::remove_dir_all(&merged).unwrap();
    let jobs = out.join("jobs");
    for args in [&["--array=1", "shards.sbatch"][..], &["merge.sbatch"][..]] {
        let sbatch = Command::new("sbatch")
            .arg("--wait")
            .args(args)
            .current_dir(&jobs)
            .env("SLURM_CONF", cluster.conf())
            .output();
        let sbatch = sbatch.unwrap();
        assert!(sbatch.status.success(), "{}\n{}", String::from_utf8_lossy(&sbatch.stderr), job_logs(&out));
    }
    assert!(std::fs::metadata(&record).unwrap().modified().unwrap() > before);
    assert_eq!(numbers(&merged), numbers(&one));
}

/// The end of every log the jobs wrote (OUT/logs), each under its name:
/// where a failed task says why.
fn job_logs(out: &std::path::Path) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(out.join("logs"))
        .map(|dir| dir.filter_map(|entry| entry.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            format!("--- {} (the last lines)\n{}\n", f.display(), lines[lines.len().saturating_sub(15)..].join("\n"))
        })
        .collect()
}

/// The Kubernetes manifests `advx cluster k8s` writes, checked against the
/// Job schema of Kubernetes 1.37 by kubernetes-validate (PyPI; no live
/// cluster here), strictly: an unknown field fails, which a misspelt copy
/// shows the validator does.
#[test]
fn the_kubernetes_manifests_are_valid_jobs() {
    let jobs = tempfile::tempdir().unwrap();
    let written = Command::new(env!("CARGO_BIN_EXE_advx"))
        .current_dir(root())
        .args(["cluster", "k8s", "notebooks/paper.advx", "--shards", "64", "--gpus-per-task", "1", "-p", "n=10000"])
        .args(["--image", "registry.example/advx:0.1", "--claim", "advx-work", "--jobs", jobs.path().to_str().unwrap()])
        .output()
        .unwrap();
    ok(&written);
    let validate = |files: &[PathBuf]| {
        Command::new(root().join(".venv/bin/kubernetes-validate"))
            .args(["--strict", "--kubernetes-version", "1.37.0"])
            .args(files)
            .output()
            .expect("kubernetes-validate is in .venv (scripts/test.sh installs it)")
    };
    let manifests = [jobs.path().join("shards.yaml"), jobs.path().join("merge.yaml")];
    let out = validate(&manifests);
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(text.matches("passed").count(), 2, "{text}");
    let shards = std::fs::read_to_string(&manifests[0]).unwrap();
    assert!(shards.contains("completionMode: Indexed") && shards.contains("completions: 64"), "{shards}");
    let misspelt = jobs.path().join("misspelt.yaml");
    std::fs::write(&misspelt, shards.replace("completionMode", "completionMod")).unwrap();
    assert!(!validate(&[misspelt]).status.success());
}
