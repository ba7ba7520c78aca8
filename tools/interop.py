"""tools/interop.py - our safetensors checkpoints in PyTorch, and a check that PyTorch computes
what our C code computes.

As a library (see docs/pytorch.md):

    sys.path.insert(0, "tools")
    from interop import load_model
    model, (kind, config), metadata = load_model("runs/unet/checkpoint.safetensors")   # in eval mode

reads the file with struct + json + numpy (no `safetensors` package), works out which model it holds
and its config from the tensor names and shapes, builds the PyTorch twin and loads every parameter
and batch-norm buffer into it. The twins are tests/ref/make_ref.py's UNet and CVAE (the mirrors the
parity tests check; bench/torch_unet.py uses the same UNet) and the Classifier below.

As a check (make interop):

    /usr/bin/python3 tools/interop.py --dump build/interop_dump

runs tools/interop_dump (our C code) for every model variant: it builds the model, takes a few
Adam steps (so the weights and the batch-norm running statistics have moved), and saves the
checkpoint, an input and its eval-mode output. Each checkpoint is loaded here, the same input goes
through the twin (in float64), and the outputs are compared: max |ours - torch| / max |torch| per
model must be <= 1e-5. Exit status 1 on any mismatch.

    /usr/bin/python3 tools/interop.py CHECKPOINT     prints what load_model makes of a checkpoint
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from make_ref import CVAE, UNet, DoubleConv  # noqa: E402  (our PyTorch mirrors of uvae_unet, uvae_cvae)

TOLERANCE = 1e-5


def read_safetensors(path):
    """-> ({name: float32 tensor}, {metadata key: value}). Format: u64 little-endian header length N,
    N bytes of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {..}},
    then the data section (offsets are relative to its start)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("%s: too short for a safetensors file" % path)
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError("%s: header length %d runs past the end of the file" % (path, n))
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ValueError("%s: tensor %s has dtype %s, only F32 is read" % (path, name, info["dtype"]))
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        if end - begin != 4 * int(np.prod(shape, dtype=np.int64)) or end > len(data):
            raise ValueError("%s: tensor %s: offsets %d..%d do not fit shape %s" % (path, name, begin, end, shape))
        a = np.frombuffer(data[begin:end], dtype="<f4").reshape(shape)
        tensors[name] = torch.from_numpy(a.astype(np.float32))   # a copy, native byte order
    return tensors, meta


class Classifier(nn.Module):
    """The twin of uvae_classifier (the CVAE example's judge): blocks b = 1..B of DoubleConv at width
    w 2^(b-1) then max pooling 2; flatten, dropout 0.25, linear. Names as ours: block<b>.*, fc.*."""

    def __init__(self, in_ch, size, n_classes, width, blocks=2):
        super().__init__()
        self.blocks = blocks
        for b in range(blocks):
            setattr(self, "block%d" % (b + 1), DoubleConv(in_ch if b == 0 else width << (b - 1), width << b))
        side = size >> blocks
        self.drop = nn.Dropout(0.25)
        self.fc = nn.Linear((width << (blocks - 1)) * side * side, n_classes)

    def forward(self, x):
        for b in range(self.blocks):
            x = F.max_pool2d(getattr(self, "block%d" % (b + 1))(x), 2, 2)
        return self.fc(self.drop(x.flatten(1)))


def _count(state, fmt):
    n = 0
    while fmt % (n + 1) in state:
        n += 1
    return n


def _isqrt_exact(v, what):
    r = int(round(v ** 0.5))
    if r * r != v:
        raise ValueError("%s: %d is not a square" % (what, v))
    return r


