/* examples/cvae.c — a conditional VAE on MNIST, Fashion-MNIST or CIFAR-10, judged by a classifier.

   1. A judge (uvae_classifier) is trained on the real training set (or loaded with --judge F) and
      its test accuracy is reported.
   2. The CVAE (uvae_cvae) is trained with the Bernoulli likelihood (pixels in [0,1]) + beta * KL.
      --label-loss W > 0 adds W * cross-entropy of the FROZEN judge on sigmoid(decoder logits) of the
      same images given random wrong labels: the judge runs in evaluation mode, its gradients are
      zeroed every step and it is never stepped.
   3. Test loss (Bernoulli NLL + KL, nats/image, correct labels), label-follow (every test image
      given a random wrong label, decoded at z = mu, classified by the judge), pictures, checkpoint.

     make build/cvae && ./build/cvae --dataset mnist --epochs 10
     ./build/cvae --help                                                 (every flag, with defaults)
   GPU: nvcc -O3 -DUNETVAE_CUDA examples/cvae.c unetvae_cuda.cu -o cvae_cuda && ./cvae_cuda --device cuda */
#define _POSIX_C_SOURCE 200809L
#define UNETVAE_IMPLEMENTATION
#include "../unetvae.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *const CIFAR_NAMES[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                            "dog", "frog", "horse", "ship", "truck"};
static int bar_open = 0;   /* a progress line is on stderr without its newline */

static void die(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%scvae: ", bar_open ? "\n" : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}
static void die_lib(const char *what) { die("%s: %s", what, uvae_last_error()); }
static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory (%zu bytes)", n);
    return p;
}
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct opts {
    const char *dataset, *data, *out, *judge, *dump, *device;
    int epochs, batch, latent, width, judge_epochs, judge_width, limit;
    float lr, beta, label_loss, judge_lr;
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
           "  --beta F            KL weight in the training loss (default 1)\n"
           "  --label-loss W      W > 0: add W * cross-entropy of the frozen judge on outputs generated\n"
           "                      with random wrong labels (default 0: off)\n"
           "  --judge-epochs N    judge training epochs (default 2)\n"
           "  --judge-width N     judge conv width (default 16)\n"
           "  --judge-lr F        judge Adam learning rate (default 0.001)\n"
           "  --judge F           load this judge checkpoint instead of training one (default: train it\n"
           "                      and save OUT/judge.safetensors)\n"
           "  --limit N           use only the first N training images (default 0: all)\n"
           "  --seed N            seed of everything (default 1)\n"
           "  --device D          cpu | cuda (cuda only in a GPU build; default cpu, or cuda in a GPU build)\n"
           "  --out DIR           output folder (default runs/cvae)\n"
           "  --dump DIR          also write every mismatched test output as IDX files in DIR\n"
           "                      (default: none)\n"
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
    o->dataset = "mnist"; o->out = "runs/cvae";
    o->epochs = 10; o->batch = 128; o->latent = 32; o->width = 32; o->judge_epochs = 2; o->judge_width = 16;
    o->lr = 1e-3f; o->beta = 1.0f; o->judge_lr = 1e-3f; o->seed = 1;
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
                                          "--label-loss", "--judge-epochs", "--judge-width", "--judge-lr", "--judge", "--limit",
                                          "--seed", "--device", "--out", "--dump"};
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
        else if (!strcmp(a, "--judge-epochs")) o->judge_epochs = parse_int(a, v, 0);
        else if (!strcmp(a, "--judge-width")) o->judge_width = parse_int(a, v, 1);
        else if (!strcmp(a, "--judge-lr")) o->judge_lr = parse_float(a, v, 0);
        else if (!strcmp(a, "--judge")) o->judge = v;
        else if (!strcmp(a, "--limit")) o->limit = parse_int(a, v, 0);
        else if (!strcmp(a, "--seed")) o->seed = (unsigned long long)parse_int(a, v, 0);
        else if (!strcmp(a, "--device")) o->device = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--dump")) o->dump = v;
        else die("unknown flag '%s' (see --help)", a);
    }
    if (strcmp(o->dataset, "mnist") && strcmp(o->dataset, "fashion") && strcmp(o->dataset, "cifar10"))
        die("--dataset: bad value '%s' (want mnist, fashion or cifar10)", o->dataset);
    if (strcmp(o->device, "cpu") && strcmp(o->device, "cuda")) die("--device: bad value '%s' (want cpu or cuda)", o->device);
    if (!o->data)
        o->data = !strcmp(o->dataset, "mnist") ? "data/mnist" : !strcmp(o->dataset, "fashion") ? "/usr/share/datasets/fashion-mnist" : "data/cifar10";
}

