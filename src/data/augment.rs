//! Augmentations on the CPU (SimCLR's pipeline, and the authors' asymmetric one): random resized crop,
//! colour jitter (brightness, contrast, saturation, hue in random order), grayscale, Gaussian blur,
//! solarize, horizontal flip, normalisation. Images are f32 height × width × 3 in [0, 1].
//! Every random choice comes from the stream (seed, epoch, sample, view), so a batch is the same whatever
//! the thread count or batch order.

use rand::seq::SliceRandom;
use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::Split;
use crate::rng::{stream, StreamRng};

/// An image being augmented: `h` × `w` × 3, row-major, channels last.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub h: usize,
    pub w: usize,
    pub px: Vec<f32>,
}

impl Image {
    pub fn from_u8(h: usize, w: usize, bytes: &[u8]) -> Self {
        Image { h, w, px: bytes.iter().map(|&b| b as f32 / 255.0).collect() }
    }

    fn at(&self, y: usize, x: usize, c: usize) -> f32 {
        self.px[(y * self.w + x) * 3 + c]
    }

    fn map(&mut self, f: impl Fn([f32; 3]) -> [f32; 3]) {
        for p in self.px.chunks_exact_mut(3) {
            let o = f([p[0], p[1], p[2]]);
            p.copy_from_slice(&o);
        }
    }
}

/// Luma of ITU-R 601-2, as torchvision's grayscale.
pub fn gray(p: [f32; 3]) -> f32 {
    0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
}

/// Crops rows `top..top+ch`, columns `left..left+cw` and resizes to `out`×`out` bilinearly
/// (align_corners = false, as torchvision's tensor resize).
pub fn crop_resize(img: &Image, top: usize, left: usize, ch: usize, cw: usize, out: usize) -> Image {
    let mut px = vec![0.0; out * out * 3];
    let (sy, sx) = (ch as f32 / out as f32, cw as f32 / out as f32);
    for oy in 0..out {
        let fy = ((oy as f32 + 0.5) * sy - 0.5).clamp(0.0, (ch - 1) as f32);
        let (y0, ty) = (fy.floor() as usize, fy - fy.floor());
        let y1 = (y0 + 1).min(ch - 1);
        for ox in 0..out {
            let fx = ((ox as f32 + 0.5) * sx - 0.5).clamp(0.0, (cw - 1) as f32);
            let (x0, tx) = (fx.floor() as usize, fx - fx.floor());
            let x1 = (x0 + 1).min(cw - 1);
            for c in 0..3 {
                let v = |y: usize, x: usize| img.at(top + y, left + x, c);
                let top_row = v(y0, x0) * (1.0 - tx) + v(y0, x1) * tx;
                let bottom = v(y1, x0) * (1.0 - tx) + v(y1, x1) * tx;
                px[(oy * out + ox) * 3 + c] = top_row * (1.0 - ty) + bottom * ty;
            }
        }
    }
    Image { h: out, w: out, px }
}

/// torchvision's RandomResizedCrop box: (top, left, height, width).
pub fn random_crop_box(h: usize, w: usize, scale: (f64, f64), rng: &mut StreamRng) -> (usize, usize, usize, usize) {
    let area = (h * w) as f64;
    let (lr0, lr1) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.random_range(scale.0..=scale.1);
        let aspect = rng.random_range(lr0..=lr1).exp();
        let cw = (target * aspect).sqrt().round() as usize;
        let ch = (target / aspect).sqrt().round() as usize;
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            let top = rng.random_range(0..=h - ch);
            let left = rng.random_range(0..=w - cw);
            return (top, left, ch, cw);
        }
    }
    // Fallback: the whole image (its aspect ratio is within bounds for square images).
    (0, 0, h, w)
}

pub fn adjust_brightness(img: &mut Image, f: f32) {
    img.map(|p| p.map(|v| (v * f).clamp(0.0, 1.0)));
}

pub fn adjust_contrast(img: &mut Image, f: f32) {
    let mean = img.px.chunks_exact(3).map(|p| gray([p[0], p[1], p[2]])).sum::<f32>() / (img.h * img.w) as f32;
    img.map(|p| p.map(|v| ((v - mean) * f + mean).clamp(0.0, 1.0)));
}

