/* tests/test_cuda.c — the GPU build against the CPU build, on a machine with a CUDA device.

   Built by nvcc with the GPU kernels (`make test-cuda`):
       nvcc -O3 -DUNETVAE_CUDA -Xcompiler -fopenmp tests/test_cuda.c unetvae_cuda.cu -lm -o build/test_cuda
   It has its own main and is the only file with UNETVAE_IMPLEMENTATION. Without a usable device it
   prints one line, "no CUDA device: <reason>", and exits 1 (`make check-cuda-build` relies on it).

   1. ops: every op and loss of tests/test_grad.c, on larger random inputs, forward and backward of
      loss = sum(out * r) once on a CPU context and once on a GPU context with copies of the same
      inputs. The GPU's output and every input gradient (and batch-norm's running statistics after
      the step) are copied back and compared with the CPU's by normalised MSE,
          nmse(gpu, cpu) = sum((gpu - cpu)^2) / max(sum(cpu^2), 1e-30)  <=  1e-8,
      one CHECK per compared tensor and one line per op with its largest nmse. Then the
      convolution cases again with the per-image im2col + GEMM kernels (uvae__cu_conv_im2col(1);
      the default is implicit GEMM over the batch), and, where the device has it, with TF32
      products (uvae__cu_tf32(1)) at nmse <= 1e-5.
   2. models: one training step of each UNet variant, of the CVAE (both likelihoods) and of the
      classifier (the judge), built twice from one seed, one
      copy moved to the GPU: the loss, every parameter gradient, then (both optimizers stepping
      from the CPU's gradients) every parameter and buffer after one Adam step; one CHECK each.
      Built for the CUDA emulator, each model's line also gives the kernel launches and memsets
      of its GPU forward, loss and backward.
   3. 20 Adam steps of a tiny UNet on the GPU on a learnable task: the loss falls below half.
      Built for the CUDA emulator (-DUVT_CUEMU, make test-cuda-emu), also: steps 3..20 make no
      cudaMalloc or cudaFree, copy nothing in and only the loss's 4 bytes back, per step.
   4. the GPU arena: its capacity after step 2 equals its capacity after step 20.
   5. the TF32 tensor-core GEMM (uvae__cu_tf32), where the device and the build have it: every
      transpose case, with and without accumulation, on ragged shapes, against a double-precision
      product on the host, element by element: |gpu - ref| <= (2^-10 + (K+2) 2^-22) mag, where
      mag = |c| + sum_k |a_ik b_kj| (TF32 rounds each input to 11 significant bits, so each
      product is off by at most 2^-10 of its size; the fp32 sums add at most about K 2^-24 of mag,
      doubled for tensor cores that truncate). Every output written (C poisoned with NaN). The
      line also gives ||gpu - ref|| / ||ref||, about 3e-4 (not a bound: ill-conditioned where
      c cancels a b, as in the 1x1x1 case).
   Ends with "N passed, M failed"; exits non-zero on any failure.

   Harness self-check without a GPU: compile with -DUVT_DEVICE=UVAE_CPU (plain cc, no nvcc) and
   the "GPU" side runs on the CPU too; every nmse is then 0 and every other check must pass. */
#define UNETVAE_IMPLEMENTATION
#include "test.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef UVT_DEVICE
#define UVT_DEVICE UVAE_CUDA
#endif
#define NMSE_TOL 1e-8
#define NMSE_TOL_TF32 1e-5        /* convolutions with TF32 products: inputs rounded to 11 bits, ~3e-4 relative */
static double nmse_tol = NMSE_TOL;

int uvt_pass, uvt_fail;

/* A failure that is not a comparison (a failed call): counted only when it happens, so that the
   passes counted are the comparisons. */
#define FAIL(...) CHECK(0, __VA_ARGS__)

#ifdef UVT_CUEMU
/* Built against the CUDA emulator (make test-cuda-emu), which counts the runtime calls
   (tests/cuemu/cuda_runtime.h): mallocs, frees, host-to-device copies and bytes, back and bytes,
   kernel launches, memsets. */
void cuemu_counts(unsigned long long c[8]);
static unsigned long long emu_launches(void) {
    unsigned long long c[8];
    cuemu_counts(c);
    return c[6];
}
#endif

/* ---------------------------------------------------------------------------------------------
   comparisons */
static double nmse(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return num / (den > 1e-30 ? den : 1e-30);             /* NaN anywhere gives NaN: fails <= */
}

/* the worst of a group of comparisons (one op, one model's gradients, ...) */
typedef struct {
    int n;                        /* tensors compared */
    double worst;                 /* largest nmse (NaN sticks) */
    char where[UVAE_NAME_MAX + 16];
} group;

/* A device tensor's values (grad != 0: its gradient) copied to a new host buffer; NULL on failure. */
static float *dev_values(const uvae_tensor *t, int grad, const char *what) {
    uvae_tensor view = *t;                                /* same device and size, other pointer */
    float *h = (float *)malloc((t->size ? t->size : 1) * sizeof(float));
    if (grad) view.data = t->grad;
    if (!h || !view.data) { FAIL("%s: %s", what, h ? "the GPU tensor has no gradient" : "out of memory"); free(h); return NULL; }
    if (uvae_tensor_copy_out(&view, h) != UVAE_OK) { FAIL("%s: copy to host failed: %s", what, uvae_last_error()); free(h); return NULL; }
    return h;
}

/* Overwrite a device tensor's gradient with t->size floats from host memory. */
static int dev_set_grad(const uvae_tensor *t, const float *host) {
    uvae_tensor view = *t;
    if (!t->grad) return uvae_tensor_copy_in(NULL, host);  /* fails, with a reason */
    view.data = t->grad;
    return uvae_tensor_copy_in(&view, host);
}

