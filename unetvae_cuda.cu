/* unetvae_cuda.cu — the GPU kernels of unetvae.h (the uvae__cu_* functions of its [kernels] block).

   Build:  nvcc -O3 -DUNETVAE_CUDA -c unetvae_cuda.cu      (CUDA runtime only: no cuBLAS/cuDNN)

   Every kernel computes what its uvae__cpu_* twin in unetvae.h computes, in plain fp32 (doubles
   where the CPU accumulates in double), on the default stream. Design rules:
     - every output element is written by one thread in a fixed order, so results are
       deterministic; the scatters (col2im, avg-pool and upsample backward) are written as gathers
       over the outputs that touch each input, in the CPU's order. The one atomicAdd is max-pool
       backward (the contract gives it no window to gather over); its result is order-free unless
       pooling windows overlap (stride < kernel).
     - reductions: each block sums its share in double through a fixed tree (warp shuffles, then
       shared memory) into a partial; a later kernel sums the partials in a fixed order (per
       channel, [channel sums]: each of its blocks does). The partials live in a small device
       buffer allocated on first use (uvae__h_scratch).
     - the first CUDA failure is kept as text until uvae__cu_take_error(); nothing exits.
   Shapes in the comments: [N,C,H,W] row-major, NC = N*C planes, HW = H*W. */
#include <stdio.h>
#include <string.h>
#include <stdarg.h>
#include <cuda_runtime.h>
#include <mma.h>
#include "unetvae.h"

/* ---------------------------------------------------------------------------------------------
   errors: the first failure, kept until taken */
static char uvae__cu_err[512];       /* sticky first failure ("" = none) */
static char uvae__cu_err_out[512];   /* what uvae__cu_take_error hands out */

/* Keep "unetvae_cuda.cu: <what>: <CUDA reason>" unless an earlier failure is kept; 0 on failure. */
static int uvae__h_ok(cudaError_t e, const char *fmt, ...) {
    if (e == cudaSuccess) return 1;
    (void)cudaGetLastError();        /* clear a non-sticky error so later launch checks don't see it */
    if (!uvae__cu_err[0]) {
        char what[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        snprintf(uvae__cu_err, sizeof uvae__cu_err, "unetvae_cuda.cu: %.255s: %.200s", what, cudaGetErrorString(e));
    }
    return 0;
}
/* after a kernel launch */
static int uvae__h_launched(const char *who) { return uvae__h_ok(cudaGetLastError(), "%s: kernel launch", who); }

const char *uvae__cu_take_error(void) {
    if (!uvae__cu_err[0]) return NULL;
    memcpy(uvae__cu_err_out, uvae__cu_err, sizeof uvae__cu_err_out);
    uvae__cu_err[0] = 0;
    return uvae__cu_err_out;
}

/* ---------------------------------------------------------------------------------------------
   runtime: device, memory, copies */
int uvae__cu_init(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        uvae__h_ok(e, "uvae__cu_init: no CUDA device (cudaGetDeviceCount)");
        return 1;
    }
    if (n < 1) {
        (void)cudaGetLastError();
        if (!uvae__cu_err[0])
            snprintf(uvae__cu_err, sizeof uvae__cu_err, "unetvae_cuda.cu: uvae__cu_init: no CUDA device (cudaGetDeviceCount reports 0 devices)");
        return 1;
    }
    if (!uvae__h_ok(cudaSetDevice(0), "uvae__cu_init: no CUDA device (cudaSetDevice(0))")) return 1;
    return 0;
}

void *uvae__cu_malloc(size_t bytes) {
    void *p = NULL;
    if (!uvae__h_ok(cudaMalloc(&p, bytes ? bytes : 1), "uvae__cu_malloc(%zu bytes)", bytes)) return NULL;
    return p;
}
void uvae__cu_free(void *p) {
    if (p) uvae__h_ok(cudaFree(p), "uvae__cu_free");
}
void uvae__cu_memset0(void *p, size_t bytes) {
    if (p && bytes) uvae__h_ok(cudaMemset(p, 0, bytes), "uvae__cu_memset0(%zu bytes)", bytes);
}
void uvae__cu_copy(void *dst, const void *src, size_t bytes, int dir) {
    static const char *names[3] = {"host to device", "device to host", "device to device"};
    static const cudaMemcpyKind kinds[3] = {cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice};
    if (dir < 0 || dir > 2) {
        uvae__h_ok(cudaErrorInvalidValue, "uvae__cu_copy: direction %d not in 0..2", dir);
        return;
    }
    if (bytes) uvae__h_ok(cudaMemcpy(dst, src, bytes, kinds[dir]), "uvae__cu_copy(%zu bytes, %s)", bytes, names[dir]);
}
void uvae__cu_sync(void) { uvae__h_ok(cudaDeviceSynchronize(), "uvae__cu_sync"); }

/* ---------------------------------------------------------------------------------------------
   launch helpers */
#define UVAE__TPB 256   /* threads per block of the elementwise kernels */

/* blocks for a grid-stride loop over n items (n > 0) */
static unsigned uvae__h_blocks(size_t n) {
    size_t b = (n + UVAE__TPB - 1) / UVAE__TPB;
    return (unsigned)(b < (size_t)1 << 21 ? b : (size_t)1 << 21);
}
/* grid-stride loop over [0, n) */
#define UVAE__FOR(i, n) for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)(n); i += (size_t)gridDim.x * blockDim.x)
/* launch an elementwise kernel over n items (nothing when n == 0) and check the launch */
#define UVAE__LAUNCH(n, kernel, ...) do {                                    \
        size_t n_ = (n);                                                     \
        if (n_) { kernel<<<uvae__h_blocks(n_), UVAE__TPB>>>(__VA_ARGS__); uvae__h_launched(__func__); } \
    } while (0)

/* partials of the reductions: UVAE__PARTS doubles, then one result slot */
#define UVAE__PARTS 65536
static double *uvae__h_scratch(const char *who) {
    static double *buf;
    if (!buf && !uvae__h_ok(cudaMalloc((void **)&buf, (UVAE__PARTS + 8) * sizeof(double)), "%s: reduction buffer", who)) buf = NULL;
    return buf;
}

/* ---------------------------------------------------------------------------------------------
   device helpers */

/* sum of v over the block, returned to every thread (blockDim.x a multiple of 32); a fixed tree */
static __device__ double uvae__d_block_sum(double v) {
    __shared__ double warp_sums[32];
    int lane = threadIdx.x % 32, wid = threadIdx.x / 32, nw = blockDim.x / 32;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    __syncthreads();                 /* warp_sums may still be read from a previous call */
    if (lane == 0) warp_sums[wid] = v;
    __syncthreads();
    if (wid == 0) {
        double s = lane < nw ? warp_sums[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
        if (lane == 0) warp_sums[0] = s;
    }
    __syncthreads();
    return warp_sums[0];
}
static __device__ double uvae__d_warp_sum(double v) {   /* lane 0 gets the sum */
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

/* the same arithmetic as uvae__sigmoidf in the header */
static __device__ float uvae__d_sigmoid(float x) { return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x)); }

/* softmax over dim 1 at one position of z [N,C,HW] (zp = &z[n,0,i]): m = max_c, s = sum_c e^(z-m);
   then p_c = expf(zp[c*HW] - m) / s, exactly as uvae__softmax_at computes it */
static __device__ void uvae__d_softmax_ms(const float *zp, int C, size_t HW, float *m, float *s) {
    float mx = zp[0], sum = 0;
    for (int c = 1; c < C; c++) if (zp[c * HW] > mx) mx = zp[c * HW];
    for (int c = 0; c < C; c++) sum += expf(zp[c * HW] - mx);
    *m = mx;
    *s = sum;
}


/* ---------------------------------------------------------------------------------------------
   generic reduction: out = mul * sum_i op(i) / div in double, over two kernels (deterministic) */

/* part[block] = sum of op(i) over this block's grid-stride share of [0, n) */
template <class Op>
static __global__ void uvae__k_reduce_partial(Op op, size_t n, double *part) {
    double s = 0;
    UVAE__FOR(i, n) s += op(i);
    s = uvae__d_block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}
/* s = sum part[0..G); mode 0: outf[0] = mul s / div, 1: outf[0] += (float)(mul s / div), 2: outd[0] = s */
static __global__ void uvae__k_reduce_finish(const double *part, int G, double mul, double div, int mode, float *outf, double *outd) {
    double s = 0;
    for (int g = threadIdx.x; g < G; g += blockDim.x) s += part[g];
    s = uvae__d_block_sum(s);
    if (threadIdx.x == 0) {
        if (mode == 0) outf[0] = (float)(mul * s / div);
        else if (mode == 1) outf[0] += (float)(mul * s / div);
        else outd[0] = s;
    }
}
template <class Op>
static void uvae__h_reduce(const char *who, Op op, size_t n, double mul, double div, int mode, float *outf, double *outd) {
    double *part = uvae__h_scratch(who);
    size_t g = (n + 8 * UVAE__TPB - 1) / (8 * UVAE__TPB);   /* >= 8 items per thread */
    int G = (int)(g < 1 ? 1 : g > 1024 ? 1024 : g);
    if (!part) return;
    uvae__k_reduce_partial<Op><<<G, UVAE__TPB>>>(op, n, part);
    if (!uvae__h_launched(who)) return;
    uvae__k_reduce_finish<<<1, 1024>>>(part, G, mul, div, mode, outf, outd);
    uvae__h_launched(who);
}

/* ---------------------------------------------------------------------------------------------
   [gemm] a tiled product C[M,N] (+)= A[M,K] @ B[K,N] whose operands are read through loaders:
   a(m, k) and b(k, n) give an element (the caller's bounds are checked by the kernel: m < M,
   n < N, k in the block's range), st(m, n, v, z) stores a sum. Loaders say which index runs
   along memory (a.mfast: m; b.nfast: n; a constant where the loader always has the same one)
   so that a tile's loads are coalesced along it. Plain
   matrices (uvae__cu_gemm, with op(A) = A or A^T, op(B) likewise) and the convolutions' implicit
   im2col (below) are loaders of the same two kernels:
   - uvae__k_tgemm (fp32): tiles of 64x64 outputs, 16 deep in k; 256 threads as 16x16, thread
     (ty,tx) owns rows ty+16i and columns tx+16j (i,j < 4), summing over k in increasing order
     (one thread per output: deterministic).
   - uvae__k_tgemm_tf32 (tensor cores): the same tiles; 128 threads = 4 warps, each warp a 32x32
     quarter as 2x2 wmma fragments of 16x16x8; inputs rounded to TF32 as the fragments load, sums
     in fp32, staged back through shared memory so that edges are handled per element. Off by
     default (results then differ from the CPU's by about 1e-3 relative, not the 1e-8 nmse of the
     fp32 kernel); uvae__cu_tf32(1) turns it on for every product here. Needs compute capability
     8.0 and a build for it (NVCCFLAGS=-arch=sm_80 or later).
   Split k (blockIdx.z): block z sums k in [z*kper, min(K, (z+1)*kper)) and stores with z, for
   products with few output tiles and a long k (the convolutions' weight gradient). */
