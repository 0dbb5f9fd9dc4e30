//! `advx run`: every cell of a script in one session, outputs printed and
//! written to a folder (figures, results.yaml, report.html, a notebook).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};

use super::script::{Loaded, ParamArg};
use crate::interrupt;
use crate::report::{self, CellRecord, ModelRecord, Run};
use crate::runtime::{Device, Runtime};
use crate::session::Session;

/// Run an .advx script: print its text outputs and write every output to a folder.
///
/// The folder gets each figure as PNG and SVG, results.yaml (every shown
/// value, the parameters, the models with their SHA-256, versions, device,
/// timings) and report.html (one self-contained page). A failing cell stops
/// the run; the outputs of the cells before it are kept and written.
#[derive(clap::Args)]
pub struct Args {
    /// The script.
    script: PathBuf,
    /// Where to write the outputs [default: SCRIPT_STEM.out in the current folder].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override a `param NAME = ...` default, e.g. -p n=100 (repeatable).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<ParamArg>,
    /// Also write the run as a notebook with its outputs (ipynb).
    #[arg(long = "to", value_name = "FORMAT", value_parser = ["ipynb"])]
    to: Option<String>,
    /// cpu, cuda[:N] or auto.
    #[arg(long, default_value = "auto")]
    device: Device,
}

/// Exit code: 0 success, 1 a cell failed, 2 the script is wrong.
pub fn run(args: Args) -> Result<i32> {
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
    for p in &args.params {
        session.set_param(&p.name, &p.value)?;
    }
    if let Err(e) = session.check(&loaded.script, &loaded.source()) {
        eprintln!("{}", crate::lang::error::render(&e, terminal));
        return Ok(2);
    }
    interrupt::catch_signals();
    let mut record = new_record(&args.script, args.device)?;
    let code = run_cells(&mut session, &loaded, &mut record, &out, args.to.is_some(), terminal)?;
    eprintln!("outputs written to {}", out.join("report.html").display());
    Ok(code)
}

fn run_cells(
    session: &mut Session,
    loaded: &Loaded,
    record: &mut Run,
    out: &Path,
    ipynb: bool,
    colour: bool,
) -> Result<i32> {
    let src = loaded.source();
    for cell in &loaded.script.cells {
        let started = Instant::now();
        let result = session.run_cell(cell, &src);
        let index = record.cells.len() + 1;
        print_outputs(index, cell.title.as_deref(), &result.outputs);
        let error = result.error.as_ref().map(|e| e.render(false));
        record.cells.push(CellRecord {
            index,
            title: cell.title.clone(),
            source: loaded.text[cell.span.clone()].trim_end().to_string(),
            outputs: result.outputs,
            error,
            seconds: started.elapsed().as_secs_f64(),
        });
        update(record, session);
        record.interrupted = interrupt::requested().is_some();
        report::write(record, out, ipynb).with_context(|| format!("writing the outputs to {}", out.display()))?;
        if let Some(e) = result.error {
            eprintln!("{}", e.render(colour));
            return Ok(e.exit_code());
        }
    }
    Ok(0)
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
        interrupted: false,
    })
}

/// Parameters and models as the session has them now, and the device the
/// models actually run on.
fn update(record: &mut Run, session: &Session) {
    record.params = session.params().iter().map(|(n, v)| (n.clone(), v.to_json())).collect();
    record.models = session
        .models()
        .iter()
        .map(|m| ModelRecord { name: m.name.clone(), path: m.path.clone(), sha256: m.sha256.clone() })
        .collect();
    if let Some(model) = session.models().first() {
        record.device = model.device.to_string();
    }
}

fn default_out(script: &Path) -> PathBuf {
    let stem = script.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    PathBuf::from(format!("{stem}.out"))
}
