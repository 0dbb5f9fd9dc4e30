//! `report.html`: one self-contained page to read a run offline or print
//! it. Styles and the one small script are inline and figures are `data:`
//! URIs, so the page works when mailed or opened from an archive, and it
//! loads nothing from anywhere.
//!
//! All text from the run is escaped; `text/html` fragments and SVG come
//! from advx's own renderers and are trusted (SVG is shown through `<img>`,
//! which also keeps its ids and any scripts away from the page).

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::figures::{FigureFiles, Figures};
use super::{CellRecord, Run, Status, json_text, round_seconds, script_name, timestamp};
use crate::session::output::Output;
use crate::session::table::escape;

/// The page.
pub(crate) fn render(run: &Run, figures: &Figures) -> String {
    let name = escape(&script_name(&run.script));
    let mut page = String::with_capacity(16 * 1024);
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(page, "<meta name=\"generator\" content=\"advx {}\">", escape(&run.advx_version));
    let _ = writeln!(page, "<title>{name} — advx report</title>\n<style>{STYLE}</style>\n</head>\n<body>");
    page.push_str(&header(run));
    if let Some(sharding) = &run.sharding {
        let _ = writeln!(page, "<p class=\"banner\">{}</p>", escape(sharding));
    }
    page.push_str("<main>\n");
    for (c, cell) in run.cells.iter().enumerate() {
        page.push_str(&cell_section(c, cell, figures));
    }
    page.push_str("</main>\n");
    if let Some(banner) = run.status.banner() {
        let _ = writeln!(page, "<p class=\"banner {}\">{}</p>", run.status.name(), escape(banner));
    }
    let _ = writeln!(page, "<footer>Written by advx {}.</footer>", escape(&run.advx_version));
    let _ = writeln!(page, "<script>{SCRIPT}</script>\n</body>\n</html>");
    page
}

/// The run's identity: script, versions, device, status, params, models.
fn header(run: &Run) -> String {
    let mut out = String::from("<header class=\"run\">\n");
    let _ = writeln!(out, "<h1>{}</h1>", escape(&script_name(&run.script)));
    out.push_str("<dl class=\"meta\">\n");
    let total: f64 = run.cells.iter().map(|c| c.seconds).sum();
    let rows = [
        ("Script", run.script.display().to_string()),
        ("Started", timestamp(run.started)),
        ("Status", status(run)),
        ("Cells", format!("{} in {}", run.cells.len(), format_seconds(total))),
        ("advx", run.advx_version.clone()),
        ("ONNX Runtime", run.ort_version.clone()),
        ("Device", run.device.clone()),
    ];
    for (key, value) in rows {
        let _ = writeln!(out, "<dt>{key}</dt><dd>{}</dd>", escape(&value));
    }
    out.push_str("</dl>\n");
    out.push_str(&params_table(&run.params));
    out.push_str(&models_table(run));
    out.push_str("</header>\n");
    out
}

/// How the run ended (or that it has not), in a few words.
fn status(run: &Run) -> String {
    let last = run.cells.last().map_or(0, |c| c.index);
    match run.status {
        Status::Running => format!("running, incomplete ({last} cells so far)"),
        Status::Complete => "complete".to_string(),
        Status::Failed => match run.cells.iter().find(|c| c.error.is_some()) {
            Some(cell) => format!("failed in cell {}", cell.index),
            None => "failed".to_string(),
        },
        Status::Interrupted => format!("interrupted (Ctrl-C) in cell {last}"),
        Status::Terminated => format!("terminated (SIGTERM) in cell {last}"),
    }
}

/// Parameter values as JSON, so a string and a number never look alike.
fn params_table(params: &[(String, serde_json::Value)]) -> String {
    if params.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>Parameters</h2>\n<table class=\"params\">\n<tr><th>name</th><th>value</th></tr>\n");
    for (name, value) in params {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td><code>{}</code></td></tr>",
            escape(name),
            escape(&json_text(value))
        );
    }
    out.push_str("</table>\n");
    out
}

