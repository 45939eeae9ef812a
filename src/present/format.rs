//! How numbers read, in one place for every screen and file: `mean ± std (n)`, deltas, p-values and
//! status counts, as the table, the gate's report and the diff print them.

use std::collections::BTreeMap;

use crate::harness::aggregate::Stat;

/// Digits that the gate's report and the diff print (they compare, so they show more than tables).
pub const COMPARE_DIGITS: usize = 4;

/// `mean ± std (n)` with `digits` decimals; `≥ ` marks a lower bound; huge values (a diverged run's last
/// finite eigenvalue) in scientific notation.
///
/// ```
/// use eigenssl::harness::aggregate::Stat;
/// use eigenssl::present::format::stat;
/// let s = Stat::of(&[1.0, 2.0, 3.0]).unwrap();
/// assert_eq!(stat(&s, 2, false), "2.00 ± 1.00 (3)");
/// assert_eq!(stat(&Stat::of(&[4.0]).unwrap(), 1, true), "≥ 4.0 (1)");
/// ```
pub fn stat(s: &Stat, digits: usize, lower_bound: bool) -> String {
    let ge = if lower_bound { "≥ " } else { "" };
    match s.std {
        Some(sd) => format!("{ge}{} ± {} ({})", number(s.mean, digits), number(sd, digits), s.n),
        None => format!("{ge}{} ({})", number(s.mean, digits), s.n),
    }
}

/// [`stat`] rounded to what its spread supports, for tables: the std to two significant digits and the
/// mean to the same place, with at most `max_digits` decimals (and `max_digits` where there is no spread).
///
/// ```
/// use eigenssl::harness::aggregate::Stat;
/// use eigenssl::present::format::stat_by_spread;
/// let s = |v: &[f64]| Stat::of(v).unwrap();
/// assert_eq!(stat_by_spread(&s(&[39.5, 11.9, 11.2, 36.5]), 1, false), "25 ± 15 (4)");
/// assert_eq!(stat_by_spread(&s(&[33.0, 35.2, 34.1]), 1, false), "34.1 ± 1.1 (3)");
/// assert_eq!(stat_by_spread(&s(&[0.004, 0.005]), 2, false), "0.00 ± 0.00 (2)");
/// assert_eq!(stat_by_spread(&s(&[1000.0, 35000.0, 900.0]), 3, false), "12000 ± 20000 (3)");
/// assert_eq!(stat_by_spread(&s(&[2.0, 2.0]), 2, false), "2.00 ± 0.00 (2)");
/// ```
pub fn stat_by_spread(s: &Stat, max_digits: usize, lower_bound: bool) -> String {
    match s.std {
        Some(sd) if sd > 0.0 && sd.is_finite() => {
            // The decimal place of the std's second significant digit.
            let place = sd.log10().floor() as i32 - 1;
            if place <= 0 {
                return stat(s, ((-place) as usize).min(max_digits), lower_bound);
            }
            let unit = 10f64.powi(place);
            let rounded = Stat { mean: (s.mean / unit).round() * unit, std: Some((sd / unit).round() * unit), ..s.clone() };
            stat(&rounded, 0, lower_bound)
        }
        _ => stat(s, max_digits, lower_bound),
    }
}

/// [`stat`] with `—` for a metric that is absent.
pub fn stat_or_dash(s: Option<&Stat>, digits: usize) -> String {
    s.map_or_else(dash, |s| stat(s, digits, false))
}

/// A value with `digits` decimals (scientific notation from 10⁵ on).
pub fn number(v: f64, digits: usize) -> String {
    if v.abs() >= 1e5 { format!("{v:.2e}") } else { format!("{v:.digits$}") }
}

/// The paper's value: `mean ± std` or `mean`.
pub fn reported(mean: f64, std: Option<f64>, digits: usize) -> String {
    match std {
        Some(s) => format!("{mean:.digits$} ± {s:.digits$}"),
        None => format!("{mean:.digits$}"),
    }
}

/// A signed change, `—` when there is none.
pub fn delta(d: Option<f64>) -> String {
    d.map_or_else(dash, |d| format!("{d:+.COMPARE_DIGITS$}"))
}

/// A p-value, `—` when no test applies.
pub fn p_value(p: Option<f64>) -> String {
    p.map_or_else(dash, |p| format!("{p:.3}"))
}

/// `ok 3, diverged 1`; `—` when empty.
pub fn counts(c: &BTreeMap<String, usize>) -> String {
    if c.is_empty() {
        return dash();
    }
    c.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

fn dash() -> String {
    "—".to_string()
}
