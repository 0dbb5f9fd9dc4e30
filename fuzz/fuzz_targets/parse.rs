//! The `.advx` front end on arbitrary text: parsing, rendering a syntax
//! error and resolving names must never panic or overflow the stack, and
//! every span the parser hands out must slice the input on char
//! boundaries (later errors point at the text through them).

#![no_main]

use advx::lang::ast::{Arg, Expr, ExprKind, StmtKind};
use advx::lang::{self, Script, Span};
use advx::session::{Session, Source};
use libfuzzer_sys::fuzz_target;

const NAME: &str = "fuzz.advx";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match lang::parse(NAME, text) {
        Ok(script) => {
            check_spans(&script, text);
            let session = Session::new().expect("the current folder exists");
            if let Err(e) = session.check(&script, &Source { name: NAME, text }) {
                let _ = lang::error::render(&e, false);
            }
        }
        Err(e) => {
            let _ = lang::error::render(&e, false);
            let _ = e.line_col();
        }
    }
});

fn check_spans(script: &Script, text: &str) {
    for cell in &script.cells {
        assert_slices(&cell.span, text, "cell");
        for stmt in &cell.statements {
            assert_slices(&stmt.span, text, "statement");
            let inside = cell.span.start <= stmt.span.start && stmt.span.end <= cell.span.end;
            assert!(inside, "statement {:?} outside its cell {:?} in {text:?}", stmt.span, cell.span);
            match &stmt.kind {
                StmtKind::Let { name, value } | StmtKind::Param { name, value } => {
                    assert_slices(&name.span, text, "name");
                    expr_spans(value, text);
                }
                StmtKind::Model { name, path, options } => {
                    assert_slices(&name.span, text, "name");
                    expr_spans(path, text);
                    arg_spans(options, text);
                }
                StmtKind::Show { value } | StmtKind::Expr(value) => expr_spans(value, text),
                StmtKind::Save { value, path } => {
                    expr_spans(value, text);
                    expr_spans(path, text);
                }
            }
        }
    }
}

/// The spans name errors point at: every expression and identifier.
fn expr_spans(expr: &Expr, text: &str) {
    assert_slices(&expr.span, text, "expression");
    match &expr.kind {
        ExprKind::Number(_) | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Name(_) => {}
        ExprKind::List(items) => items.iter().for_each(|e| expr_spans(e, text)),
        ExprKind::Range { start: a, end: b }
        | ExprKind::Binary { left: a, right: b, .. }
        | ExprKind::Index { target: a, index: b }
        | ExprKind::Where { data: a, predicate: b } => {
            expr_spans(a, text);
            expr_spans(b, text);
        }
        ExprKind::Unary { operand, .. } => expr_spans(operand, text),
        ExprKind::Field { target, field } => {
            expr_spans(target, text);
            assert_slices(&field.span, text, "field");
        }
        ExprKind::Call { op, args } => {
            assert_slices(&op.span, text, "operation");
            arg_spans(args, text);
        }
    }
}

fn arg_spans(args: &[Arg], text: &str) {
    for arg in args {
        if let Some(name) = &arg.name {
            assert_slices(&name.span, text, "argument name");
        }
        expr_spans(&arg.value, text);
    }
}

fn assert_slices(span: &Span, text: &str, what: &str) {
    assert!(text.get(span.clone()).is_some(), "{what} span {span:?} does not slice {text:?}");
}
