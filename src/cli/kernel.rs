//! `advx kernel`: advx's own Jupyter kernel, and its installation.

use std::path::PathBuf;

use anyhow::Result;

use crate::kernel::spec::{self, Place};

/// The Jupyter kernel for .advx notebooks (`advx kernel install` registers it).
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// The connection file Jupyter writes for the kernel it starts.
    #[arg(long, value_name = "FILE")]
    connection_file: Option<PathBuf>,
    /// An .advx script to run when the kernel starts (its bindings are every notebook's).
    #[arg(long, value_name = "FILE")]
    prelude: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Register the kernelspec "advx" with Jupyter (for the user by default).
    Install(InstallArgs),
}

#[derive(clap::Args)]
struct InstallArgs {
    #[command(flatten)]
    place: PlaceArgs,
    /// An .advx script the kernel runs when it starts, e.g. models/mnist/models.advx (the
    /// paper's models by name).
    #[arg(long, value_name = "FILE")]
    prelude: Option<PathBuf>,
}

#[derive(clap::Args)]
#[group(multiple = false)]
struct PlaceArgs {
    /// In the user's Jupyter data folder (the default).
    #[arg(long)]
    user: bool,
    /// In the active Python environment (VIRTUAL_ENV, CONDA_PREFIX or python3's sys.prefix).
    #[arg(long)]
    sys_prefix: bool,
    /// Under DIR/share/jupyter.
    #[arg(long, value_name = "DIR")]
    prefix: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    match (args.action, args.connection_file) {
        (Some(Action::Install(install)), _) => {
            let place = match (install.place.sys_prefix, install.place.prefix) {
                (true, _) => Place::SysPrefix,
                (false, Some(dir)) => Place::Prefix(dir),
                (false, None) => Place::User,
            };
            let dir = spec::install(&place, install.prelude.as_deref())?;
            println!("installed the Jupyter kernel \"{}\" in {}", spec::NAME, dir.display());
            Ok(())
        }
        (None, Some(file)) => crate::kernel::serve(&file, args.prelude.as_deref()),
        (None, None) => {
            anyhow::bail!("Jupyter starts the kernel with --connection-file FILE; to register it: advx kernel install")
        }
    }
}
