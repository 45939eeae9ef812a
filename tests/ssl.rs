//! Deep-SSL building blocks against hand calculation and candle's autograd.

use candle_core::{DType, Device, ModuleT, Tensor, Var};
use eigenssl::ssl::directpred::DirectPred;
use eigenssl::ssl::ema::ema_update;
use eigenssl::ssl::Kernels;
use eigenssl::ssl::schedule::tau_schedule;
use eigenssl::ssl::init::SeededVarMap;
use eigenssl::ssl::loss::{directional, symmetric, LossForm, LossKind};
use eigenssl::ssl::optim::{Optimizer, ParamGroup, Rule};
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