/* One CHECK: nmse(gpu tensor, cpu tensor) <= nmse_tol, on the values or (grad) the gradients. */
static void compare(group *g, const char *op, const char *what, const uvae_tensor *gpu, const uvae_tensor *cpu, int grad) {
    char name[256];
    float *h;
    double e;
    snprintf(name, sizeof name, "%s: %s", op, what);
    if (!gpu || !cpu) { FAIL("%s: missing tensor", name); return; }
    if (!uvae_same_shape(gpu, cpu)) { FAIL("%s: GPU and CPU shapes differ", name); return; }
    if (grad && !cpu->grad) { FAIL("%s: the CPU tensor has no gradient", name); return; }
    if (!(h = dev_values(gpu, grad, name))) return;
    e = nmse(h, grad ? cpu->grad : cpu->data, cpu->size);
    CHECK(e <= nmse_tol, "%s: nmse %.3g > %g", name, e, nmse_tol);
    if (++g->n == 1 || !(e <= g->worst)) {
        g->worst = e;
        snprintf(g->where, sizeof g->where, "%s", what);
    }
    free(h);
}

/* A device copy of a host tensor (with a zeroed gradient if with_grad); NULL on failure. */
static uvae_tensor *to_dev(const uvae_tensor *h, int with_grad) {
    uvae_tensor *d;
    if (!h) return NULL;
    d = uvae_tensor_new_on(UVT_DEVICE, h->ndim, h->shape, with_grad);
    if (!d) { FAIL("uvae_tensor_new_on: %s", uvae_last_error()); return NULL; }
    if (uvae_tensor_copy_in(d, h->data) != UVAE_OK) {
        FAIL("uvae_tensor_copy_in: %s", uvae_last_error());
        uvae_tensor_free(d);
        return NULL;
    }
    return d;
}

/* the one value of a (device) loss tensor, NaN on failure */
static float scalar(const uvae_tensor *t) {
    float v = NAN;
    if (t && uvae_tensor_copy_out(t, &v) != UVAE_OK) v = NAN;
    return v;
}

/* ---------------------------------------------------------------------------------------------
   1. every op and loss: the cases of tests/test_grad.c on larger shapes */
#include "op_cases.h"
enum { F_AFTER = 1 };             /* compare the no-gradient inputs after the step (running stats) */
typedef struct { const char *name; build_fn f; int n_in; spec in[5]; int train, flags; } ocase;

/* forward of one case on ctx, tape on, dropout seed fixed; then loss = sum(out * r) and backward.
   *r_host is drawn on the first (CPU) call and copied to the device on the second. */
static uvae_tensor *run_case(uvae_ctx *ctx, const ocase *c, uvae_tensor **in, uvae_tensor **r, int device, const char *side) {
    uvae_tensor *out, *loss;
    uvae_ctx_reset(ctx, c->train);
    uvae_ctx_set_record(ctx, 1);
    uvae_rng_seed(uvae_ctx_rng(ctx), 99);                 /* same dropout seed on both devices */
    out = c->f(ctx, in);
    if (!out) { FAIL("%s: %s forward failed: %s", c->name, side, uvae_last_error()); return NULL; }
    if (!*r) {
        uvae_tensor *rh = uvae_tensor_new(out->ndim, out->shape);
        if (!rh) { FAIL("%s: %s", c->name, uvae_last_error()); return NULL; }
        for (size_t i = 0; i < rh->size; i++) rh->data[i] = 2 * uvae_rng_uniform(&rng) - 1;
        r[0] = rh;
    }
    if (device != UVAE_CPU && !r[1] && !(r[1] = to_dev(r[0], 0))) return NULL;
    loss = uvae_sum(ctx, uvae_mul(ctx, out, r[device != UVAE_CPU]));
    if (!loss) { FAIL("%s: %s loss failed: %s", c->name, side, uvae_last_error()); return NULL; }
    if (uvae_backward(ctx, loss) != UVAE_OK) { FAIL("%s: %s backward failed: %s", c->name, side, uvae_last_error()); return NULL; }
    return out;
}

static double op_worst;           /* the largest nmse over all ops */

static void op_compare(const ocase *c, uvae_ctx *hctx, uvae_ctx *dctx) {
    uvae_tensor *hin[5] = {0}, *din[5] = {0}, *r[2] = {0}, *hout, *dout;
    group g = {0, 0, ""};
    char what[64];
    for (int k = 0; k < c->n_in; k++) {
        hin[k] = uvae_tensor_new_grad(c->in[k].ndim, c->in[k].shape, c->in[k].grad);
        if (!hin[k]) { FAIL("%s: %s", c->name, uvae_last_error()); goto done; }
        fill(hin[k], &c->in[k]);
        if (!(din[k] = to_dev(hin[k], c->in[k].grad))) goto done;
    }
    if (!(hout = run_case(hctx, c, hin, r, UVAE_CPU, "CPU"))) goto done;
    if (!(dout = run_case(dctx, c, din, r, UVT_DEVICE, "GPU"))) goto done;
    compare(&g, c->name, "output", dout, hout, 0);
    for (int k = 0; k < c->n_in; k++) {
        if (c->in[k].grad) {
            snprintf(what, sizeof what, "grad of input %d", k);
            compare(&g, c->name, what, din[k], hin[k], 1);
        } else if (c->flags & F_AFTER) {
            snprintf(what, sizeof what, "input %d after the step", k);
            compare(&g, c->name, what, din[k], hin[k], 0);
        }
    }
    printf("  op %-28s %d tensors, max nmse %.3g (%s)\n", c->name, g.n, g.worst, g.n ? g.where : "-");
    if (!(g.worst <= op_worst)) op_worst = g.worst;
done:
    for (int k = 0; k < c->n_in; k++) { uvae_tensor_free(hin[k]); uvae_tensor_free(din[k]); }
    uvae_tensor_free(r[0]);
    uvae_tensor_free(r[1]);
}

