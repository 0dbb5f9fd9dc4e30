//! What the kernel tells front ends about the language: `kernel_info`'s
//! language_info, and whether a console's input is a whole cell yet.

use jupyter_protocol::{CodeMirrorMode, IsCompleteReply, KernelInfoReply, LanguageInfo, ReplyStatus};

/// The MIME type of `.advx` code, as the kernelspec and notebooks name it.
pub const MIMETYPE: &str = "text/x-advx";

pub fn kernel_info() -> KernelInfoReply {
    let version = env!("CARGO_PKG_VERSION").to_string();
    KernelInfoReply {
        status: ReplyStatus::Ok,
        protocol_version: "5.3".into(),
        implementation: "advx".into(),
        implementation_version: version.clone(),
        language_info: language_info(),
        banner: format!("advx {version}: experiments on the intriguing properties of neural networks"),
        help_links: Vec::new(),
        debugger: false,
        error: None,
    }
}

pub fn language_info() -> LanguageInfo {
    LanguageInfo {
        name: "advx".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        mimetype: Some(MIMETYPE.into()),
        file_extension: Some(".advx".into()),
        pygments_lexer: Some("advx".into()),
        // JupyterLab 4 highlights through CodeMirror 6 modes that only a
        // lab extension can add; Python's mode colours what advx shares
        // with it: comments, strings, numbers, `and`/`or`/`not`/`in`.
        codemirror_mode: Some(CodeMirrorMode::Simple("python".into())),
        nbconvert_exporter: Some("script".into()),
    }
}

/// Complete when every bracket and option block is closed and the code
/// parses; incomplete while one is open; invalid otherwise.
pub fn is_complete(code: &str) -> IsCompleteReply {
    match open_brackets(code) {
        Some(0) => match crate::lang::parse("cell", code) {
            Ok(_) => IsCompleteReply::complete(),
            Err(_) => IsCompleteReply::invalid(),
        },
        Some(depth) => IsCompleteReply::incomplete("    ".repeat(depth)),
        None => IsCompleteReply::invalid(),
    }
}

/// How many brackets (`(`, `[`, `{`) are still open at the end of the
/// code, outside strings and comments; None when one closes a bracket of
/// another kind or none at all.
fn open_brackets(code: &str) -> Option<usize> {
    let mut open = Vec::new();
    let mut chars = code.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => skip_string(&mut chars),
            '#' => skip_line(&mut chars),
            '(' | '[' | '{' => open.push(c),
            ')' | ']' | '}' => {
                let expected = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if open.pop() != Some(expected) {
                    return None;
                }
            }
            _ => {}
        }
    }
    Some(open.len())
}

fn skip_string(chars: &mut std::str::Chars) {
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' | '\n' => return,
            _ => {}
        }
    }
}

fn skip_line(chars: &mut std::str::Chars) {
    for c in chars.by_ref() {
        if c == '\n' {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jupyter_protocol::IsCompleteReplyStatus;

    fn status(code: &str) -> IsCompleteReplyStatus {
        is_complete(code).status
    }

    #[test]
    fn open_brackets_and_blocks_wait_for_more() {
        assert_eq!(status("show evaluate fc100 on mnist.test"), IsCompleteReplyStatus::Complete);
        assert_eq!(status("let a = lbfgs fc100 on mnist.test {"), IsCompleteReplyStatus::Incomplete);
        assert_eq!(status("let xs = [1,\n 2"), IsCompleteReplyStatus::Incomplete);
        assert_eq!(status("let s = \"(\" # [ in a comment"), IsCompleteReplyStatus::Complete);
        assert_eq!(status("let xs = [1, 2)"), IsCompleteReplyStatus::Invalid);
        assert_eq!(status("let = 3"), IsCompleteReplyStatus::Invalid);
        assert_eq!(is_complete("a = f(x, {").indent, "        ");
    }
}
