//! Reading a script for `advx run` and `advx check`: parse errors,
//! parameter overrides that name no `param` and overrides of the wrong
//! type are script errors (exit 2). A `-p` value that is not one literal is
//! a usage error (clap's, exit 2) before the script is even read.

use std::io::IsTerminal;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result, anyhow};

use crate::lang::ast::{Expr, StmtKind};
use crate::lang::{self, Script};
use crate::notebook;
use crate::session::{Source, Value, param};

/// `-p NAME=VALUE`, its value checked to be one literal.
#[derive(Clone, Debug)]
pub struct ParamArg {
    pub name: String,
    pub value: String,
    parsed: Value,
}

impl FromStr for ParamArg {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let (name, value) = s.split_once('=').ok_or_else(|| anyhow!("expected NAME=VALUE, got `{s}`"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(anyhow!("no parameter name before `=`"));
        }
        let parsed = param::literal(name, value)?;
        Ok(ParamArg { name: name.to_string(), value: value.trim().to_string(), parsed })
    }
}

pub struct Loaded {
    pub name: String,
    pub text: String,
    pub script: Script,
    /// The notebook the script came from, for `advx run X.ipynb`.
    pub notebook: Option<serde_json::Value>,
}

/// A script's text; a notebook's cells as a script with a marker on every
/// cell, so that its cells are the notebook's one to one.
pub(super) fn read_text(path: &Path) -> Result<(String, Option<serde_json::Value>)> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("ipynb")) {
        let json = notebook::read(path)?;
        let cells = notebook::cells_of_notebook(&json).with_context(|| format!("{}", path.display()))?;
        return Ok((notebook::script(&cells, true), Some(json)));
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok((text, None))
}

impl Loaded {
    /// The parsed script, or the exit code after printing why not.
    pub fn read(path: &Path, params: &[ParamArg]) -> Result<Result<Loaded, i32>> {
        let (text, notebook) = match read_text(path) {
            Ok(read) => read,
            Err(e) => {
                eprintln!("error: {e:#}");
                return Ok(Err(2));
            }
        };
        let name = path.display().to_string();
        let script = match lang::parse(&name, &text) {
            Ok(script) => script,
            Err(e) => {
                eprintln!("{}", lang::error::render(&e, std::io::stderr().is_terminal()));
                return Ok(Err(2));
            }
        };
        let loaded = Loaded { name, text, script, notebook };
        if let Err(message) = loaded.check_params(params) {
            eprintln!("error: {message}");
            return Ok(Err(2));
        }
        Ok(Ok(loaded))
    }

    pub fn source(&self) -> Source<'_> {
        Source { name: &self.name, text: &self.text }
    }

    pub fn param_names(&self) -> Vec<String> {
        self.params().map(|(name, _)| name.to_string()).collect()
    }

    /// Every `param` statement: its name and default.
    fn params(&self) -> impl Iterator<Item = (&str, &Expr)> {
        let stmts = self.script.cells.iter().flat_map(|c| &c.statements);
        stmts.filter_map(|s| match &s.kind {
            StmtKind::Param { name, value } => Some((name.name.as_str(), value)),
            _ => None,
        })
    }

    /// Each override names a `param`, and has the type of its default
    /// when that is written as a literal (a default computed from other
    /// values is checked when the `param` statement runs).
    fn check_params(&self, params: &[ParamArg]) -> Result<(), String> {
        let known = self.param_names();
        for p in params {
            if !known.contains(&p.name) {
                let help = lang::error::suggestion(&p.name, &known).map(|s| format!("; {s}")).unwrap_or_default();
                let list = if known.is_empty() { "none".to_string() } else { known.join(", ") };
                return Err(format!("-p {}: the script has no `param {}` (its params: {list}){help}", p.name, p.name));
            }
            let defaults =
                self.params().filter(|(name, _)| *name == p.name).filter_map(|(_, d)| param::default_value(d));
            for default in defaults {
                if std::mem::discriminant(&default) != std::mem::discriminant(&p.parsed) {
                    let words = match (&default, &p.parsed) {
                        (Value::Number(_), Value::Str(_)) => " (nan and inf are words: a number must be finite)",
                        _ => "",
                    };
                    return Err(format!(
                        "-p {}={}: `param {}` is {} (its default is {}), and `{}` is {}{words}",
                        p.name,
                        p.value,
                        p.name,
                        default.kind(),
                        default.summary(),
                        p.value,
                        p.parsed.kind()
                    ));
                }
            }
        }
        Ok(())
    }
}
