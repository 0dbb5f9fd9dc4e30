//! `save VALUE to PATH`: the format follows the extension; the file is
//! written atomically, so a failed save keeps what was there. Image sets
//! go out as NumPy files (`.npz`, `.npy`) that `numpy` reads back.

use std::path::Path;

use anyhow::{Result, bail};

use super::ops::grid;
use super::value::Value;

pub fn save(value: &Value, path: &Path) -> Result<()> {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if let "npz" | "npy" = extension.as_str() {
        return images(value, path);
    }
    if path.as_os_str().to_string_lossy().ends_with(['/', std::path::MAIN_SEPARATOR]) {
        return folder(value, path);
    }
    let bytes = match extension.as_str() {
        "yaml" | "yml" => serde_yaml::to_string(&super::value::to_yaml(&value.to_json()))?.into_bytes(),
        "json" => serde_json::to_string_pretty(&value.to_json())?.into_bytes(),
        "csv" => csv(value)?.into_bytes(),
        "png" => figure(value)?.png()?,
        "svg" => figure(value)?.svg()?.into_bytes(),
        other => bail!(
            "cannot save to `.{other}` files: use .yaml, .json, .csv, .png, .svg, .npz, .npy, or a folder \
             (a path ending in /) of PNG files"
        ),
    };
    crate::artefact::write_atomic(path, &bytes)
}

/// An image set (or a result standing for one, such as an attack's
/// examples) as NumPy arrays.
fn images(value: &Value, path: &Path) -> Result<()> {
    let Some(set) = value.as_images() else {
        bail!("{} is not an image set; only images are saved as .npz or .npy", value.kind());
    };
    crate::data::numpy::save(path, set.images.view(), set.labels.as_deref(), set.classes.as_deref())
}

/// An image set as a folder of PNG files, one subfolder per class.
fn folder(value: &Value, path: &Path) -> Result<()> {
    let Some(set) = value.as_images() else {
        bail!("{} is not an image set; only images are saved as a folder of PNG files", value.kind());
    };
    crate::data::folder::save(path, set.images.view(), set.labels.as_deref(), set.classes.as_deref())
}

fn figure(value: &Value) -> Result<std::sync::Arc<crate::plot::Figure>> {
    match value {
        Value::Figure(f) => Ok(f.clone()),
        Value::Images(set) => Ok(std::sync::Arc::new(grid::preview(set)?)),
        Value::Object(o) => match o.figure() {
            Some(f) => Ok(f),
            None => bail!("{} has no figure to save; save it as .yaml, .json or .csv", o.kind()),
        },
        other => bail!("{} is not a figure; save it as .yaml, .json or .csv", other.kind()),
    }
}

fn csv(value: &Value) -> Result<String> {
    let rows: Vec<Vec<String>> = match value {
        Value::Object(o) => match o.csv() {
            Some(rows) => rows,
            None => bail!("{} has no table to save as CSV; use .yaml or .json", o.kind()),
        },
        Value::List(items) => {
            std::iter::once(vec!["value".to_string()]).chain(items.iter().map(|v| vec![v.summary()])).collect()
        }
        other => bail!("{} cannot be saved as CSV; use .yaml or .json", other.kind()),
    };
    Ok(rows.iter().map(|r| r.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(",") + "\n").collect())
}

fn csv_cell(cell: &str) -> String {
    if cell.contains([',', '"', '\n']) { format!("\"{}\"", cell.replace('"', "\"\"")) } else { cell.to_string() }
}
