/* tests/cuemu/mma.h — stands in for CUDA's <mma.h> under the emulator (tests/cuemu/cuda_runtime.h):
   the warp matrix functions (nvcuda::wmma) that unetvae_cuda.cu's TF32 GEMM uses, m16n16k8 with
   tf32 inputs and float sums.

   A fragment's elements are spread over the warp's 32 lanes; CUDA leaves the mapping unspecified,
   so code may only touch x[0..num_elements) elementwise, as the GEMM does. Here lane l holds
   elements l*num_elements .. l*num_elements + num_elements - 1 of the fragment's matrix in row-major
   order (matrix_a 16x8, matrix_b 8x16, accumulator 16x16). Loads, stores and fills are per lane;
   mma_sync is the one warp-wide step: every lane offers its pieces of A, B and C, waits at a warp
   barrier (all 32 lanes must reach it, as on a GPU), and computes its elements of D = A B + C,
   summing the 8 products in k order in float; a second barrier lets the pieces be reused.
   __float_to_tf32 rounds to 10 mantissa bits, to nearest, ties away from zero (cvt.rna.tf32.f32).
   A GPU's tensor cores may sum in another order: agreement is to TF32's tolerance, not bitwise. */
#ifndef UVAE_CUEMU_MMA_H
#define UVAE_CUEMU_MMA_H

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision { struct tf32 {}; }
enum layout_t { mem_row_major, mem_col_major };

template <class Use> struct shape_of;                    /* rows, cols of the fragment's matrix */
template <> struct shape_of<matrix_a> { enum { R = 16, C = 8 }; };
template <> struct shape_of<matrix_b> { enum { R = 8, C = 16 }; };
template <> struct shape_of<accumulator> { enum { R = 16, C = 16 }; };

template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    static_assert(M == 16 && N == 16 && K == 8, "cuemu: only m16n16k8 is emulated");
    enum { R = shape_of<Use>::R, C = shape_of<Use>::C, num_elements = R * C / 32 };
    float x[num_elements];
};

inline unsigned lane_() { return cuemu::linear_tid() % 32; }

template <class Use, int M, int N, int K, class T, class L>
inline void fill_fragment(fragment<Use, M, N, K, T, L> &f, float v) {
    for (int e = 0; e < f.num_elements; e++) f.x[e] = v;
}
/* matrix_a / matrix_b: element (r, c) at p[r*ldm + c] (row_major) or p[c*ldm + r] (col_major) */
template <class Use, int M, int N, int K, class T, class L>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L> &f, const float *p, unsigned ldm) {
    static_assert(!std::is_same<L, void>::value, "cuemu: a matrix_a/b fragment needs its layout");
    for (int e = 0; e < f.num_elements; e++) {
        int q = (int)lane_() * f.num_elements + e, r = q / f.C, c = q % f.C;
        f.x[e] = std::is_same<L, row_major>::value ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
    }
}
template <int M, int N, int K, class T>
inline void store_matrix_sync(float *p, const fragment<accumulator, M, N, K, T> &f, unsigned ldm, layout_t layout) {
    for (int e = 0; e < f.num_elements; e++) {
        int q = (int)lane_() * f.num_elements + e, r = q / f.C, c = q % f.C;
        if (layout == mem_row_major) p[(size_t)r * ldm + c] = f.x[e];
        else p[(size_t)c * ldm + r] = f.x[e];
    }
}

/* the warp's pieces of A [16x8], B [8x16] and C [16x16] during an mma_sync, per warp of a block */
struct mma_pieces { float a[128], b[128], c[256]; };
inline mma_pieces *pieces_(unsigned warp) { static mma_pieces p[32]; return &p[warp]; }

template <int M, int N, int K, class T, class LA, class LB>
inline void mma_sync(fragment<accumulator, M, N, K, T> &d, const fragment<matrix_a, M, N, K, precision::tf32, LA> &a,
                     const fragment<matrix_b, M, N, K, precision::tf32, LB> &b, const fragment<accumulator, M, N, K, T> &c) {
    unsigned l = lane_();
    mma_pieces *w = pieces_(cuemu::linear_tid() / 32);
    for (int e = 0; e < a.num_elements; e++) w->a[l * a.num_elements + e] = a.x[e];
    for (int e = 0; e < b.num_elements; e++) w->b[l * b.num_elements + e] = b.x[e];
    for (int e = 0; e < c.num_elements; e++) w->c[l * c.num_elements + e] = c.x[e];
    cuemu::park(cuemu::AT_SHFL);                          /* the whole warp has offered its pieces */
    for (int e = 0; e < d.num_elements; e++) {
        int q = (int)l * d.num_elements + e, r = q / 16, col = q % 16;
        float s = w->c[q];
        for (int k = 0; k < 8; k++) s += w->a[r * 8 + k] * w->b[k * 16 + col];
        d.x[e] = s;
    }
    cuemu::park(cuemu::AT_SHFL);                          /* every lane has read: pieces reusable */
}

inline float __float_to_tf32(float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u) {               /* finite: round the low 13 bits away */
        u += 0x1000u;
        u &= ~0x1fffu;
    }
    memcpy(&v, &u, sizeof v);
    return v;
}

} /* namespace wmma */
} /* namespace nvcuda */

#endif
