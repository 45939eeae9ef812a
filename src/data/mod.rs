//! Image datasets in memory as 8-bit RGB, height × width × channel per image, with labels.
//!
//! Loaders: CIFAR-10 from the official binary batches, from an image folder (`train/<class>/*`,
//! `test/<class>/*`) or its `.tar.gz`; STL-10 from the official binary files; both from Hugging Face
//! parquet files, in a local folder or through hf-hub. [`find`] looks for the local layouts under
//! `--data-dir`, then in the Hugging Face cache, then downloads (unless `HF_HUB_OFFLINE`), and says
//! where it looked when nothing is there.

pub mod augment;
pub mod cifar10;
pub mod image_folder;
pub mod parquet;
pub mod stl10;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The datasets eigenssl trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    Cifar10,
    Stl10,
    /// Generated in memory ([`synthetic`]); for tests and the `smoke` profile.
    Synthetic,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 3] = [DatasetKind::Cifar10, DatasetKind::Stl10, DatasetKind::Synthetic];

    /// The name used in specs, on the command line and in paths (`cifar10`).
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Stl10 => "stl10",
            DatasetKind::Synthetic => "synthetic",
        }
    }

    /// The name as papers print it (`CIFAR-10`).
    pub fn label(self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "CIFAR-10",
            DatasetKind::Stl10 => "STL-10",
            DatasetKind::Synthetic => "generated images",
        }
    }

    /// Images of the pre-training split (STL-10: train + unlabeled).
    pub fn train_images(self) -> usize {
        match self {
            DatasetKind::Cifar10 => 50_000,
            DatasetKind::Stl10 => 105_000,
            DatasetKind::Synthetic => SYNTHETIC_TRAIN,
        }
    }

    /// Side of the square images.
    pub fn image_side(self) -> usize {
        match self {
            DatasetKind::Stl10 => 96,
            DatasetKind::Cifar10 | DatasetKind::Synthetic => 32,
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DatasetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        DatasetKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown dataset `{s}`: expected cifar10, stl10 or synthetic"))
    }
}

/// Images of one split: `n` images of `h`×`w`×3 bytes, row-major, channels last.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub h: usize,
    pub w: usize,
    pub pixels: Vec<u8>,
    /// Class index per image; −1 for unlabelled images (STL-10's unlabeled split).
    pub labels: Vec<i64>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.h * self.w * 3;
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The first `n` images (all if fewer).
    pub fn take(&self, n: usize) -> Split {
        let n = n.min(self.len());
        let size = self.h * self.w * 3;
        Split { h: self.h, w: self.w, pixels: self.pixels[..n * size].to_vec(), labels: self.labels[..n].to_vec() }
    }

    /// Checks shapes and label range; `what` names the source in the error.
    pub fn validate(&self, classes: usize, what: &Path) -> Result<()> {
        let size = self.h * self.w * 3;
        if self.pixels.len() != self.labels.len() * size {
            return Err(Error::Record {
                path: what.to_path_buf(),
                msg: format!("{} bytes of pixels for {} labels of {}×{}×3", self.pixels.len(), self.labels.len(), self.h, self.w),
            });
        }
        if let Some((i, l)) = self.labels.iter().enumerate().find(|(_, &l)| l < -1 || l >= classes as i64) {
            return Err(Error::Record {
                path: what.to_path_buf(),
                msg: format!("label {l} of image {i} outside 0..{classes} (or −1 for unlabelled)"),
            });
        }
        Ok(())
    }
}

/// A dataset: the pre-training split, the readout's test split, and the class count.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub kind: DatasetKind,
    pub train: Split,
    pub test: Split,
    pub classes: usize,
    /// Per-channel mean and std for normalisation.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Where it was loaded from.
    pub source: PathBuf,
}

impl Dataset {
    /// What identifies the data actually read: its layout, where it came from, and a sha256 of the decoded
    /// content (sizes, labels and pixels of both splits), so that two files holding the same images agree
    /// and a lossy re-encoding does not.
    pub fn fingerprint(&self) -> DataFingerprint {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.kind.name().as_bytes());
        for split in [&self.train, &self.test] {
            for n in [split.h, split.w, split.len()] {
                h.update((n as u64).to_le_bytes());
            }
            for l in &split.labels {
                h.update(l.to_le_bytes());
            }
            h.update(&split.pixels);
        }
        DataFingerprint {
            format: format_of(&self.source).to_string(),
            source: self.source.clone(),
            train_images: self.train.len(),
            test_images: self.test.len(),
            sha256: hex::encode(h.finalize()),
        }
    }
}

