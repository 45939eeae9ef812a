"""Reference for `eigenssl bench`: the table1 model's training step in PyTorch, built as eigenssl builds it
(VGG11-BN CIFAR variant at `width`, projector 512·w -> 4096 -> BN -> ReLU -> 256, DirectPred predictor
from an f64 eigendecomposition on the CPU, symmetric cosine SimSiam loss with stop-gradient, momentum SGD
0.9 with weight decay 1e-5), on random images, all cores. Prints one JSON line in eigenssl's StepBench
layout. Installing torch is optional: the Linux wheel on PyPI is the CUDA build (about 3 GB with its nvidia
packages) and runs on the CPU: pip install torch.

Usage: python3 bench/torch_reference.py --width 0.25 --batch 128 --reps 3 [--device cuda --precision tf32]

--precision sets both of PyTorch's TF32 switches, so that each row compares like with like: f32 turns off
the TF32 cuDNN uses for convolutions by default; tf32 turns it on for matrix products too (eigenssl's
generic convolutions are matrix products). On the CPU it changes nothing.
"""
import argparse
import json
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def vgg11(width):
    layers, cin = [], 3
    for c in VGG11:
        if c == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            c = max(1, round(c * width))
            layers += [nn.Conv2d(cin, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            cin = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), cin


def predictor(corr, z, tau=0.5, alpha=0.5, eps=0.0):
    zd = z.detach().double().cpu()
    corr.mul_(tau).add_((1 - tau) * zd.T @ zd / z.shape[0])
    s, u = torch.linalg.eigh(corr)
    s = s.clamp(min=0)
    s = (s / s.max() + eps) ** alpha
    return (u @ torch.diag(s) @ u.T).float().to(z.device)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--device", default="cpu", help="cpu or cuda (the DirectPred eigendecomposition stays on the CPU, as in eigenssl)")
    p.add_argument("--precision", choices=["f32", "tf32"], default="f32", help="f32 products and convolutions, or TF32 on CUDA")
    a = p.parse_args()
    dev = torch.device(a.device)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = a.precision == "tf32"
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    backbone, feat = vgg11(a.width)
    proj = nn.Sequential(nn.Linear(feat, 4096), nn.BatchNorm1d(4096), nn.ReLU(inplace=True), nn.Linear(4096, 256))
    net = nn.Sequential(backbone, proj).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-5)
    corr = torch.zeros(256, 256, dtype=torch.float64)

    # The same fixed random batch every step, as eigenssl's bench-step times it.
    x1 = torch.randn(a.batch, 3, 32, 32, device=dev)
    x2 = torch.randn(a.batch, 3, 32, 32, device=dev)

    def step():
        z1, z2 = net(x1), net(x2)
        predictor(corr, z1)
        wp = predictor(corr, z2)
        loss = -(F.cosine_similarity(z1 @ wp.T, z2.detach(), dim=-1).mean()
                 + F.cosine_similarity(z2 @ wp.T, z1.detach(), dim=-1).mean())
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    sync()
    times = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({
        "width": a.width,
        "batch": a.batch,
        "parameters": sum(p.numel() for p in net.parameters()),
        "step": {"median_s": med, "min_s": times[0], "reps": len(times)},
        "images_per_s": 2 * a.batch / med,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        # GPU memory held by torch's caching allocator at its peak (what the process takes from the GPU).
        **({"gpu_peak_bytes": torch.cuda.max_memory_reserved()} if dev.type == "cuda" else {}),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "precision": a.precision if dev.type == "cuda" else "f32",
    }))


if __name__ == "__main__":
    main()
