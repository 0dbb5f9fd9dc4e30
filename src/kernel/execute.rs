//! The execute request: runs a cell in the kernel's session, sends what
//! it shows as `display_data` as each statement ends (every
//! representation the session made), its progress bars as displays
//! updated in place, and its error as an `error` output whose traceback
//! is the caret diagnostic.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Result;
use jupyter_protocol::{
    DisplayData, ErrorOutput, ExecuteInput, ExecuteReply, ExecuteRequest, ExecutionCount, JupyterMessage,
    JupyterMessageContent, Media, MediaType, ReplyError, ReplyStatus, Transient, UpdateDisplayData,
};
use serde_json::json;

use super::Kernel;
use super::events::Event;
use crate::lang::RuntimeError;
use crate::session::jupyter::{DATA_MIME, output_data, representations};
use crate::session::{CellError, CellResult, Output};

pub async fn run(
    kernel: &Arc<Kernel>,
    request: &ExecuteRequest,
    parent: &JupyterMessage,
) -> Result<JupyterMessageContent> {
    let count = ExecutionCount::new(kernel.count(request.store_history && !request.silent));
    if !request.silent {
        kernel.publish(ExecuteInput { code: request.code.clone(), execution_count: count }, parent).await?;
    }
    let result = run_cell(kernel, request, parent).await?;
    let Some(error) = result.error else {
        return Ok(ExecuteReply { status: ReplyStatus::Ok, execution_count: count, ..ExecuteReply::default() }.into());
    };
    let error = error_output(&error);
    kernel.publish(error.clone(), parent).await?;
    let error = ReplyError { ename: error.ename, evalue: error.evalue, traceback: error.traceback };
    Ok(ExecuteReply {
        status: ReplyStatus::Error,
        execution_count: count,
        error: Some(Box::new(error)),
        ..ExecuteReply::default()
    }
    .into())
}

/// Runs the code on a blocking thread, so that the control socket stays
/// live, and publishes its outputs and progress as they come; a panic
/// becomes the cell's error and the session lives on.
async fn run_cell(kernel: &Arc<Kernel>, request: &ExecuteRequest, parent: &JupyterMessage) -> Result<CellResult> {
    let mut events = kernel.events.lock().await;
    let mut publisher = Publisher { kernel, parent, silent: request.silent, bars: HashSet::new() };
    crate::interrupt::reset();
    kernel.running.store(true, Ordering::SeqCst);
    let session = kernel.session.clone();
    let source = request.code.clone();
    let mut cell = tokio::task::spawn_blocking(move || {
        let mut session = session.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        session.execute(&source)
    });
    let ran = loop {
        tokio::select! {
            ran = &mut cell => break ran,
            Some(event) = events.recv() => publisher.publish(event).await?,
        }
    };
    kernel.running.store(false, Ordering::SeqCst);
    while let Ok(event) = events.try_recv() {
        publisher.publish(event).await?;
    }
    Ok(ran.unwrap_or_else(|e| CellResult {
        outputs: Vec::new(),
        error: Some(panicked(request.code.clone(), &e.to_string())),
    }))
}

/// Publishes a running cell's events as children of its request.
struct Publisher<'a> {
    kernel: &'a Kernel,
    parent: &'a JupyterMessage,
    silent: bool,
    /// The bars shown so far: a bar's first frame is a display, the later
    /// ones update it.
    bars: HashSet<String>,
}

impl Publisher<'_> {
    async fn publish(&mut self, event: Event) -> Result<()> {
        if self.silent {
            return Ok(());
        }
        match event {
            Event::Output(output) => self.kernel.publish(display(&output), self.parent).await,
            Event::Progress { bar, text } => {
                let media = Media::new(vec![MediaType::Plain(text)]);
                // Marked, so that tools reading a saved notebook can tell
                // progress from results.
                let metadata = json!({ "advx": { "progress": true } }).as_object().cloned().unwrap_or_default();
                match self.bars.insert(bar.clone()) {
                    true => {
                        let transient = Some(Transient { display_id: Some(bar) });
                        let display = DisplayData { data: media, metadata, transient };
                        self.kernel.publish(display, self.parent).await
                    }
                    false => {
                        let update = UpdateDisplayData { metadata, ..UpdateDisplayData::new(media, &bar) };
                        self.kernel.publish(update, self.parent).await
                    }
                }
            }
        }
    }
}

/// A cell that panicked, as a runtime error over the whole cell.
fn panicked(code: String, panic: &str) -> CellError {
    let whole = (0, code.len()).into();
    CellError::Runtime(RuntimeError {
        src: miette::NamedSource::new("cell", code),
        at: whole,
        place: "the cell".into(),
        message: format!("advx panicked ({panic})"),
        help: Some("this is a bug in advx; the kernel's bindings are kept".into()),
    })
}

/// One output as `display_data`: its representations, and its title and
/// data under advx's own MIME type, which viewers skip and tools read.
pub fn display(output: &Output) -> DisplayData {
    let mut media: Vec<MediaType> = representations(&output.bundle)
        .into_iter()
        .map(|(mime, content)| match mime {
            "text/plain" => MediaType::Plain(content),
            "text/html" => MediaType::Html(content),
            "image/png" => MediaType::Png(content),
            "image/svg+xml" => MediaType::Svg(content),
            other => MediaType::Other((other.to_string(), json!(content))),
        })
        .collect();
    media.push(MediaType::Other((DATA_MIME.to_string(), json!({ "outputs": [output_data(output)] }))));
    DisplayData::new(Media::new(media))
}

/// The error output: the kind of error, its first line, and the whole
/// diagnostic (source line and caret, coloured as in a terminal).
pub fn error_output(error: &CellError) -> ErrorOutput {
    ErrorOutput {
        ename: error.kind().to_string(),
        evalue: error.message(),
        traceback: error.render(true).lines().map(str::to_string).collect(),
    }
}
