"""make_ref.py - PyTorch reference fixtures for tests/test_parity.c.

Generates, in the directory of this script (tests/ref/):

  ops.safetensors     one group of tensors per op or loss case, named "<case>.<tensor>":
                      the inputs, "out" (the forward output), "r" (a random upstream gradient of
                      out's shape; the reference backpropagates (out * r).sum()) and "d<input>" for
                      every input that takes a gradient. Losses (one-element outputs) have no "r":
                      the loss itself is backpropagated. Class targets and embedding indices are
                      stored as float32 holding integers, as the C API takes them.
                      bn_train also has "running_mean_after" / "running_var_after".
  optim.safetensors   Adam / AdamW / SGD-momentum trajectories ("<opt>.p0", "<opt>.g0..g2",
                      "<opt>.p1..p3"), the OneCycleLR and CosineAnnealingLR learning-rate sequences
                      ("onecycle.lr", "cosine.lr") and clip_grad_norm_ cases ("clip_*").
  unet_<variant>.safetensors  (variants mp_tr_ce, mp_tr_dice, st_tr_ce, st_up_dice)
                      a PyTorch mirror of uvae_unet: its initial parameters and buffers under the C
                      names, "input.x", "input.y" and "losses" (the loss before each of 5 Adam steps).
  cvae.safetensors    the same for uvae_cvae, plus "input.labels" and the noise "eps.0".."eps.4".

Everything is float32 on the CPU, one thread, seeded: rerunning reproduces the files bit for bit
with the same torch build. Rerun from the repository root with Debian's torch:

    /usr/bin/python3 tests/ref/make_ref.py

The `safetensors` package is not needed: the files are written with struct + json below.
"""
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)
torch.set_default_dtype(torch.float32)


# --------------------------------------------------------------------------------------------
# safetensors writer

def write_safetensors(path, tensors, meta):
    """tensors: list of (name, tensor); all written as contiguous little-endian float32."""
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        assert name not in header, name
        a = np.ascontiguousarray(t.detach().cpu().numpy(), dtype="<f4")
        shape = list(a.shape) if a.ndim > 0 else [1]
        assert 1 <= len(shape) <= 4, (name, shape)
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    print("wrote %-28s %3d tensors %8d bytes" % (os.path.relpath(path), len(tensors),
                                                    os.path.getsize(path)))


META = {"generator": "tests/ref/make_ref.py", "torch": torch.__version__}


def U(*shape, lo=-1.0, hi=1.0):
    return torch.rand(*shape) * (hi - lo) + lo


def away_from_zero(*shape, margin=0.05):
    """U(-1,1) values with |x| > margin (kinks of relu / leaky_relu avoided)."""
    x = U(*shape)
    return torch.where(x.abs() < margin, torch.sign(x + 1e-12) * (margin + 0.5), x)


def distinct(*shape):
    """A random permutation of distinct values in (-1, 1): no ties for max pooling."""
    n = int(np.prod(shape))
    return ((torch.randperm(n).float() + 0.5) / n * 2 - 1).reshape(*shape)


def classes(n_classes, *shape):
    return torch.randint(0, n_classes, shape).float()


# --------------------------------------------------------------------------------------------
# reference losses (written out in torch, as the C library defines them)

def dice_loss(logits, target, smooth):
    if logits.shape[1] > 1:
        p = torch.softmax(logits, 1)
        t = F.one_hot(target.long(), logits.shape[1]).permute(0, 3, 1, 2).to(p.dtype)
    else:
        p = torch.sigmoid(logits)
        t = target
    dims = (0, 2, 3)
    inter = (p * t).sum(dims)
    dice = (2 * inter + smooth) / (p.sum(dims) + t.sum(dims) + smooth)
    return 1 - dice.mean()


def kl_normal(mu, logvar):
    return (-0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)).mean()


def bernoulli_nll(logits, target):
    return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / logits.shape[0]