#define GEMM_BM 64
#define GEMM_BN 64
#define GEMM_BK 16
template <class LA, class LB, class ST>
static __global__ void __launch_bounds__(256) uvae__k_tgemm(LA a, LB b, ST st, int M, int N, int K, int kper) {
    __shared__ float As[GEMM_BK][GEMM_BM + 1];   /* As[kk][m] = a(m0+m, k0+kk) */
    __shared__ float Bs[GEMM_BK][GEMM_BN + 1];   /* Bs[kk][n] = b(k0+kk, n0+n) */
    int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    int n0 = blockIdx.x * GEMM_BN, tilesM = (M + GEMM_BM - 1) / GEMM_BM;
    int kb = blockIdx.z * kper, ke = K - kb < kper ? K : kb + kper;
    for (int bm = blockIdx.y; bm < tilesM; bm += gridDim.y) {   /* loops only if M > 65535*64 */
        int m0 = bm * GEMM_BM;
        float acc[4][4];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
        for (int k0 = kb; k0 < ke; k0 += GEMM_BK) {
            for (int l = tid; l < GEMM_BM * GEMM_BK; l += 256) {
                int m = a.mfast ? l % GEMM_BM : l / GEMM_BK, kk = a.mfast ? l / GEMM_BM : l % GEMM_BK;
                int gm = m0 + m, gk = k0 + kk;
                As[kk][m] = gm < M && gk < ke ? a(gm, gk) : 0.0f;
            }
            for (int l = tid; l < GEMM_BN * GEMM_BK; l += 256) {
                int n = b.nfast ? l % GEMM_BN : l / GEMM_BK, kk = b.nfast ? l / GEMM_BN : l % GEMM_BK;
                int gn = n0 + n, gk = k0 + kk;
                Bs[kk][n] = gn < N && gk < ke ? b(gk, gn) : 0.0f;
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < GEMM_BK; kk++) {
                float av[4], bv[4];
                for (int i = 0; i < 4; i++) av[i] = As[kk][ty + 16 * i];
                for (int j = 0; j < 4; j++) bv[j] = Bs[kk][tx + 16 * j];
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) acc[i][j] += av[i] * bv[j];
            }
            __syncthreads();
        }
        for (int i = 0; i < 4; i++) {
            int gm = m0 + ty + 16 * i;
            if (gm >= M) continue;
            for (int j = 0; j < 4; j++) {
                int gn = n0 + tx + 16 * j;
                if (gn < N) st(gm, gn, acc[i][j], blockIdx.z);
            }
        }
    }
}

#define TC_BM 64
#define TC_BN 64
#define TC_BK 16
#define TC_LDA (TC_BK + 8)   /* shared rows, in floats: multiples of 8 keep every fragment 32-byte aligned */
#define TC_LDB (TC_BN + 8)
static_assert(TC_BM == GEMM_BM && TC_BN == GEMM_BN, "the two GEMM kernels share one grid");
template <class LA, class LB, class ST>
static __global__ void __launch_bounds__(128) uvae__k_tgemm_tf32(LA a, LB b, ST st, int M, int N, int K, int kper) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    using namespace nvcuda;
    __shared__ __align__(32) float As[TC_BM * TC_LDA];   /* As[m*TC_LDA + kk] = a(m0+m, k0+kk) */
    __shared__ __align__(32) float Bs[TC_BK * TC_LDB];   /* Bs[kk*TC_LDB + n] = b(k0+kk, n0+n) */
    __shared__ __align__(32) float Cs[TC_BM * TC_LDB];   /* the block's sums */
    int tid = threadIdx.x, warp = tid / 32, wm = warp / 2, wn = warp % 2;
    int n0 = blockIdx.x * TC_BN, tilesM = (M + TC_BM - 1) / TC_BM;
    int kb = blockIdx.z * kper, ke = K - kb < kper ? K : kb + kper;
    for (int bm = blockIdx.y; bm < tilesM; bm += gridDim.y) {   /* loops only if M > 65535*64 */
        int m0 = bm * TC_BM;
        wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[2][2];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);
        for (int k0 = kb; k0 < ke; k0 += TC_BK) {
            for (int l = tid; l < TC_BM * TC_BK; l += 128) {
                int m = a.mfast ? l % TC_BM : l / TC_BK, kk = a.mfast ? l / TC_BM : l % TC_BK;
                int gm = m0 + m, gk = k0 + kk;
                As[m * TC_LDA + kk] = gm < M && gk < ke ? a(gm, gk) : 0.0f;
            }
            for (int l = tid; l < TC_BN * TC_BK; l += 128) {
                int n = b.nfast ? l % TC_BN : l / TC_BK, kk = b.nfast ? l / TC_BN : l % TC_BK;
                int gn = n0 + n, gk = k0 + kk;
                Bs[kk * TC_LDB + n] = gn < N && gk < ke ? b(gk, gn) : 0.0f;
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < TC_BK; kk += 8) {
                wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa[2];
                wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb[2];
#pragma unroll
                for (int i = 0; i < 2; i++) {
                    wmma::load_matrix_sync(fa[i], As + (wm * 32 + i * 16) * TC_LDA + kk, TC_LDA);
                    for (int t = 0; t < fa[i].num_elements; t++) fa[i].x[t] = wmma::__float_to_tf32(fa[i].x[t]);
                }
#pragma unroll
                for (int j = 0; j < 2; j++) {
                    wmma::load_matrix_sync(fb[j], Bs + kk * TC_LDB + wn * 32 + j * 16, TC_LDB);
                    for (int t = 0; t < fb[j].num_elements; t++) fb[j].x[t] = wmma::__float_to_tf32(fb[j].x[t]);
                }
#pragma unroll
                for (int i = 0; i < 2; i++)
#pragma unroll
                    for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
            }
            __syncthreads();
        }
#pragma unroll
        for (int i = 0; i < 2; i++)
#pragma unroll
            for (int j = 0; j < 2; j++)
                wmma::store_matrix_sync(Cs + (wm * 32 + i * 16) * TC_LDB + wn * 32 + j * 16, acc[i][j], TC_LDB, wmma::mem_row_major);
        __syncthreads();
        for (int l = tid; l < TC_BM * TC_BN; l += 128) {
            int m = l / TC_BN, n = l % TC_BN, gm = m0 + m, gn = n0 + n;
            if (gm < M && gn < N) st(gm, gn, Cs[m * TC_LDB + n], blockIdx.z);
        }
        __syncthreads();                                        /* (Cs is reused by the next bm) */
    }
#endif
}
/* a kernel that is never launched: what uvae__cu_tf32 asks the runtime about (its build's PTX version) */
static __global__ void uvae__k_gemm_tf32_probe(void) {}
static int uvae__tf32_on;   /* the tiled products on the tensor cores */
int uvae__cu_tf32(int on) {
    int was = uvae__tf32_on;
    if (on > 0) {           /* a device of compute capability >= 8.0, and the kernel built for one */
        cudaFuncAttributes fa;
        int dev = 0, major = 0;
        if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
            cudaFuncGetAttributes(&fa, uvae__k_gemm_tf32_probe) != cudaSuccess || major < 8 || fa.ptxVersion < 80) {
            (void)cudaGetLastError();   /* (not a failure of the run: the fp32 kernel stays) */
            return -1;
        }
    }
    if (on >= 0) uvae__tf32_on = on > 0;
    return was;
}

/* Launch the tiled product over S k-splits of kper (S = 1: one, kper >= K). */
template <class LA, class LB, class ST>
static void uvae__h_tgemm(const char *who, LA a, LB b, ST st, int M, int N, int K, int S, int kper) {
    int tilesM = (M + GEMM_BM - 1) / GEMM_BM, tilesN = (N + GEMM_BN - 1) / GEMM_BN;
    dim3 grid((unsigned)tilesN, (unsigned)(tilesM < 65535 ? tilesM : 65535), (unsigned)S);
    if (M <= 0 || N <= 0) return;
    if (uvae__tf32_on) uvae__k_tgemm_tf32<LA, LB, ST><<<grid, 128>>>(a, b, st, M, N, K, kper);
    else uvae__k_tgemm<LA, LB, ST><<<grid, 256>>>(a, b, st, M, N, K, kper);
    uvae__h_launched(who);
}

/* plain row-major matrices: op(A)[m,k] = ta ? A[k*lda+m] : A[m*lda+k]; op(B)[k,n] = tb ? B[n*ldb+k] : B[k*ldb+n] */
struct uvae__ld_mat_a {
    const float *A;
    int lda, mfast;      /* mfast = ta */
    __device__ float operator()(int m, int k) const { return mfast ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k]; }
};
struct uvae__ld_mat_b {
    const float *B;
    int ldb, nfast;      /* nfast = !tb */
    __device__ float operator()(int k, int n) const { return nfast ? B[(size_t)k * ldb + n] : B[(size_t)n * ldb + k]; }
};
struct uvae__st_mat {    /* C[m,n] = v, or += v */
    float *C;
    int ldc, accumulate;
    __device__ void operator()(int m, int n, float v, int) const {
        float *c = C + (size_t)m * ldc + n;
        *c = accumulate ? *c + v : v;
    }
};

void uvae__cu_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                   float *C, int ldc, int accumulate) {
    uvae__ld_mat_a a = {A, lda, ta};
    uvae__ld_mat_b b = {B, ldb, !tb};
    uvae__st_mat st = {C, ldc, accumulate};
    uvae__h_tgemm(__func__, a, b, st, M, N, K, 1, K > 0 ? K : 1);
}

/* ---------------------------------------------------------------------------------------------
   [im2col] img [C,H,W] -> col [C*k*k, Ho*Wo]: col[(c*k+ki)*k+kj][oh*Wo+ow] = img[c, oh*s-p+ki, ow*s-p+kj],
   0 outside; one thread per col entry (the per-image kernels: uvae__cu_conv_im2col(1)) */
