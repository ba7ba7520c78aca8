/* tests/test_data.c — [data]: IDX and CIFAR-10 readers (plain and gzip), a corpus of bad files,
   batches and shuffling, and the real datasets when present. */
#include "test.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* from stb_image_write.h (compiled in tests/test_main.c): a zlib stream (2-byte header, deflate,
   4-byte adler32), allocated with malloc */
unsigned char *stbi_zlib_compress(unsigned char *data, int data_len, int *out_len, int quality);

static char dt_dir[128];

static const char *dt_path(const char *name) {
    static char buf[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s_%s", dt_dir, name);
    return buf[k];
}

static void dt_write(const char *path, const unsigned char *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { printf("cannot write %s\n", path); return; }
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

static unsigned dt_crc32(const unsigned char *p, size_t n) {
    unsigned c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int b = 0; b < 8; b++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

static void dt_put32le(unsigned char *q, unsigned v) {
    q[0] = (unsigned char)v; q[1] = (unsigned char)(v >> 8); q[2] = (unsigned char)(v >> 16); q[3] = (unsigned char)(v >> 24);
}
static void dt_put32be(unsigned char *q, unsigned v) {
    q[0] = (unsigned char)(v >> 24); q[1] = (unsigned char)(v >> 16); q[2] = (unsigned char)(v >> 8); q[3] = (unsigned char)v;
}

/* gzip member for p[0..n): header (with optional FEXTRA, FNAME, FCOMMENT, FHCRC when `fancy`),
   raw deflate, crc32, isize. *gl receives the length; free() the result. *deflate_at: body offset. */
static unsigned char *dt_gzip(const unsigned char *p, size_t n, int fancy, size_t *gl, size_t *deflate_at) {
    int zl = 0;
    unsigned char *z = stbi_zlib_compress((unsigned char *)p, (int)n, &zl, 8);
    unsigned char *g = (unsigned char *)malloc((size_t)zl + 64);
    size_t k = 0;
    if (!z || !g || zl < 6) { free(z); free(g); *gl = 0; return NULL; }
    g[k++] = 0x1f; g[k++] = 0x8b; g[k++] = 8; g[k++] = (unsigned char)(fancy ? (4 | 8 | 16 | 2) : 0);
    g[k++] = 0; g[k++] = 0; g[k++] = 0; g[k++] = 0; g[k++] = 0; g[k++] = 3;
    if (fancy) {
        g[k++] = 3; g[k++] = 0; g[k++] = 'a'; g[k++] = 'b'; g[k++] = 'c';        /* FEXTRA, 3 bytes */
        memcpy(g + k, "name.idx", 9); k += 9;                                      /* FNAME */
        memcpy(g + k, "a comment", 10); k += 10;                                   /* FCOMMENT */
        g[k++] = 0x12; g[k++] = 0x34;                                              /* FHCRC (not checked) */
    }
    *deflate_at = k;
    memcpy(g + k, z + 2, (size_t)zl - 6); k += (size_t)zl - 6;
    dt_put32le(g + k, dt_crc32(p, n)); k += 4;
    dt_put32le(g + k, (unsigned)n); k += 4;
    free(z);
    *gl = k;
    return g;
}

/* A call that must fail with `status`, leave the dataset zeroed, and name `name` and `phrase`. */
static void dt_expect(int st, const uvae_dataset *d, int status, const char *name, const char *phrase, const char *what) {
    const char *e = uvae_last_error();
    CHECK(st == status, "%s: status %d, want %d (%s)", what, st, status, e);
    CHECK(d->n == 0 && !d->images && !d->labels && d->channels == 0, "%s: dataset not zeroed on failure", what);
    CHECK(strstr(e, name) != NULL, "%s: error does not name the file %s: %s", what, name, e);
    CHECK(strstr(e, phrase) != NULL, "%s: error lacks \"%s\": %s", what, phrase, e);
}

enum { NI = 5, RI = 3, CI = 4, IM_LEN = 16 + NI * RI * CI, LB_LEN = 8 + NI };
static const unsigned char dt_lab[NI] = {3, 0, 9, 1, 7};
static unsigned char dt_px(int i, int k) { return (unsigned char)((i * 37 + k * 11 + (i == 0 && k == 0) * 255) & 255); }

static void dt_make_idx(unsigned char *im, unsigned char *lb) {
    dt_put32be(im, 0x803); dt_put32be(im + 4, NI); dt_put32be(im + 8, RI); dt_put32be(im + 12, CI);
    for (int i = 0; i < NI; i++)
        for (int k = 0; k < RI * CI; k++) im[16 + i * RI * CI + k] = dt_px(i, k);
    dt_put32be(lb, 0x801); dt_put32be(lb + 4, NI);
    memcpy(lb + 8, dt_lab, NI);
}

static int dt_idx_ok(const uvae_dataset *d) {
    if (d->n != NI || d->channels != 1 || d->height != RI || d->width != CI || d->n_classes != 10) return 0;
    for (int i = 0; i < NI; i++) {
        if (d->labels[i] != dt_lab[i]) return 0;
        for (int k = 0; k < RI * CI; k++)
            if (d->images[i * RI * CI + k] != dt_px(i, k)) return 0;
    }
    return 1;
}

static unsigned char dt_cpx(int r, int k) { return (unsigned char)((r * 101 + k * 7 + k / 1024) & 255); }
static void dt_make_cifar(unsigned char *buf, int nrec, int first) {
    for (int r = 0; r < nrec; r++) {
        buf[r * 3073] = (unsigned char)((first + r) % 10);
        for (int k = 0; k < 3072; k++) buf[r * 3073 + 1 + k] = dt_cpx(first + r, k);
    }
}

static void dt_idx_cases(void) {
    unsigned char im[IM_LEN + 1], lb[LB_LEN + 1], bad[IM_LEN + 8];
    uvae_dataset d;
    size_t gl = 0, gl2 = 0, at = 0, at2 = 0;
    int st;
    const char *pi = dt_path("img.idx"), *pl = dt_path("lab.idx"), *gi = dt_path("img.idx.gz"),
               *gla = dt_path("lab.idx.gz"), *pb = dt_path("bad.idx"), *pb2 = dt_path("bad2.idx");
    dt_make_idx(im, lb);
    dt_write(pi, im, IM_LEN);
    dt_write(pl, lb, LB_LEN);

    /* plain */
    st = uvae_load_idx(pi, pl, &d);
    CHECK(st == UVAE_OK, "load plain idx: %s", uvae_last_error());
    CHECK(st == UVAE_OK && dt_idx_ok(&d), "plain idx values");
    uvae_dataset_free(&d);
    CHECK(d.images == NULL && d.n == 0, "dataset_free zeroes");
    uvae_dataset_free(&d);   /* twice is fine */

    /* gzip (images with every optional header field, labels plain header); names not .gz */
    unsigned char *g = dt_gzip(im, IM_LEN, 1, &gl, &at);
    unsigned char *g2 = dt_gzip(lb, LB_LEN, 0, &gl2, &at2);
    CHECK(g && g2, "test gzip writer");
    if (!g || !g2) { free(g); free(g2); return; }
    dt_write(gi, g, gl);
    dt_write(gla, g2, gl2);
    st = uvae_load_idx(gi, gla, &d);
    CHECK(st == UVAE_OK, "load gzip idx: %s", uvae_last_error());
    CHECK(st == UVAE_OK && dt_idx_ok(&d), "gzip idx values equal the plain ones");
    uvae_dataset_free(&d);
    dt_write(pb, g, gl);                       /* gzip detected by content, not by the name */
    st = uvae_load_idx(pb, pl, &d);
    CHECK(st == UVAE_OK && dt_idx_ok(&d), "gzip content in a file named .idx: %s", uvae_last_error());
    uvae_dataset_free(&d);

    /* ---- the bad corpus ---- */
    st = uvae_load_idx(dt_path("missing-images.idx"), pl, &d);
    dt_expect(st, &d, UVAE_ERR_IO, "missing-images.idx", "cannot open", "missing file");
    CHECK(strstr(uvae_last_error(), "No such file") != NULL, "missing file: strerror: %s", uvae_last_error());
    st = uvae_load_idx(pi, dt_path("missing-labels.idx"), &d);
    dt_expect(st, &d, UVAE_ERR_IO, "missing-labels.idx", "cannot open", "missing labels file");

    dt_write(pb, im, 0);
    st = uvae_load_idx(pb, pl, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "empty file", "empty file");

    memcpy(bad, im, IM_LEN); dt_put32be(bad, 0x801);
    dt_write(pb, bad, IM_LEN);
    st = uvae_load_idx(pb, pl, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "bad magic 0x00000801 (want 0x00000803 for images)", "bad images magic");
    st = uvae_load_idx(pi, pi, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, pi, "bad magic 0x00000803 (want 0x00000801 for labels)", "bad labels magic");

    dt_write(pb, im, 10);
    st = uvae_load_idx(pb, pl, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "truncated header", "truncated images header");
    dt_write(pb, lb, 6);
    st = uvae_load_idx(pi, pb, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "truncated header", "truncated labels header");

    dt_write(pb, im, IM_LEN - 1);
    st = uvae_load_idx(pb, pl, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "truncated: header says 5 images of 3x4 (76 bytes) but the file has 75",
              "truncated image data");
    memcpy(bad, im, IM_LEN); bad[IM_LEN] = 0;
    dt_write(pb, bad, IM_LEN + 1);
    st = uvae_load_idx(pb, pl, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "trailing bytes", "image file too long");
    dt_write(pb, lb, LB_LEN - 2);
    st = uvae_load_idx(pi, pb, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "truncated: header says 5 labels", "truncated label data");

    memcpy(bad, im, IM_LEN); dt_put32be(bad + 8, 0);
    dt_write(pb, bad, IM_LEN);
    st = uvae_load_idx(pb, pl, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "0x4 is not in 1..4096", "zero rows");
    memcpy(bad, im, IM_LEN); dt_put32be(bad + 12, 5000);
    dt_write(pb, bad, IM_LEN);
    st = uvae_load_idx(pb, pl, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "3x5000 is not in 1..4096", "5000 columns");
    memcpy(bad, im, IM_LEN); dt_put32be(bad + 4, 0xffffffffu);   /* huge count: no overflow, an error */
    dt_write(pb, bad, IM_LEN);
    st = uvae_load_idx(pb, pl, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "image count 4294967295", "huge count");

    /* hostile dimensions: refused by UVAE_MAX_IDX_SIDE; a size product past 2^32 without overflow */
    memcpy(bad, im, IM_LEN); dt_put32be(bad + 8, 0xffffffffu); dt_put32be(bad + 12, 0xffffffffu);
    dt_write(pb, bad, IM_LEN);
    st = uvae_load_idx(pb, pl, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "image size 4294967295x4294967295 is not in 1..4096 (UVAE_MAX_IDX_SIDE)", "huge dims");
    memcpy(bad, im, IM_LEN); dt_put32be(bad + 4, 0x7fffffffu); dt_put32be(bad + 8, 4096); dt_put32be(bad + 12, 4096);
    dt_write(pb, bad, IM_LEN);
    st = uvae_load_idx(pb, pl, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "truncated: header says 2147483647 images of 4096x4096 (36028797002186768 bytes)",
              "count x rows x cols = 2^55");

    memcpy(bad, lb, LB_LEN); dt_put32be(bad + 4, NI - 1);
    dt_write(pb, bad, LB_LEN - 1);
    st = uvae_load_idx(pi, pb, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "4 labels but the images file has 5 images", "count mismatch");

    memcpy(bad, lb, LB_LEN); bad[8 + 2] = 12;
    dt_write(pb, bad, LB_LEN);
    st = uvae_load_idx(pi, pb, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "label 12 at record 2 is out of range 0..9", "label out of range");

    /* gzip corpus (images file) */
    memcpy(bad, g, 16); bad[1] = 0x8c;
    dt_write(pb, bad, 16);
    st = uvae_load_idx(pb, pl, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "not a gzip file", "gzip bad second magic byte");
    {
        unsigned char *c = (unsigned char *)malloc(gl);
        memcpy(c, g, gl); c[2] = 7;
        dt_write(pb, c, gl);
        st = uvae_load_idx(pb, pl, &d);
        dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "is not deflate", "gzip method 7");

        memcpy(c, g, gl); c[at] = 0x07;        /* BFINAL 1, BTYPE 3 (reserved) */
        dt_write(pb, c, gl);
        st = uvae_load_idx(pb, pl, &d);
        dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "corrupt deflate data", "corrupt deflate (reserved block type)");

        memcpy(c, g, gl); dt_put32le(c + gl - 4, IM_LEN + 1);
        dt_write(pb, c, gl);
        st = uvae_load_idx(pb, pl, &d);
        dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "size in the trailer does not match", "ISIZE too large");
        memcpy(c, g, gl); dt_put32le(c + gl - 4, IM_LEN - 1);
        dt_write(pb, c, gl);
        st = uvae_load_idx(pb, pl, &d);
        dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "size in the trailer does not match", "ISIZE too small");
        memcpy(c, g, gl); dt_put32le(c + gl - 4, 2000000000u);   /* hostile claim: refused, not allocated */
        dt_write(pb, c, gl);
        st = uvae_load_idx(pb, pl, &d);
        dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "size in the trailer does not match", "ISIZE 2e9 from a small file");
        memcpy(c, g, gl); dt_put32le(c + gl - 4, 0xfffffff0u);
        dt_write(pb, c, gl);
        st = uvae_load_idx(pb, pl, &d);
        dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "size in the trailer does not match", "ISIZE 4e9 from a small file");
        {   /* 2.2 MB of incompressible bytes claiming 2.06 GiB: refused by UVAE_MAX_DATA_BYTES (2 GiB), not allocated */
            size_t n = 2200000, hl = 0, hat = 0;
            unsigned char *big = (unsigned char *)malloc(n), *h;
            unsigned s = 12345;
            for (size_t i = 0; i < n; i++) { s = s * 1103515245u + 12345u; big[i] = (unsigned char)(s >> 23); }
            h = dt_gzip(big, n, 0, &hl, &hat);
            CHECK(h && hl > n, "incompressible gzip: %zu bytes", hl);
            if (h) {
                dt_put32le(h + hl - 4, 0x84000000u);
                dt_write(pb, h, hl);
                st = uvae_load_idx(pb, pl, &d);
                dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "above the limit of 2147483648 (UVAE_MAX_DATA_BYTES)", "ISIZE above 2 GiB");
            }
            free(big);
            free(h);
        }

        memcpy(c, g, gl); c[gl - 8] ^= 1;
        dt_write(pb, c, gl);
        st = uvae_load_idx(pb, pl, &d);
        dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "crc32", "bad crc32");

        dt_write(pb, g, 12);
        st = uvae_load_idx(pb, pl, &d);
        dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "truncated gzip", "gzip cut to 12 bytes");
        dt_write(pb, g, 20);                   /* inside the FNAME field */
        st = uvae_load_idx(pb, pl, &d);
        dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "truncated gzip", "gzip cut inside the header");
        dt_write(pb, g, gl - 3);               /* trailer cut */
        st = uvae_load_idx(pb, pl, &d);
        dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "truncated", "gzip cut in the trailer");
        dt_write(pb, g, at + (gl - at) / 2);   /* deflate data cut */
        st = uvae_load_idx(pb, pl, &d);
        dt_expect(st, &d, UVAE_ERR_FORMAT, pb, "truncated", "gzip cut in the deflate data");

        memcpy(c, g2, gl2); c[gl2 - 4] ^= 2;     /* the labels file's gzip is checked too */
        dt_write(pb2, c, gl2);
        st = uvae_load_idx(pi, pb2, &d);
        dt_expect(st, &d, UVAE_ERR_FORMAT, pb2, "size in the trailer does not match", "labels gzip ISIZE");
        free(c);
    }
    /* arguments */
    CHECK(uvae_load_idx(NULL, pl, &d) == UVAE_ERR_ARG, "NULL path");
    CHECK(uvae_load_idx(pi, pl, NULL) == UVAE_ERR_ARG, "NULL dataset");
    free(g);
    free(g2);
    remove(pi); remove(pl); remove(gi); remove(gla); remove(pb); remove(pb2);
}

