/* bench/bench.c — training and inference speed of the library's models (images/s), CPU or GPU.
   Not a test: it reports numbers.  make bench  |  ./build/bench [--device cpu|cuda] [--steps N] [--only NAME]
   [--torch FILE]... [--tf32] [--conv-im2col] [--list]
   Each row: a model at a batch size (the UNets at batch 4 on the CPU, 16 and 64 on the GPU); the
   median time of --steps timed steps (default 6; 20 on the GPU) after 2 warm-up steps;
   GFLOP/s: the convolutions' and matrix products' FLOPs counted as the direct method
   (uvae_ctx_flops; Winograd does fewer) over that time; peak MB: the peak resident memory of the
   process that ran the row alone (each row runs in its own child process; host memory also with
   --device cuda). --torch FILE (up to 4 times): the output of bench/torch_bench.py for the same
   rows; each row is followed by the ratio ours / PyTorch of its training and inference images/s
   against each file's row of the same name and batch. --tf32 (GPU): the GEMMs on the tensor cores
   in TF32 (uvae__cu_tf32). --conv-im2col (GPU): the convolutions with the first kernels, im2col +
   GEMM one image at a time, instead of implicit GEMM over the batch (uvae__cu_conv_im2col). --list:
   the rows' names, one a line (those --only keeps), and nothing run (bench/vs_torch.sh asks). */
#define _POSIX_C_SOURCE 200809L
#define UNETVAE_IMPLEMENTATION
#include "../unetvae.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static void fail(const char *what) {
    fprintf(stderr, "bench: %s: %s\n", what, uvae_last_error());
    exit(1);
}

typedef struct row {
    const char *name;
    int kind;            /* 0 unet, 1 cvae, 2 classifier (the CVAE example's judge, width 32) */
    int down, up, loss;  /* unet: loss 0 ce, 1 dice */
    int size, ch, batch;
} row;

/* a PyTorch row from bench/torch_bench.py's output: name, batch, training and inference img/s, its
   tag (what is in the trailing [brackets], e.g. "torch 2.5.1 cuda tf32") and which --torch file */
typedef struct torch_row { char name[32], tag[64]; int batch, file; double train, infer; } torch_row;
#define MAX_TORCH_ROWS 256
static torch_row torch_rows[MAX_TORCH_ROWS];
static int n_torch_rows;
static const char *torch_files[4];
static int n_torch_files;

