"""The PyTorch twin of eigenssl's Table 1 training step, written by us from the authors' code (the public
repository fmi-basel/implicit-var-reg, built on solo-learn): `DirectPred.forward` / `training_step`
(solo/methods/directpred.py), the losses (solo/losses/byol.py, isoloss.py), the online readout
(solo/methods/base.py), LARS (solo/utils/lars.py), the warm-up + cosine schedule
(solo/utils/lr_scheduler.py) and the EMA target (solo/utils/momentum.py). Nothing here imports eigenssl.

Mode `fixtures DIR`: for every `DIR/<cell>/inputs.safetensors` that `examples/parity_fixtures.rs` wrote
(eigenssl's config and initial weights), with the augmented batches of `DIR/batches.safetensors`, train the authors' step on exactly those
inputs and write `DIR/<cell>/expected.safetensors`: after each optimiser step the losses, C, each view's
W_P, the readout's logits, every parameter, batch-norm statistic, momentum buffer and target parameter;
after the steps one evaluation batch (logits, and C after the evaluation forward has folded into it);
and, for the init check, the std of every weight as torchvision and `nn.Linear` initialise it (mean over
8 torch seeds). `tests/parity.rs` compares eigenssl with these files; run both through
`bench/make_parity_fixtures.sh`.

Where this twin computes differently from the authors' code, on purpose:
- C and its eigendecomposition are float64 (`eigh`), as eigenssl's; the authors' fp32 `eig` (under AMP)
  differs from both by rounding, which would swamp a 1e-4 comparison.
- float32 everywhere else, no AMP, NCHW memory format: the same arithmetic as theirs up to rounding.

Mode `cells SUBSET OUT [CELL ...]`: whole Table 1 cells (seeds 0-3) on the images and configs that
`examples/export_subset.rs` wrote to SUBSET, with torch's own init and solo-learn's torchvision pipeline on
PIL images; one JSON per run in OUT (readout top-1 and the participation ratio of C per epoch, and
eigenssl's collapse criterion: std of the l2-normalised embeddings times sqrt(D) below 0.1).

Usage: python3 bench/torch_twin.py fixtures tests/fixtures/parity
       python3 bench/torch_twin.py cells /tmp/cpu-subset.safetensors results/table1/cpu-twin [CELL ...] [--seeds 4,5,6,7]
"""
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors import safe_open
from safetensors.torch import save_file

VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


class Vgg11(nn.Module):
    """VGG11-BN features (conv 3x3 / BN / ReLU, 2x2 max pools) + global average pool; eigenssl's names."""

    def __init__(self, width):
        super().__init__()
        self.features = nn.ModuleDict()
        self.plan = []
        cin = 3
        for i, c in enumerate(VGG11):
            if c == "M":
                self.plan[-1][1] = True
                continue
            c = max(1, round(c * width))
            block = nn.Module()
            block.conv = nn.Conv2d(cin, c, 3, padding=1, bias=False)
            block.bn = nn.BatchNorm2d(c)
            self.features[str(i)] = block
            self.plan.append([str(i), False])
            cin = c
        self.out_dim = cin

    def forward(self, x):
        for name, pool in self.plan:
            block = self.features[name]
            x = F.relu(block.bn(block.conv(x)))
            if pool:
                x = F.max_pool2d(x, 2)
        return x.mean(dim=(2, 3))


class Projector(nn.Module):
    """Linear -> BatchNorm1d -> ReLU -> Linear, as `DirectPred.projector`."""

    def __init__(self, din, hidden, dout):
        super().__init__()
        self.fc1 = nn.Linear(din, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, dout)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(x))))


class Net(nn.Module):
    def __init__(self, cfg, classes):
        super().__init__()
        self.backbone = Vgg11(cfg["width"])
        self.projector = Projector(self.backbone.out_dim, cfg["proj_hidden"], cfg["proj_out"])
        self.classifier = nn.Linear(self.backbone.out_dim, classes)


