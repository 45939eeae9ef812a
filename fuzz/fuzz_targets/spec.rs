//! The experiment-spec parser on arbitrary text: it must return a spec or an error, never panic; a
//! spec it accepts must plan its runs without panicking, and every path the store derives for them must
//! lie under the results folder.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::{Component, Path};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(exp) = eigenssl::spec::Experiment::parse(text, Path::new("fuzz.yaml")) {
        let out = Path::new("/results-root");
        for name in exp.profiles.keys() {
            let store = eigenssl::harness::store::Store::new(out, &exp.name, name);
            for run in exp.runs(name, None).unwrap_or_default() {
                let path = store.run_path(&run);
                let rel = path.strip_prefix(out).expect("a record path under --out");
                assert!(rel.components().all(|c| matches!(c, Component::Normal(_))), "{} leaves --out", path.display());
            }
        }
    }
});
