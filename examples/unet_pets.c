/* examples/unet_pets.c — UNet segmentation of the Oxford-IIIT Pet trimaps (pet, background, border).
     CPU: make build/unet_pets        GPU: make build/unet_pets_cuda   (then --device cuda)
     ./build/unet_pets train --data ../shared/data/oxford-pets --size 64 --width 8 --depth 3 --epochs 10
     ./build/unet_pets eval --ckpt runs/unet/checkpoint.safetensors --data DIR --list DIR/annotations/trainval.txt
     ./build/unet_pets predict --ckpt runs/unet/checkpoint.safetensors --data DIR --list FILE --out DIR
   `unet_pets --help` lists every flag with its default. Every failure is one line on stderr
   ("unet_pets: ...") and exit status 1. */
#define _POSIX_C_SOURCE 200809L
#define UNETVAE_IMPLEMENTATION
#define EXAMPLE_NAME "unet_pets"
#include "../unetvae.h"
#include "common.h"
#include <math.h>

#ifdef UNETVAE_CUDA
#define DEFAULT_DEVICE "cuda"
#else
#define DEFAULT_DEVICE "cpu"
#endif

/* ---- options -------------------------------------------------------------------------------- */
#define MAX_SCALES 4              /* --eval-size takes up to 4 sizes */
typedef struct opts {
    const char *data, *train_list, *val_list, *out, *ckpt, *list, *device, *resume, *init, *log_steps;
    double val_frac, lr, min_scale, jitter;
    int size, epochs, batch, width, depth, limit, n, synthetic;
    int save_every, check_every, stop_after, poison_step;   /* checkpoints, the NaN guard, and two for tests */
    int tta;                      /* evaluation also on the mirrored images, logits averaged */
    int eval_sizes[MAX_SCALES], n_eval_sizes;   /* evaluation input sizes (none: the model's size) */
    int down, up, loss;           /* UVAE_DOWN_*, UVAE_UP_*, LOSS_* */
    unsigned long long seed;
} opts;
enum { LOSS_CE, LOSS_BCE, LOSS_DICE, LOSS_CE_DICE };
static const char *const loss_names[] = {"ce", "bce", "dice", "ce+dice"};
static const char *const down_names[] = {"maxpool", "strided"};
static const char *const up_names[] = {"transpose", "upsample"};

static void usage(FILE *f) {
    fprintf(f,
        "usage: unet_pets train   [flags]\n"
        "       unet_pets eval    --ckpt F [--data DIR] [--list FILE] [--batch B] [--device D] [--tta 0|1] [--eval-size E[,E2..]]\n"
        "       unet_pets predict --ckpt F [--data DIR] [--list FILE] [--out DIR] [--n 8] [--device D] [--tta 0|1] [--eval-size E[,E2..]]\n"
        "UNet segmentation of Oxford-IIIT Pet trimaps (classes pet, background, border).\n"
        "train flags (default in brackets):\n"
        "  --data DIR        dataset folder (images/, annotations/)           [data/oxford-pets]\n"
        "  --train-list FILE training list                                    [DIR/annotations/trainval.txt]\n"
        "  --val-frac F      share of the train list held out for validation,\n"
        "                    split with --seed, in (0, 0.9]                     [0.2]\n"
        "  --val-list FILE   validation list instead of --val-frac             [none]\n"
        "  --size S          images resized to S x S; S divisible by 2^depth   [128]\n"
        "  --epochs E        epochs (1..100000)                                 [40]\n"
        "  --batch B         batch size (1..1024)                               [16]\n"
        "  --lr LR           one-cycle peak learning rate (Adam)                [1e-3]\n"
        "  --min-scale F     random scale-crop: box area U(F, 1) of the image,\n"
        "                    aspect 3/4..4/3, resized back; 1 = off, in (0, 1]   [1]\n"
        "  --jitter F        colour jitter: brightness, contrast, saturation\n"
        "                    factors U(1-F, 1+F); 0 = off, in [0, 0.9]           [0]\n"
        "  --down maxpool|strided     downsampling                             [maxpool]\n"
        "  --up transpose|upsample    upsampling                               [transpose]\n"
        "  --loss ce|bce|dice|ce+dice loss; bce = 1-class sigmoid head on pet+border\n"
        "                    vs background (its mIoU and pixel accuracy count border as\n"
        "                    a separate class it never predicts: only pet IoU/Dice are meaningful) [ce]\n"
        "  --width W         base width (1..512)                                [64]\n"
        "  --depth D         down/up levels (1..%d)                              [4]\n",
        UVAE_UNET_MAX_DEPTH);
    fputs(   /* two calls: C99 compilers need only support string literals of up to 4095 characters */
        "  --seed N          seed for init, split, shuffling and flips          [1]\n"
        "  --device cpu|cuda (cuda only in the GPU build)                       [" DEFAULT_DEVICE "]\n"
        "  --out DIR         output folder                                      [runs/unet]\n"
        "  --limit N         use only the first N training images (0: all)      [0]\n"
        "  --synthetic N     train on N generated images (ellipse 'pets' with a border ring\n"
        "                    on textured backgrounds) instead of --data (0: off) [0]\n"
        "  --save-every N    also checkpoint every N steps, not only at epoch ends\n"
        "                    (0: epoch ends only); every checkpoint can be resumed [0]\n"
        "  --resume F        continue the run saved in checkpoint F: model, Adam moments, step,\n"
        "                    schedule and random state; give the same flags as the first run\n"
        "  --init F          start from the weights (and input normalisation) of checkpoint F,\n"
        "                    with a fresh optimizer and schedule: fine-tuning with another\n"
        "                    recipe (--lr, --epochs, augmentation, --size). F's width, depth,\n"
        "                    down, up and head must match these flags          [none]\n"
        "  --check-every N   check the gradients' global norm every N steps (and before each\n"
        "                    checkpoint); the loss is checked every step. A NaN/Inf stops the\n"
        "                    run and the last checkpoint stays as it was      [10]\n"
        "  --log-steps FILE  append 'step,loss' for every step (9 significant digits: exact)\n"
        "  --stop-after N    (tests) stop after N steps of this run, as if killed [0: off]\n"
        "  --poison-step N   (tests, CPU) make the gradients NaN at step N    [0: off]\n"
        "  --tta 0|1         validation also on the mirrored images: each pixel's logits\n"
        "                    are the mean of the two passes (test-time flip)   [0]\n"
        "  --eval-size E[,E2..] validate on the images loaded at E x E (E divisible by\n"
        "                    2^depth), the logits resized (bilinear) to S x S and scored\n"
        "                    against the S x S trimaps; with several sizes (up to 4, e.g.\n"
        "                    128,160) the resized logits are averaged. Scale-crop enlarges\n"
        "                    objects in training by 2 / (1 + sqrt(min-scale)) on average\n"
        "                    (0.4: x1.22, so 128 -> 160 shows them as training did) [S]\n"
        "eval/predict flags: --ckpt F (required), --data DIR [data/oxford-pets], --list FILE\n"
        "  [DIR/annotations/trainval.txt], --batch B [16], --device [" DEFAULT_DEVICE "], predict: --out DIR\n"
        "  [runs/unet], --n N images spread over the list (1..64) [8], --tta 0|1 [0] and\n"
        "  --eval-size E [the checkpoint's size] as for train.\n"
        "  The model is rebuilt from the checkpoint's metadata.\n"
        "Metrics come from one confusion matrix pooled over the split: pet IoU (pet+border vs\n"
        "background, the headline), mIoU over the 3 classes, pixel accuracy, Dice of pet+border.\n"
        "train writes OUT/metrics.csv, OUT/curves.png, OUT/checkpoint.safetensors (every epoch)\n"
        "and OUT/predictions.png (8 validation images spread over the split: image | truth | prediction).\n", f);
}

