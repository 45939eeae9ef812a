//! The convolutions — im2col and Winograd on CPU f32, the unfolded generic one elsewhere — against candle's
//! `conv2d`, its autograd and finite differences.

mod common;

use candle_core::{DType, Device, Tensor, Var};

/// One convolution case of the crate's `Conv2d` against candle's conv2d: forward values (relative to the
/// output's scale, within `tol`), both gradients against candle's autograd of a random projection of the
/// output where candle's own backward works (candle 0.11.1's conv2d backward fails with a shape mismatch
/// for some strided shapes whose size is not a multiple of the stride), and against central finite
/// differences. Returns whether candle's backward was compared.
#[allow(clippy::too_many_arguments)]
fn conv_matches_candle(case: u64, n: usize, cin: usize, cout: usize, k: usize, stride: usize, pad: usize, (h, w): (usize, usize), tol: f32) -> bool {
    use candle_core::{DType, Device, Module, Tensor, Var};
    use candle_cpu_kernels::Conv2d;
    let max_diff = |a: &Tensor, b: &Tensor| -> f32 {
        let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-3);
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() / scale
    };
    let what = format!("case {case} (n {n} c {cin}→{cout} k {k} s {stride} p {pad} {h}×{w})");
    let vm = candle_nn::VarMap::new();
    let cfg = candle_nn::Conv2dConfig { padding: pad, stride, ..Default::default() };
    let conv = Conv2d::new(cin, cout, k, cfg, true, common::var_builder(&vm, DType::F32)).unwrap();
    let wv = common::var(&vm, "weight");
    wv.set(&common::seeded_uniform(case, (cin * k * k) as f32, wv.dims())).unwrap();
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, cin, h, w), &Device::Cpu).unwrap()).unwrap();
    let ours = conv.forward(x.as_tensor()).unwrap();
    let theirs = x.as_tensor().conv2d(conv.weight(), pad, stride, 1, 1).unwrap();
    assert_eq!(ours.dims(), theirs.dims(), "{what}");
    let forward_diff = max_diff(&ours, &theirs);
    assert!(forward_diff < tol, "{what}: forward differs by {forward_diff} of the output's scale");
    let r = Tensor::randn(0f32, 1.0, ours.dims(), &Device::Cpu).unwrap();
    let g = (&ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let (gx, gw) = (g.get(x.as_tensor()).unwrap(), g.get(wv.as_tensor()).unwrap());
    let mut compared = false;
    if let Ok(gt) = (theirs * &r).unwrap().sum_all().unwrap().backward() {
        let (dx, dw) = (max_diff(gx, gt.get(x.as_tensor()).unwrap()), max_diff(gw, gt.get(wv.as_tensor()).unwrap()));
        assert!(dx < 10.0 * tol, "{what}: input gradient differs by {dx}");
        assert!(dw < 10.0 * tol, "{what}: weight gradient differs by {dw}");
        compared = true;
    }
    // Central differences of sum(conv(x) · r) for a few entries of x and of the weight, summed in f64: an
    // f32 sum over the largest case's 240 000 outputs rounds by more than the difference's tolerance.
    let r64 = r.to_dtype(DType::F64).unwrap();
    let f = |xv: &[f32], wvals: &[f32]| -> f64 {
        let xt = Tensor::from_vec(xv.to_vec(), (n, cin, h, w), &Device::Cpu).unwrap();
        let wt = Tensor::from_vec(wvals.to_vec(), (cout, cin, k, k), &Device::Cpu).unwrap();
        let y = xt.conv2d(&wt, pad, stride, 1, 1).unwrap().to_dtype(DType::F64).unwrap();
        (y * &r64).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
    };
    let xs = x.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let ws = wv.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (gxs, gws) = (gx.flatten_all().unwrap().to_vec1::<f32>().unwrap(), gw.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    for (which, vals, grads) in [("x", &xs, &gxs), ("w", &ws, &gws)] {
        for idx in [0, vals.len() / 2, vals.len() - 1] {
            let (mut up, mut down) = (vals.clone(), vals.clone());
            up[idx] += 1e-2;
            down[idx] -= 1e-2;
            let fd = if which == "x" { (f(&up, &ws) - f(&down, &ws)) / 2e-2 } else { (f(&xs, &up) - f(&xs, &down)) / 2e-2 };
            let got = grads[idx] as f64;
            assert!((fd - got).abs() < 1e-2 * (1.0 + fd.abs()), "{what}: d/d{which}[{idx}] finite difference {fd} vs {got}");
        }
    }
    compared
}

/// The im2col convolution (any kernel, stride and padding; few channels) against candle's conv2d.
#[test]
fn im2col_conv_matches_candles_conv2d_values_and_gradients() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut compared_with_candle = 0;
    for case in 0..16 {
        // Up to 40 images, so that small outputs are grouped into several GEMMs, the last one partial.
        let (n, cin, cout) = (rng.random_range(1..40), rng.random_range(1..6), rng.random_range(1..7));
        let k = [1, 3, 5][rng.random_range(0..3)];
        let (stride, pad) = (rng.random_range(1..3), rng.random_range(0..3));
        let (h, w) = (rng.random_range(k..12), rng.random_range(k..12));
        compared_with_candle += conv_matches_candle(case, n, cin, cout, k, stride, pad, (h, w), 1e-5) as usize;
    }
    assert!(compared_with_candle >= 8, "candle's backward worked on only {compared_with_candle} of 16 cases");
}

