/* tests/test_image.c — [image]: canvases, paste, text, PNG round trip, grid layout, plots. */
#include "test.h"
#include <string.h>
#include <stb/stb_image.h>   /* declarations only; the implementation comes with unetvae.h */

static int px_is(const unsigned char *rgb, int w, int x, int y, int r, int g, int b) {
    const unsigned char *p = rgb + ((size_t)y * w + x) * 3;
    return p[0] == r && p[1] == g && p[2] == b;
}

static int file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* Count the pixels of colour rgb, and the columns that hold at least one. */
static int count_colour(const unsigned char *img, int w, int h, const unsigned char *rgb, int *n_cols) {
    int n = 0, cols = 0;
    for (int x = 0; x < w; x++) {
        int in_col = 0;
        for (int y = 0; y < h; y++)
            if (px_is(img, w, x, y, rgb[0], rgb[1], rgb[2])) { n++; in_col = 1; }
        cols += in_col;
    }
    if (n_cols) *n_cols = cols;
    return n;
}

static void test_canvas_paste(void) {
    uvae_image im;
    CHECK(uvae_image_new(&im, 0, 5, 0, 0, 0) == UVAE_ERR_ARG && im.rgb == NULL, "w 0 refused");
    CHECK(uvae_image_new(&im, 5, 16385, 0, 0, 0) == UVAE_ERR_ARG && strstr(uvae_last_error(), "16385"), "h 16385 refused: %s", uvae_last_error());
    CHECK(uvae_image_new(&im, -3, 5, 0, 0, 0) == UVAE_ERR_ARG, "negative w refused");
    CHECK(uvae_image_new(&im, 10, 8, 1, 2, 3) == UVAE_OK && im.w == 10 && im.h == 8, "new 10x8");
    int fill_ok = 1;
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 10; x++) fill_ok &= px_is(im.rgb, 10, x, y, 1, 2, 3);
    CHECK(fill_ok, "canvas filled with the background");

    /* grey 2x3 at (1,1), scale 2: values 0, .5, 1 / -1 (clamp 0), 2 (clamp 255), NaN (0) */
    float g[6] = {0.0f, 0.5f, 1.0f, -1.0f, 2.0f, NAN};
    unsigned char want[6] = {0, 128, 255, 0, 255, 0};
    uvae_image_paste(&im, g, 1, 2, 3, 0.0f, 1.0f, 1, 1, 2);
    int paste_ok = 1, outside_ok = 1;
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 10; x++) {
            int in = x >= 1 && x < 7 && y >= 1 && y < 5;
            if (in) {
                unsigned char v = want[((y - 1) / 2) * 3 + (x - 1) / 2];
                paste_ok &= px_is(im.rgb, 10, x, y, v, v, v);
            } else outside_ok &= px_is(im.rgb, 10, x, y, 1, 2, 3);
        }
    CHECK(paste_ok, "grey paste: mapped, rounded, clamped, scaled by 2");
    CHECK(outside_ok, "grey paste: nothing outside its rectangle");

    /* RGB 1x2 in [-1,1], half off the right edge and the top: only the visible part is drawn */
    float c[6] = {1, -1, /* R */ -1, 1, /* G */ 0, 0 /* B */};
    uvae_image_paste(&im, c, 3, 1, 2, -1.0f, 1.0f, 8, -1, 2);   /* covers x 8..11, y -1..0 */
    CHECK(px_is(im.rgb, 10, 8, 0, 255, 0, 128) && px_is(im.rgb, 10, 9, 0, 255, 0, 128), "rgb paste visible part");
    CHECK(px_is(im.rgb, 10, 8, 1, 1, 2, 3), "rgb paste: row below untouched");
    uvae_image_paste(&im, c, 3, 1, 2, -1.0f, 1.0f, 100000, -2000000000, 1000000000);  /* off canvas */
    uvae_image_paste(&im, c, 2, 1, 2, -1.0f, 1.0f, 0, 0, 1);                           /* bad channels */
    CHECK(px_is(im.rgb, 10, 0, 0, 1, 2, 3), "off-canvas and invalid pastes draw nothing");

    /* labels: ids 0..3 with a 3-colour palette (3 wraps to colour 0) at (-1,6), scale 1 */
    unsigned char lab[4] = {0, 1, 2, 3}, pal[9] = {10, 20, 30, 40, 50, 60, 70, 80, 90};
    uvae_image_paste_labels(&im, lab, 1, 4, pal, 3, -1, 6, 1);
    CHECK(px_is(im.rgb, 10, 0, 6, 40, 50, 60) && px_is(im.rgb, 10, 1, 6, 70, 80, 90) &&
          px_is(im.rgb, 10, 2, 6, 10, 20, 30) && px_is(im.rgb, 10, 3, 6, 1, 2, 3) && px_is(im.rgb, 10, 0, 7, 1, 2, 3),
          "label paste: palette, id %% n_colors, clipped at the left");
    uvae_image_free(&im);
    CHECK(im.rgb == NULL && im.w == 0, "free zeroes");
    uvae_image_free(&im);   /* twice is fine */
}

