//! The guide's spec reference (docs/src/specs.md) against the config types and the committed specs:
//! every field of each engine's config has a row, no row names a field that does not exist, and the
//! value it gives for the spec's `base` is the committed one.

use std::collections::BTreeSet;
use std::path::Path;

use eigenssl::spec::{Experiment, RunConfig};
use eigenssl::ssl::config::SslConfig;
use eigenssl::precision::Precision;
use eigenssl::ssl::Kernels;

/// (field, value column) of every row of the table under the heading that starts with `heading`.
fn rows(heading: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string("docs/src/specs.md").unwrap();
    let section = text.split("\n### ").find(|s| s.starts_with(heading)).unwrap_or_else(|| panic!("no section {heading}"));
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            // Cells are split on " | "; an escaped pipe (`\|`) inside a cell is not a separator.
            let cells: Vec<String> = l.replace("\\|", "\u{1}").split(" | ").map(|c| c.trim_matches(|ch| ch == '|' || ch == ' ').replace('\u{1}', "|")).collect();
            (cells[0].trim_matches('`').to_string(), cells[2].clone())
        })
        .collect()
}

fn check(heading: &str, experiment: &str) {
    let exp = Experiment::find(experiment, Path::new("experiments")).unwrap();
    let run = exp.runs("paper", None).unwrap().remove(0);
    let config = match &run.config {
        RunConfig::Theory(c) => serde_json::to_value(c).unwrap(),
        // `kernels` and `precision` stay out of the serialised config at their defaults (so that old spec hashes hold):
        // set it to the other value to see every field.
        RunConfig::Ssl(c) => serde_json::to_value(SslConfig { kernels: Kernels::Candle, precision: Precision::Tf32, ..c.clone() }).unwrap(),
    };
    let fields: BTreeSet<String> = config.as_object().unwrap().keys().cloned().collect();
    let documented = rows(heading);
    let names: BTreeSet<String> = documented.iter().map(|(f, _)| f.clone()).collect();
    assert_eq!(names, fields, "{heading}: documented fields (left) against the config's (right)");
    let spec: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(format!("experiments/{experiment}.yaml")).unwrap()).unwrap();
    let base = &spec["base"];
    for (field, value) in documented {
        if value == "per cell" {
            assert!(base.get(&field).is_none(), "{field}: documented as per cell, but {experiment}'s base sets it");
            continue;
        }
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(value.trim_matches('`')).unwrap_or_else(|e| panic!("{field}: {value}: {e}"));
        let stored = base.get(&field).unwrap_or_else(|| panic!("{field}: not in {experiment}'s base"));
        let same = match (doc.as_f64(), stored.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => &doc == stored,
        };
        assert!(same, "{field}: the guide says {value}, {experiment}'s base has {stored:?}");
    }
}

#[test]
fn the_theory_field_reference_matches_the_config_and_fig1() {
    check("Theory engine", "fig1");
}

#[test]
fn the_deep_ssl_field_reference_matches_the_config_and_table1() {
    check("Deep-SSL engine", "table1");
}
