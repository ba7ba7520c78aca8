/* bench/layers.c — the UNet's convolutions one at a time: where a training step's time goes.
   Not a test: it reports numbers.  make build/layers && OMP_NUM_THREADS=2 ./build/layers
     [--batch N] [--size S] [--width W] [--reps R] [--only I]
   Each row: one convolution of the maxpool + transposed UNet (depth 4; S x S input, batch N, base
   width W: 128, 4, 64 by default, the CPU bench's shape) as uvae_conv2d / uvae_conv_transpose2d
   forward, then forward + backward (the weight and input gradients, the output's gradient all
   ones), best of R runs (default 4) after one warm-up; GFLOP/s as the direct method counts them
   (3 products of 2 N Ho Wo Co Ci k^2 FLOPs for forward + backward: Winograd does fewer). The
   rows' times add up to about the convolutions' share of a step of `bench --only mp+tr+ce` (its
   first convolution, 3 -> W channels, and the 1x1 head are left out). --only I: row I alone. */
#define _POSIX_C_SOURCE 200809L
#define UNETVAE_IMPLEMENTATION
#include "../unetvae.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static void fail(const char *what) {
    fprintf(stderr, "layers: %s: %s\n", what, uvae_last_error());
    exit(1);
}
static int arg_int(int argc, char **argv, int *i, int lo) {
    long v;
    char *end;
    if (*i + 1 >= argc) { fprintf(stderr, "layers: %s needs a value\n", argv[*i]); exit(1); }
    v = strtol(argv[++*i], &end, 10);
    if (*end || v < lo || v > 1 << 20) { fprintf(stderr, "layers: %s %s: want an integer >= %d\n", argv[*i - 1], argv[*i], lo); exit(1); }
    return (int)v;
}

typedef struct { int ci, co, side, transposed; } layer;   /* input channels, output channels, input side */

int main(int argc, char **argv) {
    int N = 4, S = 128, W = 64, reps = 4, only = -1, n = 0;
    layer L[32];
    uvae_ctx *ctx;
    double total = 0;
    uvae_rng rng;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch")) N = arg_int(argc, argv, &i, 1);
        else if (!strcmp(argv[i], "--size")) S = arg_int(argc, argv, &i, 16);
        else if (!strcmp(argv[i], "--width")) W = arg_int(argc, argv, &i, 1);
        else if (!strcmp(argv[i], "--reps")) reps = arg_int(argc, argv, &i, 1);
        else if (!strcmp(argv[i], "--only")) only = arg_int(argc, argv, &i, 0);
        else {
            fprintf(stderr, "usage: layers [--batch N] [--size S (a multiple of 16)] [--width W] [--reps R] [--only I]\n");
            return 1;
        }
    }
    if (S % 16) { fprintf(stderr, "layers: --size %d: want a multiple of 16 (four halvings)\n", S); return 1; }
    /* the encoder's double convolutions (the first one's 3 -> W left out), then per decoder level
       the transposed convolution and the double convolution after the concatenation */
    L[n++] = (layer){W, W, S, 0};
    for (int d = 1, c = W; d <= 4; d++, c *= 2) {
        L[n++] = (layer){c, 2 * c, S >> d, 0};
        L[n++] = (layer){2 * c, 2 * c, S >> d, 0};
    }
    for (int d = 3, c = 16 * W; d >= 0; d--, c /= 2) {
        L[n++] = (layer){c, c / 2, S >> (d + 1), 1};
        L[n++] = (layer){c, c / 2, S >> d, 0};
        L[n++] = (layer){c / 2, c / 2, S >> d, 0};
    }
    if (only >= n) { fprintf(stderr, "layers: --only %d: there are %d rows (0..%d)\n", only, n, n - 1); return 1; }
    if (!(ctx = uvae_ctx_new(0))) fail("context");
    uvae_rng_seed(&rng, 1);
    printf("layers: batch %d, %dx%d, width %d, %d thread(s), best of %d\n", N, S, S, W, UVAE__THREADS(), reps);
    for (int l = 0; l < n; l++) {
        const layer *y = &L[l];
        int k = y->transposed ? 2 : 3, side_out = y->transposed ? 2 * y->side : y->side;
        uvae_tensor *x, *w;
        double best_f = 1e30, best_fb = 1e30, flops;
        if (only >= 0 && l != only) continue;
        x = uvae_tensor_new_grad(4, (int[]){N, y->ci, y->side, y->side}, 1);
        w = y->transposed ? uvae_tensor_new_grad(4, (int[]){y->ci, y->co, k, k}, 1) : uvae_tensor_new_grad(4, (int[]){y->co, y->ci, k, k}, 1);
        if (!x || !w) fail("tensors");
        for (size_t i = 0; i < x->size; i++) x->data[i] = uvae_rng_normal(&rng);
        for (size_t i = 0; i < w->size; i++) w->data[i] = 0.05f * uvae_rng_normal(&rng);
        for (int r = 0; r <= reps; r++) {   /* r = 0: the warm-up (the arena grows) */
            uvae_tensor *out, *loss;
            double t0, t1, t2;
            uvae_ctx_reset(ctx, 1);
            t0 = now();
            out = y->transposed ? uvae_conv_transpose2d(ctx, x, w, NULL, 2, 0) : uvae_conv2d(ctx, x, w, NULL, 1, 1);
            t1 = now();
            if (!(loss = uvae_sum(ctx, out)) || uvae_backward(ctx, loss) != UVAE_OK) fail("step");
            t2 = now();
            if (r > 0 && t1 - t0 < best_f) best_f = t1 - t0;
            if (r > 0 && t2 - t0 < best_fb) best_fb = t2 - t0;
        }
        flops = 3 * 2.0 * N * (double)y->side * y->side * y->co * y->ci * k * k;   /* per input pixel: both kinds */
        total += best_fb;
        printf("%2d  %-9s %5d -> %-5d %3dx%-3d  forward %8.2f ms  forward + backward %8.2f ms  %6.1f GFLOP/s\n", l,
               y->transposed ? "convT 2x2" : "conv 3x3", y->ci, y->co, side_out, side_out, 1e3 * best_f, 1e3 * best_fb, flops / best_fb * 1e-9);
        uvae_tensor_free(x);
        uvae_tensor_free(w);
    }
    printf("sum of the rows' forward + backward: %.1f ms\n", 1e3 * total);
    uvae_ctx_free(ctx);
    return 0;
}
