/* fuzz/make_corpus.c — writes the seed corpora fuzz/corpus/<harness>/ with the library's and
   stb's own writers: small valid inputs of each kind, plus a few truncated or corrupted ones.
   Nothing comes from a real dataset. `make fuzz-corpus` rebuilds and runs it; the output is
   deterministic, so a rerun changes no committed file.
       cc -std=c99 -O1 fuzz/make_corpus.c -lm -o build/make_corpus && ./build/make_corpus fuzz/corpus */
#include "fuzz.h"

static const char *root = "fuzz/corpus";
static int failures;

static void put(const char *harness, const char *file, const unsigned char *p, size_t n) {
    char path[1024];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s/%s", root, harness, file);
    if (!(f = fopen(path, "wb")) || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "make_corpus: cannot write %s\n", path);
        failures++;
    }
}

/* fuzz.h's two-part layout: flags, n1 (LE), a, b */
static void put2(const char *harness, const char *file, unsigned flags, const unsigned char *a, size_t na,
                 const unsigned char *b, size_t nb) {
    unsigned char *buf = (unsigned char *)malloc(5 + na + nb);
    buf[0] = (unsigned char)flags;
    for (int i = 0; i < 4; i++) buf[1 + i] = (unsigned char)(na >> (8 * i));
    if (na) memcpy(buf + 5, a, na);
    if (nb) memcpy(buf + 5 + na, b, nb);
    put(harness, file, buf, 5 + na + nb);
    free(buf);
}

static void be32(unsigned char *q, unsigned v) {
    q[0] = (unsigned char)(v >> 24); q[1] = (unsigned char)(v >> 16); q[2] = (unsigned char)(v >> 8); q[3] = (unsigned char)v;
}

/* ---- IDX: 3 images of 5x4 and their labels ---- */
static void make_idx(void) {
    enum { N = 3, R = 5, C = 4, IM = 16 + N * R * C, LB = 8 + N };
    unsigned char im[IM], lb[LB], bad[IM];
    unsigned char *g;
    size_t gl;
    be32(im, 0x803); be32(im + 4, N); be32(im + 8, R); be32(im + 12, C);
    for (int k = 0; k < N * R * C; k++) im[16 + k] = (unsigned char)(k * 37);
    be32(lb, 0x801); be32(lb + 4, N);
    lb[8] = 7; lb[9] = 0; lb[10] = 9;
    put2("idx", "plain", 0, im, IM, lb, LB);
    put2("idx", "harness_gzips_both", 3, im, IM, lb, LB);
    g = fz_gzip(im, IM, &gl, 1);
    put2("idx", "gzip_images", 0, g, gl, lb, LB);
    put2("idx", "gzip_images_cut", 0, g, gl - 5, lb, LB);
    free(g);
    put2("idx", "images_truncated", 0, im, IM - 7, lb, LB);
    memcpy(bad, im, IM); be32(bad + 8, 5000);
    put2("idx", "rows_5000", 0, bad, IM, lb, LB);
    memcpy(bad, lb, LB); bad[9] = 10;
    put2("idx", "label_10", 0, im, IM, bad, LB);
}

/* ---- CIFAR-10: one-record files ---- */
static void make_cifar(void) {
    enum { REC = 3073 };
    unsigned char a[REC], b[REC];
    unsigned char *g;
    size_t gl;
    a[0] = 3;
    b[0] = 8;
    for (int k = 1; k < REC; k++) { a[k] = (unsigned char)(k * 7 + k / 1024); b[k] = (unsigned char)(255 - k); }
    put2("cifar", "one_file", 0, a, REC, NULL, 0);
    put2("cifar", "two_files_second_gzipped", 4 | 2, a, REC, b, REC);
    g = fz_gzip(b, REC, &gl, 1);
    put2("cifar", "gzip_file", 0, g, gl, NULL, 0);
    free(g);
    put2("cifar", "truncated_record", 0, a, REC - 73, NULL, 0);
    put2("cifar", "two_files_second_empty", 4, a, REC, NULL, 0);
}

/* ---- Pet lists ---- */
static void make_list(void) {
    static const char *good = "# Image CLASS-ID SPECIES BREED ID\n#\nAbyssinian_1 1 1 1\nAbyssinian_10 1 1 1\r\n"
                              "\nyorkshire_terrier_9 37 2 25\n  american_bulldog_100 2 2 1\t\nBengal-7 6 1 4";
    static const char *names = "Abyssinian_1\nbeagle_2\nSphynx_33\n";
    put("pets_list", "good", (const unsigned char *)good, strlen(good));
    put("pets_list", "names_only", (const unsigned char *)names, strlen(names));
    put("pets_list", "bad_char", (const unsigned char *)"Abyssinian_1 1 1 1\ncats/Bengal_3 1 1 1\n", 39);
    put("pets_list", "two_fields", (const unsigned char *)"Abyssinian_1 1 1\n", 17);
    put("pets_list", "nul_byte", (const unsigned char *)"Abyss\0inian_1 1 1 1\n", 20);
}

/* ---- Pet image + trimap pairs ---- */
typedef struct { unsigned char *p; size_t n, cap; } membuf;
static void mem_write(void *ctx, void *data, int size) {
    membuf *m = (membuf *)ctx;
    if (m->n + (size_t)size > m->cap) {
        m->cap = (m->n + (size_t)size) * 2;
        m->p = (unsigned char *)realloc(m->p, m->cap);
    }
    memcpy(m->p + m->n, data, (size_t)size);
    m->n += (size_t)size;
}

