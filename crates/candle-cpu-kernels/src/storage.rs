//! The contiguous f32 data behind a tensor, as the kernels read it, and the buffers they write into.

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

/// A worker thread's scratch buffer, kept between tasks and calls so that a kernel does not allocate and
/// zero one per rayon task, image or layer (together ~3 % of a width-1/8 step). Its users hold it through a
/// `thread_local!` and do not call into rayon meanwhile, so that no task of the same worker re-enters it.
pub(crate) struct KeptBuffer {
    /// (images, height, width) whose plane interiors alone the buffer has been written at since
    /// [`Self::zeroed_for`] zeroed it.
    layout: (usize, usize, usize),
    values: Vec<f32>,
}

impl KeptBuffer {
    pub(crate) const fn new() -> Self {
        KeptBuffer { layout: (0, 0, 0), values: Vec::new() }
    }

    /// The first `len` values, zero outside the interiors of `layout`'s planes: zeroed when the layout
    /// differs from the last call's (a caller that writes only those interiors keeps the borders zero).
    pub(crate) fn zeroed_for(&mut self, layout: (usize, usize, usize), len: usize) -> &mut [f32] {
        if self.layout != layout || self.values.len() < len {
            self.values.clear();
            self.values.resize(len, 0.0);
            self.layout = layout;
        }
        &mut self.values[..len]
    }

    /// The first `len` values, contents undefined: for a caller that overwrites what it reads.
    pub(crate) fn resized(&mut self, len: usize) -> &mut [f32] {
        if self.values.len() < len {
            self.values.resize(len, 0.0);
        }
        &mut self.values[..len]
    }
}
