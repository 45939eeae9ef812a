//! What a sweep shows while it runs: on a terminal, the sweep's bar and one live line per running deep
//! run (cell and seed, epoch k/n, loss, last readout top-1, seconds per epoch, time to go); elsewhere
//! (CI logs, files) one line per finished epoch of a run, at most every [`LOG_EVERY`].

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::human_duration;
use crate::engine::Progress;

/// Least time between two logged epochs of one run when the output is not a terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(180);

/// The display of one sweep.
pub struct Live {
    multi: MultiProgress,
    sweep: ProgressBar,
    /// Live lines on a terminal; logged lines otherwise.
    terminal: bool,
}

impl Live {
    /// A display for `runs` runs: live when `wanted` and stderr is a terminal, else plain log lines.
    pub fn new(runs: usize, wanted: bool) -> Live {
        let terminal = wanted && std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if terminal { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() });
        let sweep = multi.add(ProgressBar::new(runs as u64));
        sweep.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} runs  {elapsed_precise}  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        if terminal {
            // Drawn from the start and kept current (elapsed time, time to go) between finished runs.
            sweep.enable_steady_tick(Duration::from_millis(500));
        }
        Live { multi, sweep, terminal }
    }

    /// Prints a message above the bars (or to stderr when there are none).
    pub fn say(&self, msg: &str) {
        if self.terminal {
            // Printing fails only when stderr is gone; then there is nobody to tell.
            let _ = self.multi.println(msg);
        } else {
            eprintln!("{msg}");
        }
    }

    /// A run finished: the sweep's bar moves on.
    pub fn finished(&self, label: &str, status: &str) {
        self.sweep.inc(1);
        self.sweep.set_message(format!("{label}: {status}"));
    }

    /// The line of one running run, removed when dropped.
    pub fn run_line(&self, label: &str) -> RunLine<'_> {
        let bar = if self.terminal {
            let bar = self.multi.insert_before(&self.sweep, ProgressBar::new_spinner());
            bar.set_style(ProgressStyle::with_template("  {prefix}  {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
            bar.set_prefix(label.to_string());
            bar.set_message("starting");
            Some(bar)
        } else {
            None
        };
        RunLine { live: self, label: label.to_string(), bar, last_log: Mutex::new(None) }
    }

    pub fn clear(&self) {
        self.sweep.finish_and_clear();
    }
}

/// One running run's line.
pub struct RunLine<'a> {
    live: &'a Live,
    label: String,
    bar: Option<ProgressBar>,
    last_log: Mutex<Option<Instant>>,
}

impl RunLine<'_> {
    /// Shows `p`: on a terminal every time, in a log only at an epoch's end and at most every [`LOG_EVERY`]
    /// (always for the last epoch).
    pub fn update(&self, p: &Progress) {
        match &self.bar {
            Some(bar) => bar.set_message(progress_text(p)),
            None => {
                let epoch_end = p.batch == 0 && p.epoch > 0;
                if !epoch_end {
                    return;
                }
                let mut last = self.last_log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if p.epoch == p.epochs || last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                    *last = Some(Instant::now());
                    self.live.say(&format!("{}: {}", self.label, progress_text(p)));
                }
            }
        }
    }
}

impl Drop for RunLine<'_> {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            self.live.multi.remove(bar);
        }
    }
}

/// `epoch 3/8 · step 120/390 · loss -0.912 · top-1 41.2 % · 38 s/epoch · 4 min to go`.
///
/// ```
/// use eigenssl::engine::Progress;
/// use eigenssl::harness::live::progress_text;
/// let p = Progress { epoch: 2, epochs: 8, batch: 195, batches: 390, loss: Some(-0.9123),
///                    readout_top1: Some(41.25), seconds_per_epoch: Some(40.0) };
/// assert_eq!(progress_text(&p), "epoch 3/8 · step 195/390 · loss -0.912 · top-1 41.2 % · 40 s/epoch · 4 min to go");
/// ```
pub fn progress_text(p: &Progress) -> String {
    let mut parts = vec![if p.epoch >= p.epochs {
        format!("epoch {}/{} done", p.epochs, p.epochs)
    } else if p.batch == 0 && p.epoch > 0 {
        format!("epoch {}/{} done", p.epoch, p.epochs)
    } else {
        format!("epoch {}/{} · step {}/{}", p.epoch + 1, p.epochs, p.batch, p.batches)
    }];
    if let Some(l) = p.loss {
        parts.push(format!("loss {l:.3}"));
    }
    if let Some(a) = p.readout_top1 {
        parts.push(format!("top-1 {a:.1} %"));
    }
    if let Some(s) = p.seconds_per_epoch {
        parts.push(format!("{} s/epoch", s.round() as u64));
    }
    if let Some(left) = p.seconds_left().filter(|&s| s > 0.0) {
        parts.push(format!("{} to go", human_duration(left)));
    }
    parts.join(" · ")
}
