/* tests/test_unet.c — the UNet segmentation path of examples/unet_pets.c, end to end on the CPU:
   a tiny UNet overfits 4 images (real Oxford-IIIT Pet images when the shared data is present,
   else generated blobs with trimap-like borders), scored in eval mode through the pooled
   confusion-matrix metrics; plus hand-checked metric values. */
#include "test.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TU_S 32
#define TU_N 4

/* 4 generated images: a bright disc (pet) on a darker textured background, with a 1-pixel ring of
   border class around the disc, as in the trimaps. */
static void tu_make_blobs(uvae_pets *p) {
    const int S = TU_S;
    uvae_rng rng;
    uvae_rng_seed(&rng, 7);
    for (int n = 0; n < TU_N; n++) {
        float cx = 8 + 16 * uvae_rng_uniform(&rng), cy = 8 + 16 * uvae_rng_uniform(&rng), r = 5 + 4 * uvae_rng_uniform(&rng);
        float col[3] = {0.6f + 0.4f * uvae_rng_uniform(&rng), 0.5f * uvae_rng_uniform(&rng), 0.3f + 0.5f * uvae_rng_uniform(&rng)};
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                float d = sqrtf((x - cx) * (x - cx) + (y - cy) * (y - cy));
                int cls = d < r - 1 ? 0 : d < r + 1 ? 2 : 1;
                p->masks[(size_t)n * S * S + (size_t)y * S + x] = (unsigned char)cls;
                for (int c = 0; c < 3; c++) {
                    float v = cls == 0 ? col[c] : cls == 2 ? 0.5f * col[c] + 0.2f : 0.15f + 0.2f * uvae_rng_uniform(&rng);
                    p->images[((size_t)n * 3 + (size_t)c) * S * S + (size_t)y * S + x] = v;
                }
            }
        snprintf(p->names[n], 64, "blob_%d", n);
    }
}

/* 1: real images loaded; 0: generated ones (or -1 on an allocation failure). */
static int tu_data(uvae_pets *p) {
    const char *list = "/tmp/uvt_unet_list.txt";
    FILE *f = fopen(UVT_DATA_DIR "/oxford-pets/annotations/trainval.txt", "r");
    memset(p, 0, sizeof *p);
    if (f) {
        FILE *g;
        fclose(f);
        if ((g = fopen(list, "w")) != NULL) {
            fputs("Abyssinian_100 1 1 1\nBengal_100 6 1 2\namerican_bulldog_100 2 2 1\nAbyssinian_101 1 1 1\n", g);
            if (fclose(g) == 0 && uvae_pets_load(UVT_DATA_DIR "/oxford-pets", list, TU_S, p) == UVAE_OK && p->n == TU_N) {
                remove(list);
                return 1;
            }
            printf("note: real pet images not loaded (%s); using generated blobs\n", uvae_last_error());
            uvae_pets_free(p);
            remove(list);
        }
    }
    p->n = TU_N;
    p->size = TU_S;
    p->images = (float *)malloc((size_t)TU_N * 3 * TU_S * TU_S * sizeof(float));
    p->masks = (unsigned char *)malloc((size_t)TU_N * TU_S * TU_S);
    p->names = (char (*)[64])malloc((size_t)TU_N * 64);
    if (!p->images || !p->masks || !p->names) { uvae_pets_free(p); return -1; }
    tu_make_blobs(p);
    return 0;
}

