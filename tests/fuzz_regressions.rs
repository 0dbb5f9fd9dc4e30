//! Inputs found by fuzzing the parser (`fuzz/`, target `parse`) and the
//! limits that came out of it. Each input must parse, or fail with a
//! syntax error that renders, and resolve names, without panicking or
//! overflowing the stack. Tests run on threads with 2 MiB of stack, less
//! than a program's main thread, so they also show the limits leave room.

use advx::lang::{self, parse::MAX_NESTING};
use advx::session::{Session, Source};

/// What the fuzz target does with every input: parse, then render the
/// syntax error or check the names. Returns the rendered error, if any.
fn front_end(source: &str) -> Option<String> {
    match lang::parse("fuzz.advx", source) {
        Ok(script) => {
            let session = Session::new().expect("a current folder");
            let checked = session.check(&script, &Source { name: "fuzz.advx", text: source });
            checked.err().map(|e| lang::error::render(&e, false))
        }
        Err(e) => {
            let _ = e.line_col();
            Some(lang::error::render(&e, false))
        }
    }
}

fn syntax_error(source: &str) -> (String, (usize, usize)) {
    let e = lang::parse("fuzz.advx", source).expect_err("should not parse");
    (lang::error::render(&e, false), e.line_col())
}

/// `open` repeated `levels` times around `inner`, closed by `close`.
fn nest(open: &str, inner: &str, close: &str, levels: usize) -> String {
    format!("{}{inner}{}", open.repeat(levels), close.repeat(levels))
}

fn too_deep(source: &str) -> (usize, usize) {
    let (message, at) = syntax_error(source);
    let limit = format!("expected no nesting deeper than {MAX_NESTING} levels");
    assert!(message.contains(&limit), "{message}");
    assert!(!message.contains(" or "), "the limit stands alone: {message}");
    at
}

// ------------------------------------------------- unbounded recursion
//
// Found by hand before the first run: `(`, `[`, `-`, `not` and option
// blocks each made the parser recurse once more, with no bound, and ten
// thousand of them overflowed the stack (SIGSEGV / ASan stack-overflow).
// Now each counts as a level and level MAX_NESTING + 1 is a syntax error.

#[test]
fn ten_thousand_open_parentheses_are_a_syntax_error() {
    let at = too_deep(&"(".repeat(10_000));
    assert_eq!(at, (1, MAX_NESTING + 1), "the caret is on the first `(` too many");
}

#[test]
fn ten_thousand_open_brackets_are_a_syntax_error() {
    too_deep(&format!("let a = {}", "[".repeat(10_000)));
}

#[test]
fn ten_thousand_minus_signs_are_a_syntax_error() {
    too_deep(&format!("show {}1", "-".repeat(10_000)));
}

#[test]
fn ten_thousand_nots_are_a_syntax_error() {
    too_deep(&format!("show {}true", "not ".repeat(10_000)));
}

#[test]
fn deeply_nested_calls_and_indexes_are_a_syntax_error() {
    too_deep(&nest("f(", "1", ")", 10_000));
    too_deep(&nest("a[", "1", "]", 10_000));
    too_deep(&nest("a.f(", "1", ")", 10_000));
}

#[test]
fn deeply_nested_option_blocks_are_a_syntax_error() {
    // The command form's block holds another command: no bracket between.
    too_deep(&nest("grid t { title: ", "1", " }", 10_000));
    too_deep(&nest("grid(t) { title: ", "1", " }", 10_000));
}

#[test]
fn deep_nesting_in_a_named_operand_of_the_command_form_says_so() {
    // The command form used to drop a failure after `name:` and report
    // "expected the end of the statement" at the name instead.
    let at = too_deep(&format!("show grid t cols: {}", "(".repeat(10_000)));
    assert_eq!(at, (1, 19 + MAX_NESTING));
    too_deep(&format!("show grid t on {}", "(".repeat(10_000)));
}

#[test]
fn a_broken_named_operand_of_the_command_form_is_reported_where_it_breaks() {
    let (message, at) = syntax_error("show grid mnist.test cols: (1 +");
    assert!(message.contains("expected an expression"), "{message}");
    assert_eq!(at, (1, 32));
    let (message, at) = syntax_error("show grid mnist.test cols: 8 title: \"a\n");
    assert!(message.contains("expected a closing `\"`"), "{message}");
    assert_eq!(at, (1, 39));
}

#[test]
fn nesting_up_to_the_limit_parses_and_checks() {
    // The statement's own operand is the first level.
    let inner = MAX_NESTING - 1;
    for source in [
        format!("show {}", nest("(", "1", ")", inner)),
        format!("show {}", nest("[", "1", "]", inner)),
        format!("show {}1", "-".repeat(inner)),
        format!("show {}true", "not ".repeat(inner)),
        format!("show {}", nest("grid(", "1", ")", inner)),
        format!("show {}", nest("mnist.test[", "1", "]", inner)),
        format!("show {}", nest("grid mnist { title: ", "1", " }", inner)),
        format!("show grid mnist cols: {}", nest("(", "1", ")", inner - 1)),
    ] {
        let script = lang::parse("fuzz.advx", &source)
            .unwrap_or_else(|e| panic!("{}\n{}", &source[..40], lang::error::render(&e, false)));
        let session = Session::new().unwrap();
        session.check(&script, &Source { name: "fuzz.advx", text: &source }).unwrap();
    }
}

#[test]
fn the_limit_resets_between_scripts() {
    for _ in 0..3 {
        too_deep(&"(".repeat(MAX_NESTING + 10));
    }
    assert!(lang::parse("fuzz.advx", &nest("(", "1", ")", 3)).is_ok());
}

// ------------------------------------------------- the corpus

/// The fuzzer's corpus (fuzz/corpus/parse, minimised) replayed under
/// `cargo test`: each input exercises a path the fuzzer found new, and
/// none may panic. The fuzz target also checks spans; so does this.
#[test]
fn the_fuzz_corpus_goes_through_the_front_end() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let Ok(source) = std::str::from_utf8(&bytes) else { continue };
        if let Ok(script) = lang::parse("fuzz.advx", source) {
            for cell in &script.cells {
                assert!(source.get(cell.span.clone()).is_some(), "{source:?}: cell {:?}", cell.span);
                for stmt in &cell.statements {
                    assert!(source.get(stmt.span.clone()).is_some(), "{source:?}: statement {:?}", stmt.span);
                }
            }
        }
        let _ = front_end(source);
        count += 1;
    }
    assert!(count > 10, "only {count} corpus inputs in {}", dir.display());
}
