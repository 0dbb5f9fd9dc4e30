//! The grammar file and the parser agree: every example under grammar/ and
//! notebooks/ parses and resolves, and the keywords listed in the grammar
//! are the parser's.

use std::path::{Path, PathBuf};

use advx::lang::{self, ast};
use advx::session::{Session, Source};

fn scripts(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            scripts(&path, found);
        } else if path.extension().is_some_and(|e| e == "advx") {
            found.push(path);
        }
    }
}

#[test]
fn every_example_parses_and_resolves() {
    let mut found = Vec::new();
    scripts(Path::new("grammar"), &mut found);
    scripts(Path::new("notebooks"), &mut found);
    assert!(found.len() >= 2, "examples: {found:?}");
    for path in found {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        let script = lang::parse(&name, &text).unwrap_or_else(|e| panic!("{}", lang::error::render(&e, false)));
        assert!(!script.cells.is_empty(), "{name} has no cells");
        let session = Session::new().unwrap();
        if let Err(e) = session.check(&script, &Source { name: &name, text: &text }) {
            panic!("{}", lang::error::render(&e, false));
        }
    }
}

#[test]
fn the_grammar_lists_the_parsers_keywords() {
    let grammar = std::fs::read_to_string("grammar/advx.ebnf").unwrap();
    let rule = grammar.split("keyword     =").nth(1).expect("a keyword rule").split(';').next().unwrap();
    let mut listed: Vec<&str> = rule.split('"').skip(1).step_by(2).collect();
    let mut known = ast::KEYWORDS.to_vec();
    listed.sort();
    known.sort();
    assert_eq!(listed, known);
}
