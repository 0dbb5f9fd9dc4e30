//! Where models run: `cpu`, `cuda[:N]` or `auto`.

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};

/// A device as the user names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// ONNX Runtime's CPU execution provider.
    Cpu,
    /// The CUDA execution provider on GPU `N`; failing to start it is an error.
    Cuda(i32),
    /// CUDA when it starts, the CPU otherwise; the choice is reported.
    #[default]
    Auto,
}

impl FromStr for Device {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "cpu" => Ok(Device::Cpu),
            "auto" => Ok(Device::Auto),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<i32>) {
                Some(Ok(n)) if n >= 0 => Ok(Device::Cuda(n)),
                _ => bail!("unknown device '{s}': expected cpu, cuda, cuda:N or auto"),
            },
        }
    }
}

/// What `auto` chose ([`Runtime::auto_device`](super::Runtime::auto_device)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoDevice {
    /// `cuda:0` or `cpu`, never `auto`.
    pub device: Device,
    /// Why CUDA was not chosen.
    pub unavailable: Option<String>,
}

/// `cuda:0`, or `cpu (CUDA not available: ...)`: the line `--device auto`
/// prints.
impl fmt::Display for AutoDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.unavailable {
            None => write!(f, "{}", self.device),
            Some(reason) => write!(f, "{} (CUDA not available: {reason})", self.device),
        }
    }
}

/// A graph of one `Identity` node: the least a session can be made of, to
/// see whether the CUDA provider starts.
pub(super) fn probe() -> crate::onnx::ModelProto {
    use crate::onnx::builder::{Elem, GraphBuilder};
    use crate::onnx::shape::Dim;
    let mut graph = GraphBuilder::new();
    graph.input("x", Elem::F32, &[Dim::Fixed(1)]);
    let y = graph.op("Identity", &["x"], Vec::new());
    graph.output(&y, Elem::F32, &[Dim::Fixed(1)]);
    graph.into_model("advx-cuda-probe", 13, "whether the CUDA execution provider starts")
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Auto => write!(f, "auto"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_names() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:3".parse::<Device>().unwrap(), Device::Cuda(3));
        assert_eq!("auto".parse::<Device>().unwrap(), Device::Auto);
        let err = "tpu".parse::<Device>().unwrap_err().to_string();
        assert!(err.contains("'tpu'"), "{err}");
        assert!("cuda:-1".parse::<Device>().is_err());
    }
}
