//! The engine that runs `.advx` code, shaped like a Jupyter kernel: a
//! `Session` keeps its bindings across cells, and `execute` returns a
//! cell's outputs as MIME bundles in the order the cell made them. Batch
//! runs (`advx run`), the report and notebooks all go through it.

mod check;
mod eval;
pub mod interrupt;
pub mod jupyter;
mod model;
pub mod ops;
pub mod output;
pub mod param;
pub mod perturbed;
mod save;
pub mod show;
pub mod table;
pub mod value;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, bail};

use crate::interrupt::Signal;
use crate::lang::ast::{Cell, Stmt, StmtKind};
use crate::lang::{self, NameError, RuntimeError, SyntaxError};
use crate::progress::Bars;
use crate::runtime::{Device, Preprocess, Runtime};
use crate::shard::Sharding;
use interrupt::{Stopped, When};
pub use output::{MimeBundle, Output, Outputs};
pub use value::{ImageSet, LoadedModel, Object, Shown, Value};

pub struct Session {
    bindings: BTreeMap<String, Value>,
    /// Values given on the command line (`-p n=100`), applied by `param`.
    overrides: BTreeMap<String, Value>,
    /// Every parameter's value as used, in order.
    params: Vec<(String, Value)>,
    models: Vec<Arc<LoadedModel>>,
    datasets: HashMap<String, Arc<ImageSet>>,
    /// Names bound while evaluating a `where` predicate (`label`, `index`).
    locals: Vec<(String, Value)>,
    base_dir: PathBuf,
    out_dir: Option<PathBuf>,
    device: Device,
    cells_run: usize,
    figure_stems: HashSet<String>,
    progress: Option<Bars>,
    /// Where each output goes as soon as its statement ends (the Jupyter
    /// kernel streams them); the cell's result has them all as well.
    sink: Option<OutputSink>,
    /// Whether this session is a shard of a run or the merge of one.
    sharding: Option<Arc<Sharding>>,
}

/// Receives a cell's outputs one statement at a time.
pub type OutputSink = Arc<dyn Fn(&Output) + Send + Sync>;

/// What an operation may ask of the session while it runs.
pub struct Context {
    /// The call as written in the script, to name what it makes.
    pub call: String,
    progress: Option<Bars>,
    /// What relative paths of data files resolve against (the script's folder).
    base_dir: PathBuf,
    sharding: Option<Arc<Sharding>>,
}

impl Context {
    /// A path written in the script, resolved as `model` paths are.
    pub fn path(&self, written: &str) -> PathBuf {
        self.base_dir.join(written)
    }

    /// A progress bar: on a terminal in a batch run, in place in a
    /// notebook, hidden elsewhere.
    pub fn bar(&self, total: usize, label: &str) -> indicatif::ProgressBar {
        match &self.progress {
            Some(bars) => bars(total as u64, label),
            None => indicatif::ProgressBar::hidden(),
        }
    }

    /// Fails once Ctrl-C or SIGTERM arrived; call it between long steps.
    pub fn check_interrupt(&self) -> Result<()> {
        crate::interrupt::check()
    }

    /// The examples of `data` an operation that works example by example
    /// has results for, and those results: computed by `compute` on all of
    /// them, or, in a sharded run, as [`Sharding::per_example`] says. `key`
    /// says what the operation was given beyond the images (its call,
    /// models' hashes), to match a merge's operations to the shards'.
    pub fn per_example<T: crate::shard::Rows>(
        &self,
        key: String,
        data: &Arc<ImageSet>,
        compute: impl FnOnce(&Arc<ImageSet>) -> Result<T>,
    ) -> Result<(Arc<ImageSet>, T)> {
        match &self.sharding {
            None => Ok((data.clone(), compute(data)?)),
            Some(sharding) => sharding.per_example(key, data, compute),
        }
    }

