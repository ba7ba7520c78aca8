/* tests/test_core.c — errors, the arena, determinism, modes, and that the models learn. */
#include "test.h"
#include <string.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static void fill_uniform(uvae_tensor *t, uvae_rng *r, float lo, float hi) {
    for (size_t i = 0; i < t->size; i++) t->data[i] = lo + (hi - lo) * uvae_rng_uniform(r);
}

static void test_errors(void) {
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_tensor *x = uvae_tensor_new(4, (int[]){1, 3, 4, 4}), *w = uvae_tensor_new(4, (int[]){2, 4, 3, 3});
    uvae_tensor *idx = uvae_tensor_new(1, (int[]){2}), *tab = uvae_tensor_new(2, (int[]){3, 2});
    uvae_tensor *t = uvae_tensor_new(3, (int[]){1, 4, 4}), *nanl = uvae_tensor_new_grad(1, (int[]){1}, 1);
    uvae_ctx_reset(ctx, 1);
    CHECK(uvae_last_error() != NULL, "uvae_last_error must never be NULL");
    CHECK(uvae_conv2d(ctx, x, w, NULL, 1, 1) == NULL && strstr(uvae_last_error(), "uvae_conv2d") && strstr(uvae_last_error(), "[2,4,3,3]"),
          "channel mismatch must fail naming the op and shapes, got: %s", uvae_last_error());
    CHECK(uvae_relu(ctx, uvae_conv2d(ctx, x, w, NULL, 1, 1)) == NULL && strstr(uvae_last_error(), "uvae_conv2d"),
          "a NULL input propagates and keeps the first error, got: %s", uvae_last_error());
    CHECK(uvae_backward(ctx, NULL) != UVAE_OK, "backward of a failed forward fails");
    idx->data[1] = 3;
    CHECK(uvae_embedding(ctx, idx, tab) == NULL && strstr(uvae_last_error(), "index 3"), "embedding index out of range: %s", uvae_last_error());
    idx->data[1] = 0.5f;
    CHECK(uvae_embedding(ctx, idx, tab) == NULL, "a fractional embedding index is refused");
    t->data[5] = 3;
    CHECK(uvae_cross_entropy(ctx, x, t) == NULL && strstr(uvae_last_error(), "not a class"), "class 3 of 3 refused: %s", uvae_last_error());
    t->data[5] = -1;
    CHECK(uvae_dice_loss(ctx, x, t, 1) == NULL, "class -1 refused by dice");
    CHECK(uvae_add(ctx, x, w) == NULL && strstr(uvae_last_error(), "uvae_add"), "add of different shapes refused");
    CHECK(uvae_reshape(ctx, x, 2, (int[]){5, 5}) == NULL, "reshape to another size refused");
    CHECK(uvae_dropout(ctx, x, 1.0f) == NULL, "dropout p = 1 refused");
    CHECK(uvae_max_pool2d(ctx, idx, 2, 2) == NULL, "pooling a 1-D tensor refused");
    nanl->data[0] = NAN;
    CHECK(uvae_backward(ctx, nanl) == UVAE_ERR_NUMERIC && strstr(uvae_last_error(), "nan"), "NaN loss refused: %s", uvae_last_error());
    {
        uvae_unet net;
        uvae_unet_config bad = {3, 3, 8, 9, UVAE_DOWN_MAXPOOL, UVAE_UP_TRANSPOSE};
        CHECK(uvae_unet_init(&net, &bad, 1) == UVAE_ERR_ARG && strstr(uvae_last_error(), "depth 9"), "depth 9 refused: %s", uvae_last_error());
    }
    uvae_tensor_free(x); uvae_tensor_free(w); uvae_tensor_free(idx); uvae_tensor_free(tab); uvae_tensor_free(t); uvae_tensor_free(nanl);
    uvae_ctx_free(ctx);
}

/* the backward's gradient buffers: allocated on first use, recycled after the producer, none for a
   branch no gradient reaches */
static void test_grad_recycling(void) {
    enum { N = 4096, DEPTH = 24 };
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_tensor *x = uvae_tensor_new_grad(1, (int[]){N}, 1), *h, *side, *mid = NULL, *loss;
    size_t cap;
    int ok = 1;
    for (size_t i = 0; i < N; i++) x->data[i] = (float)i / N - 0.25f;
    for (int round = 0; round < 2; round++) {   /* the second round runs in the grown arena */
        uvae_ctx_reset(ctx, 1);
        memset(x->grad, 0, N * sizeof(float));
        h = x;
        for (int d = 0; d < DEPTH; d++) {   /* a chain of 0.5 * relu(h): d loss / dx = 0.5^DEPTH where x > 0 */
            h = uvae_scale(ctx, uvae_relu(ctx, h), 0.5f);
            if (d == DEPTH / 2) mid = h;
        }
        side = uvae_exp(ctx, x);                       /* recorded, but not part of the loss */
        loss = uvae_sum(ctx, uvae_reshape(ctx, h, 2, (int[]){64, N / 64}));
        CHECK(side && side->grad && mid && mid->grad, "op outputs are marked for a gradient in the forward");
        CHECK(uvae_backward(ctx, loss) == UVAE_OK, "backward: %s", uvae_last_error());
        for (size_t i = 0; i < N; i++) ok &= x->grad[i] == (x->data[i] > 0 ? ldexpf(1.0f, -DEPTH) : 0.0f);
        CHECK(ok, "the gradient through 48 ops, a reshape and a skipped branch is exact");
        CHECK(!mid->grad && !side->grad && !h->grad && !loss->grad, "op outputs' gradients are gone after the backward");
    }
    /* the arena holds the 2 * DEPTH + 3 activations (and the reshape's view costs none), and only
       a few gradient buffers at a time, not one per activation */
    cap = uvae_ctx_arena_capacity(ctx);
    CHECK(cap < (size_t)(2 * DEPTH + 3 + 4) * N * sizeof(float) * 9 / 8 + 65536,
          "gradients recycled: arena %zu bytes for %d activations of %zu bytes", cap, 2 * DEPTH + 3, (size_t)N * sizeof(float));
    uvae_tensor_free(x);
    uvae_ctx_free(ctx);
}

/* n training steps of a tiny UNet; losses out; returns the arena capacity after each step */
static void unet_steps(int down, int up, uint64_t seed, int n, float *losses, size_t *cap) {
    uvae_unet net;
    uvae_unet_config cfg = {3, 3, 4, 2, down, up};
    uvae_optim opt;
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_tensor *x = uvae_tensor_new(4, (int[]){2, 3, 16, 16}), *y = uvae_tensor_new(3, (int[]){2, 16, 16});
    uvae_rng r;
    uvae_rng_seed(&r, 5);
    fill_uniform(x, &r, -1, 1);
    for (size_t i = 0; i < y->size; i++) y->data[i] = (float)((x->data[i] > 0) + (x->data[i] > 0.5f));  /* learnable from the input */
    CHECK(uvae_unet_init(&net, &cfg, seed) == UVAE_OK, "unet init: %s", uvae_last_error());
    uvae_optim_init(&opt, &net.params, UVAE_ADAM, 1e-2f);
    for (int s = 0; s < n; s++) {
        uvae_tensor *loss;
        uvae_ctx_reset(ctx, 1);
        uvae_params_zero_grad(&net.params);
        loss = uvae_cross_entropy(ctx, uvae_unet_forward(ctx, &net, x), y);
        losses[s] = loss ? loss->data[0] : NAN;
        if (uvae_backward(ctx, loss) != UVAE_OK) { CHECK(0, "backward: %s", uvae_last_error()); break; }
        uvae_optim_step(&opt, &net.params, -1);
        if (cap) cap[s] = uvae_ctx_arena_capacity(ctx);
    }
    uvae_ctx_reset(ctx, 1);
    if (cap) cap[n - 1] = uvae_ctx_arena_capacity(ctx);
    uvae_optim_free(&opt);
    uvae_unet_free(&net);
    uvae_tensor_free(x); uvae_tensor_free(y);
    uvae_ctx_free(ctx);
}

static void test_training(void) {
    const char *names[4] = {"MaxPool+Transpose", "MaxPool+Upsample", "Strided+Transpose", "Strided+Upsample"};
    float a[40], b[40];
    size_t cap[40];
    for (int v = 0; v < 4; v++) {
        unet_steps(v / 2, v % 2, 11, 40, a, v == 0 ? cap : NULL);
        CHECK(a[39] < 0.4f * a[0], "%s: loss should fall on a learnable task: %.4f -> %.4f", names[v], a[0], a[39]);
    }
    /* the arena grows during the first step(s), then stays put */
    CHECK(cap[1] > 0 && cap[39] == cap[2], "arena capacity stable: step 2 %zu bytes, step 40 %zu", cap[2], cap[39]);
    /* same seed -> bit-identical losses; another seed -> different ones */
    unet_steps(0, 0, 11, 5, a, NULL);
    unet_steps(0, 0, 11, 5, b, NULL);
    CHECK(memcmp(a, b, 5 * sizeof(float)) == 0, "same seed must give bit-identical losses");
    unet_steps(0, 0, 12, 5, b, NULL);
    CHECK(memcmp(a, b, 5 * sizeof(float)) != 0, "another seed gives other losses");
#ifdef _OPENMP
    {   /* and the thread count does not change them: every sum has a fixed order */
        int threads = omp_get_max_threads();
        unet_steps(1, 1, 11, 5, a, NULL);
        omp_set_num_threads(threads == 1 ? 3 : 1);
        unet_steps(1, 1, 11, 5, b, NULL);
        omp_set_num_threads(threads);
        CHECK(memcmp(a, b, 5 * sizeof(float)) == 0, "losses must not depend on the thread count");
    }
#endif
}

