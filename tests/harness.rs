//! The harness end to end on the `smoke` profile: store, skip, force, determinism, recovery, outputs.

use std::path::Path;

use eigenssl::harness::{self, store::Store, ExecOptions};
use eigenssl::spec::Experiment;

fn opts(jobs: usize) -> ExecOptions {
    ExecOptions { jobs, ..Default::default() }
}

fn fig1() -> Experiment {
    Experiment::find("fig1", Path::new("experiments")).unwrap()
}

fn quiet(_: &str) {}

/// Records without provenance (timings differ run to run), keyed by file name.
fn results(out: &Path) -> Vec<(String, serde_json::Value)> {
    let store = Store::new(out, "fig1", "smoke");
    store
        .load_all()
        .unwrap()
        .into_iter()
        .map(|(k, r)| {
            let mut v = serde_json::to_value(&r).unwrap();
            v.as_object_mut().unwrap().remove("provenance");
            (k, v)
        })
        .collect()
}

#[test]
fn reproduce_stores_every_run_and_writes_table_summary_and_figures() {
    let dir = tempfile::tempdir().unwrap();
    let exp = fig1();
    let done = harness::reproduce(&exp, "smoke", None, dir.path(), false, &opts(2), &quiet).unwrap();
    assert_eq!(done.executed.len(), 16);
    assert_eq!(done.skipped, 0);
    eigenssl::present::regenerate(&exp, "smoke", None, dir.path()).unwrap();
    let base = dir.path().join("fig1/smoke");
    assert_eq!(std::fs::read_dir(base.join("runs")).unwrap().count(), 16);
    let table = std::fs::read_to_string(base.join("table.md")).unwrap();
    assert!(table.contains("`eigen/isoloss`") && table.contains("± "), "{table}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["cells"].as_array().unwrap().len(), 8);
    for f in ["fig1.svg", "fig1.png"] {
        let len = std::fs::metadata(base.join(f)).unwrap().len();
        assert!(len > 10_000, "{f} is only {len} bytes");
    }
    let png = std::fs::read(base.join("fig1.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let svg = std::fs::read_to_string(base.join("fig1.svg")).unwrap();
    assert!(svg.contains("SimSiam loss") && svg.contains("step"));
    // No temp files are left behind.
    for d in [base.clone(), base.join("runs")] {
        for e in std::fs::read_dir(d).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(".tmp"), "left over: {name}");
        }
    }
    // `table` regenerates the same table from the stored runs.
    let again = eigenssl::present::regenerate(&exp, "smoke", None, dir.path()).unwrap();
    assert_eq!(again.markdown, table);
}

#[test]
fn rerun_skips_stored_runs_and_force_recomputes_identically() {
    let dir = tempfile::tempdir().unwrap();
    let exp = fig1();
    harness::reproduce(&exp, "smoke", None, dir.path(), false, &opts(2), &quiet).unwrap();
    let first = results(dir.path());
    let again = harness::reproduce(&exp, "smoke", None, dir.path(), false, &opts(2), &quiet).unwrap();
    assert_eq!(again.executed.len(), 0);
    assert_eq!(again.skipped, 16);
    let forced = harness::reproduce(&exp, "smoke", None, dir.path(), true, &opts(1), &quiet).unwrap();
    assert_eq!(forced.executed.len(), 16);
    assert_eq!(results(dir.path()), first, "same spec + seed => same result, whatever the job count");
}

#[test]
fn a_changed_config_or_a_corrupt_record_is_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let exp = fig1();
    harness::reproduce(&exp, "smoke", None, dir.path(), false, &opts(2), &quiet).unwrap();
    let runs = dir.path().join("fig1/smoke/runs");
    // Truncate one record: it is set aside (never deleted) and its run recomputed.
    let victim = runs.join("eigen__simsiam__seed1.json");
    let full = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &full[..full.len() / 2]).unwrap();
    let messages = std::sync::Mutex::new(Vec::new());
    let say = |m: &str| messages.lock().unwrap().push(m.to_string());
    let again = harness::reproduce(&exp, "smoke", None, dir.path(), false, &opts(2), &say).unwrap();
    assert_eq!(again.executed.len(), 1);
    assert!(messages.lock().unwrap().iter().any(|m| m.contains("set aside")));
    let aside = std::fs::read_dir(&runs)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".corrupt-"))
        .count();
    assert_eq!(aside, 1);
    // A different spec (here: other lr) changes every hash, so every run is recomputed.
    let text = std::fs::read_to_string("experiments/fig1.yaml").unwrap().replace("  lr: 0.01\n", "  lr: 0.02\n");
    let changed = Experiment::parse(&text, Path::new("experiments/fig1.yaml")).unwrap();
    let re = harness::reproduce(&changed, "smoke", None, dir.path(), false, &opts(2), &quiet).unwrap();
    assert_eq!(re.executed.len(), 16);
}

#[test]
fn seeds_override_and_incomplete_cells_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let exp = fig1();
    harness::reproduce(&exp, "smoke", Some(&[0]), dir.path(), false, &opts(2), &quiet).unwrap();
    // The profile's own seeds (0, 1): seed 1 is missing, and the table says so.
    let out = eigenssl::present::regenerate(&exp, "smoke", None, dir.path()).unwrap();
    assert!(out.markdown.contains("1 of 2 seeds not run yet"), "{}", out.markdown);
}

#[test]
fn a_seeds_subset_adds_to_the_table_and_never_shrinks_it() {
    let dir = tempfile::tempdir().unwrap();
    let exp = fig1();
    harness::reproduce(&exp, "smoke", None, dir.path(), false, &opts(2), &quiet).unwrap();
    let full = eigenssl::present::regenerate(&exp, "smoke", None, dir.path()).unwrap().markdown;
    // `reproduce --seeds 0` regenerates the table with every stored seed of the profile.
    let subset = eigenssl::present::regenerate(&exp, "smoke", Some(&[0]), dir.path()).unwrap().markdown;
    assert_eq!(subset, full);
    // A seed beyond the profile's joins the table.
    harness::reproduce(&exp, "smoke", Some(&[2]), dir.path(), false, &opts(2), &quiet).unwrap();
    let more = eigenssl::present::regenerate(&exp, "smoke", Some(&[2]), dir.path()).unwrap().markdown;
    assert!(full.contains("| 2/2 ") && more.contains("| 3/3 "), "{full}\n{more}");
}
