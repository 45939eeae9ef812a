//! Results of two commits side by side, read straight from git objects (no checkout): every
//! `results/<experiment>/<profile>/summary.json` of each side, cell by cell, with the change and its
//! significance (Welch's t-test on the per-seed values the summaries keep).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

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

/// The markdown diff of two sides, limited to `experiments` when not empty.
pub fn diff(repo: &Path, results_dir: &str, a: &Side, b: &Side, experiments: &[String]) -> Result<String> {
    let sa = summaries(repo, results_dir, a)?;
    let sb = summaries(repo, results_dir, b)?;
    let wanted = |e: &str| experiments.is_empty() || experiments.iter().any(|x| x == e);
    let keys: BTreeSet<(String, String)> = sa.keys().chain(sb.keys()).filter(|k| wanted(&k.0)).cloned().collect();
    let mut out = format!("# diff: {} → {}\n\n", a.label(), b.label());
    for e in experiments {
        for (side, s) in [(a, &sa), (b, &sb)] {
            if !s.keys().any(|k| &k.0 == e) {
                out.push_str(&format!("- {} has no results for experiment `{e}`\n", side.label()));
            }
        }
    }
    for key in keys {
        out.push_str(&format!("\n## {} / {}\n\n", key.0, key.1));
        let (x, y) = (sa.get(&key), sb.get(&key));
        if x.is_none() || y.is_none() {
            let (has, lacks) = if x.is_some() { (a, b) } else { (b, a) };
            out.push_str(&format!("only in {}; {} has no results here.\n", has.label(), lacks.label()));
            continue;
        }
        let (x, y) = (x.expect("checked"), y.expect("checked"));
        let cells = |s: &Summary| -> BTreeMap<String, CellSummary> {
            s.cells.iter().map(|c| (c.cell.clone(), c.clone())).collect()
        };
        let (cx, cy) = (cells(x), cells(y));
        out.push_str(&format!("| cell | metric | {} | {} | delta | p |\n|---|---|---|---|---|---|\n", a.label(), b.label()));
        let ids: BTreeSet<&String> = cx.keys().chain(cy.keys()).collect();
        for id in ids {
            match (cx.get(id), cy.get(id)) {
                (Some(p), Some(q)) => {
                    if p.outcome_counts != q.outcome_counts {
                        out.push_str(&format!(
                            "| `{id}` | outcome | {} | {} | changed | — |\n",
                            format::counts(&p.outcome_counts),
                            format::counts(&q.outcome_counts)
                        ));
                    }
                    let names: BTreeSet<&String> = p.metrics.keys().chain(q.metrics.keys()).collect();
                    for m in names {
                        let (sp, sq) = (p.metrics.get(m), q.metrics.get(m));
                        let (delta, pv) = match (sp, sq) {
                            (Some(u), Some(v)) => (Some(v.mean - u.mean), welch_p(&u.values, &v.values)),
                            _ => (None, None),
                        };
                        out.push_str(&format!(
                            "| `{id}` | {m} | {} | {} | {} | {} |\n",
                            format::stat_or_dash(sp, format::COMPARE_DIGITS),
                            format::stat_or_dash(sq, format::COMPARE_DIGITS),
                            format::delta(delta),
                            format::p_value(pv)
                        ));
                    }
                }
                (Some(_), None) => out.push_str(&format!("| `{id}` | — | present | absent | only in {} | — |\n", a.label())),
                (None, _) => out.push_str(&format!("| `{id}` | — | absent | present | only in {} | — |\n", b.label())),
            }
        }
    }
    Ok(out)
}
