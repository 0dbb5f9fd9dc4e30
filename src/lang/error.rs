//! Errors that point into a script: syntax errors, unknown names and
//! runtime failures, rendered by miette with the source line and a caret.

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};
use thiserror::Error;

use super::ast::Span;
use super::parse::{self, PError};

/// A script that does not parse.
#[derive(Debug, Error, Diagnostic)]
#[error("syntax error: {message}")]
#[diagnostic(code(advx::syntax))]
pub struct SyntaxError {
    #[source_code]
    pub src: NamedSource<String>,
    #[label("found {found}")]
    pub at: SourceSpan,
    /// What the parser would have accepted where it stopped.
    pub expected: String,
    /// The headline: "expected ...", or the limit the script went past.
    pub message: String,
    pub found: String,
    /// Why a limit the script went past is there.
    #[help]
    pub help: Option<String>,
}

impl SyntaxError {
    pub fn new(name: &str, source: &str, error: PError) -> Self {
        let offset = error.offset.min(source.len());
        let found = describe_token(&source[offset..]);
        let width = token_len(&source[offset..]);
        let expected = one_of(&error.expected);
        let (message, help) = match parse::limit(&error) {
            Some(limit) => (limit.message.to_string(), Some(limit.help.to_string())),
            None => (format!("expected {expected}"), None),
        };
        SyntaxError {
            src: NamedSource::new(name, source.to_string()),
            at: (offset, width).into(),
            expected,
            message,
            found,
            help,
        }
    }

    /// 1-based line and column of the error.
    pub fn line_col(&self) -> (usize, usize) {
        line_col(self.src.inner(), self.at.offset())
    }
}

/// A name that is not bound, with the nearest known one.
#[derive(Debug, Error, Diagnostic)]
#[error("unknown {kind} `{name}`")]
#[diagnostic(code(advx::name))]
pub struct NameError {
    #[source_code]
    pub src: NamedSource<String>,
    #[label("not defined here")]
    pub at: SourceSpan,
    pub kind: &'static str,
    pub name: String,
    #[help]
    pub help: Option<String>,
}

impl NameError {
    pub fn new(name: &str, source: &str, at: &Span, kind: &'static str, unknown: &str, known: &[String]) -> Self {
        NameError {
            src: NamedSource::new(name, source.to_string()),
            at: (at.start, at.len()).into(),
            kind,
            name: unknown.to_string(),
            help: suggestion(unknown, known),
        }
    }
}

/// A statement that failed while running. The cell and the statement are
/// named so the user knows which outputs are missing.
#[derive(Debug, Error, Diagnostic)]
#[error("{place} failed: {message}")]
#[diagnostic(code(advx::runtime))]
pub struct RuntimeError {
    #[source_code]
    pub src: NamedSource<String>,
    #[label("this statement")]
    pub at: SourceSpan,
    pub place: String,
    pub message: String,
    #[help]
    pub help: Option<String>,
}

/// "did you mean `x`?" for the known name closest to `unknown`.
pub fn suggestion(unknown: &str, known: &[String]) -> Option<String> {
    nearest(unknown, known).map(|n| format!("did you mean `{n}`?"))
}

pub fn nearest<'a>(unknown: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(unknown, k), k))
        .filter(|(d, k)| *d <= (k.len().max(unknown.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

fn one_of(expected: &[&str]) -> String {
    match expected {
        [] => "something else".into(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn describe_token(rest: &str) -> String {
    match rest.chars().next() {
        None => "the end of the script".into(),
        Some('\n') => "the end of the line".into(),
        Some(_) => format!("`{}`", &rest[..token_len(rest)]),
    }
}

fn token_len(rest: &str) -> usize {
    let mut chars = rest.char_indices();
    match chars.next() {
        None | Some((_, '\n')) => 0,
        Some((_, c)) if c.is_alphanumeric() || c == '_' => {
            rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')).unwrap_or(rest.len())
        }
        Some((_, c)) => c.len_utf8(),
    }
}

pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Renders a diagnostic as plain text (reports, notebooks) or with colour
/// (a terminal).
pub fn render(diagnostic: &dyn Diagnostic, colour: bool) -> String {
    let theme = if colour { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let mut out = String::new();
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    if handler.render_report(&mut out, diagnostic).is_err() {
        out = diagnostic.to_string();
    }
    out
}
