"""The same training passes as benches/layers.rs in PyTorch, for the README's comparison.

One forward and backward of the sum of the output, per case: a VGG layer (bias-free 3x3 convolution,
batch norm, ReLU, 2x2 max pool; the input's gradient only where the layer is not the first, as ours) and
a linear layer; median of `--reps` timed passes after 3 untimed ones, on `--threads` threads (default: the
number of cores, as rayon's pool). Usage: python3 benches/torch_layers.py [--reps 20] [--threads N]
"""
import argparse
import os
import statistics
import time

import torch

LAYERS = [
    ("first layer 3→64 at 32 px", 32, 3, 64, 32),
    ("128→256 at 8 px", 32, 128, 256, 8),
    ("512→512 at 2 px", 32, 512, 512, 2),
]


def median_ms(step, reps):
    for _ in range(3):
        step()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    for label, batch, cin, cout, side in LAYERS:
        layer = torch.nn.Sequential(
            torch.nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            torch.nn.BatchNorm2d(cout),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        ).train()
        x = torch.randn(batch, cin, side, side, requires_grad=cin != 3)
        print(f"vgg layer, {label}: {median_ms(lambda: layer(x).sum().backward(), args.reps):.1f} ms")
    fc = torch.nn.Linear(512, 4096)
    x = torch.randn(256, 512, requires_grad=True)
    print(f"linear 512→4096, batch 256: {median_ms(lambda: fc(x).sum().backward(), args.reps):.1f} ms")


if __name__ == "__main__":
    main()
