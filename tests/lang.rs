//! The parser on its own: the shapes it accepts and the errors it gives.

use advx::lang::ast::{Arg, BinaryOp, ExprKind, StmtKind};
use advx::lang::{self, Script, parse::MAX_DEPTH};

fn parse(source: &str) -> Script {
    match lang::parse("test.advx", source) {
        Ok(script) => script,
        Err(e) => panic!("{}", lang::error::render(&e, false)),
    }
}

fn error(source: &str) -> (String, (usize, usize)) {
    let e = lang::parse("test.advx", source).expect_err("should not parse");
    (lang::error::render(&e, false), e.line_col())
}

fn only_expr(source: &str) -> ExprKind {
    let script = parse(source);
    match &script.cells[0].statements[0].kind {
        StmtKind::Expr(e) | StmtKind::Show { value: e } | StmtKind::Let { value: e, .. } => e.kind.clone(),
        other => panic!("not an expression statement: {other:?}"),
    }
}

fn arg_names(args: &[Arg]) -> Vec<Option<String>> {
    args.iter().map(|a| a.name.as_ref().map(|n| n.name.clone())).collect()
}

#[test]
fn cells_split_on_percent_markers() {
    let script = parse("param n = 10\n# %% setup\nlet a = 1\n\n# %%\nshow a # a comment\n");
    assert_eq!(script.cells.len(), 3);
    assert_eq!(script.cells[1].title.as_deref(), Some("setup"));
    assert_eq!(script.cells[2].title, None);
    assert_eq!(script.cells[2].statements.len(), 1);
}

#[test]
fn a_script_starting_with_a_marker_has_no_empty_first_cell() {
    let script = parse("# a comment\n# %% one\nlet a = 1\n");
    assert_eq!(script.cells.len(), 1);
    assert_eq!(script.cells[0].title.as_deref(), Some("one"));
}

#[test]
fn command_form_is_a_call_with_connectors() {
    let ExprKind::Call { op, args } = only_expr("show evaluate [fc100, fc200] on test") else { panic!() };
    assert_eq!(op.name, "evaluate");
    assert_eq!(arg_names(&args), vec![None, Some("on".into())]);
}

#[test]
fn command_named_arguments_and_block() {
    let src = "let adv = lbfgs fc100 on test steps: 3 {\n  c: 1e-3..10\n  seed: 1, memory: 5\n}\n";
    let ExprKind::Call { args, .. } = only_expr(src) else { panic!() };
    let names = arg_names(&args);
    assert_eq!(
        names,
        vec![
            None,
            Some("on".into()),
            Some("steps".into()),
            Some("c".into()),
            Some("seed".into()),
            Some("memory".into())
        ]
    );
}

#[test]
fn method_calls_put_the_receiver_first() {
    let ExprKind::Call { op, args } = only_expr("fc100.predict(test[0..16])") else { panic!() };
    assert_eq!(op.name, "predict");
    assert!(matches!(args[0].value.kind, ExprKind::Name(ref n) if n == "fc100"));
    assert!(matches!(args[1].value.kind, ExprKind::Index { .. }));
}

#[test]
fn function_calls_wrap_lines() {
    let ExprKind::Call { args, .. } = only_expr("grid(test[0..16],\n     cols: 8,\n     labels: p,\n)") else {
        panic!()
    };
    assert_eq!(arg_names(&args), vec![None, Some("cols".into()), Some("labels".into())]);
}

#[test]
fn arithmetic_precedence() {
    let ExprKind::Binary { op, right, .. } = only_expr("1 + 10 * (adv - test)") else { panic!() };
    assert_eq!(op.to_string(), "+");
    assert!(matches!(right.kind, ExprKind::Binary { .. }));
}

#[test]
fn numbers_with_exponents_and_ranges() {
    let ExprKind::Range { start, end } = only_expr("1e-3..2.5E+2") else { panic!() };
    assert_eq!(start.kind, ExprKind::Number(1e-3));
    assert_eq!(end.kind, ExprKind::Number(250.0));
    let ExprKind::Range { end, .. } = only_expr("0..16") else { panic!() };
    assert_eq!(end.kind, ExprKind::Number(16.0));
}

#[test]
fn where_filters_by_a_predicate() {
    let ExprKind::Where { predicate, .. } = only_expr("mnist.test where label == 3 or label in [5, 7]") else {
        panic!()
    };
    assert!(matches!(predicate.kind, ExprKind::Binary { .. }));
}