static void dt_cifar_cases(void) {
    enum { R = 3073 };
    unsigned char *a = (unsigned char *)malloc(2 * R + 1), *b = (unsigned char *)malloc(3 * R);
    unsigned char *gz;
    size_t gl = 0, at = 0;
    uvae_dataset d;
    int st, ok = 1;
    const char *pa = dt_path("data_batch_a.bin"), *pb = dt_path("data_batch_b.bin.gz"), *px = dt_path("bad_batch.bin");
    const char *paths[3];
    dt_make_cifar(a, 2, 0);
    dt_make_cifar(b, 3, 2);
    dt_write(pa, a, 2 * R);
    gz = dt_gzip(b, 3 * R, 0, &gl, &at);
    dt_write(pb, gz, gl);
    paths[0] = pa; paths[1] = pb;
    st = uvae_load_cifar10(paths, 2, &d);
    CHECK(st == UVAE_OK, "cifar plain + gzip: %s", uvae_last_error());
    CHECK(d.n == 5 && d.channels == 3 && d.height == 32 && d.width == 32 && d.n_classes == 10,
          "cifar shape n %d c %d %dx%d", d.n, d.channels, d.height, d.width);
    if (st == UVAE_OK && d.n == 5)
        for (int r = 0; r < 5; r++) {
            if (d.labels[r] != r % 10) ok = 0;
            for (int k = 0; k < 3072; k++)
                if (d.images[r * 3072 + k] != dt_cpx(r, k)) ok = 0;
        }
    CHECK(ok, "cifar records concatenated in order, R/G/B planes kept");
    uvae_dataset_free(&d);

    dt_write(px, a, 2 * R + 1);
    paths[1] = px;
    st = uvae_load_cifar10(paths, 2, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, px, "6147 bytes is not a whole number of 3073-byte records", "cifar size");
    dt_write(px, a, 0);
    st = uvae_load_cifar10(paths, 2, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, px, "empty file", "cifar empty");
    a[R] = 10;
    dt_write(px, a, 2 * R);
    paths[0] = pb; paths[1] = px;
    st = uvae_load_cifar10(paths, 2, &d);
    dt_expect(st, &d, UVAE_ERR_FORMAT, px, "label 10 at record 1 is out of range 0..9", "cifar label 10");
    {   /* a gzip CIFAR file whose crc32 does not match: the error names that file */
        unsigned char *c = (unsigned char *)malloc(gl);
        memcpy(c, gz, gl); c[gl - 6] ^= 0x40;
        dt_write(px, c, gl);
        paths[0] = pa; paths[1] = px;
        st = uvae_load_cifar10(paths, 2, &d);
        dt_expect(st, &d, UVAE_ERR_FORMAT, px, "crc32 in the trailer does not match", "cifar gzip crc");
        free(c);
    }
    paths[1] = dt_path("no_such_batch.bin");
    st = uvae_load_cifar10(paths, 2, &d);
    dt_expect(st, &d, UVAE_ERR_IO, "no_such_batch.bin", "cannot open", "cifar missing file");
    CHECK(uvae_load_cifar10(paths, 0, &d) == UVAE_ERR_ARG, "cifar no files");
    free(a); free(b); free(gz);
    remove(pa); remove(pb); remove(px);
}

