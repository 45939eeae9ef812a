//! Image folders: `train/<class>/<image>` and `test/<class>/<image>` (JPEG or PNG), as a directory or a
//! `.tar.gz` of one. Classes are the sorted names of `train/`'s subfolders; images are taken in sorted
//! file-name order, so loading is deterministic. Decoding runs in parallel.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::Split;
use crate::error::{Error, Result};

/// (split, class, file name) → encoded bytes, sorted.
type Files = BTreeMap<(String, String, String), Vec<u8>>;

/// Loads an image folder directory; every image must be `h`×`w`.
pub fn load_dir(root: &Path, h: usize, w: usize) -> Result<(Split, Split, Vec<String>)> {
    let mut files = Files::new();
    for split in ["train", "test"] {
        let sdir = root.join(split);
        let classes = std::fs::read_dir(&sdir).map_err(|e| Error::io(&sdir, e))?;
        for class in classes {
            let class = class.map_err(|e| Error::io(&sdir, e))?;
            if !class.path().is_dir() {
                continue;
            }
            let cname = class.file_name().to_string_lossy().into_owned();
            for img in std::fs::read_dir(class.path()).map_err(|e| Error::io(class.path(), e))? {
                let img = img.map_err(|e| Error::io(class.path(), e))?.path();
                if img.is_file() {
                    let bytes = std::fs::read(&img).map_err(|e| Error::io(&img, e))?;
                    let fname = img.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                    files.insert((split.to_string(), cname.clone(), fname), bytes);
                }
            }
        }
    }
    decode_all(root, files, h, w)
}

/// Loads a `.tar.gz` of an image folder (an optional top folder above `train/` and `test/` is allowed).
pub fn load_tar_gz(path: &Path, h: usize, w: usize) -> Result<(Split, Split, Vec<String>)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut files = Files::new();
    let bad = |msg: String| Error::Record { path: path.to_path_buf(), msg };
    for entry in archive.entries().map_err(|e| bad(format!("not a readable tar.gz: {e}")))? {
        let mut entry = entry.map_err(|e| bad(format!("corrupt archive entry: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name: PathBuf = entry.path().map_err(|e| bad(format!("bad entry name: {e}")))?.into_owned();
        let parts: Vec<String> = name.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        let Some(i) = parts.iter().position(|p| p == "train" || p == "test") else { continue };
        if parts.len() != i + 3 {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| bad(format!("{}: truncated entry: {e}", name.display())))?;
        files.insert((parts[i].clone(), parts[i + 1].clone(), parts[i + 2].clone()), bytes);
    }
    decode_all(path, files, h, w)
}

fn decode_all(source: &Path, files: Files, h: usize, w: usize) -> Result<(Split, Split, Vec<String>)> {
    let classes: Vec<String> = {
        let set: std::collections::BTreeSet<&String> =
            files.keys().filter(|k| k.0 == "train").map(|k| &k.1).collect();
        set.into_iter().cloned().collect()
    };
    if classes.is_empty() {
        return Err(Error::Record { path: source.to_path_buf(), msg: "no train/<class>/<image> files".into() });
    }
    let mut splits = Vec::new();
    for split in ["train", "test"] {
        let items: Vec<(&(String, String, String), &Vec<u8>)> = files.iter().filter(|(k, _)| k.0 == split).collect();
        if items.is_empty() {
            return Err(Error::Record { path: source.to_path_buf(), msg: format!("no {split}/<class>/<image> files") });
        }
        let decoded: Vec<Result<(i64, Vec<u8>)>> = items
            .par_iter()
            .map(|((s, class, fname), bytes)| {
                let place = || source.join(s).join(class).join(fname);
                let label = classes.iter().position(|c| c == class).ok_or_else(|| Error::Record {
                    path: place(),
                    msg: format!("class `{class}` is not among train/'s classes"),
                })? as i64;
                let img = image::load_from_memory(bytes)
                    .map_err(|e| Error::Record { path: place(), msg: format!("cannot decode image: {e}") })?
                    .to_rgb8();
                if img.width() as usize != w || img.height() as usize != h {
                    return Err(Error::Record {
                        path: place(),
                        msg: format!("image is {}×{}, expected {w}×{h}", img.width(), img.height()),
                    });
                }
                Ok((label, img.into_raw()))
            })
            .collect();
        let mut pixels = Vec::with_capacity(items.len() * h * w * 3);
        let mut labels = Vec::with_capacity(items.len());
        for d in decoded {
            let (l, px) = d?;
            labels.push(l);
            pixels.extend_from_slice(&px);
        }
        splits.push(Split { h, w, pixels, labels });
    }
    let test = splits.pop().expect("two splits");
    let train = splits.pop().expect("two splits");
    Ok((train, test, classes))
}
