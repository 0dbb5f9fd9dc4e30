//! ONNX Runtime: loading the library once per process, choosing the
//! execution provider, and running models on ndarray tensors.
//!
//! ort allows one Environment per process, so [`Runtime`] is a cheap handle
//! to the one environment; sessions made from it may live anywhere.

mod adapt;
mod device;
mod input;
mod library;
mod model;

pub use adapt::{Adaptation, Preprocess};
pub use device::{AutoDevice, Device};
pub use input::{Dim, ImageInput, Layout};
pub use library::{PINNED_VERSION, find as find_library};
pub use model::{Feed, Model, Outputs, check_finite};

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result, anyhow};
use ort::environment::Environment;

/// A handle to the process's ONNX Runtime environment.
#[derive(Clone)]
pub struct Runtime {
    env: Environment,
    library: PathBuf,
    threads: usize,
}

static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);
static AUTO: OnceLock<AutoDevice> = OnceLock::new();

impl Runtime {
    /// The process's runtime, loading ONNX Runtime on first use.
    pub fn get() -> Result<Runtime> {
        let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rt) = slot.as_ref() {
            return Ok(rt.clone());
        }
        let rt = Self::start()?;
        *slot = Some(rt.clone());
        Ok(rt)
    }

    fn start() -> Result<Runtime> {
        let library = library::find()?;
        let env = ort::init_from(&library)
            .map_err(|e| anyhow!("cannot load ONNX Runtime from {}: {e}", library.display()))?
            .with_name("advx")
            .with_telemetry(false)
            .build()
            .map_err(|e| anyhow!("cannot create the ONNX Runtime environment: {e}"))?;
        Ok(Runtime { env, library, threads: threads_from_env()? })
    }

    /// The shared library in use.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// The ONNX Runtime version, read from the library's file name or build info.
    pub fn version(&self) -> String {
        let name = self.library.file_name().and_then(|n| n.to_str()).unwrap_or("");
        match name.strip_prefix("libonnxruntime.so.") {
            Some(v) => v.to_string(),
            None => ort::info()
                .split([',', ' '])
                .find_map(|p| p.strip_prefix("git-branch=rel-"))
                .unwrap_or("unknown")
                .to_string(),
        }
    }

    /// Threads per ONNX Runtime session (`ADVX_THREADS`, else every core).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Loads an ONNX file into a session on `device` with [`threads`](Self::threads) threads.
    pub fn load(&self, path: impl AsRef<Path>, device: Device) -> Result<Model> {
        self.load_with_threads(path, device, self.threads)
    }

    /// [`load`](Self::load) into a session of `threads` intra-op threads
    /// (one for each of several sessions that run side by side).
    pub fn load_with_threads(&self, path: impl AsRef<Path>, device: Device, threads: usize) -> Result<Model> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).with_context(|| format!("cannot read ONNX model {}", path.display()))?;
        Model::create(self, &bytes, &path.display().to_string(), device, threads)
    }

    /// Builds a session from a model file's bytes, read once by a caller
    /// that also hashes them (so the session runs the model it recorded).
    pub fn load_bytes(&self, bytes: &[u8], name: &str, device: Device) -> Result<Model> {
        Model::create(self, bytes, name, device, self.threads)
    }

    /// Builds a session from an in-memory model; `name` is used in messages.
    pub fn load_proto(&self, model: &crate::onnx::ModelProto, name: &str, device: Device) -> Result<Model> {
        self.load_proto_with_threads(model, name, device, self.threads)
    }

    /// [`load_proto`](Self::load_proto) into a session of `threads` intra-op threads.
    pub fn load_proto_with_threads(
        &self,
        model: &crate::onnx::ModelProto,
        name: &str,
        device: Device,
        threads: usize,
    ) -> Result<Model> {
        use prost::Message;
        Model::create(self, &model.encode_to_vec(), name, device, threads)
    }

    /// `device` with `auto` decided ([`auto_device`](Self::auto_device)),
    /// the choice and its reason said once on stderr: what a command line
    /// run with `--device auto` prints.
    pub fn announce(&self, device: Device) -> Device {
        static SAID: std::sync::Once = std::sync::Once::new();
        if device != Device::Auto {
            return device;
        }
        let auto = self.auto_device();
        SAID.call_once(|| eprintln!("device: {auto}"));
        auto.device
    }

    /// What `auto` means in this process, decided once: GPU 0 when ONNX
    /// Runtime's CUDA provider starts there (tried on a one-node graph),
    /// else the CPU, with the reason. Every model that runs on `auto` then
    /// runs on the same device, and the choice can be reported.
    pub fn auto_device(&self) -> &'static AutoDevice {
        AUTO.get_or_init(|| {
            match self.load_proto_with_threads(&device::probe(), "the CUDA probe", Device::Cuda(0), 1) {
                Ok(_) => AutoDevice { device: Device::Cuda(0), unavailable: None },
                Err(e) => {
                    let reason = e.chain().skip(1).map(ToString::to_string).collect::<Vec<_>>().join(": ");
                    AutoDevice { device: Device::Cpu, unavailable: Some(reason) }
                }
            }
        })
    }

    pub(crate) fn environment(&self) -> &Environment {
        &self.env
    }
}

fn threads_from_env() -> Result<usize> {
    match std::env::var("ADVX_THREADS") {
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| anyhow!("ADVX_THREADS must be a positive integer, not '{v}'")),
        Err(_) => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}