static const ocase cases[] = {
    {"conv2d k3 s1 p1", b_conv_s1, 3, {X4(4, 16, 32, 32), X4(16, 16, 3, 3), X1(16)}, 1, 0},
    /* the bias gradient over 5 outputs of 36x35 (6300 values a channel): two chunks, the second
       starting mid-image (batch norm's cases below cut theirs the same way) */
    {"conv2d k3 s1 p1, chunks", b_conv_s1, 3, {X4(5, 2, 36, 35), X4(3, 2, 3, 3), X1(3)}, 1, 0},
    {"conv2d k3 s2 p1", b_conv_s2, 3, {X4(4, 16, 32, 32), X4(24, 16, 3, 3), X1(24)}, 1, 0},
    {"conv2d k4 s2 p1 no bias", b_conv_nb, 2, {X4(4, 8, 32, 32), X4(16, 8, 4, 4)}, 1, 0},
    {"conv_transpose2d k2 s2", b_convT_2, 3, {X4(4, 16, 16, 16), X4(16, 8, 2, 2), X1(8)}, 1, 0},
    {"conv_transpose2d k4 s2 p1", b_convT_4, 3, {X4(4, 16, 16, 16), X4(16, 8, 4, 4), X1(8)}, 1, 0},
    {"max_pool2d k2 s2", b_maxpool, 1, {{T4(4, 16, 32, 32), 1, V_DISTINCT, 0}}, 1, 0},
    {"max_pool2d k3 s2", b_maxpool3, 1, {{T4(4, 16, 33, 33), 1, V_DISTINCT, 0}}, 1, 0},
    {"avg_pool2d k3 s2", b_avgpool, 1, {X4(4, 16, 33, 33)}, 1, 0},
    {"upsample nearest x2", b_up_near, 1, {X4(4, 16, 16, 16)}, 1, 0},
    {"upsample bilinear x2", b_up_bil2, 1, {X4(4, 16, 16, 16)}, 1, 0},
    {"upsample bilinear x3", b_up_bil3, 1, {X4(4, 8, 12, 12)}, 1, 0},
    {"batch_norm2d train", b_bn, 5, {{T4(4, 16, 16, 16), 1, V_NORMAL, 0}, X1(16), X1(16), {T1(16), 0, V_UNIFORM, 0}, {T1(16), 0, V_POS, 0}}, 1, F_AFTER},
    {"batch_norm2d eval", b_bn, 5, {{T4(4, 16, 16, 16), 1, V_NORMAL, 0}, X1(16), X1(16), {T1(16), 0, V_UNIFORM, 0}, {T1(16), 0, V_POS, 0}}, 0, F_AFTER},
    {"batch_norm2d_relu train", b_bn_relu, 5, {{T4(4, 16, 16, 16), 1, V_NORMAL, 0}, X1(16), X1(16), {T1(16), 0, V_UNIFORM, 0}, {T1(16), 0, V_POS, 0}}, 1, F_AFTER},
    {"batch_norm2d_relu eval", b_bn_relu, 5, {{T4(4, 16, 16, 16), 1, V_NORMAL, 0}, X1(16), X1(16), {T1(16), 0, V_UNIFORM, 0}, {T1(16), 0, V_POS, 0}}, 0, F_AFTER},
    /* 5 images of 36x35 (6300 values a channel): two chunks a channel, the second starting mid-image */
    {"batch_norm2d train, chunks", b_bn, 5, {{T4(5, 3, 36, 35), 1, V_NORMAL, 0}, X1(3), X1(3), {T1(3), 0, V_UNIFORM, 0}, {T1(3), 0, V_POS, 0}}, 1, F_AFTER},
    {"batch_norm2d_relu train, chunks", b_bn_relu, 5, {{T4(5, 3, 36, 35), 1, V_NORMAL, 0}, X1(3), X1(3), {T1(3), 0, V_UNIFORM, 0}, {T1(3), 0, V_POS, 0}}, 1, F_AFTER},
    {"batch_norm2d eval, chunks", b_bn, 5, {{T4(5, 3, 36, 35), 1, V_NORMAL, 0}, X1(3), X1(3), {T1(3), 0, V_UNIFORM, 0}, {T1(3), 0, V_POS, 0}}, 0, F_AFTER},
    {"relu", b_relu, 1, {{T4(4, 16, 32, 32), 1, V_AWAY0, 0}}, 1, 0},
    {"leaky_relu", b_leaky, 1, {{T4(4, 16, 32, 32), 1, V_AWAY0, 0}}, 1, 0},
    {"sigmoid", b_sigmoid, 1, {X4(4, 16, 32, 32)}, 1, 0},
    {"tanh", b_tanh, 1, {X4(4, 16, 32, 32)}, 1, 0},
    {"exp", b_exp, 1, {X4(4, 16, 32, 32)}, 1, 0},
    {"scale", b_scale, 1, {X4(4, 16, 32, 32)}, 1, 0},
    {"linear", b_linear, 3, {X2(64, 256), X2(128, 256), X1(128)}, 1, 0},
    {"embedding", b_embed, 2, {{T1(64), 0, V_CLASSES, 10}, X2(10, 32)}, 1, 0},
    {"concat 4-D", b_concat, 2, {X4(4, 16, 32, 32), X4(4, 8, 32, 32)}, 1, 0},
    {"concat 2-D", b_concat, 2, {X2(64, 32), X2(64, 48)}, 1, 0},
    {"add", b_add, 2, {X4(4, 16, 32, 32), X4(4, 16, 32, 32)}, 1, 0},
    {"mul", b_mul, 2, {X4(4, 16, 32, 32), X4(4, 16, 32, 32)}, 1, 0},
    {"reshape", b_reshape, 1, {X4(4, 16, 8, 8)}, 1, 0},
    {"flatten", b_flatten, 1, {X4(4, 16, 8, 8)}, 1, 0},
    {"sum", b_sum, 1, {X4(4, 16, 32, 32)}, 1, 0},
    {"mean", b_mean, 1, {X4(4, 16, 32, 32)}, 1, 0},
    {"dropout p=0.4", b_dropout, 1, {X4(4, 16, 32, 32)}, 1, 0},
    {"cross_entropy 4-D", b_ce, 2, {X4(4, 5, 32, 32), {T3(4, 32, 32), 0, V_CLASSES, 5}}, 1, 0},
    {"cross_entropy 2-D", b_ce, 2, {X2(64, 10), {T1(64), 0, V_CLASSES, 10}}, 1, 0},
    {"bce_with_logits", b_bce, 2, {X4(4, 1, 32, 32), {T4(4, 1, 32, 32), 0, V_PROB, 0}}, 1, 0},
    {"dice multi-class", b_dice, 2, {X4(4, 5, 32, 32), {T3(4, 32, 32), 0, V_CLASSES, 5}}, 1, 0},
    {"dice binary", b_dice, 2, {X4(4, 1, 32, 32), {T4(4, 1, 32, 32), 0, V_BINARY, 0}}, 1, 0},
    {"ce+dice", b_cedice, 2, {X4(4, 5, 32, 32), {T3(4, 32, 32), 0, V_CLASSES, 5}}, 1, 0},
    {"kl_normal", b_kl, 2, {X2(64, 32), X2(64, 32)}, 1, 0},
    {"bernoulli_nll", b_bern, 2, {X4(4, 1, 32, 32), {T4(4, 1, 32, 32), 0, V_PROB, 0}}, 1, 0},
    {"gaussian_nll", b_gnll, 3, {X2(64, 32), {T2(64, 32), 1, V_SMALL, 0}, {T2(64, 32), 0, V_UNIFORM, 0}}, 1, 0},
    {"gaussian_nll shared logvar", b_gnll, 3, {X2(64, 32), {T1(1), 1, V_SMALL, 0}, {T2(64, 32), 0, V_UNIFORM, 0}}, 1, 0},
    {"discretized_logistic", b_dlog, 3, {{T4(8, 3, 16, 16), 1, V_PROB, 0}, {T4(8, 3, 16, 16), 1, V_LOGSCALE, 0}, {T4(8, 3, 16, 16), 0, V_PIXEL, 0}}, 1, 0},
};

