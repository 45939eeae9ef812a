//! Results of two commits side by side, read straight from git objects (no checkout): every
//! `results/<experiment>/<profile>/summary.json` of each side, cell by cell, with the change and its
//! significance (Welch's t-test on the per-seed values the summaries keep).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::git::git;
use super::format;
use crate::harness::aggregate::{CellSummary, Summary};
use crate::error::{Error, Result};
use crate::stats::welch_p;

/// Where a side's results come from.
#[derive(Debug, Clone)]
pub enum Side {
    /// A git revision (commit, branch, tag).
    Rev(String),
    /// The working tree, as it is on disk.
    WorkTree,
}

impl Side {
    fn label(&self) -> String {
        match self {
            Side::Rev(r) => format!("`{r}`"),
            Side::WorkTree => "working tree".to_string(),
        }
    }
}

/// Every summary of a side under `results_dir` (relative to the repository root), keyed by
/// (experiment, profile).
pub fn summaries(repo: &Path, results_dir: &str, side: &Side) -> Result<BTreeMap<(String, String), Summary>> {
    let mut out = BTreeMap::new();
    let paths: Vec<String> = match side {
        Side::Rev(rev) => {
            // Resolve first, so a bad revision is a clear error rather than "no results".
            git(repo, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")])
                .map_err(|_| Error::Usage(format!("`{rev}` is not a commit of {}", repo.display())))?;
            git(repo, &["ls-tree", "-r", "--name-only", rev, "--", results_dir])?.lines().map(str::to_string).collect()
        }
        Side::WorkTree => {
            let mut v = Vec::new();
            let root = repo.join(results_dir);
            for exp in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                for prof in std::fs::read_dir(exp.path()).into_iter().flatten().flatten() {
                    let p = prof.path().join("summary.json");
                    if p.exists() {
                        if let Ok(rel) = p.strip_prefix(repo) {
                            v.push(rel.to_string_lossy().into_owned());
                        }
                    }
                }
            }
            v
        }
    };
    for path in paths.iter().filter(|p| p.ends_with("/summary.json")) {
        let parts: Vec<&str> = path.trim_start_matches(&format!("{results_dir}/")).split('/').collect();
        let [exp, profile, "summary.json"] = parts.as_slice() else { continue };
        let text = match side {
            Side::Rev(rev) => git(repo, &["show", &format!("{rev}:{path}")])?,
            Side::WorkTree => std::fs::read_to_string(repo.join(path)).map_err(|e| Error::io(repo.join(path), e))?,
        };
        let summary: Summary = serde_json::from_str(&text).map_err(|e| Error::Record {
            path: format!("{}:{path}", side.label()).into(),
            msg: format!("not a summary: {e}"),
        })?;
        out.insert((exp.to_string(), profile.to_string()), summary);
    }
    Ok(out)
}

/// What [`diff`] shows.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// Only these experiments (all when empty).
    pub experiments: Vec<String>,
    /// Every metric of every cell, moved or not (default: only what changed).
    pub all: bool,
    /// Where the specs are, for the metrics' labels (a metric of no spec shows its name).
    pub specs: PathBuf,
}

/// The stored config of a cell's first run on one side, if a record of it is there.
fn cell_config(repo: &Path, results_dir: &str, side: &Side, exp: &str, profile: &str, cell: &str) -> Option<serde_json::Value> {
    let runs = format!("{results_dir}/{exp}/{profile}/runs");
    let prefix = crate::spec::run_file_name(cell, 0);
    let prefix = prefix.trim_end_matches("0.json");
    let text = match side {
        Side::Rev(rev) => {
            let names = git(repo, &["ls-tree", "--name-only", rev, "--", &format!("{runs}/")]).ok()?;
            let file = names.lines().filter(|n| n.rsplit('/').next().is_some_and(|f| f.starts_with(prefix))).min()?.to_string();
            git(repo, &["show", &format!("{rev}:{file}")]).ok()?
        }
        Side::WorkTree => {
            let dir = repo.join(&runs);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|f| f.to_string_lossy().starts_with(prefix)))
                .collect();
            files.sort();
            std::fs::read_to_string(files.first()?).ok()?
        }
    };
    serde_json::from_str::<serde_json::Value>(&text).ok().map(|v| v["config"].clone())
}

/// `field: a → b` for every config field that differs.
pub(crate) fn config_changes(x: &serde_json::Value, y: &serde_json::Value) -> Vec<String> {
    let (Some(px), Some(py)) = (x["params"].as_object(), y["params"].as_object()) else {
        return if x == y { Vec::new() } else { vec![format!("config: {x} → {y}")] };
    };
    let keys: BTreeSet<&String> = px.keys().chain(py.keys()).collect();
    let show = |v: Option<&serde_json::Value>| v.map_or_else(|| "absent".to_string(), |v| v.to_string());
    keys.into_iter().filter(|k| px.get(*k) != py.get(*k)).map(|k| format!("`{k}`: {} → {}", show(px.get(k)), show(py.get(k)))).collect()
}

