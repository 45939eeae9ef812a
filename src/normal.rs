//! Fast standard-normal sampling: Marsaglia & Tsang's ziggurat (J. Stat. Softw. 5(8), 2000), 128 layers.
//!
//! The toy-network engine draws ~10⁶ normals per step, so the sampler sets its speed. The fast path (98.8 %
//! of draws) is one 64-bit random number, a table look-up, a multiply and a compare. The layer index and
//! the value come from disjoint bits (Doornik 2005 showed that sharing them, as the original does, biases
//! the output). The tail uses Marsaglia's exact exponential method, so the law is exactly N(0, 1) up to
//! the 32-bit resolution of the fast-path values.

use std::sync::OnceLock;

use rand::{RngCore, SeedableRng};

const LAYERS: usize = 128;
/// Start of the tail: the right edge of the base layer.
const R: f64 = 3.442619855899;
/// Area of each layer.
const V: f64 = 9.91256303526217e-3;
const M1: f64 = 2147483648.0;

struct Tables {
    k: [u32; LAYERS],
    w: [f64; LAYERS],
    f: [f64; LAYERS],
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = Tables { k: [0; LAYERS], w: [0.0; LAYERS], f: [0.0; LAYERS] };
        let mut dn = R;
        let mut tn = dn;
        let q = V / (-0.5 * dn * dn).exp();
        t.k[0] = ((dn / q) * M1) as u32;
        t.k[1] = 0;
        t.w[0] = q / M1;
        t.w[LAYERS - 1] = dn / M1;
        t.f[0] = 1.0;
        t.f[LAYERS - 1] = (-0.5 * dn * dn).exp();
        for i in (1..LAYERS - 1).rev() {
            dn = (-2.0 * (V / dn + (-0.5 * dn * dn).exp()).ln()).sqrt();
            t.k[i + 1] = ((dn / tn) * M1) as u32;
            tn = dn;
            t.f[i] = (-0.5 * dn * dn).exp();
            t.w[i] = dn / M1;
        }
        t
    })
}

/// A uniform in (0, 1), never 0 (it goes through a logarithm).
fn open01<G: RngCore>(rng: &mut G) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// Independent xoshiro256++ generators stepped side by side: one generator's step is a chain of
/// dependent operations, so lanes in parallel keep the core busy (and vectorise where the target allows).
const LANES: usize = 8;

/// A fast random stream for bulk sampling: `LANES` xoshiro256++ generators seeded from one parent stream.
#[derive(Clone, Debug)]
pub struct FastRng {
    s: [[u64; LANES]; 4],
    buf: [u64; LANES],
    pos: usize,
}

impl FastRng {
    /// Seeds every lane from `parent` (a lane seed of all zeros is impossible in practice and fixed up).
    pub fn from_rng<G: RngCore>(parent: &mut G) -> Self {
        let mut s = [[0u64; LANES]; 4];
        for lane in 0..LANES {
            let mut seed = [0u8; 32];
            parent.fill_bytes(&mut seed);
            let mut x = rand_xoshiro::Xoshiro256PlusPlus::from_seed(seed);
            for word in s.iter_mut() {
                word[lane] = x.next_u64() | (lane == 0 && word[lane] == 0) as u64;
            }
        }
        FastRng { s, buf: [0; LANES], pos: LANES }
    }

    /// One step of every lane.
    #[inline(always)]
    fn step(&mut self) -> [u64; LANES] {
        let [s0, s1, s2, s3] = &mut self.s;
        let mut out = [0u64; LANES];
        for i in 0..LANES {
            out[i] = s0[i].wrapping_add(s3[i]).rotate_left(23).wrapping_add(s0[i]);
            let t = s1[i] << 17;
            s2[i] ^= s0[i];
            s3[i] ^= s1[i];
            s1[i] ^= s2[i];
            s0[i] ^= s3[i];
            s2[i] ^= t;
            s3[i] = s3[i].rotate_left(45);
        }
        out
    }
}

impl RngCore for FastRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        if self.pos == LANES {
            self.buf = self.step();
            self.pos = 0;
        }
        self.pos += 1;
        self.buf[self.pos - 1]
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Fills `out` with independent N(0, 1) draws.
///
/// ```
/// let mut rng = eigenssl::normal::FastRng::from_rng(&mut eigenssl::rng::stream(1, "doc"));
/// let mut x = vec![0.0; 100_000];
/// eigenssl::normal::fill(&mut rng, &mut x);
/// let mean = x.iter().sum::<f64>() / x.len() as f64;
/// let var = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
/// assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.02);
/// ```
pub fn fill(rng: &mut FastRng, out: &mut [f64]) {
    let t = tables();
    let mut chunks = out.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        let r = rng.step();
        for (v, &r) in chunk.iter_mut().zip(&r) {
            let hz = r as u32 as i32;
            let iz = ((r >> 32) as usize) & (LAYERS - 1);
            *v = if hz.unsigned_abs() < t.k[iz] { hz as f64 * t.w[iz] } else { slow(rng, t, hz, iz) };
        }
    }
    for v in chunks.into_remainder() {
        let r = rng.next_u64();
        let hz = r as u32 as i32;
        let iz = ((r >> 32) as usize) & (LAYERS - 1);
        *v = if hz.unsigned_abs() < t.k[iz] { hz as f64 * t.w[iz] } else { slow(rng, t, hz, iz) };
    }
}

/// The ziggurat's rare path: the wedge test, the tail, or a fresh draw.
#[cold]
fn slow<G: RngCore>(rng: &mut G, t: &Tables, mut hz: i32, mut iz: usize) -> f64 {
    loop {
        let x = hz as f64 * t.w[iz];
        if iz == 0 {
            // Tail beyond R: Marsaglia's method with two exponentials.
            loop {
                let x = -open01(rng).ln() / R;
                let y = -open01(rng).ln();
                if y + y >= x * x {
                    return if hz > 0 { R + x } else { -R - x };
                }
            }
        }
        if t.f[iz] + open01(rng) * (t.f[iz - 1] - t.f[iz]) < (-0.5 * x * x).exp() {
            return x;
        }
        let r = rng.next_u64();
        hz = r as u32 as i32;
        iz = ((r >> 32) as usize) & (LAYERS - 1);
        if hz.unsigned_abs() < t.k[iz] {
            return hz as f64 * t.w[iz];
        }
    }
}
