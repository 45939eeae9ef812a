//! Reporting: the markdown table of a summary (mean ± std (n) per metric, outcome counts, the paper's
//! value beside ours), and its compact form for a terminal.

use comfy_table::{presets::ASCII_MARKDOWN, presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};

use super::format::{self, counts};
use crate::harness::aggregate::{CellSummary, Summary};
use crate::spec::{Experiment, MetricSpec};

/// The cell's `mean ± std (n)` of `m`; `≥` marks a lower bound (its `<name>_censored` metric > 0).
pub(crate) fn cell_metric(cell: &CellSummary, m: &MetricSpec) -> String {
    match cell.metrics.get(&m.name) {
        Some(stat) => {
            let censored = cell.metrics.get(&format!("{}_censored", m.name)).is_some_and(|c| c.max > 0.0);
            format::stat_by_spread(stat, m.digits, censored)
        }
        None => "—".to_string(),
    }
}

/// The short status of a cell: its status (or outcome) counts, or "not run: no data" when none of its
/// runs had data (the reason is written once below the table).
pub(crate) fn cell_status(cell: &CellSummary, has_outcomes: bool) -> String {
    match &cell.not_run {
        Some(_) if cell.metrics.is_empty() => "not run: no data".to_string(),
        // A cell with no outcomes (the untrained floor) shows its statuses.
        _ => counts(if has_outcomes && !cell.outcome_counts.is_empty() { &cell.outcome_counts } else { &cell.status_counts }),
    }
}

/// A seed's judged outcome where it has one, else its status.
fn seed_outcome(s: &crate::harness::aggregate::SeedResult) -> &str {
    s.outcome.as_deref().unwrap_or(&s.status)
}

/// Where a cell's seeds split between outcomes (some learned, some collapsed), each seed's outcome, since
/// when, and its headline value — `seed 1: dim_collapsed from epoch 1, readout top-1 11.9` — for the
/// table and the report site alike (a mean ± std of such a cell describes none of its runs); `None`
/// where every seed has the same outcome.
pub(crate) fn split_seeds(exp: &Experiment, cell: &CellSummary) -> Option<Vec<String>> {
    let first = cell.per_seed.first()?;
    if cell.per_seed.iter().all(|s| seed_outcome(s) == seed_outcome(first)) {
        return None;
    }
    let (label, digits) = exp.metrics.first().map_or(("", 1), |m| (m.label.as_str(), m.digits));
    Some(
        cell.per_seed
            .iter()
            .map(|s| {
                let epoch = s.outcome_epoch.map(|e| e as f64).or(s.collapse_epoch);
                let since = epoch.map(|e| format!(" from epoch {e:.0}")).unwrap_or_default();
                let value = s.headline.map(|v| format!(", {label} {v:.digits$}")).unwrap_or_default();
                format!("seed {}: {}{since}{value}", s.seed, seed_outcome(s))
            })
            .collect(),
    )
}

/// Why cells were not run, each distinct reason once.
fn not_run_reasons(summary: &Summary) -> Vec<String> {
    let mut reasons: Vec<String> = Vec::new();
    for why in summary.cells.iter().filter_map(|c| c.not_run.as_ref()) {
        if !reasons.contains(why) {
            reasons.push(why.clone());
        }
    }
    reasons
}

/// The paper's value of a cell, with the digits of the metric it reports.
pub(crate) fn paper_value(exp: &Experiment, cell: &CellSummary) -> String {
    match exp.cell(&cell.cell).and_then(|c| c.paper.as_ref()) {
        Some(p) => {
            let d = exp.metrics.iter().find(|m| m.name == p.metric).map_or(1, |m| m.digits);
            format::reported(p.mean, p.std, d)
        }
        None => "—".to_string(),
    }
}

/// The columns of a terminal: `COLUMNS` where set (as shells and CI logs set it), else the terminal's
/// width; `None` when output goes to a pipe or file (nothing is wrapped then).
pub fn terminal_width() -> Option<u16> {
    std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse().ok()).or_else(|| Table::new().width())
}

