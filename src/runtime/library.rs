//! Finding the ONNX Runtime shared library.
//!
//! advx links ONNX Runtime at run time (ort's `load-dynamic`), from the
//! library inside PyPI's `onnxruntime` wheel. The search order is fixed so
//! that what runs is predictable: `ORT_DYLIB_PATH`, then the project-local
//! virtual environment made by `scripts/setup.sh`, then the site-packages of
//! the `python3` on the PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

/// The ONNX Runtime version `scripts/setup.sh` installs and advx is tested with.
pub const PINNED_VERSION: &str = "1.32.0";

/// Folder, relative to the project root, where set-up puts the Python environment.
pub const LOCAL_ENV: &str = ".venv";

/// Where the library was found.
pub fn find() -> Result<PathBuf> {
    let mut looked = Vec::new();
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("ORT_DYLIB_PATH is set to {}, which is not a file", path.display());
    }
    for root in project_roots() {
        let env = root.join(LOCAL_ENV);
        looked.push(env.display().to_string());
        if let Some(lib) = in_virtualenv(&env) {
            return Ok(lib);
        }
    }
    looked.push("python3's site-packages".into());
    if let Some(lib) = python_package_dir().and_then(|dir| in_package(&dir)) {
        return Ok(lib);
    }
    bail!(
        "ONNX Runtime was not found (looked in: {}).\n\
         Run `bash scripts/setup.sh` in the advx checkout, which installs onnxruntime=={PINNED_VERSION} \
         from PyPI into {LOCAL_ENV}/, or `pip install onnxruntime=={PINNED_VERSION}`, \
         or set ORT_DYLIB_PATH to a libonnxruntime.so",
        looked.join(", ")
    )
}

/// Candidate project roots: the source tree advx was built from, and the
/// ancestors of the executable and of the working directory.
fn project_roots() -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR"))];
    let starts = [std::env::current_exe().ok(), std::env::current_dir().ok()];
    for start in starts.into_iter().flatten() {
        roots.extend(start.ancestors().filter(|a| a.join("Cargo.toml").is_file()).map(Path::to_path_buf));
    }
    roots.dedup();
    roots
}

fn in_virtualenv(env: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(env.join("lib")).ok()?;
    lib.flatten().map(|python| python.path().join("site-packages/onnxruntime")).find_map(|dir| in_package(&dir))
}

/// The `libonnxruntime.so.X.Y.Z` inside an installed `onnxruntime` package
/// (the wheel ships no unversioned name).
fn in_package(package: &Path) -> Option<PathBuf> {
    let capi = package.join("capi");
    let mut libs: Vec<PathBuf> = std::fs::read_dir(&capi)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("libonnxruntime.so") || name.starts_with("libonnxruntime.") && name.ends_with(".dylib")
        })
        .collect();
    libs.sort();
    libs.pop()
}

fn python_package_dir() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import importlib.util as u; s = u.find_spec('onnxruntime'); print(s.submodule_search_locations[0] if s else '')"])
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}
