//! `advx cluster slurm|k8s`: job files that run a script's shards on a
//! cluster and merge them (see `crate::cluster`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::script::ParamArg;
use crate::cluster::{Job, k8s, slurm};

#[derive(clap::Subcommand)]
pub enum Command {
    /// An sbatch job array (one task per shard) and a merge job that depends on it.
    Slurm(SlurmArgs),
    /// A Kubernetes Indexed Job (one completion per shard) and a merge Job.
    K8s(K8sArgs),
}

/// What both engines' job files need.
#[derive(clap::Args)]
pub struct Common {
    /// The script the tasks run.
    script: PathBuf,
    /// How many shards (tasks) to split the script's examples over.
    #[arg(long)]
    shards: usize,
    /// Override a `param NAME = ...` default in every task, as `advx run -p` (repeatable).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<ParamArg>,
    /// GPUs per task; with any, the tasks run with --device cuda, else on the CPU.
    #[arg(long, default_value_t = 0)]
    gpus_per_task: usize,
    /// The run's folder, relative to the working folder: shard I writes OUT/shard-I, the merge
    /// OUT/merged [default: runs/SCRIPT_STEM].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where to write the job files [default: OUT/jobs].
    #[arg(long)]
    jobs: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct SlurmArgs {
    #[command(flatten)]
    common: Common,
    /// The partition to run in.
    #[arg(long)]
    partition: Option<String>,
    /// Each task's time limit, as sbatch takes it (e.g. 2:00:00).
    #[arg(long)]
    time: Option<String>,
    /// CPUs per task.
    #[arg(long)]
    cpus_per_task: Option<usize>,
    /// Memory per task, as sbatch takes it (e.g. 16G).
    #[arg(long)]
    mem: Option<String>,
    /// Submit both with sbatch after writing them.
    #[arg(long)]
    submit: bool,
}

#[derive(clap::Args)]
pub struct K8sArgs {
    #[command(flatten)]
    common: Common,
    /// The container image: advx, ONNX Runtime, and the script, models and data at the paths
    /// the script names.
    #[arg(long)]
    image: String,
    /// The folder the pods start in, where relative paths resolve [default: /work].
    #[arg(long, default_value = "/work")]
    workdir: PathBuf,
    /// The advx binary inside the image.
    #[arg(long, default_value = "advx")]
    advx: PathBuf,
    /// A PersistentVolumeClaim to mount at --workdir, shared by the shards and the merge.
    #[arg(long)]
    claim: Option<String>,
    /// Shards running at once at most [default: all].
    #[arg(long)]
    parallelism: Option<usize>,
    /// Retries of each shard's pod before the Job fails.
    #[arg(long, default_value_t = 2)]
    retries: usize,
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Slurm(args) => write_slurm(args),
        Command::K8s(args) => write_k8s(args),
    }
}

fn write_slurm(args: SlurmArgs) -> Result<()> {
    let workdir = std::env::current_dir()?;
    let advx = std::env::current_exe().context("cannot find the advx binary this is")?;
    let (job, dir) = job(&args.common, advx, workdir, host_env())?;
    let resources = slurm::Resources {
        partition: args.partition,
        time: args.time,
        cpus_per_task: args.cpus_per_task,
        memory: args.mem,
    };
    write(&dir, "shards.sbatch", &slurm::array_script(&job, &resources))?;
    write(&dir, "merge.sbatch", &slurm::merge_script(&job, &resources))?;
    let submit = dir.join("submit.sh");
    write(&dir, "submit.sh", &slurm::submit_script(&job, "shards.sbatch", "merge.sbatch"))?;
    executable(&submit)?;
    eprintln!("wrote {} (shards.sbatch, merge.sbatch, submit.sh)", dir.display());
    if args.submit {
        let status = std::process::Command::new("bash").arg(&submit).status().context("cannot run bash")?;
        if !status.success() {
            bail!("{} failed ({status})", submit.display());
        }
    }
    Ok(())
}

fn write_k8s(args: K8sArgs) -> Result<()> {
    let (job, dir) = job(&args.common, args.advx, args.workdir, Vec::new())?;
    let pods = k8s::Pods {
        image: args.image,
        claim: args.claim,
        parallelism: args.parallelism.unwrap_or(job.shards),
        retries: args.retries,
    };
    write(&dir, "shards.yaml", &k8s::yaml(&k8s::shards_manifest(&job, &pods)))?;
    write(&dir, "merge.yaml", &k8s::yaml(&k8s::merge_manifest(&job, &pods)))?;
    write(&dir, "submit.sh", &k8s::submit_script(&job, "shards.yaml", "merge.yaml"))?;
    executable(&dir.join("submit.sh"))?;
    eprintln!("wrote {} (shards.yaml, merge.yaml, submit.sh)", dir.display());
    Ok(())
}

/// The job, and the folder its files go to.
fn job(common: &Common, advx: PathBuf, workdir: PathBuf, env: Vec<(String, String)>) -> Result<(Job, PathBuf)> {
    if common.shards == 0 {
        bail!("--shards must be at least 1");
    }
    if common.script.is_absolute() && !common.script.starts_with(&workdir) {
        bail!("{} is outside the working folder {}", common.script.display(), workdir.display());
    }
    let stem = common.script.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    let out = common.out.clone().unwrap_or_else(|| Path::new("runs").join(&stem));
    let dir = common.jobs.clone().unwrap_or_else(|| out.join("jobs"));
    let job = Job {
        name: Job::name_for(&common.script),
        advx,
        workdir,
        script: common.script.clone(),
        shards: common.shards,
        params: common.params.iter().map(|p| format!("{}={}", p.name, p.value)).collect(),
        out,
        gpus: common.gpus_per_task,
        env,
    };
    Ok((job, dir))
}

/// What the tasks need from this shell: where the data and ONNX Runtime are.
fn host_env() -> Vec<(String, String)> {
    ["ADVX_DATA", "ORT_DYLIB_PATH"]
        .into_iter()
        .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v)))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    crate::artefact::write_atomic(&dir.join(name), text.as_bytes())
}

fn executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}