/// The Winograd convolution (3×3, stride 1, padding 1, at least 8 input channels) against candle's
/// conv2d: F(2×2, 3×3) on sides that are and are not multiples of the tile, and batches cut into several
/// chunks (the 24×24 case: 144 tiles per image, 3 images per chunk).
#[test]
fn winograd_conv_matches_candles_conv2d_values_and_gradients() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut sides = vec![(2, 2), (3, 3), (2, 5), (4, 4), (5, 7), (8, 8), (6, 6), (24, 24)];
    sides.extend((0..4).map(|_| (rng.random_range(2..13), rng.random_range(2..13))));
    for (case, side) in sides.into_iter().enumerate() {
        let n = if side.0 == 24 { 30 } else { rng.random_range(1..40) };
        let (cin, cout) = (rng.random_range(8..24), rng.random_range(1..20));
        assert!(conv_matches_candle(100 + case as u64, n, cin, cout, 3, 1, 1, side, 2e-5), "candle's backward failed at stride 1");
    }
}

#[test]
fn im2col_conv_skips_the_input_gradient_where_none_is_needed() {
    use candle_core::{DType, Device, Module, Tensor, Var};
    use candle_cpu_kernels::Conv2d;
    let conv = Conv2d::new(3, 4, 3, Default::default(), false, common::var_builder(&candle_nn::VarMap::new(), DType::F32)).unwrap();
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 8, 8), &Device::Cpu).unwrap()).unwrap();
    let g = conv.forward(x.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(g.get(x.as_tensor()).is_none(), "no input gradient for the first layer");
    assert!(g.get(conv.weight()).is_some());
}

/// Every convolution shape VGG11 and ResNet-18 use — (kernel, stride, padding, input side): VGG11's 3×3/1
/// at 32 to 2 px; ResNet-18's CIFAR stem (3×3/1, padding 2) and its blocks at 34, 17, 9 and 5 px; the
/// ImageNet stem (7×7/2 at 96 px) and its blocks at 24 to 3 px; the strided 3×3 and 1×1 shortcuts —
/// with few channels. The generic path's convolution ([`candle_cpu_kernels::unfold::conv2d`], matrix products
/// in both directions) against candle's `conv2d` and its autograd: values and both gradients, in f64 to
/// 1e-12 and f32 to 1e-5 relative.
const CONV_SHAPES: [(usize, usize, usize, usize); 22] = [
    (3, 1, 1, 32), (3, 1, 1, 16), (3, 1, 1, 8), (3, 1, 1, 4), (3, 1, 1, 2),
    (3, 1, 2, 32), (3, 1, 1, 34), (3, 2, 1, 34), (1, 2, 0, 34), (3, 1, 1, 17), (3, 2, 1, 17), (1, 2, 0, 17),
    (3, 1, 1, 9), (3, 2, 1, 9), (1, 2, 0, 9), (3, 1, 1, 5),
    (7, 2, 3, 96), (3, 1, 1, 24), (3, 2, 1, 24), (1, 2, 0, 24), (3, 2, 1, 12), (3, 1, 1, 3),
];

