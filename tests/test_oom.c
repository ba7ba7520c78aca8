/* tests/test_oom.c — out of memory is an error, never a crash or a leak.
   Its own program, because it routes the library's allocator (UVAE_MALLOC / UVAE_REALLOC /
   UVAE_FREE) through a counter that makes the k-th allocation fail. A workload touching every
   allocating part of the library (a dataset read, the arena and tape, UNet, CVAE and classifier
   init, Adam, training steps, checkpoint save, load and read) runs once per k = 1, 2, ...
   until it runs through without reaching the k-th allocation. For every k it must stop with
   UVAE_ERR_NOMEM (or NULL) and uvae_last_error() saying "out of memory", and after the frees
   no block may be left. Run by `make test` (and under ASan by `make test-asan`).
   (stb's own decoders allocate with plain malloc and are outside this test.) */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long oom_fail_at = 0;   /* the allocation number that fails (1-based); 0: none */
static long oom_count = 0;     /* allocations so far */
static long oom_live = 0;      /* blocks not yet freed */
static int oom_failed = 0;     /* the failing allocation was reached */

static void *oom_malloc(size_t n) {
    void *p;
    if (++oom_count == oom_fail_at) { oom_failed = 1; return NULL; }
    if ((p = malloc(n))) oom_live++;
    return p;
}
static void *oom_realloc(void *q, size_t n) {
    void *p;
    if (++oom_count == oom_fail_at) { oom_failed = 1; return NULL; }
    if ((p = realloc(q, n)) && !q) oom_live++;
    return p;
}
static void oom_free(void *p) {
    if (p) oom_live--;
    free(p);
}
#define UVAE_MALLOC(n) oom_malloc(n)
#define UVAE_REALLOC(p, n) oom_realloc(p, n)
#define UVAE_FREE(p) oom_free(p)
#define UNETVAE_IMPLEMENTATION
#include "../unetvae.h"

static int pass = 0, fail = 0;
#define CHECK(cond, ...) do { if (cond) pass++; else { fail++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
                                                      printf(__VA_ARGS__); printf("\n"); } } while (0)

static const char *IMG = "/tmp/uvt_oom_images.idx", *LAB = "/tmp/uvt_oom_labels.idx",
                  *CKPT = "/tmp/uvt_oom.safetensors";

/* 8 images 8x8 in IDX files (written with stdio, outside the counted allocator) */
static int write_idx_files(void) {
    unsigned char hi[16] = {0, 0, 8, 3, 0, 0, 0, 8, 0, 0, 0, 8, 0, 0, 0, 8}, hl[8] = {0, 0, 8, 1, 0, 0, 0, 8};
    unsigned char px[8 * 64], lab[8];
    FILE *f;
    for (int i = 0; i < 8 * 64; i++) px[i] = (unsigned char)(i * 37);
    for (int i = 0; i < 8; i++) lab[i] = (unsigned char)(i % 3);
    if (!(f = fopen(IMG, "wb")) || fwrite(hi, 1, 16, f) != 16 || fwrite(px, 1, sizeof px, f) != sizeof px || fclose(f)) return 0;
    if (!(f = fopen(LAB, "wb")) || fwrite(hl, 1, 8, f) != 8 || fwrite(lab, 1, 8, f) != 8 || fclose(f)) return 0;
    return 1;
}

typedef struct work {
    uvae_dataset d;
    uvae_ctx *ctx;
    uvae_unet unet;
    uvae_cvae cvae;
    uvae_classifier cls;
    uvae_optim opt, opt2;
    uvae_tensor *x, *y, *xc, *yc;
    uvae_st_file f;
    int have_f;
} work;

static void work_free(work *w) {
    if (w->have_f) uvae_st_free(&w->f);
    uvae_tensor_free(w->x); uvae_tensor_free(w->y); uvae_tensor_free(w->xc); uvae_tensor_free(w->yc);
    uvae_optim_free(&w->opt); uvae_optim_free(&w->opt2);
    uvae_classifier_free(&w->cls); uvae_cvae_free(&w->cvae); uvae_unet_free(&w->unet);
    uvae_ctx_free(w->ctx);
    uvae_dataset_free(&w->d);
}

/* "out of memory", "out of host memory for 384 floats", "arena: out of cpu memory for ..." */
static int says_oom(void) {
    const char *e = uvae_last_error(), *o = strstr(e, "out of ");
    return o && strstr(o, "memory") != NULL;
}

/* The workload: UVAE_OK, or the first failure's status (NULL results count as UVAE_ERR_NOMEM
   only when the error text says so; anything else is returned as UVAE_ERR_ARG, a test failure). */
