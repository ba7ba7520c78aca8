/* tests/test_pets.c — the Oxford-IIIT Pet loader ([data/pets]) and the segmentation metrics.
   A tiny dataset is written under $TMPDIR (default /tmp) with a per-run prefix and removed at the
   end; the real 300-image subset in UVT_DATA_DIR/oxford-pets is loaded when present. */
#include "test.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

/* stb_image_write's JPEG encoder shifts a signed int past its range (undefined behaviour that
   UBSan stops on), so the sanitizer build writes the test "JPEGs" as PNG data under the .jpg name
   (stb decodes by content). JPEG decoding is still covered there by the real data and the
   corrupt-JPEG case. */
#if defined(__SANITIZE_ADDRESS__)
#define PT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define PT_SANITIZED 1
#endif
#endif
#ifndef PT_SANITIZED
#define PT_SANITIZED 0
#endif

static char pt_dir[512];

static void pt_path(char *out, size_t cap, const char *fmt, const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, fmt, name);
    snprintf(out, cap, "%s/%s", pt_dir, rel);
}

/* an RGB JPEG with a smooth pattern, and its trimap: pet inside, border ring, background outside */
static void pt_write_pair(const char *name, int w, int h, int tw, int th, int bad_value) {
    char path[1024];
    unsigned char *rgb = (unsigned char *)malloc((size_t)w * h * 3), *tri = (unsigned char *)malloc((size_t)tw * th);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            rgb[(y * w + x) * 3 + 0] = (unsigned char)(40 + 150 * x / w);
            rgb[(y * w + x) * 3 + 1] = (unsigned char)(30 + 180 * y / h);
            rgb[(y * w + x) * 3 + 2] = (unsigned char)(200 - 100 * (x + y) / (w + h));
        }
    for (int y = 0; y < th; y++)
        for (int x = 0; x < tw; x++) {
            int dx = 2 * x - tw, dy = 2 * y - th, r2 = dx * dx + dy * dy, R = (tw < th ? tw : th);
            tri[y * tw + x] = (unsigned char)(r2 < R * R / 4 ? 1 : r2 < R * R / 2 ? 3 : 2);
        }
    if (bad_value >= 0) tri[(th / 2) * tw + tw / 2 + 1] = (unsigned char)bad_value;
    pt_path(path, sizeof path, "images/%s.jpg", name);
    if (w > 0 && !PT_SANITIZED) stbi_write_jpg(path, w, h, 3, rgb, 95);
    if (w > 0 && PT_SANITIZED) stbi_write_png(path, w, h, 3, rgb, w * 3);
    pt_path(path, sizeof path, "annotations/trimaps/%s.png", name);
    if (tw > 0) stbi_write_png(path, tw, th, 1, tri, tw);
    free(rgb);
    free(tri);
}

static void pt_write_text(const char *file, const char *text) {
    char path[1024];
    FILE *f;
    pt_path(path, sizeof path, "annotations/%s", file);
    if ((f = fopen(path, "wb"))) { fputs(text, f); fclose(f); }
}

/* loading `list` must fail with `status`, and the message must hold `file` and `phrase` */
static void pt_expect_fail(const char *list, int status, const char *file, const char *phrase) {
    char lp[1024];
    uvae_pets p;
    int st;
    pt_path(lp, sizeof lp, "annotations/%s", list);
    st = uvae_pets_load(pt_dir, lp, 16, &p);
    CHECK(st == status, "%s: status %d, want %d (%s)", list, st, status, uvae_last_error());
    CHECK(strstr(uvae_last_error(), file) != NULL, "%s: message lacks '%s': %s", list, file, uvae_last_error());
    CHECK(strstr(uvae_last_error(), phrase) != NULL, "%s: message lacks '%s': %s", list, phrase, uvae_last_error());
    CHECK(p.n == 0 && !p.images && !p.masks && !p.names, "%s: set not zeroed on failure", list);
}

/* ---- hostile files: the readers' limits and the stb_image 2.27 bugs found by fuzz/ ---- */
static void pt_write_raw(const char *rel, const unsigned char *b, size_t n) {
    char path[1024];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", pt_dir, rel);
    if ((f = fopen(path, "wb"))) { if (n) fwrite(b, 1, n, f); fclose(f); }
}

typedef struct pt_mem { unsigned char b[4096]; size_t n; } pt_mem;
static void pt_mem_write(void *ctx, void *data, int size) {
    pt_mem *m = (pt_mem *)ctx;
    if (size > 0 && m->n + (size_t)size <= sizeof m->b) { memcpy(m->b + m->n, data, (size_t)size); m->n += (size_t)size; }
}

/* A minimal baseline JPEG, built byte by byte: 8x8 grey, one quantisation table, one DC and one
   AC Huffman table with a single 1-bit code each, one MCU whose bits say "DC difference 0, end of
   block": a uniform grey 128 image. big_dht: the DC table declares 257 codes instead; ac_table:
   the AC table the scan uses (only table 0 is defined); width: the frame's width field. */