fn conv_grads(x: &Var, w: &Var, y: &Tensor, r: &Tensor) -> (Tensor, Tensor) {
    let g = (y * r).unwrap().sum_all().unwrap().backward().unwrap();
    (g.get(x.as_tensor()).unwrap().clone(), g.get(w.as_tensor()).unwrap().clone())
}

fn max_relative(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_dtype(DType::F64).unwrap(), b.to_dtype(DType::F64).unwrap());
    let diff = (&a - &b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
    diff / b.abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap().max(1e-30)
}

#[test]
fn the_generic_convolution_matches_candles_values_and_gradients_on_every_vgg11_and_resnet18_shape() {
    for (dtype, tolerance) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        for &(k, stride, pad, side) in &CONV_SHAPES {
            let x = Var::from_tensor(&Tensor::randn(0f64, 1.0, (2, 3, side, side), &Device::Cpu).unwrap().to_dtype(dtype).unwrap()).unwrap();
            let w = Var::from_tensor(&Tensor::randn(0f64, 1.0, (4, 3, k, k), &Device::Cpu).unwrap().to_dtype(dtype).unwrap()).unwrap();
            let ours = candle_cpu_kernels::unfold::conv2d(x.as_tensor(), w.as_tensor(), pad, stride).unwrap();
            let theirs = x.as_tensor().conv2d(w.as_tensor(), pad, stride, 1, 1).unwrap();
            let what = format!("{dtype:?} {k}×{k}/{stride} padding {pad} at {side} px");
            assert_eq!(ours.dims(), theirs.dims(), "{what}");
            assert!(max_relative(&ours, &theirs) < tolerance, "{what}: values");
            let r = Tensor::randn(0f64, 1.0, ours.dims(), &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
            let (gx, gw) = conv_grads(&x, &w, &ours, &r);
            let (tx, tw) = conv_grads(&x, &w, &theirs, &r);
            assert!(max_relative(&gx, &tx) < tolerance, "{what}: input gradient {:e}", max_relative(&gx, &tx));
            assert!(max_relative(&gw, &tw) < tolerance, "{what}: weight gradient {:e}", max_relative(&gw, &tw));
        }
    }
}

/// The generic convolution's gradients against central finite differences of its own values, in f64, on
/// the stride-1, stride-2 and 1×1 shapes: a few elements of the input and of the weight each.
#[test]
fn the_generic_convolution_gradients_match_finite_differences() {
    for (k, stride, pad, side) in [(3, 1, 1, 6), (3, 2, 1, 7), (1, 2, 0, 6), (7, 2, 3, 9), (3, 1, 2, 5)] {
        let x0 = Tensor::randn(0f64, 1.0, (2, 3, side, side), &Device::Cpu).unwrap();
        let w0 = Tensor::randn(0f64, 1.0, (4, 3, k, k), &Device::Cpu).unwrap();
        let (x, w) = (Var::from_tensor(&x0).unwrap(), Var::from_tensor(&w0).unwrap());
        let y = candle_cpu_kernels::unfold::conv2d(x.as_tensor(), w.as_tensor(), pad, stride).unwrap();
        let r = Tensor::randn(0f64, 1.0, y.dims(), &Device::Cpu).unwrap();
        let (gx, gw) = conv_grads(&x, &w, &y, &r);
        let loss = |x: &Tensor, w: &Tensor| (candle_cpu_kernels::unfold::conv2d(x, w, pad, stride).unwrap() * &r).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
        let eps = 1e-6;
        for (t, g, is_x) in [(&x0, &gx, true), (&w0, &gw, false)] {
            let flat = t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let grad = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            for idx in [0, flat.len() / 3, flat.len() / 2 + 1, flat.len() - 1] {
                let nudged = |d: f64| {
                    let mut v = flat.clone();
                    v[idx] += d;
                    Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap()
                };
                let (plus, minus) = if is_x { (loss(&nudged(eps), &w0), loss(&nudged(-eps), &w0)) } else { (loss(&x0, &nudged(eps)), loss(&x0, &nudged(-eps))) };
                let fd = (plus - minus) / (2.0 * eps);
                assert!((fd - grad[idx]).abs() <= 1e-6 * (1.0 + fd.abs()), "{k}×{k}/{stride} pad {pad}: {} element {idx}: autograd {} finite difference {fd}", if is_x { "input" } else { "weight" }, grad[idx]);
            }
        }
    }
}
