//! Sharded runs: `advx run --shard I/N` on each part, `advx merge` back to
//! one run's outputs, and the merge's refusals.

mod common;

use common::{numbers, ok, root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn advx(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_advx"));
    command.args(args).env("ADVX_THREADS", "2");
    for var in ["SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT", "JOB_COMPLETION_INDEX"] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied()).output().expect("advx runs")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every lbfgs result's example count in a results.yaml.
fn attacked(dir: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(dir.join("results.yaml")).unwrap();
    let value: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut counts = Vec::new();
    fn walk(v: &serde_yaml::Value, counts: &mut Vec<u64>) {
        match v {
            serde_yaml::Value::Mapping(map) => {
                if let Some(lbfgs) = map.get("lbfgs") {
                    counts.push(lbfgs["examples"].as_u64().unwrap());
                }
                map.iter().for_each(|(_, v)| walk(v, counts));
            }
            serde_yaml::Value::Sequence(items) => items.iter().for_each(|v| walk(v, counts)),
            _ => {}
        }
    }
    walk(&value, &mut counts);
    counts
}

#[test]
fn four_shards_of_the_paper_script_merge_into_the_numbers_of_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let script = root().join("notebooks/paper.advx");
    let one = dir.path().join("one");
    ok(&advx(&["run", path(&script), "-p", "n=20", "--out", path(&one)], &[]));
    let shards: Vec<PathBuf> = (0..4).map(|i| dir.path().join(format!("shard-{i}"))).collect();
    for (i, out) in shards.iter().enumerate() {
        let given = format!("{i}/4");
        let slurm = (i + 10).to_string();
        let k8s = i.to_string();
        // Shard 2 as a Slurm array task (indices 10..13), shard 3 as a Kubernetes index, the rest named.
        let (shard, env): (&str, Vec<(&str, &str)>) = match i {
            2 => (
                "auto",
                vec![("SLURM_ARRAY_TASK_ID", &slurm), ("SLURM_ARRAY_TASK_MIN", "10"), ("SLURM_ARRAY_TASK_COUNT", "4")],
            ),
            3 => ("auto", vec![("JOB_COMPLETION_INDEX", &k8s)]),
            _ => (&given, vec![]),
        };
        let mut args = vec!["run", path(&script), "-p", "n=20", "--out", path(out), "--shard", shard];
        if i == 3 {
            args.extend(["--shards", "4"]);
        }
        ok(&advx(&args, &env));
        // Each shard attacked its 5 of the 20 images, with every model.
        assert!(attacked(out).iter().all(|&n| n == 5), "{:?}", attacked(out));
    }
    let merged = dir.path().join("merged");
    let mut args = vec!["merge"];
    args.extend(shards.iter().rev().map(|s| path(s)));
    args.extend(["--out", path(&merged)]);
    ok(&advx(&args, &[]));
    assert!(attacked(&merged).iter().all(|&n| n == 20), "{:?}", attacked(&merged));
    assert_eq!(numbers(&merged), numbers(&one));
    assert_ne!(numbers(&shards[0]), numbers(&one));
    let figures: Vec<PathBuf> = std::fs::read_dir(&one)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    assert!(figures.len() >= 10, "{figures:?}");
    for figure in figures {
        let name = figure.file_name().unwrap();
        assert!(std::fs::read(&figure).unwrap() == std::fs::read(merged.join(name)).unwrap(), "{name:?} differs");
    }
}

