//! The schedules of the authors' training loop, per optimiser step: the learning rate (solo-learn's
//! `LinearWarmupCosineAnnealingLR`, stepped every batch) and the EMA target's τ (`MomentumUpdater`).

/// Linear warm-up then cosine decay to 0, as solo-learn's scheduler computes it: every parameter group
/// starts at the same absolute `start` rate and climbs to its own base rate, which it reaches at step
/// `warmup − 1` (the scheduler divides by `warmup − 1`); from step `warmup` on,
/// base · (1 + cos(π (t − warmup)/(total − warmup)))/2.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupCosine {
    pub warmup: usize,
    pub total: usize,
    pub start: f64,
}

impl WarmupCosine {
    /// The rate at step `t` of a group whose base rate is `base`.
    ///
    /// ```
    /// use eigenssl::ssl::schedule::WarmupCosine;
    /// let s = WarmupCosine { warmup: 11, total: 111, start: 3e-5 };
    /// assert_eq!(s.lr(0, 1.0), 3e-5);
    /// assert!((s.lr(10, 1.0) - 1.0).abs() < 1e-12);
    /// assert!((s.lr(61, 1.0) - 0.5).abs() < 1e-12);
    /// assert!(s.lr(111, 1.0).abs() < 1e-12);
    /// // No warm-up: the base rate from the first step.
    /// assert_eq!(WarmupCosine { warmup: 0, total: 10, start: 3e-5 }.lr(0, 0.1), 0.1);
    /// ```
    pub fn lr(&self, t: usize, base: f64) -> f64 {
        if self.warmup > 0 && t < self.warmup {
            if t == 0 {
                return self.start;
            }
            return self.start + (base - self.start) * t as f64 / (self.warmup - 1) as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let x = std::f64::consts::PI * (t - self.warmup).min(span as usize) as f64 / span;
        base * (1.0 + x.cos()) / 2.0
    }
}

/// τ at step k of K: final − (final − base)(cos(πk/K) + 1)/2 (from base at k = 0 to final at k = K).
///
/// ```
/// use eigenssl::ssl::schedule::tau_schedule;
/// assert!((tau_schedule(0.99, 1.0, 0, 100) - 0.99).abs() < 1e-12);
/// assert!((tau_schedule(0.99, 1.0, 100, 100) - 1.0).abs() < 1e-12);
/// assert!((tau_schedule(0.99, 1.0, 50, 100) - 0.995).abs() < 1e-12);
/// ```
pub fn tau_schedule(base: f64, fin: f64, k: usize, total: usize) -> f64 {
    let x = std::f64::consts::PI * k as f64 / total.max(1) as f64;
    fin - (fin - base) * (x.cos() + 1.0) / 2.0
}
