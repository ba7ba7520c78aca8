/* fuzz/fuzz.h — shared by the libFuzzer harnesses (fuzz/fuzz_*.c) and the seed-corpus generator
   (fuzz/make_corpus.c). Each of those files is its own program and compiles the implementation.

   Input layout of the two-file harnesses (idx, cifar, pets_image):
       byte 0        flags (meaning per harness)
       bytes 1..4    n1, little-endian: the length of the first part (clamped to what is left)
       then          n1 bytes of the first file, then the rest: the second file
   Shorter inputs give empty parts. The harnesses hand the parts to the library's in-memory
   readers (uvae__*_from with a uvae__mem), which behave exactly as the path readers do on files
   with these contents, and name the same made-up paths in their messages. */
#ifndef UVAE_FUZZ_H
#define UVAE_FUZZ_H
#define UNETVAE_IMPLEMENTATION
#include "../unetvae.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* UBSan stops at the first report, except the known stb_image 2.27 one in fuzz/ubsan.supp (the
   Makefile passes its absolute path and builds only that check as recoverable). */
#ifndef FZ_UBSAN_SUPP
#define FZ_UBSAN_SUPP "fuzz/ubsan.supp"
#endif
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1:suppressions=" FZ_UBSAN_SUPP; }

typedef struct fz_parts { unsigned flags; uvae__mem a, b; } fz_parts;

static inline fz_parts fz_split(const uint8_t *data, size_t size) {
    fz_parts p;
    size_t n1 = 0;
    memset(&p, 0, sizeof p);
    if (size >= 1) p.flags = data[0];
    if (size >= 5) {
        n1 = (size_t)data[1] | ((size_t)data[2] << 8) | ((size_t)data[3] << 16) | ((size_t)data[4] << 24);
        data += 5;
        size -= 5;
        if (n1 > size) n1 = size;
        p.a.p = data;
        p.a.n = n1;
        p.b.p = data + n1;
        p.b.n = size - n1;
    }
    return p;
}

/* gzip member of p[0..n): 10-byte header, deflate data, crc32, isize; malloc'd, NULL on failure.
   compress != 0: stb's zlib writer (slow under the fuzzer's instrumentation; the corpus generator
   uses it); 0: stored blocks. The harnesses use stored blocks, so that the decompressed contents,
   not only the gzip container, get fuzzed through the real gunzip path at full speed. */
static inline unsigned char *fz_gzip(const unsigned char *p, size_t n, size_t *gl, int compress) {
    int zl = 0;
    unsigned char *z = NULL, *g;
    size_t k = 0, body;
    unsigned crc;
    *gl = 0;
    if (n > (size_t)1 << 30) return NULL;
    if (compress) {
        z = stbi_zlib_compress((unsigned char *)p, (int)n, &zl, 5);
        if (!z || zl < 6) { free(z); return NULL; }
        body = (size_t)zl - 6;
    } else {
        body = n + 5 * (n / 65535 + 1);
    }
    if (!(g = (unsigned char *)malloc(body + 18))) { free(z); return NULL; }
    g[k++] = 0x1f; g[k++] = 0x8b; g[k++] = 8; g[k++] = 0;
    g[k++] = 0; g[k++] = 0; g[k++] = 0; g[k++] = 0; g[k++] = 0; g[k++] = 3;
    if (compress) {
        memcpy(g + k, z + 2, body);
        k += body;
        free(z);
    } else {
        size_t at = 0;
        do {   /* stored blocks: BFINAL/BTYPE 00 byte, LEN, NLEN (little-endian), the bytes */
            size_t len = n - at > 65535 ? 65535 : n - at;
            g[k++] = (unsigned char)(at + len == n);
            g[k++] = (unsigned char)len; g[k++] = (unsigned char)(len >> 8);
            g[k++] = (unsigned char)~len; g[k++] = (unsigned char)(~len >> 8);
            if (len) memcpy(g + k, p + at, len);
            k += len;
            at += len;
        } while (at < n);
    }
    crc = uvae__ds_crc32(p, n);
    for (int i = 0; i < 4; i++) g[k++] = (unsigned char)(crc >> (8 * i));
    for (int i = 0; i < 4; i++) g[k++] = (unsigned char)((unsigned)n >> (8 * i));
    *gl = k;
    return g;
}

/* A failure must carry a real status and a message naming one of the given files. */
static inline void fz_check_failure(int st, const char *name1, const char *name2) {
    const char *e = uvae_last_error();
    if (st >= 0 || st < UVAE_ERR_CUDA) {
        fprintf(stderr, "fuzz: status %d is not an error status (%s)\n", st, e);
        abort();
    }
    if (!strstr(e, name1) && !(name2 && strstr(e, name2))) {
        fprintf(stderr, "fuzz: the error does not name the file %s%s%s: %s\n", name1, name2 ? " or " : "", name2 ? name2 : "", e);
        abort();
    }
}

/* The model the checkpoint harness loads into, and the corpus generator saves: conv-like weights,
   a bias, a batch-norm buffer pair and a dense head. */
static inline int fz_model(uvae_params *P, uint64_t seed) {
    uvae_params_init(P);
    uvae_params_add(P, 1, UVAE_INIT_UNIFORM, 0.5f, 4, (int[]){2, 1, 3, 3}, "enc.w");
    uvae_params_add(P, 1, UVAE_INIT_UNIFORM, 0.5f, 1, (int[]){2}, "enc.b");
    uvae_params_add(P, 0, UVAE_INIT_ZERO, 0, 1, (int[]){2}, "bn.running_mean");
    uvae_params_add(P, 0, UVAE_INIT_ONE, 0, 1, (int[]){2}, "bn.running_var");
    uvae_params_add(P, 1, UVAE_INIT_NORMAL, 0.1f, 2, (int[]){3, 2}, "head.w");
    return uvae_params_alloc(P, seed);
}
#endif
