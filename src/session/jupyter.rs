//! Jupyter through evcxr, the Rust kernel: a notebook cell that ends with
//! `s.cell("...")` runs that `.advx` code in the session `s` and shows what
//! it shows inline, or the error with its caret diagnostic.
//!
//! ```text
//! :dep advx = { path = ".." }
//! let mut s = advx::Session::new()?;
//! s.cell(r#"model fc100 = onnx "../models/mnist/fc100-100-10.onnx""#)
//! s.cell("show evaluate fc100 on mnist.test")
//! ```
//!
//! evcxr calls `evcxr_display` on the value a cell ends with, which prints
//! blocks of `EVCXR_BEGIN_CONTENT <mime>` ... `EVCXR_END_CONTENT` on stdout
//! (binary content in base64); the kernel sends them as the cell's result.
//! It keeps one block per MIME type and cell, so a cell's outputs travel as
//! one bundle: a single output keeps its own representations (a table as
//! HTML, a figure as PNG, and as SVG too where that is the smaller file,
//! i.e. line plots rather than pixel grids); several outputs, or outputs
//! and an error, are laid out one after another in one HTML fragment,
//! figures inlined as `data:` URIs. Every bundle also carries
//! [`DATA_MIME`]: each output's title, figure stem and data (what
//! `results.yaml` records) and the error, which viewers skip and tests read.
//!
//! `s.run("...")?` shows the same outputs, but an error then takes evcxr's
//! path for `?`: printed on stderr, where evcxr 0.22 forwards lines after
//! the cell has finished, so Jupyter may show only the first of them. An
//! error shown by `s.cell` is part of the cell's result and arrives whole.

use std::io::Write;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value as Json, json};

use super::output::{MimeBundle, Output, Outputs};
use super::table::escape;
use super::{CellResult, Session};

/// The MIME type of the data block: `{"outputs": [{"title", "figure",
/// "data"}, ...]}`, and `"error"` (the rendered diagnostic) when the cell
/// failed.
pub const DATA_MIME: &str = "application/vnd.advx+json";

impl Session {
    /// Runs `.advx` code as one notebook cell, for a Jupyter cell to end
    /// with: `s.cell("show evaluate fc100 on test")` shows the outputs, or
    /// the outputs made before a failure and the error. `execute` by a
    /// shorter name.
    pub fn cell(&mut self, source: &str) -> CellResult {
        self.execute(source)
    }
}

impl CellResult {
    /// Shows the outputs and the error, if any, inline in Jupyter (evcxr
    /// calls it on a cell's value).
    pub fn evcxr_display(&self) {
        let error = self.error.as_ref().map(|e| e.render(false));
        display(&blocks(&self.outputs, error.as_deref()));
    }
}

impl Outputs {
    /// Shows the outputs inline in Jupyter: `s.run("...")?`.
    pub fn evcxr_display(&self) {
        display(&blocks(&self.0, None));
    }
}

impl Output {
    /// Shows one output inline in Jupyter: `s.run("show u")?[1]`.
    pub fn evcxr_display(&self) {
        display(&blocks(std::slice::from_ref(self), None));
    }
}

fn display(blocks: &[(&str, String)]) {
    // A closed stdout leaves nothing to report to.
    let _ = print(blocks, &mut std::io::stdout().lock());
}

/// The blocks evcxr reads, in order.
pub fn print(blocks: &[(&str, String)], out: &mut impl Write) -> std::io::Result<()> {
    for (mime, content) in blocks {
        writeln!(out, "EVCXR_BEGIN_CONTENT {mime}")?;
        writeln!(out, "{content}")?;
        writeln!(out, "EVCXR_END_CONTENT")?;
    }
    out.flush()
}

/// A cell's display as (MIME type, content) pairs, given its outputs and
/// its rendered error; none when the cell showed nothing and succeeded.
pub fn blocks(outputs: &[Output], error: Option<&str>) -> Vec<(&'static str, String)> {
    let mut blocks = Vec::new();
    match (outputs, error) {
        ([], None) => return blocks,
        ([one], None) => blocks = representations(&one.bundle),
        (many, error) => {
            let mut text: Vec<&str> = many.iter().map(|o| o.bundle.text.as_str()).collect();
            text.extend(error);
            blocks.push(("text/plain", text.join("\n\n")));
            blocks.push(("text/html", merged_html(many, error)));
        }
    }
    let mut data = json!({ "outputs": outputs.iter().map(output_data).collect::<Vec<_>>() });
    if let Some(error) = error {
        data["error"] = json!(error);
    }
    blocks.push((DATA_MIME, data.to_string()));
    blocks
}

