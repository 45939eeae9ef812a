//! Compute devices. The default build is CPU-only; `--features cuda` / `metal` enable candle's backends.

use candle_core::Device;

use crate::error::{Error, Result};

/// The candle device named `cpu`, `cuda` (GPU 0) or `metal` (GPU 0), with a clear error when this build
/// or machine lacks it.
pub fn resolve(name: &str) -> Result<Device> {
    let gpu = |r: candle_core::Result<Device>, feature: &str| {
        r.map_err(|e| {
            Error::Usage(format!(
                "--device {name}: not available ({e}); build with `--features {feature}` on a machine with that GPU"
            ))
        })
    };
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => gpu(Device::new_cuda(0), "cuda"),
        "metal" => gpu(Device::new_metal(0), "metal"),
        other => Err(Error::Usage(format!("--device {other}: expected cpu, cuda or metal"))),
    }
}
