//! The markdown of a [`BenchReport`]: what `bench` prints and writes beside its JSON.

use std::fmt::Write;

use super::training::{median_round, StepBench, TrainingBench, RATIO_CONFIDENCE, TORCH_AVX2_ENV};
use super::{BenchReport, TheoryBench};
use crate::ssl::Kernels;

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// The report as markdown: the machine, then each part with the commit and date that measured it.
pub fn markdown(r: &BenchReport) -> String {
    let m = &r.machine;
    let mut md = format!("# Benchmarks on {} ({}), {} cores, {}\n\n", m.model, m.vendor, m.cores, m.simd_in_words());
    if m.capped_from.is_some() {
        let env: Vec<String> = TORCH_AVX2_ENV.iter().map(|(k, v)| format!("`{k}={v}`")).collect();
        let _ = writeln!(md, "A build without the `avx512` feature, standing in for a CPU without AVX-512; PyTorch ran with {} alike.\n", env.join(", "));
    }
    let measured_by = |md: &mut String, what: &str, commit: &str, dirty: bool, started: &str| {
        let _ = writeln!(md, "## {what}\n\nMeasured by the build of `{commit}`{} on {started}.\n", if dirty { " (with uncommitted changes)" } else { "" });
    };
    match &r.training {
        Some(t) => {
            measured_by(&mut md, "Training", &t.commit, t.dirty, &t.started);
            training(&mut md, &t.measured);
        }
        None => md.push_str("## Training\n\nNot measured on this model yet (`eigenssl bench` without `--theory-only`).\n\n"),
    }
    if let Some(t) = &r.theory {
        measured_by(&mut md, "Theory", &t.commit, t.dirty, &t.started);
        theory(&mut md, &t.measured);
    }
    md
}

fn theory(md: &mut String, t: &TheoryBench) {
    let _ = writeln!(md, "normal sampler: {:.0} M samples/s (one core)\n", t.normal_samples_per_s / 1e6);
    let _ = writeln!(md, "| theory step (one core) | eigenssl ms | NumPy ms | NumPy / eigenssl |");
    let _ = writeln!(md, "|---|---|---|---|");
    for s in &t.steps {
        let np = s.numpy.map(|t| format!("{:.2}", t.median_s * 1e3)).unwrap_or_else(|| "n/a".into());
        let sp = s.speedup.map(|v| format!("{v:.1}×")).unwrap_or_else(|| "n/a (no NumPy)".into());
        let _ = writeln!(md, "| {} | {:.2} | {np} | {sp} |", s.case, s.eigenssl.median_s * 1e3);
    }
}

fn training(md: &mut String, t: &TrainingBench) {
    let _ = writeln!(
        md,
        "Each measurement is the median of {} steps after a warm-up, in a fresh process; \
         {} round(s) alternate ours and PyTorch's, and the ratio is the median round's, with the {:.0} % confidence \
         interval of that median from the rounds' order statistics (no interval below 6 rounds) and all rounds' \
         ratios in brackets.\n",
        t.reps,
        t.rounds,
        100.0 * RATIO_CONFIDENCE
    );
    let torch = t.steps.iter().flat_map(|c| &c.torch).find_map(|s| s.torch.clone());
    let _ = writeln!(
        md,
        "| training step, batch 2×{} | eigenssl ms/step | img/s | peak RSS | PyTorch{} ms/step | img/s | peak RSS | eigenssl / PyTorch img/s |",
        t.steps.first().map_or(0, |c| c.batch),
        torch.map(|v| format!(" {v}")).unwrap_or_default()
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for c in &t.steps {
        let Some(ours) = median_round(&c.ours) else { continue };
        let theirs: Option<&StepBench> = median_round(&c.torch);
        let (tm, ti, tr) = match theirs {
            Some(s) => (format!("{:.0}", s.step.median_s * 1e3), format!("{:.0}", s.images_per_s), mib(s.peak_rss)),
            None => ("n/a".into(), "n/a".into(), "n/a".into()),
        };
        let ratio = match (c.ratio(), &c.torch_missing) {
            (Some(r), _) => {
                let all: Vec<String> = c.ratios().iter().map(|v| format!("{v:.2}")).collect();
                let ci = c.ratio_interval().map(|(lo, hi)| format!(" ({lo:.2}–{hi:.2})")).unwrap_or_default();
                format!("**{r:.2}×**{ci} [{}]", all.join(", "))
            }
            (None, Some(why)) => format!("no PyTorch ({why})"),
            (None, None) => "n/a".into(),
        };
        let _ = writeln!(
            md,
            "| VGG11-BN + projector, width {} ({:.1} M params) | {:.0} | {:.0} | {} | {tm} | {ti} | {tr} | {ratio} |",
            c.width,
            ours.parameters as f64 / 1e6,
            ours.step.median_s * 1e3,
            ours.images_per_s,
            mib(ours.peak_rss)
        );
    }
    if t.kernels != Kernels::Native {
        let _ = writeln!(md, "\nOur rounds ran on {} kernels (`bench --kernels {}`).", t.kernels, t.kernels);
    }
    if !t.generic.is_empty() {
        let _ = writeln!(md, "\n| training step, batch 2×{} | native ms/step | candle's ops (the GPUs' path) ms/step | native / candle img/s |", t.steps.first().map_or(0, |c| c.batch));
        let _ = writeln!(md, "|---|---|---|---|");
        for g in &t.generic {
            let Some(native) = t.steps.iter().find(|c| c.width == g.width).and_then(|c| median_round(&c.ours)) else { continue };
            let _ = writeln!(
                md,
                "| width {} | {:.0} | {:.0} | {:.2}× |",
                g.width,
                native.step.median_s * 1e3,
                g.step.median_s * 1e3,
                native.images_per_s / g.images_per_s
            );
        }
    }
    if let Some(why) = &t.generic_missing {
        let _ = writeln!(md, "\nThe step by candle's ops is missing at {why}");
    }
    let s = &t.stl10_step;
    let _ = writeln!(
        md,
        "\ntraining step at STL-10's 96 px, width 0.25: {:.0} ms/step, {:.0} img/s, peak RSS {}",
        s.step.median_s * 1e3,
        s.images_per_s,
        mib(s.peak_rss)
    );
    for a in &t.augmentation {
        let _ = writeln!(
            md,
            "augmentation (SimCLR, {}, {} px, all cores): {:.0} pairs/s = {:.1}× the {:.0} pairs/s the width/4 step at that size consumes",
            a.dataset,
            a.side,
            a.pairs_per_s,
            a.pairs_per_s / a.step_pairs_per_s,
            a.step_pairs_per_s
        );
    }
    let quarter = t.quarter_width();
    let _ = writeln!(
        md,
        "DirectPred update (both views: correlation updates and W_P from two 256×256 eigendecompositions in f64, in parallel): {:.2} ms{}",
        t.directpred.median_s * 1e3,
        quarter.map(|q| format!(" = {:.1} % of a width/4 step", 100.0 * t.directpred.median_s / q.step.median_s)).unwrap_or_default()
    );
    let e = &t.epoch;
    let _ = writeln!(
        md,
        "one epoch of the `{}` profile ({}, width {}, {} images, {} steps of 2×{}, {} thread(s)): {:.1} s = {:.0} img/s \
         (augmentation, steps, readout and its test); the run's closing k-NN and linear probe: {:.1} s\n",
        e.profile, e.cell, e.width, e.images, e.steps, e.batch, e.threads, e.epoch_s, e.images_per_s, e.offline_eval_s
    );
}
