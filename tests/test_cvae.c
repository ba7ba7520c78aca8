/* tests/test_cvae.c — the classifier (the CVAE example's judge) and the frozen-judge label loss.
   1. uvae_classifier learns a synthetic 4-class task (the bright quadrant of an 8x8 image) on the
      CPU in a few seconds: held-out accuracy > 0.9.
   2. A frozen judge behaves as in evaluation mode inside a training step, and the gradient of
      cross-entropy(judge(sigmoid(decoder logits)), wrong labels) reaches the CVAE's decoder,
      encoder and label embedding; zeroing the judge's gradients and stepping only the CVAE leaves
      the judge (weights and batch-norm statistics) bit-identical.
   3. uvae_save / uvae_load round trip of a classifier: identical logits; a wrong config is refused.
   4. The reparameterisation: with the noise fixed, the CVAE loss's gradients (through mu, logvar,
      the label embedding and the decoder's label maps) match central finite differences.
   5. A tiny CVAE on 256 real MNIST digits halves its loss (SKIP without ../shared/data). */
#include "test.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QS 8   /* image side of the synthetic task */

/* n images [n,1,8,8]: noise in [0,0.3), the quadrant of class y[i] (0..3) raised by 0.6. */
static void make_quadrants(uvae_rng *r, int n, float *x, float *y) {
    for (int i = 0; i < n; i++) {
        int c = (int)(uvae_rng_u32(r) % 4), qy = c / 2, qx = c % 2;
        y[i] = (float)c;
        for (int a = 0; a < QS; a++)
            for (int b = 0; b < QS; b++) {
                float v = 0.3f * uvae_rng_uniform(r);
                if (a / (QS / 2) == qy && b / (QS / 2) == qx) v += 0.6f;
                x[(size_t)i * QS * QS + a * QS + b] = v;
            }
    }
}

static double abs_sum(const uvae_tensor *t) {
    double s = 0;
    if (!t || !t->grad) return 0;
    for (size_t i = 0; i < t->size; i++) s += fabs((double)t->grad[i]);
    return s;
}

static void test_classifier_learns(void) {
    enum { NTR = 256, NTE = 200, B = 32 };
    uvae_classifier_config cfg = {1, QS, 4, 4, 2};
    uvae_classifier m;
    uvae_optim opt;
    uvae_rng r;
    uvae_ctx *ctx = uvae_ctx_new(0);
    float *xtr = (float *)malloc(sizeof(float) * NTR * QS * QS), *ytr = (float *)malloc(sizeof(float) * NTR);
    float *xte = (float *)malloc(sizeof(float) * NTE * QS * QS), *yte = (float *)malloc(sizeof(float) * NTE);
    uvae_tensor *x = uvae_tensor_new(4, (int[]){B, 1, QS, QS}), *y = uvae_tensor_new(1, (int[]){B});
    uvae_tensor *xe = uvae_tensor_new(4, (int[]){NTE, 1, QS, QS});
    int right = 0, ok;
    CHECK(ctx && xtr && ytr && xte && yte && x && y && xe, "allocations");
    if (!(ctx && xtr && ytr && xte && yte && x && y && xe)) goto done;
    CHECK(uvae_classifier_init(&m, &(uvae_classifier_config){1, 6, 4, 4, 2}, 1) == UVAE_ERR_ARG, "size 6 is refused");
    CHECK(uvae_classifier_init(&m, &(uvae_classifier_config){0, 8, 4, 4, 2}, 1) == UVAE_ERR_ARG, "in_ch 0 is refused");
    ok = uvae_classifier_init(&m, &cfg, 7) == UVAE_OK;
    CHECK(ok, "classifier init: %s", uvae_last_error());
    if (!ok) goto done;
    CHECK(uvae_params_find(&m.params, "block2.bn2.running_var") && uvae_params_find(&m.params, "fc.weight"), "named parameters");
    CHECK(uvae_optim_init(&opt, &m.params, UVAE_ADAM, 1e-2f) == UVAE_OK, "optim");
    uvae_rng_seed(&r, 42);
    make_quadrants(&r, NTR, xtr, ytr);
    make_quadrants(&r, NTE, xte, yte);
    for (int step = 0; step < 80; step++) {
        int s = (step * B) % NTR;
        uvae_tensor *loss;
        memcpy(x->data, xtr + (size_t)s * QS * QS, sizeof(float) * B * QS * QS);
        memcpy(y->data, ytr + s, sizeof(float) * B);
        uvae_ctx_reset(ctx, 1);
        uvae_params_zero_grad(&m.params);
        loss = uvae_cross_entropy(ctx, uvae_classifier_forward(ctx, &m, x), y);
        if (uvae_backward(ctx, loss) != UVAE_OK || uvae_optim_step(&opt, &m.params, -1) != UVAE_OK) {
            CHECK(0, "training step %d: %s", step, uvae_last_error());
            break;
        }
    }
    memcpy(xe->data, xte, sizeof(float) * NTE * QS * QS);
    uvae_ctx_reset(ctx, 0);
    {
        uvae_tensor *lg = uvae_classifier_forward(ctx, &m, xe);
        CHECK(lg && lg->ndim == 2 && lg->shape[0] == NTE && lg->shape[1] == 4, "logits shape");
        if (lg)
            for (int i = 0; i < NTE; i++) {
                int k = 0;
                for (int c = 1; c < 4; c++)
                    if (lg->data[i * 4 + c] > lg->data[i * 4 + k]) k = c;
                right += k == (int)yte[i];
            }
    }
    CHECK(right > 0.9 * NTE, "held-out accuracy %.3f > 0.9", (double)right / NTE);
    uvae_optim_free(&opt);
    uvae_classifier_free(&m);
done:
    uvae_ctx_free(ctx);
    uvae_tensor_free(x); uvae_tensor_free(y); uvae_tensor_free(xe);
    free(xtr); free(ytr); free(xte); free(yte);
}

