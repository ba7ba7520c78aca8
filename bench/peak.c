/* bench/peak.c — this CPU's fp32 FMA peak, per core and on every core, to judge the GEMM against.
     cc -O2 -fopenmp bench/peak.c -o build/peak && ./build/peak        (make bench runs it)
   Each thread runs 24 independent chains a = a * m + c of 16-wide (AVX-512) or 8-wide (AVX2)
   vectors: enough chains to cover the FMA latency on every unit. The chains start from different
   values read at run time, so the compiler cannot merge them (a loop whose chains all start from
   the same constant collapses to one chain and measures the FMA latency, not its throughput). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <immintrin.h>
#define CH(F) F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11) F(12) F(13) F(14) F(15) F(16) F(17) F(18) F(19) F(20) F(21) F(22) F(23)
#define D512(i) __m512 a##i = _mm512_set1_ps(seed[i]);
#define S512(i) a##i = _mm512_fmadd_ps(a##i, m, c);
#define R512(i) s = _mm512_add_ps(s, a##i);
__attribute__((target("avx512f"), noinline)) static float chains512(long n, const float *seed) {
    CH(D512)
    __m512 m = _mm512_set1_ps(seed[24]), c = _mm512_set1_ps(seed[25]), s = _mm512_setzero_ps();
    float out[16], t = 0;
    for (long i = 0; i < n; i++) { CH(S512) }
    CH(R512)
    _mm512_storeu_ps(out, s);
    for (int k = 0; k < 16; k++) t += out[k];
    return t;
}
#define D256(i) __m256 a##i = _mm256_set1_ps(seed[i]);
#define S256(i) a##i = _mm256_fmadd_ps(a##i, m, c);
#define R256(i) s = _mm256_add_ps(s, a##i);
__attribute__((target("avx2,fma"), noinline)) static float chains256(long n, const float *seed) {
    CH(D256)
    __m256 m = _mm256_set1_ps(seed[24]), c = _mm256_set1_ps(seed[25]), s = _mm256_setzero_ps();
    float out[8], t = 0;
    for (long i = 0; i < n; i++) { CH(S256) }
    CH(R256)
    _mm256_storeu_ps(out, s);
    for (int k = 0; k < 8; k++) t += out[k];
    return t;
}

/* GFLOP/s of `threads` threads each running n steps of the 24 chains (2 flops per lane) */
static double measure(int wide, int threads, long n, const float *seed, float *sink) {
    double t0 = now(), t;
    float acc = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(+ : acc)
#endif
    acc += wide ? chains512(n, seed) : chains256(n, seed);
    t = now() - t0;
    *sink += acc;
    return (double)threads * (double)n * 24 * (wide ? 16 : 8) * 2 / t / 1e9;
}

int main(int argc, char **argv) {
    volatile float vseed = (float)argc;   /* run-time values: nothing to fold */
    float seed[26], sink = 0;
    int threads = 1;
    (void)argv;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    for (int i = 0; i < 26; i++) seed[i] = 0.5f + 0.01f * (float)i * vseed;
    seed[24] = 0.9999f; seed[25] = 1e-4f;
    __builtin_cpu_init();
    for (int wide = 1; wide >= 0; wide--) {
        if (wide ? !__builtin_cpu_supports("avx512f") : !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
            printf("peak %s: not supported by this CPU\n", wide ? "AVX-512" : "AVX2+FMA");
            continue;
        }
        measure(wide, 1, 20000000, seed, &sink);   /* warm up (clocks) */
        {
            double one = measure(wide, 1, 100000000, seed, &sink), all = measure(wide, threads, 100000000, seed, &sink);
            printf("peak %-8s fp32 FMA: %6.1f GFLOP/s on 1 core, %6.1f GFLOP/s on %d threads\n", wide ? "AVX-512" : "AVX2+FMA", one, all,
                   threads);
        }
    }
    return sink == 12345.0f;   /* keep the results alive */
}
#else
int main(void) {
    puts("peak: x86-64 with GCC or clang only");
    return 0;
}
#endif
