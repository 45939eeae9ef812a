//! The contiguous f32 data behind a tensor, as the kernels read it.

use candle_core::{CpuStorage, Layout, Result, Storage};

/// The contiguous f32 data of a storage and layout.
pub(crate) fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let (a, b) = l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("custom op: non-contiguous input".into()))?;
    Ok(&s.as_slice::<f32>()?[a..b])
}

/// The contiguous f32 data of a CPU tensor's storage (the fused kernels' inputs).
pub(crate) fn cpu_slice<'a>(storage: &'a Storage, layout: &Layout) -> Result<&'a [f32]> {
    match storage {
        Storage::Cpu(cpu) => contiguous_f32(cpu, layout),
        _ => candle_core::bail!("the fused batch-norm kernels run on CPU only"),
    }
}

