//! The parser: nom 8 over a `nom_locate` span, so every node knows where it
//! came from. `grammar/advx.ebnf` is the reference this file follows; keep
//! the two in step (tests/grammar.rs parses every example under grammar/
//! and notebooks/).
//!
//! Statements end at a newline or `;`. Inside `( )` and `[ ]` newlines are
//! plain space, so long calls and lists can wrap; a `{ }` option block
//! takes one option per line (or comma-separated). The command form
//! `op X word Y name: Z` always stays on one line.

use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::satisfy;
use nom::combinator::{opt, recognize};
use nom::error::{ErrorKind, ParseError};
use nom::{Err, IResult, Parser};
use nom_locate::LocatedSpan;

use super::ast::*;

pub type Input<'a> = LocatedSpan<&'a str>;
type PResult<'a, T> = IResult<Input<'a>, T, PError>;

/// The furthest point the parser reached and what it would have accepted
/// there: `alt` keeps the error that got furthest, and merges the
/// expectations of branches that stopped at the same place.
#[derive(Debug, Clone, PartialEq)]
pub struct PError {
    pub offset: usize,
    pub expected: Vec<&'static str>,
}

impl<'a> ParseError<Input<'a>> for PError {
    fn from_error_kind(input: Input<'a>, _: ErrorKind) -> Self {
        PError { offset: input.location_offset(), expected: Vec::new() }
    }

    fn append(_: Input<'a>, _: ErrorKind, other: Self) -> Self {
        other
    }

    fn or(mut self, other: Self) -> Self {
        // Past a limit no other branch can succeed, and what they expected
        // (or got further with) would hide the real problem.
        if limit(&other).is_some() {
            return other;
        }
        if limit(&self).is_some() {
            return self;
        }
        match self.offset.cmp(&other.offset) {
            std::cmp::Ordering::Less => other,
            std::cmp::Ordering::Greater => self,
            std::cmp::Ordering::Equal => {
                for e in other.expected {
                    if !self.expected.contains(&e) {
                        self.expected.push(e);
                    }
                }
                self
            }
        }
    }
}

fn fail<'a, T>(i: Input<'a>, expected: &'static str) -> PResult<'a, T> {
    Err(Err::Error(PError { offset: i.location_offset(), expected: vec![expected] }))
}

/// Turns a recoverable error into a hard one: after a keyword or an opening
/// bracket the construct is certain, and backtracking would only hide the
/// real mistake behind a vaguer one.
fn cut<T>(result: PResult<'_, T>) -> PResult<'_, T> {
    result.map_err(|e| match e {
        Err::Error(e) => Err::Failure(e),
        other => other,
    })
}

/// How deep brackets, option blocks, `-` and `not` may nest. The parser
/// recurses once per level, so without a bound ten thousand `(` overflow
/// the stack (an abort, not an error). A level costs up to 40 KiB of stack
/// in a debug build (7 KiB in release), so 32 levels fit the 2 MiB of a
/// test thread; scripts people write nest a few.
pub const MAX_NESTING: usize = 32;

/// The limit in "expected ..." messages; says [`MAX_NESTING`].
const TOO_DEEP: &str = "no nesting deeper than 32 levels";

/// How many levels the tree of one statement's expression may have, a
/// leaf being one. Every construct that puts what it holds one level
/// further down counts: each link of an operator chain (`1+1+1` is a
/// left-deep tree of two levels of `+` over its leaves), `-` and `not`,
/// `.field`, `.op(...)`, `[index]`, calls, lists, option blocks and
/// parentheses. [`MAX_NESTING`] bounds only what makes the *parser*
/// recurse; a flat chain of ten thousand `+` or `[0]` parses in a loop, but
/// name checking, evaluation and even dropping the tree recurse once per
/// level: unoptimised, a sum of a thousand terms (2 KB of source)
/// overflowed the 2 MiB stack of a test thread. A level costs at most
/// 0.6 KiB of that stack in the dev profile (opt-level 1) and 5.5 KiB
/// unoptimised (a method call: `eval`, `call`, `eval`), so 256 levels take
/// under 170 KiB, or 1.4 MiB unoptimised; tests/fuzz_regressions.rs runs the
/// deepest tree of each kind through parse, check, execute and drop on a
/// 2 MiB thread. Scripts people write have a few dozen levels.
pub const MAX_DEPTH: usize = 256;

/// What a syntax error says past [`MAX_DEPTH`] (it names the number).
const TOO_TALL: &str = "expression nested too deeply: at most 256 levels of operators and brackets";

/// A limit of the parser that a script went past: the diagnostic's
/// headline, and why the limit is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub message: &'static str,
    pub help: &'static str,
}

