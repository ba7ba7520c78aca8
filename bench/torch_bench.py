"""bench/torch_bench.py - the rows of bench/bench.c in PyTorch, on the CPU or a GPU, for side-by-side ratios.

    /usr/bin/python3 bench/torch_bench.py --threads 2 [--steps 6] [--only SUBSTRING] > build/torch_bench.txt
    OMP_NUM_THREADS=2 ./build/bench --torch build/torch_bench.txt        (make bench-vs-torch does both)
    python3 bench/torch_bench.py --device cuda --tf32 0|1 > FILE           (then bench_cuda --device cuda --torch FILE)

Same models (tests/ref/make_ref.py's mirrors of uvae_unet, uvae_cvae and a classifier built like
uvae_classifier), same shapes, batch sizes, loss and optimizer (Adam) as bench/bench.c; one training
step = zero_grad + forward + loss + backward + Adam step; inference = forward in eval mode under
no_grad. Median of --steps timed steps (6; 20 on the GPU) after 2 warm-up steps (on the GPU each
step ends with torch.cuda.synchronize(), as bench.c's GPU steps end by reading the loss back; the
UNets run at batch 16 and 64 there, as in bench.c; --tf32 1 lets matmuls and convolutions use
TF32). Prints lines in bench.c's format:
GFLOP/s counts the convolutions' and linear layers' FLOPs as bench.c does (2 per multiply-add of the
direct method; backward: the weight gradient, and the input gradient where the input needs one),
peak MB is the peak resident memory of a child process that ran the row alone (on the GPU: the
peak of torch.cuda.max_memory_allocated).
"""
import argparse
import ctypes
import multiprocessing
import os
import resource
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


UNETS = [  # name, kind, strided, upsample, dice, size, channels  (+ batch below)
    ("unet mp+tr+ce", "unet", False, False, False, 128, 3),
    ("unet mp+tr+dice", "unet", False, False, True, 128, 3),
    ("unet st+tr+ce", "unet", True, False, False, 128, 3),
    ("unet st+up+dice", "unet", True, True, True, 128, 3),
]
SMALL = [
    ("cvae mnist", "cvae", 0, 0, 0, 28, 1, 128),
    ("cvae cifar", "cvae", 0, 0, 0, 32, 3, 128),
    ("judge mnist", "judge", 0, 0, 0, 28, 1, 128),
    ("judge cifar", "judge", 0, 0, 0, 32, 3, 128),
]
ROWS = {"cpu": [u + (4,) for u in UNETS] + SMALL,
        "cuda": [u + (16,) for u in UNETS] + [u + (64,) for u in UNETS] + SMALL}


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def count_flops(model):
    """Hooks that add each conv / transposed conv / linear call's FLOPs (forward, and the backward
    products autograd will run) to the returned one-element list."""
    total = [0.0]

    def hook(mod, inp, out):
        x = inp[0]
        if isinstance(mod, nn.Conv2d):
            f = 2.0 * out.numel() * mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.ConvTranspose2d):
            f = 2.0 * x.numel() * mod.out_channels * mod.kernel_size[0] * mod.kernel_size[1]
        else:
            f = 2.0 * x.shape[0] * mod.in_features * mod.out_features
        if torch.is_grad_enabled():
            f *= 1 + 1 + (1 if x.requires_grad else 0)
        total[0] += f

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            m.register_forward_hook(hook)
    return total


