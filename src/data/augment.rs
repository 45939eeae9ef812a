//! Augmentations on the CPU, as the authors' pipeline computes them: solo-learn applies torchvision's
//! transforms to PIL images, so every op here works on 8-bit RGB and rounds as Pillow does (each op's
//! output is 8-bit again): random resized crop with Pillow's antialiased bicubic resampling, colour
//! jitter (brightness, contrast, saturation, hue, in a random order), grayscale, Pillow's Gaussian blur,
//! solarize, horizontal flip; then to [0, 1] and normalised. `tests/augment_torchvision.rs` checks every
//! op against torchvision's own output within one grey level.
//!
//! Every random choice comes from the stream (seed, epoch, sample, view), so a batch is the same whatever
//! the thread count or batch order. The parameters are sampled as torchvision samples them (its
//! distributions and its order of draws), from our own streams.

use rand::seq::SliceRandom;
use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::Split;
use crate::rng::{stream, StreamRng};

/// An 8-bit RGB image being augmented: `h` × `w` × 3, row-major, channels last.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub h: usize,
    pub w: usize,
    pub px: Vec<u8>,
}

impl Image {
    pub fn new(h: usize, w: usize, px: Vec<u8>) -> Self {
        Image { h, w, px }
    }

    fn map(&mut self, f: impl Fn([u8; 3]) -> [u8; 3]) {
        for p in self.px.chunks_exact_mut(3) {
            let o = f([p[0], p[1], p[2]]);
            p.copy_from_slice(&o);
        }
    }
}

/// Pillow's RGB → L: ITU-R 601-2 luma in 16-bit fixed point, rounded.
pub fn luma(p: [u8; 3]) -> u8 {
    ((p[0] as u32 * 19595 + p[1] as u32 * 38470 + p[2] as u32 * 7471 + 0x8000) >> 16) as u8
}

/// Pillow's `Image.blend(a, b, alpha)` of one value: a + alpha (b − a) in single precision, clipped to
/// 0..=255 and truncated.
fn blend(a: u8, b: u8, alpha: f32) -> u8 {
    let v = a as f32 + alpha * (b as f32 - a as f32);
    if v <= 0.0 {
        0
    } else if v >= 255.0 {
        255
    } else {
        v as u8
    }
}

/// Pillow's bicubic kernel (a = −0.5).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Fractional bits of Pillow's fixed-point resampling weights.
const RESAMPLE_BITS: u32 = 22;

/// For each of `out` output positions resampling `len` inputs: the first input and its fixed-point
/// weights. The kernel widens by the scale when shrinking (Pillow's antialiasing).
fn resample_weights(len: usize, out: usize) -> Vec<(usize, Vec<i64>)> {
    let scale = len as f64 / out as f64;
    let filter_scale = scale.max(1.0);
    let support = 2.0 * filter_scale;
    (0..out)
        .map(|o| {
            let centre = (o as f64 + 0.5) * scale;
            let lo = ((centre - support + 0.5) as i64).max(0) as usize;
            let hi = ((centre + support + 0.5) as i64).min(len as i64) as usize;
            let w: Vec<f64> = (lo..hi).map(|i| bicubic((i as f64 - centre + 0.5) / filter_scale)).collect();
            let sum: f64 = w.iter().sum();
            let fixed = w
                .iter()
                .map(|&v| {
                    let v = if sum != 0.0 { v / sum } else { v } * (1u64 << RESAMPLE_BITS) as f64;
                    // Rounded half away from zero, as Pillow rounds its weights.
                    if v < 0.0 { (v - 0.5).trunc() as i64 } else { (v + 0.5).trunc() as i64 }
                })
                .collect();
            (lo, fixed)
        })
        .collect()
}

