//! Statistics over seeds (mean and variance, Welch's and the paired t-test), the confidence interval of a
//! median (for benchmark rounds) and the rounding of stored histories.

use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, StudentsT};

/// Two-sided p-value of Welch's t-test for equal means of `a` and `b`.
///
/// Edge cases follow what the numbers say: two samples without spread are equal (p = 1) or certainly
/// different (p = 0); with fewer than two values on a side there is no test (`None`).
///
/// ```
/// use eigenssl::stats::welch_p;
/// assert_eq!(welch_p(&[1.0, 1.0], &[1.0, 1.0]), Some(1.0));
/// assert_eq!(welch_p(&[1.0, 1.0], &[2.0, 2.0]), Some(0.0));
/// let p = welch_p(&[1.0, 1.1, 0.9, 1.05], &[2.0, 2.1, 1.9, 2.05]).unwrap();
/// assert!(p < 1e-4);
/// assert!(welch_p(&[1.0], &[2.0, 3.0]).is_none());
/// ```
pub fn welch_p(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (ma, va) = mean_var(a);
    let (mb, vb) = mean_var(b);
    let (sa, sb) = (va / a.len() as f64, vb / b.len() as f64);
    let se2 = sa + sb;
    let diff = ma - mb;
    if se2 <= 0.0 || !se2.is_finite() {
        return Some(if diff == 0.0 { 1.0 } else { 0.0 });
    }
    let t = diff / se2.sqrt();
    // Welch–Satterthwaite degrees of freedom.
    let df = se2 * se2 / (sa * sa / (a.len() - 1) as f64 + sb * sb / (b.len() - 1) as f64);
    let dist = StudentsT::new(0.0, 1.0, df.max(1.0)).ok()?;
    Some((2.0 * (1.0 - dist.cdf(t.abs()))).clamp(0.0, 1.0))
}

/// Two-sided p-value of the paired t-test that the mean of the per-seed differences `d` is 0; `None` for
/// fewer than two pairs. Without spread, equal pairs give 1 and a uniform shift gives 0.
///
/// ```
/// use eigenssl::stats::paired_p;
/// assert_eq!(paired_p(&[-5.0, -5.0, -5.0, -5.0]), Some(0.0));
/// assert_eq!(paired_p(&[0.0, 0.0]), Some(1.0));
/// assert!(paired_p(&[-5.0, -4.0, -6.0, -5.5]).unwrap() < 0.01);
/// ```
pub fn paired_p(d: &[f64]) -> Option<f64> {
    if d.len() < 2 {
        return None;
    }
    let (m, v) = mean_var(d);
    let se = (v / d.len() as f64).sqrt();
    if se <= 0.0 || !se.is_finite() {
        return Some(if m == 0.0 { 1.0 } else { 0.0 });
    }
    let dist = StudentsT::new(0.0, 1.0, (d.len() - 1) as f64).ok()?;
    Some((2.0 * (1.0 - dist.cdf((m / se).abs()))).clamp(0.0, 1.0))
}

/// The smallest mean shift a paired t-test at level `alpha` detects with these `n` per-seed differences'
/// spread: t(1 − α/2, n − 1) · sd / √n. `None` for fewer than two pairs.
pub fn paired_detectable(d: &[f64], alpha: f64) -> Option<f64> {
    if d.len() < 2 {
        return None;
    }
    let (_, v) = mean_var(d);
    let dist = StudentsT::new(0.0, 1.0, (d.len() - 1) as f64).ok()?;
    Some(dist.inverse_cdf(1.0 - alpha / 2.0) * (v / d.len() as f64).sqrt())
}