static void test_cvae(void) {
    uvae_cvae m;
    uvae_cvae_config cfg = {1, 12, 4, 4, 6, 4, 2, UVAE_BERNOULLI};
    uvae_optim opt;
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_tensor *x = uvae_tensor_new(4, (int[]){8, 1, 12, 12}), *y = uvae_tensor_new(1, (int[]){8});
    float first = 0, last = 0;
    uvae_rng r;
    uvae_rng_seed(&r, 3);
    for (int n = 0; n < 8; n++) {                        /* class k: a bright band at row 3k */
        y->data[n] = (float)(n % 4);
        for (int i = 0; i < 144; i++) x->data[n * 144 + i] = (i / 12 / 3 == n % 4) ? 0.9f : 0.1f * uvae_rng_uniform(&r);
    }
    CHECK(uvae_cvae_init(&m, &cfg, 1) == UVAE_OK, "cvae init: %s", uvae_last_error());
    uvae_optim_init(&opt, &m.params, UVAE_ADAM, 3e-3f);
    for (int s = 0; s < 60; s++) {
        uvae_tensor *loss;
        uvae_ctx_reset(ctx, 1);
        uvae_params_zero_grad(&m.params);
        loss = uvae_cvae_loss(ctx, uvae_cvae_forward(ctx, &m, x, y, NULL), x);
        if (uvae_backward(ctx, loss) != UVAE_OK) { CHECK(0, "cvae backward: %s", uvae_last_error()); break; }
        if (s == 0) first = loss->data[0];
        last = loss->data[0];
        uvae_optim_step(&opt, &m.params, -1);
    }
    CHECK(last < 0.7f * first, "cvae loss should fall: %.2f -> %.2f", first, last);
    /* eval mode: no tape, so backward is refused with a reason */
    uvae_ctx_reset(ctx, 0);
    {
        uvae_tensor *loss = uvae_cvae_loss(ctx, uvae_cvae_forward(ctx, &m, x, y, NULL), x);
        CHECK(loss && uvae_backward(ctx, loss) == UVAE_ERR_ARG && strstr(uvae_last_error(), "eval"), "eval-mode backward refused: %s", uvae_last_error());
    }
    uvae_optim_free(&opt);
    uvae_cvae_free(&m);
    uvae_tensor_free(x); uvae_tensor_free(y);
    uvae_ctx_free(ctx);
}

static void test_rng_params(void) {
    uvae_rng r;
    double s = 0, ss = 0, mn = 1, mx = 0;
    uvae_unet net;
    uvae_unet_config cfg = {3, 2, 8, 2, UVAE_DOWN_MAXPOOL, UVAE_UP_TRANSPOSE};
    uvae_param *p;
    uvae_rng_seed(&r, 1);
    for (int i = 0; i < 100000; i++) {
        double u = uvae_rng_uniform(&r), g = uvae_rng_normal(&r);
        if (u < mn) mn = u;
        if (u > mx) mx = u;
        s += g; ss += g * g;
    }
    CHECK(mn >= 0 && mx < 1 && mn < 1e-3 && mx > 0.999, "uniform in [0,1): min %g max %g", mn, mx);
    CHECK(fabs(s / 1e5) < 0.02 && fabs(ss / 1e5 - 1) < 0.02, "normal: mean %g var %g", s / 1e5, ss / 1e5);
    CHECK(uvae_unet_init(&net, &cfg, 1) == UVAE_OK, "unet init");
    p = uvae_params_find(&net.params, "outc.weight");
    CHECK(p && p->t.ndim == 4 && p->t.shape[0] == 2 && p->t.shape[1] == 8 && p->trainable, "outc.weight [2,8,1,1]");
    p = uvae_params_find(&net.params, "down1.conv.bn1.running_var");
    CHECK(p && !p->trainable && p->t.data[0] == 1.0f && p->t.grad == NULL, "running_var is a buffer initialised to 1");
    /* 29634 = the same model built from torch.nn layers, counted by PyTorch */
    CHECK(uvae_params_count(&net.params) == 29634, "trainable parameters: %zu", uvae_params_count(&net.params));
    {   /* the slab: trainable slices first, 64-byte aligned, in [0, ntrain); the buffers after it */
        const uvae_params *P = &net.params;
        int bad = 0, nbuf = 0;
        for (int i = 0; i < P->n; i++) {
            const uvae_param *q = P->p[i];
            size_t end = q->offset + q->t.size;
            nbuf += !q->trainable;
            if (q->offset % 16 || q->t.data != P->data + q->offset || (q->trainable ? end > P->ntrain : q->offset < P->ntrain) ||
                end > P->total)
                bad++;
        }
        CHECK(bad == 0 && nbuf > 0 && P->ntrain >= uvae_params_count(P) && P->ntrain < P->total,
              "slab layout: %d of %d slices misplaced (ntrain %zu, total %zu, %d buffers)", bad, P->n, P->ntrain, P->total, nbuf);
    }
    {   /* an Adam step touches the trainable part only: buffers and the zeros between slices stay */
        uvae_params *P = &net.params;
        uvae_optim o;
        float *before = (float *)malloc(P->total * sizeof(float));
        int moved_buf = 0, moved_pad = 0, moved_w = 0;
        if (before && uvae_optim_init(&o, P, UVAE_ADAMW, 1e-2f) == UVAE_OK) {
            char *is_data = (char *)calloc(P->total, 1);
            for (size_t j = 0; j < P->total; j++) P->grad[j] = 0;
            for (int i = 0; i < P->n; i++)
                if (P->p[i]->trainable)
                    for (size_t j = 0; j < P->p[i]->t.size; j++) P->p[i]->t.grad[j] = 0.5f - (float)(j % 3) * 0.25f + 0.1f;
            memcpy(before, P->data, P->total * sizeof(float));
            CHECK(uvae_optim_step(&o, P, -1) == UVAE_OK && uvae_optim_step(&o, P, -1) == UVAE_OK, "two AdamW steps");
            for (int i = 0; i < P->n && is_data; i++)
                for (size_t j = 0; j < P->p[i]->t.size; j++) {
                    size_t at = P->p[i]->offset + j;
                    is_data[at] = 1;
                    if (P->p[i]->trainable) moved_w += P->data[at] != before[at];
                    else moved_buf += P->data[at] != before[at];
                }
            for (size_t j = 0; j < P->total && is_data; j++)
                if (!is_data[j]) moved_pad += P->data[j] != 0 || o.m[j] != 0 || (j < P->ntrain && o.v[j] != 0);
            CHECK(is_data && moved_w == (int)uvae_params_count(P) && moved_buf == 0 && moved_pad == 0,
                  "optimizer over the slab: %d of %zu trainable values moved (want all), %d buffer values, %d padding values changed",
                  moved_w, uvae_params_count(P), moved_buf, moved_pad);
            free(is_data);
            uvae_optim_free(&o);
        } else CHECK(0, "optimizer over the slab: %s", uvae_last_error());
        free(before);
    }
    uvae_unet_free(&net);
}

/* The packed GEMM behind conv2d, conv_transpose2d and linear, with every micro-kernel this CPU has
   (generic C, AVX2, AVX-512), against plain loops in double. The shapes are large enough for the
   packed path, with edges that are not multiples of the 12 x 32 tile, more than one 256-deep
   slice, and a batch that conv2d splits into chunks. */
static double conv_ref_out(const float *x, const float *w, int Ci, int H, int W, int k, int s, int p, int n, int co, int oh, int ow) {
    double acc = 0;
    for (int ci = 0; ci < Ci; ci++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                int ih = oh * s - p + ki, iw = ow * s - p + kj;
                if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                    acc += (double)w[((co * Ci + ci) * k + ki) * k + kj] * x[((size_t)(n * Ci + ci) * H + ih) * W + iw];
            }
    return acc;
}
static double max_rel_err(const float *a, const double *ref, size_t n) {
    double scale = 0, err = 0;
    for (size_t i = 0; i < n; i++) scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
    for (size_t i = 0; i < n; i++) err = fabs(a[i] - ref[i]) > err ? fabs(a[i] - ref[i]) : err;
    return err / (scale > 0 ? scale : 1);
}
/* max |a - b| over max |b| */
static double rel_diff(const float *a, const float *b, size_t n) {
    double m = 0, d = 0;
    for (size_t i = 0; i < n; i++) { m = fmax(m, fabs(b[i])); d = fmax(d, fabs((double)a[i] - b[i])); }
    return d / (m > 0 ? m : 1);
}
/* conv2d(x, w) and conv_transpose2d(xt, wt), stride S (1 unless conv_pair_new_s), padding P,
   with random inputs, run forward and backward into a loss sum(y * ry) + sum(out_t * rt); each
   run (up to 5) keeps its six results, in the order conv2d y, dx, dw, convT out, dx, dw, in v[run]. */