static void test_ops(void) {
    uvae_ctx *hctx = uvae_ctx_new(0), *dctx = uvae_ctx_new_on(UVT_DEVICE, 0);
    uvae_rng_seed(&rng, 2025);
    if (!hctx || !dctx) FAIL("ops: cannot make the contexts: %s", uvae_last_error());
    else
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) op_compare(&cases[i], hctx, dctx);
    printf("  ops: largest nmse over %d cases %.3g\n", (int)(sizeof cases / sizeof cases[0]), op_worst);
#ifdef UNETVAE_CUDA
    /* the convolutions again: with the per-image im2col + GEMM kernels, and with TF32 products */
    if (UVT_DEVICE == UVAE_CUDA && hctx && dctx) {
        uvae__cu_conv_im2col(1);
        printf("  convolutions with the per-image im2col + GEMM kernels (uvae__cu_conv_im2col(1)):\n");
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            if (!strncmp(cases[i].name, "conv", 4)) op_compare(&cases[i], hctx, dctx);
        uvae__cu_conv_im2col(0);
        if (uvae__cu_tf32(1) >= 0) {
            nmse_tol = NMSE_TOL_TF32;
            printf("  convolutions in TF32 (uvae__cu_tf32(1); nmse bound %g):\n", nmse_tol);
            for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
                if (!strncmp(cases[i].name, "conv", 4)) op_compare(&cases[i], hctx, dctx);
            uvae__cu_tf32(0);
            nmse_tol = NMSE_TOL;
        } else printf("  convolutions in TF32: SKIP (needs compute capability 8.0 and a build for it: NVCCFLAGS=-arch=sm_90)\n");
    }
#endif
    uvae_ctx_free(hctx);
    uvae_ctx_free(dctx);
}

/* ---------------------------------------------------------------------------------------------
   2. one training step of each model, CPU copy vs GPU copy */
typedef uvae_tensor *(*model_loss_fn)(uvae_ctx *ctx, void *model, uvae_tensor *const *in);

/* hP/dP: the registries of two models built from one seed; dP is moved to the device here.
   f(ctx, model, in) builds the loss from inputs in[] on ctx's device. */