def infer_config(state):
    """Which model the tensors describe, and its config, from names and shapes alone (so checkpoints
    written by any program of ours load, whatever metadata they carry)."""
    if "inc.conv1.weight" in state:
        up = state["up1.up.weight"]
        return "unet", dict(in_ch=state["inc.conv1.weight"].shape[1], n_classes=state["outc.weight"].shape[0],
                            base_width=state["inc.conv1.weight"].shape[0], depth=_count(state, "down%d.conv.conv1.weight"),
                            down="strided" if "down1.pool.weight" in state else "maxpool",
                            up="upsample" if up.shape[2] == 3 else "transpose")
    if "label_plane.weight" in state:
        S = _isqrt_exact(state["label_plane.weight"].shape[1], "label_plane.weight columns")
        P = state["cond1.weight"].shape[1] // (S // 4) ** 2 if "cond1.weight" in state else 0
        return "cvae", dict(in_ch=state["enc1.weight"].shape[1] - 1, size=S, n_classes=state["label_plane.weight"].shape[0],
                            latent=state["fc_mu.weight"].shape[0], width=state["enc1.weight"].shape[0],
                            embed=state["label_embed.weight"].shape[1], cond_planes=P,
                            likelihood="logistic" if "dec2_scale.weight" in state else "bernoulli")
    if "block1.conv1.weight" in state:
        B, w = _count(state, "block%d.conv1.weight"), state["block1.conv1.weight"].shape[0]
        side = _isqrt_exact(state["fc.weight"].shape[1] // (w << (B - 1)), "fc input / channels")
        return "classifier", dict(in_ch=state["block1.conv1.weight"].shape[1], size=side << B,
                                  n_classes=state["fc.weight"].shape[0], width=w, blocks=B)
    raise ValueError("not a uvae_unet, uvae_cvae or uvae_classifier checkpoint (no inc.*, label_plane.* or block1.*)")


def make_twin(kind, c):
    if kind == "unet":
        return UNet(c["in_ch"], c["n_classes"], c["base_width"], c["depth"], c["down"] == "strided", c["up"] == "upsample")
    if kind == "cvae":
        return CVAE(c["in_ch"], c["size"], c["n_classes"], c["latent"], c["width"], c["embed"], c["cond_planes"],
                    c["likelihood"] == "logistic")
    return Classifier(c["in_ch"], c["size"], c["n_classes"], c["width"], c["blocks"])


def cvae_decode(model, z, labels):
    """The decoder half of the CVAE twin: z [N, latent], labels [N] -> (logits, log_scale or None),
    as uvae_cvae_decode (e.g. samples from the prior: z = torch.randn(N, latent)). The image is
    sigmoid(logits). Written from make_ref.CVAE.forward; make interop checks that both agree."""
    N, S, w, P = z.shape[0], model.S, model.w, model.P
    lab = labels.long()
    d = F.relu(model.fc_dec(torch.cat([z, model.label_embed(lab)], 1))).view(N, 2 * w, S // 4, S // 4)
    if P:
        d = torch.cat([d, model.cond1(lab).view(N, P, S // 4, S // 4)], 1)
    d = F.relu(model.dec1(d))
    if P:
        d = torch.cat([d, model.cond2(lab).view(N, P, S // 2, S // 2)], 1)
    return model.dec2(d), (model.dec2_scale(d) if model.logistic else None)


def load_model(path):
    """-> (twin in eval mode with our weights, (kind, config), metadata). Optimizer moments
    ("optim.m.*", "optim.v.*") are skipped; every parameter and buffer of the twin must be in the file
    (only BatchNorm's num_batches_tracked, which we do not keep, may be missing), and config values
    that the metadata also states (the examples write width, depth, down, up, latent, ...) must agree."""
    state, meta = read_safetensors(path)
    kind, config = infer_config(state)
    model = make_twin(kind, config)
    weights = {k: v for k, v in state.items() if not k.startswith("optim.")}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError("%s: does not fit the %s twin: missing %s, unexpected %s" % (path, kind, missing, unexpected))
    for k, v in config.items():   # where the metadata states the config too, it must agree
        key = "width" if k == "base_width" else k
        if key in meta and meta[key] != str(v):
            raise ValueError("%s: the tensors say %s = %s, the metadata says %s" % (path, k, v, meta[key]))
    return model.eval(), (kind, config), meta


# ---- the check ----------------------------------------------------------------------------------

VARIANTS = [  # (label, interop_dump arguments)
    ("unet maxpool/transpose", "unet --down maxpool --up transpose --width 4 --depth 3 --size 32"),
    ("unet maxpool/upsample", "unet --down maxpool --up upsample --width 4 --depth 3 --size 32"),
    ("unet strided/transpose", "unet --down strided --up transpose --width 4 --depth 3 --size 32"),
    ("unet strided/upsample", "unet --down strided --up upsample --width 4 --depth 3 --size 32"),
    ("unet bce head (1 class)", "unet --classes 1 --width 4 --depth 2 --size 32"),
    ("cvae bernoulli", "cvae --in 1 --size 16 --likelihood bernoulli"),
    ("cvae bernoulli cond_planes 2", "cvae --in 1 --size 16 --likelihood bernoulli --cond-planes 2"),
    ("cvae logistic", "cvae --in 1 --size 16 --likelihood logistic"),
    ("cvae logistic cond_planes 2, rgb 32", "cvae --in 3 --size 32 --likelihood logistic --cond-planes 2 --latent 16"),
    ("classifier 2 blocks, gray 16", "classifier --in 1 --size 16 --blocks 2"),
    ("classifier 3 blocks, rgb 32", "classifier --in 3 --size 32 --blocks 3 --width 4"),
]


def twin_outputs(kind, model, io):
    x = io["input.x"].double()
    with torch.no_grad():
        if kind == "cvae":
            logits, log_scale, mu, logvar = model(x, io["input.labels"].double(), io["input.eps"].double())
            z = mu + torch.exp(0.5 * logvar) * io["input.eps"].double()
            dec_logits, dec_scale = cvae_decode(model, z, io["input.labels"].double())
            if not torch.equal(dec_logits, logits) or (log_scale is not None and not torch.equal(dec_scale, log_scale)):
                raise SystemExit("interop: cvae_decode disagrees with the twin's forward")
            out = {"out.logits": logits, "out.mu": mu, "out.logvar": logvar}
            if log_scale is not None:
                out["out.log_scale"] = log_scale
            return out
        return {"out.logits": model(x)}


def check(dump, seed):
    failed = 0
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="uvae_interop_") as tmp:
        for i, (label, args) in enumerate(VARIANTS):
            d = os.path.join(tmp, str(i))
            os.mkdir(d)
            cmd = [dump] + args.split() + ["--seed", str(seed + i), "--out", d]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print("interop: %-36s FAILED: %s exited %d: %s" % (label, " ".join(cmd), r.returncode, r.stderr.strip()))
                failed += 1
                continue
            model, (kind, config), meta = load_model(os.path.join(d, "checkpoint.safetensors"))
            io, _ = read_safetensors(os.path.join(d, "io.safetensors"))
            ours_names = sorted(k for k in io if k.startswith("out."))
            theirs = twin_outputs(kind, model.double(), io)
            if sorted(theirs) != ours_names:
                raise SystemExit("interop: %s: outputs %s from C, %s from the twin" % (label, ours_names, sorted(theirs)))
            err = 0.0
            for k in ours_names:
                t = theirs[k]
                o = io[k].double()
                if o.shape != t.shape:
                    raise SystemExit("interop: %s: %s is %s from C, %s from the twin" % (label, k, tuple(o.shape), tuple(t.shape)))
                err = max(err, ((o - t).abs().max() / t.abs().max().clamp_min(1e-30)).item())
            ok = err <= TOLERANCE
            failed += not ok
            worst = max(worst, err)
            nparams = sum(p.numel() for p in model.parameters())
            print("interop: %-36s %7d params  outputs %-38s max rel err %.2e  %s"
                  % (label, nparams, ",".join(n[4:] for n in ours_names), err, "ok" if ok else "MISMATCH"), flush=True)
    n = len(VARIANTS)
    if failed:
        print("interop: FAILED: %d of %d models differ from PyTorch (tolerance %.0e)" % (failed, n, TOLERANCE))
        return 1
    print("interop: all %d models match PyTorch (max relative error %.2e <= %.0e)" % (n, worst, TOLERANCE))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", nargs="?", help="show what load_model makes of this checkpoint")
    ap.add_argument("--dump", help="the interop_dump binary (build/interop_dump): run the check")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    if a.checkpoint:
        model, (kind, config), meta = load_model(a.checkpoint)
        print("%s: %s %s, %d parameters; metadata %s" % (a.checkpoint, kind, config,
                                                          sum(p.numel() for p in model.parameters()), meta))
        return 0
    if not a.dump:
        ap.error("give a checkpoint or --dump BINARY")
    return check(a.dump, a.seed)


if __name__ == "__main__":
    sys.exit(main())
