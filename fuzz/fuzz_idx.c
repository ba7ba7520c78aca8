/* fuzz/fuzz_idx.c — the IDX reader (MNIST / Fashion-MNIST), plain and gzip.
   Input: fuzz/fuzz.h's two-part layout, images file then labels file. flags bit 0 / bit 1: the
   harness gzips the images / labels part itself (valid gzip, so the contents behind the gunzip
   get fuzzed); parts that already are gzip data go through the gunzip path as they are. */
#include "fuzz.h"

static void fz_dataset_ok(const uvae_dataset *d, int channels) {
    uvae_tensor *x, *y;
    int idx[2];
    if (d->n < 1 || d->channels != channels || d->height < 1 || d->width < 1 || !d->images || !d->labels) abort();
    for (int i = 0; i < d->n; i++)
        if (d->labels[i] > 9) abort();
    idx[0] = 0;
    idx[1] = d->n - 1;
    x = uvae_tensor_new(4, (int[]){2, d->channels, d->height, d->width});
    y = uvae_tensor_new(1, (int[]){2});
    if (x && y && uvae_dataset_batch(d, idx, 2, x, y) != UVAE_OK) abort();
    if (x && y && (y->data[0] != (float)d->labels[0] || y->data[1] != (float)d->labels[d->n - 1])) abort();
    uvae_tensor_free(x);
    uvae_tensor_free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *ni = "fuzz-train-images-idx3-ubyte", *nl = "fuzz-train-labels-idx1-ubyte";
    fz_parts p = fz_split(data, size);
    unsigned char *ga = NULL, *gb = NULL;
    uvae_dataset d;
    int st;
    if (p.flags & 1) { ga = fz_gzip(p.a.p, p.a.n, &p.a.n, 0); p.a.p = ga; if (!ga) p.a.n = 0; }
    if (p.flags & 2) { gb = fz_gzip(p.b.p, p.b.n, &p.b.n, 0); p.b.p = gb; if (!gb) p.b.n = 0; }
    st = uvae__ds_load_idx_from(ni, nl, &p.a, &p.b, &d);
    if (st == UVAE_OK) {
        fz_dataset_ok(&d, 1);
        uvae_dataset_free(&d);
    } else {
        fz_check_failure(st, ni, nl);
        if (d.n || d.images || d.labels) abort();   /* zeroed on failure */
    }
    free(ga);
    free(gb);
    return 0;
}
