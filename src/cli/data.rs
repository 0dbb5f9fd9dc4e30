//! `advx data`: list and fetch datasets.
use anyhow::Result;

#[derive(clap::Subcommand)]
pub enum Command {
    /// List the known datasets and where they were found.
    List,
}

pub fn run(_cmd: Command) -> Result<()> {
    anyhow::bail!("not yet implemented")
}
