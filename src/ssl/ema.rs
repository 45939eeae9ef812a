//! The EMA target network and the schedules of the authors' training loop.

use candle_core::{Result, Var};

/// θ_target ← τ θ_target + (1 − τ) θ_online, parameters only (batch-norm running statistics are not
/// averaged, as in solo-learn's `momentum.py`). Pairs must be in the same order and shape.
pub fn ema_update(target: &[Var], online: &[Var], tau: f64) -> Result<()> {
    if target.len() != online.len() {
        candle_core::bail!("EMA: {} target vars, {} online", target.len(), online.len());
    }
    for (t, o) in target.iter().zip(online) {
        let next = ((t.as_tensor() * tau)? + (o.as_tensor() * (1.0 - tau))?)?;
        t.set(&next)?;
    }
    Ok(())
}

/// τ at step k of K: final − (final − base)(cos(πk/K) + 1)/2 (from base at k = 0 to final at k = K).
///
/// ```
/// use eigenssl::ssl::ema::tau_schedule;
/// assert!((tau_schedule(0.99, 1.0, 0, 100) - 0.99).abs() < 1e-12);
/// assert!((tau_schedule(0.99, 1.0, 100, 100) - 1.0).abs() < 1e-12);
/// assert!((tau_schedule(0.99, 1.0, 50, 100) - 0.995).abs() < 1e-12);
/// ```
pub fn tau_schedule(base: f64, fin: f64, k: usize, total: usize) -> f64 {
    let x = std::f64::consts::PI * k as f64 / total.max(1) as f64;
    fin - (fin - base) * (x.cos() + 1.0) / 2.0
}

/// Linear warm-up from `start` to `base` over `warmup` steps, then cosine decay to 0 at `total`.
///
/// ```
/// use eigenssl::ssl::ema::warmup_cosine;
/// assert_eq!(warmup_cosine(0, 10, 110, 3e-5, 1.0), 3e-5);
/// assert_eq!(warmup_cosine(10, 10, 110, 3e-5, 1.0), 1.0);
/// assert!((warmup_cosine(60, 10, 110, 3e-5, 1.0) - 0.5).abs() < 1e-12);
/// assert!(warmup_cosine(110, 10, 110, 3e-5, 1.0).abs() < 1e-12);
/// ```
pub fn warmup_cosine(step: usize, warmup: usize, total: usize, start: f64, base: f64) -> f64 {
    if step < warmup {
        start + (base - start) * step as f64 / warmup as f64
    } else {
        let span = total.saturating_sub(warmup).max(1) as f64;
        let x = std::f64::consts::PI * (step - warmup).min(total - warmup) as f64 / span;
        base * (1.0 + x.cos()) / 2.0
    }
}
