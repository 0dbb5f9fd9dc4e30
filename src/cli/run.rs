//! `advx run`: every cell of a script in one session, outputs printed and
//! written to a folder (figures, results.yaml, report.html, a notebook).

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::script::{Loaded, ParamArg};
use crate::interrupt;
use crate::lang::ast::StmtKind;
use crate::report::{self, CellRecord, ModelRecord, OutputFolder, Run, Status};
use crate::runtime::{Device, Runtime};
use crate::session::Session;
use crate::shard::store::Manifest;
use crate::shard::{self, Mode, Shard, ShardArg, Sharding};

/// Run an .advx script: print its text outputs and write every output to a folder.
///
/// The folder gets each figure as PNG and SVG, results.yaml (every shown
/// value, the parameters, the models with their SHA-256, versions, device,
/// timings, and the run's status) and report.html (one self-contained
/// page). [`AFTER_HELP`], which `advx run --help` prints, says how a run
/// ends, what it owns and its exit codes.
#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The script, or a notebook for advx's kernel (.ipynb), whose executed copy goes to
    /// OUT/NAME.ipynb as papermill writes it.
    pub(super) script: PathBuf,
    /// Where to write the outputs [default: SCRIPT_STEM.out in the current folder].
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// Override a `param NAME = ...` default, e.g. -p n=100 (repeatable). VALUE is one literal:
    /// a finite number, a quoted string, true/false, a list of these, a range such as 0..100, or a
    /// bare word (letters, digits, _) taken as a string; never an expression. Quote other text:
    /// -p 'name="fc100-100-10"'.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub(super) params: Vec<ParamArg>,
    /// Also write the run as a notebook with its outputs (ipynb).
    #[arg(long = "to", value_name = "FORMAT", value_parser = ["ipynb"])]
    pub(super) to: Option<String>,
    /// cpu, cuda[:N] or auto. auto runs on GPU 0 when ONNX Runtime's CUDA provider starts there,
    /// else on the CPU, and prints which (`device: ...` on stderr). A model's own `device` option
    /// in the script wins over auto; against an explicit cpu or cuda it must agree, or the
    /// `model` statement fails naming both.
    #[arg(long, default_value = "auto")]
    pub(super) device: Device,
    /// Run shard I of N (I counted from 0): the per-example operations (evaluate, predict, lbfgs,
    /// transfer, units, lipschitz's measurement) compute only the examples whose index is I modulo
    /// N, and OUT/shard.npz records them for `advx merge`. `auto` takes I from a Slurm job array
    /// (with --shards N, SLURM_ARRAY_TASK_ID itself, so that part of an array 0-(N-1) can be
    /// resubmitted; without, its place from SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT) or a
    /// Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with --shards).
    #[arg(long, value_name = "I/N|auto")]
    pub(super) shard: Option<ShardArg>,
    /// With --shard auto, the number of shards where the cluster does not say it (Kubernetes).
    #[arg(long, value_name = "N", requires = "shard")]
    pub(super) shards: Option<usize>,
}

const AFTER_HELP: &str = "\
The report (results.yaml, report.html, the notebook) is written with status `running` before the first \
cell and after each, and at the end `complete`, `failed`, `interrupted` or `terminated`: one that still \
says `running` is incomplete (the run goes on, or was killed). Ctrl-C or SIGTERM stops the running \
operation within about a second, keeps what it finished, and runs no later statement or cell; a second \
signal ends advx at once. One run owns its output folder: a second run on it is refused while the first \
holds its lock (.advx-run.lock), and `save` cannot write over the files the run writes there.

Exit codes: 0 success; 1 a cell failed, a figure file could not be written, or another run holds the \
output folder; 2 the script, a -p value or --out is wrong (nothing ran); 130 Ctrl-C; 143 SIGTERM.";

pub fn run(args: Args) -> Result<i32> {
    let sharding = match shard_of(&args) {
        Ok(shard) => shard.map(|s| Sharding::new(Mode::Shard(s))),
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(2);
        }
    };
    run_as(args, sharding)
}

