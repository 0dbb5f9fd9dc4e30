//! A failing cell's message as tests read it: wrapped lines joined, and
//! compared however the terminal wrapped them.

use advx::session::Session;

/// The cell's error message, its wrapped lines joined.
pub fn error(s: &mut Session, code: &str) -> String {
    let rendered = s.execute(code).error.unwrap_or_else(|| panic!("`{code}` should fail")).render(false);
    rendered.lines().map(|l| l.trim_start_matches([' ', '│', '×'])).collect::<Vec<_>>().join(" ")
}

/// Whether `message` says `wanted`, however its lines were wrapped.
pub fn has(message: &str, wanted: &str) -> bool {
    let bare = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    bare(message).contains(&bare(wanted))
}
