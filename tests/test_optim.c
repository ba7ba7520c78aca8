/* tests/test_optim.c — optimizers through autograd, clipping, schedules (exact PyTorch parity of
   the update rules and schedules is in test_parity.c). */
#include "test.h"
#include <string.h>

/* minimise sum((p - target)^2) through the tape; returns the final loss */
static float fit(int kind, float lr, int steps) {
    uvae_params P;
    uvae_optim o;
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_tensor *p, *neg = uvae_tensor_new(1, (int[]){10});
    float last = 0;
    uvae_params_init(&P);
    p = uvae_params_add(&P, 1, UVAE_INIT_UNIFORM, 1.0f, 1, (int[]){10}, "p");
    uvae_params_alloc(&P, 4);
    for (int i = 0; i < 10; i++) neg->data[i] = -(float)i / 3;   /* -target */
    uvae_optim_init(&o, &P, kind, lr);
    for (int s = 0; s < steps; s++) {
        uvae_tensor *d, *loss;
        uvae_ctx_reset(ctx, 1);
        uvae_params_zero_grad(&P);
        d = uvae_add(ctx, p, neg);
        loss = uvae_sum(ctx, uvae_mul(ctx, d, d));
        uvae_backward(ctx, loss);
        last = loss->data[0];
        uvae_optim_step(&o, &P, -1);
    }
    uvae_optim_free(&o);
    uvae_params_free(&P);
    uvae_tensor_free(neg);
    uvae_ctx_free(ctx);
    return last;
}

/* Adam with weight_decay > 0 (L2: wd p added to the gradient) and AdamW against the update rule
   in double, three steps on 11 parameters (x86 builds update them four at a time with SSE, the
   zeros after them in the 16-float slice too; others one at a time) */
static void test_adam_rule(void) {
    for (int kind = UVAE_ADAM; kind <= UVAE_ADAMW; kind++) {
        uvae_params P;
        uvae_optim o;
        uvae_tensor *p;
        double pd[11], md[11] = {0}, vd[11] = {0}, err = 0, lr = 0.01, wd = 0.3;
        uvae_params_init(&P);
        p = uvae_params_add(&P, 1, UVAE_INIT_ONE, 0, 1, (int[]){11}, "p");
        uvae_params_alloc(&P, 0);
        for (int i = 0; i < 11; i++) pd[i] = p->data[i] = 0.5f - 0.1f * (float)i;
        uvae_optim_init(&o, &P, kind, (float)lr);
        o.weight_decay = (float)wd;
        for (int t = 1; t <= 3; t++) {
            double bc1 = 1 - pow(0.9, t), bc2 = 1 - pow(0.999, t);
            for (int i = 0; i < 11; i++) {
                double g = p->grad[i] = (float)(0.2 * ((i * 7 + t * 3) % 5) - 0.4);
                if (kind == UVAE_ADAMW) pd[i] *= 1 - lr * wd;
                else g += wd * pd[i];
                md[i] = 0.9 * md[i] + 0.1 * g;
                vd[i] = 0.999 * vd[i] + 0.001 * g * g;
                pd[i] -= lr / bc1 * md[i] / (sqrt(vd[i]) / sqrt(bc2) + 1e-8);
            }
            uvae_optim_step(&o, &P, -1);
            for (int i = 0; i < 11; i++) err = fmax(err, fabs(p->data[i] - pd[i]));
        }
        CHECK(err < 2e-6, "%s with weight decay 0.3, three steps: max error %.3g against the rule in double",
              kind == UVAE_ADAM ? "Adam (L2)" : "AdamW", err);
        uvae_optim_free(&o);
        uvae_params_free(&P);
    }
}

void suite_optim(void) {
    float l;
    test_adam_rule();
    l = fit(UVAE_SGD, 0.02f, 200);   CHECK(l < 1e-4f, "SGD+momentum reaches the minimum: loss %g", l);
    l = fit(UVAE_ADAM, 0.05f, 400);  CHECK(l < 1e-3f, "Adam reaches the minimum: loss %g", l);
    l = fit(UVAE_ADAMW, 0.05f, 400); CHECK(l < 1e-2f, "AdamW gets near the minimum: loss %g", l);
    {   /* AdamW with a zero gradient only decays: p *= (1 - lr wd) per step */
        uvae_params P;
        uvae_optim o;
        uvae_tensor *p;
        uvae_params_init(&P);
        p = uvae_params_add(&P, 1, UVAE_INIT_ONE, 0, 1, (int[]){3}, "p");
        uvae_params_alloc(&P, 0);
        uvae_optim_init(&o, &P, UVAE_ADAMW, 0.1f);
        o.weight_decay = 0.5f;
        uvae_optim_step(&o, &P, -1);
        uvae_optim_step(&o, &P, -1);
        CHECK(fabsf(p->data[0] - 0.95f * 0.95f) < 1e-6f, "AdamW decoupled decay: %g", p->data[0]);
        /* clipping: norm of (3, 4, 0) = 5 clipped to 1 */
        p->grad[0] = 3; p->grad[1] = 4; p->grad[2] = 0;
        l = uvae_clip_grad_norm(&P, 1.0f);
        CHECK(fabsf(l - 5) < 1e-5f && fabsf(uvae_grad_norm(&P) - 1) < 1e-5f, "clip 5 -> 1: before %g after %g", l, uvae_grad_norm(&P));
        l = uvae_clip_grad_norm(&P, 10.0f);
        CHECK(fabsf(p->grad[1] - 0.8f) < 1e-5f, "no clipping below the limit");
        uvae_optim_free(&o);
        CHECK(uvae_optim_init(&o, &P, 7, 0.1f) == UVAE_ERR_ARG, "unknown optimizer refused");
        uvae_params_free(&P);
    }
    /* schedule shapes (exact values against PyTorch are in the parity suite) */
    CHECK(fabsf(uvae_lr_onecycle(0, 100, 1e-3f) - 4e-5f) < 1e-9f, "one-cycle starts at max/25");
    CHECK(fabsf(uvae_lr_onecycle(29, 100, 1e-3f) - 1e-3f) < 1e-9f, "one-cycle peaks at 30 %%");
    CHECK(uvae_lr_onecycle(99, 100, 1e-3f) < 1e-8f, "one-cycle ends near max/25/1e4");
    CHECK(fabsf(uvae_lr_cosine(0, 100, 1e-3f, 0) - 1e-3f) < 1e-9f && fabsf(uvae_lr_cosine(50, 100, 1e-3f, 0) - 5e-4f) < 1e-9f, "cosine from max through half");
}
