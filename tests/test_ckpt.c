/* tests/test_ckpt.c — the safetensors reader and writer, uvae_save / uvae_load.
   Every file is generated here, under $TMPDIR (default /tmp) with a per-run prefix, and removed at
   the end. Bad files are checked to fail with the right status and an error that names the file
   and the specific problem. */
#include "test.h"
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>

static char tmp_prefix[256];

/* "<TMPDIR>/uvae_ckpt_test.<run tag>.<name>" into buf */
static const char *tpath(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s.%s", tmp_prefix, name);
    return buf;
}

static int exists(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (fp) fclose(fp);
    return fp != NULL;
}

static int write_bytes(const char *path, const void *b, size_t n) {
    FILE *fp = fopen(path, "wb");
    int ok;
    if (!fp) return 0;
    ok = fwrite(b, 1, n, fp) == n;
    return fclose(fp) == 0 && ok;
}

/* 8-byte little-endian N (given), then the JSON text, then data_bytes bytes of 0x3f */
static int write_st_n(const char *path, uint64_t N, const char *json, size_t data_bytes) {
    size_t jl = strlen(json), n = 8 + jl + data_bytes;
    unsigned char *b = (unsigned char *)malloc(n);
    int ok;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(N >> (8 * i));
    memcpy(b + 8, json, jl);
    memset(b + 8 + jl, 0x3f, data_bytes);
    ok = write_bytes(path, b, n);
    free(b);
    return ok;
}
static int write_st(const char *path, const char *json, size_t data_bytes) {
    return write_st_n(path, strlen(json), json, data_bytes);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    unsigned char *b = NULL;
    long sz;
    *n = 0;
    if (!fp) return NULL;
    if (fseek(fp, 0, SEEK_END) == 0 && (sz = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0) {
        b = (unsigned char *)malloc((size_t)sz + 1);
        if (b && fread(b, 1, (size_t)sz, fp) == (size_t)sz) *n = (size_t)sz;
        else { free(b); b = NULL; }
    }
    fclose(fp);
    return b;
}

static int zeroed(const uvae_st_file *f) {
    return f->t == NULL && f->n == 0 && f->buf == NULL && f->buf_size == 0 && f->n_meta == 0;
}

/* uvae_st_read(path) must fail with status and an error naming path and containing what. */
static void expect_bad(const char *label, const char *path, int status, const char *what) {
    uvae_st_file f;
    int st;
    memset(&f, 0x55, sizeof f);
    st = uvae_st_read(path, &f);
    CHECK(st == status && strstr(uvae_last_error(), path) && strstr(uvae_last_error(), what) && zeroed(&f),
          "%s: status %d (want %d), error \"%s\" (want the path and \"%s\"), struct zeroed %d",
          label, st, status, uvae_last_error(), what, zeroed(&f));
    if (st == UVAE_OK) uvae_st_free(&f);
}

/* One generated bad file: the JSON header (N = its length) and the data section's size. */
typedef struct bad_case { const char *label, *json; size_t data; const char *what; } bad_case;

static void test_bad_files(void) {
    char p[512];
    static const bad_case cases[] = {
        {"truncated JSON", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_off", 0, "malformed header"},
        {"non-JSON", "hello, world", 0, "must be a JSON object"},
        {"JSON array, not an object", "[1,2,3]", 0, "must be a JSON object"},
        {"JSON string, not an object", "\"abc\"", 0, "must be a JSON object"},
        {"empty header", "", 0, "found the end of the header"},
        {"dtype F16", "{\"x\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "unsupported dtype F16 for tensor 'x'"},
        {"dtype not a string", "{\"x\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "expected a string for \"dtype\""},
        {"shape/offset mismatch", "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 12,
         "tensor 'a.weight': data_offsets [0,12] do not match shape [2,2] F32 (16 bytes)"},
        {"reversed offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "data_offsets [8,4] do not match"},
        {"offsets past the end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
         "data_offsets [0,16] go past the end of the data section (8 bytes)"},
        {"overlapping tensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap"},
        {"hole between tensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "hole in the data section: bytes [4,8)"},
        {"hole at the start", "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "hole in the data section: bytes [0,4)"},
        {"trailing bytes after the data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12,
         "the data section has 12 bytes but its tensors cover only 4"},
        {"data without tensors", "{}", 4, "cover only 0"},
        {"duplicate names", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                            "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate tensor name 'a'"},
        {"negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,0]}}", 0, "tensor 'a': negative dimension -3"},
        {"ndim 5", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "shape has 5 dimensions, at most 4"},
        {"dim too large", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296],\"data_offsets\":[0,4]}}", 4, "dimension 4294967296 is too large"},
        {"shape overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2147483647,2147483647,2147483647,2147483647],\"data_offsets\":[0,4]}}", 4,
         "is too large"},
        {"float in shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8,
         "expected a dimension (integer) at header byte 30, found a fraction or exponent (in tensor 'a')"},
        {"exponent in offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8e0]}}", 8, "found a fraction or exponent"},
        {"true as a dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[true],\"data_offsets\":[0,4]}}", 4, "expected a dimension (integer)"},
        {"null shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":null,\"data_offsets\":[0,4]}}", 4, "expected an array for \"shape\""},
        {"leading zero", "{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4, "leading zero"},
        {"huge number", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999]}}", 4, "number too large"},
        {"negative offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, "negative data_offsets"},
        {"three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, "']' after the two data_offsets"},
        {"unknown key in a tensor", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"foo\":1}}", 4,
         "tensor 'a': unknown key \"foo\""},
        {"missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor 'a': missing \"data_offsets\""},
        {"missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'a': missing \"dtype\""},
        {"duplicate key in a tensor", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "duplicate key \"shape\""},
        {"tensor not an object", "{\"a\":[1]}", 0, "expected an object for the tensor"},
        {"empty tensor name", "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "empty tensor name"},
        {"tensor name too long", "{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":"
                                 "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "is 100 bytes, at most 95"},
        {"metadata value not a string", "{\"__metadata__\":{\"step\":5}}", 0, "metadata value for 'step' must be a string"},
        {"metadata not an object", "{\"__metadata__\":[\"a\"]}", 0, "expected an object for \"__metadata__\""},
        {"duplicate metadata key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate metadata key 'k'"},
        {"duplicate __metadata__", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate \"__metadata__\""},
        {"metadata value too long", "{\"__metadata__\":{\"k\":\"" /* 300 x's */
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}",
         0, "metadata value for 'k' is 300 bytes, at most 255"},
        {"garbage after the JSON object", "{} x", 0, "unexpected data after the JSON object at header byte 3"},
        {"two JSON objects", "{}{}", 0, "unexpected data after the JSON object"},
        {"missing comma", "{\"a\":{\"dtype\":\"F32\" \"shape\":[1],\"data_offsets\":[0,4]}}", 4, "expected ',' or '}'"},
        {"trailing comma", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}", 4, "expected a tensor name"},
        {"single quotes", "{'a':1}", 0, "found '''"},
        {"invalid escape", "{\"a\\q\":{}}", 0, "invalid escape \\q"},
        {"lone surrogate", "{\"a\\udc00\":{}}", 0, "unpaired surrogate"},
        {"\\u0000 in a name", "{\"a\\u0000b\":{}}", 0, "\\u0000"},
        {"raw control character", "{\"a\tb\":{}}", 0, "raw control character 0x09"},
        {"unterminated string", "{\"abc", 0, "unterminated string"},
        {"invalid UTF-8", "{\"a\xff\":{}}", 0, "not valid UTF-8"},
        {"overlong UTF-8", "{\"a\xc0\xaf\":{}}", 0, "not valid UTF-8"},
    };
    char json[4096];
    /* the empty file, a 7-byte file, lengths that do not fit the file */
    tpath(p, sizeof p, "empty");
    write_bytes(p, "", 0);
    expect_bad("empty file", p, UVAE_ERR_FORMAT, "empty file");
    remove(p);
    tpath(p, sizeof p, "seven");
    write_bytes(p, "\x10\0\0\0\0\0\0", 7);
    expect_bad("7-byte file", p, UVAE_ERR_FORMAT, "file is only 7 bytes");
    remove(p);
    tpath(p, sizeof p, "longhdr");
    write_st_n(p, 512, "{}", 90);    /* 100 bytes in all */
    expect_bad("header length past the end", p, UVAE_ERR_FORMAT, "truncated: header says 512 bytes of JSON but the file has 92");
    write_st_n(p, (uint64_t)1 << 63, "{}", 0);
    expect_bad("header length 2^63", p, UVAE_ERR_FORMAT, "truncated: header says 9223372036854775808 bytes");
    write_st_n(p, UINT64_MAX, "{}", 0);
    expect_bad("header length 2^64-1", p, UVAE_ERR_FORMAT, "truncated: header says 18446744073709551615 bytes");
    remove(p);
    {   /* a header length over the 100 MB limit, in a (sparse) file big enough to hold it */
        FILE *fp;
        tpath(p, sizeof p, "bighdr");
        fp = fopen(p, "wb");
        if (fp) {
            unsigned char len8[8] = {0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0};   /* 100000001 */
            fwrite(len8, 1, 8, fp);
            fseek(fp, 100000020L, SEEK_SET);
            fputc(0, fp);
            fclose(fp);
            expect_bad("header over 100 MB", p, UVAE_ERR_FORMAT, "header of 100000001 bytes exceeds the limit");
            remove(p);
        }
    }
    tpath(p, sizeof p, "bad");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_st(p, cases[i].json, cases[i].data);
        expect_bad(cases[i].label, p, UVAE_ERR_FORMAT, cases[i].what);
    }
    {   /* 33 metadata entries */
        size_t k = (size_t)snprintf(json, sizeof json, "{\"__metadata__\":{");
        for (int i = 0; i < 33; i++) k += (size_t)snprintf(json + k, sizeof json - k, "%s\"k%d\":\"v\"", i ? "," : "", i);
        snprintf(json + k, sizeof json - k, "}}");
        write_st(p, json, 0);
        expect_bad("33 metadata entries", p, UVAE_ERR_FORMAT, "more than 32 metadata entries");
    }
    remove(p);
    tpath(p, sizeof p, "does-not-exist");
    expect_bad("missing file", p, UVAE_ERR_IO, "cannot open");
    {   /* a directory is no file (fopen may succeed on it; reading then fails) */
        uvae_st_file f;
        const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        int st = uvae_st_read(dir, &f);
        CHECK(st != UVAE_OK && strstr(uvae_last_error(), dir) && zeroed(&f), "reading a directory fails: %d %s", st, uvae_last_error());
    }
}

/* Cut a small valid file at every length: each prefix must be refused, cleanly. */
static void test_truncations(void) {
    char p[512], q[512];
    float a[3] = {1, 2, 3}, b[2] = {4, 5};
    uvae_st_tensor t[2];
    const char *kv[2] = {"k", "v"};
    unsigned char *bytes;
    size_t n;
    int all = 1, named = 1, format = 1;
    memset(t, 0, sizeof t);
    strcpy(t[0].name, "a"); t[0].ndim = 1; t[0].shape[0] = 3; t[0].size = 3; t[0].data = a;
    strcpy(t[1].name, "b"); t[1].ndim = 2; t[1].shape[0] = 1; t[1].shape[1] = 2; t[1].size = 2; t[1].data = b;
    tpath(p, sizeof p, "full");
    tpath(q, sizeof q, "cut");
    CHECK(uvae_st_write(p, t, 2, kv, 1) == UVAE_OK, "write the file to cut: %s", uvae_last_error());
    bytes = slurp(p, &n);
    CHECK(bytes && n > 8, "read back %zu bytes", n);
    for (size_t cut = 0; bytes && cut < n; cut++) {
        uvae_st_file f;
        int st;
        write_bytes(q, bytes, cut);
        st = uvae_st_read(q, &f);
        if (st == UVAE_OK) { all = 0; uvae_st_free(&f); continue; }
        if (st != UVAE_ERR_FORMAT) format = 0;
        if (!strstr(uvae_last_error(), q) || !zeroed(&f)) named = 0;
    }
    CHECK(all, "every truncation of a %zu-byte file is refused", n);
    CHECK(format, "every truncation fails with UVAE_ERR_FORMAT");
    CHECK(named, "every truncation error names the file and leaves nothing to free");
    if (bytes) {   /* and a flipped byte in the length word / the header never crashes */
        int survived = 1;
        for (size_t i = 0; i < n - 20; i++) {
            uvae_st_file f;
            unsigned char keep = bytes[i];
            bytes[i] ^= 0x5a;
            write_bytes(q, bytes, n);
            if (uvae_st_read(q, &f) == UVAE_OK) uvae_st_free(&f);
            else if (!zeroed(&f)) survived = 0;
            bytes[i] = keep;
        }
        CHECK(survived, "single corrupted bytes are handled");
    }
    free(bytes);
    remove(p);
    remove(q);
}

static void test_round_trip(void) {
    char p[512], tmp[600];
    float scalar = -0.0f, v[5], big[2 * 3 * 1 * 2], nan_inf[3];
    uvae_st_tensor t[5];
    uvae_st_file f;
    const char *kv[] = {
        "quote\"back\\slash", "line1\nline2\ttab\001ctl",
        "unicode", "caf\xc3\xa9 \xf0\x9f\x98\x80",
        "empty", "",
        "config", "{\"width\": 4, \"depth\": [1,2]}",
    };
    unsigned char *bytes;
    size_t n;
    int st;
    for (int i = 0; i < 5; i++) v[i] = (float)i * 0.1f - 0.2f;
    for (int i = 0; i < 12; i++) big[i] = (float)(i * i) / 7.0f - 3.0f;
    nan_inf[0] = NAN; nan_inf[1] = INFINITY; nan_inf[2] = 1e-45f;   /* a denormal */
    memset(t, 0, sizeof t);
    strcpy(t[0].name, "scalar"); t[0].ndim = 0; t[0].size = 1; t[0].data = &scalar;
    strcpy(t[1].name, "vec \"quoted\" \\ tab\t \xc3\xa9"); t[1].ndim = 1; t[1].shape[0] = 5; t[1].size = 5; t[1].data = v;
    strcpy(t[2].name, "four.d"); t[2].ndim = 4; t[2].shape[0] = 2; t[2].shape[1] = 3; t[2].shape[2] = 1; t[2].shape[3] = 2;
    t[2].size = 12; t[2].data = big;
    strcpy(t[3].name, "empty"); t[3].ndim = 2; t[3].shape[0] = 0; t[3].shape[1] = 7; t[3].size = 0; t[3].data = NULL;
    strcpy(t[4].name, "special"); t[4].ndim = 1; t[4].shape[0] = 3; t[4].size = 3; t[4].data = nan_inf;
    tpath(p, sizeof p, "rt.safetensors");
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    st = uvae_st_write(p, t, 5, kv, 4);
    CHECK(st == UVAE_OK, "uvae_st_write: %s", uvae_last_error());
    CHECK(!exists(tmp), "no temp file left after a write");
    bytes = slurp(p, &n);
    if (bytes) {
        uint64_t N = 0;
        for (int i = 7; i >= 0; i--) N = (N << 8) | bytes[i];
        CHECK((8 + N) % 8 == 0 && bytes[8] == '{' && 8 + N + 4 * (1 + 5 + 12 + 0 + 3) == n,
              "layout: N %llu padded to 8, data follows, %zu bytes", (unsigned long long)N, n);
        CHECK(N >= 16 && memcmp(bytes + 8, "{\"__metadata__\":", 16) == 0, "metadata first, like Python's safetensors");
        free(bytes);
    }
    st = uvae_st_read(p, &f);
    CHECK(st == UVAE_OK, "uvae_st_read of our own file: %s", uvae_last_error());
    if (st == UVAE_OK) {
        CHECK(f.n == 5 && f.n_meta == 4, "5 tensors and 4 metadata entries: %d %d", f.n, f.n_meta);
        for (int i = 0; i < 5; i++) {
            const uvae_st_tensor *r = uvae_st_find(&f, t[i].name);
            int same = r && r->ndim == t[i].ndim && r->size == t[i].size;
            for (int d = 0; same && d < t[i].ndim; d++) same = r->shape[d] == t[i].shape[d];
            if (same && t[i].size) same = memcmp(r->data, t[i].data, t[i].size * sizeof(float)) == 0;
            CHECK(same, "tensor '%s' round-trips bit for bit", t[i].name);
            CHECK(r && ((uintptr_t)r->data % sizeof(float)) == 0, "tensor '%s' data aligned", t[i].name);
        }
        CHECK(f.t[0].ndim == 0 && f.t[0].size == 1 && strcmp(f.t[0].name, "scalar") == 0, "file order kept; scalar has size 1");
        for (int i = 0; i < 4; i++) {
            const char *m = uvae_st_meta(&f, kv[2 * i]);
            CHECK(m && strcmp(m, kv[2 * i + 1]) == 0, "metadata '%s' round-trips: '%s'", kv[2 * i], m ? m : "(null)");
        }
        CHECK(uvae_st_meta(&f, "nope") == NULL && uvae_st_find(&f, "nope") == NULL, "absent names give NULL");
        CHECK(f.buf_size == 4 * 21, "buf_size is the data section: %zu", f.buf_size);
        uvae_st_free(&f);
        CHECK(zeroed(&f), "uvae_st_free zeroes");
        uvae_st_free(&f);   /* twice is harmless */
    }
    {   /* nothing at all: "{}" */
        st = uvae_st_write(p, NULL, 0, NULL, 0);
        CHECK(st == UVAE_OK && uvae_st_read(p, &f) == UVAE_OK && f.n == 0 && f.n_meta == 0, "empty file round trip: %s", uvae_last_error());
        uvae_st_free(&f);
    }
    {   /* the writer refuses what the reader would refuse, and then leaves the old file alone */
        uvae_st_tensor d[2];
        const char *dup_kv[] = {"k", "1", "k", "2"};
        const char *long_kv[2];
        char longval[300];
        size_t before_n, after_n;
        unsigned char *before, *after;
        CHECK(uvae_st_write(p, t, 2, NULL, 0) == UVAE_OK, "write a file to keep");
        before = slurp(p, &before_n);
        memcpy(d, t, sizeof d);
        strcpy(d[1].name, d[0].name);
        st = uvae_st_write(p, d, 2, NULL, 0);
        CHECK(st == UVAE_ERR_ARG && strstr(uvae_last_error(), p) && strstr(uvae_last_error(), "duplicate tensor name 'scalar'"),
              "duplicate names refused: %s", uvae_last_error());
        memcpy(d, t, sizeof d);
        d[1].size = 4;
        st = uvae_st_write(p, d, 2, NULL, 0);
        CHECK(st == UVAE_ERR_ARG && strstr(uvae_last_error(), "size 4 does not match shape [5]"), "size/shape mismatch refused: %s", uvae_last_error());
        memcpy(d, t, sizeof d);
        d[1].ndim = 5;
        CHECK(uvae_st_write(p, d, 2, NULL, 0) == UVAE_ERR_ARG, "ndim 5 refused");
        memcpy(d, t, sizeof d);
        d[1].name[0] = 0;
        CHECK(uvae_st_write(p, d, 2, NULL, 0) == UVAE_ERR_ARG, "empty name refused");
        memcpy(d, t, sizeof d);
        strcpy(d[1].name, "__metadata__");
        CHECK(uvae_st_write(p, d, 2, NULL, 0) == UVAE_ERR_ARG, "the name __metadata__ refused");
        memcpy(d, t, sizeof d);
        strcpy(d[1].name, "bad\xff");
        CHECK(uvae_st_write(p, d, 2, NULL, 0) == UVAE_ERR_ARG && strstr(uvae_last_error(), "UTF-8"), "invalid UTF-8 refused");
        memcpy(d, t, sizeof d);
        d[1].data = NULL;
        CHECK(uvae_st_write(p, d, 2, NULL, 0) == UVAE_ERR_ARG && strstr(uvae_last_error(), "data is NULL"), "NULL data refused");
        CHECK(uvae_st_write(p, t, 1, dup_kv, 2) == UVAE_ERR_ARG && strstr(uvae_last_error(), "duplicate metadata key 'k'"),
              "duplicate metadata refused: %s", uvae_last_error());
        memset(longval, 'x', sizeof longval - 1);
        longval[sizeof longval - 1] = 0;
        long_kv[0] = "k"; long_kv[1] = longval;
        CHECK(uvae_st_write(p, t, 1, long_kv, 1) == UVAE_ERR_ARG && strstr(uvae_last_error(), "at most 255"),
              "over-long metadata value refused: %s", uvae_last_error());
        CHECK(uvae_st_write(p, t, 1, kv, UVAE_META_MAX + 1) == UVAE_ERR_ARG, "too many metadata pairs refused");
        after = slurp(p, &after_n);
        CHECK(before && after && before_n == after_n && memcmp(before, after, before_n) == 0, "refused writes leave the existing file untouched");
        CHECK(!exists(tmp), "and no temp file");
        free(before);
        free(after);
    }
    {   /* an unwritable place: IO error naming the path */
        char bad[600];
        snprintf(bad, sizeof bad, "%s.no-such-dir/x.safetensors", tmp_prefix);
        st = uvae_st_write(bad, t, 1, NULL, 0);
        CHECK(st == UVAE_ERR_IO && strstr(uvae_last_error(), bad), "write into a missing directory: %d %s", st, uvae_last_error());
    }
    remove(p);
}

/* A file in the style of Python's safetensors / hand-edited JSON: keys in another order,
   whitespace everywhere, escapes, "__metadata__" last, a zero-size tensor. */
static void test_foreign_file(void) {
    char p[512];
    uvae_st_file f;
    const char *json =
        " \r\n{ \"b\\u00e9\\ud83d\\ude00\" : { \"shape\" : [ 2 , 1 ] ,\n\t\"data_offsets\":[ 8 , 16 ], \"dtype\" : \"F32\" } ,"
        "\"a\\\"q\\/\\\\\\n\": {\"data_offsets\": [0,8], \"dtype\": \"F32\", \"shape\": [2]},"
        " \"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,16]} , \"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[16,20]},"
        "\"__metadata__\" : { \"format\" : \"pt\", \"esc\":\"\\u0041\\t\\\"\" }  }       ";
    float data[5] = {1.5f, -2.0f, 3.25f, 4.0f, 0.5f};
    size_t jl = strlen(json);
    unsigned char *b = (unsigned char *)malloc(8 + jl + sizeof data);
    int st;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)jl >> (8 * i));
    memcpy(b + 8, json, jl);
    memcpy(b + 8 + jl, data, sizeof data);   /* little-endian host: the file's byte order */
    tpath(p, sizeof p, "foreign");
    write_bytes(p, b, 8 + jl + sizeof data);
    free(b);
    st = uvae_st_read(p, &f);
    CHECK(st == UVAE_OK, "a Python-style file parses: %s", uvae_last_error());
    if (st == UVAE_OK) {
        const uvae_st_tensor *a = uvae_st_find(&f, "a\"q/\\\n"), *bb = uvae_st_find(&f, "b\xc3\xa9\xf0\x9f\x98\x80");
        const uvae_st_tensor *z = uvae_st_find(&f, "z"), *s = uvae_st_find(&f, "s");
        CHECK(f.n == 4, "4 tensors: %d", f.n);
        CHECK(a && a->ndim == 1 && a->shape[0] == 2 && a->data[0] == 1.5f && a->data[1] == -2.0f, "escaped name, offsets [0,8]");
        CHECK(bb && bb->ndim == 2 && bb->shape[0] == 2 && bb->shape[1] == 1 && bb->data[0] == 3.25f && bb->data[1] == 4.0f,
              "\\u escapes and a surrogate pair decode to UTF-8, offsets [8,16]");
        CHECK(z && z->ndim == 1 && z->size == 0, "a zero-size tensor");
        CHECK(s && s->ndim == 0 && s->size == 1 && s->data[0] == 0.5f, "a scalar, shape []");
        CHECK(uvae_st_meta(&f, "format") && strcmp(uvae_st_meta(&f, "format"), "pt") == 0, "metadata after the tensors");
        CHECK(uvae_st_meta(&f, "esc") && strcmp(uvae_st_meta(&f, "esc"), "A\t\"") == 0, "escaped metadata value");
        uvae_st_free(&f);
    }
    write_st(p, "{\"__metadata__\":null}", 0);   /* Option<HashMap> in the reference implementation */
    CHECK(uvae_st_read(p, &f) == UVAE_OK && f.n == 0 && f.n_meta == 0, "\"__metadata__\": null accepted: %s", uvae_last_error());
    uvae_st_free(&f);
    remove(p);
    /* a fixture written by tests/ref/make_ref.py (json.dumps + struct) */
    st = uvae_st_read(UVT_REF_DIR "/optim.safetensors", &f);
    CHECK(st == UVAE_OK && uvae_st_find(&f, "adam.p0") && uvae_st_find(&f, "adam.p0")->size == 10,
          "reads the PyTorch fixture optim.safetensors: %s", uvae_last_error());
    uvae_st_free(&f);
}

/* ---- uvae_save / uvae_load ---- */
typedef struct shapes { int w0, hw0; int extra; int drop_head; } shapes;

/* a small registry: two trainable conv-like tensors, two buffers, a head */
static int make_params(uvae_params *P, shapes s, uint64_t seed) {
    uvae_params_init(P);
    uvae_params_add(P, 1, UVAE_INIT_UNIFORM, 0.5f, 4, (int[]){s.w0, 3, 3, 3}, "enc.w");
    uvae_params_add(P, 1, UVAE_INIT_UNIFORM, 0.5f, 1, (int[]){s.w0}, "enc.b");
    uvae_params_add(P, 0, UVAE_INIT_ZERO, 0, 1, (int[]){s.w0}, "bn.running_mean");
    uvae_params_add(P, 0, UVAE_INIT_ONE, 0, 1, (int[]){s.w0}, "bn.running_var");
    if (!s.drop_head) uvae_params_add(P, 1, UVAE_INIT_NORMAL, 0.1f, 2, (int[]){s.hw0, 4}, "head.%s", "w");
    if (s.extra) uvae_params_add(P, 1, UVAE_INIT_ONE, 0, 1, (int[]){3}, "extra");
    return uvae_params_alloc(P, seed);
}

static int params_equal(const uvae_params *A, const uvae_params *B) {
    if (A->n != B->n) return 0;
    for (int i = 0; i < A->n; i++)
        if (strcmp(A->p[i]->name, B->p[i]->name) || A->p[i]->t.size != B->p[i]->t.size ||
            memcmp(A->p[i]->t.data, B->p[i]->t.data, A->p[i]->t.size * sizeof(float)))
            return 0;
    return 1;
}

static int moments_equal(const uvae_params *P, const uvae_optim *a, const uvae_optim *b) {
    for (int i = 0; i < P->n; i++) {
        const uvae_param *p = P->p[i];
        if (!p->trainable) continue;
        if (memcmp(a->m + p->offset, b->m + p->offset, p->t.size * sizeof(float))) return 0;
        if (a->kind != UVAE_SGD && memcmp(a->v + p->offset, b->v + p->offset, p->t.size * sizeof(float))) return 0;
    }
    return a->step == b->step;
}

static int err_has(const char *a, const char *b) {
    return strstr(uvae_last_error(), a) != NULL && (!b || strstr(uvae_last_error(), b) != NULL);
}

static void test_save_load(void) {
    char p[512], tmp[600];
    shapes base = {4, 2, 0, 0};
    uvae_params A, B;
    uvae_optim oa, ob;
    uvae_st_file f;
    const char *kv[] = {"config", "{\"width\":4}"};
    int st;
    tpath(p, sizeof p, "model.safetensors");
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    CHECK(make_params(&A, base, 1) == UVAE_OK, "registry A: %s", uvae_last_error());
    for (size_t i = 0; i < A.p[2]->t.size; i++) A.p[2]->t.data[i] = 0.25f * (float)i;   /* buffers with content */
    uvae_optim_init(&oa, &A, UVAE_ADAM, 1e-3f);
    for (size_t i = 0; i < A.total; i++) { oa.m[i] = (float)i * 0.5f - 7; oa.v[i] = (float)i * 0.125f; }
    oa.step = 12345678901LL;
    st = uvae_save(p, &A, &oa, kv, 1);
    CHECK(st == UVAE_OK, "uvae_save with Adam: %s", uvae_last_error());
    CHECK(!exists(tmp), "no '%s' left after a successful save", tmp);

    st = uvae_st_read(p, &f);
    CHECK(st == UVAE_OK, "the checkpoint reads as safetensors: %s", uvae_last_error());
    if (st == UVAE_OK) {
        const char *m;
        CHECK(f.n == 5 + 3 * 2, "5 tensors + m and v of the 3 trainable ones: %d", f.n);
        CHECK((m = uvae_st_meta(&f, "format")) && strcmp(m, "unetvae-1") == 0, "format unetvae-1");
        CHECK((m = uvae_st_meta(&f, "optim.kind")) && strcmp(m, "adam") == 0, "optim.kind adam");
        CHECK((m = uvae_st_meta(&f, "optim.step")) && strcmp(m, "12345678901") == 0, "optim.step in decimal");
        CHECK((m = uvae_st_meta(&f, "config")) && strcmp(m, "{\"width\":4}") == 0, "caller's metadata");
        CHECK(uvae_st_find(&f, "optim.m.enc.w") && uvae_st_find(&f, "optim.v.head.w") && !uvae_st_find(&f, "optim.m.bn.running_mean"),
              "moments of trainable parameters only");
        uvae_st_free(&f);
    }

    /* load into a fresh registry of the same shapes */
    make_params(&B, base, 2);
    uvae_optim_init(&ob, &B, UVAE_ADAM, 1e-3f);
    CHECK(!params_equal(&A, &B), "different seeds differ before loading");
    st = uvae_load(p, &B, &ob);
    CHECK(st == UVAE_OK, "uvae_load with Adam: %s", uvae_last_error());
    CHECK(params_equal(&A, &B), "parameters and buffers restored bit for bit");
    CHECK(moments_equal(&A, &oa, &ob), "moments and step restored (step %lld)", (long long)ob.step);
    uvae_optim_free(&ob);
    uvae_params_free(&B);

    /* without an optimizer the moments in the file are ignored */
    make_params(&B, base, 3);
    CHECK(uvae_load(p, &B, NULL) == UVAE_OK && params_equal(&A, &B), "load without optimizer: %s", uvae_last_error());
    /* the wrong optimizer kind */
    uvae_optim_init(&ob, &B, UVAE_SGD, 1e-3f);
    st = uvae_load(p, &B, &ob);
    CHECK(st == UVAE_ERR_FORMAT && err_has(p, "optimizer kind 'adam' in the file, but the optimizer given is 'sgd'"),
          "kind mismatch: %s", uvae_last_error());
    uvae_optim_free(&ob);
    uvae_params_free(&B);

    {   /* a different shape: error naming both shapes, and nothing loaded */
        shapes s = base;
        uvae_params C;
        float before;
        s.hw0 = 3;
        make_params(&C, s, 4);
        before = C.p[0]->t.data[0];
        st = uvae_load(p, &C, NULL);
        CHECK(st == UVAE_ERR_FORMAT && err_has(p, "tensor 'head.w' has shape [2,4] in the file but [3,4] in the model"),
              "shape mismatch: %s", uvae_last_error());
        CHECK(C.p[0]->t.data[0] == before, "a failed load leaves the model untouched");
        uvae_params_free(&C);
        s = base; s.extra = 1;   /* a tensor the file lacks */
        make_params(&C, s, 4);
        st = uvae_load(p, &C, NULL);
        CHECK(st == UVAE_ERR_FORMAT && err_has(p, "missing tensor 'extra'"), "missing tensor: %s", uvae_last_error());
        uvae_params_free(&C);
        s = base; s.drop_head = 1;   /* a tensor the model lacks */
        make_params(&C, s, 4);
        st = uvae_load(p, &C, NULL);
        CHECK(st == UVAE_ERR_FORMAT && err_has(p, "unexpected tensor 'head.w' (model has no such parameter)"),
              "unexpected tensor: %s", uvae_last_error());
        uvae_params_free(&C);
    }

    /* no optimizer state in the file, but one asked for */
    CHECK(uvae_save(p, &A, NULL, NULL, 0) == UVAE_OK, "save without optimizer: %s", uvae_last_error());
    make_params(&B, base, 5);
    uvae_optim_init(&ob, &B, UVAE_ADAM, 1e-3f);
    st = uvae_load(p, &B, &ob);
    CHECK(st == UVAE_ERR_FORMAT && err_has(p, "no optimizer state"), "moments required with opt: %s", uvae_last_error());
    CHECK(uvae_load(p, &B, NULL) == UVAE_OK && params_equal(&A, &B), "params-only round trip");
    uvae_optim_free(&ob);
    uvae_params_free(&B);

    {   /* SGD: only m is stored */
        uvae_optim sa, sb;
        uvae_optim_init(&sa, &A, UVAE_SGD, 0.1f);
        for (size_t i = 0; i < A.total; i++) sa.m[i] = (float)i;
        sa.step = 3;
        CHECK(uvae_save(p, &A, &sa, NULL, 0) == UVAE_OK, "save with SGD: %s", uvae_last_error());
        CHECK(uvae_st_read(p, &f) == UVAE_OK && f.n == 5 + 3 && !uvae_st_find(&f, "optim.v.enc.w"), "SGD stores m only");
        {   /* a tampered step: the same tensors with "optim.step": "3x" */
            const char *bad_kv[] = {"optim.kind", "sgd", "optim.step", "3x"};
            char q[512];
            tpath(q, sizeof q, "tampered");
            CHECK(uvae_st_write(q, f.t, f.n, bad_kv, 2) == UVAE_OK, "rewrite what was read: %s", uvae_last_error());
            make_params(&B, base, 6);
            uvae_optim_init(&sb, &B, UVAE_SGD, 0.1f);
            st = uvae_load(q, &B, &sb);
            CHECK(st == UVAE_ERR_FORMAT && err_has(q, "optim.step '3x'"), "bad step refused: %s", uvae_last_error());
            CHECK(sb.step == 0 && B.p[0]->t.data[0] != A.p[0]->t.data[0], "nothing loaded on a bad step");
            remove(q);
        }
        uvae_st_free(&f);
        CHECK(uvae_load(p, &B, &sb) == UVAE_OK && params_equal(&A, &B) && moments_equal(&A, &sa, &sb), "SGD round trip: %s", uvae_last_error());
        uvae_optim_free(&sb);
        uvae_params_free(&B);
        uvae_optim_free(&sa);
    }

    /* argument errors */
    {
        const char *res[] = {"format", "mine"};
        CHECK(uvae_save(p, &A, NULL, res, 1) == UVAE_ERR_ARG && err_has("'format' is reserved", NULL), "reserved key refused");
        CHECK(uvae_load(p, &A, NULL) == UVAE_OK, "the earlier file is intact after a refused save");
    }
    {
        char missing[600];
        snprintf(missing, sizeof missing, "%s.nothing-here", tmp_prefix);
        CHECK(uvae_load(missing, &A, NULL) == UVAE_ERR_IO && err_has(missing, "cannot open"), "load of a missing file: %s", uvae_last_error());
    }
    {   /* a name too long once "optim.m." is prefixed */
        uvae_params L;
        uvae_optim lo;
        char longname[91];
        memset(longname, 'n', 90);
        longname[90] = 0;
        uvae_params_init(&L);
        uvae_params_add(&L, 1, UVAE_INIT_ONE, 0, 1, (int[]){2}, "%s", longname);
        uvae_params_alloc(&L, 0);
        uvae_optim_init(&lo, &L, UVAE_ADAM, 1e-3f);
        CHECK(uvae_save(p, &L, &lo, NULL, 0) == UVAE_ERR_ARG && err_has("too long", NULL), "over-long optimizer name refused: %s", uvae_last_error());
        CHECK(uvae_save(p, &L, NULL, NULL, 0) == UVAE_OK, "the same without optimizer is fine");
        uvae_optim_free(&lo);
        uvae_params_free(&L);
    }
    uvae_optim_free(&oa);
    uvae_params_free(&A);
    remove(p);
}

/* A UNet saved and loaded into one built from another seed gives bit-identical outputs. */
static void test_unet_round_trip(void) {
    char p[512];
    uvae_unet_config cfg = {3, 3, 4, 2, UVAE_DOWN_MAXPOOL, UVAE_UP_TRANSPOSE};
    uvae_unet n1, n2;
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_tensor *x = uvae_tensor_new(4, (int[]){2, 3, 16, 16}), *o1, *o2;
    uvae_rng rng;
    float *keep = NULL;
    size_t size = 0;
    int st;
    tpath(p, sizeof p, "unet.safetensors");
    uvae_rng_seed(&rng, 7);
    for (size_t i = 0; x && i < x->size; i++) x->data[i] = uvae_rng_normal(&rng);
    CHECK(uvae_unet_init(&n1, &cfg, 1) == UVAE_OK, "unet 1: %s", uvae_last_error());
    CHECK(uvae_unet_init(&n2, &cfg, 2) == UVAE_OK, "unet 2: %s", uvae_last_error());
    /* non-trivial batch-norm buffers, so that they must travel too */
    for (int i = 0; i < n1.params.n; i++)
        if (!n1.params.p[i]->trainable)
            for (size_t j = 0; j < n1.params.p[i]->t.size; j++) n1.params.p[i]->t.data[j] += 0.01f * (float)(j % 7);
    uvae_ctx_reset(ctx, 0);
    o1 = uvae_unet_forward(ctx, &n1, x);
    CHECK(o1 != NULL, "forward 1: %s", uvae_last_error());
    if (o1) {
        size = o1->size;
        keep = (float *)malloc(size * sizeof(float));
        memcpy(keep, o1->data, size * sizeof(float));
    }
    st = uvae_save(p, &n1.params, NULL, NULL, 0);
    CHECK(st == UVAE_OK, "save the unet: %s", uvae_last_error());
    st = uvae_load(p, &n2.params, NULL);
    CHECK(st == UVAE_OK, "load into a unet built with another seed: %s", uvae_last_error());
    uvae_ctx_reset(ctx, 0);
    o2 = uvae_unet_forward(ctx, &n2, x);
    CHECK(o2 && keep && o2->size == size && memcmp(o2->data, keep, size * sizeof(float)) == 0,
          "outputs bit-identical after save / load");
    free(keep);
    uvae_unet_free(&n1);
    uvae_unet_free(&n2);
    uvae_tensor_free(x);
    uvae_ctx_free(ctx);
    remove(p);
}

void suite_ckpt(void) {
    static int anchor;
    const char *dir = getenv("TMPDIR");
    snprintf(tmp_prefix, sizeof tmp_prefix, "%s/uvae_ckpt_test.%lx%lx", dir && *dir ? dir : "/tmp",
             (unsigned long)time(NULL), (unsigned long)((uintptr_t)&anchor & 0xfffff) ^ (unsigned long)clock());
    test_round_trip();
    test_foreign_file();
    test_bad_files();
    test_truncations();
    test_save_load();
    test_unet_round_trip();
}