def dlogistic_nll(mean, log_scale, target):
    """-log P(k) of pixels k/255 under a logistic discretised into 256 bins with open end bins,
    summed per sample, mean over the batch (computed in double, PixelCNN++'s way: cdf differences)."""
    m, ls, t = mean.double(), log_scale.double(), target.double()
    inv = torch.exp(-ls)
    cdf_plus = torch.sigmoid(inv * (t - m + 0.5 / 255))
    cdf_min = torch.sigmoid(inv * (t - m - 0.5 / 255))
    k = torch.round(t * 255)
    p = torch.where(k <= 0, cdf_plus, torch.where(k >= 255, 1 - cdf_min, cdf_plus - cdf_min))
    return (-torch.log(p).sum() / mean.shape[0]).float()


def gaussian_nll(mean, logvar, target):
    return (0.5 * ((target - mean) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi))).sum() \
        / mean.shape[0]


# --------------------------------------------------------------------------------------------
# ops.safetensors

def op_case(out_list, name, inputs, fn, grad, loss=False, extra=None):
    """inputs: ordered dict name -> tensor; grad: names of inputs that take a gradient.
    fn(**leaves) -> output. Appends the group's tensors to out_list."""
    leaves = {}
    for k, v in inputs.items():
        leaves[k] = v.clone().requires_grad_(k in grad)
    out = fn(**leaves)
    tensors = [(k, v) for k, v in inputs.items()]
    if loss:
        assert out.numel() == 1
        out.backward()
        tensors.append(("out", out.detach().reshape(1)))
    else:
        r = U(*out.shape)
        (out * r).sum().backward()
        tensors.append(("out", out.detach().reshape(out.shape if out.dim() else (1,))))
        tensors.append(("r", r.reshape(out.shape if out.dim() else (1,))))
    for k in grad:
        tensors.append(("d" + k, leaves[k].grad))
    for k, v in (extra or {}).items():
        tensors.append((k, v))
    for k, v in tensors:
        out_list.append((name + "." + k, v))


