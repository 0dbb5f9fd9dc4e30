//! advx's own Jupyter kernel: notebook cells are `.advx` code, run in one
//! [`Session`] per kernel process, so bindings live across cells.
//!
//! Jupyter starts `advx kernel --connection-file F` (the kernelspec that
//! [`spec`] installs). The sockets and the signing of messages come from
//! `jupyter-zmq-client` (ZeroMQ in pure Rust) and the messages' types from
//! `jupyter-protocol`; this module only answers requests:
//! - shell: execute ([`execute`]), complete ([`complete`]), inspect
//!   ([`inspect`]), is_complete ([`language`]), kernel_info, comm_info and
//!   history;
//! - control: interrupt, shutdown and kernel_info;
//! - heartbeat: echoed.
//!
//! A cell runs on a blocking thread while the sockets' tasks go on, so
//! the control socket answers during a long `lbfgs`: an interrupt request
//! stops the running operation through [`crate::interrupt`], as Ctrl-C
//! does in a batch run, and the session keeps everything the cell
//! finished. The kernelspec asks for interrupts as messages, so no signal
//! reaches the process.

pub mod complete;
mod events;
mod execute;
pub mod inspect;
pub mod language;
pub mod spec;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use jupyter_protocol::{
    CommInfoReply, ConnectionInfo, ExecuteReply, HistoryReply, InterruptReply, JupyterMessage, JupyterMessageContent,
    ReplyStatus, ShutdownReply, Status,
};
use jupyter_zmq_client as zmq;
use tokio::sync::Mutex as AsyncMutex;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::session::Session;
use events::Event;

/// How long, after a failed cell, a request may take to follow the one
/// before it and still count as queued behind the failure (ipykernel's
/// `stop_on_error_timeout`, which a front end's "Run All" relies on).
const QUEUED_WINDOW: Duration = Duration::from_millis(20);

/// Shell messages in a row that fail to read before the kernel gives up.
const MAX_READ_FAILURES: usize = 10;

/// Runs the kernel described by a Jupyter connection file until a
/// shutdown request, after the prelude script if one is given.
pub fn serve(connection_file: &Path, prelude: Option<&Path>) -> Result<()> {
    let text = std::fs::read_to_string(connection_file)
        .with_context(|| format!("cannot read the connection file {}", connection_file.display()))?;
    let info: ConnectionInfo = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a Jupyter connection file", connection_file.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let outcome = runtime.block_on(run(info, prelude));
    // A cell still running (a shutdown mid-cell) must not hold the exit.
    runtime.shutdown_background();
    outcome
}

/// What the shell and control tasks share.
pub struct Kernel {
    iopub: AsyncMutex<zmq::KernelIoPubConnection>,
    session: Arc<Mutex<Session>>,
    /// Whether a cell is running, so that an interrupt between cells
    /// stops nothing later.
    running: AtomicBool,
    /// Cells executed with `store_history`: Jupyter's execution count.
    executed: AtomicUsize,
    /// What the running cell sends before it ends.
    events: AsyncMutex<UnboundedReceiver<Event>>,
}

impl Kernel {
    /// Broadcasts an output or a status on IOPub as a child of `parent`.
    async fn publish(&self, content: impl Into<JupyterMessageContent>, parent: &JupyterMessage) -> Result<()> {
        let message = JupyterMessage::new(content.into(), Some(parent));
        self.iopub.lock().await.send(message).await.context("cannot publish on IOPub")
    }

