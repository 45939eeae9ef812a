//! The SimSiam loss and IsoLoss of the deep networks, in the cosine form the authors trained with and the
//! L2 form of the paper's Eqs. 2 and 8. `z` is the online embedding (with gradient), `wp` the DirectPred
//! predictor (a constant), `t` the target embedding of the other view (detached here again).
//!
//! IsoLoss's defining property: its gradient with respect to z equals the SimSiam loss's gradient with
//! respect to p = W_P z — the W_P factor of the backward pass is skipped, so every eigenmode relaxes at
//! the same rate (paper Sec. 3).

use candle_core::{Result, Tensor, D};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// ½‖W_P z − SG(t)‖² (or its cosine form).
    Simsiam,
    /// ½‖z − SG(t + z − W_P z)‖² (or its cosine form).
    Isoloss,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossForm {
    /// 2 − 2 cos(p, t), batch mean (authors' default).
    Cosine,
    /// ‖p − t‖², batch mean (authors' `use_l2`; the paper's Eq. 2 without its ½).
    L2,
}

fn row_dot(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (a * b)?.sum_keepdim(D::Minus1)
}

fn row_norm(a: &Tensor) -> Result<Tensor> {
    row_dot(a, a)?.sqrt()
}

/// The loss of one direction (online view → target of the other view), a scalar.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use eigenssl::ssl::loss::{directional, LossForm, LossKind};
/// let dev = Device::Cpu;
/// let z = Tensor::new(&[[1f32, 0.], [0., 2.]], &dev).unwrap();
/// let eye = Tensor::eye(2, candle_core::DType::F32, &dev).unwrap();
/// // Perfect prediction: the cosine loss is 0.
/// let l = directional(LossKind::Simsiam, LossForm::Cosine, &z, &eye, &z).unwrap();
/// assert!(l.to_scalar::<f32>().unwrap().abs() < 1e-6);
/// ```
pub fn directional(kind: LossKind, form: LossForm, z: &Tensor, wp: &Tensor, t: &Tensor) -> Result<Tensor> {
    let t = t.detach();
    // W_P is symmetric, so p = z W_P row by row.
    let p = z.matmul(wp)?;
    match (kind, form) {
        (LossKind::Simsiam, LossForm::L2) => (&p - &t)?.sqr()?.sum_keepdim(D::Minus1)?.mean_all(),
        (LossKind::Simsiam, LossForm::Cosine) => {
            let cos = (row_dot(&p, &t)? / (row_norm(&p)? * row_norm(&t)?)?)?;
            (cos.mean_all()? * -2.0)? + 2.0
        }
        (LossKind::Isoloss, LossForm::L2) => {
            let target = ((&t + z)? - &p)?.detach();
            (z - target)?.sqr()?.sum_keepdim(D::Minus1)?.mean_all()
        }
        (LossKind::Isoloss, LossForm::Cosine) => {
            // sim = z·SG(t)/SG(|p||t|) − ½ SG(p·t/(|p|³|t|)) ‖W_P^½ z‖², with ‖W_P^½ z‖² = z·p; its gradient
            // in z is that of the cosine loss in p. The value is not a meaningful loss (authors log it
            // as a negative cosine similarity).
            let (pn, tn) = (row_norm(&p)?.detach(), row_norm(&t)?);
            let first = (row_dot(z, &t)? / (&pn * &tn)?)?;
            let coef = (row_dot(&p, &t)?.detach() / (pn.powf(3.0)? * &tn)?)?;
            let second = (coef * row_dot(z, &p)?)? * 0.5;
            (first - second)?.mean_all()? * -2.0
        }
    }
}

/// The symmetrised loss, as the authors' `training_step` sums it: (view 1 → target of view 0) + (view 0 →
/// target of view 1), each view predicted with its own predictor `wp[v]`.
pub fn symmetric(kind: LossKind, form: LossForm, z: [&Tensor; 2], wp: [&Tensor; 2], t: [&Tensor; 2]) -> Result<Tensor> {
    directional(kind, form, z[1], wp[1], t[0])? + directional(kind, form, z[0], wp[0], t[1])?
}