/// The limit `error` reports, if it is one.
pub fn limit(error: &PError) -> Option<Limit> {
    match error.expected.as_slice() {
        [TOO_DEEP] => Some(Limit {
            message: "expected no nesting deeper than 32 levels",
            help: "the parser recurses once per bracket, call, option block, `-` and `not`, \
                   so their nesting is bounded; name inner parts with `let`",
        }),
        [TOO_TALL] => Some(Limit {
            message: TOO_TALL,
            help: "checking, running and freeing an expression recurse once per level \
                   (every operator, `.`, `[ ]`, call and bracket is one), so its depth is bounded; \
                   name inner parts with `let`",
        }),
        _ => None,
    }
}

thread_local! {
    /// The nesting level being parsed on this thread.
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// How many tree levels lie above the expression being parsed on this
    /// thread: 0 for a statement's value.
    static LEVEL: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// An expression and its height: the tree levels from it down to its
/// deepest leaf, a leaf being one. `LEVEL + height` never passes
/// [`MAX_DEPTH`].
type Tree = (Expr, usize);

fn leaf(parsed: PResult<'_, Expr>) -> PResult<'_, Tree> {
    parsed.map(|(rest, e)| (rest, (e, 1)))
}

/// Runs `p`, which parses what the construct at `at` (a bracket, a prefix
/// operator, a call, the right side of an operator) holds, one tree level
/// further down. Fails for good at `at` when not even a leaf fits there.
fn below<'a, T>(at: Input<'a>, p: impl FnOnce() -> PResult<'a, T>) -> PResult<'a, T> {
    let level = LEVEL.get();
    if level + 1 >= MAX_DEPTH {
        return cut(fail(at, TOO_TALL));
    }
    LEVEL.set(level + 1);
    let result = p();
    LEVEL.set(level);
    result
}

/// The height of a subtree of `height` once the operator at `at` makes it
/// its operand (`a` in `a + b`, `a.f`, `a[i]`, `a where p`, `a..b`): one
/// more. Fails for good at `at` when that passes [`MAX_DEPTH`], so a long
/// chain stops at its first operator too many.
fn taller<'a>(at: Input<'a>, height: usize) -> Result<usize, Err<PError>> {
    if LEVEL.get() + height >= MAX_DEPTH {
        return Err(Err::Failure(PError { offset: at.location_offset(), expected: vec![TOO_TALL] }));
    }
    Ok(height + 1)
}

/// Runs `p` one nesting level deeper, and fails for good past
/// [`MAX_NESTING`] at `i`, the construct that goes too deep.
fn nested<'a, T>(i: Input<'a>, p: impl FnOnce(Input<'a>) -> PResult<'a, T>) -> PResult<'a, T> {
    let depth = DEPTH.get();
    if depth >= MAX_NESTING {
        return cut(fail(i, TOO_DEEP));
    }
    DEPTH.set(depth + 1);
    let result = p(i);
    DEPTH.set(depth);
    result
}

/// Runs `p`, and when it fails without consuming anything says that `what`
/// was expected here.
fn expect<'a, T>(
    what: &'static str,
    mut p: impl FnMut(Input<'a>) -> PResult<'a, T>,
) -> impl FnMut(Input<'a>) -> PResult<'a, T> {
    move |i: Input<'a>| {
        p(i).map_err(|e| match e {
            Err::Error(mut err) if err.offset == i.location_offset() => {
                err.expected = vec![what];
                Err::Error(err)
            }
            other => other,
        })
    }
}

fn span(from: Input<'_>, to: Input<'_>) -> Span {
    from.location_offset()..to.location_offset()
}

// ---------------------------------------------------------------- space

fn comment(i: Input<'_>) -> PResult<'_, Input<'_>> {
    recognize((tag("#"), take_while(|c| c != '\n'))).parse(i)
}

/// Spaces, tabs and a trailing comment; never a newline.
fn hspace(i: Input<'_>) -> PResult<'_, ()> {
    let (i, _) = take_while(|c| c == ' ' || c == '\t' || c == '\r').parse(i)?;
    let (i, _) = opt(comment).parse(i)?;
    Ok((i, ()))
}

/// Any space, comments and newlines.
fn space_nl(mut i: Input<'_>) -> PResult<'_, ()> {
    loop {
        let (rest, _) = take_while(|c: char| c.is_whitespace()).parse(i)?;
        let (rest, c) = opt(comment).parse(rest)?;
        if c.is_none() {
            return Ok((rest, ()));
        }
        i = rest;
    }
}

/// Space inside brackets (newlines included) or in a statement (not).
fn ws(multiline: bool) -> impl Fn(Input) -> PResult<'_, ()> {
    move |i| if multiline { space_nl(i) } else { hspace(i) }
}

fn sym<'a>(s: &'static str) -> impl FnMut(Input<'a>) -> PResult<'a, Input<'a>> {
    move |i| expect(quoted(s), |i| tag(s).parse(i))(i)
}

