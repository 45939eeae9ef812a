//! The projection MLP: Linear → BatchNorm1d → ReLU → Linear (512 → 4096 → 256 in the authors' code).

use candle_core::{ModuleT, Result, Tensor};
use candle_nn::{Module, VarBuilder};

use candle_cpu_kernels::BatchNorm;
use candle_cpu_kernels::Kernels;
use candle_cpu_kernels::Linear;

/// One-hidden-layer projector.
///
/// ```
/// use candle_core::{DType, Device, ModuleT, Tensor};
/// use eigenssl::ssl::{init::SeededVarMap, Kernels, projector::Projector};
/// let vm = SeededVarMap::new(0);
/// let p = Projector::new(8, 16, 4, Kernels::Native, vm.var_builder(DType::F32, &Device::Cpu)).unwrap();
/// let z = p.forward_t(&Tensor::ones((3, 8), DType::F32, &Device::Cpu).unwrap(), true).unwrap();
/// assert_eq!(z.dims(), &[3, 4]);
/// ```
#[derive(Debug, Clone)]
pub struct Projector {
    fc1: Linear,
    bn: BatchNorm,
    fc2: Linear,
}

impl Projector {
    pub fn new(in_dim: usize, hidden: usize, out_dim: usize, kernels: Kernels, vb: VarBuilder) -> Result<Self> {
        Ok(Projector {
            fc1: Linear::new(in_dim, hidden, vb.pp("fc1"))?.with_kernels(kernels),
            bn: BatchNorm::new(hidden, true, vb.pp("bn"))?.with_kernels(kernels),
            fc2: Linear::new(hidden, out_dim, vb.pp("fc2"))?.with_kernels(kernels),
        })
    }
}

impl ModuleT for Projector {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.bn.forward_t(&self.fc1.forward(x)?, train)?;
        self.fc2.forward(&h)
    }
}
