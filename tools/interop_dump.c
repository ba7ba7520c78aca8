/* tools/interop_dump.c — one model of ours, its checkpoint, an input and its eval-mode output, for
   tools/interop.py to load into a PyTorch twin and compare.

     interop_dump unet       [--in 3] [--classes 3] [--width 4] [--depth 2] [--down maxpool|strided]
                             [--up transpose|upsample] [--size 32]                          --out DIR
     interop_dump cvae       [--in 1] [--size 16] [--classes 10] [--latent 8] [--width 8] [--embed 8]
                             [--cond-planes 0] [--likelihood bernoulli|logistic]            --out DIR
     interop_dump classifier [--in 1] [--size 16] [--classes 10] [--width 8] [--blocks 2]   --out DIR
     common flags: --batch 2, --steps 3 (Adam steps before the dump, so that the weights have left
                   their initial values and the batch-norm running statistics are not 0 and 1),
                   --seed 1

   Writes DIR/checkpoint.safetensors (uvae_save: every parameter and buffer, the Adam moments, the
   config as metadata) and DIR/io.safetensors: "input.x" (and for the CVAE "input.labels" and
   "input.eps", the noise of z = mu + exp(logvar/2) eps) and the eval-mode outputs "out.logits"
   (and for the CVAE "out.log_scale" with the logistic likelihood, "out.mu", "out.logvar").
   Build: make build/interop_dump (the Makefile's interop target builds and runs it). */
#define UNETVAE_IMPLEMENTATION
#include "../unetvae.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { UNET, CVAE, CLASSIFIER };

static void die(const char *what) {
    fprintf(stderr, "interop_dump: %s\n", what);
    exit(1);
}
static void die_lib(const char *what) {
    fprintf(stderr, "interop_dump: %s: %s\n", what, uvae_last_error());
    exit(1);
}
static int to_int(const char *flag, const char *v) {
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < 0 || x > 100000) {
        fprintf(stderr, "interop_dump: %s: bad value '%s'\n", flag, v);
        exit(1);
    }
    return (int)x;
}
static int choice(const char *flag, const char *v, const char *a, const char *b) {
    if (!strcmp(v, a)) return 0;
    if (!strcmp(v, b)) return 1;
    fprintf(stderr, "interop_dump: %s: '%s' is neither %s nor %s\n", flag, v, a, b);
    exit(1);
}

/* An arena tensor filled from host values. */
static uvae_tensor *staged(uvae_ctx *ctx, int ndim, const int *shape, const float *host) {
    uvae_tensor *t = uvae_ctx_tensor(ctx, ndim, shape);
    if (!t || uvae_tensor_copy_in(t, host) != UVAE_OK) die_lib("staging an input");
    return t;
}
/* One entry of io.safetensors; the data is copied to the heap (arena tensors die at the next reset). */
static void keep(uvae_st_tensor *list, int *n, const char *name, const uvae_tensor *t) {
    uvae_st_tensor *s = &list[(*n)++];
    float *copy = (float *)malloc(t->size * sizeof(float));
    if (!copy || uvae_tensor_copy_out(t, copy) != UVAE_OK) die("out of memory");
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->ndim = t->ndim;
    memcpy(s->shape, t->shape, sizeof s->shape);
    s->size = t->size;
    s->data = copy;
}

