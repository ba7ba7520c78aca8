/* tests/test_resume.c — nothing is lost: a training run stopped and resumed from its checkpoint
   gives bit-identical per-step losses; a process killed with SIGKILL while writing checkpoints
   never leaves a broken one in place of the previous one; the arena stops growing after the
   first step; the generator's state survives a round trip through text. */
#define _POSIX_C_SOURCE 200809L
#include "test.h"
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>

/* ---- the generator's state as text ---- */
static void tr_rng_text(void) {
    uvae_rng a, b;
    char s[UVAE_RNG_STR];
    uvae_rng_seed(&a, 42);
    for (int i = 0; i < 5; i++) (void)uvae_rng_u32(&a);
    uvae_rng_to_str(&a, s);
    CHECK(strlen(s) == 32, "rng text has %zu characters", strlen(s));
    CHECK(uvae_rng_from_str(&b, s) == UVAE_OK, "rng text read back: %s", uvae_last_error());
    CHECK(a.state == b.state && a.inc == b.inc, "rng state survives text");
    CHECK(uvae_rng_u32(&a) == uvae_rng_u32(&b), "same next number");
    CHECK(uvae_rng_from_str(&b, "0123") == UVAE_ERR_FORMAT, "short rng text refused");
    CHECK(uvae_rng_from_str(&b, "0123456789abcdef0123456789abcdeg") == UVAE_ERR_FORMAT, "bad digit refused");
    CHECK(uvae_rng_from_str(&b, "0123456789abcdef0123456789abcdee") == UVAE_ERR_FORMAT, "even inc refused");
    CHECK(uvae_rng_from_str(&b, "0123456789abcdef0123456789abcdef0") == UVAE_ERR_FORMAT, "long rng text refused");
    CHECK(uvae_rng_from_str(&b, NULL) == UVAE_ERR_FORMAT && strstr(uvae_last_error(), "uvae_rng_from_str"), "NULL refused");
}

/* ---- exact resume ---- */
#define TR_B 2
#define TR_S 16
typedef struct tr_run { uvae_unet net; uvae_optim opt; uvae_ctx *ctx; uvae_rng rng; uvae_tensor *x, *y; } tr_run;

static int tr_open(tr_run *r, uint64_t init_seed) {
    uvae_unet_config cfg = {3, 3, 4, 2, UVAE_DOWN_STRIDED, UVAE_UP_TRANSPOSE};
    memset(r, 0, sizeof *r);
    if (uvae_unet_init(&r->net, &cfg, init_seed) != UVAE_OK) return 0;
    if (uvae_optim_init(&r->opt, &r->net.params, UVAE_ADAM, 1e-2f) != UVAE_OK) return 0;
    r->ctx = uvae_ctx_new(0);
    r->x = uvae_tensor_new(4, (int[]){TR_B, 3, TR_S, TR_S});
    r->y = uvae_tensor_new(3, (int[]){TR_B, TR_S, TR_S});
    uvae_rng_seed(&r->rng, 99);
    return r->ctx && r->x && r->y;
}
static void tr_close(tr_run *r) {
    uvae_tensor_free(r->x); uvae_tensor_free(r->y);
    uvae_ctx_free(r->ctx); uvae_optim_free(&r->opt); uvae_unet_free(&r->net);
}
/* One step on a batch drawn from the run's generator; the loss, or NaN on failure. */
static float tr_step(tr_run *r, int step, int total) {
    uvae_tensor *loss;
    for (size_t i = 0; i < r->x->size; i++) r->x->data[i] = uvae_rng_normal(&r->rng);
    for (size_t i = 0; i < r->y->size; i++) r->y->data[i] = (float)(uvae_rng_u32(&r->rng) % 3);
    uvae_ctx_reset(r->ctx, 1);
    uvae_params_zero_grad(&r->net.params);
    loss = uvae_cross_entropy(r->ctx, uvae_unet_forward(r->ctx, &r->net, r->x), r->y);
    if (!loss || uvae_backward(r->ctx, loss) != UVAE_OK) return NAN;
    if (uvae_optim_step(&r->opt, &r->net.params, uvae_lr_onecycle(step, total, 1e-2f)) != UVAE_OK) return NAN;
    return loss->data[0];
}