static __global__ void uvae__k_im2col(const float *img, int C, int H, int W, int k, int s, int p, int Ho, int Wo, float *col) {
    size_t HWo = (size_t)Ho * Wo;
    UVAE__FOR(idx, (size_t)C * k * k * HWo) {
        int r = (int)(idx / HWo), o = (int)(idx % HWo);
        int c = r / (k * k), ki = (r / k) % k, kj = r % k, oh = o / Wo, ow = o % Wo;
        int ih = oh * s - p + ki, iw = ow * s - p + kj;
        col[idx] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? img[((size_t)c * H + ih) * W + iw] : 0.0f;
    }
}
static void uvae__cu_im2col(const float *img, int C, int H, int W, int k, int s, int p, int Ho, int Wo, float *col) {
    UVAE__LAUNCH((size_t)C * k * k * Ho * Wo, uvae__k_im2col, img, C, H, W, k, s, p, Ho, Wo, col);
}

/* [col2im] img[c,ih,iw] += sum over (ki,kj) with oh = (ih+p-ki)/s, ow = (iw+p-kj)/s whole and in
   range of col[(c*k+ki)*k+kj][oh*Wo+ow]. A gather: one thread per pixel, adding in the CPU's
   (ki,kj) order, so no races and the same rounding as the CPU scatter. */
static __global__ void uvae__k_col2im(const float *col, int C, int H, int W, int k, int s, int p, int Ho, int Wo, float *img) {
    size_t HW = (size_t)H * W, HWo = (size_t)Ho * Wo;
    UVAE__FOR(idx, (size_t)C * HW) {
        int c = (int)(idx / HW), r = (int)(idx % HW), ih = r / W, iw = r % W;
        float v = img[idx];
        for (int ki = 0; ki < k; ki++) {
            int th = ih + p - ki, oh = th / s;
            if (th < 0 || th % s || oh >= Ho) continue;
            for (int kj = 0; kj < k; kj++) {
                int tw = iw + p - kj, ow = tw / s;
                if (tw < 0 || tw % s || ow >= Wo) continue;
                v += col[((size_t)(c * k + ki) * k + kj) * HWo + (size_t)oh * Wo + ow];
            }
        }
        img[idx] = v;
    }
}
static void uvae__cu_col2im(const float *col, int C, int H, int W, int k, int s, int p, int Ho, int Wo, float *img) {
    UVAE__LAUNCH((size_t)C * H * W, uvae__k_col2im, col, C, H, W, k, s, p, Ho, Wo, img);
}

/* n / d for 0 <= n < 2^31 by a multiply: a GPU has no integer divide (a division by a runtime
   int is a routine of about 20 instructions), and the loaders below split several indices per
   element. With s = ceil(log2 d) and M = floor(2^(32+s) / d) + 1 = 2^32 + m:
   n / d = floor(n M / 2^(32+s)) = (umulhi(n, m) + n) >> s, exact because M d - 2^(32+s) <= d <= 2^s
   keeps n (M d - 2^(32+s)) / (d 2^(32+s)) below 1/d (Granlund and Montgomery's round-up method). */
struct uvae__fdiv {
    unsigned d, m, s;
    __device__ int q(int n) const { return (int)((__umulhi((unsigned)n, m) + (unsigned)n) >> s); }
    __device__ int r(int n, int qn) const { return n - qn * (int)d; }   /* n % d, given qn = q(n) */
};
static uvae__fdiv uvae__fdiv_of(int d) {
    uvae__fdiv f;
    unsigned s = 0;
    while ((1u << s) < (unsigned)d) s++;
    f.d = (unsigned)d;
    f.s = s;
    f.m = (unsigned)((((unsigned long long)1 << 32) * (((unsigned long long)1 << s) - (unsigned)d)) / (unsigned)d + 1);
    return f;
}

/* [conv kernels] the three products of a convolution (unetvae.h, [ops/conv kernels]), each one
   tiled product over the whole batch with im2col done by the loaders (implicit GEMM): no columns
   in memory, one launch per product. With r = (ci*k + ki)*k + kj (CK = Ci*k*k of them), an output
   position j = n*HWo + oh*Wo + ow and col(x)[r][j] = x[n, ci, oh*s-p+ki, ow*s-p+kj] (0 outside):
     forward      y[n,co,o]  (+)= sum_r w[co,r] col(x)[r][j]              M = Co, N = N*HWo, K = CK
     data grad    dx[n,ci,i] += sum over q = (co,ki,kj) of w[co, ci*k*k + ki*k + kj] dy[n,co,oh,ow],
                  (oh, ow) the output whose tap (ki, kj) reads input pixel i (none: 0)
                                                                          M = Ci, N = N*H*W, K = Co*k*k
     weight grad  dw[co,r]   += sum_j dy[n,co,o] col(x)[r][j]              M = Co, N = CK, K = N*HWo
   The weight gradient splits its long k over blocks when it has too few output tiles to fill the
   device (a first layer: Co = 64, CK = 27, one tile); the splits' partial sums go to scratch and
   are added in split order (deterministic). uvae__cu_conv_im2col(1) goes back to the first
   kernels (im2col or col2im, then a GEMM, one image at a time), for comparisons. */
struct uvae__ld_w {            /* a(co, r) = w[co*CK + r] */
    const float *w;
    int CK;
    enum { mfast = 0 };        /* r runs along memory */
    __device__ float operator()(int m, int k) const { return w[(size_t)m * CK + k]; }
};
struct uvae__ld_col {          /* nfast 1: b(r, j) = col(x)[r][j];  nfast 0: b(j, r) = col(x)[r][j] */
    const float *x;
    uvae__conv_shape g;
    int nfast;
    uvae__fdiv HWo, Wo, kk, k;
    __device__ float at(int r, int j) const {
        int n = HWo.q(j), o = HWo.r(j, n), oh = Wo.q(o), ow = Wo.r(o, oh);
        int ci = kk.q(r), t = kk.r(r, ci), ki = k.q(t), kj = k.r(t, ki);
        int ih = oh * g.s - g.p + ki, iw = ow * g.s - g.p + kj;
        return ih >= 0 && ih < g.H && iw >= 0 && iw < g.W ? x[(((size_t)n * g.Ci + ci) * g.H + ih) * g.W + iw] : 0.0f;
    }
    __device__ float operator()(int k, int n) const { return nfast ? at(k, n) : at(n, k); }
};
static uvae__ld_col uvae__ld_col_of(const float *x, const uvae__conv_shape *g, int nfast) {
    uvae__ld_col l = {x, *g, nfast, uvae__fdiv_of(g->Ho * g->Wo), uvae__fdiv_of(g->Wo), uvae__fdiv_of(g->k * g->k), uvae__fdiv_of(g->k)};
    return l;
}
struct uvae__st_y {            /* y[n,co,o] = v or += v, at j = n*HWo + o */
    float *y;
    int Co, acc;
    uvae__fdiv HWo;
    __device__ void operator()(int m, int j, float v, int) const {
        int n = HWo.q(j);
        float *d = y + ((size_t)n * Co + m) * HWo.d + HWo.r(j, n);
        *d = acc ? *d + v : v;
    }
};
struct uvae__ld_wt {           /* a(ci, q) = w[co*CK + ci*k*k + t] for q = co*k*k + t */
    const float *w;
    int CK;
    uvae__fdiv kk;
    enum { mfast = 0 };
    __device__ float operator()(int m, int q) const {
        int co = kk.q(q);
        return w[(size_t)co * CK + (size_t)m * kk.d + kk.r(q, co)];
    }
};
struct uvae__ld_dy_tap {       /* b(q, i): dy[n,co,oh,ow] where tap (ki,kj) of output (oh,ow) reads input pixel i */
    const float *dy;
    uvae__conv_shape g;
    uvae__fdiv kk, k, HW, W, s;
    enum { nfast = 1 };
    __device__ float operator()(int q, int i) const {
        int co = kk.q(q), t = kk.r(q, co), ki = k.q(t), kj = k.r(t, ki);
        int n = HW.q(i), pix = HW.r(i, n), ph = W.q(pix), pw = W.r(pix, ph);
        int th = ph + g.p - ki, tw = pw + g.p - kj, oh, ow;
        if (th < 0 || tw < 0) return 0.0f;
        oh = s.q(th);
        ow = s.q(tw);
        if (oh * g.s != th || ow * g.s != tw || oh >= g.Ho || ow >= g.Wo) return 0.0f;
        return dy[(((size_t)n * g.Co + co) * g.Ho + oh) * g.Wo + ow];
    }
};
struct uvae__st_dx {           /* dx[n,ci,pix] += v, at i = n*HW + pix */
    float *dx;
    int Ci;
    uvae__fdiv HW;
    __device__ void operator()(int m, int i, float v, int) const {
        int n = HW.q(i);
        dx[((size_t)n * Ci + m) * HW.d + HW.r(i, n)] += v;
    }
};
struct uvae__ld_dy {           /* a(co, j) = dy[n,co,o], at j = n*HWo + o */
    const float *dy;
    int Co;
    uvae__fdiv HWo;
    enum { mfast = 0 };
    __device__ float operator()(int m, int j) const {
        int n = HWo.q(j);
        return dy[((size_t)n * Co + m) * HWo.d + HWo.r(j, n)];
    }
};
struct uvae__st_dw {           /* split: part[z][co][r] = v;  else dw[co][r] += v */
    float *dw, *part;
    int Co, CK, split;
    __device__ void operator()(int m, int r, float v, int z) const {
        if (split) part[((size_t)z * Co + m) * CK + r] = v;
        else dw[(size_t)m * CK + r] += v;
    }
};
/* dw[i] += sum over z = 0..S-1 of part[z][i] */
static __global__ void uvae__k_split_sum(const float *part, int S, size_t n, float *dw) {
    UVAE__FOR(i, n) {
        float s = 0;
        for (int z = 0; z < S; z++) s += part[(size_t)z * n + i];
        dw[i] += s;
    }
}
/* the device's multiprocessors (1 if the runtime cannot say) */
static int uvae__h_sms(void) {
    static int n;
    int dev = 0;
    if (!n && (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n < 1)) {
        (void)cudaGetLastError();
        n = 1;
    }
    return n;
}

static int uvae__conv_im2col_on;   /* the per-image im2col + GEMM kernels instead of the implicit ones */
int uvae__cu_conv_im2col(int on) {
    int was = uvae__conv_im2col_on;
    if (on >= 0) uvae__conv_im2col_on = on > 0;
    return was;
}