    /// The shard this run is, if it is one.
    pub fn shard(&self) -> Option<crate::shard::Shard> {
        match self.sharding.as_deref().map(Sharding::mode) {
            Some(crate::shard::Mode::Shard(shard)) => Some(*shard),
            _ => None,
        }
    }
}

/// The outputs of one cell and, when it failed, why. Outputs made before
/// the failure are kept.
pub struct CellResult {
    pub outputs: Vec<Output>,
    pub error: Option<CellError>,
}

pub enum CellError {
    Syntax(SyntaxError),
    Name(NameError),
    Runtime(RuntimeError),
    /// Ctrl-C or SIGTERM stopped the cell (see [`interrupt`]).
    Interrupted(Stopped),
}

impl CellError {
    /// The diagnostic with the source line and a caret.
    pub fn render(&self, colour: bool) -> String {
        lang::error::render(self.diagnostic(), colour)
    }

    fn diagnostic(&self) -> &dyn miette::Diagnostic {
        match self {
            CellError::Syntax(e) => e,
            CellError::Name(e) => e,
            CellError::Runtime(e) => e,
            CellError::Interrupted(e) => e,
        }
    }

    /// 2 for mistakes in the script found before running, 1 for failures,
    /// 130 or 143 (as a shell reports a process the signal ended) when a
    /// signal stopped the cell.
    pub fn exit_code(&self) -> i32 {
        match self {
            CellError::Syntax(_) | CellError::Name(_) => 2,
            CellError::Runtime(_) => 1,
            CellError::Interrupted(e) => e.signal.exit_code(),
        }
    }

    /// The kind of error, as Jupyter's `ename`.
    pub fn kind(&self) -> &'static str {
        match self {
            CellError::Syntax(_) => "SyntaxError",
            CellError::Name(_) => "NameError",
            CellError::Runtime(_) => "RuntimeError",
            CellError::Interrupted(_) => "Interrupted",
        }
    }

    /// The error in one line, without the source excerpt.
    pub fn message(&self) -> String {
        self.diagnostic().to_string()
    }

    /// The signal that stopped the cell, when one did.
    pub fn signal(&self) -> Option<Signal> {
        match self {
            CellError::Interrupted(e) => Some(e.signal),
            _ => None,
        }
    }
}

impl fmt::Display for CellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl fmt::Debug for CellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl std::error::Error for CellError {}

/// The text errors point into: a script file, or one notebook cell.
pub struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

impl Session {
    /// A session that resolves relative paths against the current folder
    /// and runs models on `auto` (CUDA when it works, else the CPU).
    pub fn new() -> Result<Session> {
        Ok(Session {
            bindings: BTreeMap::new(),
            overrides: BTreeMap::new(),
            params: Vec::new(),
            models: Vec::new(),
            datasets: HashMap::new(),
            locals: Vec::new(),
            base_dir: std::env::current_dir()?,
            out_dir: None,
            device: Device::Auto,
            cells_run: 0,
            figure_stems: HashSet::new(),
            progress: None,
            sink: None,
            sharding: None,
        })
    }

