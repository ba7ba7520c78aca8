"""bench/torch_bench.py - the rows of bench/bench.c in PyTorch, on the CPU, for side-by-side ratios.

    OMP_NUM_THREADS=2 ./build/bench > ours.txt
    /usr/bin/python3 bench/torch_bench.py --threads 2 [--steps 6] [--only SUBSTRING]

Same models (tests/ref/make_ref.py's mirrors of uvae_unet, uvae_cvae and a classifier built like
uvae_classifier), same shapes, batch sizes, loss and optimizer (Adam) as bench/bench.c; one training
step = zero_grad + forward + loss + backward + Adam step; inference = forward in eval mode under
no_grad. Median of --steps timed steps after 2 warm-up steps. Prints lines in bench.c's format.
"""
import argparse
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from make_ref import CVAE, UNet, DoubleConv, bernoulli_nll, dice_loss, kl_normal  # noqa: E402


class Classifier(nn.Module):
    """uvae_classifier: blocks of DoubleConv + maxpool, dropout 0.25, linear."""
    def __init__(self, in_ch, size, n_classes, width, blocks=2):
        super().__init__()
        self.blocks = nn.ModuleList(DoubleConv(in_ch if b == 0 else width << (b - 1), width << b) for b in range(blocks))
        self.fc = nn.Linear((width << (blocks - 1)) * (size >> blocks) ** 2, n_classes)

    def forward(self, x):
        for b in self.blocks:
            x = F.max_pool2d(b(x), 2, 2)
        return self.fc(F.dropout(x.flatten(1), 0.25, self.training))


ROWS = [  # name, kind, strided, upsample, dice, size, channels, batch
    ("unet mp+tr+ce", "unet", False, False, False, 128, 3, 4),
    ("unet mp+tr+dice", "unet", False, False, True, 128, 3, 4),
    ("unet st+tr+ce", "unet", True, False, False, 128, 3, 4),
    ("unet st+up+dice", "unet", True, True, True, 128, 3, 4),
    ("cvae mnist", "cvae", 0, 0, 0, 28, 1, 128),
    ("cvae cifar", "cvae", 0, 0, 0, 32, 3, 128),
    ("judge mnist", "judge", 0, 0, 0, 28, 1, 128),
    ("judge cifar", "judge", 0, 0, 0, 32, 3, 128),
]


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def run(row, steps):
    name, kind, strided, upsample, dice, S, C, B = row
    torch.manual_seed(7)
    x = torch.rand(B, C, S, S)
    if kind == "unet":
        model = UNet(3, 3, 64, 4, strided, upsample)
        y = torch.randint(0, 3, (B, S, S)).float()

        def loss_fn():
            z = model(x)
            return dice_loss(z, y, 1.0) if dice else F.cross_entropy(z, y.long())
    elif kind == "cvae":
        model = CVAE(C, S, 10, 32, 32, 16)
        y = torch.randint(0, 10, (B,)).float()

        def loss_fn():
            logits, _, mu, logvar = model(x, y, torch.randn(B, 32))
            return bernoulli_nll(logits, x) + kl_normal(mu, logvar)
    else:
        model = Classifier(C, S, 10, 32)
        y = torch.randint(0, 10, (B,))

        def loss_fn():
            return F.cross_entropy(model(x), y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    train, infer = [], []
    model.train()
    for s in range(steps + 2):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        loss.item()
        train.append(time.perf_counter() - t0)
    model.eval()
    with torch.no_grad():
        for s in range(steps + 2):
            t0 = time.perf_counter()
            loss_fn().item()
            infer.append(time.perf_counter() - t0)
    mt, mi = median(train[2:]), median(infer[2:])
    print("%-22s batch %3d  %dx%d  train %9.1f img/s (%7.1f ms/step)  inference %9.1f img/s   [torch %s]"
          % (name, B, S, S, B / mt, 1e3 * mt, B / mi, torch.__version__), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--only", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for row in ROWS:
        if a.only is None or a.only in row[0]:
            run(row, max(1, a.steps))


if __name__ == "__main__":
    main()