void uvae__cu_conv_fwd(const uvae__conv_shape *g, const float *x, const float *w, float *y, int acc, float *scratch) {
    int CK = g->Ci * g->k * g->k, HWo = g->Ho * g->Wo;
    if (uvae__conv_im2col_on) {
        for (int n = 0; n < g->N; n++) {
            uvae__cu_im2col(x + (size_t)n * g->Ci * g->H * g->W, g->Ci, g->H, g->W, g->k, g->s, g->p, g->Ho, g->Wo, scratch);
            uvae__cu_gemm(0, 0, g->Co, HWo, CK, w, CK, scratch, HWo, y + (size_t)n * g->Co * HWo, HWo, acc);
        }
        return;
    }
    uvae__ld_w a = {w, CK};
    uvae__ld_col b = uvae__ld_col_of(x, g, 1);
    uvae__st_y st = {y, g->Co, acc, uvae__fdiv_of(HWo)};
    uvae__h_tgemm(__func__, a, b, st, g->Co, g->N * HWo, CK, 1, CK);
}
void uvae__cu_conv_bwd_x(const uvae__conv_shape *g, const float *dy, const float *w, float *dx, float *scratch) {
    int CK = g->Ci * g->k * g->k, HWo = g->Ho * g->Wo, KK = g->Co * g->k * g->k;
    if (uvae__conv_im2col_on) {
        for (int n = 0; n < g->N; n++) {
            uvae__cu_gemm(1, 0, CK, HWo, g->Co, w, CK, dy + (size_t)n * g->Co * HWo, HWo, scratch, HWo, 0);
            uvae__cu_col2im(scratch, g->Ci, g->H, g->W, g->k, g->s, g->p, g->Ho, g->Wo, dx + (size_t)n * g->Ci * g->H * g->W);
        }
        return;
    }
    uvae__ld_wt a = {w, CK, uvae__fdiv_of(g->k * g->k)};
    uvae__ld_dy_tap b = {dy, *g, uvae__fdiv_of(g->k * g->k), uvae__fdiv_of(g->k), uvae__fdiv_of(g->H * g->W), uvae__fdiv_of(g->W),
                         uvae__fdiv_of(g->s)};
    uvae__st_dx st = {dx, g->Ci, uvae__fdiv_of(g->H * g->W)};
    uvae__h_tgemm(__func__, a, b, st, g->Ci, g->N * g->H * g->W, KK, 1, KK);
}
void uvae__cu_conv_bwd_w(const uvae__conv_shape *g, const float *x, const float *dy, float *dw, float *scratch) {
    int CK = g->Ci * g->k * g->k, HWo = g->Ho * g->Wo, K = g->N * HWo, S, kper;
    long tiles = (long)((g->Co + GEMM_BM - 1) / GEMM_BM) * ((CK + GEMM_BN - 1) / GEMM_BN), want = 2L * uvae__h_sms();
    if (uvae__conv_im2col_on) {
        for (int n = 0; n < g->N; n++) {
            uvae__cu_im2col(x + (size_t)n * g->Ci * g->H * g->W, g->Ci, g->H, g->W, g->k, g->s, g->p, g->Ho, g->Wo, scratch);
            uvae__cu_gemm(0, 1, g->Co, CK, HWo, dy + (size_t)n * g->Co * HWo, HWo, scratch, HWo, dw, CK, 1);
        }
        return;
    }
    /* splits: enough blocks for two per multiprocessor, each split at least 256 deep in k, their
       partials within scratch (CK*HWo floats: HWo/Co splits) */
    S = tiles >= want ? 1 : (int)((want + tiles - 1) / tiles);
    if (S > K / 256) S = K / 256;
    if (S > HWo / g->Co) S = HWo / g->Co;
    if (S < 1) S = 1;
    kper = ((K + S - 1) / S + GEMM_BK - 1) / GEMM_BK * GEMM_BK;
    S = (K + kper - 1) / kper;
    {
        uvae__ld_dy a = {dy, g->Co, uvae__fdiv_of(HWo)};
        uvae__ld_col b = uvae__ld_col_of(x, g, 0);
        uvae__st_dw st = {dw, scratch, g->Co, CK, S > 1};
        uvae__h_tgemm(__func__, a, b, st, g->Co, CK, K, S, kper);
    }
    if (S > 1) UVAE__LAUNCH((size_t)g->Co * CK, uvae__k_split_sum, scratch, S, (size_t)g->Co * CK, dw);
}

/* ---------------------------------------------------------------------------------------------
   [channel sums] per-channel sums over x [N,C,HW], for bias gradients and batch norm. Channel c
   has M = N*HW values, j = n*HW + i, split into P chunks of L (the last may be shorter); block
   b = c*P + p owns chunk p of channel c, so a layer with few channels and large images still
   fills the device. A block sums its chunk in double (a fixed tree) into part[b]; a later kernel
   adds a channel's partials in chunk order (uvae__d_parts_sum: every block that does so gets the
   same value; deterministic). A chunk may start mid-image: one 64-bit division per block, then
   one multiply-shift (uvae__fdiv) per value. */
struct uvae__ch_geo {
    int C, P;                 /* channels, chunks per channel */
    size_t M, L;              /* values per channel, per chunk */
    uvae__fdiv HW;            /* H*W */
};
struct uvae__ch_chunk {       /* block b's chunk: c, p and where its values lie */
    int c, p, len, u0;        /* len values; the first is i = u0 of image n0 */
    size_t n0;
    /* the offset in x of the chunk's t-th value (0 <= t < len): no 64-bit division per value */
    __device__ size_t at(const uvae__ch_geo &g, int t) const {
        int u = u0 + t, dn = g.HW.q(u);
        return ((n0 + (size_t)dn) * g.C + c) * g.HW.d + g.HW.r(u, dn);
    }
};
static __device__ uvae__ch_chunk uvae__d_ch_chunk(const uvae__ch_geo &g) {
    uvae__ch_chunk k;
    size_t j0;
    k.c = (int)(blockIdx.x / (unsigned)g.P);
    k.p = (int)(blockIdx.x % (unsigned)g.P);
    j0 = (size_t)k.p * g.L;
    k.len = (int)(g.M - j0 < g.L ? g.M - j0 : g.L);
    k.n0 = j0 / g.HW.d;
    k.u0 = (int)(j0 - k.n0 * g.HW.d);
    return k;
}
/* sum of part[0..P) over the block, in a fixed tree: the same value in every block */
static __device__ double uvae__d_parts_sum(const double *part, int P) {
    double s = 0;
    for (int q = threadIdx.x; q < P; q += blockDim.x) s += part[q];
    return uvae__d_block_sum(s);
}
/* second == 0: part[b] = sum of the chunk's x;  1: part2[b] = sum of (x - mu)^2, mu from part.
   out (only when a channel is one chunk, P == 1): out[c] += the sum instead, no partials */
static __global__ void uvae__k_ch_sums(uvae__ch_geo g, const float *x, double *part, double *part2, int second, float *out) {
    uvae__ch_chunk k = uvae__d_ch_chunk(g);
    double s = 0, mu = second ? uvae__d_parts_sum(part + (size_t)k.c * g.P, g.P) / (double)g.M : 0;
    for (int t = threadIdx.x; t < k.len; t += blockDim.x) {
        float xv = x[k.at(g, t)];
        s += second ? (xv - mu) * (xv - mu) : xv;
    }
    s = uvae__d_block_sum(s);
    if (threadIdx.x == 0) {
        if (out) out[k.c] += (float)s;
        else (second ? part2 : part)[blockIdx.x] = s;
    }
}
/* the chunking of a call: chunks of at most 4096 values (16 per thread), at most 1024 a channel
   (each block may add all its channel's partials) and two partials per chunk within the
   reduction buffer. 0 when there is nothing to sum, or (with an error kept) when the shape does
   not fit. */
static int uvae__h_ch_geo(const char *who, int N, int C, size_t HW, uvae__ch_geo *g) {
    size_t P, cap;
    if (N <= 0 || C <= 0 || HW == 0) return 0;
    cap = UVAE__PARTS / 2 / (size_t)C;
    if (cap > 1024) cap = 1024;
    g->C = C;
    g->M = (size_t)N * HW;
    P = (g->M + 4095) / 4096;
    if (P > cap) P = cap;
    if (P < 1) P = 1;
    g->L = (g->M + P - 1) / P;
    g->P = (int)((g->M + g->L - 1) / g->L);
    if (cap < 1 || HW > (size_t)1 << 30 || g->L > (size_t)1 << 30)
        return uvae__h_ok(cudaErrorInvalidValue, "%s: per-channel sums over [%d,%d,%zu] are larger than the kernels handle "
                          "(at most %d channels and 2^30 values an image)", who, N, C, HW, UVAE__PARTS / 2);
    g->HW = uvae__fdiv_of((int)HW);
    return 1;
}
/* out[c] += sum of part[c*P..(c+1)*P), one block per channel */
static __global__ void uvae__k_ch_finish(const double *part, int P, float *out) {
    double s = uvae__d_parts_sum(part + (size_t)blockIdx.x * P, P);
    if (threadIdx.x == 0) out[blockIdx.x] += (float)s;
}

/* [bias] out[n,c,:] += b[c] over out [N,C,HW] */
static __global__ void uvae__k_bias_add(float *out, const float *b, int C, size_t HW, size_t total) {
    UVAE__FOR(i, total) out[i] += b[(i / HW) % C];
}
void uvae__cu_bias_add(float *out, const float *b, int N, int C, size_t HW) {
    UVAE__LAUNCH((size_t)N * C * HW, uvae__k_bias_add, out, b, C, HW, (size_t)N * C * HW);
}
/* db[c] += sum_{n,hw} dout[n,c,hw]: the chunks' sums, then each channel's in chunk order (one
   launch when every channel is one chunk) */
void uvae__cu_bias_grad(const float *dout, float *db, int N, int C, size_t HW) {
    uvae__ch_geo g;
    double *part;
    if (!uvae__h_ch_geo(__func__, N, C, HW, &g) || !(part = uvae__h_scratch(__func__))) return;
    uvae__k_ch_sums<<<(unsigned)C * (unsigned)g.P, UVAE__TPB>>>(g, dout, part, (double *)NULL, 0, g.P == 1 ? db : (float *)NULL);
    if (!uvae__h_launched(__func__) || g.P == 1) return;
    uvae__k_ch_finish<<<(unsigned)C, UVAE__TPB>>>(part, g.P, db);
    uvae__h_launched(__func__);
}

/* ---------------------------------------------------------------------------------------------
   [pooling] no padding, x [NC,H,W] -> y [NC,Ho,Wo] */