    /// Relative paths in `model` and `save` resolve against `dir` (a
    /// script's folder).
    pub fn with_base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = dir.into();
        self
    }

    /// `save` writes relative paths under `dir` (a batch run's `--out`).
    pub fn with_out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    pub fn with_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Progress bars on a terminal (batch runs).
    pub fn with_progress(self, on: bool) -> Self {
        let terminal: Bars = Arc::new(crate::progress::bar);
        self.with_progress_bars(on.then_some(terminal))
    }

    /// Operations draw their progress with `bars` (the Jupyter kernel's
    /// own), or nowhere.
    pub fn with_progress_bars(mut self, bars: Option<Bars>) -> Self {
        self.progress = bars;
        self
    }

    /// Runs as a shard of a run, or as the merge of one (`crate::shard`).
    pub fn with_sharding(mut self, sharding: Arc<Sharding>) -> Self {
        self.sharding = Some(sharding);
        self
    }

    /// Each output also goes to `sink` when its statement ends.
    pub fn with_output_sink(mut self, sink: OutputSink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Overrides `param NAME = ...` defaults. A value is one literal
    /// written as in a script (`100`, `"cuda"`, `[1, 2]`, `0..10`); a bare
    /// word is a string; anything else, code included, is an error (see
    /// [`param`]).
    pub fn set_param(&mut self, name: &str, written: &str) -> Result<()> {
        let value = param::literal(name, written)?;
        self.overrides.insert(name.to_string(), value);
        Ok(())
    }

    pub fn params(&self) -> &[(String, Value)] {
        &self.params
    }

    pub fn models(&self) -> &[Arc<LoadedModel>] {
        &self.models
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Overrides that no `param` statement used: likely typos.
    pub fn unused_overrides(&self) -> Vec<String> {
        self.overrides.keys().filter(|k| !self.params.iter().any(|(p, _)| p == *k)).cloned().collect()
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.bindings.get(name)
    }

    /// The names bound so far, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.bindings.keys().map(String::as_str)
    }

    /// What relative paths in the code resolve against.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// Runs one notebook cell: parses it, checks its names, runs it.
    pub fn execute(&mut self, source: &str) -> CellResult {
        // In Jupyter (evcxr) each cell links its own copy of advx and ort,
        // statics included: start ONNX Runtime in this copy before the cell
        // uses a model an earlier cell loaded. Loading a model reports a
        // failure here.
        let _ = crate::runtime::Runtime::get();
        let name = format!("cell {}", self.cells_run + 1);
        let script = match lang::parse(&name, source) {
            Ok(script) => script,
            Err(e) => return CellResult { outputs: Vec::new(), error: Some(CellError::Syntax(e)) },
        };
        let src = Source { name: &name, text: source };
        if let Err(e) = self.check(&script, &src) {
            return CellResult { outputs: Vec::new(), error: Some(CellError::Name(e)) };
        }
        let mut all = CellResult { outputs: Vec::new(), error: None };
        for cell in &script.cells {
            let result = self.run_cell(cell, &src);
            all.outputs.extend(result.outputs);
            if result.error.is_some() {
                all.error = result.error;
                break;
            }
        }
        // The interrupt ended this notebook cell; the kernel stays, and the
        // next cell runs afresh (a batch run goes through `run_cell`, and
        // stops).
        if all.error.as_ref().is_some_and(|e| e.signal().is_some()) {
            crate::interrupt::reset();
        }
        all
    }

    /// Like `execute`, as a `Result` for `?` in notebooks: the outputs, or
    /// the error (outputs made before it are lost from the return value
    /// but were produced). In Jupyter (evcxr) both render inline.
    #[allow(clippy::result_large_err)] // Errors carry their source, made once on failure.
    pub fn run(&mut self, source: &str) -> Result<Outputs, CellError> {
        let result = self.execute(source);
        match result.error {
            Some(e) => Err(e),
            None => Ok(Outputs(result.outputs)),
        }
    }

    /// Runs one parsed cell of a script whose whole text is `src`. A
    /// signal (Ctrl-C, SIGTERM) ends it after the statement that was
    /// running, with [`CellError::Interrupted`]; one pending before the
    /// cell starts runs none of it.
    pub fn run_cell(&mut self, cell: &Cell, src: &Source) -> CellResult {
        self.cells_run += 1;
        let at = InCell { cell, index: self.cells_run, src };
        let mut outputs = Vec::new();
        for (n, stmt) in cell.statements.iter().enumerate() {
            if let Some(signal) = crate::interrupt::requested() {
                let error = match n.checked_sub(1) {
                    Some(previous) => at.stopped(&cell.statements[previous], signal, When::After, None),
                    None => at.stopped(stmt, signal, When::Before, None),
                };
                return CellResult { outputs, error: Some(error) };
            }
            let last = n + 1 == cell.statements.len();
            let shown = outputs.len();
            let done = self.statement(stmt, last, src, at.index, &mut outputs);
            if let Some(sink) = &self.sink {
                outputs[shown..].iter().for_each(|output| sink(output));
            }
            if let Err(e) = done {
                return CellResult { outputs, error: Some(at.failed(stmt, e)) };
            }
        }
        let pending = crate::interrupt::requested().zip(cell.statements.last());
        let error = pending.map(|(signal, stmt)| at.stopped(stmt, signal, When::After, None));
        CellResult { outputs, error }
    }

    fn statement(
        &mut self,
        stmt: &Stmt,
        last: bool,
        src: &Source,
        cell: usize,
        outputs: &mut Vec<Output>,
    ) -> eval::EvalResult<()> {
        let text = src.text;
        match &stmt.kind {
            StmtKind::Let { name, value } => {
                let v = self.eval(value, text)?;
                self.bindings.insert(name.name.clone(), v);
            }
            StmtKind::Param { name, value } => {
                let default = self.eval(value, text)?;
                located(&value.span, self.param(&name.name, default))?;
            }
            StmtKind::Model { name, path, options } => {
                let path_value = self.eval(path, text)?;
                let mut asked = ModelOptions::default();
                for option in options {
                    let value = self.eval(&option.value, text)?;
                    located(&option.value.span, asked.set(option.name.as_ref().map(|n| n.name.as_str()), value))?;
                }
                let device = located(&stmt.span, self.model_device(&name.name, asked.device))?;
                located(&stmt.span, self.model(&name.name, path_value, device, asked.preprocess))?;
            }
            StmtKind::Show { value } => {
                let v = self.eval(value, text)?;
                located(&value.span, self.show(&v, &text[value.span.clone()], cell, outputs))?;
            }
            StmtKind::Save { value, path } => {
                let v = self.eval(value, text)?;
                let p = self.eval(path, text)?;
                located(&stmt.span, self.save(&v, p, outputs))?;
            }
            StmtKind::Expr(e) => {
                let v = self.eval(e, text)?;
                if last {
                    located(&e.span, self.show(&v, &text[e.span.clone()], cell, outputs))?;
                }
            }
        }
        Ok(())
    }

    fn param(&mut self, name: &str, default: Value) -> Result<()> {
        let value = match self.overrides.get(name) {
            Some(given) if std::mem::discriminant(given) != std::mem::discriminant(&default) => {
                bail!("parameter `{name}` is {} by default, but the command line gave {}", default.kind(), given.kind())
            }
            Some(given) => given.clone(),
            None => default,
        };
        self.params.retain(|(n, _)| n != name);
        self.params.push((name.to_string(), value.clone()));
        self.bindings.insert(name.to_string(), value);
        Ok(())
    }

    /// The device model `name` runs on: the one its `device` option asks
    /// for and the session's (`--device`) must agree, except that the
    /// script's choice wins over `auto`; with neither, `auto` is what
    /// ONNX Runtime found in this process ([`Runtime::auto_device`]).
    fn model_device(&self, name: &str, asked: Option<Device>) -> Result<Device> {
        match (asked.filter(|&d| d != Device::Auto), self.device) {
            (None, Device::Auto) => Ok(Runtime::get()?.auto_device().device),
            (None, given) => Ok(given),
            (Some(asked), Device::Auto) => Ok(asked),
            (Some(asked), given) if asked == given => Ok(asked),
            (Some(asked), given) => bail!(
                "`model {name}` asks for device {asked} (its `device` option), but this run's device is {given} \
                 (--device {given}): they must agree; drop one of them, or run with --device auto, with which \
                 the script's choice wins"
            ),
        }
    }

    fn model(&mut self, name: &str, path: Value, device: Device, preprocess: Preprocess) -> Result<()> {
        let Value::Str(path) = path else { bail!("`onnx` needs a path string, not {}", path.kind()) };
        let full = self.base_dir.join(&path);
        let loaded = Arc::new(LoadedModel::load(name, &full, device, preprocess)?);
        self.models.retain(|m| m.name != name);
        self.models.push(loaded.clone());
        self.bindings.insert(name.to_string(), Value::Model(loaded));
        Ok(())
    }

    fn show(&mut self, value: &Value, title: &str, cell: usize, outputs: &mut Vec<Output>) -> Result<()> {
        for shown in show::show(value)? {
            let figure = shown.figure.map(|suffix| self.figure_stem(cell, &suffix));
            outputs.push(Output { title: title.to_string(), figure, bundle: shown.bundle });
        }
        Ok(())
    }

    /// `cell2-grid`, `cell2-grid-2`, ...: unique within the session.
    fn figure_stem(&mut self, cell: usize, suffix: &str) -> String {
        let base = format!("cell{cell}-{suffix}");
        let mut stem = base.clone();
        let mut n = 1;
        while !self.figure_stems.insert(stem.clone()) {
            n += 1;
            stem = format!("{base}-{n}");
        }
        stem
    }

    fn save(&mut self, value: &Value, path: Value, outputs: &mut Vec<Output>) -> Result<()> {
        let Value::Str(path) = path else { bail!("`save ... to` needs a path string, not {}", path.kind()) };
        let full = self.out_dir.as_deref().unwrap_or(&self.base_dir).join(&path);
        if let Some(out) = &self.out_dir
            && let Some(what) = written_by_run(out, &full)
        {
            bail!(
                "cannot save to \"{path}\": advx run writes {what} under that name in {}, and one would overwrite \
                 the other; choose another name",
                out.display()
            );
        }
        save::save(value, &full)?;
        outputs.push(Output {
            title: format!("save to {path}"),
            figure: None,
            bundle: MimeBundle::text(format!("saved {}", full.display())),
        });
        Ok(())
    }

    fn known_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.bindings.keys().cloned().collect();
        names.extend(crate::data::script_names().into_iter().map(String::from));
        names.extend(self.locals.iter().map(|(n, _)| n.clone()));
        names
    }

    /// Resolves the names of a script without running it (`advx check`).
    #[allow(clippy::result_large_err)] // Errors carry their source, made once on failure.
    pub fn check(&self, script: &lang::Script, src: &Source) -> Result<(), NameError> {
        check::check(script, src, self.bindings.keys().cloned().collect())
    }

    /// Runs a script's cells before any of the user's (the Jupyter kernel's
    /// `--prelude`): its relative paths resolve against its own folder, it
    /// counts no cell, and what it shows is dropped. The error is the
    /// diagnostic of the first cell that failed.
    pub fn run_prelude(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let name = path.display().to_string();
        let script = lang::parse(&name, &text).map_err(|e| anyhow::anyhow!("{}", lang::error::render(&e, false)))?;
        let src = Source { name: &name, text: &text };
        self.check(&script, &src).map_err(|e| anyhow::anyhow!("{}", lang::error::render(&e, false)))?;
        let outer = (std::mem::replace(&mut self.base_dir, script_dir(path)), self.cells_run);
        let failed = script.cells.iter().find_map(|cell| self.run_cell(cell, &src).error);
        (self.base_dir, self.cells_run) = outer;
        match failed {
            Some(e) => bail!("{}", e.render(false)),
            None => Ok(()),
        }
    }
}