#[test]
fn save_leaves_to_for_the_path() {
    let script = parse("save evaluate m on t to \"errors.csv\"\n");
    let StmtKind::Save { value, path } = &script.cells[0].statements[0].kind else { panic!() };
    assert!(matches!(value.kind, ExprKind::Call { .. }));
    assert_eq!(path.kind, ExprKind::Str("errors.csv".into()));
}

#[test]
fn strings_have_escapes() {
    assert_eq!(only_expr(r#""a\"b\n""#), ExprKind::Str("a\"b\n".into()));
}

#[test]
fn model_statement_with_options() {
    let script = parse("model m = onnx \"models/x.onnx\" { device: \"cpu\" }");
    let StmtKind::Model { name, options, .. } = &script.cells[0].statements[0].kind else { panic!() };
    assert_eq!(name.name, "m");
    assert_eq!(options.len(), 1);
}

#[test]
fn syntax_errors_say_where_and_what() {
    let (text, at) = error("let a = 1\nshow grid(test, cols 8)\n");
    assert_eq!(at, (2, 22), "{text}");
    assert!(text.contains("test.advx:2:22"), "{text}");
    assert!(text.contains("expected `)` or `,`"), "{text}");
    assert!(text.contains("expected"), "{text}");
    let (text, at) = error("let = 3");
    assert_eq!(at, (1, 5), "{text}");
    assert!(text.contains("a name"), "{text}");
    let (text, _) = error("show \"unterminated\n");
    assert!(text.contains("closing"), "{text}");
    let (text, _) = error("let x = [1, 2");
    assert!(text.contains("`]`"), "{text}");
}

#[test]
fn keywords_are_not_names() {
    let (text, _) = error("let where = 1");
    assert!(text.contains("a name"), "{text}");
}

#[test]
fn an_expression_deeper_than_the_limit_says_which_limit_and_why() {
    let source = format!("let a = 1\nlet total = {}\n", vec!["a"; MAX_DEPTH + 50].join(" + "));
    let (text, at) = error(&source);
    // MAX_DEPTH - 1 `+` over the first `a` make MAX_DEPTH levels: the caret
    // is on the next.
    assert_eq!(at, (2, "let total = ".len() + (MAX_DEPTH - 1) * "a + ".len() + "a ".len() + 1), "{text}");
    let headline =
        format!("syntax error: expression nested too deeply: at most {MAX_DEPTH} levels of operators and brackets");
    assert!(text.contains(&headline), "{text}");
    assert!(text.contains("found `+`"), "{text}");
    assert!(text.contains("help: checking, running and freeing an expression recurse once per level"), "{text}");
    let e = lang::parse("test.advx", &source).unwrap_err();
    assert!(e.help.as_deref().is_some_and(|h| h.contains("name inner parts with `let`")), "{:?}", e.help);
}

#[test]
fn wide_and_long_scripts_have_no_limit() {
    // The depth limit is per statement and counts levels, not items.
    let deepest = vec!["a"; MAX_DEPTH].join(" + ");
    parse(&format!("let a = 1\nlet b = {deepest}\n").repeat(100));
    // A call is a level above its arguments.
    let argument = vec!["a"; MAX_DEPTH - 1].join(" + ");
    let items: Vec<String> = (0..10_000).map(|n| n.to_string()).collect();
    let ExprKind::List(list) = only_expr(&format!("let x = [{}]", items.join(", "))) else { panic!("a list") };
    assert_eq!(list.len(), 10_000);
    let ExprKind::Call { args, .. } = only_expr(&format!("show grid({})", vec![argument.as_str(); 100].join(",\n")))
    else {
        panic!("a call")
    };
    assert_eq!(args.len(), 100);
}

#[test]
fn chains_stay_left_associative() {
    let ExprKind::Binary { op, left, right } = only_expr("show 1 - 2 - 3") else { panic!("a difference") };
    assert_eq!(op, BinaryOp::Sub);
    assert_eq!(right.kind, ExprKind::Number(3.0));
    assert!(matches!(left.kind, ExprKind::Binary { op: BinaryOp::Sub, .. }));
    let ExprKind::Index { target, .. } = only_expr("show a[0][1]") else { panic!("an index") };
    assert!(matches!(target.kind, ExprKind::Index { .. }));
}
