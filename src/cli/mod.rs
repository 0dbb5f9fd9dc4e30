//! The `advx` command line: one file per subcommand.

mod bench;
mod check;
mod cluster;
mod convert;
mod data;
mod eval;
mod grad;
mod info;
mod kernel;
mod merge;
mod preprocess;
mod run;
mod script;
mod train;

use clap::{Parser, Subcommand};

/// advx: experiments on the intriguing properties of neural networks.
///
/// Models are ONNX files run by ONNX Runtime; gradients come from backward
/// graphs that advx exports as ONNX. Datasets are found on the data path
/// (ADVX_DATA, ./data, the user cache); see `advx data list`.
#[derive(Parser)]
#[command(name = "advx", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More log output (-v: info, -vv: debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an .advx script and write its outputs (figures, results.yaml, report.html).
    Run(run::Args),
    /// Merge the shards of a sharded run (`advx run --shard I/N`) into one run's outputs.
    Merge(merge::Args),
    /// Job files that run a script's shards on Slurm or Kubernetes and merge them.
    #[command(subcommand)]
    Cluster(cluster::Command),
    /// Check an .advx script without running it.
    Check(check::Args),
    /// Convert an .advx script to a notebook for advx's kernel, or back.
    Convert(convert::Args),
    /// Error rates of models on a dataset.
    Eval(eval::Args),
    /// Export the backward graph of an ONNX model as another ONNX model.
    Grad(grad::Args),
    /// Train a model from a YAML recipe.
    Train(train::Args),
    /// Find, list and download datasets.
    #[command(subcommand)]
    Data(data::Command),
    /// Inputs, outputs, ops and parameter count of an ONNX model.
    Info(info::Args),
    /// The Jupyter kernel for .advx notebooks, and `advx kernel install`.
    Kernel(kernel::Args),
    /// Run the benchmark suite (attacks against the scipy reference, backward graphs, training, units).
    Bench(Box<bench::Args>),
}

/// Runs the command line and returns the process exit code:
/// 0 on success, 1 when the work failed, 2 for a usage error.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Run(args) => return exit_code(run::run(args)),
        Command::Check(args) => return exit_code(check::run(args)),
        Command::Merge(args) => return exit_code(merge::run(args)),
        Command::Convert(args) => convert::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Grad(args) => grad::run(args),
        Command::Train(args) => train::run(args),
        Command::Data(cmd) => data::run(cmd),
        Command::Cluster(cmd) => cluster::run(cmd),
        Command::Info(args) => info::run(args),
        Command::Kernel(args) => kernel::run(args),
        Command::Bench(args) => bench::run(*args),
    };
    match result {
        Ok(()) => 0,
        Err(e) => failure(e),
    }
}

/// A subcommand that chooses its own exit code, or [`failure`]'s.
fn exit_code(result: anyhow::Result<i32>) -> i32 {
    result.unwrap_or_else(failure)
}

/// Prints the error; 128 + the signal's number when a signal stopped the
/// work (130 for Ctrl-C, 143 for SIGTERM, as a shell reports), else 1.
fn failure(e: anyhow::Error) -> i32 {
    eprintln!("error: {e:#}");
    crate::interrupt::signal_of(&e).map_or(1, crate::interrupt::Signal::exit_code)
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ADVX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).without_time().try_init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks a command's arguments only when it is built: a clash
    /// between flattened argument groups would otherwise surface as a
    /// panic in front of the user.
    #[test]
    fn every_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