static void test_text(void) {
    uvae_image im;
    if (uvae_image_new(&im, 40, 30, 0, 0, 0) != UVAE_OK) { CHECK(0, "new: %s", uvae_last_error()); return; }
    /* "Hi" at (30,4), scale 2: the 'i' runs past the right edge and is clipped */
    int tw = uvae_image_text(&im, 30, 4, "Hi", 2, 255, 255, 255);
    CHECK(tw == 2 * uvae_image_text(NULL, 0, 0, "Hi", 1, 0, 0, 0) && tw > 12, "text width %d is scale x the unscaled width", tw);
    int inside = 0, outside = 0, other = 0;
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < 40; x++) {
            int white = px_is(im.rgb, 40, x, y, 255, 255, 255);
            if (!white && !px_is(im.rgb, 40, x, y, 0, 0, 0)) other++;
            if (white && x >= 30 && y >= 4 && y < 4 + 24) inside++;
            else if (white) outside++;
        }
    CHECK(inside > 20 && outside == 0 && other == 0, "text: %d px drawn in its box, %d outside, %d other", inside, outside, other);
    /* wholly outside, and absurd coordinates: nothing drawn; a non-ASCII byte and '\n' are fine */
    unsigned char before[40 * 30 * 3];
    memcpy(before, im.rgb, sizeof before);
    uvae_image_text(&im, -500, 10, "left", 3, 9, 9, 9);
    uvae_image_text(&im, 2000000000, -2000000000, "far", 1000000, 9, 9, 9);
    CHECK(memcmp(before, im.rgb, sizeof before) == 0, "text outside the canvas draws nothing");
    tw = uvae_image_text(&im, 0, 0, "a\xe9\nlonger", 1, 200, 0, 0);
    CHECK(tw == uvae_image_text(NULL, 0, 0, "longer", 1, 0, 0, 0), "multi-line width is the widest line (%d)", tw);
    int red_second_line = 0;
    for (int y = 12; y < 24; y++)
        for (int x = 0; x < 30; x++) red_second_line += px_is(im.rgb, 40, x, y, 200, 0, 0);
    CHECK(red_second_line > 10, "'\\n' moves down 12 px (%d px on line 2)", red_second_line);
    uvae_image_free(&im);
}

static void test_png(void) {
    const char *path = "/tmp/uvae_test_image.png", *bad = "/tmp/uvae_no_such_dir_71/x.png";
    uvae_image im;
    if (uvae_image_new(&im, 37, 23, 0, 0, 0) != UVAE_OK) { CHECK(0, "new: %s", uvae_last_error()); return; }
    for (size_t i = 0; i < (size_t)37 * 23 * 3; i++) im.rgb[i] = (unsigned char)(i * 7 + (i / 111) * 13);
    uvae_image_text(&im, 2, 2, "png", 2, 255, 255, 0);
    remove(path);
    CHECK(uvae_image_save_png(&im, path) == UVAE_OK, "save: %s", uvae_last_error());
    CHECK(!file_exists("/tmp/uvae_test_image.png.tmp"), "no temp file after a save");
    int w = 0, h = 0, comp = 0;
    unsigned char *back = stbi_load(path, &w, &h, &comp, 3);
    CHECK(back && w == 37 && h == 23 && comp == 3, "PNG reads back 37x23 RGB (got %dx%d, %d)", w, h, comp);
    CHECK(back && memcmp(back, im.rgb, (size_t)37 * 23 * 3) == 0, "PNG pixels identical");
    stbi_image_free(back);

    CHECK(uvae_image_save_png(&im, bad) == UVAE_ERR_IO, "save into a missing directory fails with UVAE_ERR_IO");
    CHECK(strstr(uvae_last_error(), bad) != NULL, "the error names the path: %s", uvae_last_error());
    CHECK(!file_exists("/tmp/uvae_no_such_dir_71/x.png.tmp") && !file_exists(bad), "nothing left behind");
    /* the temp file is created, then the rename onto a directory fails: the temp file is removed */
    CHECK(uvae_image_save_png(&im, "/tmp/.") == UVAE_ERR_IO && strstr(uvae_last_error(), "/tmp/."), "rename failure: %s", uvae_last_error());
    CHECK(!file_exists("/tmp/..tmp"), "temp file removed after a failed rename");
    CHECK(uvae_image_save_png(NULL, path) == UVAE_ERR_ARG, "NULL image refused");
    uvae_image_free(&im);
    remove(path);
}

