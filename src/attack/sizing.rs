//! How many examples an attack batch holds when the script does not say
//! (`batch:`): the default, unless the batches every worker holds at once
//! would take more than half the memory the machine has free. An example
//! costs its solver's memory (L-BFGS-B's correction pairs and vectors, in
//! f64) and the network's tensors for it in the forward and backward runs,
//! estimated from the model's inferred shapes.

use crate::grad;
use crate::onnx::ModelProto;

/// Vectors of the image's size a solver keeps besides its correction
/// pairs (`lbfgsb::Solver`, `cauchy`, the search's best point).
const SOLVER_VECTORS: usize = 12;
/// Each float tensor of the forward graph counted three times: its value,
/// kept for the backward run, its gradient, and ONNX Runtime's workspace.
const TENSOR_COPIES: usize = 3;
/// The share of the free memory all batches in flight may take.
const SHARE: f64 = 0.5;

/// What one example of an attack costs, in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExampleCost {
    pub solver: usize,
    pub network: usize,
}

impl ExampleCost {
    /// For a model whose images have `pixels` values, attacked with
    /// `memory` correction pairs.
    pub fn of(model: &ModelProto, pixels: usize, memory: usize) -> ExampleCost {
        let solver = (2 * memory + SOLVER_VECTORS) * pixels * std::mem::size_of::<f64>();
        ExampleCost { solver, network: TENSOR_COPIES * 4 * activations_per_example(model) }
    }

    pub fn total(&self) -> usize {
        self.solver + self.network
    }

    /// The batch size: `wanted`, or fewer so that `workers` batches fit in
    /// [`SHARE`] of `free` bytes (at least 1).
    pub fn batch(&self, wanted: usize, workers: usize, free: usize) -> usize {
        let budget = (free as f64 * SHARE) as usize / workers.max(1);
        (budget / self.total().max(1)).clamp(1, wanted)
    }
}

/// Float values of one example in every tensor the model computes (a
/// tensor without a batch dimension counted whole), as far as shapes are
/// inferred.
fn activations_per_example(model: &ModelProto) -> usize {
    let (tensors, _) = grad::infer_tensors(model);
    let float = crate::onnx::proto::tensor_proto::DataType::Float as i32;
    let per_example = |shape: &[crate::onnx::shape::Dim]| crate::onnx::shape::per_example(shape).unwrap_or(0);
    tensors.iter().filter(|t| t.elem == float).map(|t| per_example(&t.shape)).sum()
}

/// The memory the machine has free, in bytes (`MemAvailable`), if known.
pub fn free_memory() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_shrink_to_fit_half_the_free_memory_shared_by_the_workers() {
        let cost = ExampleCost { solver: 30 << 20, network: 70 << 20 };
        assert_eq!(cost.batch(25, 2, 64 << 30), 25, "a small model keeps the default");
        assert_eq!(cost.batch(25, 2, 4 << 30), 10, "half of 4 GiB over 2 workers holds 10 examples of 100 MiB each");
        assert_eq!(cost.batch(25, 2, 10 << 20), 1, "never fewer than one");
    }

    #[test]
    fn an_examples_network_cost_counts_every_float_tensor_per_example() {
        let mnist = crate::onnx::load(concat!(env!("CARGO_MANIFEST_DIR"), "/models/mnist/fc100-100-10.onnx")).unwrap();
        let cost = ExampleCost::of(&mnist, 784, 10);
        assert_eq!(cost.solver, (2 * 10 + SOLVER_VECTORS) * 784 * 8);
        assert!(cost.network > 3 * 4 * (100 + 100 + 10) && cost.network < 3 * 4 * 10_000, "{cost:?}");
    }
}