static size_t pt_tiny_jpeg(unsigned char *b, int big_dht, int ac_table, int width) {
    size_t k = 0;
    b[k++] = 0xff; b[k++] = 0xd8;                                           /* SOI */
    b[k++] = 0xff; b[k++] = 0xdb; b[k++] = 0; b[k++] = 67; b[k++] = 0;      /* DQT: table 0, all 1 */
    for (int i = 0; i < 64; i++) b[k++] = 1;
    b[k++] = 0xff; b[k++] = 0xc0; b[k++] = 0; b[k++] = 11; b[k++] = 8;      /* SOF0: 8 bits, 8 rows */
    b[k++] = 0; b[k++] = 8; b[k++] = (unsigned char)(width >> 8); b[k++] = (unsigned char)width;
    b[k++] = 1; b[k++] = 1; b[k++] = 0x11; b[k++] = 0;                      /* 1 component, id 1, tq 0 */
    for (int t = 0; t < 2; t++) {                                           /* DHT: DC 0, AC 0 */
        int codes = t == 0 && big_dht ? 257 : 1;
        size_t L = 2 + 17 + (size_t)codes;
        b[k++] = 0xff; b[k++] = 0xc4; b[k++] = (unsigned char)(L >> 8); b[k++] = (unsigned char)L;
        b[k++] = (unsigned char)(t << 4);
        for (int len = 1; len <= 16; len++)
            b[k++] = (unsigned char)(codes == 1 ? len == 1 : len == 16 ? 255 : len == 15 ? 2 : 0);
        for (int i = 0; i < codes; i++) b[k++] = 0;                         /* symbol 0: DC diff 0 / EOB */
    }
    b[k++] = 0xff; b[k++] = 0xda; b[k++] = 0; b[k++] = 8; b[k++] = 1;       /* SOS: 1 component */
    b[k++] = 1; b[k++] = (unsigned char)ac_table; b[k++] = 0; b[k++] = 63; b[k++] = 0;
    b[k++] = 0x3f;                                                          /* bits 0 (DC), 0 (EOB), 1-padding */
    b[k++] = 0xff; b[k++] = 0xd9;                                           /* EOI */
    return k;
}

/* a PNG signature and an IHDR chunk (8-bit grey) claiming w x h, and nothing else */
static size_t pt_png_header(unsigned char *b, unsigned w, unsigned h) {
    static const unsigned char head[16] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    memcpy(b, head, 16);
    for (int i = 0; i < 4; i++) { b[16 + i] = (unsigned char)(w >> (24 - 8 * i)); b[20 + i] = (unsigned char)(h >> (24 - 8 * i)); }
    b[24] = 8; b[25] = 0; b[26] = 0; b[27] = 0; b[28] = 0;
    memset(b + 29, 0, 4);                                                   /* CRC (stb does not check it) */
    return 33;
}

static void pt_hostile(void) {
    unsigned char jpg[1024], hdr[64], tri[64];
    pt_mem png = {{0}, 0}, tpng = {{0}, 0}, spliced = {{0}, 0};
    unsigned char rgb[8 * 8 * 3];
    size_t n;
    uvae_pets p;
    char lp[1024];
    int st;
    memset(tri, 2, sizeof tri);
    tri[9] = 1; tri[10] = 3;
    stbi_write_png_to_func(pt_mem_write, &tpng, 8, 8, 1, tri, 8);
    pt_write_raw("annotations/trimaps/h8.png", tpng.b, tpng.n);

    /* the hand-built JPEG decodes (stb and the walk over its segments agree) */
    n = pt_tiny_jpeg(jpg, 0, 0, 8);
    pt_write_raw("images/h8.jpg", jpg, n);
    pt_write_text("h_ok.txt", "h8\n");
    pt_path(lp, sizeof lp, "annotations/%s", "h_ok.txt");
    st = uvae_pets_load(pt_dir, lp, 4, &p);
    CHECK(st == UVAE_OK, "hand-built 8x8 JPEG: %s", uvae_last_error());
    if (st == UVAE_OK) {
        int grey = 1;
        for (int k = 0; k < 3 * 16; k++) grey &= fabsf(p.images[k] - 128.0f / 255.0f) < 1e-6f;
        CHECK(grey, "hand-built JPEG: uniform grey 128");
        uvae_pets_free(&p);
    }
    pt_write_text("h_list.txt", "h8 1 1 1\nhx 1 1 1\n");   /* hx: each case below rewrites it */
#define PT_CASE(img, img_n, trimap_png, what, phrase) do {                                       \
        pt_write_raw("images/hx.jpg", img, img_n);                                                 \
        pt_write_raw("annotations/trimaps/hx.png", (trimap_png)->b, (trimap_png)->n);              \
        pt_expect_fail("h_list.txt", UVAE_ERR_FORMAT, what, phrase);                               \
    } while (0)
    /* stb 2.27 would write past its Huffman tables / read an undefined one */
    n = pt_tiny_jpeg(jpg, 1, 0, 8);
    PT_CASE(jpg, n, &tpng, "images/hx.jpg", "corrupt JPEG (a Huffman table with more than 256 codes)");
    n = pt_tiny_jpeg(jpg, 0, 1, 8);
    PT_CASE(jpg, n, &tpng, "images/hx.jpg", "corrupt JPEG (a scan uses an AC Huffman table that no DHT defined)");
    /* sizes from the header, refused before stb decodes anything */
    n = pt_tiny_jpeg(jpg, 0, 0, 9000);
    PT_CASE(jpg, n, &tpng, "images/hx.jpg", "is 9000x8, larger than 8192x8192 (UVAE_MAX_IMAGE_SIDE)");
    n = pt_png_header(hdr, 100000, 100000);
    PT_CASE(hdr, n, &tpng, "images/hx.jpg", "is 100000x100000, larger than 8192x8192 (UVAE_MAX_IMAGE_SIDE)");
    n = pt_png_header(hdr, 8192, 8192);
    PT_CASE(hdr, n, &tpng, "images/hx.jpg", "is 8192x8192 = 67108864 pixels, more than 33554432 (UVAE_MAX_IMAGE_PIXELS)");
    {
        pt_mem t = {{0}, 0};
        t.n = pt_png_header(t.b, 8193, 8);
        n = pt_tiny_jpeg(jpg, 0, 0, 8);
        PT_CASE(jpg, n, &t, "trimaps/hx.png", "trimap");
        CHECK(strstr(uvae_last_error(), "is 8193x8, larger than 8192x8192"), "trimap 8193 wide: %s", uvae_last_error());
    }
    /* PNG chunks: one claiming 2 GiB (stb 2.27 would allocate it), an empty first IDAT */
    for (int k = 0; k < 8 * 8 * 3; k++) rgb[k] = (unsigned char)(k * 5);
    stbi_write_png_to_func(pt_mem_write, &png, 8, 8, 3, rgb, 24);
    CHECK(png.n > 45 && !memcmp(png.b + 37, "IDAT", 4), "stb's PNG: IDAT right after IHDR");
    memcpy(spliced.b, png.b, png.n);
    spliced.n = png.n;
    spliced.b[33] = 0x7f; spliced.b[34] = 0xff; spliced.b[35] = 0xff; spliced.b[36] = 0xf0;
    PT_CASE(spliced.b, spliced.n, &tpng, "images/hx.jpg", "corrupt PNG (a chunk longer than the rest of the file)");
    memcpy(spliced.b, png.b, 33);                                            /* signature, IHDR */
    memcpy(spliced.b + 33, "\0\0\0\0IDAT\0\0\0\0", 12);                      /* an empty IDAT */
    memcpy(spliced.b + 45, png.b + 33, png.n - 33);
    spliced.n = png.n + 12;
    PT_CASE(spliced.b, spliced.n, &tpng, "images/hx.jpg", "corrupt PNG (an empty first IDAT chunk)");
    /* formats: only JPEG or PNG images, PNG trimaps, whatever the names say */
    PT_CASE((const unsigned char *)"GIF89a\x08\0\x08\0\0\0\0;", 14, &tpng, "images/hx.jpg",
            "cannot decode image");
    CHECK(strstr(uvae_last_error(), "not JPEG or PNG data (starts with 0x47 0x49)"), "GIF: %s", uvae_last_error());
    {
        pt_mem t = {{0}, 0};
        t.n = pt_tiny_jpeg(t.b, 0, 0, 8);
        PT_CASE(png.b, png.n, &t, "trimaps/hx.png", "not PNG data (starts with 0xff 0xd8)");
    }
    PT_CASE(jpg, 0, &tpng, "images/hx.jpg", "cannot decode image");
    CHECK(strstr(uvae_last_error(), "empty file"), "empty image: %s", uvae_last_error());