static long parse_long(const char *flag, const char *s, long lo, long hi) {
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) die("%s: '%s' is not an integer in %ld..%ld", flag, s, lo, hi);
    return v;
}
static double parse_double(const char *flag, const char *s, double lo, double hi, int lo_open) {
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi) || (lo_open && v == lo))
        die("%s: '%s' is not a number in %s%g, %g]", flag, s, lo_open ? "(" : "[", lo, hi);
    return v;
}
static int parse_choice(const char *flag, const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    if (n == 2) die("%s: '%s' is not one of %s, %s", flag, s, names[0], names[1]);
    die("%s: '%s' is not one of %s, %s, %s, %s", flag, s, names[0], names[1], names[2], names[3]);
    return 0;
}

/* "E" or "E1,E2,..." (up to MAX_SCALES sizes, each 2..4096, no repeats) into sizes[0..*n). */
static void parse_sizes(const char *flag, const char *s, int *sizes, int *n) {
    char buf[128], *tok, *save = NULL;
    if (strlen(s) >= sizeof buf) die("%s: '%s' is too long", flag, s);
    strcpy(buf, s);
    *n = 0;
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == MAX_SCALES) die("%s: at most %d sizes", flag, MAX_SCALES);
        sizes[*n] = (int)parse_long(flag, tok, 2, 4096);
        for (int k = 0; k < *n; k++)
            if (sizes[k] == sizes[*n]) die("%s: size %d given twice", flag, sizes[k]);
        ++*n;
    }
    if (*n == 0 || s[strlen(s) - 1] == ',' || s[0] == ',' || strstr(s, ",,")) die("%s: '%s' is not a size or a comma-separated list of sizes", flag, s);
}

/* cmd: 0 train, 1 eval, 2 predict. Flags that do not belong to the subcommand are errors. */
static void parse_args(int argc, char **argv, int cmd, opts *o) {
    static const char *const train_flags[] = {"--data", "--train-list", "--val-frac", "--val-list", "--size", "--epochs",
        "--batch", "--lr", "--down", "--up", "--loss", "--width", "--depth", "--seed", "--device", "--out", "--limit",
        "--min-scale", "--jitter", "--synthetic", "--save-every", "--resume", "--init", "--check-every", "--log-steps", "--stop-after",
        "--poison-step", "--tta", "--eval-size", NULL};
    static const char *const eval_flags[] = {"--ckpt", "--data", "--list", "--batch", "--device", "--tta", "--eval-size", NULL};
    static const char *const pred_flags[] = {"--ckpt", "--data", "--list", "--batch", "--device", "--out", "--n", "--tta", "--eval-size", NULL};
    const char *const *allowed = cmd == 0 ? train_flags : cmd == 1 ? eval_flags : pred_flags;
    int val_frac_given = 0;
    memset(o, 0, sizeof *o);
    o->data = "data/oxford-pets"; o->out = "runs/unet"; o->device = DEFAULT_DEVICE;
    o->val_frac = 0.2; o->lr = 1e-3; o->min_scale = 1; o->jitter = 0; o->size = 128; o->epochs = 40; o->batch = 16; o->width = 64; o->depth = 4;
    o->n = 8; o->seed = 1; o->check_every = 10; o->down = UVAE_DOWN_MAXPOOL; o->up = UVAE_UP_TRANSPOSE; o->loss = LOSS_CE;
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i], *v;
        int ok = 0;
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) { usage(stdout); exit(0); }
        for (int k = 0; allowed[k]; k++) ok |= strcmp(f, allowed[k]) == 0;
        if (!ok) die("unknown flag '%s' for '%s' (see --help)", f, argv[1]);
        if (i + 1 >= argc) die("%s needs a value", f);
        v = argv[++i];
        if (!strcmp(f, "--data")) o->data = v;
        else if (!strcmp(f, "--train-list")) o->train_list = v;
        else if (!strcmp(f, "--val-list")) o->val_list = v;
        else if (!strcmp(f, "--val-frac")) { o->val_frac = parse_double(f, v, 0.0, 0.9, 1); val_frac_given = 1; }
        else if (!strcmp(f, "--size")) o->size = (int)parse_long(f, v, 2, 4096);
        else if (!strcmp(f, "--epochs")) o->epochs = (int)parse_long(f, v, 1, 100000);
        else if (!strcmp(f, "--batch")) o->batch = (int)parse_long(f, v, 1, 1024);
        else if (!strcmp(f, "--lr")) o->lr = parse_double(f, v, 0.0, 10.0, 1);
        else if (!strcmp(f, "--min-scale")) o->min_scale = parse_double(f, v, 0.0, 1.0, 1);
        else if (!strcmp(f, "--jitter")) o->jitter = parse_double(f, v, 0.0, 0.9, 0);
        else if (!strcmp(f, "--down")) o->down = parse_choice(f, v, down_names, 2);
        else if (!strcmp(f, "--up")) o->up = parse_choice(f, v, up_names, 2);
        else if (!strcmp(f, "--loss")) o->loss = parse_choice(f, v, loss_names, 4);
        else if (!strcmp(f, "--width")) o->width = (int)parse_long(f, v, 1, 512);
        else if (!strcmp(f, "--depth")) o->depth = (int)parse_long(f, v, 1, UVAE_UNET_MAX_DEPTH);
        else if (!strcmp(f, "--seed")) o->seed = (unsigned long long)parse_long(f, v, 0, 2147483647L);
        else if (!strcmp(f, "--device")) { parse_choice(f, v, (const char *const[]){"cpu", "cuda"}, 2); o->device = v; }
        else if (!strcmp(f, "--out")) o->out = v;
        else if (!strcmp(f, "--limit")) o->limit = (int)parse_long(f, v, 0, 1000000);
        else if (!strcmp(f, "--ckpt")) o->ckpt = v;
        else if (!strcmp(f, "--list")) o->list = v;
        else if (!strcmp(f, "--n")) o->n = (int)parse_long(f, v, 1, 64);
        else if (!strcmp(f, "--synthetic")) o->synthetic = (int)parse_long(f, v, 0, 100000);
        else if (!strcmp(f, "--save-every")) o->save_every = (int)parse_long(f, v, 0, 1000000000L);
        else if (!strcmp(f, "--resume")) o->resume = v;
        else if (!strcmp(f, "--init")) o->init = v;
        else if (!strcmp(f, "--check-every")) o->check_every = (int)parse_long(f, v, 1, 1000000000L);
        else if (!strcmp(f, "--log-steps")) o->log_steps = v;
        else if (!strcmp(f, "--stop-after")) o->stop_after = (int)parse_long(f, v, 0, 1000000000L);
        else if (!strcmp(f, "--poison-step")) o->poison_step = (int)parse_long(f, v, 0, 1000000000L);
        else if (!strcmp(f, "--tta")) o->tta = (int)parse_long(f, v, 0, 1);
        else if (!strcmp(f, "--eval-size")) parse_sizes(f, v, o->eval_sizes, &o->n_eval_sizes);
    }
    if (cmd == 0) {
        if (o->val_list && val_frac_given) die("give --val-frac or --val-list, not both");
        if (o->size % (1 << o->depth) != 0) die("--size %d is not divisible by 2^depth = %d", o->size, 1 << o->depth);
        for (int k = 0; k < o->n_eval_sizes; k++)
            if (o->eval_sizes[k] % (1 << o->depth) != 0) die("--eval-size %d is not divisible by 2^depth = %d", o->eval_sizes[k], 1 << o->depth);
    } else if (!o->ckpt) die("%s needs --ckpt FILE", argv[1]);
}

/* ---- files ---------------------------------------------------------------------------------- */
static char *path_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = (char *)xmalloc(n);
    snprintf(s, n, "%s/%s", a, b);
    return s;
}
static void need_file(const char *path, const char *what) {
    struct stat st;
    if (stat(path, &st) != 0) die("%s '%s': %s", what, path, strerror(errno));
    if (S_ISDIR(st.st_mode)) die("%s '%s' is a directory", what, path);
}
/* Load a list (error if empty). */
static void load_set(const char *dir, const char *list, int size, uvae_pets *p) {
    need_file(list, "list");
    if (uvae_pets_load(dir, list, size, p) != UVAE_OK) die_lib("loading data");
    if (p->n < 1) die("list '%s' names no images", list);
}

