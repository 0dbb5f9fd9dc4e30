//! Inputs found by fuzzing the parser (`fuzz/`, target `parse`) and the
//! ONNX loader (target `onnx`), and the limits that came out of them.
//! Each script must parse, or fail with a syntax error that renders, and
//! resolve names, without panicking or overflowing the stack. Tests run
//! on threads with 2 MiB of stack, less than a program's main thread, so
//! they also show the limits leave room. Each model must be outlined,
//! validated and exported, or refused, without panicking.

use advx::grad::{self, Objective, Reconstruction};
use advx::lang::{self, parse::MAX_DEPTH, parse::MAX_NESTING};
use advx::onnx::builder::{Elem, GraphBuilder};
use advx::onnx::shape::Dim;
use advx::onnx::{self, ModelProto, NodeProto, summary::Summary, tensor};
use advx::session::{CellError, Session, Source, Value};
use onnx_tools::Check;
use prost::Message;

mod onnx_tools;

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

// ------------------------------------------------- deep trees from flat chains
//
// Found by hand after the nesting limit: a chain of operators parses in a
// loop, so MAX_NESTING never counted it, yet `1+1+...+1` is a left-deep
// tree as deep as the chain is long, and name checking, evaluation and
// even dropping the tree recurse once per level. Unoptimised, a thousand
// terms (2 KB of source) overflowed a 2 MiB stack. Now every level the tree gains counts
// (each chain link, prefix and postfix operator, call, list and bracket),
// and level MAX_DEPTH + 1 is a syntax error at the operator that adds it.

/// Runs `f` on a thread with 2 MiB of stack (the default of test threads,
/// stated here so that RUST_MIN_STACK cannot hide an overflow). An
/// overflow aborts the whole test binary.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let thread = std::thread::Builder::new().stack_size(2 << 20).spawn(f).expect("a thread");
    thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// `terms` copies of `term` joined by `op`.
fn chain(term: &str, op: &str, terms: usize) -> String {
    vec![term; terms].join(op)
}

/// The first `limit` characters of a (long) rendered error.
fn head(text: &str, limit: usize) -> &str {
    &text[..text.char_indices().nth(limit).map_or(text.len(), |(n, _)| n)]
}

/// Asserts that `source` goes past MAX_DEPTH, and that the error names the
/// limit and why it is there. Returns where the caret is.
fn too_tall(source: &str) -> (usize, usize) {
    let (message, at) = syntax_error(source);
    let limit =
        format!("syntax error: expression nested too deeply: at most {MAX_DEPTH} levels of operators and brackets");
    assert!(message.contains(&limit), "{}", head(&message, 2000));
    assert!(message.contains("recurse once per level"), "says why: {}", head(&message, 2000));
    let headline = message.lines().find(|l| l.contains("syntax error")).unwrap_or_default();
    assert!(!headline.contains(" or "), "the limit stands alone: {headline}");
    at
}

#[test]
fn ten_thousand_term_chains_are_a_syntax_error() {
    on_small_stack(|| {
        // The caret is on the first operator too many: MAX_DEPTH - 1
        // operators over the first term make MAX_DEPTH levels.
        for (term, op) in [
            ("1", "+"),
            ("1", " - "),
            ("1", "*"),
            ("1", " / "),
            ("1", " == "),
            ("1", " < "),
            ("1", " in "),
            ("true", " and "),
            ("true", " or "),
        ] {
            let prefix = "let x = ";
            let at = too_tall(&format!("{prefix}{}", chain(term, op, 10_000)));
            let spaces = op.len() - op.trim_start().len();
            let column = prefix.len() + MAX_DEPTH * term.len() + (MAX_DEPTH - 1) * op.len() + spaces + 1;
            assert_eq!(at, (1, column), "{term}{op}...");
        }
    });
}

#[test]
fn ten_thousand_postfix_operators_are_a_syntax_error() {
    on_small_stack(|| {
        for (target, postfix) in [("a", "[0]"), ("x", ".f()"), ("x", ".f(1, 2)"), ("x", ".y"), ("a", "[b]")] {
            let at = too_tall(&format!("show {target}{}", postfix.repeat(10_000)));
            let column = "show ".len() + target.len() + (MAX_DEPTH - 1) * postfix.len() + 1;
            assert_eq!(at, (1, column), "{target}{postfix}...");
        }
    });
}

