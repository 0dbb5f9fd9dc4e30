//! Optimisers that update weights in place from gradients, with the
//! recipe's per-layer weight decay and a cosine learning-rate schedule.

use ndarray::{ArrayD, Zip};

use super::recipe::Optimizer;

/// The optimiser state of one weight tensor.
enum State {
    Sgd { velocity: ArrayD<f32> },
    Adam { m: ArrayD<f32>, v: ArrayD<f32> },
}

/// Updates a set of weight tensors step by step.
pub struct Stepper {
    config: Optimizer,
    states: Vec<State>,
    step: usize,
    total_steps: usize,
}

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPSILON: f32 = 1e-8;

impl Stepper {
    /// A stepper for weights of the given shapes, over `total_steps` steps.
    pub fn new(config: &Optimizer, shapes: &[&[usize]], total_steps: usize) -> Stepper {
        let states = shapes
            .iter()
            .map(|s| {
                let zeros = || ArrayD::zeros(ndarray::IxDyn(s));
                if config.kind == "adam" {
                    State::Adam { m: zeros(), v: zeros() }
                } else {
                    State::Sgd { velocity: zeros() }
                }
            })
            .collect();
        Stepper { config: config.clone(), states, step: 0, total_steps: total_steps.max(1) }
    }

    /// The learning rate at the current step: cosine from the recipe's rate
    /// down to `final_lr_fraction` of it.
    pub fn learning_rate(&self) -> f32 {
        let progress = self.step as f32 / self.total_steps as f32;
        let floor = self.config.final_lr_fraction;
        let cosine = 0.5 * (1.0 + (std::f32::consts::PI * progress.min(1.0)).cos());
        self.config.learning_rate * (floor + (1.0 - floor) * cosine)
    }

    /// Moves to the next step; call once per minibatch before [`update`](Self::update).
    pub fn begin_step(&mut self) {
        self.step += 1;
    }

    /// Updates weight `index` from its loss gradient, adding `decay * w`.
    pub fn update(&mut self, index: usize, weights: &mut ArrayD<f32>, grad: &ArrayD<f32>, decay: f32) {
        let lr = self.learning_rate();
        let t = self.step.max(1) as i32;
        match &mut self.states[index] {
            State::Sgd { velocity } => {
                let momentum = self.config.momentum;
                Zip::from(weights).and(velocity).and(grad).for_each(|w, v, &g| {
                    *v = momentum * *v - lr * (g + decay * *w);
                    *w += *v;
                });
            }
            State::Adam { m, v } => {
                let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
                Zip::from(weights).and(m).and(v).and(grad).for_each(|w, m, v, &g| {
                    let g = g + decay * *w;
                    *m = BETA1 * *m + (1.0 - BETA1) * g;
                    *v = BETA2 * *v + (1.0 - BETA2) * g * g;
                    *w -= lr * (*m / c1) / ((*v / c2).sqrt() + EPSILON);
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: &str) -> Optimizer {
        Optimizer {
            kind: kind.into(),
            learning_rate: 0.1,
            momentum: 0.5,
            batch_size: 1,
            epochs: 1,
            final_lr_fraction: 1.0,
        }
    }

    /// Minimises (w - 3)^2 from 0: both optimisers must get close to 3.
    #[test]
    fn both_optimisers_minimise_a_quadratic() {
        for kind in ["sgd", "adam"] {
            let mut w = ArrayD::from_elem(ndarray::IxDyn(&[1]), 0.0f32);
            let mut s = Stepper::new(&config(kind), &[&[1]], 500);
            for _ in 0..500 {
                s.begin_step();
                let g = w.mapv(|x| 2.0 * (x - 3.0));
                s.update(0, &mut w, &g, 0.0);
            }
            assert!((w[0] - 3.0).abs() < 0.05, "{kind} ended at {}", w[0]);
        }
    }

    /// With decay λ the minimum of (w-3)^2 + λ/2 w^2 is 6 / (2 + λ).
    #[test]
    fn weight_decay_shrinks_the_optimum() {
        let mut w = ArrayD::from_elem(ndarray::IxDyn(&[1]), 0.0f32);
        let mut s = Stepper::new(&config("sgd"), &[&[1]], 2000);
        for _ in 0..2000 {
            s.begin_step();
            let g = w.mapv(|x| 2.0 * (x - 3.0));
            s.update(0, &mut w, &g, 1.0);
        }
        assert!((w[0] - 2.0).abs() < 1e-3, "ended at {}", w[0]);
    }

    #[test]
    fn cosine_schedule_ends_at_the_floor() {
        let mut c = config("sgd");
        c.final_lr_fraction = 0.1;
        let mut s = Stepper::new(&c, &[], 10);
        assert!((s.learning_rate() - 0.1).abs() < 1e-6);
        for _ in 0..10 {
            s.begin_step();
        }
        assert!((s.learning_rate() - 0.01).abs() < 1e-6);
    }
}