    /// The execution count of this request: the next one when it counts.
    fn count(&self, counts: bool) -> usize {
        match counts {
            true => self.executed.fetch_add(1, Ordering::SeqCst) + 1,
            false => self.executed.load(Ordering::SeqCst),
        }
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        // A cell that panicked poisons the lock; its bindings are still whole.
        self.session.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn run(info: ConnectionInfo, prelude: Option<&Path>) -> Result<()> {
    let id = uuid::Uuid::new_v4().to_string();
    let (sender, events) = tokio::sync::mpsc::unbounded_channel();
    let mut session = Session::new()?;
    // A broken prelude costs its bindings, not the kernel: Jupyter shows
    // the kernel's stderr in its log.
    if let Some(Err(e)) = prelude.map(|p| session.run_prelude(p)) {
        eprintln!("advx kernel: the prelude failed, its names are not bound:\n{e}");
    }
    let session = session.with_output_sink(events::sink(sender.clone())).with_progress_bars(Some(events::bars(sender)));
    let kernel = Arc::new(Kernel {
        iopub: AsyncMutex::new(zmq::create_kernel_iopub_connection(&info, &id).await?),
        session: Arc::new(Mutex::new(session)),
        events: AsyncMutex::new(events),
        running: AtomicBool::new(false),
        executed: AtomicUsize::new(0),
    });
    let shell = zmq::create_kernel_shell_connection(&info, &id).await?;
    let control = zmq::create_kernel_control_connection(&info, &id).await?;
    let mut heartbeat = zmq::create_kernel_heartbeat_connection(&info).await?;
    tokio::spawn(async move { while heartbeat.single_heartbeat().await.is_ok() {} });
    let shell = tokio::spawn(serve_shell(shell, kernel.clone()));
    tokio::select! {
        outcome = serve_control(control, kernel) => outcome,
        ended = shell => ended.context("the shell socket's task panicked")?,
    }
}

/// Answers shell requests one at a time, each between a busy and an idle
/// status, as front ends expect.
async fn serve_shell(mut shell: zmq::KernelShellConnection, kernel: Arc<Kernel>) -> Result<()> {
    let mut failures = 0;
    // After a failed cell that asked to stop on error, the requests that
    // were already waiting: their cells are aborted ("Run All" stops at
    // the failure, as ipykernel does), anything else is answered.
    let mut waiting = VecDeque::new();
    loop {
        let (request, queued) = match waiting.pop_front() {
            Some(request) => (request, true),
            // A message that does not decode (a bad signature, an unknown
            // field) is skipped; a socket that keeps failing ends the kernel.
            None => match shell.read().await {
                Ok(request) => (request, false),
                Err(e) if failures < MAX_READ_FAILURES => {
                    failures += 1;
                    tracing::warn!("skipped a shell message: {e}");
                    continue;
                }
                Err(e) => return Err(e).context("cannot read the shell socket"),
            },
        };
        failures = 0;
        kernel.publish(Status::busy(), &request).await?;
        let reply = match &request.content {
            JupyterMessageContent::ExecuteRequest(_) if queued => {
                Some(ExecuteReply { status: ReplyStatus::Aborted, ..ExecuteReply::default() }.into())
            }
            JupyterMessageContent::ExecuteRequest(r) => {
                let reply = execute::run(&kernel, r, &request).await?;
                let failed = matches!(&reply, JupyterMessageContent::ExecuteReply(e) if e.status == ReplyStatus::Error);
                if failed && r.stop_on_error {
                    waiting.extend(already_waiting(&mut shell).await);
                }
                Some(reply)
            }
            JupyterMessageContent::KernelInfoRequest(_) => Some(language::kernel_info().into()),
            JupyterMessageContent::CompleteRequest(r) => Some(complete::reply(&kernel.session(), r).into()),
            JupyterMessageContent::InspectRequest(r) => Some(inspect::reply(&kernel.session(), r).into()),
            JupyterMessageContent::IsCompleteRequest(r) => Some(language::is_complete(&r.code).into()),
            JupyterMessageContent::CommInfoRequest(_) => Some(CommInfoReply::default().into()),
            JupyterMessageContent::HistoryRequest(_) => Some(HistoryReply::new(Vec::new()).into()),
            other => {
                tracing::debug!("no answer to a {} on the shell socket", other.message_type());
                None
            }
        };
        if let Some(reply) = reply {
            shell.send(JupyterMessage::new(reply, Some(&request))).await?;
        }
        kernel.publish(Status::idle(), &request).await?;
    }
}

/// The shell requests sent before the front end can know that a cell
/// failed: those already received, and those arriving within
/// [`QUEUED_WINDOW`] of each other (the failed cell's reply goes out
/// after this, so none of them answers it). A socket read is cancel-safe:
/// it polls a stream of framed messages.
async fn already_waiting(shell: &mut zmq::KernelShellConnection) -> Vec<JupyterMessage> {
    let mut waiting = Vec::new();
    while let Ok(read) = tokio::time::timeout(QUEUED_WINDOW, shell.read()).await {
        match read {
            Ok(request) => waiting.push(request),
            Err(e) => tracing::warn!("skipped a shell message: {e}"),
        }
    }
    waiting
}

/// Answers control requests until a shutdown request.
async fn serve_control(mut control: zmq::KernelControlConnection, kernel: Arc<Kernel>) -> Result<()> {
    loop {
        let request = control.read().await.context("cannot read the control socket")?;
        let reply: JupyterMessageContent = match &request.content {
            JupyterMessageContent::InterruptRequest(_) => {
                if kernel.running.load(Ordering::SeqCst) {
                    crate::interrupt::request(crate::interrupt::Signal::Interrupt);
                }
                InterruptReply::new().into()
            }
            JupyterMessageContent::ShutdownRequest(r) => {
                crate::interrupt::request(crate::interrupt::Signal::Terminate);
                let reply = ShutdownReply { restart: r.restart, ..ShutdownReply::default() };
                control.send(JupyterMessage::new(reply.clone(), Some(&request))).await?;
                kernel.publish(reply, &request).await?;
                return Ok(());
            }
            JupyterMessageContent::KernelInfoRequest(_) => language::kernel_info().into(),
            other => {
                tracing::debug!("no answer to a {} on the control socket", other.message_type());
                continue;
            }
        };
        control.send(JupyterMessage::new(reply, Some(&request))).await?;
    }
}