static void test_frozen_judge_label_loss(void) {
    enum { N = 8 };
    uvae_classifier J;
    uvae_cvae M;
    uvae_optim opt;
    uvae_rng r;
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_tensor *x = uvae_tensor_new(4, (int[]){N, 1, QS, QS}), *y = uvae_tensor_new(1, (int[]){N}), *yw = uvae_tensor_new(1, (int[]){N});
    float *judge0 = NULL, *cvae0 = NULL, ref[N * 4];
    int ok;
    if (!ctx || !x || !y || !yw) { CHECK(0, "allocations"); goto out; }
    ok = uvae_classifier_init(&J, &(uvae_classifier_config){1, QS, 4, 4, 2}, 3) == UVAE_OK &&
         uvae_cvae_init(&M, &(uvae_cvae_config){1, QS, 4, 4, 4, 4, 2, UVAE_BERNOULLI}, 5) == UVAE_OK;
    CHECK(ok, "init: %s", uvae_last_error());
    if (!ok) goto out;
    uvae_rng_seed(&r, 9);
    make_quadrants(&r, N, x->data, y->data);
    for (int i = 0; i < N; i++) yw->data[i] = (float)(((int)y->data[i] + 1 + i % 3) % 4);
    /* give the judge non-trivial running statistics, as after training */
    for (size_t i = 0; i < J.params.total; i++) J.params.data[i] += 0.05f * (uvae_rng_uniform(&r) - 0.5f);
    for (int i = 0; i < J.params.n; i++)
        if (!J.params.p[i]->trainable && strstr(J.params.p[i]->name, "running_var"))
            for (size_t k = 0; k < J.params.p[i]->t.size; k++) J.params.p[i]->t.data[k] = 0.5f + uvae_rng_uniform(&r);
    judge0 = (float *)malloc(sizeof(float) * J.params.total);
    cvae0 = (float *)malloc(sizeof(float) * M.params.total);
    if (!judge0 || !cvae0) { CHECK(0, "allocations"); goto free_models; }
    memcpy(judge0, J.params.data, sizeof(float) * J.params.total);
    memcpy(cvae0, M.params.data, sizeof(float) * M.params.total);
    CHECK(uvae_optim_init(&opt, &M.params, UVAE_ADAM, 1e-3f) == UVAE_OK, "optim");

    /* a frozen judge in a training context == the judge in evaluation mode */
    uvae_ctx_reset(ctx, 0);
    {
        uvae_tensor *l = uvae_classifier_forward(ctx, &J, x);
        CHECK(l != NULL, "eval forward");
        if (l) memcpy(ref, l->data, sizeof ref);
    }
    J.frozen = 1;
    uvae_ctx_reset(ctx, 1);
    {
        uvae_tensor *l = uvae_classifier_forward(ctx, &J, x);
        CHECK(l && !memcmp(ref, l->data, sizeof ref), "frozen forward in training mode equals the eval forward");
    }

    /* the label loss: CE of the frozen judge on sigmoid(decoder logits) with wrong labels */
    uvae_ctx_reset(ctx, 1);
    uvae_params_zero_grad(&M.params);
    uvae_params_zero_grad(&J.params);
    {
        uvae_cvae_out o = uvae_cvae_forward(ctx, &M, x, yw, NULL);
        uvae_tensor *ce = uvae_cross_entropy(ctx, uvae_classifier_forward(ctx, &J, uvae_sigmoid(ctx, o.logits)), yw);
        CHECK(ce && uvae_backward(ctx, ce) == UVAE_OK, "label-loss backward: %s", uvae_last_error());
    }
    CHECK(abs_sum(M.d2.w) > 0 && abs_sum(M.d1.w) > 0 && abs_sum(M.fc_dec.w) > 0, "decoder gradients are non-zero (%g, %g, %g)",
          abs_sum(M.d2.w), abs_sum(M.d1.w), abs_sum(M.fc_dec.w));
    CHECK(abs_sum(M.e1.w) > 0 && abs_sum(M.label_embed) > 0, "encoder and label-embedding gradients are non-zero");
    CHECK(abs_sum(J.fc.w) > 0, "the judge's own gradients accumulate (to be zeroed)");
    CHECK(!memcmp(judge0, J.params.data, sizeof(float) * J.params.total), "the frozen forward left the judge's running statistics alone");
    uvae_params_zero_grad(&J.params);
    CHECK(uvae_optim_step(&opt, &M.params, -1) == UVAE_OK, "cvae step");
    CHECK(uvae_grad_norm(&J.params) == 0.0f, "judge gradients zeroed");
    CHECK(!memcmp(judge0, J.params.data, sizeof(float) * J.params.total), "the judge is bit-identical after the CVAE step");
    CHECK(memcmp(cvae0, M.params.data, sizeof(float) * M.params.total) != 0, "the CVAE moved");
    uvae_optim_free(&opt);
free_models:
    free(judge0); free(cvae0);
    uvae_cvae_free(&M);
    uvae_classifier_free(&J);
out:
    uvae_ctx_free(ctx);
    uvae_tensor_free(x); uvae_tensor_free(y); uvae_tensor_free(yw);
}

