//! The regression gate: the runs of a profile against a baseline, cell by cell, direction-aware.
//!
//! Seeds are compared seed by seed, because the engines are deterministic per seed: where a seed was
//! computed in the same environment on both sides (`harness::verify::same_environment`), its records
//! must be identical, and the first differing field is reported as "changed". Otherwise a metric
//! regresses when it moved in its worse direction by more than its minimum effect (from `ci/gate.yaml`)
//! and the paired t-test over seeds says the move is significant at the gate's α (with a single pair, the
//! minimum effect alone decides). Each row says the smallest change the gate can detect with its seeds.
//! Categorical outcomes (status and outcome counts) must match exactly. A cell whose spec hash differs from the baseline's is incomparable:
//! "re-baseline needed", which fails the gate like a regression.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::format::{self, counts};
use crate::harness::aggregate::{aggregate, CellSummary};
use crate::harness::store::{RunRecord, Store};
use crate::error::{Error, Result};
use crate::spec::{Better, Experiment};
use crate::harness::verify::{comparable, first_difference, same_environment, Match};
use crate::stats::{paired_detectable, paired_p};

/// The gate's settings (`ci/gate.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// The profile the gate runs.
    pub profile: String,
    /// Experiments CI gates.
    pub experiments: Vec<String>,
    /// Significance level of the t-test.
    pub alpha: f64,
    /// Minimum effect per metric, in the metric's own units: smaller moves never fail the gate.
    pub min_effect: BTreeMap<String, f64>,
}

impl GateConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: GateConfig =
            serde_yaml_ng::from_str(&text).map_err(|e| Error::Spec { path: path.to_path_buf(), msg: e.to_string() })?;
        if !(0.0..1.0).contains(&cfg.alpha) || cfg.alpha == 0.0 {
            return Err(Error::Spec { path: path.to_path_buf(), msg: "alpha: expected a number in (0, 1)".into() });
        }
        Ok(cfg)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Improved,
    Regressed,
    /// The baseline was made from another spec: re-run `reproduce --force` for the profile and commit.
    RebaselineNeeded,
    /// Runs missing on one side.
    Missing,
    /// Computed in the same environment as the baseline, yet a seed's record differs (the field is named).
    Changed,
}

impl Verdict {
    pub fn fails(self) -> bool {
        matches!(self, Verdict::Regressed | Verdict::RebaselineNeeded | Verdict::Missing | Verdict::Changed)
    }

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Improved => "improved",
            Verdict::Regressed => "**REGRESSED**",
            Verdict::RebaselineNeeded => "**re-baseline needed**",
            Verdict::Missing => "**missing runs**",
            Verdict::Changed => "**CHANGED**",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub cell: String,
    /// A metric name, or `outcome` / `status` / `runs`.
    pub what: String,
    pub baseline: String,
    pub current: String,
    pub delta: Option<f64>,
    pub p: Option<f64>,
    /// The smallest change of this metric the gate detects with these seeds: `Some(0.0)` where seeds are
    /// compared exactly (same environment), else the paired test's bound or the minimum effect.
    #[serde(default)]
    pub detectable: Option<f64>,
    pub verdict: Verdict,
}

/// All rows of one experiment and profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub experiment: String,
    pub profile: String,
    pub baseline_dir: String,
    pub current_dir: String,
    pub rows: Vec<Row>,
}

impl Comparison {
    pub fn failed(&self) -> bool {
        self.rows.iter().any(|r| r.verdict.fails())
    }

    /// How many rows had each verdict, failures first.
    fn verdict_counts(&self) -> String {
        let count = |v: Verdict| self.rows.iter().filter(|r| r.verdict == v).count();
        format!(
            "{} changed, {} regressed, {} re-baseline needed, {} missing, {} improved, {} pass",
            count(Verdict::Changed),
            count(Verdict::Regressed),
            count(Verdict::RebaselineNeeded),
            count(Verdict::Missing),
            count(Verdict::Improved),
            count(Verdict::Pass),
        )
    }

    /// One line: the experiment, profile and how many rows had each verdict.
    pub fn summary_line(&self) -> String {
        format!("{} / {}: {}", self.experiment, self.profile, self.verdict_counts())
    }

    /// The report: every row, failures first in the summary line.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "## compare {} / {}\n\nbaseline `{}` vs current `{}`: {}.\n\n",
            self.experiment,
            self.profile,
            self.baseline_dir,
            self.current_dir,
            self.verdict_counts(),
        );
        out.push_str("Seeds computed in the same environment (engine version, SIMD level, target, device, threads, data) must give identical records; otherwise each metric is compared seed by seed with a paired t-test and must move by more than its minimum effect to fail. *detectable*: the smallest change the gate sees with these seeds (0 = exact).\n\n");
        out.push_str("| cell | what | baseline | current | delta | p | detectable | verdict |\n|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} | {} | {} |\n",
                r.cell,
                r.what,
                r.baseline,
                r.current,
                format::delta(r.delta),
                format::p_value(r.p),
                r.detectable.map_or_else(|| "—".to_string(), |d| format::number(d, format::COMPARE_DIGITS)),
                r.verdict.label()
            ));
        }
        out
    }
}