/// How a symbol is named in "expected ..." messages.
fn quoted(s: &'static str) -> &'static str {
    match s {
        "(" => "`(`",
        ")" => "`)`",
        "[" => "`[`",
        "]" => "`]`",
        "{" => "`{`",
        "}" => "`}`",
        ":" => "`:`",
        "=" => "`=`",
        "\"" => "`\"`",
        other => other,
    }
}

// ---------------------------------------------------------------- tokens

fn word(i: Input<'_>) -> PResult<'_, Input<'_>> {
    recognize((
        satisfy(|c| c.is_ascii_alphabetic() || c == '_'),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
    ))
    .parse(i)
}

fn keyword<'a>(kw: &'static str) -> impl FnMut(Input<'a>) -> PResult<'a, Input<'a>> {
    move |i| match word(i) {
        Ok((rest, w)) if *w.fragment() == kw => Ok((rest, w)),
        _ => fail(i, keyword_label(kw)),
    }
}

/// How a keyword is named in "expected ..." messages.
fn keyword_label(kw: &'static str) -> &'static str {
    match kw {
        "to" => "`to`",
        "onnx" => "`onnx`",
        "where" => "`where`",
        other => other,
    }
}

/// A name that can be bound: any word but a keyword.
fn ident(i: Input<'_>) -> PResult<'_, Ident> {
    match word(i) {
        Ok((rest, w)) if !is_keyword(w.fragment()) => {
            Ok((rest, Ident { name: w.fragment().to_string(), span: span(i, rest) }))
        }
        _ => fail(i, "a name"),
    }
}

fn number(i: Input<'_>) -> PResult<'_, Expr> {
    fn digits(i: Input<'_>) -> PResult<'_, Input<'_>> {
        take_while1(|c: char| c.is_ascii_digit()).parse(i)
    }
    let sign = |c| c == '+' || c == '-';
    let (rest, text) = expect("a number", |i| {
        let fraction = (tag("."), digits);
        let exponent = (satisfy(|c| c == 'e' || c == 'E'), opt(satisfy(sign)), digits);
        recognize((digits, opt(fraction), opt(exponent))).parse(i)
    })(i)?;
    match text.fragment().parse::<f64>() {
        Ok(value) => Ok((rest, Expr { kind: ExprKind::Number(value), span: span(i, rest) })),
        Err(_) => fail(i, "a number"),
    }
}

fn string(i: Input<'_>) -> PResult<'_, Expr> {
    let (mut rest, _) = sym("\"")(i)?;
    let mut value = String::new();
    loop {
        let mut chars = rest.fragment().chars();
        let consumed = match (chars.next(), chars.next()) {
            (Some('"'), _) => {
                let (rest, _) = tag("\"").parse(rest)?;
                return Ok((rest, Expr { kind: ExprKind::Str(value), span: span(i, rest) }));
            }
            (None, _) | (Some('\n'), _) => return cut(fail(rest, "a closing `\"`")),
            (Some('\\'), Some(escaped)) => {
                value.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    other => other,
                });
                1 + escaped.len_utf8()
            }
            (Some(c), _) => {
                value.push(c);
                c.len_utf8()
            }
        };
        rest = take_n(rest, consumed)?.0;
    }
}

fn take_n(i: Input<'_>, n: usize) -> PResult<'_, Input<'_>> {
    nom::bytes::complete::take(n).parse(i)
}

// ---------------------------------------------------------------- expressions

/// An expression, which may be a command (`evaluate m on t`). `stop` lists
/// connector words the command must leave to the enclosing statement
/// (`save VALUE to PATH`).
pub fn expr<'a>(i: Input<'a>, multiline: bool, stop: &[&str]) -> PResult<'a, Tree> {
    match command(i, stop) {
        Ok(done) => Ok(done),
        Err(Err::Error(e)) => where_expr(i, multiline).map_err(|err| err.map(|other| e.or(other))),
        Err(other) => Err(other),
    }
}

