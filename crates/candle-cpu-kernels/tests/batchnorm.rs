//! Batch norm (with ReLU, with the 2×2 max pool fused) against candle-nn's layer, its autograd and finite differences.

mod common;

use candle_cpu_kernels::MaxPool2x2;
use candle_core::Module;

#[test]
fn fused_batch_norm_matches_candles_batch_norm_values_running_statistics_and_gradients() {
    use candle_core::{DType, Device, ModuleT, Tensor, Var};
    use candle_cpu_kernels::BatchNorm;
    use candle_nn::VarMap;
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
        let vm = VarMap::new();
        let ours = BatchNorm::new(c, relu, common::var_builder(&vm, DType::F32)).unwrap();
        // Non-trivial scale and shift, shared with the reference layer.
        let gamma = Var::from_tensor(&randn(1.0, 0.5, &[c])).unwrap();
        let beta = Var::from_tensor(&randn(0.0, 0.5, &[c])).unwrap();
        common::var(&vm, "weight").set(gamma.as_tensor()).unwrap();
        common::var(&vm, "bias").set(beta.as_tensor()).unwrap();
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
        let (w, b) = (common::var(&vm, "weight"), common::var(&vm, "bias"));
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
    let ours = BatchNorm::new(5, true, common::var_builder(&VarMap::new(), DType::F64)).unwrap();
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
    use candle_cpu_kernels::BatchNorm;
    use candle_nn::VarMap;
    let dev = Device::Cpu;
    // Widths of 16 and 32 take the pool routing's blocked path (8 windows at a time), the others the per-window one.
    // The forward's groups of 16 windows span row pairs and planes (4×4, 2×10); the last shape has enough
    // windows (7 140) for several of its tasks, each starting at a plane of another channel.
    for (case, (shape, relu)) in [((5, 3, 8, 6), true), ((2, 17, 4, 4), true), ((3, 4, 2, 10), false), ((3, 5, 6, 16), true), ((2, 3, 4, 32), false), ((4, 7, 34, 30), true)].into_iter().enumerate() {
        // Two copies of one layer (batch norm starts at γ = 1, β = 0): one fused with the pool, one followed by MaxPool2x2.
        let (vm_a, vm_b) = (VarMap::new(), VarMap::new());
        let fused = BatchNorm::new(shape.1, relu, common::var_builder(&vm_a, DType::F32)).unwrap();
        let apart = BatchNorm::new(shape.1, relu, common::var_builder(&vm_b, DType::F32)).unwrap();
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
            let (a, b) = (common::var(&vm_a, suffix), common::var(&vm_b, suffix));
            assert_eq!(flat(g_fused.get(a.as_tensor()).unwrap()), flat(g_apart.get(b.as_tensor()).unwrap()), "case {case}: d/d{suffix}");
        }
    }
}

#[test]
fn batch_norm_with_the_pool_refuses_empty_planes() {
    use candle_core::{DType, Device, Tensor};
    use candle_cpu_kernels::BatchNorm;
    use candle_nn::VarMap;
    let vm = VarMap::new();
    let bn = BatchNorm::new(3, true, common::var_builder(&vm, DType::F32)).unwrap();
    let x = Tensor::zeros((2, 3, 0, 4), DType::F32, &Device::Cpu).unwrap();
    let err = bn.forward_pooled_t(&x, true).expect_err("an empty plane");
    assert!(err.to_string().contains("non-zero"), "{err}");
}
