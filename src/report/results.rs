//! `results.yaml`: what a paper's reader needs to reproduce a run and
//! check its numbers — the versions, the device, the parameters, the
//! models' hashes, and every cell's outputs as data.
//!
//! The file is serialised from private record structs so its shape is
//! declared in one place and the YAML is always well formed (quoting,
//! multi-line strings and JSON data are serde_yaml's business). `status`
//! says how far the run got (`running` until it ends). Recorded data stands
//! for a non-finite number by `{"$float": "nan"}` (JSON has none); here it
//! becomes the YAML float it is (`.nan`, `.inf`, `-.inf`), never `null`.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value as Json;

use super::figures::{FigureFiles, Figures};
use super::{CellRecord, Run, round_seconds, timestamp};
use crate::runtime::Preprocess;
use crate::session::output::Output;
use crate::session::value::to_yaml;

#[derive(Serialize)]
struct Results<'a> {
    script: String,
    status: &'static str,
    started: String,
    advx_version: &'a str,
    onnxruntime_version: &'a str,
    device: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sharding: Option<&'a str>,
    params: Params<'a>,
    models: Vec<Model<'a>>,
    cells: Vec<Cell<'a>>,
}

/// The parameters as a YAML mapping, in script order.
struct Params<'a>(&'a [(String, Json)]);

#[derive(Serialize)]
struct Model<'a> {
    name: &'a str,
    path: String,
    sha256: &'a str,
    #[serde(skip_serializing_if = "Preprocess::is_identity")]
    preprocess: &'a Preprocess,
    #[serde(skip_serializing_if = "Option::is_none")]
    adaptation: Option<&'a str>,
}

#[derive(Serialize)]
struct Cell<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    outputs: Vec<OutputRecord<'a>>,
}

/// One output: its data when it has any (the numbers), else its text; for
/// a figure, the files written and why any could not be.
#[derive(Serialize)]
struct OutputRecord<'a> {
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<serde_yaml::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    png: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    svg: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// The text of `results.yaml`.
pub(crate) fn render(run: &Run, figures: &Figures) -> anyhow::Result<String> {
    let results = Results {
        script: run.script.display().to_string(),
        status: run.status.name(),
        started: timestamp(run.started),
        advx_version: &run.advx_version,
        onnxruntime_version: &run.ort_version,
        device: &run.device,
        sharding: run.sharding.as_deref(),
        params: Params(&run.params),
        models: run
            .models
            .iter()
            .map(|m| Model {
                name: &m.name,
                path: m.path.display().to_string(),
                sha256: &m.sha256,
                preprocess: &m.preprocess,
                adaptation: m.adaptation.as_deref(),
            })
            .collect(),
        cells: run.cells.iter().enumerate().map(|(c, cell)| cell_record(c, cell, figures)).collect(),
    };
    Ok(serde_yaml::to_string(&results)?)
}

/// The record of the cell at position `c`.
fn cell_record<'a>(c: usize, cell: &'a CellRecord, figures: &'a Figures) -> Cell<'a> {
    Cell {
        index: cell.index,
        title: cell.title.as_deref(),
        seconds: round_seconds(cell.seconds),
        error: cell.error.as_deref(),
        outputs: cell.outputs.iter().enumerate().map(|(o, out)| output_record(out, figures.get(c, o))).collect(),
    }
}

fn output_record<'a>(output: &'a Output, files: Option<&'a FigureFiles>) -> OutputRecord<'a> {
    let data = output.bundle.json.as_ref().map(to_yaml);
    OutputRecord {
        title: &output.title,
        text: if data.is_none() { Some(&output.bundle.text) } else { None },
        data,
        png: files.and_then(|f| f.png.as_deref()),
        svg: files.and_then(|f| f.svg.as_deref()),
        error: files.and_then(|f| f.error.as_deref()),
    }
}

impl Serialize for Params<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, &to_yaml(value))?;
        }
        map.end()
    }
}