typedef struct conv_pair {
    int N, Ci, H, W, Co, K, S, P;
    uvae_tensor *x, *w, *xt, *wt, *ry, *rt;
    float *v[5][6];
    size_t n[6];
} conv_pair;
static int conv_pair_new_s(conv_pair *c, uvae_rng *r, int N, int Ci, int H, int W, int Co, int K, int S, int P) {
    int Ho = (H + 2 * P - K) / S + 1, Wo = (W + 2 * P - K) / S + 1;
    int Ht = (Ho - 1) * S - 2 * P + K, Wt = (Wo - 1) * S - 2 * P + K;   /* convT's output: H, W, or less */
    memset(c, 0, sizeof *c);
    c->N = N; c->Ci = Ci; c->H = H; c->W = W; c->Co = Co; c->K = K; c->S = S; c->P = P;
    c->x = uvae_tensor_new_grad(4, (int[]){N, Ci, H, W}, 1); c->w = uvae_tensor_new_grad(4, (int[]){Co, Ci, K, K}, 1);
    c->xt = uvae_tensor_new_grad(4, (int[]){N, Co, Ho, Wo}, 1); c->wt = uvae_tensor_new_grad(4, (int[]){Co, Ci, K, K}, 1);
    c->ry = uvae_tensor_new(4, (int[]){N, Co, Ho, Wo}); c->rt = uvae_tensor_new(4, (int[]){N, Ci, Ht, Wt});
    if (!c->x || !c->w || !c->xt || !c->wt || !c->ry || !c->rt) return 0;
    c->n[0] = c->ry->size; c->n[1] = c->x->size; c->n[2] = c->w->size; c->n[3] = c->rt->size; c->n[4] = c->xt->size; c->n[5] = c->wt->size;
    fill_uniform(c->x, r, -1, 1); fill_uniform(c->w, r, -0.5f, 0.5f); fill_uniform(c->xt, r, -1, 1); fill_uniform(c->wt, r, -0.5f, 0.5f);
    fill_uniform(c->ry, r, -1, 1); fill_uniform(c->rt, r, -1, 1);
    return 1;
}
static int conv_pair_new(conv_pair *c, uvae_rng *r, int N, int Ci, int H, int W, int Co, int K, int P) {
    return conv_pair_new_s(c, r, N, Ci, H, W, Co, K, 1, P);
}
static int conv_pair_run(conv_pair *c, uvae_ctx *ctx, int run) {   /* 0: out of memory or an error */
    uvae_tensor *o, *ot, *loss;
    uvae_ctx_reset(ctx, 1);
    memset(c->x->grad, 0, c->x->size * sizeof(float));
    for (size_t i = 0; i < c->xt->size; i++) c->xt->grad[i] = 0.25f;          /* the backward adds to what is there */
    for (size_t i = 0; i < c->w->size; i++) c->w->grad[i] = c->wt->grad[i] = -0.5f;
    o = uvae_conv2d(ctx, c->x, c->w, NULL, c->S, c->P);                        /* [N, Co, Ho, Wo] */
    ot = uvae_conv_transpose2d(ctx, c->xt, c->wt, NULL, c->S, c->P);            /* [N, Ci, Ht, Wt] */
    loss = uvae_add(ctx, uvae_sum(ctx, uvae_mul(ctx, o, c->ry)), uvae_sum(ctx, uvae_mul(ctx, ot, c->rt)));
    if (!loss || uvae_backward(ctx, loss) != UVAE_OK) return 0;
    for (int q = 0; q < 6; q++) {
        const float *src = q == 0 ? o->data : q == 1 ? c->x->grad : q == 2 ? c->w->grad : q == 3 ? ot->data : q == 4 ? c->xt->grad : c->wt->grad;
        if (!(c->v[run][q] = (float *)malloc(c->n[q] * sizeof(float)))) return 0;
        memcpy(c->v[run][q], src, c->n[q] * sizeof(float));
    }
    return 1;
}
static void conv_pair_free(conv_pair *c) {
    for (int run = 0; run < 5; run++)
        for (int q = 0; q < 6; q++) free(c->v[run][q]);
    uvae_tensor_free(c->x); uvae_tensor_free(c->w); uvae_tensor_free(c->xt); uvae_tensor_free(c->wt);
    uvae_tensor_free(c->ry); uvae_tensor_free(c->rt);
}

/* The stride-1 convolution without im2col (conv_fwd_implicit, conv_bwd_w_implicit) against im2col
   + GEMM (+ col2im), for every micro-kernel, over kernel sizes, paddings, widths around the NR = 32
   threshold and ragged channel counts: conv2d's forward and conv_transpose2d's data gradient (a
   conv2d forward that adds into dx) bit for bit; conv2d's data gradient and conv_transpose2d's
   forward (both a convolution with the flipped weights there, a col2im here) and both weight
   gradients to float rounding. */
static void test_conv_implicit(void) {
    static const int shapes[][7] = {   /* N, Ci, H, W, Co, k, p; each big enough for the packed GEMM */
        {2, 3, 5, 32, 12, 3, 1}, {3, 7, 6, 33, 13, 3, 1}, {1, 40, 4, 47, 25, 1, 0}, {2, 4, 9, 36, 7, 5, 2},
        {1, 30, 3, 40, 40, 3, 0}, {2, 40, 6, 64, 1, 3, 1}};
    static const char *names[4] = {"", "generic", "avx2", "avx512"};
    int base = uvae__cpu_kernel(-1), was = uvae__cpu_conv_implicit(-1), wg = uvae__cpu_conv_winograd(0), runs = 0;
    double worst = 0;
    uvae_rng r;
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_rng_seed(&r, 2024);
    for (int kind = 1; kind <= 3; kind++) {
        if (uvae__cpu_kernel(kind) != kind) continue;
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int *S = shapes[si];
            conv_pair c;
            int ok = conv_pair_new(&c, &r, S[0], S[1], S[2], S[3], S[4], S[5], S[6]);
            for (int on = 0; on < 2 && ok; on++) {
                uvae__cpu_conv_implicit(on);                                  /* before the ops: it sizes their scratch */
                ok = conv_pair_run(&c, ctx, on);
            }
            CHECK(ok, "conv implicit %s shape %zu ran: %s", names[kind], si, ok ? "" : uvae_last_error());
            if (ok) {   /* conv2d's dx and convT's out are a flipped convolution here, a col2im there */
                double e1 = rel_diff(c.v[1][1], c.v[0][1], c.n[1]), e2 = rel_diff(c.v[1][3], c.v[0][3], c.n[3]);
                double e3 = rel_diff(c.v[1][2], c.v[0][2], c.n[2]), e4 = rel_diff(c.v[1][5], c.v[0][5], c.n[5]);
                CHECK(!memcmp(c.v[0][0], c.v[1][0], c.n[0] * sizeof(float)) && !memcmp(c.v[0][4], c.v[1][4], c.n[4] * sizeof(float)),
                      "conv implicit %s, x [%d,%d,%d,%d] w [%d,%d,%d,%d] pad %d: conv2d out and convT dx bitwise equal to im2col + GEMM",
                      names[kind], c.N, c.Ci, c.H, c.W, c.Co, c.Ci, c.K, c.K, c.P);
                CHECK(e1 < 2e-6 && e2 < 2e-6, "conv implicit %s, x [%d,%d,%d,%d] w [%d,%d,%d,%d] pad %d: conv2d dx and convT out "
                      "within %.2g, %.2g of im2col + GEMM + col2im", names[kind], c.N, c.Ci, c.H, c.W, c.Co, c.Ci, c.K, c.K, c.P, e1, e2);
                CHECK(e3 < 2e-6 && e4 < 2e-6, "conv implicit %s, x [%d,%d,%d,%d] w [%d,%d,%d,%d] pad %d: conv2d dw and convT dw "
                      "within %.2g, %.2g of im2col + GEMM", names[kind], c.N, c.Ci, c.H, c.W, c.Co, c.Ci, c.K, c.K, c.P, e3, e4);
                worst = fmax(worst, fmax(fmax(e1, e2), fmax(e3, e4)));
                runs++;
            }
            conv_pair_free(&c);
        }
    }
    uvae__cpu_conv_implicit(was);
    uvae__cpu_conv_winograd(wg);
    uvae__cpu_kernel(base);
    CHECK(runs >= 6, "conv implicit: %d comparisons ran", runs);
    printf("  conv without im2col: %d shape x kernel runs; data and weight gradients within %.2g of im2col + GEMM\n", runs, worst);
    uvae_ctx_free(ctx);
}

/* The forward, data and weight gradients with the output pixels as the GEMM's rows
   (conv_fwd_direct, conv_bwd_x_direct, conv_bwd_w_direct: strided, or stride 1 too narrow for
   the implicit GEMM) against im2col + GEMM (+ col2im), for every micro-kernel: all six results of
   conv_pair bit for bit (conv2d's dx and convT's forward are the data gradient; convT's dx is a
   conv2d forward that adds into dx). Strides 1-3, ragged channel and pixel panels, more than KC
   taps or output channels (two slices), several chunks of images in each, a window with fewer
   taps than NR (the weight gradient's im2col path), one with more than 256 output pixels (the
   data gradient's im2col path), and rows of 33-70 columns, 7-tap runs and 2x2 stride-2 windows
   (the AVX-512 col2im's 16-column segments, runs split by panels, runs that do not overlap). */
