//! Deep-SSL building blocks against hand calculation and candle's autograd.

use candle_core::{DType, Device, Module, ModuleT, Tensor, Var};
use eigenssl::ssl::directpred::DirectPred;
use eigenssl::ssl::ema::ema_update;
use eigenssl::ssl::kernels::Kernels;
use eigenssl::ssl::schedule::tau_schedule;
use eigenssl::ssl::init::SeededVarMap;
use eigenssl::ssl::loss::{directional, symmetric, LossForm, LossKind};
use eigenssl::ssl::optim::{Optimizer, ParamGroup, Rule};
use eigenssl::ssl::pool::MaxPool2x2;
use eigenssl::ssl::{backbone::Vgg11, projector::Projector};
use nalgebra::DMatrix;

const CPU: Device = Device::Cpu;

fn t2(rows: &[&[f32]]) -> Tensor {
    let r = rows.len();
    let c = rows[0].len();
    Tensor::from_vec(rows.iter().flat_map(|x| x.iter().copied()).collect::<Vec<_>>(), (r, c), &CPU).unwrap()
}

fn v2(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().unwrap()
}

fn close(a: &Tensor, b: &Tensor, tol: f32) {
    let d = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(d <= tol, "max abs diff {d}\n{a}\n{b}");
}

#[test]
fn max_pool_gradient_goes_whole_to_each_window_maximum() {
    // One 4×4 channel; window maxima 6, 8, 14, 16 at known places.
    let x = Var::from_vec(
        vec![1f32, 6., 2., 3., 5., 4., 8., 7., 9., 10., 13., 16., 14., 11., 12., 15.],
        (1, 1, 4, 4),
        &CPU,
    )
    .unwrap();
    let y = MaxPool2x2::default().forward(x.as_tensor()).unwrap();
    assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![6., 8., 14., 16.]);
    // Weighted sum so each window's gradient is distinct: dL/dy = [1, 2, 3, 4].
    let w = Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &CPU).unwrap();
    let g = (y * w).unwrap().sum_all().unwrap().backward().unwrap();
    let gx = g.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut expect = vec![0f32; 16];
    expect[1] = 1.0; // 6
    expect[6] = 2.0; // 8
    expect[12] = 3.0; // 14
    expect[11] = 4.0; // 16
    assert_eq!(gx, expect);
    // Tied windows (zeros after ReLU): the whole gradient to the first maximum, as PyTorch.
    let z = Var::from_vec(vec![0f32, 0., 2., 2., 0., 0., 1., 2.], (1, 1, 2, 4), &CPU).unwrap();
    let g = MaxPool2x2::default().forward(z.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
    let gz = g.get(z.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(gz, vec![1., 0., 1., 0., 0., 0., 0., 0.]);
}

#[test]
fn max_pool_matches_the_reshape_and_max_reference_on_random_inputs() {
    use candle_core::Device;
    for (case, (n, c, h, w)) in [(3, 5, 8, 6), (2, 17, 2, 2), (1, 1, 32, 32)].into_iter().enumerate() {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, c, h, w), &Device::Cpu).unwrap()).unwrap();
        let y = MaxPool2x2::default().forward(x.as_tensor()).unwrap();
        let y_ref = x.as_tensor().reshape((n, c, h / 2, 2, w / 2, 2)).unwrap().max(5).unwrap().max(3).unwrap();
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), y_ref.flatten_all().unwrap().to_vec1::<f32>().unwrap(), "case {case}");
        let r = Tensor::randn(0f32, 1.0, y.dims(), &Device::Cpu).unwrap();
        let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g_ref = (&y_ref * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let flat = |g: &candle_core::backprop::GradStore| g.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(&g), flat(&g_ref), "case {case}: gradient");
    }
}

