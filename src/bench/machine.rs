//! The machine a benchmark ran on: its CPU model and vector instruction set name the folder the results
//! are kept in, so that a run on one kind of machine never erases another's.

use candle_cpu_kernels::SimdLevel;
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
    /// The CPU's own, wider instruction set, where the build stopped short of it (a build without the
    /// `avx512` feature on an AVX-512 CPU, standing in for a CPU without AVX-512); `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capped_from: Option<String>,
}

impl Machine {
    /// This machine.
    pub fn this() -> Self {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let (vendor, model) = from_cpuinfo(&info);
        let (used, offered) = (SimdLevel::in_use(), SimdLevel::of_cpu());
        let capped_from = (used != offered).then(|| offered.name().to_string());
        Machine { vendor, model, cores: num_cpus::get(), simd: used.name().to_string(), capped_from }
    }

    /// The instruction set in words: `avx2+fma`, or `avx2+fma (capped, on an avx512f CPU)`.
    pub fn simd_in_words(&self) -> String {
        match &self.capped_from {
            Some(cpu) => format!("{} (capped, on an {cpu} CPU)", self.simd),
            None => self.simd.clone(),
        }
    }

    /// The folder name of this machine's results: the model name and the SIMD level in lower case, every
    /// run of other characters than letters and digits one `-` (`AMD EPYC 9B14`, `avx512f` →
    /// `amd-epyc-9b14-avx512f`). The level is part of it because virtual machines may report one model
    /// name ("AMD EPYC") for CPUs with and without AVX-512, whose kernels differ. A capped build's folder
    /// also names the CPU's level (`amd-epyc-avx2-fma-on-avx512f`), so it never takes the place of a
    /// real AVX2 machine's results.
    pub fn slug(&self) -> String {
        let on = self.capped_from.as_deref().map(|cpu| format!(" on {cpu}")).unwrap_or_default();
        let mut slug = String::new();
        for c in format!("{} {}{on}", self.model, self.simd).chars() {
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
        let m = Machine { vendor, model, cores: 2, simd: "avx512f".into(), capped_from: None };
        assert_eq!(m.slug(), "intel-r-xeon-r-platinum-8481c-cpu-2-70ghz-avx512f");
        let amd = Machine { model: "AMD EPYC".into(), simd: "avx2+fma".into(), ..m.clone() };
        assert_eq!(amd.slug(), "amd-epyc-avx2-fma");
        let capped = Machine { capped_from: Some("avx512f".into()), ..amd.clone() };
        assert_eq!(capped.slug(), "amd-epyc-avx2-fma-on-avx512f");
        assert_eq!(capped.simd_in_words(), "avx2+fma (capped, on an avx512f CPU)");
        assert_eq!(Machine { model: "!!".into(), simd: "".into(), ..m }.slug(), "unknown-cpu");
        assert_eq!(from_cpuinfo(""), ("unknown".to_string(), "unknown".to_string()));
    }
}