static void test_conv_direct(void) {
    static const int shapes[][8] = {   /* N, Ci, H, W, Co, k, s, p */
        {3, 5, 9, 9, 32, 4, 2, 1}, {2, 40, 16, 15, 61, 3, 2, 1}, {130, 4, 16, 16, 32, 4, 2, 1}, {3, 80, 70, 69, 24, 3, 2, 1},
        {4, 16, 10, 10, 32, 3, 1, 1}, {4, 32, 8, 8, 24, 1, 1, 0}, {2, 6, 13, 11, 48, 5, 3, 2}, {3, 2, 28, 28, 32, 4, 2, 1},
        {130, 2, 32, 32, 32, 4, 2, 1}, {2, 8, 13, 13, 288, 3, 2, 1}, {2, 5, 6, 70, 32, 4, 2, 1}, {2, 3, 9, 40, 32, 7, 3, 3},
        {2, 6, 7, 33, 32, 2, 2, 0}};
    static const char *names[4] = {"", "generic", "avx2", "avx512"};
    int base = uvae__cpu_kernel(-1), was = uvae__cpu_conv_direct(-1), runs = 0;
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_rng r;
    uvae_rng_seed(&r, 2025);
    for (int kind = 1; kind <= 3; kind++) {
        if (uvae__cpu_kernel(kind) != kind) continue;
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int *S = shapes[si];
            conv_pair c;
            int ok = conv_pair_new_s(&c, &r, S[0], S[1], S[2], S[3], S[4], S[5], S[6], S[7]), same = 1;
            for (int on = 0; on < 2 && ok; on++) {
                uvae__cpu_conv_direct(on);                                    /* before the ops: it sizes their scratch */
                ok = conv_pair_run(&c, ctx, on);
            }
            CHECK(ok, "conv direct %s shape %zu ran: %s", names[kind], si, ok ? "" : uvae_last_error());
            for (int q = 0; q < 6 && ok; q++) same &= !memcmp(c.v[0][q], c.v[1][q], c.n[q] * sizeof(float));
            CHECK(!ok || same, "conv direct %s, x [%d,%d,%d,%d] w [%d,%d,%d,%d] stride %d pad %d: conv2d and convT forward and "
                  "gradients bitwise equal to im2col + GEMM", names[kind], c.N, c.Ci, c.H, c.W, c.Co, c.Ci, c.K, c.K, c.S, c.P);
            runs += ok;
            conv_pair_free(&c);
        }
    }
    uvae__cpu_conv_direct(was);
    uvae__cpu_kernel(base);
    CHECK(runs >= 8, "conv direct: %d comparisons ran", runs);
    printf("  conv with pixels as rows: %d shape x kernel runs, bitwise equal to im2col + GEMM\n", runs);
    uvae_ctx_free(ctx);
}

/* Winograd F(2x2, 3x3) and F(4x4, 3x3) (3x3, stride 1, padding 1, >= 32 channels, >= 64 tiles)
   against the direct paths, for conv2d and conv_transpose2d (whose forward is a data gradient: the
   flipped weights), forward, data and weight gradients, with every micro-kernel: sizes that are and
   are not multiples of the tile, channels that fill the micro-kernel's tiles raggedly, chunks of
   several tile rows and rows wider than one transform run (600 and 1030 columns). F(4x4)'s larger
   constants round more: about 10x F(2x2)'s differences, and bounds to match. */
static void test_conv_winograd(void) {
    static const int shapes[][5] = {   /* N, Ci, H, W, Co; each with >= 256 tiles of 4x4 but the last (64) */
        {4, 32, 32, 32, 32}, {3, 40, 47, 33, 35}, {1, 64, 9, 600, 33}, {16, 37, 16, 16, 130}, {1, 32, 66, 67, 32},
        {1, 32, 5, 1030, 32}, {4, 48, 16, 16, 40}};
    static const char *names[4] = {"", "generic", "avx2", "avx512"};
    int base = uvae__cpu_kernel(-1), was = uvae__cpu_conv_winograd(-1), runs = 0;
    double worst[2] = {0, 0};
    uvae_rng r;
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_rng_seed(&r, 77);
    for (int kind = 1; kind <= 3; kind++) {
        if (uvae__cpu_kernel(kind) != kind) continue;
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int *S = shapes[si];
            conv_pair c;
            int ok = conv_pair_new(&c, &r, S[0], S[1], S[2], S[3], S[4], 3, 1);
            for (int run = 0; run < 3 && ok; run++) {                         /* direct, F(2x2), F(4x4) */
                uvae__cpu_conv_winograd(run == 0 ? 0 : 2 * run);              /* before the ops: it sizes their scratch */
                ok = conv_pair_run(&c, ctx, run);
            }
#ifdef _OPENMP
            for (int run = 3; run < 5 && ok; run++) {   /* and again with another thread count: the same bits */
                int threads = omp_get_max_threads(), same = 1;
                uvae__cpu_conv_winograd(2 * (run - 2));
                omp_set_num_threads(threads == 1 ? 3 : 1);
                ok = conv_pair_run(&c, ctx, run);
                omp_set_num_threads(threads);
                for (int q = 0; q < 6 && ok; q++) same = same && !memcmp(c.v[run - 2][q], c.v[run][q], c.n[q] * sizeof(float));
                CHECK(!ok || same, "conv winograd F(%dx%d) %s shape %zu: bit-identical with another thread count", 2 * (run - 2),
                      2 * (run - 2), names[kind], si);
            }
#endif
            CHECK(ok, "conv winograd %s shape %zu ran: %s", names[kind], si, ok ? "" : uvae_last_error());
            for (int t = 1; t <= 2 && ok; t++) {
                double e[6], m = 0, tol = t == 1 ? 2e-6 : 2.5e-5, tolw = t == 1 ? 5e-6 : 5e-5;
                for (int q = 0; q < 6; q++) m = fmax(m, e[q] = rel_diff(c.v[t][q], c.v[0][q], c.n[q]));
                /* dw sums over every tile, then transforms back: a little more rounding */
                CHECK(fmax(fmax(e[0], e[1]), fmax(e[3], e[4])) < tol && fmax(e[2], e[5]) < tolw &&
                      e[0] > 0 && e[1] > 0 && e[2] > 0 && e[3] > 0 && e[4] > 0 && e[5] > 0,
                      "conv winograd F(%dx%d) %s, x [%d,%d,%d,%d] w [%d,%d,3,3]: conv2d y dx dw %.2g %.2g %.2g, convT out dx dw "
                      "%.2g %.2g %.2g from the direct paths (within %.2g, dw %.2g, and not bitwise: the Winograd path ran)", 2 * t,
                      2 * t, names[kind], c.N, c.Ci, c.H, c.W, c.Co, c.Ci, e[0], e[1], e[2], e[3], e[4], e[5], tol, tolw);
                worst[t - 1] = fmax(worst[t - 1], m);
                runs++;
            }
            conv_pair_free(&c);
        }
    }
    uvae__cpu_kernel(base);
    /* the tile size the shape picks: at 64x64 (16 tiles of 4x4 a row) F(4x4) throughout, the same
       bits as F(4x4) asked for; at 16x16 and batch 4 (64 tiles of 4x4, 4 a row) F(4x4) for the
       forward and the data gradient, but the direct weight gradient (short rows, under 128
       channels): its bits F(4x4)'s but for dw; at 8x8 (64 tiles of 2x2) F(2x2) for the forward and
       the data gradient but the direct weight gradient (F(2x2) only from 256 tiles): its bits the
       direct paths' for dw only */
    for (int si = 0; si < 3; si++) {
        static const int sizes[3] = {64, 16, 8}, batch[3] = {1, 4, 4};
        static const int want[3][6] = {{1, 1, 1, 1, 1, 1}, {1, 1, 0, 1, 1, 0}, {0, 0, 1, 0, 0, 1}};
        conv_pair c;
        int S = sizes[si], ok = conv_pair_new(&c, &r, batch[si], 48, S, S, 40, 3, 1), same[6] = {0}, match = 1;
        for (int run = 0; run < 2 && ok; run++) {
            uvae__cpu_conv_winograd(run == 1 ? 1 : si == 2 ? 0 : 4);
            ok = conv_pair_run(&c, ctx, run);
        }
        for (int q = 0; q < 6 && ok; q++) {
            same[q] = !memcmp(c.v[0][q], c.v[1][q], c.n[q] * sizeof(float));
            match = match && same[q] == want[si][q];
        }
        CHECK(ok && match, "conv winograd by shape, x [%d,48,%d,%d] w [40,48,3,3]: conv2d y dx dw, convT out dx dw bitwise equal to %s: "
              "%d %d %d, %d %d %d (want %d %d %d, %d %d %d)", batch[si], S, S, si == 2 ? "the direct paths" : "F(4x4)", same[0], same[1],
              same[2], same[3], same[4], same[5], want[si][0], want[si][1], want[si][2], want[si][3], want[si][4], want[si][5]);
        conv_pair_free(&c);
    }
    uvae__cpu_conv_winograd(was);
    CHECK(runs >= 12, "conv winograd: %d comparisons ran", runs);
    printf("  conv as Winograd: %d shape x kernel x tile runs; outputs and gradients within %.2g (F(2x2,3x3)), %.2g (F(4x4,3x3)) "
           "of the direct paths\n", runs, worst[0], worst[1]);
    uvae_ctx_free(ctx);
}