static void model_compare(const char *name, uvae_params *hP, uvae_params *dP, model_loss_fn f,
                          void *hm, void *dm, uvae_tensor *const *hin, uvae_tensor *const *din) {
    uvae_ctx *hctx = uvae_ctx_new(0), *dctx = uvae_ctx_new_on(UVT_DEVICE, 0);
    uvae_optim hopt, dopt;
    uvae_tensor *hloss, *dloss;
    group gl = {0, 0, ""}, gg = {0, 0, ""}, gp = {0, 0, ""};
    int opts = 0;
#ifdef UVT_CUEMU
    unsigned long long ops[2][8] = {{0}};   /* the emulator's counts around the GPU's forward + backward */
#endif
    memset(&hopt, 0, sizeof hopt);
    memset(&dopt, 0, sizeof dopt);
    if (!hctx || !dctx) { FAIL("%s: cannot make the contexts: %s", name, uvae_last_error()); goto done; }
    if (uvae_params_to(dP, UVT_DEVICE) != UVAE_OK) { FAIL("%s: uvae_params_to: %s", name, uvae_last_error()); goto done; }
    if (uvae_optim_init(&hopt, hP, UVAE_ADAM, 1e-3f) != UVAE_OK || (opts = 1, uvae_optim_init(&dopt, dP, UVAE_ADAM, 1e-3f) != UVAE_OK)) {
        FAIL("%s: uvae_optim_init: %s", name, uvae_last_error());
        goto done;
    }
    opts = 2;
    uvae_ctx_reset(hctx, 1);
    uvae_ctx_reset(dctx, 1);
    uvae_params_zero_grad(hP);
    uvae_params_zero_grad(dP);
    hloss = f(hctx, hm, hin);
    if (!hloss || uvae_backward(hctx, hloss) != UVAE_OK) { FAIL("%s: CPU step failed: %s", name, uvae_last_error()); goto done; }
#ifdef UVT_CUEMU
    cuemu_counts(ops[0]);
#endif
    dloss = f(dctx, dm, din);
    if (!dloss || uvae_backward(dctx, dloss) != UVAE_OK) { FAIL("%s: GPU step failed: %s", name, uvae_last_error()); goto done; }
#ifdef UVT_CUEMU
    cuemu_counts(ops[1]);
#endif
    compare(&gl, name, "loss", dloss, hloss, 0);
    for (int i = 0; i < hP->n && i < dP->n; i++)
        if (hP->p[i]->trainable) compare(&gg, name, hP->p[i]->name, &dP->p[i]->t, &hP->p[i]->t, 1);
    /* Both optimizers step from the CPU's gradients. Adam's first step is about lr * sign(g): an
       element whose gradient is zero up to rounding (biases ahead of a batch norm) can take
       opposite signs on the two devices and move its parameter 2 lr apart, which says nothing
       about either device. Gradients are compared above; this isolates the optimizer. */
    for (int i = 0; i < hP->n && i < dP->n; i++)
        if (hP->p[i]->trainable && uvae_same_shape(&hP->p[i]->t, &dP->p[i]->t) && dev_set_grad(&dP->p[i]->t, hP->p[i]->t.grad) != UVAE_OK)
            FAIL("%s: %s: cannot copy the CPU gradient to the GPU: %s", name, hP->p[i]->name, uvae_last_error());
    uvae_optim_step(&hopt, hP, -1);
    uvae_optim_step(&dopt, dP, -1);
    for (int i = 0; i < hP->n && i < dP->n; i++) compare(&gp, name, hP->p[i]->name, &dP->p[i]->t, &hP->p[i]->t, 0);
    if (hP->n != dP->n) FAIL("%s: %d CPU parameters, %d GPU ones", name, hP->n, dP->n);
    printf("  model %-24s loss CPU %.6f GPU %.6f (nmse %.3g); %d gradients, max nmse %.3g (%s); "
           "%d tensors after Adam, max nmse %.3g (%s)\n",
           name, scalar(hloss), scalar(dloss), gl.worst, gg.n, gg.worst, gg.n ? gg.where : "-", gp.n, gp.worst, gp.n ? gp.where : "-");
#ifdef UVT_CUEMU
    /* what a GPU runs per step besides Adam's one launch: each launch and memset costs a few
       microseconds of the host's time whatever its size, which bounds a small model's step */
    printf("  model %-24s forward + loss + backward on the GPU (emulator's counts): %llu kernel launches, %llu memsets\n", name,
           ops[1][6] - ops[0][6], ops[1][7] - ops[0][7]);
#endif
done:
    if (opts > 0) uvae_optim_free(&hopt);
    if (opts > 1) uvae_optim_free(&dopt);
    uvae_ctx_free(hctx);
    uvae_ctx_free(dctx);
}

enum { L_CE, L_DICE };
typedef struct { uvae_unet net; int loss; } unet_model;
static uvae_tensor *unet_loss(uvae_ctx *ctx, void *model, uvae_tensor *const *in) {
    unet_model *m = (unet_model *)model;
    uvae_tensor *logits = uvae_unet_forward(ctx, &m->net, in[0]);
    return m->loss == L_CE ? uvae_cross_entropy(ctx, logits, in[1]) : uvae_dice_loss(ctx, logits, in[1], 1.0f);
}

/* images in [-1, 1), three classes read off the image (so the task is learnable) */
static void unet_data(uvae_tensor *x, uvae_tensor *y, uint64_t seed) {
    uvae_rng r;
    uvae_rng_seed(&r, seed);
    for (size_t i = 0; i < x->size; i++) x->data[i] = 2 * uvae_rng_uniform(&r) - 1;
    for (size_t i = 0; i < y->size; i++) y->data[i] = (float)((x->data[i] > 0) + (x->data[i] > 0.5f));
}

