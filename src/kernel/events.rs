//! What a running cell sends the kernel before it ends: each output as its
//! statement finishes, and each frame of an operation's progress bar. The
//! cell runs on a blocking thread; these go through a channel to the task
//! that publishes them, so a table shows while the next statement runs and
//! a bar is one display updated in place.

use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressDrawTarget, TermLike};
use tokio::sync::mpsc::UnboundedSender;

use crate::progress::Bars;
use crate::session::{Output, OutputSink};

pub enum Event {
    Output(Box<Output>),
    /// A bar's frame as text; `bar` tells bars apart.
    Progress {
        bar: String,
        text: String,
    },
}

/// Sends each output to the channel.
pub fn sink(events: UnboundedSender<Event>) -> OutputSink {
    Arc::new(move |output: &Output| {
        let _ = events.send(Event::Output(Box::new(output.clone())));
    })
}

/// Bars that draw into the channel, at most four frames a second.
pub fn bars(events: UnboundedSender<Event>) -> Bars {
    Arc::new(move |total, label| {
        let frame =
            Frame { bar: uuid::Uuid::new_v4().to_string(), text: Mutex::new(String::new()), events: events.clone() };
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::term_like_with_hz(Box::new(frame), 4));
        bar.set_style(crate::progress::style());
        bar.set_message(label.to_string());
        bar
    })
}

/// A terminal of one bar whose frames, at each flush, become an event.
#[derive(Debug)]
struct Frame {
    bar: String,
    text: Mutex<String>,
    events: UnboundedSender<Event>,
}

impl Frame {
    fn text(&self) -> std::sync::MutexGuard<'_, String> {
        self.text.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl TermLike for Frame {
    fn width(&self) -> u16 {
        100
    }

    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn write_line(&self, line: &str) -> std::io::Result<()> {
        let mut text = self.text();
        text.push_str(line);
        text.push('\n');
        Ok(())
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.text().push_str(s);
        Ok(())
    }

    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }

    /// A frame ends here; an empty one (a bar cleared) leaves the last
    /// frame shown.
    fn flush(&self) -> std::io::Result<()> {
        let text = std::mem::take(&mut *self.text());
        if !text.trim().is_empty() {
            let _ = self.events.send(Event::Progress { bar: self.bar.clone(), text: text.trim_end().to_string() });
        }
        Ok(())
    }
}
