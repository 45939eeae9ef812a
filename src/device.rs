//! Compute devices. The default build is CPU-only; `--features cuda` / `metal` enable candle's backends.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A compute device as named on the command line and in records: parsed once, at the edge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    #[default]
    Cpu,
    /// GPU 0 through CUDA (`--features cuda`).
    Cuda,
    /// GPU 0 through Metal (`--features metal`).
    Metal,
}

impl DeviceKind {
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
            DeviceKind::Metal => "metal",
        }
    }

    /// The candle device, with a clear error when this build or machine lacks it.
    pub fn open(self) -> Result<candle_core::Device> {
        let gpu = |r: candle_core::Result<candle_core::Device>, feature: &str, built: bool| {
            r.map_err(|e| {
                // candle's error carries a backtrace when RUST_BACKTRACE is set: its first line is the reason.
                let e = e.to_string();
                let reason = e.lines().next().unwrap_or_default();
                if built {
                    Error::Environment(format!("--device {self}: no usable GPU or driver here ({reason})"))
                } else {
                    Error::Usage(format!("--device {self}: this build has no {feature} support; build with `--features {feature}`"))
                }
            })
        };
        match self {
            DeviceKind::Cpu => Ok(candle_core::Device::Cpu),
            DeviceKind::Cuda => gpu(candle_core::Device::new_cuda(0), "cuda", cfg!(feature = "cuda")),
            DeviceKind::Metal => gpu(candle_core::Device::new_metal(0), "metal", cfg!(feature = "metal")),
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DeviceKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [DeviceKind::Cpu, DeviceKind::Cuda, DeviceKind::Metal]
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| format!("`{s}`: expected cpu, cuda or metal"))
    }
}