static void test_unet_step(void) {
    static const struct { const char *name; int down, up, loss; } v[4] = {
        {"unet maxpool+transpose", UVAE_DOWN_MAXPOOL, UVAE_UP_TRANSPOSE, L_CE},
        {"unet maxpool+upsample", UVAE_DOWN_MAXPOOL, UVAE_UP_UPSAMPLE, L_DICE},
        {"unet strided+transpose", UVAE_DOWN_STRIDED, UVAE_UP_TRANSPOSE, L_CE},
        {"unet strided+upsample", UVAE_DOWN_STRIDED, UVAE_UP_UPSAMPLE, L_DICE},
    };
    uvae_tensor *hin[2], *din[2] = {0};
    hin[0] = uvae_tensor_new(4, (int[]){2, 3, 64, 64});
    hin[1] = uvae_tensor_new(3, (int[]){2, 64, 64});
    if (!hin[0] || !hin[1]) { FAIL("unet: %s", uvae_last_error()); goto done; }
    unet_data(hin[0], hin[1], 7);
    if (!(din[0] = to_dev(hin[0], 0)) || !(din[1] = to_dev(hin[1], 0))) goto done;
    for (int k = 0; k < 4; k++) {
        uvae_unet_config cfg = {3, 3, 8, 3, v[k].down, v[k].up};
        unet_model hm, dm;
        hm.loss = dm.loss = v[k].loss;
        if (uvae_unet_init(&hm.net, &cfg, 21) != UVAE_OK) { FAIL("%s: init: %s", v[k].name, uvae_last_error()); continue; }
        if (uvae_unet_init(&dm.net, &cfg, 21) != UVAE_OK) { FAIL("%s: init: %s", v[k].name, uvae_last_error()); uvae_unet_free(&hm.net); continue; }
        model_compare(v[k].name, &hm.net.params, &dm.net.params, unet_loss, &hm, &dm, hin, din);
        uvae_unet_free(&hm.net);
        uvae_unet_free(&dm.net);
    }
done:
    for (int k = 0; k < 2; k++) { uvae_tensor_free(hin[k]); uvae_tensor_free(din[k]); }
}

static uvae_tensor *cvae_loss(uvae_ctx *ctx, void *model, uvae_tensor *const *in) {
    uvae_cvae *m = (uvae_cvae *)model;
    return uvae_cvae_loss(ctx, uvae_cvae_forward(ctx, m, in[0], in[1], in[2]), in[0]);
}

static void cvae_step(int likelihood) {
    uvae_cvae_config cfg = {1, 28, 10, 16, 16, 16, 4, UVAE_BERNOULLI};
    uvae_cvae hm, dm;
    const char *name = likelihood == UVAE_DLOGISTIC ? "cvae logistic" : "cvae bernoulli";
    uvae_tensor *hin[3], *din[3] = {0};
    uvae_rng r;
    hin[0] = uvae_tensor_new(4, (int[]){8, 1, 28, 28});
    hin[1] = uvae_tensor_new(1, (int[]){8});
    hin[2] = uvae_tensor_new(2, (int[]){8, 16});
    if (!hin[0] || !hin[1] || !hin[2]) { FAIL("cvae: %s", uvae_last_error()); goto done; }
    uvae_rng_seed(&r, 8);
    cfg.likelihood = likelihood;
    for (size_t i = 0; i < hin[0]->size; i++) hin[0]->data[i] = floorf(uvae_rng_uniform(&r) * 256) / 255;   /* 8-bit pixels */
    for (int n = 0; n < 8; n++) hin[1]->data[n] = (float)(n % 10);
    for (size_t i = 0; i < hin[2]->size; i++) hin[2]->data[i] = uvae_rng_normal(&r);
    for (int k = 0; k < 3; k++)
        if (!(din[k] = to_dev(hin[k], 0))) goto done;
    if (uvae_cvae_init(&hm, &cfg, 5) != UVAE_OK) { FAIL("cvae: init: %s", uvae_last_error()); goto done; }
    if (uvae_cvae_init(&dm, &cfg, 5) != UVAE_OK) { FAIL("cvae: init: %s", uvae_last_error()); uvae_cvae_free(&hm); goto done; }
    model_compare(name, &hm.params, &dm.params, cvae_loss, &hm, &dm, hin, din);
    uvae_cvae_free(&hm);
    uvae_cvae_free(&dm);
done:
    for (int k = 0; k < 3; k++) { uvae_tensor_free(hin[k]); uvae_tensor_free(din[k]); }
}
static void test_cvae_step(void) {
    cvae_step(UVAE_BERNOULLI);
    cvae_step(UVAE_DLOGISTIC);
}

/* the classifier (the CVAE example's judge): dropout draws the same mask on both devices */
static uvae_tensor *classifier_loss(uvae_ctx *ctx, void *model, uvae_tensor *const *in) {
    uvae_rng_seed(uvae_ctx_rng(ctx), 3);
    return uvae_cross_entropy(ctx, uvae_classifier_forward(ctx, (uvae_classifier *)model, in[0]), in[1]);
}
static void test_classifier_step(void) {
    uvae_classifier_config cfg = {3, 32, 10, 8, 3};
    uvae_classifier hm, dm;
    uvae_tensor *hin[2], *din[2] = {0};
    uvae_rng r;
    hin[0] = uvae_tensor_new(4, (int[]){6, 3, 32, 32});
    hin[1] = uvae_tensor_new(1, (int[]){6});
    if (!hin[0] || !hin[1]) { FAIL("classifier: %s", uvae_last_error()); goto done; }
    uvae_rng_seed(&r, 12);
    for (size_t i = 0; i < hin[0]->size; i++) hin[0]->data[i] = uvae_rng_uniform(&r);
    for (int n = 0; n < 6; n++) hin[1]->data[n] = (float)(n * 3 % 10);
    for (int k = 0; k < 2; k++)
        if (!(din[k] = to_dev(hin[k], 0))) goto done;
    if (uvae_classifier_init(&hm, &cfg, 4) != UVAE_OK) { FAIL("classifier: init: %s", uvae_last_error()); goto done; }
    if (uvae_classifier_init(&dm, &cfg, 4) != UVAE_OK) { FAIL("classifier: init: %s", uvae_last_error()); uvae_classifier_free(&hm); goto done; }
    model_compare("classifier (3 blocks)", &hm.params, &dm.params, classifier_loss, &hm, &dm, hin, din);
    uvae_classifier_free(&hm);
    uvae_classifier_free(&dm);
done:
    for (int k = 0; k < 2; k++) { uvae_tensor_free(hin[k]); uvae_tensor_free(din[k]); }
}