def make_ops():
    torch.manual_seed(1001)
    T = []
    N, C, H, W, Co = 2, 3, 6, 6, 4

    # conv2d
    for name, k, s, p, bias in [("conv_k3s1p1", 3, 1, 1, True), ("conv_k3s2p1", 3, 2, 1, True),
                                ("conv_k1s1p0", 1, 1, 0, True),
                                ("conv_k4s2p1_nobias", 4, 2, 1, False)]:
        inp = {"x": U(N, C, H, W), "w": U(Co, C, k, k) * 0.5}
        if bias:
            inp["b"] = U(Co)
        op_case(T, name, inp, lambda x, w, b=None, s=s, p=p: F.conv2d(x, w, b, s, p), list(inp))

    # conv_transpose2d, w [Ci, Co, k, k]
    for name, k, s, p, bias in [("convt_k2s2p0", 2, 2, 0, True), ("convt_k4s2p1", 4, 2, 1, True),
                                ("convt_k3s1p1_nobias", 3, 1, 1, False)]:
        inp = {"x": U(N, C, 4, 5), "w": U(C, Co, k, k) * 0.5}
        if bias:
            inp["b"] = U(Co)
        op_case(T, name, inp,
                lambda x, w, b=None, s=s, p=p: F.conv_transpose2d(x, w, b, s, p), list(inp))

    # pooling (no padding, floor mode)
    op_case(T, "maxpool_k2s2", {"x": distinct(N, C, 6, 6)},
            lambda x: F.max_pool2d(x, 2, 2), ["x"])
    op_case(T, "maxpool_k3s2", {"x": distinct(N, C, 7, 7)},
            lambda x: F.max_pool2d(x, 3, 2), ["x"])
    op_case(T, "avgpool_k2s2", {"x": U(N, C, 6, 6)}, lambda x: F.avg_pool2d(x, 2, 2), ["x"])
    op_case(T, "avgpool_k3s2", {"x": U(N, C, 7, 7)}, lambda x: F.avg_pool2d(x, 3, 2), ["x"])

    # upsampling
    op_case(T, "up_nearest_s2", {"x": U(N, C, 3, 4)},
            lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), ["x"])
    op_case(T, "up_bilinear_s2", {"x": U(N, C, 3, 4)},
            lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False),
            ["x"])
    op_case(T, "up_bilinear_s3", {"x": U(N, C, 3, 4)},
            lambda x: F.interpolate(x, scale_factor=3, mode="bilinear", align_corners=False),
            ["x"])

    # batch norm: training (batch statistics, running stats updated) and eval (running stats)
    for name, training in [("bn_train", True), ("bn_eval", False)]:
        inp = {"x": U(N, C, 4, 5) * 2 + 0.3, "gamma": U(C, lo=0.5, hi=1.5), "beta": U(C),
               "running_mean": U(C) * 0.5, "running_var": U(C, lo=0.5, hi=1.5)}
        rm, rv = inp["running_mean"].clone(), inp["running_var"].clone()

        def bn(x, gamma, beta, running_mean, running_var, rm=rm, rv=rv, training=training):
            return F.batch_norm(x, rm, rv, gamma, beta, training=training, momentum=0.1, eps=1e-5)
        extra = {"running_mean_after": rm, "running_var_after": rv} if training else None
        op_case(T, name, inp, bn, ["x", "gamma", "beta"], extra=extra)

    # elementwise
    op_case(T, "relu", {"x": away_from_zero(N, C, 4, 4)}, lambda x: F.relu(x), ["x"])
    op_case(T, "leaky_relu", {"x": away_from_zero(N, C, 4, 4)},
            lambda x: F.leaky_relu(x, 0.2), ["x"])
    op_case(T, "sigmoid", {"x": U(N, C, 4, 4) * 3}, lambda x: torch.sigmoid(x), ["x"])
    op_case(T, "tanh", {"x": U(N, C, 4, 4) * 2}, lambda x: torch.tanh(x), ["x"])
    op_case(T, "exp", {"x": U(N, C, 4, 4) * 2}, lambda x: torch.exp(x), ["x"])

    # dense
    op_case(T, "linear", {"x": U(4, 5), "w": U(3, 5), "b": U(3)},
            lambda x, w, b: F.linear(x, w, b), ["x", "w", "b"])
    op_case(T, "embedding", {"idx": torch.tensor([1., 3., 1., 0., 4., 3., 3.]), "table": U(5, 4)},
            lambda idx, table: F.embedding(idx.long(), table), ["table"])

    # shape and arithmetic
    op_case(T, "concat_4d", {"a": U(N, 3, 4, 4), "b": U(N, 2, 4, 4)},
            lambda a, b: torch.cat([a, b], 1), ["a", "b"])
    op_case(T, "concat_2d", {"a": U(3, 4), "b": U(3, 5)},
            lambda a, b: torch.cat([a, b], 1), ["a", "b"])
    op_case(T, "add", {"a": U(N, C, 3, 3), "b": U(N, C, 3, 3)}, lambda a, b: a + b, ["a", "b"])
    op_case(T, "mul", {"a": U(N, C, 3, 3), "b": U(N, C, 3, 3)}, lambda a, b: a * b, ["a", "b"])
    op_case(T, "scale", {"x": U(N, C, 3, 3)}, lambda x: x * 0.7, ["x"])
    op_case(T, "sum", {"x": U(N, C, 3, 3)}, lambda x: x.sum().reshape(1), ["x"])
    op_case(T, "mean", {"x": U(N, C, 3, 3)}, lambda x: x.mean().reshape(1), ["x"])
    op_case(T, "flatten", {"x": U(N, C, 2, 3)}, lambda x: x.flatten(1), ["x"])
    op_case(T, "dropout_eval", {"x": U(N, C, 3, 3)},
            lambda x: F.dropout(x, 0.5, training=False), ["x"])

    # losses (one-element outputs, no "r")
    op_case(T, "ce_4d", {"logits": U(2, 3, 4, 4) * 2, "target": classes(3, 2, 4, 4)},
            lambda logits, target: F.cross_entropy(logits, target.long()), ["logits"], loss=True)
    op_case(T, "ce_2d", {"logits": U(5, 4) * 2, "target": classes(4, 5)},
            lambda logits, target: F.cross_entropy(logits, target.long()), ["logits"], loss=True)
    op_case(T, "bce", {"logits": U(2, 1, 4, 4) * 3, "target": U(2, 1, 4, 4, lo=0, hi=1)},
            lambda logits, target: F.binary_cross_entropy_with_logits(logits, target),
            ["logits"], loss=True)
    op_case(T, "dice_multi", {"logits": U(2, 3, 5, 5) * 2, "target": classes(3, 2, 5, 5)},
            lambda logits, target: dice_loss(logits, target, 1.0), ["logits"], loss=True)
    op_case(T, "dice_binary", {"logits": U(2, 1, 5, 5) * 2, "target": classes(2, 2, 1, 5, 5)},
            lambda logits, target: dice_loss(logits, target, 1.0), ["logits"], loss=True)
    op_case(T, "ce_dice", {"logits": U(2, 3, 5, 5) * 2, "target": classes(3, 2, 5, 5)},
            lambda logits, target: F.cross_entropy(logits, target.long())
            + dice_loss(logits, target, 1.0), ["logits"], loss=True)
    op_case(T, "kl_normal", {"mu": U(4, 6), "logvar": U(4, 6)},
            kl_normal, ["mu", "logvar"], loss=True)
    op_case(T, "bernoulli_nll", {"logits": U(3, 1, 4, 4) * 3, "target": U(3, 1, 4, 4, lo=0, hi=1)},
            bernoulli_nll, ["logits"], loss=True)
    op_case(T, "gaussian_nll_full",
            {"mean": U(3, 2, 3, 3), "logvar": U(3, 2, 3, 3), "target": U(3, 2, 3, 3)},
            gaussian_nll, ["mean", "logvar"], loss=True)
    op_case(T, "gaussian_nll_scalar",
            {"mean": U(3, 2, 3, 3), "logvar": U(1), "target": U(3, 2, 3, 3)},
            gaussian_nll, ["mean", "logvar"], loss=True)
    # pixels k/255 with both end bins present; means near the pixels, scales e^-3.5 .. e^-1
    k = torch.randint(0, 256, (3, 2, 3, 3)).float()
    k[0, 0, 0, :] = 0
    k[1, 1, 2, :] = 255
    op_case(T, "dlogistic", {"mean": k / 255 + U(3, 2, 3, 3) * 0.1, "log_scale": U(3, 2, 3, 3, lo=-3.5, hi=-1.0),
                             "target": k / 255}, dlogistic_nll, ["mean", "log_scale"], loss=True)

    # batch norm fused with relu (added last, so the cases before keep their random draws)
    for name, training in [("bn_relu_train", True), ("bn_relu_eval", False)]:
        inp = {"x": U(N, C, 4, 5) * 2 + 0.3, "gamma": U(C, lo=0.5, hi=1.5), "beta": U(C),
               "running_mean": U(C) * 0.5, "running_var": U(C, lo=0.5, hi=1.5)}
        rm, rv = inp["running_mean"].clone(), inp["running_var"].clone()

        def bn_relu(x, gamma, beta, running_mean, running_var, rm=rm, rv=rv, training=training):
            return F.relu(F.batch_norm(x, rm, rv, gamma, beta, training=training, momentum=0.1, eps=1e-5))
        extra = {"running_mean_after": rm, "running_var_after": rv} if training else None
        op_case(T, name, inp, bn_relu, ["x", "gamma", "beta"], extra=extra)

    write_safetensors(os.path.join(HERE, "ops.safetensors"), T, META)


