/* examples/cvae.c — a conditional VAE on MNIST, Fashion-MNIST or CIFAR-10, judged by a classifier.

   1. A judge (uvae_classifier) is trained on the real training set (or loaded with --judge F) and
      its test accuracy is reported.
      A second classifier, the teacher, is trained the same way from another seed when the label
      loss needs one: the judge that measures label-follow is never used in training.
   2. The CVAE (uvae_cvae) is trained with its likelihood (Bernoulli for pixels in [0,1], or a
      discretised logistic for 8-bit pixels) + beta * KL. --label-loss W > 0 adds W * cross-entropy
      of the FROZEN teacher on sigmoid(decoder logits) of the same images given random wrong labels:
      the teacher runs in evaluation mode, its gradients are zeroed every step, it is never stepped.
   3. Test loss (NLL + KL, nats/image, correct labels), label-follow (every test image given a random
      wrong label, decoded at z = mu, classified by the judge), pictures, checkpoint.

     make build/cvae && ./build/cvae --dataset mnist --epochs 10
     ./build/cvae --help                                                 (every flag, with defaults)
   GPU: nvcc -O3 -DUNETVAE_CUDA examples/cvae.c unetvae_cuda.cu -o cvae_cuda && ./cvae_cuda --device cuda */
#define _POSIX_C_SOURCE 200809L
#define UNETVAE_IMPLEMENTATION
#define EXAMPLE_NAME "cvae"
#include "../unetvae.h"
#include "common.h"

static const char *const CIFAR_NAMES[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                            "dog", "frog", "horse", "ship", "truck"};
/* the same classes, short enough for a caption under a 32 x 32 image */
static const char *const CIFAR_SHORT[10] = {"plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
/* Fashion-MNIST's classes (0 T-shirt/top ... 9 ankle boot), short for captions */
static const char *const FASHION_SHORT[10] = {"top", "trouser", "pullover", "dress", "coat",
                                              "sandal", "shirt", "sneaker", "bag", "boot"};
typedef struct opts {
    const char *dataset, *data, *out, *judge, *teacher, *dump, *device, *resume, *log_steps;
    int save_every, check_every, stop_after, poison_step;   /* CVAE checkpoints, the NaN guard, and two for tests */
    int epochs, batch, latent, width, cond_planes, judge_epochs, judge_width, teacher_width, judge_blocks, limit, likelihood;
    float lr, beta, label_loss, judge_lr;
    int label_aug;
    unsigned long long seed;
} opts;

static void usage(void) {
    printf("usage: cvae [flags]\n"
           "  --dataset NAME      mnist | fashion | cifar10 (default mnist)\n"
           "  --data DIR          dataset folder (default data/mnist, /usr/share/datasets/fashion-mnist,\n"
           "                      data/cifar10 for the three datasets)\n"
           "  --epochs N          CVAE training epochs (default 10)\n"
           "  --batch N           batch size (default 128)\n"
           "  --lr F              CVAE Adam learning rate (default 0.001)\n"
           "  --latent N          latent dimension (default 32)\n"
           "  --width N           CVAE conv width (default 32)\n"
           "  --cond-planes P     per-class feature maps fed to each decoder stage (default 0)\n"
           "  --likelihood L      bernoulli | logistic (8-bit pixels under a discretised logistic with a\n"
           "                      per-pixel scale; test loss also in bits/dim) (default: bernoulli for\n"
           "                      mnist and fashion, logistic for cifar10)\n"
           "  --beta F            KL weight in the training loss (default 1)\n"
           "  --label-loss W      W > 0: add W * cross-entropy of a frozen teacher classifier on outputs\n"
           "                      generated with random wrong labels (default 0: off)\n"
           "  --label-aug 0|1     1: the teacher sees each generated batch shifted by up to 2 pixels\n"
           "                      (and, for colour images, mirrored at random) (default 0)\n"
           "  --judge-epochs N    judge (and teacher) training epochs (default 3)\n"
           "  --judge-width N     judge conv width (default 32)\n"
           "  --teacher-width N   teacher conv width (default 16)\n"
           "  --judge-blocks N    conv blocks of the judge and the teacher, 1..4 (default 2 for 28x28\n"
           "                      images, 3 for 32x32)\n"
           "  --judge-lr F        judge Adam learning rate (default 0.001)\n"
           "  --judge F           load this judge checkpoint instead of training one (default: train it\n"
           "                      and save OUT/judge.safetensors)\n"
           "  --teacher F         load this teacher checkpoint (the label loss's classifier; trained\n"
           "                      like the judge from another seed, never the judge itself; default:\n"
           "                      train it when --label-loss > 0 and save OUT/teacher.safetensors)\n"
           "  --limit N           use only the first N training images (default 0: all)\n"
           "  --seed N            seed of everything (default 1)\n"
           "  --device D          cpu | cuda (cuda only in a GPU build; default cpu, or cuda in a GPU build)\n"
           "  --out DIR           output folder (default runs/cvae)\n"
           "  --dump DIR          also write every mismatched test output as IDX files in DIR\n"
           "                      (default: none)\n"
           "  --save-every N      also checkpoint the CVAE every N steps, not only at epoch ends (default 0)\n"
           "  --resume F          continue the CVAE training saved in F (OUT/checkpoint.safetensors):\n"
           "                      weights, Adam moments, step, schedule and random state; the judge and\n"
           "                      teacher are read from OUT unless --judge/--teacher say otherwise.\n"
           "                      Give the same flags as the first run\n"
           "  --check-every N     check the gradients' global norm every N steps and before each\n"
           "                      checkpoint; the loss is checked every step. A NaN/Inf stops the run\n"
           "                      and the last checkpoint stays as it was (default 10)\n"
           "  --log-steps FILE    append 'step,loss' for every CVAE step (9 significant digits: exact)\n"
           "  --stop-after N      (tests) stop after N CVAE steps of this run, as if killed (default 0)\n"
           "  --poison-step N     (tests, CPU) make the CVAE's gradients NaN at step N (default 0)\n"
           "  --help              this text\n");
}

static int parse_int(const char *flag, const char *v, int lo) {
    char *end;
    long x;
    errno = 0;
    x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > 1000000000L) die("%s: bad value '%s' (want an integer >= %d)", flag, v, lo);
    return (int)x;
}
static float parse_float(const char *flag, const char *v, float lo) {
    char *end;
    double x;
    errno = 0;
    x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo) || x > 1e9) die("%s: bad value '%s' (want a number >= %g)", flag, v, lo);
    return (float)x;
}

