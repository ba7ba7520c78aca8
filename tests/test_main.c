/* tests/test_main.c — runs every suite; the only file with UNETVAE_IMPLEMENTATION. */
#define UNETVAE_IMPLEMENTATION
#include "test.h"
#include <string.h>
#include <time.h>

int uvt_pass, uvt_fail;
static double uvt_torch_rel;

double uvt_close(const float *a, const float *b, size_t n, double rtol, double atol, double *max_rel) {
    double worst = 0, rel = 0, big = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)b[i]) > big) big = fabs((double)b[i]);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double q = d / (atol + rtol * fabs((double)b[i]));
        if (!(q <= worst)) worst = q;                 /* NaN makes worst NaN -> fails <= 1 */
        /* relative error, over elements that are not near-cancellations (|b| >= 1e-3 max|b|) */
        if (fabs((double)b[i]) > atol && fabs((double)b[i]) >= 1e-3 * big && d / fabs((double)b[i]) > rel)
            rel = d / fabs((double)b[i]);
    }
    if (max_rel) *max_rel = rel;
    return worst;
}

void uvt_note_torch_rel(double rel) { if (rel > uvt_torch_rel) uvt_torch_rel = rel; }

static const struct { const char *name; void (*fn)(void); } suites[] = {
    {"core", suite_core}, {"grad", suite_grad}, {"optim", suite_optim},
    {"ckpt", suite_ckpt}, {"parity", suite_parity},
    {"data", suite_data}, {"pets", suite_pets}, {"image", suite_image},
    {"unet", suite_unet}, {"cvae", suite_cvae}, {"resume", suite_resume},
    {"hostile", suite_hostile},
};

/* ./test_unetvae [--poison] [SUITE]: every suite, or one; --poison fills the arena's unzeroed
   floats with NaN (uvae__cpu_poison), so an op that leaves part of its output unwritten fails */
int main(int argc, char **argv) {
    clock_t t0 = clock();
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--poison")) uvae__cpu_poison(1);
        else only = argv[i];
    }
    if (only) {   /* a name that is no suite is an error, not a run that checks nothing */
        size_t i = 0;
        while (i < sizeof suites / sizeof suites[0] && strcmp(only, suites[i].name) != 0) i++;
        if (i == sizeof suites / sizeof suites[0]) {
            fprintf(stderr, "test_unetvae: no suite '%s'; usage: test_unetvae [--poison] [SUITE], SUITE one of:", only);
            for (i = 0; i < sizeof suites / sizeof suites[0]; i++) fprintf(stderr, " %s", suites[i].name);
            fprintf(stderr, "\n");
            return 2;
        }
    }
    if (uvae__cpu_poison(-1)) printf("arena poisoned: unzeroed floats start as NaN\n");
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
        if (only && strcmp(only, suites[i].name) != 0) continue;
        int p = uvt_pass, f = uvt_fail;
        suites[i].fn();
        printf("suite %-8s %d passed, %d failed\n", suites[i].name, uvt_pass - p, uvt_fail - f);
    }
    if (uvt_torch_rel > 0) printf("largest relative error against PyTorch: %.3g\n", uvt_torch_rel);
    printf("cpu time: %.1f s\n", (double)(clock() - t0) / CLOCKS_PER_SEC);
    printf("%d passed, %d failed\n", uvt_pass, uvt_fail);
    fflush(stdout);   /* before LeakSanitizer's exit-time report */
    return uvt_fail ? 1 : 0;
}
