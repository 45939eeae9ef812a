//! Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural
//! Networks", CVPR 2016) for the 3×3 convolutions at stride 1 and padding 1 — every VGG layer after the
//! first — on CPU f32: the forward, the input gradient and the weight gradient.
//!
//! Why: with im2col each output costs 9·C multiply-adds in a GEMM, and the GEMMs were half of a full-width
//! training step. F(2×2, 3×3) computes a 2×2 block of outputs from a 4×4 block of input with 16·C
//! multiply-adds instead of 36·C. The transforms are small fixed matrices applied to 16 tiles at once (one
//! AVX-512 register per tile element); what is left is one GEMM per point of the transformed 4×4 tile. All
//! three passes use them:
//!
//! - forward: Y = Aᵀ [Σ_c U ⊙ V] A, with U = G w Gᵀ (per filter) and V = Bᵀ d B (per input tile d);
//! - backward: S = A dY Aᵀ (per output-gradient tile), then dU = Σ_tiles S ⊙ V and dw = Gᵀ dU G, and
//!   dV = Σ_k S ⊙ U and dd = B dV Bᵀ, added into the overlapping input tiles.
//!
//! The values are the convolution's up to rounding: F(2×2)'s transforms hold only 0, ±1 and ±½, so it
//! rounds about as im2col does (the tests bound the difference relative to the output's scale). Why not
//! F(4×4, 3×3), 4× fewer multiply-adds than im2col: its transforms (entries up to 8 and 1/24) round worse,
//! and that moved one cell of the PyTorch-twin parity test (IsoLoss without EMA,
//! 4th step) by up to 3 % in its gradients — from the forward alone — where F(2×2) stays within 5e-5; the
//! full-width step was 0.96 s with it against 1.10 s with F(2×2). The code is generic in the tile size.
//! Every sum runs in an order fixed by the shapes alone (images go through in chunks of a fixed number of
//! tiles), so results do not depend on the thread count.

use rayon::prelude::*;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, PoisonError};

use super::geom::{copy_row, copy_row_to, Geom};
use super::storage::{written, KeptBuffer};
use super::{matmul, simd};

/// Tiles transformed at once.
const LANES: usize = 16;
/// The batch goes through in chunks of about this many tiles: the GEMMs' column count.
const CHUNK_TILES: usize = 512;
/// Convolutions with fewer input channels (the first layer, on RGB images) stay with im2col, whose GEMM
/// has depth 9·C where Winograd's would have depth C.
const MIN_CHANNELS: usize = 8;

type Lanes = [f32; LANES];

/// Whether [`forward`] and [`backward`] compute this convolution.
pub(super) fn applies(g: &Geom) -> bool {
    (g.kh, g.kw, g.stride, g.pad) == (3, 3, 1, 1) && g.c >= MIN_CHANNELS && g.h.min(g.w) >= 2
}

/// y = conv(x, w) of a batch x (N, C, H, W) and weights w (K, C, 3, 3), both contiguous; `applies(g)`.
/// With `keep`, also the transformed input tiles, for [`backward`]'s weight gradient.
pub(super) fn forward(x: &[f32], wt: &[f32], g: &Geom, keep: bool) -> (Vec<f32>, Option<TransformedInput>) {
    Plan::<F2, 2, 4>::new(g).forward(x, wt, keep)
}

/// The input gradient (when `input_grad`) and the weight gradient, from x, w and the output gradient gy;
/// the output gradient's transform is shared by the two. The weight gradient reads x's transformed tiles
/// from `kept` where the forward kept them (they are the same values), else transforms x again.
pub(super) fn backward(
    x: &[f32],
    gy: &[f32],
    wt: &[f32],
    g: &Geom,
    (input_grad, weight_grad): (bool, bool),
    kept: Option<&TransformedInput>,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    Plan::<F2, 2, 4>::new(g).backward(x, gy, wt, (input_grad, weight_grad), kept)
}

/// The transformed input tiles V of a whole batch as [`forward`] computed them, chunk after chunk (each
/// laid out as the chunk's GEMMs read it). Transforming the saved input again in the backward was about
/// 7 % of a width/4 step (timed inside the step) — the input had long left the caches; keeping them costs four times the
/// layer input's memory until the backward.
pub(super) struct TransformedInput {
    tiles: Scratch,
    geom: Geom,
}