static void parse(int argc, char **argv, opts *o) {
    memset(o, 0, sizeof *o);
    o->likelihood = -1;
    o->dataset = "mnist"; o->out = "runs/cvae";
    o->epochs = 10; o->batch = 128; o->latent = 32; o->width = 32; o->judge_epochs = 3; o->judge_width = 32; o->teacher_width = 16;
    o->lr = 1e-3f; o->beta = 1.0f; o->judge_lr = 1e-3f; o->seed = 1; o->check_every = 10;
#ifdef UNETVAE_CUDA
    o->device = "cuda";
#else
    o->device = "cpu";
#endif
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); exit(0); }
        if (strncmp(a, "--", 2) != 0) die("unexpected argument '%s' (see --help)", a);
        if (i + 1 >= argc) {
            static const char *known[] = {"--dataset", "--data", "--epochs", "--batch", "--lr", "--latent", "--width", "--beta",
                                          "--label-loss", "--label-aug", "--judge-epochs", "--judge-width", "--teacher-width", "--judge-blocks", "--judge-lr", "--judge", "--teacher", "--limit", "--cond-planes", "--likelihood",
                                          "--seed", "--device", "--out", "--dump", "--save-every", "--resume", "--check-every",
                                          "--log-steps", "--stop-after", "--poison-step"};
            for (size_t k = 0; k < sizeof known / sizeof *known; k++)
                if (!strcmp(a, known[k])) die("%s needs a value (see --help)", a);
            die("unknown flag '%s' (see --help)", a);
        }
        v = argv[++i];
        if (!strcmp(a, "--dataset")) o->dataset = v;
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--epochs")) o->epochs = parse_int(a, v, 0);
        else if (!strcmp(a, "--batch")) o->batch = parse_int(a, v, 2);
        else if (!strcmp(a, "--lr")) o->lr = parse_float(a, v, 0);
        else if (!strcmp(a, "--latent")) o->latent = parse_int(a, v, 1);
        else if (!strcmp(a, "--width")) o->width = parse_int(a, v, 1);
        else if (!strcmp(a, "--beta")) o->beta = parse_float(a, v, 0);
        else if (!strcmp(a, "--label-loss")) o->label_loss = parse_float(a, v, 0);
        else if (!strcmp(a, "--label-aug")) o->label_aug = parse_int(a, v, 0) != 0;
        else if (!strcmp(a, "--judge-epochs")) o->judge_epochs = parse_int(a, v, 0);
        else if (!strcmp(a, "--judge-width")) o->judge_width = parse_int(a, v, 1);
        else if (!strcmp(a, "--teacher-width")) o->teacher_width = parse_int(a, v, 1);
        else if (!strcmp(a, "--judge-blocks")) o->judge_blocks = parse_int(a, v, 1);
        else if (!strcmp(a, "--judge-lr")) o->judge_lr = parse_float(a, v, 0);
        else if (!strcmp(a, "--judge")) o->judge = v;
        else if (!strcmp(a, "--teacher")) o->teacher = v;
        else if (!strcmp(a, "--cond-planes")) o->cond_planes = parse_int(a, v, 0);
        else if (!strcmp(a, "--likelihood")) {
            if (!strcmp(v, "bernoulli")) o->likelihood = UVAE_BERNOULLI;
            else if (!strcmp(v, "logistic")) o->likelihood = UVAE_DLOGISTIC;
            else die("--likelihood: bad value '%s' (want bernoulli or logistic)", v);
        }
        else if (!strcmp(a, "--limit")) o->limit = parse_int(a, v, 0);
        else if (!strcmp(a, "--seed")) o->seed = (unsigned long long)parse_int(a, v, 0);
        else if (!strcmp(a, "--device")) o->device = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--dump")) o->dump = v;
        else if (!strcmp(a, "--save-every")) o->save_every = parse_int(a, v, 0);
        else if (!strcmp(a, "--resume")) o->resume = v;
        else if (!strcmp(a, "--check-every")) o->check_every = parse_int(a, v, 1);
        else if (!strcmp(a, "--log-steps")) o->log_steps = v;
        else if (!strcmp(a, "--stop-after")) o->stop_after = parse_int(a, v, 0);
        else if (!strcmp(a, "--poison-step")) o->poison_step = parse_int(a, v, 0);
        else die("unknown flag '%s' (see --help)", a);
    }
    if (strcmp(o->dataset, "mnist") && strcmp(o->dataset, "fashion") && strcmp(o->dataset, "cifar10"))
        die("--dataset: bad value '%s' (want mnist, fashion or cifar10)", o->dataset);
    if (strcmp(o->device, "cpu") && strcmp(o->device, "cuda")) die("--device: bad value '%s' (want cpu or cuda)", o->device);
    if (o->judge_blocks > 4) die("--judge-blocks: at most 4");
    if (o->poison_step && strcmp(o->device, "cpu")) die("--poison-step is for tests on the CPU");
    if (o->likelihood < 0) o->likelihood = !strcmp(o->dataset, "cifar10") ? UVAE_DLOGISTIC : UVAE_BERNOULLI;
    if (!o->data)
        o->data = !strcmp(o->dataset, "mnist") ? "data/mnist" : !strcmp(o->dataset, "fashion") ? "/usr/share/datasets/fashion-mnist" : "data/cifar10";
}

static int file_exists(const char *p) {
    FILE *f = fopen(p, "rb");
    if (f) fclose(f);
    return f != NULL;
}
static const char *join(char *buf, size_t cap, const char *dir, const char *name) {
    if ((size_t)snprintf(buf, cap, "%s/%s", dir, name) >= cap) die("path too long: %s/%s", dir, name);
    return buf;
}

/* MNIST / Fashion-MNIST: IDX files, gzipped or not; CIFAR-10: the binary batches that exist. */
static void load_split(const opts *o, int train, uvae_dataset *d) {
    char a[4096], b[4096], base[4096];
    uvae_status st;
    if (strcmp(o->dataset, "cifar10")) {
        const char *im = train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte";
        const char *lb = train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte";
        snprintf(base, sizeof base, "%s.gz", im);
        join(a, sizeof a, o->data, base);
        if (!file_exists(a)) join(a, sizeof a, o->data, im);
        snprintf(base, sizeof base, "%s.gz", lb);
        join(b, sizeof b, o->data, base);
        if (!file_exists(b)) join(b, sizeof b, o->data, lb);
        if (!file_exists(a) || !file_exists(b))
            die("missing data: %s/%s[.gz] or %s[.gz] (see --data)", o->data, im, lb);
        st = (uvae_status)uvae_load_idx(a, b, d);
    } else {
        static char paths[5][4096];
        const char *pp[5];
        int n = 0;
        for (int k = 1; k <= (train ? 5 : 1); k++) {
            char name[64];
            if (train) snprintf(name, sizeof name, "cifar-10-batches-bin/data_batch_%d.bin", k);
            else snprintf(name, sizeof name, "cifar-10-batches-bin/test_batch.bin");
            snprintf(base, sizeof base, "%s.gz", name);
            join(paths[n], sizeof paths[n], o->data, base);
            if (!file_exists(paths[n])) join(paths[n], sizeof paths[n], o->data, name);
            if (file_exists(paths[n])) { pp[n] = paths[n]; n++; }
        }
        if (n == 0) die("missing data: no %s/cifar-10-batches-bin/%s[.gz] (see --data)", o->data, train ? "data_batch_*.bin" : "test_batch.bin");
        st = (uvae_status)uvae_load_cifar10(pp, n, d);
    }
    if (st != UVAE_OK) die_lib("loading data");
    if (d->height != d->width || d->height % 4 || d->n < 2) die("data: want square images with a side divisible by 4 and at least 2 of them");
}