/* ---- device --------------------------------------------------------------------------------- */
static int pick_device(const char *name) {
    if (strcmp(name, "cpu") == 0) return UVAE_CPU;
#ifndef UNETVAE_CUDA
    die("--device cuda needs the GPU build (make cuda; then build/unet_pets_cuda)");
    return UVAE_CPU;
#else
    if (!uvae_cuda_available()) die_lib("--device cuda");
    return UVAE_CUDA;
#endif
}

/* ---- the model and its batches -------------------------------------------------------------- */
typedef struct model {
    uvae_unet net;
    uvae_ctx *ctx;
    int dev, size, batch, binary, tta;   /* tta: evaluate() averages with the mirrored pass */
    uvae_tensor *xc, *yc, *xd, *yd;   /* CPU batch tensors, and their device copies (same on the CPU) */
    float *logits;                    /* host copy of one batch of logits at size x size */
    int nscales;                      /* evaluation input sizes (model_scales; 0: the model's size) */
    struct scale {
        int E;
        uvae_pets own;                /* the evaluation list loaded at E x E (empty when E == size) */
        const uvae_pets *set;         /* the images that go in: &own, or the set at the model's size */
        uvae_tensor *x, *y, *xd;      /* its batch [B,3,E,E] (the model's own tensors when E == size) */
    } sc[MAX_SCALES];
    float *zs, *zm, *zr;              /* one batch of logits at the largest E: a pass, the mirrored pass;
                                         and resized to size x size */
    float mean[3], std[3];
} model;

static void model_init(model *m, int dev, int size, int batch, int width, int depth, int down, int up, int binary,
                       unsigned long long seed) {
    uvae_unet_config cfg;
    int C = binary ? 1 : 3;
    cfg.in_ch = 3; cfg.n_classes = C; cfg.base_width = width; cfg.depth = depth; cfg.down = down; cfg.up = up;
    m->dev = dev; m->size = size; m->batch = batch; m->binary = binary;
    if (uvae_unet_init(&m->net, &cfg, (uint64_t)seed) != UVAE_OK) die_lib("building the UNet");
    if (!(m->ctx = uvae_ctx_new_on(dev, 0))) die_lib("making the context");
    if (!(m->xc = uvae_tensor_new(4, (int[]){batch, 3, size, size}))) die_lib("batch tensor");
    m->yc = binary ? uvae_tensor_new(4, (int[]){batch, 1, size, size}) : uvae_tensor_new(3, (int[]){batch, size, size});
    if (!m->yc) die_lib("batch tensor");
    if (dev == UVAE_CPU) { m->xd = m->xc; m->yd = m->yc; }
    else if (!(m->xd = uvae_tensor_new_on(dev, m->xc->ndim, m->xc->shape, 0)) || !(m->yd = uvae_tensor_new_on(dev, m->yc->ndim, m->yc->shape, 0)))
        die_lib("GPU batch tensor");
    m->logits = (float *)xmalloc((size_t)batch * (size_t)C * (size_t)size * (size_t)size * sizeof(float));
}
/* The evaluation's input sizes E[0..n) (none: the model's own size), for the list `list` of the
   dataset folder `data`, which `base` holds at the model's size: evaluate() feeds each size's
   images, resizes the logits to size x size and averages them (one size: as they are). */
static void model_scales(model *m, const int *E, int n, const char *data, const char *list, const uvae_pets *base) {
    size_t C = m->binary ? 1 : 3, zmax = 0;
    m->nscales = n > 0 ? n : 1;
    for (int k = 0; k < m->nscales; k++) {
        struct scale *sc = &m->sc[k];
        size_t z;
        sc->E = n > 0 ? E[k] : m->size;
        z = (size_t)m->batch * C * (size_t)sc->E * (size_t)sc->E;
        if (z > zmax) zmax = z;
        if (sc->E == m->size) { sc->set = base; sc->x = m->xc; sc->y = m->yc; sc->xd = m->xd; continue; }
        if (!list) die("--eval-size needs real images (not --synthetic)");
        load_set(data, list, sc->E, &sc->own);
        sc->set = &sc->own;
        if (!(sc->x = uvae_tensor_new(4, (int[]){m->batch, 3, sc->E, sc->E}))) die_lib("evaluation batch tensor");
        sc->y = m->binary ? uvae_tensor_new(4, (int[]){m->batch, 1, sc->E, sc->E}) : uvae_tensor_new(3, (int[]){m->batch, sc->E, sc->E});
        if (!sc->y) die_lib("evaluation batch tensor");
        if (m->dev == UVAE_CPU) sc->xd = sc->x;
        else if (!(sc->xd = uvae_tensor_new_on(m->dev, 4, sc->x->shape, 0))) die_lib("GPU evaluation batch tensor");
    }
    m->zs = (float *)xmalloc(zmax * sizeof(float));
    m->zm = (float *)xmalloc(zmax * sizeof(float));
    m->zr = (float *)xmalloc((size_t)m->batch * C * (size_t)m->size * (size_t)m->size * sizeof(float));
}
static void model_to_device(model *m) {
    if (m->dev != UVAE_CPU && uvae_params_to(&m->net.params, m->dev) != UVAE_OK) die_lib("moving the parameters");
}
static void model_free(model *m) {
    for (int k = 0; k < m->nscales; k++) {
        struct scale *sc = &m->sc[k];
        if (sc->x == m->xc) continue;
        if (sc->xd != sc->x) uvae_tensor_free(sc->xd);
        uvae_tensor_free(sc->x);
        uvae_tensor_free(sc->y);
        uvae_pets_free(&sc->own);
    }
    free(m->zs);
    free(m->zm);
    free(m->zr);
    if (m->xd != m->xc) uvae_tensor_free(m->xd);
    if (m->yd != m->yc) uvae_tensor_free(m->yd);
    uvae_tensor_free(m->xc);
    uvae_tensor_free(m->yc);
    uvae_ctx_free(m->ctx);
    uvae_unet_free(&m->net);
    free(m->logits);
}
/* Fill the batch from B indices into p (views may be NULL: the images as they are). */
static void model_batch(model *m, const uvae_pets *p, const int *idx, const uvae_pets_view *views) {
    if (uvae_pets_batch_views(p, idx, m->batch, m->mean, m->std, views, m->binary, m->xc, m->yc) != UVAE_OK) die_lib("making a batch");
    if (m->dev != UVAE_CPU && (uvae_tensor_copy_in(m->xd, m->xc->data) != UVAE_OK || uvae_tensor_copy_in(m->yd, m->yc->data) != UVAE_OK))
        die_lib("copying a batch to the GPU");
}
static uvae_tensor *loss_of(model *m, int loss, uvae_tensor *logits) {
    switch (loss) {
    case LOSS_BCE: return uvae_bce_with_logits(m->ctx, logits, m->yd);
    case LOSS_DICE: return uvae_dice_loss(m->ctx, logits, m->yd, 1.0f);
    case LOSS_CE_DICE: return uvae_ce_dice_loss(m->ctx, logits, m->yd, 1.0f);
    default: return uvae_cross_entropy(m->ctx, logits, m->yd);
    }
}

/* Predicted class maps (0 pet, 1 background, 2 border) of the current batch's first `count` samples.
   The 1-class head predicts pet (0) where its logit > 0, else background (1). */
static void logits_to_labels(const model *m, const float *z, int count, unsigned char *out) {
    size_t HW = (size_t)m->size * (size_t)m->size;
    for (int n = 0; n < count; n++)
        for (size_t i = 0; i < HW; i++) {
            if (m->binary) { out[(size_t)n * HW + i] = z[(size_t)n * HW + i] > 0 ? 0 : 1; continue; }
            {
                const float *zc = z + (size_t)n * 3 * HW + i;
                int best = 0;
                for (int c = 1; c < 3; c++)
                    if (zc[(size_t)c * HW] > zc[(size_t)best * HW]) best = c;
                out[(size_t)n * HW + i] = (unsigned char)best;
            }
        }
}

