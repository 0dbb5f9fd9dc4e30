//! The syntax tree of an `.advx` script. Every node keeps its byte span in
//! the source so that errors found later (unknown names, runtime failures)
//! can point at the exact text.

use std::fmt;
use std::ops::Range;

/// Byte offsets into the script's source.
pub type Span = Range<usize>;

#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub cells: Vec<Cell>,
}

/// One `# %%` cell: the statements up to the next marker.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The text after `# %%` on the marker line, if any.
    pub title: Option<String>,
    /// The cell's code, marker line excluded.
    pub span: Span,
    pub statements: Vec<Stmt>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    /// `let NAME = EXPR`
    Let { name: Ident, value: Expr },
    /// `param NAME = EXPR`: a default the command line may override.
    Param { name: Ident, value: Expr },
    /// `model NAME = onnx PATH [{ options }]`
    Model { name: Ident, path: Expr, options: Vec<Arg> },
    /// `show EXPR`
    Show { value: Expr },
    /// `save EXPR to PATH`
    Save { value: Expr, path: Expr },
    /// A bare expression; shown when it is the last statement of a cell.
    Expr(Expr),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Number(f64),
    Str(String),
    Bool(bool),
    Name(String),
    List(Vec<Expr>),
    /// `START..END`, end excluded.
    Range {
        start: Box<Expr>,
        end: Box<Expr>,
    },
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `TARGET.FIELD`
    Field {
        target: Box<Expr>,
        field: Ident,
    },
    /// `TARGET[INDEX]`
    Index {
        target: Box<Expr>,
        index: Box<Expr>,
    },
    /// `op(args)`, `receiver.op(args)` and the command form `op X word Y name: Z`;
    /// a receiver or the command's operand is the first positional argument.
    Call {
        op: Ident,
        args: Vec<Arg>,
    },
    /// `DATA where PREDICATE`, the predicate seeing `label` and `index` of each example.
    Where {
        data: Box<Expr>,
        predicate: Box<Expr>,
    },
}

/// A call argument: positional when `name` is `None`. Connector words of
/// the command form (`on`, `to`, ...) become names: `evaluate m on t` is
/// `evaluate(m, on: t)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    And,
    Or,
}

impl fmt::Display for BinaryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let symbol = match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::In => "in",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
        };
        f.write_str(symbol)
    }
}

/// Words that cannot name a binding.
pub const KEYWORDS: &[&str] =
    &["let", "param", "model", "show", "save", "onnx", "true", "false", "where", "and", "or", "not", "in"];

pub fn is_keyword(word: &str) -> bool {
    KEYWORDS.contains(&word)
}
