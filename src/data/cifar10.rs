//! CIFAR-10: the official binary batches (`cifar-10-batches-bin/data_batch_{1..5}.bin`, `test_batch.bin`;
//! each record is a label byte then 1024 R, 1024 G, 1024 B bytes, row-major 32×32) or an image folder /
//! its `.tar.gz` (the layout of `cifar10-jpeg.tar.gz`: `train/<class>/NNNN.jpg`, `test/<class>/NNNN.jpg`).

use std::path::{Path, PathBuf};

use super::{image_folder, Dataset, Split};
use crate::error::{Error, Result};

pub const LAYOUTS: &str = "cifar-10-batches-bin/ (official binary), cifar10/{train,test}/<class>/*.jpg|png \
     (image folder), cifar10-jpeg.tar.gz or cifar10.tar.gz (that folder, archived), cifar10-parquet/ with \
     train*.parquet and test*.parquet (Hugging Face uoft-cs/cifar10 files)";

const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
const STD: [f32; 3] = [0.2470, 0.2435, 0.2616];
const RECORD: usize = 1 + 3 * 1024;

/// Paths tried under a data folder, in order.
pub fn candidates(dir: &Path) -> Vec<PathBuf> {
    let mut c = vec![
        dir.join("cifar-10-batches-bin"),
        dir.join("cifar10-parquet"),
        dir.join("cifar10"),
        dir.join("cifar10-jpeg.tar.gz"),
        dir.join("cifar10.tar.gz"),
    ];
    // The data folder may itself be the image folder or the archive.
    if dir.join("train").is_dir() || dir.extension().is_some_and(|e| e == "gz") {
        c.push(dir.to_path_buf());
    }
    c
}

/// CIFAR-10 from Hugging Face parquet files (`train*`, `test*`; `source` names them in errors).
pub fn from_parquet(files: &[PathBuf], source: &Path) -> Result<Dataset> {
    let split = |name: &str| {
        let f = super::parquet::split_files(files, name);
        if f.is_empty() {
            return Err(Error::Record { path: source.to_path_buf(), msg: format!("no {name}*.parquet file") });
        }
        super::parquet::read_split(&f, 32)
    };
    let (train, test) = (split("train")?, split("test")?);
    train.validate(10, source)?;
    test.validate(10, source)?;
    Ok(Dataset { kind: super::DatasetKind::Cifar10, train, test, classes: 10, mean: MEAN, std: STD, source: source.to_path_buf() })
}

/// Loads from a binary folder, a parquet folder, an image folder or a `.tar.gz`.
pub fn load(path: &Path) -> Result<Dataset> {
    if path.is_dir() && !path.join("train").is_dir() {
        let files = super::parquet::parquet_files(path);
        if !files.is_empty() {
            return from_parquet(&files, path);
        }
    }
    let (train, test) = if path.join("data_batch_1.bin").exists() {
        let files: Vec<PathBuf> = (1..=5).map(|i| path.join(format!("data_batch_{i}.bin"))).collect();
        (read_binary(&files)?, read_binary(&[path.join("test_batch.bin")])?)
    } else if path.extension().is_some_and(|e| e == "gz") {
        let (train, test, _) = image_folder::load_tar_gz(path, 32, 32)?;
        (train, test)
    } else {
        let (train, test, _) = image_folder::load_dir(path, 32, 32)?;
        (train, test)
    };
    train.validate(10, path)?;
    test.validate(10, path)?;
    Ok(Dataset { kind: super::DatasetKind::Cifar10, train, test, classes: 10, mean: MEAN, std: STD, source: path.to_path_buf() })
}

/// Reads CIFAR-10 binary batch files into one split.
pub fn read_binary(files: &[PathBuf]) -> Result<Split> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).map_err(|e| Error::io(f, e))?;
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            return Err(Error::Record {
                path: f.clone(),
                msg: format!("{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records", bytes.len()),
            });
        }
        for (k, rec) in bytes.chunks_exact(RECORD).enumerate() {
            if rec[0] > 9 {
                return Err(Error::Record { path: f.clone(), msg: format!("record {k}: label {} not in 0..10", rec[0]) });
            }
            labels.push(rec[0] as i64);
            let planes = &rec[1..];
            // Planes (R, G, B) of 32×32 row-major → interleaved HWC.
            for p in 0..1024 {
                pixels.extend_from_slice(&[planes[p], planes[1024 + p], planes[2048 + p]]);
            }
        }
    }
    Ok(Split { h: 32, w: 32, pixels, labels })
}