#[test]
fn ten_thousand_prefix_operators_are_a_syntax_error() {
    // `-` and `not` make the parser recurse, so the nesting limit stops
    // them long before the tree gets deep; with or without spaces.
    on_small_stack(|| {
        too_deep(&format!("show {}x", "- ".repeat(10_000)));
        too_deep(&format!("show {}x", "-".repeat(10_000)));
        too_deep(&format!("show {}x", "not ".repeat(10_000)));
        too_deep(&format!("show 1 {}x", "- ".repeat(10_000)));
    });
}

#[test]
fn a_long_chain_in_any_position_is_a_syntax_error() {
    on_small_stack(|| {
        let sum = chain("1", "+", 10_000);
        for source in [
            format!("let x = ({sum})"),
            format!("let x = [{sum}]"),
            format!("let x = f({sum})"),
            format!("let x = a.f(n: {sum})"),
            format!("let x = a[{sum}]"),
            format!("let x = -{sum}"),
            format!("let x = not {sum}"),
            format!("let x = 0..{sum}"),
            format!("let x = a where {sum}"),
            format!("let x = grid a cols: {sum}"),
            format!("let x = grid a on {sum}"),
            format!("let x = grid {sum}"),
            format!("let x = grid(a) {{ title: {sum} }}"),
            format!("let x = grid a {{\n  title: {sum}\n}}"),
            format!("model m = onnx \"m.onnx\" {{ device: {sum} }}"),
            format!("save {sum} to \"x.yaml\""),
            format!("save x to {sum}"),
            sum.clone(),
            format!("# %% cell\nlet a = 1\n\nshow {sum}\n"),
        ] {
            too_tall(&source);
        }
    });
}

#[test]
fn the_depth_adds_up_across_brackets_and_chains() {
    on_small_stack(|| {
        // 31 parentheses (the most the nesting limit allows) are 31 levels:
        // the chain inside has the rest.
        let parens = MAX_NESTING - 1;
        let at = too_tall(&nest("(", &chain("1", "+", 10_000), ")", parens));
        assert_eq!(at, (1, parens + 2 * (MAX_DEPTH - parens)), "the first `+` too many");
        // Postfix operators on a chain in brackets: the chain and the
        // brackets make 201 levels, so MAX_DEPTH - 201 `[0]` fit.
        let bracketed = format!("({})", chain("1", "+", 200));
        let at = too_tall(&format!("{bracketed}{}", "[0]".repeat(10_000)));
        assert_eq!(at, (1, bracketed.len() + 3 * (MAX_DEPTH - 201) + 1), "the first `[` too many");
    });
}

/// An expression of exactly `levels` tree levels, in a cell that binds `x`
/// to it, and what running that cell gives. The operator that makes the
/// last level is the last `operator` in the source.
struct Deep {
    what: &'static str,
    source: fn(usize) -> String,
    operator: &'static str,
    expect: Expect,
}

#[derive(Debug)]
enum Expect {
    Number(f64),
    Bool(bool),
    /// Runs, and binds `x`.
    Runs,
    /// Fails at run time, at the innermost level: evaluation has gone all
    /// the way down before it fails.
    Fails,
}

/// `l` is a list, `i` a range that picks its only item.
const SETUP: &str = "let l = [1]\nlet i = 0..1\n";

