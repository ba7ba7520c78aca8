/* tests/test_hostile.c — the safetensors reader's limits against hostile files ([ckpt]:
   UVAE_MAX_TENSOR_BYTES, UVAE_MAX_ST_TENSORS, UVAE_MAX_ST_HEADER and the header length against the
   file size), and regressions from fuzzing (fuzz/fuzz_ckpt.c). Every file is generated here under
   $TMPDIR (default /tmp) and removed; each must fail with UVAE_ERR_FORMAT and an error naming the
   file and the specific problem, leaving the uvae_st_file zeroed. */
#include "test.h"
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>

static char hs_path[512];

/* 8-byte little-endian `len`, then json (strlen), then `data` zero bytes */
static int hs_write(uint64_t len, const char *json, size_t jn, size_t data) {
    FILE *fp = fopen(hs_path, "wb");
    unsigned char len8[8];
    int ok = 1;
    if (!fp) return 0;
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(len >> (8 * i));
    ok &= fwrite(len8, 1, 8, fp) == 8;
    ok &= fwrite(json, 1, jn, fp) == jn;
    for (size_t i = 0; i < data; i++) ok &= fputc(0, fp) != EOF;
    return (fclose(fp) == 0) & ok;
}

static void hs_expect(const char *label, const char *what) {
    uvae_st_file f;
    int st;
    memset(&f, 0x55, sizeof f);
    st = uvae_st_read(hs_path, &f);
    CHECK(st == UVAE_ERR_FORMAT && strstr(uvae_last_error(), hs_path) && strstr(uvae_last_error(), what) &&
          !f.t && !f.buf && f.n == 0 && f.n_meta == 0,
          "%s: status %d, error \"%s\" (want UVAE_ERR_FORMAT, the path and \"%s\")", label, st, uvae_last_error(), what);
    if (st == UVAE_OK) uvae_st_free(&f);
}

static void hs_case(const char *label, const char *json, size_t data, const char *what) {
    CHECK(hs_write(strlen(json), json, strlen(json), data), "%s: cannot write %s", label, hs_path);
    hs_expect(label, what);
}

void suite_hostile(void) {
    const char *tmp = getenv("TMPDIR");
    char json[512];
    snprintf(hs_path, sizeof hs_path, "%s/uvae_hostile.%lx.safetensors", tmp && *tmp ? tmp : "/tmp", (unsigned long)time(NULL));

    /* a tensor above UVAE_MAX_TENSOR_BYTES (2 GiB): refused from the header, nothing allocated */
    hs_case("4 GiB tensor", "{\"big\":{\"dtype\":\"F32\",\"shape\":[1073741824],\"data_offsets\":[0,4294967296]}}", 8,
            "tensor 'big': shape [1073741824] F32 is 4294967296 bytes, above the limit of 2147483648 (UVAE_MAX_TENSOR_BYTES)");
    hs_case("2 GiB + 4 bytes tensor", "{\"w\":{\"dtype\":\"F32\",\"shape\":[65536,8193],\"data_offsets\":[0,4]}}", 4,
            "above the limit of 2147483648 (UVAE_MAX_TENSOR_BYTES)");
    /* data_offsets that would wrap, and an end past the file, with a small shape */
    hs_case("offsets near 2^63", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[9223372036854775804,9223372036854775807]}}", 4,
            "do not match shape [1]");
    hs_case("end past the file", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
            "go past the end of the data section (4 bytes)");

    /* the header length against the file size and the header limit */
    snprintf(json, sizeof json, "{}");
    CHECK(hs_write(3, json, 2, 0), "write");
    hs_expect("header length 1 byte past the file", "truncated: header says 3 bytes of JSON but the file has 2");
    CHECK(hs_write(((uint64_t)1 << 32) + 2, json, 2, 0), "write");
    hs_expect("header length 2^32 + 2", "truncated: header says 4294967298 bytes");

    {   /* UVAE_MAX_ST_TENSORS + 1 scalar tensors: refused at the first one too many */
        size_t cap = (size_t)(UVAE_MAX_ST_TENSORS + 1) * 96 + 64, k = 0;   /* an entry is < 80 bytes */
        char *h = (char *)malloc(cap);
        CHECK(h != NULL, "malloc");
        if (h) {
            k += (size_t)snprintf(h + k, cap - k, "{");
            for (int i = 0; i <= UVAE_MAX_ST_TENSORS; i++)
                k += (size_t)snprintf(h + k, cap - k, "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[%d,%d]}",
                                      i ? "," : "", i, 4 * i, 4 * i + 4);
            k += (size_t)snprintf(h + k, cap - k, "}");
            CHECK(hs_write(k, h, k, (size_t)(UVAE_MAX_ST_TENSORS + 1) * 4), "write");
            snprintf(json, sizeof json, "more than %d tensors (UVAE_MAX_ST_TENSORS)", (int)UVAE_MAX_ST_TENSORS);
            hs_expect("too many tensors", json);
            free(h);
        }
    }
    remove(hs_path);
}