fn stat_text(c: &CellSummary, metric: &str) -> String {
    format::stat_or_dash(c.metrics.get(metric), format::COMPARE_DIGITS)
}

/// Compares the runs under `current` (a results root) with those under `baseline` (a results root).
pub fn compare(exp: &Experiment, profile: &str, current: &Path, baseline: &Path, gate: &GateConfig) -> Result<Comparison> {
    let runs = exp.runs(profile, None)?;
    let cur_store = Store::new(current, &exp.name, profile);
    let base_store = Store::new(baseline, &exp.name, profile);
    let cur: BTreeMap<String, RunRecord> = cur_store.load_all()?;
    let base: BTreeMap<String, RunRecord> = base_store.load_all()?;
    let cur_sum = aggregate(exp, profile, &runs, &cur);
    let base_sum = aggregate(exp, profile, &runs, &base);
    let mut rows = Vec::new();
    for (c, b) in cur_sum.cells.iter().zip(&base_sum.cells) {
        let Some(cell) = exp.cell(&c.cell) else { continue };
        let row = |what: &str, baseline: String, current: String, verdict| Row {
            cell: cell.id.clone(),
            what: what.to_string(),
            baseline,
            current,
            delta: None,
            p: None,
            detectable: None,
            verdict,
        };
        let mine: Vec<_> = runs.iter().filter(|r| r.cell == cell.id).collect();
        let stale = mine.iter().any(|r| base.get(&r.file_name()).is_some_and(|rec| rec.spec_hash != r.hash));
        if stale {
            rows.push(row("spec", "other spec hash".into(), "current spec".into(), Verdict::RebaselineNeeded));
            continue;
        }
        if b.seeds.len() < mine.len() || c.seeds.len() < mine.len() {
            rows.push(row(
                "runs",
                format!("{}/{}", b.seeds.len(), mine.len()),
                format!("{}/{}", c.seeds.len(), mine.len()),
                Verdict::Missing,
            ));
            continue;
        }
        // Seed by seed: the pairs of records of this cell.
        let pairs: Vec<(&RunRecord, &RunRecord)> =
            mine.iter().filter_map(|r| Some((base.get(&r.file_name())?, cur.get(&r.file_name())?))).collect();
        let exact = !pairs.is_empty() && pairs.iter().all(|(b, c)| same_environment(&b.provenance, &c.provenance));
        if exact {
            for (b, c) in &pairs {
                if let Match::Changed { field, stored, now } = first_difference(&comparable(b), &comparable(c), 0.0) {
                    rows.push(row(&format!("seed {}: {field}", b.seed), stored, now, Verdict::Changed));
                }
            }
        }
        for (what, bc, cc) in [("status", &b.status_counts, &c.status_counts), ("outcome", &b.outcome_counts, &c.outcome_counts)] {
            let verdict = if bc == cc { Verdict::Pass } else { Verdict::Regressed };
            rows.push(row(what, counts(bc), counts(cc), verdict));
        }
        for m in exp.metrics.iter().filter(|m| m.better != Better::None) {
            let (bs, cs) = (b.metrics.get(&m.name), c.metrics.get(&m.name));
            let (bs, cs) = match (bs, cs) {
                (None, None) => continue,
                (Some(bs), Some(cs)) => (bs, cs),
                _ => {
                    rows.push(row(&m.name, stat_text(b, &m.name), stat_text(c, &m.name), Verdict::Regressed));
                    continue;
                }
            };
            let min_effect = *gate.min_effect.get(&m.name).ok_or_else(|| {
                Error::Spec { path: "ci/gate.yaml".into(), msg: format!("min_effect: no entry for metric `{}` of {}", m.name, exp.name) }
            })?;
            let delta = cs.mean - bs.mean;
            let worse = match m.better {
                Better::Higher => delta < 0.0,
                Better::Lower => delta > 0.0,
                Better::None => false,
            };
            let diffs: Vec<f64> =
                pairs.iter().filter_map(|(b, c)| Some(c.metrics.get(&m.name)? - b.metrics.get(&m.name)?)).collect();
            // With fewer than two pairs there is no paired test: the minimum effect alone decides.
            let p = paired_p(&diffs);
            let detectable = if exact {
                0.0
            } else {
                paired_detectable(&diffs, gate.alpha).map_or(min_effect, |d| d.max(min_effect))
            };
            let significant = p.is_none_or(|p| p < gate.alpha);
            let verdict = if exact {
                // Identical records were checked above; equal means are all that is left to say.
                if delta == 0.0 { Verdict::Pass } else if worse { Verdict::Regressed } else { Verdict::Improved }
            } else if delta.abs() <= min_effect || !significant {
                Verdict::Pass
            } else if worse {
                Verdict::Regressed
            } else {
                Verdict::Improved
            };
            rows.push(Row {
                cell: cell.id.clone(),
                what: m.name.clone(),
                baseline: stat_text(b, &m.name),
                current: stat_text(c, &m.name),
                delta: Some(delta),
                p,
                detectable: Some(detectable),
                verdict,
            });
        }
    }
    Ok(Comparison {
        experiment: exp.name.clone(),
        profile: profile.to_string(),
        baseline_dir: base_store.dir.display().to_string(),
        current_dir: cur_store.dir.display().to_string(),
        rows,
    })
}