#ifdef _OPENMP
/* conv2d(x, w) once more with another thread count: the same bits as y0 (a copy: the reset frees y)? */
static int conv_same_bits_other_threads(uvae_ctx *ctx, uvae_tensor *x, uvae_tensor *w, int s, int p, const float *y0, size_t ny) {
    int threads = omp_get_max_threads();
    uvae_tensor *y;
    omp_set_num_threads(threads == 1 ? 3 : 1);
    uvae_ctx_reset(ctx, 0);
    y = uvae_conv2d(ctx, x, w, NULL, s, p);
    omp_set_num_threads(threads);
    return y && !memcmp(y0, y->data, ny * sizeof(float));
}
#endif

/* Run with n threads: threads_push returns the count to go back to (threads_pop), or 0 where n > 1
   cannot be had (a build without OpenMP). */
static int threads_push(int n) {
#ifdef _OPENMP
    int was = omp_get_max_threads();
    omp_set_num_threads(n);
    return was;
#else
    return n > 1 ? 0 : 1;
#endif
}
static void threads_pop(int was) {
#ifdef _OPENMP
    omp_set_num_threads(was);
#else
    (void)was;
#endif
}

/* A dense layer's weight gradient with many outputs and few inputs (dW = dy^T x, 700 x 26: the
   GEMM takes its transpose x^T dy, few rows with dy read in place, and adds it into dW): against
   double, added to what dW held, with every micro-kernel, and the same bits on 1-3 threads. */
static void test_linear_tall(void) {
    enum { B = 40, I = 26, O = 700 };
    static const char *names[4] = {"", "generic", "avx2", "avx512"};
    uvae_tensor *x = uvae_tensor_new(2, (int[]){B, I}), *w = uvae_tensor_new_grad(2, (int[]){O, I}, 1), *ry = uvae_tensor_new(2, (int[]){B, O});
    double *ref = (double *)malloc((size_t)O * I * sizeof(double));
    float *first = (float *)malloc((size_t)O * I * sizeof(float));
    uvae_ctx *ctx = uvae_ctx_new(0);
    int base = uvae__cpu_kernel(-1);
    uvae_rng r;
    uvae_rng_seed(&r, 31);
    fill_uniform(x, &r, -1, 1); fill_uniform(w, &r, -0.2f, 0.2f); fill_uniform(ry, &r, -1, 1);
    for (int o = 0; o < O; o++)
        for (int i = 0; i < I; i++) {
            double acc = -0.5;                                    /* what dW held */
            for (int b = 0; b < B; b++) acc += (double)ry->data[b * O + o] * x->data[b * I + i];
            ref[o * I + i] = acc;
        }
    for (int kind = 1; kind <= 3; kind++) {
        if (uvae__cpu_kernel(kind) != kind) continue;
        for (int threads = 1; threads <= 3; threads++) {
            uvae_tensor *y;
            int was = threads_push(threads), ok;
            if (!was) break;
            uvae_ctx_reset(ctx, 1);
            for (size_t i = 0; i < w->size; i++) w->grad[i] = -0.5f;
            y = uvae_linear(ctx, x, w, NULL);
            ok = y && uvae_backward(ctx, uvae_sum(ctx, uvae_mul(ctx, y, ry))) == UVAE_OK;
            threads_pop(was);
            CHECK(ok, "linear tall %s, %d threads: ran: %s", names[kind], threads, ok ? "" : uvae_last_error());
            if (!ok) continue;
            CHECK(max_rel_err(w->grad, ref, w->size) < 1e-6, "linear tall %s, %d threads: dW [%d,%d] within 1e-6 of double (%.2g)", names[kind],
                  threads, O, I, max_rel_err(w->grad, ref, w->size));
            if (threads == 1) memcpy(first, w->grad, w->size * sizeof(float));
            else CHECK(!memcmp(first, w->grad, w->size * sizeof(float)), "linear tall %s: dW on %d threads bitwise that of 1", names[kind], threads);
        }
    }
    uvae__cpu_kernel(base);
    uvae_ctx_free(ctx);
    uvae_tensor_free(x); uvae_tensor_free(w); uvae_tensor_free(ry);
    free(ref); free(first);
}

/* Winograd F(4x4)'s output transform in each micro-kernel kind's code: the same bits as the generic
   loop for 1..40 and 255, 256 tiles (AVX-512: runs of 16, one of 8, the rest; AVX2: runs of 8, the
   rest), and nothing written past a row's 4 n floats; and the AVX-512 register transpose against
   the plain index formula, for blocks of 1 to 40 rows and columns, nothing written outside. */
static void test_wg_transforms(void) {
    static const char *names[4] = {"", "generic", "avx2", "avx512"};
    const float sentinel = 12345.0f;
    uvae_rng r;
    int kinds = 0, blocks = 0;
    uvae_rng_seed(&r, 31);
    for (int n = 1; n <= 256; n = n == 40 ? 255 : n + 1) {
        size_t ms = (size_t)n + 3, rs = 4 * (size_t)n + 5;
        float *m = (float *)malloc(36 * ms * sizeof(float)), *ref = (float *)malloc(4 * rs * sizeof(float));
        float *out = (float *)malloc(4 * rs * sizeof(float));
        for (size_t i = 0; i < 36 * ms; i++) m[i] = 2.0f * uvae_rng_uniform(&r) - 1.0f;
        for (size_t i = 0; i < 4 * rs; i++) ref[i] = sentinel;
        CHECK(uvae__cpu_wg4_out(1, n, m, ms, ref, rs), "wg4_out generic ran (n %d)", n);
        for (int kind = 2; kind <= 3; kind++) {
            int same = 1, kept = 1;
            for (size_t i = 0; i < 4 * rs; i++) out[i] = sentinel;
            if (!uvae__cpu_wg4_out(kind, n, m, ms, out, rs)) continue;
            for (size_t a = 0; a < 4; a++)
                for (size_t i = 0; i < rs; i++) {
                    if (i < 4 * (size_t)n) same &= !memcmp(&out[a * rs + i], &ref[a * rs + i], sizeof(float)) && out[a * rs + i] != sentinel;
                    else kept &= out[a * rs + i] == sentinel;
                }
            CHECK(same && kept, "wg4_out %s, %d tiles: the generic loop's bits (%s), nothing past 4 n floats a row (%s)", names[kind], n,
                  same ? "yes" : "no", kept ? "yes" : "no");
            kinds++;
        }
        free(m); free(ref); free(out);
    }
    static const int sides[] = {1, 2, 3, 4, 5, 8, 13, 15, 16, 17, 31, 33, 40};
    for (size_t a = 0; a < sizeof sides / sizeof *sides; a++)
        for (size_t b = 0; b < sizeof sides / sizeof *sides; b++) {
            int bm = sides[a], bn = sides[b];
            size_t ls = (size_t)bn + 2, ds = (size_t)bm + 3;
            float *src = (float *)malloc((size_t)bm * ls * sizeof(float)), *dst = (float *)malloc((size_t)(bn + 1) * ds * sizeof(float));
            int right = 1;
            for (size_t i = 0; i < (size_t)bm * ls; i++) src[i] = uvae_rng_uniform(&r);
            for (size_t i = 0; i < (size_t)(bn + 1) * ds; i++) dst[i] = sentinel;
            if (uvae__cpu_transpose(src, ls, bm, bn, dst, ds)) {
                for (size_t k = 0; k <= (size_t)bn; k++)
                    for (size_t j = 0; j < ds; j++)
                        right &= k < (size_t)bn && j < (size_t)bm ? dst[k * ds + j] == src[j * ls + k] : dst[k * ds + j] == sentinel;
                CHECK(right, "transpose avx512 %d x %d: dst[k][j] = src[j][k], nothing else written", bm, bn);
                blocks++;
            }
            free(src); free(dst);
        }
    if (!kinds) printf("  wg4_out kinds: SKIP (this CPU has only the generic code)\n");
    if (!blocks) printf("  transpose avx512: SKIP (this CPU lacks AVX-512)\n");
}

/* The CPU's shares (uvae__share_next): each iteration runs exactly once, for any loop length
   against 1-5 threads (more shares than iterations, a team smaller than the shares); with thread 0
   made slow (it holds its first chunk until the rest of its share is gone), the others take the rest. */
static void test_shares(void) {
    static const int ns[] = {0, 1, 2, 3, 15, 16, 17, 64, 100, 1001};
    int *hits = (int *)malloc(1001 * sizeof(int)), *who = (int *)malloc(1001 * sizeof(int));
    for (int threads = 1; threads <= 5; threads++) {
        int was = threads_push(threads);
        if (!was) break;
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
            int n = ns[k], once = 1;
            memset(hits, 0, 1001 * sizeof(int));
            uvae__cpu_share_run(n, 0, hits, who);
            for (int i = 0; i < n; i++) once &= hits[i] == 1;
            CHECK(once, "shares: %d iterations on %d threads, each run once", n, threads);
        }
        if (threads > 1) {                                   /* thread 0 slow: its tail goes to the others */
            int once = 1, taken = 0, n = 1001, first = n / threads;
            memset(hits, 0, (size_t)n * sizeof(int));
            uvae__cpu_share_run(n, 1, hits, who);
            for (int i = 0; i < n; i++) once &= hits[i] == 1;
            for (int i = 0; i < first; i++) taken += who[i] != 0;
            CHECK(once && taken > 0, "shares, thread 0 slow, %d threads: each run once (%d), %d of its %d taken by others",
                  threads, once, taken, first);
        }
        threads_pop(was);
    }
    free(hits);
    free(who);
}

