/* tests/test_grad.c — central finite differences for every op and loss.
   For each case: loss = sum(out * r) with a fixed random r; the tape's gradient of each input is
   compared with (L(x + h) - L(x - h)) / 2h, L accumulated in double, at up to 24 positions per input.
   Inputs are drawn away from kinks (ReLU at 0, max-pool ties) instead of loosening tolerances. */
#include "test.h"
#include <string.h>

enum { V_UNIFORM, V_DISTINCT, V_AWAY0, V_CLASSES, V_BINARY, V_PROB, V_SMALL, V_POS };
typedef struct { int ndim, shape[4], grad, kind, arg; } spec;
typedef uvae_tensor *(*build_fn)(uvae_ctx *ctx, uvae_tensor **in);
typedef struct { const char *name; build_fn f; int n_in; spec in[5]; int train; } gcase;

static uvae_rng rng;

static void fill(uvae_tensor *t, const spec *s) {
    for (size_t i = 0; i < t->size; i++) {
        float u = uvae_rng_uniform(&rng);
        switch (s->kind) {
        case V_CLASSES: t->data[i] = (float)(uvae_rng_u32(&rng) % (uint32_t)s->arg); break;
        case V_BINARY: t->data[i] = (float)(uvae_rng_u32(&rng) & 1); break;
        case V_PROB: t->data[i] = u; break;
        case V_AWAY0: t->data[i] = (u < 0.5f ? -1.0f : 1.0f) * (0.1f + u); break;
        case V_SMALL: t->data[i] = 0.5f * (2 * u - 1); break;
        case V_POS: t->data[i] = 0.5f + u; break;
        case V_DISTINCT: t->data[i] = (float)i; break;   /* shuffled below */
        default: t->data[i] = 2 * u - 1; break;
        }
    }
    if (s->kind == V_DISTINCT) {                         /* a permutation spaced 0.05 apart */
        for (size_t i = t->size; i > 1; i--) {
            size_t j = uvae_rng_u32(&rng) % i;
            float tmp = t->data[i - 1]; t->data[i - 1] = t->data[j]; t->data[j] = tmp;
        }
        for (size_t i = 0; i < t->size; i++) t->data[i] = 0.05f * t->data[i] - 1;
    }
}

/* L = sum(out * r) in double, from a fresh forward with the rng reset (dropout masks repeat). */
static double eval_loss(uvae_ctx *ctx, const gcase *c, uvae_tensor **in, const uvae_tensor *r) {
    uvae_tensor *out;
    double L = 0;
    uvae_ctx_reset(ctx, c->train);
    uvae_ctx_set_record(ctx, 0);
    uvae_rng_seed(uvae_ctx_rng(ctx), 99);
    out = c->f(ctx, in);
    if (!out) return NAN;
    for (size_t i = 0; i < out->size; i++) L += (double)out->data[i] * r->data[i];
    return L;
}

static void gradcheck(const gcase *c) {
    uvae_tensor *in[5] = {0}, *r = NULL, *out, *loss;
    uvae_ctx *ctx = uvae_ctx_new(0);
    const float h = 4e-3f;
    for (int k = 0; k < c->n_in; k++) {
        in[k] = uvae_tensor_new_grad(c->in[k].ndim, c->in[k].shape, c->in[k].grad);
        fill(in[k], &c->in[k]);
    }
    /* analytic gradients from the tape */
    uvae_ctx_reset(ctx, c->train);
    uvae_ctx_set_record(ctx, 1);
    uvae_rng_seed(uvae_ctx_rng(ctx), 99);
    out = c->f(ctx, in);
    CHECK(out != NULL, "%s: forward failed: %s", c->name, uvae_last_error());
    if (!out) goto done;
    r = uvae_tensor_new(out->ndim, out->shape);
    for (size_t i = 0; i < r->size; i++) r->data[i] = 2 * uvae_rng_uniform(&rng) - 1;
    {
        uvae_tensor *rr = uvae_reshape(ctx, r, r->ndim, r->shape);
        loss = uvae_sum(ctx, uvae_mul(ctx, out, rr));
    }
    CHECK(uvae_backward(ctx, loss) == UVAE_OK, "%s: backward failed: %s", c->name, uvae_last_error());
    for (int k = 0; k < c->n_in; k++) {
        uvae_tensor *x = in[k];
        double worst = 0;
        size_t n = x->size < 24 ? x->size : 24;
        if (!x->grad) continue;
        for (size_t s = 0; s < n; s++) {
            size_t i = x->size <= 24 ? s : (size_t)uvae_rng_u32(&rng) % x->size;
            float x0 = x->data[i];
            double lp, lm, fd, q;
            x->data[i] = x0 + h; lp = eval_loss(ctx, c, in, r);
            x->data[i] = x0 - h; lm = eval_loss(ctx, c, in, r);
            x->data[i] = x0;
            fd = (lp - lm) / (2.0 * h);
            q = fabs(fd - x->grad[i]) / (2e-3 + 2e-2 * fabs(fd));
            if (!(q <= worst)) worst = q;
        }
        CHECK(worst <= 1, "%s: input %d: analytic vs finite-difference gradient off by %.2f x tolerance", c->name, k, worst);
    }
done:
    for (int k = 0; k < c->n_in; k++) uvae_tensor_free(in[k]);
    uvae_tensor_free(r);
    uvae_ctx_free(ctx);
}

