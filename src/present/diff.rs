//! Results of two commits side by side, read straight from git objects (no checkout): every
//! `results/<experiment>/<profile>/summary.json` of each side, cell by cell, with the change and its
//! significance (Welch's t-test on the per-seed values the summaries keep); and every run record of each
//! side, so that a record edited or damaged without its summary is named too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::git::{git, git_with_input};
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

/// The two sides of a diff, in one repository.
#[derive(Clone, Copy)]
struct Sides<'a> {
    repo: &'a Path,
    results_dir: &'a str,
    a: &'a Side,
    b: &'a Side,
}

/// Where a run record lies: experiment, profile and file name.
type RecordKey = (String, String, String);

/// The git blob id of every run record (`<experiment>/<profile>/runs/*.json`) of a side under
/// `results_dir`: equal ids, equal bytes.
fn record_blobs(repo: &Path, results_dir: &str, side: &Side) -> Result<BTreeMap<RecordKey, String>> {
    let prefix = format!("{results_dir}/");
    let key = |path: &str| -> Option<RecordKey> {
        let parts: Vec<&str> = path.strip_prefix(&prefix)?.split('/').collect();
        match parts.as_slice() {
            [exp, profile, "runs", file] if file.ends_with(".json") => Some((exp.to_string(), profile.to_string(), file.to_string())),
            _ => None,
        }
    };
    let mut out = BTreeMap::new();
    match side {
        Side::Rev(rev) => {
            for line in git(repo, &["ls-tree", "-r", rev, "--", results_dir])?.lines() {
                // "<mode> blob <id>\t<path>"
                let Some((meta, path)) = line.split_once('\t') else { continue };
                if let (Some(k), Some(id)) = (key(path), meta.split_whitespace().nth(2)) {
                    out.insert(k, id.to_string());
                }
            }
        }
        Side::WorkTree => {
            let mut paths = Vec::new();
            for exp in std::fs::read_dir(repo.join(results_dir)).into_iter().flatten().flatten() {
                for prof in std::fs::read_dir(exp.path()).into_iter().flatten().flatten() {
                    for run in std::fs::read_dir(prof.path().join("runs")).into_iter().flatten().flatten() {
                        let rel = run.path().strip_prefix(repo).map(|p| p.to_string_lossy().into_owned());
                        if let Some(k) = rel.ok().as_deref().and_then(key) {
                            paths.push((k, run.path()));
                        }
                    }
                }
            }
            if paths.is_empty() {
                return Ok(out);
            }
            let list: String = paths.iter().map(|(_, p)| format!("{}\n", p.display())).collect();
            let ids = git_with_input(repo, &["hash-object", "--stdin-paths"], list.as_bytes())?;
            for ((k, _), id) in paths.into_iter().zip(String::from_utf8_lossy(&ids).lines()) {
                out.insert(k, id.to_string());
            }
        }
    }
    Ok(out)
}

/// The bytes of a side's record.
fn record_bytes(repo: &Path, results_dir: &str, side: &Side, key: &RecordKey, blob: &str) -> Result<Vec<u8>> {
    match side {
        Side::Rev(_) => git(repo, &["cat-file", "blob", blob]).map(String::into_bytes),
        Side::WorkTree => {
            let path = repo.join(results_dir).join(&key.0).join(&key.1).join("runs").join(&key.2);
            std::fs::read(&path).map_err(|e| Error::io(path, e))
        }
    }
}

/// `(what, a, b)` for each result field in which two records differ: status, outcome, message, spec
/// hash, every final metric and the history. Empty when only provenance differs (a rerun that agrees).
fn record_changes(x: &[u8], y: &[u8]) -> Vec<(String, String, String)> {
    let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).map_err(|e| format!("unreadable ({e})"));
    let (u, v) = match (parse(x), parse(y)) {
        (Ok(u), Ok(v)) => (u, v),
        (u, v) => {
            let show = |r: std::result::Result<serde_json::Value, String>| r.map_or_else(|e| e, |_| "readable".to_string());
            return vec![("record".to_string(), show(u), show(v))];
        }
    };
    let show = |v: &serde_json::Value| if v.is_null() { "—".to_string() } else { v.to_string() };
    let mut out = Vec::new();
    for field in ["status", "outcome", "message", "spec_hash"] {
        if u[field] != v[field] {
            out.push((field.to_string(), show(&u[field]), show(&v[field])));
        }
    }
    let empty = serde_json::Map::new();
    let (mu, mv) = (u["metrics"].as_object().unwrap_or(&empty), v["metrics"].as_object().unwrap_or(&empty));
    for name in mu.keys().chain(mv.keys()).collect::<BTreeSet<_>>() {
        let (p, q) = (mu.get(name).unwrap_or(&serde_json::Value::Null), mv.get(name).unwrap_or(&serde_json::Value::Null));
        if p != q {
            out.push((format!("metric `{name}`"), show(p), show(q)));
        }
    }
    if u["history"] != v["history"] {
        out.push(("history".to_string(), "…".to_string(), "differs".to_string()));
    }
    out
}