static void tr_exact_resume(void) {
    enum { N = 12, K = 5 };
    const char *path = "/tmp/uvt_resume.safetensors";
    float ref[N], got[N];
    tr_run r;
    char rs[UVAE_RNG_STR];
    const char *meta[2];
    uvae_st_file f;
    int ok = tr_open(&r, 1);
    CHECK(ok, "resume: setup");
    if (!ok) { tr_close(&r); return; }
    for (int s = 0; s < N; s++) ref[s] = tr_step(&r, s, N);
    tr_close(&r);

    /* K steps, a checkpoint with the generator's state, everything freed */
    if (!tr_open(&r, 1)) { CHECK(0, "resume: setup"); tr_close(&r); return; }
    for (int s = 0; s < K; s++) got[s] = tr_step(&r, s, N);
    uvae_rng_to_str(&r.rng, rs);
    meta[0] = "rng"; meta[1] = rs;
    CHECK(uvae_save(path, &r.net.params, &r.opt, meta, 1) == UVAE_OK, "resume: save: %s", uvae_last_error());
    tr_close(&r);

    /* a new process would start here: another init seed, so only the file can make it equal */
    if (!tr_open(&r, 12345)) { CHECK(0, "resume: setup"); tr_close(&r); return; }
    CHECK(uvae_load(path, &r.net.params, &r.opt) == UVAE_OK, "resume: load: %s", uvae_last_error());
    CHECK(r.opt.step == K, "resume: optimizer step %lld, want %d", (long long)r.opt.step, K);
    if (uvae_st_read(path, &f) == UVAE_OK) {
        CHECK(uvae_rng_from_str(&r.rng, uvae_st_meta(&f, "rng")) == UVAE_OK, "resume: rng from metadata");
        uvae_st_free(&f);
    } else CHECK(0, "resume: read back: %s", uvae_last_error());
    for (int s = K; s < N; s++) got[s] = tr_step(&r, (int)r.opt.step, N);
    tr_close(&r);
    CHECK(memcmp(ref, got, sizeof ref) == 0, "resumed losses are bit-identical (step %d: %.9g vs %.9g)", N - 1,
          (double)got[N - 1], (double)ref[N - 1]);
    CHECK(ref[N - 1] < ref[0], "resume: the loss falls (%.4f -> %.4f)", (double)ref[0], (double)ref[N - 1]);
    remove(path);
}

/* ---- the arena stops growing ---- */
static void tr_arena_steady(void) {
    tr_run r;
    size_t cap2 = 0;
    int ok = tr_open(&r, 3), finite = 1;
    CHECK(ok, "arena: setup");
    for (int s = 0; ok && s < 1000; s++) {
        finite &= isfinite(tr_step(&r, s, 1000)) != 0;
        if (s == 1) cap2 = uvae_ctx_arena_capacity(r.ctx);
    }
    if (ok) {
        CHECK(finite, "arena: 1000 finite steps");
        CHECK(cap2 > 0 && uvae_ctx_arena_capacity(r.ctx) == cap2, "arena: %zu bytes after step 2, %zu after step 1000", cap2,
              uvae_ctx_arena_capacity(r.ctx));
    }
    tr_close(&r);
}

/* ---- SIGKILL while writing ---- */
/* A child writes version after version of a 4 MB checkpoint (every value and the metadata
   'version' equal v); the parent kills it at a random moment. The file in place must then read
   back whole and consistent, as some version v >= the one written before the child started. */
#define TR_KILL_N (1 << 20)
static int tr_write_version(const char *path, float *buf, int v) {
    uvae_st_tensor t;
    char vs[32];
    const char *meta[2];
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "w");
    t.ndim = 1; t.shape[0] = TR_KILL_N; t.size = TR_KILL_N; t.data = buf;
    for (int i = 0; i < TR_KILL_N; i++) buf[i] = (float)v;
    snprintf(vs, sizeof vs, "%d", v);
    meta[0] = "version"; meta[1] = vs;
    return uvae_st_write(path, &t, 1, meta, 1);
}
static void tr_sigkill(void) {
    const char *path = "/tmp/uvt_kill.safetensors";
    float *buf = (float *)malloc(TR_KILL_N * sizeof(float));
    int rounds = 12, whole = 0, advanced = 0;
    uvae_rng rng;
    if (!buf) { CHECK(0, "sigkill: out of memory"); return; }
    uvae_rng_seed(&rng, (uint64_t)time(NULL));
    for (int round = 0; round < rounds; round++) {
        int base = 1000 * round, status = 0, v = -1, uniform = 1;
        pid_t pid;
        uvae_st_file f;
        struct timespec ts;
        if (tr_write_version(path, buf, base) != UVAE_OK) { CHECK(0, "sigkill: first write: %s", uvae_last_error()); break; }
        fflush(stdout);
        pid = fork();
        if (pid < 0) { CHECK(0, "sigkill: fork failed"); break; }
        if (pid == 0) {
            for (int k = 1;; k++) tr_write_version(path, buf, base + k);   /* until killed */
        }
        ts.tv_sec = 0;
        ts.tv_nsec = 2000000L + (long)(uvae_rng_u32(&rng) % 60000000u);   /* 2..62 ms: mid-write, mostly */
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        if (uvae_st_read(path, &f) != UVAE_OK) { CHECK(0, "sigkill round %d: %s", round, uvae_last_error()); continue; }
        if (uvae_st_meta(&f, "version")) v = atoi(uvae_st_meta(&f, "version"));
        if (f.n == 1 && f.t[0].size == TR_KILL_N)
            for (int i = 0; i < TR_KILL_N; i++) uniform &= f.t[0].data[i] == (float)v;
        else uniform = 0;
        whole += v >= base && uniform;
        advanced += v > base;
        uvae_st_free(&f);
    }
    CHECK(whole == rounds, "sigkill: %d of %d checkpoints whole after a kill mid-write", whole, rounds);
    printf("  sigkill: %d rounds, the file read back whole every time; %d kills landed after at least one newer version\n",
           rounds, advanced);
    remove(path);
    free(buf);
}

void suite_resume(void) {
    tr_rng_text();
    tr_exact_resume();
    tr_arena_steady();
    tr_sigkill();
}
