//! `advx merge`: the shards of a sharded run (`advx run --shard I/N`) made
//! into the outputs of one run (see `crate::shard`).

use std::path::PathBuf;

use anyhow::Result;
use sha2::{Digest, Sha256};

use super::run;
use crate::runtime::Device;
use crate::shard::merge::Merged;
use crate::shard::{Mode, Sharding, store};

/// Merge the shards of a run into one run's outputs.
#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The shards' output folders (each holds the shard.npz that `advx run --shard` writes):
    /// every shard of the run, once.
    #[arg(required = true, value_name = "SHARD_DIR")]
    shards: Vec<PathBuf>,
    /// Where to write the merged outputs (results.yaml, report.html, figures).
    #[arg(long)]
    out: PathBuf,
    /// Also write the merged run as a notebook with its outputs (ipynb).
    #[arg(long = "to", value_name = "FORMAT", value_parser = ["ipynb"])]
    to: Option<String>,
    /// cpu, cuda[:N] or auto, for what the merge computes itself (see `advx run --help`).
    #[arg(long, default_value = "auto")]
    device: Device,
}

const AFTER_HELP: &str = "\
The merge runs the script once more, with the parameters the shards ran with, over the whole data: each \
per-example operation takes its examples' results from the shards instead of computing them, and every \
summary, table, figure and report is made from all of them as one run makes it. The shards must be every \
shard of one run, each once and complete, of the same script (unchanged since), parameters, advx and \
models; the merge fails listing what is not so, and fails naming any example no shard recorded.

Exit codes: 0 success; 1 the merge failed; 2 the shards do not belong together or cannot be read.";

pub fn run(args: Args) -> Result<i32> {
    let merged = match read(&args.shards) {
        Ok(merged) => merged,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(2);
        }
    };
    let manifest = merged.manifest().clone();
    let script = merged.script();
    let params =
        manifest.params.iter().map(|(name, value)| format!("{name}={value}").parse()).collect::<Result<Vec<_>>>()?;
    let sharding = Sharding::new(Mode::Merge(merged));
    let run_args =
        run::Args { script, out: Some(args.out), params, to: args.to, device: args.device, shard: None, shards: None };
    let code = run::run_as(run_args, Some(sharding.clone()))?;
    if code == 0
        && let Some(unused) = sharding.unused()
    {
        eprintln!("error: {unused}");
        return Ok(1);
    }
    Ok(code)
}

/// The shards, checked to be one run's, of the script as it is now.
fn read(dirs: &[PathBuf]) -> Result<Merged> {
    let shards = dirs.iter().map(|d| store::read(d)).collect::<Result<Vec<_>>>()?;
    let merged = Merged::new(shards)?;
    let script = merged.script();
    let (text, _) = super::script::read_text(&script)
        .map_err(|e| anyhow::anyhow!("the shards ran {}, which cannot be read now: {e:#}", script.display()))?;
    if hex::encode(Sha256::digest(text.as_bytes())) != merged.manifest().script_sha256 {
        anyhow::bail!("{} changed since the shards ran it: rerun the shards", script.display());
    }
    Ok(merged)
}