/// Per experiment and profile, the markdown rows of the run records that differ between the sides (or lie
/// on one side only), and how many records differ in provenance alone.
fn record_rows(sides: &Sides) -> Result<BTreeMap<(String, String), (String, usize)>> {
    let Sides { repo, results_dir, a, b } = *sides;
    let (ra, rb) = (record_blobs(repo, results_dir, a)?, record_blobs(repo, results_dir, b)?);
    let mut out: BTreeMap<(String, String), (String, usize)> = BTreeMap::new();
    for key in ra.keys().chain(rb.keys()).collect::<BTreeSet<_>>() {
        let entry = out.entry((key.0.clone(), key.1.clone())).or_default();
        let run = key.2.trim_end_matches(".json");
        match (ra.get(key), rb.get(key)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => {
                let changes = record_changes(&record_bytes(repo, results_dir, a, key, x)?, &record_bytes(repo, results_dir, b, key, y)?);
                entry.1 += usize::from(changes.is_empty());
                for (what, p, q) in changes {
                    entry.0.push_str(&format!("| `{run}` | {what} | {p} | {q} |\n"));
                }
            }
            (Some(_), None) => entry.0.push_str(&format!("| `{run}` | record | present | absent |\n")),
            (None, _) => entry.0.push_str(&format!("| `{run}` | record | absent | present |\n")),
        }
    }
    Ok(out)
}

/// The markdown rows of the cells whose config, outcome counts or metrics differ between two summaries of
/// one experiment and profile (every metric with `opts.all`); counts the cells without a change.
fn summary_rows(sides: &Sides, key: &(String, String), x: &Summary, y: &Summary, opts: &DiffOptions, unchanged: &mut usize) -> String {
    let Sides { repo, results_dir, a, b } = *sides;
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
                *unchanged += usize::from(rows.len() == before);
            }
            (Some(_), None) => rows.push_str(&format!("| `{id}` | — | present | absent | only in {} | — |\n", a.label())),
            (None, _) => rows.push_str(&format!("| `{id}` | — | absent | present | only in {} | — |\n", b.label())),
        }
    }
    rows
}

/// The markdown diff of two sides: per experiment and profile, the cells whose metrics, outcomes or
/// configs changed (every metric with `all`), labelled as the spec labels them.
pub fn diff(repo: &Path, results_dir: &str, a: &Side, b: &Side, opts: &DiffOptions) -> Result<String> {
    let sa = summaries(repo, results_dir, a)?;
    let sb = summaries(repo, results_dir, b)?;
    let wanted = |e: &str| opts.experiments.is_empty() || opts.experiments.iter().any(|x| x == e);
    let sides = Sides { repo, results_dir, a, b };
    let records = record_rows(&sides)?;
    let keys: BTreeSet<(String, String)> = sa.keys().chain(sb.keys()).chain(records.keys()).filter(|k| wanted(&k.0)).cloned().collect();
    let mut out = format!("# diff: {} → {}\n\n", a.label(), b.label());
    for e in &opts.experiments {
        for (side, s) in [(a, &sa), (b, &sb)] {
            if !s.keys().any(|k| &k.0 == e) {
                out.push_str(&format!("- {} has no results for experiment `{e}`\n", side.label()));
            }
        }
    }
    let mut unchanged = 0;
    let mut provenance_only = 0;
    let mut same_profiles = Vec::new();
    for key in keys {
        let (record_changes, reruns) = records.get(&key).cloned().unwrap_or_default();
        provenance_only += reruns;
        let mut section = match (sa.get(&key), sb.get(&key)) {
            (Some(x), Some(y)) => {
                let rows = summary_rows(&sides, &key, x, y, opts, &mut unchanged);
                if rows.is_empty() {
                    rows
                } else {
                    format!("| cell | what | {} | {} | delta | p |\n|---|---|---|---|---|---|\n{rows}", a.label(), b.label())
                }
            }
            (None, None) => String::new(),
            (x, _) => {
                let (has, lacks) = if x.is_some() { (a, b) } else { (b, a) };
                format!("only in {}; {} has no results here.\n", has.label(), lacks.label())
            }
        };
        if !record_changes.is_empty() {
            if !section.is_empty() {
                section.push('\n');
            }
            section.push_str(&format!("Run records that differ:\n\n| run | what | {} | {} |\n|---|---|---|---|\n{record_changes}", a.label(), b.label()));
        }
        if section.is_empty() {
            same_profiles.push(format!("{} / {}", key.0, key.1));
        } else {
            out.push_str(&format!("\n## {} / {}\n\n{section}", key.0, key.1));
        }
    }
    if provenance_only > 0 {
        out.push_str(&format!("\n{provenance_only} run record(s) differ in provenance only (recomputed with the same results).\n"));
    }
    if !same_profiles.is_empty() {
        out.push_str(&format!("\nNo changes in: {}.\n", same_profiles.join(", ")));
    }
    if !opts.all && unchanged > 0 {
        out.push_str(&format!("\n{unchanged} cell(s) without any change are not listed (`--all` lists every metric).\n"));
    }
    Ok(out)
}
