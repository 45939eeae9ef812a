//! STL-10 from the official binary folder `stl10_binary/`: `train_X.bin`, `unlabeled_X.bin`, `test_X.bin`
//! (u8 images of 3×96×96, each channel stored column-major) and `train_y.bin`, `test_y.bin` (labels 1–10).
//! Pre-training uses train + unlabeled (label −1), the readout's test split is `test`.

use std::path::{Path, PathBuf};

use super::{Dataset, Split};
use crate::error::{Error, Result};

pub const LAYOUTS: &str = "stl10_binary/ with train_X.bin, train_y.bin, unlabeled_X.bin, test_X.bin, test_y.bin; \
     stl10-parquet/ with train*, unlabeled* and test*.parquet (Hugging Face tanganke/stl10 files)";
const SIDE: usize = 96;
const IMAGE: usize = 3 * SIDE * SIDE;

pub fn candidates(dir: &Path) -> Vec<PathBuf> {
    let mut c = vec![dir.join("stl10_binary"), dir.join("stl10-parquet"), dir.join("stl10")];
    if dir.join("train_X.bin").exists() {
        c.push(dir.to_path_buf());
    }
    c
}

/// Reads images from an STL-10 `*_X.bin` file, transposing each column-major channel to row-major HWC.
pub fn read_images(path: &Path) -> Result<(Vec<u8>, usize)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.is_empty() || bytes.len() % IMAGE != 0 {
        return Err(Error::Record {
            path: path.to_path_buf(),
            msg: format!("{} bytes is not a whole number of {IMAGE}-byte 3×96×96 images", bytes.len()),
        });
    }
    let n = bytes.len() / IMAGE;
    let mut out = vec![0u8; bytes.len()];
    for (img, dst) in bytes.chunks_exact(IMAGE).zip(out.chunks_exact_mut(IMAGE)) {
        for c in 0..3 {
            for col in 0..SIDE {
                for row in 0..SIDE {
                    dst[(row * SIDE + col) * 3 + c] = img[c * SIDE * SIDE + col * SIDE + row];
                }
            }
        }
    }
    Ok((out, n))
}

/// Reads `n` labels (bytes 1–10) from an STL-10 `*_y.bin` file, as 0-based classes.
pub fn read_labels(path: &Path, n: usize) -> Result<Vec<i64>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() != n {
        return Err(Error::Record { path: path.to_path_buf(), msg: format!("{} labels for {n} images", bytes.len()) });
    }
    bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (1..=10).contains(&b) {
                Ok(b as i64 - 1)
            } else {
                Err(Error::Record { path: path.to_path_buf(), msg: format!("label {b} at byte {i} not in 1..=10") })
            }
        })
        .collect()
}

/// STL-10 from Hugging Face parquet files: pre-training on `train*` + `unlabeled*` (if present), readout
/// test on `test*`.
pub fn from_parquet(files: &[PathBuf], source: &Path) -> Result<Dataset> {
    use super::parquet::{read_split, split_files};
    let need = |name: &str| {
        let f = split_files(files, name);
        if f.is_empty() {
            return Err(Error::Record { path: source.to_path_buf(), msg: format!("no {name}*.parquet file") });
        }
        Ok(f)
    };
    let mut train_files = need("train")?;
    train_files.extend(split_files(files, "unlabeled"));
    let train = read_split(&train_files, SIDE)?;
    let test = read_split(&need("test")?, SIDE)?;
    train.validate(10, source)?;
    test.validate(10, source)?;
    Ok(dataset(train, test, source))
}

fn dataset(train: Split, test: Split, source: &Path) -> Dataset {
    Dataset {
        kind: super::DatasetKind::Stl10,
        train,
        test,
        classes: 10,
        mean: [0.4914, 0.4823, 0.4466],
        std: [0.247, 0.243, 0.261],
        source: source.to_path_buf(),
    }
}

pub fn load(dir: &Path) -> Result<Dataset> {
    if !dir.join("train_X.bin").exists() {
        let files = super::parquet::parquet_files(dir);
        if !files.is_empty() {
            return from_parquet(&files, dir);
        }
    }
    let (mut pixels, n) = read_images(&dir.join("train_X.bin"))?;
    let mut labels = read_labels(&dir.join("train_y.bin"), n)?;
    let unl = dir.join("unlabeled_X.bin");
    if unl.exists() {
        let (px, m) = read_images(&unl)?;
        pixels.extend_from_slice(&px);
        labels.extend(std::iter::repeat_n(-1, m));
    }
    let (tpx, tn) = read_images(&dir.join("test_X.bin"))?;
    let test = Split { h: SIDE, w: SIDE, pixels: tpx, labels: read_labels(&dir.join("test_y.bin"), tn)? };
    let train = Split { h: SIDE, w: SIDE, pixels, labels };
    train.validate(10, dir)?;
    test.validate(10, dir)?;
    Ok(dataset(train, test, dir))
}
