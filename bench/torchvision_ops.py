"""Fixtures of tests/augment_torchvision.rs: torchvision's own output of every augmentation op the authors'
pipeline applies (solo-learn's `pretrain_dataloader.py` works on PIL images, so these are the PIL code
paths torchvision takes), for fixed parameters, on two generated images (32 px and 96 px).

Writes tests/fixtures/torchvision_ops.safetensors: `input/32`, `input/96` (H x W x 3 uint8), and one
`<op>/<k>` uint8 output per case, with every case's parameters as JSON in the metadata (`cases`).

Usage: python3 bench/torchvision_ops.py [out]   (needs torch, torchvision, safetensors, numpy)
"""
import json
import sys

import numpy as np
import torch
import torchvision
import torchvision.transforms.functional as F
from PIL import Image, ImageFilter, ImageOps
from safetensors.torch import save_file


def image(side, seed):
    """A smooth colour pattern with texture: gradients, a disc, and noise (all 256 levels in play)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    r = 0.5 + 0.5 * np.sin(6.0 * x + 2.0 * y)
    g = np.clip(1.2 * y - 0.1 + 0.3 * ((x - 0.5) ** 2 + (y - 0.4) ** 2 < 0.08), 0, 1)
    b = 0.5 + 0.5 * np.cos(9.0 * x * y)
    rgb = np.stack([r, g, b], axis=-1) + rng.normal(0, 0.06, (side, side, 3))
    return Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), "RGB")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/torchvision_ops.safetensors"
    imgs = {32: image(32, 0), 96: image(96, 1)}
    cases = []

    def add(op, side, params, result):
        cases.append({"op": op, "side": side, "params": params, "key": f"{op}/{len(cases)}"})
        tensors[cases[-1]["key"]] = torch.from_numpy(np.array(result.convert("RGB"), dtype=np.uint8).copy())

    tensors = {f"input/{s}": torch.from_numpy(np.array(im, dtype=np.uint8).copy()) for s, im in imgs.items()}
    bicubic = torchvision.transforms.InterpolationMode.BICUBIC
    for side, (top, left, h, w) in [(32, (3, 5, 20, 14)), (32, (0, 0, 32, 32)), (32, (10, 2, 8, 30)), (32, (1, 0, 31, 29)),
                                    (32, (12, 9, 5, 6)), (96, (7, 11, 60, 41)), (96, (0, 3, 96, 90))]:
        add("resized_crop", side, {"top": top, "left": left, "height": h, "width": w},
            F.resized_crop(imgs[side], top, left, h, w, [side, side], bicubic))
    for f in [1.3, 0.62, 1.0]:
        add("brightness", 32, {"factor": f}, F.adjust_brightness(imgs[32], f))
    for f in [1.37, 0.6, 0.0]:
        add("contrast", 32, {"factor": f}, F.adjust_contrast(imgs[32], f))
    for f in [1.2, 0.8, 0.0]:
        add("saturation", 32, {"factor": f}, F.adjust_saturation(imgs[32], f))
    for f in [0.1, -0.07, 0.031, -0.1, 0.0]:
        add("hue", 32, {"factor": f}, F.adjust_hue(imgs[32], f))
    add("grayscale", 32, {}, F.rgb_to_grayscale(imgs[32], num_output_channels=3))
    # solo-learn's GaussianBlur: PIL's filter with radius = sigma.
    for side, sigma in [(32, 0.5), (96, 1.3), (96, 0.1), (96, 2.0)]:
        add("gaussian_blur", side, {"sigma": sigma}, imgs[side].filter(ImageFilter.GaussianBlur(radius=sigma)))
    add("solarize", 32, {"threshold": 128}, ImageOps.solarize(imgs[32], 128))
    add("hflip", 32, {}, F.hflip(imgs[32]))
    meta = {"cases": json.dumps(cases), "torchvision": torchvision.__version__, "pillow": Image.__version__}
    save_file(tensors, out, metadata=meta)
    print(f"{out}: {len(cases)} cases")


if __name__ == "__main__":
    main()
