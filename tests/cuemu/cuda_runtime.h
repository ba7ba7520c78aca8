/* tests/cuemu/cuda_runtime.h — a CPU emulator of the CUDA runtime and execution model, for running
   unetvae_cuda.cu's kernels where there is no GPU (`make test-cuda-emu`).

   It stands in for <cuda_runtime.h> when build/unetvae_cuda_emu.cpp (unetvae_cuda.cu with its
   `k<<<grid, block[, shared]>>>(args)` launches rewritten by sed into uvae_emu_launch(...) calls)
   is compiled as plain C++ with -I tests/cuemu. What it models, and checks:
     - every CUDA thread is a fiber (a stack of its own) with its own threadIdx; blocks run one
       after another, their threads round-robin. __syncthreads() parks a thread until every thread
       of the block has reached a __syncthreads(); __shfl_down_sync(0xffffffff, ...) until all 32
       lanes of its warp have reached a shuffle. A thread that exits while others wait, or a warp
       whose lanes wait at different barriers, is divergence (undefined on a GPU): the emulator
       stops with a message. mma_sync (mma.h) is a warp-wide step as the shuffles are.
     - __shared__ arrays are statics (one block runs at a time), filled with 0xff bytes as each
       block's first thread reaches its declaration; extern __shared__ (dynamic) memory is a
       buffer of the launch's size, filled so before each block. New device memory is filled
       with 0xff bytes too (NaN floats, -1 ints), so a read before a write shows up as NaN.
     - CUEMU_ORDER=reverse runs the blocks, and the threads between barriers, last first: a race
       that the forward order hides (a thread reading what an earlier one stored, without the
       barrier between) shows up the other way round.
     - cudaMalloc'd memory is host memory in a registry: every pointer argument of a kernel (not the
       pointers inside struct arguments) and both ends of every cudaMemcpy / cudaMemset must lie in
       a device allocation of the right kind: a host pointer handed to a kernel stops the run.
     - launch configurations are checked as a GPU would (block <= 1024 threads, grid.y <= 65535,
       dynamic shared memory <= 48 KiB); a bad one is a launch error (cudaGetLastError), not a stop.
     - atomicAdd is a plain read-modify-write (the threads never run at once).
   What it does not model: real concurrency (a race shows only where the round-robin order exposes
   it, as with a missing barrier between one thread's store to shared memory and another's load of
   it; nothing between blocks, no memory model), warp-synchronous code without shuffles, the
   device's rounding (the build uses -ffp-contract=off where nvcc fuses multiply-adds by default,
   expf and friends come from the host's libm, and the tensor cores' sums are emulated in one
   fixed order: see mma.h), and speed. The device is a compute capability 8.0 one (__CUDA_ARCH__
   800), so code for the tensor cores compiles and runs, with the wmma functions of mma.h.
   Environment: CUEMU_DEVICES=0 makes cudaGetDeviceCount report no device (the "no CUDA device"
   path); CUEMU_FIBERS=1 runs every thread on a fiber (by default a warp whose first lane ends
   without a barrier runs its other lanes as plain calls: see run_block); CUEMU_REPORT=1 prints at
   exit how many launches and threads ran, CUEMU_REPORT=2 also the launches per kernel. */
#ifndef UVAE_CUEMU_RUNTIME_H
#define UVAE_CUEMU_RUNTIME_H

#include <cmath>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>
#include <ucontext.h>

/* Fibers switch with a few instructions of our own on x86-64 (glibc's swapcontext makes a system
   call per switch to save the signal mask, which made the emulator ten times slower); elsewhere,
   and under AddressSanitizer (which must be told about stack switches), with ucontext. */
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(CUEMU_UCONTEXT)
#define CUEMU_ASM_SWITCH 1
/* cuemu_switch(&from_sp, to_sp): push the callee-saved registers, save the stack pointer in
   *from_sp, load to_sp, pop that context's registers and return into it. */
extern "C" void cuemu_switch(void **from_sp, void *to_sp);
__asm__(".pushsection .text\n"
        ".globl cuemu_switch\n"
        ".type cuemu_switch, @function\n"
        "cuemu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size cuemu_switch, .-cuemu_switch\n"
        ".popsection\n");
#endif

using std::isnan;