/// The shard `--shard` names, if any.
fn shard_of(args: &Args) -> Result<Option<Shard>> {
    match args.shard {
        None => Ok(None),
        Some(ShardArg::Given(shard)) => {
            if args.shards.is_some_and(|n| n != shard.count) {
                anyhow::bail!("--shard {shard} and --shards {} disagree", args.shards.unwrap_or_default());
            }
            Ok(Some(shard))
        }
        Some(ShardArg::Auto) => Shard::from_env(|name| std::env::var(name).ok(), args.shards).map(Some),
    }
}

/// Runs the script whole, as a shard, or as the merge of shards.
pub(super) fn run_as(args: Args, sharding: Option<Arc<Sharding>>) -> Result<i32> {
    let loaded = match Loaded::read(&args.script, &args.params)? {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let out = args.out.clone().unwrap_or_else(|| default_out(&args.script));
    let terminal = std::io::stderr().is_terminal();
    let mut session = Session::new()?
        .with_base_dir(crate::session::script_dir(&args.script))
        .with_out_dir(&out)
        .with_device(args.device)
        .with_progress(terminal);
    if let Some(sharding) = &sharding {
        session = session.with_sharding(sharding.clone());
    }
    for p in &args.params {
        session.set_param(&p.name, &p.value)?;
    }
    if let Err(e) = session.check(&loaded.script, &loaded.source()) {
        eprintln!("{}", crate::lang::error::render(&e, terminal));
        return Ok(2);
    }
    interrupt::catch_signals();
    let folder = match OutputFolder::claim(&out, &args.script) {
        Ok(folder) => folder,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(e.exit_code());
        }
    };
    let mut record = new_record(&args.script, args.device)?;
    record.notebook = loaded.notebook.clone();
    record.sharding = sharding.as_deref().map(|s| s.describe());
    if args.device == Device::Auto && loads_models(&loaded) {
        record.device = Runtime::get()?.announce(Device::Auto).to_string();
    }
    let ipynb = args.to.is_some() || record.notebook.is_some();
    let shard = match &sharding {
        Some(s) if let Mode::Shard(shard) = s.mode() => Some(ShardWriter::new(*shard, &args, &loaded, s.clone())?),
        _ => None,
    };
    let mut writer = Writer { dir: folder.path(), ipynb, reported: HashSet::new(), shard };
    let code = run_cells(&mut session, &loaded, &mut record, &mut writer, terminal)?;
    eprintln!("outputs written to {}", out.join("report.html").display());
    Ok(code)
}

fn run_cells(
    session: &mut Session,
    loaded: &Loaded,
    record: &mut Run,
    writer: &mut Writer,
    colour: bool,
) -> Result<i32> {
    let src = loaded.source();
    writer.write(record)?;
    for cell in &loaded.script.cells {
        if let Some(signal) = interrupt::requested() {
            record.status = Status::stopped_by(signal);
            writer.write(record)?;
            eprintln!("{}: no later cell runs", signal.describe());
            return Ok(signal.exit_code());
        }
        let started = Instant::now();
        let result = session.run_cell(cell, &src);
        let index = record.cells.len() + 1;
        print_outputs(index, cell.title.as_deref(), &result.outputs);
        record.cells.push(CellRecord {
            index,
            title: cell.title.clone(),
            source: loaded.text[cell.span.clone()].trim_end().to_string(),
            outputs: result.outputs,
            error: result.error.as_ref().map(|e| e.render(false)),
            seconds: started.elapsed().as_secs_f64(),
        });
        update(record, session);
        record.status = match &result.error {
            None => Status::Running,
            Some(e) => e.signal().map_or(Status::Failed, Status::stopped_by),
        };
        writer.write(record)?;
        if let Some(e) = result.error {
            eprintln!("{}", e.render(colour));
            return Ok(e.exit_code());
        }
    }
    record.status = Status::Complete;
    writer.write(record)?;
    Ok(if writer.reported.is_empty() { 0 } else { 1 })
}

