//! Spec parsing: bad input names the file, the line and the field.

use std::path::Path;

use eigenssl::spec::{Experiment, RunConfig};

const GOOD: &str = r#"
experiment: t
title: test
engine: theory
seeds: [0, 1]
metrics:
  - { name: final_eig_max, label: "λ max" }
base:
  loss: simsiam
  nonlinearity: linear
  n_in: 6
  n_out: 2
  batch: 100
  sigma: 0.1
  lr: 0.01
  alpha: 1.0
  predictor: closed_form
  sampler: samples
  steps: 10
  init_scale: 0.25
  log_every: 5
  eval_points: 0
  eval_pool: 0
  diverge_above: 1.0e6
  collapse_below: 1.0e-8
  converge_tol: 0.05
cells:
  - { id: a, row: r, column: c }
  - { id: b, row: r, column: c, set: { loss: isoloss } }
profiles:
  paper: { description: full }
  small: { description: small, seeds: [5], set: { steps: 3 } }
"#;

/// 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect("needle present") + 1
}

fn parse(text: &str) -> Result<Experiment, String> {
    Experiment::parse(text, Path::new("experiments/t.yaml")).map_err(|e| e.to_string())
}

#[test]
fn a_valid_spec_resolves_every_profile_and_overlay() {
    let exp = parse(GOOD).unwrap();
    let runs = exp.runs("paper", None).unwrap();
    assert_eq!(runs.len(), 4);
    let small = exp.runs("small", None).unwrap();
    assert_eq!(small.len(), 2);
    assert!(small.iter().all(|r| r.seed == 5));
    let RunConfig::Theory(b) = &small[1].config else { panic!("theory spec") };
    assert_eq!(b.loss, eigenssl::theory::Loss::Isoloss);
    assert_eq!(b.steps, 3, "profile overlays the cell");
    // Hashes differ across cells and seeds, and are stable.
    assert_ne!(runs[0].hash, runs[1].hash);
    assert_eq!(runs[0].hash, parse(GOOD).unwrap().runs("paper", None).unwrap()[0].hash);
    assert_eq!(exp.runs("paper", Some(&[9])).unwrap().len(), 2);
}

#[test]
fn unknown_field_names_file_line_and_field() {
    let bad = GOOD.replace("  - { id: b, row: r, column: c, set: { loss: isoloss } }", "  - { id: b, row: r, column: c, set: { los: isoloss } }");
    let e = parse(&bad).unwrap_err();
    assert!(e.contains("experiments/t.yaml"), "{e}");
    assert!(e.contains("unknown field `los`"), "{e}");
    assert!(e.contains("cells[1].set"), "{e}");
    assert!(e.contains(&format!("line {}", line_of(&bad, "los: isoloss"))), "{e}");
}

#[test]
fn wrong_type_names_line_and_field() {
    let bad = GOOD.replace("  steps: 10\n", "  steps: ten\n");
    let e = parse(&bad).unwrap_err();
    assert!(e.contains("base.steps: invalid type"), "{e}");
    assert!(e.contains(&format!("line {}", line_of(&bad, "steps: ten"))), "{e}");
}

#[test]
fn yaml_syntax_error_names_the_line() {
    let bad = GOOD.replace("seeds: [0, 1]", "seeds: [0, 1");
    let e = parse(&bad).unwrap_err();
    assert!(e.contains("experiments/t.yaml") && e.contains("line"), "{e}");
}

#[test]
fn out_of_range_and_missing_values_are_reported_per_profile_and_cell() {
    let bad = GOOD.replace("  alpha: 1.0\n", "  alpha: -1.0\n");
    let e = parse(&bad).unwrap_err();
    assert!(e.contains("cell `a`") && e.contains("alpha: expected a finite number > 0"), "{e}");
    let missing = GOOD.replace("  sigma: 0.1\n", "");
    let e = parse(&missing).unwrap_err();
    assert!(e.contains("missing field(s) sigma"), "{e}");
}

#[test]
fn duplicate_cells_empty_seeds_and_unknown_profiles_are_errors() {
    let dup = GOOD.replace("{ id: b,", "{ id: a,");
    assert!(parse(&dup).unwrap_err().contains("duplicate id `a`"));
    let empty = GOOD.replace("seeds: [0, 1]", "seeds: []");
    assert!(parse(&empty).unwrap_err().contains("seeds: expected at least one seed"));
    let exp = parse(GOOD).unwrap();
    let e = exp.runs("nope", None).unwrap_err().to_string();
    assert!(e.contains("no profile `nope`") && e.contains("paper, small"), "{e}");
}

#[test]
fn moments_sampler_requires_a_linear_network() {
    let bad = GOOD.replace("  sampler: samples\n", "  sampler: moments\n").replace("nonlinearity: linear", "nonlinearity: relu");
    assert!(parse(&bad).unwrap_err().contains("sampler: `moments` needs nonlinearity `linear`"));
}

#[test]
fn shipped_specs_load() {
    for name in ["fig1", "fig2"] {
        let exp = Experiment::find(name, Path::new("experiments")).unwrap();
        for p in ["paper", "ci", "smoke"] {
            assert!(!exp.runs(p, None).unwrap().is_empty(), "{name}/{p}");
        }
        let e = Experiment::find("nonexistent", Path::new("experiments")).unwrap_err().to_string();
        assert!(e.contains("unknown experiment `nonexistent`") && e.contains("fig1"), "{e}");
    }
}

#[test]
fn a_profile_can_run_a_subset_of_cells() {
    let text = GOOD.replace("  small: { description: small, seeds: [5], set: { steps: 3 } }", "  small: { description: small, seeds: [5], cells: [b], set: { steps: 3 } }");
    let exp = parse(&text).unwrap();
    let runs = exp.runs("small", None).unwrap();
    assert_eq!(runs.iter().map(|r| r.cell.as_str()).collect::<Vec<_>>(), vec!["b"]);
    let bad = GOOD.replace("  small: { description: small, seeds: [5], set: { steps: 3 } }", "  small: { description: small, cells: [zz] }");
    assert!(parse(&bad).unwrap_err().contains("profiles.small.cells: no cell with id `zz`"));
}
