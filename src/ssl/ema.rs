//! The EMA target network's update (its τ schedule is in [`super::schedule`]).

use candle_core::{Result, Var};

use candle_cpu_kernels::inplace;
use candle_cpu_kernels::Kernels;

/// θ_target ← τ θ_target + (1 − τ) θ_online, parameters only (batch-norm running statistics are not
/// averaged, as in solo-learn's `momentum.py`). Pairs must be in the same order and shape. `kernels`:
/// in place where our kernels apply, else candle's expression (the same values).
pub fn ema_update(target: &[Var], online: &[Var], tau: f64, kernels: Kernels) -> Result<()> {
    if target.len() != online.len() {
        candle_core::bail!("EMA: {} target vars, {} online", target.len(), online.len());
    }
    for (t, o) in target.iter().zip(online) {
        if t.shape() == o.shape() && inplace::applies(kernels, &[t.as_tensor(), o.as_tensor()]) {
            t.inplace_op2(o.as_tensor(), &inplace::Average::new(tau))?;
        } else {
            let next = ((t.as_tensor() * tau)? + (o.as_tensor() * (1.0 - tau))?)?;
            t.set(&next)?;
        }
    }
    Ok(())
}