/// A distribution-free confidence interval of the median of `x`: the order statistics [x₍ₖ₎, x₍ₙ₋ₖ₊₁₎] with
/// the largest k whose coverage 1 − 2·P(B ≤ k − 1), B ~ Binomial(n, ½), is at least `confidence`. `None`
/// when even the whole range covers less (5 values cover 93.75 %, so 95 % needs 6 or more).
///
/// ```
/// use eigenssl::stats::median_interval;
/// let x: Vec<f64> = (1..=9).map(f64::from).collect();
/// // n = 9: k = 2 covers 1 − 2·10/512 = 96.1 %, k = 3 only 82.0 %.
/// assert_eq!(median_interval(&x, 0.95), Some((2.0, 8.0)));
/// assert_eq!(median_interval(&x[..5], 0.95), None);
/// ```
pub fn median_interval(x: &[f64], confidence: f64) -> Option<(f64, f64)> {
    let n = x.len();
    let mut sorted = x.to_vec();
    sorted.sort_by(f64::total_cmp);
    let b = Binomial::new(0.5, n as u64).ok()?;
    let coverage = |k: usize| 1.0 - 2.0 * b.cdf(k as u64 - 1);
    let k = (1..=n.div_ceil(2)).take_while(|&k| coverage(k) >= confidence).last()?;
    Some((sorted[k - 1], sorted[n - k]))
}

/// `v` to 5 significant digits: plenty for figures, and it keeps stored histories small.
///
/// ```
/// assert_eq!(eigenssl::stats::round_sig5(0.123456789), 0.12346);
/// assert!(eigenssl::stats::round_sig5(f64::NAN).is_nan());
/// ```
pub fn round_sig5(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    format!("{v:.4e}").parse().unwrap_or(v)
}

/// Mean and sample variance (n − 1).
pub fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = if x.len() > 1 { x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, v)
}

/// The exact (Clopper–Pearson) two-sided `confidence` interval of a rate observed as `k` successes in `n`
/// trials: the Beta quantiles that bound it. `None` for n = 0.
///
/// ```
/// use eigenssl::stats::clopper_pearson;
/// let (lo, hi) = clopper_pearson(0, 16, 0.95).unwrap();
/// assert_eq!(lo, 0.0);
/// assert!((hi - 0.2059).abs() < 1e-4); // 1 − 0.025^(1/16)
/// let (lo, hi) = clopper_pearson(4, 12, 0.95).unwrap();
/// assert!((lo - 0.0992).abs() < 1e-4 && (hi - 0.6511).abs() < 1e-4);
/// assert!(clopper_pearson(0, 0, 0.95).is_none());
/// ```
pub fn clopper_pearson(k: usize, n: usize, confidence: f64) -> Option<(f64, f64)> {
    use statrs::distribution::Beta;
    if n == 0 || k > n {
        return None;
    }
    let tail = (1.0 - confidence) / 2.0;
    let (k, n) = (k as f64, n as f64);
    let lo = if k == 0.0 { 0.0 } else { Beta::new(k, n - k + 1.0).ok()?.inverse_cdf(tail) };
    let hi = if k == n { 1.0 } else { Beta::new(k + 1.0, n - k).ok()?.inverse_cdf(1.0 - tail) };
    Some((lo, hi))
}

/// Two-sided p-value of Fisher's exact test that two rates are equal: `a` successes of `n_a` against `b`
/// of `n_b`. The p-value sums the probabilities (under the hypergeometric law of the table with these
/// margins) of every table no more probable than the one observed, as R's `fisher.test` does.
///
/// ```
/// use eigenssl::stats::fisher_exact_p;
/// assert!((fisher_exact_p(4, 12, 0, 12) - 0.0932).abs() < 1e-4);
/// assert!((fisher_exact_p(3, 4, 0, 4) - 0.1429).abs() < 1e-4);
/// assert!((fisher_exact_p(2, 4, 2, 4) - 1.0).abs() < 1e-12);
/// ```
pub fn fisher_exact_p(a: usize, n_a: usize, b: usize, n_b: usize) -> f64 {
    let successes = a + b;
    let total = n_a + n_b;
    // log C(n, k), exactly enough for the sizes of a seed study.
    let ln_choose = |n: usize, k: usize| statrs::function::factorial::ln_binomial(n as u64, k as u64);
    let ln_p = |x: usize| ln_choose(n_a, x) + ln_choose(n_b, successes - x) - ln_choose(total, successes);
    let lo = successes.saturating_sub(n_b);
    let hi = successes.min(n_a);
    let observed = ln_p(a);
    let p: f64 = (lo..=hi).map(ln_p).filter(|&l| l <= observed + 1e-7).map(f64::exp).sum();
    p.min(1.0)
}