/// What a notebook shows of one bundle, as (MIME type, content) pairs:
/// the text, the HTML, the PNG in base64, and the SVG where it is the
/// smaller file.
pub fn representations(bundle: &MimeBundle) -> Vec<(&'static str, String)> {
    let mut shown = vec![("text/plain", bundle.text.clone())];
    if let Some(html) = &bundle.html {
        shown.push(("text/html", html.clone()));
    }
    if let Some(png) = &bundle.png {
        shown.push(("image/png", BASE64.encode(png)));
    }
    if let Some(svg) = bundle.svg.as_ref().filter(|_| svg_is_smaller(bundle)) {
        shown.push(("image/svg+xml", svg.clone()));
    }
    shown
}

/// An output's title, figure stem and data: what [`DATA_MIME`] carries.
pub fn output_data(output: &Output) -> Json {
    json!({ "title": output.title, "figure": output.figure, "data": output.bundle.json })
}

/// With both forms, the SVG is shown where it is the smaller file: line
/// plots and bars (sharp at any zoom), not pixel grids (one rectangle per
/// pixel). The rule `report.html` follows.
fn svg_is_smaller(bundle: &MimeBundle) -> bool {
    match (&bundle.png, &bundle.svg) {
        (Some(png), Some(svg)) => svg.len() < png.len(),
        (None, Some(_)) => true,
        (_, None) => false,
    }
}

/// Several outputs as one HTML fragment, each in its richest form: a
/// figure, else its HTML, else its text; then the error.
fn merged_html(outputs: &[Output], error: Option<&str>) -> String {
    let mut html = String::from("<div class=\"advx-outputs\">\n");
    for output in outputs {
        let bundle = &output.bundle;
        let body = if let Some(uri) = image_uri(bundle) {
            format!("<img src=\"{uri}\" alt=\"{}\" style=\"max-width:100%\">", escape(&output.title))
        } else if let Some(fragment) = &bundle.html {
            fragment.clone()
        } else {
            format!("<pre>{}</pre>", escape(&bundle.text))
        };
        html.push_str(&format!("<div class=\"advx-output\">{body}</div>\n"));
    }
    if let Some(error) = error {
        let style = "color:#a00;background:#fff0f0;padding:0.5em;white-space:pre;overflow-x:auto";
        html.push_str(&format!("<pre class=\"advx-error\" style=\"{style}\">{}</pre>\n", escape(error)));
    }
    html.push_str("</div>");
    html
}