/* ---------------------------------------------------------------------------------------------
   3 and 4. training on the GPU: the loss falls; the arena stops growing after the first step */
#define TRAIN_STEPS 20

static void test_gpu_training(void) {
    uvae_unet net;
    uvae_unet_config cfg = {3, 3, 8, 2, UVAE_DOWN_MAXPOOL, UVAE_UP_TRANSPOSE};
    uvae_optim opt;
    uvae_ctx *ctx = uvae_ctx_new_on(UVT_DEVICE, 0);
    uvae_tensor *hx = uvae_tensor_new(4, (int[]){2, 3, 16, 16}), *hy = uvae_tensor_new(3, (int[]){2, 16, 16});
    uvae_tensor *x = NULL, *y = NULL;
    float loss[TRAIN_STEPS];
    size_t cap[TRAIN_STEPS];
#ifdef UVT_CUEMU
    unsigned long long calls[2][8] = {{0}};              /* the emulator's counts after step 2 and the last */
    unsigned long long optim_launches[2] = {0, 0};       /* around the last step's uvae_optim_step */
#endif
    int s, ok = 0, inited = 0;
    if (!ctx || !hx || !hy) { FAIL("training: %s", uvae_last_error()); goto done; }
    unet_data(hx, hy, 5);
    if (!(x = to_dev(hx, 0)) || !(y = to_dev(hy, 0))) goto done;
    if (uvae_unet_init(&net, &cfg, 11) != UVAE_OK) { FAIL("training: init: %s", uvae_last_error()); goto done; }
    inited = 1;
    if (uvae_params_to(&net.params, UVT_DEVICE) != UVAE_OK) { FAIL("training: uvae_params_to: %s", uvae_last_error()); goto done; }
    if (uvae_optim_init(&opt, &net.params, UVAE_ADAM, 1e-2f) != UVAE_OK) { FAIL("training: optim: %s", uvae_last_error()); goto done; }
    inited = 2;
    for (s = 0; s < TRAIN_STEPS; s++) {
        uvae_tensor *l;
        uvae_ctx_reset(ctx, 1);
        uvae_params_zero_grad(&net.params);
        l = uvae_cross_entropy(ctx, uvae_unet_forward(ctx, &net, x), y);
        if (!l || uvae_backward(ctx, l) != UVAE_OK) { FAIL("training: step %d: %s", s + 1, uvae_last_error()); break; }
        loss[s] = scalar(l);
#ifdef UVT_CUEMU
        optim_launches[0] = emu_launches();
#endif
        uvae_optim_step(&opt, &net.params, -1);
#ifdef UVT_CUEMU
        optim_launches[1] = emu_launches();
#endif
        cap[s] = uvae_ctx_arena_capacity(ctx);
#ifdef UVT_CUEMU
        if (s == 1 || s == TRAIN_STEPS - 1) cuemu_counts(calls[s > 1]);
#endif
    }
    if (s == TRAIN_STEPS) {
        uvae_ctx_reset(ctx, 1);                           /* a reset after the last step may still grow it */
        cap[TRAIN_STEPS - 1] = uvae_ctx_arena_capacity(ctx);
        ok = 1;
    }
    if (ok) {
        CHECK(loss[TRAIN_STEPS - 1] < 0.5f * loss[0], "GPU training: loss should fall below half in %d steps: %.4f -> %.4f",
              TRAIN_STEPS, loss[0], loss[TRAIN_STEPS - 1]);
        CHECK(cap[1] > 0 && cap[1] == cap[TRAIN_STEPS - 1], "GPU arena capacity stable: after step 2 %zu bytes, after step %d %zu",
              cap[1], TRAIN_STEPS, cap[TRAIN_STEPS - 1]);
        printf("  training: tiny UNet on the GPU, loss %.4f -> %.4f in %d Adam steps; arena %zu bytes after step 2, %zu after step %d\n",
               loss[0], loss[TRAIN_STEPS - 1], TRAIN_STEPS, cap[1], cap[TRAIN_STEPS - 1], TRAIN_STEPS);
#ifdef UVT_CUEMU
        {   /* steps 3..20 (the batch stays on the device): no allocation, nothing copied in, the loss's 4 bytes back */
            unsigned long long d[8];
            int n = TRAIN_STEPS - 2;
            for (int i = 0; i < 8; i++) d[i] = calls[1][i] - calls[0][i];
            CHECK(d[0] == 0 && d[1] == 0 && d[2] == 0 && d[4] == (unsigned long long)n && d[5] == 4ull * n,
                  "GPU training: over steps 3..%d want no cudaMalloc/cudaFree, no copy in, %d copies of 4 bytes back; got %llu mallocs, "
                  "%llu frees, %llu copies in (%llu bytes), %llu back (%llu bytes)", TRAIN_STEPS, n, d[0], d[1], d[2], d[3], d[4], d[5]);
            printf("  training (emulator's counts): steps 3..%d made %llu cudaMalloc, %llu cudaFree, %llu copies in, %llu copies back of %llu bytes\n",
                   TRAIN_STEPS, d[0], d[1], d[2], d[4], d[5]);
            /* the optimizer is one pass over the slab, not one launch per parameter tensor */
            CHECK(optim_launches[1] - optim_launches[0] == 1, "GPU training: an Adam step over %d parameter tensors should be one launch, got %llu",
                  net.params.n, optim_launches[1] - optim_launches[0]);
            printf("  training (emulator's counts): %.1f kernel launches and %.1f memsets per step (forward, loss, backward, Adam); "
                   "Adam: %llu launch\n", (double)d[6] / n, (double)d[7] / n, optim_launches[1] - optim_launches[0]);
        }
#endif
    }
done:
    if (inited > 1) uvae_optim_free(&opt);
    if (inited > 0) uvae_unet_free(&net);
    uvae_tensor_free(x); uvae_tensor_free(y);
    uvae_tensor_free(hx); uvae_tensor_free(hy);
    uvae_ctx_free(ctx);
}

