//! Against a real single-node Slurm cluster on localhost (ci/slurm-localhost.sh starts one; `.ci/run`
//! runs this with `--ignored`): a sweep submitted with `--executor slurm` ends with the same table as
//! the same sweep run locally, and a task requeued mid-run (`scontrol requeue`: Slurm SIGTERMs it, as on
//! pre-emption) checkpoints and resumes from its checkpoint after the requeue.

use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{assert_complete, eigenssl_sweep, files, specs, table};

fn slurm(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(o.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs a Slurm cluster: ci/slurm-localhost.sh start, then cargo test --release --test slurm -- --ignored"]
fn a_slurm_sweep_matches_the_local_one_and_a_stopped_task_requeues_and_resumes() {
    let specs = specs();
    // One thread per run, as each Slurm task runs, so that the two sweeps compute identically.
    let local = tempfile::tempdir().unwrap();
    let o = eigenssl_sweep(specs.path(), local.path()).args(["--jobs", "1"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Tasks run as root from slurmd's working folder: results on a path every task can reach.
    let out = tempfile::tempdir().unwrap();
    let o = eigenssl_sweep(specs.path(), out.path()).args(["--executor", "slurm", "--slurm-args", "--cpus-per-task=1"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("squeue -j") && err.contains("eigenssl status"), "says how to watch it: {err}");
    let job = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(job.parse::<u64>().is_ok(), "job id on stdout: {job:?}");

    // Requeue a running task once its run has written a checkpoint.
    let dir = out.path().join("table1/kill");
    let runs_txt = files(&dir.join("slurm")).into_iter().find(|p| p.ends_with("runs.txt")).unwrap();
    let ids: Vec<String> = std::fs::read_to_string(dir.join("slurm").join(&runs_txt)).unwrap().lines().map(String::from).collect();
    assert_eq!(ids.len(), 6);
    let mut requeued = None;
    wait_for("a running task with a checkpoint", Duration::from_secs(300), || {
        let running = slurm("squeue", &["-h", "-j", &job, "-t", "R", "-o", "%K"]);
        let ck = files(&dir.join("checkpoints"));
        // `cifar10__simsiam__ema__seed0.safetensors` is run `table1/kill/cifar10/simsiam/ema/seed0`.
        requeued = running.lines().filter_map(|t| t.trim().parse::<usize>().ok()).find(|&t| {
            ck.iter().any(|p| p.file_stem().is_some_and(|s| ids[t].ends_with(&s.to_string_lossy().replace("__", "/"))))
        });
        requeued.is_some()
    });
    let task = requeued.unwrap();
    let task_job = format!("{job}_{task}");
    slurm("scontrol", &["requeue", &task_job]);
    // A requeued job waits about two minutes before it may start again; let it start now.
    wait_for("the requeue", Duration::from_secs(60), || slurm("squeue", &["-h", "-j", &task_job, "-o", "%T"]).contains("PENDING"));
    slurm("scontrol", &["update", &format!("JobId={task_job}"), "StartTime=now"]);

    // Everything finishes (the stopped task after its requeue).
    wait_for("the job array", Duration::from_secs(600), || slurm("squeue", &["-h", "-j", &job]).trim().is_empty());
    assert_complete(out.path());
    let status = Command::new(env!("CARGO_BIN_EXE_eigenssl"))
        .arg("--specs").arg(specs.path())
        .args(["status", "table1", "--profile", "kill", "--out"]).arg(out.path())
        .output().unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("6 done"), "{}", String::from_utf8_lossy(&status.stdout));
    let t = Command::new(env!("CARGO_BIN_EXE_eigenssl"))
        .arg("--specs").arg(specs.path())
        .args(["table", "table1", "--profile", "kill", "--out"]).arg(out.path())
        .output().unwrap();
    assert!(t.status.success());
    assert_eq!(table(out.path()), table(local.path()), "the Slurm sweep's table equals the local one");

    // The stopped task's log shows the requeue and the resume.
    let log_dir = dir.join("slurm").join(runs_txt.parent().unwrap());
    let log = files(&log_dir)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(&format!("_{task}.out")))
        .map(|p| std::fs::read_to_string(log_dir.join(p)).unwrap())
        .unwrap_or_default();
    assert!(log.contains("stopped with a checkpoint") && log.contains("restart 1") && log.contains("resuming from"), "task {task} log:\n{log}");
}
