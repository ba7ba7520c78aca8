/* fuzz/fuzz_cifar.c — the CIFAR-10 binary reader, plain and gzip, one or two files.
   Input: fuzz/fuzz.h's two-part layout. flags bit 2 set: two files (part 1, part 2), else part 1
   and part 2 together are one file. flags bit 0 / bit 1: the harness gzips part 1 / part 2. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *names[2] = {"fuzz_data_batch_1.bin", "fuzz_data_batch_2.bin.gz"};
    fz_parts p = fz_split(data, size);
    unsigned char *ga = NULL, *gb = NULL;
    uvae__mem mems[2];
    uvae_dataset d;
    int st, two = (p.flags & 4) != 0;
    if (!two && size >= 5) { p.a.n += p.b.n; p.b.n = 0; }
    if (p.flags & 1) { ga = fz_gzip(p.a.p, p.a.n, &p.a.n, 0); p.a.p = ga; if (!ga) p.a.n = 0; }
    if (two && (p.flags & 2)) { gb = fz_gzip(p.b.p, p.b.n, &p.b.n, 0); p.b.p = gb; if (!gb) p.b.n = 0; }
    mems[0] = p.a;
    mems[1] = p.b;
    st = uvae__ds_load_cifar10_from(names, two ? 2 : 1, mems, &d);
    if (st == UVAE_OK) {
        uvae_tensor *x = uvae_tensor_new(4, (int[]){1, 3, 32, 32}), *y = uvae_tensor_new(1, (int[]){1});
        int last = d.n - 1;
        if (d.n < 1 || d.channels != 3 || d.height != 32 || d.width != 32 || d.n_classes != 10) abort();
        for (int i = 0; i < d.n; i++)
            if (d.labels[i] > 9) abort();
        if (x && y && uvae_dataset_batch(&d, &last, 1, x, y) != UVAE_OK) abort();
        uvae_tensor_free(x);
        uvae_tensor_free(y);
        uvae_dataset_free(&d);
    } else {
        fz_check_failure(st, names[0], names[1]);
        if (d.n || d.images || d.labels) abort();
    }
    free(ga);
    free(gb);
    return 0;
}
