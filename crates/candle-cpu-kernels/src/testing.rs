//! Variables for the unit tests: candle-nn's `VarMap` (its CPU initialiser draws from an unseeded
//! generator, so a test that needs two equal layers copies one map's values into the other).

use candle_core::{DType, Device, Var};
use candle_nn::{VarBuilder, VarMap};

pub(crate) fn var_builder(vm: &VarMap) -> VarBuilder<'static> {
    VarBuilder::from_varmap(vm, DType::F32, &Device::Cpu)
}

/// The map's variables, sorted by name.
pub(crate) fn named_vars(vm: &VarMap) -> Vec<(String, Var)> {
    let mut vars: Vec<(String, Var)> = vm.data().lock().expect("var map").iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Sets every variable of `to` to the value of the variable of the same name in `from`.
pub(crate) fn copy_vars(from: &VarMap, to: &VarMap) {
    let source = named_vars(from);
    for (name, var) in named_vars(to) {
        let (_, value) = source.iter().find(|(n, _)| *n == name).expect("same variables");
        var.set(value.as_tensor()).expect("same shape");
    }
}