/// The command form: `op OPERAND (word OPERAND | name: OPERAND)* [block]`,
/// all on one line. It is `op(OPERAND, word: OPERAND, name: OPERAND)`.
fn command<'a>(i: Input<'a>, stop: &[&str]) -> PResult<'a, Tree> {
    let (rest, op) = ident(i)?;
    let (rest, _) = take_while1(|c| c == ' ' || c == '\t').parse(rest)?;
    let (mut rest, (first, mut height)) = match named_operand(rest) {
        Ok(done) => done,
        Err(Err::Error(_)) if starts_operand(rest) && !starts_with_word(rest, stop) => {
            let (rest, (value, height)) = below(rest, || where_expr(rest, false))?;
            (rest, (Arg { name: None, value }, height))
        }
        // After `name:` the mistake is in the value: say so, not "the end
        // of the statement" at the name.
        Err(Err::Failure(e)) => return Err(Err::Failure(e)),
        Err(_) => return fail(rest, "an operand"),
    };
    let mut args = vec![first];
    loop {
        let (after_space, _) = hspace(rest)?;
        match named_operand(after_space) {
            Ok((next, (arg, h))) => {
                args.push(arg);
                height = height.max(h);
                rest = next;
                continue;
            }
            Err(Err::Failure(e)) => return Err(Err::Failure(e)),
            Err(_) => {}
        }
        match connector(after_space, stop) {
            Ok((next, (arg, h))) => {
                args.push(arg);
                height = height.max(h);
                rest = next;
            }
            Err(Err::Failure(e)) => return Err(Err::Failure(e)),
            Err(_) => break,
        }
    }
    let (rest, (block, h)) = trailing_block(rest)?;
    args.extend(block);
    let call = Expr { kind: ExprKind::Call { op, args }, span: span(i, rest) };
    Ok((rest, (call, height.max(h) + 1)))
}

fn starts_with_word(i: Input<'_>, words: &[&str]) -> bool {
    word(i).is_ok_and(|(_, w)| words.contains(w.fragment()))
}

fn starts_operand(i: Input<'_>) -> bool {
    match i.fragment().chars().next() {
        Some(c) if c.is_ascii_digit() || "\"[(".contains(c) => true,
        Some(c) if c.is_ascii_alphabetic() || c == '_' => word(i)
            .map(|(_, w)| !is_keyword(w.fragment()) || matches!(*w.fragment(), "true" | "false"))
            .unwrap_or(false),
        _ => false,
    }
}

/// `name: VALUE` inside a command, the value on the same line. The
/// height is the value's.
fn named_operand(i: Input<'_>) -> PResult<'_, (Arg, usize)> {
    let (rest, name) = ident(i)?;
    let (rest, _) = tag(":").parse(rest)?;
    let (rest, _) = hspace(rest)?;
    let (rest, (value, height)) = cut(below(rest, || where_expr(rest, false)))?;
    Ok((rest, (Arg { name: Some(name), value }, height)))
}

/// `word VALUE`: a connector such as `on` or `to`.
fn connector<'a>(i: Input<'a>, stop: &[&str]) -> PResult<'a, (Arg, usize)> {
    let (rest, name) = ident(i)?;
    if stop.contains(&name.name.as_str()) {
        return fail(i, "a connector");
    }
    let (rest, _) = take_while1(|c| c == ' ' || c == '\t').parse(rest)?;
    if !starts_operand(rest) {
        return fail(i, "a connector");
    }
    let (rest, (value, height)) = cut(below(rest, || where_expr(rest, false)))?;
    Ok((rest, (Arg { name: Some(name), value }, height)))
}