/// The cell a statement belongs to, to say where it failed or stopped.
struct InCell<'a> {
    cell: &'a Cell,
    index: usize,
    src: &'a Source<'a>,
}

impl InCell<'_> {
    /// The error a failed statement ends the cell with: an interrupt when
    /// the operation stopped for a signal (or failed while one was
    /// pending), else a runtime error.
    fn failed(&self, stmt: &Stmt, e: eval::EvalError) -> CellError {
        if let Some(signal) = crate::interrupt::signal_of(&e.error) {
            return self.stopped(stmt, signal, When::During, None);
        }
        if let Some(signal) = crate::interrupt::requested() {
            return self.stopped(stmt, signal, When::During, Some(format!("{:#}", e.error)));
        }
        CellError::Runtime(RuntimeError {
            src: self.named_source(),
            at: (e.span.start, e.span.len()).into(),
            place: place(self.cell, self.index, stmt, self.src),
            message: format!("{:#}", e.error),
            help: None,
        })
    }

    fn stopped(&self, stmt: &Stmt, signal: Signal, when: When, failure: Option<String>) -> CellError {
        let at = (stmt.span.start, stmt.span.len()).into();
        let place = place(self.cell, self.index, stmt, self.src);
        CellError::Interrupted(Stopped::new(self.named_source(), at, place, signal, when, failure))
    }

    fn named_source(&self) -> miette::NamedSource<String> {
        miette::NamedSource::new(self.src.name, self.src.text.to_string())
    }
}