#define __CUDA_ARCH__ 800   /* device code for compute capability 8.0: the tensor-core paths too */

/* ---- qualifiers ---------------------------------------------------------------------------- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

/* ---- types ----------------------------------------------------------------------------------- */
struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
enum cudaError_t {
    cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9, cudaErrorInvalidDevice = 101, cudaErrorNoDevice = 100,
    cudaErrorInvalidDevicePointer = 17
};
typedef cudaError_t cudaError;
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16, cudaDevAttrComputeCapabilityMajor = 75, cudaDevAttrComputeCapabilityMinor = 76 };
struct cudaFuncAttributes { int ptxVersion, binaryVersion, maxThreadsPerBlock; size_t sharedSizeBytes; };

/* ---- the emulator's state -------------------------------------------------------------------- */
namespace cuemu {

[[noreturn]] inline void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
inline void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cuemu: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

enum { RUN, AT_SYNC, AT_SHFL, DONE };
struct fiber {
#ifdef CUEMU_ASM_SWITCH
    void *sp;                                    /* its saved stack pointer */
#else
    ucontext_t ctx;
#endif
    char *stack;
    int state;
};
const size_t STACK = 256 * 1024;

struct state_t {
    std::map<uintptr_t, size_t> allocs;          /* device allocations: start -> bytes */
    cudaError_t last = cudaSuccess;              /* cudaGetLastError's error */
    int device = -1;                             /* cudaSetDevice's, -1 until called */
    /* the launch in progress */
    const char *kernel = nullptr;
    std::vector<fiber> fibers;                   /* one per thread of a block */
#ifdef CUEMU_ASM_SWITCH
    void *sched_sp;                              /* the scheduler's saved stack pointer */
#else
    ucontext_t sched;
#endif
    fiber *cur = nullptr;                        /* nullptr: threads run as plain calls */
    void (*body)(void *) = nullptr;
    void *body_arg = nullptr;
    double shfl[1024];                           /* the value each thread offers a shuffle */
    std::vector<unsigned char> dyn_shared;
    unsigned long long block = 0;                /* blocks run so far (the one running: its number) */
    std::vector<std::pair<void *, unsigned long long>> fresh;   /* a __shared__ array: the block that last found it */
    unsigned long long launches = 0, threads = 0, threads_plain = 0;
    unsigned long long count[8] = {0};            /* cuemu_counts: see there */
    std::map<std::string, unsigned long long> per_kernel;   /* launches by kernel name */
    ~state_t() {                                 /* at exit: CUEMU_REPORT=1 says how much ran */
        int r = getenv("CUEMU_REPORT") ? atoi(getenv("CUEMU_REPORT")) : 0;
        if (r > 0)
            fprintf(stderr, "cuemu: %llu kernel launches, %llu CUDA threads (%llu of them as plain calls)\n",
                    launches, threads, threads_plain);
        if (r > 1)
            for (const auto &k : per_kernel) fprintf(stderr, "cuemu: %10llu x %s\n", k.second, k.first.c_str());
        for (fiber &f : fibers) free(f.stack);
    }
};
inline state_t &st() { static state_t s; return s; }

/* the builtins of the thread that runs */
inline uint3 &tid() { static uint3 v; return v; }
inline uint3 &bid() { static uint3 v; return v; }
inline dim3 &bdim() { static dim3 v; return v; }
inline dim3 &gdim() { static dim3 v; return v; }

/* Is [p, p+bytes) inside one device allocation? */
inline bool in_device(const void *p, size_t bytes) {
    state_t &s = st();
    uintptr_t a = (uintptr_t)p;
    auto it = s.allocs.upper_bound(a);
    if (it == s.allocs.begin()) return false;
    --it;
    return a >= it->first && a + bytes <= it->first + it->second;
}
/* Does any byte of [p, p+bytes) lie in a device allocation? */
inline bool touches_device(const void *p, size_t bytes) {
    state_t &s = st();
    uintptr_t a = (uintptr_t)p;
    auto it = s.allocs.upper_bound(a + (bytes ? bytes : 1) - 1);
    if (it == s.allocs.begin()) return false;
    --it;
    return a < it->first + it->second;
}

inline unsigned linear_tid() { return tid().x + bdim().x * (tid().y + bdim().y * tid().z); }

/* park the running thread at a barrier of kind k until the scheduler releases it */
inline void park(int k) {
    state_t &s = st();
    if (!s.cur)
        die("kernel %s, block (%u,%u,%u), thread %u: reached %s, which the first thread of its %s "
            "finished without reaching (divergence)", s.kernel, bid().x, bid().y, bid().z, linear_tid(),
            k == AT_SYNC ? "__syncthreads" : "a warp-wide step (__shfl_down_sync, mma_sync)", k == AT_SYNC ? "block" : "warp");
    s.cur->state = k;
#ifdef CUEMU_ASM_SWITCH
    cuemu_switch(&s.cur->sp, s.sched_sp);
#else
    swapcontext(&s.cur->ctx, &s.sched);
#endif
}

inline void entry() {
    state_t &s = st();
    s.body(s.body_arg);
    s.cur->state = DONE;
#ifdef CUEMU_ASM_SWITCH
    void *dead;
    cuemu_switch(&dead, s.sched_sp);              /* never resumed */
    __builtin_unreachable();
#endif                                            /* ucontext: uc_link returns to the scheduler */
}

inline void set_tid(unsigned i) {
    dim3 b = bdim();
    tid() = uint3{i % b.x, (i / b.x) % b.y, i / (b.x * b.y)};
}
inline void start(unsigned i) {
    state_t &s = st();
    fiber &f = s.fibers[i];
#ifdef CUEMU_ASM_SWITCH
    /* the stack as cuemu_switch leaves it: six registers (zeros), then entry as the return
       address, then an empty slot, so that entry starts as after a call (rsp % 16 == 8) */
    void **top = (void **)(f.stack + STACK);
    top[-1] = nullptr;
    top[-2] = (void *)entry;
    for (int r = 3; r <= 8; r++) top[-r] = nullptr;
    f.sp = (void *)(top - 8);
#else
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = STACK;
    f.ctx.uc_link = &s.sched;
    makecontext(&f.ctx, entry, 0);
#endif
    f.state = RUN;
}
inline void resume(unsigned i) {              /* thread i runs to its next barrier or its end */
    state_t &s = st();
    set_tid(i);
    s.cur = &s.fibers[i];
#ifdef CUEMU_ASM_SWITCH
    cuemu_switch(&s.sched_sp, s.cur->sp);
#else
    swapcontext(&s.sched, &s.cur->ctx);
#endif
    s.cur = nullptr;
}
inline void plain(unsigned i) {               /* thread i as a plain call: it must not reach a barrier */
    state_t &s = st();
    set_tid(i);
    s.threads_plain++;
    s.body(s.body_arg);
}

inline bool reversed() {   /* CUEMU_ORDER=reverse: blocks, and threads between barriers, last first */
    static int r = -1;
    if (r < 0) r = getenv("CUEMU_ORDER") && !strcmp(getenv("CUEMU_ORDER"), "reverse");
    return r > 0;
}
/* Threads [lo, hi) on fibers (started, some perhaps parked) until all are done: every runnable
   thread runs to its next barrier; then warps whose 32 lanes all wait at a shuffle go on, else, if
   the range is the whole block and all its threads wait at __syncthreads, they all go on. */
inline void schedule(unsigned lo, unsigned hi, bool whole_block) {
    state_t &s = st();
    for (;;) {
        for (unsigned k = lo; k < hi; k++) {
            unsigned i = reversed() ? hi - 1 - (k - lo) : k;
            if (s.fibers[i].state == RUN) resume(i);
        }
        int released = 0;
        unsigned done = 0, sync = 0;
        for (unsigned w = lo / 32; w * 32 < hi; w++) {
            unsigned a = w * 32, b = a + 32 < hi ? a + 32 : hi, at = 0;
            for (unsigned i = a; i < b; i++) at += s.fibers[i].state == AT_SHFL;
            if (at == 0) continue;
            if (at != 32)
                die("kernel %s, block (%u,%u,%u): only %u of warp %u's 32 lanes reached a warp-wide step "
                    "(__shfl_down_sync, mma_sync; the others exited, or wait at __syncthreads)", s.kernel, bid().x,
                    bid().y, bid().z, at, w);
            for (unsigned i = a; i < b; i++) s.fibers[i].state = RUN;
            released = 1;
        }
        if (released) continue;
        for (unsigned i = lo; i < hi; i++) {
            done += s.fibers[i].state == DONE;
            sync += s.fibers[i].state == AT_SYNC;
        }
        if (done == hi - lo) return;
        if (sync == hi - lo && whole_block) {
            for (unsigned i = lo; i < hi; i++) s.fibers[i].state = RUN;
            continue;
        }
        die("kernel %s, block (%u,%u,%u): %u threads wait at __syncthreads while %u have exited "
            "(a barrier not reached by the whole block)", s.kernel, bid().x, bid().y, bid().z, sync, done);
    }
}

/* One block of nt threads. Thread 0 runs first on a fiber: if it reaches a barrier, the whole
   block runs on fibers. If it ends without one, no thread of the block may reach __syncthreads
   (that would be divergence), and each warp is probed the same way: its first lane on a fiber,
   then the other 31 on fibers if that lane reached a shuffle, else as plain calls, without the
   two context switches per thread (the GPU suite: 3.1 -> 2.1 min with ucontext's switches,
   13.0 -> 12.4 s with the x86-64 one). CUEMU_FIBERS=1, or CUEMU_ORDER=reverse: every thread on a
   fiber. */
inline void run_block(unsigned nt, bool all_fibers) {
    state_t &s = st();
    if (s.fibers.size() < nt) {
        size_t old = s.fibers.size();
        s.fibers.resize(nt);
        for (size_t i = old; i < nt; i++)
            if (!(s.fibers[i].stack = (char *)malloc(STACK))) die("out of memory for fiber stacks");
    }
    if (all_fibers || reversed()) {
        for (unsigned i = 0; i < nt; i++) start(i);
        schedule(0, nt, true);
        return;
    }
    start(0);
    resume(0);
    if (s.fibers[0].state != DONE) {
        for (unsigned i = 1; i < nt; i++) start(i);
        schedule(0, nt, true);
        return;
    }
    for (unsigned a = 0; a < nt; a += 32) {
        unsigned b = a + 32 < nt ? a + 32 : nt, i = a + 1;
        if (a > 0) {
            start(a);
            resume(a);
            if (s.fibers[a].state == AT_SYNC)
                die("kernel %s, block (%u,%u,%u): thread %u reached __syncthreads, which thread 0 finished "
                    "without reaching (divergence)", s.kernel, bid().x, bid().y, bid().z, a);
            if (s.fibers[a].state == AT_SHFL) {
                for (unsigned j = a + 1; j < b; j++) start(j);
                schedule(a, b, false);
                continue;
            }
        }
        for (; i < b; i++) plain(i);
    }
}

/* Run a whole grid: body(arg) once per thread. */
inline void run_grid(const char *name, dim3 g, dim3 b, void (*body)(void *), void *arg) {
    state_t &s = st();
    static int all_fibers = -1;
    if (all_fibers < 0) all_fibers = getenv("CUEMU_FIBERS") && atoi(getenv("CUEMU_FIBERS")) > 0;
    unsigned nt = b.x * b.y * b.z;
    s.kernel = name;
    s.body = body;
    s.body_arg = arg;
    bdim() = b;
    gdim() = g;
    s.launches++;
    s.count[6]++;
    static int per_kernel = -1;
    if (per_kernel < 0) per_kernel = getenv("CUEMU_REPORT") && atoi(getenv("CUEMU_REPORT")) > 1;
    if (per_kernel) s.per_kernel[name]++;
    for (unsigned z = 0; z < g.z; z++)
        for (unsigned y = 0; y < g.y; y++)
            for (unsigned x = 0; x < g.x; x++) {
                bid() = reversed() ? uint3{g.x - 1 - x, g.y - 1 - y, g.z - 1 - z} : uint3{x, y, z};
                s.block++;
                if (x + y + z > 0) std::fill(s.dyn_shared.begin(), s.dyn_shared.end(), 0xff);   /* each block's own */
                s.threads += nt;
                run_block(nt, all_fibers);
            }
}

/* pointer arguments must be device memory (or null) */
template <class T> inline void check_arg(const char *name, int i, const T &v) {
    if constexpr (std::is_pointer<T>::value) {
        if (v && !in_device((const void *)v, 0))   /* (one past an allocation's end counts) */
            die("kernel %s: argument %d (%p) is not device memory", name, i, (const void *)v);
    } else {
        (void)name; (void)i; (void)v;
    }
}

template <class K, class Tup, size_t... I> inline void call(K k, Tup &t, std::index_sequence<I...>) { k(std::get<I>(t)...); }
template <class K, class Tup> struct job { K k; Tup *args; };
template <class K, class Tup> inline void trampoline(void *p) {
    job<K, Tup> *j = (job<K, Tup> *)p;
    call(j->k, *j->args, std::make_index_sequence<std::tuple_size<Tup>::value>());
}

struct cfg { dim3 g, b; size_t shared; };

} /* namespace cuemu */