/* y = max over the k x k window at (oh*s, ow*s); arg = its index in the plane; the first maximum
   in row-major window order wins, a NaN is taken (as on the CPU) */
static __global__ void uvae__k_maxpool_fwd(const float *x, float *y, int *arg, int NC, int H, int W, int k, int s, int Ho, int Wo) {
    size_t HWo = (size_t)Ho * Wo;
    UVAE__FOR(idx, (size_t)NC * HWo) {
        size_t nc = idx / HWo;
        int o = (int)(idx % HWo), oh = o / Wo, ow = o % Wo;
        const float *in = x + nc * H * W;
        int best = oh * s * W + ow * s;
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                int q = (oh * s + i) * W + ow * s + j;
                if (in[q] > in[best] || isnan(in[q])) best = q;
            }
        y[idx] = in[best];
        arg[idx] = best;
    }
}
void uvae__cu_maxpool_fwd(const float *x, float *y, int *arg, int NC, int H, int W, int k, int s, int Ho, int Wo) {
    UVAE__LAUNCH((size_t)NC * Ho * Wo, uvae__k_maxpool_fwd, x, y, arg, NC, H, W, k, s, Ho, Wo);
}
/* dx[plane, arg] += dy: a scatter with atomicAdd (the contract has no k, s to gather with); each
   input receives at most one term unless windows overlap (s < k), so usually order-free */
static __global__ void uvae__k_maxpool_bwd(const float *dy, const int *arg, float *dx, int NC, int H, int W, int Ho, int Wo) {
    size_t HWo = (size_t)Ho * Wo;
    UVAE__FOR(idx, (size_t)NC * HWo) atomicAdd(dx + (idx / HWo) * H * W + arg[idx], dy[idx]);
}
void uvae__cu_maxpool_bwd(const float *dy, const int *arg, float *dx, int NC, int H, int W, int Ho, int Wo) {
    UVAE__LAUNCH((size_t)NC * Ho * Wo, uvae__k_maxpool_bwd, dy, arg, dx, NC, H, W, Ho, Wo);
}

/* y = (sum of the k x k window, row-major) / (k*k) */
static __global__ void uvae__k_avgpool_fwd(const float *x, float *y, int NC, int H, int W, int k, int s, int Ho, int Wo) {
    size_t HWo = (size_t)Ho * Wo;
    UVAE__FOR(idx, (size_t)NC * HWo) {
        size_t nc = idx / HWo;
        int o = (int)(idx % HWo), oh = o / Wo, ow = o % Wo;
        const float *in = x + nc * H * W;
        float sum = 0;
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) sum += in[(oh * s + i) * W + ow * s + j];
        y[idx] = sum / (float)(k * k);
    }
}
void uvae__cu_avgpool_fwd(const float *x, float *y, int NC, int H, int W, int k, int s, int Ho, int Wo) {
    UVAE__LAUNCH((size_t)NC * Ho * Wo, uvae__k_avgpool_fwd, x, y, NC, H, W, k, s, Ho, Wo);
}
/* dx[ih,iw] += sum over windows (oh,ow) containing it of dy[oh,ow] * (1/k^2): a gather, one thread
   per input, windows in increasing (oh, ow) as the CPU visits them */
static __global__ void uvae__k_avgpool_bwd(const float *dy, float *dx, int NC, int H, int W, int k, int s, int Ho, int Wo) {
    size_t HW = (size_t)H * W;
    float inv = 1.0f / (float)(k * k);
    UVAE__FOR(idx, (size_t)NC * HW) {
        size_t nc = idx / HW;
        int r = (int)(idx % HW), ih = r / W, iw = r % W;
        int oh0 = ih - k + 1 <= 0 ? 0 : (ih - k + 1 + s - 1) / s, oh1 = ih / s < Ho - 1 ? ih / s : Ho - 1;
        int ow0 = iw - k + 1 <= 0 ? 0 : (iw - k + 1 + s - 1) / s, ow1 = iw / s < Wo - 1 ? iw / s : Wo - 1;
        const float *g = dy + nc * Ho * Wo;
        float v = dx[idx];
        for (int oh = oh0; oh <= oh1; oh++)
            for (int ow = ow0; ow <= ow1; ow++) v += g[oh * Wo + ow] * inv;
        dx[idx] = v;
    }
}
void uvae__cu_avgpool_bwd(const float *dy, float *dx, int NC, int H, int W, int k, int s, int Ho, int Wo) {
    UVAE__LAUNCH((size_t)NC * H * W, uvae__k_avgpool_bwd, dy, dx, NC, H, W, k, s, Ho, Wo);
}

/* ---------------------------------------------------------------------------------------------
   [upsample] by s, x [NC,H,W] -> y [NC,H*s,W*s]. Source rows of output row o: nearest i0 = i1 = o/s,
   l = 0; bilinear (align_corners=False) src = max((1/s)(o+0.5) - 0.5, 0), i0 = floor src,
   i1 = min(i0+1, n-1), l = src - i0 (rounded step by step, as on the CPU: no fused multiply-add). */
static __device__ void uvae__d_up_coord(int mode, int o, int s, int n, int *i0, int *i1, float *l) {
    if (mode == 0) { *i0 = *i1 = o / s; *l = 0.0f; return; }
    float src = __fadd_rn(__fmul_rn(1.0f / (float)s, (float)o + 0.5f), -0.5f);
    if (src < 0) src = 0;
    *i0 = (int)src;
    *i1 = *i0 < n - 1 ? *i0 + 1 : *i0;
    *l = src - (float)*i0;
}
/* y[o] = (1-lh)((1-lw) x[h0,w0] + lw x[h0,w1]) + lh((1-lw) x[h1,w0] + lw x[h1,w1]) (nearest too, as the CPU) */
static __global__ void uvae__k_upsample_fwd(const float *x, float *y, int NC, int H, int W, int s, int mode) {
    int Ho = H * s, Wo = W * s;
    size_t HWo = (size_t)Ho * Wo;
    UVAE__FOR(idx, (size_t)NC * HWo) {
        size_t nc = idx / HWo;
        int o = (int)(idx % HWo), oh = o / Wo, ow = o % Wo, h0, h1, w0, w1;
        float lh, lw;
        const float *in = x + nc * H * W;
        uvae__d_up_coord(mode, oh, s, H, &h0, &h1, &lh);
        uvae__d_up_coord(mode, ow, s, W, &w0, &w1, &lw);
        y[idx] = (1 - lh) * ((1 - lw) * in[h0 * W + w0] + lw * in[h0 * W + w1]) +
                 lh * ((1 - lw) * in[h1 * W + w0] + lw * in[h1 * W + w1]);
    }
}
void uvae__cu_upsample_fwd(const float *x, float *y, int NC, int H, int W, int s, int mode) {
    UVAE__LAUNCH((size_t)NC * H * s * W * s, uvae__k_upsample_fwd, x, y, NC, H, W, s, mode);
}
/* dx[h,w] += the adjoint: the four weighted terms (1-lh)(1-lw) g, (1-lh) lw g, lh (1-lw) g, lh lw g
   of every output whose (h0|h1, w0|w1) hit (h, w). A gather, one thread per input pixel: outputs
   come from rows [(h-1)s, (h+2)s) and columns alike (a superset of those that can touch it),
   in a fixed order, so no races. (The CPU's x2 bilinear path groups the terms by column first:
   the same sum to rounding, not bit for bit.) */
static __global__ void uvae__k_upsample_bwd(const float *dy, float *dx, int NC, int H, int W, int s, int mode) {
    int Ho = H * s, Wo = W * s;
    size_t HW = (size_t)H * W;
    UVAE__FOR(idx, (size_t)NC * HW) {
        size_t nc = idx / HW;
        int r = (int)(idx % HW), h = r / W, w = r % W;
        int oh_lo = (h - 1) * s > 0 ? (h - 1) * s : 0, oh_hi = (h + 2) * s < Ho ? (h + 2) * s : Ho;
        int ow_lo = (w - 1) * s > 0 ? (w - 1) * s : 0, ow_hi = (w + 2) * s < Wo ? (w + 2) * s : Wo;
        const float *dout = dy + nc * HW * s * s;
        float v = dx[idx];
        for (int oh = oh_lo; oh < oh_hi; oh++) {
            int h0, h1, w0, w1;
            float lh, lw;
            uvae__d_up_coord(mode, oh, s, H, &h0, &h1, &lh);
            if (h0 != h && h1 != h) continue;
            for (int ow = ow_lo; ow < ow_hi; ow++) {
                uvae__d_up_coord(mode, ow, s, W, &w0, &w1, &lw);
                if (w0 != w && w1 != w) continue;
                float g = dout[(size_t)oh * Wo + ow];
                if (h0 == h && w0 == w) v += (1 - lh) * (1 - lw) * g;
                if (h0 == h && w1 == w) v += (1 - lh) * lw * g;
                if (h1 == h && w0 == w) v += lh * (1 - lw) * g;
                if (h1 == h && w1 == w) v += lh * lw * g;
            }
        }
        dx[idx] = v;
    }
}
void uvae__cu_upsample_bwd(const float *dy, float *dx, int NC, int H, int W, int s, int mode) {
    UVAE__LAUNCH((size_t)NC * H * W, uvae__k_upsample_bwd, dy, dx, NC, H, W, s, mode);
}

/* ---------------------------------------------------------------------------------------------
   [batch_norm] x [N,C,HW], a block per chunk of a channel ([channel sums] above):
   train: mu = mean x, var = mean (x-mu)^2; running <- (1-m) running + m (mu, var M/(M-1))
   eval:  mu, var = running.  istd = 1/sqrt(var+eps);  y = gamma ((x - mu) istd) + beta (relu: max(y, 0));
   stats[c] = mu, stats[C+c] = istd.  Forward: three launches in training (the chunks' sums of x,
   of (x-mu)^2, then apply), one in evaluation; backward: two (the chunks' sums, then apply).
   Every block of a channel adds the channel's partials itself; the chunk-0 block writes the
   channel's statistics. */
