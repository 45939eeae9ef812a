//! Experiment specs: YAML files in `experiments/` that declare cells, seeds, metrics and profiles.
//!
//! A cell's config is `base`, overlaid with the cell's `set`, overlaid with the profile's `set`. Every
//! (profile, cell) pair is resolved and range-checked when the spec loads, so a bad profile fails before
//! anything runs. Specs are data: adding a cell never needs code.

pub use crate::overlay;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ssl::config::{SslConfig, SslOverlay};
use crate::ssl::Kernels;
use crate::theory::{TheoryConfig, TheoryOverlay};
use crate::overlay::Overlay;

/// Specs compiled into the binary, used when the experiments folder lacks a file.
const EMBEDDED: &[(&str, &str)] = &[
    ("fig1", include_str!("../../experiments/fig1.yaml")),
    ("fig2", include_str!("../../experiments/fig2.yaml")),
    ("table1", include_str!("../../experiments/table1.yaml")),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    Theory,
    Ssl,
}

pub use crate::engine::RunConfig;

/// Which way a metric improves; `none` metrics are reported but never gated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
    #[default]
    None,
}

/// A metric the table shows (a key of the run records' `metrics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    pub name: String,
    pub label: String,
    #[serde(default)]
    pub unit: String,
    #[serde(default)]
    pub better: Better,
    /// Decimal places in tables.
    #[serde(default = "default_digits")]
    pub digits: usize,
    /// Shown when a value is a lower bound (e.g. censored convergence steps).
    #[serde(default)]
    pub note: String,
}

fn default_digits() -> usize {
    3
}

/// The paper's reported value for a cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperValue {
    pub metric: String,
    pub mean: f64,
    #[serde(default)]
    pub std: Option<f64>,
}

/// One column of an eigenmode figure: the 2-D cell drawn in the top two rows and the cell whose
/// spectrum is drawn in the bottom row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    pub title: String,
    pub trajectories: String,
    pub spectrum: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FigureKind {
    /// Paper Figs. 1–2: trajectories, theory flow, spectrum; one column per loss.
    EigenmodePanels,
    /// Deep runs: per cell, readout top-1 and the participation ratio of C against epoch, seeds
    /// overlaid, the untrained backbone's final readout as a floor line.
    TrainingCurves,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FigureSpec {
    pub kind: FigureKind,
    pub caption: String,
    /// The columns of an eigenmode figure (training-curve figures take every trained cell).
    #[serde(default)]
    pub panels: Vec<Panel>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, bound = "O: Overlay")]
struct SpecFile<O> {
    experiment: String,
    title: String,
    engine: EngineKind,
    #[serde(default)]
    description: String,
    seeds: Vec<u64>,
    metrics: Vec<MetricSpec>,
    #[serde(default)]
    figure: Option<FigureSpec>,
    /// Header of the table's column of paper values (it names the paper's protocol).
    #[serde(default = "default_paper_column")]
    paper_column: String,
    base: O,
    cells: Vec<CellFile<O>>,
    profiles: BTreeMap<String, ProfileFile<O>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, bound = "O: Overlay")]
struct CellFile<O> {
    id: String,
    row: String,
    column: String,
    #[serde(default)]
    paper: Option<PaperValue>,
    #[serde(default)]
    set: O,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, bound = "O: Overlay")]
struct ProfileFile<O> {
    description: String,
    #[serde(default)]
    seeds: Option<Vec<u64>>,
    /// Only these cells run under the profile (default: all).
    #[serde(default)]
    cells: Option<Vec<String>>,
    /// Resources each run asks a Slurm cluster for (`reproduce --executor slurm`).
    #[serde(default)]
    slurm: SlurmResources,
    /// The outcome study its table adds (deep runs).
    #[serde(default)]
    outcomes: Option<OutcomeStudy>,
    #[serde(default)]
    set: O,
}