/// The summary for a terminal of `width` columns: a table of cell, runs, status, the headline metrics
/// (those with a better direction) and the paper's value where it fits (and always when `width` is
/// `None`: in a pipe or log nothing is wrapped), else the same as a list, one block per cell, so that
/// no number or word is ever split.
pub fn terminal(exp: &Experiment, summary: &Summary, width: Option<u16>) -> String {
    let has_outcomes = summary.cells.iter().any(|c| !c.outcome_counts.is_empty());
    let headline: Vec<&MetricSpec> = exp.metrics.iter().filter(|m| m.better != crate::spec::Better::None).collect();
    let has_paper = exp.cells.iter().any(|c| c.paper.is_some());
    let label = |m: &MetricSpec| if m.unit.is_empty() { m.label.clone() } else { format!("{} ({})", m.label, m.unit) };
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Disabled);
    let mut header = vec!["cell".to_string(), "runs".to_string(), if has_outcomes { "outcome" } else { "status" }.to_string()];
    header.extend(headline.iter().map(|m| label(m)));
    if has_paper {
        header.push("paper".to_string());
    }
    table.set_header(header);
    for cell in &summary.cells {
        // One count per line: the column stays as narrow as its longest count.
        let status = cell_status(cell, has_outcomes).replace(", ", "\n");
        let mut row = vec![cell.cell.clone(), format!("{}/{}", cell.seeds.len(), cell.planned.len()), status];
        row.extend(headline.iter().map(|m| cell_metric(cell, m)));
        if has_paper {
            row.push(paper_value(exp, cell));
        }
        table.add_row(row);
    }
    let wide = table.to_string();
    let fits = width.is_none_or(|w| wide.lines().all(|l| l.chars().count() <= w as usize));
    let title = format!("{} — profile {}", exp.title, summary.profile);
    let mut out = match width {
        Some(w) if !fits => wrap_words(&title, w as usize),
        _ => title,
    };
    out.push('\n');
    if fits {
        out.push_str(&wide);
        out.push('\n');
    } else {
        let pad = headline.iter().map(|m| label(m).chars().count()).chain([5]).max().unwrap_or(0);
        for cell in &summary.cells {
            out.push_str(&format!("\n{} · {}/{} runs · {}\n", cell.cell, cell.seeds.len(), cell.planned.len(), cell_status(cell, has_outcomes)));
            for m in &headline {
                out.push_str(&format!("  {:<pad$}  {}\n", label(m), cell_metric(cell, m)));
            }
            if has_paper {
                out.push_str(&format!("  {:<pad$}  {}\n", "paper", paper_value(exp, cell)));
            }
        }
    }
    for why in not_run_reasons(summary) {
        out.push_str(&format!("not run: {why}\n"));
    }
    out
}

/// `text` broken at spaces into lines of at most `width` characters (a longer word keeps its own line).
fn wrap_words(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines.join("\n")
}

/// The summary as a markdown table, with a header naming the experiment, profile and how to regenerate.
pub fn markdown(exp: &Experiment, summary: &Summary) -> String {
    let prof = exp.profiles.get(&summary.profile);
    let mut table = Table::new();
    table.load_preset(ASCII_MARKDOWN);
    let has_paper = exp.cells.iter().any(|c| c.paper.is_some());
    let mut header = vec!["cell".to_string(), "row".to_string(), "column".to_string(), "runs".to_string()];
    let has_outcomes = summary.cells.iter().any(|c| !c.outcome_counts.is_empty());
    header.push(if has_outcomes { "outcome" } else { "status" }.to_string());
    header.extend(exp.metrics.iter().map(|m| {
        if m.unit.is_empty() { m.label.clone() } else { format!("{} ({})", m.label, m.unit) }
    }));
    if has_paper {
        header.push(exp.paper_column.clone());
    }
    table.set_header(header);
    for cell in &summary.cells {
        let mut row = vec![
            format!("`{}`", cell.cell),
            cell.row.clone(),
            cell.column.clone(),
            format!("{}/{}", cell.seeds.len(), cell.planned.len()),
            cell_status(cell, has_outcomes),
        ];
        row.extend(exp.metrics.iter().map(|m| cell_metric(cell, m)));
        if has_paper {
            row.push(paper_value(exp, cell));
        }
        table.add_row(row);
    }

    let mut out = format!("# {}\n\n", exp.title);
    out.push_str(&format!(
        "Profile `{}`{}. Spec: `{}`. Regenerate with `cargo run --release -- table {} --profile {}`.\n\n",
        summary.profile,
        prof.map(|p| format!(" — {}", p.description.trim_end_matches('.'))).unwrap_or_default(),
        exp.source.display(),
        exp.name,
        summary.profile
    ));
    out.push_str("Each value is mean ± sample std (number of seeds with that metric defined), rounded to what the spread supports (the std to two significant digits).\n\n");
    out.push_str(&table.to_string());
    out.push('\n');
    let reasons = not_run_reasons(summary);
    if !reasons.is_empty() {
        out.push_str("\nNot run (their data is not on the machine that made this table):\n");
        for why in reasons {
            out.push_str(&format!("- {why}\n"));
        }
    }
    let notes: Vec<String> =
        exp.metrics.iter().filter(|m| !m.note.is_empty()).map(|m| format!("- *{}*: {}", m.label, m.note)).collect();
    if !notes.is_empty() {
        out.push_str("\nNotes:\n");
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
    let split: Vec<String> =
        summary.cells.iter().filter_map(|c| split_seeds(exp, c).map(|seeds| format!("- `{}`: {}", c.cell, seeds.join("; ")))).collect();
    if !split.is_empty() {
        out.push_str("\nCells whose seeds split between outcomes (the statistics above include every computed seed):\n");
        out.push_str(&split.join("\n"));
        out.push('\n');
    }
    let failures: Vec<String> = summary
        .cells
        .iter()
        .flat_map(|c| c.failures.iter().map(move |f| format!("- `{}` {f}", c.cell)))
        .collect();
    if !failures.is_empty() {
        out.push_str("\nFailed runs (excluded from the statistics):\n");
        out.push_str(&failures.join("\n"));
        out.push('\n');
    }
    let missing: Vec<String> = summary
        .cells
        .iter()
        .filter(|c| c.seeds.len() < c.planned.len())
        .map(|c| format!("- `{}`: {} of {} seeds not run yet", c.cell, c.planned.len() - c.seeds.len(), c.planned.len()))
        .collect();
    if !missing.is_empty() {
        out.push_str("\nIncomplete cells:\n");
        out.push_str(&missing.join("\n"));
        out.push('\n');
    }
    out
}
