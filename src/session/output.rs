//! What a cell produces: one MIME bundle per shown value, in order.
//!
//! The same outputs feed the terminal (text/plain), the batch report and
//! results file, and notebooks (every representation), so a value is
//! rendered once and each consumer picks the representation it can show.

use serde_json::Value as Json;

/// One output of a cell, shaped like a Jupyter `display_data`.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// What was shown, as written in the script (`evaluate fc100 on test`).
    pub title: String,
    /// The file stem a figure is saved under in a batch run, when the
    /// output is a figure (`cell2-grid`).
    pub figure: Option<String>,
    pub bundle: MimeBundle,
}

/// The representations of one value. `text` is always there.
#[derive(Debug, Clone, Default)]
pub struct MimeBundle {
    /// text/plain: what a terminal prints.
    pub text: String,
    /// text/html: a fragment (a table), never a whole page.
    pub html: Option<String>,
    /// image/png: the encoded file.
    pub png: Option<Vec<u8>>,
    /// image/svg+xml: the document.
    pub svg: Option<String>,
    /// application/json: the value's data, also what results.yaml records.
    pub json: Option<Json>,
}

impl MimeBundle {
    pub fn text(text: impl Into<String>) -> Self {
        MimeBundle { text: text.into(), ..Default::default() }
    }

    /// The MIME types present, richest last, as Jupyter lists them.
    pub fn mime_types(&self) -> Vec<&'static str> {
        let mut types = vec!["text/plain"];
        if self.html.is_some() {
            types.push("text/html");
        }
        if self.json.is_some() {
            types.push("application/json");
        }
        if self.svg.is_some() {
            types.push("image/svg+xml");
        }
        if self.png.is_some() {
            types.push("image/png");
        }
        types
    }
}
