/* fuzz/fuzz_pets_list.c — the Oxford-IIIT Pet split-list parser. Input: the list file's bytes. */
#include "fuzz.h"

enum { FZ_MAX_NAMES = 256 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *name = "fuzz/annotations/trainval.txt";
    static char names[FZ_MAX_NAMES][64];
    uvae__mem m;
    int n, n2, cap;
    m.p = data;
    m.n = size;
    n = uvae__pets_read_list_from(name, &m, NULL, 0);   /* counting only */
    if (n < 0) {
        fz_check_failure(n, name, NULL);
        if (n != UVAE_ERR_FORMAT) abort();
        return 0;
    }
    cap = n < FZ_MAX_NAMES ? n : FZ_MAX_NAMES;
    n2 = uvae__pets_read_list_from(name, &m, names, cap);
    if (n > cap) {   /* more names than room: an argument error, never an overflow */
        if (n2 != UVAE_ERR_ARG) abort();
        fz_check_failure(n2, name, NULL);
        n2 = uvae__pets_read_list_from(name, &m, names, FZ_MAX_NAMES);
        if (n2 != UVAE_ERR_ARG) abort();
        return 0;
    }
    if (n2 != n) abort();
    for (int i = 0; i < n; i++) {   /* every name: 1..63 characters of [A-Za-z0-9_-] */
        size_t len = strlen(names[i]);
        if (len < 1 || len > 63) abort();
        for (size_t k = 0; k < len; k++)
            if (!uvae__pets_name_char((unsigned char)names[i][k])) abort();
    }
    return 0;
}