/* Mirror each of the `planes` S x S planes of a left to right, in place. */
static void mirror_rows(float *a, size_t planes, int S) {
    for (size_t r = 0; r < planes * (size_t)S; r++)
        for (int i = 0, j = S - 1; i < j; i++, j--) {
            float t = a[r * (size_t)S + (size_t)i];
            a[r * (size_t)S + (size_t)i] = a[r * (size_t)S + (size_t)j];
            a[r * (size_t)S + (size_t)j] = t;
        }
}

/* The logits of the current evaluation batch at scale k (its images in sc->x, copied to sc->xd)
   into m->zs [B,C,E,E]; with m->tta also the mirrored batch's, mirrored back, and the two averaged
   (sc->x is left mirrored). */
static void forward_scale(model *m, int k) {
    const struct scale *sc = &m->sc[k];
    size_t C = m->binary ? 1 : 3, total = (size_t)m->batch * C * (size_t)sc->E * (size_t)sc->E;
    uvae_tensor *z;
    if (m->dev != UVAE_CPU && uvae_tensor_copy_in(sc->xd, sc->x->data) != UVAE_OK) die_lib("copying a batch to the GPU");
    uvae_ctx_reset(m->ctx, 0);
    z = uvae_unet_forward(m->ctx, &m->net, sc->xd);
    if (!z || uvae_tensor_copy_out(z, m->zs) != UVAE_OK) die_lib("evaluation forward pass");
    if (!m->tta) return;
    mirror_rows(sc->x->data, (size_t)m->batch * 3, sc->E);
    if (m->dev != UVAE_CPU && uvae_tensor_copy_in(sc->xd, sc->x->data) != UVAE_OK) die_lib("copying a batch to the GPU");
    uvae_ctx_reset(m->ctx, 0);
    z = uvae_unet_forward(m->ctx, &m->net, sc->xd);
    if (!z || uvae_tensor_copy_out(z, m->zm) != UVAE_OK) die_lib("evaluation forward pass (mirrored)");
    mirror_rows(m->zm, (size_t)m->batch * C, sc->E);
    for (size_t i = 0; i < total; i++) m->zs[i] = 0.5f * (m->zs[i] + m->zm[i]);
}

/* How evaluation runs, for the output lines: "", " (flip TTA)", " (inputs 160x160)",
   " (flip TTA, inputs 128x128 + 160x160)", ... */
