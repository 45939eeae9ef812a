//! Deep runs' outcomes judged against the untrained floor (`ssl::collapse`): learned, dimensionally
//! collapsed, collapsed; counted in summaries and tables; identical runs reused across profiles.

use std::collections::BTreeMap;
use std::path::Path;

use eigenssl::harness::aggregate::{aggregate, untrained_floors};
use eigenssl::harness::store::{RunRecord, RunStatus, Store};
use eigenssl::spec::Experiment;

fn table1() -> Experiment {
    Experiment::find("table1", Path::new("experiments")).unwrap()
}

fn committed_cpu() -> BTreeMap<String, RunRecord> {
    Store::new(Path::new("results"), "table1", "cpu").load_all().unwrap()
}

#[test]
fn the_floor_is_the_mean_final_readout_of_the_untrained_seeds() {
    let exp = table1();
    let runs = exp.runs("cpu", None).unwrap();
    let records = committed_cpu();
    let untrained: Vec<f64> = (0..4)
        .map(|s| records[&format!("cifar10__untrained__seed{s}.json")].metrics["readout_top1"])
        .collect();
    let floors = untrained_floors(&runs, &records);
    let want = untrained.iter().sum::<f64>() / 4.0;
    assert_eq!(floors.len(), 1);
    assert!((floors[&eigenssl::data::DatasetKind::Cifar10] - want).abs() < 1e-12, "{floors:?} vs {want}");
}

#[test]
fn each_trained_run_is_learned_or_dim_collapsed_by_its_last_epoch_against_the_floor() {
    let exp = table1();
    let runs = exp.runs("cpu", None).unwrap();
    let mut records = committed_cpu();
    let floor = untrained_floors(&runs, &records)[&eigenssl::data::DatasetKind::Cifar10];
    // Rewrite one no-EMA run's readout curve: above the floor, then below it from epoch 10 (1-based) on.
    let name = "cifar10__simsiam__no_ema__seed0.json";
    let rec = records.get_mut(name).unwrap();
    let n = rec.history["readout_top1"].as_array().unwrap().len();
    let curve: Vec<f64> = (0..n).map(|e| if e >= 9 { floor - 1.0 } else { floor + 1.0 }).collect();
    rec.history["readout_top1"] = serde_json::json!(curve);
    let summary = aggregate(&exp, "cpu", &runs, &records);
    let cell = summary.cells.iter().find(|c| c.cell == "cifar10/simsiam/no_ema").unwrap();
    let seed0 = cell.per_seed.iter().find(|s| s.seed == 0).unwrap();
    assert_eq!(seed0.outcome.as_deref(), Some("dim_collapsed"));
    assert_eq!(seed0.outcome_epoch, Some(10));
    // Every seed of a trained cell has an outcome, and the counts add up to the seeds.
    for c in summary.cells.iter().filter(|c| c.cell != "cifar10/untrained") {
        assert_eq!(c.outcome_counts.values().sum::<usize>(), c.seeds.len(), "{}: {:?}", c.cell, c.outcome_counts);
        for s in &c.per_seed {
            let below = s.headline.unwrap() < floor;
            let expect = if below { "dim_collapsed" } else { "learned" };
            if !(c.cell == "cifar10/simsiam/no_ema" && s.seed == 0) {
                assert_eq!(s.outcome.as_deref(), Some(expect), "{} seed {}", c.cell, s.seed);
            }
        }
    }
    // The floor cell itself is not judged: it shows its statuses.
    let untrained = summary.cells.iter().find(|c| c.cell == "cifar10/untrained").unwrap();
    assert!(untrained.outcome_counts.is_empty() && untrained.per_seed.iter().all(|s| s.outcome.is_none()));
    let md = eigenssl::present::report::markdown(&exp, &summary);
    assert!(md.contains("| outcome"), "{md}");
    assert!(md.contains("seed 0: dim_collapsed from epoch 10"), "{md}");
}

#[test]
fn collapse_and_divergence_are_outcomes_and_a_profile_without_floor_judges_no_finished_run() {
    let exp = table1();
    let runs: Vec<_> = exp.runs("cpu", None).unwrap();
    let mut records = committed_cpu();
    let rec = records.get_mut("cifar10__isoloss__ema__seed1.json").unwrap();
    rec.status = RunStatus::Collapsed;
    rec.metrics.insert("collapse_epoch".into(), 7.0);
    let summary = aggregate(&exp, "cpu", &runs, &records);
    let cell = summary.cells.iter().find(|c| c.cell == "cifar10/isoloss/ema").unwrap();
    assert_eq!(cell.outcome_counts.get("collapsed"), Some(&1));
    let seed1 = cell.per_seed.iter().find(|s| s.seed == 1).unwrap();
    assert_eq!((seed1.outcome.as_deref(), seed1.outcome_epoch), (Some("collapsed"), Some(7)));
    // Without the untrained cell there is no floor: finished runs are not judged.
    let no_floor: Vec<_> = runs.into_iter().filter(|r| r.cell != "cifar10/untrained").collect();
    let summary = aggregate(&exp, "cpu", &no_floor, &records);
    let cell = summary.cells.iter().find(|c| c.cell == "cifar10/isoloss/ema").unwrap();
    assert_eq!(cell.outcome_counts.len(), 1, "{:?}", cell.outcome_counts);
}

#[test]
fn a_run_another_profile_stored_with_the_same_spec_hash_is_copied_not_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = |_: &str| {};
    let opts = eigenssl::harness::ExecOptions { jobs: 2, ..Default::default() };
    // The smoke profile's untrained cell, seed 0, stored under "smoke"; then the same run asked for by a
    // profile that resolves the cell alike.
    let text = std::fs::read_to_string("experiments/table1.yaml").unwrap().replace(
        "  smoke:\n",
        "  smoke2:\n    description: \"the smoke profile again\"\n    seeds: [0, 1]\n    cells: [cifar10/untrained]\n    set: { dataset: synthetic, width: 0.0625, proj_hidden: 64, proj_out: 16, batch: 64, epochs: 1, warmup_epochs: 0 }\n  smoke:\n",
    );
    let two = Experiment::parse(&text, Path::new("experiments/table1.yaml")).unwrap();
    let first = eigenssl::harness::reproduce(&two, "smoke", Some(&[0]), dir.path(), false, &opts, &quiet).unwrap();
    assert!(!first.executed.is_empty());
    let said = std::sync::Mutex::new(Vec::new());
    let say = |m: &str| said.lock().unwrap().push(m.to_string());
    let second = eigenssl::harness::reproduce(&two, "smoke2", None, dir.path(), false, &opts, &say).unwrap();
    // Seed 0 is copied, seed 1 computed.
    assert_eq!(second.skipped, 1);
    assert_eq!(second.executed.len(), 1);
    assert!(said.lock().unwrap().iter().any(|m| m.contains("1 run(s) copied from")), "{:?}", said.lock().unwrap());
    let a = std::fs::read(dir.path().join("table1/smoke/runs/cifar10__untrained__seed0.json")).unwrap();
    let b = std::fs::read(dir.path().join("table1/smoke2/runs/cifar10__untrained__seed0.json")).unwrap();
    assert_eq!(a, b);
}
