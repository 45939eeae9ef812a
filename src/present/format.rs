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