static const char *eval_note(const model *m) {
    static char buf[128];
    size_t n = 0;
    if (m->nscales == 1 && m->sc[0].E == m->size) return m->tta ? " (flip TTA)" : "";
    n += (size_t)snprintf(buf, sizeof buf, " (%sinputs", m->tta ? "flip TTA, " : "");
    for (int k = 0; k < m->nscales && n < sizeof buf; k++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s %dx%d", k ? " +" : "", m->sc[k].E, m->sc[k].E);
    if (n < sizeof buf) snprintf(buf + n, sizeof buf - n, ")");
    return buf;
}

/* Evaluation mode over idx[0..n) of p (the set model_scales was given): pooled confusion matrix;
   preds (n*S*S, may be NULL) receives the predicted maps. Each scale's images go in (p's own at the
   model's size); the logits, resized to S x S, are averaged over the scales and scored against p's
   trimaps. The last partial batch is padded by repeating an index (eval-mode batch norm treats
   samples independently) and only its real samples are counted. With m->tta each scale's logits
   are the mean of the image's and of its mirror image's (mirrored back). */
static void evaluate(model *m, const uvae_pets *p, const int *idx, int n, uvae_confusion *conf, unsigned char *preds) {
    int planes = m->batch * (m->binary ? 1 : 3);
    size_t HW = (size_t)m->size * (size_t)m->size, total = (size_t)planes * HW;
    int *bi = (int *)xmalloc((size_t)m->batch * sizeof(int));
    unsigned char *lab = (unsigned char *)xmalloc((size_t)m->batch * HW);
    memset(conf, 0, sizeof *conf);
    for (int s = 0; s < n; s += m->batch) {
        int count = n - s < m->batch ? n - s : m->batch;
        for (int b = 0; b < m->batch; b++) bi[b] = idx[s + (b < count ? b : count - 1)];
        for (int k = 0; k < m->nscales; k++) {
            const struct scale *sc = &m->sc[k];
            const float *z = m->zs;
            if (uvae_pets_batch_views(sc->set, bi, m->batch, m->mean, m->std, NULL, m->binary, sc->x, sc->y) != UVAE_OK)
                die_lib("making a batch");
            forward_scale(m, k);
            if (sc->E != m->size) {
                if (uvae_resize_bilinear(m->zs, planes, sc->E, sc->E, m->zr, m->size, m->size) != UVAE_OK)
                    die_lib("resizing the logits");
                z = m->zr;
            }
            for (size_t i = 0; i < total; i++) m->logits[i] = k ? m->logits[i] + z[i] : z[i];
        }
        if (m->nscales > 1)
            for (size_t i = 0; i < total; i++) m->logits[i] /= (float)m->nscales;
        logits_to_labels(m, m->logits, count, lab);
        for (int b = 0; b < count; b++) {
            uvae_confusion_add(conf, p->masks + (size_t)bi[b] * HW, lab + (size_t)b * HW, HW);
            if (preds) memcpy(preds + (size_t)(s + b) * HW, lab + (size_t)b * HW, HW);
        }
    }
    free(bi);
    free(lab);
}

/* ---- pictures ------------------------------------------------------------------------------- */
static const unsigned char palette[3 * 3] = {255, 140, 0,     /* pet: orange */
                                             30, 40, 110,     /* background: dark blue */
                                             250, 240, 120};  /* border: pale yellow */

/* n rows of image | truth | prediction, with the image name under each row. */
static void write_predictions(const char *path, const uvae_pets *p, const int *idx, int n, const unsigned char *preds) {
    const int S = p->size, sc = S >= 128 ? 1 : (128 + S - 1) / S, G = 4, top = 16, cap = 12;
    const int cw = S * sc, rh = cw + cap + G;
    const size_t HW = (size_t)S * (size_t)S;
    uvae_image im;
    if (uvae_image_new(&im, G + 3 * (cw + G), top + G + n * rh, 255, 255, 255) != UVAE_OK) die_lib("predictions.png");
    uvae_image_text(&im, G, 3, "image", 1, 0, 0, 0);
    uvae_image_text(&im, G + (cw + G), 3, "truth", 1, 0, 0, 0);
    uvae_image_text(&im, G + 2 * (cw + G), 3, "prediction", 1, 0, 0, 0);
    for (int r = 0; r < n; r++) {
        int y = top + G + r * rh;
        uvae_image_paste(&im, p->images + (size_t)idx[r] * 3 * HW, 3, S, S, 0.0f, 1.0f, G, y, sc);
        uvae_image_paste_labels(&im, p->masks + (size_t)idx[r] * HW, S, S, palette, 3, G + (cw + G), y, sc);
        uvae_image_paste_labels(&im, preds + (size_t)r * HW, S, S, palette, 3, G + 2 * (cw + G), y, sc);
        uvae_image_text(&im, G, y + cw + 1, p->names[idx[r]], 1, 60, 60, 60);
    }
    if (uvae_image_save_png(&im, path) != UVAE_OK) { uvae_image_free(&im); die_lib("writing predictions"); }
    uvae_image_free(&im);
}

/* ---- checkpoints ---------------------------------------------------------------------------- */
/* What a training checkpoint holds besides the weights, so that --resume continues the run exactly:
   the optimizer (its moments and step count, which also places the schedule), the generators, and
   the loss summed over the current epoch so far. */
typedef struct train_state {
    uvae_optim *opt;
    uvae_rng rng;           /* the run's generator (shuffles, augmentation) now */
    uvae_rng rng_epoch;     /* the same at the start of the current epoch, before its shuffle */
    uvae_rng ctx_rng;       /* the context's generator */
    double epoch_sum;
    char recipe[256];       /* the flags that shape the run; a resumed run must match them */
} train_state;

static void save_checkpoint(const char *path, model *m, const opts *o, int epoch, const train_state *ts) {
    char v[9][64], rs[3][UVAE_RNG_STR];
    const char *kv[30];
    snprintf(v[0], 64, "%d", o->size);
    snprintf(v[1], 64, "%d", o->width);
    snprintf(v[2], 64, "%d", o->depth);
    snprintf(v[3], 64, "%.9g,%.9g,%.9g", m->mean[0], m->mean[1], m->mean[2]);
    snprintf(v[4], 64, "%.9g,%.9g,%.9g", m->std[0], m->std[1], m->std[2]);
    snprintf(v[5], 64, "%d", epoch);
    kv[0] = "size"; kv[1] = v[0]; kv[2] = "width"; kv[3] = v[1]; kv[4] = "depth"; kv[5] = v[2];
    kv[6] = "down"; kv[7] = down_names[o->down]; kv[8] = "up"; kv[9] = up_names[o->up];
    kv[10] = "loss"; kv[11] = loss_names[o->loss]; kv[12] = "mean"; kv[13] = v[3]; kv[14] = "std"; kv[15] = v[4];
    kv[16] = "epoch"; kv[17] = v[5];
    uvae_rng_to_str(&ts->rng, rs[0]);
    uvae_rng_to_str(&ts->rng_epoch, rs[1]);
    uvae_rng_to_str(&ts->ctx_rng, rs[2]);
    snprintf(v[6], 64, "%a", ts->epoch_sum);   /* hexadecimal: exact */
    kv[18] = "rng"; kv[19] = rs[0]; kv[20] = "rng_epoch"; kv[21] = rs[1]; kv[22] = "ctx_rng"; kv[23] = rs[2];
    kv[24] = "epoch_loss_sum"; kv[25] = v[6]; kv[26] = "recipe"; kv[27] = ts->recipe;
    if (uvae_save(path, &m->net.params, ts->opt, kv, 14) != UVAE_OK) die_lib("saving the checkpoint");
}
static const char *meta(const uvae_st_file *f, const char *ckpt, const char *key) {
    const char *v = uvae_st_meta(f, key);
    if (!v) die("%s: not a unet_pets checkpoint (metadata '%s' missing)", ckpt, key);
    return v;
}
static void meta_floats3(const uvae_st_file *f, const char *ckpt, const char *key, float out[3]) {
    const char *v = meta(f, ckpt, key);
    char *end;
    for (int c = 0; c < 3; c++) {
        errno = 0;
        out[c] = strtof(v, &end);
        if (errno || end == v || (c < 2 ? *end != ',' : *end != '\0') || !isfinite(out[c]))
            die("%s: metadata '%s' = '%s' is not three numbers", ckpt, key, uvae_st_meta(f, key));
        v = end + 1;
    }
}
static int meta_choice(const uvae_st_file *f, const char *ckpt, const char *key, const char *const *names, int n) {
    const char *v = meta(f, ckpt, key);
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0) return i;
    die("%s: metadata '%s' = '%s' is not valid", ckpt, key, v);
    return 0;
}
static int meta_int(const uvae_st_file *f, const char *ckpt, const char *key, long lo, long hi) {
    char flag[128];
    snprintf(flag, sizeof flag, "%s: metadata '%s'", ckpt, key);
    return (int)parse_long(flag, meta(f, ckpt, key), lo, hi);
}
/* --resume: the model's weights, the optimizer's state and the rest of ts from a training checkpoint. */
static void resume_from(const char *path, model *m, train_state *ts) {
    uvae_st_file f;
    const char *r;
    char *end;
    need_file(path, "--resume");
    if (uvae_st_read(path, &f) != UVAE_OK) die_lib("--resume");
    r = meta(&f, path, "recipe");
    if (strcmp(r, ts->recipe) != 0) die("--resume %s: it was trained with '%s' but this run has '%s': give the same flags", path, r, ts->recipe);
    if (uvae_rng_from_str(&ts->rng, meta(&f, path, "rng")) != UVAE_OK || uvae_rng_from_str(&ts->rng_epoch, meta(&f, path, "rng_epoch")) != UVAE_OK ||
        uvae_rng_from_str(&ts->ctx_rng, meta(&f, path, "ctx_rng")) != UVAE_OK)
        die("--resume %s: %s", path, uvae_last_error());
    r = meta(&f, path, "epoch_loss_sum");
    errno = 0;
    ts->epoch_sum = strtod(r, &end);
    if (errno || end == r || *end || !isfinite(ts->epoch_sum)) die("--resume %s: metadata epoch_loss_sum '%s' is not a number", path, r);
    uvae_st_free(&f);
    if (uvae_load(path, &m->net.params, ts->opt) != UVAE_OK) die_lib("--resume");
}
/* OUT/metrics.csv, one row per epoch (--resume reads it back with history_from_csv, common.h) */
static const char CSV_HEADER[] = "epoch,train_loss,val_pet_iou,val_miou,val_pixel_acc,val_dice,seconds\n";

/* ---- --synthetic: a generated segmentation set ------------------------------------------------ */
/* n images S x S: a textured background (two colours in waves, plus noise) and one 'pet', an
   ellipse of random centre, axes, angle and colour with stripes, its edge blended over a band;
   the trimap marks the ellipse's inside pet, its outside background, and the band border, as the
   Oxford-IIIT Pet trimaps do. Deterministic for a seed. */
static void make_synthetic(uvae_pets *p, int n, int S, unsigned long long seed) {
    const size_t HW = (size_t)S * (size_t)S;
    const float band = 0.12f;   /* border half-width, relative to the ellipse's radius */
    uvae_rng r;
    uvae_rng_seed(&r, (uint64_t)seed ^ 0x5e6d47a1ULL);
    memset(p, 0, sizeof *p);
    p->n = n; p->size = S;
    p->images = (float *)xmalloc((size_t)n * 3 * HW * sizeof(float));
    p->masks = (unsigned char *)xmalloc((size_t)n * HW);
    p->names = (char(*)[64])xmalloc((size_t)n * sizeof *p->names);
    for (int i = 0; i < n; i++) {
        float bg[2][3], fg[3], cx, cy, a, b, th, fx, fy, fs, ph;
        for (int c = 0; c < 3; c++) {
            bg[0][c] = 0.1f + 0.8f * uvae_rng_uniform(&r);
            bg[1][c] = 0.1f + 0.8f * uvae_rng_uniform(&r);
            fg[c] = uvae_rng_uniform(&r);
        }
        cx = S * (0.3f + 0.4f * uvae_rng_uniform(&r)); cy = S * (0.3f + 0.4f * uvae_rng_uniform(&r));
        a = S * (0.15f + 0.2f * uvae_rng_uniform(&r)); b = S * (0.12f + 0.15f * uvae_rng_uniform(&r));
        th = 3.14159265f * uvae_rng_uniform(&r);
        fx = 0.05f + 0.3f * uvae_rng_uniform(&r); fy = 0.05f + 0.3f * uvae_rng_uniform(&r);
        fs = 0.3f + 0.5f * uvae_rng_uniform(&r); ph = 6.2831853f * uvae_rng_uniform(&r);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                size_t k = (size_t)y * S + x;
                float dx = x + 0.5f - cx, dy = y + 0.5f - cy;
                float u = (dx * cosf(th) + dy * sinf(th)) / a, v = (-dx * sinf(th) + dy * cosf(th)) / b;
                float rho = sqrtf(u * u + v * v), wbg = 0.5f + 0.5f * sinf(fx * x + fy * y + ph);
                float t = (rho - (1 - band)) / (2 * band), alpha = t <= 0 ? 1 : t >= 1 ? 0 : 1 - t;   /* pet weight */
                float stripe = 0.75f + 0.25f * sinf(fs * u * a + ph);
                for (int c = 0; c < 3; c++) {
                    float back = bg[0][c] * wbg + bg[1][c] * (1 - wbg), pet = fg[c] * stripe;
                    float val = alpha * pet + (1 - alpha) * back + 0.06f * (uvae_rng_uniform(&r) - 0.5f);
                    p->images[((size_t)i * 3 + c) * HW + k] = val < 0 ? 0 : val > 1 ? 1 : val;
                }
                p->masks[(size_t)i * HW + k] = (unsigned char)(rho < 1 - band ? 0 : rho > 1 + band ? 1 : 2);
            }
        snprintf(p->names[i], sizeof p->names[i], "synthetic_%04d", i);
    }
}

