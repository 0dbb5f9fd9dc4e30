//! A model loaded into an ONNX Runtime session.

use std::borrow::Cow;

use anyhow::{Context, Result, anyhow, bail};
use ndarray::{Array4, ArrayD, ArrayView4, ArrayViewD, Axis, Ix4};
use ort::session::{Session, SessionInputValue, builder::GraphOptimizationLevel};
use ort::value::TensorRef;

use super::{Device, Runtime};

/// An input tensor for [`Model::run`].
pub enum Feed<'a> {
    F32(ArrayViewD<'a, f32>),
    I64(ArrayViewD<'a, i64>),
}

/// A session plus what messages need to say about it.
pub struct Model {
    session: Session,
    name: String,
    device: Device,
    /// The batch size a fixed-batch export takes: [`run`](Model::run)
    /// feeds it batches of exactly that many, padding the last.
    fixed_batch: Option<usize>,
}

/// The float outputs of one run, by name, in the graph's output order.
pub struct Outputs(Vec<(String, ArrayD<f32>)>);

impl Model {
    pub(super) fn create(rt: &Runtime, bytes: &[u8], name: &str, device: Device, threads: usize) -> Result<Model> {
        // `auto` is decided once per process, so every model of a run is on
        // the device the run reports.
        let device = match device {
            Device::Auto => rt.auto_device().device,
            chosen => chosen,
        };
        let cuda = match device {
            Device::Cuda(n) => Some(n),
            _ => None,
        };
        let session = Self::session(rt, bytes, cuda, threads).with_context(|| format!("cannot load model {name}"))?;
        let fixed_batch = fixed_batch(&session);
        Ok(Model { session, name: name.to_string(), device, fixed_batch })
    }

    fn session(rt: &Runtime, bytes: &[u8], cuda: Option<i32>, threads: usize) -> Result<Session> {
        let builder = Session::builder(rt.environment())
            .map_err(|e| anyhow!("{e}"))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| anyhow!("{e}"))?
            .with_intra_threads(threads)
            .map_err(|e| anyhow!("{e}"))?
            // Idle intra-op threads sleep instead of spinning: between runs
            // the attacks' own threads (L-BFGS-B, `lbfgsb::tell_all`) need the cores.
            .with_intra_op_spinning(false)
            .map_err(|e| anyhow!("{e}"))?
            // Subnormal numbers (in trained weights, and from saturated
            // activations) read and write as zero: on x86 each operation on
            // one is a slow microcode assist, and they cost the MNIST MLPs'
            // attack four fifths of its time for no visible digit.
            .with_flush_to_zero()
            .map_err(|e| anyhow!("{e}"))?;
        let mut builder = match cuda {
            None => builder,
            Some(n) => with_cuda(builder, n)?,
        };
        with_subnormals_as_zero(|| builder.commit_from_memory(bytes)).map_err(|e| anyhow!("{e}"))
    }

    /// The model's name in messages (usually its path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device the session actually runs on (never `Auto`).
    pub fn device(&self) -> Device {
        self.device
    }

    /// Names of the graph's inputs.
    pub fn input_names(&self) -> Vec<String> {
        self.session.inputs().iter().map(|o| o.name().to_string()).collect()
    }

    /// The first input as images go into it, or why it takes none.
    pub fn image_input(&self) -> Result<super::ImageInput> {
        let input = self.session.inputs().first().with_context(|| format!("{} has no inputs", self.name))?;
        super::ImageInput::read(input.name(), input.dtype()).map_err(|e| anyhow!("{} takes no images: {e}", self.name))
    }

    /// Names of the graph's outputs.
    pub fn output_names(&self) -> Vec<String> {
        self.session.outputs().iter().map(|o| o.name().to_string()).collect()
    }

    /// Runs the model on named inputs and returns every float output.
    pub fn run(&mut self, feeds: &[(&str, Feed<'_>)]) -> Result<Outputs> {
        self.run_in_place(feeds, |outputs| {
            Ok(Outputs(outputs.iter().map(|(name, array)| (name.to_string(), array.to_owned())).collect()))
        })
    }

    /// Runs the model and hands `read` every float output, by name in the
    /// graph's order, as views of ONNX Runtime's own buffers: a caller that
    /// only reads them (the attack, every round) copies nothing. A
    /// fixed-batch model given another number of rows runs in batches of
    /// its size, the last padded, and its outputs are joined.
    pub fn run_in_place<R>(
        &mut self,
        feeds: &[(&str, Feed<'_>)],
        read: impl FnOnce(&[(&str, ArrayViewD<f32>)]) -> Result<R>,
    ) -> Result<R> {
        let rows = feeds.first().map(|(_, feed)| feed.rows());
        match (self.fixed_batch, rows) {
            (Some(batch), Some(rows)) if rows != batch => self.run_padded(feeds, rows, batch, read),
            _ => self.run_once(feeds, read),
        }
    }

    /// Runs `rows` rows as batches of `batch`, the last padded with copies
    /// of its last row, whose outputs are dropped. Every output must have
    /// one row per input row, or padding would change it.
    fn run_padded<R>(
        &mut self,
        feeds: &[(&str, Feed<'_>)],
        rows: usize,
        batch: usize,
        read: impl FnOnce(&[(&str, ArrayViewD<f32>)]) -> Result<R>,
    ) -> Result<R> {
        let mut parts: Vec<(String, Vec<ArrayD<f32>>)> = Vec::new();
        for start in (0..rows).step_by(batch) {
            let end = (start + batch).min(rows);
            let padded: Vec<PaddedFeed> = feeds.iter().map(|(_, feed)| feed.padded(rows, start..end, batch)).collect();
            let chunk: Vec<(&str, Feed)> = feeds.iter().zip(&padded).map(|((name, _), p)| (*name, p.view())).collect();
            let name = self.name.clone();
            self.run_once(&chunk, |outputs| {
                parts.resize_with(outputs.len(), || (String::new(), Vec::new()));
                for ((out_name, array), (joined_name, joined)) in outputs.iter().zip(&mut parts) {
                    if array.shape().first() != Some(&batch) {
                        bail!(
                            "{name} takes batches of exactly {batch}, and its output '{out_name}' is shaped {:?}, \
                             not one row per image, so advx cannot run it on {rows} images",
                            array.shape()
                        );
                    }
                    *joined_name = out_name.to_string();
                    joined.push(array.slice_axis(Axis(0), (0..end - start).into()).to_owned());
                }
                Ok(())
            })?;
        }
        let joined = parts
            .into_iter()
            .map(|(name, arrays)| {
                let views: Vec<ArrayViewD<f32>> = arrays.iter().map(|a| a.view()).collect();
                Ok((name, ndarray::concatenate(Axis(0), &views)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let views: Vec<(&str, ArrayViewD<f32>)> = joined.iter().map(|(n, a)| (n.as_str(), a.view())).collect();
        read(&views)
    }

    fn run_once<R>(
        &mut self,
        feeds: &[(&str, Feed<'_>)],
        read: impl FnOnce(&[(&str, ArrayViewD<f32>)]) -> Result<R>,
    ) -> Result<R> {
        let inputs = feeds
            .iter()
            .map(|(name, feed)| Ok((Cow::Borrowed(*name), to_value(feed)?)))
            .collect::<Result<Vec<(Cow<str>, SessionInputValue)>>>()
            .with_context(|| format!("cannot pass inputs to {}", self.name))?;
        let name = &self.name;
        let session = &mut self.session;
        let outputs = with_subnormals_as_zero(|| match crate::interrupt::run_options() {
            Some(options) => session.run_with_options(inputs, options),
            None => session.run(inputs),
        });
        let outputs = outputs.map_err(|e| match crate::interrupt::requested() {
            Some(signal) => anyhow::Error::new(crate::interrupt::Interrupted(signal)),
            None => anyhow!("running {name} failed: {e}"),
        })?;
        let views = outputs
            .keys()
            .map(|out_name| {
                let array = outputs[out_name]
                    .try_extract_array::<f32>()
                    .map_err(|e| anyhow!("output '{out_name}' of {name} is not a float tensor: {e}"))?;
                Ok((out_name, array))
            })
            .collect::<Result<Vec<_>>>()?;
        read(&views)
    }

    /// Runs a backward graph and returns its per-sample loss and the
    /// gradient of its `[N, C, H, W]` image input (fed shaped `images`),
    /// both checked finite and checked to have one row per image.
    pub fn run_loss_and_image_grad(
        &mut self,
        feeds: &[(&str, Feed)],
        images: &[usize],
        loss: &str,
        grad: &str,
    ) -> Result<(Vec<f32>, Array4<f32>)> {
        self.run_loss_and_image_grad_in_place(feeds, images, loss, grad, |losses, grads| {
            Ok((losses.to_vec(), grads.to_owned()))
        })
    }

    /// [`run_loss_and_image_grad`](Self::run_loss_and_image_grad) that
    /// hands the loss and the gradient to `read` in ONNX Runtime's buffers.
    pub fn run_loss_and_image_grad_in_place<R>(
        &mut self,
        feeds: &[(&str, Feed)],
        images: &[usize],
        loss: &str,
        grad: &str,
        read: impl FnOnce(&[f32], ArrayView4<f32>) -> Result<R>,
    ) -> Result<R> {
        let model = self.name.clone();
        self.run_in_place(feeds, |outputs| {
            let output = |wanted: &str| {
                outputs
                    .iter()
                    .find(|(name, _)| *name == wanted)
                    .map(|(_, array)| array.view())
                    .ok_or_else(|| anyhow!("{model} has no output '{wanted}'"))
            };
            let (losses, grads) = (output(loss)?, output(grad)?);
            let rows = images.first().copied().unwrap_or(0);
            if losses.len() != rows || grads.shape() != images {
                bail!(
                    "{model} gave {} losses and a gradient shaped {:?} for {rows} images shaped {images:?}",
                    losses.len(),
                    grads.shape()
                );
            }
            check_finite(&model, loss, &losses)?;
            check_finite(&model, grad, &grads)?;
            let grads = grads
                .into_dimensionality::<Ix4>()
                .with_context(|| format!("output '{grad}' of {model} is not [N, C, H, W]"))?;
            let losses = losses.as_slice().with_context(|| format!("output '{loss}' of {model} is not contiguous"))?;
            read(losses, grads)
        })
    }
}

/// Runs ONNX Runtime's code (`f` calls into it) with subnormal f32 numbers
/// read and written as zero on this thread, then gives the thread back
/// its own floating-point mode. The sessions' `set_denormal_as_zero` does
/// the same for their pool threads, but ONNX Runtime computes on the
/// calling thread too (all of a single-threaded session's work) and leaves
/// the mode set on the thread that made the session: advx's own arithmetic
/// would then round differently on different threads, and its results
/// would depend on which thread ran what.
fn with_subnormals_as_zero<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: Rust's code generation assumes the default mode; only ONNX
    // Runtime's C++ code and ort's calls into it run under the other, and
    // the guard restores the thread's mode before `f`'s result is used.
    unsafe { no_denormals::no_denormals(f) }
}

/// The batch size the first input declares, when fixed.
fn fixed_batch(session: &Session) -> Option<usize> {
    let ort::value::ValueType::Tensor { shape, .. } = session.inputs().first()?.dtype() else { return None };
    shape.first().and_then(|&d| usize::try_from(d).ok()).filter(|&d| d > 0)
}

impl Feed<'_> {
    /// Rows along the first axis (1 for a scalar).
    fn rows(&self) -> usize {
        let shape = match self {
            Feed::F32(a) => a.shape(),
            Feed::I64(a) => a.shape(),
        };
        shape.first().copied().unwrap_or(1)
    }

    /// The rows `range` of a feed of `rows` rows, padded to `batch` with
    /// copies of the last; a feed of another length is not per image and
    /// goes in whole.
    fn padded(&self, rows: usize, range: std::ops::Range<usize>, batch: usize) -> PaddedFeed {
        fn pad<T: Clone>(a: &ArrayViewD<T>, range: std::ops::Range<usize>, batch: usize) -> ArrayD<T> {
            let last = range.end - 1;
            let picks: Vec<usize> = range.chain(std::iter::repeat(last)).take(batch).collect();
            a.select(Axis(0), &picks)
        }
        match self {
            Feed::F32(a) if self.rows() == rows => PaddedFeed::F32(pad(a, range, batch)),
            Feed::I64(a) if self.rows() == rows => PaddedFeed::I64(pad(a, range, batch)),
            Feed::F32(a) => PaddedFeed::F32(a.to_owned()),
            Feed::I64(a) => PaddedFeed::I64(a.to_owned()),
        }
    }
}

/// An owned feed: one padded batch.
enum PaddedFeed {
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
}

impl PaddedFeed {
    fn view(&self) -> Feed<'_> {
        match self {
            PaddedFeed::F32(a) => Feed::F32(a.view()),
            PaddedFeed::I64(a) => Feed::I64(a.view()),
        }
    }
}

fn to_value<'v>(feed: &'v Feed<'_>) -> Result<SessionInputValue<'v>> {
    Ok(match feed {
        Feed::F32(a) => TensorRef::from_array_view(a.view()).map_err(|e| anyhow!("{e}"))?.into(),
        Feed::I64(a) => TensorRef::from_array_view(a.view()).map_err(|e| anyhow!("{e}"))?.into(),
    })
}

#[cfg(feature = "cuda")]
fn with_cuda(
    builder: ort::session::builder::SessionBuilder,
    device: i32,
) -> Result<ort::session::builder::SessionBuilder> {
    // Batches shrink as examples finish, so every call may bring a new
    // shape: cuDNN's exhaustive search would time every convolution
    // algorithm again for each. TF32 would round the products to 10-bit
    // mantissas; the attacks and gradient checks want f32, as on the CPU.
    let ep = ort::ep::CUDA::default()
        .with_device_id(device)
        .with_conv_algorithm_search(ort::ep::cuda::ConvAlgorithmSearch::Heuristic)
        .with_tf32(false)
        .build()
        .error_on_failure();
    builder
        .with_execution_providers([ep])
        .map_err(|e| anyhow!("the CUDA execution provider did not start on GPU {device}: {e}"))
}

#[cfg(not(feature = "cuda"))]
fn with_cuda(_: ort::session::builder::SessionBuilder, _: i32) -> Result<ort::session::builder::SessionBuilder> {
    bail!("this advx was built without CUDA support; rebuild with `cargo build --release --features cuda`")
}

impl Outputs {
    /// An output by name.
    pub fn get(&self, name: &str) -> Result<&ArrayD<f32>> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a)
            .ok_or_else(|| anyhow!("the model has no output '{name}'"))
    }

    /// Takes an output out by name.
    pub fn take(&mut self, name: &str) -> Result<ArrayD<f32>> {
        let i =
            self.0.iter().position(|(n, _)| n == name).ok_or_else(|| anyhow!("the model has no output '{name}'"))?;
        Ok(self.0.swap_remove(i).1)
    }

    /// The first output.
    pub fn first(&self) -> &ArrayD<f32> {
        &self.0[0].1
    }

    /// Every output, in the graph's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ArrayD<f32>)> {
        self.0.iter().map(|(n, a)| (n.as_str(), a))
    }
}

/// Fails with a message naming the model and output when an array holds NaN or infinity.
pub fn check_finite(model: &str, output: &str, array: &ArrayViewD<f32>) -> Result<()> {
    // The fast path reads the outputs as one slice (the attack checks a
    // batch of gradients every round); the search only runs on a failure.
    if array.as_slice_memory_order().is_some_and(|values| values.iter().all(|v| v.is_finite())) {
        return Ok(());
    }
    match array.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some((i, v)) => bail!("{model} produced a non-finite value ({v}) in output '{output}' at flat index {i}"),
    }
}