/* 5. TF32 GEMM against a double-precision product, element by element within TF32's bound */
static void test_tf32_gemm(void) {
#ifdef UNETVAE_CUDA
    static const int shapes[][3] = {{64, 64, 16}, {1, 1, 1}, {100, 37, 300}, {130, 200, 9}, {16, 4096, 576}, {257, 65, 1000}};
    double worst = 0, worst_ratio = 0;
    uvae_rng r;
    if (UVT_DEVICE != UVAE_CUDA) { printf("  tf32 gemm: SKIP (the \"GPU\" side runs on the CPU)\n"); return; }
    if (uvae__cu_tf32(1) < 0) {
        printf("  tf32 gemm: SKIP (needs compute capability 8.0 and a build for it: NVCCFLAGS=-arch=sm_90)\n");
        return;
    }
    uvae_rng_seed(&r, 11);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int c = 0; c < 8; c++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ta = c & 1, tb = c >> 1 & 1, acc = c >> 2;
            int lda = ta ? M : K, ldb = tb ? K : N;
            size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
            float *a = (float *)malloc(na * sizeof(float)), *b = (float *)malloc(nb * sizeof(float));
            float *c0 = (float *)malloc(nc * sizeof(float)), *out = (float *)malloc(nc * sizeof(float));
            float *da = (float *)uvae__cu_malloc(na * sizeof(float)), *db = (float *)uvae__cu_malloc(nb * sizeof(float));
            float *dc = (float *)uvae__cu_malloc(nc * sizeof(float));
            double num = 0, den = 0, rel, ratio = 0, unit = ldexp(1, -10) + (K + 2) * ldexp(1, -22);
            if (!a || !b || !c0 || !out || !da || !db || !dc) { FAIL("tf32 gemm: allocation (%s)", uvae_last_error()); goto next; }
            for (size_t i = 0; i < na; i++) a[i] = uvae_rng_normal(&r);
            for (size_t i = 0; i < nb; i++) b[i] = uvae_rng_normal(&r);
            for (size_t i = 0; i < nc; i++) c0[i] = acc ? uvae_rng_normal(&r) : NAN;   /* acc 0: every element must be written */
            uvae__cu_copy(da, a, na * sizeof(float), 0);
            uvae__cu_copy(db, b, nb * sizeof(float), 0);
            uvae__cu_copy(dc, c0, nc * sizeof(float), 0);
            uvae__cu_gemm(ta, tb, M, N, K, da, lda, db, ldb, dc, N, acc);
            uvae__cu_copy(out, dc, nc * sizeof(float), 1);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double ref = acc ? c0[(size_t)i * N + j] : 0.0, mag = fabs(ref), d;
                    for (int k = 0; k < K; k++) {
                        double p = (double)(ta ? a[(size_t)k * lda + i] : a[(size_t)i * lda + k]) * (tb ? b[(size_t)j * ldb + k] : b[(size_t)k * ldb + j]);
                        ref += p;
                        mag += fabs(p);
                    }
                    d = out[(size_t)i * N + j] - ref;
                    num += d * d;
                    den += ref * ref;
                    d = fabs(d) / (unit * (mag > 1e-30 ? mag : 1e-30));
                    if (!(d <= ratio)) ratio = d;              /* NaN sticks */
                }
            rel = sqrt(num / (den > 1e-30 ? den : 1e-30));
            if (!(rel <= worst)) worst = rel;
            if (!(ratio <= worst_ratio)) worst_ratio = ratio;
            CHECK(ratio <= 1, "tf32 gemm %dx%dx%d ta %d tb %d acc %d: an element off by %.3g of its bound (relative error %.3g)%s", M, N, K,
                  ta, tb, acc, ratio, rel, uvae__cu_take_error() ? " (a CUDA call failed)" : "");
        next:
            free(a); free(b); free(c0); free(out);
            uvae__cu_free(da); uvae__cu_free(db); uvae__cu_free(dc);
        }
    uvae__cu_tf32(0);
    printf("  tf32 gemm: %d cases, every element within %.2g of its bound; relative error ||gpu - ref|| / ||ref|| at most %.3g\n",
           (int)(sizeof shapes / sizeof shapes[0]) * 8, worst_ratio, worst);
#else
    printf("  tf32 gemm: SKIP (not a GPU build)\n");
#endif
}

int main(void) {
    static const struct { const char *name; void (*fn)(void); } parts[] = {
        {"ops", test_ops}, {"unet", test_unet_step}, {"cvae", test_cvae_step}, {"judge", test_classifier_step},
        {"training", test_gpu_training}, {"tf32", test_tf32_gemm},
    };
    clock_t t0 = clock();
    if (UVT_DEVICE == UVAE_CUDA && !uvae_cuda_available()) {
        printf("no CUDA device: %s\n", uvae_last_error());
        return 1;
    }
    if (UVT_DEVICE != UVAE_CUDA) printf("harness self-check: the \"GPU\" side runs on the CPU (UVT_DEVICE=%d)\n", UVT_DEVICE);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        int p = uvt_pass, f = uvt_fail;
        parts[i].fn();
        printf("part %-8s %d passed, %d failed\n", parts[i].name, uvt_pass - p, uvt_fail - f);
        fflush(stdout);
    }
    printf("cpu time: %.1f s\n", (double)(clock() - t0) / CLOCKS_PER_SEC);
    printf("%d passed, %d failed\n", uvt_pass, uvt_fail);
    fflush(stdout);
    return uvt_fail ? 1 : 0;
}