/* The model a checkpoint describes: its metadata, checked. */
typedef struct ckpt_info {
    int size, width, depth, down, up, loss, epoch;
    float mean[3], std[3];
} ckpt_info;
static void read_ckpt_info(const char *path, const char *flag, ckpt_info *c) {
    uvae_st_file f;
    need_file(path, flag);
    if (uvae_st_read(path, &f) != UVAE_OK) die_lib(flag);
    c->size = meta_int(&f, path, "size", 2, 4096);
    c->width = meta_int(&f, path, "width", 1, 512);
    c->depth = meta_int(&f, path, "depth", 1, UVAE_UNET_MAX_DEPTH);
    c->epoch = meta_int(&f, path, "epoch", 0, 100000);
    c->down = meta_choice(&f, path, "down", down_names, 2);
    c->up = meta_choice(&f, path, "up", up_names, 2);
    c->loss = meta_choice(&f, path, "loss", loss_names, 4);
    if (c->size % (1 << c->depth)) die("%s: metadata size %d not divisible by 2^depth", path, c->size);
    meta_floats3(&f, path, "mean", c->mean);
    meta_floats3(&f, path, "std", c->std);
    uvae_st_free(&f);
    for (int k = 0; k < 3; k++)
        if (!(c->std[k] > 0)) die("%s: metadata std must be > 0", path);
}
/* Rebuild the model described by a checkpoint and load its weights (eval mode from then on). */
static void model_from_checkpoint(model *m, const opts *o, int dev, int *epoch) {
    ckpt_info c;
    read_ckpt_info(o->ckpt, "--ckpt", &c);
    memset(m, 0, sizeof *m);
    memcpy(m->mean, c.mean, sizeof m->mean);
    memcpy(m->std, c.std, sizeof m->std);
    model_init(m, dev, c.size, o->batch, c.width, c.depth, c.down, c.up, c.loss == LOSS_BCE, 0);
    if (uvae_load(o->ckpt, &m->net.params, NULL) != UVAE_OK) die_lib("loading the checkpoint");
    model_to_device(m);
    *epoch = c.epoch;
    printf("checkpoint %s: size %d, width %d, depth %d, down %s, up %s, loss %s, epoch %d\n", o->ckpt, c.size, c.width,
           c.depth, down_names[c.down], up_names[c.up], loss_names[c.loss], c.epoch);
}
/* --init: a training run starts from checkpoint F's weights and normalisation (fine-tuning). The
   architecture must be the same; the size, loss (within the same head) and recipe may differ. */
static void init_from(const char *path, model *m, const opts *o) {
    ckpt_info c;
    read_ckpt_info(path, "--init", &c);
    if (c.width != o->width || c.depth != o->depth || c.down != o->down || c.up != o->up || (c.loss == LOSS_BCE) != (o->loss == LOSS_BCE))
        die("--init %s: it is a width %d depth %d %s/%s model with a %s head, but this run asks for width %d depth %d %s/%s "
            "with a %s head", path, c.width, c.depth, down_names[c.down], up_names[c.up], c.loss == LOSS_BCE ? "1-class" : "3-class",
            o->width, o->depth, down_names[o->down], up_names[o->up], o->loss == LOSS_BCE ? "1-class" : "3-class");
    memcpy(m->mean, c.mean, sizeof m->mean);
    memcpy(m->std, c.std, sizeof m->std);
    if (uvae_load(path, &m->net.params, NULL) != UVAE_OK) die_lib("--init");
    printf("initialised from %s (epoch %d of a %dx%d %s run)\n", path, c.epoch, c.size, c.size, loss_names[c.loss]);
}