# --------------------------------------------------------------------------------------------
# optim.safetensors

def make_optim():
    torch.manual_seed(1002)
    T = []
    for name, make in [("adam", lambda p: torch.optim.Adam([p], lr=1e-2)),
                       ("adamw", lambda p: torch.optim.AdamW([p], lr=1e-2, weight_decay=0.1)),
                       ("sgd", lambda p: torch.optim.SGD([p], lr=1e-1, momentum=0.9))]:
        p0 = torch.randn(10)
        gs = [torch.randn(10) for _ in range(3)]
        p = p0.clone().requires_grad_(True)
        opt = make(p)
        T.append((name + ".p0", p0))
        for i, g in enumerate(gs):
            T.append(("%s.g%d" % (name, i), g))
        for i, g in enumerate(gs):
            p.grad = g.clone()
            opt.step()
            T.append(("%s.p%d" % (name, i + 1), p.detach().clone()))

    def lr_sequence(make_sched, n):
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.Adam([p], lr=1e-3)
        sched = make_sched(opt)
        lrs = []
        for i in range(n):
            lrs.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        return torch.tensor(lrs, dtype=torch.float64).float()

    T.append(("onecycle.lr", lr_sequence(
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=1e-3, total_steps=20), 20)))
    T.append(("cosine.lr", lr_sequence(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20, eta_min=1e-5), 20)))

    # clip_grad_norm_ over two parameters a [3,4] and b [5], max_norm 1.0
    for name, scale in [("clip_big", 1.0), ("clip_small", 0.05)]:
        a = torch.zeros(3, 4, requires_grad=True)
        b = torch.zeros(5, requires_grad=True)
        a.grad = torch.randn(3, 4) * scale
        b.grad = torch.randn(5) * scale
        T.append((name + ".a", a.grad.clone()))
        T.append((name + ".b", b.grad.clone()))
        norm = torch.nn.utils.clip_grad_norm_([a, b], 1.0)
        T.append((name + ".a_after", a.grad.clone()))
        T.append((name + ".b_after", b.grad.clone()))
        T.append((name + ".norm", norm.reshape(1)))

    write_safetensors(os.path.join(HERE, "optim.safetensors"), T, META)