#undef PT_CASE

    /* list lines: a NUL byte, and the 1022-character limit */
    {
        char big[1100], names[2][64];
        pt_write_raw("annotations/h_nul.txt", (const unsigned char *)"h8 1 1 1\nh\0x 1 1 1\n", 19);
        pt_expect_fail("h_nul.txt", UVAE_ERR_FORMAT, "h_nul.txt:2:", "malformed line (a NUL byte)");
        memset(big, ' ', sizeof big);
        memcpy(big, "h8", 2);
        big[1022] = '\n';
        big[1023] = 0;
        pt_write_text("h_1022.txt", big);
        pt_path(lp, sizeof lp, "annotations/%s", "h_1022.txt");
        st = uvae_pets_read_list(lp, names, 2);
        CHECK(st == 1 && !strcmp(names[0], "h8"), "a 1022-character line: %d (%s)", st, uvae_last_error());
        big[1022] = ' ';
        big[1023] = '\n';
        big[1024] = 0;
        pt_write_text("h_1023.txt", big);
        pt_expect_fail("h_1023.txt", UVAE_ERR_FORMAT, "h_1023.txt:1:", "malformed line (longer than 1022 characters)");
    }
}

static void pt_synthetic(void) {
    char cmd[1200], lp[1024], path[1024];
    uvae_pets p;
    int st;
    const char *tmp = getenv("TMPDIR");
    snprintf(pt_dir, sizeof pt_dir, "%s/uvae_pets_test.%lx%lx", tmp && *tmp ? tmp : "/tmp",
             (unsigned long)time(NULL), (unsigned long)(size_t)&p & 0xffffffUL);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/images' '%s/annotations/trimaps'", pt_dir, pt_dir);
    if (system(cmd) != 0) { CHECK(0, "cannot make %s", pt_dir); return; }

    /* ---- (1) a valid 3-image set: identity size, exact 2x downscale, non-square ---- */
    pt_write_pair("same_16", 16, 16, 16, 16, -1);
    pt_write_pair("half_32", 32, 32, 32, 32, -1);
    pt_write_pair("Odd-shape_3", 27, 13, 27, 13, -1);
    pt_write_text("good.txt", "# Name class species breed\n#another comment\nsame_16 1 1 1\n\n"
                              "half_32 2 2 1\r\n   \nOdd-shape_3 3 1 2");
    {
        char names[4][64];
        pt_path(lp, sizeof lp, "annotations/%s", "good.txt");
        st = uvae_pets_read_list(lp, names, 4);
        CHECK(st == 3, "read_list: %d names, want 3 (%s)", st, uvae_last_error());
        CHECK(st == 3 && !strcmp(names[0], "same_16") && !strcmp(names[1], "half_32") && !strcmp(names[2], "Odd-shape_3"),
              "read_list: wrong names");
        CHECK(uvae_pets_read_list(lp, NULL, 0) == 3, "read_list: counting only");
        st = uvae_pets_read_list(lp, names, 2);
        CHECK(st == UVAE_ERR_ARG && strstr(uvae_last_error(), "max_names"), "read_list: cap of 2 -> %d %s", st, uvae_last_error());
    }
    st = uvae_pets_load(pt_dir, lp, 16, &p);
    CHECK(st == UVAE_OK, "load: %s", uvae_last_error());
    if (st == UVAE_OK) {
        size_t plane = 16 * 16;
        int lo = 1, mask_ok = 1, seen[3] = {0, 0, 0}, exact_same = 1, exact_half = 1, exact_mask = 1;
        float mean[3], std[3];
        CHECK(p.n == 3 && p.size == 16, "n %d size %d", p.n, p.size);
        CHECK(!strcmp(p.names[2], "Odd-shape_3"), "names[2] = %s", p.names[2]);
        for (size_t k = 0; k < (size_t)p.n * 3 * plane; k++)
            if (!(p.images[k] >= 0.0f && p.images[k] <= 1.0f)) lo = 0;
        CHECK(lo, "image values outside [0,1]");
        for (size_t k = 0; k < (size_t)p.n * plane; k++) {
            if (p.masks[k] > 2) mask_ok = 0;
            else seen[p.masks[k]]++;
        }
        CHECK(mask_ok && seen[0] && seen[1] && seen[2], "masks: want 0..2, all present (%d %d %d)", seen[0], seen[1], seen[2]);
        {   /* against stb's own decode: identity at 16, and the 2x2 box mean at 32 -> 16 (bilinear,
               align_corners=False, samples at 2i+0.5); trimaps by nearest at pixel centres */
            int w, h, c;
            unsigned char *a, *b, *t;
            pt_path(path, sizeof path, "images/%s.jpg", "same_16");
            a = stbi_load(path, &w, &h, &c, 3);
            pt_path(path, sizeof path, "images/%s.jpg", "half_32");
            b = stbi_load(path, &w, &h, &c, 3);
            pt_path(path, sizeof path, "annotations/trimaps/%s.png", "half_32");
            t = stbi_load(path, &w, &h, &c, 1);
            CHECK(a && b && t, "stbi_load of the test files");
            if (a && b && t) {
                for (int ch = 0; ch < 3; ch++)
                    for (int y = 0; y < 16; y++)
                        for (int x = 0; x < 16; x++) {
                            float got = p.images[((size_t)ch * 16 + y) * 16 + x];
                            float want = a[(y * 16 + x) * 3 + ch] / 255.0f;
                            float g2 = p.images[3 * plane + ((size_t)ch * 16 + y) * 16 + x];
                            float w2 = (b[((2 * y) * 32 + 2 * x) * 3 + ch] + b[((2 * y) * 32 + 2 * x + 1) * 3 + ch] +
                                        b[((2 * y + 1) * 32 + 2 * x) * 3 + ch] + b[((2 * y + 1) * 32 + 2 * x + 1) * 3 + ch]) /
                                       (4.0f * 255.0f);
                            if (fabsf(got - want) > 1e-6f) exact_same = 0;
                            if (fabsf(g2 - w2) > 1e-5f) exact_half = 0;
                            if (ch == 0 && p.masks[plane + (size_t)y * 16 + x] != t[(2 * y + 1) * 32 + 2 * x + 1] - 1) exact_mask = 0;
                        }
            }
            CHECK(exact_same, "16x16 image at size 16 is not the decoded pixels / 255");
            CHECK(exact_half, "32x32 image at size 16 is not the 2x2 box mean (bilinear, align_corners=False)");
            CHECK(exact_mask, "32x32 trimap at size 16 is not sampled at pixel centres (2i+1)");
            stbi_image_free(a);
            stbi_image_free(b);
            stbi_image_free(t);
        }
        uvae_pets_stats(&p, mean, std);
        for (int c = 0; c < 3; c++) {
            double s = 0, v = 0;
            size_t cnt = (size_t)p.n * plane;
            for (int i = 0; i < p.n; i++)
                for (size_t k = 0; k < plane; k++) s += p.images[((size_t)i * 3 + c) * plane + k];
            s /= (double)cnt;
            for (int i = 0; i < p.n; i++)
                for (size_t k = 0; k < plane; k++) {
                    double d = p.images[((size_t)i * 3 + c) * plane + k] - s;
                    v += d * d;
                }
            v = sqrt(v / (double)cnt);
            CHECK(fabs(mean[c] - s) < 1e-6 && fabs(std[c] - v) < 1e-6 && std[c] > 0.01f && mean[c] > 0.1f && mean[c] < 0.9f,
                  "stats channel %d: mean %g std %g (want %g %g)", c, mean[c], std[c], s, v);
        }
        {   /* batches: plain, flipped (must be the mirror), binary */
            int idx[3] = {2, 0, 1};
            unsigned char flip[3] = {1, 0, 1};
            uvae_tensor *x = uvae_tensor_new(4, (int[]){3, 3, 16, 16}), *y = uvae_tensor_new(3, (int[]){3, 16, 16});
            uvae_tensor *xf = uvae_tensor_new(4, (int[]){3, 3, 16, 16}), *yf = uvae_tensor_new(3, (int[]){3, 16, 16});
            uvae_tensor *yb = uvae_tensor_new(4, (int[]){3, 1, 16, 16});
            int mirror = 1, norm = 1, bin = 1, cls = 1;
            CHECK(uvae_pets_batch(&p, idx, 3, mean, std, NULL, 0, x, y) == UVAE_OK, "batch: %s", uvae_last_error());
            CHECK(uvae_pets_batch(&p, idx, 3, mean, std, flip, 0, xf, yf) == UVAE_OK, "flipped batch: %s", uvae_last_error());
            CHECK(uvae_pets_batch(&p, idx, 3, mean, std, flip, 1, x, yb) == UVAE_OK, "binary batch: %s", uvae_last_error());
            CHECK(uvae_pets_batch(&p, idx, 3, mean, std, NULL, 0, x, y) == UVAE_OK, "batch again: %s", uvae_last_error());
            for (int b = 0; b < 3; b++)
                for (int r = 0; r < 16; r++)
                    for (int col = 0; col < 16; col++) {
                        int sc = flip[b] ? 15 - col : col;
                        unsigned char m = p.masks[(size_t)idx[b] * plane + (size_t)r * 16 + col];
                        for (int c = 0; c < 3; c++) {
                            size_t o = (((size_t)b * 3 + c) * 16 + r) * 16;
                            float want = (p.images[((size_t)idx[b] * 3 + c) * plane + (size_t)r * 16 + col] - mean[c]) / std[c];
                            if (xf->data[o + col] != x->data[o + sc]) mirror = 0;
                            if (fabsf(x->data[o + col] - want) > 1e-5f * (1 + fabsf(want))) norm = 0;
                        }
                        if (yf->data[((size_t)b * 16 + r) * 16 + col] != y->data[((size_t)b * 16 + r) * 16 + sc]) mirror = 0;
                        if (y->data[((size_t)b * 16 + r) * 16 + col] != (float)m) cls = 0;
                        if (yb->data[((size_t)b * 16 + r) * 16 + col] !=
                            (p.masks[(size_t)idx[b] * plane + (size_t)r * 16 + sc] == 1 ? 0.0f : 1.0f)) bin = 0;
                    }
            CHECK(mirror, "flipped batch is not the mirror of the plain one");
            CHECK(norm, "x != (image - mean) / std");
            CHECK(cls, "y != mask class ids");
            CHECK(bin, "binary y != 1 for pet/border, 0 for background (flipped)");
            idx[1] = 3;
            CHECK(uvae_pets_batch(&p, idx, 3, mean, std, NULL, 0, x, y) == UVAE_ERR_ARG, "index 3 of 3 accepted");
            idx[1] = 0;
            CHECK(uvae_pets_batch(&p, idx, 3, mean, std, NULL, 1, x, y) == UVAE_ERR_ARG, "binary with [B,S,S] y accepted");
            CHECK(uvae_pets_batch(&p, idx, 2, mean, std, NULL, 0, x, y) == UVAE_ERR_ARG, "wrong batch size accepted");
            uvae_tensor_free(x); uvae_tensor_free(y); uvae_tensor_free(xf); uvae_tensor_free(yf); uvae_tensor_free(yb);
        }
        {   /* augmentation views: identity and mirror views equal the plain and flipped batches; the
               left-half crop samples at the right places; colour factors; random views stay inside */
            int idx[3] = {2, 0, 1}, same = 1, crop = 1, inside = 1, varied = 0;
            unsigned char flip[3] = {1, 0, 1};
            uvae_pets_view v[3], half, dark, rv[200], rv2[200];
            uvae_tensor *x = uvae_tensor_new(4, (int[]){3, 3, 16, 16}), *y = uvae_tensor_new(3, (int[]){3, 16, 16});
            uvae_tensor *xv = uvae_tensor_new(4, (int[]){3, 3, 16, 16}), *yv = uvae_tensor_new(3, (int[]){3, 16, 16});
            uvae_rng rng;
            for (int b = 0; b < 3; b++) {
                v[b].x0 = v[b].y0 = 0; v[b].w = v[b].h = 16; v[b].flip = flip[b];
                v[b].brightness = v[b].contrast = v[b].saturation = 1;
            }
            CHECK(uvae_pets_batch(&p, idx, 3, mean, std, flip, 0, x, y) == UVAE_OK, "flipped batch");
            CHECK(uvae_pets_batch_views(&p, idx, 3, mean, std, v, 0, xv, yv) == UVAE_OK, "views batch: %s", uvae_last_error());
            same = !memcmp(x->data, xv->data, x->size * sizeof(float)) && !memcmp(y->data, yv->data, y->size * sizeof(float));
            CHECK(same, "identity/mirror views give exactly the plain/flipped batch");
            half = v[1]; half.w = 8; half.flip = 0;                   /* the left half, stretched 2x */
            CHECK(uvae_pets_batch_views(&p, idx + 1, 1, mean, std, &half, 0, xv, yv) == UVAE_ERR_ARG, "batch size 1 into [3,...] refused");
            v[0] = half; v[1] = half; v[2] = half;
            CHECK(uvae_pets_batch_views(&p, idx, 3, mean, std, v, 0, xv, yv) == UVAE_OK, "crop views");
            for (int r = 0; r < 16; r++)
                for (int col = 0; col < 16; col++) {
                    /* output column col samples source x = (col + 0.5)/2 - 0.5: pixels col/2 (and a neighbour) */
                    float fx = (col + 0.5f) * 0.5f - 0.5f, w;
                    int x0, x1;
                    fx = fx < 0 ? 0 : fx;
                    x0 = (int)fx; x1 = x0 + 1 < 16 ? x0 + 1 : x0; w = fx - (float)x0;
                    for (int c = 0; c < 3; c++) {
                        const float *src = p.images + ((size_t)idx[0] * 3 + c) * plane + (size_t)r * 16;
                        float want = ((src[x0] * (1 - w) + src[x1] * w) - mean[c]) / std[c];
                        if (fabsf(xv->data[((size_t)c * 16 + r) * 16 + col] - want) > 1e-4f * (1 + fabsf(want))) crop = 0;
                    }
                    if (yv->data[(size_t)r * 16 + col] != (float)p.masks[(size_t)idx[0] * plane + (size_t)r * 16 + col / 2]) crop = 0;
                }
            CHECK(crop, "a left-half crop is the bilinear (image) / nearest (trimap) stretch of that half");
            dark = half; dark.x0 = 0; dark.w = 16; dark.brightness = 0;   /* brightness 0: every pixel black */
            v[0] = dark; v[1] = dark; v[2] = dark;
            CHECK(uvae_pets_batch_views(&p, idx, 3, mean, std, v, 0, xv, yv) == UVAE_OK, "dark views");
            {
                int black = 1;
                for (int b = 0; b < 3; b++)
                    for (int c = 0; c < 3; c++)
                        for (int k = 0; k < 256; k++)
                            if (fabsf(xv->data[((size_t)b * 3 + c) * 256 + k] - (0 - mean[c]) / std[c]) > 1e-5f) black = 0;
                CHECK(black, "brightness 0 gives black images (normalised)");
            }
            v[0].x0 = 10; v[0].w = 8;
            CHECK(uvae_pets_batch_views(&p, idx, 3, mean, std, v, 0, xv, yv) == UVAE_ERR_ARG && strstr(uvae_last_error(), "view 0"),
                  "a box outside the image is refused: %s", uvae_last_error());
            uvae_rng_seed(&rng, 9);
            CHECK(uvae_pets_random_views(&rng, 200, 16, 0.5f, 0.2f, rv) == UVAE_OK, "random views");
            uvae_rng_seed(&rng, 9);
            uvae_pets_random_views(&rng, 200, 16, 0.5f, 0.2f, rv2);
            CHECK(!memcmp(rv, rv2, sizeof rv), "random views are reproducible from the seed");
            for (int i = 0; i < 200; i++) {
                float area = rv[i].w * rv[i].h / 256.0f;
                if (rv[i].x0 < 0 || rv[i].y0 < 0 || rv[i].x0 + rv[i].w > 16.001f || rv[i].y0 + rv[i].h > 16.001f ||
                    area < 0.5f - 1e-4f || area > 1 + 1e-4f || fabsf(rv[i].brightness - 1) > 0.2f + 1e-6f ||
                    fabsf(rv[i].contrast - 1) > 0.2f + 1e-6f || fabsf(rv[i].saturation - 1) > 0.2f + 1e-6f) inside = 0;
                varied += rv[i].flip;
            }
            CHECK(inside, "random boxes inside the image, area in [0.5, 1], colour factors in [0.8, 1.2]");
            CHECK(varied > 70 && varied < 130, "about half the views are mirrored: %d of 200", varied);
            CHECK(uvae_pets_batch_views(&p, (int[]){0, 1, 2}, 3, mean, std, rv, 0, xv, yv) == UVAE_OK, "a batch of random views");
            CHECK(uvae_pets_random_views(&rng, 3, 16, 0.0f, 0.2f, rv) == UVAE_ERR_ARG, "min_scale 0 refused");
            uvae_tensor_free(x); uvae_tensor_free(y); uvae_tensor_free(xv); uvae_tensor_free(yv);
        }
        uvae_pets_free(&p);
        CHECK(p.n == 0 && !p.images, "free zeroes");
        uvae_pets_free(&p);   /* twice: safe */
    }

    /* ---- (2) bad inputs: each fails naming the file, with a specific phrase ---- */
    pt_write_pair("no_jpg", 0, 0, 10, 10, -1);
    pt_write_pair("no_png", 10, 10, 0, 0, -1);
    pt_write_pair("other_size", 12, 10, 10, 12, -1);
    pt_write_pair("value_0", 12, 12, 12, 12, 0);
    pt_write_pair("value_4", 12, 12, 12, 12, 4);
    pt_write_pair("corrupt", 0, 0, 12, 12, -1);
    {   /* random bytes as a JPEG: a valid JPEG start marker, then junk */
        FILE *f;
        unsigned s = 12345;
        pt_path(path, sizeof path, "images/%s.jpg", "corrupt");
        if ((f = fopen(path, "wb"))) {
            fputc(0xFF, f); fputc(0xD8, f);
            for (int i = 0; i < 600; i++) { s = s * 1103515245u + 12345u; fputc((int)(s >> 16) & 0xff, f); }
            fclose(f);
        }
    }
    pt_write_pair("huge", 8193, 1, 8193, 1, -1);
    pt_write_pair("rgb_trimap", 12, 12, 0, 0, -1);
    {   /* a trimap saved as RGB: refused, not silently converted to grey */
        unsigned char px[12 * 12 * 3];
        memset(px, 1, sizeof px);
        pt_path(path, sizeof path, "annotations/trimaps/%s.png", "rgb_trimap");
        stbi_write_png(path, 12, 12, 3, px, 36);
    }
    pt_write_text("l_rgbtri.txt", "rgb_trimap 1 1 1\n");
    pt_write_text("l_nojpg.txt", "same_16 1 1 1\nno_jpg 1 1 1\n");
    pt_write_text("l_nopng.txt", "no_png 1 1 1\n");
    pt_write_text("l_size.txt", "other_size 1 1 1\n");
    pt_write_text("l_v0.txt", "value_0 1 1 1\n");
    pt_write_text("l_v4.txt", "value_4 1 1 1\n");
    pt_write_text("l_corrupt.txt", "corrupt 1 1 1\n");
    pt_write_text("l_huge.txt", "huge 1 1 1\n");
    pt_write_text("l_space.txt", "# c\nsame_16 1 1 1\nbad name 1 1 1\n");
    pt_write_text("l_slash.txt", "# c\n\ncats/same_16 1 1 1\n");
    pt_write_text("l_fields.txt", "same_16 1 1\n");
    pt_write_text("l_empty.txt", "# only a comment\n\n");
    pt_expect_fail("l_nojpg.txt", UVAE_ERR_IO, "images/no_jpg.jpg", "cannot open image");
    pt_expect_fail("l_nopng.txt", UVAE_ERR_IO, "trimaps/no_png.png", "cannot open trimap");
    pt_expect_fail("l_size.txt", UVAE_ERR_FORMAT, "trimaps/other_size.png", "is 10x12 but its image");
    pt_expect_fail("l_v0.txt", UVAE_ERR_FORMAT, "trimaps/value_0.png", "has value 0 at (x 7, y 6), outside 1..3");
    pt_expect_fail("l_v4.txt", UVAE_ERR_FORMAT, "trimaps/value_4.png", "has value 4 at");
    pt_expect_fail("l_corrupt.txt", UVAE_ERR_FORMAT, "images/corrupt.jpg", "cannot decode image");
    pt_expect_fail("l_huge.txt", UVAE_ERR_FORMAT, "images/huge.jpg", "larger than 8192x8192");
    pt_expect_fail("l_rgbtri.txt", UVAE_ERR_FORMAT, "trimaps/rgb_trimap.png", "is not 8-bit grey (3 channels");
    pt_expect_fail("l_space.txt", UVAE_ERR_FORMAT, "l_space.txt:3:", "malformed line");
    pt_expect_fail("l_slash.txt", UVAE_ERR_FORMAT, "l_slash.txt:3:", "malformed line (character '/'");
    pt_expect_fail("l_fields.txt", UVAE_ERR_FORMAT, "l_fields.txt:1:", "malformed line");
    pt_expect_fail("l_empty.txt", UVAE_ERR_FORMAT, "l_empty.txt", "names no images");
    pt_expect_fail("missing.txt", UVAE_ERR_IO, "annotations/missing.txt", "cannot open list");
    pt_path(lp, sizeof lp, "annotations/%s", "good.txt");
    CHECK(uvae_pets_load(pt_dir, lp, 0, &p) == UVAE_ERR_ARG, "size 0 accepted");

    pt_hostile();

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", pt_dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", pt_dir);
}

