//! advx: adversarial examples, their transfer, unit analysis and Lipschitz
//! bounds, after Szegedy et al., "Intriguing properties of neural networks".
//!
//! See ARCHITECTURE.md for a map of the modules.

pub mod artefact;
pub mod attack;
pub mod bench;
pub mod classifier;
pub mod cli;
pub mod cluster;
pub mod data;
pub mod grad;
pub mod interrupt;
pub mod kernel;
pub mod lang;
pub mod notebook;
pub mod onnx;
pub mod parallel;
pub mod plot;
pub mod progress;
pub mod report;
pub mod runtime;
pub mod session;
pub mod shard;
pub mod simd;
pub mod spectral;
pub mod stats;
pub mod train;
pub mod units;

pub use runtime::{Device, Runtime};
pub use session::Session;
