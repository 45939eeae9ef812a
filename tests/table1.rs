//! The deep-SSL engine end to end on generated data: a smoke run, determinism, divergence as data, and
//! cells whose data is missing.

use std::path::Path;

mod common;

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
    common::offline_with_empty_hub_cache();
    let RunConfig::Ssl(mut cfg) = smoke_config("stl10/isoloss/ema") else { panic!("ssl") };
    cfg.dataset = eigenssl::data::DatasetKind::Stl10;
    let dir = tempfile::tempdir().unwrap();
    let ctx = EngineContext { data_dir: dir.path().to_path_buf(), device: eigenssl::device::DeviceKind::Cpu };
    match execute(&RunConfig::Ssl(cfg), 0, &ctx) {
        Err(EngineError::NotRun(msg)) => assert!(msg.contains("no stl10 data found") && msg.contains("stl10_binary"), "{msg}"),
        other => panic!("expected not run, got {other:?}"),
    }
}

#[test]
fn smoke_profile_end_to_end_writes_a_table_with_paper_values() {
    let dir = tempfile::tempdir().unwrap();
    let exp = Experiment::find("table1", Path::new("experiments")).unwrap();
    let opts = eigenssl::harness::ExecOptions { jobs: 2, ..Default::default() };
    let out = eigenssl::harness::reproduce(&exp, "smoke", Some(&[0]), dir.path(), false, &opts, &|_| {}).unwrap();
    assert_eq!(out.executed.len(), 10);
    let md = eigenssl::present::regenerate(&exp, "smoke", Some(&[0]), dir.path()).unwrap().markdown;
    assert!(md.contains("| `cifar10/simsiam/no_ema`") && md.contains("59.9 ± 2.1"), "{md}");
}

/// Trains `cfg` for seed 0 with a checkpoint file, stopping at the `stop_at`-th poll (never if 0).
fn train_until(cfg: &eigenssl::ssl::config::SslConfig, ck: &Path, stop_at: usize) -> eigenssl::ssl::train::SslResult {
    use eigenssl::ssl::train::{train, TrainControl};
    let polls = std::cell::Cell::new(0);
    let stop = || {
        polls.set(polls.get() + 1);
        polls.get() == stop_at
    };
    let ctl = TrainControl { checkpoint: Some(ck), tag: "resume-test", stop: &stop, notice: &|m| assert!(m.starts_with("resuming from"), "{m}"), progress: &|_| {}, weights: None };
    train(cfg, 0, &eigenssl::data::synthetic(), &candle_core::Device::Cpu, &ctl).unwrap()
}

/// Everything but timings.
fn without_timings(r: &eigenssl::ssl::train::SslResult) -> (std::collections::BTreeMap<String, f64>, eigenssl::ssl::train::SslHistory) {
    let mut m = r.metrics.clone();
    m.remove("images_per_s");
    let mut h = r.history.clone();
    h.images_per_s.clear();
    (m, h)
}

#[test]
fn an_interrupted_run_resumes_to_the_same_result_bit_for_bit() {
    use eigenssl::ssl::train::SslOutcome;
    // 10 steps per epoch; a warm-up epoch, so the schedules' positions matter too.
    for cell in ["cifar10/simsiam/ema", "cifar10/isoloss/no_ema"] {
        let RunConfig::Ssl(mut cfg) = smoke_config(cell) else { panic!("ssl") };
        cfg.epochs = 3;
        cfg.warmup_epochs = 1;
        let dir = tempfile::tempdir().unwrap();
        let whole = train_until(&cfg, &dir.path().join("a.safetensors"), 0);
        assert_eq!(whole.outcome, SslOutcome::Finished);

        let ck = dir.path().join("b.safetensors");
        // Stopped mid-epoch (after 4 batches of epoch 1) ...
        let first = train_until(&cfg, &ck, 4);
        assert_eq!(first.outcome, SslOutcome::Interrupted { epoch: 0, batch: 4 }, "{cell}");
        // ... then at the end of epoch 1 (6 more step polls, then the epoch's) ...
        let second = train_until(&cfg, &ck, 7);
        assert_eq!(second.outcome, SslOutcome::Interrupted { epoch: 1, batch: 0 }, "{cell}");
        assert_eq!(second.history.epoch, vec![1]);
        // ... and run to the end.
        let resumed = train_until(&cfg, &ck, 0);
        assert_eq!(resumed.outcome, SslOutcome::Finished);
        assert_eq!(without_timings(&resumed), without_timings(&whole), "{cell}: resumed run differs");
        // The result says where it was resumed from; the whole run was not.
        assert_eq!(resumed.resumed_at, vec![(0, 4), (1, 0)], "{cell}");
        assert!(whole.resumed_at.is_empty());
        assert!(whole.metrics.contains_key("participation_ratio"));
    }
}