class Lars(torch.optim.Optimizer):
    """solo/utils/lars.py (exclude_bias_n_norm=True, clip_lr=True)."""

    def __init__(self, params, lr, momentum, weight_decay, eta, eps=1e-8):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, eps=eps))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            wd, momentum = group["weight_decay"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad
                p_norm, g_norm = torch.norm(p.data), torch.norm(p.grad.data)
                if p.ndim != 1:
                    if p_norm != 0 and g_norm != 0:
                        lars_lr = p_norm / (g_norm + p_norm * wd + group["eps"]) * group["eta"]
                        lars_lr = min(lars_lr / group["lr"], 1)
                        d_p = d_p.add(p, alpha=wd)
                        d_p *= lars_lr
                state = self.state[p]
                if "momentum_buffer" not in state:
                    buf = state["momentum_buffer"] = torch.clone(d_p).detach()
                else:
                    buf = state["momentum_buffer"]
                    buf.mul_(momentum).add_(d_p)
                p.add_(buf, alpha=-group["lr"])


def warmup_cosine(t, warmup, total, start, base):
    """solo/utils/lr_scheduler.py LinearWarmupCosineAnnealingLR (eta_min 0), closed form of its chain."""
    if warmup == 0:
        start = base
    if t == 0:
        return start
    if t < warmup:
        return start + t * (base - start) / (warmup - 1)
    return base * (1 + math.cos(math.pi * (t - warmup) / (total - warmup))) / 2


class DirectPred:
    """The predictor state of `DirectPred.forward`: C, and W_P from its eigendecomposition."""

    def __init__(self, dim, tau, alpha, eps):
        self.C = torch.zeros(dim, dim, dtype=torch.float64)
        self.tau, self.alpha, self.eps = tau, alpha, eps

    def fold(self, z):
        zn = z.detach().double() / math.sqrt(z.shape[0])
        self.C = self.C * self.tau + (zn.T @ zn) * (1 - self.tau)

    def forward(self, z):
        """Folds z into C, then (p, psqrt, W_P) as the authors' forward returns them."""
        self.fold(z)
        s, U = torch.linalg.eigh(self.C)
        s = torch.clamp(s, min=0) / s.max() + self.eps
        s = s**self.alpha if self.alpha != 1.0 else s
        wp = (U @ torch.diag(s) @ U.T).float()
        wp_sqrt = (U @ torch.diag(s**0.5) @ U.T).float()
        return z @ wp, z @ wp_sqrt, wp


def byol_loss(p, z):
    return 2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1).mean()


def byol_loss_l2(p, z):
    return torch.mean(torch.sum((p - z.detach()) ** 2, dim=1))


def isoloss(p, psqrt, z, zt):
    sim = (z * zt.detach()).sum(dim=1) / (torch.norm(p, dim=1) * torch.norm(zt, dim=1)).detach() - 0.5 * (
        (p * zt).sum(dim=1) / (torch.norm(p, dim=1) ** 3 * torch.norm(zt, dim=1))
    ).detach() * torch.norm(psqrt, dim=1) ** 2
    return -2 * sim.mean()


def isoloss_l2(p, psqrt, z, zt):
    return torch.mean(torch.sum((z - (zt + z - p).detach()) ** 2, dim=1))


def ssl_loss(cfg, p, psqrt, z, zt):
    iso, l2 = cfg["loss"] == "isoloss", cfg["loss_form"] == "l2"
    if iso:
        return isoloss_l2(p, psqrt, z, zt) if l2 else isoloss(p, psqrt, z, zt)
    return byol_loss_l2(p, zt) if l2 else byol_loss(p, zt)


def torchvision_init_std(cfg, classes, seeds=8):
    """Std of every weight as the authors' framework initialises it: the backbone through torchvision's
    own VGG init (`torchvision.models.vgg.VGG(init_weights=True)`), the projector and readout as
    `nn.Linear` defaults. Mean over `seeds` torch seeds."""
    plan = [c if c == "M" else max(1, round(c * cfg["width"])) for c in VGG11]
    sums = {}
    for s in range(seeds):
        torch.manual_seed(s)
        tv = torchvision.models.vgg.VGG(torchvision.models.vgg.make_layers(plan, batch_norm=True), init_weights=True)
        convs = [m for m in tv.features if isinstance(m, nn.Conv2d)]
        net = Net(cfg, classes)  # its Linear layers keep PyTorch's default init
        names = [n for n, _ in net.backbone.plan]
        stds = {f"backbone.features.{n}.conv.weight": c.weight.std().item() for n, c in zip(names, convs)}
        for prefix, lin in [("projector.fc1", net.projector.fc1), ("projector.fc2", net.projector.fc2), ("classifier", net.classifier)]:
            stds[f"{prefix}.weight"] = lin.weight.std().item()
        for k, v in stds.items():
            sums[k] = sums.get(k, 0.0) + v / seeds
    return sums


