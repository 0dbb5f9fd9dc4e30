//! Tables as a terminal and a notebook show them.

use super::output::MimeBundle;

pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Columns padded to their widest cell; numbers right-aligned.
    pub fn text(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|c| self.all_rows().map(|r| r.get(c).map_or(0, |s| s.chars().count())).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for (i, row) in self.all_rows().enumerate() {
            let cells: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(c, &w)| {
                    let cell = row.get(c).map_or("", String::as_str);
                    if c > 0 && looks_numeric(cell) { format!("{cell:>w$}") } else { format!("{cell:<w$}") }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
            if i == 0 {
                out.push_str(&widths.iter().map(|&w| "─".repeat(w)).collect::<Vec<_>>().join("  "));
                out.push('\n');
            }
        }
        out
    }

    pub fn html(&self) -> String {
        let head: String = self.header.iter().map(|h| format!("<th>{}</th>", escape(h))).collect();
        let body: String = self
            .rows
            .iter()
            .map(|r| {
                let cells: String = r
                    .iter()
                    .map(|c| {
                        let style = if looks_numeric(c) { " style=\"text-align:right\"" } else { "" };
                        format!("<td{style}>{}</td>", escape(c))
                    })
                    .collect();
                format!("<tr>{cells}</tr>")
            })
            .collect();
        format!("<table class=\"advx\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    }

    pub fn bundle(&self, json: serde_json::Value) -> MimeBundle {
        MimeBundle { text: self.text(), html: Some(self.html()), json: Some(json), ..Default::default() }
    }

    /// Header and rows, for CSV files.
    pub fn csv(&self) -> Vec<Vec<String>> {
        self.all_rows().cloned().collect()
    }

    fn all_rows(&self) -> impl Iterator<Item = &Vec<String>> {
        std::iter::once(&self.header).chain(self.rows.iter())
    }
}

fn looks_numeric(cell: &str) -> bool {
    let trimmed = cell.trim_end_matches('%');
    !trimmed.is_empty() && trimmed.parse::<f64>().is_ok()
}

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