static void test_classifier_save_load(void) {
    uvae_classifier a, b, c;
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_tensor *x = uvae_tensor_new(4, (int[]){4, 3, 12, 12});
    uvae_rng r;
    char path[512];
    const char *tmp = getenv("TMPDIR");
    float la[4 * 5];
    int ok;
    snprintf(path, sizeof path, "%s/uvae_cvae_test.%ld.%u.judge.safetensors", tmp && *tmp ? tmp : "/tmp", (long)time(NULL),
             (unsigned)(uintptr_t)&r % 100000u);
    if (!ctx || !x) { CHECK(0, "allocations"); goto out; }
    ok = uvae_classifier_init(&a, &(uvae_classifier_config){3, 12, 5, 3, 2}, 11) == UVAE_OK &&
         uvae_classifier_init(&b, &(uvae_classifier_config){3, 12, 5, 3, 2}, 12) == UVAE_OK &&
         uvae_classifier_init(&c, &(uvae_classifier_config){3, 12, 5, 4, 2}, 12) == UVAE_OK;
    CHECK(ok, "init: %s", uvae_last_error());
    if (!ok) goto out;
    uvae_rng_seed(&r, 4);
    for (size_t i = 0; i < x->size; i++) x->data[i] = uvae_rng_uniform(&r);
    for (int i = 0; i < a.params.n; i++)   /* non-default running statistics */
        if (!a.params.p[i]->trainable)
            for (size_t k = 0; k < a.params.p[i]->t.size; k++) a.params.p[i]->t.data[k] = 0.5f + uvae_rng_uniform(&r);
    uvae_ctx_reset(ctx, 0);
    {
        uvae_tensor *l = uvae_classifier_forward(ctx, &a, x);
        CHECK(l != NULL, "forward a");
        if (l) memcpy(la, l->data, sizeof la);
    }
    CHECK(uvae_save(path, &a.params, NULL, NULL, 0) == UVAE_OK, "save: %s", uvae_last_error());
    CHECK(uvae_load(path, &b.params, NULL) == UVAE_OK, "load: %s", uvae_last_error());
    CHECK(!memcmp(a.params.data, b.params.data, sizeof(float) * a.params.total), "parameters and buffers round-trip exactly");
    uvae_ctx_reset(ctx, 0);
    {
        uvae_tensor *l = uvae_classifier_forward(ctx, &b, x);
        CHECK(l && !memcmp(la, l->data, sizeof la), "identical logits after loading");
    }
    CHECK(uvae_load(path, &c.params, NULL) != UVAE_OK, "a judge of another width is refused");
    remove(path);
    uvae_classifier_free(&a); uvae_classifier_free(&b); uvae_classifier_free(&c);
out:
    uvae_ctx_free(ctx);
    uvae_tensor_free(x);
}