/// What a profile's table adds about how often its runs learn ([`crate::engine::DeepOutcome`]): per cell
/// the outcome counts with an exact interval of the learning rate, Fisher's exact test between the pairs
/// of cells named, and the same for a second implementation's runs of the same protocol.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeStudy {
    /// Pairs of the profile's cells whose learning rates are compared.
    #[serde(default)]
    pub compare: Vec<[String; 2]>,
    /// A folder beside the profile's (`<out>/<experiment>/<twin>/`) holding another implementation's
    /// records of the same runs (`bench/torch_twin.py cells`: one JSON per cell and seed), judged by the
    /// same criterion against the same floor and compared with ours cell by cell.
    #[serde(default)]
    pub twin: Option<String>,
}

/// What one run of a profile needs on a cluster; each becomes an `#SBATCH` line (`--slurm-args` adds
/// to or overrides them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmResources {
    /// Wall-time limit per run, Slurm syntax (e.g. `2-00:00:00`).
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub partition: Option<String>,
    /// GPUs per run (`--gpus`).
    #[serde(default)]
    pub gpus: Option<u32>,
    #[serde(default)]
    pub cpus_per_task: Option<u32>,
    /// Memory per run (`--mem`, e.g. `32G`).
    #[serde(default)]
    pub mem: Option<String>,
}

/// Only the engine, read first to pick the typed schema for the rest.
#[derive(Deserialize)]
struct EngineProbe {
    engine: EngineKind,
}

fn default_paper_column() -> String {
    "paper".to_string()
}

/// A cell of the experiment: one row of the table, one configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub id: String,
    pub row: String,
    /// The column label; `{dataset}` and `{epochs}` are filled from the config a profile resolves, so
    /// that a label says what that profile ran.
    pub column: String,
    pub paper: Option<PaperValue>,
}

impl Cell {
    /// The column label for a run of this cell with `config`.
    ///
    /// ```
    /// use eigenssl::spec::{Experiment, RunConfig};
    /// let exp = Experiment::find("table1", std::path::Path::new("experiments")).unwrap();
    /// let run = exp.runs("cpu", Some(&[0])).unwrap().remove(0);
    /// let cell = exp.cell(&run.cell).unwrap();
    /// let RunConfig::Ssl(cfg) = &run.config else { unreachable!() };
    /// assert_eq!(cell.column_for(&run.config), format!("CIFAR-10, {} epochs, EMA", cfg.epochs));
    /// ```
    pub fn column_for(&self, config: &RunConfig) -> String {
        match config {
            RunConfig::Ssl(c) => {
                let dataset = c.dataset.label();
                let epochs = if c.epochs == 1 { "1 epoch".to_string() } else { format!("{} epochs", c.epochs) };
                self.column.replace("{dataset}", dataset).replace("{epochs} epochs", &epochs).replace("{epochs}", &c.epochs.to_string())
            }
            RunConfig::Theory(_) => self.column.clone(),
        }
    }
}

/// A profile with every cell's config resolved.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub seeds: Vec<u64>,
    /// Cells that run under this profile (all, unless the profile lists some).
    pub cells: Vec<String>,
    /// Same order as [`Experiment::cells`].
    pub configs: Vec<RunConfig>,
    pub slurm: SlurmResources,
    pub outcomes: Option<OutcomeStudy>,
}

/// A loaded, validated experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub name: String,
    pub title: String,
    pub description: String,
    pub engine: EngineKind,
    /// Where the spec came from (a path, or `<embedded>/NAME.yaml`).
    pub source: PathBuf,
    pub metrics: Vec<MetricSpec>,
    pub figure: Option<FigureSpec>,
    /// Header of the column of paper values.
    pub paper_column: String,
    pub cells: Vec<Cell>,
    pub profiles: BTreeMap<String, Profile>,
}

/// One (cell, seed) of a profile: the unit that runs and is stored.
#[derive(Debug, Clone)]
pub struct Run {
    pub experiment: String,
    pub profile: String,
    pub cell: String,
    pub seed: u64,
    pub config: RunConfig,
    /// Identifies the computation: experiment, cell, seed, config and engine version.
    pub hash: String,
}

impl Run {
    /// File name of the run's record: the cell id with `/` as `__`, and the seed.
    pub fn file_name(&self) -> String {
        run_file_name(&self.cell, self.seed)
    }