pub fn adjust_saturation(img: &mut Image, f: f32) {
    img.map(|p| {
        let g = gray(p);
        p.map(|v| ((v - g) * f + g).clamp(0.0, 1.0))
    });
}

/// Shifts hue by `shift` turns (−0.5..0.5) through HSV.
pub fn adjust_hue(img: &mut Image, shift: f32) {
    img.map(|[r, g, b]| {
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let d = max - min;
        let mut hue = if d == 0.0 {
            0.0
        } else if max == r {
            ((g - b) / d).rem_euclid(6.0) / 6.0
        } else if max == g {
            ((b - r) / d + 2.0) / 6.0
        } else {
            ((r - g) / d + 4.0) / 6.0
        };
        let s = if max == 0.0 { 0.0 } else { d / max };
        hue = (hue + shift).rem_euclid(1.0);
        hsv_to_rgb(hue, s, max)
    });
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> [f32; 3] {
    let i = (h * 6.0).floor();
    let f = h * 6.0 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match (i as i32).rem_euclid(6) {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

pub fn to_grayscale(img: &mut Image) {
    img.map(|p| [gray(p); 3]);
}

/// Pixels at or above the threshold (0.5 = 128/255) are inverted.
pub fn solarize(img: &mut Image, threshold: f32) {
    img.map(|p| p.map(|v| if v >= threshold { 1.0 - v } else { v }));
}

pub fn hflip(img: &mut Image) {
    let w = img.w;
    for row in img.px.chunks_exact_mut(w * 3) {
        for x in 0..w / 2 {
            for c in 0..3 {
                row.swap(x * 3 + c, (w - 1 - x) * 3 + c);
            }
        }
    }
}

/// Separable Gaussian blur, kernel `k` (odd), reflect padding, as torchvision's GaussianBlur.
pub fn gaussian_blur(img: &mut Image, k: usize, sigma: f32) {
    let r = (k / 2) as isize;
    let weights: Vec<f32> = (-r..=r).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let sum: f32 = weights.iter().sum();
    let weights: Vec<f32> = weights.iter().map(|w| w / sum).collect();
    let reflect = |i: isize, n: usize| -> usize {
        let n = n as isize;
        let mut i = i;
        if i < 0 {
            i = -i;
        }
        if i >= n {
            i = 2 * (n - 1) - i;
        }
        i.clamp(0, n - 1) as usize
    };
    let (h, w) = (img.h, img.w);
    let mut tmp = vec![0.0; img.px.len()];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                tmp[(y * w + x) * 3 + c] = (-r..=r)
                    .map(|d| weights[(d + r) as usize] * img.px[(y * w + reflect(x as isize + d, w)) * 3 + c])
                    .sum();
            }
        }
    }
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                img.px[(y * w + x) * 3 + c] = (-r..=r)
                    .map(|d| weights[(d + r) as usize] * tmp[(reflect(y as isize + d, h) * w + x) * 3 + c])
                    .sum();
            }
        }
    }
}

/// The random parameters of one view.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewAug {
    pub crop_scale: (f64, f64),
    /// Brightness, contrast, saturation, hue strengths.
    pub jitter: [f64; 4],
    pub jitter_p: f64,
    pub gray_p: f64,
    pub blur_p: f64,
    pub solarize_p: f64,
    pub flip_p: f64,
}

/// The named pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pipeline {
    /// SimCLR as in lightning-bolts (the paper's "SimCLR augmentations"): the same for both views;
    /// jitter strength 0.5 on CIFAR, 1.0 with blur on STL-10.
    Simclr,
    /// The authors' code (`asymmetric.yaml`): blur and solarize differ between the views.
    Asymmetric,
}

impl Pipeline {
    /// Parameters of both views for images of side `size` (32 = CIFAR, 96 = STL-10).
    pub fn views(self, size: usize) -> [ViewAug; 2] {
        let stl = size > 32;
        let base = ViewAug {
            crop_scale: (0.08, 1.0),
            jitter: [0.4, 0.4, 0.4, 0.1],
            jitter_p: 0.8,
            gray_p: 0.2,
            blur_p: 0.0,
            solarize_p: 0.0,
            flip_p: 0.5,
        };
        match self {
            Pipeline::Simclr if stl => {
                let v = ViewAug { jitter: [0.8, 0.8, 0.8, 0.2], blur_p: 0.5, ..base };
                [v, v]
            }
            Pipeline::Simclr => [base, base],
            Pipeline::Asymmetric => {
                let v = ViewAug { jitter: [0.4, 0.4, 0.2, 0.1], ..base };
                [ViewAug { blur_p: if stl { 1.0 } else { 0.0 }, ..v }, ViewAug { blur_p: if stl { 0.1 } else { 0.0 }, solarize_p: 0.2, ..v }]
            }
        }
    }
}

