//! What a results folder can be trusted for: `verify` verifies only what was computed.

use std::path::Path;

mod common;

use eigenssl::engine::EngineContext;
use eigenssl::harness::verify::{verify, Verdict};
use eigenssl::harness::{self, ExecOptions};
use eigenssl::spec::Experiment;

#[test]
fn verify_counts_records_of_runs_that_never_ran_as_not_verified() {
    common::offline_with_empty_hub_cache();
    let dir = tempfile::tempdir().unwrap();
    let exp = Experiment::find("table1", Path::new("experiments")).unwrap();
    let engine = EngineContext { data_dir: dir.path().join("no-data"), device: eigenssl::device::DeviceKind::Cpu };
    let opts = ExecOptions { jobs: 2, engine: engine.clone(), ..Default::default() };
    let out = dir.path().join("results");
    // A sweep without data stores nothing, so there is nothing to verify.
    let done = harness::reproduce(&exp, "cpu", Some(&[0]), &out, false, &opts, &|_| {}).unwrap();
    assert!(done.executed.is_empty() && !done.not_run.is_empty() && !done.missing_data.is_empty());
    let verdicts = verify(&exp, "cpu", &out, None, 0.0, &engine).unwrap();
    assert!(verdicts.iter().all(|(_, v)| *v == Verdict::NotStored), "{verdicts:?}");
    // A not-run record as earlier versions stored them is counted as not verified, never as identical.
    let runs = out.join("table1/cpu/runs");
    std::fs::create_dir_all(&runs).unwrap();
    let name = "cifar10__simsiam__ema__seed0.json";
    let mut rec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(Path::new("results/table1/cpu/runs").join(name)).unwrap()).unwrap();
    rec["status"] = "not_run".into();
    rec["message"] = "no cifar10 data found".into();
    rec["metrics"] = serde_json::json!({});
    rec["history"] = serde_json::Value::Null;
    std::fs::write(runs.join(name), serde_json::to_string(&rec).unwrap()).unwrap();
    let verdicts = verify(&exp, "cpu", &out, None, 0.0, &engine).unwrap();
    let stored: Vec<_> = verdicts.iter().filter(|(_, v)| *v != Verdict::NotStored).collect();
    assert_eq!(stored.len(), 1, "{verdicts:?}");
    match &stored[0].1 {
        Verdict::NotRun(why) => assert!(why.contains("not_run") && why.contains("nothing was computed"), "{why}"),
        other => panic!("a record of a run that never ran was {other:?}"),
    }
}

#[test]
fn a_record_from_a_newer_eigenssl_is_refused_not_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let exp = Experiment::find("fig2", Path::new("experiments")).unwrap();
    let opts = ExecOptions { jobs: 2, ..Default::default() };
    harness::reproduce(&exp, "smoke", Some(&[0]), dir.path(), false, &opts, &|_| {}).unwrap();
    let runs = dir.path().join("fig2/smoke/runs");
    let victim = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap().path();
    let mut rec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&victim).unwrap()).unwrap();
    rec["schema"] = 99.into();
    rec["a_field_of_the_future"] = true.into();
    rec.as_object_mut().unwrap().remove("metrics");
    std::fs::write(&victim, rec.to_string()).unwrap();
    let err = harness::reproduce(&exp, "smoke", Some(&[0]), dir.path(), false, &opts, &|_| {}).unwrap_err();
    assert!(matches!(err, eigenssl::Error::NewerRecord { schema: 99, .. }), "{err}");
    assert!(err.to_string().contains("made by a newer eigenssl"), "{err}");
    assert!(victim.exists(), "the newer record was moved");
    assert_eq!(std::fs::read_dir(&runs).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("corrupt")).count(), 0);
}