/* ---- training ------------------------------------------------------------------------------- */
static void stats_of(const uvae_pets *p, const int *idx, int n, float mean[3], float std[3]) {
    size_t HW = (size_t)p->size * (size_t)p->size;
    for (int c = 0; c < 3; c++) {
        double s = 0, s2 = 0, cnt = (double)n * (double)HW;
        for (int i = 0; i < n; i++) {
            const float *q = p->images + ((size_t)idx[i] * 3 + (size_t)c) * HW;
            for (size_t k = 0; k < HW; k++) { s += q[k]; s2 += (double)q[k] * q[k]; }
        }
        mean[c] = (float)(s / cnt);
        std[c] = (float)sqrt(fmax(s2 / cnt - (s / cnt) * (s / cnt), 1e-12));
        if (!(std[c] > 1e-6f)) std[c] = 1.0f;   /* a constant channel: leave it unscaled */
    }
}
static int cmd_train(const opts *o0) {
    opts o = *o0;
    uvae_pets tr, vsep;
    const uvae_pets *vs;
    int *tidx, *vidx, ntr, nva, steps, total_steps, dev;
    model m;
    uvae_optim opt;
    uvae_rng rng;
    char *train_list, *p_csv, *p_curves, *p_ckpt, *p_pred;
    float *h_loss, *h_piou, *h_miou;
    unsigned char *preds;
    uvae_pets_view *views;
    double t_train = 0, t_start = now_s();
    long long images_seen = 0;
    uvae_seg_metrics last;
    FILE *csv, *steplog = NULL;
    train_state ts;
    int64_t done = 0;   /* steps done before this run (--resume) */
    int run_steps = 0;
    memset(&tr, 0, sizeof tr);
    memset(&vsep, 0, sizeof vsep);
    memset(&last, 0, sizeof last);
    dev = pick_device(o.device);
    if (o.poison_step && dev != UVAE_CPU) die("--poison-step is for tests on the CPU");
    if (o.synthetic) {
        if (o.val_list || o.train_list) die("--synthetic makes its own images: give neither --train-list nor --val-list");
        if (o.synthetic < 2) die("--synthetic: at least 2 images (a training and a validation split)");
        train_list = NULL;
        make_synthetic(&tr, o.synthetic, o.size, o.seed);
    } else {
        need_dir(o.data, "--data");
        train_list = o.train_list ? (char *)o.train_list : path_join(o.data, "annotations/trainval.txt");
        load_set(o.data, train_list, o.size, &tr);
    }
    uvae_rng_seed(&rng, (uint64_t)o.seed);

    /* the split: a seeded permutation of the train list; the first val_frac of it validates */
    {
        int *perm = (int *)xmalloc((size_t)tr.n * sizeof(int));
        uvae_shuffle(perm, tr.n, &rng);
        if (o.val_list) {
            load_set(o.data, o.val_list, o.size, &vsep);
            vs = &vsep;
            nva = vsep.n;
            vidx = (int *)xmalloc((size_t)nva * sizeof(int));
            for (int i = 0; i < nva; i++) vidx[i] = i;
            ntr = tr.n;
            tidx = (int *)xmalloc((size_t)ntr * sizeof(int));
            for (int i = 0; i < ntr; i++) tidx[i] = i;
        } else {
            vs = &tr;
            nva = (int)floor(o.val_frac * tr.n + 0.5);
            if (nva < 1 || nva >= tr.n) die("--val-frac %g of %d images leaves an empty split", o.val_frac, tr.n);
            ntr = tr.n - nva;
            vidx = (int *)xmalloc((size_t)nva * sizeof(int));
            tidx = (int *)xmalloc((size_t)ntr * sizeof(int));
            /* validation in list order, so predictions.png is stable to read */
            for (int i = 0; i < nva; i++) vidx[i] = perm[i];
            for (int i = 0; i < ntr; i++) tidx[i] = perm[nva + i];
            for (int i = 1; i < nva; i++)
                for (int j = i; j > 0 && vidx[j - 1] > vidx[j]; j--) { int t = vidx[j]; vidx[j] = vidx[j - 1]; vidx[j - 1] = t; }
            for (int i = 1; i < ntr; i++)
                for (int j = i; j > 0 && tidx[j - 1] > tidx[j]; j--) { int t = tidx[j]; tidx[j] = tidx[j - 1]; tidx[j - 1] = t; }
        }
        free(perm);
    }
    if (o.limit > 0 && o.limit < ntr) ntr = o.limit;
    mkdir_p(o.out, "--out");
    {   /* the split as lists of names, so another program (bench/torch_unet.py) can use the same one */
        char *pt = path_join(o.out, "split_train.txt"), *pv = path_join(o.out, "split_val.txt");
        FILE *ft = fopen(pt, "w"), *fv = fopen(pv, "w");
        int ok = ft && fv;
        for (int i = 0; ok && i < ntr; i++) ok = fprintf(ft, "%s\n", tr.names[tidx[i]]) > 0;
        for (int i = 0; ok && i < nva; i++) ok = fprintf(fv, "%s\n", vs->names[vidx[i]]) > 0;
        if (ft && fclose(ft) != 0) ok = 0;
        if (fv && fclose(fv) != 0) ok = 0;
        if (!ok) die("cannot write '%s' or '%s'", pt, pv);
        free(pt); free(pv);
    }
    if (o.batch > ntr) {
        fprintf(stderr, "unet_pets: note: --batch %d > %d training images; using batch %d\n", o.batch, ntr, ntr);
        o.batch = ntr;
    }
    steps = ntr / o.batch;                 /* the last partial batch is dropped (batch norm) */
    total_steps = steps * o.epochs;

    memset(&m, 0, sizeof m);
    model_init(&m, dev, o.size, o.batch, o.width, o.depth, o.down, o.up, o.loss == LOSS_BCE, o.seed);
    m.tta = o.tta;
    model_scales(&m, o.eval_sizes, o.n_eval_sizes, o.data, o.synthetic ? NULL : o.val_list ? o.val_list : train_list, vs);
    if (o.init) init_from(o.init, &m, &o);   /* F's weights and normalisation (--resume then overwrites the weights) */
    else stats_of(&tr, tidx, ntr, m.mean, m.std);
    model_to_device(&m);
    if (uvae_optim_init(&opt, &m.net.params, UVAE_ADAM, (float)o.lr) != UVAE_OK) die_lib("making the optimizer");

    p_csv = path_join(o.out, "metrics.csv");
    p_curves = path_join(o.out, "curves.png");
    p_ckpt = path_join(o.out, "checkpoint.safetensors");
    p_pred = path_join(o.out, "predictions.png");
    h_loss = (float *)xmalloc((size_t)o.epochs * sizeof(float));
    h_piou = (float *)xmalloc((size_t)o.epochs * sizeof(float));
    h_miou = (float *)xmalloc((size_t)o.epochs * sizeof(float));
    memset(&ts, 0, sizeof ts);
    ts.opt = &opt;
    snprintf(ts.recipe, sizeof ts.recipe, "size %d width %d depth %d down %s up %s loss %s batch %d epochs %d lr %.9g seed %llu "
             "min-scale %.9g jitter %.9g train %d val %d synthetic %d%s", o.size, o.width, o.depth, down_names[o.down], up_names[o.up],
             loss_names[o.loss], o.batch, o.epochs, o.lr, o.seed, o.min_scale, o.jitter, ntr, nva, o.synthetic, o.init ? " init" : "");
    if (o.resume) {
        resume_from(o.resume, &m, &ts);
        done = opt.step;
        if (done > total_steps) die("--resume %s: %lld steps done, more than the run's %d", o.resume, (long long)done, total_steps);
        rng = ts.rng;
        *uvae_ctx_rng(m.ctx) = ts.ctx_rng;
        history_from_csv(p_csv, CSV_HEADER, (int)(done / steps), h_loss, h_piou, h_miou);
        printf("resumed from %s at step %lld (epoch %d, batch %d of %d)\n", o.resume, (long long)done, (int)(done / steps) + 1,
               (int)(done % steps), steps);
    } else if (!(csv = fopen(p_csv, "w")) || fputs(CSV_HEADER, csv) < 0 || fclose(csv) != 0)
        die("cannot write '%s': %s", p_csv, strerror(errno));
    if (o.log_steps && !(steplog = fopen(o.log_steps, "a"))) die("--log-steps: cannot append to '%s': %s", o.log_steps, strerror(errno));
    views = (uvae_pets_view *)xmalloc((size_t)o.batch * sizeof *views);
    printf("unet_pets: %d train / %d val images at %dx%d, UNet width %d depth %d (%s/%s), loss %s, %zu params, "
           "%d steps of batch %d, augmentation: flips, scale-crop %g..1, colour jitter %g, device %s%s%s\n", ntr, nva, o.size, o.size,
           o.width, o.depth, down_names[o.down], up_names[o.up], loss_names[o.loss], uvae_params_count(&m.net.params), total_steps,
           o.batch, o.min_scale, o.jitter, o.device, *eval_note(&m) ? ", validation" : "", eval_note(&m));
    fflush(stdout);

    for (int e = (int)(done / steps); e < o.epochs; e++) {
        int s0 = e == done / steps ? (int)(done % steps) : 0;   /* a resumed run starts mid-epoch */
        double t0 = now_s(), sum = s0 > 0 ? ts.epoch_sum : 0;
        int *order = (int *)xmalloc((size_t)ntr * sizeof(int));
        int *bi = (int *)xmalloc((size_t)o.batch * sizeof(int));
        uvae_confusion conf;
        uvae_seg_metrics sm;
        if (s0 == 0) ts.rng_epoch = rng;
        {   /* this epoch's order, from the generator as it was at the epoch's start */
            uvae_rng r = ts.rng_epoch;
            uvae_shuffle(order, ntr, &r);
            if (s0 == 0) rng = r;
        }
        for (int s = s0; s < steps; s++) {
            int64_t gstep = (int64_t)e * steps + s;   /* this is step gstep + 1 */
            int save_now = (o.save_every > 0 && (gstep + 1) % o.save_every == 0) || s + 1 == steps;
            uvae_tensor *loss;
            float lv;
            double el;
            for (int b = 0; b < o.batch; b++) bi[b] = tidx[order[s * o.batch + b]];
            if (uvae_pets_random_views(&rng, o.batch, o.size, (float)o.min_scale, (float)o.jitter, views) != UVAE_OK) die_lib("augmentation");
            model_batch(&m, &tr, bi, views);
            uvae_ctx_reset(m.ctx, 1);
            uvae_params_zero_grad(&m.net.params);
            loss = loss_of(&m, o.loss, uvae_unet_forward(m.ctx, &m.net, m.xd));
            if (!loss || uvae_backward(m.ctx, loss) != UVAE_OK) die_lib("training step");
            if (o.poison_step == gstep + 1) m.net.params.grad[0] = NAN;
            if (uvae_tensor_copy_out(loss, &lv) != UVAE_OK) die_lib("reading the loss");
            if (!isfinite(lv)) not_finite(gstep + 1, "the loss", lv, p_ckpt);
            if ((gstep + 1) % o.check_every == 0 || save_now) {
                float gn = uvae_grad_norm(&m.net.params);
                if (!isfinite(gn)) not_finite(gstep + 1, "the gradients' global norm", gn, p_ckpt);
            }
            if (uvae_optim_step(&opt, &m.net.params, uvae_lr_onecycle(gstep, total_steps, (float)o.lr)) != UVAE_OK)
                die_lib("optimizer step");
            sum += lv;
            if (steplog && (fprintf(steplog, "%lld,%.9g\n", (long long)gstep + 1, lv) < 0 || fflush(steplog) != 0))
                die("--log-steps: cannot write '%s'", o.log_steps);
            if (save_now && s + 1 < steps) {   /* the epoch's end saves after its evaluation, below */
                ts.rng = rng;
                ts.ctx_rng = *uvae_ctx_rng(m.ctx);
                ts.epoch_sum = sum;
                save_checkpoint(p_ckpt, &m, &o, e, &ts);
            }
            images_seen += o.batch;
            el = now_s() - t0;
            progress(NULL, e + 1, o.epochs, s + 1, steps, sum / (s + 1), (double)(s + 1) * o.batch / (el > 1e-9 ? el : 1e-9),
                     el / (s + 1) * (steps - s - 1));
            if (o.stop_after > 0 && ++run_steps == o.stop_after) {
                progress_end();
                printf("stopped after %d steps of this run (--stop-after), at step %lld\n", run_steps, (long long)gstep + 1);
                exit(0);
            }
        }
        t_train += now_s() - t0;
        free(order);
        free(bi);
        evaluate(&m, vs, vidx, nva, &conf, NULL);
        sm = uvae_confusion_metrics(&conf);
        last = sm;
        h_loss[e] = (float)(sum / steps);
        h_piou[e] = (float)sm.pet_iou;
        h_miou[e] = (float)sm.miou;
        progress_end();
        printf("epoch %d/%d  train loss %.4f  val pet IoU %.4f  mIoU %.4f  pixel acc %.4f  Dice %.4f  (%.1f s)\n", e + 1,
               o.epochs, sum / steps, sm.pet_iou, sm.miou, sm.pixel_acc, sm.dice, now_s() - t0);
        fflush(stdout);
        if (!(csv = fopen(p_csv, "a"))) die("cannot append to '%s': %s", p_csv, strerror(errno));
        fprintf(csv, "%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.3f\n", e + 1, sum / steps, sm.pet_iou, sm.miou, sm.pixel_acc, sm.dice,
                now_s() - t0);
        if (fclose(csv) != 0) die("cannot write '%s': %s", p_csv, strerror(errno));
        {
            const char *names[3] = {"train loss", "val pet IoU", "val mIoU"};
            const float *series[3];
            series[0] = h_loss; series[1] = h_piou; series[2] = h_miou;
            if (uvae_plot_png(p_curves, 640, 400, "UNet on Oxford-IIIT Pet, per epoch", names, series, 3, e + 1) != UVAE_OK)
                die_lib("writing curves.png");
        }
        ts.rng = rng;
        ts.ctx_rng = *uvae_ctx_rng(m.ctx);
        ts.epoch_sum = 0;
        save_checkpoint(p_ckpt, &m, &o, e + 1, &ts);
    }

    {
        int n = nva < 8 ? nva : 8, pick[8];
        uvae_confusion conf;
        for (int i = 0; i < n; i++) pick[i] = vidx[(int)((long long)i * nva / n)];   /* spread over the split (and the breeds) */
        preds = (unsigned char *)xmalloc((size_t)n * (size_t)o.size * (size_t)o.size);
        evaluate(&m, vs, pick, n, &conf, preds);
        write_predictions(p_pred, vs, pick, n, preds);
        free(preds);
    }
    printf("summary: unet %s/%s loss %s width %d depth %d size %d | %zu params | %d epochs | %.1f s (train %.1f s) | "
           "%.1f img/s | val%s pet IoU %.4f mIoU %.4f pixel acc %.4f | %s\n",
           down_names[o.down], up_names[o.up], loss_names[o.loss], o.width, o.depth, o.size,
           uvae_params_count(&m.net.params), o.epochs, now_s() - t_start, t_train,
           (double)images_seen / (t_train > 1e-9 ? t_train : 1e-9), eval_note(&m), last.pet_iou, last.miou, last.pixel_acc, o.out);

    uvae_optim_free(&opt);
    model_free(&m);
    uvae_pets_free(&tr);
    uvae_pets_free(&vsep);
    if (train_list != o.train_list) free(train_list);
    if (steplog) fclose(steplog);
    free(tidx); free(vidx); free(h_loss); free(h_piou); free(h_miou); free(views);
    free(p_csv); free(p_curves); free(p_ckpt); free(p_pred);
    return 0;
}

