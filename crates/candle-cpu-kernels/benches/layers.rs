//! One training pass (forward and backward) of a VGG layer — 3×3 convolution, batch norm, ReLU, 2×2 max
//! pool — and of a linear layer, with this crate's CPU kernels and with candle's own ops (the path CUDA
//! and Metal take), at shapes of VGG11 on CIFAR-10. Run with `cargo bench -p candle-cpu-kernels`.

use candle_core::{DType, Device, Module, ModuleT, Tensor, Var};
use candle_cpu_kernels::{BatchNorm, Conv2d, Kernels, Linear, VggLayer};
use candle_nn::{Conv2dConfig, VarBuilder, VarMap};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

/// (label, batch, input channels, output channels, side)
const LAYERS: [(&str, usize, usize, usize, usize); 3] = [
    ("first layer 3→64 at 32 px", 32, 3, 64, 32),
    ("128→256 at 8 px (Winograd)", 32, 128, 256, 8),
    ("512→512 at 2 px (Winograd)", 32, 512, 512, 2),
];

fn vgg_layer(kernels: Kernels, cin: usize, cout: usize) -> VggLayer {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let cfg = Conv2dConfig { padding: 1, ..Default::default() };
    let conv = Conv2d::new(cin, cout, 3, cfg, cin != 3, vb.pp("conv")).unwrap().with_kernels(kernels);
    VggLayer::new(conv, BatchNorm::new(cout, true, vb.pp("bn")).unwrap().with_kernels(kernels), true)
}

fn training_pass(c: &mut Criterion) {
    let mut group = c.benchmark_group("vgg layer, forward + backward");
    group.sample_size(10);
    for (label, batch, cin, cout, side) in LAYERS {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (batch, cin, side, side), &Device::Cpu).unwrap()).unwrap();
        for kernels in [Kernels::Native, Kernels::Candle] {
            let layer = vgg_layer(kernels, cin, cout);
            group.bench_with_input(BenchmarkId::new(kernels.name(), label), &x, |b, x| {
                b.iter(|| layer.forward_t(x.as_tensor(), true).unwrap().sum_all().unwrap().backward().unwrap())
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("linear 512→4096, batch 256, forward + backward");
    group.sample_size(10);
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (256, 512), &Device::Cpu).unwrap()).unwrap();
    for kernels in [Kernels::Native, Kernels::Candle] {
        let vm = VarMap::new();
        let fc = Linear::new(512, 4096, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap().with_kernels(kernels);
        group.bench_function(kernels.name(), |b| b.iter(|| fc.forward(x.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap()));
    }
    group.finish();
}

criterion_group!(benches, training_pass);
criterion_main!(benches);
