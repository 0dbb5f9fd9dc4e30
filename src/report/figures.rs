//! Figure files: which name each figure output is saved under, and saving
//! them. The names are decided once per write, before anything is
//! rendered, so `results.yaml`, the report and the files always agree.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{Run, safe_stem, write_file};
use crate::session::output::Output;

/// The file names (in the output directory) of one figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FigureFiles {
    pub png: Option<String>,
    pub svg: Option<String>,
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

    /// Saves every figure's PNG and SVG into `dir`; returns their paths.
    pub fn write(&self, run: &Run, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (c, cell) in run.cells.iter().enumerate() {
            for (o, output) in cell.outputs.iter().enumerate() {
                let Some(files) = self.get(c, o) else { continue };
                if let (Some(name), Some(png)) = (&files.png, &output.bundle.png) {
                    written.push(write_file(dir, name, png)?);
                }
                if let (Some(name), Some(svg)) = (&files.svg, &output.bundle.svg) {
                    written.push(write_file(dir, name, svg.as_bytes())?);
                }
            }
        }
        Ok(written)
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
