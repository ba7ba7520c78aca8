/* fuzz/fuzz_pets_image.c — one Oxford-IIIT Pet image (JPEG or PNG) and its trimap (PNG) through
   stb_image and the loader's checks (formats, size limits, 8-bit grey trimap, equal sizes, values
   1..3), then the resize to S x S. Input: fuzz/fuzz.h's two-part layout, image then trimap; S is
   flags % 24 + 1. The Makefile builds this harness with smaller UVAE_MAX_IMAGE_* limits so that a
   tiny header claiming a huge image is refused before stb spends seconds decoding it. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *ni = "fuzz/images/Abyssinian_1.jpg", *nt = "fuzz/annotations/trimaps/Abyssinian_1.png";
    static float img[3 * 24 * 24];
    static unsigned char mask[24 * 24];
    fz_parts p = fz_split(data, size);
    int S = (int)(p.flags % 24) + 1, st;
    memset(mask, 0xee, sizeof mask);
    st = uvae__pets_load_pair(ni, &p.a, nt, &p.b, S, img, mask);
    if (st == UVAE_OK) {
        for (int k = 0; k < 3 * S * S; k++)
            if (!(img[k] >= 0.0f && img[k] <= 1.0f)) abort();
        for (int k = 0; k < S * S; k++)
            if (mask[k] > 2) abort();
    } else {
        fz_check_failure(st, ni, nt);
    }
    return 0;
}