#[test]
fn seeded_init_is_repeatable_and_seed_dependent() {
    let build = |seed| {
        let vm = SeededVarMap::new(seed);
        let net = Vgg11::new(0.125, Kernels::Native, vm.var_builder(DType::F32, &CPU)).unwrap();
        let x = Tensor::ones((2, 3, 32, 32), DType::F32, &CPU).unwrap();
        (net.forward_t(&x, true).unwrap(), vm.named_vars().len())
    };
    let (a, n) = build(1);
    let (b, _) = build(1);
    let (c, _) = build(2);
    close(&a, &b, 0.0);
    assert!((a - c).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
    // 8 conv weights + 8 × (BN weight, bias, running mean, running var).
    assert_eq!(n, 8 + 8 * 4);
}

#[test]
fn vgg_and_projector_shapes_at_cifar_and_stl_sizes() {
    let vm = SeededVarMap::new(0);
    let vb = vm.var_builder(DType::F32, &CPU);
    let net = Vgg11::new(0.25, Kernels::Native, vb.pp("backbone")).unwrap();
    assert_eq!(net.out_dim(), 128);
    let proj = Projector::new(net.out_dim(), 64, 32, Kernels::Native, vb.pp("projector")).unwrap();
    for size in [32, 96] {
        let x = Tensor::randn(0f32, 1., (2, 3, size, size), &CPU).unwrap();
        let z = proj.forward_t(&net.forward_t(&x, true).unwrap(), true).unwrap();
        assert_eq!(z.dims(), &[2, 32]);
    }
}

#[test]
fn directpred_matches_a_direct_eigendecomposition() {
    let z = t2(&[&[1.0, 2.0, 0.5], &[0.3, -1.0, 2.0], &[2.0, 0.1, -0.4], &[-0.5, 0.7, 1.1]]);
    let (tau, alpha, eps) = (0.5, 0.5, 0.1);
    let mut dp = DirectPred::new(3, tau, alpha, eps);
    dp.update(&z, &CPU).unwrap();
    let up = dp.update(&z, &CPU).unwrap();
    // By hand: C = (1 − τ²) ZᵀZ/B after two updates from zero.
    let zm = DMatrix::from_row_slice(4, 3, &z.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|&v| v as f64).collect::<Vec<_>>());
    let c = (zm.transpose() * &zm) / 4.0 * (1.0 - tau * tau);
    assert!((dp.correlation() - &c).norm() < 1e-9);
    let eig = nalgebra::SymmetricEigen::new(c.clone());
    let max = eig.eigenvalues.max();
    let d = eig.eigenvalues.map(|s| (s.max(0.0) / max + eps).powf(alpha));
    let wp = &eig.eigenvectors * DMatrix::from_diagonal(&d) * eig.eigenvectors.transpose();
    let got = v2(&up.wp);
    for r in 0..3 {
        for k in 0..3 {
            assert!((got[r][k] as f64 - wp[(r, k)]).abs() < 1e-5);
        }
    }
    assert!((up.eigenvalues[0] - max).abs() < 1e-9, "descending spectrum of C");
}

/// The gradient of IsoLoss with respect to z equals the SimSiam loss's gradient with respect to p.
#[test]
fn isoloss_gradient_in_z_is_the_simsiam_gradient_in_p() {
    let z0 = Tensor::randn(0f32, 1., (6, 4), &CPU).unwrap();
    let t = Tensor::randn(0f32, 1., (6, 4), &CPU).unwrap();
    let a = Tensor::randn(0f32, 1., (4, 4), &CPU).unwrap();
    let wp = (a.matmul(&a.t().unwrap()).unwrap() * 0.25).unwrap(); // symmetric PSD
    for form in [LossForm::Cosine, LossForm::L2] {
        // SimSiam as a function of p, at p = z W_P.
        let p = Var::from_tensor(&z0.matmul(&wp).unwrap()).unwrap();
        let eye = Tensor::eye(4, DType::F32, &CPU).unwrap();
        let ls = directional(LossKind::Simsiam, form, p.as_tensor(), &eye, &t).unwrap();
        let gp = ls.backward().unwrap().get(p.as_tensor()).unwrap().clone();
        // IsoLoss as a function of z.
        let z = Var::from_tensor(&z0).unwrap();
        let li = directional(LossKind::Isoloss, form, z.as_tensor(), &wp, &t).unwrap();
        let gz = li.backward().unwrap().get(z.as_tensor()).unwrap().clone();
        close(&gz, &gp, 1e-5);
        // And the SimSiam loss's own gradient in z carries the extra W_P: W_P ∂L/∂p.
        let z = Var::from_tensor(&z0).unwrap();
        let lz = directional(LossKind::Simsiam, form, z.as_tensor(), &wp, &t).unwrap();
        let gzs = lz.backward().unwrap().get(z.as_tensor()).unwrap().clone();
        close(&gzs, &gp.matmul(&wp).unwrap(), 1e-5);
    }
}