int main(int argc, char **argv) {
    int kind, in = -1, classes = -1, width = -1, depth = 2, down = 0, up = 0, size = -1, latent = 8, embed = 8;
    int cond_planes = 0, likelihood = 0, blocks = 2, batch = 2, steps = 3, seed = 1, N, C, S;
    const char *out = NULL;
    char path[4096], v[12][32];
    const char *meta[24];
    int n_meta = 0;
    uvae_unet unet;
    uvae_cvae cvae;
    uvae_classifier cls;
    uvae_params *P;
    uvae_optim opt;
    uvae_ctx *ctx;
    uvae_rng rng;
    float *hx, *hl, *he, *hy;
    uvae_st_tensor io[8];
    int n_io = 0;

    if (argc < 2 || !strcmp(argv[1], "--help")) {
        puts("usage: interop_dump unet|cvae|classifier [flags] --out DIR   (flags: see the top of tools/interop_dump.c)");
        return argc < 2;
    }
    if (!strcmp(argv[1], "unet")) kind = UNET;
    else if (!strcmp(argv[1], "cvae")) kind = CVAE;
    else if (!strcmp(argv[1], "classifier")) kind = CLASSIFIER;
    else die("the model must be unet, cvae or classifier");
    for (int i = 2; i < argc; i += 2) {
        const char *f = argv[i], *a = i + 1 < argc ? argv[i + 1] : NULL;
        if (!a) die("a flag without its value");
        if (!strcmp(f, "--in")) in = to_int(f, a);
        else if (!strcmp(f, "--classes")) classes = to_int(f, a);
        else if (!strcmp(f, "--width")) width = to_int(f, a);
        else if (!strcmp(f, "--depth")) depth = to_int(f, a);
        else if (!strcmp(f, "--down")) down = choice(f, a, "maxpool", "strided");
        else if (!strcmp(f, "--up")) up = choice(f, a, "transpose", "upsample");
        else if (!strcmp(f, "--size")) size = to_int(f, a);
        else if (!strcmp(f, "--latent")) latent = to_int(f, a);
        else if (!strcmp(f, "--embed")) embed = to_int(f, a);
        else if (!strcmp(f, "--cond-planes")) cond_planes = to_int(f, a);
        else if (!strcmp(f, "--likelihood")) likelihood = choice(f, a, "bernoulli", "logistic");
        else if (!strcmp(f, "--blocks")) blocks = to_int(f, a);
        else if (!strcmp(f, "--batch")) batch = to_int(f, a);
        else if (!strcmp(f, "--steps")) steps = to_int(f, a);
        else if (!strcmp(f, "--seed")) seed = to_int(f, a);
        else if (!strcmp(f, "--out")) out = a;
        else {
            fprintf(stderr, "interop_dump: unknown flag %s\n", f);
            return 1;
        }
    }
    if (!out) die("--out DIR is required");
    if (batch < 1) die("--batch must be at least 1");

    /* the model, with the defaults of the usage line; its config also goes to the metadata */
    N = batch;
    if (in < 0) in = kind == UNET ? 3 : 1;
    if (size < 0) size = kind == UNET ? 32 : 16;
    if (classes < 0) classes = kind == UNET ? 3 : 10;
    if (width < 0) width = kind == UNET ? 4 : 8;
    C = in; S = size;
    snprintf(v[0], 32, "%d", in); snprintf(v[1], 32, "%d", size); snprintf(v[2], 32, "%d", classes); snprintf(v[3], 32, "%d", width);
    meta[n_meta++] = "model"; meta[n_meta++] = kind == UNET ? "uvae_unet" : kind == CVAE ? "uvae_cvae" : "uvae_classifier";
    meta[n_meta++] = "in_ch"; meta[n_meta++] = v[0]; meta[n_meta++] = "size"; meta[n_meta++] = v[1];
    meta[n_meta++] = "n_classes"; meta[n_meta++] = v[2]; meta[n_meta++] = "width"; meta[n_meta++] = v[3];
    if (kind == UNET) {
        uvae_unet_config c = {in, classes, width, depth, down ? UVAE_DOWN_STRIDED : UVAE_DOWN_MAXPOOL, up ? UVAE_UP_UPSAMPLE : UVAE_UP_TRANSPOSE};
        if (uvae_unet_init(&unet, &c, (uint64_t)seed) != UVAE_OK) die_lib("unet");
        P = &unet.params;
        snprintf(v[4], 32, "%d", depth);
        meta[n_meta++] = "depth"; meta[n_meta++] = v[4];
        meta[n_meta++] = "down"; meta[n_meta++] = down ? "strided" : "maxpool";
        meta[n_meta++] = "up"; meta[n_meta++] = up ? "upsample" : "transpose";
    } else if (kind == CVAE) {
        uvae_cvae_config c = {in, size, classes, latent, width, embed, cond_planes, likelihood ? UVAE_DLOGISTIC : UVAE_BERNOULLI};
        if (uvae_cvae_init(&cvae, &c, (uint64_t)seed) != UVAE_OK) die_lib("cvae");
        P = &cvae.params;
        snprintf(v[4], 32, "%d", latent); snprintf(v[5], 32, "%d", embed); snprintf(v[6], 32, "%d", cond_planes);
        meta[n_meta++] = "latent"; meta[n_meta++] = v[4]; meta[n_meta++] = "embed"; meta[n_meta++] = v[5];
        meta[n_meta++] = "cond_planes"; meta[n_meta++] = v[6];
        meta[n_meta++] = "likelihood"; meta[n_meta++] = likelihood ? "logistic" : "bernoulli";
    } else {
        uvae_classifier_config c = {in, size, classes, width, blocks};
        if (uvae_classifier_init(&cls, &c, (uint64_t)seed) != UVAE_OK) die_lib("classifier");
        P = &cls.params;
        snprintf(v[4], 32, "%d", blocks);
        meta[n_meta++] = "blocks"; meta[n_meta++] = v[4];
    }
    if (uvae_optim_init(&opt, P, UVAE_ADAM, 1e-3f) != UVAE_OK) die_lib("optimizer");
    if (!(ctx = uvae_ctx_new(0))) die_lib("context");
    uvae_rng_seed(uvae_ctx_rng(ctx), (uint64_t)seed + 1);

    /* inputs: images (N(0,1) for the UNet, pixels k/255 otherwise), labels, noise, targets */
    hx = (float *)malloc((size_t)N * C * S * S * sizeof(float));
    hy = (float *)malloc((size_t)N * S * S * sizeof(float));
    hl = (float *)malloc((size_t)N * sizeof(float));
    he = (float *)malloc((size_t)N * latent * sizeof(float));
    if (!hx || !hy || !hl || !he) die("out of memory");
    uvae_rng_seed(&rng, (uint64_t)seed + 2);
    for (size_t i = 0; i < (size_t)N * C * S * S; i++)
        hx[i] = kind == UNET ? uvae_rng_normal(&rng) : (float)(uvae_rng_u32(&rng) % 256) / 255.0f;
    for (int i = 0; i < N; i++) hl[i] = (float)(uvae_rng_u32(&rng) % (uint32_t)classes);
    for (int i = 0; i < N * latent; i++) he[i] = uvae_rng_normal(&rng);
    for (int i = 0; i < N * S * S; i++) hy[i] = (float)(uvae_rng_u32(&rng) % (uint32_t)(classes > 1 ? classes : 2));

    /* a few training steps */
    for (int s = 0; s < steps; s++) {
        uvae_tensor *x, *loss;
        uvae_ctx_reset(ctx, 1);
        uvae_params_zero_grad(P);
        x = staged(ctx, 4, (int[]){N, C, S, S}, hx);
        if (kind == UNET) {
            uvae_tensor *logits = uvae_unet_forward(ctx, &unet, x);
            loss = classes == 1 ? uvae_bce_with_logits(ctx, logits, staged(ctx, 4, (int[]){N, 1, S, S}, hy))
                                : uvae_cross_entropy(ctx, logits, staged(ctx, 3, (int[]){N, S, S}, hy));
        } else if (kind == CVAE) {
            loss = uvae_cvae_loss(ctx, uvae_cvae_forward(ctx, &cvae, x, staged(ctx, 1, (int[]){N}, hl), NULL), x);
        } else {
            loss = uvae_cross_entropy(ctx, uvae_classifier_forward(ctx, &cls, x), staged(ctx, 1, (int[]){N}, hl));
        }
        if (uvae_backward(ctx, loss) != UVAE_OK || uvae_optim_step(&opt, P, -1) != UVAE_OK) die_lib("training step");
    }

    /* the eval-mode output */
    uvae_ctx_reset(ctx, 0);
    {
        uvae_tensor *x = staged(ctx, 4, (int[]){N, C, S, S}, hx);
        keep(io, &n_io, "input.x", x);
        if (kind == UNET) {
            uvae_tensor *logits = uvae_unet_forward(ctx, &unet, x);
            if (!logits) die_lib("unet forward");
            keep(io, &n_io, "out.logits", logits);
        } else if (kind == CVAE) {
            uvae_tensor *lab = staged(ctx, 1, (int[]){N}, hl), *eps = staged(ctx, 2, (int[]){N, latent}, he);
            uvae_cvae_out o = uvae_cvae_forward(ctx, &cvae, x, lab, eps);
            if (!o.logits || (likelihood && !o.log_scale)) die_lib("cvae forward");
            keep(io, &n_io, "input.labels", lab);
            keep(io, &n_io, "input.eps", eps);
            keep(io, &n_io, "out.logits", o.logits);
            if (o.log_scale) keep(io, &n_io, "out.log_scale", o.log_scale);
            keep(io, &n_io, "out.mu", o.mu);
            keep(io, &n_io, "out.logvar", o.logvar);
        } else {
            uvae_tensor *logits = uvae_classifier_forward(ctx, &cls, x);
            if (!logits) die_lib("classifier forward");
            keep(io, &n_io, "out.logits", logits);
        }
    }
    if ((size_t)snprintf(path, sizeof path, "%s/checkpoint.safetensors", out) >= sizeof path) die("--out: path too long");
    if (uvae_save(path, P, &opt, meta, n_meta / 2) != UVAE_OK) die_lib("saving the checkpoint");
    snprintf(path, sizeof path, "%s/io.safetensors", out);
    if (uvae_st_write(path, io, n_io, NULL, 0) != UVAE_OK) die_lib("saving the input and output");

    for (int i = 0; i < n_io; i++) free((void *)io[i].data);
    free(hx); free(hy); free(hl); free(he);
    uvae_optim_free(&opt);
    uvae_ctx_free(ctx);
    if (kind == UNET) uvae_unet_free(&unet);
    else if (kind == CVAE) uvae_cvae_free(&cvae);
    else uvae_classifier_free(&cls);
    return 0;
}