/* ---- what the kernels see ---------------------------------------------------------------------- */
#define threadIdx (cuemu::tid())
#define blockIdx (cuemu::bid())
#define blockDim (cuemu::bdim())
#define gridDim (cuemu::gdim())

inline void __syncthreads() { cuemu::park(cuemu::AT_SYNC); }
template <class T> inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    static_assert(sizeof(T) <= sizeof(double), "cuemu: shuffles of up to 8 bytes");
    cuemu::state_t &s = cuemu::st();
    unsigned t = cuemu::linear_tid(), lane = t % 32;
    T r = v;
    if (mask != 0xffffffffu || width != 32) cuemu::die("kernel %s: __shfl_down_sync with mask %#x width %d (only full warps are emulated)", s.kernel, mask, width);
    memcpy(&s.shfl[t], &v, sizeof v);
    cuemu::park(cuemu::AT_SHFL);                  /* every lane has offered its value */
    if (lane + delta < 32) memcpy(&r, &s.shfl[t + delta], sizeof r);
    cuemu::park(cuemu::AT_SHFL);                  /* every lane has read: the slots may be reused */
    return r;
}
inline float atomicAdd(float *p, float v) { float old = *p; *p = old + v; return old; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __int_as_float(int i) { float f; memcpy(&f, &i, sizeof f); return f; }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline int __float_as_int(float f) { int i; memcpy(&i, &f, sizeof i); return i; }

inline void *uvae_emu_dyn_shared() { return cuemu::st().dyn_shared.data(); }
/* A __shared__ array as a block's first thread finds it: 0xff bytes (NaN floats), as the dynamic
   shared memory, not what the previous block left (the sed rules put a call after each declaration) */
inline void uvae_emu_shared_fresh(void *p, size_t n) {
    cuemu::state_t &s = cuemu::st();
    for (auto &f : s.fresh)
        if (f.first == p) {
            if (f.second != s.block) { memset(p, 0xff, n); f.second = s.block; }
            return;
        }
    memset(p, 0xff, n);
    s.fresh.push_back({p, s.block});
}
inline cuemu::cfg uvae_emu_cfg(dim3 g, dim3 b, size_t shared = 0) { return cuemu::cfg{g, b, shared}; }

/* k<<<cfg>>>(args...) */
#define uvae_emu_launch(k, ...) uvae_emu_launch_(#k, k, __VA_ARGS__)
template <class... P, class... A> inline void uvae_emu_launch_(const char *name, void (*k)(P...), cuemu::cfg c, A &&...a) {
    cuemu::state_t &s = cuemu::st();
    std::tuple<typename std::decay<P>::type...> args(static_cast<typename std::decay<P>::type>(a)...);
    unsigned long long nt = (unsigned long long)c.b.x * c.b.y * c.b.z;
    if (nt == 0 || nt > 1024 || c.b.z > 64 || c.g.x == 0 || c.g.y == 0 || c.g.z == 0 || c.g.y > 65535 || c.g.z > 65535 ||
        c.g.x > 2147483647u || c.shared > 48 * 1024) {
        s.last = cudaErrorInvalidConfiguration;
        return;
    }
    {
        int i = 0;
        std::apply([&](const auto &...v) { (cuemu::check_arg(name, i++, v), ...); }, args);
    }
    s.dyn_shared.assign(c.shared ? c.shared : 1, 0xff);
    typedef decltype(args) tup;
    cuemu::job<void (*)(P...), tup> j = {k, &args};
    cuemu::run_grid(name, c.g, c.b, cuemu::trampoline<void (*)(P...), tup>, &j);
}

/* ---- the runtime API (the calls unetvae_cuda.cu makes) ---------------------------------------- */
inline const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    }
    return "unknown error";
}
inline cudaError_t cudaGetLastError() { cudaError_t e = cuemu::st().last; cuemu::st().last = cudaSuccess; return e; }
inline cudaError_t cudaPeekAtLastError() { return cuemu::st().last; }
inline cudaError_t cudaGetDeviceCount(int *n) {
    const char *e = getenv("CUEMU_DEVICES");
    *n = e ? atoi(e) : 1;
    if (*n <= 0) { *n = 0; return cudaErrorNoDevice; }
    return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int d) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) return cudaErrorNoDevice;
    if (d < 0 || d >= n) return cudaErrorInvalidDevice;
    cuemu::st().device = d;
    return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int *d) { *d = cuemu::st().device < 0 ? 0 : cuemu::st().device; return cudaSuccess; }