/* the ops under test, one builder per case */
static uvae_tensor *b_conv_s1(uvae_ctx *c, uvae_tensor **t) { return uvae_conv2d(c, t[0], t[1], t[2], 1, 1); }
static uvae_tensor *b_conv_s2(uvae_ctx *c, uvae_tensor **t) { return uvae_conv2d(c, t[0], t[1], t[2], 2, 1); }
static uvae_tensor *b_conv_nb(uvae_ctx *c, uvae_tensor **t) { return uvae_conv2d(c, t[0], t[1], NULL, 2, 1); }
static uvae_tensor *b_convT_2(uvae_ctx *c, uvae_tensor **t) { return uvae_conv_transpose2d(c, t[0], t[1], t[2], 2, 0); }
static uvae_tensor *b_convT_4(uvae_ctx *c, uvae_tensor **t) { return uvae_conv_transpose2d(c, t[0], t[1], t[2], 2, 1); }
static uvae_tensor *b_maxpool(uvae_ctx *c, uvae_tensor **t) { return uvae_max_pool2d(c, t[0], 2, 2); }
static uvae_tensor *b_maxpool3(uvae_ctx *c, uvae_tensor **t) { return uvae_max_pool2d(c, t[0], 3, 2); }
static uvae_tensor *b_avgpool(uvae_ctx *c, uvae_tensor **t) { return uvae_avg_pool2d(c, t[0], 3, 2); }
static uvae_tensor *b_up_near(uvae_ctx *c, uvae_tensor **t) { return uvae_upsample(c, t[0], 2, UVAE_NEAREST); }
static uvae_tensor *b_up_bil2(uvae_ctx *c, uvae_tensor **t) { return uvae_upsample(c, t[0], 2, UVAE_BILINEAR); }
static uvae_tensor *b_up_bil3(uvae_ctx *c, uvae_tensor **t) { return uvae_upsample(c, t[0], 3, UVAE_BILINEAR); }
static uvae_tensor *b_bn(uvae_ctx *c, uvae_tensor **t) { return uvae_batch_norm2d(c, t[0], t[1], t[2], t[3], t[4], 0.1f, 1e-5f); }
static uvae_tensor *b_relu(uvae_ctx *c, uvae_tensor **t) { return uvae_relu(c, t[0]); }
static uvae_tensor *b_leaky(uvae_ctx *c, uvae_tensor **t) { return uvae_leaky_relu(c, t[0], 0.2f); }
static uvae_tensor *b_sigmoid(uvae_ctx *c, uvae_tensor **t) { return uvae_sigmoid(c, t[0]); }
static uvae_tensor *b_tanh(uvae_ctx *c, uvae_tensor **t) { return uvae_tanh(c, t[0]); }
static uvae_tensor *b_exp(uvae_ctx *c, uvae_tensor **t) { return uvae_exp(c, t[0]); }
static uvae_tensor *b_scale(uvae_ctx *c, uvae_tensor **t) { return uvae_scale(c, t[0], -0.7f); }
static uvae_tensor *b_linear(uvae_ctx *c, uvae_tensor **t) { return uvae_linear(c, t[0], t[1], t[2]); }
static uvae_tensor *b_embed(uvae_ctx *c, uvae_tensor **t) { return uvae_embedding(c, t[0], t[1]); }
static uvae_tensor *b_concat(uvae_ctx *c, uvae_tensor **t) { return uvae_concat(c, t[0], t[1]); }
static uvae_tensor *b_add(uvae_ctx *c, uvae_tensor **t) { return uvae_add(c, t[0], t[1]); }
static uvae_tensor *b_mul(uvae_ctx *c, uvae_tensor **t) { return uvae_mul(c, t[0], t[1]); }
static uvae_tensor *b_reshape(uvae_ctx *c, uvae_tensor **t) { return uvae_tanh(c, uvae_reshape(c, t[0], 2, (int[]){4, 6})); }
static uvae_tensor *b_flatten(uvae_ctx *c, uvae_tensor **t) { return uvae_sigmoid(c, uvae_flatten(c, t[0])); }
static uvae_tensor *b_sum(uvae_ctx *c, uvae_tensor **t) { return uvae_sum(c, uvae_mul(c, t[0], t[0])); }
static uvae_tensor *b_mean(uvae_ctx *c, uvae_tensor **t) { return uvae_mean(c, uvae_mul(c, t[0], t[0])); }
static uvae_tensor *b_dropout(uvae_ctx *c, uvae_tensor **t) { return uvae_dropout(c, t[0], 0.4f); }
static uvae_tensor *b_ce(uvae_ctx *c, uvae_tensor **t) { return uvae_cross_entropy(c, t[0], t[1]); }
static uvae_tensor *b_bce(uvae_ctx *c, uvae_tensor **t) { return uvae_bce_with_logits(c, t[0], t[1]); }
static uvae_tensor *b_dice(uvae_ctx *c, uvae_tensor **t) { return uvae_dice_loss(c, t[0], t[1], 1.0f); }
static uvae_tensor *b_cedice(uvae_ctx *c, uvae_tensor **t) { return uvae_ce_dice_loss(c, t[0], t[1], 1.0f); }
static uvae_tensor *b_kl(uvae_ctx *c, uvae_tensor **t) { return uvae_kl_normal(c, t[0], t[1]); }
static uvae_tensor *b_bern(uvae_ctx *c, uvae_tensor **t) { return uvae_bernoulli_nll(c, t[0], t[1]); }
static uvae_tensor *b_gnll(uvae_ctx *c, uvae_tensor **t) { return uvae_gaussian_nll(c, t[0], t[1], t[2]); }