fn deep_kinds() -> Vec<Deep> {
    use Expect::*;
    vec![
        Deep { what: "sum", source: |n| format!("let x = {}", chain("1", "+", n)), operator: "+", expect: Runs },
        Deep {
            what: "difference",
            source: |n| format!("let x = {}", chain("1", " - ", n)),
            operator: "-",
            expect: Runs,
        },
        Deep {
            what: "product",
            source: |n| format!("let x = {}", chain("1", " * ", n)),
            operator: "*",
            expect: Number(1.0),
        },
        Deep {
            what: "quotient",
            source: |n| format!("let x = {}", chain("1", "/", n)),
            operator: "/",
            expect: Number(1.0),
        },
        Deep {
            what: "comparisons",
            source: |n| format!("let x = 1 == 1{}", " == true".repeat(n - 2)),
            operator: "==",
            expect: Bool(true),
        },
        Deep {
            what: "and",
            source: |n| format!("let x = {}", chain("true", " and ", n)),
            operator: "and",
            expect: Bool(true),
        },
        Deep {
            what: "or",
            source: |n| format!("let x = {}", chain("false", " or ", n)),
            operator: "or",
            expect: Bool(false),
        },
        Deep {
            what: "indexes",
            source: |n| format!("{SETUP}let x = l{}", "[i]".repeat(n - 1)),
            operator: "[",
            expect: Runs,
        },
        Deep {
            what: "fields",
            source: |n| format!("{SETUP}let x = l{}", ".count".repeat(n - 1)),
            operator: ".",
            expect: Fails,
        },
        Deep {
            what: "method calls",
            source: |n| format!("{SETUP}let x = l{}", ".grid(cols: 1)".repeat(n - 1)),
            operator: ".",
            expect: Fails,
        },
        Deep {
            what: "a list",
            source: |n| format!("let x = [{}]", chain("1", "+", n - 1)),
            operator: "+",
            expect: Runs,
        },
        Deep {
            what: "a range",
            source: |n| format!("let x = 0..{}", chain("1", "+", n - 1)),
            operator: "+",
            expect: Runs,
        },
        Deep {
            what: "a call",
            source: |n| format!("{SETUP}let x = grid(l, cols: {})", chain("1", "+", n - 1)),
            operator: "+",
            expect: Fails,
        },
        Deep {
            what: "the command form",
            source: |n| format!("{SETUP}let x = grid l cols: {}", chain("1", "+", n - 1)),
            operator: "+",
            expect: Fails,
        },
        Deep {
            what: "an option block",
            source: |n| format!("{SETUP}let x = grid(l) {{\n  title: {}\n}}", chain("1", "+", n - 1)),
            operator: "+",
            expect: Fails,
        },
        Deep {
            what: "a filter",
            source: |n| format!("{SETUP}let x = l where {}", chain("true", " and ", n - 1)),
            operator: "and",
            expect: Fails,
        },
        Deep {
            // Each `-(` is two levels, and two of the 32 the parser nests.
            what: "minus signs and brackets",
            source: |n| format!("let x = {}", nest("-(", &chain("1", "+", n - 30), ")", 15)),
            operator: "+",
            expect: Runs,
        },
        Deep {
            what: "brackets",
            source: |n| {
                let parens = MAX_NESTING - 1;
                format!("let x = {}", nest("(", &chain("1", "+", n - parens), ")", parens))
            },
            operator: "+",
            expect: Runs,
        },
    ]
}

#[test]
fn the_deepest_trees_parse_check_run_and_drop_on_a_small_stack() {
    for kind in deep_kinds() {
        on_small_stack(move || {
            let source = (kind.source)(MAX_DEPTH);
            let what = kind.what;
            let script = lang::parse("deep.advx", &source)
                .unwrap_or_else(|e| panic!("{what}: {}", head(&lang::error::render(&e, false), 2000)));
            let mut session = Session::new().expect("a current folder");
            session.check(&script, &Source { name: "deep.advx", text: &source }).expect(what);
            drop(script);
            let result = session.execute(&source);
            match (&kind.expect, &result.error, session.get("x")) {
                (Expect::Number(n), None, Some(Value::Number(x))) => assert_eq!(x, n, "{what}"),
                (Expect::Bool(b), None, Some(Value::Bool(x))) => assert_eq!(x, b, "{what}"),
                (Expect::Runs, None, Some(_)) => {}
                (Expect::Fails, Some(CellError::Runtime(_)), None) => {}
                (expect, error, x) => panic!(
                    "{what}: expected {expect:?}, got {:?} and x = {:?}",
                    error.as_ref().map(|e| head(&e.render(false), 2000).to_string()),
                    x.map(Value::kind)
                ),
            }
        });
    }
}