static void mkdir_p(const char *dir) {
    char s[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof s) die("bad folder name '%s'", dir);
    memcpy(s, dir, n + 1);
    for (size_t i = 1; i <= n; i++)
        if (s[i] == '/' || s[i] == 0) {
            char c = s[i];
            s[i] = 0;
            if (mkdir(s, 0777) != 0 && errno != EEXIST) die("cannot create '%s': %s", s, strerror(errno));
            s[i] = c;
        }
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
/* An arena tensor on the ctx device holding `host`. */
static uvae_tensor *staged(uvae_ctx *ctx, int ndim, const int *shape, const float *host) {
    uvae_tensor *t = uvae_ctx_tensor(ctx, ndim, shape);
    if (!t || uvae_tensor_copy_in(t, host) != UVAE_OK) die_lib("staging a batch");
    return t;
}
static float read1(const uvae_tensor *t) {
    float v;
    if (!t || uvae_tensor_copy_out(t, &v) != UVAE_OK) die_lib("reading a value");
    return v;
}
static void fmt_eta(char *s, size_t n, double sec) {
    int t = sec > 0 && sec < 1e7 ? (int)(sec + 0.5) : 0;
    snprintf(s, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
}
static void progress(const char *what, int e, int E, int s, int S, double loss, double ips, double eta) {
    char buf[32];
    fmt_eta(buf, sizeof buf, eta);
    fprintf(stderr, "\r%s epoch %d/%d  step %d/%d  loss %.4f  %.0f img/s  ETA %s   ", what, e, E, s, S, loss, ips, buf);
    fflush(stderr);
    bar_open = 1;
}
static void progress_end(void) {
    fprintf(stderr, "\n");
    bar_open = 0;
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

/* Test loss of the CVAE: Bernoulli NLL + KL with the correct labels, one z sample, nats/image. */
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

int main(int argc, char **argv) {
    opts o;
    uvae_dataset tr, te;
    int dev = UVAE_CPU, C, S, B, ntr, steps;
    size_t px;
    float *hx, *hy, *hy2, *img;
    int *idx, *order;
    uvae_ctx *ctx;
    uvae_rng rng;
    uvae_classifier J;
    uvae_cvae M;
    uvae_optim opt;
    char path[4096];
    double judge_acc, t_start, test_loss = 0;
    FILE *csv;
    float *tr_curve, *te_curve;

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
    B = o.batch;
    ntr = tr.n;
    if (B > ntr) { fprintf(stderr, "cvae: note: --batch %d > %d training images; using %d\n", B, ntr, ntr); B = ntr; }
    if (B > 1024) die("--batch: at most 1024");
    steps = ntr / B;
    mkdir_p(o.out);
    hx = (float *)xmalloc((size_t)B * px * sizeof(float));
    img = (float *)xmalloc((size_t)B * px * sizeof(float));
    hy = (float *)xmalloc((size_t)B * sizeof(float));
    hy2 = (float *)xmalloc((size_t)B * sizeof(float));
    idx = (int *)xmalloc((size_t)B * sizeof(int));
    order = (int *)xmalloc((size_t)ntr * sizeof(int));
    tr_curve = (float *)xmalloc((size_t)(o.epochs + 1) * sizeof(float));
    te_curve = (float *)xmalloc((size_t)(o.epochs + 1) * sizeof(float));
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

    /* ---- 1. the judge ---- */
    {
        uvae_classifier_config jc = {C, S, 10, o.judge_width};
        if (uvae_classifier_init(&J, &jc, o.seed + 101) != UVAE_OK) die_lib("judge");
        if (uvae_params_to(&J.params, dev) != UVAE_OK) die_lib("judge to device");
        if (o.judge) {
            if (uvae_load(o.judge, &J.params, NULL) != UVAE_OK) die_lib("--judge");
            printf("judge: loaded %s\n", o.judge);
        } else {
            uvae_optim jo;
            double t0 = now();
            const char *meta[6];
            char w[32], sz[32];
            if (uvae_optim_init(&jo, &J.params, UVAE_ADAM, o.judge_lr) != UVAE_OK) die_lib("judge optimizer");
            for (int e = 0; e < o.judge_epochs; e++) {
                double sum = 0, te0 = now();
                for (int i = 0; i < ntr; i++) order[i] = i;
                uvae_shuffle(order, ntr, &rng);
                for (int s = 0; s < steps; s++) {
                    uvae_tensor *x, *y, *loss;
                    fill_batch(&tr, order + (size_t)s * B, B, hx, hy);
                    uvae_ctx_reset(ctx, 1);
                    uvae_params_zero_grad(&J.params);
                    x = staged(ctx, 4, (int[]){B, C, S, S}, hx);
                    y = staged(ctx, 1, (int[]){B}, hy);
                    loss = uvae_cross_entropy(ctx, uvae_classifier_forward(ctx, &J, x), y);
                    if (uvae_backward(ctx, loss) != UVAE_OK) die_lib("judge step");
                    if (uvae_optim_step(&jo, &J.params, uvae_lr_cosine((int64_t)e * steps + s, (int64_t)o.judge_epochs * steps, o.judge_lr, 0)) != UVAE_OK)
                        die_lib("judge step");
                    sum += read1(loss);
                    if (s % 10 == 0 || s == steps - 1) {
                        double el = now() - te0;
                        progress("judge", e + 1, o.judge_epochs, s + 1, steps, sum / (s + 1), (s + 1) * B / el,
                                 el / (s + 1) * ((double)(o.judge_epochs - e) * steps - s - 1));
                    }
                }
                progress_end();
            }
            uvae_optim_free(&jo);
            snprintf(w, sizeof w, "%d", o.judge_width);
            snprintf(sz, sizeof sz, "%dx%dx%d", C, S, S);
            meta[0] = "model"; meta[1] = "uvae_classifier"; meta[2] = "width"; meta[3] = w; meta[4] = "input"; meta[5] = sz;
            if (uvae_save(join(path, sizeof path, o.out, "judge.safetensors"), &J.params, NULL, meta, 3) != UVAE_OK) die_lib("saving the judge");
            printf("judge: trained %d epochs in %.1f s, saved %s\n", o.judge_epochs, now() - t0, path);
        }
        judge_acc = judge_accuracy(ctx, &J, &te, B, hx, hy, idx);
        printf("judge: test accuracy %.2f %%\n", 100 * judge_acc);
        J.frozen = 1;   /* from now on: evaluation mode, never stepped */
    }

    /* ---- 2. the CVAE ---- */
    {
        uvae_cvae_config cc = {C, S, 10, o.latent, o.width, 16};
        if (uvae_cvae_init(&M, &cc, o.seed + 202) != UVAE_OK) die_lib("cvae");
        if (uvae_params_to(&M.params, dev) != UVAE_OK || uvae_optim_init(&opt, &M.params, UVAE_ADAM, o.lr) != UVAE_OK) die_lib("cvae");
    }
    printf("cvae: %zu parameters, latent %d, width %d, beta %g, label loss %g\n", uvae_params_count(&M.params), o.latent, o.width,
           (double)o.beta, (double)o.label_loss);
    if (!(csv = fopen(join(path, sizeof path, o.out, "metrics.csv"), "w"))) die("cannot write %s: %s", path, strerror(errno));
    fprintf(csv, "epoch,train_loss,test_loss_nats,seconds\n");
    t_start = now();
    for (int e = 0; e < o.epochs; e++) {
        double sum = 0, te0 = now();
        for (int i = 0; i < ntr; i++) order[i] = i;
        uvae_shuffle(order, ntr, &rng);
        for (int s = 0; s < steps; s++) {
            uvae_tensor *x, *y, *loss;
            uvae_cvae_out out;
            fill_batch(&tr, order + (size_t)s * B, B, hx, hy);
            uvae_ctx_reset(ctx, 1);
            uvae_params_zero_grad(&M.params);
            x = staged(ctx, 4, (int[]){B, C, S, S}, hx);
            y = staged(ctx, 1, (int[]){B}, hy);
            out = uvae_cvae_forward(ctx, &M, x, y, NULL);
            loss = uvae_add(ctx, uvae_bernoulli_nll(ctx, out.logits, x), uvae_scale(ctx, uvae_kl_normal(ctx, out.mu, out.logvar), o.beta));
            if (o.label_loss > 0) {   /* the same images with random wrong labels, judged by the frozen judge */
                uvae_tensor *yw, *gen, *ce;
                uvae_cvae_out ow;
                for (int i = 0; i < B; i++) hy2[i] = (float)(((int)hy[i] + 1 + (int)(uvae_rng_u32(&rng) % 9)) % 10);
                yw = staged(ctx, 1, (int[]){B}, hy2);
                ow = uvae_cvae_forward(ctx, &M, x, yw, NULL);
                gen = uvae_sigmoid(ctx, ow.logits);
                ce = uvae_cross_entropy(ctx, uvae_classifier_forward(ctx, &J, gen), yw);
                loss = uvae_add(ctx, loss, uvae_scale(ctx, ce, o.label_loss));
            }
            if (uvae_backward(ctx, loss) != UVAE_OK) die_lib("cvae step");
            uvae_params_zero_grad(&J.params);   /* the judge is frozen: its gradients are dropped */
            if (uvae_optim_step(&opt, &M.params, -1) != UVAE_OK) die_lib("cvae step");
            {
                float v = read1(loss);
                if (!isfinite(v)) die("cvae step: loss is not finite (try a lower --lr)");
                sum += v;
            }
            if (s % 10 == 0 || s == steps - 1) {
                double el = now() - te0;
                progress("cvae", e + 1, o.epochs, s + 1, steps, sum / (s + 1), (s + 1) * B / el,
                         el / (s + 1) * ((double)(o.epochs - e) * steps - s - 1));
            }
        }
        progress_end();
        test_loss = cvae_test_loss(ctx, &M, &te, B, hx, hy, idx);
        tr_curve[e] = (float)(sum / steps);
        te_curve[e] = (float)test_loss;
        fprintf(csv, "%d,%.4f,%.4f,%.1f\n", e + 1, sum / steps, test_loss, now() - t_start);
        fflush(csv);
        printf("epoch %d: train loss %.2f, test loss %.2f nats/image, %.1f s\n", e + 1, sum / steps, test_loss, now() - te0);
        {
            const char *names[2] = {"train loss", "test loss (nats)"};
            const float *series[2] = {tr_curve, te_curve};
            if (uvae_plot_png(join(path, sizeof path, o.out, "curves.png"), 640, 400, "CVAE loss per epoch", names, series, 2, e + 1) != UVAE_OK)
                die_lib("curves.png");
        }
    }
    if (fclose(csv) != 0) die("cannot write metrics.csv");
    if (o.epochs == 0) test_loss = cvae_test_loss(ctx, &M, &te, B, hx, hy, idx);
    {
        const char *meta[12];
        char v[4][32];
        snprintf(v[0], 32, "%d", o.latent); snprintf(v[1], 32, "%d", o.width); snprintf(v[2], 32, "%dx%dx%d", C, S, S);
        snprintf(v[3], 32, "%s", o.dataset);
        meta[0] = "model"; meta[1] = "uvae_cvae"; meta[2] = "latent"; meta[3] = v[0]; meta[4] = "width"; meta[5] = v[1];
        meta[6] = "input"; meta[7] = v[2]; meta[8] = "embed"; meta[9] = "16"; meta[10] = "dataset"; meta[11] = v[3];
        if (uvae_save(join(path, sizeof path, o.out, "checkpoint.safetensors"), &M.params, &opt, meta, 6) != UVAE_OK) die_lib("checkpoint");
    }

    /* ---- 3. label-follow over the whole test set, pictures, dump ---- */
    {
        int is_cifar = !strcmp(o.dataset, "cifar10"), follow = 0, stay = 0, scale = is_cifar ? 4 : 2;
        unsigned char *dump_img = NULL, *dump_given = NULL, *dump_true = NULL;
        float *grid = (float *)xmalloc((size_t)100 * px * sizeof(float));
        float lg[10 * 1024];
        char caps[100][48];
        const char *capp[100];
        uvae_rng wr;
        uvae_rng_seed(&wr, o.seed + 303);
        if (o.dump) {
            dump_img = (unsigned char *)xmalloc((size_t)te.n * px);
            dump_given = (unsigned char *)xmalloc((size_t)te.n);
            dump_true = (unsigned char *)xmalloc((size_t)te.n);
        }
        for (int s = 0; s < te.n; s += B) {
            int nb = te.n - s < B ? te.n - s : B;
            uvae_tensor *g, *l;
            for (int i = 0; i < nb; i++) idx[i] = s + i;
            fill_batch(&te, idx, nb, hx, hy);
            for (int i = 0; i < nb; i++) hy2[i] = (float)(((int)hy[i] + 1 + (int)(uvae_rng_u32(&wr) % 9)) % 10);
            decode_mu(ctx, &M, nb, C, S, hx, hy2, img);
            uvae_ctx_reset(ctx, 0);
            g = staged(ctx, 4, (int[]){nb, C, S, S}, img);
            l = uvae_classifier_forward(ctx, &J, g);
            if (!l || uvae_tensor_copy_out(l, lg) != UVAE_OK) die_lib("judging outputs");
            for (int i = 0; i < nb; i++) {
                int k = argmax(lg + 10 * i, 10);
                follow += k == (int)hy2[i];
                stay += k == (int)hy[i];
            }
            if (s == 0) {   /* the mismatched grid: 25 (input, output) pairs */
                for (int i = 0; i < 25 && i < nb; i++) {
                    int t = (int)hy[i], gv = (int)hy2[i];
                    memcpy(grid + (size_t)(2 * i) * px, hx + (size_t)i * px, px * sizeof(float));
                    memcpy(grid + (size_t)(2 * i + 1) * px, img + (size_t)i * px, px * sizeof(float));
                    if (is_cifar) {
                        snprintf(caps[2 * i], 48, "in: %s", CIFAR_NAMES[t]);
                        snprintf(caps[2 * i + 1], 48, "%s->%s", CIFAR_NAMES[t], CIFAR_NAMES[gv]);
                    } else {
                        snprintf(caps[2 * i], 48, "in %d", t);
                        snprintf(caps[2 * i + 1], 48, "%d->%d", t, gv);
                    }
                    capp[2 * i] = caps[2 * i]; capp[2 * i + 1] = caps[2 * i + 1];
                }
                if (nb >= 25 && uvae_grid_png(join(path, sizeof path, o.out, "mismatched.png"), grid, 50, C, S, S, 0, 1, 10, scale, capp,
                                              "input | output given a wrong label (true->given), z = mu") != UVAE_OK)
                    die_lib("mismatched.png");
            }
            if (o.dump)
                for (int i = 0; i < nb; i++) {
                    for (size_t k = 0; k < px; k++) {
                        float v = img[(size_t)i * px + k] * 255.0f + 0.5f;
                        dump_img[(size_t)(s + i) * px + k] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
                    }
                    dump_given[s + i] = (unsigned char)hy2[i];
                    dump_true[s + i] = (unsigned char)hy[i];
                }
        }
        if (o.dump) {
            int dims3[3] = {C, S, S};
            mkdir_p(o.dump);
            if (!write_idx(join(path, sizeof path, o.dump, C == 1 ? "images-idx3-ubyte" : "images-idx4-ubyte"), dump_img, te.n,
                           C == 1 ? 2 : 3, C == 1 ? dims3 + 1 : dims3) ||
                !write_idx(join(path, sizeof path, o.dump, "given-labels-idx1-ubyte"), dump_given, te.n, 0, NULL) ||
                !write_idx(join(path, sizeof path, o.dump, "true-labels-idx1-ubyte"), dump_true, te.n, 0, NULL))
                die("--dump: cannot write %s: %s", path, strerror(errno));
            printf("dump: %d mismatched outputs in %s (uint8 IDX images, given and true labels)\n", te.n, o.dump);
            free(dump_img); free(dump_given); free(dump_true);
        }
        /* recon.png: 25 (input, reconstruction) pairs with the correct labels */
        {
            int nb = te.n < 25 ? te.n : 25;
            for (int i = 0; i < nb; i++) idx[i] = i;
            fill_batch(&te, idx, nb, hx, hy);
            decode_mu(ctx, &M, nb, C, S, hx, hy, img);
            for (int i = 0; i < nb; i++) {
                memcpy(grid + (size_t)(2 * i) * px, hx + (size_t)i * px, px * sizeof(float));
                memcpy(grid + (size_t)(2 * i + 1) * px, img + (size_t)i * px, px * sizeof(float));
                snprintf(caps[2 * i], 48, "in %s", is_cifar ? CIFAR_NAMES[(int)hy[i]] : "");
                if (!is_cifar) snprintf(caps[2 * i], 48, "in %d", (int)hy[i]);
                snprintf(caps[2 * i + 1], 48, "recon");
                capp[2 * i] = caps[2 * i]; capp[2 * i + 1] = caps[2 * i + 1];
            }
            if (uvae_grid_png(join(path, sizeof path, o.out, "recon.png"), grid, 2 * nb, C, S, S, 0, 1, 10, scale, capp,
                              "input | reconstruction (correct label, z = mu)") != UVAE_OK)
                die_lib("recon.png");
        }
        /* samples.png: one row per class, z ~ N(0, I) */
        {
            uvae_tensor *z, *yl, *d, *p;
            static float zh[100 * 1024];
            float yh[100];
            if (o.latent > 1024) die("--latent: at most 1024 for samples.png");
            for (int i = 0; i < 100; i++) {
                yh[i] = (float)(i / 10);
                for (int k = 0; k < o.latent; k++) zh[i * o.latent + k] = uvae_rng_normal(&wr);
                snprintf(caps[i], 48, "%s", is_cifar ? CIFAR_NAMES[i / 10] : "");
                if (!is_cifar) snprintf(caps[i], 48, "%d", i / 10);
                capp[i] = caps[i];
            }
            /* the decoder half of uvae_cvae_forward, from z and the label embedding */
            uvae_ctx_reset(ctx, 0);
            z = staged(ctx, 2, (int[]){100, o.latent}, zh);
            yl = staged(ctx, 1, (int[]){100}, yh);
            d = uvae_relu(ctx, uvae_dense_forward(ctx, &M.fc_dec, uvae_concat(ctx, z, uvae_embedding(ctx, yl, M.label_embed))));
            d = uvae_reshape(ctx, d, 4, (int[]){100, 2 * o.width, S / 4, S / 4});
            d = uvae_relu(ctx, uvae_conv_forward(ctx, &M.d1, d));
            p = uvae_sigmoid(ctx, uvae_conv_forward(ctx, &M.d2, d));
            if (!p || uvae_tensor_copy_out(p, grid) != UVAE_OK) die_lib("samples");
            if (uvae_grid_png(join(path, sizeof path, o.out, "samples.png"), grid, 100, C, S, S, 0, 1, 10, scale, capp,
                              "samples: one row per class, z ~ N(0, I)") != UVAE_OK)
                die_lib("samples.png");
        }
        printf("test loss %.2f nats/image (Bernoulli NLL + KL, correct labels) | judge test accuracy %.2f %% | "
               "label-follow %.2f %% (still the original class %.2f %%) over %d test images with random wrong labels | %.1f s\n",
               test_loss, 100 * judge_acc, 100.0 * follow / te.n, 100.0 * stay / te.n, te.n, now() - t_start);
        free(grid);
    }
    uvae_optim_free(&opt);
    uvae_cvae_free(&M);
    uvae_classifier_free(&J);
    uvae_ctx_free(ctx);
    uvae_dataset_free(&tr);
    uvae_dataset_free(&te);
    free(hx); free(img); free(hy); free(hy2); free(idx); free(order); free(tr_curve); free(te_curve);
    return 0;
}