/// F(M×M, 3×3) as its three matrices and their transposes; A = M + 2 is the input tile's side.
struct Algorithm<const M: usize, const A: usize> {
    bt: [[f32; A]; A],
    b: [[f32; A]; A],
    g: [[f32; 3]; A],
    gt: [[f32; A]; 3],
    at: [[f32; A]; M],
    a: [[f32; M]; A],
}

const fn transpose<const R: usize, const S: usize>(m: [[f32; S]; R]) -> [[f32; R]; S] {
    let mut t = [[0.0; R]; S];
    let mut i = 0;
    while i < R {
        let mut j = 0;
        while j < S {
            t[j][i] = m[i][j];
            j += 1;
        }
        i += 1;
    }
    t
}

impl<const M: usize, const A: usize> Algorithm<M, A> {
    const fn new(bt: [[f32; A]; A], g: [[f32; 3]; A], at: [[f32; A]; M]) -> Self {
        Algorithm { bt, b: transpose(bt), g, gt: transpose(g), at, a: transpose(at) }
    }
}

/// An algorithm F(M×M, 3×3) as a constant of the type, so that the transforms' zero and unit entries fold
/// away where they are applied. (Read through a pointer in the plan, every entry was loaded, compared with
/// zero and multiplied at run time, and the transforms' sums lived in memory: the four transforms took
/// about half of a Winograd layer's time at width 1/8.)
trait Tiling<const M: usize, const A: usize> {
    const ALG: Algorithm<M, A>;
}

/// F(2×2, 3×3), interpolation points 0, ±1.
struct F2;

impl Tiling<2, 4> for F2 {
    const ALG: Algorithm<2, 4> = Algorithm::new(
        [[1.0, 0.0, -1.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, -1.0, 1.0, 0.0], [0.0, 1.0, 0.0, -1.0]],
        [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]],
        [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]],
    );
}

/// L·X·Lᵀ in every lane, for X of S×S and L of R×S. The matrices are constants, so after inlining the
/// zero entries cost nothing.
#[inline(always)]
fn sandwich<const R: usize, const S: usize>(l: &[[f32; S]; R], x: &[[Lanes; S]; S]) -> [[Lanes; R]; R] {
    let mut lx = [[[0f32; LANES]; S]; R];
    for r in 0..R {
        for s in 0..S {
            let c = l[r][s];
            if c == 0.0 {
                continue;
            }
            for q in 0..S {
                for v in 0..LANES {
                    lx[r][q][v] += c * x[s][q][v];
                }
            }
        }
    }
    let mut y = [[[0f32; LANES]; R]; R];
    for r in 0..R {
        for q in 0..R {
            for s in 0..S {
                let c = l[q][s];
                if c == 0.0 {
                    continue;
                }
                for v in 0..LANES {
                    y[r][q][v] += c * lx[r][s][v];
                }
            }
        }
    }
    y
}

/// Row `row` of a transformed tile batch laid out [ξ][row][column] (`rows` rows, `cols` columns), 16
/// columns from `t0`: one tile per lane.
#[inline(always)]
fn load_tiles<const A: usize>(src: &[f32], rows: usize, row: usize, cols: usize, t0: usize) -> [[Lanes; A]; A] {
    let mut t = [[[0f32; LANES]; A]; A];
    for a in 0..A {
        for b in 0..A {
            t[a][b].copy_from_slice(&src[((a * A + b) * rows + row) * cols + t0..][..LANES]);
        }
    }
    t
}

/// Tiles given row by row (`rows[a][l]`: row a of tile l) as one lane per tile (`[a][b][l]`).
#[inline(always)]
fn lane_wise<const A: usize>(rows: &[[[f32; A]; LANES]; A]) -> [[Lanes; A]; A] {
    let mut t = [[[0f32; LANES]; A]; A];
    for (t_a, rows_a) in t.iter_mut().zip(rows) {
        for (b, t_ab) in t_a.iter_mut().enumerate() {
            for (v, row) in t_ab.iter_mut().zip(rows_a) {
                *v = row[b];
            }
        }
    }
    t
}