/// One resampling pass along rows (`horizontal`) or columns, to `out` pixels, rounded to 8 bits.
fn resample_pass(img: &Image, out: usize, horizontal: bool) -> Image {
    let (len, lines) = if horizontal { (img.w, img.h) } else { (img.h, img.w) };
    let weights = resample_weights(len, out);
    let (oh, ow) = if horizontal { (img.h, out) } else { (out, img.w) };
    let mut px = vec![0u8; oh * ow * 3];
    for line in 0..lines {
        for (o, (lo, ws)) in weights.iter().enumerate() {
            for c in 0..3 {
                let mut acc: i64 = 1 << (RESAMPLE_BITS - 1);
                for (k, &wk) in ws.iter().enumerate() {
                    let (y, x) = if horizontal { (line, lo + k) } else { (lo + k, line) };
                    acc += img.px[(y * img.w + x) * 3 + c] as i64 * wk;
                }
                let (y, x) = if horizontal { (line, o) } else { (o, line) };
                px[(y * ow + x) * 3 + c] = (acc >> RESAMPLE_BITS).clamp(0, 255) as u8;
            }
        }
    }
    Image { h: oh, w: ow, px }
}

/// torchvision's `resized_crop` on a PIL image: rows `top..top+ch`, columns `left..left+cw`, resized to
/// `out`×`out` by Pillow's bicubic resampling (columns first, then rows; a pass whose size does not
/// change is skipped, as Pillow skips it).
pub fn resized_crop(img: &Image, top: usize, left: usize, ch: usize, cw: usize, out: usize) -> Image {
    let mut crop = Vec::with_capacity(ch * cw * 3);
    for y in top..top + ch {
        crop.extend_from_slice(&img.px[(y * img.w + left) * 3..(y * img.w + left + cw) * 3]);
    }
    let mut cur = Image { h: ch, w: cw, px: crop };
    if cw != out {
        cur = resample_pass(&cur, out, true);
    }
    if ch != out {
        cur = resample_pass(&cur, out, false);
    }
    cur
}

/// Python's `round` (half to even), which torchvision's crop sampling uses.
fn round_half_even(v: f64) -> usize {
    v.round_ties_even().max(0.0) as usize
}

/// torchvision's `RandomResizedCrop.get_params` (ratio 3/4 to 4/3): up to 10 tries for a box of a random
/// area fraction in `scale` and a log-uniform aspect ratio, then the centre-crop fallback.
pub fn random_crop_box(h: usize, w: usize, scale: (f64, f64), rng: &mut StreamRng) -> (usize, usize, usize, usize) {
    let area = (h * w) as f64;
    let (ratio_lo, ratio_hi) = (3.0f64 / 4.0, 4.0f64 / 3.0);
    for _ in 0..10 {
        let target = area * rng.random_range(scale.0..scale.1);
        let aspect = rng.random_range(ratio_lo.ln()..ratio_hi.ln()).exp();
        let cw = round_half_even((target * aspect).sqrt());
        let ch = round_half_even((target / aspect).sqrt());
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            let top = rng.random_range(0..=h - ch);
            let left = rng.random_range(0..=w - cw);
            return (top, left, ch, cw);
        }
    }
    let in_ratio = w as f64 / h as f64;
    let (ch, cw) = if in_ratio < ratio_lo {
        (round_half_even(w as f64 / ratio_lo), w)
    } else if in_ratio > ratio_hi {
        (h, round_half_even(h as f64 * ratio_hi))
    } else {
        (h, w)
    };
    ((h - ch) / 2, (w - cw) / 2, ch, cw)
}

/// `ImageEnhance.Brightness`: a blend with black.
pub fn adjust_brightness(img: &mut Image, f: f32) {
    img.map(|p| p.map(|v| blend(0, v, f)));
}

/// `ImageEnhance.Contrast`: a blend with the image's mean luma (rounded).
pub fn adjust_contrast(img: &mut Image, f: f32) {
    let n = (img.h * img.w).max(1) as f64;
    let mean = img.px.chunks_exact(3).map(|p| luma([p[0], p[1], p[2]]) as f64).sum::<f64>() / n;
    let mean = (mean + 0.5) as u8;
    img.map(|p| p.map(|v| blend(mean, v, f)));
}

