//! The run as a Jupyter notebook (nbformat 4.5), for people who read
//! results in Jupyter or publish them through it: one code cell per script
//! cell with its outputs as full MIME bundles, so every viewer picks the
//! representation it shows best.
//!
//! nbformat 4.5 requires a unique `id` on every cell; ids are derived from
//! the cell's position, so rewriting after each cell keeps them stable.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value as Json, json};

use super::{CellRecord, Run, json_text, round_seconds, script_name, timestamp};
use crate::notebook::multiline;
use crate::session::output::Output;

/// The notebook's JSON text, indented like Jupyter writes it.
pub(crate) fn render(run: &Run) -> anyhow::Result<String> {
    let notebook = match &run.notebook {
        Some(notebook) => executed(notebook, run),
        None => generated(run),
    };
    let mut bytes = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
    serde::Serialize::serialize(&notebook, &mut serializer)?;
    bytes.push(b'\n');
    Ok(String::from_utf8(bytes)?)
}

/// The notebook the run came from with each code cell's outputs, count
/// and time, as papermill leaves it; its metadata gains the run's.
fn executed(notebook: &Json, run: &Run) -> Json {
    let mut notebook = notebook.clone();
    if let Some(cells) = notebook.get_mut("cells").and_then(Json::as_array_mut) {
        let records = run.cells.iter().map(Some).chain(std::iter::repeat(None));
        let mut executed = 0;
        for (cell, record) in cells.iter_mut().zip(records) {
            if cell.get("cell_type").and_then(Json::as_str) != Some("code") {
                continue;
            }
            executed += usize::from(record.is_some());
            let (outputs, count) = record.map_or((Vec::new(), Json::Null), |r| (outputs(r), json!(executed)));
            cell["outputs"] = Json::Array(outputs);
            cell["execution_count"] = count;
            if let (Some(record), Some(metadata)) = (record, cell.get_mut("metadata").and_then(Json::as_object_mut)) {
                metadata.insert("advx".into(), json!({ "seconds": round_seconds(record.seconds) }));
            }
        }
    }
    if let Some(metadata) = notebook.get_mut("metadata").and_then(Json::as_object_mut) {
        metadata.insert("advx".into(), metadata_of(run)["advx"].clone());
    }
    notebook
}

/// A notebook made from the script: a header, then each cell's title
/// and code with its outputs.
fn generated(run: &Run) -> Json {
    let mut cells = vec![markdown("header", &header(run))];
    for (pos, cell) in run.cells.iter().enumerate() {
        if let Some(title) = cell.title.as_deref().filter(|t| !t.trim().is_empty()) {
            cells.push(markdown(&format!("title-{}", pos + 1), &format!("## {}", md_text(title.trim()))));
        }
        cells.push(code_cell(pos, cell));
    }
    if let Some(banner) = run.status.banner() {
        cells.push(markdown("status", &format!("*{}*", md_text(banner))));
    }
    json!({
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": metadata_of(run),
        "cells": cells,
    })
}

/// Notebook metadata: the language, and where the notebook came from.
fn metadata_of(run: &Run) -> Json {
    json!({
        "language_info": { "name": "advx", "file_extension": ".advx" },
        "advx": {
            "script": run.script.display().to_string(),
            "advx_version": run.advx_version,
            "onnxruntime_version": run.ort_version,
            "device": run.device,
            "started": timestamp(run.started),
            "status": run.status.name(),
        },
    })
}

/// The first cell: what ran, where, with which parameters and models.
fn header(run: &Run) -> String {
    let mut text = format!(
        "# {}\n\nRun by advx {} with ONNX Runtime {} on {}, started {}.\n",
        md_text(&script_name(&run.script)),
        md_text(&run.advx_version),
        md_text(&run.ort_version),
        code_span(&run.device),
        timestamp(run.started)
    );
    if !run.params.is_empty() {
        text.push_str("\n**Parameters**\n\n");
        for (name, value) in &run.params {
            text.push_str(&format!("- {} = {}\n", code_span(name), code_span(&json_text(value))));
        }
    }
    if !run.models.is_empty() {
        text.push_str("\n**Models**\n\n");
        for m in &run.models {
            let path = m.path.display().to_string();
            text.push_str(&format!(
                "- {}: {} (sha256 {})\n",
                code_span(&m.name),
                code_span(&path),
                code_span(&m.sha256)
            ));
        }
    }
    text
}

/// Plain text inside markdown: titles are what the script's author typed,
/// not markup, so punctuation that markdown or HTML would act on is
/// backslash-escaped (CommonMark allows that for any ASCII punctuation).
fn md_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '&' | '#' | '|' | '~' | '!') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A markdown code span that survives backticks in the text, by fencing
/// it with more backticks than the longest run inside.
fn code_span(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    if longest == 0 { format!("{fence}{text}{fence}") } else { format!("{fence} {text} {fence}") }
}

fn markdown(id: &str, text: &str) -> Json {
    json!({ "cell_type": "markdown", "id": id, "metadata": {}, "source": multiline(text) })
}

/// The cell at position `pos`, with its outputs and error.
fn code_cell(pos: usize, cell: &CellRecord) -> Json {
    json!({
        "cell_type": "code",
        "id": format!("cell-{}", pos + 1),
        "metadata": { "advx": { "seconds": round_seconds(cell.seconds) } },
        "execution_count": cell.index,
        "source": multiline(cell.source.trim_end_matches(['\n', '\r'])),
        "outputs": outputs(cell),
    })
}

/// A cell's outputs and its error, as notebook outputs.
fn outputs(cell: &CellRecord) -> Vec<Json> {
    let mut outputs: Vec<Json> = cell.outputs.iter().map(display_data).collect();
    if let Some(error) = &cell.error {
        outputs.push(error_output(error));
    }
    outputs
}

/// One output with every representation it has.
fn display_data(output: &Output) -> Json {
    let bundle = &output.bundle;
    let mut data = Map::new();
    data.insert("text/plain".into(), multiline(&bundle.text));
    if let Some(html) = &bundle.html {
        data.insert("text/html".into(), multiline(html));
    }
    if let Some(png) = &bundle.png {
        data.insert("image/png".into(), Json::String(BASE64.encode(png)));
    }
    if let Some(svg) = &bundle.svg {
        data.insert("image/svg+xml".into(), multiline(svg));
    }
    if let Some(value) = &bundle.json {
        data.insert("application/json".into(), value.clone());
    }
    json!({ "output_type": "display_data", "data": data, "metadata": {} })
}

/// A failed cell's error: its first line is the message, all of it the
/// traceback Jupyter shows.
fn error_output(error: &str) -> Json {
    let evalue = error.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let traceback: Vec<&str> = error.lines().collect();
    json!({ "output_type": "error", "ename": "Error", "evalue": evalue, "traceback": traceback })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_text_stays_text() {
        assert_eq!(md_text("<b>& x_1"), "\\<b\\>\\& x\\_1");
        assert_eq!(code_span("cpu"), "`cpu`");
        assert_eq!(code_span("a`b"), "`` a`b ``");
    }
}