# --------------------------------------------------------------------------------------------
# models: PyTorch mirrors of uvae_unet and uvae_cvae, parameters under the C names

class DoubleConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class UNet(nn.Module):
    def __init__(self, in_ch, n_classes, base, depth, strided, upsample):
        super().__init__()
        self.depth, self.strided, self.upsample = depth, strided, upsample
        c = [base * 2 ** i for i in range(depth + 1)]
        self.inc = DoubleConv(in_ch, c[0])
        for i in range(1, depth + 1):
            m = nn.Module()
            if strided:
                m.pool = nn.Conv2d(c[i - 1], c[i - 1], 3, stride=2, padding=1)
            m.conv = DoubleConv(c[i - 1], c[i])
            setattr(self, "down%d" % i, m)
        for i in range(1, depth + 1):
            cin, cout = c[depth - i + 1], c[depth - i]
            m = nn.Module()
            if upsample:
                m.up = nn.Conv2d(cin, cin // 2, 3, stride=1, padding=1)
            else:
                m.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
            m.conv = DoubleConv(cin, cout)
            setattr(self, "up%d" % i, m)
        self.outc = nn.Conv2d(c[0], n_classes, 1)

    def forward(self, x):
        s = [self.inc(x)]
        for i in range(1, self.depth + 1):
            m = getattr(self, "down%d" % i)
            h = m.pool(s[-1]) if self.strided else F.max_pool2d(s[-1], 2, 2)
            s.append(m.conv(h))
        h = s[-1]
        for i in range(1, self.depth + 1):
            m = getattr(self, "up%d" % i)
            if self.upsample:
                u = m.up(F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False))
            else:
                u = m.up(h)
            h = m.conv(torch.cat([s[self.depth - i], u], 1))
        return self.outc(h)


