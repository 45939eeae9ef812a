//! The arithmetic of f32 matrix products on a GPU: exact f32, or TF32 (NVIDIA's tensor-core format: f32's
//! range, a 10-bit mantissa like f16's, f32 accumulation).
//!
//! Why a choice: on CUDA candle computes f32 products with cuBLAS, which may use TF32 tensor cores (several
//! times the f32 throughput of an H100) when told. PyTorch lets cuDNN's convolutions use TF32 by default
//! (not its matrix products); the authors trained with 16-bit mixed precision. The default is `f32`: every
//! GPU number then stays within float rounding of the CPU's, which the parity test and the GPU check's
//! CUDA-against-CPU comparison rely on; `tf32` is for speed, and whether it trains the same is a
//! measurement (the GPU check times the step at both precisions), not an assumption.
//!
//! The switch is candle's, one per process: every run of one process on CUDA must use the same precision
//! ([`Precision::common`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::device::DeviceKind;
use crate::error::{Error, Result};

/// How f32 matrix products (and so the generic path's convolutions, which are matrix products) compute.
///
/// ```
/// use eigenssl::device::DeviceKind;
/// use eigenssl::precision::Precision;
/// let tf32: Precision = "tf32".parse().unwrap();
/// assert_eq!(tf32.effective(DeviceKind::Cuda(Some(0))), Precision::Tf32);
/// // Only CUDA has tensor cores to use it; the CPU and Metal compute in f32 whatever a spec asks.
/// assert_eq!(tf32.effective(DeviceKind::Cpu), Precision::F32);
/// assert!("fp16".parse::<Precision>().unwrap_err().contains("f32 or tf32"));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// IEEE f32 throughout.
    #[default]
    F32,
    /// On CUDA, cuBLAS may round f32 products' inputs to TF32 on tensor cores (f32 accumulation).
    Tf32,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Tf32 => "tf32",
        }
    }

    /// For `skip_serializing_if`: a config at the default serialises as it did before the field existed,
    /// so the spec hashes of earlier runs did not move.
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }

    /// What computes on `device`: TF32 only on CUDA.
    pub fn effective(self, device: DeviceKind) -> Precision {
        self.on(matches!(device, DeviceKind::Cuda(_)))
    }

    /// [`Precision::effective`] on an open candle device.
    pub fn effective_on(self, device: &candle_core::Device) -> Precision {
        self.on(device.is_cuda())
    }

    fn on(self, cuda: bool) -> Precision {
        if cuda { self } else { Precision::F32 }
    }

    /// Sets candle's process-wide switch for what runs next on `device` (nothing to set elsewhere).
    pub fn apply(self, device: DeviceKind) {
        if let DeviceKind::Cuda(_) = device {
            candle_core::cuda::set_gemm_reduced_precision_f32(self == Precision::Tf32);
        }
    }

    /// The one precision that runs asking for `asked` use together in one process on `device`, or why
    /// they cannot share it (`what` names the runs in the message).
    ///
    /// ```
    /// use eigenssl::device::DeviceKind;
    /// use eigenssl::precision::Precision::{F32, Tf32};
    /// use eigenssl::precision::Precision;
    /// let cuda = DeviceKind::Cuda(None);
    /// assert_eq!(Precision::common([Tf32, Tf32], cuda, "runs").unwrap(), Tf32);
    /// assert!(Precision::common([F32, Tf32], cuda, "runs").unwrap_err().to_string().contains("f32 and tf32"));
    /// assert_eq!(Precision::common([F32, Tf32], DeviceKind::Cpu, "runs").unwrap(), F32);
    /// ```
    pub fn common(asked: impl IntoIterator<Item = Precision>, device: DeviceKind, what: &str) -> Result<Precision> {
        let mut seen: Vec<Precision> = asked.into_iter().map(|p| p.effective(device)).collect();
        seen.sort_by_key(|p| p.name());
        seen.dedup();
        match seen.as_slice() {
            [] => Ok(Precision::F32),
            [one] => Ok(*one),
            _ => Err(Error::Usage(format!(
                "{what} ask for {} on {device}, but the switch is one per process: run each precision as its own command",
                seen.iter().map(|p| p.name()).collect::<Vec<_>>().join(" and ")
            ))),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "tf32" => Ok(Precision::Tf32),
            _ => Err(format!("`{s}`: expected f32 or tf32")),
        }
    }
}
