//! The outcome study's table: how often each cell's runs learn (the analysis is
//! [`crate::harness::outcomes`]), appended to the profile's `table.md`.

use crate::harness::outcomes::{SeedPoint, Study, CONFIDENCE};

fn percent(x: f64) -> String {
    format!("{:.0} %", 100.0 * x)
}

/// The study as a markdown section (appended to the profile's `table.md`).
pub fn markdown(study: &Study) -> String {
    let mut out = String::from("\n## How often a run learns\n\n");
    match study.floor {
        Some(f) => out.push_str(&format!(
            "Judged against the untrained floor, {f:.1} % readout top-1 (the mean of this profile's untrained seeds): a run \
             `learned` when its final readout top-1 is at or above it, is `dim_collapsed` when it ends below it without a \
             complete collapse, `collapsed` when its embeddings collapsed to a point. Intervals: exact (Clopper–Pearson) \
             {:.0} % intervals of the learning rate. Tests: Fisher's exact test (two-sided) of equal learning rates.\n\n",
            100.0 * CONFIDENCE
        )),
        None => out.push_str("No untrained floor in this profile yet: finished runs are not judged.\n\n"),
    }
    let outcomes = ["learned", "dim_collapsed", "collapsed", "diverged"];
    out.push_str("| cell | implementation | runs | learned | dim_collapsed | collapsed | diverged | learning rate (95 % CI) | final readout top-1 (%) per seed | participation ratio of C per seed |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for c in &study.cells {
        let counts: Vec<String> = outcomes.iter().map(|o| c.counts.get(*o).copied().unwrap_or(0).to_string()).collect();
        let rate = match c.rate_interval {
            Some((lo, hi)) => format!("{} ({}–{})", percent(c.learned as f64 / c.n as f64), percent(lo), percent(hi)),
            None => "—".to_string(),
        };
        let list = |f: &dyn Fn(&SeedPoint) -> Option<f64>, digits: usize| {
            let v: Vec<String> = c.seeds.iter().map(|s| f(s).map_or("—".into(), |x| format!("{x:.digits$}"))).collect();
            if v.is_empty() { "—".to_string() } else { v.join(", ") }
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {rate} | {} | {} |\n",
            c.cell,
            c.implementation,
            c.n,
            counts.join(" | "),
            list(&|s| s.readout_top1, 1),
            list(&|s| s.participation_ratio, 1)
        ));
    }
    if !study.tests.is_empty() {
        out.push_str("\n| test | learned | Fisher p |\n|---|---|---|\n");
        for t in &study.tests {
            out.push_str(&format!(
                "| {} | {}/{} vs {}/{} | {:.3} |\n",
                t.what, t.learned_a.0, t.learned_a.1, t.learned_b.0, t.learned_b.1, t.p
            ));
        }
    }
    if let Some(dir) = &study.twin_dir {
        out.push_str(&format!("\nThe twin's records: `{dir}` (`bench/torch_twin.py cells`, on the subset this profile reads).\n"));
    }
    out
}