#define T4(a, b, c, d) 4, {a, b, c, d}
#define T3(a, b, c) 3, {a, b, c, 0}
#define T2(a, b) 2, {a, b, 0, 0}
#define T1(a) 1, {a, 0, 0, 0}
static const gcase cases[] = {
    {"conv2d k3 s1 p1", b_conv_s1, 3, {{T4(2, 3, 5, 5), 1, V_UNIFORM, 0}, {T4(4, 3, 3, 3), 1, V_UNIFORM, 0}, {T1(4), 1, V_UNIFORM, 0}}, 1},
    {"conv2d k3 s2 p1", b_conv_s2, 3, {{T4(2, 2, 6, 6), 1, V_UNIFORM, 0}, {T4(3, 2, 3, 3), 1, V_UNIFORM, 0}, {T1(3), 1, V_UNIFORM, 0}}, 1},
    {"conv2d k4 s2 p1 no bias", b_conv_nb, 2, {{T4(2, 2, 6, 6), 1, V_UNIFORM, 0}, {T4(3, 2, 4, 4), 1, V_UNIFORM, 0}}, 1},
    {"conv_transpose2d k2 s2", b_convT_2, 3, {{T4(2, 3, 3, 3), 1, V_UNIFORM, 0}, {T4(3, 2, 2, 2), 1, V_UNIFORM, 0}, {T1(2), 1, V_UNIFORM, 0}}, 1},
    {"conv_transpose2d k4 s2 p1", b_convT_4, 3, {{T4(2, 3, 3, 3), 1, V_UNIFORM, 0}, {T4(3, 2, 4, 4), 1, V_UNIFORM, 0}, {T1(2), 1, V_UNIFORM, 0}}, 1},
    {"max_pool2d k2 s2", b_maxpool, 1, {{T4(2, 2, 6, 6), 1, V_DISTINCT, 0}}, 1},
    {"max_pool2d k3 s2", b_maxpool3, 1, {{T4(1, 2, 7, 7), 1, V_DISTINCT, 0}}, 1},
    {"avg_pool2d k3 s2", b_avgpool, 1, {{T4(2, 2, 7, 7), 1, V_UNIFORM, 0}}, 1},
    {"upsample nearest x2", b_up_near, 1, {{T4(2, 2, 3, 4), 1, V_UNIFORM, 0}}, 1},
    {"upsample bilinear x2", b_up_bil2, 1, {{T4(2, 2, 3, 4), 1, V_UNIFORM, 0}}, 1},
    {"upsample bilinear x3", b_up_bil3, 1, {{T4(1, 2, 3, 3), 1, V_UNIFORM, 0}}, 1},
    {"batch_norm2d train", b_bn, 5, {{T4(3, 2, 3, 3), 1, V_UNIFORM, 0}, {T1(2), 1, V_UNIFORM, 0}, {T1(2), 1, V_UNIFORM, 0}, {T1(2), 0, V_UNIFORM, 0}, {T1(2), 0, V_POS, 0}}, 1},
    {"batch_norm2d eval", b_bn, 5, {{T4(3, 2, 3, 3), 1, V_UNIFORM, 0}, {T1(2), 1, V_UNIFORM, 0}, {T1(2), 1, V_UNIFORM, 0}, {T1(2), 0, V_UNIFORM, 0}, {T1(2), 0, V_POS, 0}}, 0},
    {"relu", b_relu, 1, {{T4(2, 2, 3, 3), 1, V_AWAY0, 0}}, 1},
    {"leaky_relu", b_leaky, 1, {{T4(2, 2, 3, 3), 1, V_AWAY0, 0}}, 1},
    {"sigmoid", b_sigmoid, 1, {{T2(3, 5), 1, V_UNIFORM, 0}}, 1},
    {"tanh", b_tanh, 1, {{T2(3, 5), 1, V_UNIFORM, 0}}, 1},
    {"exp", b_exp, 1, {{T2(3, 5), 1, V_UNIFORM, 0}}, 1},
    {"scale", b_scale, 1, {{T2(3, 5), 1, V_UNIFORM, 0}}, 1},
    {"linear", b_linear, 3, {{T2(3, 5), 1, V_UNIFORM, 0}, {T2(4, 5), 1, V_UNIFORM, 0}, {T1(4), 1, V_UNIFORM, 0}}, 1},
    {"embedding", b_embed, 2, {{T1(5), 0, V_CLASSES, 3}, {T2(3, 4), 1, V_UNIFORM, 0}}, 1},
    {"concat 4-D", b_concat, 2, {{T4(2, 2, 3, 3), 1, V_UNIFORM, 0}, {T4(2, 1, 3, 3), 1, V_UNIFORM, 0}}, 1},
    {"concat 2-D", b_concat, 2, {{T2(3, 2), 1, V_UNIFORM, 0}, {T2(3, 4), 1, V_UNIFORM, 0}}, 1},
    {"add", b_add, 2, {{T2(3, 4), 1, V_UNIFORM, 0}, {T2(3, 4), 1, V_UNIFORM, 0}}, 1},
    {"mul", b_mul, 2, {{T2(3, 4), 1, V_UNIFORM, 0}, {T2(3, 4), 1, V_UNIFORM, 0}}, 1},
    {"reshape", b_reshape, 1, {{T4(2, 3, 2, 2), 1, V_UNIFORM, 0}}, 1},
    {"flatten", b_flatten, 1, {{T4(2, 3, 2, 2), 1, V_UNIFORM, 0}}, 1},
    {"sum", b_sum, 1, {{T2(3, 4), 1, V_UNIFORM, 0}}, 1},
    {"mean", b_mean, 1, {{T2(3, 4), 1, V_UNIFORM, 0}}, 1},
    {"dropout p=0.4", b_dropout, 1, {{T2(4, 6), 1, V_UNIFORM, 0}}, 1},
    {"cross_entropy 4-D", b_ce, 2, {{T4(2, 3, 3, 3), 1, V_UNIFORM, 0}, {T3(2, 3, 3), 0, V_CLASSES, 3}}, 1},
    {"cross_entropy 2-D", b_ce, 2, {{T2(5, 4), 1, V_UNIFORM, 0}, {T1(5), 0, V_CLASSES, 4}}, 1},
    {"bce_with_logits", b_bce, 2, {{T4(2, 1, 3, 3), 1, V_UNIFORM, 0}, {T4(2, 1, 3, 3), 0, V_PROB, 0}}, 1},
    {"dice multi-class", b_dice, 2, {{T4(2, 3, 3, 3), 1, V_UNIFORM, 0}, {T3(2, 3, 3), 0, V_CLASSES, 3}}, 1},
    {"dice binary", b_dice, 2, {{T4(2, 1, 3, 3), 1, V_UNIFORM, 0}, {T4(2, 1, 3, 3), 0, V_BINARY, 0}}, 1},
    {"ce+dice", b_cedice, 2, {{T4(2, 3, 3, 3), 1, V_UNIFORM, 0}, {T3(2, 3, 3), 0, V_CLASSES, 3}}, 1},
    {"kl_normal", b_kl, 2, {{T2(3, 4), 1, V_UNIFORM, 0}, {T2(3, 4), 1, V_UNIFORM, 0}}, 1},
    {"bernoulli_nll", b_bern, 2, {{T4(2, 1, 3, 3), 1, V_UNIFORM, 0}, {T4(2, 1, 3, 3), 0, V_PROB, 0}}, 1},
    {"gaussian_nll", b_gnll, 3, {{T2(3, 4), 1, V_UNIFORM, 0}, {T2(3, 4), 1, V_SMALL, 0}, {T2(3, 4), 0, V_UNIFORM, 0}}, 1},
    {"gaussian_nll shared logvar", b_gnll, 3, {{T2(3, 4), 1, V_UNIFORM, 0}, {T1(1), 1, V_SMALL, 0}, {T2(3, 4), 0, V_UNIFORM, 0}}, 1},
};

void suite_grad(void) {
    uvae_rng_seed(&rng, 2024);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) gradcheck(&cases[i]);
}