#[test]
fn a_corrupt_or_foreign_checkpoint_is_set_aside_and_the_run_starts_over() {
    use eigenssl::ssl::train::{train, SslOutcome, TrainControl};
    let RunConfig::Ssl(mut cfg) = smoke_config("cifar10/isoloss/no_ema") else { panic!("ssl") };
    cfg.epochs = 2;
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("run.safetensors");
    let whole = train_until(&cfg, &dir.path().join("ref.safetensors"), 0);
    train_until(&cfg, &ck, 11); // stops at the end of epoch 1, leaving a checkpoint
    let bytes = std::fs::read(&ck).unwrap();
    std::fs::write(&ck, &bytes[..bytes.len() / 2]).unwrap();
    let notices = std::cell::RefCell::new(Vec::new());
    let notice = |m: &str| notices.borrow_mut().push(m.to_string());
    let ctl = TrainControl { checkpoint: Some(&ck), tag: "resume-test", stop: &|| false, notice: &notice, progress: &|_| {}, weights: None };
    let again = train(&cfg, 0, &eigenssl::data::synthetic(), &candle_core::Device::Cpu, &ctl).unwrap();
    assert_eq!(again.outcome, SslOutcome::Finished);
    assert_eq!(without_timings(&again), without_timings(&whole));
    let msgs = notices.borrow().join("\n");
    assert!(msgs.contains("run.safetensors") && msgs.contains("set aside") && msgs.contains("truncated"), "{msgs}");
    let aside = std::fs::read_dir(dir.path()).unwrap().flatten().any(|e| e.file_name().to_string_lossy().contains(".corrupt-"));
    assert!(aside, "the bad checkpoint is kept aside, not deleted");

    // Bytes flipped in the tensor data, the header intact: the checksum refuses it.
    train_until(&cfg, &ck, 11);
    let mut bytes = std::fs::read(&ck).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n - 64..n - 32] {
        *b ^= 0x5a;
    }
    std::fs::write(&ck, &bytes).unwrap();
    let flipped = train(&cfg, 0, &eigenssl::data::synthetic(), &candle_core::Device::Cpu, &ctl).unwrap();
    assert_eq!(without_timings(&flipped), without_timings(&whole));
    assert!(flipped.resumed_at.is_empty(), "resumed from a corrupted checkpoint");
    let last = notices.borrow().last().unwrap().clone();
    assert!(last.contains("does not match its checksum") && last.contains("set aside"), "{last}");

    // A checkpoint of another run (another tag) is never resumed either.
    train_until(&cfg, &ck, 11);
    let ctl = TrainControl { checkpoint: Some(&ck), tag: "another run", stop: &|| false, notice: &notice, progress: &|_| {}, weights: None };
    let other = train(&cfg, 0, &eigenssl::data::synthetic(), &candle_core::Device::Cpu, &ctl).unwrap();
    assert_eq!(without_timings(&other), without_timings(&whole));
    assert!(notices.borrow().last().unwrap().contains("another run"));
}

#[test]
fn a_resnet18_smoke_run_trains() {
    let RunConfig::Ssl(mut cfg) = smoke_config("cifar10/isoloss/ema") else { panic!("ssl") };
    cfg.backbone = eigenssl::ssl::config::Backbone::Resnet18;
    let out = execute(&RunConfig::Ssl(cfg), 0, &EngineContext::default()).unwrap();
    assert_eq!(out.status, RunStatus::Ok);
    assert!(out.metrics["final_loss"].is_finite() && out.metrics.contains_key("participation_ratio"));
}

#[test]
fn progress_is_reported_after_every_step_and_epoch_with_the_values_that_are_recorded() {
    use eigenssl::ssl::train::{train, Progress, TrainControl};
    let RunConfig::Ssl(mut cfg) = smoke_config("cifar10/simsiam/ema") else { panic!("ssl") };
    cfg.epochs = 2;
    let seen: std::cell::RefCell<Vec<Progress>> = Default::default();
    let progress = |p: &Progress| seen.borrow_mut().push(p.clone());
    let ctl = TrainControl { checkpoint: None, tag: "", stop: &|| false, notice: &|_| {}, progress: &progress, weights: None };
    let res = train(&cfg, 0, &eigenssl::data::synthetic(), &candle_core::Device::Cpu, &ctl).unwrap();
    let seen = seen.into_inner();
    let steps = 640 / cfg.batch;
    assert_eq!(seen.len(), 2 * (steps + 1), "one report per step and one per epoch");
    let ends: Vec<&Progress> = seen.iter().filter(|p| p.batch == 0).collect();
    assert_eq!(ends.iter().map(|p| p.epoch).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(ends.iter().map(|p| p.readout_top1).collect::<Vec<_>>(), res.history.readout_top1.iter().map(|&a| Some(a)).collect::<Vec<_>>());
    // The last step of an epoch reports that epoch's mean loss, as the history records it.
    let last_step = &seen[steps - 1];
    assert_eq!((last_step.epoch, last_step.batch), (0, steps));
    assert!((last_step.loss.unwrap() - res.history.loss[0].unwrap()).abs() < 1e-12);
    assert_eq!(seen.last().unwrap().seconds_left(), Some(0.0));
}