def run(row, steps, dev, tag):
    name, kind, strided, upsample, dice, S, C, B = row
    torch.manual_seed(7)
    x = torch.rand(B, C, S, S, device=dev)
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    if kind == "unet":
        model = UNet(3, 3, 64, 4, strided, upsample).to(dev)
        y = torch.randint(0, 3, (B, S, S), device=dev).float()

        def loss_fn():
            z = model(x)
            return dice_loss(z, y, 1.0) if dice else F.cross_entropy(z, y.long())
    elif kind == "cvae":
        model = CVAE(C, S, 10, 32, 32, 16).to(dev)
        y = torch.randint(0, 10, (B,), device=dev).float()

        def loss_fn():
            logits, _, mu, logvar = model(x, y, torch.randn(B, 32, device=dev))
            return bernoulli_nll(logits, x) + kl_normal(mu, logvar)
    else:
        model = Classifier(C, S, 10, 32).to(dev)
        y = torch.randint(0, 10, (B,), device=dev)

        def loss_fn():
            return F.cross_entropy(model(x), y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    flops = count_flops(model)
    train, infer = [], []
    model.train()
    for s in range(steps + 2):
        flops[0] = 0.0
        sync()
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        loss.item()
        sync()
        train.append(time.perf_counter() - t0)
    ft = flops[0]
    model.eval()
    with torch.no_grad():
        for s in range(steps + 2):
            flops[0] = 0.0
            sync()
            t0 = time.perf_counter()
            loss_fn().item()
            sync()
            infer.append(time.perf_counter() - t0)
    fi = flops[0]
    mt, mi = median(train[2:]), median(infer[2:])
    if dev == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2.0 ** 20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("%-22s batch %3d  %dx%d  train %9.1f img/s (%7.1f ms/step, %6.1f GFLOP/s)  inference %9.1f img/s (%6.1f GFLOP/s)  "
          "peak %6.0f MB   [%s]" % (name, B, S, S, B / mt, 1e3 * mt, ft / mt * 1e-9, B / mi, fi / mi * 1e-9, peak, tag),
          flush=True)


def blas_in_use():
    """The BLAS that this process's torch sends its matrix products to (linear layers; on the CPU also
    the transposed convolutions, which torch 1.13 runs through a GEMM). Debian's libtorch links
    libblas.so.3, which update-alternatives (or LD_LIBRARY_PATH) points at OpenBLAS (libopenblas0,
    which libtorch recommends), BLIS, MKL or the reference BLAS of libblas3, about 20x slower in a
    GEMM. Named by the folder of the file that holds this process's sgemm_ (Debian:
    .../openblas-pthread/, .../openblas-openmp/, .../blas/ for the reference one)."""
    try:
        addr = ctypes.cast(ctypes.CDLL("libblas.so.3").sgemm_, ctypes.c_void_p).value
        with open("/proc/self/maps") as f:
            for line in f:
                cols = line.split()
                lo, hi = (int(v, 16) for v in cols[0].split("-"))
                if lo <= addr < hi and len(cols) > 5:
                    d = os.path.basename(os.path.dirname(cols[5]))
                    return "reference blas" if d == "blas" else d if "linux-gnu" not in d else os.path.basename(cols[5])
    except (OSError, AttributeError, ValueError):
        pass
    return "blas ?"


def run_alone(row, steps, threads, dev, tf32):
    """run() in a child process of its own, so that its peak memory is the row's."""
    torch.set_num_threads(threads)
    if dev == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
        torch.backends.cudnn.allow_tf32 = bool(tf32)
        tag = "torch %s cuda %s" % (torch.__version__, "tf32" if tf32 else "fp32")
    else:
        tag = "torch %s cpu %d threads %s" % (torch.__version__, threads, blas_in_use())
    run(row, steps, dev, tag)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--steps", type=int, default=None, help="timed steps per row (default 6 on the CPU, 20 on the GPU)")
    ap.add_argument("--only", default=None)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--tf32", type=int, choices=[0, 1], default=0, help="cuda: allow TF32 in matmuls and convolutions")
    a = ap.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_bench: --device cuda: this PyTorch sees no CUDA device")
    if a.device == "cpu" and blas_in_use() == "reference blas":
        print("torch_bench: warning: this torch multiplies matrices with the reference BLAS (Debian's libblas3), about 20x "
              "slower than OpenBLAS: its linear layers and transposed convolutions crawl and the ratios flatter us; "
              "`apt-get install libopenblas0` (libtorch recommends it) gives torch a fast BLAS", file=sys.stderr)
    ctx = multiprocessing.get_context("spawn" if a.device == "cuda" else "fork")   # (CUDA does not survive a fork)
    steps = a.steps if a.steps is not None else (20 if a.device == "cuda" else 6)
    for row in ROWS[a.device]:
        if a.only is None or a.only in row[0]:
            p = ctx.Process(target=run_alone, args=(row, max(1, steps), a.threads, a.device, a.tf32))
            p.start()
            p.join()
            if p.exitcode != 0:
                sys.exit(1)


if __name__ == "__main__":
    main()
