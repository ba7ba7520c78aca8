/* tests/test.h — a tiny test framework shared by the suites in tests/.
   Each suite is a function `void suite_NAME(void)` run by tests/test_main.c; CHECK counts one
   assertion. The runner ends with "N passed, M failed" and exits non-zero on any failure. */
#ifndef UVAE_TEST_H
#define UVAE_TEST_H
#include <stdio.h>
#include <math.h>
#include "../unetvae.h"

/* The real datasets (../shared/data beside the checkout); suites print SKIP when absent. */
#ifndef UVT_DATA_DIR
#define UVT_DATA_DIR "../shared/data"
#endif
#ifndef UVT_REF_DIR
#define UVT_REF_DIR "tests/ref"
#endif

extern int uvt_pass, uvt_fail;

#define CHECK(cond, ...) do {                                                     \
        if (cond) uvt_pass++;                                                     \
        else { uvt_fail++; printf("FAIL %s:%d: ", __FILE__, __LINE__);            \
               printf(__VA_ARGS__); printf("\n"); }                               \
    } while (0)

/* max over i of |a-b| / (atol + rtol*|b|); <= 1 means every element is within tolerance.
   Also returns the largest plain relative error |a-b|/|b| through max_rel (may be NULL), among
   elements with |b| > atol and |b| >= 1e-3 max|b| (near-cancellations say nothing about the op). */
double uvt_close(const float *a, const float *b, size_t n, double rtol, double atol, double *max_rel);

/* Records the largest relative error seen against PyTorch (printed by the runner). */
void uvt_note_torch_rel(double rel);

void suite_core(void);
void suite_grad(void);
void suite_parity(void);
void suite_ckpt(void);
void suite_optim(void);
void suite_data(void);
void suite_pets(void);
void suite_image(void);
void suite_unet(void);
void suite_cvae(void);
void suite_resume(void);
void suite_hostile(void);
#endif
