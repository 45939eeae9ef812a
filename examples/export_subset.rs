//! Writes the images a Table 1 profile trains and tests on, decoded by eigenssl, for the PyTorch twin's
//! whole-cell runs (`bench/torch_twin.py cells`): the same subset, the same pixels (no second JPEG
//! decoder), and the resolved config of every cell. Not committed: it is data.
//!
//! Usage: cargo run --release --example export_subset -- <data-dir> <profile> <out.safetensors>

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use eigenssl::spec::{Experiment, RunConfig};
use eigenssl::ssl::train::subset;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data_dir, profile, out] = args.as_slice() else { bail!("usage: export_subset <data-dir> <profile> <out.safetensors>") };
    let exp = Experiment::find("table1", "experiments".as_ref())?;
    let runs = exp.runs(profile, Some(&[0]))?;
    let mut configs = serde_json::Map::new();
    let mut first = None;
    for run in &runs {
        let RunConfig::Ssl(cfg) = &run.config else { bail!("non-SSL run") };
        if cfg.dataset != eigenssl::data::DatasetKind::Cifar10 {
            continue;
        }
        configs.insert(run.cell.clone(), serde_json::to_value(cfg)?);
        first.get_or_insert(cfg.clone());
    }
    let cfg = first.context("the profile has no CIFAR-10 cell")?;
    let data = eigenssl::data::find(cfg.dataset, &PathBuf::from(data_dir))?;
    let mut tensors = Vec::new();
    for (name, split, n) in [("train", &data.train, cfg.train_subset), ("test", &data.test, cfg.test_subset)] {
        let idx = subset(split.len(), n, &format!("subset/{name}"));
        let pixels: Vec<u8> = idx.iter().flat_map(|&i| split.image(i).iter().copied()).collect();
        let labels: Vec<i64> = idx.iter().map(|&i| split.labels[i]).collect();
        tensors.push((format!("{name}/images"), Tensor::from_vec(pixels, (idx.len(), split.h, split.w, 3), &Device::Cpu)?));
        tensors.push((format!("{name}/labels"), Tensor::from_vec(labels, idx.len(), &Device::Cpu)?));
    }
    let meta = HashMap::from([
        ("configs".to_string(), serde_json::Value::Object(configs).to_string()),
        ("mean".to_string(), serde_json::to_string(&data.mean)?),
        ("std".to_string(), serde_json::to_string(&data.std)?),
        ("source".to_string(), data.source.display().to_string()),
    ]);
    std::fs::write(out, safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))?)?;
    println!("{out}: {} train, {} test images", tensors[1].1.dims()[0], tensors[3].1.dims()[0]);
    Ok(())
}