/* Host staging for a batch: x [B, C*S*S] = pixel/255, y [B]. */
static void fill_batch(const uvae_dataset *d, const int *idx, int B, float *x, float *y) {
    size_t px = (size_t)d->channels * d->height * d->width;
    for (int i = 0; i < B; i++) {
        const unsigned char *src = d->images + (size_t)idx[i] * px;
        for (size_t k = 0; k < px; k++) x[(size_t)i * px + k] = src[k] * (1.0f / 255.0f);
        y[i] = (float)d->labels[idx[i]];
    }
}
/* Classifier training augmentation (colour images only, i.e. CIFAR-10): each image of the batch
   x [B,C,S,S] is shifted by up to 4 pixels each way (zeros enter: a random crop of the image padded
   by 4) and mirrored with probability 1/2. */
static void augment_batch(float *x, int B, int C, int S, uvae_rng *rng, float *tmp) {
    size_t px = (size_t)C * S * S;
    for (int i = 0; i < B; i++) {
        float *im = x + (size_t)i * px;
        int dy = (int)(uvae_rng_u32(rng) % 9) - 4, dx = (int)(uvae_rng_u32(rng) % 9) - 4, flip = (int)(uvae_rng_u32(rng) & 1u);
        memcpy(tmp, im, px * sizeof(float));
        for (int c = 0; c < C; c++)
            for (int r = 0; r < S; r++)
                for (int q = 0; q < S; q++) {
                    int sr = r + dy, sq = (flip ? S - 1 - q : q) + dx;
                    im[((size_t)c * S + r) * S + q] = sr >= 0 && sr < S && sq >= 0 && sq < S ? tmp[((size_t)c * S + sr) * S + sq] : 0.0f;
                }
    }
}
/* An arena tensor on the ctx device holding `host`. */
static uvae_tensor *staged(uvae_ctx *ctx, int ndim, const int *shape, const float *host) {
    uvae_tensor *t = uvae_ctx_tensor(ctx, ndim, shape);
    if (!t || uvae_tensor_copy_in(t, host) != UVAE_OK) die_lib("staging a batch");
    return t;
}
/* --label-aug: the teacher sees the generated batch g [B,C,S,S] moved by a random shift of up to 2
   pixels each way (zeros enter) and, for colour images, mirrored with probability 1/2 -- one draw
   per batch, written with differentiable ops so the label loss's gradient flows back through it:
   the shift is a conv2d with a one-hot 5x5 kernel per channel, the mirror a product with the
   reversal matrix over the rows. Outputs that satisfy the teacher under every view carry the
   class, not one network's blind spots (which another classifier, the judge, would not share). */
static uvae_tensor *view_shift(uvae_ctx *ctx, uvae_tensor *g, uvae_rng *rng) {
    int B, C, S, dy = (int)(uvae_rng_u32(rng) % 5), dx = (int)(uvae_rng_u32(rng) % 5), flip = (int)(uvae_rng_u32(rng) & 1u);
    float *hw;
    uvae_tensor *w;
    if (!g) return NULL;
    B = g->shape[0]; C = g->shape[1]; S = g->shape[2];
    hw = (float *)xmalloc((size_t)C * C * 25 * sizeof(float));
    memset(hw, 0, (size_t)C * C * 25 * sizeof(float));
    for (int c = 0; c < C; c++) hw[((size_t)c * C + c) * 25 + dy * 5 + dx] = 1;   /* out[y,x] = in[y+dy-2, x+dx-2] */
    w = staged(ctx, 4, (int[]){C, C, 5, 5}, hw);
    free(hw);
    g = uvae_conv2d(ctx, g, w, NULL, 1, 2);
    if (C == 3 && flip) {
        float *hr = (float *)xmalloc((size_t)S * S * sizeof(float));
        uvae_tensor *r;
        memset(hr, 0, (size_t)S * S * sizeof(float));
        for (int i = 0; i < S; i++) hr[(size_t)i * S + (S - 1 - i)] = 1;
        r = staged(ctx, 2, (int[]){S, S}, hr);
        free(hr);
        g = uvae_reshape(ctx, uvae_linear(ctx, uvae_reshape(ctx, g, 2, (int[]){B * C * S, S}), r, NULL), 4, (int[]){B, C, S, S});
    }
    return g;
}
static float read1(const uvae_tensor *t) {
    float v = 0;
    if (!t || uvae_tensor_copy_out(t, &v) != UVAE_OK) die_lib("reading a value");
    return v;
}
static int argmax(const float *v, int n) {
    int k = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[k]) k = i;
    return k;
}

/* Judge accuracy on a dataset (eval mode). */
static double judge_accuracy(uvae_ctx *ctx, uvae_classifier *J, const uvae_dataset *d, int B, float *hx, float *hy, int *idx) {
    int C = d->channels, S = d->height, right = 0;
    float logits[10 * 1024];
    for (int s = 0; s < d->n; s += B) {
        int nb = d->n - s < B ? d->n - s : B;
        uvae_tensor *x, *lg;
        for (int i = 0; i < nb; i++) idx[i] = s + i;
        fill_batch(d, idx, nb, hx, hy);
        uvae_ctx_reset(ctx, 0);
        x = staged(ctx, 4, (int[]){nb, C, S, S}, hx);
        lg = uvae_classifier_forward(ctx, J, x);
        if (!lg || uvae_tensor_copy_out(lg, logits) != UVAE_OK) die_lib("judge forward");
        for (int i = 0; i < nb; i++) right += argmax(logits + 10 * i, 10) == (int)hy[i];
    }
    return (double)right / d->n;
}

/* Test loss of the CVAE: NLL (its likelihood) + KL with the correct labels, one z sample, nats/image. */
static double cvae_test_loss(uvae_ctx *ctx, uvae_cvae *M, const uvae_dataset *d, int B, float *hx, float *hy, int *idx) {
    int C = d->channels, S = d->height;
    double sum = 0;
    for (int s = 0; s < d->n; s += B) {
        int nb = d->n - s < B ? d->n - s : B;
        uvae_tensor *x, *y;
        uvae_cvae_out out;
        for (int i = 0; i < nb; i++) idx[i] = s + i;
        fill_batch(d, idx, nb, hx, hy);
        uvae_ctx_reset(ctx, 0);
        x = staged(ctx, 4, (int[]){nb, C, S, S}, hx);
        y = staged(ctx, 1, (int[]){nb}, hy);
        out = uvae_cvae_forward(ctx, M, x, y, NULL);
        sum += (double)read1(uvae_cvae_loss(ctx, out, x)) * nb;
    }
    return sum / d->n;
}