fn where_expr(i: Input<'_>, multiline: bool) -> PResult<'_, Tree> {
    let (rest, (data, height)) = or_expr(i, multiline)?;
    let (after, _) = ws(multiline)(rest)?;
    match keyword("where")(after) {
        Ok((next, _)) => {
            let height = taller(after, height)?;
            let (next, _) = ws(multiline)(next)?;
            let (next, (predicate, h)) = cut(below(next, || or_expr(next, multiline)))?;
            let kind = ExprKind::Where { data: Box::new(data), predicate: Box::new(predicate) };
            Ok((next, (Expr { kind, span: span(i, next) }, height.max(h + 1))))
        }
        Err(_) => Ok((rest, (data, height))),
    }
}

/// A left-associative chain `operand (op operand)*`. It parses in a loop,
/// but the tree it makes is as deep as the chain is long, so every
/// operator counts as a level.
fn chain<'a>(
    i: Input<'a>,
    multiline: bool,
    operand: impl Fn(Input<'a>, bool) -> PResult<'a, Tree>,
    operator: impl Fn(Input<'a>) -> PResult<'a, BinaryOp>,
) -> PResult<'a, Tree> {
    let (mut rest, (mut left, mut height)) = operand(i, multiline)?;
    loop {
        let (after, _) = ws(multiline)(rest)?;
        let Ok((after_op, op)) = operator(after) else { return Ok((rest, (left, height))) };
        height = taller(after, height)?;
        let (after_op, _) = ws(multiline)(after_op)?;
        let (next, (right, h)) = cut(below(after_op, || operand(after_op, multiline)))?;
        height = height.max(h + 1);
        let kind = ExprKind::Binary { op, left: Box::new(left), right: Box::new(right) };
        left = Expr { kind, span: span(i, next) };
        rest = next;
    }
}

fn or_expr(i: Input<'_>, multiline: bool) -> PResult<'_, Tree> {
    chain(i, multiline, and_expr, |i| keyword("or")(i).map(|(r, _)| (r, BinaryOp::Or)))
}

fn and_expr(i: Input<'_>, multiline: bool) -> PResult<'_, Tree> {
    chain(i, multiline, not_expr, |i| keyword("and")(i).map(|(r, _)| (r, BinaryOp::And)))
}

fn not_expr(i: Input<'_>, multiline: bool) -> PResult<'_, Tree> {
    match keyword("not")(i) {
        Ok((rest, _)) => {
            let (rest, _) = ws(multiline)(rest)?;
            let (rest, (operand, height)) = cut(below(i, || nested(rest, |i| not_expr(i, multiline))))?;
            let kind = ExprKind::Unary { op: UnaryOp::Not, operand: Box::new(operand) };
            Ok((rest, (Expr { kind, span: span(i, rest) }, height + 1)))
        }
        Err(_) => comparison(i, multiline),
    }
}

fn comparison(i: Input<'_>, multiline: bool) -> PResult<'_, Tree> {
    chain(i, multiline, range, comparison_op)
}

fn comparison_op(i: Input<'_>) -> PResult<'_, BinaryOp> {
    let symbols = [
        ("==", BinaryOp::Eq),
        ("!=", BinaryOp::Ne),
        ("<=", BinaryOp::Le),
        (">=", BinaryOp::Ge),
        ("<", BinaryOp::Lt),
        (">", BinaryOp::Gt),
    ];
    for (s, op) in symbols {
        if let Ok((rest, _)) = tag::<_, _, PError>(s).parse(i) {
            return Ok((rest, op));
        }
    }
    keyword("in")(i).map(|(rest, _)| (rest, BinaryOp::In))
}

fn range(i: Input<'_>, multiline: bool) -> PResult<'_, Tree> {
    let (rest, (start, height)) = additive(i, multiline)?;
    let (after, _) = ws(multiline)(rest)?;
    let Ok((next, _)) = tag::<_, _, PError>("..").parse(after) else { return Ok((rest, (start, height))) };
    let height = taller(after, height)?;
    let (next, _) = ws(multiline)(next)?;
    let (next, (end, h)) = cut(below(next, || additive(next, multiline)))?;
    let kind = ExprKind::Range { start: Box::new(start), end: Box::new(end) };
    Ok((next, (Expr { kind, span: span(i, next) }, height.max(h + 1))))
}

fn additive(i: Input<'_>, multiline: bool) -> PResult<'_, Tree> {
    chain(i, multiline, multiplicative, |i| {
        let (rest, op) = satisfy(|c| c == '+' || c == '-').parse(i)?;
        Ok((rest, if op == '+' { BinaryOp::Add } else { BinaryOp::Sub }))
    })
}

fn multiplicative(i: Input<'_>, multiline: bool) -> PResult<'_, Tree> {
    chain(i, multiline, unary, |i| {
        let (rest, op) = satisfy(|c| c == '*' || c == '/').parse(i)?;
        Ok((rest, if op == '*' { BinaryOp::Mul } else { BinaryOp::Div }))
    })
}

/// Every operand passes here, so this is where brackets (and `-`) count
/// as a nesting level.
fn unary(i: Input<'_>, multiline: bool) -> PResult<'_, Tree> {
    nested(i, |i| match tag::<_, _, PError>("-").parse(i) {
        Ok((rest, _)) => {
            let (rest, _) = ws(multiline)(rest)?;
            let (rest, (operand, height)) = cut(below(i, || unary(rest, multiline)))?;
            let kind = ExprKind::Unary { op: UnaryOp::Neg, operand: Box::new(operand) };
            Ok((rest, (Expr { kind, span: span(i, rest) }, height + 1)))
        }
        Err(_) => postfix(i),
    })
}

/// `.field`, `.op(args)`, `[index]` and `(args)` bind to what is right
/// before them, with no space between: `f [x]` is the command form. A
/// chain of them parses in a loop; each is a tree level.
fn postfix(i: Input<'_>) -> PResult<'_, Tree> {
    let (mut rest, (mut target, mut height)) = primary(i)?;
    loop {
        if let Ok((after, _)) = tag::<_, _, PError>(".").parse(rest) {
            if after.fragment().starts_with('.') {
                return Ok((rest, (target, height)));
            }
            height = taller(rest, height)?;
            let (after, field) = cut(expect("a field or operation name", ident)(after))?;
            if after.fragment().starts_with('(') {
                let (after, (mut args, h)) = below(after, || call_args(after))?;
                height = height.max(h + 1);
                args.insert(0, Arg { name: None, value: target });
                target = Expr { kind: ExprKind::Call { op: field, args }, span: span(i, after) };
                rest = after;
            } else {
                target = Expr { kind: ExprKind::Field { target: Box::new(target), field }, span: span(i, after) };
                rest = after;
            }
        } else if let Ok((after, _)) = tag::<_, _, PError>("[").parse(rest) {
            height = taller(rest, height)?;
            let (after, _) = space_nl(after)?;
            let (after, (index, h)) = cut(below(rest, || where_expr(after, true)))?;
            height = height.max(h + 1);
            let (after, _) = space_nl(after)?;
            let (after, _) = cut(sym("]")(after))?;
            target = Expr {
                kind: ExprKind::Index { target: Box::new(target), index: Box::new(index) },
                span: span(i, after),
            };
            rest = after;
        } else {
            return Ok((rest, (target, height)));
        }
    }
}

fn primary(i: Input<'_>) -> PResult<'_, Tree> {
    let first = i.fragment().chars().next();
    match first {
        Some(c) if c.is_ascii_digit() => leaf(number(i)),
        Some('"') => leaf(string(i)),
        Some('[') => list(i),
        Some('(') => parenthesised(i),
        Some(c) if c.is_ascii_alphabetic() || c == '_' => name_or_call(i),
        _ => fail(i, "an expression"),
    }
}

fn name_or_call(i: Input<'_>) -> PResult<'_, Tree> {
    let (rest, w) = word(i)?;
    match *w.fragment() {
        "true" => return Ok((rest, (Expr { kind: ExprKind::Bool(true), span: span(i, rest) }, 1))),
        "false" => return Ok((rest, (Expr { kind: ExprKind::Bool(false), span: span(i, rest) }, 1))),
        _ => {}
    }
    let (rest, op) = expect("an expression", ident)(i)?;
    if !rest.fragment().starts_with('(') {
        return Ok((rest, (Expr { kind: ExprKind::Name(op.name), span: op.span }, 1)));
    }
    let (rest, (mut args, height)) = below(rest, || call_args(rest))?;
    let (rest, (block, h)) = trailing_block(rest)?;
    args.extend(block);
    let call = Expr { kind: ExprKind::Call { op, args }, span: span(i, rest) };
    Ok((rest, (call, height.max(h) + 1)))
}

/// `( arg, arg, name: value, ... )`; newlines are space inside. The
/// command form needs its own parentheses here, so that a missing colon
/// (`cols 8`) is a syntax error rather than a call of `cols`. The height
/// is the tallest argument's (0 for none).
fn call_args(i: Input<'_>) -> PResult<'_, (Vec<Arg>, usize)> {
    let (rest, _) = sym("(")(i)?;
    let (rest, args) = cut(separated(rest, ")", argument))?;
    Ok((rest, args))
}

fn argument(i: Input<'_>) -> PResult<'_, (Arg, usize)> {
    if let Ok((rest, name)) = ident(i)
        && let Ok((rest, _)) = tag::<_, _, PError>(":").parse(rest)
    {
        let (rest, _) = space_nl(rest)?;
        let (rest, (value, height)) = cut(where_expr(rest, true))?;
        return Ok((rest, (Arg { name: Some(name), value }, height)));
    }
    let (rest, (value, height)) = where_expr(i, true)?;
    Ok((rest, (Arg { name: None, value }, height)))
}

/// Items separated by commas up to `close`, newlines allowed anywhere, a
/// trailing comma allowed; with the tallest item's height (0 for none).
fn separated<'a, T>(
    i: Input<'a>,
    close: &'static str,
    item: impl Fn(Input<'a>) -> PResult<'a, (T, usize)>,
) -> PResult<'a, (Vec<T>, usize)> {
    let mut items = Vec::new();
    let mut height = 0;
    let (mut rest, _) = space_nl(i)?;
    loop {
        if let Ok((after, _)) = tag::<_, _, PError>(close).parse(rest) {
            return Ok((after, (items, height)));
        }
        let (after, (value, h)) = item(rest).map_err(|e| e.map(|err| err.or(expected_at(rest, close))))?;
        items.push(value);
        height = height.max(h);
        let (after, _) = space_nl(after)?;
        rest = match tag::<_, _, PError>(",").parse(after) {
            Ok((after, _)) => space_nl(after)?.0,
            Err(_) => {
                let (after, _) = sym(close)(after).map_err(|e| e.map(|err| err.or(expected_at(after, "`,`"))))?;
                return Ok((after, (items, height)));
            }
        };
    }
}

fn expected_at(i: Input<'_>, what: &'static str) -> PError {
    PError { offset: i.location_offset(), expected: vec![what] }
}

fn list(i: Input<'_>) -> PResult<'_, Tree> {
    let (rest, _) = sym("[")(i)?;
    let (rest, (items, height)) = cut(below(i, || separated(rest, "]", |i| where_expr(i, true))))?;
    Ok((rest, (Expr { kind: ExprKind::List(items), span: span(i, rest) }, height + 1)))
}

/// `( value )` makes no node of its own, but counts as a tree level all
/// the same: the limit reads "levels of operators and brackets".
fn parenthesised(i: Input<'_>) -> PResult<'_, Tree> {
    let (rest, _) = sym("(")(i)?;
    let (rest, _) = space_nl(rest)?;
    let (rest, (mut inner, height)) = cut(below(i, || expr(rest, true, &[])))?;
    let (rest, _) = space_nl(rest)?;
    let (rest, _) = cut(sym(")")(rest))?;
    inner.span = span(i, rest);
    Ok((rest, (inner, height + 1)))
}

/// An optional `{ name: value ... }` after a call: one option per line or
/// separated by commas. The options are arguments of the call, one tree
/// level below it; the height is the tallest option's (0 for none).
fn trailing_block(i: Input<'_>) -> PResult<'_, (Vec<Arg>, usize)> {
    let (after, _) = hspace(i)?;
    if !after.fragment().starts_with('{') {
        return Ok((i, (Vec::new(), 0)));
    }
    // Options of the command form nest blocks without passing `unary`.
    nested(after, |after| below(after, || block(after)))
}

fn block(i: Input<'_>) -> PResult<'_, (Vec<Arg>, usize)> {
    let (mut rest, _) = sym("{")(i)?;
    let mut options = Vec::new();
    let mut height = 0;
    loop {
        let (after, _) = space_nl(rest)?;
        if let Ok((after, _)) = tag::<_, _, PError>("}").parse(after) {
            return Ok((after, (options, height)));
        }
        let (after, name) = cut(expect("an option name or `}`", ident)(after))?;
        let (after, _) = hspace(after)?;
        let (after, _) = cut(sym(":")(after))?;
        let (after, _) = hspace(after)?;
        let (after, (value, h)) = cut(expr(after, false, &[]))?;
        options.push(Arg { name: Some(name), value });
        height = height.max(h);
        let (after, _) = hspace(after)?;
        rest = match tag::<_, _, PError>(",").parse(after) {
            Ok((after, _)) => after,
            Err(_) if after.fragment().starts_with(['\n', '}']) => after,
            Err(_) => return cut(fail(after, "a new line, `,` or `}`")),
        };
    }
}

// ---------------------------------------------------------------- statements

fn statement(i: Input<'_>) -> PResult<'_, Stmt> {
    let (rest, w) = word(i).unwrap_or((i, i));
    let kind = match *w.fragment() {
        "let" => binding(rest, |name, value| StmtKind::Let { name, value }),
        "param" => binding(rest, |name, value| StmtKind::Param { name, value }),
        "model" => model(rest),
        "show" => after_keyword(rest, |i| expr(i, false, &[])).map(|(r, (value, _))| (r, StmtKind::Show { value })),
        "save" => save(rest),
        _ => expect("a statement", |i| expr(i, false, &[]))(i).map(|(r, (e, _))| (r, StmtKind::Expr(e))),
    };
    let (rest, kind) = kind?;
    Ok((rest, Stmt { kind, span: span(i, rest) }))
}

fn after_keyword<'a, T>(i: Input<'a>, p: impl FnOnce(Input<'a>) -> PResult<'a, T>) -> PResult<'a, T> {
    let (rest, _) =
        take_while1(|c| c == ' ' || c == '\t').parse(i).or_else(|_: Err<PError>| cut(fail(i, "a space")))?;
    cut(p(rest))
}

fn binding(i: Input<'_>, make: fn(Ident, Expr) -> StmtKind) -> PResult<'_, StmtKind> {
    let (rest, name) = after_keyword(i, expect("a name", ident))?;
    let (rest, _) = hspace(rest)?;
    let (rest, _) = cut(sym("=")(rest))?;
    let (rest, _) = hspace(rest)?;
    let (rest, (value, _)) = cut(expr(rest, false, &[]))?;
    Ok((rest, make(name, value)))
}

fn model(i: Input<'_>) -> PResult<'_, StmtKind> {
    let (rest, name) = after_keyword(i, expect("a name", ident))?;
    let (rest, _) = hspace(rest)?;
    let (rest, _) = cut(sym("=")(rest))?;
    let (rest, _) = hspace(rest)?;
    let (rest, _) = cut(keyword("onnx")(rest))?;
    let (rest, (path, _)) = after_keyword(rest, |i| where_expr(i, false))?;
    let (rest, (options, _)) = trailing_block(rest)?;
    Ok((rest, StmtKind::Model { name, path, options }))
}

fn save(i: Input<'_>) -> PResult<'_, StmtKind> {
    let (rest, (value, _)) = after_keyword(i, |i| expr(i, false, &["to"]))?;
    let (rest, _) = hspace(rest)?;
    let (rest, _) = cut(keyword("to")(rest))?;
    let (rest, (path, _)) = after_keyword(rest, |i| where_expr(i, false))?;
    Ok((rest, StmtKind::Save { value, path }))
}

/// After a statement: a comment, then `;`, a newline or the end.
fn end_of_statement(i: Input<'_>) -> PResult<'_, ()> {
    let (rest, _) = hspace(i)?;
    match rest.fragment().chars().next() {
        None => Ok((rest, ())),
        Some('\n' | ';') => Ok((take_n(rest, 1)?.0, ())),
        Some(_) => cut(fail(rest, "the end of the statement")),
    }
}

// ---------------------------------------------------------------- script

/// Splits a script into `# %%` cells and parses each statement.
pub fn script(source: &str) -> Result<Script, PError> {
    // Both count from the top of each statement; a parse that panicked
    // half-way must not shift them for the next script on this thread.
    DEPTH.set(0);
    LEVEL.set(0);
    let mut i = Input::new(source);
    let mut cells = vec![Cell { title: None, span: 0..0, statements: Vec::new() }];
    loop {
        let (rest, _) =
            take_while::<_, _, PError>(|c: char| c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';')
                .parse(i)
                .map_err(to_perror)?;
        i = rest;
        if i.fragment().is_empty() {
            break;
        }
        if let Some(title) = cell_marker(i) {
            let (rest, _) = take_while::<_, _, PError>(|c| c != '\n').parse(i).map_err(to_perror)?;
            close_cell(cells.last_mut(), i.location_offset());
            cells.push(Cell { title, span: rest.location_offset()..rest.location_offset(), statements: Vec::new() });
            i = rest;
            continue;
        }
        if i.fragment().starts_with('#') {
            i = comment(i).map_err(to_perror)?.0;
            continue;
        }
        let (rest, stmt) = statement(i).map_err(to_perror)?;
        let (rest, _) = end_of_statement(rest).map_err(to_perror)?;
        cells.last_mut().expect("there is always a cell").statements.push(stmt);
        i = rest;
    }
    close_cell(cells.last_mut(), source.len());
    if cells[0].statements.is_empty() && cells.len() > 1 {
        cells.remove(0);
    }
    Ok(Script { cells })
}

fn close_cell(cell: Option<&mut Cell>, end: usize) {
    if let Some(cell) = cell {
        cell.span.end = end.max(cell.span.start);
    }
}

/// `# %%` at the start of a line, with an optional title after it.
fn cell_marker(i: Input<'_>) -> Option<Option<String>> {
    if i.get_utf8_column() != 1 {
        return None;
    }
    let line = i.fragment().lines().next().unwrap_or("");
    let title = line.strip_prefix("# %%")?.trim();
    Some((!title.is_empty()).then(|| title.to_string()))
}

fn to_perror(e: Err<PError>) -> PError {
    match e {
        Err::Error(e) | Err::Failure(e) => e,
        Err::Incomplete(_) => PError { offset: 0, expected: vec!["more input"] },
    }
}