static void test_grid(void) {
    enum { N = 25, S = 28 };
    static float imgs[N * S * S];
    char text[N][16];
    const char *labels[N];
    /* image i: a ring of radius 4 + i/2 on a dark background, brightness rising with i */
    for (int i = 0; i < N; i++) {
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                float d = sqrtf((float)((x - 13.5) * (x - 13.5) + (y - 13.5) * (y - 13.5)));
                float r = 4.0f + 0.4f * (float)i;
                imgs[(i * S + y) * S + x] = fabsf(d - r) < 1.5f ? 0.4f + 0.6f * (float)i / (N - 1) : 0.0f;
            }
        snprintf(text[i], sizeof text[i], "%d->%d", i % 10, (i * 3 + 1) % 10);
        labels[i] = i == 12 ? NULL : text[i];
    }
    const char *path = "/tmp/uvae_grid.png";
    CHECK(uvae_grid_png(path, imgs, N, 1, S, S, 0.0f, 1.0f, 5, 2, labels, "rings: true->predicted") == UVAE_OK,
          "grid: %s", uvae_last_error());
    /* layout: G=4, cell 56x56, caption 12, title 14: W = 4 + 5*(56+4), H = 14 + 4 + 5*(56+12+4) */
    int W = 4 + 5 * (56 + 4), H = 14 + 4 + 5 * (56 + 12 + 4), w = 0, h = 0, comp = 0;
    unsigned char *g = stbi_load(path, &w, &h, &comp, 3);
    CHECK(g && w == W && h == H && W == 304 && H == 378, "grid is %dx%d, want %dx%d", w, h, W, H);
    if (g && w == W && h == H) {
        /* cell 7 (row 1, col 2) at (4 + 2*60, 18 + 72): its pixel (y 13, x 13 - r) lies on the ring */
        int cx = 4 + 2 * 60, cy = 18 + 72, ring_x = (int)(13.5f - (4.0f + 0.4f * 7)) , v = 0;
        float val = imgs[(7 * S + 13) * S + ring_x];
        v = (int)(val * 255.0f + 0.5f);
        CHECK(val > 0 && px_is(g, W, cx + 2 * ring_x + 1, cy + 2 * 13 + 1, v, v, v), "cell 7's ring pixel at its scaled place");
        CHECK(px_is(g, W, cx - 1, cy, 48, 48, 48) && px_is(g, W, cx + 56, cy, 48, 48, 48), "gaps are background");
        int cap7 = 0, cap12 = 0, title = 0;
        for (int y = 0; y < 12; y++)
            for (int x = 0; x < 56; x++) {
                cap7 += px_is(g, W, cx + x, cy + 56 + y, 255, 255, 255);
                cap12 += px_is(g, W, 4 + 2 * 60 + x, 18 + 2 * 72 + 56 + y, 255, 255, 255);
            }
        for (int y = 0; y < 14; y++)
            for (int x = 0; x < W; x++) title += px_is(g, W, x, y, 255, 255, 255);
        CHECK(cap7 > 15 && cap12 == 0 && title > 40, "captions (%d px; none for a NULL label: %d) and title (%d px)", cap7, cap12, title);
    }
    stbi_image_free(g);
    /* no labels, no title, cols > n: W = 4 + 3*(28+4), H = 4 + 1*(28+4) */
    CHECK(uvae_grid_png("/tmp/uvae_grid_small.png", imgs, 3, 1, S, S, 0, 1, 8, 1, NULL, NULL) == UVAE_OK, "small grid");
    g = stbi_load("/tmp/uvae_grid_small.png", &w, &h, &comp, 3);
    CHECK(g && w == 100 && h == 36, "small grid is %dx%d, want 100x36", w, h);
    stbi_image_free(g);
    remove("/tmp/uvae_grid_small.png");
    CHECK(uvae_grid_png("/tmp/uvae_grid_big.png", imgs, N, 1, S, S, 0, 1, 5, 200, NULL, NULL) == UVAE_ERR_ARG &&
          !file_exists("/tmp/uvae_grid_big.png"), "grid over 16384 px refused: %s", uvae_last_error());
    CHECK(uvae_grid_png("/tmp/uvae_grid_big.png", imgs, N, 2, S, S, 0, 1, 5, 1, NULL, NULL) == UVAE_ERR_ARG, "2 channels refused");
}

