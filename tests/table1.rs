//! The deep-SSL engine end to end on generated data: a smoke run, determinism, divergence as data, and
//! cells whose data is missing.

use std::path::Path;

use eigenssl::engine::{execute, EngineContext, EngineError};
use eigenssl::harness::store::RunStatus;
use eigenssl::spec::{Experiment, RunConfig};

fn smoke_config(cell: &str) -> RunConfig {
    let exp = Experiment::find("table1", Path::new("experiments")).unwrap();
    exp.runs("smoke", None).unwrap().into_iter().find(|r| r.cell == cell).unwrap().config
}

#[test]
fn a_smoke_run_trains_logs_and_repeats_exactly() {
    let cfg = smoke_config("cifar10/isoloss/no_ema");
    let ctx = EngineContext::default();
    let a = execute(&cfg, 0, &ctx).unwrap();
    assert_eq!(a.status, RunStatus::Ok);
    let acc = a.metrics["readout_top1"];
    assert!((0.0..=100.0).contains(&acc));
    assert_eq!(a.history["readout_top1"].as_array().unwrap().len(), 1);
    assert_eq!(a.history["eigenvalues"][0].as_array().unwrap().len(), 16, "the whole spectrum of C is logged");
    let b = execute(&cfg, 0, &ctx).unwrap();
    for k in ["readout_top1", "final_loss", "eig_max", "participation_ratio"] {
        assert_eq!(a.metrics[k], b.metrics[k], "{k} differs between identical runs");
    }
    let c = execute(&cfg, 1, &ctx).unwrap();
    assert_ne!(a.metrics["final_loss"], c.metrics["final_loss"], "another seed, another run");
}

#[test]
fn a_diverging_run_is_recorded_not_crashed() {
    let RunConfig::Ssl(mut cfg) = smoke_config("cifar10/simsiam/no_ema") else { panic!("ssl") };
    cfg.lr = 1e30;
    let out = execute(&RunConfig::Ssl(cfg), 0, &EngineContext::default()).unwrap();
    assert_eq!(out.status, RunStatus::Diverged);
    assert!(out.metrics.contains_key("diverged_step"), "{:?}", out.metrics);
}

#[test]
fn missing_data_is_not_run_with_where_it_looked() {
    let RunConfig::Ssl(mut cfg) = smoke_config("stl10/isoloss/ema") else { panic!("ssl") };
    cfg.dataset = "stl10".into();
    let dir = tempfile::tempdir().unwrap();
    let ctx = EngineContext { data_dir: dir.path().to_path_buf(), device: "cpu".into() };
    match execute(&RunConfig::Ssl(cfg), 0, &ctx) {
        Err(EngineError::NotRun(msg)) => assert!(msg.contains("no stl10 data found") && msg.contains("stl10_binary"), "{msg}"),
        other => panic!("expected not run, got {other:?}"),
    }
}

#[test]
fn smoke_profile_end_to_end_writes_a_table_with_paper_values() {
    let dir = tempfile::tempdir().unwrap();
    let exp = Experiment::find("table1", Path::new("experiments")).unwrap();
    let opts = eigenssl::harness::ExecOptions {
        jobs: 2,
        progress: false,
        repo_dir: ".".into(),
        engine: EngineContext::default(),
    };
    let out = eigenssl::harness::reproduce(&exp, "smoke", Some(&[0]), dir.path(), false, &opts, &|_| {}).unwrap();
    assert_eq!(out.executed.len(), 10);
    let md = out.outputs.markdown;
    assert!(md.contains("| `cifar10/simsiam/no_ema`") && md.contains("59.9 ± 2.1"), "{md}");
}
