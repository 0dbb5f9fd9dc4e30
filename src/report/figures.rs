//! Figure files: which name each figure output is saved under, and saving
//! them. The names are decided once per write, before anything is
//! rendered, so `results.yaml`, the report and the files always agree.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{Run, safe_stem, write_file};
use crate::session::output::Output;

/// The file names (in the output directory) of one figure. After
/// [`Figures::write`], a file that could not be written is no longer named
/// (no report points at a file that is not there) and `error` says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FigureFiles {
    pub png: Option<String>,
    pub svg: Option<String>,
    pub error: Option<String>,
}

/// The figure files of a run, by cell position and output position.
#[derive(Debug)]
pub(crate) struct Figures {
    by_output: Vec<Vec<Option<FigureFiles>>>,
}

impl Figures {
    /// Names every figure output of the run. The session already makes
    /// stems unique, but they are sanitised here, and sanitising can make
    /// two equal, so clashes (ignoring case, for case-insensitive file
    /// systems) get a `-2`, `-3`… suffix rather than overwrite each other.
    pub fn plan(run: &Run) -> Figures {
        let mut taken = HashSet::new();
        let by_output = run
            .cells
            .iter()
            .map(|cell| cell.outputs.iter().map(|output| files_for(output, &mut taken)).collect())
            .collect();
        Figures { by_output }
    }

    /// The files of output `output` of the cell at position `cell` (both
    /// 0-based), when it is a figure.
    pub fn get(&self, cell: usize, output: usize) -> Option<&FigureFiles> {
        self.by_output.get(cell)?.get(output)?.as_ref()
    }

    /// Saves every figure's PNG and SVG into `dir`. Returns the paths
    /// written and a message for each file that failed; a failure is also
    /// kept on the figure's [`FigureFiles`], and the other files are still
    /// written.
    pub fn write(&mut self, run: &Run, dir: &Path) -> (Vec<PathBuf>, Vec<String>) {
        let (mut written, mut failed) = (Vec::new(), Vec::new());
        for (c, cell) in run.cells.iter().enumerate() {
            for (o, output) in cell.outputs.iter().enumerate() {
                let Some(Some(files)) = self.by_output.get_mut(c).and_then(|cell| cell.get_mut(o)) else { continue };
                let bundle = &output.bundle;
                let contents = [
                    (&mut files.png, bundle.png.as_deref()),
                    (&mut files.svg, bundle.svg.as_deref().map(str::as_bytes)),
                ];
                let mut errors = Vec::new();
                for (name, bytes) in contents {
                    let (Some(file), Some(bytes)) = (name.as_deref(), bytes) else { continue };
                    match write_file(dir, file, bytes) {
                        Ok(path) => written.push(path),
                        Err(e) => {
                            errors.push(format!("{e:#}"));
                            *name = None;
                        }
                    }
                }
                if !errors.is_empty() {
                    failed.extend(errors.iter().map(|e| format!("cell {}: {e}", cell.index)));
                    files.error = Some(errors.join("; "));
                }
            }
        }
        (written, failed)
    }
}

/// The files of one output: none unless it is a figure with an image.
fn files_for(output: &Output, taken: &mut HashSet<String>) -> Option<FigureFiles> {
    let stem = output.figure.as_deref()?;
    let bundle = &output.bundle;
    if bundle.png.is_none() && bundle.svg.is_none() {
        return None;
    }
    let stem = unique(safe_stem(stem, "figure"), taken);
    Some(FigureFiles {
        png: bundle.png.as_ref().map(|_| format!("{stem}.png")),
        svg: bundle.svg.as_ref().map(|_| format!("{stem}.svg")),
        error: None,
    })
}

/// `stem`, or `stem-2`, `stem-3`… if it (or a case variant) is taken.
fn unique(stem: String, taken: &mut HashSet<String>) -> String {
    let mut candidate = stem.clone();
    let mut n = 2;
    while !taken.insert(candidate.to_ascii_lowercase()) {
        candidate = format!("{stem}-{n}");
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clashing_stems_get_suffixes() {
        let mut taken = HashSet::new();
        assert_eq!(unique("a_b".into(), &mut taken), "a_b");
        assert_eq!(unique("A_b".into(), &mut taken), "A_b-2");
        assert_eq!(unique("a_b".into(), &mut taken), "a_b-3");
    }
}