/* The reparameterisation inside the model: with the noise eps fixed, the loss (Bernoulli NLL + KL,
   both through z = mu + exp(logvar/2) * eps) is a plain function of the parameters, so its
   gradient w.r.t. fc_mu, fc_logvar, the label embedding and the decoder's label maps must match
   central finite differences (float forward: step 1e-2, tolerance 2 % + 1e-3 + the quotient's
   rounding noise, 2 ulp of the loss / 2e-2). Both likelihoods. */
static double cvae_loss_at(uvae_ctx *ctx, uvae_cvae *M, uvae_tensor *x, uvae_tensor *y, uvae_tensor *eps) {
    uvae_tensor *l;
    uvae_ctx_reset(ctx, 0);
    l = uvae_cvae_loss(ctx, uvae_cvae_forward(ctx, M, x, y, eps), x);
    return l ? (double)l->data[0] : NAN;
}
static void test_reparam_grad(int likelihood) {
    enum { N = 6 };
    uvae_cvae M;
    uvae_rng r;
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_tensor *x = uvae_tensor_new(4, (int[]){N, 1, QS, QS}), *y = uvae_tensor_new(1, (int[]){N});
    uvae_tensor *eps = uvae_tensor_new(2, (int[]){N, 4});
    const char *names[6] = {"fc_mu.weight", "fc_logvar.weight", "fc_logvar.bias", "label_embed.weight", "cond2.weight",
                            likelihood == UVAE_DLOGISTIC ? "dec2_scale.weight" : "dec2.bias"};
    int checked = 0, bad = 0;
    double worst = 0;
    if (!ctx || !x || !y || !eps || uvae_cvae_init(&M, &(uvae_cvae_config){1, QS, 4, 4, 4, 3, 2, likelihood}, 11) != UVAE_OK) {
        CHECK(0, "setup: %s", uvae_last_error());
        goto out;
    }
    uvae_rng_seed(&r, 21);
    make_quadrants(&r, N, x->data, y->data);
    if (likelihood == UVAE_DLOGISTIC)   /* 8-bit pixels */
        for (size_t i = 0; i < x->size; i++) x->data[i] = floorf(x->data[i] * 255 + 0.5f) / 255;
    for (size_t i = 0; i < eps->size; i++) eps->data[i] = uvae_rng_normal(&r);
    for (size_t i = 0; i < M.fc_logvar.w->size; i++) M.fc_logvar.w->data[i] *= 3;   /* logvar far from 0: exp matters */
    uvae_ctx_reset(ctx, 1);
    uvae_params_zero_grad(&M.params);
    {
        uvae_tensor *l = uvae_cvae_loss(ctx, uvae_cvae_forward(ctx, &M, x, y, eps), x);
        CHECK(l && uvae_backward(ctx, l) == UVAE_OK, "backward: %s", uvae_last_error());
    }
    for (int k = 0; k < 6; k++) {
        uvae_param *p = uvae_params_find(&M.params, names[k]);
        if (!p) { CHECK(0, "parameter %s", names[k]); continue; }
        for (size_t i = 0; i < p->t.size; i += 1 + p->t.size / 7) {
            float keep = p->t.data[i];
            double up, down, fd, g = p->t.grad[i], err;
            p->t.data[i] = keep + 1e-2f;
            up = cvae_loss_at(ctx, &M, x, y, eps);
            p->t.data[i] = keep - 1e-2f;
            down = cvae_loss_at(ctx, &M, x, y, eps);
            p->t.data[i] = keep;
            fd = (up - down) / 2e-2;
            /* the float loss resolves changes of one ulp: the difference quotient is noisy by ~2 ulp / 2h */
            err = fabs(fd - g) / (1e-3 + 2 * 1.2e-7 * fabs(up) / 2e-2 + 0.02 * fabs(fd));
            worst = err > worst ? err : worst;
            bad += err > 1;
            checked++;
        }
    }
    CHECK(checked > 20 && bad == 0, "reparameterised CVAE loss (%s): %d of %d gradients off finite differences (worst ratio %.3f)",
          likelihood == UVAE_DLOGISTIC ? "discretized logistic" : "Bernoulli", bad, checked, worst);
    uvae_cvae_free(&M);
out:
    uvae_ctx_free(ctx);
    uvae_tensor_free(x); uvae_tensor_free(y); uvae_tensor_free(eps);
}

