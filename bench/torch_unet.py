"""bench/torch_unet.py - the PyTorch twin of `unet_pets train`: the same UNet, data, split, recipe.

Run it after the C run, pointing at that run's output folder: it reads the split the C program
wrote (OUT/split_train.txt, OUT/split_val.txt), so both train on the same images and are
validated on the same images, and it takes the same recipe flags:

    ./build/unet_pets train --data DIR --size 64 --width 16 --epochs 60 --out runs/u
    /usr/bin/python3 bench/torch_unet.py --data DIR --split runs/u --size 64 --width 16 --epochs 60

Same as the C program: images decoded, resized to SxS (bilinear, align_corners=False, no
antialias; trimaps nearest at pixel centres), normalised with the training split's per-channel
mean/std; Adam with OneCycleLR(max_lr, total_steps) (momentum not cycled: our Adam keeps beta1
0.9); batches of --batch with the last partial batch dropped; per sample a random view (scale-crop
with box area U(min_scale, 1) and aspect 3/4..4/3, horizontal flip with p 1/2, colour jitter) with
the same formulas as uvae_pets_random_views / uvae_pets_batch_views; validation in eval mode with
one confusion matrix pooled over the split (with --tta and --eval-size as in the C program). The model is tests/ref/make_ref.py's UNet, the mirror
of uvae_unet checked by the parity tests. Prints one line per epoch and a summary line. With
--ckpt FILE it saves its whole state (model, Adam, schedule, both random generators, counters)
after each epoch and, started again with the same flags, continues from it: a long twin can be
stopped and resumed, and the resumed epochs draw the same views as an unbroken run's.
Needs Debian's python3-torch, python3-numpy, python3-pil.
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from make_ref import UNet, dice_loss  # noqa: E402  (our own PyTorch mirror of uvae_unet)
from torch_bench import blas_in_use  # noqa: E402


def load(data, names, S):
    xs, ys = [], []
    for n in names:
        im = np.asarray(Image.open(os.path.join(data, "images", n + ".jpg")).convert("RGB"), dtype=np.float32) / 255.0
        tm = np.asarray(Image.open(os.path.join(data, "annotations", "trimaps", n + ".png")), dtype=np.float32)
        x = torch.from_numpy(im).permute(2, 0, 1)[None]
        x = F.interpolate(x, size=(S, S), mode="bilinear", align_corners=False)
        y = F.interpolate(torch.from_numpy(tm)[None, None], size=(S, S), mode="nearest-exact")
        xs.append(x[0])
        ys.append(y[0, 0] - 1)
    return torch.stack(xs), torch.stack(ys)


def random_views(rng, B, S, min_scale, jitter):
    views = []
    for _ in range(B):
        x0, y0, w, h = 0.0, 0.0, float(S), float(S)
        if min_scale < 1:
            for _ in range(10):
                area = S * S * (min_scale + (1 - min_scale) * rng.random())
                ratio = math.exp(math.log(0.75) + (math.log(4 / 3) - math.log(0.75)) * rng.random())
                ww, hh = math.sqrt(area * ratio), math.sqrt(area / ratio)
                if ww <= S and hh <= S:
                    w, h = ww, hh
                    x0, y0 = (S - w) * rng.random(), (S - h) * rng.random()
                    break
        flip = rng.random() < 0.5
        f = [1 + jitter * (2 * rng.random() - 1) for _ in range(3)] if jitter > 0 else [1.0, 1.0, 1.0]
        views.append((x0, y0, w, h, flip, f))
    return views


def apply_view(x, y, v, S):
    """x [3,S,S] in [0,1], y [S,S] -> the view's crop resized back to SxS (as uvae__pets_sample)."""
    x0, y0, w, h, flip, (br, co, sa) = v
    cols = torch.arange(S, dtype=torch.float32)
    oc = (S - 1 - cols) if flip else cols
    fx = x0 + (oc + 0.5) * (w / S) - 0.5
    fy = y0 + (cols + 0.5) * (h / S) - 0.5
    nx = torch.floor(x0 + (oc + 0.5) * (w / S)).clamp(0, S - 1).long()
    ny = torch.floor(y0 + (cols + 0.5) * (h / S)).clamp(0, S - 1).long()
    fx, fy = fx.clamp(0, S - 1), fy.clamp(0, S - 1)
    xa, ya = fx.floor().long(), fy.floor().long()
    wx, wy = fx - xa, fy - ya
    xb, yb = (xa + 1).clamp(max=S - 1), (ya + 1).clamp(max=S - 1)
    top = x[:, ya][:, :, xa] * (1 - wx) + x[:, ya][:, :, xb] * wx
    bot = x[:, yb][:, :, xa] * (1 - wx) + x[:, yb][:, :, xb] * wx
    out = (top * (1 - wy)[:, None] + bot * wy[:, None]) * br
    if co != 1:
        g = (0.299 * out[0] + 0.587 * out[1] + 0.114 * out[2]).mean()
        out = g + (out - g) * co
    out = out.clamp(0, 1)
    if sa != 1:
        g = 0.299 * out[0] + 0.587 * out[1] + 0.114 * out[2]
        out = (g + (out - g) * sa).clamp(0, 1)
    return out, y[ny][:, nx]