/// The inverse of [`lane_wise`]: one lane per tile (`[a][b][l]`) as the tiles' rows (`[a][l]`: row a of
/// tile l), so that consecutive tiles' rows lie side by side.
#[inline(always)]
fn tile_wise<const A: usize>(t: &[[Lanes; A]; A]) -> [[[f32; A]; LANES]; A] {
    let mut rows = [[[0f32; A]; LANES]; A];
    for (rows_a, t_a) in rows.iter_mut().zip(t) {
        for (l, row) in rows_a.iter_mut().enumerate() {
            for (v, t_ab) in row.iter_mut().zip(t_a) {
                *v = t_ab[l];
            }
        }
    }
    rows
}

/// Stores 16 transformed tiles into one row's part of a [row][ξ][column] layout (`dst` starts at the
/// row's first element), from column `t0`.
#[inline(always)]
fn store_tiles<const A: usize>(dst: &mut [f32], cols: usize, t0: usize, tiles: &[[Lanes; A]; A]) {
    for a in 0..A {
        for b in 0..A {
            dst[(a * A + b) * cols + t0..][..LANES].copy_from_slice(&tiles[a][b]);
        }
    }
}

/// Adds row a of `run` consecutive tiles of one tile row (lanes l0.. of `rows`, `rows[b][l]` value b of
/// lane l's row), each M columns right of the one before, into `seg`, tile after tile: the sums of adding
/// each tile's row in turn, with the values two tiles share carried from one tile to the next instead of
/// read back from memory. (Read back, each tile's load overlapped the previous tile's store only in part,
/// which stalls store-to-load forwarding; carried, `input_grads` took 8 % less at width 1/8.)
#[inline(always)]
fn add_run<const M: usize, const A: usize>(seg: &mut [f32], rows: &[Lanes; A], l0: usize, run: usize) {
    const { assert!(A <= 2 * M, "a value may be shared by two horizontally adjacent tiles at most") };
    let mut carry = [0f32; A];
    for j in 0..run {
        let (lane, s) = (l0 + j, &mut seg[j * M..][..M]);
        for q in 0..M {
            // The previous tile's share first, as adding the tiles one by one adds it.
            let earlier = if q < A - M && j > 0 { s[q] + carry[q] } else { s[q] };
            s[q] = earlier + rows[q][lane];
        }
        for q in 0..A - M {
            carry[q] = rows[M + q][lane];
        }
    }
    for q in 0..A - M {
        seg[run * M + q] += carry[q];
    }
}

/// One buffer that parallel tasks write at disjoint indices (each task its own channel of every image),
/// possibly still uninitialised.
struct Disjoint<'a> {
    ptr: *mut f32,
    len: usize,
    _buf: PhantomData<&'a mut [MaybeUninit<f32>]>,
}

// SAFETY: tasks only write through `write`, whose callers guarantee disjoint indices.
unsafe impl Sync for Disjoint<'_> {}

impl<'a> Disjoint<'a> {
    fn new(buf: &'a mut [MaybeUninit<f32>]) -> Self {
        Disjoint { ptr: buf.as_mut_ptr().cast(), len: buf.len(), _buf: PhantomData }
    }

    /// Writes `values` from index `i` on. SAFETY: while this buffer lives, no two tasks write the same index.
    unsafe fn write_row(&self, i: usize, values: &[f32]) {
        assert!(i + values.len() <= self.len, "winograd: write out of bounds");
        // SAFETY: in bounds (asserted); no other task writes or reads these indices while this buffer
        // lives (the caller's guarantee), and `values` is not part of it (tasks only read other buffers).
        // Fixed-size moves: a `memcpy` call per row of 2 floats was 3.5 % of a width/4 step.
        unsafe { copy_row_to(self.ptr.add(i), values) }
    }
}

/// Intermediate buffers kept between calls, so that the transforms' tens of MB are not zeroed afresh
/// (memset and page faults were a fifth of a full-width step). Each caller overwrites every element it
/// reads. The kept memory is bounded by the largest layer's needs (a few buffers of its transformed
/// filters or tiles).
static KEPT: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A buffer of at least `len` elements from [`KEPT`] (contents undefined), returned there when dropped.
struct Scratch(Vec<f32>, usize);

impl Scratch {
    fn take(len: usize) -> Self {
        let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
        // The smallest that is large enough, else the largest (grown).
        let fits = (0..kept.len()).filter(|&i| kept[i].len() >= len).min_by_key(|&i| kept[i].len());
        let pick = fits.or_else(|| (0..kept.len()).max_by_key(|&i| kept[i].len()));
        let mut v = pick.map(|i| kept.swap_remove(i)).unwrap_or_default();
        drop(kept);
        if v.len() < len {
            v.resize(len, 0.0);
        }
        Scratch(v, len)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        KEPT.lock().unwrap_or_else(PoisonError::into_inner).push(std::mem::take(&mut self.0));
    }
}

