/* tests/test_grad.c — central finite differences for every op and loss.
   For each case: loss = sum(out * r) with a fixed random r; the tape's gradient of each input is
   compared with (L(x + h) - L(x - h)) / 2h, L accumulated in double, at up to 24 positions per input.
   Inputs are drawn away from kinks (ReLU at 0, max-pool ties) instead of loosening tolerances. */
#include "test.h"
#include <string.h>
#include "op_cases.h"
typedef struct { const char *name; build_fn f; int n_in; spec in[5]; int train; } gcase;

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
    {"upsample bilinear x2 2 wide", b_up_bil2, 1, {{T4(1, 2, 2, 2), 1, V_UNIFORM, 0}}, 1},
    {"upsample bilinear x2 1 wide", b_up_bil2, 1, {{T4(1, 2, 3, 1), 1, V_UNIFORM, 0}}, 1},
    {"upsample bilinear x3", b_up_bil3, 1, {{T4(1, 2, 3, 3), 1, V_UNIFORM, 0}}, 1},
    {"batch_norm2d train", b_bn, 5, {{T4(3, 2, 3, 3), 1, V_UNIFORM, 0}, {T1(2), 1, V_UNIFORM, 0}, {T1(2), 1, V_UNIFORM, 0}, {T1(2), 0, V_UNIFORM, 0}, {T1(2), 0, V_POS, 0}}, 1},
    {"batch_norm2d eval", b_bn, 5, {{T4(3, 2, 3, 3), 1, V_UNIFORM, 0}, {T1(2), 1, V_UNIFORM, 0}, {T1(2), 1, V_UNIFORM, 0}, {T1(2), 0, V_UNIFORM, 0}, {T1(2), 0, V_POS, 0}}, 0},
    {"batch_norm2d_relu train", b_bn_relu, 5, {{T4(3, 2, 3, 3), 1, V_UNIFORM, 0}, {T1(2), 1, V_UNIFORM, 0}, {T1(2), 1, V_UNIFORM, 0}, {T1(2), 0, V_UNIFORM, 0}, {T1(2), 0, V_POS, 0}}, 1},
    {"batch_norm2d_relu eval", b_bn_relu, 5, {{T4(3, 2, 3, 3), 1, V_UNIFORM, 0}, {T1(2), 1, V_UNIFORM, 0}, {T1(2), 1, V_UNIFORM, 0}, {T1(2), 0, V_UNIFORM, 0}, {T1(2), 0, V_POS, 0}}, 0},
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
    {"discretized_logistic", b_dlog, 3, {{T4(2, 1, 2, 3), 1, V_PROB, 0}, {T4(2, 1, 2, 3), 1, V_LOGSCALE, 0}, {T4(2, 1, 2, 3), 0, V_PIXEL, 0}}, 1},
    {"discretized_logistic wide", b_dlog, 3, {{T2(4, 6), 1, V_UNIFORM, 0}, {T2(4, 6), 1, V_SMALL, 0}, {T2(4, 6), 0, V_PIXEL, 0}}, 1},
};

void suite_grad(void) {
    uvae_rng_seed(&rng, 2024);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) gradcheck(&cases[i]);
}
