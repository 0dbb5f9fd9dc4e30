//! Which label each adversarial example aims for.

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::Label;

#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// A label drawn uniformly from those other than the true one.
    Random { seed: u64 },
    /// The same label for every example (examples of that label are skipped).
    Fixed(Label),
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
    /// changes which targets the examples get. An attack needs a model with
    /// two classes or more, a fixed target among them, and true labels
    /// among them.
    pub fn choose(&self, labels: &[Label], scores: &ndarray::Array2<f32>, first: usize) -> Result<Vec<Option<usize>>> {
        let ids: Vec<u64> = (first as u64..(first + labels.len()) as u64).collect();
        self.choose_for(labels, scores, &ids)
    }

    /// [`Target::choose`] for examples whose random targets come from the
    /// streams `ids`, one per example.
    pub fn choose_for(
        &self,
        labels: &[Label],
        scores: &ndarray::Array2<f32>,
        ids: &[u64],
    ) -> Result<Vec<Option<usize>>> {
        let classes = scores.ncols();
        if classes < 2 {
            bail!("an attack aims for another class than the true one, but the model has {classes} class(es)");
        }
        if let Target::Fixed(t) = self
            && *t as usize >= classes
        {
            bail!("target label {t} is not one of the model's {classes} classes (0 to {})", classes - 1);
        }
        if let Some((i, label)) = labels.iter().enumerate().find(|(_, l)| **l as usize >= classes) {
            bail!(
                "example {} has label {label}, which is not one of the model's {classes} classes (0 to {})",
                ids[i],
                classes - 1
            );
        }
        Ok(labels
            .iter()
            .enumerate()
            .map(|(i, &label)| {
                let label = label as usize;
                match self {
                    Target::Random { seed } => {
                        let mut rng = ChaCha8Rng::seed_from_u64(*seed);
                        rng.set_stream(ids[i]);
                        let draw = rng.random_range(0..classes - 1);
                        Some(if draw >= label { draw + 1 } else { draw })
                    }
                    Target::Fixed(t) => (*t as usize != label).then_some(*t as usize),
                    Target::Next => Some((label + 1) % classes),
                    Target::Untargeted => runner_up(scores.row(i).iter().copied(), label),
                }
            })
            .collect())
    }
}

fn runner_up(scores: impl Iterator<Item = f32>, label: usize) -> Option<usize> {
    scores.enumerate().filter(|(c, _)| *c != label).max_by(|a, b| a.1.total_cmp(&b.1)).map(|(c, _)| c)
}

impl FromStr for Target {
    type Err = anyhow::Error;

    /// `random`, `random:SEED`, `next`, `untargeted`, or a label (a class
    /// index; whether the model has it is checked when targets are chosen).
    fn from_str(s: &str) -> Result<Target> {
        Ok(match s {
            "random" => Target::Random { seed: 0 },
            "next" => Target::Next,
            "untargeted" => Target::Untargeted,
            other => match (other.strip_prefix("random:"), other.parse::<Label>()) {
                (Some(seed), _) => Target::Random { seed: seed.parse()? },
                (None, Ok(label)) => Target::Fixed(label),
                _ => bail!("unknown target `{s}`: use \"random\", \"next\", \"untargeted\" or a class index such as 3"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn scores(examples: usize, classes: usize) -> Array2<f32> {
        Array2::from_shape_fn((examples, classes), |(i, c)| (i * classes + c) as f32)
    }

    #[test]
    fn every_kind_of_target_is_another_class_of_the_model() {
        let labels = [0, 1, 2, 3, 4];
        for target in [Target::Random { seed: 3 }, Target::Next, Target::Untargeted, Target::Fixed(4)] {
            let chosen = target.choose(&labels, &scores(5, 5), 0).unwrap();
            for (label, t) in labels.iter().zip(chosen) {
                match t {
                    Some(t) => assert!(t < 5 && t != *label as usize, "{target}: {t} for label {label}"),
                    None => assert_eq!(target, Target::Fixed(*label), "only a fixed target skips its own label"),
                }
            }
        }
    }

    #[test]
    fn labels_and_targets_beyond_255_are_classes_like_any_other() {
        let labels = [1500, 999];
        let chosen = Target::Fixed(1500).choose(&labels, &scores(2, 2000), 0).unwrap();
        assert_eq!(chosen, [None, Some(1500)]);
        assert_eq!(Target::Next.choose(&labels, &scores(2, 2000), 0).unwrap(), [Some(1501), Some(1000)]);
        assert_eq!("999".parse::<Target>().unwrap(), Target::Fixed(999));
        assert!("-1".parse::<Target>().is_err() && "3.5".parse::<Target>().is_err());
    }

    /// `random_range(0..0)` panicked for random targets on a one-class model.
    #[test]
    fn a_model_with_one_class_is_an_error_not_a_panic() {
        for target in [Target::Random { seed: 0 }, Target::Next, Target::Untargeted, Target::Fixed(0)] {
            let err = target.choose(&[0, 0], &scores(2, 1), 0).unwrap_err().to_string();
            assert!(err.contains("1 class"), "{target}: {err}");
        }
        assert!(Target::Next.choose(&[0], &scores(1, 0), 0).is_err());
    }

    #[test]
    fn a_label_the_model_does_not_have_is_an_error() {
        let err = Target::Fixed(7).choose(&[0, 1], &scores(2, 5), 0).unwrap_err().to_string();
        assert!(err.contains("target label 7") && err.contains("5 classes (0 to 4)"), "{err}");
        let err = Target::Random { seed: 0 }.choose(&[0, 9], &scores(2, 5), 10).unwrap_err().to_string();
        assert!(err.contains("example 11 has label 9"), "{err}");
    }
}
