//! Hugging Face parquet exports of image datasets, from a local folder or through hf-hub (downloaded
//! once into the Hugging Face cache, `HF_HOME`, and read from there afterwards; `HF_HUB_OFFLINE=1` only
//! reads the cache). One row per image: an image column (`img` or `image`, a struct whose `bytes` field
//! holds the encoded PNG/JPEG, as `datasets` writes it) and an integer `label` column (−1 or null for
//! unlabelled rows). A file's split is read off its name: `train`, `test` or `unlabeled`.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use rayon::prelude::*;

use super::Split;
use crate::error::{Error, Result};

/// A dataset's repository on the Hugging Face hub.
#[derive(Debug, Clone, Copy)]
pub struct HubDataset {
    pub repo: &'static str,
}

pub const CIFAR10_HUB: HubDataset = HubDataset { repo: "uoft-cs/cifar10" };
pub const STL10_HUB: HubDataset = HubDataset { repo: "tanganke/stl10" };

const IMAGE_COLUMNS: [&str; 2] = ["img", "image"];

/// Every `*.parquet` file below `dir`, sorted.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The files of `split` among `files` (by file name; `train` does not match `unlabeled`).
pub fn split_files<'a>(files: &'a [PathBuf], split: &str) -> Vec<&'a PathBuf> {
    files
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n.to_string_lossy().starts_with(split) || n.to_string_lossy().contains(&format!("-{split}"))))
        .collect()
}

/// Reads the images and labels of `files` into one split of `side`×`side` RGB images.
pub fn read_split(files: &[&PathBuf], side: usize) -> Result<Split> {
    let mut rows: Vec<(PathBuf, usize, Vec<u8>, i64)> = Vec::new();
    for path in files {
        read_rows(path, &mut rows)?;
    }
    let decoded: Vec<Result<Vec<u8>>> = rows
        .par_iter()
        .map(|(path, row, bytes, _)| {
            let bad = |msg: String| Error::Record { path: path.clone(), msg: format!("row {row}: {msg}") };
            let img = image::load_from_memory(bytes).map_err(|e| bad(format!("cannot decode image: {e}")))?.to_rgb8();
            if img.width() as usize != side || img.height() as usize != side {
                return Err(bad(format!("image is {}×{}, expected {side}×{side}", img.width(), img.height())));
            }
            Ok(img.into_raw())
        })
        .collect();
    let mut pixels = Vec::with_capacity(rows.len() * side * side * 3);
    for d in decoded {
        pixels.extend_from_slice(&d?);
    }
    Ok(Split { h: side, w: side, pixels, labels: rows.iter().map(|r| r.3).collect() })
}

/// Appends (file, row, encoded image, label) of every row of `path`.
fn read_rows(path: &Path, out: &mut Vec<(PathBuf, usize, Vec<u8>, i64)>) -> Result<()> {
    let bad = |msg: String| Error::Record { path: path.to_path_buf(), msg };
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = SerializedFileReader::new(file).map_err(|e| bad(format!("not a readable parquet file: {e}")))?;
    let schema = reader.metadata().file_metadata().schema_descr().root_schema();
    let names: Vec<&str> = schema.get_fields().iter().map(|f| f.name()).collect();
    let image_col = IMAGE_COLUMNS.iter().find(|c| names.contains(c)).ok_or_else(|| {
        bad(format!("no image column (expected `img` or `image`; columns: {})", names.join(", ")))
    })?;
    if !names.contains(&"label") {
        return Err(bad(format!("no `label` column (columns: {})", names.join(", "))));
    }
    let rows = reader.get_row_iter(None).map_err(|e| bad(format!("cannot read rows: {e}")))?;
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| bad(format!("row {i}: {e} (truncated file?)")))?;
        let (mut bytes, mut label) = (None, None);
        for (name, field) in row.get_column_iter() {
            if name == image_col {
                bytes = match field {
                    Field::Group(g) => g.get_column_iter().find_map(|(n, f)| match (n.as_str(), f) {
                        ("bytes", Field::Bytes(b)) => Some(b.data().to_vec()),
                        _ => None,
                    }),
                    Field::Bytes(b) => Some(b.data().to_vec()),
                    _ => None,
                };
            } else if name == "label" {
                label = match field {
                    Field::Long(v) => Some(*v),
                    Field::Int(v) => Some(*v as i64),
                    Field::Short(v) => Some(*v as i64),
                    Field::Byte(v) => Some(*v as i64),
                    Field::Null => Some(-1),
                    other => return Err(bad(format!("row {i}: `label` is {other:?}, expected an integer"))),
                };
            }
        }
        let bytes = bytes.ok_or_else(|| bad(format!("row {i}: `{image_col}` holds no encoded image bytes")))?;
        out.push((path.to_path_buf(), i, bytes, label.unwrap_or(-1)));
    }
    Ok(())
}

impl HubDataset {
    /// The parquet files of this repository in the Hugging Face cache rooted at `cache_root` (any
    /// revision; hf-hub's layout `datasets--<owner>--<name>/snapshots/<revision>/...`).
    pub fn cached_files_in(&self, cache_root: &Path) -> Vec<PathBuf> {
        parquet_files(&self.repo_dir(cache_root).join("snapshots"))
    }

    fn repo_dir(&self, cache_root: &Path) -> PathBuf {
        cache_root.join(format!("datasets--{}", self.repo.replace('/', "--")))
    }

    /// This repository's folder in the Hugging Face cache of the environment (`HF_HOME`).
    pub fn cache_dir(&self) -> PathBuf {
        self.repo_dir(hf_hub::Cache::from_env().path())
    }

    /// The repository's parquet files: from the cache, else (with `download`) downloaded into it unless
    /// `HF_HUB_OFFLINE` is set. The error says why nothing came.
    pub fn files(&self, download: bool) -> std::result::Result<Vec<PathBuf>, String> {
        let cached = self.cached_files_in(hf_hub::Cache::from_env().path());
        if !cached.is_empty() {
            return Ok(cached);
        }
        if !download {
            return Err(format!("not in the Hugging Face cache {} (`eigenssl data --download` fetches it)", self.cache_dir().display()));
        }
        if std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v != "0" && !v.is_empty()) {
            return Err(format!("not in the Hugging Face cache {} and HF_HUB_OFFLINE is set", self.cache_dir().display()));
        }
        let api = hf_hub::api::sync::ApiBuilder::from_env()
            .with_progress(true)
            .build()
            .map_err(|e| format!("hf-hub: {e}"))?;
        let repo = api.dataset(self.repo.to_string());
        let info = repo.info().map_err(|e| format!("hf-hub could not reach dataset {}: {e}", self.repo))?;
        let mut files = Vec::new();
        for s in info.siblings.iter().filter(|s| s.rfilename.ends_with(".parquet")) {
            files.push(repo.get(&s.rfilename).map_err(|e| format!("hf-hub download of {}/{}: {e}", self.repo, s.rfilename))?);
        }
        if files.is_empty() {
            return Err(format!("dataset {} on the hub lists no parquet files", self.repo));
        }
        Ok(files)
    }
}
