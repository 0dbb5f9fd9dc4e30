//! Tab completion: what may be written at the cursor, from the language
//! (keywords, operations and the options of the operation being written),
//! the session (bindings and the fields of their values, datasets and
//! their splits) and the file system (paths inside a string).
//!
//! Jupyter counts cursor positions in Unicode characters, not bytes.

use std::path::Path;

use jupyter_protocol::{CompleteReply, CompleteRequest};

use crate::lang::ast::KEYWORDS;
use crate::session::{Session, Value, ops};

pub fn reply(session: &Session, request: &CompleteRequest) -> CompleteReply {
    let code = &request.code;
    let cursor = byte_index(code, request.cursor_pos);
    let (start, matches) = candidates(session, &code[..cursor]);
    CompleteReply {
        matches,
        cursor_start: code[..start].chars().count(),
        cursor_end: request.cursor_pos,
        ..CompleteReply::default()
    }
}

/// Where the word being completed starts (a byte index into `before`,
/// the code up to the cursor), and what may replace it, sorted.
pub fn candidates(session: &Session, before: &str) -> (usize, Vec<String>) {
    if let Some(opening) = open_string(before) {
        let written = &before[opening + 1..];
        let start = opening + 1 + written.rfind('/').map_or(0, |i| i + 1);
        return (start, paths(session.base_dir(), written));
    }
    let start = before.rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')).map_or(0, |i| i + 1);
    let word = &before[start..];
    let (start, partial, mut names) = match word.rsplit_once('.') {
        Some((base, partial)) => (start + base.len() + 1, partial, fields(session, base)),
        None => (start, word, words(session, statement(before))),
    };
    names.retain(|name| name.starts_with(partial));
    names.sort();
    names.dedup();
    (start, names)
}

/// Keywords, operations, bindings, datasets, and the options (`name: `)
/// of the last operation named in the statement being written.
fn words(session: &Session, statement: &str) -> Vec<String> {
    let mut words: Vec<String> = KEYWORDS.iter().map(|k| k.to_string()).collect();
    words.extend(ops::names());
    words.extend(session.names().map(str::to_string));
    words.extend(crate::data::script_names().into_iter().map(str::to_string));
    let operation = statement.rsplit(|c: char| !(c.is_alphanumeric() || c == '_')).find_map(ops::find);
    if let Some(op) = operation {
        words.extend(op.params.iter().map(|p| format!("{}: ", p.name)));
    }
    words
}

/// The fields of what `base` names: a dataset's splits, or the fields of
/// a bound value (nothing for longer paths, which only running reads).
fn fields(session: &Session, base: &str) -> Vec<String> {
    if crate::data::by_script_name(base).is_some() {
        return Value::Dataset(base.to_string()).field_names();
    }
    session.get(base).map(Value::field_names).unwrap_or_default()
}

/// The statement the cursor is in: from the last newline or `;` outside
/// brackets (an option block spans lines).
fn statement(before: &str) -> &str {
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in before.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '\n' | ';' if depth == 0 => start = i + 1,
            _ => {}
        }
    }
    &before[start..]
}

/// The byte index of the `"` that opens a string still open at the end of
/// `before` (on its last line, outside comments).
fn open_string(before: &str) -> Option<usize> {
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let mut opening = None;
    let mut escaped = false;
    for (i, c) in before[line_start..].char_indices() {
        match (c, opening) {
            ('#', None) => return None,
            ('"', None) => opening = Some(line_start + i),
            ('\\', Some(_)) if !escaped => {
                escaped = true;
                continue;
            }
            ('"', Some(_)) if !escaped => opening = None,
            _ => {}
        }
        escaped = false;
    }
    opening
}

/// The entries of the folder `written` names (relative to `base`) that
/// start with its last part; folders end with `/`.
fn paths(base: &Path, written: &str) -> Vec<String> {
    let (folder, prefix) = written.rsplit_once('/').map_or(("", written), |(f, p)| (f, p));
    let dir = match folder {
        "" if written.starts_with('/') => Path::new("/").to_path_buf(),
        "" => base.to_path_buf(),
        f => base.join(f),
    };
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let folder = e.file_type().ok()?.is_dir();
            (name.starts_with(prefix) && (!name.starts_with('.') || prefix.starts_with('.')))
                .then(|| if folder { name + "/" } else { name })
        })
        .collect();
    names.sort();
    names
}

/// The byte index of the `chars`-th character (the end when past it).
pub fn byte_index(text: &str, chars: usize) -> usize {
    text.char_indices().nth(chars).map_or(text.len(), |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(before: &str) -> (usize, Vec<String>) {
        candidates(&Session::new().unwrap(), before)
    }

    #[test]
    fn operations_keywords_and_datasets_complete_by_prefix() {
        let (start, matches) = complete("show eva");
        assert_eq!((start, matches), (5, vec!["evaluate".to_string()]));
        assert!(complete("le").1.contains(&"let".to_string()));
        assert!(complete("show evaluate fc100 on mni").1.contains(&"mnist".to_string()));
    }

    #[test]
    fn fields_of_datasets_follow_a_dot() {
        assert_eq!(complete("show evaluate fc100 on mnist.te"), (29, vec!["test".to_string()]));
    }

    #[test]
    fn options_of_the_operation_being_written_complete_inside_its_block() {
        let (_, matches) = complete("let a = lbfgs fc100 on mnist.test {\n  steps: 3\n  re");
        assert!(matches.contains(&"refine: ".to_string()), "{matches:?}");
        assert!(!complete("let a = 3\nre").1.contains(&"refine: ".to_string()));
    }

    #[test]
    fn paths_complete_inside_strings() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("models")).unwrap();
        std::fs::write(dir.path().join("models/fc100.onnx"), b"").unwrap();
        let session = Session::new().unwrap().with_base_dir(dir.path());
        let before = "model m = onnx \"mo";
        assert_eq!(candidates(&session, before), (before.len() - 2, vec!["models/".to_string()]));
        let before = "model m = onnx \"models/f";
        assert_eq!(candidates(&session, before), (before.len() - 1, vec!["fc100.onnx".to_string()]));
        assert!(open_string("let s = \"a\\\"b\" # \"").is_none());
    }

    #[test]
    fn cursor_positions_count_characters() {
        assert_eq!(byte_index("σ = eva", 5), "σ = e".len());
        assert_eq!(byte_index("ab", 9), 2);
    }
}