#define TRY(call) do { int rc_ = (call); if (rc_ != UVAE_OK) return rc_; } while (0)
#define TRYP(ptr) do { if (!(ptr)) return says_oom() ? UVAE_ERR_NOMEM : UVAE_ERR_ARG; } while (0)
static int workload(work *w) {
    uvae_unet_config ucfg = {3, 3, 4, 2, UVAE_DOWN_MAXPOOL, UVAE_UP_TRANSPOSE};
    uvae_cvae_config ccfg = {1, 8, 3, 4, 4, 4, 2, UVAE_BERNOULLI};
    uvae_classifier_config kcfg;
    const char *meta[2] = {"note", "oom test"};
    memset(&kcfg, 0, sizeof kcfg);
    kcfg.in_ch = 1; kcfg.size = 8; kcfg.n_classes = 3; kcfg.width = 4; kcfg.blocks = 1;

    TRY(uvae_load_idx(IMG, LAB, &w->d));
    TRYP(w->ctx = uvae_ctx_new(0));
    /* UNet: init, Adam, two training steps, a checkpoint written, loaded and read */
    TRY(uvae_unet_init(&w->unet, &ucfg, 1));
    TRY(uvae_optim_init(&w->opt, &w->unet.params, UVAE_ADAM, 1e-3f));
    TRYP(w->x = uvae_tensor_new(4, (int[]){2, 3, 8, 8}));
    TRYP(w->y = uvae_tensor_new(3, (int[]){2, 8, 8}));
    for (size_t i = 0; i < w->x->size; i++) w->x->data[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < w->y->size; i++) w->y->data[i] = (float)(i % 3);
    for (int s = 0; s < 2; s++) {
        uvae_tensor *loss;
        uvae_ctx_reset(w->ctx, 1);
        uvae_params_zero_grad(&w->unet.params);
        TRYP(loss = uvae_cross_entropy(w->ctx, uvae_unet_forward(w->ctx, &w->unet, w->x), w->y));
        TRY(uvae_backward(w->ctx, loss));
        TRY(uvae_optim_step(&w->opt, &w->unet.params, 1e-3f));
    }
    TRY(uvae_save(CKPT, &w->unet.params, &w->opt, meta, 1));
    TRY(uvae_load(CKPT, &w->unet.params, &w->opt));
    TRY(uvae_st_read(CKPT, &w->f));
    w->have_f = 1;
    /* CVAE on the IDX images: init, AdamW, one step */
    TRY(uvae_cvae_init(&w->cvae, &ccfg, 2));
    TRY(uvae_optim_init(&w->opt2, &w->cvae.params, UVAE_ADAMW, 1e-3f));
    TRYP(w->xc = uvae_tensor_new(4, (int[]){2, 1, 8, 8}));
    TRYP(w->yc = uvae_tensor_new(1, (int[]){2}));
    TRY(uvae_dataset_batch(&w->d, (int[]){0, 1}, 2, w->xc, w->yc));
    {
        uvae_tensor *loss;
        uvae_ctx_reset(w->ctx, 1);
        uvae_params_zero_grad(&w->cvae.params);
        TRYP(loss = uvae_cvae_loss(w->ctx, uvae_cvae_forward(w->ctx, &w->cvae, w->xc, w->yc, NULL), w->xc));
        TRY(uvae_backward(w->ctx, loss));
    }
    TRY(uvae_optim_step(&w->opt2, &w->cvae.params, 1e-3f));
    /* the classifier: init and a forward pass */
    TRY(uvae_classifier_init(&w->cls, &kcfg, 3));
    uvae_ctx_reset(w->ctx, 0);
    TRYP(uvae_classifier_forward(w->ctx, &w->cls, w->xc));
    return UVAE_OK;
}

int main(void) {
    long k, total = 0, nomem = 0, absorbed = 0, clean = 0;
    if (!write_idx_files()) { printf("FAIL: cannot write the IDX files in /tmp\n"); return 1; }
    {   /* a first run with enough memory: it also makes the CPU GEMM's per-thread packing buffer,
           a cache kept for the thread's lifetime, which later runs then reuse */
        work w;
        int rc;
        memset(&w, 0, sizeof w);
        rc = workload(&w);
        CHECK(rc == UVAE_OK, "with enough memory the workload runs: %s", uvae_last_error());
        work_free(&w);
    }
    for (k = getenv("UVT_OOM_FROM") ? atol(getenv("UVT_OOM_FROM")) : 1; k < 100000; k++) {
        work w;
        int rc;
        memset(&w, 0, sizeof w);
        oom_fail_at = k; oom_count = 0; oom_failed = 0; oom_live = 0;
        rc = workload(&w);
        work_free(&w);
        if (!oom_failed) {   /* ran through: k is past the workload's last allocation */
            CHECK(rc == UVAE_OK, "with enough memory the workload runs: %s", uvae_last_error());
            total = oom_count;
            CHECK(oom_live == 0, "no block left after a full run (%ld)", oom_live);
            break;
        }
        if (getenv("UVT_OOM_VERBOSE")) fprintf(stderr, "oom: allocation %ld: %d %s\n", k, rc, uvae_last_error());
        if (rc == UVAE_ERR_NOMEM && says_oom()) nomem++;
        else if (rc == UVAE_OK) absorbed++;   /* a failure the library works around (e.g. an arena that
                                                 could not grow serves from overflow blocks) */
        else CHECK(0, "allocation %ld failed: want UVAE_ERR_NOMEM and 'out of memory', got %d: %s", k, rc, uvae_last_error());
        if (oom_live == 0) clean++;
        else CHECK(0, "allocation %ld failed: %ld blocks left after the frees (%s)", k, oom_live, uvae_last_error());
    }
    CHECK(total > 50, "the workload allocates (%ld allocations)", total);
    CHECK(nomem + absorbed == k - 1 && nomem > total / 2, "%ld of %ld failure points gave UVAE_ERR_NOMEM, %ld were worked around",
          nomem, k - 1, absorbed);
    CHECK(clean == k - 1, "%ld of %ld failure points left no block", clean, k - 1);
    printf("oom: each of the workload's %ld allocations failed in turn: %ld clean 'out of memory' errors, "
           "%ld worked around, %ld without a leak\n", total, nomem, absorbed, clean);
    remove(IMG); remove(LAB); remove(CKPT);
    printf("%d passed, %d failed\n", pass, fail);
    return fail ? 1 : 0;
}
