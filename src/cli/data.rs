//! `eigenssl data`: what each dataset's loader finds.

use std::path::PathBuf;
use std::process::ExitCode;

use eigenssl::data::DatasetKind;

use super::EXIT_NO_DATA;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Where datasets are looked for.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Fetch what is missing from the Hugging Face hub (hf-hub; needs the network).
    #[arg(long)]
    download: bool,
}

impl Args {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        data(&self.data_dir, self.download)
    }
}

/// `data`: what each dataset's loader finds under `data_dir` (and in the hub's cache); exit 3 when a
/// dataset is missing.
fn data(data_dir: &std::path::Path, download: bool) -> anyhow::Result<ExitCode> {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(["dataset", "found", "format", "train / test images", "content sha256", "source"]);
    let mut missing = Vec::new();
    for kind in [DatasetKind::Cifar10, DatasetKind::Stl10] {
        match eigenssl::data::find_with(kind, data_dir, download) {
            Ok(d) => {
                let f = d.fingerprint();
                table.add_row([kind.label().to_string(), "yes".into(), f.format, format!("{} / {}", f.train_images, f.test_images), f.sha256[..16].to_string(), f.source.display().to_string()]);
            }
            Err(eigenssl::Error::DataMissing(why)) => {
                table.add_row([kind.label().to_string(), "missing".into(), String::new(), String::new(), String::new(), String::new()]);
                missing.push(why);
            }
            Err(e) => return Err(e.into()),
        }
    }
    println!("{table}");
    for why in &missing {
        println!("{why}");
    }
    if missing.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        println!("Put a dataset in one of those layouts under --data-dir, or fetch it: eigenssl data --download (Hugging Face hub).");
        Ok(ExitCode::from(EXIT_NO_DATA))
    }
}