/* ---- eval / predict ------------------------------------------------------------------------- */
static int cmd_eval_predict(const opts *o, int predict) {
    model m;
    uvae_pets set;
    int dev, epoch, *idx, n;
    char *list;
    uvae_confusion conf;
    uvae_seg_metrics sm;
    memset(&set, 0, sizeof set);
    dev = pick_device(o->device);
    need_dir(o->data, "--data");
    list = o->list ? (char *)o->list : path_join(o->data, "annotations/trainval.txt");
    need_file(list, "--list");
    model_from_checkpoint(&m, o, dev, &epoch);
    m.tta = o->tta;
    for (int k = 0; k < o->n_eval_sizes; k++)
        if (o->eval_sizes[k] % (1 << m.net.cfg.depth))
            die("--eval-size %d is not divisible by 2^depth = %d (the checkpoint's depth)", o->eval_sizes[k], 1 << m.net.cfg.depth);
    load_set(o->data, list, m.size, &set);
    model_scales(&m, o->eval_sizes, o->n_eval_sizes, o->data, list, &set);
    n = predict ? (o->n < set.n ? o->n : set.n) : set.n;
    idx = (int *)xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) idx[i] = (int)((long long)i * set.n / n);   /* predict: spread over the list */
    if (predict) {
        unsigned char *preds = (unsigned char *)xmalloc((size_t)n * (size_t)m.size * (size_t)m.size);
        char *path;
        mkdir_p(o->out, "--out");
        path = path_join(o->out, "predictions.png");
        evaluate(&m, &set, idx, n, &conf, preds);
        write_predictions(path, &set, idx, n, preds);
        sm = uvae_confusion_metrics(&conf);
        printf("predict: wrote %s (%d images; on them pet IoU %.4f mIoU %.4f pixel acc %.4f)\n", path, n, sm.pet_iou,
               sm.miou, sm.pixel_acc);
        free(path);
        free(preds);
    } else {
        evaluate(&m, &set, idx, n, &conf, NULL);
        sm = uvae_confusion_metrics(&conf);
        printf("eval%s: %s (%d images): pet IoU %.4f  mIoU %.4f  pixel acc %.4f  Dice %.4f  (IoU pet %.4f background %.4f "
               "border %.4f)\n", eval_note(&m), list, n, sm.pet_iou, sm.miou, sm.pixel_acc, sm.dice, sm.iou[0], sm.iou[1], sm.iou[2]);
    }
    free(idx);
    if (list != o->list) free(list);
    uvae_pets_free(&set);
    model_free(&m);
    return 0;
}

int main(int argc, char **argv) {
    opts o;
    int cmd;
    setvbuf(stdout, NULL, _IOLBF, 0);   /* results show as they happen, also in a log file */
    if (argc < 2) die("missing command: train, eval or predict (see --help)");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    if (!strcmp(argv[1], "train")) cmd = 0;
    else if (!strcmp(argv[1], "eval")) cmd = 1;
    else if (!strcmp(argv[1], "predict")) cmd = 2;
    else { die("unknown command '%s' (train, eval or predict; see --help)", argv[1]); return 1; }
    parse_args(argc, argv, cmd, &o);
    return cmd == 0 ? cmd_train(&o) : cmd_eval_predict(&o, cmd == 2);
}
