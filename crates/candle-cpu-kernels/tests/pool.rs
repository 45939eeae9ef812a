//! The 2×2 max pool on both paths: PyTorch's gradient (whole to each window's first maximum).

use candle_core::{Device, Module, Tensor, Var};
use candle_cpu_kernels::MaxPool2x2;

const CPU: Device = Device::Cpu;

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
fn max_pool_refuses_odd_or_empty_planes_on_both_paths() {
    use candle_cpu_kernels::Kernels;
    for kernels in [Kernels::Native, Kernels::Candle] {
        for (h, w) in [(3, 4), (4, 5), (0, 4), (4, 0)] {
            let x = Tensor::zeros((2, 3, h, w), candle_core::DType::F32, &CPU).unwrap();
            let err = MaxPool2x2::new(kernels).forward(&x).expect_err("an odd or empty plane");
            assert!(err.to_string().contains("even, non-zero"), "{h}×{w}: {err}");
        }
    }
}