/* Skinny products (uvae__gemm_split: one block of rows and columns, several KC slices of K, few
   tiles) run in parallel over K's slices with more than one thread, over tiles with one: a fully
   connected layer whose forward is split (45 x 1100 @ 1100 x 70), and one whose weight gradient
   is (K = 600 rows, added into the gradient), with 1, 2 and 3 threads and each micro-kernel: the
   output and both gradients bitwise the same for every thread count, and within 1e-6 of sums in
   double. */
static void test_gemm_split(void) {
    static const int shapes[2][3] = {{45, 1100, 70}, {600, 40, 20}};   /* rows, in, out */
    static const char *names[4] = {"", "generic", "avx2", "avx512"};
    int base = uvae__cpu_kernel(-1), runs = 0;
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_rng r;
    uvae_rng_seed(&r, 5);
    for (int si = 0; si < 2; si++) {
        const int Nr = shapes[si][0], I = shapes[si][1], O = shapes[si][2];
        uvae_tensor *x = uvae_tensor_new_grad(2, (int[]){Nr, I}, 1), *w = uvae_tensor_new_grad(2, (int[]){O, I}, 1);
        size_t ny = (size_t)Nr * O;
        double *ry = (double *)malloc(ny * sizeof(double)), *rdx = (double *)calloc(x->size, sizeof(double));
        double *rdw = (double *)calloc(w->size, sizeof(double));
        float *first = (float *)malloc((ny + x->size + w->size) * sizeof(float));
        fill_uniform(x, &r, -1, 1); fill_uniform(w, &r, -0.1f, 0.1f);
        for (int i = 0; i < Nr; i++)   /* with dy = 1: dx[i,k] = sum_o w[o,k], dw[o,k] = sum_i x[i,k] (plus 0.5 already there) */
            for (int o = 0; o < O; o++) {
                double acc = 0;
                for (int k = 0; k < I; k++) {
                    acc += (double)x->data[(size_t)i * I + k] * w->data[(size_t)o * I + k];
                    rdx[(size_t)i * I + k] += w->data[(size_t)o * I + k];
                    rdw[(size_t)o * I + k] += x->data[(size_t)i * I + k];
                }
                ry[(size_t)i * O + o] = acc;
            }
        for (size_t i = 0; i < w->size; i++) rdw[i] += 0.5;
        for (int kind = 1; kind <= 3; kind++) {
            if (uvae__cpu_kernel(kind) != kind) continue;
            for (int threads = 1; threads <= 3; threads++) {
                uvae_tensor *y;
                int same = 1, was = threads_push(threads);
                if (!was) break;
                uvae_ctx_reset(ctx, 1);
                memset(x->grad, 0, x->size * sizeof(float));
                for (size_t i = 0; i < w->size; i++) w->grad[i] = 0.5f;   /* the weight gradient adds to what is there */
                y = uvae_linear(ctx, x, w, NULL);
                CHECK(y && uvae_backward(ctx, uvae_sum(ctx, y)) == UVAE_OK, "gemm split %s, %d x %d @ %d, %d threads: ran: %s", names[kind],
                      Nr, I, O, threads, uvae_last_error());
                threads_pop(was);
                if (!y) continue;
                CHECK(max_rel_err(y->data, ry, ny) < 1e-6 && max_rel_err(x->grad, rdx, x->size) < 1e-6 && max_rel_err(w->grad, rdw, w->size) < 1e-6,
                      "gemm split %s, %d x %d @ %d, %d threads: y, dx, dw within 1e-6 (%.2g %.2g %.2g)", names[kind], Nr, I, O, threads,
                      max_rel_err(y->data, ry, ny), max_rel_err(x->grad, rdx, x->size), max_rel_err(w->grad, rdw, w->size));
                if (threads == 1) {
                    memcpy(first, y->data, ny * sizeof(float));
                    memcpy(first + ny, x->grad, x->size * sizeof(float));
                    memcpy(first + ny + x->size, w->grad, w->size * sizeof(float));
                } else {
                    same = !memcmp(first, y->data, ny * sizeof(float)) && !memcmp(first + ny, x->grad, x->size * sizeof(float)) &&
                           !memcmp(first + ny + x->size, w->grad, w->size * sizeof(float));
                    CHECK(same, "gemm split %s, %d x %d @ %d: y, dx and dw with %d threads bitwise those with 1", names[kind], Nr, I, O, threads);
                }
                runs++;
            }
        }
        free(ry); free(rdx); free(rdw); free(first);
        uvae_tensor_free(x); uvae_tensor_free(w);
    }
    uvae__cpu_kernel(base);
    CHECK(runs >= 2, "gemm split: %d runs", runs);
    printf("  gemm split over K's slices: %d runs (kernels x thread counts), bitwise equal to one thread\n", runs);
    uvae_ctx_free(ctx);
}

/* A weight gradient with one panel of taps (im2col's rows, C*k*k <= NR) and many slices of pixels,
   as a first layer has (uvae__cpu_conv_bwd_w_rows): with more threads than panels the threads
   split the slices, each slice's product going to a partial, the partials added in order. With
   1, 2 and 3 threads and each micro-kernel: dw bitwise the same for every thread count, within
   1e-6 of sums in double (dy = 1: dw[o, c, ki, kj] = the sum of x over tap (c, ki, kj)'s windows). */
static void test_conv_bwd_w_split(void) {
    static const int shapes[2][5] = {{6, 2, 28, 20, 4}, {5, 3, 31, 13, 3}};   /* N, Ci, H = W, Co, k; stride 2, padding 1 */
    static const char *names[4] = {"", "generic", "avx2", "avx512"};
    int base = uvae__cpu_kernel(-1), runs = 0;
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_rng r;
    uvae_rng_seed(&r, 9);
    for (int si = 0; si < 2; si++) {
        const int N = shapes[si][0], Ci = shapes[si][1], H = shapes[si][2], Co = shapes[si][3], K = shapes[si][4], S = 2, P = 1;
        const int Ho = (H + 2 * P - K) / S + 1;
        uvae_tensor *x = uvae_tensor_new_grad(4, (int[]){N, Ci, H, H}, 0), *w = uvae_tensor_new_grad(4, (int[]){Co, Ci, K, K}, 1);
        double *rdw = (double *)calloc(w->size, sizeof(double));
        float *first = (float *)malloc(w->size * sizeof(float));
        fill_uniform(x, &r, -1, 1); fill_uniform(w, &r, -0.3f, 0.3f);
        for (int n = 0; n < N; n++)
            for (int c = 0; c < Ci; c++)
                for (int ki = 0; ki < K; ki++)
                    for (int kj = 0; kj < K; kj++) {
                        double acc = 0;
                        for (int oh = 0; oh < Ho; oh++)
                            for (int ow = 0; ow < Ho; ow++) {
                                int ih = oh * S - P + ki, iw = ow * S - P + kj;
                                if (ih >= 0 && ih < H && iw >= 0 && iw < H) acc += x->data[(((size_t)n * Ci + c) * H + ih) * H + iw];
                            }
                        for (int o = 0; o < Co; o++) rdw[((size_t)(o * Ci + c) * K + ki) * K + kj] += acc;
                    }
        for (int kind = 1; kind <= 3; kind++) {
            if (uvae__cpu_kernel(kind) != kind) continue;
            for (int threads = 1; threads <= 3; threads++) {
                uvae_tensor *y;
                int was = threads_push(threads);
                if (!was) break;
                uvae_ctx_reset(ctx, 1);
                memset(w->grad, 0, w->size * sizeof(float));
                y = uvae_conv2d(ctx, x, w, NULL, S, P);
                CHECK(y && uvae_backward(ctx, uvae_sum(ctx, y)) == UVAE_OK, "conv dw split %s, shape %d, %d threads: ran: %s", names[kind], si,
                      threads, uvae_last_error());
                threads_pop(was);
                if (!y) continue;
                CHECK(max_rel_err(w->grad, rdw, w->size) < 1e-6, "conv dw split %s, x [%d,%d,%d,%d] w [%d,%d,%d,%d], %d threads: within 1e-6 "
                      "(%.2g)", names[kind], N, Ci, H, H, Co, Ci, K, K, threads, max_rel_err(w->grad, rdw, w->size));
                if (threads == 1) memcpy(first, w->grad, w->size * sizeof(float));
                else CHECK(!memcmp(first, w->grad, w->size * sizeof(float)), "conv dw split %s, shape %d: dw with %d threads bitwise that "
                           "with 1", names[kind], si, threads);
                runs++;
            }
        }
        free(rdw); free(first);
        uvae_tensor_free(x); uvae_tensor_free(w);
    }
    uvae__cpu_kernel(base);
    CHECK(runs >= 2, "conv dw split: %d runs", runs);
    printf("  conv weight gradient, one panel of taps, split over pixels' slices: %d runs, bitwise equal to one thread\n", runs);
    uvae_ctx_free(ctx);
}