static void pt_metrics(void) {
    uvae_confusion c;
    uvae_seg_metrics r;
    const double eps = 1e-12;
    /* matrix 1, m[truth][pred]:
         truth 0: 50  5  5      row 60, col0 = 50+10+4 = 64  -> IoU0 = 50/(60+64-50) = 50/74
         truth 1: 10 80 10      row 100, col1 = 5+80+6 = 91  -> IoU1 = 80/(100+91-80) = 80/111
         truth 2:  4  6 20      row 30, col2 = 5+10+20 = 35  -> IoU2 = 20/(30+35-20) = 20/45
       fg = {0,2}: TP = 50+5+4+20 = 79, FP = 10+10 = 20, FN = 5+6 = 11 -> pet IoU 79/110,
       dice 158/189; pixel acc = 150/190 */
    memset(&c, 0, sizeof c);
    {
        static const int64_t m[3][3] = {{50, 5, 5}, {10, 80, 10}, {4, 6, 20}};
        memcpy(c.m, m, sizeof m);
    }
    r = uvae_confusion_metrics(&c);
    CHECK(fabs(r.iou[0] - 50.0 / 74) < eps && fabs(r.iou[1] - 80.0 / 111) < eps && fabs(r.iou[2] - 20.0 / 45) < eps,
          "m1 iou %.15g %.15g %.15g", r.iou[0], r.iou[1], r.iou[2]);
    CHECK(fabs(r.miou - (50.0 / 74 + 80.0 / 111 + 20.0 / 45) / 3) < eps, "m1 miou %.15g", r.miou);
    CHECK(fabs(r.pet_iou - 79.0 / 110) < eps, "m1 pet iou %.15g", r.pet_iou);
    CHECK(fabs(r.dice - 158.0 / 189) < eps, "m1 dice %.15g", r.dice);
    CHECK(fabs(r.pixel_acc - 150.0 / 190) < eps, "m1 pixel acc %.15g", r.pixel_acc);

    /* matrix 2, built with uvae_confusion_add; no border anywhere (IoU2 = 0/0 -> 1):
       truth 0 0 0 1 1 1 1 1, pred 0 1 1 0 1 1 1 1 -> m00 1, m01 2, m10 1, m11 4 ; pairs with 7 and
       255 skipped. IoU0 = 1/(3+2-1) = 1/4, IoU1 = 4/(5+6-4) = 4/7, mIoU = (1/4+4/7+1)/3;
       fg: TP 1, FP 1, FN 2 -> pet IoU 1/4, dice 2/5; acc 5/8 */
    memset(&c, 0, sizeof c);
    {
        const unsigned char t[10] = {0, 0, 0, 1, 1, 1, 1, 1, 7, 2}, pr[10] = {0, 1, 1, 0, 1, 1, 1, 1, 0, 255};
        uvae_confusion_add(&c, t, pr, 6);
        uvae_confusion_add(&c, t + 6, pr + 6, 4);
    }
    r = uvae_confusion_metrics(&c);
    CHECK(c.m[0][0] == 1 && c.m[0][1] == 2 && c.m[1][0] == 1 && c.m[1][1] == 4 && c.m[2][2] == 0 && c.m[2][0] == 0,
          "m2 counts");
    CHECK(fabs(r.iou[0] - 0.25) < eps && fabs(r.iou[1] - 4.0 / 7) < eps && r.iou[2] == 1.0,
          "m2 iou %.15g %.15g %.15g", r.iou[0], r.iou[1], r.iou[2]);
    CHECK(fabs(r.miou - (0.25 + 4.0 / 7 + 1.0) / 3) < eps, "m2 miou %.15g", r.miou);
    CHECK(fabs(r.pet_iou - 0.25) < eps && fabs(r.dice - 0.4) < eps && fabs(r.pixel_acc - 5.0 / 8) < eps,
          "m2 pet iou %.15g dice %.15g acc %.15g", r.pet_iou, r.dice, r.pixel_acc);

    /* matrix 3: perfect border-only prediction; pet and background absent -> 1 by convention */
    memset(&c, 0, sizeof c);
    c.m[2][2] = 7;
    r = uvae_confusion_metrics(&c);
    CHECK(r.iou[0] == 1.0 && r.iou[1] == 1.0 && r.iou[2] == 1.0 && r.miou == 1.0 && r.pet_iou == 1.0 &&
          r.dice == 1.0 && r.pixel_acc == 1.0, "m3 all perfect");
    /* matrix 4: everything wrong between pet and border counts as right for the foreground */
    memset(&c, 0, sizeof c);
    c.m[0][2] = 3; c.m[2][0] = 1;
    r = uvae_confusion_metrics(&c);
    CHECK(r.iou[0] == 0.0 && r.iou[2] == 0.0 && r.iou[1] == 1.0 && r.pixel_acc == 0.0 && r.pet_iou == 1.0 && r.dice == 1.0,
          "m4 iou %g %g %g pet %g acc %g", r.iou[0], r.iou[1], r.iou[2], r.pet_iou, r.pixel_acc);
}