    /// `<experiment>/<profile>/<cell>/seed<k>`: names the run for `eigenssl run`.
    pub fn id(&self) -> String {
        format!("{}/{}/{}/seed{}", self.experiment, self.profile, self.cell, self.seed)
    }

    /// The run computed by `kernels` (the CLI's `--kernels`), with its hash: a deep-SSL run only.
    pub fn with_kernels(self, kernels: Kernels) -> Run {
        let config = kernels_set(self.config, kernels);
        let hash = run_hash(&self.experiment, &self.cell, self.seed, &config);
        Run { config, hash, ..self }
    }
}

/// `config` computed by `kernels`, where it is a deep-SSL config (the theory engine has no kernels).
fn kernels_set(config: RunConfig, kernels: Kernels) -> RunConfig {
    match config {
        RunConfig::Ssl(cfg) => RunConfig::Ssl(SslConfig { kernels, ..cfg }),
        theory => theory,
    }
}

/// A name that can stand as one folder of a results path: letters, digits, `_` and `-`, not empty (so
/// never `.`, `..`, absolute or with a separator).
///
/// ```
/// use eigenssl::spec::is_folder_name;
/// assert!(is_folder_name("table1") && is_folder_name("noema-twin"));
/// assert!(!is_folder_name("..") && !is_folder_name("a/b") && !is_folder_name("/tmp") && !is_folder_name(""));
/// ```
pub fn is_folder_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|ch| ch.is_ascii_alphanumeric() || "_-".contains(ch))
}

pub fn run_file_name(cell: &str, seed: u64) -> String {
    format!("{}__seed{}.json", cell.replace('/', "__"), seed)
}

