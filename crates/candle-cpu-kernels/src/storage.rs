//! The contiguous f32 data behind a tensor, as the kernels read it.

use candle_core::{CpuStorage, Layout, Result, Storage};
use std::mem::MaybeUninit;

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

/// A vector of `len` values that `fill` writes, every one of them (through `MaybeUninit::write`), into
/// memory that is never zeroed: zeroing the outputs that a kernel overwrites anyway was ~1 % of a width-1/8
/// training step. SAFETY: `fill` writes every element of the slice it is given (if it panics instead, the
/// vector is dropped empty).
pub(crate) unsafe fn written<T>(len: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: the first `len` elements are initialised (the caller's guarantee) and within the capacity.
    unsafe { v.set_len(len) };
    v
}
