//! Notebooks and scripts as two forms of one thing: an `.advx` script in
//! the percent format (jupytext's and VS Code's) and an nbformat 4.5
//! notebook for advx's kernel.
//!
//! - `# %% TITLE` starts a code cell; the title goes to the cell's
//!   metadata (`title`), as jupytext keeps it.
//! - `# %% [markdown]` starts a markdown cell, its lines commented (`# `).
//! - Comments before the first marker are the notebook's first cell,
//!   markdown, marked `advx.preamble` so that it goes back unmarked.
//!
//! Cells are separated by one blank line. A script written that way (as
//! [`script`] writes them) comes back from its notebook byte for byte, and
//! a notebook's cells (kinds, sources, titles) come back from its script.

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Map, Value as Json, json};

use crate::kernel::language::language_info;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Code,
    Markdown,
}

/// One cell, in either form.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub kind: Kind,
    /// The code, or the markdown with its comment marks removed; no
    /// trailing newline.
    pub source: String,
    pub title: Option<String>,
    /// Text before the script's first marker.
    pub preamble: bool,
}

/// The cells of a percent-format script.
pub fn cells(script: &str) -> Vec<Cell> {
    let mut chunks: Vec<(Option<&str>, Vec<&str>)> = vec![(None, Vec::new())];
    for line in script.lines() {
        match line.strip_prefix("# %%") {
            Some(marker) => chunks.push((Some(marker.trim()), Vec::new())),
            None => chunks.last_mut().expect("there is always a chunk").1.push(line),
        }
    }
    let preamble_is_empty = chunks[0].1.iter().all(|l| l.trim().is_empty());
    chunks.into_iter().enumerate().filter(|(i, _)| *i > 0 || !preamble_is_empty).map(|(_, chunk)| cell(chunk)).collect()
}

fn cell((marker, lines): (Option<&str>, Vec<&str>)) -> Cell {
    let body = lines.join("\n").trim_end_matches(['\n', ' ', '\t']).to_string();
    let markdown = match marker {
        Some(m) => m == "[markdown]",
        None => lines.iter().all(|l| l.starts_with('#') || l.trim().is_empty()),
    };
    let title = marker.filter(|m| !m.is_empty() && !markdown).map(str::to_string);
    let (kind, source) = match markdown {
        true => (Kind::Markdown, uncomment(&body)),
        false => (Kind::Code, body),
    };
    Cell { kind, source, title, preamble: marker.is_none() }
}

/// The script of these cells. With `every_marker`, the preamble gets a
/// marker too, so that the script's cells are the notebook's, one to one
/// (`advx run X.ipynb`).
pub fn script(cells: &[Cell], every_marker: bool) -> String {
    let chunks: Vec<String> = cells
        .iter()
        .map(|cell| {
            let body = match cell.kind {
                Kind::Code => cell.source.clone(),
                Kind::Markdown => comment(&cell.source),
            };
            let marker = match (cell.kind, &cell.title) {
                _ if cell.preamble && !every_marker => return body,
                (Kind::Markdown, _) => "# %% [markdown]".to_string(),
                (Kind::Code, Some(title)) => format!("# %% {title}"),
                (Kind::Code, None) => "# %%".to_string(),
            };
            if body.is_empty() { marker } else { format!("{marker}\n{body}") }
        })
        .collect();
    chunks.join("\n\n") + "\n"
}

fn comment(text: &str) -> String {
    text.lines().map(|l| if l.is_empty() { "#".to_string() } else { format!("# {l}") }).collect::<Vec<_>>().join("\n")
}

fn uncomment(text: &str) -> String {
    let lines = text.lines().map(|l| l.strip_prefix("# ").or_else(|| l.strip_prefix('#')).unwrap_or(l));
    lines.collect::<Vec<_>>().join("\n")
}

/// A notebook for advx's kernel with these cells and no outputs.
pub fn notebook(cells: &[Cell]) -> Json {
    let cells: Vec<Json> = cells.iter().enumerate().map(|(i, cell)| notebook_cell(i, cell)).collect();
    json!({
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": { "name": "advx", "display_name": "advx", "language": "advx" },
            "language_info": language_info(),
        },
        "cells": cells,
    })
}

fn notebook_cell(index: usize, cell: &Cell) -> Json {
    let mut metadata = Map::new();
    if let Some(title) = &cell.title {
        metadata.insert("title".into(), json!(title));
    }
    if cell.preamble {
        metadata.insert("advx".into(), json!({ "preamble": true }));
    }
    let mut json = json!({
        "cell_type": match cell.kind { Kind::Code => "code", Kind::Markdown => "markdown" },
        "id": format!("cell-{}", index + 1),
        "metadata": metadata,
        "source": multiline(&cell.source),
    });
    if cell.kind == Kind::Code {
        json["execution_count"] = Json::Null;
        json["outputs"] = json!([]);
    }
    json
}

