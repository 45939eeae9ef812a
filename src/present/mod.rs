//! Presentation: what a person reads, made from stored runs — the markdown table (`report`), the
//! figures (`crate::plot`), the regression gate's report (`compare`) and results between commits (`diff`).

pub mod compare;
pub mod diff;
pub mod format;
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

/// Re-aggregates the stored runs of `profile` into `summary.json`, `table.md` and the figures.
pub fn regenerate(exp: &Experiment, profile: &str, seeds: Option<&[u64]>, out: &Path) -> Result<Outputs> {
    let runs = exp.runs(profile, seeds)?;
    let store = Store::new(out, &exp.name, profile);
    let records = store.load_all()?;
    let summary = aggregate::aggregate(exp, profile, &runs, &records);
    let summary_path = store.dir.join("summary.json");
    let json = serde_json::to_string_pretty(&summary).map_err(|e| Error::Record {
        path: summary_path.clone(),
        msg: format!("cannot serialise summary: {e}"),
    })?;
    write_atomic(&summary_path, json.as_bytes())?;
    let markdown = report::markdown(exp, &summary);
    let table = store.dir.join("table.md");
    write_atomic(&table, markdown.as_bytes())?;
    let figures = match &exp.figure {
        Some(fig) => crate::plot::draw(exp, fig, &runs, &records, &store.dir)?,
        None => Vec::new(),
    };
    let width = comfy_table::Table::new().width().unwrap_or(100);
    let terminal = report::terminal(exp, &summary, width);
    Ok(Outputs { summary: summary_path, table, figures, markdown, terminal })
}