static void test_overfit(void) {
    const int S = TU_S, steps = 100;
    uvae_unet_config cfg = {3, 3, 8, 2, UVAE_DOWN_MAXPOOL, UVAE_UP_TRANSPOSE};
    uvae_unet net;
    uvae_optim opt;
    uvae_pets p;
    uvae_ctx *ctx = NULL;
    uvae_tensor *x = NULL, *y = NULL, *z;
    uvae_confusion conf;
    uvae_seg_metrics sm;
    float mean[3], std[3], first = 0, last = 0, *lg = NULL;
    unsigned char *pred = NULL;
    int idx[TU_N] = {0, 1, 2, 3}, real, ok = 1;
    clock_t t0 = clock();
    memset(&net, 0, sizeof net);
    memset(&opt, 0, sizeof opt);
    real = tu_data(&p);
    CHECK(real >= 0, "overfit: allocating the generated images");
    if (real < 0) return;
    uvae_pets_stats(&p, mean, std);
    CHECK(uvae_unet_init(&net, &cfg, 42) == UVAE_OK, "overfit: unet init: %s", uvae_last_error());
    CHECK(uvae_optim_init(&opt, &net.params, UVAE_ADAM, 1e-2f) == UVAE_OK, "overfit: optim init: %s", uvae_last_error());
    ctx = uvae_ctx_new(0);
    x = uvae_tensor_new(4, (int[]){TU_N, 3, S, S});
    y = uvae_tensor_new(3, (int[]){TU_N, S, S});
    lg = (float *)malloc((size_t)TU_N * 3 * S * S * sizeof(float));
    pred = (unsigned char *)malloc((size_t)TU_N * S * S);
    CHECK(ctx && x && y && lg && pred, "overfit: allocations");
    if (!ctx || !x || !y || !lg || !pred || !net.params.data || !opt.m) goto done;
    CHECK(uvae_pets_batch(&p, idx, TU_N, mean, std, NULL, 0, x, y) == UVAE_OK, "overfit: batch: %s", uvae_last_error());
    for (int s = 0; s < steps && ok; s++) {
        uvae_tensor *loss;
        uvae_ctx_reset(ctx, 1);
        uvae_params_zero_grad(&net.params);
        loss = uvae_cross_entropy(ctx, uvae_unet_forward(ctx, &net, x), y);
        ok = loss && uvae_backward(ctx, loss) == UVAE_OK &&
             uvae_optim_step(&opt, &net.params, uvae_lr_onecycle(s, steps, 1e-2f)) == UVAE_OK;
        if (loss) { if (s == 0) first = loss->data[0]; last = loss->data[0]; }
    }
    CHECK(ok, "overfit: a training step failed: %s", uvae_last_error());
    CHECK(last < 0.5f * first, "overfit: loss %g -> %g did not halve", (double)first, (double)last);
    /* eval mode: batch norm uses its running statistics */
    uvae_ctx_reset(ctx, 0);
    z = uvae_unet_forward(ctx, &net, x);
    CHECK(z && z->ndim == 4 && z->shape[1] == 3, "overfit: eval forward: %s", uvae_last_error());
    if (!z) goto done;
    memcpy(lg, z->data, z->size * sizeof(float));
    for (int n = 0; n < TU_N; n++)
        for (int i = 0; i < S * S; i++) {
            const float *q = lg + (size_t)n * 3 * S * S + i;
            int best = 0;
            for (int c = 1; c < 3; c++)
                if (q[(size_t)c * S * S] > q[(size_t)best * S * S]) best = c;
            pred[n * S * S + i] = (unsigned char)best;
        }
    memset(&conf, 0, sizeof conf);
    uvae_confusion_add(&conf, p.masks, pred, (size_t)TU_N * S * S);
    sm = uvae_confusion_metrics(&conf);
    CHECK(sm.pet_iou > 0.95, "overfit (%s images): eval pet IoU %.4f <= 0.95 (loss %g -> %g)", real ? "real" : "generated",
          sm.pet_iou, (double)first, (double)last);
    CHECK(sm.pixel_acc > 0.9, "overfit: eval pixel accuracy %.4f", sm.pixel_acc);
    printf("unet overfit on 4 %s images, %d steps: loss %.3f -> %.3f, eval pet IoU %.4f mIoU %.4f pixel acc %.4f (%.1f s cpu)\n",
           real ? "real pet" : "generated", steps, (double)first, (double)last, sm.pet_iou, sm.miou, sm.pixel_acc,
           (double)(clock() - t0) / CLOCKS_PER_SEC);
done:
    free(lg);
    free(pred);
    uvae_tensor_free(x);
    uvae_tensor_free(y);
    uvae_ctx_free(ctx);
    uvae_optim_free(&opt);
    uvae_unet_free(&net);
    uvae_pets_free(&p);
}

/* Hand-computed metrics, including the example's binary-head mapping (pet 0 / background 1). */
static void test_metrics(void) {
    /* truth: pet pet bg border bg bg; pred: pet bg bg border pet bg */
    const unsigned char truth[6] = {0, 0, 1, 2, 1, 1}, pred[6] = {0, 1, 1, 2, 0, 1};
    const unsigned char bin_pred[6] = {0, 0, 1, 0, 1, 1};   /* a 1-class head never predicts border */
    uvae_confusion c;
    uvae_seg_metrics m;
    memset(&c, 0, sizeof c);
    uvae_confusion_add(&c, truth, pred, 6);
    m = uvae_confusion_metrics(&c);
    /* foreground truth {0,1,3}, predicted {0,3,4}: TP 2, FP 1, FN 1 */
    CHECK(fabs(m.pet_iou - 0.5) < 1e-12, "metrics: pet IoU %g != 0.5", m.pet_iou);
    CHECK(fabs(m.dice - 2.0 / 3.0) < 1e-12, "metrics: dice %g != 2/3", m.dice);
    CHECK(fabs(m.pixel_acc - 4.0 / 6.0) < 1e-12, "metrics: pixel acc %g != 4/6", m.pixel_acc);
    /* pet: TP 1, FP 1, FN 1 -> 1/3; background: TP 2, FP 1, FN 1 -> 1/2; border: 1 */
    CHECK(fabs(m.iou[0] - 1.0 / 3) < 1e-12 && fabs(m.iou[1] - 0.5) < 1e-12 && fabs(m.iou[2] - 1) < 1e-12,
          "metrics: per-class IoU %g %g %g", m.iou[0], m.iou[1], m.iou[2]);
    CHECK(fabs(m.miou - (1.0 / 3 + 0.5 + 1) / 3) < 1e-12, "metrics: mIoU %g", m.miou);
    memset(&c, 0, sizeof c);
    uvae_confusion_add(&c, truth, bin_pred, 6);
    m = uvae_confusion_metrics(&c);
    CHECK(fabs(m.pet_iou - 1.0) < 1e-12, "metrics: binary head pet IoU %g != 1 (border predicted as pet is foreground)", m.pet_iou);
    CHECK(fabs(m.iou[2]) < 1e-12, "metrics: binary head border IoU %g != 0", m.iou[2]);
    /* pooling: adding the same pairs twice changes no ratio */
    uvae_confusion_add(&c, truth, bin_pred, 6);
    CHECK(fabs(uvae_confusion_metrics(&c).pet_iou - 1.0) < 1e-12, "metrics: pooled pet IoU");
}

void suite_unet(void) {
    test_metrics();
    test_overfit();
}