/// A small script of four per-example operations; in two shards, each
/// holds fewer images than `units` ranks, which only the merge can rank.
fn small_script(dir: &Path) -> PathBuf {
    let model = root().join("models/mnist/fc100-100-10.onnx");
    let script = dir.join("small.advx");
    let text = format!(
        "param n = 12\nmodel fc100 = onnx \"{}\"\nshow evaluate fc100 on mnist.test[0..n]\n\
         let adv = lbfgs fc100 on mnist.test[0..n] {{ lagrangian: 50 }}\nshow transfer adv to fc100\n\
         show units fc100 layer: \"advx_sigmoid\" on mnist.test[0..n] {{ natural: 10, random: 10, top: 8 }}\n",
        model.display()
    );
    std::fs::write(&script, text).unwrap();
    script
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails unless the command was refused as a usage error (exit 2) saying `why`.
fn refused(out: &Output, why: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", stderr(out));
    assert!(stderr(out).contains(why), "{}", stderr(out));
}

#[test]
fn a_merge_names_missing_duplicated_foreign_and_stale_shards() {
    let dir = tempfile::tempdir().unwrap();
    let script = small_script(dir.path());
    let shard = |i: usize, n: &str, name: &str| {
        let out = dir.path().join(name);
        ok(&advx(&["run", path(&script), "-p", n, "--shard", &format!("{i}/2"), "--out", path(&out)], &[]));
        out
    };
    let (s0, s1, other) = (shard(0, "n=12", "s0"), shard(1, "n=12", "s1"), shard(1, "n=10", "other"));
    let merge = |dirs: &[&PathBuf]| {
        let mut args = vec!["merge".to_string()];
        args.extend(dirs.iter().map(|d| path(d).to_string()));
        args.extend(["--out".into(), path(&dir.path().join("merged")).into()]);
        advx(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
    };
    let out = merge(&[&s0]);
    refused(&out, "shard(s) 1/2 missing");
    let out = merge(&[&s0, &s1, &s0]);
    refused(&out, "shard 0/2 is given 2 times");
    let out = merge(&[&s0, &other]);
    refused(&out, "the parameters");
    let out = merge(&[&s0, &dir.path().join("nowhere")]);
    refused(&out, "has no shard.npz");

    // A retried task writes its folder again; the merge takes the new one.
    let again = shard(1, "n=12", "s1");
    ok(&merge(&[&s0, &again]));
    let merged = dir.path().join("merged");
    let whole = dir.path().join("whole");
    ok(&advx(&["run", path(&script), "--out", path(&whole)], &[]));
    assert_eq!(numbers(&merged), numbers(&whole));
    let results = |dir: &Path| std::fs::read_to_string(dir.join("results.yaml")).unwrap();
    assert!(results(&s0).contains("fewer than the top 8"), "{}", results(&s0));
    assert!(!results(&merged).contains("fewer than the top 8") && results(&merged).contains("purity"));

    std::fs::write(&script, std::fs::read_to_string(&script).unwrap() + "show 1\n").unwrap();
    let out = merge(&[&s0, &s1]);
    refused(&out, "changed since the shards ran it");
}

#[test]
fn a_shard_that_did_not_finish_is_not_merged() {
    let dir = tempfile::tempdir().unwrap();
    let script = small_script(dir.path());
    let broken = dir.path().join("broken.advx");
    let text = std::fs::read_to_string(&script).unwrap() + "show evaluate fc100 on mnist.test[0..n] where label > 20\n";
    std::fs::write(&broken, text).unwrap();
    let s0 = dir.path().join("s0");
    let out = advx(&["run", path(&broken), "--shard", "0/1", "--out", path(&s0)], &[]);
    assert!(!out.status.success());
    let out = advx(&["merge", path(&s0), "--out", path(&dir.path().join("m"))], &[]);
    refused(&out, "is failed, not complete; rerun it");
}

#[test]
fn shard_options_are_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let script = small_script(dir.path());
    let out = advx(&["run", path(&script), "--shard", "4/4"], &[]);
    refused(&out, "shard 4/4 does not exist");
    let out = advx(&["run", path(&script), "--shard", "auto"], &[]);
    refused(&out, "neither SLURM_ARRAY_TASK_ID");
    let out = advx(&["run", path(&script), "--shard", "auto"], &[("JOB_COMPLETION_INDEX", "1")]);
    refused(&out, "give --shards N");
}
