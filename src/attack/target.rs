//! Which label each adversarial example aims for.

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// A label drawn uniformly from those other than the true one.
    Random { seed: u64 },
    /// The same label for every example (examples of that label are skipped).
    Fixed(u8),
    /// The true label plus one, modulo the classes.
    Next,
    /// The class the model ranks second: the nearest wrong class by score,
    /// a cheap stand-in for "any wrong class".
    Untargeted,
}

impl Target {
    /// The target of each example, from its true label and the model's
    /// scores; `first` is the index of `labels[0]` among all the examples
    /// attacked. A random target depends only on the seed and that index
    /// (each example draws from its own stream), so the batch size never
    /// changes which targets the examples get.
    pub fn choose(&self, labels: &[u8], scores: &ndarray::Array2<f32>, first: usize) -> Vec<Option<usize>> {
        let classes = scores.ncols();
        labels
            .iter()
            .enumerate()
            .map(|(i, &label)| {
                let label = label as usize;
                match self {
                    Target::Random { seed } => {
                        let mut rng = ChaCha8Rng::seed_from_u64(*seed);
                        rng.set_stream((first + i) as u64);
                        let draw = rng.random_range(0..classes - 1);
                        Some(if draw >= label { draw + 1 } else { draw })
                    }
                    Target::Fixed(t) => (*t as usize != label).then_some(*t as usize),
                    Target::Next => Some((label + 1) % classes),
                    Target::Untargeted => runner_up(scores.row(i).iter().copied(), label),
                }
            })
            .collect()
    }
}

fn runner_up(scores: impl Iterator<Item = f32>, label: usize) -> Option<usize> {
    scores.enumerate().filter(|(c, _)| *c != label).max_by(|a, b| a.1.total_cmp(&b.1)).map(|(c, _)| c)
}

impl FromStr for Target {
    type Err = anyhow::Error;

    /// `random`, `random:SEED`, `next`, `untargeted`, or a label `0`..`9`.
    fn from_str(s: &str) -> Result<Target> {
        Ok(match s {
            "random" => Target::Random { seed: 0 },
            "next" => Target::Next,
            "untargeted" => Target::Untargeted,
            other => match (other.strip_prefix("random:"), other.parse::<u8>()) {
                (Some(seed), _) => Target::Random { seed: seed.parse()? },
                (None, Ok(label)) if label < 10 => Target::Fixed(label),
                _ => bail!("unknown target `{s}`: use \"random\", \"next\", \"untargeted\" or a label 0-9"),
            },
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Random { seed } => write!(f, "random (seed {seed})"),
            Target::Fixed(t) => write!(f, "label {t}"),
            Target::Next => write!(f, "next label"),
            Target::Untargeted => write!(f, "untargeted (runner-up class)"),
        }
    }
}
