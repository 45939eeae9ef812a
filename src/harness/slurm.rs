//! Handing a sweep to Slurm: one job array, one task per pending run, each task running
//! `eigenssl run <run-id>` against the shared results folder. The per-run locks, atomic records and
//! checkpoints make tasks safe to run beside local sweeps and to requeue: Slurm sends SIGTERM when it
//! pre-empts or requeues a task (`scontrol requeue`), the run checkpoints at its next step, and the
//! requeued task resumes from that checkpoint. A cancelled task (`scancel`) is not requeued, as Slurm
//! means it; it also checkpoints, and the next `reproduce --executor slurm` submits and resumes it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::plan;
use super::store::{write_atomic, Store};
use crate::error::{Error, Result};
use crate::spec::{Experiment, SlurmResources};

/// How tasks find everything (absolute paths: tasks start in another working directory).
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// The eigenssl binary the tasks run.
    pub binary: PathBuf,
    pub specs: PathBuf,
    pub out: PathBuf,
    pub data_dir: PathBuf,
    pub device: crate::device::DeviceKind,
    /// The `--kernels` the sweep was submitted with, passed on to every task.
    pub kernels: Option<crate::ssl::Kernels>,
    /// Extra `sbatch` arguments; they come after the profile's and so override them.
    pub extra_args: Vec<String>,
}

/// A submitted job array.
#[derive(Debug)]
pub struct Submission {
    pub job_id: String,
    pub tasks: usize,
    pub script: PathBuf,
    /// Where each task's output goes (`%A` job, `%a` task).
    pub logs: PathBuf,
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io(p, e))
}

/// The `#SBATCH` lines of a profile's resources.
pub fn sbatch_lines(r: &SlurmResources) -> Vec<String> {
    let mut l = Vec::new();
    if let Some(t) = &r.time {
        l.push(format!("--time={t}"));
    }
    if let Some(p) = &r.partition {
        l.push(format!("--partition={p}"));
    }
    if let Some(g) = r.gpus {
        l.push(format!("--gpus={g}"));
    }
    if let Some(c) = r.cpus_per_task {
        l.push(format!("--cpus-per-task={c}"));
    }
    if let Some(m) = &r.mem {
        l.push(format!("--mem={m}"));
    }
    l
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Writes the job script for the pending runs of `profile` and submits it with `sbatch`. `None` when
/// nothing is pending.
pub fn submit(exp: &Experiment, profile: &str, seeds: Option<&[u64]>, opts: &SlurmOptions, say: &dyn Fn(&str)) -> Result<Option<Submission>> {
    let out = absolute(&opts.out)?;
    let store = Store::new(&out, &exp.name, profile);
    store.check_writable()?;
    let runs = exp.runs(profile, seeds)?;
    let ctx = crate::engine::EngineContext { data_dir: opts.data_dir.clone(), device: opts.device };
    let planned = plan::plan(runs, &store, false, &|r| crate::engine::data_sha256(&r.config, &ctx))?;
    say(&format!(
        "{} / profile {}: {} run(s) to submit, {} already stored",
        exp.name,
        profile,
        planned.pending.len(),
        planned.done.len()
    ));
    if planned.pending.is_empty() {
        return Ok(None);
    }
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let dir = store.dir.join("slurm").join(stamp.to_string());
    let ids: String = planned.pending.iter().map(|r| r.id() + "\n").collect();
    write_atomic(&dir.join("runs.txt"), ids.as_bytes())?;
    let logs = dir.join("task-%A_%a.out");
    let prof = exp.profile(profile)?;
    let mut header = vec![
        format!("--job-name=eigenssl-{}-{}", exp.name, profile),
        format!("--array=0-{}", planned.pending.len() - 1),
        format!("--output={}", logs.display()),
        "--open-mode=append".into(),
        "--requeue".into(),
    ];
    header.extend(sbatch_lines(&prof.slurm));
    let script = format!(
        "#!/bin/bash\n{}\n\
         # One pending run per array task: {exp}/{profile}, written by `eigenssl reproduce --executor slurm`.\n\
         set -u\n\
         id=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {runs})\n\
         echo \"$(date -Is) task $SLURM_ARRAY_TASK_ID (job $SLURM_JOB_ID, restart ${{SLURM_RESTART_COUNT:-0}}) on $(hostname): $id\"\n\
         {bin} --specs {specs} run \"$id\" --out {out} --data-dir {data} --device {device}{kernels} &\n\
         pid=$!\n\
         # Pass a SIGTERM sent to this script only (scancel -b) on to the run, so it checkpoints; a repeated\n\
         # SIGTERM is harmless to eigenssl.\n\
         trap 'kill -TERM $pid 2>/dev/null' TERM\n\
         wait $pid; rc=$?\n\
         while kill -0 $pid 2>/dev/null; do wait $pid; rc=$?; done\n\
         [ $rc -eq 130 ] && echo \"$(date -Is) stopped with a checkpoint of its last step\"\n\
         exit $rc\n",
        header.iter().map(|h| format!("#SBATCH {h}")).collect::<Vec<_>>().join("\n"),
        exp = exp.name,
        runs = quote(&dir.join("runs.txt").display().to_string()),
        bin = quote(&absolute(&opts.binary)?.display().to_string()),
        specs = quote(&absolute(&opts.specs)?.display().to_string()),
        out = quote(&out.display().to_string()),
        data = quote(&absolute(&opts.data_dir)?.display().to_string()),
        device = opts.device,
        kernels = opts.kernels.map(|k| format!(" --kernels {k}")).unwrap_or_default(),
    );
    let script_path = dir.join("job.sbatch");
    write_atomic(&script_path, script.as_bytes())?;
    let output = Command::new("sbatch")
        .arg("--parsable")
        .args(&opts.extra_args)
        .arg(&script_path)
        .output()
        .map_err(|e| Error::Environment(format!("cannot run sbatch ({e}); is this a Slurm login node? The job script is {}", script_path.display())))?;
    if !output.status.success() {
        return Err(Error::Environment(format!(
            "sbatch {} failed: {}",
            script_path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let job_id = String::from_utf8_lossy(&output.stdout).trim().split(';').next().unwrap_or_default().to_string();
    Ok(Some(Submission { job_id, tasks: planned.pending.len(), script: script_path, logs }))
}