fn models_table(run: &Run) -> String {
    if run.models.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("<h2>Models</h2>\n<table class=\"models\">\n<tr><th>name</th><th>path</th><th>sha256</th></tr>\n");
    for model in &run.models {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td><code class=\"hash\">{}</code></td></tr>",
            escape(&model.name),
            escape(&model.path.display().to_string()),
            escape(&model.sha256)
        );
    }
    out.push_str("</table>\n");
    out
}

/// One cell: heading with its time, collapsed source, outputs, error.
fn cell_section(c: usize, cell: &CellRecord, figures: &Figures) -> String {
    let class = if cell.error.is_some() { "cell failed" } else { "cell" };
    let title = cell.title.clone().unwrap_or_else(|| format!("Cell {}", cell.index));
    let mut out = format!("<section class=\"{class}\" id=\"cell-{}\">\n", cell.index);
    let _ = writeln!(
        out,
        "<h2><span class=\"n\">[{}]</span> {}<span class=\"time\">{}</span></h2>",
        cell.index,
        escape(&title),
        format_seconds(cell.seconds)
    );
    let _ = writeln!(
        out,
        "<details class=\"source\"><summary>Source</summary><pre><code>{}</code></pre></details>",
        escape(cell.source.trim_end())
    );
    for (o, output) in cell.outputs.iter().enumerate() {
        out.push_str(&output_block(output, figures.get(c, o)));
    }
    if let Some(error) = &cell.error {
        let _ = writeln!(
            out,
            "<div class=\"error\" role=\"alert\"><div class=\"label\">Error</div><pre>{}</pre></div>",
            escape(error)
        );
    }
    out.push_str("</section>\n");
    out
}

/// One output in the richest form a page shows well: a figure, else the
/// HTML fragment, else the plain text.
fn output_block(output: &Output, files: Option<&FigureFiles>) -> String {
    let bundle = &output.bundle;
    let body = if let Some(uri) = image_uri(output) {
        figure(&uri, &output.title, files)
    } else if let Some(html) = &bundle.html {
        format!("<div class=\"html\">{html}</div>\n")
    } else {
        format!("<pre>{}</pre>\n", escape(&bundle.text))
    };
    let title = if output.title.is_empty() {
        String::new()
    } else {
        format!("<div class=\"output-title\">{}</div>\n", escape(&output.title))
    };
    format!("<div class=\"output\">\n{title}{body}</div>\n")
}

/// The image as a `data:` URI. With both forms, the smaller is inlined:
/// that is the SVG for line plots (sharp at any zoom and in print) and the
/// PNG for pixel grids (whose SVG is one rectangle per pixel), and it keeps
/// the page light either way.
fn image_uri(output: &Output) -> Option<String> {
    let bundle = &output.bundle;
    let use_svg = match (&bundle.png, &bundle.svg) {
        (Some(png), Some(svg)) => svg.len() < png.len(),
        (None, Some(_)) => true,
        (_, None) => false,
    };
    if use_svg {
        bundle.svg.as_ref().map(|svg| format!("data:image/svg+xml;base64,{}", BASE64.encode(svg)))
    } else {
        bundle.png.as_ref().map(|png| format!("data:image/png;base64,{}", BASE64.encode(png)))
    }
}

/// The inlined image, captioned with the files it was saved to (relative
/// links, which work when the page sits in its run directory).
fn figure(uri: &str, title: &str, files: Option<&FigureFiles>) -> String {
    let mut out = format!("<figure><img src=\"{uri}\" alt=\"{}\">", escape(title));
    let names: Vec<&String> = files.map(|f| f.png.iter().chain(f.svg.iter()).collect()).unwrap_or_default();
    let mut caption: Vec<String> = names.iter().map(|n| format!("<a href=\"{0}\">{0}</a>", escape(n))).collect();
    if let Some(error) = files.and_then(|f| f.error.as_deref()) {
        caption.push(format!("<span class=\"file-error\">not saved: {}</span>", escape(error)));
    }
    if !caption.is_empty() {
        let _ = write!(out, "<figcaption>{}</figcaption>", caption.join(" · "));
    }
    out.push_str("</figure>\n");
    out
}

