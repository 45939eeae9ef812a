//! Optimisers of the authors' code, written out because candle-nn's SGD has no momentum:
//! heavy-ball SGD (torch semantics: weight decay added to the gradient, then momentum) and LARS
//! (solo-learn's `lars.py`: trust ratio η‖w‖/(‖g‖ + wd‖w‖ + 1e-8), clipped to lr, for every tensor with
//! more than one dimension; biases and batch-norm parameters get plain momentum SGD without decay).

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// A set of parameters sharing a learning-rate scale and a weight decay.
#[derive(Debug, Clone)]
pub struct ParamGroup {
    pub vars: Vec<Var>,
    /// This group's base learning rate (already scaled with the batch); the schedule maps it to the
    /// rate of each step.
    pub base_lr: f64,
    pub weight_decay: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// SGD with momentum; weight decay on every parameter.
    Sgd,
    /// LARS with trust coefficient `eta`, optionally clipping the local rate to the global one.
    Lars { eta: f64, clip: bool },
}

/// Momentum optimiser over parameter groups.
pub struct Optimizer {
    pub rule: Rule,
    pub momentum: f64,
    groups: Vec<ParamGroup>,
    /// Momentum buffers, one per var per group (created on first use).
    buffers: Vec<Vec<Option<Tensor>>>,
}

/// (‖w‖, ‖g‖) of each of a group's parameters that LARS scales (more than one dimension, a gradient):
/// all squared sums are read back in one transfer, so that a GPU syncs with the host once per group and
/// step, not twice per parameter.
fn lars_norms(group: &ParamGroup, grads: &GradStore) -> Result<Vec<Option<(f64, f64)>>> {
    let mut sums = Vec::new();
    let mut scaled = Vec::new();
    for var in &group.vars {
        let w = var.as_tensor();
        match grads.get(var) {
            Some(g) if w.rank() > 1 => {
                sums.push(w.sqr()?.sum_all()?);
                sums.push(g.sqr()?.sum_all()?);
                scaled.push(true);
            }
            _ => scaled.push(false),
        }
    }
    let mut read = if sums.is_empty() {
        Vec::new()
    } else {
        Tensor::stack(&sums, 0)?.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?
    }
    .into_iter()
    .map(f64::sqrt);
    Ok(scaled.into_iter().map(|s| if s { read.next().zip(read.next()) } else { None }).collect())
}

impl Optimizer {
    pub fn new(rule: Rule, momentum: f64, groups: Vec<ParamGroup>) -> Self {
        let buffers = groups.iter().map(|g| vec![None; g.vars.len()]).collect();
        Optimizer { rule, momentum, groups, buffers }
    }

    /// One step; `lr_of` maps a group's base rate to this step's rate (the schedule).
    pub fn step(&mut self, grads: &GradStore, lr_of: impl Fn(f64) -> f64) -> Result<()> {
        for (group, bufs) in self.groups.iter().zip(self.buffers.iter_mut()) {
            let glr = lr_of(group.base_lr);
            let wd = group.weight_decay;
            let norms = match self.rule {
                Rule::Lars { .. } => lars_norms(group, grads)?,
                Rule::Sgd => Vec::new(),
            };
            for (i, (var, buf)) in group.vars.iter().zip(bufs.iter_mut()).enumerate() {
                let Some(g) = grads.get(var) else { continue };
                let w = var.as_tensor();
                let d = match self.rule {
                    Rule::Sgd => {
                        if wd != 0.0 {
                            (g + (w * wd)?)?
                        } else {
                            g.clone()
                        }
                    }
                    Rule::Lars { eta, clip } => match norms.get(i).copied().flatten() {
                        Some((wn, gn)) if wn != 0.0 && gn != 0.0 => {
                            let mut r = eta * wn / (gn + wd * wn + 1e-8);
                            if clip {
                                r = (r / glr).min(1.0);
                            }
                            ((g + (w * wd)?)? * r)?
                        }
                        // Vectors (biases, batch norm) and zero tensors: plain momentum SGD.
                        _ => g.clone(),
                    },
                };
                let next = match buf.take() {
                    Some(b) if self.momentum != 0.0 => ((b * self.momentum)? + d)?,
                    _ => d,
                };
                var.set(&(w - (&next * glr)?)?)?;
                // Detached: the buffer is built from the variable itself, and a tracked buffer would keep
                // every earlier step's graph (and memory) alive.
                *buf = Some(next.detach());
            }
        }
        Ok(())
    }

    /// Momentum buffers (for checkpoints), group by group.
    pub fn buffers(&self) -> &[Vec<Option<Tensor>>] {
        &self.buffers
    }

    /// Restores momentum buffers saved by [`Optimizer::buffers`].
    pub fn set_buffers(&mut self, buffers: Vec<Vec<Option<Tensor>>>) {
        self.buffers = buffers;
    }
}