static __global__ void uvae__k_bn_apply(uvae__ch_geo g, const float *x, const float *gamma, const float *beta, float *rmean,
                                        float *rvar, float *y, float *stats, const double *part, const double *part2, int train,
                                        float momentum, float eps, int relu) {
    uvae__ch_chunk k = uvae__d_ch_chunk(g);
    int c = k.c, first = k.p == 0 && threadIdx.x == 0;   /* the one thread that writes the channel's statistics */
    double M = (double)g.M, mu, var;
    float istd, gm = gamma ? gamma[c] : 1.0f, bt = beta ? beta[c] : 0.0f;
    if (train) {
        mu = uvae__d_parts_sum(part + (size_t)c * g.P, g.P) / M;
        var = uvae__d_parts_sum(part2 + (size_t)c * g.P, g.P) / M;
        if (first) uvae__bn_running(rmean + c, rvar + c, mu, var, M, momentum);
    } else {
        mu = rmean[c];
        var = rvar[c];
    }
    istd = (float)(1.0 / sqrt(var + eps));
    if (first) { stats[c] = (float)mu; stats[g.C + c] = istd; }
    for (int t = threadIdx.x; t < k.len; t += blockDim.x) {
        size_t i = k.at(g, t);
        float v = gm * ((x[i] - (float)mu) * istd) + bt;
        y[i] = !relu || v > 0 ? v : 0.0f;
    }
}
void uvae__cu_bn_fwd(const float *x, const float *gamma, const float *beta, float *rmean, float *rvar, float *y, float *stats,
                     int N, int C, size_t HW, int train, float momentum, float eps, int relu) {
    uvae__ch_geo g;
    double *part = NULL, *part2 = NULL;   /* the chunks' sums of x and of (x-mu)^2 (training only) */
    unsigned B;
    if (!uvae__h_ch_geo(__func__, N, C, HW, &g)) return;
    B = (unsigned)C * (unsigned)g.P;
    if (train) {
        if (!(part = uvae__h_scratch(__func__))) return;
        part2 = part + B;
        uvae__k_ch_sums<<<B, UVAE__TPB>>>(g, x, part, part2, 0, (float *)NULL);
        if (!uvae__h_launched(__func__)) return;
        uvae__k_ch_sums<<<B, UVAE__TPB>>>(g, x, part, part2, 1, (float *)NULL);
        if (!uvae__h_launched(__func__)) return;
    }
    uvae__k_bn_apply<<<B, UVAE__TPB>>>(g, x, gamma, beta, rmean, rvar, y, stats, part, part2, train, momentum, eps, relu);
    uvae__h_launched(__func__);
}
/* Backward, the same chunks: part[b] = sdy, part2[b] = sdyx over the chunk, then per channel
   sdy = sum dy, sdyx = sum dy (x-mu) istd;  dgamma += sdyx, dbeta += sdy;
   train: dx += gamma istd/M (M dy - sdy - (x-mu) istd sdyx);  eval: dx += gamma istd dy.
   y (the fused relu's output) or NULL: dy counts only where y > 0 */
static __global__ void uvae__k_bn_bwd_sums(uvae__ch_geo g, const float *x, const float *dy0, const float *y, const float *stats,
                                           double *part, double *part2) {
    uvae__ch_chunk k = uvae__d_ch_chunk(g);
    float mu = stats[k.c], istd = stats[g.C + k.c];
    double sdy = 0, sdyx = 0;
    for (int t = threadIdx.x; t < k.len; t += blockDim.x) {
        size_t i = k.at(g, t);
        float dy = y && !(y[i] > 0) ? 0.0f : dy0[i];
        sdy += dy;
        sdyx += dy * (x[i] - mu) * istd;
    }
    sdy = uvae__d_block_sum(sdy);
    sdyx = uvae__d_block_sum(sdyx);
    if (threadIdx.x == 0) { part[blockIdx.x] = sdy; part2[blockIdx.x] = sdyx; }
}
static __global__ void uvae__k_bn_bwd_apply(uvae__ch_geo g, const float *x, const float *gamma, const float *dy0, const float *y,
                                            const float *stats, float *dx, float *dgamma, float *dbeta, const double *part,
                                            const double *part2, int train) {
    uvae__ch_chunk k = uvae__d_ch_chunk(g);
    int c = k.c;
    float mu = stats[c], istd = stats[g.C + c], gm = gamma ? gamma[c] : 1.0f, M = (float)g.M, a, b1, b2;
    double sdy, sdyx;
    if (!dx && k.p) return;
    sdy = uvae__d_parts_sum(part + (size_t)c * g.P, g.P);
    sdyx = uvae__d_parts_sum(part2 + (size_t)c * g.P, g.P);
    if (k.p == 0 && threadIdx.x == 0) {
        if (dgamma) dgamma[c] += (float)sdyx;
        if (dbeta) dbeta[c] += (float)sdy;
    }
    if (!dx) return;
    a = (float)(gm * istd / (double)g.M), b1 = (float)sdy, b2 = (float)sdyx;
    for (int t = threadIdx.x; t < k.len; t += blockDim.x) {
        size_t i = k.at(g, t);
        float dy = y && !(y[i] > 0) ? 0.0f : dy0[i];
        if (train) dx[i] += a * (M * dy - b1 - (x[i] - mu) * istd * b2);
        else dx[i] += gm * istd * dy;
    }
}
void uvae__cu_bn_bwd(const float *x, const float *gamma, const float *dy, const float *y, const float *stats, float *dx, float *dgamma,
                     float *dbeta, int N, int C, size_t HW, int train) {
    uvae__ch_geo g;
    double *part, *part2;                 /* the chunks' sums of dy and of dy (x-mu) istd */
    unsigned B;
    if (!uvae__h_ch_geo(__func__, N, C, HW, &g) || !(part = uvae__h_scratch(__func__))) return;
    B = (unsigned)C * (unsigned)g.P;
    part2 = part + B;
    uvae__k_bn_bwd_sums<<<B, UVAE__TPB>>>(g, x, dy, y, stats, part, part2);
    if (!uvae__h_launched(__func__)) return;
    uvae__k_bn_bwd_apply<<<B, UVAE__TPB>>>(g, x, gamma, dy, y, stats, dx, dgamma, dbeta, part, part2, train);
    uvae__h_launched(__func__);
}

/* ---------------------------------------------------------------------------------------------
   [unary] y = f(x): 0 relu max(x,0), 1 leaky x>0 ? x : a x, 2 sigmoid, 3 tanh, 4 exp, 5 scale a x */
static __global__ void uvae__k_unary_fwd(int kind, float a, const float *x, float *y, size_t n) {
    UVAE__FOR(i, n) {
        float v = x[i];
        switch (kind) {
        case 0: v = v > 0 ? v : 0.0f; break;
        case 1: v = v > 0 ? v : a * v; break;
        case 2: v = uvae__d_sigmoid(v); break;
        case 3: v = tanhf(v); break;
        case 4: v = expf(v); break;
        default: v = a * v; break;
        }
        y[i] = v;
    }
}
void uvae__cu_unary_fwd(int kind, float a, const float *x, float *y, size_t n) {
    UVAE__LAUNCH(n, uvae__k_unary_fwd, kind, a, x, y, n);
}
/* dx += f'(x) dy: relu [x>0], leaky x>0 ? 1 : a, sigmoid y(1-y), tanh 1-y^2, exp y, scale a
   (x is read only by relu/leaky, y only by sigmoid/tanh/exp) */
static __global__ void uvae__k_unary_bwd(int kind, float a, const float *x, const float *y, const float *dy, float *dx, size_t n) {
    UVAE__FOR(i, n) {
        float d;
        switch (kind) {
        case 0: d = x[i] > 0 ? 1.0f : 0.0f; break;
        case 1: d = x[i] > 0 ? 1.0f : a; break;
        case 2: d = y[i] * (1 - y[i]); break;
        case 3: d = 1 - y[i] * y[i]; break;
        case 4: d = y[i]; break;
        default: d = a; break;
        }
        dx[i] += d * dy[i];
    }
}
void uvae__cu_unary_bwd(int kind, float a, const float *x, const float *y, const float *dy, float *dx, size_t n) {
    UVAE__LAUNCH(n, uvae__k_unary_bwd, kind, a, x, y, dy, dx, n);
}

/* [binary] y = a + b (mul 0) or a * b (mul 1) */
static __global__ void uvae__k_binary_fwd(int mul, const float *a, const float *b, float *y, size_t n) {
    UVAE__FOR(i, n) y[i] = mul ? a[i] * b[i] : a[i] + b[i];
}
void uvae__cu_binary_fwd(int mul, const float *a, const float *b, float *y, size_t n) {
    UVAE__LAUNCH(n, uvae__k_binary_fwd, mul, a, b, y, n);
}
/* add: da += dy, db += dy;  mul: da += dy b, db += dy a  (NULL: skip) */
static __global__ void uvae__k_binary_bwd(int mul, const float *a, const float *b, const float *dy, float *da, float *db, size_t n) {
    UVAE__FOR(i, n) {
        if (da) da[i] += mul ? dy[i] * b[i] : dy[i];
        if (db) db[i] += mul ? dy[i] * a[i] : dy[i];
    }
}
void uvae__cu_binary_bwd(int mul, const float *a, const float *b, const float *dy, float *da, float *db, size_t n) {
    if (da || db) UVAE__LAUNCH(n, uvae__k_binary_bwd, mul, a, b, dy, da, db, n);
}

/* ---------------------------------------------------------------------------------------------
   [embedding] y[n,d] = tab[idx[n],d] over y [N,D], tab [V,D]. Indices are not checked on the host
   for GPU tensors: one outside 0..V-1 or not whole gives a NaN row (so the loss shows it) and no
   gradient; nothing is read out of bounds. */
static __device__ int uvae__d_index_ok(float v, int V) { return v >= 0 && v < (float)V && v == floorf(v); }
static __global__ void uvae__k_embedding_fwd(const float *idx, const float *tab, float *y, int V, int D, size_t total) {
    UVAE__FOR(i, total) {
        float v = idx[i / D];
        y[i] = uvae__d_index_ok(v, V) ? tab[(size_t)v * D + i % D] : __int_as_float(0x7fc00000);
    }
}
void uvae__cu_embedding_fwd(const float *idx, const float *tab, float *y, int N, int V, int D) {
    UVAE__LAUNCH((size_t)N * D, uvae__k_embedding_fwd, idx, tab, y, V, D, (size_t)N * D);
}
/* dtab[idx[n],d] += dy[n,d]: one thread per column d walks n = 0..N-1 in order (repeated indices
   land in the same thread: no races, the CPU's order) */
static __global__ void uvae__k_embedding_bwd(const float *idx, const float *dy, float *dtab, int N, int V, int D) {
    UVAE__FOR(d, (size_t)D)
        for (int n = 0; n < N; n++)
            if (uvae__d_index_ok(idx[n], V)) dtab[(size_t)idx[n] * D + d] += dy[(size_t)n * D + d];
}
void uvae__cu_embedding_bwd(const float *idx, const float *dy, float *dtab, int N, int V, int D) {
    if (N > 0) UVAE__LAUNCH((size_t)D, uvae__k_embedding_bwd, idx, dy, dtab, N, V, D);
}