static void test_gemm_kernels(void) {
    enum { N = 9, Ci = 19, H = 31, W = 33, Co = 37, K = 3, S = 1, P = 1 };   /* chunks of 4, 4 and 1 images */
    static const char *names[4] = {"", "generic", "avx2", "avx512"};
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_tensor *x = uvae_tensor_new_grad(4, (int[]){N, Ci, H, W}, 1), *w = uvae_tensor_new_grad(4, (int[]){Co, Ci, K, K}, 1);
    uvae_tensor *lx = uvae_tensor_new_grad(2, (int[]){45, 300}, 1), *lw = uvae_tensor_new_grad(2, (int[]){70, 300}, 1);
    size_t ny = (size_t)N * Co * H * W;
    double *ry = (double *)malloc(ny * sizeof(double)), *rdw = (double *)calloc(w->size, sizeof(double));
    double *rdx = (double *)calloc(x->size, sizeof(double)), *rly = (double *)malloc(45 * 70 * sizeof(double));
    float *first = (float *)malloc(ny * sizeof(float));
    int base = uvae__cpu_kernel(-1), tried = 0;
    uvae_rng r;
    uvae_rng_seed(&r, 77);
    fill_uniform(x, &r, -1, 1); fill_uniform(w, &r, -0.3f, 0.3f); fill_uniform(lx, &r, -1, 1); fill_uniform(lw, &r, -0.1f, 0.1f);
    /* references: y = conv(x, w); with dy = 1 everywhere: dx = sum of w over the windows, dw = sum of x */
    for (int n = 0; n < N; n++)
        for (int co = 0; co < Co; co++)
            for (int oh = 0; oh < H; oh++)
                for (int ow = 0; ow < W; ow++) {
                    ry[((size_t)(n * Co + co) * H + oh) * W + ow] = conv_ref_out(x->data, w->data, Ci, H, W, K, S, P, n, co, oh, ow);
                    for (int ci = 0; ci < Ci; ci++)
                        for (int ki = 0; ki < K; ki++)
                            for (int kj = 0; kj < K; kj++) {
                                int ih = oh - P + ki, iw = ow - P + kj;
                                size_t wi = (size_t)((co * Ci + ci) * K + ki) * K + kj, xi = ((size_t)(n * Ci + ci) * H + ih) * W + iw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                rdw[wi] += x->data[xi];
                                rdx[xi] += w->data[wi];
                            }
                }
    for (int i = 0; i < 45; i++)
        for (int o = 0; o < 70; o++) {
            double acc = 0;
            for (int k = 0; k < 300; k++) acc += (double)lx->data[i * 300 + k] * lw->data[o * 300 + k];
            rly[i * 70 + o] = acc;
        }
    for (int kind = 1; kind <= 3; kind++) {
        uvae_tensor *y, *ly;
        if (uvae__cpu_kernel(kind) != kind) { printf("  gemm kernel %-8s SKIP: not supported by this CPU\n", names[kind]); continue; }
        tried++;
        memset(x->grad, 0, x->size * sizeof(float)); memset(w->grad, 0, w->size * sizeof(float));
        uvae_ctx_reset(ctx, 1);
        y = uvae_conv2d(ctx, x, w, NULL, S, P);
        CHECK(y && uvae_backward(ctx, uvae_sum(ctx, y)) == UVAE_OK, "%s: conv2d forward/backward: %s", names[kind], uvae_last_error());
        if (!y) continue;
        CHECK(max_rel_err(y->data, ry, ny) < 1e-6, "%s: conv2d output, max error %.3g of max|ref|", names[kind], max_rel_err(y->data, ry, ny));
        CHECK(max_rel_err(w->grad, rdw, w->size) < 1e-6, "%s: conv2d dW, max error %.3g", names[kind], max_rel_err(w->grad, rdw, w->size));
        CHECK(max_rel_err(x->grad, rdx, x->size) < 1e-6, "%s: conv2d dx, max error %.3g", names[kind], max_rel_err(x->grad, rdx, x->size));
#ifdef _OPENMP
        memcpy(first, y->data, ny * sizeof(float));   /* the packed path is deterministic whatever the thread count */
        CHECK(conv_same_bits_other_threads(ctx, x, w, S, P, first, ny), "%s: conv2d bit-identical with another thread count", names[kind]);
#endif
        uvae_ctx_reset(ctx, 1);
        memset(lx->grad, 0, lx->size * sizeof(float)); memset(lw->grad, 0, lw->size * sizeof(float));
        ly = uvae_linear(ctx, lx, lw, NULL);
        CHECK(ly && max_rel_err(ly->data, rly, 45 * 70) < 1e-6, "%s: linear output", names[kind]);
        CHECK(ly && uvae_backward(ctx, uvae_sum(ctx, ly)) == UVAE_OK, "%s: linear backward", names[kind]);
        {   /* with dy = 1: dx[i,k] = sum_o w[o,k], dw[o,k] = sum_i x[i,k] */
            double e = 0;
            for (int k = 0; k < 300; k++) {
                double sx = 0, sw = 0;
                for (int i = 0; i < 45; i++) sx += lx->data[i * 300 + k];
                for (int o = 0; o < 70; o++) sw += lw->data[o * 300 + k];
                e = fmax(e, fabs(lw->grad[k] - sx) / 10);
                e = fmax(e, fabs(lx->grad[k] - sw));
            }
            CHECK(e < 1e-5, "%s: linear gradients, max error %.3g", names[kind], e);
        }
    }
    CHECK(tried >= 1, "the generic kernel always runs");
    uvae__cpu_kernel(base);
    printf("  gemm kernels: %d tried, in use: %s\n", tried, names[uvae__cpu_kernel(-1)]);
    free(ry); free(rdw); free(rdx); free(rly); free(first);
    uvae_tensor_free(x); uvae_tensor_free(w); uvae_tensor_free(lx); uvae_tensor_free(lw);
    uvae_ctx_free(ctx);
}

/* Convolutions that take im2col + GEMM (strided, or rows narrower than NR): with more than
   UVAE__DIRECT_M output channels the GEMM's panels are gathered straight from x
   (uvae__cpu_conv_gemm_cols), with fewer im2col's columns are read in place. Shapes with a ragged
   last panel and rows of tiles, more than KC rows of columns, chunks of several images and both
   paths, against the direct sum, with each micro-kernel, bit-identical across thread counts. */
static void test_conv_packed_columns(void) {
    static const int shapes[][8] = {   /* N, Ci, H, W, Co, k, s, p */
        {3, 5, 9, 9, 50, 4, 2, 1}, {2, 40, 16, 16, 61, 3, 2, 1}, {5, 4, 32, 32, 32, 4, 2, 1}, {2, 7, 10, 13, 64, 3, 1, 0},
        {2, 40, 16, 16, 13, 3, 2, 1}, {2, 3, 1, 2, 5, 7, 1, 3}, {2, 3, 3, 4, 50, 5, 3, 3}, {4, 24, 20, 20, 29, 3, 2, 1},
        {8, 24, 32, 32, 40, 2, 2, 0}, {4, 16, 31, 31, 24, 4, 2, 1}};
    static const char *names[4] = {"", "generic", "avx2", "avx512"};
    int base = uvae__cpu_kernel(-1), runs = 0;
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_rng r;
    uvae_rng_seed(&r, 91);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int *d = shapes[si];
        int N = d[0], Ci = d[1], H = d[2], W = d[3], Co = d[4], k = d[5], s = d[6], p = d[7];
        int Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
        size_t ny = (size_t)N * Co * Ho * Wo;
        uvae_tensor *x = uvae_tensor_new_grad(4, (int[]){N, Ci, H, W}, 1), *w = uvae_tensor_new_grad(4, (int[]){Co, Ci, k, k}, 1);
        double *ref = (double *)malloc(ny * sizeof(double)), *rdx = (double *)calloc(x->size, sizeof(double));
        double *rdw = (double *)calloc(w->size, sizeof(double));
        float *first = (float *)malloc(ny * sizeof(float));
        fill_uniform(x, &r, -1, 1); fill_uniform(w, &r, -0.3f, 0.3f);
        for (int n = 0; n < N; n++)
            for (int co = 0; co < Co; co++)
                for (int oh = 0; oh < Ho; oh++)
                    for (int ow = 0; ow < Wo; ow++) {
                        ref[((size_t)(n * Co + co) * Ho + oh) * Wo + ow] = conv_ref_out(x->data, w->data, Ci, H, W, k, s, p, n, co, oh, ow);
                        for (int ci = 0; ci < Ci; ci++)       /* with dy = 1, dx sums the weights over the windows */
                            for (int ki = 0; ki < k; ki++)    /* and dw the inputs */
                                for (int kj = 0; kj < k; kj++) {
                                    int ih = oh * s - p + ki, iw = ow * s - p + kj;
                                    size_t xi = ((size_t)(n * Ci + ci) * H + ih) * W + iw, wi = ((size_t)(co * Ci + ci) * k + ki) * k + kj;
                                    if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                    rdx[xi] += w->data[wi];
                                    rdw[wi] += x->data[xi];
                                }
                    }
        for (int kind = 1; kind <= 3; kind++) {
            uvae_tensor *y;
            if (uvae__cpu_kernel(kind) != kind) continue;
            uvae_ctx_reset(ctx, 1);
            memset(x->grad, 0, x->size * sizeof(float));
            memset(w->grad, 0, w->size * sizeof(float));
            y = uvae_conv2d(ctx, x, w, NULL, s, p);
            CHECK(y && max_rel_err(y->data, ref, ny) < 1e-6, "packed columns, %s, shape %zu: conv2d output, max error %.3g",
                  names[kind], si, y ? max_rel_err(y->data, ref, ny) : -1.0);
            CHECK(y && uvae_backward(ctx, uvae_sum(ctx, y)) == UVAE_OK && max_rel_err(x->grad, rdx, x->size) < 1e-6,
                  "packed columns, %s, shape %zu: conv2d dx (col2im), max error %.3g", names[kind], si, max_rel_err(x->grad, rdx, x->size));
            CHECK(y && max_rel_err(w->grad, rdw, w->size) < 1e-6, "packed columns, %s, shape %zu: conv2d dw, max error %.3g",
                  names[kind], si, max_rel_err(w->grad, rdw, w->size));
            runs++;
#ifdef _OPENMP
            if (y) {
                memcpy(first, y->data, ny * sizeof(float));
                CHECK(conv_same_bits_other_threads(ctx, x, w, s, p, first, ny), "packed columns, %s, shape %zu: bit-identical with another thread count", names[kind], si);
            }
#endif
        }
        free(ref); free(rdx); free(rdw); free(first);
        uvae_tensor_free(x); uvae_tensor_free(w);
    }
    uvae__cpu_kernel(base);
    CHECK(runs >= 8, "packed columns: %d runs", runs);
    uvae_ctx_free(ctx);
}

