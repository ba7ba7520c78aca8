/* fuzz/fuzz_ckpt.c — the safetensors reader (uvae_st_read, in memory), then, for files it accepts,
   uvae_load into a small model (fuzz.h's fz_model) with no optimizer, Adam and SGD. uvae_load only
   reads paths, so an accepted input is written to a per-process temp file first
   ($TMPDIR or /tmp: uvae_fuzz_ckpt.<pid>.safetensors). Input: the file's bytes. */
#define _POSIX_C_SOURCE 200809L
#include "fuzz.h"
#include <unistd.h>

static uvae_params fz_P;
static uvae_optim fz_adam, fz_sgd;
static char fz_tmp[512];

static void fz_cleanup(void) {
    if (fz_tmp[0]) remove(fz_tmp);
    uvae_optim_free(&fz_adam);
    uvae_optim_free(&fz_sgd);
    uvae_params_free(&fz_P);
}

static void fz_init(void) {
    const char *t = getenv("TMPDIR");
    if (fz_model(&fz_P, 1) != UVAE_OK || uvae_optim_init(&fz_adam, &fz_P, UVAE_ADAM, 1e-3f) != UVAE_OK ||
        uvae_optim_init(&fz_sgd, &fz_P, UVAE_SGD, 1e-2f) != UVAE_OK) {
        fprintf(stderr, "fuzz_ckpt: cannot build the model: %s\n", uvae_last_error());
        abort();
    }
    snprintf(fz_tmp, sizeof fz_tmp, "%s/uvae_fuzz_ckpt.%ld.safetensors", t && *t ? t : "/tmp", (long)getpid());
    atexit(fz_cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *name = "fuzz-checkpoint.safetensors";
    static int ready;
    uvae_st_file f;
    uvae__mem m;
    FILE *fp;
    double sum = 0;
    int st;
    if (!ready) { fz_init(); ready = 1; }
    m.p = data;
    m.n = size;
    st = uvae__st_read_from(name, &m, &f);
    if (st != UVAE_OK) {
        fz_check_failure(st, name, NULL);
        if (f.n || f.t || f.buf) abort();   /* nothing to free on failure */
        return 0;
    }
    for (int i = 0; i < f.n; i++) {   /* every tensor lies inside the data buffer (ASan checks) */
        const uvae_st_tensor *t = &f.t[i];
        size_t numel = 1;
        for (int k = 0; k < t->ndim; k++) numel *= (size_t)t->shape[k];
        if (t->ndim < 0 || t->ndim > UVAE_MAX_DIMS || numel != t->size || uvae_st_find(&f, t->name) != t) abort();
        if (t->size) sum += (double)t->data[0] + (double)t->data[t->size - 1];
    }
    for (int i = 0; i < f.n_meta; i++)
        if (uvae_st_meta(&f, f.meta_key[i]) != f.meta_val[i]) abort();
    (void)sum;
    uvae_st_free(&f);

    if (!(fp = fopen(fz_tmp, "wb"))) return 0;
    if (fwrite(data, 1, size, fp) != size) { fclose(fp); return 0; }
    if (fclose(fp) != 0) return 0;
    st = uvae_load(fz_tmp, &fz_P, NULL);
    if (st != UVAE_OK) fz_check_failure(st, fz_tmp, NULL);
    st = uvae_load(fz_tmp, &fz_P, &fz_adam);
    if (st != UVAE_OK) fz_check_failure(st, fz_tmp, NULL);
    st = uvae_load(fz_tmp, &fz_P, &fz_sgd);
    if (st != UVAE_OK) fz_check_failure(st, fz_tmp, NULL);
    return 0;
}
