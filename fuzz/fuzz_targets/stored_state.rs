//! What a previous process left on disk, on arbitrary bytes: a run record and a training checkpoint.
//! Both must read or fail with an error naming the file, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(if kind % 2 == 0 { "run.json" } else { "run.safetensors" });
    std::fs::write(&file, bytes).expect("write");
    let path = file.display().to_string();
    let msg = if kind % 2 == 0 {
        eigenssl::harness::store::read_record(&file).err().map(|e| e.to_string())
    } else {
        eigenssl::ssl::checkpoint::load(&file, &candle_core::Device::Cpu).err().map(|e| e.to_string())
    };
    if let Some(m) = msg {
        assert!(m.contains(&path), "error does not name the file: {m}");
    }
});
