#![allow(dead_code)] // each test file uses some of these

//! Variables for the tests: candle-nn's `VarMap` (its CPU initialiser cannot be seeded; where a test
//! needs reproducible values it sets them).

use candle_core::{DType, Device, Var};
use candle_nn::{VarBuilder, VarMap};

pub fn var_builder(vm: &VarMap, dtype: DType) -> VarBuilder<'static> {
    VarBuilder::from_varmap(vm, dtype, &Device::Cpu)
}

/// The variable whose name ends with `suffix`.
pub fn var(vm: &VarMap, suffix: &str) -> Var {
    let data = vm.data().lock().expect("var map");
    data.iter().find(|(name, _)| name.ends_with(suffix)).map(|(_, v)| v.clone()).expect("a variable of that name")
}

/// Values drawn uniformly from ±1/√fan_in (PyTorch's default for a convolution's weight) by a generator seeded with `seed`.
pub fn seeded_uniform(seed: u64, fan_in: f32, dims: &[usize]) -> candle_core::Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let bound = fan_in.sqrt().recip();
    let values: Vec<f32> = (0..dims.iter().product()).map(|_| rng.random_range(-bound..bound)).collect();
    candle_core::Tensor::from_vec(values, dims, &Device::Cpu).expect("shape")
}
