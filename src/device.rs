//! Compute devices. The default build is CPU-only; `--features cuda` / `metal` enable candle's backends.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A compute device as named on the command line and in records (`cpu`, `cuda`, `cuda:K`, `metal`):
/// parsed once, at the edge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum DeviceKind {
    #[default]
    Cpu,
    /// CUDA (`--features cuda`): `cuda:K` is GPU K; `cuda` alone is every visible GPU for a sweep (its
    /// runs spread over them, [`DeviceKind::spread`]) and GPU 0 for one run.
    Cuda(Option<usize>),
    /// GPU 0 through Metal (`--features metal`).
    Metal,
}

impl DeviceKind {
    /// The backend's name, without a GPU number.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda(_) => "cuda",
            DeviceKind::Metal => "metal",
        }
    }

    pub fn is_cpu(self) -> bool {
        self == DeviceKind::Cpu
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
            DeviceKind::Cuda(k) => gpu(candle_core::Device::new_cuda(k.unwrap_or(0)), "cuda", cfg!(feature = "cuda")),
            DeviceKind::Metal => gpu(candle_core::Device::new_metal(0), "metal", cfg!(feature = "metal")),
        }
    }

    /// The devices a sweep's runs are spread over: every GPU CUDA shows this process for `cuda`
    /// ([`visible_cuda_gpus`] of `CUDA_VISIBLE_DEVICES` and the GPUs `nvidia-smi` lists), else this one.
    pub fn spread(self) -> Vec<DeviceKind> {
        match self {
            DeviceKind::Cuda(None) => {
                let env = std::env::var("CUDA_VISIBLE_DEVICES").ok();
                self.spread_over(visible_cuda_gpus(env.as_deref(), listed_nvidia_gpus()))
            }
            _ => vec![self],
        }
    }

    /// [`DeviceKind::spread`] with `visible` GPUs: `cuda:0` … `cuda:{visible − 1}` for `cuda` (GPU 0
    /// where none could be counted, so that opening it says why), else this one.
    ///
    /// ```
    /// use eigenssl::device::DeviceKind;
    /// let cuda: DeviceKind = "cuda".parse().unwrap();
    /// assert_eq!(cuda.spread_over(2), vec!["cuda:0".parse().unwrap(), "cuda:1".parse::<DeviceKind>().unwrap()]);
    /// assert_eq!("cuda:3".parse::<DeviceKind>().unwrap().spread_over(8).len(), 1);
    /// assert_eq!(DeviceKind::Cpu.spread_over(8), vec![DeviceKind::Cpu]);
    /// ```
    pub fn spread_over(self, visible: usize) -> Vec<DeviceKind> {
        match self {
            DeviceKind::Cuda(None) => (0..visible.max(1)).map(|k| DeviceKind::Cuda(Some(k))).collect(),
            _ => vec![self],
        }
    }
}

/// GPUs CUDA numbers for this process: with `CUDA_VISIBLE_DEVICES` set, its entries up to the first one
/// that is not a GPU (CUDA stops there: `-1` hides every GPU), at most the `listed` ones where those could
/// be counted; else all `listed`.
///
/// ```
/// use eigenssl::device::visible_cuda_gpus;
/// assert_eq!(visible_cuda_gpus(None, 8), 8);
/// assert_eq!(visible_cuda_gpus(Some("2,5"), 8), 2);
/// assert_eq!(visible_cuda_gpus(Some("0,-1,3"), 8), 1);
/// assert_eq!(visible_cuda_gpus(Some(""), 8), 0);
/// assert_eq!(visible_cuda_gpus(Some("GPU-8f3a,GPU-11c2"), 0), 2);
/// assert_eq!(visible_cuda_gpus(Some("0,1,2,3"), 2), 2);
/// ```
pub fn visible_cuda_gpus(cuda_visible_devices: Option<&str>, listed: usize) -> usize {
    let Some(list) = cuda_visible_devices else { return listed };
    let named = list.split(',').map(str::trim).take_while(|e| !e.is_empty() && !e.starts_with('-')).count();
    if listed > 0 { named.min(listed) } else { named }
}

/// GPUs `nvidia-smi -L` lists, 0 without it.
fn listed_nvidia_gpus() -> usize {
    std::process::Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.starts_with("GPU ")).count())
        .unwrap_or(0)
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceKind::Cuda(Some(k)) => write!(f, "cuda:{k}"),
            other => f.write_str(other.name()),
        }
    }
}

impl FromStr for DeviceKind {
    type Err = String;

    /// ```
    /// use eigenssl::device::DeviceKind;
    /// assert_eq!("cuda:1".parse::<DeviceKind>().unwrap().to_string(), "cuda:1");
    /// assert!("cuda:x".parse::<DeviceKind>().unwrap_err().contains("cuda:K"));
    /// assert!("tpu".parse::<DeviceKind>().is_err());
    /// ```
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let expected = "expected cpu, cuda, cuda:K (GPU K) or metal";
        match s {
            "cpu" => Ok(DeviceKind::Cpu),
            "cuda" => Ok(DeviceKind::Cuda(None)),
            "metal" => Ok(DeviceKind::Metal),
            _ => match s.strip_prefix("cuda:") {
                Some(k) => k.parse().map(|k| DeviceKind::Cuda(Some(k))).map_err(|_| format!("`{s}`: {expected}")),
                None => Err(format!("`{s}`: {expected}")),
            },
        }
    }
}

impl From<DeviceKind> for String {
    fn from(d: DeviceKind) -> String {
        d.to_string()
    }
}

impl TryFrom<String> for DeviceKind {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}