/// Applies one view's pipeline to an image.
pub fn augment(img: &Image, v: &ViewAug, rng: &mut StreamRng) -> Image {
    let (top, left, ch, cw) = random_crop_box(img.h, img.w, v.crop_scale, rng);
    let mut out = crop_resize(img, top, left, ch, cw, img.h);
    if rng.random_bool(v.jitter_p) {
        let mut order = [0usize, 1, 2, 3];
        order.shuffle(rng);
        for op in order {
            let s = v.jitter[op];
            if s <= 0.0 {
                continue;
            }
            match op {
                0 => adjust_brightness(&mut out, rng.random_range((1.0 - s).max(0.0)..=1.0 + s) as f32),
                1 => adjust_contrast(&mut out, rng.random_range((1.0 - s).max(0.0)..=1.0 + s) as f32),
                2 => adjust_saturation(&mut out, rng.random_range((1.0 - s).max(0.0)..=1.0 + s) as f32),
                _ => adjust_hue(&mut out, rng.random_range(-s..=s) as f32),
            }
        }
    }
    if rng.random_bool(v.gray_p) {
        to_grayscale(&mut out);
    }
    if v.blur_p > 0.0 && rng.random_bool(v.blur_p) {
        // Kernel about 10 % of the image, odd (9 at 96 px), σ ~ U[0.1, 2].
        let k = ((out.h as f64 * 0.1) as usize) | 1;
        gaussian_blur(&mut out, k.max(3), rng.random_range(0.1..=2.0) as f32);
    }
    if v.solarize_p > 0.0 && rng.random_bool(v.solarize_p) {
        solarize(&mut out, 0.5);
    }
    if rng.random_bool(v.flip_p) {
        hflip(&mut out);
    }
    out
}

/// (x − mean) / std per channel, into channel-first layout appended to `dst`.
pub fn normalize_chw(img: &Image, mean: [f32; 3], std: [f32; 3], dst: &mut Vec<f32>) {
    for c in 0..3 {
        dst.extend(img.px.chunks_exact(3).map(|p| (p[c] - mean[c]) / std[c]));
    }
}

/// Two augmented views of the samples `indices`, normalised, as flat N×3×H×W buffers, plus labels.
/// Deterministic per (seed, epoch, sample index, view); computed in parallel.
pub fn views_batch(
    split: &Split,
    indices: &[usize],
    views: &[ViewAug; 2],
    seed: u64,
    epoch: usize,
    mean: [f32; 3],
    std: [f32; 3],
) -> ([Vec<f32>; 2], Vec<i64>) {
    let per: Vec<[Vec<f32>; 2]> = indices
        .par_iter()
        .map(|&i| {
            let img = Image::from_u8(split.h, split.w, split.image(i));
            let mut out = [Vec::new(), Vec::new()];
            for (k, v) in views.iter().enumerate() {
                let mut rng = stream(seed, &format!("augment/{epoch}/{i}/{k}"));
                normalize_chw(&augment(&img, v, &mut rng), mean, std, &mut out[k]);
            }
            out
        })
        .collect();
    let mut a = Vec::with_capacity(per.len() * split.h * split.w * 3);
    let mut b = Vec::with_capacity(a.capacity());
    for [x, y] in per {
        a.extend_from_slice(&x);
        b.extend_from_slice(&y);
    }
    ([a, b], indices.iter().map(|&i| split.labels[i]).collect())
}

/// Images `indices` without augmentation (the readout's evaluation), normalised, N×3×H×W.
pub fn plain_batch(split: &Split, indices: &[usize], mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let mut out = Vec::with_capacity(indices.len() * split.h * split.w * 3);
    for &i in indices {
        normalize_chw(&Image::from_u8(split.h, split.w, split.image(i)), mean, std, &mut out);
    }
    out
}