#[test]
fn losses_by_hand_and_stop_gradient_on_the_target() {
    let z = t2(&[&[3.0, 4.0]]);
    let t = Var::from_tensor(&t2(&[&[4.0, 3.0]])).unwrap();
    let eye = Tensor::eye(2, DType::F32, &CPU).unwrap();
    let cos = directional(LossKind::Simsiam, LossForm::Cosine, &z, &eye, t.as_tensor()).unwrap();
    assert!((cos.to_scalar::<f32>().unwrap() - (2.0 - 2.0 * 24.0 / 25.0)).abs() < 1e-6);
    let l2 = directional(LossKind::Simsiam, LossForm::L2, &z, &eye, t.as_tensor()).unwrap();
    assert!((l2.to_scalar::<f32>().unwrap() - 2.0).abs() < 1e-6);
    // No gradient reaches the target.
    let g = l2.backward().unwrap();
    assert!(g.get(t.as_tensor()).is_none());
    // Symmetrised = sum of both directions.
    let s = symmetric(LossKind::Simsiam, LossForm::L2, [&z, t.as_tensor()], [&eye, &eye], [&z, t.as_tensor()]).unwrap();
    assert!((s.to_scalar::<f32>().unwrap() - 4.0).abs() < 1e-6);
}

#[test]
fn sgd_momentum_step_by_hand() {
    let w = Var::from_tensor(&t2(&[&[1.0, -2.0]])).unwrap();
    let group = ParamGroup { vars: vec![w.clone()], base_lr: 0.5, weight_decay: 0.1 };
    let mut opt = Optimizer::new(Rule::Sgd, 0.9, vec![group]);
    // L = sum(w²)/2 → g = w.
    for _ in 0..2 {
        let g = (w.as_tensor().sqr().unwrap().sum_all().unwrap() * 0.5).unwrap().backward().unwrap();
        opt.step(&g, |base| base).unwrap();
    }
    // By hand: d = g + 0.1 w = 1.1 w; step 1: buf = 1.1 w0, w1 = w0 − 0.55 w0 = 0.45 w0;
    // step 2: d = 1.1·0.45 w0 = 0.495 w0, buf = 0.9·1.1 w0 + 0.495 w0 = 1.485 w0, w2 = 0.45 w0 − 0.7425 w0.
    let expect = -0.2925f32;
    let got = v2(w.as_tensor());
    assert!((got[0][0] - expect).abs() < 1e-6 && (got[0][1] + 2.0 * expect).abs() < 1e-6, "{got:?}");
}

#[test]
fn lars_step_by_hand_with_clipping_and_bias_exclusion() {
    let w = Var::from_tensor(&t2(&[&[3.0, 4.0]])).unwrap(); // ‖w‖ = 5
    let b = Var::from_vec(vec![1f32, 1.], 2, &CPU).unwrap(); // 1-D: plain SGD, no decay
    let group = ParamGroup { vars: vec![w.clone(), b.clone()], base_lr: 0.5, weight_decay: 0.01 };
    let mut opt = Optimizer::new(Rule::Lars { eta: 0.02, clip: true }, 0.9, vec![group]);
    // L = 2·sum(w) + sum(b) → g_w = [2, 2] (‖g‖ = 2√2), g_b = [1, 1].
    let loss = ((w.as_tensor().sum_all().unwrap() * 2.0).unwrap() + b.as_tensor().sum_all().unwrap()).unwrap();
    let g = loss.backward().unwrap();
    let lr = 0.5;
    opt.step(&g, |base| base).unwrap();
    let gn = 8f64.sqrt();
    let r = (0.02 * 5.0 / (gn + 0.01 * 5.0 + 1e-8) / lr).min(1.0);
    let expect_w = [3.0 - lr * r * (2.0 + 0.01 * 3.0), 4.0 - lr * r * (2.0 + 0.01 * 4.0)];
    let got = v2(w.as_tensor());
    assert!((got[0][0] as f64 - expect_w[0]).abs() < 1e-6 && (got[0][1] as f64 - expect_w[1]).abs() < 1e-6, "{got:?}");
    assert_eq!(b.as_tensor().to_vec1::<f32>().unwrap(), vec![0.5, 0.5]);
}

#[test]
fn ema_update_by_hand() {
    let t = Var::from_vec(vec![1f32, 2.], 2, &CPU).unwrap();
    let o = Var::from_vec(vec![3f32, 6.], 2, &CPU).unwrap();
    ema_update(&[t.clone()], &[o], 0.75, Kernels::Native).unwrap();
    assert_eq!(t.as_tensor().to_vec1::<f32>().unwrap(), vec![1.5, 3.0]);
    assert!(tau_schedule(0.99, 1.0, 10, 10) == 1.0);
}

