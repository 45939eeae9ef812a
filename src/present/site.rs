//! The report site (`eigenssl report`): static HTML pages made from the stored records and the git
//! history of the results, readable from the file system with no server and no network. Per experiment and
//! profile: the table with the paper's values, the figures (the per-epoch curves of every deep run, seeds
//! overlaid, for Table 1), the headline metric across the commits that changed it, and every run's
//! provenance and resolved config, with the fields that differ from the current spec where its hash moved.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::diff::{config_changes, summaries, Side};
use super::report::{cell_metric, cell_status, paper_value, split_seeds};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::git::git;
use crate::harness::aggregate::Summary;
use crate::harness::store::Store;
use crate::spec::{Better, Experiment};

/// Where the site's inputs are and where it goes.
#[derive(Debug, Clone)]
pub struct SiteOptions {
    /// The repository root (for git history).
    pub repo: PathBuf,
    /// The results folder, relative to `repo`.
    pub results: String,
    pub specs: PathBuf,
    pub out: PathBuf,
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
th{background:#f3f3f3}img{max-width:100%;border:1px solid #ddd;margin:.5em 0}pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:12px}\
code{background:#f3f3f3;padding:0 3px}.changed{color:#a40}tr.seeds td{font-size:12px;color:#555;border-top:none}td.n{white-space:nowrap}";

/// Reports, on the console, any figure that did not load: the site test reads the console.
const CHECK_FIGURES: &str = "<script>window.addEventListener('load',function(){var n=0;\
document.querySelectorAll('img').forEach(function(i){if(!(i.complete&&i.naturalWidth>0)){console.error('figure did not load: '+i.src)}else{n++}});\
document.body.setAttribute('data-figures-loaded',String(n));});</script>";

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>{body}{CHECK_FIGURES}</body></html>\n",
        escape(title)
    )
}

/// Writes the site under `opts.out`; returns the pages written.
pub fn write_site(opts: &SiteOptions) -> Result<Vec<PathBuf>> {
    let all = summaries(&opts.repo, &opts.results, &Side::WorkTree)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    let mut index = String::from("<h1>eigenssl results</h1><p>Made by <code>eigenssl report</code> from the stored run records and the git history of the results.</p><ul>");
    let mut pages = Vec::new();
    for ((name, profile), summary) in &all {
        let exp = Experiment::find(name, &opts.specs)?;
        let file = format!("{name}-{profile}.html");
        index.push_str(&format!("<li><a href=\"{file}\">{} — profile <code>{}</code></a> ({} cells)</li>", escape(&exp.title), escape(profile), summary.cells.len()));
        let body = experiment_page(opts, &exp, profile, summary)?;
        let path = opts.out.join(&file);
        write_atomic(&path, page(&format!("{} — {profile}", exp.title), &body).as_bytes())?;
        pages.push(path);
    }
    index.push_str("</ul>");
    let path = opts.out.join("index.html");
    write_atomic(&path, page("eigenssl results", &index).as_bytes())?;
    pages.insert(0, path);
    Ok(pages)
}

fn experiment_page(opts: &SiteOptions, exp: &Experiment, profile: &str, summary: &Summary) -> Result<String> {
    let mut body = format!("<p><a href=\"index.html\">all results</a></p><h1>{}</h1>", escape(&exp.title));
    if let Some(p) = exp.profiles.get(profile) {
        body.push_str(&format!("<p>Profile <code>{}</code>: {}</p>", escape(profile), escape(&p.description)));
    }
    body.push_str(&table_html(exp, summary));
    let dir = opts.repo.join(&opts.results).join(&exp.name).join(profile);
    body.push_str("<h2>Figures</h2>");
    if let Some(target) = figure(opts, exp, profile, summary)? {
        body.push_str(&format!("<img src=\"{target}\" alt=\"{} figure\">", escape(&exp.name)));
    }
    let outcomes = dir.join("outcomes.svg");
    if outcomes.exists() {
        let target = format!("{}-{profile}-outcomes.svg", exp.name);
        std::fs::copy(&outcomes, opts.out.join(&target)).map_err(|e| Error::io(&outcomes, e))?;
        body.push_str(&format!("<img src=\"{target}\" alt=\"how often a run learns\">"));
    }
    body.push_str(&history_html(opts, exp, profile)?);
    body.push_str(&runs_html(opts, exp, profile)?);
    Ok(body)
}

/// Draws the experiment's figure from the stored records of every seed the summary planned, so the site
/// never depends on a figure file that is regenerated but not committed (those of `ci`); returns the
/// file's name in the site.
fn figure(opts: &SiteOptions, exp: &Experiment, profile: &str, summary: &Summary) -> Result<Option<String>> {
    let Some(fig) = &exp.figure else { return Ok(None) };
    let seeds: Vec<u64> = summary.cells.iter().flat_map(|c| c.planned.iter().copied()).collect();
    let runs = super::table_runs(exp, profile, Some(&seeds))?;
    let records = Store::new(&opts.repo.join(&opts.results), &exp.name, profile).load_all()?;
    if records.is_empty() {
        return Ok(None);
    }
    let scratch = opts.out.join(format!(".figure-{}-{profile}", exp.name));
    let drawn = crate::plot::draw(exp, fig, &runs, &records, &scratch)?;
    let target = format!("{}-{profile}.svg", exp.name);
    let svg = drawn.iter().find(|p| p.extension().is_some_and(|e| e == "svg"));
    if let Some(svg) = svg {
        std::fs::rename(svg, opts.out.join(&target)).map_err(|e| Error::io(svg, e))?;
    }
    std::fs::remove_dir_all(&scratch).map_err(|e| Error::io(&scratch, e))?;
    Ok(svg.map(|_| target))
}

fn table_html(exp: &Experiment, summary: &Summary) -> String {
    let has_outcomes = summary.cells.iter().any(|c| !c.outcome_counts.is_empty());
    let mut t = String::from("<table><tr><th>cell</th><th>row</th><th>column</th><th>runs</th><th>status</th>");
    for m in &exp.metrics {
        t.push_str(&format!("<th>{}{}</th>", escape(&m.label), if m.unit.is_empty() { String::new() } else { format!(" ({})", escape(&m.unit)) }));
    }
    t.push_str(&format!("<th>{}</th></tr>", escape(&exp.paper_column)));
    for cell in &summary.cells {
        t.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td>",
            escape(&cell.cell),
            escape(&cell.row),
            escape(&cell.column),
            cell.seeds.len(),
            cell.planned.len(),
            escape(&cell_status(cell, has_outcomes))
        ));
        for m in &exp.metrics {
            t.push_str(&format!("<td class=\"n\">{}</td>", escape(&cell_metric(cell, m))));
        }
        t.push_str(&format!("<td class=\"n\">{}</td></tr>", escape(&paper_value(exp, cell))));
        // Seeds that split between outcomes: each one beside the mean, which describes none of them.
        if let Some(seeds) = split_seeds(exp, cell) {
            let columns = 6 + exp.metrics.len();
            t.push_str(&format!("<tr class=\"seeds\"><td></td><td colspan=\"{}\">seeds split: {}</td></tr>", columns - 1, escape(&seeds.join("; "))));
        }
    }
    t.push_str("</table><p>mean ± sample std (number of seeds), rounded to what the spread supports; where a cell's seeds split between outcomes, each seed below it.</p>");
    t
}