impl Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0[..self.1]
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0[..self.1]
    }
}

thread_local! {
    /// `inputs`' zero-bordered copies of the input planes.
    static BORDERED: RefCell<KeptBuffer> = const { RefCell::new(KeptBuffer::new()) };
    /// `input_grads`' planes that the tiles' gradients are added into (zeroed per channel).
    static ACCUMULATED: RefCell<KeptBuffer> = const { RefCell::new(KeptBuffer::new()) };
}

/// [`Plan::tile_runs`]: the runs among the first `lanes` of the tiles `at`, from lane `l` on.
struct TileRuns<'a> {
    at: &'a [(usize, usize, usize)],
    tw: usize,
    lanes: usize,
    l: usize,
}

impl Iterator for TileRuns<'_> {
    type Item = (usize, usize, (usize, usize, usize));

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if self.l >= self.lanes {
            return None;
        }
        let (first, tile) = (self.l, self.at[self.l]);
        let run = (self.lanes - first).min(self.tw - tile.2);
        self.l += run;
        Some((first, run, tile))
    }
}

/// How a batch is cut into tiles: M×M output tiles, `th` × `tw` per image, `images` per chunk.
struct Plan<'a, T, const M: usize, const A: usize> {
    tiling: PhantomData<fn() -> T>,
    g: &'a Geom,
    per_image: usize,
    images: usize,
    /// (image within the chunk, tile row, tile column) of each tile of a full chunk (a shorter last
    /// chunk uses its start): looked up per lane by the transforms, where two integer divisions per tile,
    /// lane and channel were a large part of their time.
    at: Vec<(usize, usize, usize)>,
    /// Sides of a zero-bordered input plane that every tile reads inside: (th·M + 2) × (tw·M + 2).
    hp: usize,
    wp: usize,
    /// Tiles per tile row.
    tw: usize,
}

impl<'a, T: Tiling<M, A>, const M: usize, const A: usize> Plan<'a, T, M, A> {
    fn new(g: &'a Geom) -> Self {
        let (th, tw) = (g.h.div_ceil(M), g.w.div_ceil(M));
        let per_image = th * tw;
        let images = (CHUNK_TILES / per_image).clamp(1, g.n.max(1));
        let at = (0..images).flat_map(|i| (0..per_image).map(move |r| (i, r / tw, r % tw))).collect();
        Plan { tiling: PhantomData, g, per_image, images, at, hp: th * M + 2, wp: tw * M + 2, tw }
    }

    /// Columns of a chunk's transformed tiles: its tiles, rounded up to whole groups of lanes (the extra
    /// columns are zero).
    fn columns(&self, imgs: usize) -> usize {
        (imgs * self.per_image).next_multiple_of(LANES)
    }

    /// Elements from one row (channel) to the next in the [row][ξ][column] layouts of transformed tiles:
    /// one lane group more than a row's A²·cols values. Rows a power of two apart (32 KiB at 512 columns)
    /// put every row of one ξ into the same cache sets, while the weight-gradient GEMM streams 8 of them at
    /// once (with the pitch its share of a width/4 profile fell from 10.9 to 9.7 %).
    fn pitch(&self, cols: usize) -> usize {
        A * A * cols + LANES
    }