def model_state(model):
    return [(k, v.detach().clone()) for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")]


def train(model, loss_fn, steps):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for step in range(steps):
        opt.zero_grad()
        loss = loss_fn(step)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    return torch.tensor(losses)


def make_unet(variant, seed):
    strided = variant.startswith("st_")
    upsample = "_up_" in variant
    use_dice = variant.endswith("_dice")
    torch.manual_seed(seed)
    model = UNet(3, 3, 8, 2, strided, upsample)
    x = torch.randn(2, 3, 32, 32)
    y = classes(3, 2, 32, 32)
    T = model_state(model)
    model.train()

    def loss_fn(step):
        logits = model(x)
        return dice_loss(logits, y, 1.0) if use_dice else F.cross_entropy(logits, y.long())
    losses = train(model, loss_fn, 5)
    T += [("input.x", x), ("input.y", y), ("losses", losses)]
    meta = dict(META, in_ch=3, n_classes=3, base_width=8, depth=2,
                down="strided" if strided else "maxpool", up="upsample" if upsample else "transpose",
                loss="dice(smooth=1)" if use_dice else "cross_entropy", optim="adam lr=1e-3")
    write_safetensors(os.path.join(HERE, "unet_%s.safetensors" % variant), T, meta)


class CVAE(nn.Module):
    def __init__(self, in_ch, S, n_classes, latent, w, E, P=0, logistic=False):
        super().__init__()
        self.S, self.w, self.P = S, w, P
        flat = 2 * w * (S // 4) ** 2
        self.label_plane = nn.Embedding(n_classes, S * S)
        self.label_embed = nn.Embedding(n_classes, E)
        self.enc1 = nn.Conv2d(in_ch + 1, w, 4, stride=2, padding=1)
        self.enc2 = nn.Conv2d(w, 2 * w, 4, stride=2, padding=1)
        self.fc_mu = nn.Linear(flat + E, latent)
        self.fc_logvar = nn.Linear(flat + E, latent)
        self.fc_dec = nn.Linear(latent + E, flat)
        self.dec1 = nn.ConvTranspose2d(2 * w + P, w, 4, stride=2, padding=1)
        self.dec2 = nn.ConvTranspose2d(w + P, in_ch, 4, stride=2, padding=1)
        if P:
            self.cond1 = nn.Embedding(n_classes, P * (S // 4) ** 2)
            self.cond2 = nn.Embedding(n_classes, P * (S // 2) ** 2)
        if logistic:
            self.dec2_scale = nn.ConvTranspose2d(w + P, in_ch, 4, stride=2, padding=1)
        self.logistic = logistic

    def forward(self, x, labels, eps):
        N, S, w = x.shape[0], self.S, self.w
        lab = labels.long()
        plane = self.label_plane(lab).view(N, 1, S, S)
        h = F.leaky_relu(self.enc1(torch.cat([x, plane], 1)), 0.2)
        h = F.leaky_relu(self.enc2(h), 0.2)
        e = self.label_embed(lab)
        h = torch.cat([h.flatten(1), e], 1)
        mu, logvar = self.fc_mu(h), self.fc_logvar(h)
        z = mu + torch.exp(0.5 * logvar) * eps
        d = F.relu(self.fc_dec(torch.cat([z, e], 1))).view(N, 2 * w, S // 4, S // 4)
        if self.P:
            d = torch.cat([d, self.cond1(lab).view(N, self.P, S // 4, S // 4)], 1)
        d = F.relu(self.dec1(d))
        if self.P:
            d = torch.cat([d, self.cond2(lab).view(N, self.P, S // 2, S // 2)], 1)
        ls = self.dec2_scale(d) if self.logistic else None
        return self.dec2(d), ls, mu, logvar


def make_cvae(seed, P=0, logistic=False, name="cvae"):
    torch.manual_seed(seed)
    model = CVAE(1, 16, 10, 8, 8, 8, P, logistic)
    x = torch.rand(4, 1, 16, 16)
    if logistic:
        x = torch.round(x * 255) / 255
    labels = torch.tensor([3., 7., 0., 3.])
    eps = [torch.randn(4, 8) for _ in range(5)]
    T = model_state(model)
    model.train()

    def loss_fn(step):
        logits, ls, mu, logvar = model(x, labels, eps[step])
        nll = dlogistic_nll(torch.sigmoid(logits), ls, x) if logistic else bernoulli_nll(logits, x)
        return nll + kl_normal(mu, logvar)
    losses = train(model, loss_fn, 5)
    T += [("input.x", x), ("input.labels", labels)]
    T += [("eps.%d" % i, e) for i, e in enumerate(eps)]
    T += [("losses", losses)]
    meta = dict(META, in_ch=1, size=16, n_classes=10, latent=8, width=8, embed=8, cond_planes=P,
                likelihood="logistic" if logistic else "bernoulli", optim="adam lr=1e-3")
    write_safetensors(os.path.join(HERE, name + ".safetensors"), T, meta)


def main():
    make_ops()
    make_optim()
    for i, v in enumerate(["mp_tr_ce", "mp_tr_dice", "st_tr_ce", "st_up_dice"]):
        make_unet(v, 2000 + i)
    make_cvae(3000)
    make_cvae(3001, P=2, logistic=True, name="cvae_cond_logistic")


if __name__ == "__main__":
    main()