static void dt_batch_shuffle(void) {
    unsigned char im[IM_LEN], lb[LB_LEN];
    uvae_dataset d;
    const char *pi = dt_path("bimg.idx"), *pl = dt_path("blab.idx");
    dt_make_idx(im, lb);
    dt_write(pi, im, IM_LEN);
    dt_write(pl, lb, LB_LEN);
    if (uvae_load_idx(pi, pl, &d) != UVAE_OK) { CHECK(0, "batch: load: %s", uvae_last_error()); return; }
    {
        int idx[3] = {4, 0, 2}, bad_idx[3] = {4, 5, 0}, ok = 1;
        uvae_tensor *x = uvae_tensor_new(4, (int[]){3, 1, RI, CI}), *y = uvae_tensor_new(1, (int[]){3});
        uvae_tensor *xw = uvae_tensor_new(4, (int[]){3, 1, CI, RI});
        CHECK(uvae_dataset_batch(&d, idx, 3, x, y) == UVAE_OK, "batch: %s", uvae_last_error());
        for (int b = 0; b < 3; b++) {
            if (y->data[b] != (float)dt_lab[idx[b]]) ok = 0;
            for (int k = 0; k < RI * CI; k++)
                if (x->data[b * RI * CI + k] != (float)dt_px(idx[b], k) / 255.0f) ok = 0;
        }
        CHECK(ok, "batch: x = pixel/255, y = label");
        CHECK(x->data[RI * CI] == 1.0f && y->data[1] == 3.0f, "batch: pixel 255 -> 1.0, label 3");
        CHECK(uvae_dataset_batch(&d, bad_idx, 3, x, y) == UVAE_ERR_ARG &&
              strstr(uvae_last_error(), "index 5 at position 1") != NULL, "batch: index out of range: %s", uvae_last_error());
        CHECK(uvae_dataset_batch(&d, idx, 3, xw, y) == UVAE_ERR_ARG, "batch: wrong x shape");
        CHECK(uvae_dataset_batch(&d, idx, 2, x, y) == UVAE_ERR_ARG, "batch: B differs from the tensors");
        uvae_tensor_free(x); uvae_tensor_free(y); uvae_tensor_free(xw);
    }
    uvae_dataset_free(&d);
    remove(pi); remove(pl);
    {
        enum { N = 1000 };
        int o1[N], o2[N], seen[N] = {0}, perm = 1, same = 1, fixed = 0, one = 7;
        long first_sum = 0;
        uvae_rng r1, r2;
        uvae_rng_seed(&r1, 42);
        uvae_rng_seed(&r2, 42);
        uvae_shuffle(o1, N, &r1);
        uvae_shuffle(o2, N, &r2);
        for (int i = 0; i < N; i++) {
            if (o1[i] < 0 || o1[i] >= N || seen[o1[i]]++) perm = 0;
            if (o1[i] != o2[i]) same = 0;
            if (o1[i] == i) fixed++;
        }
        CHECK(perm, "shuffle: a permutation of 0..n-1");
        CHECK(same, "shuffle: same seed, same order");
        CHECK(fixed < 20, "shuffle: %d fixed points of 1000 (expect ~1)", fixed);
        uvae_shuffle(o2, N, &r2);
        CHECK(memcmp(o1, o2, sizeof o1) != 0, "shuffle: the next call gives another order");
        uvae_shuffle(&one, 1, &r1);
        CHECK(one == 0, "shuffle: n 1");
        /* uniformity: position 0 of a 4-permutation over many draws */
        {
            int cnt[4] = {0}, o[4];
            for (int t = 0; t < 4000; t++) { uvae_shuffle(o, 4, &r1); cnt[o[0]]++; first_sum += o[0]; }
            CHECK(cnt[0] > 850 && cnt[1] > 850 && cnt[2] > 850 && cnt[3] > 850,
                  "shuffle: first element counts %d %d %d %d (want ~1000 each)", cnt[0], cnt[1], cnt[2], cnt[3]);
        }
        (void)first_sum;
    }
}