    /// (first image, images) of each chunk, in order.
    fn chunks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.g.n).step_by(self.images).map(|first| (first, self.images.min(self.g.n - first)))
    }

    /// The lanes of the group of tiles from t0 (of a chunk's `tiles`) as runs of consecutive tiles of one
    /// tile row: (first lane, lanes in the run, the first tile's (image, tile row, tile column)). A run's
    /// tiles lie side by side, so that the transforms move each of its rows as one piece.
    #[inline(always)]
    fn tile_runs(&self, t0: usize, tiles: usize) -> TileRuns<'_> {
        TileRuns { at: &self.at[t0..], tw: self.tw, lanes: LANES.min(tiles.saturating_sub(t0)), l: 0 }
    }

    /// Rows and columns of the output tile (ty, tx) inside the plane: M × M but at odd edges.
    #[inline(always)]
    fn extent(&self, ty: usize, tx: usize) -> (usize, usize) {
        (M.min(self.g.h - ty * M), M.min(self.g.w - tx * M))
    }

    /// U = G w Gᵀ of every filter, laid out [k][ξ][c] (ξ the point of the transformed tile).
    fn filters(&self, wt: &[f32]) -> Scratch {
        let (k, c) = (self.g.k, self.g.c);
        let mut u = Scratch::take(k * A * A * c);
        u.par_chunks_mut(A * A * c).enumerate().for_each(|(kk, uk)| simd::wide(#[inline(always)] || {
            for c0 in (0..c).step_by(LANES) {
                let n = LANES.min(c - c0);
                let mut w = [[[0f32; LANES]; 3]; 3];
                for l in 0..n {
                    let f = &wt[(kk * c + c0 + l) * 9..][..9];
                    for i in 0..3 {
                        for j in 0..3 {
                            w[i][j][l] = f[i * 3 + j];
                        }
                    }
                }
                let ut = sandwich(&T::ALG.g, &w);
                for a in 0..A {
                    for b in 0..A {
                        uk[(a * A + b) * c + c0..][..n].copy_from_slice(&ut[a][b][..n]);
                    }
                }
            }
        }));
        u
    }

    /// dw = Gᵀ dU G from dU laid out [ξ][k][c].
    fn filter_grads(&self, du: &[f32]) -> Vec<f32> {
        let (k, c) = (self.g.k, self.g.c);
        let mut dw = vec![0f32; k * c * 9];
        dw.par_chunks_mut(c * 9).enumerate().for_each(|(kk, dwk)| simd::wide(#[inline(always)] || {
            for c0 in (0..c).step_by(LANES) {
                let n = LANES.min(c - c0);
                let mut x = [[[0f32; LANES]; A]; A];
                for a in 0..A {
                    for b in 0..A {
                        x[a][b][..n].copy_from_slice(&du[((a * A + b) * k + kk) * c + c0..][..n]);
                    }
                }
                let w = sandwich(&T::ALG.gt, &x);
                for l in 0..n {
                    for i in 0..3 {
                        for j in 0..3 {
                            dwk[(c0 + l) * 9 + i * 3 + j] = w[i][j][l];
                        }
                    }
                }
            }
        }));
        dw
    }

    /// V = Bᵀ d B of every input tile of images first..first + imgs, laid out [c][ξ][column].
    fn inputs(&self, x: &[f32], first: usize, imgs: usize, v: &mut [f32]) {
        let g = self.g;
        let (cols, tiles, plane) = (self.columns(imgs), imgs * self.per_image, g.h * g.w);
        let pitch = self.pitch(cols);
        v[..g.c * pitch].par_chunks_mut(pitch).enumerate().for_each(|(c, vc)| {
            BORDERED.with_borrow_mut(|planes| {
                let pad = planes.zeroed_for((imgs, g.h, g.w), imgs * self.hp * self.wp);
                simd::wide(#[inline(always)] || {
                    for i in 0..imgs {
                        let src = &x[((first + i) * g.c + c) * plane..][..plane];
                        for y in 0..g.h {
                            pad[(i * self.hp + y + 1) * self.wp + 1..][..g.w].copy_from_slice(&src[y * g.w..][..g.w]);
                        }
                    }
                    for t0 in (0..cols).step_by(LANES) {
                        // Row a of tile l copied whole into rows[a][l], then turned lane-wise by `lane_wise`,
                        // which vectorises: element by element into the lanes was slower (width/4 step, min
                        // of 4 × 10 steps: 143.7 against 138.8 ms).
                        let mut rows = [[[0f32; A]; LANES]; A];
                        for l in 0..LANES.min(tiles.saturating_sub(t0)) {
                            let (i, ty, tx) = self.at[t0 + l];
                            let base = (i * self.hp + ty * M) * self.wp + tx * M;
                            for (a, row) in rows.iter_mut().enumerate() {
                                row[l].copy_from_slice(&pad[base + a * self.wp..][..A]);
                            }
                        }
                        store_tiles(vc, cols, t0, &sandwich(&T::ALG.bt, &lane_wise(&rows)));
                    }
                })
            })
        });
    }

    /// S = A dY Aᵀ of every output-gradient tile of images first..first + imgs, laid out [k][ξ][column].
    fn output_grads(&self, gy: &[f32], first: usize, imgs: usize, s: &mut [f32]) {
        let g = self.g;
        let (cols, tiles, plane) = (self.columns(imgs), imgs * self.per_image, g.h * g.w);
        let pitch = self.pitch(cols);
        s[..g.k * pitch].par_chunks_mut(pitch).enumerate().for_each(|(k, sk)| simd::wide(#[inline(always)] || {
            for t0 in (0..cols).step_by(LANES) {
                // As in `inputs`: rows copied whole, then turned lane-wise (zeros outside the plane).
                // The lanes of one tile row read one contiguous piece of each of its rows (tile by tile,
                // in copies of two values, this pass took a third longer at width 1/8).
                let mut dy_rows = [[[0f32; M]; LANES]; M];
                for (l, run, (i, ty, tx)) in self.tile_runs(t0, tiles) {
                    let src = &gy[((first + i) * g.k + k) * plane..][..plane];
                    let (rows, _) = self.extent(ty, tx);
                    let width = (run * M).min(g.w - tx * M);
                    for (a, row) in dy_rows.iter_mut().enumerate().take(rows) {
                        copy_row(&mut row[l..l + run].as_flattened_mut()[..width], &src[(ty * M + a) * g.w + tx * M..][..width]);
                    }
                }
                store_tiles(sk, cols, t0, &sandwich(&T::ALG.a, &lane_wise(&dy_rows)));
            }
        }));
    }

    /// The outputs Aᵀ M A of a chunk's products M (laid out [ξ][k][column]) into y, the chunk's images.
    fn outputs(&self, mm: &[f32], imgs: usize, y: &mut [MaybeUninit<f32>]) {
        let g = self.g;
        let (cols, tiles) = (self.columns(imgs), imgs * self.per_image);
        let out = Disjoint::new(y);
        (0..g.k).into_par_iter().for_each(|k| simd::wide(#[inline(always)] || {
            for t0 in (0..cols).step_by(LANES) {
                // Row a of the 16 output tiles side by side (tile l's M values from l·M on), so that the tiles
                // of one tile row go out as one contiguous piece of an output row.
                let side_by_side = tile_wise(&sandwich(&T::ALG.at, &load_tiles(mm, g.k, k, cols, t0)));
                for (l, run, (i, ty, tx)) in self.tile_runs(t0, tiles) {
                    let (rows, _) = self.extent(ty, tx);
                    let width = (run * M).min(g.w - tx * M);
                    for (a, row) in side_by_side.iter().enumerate().take(rows) {
                        // SAFETY: this task alone writes channel k.
                        unsafe { out.write_row(((i * g.k + k) * g.h + ty * M + a) * g.w + tx * M, &row.as_flattened()[l * M..][..width]) };
                    }
                }
            }
        }));
    }

    /// dx of a chunk's images from their transformed gradients Z (laid out [ξ][c][column]): each tile's
    /// B Z Bᵀ added into a zero-bordered plane, tiles in order, whose interior is dx.
    fn input_grads(&self, z: &[f32], imgs: usize, dx: &mut [MaybeUninit<f32>]) {
        let g = self.g;
        let (cols, tiles) = (self.columns(imgs), imgs * self.per_image);
        let out = Disjoint::new(dx);
        (0..g.c).into_par_iter().for_each(|c| {
            ACCUMULATED.with_borrow_mut(|planes| {
                let pad = planes.resized(imgs * self.hp * self.wp);
                simd::wide(#[inline(always)] || {
                    pad.fill(0.0);
                    for t0 in (0..cols).step_by(LANES) {
                        let dd = sandwich(&T::ALG.b, &load_tiles(z, g.c, c, cols, t0));
                        for (l, run, (i, ty, tx)) in self.tile_runs(t0, tiles) {
                            let base = (i * self.hp + ty * M) * self.wp + tx * M;
                            for (a, dda) in dd.iter().enumerate() {
                                add_run::<M, A>(&mut pad[base + a * self.wp..][..run * M + A - M], dda, l, run);
                            }
                        }
                    }
                    for i in 0..imgs {
                        for y in 0..g.h {
                            // SAFETY: this task alone writes channel c.
                            unsafe { out.write_row(((i * g.c + c) * g.h + y) * g.w, &pad[(i * self.hp + y + 1) * self.wp + 1..][..g.w]) };
                        }
                    }
                })
            })
        });
    }

    /// Elements of one chunk's transformed input tiles (the last chunk may use fewer).
    fn chunk_tiles(&self) -> usize {
        self.g.c * self.pitch(self.columns(self.images))
    }

    fn forward(&self, x: &[f32], wt: &[f32], keep: bool) -> (Vec<f32>, Option<TransformedInput>) {
        let g = self.g;
        let u = self.filters(wt);
        let img = g.k * g.h * g.w;
        let most = self.columns(self.images);
        let per_chunk = self.chunk_tiles();
        let mut v = Scratch::take(if keep { per_chunk * self.chunks().count() } else { per_chunk });
        let mut mm = Scratch::take(A * A * g.k * most);
        // SAFETY: the chunks cover the batch, and `outputs` writes every value of a chunk's images (each
        // tile's rows, clipped at odd edges, of every channel).
        let y = unsafe {
            written(g.n * img, |y| {
                for (chunk, (first, imgs)) in self.chunks().enumerate() {
                    let cols = self.columns(imgs);
                    let v = if keep { &mut v[chunk * per_chunk..][..per_chunk] } else { &mut v[..] };
                    self.inputs(x, first, imgs, v);
                    // One GEMM per point ξ: M_ξ (K × cols) = U_ξ (K × C) · V_ξ (C × cols).
                    mm[..A * A * g.k * cols].par_chunks_mut(g.k * cols).enumerate().for_each(|(xi, m)| {
                        matmul::gemm_rows((g.k, cols, g.c), &u[xi * g.c..], (A * A * g.c, 1), &v[xi * cols..], self.pitch(cols), m, cols);
                    });
                    self.outputs(&mm, imgs, &mut y[first * img..][..imgs * img]);
                }
            })
        };
        (y, keep.then(|| TransformedInput { tiles: v, geom: *g }))
    }

    fn backward(&self, x: &[f32], gy: &[f32], wt: &[f32], (input_grad, weight_grad): (bool, bool), kept: Option<&TransformedInput>) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
        let g = self.g;
        let kept = kept.filter(|k| k.geom == *g && weight_grad).map(|k| &k.tiles[..]);
        let per_chunk = self.chunk_tiles();
        let (k, c) = (g.k, g.c);
        let u = if input_grad { self.filters(wt) } else { Scratch::take(0) };
        let img = c * g.h * g.w;
        // Filled chunk by chunk below, never zeroed: `input_grads` writes every value of a chunk's images.
        let mut dx = input_grad.then(|| Vec::with_capacity(g.n * img));
        let mut du = Scratch::take(if weight_grad { A * A * k * c } else { 0 });
        let most = self.columns(self.images);
        let mut s = Scratch::take(k * self.pitch(most));
        let mut fresh = Scratch::take(if weight_grad && kept.is_none() { per_chunk } else { 0 });
        let mut z = Scratch::take(if input_grad { A * A * c * most } else { 0 });
        for (chunk, (first, imgs)) in self.chunks().enumerate() {
            let (cols, pitch) = (self.columns(imgs), self.pitch(self.columns(imgs)));
            self.output_grads(gy, first, imgs, &mut s);
            let v: &[f32] = match kept {
                Some(tiles) => &tiles[chunk * per_chunk..][..per_chunk],
                None if weight_grad => {
                    self.inputs(x, first, imgs, &mut fresh);
                    &fresh
                }
                None => &[],
            };
            // Per point ξ: dU_ξ (K × C) += S_ξ (K × cols) · V_ξᵀ, chunks summed in order (both operands run along
            // the tiles: `matmul::gemm_nt`); Z_ξ (C × cols) =
            // U_ξᵀ · S_ξ.
            let mut du_parts: Vec<Option<&mut [f32]>> = du.chunks_mut(k * c).map(Some).collect();
            let mut z_parts: Vec<Option<&mut [f32]>> = z[..if input_grad { A * A * c * cols } else { 0 }].chunks_mut(c * cols).map(Some).collect();
            du_parts.resize_with(A * A, || None);
            z_parts.resize_with(A * A, || None);
            du_parts.into_par_iter().zip(z_parts).enumerate().for_each(|(xi, (du_xi, z_xi))| {
                let s_xi = &s[xi * cols..];
                if let Some(du_xi) = du_xi {
                    matmul::gemm_nt((k, c, cols), s_xi, pitch, &v[xi * cols..], pitch, du_xi, c, chunk > 0);
                }
                if let Some(z_xi) = z_xi {
                    matmul::gemm_rows((c, cols, k), &u[xi * c..], (1, A * A * c), s_xi, pitch, z_xi, cols);
                }
            });
            if let Some(dx) = dx.as_mut() {
                self.input_grads(&z, imgs, &mut dx.spare_capacity_mut()[first * img..][..imgs * img]);
            }
        }
        if let Some(dx) = dx.as_mut() {
            // SAFETY: the chunks cover the batch, and each chunk's values were written above.
            unsafe { dx.set_len(g.n * img) };
        }
        (dx, weight_grad.then(|| self.filter_grads(&du)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each algorithm is a 1-D correlation: Aᵀ[(G g) ⊙ (Bᵀ d)] = (Σ_j d[i + j] g[j])_i.
    fn correlates<const M: usize, const A: usize>(alg: &Algorithm<M, A>) {
        let d: Vec<f32> = (0..A).map(|i| (i as f32 * 0.37 - 0.8).sin()).collect();
        let f = [0.3f32, -1.1, 0.7];
        let gf: Vec<f32> = (0..A).map(|r| (0..3).map(|j| alg.g[r][j] * f[j]).sum()).collect();
        let bd: Vec<f32> = (0..A).map(|r| (0..A).map(|j| alg.bt[r][j] * d[j]).sum()).collect();
        for i in 0..M {
            let winograd: f32 = (0..A).map(|r| alg.at[i][r] * gf[r] * bd[r]).sum();
            let direct: f32 = (0..3).map(|j| d[i + j] * f[j]).sum();
            assert!((winograd - direct).abs() < 1e-5, "F({M},3) output {i}: {winograd} vs {direct}");
        }
    }

    #[test]
    fn the_algorithm_computes_a_correlation() {
        correlates(&F2::ALG);
    }

    /// The kept zero-bordered planes: a 4×4 batch and a 3×3 batch have the same tile grid and the same
    /// plane layout (6×6), but the 4×4 one writes a row and a column that are border for the 3×3 one. On
    /// one thread (so that both use the same kept buffer), the 3×3 result is the same bits before and after.
    #[test]
    fn kept_planes_are_zero_outside_each_layouts_interiors() {
        let values = |n: usize, salt: f32| -> Vec<f32> { (0..n).map(|i| (i as f32 * 0.37 + salt).sin()).collect() };
        let (n, c, k) = (3, 8, 4);
        let wt = values(k * c * 9, 0.5);
        let conv = |side: usize, x: &[f32]| forward(x, &wt, &Geom::new(&[n, c, side, side], &[k, c, 3, 3], 1, 1).unwrap(), false).0;
        let (x3, x4) = (values(n * c * 9, 0.1), values(n * c * 16, 0.2).iter().map(|v| v + 10.0).collect::<Vec<_>>());
        let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let (before, after) = one_thread.install(|| {
            let before = conv(3, &x3);
            conv(4, &x4);
            (before, conv(3, &x3))
        });
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&before), bits(&after));
    }

    /// A run of tiles added with carried overlaps is the same bits as the tiles' rows added one after the
    /// other, for every run length and starting lane, with exact zeros and values that cancel.
    #[test]
    fn a_run_adds_as_its_tiles_one_by_one() {
        let value = |i: usize| match i % 7 {
            0 => 0.0,
            1 => -0.0,
            r => ((i * 37) as f32 * 0.61).sin() * 10f32.powi(r as i32 - 4),
        };
        let rows: [Lanes; 4] = std::array::from_fn(|b| std::array::from_fn(|l| value(b * LANES + l)));
        for l0 in 0..LANES {
            for run in 1..=LANES - l0 {
                let mut expected: Vec<f32> = (0..run * 2 + 2).map(|i| value(3 * i + 5).abs()).collect();
                let mut seg = expected.clone();
                for j in 0..run {
                    for (b, row) in rows.iter().enumerate() {
                        expected[j * 2 + b] += row[l0 + j];
                    }
                }
                add_run::<2, 4>(&mut seg, &rows, l0, run);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&seg), bits(&expected), "run of {run} from lane {l0}");
            }
        }
    }
}
