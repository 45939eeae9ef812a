//! Recomputes stored runs and compares each with its record field by field (`eigenssl verify`), so that
//! a committed table can never silently stop coming out of the code. The same comparison tells the gate
//! whether two runs of one seed are identical.

use rand::seq::SliceRandom;
use serde_json::Value;

use super::execute::{for_each_run, run_one};
use super::store::{Provenance, RunRecord, RunStatus, Store};
use crate::engine::{EngineContext, RunControl};
use crate::error::Result;
use crate::spec::{Experiment, Run};

/// Fields that differ between two identical computations: wall-clock timings.
const TIMINGS: &[[&str; 2]] = &[["metrics", "images_per_s"], ["history", "images_per_s"]];

/// How a recomputed record compares with the stored one.
#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    /// Every field equal (provenance and timings aside).
    Identical,
    /// Numbers differ, none by more than the relative tolerance; the largest difference is named.
    WithinTolerance { field: String, relative: f64 },
    /// The first field that differs beyond the tolerance, with both values.
    Changed { field: String, stored: String, now: String },
}

/// A record as plain data without its layout version, provenance and timings: what must come out the same.
pub fn comparable(rec: &RunRecord) -> Value {
    let mut v = serde_json::to_value(rec).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.remove("provenance");
        map.remove("schema");
        map.remove("weights");
        for [section, field] in TIMINGS {
            if let Some(Value::Object(inner)) = map.get_mut(*section) {
                inner.remove(*field);
            }
        }
    }
    v
}

/// Compares two records of one run; numbers within `rtol` (relative) count as equal.
///
/// ```
/// use eigenssl::harness::verify::{first_difference, Match};
/// use serde_json::json;
/// let a = json!({"metrics": {"top1": 50.0, "loss": 1.0}});
/// assert_eq!(first_difference(&a, &a, 0.0), Match::Identical);
/// let b = json!({"metrics": {"top1": 45.0, "loss": 1.0}});
/// assert!(matches!(first_difference(&a, &b, 1e-6), Match::Changed { field, .. } if field == "metrics.top1"));
/// ```
pub fn first_difference(stored: &Value, now: &Value, rtol: f64) -> Match {
    let mut worst: Option<(String, f64)> = None;
    match walk(stored, now, String::new(), rtol, &mut worst) {
        Some((field, a, b)) => Match::Changed { field, stored: a, now: b },
        None => match worst {
            Some((field, relative)) => Match::WithinTolerance { field, relative },
            None => Match::Identical,
        },
    }
}

fn walk(a: &Value, b: &Value, path: String, rtol: f64, worst: &mut Option<(String, f64)>) -> Option<(String, String, String)> {
    let at = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    let show = |v: &Value| {
        let s = v.to_string();
        if s.chars().count() > 80 { format!("{}…", s.chars().take(80).collect::<String>()) } else { s }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(u), Some(v)) => walk(u, v, at(k), rtol, worst),
                (u, v) => Some((at(k), u.map_or("absent".into(), show), v.map_or("absent".into(), show))),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (u, v))| walk(u, v, format!("{path}[{i}]"), rtol, worst))
        }
        (Value::Number(x), Value::Number(y)) if x != y => {
            let (u, v) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            let relative = (u - v).abs() / u.abs().max(v.abs()).max(f64::MIN_POSITIVE);
            if relative <= rtol {
                if worst.as_ref().is_none_or(|(_, w)| relative > *w) {
                    *worst = Some((path, relative));
                }
                None
            } else {
                Some((path, show(a), show(b)))
            }
        }
        _ if a == b => None,
        _ => Some((path, show(a), show(b))),
    }
}

/// True when two runs were computed where the engines promise the same bits: the same engine version,
/// SIMD level, target, device and thread count (and, for deep runs, the same data).
pub fn same_environment(a: &Provenance, b: &Provenance) -> bool {
    a.engine_version == b.engine_version
        && !a.simd.is_empty()
        && a.simd == b.simd
        && a.target == b.target
        && a.device == b.device
        && a.threads == b.threads
        && a.data.as_ref().map(|d| &d.sha256) == b.data.as_ref().map(|d| &d.sha256)
}

/// What verifying one run found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Compared(Match),
    /// No stored record to compare with.
    NotStored,
    /// The recomputation could not run (its data is missing here, or it failed): the reason.
    NotRun(String),
}

/// `k` runs of `runs` chosen deterministically (the same k for the same runs), in run order.
pub fn sample(mut runs: Vec<Run>, k: usize) -> Vec<Run> {
    if k >= runs.len() {
        return runs;
    }
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.shuffle(&mut crate::rng::stream(0, "verify/sample"));
    let mut keep: Vec<usize> = order.into_iter().take(k).collect();
    keep.sort_unstable();
    keep.into_iter().rev().map(|i| runs.swap_remove(i)).collect::<Vec<_>>().into_iter().rev().collect()
}

/// Recomputes the stored runs of `profile` under `out` (or a `sample` of them) in memory, as many at a time
/// as there are cores ([`for_each_run`]), and compares each with its record. Nothing is written.
pub fn verify(exp: &Experiment, profile: &str, out: &std::path::Path, sample_size: Option<usize>, rtol: f64, ctx: &EngineContext) -> Result<Vec<(Run, Verdict)>> {
    let store = Store::new(out, &exp.name, profile);
    let runs = exp.runs(profile, None)?;
    let runs = match sample_size {
        Some(k) => sample(runs, k),
        None => runs,
    };
    let verdicts = for_each_run(&runs, num_cpus::get(), |run, _| match store.load(run) {
        // A record of a run that never computed holds nothing to verify.
        Ok(Some(stored)) if matches!(stored.status, RunStatus::NotRun | RunStatus::Failed) => {
            Verdict::NotRun(format!("its stored record is `{}`: nothing was computed", stored.status.as_str()))
        }
        Ok(Some(stored)) => match run_one(run, ctx, &RunControl::none()) {
            Some(now) if matches!(now.status, RunStatus::NotRun | RunStatus::Failed) && now.status != stored.status => {
                Verdict::NotRun(now.message.unwrap_or_default())
            }
            Some(now) => Verdict::Compared(first_difference(&comparable(&stored), &comparable(&now), rtol)),
            None => Verdict::NotRun("stopped".into()),
        },
        Ok(None) => Verdict::NotStored,
        Err(e) => Verdict::Compared(Match::Changed { field: "record".into(), stored: e.to_string(), now: "—".into() }),
    })?;
    Ok(runs.into_iter().zip(verdicts).collect())
}
