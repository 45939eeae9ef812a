//! Optimisers of the authors' code, written out because candle-nn's SGD has no momentum:
//! heavy-ball SGD (torch semantics: weight decay added to the gradient, then momentum) and LARS
//! (solo-learn's `lars.py`: trust ratio η‖w‖/(‖g‖ + wd‖w‖ + 1e-8), clipped to lr, for every tensor with
//! more than one dimension; biases and batch-norm parameters get plain momentum SGD without decay).

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

use candle_cpu_kernels::inplace;
use candle_cpu_kernels::Kernels;

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
    kernels: Kernels,
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

/// `buf ← buf·μ + (g + w·λ)·r`, then `w ← w − buf·lr`, in place: the expression of [`Optimizer::step`]
/// with the same f32 operations (see [`inplace`]).
fn momentum_in_place(buf: &Tensor, g: &Tensor, w: &Tensor, decay: Option<f64>, ratio: Option<f64>, momentum: Option<f64>, lr: f64) -> Result<()> {
    let f32_of = |x: Option<f64>| x.map(|x| x as f32);
    buf.inplace_op3(g, w, &inplace::MomentumBuffer { decay: f32_of(decay), ratio: f32_of(ratio), momentum: f32_of(momentum) })?;
    w.inplace_op2(buf, &inplace::Descend { lr: lr as f32 })
}

impl Optimizer {
    pub fn new(rule: Rule, momentum: f64, groups: Vec<ParamGroup>) -> Self {
        let buffers = groups.iter().map(|g| vec![None; g.vars.len()]).collect();
        Optimizer { rule, momentum, groups, buffers, kernels: Kernels::Native }
    }

    /// Updates in place where our kernels apply with `kernels` (the default), else by candle's
    /// expression (the same values).
    pub fn with_kernels(self, kernels: Kernels) -> Self {
        Optimizer { kernels, ..self }
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
                // Decay and trust ratio of this parameter's direction d = (g + w·λ)·r.
                let (decay, ratio) = match self.rule {
                    Rule::Sgd => ((wd != 0.0).then_some(wd), None),
                    Rule::Lars { eta, clip } => match norms.get(i).copied().flatten() {
                        Some((wn, gn)) if wn != 0.0 && gn != 0.0 => {
                            let mut r = eta * wn / (gn + wd * wn + 1e-8);
                            if clip {
                                r = (r / glr).min(1.0);
                            }
                            (Some(wd), Some(r))
                        }
                        // Vectors (biases, batch norm) and zero tensors: plain momentum SGD.
                        _ => (None, None),
                    },
                };
                let momentum = (self.momentum != 0.0 && buf.is_some()).then_some(self.momentum);
                *buf = Some(match buf.take() {
                    Some(b) if inplace::applies(self.kernels, &[&b, g, w]) => {
                        momentum_in_place(&b, g, w, decay, ratio, momentum, glr)?;
                        b
                    }
                    None if inplace::applies(self.kernels, &[g, w]) => {
                        let b = g.zeros_like()?;
                        momentum_in_place(&b, g, w, decay, ratio, None, glr)?;
                        b
                    }
                    b => {
                        let mut d = g.clone();
                        if let Some(decay) = decay {
                            d = (d + (w * decay)?)?;
                        }
                        if let Some(ratio) = ratio {
                            d = (d * ratio)?;
                        }
                        let next = match (b, momentum) {
                            (Some(b), Some(m)) => ((b * m)? + d)?,
                            _ => d,
                        };
                        var.set(&(w - (&next * glr)?)?)?;
                        // Detached: the buffer is built from the variable itself, and a tracked buffer
                        // would keep every earlier step's graph (and memory) alive.
                        next.detach()
                    }
                });
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

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::{Optimizer, ParamGroup, Rule};
    use crate::ssl::ema::ema_update;
    use candle_cpu_kernels::{inplace, Kernels};

    fn bits(t: &Tensor) -> Vec<u32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f32::to_bits).collect()
    }

    /// Three steps of every rule on a matrix larger than one parallel chunk, a small matrix, a vector
    /// and an all-zero matrix, then EMA updates: parameters, momentum buffers and targets as bits. With
    /// `Kernels::Candle` every update is candle's expression; with `Native`, the in-place kernels.
    fn train(rule: Rule, momentum: f64, weight_decay: f64, kernels: Kernels) -> Vec<Vec<u32>> {
        let cpu = Device::Cpu;
        let shapes: [&[usize]; 4] = [&[3 * inplace::CHUNK / 64 + 7, 64], &[5, 3], &[11], &[2, 2]];
        let vars: Vec<Var> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let n: usize = s.iter().product();
                // Deterministic values of both signs and many magnitudes; the last matrix all zeros.
                let values = (0..n).map(|j| if i == 3 { 0.0 } else { ((j * 7 + i) as f32 * 0.37).sin() * 1.7 }).collect();
                Var::from_vec(values, *s, &cpu).unwrap()
            })
            .collect();
        let targets: Vec<Var> = vars.iter().map(|v| Var::from_tensor(&(v.as_tensor() * 0.5).unwrap()).unwrap()).collect();
        let group = ParamGroup { vars: vars.clone(), base_lr: 0.3, weight_decay };
        let mut opt = Optimizer::new(rule, momentum, vec![group]).with_kernels(kernels);
        for step in 0..3 {
            // L = Σ sin(w): gradients cos(w) of both signs.
            let loss = vars
                .iter()
                .map(|v| v.as_tensor().sin().unwrap().sum_all().unwrap())
                .reduce(|a, b| (a + b).unwrap())
                .unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&grads, |base| base * (1.0 - 0.1 * step as f64)).unwrap();
            ema_update(&targets, &vars, 0.99 - 0.01 * step as f64, kernels).unwrap();
        }
        let buffers = opt.buffers().iter().flatten().flatten().map(bits);
        vars.iter().chain(&targets).map(|v| bits(v.as_tensor())).chain(buffers).collect()
    }

    #[test]
    fn in_place_updates_give_the_bits_of_the_expressions() {
        for (rule, momentum, decay) in [
            (Rule::Sgd, 0.9, 1e-4),
            (Rule::Sgd, 0.9, 0.0),
            (Rule::Sgd, 0.0, 5e-4),
            (Rule::Lars { eta: 0.02, clip: true }, 0.9, 1e-5),
            (Rule::Lars { eta: 0.02, clip: false }, 0.9, 0.0),
        ] {
            let in_place = train(rule, momentum, decay, Kernels::Native);
            let expressions = train(rule, momentum, decay, Kernels::Candle);
            assert_eq!(in_place.len(), 4 + 4 + 4);
            assert!(in_place == expressions, "{rule:?}, momentum {momentum}, decay {decay}");
        }
    }
}