static void dt_counts(const uvae_dataset *d, int *c) {
    for (int k = 0; k < 10; k++) c[k] = 0;
    for (int i = 0; i < d->n; i++) c[d->labels[i]]++;
}

static void dt_check_counts(const uvae_dataset *d, const int *want, const char *what) {
    int c[10], ok = 1;
    dt_counts(d, c);
    for (int k = 0; k < 10; k++) ok &= c[k] == want[k];
    CHECK(ok, "%s label counts %d %d %d %d %d %d %d %d %d %d", what, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]);
}

static void dt_real(void) {
    FILE *f = fopen(UVT_DATA_DIR "/mnist/train-images-idx3-ubyte.gz", "rb");
    uvae_dataset d;
    int st;
    if (!f) {
        printf("SKIP data: " UVT_DATA_DIR " not found\n");
    } else {
        static const int tr[10] = {5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949};
        static const int te[10] = {980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009};
        static const int cf[10] = {981, 1008, 996, 996, 1021, 977, 1012, 984, 972, 1053};
        const char *c1[1] = {UVT_DATA_DIR "/cifar10/cifar-10-batches-bin/data_batch_1.bin.gz"};
        const char *c2[1] = {UVT_DATA_DIR "/cifar10/cifar-10-batches-bin/test_batch.bin.gz"};
        fclose(f);
        st = uvae_load_idx(UVT_DATA_DIR "/mnist/train-images-idx3-ubyte.gz", UVT_DATA_DIR "/mnist/train-labels-idx1-ubyte.gz", &d);
        CHECK(st == UVAE_OK, "mnist train: %s", uvae_last_error());
        CHECK(d.n == 60000 && d.height == 28 && d.width == 28 && d.channels == 1, "mnist train %d %dx%d", d.n, d.height, d.width);
        if (st == UVAE_OK) {
            long s = 0;
            unsigned char mx = 0;
            for (size_t i = 0; i < (size_t)d.n * 784; i++) { s += d.images[i]; if (d.images[i] > mx) mx = d.images[i]; }
            dt_check_counts(&d, tr, "mnist train");
            printf("data: mnist train %d images, mean pixel %.2f, max %d\n", d.n, (double)s / ((double)d.n * 784), mx);
            CHECK(mx == 255, "mnist max pixel %d", mx);
        }
        uvae_dataset_free(&d);
        st = uvae_load_idx(UVT_DATA_DIR "/mnist/t10k-images-idx3-ubyte.gz", UVT_DATA_DIR "/mnist/t10k-labels-idx1-ubyte.gz", &d);
        CHECK(st == UVAE_OK, "mnist test: %s", uvae_last_error());
        CHECK(d.n == 10000 && d.height == 28 && d.width == 28, "mnist test %d %dx%d", d.n, d.height, d.width);
        if (st == UVAE_OK) dt_check_counts(&d, te, "mnist test");
        uvae_dataset_free(&d);
        st = uvae_load_idx(UVT_DATA_DIR "/mnist/train-images-idx3-ubyte.gz", UVT_DATA_DIR "/mnist/t10k-labels-idx1-ubyte.gz", &d);
        dt_expect(st, &d, UVAE_ERR_FORMAT, "t10k-labels-idx1-ubyte.gz", "10000 labels but the images file has 60000 images",
                  "mnist train images with test labels");

        st = uvae_load_cifar10(c1, 1, &d);
        CHECK(st == UVAE_OK, "cifar data_batch_1: %s", uvae_last_error());
        CHECK(d.n == 10000 && d.channels == 3 && d.height == 32, "cifar train n %d", d.n);
        if (st == UVAE_OK) dt_check_counts(&d, cf, "cifar data_batch_1");
        uvae_dataset_free(&d);
        st = uvae_load_cifar10(c2, 1, &d);
        CHECK(st == UVAE_OK && d.n == 2000, "cifar test_batch: n %d (%s)", d.n, st ? uvae_last_error() : "ok");
        uvae_dataset_free(&d);
        {
            const char *both[2] = {c1[0], c2[0]};
            st = uvae_load_cifar10(both, 2, &d);
            CHECK(st == UVAE_OK && d.n == 12000, "cifar both files: n %d", d.n);
            uvae_dataset_free(&d);
        }
        printf("data: mnist 60000+10000, cifar10 10000+2000 loaded\n");
    }
#define DT_FASHION "/usr/share/datasets/fashion-mnist/"
    f = fopen(DT_FASHION "train-images-idx3-ubyte.gz", "rb");
    if (!f) {
        printf("SKIP data: fashion-mnist (" DT_FASHION ") not found\n");
    } else {
        int c[10], ok = 1;
        fclose(f);
        st = uvae_load_idx(DT_FASHION "train-images-idx3-ubyte.gz", DT_FASHION "train-labels-idx1-ubyte.gz", &d);
        CHECK(st == UVAE_OK, "fashion-mnist: %s", uvae_last_error());
        CHECK(d.n == 60000 && d.height == 28 && d.width == 28, "fashion-mnist n %d", d.n);
        if (st == UVAE_OK) {
            dt_counts(&d, c);
            for (int k = 0; k < 10; k++) ok &= c[k] == 6000;
            CHECK(ok, "fashion-mnist: 6000 per class");
            printf("data: fashion-mnist train 60000 loaded\n");
        }
        uvae_dataset_free(&d);
    }
}

void suite_data(void) {
    int local;
    snprintf(dt_dir, sizeof dt_dir, "/tmp/uvt_data_%lx_%lx", (unsigned long)time(NULL),
             (unsigned long)((size_t)&local >> 4));
    dt_idx_cases();
    dt_cifar_cases();
    dt_batch_shuffle();
    dt_real();
}