/// The headline metric's per-cell mean in every commit that changed this profile's summary.
fn history_html(opts: &SiteOptions, exp: &Experiment, profile: &str) -> Result<String> {
    let Some(metric) = exp.metrics.iter().find(|m| m.better != Better::None) else { return Ok(String::new()) };
    let path = format!("{}/{}/{profile}/summary.json", opts.results, exp.name);
    let log = git(&opts.repo, &["log", "--format=%H", "--reverse", "--", &path]).unwrap_or_default();
    let commits: Vec<String> = log.lines().map(str::to_string).collect();
    if commits.is_empty() {
        return Ok(String::new());
    }
    let mut series: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    for (i, c) in commits.iter().enumerate() {
        let Ok(text) = git(&opts.repo, &["show", &format!("{c}:{path}")]) else { continue };
        let Ok(s) = serde_json::from_str::<Summary>(&text) else { continue };
        for cell in &s.cells {
            let v = series.entry(cell.cell.clone()).or_insert_with(|| vec![None; commits.len()]);
            v[i] = cell.metrics.get(&metric.name).map(|st| st.mean);
        }
    }
    let file = format!("{}-{profile}-history.svg", exp.name);
    let title = format!("{}: {} per commit", exp.name, metric.label);
    let series: Vec<(String, Vec<Option<f64>>)> = series.into_iter().collect();
    crate::plot::metric_history_svg(&opts.out.join(&file), &title, &commits, &series)?;
    Ok(format!(
        "<h2>{} across commits</h2><p>Mean over seeds in each of the {} commits that changed <code>{}</code> (oldest first).</p><img src=\"{file}\" alt=\"history\">",
        escape(&metric.label),
        commits.len(),
        escape(&path)
    ))
}

/// Every stored run: status, headline metrics, provenance and resolved config; where the current spec's
/// hash differs from the record's, the config fields that differ.
fn runs_html(opts: &SiteOptions, exp: &Experiment, profile: &str) -> Result<String> {
    let store = Store::new(&opts.repo.join(&opts.results), &exp.name, profile);
    let records = store.load_all()?;
    let current: BTreeMap<String, crate::spec::Run> = exp.runs(profile, None).map(|r| r.into_iter().map(|r| (r.file_name(), r)).collect()).unwrap_or_default();
    let mut out = format!("<h2>Runs ({})</h2>", records.len());
    for (file, rec) in &records {
        let headline: Vec<String> = exp
            .metrics
            .iter()
            .filter(|m| m.better != Better::None)
            .filter_map(|m| rec.metrics.get(&m.name).map(|v| format!("{} {v:.4}", m.name)))
            .collect();
        out.push_str(&format!("<details><summary><code>{}</code> seed {} — {} {}</summary>", escape(&rec.cell), rec.seed, rec.status.as_str(), escape(&headline.join(", "))));
        if let Some(run) = current.get(file).filter(|r| r.hash != rec.spec_hash) {
            let now = serde_json::to_value(&run.config).unwrap_or_default();
            let stored = serde_json::to_value(&rec.config).unwrap_or_default();
            let changes = config_changes(&stored, &now);
            out.push_str(&format!("<p class=\"changed\">The spec's hash for this run moved (stored {} → current {}); config fields that differ:</p><ul>", escape(&rec.spec_hash), escape(&run.hash)));
            for c in changes {
                out.push_str(&format!("<li>{}</li>", escape(&c)));
            }
            out.push_str("</ul>");
        }
        let pretty = |v: serde_json::Value| serde_json::to_string_pretty(&v).unwrap_or_default();
        out.push_str(&format!(
            "<p>provenance</p><pre>{}</pre><p>resolved config</p><pre>{}</pre></details>",
            escape(&pretty(serde_json::to_value(&rec.provenance).unwrap_or_default())),
            escape(&pretty(serde_json::to_value(&rec.config).unwrap_or_default()))
        ));
    }
    Ok(out)
}