static void test_plot(void) {
    enum { P = 200 };
    static float a[P], b[P], c[P];
    for (int i = 0; i < P; i++) {
        a[i] = 2.0f * expf(-(float)i / 60.0f) + 0.1f * sinf((float)i * 0.3f);    /* a falling loss */
        b[i] = i < P / 2 ? NAN : 1.2f * expf(-(float)i / 90.0f);                  /* second half only */
        c[i] = 0.3f + 0.002f * (float)i;
    }
    const float *series[3] = {a, b, c};
    const char *names[3] = {"train loss", "val loss (from 100)", "lr x 10"};
    const char *path = "/tmp/uvae_plot.png";
    CHECK(uvae_plot_png(path, 480, 300, "training curves", names, series, 3, P) == UVAE_OK, "plot: %s", uvae_last_error());
    int w = 0, h = 0, comp = 0;
    unsigned char *img = stbi_load(path, &w, &h, &comp, 3);
    CHECK(img && w == 480 && h == 300, "plot is %dx%d, want 480x300", w, h);
    if (img && w == 480 && h == 300) {
        int cols[3], n[3];
        for (int s = 0; s < 3; s++) n[s] = count_colour(img, w, h, uvae_plot_colors[s], &cols[s]);
        CHECK(n[0] > 300 && n[1] > 150 && n[2] > 300, "series colours present (%d, %d, %d px)", n[0], n[1], n[2]);
        /* the NaN half is a gap: series 1 spans about half the columns of series 0 (+ its swatch) */
        CHECK(cols[1] > 0.4 * cols[0] && cols[1] < 0.62 * cols[0], "gap: series 1 in %d columns, series 0 in %d", cols[1], cols[0]);
        CHECK(count_colour(img, w, h, (const unsigned char[]){0, 0, 0}, NULL) > 500, "axes and text in black");
        CHECK(count_colour(img, w, h, uvae_plot_colors[3], NULL) == 0, "no fourth series colour");
    }
    stbi_image_free(img);
    /* all-NaN and constant series, one point, no names or title: still a valid plot */
    float nan1[1] = {NAN}, k1[1] = {3.0f};
    const float *s2[2] = {nan1, k1};
    CHECK(uvae_plot_png("/tmp/uvae_plot_small.png", 64, 48, NULL, NULL, s2, 2, 1) == UVAE_OK, "small plot: %s", uvae_last_error());
    remove("/tmp/uvae_plot_small.png");
    CHECK(uvae_plot_png(path, 480, 300, NULL, NULL, series, 9, P) == UVAE_ERR_ARG, "9 series refused");
    CHECK(uvae_plot_png(path, 63, 300, NULL, NULL, series, 3, P) == UVAE_ERR_ARG, "too narrow refused");
    CHECK(uvae_plot_png(path, 480, 16385, NULL, NULL, series, 3, P) == UVAE_ERR_ARG, "too tall refused");
    CHECK(uvae_plot_png("/tmp/uvae_no_such_dir_71/p.png", 480, 300, NULL, NULL, series, 3, P) == UVAE_ERR_IO &&
          strstr(uvae_last_error(), "/tmp/uvae_no_such_dir_71/p.png"), "plot into a missing directory: %s", uvae_last_error());
}

void suite_image(void) {
    test_canvas_paste();
    test_text();
    test_png();
    test_grid();
    test_plot();
}