/// Jupyter's multi-line string: lines each keeping their `\n` (the last
/// one has none unless the text ends with one).
pub fn multiline(text: &str) -> Json {
    Json::Array(text.split_inclusive('\n').map(|l| Json::String(l.to_string())).collect())
}

/// The cells of a notebook: code and markdown (raw cells count as
/// markdown). Fails on what is not an nbformat 4 notebook, or one for
/// another language.
pub fn cells_of_notebook(notebook: &Json) -> Result<Vec<Cell>> {
    let format = notebook.get("nbformat").and_then(Json::as_u64);
    ensure!(
        format == Some(4),
        "not an nbformat 4 notebook (nbformat: {})",
        format.map_or("missing".into(), |f| f.to_string())
    );
    let language =
        notebook.pointer("/metadata/kernelspec/language").or(notebook.pointer("/metadata/language_info/name"));
    if let Some(language) = language.and_then(Json::as_str).filter(|l| *l != "advx") {
        bail!("a notebook for the {language} kernel, not advx's (its metadata.kernelspec.language)");
    }
    let cells = notebook.get("cells").and_then(Json::as_array).context("the notebook has no `cells` list")?;
    cells
        .iter()
        .enumerate()
        .map(|(i, cell)| notebook_cell_of(cell).with_context(|| format!("cell {}", i + 1)))
        .collect()
}

fn notebook_cell_of(cell: &Json) -> Result<Cell> {
    let kind = match cell.get("cell_type").and_then(Json::as_str) {
        Some("code") => Kind::Code,
        Some("markdown" | "raw") => Kind::Markdown,
        other => bail!("unknown cell_type {other:?}"),
    };
    let source = match cell.get("source") {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Array(lines)) => lines.iter().map(|l| l.as_str().unwrap_or_default()).collect(),
        _ => bail!("no source"),
    };
    Ok(Cell {
        kind,
        source: source.trim_end_matches(['\n', ' ', '\t']).to_string(),
        title: cell.pointer("/metadata/title").and_then(Json::as_str).map(str::to_string),
        preamble: cell.pointer("/metadata/advx/preamble").and_then(Json::as_bool) == Some(true),
    })
}

/// Reads a notebook file's JSON.
pub fn read(path: &std::path::Path) -> Result<Json> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a notebook (invalid JSON)", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "# A study.\n#\n# Two lines.\n\n# %% setup\nlet n = 3\n\n# %% [markdown]\n# Some *prose*.\n#\n# - a list\n\n# %%\nshow n\n";

    #[test]
    fn splits_lines_like_jupyter() {
        assert_eq!(multiline("a\nb"), json!(["a\n", "b"]));
        assert_eq!(multiline("a\n"), json!(["a\n"]));
        assert_eq!(multiline(""), json!([]));
    }

    #[test]
    fn a_script_comes_back_from_its_cells() {
        let cells = cells(SCRIPT);
        assert_eq!(cells.len(), 4);
        assert_eq!(
            (cells[0].kind, cells[0].preamble, cells[0].source.as_str()),
            (Kind::Markdown, true, "A study.\n\nTwo lines.")
        );
        assert_eq!((cells[1].title.as_deref(), cells[1].source.as_str()), (Some("setup"), "let n = 3"));
        assert_eq!((cells[2].kind, cells[2].source.as_str()), (Kind::Markdown, "Some *prose*.\n\n- a list"));
        assert_eq!(script(&cells, false), SCRIPT);
    }

    #[test]
    fn cells_come_back_from_their_notebook() {
        let cells = cells(SCRIPT);
        let notebook = notebook(&cells);
        assert_eq!(cells_of_notebook(&notebook).unwrap(), cells);
        assert_eq!(notebook["cells"][1]["metadata"]["title"], "setup");
        assert_eq!(notebook["metadata"]["kernelspec"]["name"], "advx");
    }

    #[test]
    fn every_marker_keeps_cells_one_to_one() {
        let cells = cells(SCRIPT);
        let parsed = crate::lang::parse("s", &script(&cells, true)).unwrap();
        assert_eq!(parsed.cells.len(), cells.len());
        assert_eq!(parsed.cells[3].statements.len(), 1);
    }

    #[test]
    fn other_notebooks_are_refused_with_a_reason() {
        let python = json!({ "nbformat": 4, "metadata": { "kernelspec": { "language": "python" } }, "cells": [] });
        assert!(cells_of_notebook(&python).unwrap_err().to_string().contains("python"));
        let old = json!({ "nbformat": 3, "cells": [] });
        assert!(cells_of_notebook(&old).unwrap_err().to_string().contains("nbformat 4"));
        let bad = json!({ "nbformat": 4, "cells": [{ "cell_type": "code" }] });
        assert!(format!("{:#}", cells_of_notebook(&bad).unwrap_err()).contains("cell 1"));
    }
}