/* [concat] rows: y[n] = [a[n] (ra floats), b[n] (rb floats)] over y [N, ra+rb] */
static __global__ void uvae__k_concat_fwd(const float *a, const float *b, float *y, size_t ra, size_t rb, size_t total) {
    size_t ry = ra + rb;
    UVAE__FOR(i, total) {
        size_t n = i / ry, j = i % ry;
        y[i] = j < ra ? a[n * ra + j] : b[n * rb + (j - ra)];
    }
}
void uvae__cu_concat_fwd(const float *a, const float *b, float *y, int N, size_t ra, size_t rb) {
    UVAE__LAUNCH((size_t)N * (ra + rb), uvae__k_concat_fwd, a, b, y, ra, rb, (size_t)N * (ra + rb));
}
/* da[n] += dy[n, :ra], db[n] += dy[n, ra:] (NULL: skip) */
static __global__ void uvae__k_concat_bwd(const float *dy, float *da, float *db, size_t ra, size_t rb, size_t total) {
    size_t ry = ra + rb;
    UVAE__FOR(i, total) {
        size_t n = i / ry, j = i % ry;
        if (j < ra) { if (da) da[n * ra + j] += dy[i]; }
        else if (db) db[n * rb + (j - ra)] += dy[i];
    }
}
void uvae__cu_concat_bwd(const float *dy, float *da, float *db, int N, size_t ra, size_t rb) {
    if (da || db) UVAE__LAUNCH((size_t)N * (ra + rb), uvae__k_concat_bwd, dy, da, db, ra, rb, (size_t)N * (ra + rb));
}

/* ---------------------------------------------------------------------------------------------
   [sum] out[0] = scale * sum x (double);  dx += scale dy[0] */
struct uvae__op_sum {
    const float *x;
    __device__ double operator()(size_t i) const { return (double)x[i]; }
};
void uvae__cu_sum(const float *x, size_t n, float scale, float *out) {
    uvae__op_sum op = {x};
    uvae__h_reduce(__func__, op, n, (double)scale, 1.0, 0, out, NULL);
}
static __global__ void uvae__k_sum_bwd(const float *dy, float scale, float *dx, size_t n) {
    float g = dy[0] * scale;
    UVAE__FOR(i, n) dx[i] += g;
}
void uvae__cu_sum_bwd(const float *dy, float scale, float *dx, size_t n) {
    UVAE__LAUNCH(n, uvae__k_sum_bwd, dy, scale, dx, n);
}

/* [dropout] mask[i] = hash_uniform(seed, i) < p ? 0 : keep (= 1/(1-p));  y = x mask */
static __global__ void uvae__k_dropout_fwd(const float *x, float *y, float *mask, size_t n, float p, float keep, uint32_t seed) {
    UVAE__FOR(i, n) {
        float mk = uvae_hash_uniform(seed, (uint32_t)i) < p ? 0.0f : keep;
        mask[i] = mk;
        y[i] = x[i] * mk;
    }
}
void uvae__cu_dropout_fwd(const float *x, float *y, float *mask, size_t n, float p, uint32_t seed) {
    float keep = 1.0f / (1.0f - p);
    UVAE__LAUNCH(n, uvae__k_dropout_fwd, x, y, mask, n, p, keep, seed);
}

/* ---------------------------------------------------------------------------------------------
   [loss] logits z [N,C,HW], class targets t [N,HW]; position q = n*HW + i; dy is on the device */

/* cross entropy at q: logsumexp_c z - z[t] = m + log(sum_c e^(z-m)) - z[t] (double, as the CPU).
   Targets are not checked on the host for GPU tensors: one outside [0, C) makes the term NaN
   (so the loss is NaN) instead of reading out of bounds; the backward skips its one-hot term. */
struct uvae__op_ce {
    const float *z, *t;
    int C;
    size_t HW;
    __device__ double operator()(size_t q) const {
        const float *zp = z + (q / HW) * C * HW + q % HW;
        float m = zp[0], tq = t[q];
        double se = 0;
        if (!(tq >= 0 && tq < (float)C)) return nan("");
        for (int c = 1; c < C; c++) if (zp[c * HW] > m) m = zp[c * HW];
        for (int c = 0; c < C; c++) se += exp((double)zp[c * HW] - m);
        return m + log(se) - zp[(size_t)tq * HW];
    }
};
/* out[0] = sum_q ce(q) / (N*HW) */
void uvae__cu_ce_fwd(const float *z, const float *t, int N, int C, size_t HW, float *out) {
    uvae__op_ce op = {z, t, C, HW};
    uvae__h_reduce(__func__, op, (size_t)N * HW, 1.0, (double)((size_t)N * HW), 0, out, NULL);
}
/* dz[n,c,i] += dy[0]/(N*HW) (softmax_c - [c == t]): one thread per position */
static __global__ void uvae__k_ce_bwd(const float *z, const float *t, const float *dy, int C, size_t HW, size_t P, float *dz) {
    float g = dy[0] / (float)P;
    UVAE__FOR(q, P) {
        size_t off = (q / HW) * C * HW + q % HW;
        float tq = t[q];
        int tc = tq >= 0 && tq < (float)C ? (int)tq : -1;
        float m, s;
        uvae__d_softmax_ms(z + off, C, HW, &m, &s);
        for (int c = 0; c < C; c++) {
            float p = expf(z[off + c * HW] - m) / s;
            if (c == tc) p -= 1;
            dz[off + c * HW] += g * p;
        }
    }
}
void uvae__cu_ce_bwd(const float *z, const float *t, const float *dy, int N, int C, size_t HW, float *dz) {
    UVAE__LAUNCH((size_t)N * HW, uvae__k_ce_bwd, z, t, dy, C, HW, (size_t)N * HW, dz);
}

/* bce at i: max(z,0) - z t + log1p(e^-|z|) (double) */
struct uvae__op_bce {
    const float *z, *t;
    __device__ double operator()(size_t i) const {
        double v = z[i];
        return (v > 0 ? v : 0) - v * t[i] + log1p(exp(-fabs(v)));
    }
};
void uvae__cu_bce_fwd(const float *z, const float *t, size_t n, float div, float *out) {
    uvae__op_bce op = {z, t};
    uvae__h_reduce(__func__, op, n, 1.0, (double)div, 0, out, NULL);
}
/* dz += dy[0]/div (sigmoid z - t) */
static __global__ void uvae__k_bce_bwd(const float *z, const float *t, const float *dy, size_t n, float div, float *dz) {
    float g = dy[0] / div;
    UVAE__FOR(i, n) dz[i] += g * (uvae__d_sigmoid(z[i]) - t[i]);
}
void uvae__cu_bce_bwd(const float *z, const float *t, const float *dy, size_t n, float div, float *dz) {
    UVAE__LAUNCH(n, uvae__k_bce_bwd, z, t, dy, n, div, dz);
}

/* dice: p = softmax (C > 1) or sigmoid (C == 1) at q, t_c = [t == c] (C > 1) or t (C == 1).
   Partials part[g][c] = sum p_c t_c, part[g][C+c] = sum p_c + t_c over block g's positions: each
   warp takes 32 positions at a time, reduces each class over its lanes (shuffles, fixed order) and
   lane 0 adds it to the warp's row acc[w][2C] in shared memory; rows are summed in warp order. */
static __global__ void uvae__k_dice_partial(const float *z, const float *t, int C, size_t HW, size_t P, double *part) {
    extern __shared__ double acc[];  /* [warps][2C] */
    int lane = threadIdx.x % 32, wid = threadIdx.x / 32, nw = blockDim.x / 32;
    for (int j = threadIdx.x; j < nw * 2 * C; j += blockDim.x) acc[j] = 0;
    __syncthreads();
    for (size_t base = (size_t)blockIdx.x * blockDim.x + (size_t)wid * 32; base < P; base += (size_t)gridDim.x * blockDim.x) {
        size_t q = base + lane;      /* whole warps iterate together: the shuffles see all lanes */
        int valid = q < P;
        size_t off = valid ? (q / HW) * C * HW + q % HW : 0;
        float m = 0, s = 1, tq = valid ? t[q] : 0.0f;
        if (valid && C > 1) uvae__d_softmax_ms(z + off, C, HW, &m, &s);
        for (int c = 0; c < C; c++) {
            float p = 0, tc = 0;
            if (valid) {
                p = C == 1 ? uvae__d_sigmoid(z[off]) : expf(z[off + c * HW] - m) / s;
                tc = C == 1 ? tq : (float)((int)tq == c);
            }
            double pt = uvae__d_warp_sum((double)(p * tc)), ps = uvae__d_warp_sum((double)(p + tc));
            if (lane == 0) { acc[wid * 2 * C + c] += pt; acc[wid * 2 * C + C + c] += ps; }
        }
    }
    __syncthreads();
    for (int j = threadIdx.x; j < 2 * C; j += blockDim.x) {
        double sum = 0;
        for (int w = 0; w < nw; w++) sum += acc[w * 2 * C + j];
        part[(size_t)blockIdx.x * 2 * C + j] = sum;
    }
}
/* IS[j] = sum_g part[g][j];  out[0] = 1 - mean_c (2 IS[c] + s) / (IS[C+c] + s) */
static __global__ void uvae__k_dice_finish(const double *part, int G, int C, float smooth, double *IS, float *out) {
    for (int j = threadIdx.x; j < 2 * C; j += blockDim.x) {
        double sum = 0;
        for (int g = 0; g < G; g++) sum += part[(size_t)g * 2 * C + j];
        IS[j] = sum;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double dice = 0;
        for (int c = 0; c < C; c++) dice += (2 * IS[c] + smooth) / (IS[C + c] + smooth);
        out[0] = (float)(1 - dice / C);
    }
}
void uvae__cu_dice_fwd(const float *z, const float *t, int N, int C, size_t HW, float smooth, double *IS, float *out) {
    double *part = uvae__h_scratch(__func__);
    size_t P = (size_t)N * HW, g = (P + 4 * UVAE__TPB - 1) / (4 * UVAE__TPB), gmax;
    int nw, G;
    if (!part || C <= 0) return;
    nw = 49152 / (16 * C);           /* warps whose rows [2C] of doubles fit 48 KiB */
    if (nw > UVAE__TPB / 32) nw = UVAE__TPB / 32;
    if (nw < 1 || 2 * C > UVAE__PARTS) {
        uvae__h_ok(cudaErrorInvalidValue, "uvae__cu_dice_fwd: %d classes are too many for this kernel", C);
        return;
    }
    gmax = UVAE__PARTS / (2 * (size_t)C);
    if (gmax > 1024) gmax = 1024;
    G = (int)(g < 1 ? 1 : g > gmax ? gmax : g);
    uvae__k_dice_partial<<<G, 32 * nw, (size_t)nw * 2 * C * sizeof(double)>>>(z, t, C, HW, P, part);
    if (!uvae__h_launched(__func__)) return;
    uvae__k_dice_finish<<<1, UVAE__TPB>>>(part, G, C, smooth, IS, out);
    uvae__h_launched(__func__);
}
/* dL/dp_c = dy[0] * -(2 t_c (S_c+s) - (2 I_c + s)) / (C (S_c+s)^2)  (double, then float as the CPU);
   C > 1: dz_c += p_c (dL/dp_c - sum_k p_k dL/dp_k);  C == 1: dz += dL/dp p (1-p). One thread per position. */