fn image_uri(bundle: &MimeBundle) -> Option<String> {
    match (&bundle.png, &bundle.svg) {
        (_, Some(svg)) if svg_is_smaller(bundle) => Some(format!("data:image/svg+xml;base64,{}", BASE64.encode(svg))),
        (Some(png), _) => Some(format!("data:image/png;base64,{}", BASE64.encode(png))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Output {
        let bundle = MimeBundle {
            html: Some("<table><tr><td>1.5%</td></tr></table>".into()),
            json: Some(json!({ "error_rate": 0.015 })),
            ..MimeBundle::text("error rates\nfc100  1.5%")
        };
        Output { title: "evaluate fc100 on test".into(), figure: None, bundle }
    }

    fn figure(png: usize, svg: usize) -> Output {
        let bundle = MimeBundle {
            png: Some(vec![0x89; png]),
            svg: Some(format!("<svg>{}</svg>", "x".repeat(svg))),
            json: Some(json!({ "figure": "digits" })),
            ..MimeBundle::text("[figure: digits]")
        };
        Output { title: "grid(digits)".into(), figure: Some("cell2-grid".into()), bundle }
    }

    /// What evcxr 0.22 does with the child's stdout (`eval_context.rs`):
    /// block contents are their lines joined by `\n`, the last block of a
    /// type wins, other lines are stdout text.
    fn read_like_evcxr(stdout: &str) -> (Vec<(String, String)>, Vec<String>) {
        let mut blocks: Vec<(String, String)> = Vec::new();
        let mut text = Vec::new();
        let mut lines = stdout.lines();
        while let Some(line) = lines.next() {
            let Some(mime) = line.strip_prefix("EVCXR_BEGIN_CONTENT ") else {
                text.push(line.to_string());
                continue;
            };
            let mut content = String::new();
            for line in lines.by_ref() {
                if line == "EVCXR_END_CONTENT" {
                    break;
                }
                if !content.is_empty() {
                    content.push('\n');
                }
                content.push_str(line);
            }
            blocks.retain(|(m, _)| m != mime);
            blocks.push((mime.to_string(), content));
        }
        (blocks, text)
    }

    fn printed(outputs: &[Output]) -> (Vec<(String, String)>, Vec<String>) {
        let mut out = Vec::new();
        print(&blocks(outputs, None), &mut out).unwrap();
        read_like_evcxr(&String::from_utf8(out).unwrap())
    }

    fn get<'a>(blocks: &'a [(String, String)], mime: &str) -> Option<&'a str> {
        blocks.iter().find(|(m, _)| m == mime).map(|(_, c)| c.as_str())
    }

    #[test]
    fn a_table_is_html_with_its_text_and_data() {
        let (blocks, stray) = printed(&[table()]);
        assert!(stray.is_empty(), "{stray:?}");
        assert_eq!(get(&blocks, "text/plain"), Some("error rates\nfc100  1.5%"));
        assert_eq!(get(&blocks, "text/html"), Some("<table><tr><td>1.5%</td></tr></table>"));
        assert_eq!(get(&blocks, "image/png"), None);
        let data: Json = serde_json::from_str(get(&blocks, DATA_MIME).unwrap()).unwrap();
        assert_eq!(data["outputs"][0]["title"], "evaluate fc100 on test");
        assert_eq!(data["outputs"][0]["data"]["error_rate"], 0.015);
        assert!(data["outputs"][0]["figure"].is_null());
    }

    #[test]
    fn a_figure_is_base64_png_and_svg_only_when_smaller() {
        let (grid, _) = printed(&[figure(300, 5000)]);
        let png = BASE64.decode(get(&grid, "image/png").unwrap()).unwrap();
        assert_eq!(png, vec![0x89; 300]);
        assert_eq!(get(&grid, "image/svg+xml"), None, "a pixel grid's SVG is the bigger file");
        let (chart, _) = printed(&[figure(5000, 300)]);
        assert!(get(&chart, "image/png").is_some());
        assert_eq!(get(&chart, "image/svg+xml").map(str::len), Some(300 + "<svg></svg>".len()));
        let data: Json = serde_json::from_str(get(&chart, DATA_MIME).unwrap()).unwrap();
        assert_eq!(data["outputs"][0]["figure"], "cell2-grid");
    }

    #[test]
    fn several_outputs_share_one_html_fragment() {
        let (blocks, _) = printed(&[table(), figure(300, 5000), figure(5000, 300)]);
        let html = get(&blocks, "text/html").unwrap();
        assert!(html.contains("<table>"));
        let png = format!("data:image/png;base64,{}", BASE64.encode(vec![0x89; 300]));
        assert!(html.contains(&png), "the grid inlined as PNG");
        assert!(html.contains("data:image/svg+xml;base64,"), "the chart inlined as SVG");
        assert_eq!(get(&blocks, "image/png"), None, "one PNG would hide the rest");
        assert!(get(&blocks, "text/plain").unwrap().contains("error rates\nfc100  1.5%\n\n[figure: digits]"));
        let data: Json = serde_json::from_str(get(&blocks, DATA_MIME).unwrap()).unwrap();
        assert_eq!(data["outputs"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn text_outputs_are_escaped_in_html() {
        let number = Output { title: "x".into(), figure: None, bundle: MimeBundle::text("a < b & c") };
        let (blocks, _) = printed(&[number.clone(), number]);
        assert!(get(&blocks, "text/html").unwrap().contains("<pre>a &lt; b &amp; c</pre>"));
    }

    #[test]
    fn nothing_shown_prints_nothing() {
        assert!(blocks(&[], None).is_empty());
    }

    #[test]
    fn an_error_is_shown_after_the_outputs_and_recorded() {
        let diagnostic = "advx::name\n\n  × unknown name `fc10`\n   ╭─[cell 5:1:15]\n 1 │ show <fc10>\n";
        let mut out = Vec::new();
        print(&blocks(&[table()], Some(diagnostic)), &mut out).unwrap();
        let (blocks, _) = read_like_evcxr(&String::from_utf8(out).unwrap());
        let html = get(&blocks, "text/html").unwrap();
        assert!(html.find("<table>").unwrap() < html.find("advx-error").unwrap());
        assert!(html.contains("show &lt;fc10&gt;"), "escaped: {html}");
        assert!(get(&blocks, "text/plain").unwrap().trim_end().ends_with("show <fc10>"), "every line is kept");
        let data: Json = serde_json::from_str(get(&blocks, DATA_MIME).unwrap()).unwrap();
        assert_eq!(data["error"].as_str().unwrap().trim_end(), diagnostic.trim_end());
        assert_eq!(data["outputs"].as_array().unwrap().len(), 1);
        let alone = super::blocks(&[], Some(diagnostic));
        assert!(alone.iter().any(|(m, c)| *m == "text/plain" && c.contains("unknown name")));
    }
}