/* uvae_resize_bilinear: the identity at the same size (bitwise), hand-computed small cases, a linear
   ramp (reproduced wherever the source coordinate needs no clamping: always when shrinking), and
   integer enlargements against the library's bilinear upsample op (itself checked against
   PyTorch's F.interpolate in the parity suite). */
static void pt_resize(void) {
    float a[2 * 7 * 9], b[2 * 18 * 18], c[2 * 18 * 18];
    uvae_rng r;
    {   /* same size: every weight is 0, so the values come back as they are */
        uvae_rng_seed(&r, 5);
        for (int i = 0; i < 2 * 7 * 9; i++) a[i] = uvae_rng_uniform(&r) - 0.5f;
        CHECK(uvae_resize_bilinear(a, 2, 7, 9, b, 7, 9) == UVAE_OK && memcmp(a, b, sizeof(float) * 2 * 7 * 9) == 0,
              "resize: same size is not the identity");
    }
    {   /* 1x4 -> 1x2: source x = (i + 0.5) * 2 - 0.5 = 0.5, 2.5; 1x2 -> 1x4: x = 0 (clamped), 0.25, 0.75, 1 (edge) */
        const float r4[4] = {1, 2, 3, 4}, r2[2] = {1, 3};
        CHECK(uvae_resize_bilinear(r4, 1, 1, 4, b, 1, 2) == UVAE_OK && b[0] == 1.5f && b[1] == 3.5f,
              "resize 4 -> 2: %g %g (want 1.5 3.5)", b[0], b[1]);
        CHECK(uvae_resize_bilinear(r2, 1, 1, 2, b, 1, 4) == UVAE_OK && b[0] == 1.0f && b[1] == 1.5f && b[2] == 2.5f && b[3] == 3.0f,
              "resize 2 -> 4: %g %g %g %g (want 1 1.5 2.5 3)", b[0], b[1], b[2], b[3]);
    }
    {   /* 7x9 -> 5x4 of f(y, x) = 3y + 0.5x + 1: f at source y = (i + 0.5) * 7/5 - 0.5, x = (j + 0.5) * 9/4 - 0.5 */
        double worst = 0;
        for (int y = 0; y < 7; y++)
            for (int x = 0; x < 9; x++) a[y * 9 + x] = 3.0f * (float)y + 0.5f * (float)x + 1.0f;
        CHECK(uvae_resize_bilinear(a, 1, 7, 9, b, 5, 4) == UVAE_OK, "resize 7x9 -> 5x4: %s", uvae_last_error());
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 4; j++) {
                double sy = (i + 0.5) * 7.0 / 5.0 - 0.5, sx = (j + 0.5) * 9.0 / 4.0 - 0.5;
                double d = fabs(b[i * 4 + j] - (3 * sy + 0.5 * sx + 1));
                if (d > worst) worst = d;
            }
        CHECK(worst < 1e-5, "resize 7x9 -> 5x4 of a ramp: off by %g", worst);
    }
    for (int s = 2; s <= 3; s++) {   /* x2 and x3 against uvae_upsample(..., UVAE_BILINEAR) */
        uvae_ctx *ctx = uvae_ctx_new(0);
        uvae_tensor *x = uvae_tensor_new(4, (int[]){1, 2, 5, 6}), *y;
        double worst = 0;
        CHECK(ctx && x, "resize: context or tensor: %s", uvae_last_error());
        if (!ctx || !x) { uvae_ctx_free(ctx); uvae_tensor_free(x); continue; }
        uvae_rng_seed(&r, 9 + (uint64_t)s);
        for (int i = 0; i < 2 * 5 * 6; i++) x->data[i] = 2 * uvae_rng_uniform(&r) - 1;
        uvae_ctx_reset(ctx, 0);
        y = uvae_upsample(ctx, x, s, UVAE_BILINEAR);
        CHECK(y && uvae_resize_bilinear(x->data, 2, 5, 6, c, 5 * s, 6 * s) == UVAE_OK, "resize x%d: %s", s, uvae_last_error());
        for (int i = 0; y && i < 2 * 5 * s * 6 * s; i++)
            if (fabs(c[i] - y->data[i]) > worst) worst = fabs(c[i] - y->data[i]);
        CHECK(y && worst < 1e-6, "resize x%d vs uvae_upsample: off by %g", s, worst);
        uvae_tensor_free(x);
        uvae_ctx_free(ctx);
    }
    CHECK(uvae_resize_bilinear(a, 1, 0, 9, b, 5, 4) == UVAE_ERR_ARG && strstr(uvae_last_error(), "uvae_resize_bilinear"),
          "resize: a 0x9 source must be refused: %s", uvae_last_error());
    CHECK(uvae_resize_bilinear(NULL, 1, 7, 9, b, 5, 4) == UVAE_ERR_ARG, "resize: NULL source must be refused");
}

