//! The outcome study a profile may declare ([`OutcomeStudy`]): how often each cell's runs learn, by our
//! implementation and by a second one (the PyTorch twin of the authors' code), with exact intervals and
//! tests. This is the analysis ([`study`], plain data in `outcomes.json`); its table is
//! `crate::present::outcomes::markdown`, its figure `crate::plot::outcomes`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::{deep_outcome, DeepOutcome, FloorRole};
use crate::error::{Error, Result};
use super::aggregate::untrained_floors;
use super::store::{RunRecord, RunStatus};
use crate::spec::{OutcomeStudy, Run, RunConfig};
use crate::stats::{clopper_pearson, fisher_exact_p};

/// Our implementation's name in the study.
pub const OURS: &str = "eigenssl";
/// The second implementation's.
pub const TWIN: &str = "twin";
/// The confidence of the learning rates' intervals.
pub const CONFIDENCE: f64 = 0.95;

/// One run's end: judged outcome, final readout top-1 and participation ratio of C.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedPoint {
    pub seed: u64,
    pub outcome: String,
    pub readout_top1: Option<f64>,
    pub participation_ratio: Option<f64>,
}

/// One cell as one implementation ran it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellOutcomes {
    pub cell: String,
    pub implementation: String,
    /// Judged runs, by outcome (`learned`, `dim_collapsed`, `collapsed`, `diverged`).
    pub counts: BTreeMap<String, usize>,
    pub n: usize,
    pub learned: usize,
    /// Exact (Clopper–Pearson) interval of the learning rate; `None` without runs.
    pub rate_interval: Option<(f64, f64)>,
    pub seeds: Vec<SeedPoint>,
}

/// Fisher's exact test of equal learning rates between two groups of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateTest {
    pub what: String,
    pub a: String,
    pub b: String,
    pub learned_a: (usize, usize),
    pub learned_b: (usize, usize),
    pub p: f64,
}

/// The whole study: plain data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Study {
    /// The untrained floor the runs were judged against (readout top-1, %).
    pub floor: Option<f64>,
    pub cells: Vec<CellOutcomes>,
    pub tests: Vec<RateTest>,
    /// Where the twin's records were read from, if the study names one.
    pub twin_dir: Option<String>,
}

/// A record of the PyTorch twin (`bench/torch_twin.py cells`): what the study reads of it.
#[derive(Debug, Clone, Deserialize)]
struct TwinRecord {
    cell: String,
    seed: u64,
    status: RunStatus,
    #[serde(default)]
    collapse_epoch: Option<f64>,
    readout_top1: Option<f64>,
    participation_ratio: Option<f64>,
    history: serde_json::Value,
    config: serde_json::Value,
}

/// What makes a twin run the same protocol as ours: these config fields must agree.
const PROTOCOL: [&str; 11] =
    ["dataset", "width", "train_subset", "test_subset", "batch", "epochs", "warmup_epochs", "loss", "ema", "optimizer", "lr"];

/// Reads the twin's records of `runs` from `dir` (one `*_seed<N>.json` per run); a run whose record is
/// missing is left out, a record of another protocol is an error naming the file and the field.
fn twin_records(dir: &Path, runs: &[Run]) -> Result<Vec<TwinRecord>> {
    let mut out = Vec::new();
    for run in runs {
        let path = dir.join(format!("{}_seed{}.json", run.cell.replace('/', "_"), run.seed));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&path, e)),
        };
        let rec: TwinRecord = serde_json::from_str(&text).map_err(|e| Error::Record { path: path.clone(), msg: e.to_string() })?;
        let ours = match &run.config {
            RunConfig::Ssl(c) => serde_json::to_value(c).map_err(|e| Error::Record { path: path.clone(), msg: e.to_string() })?,
            RunConfig::Theory(_) => continue,
        };
        for key in PROTOCOL {
            let (want, got) = (&ours[key], &rec.config[key]);
            let same = match (want.as_f64(), got.as_f64()) {
                (Some(a), Some(b)) => a == b,
                _ => want == got,
            };
            if !same {
                return Err(Error::Record {
                    path: path.clone(),
                    msg: format!("config.{key}: expected {want} (the profile's protocol), found {got}"),
                });
            }
        }
        if rec.cell != run.cell || rec.seed != run.seed {
            return Err(Error::Record { path, msg: format!("expected cell {} seed {}, found cell {} seed {}", run.cell, run.seed, rec.cell, rec.seed) });
        }
        out.push(rec);
    }
    Ok(out)
}

