//! The `.advx` language: syntax tree, parser and diagnostics. The grammar
//! is written down in `grammar/advx.ebnf`; `resolve.rs` checks names
//! without running anything (`advx check`).

pub mod ast;
pub mod error;
pub mod parse;

pub use ast::{Script, Span};
pub use error::{NameError, RuntimeError, SyntaxError};

/// Parses a whole script (or one cell's source). `name` labels errors:
/// the file name, or `cell 3` in a notebook.
#[allow(clippy::result_large_err)] // A diagnostic carries its source; it is made once, on failure.
pub fn parse(name: &str, source: &str) -> Result<Script, SyntaxError> {
    parse::script(source).map_err(|e| SyntaxError::new(name, source, e))
}