static void pt_real(void) {
    const char *dir = UVT_DATA_DIR "/oxford-pets", *list = UVT_DATA_DIR "/oxford-pets/annotations/trainval.txt";
    FILE *f = fopen(list, "rb");
    uvae_pets p;
    clock_t t0;
    int st;
    if (!f) { printf("SKIP pets: " UVT_DATA_DIR "/oxford-pets not found\n"); return; }
    fclose(f);
    t0 = clock();
    st = uvae_pets_load(dir, list, 64, &p);
    CHECK(st == UVAE_OK, "real pets: %s", uvae_last_error());
    if (st != UVAE_OK) return;
    {
        double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
        size_t seen[3] = {0, 0, 0}, bad = 0;
        float mean[3], std[3];
        CHECK(p.n == 300 && p.size == 64, "real pets: n %d size %d", p.n, p.size);
        for (size_t k = 0; k < (size_t)p.n * 64 * 64; k++) {
            if (p.masks[k] > 2) bad++;
            else seen[p.masks[k]]++;
        }
        CHECK(bad == 0, "real pets: %zu mask values outside 0..2", bad);
        CHECK(seen[0] && seen[1] && seen[2], "real pets: classes %zu %zu %zu", seen[0], seen[1], seen[2]);
        uvae_pets_stats(&p, mean, std);
        for (int c = 0; c < 3; c++)
            CHECK(mean[c] > 0.2f && mean[c] < 0.8f && std[c] > 0.05f && std[c] < 0.5f, "real pets: channel %d mean %g std %g",
                  c, mean[c], std[c]);
        printf("pets: %d images at 64x64 in %.2f s cpu; mean %.4f %.4f %.4f, std %.4f %.4f %.4f; "
               "pixels pet %.3f background %.3f border %.3f\n", p.n, secs, mean[0], mean[1], mean[2], std[0], std[1], std[2],
               (double)seen[0] / (p.n * 4096.0), (double)seen[1] / (p.n * 4096.0), (double)seen[2] / (p.n * 4096.0));
        uvae_pets_free(&p);
    }
}

void suite_pets(void) {
    pt_synthetic();
    pt_metrics();
    pt_resize();
    pt_real();
}
