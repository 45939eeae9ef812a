//! Presentation: what a person reads, made from stored runs — the markdown table (`report`), the
//! figures (`crate::plot`), the regression gate's report (`compare`) and results between commits (`diff`).

pub mod compare;
pub mod diff;
pub mod format;
pub mod outcomes;
pub mod report;
pub mod site;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::harness::aggregate;
use crate::harness::store::Store;
use crate::spec::Experiment;

/// Files regenerated from the stored runs.
#[derive(Debug)]
pub struct Outputs {
    pub summary: PathBuf,
    pub table: PathBuf,
    pub figures: Vec<PathBuf>,
    pub markdown: String,
    /// The compact table for a terminal ([`report::terminal`]).
    pub terminal: String,
}

/// The runs a table of `profile` aggregates: its own seeds and any `extra_seeds` besides.
fn table_runs(exp: &Experiment, profile: &str, extra_seeds: Option<&[u64]>) -> Result<Vec<crate::spec::Run>> {
    let mut seeds = exp.profile(profile)?.seeds.clone();
    seeds.extend(extra_seeds.unwrap_or_default());
    exp.runs(profile, Some(&seeds))
}

/// The terminal table of the stored runs of `profile` (its seeds and any `extra_seeds`), aggregated
/// without writing anything: `None` when no run of it is stored.
pub fn terminal_table(exp: &Experiment, profile: &str, extra_seeds: Option<&[u64]>, out: &Path) -> Result<Option<String>> {
    let runs = table_runs(exp, profile, extra_seeds)?;
    let records = Store::new(out, &exp.name, profile).load_all()?;
    if records.is_empty() {
        return Ok(None);
    }
    let summary = aggregate::aggregate(exp, profile, &runs, &records);
    Ok(Some(report::terminal(exp, &summary, report::terminal_width())))
}

/// Re-aggregates the stored runs of `profile` into `summary.json`, `table.md` and the figures: its own
/// seeds and any `extra_seeds` besides (a `--seeds` sweep adds runs to a table, it never shrinks it).
pub fn regenerate(exp: &Experiment, profile: &str, extra_seeds: Option<&[u64]>, out: &Path) -> Result<Outputs> {
    let runs = table_runs(exp, profile, extra_seeds)?;
    let store = Store::new(out, &exp.name, profile);
    let records = store.load_all()?;
    crate::fsutil::remove_stale_temps(&store.dir);
    let summary = aggregate::aggregate(exp, profile, &runs, &records);
    let summary_path = store.dir.join("summary.json");
    let json = serde_json::to_string_pretty(&summary).map_err(|e| Error::Record {
        path: summary_path.clone(),
        msg: format!("cannot serialise summary: {e}"),
    })?;
    write_atomic(&summary_path, json.as_bytes())?;
    let mut markdown = report::markdown(exp, &summary);
    let mut figures = match &exp.figure {
        Some(fig) => crate::plot::draw(exp, fig, &runs, &records, &store.dir)?,
        None => Vec::new(),
    };
    if let Some(spec) = exp.profile(profile)?.outcomes.as_ref() {
        let twin = crate::harness::outcomes::twin_dir(out, &exp.name, spec);
        let study = crate::harness::outcomes::study(spec, &runs, &records, twin.as_deref())?;
        let path = store.dir.join("outcomes.json");
        let json = serde_json::to_string_pretty(&study).map_err(|e| Error::Record { path: path.clone(), msg: format!("cannot serialise: {e}") })?;
        write_atomic(&path, json.as_bytes())?;
        markdown.push_str(&outcomes::markdown(&study));
        let title = format!("How often a run learns — {} [profile: {profile}]", exp.name);
        figures.extend(crate::plot::outcomes(&study, &title, &store.dir)?);
    }
    let table = store.dir.join("table.md");
    write_atomic(&table, markdown.as_bytes())?;
    let terminal = report::terminal(exp, &summary, report::terminal_width());
    Ok(Outputs { summary: summary_path, table, figures, markdown, terminal })
}