fn cell_outcomes(cell: &str, implementation: &str, seeds: Vec<SeedPoint>) -> CellOutcomes {
    let mut counts = BTreeMap::new();
    for s in &seeds {
        *counts.entry(s.outcome.clone()).or_insert(0) += 1;
    }
    let learned = counts.get(DeepOutcome::Learned.as_str()).copied().unwrap_or(0);
    CellOutcomes {
        cell: cell.to_string(),
        implementation: implementation.to_string(),
        n: seeds.len(),
        learned,
        rate_interval: clopper_pearson(learned, seeds.len(), CONFIDENCE),
        counts,
        seeds,
    }
}

fn test(what: String, a: &CellOutcomes, b: &CellOutcomes) -> RateTest {
    RateTest {
        what,
        a: a.cell.clone(),
        b: b.cell.clone(),
        learned_a: (a.learned, a.n),
        learned_b: (b.learned, b.n),
        p: fisher_exact_p(a.learned, a.n, b.learned, b.n),
    }
}

/// The study of `runs` (one profile's) as `spec` declares it, from our `records` and the twin's records
/// in `twin_dir` (required where the spec names a twin; a missing folder means no twin runs yet).
pub fn study(spec: &OutcomeStudy, runs: &[Run], records: &BTreeMap<String, RunRecord>, twin_dir: Option<&Path>) -> Result<Study> {
    let floors = untrained_floors(runs, records);
    let judged: Vec<&Run> = runs.iter().filter(|r| matches!(r.config.floor_role(), Some(FloorRole::Judged(_)))).collect();
    let floor_of = |run: &Run| match run.config.floor_role() {
        Some(FloorRole::Judged(d)) => floors.get(&d).copied(),
        _ => None,
    };
    let mut cell_ids: Vec<&str> = Vec::new();
    for r in &judged {
        if !cell_ids.contains(&r.cell.as_str()) {
            cell_ids.push(&r.cell);
        }
    }
    let mut ours: BTreeMap<&str, Vec<SeedPoint>> = BTreeMap::new();
    for run in &judged {
        let Some(rec) = records.get(&run.file_name()).filter(|rec| rec.spec_hash == run.hash) else { continue };
        let Some((o, _)) = deep_outcome(rec.status, &rec.metrics, &rec.history, floor_of(run)) else { continue };
        ours.entry(&run.cell).or_default().push(SeedPoint {
            seed: run.seed,
            outcome: o.as_str().to_string(),
            readout_top1: rec.metrics.get("readout_top1").copied(),
            participation_ratio: rec.metrics.get("participation_ratio").copied(),
        });
    }
    let mut twin: BTreeMap<String, Vec<SeedPoint>> = BTreeMap::new();
    let twin_dir = if spec.twin.is_some() { twin_dir } else { None };
    if let Some(dir) = twin_dir.filter(|d| d.is_dir()) {
        let owned: Vec<Run> = judged.iter().map(|r| (*r).clone()).collect();
        for rec in twin_records(dir, &owned)? {
            let Some(run) = judged.iter().find(|r| r.cell == rec.cell && r.seed == rec.seed) else { continue };
            let mut metrics = BTreeMap::new();
            if let Some(e) = rec.collapse_epoch {
                metrics.insert("collapse_epoch".to_string(), e);
            }
            let Some((o, _)) = deep_outcome(rec.status, &metrics, &rec.history, floor_of(run)) else { continue };
            twin.entry(rec.cell.clone()).or_default().push(SeedPoint {
                seed: rec.seed,
                outcome: o.as_str().to_string(),
                readout_top1: rec.readout_top1,
                participation_ratio: rec.participation_ratio,
            });
        }
    }
    let mut cells = Vec::new();
    let mut tests = Vec::new();
    for id in &cell_ids {
        let a = cell_outcomes(id, OURS, ours.remove(id).unwrap_or_default());
        if spec.twin.is_some() {
            let b = cell_outcomes(id, TWIN, twin.remove(*id).unwrap_or_default());
            tests.push(test(format!("`{id}`: {OURS} vs {TWIN}"), &a, &b));
            cells.push(a);
            cells.push(b);
        } else {
            cells.push(a);
        }
    }
    let implementations: &[&str] = if spec.twin.is_some() { &[OURS, TWIN] } else { &[OURS] };
    for [x, y] in &spec.compare {
        for imp in implementations {
            let find = |id: &str| cells.iter().find(|c| c.cell == id && c.implementation == *imp);
            if let (Some(a), Some(b)) = (find(x), find(y)) {
                tests.push(test(format!("{imp}: `{x}` vs `{y}`"), a, b));
            }
        }
    }
    let floor = (floors.len() == 1).then(|| floors.values().copied().next()).flatten();
    Ok(Study { floor, cells, tests, twin_dir: twin_dir.map(|d| d.display().to_string()) })
}

/// Where the twin's records of a profile live: `<out>/<experiment>/<twin>/`.
pub fn twin_dir(out: &Path, experiment: &str, spec: &OutcomeStudy) -> Option<PathBuf> {
    spec.twin.as_ref().map(|t| out.join(experiment).join(t))
}
