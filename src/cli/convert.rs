//! `advx convert`: a script to a notebook for advx's kernel, and back.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::notebook;

/// Convert between an .advx script (percent cells) and a notebook for advx's kernel (.ipynb).
///
/// Titles (`# %% TITLE`) become cell metadata, `# %% [markdown]` cells markdown cells,
/// comments before the first cell the first markdown cell; a script with one blank line
/// between cells comes back from its notebook byte for byte. Outputs are not converted.
#[derive(clap::Args)]
pub struct Args {
    /// The script or notebook.
    input: PathBuf,
    /// What to write.
    #[arg(long = "to", value_name = "FORMAT", value_parser = ["ipynb", "advx"])]
    to: String,
    /// Where [default: the input with the new extension].
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Overwrite OUTPUT when it exists.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> Result<()> {
    let output = args.output.clone().unwrap_or_else(|| args.input.with_extension(&args.to));
    if output.exists() && !args.force {
        bail!("{} exists; --force overwrites it", output.display());
    }
    let text = match args.to.as_str() {
        "ipynb" => to_notebook(&args.input)?,
        _ => to_script(&args.input)?,
    };
    std::fs::write(&output, text).with_context(|| format!("cannot write {}", output.display()))?;
    eprintln!("wrote {}", output.display());
    Ok(())
}

fn to_notebook(script: &Path) -> Result<String> {
    let text = std::fs::read_to_string(script).with_context(|| format!("cannot read {}", script.display()))?;
    crate::lang::parse(&script.display().to_string(), &text)
        .map_err(|e| anyhow::anyhow!("{}", crate::lang::error::render(&e, false)))?;
    let notebook = notebook::notebook(&notebook::cells(&text));
    Ok(serde_json::to_string_pretty(&notebook)? + "\n")
}

fn to_script(path: &Path) -> Result<String> {
    let json = notebook::read(path)?;
    let cells = notebook::cells_of_notebook(&json).with_context(|| format!("{}", path.display()))?;
    Ok(notebook::script(&cells, false))
}
