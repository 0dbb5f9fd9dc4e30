//! Kubernetes: an Indexed Job (one completion per shard, each pod's index
//! from its `batch.kubernetes.io/job-completion-index` annotation) and a
//! merge Job. Kubernetes has no dependencies between Jobs, so `submit.sh`
//! applies the shards, waits for their Job to complete, then applies the
//! merge. Every pod mounts one volume claim at the working folder, where
//! the shards write and the merge reads.

use serde_json::{Value as Json, json};

use super::{Job, shell_word};

/// What the pods run on and with.
#[derive(Debug, Clone)]
pub struct Pods {
    /// The container image, with advx, ONNX Runtime, the script, models and data.
    pub image: String,
    /// A PersistentVolumeClaim mounted at the job's working folder.
    pub claim: Option<String>,
    /// Shards running at once at most.
    pub parallelism: usize,
    /// Retries of each shard's pod before the Job fails.
    pub retries: usize,
}

/// The Indexed Job: shard I runs in the pod of completion index I.
pub fn shards_manifest(job: &Job, pods: &Pods) -> Json {
    let mut env = vec![json!({
        "name": "SHARD",
        "valueFrom": { "fieldRef": { "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']" } }
    })];
    env.extend(job.env.iter().map(|(name, value)| json!({ "name": name, "value": value })));
    let container = container(job, pods, "shard", job.run_args("$(SHARD)"), env);
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": format!("{}-shards", job.name), "labels": { "app.kubernetes.io/name": "advx" } },
        "spec": {
            "completionMode": "Indexed",
            "completions": job.shards,
            "parallelism": pods.parallelism.min(job.shards),
            "backoffLimitPerIndex": pods.retries,
            "template": pod(pods, container),
        }
    })
}

/// The merge Job, applied once the shards' Job has completed.
pub fn merge_manifest(job: &Job, pods: &Pods) -> Json {
    let env: Vec<Json> = job.env.iter().map(|(name, value)| json!({ "name": name, "value": value })).collect();
    let merge = Job { gpus: 0, ..job.clone() };
    let container = container(&merge, pods, "merge", job.merge_args(), env);
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": format!("{}-merge", job.name), "labels": { "app.kubernetes.io/name": "advx" } },
        "spec": { "backoffLimit": pods.retries, "template": pod(pods, container) }
    })
}

/// Applies the shards, waits for them, applies the merge.
pub fn submit_script(job: &Job, shards: &str, merge: &str) -> String {
    format!(
        "#!/bin/bash\n# Runs the shards as an Indexed Job, then the merge once every index has succeeded.\n\
         set -euo pipefail\ncd \"$(dirname \"$0\")\"\nkubectl apply -f {shards}\n\
         kubectl wait --for=condition=complete --timeout=-1s job/{name}-shards\nkubectl apply -f {merge}\n\
         kubectl wait --for=condition=complete --timeout=-1s job/{name}-merge\n",
        shards = shell_word(shards),
        merge = shell_word(merge),
        name = job.name
    )
}

fn container(job: &Job, pods: &Pods, name: &str, args: Vec<String>, env: Vec<Json>) -> Json {
    let mut container = json!({
        "name": name,
        "image": pods.image,
        "workingDir": job.workdir.display().to_string(),
        "command": [job.advx.display().to_string()],
        "args": args,
        "env": env,
    });
    if job.gpus > 0 {
        container["resources"] = json!({ "limits": { "nvidia.com/gpu": job.gpus } });
    }
    if pods.claim.is_some() {
        container["volumeMounts"] = json!([{ "name": "work", "mountPath": job.workdir.display().to_string() }]);
    }
    container
}

fn pod(pods: &Pods, container: Json) -> Json {
    let mut spec = json!({ "restartPolicy": "Never", "containers": [container] });
    if let Some(claim) = &pods.claim {
        spec["volumes"] = json!([{ "name": "work", "persistentVolumeClaim": { "claimName": claim } }]);
    }
    json!({ "spec": spec })
}

/// A manifest as YAML.
pub fn yaml(manifest: &Json) -> String {
    serde_yaml::to_string(manifest).expect("JSON is YAML")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn each_index_runs_its_shard_and_the_merge_reads_them_all() {
        let job = Job {
            name: "advx-paper".into(),
            advx: PathBuf::from("/usr/local/bin/advx"),
            workdir: PathBuf::from("/work"),
            script: PathBuf::from("notebooks/paper.advx"),
            shards: 8,
            params: vec!["n=10000".into()],
            out: PathBuf::from("runs/paper"),
            gpus: 1,
            env: Vec::new(),
        };
        let pods =
            Pods { image: "registry.example/advx:1".into(), claim: Some("study".into()), parallelism: 4, retries: 2 };
        let shards = shards_manifest(&job, &pods);
        assert_eq!(shards["spec"]["completionMode"], "Indexed");
        assert_eq!(shards["spec"]["completions"], 8);
        assert_eq!(shards["spec"]["parallelism"], 4);
        let container = &shards["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["resources"]["limits"]["nvidia.com/gpu"], 1);
        let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert_eq!(args[args.len() - 1], "runs/paper/shard-$(SHARD)");
        assert!(args.windows(2).any(|w| w == ["--shards", "8"]));
        let merge = merge_manifest(&job, &pods);
        let container = &merge["spec"]["template"]["spec"]["containers"][0];
        assert!(container.get("resources").is_none());
        assert_eq!(container["args"][8], "runs/paper/shard-7");
        assert!(submit_script(&job, "shards.yaml", "merge.yaml").contains("job/advx-paper-shards"));
    }
}
