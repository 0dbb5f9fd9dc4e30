//! `advx check`: parse a script and resolve its names without running it.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;

use super::script::{Loaded, ParamArg};
use crate::session::{Session, ops};

/// Check a script without running it: syntax, names, operations and their arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The script.
    #[arg(required_unless_present = "ops")]
    script: Option<PathBuf>,
    /// Overrides to validate, as for `advx run`.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<ParamArg>,
    /// List the built-in operations and their arguments, and exit.
    #[arg(long)]
    ops: bool,
}

pub fn run(args: Args) -> Result<i32> {
    if args.ops {
        print_ops();
        return Ok(0);
    }
    let Some(path) = args.script else { return Ok(2) };
    let loaded = match Loaded::read(&path, &args.params)? {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    if let Err(e) = Session::new()?.check(&loaded.script, &loaded.source()) {
        eprintln!("{}", crate::lang::error::render(&e, std::io::stderr().is_terminal()));
        return Ok(2);
    }
    let statements: usize = loaded.script.cells.iter().map(|c| c.statements.len()).sum();
    println!("{}: ok ({} cells, {statements} statements)", path.display(), loaded.script.cells.len());
    Ok(0)
}

fn print_ops() {
    for op in ops::OPERATIONS {
        print!("{}", op.describe());
    }
}