/// `ImageEnhance.Color`: a blend with the pixel's luma.
pub fn adjust_saturation(img: &mut Image, f: f32) {
    img.map(|p| {
        let g = luma(p);
        p.map(|v| blend(g, v, f))
    });
}

/// Pillow's 8-bit RGB → HSV (single-precision values, double-precision arithmetic where Pillow's C
/// promotes to it).
fn rgb_to_hsv([r, g, b]: [u8; 3]) -> [u8; 3] {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    if max == min {
        return [0, 0, max];
    }
    let d = (max - min) as f32;
    let s = d / max as f32;
    let rc = (max - r) as f32 / d;
    let gc = (max - g) as f32 / d;
    let bc = (max - b) as f32 / d;
    let h: f32 = if r == max {
        bc - gc
    } else if g == max {
        (2.0 + rc as f64 - bc as f64) as f32
    } else {
        (4.0 + gc as f64 - rc as f64) as f32
    };
    let h = ((h as f64 / 6.0 + 1.0) % 1.0) as f32;
    let to8 = |v: f64| (v as i32).clamp(0, 255) as u8;
    [to8(h as f64 * 255.0), to8(s as f64 * 255.0), max]
}

/// Pillow's 8-bit HSV → RGB.
fn hsv_to_rgb([h, s, v]: [u8; 3]) -> [u8; 3] {
    if s == 0 {
        return [v, v, v];
    }
    let hf = h as f64 * 6.0 / 255.0;
    let i = hf.floor() as i32;
    let f = (hf - i as f64) as f32;
    let fs = (s as f64 / 255.0) as f32;
    let to8 = |x: f64| (x.round() as i32).clamp(0, 255) as u8;
    let v64 = v as f64;
    let p = to8(v64 * (1.0 - fs as f64));
    let q = to8(v64 * (1.0 - (fs * f) as f64));
    let t = to8(v64 * (1.0 - fs as f64 * (1.0 - f as f64)));
    match i.rem_euclid(6) {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// torchvision's `adjust_hue` on a PIL image: through Pillow's 8-bit HSV, the hue channel shifted by
/// `factor` × 255 (truncated, wrapping modulo 256).
pub fn adjust_hue(img: &mut Image, factor: f64) {
    let shift = (factor * 255.0) as i32;
    img.map(|p| {
        let [h, s, v] = rgb_to_hsv(p);
        hsv_to_rgb([(h as i32 + shift).rem_euclid(256) as u8, s, v])
    });
}

/// `rgb_to_grayscale(num_output_channels=3)`: Pillow's luma in all three channels.
pub fn to_grayscale(img: &mut Image) {
    img.map(|p| [luma(p); 3]);
}

/// `ImageOps.solarize`: values at or above `threshold` are inverted.
pub fn solarize(img: &mut Image, threshold: u8) {
    img.map(|p| p.map(|v| if v >= threshold { 255 - v } else { v }));
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

/// Pillow's `GaussianBlur(radius = sigma)` (what solo-learn's blur calls): three passes of a box blur
/// of fractional radius along rows, then three along columns, edges extended, each pass rounded to 8 bits.
/// The box radius is the one whose three passes have the Gaussian's variance (Gwosdek et al., 2011),
/// computed in single precision as Pillow does.
pub fn gaussian_blur(img: &mut Image, sigma: f32) {
    const PASSES: usize = 3;
    let sigma2 = sigma * sigma / PASSES as f32;
    let big_l = (12.0 * sigma2 as f64 + 1.0).sqrt() as f32;
    let l = ((big_l as f64 - 1.0) / 2.0).floor() as f32;
    let a = (2.0 * l + 1.0) * (l * (l + 1.0) - 3.0 * sigma2) / (6.0 * (sigma2 - (l + 1.0) * (l + 1.0)));
    let radius = l + a;
    if radius == 0.0 {
        return;
    }
    for horizontal in [true, false] {
        for _ in 0..PASSES {
            box_blur_pass(img, radius, horizontal);
        }
    }
}

/// One box-blur pass of fractional `radius`: the window of ⌊radius⌋ on each side at full weight and the
/// next pixel on each side at the fractional weight, in 24-bit fixed point.
fn box_blur_pass(img: &mut Image, radius: f32, horizontal: bool) {
    let r = radius as i64;
    let full = ((1u32 << 24) as f32 / (radius * 2.0 + 1.0)) as u64;
    let edge = ((1u64 << 24) - (r as u64 * 2 + 1) * full) / 2;
    let (len, lines) = if horizontal { (img.w, img.h) } else { (img.h, img.w) };
    let idx = |line: usize, i: usize| if horizontal { (line * img.w + i) * 3 } else { (i * img.w + line) * 3 };
    let mut out = img.px.clone();
    let last = len as i64 - 1;
    for line in 0..lines {
        for i in 0..len as i64 {
            for c in 0..3 {
                let at = |j: i64| img.px[idx(line, j.clamp(0, last) as usize) + c] as u64;
                let window: u64 = (i - r..=i + r).map(at).sum();
                let v = window * full + (at(i - r - 1) + at(i + r + 1)) * edge;
                out[idx(line, i as usize) + c] = ((v + (1 << 23)) >> 24) as u8;
            }
        }
    }
    img.px = out;
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
    /// SimCLR's (the paper's "SimCLR augmentations"): the same for both views; jitter strength 0.5 on
    /// CIFAR, 1.0 with blur on STL-10.
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

/// `RandomApply`'s coin: true with probability `p`.
fn coin(rng: &mut StreamRng, p: f64) -> bool {
    p > 0.0 && rng.random::<f64>() < p
}

/// Applies one view's pipeline (solo-learn's order: crop, jitter, grayscale, blur, solarize, flip).
pub fn augment(img: &Image, v: &ViewAug, rng: &mut StreamRng) -> Image {
    let (top, left, ch, cw) = random_crop_box(img.h, img.w, v.crop_scale, rng);
    let mut out = resized_crop(img, top, left, ch, cw, img.h);
    if coin(rng, v.jitter_p) {
        // ColorJitter.get_params: the order, then every factor, then the ops in that order.
        let mut order = [0usize, 1, 2, 3];
        order.shuffle(rng);
        let [b, c, s, h] = v.jitter;
        let factor = |rng: &mut StreamRng, s: f64| (s > 0.0).then(|| rng.random_range((1.0 - s).max(0.0)..1.0 + s) as f32);
        let factors = [factor(rng, b), factor(rng, c), factor(rng, s)];
        let hue = (h > 0.0).then(|| rng.random_range(-h..h));
        for op in order {
            match (op, factors.get(op).copied().flatten()) {
                (0, Some(f)) => adjust_brightness(&mut out, f),
                (1, Some(f)) => adjust_contrast(&mut out, f),
                (2, Some(f)) => adjust_saturation(&mut out, f),
                (3, _) => {
                    if let Some(f) = hue {
                        adjust_hue(&mut out, f)
                    }
                }
                _ => {}
            }
        }
    }
    if coin(rng, v.gray_p) {
        to_grayscale(&mut out);
    }
    if coin(rng, v.blur_p) {
        gaussian_blur(&mut out, rng.random_range(0.1..2.0) as f32);
    }
    if coin(rng, v.solarize_p) {
        solarize(&mut out, 128);
    }
    if coin(rng, v.flip_p) {
        hflip(&mut out);
    }
    out
}

/// (x/255 − mean) / std per channel (`ToTensor` then `Normalize`), channel-first, appended to `dst`.
pub fn normalize_chw(img: &Image, mean: [f32; 3], std: [f32; 3], dst: &mut Vec<f32>) {
    for c in 0..3 {
        dst.extend(img.px.chunks_exact(3).map(|p| (p[c] as f32 / 255.0 - mean[c]) / std[c]));
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
            let img = Image::new(split.h, split.w, split.image(i).to_vec());
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
        normalize_chw(&Image::new(split.h, split.w, split.image(i).to_vec()), mean, std, &mut out);
    }
    out
}