static void make_pets_image(void) {
    enum { W = 20, H = 14 };
    unsigned char rgb[W * H * 3], grey[W * H], tri[W * H];
    membuf jpg = {0}, jpg_grey = {0}, png = {0}, tpng = {0}, tbad = {0}, trgb = {0};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int dx = 2 * x - W, dy = 2 * y - H, r2 = dx * dx + dy * dy;
            rgb[(y * W + x) * 3 + 0] = (unsigned char)(40 + 9 * x);
            rgb[(y * W + x) * 3 + 1] = (unsigned char)(30 + 15 * y);
            rgb[(y * W + x) * 3 + 2] = (unsigned char)(200 - 5 * (x + y));
            grey[y * W + x] = (unsigned char)(x * 12 + y);
            tri[y * W + x] = (unsigned char)(r2 < 60 ? 1 : r2 < 120 ? 3 : 2);
        }
    stbi_write_jpg_to_func(mem_write, &jpg, W, H, 3, rgb, 75);
    stbi_write_jpg_to_func(mem_write, &jpg_grey, W, H, 1, grey, 50);
    stbi_write_png_to_func(mem_write, &png, W, H, 3, rgb, W * 3);
    stbi_write_png_to_func(mem_write, &tpng, W, H, 1, tri, W);
    stbi_write_png_to_func(mem_write, &trgb, W, H, 3, rgb, W * 3);
    tri[3] = 0;
    stbi_write_png_to_func(mem_write, &tbad, W, H, 1, tri, W);
    put2("pets_image", "jpeg_png_size8", 7, jpg.p, jpg.n, tpng.p, tpng.n);
    put2("pets_image", "grey_jpeg_png_size5", 4, jpg_grey.p, jpg_grey.n, tpng.p, tpng.n);
    put2("pets_image", "png_png_size16", 15, png.p, png.n, tpng.p, tpng.n);
    put2("pets_image", "jpeg_truncated", 7, jpg.p, jpg.n / 2, tpng.p, tpng.n);
    put2("pets_image", "trimap_value_0", 7, jpg.p, jpg.n, tbad.p, tbad.n);
    put2("pets_image", "trimap_rgb", 7, png.p, png.n, trgb.p, trgb.n);
    free(jpg.p); free(jpg_grey.p); free(png.p); free(tpng.p); free(tbad.p); free(trgb.p);
}

/* ---- safetensors ---- */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *p = NULL;
    long sz;
    *n = 0;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 && (p = (unsigned char *)malloc((size_t)sz)))
        *n = fread(p, 1, (size_t)sz, f);
    fclose(f);
    return p;
}

static void make_ckpt(void) {
    char tmp[512];
    uvae_params P;
    uvae_optim opt;
    const char *kv[2] = {"model", "fuzz"};
    unsigned char *p;
    size_t n;
    static const float vals[6] = {1, -2, 3.5f, 0, 1e-3f, 7};
    uvae_st_tensor t[2];
    snprintf(tmp, sizeof tmp, "%s/ckpt/.tmp.safetensors", root);
    if (fz_model(&P, 7) != UVAE_OK || uvae_optim_init(&opt, &P, UVAE_ADAM, 1e-3f) != UVAE_OK) { failures++; return; }
    opt.step = 12;
    if (uvae_save(tmp, &P, NULL, kv, 1) == UVAE_OK && (p = slurp(tmp, &n))) {
        put("ckpt", "model_weights", p, n);
        put("ckpt", "model_weights_cut", p, n - 9);
        free(p);
    } else failures++;
    if (uvae_save(tmp, &P, &opt, kv, 1) == UVAE_OK && (p = slurp(tmp, &n))) {
        put("ckpt", "model_with_adam", p, n);
        free(p);
    } else failures++;
    memset(t, 0, sizeof t);
    strcpy(t[0].name, "a");
    t[0].ndim = 2; t[0].shape[0] = 2; t[0].shape[1] = 2; t[0].size = 4; t[0].data = vals;
    strcpy(t[1].name, "scalar.\xc3\xa9");
    t[1].ndim = 0; t[1].size = 1; t[1].data = vals + 4;
    if (uvae_st_write(tmp, t, 2, kv, 1) == UVAE_OK && (p = slurp(tmp, &n))) {
        put("ckpt", "two_tensors", p, n);
        free(p);
    } else failures++;
    {
        static const unsigned char empty[10] = {2, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
        static const char esc[] = "{\"__metadata__\":null,\"x\\u00e9\\ud83d\\ude00\":{\"shape\":[1],\"dtype\":\"F32\",\"data_offsets\":[0,4]}}";
        unsigned char buf[8 + sizeof esc - 1 + 4];
        size_t hl = sizeof esc - 1;
        put("ckpt", "empty_header", empty, sizeof empty);
        memset(buf, 0, sizeof buf);
        buf[0] = (unsigned char)hl;
        memcpy(buf + 8, esc, hl);
        put("ckpt", "escapes_null_meta", buf, sizeof buf);
    }
    remove(tmp);
    uvae_optim_free(&opt);
    uvae_params_free(&P);
}

int main(int argc, char **argv) {
    static const char *dirs[] = {"idx", "cifar", "pets_list", "pets_image", "ckpt"};
    char cmd[1200];
    if (argc > 1) root = argv[1];
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(cmd, sizeof cmd, "mkdir -p '%s/%s'", root, dirs[i]);
        if (system(cmd) != 0) { fprintf(stderr, "make_corpus: cannot make %s/%s\n", root, dirs[i]); return 1; }
    }
    make_idx();
    make_cifar();
    make_list();
    make_pets_image();
    make_ckpt();
    if (failures) { fprintf(stderr, "make_corpus: %d failures (%s)\n", failures, uvae_last_error()); return 1; }
    printf("make_corpus: seed corpora written under %s/\n", root);
    return 0;
}
