//! The machine a benchmark ran on: its CPU model and vector instruction set name the folder the results
//! are kept in, so that a run on one kind of machine never erases another's.

use serde::{Deserialize, Serialize};

/// The CPU a benchmark measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// `vendor_id` of /proc/cpuinfo (`GenuineIntel`, `AuthenticAMD`), "unknown" elsewhere.
    pub vendor: String,
    /// `model name` of /proc/cpuinfo, as the kernel reports it.
    pub model: String,
    /// Logical cores this process may use.
    pub cores: usize,
    /// The vector instruction set the kernels use.
    pub simd: String,
}

impl Machine {
    /// This machine.
    pub fn this() -> Self {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let (vendor, model) = from_cpuinfo(&info);
        Machine { vendor, model, cores: num_cpus::get(), simd: crate::harness::provenance::simd_level().to_string() }
    }

    /// The folder name of this machine's results: the model name and the SIMD level in lower case, every
    /// run of other characters than letters and digits one `-` (`AMD EPYC 9B14`, `avx512f` →
    /// `amd-epyc-9b14-avx512f`). The level is part of it because virtual machines may report one model
    /// name ("AMD EPYC") for CPUs with and without AVX-512, whose kernels differ.
    pub fn slug(&self) -> String {
        let mut slug = String::new();
        for c in format!("{} {}", self.model, self.simd).chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        let slug = slug.trim_end_matches('-');
        if slug.is_empty() { "unknown-cpu".to_string() } else { slug.to_string() }
    }
}

/// (vendor, model name) of the first processor in a /proc/cpuinfo text; "unknown" where absent.
fn from_cpuinfo(info: &str) -> (String, String) {
    let field = |name: &str| {
        info.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unknown".to_string())
    };
    (field("vendor_id"), field("model name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_names_its_folder() {
        let info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz\nflags\t: fpu\n\nprocessor\t: 1\n";
        let (vendor, model) = from_cpuinfo(info);
        assert_eq!((vendor.as_str(), model.as_str()), ("GenuineIntel", "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"));
        let m = Machine { vendor, model, cores: 2, simd: "avx512f".into() };
        assert_eq!(m.slug(), "intel-r-xeon-r-platinum-8481c-cpu-2-70ghz-avx512f");
        let amd = Machine { model: "AMD EPYC".into(), simd: "avx2+fma".into(), ..m.clone() };
        assert_eq!(amd.slug(), "amd-epyc-avx2-fma");
        assert_eq!(Machine { model: "!!".into(), simd: "".into(), ..m }.slug(), "unknown-cpu");
        assert_eq!(from_cpuinfo(""), ("unknown".to_string(), "unknown".to_string()));
    }
}