/* A tiny CVAE on the first 256 real MNIST training digits halves its loss on the CPU (SKIP without
   ../shared/data). */
static void test_tiny_cvae_mnist(void) {
    uvae_dataset d;
    uvae_cvae M;
    uvae_optim opt;
    uvae_ctx *ctx;
    uvae_tensor *x, *y;
    int idx[64];
    double first = 0, last = 0;
    memset(&d, 0, sizeof d);
    if (uvae_load_idx(UVT_DATA_DIR "/mnist/train-images-idx3-ubyte.gz", UVT_DATA_DIR "/mnist/train-labels-idx1-ubyte.gz", &d) != UVAE_OK) {
        printf("SKIP tiny CVAE on MNIST: %s\n", uvae_last_error());
        return;
    }
    ctx = uvae_ctx_new(0);
    x = uvae_tensor_new(4, (int[]){64, 1, 28, 28});
    y = uvae_tensor_new(1, (int[]){64});
    if (!ctx || !x || !y || uvae_cvae_init(&M, &(uvae_cvae_config){1, 28, 10, 8, 8, 8, 2, UVAE_BERNOULLI}, 3) != UVAE_OK) {
        CHECK(0, "setup: %s", uvae_last_error());
        goto out;
    }
    uvae_optim_init(&opt, &M.params, UVAE_ADAM, 3e-3f);
    for (int epoch = 0; epoch < 12; epoch++) {
        double sum = 0;
        for (int b = 0; b < 4; b++) {
            uvae_tensor *l;
            for (int i = 0; i < 64; i++) idx[i] = b * 64 + i;
            uvae_dataset_batch(&d, idx, 64, x, y);
            uvae_ctx_reset(ctx, 1);
            uvae_params_zero_grad(&M.params);
            l = uvae_cvae_loss(ctx, uvae_cvae_forward(ctx, &M, x, y, NULL), x);
            if (!l || uvae_backward(ctx, l) != UVAE_OK) { CHECK(0, "step: %s", uvae_last_error()); epoch = 99; break; }
            sum += l->data[0];
            uvae_optim_step(&opt, &M.params, -1);
        }
        if (epoch == 0) first = sum / 4;
        last = sum / 4;
    }
    printf("tiny CVAE on 256 MNIST digits, 12 epochs: loss %.1f -> %.1f nats/image\n", first, last);
    CHECK(last < 0.5 * first, "the loss halves: %.1f -> %.1f", first, last);
    uvae_optim_free(&opt);
    uvae_cvae_free(&M);
out:
    uvae_ctx_free(ctx);
    uvae_tensor_free(x); uvae_tensor_free(y);
    uvae_dataset_free(&d);
}

void suite_cvae(void) {
    clock_t t0 = clock();
    test_classifier_learns();
    test_frozen_judge_label_loss();
    test_classifier_save_load();
    test_reparam_grad(UVAE_BERNOULLI);
    test_reparam_grad(UVAE_DLOGISTIC);
    test_tiny_cvae_mnist();
    printf("cvae suite: %.1f s CPU\n", (double)(clock() - t0) / CLOCKS_PER_SEC);
}