/// Writes the report into the run's folder and says once on stderr which
/// figure files could not be written (the report records them too).
struct Writer<'a> {
    dir: &'a Path,
    ipynb: bool,
    reported: HashSet<String>,
    /// A shard's record file, written with the report.
    shard: Option<ShardWriter>,
}

impl Writer<'_> {
    fn write(&mut self, record: &Run) -> Result<()> {
        if let Some(shard) = &self.shard {
            shard.write(self.dir, record)?;
        }
        let written = report::write(record, self.dir, self.ipynb)
            .with_context(|| format!("writing the outputs to {}", self.dir.display()))?;
        for failure in written.failed {
            if self.reported.insert(failure.clone()) {
                eprintln!("error: {failure}");
            }
        }
        Ok(())
    }
}

/// Writes a shard's `shard.npz`: its manifest, with the run's status and
/// models as the report has them, and the records so far.
struct ShardWriter {
    manifest: Manifest,
    sharding: Arc<Sharding>,
}

impl ShardWriter {
    fn new(shard: Shard, args: &Args, loaded: &Loaded, sharding: Arc<Sharding>) -> Result<ShardWriter> {
        let manifest = Manifest {
            advx: env!("CARGO_PKG_VERSION").to_string(),
            script: args.script.clone(),
            cwd: std::env::current_dir()?,
            script_sha256: hex::encode(Sha256::digest(loaded.text.as_bytes())),
            params: args.params.iter().map(|p| (p.name.clone(), p.value.clone())).collect(),
            shard: shard.index,
            shards: shard.count,
            status: Status::Running.name().to_string(),
            models: Vec::new(),
            device: String::new(),
            records: Vec::new(),
        };
        Ok(ShardWriter { manifest, sharding })
    }

    fn write(&self, dir: &Path, run: &Run) -> Result<()> {
        let records = self.sharding.records();
        let manifest = Manifest {
            status: run.status.name().to_string(),
            models: run.models.iter().map(|m| (m.name.clone(), m.sha256.clone())).collect(),
            device: run.device.clone(),
            records: records.iter().map(|r| r.info.clone()).collect(),
            ..self.manifest.clone()
        };
        shard::store::write(dir, &manifest, &records)
    }
}

fn print_outputs(index: usize, title: Option<&str>, outputs: &[crate::session::Output]) {
    if outputs.is_empty() {
        return;
    }
    let title = title.map(|t| format!(": {t}")).unwrap_or_default();
    println!("── cell {index}{title} ──");
    for output in outputs {
        println!("{}", output.bundle.text.trim_end());
    }
}

fn new_record(script: &Path, device: Device) -> Result<Run> {
    Ok(Run {
        script: script.to_path_buf(),
        started: SystemTime::now(),
        advx_version: env!("CARGO_PKG_VERSION").to_string(),
        ort_version: Runtime::get()?.version(),
        device: device.to_string(),
        params: Vec::new(),
        models: Vec::new(),
        cells: Vec::new(),
        status: Status::Running,
        notebook: None,
        sharding: None,
    })
}

/// Whether the script has a `model` statement, so `auto` will be resolved.
fn loads_models(loaded: &Loaded) -> bool {
    let mut stmts = loaded.script.cells.iter().flat_map(|c| &c.statements);
    stmts.any(|s| matches!(s.kind, StmtKind::Model { .. }))
}

/// Parameters and models as the session has them now, and the device the
/// models actually run on.
fn update(record: &mut Run, session: &Session) {
    record.params = session.params().iter().map(|(n, v)| (n.clone(), v.to_json())).collect();
    record.models = session
        .models()
        .iter()
        .map(|m| ModelRecord {
            name: m.name.clone(),
            path: m.path.clone(),
            sha256: m.sha256.clone(),
            preprocess: m.preprocess.clone(),
            adaptation: m.adaptation().map(ToString::to_string),
        })
        .collect();
    if let Some(model) = session.models().first() {
        record.device = model.device.to_string();
    }
}

fn default_out(script: &Path) -> PathBuf {
    let stem = script.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    PathBuf::from(format!("{stem}.out"))
}
