//! Name resolution without running anything (`advx check`, and before
//! each cell runs): every name is bound earlier, every operation exists
//! and takes the arguments it is given.

// A NameError carries the script's source for its caret; it is made once,
// on failure, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;

use super::Source;
use super::ops;
use crate::lang::NameError;
use crate::lang::ast::{Arg, Expr, ExprKind, Ident, Script, StmtKind};

struct Checker<'a> {
    src: &'a Source<'a>,
    scope: BTreeSet<String>,
}

pub fn check(script: &Script, src: &Source, bound: Vec<String>) -> Result<(), NameError> {
    let mut scope: BTreeSet<String> = bound.into_iter().collect();
    scope.extend(crate::data::script_names().into_iter().map(String::from));
    let mut checker = Checker { src, scope };
    for stmt in script.cells.iter().flat_map(|c| &c.statements) {
        match &stmt.kind {
            StmtKind::Let { name, value } | StmtKind::Param { name, value } => {
                checker.expr(value)?;
                checker.scope.insert(name.name.clone());
            }
            StmtKind::Model { name, path, options } => {
                checker.expr(path)?;
                checker.args(options)?;
                checker.scope.insert(name.name.clone());
            }
            StmtKind::Show { value } | StmtKind::Expr(value) => checker.expr(value)?,
            StmtKind::Save { value, path } => {
                checker.expr(value)?;
                checker.expr(path)?;
            }
        }
    }
    Ok(())
}

impl Checker<'_> {
    fn expr(&mut self, expr: &Expr) -> Result<(), NameError> {
        match &expr.kind {
            ExprKind::Number(_) | ExprKind::Str(_) | ExprKind::Bool(_) => Ok(()),
            ExprKind::Name(name) => self.name(name, &expr.span),
            ExprKind::List(items) => items.iter().try_for_each(|e| self.expr(e)),
            ExprKind::Range { start: a, end: b } | ExprKind::Binary { left: a, right: b, .. } => {
                self.expr(a)?;
                self.expr(b)
            }
            ExprKind::Unary { operand, .. } => self.expr(operand),
            ExprKind::Field { target, .. } => self.expr(target),
            ExprKind::Index { target, index } => {
                self.expr(target)?;
                self.expr(index)
            }
            ExprKind::Call { op, args } => self.call(op, args),
            ExprKind::Where { data, predicate } => {
                self.expr(data)?;
                let added: Vec<&str> =
                    ["label", "index"].into_iter().filter(|n| self.scope.insert(n.to_string())).collect();
                let result = self.expr(predicate);
                for name in added {
                    self.scope.remove(name);
                }
                result
            }
        }
    }

    fn name(&self, name: &str, span: &crate::lang::Span) -> Result<(), NameError> {
        if self.scope.contains(name) {
            return Ok(());
        }
        let kind = if ops::find(name).is_some() { "value (it is an operation; call it)" } else { "name" };
        let known: Vec<String> = self.scope.iter().cloned().collect();
        Err(NameError::new(self.src.name, self.src.text, span, kind, name, &known))
    }

    fn call(&mut self, op: &Ident, args: &[Arg]) -> Result<(), NameError> {
        let Some(operation) = ops::find(&op.name) else {
            return Err(NameError::new(self.src.name, self.src.text, &op.span, "operation", &op.name, &ops::names()));
        };
        for arg in args {
            if let Some(name) = &arg.name
                && operation.param(&name.name).is_none()
            {
                let kind = "argument";
                return Err(NameError::new(
                    self.src.name,
                    self.src.text,
                    &name.span,
                    kind,
                    &name.name,
                    &operation.param_names(),
                ));
            }
        }
        self.args(args)
    }

    fn args(&mut self, args: &[Arg]) -> Result<(), NameError> {
        args.iter().try_for_each(|a| self.expr(&a.value))
    }
}