static __global__ void uvae__k_dice_bwd(const float *z, const float *t, const double *IS, const float *dy, int C, size_t HW,
                                        size_t P, float smooth, float *dz) {
    float g = dy[0];
    UVAE__FOR(q, P) {
        size_t off = (q / HW) * C * HW + q % HW;
        float tq = t[q];
        if (C == 1) {
            float p = uvae__d_sigmoid(z[off]);
            double den = IS[1] + smooth;
            float dp = (float)(-(2.0 * tq * den - (2.0 * IS[0] + smooth)) / ((double)C * den * den)) * g;
            dz[off] += dp * p * (1 - p);
            continue;
        }
        float m, s, pdp = 0;
        uvae__d_softmax_ms(z + off, C, HW, &m, &s);
        for (int pass = 0; pass < 2; pass++)       /* pass 0: pdp = sum p dp;  pass 1: dz */
            for (int c = 0; c < C; c++) {
                float p = expf(z[off + c * HW] - m) / s, tc = (float)((int)tq == c);
                double den = IS[C + c] + smooth;
                float dp = (float)(-(2.0 * tc * den - (2.0 * IS[c] + smooth)) / ((double)C * den * den)) * g;
                if (pass == 0) pdp += p * dp;
                else dz[off + c * HW] += p * (dp - pdp);
            }
    }
}
void uvae__cu_dice_bwd(const float *z, const float *t, const double *IS, const float *dy, int N, int C, size_t HW, float smooth, float *dz) {
    if (C > 0) UVAE__LAUNCH((size_t)N * HW, uvae__k_dice_bwd, z, t, IS, dy, C, HW, (size_t)N * HW, smooth, dz);
}

/* kl at i: -0.5 (1 + lv - mu^2 - e^lv) (double, same expression as the CPU) */
struct uvae__op_kl {
    const float *mu, *lv;
    __device__ double operator()(size_t i) const { return -0.5 * (1 + lv[i] - (double)mu[i] * mu[i] - exp((double)lv[i])); }
};
void uvae__cu_kl_fwd(const float *mu, const float *lv, size_t n, int N, float *out) {
    uvae__op_kl op = {mu, lv};
    uvae__h_reduce(__func__, op, n, 1.0, (double)N, 0, out, NULL);
}
/* dmu += dy/N mu;  dlv += dy/N * -0.5 (1 - e^lv)  (NULL: skip) */
static __global__ void uvae__k_kl_bwd(const float *mu, const float *lv, const float *dy, size_t n, int N, float *dmu, float *dlv) {
    float g = dy[0] / (float)N;
    UVAE__FOR(i, n) {
        if (dmu) dmu[i] += g * mu[i];
        if (dlv) dlv[i] += g * -0.5f * (1 - expf(lv[i]));
    }
}
void uvae__cu_kl_bwd(const float *mu, const float *lv, const float *dy, size_t n, int N, float *dmu, float *dlv) {
    if (dmu || dlv) UVAE__LAUNCH(n, uvae__k_kl_bwd, mu, lv, dy, n, N, dmu, dlv);
}

/* gaussian nll at i: 0.5 ((t-m)^2 e^-lv + lv + log 2pi) (double), lv = lv[i] or lv[0] when shared */
struct uvae__op_gnll {
    const float *m, *lv, *t;
    int shared;
    __device__ double operator()(size_t i) const {
        double l = lv[shared ? 0 : i], d = (double)t[i] - m[i];
        return 0.5 * (d * d * exp(-l) + l + 1.8378770664093453);
    }
};
void uvae__cu_gnll_fwd(const float *m, const float *lv, const float *t, size_t n, int shared, int N, float *out) {
    uvae__op_gnll op = {m, lv, t, shared};
    uvae__h_reduce(__func__, op, n, 1.0, (double)N, 0, out, NULL);
}
/* dm += g -(t-m) e^-lv;  dlv += g 0.5 (1 - (t-m)^2 e^-lv), g = dy[0]/N (not shared: per element) */
static __global__ void uvae__k_gnll_bwd(const float *m, const float *lv, const float *t, const float *dy, size_t n, int shared, int N,
                                        float *dm, float *dlv) {
    float g = dy[0] / (float)N;
    UVAE__FOR(i, n) {
        float l = lv[shared ? 0 : i], d = t[i] - m[i], iv = expf(-l);
        if (dm) dm[i] += g * -d * iv;
        if (dlv && !shared) dlv[i] += g * 0.5f * (1 - d * d * iv);
    }
}
/* shared: the per-element dlv terms (float, as the CPU), summed in double into dlv[0] */
struct uvae__op_gnll_dlv {
    const float *m, *lv, *t, *dy;
    int N;
    __device__ double operator()(size_t i) const {
        float g = dy[0] / (float)N, d = t[i] - m[i], iv = expf(-lv[0]);
        return (double)(g * 0.5f * (1 - d * d * iv));
    }
};
void uvae__cu_gnll_bwd(const float *m, const float *lv, const float *t, const float *dy, size_t n, int shared, int N, float *dm, float *dlv) {
    if (dm || (dlv && !shared)) UVAE__LAUNCH(n, uvae__k_gnll_bwd, m, lv, t, dy, n, shared, N, dm, dlv);
    if (dlv && shared) {
        uvae__op_gnll_dlv op = {m, lv, t, dy, N};
        uvae__h_reduce(__func__, op, n, 1.0, 1.0, 1, dlv, NULL);
    }
}

/* discretized logistic: the element is the header's uvae__dlogistic (host and device) */
struct uvae__op_dlog {
    const float *m, *ls, *t;
    __device__ double operator()(size_t i) const { return uvae__dlogistic(t[i], m[i], ls[i], NULL, NULL); }
};
void uvae__cu_dlog_fwd(const float *m, const float *ls, const float *t, size_t n, int N, float *out) {
    uvae__op_dlog op = {m, ls, t};
    uvae__h_reduce(__func__, op, n, 1.0, (double)N, 0, out, NULL);
}
static __global__ void uvae__k_dlog_bwd(const float *m, const float *ls, const float *t, const float *dy, size_t n, int N, float *dm, float *dls) {
    float g = dy[0] / (float)N;
    UVAE__FOR(i, n) {
        float a, b;
        uvae__dlogistic(t[i], m[i], ls[i], &a, &b);
        if (dm) dm[i] += g * a;
        if (dls) dls[i] += g * b;
    }
}
void uvae__cu_dlog_bwd(const float *m, const float *ls, const float *t, const float *dy, size_t n, int N, float *dm, float *dls) {
    if (dm || dls) UVAE__LAUNCH(n, uvae__k_dlog_bwd, m, ls, t, dy, n, N, dm, dls);
}

/* ---------------------------------------------------------------------------------------------
   [optim] one slice, elementwise:
   SGD:   g += wd p (wd > 0);  m = first ? g : mu m + g;  p -= lr m
   Adam:  g += wd p (wd > 0)  | AdamW: p *= 1 - lr wd;
          m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= step_size m / (sqrt(v)/bc2s + eps) */
static __global__ void uvae__k_optim(int kind, float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2,
                                     float eps, float wd, float mu, float step_size, float bc2s, int first) {
    UVAE__FOR(i, n) {
        float gi = g[i];
        if (kind == 0) {
            if (wd > 0) gi += wd * p[i];
            m[i] = first ? gi : mu * m[i] + gi;
            p[i] -= lr * m[i];
        } else {
            if (kind == 2) p[i] *= 1 - lr * wd;
            else if (wd > 0) gi += wd * p[i];
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            p[i] -= step_size * (m[i] / (sqrtf(v[i]) / bc2s + eps));
        }
    }
}
void uvae__cu_optim(int kind, float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2,
                    float eps, float wd, float mu, float step_size, float bc2s, int first) {
    UVAE__LAUNCH(n, uvae__k_optim, kind, p, g, m, v, n, lr, b1, b2, eps, wd, mu, step_size, bc2s, first);
}

/* *out_host = sum x^2 (double), copied back (waits) */
struct uvae__op_sq {
    const float *x;
    __device__ double operator()(size_t i) const { return (double)x[i] * x[i]; }
};
void uvae__cu_sumsq(const float *x, size_t n, double *out_host) {
    double *res = uvae__h_scratch(__func__);
    uvae__op_sq op = {x};
    *out_host = 0;
    if (!res) return;
    res += UVAE__PARTS;
    uvae__h_reduce(__func__, op, n, 1.0, 1.0, 2, NULL, res);
    uvae__h_ok(cudaMemcpy(out_host, res, sizeof(double), cudaMemcpyDeviceToHost), "uvae__cu_sumsq: copy back");
}

/* x[i] = N(0,1), Box-Muller: u1 = 1 - hash_uniform(seed, 2i) in (0,1], u2 = hash_uniform(seed, 2i+1),
   x = sqrtf(-2 logf(u1)) cosf(2 pi u2) */
static __global__ void uvae__k_randn(float *x, size_t n, uint32_t seed) {
    UVAE__FOR(i, n) {
        float u1 = 1.0f - uvae_hash_uniform(seed, (uint32_t)(2 * i)), u2 = uvae_hash_uniform(seed, (uint32_t)(2 * i + 1));
        x[i] = sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
    }
}
void uvae__cu_randn(float *x, size_t n, uint32_t seed) { UVAE__LAUNCH(n, uvae__k_randn, x, n, seed); }

/* x *= s */
static __global__ void uvae__k_scale(float *x, size_t n, float s) {
    UVAE__FOR(i, n) x[i] *= s;
}
void uvae__cu_scale(float *x, size_t n, float s) { UVAE__LAUNCH(n, uvae__k_scale, x, n, s); }
