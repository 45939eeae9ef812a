//! Compute devices. The default build is CPU-only; `--features cuda` / `metal` enable candle's backends.

use candle_core::Device;

use crate::error::{Error, Result};

/// The candle device named `cpu`, `cuda` (GPU 0) or `metal` (GPU 0), with a clear error when this build
/// or machine lacks it.
pub fn resolve(name: &str) -> Result<Device> {
    let gpu = |r: candle_core::Result<Device>, built: bool, feature: &str| {
        r.map_err(|e| {
            // candle's error carries a backtrace when RUST_BACKTRACE is set: its first line is the reason.
            let e = e.to_string();
            let reason = e.lines().next().unwrap_or_default();
            Error::Usage(if built {
                format!("--device {name}: no usable GPU or driver here ({reason})")
            } else {
                format!("--device {name}: this build has no {feature} support; build with `--features {feature}`")
            })
        })
    };
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => gpu(Device::new_cuda(0), cfg!(feature = "cuda"), "cuda"),
        "metal" => gpu(Device::new_metal(0), cfg!(feature = "metal"), "metal"),
        other => Err(Error::Usage(format!("--device {other}: expected cpu, cuda or metal"))),
    }
}