#[test]
fn one_more_level_is_a_syntax_error_at_the_operator_that_adds_it() {
    for kind in deep_kinds() {
        on_small_stack(move || {
            let source = (kind.source)(MAX_DEPTH + 1);
            let at = too_tall(&source);
            let offset = source.rfind(kind.operator).expect("the operator");
            assert_eq!(at, lang::error::line_col(&source, offset), "{}", kind.what);
            let mut session = Session::new().expect("a current folder");
            let result = session.execute(&source);
            assert!(matches!(result.error, Some(CellError::Syntax(_))), "{}", kind.what);
        });
    }
}

#[test]
fn the_depth_limit_is_per_statement_and_resets_between_scripts() {
    on_small_stack(|| {
        let deepest = chain("1", "+", MAX_DEPTH);
        let bracketed = format!("({})", chain("1", "+", MAX_DEPTH - 2));
        let many = format!("let a = {deepest}\nlet b = {deepest}; show {bracketed} - 1\n").repeat(20);
        assert!(lang::parse("deep.advx", &many).is_ok());
        for _ in 0..3 {
            too_tall(&chain("1", "+", MAX_DEPTH + 1));
            too_tall(&format!("show x{}", "[0]".repeat(MAX_DEPTH * 2)));
        }
        assert!(lang::parse("deep.advx", &deepest).is_ok());
    });
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

// ------------------------------------------------- the ONNX loader
//
// The `onnx` target mutates valid models (fuzz/seeds-onnx) and feeds them
// to what `advx info` and `advx grad` run: decoding, the summary,
// validation and the export of every objective. Its corpus is replayed
// here; inputs it found that once panicked are tests of their own below.

/// What the `onnx` fuzz target does with an input: decode, outline,
/// validate and export every objective. Returns whether the model is
/// valid and the backward graphs that exported, each checked as the target
/// checks them: from a valid model, well formed, and round-tripping.
fn onnx_front_end(bytes: &[u8]) -> (bool, Vec<(Objective, ModelProto)>) {
    let Ok(model) = onnx::decode(bytes) else { return (false, Vec::new()) };
    let _ = Summary::of(&model).to_string();
    let valid = grad::validate(&model).is_ok();
    let mut objectives = vec![
        Objective::Xent,
        Objective::Train,
        Objective::Reconstruction(Reconstruction::SquaredError),
        Objective::Reconstruction(Reconstruction::BinaryCrossEntropy),
    ];
    let outputs: Vec<&String> = onnx::graph(&model).node.iter().flat_map(|n| &n.output).collect();
    let picked = outputs.iter().take(2).chain(outputs.iter().rev().take(2));
    objectives.extend(picked.map(|t| Objective::Direction(t.to_string())));
    let mut exported = Vec::new();
    for objective in objectives {
        let Ok(backward) = grad::export(&model, &objective) else { continue };
        assert!(valid, "{objective} exported from a model validation rejects");
        onnx::validate::structure(&backward).unwrap_or_else(|e| panic!("{objective}: {e:#}"));
        let bytes = backward.encode_to_vec();
        assert!(onnx::decode(&bytes).unwrap().encode_to_vec() == bytes, "{objective} round-trips");
        exported.push((objective, backward));
    }
    (valid, exported)
}

/// x [N, 2, 8, 8] -> Conv (W of `weights`) -> y, at opset 17.
fn conv(weights: &[usize], input: [usize; 2]) -> ModelProto {
    let mut b = GraphBuilder::new();
    b.input("x", Elem::F32, &[Dim::Batch, Dim::Fixed(2), Dim::Fixed(input[0]), Dim::Fixed(input[1])]);
    b.initializers.push(tensor::from_f32("w", &ndarray::ArrayD::zeros(ndarray::IxDyn(weights))));
    b.push(NodeProto {
        name: Some("conv1".into()),
        op_type: Some("Conv".into()),
        input: vec!["x".into(), "w".into()],
        output: vec!["y".into()],
        ..Default::default()
    });
    b.output("y", Elem::F32, &[Dim::Batch, Dim::Fixed(4), Dim::Batch, Dim::Batch]);
    b.into_model("conv", 17, "one Conv")
}

/// Found by the `onnx` target in its second run (after 285,000
/// executions, from the conv net seed): a Conv whose weights `[4, 2, 0, 3]`
/// hold no values has an empty kernel, and the window's span `(0 - 1) *
/// dilation + 1` overflowed (a panic with overflow checks, a window of
/// 2^64 - 1 rows without). An empty image did the same through SAME pads.
#[test]
fn a_conv_with_an_empty_kernel_or_image_is_an_error_naming_the_node() {
    let err = format!("{:#}", grad::validate(&conv(&[4, 2, 0, 3], [8, 8])).unwrap_err());
    assert!(err.contains("Conv node 'conv1' has weights with an empty [0, 3] kernel"), "{err}");
    let err = format!("{:#}", grad::validate(&conv(&[4, 2, 3, 3], [0, 8])).unwrap_err());
    assert!(err.contains("Conv node 'conv1' needs a static, nonzero height size"), "{err}");
    assert!(grad::validate(&conv(&[4, 2, 3, 3], [8, 8])).is_ok());
    let crash = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/onnx/empty-conv-kernel");
    let (valid, exported) = onnx_front_end(&std::fs::read(crash).unwrap());
    assert!(!valid && exported.is_empty());
}

/// The minimised corpus (fuzz/corpus/onnx) through the front end; each
/// input covers a path the fuzzer found new, and none may panic.
#[test]
fn the_onnx_fuzz_corpus_goes_through_info_validation_and_export() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/onnx");
    let (mut count, mut valid, mut graphs) = (0, 0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let (ok, exported) = onnx_front_end(&bytes);
        count += 1;
        valid += ok as usize;
        graphs += exported.len();
    }
    println!("{count} inputs, {valid} valid models, {graphs} backward graphs");
    assert!(
        count > 100 && valid > 10 && graphs > valid,
        "{count} inputs, {valid} valid, {graphs} graphs in {}",
        dir.display()
    );
}

