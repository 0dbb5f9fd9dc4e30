//! The directions v of the activation space whose top images are compared:
//! the natural basis (one unit each) and random unit vectors.

use anyhow::{Result, bail};
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Which family a direction belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// `e_i`: the activation of one unit.
    Natural,
    /// A random unit vector: a mixture of all units.
    Random,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Natural => "natural",
            Family::Random => "random",
        }
    }
}

/// One direction: `e_index` for the natural family, the `index`-th draw
/// for the random one.
#[derive(Clone, Debug)]
pub struct Direction {
    pub family: Family,
    pub index: usize,
    /// Unit norm, as long as the layer has units.
    pub vector: Array1<f32>,
}

impl Direction {
    /// How figures and tables name it: `e_17`, `random 3`.
    pub fn label(&self) -> String {
        match self.family {
            Family::Natural => format!("e_{}", self.index),
            Family::Random => format!("random {}", self.index),
        }
    }
}

/// Which natural directions to take, before the layer's width is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Natural {
    /// The first `n` units.
    First(usize),
    /// These units, in this order.
    Units(Vec<usize>),
    /// The units `start..end`, end excluded (resolved without listing a
    /// range the layer cannot have).
    Range(usize, usize),
    /// Every unit of the layer.
    All,
}

impl Natural {
    /// The unit indices for a layer of `width` units; asking for units the
    /// layer lacks is an error rather than a silently shorter list.
    pub fn resolve(&self, width: usize) -> Result<Vec<usize>> {
        match self {
            Natural::All => Ok((0..width).collect()),
            Natural::First(n) if *n > width => {
                bail!(
                    "the layer has {width} units, so it has no {n} natural directions (use at most {width} or \"all\")"
                )
            }
            Natural::First(n) => Ok((0..*n).collect()),
            Natural::Range(start, end) if start >= end => bail!("the range {start}..{end} holds no units"),
            Natural::Range(_, end) if *end > width => {
                bail!("unit {} does not exist: the layer has {width} units (0 to {})", end - 1, width.saturating_sub(1))
            }
            Natural::Range(start, end) => Ok((*start..*end).collect()),
            Natural::Units(units) => match units.iter().find(|&&u| u >= width) {
                Some(bad) => {
                    bail!("unit {bad} does not exist: the layer has {width} units (0 to {})", width.saturating_sub(1))
                }
                None => Ok(units.clone()),
            },
        }
    }
}

/// The basis vectors `e_i` of a `width`-unit layer.
pub fn natural(units: &[usize], width: usize) -> Vec<Direction> {
    units
        .iter()
        .map(|&i| {
            let mut vector = Array1::zeros(width);
            vector[i] = 1.0;
            Direction { family: Family::Natural, index: i, vector }
        })
        .collect()
}

/// `count` directions drawn uniformly from the unit sphere: a standard
/// Gaussian vector normalised, whose direction is uniform by rotational
/// symmetry. The same seed gives the same directions.
pub fn random(count: usize, width: usize, seed: u64) -> Vec<Direction> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|index| {
            let draw: Vec<f64> = (0..width).map(|_| StandardNormal.sample(&mut rng)).collect();
            let norm = draw.iter().map(|v| v * v).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
            let vector = draw.iter().map(|v| (v / norm) as f32).collect();
            Direction { family: Family::Random, index, vector }
        })
        .collect()
}

/// The directions as rows of a matrix `[directions, width]`.
pub fn matrix(directions: &[Direction], width: usize) -> Array2<f32> {
    let mut rows = Array2::zeros((directions.len(), width));
    for (mut row, d) in rows.rows_mut().into_iter().zip(directions) {
        row.assign(&d.vector);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_directions_are_unit_vectors_fixed_by_the_seed() {
        let a = random(5, 100, 7);
        for d in &a {
            let norm: f32 = d.vector.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        }
        let b = random(5, 100, 7);
        assert!(a.iter().zip(&b).all(|(x, y)| x.vector == y.vector));
        assert_ne!(random(1, 100, 8)[0].vector, a[0].vector);
        assert_eq!(a[3].label(), "random 3");
    }

    #[test]
    fn natural_directions_resolve_against_the_width() {
        assert_eq!(Natural::First(3).resolve(10).unwrap(), vec![0, 1, 2]);
        assert_eq!(Natural::All.resolve(4).unwrap(), vec![0, 1, 2, 3]);
        assert!(Natural::First(11).resolve(10).unwrap_err().to_string().contains("10 units"));
        assert!(Natural::Units(vec![2, 10]).resolve(10).unwrap_err().to_string().contains("unit 10"));
        assert_eq!(Natural::Range(2, 5).resolve(10).unwrap(), vec![2, 3, 4]);
        let e = Natural::Range(0, 999_999_999).resolve(10).unwrap_err().to_string();
        assert!(e.contains("unit 999999998 does not exist: the layer has 10 units"), "{e}");
        assert!(Natural::Range(5, 5).resolve(10).unwrap_err().to_string().contains("holds no units"));
        let e = natural(&[2], 4);
        assert_eq!(e[0].vector.to_vec(), vec![0.0, 0.0, 1.0, 0.0]);
        assert_eq!(e[0].label(), "e_2");
    }
}