/// `1.234 s` under a minute, `2 min 5 s` above.
fn format_seconds(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "–".to_string();
    }
    if seconds < 60.0 {
        return format!("{} s", round_seconds(seconds));
    }
    let whole = seconds.round() as u64;
    format!("{} min {} s", whole / 60, whole % 60)
}

/// Opens every collapsed source while printing, so paper copies show the
/// code, and closes them again afterwards.
const SCRIPT: &str = "\
addEventListener('beforeprint',()=>{for(const d of document.querySelectorAll('details:not([open])')){d.dataset.closed='';d.open=true}});
addEventListener('afterprint',()=>{for(const d of document.querySelectorAll('details[data-closed]')){d.open=false;delete d.dataset.closed}});
";

const STYLE: &str = "
:root{--fg:#1d2330;--muted:#5b6473;--line:#dde1e8;--code:#f5f7fa;--accent:#2f5fb3;--err:#a8261b;--err-bg:#fdecea;--warn-bg:#fff6dc}
*{box-sizing:border-box}
body{margin:0 auto;max-width:64rem;padding:2rem 1.5rem 4rem;color:var(--fg);background:#fff;
font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif}
h1{font-size:1.6rem;margin:0 0 .75rem}
h2{font-size:1.1rem;margin:1.25rem 0 .5rem}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,'Liberation Mono',monospace;font-size:.85rem}
pre{background:var(--code);border:1px solid var(--line);border-radius:4px;padding:.6rem .8rem;margin:.4rem 0;overflow-x:auto}
header.run{border-bottom:2px solid var(--line);padding-bottom:1rem}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1.25rem;margin:0}
dl.meta dt{color:var(--muted)}
dl.meta dd{margin:0}
table{border-collapse:collapse;margin:.4rem 0;font-size:.9rem}
th,td{border-bottom:1px solid var(--line);padding:.25rem .7rem;text-align:left;vertical-align:top}
th{background:var(--code);font-weight:600}
td{font-variant-numeric:tabular-nums}
code.hash{word-break:break-all}
section.cell{border-bottom:1px solid var(--line);padding:.5rem 0 1rem}
section.cell h2{display:flex;align-items:baseline;gap:.5rem}
section.cell.failed h2 .n{color:var(--err)}
.n{color:var(--accent);font-family:ui-monospace,Menlo,Consolas,monospace;font-weight:normal}
.time{margin-left:auto;color:var(--muted);font-weight:normal;font-size:.85rem;white-space:nowrap}
details.source summary{cursor:pointer;color:var(--muted);font-size:.85rem}
.output{margin:.75rem 0}
.output-title{color:var(--muted);font-size:.85rem;margin-bottom:.2rem}
.html{overflow-x:auto}
figure{margin:.4rem 0}
figure img{display:block;max-width:100%;height:auto}
figcaption{color:var(--muted);font-size:.8rem;margin-top:.2rem}
figcaption a{color:inherit}
.error{border:1px solid var(--err);border-left-width:5px;border-radius:4px;background:var(--err-bg);color:var(--err);padding:.5rem .8rem;margin:.75rem 0}
.error .label{font-weight:600}
.error pre{background:none;border:0;padding:0;color:inherit;white-space:pre-wrap}
.banner{background:var(--warn-bg);border:1px solid #e6c65c;border-radius:4px;padding:.5rem .8rem}
.file-error{color:var(--err)}
footer{color:var(--muted);font-size:.8rem;margin-top:2rem}
@media print{
body{max-width:none;padding:0;font-size:10.5pt}
pre{white-space:pre-wrap;word-break:break-word;overflow:visible}
figure,.error,table,tr{break-inside:avoid}
h1,h2{break-after:avoid}
details.source summary{display:none}
a{text-decoration:none}
}
@page{margin:1.5cm}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_five_characters() {
        assert_eq!(escape(r#"<b>&"x"'y'</b>"#), "&lt;b&gt;&amp;&quot;x&quot;&#39;y&#39;&lt;/b&gt;");
    }

    #[test]
    fn formats_times() {
        assert_eq!(format_seconds(1.23456), "1.235 s");
        assert_eq!(format_seconds(125.0), "2 min 5 s");
    }
}
