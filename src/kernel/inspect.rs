//! Shift-Tab: what the word under the cursor is. An operation shows its
//! usage and parameters (the text of `advx check --ops`); a binding its
//! kind and summary (an image set's count, shape and source, a model's
//! file and error rates); a dataset its splits.

use jupyter_protocol::{InspectReply, InspectRequest, Media, MediaType};

use super::complete::byte_index;
use crate::session::{Session, ops};

pub fn reply(session: &Session, request: &InspectRequest) -> InspectReply {
    let cursor = byte_index(&request.code, request.cursor_pos);
    match describe(session, word_at(&request.code, cursor)) {
        Some(text) => {
            InspectReply { found: true, data: Media::new(vec![MediaType::Plain(text)]), ..InspectReply::default() }
        }
        None => InspectReply::default(),
    }
}

/// The description of `word`, when it names something.
pub fn describe(session: &Session, word: &str) -> Option<String> {
    if let Some(value) = session.get(word) {
        return Some(format!("{word}: {}\n{}", value.kind(), value.summary()));
    }
    if let Some(op) = ops::find(word) {
        return Some(op.describe());
    }
    crate::data::by_script_name(word).map(|d| format!("dataset {word}: {}\nsplits: train, test", d.name))
}

/// The identifier around a byte index (the one just before it when the
/// cursor follows a word, as after typing it).
fn word_at(code: &str, cursor: usize) -> &str {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let start = code[..cursor].rfind(|c: char| !is_word(c)).map_or(0, |i| i + 1);
    let end = code[cursor..].find(|c: char| !is_word(c)).map_or(code.len(), |i| cursor + i);
    &code[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_under_or_before_the_cursor_is_inspected() {
        assert_eq!(word_at("show evaluate fc100", 8), "evaluate");
        assert_eq!(word_at("show evaluate", 13), "evaluate");
        assert_eq!(word_at("lbfgs(m, on: x)", 3), "lbfgs");
    }

    #[test]
    fn operations_show_their_usage_and_parameters() {
        let session = Session::new().unwrap();
        let text = describe(&session, "lbfgs").unwrap();
        let op = ops::find("lbfgs").unwrap();
        assert!(text.contains(op.usage), "{text}");
        assert!(op.params.iter().all(|p| text.contains(p.name)), "{text}");
        assert!(describe(&session, "mnist").unwrap().contains("train, test"));
        assert!(describe(&session, "nothing_here").is_none());
    }
}