/* Decode images x with labels y at z = mu (eval mode); writes sigmoid outputs to host `img`. */
static void decode_mu(uvae_ctx *ctx, uvae_cvae *M, int nb, int C, int S, const float *hx, const float *hy, float *img) {
    uvae_tensor *x, *y, *eps, *p;
    uvae_cvae_out out;
    uvae_ctx_reset(ctx, 0);
    x = staged(ctx, 4, (int[]){nb, C, S, S}, hx);
    y = staged(ctx, 1, (int[]){nb}, hy);
    eps = uvae_ctx_tensor(ctx, 2, (int[]){nb, M->cfg.latent});   /* zero-filled: z = mu */
    if (!eps) die_lib("decode");
    out = uvae_cvae_forward(ctx, M, x, y, eps);
    p = uvae_sigmoid(ctx, out.logits);
    if (!p || uvae_tensor_copy_out(p, img) != UVAE_OK) die_lib("decode");
}

/* Every test image is given a random wrong label (from `seed`: the same labels on every call), decoded
   at z = mu, and classified by each of n_judges classifiers: follow[j] counts outputs classified as
   the given label, stay[j] as the original one. The outputs (uint8) and labels go to `keep`. */
typedef struct mismatch_out { unsigned char *img, *given, *truth; } mismatch_out;
static void mismatch_pass(uvae_ctx *ctx, uvae_cvae *M, uvae_classifier *const *judges, int n_judges, const uvae_dataset *te, int B,
                          uint64_t seed, float *hx, float *hy, float *hy2, float *img, int *idx, int *follow, int *stay, mismatch_out *keep) {
    int C = te->channels, S = te->height;
    size_t px = (size_t)C * S * S;
    float lg[10 * 1024];
    uvae_rng wr;
    uvae_rng_seed(&wr, seed);
    for (int j = 0; j < n_judges; j++) follow[j] = stay[j] = 0;
    for (int s = 0; s < te->n; s += B) {
        int nb = te->n - s < B ? te->n - s : B;
        for (int i = 0; i < nb; i++) idx[i] = s + i;
        fill_batch(te, idx, nb, hx, hy);
        for (int i = 0; i < nb; i++) hy2[i] = (float)(((int)hy[i] + 1 + (int)(uvae_rng_u32(&wr) % 9)) % 10);
        decode_mu(ctx, M, nb, C, S, hx, hy2, img);
        for (int j = 0; j < n_judges; j++) {
            uvae_tensor *g, *l;
            uvae_ctx_reset(ctx, 0);
            g = staged(ctx, 4, (int[]){nb, C, S, S}, img);
            l = uvae_classifier_forward(ctx, judges[j], g);
            if (!l || uvae_tensor_copy_out(l, lg) != UVAE_OK) die_lib("judging outputs");
            for (int i = 0; i < nb; i++) {
                int k = argmax(lg + 10 * i, 10);
                follow[j] += k == (int)hy2[i];
                stay[j] += k == (int)hy[i];
            }
        }
        if (keep)
            for (int i = 0; i < nb; i++) {
                for (size_t k = 0; k < px; k++) {
                    float v = img[(size_t)i * px + k] * 255.0f + 0.5f;
                    keep->img[(size_t)(s + i) * px + k] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
                keep->given[s + i] = (unsigned char)hy2[i];
                keep->truth[s + i] = (unsigned char)hy[i];
            }
    }
}

static int write_idx(const char *path, const unsigned char *data, int n, int ndim_rest, const int *dims) {
    FILE *f = fopen(path, "wb");
    unsigned char h[4];
    size_t cnt = (size_t)n;
    int ok;
    if (!f) return 0;
    h[0] = 0; h[1] = 0; h[2] = 0x08; h[3] = (unsigned char)(1 + ndim_rest);
    ok = fwrite(h, 1, 4, f) == 4;
    for (int k = -1; k < ndim_rest; k++) {
        unsigned v = (unsigned)(k < 0 ? n : dims[k]);
        unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
        ok = ok && fwrite(b, 1, 4, f) == 4;
        if (k >= 0) cnt *= (size_t)dims[k];
    }
    ok = ok && fwrite(data, 1, cnt, f) == cnt;
    return fclose(f) == 0 && ok;
}

/* Train a classifier (Adam, cosine schedule, --judge-epochs over the training set; colour images
   augmented by augment_batch) and save it to OUT/<name>.safetensors, or load it from `path`. */
static void get_classifier(const opts *o, const char *name, const char *path, int width, int blocks, uint64_t seed, uvae_ctx *ctx, int dev,
                           const uvae_dataset *tr, uvae_rng *rng, uvae_classifier *J, float *hx, float *hy, int *order,
                           int steps, int B) {
    uvae_classifier_config jc = {tr->channels, tr->height, 10, width, blocks};
    int C = tr->channels, S = tr->height, ntr = tr->n;
    char file[4096], base[64];
    float aug_tmp[3 * 64 * 64];
    if ((size_t)C * S * S > sizeof aug_tmp / sizeof *aug_tmp) die("%s: images larger than 3x64x64 are not supported", name);
    if (path) {   /* the width comes from the checkpoint's metadata */
        uvae_st_file f;
        const char *w;
        if (uvae_st_read(path, &f) != UVAE_OK) die_lib(name);
        w = uvae_st_meta(&f, "width");
        jc.width = w ? atoi(w) : 0;
        w = uvae_st_meta(&f, "blocks");
        jc.blocks = w ? atoi(w) : 2;
        uvae_st_free(&f);
        if (jc.width < 1 || jc.width > 4096) die("%s: %s has no valid 'width' metadata (not a classifier saved by this program?)", name, path);
    }
    if (uvae_classifier_init(J, &jc, seed) != UVAE_OK) die_lib(name);
    if (uvae_params_to(&J->params, dev) != UVAE_OK) die_lib(name);
    if (path) {
        if (uvae_load(path, &J->params, NULL) != UVAE_OK) die_lib(name);
        printf("%s: loaded %s\n", name, path);
    } else {
        uvae_optim jo;
        double t0 = now_s();
        const char *meta[8];
        char w[32], sz[32], bl[32];
        if (uvae_optim_init(&jo, &J->params, UVAE_ADAM, o->judge_lr) != UVAE_OK) die_lib(name);
        for (int e = 0; e < o->judge_epochs; e++) {
            double sum = 0, te0 = now_s();
            for (int i = 0; i < ntr; i++) order[i] = i;
            uvae_shuffle(order, ntr, rng);
            for (int s = 0; s < steps; s++) {
                uvae_tensor *x, *y, *loss;
                fill_batch(tr, order + (size_t)s * B, B, hx, hy);
                if (C == 3) augment_batch(hx, B, C, S, rng, aug_tmp);
                uvae_ctx_reset(ctx, 1);
                uvae_params_zero_grad(&J->params);
                x = staged(ctx, 4, (int[]){B, C, S, S}, hx);
                y = staged(ctx, 1, (int[]){B}, hy);
                loss = uvae_cross_entropy(ctx, uvae_classifier_forward(ctx, J, x), y);
                if (uvae_backward(ctx, loss) != UVAE_OK) die_lib(name);
                if (uvae_optim_step(&jo, &J->params, uvae_lr_cosine((int64_t)e * steps + s, (int64_t)o->judge_epochs * steps, o->judge_lr, 0)) != UVAE_OK)
                    die_lib(name);
                {
                    float v = read1(loss);
                    if (!isfinite(v)) die("%s: step %d: the loss is %g (try a lower --judge-lr)", name, e * steps + s + 1, (double)v);
                    sum += v;
                }
                if (s % 10 == 0 || s == steps - 1) {
                    double el = now_s() - te0;
                    progress(name, e + 1, o->judge_epochs, s + 1, steps, sum / (s + 1), (s + 1) * B / el,
                             el / (s + 1) * ((double)(o->judge_epochs - e) * steps - s - 1));
                }
            }
            progress_end();
        }
        uvae_optim_free(&jo);
        snprintf(w, sizeof w, "%d", width);
        snprintf(bl, sizeof bl, "%d", blocks);
        snprintf(sz, sizeof sz, "%dx%dx%d", C, S, S);
        snprintf(base, sizeof base, "%s.safetensors", name);
        meta[0] = "model"; meta[1] = "uvae_classifier"; meta[2] = "width"; meta[3] = w; meta[4] = "input"; meta[5] = sz;
        meta[6] = "blocks"; meta[7] = bl;
        if (uvae_save(join(file, sizeof file, o->out, base), &J->params, NULL, meta, 4) != UVAE_OK) die_lib(name);
        printf("%s: trained %d epochs in %.1f s, saved %s\n", name, o->judge_epochs, now_s() - t0, file);
    }
}

/* ---- CVAE checkpoints: the weights and what --resume needs to continue the run exactly ---------- */
typedef struct train_state {
    uvae_optim *opt;        /* moments and step count (which also places the schedule) */
    uvae_rng rng;           /* the run's generator (shuffles, wrong labels, views) now */
    uvae_rng rng_epoch;     /* the same at the start of the current epoch, before its shuffle */
    uvae_rng ctx_rng;       /* the context's generator (eps) */
    double epoch_sum;       /* the loss summed over the current epoch so far */
    char recipe[256];       /* the flags that shape the run; a resumed run must match them */
} train_state;

static void save_cvae(const char *path, const uvae_cvae *M, const opts *o, int epoch, const train_state *ts) {
    const char *meta[38];
    char v[7][32], rs[3][UVAE_RNG_STR];
    const uvae_cvae_config *c = &M->cfg;
    snprintf(v[0], 32, "%d", c->latent); snprintf(v[1], 32, "%d", c->width); snprintf(v[2], 32, "%dx%dx%d", c->in_ch, c->size, c->size);
    snprintf(v[3], 32, "%d", c->embed); snprintf(v[4], 32, "%d", c->cond_planes); snprintf(v[5], 32, "%d", epoch);
    snprintf(v[6], 32, "%a", ts->epoch_sum);   /* hexadecimal: exact */
    uvae_rng_to_str(&ts->rng, rs[0]); uvae_rng_to_str(&ts->rng_epoch, rs[1]); uvae_rng_to_str(&ts->ctx_rng, rs[2]);
    meta[0] = "model"; meta[1] = "uvae_cvae"; meta[2] = "latent"; meta[3] = v[0]; meta[4] = "width"; meta[5] = v[1];
    meta[6] = "input"; meta[7] = v[2]; meta[8] = "embed"; meta[9] = v[3]; meta[10] = "dataset"; meta[11] = o->dataset;
    meta[12] = "cond_planes"; meta[13] = v[4]; meta[14] = "likelihood"; meta[15] = c->likelihood == UVAE_DLOGISTIC ? "logistic" : "bernoulli";
    meta[16] = "epoch"; meta[17] = v[5]; meta[18] = "rng"; meta[19] = rs[0]; meta[20] = "rng_epoch"; meta[21] = rs[1];
    meta[22] = "ctx_rng"; meta[23] = rs[2]; meta[24] = "epoch_loss_sum"; meta[25] = v[6]; meta[26] = "recipe"; meta[27] = ts->recipe;
    if (uvae_save(path, &M->params, ts->opt, meta, 14) != UVAE_OK) die_lib("checkpoint");
}
static void resume_cvae(const char *path, uvae_cvae *M, train_state *ts) {
    uvae_st_file f;
    const char *r;
    char *end;
    if (!file_exists(path)) die("--resume: cannot open '%s'", path);
    if (uvae_st_read(path, &f) != UVAE_OK) die_lib("--resume");
    if (!(r = uvae_st_meta(&f, "recipe"))) die("--resume %s: no training state in it (metadata 'recipe' missing)", path);
    if (strcmp(r, ts->recipe) != 0) die("--resume %s: it was trained with '%s' but this run has '%s': give the same flags", path, r, ts->recipe);
    if (uvae_rng_from_str(&ts->rng, uvae_st_meta(&f, "rng")) != UVAE_OK ||
        uvae_rng_from_str(&ts->rng_epoch, uvae_st_meta(&f, "rng_epoch")) != UVAE_OK ||
        uvae_rng_from_str(&ts->ctx_rng, uvae_st_meta(&f, "ctx_rng")) != UVAE_OK)
        die("--resume %s: %s", path, uvae_last_error());
    r = uvae_st_meta(&f, "epoch_loss_sum");
    errno = 0;
    ts->epoch_sum = r ? strtod(r, &end) : NAN;
    if (!r || errno || end == r || *end || !isfinite(ts->epoch_sum)) die("--resume %s: metadata 'epoch_loss_sum' missing or bad", path);
    uvae_st_free(&f);
    if (uvae_load(path, &M->params, ts->opt) != UVAE_OK) die_lib("--resume");
}
/* OUT/metrics.csv, one row per epoch (--resume reads it back with history_from_csv, common.h) */
static const char CSV_HEADER[] = "epoch,train_loss,test_loss_nats,label_follow,still_original,seconds\n";
int main(int argc, char **argv) {
    opts o;
    uvae_dataset tr, te;
    int dev = UVAE_CPU, C, S, B, ntr, steps;
    size_t px;
    float *hx, *hy, *hy2, *img;
    int *idx, *order;
    uvae_ctx *ctx;
    uvae_rng rng;
    uvae_classifier J, T;
    int have_teacher = 0;
    uvae_cvae M;
    uvae_optim opt;
    char path[4096];
    double judge_acc, t_start, test_loss = 0;
    FILE *csv, *steplog = NULL;
    float *tr_curve, *te_curve, *lf_curve;
    train_state ts;
    int64_t done = 0;   /* CVAE steps done before this run (--resume) */
    int run_steps = 0;
    char judge_file[4096], teacher_file[4096], ckpt[4096];

    setvbuf(stdout, NULL, _IOLBF, 0);   /* progress and results show as they happen, also in a log file */
    parse(argc, argv, &o);
    if (!strcmp(o.device, "cuda")) {
#ifdef UNETVAE_CUDA
        if (!uvae_cuda_available()) die_lib("--device cuda");
        dev = UVAE_CUDA;
#else
        die("--device cuda needs the GPU build (nvcc -DUNETVAE_CUDA examples/cvae.c unetvae_cuda.cu)");
#endif
    }
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    load_split(&o, 1, &tr);
    load_split(&o, 0, &te);
    if (tr.channels != te.channels || tr.height != te.height || tr.width != te.width) die("data: train and test image shapes differ");
    if (o.limit > 0 && o.limit < tr.n) tr.n = o.limit;   /* the first N images */
    C = tr.channels; S = tr.height; px = (size_t)C * S * S;
    if (o.judge_blocks == 0) o.judge_blocks = S % 8 == 0 ? 3 : 2;
    if (S % (1 << o.judge_blocks)) die("--judge-blocks %d: the image side %d is not divisible by %d", o.judge_blocks, S, 1 << o.judge_blocks);
    B = o.batch;
    ntr = tr.n;
    if (B > ntr) { fprintf(stderr, "cvae: note: --batch %d > %d training images; using %d\n", B, ntr, ntr); B = ntr; }
    if (B > 1024) die("--batch: at most 1024");
    steps = ntr / B;
    mkdir_p(o.out, "--out");
    hx = (float *)xmalloc((size_t)B * px * sizeof(float));
    img = (float *)xmalloc((size_t)B * px * sizeof(float));
    hy = (float *)xmalloc((size_t)B * sizeof(float));
    hy2 = (float *)xmalloc((size_t)B * sizeof(float));
    idx = (int *)xmalloc((size_t)B * sizeof(int));
    order = (int *)xmalloc((size_t)ntr * sizeof(int));
    tr_curve = (float *)xmalloc((size_t)(o.epochs + 1) * sizeof(float));
    te_curve = (float *)xmalloc((size_t)(o.epochs + 1) * sizeof(float));
    lf_curve = (float *)xmalloc((size_t)(o.epochs + 1) * sizeof(float));
    if (!(ctx = uvae_ctx_new_on(dev, 0))) die_lib("context");
    uvae_rng_seed(&rng, o.seed);
    uvae_rng_seed(uvae_ctx_rng(ctx), o.seed ^ 0x5eedULL);
    printf("cvae: %s, %d train / %d test images %dx%dx%d, device %s, %d threads\n", o.dataset, ntr, te.n, C, S, S,
           dev ? "cuda" : "cpu",
#ifdef _OPENMP
           omp_get_max_threads()
#else
           1
#endif
    );

    join(ckpt, sizeof ckpt, o.out, "checkpoint.safetensors");
    if (o.resume) {   /* the classifiers of the run being resumed, unless given */
        if (!o.judge) o.judge = join(judge_file, sizeof judge_file, o.out, "judge.safetensors");
        if (!o.teacher && o.label_loss > 0) o.teacher = join(teacher_file, sizeof teacher_file, o.out, "teacher.safetensors");
    }

    /* ---- 1. the judge (measures label-follow) and the teacher (the label loss's classifier) ---- */
    get_classifier(&o, "judge", o.judge, o.judge_width, o.judge_blocks, o.seed + 101, ctx, dev, &tr, &rng, &J, hx, hy, order, steps, B);
    judge_acc = judge_accuracy(ctx, &J, &te, B, hx, hy, idx);
    printf("judge: test accuracy %.2f %%\n", 100 * judge_acc);
    J.frozen = 1;   /* from now on: evaluation mode, never stepped */
    if (o.label_loss > 0 || o.teacher) {
        get_classifier(&o, "teacher", o.teacher, o.teacher_width, o.judge_blocks, o.seed + 7919, ctx, dev, &tr, &rng, &T, hx, hy, order, steps, B);
        printf("teacher: test accuracy %.2f %%\n", 100 * judge_accuracy(ctx, &T, &te, B, hx, hy, idx));
        T.frozen = 1;
        have_teacher = 1;
    }

    /* ---- 2. the CVAE ---- */
    /* its own random streams (shuffles, wrong labels; eps, dropout): the same whether the classifiers
       were trained above or loaded */
    uvae_rng_seed(&rng, o.seed);
    uvae_rng_seed(uvae_ctx_rng(ctx), o.seed ^ 0x5eedULL);
    {
        uvae_cvae_config cc = {C, S, 10, o.latent, o.width, 16, o.cond_planes, o.likelihood};
        if (uvae_cvae_init(&M, &cc, o.seed + 202) != UVAE_OK) die_lib("cvae");
        if (uvae_params_to(&M.params, dev) != UVAE_OK || uvae_optim_init(&opt, &M.params, UVAE_ADAM, o.lr) != UVAE_OK) die_lib("cvae");
    }
    printf("cvae: %zu parameters, latent %d, width %d, beta %g, label loss %g\n", uvae_params_count(&M.params), o.latent, o.width,
           (double)o.beta, (double)o.label_loss);
    memset(&ts, 0, sizeof ts);
    ts.opt = &opt;
    snprintf(ts.recipe, sizeof ts.recipe, "dataset %s train %d batch %d epochs %d lr %.9g latent %d width %d cond-planes %d "
             "likelihood %d beta %.9g label-loss %.9g label-aug %d seed %llu", o.dataset, ntr, B, o.epochs, (double)o.lr, o.latent,
             o.width, o.cond_planes, o.likelihood, (double)o.beta, (double)o.label_loss, o.label_aug, o.seed);
    join(path, sizeof path, o.out, "metrics.csv");
    if (o.resume) {
        resume_cvae(o.resume, &M, &ts);
        done = opt.step;
        if (done > (int64_t)o.epochs * steps) die("--resume %s: %lld steps done, more than the run's %lld", o.resume, (long long)done, (long long)o.epochs * steps);
        rng = ts.rng;
        *uvae_ctx_rng(ctx) = ts.ctx_rng;
        history_from_csv(path, CSV_HEADER, (int)(done / steps), tr_curve, te_curve, lf_curve);
        for (int i = 0; i < (int)(done / steps); i++) lf_curve[i] *= 100;   /* the csv has fractions, the curve percent */
        printf("resumed from %s at step %lld (epoch %d, batch %d of %d)\n", o.resume, (long long)done, (int)(done / steps) + 1,
               (int)(done % steps), steps);
        if (!(csv = fopen(path, "a"))) die("cannot append to %s: %s", path, strerror(errno));
    } else {
        if (!(csv = fopen(path, "w"))) die("cannot write %s: %s", path, strerror(errno));
        fputs(CSV_HEADER, csv);
    }
    if (o.log_steps && !(steplog = fopen(o.log_steps, "a"))) die("--log-steps: cannot append to '%s': %s", o.log_steps, strerror(errno));
    t_start = now_s();
    for (int e = (int)(done / steps); e < o.epochs; e++) {
        int s0 = e == done / steps ? (int)(done % steps) : 0;   /* a resumed run starts mid-epoch */
        double sum = s0 > 0 ? ts.epoch_sum : 0, te0 = now_s();
        if (s0 == 0) ts.rng_epoch = rng;
        {   /* this epoch's order, from the generator as it was at the epoch's start */
            uvae_rng r = ts.rng_epoch;
            for (int i = 0; i < ntr; i++) order[i] = i;
            uvae_shuffle(order, ntr, &r);
            if (s0 == 0) rng = r;
        }
        for (int s = s0; s < steps; s++) {
            int64_t gstep = (int64_t)e * steps + s;   /* this is step gstep + 1 */
            int save_now = (o.save_every > 0 && (gstep + 1) % o.save_every == 0) || s + 1 == steps;
            uvae_tensor *x, *y, *loss;
            uvae_cvae_out out;
            fill_batch(&tr, order + (size_t)s * B, B, hx, hy);
            uvae_ctx_reset(ctx, 1);
            uvae_params_zero_grad(&M.params);
            x = staged(ctx, 4, (int[]){B, C, S, S}, hx);
            y = staged(ctx, 1, (int[]){B}, hy);
            out = uvae_cvae_forward(ctx, &M, x, y, NULL);
            loss = uvae_add(ctx, uvae_cvae_nll(ctx, out, x), uvae_scale(ctx, uvae_kl_normal(ctx, out.mu, out.logvar), o.beta));
            if (o.label_loss > 0) {   /* the same images with random wrong labels, judged by the frozen teacher */
                uvae_tensor *yw, *gen, *ce;
                uvae_cvae_out ow;
                for (int i = 0; i < B; i++) hy2[i] = (float)(((int)hy[i] + 1 + (int)(uvae_rng_u32(&rng) % 9)) % 10);
                yw = staged(ctx, 1, (int[]){B}, hy2);
                ow = uvae_cvae_forward(ctx, &M, x, yw, NULL);
                gen = uvae_sigmoid(ctx, ow.logits);
                if (o.label_aug) gen = view_shift(ctx, gen, &rng);
                ce = uvae_cross_entropy(ctx, uvae_classifier_forward(ctx, &T, gen), yw);
                loss = uvae_add(ctx, loss, uvae_scale(ctx, ce, o.label_loss));
            }
            if (uvae_backward(ctx, loss) != UVAE_OK) die_lib("cvae step");
            if (have_teacher) uvae_params_zero_grad(&T.params);   /* the teacher is frozen: its gradients are dropped */
            if (o.poison_step == gstep + 1) M.params.grad[0] = NAN;
            {
                float v = read1(loss);
                if (!isfinite(v)) not_finite(gstep + 1, "the loss", v, ckpt);
                if ((gstep + 1) % o.check_every == 0 || save_now) {
                    float gn = uvae_grad_norm(&M.params);
                    if (!isfinite(gn)) not_finite(gstep + 1, "the gradients' global norm", gn, ckpt);
                }
                if (uvae_optim_step(&opt, &M.params, uvae_lr_cosine(gstep, (int64_t)o.epochs * steps, o.lr, 0.02f * o.lr)) != UVAE_OK)
                    die_lib("cvae step");
                sum += v;
                if (steplog && (fprintf(steplog, "%lld,%.9g\n", (long long)gstep + 1, v) < 0 || fflush(steplog) != 0))
                    die("--log-steps: cannot write '%s'", o.log_steps);
            }
            if (save_now && s + 1 < steps) {   /* the epoch's end saves after its evaluation, below */
                ts.rng = rng;
                ts.ctx_rng = *uvae_ctx_rng(ctx);
                ts.epoch_sum = sum;
                save_cvae(ckpt, &M, &o, e, &ts);
            }
            if (s % 10 == 0 || s == steps - 1) {
                double el = now_s() - te0;
                progress("cvae", e + 1, o.epochs, s + 1, steps, sum / (s + 1), (s + 1) * B / el,
                         el / (s + 1) * ((double)(o.epochs - e) * steps - s - 1));
            }
            if (o.stop_after > 0 && ++run_steps == o.stop_after) {
                progress_end();
                printf("stopped after %d steps of this run (--stop-after), at step %lld\n", run_steps, (long long)gstep + 1);
                exit(0);
            }
        }
        progress_end();
        test_loss = cvae_test_loss(ctx, &M, &te, B, hx, hy, idx);
        {
            uvae_classifier *judges[2];
            int fol[2], sty[2];
            judges[0] = &J; judges[1] = &T;
            mismatch_pass(ctx, &M, judges, have_teacher ? 2 : 1, &te, B, o.seed + 303, hx, hy, hy2, img, idx, fol, sty, NULL);
            tr_curve[e] = (float)(sum / steps);
            te_curve[e] = (float)test_loss;
            lf_curve[e] = (float)(100.0 * fol[0] / te.n);
            fprintf(csv, "%d,%.4f,%.4f,%.4f,%.4f,%.1f\n", e + 1, sum / steps, test_loss, (double)fol[0] / te.n, (double)sty[0] / te.n, now_s() - t_start);
            fflush(csv);
            printf("epoch %d: train loss %.2f, test loss %.2f nats/image, label-follow %.2f %% (original %.2f %%)", e + 1, sum / steps,
                   test_loss, 100.0 * fol[0] / te.n, 100.0 * sty[0] / te.n);
            if (have_teacher) printf(", by the teacher %.2f %%", 100.0 * fol[1] / te.n);
            printf(", %.1f s\n", now_s() - te0);
            fflush(stdout);
        }
        {
            const char *names[3] = {"train loss", "test loss (nats)", "label-follow (%)"};
            const float *series[3] = {tr_curve, te_curve, lf_curve};
            if (uvae_plot_png(join(path, sizeof path, o.out, "curves.png"), 640, 400, "CVAE per epoch", names, series, 3, e + 1) != UVAE_OK)
                die_lib("curves.png");
        }
        ts.rng = rng;
        ts.ctx_rng = *uvae_ctx_rng(ctx);
        ts.epoch_sum = 0;
        save_cvae(ckpt, &M, &o, e + 1, &ts);
    }
    if (steplog) fclose(steplog);
    if (fclose(csv) != 0) die("cannot write metrics.csv");
    if (o.epochs == 0 || done == (int64_t)o.epochs * steps) test_loss = cvae_test_loss(ctx, &M, &te, B, hx, hy, idx);
    if (o.epochs == 0) save_cvae(ckpt, &M, &o, 0, &ts);

    /* ---- 3. label-follow over the whole test set, pictures, dump ---- */
    {
        int is_cifar = !strcmp(o.dataset, "cifar10"), is_fashion = !strcmp(o.dataset, "fashion");
        int follow[2] = {0, 0}, stay[2] = {0, 0}, scale = is_cifar || is_fashion ? 4 : 2;   /* room for class names */
        const char *const *names = is_cifar ? CIFAR_SHORT : is_fashion ? FASHION_SHORT : NULL;   /* NULL: digits */
        const char *const *full = is_cifar ? CIFAR_NAMES : names;
        uvae_classifier *judges[2];
        mismatch_out mo;
        float *grid = (float *)xmalloc((size_t)100 * px * sizeof(float));
        char caps[100][48];
        const char *capp[100];
        uvae_rng wr;
        uvae_rng_seed(&wr, o.seed + 304);
        judges[0] = &J; judges[1] = &T;
        mo.img = (unsigned char *)xmalloc((size_t)te.n * px);
        mo.given = (unsigned char *)xmalloc((size_t)te.n);
        mo.truth = (unsigned char *)xmalloc((size_t)te.n);
        mismatch_pass(ctx, &M, judges, have_teacher ? 2 : 1, &te, B, o.seed + 303, hx, hy, hy2, img, idx, follow, stay, &mo);
        if (te.n >= 25) {   /* the mismatched grid: the 25 inputs (5 x 5, left) and their 25 outputs (right) */
            for (int i = 0; i < 25; i++) {
                int t = mo.truth[i], gv = mo.given[i], cin = (i / 5) * 10 + i % 5, cout = cin + 5;
                for (size_t k = 0; k < px; k++) {
                    grid[(size_t)cin * px + k] = te.images[(size_t)i * px + k] * (1.0f / 255.0f);
                    grid[(size_t)cout * px + k] = mo.img[(size_t)i * px + k] * (1.0f / 255.0f);
                }
                if (names) {
                    snprintf(caps[cin], 48, "%s", names[t]);
                    snprintf(caps[cout], 48, "%s->%s", names[t], names[gv]);
                } else {
                    snprintf(caps[cin], 48, "in %d", t);
                    snprintf(caps[cout], 48, "%d->%d", t, gv);
                }
                capp[cin] = caps[cin]; capp[cout] = caps[cout];
            }
            if (uvae_grid_png(join(path, sizeof path, o.out, "mismatched.png"), grid, 50, C, S, S, 0, 1, 10, scale, capp,
                              "25 test inputs | the outputs given a wrong label (true->given), z = mu") != UVAE_OK)
                die_lib("mismatched.png");
        }
        if (o.dump) {
            int dims3[3] = {C, S, S};
            mkdir_p(o.dump, "--dump");
            if (!write_idx(join(path, sizeof path, o.dump, C == 1 ? "images-idx3-ubyte" : "images-idx4-ubyte"), mo.img, te.n,
                           C == 1 ? 2 : 3, C == 1 ? dims3 + 1 : dims3) ||
                !write_idx(join(path, sizeof path, o.dump, "given-labels-idx1-ubyte"), mo.given, te.n, 0, NULL) ||
                !write_idx(join(path, sizeof path, o.dump, "true-labels-idx1-ubyte"), mo.truth, te.n, 0, NULL))
                die("--dump: cannot write %s: %s", path, strerror(errno));
            printf("dump: %d mismatched outputs in %s (uint8 IDX images, given and true labels)\n", te.n, o.dump);
        }
        free(mo.img); free(mo.given); free(mo.truth);
        /* recon.png: 25 (input, reconstruction) pairs with the correct labels */
        {
            int nb = te.n < 25 ? te.n : 25;
            for (int i = 0; i < nb; i++) idx[i] = i;
            fill_batch(&te, idx, nb, hx, hy);
            decode_mu(ctx, &M, nb, C, S, hx, hy, img);
            for (int i = 0; i < nb; i++) {
                memcpy(grid + (size_t)(2 * i) * px, hx + (size_t)i * px, px * sizeof(float));
                memcpy(grid + (size_t)(2 * i + 1) * px, img + (size_t)i * px, px * sizeof(float));
                if (full) snprintf(caps[2 * i], 48, "in %s", full[(int)hy[i]]);
                else snprintf(caps[2 * i], 48, "in %d", (int)hy[i]);
                snprintf(caps[2 * i + 1], 48, "recon");
                capp[2 * i] = caps[2 * i]; capp[2 * i + 1] = caps[2 * i + 1];
            }
            if (uvae_grid_png(join(path, sizeof path, o.out, "recon.png"), grid, 2 * nb, C, S, S, 0, 1, 10, scale, capp,
                              "input | reconstruction (correct label, z = mu)") != UVAE_OK)
                die_lib("recon.png");
        }
        /* samples.png: one row per class, z ~ N(0, I) */
        {
            uvae_tensor *z, *yl, *p;
            static float zh[100 * 1024];
            float yh[100];
            if (o.latent > 1024) die("--latent: at most 1024 for samples.png");
            for (int i = 0; i < 100; i++) {
                yh[i] = (float)(i / 10);
                for (int k = 0; k < o.latent; k++) zh[i * o.latent + k] = uvae_rng_normal(&wr);
                if (full) snprintf(caps[i], 48, "%s", full[i / 10]);
                else snprintf(caps[i], 48, "%d", i / 10);
                capp[i] = caps[i];
            }
            uvae_ctx_reset(ctx, 0);
            z = staged(ctx, 2, (int[]){100, o.latent}, zh);
            yl = staged(ctx, 1, (int[]){100}, yh);
            p = uvae_sigmoid(ctx, uvae_cvae_decode(ctx, &M, z, yl, NULL));
            if (!p || uvae_tensor_copy_out(p, grid) != UVAE_OK) die_lib("samples");
            if (uvae_grid_png(join(path, sizeof path, o.out, "samples.png"), grid, 100, C, S, S, 0, 1, 10, scale, capp,
                              "samples: one row per class, z ~ N(0, I)") != UVAE_OK)
                die_lib("samples.png");
        }
        char bpd[64] = "";
        if (o.likelihood == UVAE_DLOGISTIC) snprintf(bpd, sizeof bpd, " = %.3f bits/dim", test_loss / (log(2.0) * (double)px));
        printf("test loss %.2f nats/image%s (%s NLL + KL, correct labels) | judge test accuracy %.2f %% | "
               "label-follow %.2f %% (still the original class %.2f %%) over %d test images with random wrong labels | %.1f s\n",
               test_loss, bpd, o.likelihood == UVAE_DLOGISTIC ? "discretized logistic" : "Bernoulli", 100 * judge_acc,
               100.0 * follow[0] / te.n, 100.0 * stay[0] / te.n, te.n, now_s() - t_start);
        if (have_teacher)
            printf("(by the teacher, the label loss's own classifier: label-follow %.2f %%, still the original %.2f %%)\n",
                   100.0 * follow[1] / te.n, 100.0 * stay[1] / te.n);
        free(grid);
    }
    uvae_optim_free(&opt);
    uvae_cvae_free(&M);
    uvae_classifier_free(&J);
    if (have_teacher) uvae_classifier_free(&T);
    uvae_ctx_free(ctx);
    uvae_dataset_free(&tr);
    uvae_dataset_free(&te);
    free(hx); free(img); free(hy); free(hy2); free(idx); free(order); free(tr_curve); free(te_curve); free(lf_curve);
    return 0;
}
