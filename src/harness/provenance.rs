//! Where results come from: the code the binary was built from (embedded by `build.rs`), the toolchain,
//! and the instruction set the kernels run with.

/// Version of candle-core this binary was built with (read from Cargo.lock by build.rs).
pub const CANDLE_VERSION: &str = env!("EIGENSSL_CANDLE_VERSION");
/// The commit this binary was built from (`unknown` outside git).
pub const BUILD_COMMIT: &str = env!("EIGENSSL_BUILD_COMMIT");
/// sha256 of the uncommitted changes to the sources it was built from; empty when there were none.
const SOURCE_DIFF: &str = env!("EIGENSSL_SOURCE_DIFF");
pub const RUSTC_VERSION: &str = env!("EIGENSSL_RUSTC");
pub const TARGET: &str = env!("EIGENSSL_TARGET");

/// The hash of the uncommitted source changes the binary was built with, if any.
pub fn source_diff() -> Option<&'static str> {
    (!SOURCE_DIFF.is_empty()).then_some(SOURCE_DIFF)
}

/// The vector instruction set this build's GEMM kernels (the `gemm` crate, which candle and our
/// convolutions use) dispatch to on this CPU: it decides the summation order, hence the last bits.
pub fn simd_level() -> &'static str {
    candle_cpu_kernels::SimdLevel::in_use().name()
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
