/* tests/cuemu/selftest.cu — the emulator's own checks (`make test-cuda-emu`): CUDA source, turned
   into C++ by the same sed rules as unetvae_cuda.cu, then `selftest CASE` runs one case:
     sum        a block reduction (shuffles, shared memory, __syncthreads) over 4 blocks of 256
                threads, the dynamic shared memory and the atomicAdd: prints "sum ok" (exit 0)
     race       a tile loaded into shared memory and read back by other threads with the barrier
                between the load and the reads left out: the round-robin schedule must expose it
                (prints "race seen", exit 0)
     race-prev  the same with each thread reading the previous thread's value, which the forward
                round-robin order hides ("race NOT seen", exit 1) and CUEMU_ORDER=reverse exposes
     stale      shared memory set by the first block only and read by every block: the others
                must find it filled with NaN, not the first block's values (prints "stale seen")
     hostptr    a host pointer passed to a kernel            -> stops: "is not device memory"
     sync       __syncthreads reached by one warp only       -> stops: "wait at __syncthreads"
     shfl       a shuffle reached by half a warp             -> stops: "of warp 0's 32 lanes"
     memcpy     cudaMemcpy with the wrong direction          -> stops: "not inside one device allocation"
     config     a block of 2048 threads                      -> cudaGetLastError says "invalid configuration"
     uninit     a read of new device memory                  -> reads NaN (prints "uninit seen")
   tests/test_cuemu.sh runs every case and checks the exit status and the message. */
#include <stdio.h>
#include <string.h>
#include <cuda_runtime.h>

static __device__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}
/* out[0] += sum of x over the block (through warp sums in dynamic shared memory) */
static __global__ void k_sum(const float *x, int n, float *out) {
    extern __shared__ float part[];
    int i = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x % 32, w = threadIdx.x / 32;
    float v = warp_sum(i < n ? x[i] : 0.0f);
    if (lane == 0) part[w] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0;
        for (int j = 0; j < (int)blockDim.x / 32; j++) s += part[j];
        atomicAdd(out, s);
    }
}
/* y[i] = tile[(i + 1) % 256] (prev: tile[i - 1], tile[0] for i = 0) with the tile loaded by all
   threads; barrier optional */
static __global__ void k_tile(const float *x, float *y, int barrier, int prev) {
    __shared__ float tile[256];
    tile[threadIdx.x] = x[blockIdx.x * 256 + threadIdx.x];
    if (barrier) __syncthreads();
    y[blockIdx.x * 256 + threadIdx.x] = tile[prev ? (threadIdx.x > 0 ? threadIdx.x - 1 : 0) : (threadIdx.x + 1) % 256];
}
/* y[32 b + i] = acc[i] + 1, with acc zeroed by block 0 alone */
static __global__ void k_stale(float *y) {
    __shared__ float acc[32];
    if (blockIdx.x == 0) acc[threadIdx.x] = 0;
    __syncthreads();
    y[blockIdx.x * 32 + threadIdx.x] = acc[threadIdx.x] + 1;
}
static __global__ void k_scale(float *x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= 2;
}
static __global__ void k_bad_sync(float *x) {
    if (threadIdx.x < 32) __syncthreads();
    x[threadIdx.x] = 1;
}
static __global__ void k_bad_shfl(float *x) {
    float v = 1;
    if (threadIdx.x % 32 < 16) v = warp_sum(v);
    x[threadIdx.x] = v;
}
static __global__ void k_copy(const float *x, float *y) { y[threadIdx.x] = x[threadIdx.x]; }

int main(int argc, char **argv) {
    const char *c = argc > 1 ? argv[1] : "";
    const int n = 1000;
    float h[1024], *d = NULL, *e = NULL, *out = NULL, s = 0;
    for (int i = 0; i < 1024; i++) h[i] = (float)(i % 7);
    cudaMalloc((void **)&d, 1024 * sizeof(float));
    cudaMalloc((void **)&e, 1024 * sizeof(float));
    cudaMalloc((void **)&out, sizeof(float));
    cudaMemcpy(d, h, 1024 * sizeof(float), cudaMemcpyHostToDevice);
    if (!strcmp(c, "sum")) {
        float want = 0;
        for (int i = 0; i < n; i++) want += h[i];
        cudaMemset(out, 0, sizeof(float));
        k_sum<<<4, 256, 8 * sizeof(float)>>>(d, n, out);
        cudaMemcpy(&s, out, sizeof s, cudaMemcpyDeviceToHost);
        if (cudaGetLastError() != cudaSuccess || s != want) { printf("sum %g, want %g\n", s, want); return 1; }
        printf("sum ok (%g)\n", s);
        return 0;
    }
    if (!strcmp(c, "race") || !strcmp(c, "race-prev")) {
        float y[1024];
        int wrong[2] = {0, 0}, prev = !strcmp(c, "race-prev");
        for (int b = 0; b < 2; b++) {
            k_tile<<<4, 256>>>(d, e, b, prev);
            cudaMemcpy(y, e, sizeof y, cudaMemcpyDeviceToHost);
            for (int i = 0; i < 1024; i++)
                wrong[b] += y[i] != h[i / 256 * 256 + (prev ? (i % 256 > 0 ? i % 256 - 1 : 0) : (i % 256 + 1) % 256)];
        }
        printf("%s: %d wrong without the barrier, %d with it\n", wrong[0] && !wrong[1] ? "race seen" : "race NOT seen", wrong[0], wrong[1]);
        return wrong[0] && !wrong[1] ? 0 : 1;
    }
    if (!strcmp(c, "stale")) {
        float y[64];
        int nan1 = 0;
        k_stale<<<2, 32>>>(e);
        cudaMemcpy(y, e, sizeof y, cudaMemcpyDeviceToHost);
        for (int i = 32; i < 64; i++) nan1 += y[i] != y[i];
        printf("%s: block 0 %s, %d of block 1's 32 values NaN\n", y[0] == 1 && nan1 == 32 ? "stale seen" : "stale NOT seen",
               y[0] == 1 ? "right" : "wrong", nan1);
        return y[0] == 1 && nan1 == 32 ? 0 : 1;
    }
    if (!strcmp(c, "hostptr")) k_scale<<<4, 256>>>(h, 1024);
    else if (!strcmp(c, "sync")) k_bad_sync<<<1, 64>>>(d);
    else if (!strcmp(c, "shfl")) k_bad_shfl<<<1, 32>>>(d);
    else if (!strcmp(c, "memcpy")) cudaMemcpy(h, d, sizeof(float), cudaMemcpyHostToDevice);
    else if (!strcmp(c, "config")) {
        cudaError_t err;
        k_scale<<<1, 2048>>>(d, n);
        err = cudaGetLastError();
        printf("%s\n", cudaGetErrorString(err));
        return err == cudaErrorInvalidConfiguration ? 0 : 1;
    } else if (!strcmp(c, "uninit")) {
        float y[4], *fresh = NULL;
        cudaMalloc((void **)&fresh, 4 * sizeof(float));
        k_copy<<<1, 4>>>(fresh, e);
        cudaMemcpy(y, e, sizeof y, cudaMemcpyDeviceToHost);
        printf("%s\n", y[0] != y[0] ? "uninit seen" : "uninit NOT seen");
        return y[0] != y[0] ? 0 : 1;
    } else {
        fprintf(stderr, "selftest: unknown case '%s'\n", c);
        return 2;
    }
    printf("selftest %s: not stopped\n", c);
    return 1;
}