#[test]
fn resnet18_has_torchvisions_parameter_count_and_both_stems_work() {
    use candle_core::{DType, Device, ModuleT, Tensor};
    use eigenssl::ssl::{init::SeededVarMap, resnet::ResNet18};
    let vm = SeededVarMap::new(0);
    let net = ResNet18::new(1.0, true, Kernels::Native, vm.var_builder(DType::F32, &Device::Cpu)).unwrap();
    let params: usize = vm.named_vars().iter().filter(|(n, _)| !n.contains("running_")).map(|(_, v)| v.elem_count()).sum();
    // torchvision resnet18: 11 689 512, less its fc (513 000), with the 3×3 CIFAR stem (1 728) in place
    // of the 7×7 one (9 408).
    assert_eq!(params, 11_689_512 - 513_000 - 9_408 + 1_728);
    assert_eq!(net.out_dim(), 512);
    // STL-10 size through the ImageNet stem: 96 → 48 → 24 → … → 3, pooled to 512·width.
    let vm = SeededVarMap::new(0);
    let small = ResNet18::new(0.125, false, Kernels::Native, vm.var_builder(DType::F32, &Device::Cpu)).unwrap();
    let x = Tensor::randn(0f32, 1.0, (2, 3, 96, 96), &Device::Cpu).unwrap();
    assert_eq!(small.forward_t(&x, true).unwrap().dims(), &[2, 64]);
}

/// One convolution case of eigenssl's `Conv2d` against candle's conv2d: forward values (relative to the
/// output's scale, within `tol`), both gradients against candle's autograd of a random projection of the
/// output where candle's own backward works (candle 0.11.1's conv2d backward fails with a shape mismatch
/// for some strided shapes whose size is not a multiple of the stride), and against central finite
/// differences. Returns whether candle's backward was compared.
#[allow(clippy::too_many_arguments)]
fn conv_matches_candle(case: u64, n: usize, cin: usize, cout: usize, k: usize, stride: usize, pad: usize, (h, w): (usize, usize), tol: f32) -> bool {
    use candle_core::{DType, Device, Module, Tensor, Var};
    use eigenssl::ssl::{conv::Conv2d, init::SeededVarMap};
    let max_diff = |a: &Tensor, b: &Tensor| -> f32 {
        let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-3);
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() / scale
    };
    let what = format!("case {case} (n {n} c {cin}→{cout} k {k} s {stride} p {pad} {h}×{w})");
    let vm = SeededVarMap::new(case);
    let cfg = candle_nn::Conv2dConfig { padding: pad, stride, ..Default::default() };
    let conv = Conv2d::new(cin, cout, k, cfg, true, vm.var_builder(DType::F32, &Device::Cpu)).unwrap();
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, cin, h, w), &Device::Cpu).unwrap()).unwrap();
    let ours = conv.forward(x.as_tensor()).unwrap();
    let theirs = x.as_tensor().conv2d(conv.weight(), pad, stride, 1, 1).unwrap();
    assert_eq!(ours.dims(), theirs.dims(), "{what}");
    let forward_diff = max_diff(&ours, &theirs);
    assert!(forward_diff < tol, "{what}: forward differs by {forward_diff} of the output's scale");
    let r = Tensor::randn(0f32, 1.0, ours.dims(), &Device::Cpu).unwrap();
    let g = (&ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let wv = vm.named_vars().into_iter().find(|(name, _)| name.ends_with("weight")).unwrap().1;
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
    use eigenssl::ssl::{conv::Conv2d, init::SeededVarMap};
    let vm = SeededVarMap::new(0);
    let conv = Conv2d::new(3, 4, 3, Default::default(), false, vm.var_builder(DType::F32, &Device::Cpu)).unwrap();
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 8, 8), &Device::Cpu).unwrap()).unwrap();
    let g = conv.forward(x.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(g.get(x.as_tensor()).is_none(), "no input gradient for the first layer");
    assert!(g.get(conv.weight()).is_some());
}