/// The identity of a loaded dataset, stored in every deep run's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFingerprint {
    /// `binary` (the official files), `parquet`, `image-folder`, `image-folder.tar.gz` or `generated`.
    pub format: String,
    pub source: PathBuf,
    pub train_images: usize,
    pub test_images: usize,
    /// sha256 of the decoded content ([`Dataset::fingerprint`]).
    pub sha256: String,
}

fn format_of(source: &Path) -> &'static str {
    let name = source.to_string_lossy();
    if name.starts_with('<') {
        "generated"
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        "image-folder.tar.gz"
    } else if source.join("data_batch_1.bin").exists() || source.join("train_X.bin").exists() {
        "binary"
    } else if source.join("train").is_dir() {
        "image-folder"
    } else {
        "parquet"
    }
}

/// How to load one dataset: its local layouts and its hub repository.
struct Source {
    candidates: Vec<PathBuf>,
    load: fn(&Path) -> Result<Dataset>,
    layouts: &'static str,
    hub: parquet::HubDataset,
    from_parquet: fn(&[PathBuf], &Path) -> Result<Dataset>,
}

/// Loads `kind` from the first layout found under `dir`, else from the hub (the cache, else a download
/// unless `HF_HUB_OFFLINE` is set); [`Error::DataMissing`] when it is nowhere.
pub fn find(kind: DatasetKind, dir: &Path) -> Result<Dataset> {
    find_with(kind, dir, true)
}

/// [`find`], downloading from the hub only when `download` (else the hub's local cache only).
pub fn find_with(kind: DatasetKind, dir: &Path, download: bool) -> Result<Dataset> {
    let first = |src: Source| {
        if let Some(c) = src.candidates.iter().find(|c| c.exists()) {
            return (src.load)(c);
        }
        match src.hub.files(download) {
            Ok(files) => (src.from_parquet)(&files, &src.hub.cache_dir()),
            Err(hub) => Err(not_found(kind, dir, &src.candidates, src.layouts, &hub)),
        }
    };
    match kind {
        DatasetKind::Cifar10 => first(Source {
            candidates: cifar10::candidates(dir),
            load: cifar10::load,
            layouts: cifar10::LAYOUTS,
            hub: parquet::CIFAR10_HUB,
            from_parquet: cifar10::from_parquet,
        }),
        DatasetKind::Stl10 => first(Source {
            candidates: stl10::candidates(dir),
            load: stl10::load,
            layouts: stl10::LAYOUTS,
            hub: parquet::STL10_HUB,
            from_parquet: stl10::from_parquet,
        }),
        DatasetKind::Synthetic => Ok(synthetic()),
    }
}

/// Training images of [`synthetic`].
pub const SYNTHETIC_TRAIN: usize = 640;

/// A small generated dataset for tests and the `smoke` profile: 10 classes of 32×32 images, each class a
/// colour gradient in its own direction plus noise (linearly separable), 640 train and 320 test images.
pub fn synthetic() -> Dataset {
    use rand::Rng;
    let make = |n: usize, name: &str| {
        let mut rng = crate::rng::stream(0, name);
        let mut pixels = Vec::with_capacity(n * 32 * 32 * 3);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let class = i % 10;
            let angle = class as f32 * std::f32::consts::TAU / 10.0;
            let (dx, dy) = (angle.cos(), angle.sin());
            for y in 0..32 {
                for x in 0..32 {
                    let t = ((x as f32 - 15.5) * dx + (y as f32 - 15.5) * dy) / 45.0 + 0.5;
                    for c in 0..3 {
                        let base = if c == class % 3 { t } else { 1.0 - t };
                        let v = (base + rng.random_range(-0.1..0.1)).clamp(0.0, 1.0);
                        pixels.push((v * 255.0) as u8);
                    }
                }
            }
            labels.push(class as i64);
        }
        Split { h: 32, w: 32, pixels, labels }
    };
    Dataset {
        kind: DatasetKind::Synthetic,
        train: make(SYNTHETIC_TRAIN, "synthetic/train"),
        test: make(SYNTHETIC_TRAIN / 2, "synthetic/test"),
        classes: 10,
        mean: [0.5; 3],
        std: [0.25; 3],
        source: PathBuf::from("<generated>"),
    }
}

fn not_found(kind: DatasetKind, dir: &Path, looked: &[PathBuf], layouts: &str, hub: &str) -> Error {
    Error::DataMissing(format!(
        "no {kind} data found under --data-dir {} (looked in: {}; Hugging Face hub: {hub}). Accepted layouts: {layouts}",
        dir.display(),
        looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    ))
}
