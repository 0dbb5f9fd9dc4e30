//! Parameter values given on the command line (`-p NAME=VALUE`). A value
//! is one literal, read with the script's own syntax but never run: a
//! number (finite), a quoted string, `true` or `false`, a list of
//! literals, a range of numbers (`0..100`), or a bare word (letters,
//! digits and `_`), taken as a string. Anything else (`1+1`, `mnist.test`,
//! `evaluate(...)`) is refused, so a command line cannot run code, load
//! data or hide a typo behind an expression that happens to evaluate.
//!
//! `nan` and `inf` are bare words, hence strings: a numeric parameter
//! refuses them, as it refuses `1e999` (not a finite number).

use anyhow::{Result, bail};

use super::value::Value;
use crate::lang::ast::{ExprKind, StmtKind, UnaryOp};
use crate::lang::{self, ast::Expr};

/// What a value may be, for error messages.
const LITERALS: &str = "a number, a quoted string, true or false, a list of these, a range such as 0..100, \
                        or a bare word (taken as a string)";

/// The value `written` stands for as parameter `name`'s, or why it is not
/// one literal (naming the parameter).
pub fn literal(name: &str, written: &str) -> Result<Value> {
    let written = written.trim();
    if written.is_empty() {
        bail!("parameter `{name}` has no value: give {LITERALS}");
    }
    if is_bare_word(written) {
        return Ok(Value::Str(written.to_string()));
    }
    let source = format!("let x = {written}");
    let expr = lang::parse("-p", &source).ok().and_then(|script| {
        let [cell] = script.cells.as_slice() else { return None };
        let [stmt] = cell.statements.as_slice() else { return None };
        match &stmt.kind {
            StmtKind::Let { value, .. } => Some(value.clone()),
            _ => None,
        }
    });
    let why = match expr.as_ref().map(|e| literal_expr(e, true)) {
        Some(Ok(value)) => return Ok(value),
        Some(Err(why)) => why,
        None => "is not one literal".to_string(),
    };
    let quoted = written.replace('"', "\\\"");
    bail!("parameter `{name}`: `{written}` {why}; give {LITERALS}; to pass text, quote it: -p '{name}=\"{quoted}\"'")
}

/// The value a `param` default has when it is written as a literal (the
/// command line's value is checked against it before anything runs).
/// Names there are bindings, not words.
pub fn default_value(expr: &Expr) -> Option<Value> {
    literal_expr(expr, false).ok()
}

/// The value of an expression written as a literal, bare words taken as
/// strings when `words`, or why it is not one.
fn literal_expr(expr: &Expr, words: bool) -> Result<Value, String> {
    let literal = |e: &Expr| literal_expr(e, words);
    match &expr.kind {
        ExprKind::Number(n) if n.is_finite() => Ok(Value::Number(*n)),
        ExprKind::Number(_) => Err("is not a finite number".into()),
        ExprKind::Str(s) => Ok(Value::Str(s.clone())),
        ExprKind::Bool(b) => Ok(Value::Bool(*b)),
        ExprKind::Name(word) if words => Ok(Value::Str(word.clone())),
        ExprKind::Unary { op: UnaryOp::Neg, operand } => match literal(operand)? {
            Value::Number(n) => Ok(Value::Number(-n)),
            _ => Err("negates something other than a number".into()),
        },
        ExprKind::List(items) => Ok(Value::List(items.iter().map(literal).collect::<Result<_, _>>()?)),
        ExprKind::Range { start, end } => match (literal(start)?, literal(end)?) {
            (Value::Number(a), Value::Number(b)) => Ok(Value::Range(a, b)),
            _ => Err("is a range of something other than numbers".into()),
        },
        _ => Err("is an expression, not a literal".into()),
    }
}

/// Letters, digits and `_`, not starting with a digit, and no keyword but
/// `true` and `false` (which are booleans).
fn is_bare_word(text: &str) -> bool {
    let mut chars = text.chars();
    let starts = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_');
    starts && chars.all(|c| c.is_alphanumeric() || c == '_') && !matches!(text, "true" | "false")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(written: &str) -> Value {
        literal("n", written).unwrap_or_else(|e| panic!("{written}: {e:#}"))
    }

    #[test]
    fn literals_are_values() {
        assert!(matches!(value("100"), Value::Number(n) if n == 100.0));
        assert!(matches!(value("-0.5"), Value::Number(n) if n == -0.5));
        assert!(matches!(value("\"fc100\""), Value::Str(s) if s == "fc100"));
        assert!(matches!(value("fc100"), Value::Str(s) if s == "fc100"));
        assert!(matches!(value("nan"), Value::Str(s) if s == "nan"), "nan is a word, not a number");
        assert!(matches!(value("show"), Value::Str(s) if s == "show"));
        assert!(matches!(value("true"), Value::Bool(true)));
        assert!(matches!(value("0..10"), Value::Range(a, b) if a == 0.0 && b == 10.0));
        let Value::List(items) = value("[1, \"a\", [true]]") else { panic!("a list") };
        assert_eq!(items.len(), 3);
    }

    #[test]
    fn code_and_non_finite_numbers_are_refused() {
        for written in
            ["1+1", "mnist.test", "evaluate(m, on: t)", "", "  ", "1e999", "[1, 2 * 3]", "-\"a\"", "1\nshow 2"]
        {
            assert!(literal("n", written).is_err(), "`{written}` was accepted");
        }
        let message = literal("n", "mnist.test").unwrap_err().to_string();
        assert!(message.contains("parameter `n`") && message.contains("-p 'n=\"mnist.test\"'"), "{message}");
        assert!(literal("n", "1e999").unwrap_err().to_string().contains("not a finite number"));
    }
}
