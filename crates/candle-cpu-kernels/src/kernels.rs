//! Which code computes the layers and the optimiser's updates: our CPU kernels, or candle's own ops.
//!
//! Our kernels run on CPU f32 only. On CUDA and Metal every layer is candle's ops whatever a spec asks;
//! `candle` makes the CPU run exactly those ops too, so that the path GPUs take is trained and tested end
//! to end on any machine.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

/// The implementation of the layers .
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use candle_cpu_kernels::Kernels;
/// let x = Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap();
/// assert!(Kernels::Native.native_on(&[&x]));
/// assert!(!Kernels::Candle.native_on(&[&x]));
/// assert!(!Kernels::Native.native_on(&[&x.to_dtype(DType::F64).unwrap()]));
/// assert_eq!(Kernels::Native.effective(&Device::Cpu), Kernels::Native);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kernels {
    /// Our kernels wherever they apply (CPU, f32); candle's ops elsewhere.
    #[default]
    Native,
    /// candle's ops everywhere: on the CPU, the ops CUDA and Metal run.
    Candle,
}

impl Kernels {
    pub fn name(self) -> &'static str {
        match self {
            Kernels::Native => "native",
            Kernels::Candle => "candle",
        }
    }

    /// For `skip_serializing_if`: a config that asks for the default serialises as it did before the
    /// field existed, so the spec hashes of runs trained by our kernels did not move.
    pub fn is_native(&self) -> bool {
        *self == Kernels::Native
    }

    /// Whether our kernels compute an op on these tensors: asked for, and every tensor on the CPU in f32.
    pub fn native_on(self, tensors: &[&Tensor]) -> bool {
        self == Kernels::Native && tensors.iter().all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
    }

    /// What trains an f32 network on `device`: our kernels only on the CPU.
    pub fn effective(self, device: &Device) -> Kernels {
        if device.is_cpu() { self } else { Kernels::Candle }
    }
}

impl fmt::Display for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kernels {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "native" => Ok(Kernels::Native),
            "candle" => Ok(Kernels::Candle),
            other => Err(format!("unknown kernels '{other}': expected native or candle")),
        }
    }
}