/// The markdown diff of two sides: per experiment and profile, the cells whose metrics, outcomes or
/// configs changed (every metric with `all`), labelled as the spec labels them.
pub fn diff(repo: &Path, results_dir: &str, a: &Side, b: &Side, opts: &DiffOptions) -> Result<String> {
    let sa = summaries(repo, results_dir, a)?;
    let sb = summaries(repo, results_dir, b)?;
    let wanted = |e: &str| opts.experiments.is_empty() || opts.experiments.iter().any(|x| x == e);
    let keys: BTreeSet<(String, String)> = sa.keys().chain(sb.keys()).filter(|k| wanted(&k.0)).cloned().collect();
    let mut out = format!("# diff: {} → {}\n\n", a.label(), b.label());
    for e in &opts.experiments {
        for (side, s) in [(a, &sa), (b, &sb)] {
            if !s.keys().any(|k| &k.0 == e) {
                out.push_str(&format!("- {} has no results for experiment `{e}`\n", side.label()));
            }
        }
    }
    let mut unchanged = 0;
    let mut same_profiles = Vec::new();
    for key in keys {
        let (x, y) = (sa.get(&key), sb.get(&key));
        let (Some(x), Some(y)) = (x, y) else {
            let (has, lacks) = if x.is_some() { (a, b) } else { (b, a) };
            out.push_str(&format!("\n## {} / {}\n\nonly in {}; {} has no results here.\n", key.0, key.1, has.label(), lacks.label()));
            continue;
        };
        let spec = crate::spec::Experiment::find(&key.0, &opts.specs).ok();
        let label = |m: &str| {
            spec.as_ref()
                .and_then(|e| e.metrics.iter().find(|s| s.name == m))
                .map_or_else(|| m.to_string(), |s| format!("{} (`{m}`)", s.label))
        };
        let cells = |s: &Summary| -> BTreeMap<String, CellSummary> { s.cells.iter().map(|c| (c.cell.clone(), c.clone())).collect() };
        let (cx, cy) = (cells(x), cells(y));
        let mut rows = String::new();
        let ids: BTreeSet<&String> = cx.keys().chain(cy.keys()).collect();
        for id in ids {
            match (cx.get(id), cy.get(id)) {
                (Some(p), Some(q)) => {
                    let before = rows.len();
                    if let (Some(u), Some(v)) = (cell_config(repo, results_dir, a, &key.0, &key.1, id), cell_config(repo, results_dir, b, &key.0, &key.1, id)) {
                        for change in config_changes(&u, &v) {
                            rows.push_str(&format!("| `{id}` | config | {change} | | | |\n"));
                        }
                    }
                    if p.outcome_counts != q.outcome_counts || p.status_counts != q.status_counts {
                        rows.push_str(&format!(
                            "| `{id}` | status / outcome | {} | {} | changed | — |\n",
                            format::counts(&p.status_counts.iter().chain(&p.outcome_counts).map(|(k, v)| (k.clone(), *v)).collect()),
                            format::counts(&q.status_counts.iter().chain(&q.outcome_counts).map(|(k, v)| (k.clone(), *v)).collect())
                        ));
                    }
                    let names: BTreeSet<&String> = p.metrics.keys().chain(q.metrics.keys()).collect();
                    for m in names {
                        let (sp, sq) = (p.metrics.get(m), q.metrics.get(m));
                        if !opts.all && sp == sq {
                            continue;
                        }
                        let (delta, pv) = match (sp, sq) {
                            (Some(u), Some(v)) => (Some(v.mean - u.mean), welch_p(&u.values, &v.values)),
                            _ => (None, None),
                        };
                        rows.push_str(&format!(
                            "| `{id}` | {} | {} | {} | {} | {} |\n",
                            label(m),
                            format::stat_or_dash(sp, format::COMPARE_DIGITS),
                            format::stat_or_dash(sq, format::COMPARE_DIGITS),
                            format::delta(delta),
                            format::p_value(pv)
                        ));
                    }
                    unchanged += usize::from(rows.len() == before);
                }
                (Some(_), None) => rows.push_str(&format!("| `{id}` | — | present | absent | only in {} | — |\n", a.label())),
                (None, _) => rows.push_str(&format!("| `{id}` | — | absent | present | only in {} | — |\n", b.label())),
            }
        }
        if rows.is_empty() {
            same_profiles.push(format!("{} / {}", key.0, key.1));
        } else {
            out.push_str(&format!("\n## {} / {}\n\n", key.0, key.1));
            out.push_str(&format!("| cell | what | {} | {} | delta | p |\n|---|---|---|---|---|---|\n{rows}", a.label(), b.label()));
        }
    }
    if !same_profiles.is_empty() {
        out.push_str(&format!("\nNo changes in: {}.\n", same_profiles.join(", ")));
    }
    if !opts.all && unchanged > 0 {
        out.push_str(&format!("\n{unchanged} cell(s) without any change are not listed (`--all` lists every metric).\n"));
    }
    Ok(out)
}
