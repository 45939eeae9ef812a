//! Aggregation: per cell, mean and sample standard deviation (n − 1) of every metric over seeds, and
//! counts of statuses and outcomes. The result is plain data (`summary.json`) that compare and diff read.
//! Deep runs' outcomes (learned, dimensionally collapsed, ...) are judged here, against the untrained
//! floor of the profile ([`crate::engine::deep_outcome`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::store::{RunRecord, RunStatus};
use crate::data::DatasetKind;
use crate::engine::{deep_outcome, FloorRole};
use crate::spec::{Experiment, Run};

/// Mean, sample std and count of one metric over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub mean: f64,
    /// Sample standard deviation (n − 1); absent for n < 2.
    pub std: Option<f64>,
    pub n: usize,
    pub min: f64,
    pub max: f64,
    /// Per-seed values, in seed order, so later comparisons can run their own tests.
    pub values: Vec<f64>,
}

impl Stat {
    pub fn of(values: &[f64]) -> Option<Stat> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let (mean, var) = crate::stats::mean_var(values);
        let std = (n >= 2).then(|| var.sqrt());
        Some(Stat {
            mean,
            std,
            n,
            min: values.iter().cloned().fold(f64::INFINITY, f64::min),
            max: values.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            values: values.to_vec(),
        })
    }
}

/// One cell aggregated over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellSummary {
    pub cell: String,
    pub row: String,
    pub column: String,
    /// Seeds the profile plans for this cell.
    pub planned: Vec<u64>,
    /// Seeds with a current record (spec hash matches).
    pub seeds: Vec<u64>,
    pub spec_hashes: Vec<String>,
    pub status_counts: BTreeMap<String, usize>,
    pub outcome_counts: BTreeMap<String, usize>,
    pub metrics: BTreeMap<String, Stat>,
    /// Runs that failed (engine error), with their messages.
    pub failures: Vec<String>,
    /// Why runs were not carried out (their data is not on this machine), if any were not.
    #[serde(default)]
    pub not_run: Option<String>,
    /// Each computed seed's status and headline metric, in seed order (tables list them where a
    /// cell's seeds split between outcomes, e.g. some collapsed).
    #[serde(default)]
    pub per_seed: Vec<SeedResult>,
}

/// One seed of a cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedResult {
    pub seed: u64,
    pub status: String,
    /// The experiment's first metric, where the run has it.
    pub headline: Option<f64>,
    /// The 1-based epoch from whose end on a collapsed run stayed collapsed.
    pub collapse_epoch: Option<f64>,
    /// A deep run's judged outcome ([`crate::engine::DeepOutcome`]), where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The 1-based epoch that outcome dates from (the first of the last stretch below the floor, for
    /// `dim_collapsed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_epoch: Option<usize>,
}

/// Every cell of one experiment under one profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub experiment: String,
    pub profile: String,
    pub title: String,
    pub cells: Vec<CellSummary>,
}

/// The untrained floor of each dataset among `runs`: the mean final readout top-1 of the finished runs
/// that train only the readout on a frozen, untrained backbone.
pub fn untrained_floors(runs: &[Run], records: &BTreeMap<String, RunRecord>) -> BTreeMap<DatasetKind, f64> {
    let mut values: BTreeMap<DatasetKind, Vec<f64>> = BTreeMap::new();
    for run in runs {
        let Some(FloorRole::Floor(dataset)) = run.config.floor_role() else { continue };
        let Some(rec) = records.get(&run.file_name()).filter(|rec| rec.spec_hash == run.hash && rec.status == RunStatus::Ok) else {
            continue;
        };
        if let Some(v) = rec.metrics.get("readout_top1").filter(|v| v.is_finite()) {
            values.entry(dataset).or_default().push(*v);
        }
    }
    values.into_iter().map(|(k, v)| (k, crate::stats::mean_var(&v).0)).collect()
}

/// Aggregates the stored records of `runs` (records whose hash differs from the plan are left out).
pub fn aggregate(exp: &Experiment, profile: &str, runs: &[Run], records: &BTreeMap<String, RunRecord>) -> Summary {
    let floors = untrained_floors(runs, records);
    let mut cells = Vec::new();
    for cell in &exp.cells {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.cell == cell.id).collect();
        if mine.is_empty() {
            continue; // not part of this profile
        }
        let recs: Vec<&RunRecord> = mine
            .iter()
            .filter_map(|r| records.get(&r.file_name()).filter(|rec| rec.spec_hash == r.hash))
            .collect();
        let mut status_counts = BTreeMap::new();
        let mut outcome_counts = BTreeMap::new();
        let mut failures = Vec::new();
        let mut not_run: Option<String> = None;
        let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut per_seed = Vec::new();
        let headline = exp.metrics.first().map(|m| m.name.as_str());
        for rec in &recs {
            *status_counts.entry(rec.status.as_str().to_string()).or_insert(0) += 1;
            if let Some(o) = &rec.outcome {
                *outcome_counts.entry(o.as_str().to_string()).or_insert(0) += 1;
            }
            let judged = match rec.config.floor_role() {
                Some(FloorRole::Judged(dataset)) => deep_outcome(rec.status, &rec.metrics, &rec.history, floors.get(&dataset).copied()),
                _ => None,
            };
            if let Some((o, _)) = judged {
                *outcome_counts.entry(o.as_str().to_string()).or_insert(0) += 1;
            }
            match rec.status {
                RunStatus::Failed => {
                    failures.push(format!("seed {}: {}", rec.seed, rec.message.as_deref().unwrap_or("?")));
                    continue;
                }
                RunStatus::NotRun => {
                    not_run.get_or_insert_with(|| rec.message.clone().unwrap_or_default());
                    continue;
                }
                _ => {}
            }
            per_seed.push(SeedResult {
                seed: rec.seed,
                status: rec.status.as_str().to_string(),
                headline: headline.and_then(|h| rec.metrics.get(h).copied()),
                collapse_epoch: rec.metrics.get("collapse_epoch").copied(),
                outcome: judged.map(|(o, _)| o.as_str().to_string()),
                outcome_epoch: judged.and_then(|(_, e)| e),
            });
            for (k, v) in &rec.metrics {
                if v.is_finite() {
                    values.entry(k.clone()).or_default().push(*v);
                }
            }
        }
        cells.push(CellSummary {
            cell: cell.id.clone(),
            row: cell.row.clone(),
            column: mine.first().map_or_else(|| cell.column.clone(), |r| cell.column_for(&r.config)),
            planned: mine.iter().map(|r| r.seed).collect(),
            seeds: recs.iter().filter(|r| r.status != RunStatus::NotRun).map(|r| r.seed).collect(),
            spec_hashes: recs.iter().map(|r| r.spec_hash.clone()).collect(),
            status_counts,
            outcome_counts,
            metrics: values.iter().filter_map(|(k, v)| Stat::of(v).map(|s| (k.clone(), s))).collect(),
            failures,
            not_run,
            per_seed,
        });
    }
    Summary { experiment: exp.name.clone(), profile: profile.to_string(), title: exp.title.clone(), cells }
}
