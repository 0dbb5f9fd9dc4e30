//! The decision boundary along a line: from an original x to a point the
//! model labels `target`, the least t in [0, 1] at which x + t · (p - x)
//! still reaches the target. Every answer of the attack ends here, so that
//! its distortion is that of a point on the boundary, not past it.
//!
//! The search is regula falsi (the Illinois variant) on the target's logit
//! margin z_target - max_{j ≠ target} z_j, which is linear along the line
//! wherever the network is (every ReLU network, piecewise): where bisection
//! halves the bracket each forward pass, this lands on the boundary in a
//! few. The bracket's upper end always reaches the target, so the answer
//! does whatever the steps do.

use anyhow::Result;
use ndarray::Array4;

use crate::classifier::{Classifier, argmax};

/// Forward passes of one search (each for every line at once).
pub const STEPS: usize = 10;

/// The straight line from an original to a point the model labels `target`.
pub struct Segment<'a> {
    pub from: &'a [f64],
    pub to: &'a [f64],
    pub target: usize,
}

impl Segment<'_> {
    pub fn at(&self, t: f64) -> Vec<f64> {
        self.from.iter().zip(self.to).map(|(o, b)| o + t * (b - o)).collect()
    }
}

/// What the model says at one point about one target.
#[derive(Clone, Copy)]
struct Reading {
    reached: bool,
    /// z_target - max_{j ≠ target} z_j, made > 0 where reached and ≤ 0
    /// elsewhere (a tie goes to argmax's pick).
    margin: f64,
}

/// One line's bracket [lo, hi]: lo does not reach the target, hi does.
struct Bracket {
    lo: (f64, f64),
    hi: (f64, f64),
    /// Which end the last step moved (Illinois halves the other's margin
    /// when the same end moves twice).
    moved_hi: Option<bool>,
}

impl Bracket {
    fn next(&self) -> f64 {
        let ((lo, m_lo), (hi, m_hi)) = (self.lo, self.hi);
        let t = (lo * m_hi - hi * m_lo) / (m_hi - m_lo);
        let width = hi - lo;
        // A step that would not shrink the bracket enough bisects instead.
        if t.is_finite() && t > lo + 1e-3 * width && t < hi - 1e-3 * width { t } else { lo + width / 2.0 }
    }

    fn update(&mut self, t: f64, reading: Reading) {
        if reading.reached {
            self.hi = (t, reading.margin);
            if self.moved_hi == Some(true) {
                self.lo.1 /= 2.0;
            }
            self.moved_hi = Some(true);
        } else {
            self.lo = (t, reading.margin);
            if self.moved_hi == Some(false) {
                self.hi.1 /= 2.0;
            }
            self.moved_hi = Some(false);
        }
    }
}

/// The boundary point of every segment; a segment whose `to` does not
/// reach its target is returned unchanged, one whose `from` already does
/// as `from`.
pub fn shrink(classifier: &mut Classifier, segments: &[Segment], shape: &[usize]) -> Result<Vec<Vec<f64>>> {
    if segments.is_empty() {
        return Ok(Vec::new());
    }
    let ends: Vec<Vec<f64>> = segments.iter().flat_map(|s| [s.from.to_vec(), s.to.to_vec()]).collect();
    let end_targets: Vec<usize> = segments.iter().flat_map(|s| [s.target, s.target]).collect();
    let readings = read(classifier, &ends, &end_targets, shape)?;
    let mut brackets: Vec<Option<Bracket>> = readings
        .chunks(2)
        .map(|r| {
            (!r[0].reached && r[1].reached).then_some(Bracket {
                lo: (0.0, r[0].margin),
                hi: (1.0, r[1].margin),
                moved_hi: None,
            })
        })
        .collect();
    let targets: Vec<usize> = segments.iter().map(|s| s.target).collect();
    for _ in 0..STEPS {
        crate::interrupt::check()?;
        let open: Vec<usize> = (0..segments.len()).filter(|&i| brackets[i].is_some()).collect();
        if open.is_empty() {
            break;
        }
        let ts: Vec<f64> = open.iter().map(|&i| brackets[i].as_ref().expect("open").next()).collect();
        let points: Vec<Vec<f64>> = open.iter().zip(&ts).map(|(&i, &t)| segments[i].at(t)).collect();
        let which: Vec<usize> = open.iter().map(|&i| targets[i]).collect();
        let readings = read(classifier, &points, &which, shape)?;
        for ((&i, &t), reading) in open.iter().zip(&ts).zip(readings) {
            brackets[i].as_mut().expect("open").update(t, reading);
        }
    }
    Ok(segments
        .iter()
        .zip(&brackets)
        .zip(readings.chunks(2))
        .map(|((s, b), ends)| match b {
            Some(b) => s.at(b.hi.0),
            None if ends[0].reached => s.from.to_vec(),
            None => s.to.to_vec(),
        })
        .collect())
}

/// The model's answer at each point, for its target.
fn read(classifier: &mut Classifier, points: &[Vec<f64>], targets: &[usize], shape: &[usize]) -> Result<Vec<Reading>> {
    let scores = scores(classifier, points, shape)?;
    Ok(scores
        .rows()
        .into_iter()
        .zip(targets)
        .map(|(row, &target)| {
            let reached = argmax(row.iter().copied()) == target;
            let rival = row.iter().enumerate().filter(|&(j, _)| j != target).map(|(_, &z)| z).fold(f32::MIN, f32::max);
            let margin = (row[target] - rival) as f64;
            let margin = if reached { margin.max(f64::MIN_POSITIVE) } else { margin.min(0.0) };
            Reading { reached, margin }
        })
        .collect())
}

/// The class each point is given.
pub fn predict(classifier: &mut Classifier, points: &[Vec<f64>], shape: &[usize]) -> Result<Vec<usize>> {
    let scores = scores(classifier, points, shape)?;
    Ok(scores.rows().into_iter().map(|r| argmax(r.iter().copied())).collect())
}

/// Every point's class scores.
pub fn scores(classifier: &mut Classifier, points: &[Vec<f64>], shape: &[usize]) -> Result<ndarray::Array2<f32>> {
    classifier.scores(batch(points, shape)?.view())
}

/// The points (f64 pixels, one image each) as one f32 batch of `shape`'s image size.
pub fn batch(points: &[Vec<f64>], shape: &[usize]) -> Result<Array4<f32>> {
    let flat: Vec<f32> = points.iter().flatten().map(|&v| v as f32).collect();
    Ok(Array4::from_shape_vec([points.len(), shape[1], shape[2], shape[3]], flat)?)
}