/* reads FILE's rows (lines in bench's format; other lines are skipped); 0 if it has none */
static int read_torch(const char *path, int file) {
    FILE *f = fopen(path, "r");
    char line[512];
    int got = 0;
    if (!f) { fprintf(stderr, "bench: --torch %s: cannot open it\n", path); exit(1); }
    while (fgets(line, sizeof line, f) && n_torch_rows < MAX_TORCH_ROWS) {
        torch_row *t = &torch_rows[n_torch_rows];
        char *b = strstr(line, " batch "), *tag = strchr(line, '[');
        size_t n;
        if (!b || (n = (size_t)(b - line)) == 0 || n >= sizeof t->name) continue;
        if (sscanf(b, " batch %d %*s train %lf img/s (%*f ms/step, %*f GFLOP/s) inference %lf", &t->batch, &t->train, &t->infer) != 3)
            continue;
        memcpy(t->name, line, n);
        while (n > 0 && t->name[n - 1] == ' ') n--;
        t->name[n] = 0;
        snprintf(t->tag, sizeof t->tag, "%s", tag ? tag + 1 : "torch");
        t->tag[strcspn(t->tag, "]\n")] = 0;
        t->file = file;
        n_torch_rows++;
        got++;
    }
    fclose(f);
    return got;
}
/* the ratio lines after a row: ours / PyTorch, per --torch file */
static void print_ratios(const char *name, int batch, double train, double infer) {
    for (int fi = 0; fi < n_torch_files; fi++)
        for (int i = 0; i < n_torch_rows; i++) {
            const torch_row *t = &torch_rows[i];
            if (t->file != fi || t->batch != batch || strcmp(t->name, name)) continue;
            printf("%-22s batch %3d  vs %-30s train %6.2fx  inference %6.2fx\n", name, batch, t->tag, train / t->train, infer / t->infer);
        }
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static void run(const row *r, int dev, int steps) {
    uvae_ctx *ctx = uvae_ctx_new_on(dev, 0);
    uvae_unet U;
    uvae_cvae V;
    uvae_classifier J;
    uvae_params *P;
    uvae_optim opt;
    int B = r->batch, S = r->size, C = r->ch;
    size_t px = (size_t)C * S * S;
    float *hx = (float *)malloc((size_t)B * px * sizeof(float)), *hy = (float *)malloc((size_t)B * S * S * sizeof(float));
    double *t = (double *)malloc((size_t)(steps + 2) * sizeof(double)), *ti = (double *)malloc((size_t)(steps + 2) * sizeof(double));
    double f0, ft = 0, fi = 0;   /* flops of one training step, one inference */
    uvae_rng rng;
    if (!ctx || !hx || !hy || !t || !ti) fail("setup");
    uvae_rng_seed(&rng, 7);
    for (size_t i = 0; i < (size_t)B * px; i++) hx[i] = uvae_rng_uniform(&rng);
    if (r->kind == 0) {
        uvae_unet_config cfg = {3, 3, 64, 4, r->down, r->up};
        for (size_t i = 0; i < (size_t)B * S * S; i++) hy[i] = (float)(uvae_rng_u32(&rng) % 3);
        if (uvae_unet_init(&U, &cfg, 1) != UVAE_OK) fail("unet");
        P = &U.params;
    } else if (r->kind == 1) {
        uvae_cvae_config cfg = {C, S, 10, 32, 32, 16, 0, UVAE_BERNOULLI};
        for (int i = 0; i < B; i++) hy[i] = (float)(uvae_rng_u32(&rng) % 10);
        if (uvae_cvae_init(&V, &cfg, 1) != UVAE_OK) fail("cvae");
        P = &V.params;
    } else {
        uvae_classifier_config cfg = {C, S, 10, 32, 2};
        for (int i = 0; i < B; i++) hy[i] = (float)(uvae_rng_u32(&rng) % 10);
        if (uvae_classifier_init(&J, &cfg, 1) != UVAE_OK) fail("classifier");
        P = &J.params;
    }
    if (uvae_params_to(P, dev) != UVAE_OK || uvae_optim_init(&opt, P, UVAE_ADAM, 1e-4f) != UVAE_OK) fail("params");
    for (int mode = 0; mode < 2; mode++)   /* 0 training step, 1 inference */
        for (int s = 0; s < steps + 2; s++) {
            uvae_tensor *x, *y, *loss = NULL;
            float v;
            double t0;
            uvae_ctx_reset(ctx, mode == 0);
            x = uvae_ctx_tensor(ctx, 4, (int[]){B, C, S, S});
            y = r->kind == 0 ? uvae_ctx_tensor(ctx, 3, (int[]){B, S, S}) : uvae_ctx_tensor(ctx, 1, (int[]){B});
            if (!x || !y || uvae_tensor_copy_in(x, hx) != UVAE_OK || uvae_tensor_copy_in(y, hy) != UVAE_OK) fail("batch");
#ifdef UNETVAE_CUDA
            if (dev == UVAE_CUDA) uvae__cu_sync();
#endif
            t0 = now();
            f0 = uvae_ctx_flops(ctx);
            if (mode == 0) uvae_params_zero_grad(P);
            if (r->kind == 0) {
                uvae_tensor *lg = uvae_unet_forward(ctx, &U, x);
                loss = r->loss == 0 ? uvae_cross_entropy(ctx, lg, y) : uvae_dice_loss(ctx, lg, y, 1.0f);
            } else if (r->kind == 1) {
                loss = uvae_cvae_loss(ctx, uvae_cvae_forward(ctx, &V, x, y, NULL), x);
            } else {
                loss = uvae_cross_entropy(ctx, uvae_classifier_forward(ctx, &J, x), y);
            }
            if (mode == 0 && (uvae_backward(ctx, loss) != UVAE_OK || uvae_optim_step(&opt, P, -1) != UVAE_OK)) fail("step");
            if (!loss || uvae_tensor_copy_out(loss, &v) != UVAE_OK) fail("forward");
            (mode == 0 ? t : ti)[s] = now() - t0;
            *(mode == 0 ? &ft : &fi) = uvae_ctx_flops(ctx) - f0;
        }
    {
        double mt = median(t + 2, steps), mi = median(ti + 2, steps);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("%-22s batch %3d  %dx%d  train %9.1f img/s (%7.1f ms/step, %6.1f GFLOP/s)  inference %9.1f img/s (%6.1f GFLOP/s)  "
               "peak %6.0f MB\n", r->name, B, S, S, B / mt, 1e3 * mt, ft / mt * 1e-9, B / mi, fi / mi * 1e-9, ru.ru_maxrss / 1024.0);
        print_ratios(r->name, B, B / mt, B / mi);
        fflush(stdout);
    }
    uvae_optim_free(&opt);
    if (r->kind == 0) uvae_unet_free(&U);
    else if (r->kind == 1) uvae_cvae_free(&V);
    else uvae_classifier_free(&J);
    uvae_ctx_free(ctx);
    free(hx); free(hy); free(t); free(ti);
}

int main(int argc, char **argv) {
    int dev = UVAE_CPU, steps = 0, tf32 = 0, im2col = 0, list = 0;
    const char *only = NULL;
    /* the models; the UNets run at batch 4 on the CPU, at 16 and then 64 on the GPU */
    static const row models[] = {
        {"unet mp+tr+ce", 0, UVAE_DOWN_MAXPOOL, UVAE_UP_TRANSPOSE, 0, 128, 3, 0},
        {"unet mp+tr+dice", 0, UVAE_DOWN_MAXPOOL, UVAE_UP_TRANSPOSE, 1, 128, 3, 0},
        {"unet st+tr+ce", 0, UVAE_DOWN_STRIDED, UVAE_UP_TRANSPOSE, 0, 128, 3, 0},
        {"unet st+up+dice", 0, UVAE_DOWN_STRIDED, UVAE_UP_UPSAMPLE, 1, 128, 3, 0},
        {"cvae mnist", 1, 0, 0, 0, 28, 1, 128},
        {"cvae cifar", 1, 0, 0, 0, 32, 3, 128},
        {"judge mnist", 2, 0, 0, 0, 28, 1, 128},
        {"judge cifar", 2, 0, 0, 0, 32, 3, 128},
    };
    static const int unet_batch_cpu[] = {4}, unet_batch_gpu[] = {16, 64};
    const size_t nm = sizeof models / sizeof *models;
    row rows[3 * sizeof models / sizeof *models];
    size_t nrows = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) dev = !strcmp(argv[++i], "cuda") ? UVAE_CUDA : UVAE_CPU;
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--torch") && i + 1 < argc && n_torch_files < 4) torch_files[n_torch_files++] = argv[++i];
        else if (!strcmp(argv[i], "--tf32")) tf32 = 1;
        else if (!strcmp(argv[i], "--conv-im2col")) im2col = 1;
        else if (!strcmp(argv[i], "--list")) list = 1;
        else {
            fprintf(stderr, "usage: bench [--device cpu|cuda] [--steps N] [--only SUBSTRING] [--torch FILE]... [--tf32] [--conv-im2col] [--list]\n");
            return 1;
        }
    }
    if (steps < 1) steps = dev == UVAE_CUDA ? 20 : 6;
    for (int f = 0; f < n_torch_files; f++)
        if (!read_torch(torch_files[f], f)) { fprintf(stderr, "bench: --torch %s: no rows of bench/torch_bench.py in it\n", torch_files[f]); return 1; }
    if (tf32 && dev != UVAE_CUDA) { fprintf(stderr, "bench: --tf32 needs --device cuda\n"); return 1; }
    if (im2col && dev != UVAE_CUDA) { fprintf(stderr, "bench: --conv-im2col needs --device cuda\n"); return 1; }
    if (tf32) printf("bench: GEMMs in TF32 on the tensor cores\n");
    if (im2col) printf("bench: convolutions as im2col + GEMM per image\n");
    for (int b = 0; b < (dev == UVAE_CUDA ? 2 : 1); b++)
        for (size_t m = 0; m < nm; m++)
            if (models[m].kind == 0) {
                rows[nrows] = models[m];
                rows[nrows++].batch = dev == UVAE_CUDA ? unet_batch_gpu[b] : unet_batch_cpu[b];
            }
    for (size_t m = 0; m < nm; m++)
        if (models[m].kind != 0) rows[nrows++] = models[m];
    for (size_t i = 0; i < nrows; i++) {
        pid_t pid;
        int status;
        if (only && !strstr(rows[i].name, only)) continue;
        if (list) {                   /* a name once, though the GPU runs the UNets at two batch sizes */
            int seen = 0;
            for (size_t k = 0; k < i; k++) seen |= !strcmp(rows[k].name, rows[i].name);
            if (!seen) printf("%s\n", rows[i].name);
            continue;
        }
        fflush(stdout);
        if ((pid = fork()) < 0) { perror("bench: fork"); return 1; }
        if (pid == 0) {   /* the row alone in its process (which is also the first to touch CUDA: a fork must come before) */
            if (dev == UVAE_CUDA && !uvae_cuda_available()) fail("--device cuda");
#ifdef UNETVAE_CUDA
            if (tf32 && uvae__cu_tf32(1) < 0) {
                fprintf(stderr, "bench: --tf32: this GPU or build has no TF32 (compute capability 8.0; NVCCFLAGS=-arch=sm_80 or later)\n");
                _exit(1);
            }
            if (im2col) uvae__cu_conv_im2col(1);
#endif
            run(&rows[i], dev, steps);
            _exit(0);
        }
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
    }
    return 0;
}
