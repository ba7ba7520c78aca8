/* tests/cuemu/mma.h — stands in for CUDA's <mma.h> under the emulator (tests/cuemu/cuda_runtime.h).
   The tensor-core code of unetvae_cuda.cu is compiled only for __CUDA_ARCH__ >= 800, which the
   emulator never defines, so nothing of nvcuda::wmma is needed here. */
#ifndef UVAE_CUEMU_MMA_H
#define UVAE_CUEMU_MMA_H
#endif
