//! Every dataset loader on arbitrary file contents (the first byte picks the format): CIFAR-10 binary
//! batches, STL-10 image and label files, an image-folder .tar.gz, a Hugging Face parquet file. Each
//! must load or return an error naming the file, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

use eigenssl::data::{cifar10, image_folder, parquet, stl10};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(match kind % 5 {
        0 => "data_batch_1.bin",
        1 => "train_X.bin",
        2 => "train_y.bin",
        3 => "cifar10.tar.gz",
        _ => "train-00000-of-00001.parquet",
    });
    std::fs::write(&file, bytes).expect("write");
    let path = file.display().to_string();
    let named = |e: eigenssl::Error| assert!(e.to_string().contains(&path), "error does not name the file: {e}");
    match kind % 5 {
        0 => cifar10::read_binary(std::slice::from_ref(&file)).err().map(named),
        1 => stl10::read_images(&file).err().map(named),
        2 => stl10::read_labels(&file, 4).err().map(named),
        3 => image_folder::load_tar_gz(&file, 32, 32).err().map(named),
        _ => parquet::read_split(&[&file], 32).err().map(named),
    };
});
