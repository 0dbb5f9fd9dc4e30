//! `advx kernel install`: the kernelspec that lets Jupyter start this
//! binary as the kernel "advx".

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::json;

/// The kernel's name, as `jupyter kernelspec list` shows it.
pub const NAME: &str = "advx";

/// Where the kernelspec goes, as `jupyter kernelspec install` names it.
#[derive(Clone, Debug)]
pub enum Place {
    /// The user's Jupyter data folder (JUPYTER_DATA_DIR, else
    /// ~/.local/share/jupyter on Linux).
    User,
    /// The active Python environment's `share/jupyter`: VIRTUAL_ENV or
    /// CONDA_PREFIX, else python3's `sys.prefix`.
    SysPrefix,
    /// `DIR/share/jupyter`.
    Prefix(PathBuf),
}

/// Writes the kernelspec and returns its folder. A prelude is an .advx
/// script the kernel runs when it starts (bindings every notebook has).
pub fn install(place: &Place, prelude: Option<&Path>) -> Result<PathBuf> {
    let prelude = prelude
        .map(|p| std::fs::canonicalize(p).with_context(|| format!("the prelude {} cannot be found", p.display())))
        .transpose()?;
    let dir = data_dir(place)?.join("kernels").join(NAME);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let exe = std::env::current_exe().context("cannot find the advx executable")?;
    let file = dir.join("kernel.json");
    let text = serde_json::to_string_pretty(&kernel_json(&exe, prelude.as_deref()))?;
    std::fs::write(&file, text + "\n").with_context(|| format!("cannot write {}", file.display()))?;
    Ok(dir)
}

/// The kernelspec: this executable in kernel mode, interrupts as
/// messages (so that a long operation stops cleanly and the kernel
/// lives on), and the data path the installing shell had.
pub fn kernel_json(exe: &Path, prelude: Option<&Path>) -> serde_json::Value {
    let mut argv = vec![json!(exe), json!("kernel"), json!("--connection-file"), json!("{connection_file}")];
    if let Some(prelude) = prelude {
        argv.extend([json!("--prelude"), json!(prelude)]);
    }
    let mut spec = json!({
        "argv": argv,
        "display_name": "advx",
        "language": "advx",
        "interrupt_mode": "message",
        "metadata": { "debugger": false },
    });
    if let Some(data) = std::env::var_os("ADVX_DATA") {
        spec["env"] = json!({ "ADVX_DATA": data.to_string_lossy() });
    }
    spec
}

fn data_dir(place: &Place) -> Result<PathBuf> {
    Ok(match place {
        Place::User => match std::env::var_os("JUPYTER_DATA_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => jupyter_zmq_client::user_data_dir().context("cannot find the user's Jupyter data folder")?,
        },
        Place::SysPrefix => sys_prefix()?.join("share/jupyter"),
        Place::Prefix(dir) => dir.join("share/jupyter"),
    })
}

/// The active Python environment's prefix.
fn sys_prefix() -> Result<PathBuf> {
    for variable in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
        if let Some(dir) = std::env::var_os(variable) {
            return Ok(PathBuf::from(dir));
        }
    }
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.prefix)"])
        .output()
        .context("--sys-prefix asks python3 for its prefix, and python3 could not be run")?;
    if !output.status.success() {
        bail!("python3 could not tell its sys.prefix: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
}