/// `cell 3 ("attack"), line 12`: where a runtime error happened.
fn place(cell: &Cell, index: usize, stmt: &Stmt, src: &Source) -> String {
    let (line, _) = lang::error::line_col(src.text, stmt.span.start);
    let title = cell.title.as_ref().map(|t| format!(" (\"{t}\")")).unwrap_or_default();
    format!("cell {index}{title}, line {line}")
}

fn located<T>(span: &lang::Span, result: Result<T>) -> eval::EvalResult<T> {
    result.map_err(|error| eval::EvalError { span: span.clone(), error })
}

/// The options of a `model` statement.
#[derive(Default)]
struct ModelOptions {
    device: Option<Device>,
    preprocess: Preprocess,
}

impl ModelOptions {
    fn set(&mut self, name: Option<&str>, value: Value) -> Result<()> {
        match (name, value) {
            (Some("device"), Value::Str(d)) => self.device = Some(d.parse()?),
            (Some("device"), other) => {
                bail!("`device` must be a string such as \"cpu\" or \"cuda\", not {}", other.kind())
            }
            (Some("scale"), Value::Number(n)) => self.preprocess.scale = Some(n as f32),
            (Some("scale"), other) => bail!("`scale` must be a number such as 255, not {}", other.kind()),
            (Some(name @ ("mean" | "std")), value) => {
                let values = per_channel(name, value)?;
                match name {
                    "mean" => self.preprocess.mean = values,
                    _ => self.preprocess.std = values,
                }
            }
            (Some(other), _) => bail!("`model` has no option `{other}` (options: device, scale, mean, std)"),
            (None, _) => bail!("model options are named: {{ device: \"cpu\", mean: [0.5], std: [0.5] }}"),
        }
        Ok(())
    }
}

/// A number, or a list of numbers, one per channel.
fn per_channel(name: &str, value: Value) -> Result<Vec<f32>> {
    let number = |v: &Value| match v {
        Value::Number(n) => Ok(*n as f32),
        other => bail!("`{name}` must be a number or a list of numbers, one per channel, not {}", other.kind()),
    };
    match &value {
        Value::List(items) if items.is_empty() => bail!("`{name}` must hold one value, or one per channel"),
        Value::List(items) => items.iter().map(number).collect(),
        single => Ok(vec![number(single)?]),
    }
}

/// What `advx run` writes at `path` when that is one of its own files in
/// its output folder `out` (compared after resolving `.` and `..`).
fn written_by_run(out: &Path, path: &Path) -> Option<&'static str> {
    let absolute = |p: &Path| std::path::absolute(p).ok().map(|p| lexical(&p));
    let (out, path) = (absolute(out)?, absolute(path)?);
    if path.parent()? != out {
        return None;
    }
    crate::report::written_by_run(path.file_name()?.to_str()?)
}

/// `path` with `.` and `..` resolved as written (symbolic links are not
/// followed: the run's folder is compared as it was given).
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Paths of the files a session should find relative to a script.
pub fn script_dir(script: &Path) -> PathBuf {
    script.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