/// The models of the corpus that advx validates, against ONNX's own
/// tools: each loads in ONNX Runtime, and each backward graph exported
/// from them passes onnx.checker's full check and loads too. The fuzzer's
/// corpus, checked so, found what validation first let through: negative
/// and zero dimensions read as the batch, flags other than 0 and 1 (ONNX
/// and ONNX Runtime read `keepdims = 2` differently), LRN's alpha, a
/// Dropout ratio that is not a scalar, imports of domains ONNX Runtime
/// refuses, unknown element types, initializers with values in two fields.
#[test]
fn the_onnx_corpus_models_advx_accepts_pass_onnx_runtime_and_their_graphs_onnx_checker() {
    let Some(python) = onnx_tools::python() else { return };
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/onnx");
    let dir = tempfile::tempdir().unwrap();
    let (mut files, mut sources) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let input = entry.unwrap().path();
        let bytes = std::fs::read(&input).unwrap();
        let (valid, exported) = onnx_front_end(&bytes);
        if !valid {
            continue;
        }
        let model = dir.path().join(format!("{}.model.onnx", files.len()));
        std::fs::write(&model, &bytes).unwrap();
        files.push((model, Check::Runtime));
        sources.push(format!("{} (the model)", input.display()));
        for (objective, backward) in exported {
            let path = dir.path().join(format!("{}.backward.onnx", files.len()));
            std::fs::write(&path, backward.encode_to_vec()).unwrap();
            files.push((path, Check::Strict));
            sources.push(format!("{} ({objective})", input.display()));
        }
    }
    let verdicts = onnx_tools::verdicts(&python, &files);
    let rejected: Vec<String> =
        sources.iter().zip(&verdicts).filter(|(_, v)| *v != "ok").map(|(s, v)| format!("{s}: {v}")).collect();
    println!("{} files checked", files.len());
    assert!(rejected.is_empty(), "{} rejected:\n{}", rejected.len(), rejected.join("\n"));
}
