//! The experiment-spec parser on arbitrary text: it must return a spec or an error, never panic; a
//! spec it accepts must plan its runs without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(exp) = eigenssl::spec::Experiment::parse(text, std::path::Path::new("fuzz.yaml")) {
        for name in exp.profiles.keys() {
            let _ = exp.runs(name, None);
        }
    }
});