def load_inputs(path):
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return meta, tensors


class Trainer:
    """One run of the authors' step: the online network, its momentum copy, the optimiser, the
    schedules and the DirectPred state."""

    def __init__(self, cfg, classes, steps_per_epoch, state=None):
        self.cfg = cfg
        self.net = Net(cfg, classes)
        if state is None:
            tv_init(self.net)
        else:
            own = self.net.state_dict()
            missing = set(own) - set(state) - {k for k in own if k.endswith("num_batches_tracked")}
            if missing:
                raise SystemExit(f"initial weights lack {sorted(missing)}")
            self.net.load_state_dict({**{k: v for k, v in own.items() if k.endswith("num_batches_tracked")}, **state})
        self.frozen = cfg["freeze_backbone"]
        # The momentum network: a copy of the online backbone + projector (solo-learn's
        # initialize_momentum_params); with tau = 0 it is re-copied after every step.
        self.target = Net(cfg, classes)
        self.target.load_state_dict(self.net.state_dict())
        for p in self.target.parameters():
            p.requires_grad = False
        scale = cfg["batch"] / 256
        body = [p for n, p in self.net.named_parameters() if not n.startswith("classifier")]
        groups = [{"params": list(self.net.classifier.parameters()), "lr": cfg["classifier_lr"] * scale, "weight_decay": 0.0}]
        if not self.frozen:
            groups.append({"params": body, "lr": cfg["lr"] * scale, "weight_decay": cfg["weight_decay"]})
        for g in groups:
            g["base_lr"] = g["lr"]
        if cfg["optimizer"] == "lars":
            self.opt = Lars(groups, lr=cfg["lr"] * scale, momentum=cfg["momentum"], weight_decay=cfg["weight_decay"], eta=cfg["lars_eta"])
        else:
            self.opt = torch.optim.SGD(groups, lr=cfg["lr"] * scale, momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
        self.total, self.warmup = steps_per_epoch * cfg["epochs"], steps_per_epoch * cfg["warmup_epochs"]
        self.dp = DirectPred(cfg["proj_out"], cfg["dp_tau"], cfg["dp_alpha"], cfg["dp_eps"])
        self.tau = cfg["tau_base"]

    def step(self, x1, x2, y, k):
        """Optimiser step k on one batch of view pairs; returns what it computed."""
        cfg, net, target = self.cfg, self.net, self.target
        net.train()
        target.train()
        rec = {}
        for g in self.opt.param_groups:
            g["lr"] = warmup_cosine(k, self.warmup, self.total, cfg["warmup_start_lr"], g["base_lr"])
        X = [x1, x2]
        Z, P, PS, ce = [], [], [], []
        for v, x in enumerate(X):
            feats = net.backbone(x)
            logits = net.classifier(feats.detach())
            ce.append(F.cross_entropy(logits, y, ignore_index=-1))
            rec[f"logits/{v}"] = logits.detach()
            if not self.frozen:
                z = net.projector(feats)
                p, psqrt, wp = self.dp.forward(z)
                Z.append(z), P.append(p), PS.append(psqrt)
                rec[f"wp/{v}"] = wp
        class_loss = sum(ce) / 2
        loss = class_loss
        if not self.frozen:
            with torch.no_grad():
                Zt = [target.projector(target.backbone(x)) for x in X]
            ssl = 0
            for v1 in range(2):
                for v2 in [v for v in range(2) if v != v1]:
                    ssl = ssl + ssl_loss(cfg, P[v2], PS[v2], Z[v2], Zt[v1])
            loss = ssl + class_loss
            rec["ssl_loss"] = ssl.detach().double().reshape(1)
            rec["correlation"] = self.dp.C.clone()
            with torch.no_grad():  # solo-learn's train_z_std
                rec["z_std"] = F.normalize(torch.stack(Z), dim=-1).std(dim=1).mean().item()
        rec["readout_ce"] = class_loss.detach().double().reshape(1)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        # solo-learn's on_train_batch_end: EMA with the current tau, then tau advances.
        with torch.no_grad():
            for (n, po), pt in zip(net.named_parameters(), target.parameters()):
                if not n.startswith("classifier"):
                    pt.data = self.tau * pt.data + (1 - self.tau) * po.data
        self.tau = cfg["tau_final"] - (cfg["tau_final"] - cfg["tau_base"]) * (math.cos(math.pi * (k + 1) / self.total) + 1) / 2
        return rec

    @torch.no_grad()
    def evaluate(self, x):
        """Readout logits in eval mode; the embeddings fold into C, as the authors' shared forward does."""
        self.net.eval()
        feats = self.net.backbone(x)
        if not self.frozen and self.cfg["dp_eval_updates"]:
            self.dp.fold(self.net.projector(feats))
        return self.net.classifier(feats)


def tv_init(net):
    """The authors' framework's init: torchvision's VGG init for the backbone (conv Kaiming-normal fan_out,
    batch norm 1/0); the projector and readout keep nn.Linear's default."""
    for m in net.backbone.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


def run_fixture(cell_dir):
    meta, inp = load_inputs(cell_dir / "inputs.safetensors")
    inp.update(load_inputs(cell_dir.parent / "batches.safetensors")[1])
    cfg = json.loads(meta["config"])
    steps, spe, classes = int(meta["steps"]), int(meta["steps_per_epoch"]), int(meta["classes"])
    state = {k[len("init/"):]: v for k, v in inp.items() if k.startswith("init/")}
    tr = Trainer(cfg, classes, spe, state)
    out = {}
    for k in range(steps):
        rec = tr.step(inp[f"x1/{k}"], inp[f"x2/{k}"], inp[f"labels/{k}"], k)
        for n, v in rec.items():
            if n != "z_std":
                out[f"step{k}/{n}"] = v
        for n, t in tr.net.state_dict().items():
            if not n.endswith("num_batches_tracked"):
                out[f"step{k}/param/{n}"] = t.detach().clone()
        for n, p in tr.net.named_parameters():
            buf = tr.opt.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                out[f"step{k}/momentum/{n}"] = buf.clone()
        if cfg["ema"] and not tr.frozen:
            for n, t in tr.target.state_dict().items():
                if not n.endswith("num_batches_tracked") and not n.startswith("classifier"):
                    out[f"step{k}/target/{n}"] = t.detach().clone()
    out["eval/logits"] = tr.evaluate(inp["eval_x"])
    if not tr.frozen:
        out["eval/correlation"] = tr.dp.C.clone()
    for name, std in torchvision_init_std(cfg, classes).items():
        out[f"init_std/{name}"] = torch.tensor([std], dtype=torch.float64)
    out = {k: v.contiguous() for k, v in out.items()}
    save_file(out, str(cell_dir / "expected.safetensors"), metadata={"torch": torch.__version__, "torchvision": torchvision.__version__})
    print(f"{cell_dir}: {len(out)} tensors")


def view_transform(cfg, view, mean, std):
    """solo-learn's pipeline for one view (pretrain_dataloader.py), with eigenssl's pipeline parameters."""
    import torchvision.transforms as T
    from PIL import ImageFilter, ImageOps

    if cfg["augment"] == "simclr":
        jitter, gray, blur, solarize = (0.4, 0.4, 0.4, 0.1), 0.2, 0.0, 0.0
    else:  # asymmetric.yaml at 32 px
        jitter, gray, blur, solarize = (0.4, 0.4, 0.2, 0.1), 0.2, 0.0, (0.0, 0.2)[view]
    ops = [T.RandomResizedCrop(32, scale=(0.08, 1.0), interpolation=T.InterpolationMode.BICUBIC),
           T.RandomApply([T.ColorJitter(*jitter)], p=0.8), T.RandomGrayscale(p=gray)]
    if blur:
        ops.append(T.RandomApply([T.Lambda(lambda im: im.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0))))], p=blur))
    if solarize:
        ops.append(T.RandomApply([T.Lambda(ImageOps.solarize)], p=solarize))
    ops += [T.RandomHorizontalFlip(p=0.5), T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(ops)


def participation_ratio(C):
    s = torch.linalg.eigvalsh(C).clamp(min=0)
    return (s.sum() ** 2 / (s**2).sum()).item() if s.sum() > 0 else 0.0


def run_cells(subset_file, out_dir, seeds, only):
    """Whole Table 1 cells on the images eigenssl exported (examples/export_subset.rs), torch's own init
    and torchvision's augmentations: one JSON per run, eigenssl's collapse criterion applied."""
    from PIL import Image

    meta, data = load_inputs(subset_file)
    configs = json.loads(meta["configs"])
    mean, std = json.loads(meta["mean"]), json.loads(meta["std"])
    train_imgs = [Image.fromarray(a.numpy()) for a in data["train/images"]]
    train_labels = data["train/labels"]
    plain = torchvision.transforms.Compose([torchvision.transforms.ToTensor(), torchvision.transforms.Normalize(mean, std)])
    test_x = torch.stack([plain(Image.fromarray(a.numpy())) for a in data["test/images"]])
    test_y = data["test/labels"]
    out_dir.mkdir(parents=True, exist_ok=True)
    for cell, cfg in configs.items():
        if only and cell not in only:
            continue
        views = [view_transform(cfg, v, mean, std) for v in range(2)]
        n, b = len(train_imgs), cfg["batch"]
        spe = n // b
        for seed in seeds:
            path = out_dir / f"{cell.replace('/', '_')}_seed{seed}.json"
            if path.exists():
                continue
            torch.manual_seed(seed)
            random.seed(seed)
            tr = Trainer(cfg, 10, spe)
            hist = {"epoch": [], "readout_top1": [], "participation_ratio": [], "z_spread": [], "loss": []}
            t0 = time.time()
            collapsed_since = None
            for epoch in range(cfg["epochs"]):
                order = torch.randperm(n).tolist()
                zs, losses = [], []
                for k in range(spe):
                    idx = order[k * b:(k + 1) * b]
                    x1 = torch.stack([views[0](train_imgs[i]) for i in idx])
                    x2 = torch.stack([views[1](train_imgs[i]) for i in idx])
                    rec = tr.step(x1, x2, train_labels[idx], epoch * spe + k)
                    if "z_std" in rec:
                        zs.append(rec["z_std"])
                        losses.append(rec["ssl_loss"].item())
                correct = sum((tr.evaluate(test_x[i:i + b]).argmax(-1) == test_y[i:i + b]).sum().item() for i in range(0, len(test_y), b))
                spread = (sum(zs) / len(zs)) * math.sqrt(cfg["proj_out"]) if zs else None
                collapsed_since = (collapsed_since if collapsed_since is not None else epoch) if spread is not None and spread < 0.1 else None
                hist["epoch"].append(epoch + 1)
                hist["readout_top1"].append(100.0 * correct / len(test_y))
                hist["participation_ratio"].append(None if tr.frozen else participation_ratio(tr.dp.C))
                hist["z_spread"].append(spread)
                hist["loss"].append(sum(losses) / len(losses) if losses else None)
                print(f"{cell} seed {seed} epoch {epoch + 1}: top-1 {hist['readout_top1'][-1]:.1f}, PR {hist['participation_ratio'][-1]}, spread {spread}, {time.time() - t0:.0f} s", flush=True)
            record = {"cell": cell, "seed": seed, "status": "collapsed" if collapsed_since is not None else "ok",
                      "collapse_epoch": None if collapsed_since is None else collapsed_since + 1,
                      "readout_top1": hist["readout_top1"][-1], "participation_ratio": hist["participation_ratio"][-1],
                      "history": hist, "seconds": time.time() - t0, "config": cfg,
                      "torch": torch.__version__, "torchvision": torchvision.__version__,
                      "command": " ".join(sys.argv)}
            path.write_text(json.dumps(record, indent=1))


def main():
    torch.set_num_threads(1)
    if len(sys.argv) == 3 and sys.argv[1] == "fixtures":
        cells = sorted(Path(sys.argv[2]).glob("*/inputs.safetensors"))
        if not cells:
            raise SystemExit(f"no */inputs.safetensors under {sys.argv[2]}")
        for c in cells:
            run_fixture(c.parent)
    elif len(sys.argv) >= 4 and sys.argv[1] == "cells":
        args, seeds = sys.argv[4:], [0, 1, 2, 3]
        if "--seeds" in args:  # more seeds than the profile's four, e.g. --seeds 4,5,6,7
            i = args.index("--seeds")
            seeds = [int(s) for s in args[i + 1].split(",")]
            del args[i:i + 2]
        run_cells(Path(sys.argv[2]), Path(sys.argv[3]), seeds, args)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
