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

/// A cell's outputs, as `Session::run` returns them: a list (it derefs to
/// `Vec<Output>`) that renders inline when a Jupyter cell ends with it
/// (see [`crate::session::jupyter`]).
#[derive(Clone, Default)]
pub struct Outputs(pub Vec<Output>);

impl Outputs {
    pub fn into_vec(self) -> Vec<Output> {
        self.0
    }
}

impl std::ops::Deref for Outputs {
    type Target = Vec<Output>;

    fn deref(&self) -> &Vec<Output> {
        &self.0
    }
}

impl std::ops::DerefMut for Outputs {
    fn deref_mut(&mut self) -> &mut Vec<Output> {
        &mut self.0
    }
}

impl From<Vec<Output>> for Outputs {
    fn from(outputs: Vec<Output>) -> Self {
        Outputs(outputs)
    }
}

impl From<Outputs> for Vec<Output> {
    fn from(outputs: Outputs) -> Self {
        outputs.0
    }
}

impl IntoIterator for Outputs {
    type Item = Output;
    type IntoIter = std::vec::IntoIter<Output>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Outputs {
    type Item = &'a Output;
    type IntoIter = std::slice::Iter<'a, Output>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The titles and text, not the image bytes: what a REPL prints when it
/// cannot show the richer forms.
impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let texts: Vec<&str> = self.0.iter().map(|o| o.bundle.text.as_str()).collect();
        f.write_str(&texts.join("\n\n"))
    }
}