/* The BCE's own float exp and log1p (uvae__exp_negabs, uvae__log1p_01, vectorised), through the
   loss of one logit v: with target [v > 0] it is log(1 + e^-|v|) alone, and dz = sigmoid(v) - t;
   against libm in double over [-95, 95], and the mean over logits up to 1e4. */
static void test_bce_float_math(void) {
    static const float zs[] = {-1e4f, -100.0f, -88.0f, -50.0f, -17.0f, -1.0f, -0.0f, 0.0f, 1e-8f, 0.3f, 5.0f, 30.0f, 90.0f, 1e4f};
    enum { NZ = sizeof zs / sizeof zs[0] };
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_tensor *z1 = uvae_tensor_new_grad(1, (int[]){1}, 1), *t1 = uvae_tensor_new(1, (int[]){1}), *y;
    uvae_tensor *z = uvae_tensor_new_grad(2, (int[]){2, NZ}, 1), *t = uvae_tensor_new(2, (int[]){2, NZ});
    double el = 0, eg = 0, at_l = 0, at_g = 0, ref = 0;
    int ok = 1;
    double v;
    for (v = -95.0; v <= 95.0 && ok; v += 3.7e-3) {
        double x = (float)v, sp = log1p(exp(-fabs(x))), sg = x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)), e;
        z1->data[0] = (float)x;
        t1->data[0] = x > 0 ? 1.0f : 0.0f;
        z1->grad[0] = 0;
        uvae_ctx_reset(ctx, 1);
        ok = (y = uvae_bce_with_logits(ctx, z1, t1)) && uvae_backward(ctx, y) == UVAE_OK;
        if (!ok) break;
        if (fabs(x) <= 87 && (e = fabs(y->data[0] - sp) / sp) > el) { el = e; at_l = x; }
        e = x > 0 ? fabs(z1->grad[0] - (sg - 1)) : fabs(z1->grad[0] - sg) / sg;   /* above 0: 1/(1+e) - 1 rounds absolutely */
        if (fabs(x) <= 87 && e > eg) { eg = e; at_g = x; }
        if (fabs(x) > 87) ok = y->data[0] < 1.7e-38f && fabs(z1->grad[0] - (x > 0 ? sg - 1 : sg)) < 1e-37;
    }
    CHECK(ok, "bce of the logit %g: a loss and gradient (tiny beyond +-87)", v);
    CHECK(el < 2.5e-7, "bce = log(1 + e^-|v|): max relative error %.3g (at %g)", el, at_l);
    CHECK(eg < 2e-7, "bce dz = sigmoid(v) - t: max error %.3g (relative below 0, absolute above; at %g)", eg, at_g);
    for (int i = 0; i < 2 * NZ; i++) {   /* the mean at large logits, targets 0 and 1 */
        double v = zs[i % NZ], tv = i < NZ ? 0.0 : 1.0;
        z->data[i] = zs[i % NZ];
        t->data[i] = (float)tv;
        ref += (v > 0 ? v : 0) - v * tv + log1p(exp(-fabs(v)));
    }
    uvae_ctx_reset(ctx, 1);
    y = uvae_bernoulli_nll(ctx, z, t);
    CHECK(y && fabs(y->data[0] - ref / 2) <= 1e-6 * (ref / 2), "bernoulli nll at logits up to 1e4: %.9g, want %.9g", y ? y->data[0] : -1.0, ref / 2);
    uvae_tensor_free(z); uvae_tensor_free(t); uvae_tensor_free(z1); uvae_tensor_free(t1);
    uvae_ctx_free(ctx);
}

/* 2 x 2 max pooling (its own branch-free loop) against a plain scan of each window done here:
   values of few levels (ties: the first maximum wins, as in PyTorch), odd sides (the last row
   and column dropped), NaN in the first round (the last NaN of a window wins) and, in the second,
   the argmax through the gradient of sum(y * g). Then leaky ReLU's select on the bits. */
static int pool_ref(const float *in, int W, int oh, int ow) {
    int best = 2 * oh * W + 2 * ow, q;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            if (q = (2 * oh + i) * W + 2 * ow + j, in[q] > in[best] || isnan(in[q])) best = q;
    return best;
}
static void test_pool_select(void) {
    static const int sides[][2] = {{6, 6}, {7, 5}, {9, 34}, {33, 33}};
    static const float lv[] = {-3.0f, -0.0f, 0.0f, 1e-30f, 2.5f, NAN, INFINITY, -INFINITY};
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_tensor *v = uvae_tensor_new_grad(1, (int[]){8}, 1), *lr;
    uvae_rng r;
    int nan_seen = 0;
    uvae_rng_seed(&r, 17);
    for (int c = 0; c < 4; c++)
        for (int round = 0; round < 2; round++) {
            int H = sides[c][0], W = sides[c][1], Ho = H / 2, Wo = W / 2, ok, bad = -1;
            uvae_tensor *x = uvae_tensor_new_grad(4, (int[]){2, 3, H, W}, 1), *g = uvae_tensor_new(4, (int[]){2, 3, Ho, Wo}), *y;
            for (size_t i = 0; i < x->size; i++) {
                uint32_t u = uvae_rng_u32(&r);
                x->data[i] = round == 0 && u % 61 == 0 ? NAN : (float)(int)(u % 3) - (u % 5 == 0 ? 1.5f : 0.0f);
            }
            for (size_t i = 0; i < g->size; i++) g->data[i] = 1.0f + (float)i;
            uvae_ctx_reset(ctx, 1);
            y = uvae_max_pool2d(ctx, x, 2, 2);
            ok = y && y->shape[2] == Ho && y->shape[3] == Wo && (round == 0 || uvae_backward(ctx, uvae_sum(ctx, uvae_mul(ctx, y, g))) == UVAE_OK);
            for (int nc = 0; nc < 6 && ok; nc++)
                for (int o = 0; o < Ho * Wo && ok; o++) {
                    const float *in = x->data + (size_t)nc * H * W;
                    int q = pool_ref(in, W, o / Wo, o % Wo), at = nc * Ho * Wo + o;
                    nan_seen |= isnan(in[q]);
                    ok = memcmp(&y->data[at], &in[q], sizeof(float)) == 0 && (round == 0 || x->grad[(size_t)nc * H * W + q] == g->data[at]);
                    if (!ok) bad = at;
                }
            CHECK(ok, "max_pool2d 2x2 on %dx%d (%s): window %d as a plain scan of it", H, W, round ? "argmax by the gradient" : "values, NaN", bad);
            uvae_tensor_free(x); uvae_tensor_free(g);
        }
    CHECK(nan_seen, "the pooling test met a NaN window");
    for (int i = 0; i < 8; i++) v->data[i] = lv[i];
    uvae_ctx_reset(ctx, 1);
    lr = uvae_leaky_relu(ctx, v, 0.2f);
    for (int i = 0; lr && i < 8; i++) {
        float want = lv[i] > 0 ? lv[i] : 0.2f * lv[i];
        CHECK(memcmp(&lr->data[i], &want, sizeof want) == 0 || (isnan(want) && isnan(lr->data[i])), "leaky_relu(%g) = %g, want %g",
              (double)lv[i], (double)lr->data[i], (double)want);
    }
    uvae_tensor_free(v);
    uvae_ctx_free(ctx);
}

void suite_core(void) {
    test_errors();
    test_grad_recycling();
    test_gemm_kernels();
    test_gemm_split();
    test_conv_bwd_w_split();
    test_shares();
    test_wg_transforms();
    test_linear_tall();
    test_conv_packed_columns();
    test_bce_float_math();
    test_pool_select();
    test_conv_implicit();
    test_conv_direct();
    test_conv_winograd();
    test_rng_params();
    test_training();
    test_cvae();
}