inline cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int) {
    *v = a == cudaDevAttrComputeCapabilityMajor ? 8 : a == cudaDevAttrMultiProcessorCount ? 132 : 0;   /* an H100's count */
    return cudaSuccess;
}
template <class F> inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *fa, F) {
    memset(fa, 0, sizeof *fa);
    fa->ptxVersion = fa->binaryVersion = 80;
    fa->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaMalloc(void **p, size_t bytes) {
    void *q;
    cuemu::st().count[0]++;
    if (bytes == 0) { *p = nullptr; return cudaSuccess; }
    if (!(q = malloc(bytes))) { *p = nullptr; return cudaErrorMemoryAllocation; }
    memset(q, 0xff, bytes);
    cuemu::st().allocs[(uintptr_t)q] = bytes;
    *p = q;
    return cudaSuccess;
}
inline cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    auto &a = cuemu::st().allocs;
    auto it = a.find((uintptr_t)p);
    if (it == a.end()) cuemu::die("cudaFree(%p): not the start of a device allocation", p);
    cuemu::st().count[1]++;
    a.erase(it);
    free(p);
    return cudaSuccess;
}
inline cudaError_t cudaMemset(void *p, int v, size_t bytes) {
    if (!cuemu::in_device(p, bytes)) cuemu::die("cudaMemset(%p, %zu bytes): not inside one device allocation", p, bytes);
    cuemu::st().count[7]++;
    memset(p, v, bytes);
    return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind k) {
    int dd = k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToDevice, sd = k == cudaMemcpyDeviceToHost || k == cudaMemcpyDeviceToDevice;
    if (dd ? !cuemu::in_device(dst, bytes) : cuemu::touches_device(dst, bytes))
        cuemu::die("cudaMemcpy(kind %d, %zu bytes): the destination %p is %s", (int)k, bytes, dst, dd ? "not inside one device allocation" : "device memory");
    if (sd ? !cuemu::in_device(src, bytes) : cuemu::touches_device(src, bytes))
        cuemu::die("cudaMemcpy(kind %d, %zu bytes): the source %p is %s", (int)k, bytes, src, sd ? "not inside one device allocation" : "device memory");
    memmove(dst, src, bytes);
    if (k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToHost) {
        cuemu::st().count[k == cudaMemcpyHostToDevice ? 2 : 4]++;
        cuemu::st().count[k == cudaMemcpyHostToDevice ? 3 : 5] += bytes;
    }
    return cudaSuccess;
}

/* What the program has asked of the runtime so far, for tests that a training step moves nothing
   it should not: c[0] cudaMalloc calls, c[1] cudaFree calls, c[2] host-to-device copies, c[3]
   their bytes, c[4] device-to-host copies, c[5] their bytes, c[6] kernel launches, c[7] cudaMemset
   calls (each is a launch on a GPU too). (C linkage: tests/test_cuda.c declares it when built for
   the emulator, -DUVT_CUEMU.) */
extern "C" void cuemu_counts(unsigned long long c[8]) {
    for (int i = 0; i < 8; i++) c[i] = cuemu::st().count[i];
}

#endif
