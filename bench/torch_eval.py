"""bench/torch_eval.py - one of our UNet checkpoints, evaluated by PyTorch: an independent check of
`unet_pets eval` (and of its --tta and --eval-size).

    /usr/bin/python3 bench/torch_eval.py --ckpt OUT/checkpoint.safetensors --data DIR --list OUT/split_val.txt \
        [--tta 1] [--eval-size 160] [--eval-size 128,160] ...

The model comes from tools/interop.py's load_model (our weights in the PyTorch mirror of uvae_unet),
the images and trimaps from bench/torch_unet.py's loader (PIL's JPEG decoder, not stb_image's, so
a few pixels differ), normalised with the checkpoint's mean/std. Each --eval-size (repeatable; one
evaluation each) is a size E or a list E1,E2,..: the images are loaded at each E x E, the logits
resized to the model's S x S with F.interpolate (bilinear, align_corners=False), averaged over the
list, and scored against the S x S trimaps in one confusion matrix, as
`unet_pets eval --eval-size E1,E2,..` does. Needs Debian's python3-torch, python3-numpy, python3-pil.
"""
import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
from interop import load_model  # noqa: E402
from torch_unet import eval_logits, load, metrics  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--list", required=True, help="image names, one per line (e.g. a run's split_val.txt)")
    ap.add_argument("--tta", type=int, choices=[0, 1], default=0)
    ap.add_argument("--eval-size", action="append", default=[],
                    help="an input size or a comma-separated list (averaged); repeat for more evaluations")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    a = ap.parse_args()
    for f in (a.ckpt, a.list):
        if not os.path.isfile(f):
            sys.exit("torch_eval: %s: no such file" % f)
    try:
        specs = [[int(e) for e in spec.split(",")] for spec in a.eval_size]
    except ValueError:
        sys.exit("torch_eval: --eval-size wants a size or a comma-separated list of sizes, got %s" % a.eval_size)
    torch.set_num_threads(a.threads)
    model, (kind, cfg), meta = load_model(a.ckpt)
    if kind != "unet":
        sys.exit("torch_eval: %s holds a %s, not a UNet" % (a.ckpt, kind))
    S = int(meta["size"])
    mean = torch.tensor([float(v) for v in meta["mean"].split(",")])[None, :, None, None]
    std = torch.tensor([float(v) for v in meta["std"].split(",")])[None, :, None, None]
    binary = cfg["n_classes"] == 1
    names = [l.split()[0] for l in open(a.list) if l.strip() and not l.startswith("#")]
    x_s, truth = load(a.data, names, S)
    cache = {S: x_s}
    for sizes in specs or [[S]]:
        for E in sizes:
            if E not in cache:
                cache[E] = load(a.data, names, E)[0]
        conf = np.zeros((3, 3), dtype=np.int64)
        with torch.no_grad():
            for s in range(0, len(names), a.batch):
                z = eval_logits(model, [cache[E] for E in sizes], s, a.batch, mean, std, a.tta, S)
                pred = torch.where(z[:, 0] > 0, 0, 1) if binary else z.argmax(1)
                conf += np.bincount((truth[s:s + a.batch].long() * 3 + pred).flatten().numpy(), minlength=9).reshape(3, 3)
        m = metrics(conf)
        print("torch_eval%s, inputs %s: %s (%d images): pet IoU %.4f  mIoU %.4f  pixel acc %.4f  Dice %.4f"
              % (" (flip TTA)" if a.tta else "", " + ".join("%dx%d" % (E, E) for E in sizes), a.list, len(names),
                 m["pet_iou"], m["miou"], m["pixel_acc"], m["dice"]), flush=True)


if __name__ == "__main__":
    main()
