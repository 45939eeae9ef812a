//! The outputs the README and the guide show are the ones eigenssl produces, so that a regenerated result or
//! a changed message fails here instead of leaving the docs quoting what no longer holds.
//!
//! - Every `mean ± std` the docs quote appears in a committed results table (`results/**/*.md`).
//! - The README's Table 1 `cpu` excerpt shows each cell's per-seed readouts and outcomes as its
//!   `summary.json` stores them.
//! - The sweep header the guide shows is what `reproduce --dry-run` prints, numbers elided. (The live
//!   progress lines below it are not checked: they exist only on a terminal, mid-run.)

use std::path::{Path, PathBuf};
use std::process::Command;

fn markdown_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            markdown_files(&path, found);
        } else if path.extension().is_some_and(|x| x == "md") {
            found.push(path);
        }
    }
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

fn docs() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md")];
    markdown_files(Path::new("docs/src"), &mut files);
    files.sort();
    files
}

/// Each `a ± b` of a text (numbers as written: digits, `.`, `,`, a leading `-` or `≥ `), with its line.
fn quoted_spreads(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for (at, _) in line.match_indices(" ± ") {
            let before = &line[..at];
            let start = before
                .rfind(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                .map_or(0, |i| i + before[i..].chars().next().map_or(1, char::len_utf8));
            let after = &line[at + " ± ".len()..];
            let end = after.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(after.len());
            let (mean, std) = (&before[start..], after[..end].trim_end_matches('.'));
            if mean.chars().any(|c| c.is_ascii_digit()) && std.chars().any(|c| c.is_ascii_digit()) {
                found.push((n + 1, format!("{mean} ± {std}")));
            }
        }
    }
    found
}

#[test]
fn every_quoted_mean_and_spread_is_in_a_committed_table() {
    let mut tables = Vec::new();
    markdown_files(Path::new("results"), &mut tables);
    let committed: String = tables.iter().map(read).collect();
    let mut quoted = 0;
    let mut stale = Vec::new();
    for file in docs() {
        for (line, spread) in quoted_spreads(&read(&file)) {
            quoted += 1;
            if !committed.contains(&spread) {
                stale.push(format!("{}:{line}: {spread}", file.display()));
            }
        }
    }
    assert!(quoted >= 40, "found only {quoted} quoted values: the scan is broken");
    assert!(stale.is_empty(), "quoted in the docs, found in no committed results table:\n{}", stale.join("\n"));
}

#[test]
fn the_scan_finds_numbers_as_the_tables_write_them() {
    let text = "a (IsoLoss 11.0 ± 5.4, SimSiam 25 ± 15) and ≥ 370 ± 100 (2); at -1.477 ± 0.02.";
    let found: Vec<String> = quoted_spreads(text).into_iter().map(|(_, s)| s).collect();
    assert_eq!(found, ["11.0 ± 5.4", "25 ± 15", "370 ± 100", "-1.477 ± 0.02"]);
}

/// The README's rows of the Table 1 `cpu` excerpt: (outcomes per seed, readouts per seed).
fn readme_cpu_rows() -> Vec<(String, String)> {
    let readme = read("README.md");
    let start = readme.find("| cell | outcome per seed |").expect("README: the Table 1 cpu excerpt");
    readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            (cols[2].to_string(), cols[3].to_string())
        })
        .collect()
}

#[test]
fn the_readme_cpu_table_shows_each_seed_as_stored() {
    let summary: serde_json::Value = serde_json::from_str(&read("results/table1/cpu/summary.json")).expect("summary.json");
    let cells = summary["cells"].as_array().expect("cells");
    let mut stored: Vec<(String, String)> = cells
        .iter()
        .map(|cell| {
            let readouts: Vec<String> = cell["metrics"]["readout_top1"]["values"]
                .as_array()
                .expect("readout values")
                .iter()
                .map(|v| format!("{:.1}", v.as_f64().expect("a number")))
                .collect();
            let mut outcomes: Vec<(String, u64)> = cell["outcome_counts"]
                .as_object()
                .map(|o| o.iter().map(|(k, v)| (k.replace("dim_collapsed", "dim. collapsed"), v.as_u64().unwrap_or(0))).collect())
                .unwrap_or_default();
            outcomes.sort();
            let outcomes = if outcomes.is_empty() || cell["cell"].as_str().is_some_and(|c| c.ends_with("untrained")) {
                "—".to_string()
            } else {
                outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
            };
            (outcomes, readouts.join(", "))
        })
        .collect();
    let mut shown = readme_cpu_rows();
    // The README orders a split's outcomes "learned 2, dim. collapsed 2": compare as sets of words.
    let normal = |rows: &mut Vec<(String, String)>| {
        for (outcomes, _) in rows.iter_mut() {
            let mut parts: Vec<&str> = outcomes.split(", ").collect();
            parts.sort();
            *outcomes = parts.join(", ");
        }
        rows.sort();
    };
    normal(&mut stored);
    normal(&mut shown);
    assert_eq!(shown, stored, "README's cpu table (left) against results/table1/cpu/summary.json (right)");
}

/// Digits, and the decimal points between them, as `#`: a line's shape without its measured values.
fn elide_numbers(line: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in line.chars() {
        let digit = c.is_ascii_digit() || (in_number && c == '.');
        if digit && !in_number {
            out.push('#');
        } else if !digit {
            out.push(c);
        }
        in_number = digit;
    }
    out
}

#[test]
fn the_sweep_header_in_the_guide_is_what_reproduce_prints() {
    let guide = read("docs/src/getting-started.md");
    let lines: Vec<&str> = guide.lines().collect();
    let first = lines.iter().position(|l| l.starts_with("table1 / profile ci:")).expect("the guide's captured sweep");
    // The capture was wrapped at the terminal's width: the estimate is its next two lines, joined.
    let shown = [lines[first].to_string(), format!("{} {}", lines[first + 1], lines[first + 2])];

    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_eigenssl"))
        .current_dir(cwd.path())
        .args(["reproduce", "table1", "--profile", "ci", "--jobs", "2", "--dry-run", "--out", "runs"])
        .output()
        .unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{printed}");
    let header = printed.lines().next().unwrap_or_default();
    let estimate = printed.lines().find(|l| l.starts_with("expected time")).unwrap_or_default();
    assert_eq!(shown[0], header, "the guide's sweep header (left) against the binary's");
    assert_eq!(elide_numbers(&shown[1]), elide_numbers(estimate), "the guide's estimate (left) against the binary's, numbers elided");
}

#[test]
fn elision_keeps_the_words() {
    assert_eq!(elide_numbers("about 12 s for the 20 run(s), 2.5 at once"), "about # s for the # run(s), # at once");
}