def metrics(conf):
    def ratio(a, b):
        return 1.0 if b == 0 else a / b
    iou = [ratio(conf[c, c], conf[c, :].sum() + conf[:, c].sum() - conf[c, c]) for c in range(3)]
    fg_t, fg_p = conf[[0, 2]].sum(1), conf[:, [0, 2]].sum(0)
    tp = conf[np.ix_([0, 2], [0, 2])].sum()
    fp, fn = fg_p.sum() - tp, fg_t.sum() - tp
    return dict(pet_iou=ratio(tp, tp + fp + fn), miou=sum(iou) / 3, pixel_acc=ratio(np.trace(conf), conf.sum()),
                dice=ratio(2 * tp, 2 * tp + fp + fn))


def eval_logits(model, xs, s, batch, mean, std, tta, S):
    """Logits [B,C,S,S] of the images s:s+batch in eval mode: one tensor in xs per evaluation size,
    each pass (with the mirrored pass, mirrored back, averaged in when tta) resized to S x S and the
    sizes averaged, as unet_pets --tta / --eval-size. mean, std: [1,3,1,1]."""
    z = 0
    for xv in xs:
        x = (xv[s:s + batch] - mean) / std
        zk = model(x)
        if tta:
            zk = 0.5 * (zk + torch.flip(model(torch.flip(x, [3])), [3]))
        if xv.shape[-1] != S:
            zk = F.interpolate(zk, size=(S, S), mode="bilinear", align_corners=False)
        z = z + zk
    return z / len(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", required=True, help="the C run's --out folder (split_train.txt, split_val.txt)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--down", choices=["maxpool", "strided"], default="maxpool")
    ap.add_argument("--up", choices=["transpose", "upsample"], default="transpose")
    ap.add_argument("--loss", choices=["ce", "bce", "dice", "ce+dice"], default="ce")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--min-scale", type=float, default=1.0)
    ap.add_argument("--jitter", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tta", type=int, choices=[0, 1], default=0,
                    help="validation also on the mirrored images, logits averaged (as unet_pets --tta)")
    ap.add_argument("--eval-size", default="",
                    help="validation inputs loaded at E or E1,E2,.. (logits resized to --size, averaged), as unet_pets --eval-size")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--ckpt", default="",
                    help="save the whole state here after each epoch (atomically); if it exists, continue from it")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    names = {k: [l.strip() for l in open(os.path.join(a.split, "split_%s.txt" % k)) if l.strip()] for k in ("train", "val")}
    xtr, ytr = load(a.data, names["train"], a.size)
    xva, yva = load(a.data, names["val"], a.size)
    # the images go in at each E x E; the labels stay at S x S
    xvas = [xva if E == a.size else load(a.data, names["val"], E)[0]
            for E in ([int(e) for e in a.eval_size.split(",")] if a.eval_size else [a.size])]
    mean = xtr.mean(dim=(0, 2, 3))
    std = xtr.std(dim=(0, 2, 3), unbiased=False)
    binary = a.loss == "bce"
    model = UNet(3, 1 if binary else 3, a.width, a.depth, a.down == "strided", a.up == "upsample")
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    steps = len(names["train"]) // a.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=steps * a.epochs, cycle_momentum=False)
    nparams = sum(p.numel() for p in model.parameters())
    print("torch_unet: %d train / %d val at %dx%d, width %d depth %d (%s/%s), loss %s, %d params, torch %s, %d threads, %s"
          % (len(names["train"]), len(names["val"]), a.size, a.size, a.width, a.depth, a.down, a.up, a.loss, nparams,
             torch.__version__, torch.get_num_threads(), blas_in_use()), flush=True)
    t_train, seen, last, first = 0.0, 0, None, 0
    recipe = {k: v for k, v in vars(a).items() if k not in ("threads", "ckpt")}
    if a.ckpt and os.path.exists(a.ckpt):
        st = torch.load(a.ckpt)
        if st["recipe"] != recipe:
            sys.exit("torch_unet: --ckpt %s was made with other flags: %s" % (a.ckpt, st["recipe"]))
        st["sched"].pop("anneal_func", None)   # (in files from before the fix below)
        model.load_state_dict(st["model"]); opt.load_state_dict(st["opt"]); sched.load_state_dict(st["sched"])
        rng.bit_generator.state = st["rng"]; torch.set_rng_state(st["torch_rng"])
        t_train, seen, last, first = st["t_train"], st["seen"], st["last"], st["epoch"]
        print("torch_unet: continuing from %s after epoch %d" % (a.ckpt, first), flush=True)
    for e in range(first, a.epochs):
        model.train()
        t0, tot = time.time(), 0.0
        order = rng.permutation(len(names["train"]))
        for s in range(steps):
            idx = order[s * a.batch:(s + 1) * a.batch]
            views = random_views(rng, a.batch, a.size, a.min_scale, a.jitter)
            pairs = [apply_view(xtr[i], ytr[i], v, a.size) for i, v in zip(idx, views)]
            x = (torch.stack([p[0] for p in pairs]) - mean[None, :, None, None]) / std[None, :, None, None]
            y = torch.stack([p[1] for p in pairs])
            logits = model(x)
            if a.loss == "ce":
                loss = F.cross_entropy(logits, y.long())
            elif a.loss == "bce":
                loss = F.binary_cross_entropy_with_logits(logits, (y != 1).float()[:, None])
            elif a.loss == "dice":
                loss = dice_loss(logits, y, 1.0)
            else:
                loss = F.cross_entropy(logits, y.long()) + dice_loss(logits, y, 1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item()
            seen += a.batch
        t_train += time.time() - t0
        model.eval()
        conf = np.zeros((3, 3), dtype=np.int64)
        with torch.no_grad():
            for s in range(0, len(names["val"]), a.batch):
                z = eval_logits(model, xvas, s, a.batch, mean[None, :, None, None], std[None, :, None, None], a.tta, a.size)
                pred = torch.where(z[:, 0] > 0, 0, 1) if binary else z.argmax(1)
                truth = yva[s:s + a.batch].long()
                conf += np.bincount((truth * 3 + pred).flatten().numpy(), minlength=9).reshape(3, 3)
        last = metrics(conf)
        print("epoch %d/%d  train loss %.4f  val pet IoU %.4f  mIoU %.4f  pixel acc %.4f  Dice %.4f  (%.1f s)"
              % (e + 1, a.epochs, tot / steps, last["pet_iou"], last["miou"], last["pixel_acc"], last["dice"],
                 time.time() - t0), flush=True)
        if a.ckpt:   # everything the next epoch depends on, written whole or not at all; not the
            # schedule's anneal_func: in torch 1.13 a method bound to the scheduler, which would pickle
            # the scheduler with its optimizer (a stale copy of the whole state, once more per resume)
            sd = {k: v for k, v in sched.state_dict().items() if k != "anneal_func"}
            torch.save({"recipe": recipe, "epoch": e + 1, "model": model.state_dict(), "opt": opt.state_dict(),
                        "sched": sd, "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                        "t_train": t_train, "seen": seen, "last": last}, a.ckpt + ".tmp")
            os.replace(a.ckpt + ".tmp", a.ckpt)
    print("summary: torch unet %s/%s loss %s width %d depth %d size %d | %d params | %d epochs | train %.1f s | "
          "%.1f img/s | val pet IoU %.4f mIoU %.4f pixel acc %.4f"
          % (a.down, a.up, a.loss, a.width, a.depth, a.size, nparams, a.epochs, t_train, seen / t_train,
             last["pet_iou"], last["miou"], last["pixel_acc"]), flush=True)


if __name__ == "__main__":
    main()