impl Experiment {
    /// Loads `NAME.yaml` from `dir`, or the embedded copy when the file is absent.
    pub fn find(name: &str, dir: &Path) -> Result<Self> {
        let path = dir.join(format!("{name}.yaml"));
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            return Self::parse(&text, &path);
        }
        match EMBEDDED.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => Self::parse(text, &PathBuf::from(format!("<embedded>/{name}.yaml"))),
            None => Err(Error::Usage(format!(
                "unknown experiment `{name}`: no {} and no embedded spec; known: {}",
                path.display(),
                Self::names(dir).join(", ")
            ))),
        }
    }

    /// Experiment names in `dir` plus the embedded ones, sorted.
    pub fn names(dir: &Path) -> Vec<String> {
        let mut names: BTreeSet<String> = EMBEDDED.iter().map(|(n, _)| n.to_string()).collect();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "yaml") {
                    if let Some(stem) = p.file_stem() {
                        names.insert(stem.to_string_lossy().into_owned());
                    }
                }
            }
        }
        names.into_iter().collect()
    }

    /// Parses and validates a spec; `path` is used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let err = |msg: String| Error::Spec { path: path.to_path_buf(), msg };
        let probe: EngineProbe = serde_yaml_ng::from_str(text).map_err(|e| err(e.to_string()))?;
        match probe.engine {
            EngineKind::Theory => Self::parse_typed::<TheoryOverlay>(text, path, |c: TheoryConfig| {
                c.validate().map(|_| RunConfig::Theory(c))
            }),
            EngineKind::Ssl => {
                Self::parse_typed::<SslOverlay>(text, path, |c: SslConfig| c.validate().map(|_| RunConfig::Ssl(c)))
            }
        }
    }

    fn parse_typed<O: Overlay + DeserializeOwned>(
        text: &str,
        path: &Path,
        check: impl Fn(O::Config) -> std::result::Result<RunConfig, Vec<String>>,
    ) -> Result<Self> {
        let err = |msg: String| Error::Spec { path: path.to_path_buf(), msg };
        let file: SpecFile<O> = serde_yaml_ng::from_str(text).map_err(|e| err(e.to_string()))?;

        let mut problems = Vec::new();
        if !is_folder_name(&file.experiment) {
            problems.push(format!("experiment `{}`: expected a name of letters, digits, `_` and `-` (it names a results folder)", file.experiment));
        }
        for name in file.profiles.keys() {
            if !is_folder_name(name) {
                problems.push(format!("profiles: `{name}`: expected a name of letters, digits, `_` and `-` (it names a results folder)"));
            }
        }
        let mut files: BTreeMap<String, &str> = BTreeMap::new();
        for c in &file.cells {
            if let Some(other) = files.insert(run_file_name(&c.id, 0), &c.id) {
                problems.push(format!("cells: ids `{other}` and `{}` would share record files; rename one", c.id));
            }
        }
        if file.seeds.is_empty() {
            problems.push("seeds: expected at least one seed".to_string());
        }
        if file.cells.is_empty() {
            problems.push("cells: expected at least one cell".to_string());
        }
        let mut seen = BTreeSet::new();
        for c in &file.cells {
            if c.id.is_empty() || !c.id.chars().all(|ch| ch.is_ascii_alphanumeric() || "_-./".contains(ch)) {
                problems.push(format!("cells: id `{}`: expected letters, digits, `_-./` only", c.id));
            }
            if !seen.insert(c.id.as_str()) {
                problems.push(format!("cells: duplicate id `{}`", c.id));
            }
            if let Some(p) = &c.paper {
                if !file.metrics.iter().any(|m| m.name == p.metric) {
                    problems.push(format!("cells `{}`: paper.metric `{}` is not in metrics", c.id, p.metric));
                }
            }
        }
        if let Some(fig) = &file.figure {
            for p in &fig.panels {
                for id in [&p.trajectories, &p.spectrum] {
                    if !seen.contains(id.as_str()) {
                        problems.push(format!("figure.panels `{}`: no cell with id `{id}`", p.title));
                    }
                }
            }
        }
        if file.profiles.is_empty() {
            problems.push("profiles: expected at least one profile (e.g. `paper`)".to_string());
        }

        let mut profiles = BTreeMap::new();
        for (name, prof) in &file.profiles {
            let seeds = prof.seeds.clone().unwrap_or_else(|| file.seeds.clone());
            if seeds.is_empty() {
                problems.push(format!("profiles.{name}.seeds: expected at least one seed"));
            }
            let mut configs = Vec::new();
            for cell in &file.cells {
                let mut o = file.base.clone();
                o.overlay(&cell.set);
                o.overlay(&prof.set);
                let place = format!("profile `{name}`, cell `{}`", cell.id);
                match o.resolve() {
                    Err(missing) => problems.push(format!(
                        "{place}: missing field(s) {} (set them in `base`, the cell's `set` or the profile's `set`)",
                        missing.join(", ")
                    )),
                    Ok(cfg) => match check(cfg) {
                        Ok(rc) => configs.push(rc),
                        Err(bad) => problems.extend(bad.into_iter().map(|b| format!("{place}: {b}"))),
                    },
                }
            }
            let cells: Vec<String> = match &prof.cells {
                Some(list) => {
                    for id in list {
                        if !seen.contains(id.as_str()) {
                            problems.push(format!("profiles.{name}.cells: no cell with id `{id}`"));
                        }
                    }
                    list.clone()
                }
                None => file.cells.iter().map(|c| c.id.clone()).collect(),
            };
            if let Some(study) = &prof.outcomes {
                for id in study.compare.iter().flatten() {
                    if !cells.contains(id) {
                        problems.push(format!("profiles.{name}.outcomes.compare: `{id}` is not a cell of this profile"));
                    }
                }
                if let Some(twin) = &study.twin {
                    if !is_folder_name(twin) || file.profiles.contains_key(twin) {
                        problems.push(format!("profiles.{name}.outcomes.twin `{twin}`: expected a folder name of letters, digits, `_-`, not a profile's"));
                    }
                }
            }
            profiles.insert(
                name.clone(),
                Profile {
                    name: name.clone(),
                    description: prof.description.clone(),
                    seeds,
                    cells,
                    configs,
                    slurm: prof.slurm.clone(),
                    outcomes: prof.outcomes.clone(),
                },
            );
        }
        if !problems.is_empty() {
            return Err(err(problems.join("\n  ")));
        }
        Ok(Experiment {
            name: file.experiment,
            title: file.title,
            description: file.description,
            engine: file.engine,
            source: path.to_path_buf(),
            metrics: file.metrics,
            figure: file.figure,
            paper_column: file.paper_column,
            cells: file
                .cells
                .into_iter()
                .map(|c| Cell { id: c.id, row: c.row, column: c.column, paper: c.paper })
                .collect(),
            profiles,
        })
    }

    pub fn profile(&self, name: &str) -> Result<&Profile> {
        self.profiles.get(name).ok_or_else(|| {
            Error::Usage(format!(
                "experiment `{}` has no profile `{name}`; it has: {}",
                self.name,
                self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The run named by `id` (see [`Run::id`]), whose experiment spec is looked up in `dir`.
    pub fn find_run(id: &str, dir: &Path) -> Result<Run> {
        let bad = |why: &str| Error::Usage(format!("run id `{id}`: {why}; expected <experiment>/<profile>/<cell>/seed<k>"));
        let parts: Vec<&str> = id.split('/').collect();
        if parts.len() < 4 {
            return Err(bad("too few parts"));
        }
        let seed: u64 = parts[parts.len() - 1]
            .strip_prefix("seed")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("the last part is not seed<k>"))?;
        let cell = parts[2..parts.len() - 1].join("/");
        let exp = Experiment::find(parts[0], dir)?;
        let prof = exp.profile(parts[1])?;
        let runs = exp.runs(parts[1], Some(&[seed]))?;
        let run = runs.into_iter().find(|r| r.cell == cell);
        run.ok_or_else(|| {
            Error::Usage(format!("run id `{id}`: profile `{}` of `{}` has no cell `{cell}`; it has: {}", prof.name, exp.name, prof.cells.join(", ")))
        })
    }

    /// The experiment as if its spec set `kernels` in every profile (the CLI's `--kernels`); theory
    /// configs have none and stay as they are.
    pub fn with_kernels(mut self, kernels: Kernels) -> Self {
        for prof in self.profiles.values_mut() {
            prof.configs = std::mem::take(&mut prof.configs).into_iter().map(|c| kernels_set(c, kernels)).collect();
        }
        self
    }

    /// Every (cell, seed) run of a profile; `seeds` overrides the profile's seeds. A seed named twice is
    /// one run.
    ///
    /// ```
    /// use eigenssl::spec::Experiment;
    /// let exp = Experiment::find("fig1", std::path::Path::new("experiments")).unwrap();
    /// assert_eq!(exp.runs("smoke", Some(&[0, 0, 1])).unwrap().len(), exp.runs("smoke", Some(&[0, 1])).unwrap().len());
    /// ```
    pub fn runs(&self, profile: &str, seeds: Option<&[u64]>) -> Result<Vec<Run>> {
        let prof = self.profile(profile)?;
        let mut unique: Vec<u64> = Vec::new();
        for &s in seeds.unwrap_or(&prof.seeds) {
            if !unique.contains(&s) {
                unique.push(s);
            }
        }
        let seeds = &unique;
        let mut runs = Vec::new();
        for (cell, config) in self.cells.iter().zip(&prof.configs) {
            if !prof.cells.contains(&cell.id) {
                continue;
            }
            for &seed in seeds {
                runs.push(Run {
                    experiment: self.name.clone(),
                    profile: profile.to_string(),
                    cell: cell.id.clone(),
                    seed,
                    config: config.clone(),
                    hash: run_hash(&self.name, &cell.id, seed, config),
                });
            }
        }
        Ok(runs)
    }

    pub fn cell(&self, id: &str) -> Option<&Cell> {
        self.cells.iter().find(|c| c.id == id)
    }
}

/// sha256 of the canonical JSON of everything that determines a run's result.
pub fn run_hash(experiment: &str, cell: &str, seed: u64, config: &RunConfig) -> String {
    let canon = serde_json::json!({
        "experiment": experiment, "cell": cell, "seed": seed, "config": config, "engine_version": config.engine_version(),
    });
    let digest = Sha256::digest(canon.to_string().as_bytes());
    hex::encode(&digest[..16])
}
