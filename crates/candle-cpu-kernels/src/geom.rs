//! The shapes of one convolution, and the row copy every convolution kernel uses.

use candle_core::{Result, Shape};

/// Shapes of one convolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Geom {
    pub(crate) n: usize,
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) k: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) stride: usize,
    pub(crate) pad: usize,
    pub(crate) oh: usize,
    pub(crate) ow: usize,
}

impl Geom {
    pub(crate) fn new(x: &[usize], wt: &[usize], stride: usize, pad: usize) -> Result<Self> {
        let [n, c, h, w]: [usize; 4] = x.try_into().map_err(|_| shape_err(x))?;
        let [k, c2, kh, kw]: [usize; 4] = wt.try_into().map_err(|_| shape_err(wt))?;
        if c != c2 {
            candle_core::bail!("conv2d: input has {c} channels, weight expects {c2}");
        }
        if h + 2 * pad < kh || w + 2 * pad < kw {
            candle_core::bail!("conv2d: kernel {kh}×{kw} larger than padded input {h}×{w} (+{pad})");
        }
        let (oh, ow) = ((h + 2 * pad - kh) / stride + 1, (w + 2 * pad - kw) / stride + 1);
        Ok(Geom { n, c, h, w, k, kh, kw, stride, pad, oh, ow })
    }
    /// Rows of the column matrix: C·kh·kw.
    pub(crate) fn ckk(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Output positions per image.
    pub(crate) fn p(&self) -> usize {
        self.oh * self.ow
    }
    pub(crate) fn output_shape(&self) -> Shape {
        Shape::from((self.n, self.k, self.oh, self.ow))
    }
}

pub(crate) fn shape_err(d: &[usize]) -> candle_core::Error {
    candle_core::Error::Msg(format!("conv2d: expected a 4-d shape, got {d:?}"))
}

/// Copies a row of a feature map: fixed-size moves for VGG's small widths, where a `memcpy` call per
/// row of 2 to 16 floats cost more than the copy.
#[inline(always)]
pub(crate) fn copy_row(dst: &mut [f32], src: &[f32]) {
    let src = &src[..dst.len()];
    // SAFETY: `dst` is valid for writes of src.len() values and cannot overlap the shared `src`.
    unsafe { copy_row_to(dst.as_mut_ptr(), src) }
}

/// [`copy_row`] to a destination given by its pointer, which may be uninitialised memory. SAFETY: `dst` is
/// valid for writes of `src.len()` values and does not overlap `src`.
pub(crate) unsafe fn copy_row_to(dst: *mut f32, src: &[f32]) {
    macro_rules! fixed {
        ($($n:literal)*) => {
            // SAFETY: the caller's guarantee, for exactly src.len() values.
            unsafe {
                match src.len() {
                    $($n => std::ptr::copy_nonoverlapping(src.as_ptr(), dst, $n),)*
                    n => std::ptr::copy_nonoverlapping(src.as_ptr(), dst, n),
                }
            }
        };
    }
    fixed!(1 2 4 8 16 32)
}

