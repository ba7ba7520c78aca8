/* tests/op_cases.h — what the op-level suites share: input kinds, a filler, and one builder per
   op case (test_grad.c checks them against finite differences, test_cuda.c GPU against CPU). */
#ifndef UVAE_OP_CASES_H
#define UVAE_OP_CASES_H
#include "../unetvae.h"

enum { V_UNIFORM, V_DISTINCT, V_AWAY0, V_CLASSES, V_BINARY, V_PROB, V_SMALL, V_POS, V_NORMAL, V_PIXEL, V_LOGSCALE };
typedef struct { int ndim, shape[4], grad, kind, arg; } spec;
typedef uvae_tensor *(*build_fn)(uvae_ctx *ctx, uvae_tensor **in);

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
        case V_NORMAL: t->data[i] = uvae_rng_normal(&rng); break;
        case V_PIXEL: {                                 /* k/255, with the end bins 0 and 255 frequent */
            int k = (int)(uvae_rng_u32(&rng) % 400) - 80;
            t->data[i] = (float)(k < 0 ? 0 : k > 255 ? 255 : k) / 255.0f;
            break;
        }
        case V_LOGSCALE: t->data[i] = -5.0f + 4.5f * u; break;   /* scales e^-5 .. e^-0.5 */
        case V_DISTINCT: t->data[i] = (float)i; break;   /* shuffled below */
        default: t->data[i] = 2 * u - 1; break;
        }
    }
    if (s->kind == V_DISTINCT) {                         /* a permutation of distinct values in [-1, 1) */
        for (size_t i = t->size; i > 1; i--) {
            size_t j = uvae_rng_u32(&rng) % i;
            float tmp = t->data[i - 1]; t->data[i - 1] = t->data[j]; t->data[j] = tmp;
        }
        for (size_t i = 0; i < t->size; i++) t->data[i] = 2.0f * t->data[i] / (float)t->size - 1;
    }
}

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
static uvae_tensor *b_bn_relu(uvae_ctx *c, uvae_tensor **t) { return uvae_batch_norm2d_relu(c, t[0], t[1], t[2], t[3], t[4], 0.1f, 1e-5f); }
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
static uvae_tensor *b_reshape(uvae_ctx *c, uvae_tensor **t) {     /* [N,C,H,W] -> [N*C, H*W] */
    int nc = t[0]->shape[0] * t[0]->shape[1];
    return uvae_tanh(c, uvae_reshape(c, t[0], 2, (int[]){nc, (int)(t[0]->size / (size_t)nc)}));
}
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
static uvae_tensor *b_dlog(uvae_ctx *c, uvae_tensor **t) { return uvae_discretized_logistic_nll(c, t[0], t[1], t[2]); }

#define T4(a, b, c, d) 4, {a, b, c, d}
#define T3(a, b, c) 3, {a, b, c, 0}
#define T2(a, b) 2, {a, b, 0, 0}
#define T1(a) 1, {a, 0, 0, 0}
#define X4(a, b, c, d) {T4(a, b, c, d), 1, V_UNIFORM, 0}   /* a uniform input with a gradient */
#define X2(a, b) {T2(a, b), 1, V_UNIFORM, 0}
#define X1(a) {T1(a), 1, V_UNIFORM, 0}
#endif