#[test]
fn fused_batch_norm_matches_candles_batch_norm_values_running_statistics_and_gradients() {
    use candle_core::{DType, Device, ModuleT, Tensor, Var};
    use eigenssl::ssl::{batchnorm::BatchNorm, init::SeededVarMap};
    use rand::{Rng, SeedableRng};
    let dev = Device::Cpu;
    let rel = |a: &Tensor, b: &Tensor| -> f32 {
        let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-3);
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() / scale
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    // Seeded normal draws (candle's `randn` is not), so that every run tests the same values.
    let mut randn = |mean: f32, std: f32, shape: &[usize]| -> Tensor {
        let v: Vec<f32> = (0..shape.iter().product()).map(|_| mean + std * rng.sample::<f32, _>(rand_distr::StandardNormal)).collect();
        Tensor::from_vec(v, shape, &dev).unwrap()
    };
    let mut rng2 = rand::rngs::StdRng::seed_from_u64(12);
    for case in 0..12 {
        // BatchNorm1d (N, C) and BatchNorm2d (N, C, H, W); channel counts around the 16-channel blocks.
        // At least 4 images: with 2, BatchNorm1d maps every pair to ±1 and its input gradient vanishes.
        let (n, c) = (rng2.random_range(4..9), rng2.random_range(1..40));
        let shape: Vec<usize> = if case % 3 == 0 { vec![n, c] } else { vec![n, c, rng2.random_range(1..7), rng2.random_range(1..21)] };
        let relu = case % 2 == 0;
        let what = format!("case {case} {shape:?} relu {relu}");
        let vm = SeededVarMap::new(case);
        let ours = BatchNorm::new(c, relu, vm.var_builder(DType::F32, &dev)).unwrap();
        // Non-trivial scale and shift, shared with the reference layer.
        let gamma = Var::from_tensor(&randn(1.0, 0.5, &[c])).unwrap();
        let beta = Var::from_tensor(&randn(0.0, 0.5, &[c])).unwrap();
        for (name, v) in vm.named_vars() {
            if name.ends_with("weight") {
                v.set(gamma.as_tensor()).unwrap();
            } else if name.ends_with("bias") {
                v.set(beta.as_tensor()).unwrap();
            }
        }
        let theirs = candle_nn::BatchNorm::new_with_momentum(
            c,
            Tensor::zeros(c, DType::F32, &dev).unwrap(),
            Tensor::ones(c, DType::F32, &dev).unwrap(),
            gamma.as_tensor().clone(),
            beta.as_tensor().clone(),
            1e-5,
            0.1,
        )
        .unwrap();
        let x = Var::from_tensor(&randn(0.5, 2.0, &shape)).unwrap();
        let y = ours.forward_t(x.as_tensor(), true).unwrap();
        let mut y_ref = theirs.forward_t(x.as_tensor(), true).unwrap();
        if relu {
            y_ref = y_ref.relu().unwrap();
        }
        assert!(rel(&y, &y_ref) < 1e-5, "{what}: forward");
        assert!(rel(ours.running_mean(), theirs.running_mean()) < 1e-5, "{what}: running mean");
        assert!(rel(ours.running_var(), theirs.running_var()) < 1e-5, "{what}: running variance");
        let r = randn(0.0, 1.0, &shape);
        let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g_ref = (&y_ref * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let wv = |suffix: &str| vm.named_vars().into_iter().find(|(name, _)| name.ends_with(suffix)).unwrap().1;
        let (w, b) = (wv("weight"), wv("bias"));
        assert!(rel(g.get(x.as_tensor()).unwrap(), g_ref.get(x.as_tensor()).unwrap()) < 1e-4, "{what}: d/dx");
        assert!(rel(g.get(w.as_tensor()).unwrap(), g_ref.get(gamma.as_tensor()).unwrap()) < 1e-4, "{what}: d/dγ");
        assert!(rel(g.get(b.as_tensor()).unwrap(), g_ref.get(beta.as_tensor()).unwrap()) < 1e-4, "{what}: d/dβ");
        // Central differences of sum(bn(x) · r) in f64, through candle-nn's layer on f64 copies.
        let f = |xv: &[f64], gv: &[f64], bv: &[f64]| -> f64 {
            let t = |v: &[f64], s: &[usize]| Tensor::from_vec(v.to_vec(), s, &dev).unwrap();
            let bn = candle_nn::BatchNorm::new_with_momentum(
                c,
                Tensor::zeros(c, DType::F64, &dev).unwrap(),
                Tensor::ones(c, DType::F64, &dev).unwrap(),
                t(gv, &[c]),
                t(bv, &[c]),
                1e-5,
                0.1,
            )
            .unwrap();
            let mut out = bn.forward_t(&t(xv, &shape), true).unwrap();
            if relu {
                out = out.relu().unwrap();
            }
            (out * r.to_dtype(DType::F64).unwrap()).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
        };
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
        let vals = [flat(x.as_tensor()), flat(gamma.as_tensor()), flat(beta.as_tensor())];
        let grads = [flat(g.get(x.as_tensor()).unwrap()), flat(g.get(w.as_tensor()).unwrap()), flat(g.get(b.as_tensor()).unwrap())];
        for which in 0..3 {
            for idx in [0, vals[which].len() / 2, vals[which].len() - 1] {
                // Small enough that no output crosses ReLU's kink, where the difference quotient jumps.
                let h = 1e-7;
                let (mut up, mut down) = (vals.clone(), vals.clone());
                up[which][idx] += h;
                down[which][idx] -= h;
                let fd = (f(&up[0], &up[1], &up[2]) - f(&down[0], &down[1], &down[2])) / (2.0 * h);
                let got = grads[which][idx];
                assert!((fd - got).abs() < 2e-3 * (1.0 + fd.abs()), "{what}: argument {which}[{idx}] finite difference {fd} vs {got}");
            }
        }
        // Eval mode is candle-nn's layer on the running statistics.
        let e = ours.forward_t(x.as_tensor(), false).unwrap();
        let mut e_ref = theirs.forward_t(x.as_tensor(), false).unwrap();
        if relu {
            e_ref = e_ref.relu().unwrap();
        }
        assert!(rel(&e, &e_ref) < 1e-5, "{what}: eval");
    }
    // Other dtypes (and devices) take candle-nn's layer in training too: f64 here.
    let vm = SeededVarMap::new(0);
    let ours = BatchNorm::new(5, true, vm.var_builder(DType::F64, &dev)).unwrap();
    let theirs = candle_nn::BatchNorm::new_with_momentum(
        5,
        Tensor::zeros(5, DType::F64, &dev).unwrap(),
        Tensor::ones(5, DType::F64, &dev).unwrap(),
        Tensor::ones(5, DType::F64, &dev).unwrap(),
        Tensor::zeros(5, DType::F64, &dev).unwrap(),
        1e-5,
        0.1,
    )
    .unwrap();
    let x = randn(0.0, 1.0, &[6, 5, 3, 3]).to_dtype(DType::F64).unwrap();
    let diff = (ours.forward_t(&x, true).unwrap() - theirs.forward_t(&x, true).unwrap().relu().unwrap()).unwrap();
    assert!(diff.abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap() < 1e-12, "f64 training forward");
    assert!((ours.running_var() - theirs.running_var()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap() < 1e-12);
}

#[test]
fn batch_norm_with_the_pool_fused_equals_batch_norm_then_pool_exactly() {
    use candle_core::{DType, Device, ModuleT, Tensor, Var};
    use eigenssl::ssl::{batchnorm::BatchNorm, init::SeededVarMap};
    let dev = Device::Cpu;
    // Widths of 16 and 32 take the pool routing's blocked path (8 windows at a time), the others the per-window one.
    for (case, (shape, relu)) in [((5, 3, 8, 6), true), ((2, 17, 4, 4), true), ((3, 4, 2, 10), false), ((3, 5, 6, 16), true), ((2, 3, 4, 32), false)].into_iter().enumerate() {
        // Two copies of one layer (same seed): one fused with the pool, one followed by MaxPool2x2.
        let (vm_a, vm_b) = (SeededVarMap::new(case as u64), SeededVarMap::new(case as u64));
        let fused = BatchNorm::new(shape.1, relu, vm_a.var_builder(DType::F32, &dev)).unwrap();
        let apart = BatchNorm::new(shape.1, relu, vm_b.var_builder(DType::F32, &dev)).unwrap();
        let x = Var::from_tensor(&Tensor::randn(0.3f32, 1.5, shape, &dev).unwrap()).unwrap();
        let y_fused = fused.forward_pooled_t(x.as_tensor(), true).unwrap();
        let y_apart = MaxPool2x2::default().forward(&apart.forward_t(x.as_tensor(), true).unwrap()).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(&y_fused), flat(&y_apart), "case {case}: forward");
        assert_eq!(flat(fused.running_var()), flat(apart.running_var()), "case {case}: running variance");
        let r = Tensor::randn(0f32, 1.0, y_fused.dims(), &dev).unwrap();
        let g_fused = (&y_fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g_apart = (&y_apart * &r).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(flat(g_fused.get(x.as_tensor()).unwrap()), flat(g_apart.get(x.as_tensor()).unwrap()), "case {case}: d/dx");
        for suffix in ["weight", "bias"] {
            let var = |vm: &SeededVarMap| vm.named_vars().into_iter().find(|(n, _)| n.ends_with(suffix)).unwrap().1;
            let (a, b) = (var(&vm_a), var(&vm_b));
            assert_eq!(flat(g_fused.get(a.as_tensor()).unwrap()), flat(g_apart.get(b.as_tensor()).unwrap()), "case {case}: d/d{suffix}");
        }
    }
}

#[test]
fn knn_weights_votes_by_similarity_as_computed_by_hand() {
    use eigenssl::ssl::eval::knn_top1;
    let dev = &candle_core::Device::Cpu;
    // Cosine similarities of the test image to the training images: 0.96 (class 0), 0.8 and 0.936 (class 1).
    let train = candle_core::Tensor::new(&[[1f32, 0.0], [0.6, 0.8], [0.8, 0.6]], dev).unwrap();
    let test = candle_core::Tensor::new(&[[0.96f32, 0.28]], dev).unwrap();
    // T = 0.07: e^(0.96/0.07) = 9.04e5 > e^(0.8/0.07) + e^(0.936/0.07) = 7.34e5, so class 0 wins; T = 1:
    // e^0.96 = 2.61 < e^0.8 + e^0.936 = 4.78, so the two class-1 neighbours outvote it.
    assert_eq!(knn_top1(&train, &[0, 1, 1], &test, &[0], 3, 0.07, 2).unwrap(), 100.0);
    assert_eq!(knn_top1(&train, &[0, 1, 1], &test, &[0], 3, 1.0, 2).unwrap(), 0.0);
    // k = 1 takes the nearest alone; features are compared by direction, not length.
    let scaled = (train * 10.0).unwrap();
    assert_eq!(knn_top1(&scaled, &[0, 1, 1], &test, &[0], 1, 1.0, 2).unwrap(), 100.0);
}

#[test]
fn the_linear_probe_separates_separable_features() {
    use eigenssl::ssl::eval::{linear_probe_top1, ProbeConfig};
    let dev = &candle_core::Device::Cpu;
    let x: Vec<f32> = (0..200).flat_map(|i| {
        let c = (i % 2) as f32;
        [c * 4.0 - 2.0 + (i as f32 * 0.37).sin(), (i as f32 * 0.11).cos()]
    }).collect();
    let y: Vec<i64> = (0..200).map(|i| i % 2).collect();
    let f = candle_core::Tensor::from_vec(x, (200, 2), dev).unwrap();
    let cfg = ProbeConfig { epochs: 20, lr: 0.1, batch: 32, seed: 0 };
    let top1 = linear_probe_top1(&f, &y, &f, &y, 2, &cfg).unwrap();
    assert_eq!(top1, 100.0);
    assert_eq!(linear_probe_top1(&f, &y, &f, &y, 2, &cfg).unwrap(), top1, "deterministic");
}

/// Every convolution shape VGG11 and ResNet-18 use — (kernel, stride, padding, input side): VGG11's 3×3/1
/// at 32 to 2 px; ResNet-18's CIFAR stem (3×3/1, padding 2) and its blocks at 34, 17, 9 and 5 px; the
/// ImageNet stem (7×7/2 at 96 px) and its blocks at 24 to 3 px; the strided 3×3 and 1×1 shortcuts —
/// with few channels. The generic path's convolution ([`eigenssl::ssl::unfold::conv2d`], matrix products
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
            let ours = eigenssl::ssl::unfold::conv2d(x.as_tensor(), w.as_tensor(), pad, stride).unwrap();
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
        let y = eigenssl::ssl::unfold::conv2d(x.as_tensor(), w.as_tensor(), pad, stride).unwrap();
        let r = Tensor::randn(0f64, 1.0, y.dims(), &Device::Cpu).unwrap();
        let (gx, gw) = conv_grads(&x, &w, &y, &r);
        let loss = |x: &Tensor, w: &Tensor| (eigenssl::ssl::unfold::conv2d(x, w, pad, stride).unwrap() * &r).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
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
