/* unetvae.h — train a UNet and a conditional VAE from scratch, in C99, in one header.

   USAGE
     In exactly one C file:           #define UNETVAE_IMPLEMENTATION
                                      #include "unetvae.h"
     Everywhere else just include it. Build:
       CPU:  cc -O3 -fopenmp -std=c99 app.c -lm -o app
       GPU:  nvcc -O3 -DUNETVAE_CUDA app.c unetvae_cuda.cu -o app

   QUICK START (examples/quickstart.c: train a small UNet for a few steps, then save it)
     uvae_unet_config cfg = {3, 3, 8, 4, UVAE_DOWN_MAXPOOL, UVAE_UP_TRANSPOSE};
     uvae_unet net;                                 // in_ch, classes, width, depth, down, up
     uvae_optim opt;
     uvae_ctx *ctx = uvae_ctx_new(0);               // 0: the arena sizes itself in step 1
     if (uvae_unet_init(&net, &cfg, 1234) != UVAE_OK) { puts(uvae_last_error()); return 1; }
     uvae_optim_init(&opt, &net.params, UVAE_ADAM, 1e-3f);
     uvae_tensor *x = uvae_tensor_new(4, (int[]){4, 3, 64, 64});   // fill x->data: images
     uvae_tensor *y = uvae_tensor_new(3, (int[]){4, 64, 64});      // class ids, as floats
     for (int step = 0; step < 60; step++) {
         uvae_ctx_reset(ctx, 1);                    // new step: training mode, tape on
         uvae_params_zero_grad(&net.params);
         uvae_tensor *loss = uvae_cross_entropy(ctx, uvae_unet_forward(ctx, &net, x), y);
         if (uvae_backward(ctx, loss) != UVAE_OK) { puts(uvae_last_error()); return 1; }
         uvae_optim_step(&opt, &net.params, uvae_lr_onecycle(step, 60, 1e-3f));
     }
     if (uvae_save("net.safetensors", &net.params, &opt, NULL, 0) != UVAE_OK) puts(uvae_last_error());

   CONVENTIONS
     - float32 only. Activations are NCHW (or [N, F] for dense layers), row-major.
       Class labels and embedding indices are stored as floats holding integers.
     - Every fallible call returns a status (UVAE_OK == 0) or NULL; uvae_last_error() says what and
       where. Ops given a NULL input return NULL, so a forward pass can be checked once at the end.
       The library never exits or aborts.
     - Parameters, gradients and optimizer moments live in slabs allocated once. Per-step
       activations come from the context's arena; uvae_ctx_reset() frees them all at once. The arena
       grows during the first step and is then reused: no malloc in a steady training loop.
     - Autograd: in training mode each op appends a node to the context's tape; uvae_backward()
       walks it in reverse. A model is written once, as a forward pass.
     - Same seed, same CPU build -> bit-identical losses (for any thread count).
     - GPU (GPU build): make the context with uvae_ctx_new_on(UVAE_CUDA, 0), move a model's
       parameters with uvae_params_to(&m.params, UVAE_CUDA) before uvae_optim_init, and put inputs
       on the GPU with uvae_tensor_new_on + uvae_tensor_copy_in. Ops run where their inputs are;
       read results with uvae_tensor_copy_out. A step copies nothing between host and GPU.
       On the GPU, class targets and embedding indices are not read back for checking, and
       uvae_backward does not check the loss for NaN: check the loss when you read it.
   CONFIG MACROS (define before the implementation)
     UVAE_MALLOC / UVAE_REALLOC / UVAE_FREE   all three or none (default: stdlib)
     UVAE_ASSERT                              programmer errors only (default: assert)
     UVAE_NO_SIMD                             the CPU GEMM without AVX-512/AVX2 micro-kernels
     UVAE_NO_WINOGRAD                         3x3 convolutions on the CPU without Winograd
                                              (direct products only: rounding as im2col + GEMM)
     UVAE_WINOGRAD_F2                         Winograd F(2x2,3x3) only, not F(4x4,3x3) (less rounding)
     UVAE_MAX_*                               the readers' limits against hostile files ([data],
                                              [data/pets], [ckpt]); fuzz/ holds libFuzzer harnesses
   LIMITATIONS
     No dilation or groups in convolutions. Square kernels; 2-D pooling without padding. The GPU
     kernels are fp32 by default (TF32 on the tensor cores only through uvae__cu_tf32(1)) and
     have not been timed on a GPU.

   TABLE OF CONTENTS (search for the tag, e.g. "[ops/conv2d]")
     [config]      allocator macros, status codes, uvae_last_error, OpenMP and shares (loops whose
                   tails a thread that finishes early takes over: UVAE__SHARED_FOR)
     [tensor]      uvae_tensor, standalone tensors
     [rng]         seeded PCG32 generator
     [ctx]         context: arena, tape, mode
     [params]      named parameter registry and slabs
     [ops/...]     gemm (packed, AVX-512/AVX2 micro-kernels), conv kernels, conv2d, conv_transpose2d,
                   max_pool2d, avg_pool2d, upsample, batch_norm2d(_relu),
                   relu, leaky_relu, sigmoid, tanh, exp, linear, embedding, concat, add, mul, scale,
                   reshape/flatten, sum/mean, dropout — forward and backward side by side
     [autograd]    uvae_backward
     [loss/...]    cross_entropy, bce_with_logits, dice, ce_dice, kl_normal, bernoulli_nll,
                   gaussian_nll, discretized_logistic
     [optim]       SGD+momentum, Adam, AdamW, lr schedules, global-norm clipping
     [layers]      conv, batch norm, linear, embedding layers that own named parameters
     [models/...]  unet, cvae (conditional VAE), classifier (the CVAE example's judge)
     [ckpt]        safetensors reader and writer, uvae_save / uvae_load
     [device]      GPU memory, transfers and the kernel dispatch (UVAE__K)
     [kernels]     the compute behind every op: uvae__cpu_* here, uvae__cu_* in unetvae_cuda.cu
     [data]        IDX (MNIST, Fashion-MNIST; .gz read directly) and CIFAR-10 readers, batches, shuffle
     [data/pets]   Oxford-IIIT Pet lists, images and trimaps, augmentation views, bilinear resize
                   of float maps; confusion-matrix segmentation metrics
     [image]       PNG canvases: pasted images, label maps, text, grids with captions, line plots
*/
#ifndef UNETVAE_H
#define UNETVAE_H

#include <stddef.h>
#include <stdint.h>
#include <math.h>     /* the shared element functions below */

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
   [config] status codes and errors */
typedef enum uvae_status {
    UVAE_OK = 0,
    UVAE_ERR_ARG = -1,     /* bad argument or shape */
    UVAE_ERR_NOMEM = -2,   /* out of memory */
    UVAE_ERR_IO = -3,      /* file missing, unreadable, unwritable */
    UVAE_ERR_FORMAT = -4,  /* file content is corrupt, truncated or unexpected */
    UVAE_ERR_NUMERIC = -5, /* NaN or Inf where a finite value was needed */
    UVAE_ERR_CUDA = -6     /* CUDA runtime failure or no device */
} uvae_status;

/* The reason of the last failure in this thread: "where: what". Never NULL. */
const char *uvae_last_error(void);

/* ---------------------------------------------------------------------------------------------
   [tensor] */
enum { UVAE_CPU = 0, UVAE_CUDA = 1 };
#define UVAE_MAX_DIMS 4

typedef struct uvae_tensor {
    float *data;                  /* `size` values, row-major over shape[0..ndim) */
    float *grad;                  /* same layout, or NULL when no gradient flows here (an op
                                     output's: a mark until uvae_backward reaches it, NULL after) */
    int ndim;
    int shape[UVAE_MAX_DIMS];
    size_t size;                  /* product of shape */
    int device;                   /* UVAE_CPU (UVAE_CUDA with the GPU build) */
} uvae_tensor;

/* A standalone tensor owned by the caller (inputs, targets, test tensors); zero-filled.
   with_grad != 0 also allocates a zeroed gradient. NULL on failure. */
uvae_tensor *uvae_tensor_new(int ndim, const int *shape);
uvae_tensor *uvae_tensor_new_grad(int ndim, const int *shape, int with_grad);
void uvae_tensor_free(uvae_tensor *t);
int uvae_same_shape(const uvae_tensor *a, const uvae_tensor *b);

/* ---------------------------------------------------------------------------------------------
   [rng] PCG32 (O'Neill 2014): 64-bit state, 32-bit outputs. Seeded; state can be saved. */
typedef struct uvae_rng { uint64_t state, inc; } uvae_rng;
void uvae_rng_seed(uvae_rng *r, uint64_t seed);
uint32_t uvae_rng_u32(uvae_rng *r);
float uvae_rng_uniform(uvae_rng *r);          /* [0, 1) */
float uvae_rng_normal(uvae_rng *r);           /* N(0, 1), Box-Muller */
/* The state as 32 hex digits (state, then inc) and back, e.g. for checkpoint metadata: a run
   resumed from a checkpoint draws the same numbers. from_str: UVAE_ERR_FORMAT if s is not one. */
#define UVAE_RNG_STR 33
void uvae_rng_to_str(const uvae_rng *r, char s[UVAE_RNG_STR]);
int uvae_rng_from_str(uvae_rng *r, const char *s);

/* ---------------------------------------------------------------------------------------------
   [ctx] a context: the activation arena, the autograd tape and the mode. */
typedef struct uvae_ctx uvae_ctx;
/* arena_bytes: initial arena size (0: start small and grow during the first step). */
uvae_ctx *uvae_ctx_new(size_t arena_bytes);
void uvae_ctx_free(uvae_ctx *ctx);
/* Forget the previous step's activations and tape. train != 0: batch-norm uses batch statistics,
   dropout is active, and ops record the tape for uvae_backward. train == 0: evaluation. */
void uvae_ctx_reset(uvae_ctx *ctx, int train);
/* Fine control (tests): record the tape independently of the train/eval behaviour. */
void uvae_ctx_set_record(uvae_ctx *ctx, int record);
uvae_rng *uvae_ctx_rng(uvae_ctx *ctx);        /* the generator dropout and sampling use */
size_t uvae_ctx_arena_capacity(const uvae_ctx *ctx);
/* Floating-point operations of the convolutions and matrix products run on this context since it
   was made, forward and backward: 2 per multiply-add of the direct method, whatever algorithm ran
   (Winograd does fewer). For throughput figures (bench/bench.c). */
double uvae_ctx_flops(const uvae_ctx *ctx);
/* A tensor from the arena (valid until the next reset), zero-filled; NULL on failure. */
uvae_tensor *uvae_ctx_tensor(uvae_ctx *ctx, int ndim, const int *shape);

/* ---------------------------------------------------------------------------------------------
   [params] a registry of named parameters (trainable) and buffers (e.g. batch-norm running
   statistics). Layers register tensors first; uvae_params_alloc then allocates one slab for all
   values and one for all gradients, and initialises them from a seed. */
enum { UVAE_INIT_ZERO, UVAE_INIT_ONE, UVAE_INIT_UNIFORM /* U(-a, a) */, UVAE_INIT_NORMAL /* a*N(0,1) */ };
#define UVAE_NAME_MAX 96
typedef struct uvae_param {
    char name[UVAE_NAME_MAX];     /* e.g. "down1.conv.bn1.weight" */
    uvae_tensor t;
    int trainable;                /* 0 for buffers: no gradient, not optimised */
    int init; float init_arg;
    size_t offset;                /* into the slabs, in floats (set by uvae_params_alloc) */
} uvae_param;

typedef struct uvae_params {
    uvae_param **p; int n, cap;
    float *data, *grad;           /* slabs: all values, all gradients (buffers' grad unused) */
    size_t total;                 /* floats in each slab */
    size_t ntrain;                /* the trainable parameters fill the slabs' first ntrain floats
                                     (64-byte aligned slices, zero between them), the buffers the
                                     rest: an optimizer step is one pass over [0, ntrain) */
    int status;                   /* first registration error, reported by uvae_params_alloc */
    int device;                   /* where the slabs live (uvae_params_to moves them) */
} uvae_params;

void uvae_params_init(uvae_params *P);
/* Register a tensor; the name is printf-formatted. Returns the tensor (data valid after alloc). */
uvae_tensor *uvae_params_add(uvae_params *P, int trainable, int init, float init_arg,
                             int ndim, const int *shape, const char *fmt, ...);
int uvae_params_alloc(uvae_params *P, uint64_t seed);
void uvae_params_free(uvae_params *P);
void uvae_params_zero_grad(uvae_params *P);
uvae_param *uvae_params_find(const uvae_params *P, const char *name);
size_t uvae_params_count(const uvae_params *P);  /* trainable scalars */

/* ---------------------------------------------------------------------------------------------
   [ops] Each returns a new arena tensor (NULL on failure or when an input is NULL). */
uvae_tensor *uvae_conv2d(uvae_ctx *ctx, uvae_tensor *x, uvae_tensor *w, uvae_tensor *b,
                         int stride, int pad);           /* x [N,Ci,H,W] w [Co,Ci,k,k] b [Co]|NULL */
uvae_tensor *uvae_conv_transpose2d(uvae_ctx *ctx, uvae_tensor *x, uvae_tensor *w, uvae_tensor *b,
                                   int stride, int pad); /* w [Ci,Co,k,k]; Ho=(H-1)s-2p+k */
uvae_tensor *uvae_max_pool2d(uvae_ctx *ctx, uvae_tensor *x, int k, int stride);
uvae_tensor *uvae_avg_pool2d(uvae_ctx *ctx, uvae_tensor *x, int k, int stride);
enum { UVAE_NEAREST = 0, UVAE_BILINEAR = 1 };
uvae_tensor *uvae_upsample(uvae_ctx *ctx, uvae_tensor *x, int scale, int mode);
uvae_tensor *uvae_batch_norm2d(uvae_ctx *ctx, uvae_tensor *x, uvae_tensor *gamma, uvae_tensor *beta,
                               uvae_tensor *running_mean, uvae_tensor *running_var,
                               float momentum, float eps);
uvae_tensor *uvae_batch_norm2d_relu(uvae_ctx *ctx, uvae_tensor *x, uvae_tensor *gamma, uvae_tensor *beta,
                                    uvae_tensor *running_mean, uvae_tensor *running_var,
                                    float momentum, float eps);   /* relu(batch_norm2d(...)), fused */
uvae_tensor *uvae_relu(uvae_ctx *ctx, uvae_tensor *x);
uvae_tensor *uvae_leaky_relu(uvae_ctx *ctx, uvae_tensor *x, float slope);
uvae_tensor *uvae_sigmoid(uvae_ctx *ctx, uvae_tensor *x);
uvae_tensor *uvae_tanh(uvae_ctx *ctx, uvae_tensor *x);
uvae_tensor *uvae_exp(uvae_ctx *ctx, uvae_tensor *x);
uvae_tensor *uvae_linear(uvae_ctx *ctx, uvae_tensor *x, uvae_tensor *w, uvae_tensor *b); /* x [N,I] w [O,I] */
uvae_tensor *uvae_embedding(uvae_ctx *ctx, uvae_tensor *idx, uvae_tensor *table); /* idx [N], table [V,D] -> [N,D] */
uvae_tensor *uvae_concat(uvae_ctx *ctx, uvae_tensor *a, uvae_tensor *b);  /* along dim 1 */
uvae_tensor *uvae_add(uvae_ctx *ctx, uvae_tensor *a, uvae_tensor *b);
uvae_tensor *uvae_mul(uvae_ctx *ctx, uvae_tensor *a, uvae_tensor *b);
uvae_tensor *uvae_scale(uvae_ctx *ctx, uvae_tensor *x, float s);
uvae_tensor *uvae_reshape(uvae_ctx *ctx, uvae_tensor *x, int ndim, const int *shape); /* a view */
uvae_tensor *uvae_flatten(uvae_ctx *ctx, uvae_tensor *x);                 /* [N, rest] view */
uvae_tensor *uvae_sum(uvae_ctx *ctx, uvae_tensor *x);                     /* -> [1] */
uvae_tensor *uvae_mean(uvae_ctx *ctx, uvae_tensor *x);                    /* -> [1] */
uvae_tensor *uvae_dropout(uvae_ctx *ctx, uvae_tensor *x, float p);

/* [autograd] d(loss)/d(everything) for a one-element loss recorded on the tape. Gradients are
   accumulated (+=) into parameter gradients: call uvae_params_zero_grad before each step.
   Op outputs' gradients live only during the backward (afterwards their grad is NULL); those of
   parameters and of your own tensors stay. Fails with UVAE_ERR_NUMERIC if the loss is not finite. */
int uvae_backward(uvae_ctx *ctx, uvae_tensor *loss);

/* ---------------------------------------------------------------------------------------------
   [loss] Each returns a one-element tensor.
   logits [N,C,H,W] or [N,C]; class targets [N,H,W] or [N] (floats holding 0..C-1). */
uvae_tensor *uvae_cross_entropy(uvae_ctx *ctx, uvae_tensor *logits, uvae_tensor *target);   /* mean */
uvae_tensor *uvae_bce_with_logits(uvae_ctx *ctx, uvae_tensor *logits, uvae_tensor *target); /* mean */
/* Soft Dice, 1 - mean over classes of (2 sum(p t) + s) / (sum p + sum t + s), pooled over the batch.
   C > 1: p = softmax, t = one-hot of class targets [N,H,W]. C == 1: p = sigmoid, t in {0,1} [N,1,H,W]. */
uvae_tensor *uvae_dice_loss(uvae_ctx *ctx, uvae_tensor *logits, uvae_tensor *target, float smooth);
uvae_tensor *uvae_ce_dice_loss(uvae_ctx *ctx, uvae_tensor *logits, uvae_tensor *target, float smooth);
/* KL(N(mu, exp(logvar)) || N(0, I)): summed over the latent, mean over the batch (nats). */
uvae_tensor *uvae_kl_normal(uvae_ctx *ctx, uvae_tensor *mu, uvae_tensor *logvar);
/* Bernoulli NLL of targets in [0,1] under sigmoid(logits): summed per sample, mean over the batch. */
uvae_tensor *uvae_bernoulli_nll(uvae_ctx *ctx, uvae_tensor *logits, uvae_tensor *target);
/* Gaussian NLL 0.5*((t-mean)^2/exp(logvar) + logvar + log 2pi): summed per sample, mean over batch.
   logvar has the shape of mean, or is one element shared by all. */
uvae_tensor *uvae_gaussian_nll(uvae_ctx *ctx, uvae_tensor *mean, uvae_tensor *logvar, uvae_tensor *target);
/* 8-bit pixels (targets k/255) under a logistic (mean, log_scale; all three of one shape) discretised
   into 256 bins, the end bins open (PixelCNN++'s likelihood, one component): -log P summed per
   sample, mean over the batch, in nats (bits/dim = nats / (log 2 * pixels per sample)). */
uvae_tensor *uvae_discretized_logistic_nll(uvae_ctx *ctx, uvae_tensor *mean, uvae_tensor *log_scale, uvae_tensor *target);

/* ---------------------------------------------------------------------------------------------
   [optim] */
enum { UVAE_SGD = 0, UVAE_ADAM = 1, UVAE_ADAMW = 2 };
typedef struct uvae_optim {
    int kind;
    float lr, beta1, beta2, eps, weight_decay, momentum;
    float clip_norm;              /* > 0: clip the global gradient norm before the update */
    int64_t step;                 /* updates done */
    float *m, *v;                 /* moment slabs (v unused by SGD), size params->total */
    size_t total;
    int device;                   /* the parameters' device when the optimizer was made */
} uvae_optim;
/* Defaults: Adam/AdamW betas (0.9, 0.999), eps 1e-8, AdamW weight decay 0.01, SGD momentum 0.9. */
int uvae_optim_init(uvae_optim *o, const uvae_params *P, int kind, float lr);
void uvae_optim_free(uvae_optim *o);
/* One update with learning rate lr (< 0: use o->lr); clips first when o->clip_norm > 0. */
int uvae_optim_step(uvae_optim *o, uvae_params *P, float lr);
float uvae_grad_norm(const uvae_params *P);
float uvae_clip_grad_norm(uvae_params *P, float max_norm); /* == torch clip_grad_norm_; returns norm */
/* Schedules: the learning rate for update number `step` (0-based) of `total`. */
float uvae_lr_cosine(int64_t step, int64_t total, float lr_max, float lr_min);   /* CosineAnnealingLR */
float uvae_lr_onecycle(int64_t step, int64_t total, float lr_max);               /* OneCycleLR's lr */

/* ---------------------------------------------------------------------------------------------
   [layers] Layers own named parameters in a registry. */
typedef struct uvae_conv { uvae_tensor *w, *b; int stride, pad, transposed; } uvae_conv;
typedef struct uvae_bn { uvae_tensor *gamma, *beta, *mean, *var; float momentum, eps; } uvae_bn;
typedef struct uvae_dense { uvae_tensor *w, *b; } uvae_dense;
/* PyTorch's default initialisation (kaiming-uniform weights, uniform biases). */
void uvae_conv_init(uvae_params *P, uvae_conv *l, const char *name, int in, int out, int k,
                    int stride, int pad, int bias);
void uvae_conv_transpose_init(uvae_params *P, uvae_conv *l, const char *name, int in, int out,
                              int k, int stride, int pad, int bias);
void uvae_bn_init(uvae_params *P, uvae_bn *l, const char *name, int ch);
void uvae_dense_init(uvae_params *P, uvae_dense *l, const char *name, int in, int out);
uvae_tensor *uvae_conv_forward(uvae_ctx *ctx, const uvae_conv *l, uvae_tensor *x);
uvae_tensor *uvae_bn_forward(uvae_ctx *ctx, const uvae_bn *l, uvae_tensor *x);
uvae_tensor *uvae_bn_relu_forward(uvae_ctx *ctx, const uvae_bn *l, uvae_tensor *x);   /* relu(bn(x)), fused */
uvae_tensor *uvae_dense_forward(uvae_ctx *ctx, const uvae_dense *l, uvae_tensor *x);

/* ---------------------------------------------------------------------------------------------
   [models] */
#define UVAE_UNET_MAX_DEPTH 6
enum { UVAE_DOWN_MAXPOOL = 0, UVAE_DOWN_STRIDED = 1 };
enum { UVAE_UP_TRANSPOSE = 0, UVAE_UP_UPSAMPLE = 1 };
typedef struct uvae_unet_config {
    int in_ch, n_classes;         /* e.g. 3 and 3 (trimap classes), or n_classes 1 for a sigmoid head */
    int base_width, depth;        /* widths base * 2^i, i = 0..depth; input side divisible by 2^depth */
    int down, up;                 /* UVAE_DOWN_*, UVAE_UP_* */
} uvae_unet_config;
typedef struct uvae_double_conv { uvae_conv c1, c2; uvae_bn b1, b2; } uvae_double_conv;
typedef struct uvae_unet {
    uvae_unet_config cfg;
    uvae_double_conv inc;
    uvae_conv down_conv[UVAE_UNET_MAX_DEPTH];   /* strided 3x3 conv (UVAE_DOWN_STRIDED only) */
    uvae_double_conv down[UVAE_UNET_MAX_DEPTH];
    uvae_conv up_conv[UVAE_UNET_MAX_DEPTH];     /* 2x2 transposed conv, or 3x3 conv after upsampling */
    uvae_double_conv up[UVAE_UNET_MAX_DEPTH];
    uvae_conv outc;
    uvae_params params;
} uvae_unet;
int uvae_unet_init(uvae_unet *m, const uvae_unet_config *cfg, uint64_t seed);
void uvae_unet_free(uvae_unet *m);
uvae_tensor *uvae_unet_forward(uvae_ctx *ctx, uvae_unet *m, uvae_tensor *x); /* -> logits [N,classes,H,W] */

typedef struct uvae_cvae_config {
    int in_ch, size, n_classes;   /* images [N,in_ch,size,size], size divisible by 4 */
    int latent, width, embed;     /* latent dim, conv width, label embedding dim */
    int cond_planes;              /* > 0: the label also enters each decoder stage as this many
                                     learned per-class feature maps (0: only through fc_dec) */
    int likelihood;               /* UVAE_BERNOULLI (pixels in [0,1]) or UVAE_DLOGISTIC (8-bit pixels) */
} uvae_cvae_config;
enum { UVAE_BERNOULLI = 0, UVAE_DLOGISTIC = 1 };
typedef struct uvae_cvae {
    uvae_cvae_config cfg;
    uvae_tensor *label_plane;     /* [n_classes, size*size]: the label as an extra input channel */
    uvae_tensor *label_embed;     /* [n_classes, embed] */
    uvae_conv e1, e2;             /* encoder convs, 4x4 stride 2 */
    uvae_dense fc_mu, fc_logvar, fc_dec;
    uvae_conv d1, d2;             /* decoder transposed convs, 4x4 stride 2 */
    uvae_tensor *cond1, *cond2;   /* [n_classes, P*(S/4)^2], [n_classes, P*(S/2)^2] (cond_planes P > 0) */
    uvae_conv d2s;                /* UVAE_DLOGISTIC: the log-scale head beside d2 */
    uvae_params params;
} uvae_cvae;
/* logits: the decoder's output; the image it describes is sigmoid(logits) (the Bernoulli mean, or
   the logistic's mean); log_scale: the logistic's per-pixel log-scale (UVAE_DLOGISTIC, else NULL). */
typedef struct uvae_cvae_out { uvae_tensor *logits, *log_scale, *mu, *logvar, *z; int likelihood; } uvae_cvae_out;
int uvae_cvae_init(uvae_cvae *m, const uvae_cvae_config *cfg, uint64_t seed);
void uvae_cvae_free(uvae_cvae *m);
/* x [N,in_ch,S,S] in [0,1], labels [N]; eps [N,latent] or NULL to draw it from the ctx rng. */
uvae_cvae_out uvae_cvae_forward(uvae_ctx *ctx, uvae_cvae *m, uvae_tensor *x, uvae_tensor *labels,
                                uvae_tensor *eps);
/* The decoder alone: z [N,latent], labels [N] -> logits [N,in_ch,S,S] (e.g. samples from the prior);
   with UVAE_DLOGISTIC and log_scale != NULL, also the log-scale head's output. */
uvae_tensor *uvae_cvae_decode(uvae_ctx *ctx, uvae_cvae *m, uvae_tensor *z, uvae_tensor *labels, uvae_tensor **log_scale);
/* Reconstruction NLL (Bernoulli, or discretised logistic of sigmoid(logits)) of x + KL: nats per image. */
uvae_tensor *uvae_cvae_loss(uvae_ctx *ctx, uvae_cvae_out out, uvae_tensor *x);
/* The reconstruction term alone (the same likelihood), nats per image. */
uvae_tensor *uvae_cvae_nll(uvae_ctx *ctx, uvae_cvae_out out, uvae_tensor *x);

/* [models/classifier] A small image classifier (the CVAE example's judge of label-follow):
     blocks b = 1..B (B = blocks, 2 when 0): DoubleConv at width w 2^(b-1), then maxpool 2;
     flatten -> dropout 0.25 -> linear -> logits [N, n_classes]. size divisible by 2^B.
   frozen != 0: the forward pass always runs in evaluation mode (running BN statistics, no dropout,
   running statistics untouched) yet stays on the tape, so gradients flow through it to its input
   (e.g. a label loss on generated images); its own gradients still accumulate: zero them, don't step. */
#define UVAE_CLASSIFIER_MAX_BLOCKS 4
typedef struct uvae_classifier_config {
    int in_ch, size, n_classes;   /* images [N,in_ch,size,size] in [0,1], size divisible by 2^blocks */
    int width;                    /* conv width of the first block (each next one doubles it) */
    int blocks;                   /* 1..UVAE_CLASSIFIER_MAX_BLOCKS; 0 means 2 */
} uvae_classifier_config;
typedef struct uvae_classifier {
    uvae_classifier_config cfg;   /* as given, with blocks filled in */
    uvae_double_conv block[UVAE_CLASSIFIER_MAX_BLOCKS];   /* "block<b>.conv1" ... "block<b>.bn2" */
    uvae_dense fc;
    float dropout;                /* 0.25 after init */
    int frozen;                   /* 0 after init; see above */
    uvae_params params;
} uvae_classifier;
int uvae_classifier_init(uvae_classifier *m, const uvae_classifier_config *cfg, uint64_t seed);
void uvae_classifier_free(uvae_classifier *m);
/* x [N,in_ch,S,S] in [0,1] -> logits [N,n_classes] */
uvae_tensor *uvae_classifier_forward(uvae_ctx *ctx, uvae_classifier *m, uvae_tensor *x);

/* ---------------------------------------------------------------------------------------------
   [ckpt] safetensors: 8-byte little-endian header length N, N bytes of JSON
   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [a, b]}, ..., "__metadata__": {"k": "v"}},
   then the data. Only F32 tensors are written or read.
   Reader limits against hostile files (define before including the header to change them): the
   JSON header is at most UVAE_MAX_ST_HEADER bytes and never longer than the file; at most
   UVAE_MAX_ST_TENSORS tensors; each at most UVAE_MAX_TENSOR_BYTES bytes; sizes and offsets are
   overflow-checked and must tile the data section exactly. Each refusal is UVAE_ERR_FORMAT naming
   the file and the limit. */
#ifndef UVAE_MAX_ST_HEADER
#define UVAE_MAX_ST_HEADER 100000000           /* bytes; the reference implementation's limit */
#endif
#ifndef UVAE_MAX_ST_TENSORS
#define UVAE_MAX_ST_TENSORS 65536
#endif
#ifndef UVAE_MAX_TENSOR_BYTES
#define UVAE_MAX_TENSOR_BYTES ((uint64_t)1 << 31)   /* 2 GiB */
#endif
#define UVAE_META_MAX 32
typedef struct uvae_st_tensor {
    char name[UVAE_NAME_MAX];
    int ndim; int shape[UVAE_MAX_DIMS];
    size_t size;                  /* elements */
    const float *data;            /* into the file's buffer (little-endian host assumed) */
} uvae_st_tensor;
typedef struct uvae_st_file {
    uvae_st_tensor *t; int n;
    char meta_key[UVAE_META_MAX][64]; char meta_val[UVAE_META_MAX][256]; int n_meta;
    unsigned char *buf; size_t buf_size;
} uvae_st_file;
/* Read and validate a whole file. On failure nothing needs freeing. */
int uvae_st_read(const char *path, uvae_st_file *f);
void uvae_st_free(uvae_st_file *f);
const uvae_st_tensor *uvae_st_find(const uvae_st_file *f, const char *name);
const char *uvae_st_meta(const uvae_st_file *f, const char *key);   /* NULL if absent */
/* Write tensors and string metadata atomically (temp file, fsync, then rename). */
int uvae_st_write(const char *path, const uvae_st_tensor *t, int n,
                  const char *const *meta_kv, int n_meta /* pairs */);
/* Parameters and buffers under their names; with opt, also its moments ("optim.m.<name>",
   "optim.v.<name>") and step. meta_kv: extra metadata pairs (e.g. the model config). */
int uvae_save(const char *path, const uvae_params *P, const uvae_optim *opt,
              const char *const *meta_kv, int n_meta);
/* Load into an already-built model: every registered tensor must be present with its shape.
   With opt, the moments and step are restored too (they must be in the file). */
int uvae_load(const char *path, uvae_params *P, uvae_optim *opt);

/* ---------------------------------------------------------------------------------------------
   [device] GPU memory and transfers (GPU build: UNETVAE_CUDA). On the CPU build the _on variants
   accept UVAE_CPU only and uvae_cuda_available() returns 0. */
/* 1 when a CUDA device can be used; else 0, and uvae_last_error() says why ("no CUDA device"). */
int uvae_cuda_available(void);
uvae_ctx *uvae_ctx_new_on(int device, size_t arena_bytes);
uvae_tensor *uvae_tensor_new_on(int device, int ndim, const int *shape, int with_grad);
int uvae_tensor_copy_in(uvae_tensor *t, const float *host);    /* t->size floats from host memory */
int uvae_tensor_copy_out(const uvae_tensor *t, float *host);   /* t->size floats to host memory */
/* Move the parameter and gradient slabs to `device` (before uvae_optim_init). */
int uvae_params_to(uvae_params *P, int device);

/* ---------------------------------------------------------------------------------------------
   [kernels] The compute inside the ops, one signature per kernel and two implementations:
   uvae__cpu_NAME in this header and uvae__cu_NAME in unetvae_cuda.cu. Pointers are on the
   kernel's device. "+=" means accumulate into the destination; "=" overwrites. NC = N*C planes.
   Scalars that live in tensors (a loss value, its incoming gradient) are passed as pointers.
   Index arrays (argmax) are int32 on the device. */
/* A convolution's shapes: x [N,Ci,H,W] -> y [N,Co,Ho,Wo] with a k x k kernel, stride s, padding p. */
typedef struct uvae__conv_shape { int N, Ci, H, W, Co, k, s, p, Ho, Wo; } uvae__conv_shape;
/* The CPU's GEMM micro-kernel: choice 0 the best this CPU has, 1 generic C, 2 AVX2+FMA, 3 AVX-512,
   -1 query. Returns the kernel in use (1..3), or 0 if this CPU lacks the one asked for. For tests. */
int uvae__cpu_kernel(int choice);
/* The CPU's stride-1 convolution without im2col: 1 on (the default), 0 off, -1 query; returns the
   previous setting. For tests (the two paths must agree bit for bit). */
int uvae__cpu_conv_implicit(int on);
/* The CPU's Winograd for 3x3 stride-1 padding-1 convolutions: 1 on (the default: F(4x4, 3x3) or
   F(2x2, 3x3), whichever the shape suits), 2 only F(2x2, 3x3), 4 only F(4x4, 3x3), 0 off, -1 query;
   returns the previous setting. For tests and benchmarks (each must agree with the direct paths). */
int uvae__cpu_conv_winograd(int on);
/* The CPU's forward of strided (and narrow stride-1) convolutions with the output pixels as the
   GEMM's rows: 1 on (the default), 0 off, -1 query; returns the previous setting. For tests (the
   two paths must agree bit for bit). */
int uvae__cpu_conv_direct(int on);
/* Fill the CPU arena's unzeroed floats (op outputs that skip the zeroing, the backward's buffers)
   with NaN when they are handed out: 1 on, 0 off (the default), -1 query; returns the previous
   setting. For tests (make test runs the suites again with it on: ./build/test_unetvae --poison). */
int uvae__cpu_poison(int on);
/* Run a loop of n iterations through the CPU's shares (uvae__share_next) on the current threads:
   hits[i] += 1 and who[i] = the thread, for each iteration i run; slow: thread 0 holds on to its
   first chunk until the others have taken the rest of its share. For tests. */
void uvae__cpu_share_run(int n, int slow, int *hits, int *who);
/* Winograd F(4x4)'s output transform of n tiles (m: 36 rows of n, row stride ms; r: 4 rows of 4 n,
   row stride rs) with micro-kernel kind `kind`'s code (1 generic, 2 AVX2, 3 AVX-512); 0 if this
   CPU lacks it. For tests (the kinds must agree bit for bit). */
int uvae__cpu_wg4_out(int kind, int n, const float *m, size_t ms, float *r, size_t rs);
/* dst[k * ds + j] = src[j * ls + k], j < m, k < n, with the AVX-512 register transpose (the GEMM's
   packing of a transposed B, the direct convolutions' tile stores); 0 if this CPU lacks AVX-512 */
int uvae__cpu_transpose(const float *src, size_t ls, int m, int n, float *dst, size_t ds);
#ifdef UNETVAE_CUDA
/* runtime: the first failure is kept (sticky) until read by uvae__cu_take_error */
int uvae__cu_init(void);                             /* 0 ok, else no usable device */
const char *uvae__cu_take_error(void);               /* NULL if none since the last call, else text */
void *uvae__cu_malloc(size_t bytes);                 /* NULL on failure (error kept) */
void uvae__cu_free(void *p);
void uvae__cu_memset0(void *p, size_t bytes);
void uvae__cu_copy(void *dst, const void *src, size_t bytes, int dir);  /* 0 H2D, 1 D2H, 2 D2D; D2H waits */
void uvae__cu_sync(void);

/* C[M,N] (+)= op(A) @ op(B), row-major; op(A) is A[M,K] (lda) or, with ta, A^T of A[K,M] */
void uvae__cu_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc, int accumulate);
/* uvae__cu_gemm on the tensor cores in TF32: 1 on, 0 off (the default: plain fp32), -1 query; returns
   the previous setting, or -1 (and stays off) where the device or the build lacks TF32 (compute
   capability 8.0; a build for it, e.g. NVCCFLAGS=-arch=sm_90). For tests and benchmarks. */
int uvae__cu_tf32(int on);
/* the convolution products of [ops/conv kernels], each one implicit GEMM over the batch; scratch:
   CK*Ho*Wo floats (the weight gradient's split partial sums, or one image's columns for the
   per-image im2col + GEMM kernels that uvae__cu_conv_im2col(1) turns on: 0 off (the default),
   -1 query; returns the previous setting. For tests and benchmarks) */
int uvae__cu_conv_im2col(int on);
void uvae__cu_conv_fwd(const uvae__conv_shape *g, const float *x, const float *w, float *y, int acc, float *scratch);
void uvae__cu_conv_bwd_x(const uvae__conv_shape *g, const float *dy, const float *w, float *dx, float *scratch);
void uvae__cu_conv_bwd_w(const uvae__conv_shape *g, const float *x, const float *dy, float *dw, float *scratch);
void uvae__cu_bias_add(float *out, const float *b, int N, int C, size_t HW);        /* out[n,c,:] += b[c] */
void uvae__cu_bias_grad(const float *dout, float *db, int N, int C, size_t HW);     /* db[c] += sum_{n,hw} dout */
/* pooling without padding; arg[plane*Ho*Wo + o] = index of the max within its input plane (first max wins) */
void uvae__cu_maxpool_fwd(const float *x, float *y, int *arg, int NC, int H, int W, int k, int s, int Ho, int Wo);
void uvae__cu_maxpool_bwd(const float *dy, const int *arg, float *dx, int NC, int H, int W, int Ho, int Wo); /* dx += */
void uvae__cu_avgpool_fwd(const float *x, float *y, int NC, int H, int W, int k, int s, int Ho, int Wo);
void uvae__cu_avgpool_bwd(const float *dy, float *dx, int NC, int H, int W, int k, int s, int Ho, int Wo);    /* dx += */
/* upsample by s: mode 0 nearest, 1 bilinear (align_corners=False); Ho = H*s, Wo = W*s */
void uvae__cu_upsample_fwd(const float *x, float *y, int NC, int H, int W, int s, int mode);
void uvae__cu_upsample_bwd(const float *dy, float *dx, int NC, int H, int W, int s, int mode);                /* dx += */
/* batch norm over x [N,C,HW]. train: batch mean/biased var, running stats updated (unbiased var);
   eval: running stats. stats[c] = mean, stats[C+c] = 1/sqrt(var+eps). gamma/beta may be NULL.
   relu: y = max(bn(x), 0). */
void uvae__cu_bn_fwd(const float *x, const float *gamma, const float *beta, float *rmean, float *rvar, float *y, float *stats,
                     int N, int C, size_t HW, int train, float momentum, float eps, int relu);
/* dgamma += sum dy*xhat, dbeta += sum dy, dx += (train: gamma*istd/M*(M dy - sum dy - xhat sum dy*xhat); eval: gamma*istd*dy);
   any of dx, dgamma, dbeta may be NULL. y: the fused relu's output (dy counts where y > 0), else NULL */
void uvae__cu_bn_bwd(const float *x, const float *gamma, const float *dy, const float *y, const float *stats, float *dx, float *dgamma,
                     float *dbeta, int N, int C, size_t HW, int train);
/* elementwise, kind: 0 relu, 1 leaky_relu(a), 2 sigmoid, 3 tanh, 4 exp, 5 scale(a) */
void uvae__cu_unary_fwd(int kind, float a, const float *x, float *y, size_t n);
void uvae__cu_unary_bwd(int kind, float a, const float *x, const float *y, const float *dy, float *dx, size_t n); /* dx += */
/* mul 0: y = a + b, da += dy, db += dy;  mul 1: y = a * b, da += dy*b, db += dy*a.  da/db may be NULL */
void uvae__cu_binary_fwd(int mul, const float *a, const float *b, float *y, size_t n);
void uvae__cu_binary_bwd(int mul, const float *a, const float *b, const float *dy, float *da, float *db, size_t n);
/* y[n,:] = tab[idx[n],:], tab [V,D] (idx: floats holding ints; on the GPU a bad one gives a NaN row);
   dtab[idx[n],:] += dy[n,:] */
void uvae__cu_embedding_fwd(const float *idx, const float *tab, float *y, int N, int V, int D);
void uvae__cu_embedding_bwd(const float *idx, const float *dy, float *dtab, int N, int V, int D);
/* rows: y[n] = [a[n] (ra floats), b[n] (rb floats)];  backward da += / db += the parts (NULL: skip) */
void uvae__cu_concat_fwd(const float *a, const float *b, float *y, int N, size_t ra, size_t rb);
void uvae__cu_concat_bwd(const float *dy, float *da, float *db, int N, size_t ra, size_t rb);
/* out[0] = scale * sum x (accumulated in double);  dx[i] += scale * dy[0] */
void uvae__cu_sum(const float *x, size_t n, float scale, float *out);
void uvae__cu_sum_bwd(const float *dy, float scale, float *dx, size_t n);
/* mask[i] = (uniform(seed, i) < p) ? 0 : 1/(1-p), uniform from uvae_hash_uniform; y = x * mask */
void uvae__cu_dropout_fwd(const float *x, float *y, float *mask, size_t n, float p, uint32_t seed);
/* losses over logits z [N,C,HW] and class targets t [N,HW] (floats holding valid ints):
   ce: out[0] = mean over N*HW of logsumexp_c z - z[t];  dz += dy[0]/(N*HW) * (softmax - onehot) */
void uvae__cu_ce_fwd(const float *z, const float *t, int N, int C, size_t HW, float *out);
void uvae__cu_ce_bwd(const float *z, const float *t, const float *dy, int N, int C, size_t HW, float *dz);
/* bce: out[0] = sum(max(z,0) - z t + log1p(exp(-|z|))) / div;  dz += dy[0]/div * (sigmoid(z) - t) */
void uvae__cu_bce_fwd(const float *z, const float *t, size_t n, float div, float *out);
void uvae__cu_bce_bwd(const float *z, const float *t, const float *dy, size_t n, float div, float *dz);
/* dice: C > 1 softmax + onehot(t), C == 1 sigmoid + t in {0,1} ([N,1,HW]). IS[c] = sum p t, IS[C+c] = sum p + sum t
   (double); out[0] = 1 - mean_c (2 IS[c] + s)/(IS[C+c] + s);
   dz += chain rule of dL/dp = -dy[0] (2 t (S+s) - (2 I + s)) / (C (S+s)^2) through softmax / sigmoid */
void uvae__cu_dice_fwd(const float *z, const float *t, int N, int C, size_t HW, float smooth, double *IS, float *out);
void uvae__cu_dice_bwd(const float *z, const float *t, const double *IS, const float *dy, int N, int C, size_t HW, float smooth, float *dz);
/* kl: out[0] = sum -0.5 (1 + lv - mu^2 - exp lv) / N;  dmu += dy/N mu, dlv += dy/N * -0.5 (1 - exp lv) */
void uvae__cu_kl_fwd(const float *mu, const float *lv, size_t n, int N, float *out);
void uvae__cu_kl_bwd(const float *mu, const float *lv, const float *dy, size_t n, int N, float *dmu, float *dlv);
/* gaussian nll, lv per element or (shared) lv[0]: out[0] = sum 0.5 ((t-m)^2 e^-lv + lv + log 2pi) / N;
   dm += dy/N * -(t-m) e^-lv;  dlv += dy/N * 0.5 (1 - (t-m)^2 e^-lv) (summed into dlv[0] when shared) */
void uvae__cu_gnll_fwd(const float *m, const float *lv, const float *t, size_t n, int shared, int N, float *out);
void uvae__cu_gnll_bwd(const float *m, const float *lv, const float *t, const float *dy, size_t n, int shared, int N, float *dm, float *dlv);
/* discretized logistic: out[0] = sum uvae__dlogistic(t, m, ls) / N;  dm += dy/N dm_i, dls += dy/N dls_i */
void uvae__cu_dlog_fwd(const float *m, const float *ls, const float *t, size_t n, int N, float *out);
void uvae__cu_dlog_bwd(const float *m, const float *ls, const float *t, const float *dy, size_t n, int N, float *dm, float *dls);
/* optimizers over one parameter slice, as in [optim]: kind 0 SGD (m = first ? g : mu m + g, with
   L2 wd), 1 Adam (L2 wd), 2 AdamW (decoupled); step_size = lr / (1 - b1^t), bc2s = sqrt(1 - b2^t) */
void uvae__cu_optim(int kind, float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2,
                    float eps, float wd, float mu, float step_size, float bc2s, int first);
void uvae__cu_sumsq(const float *x, size_t n, double *out_host);   /* *out_host = sum x^2 (waits) */
/* x[i] = N(0,1) by Box-Muller from u1 = 1 - uvae_hash_uniform(seed, 2i), u2 = uvae_hash_uniform(seed, 2i+1):
   sqrtf(-2 logf(u1)) * cosf(6.28318530718f * u2) */
void uvae__cu_randn(float *x, size_t n, uint32_t seed);
void uvae__cu_scale(float *x, size_t n, float s);                  /* x *= s */
#endif

/* Element functions shared by both devices (compiled for the GPU too when nvcc includes this). */
#ifdef __CUDACC__
#define UVAE__HD __host__ __device__
#else
#define UVAE__HD
#endif
/* The dropout stream: a uniform float in [0,1) from (seed, i). */
static inline UVAE__HD float uvae_hash_uniform(uint32_t seed, uint32_t i) {
    uint32_t h = seed ^ (i * 0x9E3779B9u);
    h ^= h >> 16; h *= 0x7feb352du; h ^= h >> 15; h *= 0x846ca68bu; h ^= h >> 16;
    return (float)(h >> 8) * (1.0f / 16777216.0f);
}
/* [loss/discretized_logistic] one pixel t = k/255 under mean m, log-scale ls: returns -log P(k)
   (double) and, when dm is not NULL, the partials dm, dls (see the loss's comment). */
static inline UVAE__HD double uvae__dlogistic(float t, float m, float ls, float *dm, float *dls) {
    double inv = exp(-(double)ls), c = (double)t - m, a = inv * (c + 0.5 / 255), b = inv * (c - 0.5 / 255), d = a - b;
    double sa = 1 / (1 + exp(-a)), sb = 1 / (1 + exp(-b)), nll;
    double sp_a = a > 0 ? a + log1p(exp(-a)) : log1p(exp(a)), sp_mb = -b > 0 ? -b + log1p(exp(b)) : log1p(exp(-b));
    int k = (int)floor((double)t * 255 + 0.5);
    if (k <= 0) {                                        /* open left bin: softplus(-a) */
        nll = sp_a - a;
        if (dm) { *dm = (float)(inv * (1 - sa)); *dls = (float)(a * (1 - sa)); }
    } else if (k >= 255) {                               /* open right bin: softplus(b) */
        nll = sp_mb + b;
        if (dm) { *dm = (float)(-inv * sb); *dls = (float)(-b * sb); }
    } else {                                             /* softplus(a) + softplus(-b) - log(expm1(d)) */
        nll = sp_a + sp_mb - (d > 20 ? d + log1p(-exp(-d)) : log(expm1(d)));
        if (dm) { *dm = (float)(inv * (1 - sa - sb)); *dls = (float)(-a * sa + b * (1 - sb) + d / -expm1(-d)); }
    }
    return nll;
}
/* [ops/batch_norm2d] a channel's running statistics after a training batch of M values with mean
   mu and biased variance var (PyTorch's update: the running variance takes the unbiased one) */
static inline UVAE__HD void uvae__bn_running(float *rmean, float *rvar, double mu, double var, double M, float momentum) {
    *rmean = (float)((1 - momentum) * *rmean + momentum * mu);
    *rvar = (float)((1 - momentum) * *rvar + momentum * var * M / (M - 1));
}

/* ---------------------------------------------------------------------------------------------
   [data] dataset readers: IDX (MNIST, Fashion-MNIST) and CIFAR-10 binary, plain or gzip.
   A file is gzip when it starts with 0x1f (gzip magic 1f 8b), whatever its name. Every error
   names the file and the problem: UVAE_ERR_IO (missing/unreadable, with strerror),
   UVAE_ERR_FORMAT (bad content), UVAE_ERR_NOMEM, UVAE_ERR_ARG. On failure the dataset is zeroed,
   with nothing to free. Limits against hostile files (define before including to change them):
   a file, and a gzip file's decompressed contents, of at most UVAE_MAX_DATA_BYTES (a gzip trailer
   claiming more than deflate can expand to is refused before anything is allocated); IDX rows
   and cols in 1..UVAE_MAX_IDX_SIDE; counts (and all size arithmetic) checked for overflow. */
#ifndef UVAE_MAX_DATA_BYTES
#define UVAE_MAX_DATA_BYTES ((size_t)1 << 31)   /* 2 GiB */
#endif
#ifndef UVAE_MAX_IDX_SIDE
#define UVAE_MAX_IDX_SIDE 4096
#endif
typedef struct uvae_dataset {
    int n, channels, height, width, n_classes;
    unsigned char *images;   /* [n, channels, height, width] uint8, CHW planes */
    unsigned char *labels;   /* [n] */
} uvae_dataset;

/* IDX: images file (magic 0x00000803, big-endian count, rows, cols, then count*rows*cols bytes)
   and labels file (magic 0x00000801, count, then count bytes). Checks: the magics, header and data
   sizes against the file (truncated or trailing bytes -> error), equal counts, labels 0..9,
   rows and cols in 1..UVAE_MAX_IDX_SIDE. Gives channels 1, n_classes 10. */
int uvae_load_idx(const char *images_path, const char *labels_path, uvae_dataset *d);
/* CIFAR-10 binary: files of 3073-byte records (label 0..9, then R, G, B 32x32 planes), .bin or
   .bin.gz; the record count comes from each file's size. The files are concatenated in order.
   Gives channels 3, 32x32, n_classes 10. */
int uvae_load_cifar10(const char *const *paths, int n_paths, uvae_dataset *d);
/* Frees and zeroes (safe on a zeroed dataset). */
void uvae_dataset_free(uvae_dataset *d);
/* One batch as float tensors allocated by the caller on the CPU: x [B,C,H,W] = pixel/255,
   y [B] = label (as float). idx: B indices into the dataset, each in 0..n-1 (checked first;
   nothing is written on error). */
int uvae_dataset_batch(const uvae_dataset *d, const int *idx, int B, uvae_tensor *x, uvae_tensor *y);
/* order = a uniformly random permutation of 0..n-1 (Fisher-Yates, unbiased, with `rng`). */
void uvae_shuffle(int *order, int n, uvae_rng *rng);

/* ---------------------------------------------------------------------------------------------
   [data/pets] Oxford-IIIT Pet segmentation loader (official layout) and segmentation metrics.
   DIR/images/<Name>.jpg, DIR/annotations/trimaps/<Name>.png (8-bit grey: 1 pet, 2 background,
   3 border), split lists DIR/annotations/{trainval,test}.txt with lines `Name class species breed`
   ('#' comment lines and blank lines are skipped). Every error names the file: UVAE_ERR_IO
   (missing/unreadable, with strerror), UVAE_ERR_FORMAT (corrupt or unexpected content),
   UVAE_ERR_NOMEM, UVAE_ERR_ARG. On failure the set is zeroed, with nothing to free.
   Limits against hostile files (define before including to change them): images and trimaps must
   be JPEG or PNG data (trimaps PNG), whatever the file name says; at most UVAE_MAX_IMAGE_SIDE
   pixels per side and UVAE_MAX_IMAGE_PIXELS pixels, checked from the file's header before
   anything is decoded; list lines of at most 1022 characters. */
#ifndef UVAE_MAX_IMAGE_SIDE
#define UVAE_MAX_IMAGE_SIDE 8192
#endif
#ifndef UVAE_MAX_IMAGE_PIXELS
#define UVAE_MAX_IMAGE_PIXELS ((size_t)1 << 25)   /* 33.5 million, e.g. 8192 x 4096 */
#endif
typedef struct uvae_pets {
    int n, size;                 /* images resized to size x size */
    float *images;               /* [n, 3, size, size] RGB floats in [0,1] */
    unsigned char *masks;        /* [n, size, size] class 0 pet, 1 background, 2 border */
    char (*names)[64];           /* [n] image names from the list */
} uvae_pets;

/* Reads the image names of a split list into names[0..max_names) and returns their count, or a
   negative status. A line is `Name` optionally followed by exactly three non-negative integers
   (class species breed), separated by blanks; a name is 1..63 characters of [A-Za-z0-9_-].
   Anything else -> UVAE_ERR_FORMAT "FILE:LINE: malformed line". More than max_names names ->
   UVAE_ERR_ARG. names == NULL only counts (max_names is then ignored). */
int uvae_pets_read_list(const char *list_path, char (*names)[64], int max_names);
/* Loads every image of a list (dir: the dataset folder; list_path: any list file, e.g.
   DIR/annotations/trainval.txt) resized to size x size, size in 1..4096. Images: bilinear with
   align_corners=False semantics and no antialiasing (as PyTorch's F.interpolate(mode="bilinear",
   align_corners=False)), pixel/255. Trimaps: nearest at pixel centres (source pixel
   floor((i + 0.5) * in / out), PyTorch's "nearest-exact"), value - 1. Errors name the file: a
   missing image or trimap (UVAE_ERR_IO "cannot open image|trimap"), an undecodable one
   (UVAE_ERR_FORMAT "cannot decode"), data that is not JPEG or PNG, an image above the limits, a
   trimap that is not one 8-bit grey channel, whose size differs from its image, or with a value
   outside 1..3. */
int uvae_pets_load(const char *dir, const char *list_path, int size, uvae_pets *p);
/* Frees and zeroes (safe on a zeroed set). */
void uvae_pets_free(uvae_pets *p);
/* Per-channel mean and (population) standard deviation over every pixel of the set; normalise
   every split with the TRAINING set's stats. An empty set gives mean 0, std 1. */
void uvae_pets_stats(const uvae_pets *p, float mean[3], float std[3]);
/* One batch, into CPU tensors allocated by the caller: x [B,3,S,S] = (image - mean) / std;
   y [B,S,S] = class id as float (0 pet, 1 background, 2 border), or with binary != 0
   y [B,1,S,S] = 1 for pet or border, 0 for background. flip[i] != 0 mirrors sample i
   horizontally (flip may be NULL). idx: B indices in 0..n-1; shapes, indices and std > 0 are
   checked first (UVAE_ERR_ARG, nothing written). */
int uvae_pets_batch(const uvae_pets *p, const int *idx, int B, const float mean[3], const float std[3],
                    const unsigned char *flip, int binary, uvae_tensor *x, uvae_tensor *y);
/* Training augmentation. A view of an S x S image: the crop box (x0, y0, w, h) in pixels, resized
   back to S x S (bilinear for the image, nearest for the trimap), a horizontal mirror, and colour
   factors applied to the image in [0,1] before normalising: brightness (v *= b), contrast (towards
   the image's mean grey), saturation (towards each pixel's grey, 0.299 R + 0.587 G + 0.114 B),
   clamped to [0,1]. The identity view is {0, 0, S, S, 0, 1, 1, 1}. */
typedef struct uvae_pets_view { float x0, y0, w, h; int flip; float brightness, contrast, saturation; } uvae_pets_view;
/* Draws B random views, as torchvision's RandomResizedCrop(scale=(min_scale, 1), ratio=(3/4, 4/3))
   + RandomHorizontalFlip + ColorJitter(jitter, jitter, jitter): the box's area is U(min_scale, 1) of
   the image, its log aspect ratio uniform, its place uniform (the whole image after 10 misses);
   mirror with probability 1/2; each colour factor U(1 - jitter, 1 + jitter). min_scale in (0, 1],
   jitter in [0, 1): min_scale 1 and jitter 0 give flips only. */
int uvae_pets_random_views(uvae_rng *rng, int B, int S, float min_scale, float jitter, uvae_pets_view *views);
/* uvae_pets_batch with a view per sample (views may be NULL: identity views). */
int uvae_pets_batch_views(const uvae_pets *p, const int *idx, int B, const float mean[3], const float std[3],
                          const uvae_pets_view *views, int binary, uvae_tensor *x, uvae_tensor *y);
/* Resizes planes float planes src [planes, h, w] to dst [planes, oh, ow]: bilinear, align_corners=False,
   no antialiasing, as the image loader (== F.interpolate(src, size=(oh, ow), mode="bilinear",
   align_corners=False)). For maps predicted at another input size, e.g. logits of an image loaded at
   160 x 160 brought back to the 128 x 128 labels (unet_pets --eval-size). Sizes >= 1, else
   UVAE_ERR_ARG; src and dst must not overlap. */
int uvae_resize_bilinear(const float *src, int planes, int h, int w, float *dst, int oh, int ow);

/* Segmentation metrics from one confusion matrix pooled over a whole evaluation set (not a mean
   of per-image scores). Start from a zeroed struct. */
typedef struct uvae_confusion { int64_t m[3][3]; } uvae_confusion;   /* m[truth][pred] */
/* Counts n (truth, pred) pairs of class ids; a pair with either value outside 0..2 (e.g. an
   ignore label 255) is skipped. */
void uvae_confusion_add(uvae_confusion *c, const unsigned char *truth, const unsigned char *pred, size_t n);
typedef struct uvae_seg_metrics {
    double iou[3], miou;         /* per class (pet, background, border) TP/(TP+FP+FN), and their mean */
    double pet_iou;              /* foreground (pet+border) vs background: IoU of the foreground */
    double pixel_acc, dice;      /* dice = 2TP/(2TP+FP+FN) of that foreground */
} uvae_seg_metrics;
/* Convention: a ratio 0/0 (a class absent from both truth and prediction, or an empty matrix)
   counts as 1.0, a perfect score, so no metric is ever NaN. */
uvae_seg_metrics uvae_confusion_metrics(const uvae_confusion *c);

/* ---------------------------------------------------------------------------------------------
   [image] RGB canvases, pasting images and label maps, text (stb_easy_font), PNG output (stb),
   sample grids and line plots. Every pixel write is clipped to the canvas. Canvas sides must be
   in 1..16384. The drawing calls (paste, paste_labels, text) return nothing and draw nothing when
   given NULL or nonsensical arguments; the calls that allocate or write files return a status. */
typedef struct uvae_image {
    int w, h;
    unsigned char *rgb;   /* [h, w, 3], row-major */
} uvae_image;

/* A w x h canvas filled with (r, g, b). On failure *im is zeroed (nothing to free). */
int uvae_image_new(uvae_image *im, int w, int h, unsigned char r, unsigned char g, unsigned char b);
/* Frees and zeroes (safe on a zeroed image). */
void uvae_image_free(uvae_image *im);
/* Paste a CHW float image (channels 1 or 3; values mapped from [lo,hi] to 0..255 rounded and
   clamped, NaN -> 0) with its top-left corner at (x,y), each pixel drawn as a scale x scale block. */
void uvae_image_paste(uvae_image *im, const float *chw, int channels, int h, int w, float lo, float hi,
                      int x, int y, int scale);
/* Paste a label map [h,w] of class ids, coloured by palette (n_colors rgb triples; id k uses
   colour k % n_colors), each pixel drawn as a scale x scale block. */
void uvae_image_paste_labels(uvae_image *im, const unsigned char *labels, int h, int w,
                             const unsigned char *palette, int n_colors, int x, int y, int scale);
/* Draw text (ASCII; other bytes draw as '?', '\n' starts a new line 12*scale lower) with its top-left
   at (x,y), each font pixel a scale x scale block. Returns the width of the widest line in pixels
   (drawn or not). */
int uvae_image_text(uvae_image *im, int x, int y, const char *text, int scale,
                    unsigned char r, unsigned char g, unsigned char b);
/* Write an RGB PNG atomically: to "<path>.tmp", then renamed over path. Errors name the path;
   UVAE_ERR_IO when the file cannot be written (nothing is left behind). */
int uvae_image_save_png(const uvae_image *im, const char *path);
/* A grid of n images (images: n CHW floats [channels,h,w], values in [lo,hi]) in min(cols, n)
   columns, each cell scaled by `scale`, with an optional caption per cell (labels may be NULL, and
   labels[i] may be NULL) in a 12-pixel strip under the cell, and an optional title on top.
   Layout (G = 4, c = min(cols,n), rows = ceil(n/c), cap = labels ? 12 : 0, top = title ? 14 : 0):
     width  = G + c * (w*scale + G)
     height = top + G + rows * (h*scale + cap + G)
   Cell i has its top-left at (G + (i%c)*(w*scale+G), top + G + (i/c)*(h*scale+cap+G)). */
int uvae_grid_png(const char *path, const float *images, int n, int channels, int h, int w, float lo, float hi,
                  int cols, int scale, const char *const *labels, const char *title);
/* A w x h line plot of n_series (1..8) series of n_points values each (NaN/Inf = gap; x is the
   index), with axes, min/max labels on both axes, a legend (names may be NULL, names[i] may be
   NULL) and an optional title. Series i is drawn in uvae_plot_colors[i]. Needs w >= 64, h >= 48. */
int uvae_plot_png(const char *path, int w, int h, const char *title, const char *const *names,
                  const float *const *series, int n_series, int n_points);
/* The series colours of uvae_plot_png (rgb triples). */
extern const unsigned char uvae_plot_colors[8][3];


#ifdef __cplusplus
}
#endif
#endif /* UNETVAE_H */

/* ============================================================================================= */
#ifdef UNETVAE_IMPLEMENTATION
#ifndef UNETVAE_IMPLEMENTATION_DONE
#define UNETVAE_IMPLEMENTATION_DONE
/* stb (Debian's libstb-dev) decodes JPEG/PNG, inflates .gz and writes PNG; stb_easy_font draws
   labels. Define UVAE_NO_STB_IMPLEMENTATION if your program already compiles stb elsewhere. */
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#ifndef UVAE_NO_STB_IMPLEMENTATION
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#endif
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#include <stb/stb_easy_font.h>
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <math.h>
#include <errno.h>
#include <assert.h>
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_WIN32)
#ifdef __cplusplus
#include <unistd.h>
#else
int fileno(FILE *);   /* POSIX; declared here so that a strict -std=c99 build needs no feature macros */
int fsync(int);
#endif
#define UVAE__FSYNC(fp) fsync(fileno(fp))   /* the data is on the disk before the rename */
#else
#define UVAE__FSYNC(fp) 0
#endif

/* ---------------------------------------------------------------------------------------------
   [config] allocator macros (all or none), assertions for programmer errors, OpenMP pragmas,
   shares. */
#if defined(UVAE_MALLOC) && defined(UVAE_FREE) && defined(UVAE_REALLOC)
#elif !defined(UVAE_MALLOC) && !defined(UVAE_FREE) && !defined(UVAE_REALLOC)
#define UVAE_MALLOC(sz) malloc(sz)
#define UVAE_REALLOC(p, sz) realloc(p, sz)
#define UVAE_FREE(p) free(p)
#else
#error "unetvae.h: define all of UVAE_MALLOC, UVAE_REALLOC and UVAE_FREE, or none"
#endif
#ifndef UVAE_ASSERT
#define UVAE_ASSERT(x) assert(x)
#endif
#ifdef _OPENMP
#include <omp.h>
#define UVAE__OMP(x) _Pragma(#x)
#define UVAE__THREAD() omp_get_thread_num()
#define UVAE__THREADS() omp_get_max_threads()
#else
#define UVAE__OMP(x)
#define UVAE__THREAD() 0
#define UVAE__THREADS() 1
#endif
/* parallelise a loop only when it has enough work to pay for the threads */
#define UVAE__PAR_MIN 32768
/* Shares: a loop of independent iterations (each writes only its own outputs, so any thread may
   run any of them and the bits do not change) split into one contiguous share a thread, like a
   static schedule, each share with its own counter on its own cache line. A thread takes its own
   share front to back, a sixteenth at a time, then what is left of the others' shares through
   their counters: a core that runs slower than its peers (a VM's vCPU whose core is busy with
   another guest, a hybrid CPU's small core) hands its tail to a faster one instead of making the
   team wait for it at the loop's end.
       UVAE__SHARED_FOR(at, n, cond) { ... at.i ... }       (below, where a declaration may go)
   A team smaller than the shares (cond false; a thread limit) is fine: its threads take them all. */
#define UVAE__SHARES 64
typedef struct { int next, end, step; char pad[64 - 3 * sizeof(int)]; } uvae__share;   /* a cache line each */
typedef struct { uvae__share s[UVAE__SHARES + 1]; } uvae__shares_room;                 /* room to align them */
typedef struct { int i, end, v; } uvae__share_at;   /* a thread's place: iteration i of [i, end) taken; v shares emptied */
static uvae__share *uvae__shares(uvae__shares_room *room, int n, int *nt) {
    uvae__share *sh = (uvae__share *)(((uintptr_t)room + 63) & ~(uintptr_t)63);   /* no line shared with */
    *nt = UVAE__THREADS() < UVAE__SHARES ? UVAE__THREADS() : UVAE__SHARES;        /* the caller's variables */
    if (*nt > n) *nt = n > 0 ? n : 1;
    for (int t = 0; t < *nt; t++) {
        sh[t].next = (int)((long long)n * t / *nt);
        sh[t].end = (int)((long long)n * (t + 1) / *nt);
        sh[t].step = (sh[t].end - sh[t].next + 15) / 16 > 0 ? (sh[t].end - sh[t].next + 15) / 16 : 1;
    }
    return sh;
}
/* the calling thread's next iteration into at->i (0: none left), from its own share first */
static int uvae__share_next(uvae__share *sh, int nt, uvae__share_at *at) {
    if (++at->i < at->end) return 1;
    for (; at->v < nt; at->v++) {
        uvae__share *s = sh + (UVAE__THREAD() + at->v) % nt;
        int e;
        UVAE__OMP(omp atomic capture)
        e = s->next += s->step;
        if (e - s->step < s->end) {
            at->i = e - s->step;
            at->end = e < s->end ? e : s->end;
            return 1;
        }
    }
    return 0;
}
/* UVAE__SHARED_FOR(at, n, cond) { ... at.i ... }: a parallel region (OpenMP `if (cond)`) over
   the iterations at.i in [0, n) through shares; declares at_room, at_nt and at_sh (the shares) in
   the enclosing block, so it goes where a declaration may */
#define UVAE__SHARED_FOR(at, n, cond)                                                              \
    uvae__shares_room at##_room;                                                                   \
    int at##_nt;                                                                                   \
    uvae__share *at##_sh = uvae__shares(&at##_room, (n), &at##_nt);                                \
    UVAE__OMP(omp parallel num_threads(at##_nt) if (cond))                                         \
    for (uvae__share_at at = {0, 0, 0}; uvae__share_next(at##_sh, at##_nt, &at);)
void uvae__cpu_share_run(int n, int slow, int *hits, int *who) {
    UVAE__SHARED_FOR(at, n, 1) {
        if (slow && UVAE__THREAD() == 0 && at.i < at_sh[0].end)   /* until the others have taken the rest (or ~1 s) */
            for (long k = 0, next = 0; next < at_sh[0].end && k < 100000000L; k++) {
                UVAE__OMP(omp atomic read)
                next = at_sh[0].next;
            }
        UVAE__OMP(omp atomic update)
        hits[at.i]++;
        who[at.i] = UVAE__THREAD();
    }
}
#if defined(__GNUC__) || defined(__clang__)
#define UVAE__PREFETCH(p) __builtin_prefetch(p)   /* a hint: fetch the line at p into the cache */
#define UVAE__PREFETCHW(p) __builtin_prefetch(p, 1)   /* ... to be written */
#else
#define UVAE__PREFETCH(p) ((void)(p))
#define UVAE__PREFETCHW(p) ((void)(p))
#endif

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L && !defined(__STDC_NO_THREADS__)
#define UVAE__TLS _Thread_local
#elif defined(__GNUC__) || defined(__clang__)
#define UVAE__TLS __thread
#elif defined(_MSC_VER)
#define UVAE__TLS __declspec(thread)
#else
#define UVAE__TLS
#endif

static UVAE__TLS char uvae__err[512];

const char *uvae_last_error(void) { return uvae__err[0] ? uvae__err : "no error"; }

/* Record "what went wrong" for uvae_last_error() and return `status` (for `return uvae__fail(..)`).
   The message is formatted aside first, so it may quote the previous one (uvae_last_error()). */
static void uvae__set_error(const char *fmt, va_list ap) {
    char msg[sizeof uvae__err];
    vsnprintf(msg, sizeof msg, fmt, ap);
    memcpy(uvae__err, msg, sizeof msg);
}
static int uvae__fail(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    uvae__set_error(fmt, ap);
    va_end(ap);
    return status;
}
/* Where a reader's bytes come from: the named file (a NULL uvae__mem *) or a buffer holding the
   file's contents (the fuzz harnesses in fuzz/); messages name `path` either way. */
typedef struct uvae__mem { const unsigned char *p; size_t n; } uvae__mem;

/* The same for functions that return a pointer. */
static void *uvae__failp(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    uvae__set_error(fmt, ap);
    va_end(ap);
    (void)status;
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
   [tensor] */
static size_t uvae__shape_size(int ndim, const int *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && n > (size_t)-1 / 8 / (size_t)shape[i])) return (size_t)-1;
        n *= (size_t)shape[i];
    }
    return n;
}

static int uvae__set_shape(uvae_tensor *t, int ndim, const int *shape, const char *who) {
    if (ndim < 1 || ndim > UVAE_MAX_DIMS) return uvae__fail(UVAE_ERR_ARG, "%s: ndim %d not in 1..4", who, ndim);
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->size = uvae__shape_size(ndim, shape);
    if (t->size == (size_t)-1) return uvae__fail(UVAE_ERR_ARG, "%s: negative or too large shape", who);
    return UVAE_OK;
}

static void *uvae__dmalloc(int dev, size_t bytes);
static void uvae__dfree(int dev, void *p);
static void uvae__dzero(int dev, void *p, size_t bytes);
static void uvae__dcopy(int dev, void *dst, const void *src, size_t bytes, int dir);
static int uvae__check_device(int dev, const char *who);
static int uvae__gpu_status(const char *where);

uvae_tensor *uvae_tensor_new_on(int device, int ndim, const int *shape, int with_grad) {
    uvae_tensor tmp, *t;
    if (uvae__check_device(device, "uvae_tensor_new") != UVAE_OK) return NULL;
    if (uvae__set_shape(&tmp, ndim, shape, "uvae_tensor_new") != UVAE_OK) return NULL;
    t = (uvae_tensor *)UVAE_MALLOC(sizeof *t);
    if (!t) return (uvae_tensor *)uvae__failp(UVAE_ERR_NOMEM, "uvae_tensor_new: out of memory");
    *t = tmp;
    t->device = device;
    t->data = (float *)uvae__dmalloc(device, t->size * sizeof(float));
    t->grad = with_grad ? (float *)uvae__dmalloc(device, t->size * sizeof(float)) : NULL;
    if (!t->data || (with_grad && !t->grad)) {
        uvae_tensor_free(t);
        return (uvae_tensor *)uvae__failp(UVAE_ERR_NOMEM, "uvae_tensor_new: out of %s memory for %zu floats", device ? "GPU" : "host", tmp.size);
    }
    uvae__dzero(device, t->data, t->size * sizeof(float));
    if (t->grad) uvae__dzero(device, t->grad, t->size * sizeof(float));
    return t;
}
uvae_tensor *uvae_tensor_new_grad(int ndim, const int *shape, int with_grad) { return uvae_tensor_new_on(UVAE_CPU, ndim, shape, with_grad); }
uvae_tensor *uvae_tensor_new(int ndim, const int *shape) { return uvae_tensor_new_on(UVAE_CPU, ndim, shape, 0); }
void uvae_tensor_free(uvae_tensor *t) {
    if (!t) return;
    uvae__dfree(t->device, t->data);
    uvae__dfree(t->device, t->grad);
    UVAE_FREE(t);
}
int uvae_tensor_copy_in(uvae_tensor *t, const float *host) {
    if (!t || !host) return uvae__fail(UVAE_ERR_ARG, "uvae_tensor_copy_in: NULL tensor or source");
    uvae__dcopy(t->device, t->data, host, t->size * sizeof(float), 0);
    return uvae__gpu_status("uvae_tensor_copy_in");
}
int uvae_tensor_copy_out(const uvae_tensor *t, float *host) {
    if (!t || !host) return uvae__fail(UVAE_ERR_ARG, "uvae_tensor_copy_out: NULL tensor or destination");
    uvae__dcopy(t->device, host, t->data, t->size * sizeof(float), 1);
    return uvae__gpu_status("uvae_tensor_copy_out");
}
int uvae_same_shape(const uvae_tensor *a, const uvae_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}
/* "[2,3,4,4]" for error messages (rotating static buffers: two per message is fine) */
static const char *uvae__shape_str(const uvae_tensor *t) {
    static UVAE__TLS char buf[4][48];
    static UVAE__TLS int k;
    char *s = buf[k = (k + 1) & 3];
    int n = snprintf(s, 48, "[");
    for (int i = 0; i < t->ndim && n < 40; i++) n += snprintf(s + n, 48 - (size_t)n, i ? ",%d" : "%d", t->shape[i]);
    snprintf(s + n, 48 - (size_t)n, "]");
    return s;
}

/* ---------------------------------------------------------------------------------------------
   [rng] PCG32: state advances by an LCG, output is a permuted 32-bit word (xorshift + rotate). */
void uvae_rng_seed(uvae_rng *r, uint64_t seed) {
    r->state = 0;
    r->inc = (seed << 1) | 1u;
    (void)uvae_rng_u32(r);
    r->state += seed ^ 0x853c49e6748fea9bULL;
    (void)uvae_rng_u32(r);
}
uint32_t uvae_rng_u32(uvae_rng *r) {
    uint64_t old = r->state;
    uint32_t x = (uint32_t)(((old >> 18) ^ old) >> 27), rot = (uint32_t)(old >> 59);
    r->state = old * 6364136223846793005ULL + r->inc;
    return (x >> rot) | (x << ((32 - rot) & 31));
}
float uvae_rng_uniform(uvae_rng *r) { return (float)(uvae_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }
float uvae_rng_normal(uvae_rng *r) {
    /* Box-Muller; u1 in (0, 1] so the log is finite */
    float u1 = ((float)(uvae_rng_u32(r) >> 8) + 1.0f) * (1.0f / 16777216.0f);
    float u2 = uvae_rng_uniform(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
}
void uvae_rng_to_str(const uvae_rng *r, char s[UVAE_RNG_STR]) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        s[i] = hex[(r->state >> (60 - 4 * i)) & 15];
        s[16 + i] = hex[(r->inc >> (60 - 4 * i)) & 15];
    }
    s[32] = '\0';
}
int uvae_rng_from_str(uvae_rng *r, const char *s) {
    uint64_t v[2] = {0, 0};
    for (int i = 0; s && i < 32; i++) {
        int c = (unsigned char)s[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) break;
        v[i / 16] = v[i / 16] << 4 | (uint64_t)d;
        if (i == 31 && s[32] == '\0' && (v[1] & 1)) { r->state = v[0]; r->inc = v[1]; return UVAE_OK; }
    }
    return uvae__fail(UVAE_ERR_FORMAT, "uvae_rng_from_str: '%.40s' is not a generator state (32 lowercase hex digits, odd inc)",
                      s ? s : "(null)");
}

/* ---------------------------------------------------------------------------------------------
   [device] Memory on a device: the CPU's heap or the GPU's (through unetvae_cuda.cu). Kernels are
   called through UVAE__K(device, name, args...), which picks uvae__cpu_name or uvae__cu_name. */
#ifdef UNETVAE_CUDA
#define UVAE__K(dev, name, ...) do { if ((dev) == UVAE_CUDA) uvae__cu_##name(__VA_ARGS__); else uvae__cpu_##name(__VA_ARGS__); } while (0)
#else
#define UVAE__K(dev, name, ...) ((void)(dev), uvae__cpu_##name(__VA_ARGS__))
#endif
static const char *uvae__dev_name(int dev) { return dev == UVAE_CUDA ? "cuda" : "cpu"; }

/* Turn a pending GPU failure into this library's error. */
static int uvae__gpu_status(const char *where) {
#ifdef UNETVAE_CUDA
    const char *e = uvae__cu_take_error();
    if (e) return uvae__fail(UVAE_ERR_CUDA, "%s: %s", where, e);
#else
    (void)where;
#endif
    return UVAE_OK;
}
static int uvae__check_device(int dev, const char *who) {
#ifdef UNETVAE_CUDA
    if (dev == UVAE_CUDA) return uvae_cuda_available() ? UVAE_OK : UVAE_ERR_CUDA;
#endif
    if (dev != UVAE_CPU) return uvae__fail(UVAE_ERR_ARG, "%s: device %s is not in this build (compile with nvcc -DUNETVAE_CUDA)", who, uvae__dev_name(dev));
    return UVAE_OK;
}
int uvae_cuda_available(void) {
#ifdef UNETVAE_CUDA
    static int state = -1;                    /* -1 unknown, 0 none, 1 ready */
    if (state < 0) state = uvae__cu_init() == 0;
    if (!state) {                             /* the kernels' text says "no CUDA device (why)" */
        const char *e = uvae__cu_take_error();
        uvae__fail(UVAE_ERR_CUDA, "%s", e ? e : "no CUDA device");
    }
    return state;
#else
    uvae__fail(UVAE_ERR_CUDA, "no CUDA device: this build has no GPU support (compile with nvcc -DUNETVAE_CUDA)");
    return 0;
#endif
}
static void *uvae__dmalloc(int dev, size_t bytes) {
    void *p;
#ifdef UNETVAE_CUDA
    if (dev == UVAE_CUDA) {
        if (!(p = uvae__cu_malloc(bytes ? bytes : 1))) uvae__gpu_status("cuda");
        return p;
    }
#endif
    (void)dev;
    if (!(p = UVAE_MALLOC(bytes ? bytes : 1))) uvae__fail(UVAE_ERR_NOMEM, "out of memory for %zu bytes", bytes);
    return p;
}
static void uvae__dfree(int dev, void *p) {
    if (!p) return;
#ifdef UNETVAE_CUDA
    if (dev == UVAE_CUDA) { uvae__cu_free(p); return; }
#endif
    (void)dev;
    UVAE_FREE(p);
}
static void uvae__dzero(int dev, void *p, size_t bytes) {
    ptrdiff_t i, n = (ptrdiff_t)(bytes >> 16);                   /* 64 KB pieces, in parallel when there are many */
#ifdef UNETVAE_CUDA
    if (dev == UVAE_CUDA) { uvae__cu_memset0(p, bytes); return; }
#endif
    (void)dev;
    UVAE__OMP(omp parallel for schedule(static) if (n >= 8))
    for (i = 0; i <= n; i++) memset((char *)p + (i << 16), 0, i < n ? (size_t)1 << 16 : bytes & 0xffff);
}
/* dir 0: host -> dev, 1: dev -> host, 2: dev -> dev */
static void uvae__dcopy(int dev, void *dst, const void *src, size_t bytes, int dir) {
#ifdef UNETVAE_CUDA
    if (dev == UVAE_CUDA) { uvae__cu_copy(dst, src, bytes, dir); return; }
#endif
    (void)dev; (void)dir;
    memcpy(dst, src, bytes);
}

/* ---------------------------------------------------------------------------------------------
   [ctx] An arena is one block used by bumping an offset. If a step needs more, extra blocks are
   chained; at the next reset they are freed and the main block grows to the step's high-water
   mark, so from the second step on a training loop allocates nothing. A context has two: tensor
   structs and the tape's bookkeeping live on the host, tensor values on the context's device
   (the same arena on the CPU). The tape is an array of nodes; each node knows how to push its
   output's gradient to its inputs. */
typedef struct uvae__node uvae__node;
typedef void (*uvae__backward_fn)(uvae__node *n);
struct uvae__node {
    uvae__backward_fn backward;
    uvae_ctx *ctx;
    uvae_tensor *out, *in[3];
    int i[6];                     /* integer arguments (stride, pad, ...) */
    float f[3];                   /* float arguments (slope, momentum, ...) */
    void *saved;                  /* what the forward kept for the backward (on the device) */
};

typedef struct uvae__chunk { struct uvae__chunk *next; void *mem; } uvae__chunk;
typedef struct uvae__gblock { float *p; size_t n; int used; struct uvae__gblock *next; } uvae__gblock;   /* a gradient buffer of n floats */
typedef struct uvae__arena {
    int device;
    unsigned char *mem; size_t cap, used;    /* main block (64-byte aligned on both devices) */
    uvae__chunk *extra; size_t extra_used;   /* overflow blocks of this step */
} uvae__arena;

struct uvae_ctx {
    int device;
    uvae__arena host, dev;                    /* dev is unused on the CPU: host serves both */
    uvae__node *tape; int n_nodes, cap_nodes;
    uvae__gblock *grads;                      /* the backward's gradient buffers, in use or free (uvae_backward) */
    float *scratch; size_t scratch_cap;       /* per-op temporary (im2col columns), on the device */
    int train, record;
    uvae_rng rng;
    float *one;                               /* 1.0f on the device: seeds uvae_backward */
    double flops;                             /* uvae_ctx_flops */
};

#define UVAE__ALIGN 64

static unsigned char *uvae__align(void *p) {
    return (unsigned char *)p + ((UVAE__ALIGN - ((uintptr_t)p & (UVAE__ALIGN - 1))) & (UVAE__ALIGN - 1));
}
static int uvae__arena_grow(uvae__arena *a, size_t bytes) {
    uvae__dfree(a->device, a->mem);
    a->mem = (unsigned char *)uvae__dmalloc(a->device, bytes + UVAE__ALIGN);
    a->cap = a->mem ? bytes : 0;
    return a->mem ? UVAE_OK : UVAE_ERR_NOMEM;
}
static void uvae__arena_free_extra(uvae__arena *a) {
    while (a->extra) {
        uvae__chunk *c = a->extra;
        a->extra = c->next;
        uvae__dfree(a->device, c->mem);
        UVAE_FREE(c);
    }
    a->extra_used = 0;
}
static void uvae__arena_reset(uvae__arena *a) {
    if (a->extra) {                           /* grow the main block to last step's high-water mark */
        size_t need = a->used + a->extra_used;
        uvae__arena_free_extra(a);
        uvae__arena_grow(a, need + need / 8); /* on failure the next step reports it */
    }
    a->used = 0;
}
/* `bytes` of 64-byte aligned arena memory, not initialised. */
static void *uvae__arena_alloc(uvae__arena *a, size_t bytes) {
    size_t n = (bytes + UVAE__ALIGN - 1) & ~(size_t)(UVAE__ALIGN - 1);
    uvae__chunk *c;
    if (a->mem && a->used + n <= a->cap) {
        void *p = uvae__align(a->mem) + a->used;
        a->used += n;
        return p;
    }
    /* overflow: a block of its own (freed and folded into the main block at the next reset) */
    if (!(c = (uvae__chunk *)UVAE_MALLOC(sizeof *c))) return uvae__failp(UVAE_ERR_NOMEM, "arena: out of memory");
    if (!(c->mem = uvae__dmalloc(a->device, n + UVAE__ALIGN))) {
        UVAE_FREE(c);
        return uvae__failp(UVAE_ERR_NOMEM, "arena: out of %s memory for %zu bytes of activations (%s)", uvae__dev_name(a->device), bytes, uvae_last_error());
    }
    c->next = a->extra;
    a->extra = c;
    a->extra_used += n;
    return uvae__align(c->mem);
}

uvae_ctx *uvae_ctx_new_on(int device, size_t arena_bytes) {
    uvae_ctx *ctx;
    if (uvae__check_device(device, "uvae_ctx_new") != UVAE_OK) return NULL;
    if (!(ctx = (uvae_ctx *)UVAE_MALLOC(sizeof *ctx))) return (uvae_ctx *)uvae__failp(UVAE_ERR_NOMEM, "uvae_ctx_new: out of memory");
    memset(ctx, 0, sizeof *ctx);
    ctx->device = ctx->dev.device = device;
    ctx->host.device = UVAE_CPU;
    if (arena_bytes && uvae__arena_grow(device == UVAE_CPU ? &ctx->host : &ctx->dev, arena_bytes) != UVAE_OK) {
        uvae_ctx_free(ctx);
        return (uvae_ctx *)uvae__failp(UVAE_ERR_NOMEM, "uvae_ctx_new: cannot allocate a %zu-byte arena", arena_bytes);
    }
    if (!(ctx->one = (float *)uvae__dmalloc(device, sizeof(float)))) {
        uvae_ctx_free(ctx);
        return NULL;
    }
    {
        float one = 1.0f;
        uvae__dcopy(device, ctx->one, &one, sizeof one, 0);
    }
    uvae_rng_seed(&ctx->rng, 0);
    return ctx;
}
uvae_ctx *uvae_ctx_new(size_t arena_bytes) { return uvae_ctx_new_on(UVAE_CPU, arena_bytes); }

void uvae_ctx_free(uvae_ctx *ctx) {
    if (!ctx) return;
    uvae__arena_free_extra(&ctx->host);
    uvae__arena_free_extra(&ctx->dev);
    uvae__dfree(UVAE_CPU, ctx->host.mem);
    uvae__dfree(ctx->dev.device, ctx->dev.mem);
    uvae__dfree(ctx->device, ctx->scratch);
    uvae__dfree(ctx->device, ctx->one);
    UVAE_FREE(ctx->tape);
    UVAE_FREE(ctx);
}

void uvae_ctx_reset(uvae_ctx *ctx, int train) {
    uvae__arena_reset(&ctx->host);
    uvae__arena_reset(&ctx->dev);
    ctx->n_nodes = 0;
    ctx->grads = NULL;                        /* they lived in the arena */
    ctx->train = ctx->record = train != 0;
}
void uvae_ctx_set_record(uvae_ctx *ctx, int record) { ctx->record = record != 0; }
uvae_rng *uvae_ctx_rng(uvae_ctx *ctx) { return &ctx->rng; }
size_t uvae_ctx_arena_capacity(const uvae_ctx *ctx) { return ctx->device == UVAE_CPU ? ctx->host.cap : ctx->dev.cap; }
double uvae_ctx_flops(const uvae_ctx *ctx) { return ctx->flops; }
/* the direct method's flops of one product of a convolution (forward, data or weight gradient) */
static double uvae__conv_flops(const uvae__conv_shape *g) { return 2.0 * g->N * g->Co * g->Ho * g->Wo * g->Ci * g->k * g->k; }

/* host bookkeeping (tensor structs) and device values (activations, saved arrays) */
static void *uvae__host_alloc(uvae_ctx *ctx, size_t bytes) { return uvae__arena_alloc(&ctx->host, bytes); }
static void *uvae__dev_alloc(uvae_ctx *ctx, size_t bytes) {
    return uvae__arena_alloc(ctx->device == UVAE_CPU ? &ctx->host : &ctx->dev, bytes);
}
/* Arena floats not zeroed are filled with NaN on the CPU while uvae__cpu_poison(1) (for tests:
   an op that skips the zeroing must write every value it later reads or returns). */
static int uvae__switch(int *flag, int on) {   /* a path's on/off switch: set (on >= 0), return the old */
    int was = *flag;
    if (on >= 0) *flag = on != 0;
    return was;
}
static int uvae__poison_on = 0;
int uvae__cpu_poison(int on) { return uvae__switch(&uvae__poison_on, on); }
static float *uvae__arena_floats(uvae_ctx *ctx, size_t n, int zero) {
    float *p = (float *)uvae__dev_alloc(ctx, (n ? n : 1) * sizeof(float));
    if (p && zero) uvae__dzero(ctx->device, p, n * sizeof(float));
    else if (p && uvae__poison_on && ctx->device == UVAE_CPU)
        for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

/* A scratch buffer on the device for one op at a time (grows, never shrinks). */
static float *uvae__scratch(uvae_ctx *ctx, size_t n) {
    if (n > ctx->scratch_cap) {
        float *p;
        uvae__dfree(ctx->device, ctx->scratch);
        ctx->scratch = NULL;
        ctx->scratch_cap = 0;
        if (!(p = (float *)uvae__dmalloc(ctx->device, n * sizeof(float))))
            return (float *)uvae__failp(UVAE_ERR_NOMEM, "scratch: out of %s memory for %zu floats", uvae__dev_name(ctx->device), n);
        ctx->scratch = p;
        ctx->scratch_cap = n;
    }
    return ctx->scratch;
}

/* An op output's gradient before the backward reaches it: marked, not allocated (see uvae_backward). */
static float uvae__grad_mark;
#define UVAE__GRAD_PENDING (&uvae__grad_mark)

/* An activation: host struct + device values (zeroed when `zero`); `grad`: it will have a gradient
   (allocated by the backward). */
static uvae_tensor *uvae__new_ex(uvae_ctx *ctx, int ndim, const int *shape, int grad, int zero) {
    uvae_tensor *t = (uvae_tensor *)uvae__host_alloc(ctx, sizeof *t);
    if (!t) return NULL;
    if (uvae__set_shape(t, ndim, shape, "tensor") != UVAE_OK) return NULL;
    t->device = ctx->device;
    t->data = uvae__arena_floats(ctx, t->size, zero);
    if (!t->data) return NULL;
    t->grad = grad ? UVAE__GRAD_PENDING : NULL;
    return t;
}
static uvae_tensor *uvae__new(uvae_ctx *ctx, int ndim, const int *shape, int grad) { return uvae__new_ex(ctx, ndim, shape, grad, 1); }
uvae_tensor *uvae_ctx_tensor(uvae_ctx *ctx, int ndim, const int *shape) { return uvae__new(ctx, ndim, shape, 0); }

static int uvae__needs_grad(uvae_ctx *ctx, uvae_tensor *a, uvae_tensor *b, uvae_tensor *c) {
    return ctx->record && ((a && a->grad) || (b && b->grad) || (c && c->grad));
}

/* The output tensor of an op, with a gradient when any input has one and the tape records.
   Inputs must live on the context's device. */
static uvae_tensor *uvae__out_ex(uvae_ctx *ctx, int ndim, const int *shape, uvae_tensor *a, uvae_tensor *b, uvae_tensor *c, int zero) {
    uvae_tensor *in[3];
    in[0] = a; in[1] = b; in[2] = c;
    for (int i = 0; i < 3; i++)
        if (in[i] && in[i]->device != ctx->device)
            return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "op input %s is on the %s, the context on the %s",
                                              uvae__shape_str(in[i]), uvae__dev_name(in[i]->device), uvae__dev_name(ctx->device));
    return uvae__new_ex(ctx, ndim, shape, uvae__needs_grad(ctx, a, b, c), zero);
}
static uvae_tensor *uvae__out(uvae_ctx *ctx, int ndim, const int *shape, uvae_tensor *a, uvae_tensor *b, uvae_tensor *c) {
    return uvae__out_ex(ctx, ndim, shape, a, b, c, 1);
}
/* The same for an op whose CPU kernel writes every output value: on the CPU its values are not
   zeroed first (one pass less over the activation); its gradient still is. */
static uvae_tensor *uvae__out_full(uvae_ctx *ctx, int ndim, const int *shape, uvae_tensor *a, uvae_tensor *b, uvae_tensor *c) {
    return uvae__out_ex(ctx, ndim, shape, a, b, c, ctx->device != UVAE_CPU);
}

/* Append a node for `out` (only when out has a gradient). Returns the node or NULL. */
static uvae__node *uvae__record(uvae_ctx *ctx, uvae__backward_fn fn, uvae_tensor *out,
                                uvae_tensor *a, uvae_tensor *b, uvae_tensor *c) {
    uvae__node *n;
    if (!out->grad) return NULL;
    if (ctx->n_nodes == ctx->cap_nodes) {
        int cap = ctx->cap_nodes ? 2 * ctx->cap_nodes : 256;
        uvae__node *t = (uvae__node *)UVAE_REALLOC(ctx->tape, (size_t)cap * sizeof *t);
        if (!t) return (uvae__node *)uvae__failp(UVAE_ERR_NOMEM, "tape: out of memory");
        ctx->tape = t;
        ctx->cap_nodes = cap;
    }
    n = &ctx->tape[ctx->n_nodes++];
    memset(n, 0, sizeof *n);
    n->backward = fn;
    n->ctx = ctx;
    n->out = out;
    n->in[0] = a; n->in[1] = b; n->in[2] = c;
    return n;
}

/* [autograd] The tape runs backwards. An op output's gradient is allocated (zeroed) when the
   first of its consumers' backwards is about to add to it, and recycled once its producer's backward
   has read it: so only the gradients between those two points are held at a time, not every
   activation's (the UNet's peak memory falls by about a third). After uvae_backward the gradients
   of op outputs are gone (grad NULL); those of your own tensors and of the parameters stay. An
   output that no gradient reached skips its backward.
   On the CPU the loss is checked for NaN/Inf first; on the GPU it is not read back (no host sync
   per step): check the value when you copy it out. */
static int uvae__grad_need(uvae_ctx *ctx, uvae_tensor *t) {   /* a pending gradient: a zeroed buffer, the best fit of the free ones */
    uvae__gblock *best = NULL;
    if (!t || t->grad != UVAE__GRAD_PENDING) return UVAE_OK;
    for (uvae__gblock *b = ctx->grads; b; b = b->next)
        if (!b->used && b->n >= t->size && (!best || b->n < best->n)) best = b;
    if (!best) {                                                 /* none fits: a new one */
        if (!(best = (uvae__gblock *)uvae__host_alloc(ctx, sizeof *best)) || !(best->p = uvae__arena_floats(ctx, t->size, 0))) {
            t->grad = NULL;
            return uvae__fail(UVAE_ERR_NOMEM, "uvae_backward: out of %s memory for a %s gradient (%s)", uvae__dev_name(ctx->device),
                              uvae__shape_str(t), uvae_last_error());
        }
        best->n = t->size;
        best->next = ctx->grads;
        ctx->grads = best;
    }
    best->used = 1;
    t->grad = best->p;
    uvae__dzero(ctx->device, t->grad, t->size * sizeof(float));
    return UVAE_OK;
}
static void uvae__grad_done(uvae_ctx *ctx, uvae_tensor *t) {   /* its producer has run: the buffer is free again */
    for (uvae__gblock *b = ctx->grads; b; b = b->next)
        if (b->p == t->grad) { b->used = 0; break; }   /* each buffer is lent to one tensor at a time */
    t->grad = NULL;
}
int uvae_backward(uvae_ctx *ctx, uvae_tensor *loss) {
    int st;
    if (!loss) return UVAE_ERR_ARG;           /* the forward already said why */
    if ((st = uvae__gpu_status("uvae_backward (forward pass)")) != UVAE_OK) return st;
    if (loss->size != 1) return uvae__fail(UVAE_ERR_ARG, "uvae_backward: loss has %zu elements, want 1", loss->size);
    if (loss->device == UVAE_CPU && !isfinite(loss->data[0])) return uvae__fail(UVAE_ERR_NUMERIC, "uvae_backward: loss is %f", (double)loss->data[0]);
    if (!loss->grad) return uvae__fail(UVAE_ERR_ARG, "uvae_backward: loss has no gradient (eval mode, or nothing trainable)");
    if ((st = uvae__grad_need(ctx, loss)) != UVAE_OK) return st;
    uvae__dcopy(ctx->device, loss->grad, ctx->one, sizeof(float), 2);
    for (int i = ctx->n_nodes - 1; i >= 0; i--) {
        uvae__node *nd = &ctx->tape[i];
        if (nd->out->grad == UVAE__GRAD_PENDING) {   /* nothing flowed back to it */
            nd->out->grad = NULL;
            continue;
        }
        for (int k = 0; k < 3; k++)
            if ((st = uvae__grad_need(ctx, nd->in[k])) != UVAE_OK) return st;
        nd->backward(nd);
        uvae__grad_done(ctx, nd->out);
    }
    return uvae__gpu_status("uvae_backward");
}

/* ---------------------------------------------------------------------------------------------
   [params] */
void uvae_params_init(uvae_params *P) { memset(P, 0, sizeof *P); }

/* a tensor's slice of the slabs: its floats rounded up to 16 (64-byte aligned slices) */
static size_t uvae__slice(size_t n) { return (n + 15) & ~(size_t)15; }
uvae_tensor *uvae_params_add(uvae_params *P, int trainable, int init, float init_arg,
                             int ndim, const int *shape, const char *fmt, ...) {
    uvae_param *p;
    va_list ap;
    if (P->status) return NULL;
    if (P->data) { P->status = uvae__fail(UVAE_ERR_ARG, "uvae_params_add: registry already allocated"); return NULL; }
    if (P->n == P->cap) {
        int cap = P->cap ? 2 * P->cap : 64;
        uvae_param **a = (uvae_param **)UVAE_REALLOC(P->p, (size_t)cap * sizeof *a);
        if (!a) { P->status = uvae__fail(UVAE_ERR_NOMEM, "uvae_params_add: out of memory"); return NULL; }
        P->p = a;
        P->cap = cap;
    }
    p = (uvae_param *)UVAE_MALLOC(sizeof *p);
    if (!p) { P->status = uvae__fail(UVAE_ERR_NOMEM, "uvae_params_add: out of memory"); return NULL; }
    memset(p, 0, sizeof *p);
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    if (uvae__set_shape(&p->t, ndim, shape, p->name) != UVAE_OK) { UVAE_FREE(p); P->status = UVAE_ERR_ARG; return NULL; }
    p->trainable = trainable != 0;
    p->init = init;
    p->init_arg = init_arg;
    P->total += uvae__slice(p->t.size);
    P->p[P->n++] = p;
    return &p->t;
}

int uvae_params_alloc(uvae_params *P, uint64_t seed) {
    uvae_rng rng;
    size_t off = 0;
    if (P->status) return P->status;
    if (P->data) return uvae__fail(UVAE_ERR_ARG, "uvae_params_alloc: already allocated");
    P->data = (float *)UVAE_MALLOC((P->total ? P->total : 1) * sizeof(float));
    P->grad = (float *)UVAE_MALLOC((P->total ? P->total : 1) * sizeof(float));
    if (!P->data || !P->grad)
        return uvae__fail(UVAE_ERR_NOMEM, "uvae_params_alloc: out of memory for %zu parameters", P->total);
    memset(P->data, 0, P->total * sizeof(float));
    memset(P->grad, 0, P->total * sizeof(float));
    /* slices: the trainable parameters first, in registration order, then the buffers */
    for (int pass = 1; pass >= 0; pass--) {
        for (int i = 0; i < P->n; i++)
            if (P->p[i]->trainable == pass) {
                P->p[i]->offset = off;
                off += uvae__slice(P->p[i]->t.size);
            }
        if (pass) P->ntrain = off;
    }
    uvae_rng_seed(&rng, seed);
    for (int i = 0; i < P->n; i++) {
        uvae_param *p = P->p[i];
        p->t.data = P->data + p->offset;
        p->t.grad = p->trainable ? P->grad + p->offset : NULL;
        for (size_t j = 0; j < p->t.size; j++) {
            float v = 0;
            switch (p->init) {
            case UVAE_INIT_ONE: v = 1; break;
            case UVAE_INIT_UNIFORM: v = p->init_arg * (2 * uvae_rng_uniform(&rng) - 1); break;
            case UVAE_INIT_NORMAL: v = p->init_arg * uvae_rng_normal(&rng); break;
            default: break;
            }
            p->t.data[j] = v;
        }
    }
    return UVAE_OK;
}

void uvae_params_free(uvae_params *P) {
    for (int i = 0; i < P->n; i++) UVAE_FREE(P->p[i]);
    UVAE_FREE(P->p);
    uvae__dfree(P->device, P->data);
    uvae__dfree(P->device, P->grad);
    memset(P, 0, sizeof *P);
}
void uvae_params_zero_grad(uvae_params *P) {
    if (P->grad) uvae__dzero(P->device, P->grad, P->total * sizeof(float));
}

/* Move both slabs: copy the values, zero the gradients, repoint every tensor. */
int uvae_params_to(uvae_params *P, int device) {
    float *data, *grad;
    if (!P->data) return uvae__fail(UVAE_ERR_ARG, "uvae_params_to: parameters not allocated");
    if (device == P->device) return UVAE_OK;
    if (uvae__check_device(device, "uvae_params_to") != UVAE_OK) return UVAE_ERR_CUDA;
    data = (float *)uvae__dmalloc(device, P->total * sizeof(float));
    grad = (float *)uvae__dmalloc(device, P->total * sizeof(float));
    if (!data || !grad) {
        uvae__dfree(device, data);
        uvae__dfree(device, grad);
        return uvae__fail(UVAE_ERR_NOMEM, "uvae_params_to: out of %s memory for %zu parameters", uvae__dev_name(device), P->total);
    }
    if (device == UVAE_CPU) uvae__dcopy(P->device, data, P->data, P->total * sizeof(float), 1);
    else uvae__dcopy(device, data, P->data, P->total * sizeof(float), 0);
    uvae__dzero(device, grad, P->total * sizeof(float));
    uvae__dfree(P->device, P->data);
    uvae__dfree(P->device, P->grad);
    P->data = data;
    P->grad = grad;
    P->device = device;
    for (int i = 0; i < P->n; i++) {
        uvae_param *p = P->p[i];
        p->t.device = device;
        p->t.data = data + p->offset;
        p->t.grad = p->trainable ? grad + p->offset : NULL;
    }
    return uvae__gpu_status("uvae_params_to");
}
uvae_param *uvae_params_find(const uvae_params *P, const char *name) {
    for (int i = 0; i < P->n; i++)
        if (strcmp(P->p[i]->name, name) == 0) return P->p[i];
    return NULL;
}
size_t uvae_params_count(const uvae_params *P) {
    size_t n = 0;
    for (int i = 0; i < P->n; i++)
        if (P->p[i]->trainable) n += P->p[i]->t.size;
    return n;
}
/* A model's last init step: allocate and initialise its registry, or free it and say why. */
static int uvae__params_finish(uvae_params *P, uint64_t seed) {
    int st = uvae_params_alloc(P, seed);
    if (st != UVAE_OK) {
        st = P->status ? P->status : st;
        uvae_params_free(P);
    }
    return st;
}

/* ---------------------------------------------------------------------------------------------
   [ops/gemm] C[M,N] (+)= op(A)[M,K] @ op(B)[K,N], row-major, op = transpose when ta/tb.
   A packed, cache-blocked GEMM in the BLIS loop order (Goto & van de Geijn):
     for each NC-wide block of columns jc:  for each KC-deep slice pc:   pack B[pc, jc] -> Bp
       for each MC-tall block of rows ic:  pack A[ic, pc] -> Ap
         for each MR x NR tile of C in the block: C_tile (+)= Ap_panel @ Bp_panel  (the micro-kernel)
   Packed layouts: Ap is MR-row panels, Ap[panel][k][0..MR); Bp is NR-column panels,
   Bp[panel][k][0..NR); edges are zero-padded, so the micro-kernel always computes a whole tile.
   The micro-kernel holds the 12 x 32 tile in registers: 24 zmm (AVX-512) or, in four passes of
   6 x 16, 12 ymm (AVX2 + FMA); a plain C kernel serves other CPUs. It is chosen once from what the
   CPU supports (uvae__cpu_kernel below overrides that, for tests).
   Threads split the packing and the tiles; every element of C is summed over k in a fixed order
   (slices in order, k in order inside a slice) whatever the thread count: results are
   deterministic for a given build and CPU. Small products skip the packing (plain loops). */
#define UVAE__MR 12
#define UVAE__NR 32
#define UVAE__KC 256
#define UVAE__MC 144                /* a multiple of MR: Ap (MC x KC) stays in L2 */
#define UVAE__NC 2048               /* a multiple of NR: Bp (KC x NC) stays in L3 */
#define UVAE__DIRECT_M (4 * UVAE__MR) /* up to this many rows of A, B is read in place, not packed */
static size_t uvae__round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }   /* to whole panels */
/* a float's bits and back: selects on the bits stay branch-free where GCC (-ftrapping-math) would
   keep a float select as a branch, which does not vectorise and mispredicts on random signs */
static uint32_t uvae__fbits(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return u; }
static float uvae__bitsf(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }
static inline float uvae__fselect(uint32_t mask, float a, float b) {   /* mask all ones: a, zero: b */
    return uvae__bitsf((uvae__fbits(a) & mask) | (uvae__fbits(b) & ~mask));
}

/* tile (+)= A @ B over K, written to C (ldc): acc 0 stores, 1 adds. Only the tile's first `rows`
   rows (1..MR) are needed: the kernel computes and writes them rounded up to a multiple of 4
   (AVX-512) or 6 (AVX2), or exactly (generic), so a ragged last panel costs what its rows do,
   not a whole tile (64 output channels: 60 + 4 rows, not 72); whole tiles pass MR. Row k of B
   (NR floats) is at B + boff[k]: k * NR when packed, k * ldb when B is read in place, and for the
   implicit convolution ([ops/conv kernels]) wherever that row of im2col(x) lies in the padded x.
   A is a packed MR-row panel, A(r, k) = A[k * MR + r], when aoff is NULL; otherwise it is read in
   place, A(r, k) = A[aoff[r] + k] (the implicit convolution's weight gradient), or A[aoff[r] +
   koff[k]] when koff is given (the direct convolution: r an output pixel, k a tap of its window). */
typedef void (*uvae__ukr_fn)(int K, int rows, const float *A, const ptrdiff_t *aoff, const ptrdiff_t *koff,
                             const float *B, const ptrdiff_t *boff, float *C, int ldc, int acc);
/* the rows of the MR-row panel ip that lie inside M rows */
static int uvae__panel_rows(int M, int ip) { return M - ip * UVAE__MR < UVAE__MR ? M - ip * UVAE__MR : UVAE__MR; }
#define UVAE__AP(r) A[r]                 /* A(r, k): packed (A advances by MR per k) ... */
#define UVAE__AI(r) A[aoff[r] + k]       /* ... or in place */
#define UVAE__AK(r) Ak[aoff[r]]          /* ... or in place at A + koff[k] */

static void uvae__ukr_generic(int K, int rows, const float *A, const ptrdiff_t *aoff, const ptrdiff_t *koff,
                              const float *B, const ptrdiff_t *boff, float *C, int ldc, int acc) {
    float t[UVAE__MR][UVAE__NR];
    memset(t, 0, sizeof t);
    for (int k = 0; k < K; k++) {
        const float *Bp = B + boff[k];
        for (int r = 0; r < rows; r++) {
            float a = !aoff ? A[k * UVAE__MR + r] : koff ? A[aoff[r] + koff[k]] : A[aoff[r] + k];
            for (int j = 0; j < UVAE__NR; j++) t[r][j] += a * Bp[j];
        }
    }
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < UVAE__NR; j++) C[(size_t)r * ldc + j] = acc ? C[(size_t)r * ldc + j] + t[r][j] : t[r][j];
}

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(UVAE_NO_SIMD)
#define UVAE__X86 1
#include <immintrin.h>
/* AVX-512: row r of the tile is c<r>0 (columns 0..15) and c<r>1 (16..31). UVAE__ROWS<n>(X, AV)
   lists rows 0..n-1 as X(r, AV); one step of k, with A(r, k) given by AV(r): */
#define UVAE__ROWS4(X, AV) X(0, AV) X(1, AV) X(2, AV) X(3, AV)
#define UVAE__ROWS8(X, AV) UVAE__ROWS4(X, AV) X(4, AV) X(5, AV) X(6, AV) X(7, AV)
#define UVAE__ROWS12(X, AV) UVAE__ROWS8(X, AV) X(8, AV) X(9, AV) X(10, AV) X(11, AV)
#define UVAE__D512(r, unused) c##r##0 = _mm512_setzero_ps(), c##r##1 = _mm512_setzero_ps(),
#define UVAE__T512(r, AV) a = _mm512_set1_ps(AV(r)); c##r##0 = _mm512_fmadd_ps(a, b0, c##r##0); c##r##1 = _mm512_fmadd_ps(a, b1, c##r##1);
#define UVAE__S512(r, unused) { float *c_ = C + (size_t)(r) * ldc;                                              \
        if (acc) { c##r##0 = _mm512_add_ps(c##r##0, _mm512_loadu_ps(c_)); c##r##1 = _mm512_add_ps(c##r##1, _mm512_loadu_ps(c_ + 16)); } \
        _mm512_storeu_ps(c_, c##r##0); _mm512_storeu_ps(c_ + 16, c##r##1); }
/* the first n rows of the tile (ROWS = UVAE__ROWS<n>) */
#define UVAE__UKR512(ROWS) {                                                                                    \
        __m512 ROWS(UVAE__D512, 0) a, b0, b1;                                                                   \
        if (!aoff) for (int k = 0; k < K; k++, A += UVAE__MR) {                                                  \
                b0 = _mm512_loadu_ps(B + boff[k]); b1 = _mm512_loadu_ps(B + boff[k] + 16); ROWS(UVAE__T512, UVAE__AP) } \
        else if (!koff) for (int k = 0; k < K; k++) {                                                             \
                b0 = _mm512_loadu_ps(B + boff[k]); b1 = _mm512_loadu_ps(B + boff[k] + 16); ROWS(UVAE__T512, UVAE__AI) } \
        else for (int k = 0; k < K; k++) {                                                                        \
                const float *Ak = A + koff[k];                                                                    \
                b0 = _mm512_loadu_ps(B + boff[k]); b1 = _mm512_loadu_ps(B + boff[k] + 16); ROWS(UVAE__T512, UVAE__AK) } \
        ROWS(UVAE__S512, 0) }
__attribute__((target("avx512f")))
static void uvae__ukr_avx512(int K, int rows, const float *A, const ptrdiff_t *aoff, const ptrdiff_t *koff,
                             const float *B, const ptrdiff_t *boff, float *C, int ldc, int acc) {
    for (int r = 0; r < rows; r++) {   /* the tile's lines on their way for writing while the products run */
        UVAE__PREFETCHW(C + (size_t)r * ldc);
        UVAE__PREFETCHW(C + (size_t)r * ldc + 16);
    }
    if (rows > 8) UVAE__UKR512(UVAE__ROWS12)
    else if (rows > 4) UVAE__UKR512(UVAE__ROWS8)
    else UVAE__UKR512(UVAE__ROWS4)
}
/* AVX2: the tile in up to four 6 x 16 passes (rows r0..r0+5, columns j0..j0+15), 12 ymm accumulators */
#define UVAE__T256(r, AV) a = _mm256_set1_ps(AV(r0 + r)); c##r##0 = _mm256_fmadd_ps(a, b0, c##r##0); c##r##1 = _mm256_fmadd_ps(a, b1, c##r##1);
#define UVAE__K256(AV) { b0 = _mm256_loadu_ps(B + boff[k] + j0); b1 = _mm256_loadu_ps(B + boff[k] + j0 + 8);         \
        UVAE__T256(0, AV) UVAE__T256(1, AV) UVAE__T256(2, AV) UVAE__T256(3, AV) UVAE__T256(4, AV) UVAE__T256(5, AV) }
#define UVAE__S256(r) do { float *c_ = C + (size_t)(r0 + r) * ldc + j0;                                        \
        if (acc) { c##r##0 = _mm256_add_ps(c##r##0, _mm256_loadu_ps(c_)); c##r##1 = _mm256_add_ps(c##r##1, _mm256_loadu_ps(c_ + 8)); } \
        _mm256_storeu_ps(c_, c##r##0); _mm256_storeu_ps(c_ + 8, c##r##1); } while (0)
__attribute__((target("avx2,fma")))
static void uvae__ukr_avx2(int K, int rows, const float *A0, const ptrdiff_t *aoff, const ptrdiff_t *koff,
                           const float *B, const ptrdiff_t *boff, float *C, int ldc, int acc) {
    for (int r0 = 0; r0 < rows; r0 += 6)
        for (int j0 = 0; j0 < UVAE__NR; j0 += 16) {
            __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
                   c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, a, b0, b1;
            const float *A = A0;
            if (!aoff) for (int k = 0; k < K; k++, A += UVAE__MR) UVAE__K256(UVAE__AP)
            else if (!koff) for (int k = 0; k < K; k++) UVAE__K256(UVAE__AI)
            else for (int k = 0; k < K; k++) { const float *Ak = A + koff[k]; UVAE__K256(UVAE__AK) }
            UVAE__S256(0); UVAE__S256(1); UVAE__S256(2); UVAE__S256(3); UVAE__S256(4); UVAE__S256(5);
        }
}
#endif

/* The micro-kernel in use. choice: 0 the best this CPU supports, 1 generic, 2 AVX2, 3 AVX-512,
   -1 keep the current one. Returns the kernel now in use (1..3), or 0 (nothing changed) when the
   CPU lacks the one asked for. Not thread-safe: choose before training. */
static int uvae__ukr_kind;
static uvae__ukr_fn uvae__ukr;
int uvae__cpu_kernel(int choice) {
    int have2 = 0, have3 = 0;
#ifdef UVAE__X86
    __builtin_cpu_init();
    have2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    have3 = __builtin_cpu_supports("avx512f");
#endif
    if (choice < 0 && uvae__ukr) return uvae__ukr_kind;
    if (choice <= 0) choice = have3 ? 3 : have2 ? 2 : 1;
    if ((choice == 2 && !have2) || (choice == 3 && !have3) || choice > 3) return 0;
    uvae__ukr_kind = choice;
    uvae__ukr = uvae__ukr_generic;
#ifdef UVAE__X86
    if (choice == 2) uvae__ukr = uvae__ukr_avx2;
    if (choice == 3) uvae__ukr = uvae__ukr_avx512;
#endif
    return choice;
}

/* Ap <- op(A)[i0.., k0..], mc x kc, as MR-row panels (rows past mc are zeros): panel p, then all */
static void uvae__pack_a_panel(int ta, const float *A, int lda, int i0, int k0, int mc, int kc, float *Ap, int p) {
    float *dst = Ap + (size_t)p * kc * UVAE__MR;
    int r0 = p * UVAE__MR, rows = mc - r0 < UVAE__MR ? mc - r0 : UVAE__MR;
    for (int k = 0; k < kc; k++, dst += UVAE__MR) {
        int r = 0;
        if (ta) { const float *src = A + (size_t)(k0 + k) * lda + i0 + r0; for (; r < rows; r++) dst[r] = src[r]; }
        else for (; r < rows; r++) dst[r] = A[(size_t)(i0 + r0 + r) * lda + k0 + k];
        for (; r < UVAE__MR; r++) dst[r] = 0;
    }
}
static void uvae__pack_a(int ta, const float *A, int lda, int i0, int k0, int mc, int kc, float *Ap) {
    int p;
    UVAE__OMP(omp for schedule(static))
    for (p = 0; p < (mc + UVAE__MR - 1) / UVAE__MR; p++) uvae__pack_a_panel(ta, A, lda, i0, k0, mc, kc, Ap, p);
}
#ifdef UVAE__X86
/* Transposes in registers, 4 vectors at a time in three steps (UVAE__X_PAIRS: pairs of rows
   interleaved; UVAE__X_QUADS: pairs of pairs; UVAE__X_LANES: the 128-bit lanes gathered), spelled
   out on named vectors: at -O2 GCC keeps __m512 arrays indexed in loops in memory. */
#define UVAE__X_PAIRS(a, b, lo, hi) (lo = _mm512_unpacklo_ps(a, b), hi = _mm512_unpackhi_ps(a, b))
#define UVAE__X_QUADS(a, b, c, d, o0, o1, o2, o3)                                                                     \
    (o0 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(c))),                             \
     o1 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(c))),                             \
     o2 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(b), _mm512_castps_pd(d))),                             \
     o3 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(b), _mm512_castps_pd(d))))
/* o_i = 128-bit lane i of a, b, c, d (a 4 x 4 transpose of lanes) */
#define UVAE__X_LANES(a, b, c, d, o0, o1, o2, o3)                                                                     \
    do {                                                                                                              \
        const __m512 p0_ = _mm512_shuffle_f32x4(a, b, 0x44), q0_ = _mm512_shuffle_f32x4(c, d, 0x44);                 \
        const __m512 p1_ = _mm512_shuffle_f32x4(a, b, 0xEE), q1_ = _mm512_shuffle_f32x4(c, d, 0xEE);                 \
        o0 = _mm512_shuffle_f32x4(p0_, q0_, 0x88); o1 = _mm512_shuffle_f32x4(p0_, q0_, 0xDD);                         \
        o2 = _mm512_shuffle_f32x4(p1_, q1_, 0x88); o3 = _mm512_shuffle_f32x4(p1_, q1_, 0xDD);                         \
    } while (0)
/* columns k, k + 4, k + 8, k + 12 (those < kn) of a 16 x 16 block: lane L of a, b, c, d holds column
   4L + k of rows 0..3, 4..7, 8..11, 12..15 */
__attribute__((target("avx512f")))
static inline void uvae__t16_cols(__m512 a, __m512 b, __m512 c, __m512 d, int k, int kn, __mmask16 jm, float *dst, ptrdiff_t ds) {
    __m512 o0, o1, o2, o3;
    UVAE__X_LANES(a, b, c, d, o0, o1, o2, o3);
    if (k < kn) _mm512_mask_storeu_ps(dst + k * ds, jm, o0);
    if (k + 4 < kn) _mm512_mask_storeu_ps(dst + (k + 4) * ds, jm, o1);
    if (k + 8 < kn) _mm512_mask_storeu_ps(dst + (k + 8) * ds, jm, o2);
    if (k + 12 < kn) _mm512_mask_storeu_ps(dst + (k + 12) * ds, jm, o3);
}
/* dst[k * ds + j] = src[j * ls + k] for j < jn, k < kn (both <= 16): a 16 x 16 block (ds < 0: dst's
   rows in reverse order) */
__attribute__((target("avx512f")))
static void uvae__transpose16_avx512(const float *src, size_t ls, int kn, int jn, float *dst, ptrdiff_t ds) {
    const __mmask16 km = (__mmask16)((1u << kn) - 1), jm = (__mmask16)((1u << jn) - 1);
    __m512 r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15;
    __m512 t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15;
#define UVAE__T16_ROW(j) ((j) < jn ? _mm512_maskz_loadu_ps(km, src + (size_t)(j) * ls) : _mm512_setzero_ps())
    /* lane L of t(j): r(j)[4L], r(j+1)[4L], r(j)[4L+1], r(j+1)[4L+1] (j even; t(j+1) the same from 4L+2) */
    UVAE__X_PAIRS(UVAE__T16_ROW(0), UVAE__T16_ROW(1), t0, t1);
    UVAE__X_PAIRS(UVAE__T16_ROW(2), UVAE__T16_ROW(3), t2, t3);
    UVAE__X_PAIRS(UVAE__T16_ROW(4), UVAE__T16_ROW(5), t4, t5);
    UVAE__X_PAIRS(UVAE__T16_ROW(6), UVAE__T16_ROW(7), t6, t7);
    UVAE__X_PAIRS(UVAE__T16_ROW(8), UVAE__T16_ROW(9), t8, t9);
    UVAE__X_PAIRS(UVAE__T16_ROW(10), UVAE__T16_ROW(11), t10, t11);
    UVAE__X_PAIRS(UVAE__T16_ROW(12), UVAE__T16_ROW(13), t12, t13);
    UVAE__X_PAIRS(UVAE__T16_ROW(14), UVAE__T16_ROW(15), t14, t15);
#undef UVAE__T16_ROW
    /* lane L of r(i + c): column 4L + c of rows i .. i+3 */
    UVAE__X_QUADS(t0, t1, t2, t3, r0, r1, r2, r3);
    UVAE__X_QUADS(t4, t5, t6, t7, r4, r5, r6, r7);
    UVAE__X_QUADS(t8, t9, t10, t11, r8, r9, r10, r11);
    UVAE__X_QUADS(t12, t13, t14, t15, r12, r13, r14, r15);
    uvae__t16_cols(r0, r4, r8, r12, 0, kn, jm, dst, ds);
    uvae__t16_cols(r1, r5, r9, r13, 1, kn, jm, dst, ds);
    uvae__t16_cols(r2, r6, r10, r14, 2, kn, jm, dst, ds);
    uvae__t16_cols(r3, r7, r11, r15, 3, kn, jm, dst, ds);
}
/* dst[k * ds + j] = src[j * ls + k] for j < m, k < n: any block, 16 x 16 at a time */
__attribute__((target("avx512f")))
static void uvae__transpose_avx512(const float *src, size_t ls, int m, int n, float *dst, ptrdiff_t ds) {
    for (int kb = 0; kb < n; kb += 16)
        for (int jb = 0; jb < m; jb += 16)
            uvae__transpose16_avx512(src + (size_t)jb * ls + kb, ls, n - kb < 16 ? n - kb : 16, m - jb < 16 ? m - jb : 16,
                                     dst + kb * ds + jb, ds);
}
#endif
/* Bp <- op(B)[k0.., j0..], kc x nc, as NR-column panels (columns past nc are zeros): panel p, then all */
static void uvae__pack_b_panel(int tb, const float *B, int ldb, int k0, int j0, int kc, int nc, float *Bp, int p) {
    float *dst = Bp + (size_t)p * kc * UVAE__NR;
    int c0 = p * UVAE__NR, cols = nc - c0 < UVAE__NR ? nc - c0 : UVAE__NR;
#ifdef UVAE__X86
    if (tb && cols == UVAE__NR && uvae__ukr_kind == 3) {             /* a transpose, in registers */
        uvae__transpose_avx512(B + (size_t)(j0 + c0) * ldb + k0, (size_t)ldb, UVAE__NR, kc, dst, UVAE__NR);
        return;
    }
#endif
    if (tb && cols == UVAE__NR) {
        /* a transpose: in 8 x 8 blocks, so reads run along B's rows and writes stay in a few lines */
        for (int kb = 0; kb < kc; kb += 8) {
            int ke = kc - kb < 8 ? kc - kb : 8;
            for (int jb = 0; jb < UVAE__NR; jb += 8)
                for (int j = jb; j < jb + 8; j++) {
                    const float *src = B + (size_t)(j0 + c0 + j) * ldb + k0 + kb;
                    for (int k = 0; k < ke; k++) dst[(size_t)(kb + k) * UVAE__NR + j] = src[k];
                }
        }
        return;
    }
    for (int k = 0; k < kc; k++, dst += UVAE__NR) {
        int j = 0;
        if (!tb) { const float *src = B + (size_t)(k0 + k) * ldb + j0 + c0; for (; j < cols; j++) dst[j] = src[j]; }
        else for (; j < cols; j++) dst[j] = B[(size_t)(j0 + c0 + j) * ldb + k0 + k];
        for (; j < UVAE__NR; j++) dst[j] = 0;
    }
}
static void uvae__pack_b(int tb, const float *B, int ldb, int k0, int j0, int kc, int nc, float *Bp) {
    int p;
    UVAE__OMP(omp for schedule(static))
    for (p = 0; p < (nc + UVAE__NR - 1) / UVAE__NR; p++) uvae__pack_b_panel(tb, B, ldb, k0, j0, kc, nc, Bp, p);
}

/* The plain loops, for products too small to pay for the packing. */
static int uvae__gemm_is_small(int M, int N, int K) { return K <= 0 || (double)M * N * K < 32768.0; }
static void uvae__gemm_small(int ta, int tb, int M, int N, int K, const float *A, int lda,
                             const float *B, int ldb, float *C, int ldc, int accumulate) {
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (!accumulate) memset(c, 0, (size_t)N * sizeof(float));
        for (int k = 0; k < K; k++) {
            float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
            if (!tb) { const float *b = B + (size_t)k * ldb; for (int j = 0; j < N; j++) c[j] += a * b[j]; }
            else for (int j = 0; j < N; j++) c[j] += a * B[(size_t)j * ldb + k];
        }
    }
}

/* A skinny product (one block of M and of N, several KC slices of K, few tiles in each: the fully
   connected layers, weight gradients with few taps) runs in parallel over its slices rather than
   over each slice's tiles (three barriers a slice): each thread packs its slices' B into its own
   room (P: pb floats a thread), reads A in place (few rows: one block of M, each value used by
   the slice's few B panels; packing it cost as much as the products: 177 -> 104 us for fc_mu's
   128 x 3136 @ 3136 x 16 on 2 threads) and writes their tiles to the slice's partial product
   (part: a [nap*MR, nbp*NR] block a slice), and the partials are then added into C slice after
   slice, as the loop in uvae__cpu_gemm adds its tiles: the same bits, for any thread count. */
static int uvae__gemm_split_k(int M, int N, int K) {
    int tiles = (M + UVAE__MR - 1) / UVAE__MR * ((N + UVAE__NR - 1) / UVAE__NR);
    return UVAE__THREADS() > 1 && M <= UVAE__MC && N <= UVAE__NC && K >= 2 * UVAE__KC && tiles < 16 * UVAE__THREADS();
}
static size_t uvae__gemm_split_room(int M, int N, int K, size_t *pb, size_t *tile) {
    *pb = uvae__round_up(N, UVAE__NR) * UVAE__KC;
    *tile = uvae__round_up(M, UVAE__MR) * uvae__round_up(N, UVAE__NR);
    return (size_t)UVAE__THREADS() * *pb + (size_t)((K + UVAE__KC - 1) / UVAE__KC) * *tile;
}
static void uvae__gemm_split(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                             int ldc, int accumulate, float *P) {
    const int nsl = (K + UVAE__KC - 1) / UVAE__KC, nap = (M + UVAE__MR - 1) / UVAE__MR, nbp = (N + UVAE__NR - 1) / UVAE__NR;
    const int ldt = nbp * UVAE__NR;
    size_t pb, tile, room = uvae__gemm_split_room(M, N, K, &pb, &tile);
    float *part = P + (room - (size_t)nsl * tile);                     /* after every thread's pb */
    ptrdiff_t offp[UVAE__KC];
    uvae__ukr_fn ukr = uvae__ukr;
    int sl, i;
    ptrdiff_t aoff[UVAE__MC];                                          /* A read in place: A(i, k) = A[aoff[i] + koff[k]] */
    for (int k = 0; k < UVAE__KC; k++) offp[k] = (ptrdiff_t)k * UVAE__NR;
    for (i = 0; i < nap * UVAE__MR; i++) aoff[i] = (ptrdiff_t)(i < M ? i : M - 1) * (ta ? 1 : lda);   /* rows past M: computed, never read */
    UVAE__OMP(omp parallel for schedule(static))
    for (sl = 0; sl < nsl; sl++) {
        const int pc = sl * UVAE__KC, kc = K - pc < UVAE__KC ? K - pc : UVAE__KC;
        float *Bp = P + (size_t)UVAE__THREAD() * pb, *t = part + (size_t)sl * tile;
        ptrdiff_t koff[UVAE__KC];
        for (int k = 0; k < kc; k++) koff[k] = (ptrdiff_t)(pc + k) * (ta ? lda : 1);
        for (int p = 0; p < nbp; p++) uvae__pack_b_panel(tb, B, ldb, pc, 0, kc, N, Bp, p);
        for (int jp = 0; jp < nbp; jp++)
            for (int ip = 0; ip < nap; ip++)
                ukr(kc, uvae__panel_rows(M, ip), A, aoff + ip * UVAE__MR, koff, Bp + (size_t)jp * kc * UVAE__NR, offp,
                    t + (size_t)ip * UVAE__MR * ldt + jp * UVAE__NR, ldt, 0);
    }
    UVAE__OMP(omp parallel for schedule(static) if ((double)M * N * nsl > 1e5))
    for (i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        for (int s = 0; s < nsl; s++) {
            const float *t = part + (size_t)s * tile + (size_t)i * ldt;
            if (s == 0 && !accumulate) memcpy(c, t, (size_t)N * sizeof(float));
            else for (int j = 0; j < N; j++) c[j] += t[j];
        }
    }
}
static void uvae__cpu_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda,
                           const float *B, int ldb, float *C, int ldc, int accumulate) {
    static UVAE__TLS float *buf;      /* Ap then Bp: grown once, kept for the thread's lifetime */
    static UVAE__TLS size_t buf_cap;
    size_t need = (size_t)UVAE__MC * UVAE__KC + (size_t)UVAE__KC * UVAE__NC + 16;
    ptrdiff_t offp[UVAE__KC], offd[UVAE__KC];   /* where row k of a B panel is: packed, in place */
    float *Ap, *Bp;
    int split;
    if (M <= 0 || N <= 0) return;
    if (uvae__gemm_is_small(M, N, K)) {
        if (K <= 0) { if (!accumulate) for (int i = 0; i < M; i++) memset(C + (size_t)i * ldc, 0, (size_t)N * sizeof(float)); return; }
        uvae__gemm_small(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
        return;
    }
    if (ta && !tb && N <= UVAE__DIRECT_M && M >= 8 * N && !uvae__gemm_split_k(N, M, K)) {
        /* tall and narrow, A^T B (a dense layer's weight gradient dy^T x: M outputs, N inputs):
           its transpose B^T A has few rows, so its B (A: dy, M wide) is read in place, not packed
           and transposed panel by panel; then C (+)= T^T. Measured for the unsplit product only:
           where the transpose would be split over K, the plain path stays */
        static UVAE__TLS float *tb_buf;
        static UVAE__TLS size_t tb_cap;
        size_t n = (size_t)M * N;
        if (tb_cap < n) {
            float *p = (float *)UVAE_REALLOC(tb_buf, n * sizeof(float));
            if (p) { tb_buf = p; tb_cap = n; }
        }
        if (tb_cap >= n) {
            float *T = tb_buf;
            int i;
            uvae__cpu_gemm(1, 0, N, M, K, B, ldb, A, lda, T, M, 0);
            UVAE__OMP(omp parallel for schedule(static) if ((double)M * N > UVAE__PAR_MIN))
            for (i = 0; i < M; i++)
                for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = accumulate ? C[(size_t)i * ldc + j] + T[(size_t)j * M + i] : T[(size_t)j * M + i];
            return;
        }
    }
    if ((split = uvae__gemm_split_k(M, N, K))) {
        size_t pb, tile, room = uvae__gemm_split_room(M, N, K, &pb, &tile) + 16;
        if (room > need) need = room;
    }
    if (buf_cap < need) {
        float *p = (float *)UVAE_REALLOC(buf, need * sizeof(float));
        if (!p) { uvae__gemm_small(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate); return; }  /* slow but right */
        buf = p;
        buf_cap = need;
    }
    if (!uvae__ukr) uvae__cpu_kernel(0);
    Ap = (float *)uvae__align(buf);
    if (split) { uvae__gemm_split(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, accumulate, Ap); return; }
    Bp = Ap + (size_t)UVAE__MC * UVAE__KC;
    for (int k = 0; k < UVAE__KC; k++) { offp[k] = (ptrdiff_t)k * UVAE__NR; offd[k] = (ptrdiff_t)k * ldb; }
    UVAE__OMP(omp parallel if ((double)M * N * K > 1e6))
    {
        uvae__ukr_fn ukr = uvae__ukr;
        /* few rows of A: each B panel serves few tiles, so read B in place rather than pack it
           (its whole panels; the ragged last one is still packed) */
        int direct = !tb && M <= UVAE__DIRECT_M;
        for (int jc = 0; jc < N; jc += UVAE__NC) {
            int nc = N - jc < UVAE__NC ? N - jc : UVAE__NC, nbp = (nc + UVAE__NR - 1) / UVAE__NR, nfull = nc / UVAE__NR;
            for (int pc = 0; pc < K; pc += UVAE__KC) {
                int kc = K - pc < UVAE__KC ? K - pc : UVAE__KC, acc = accumulate || pc > 0;
                if (!direct) uvae__pack_b(tb, B, ldb, pc, jc, kc, nc, Bp);                  /* ends with a barrier */
                else if (nfull < nbp) uvae__pack_b(tb, B, ldb, pc, jc + nfull * UVAE__NR, kc, nc - nfull * UVAE__NR, Bp);
                for (int ic = 0; ic < M; ic += UVAE__MC) {
                    int mc = M - ic < UVAE__MC ? M - ic : UVAE__MC, nap = (mc + UVAE__MR - 1) / UVAE__MR, t;
                    uvae__pack_a(ta, A, lda, ic, pc, mc, kc, Ap);         /* ends with a barrier */
                    UVAE__OMP(omp for schedule(static))
                    for (t = 0; t < nbp * nap; t++) {                     /* tiles: B panel outer, A panel inner */
                        int jp = t / nap, ip = t % nap, i0 = ic + ip * UVAE__MR, j0 = jc + jp * UVAE__NR;
                        int rows = M - i0 < UVAE__MR ? M - i0 : UVAE__MR, cols = N - j0 < UVAE__NR ? N - j0 : UVAE__NR;
                        const float *a = Ap + (size_t)ip * kc * UVAE__MR, *b = Bp + (size_t)jp * kc * UVAE__NR;
                        float *c = C + (size_t)i0 * ldc + j0;
                        const ptrdiff_t *bo = offp;
                        if (direct) {
                            if (jp < nfull) { b = B + (size_t)pc * ldb + j0; bo = offd; }
                            else b = Bp;                                      /* the packed ragged panel */
                        }
                        if (rows == UVAE__MR && cols == UVAE__NR) ukr(kc, UVAE__MR, a, NULL, NULL, b, bo, c, ldc, acc);
                        else {                                            /* an edge tile: via a whole one */
                            float tile[UVAE__MR * UVAE__NR];
                            ukr(kc, rows, a, NULL, NULL, b, bo, tile, UVAE__NR, 0);
                            for (int r = 0; r < rows; r++)
                                for (int j = 0; j < cols; j++) c[(size_t)r * ldc + j] = acc ? c[(size_t)r * ldc + j] + tile[r * UVAE__NR + j] : tile[r * UVAE__NR + j];
                        }
                    }
                }
            }
        }
    }
}

/* the outputs ow in [lo, hi) of a row of Wo whose tap kj falls inside the row of W inputs:
   0 <= ow*s - p + kj < W (lo <= hi <= Wo) */
static void uvae__tap_range(int W, int Wo, int s, int p, int kj, int *lo, int *hi) {
    int l = p - kj > 0 ? (p - kj + s - 1) / s : 0, h = W + p - kj > 0 ? (W + p - kj - 1) / s + 1 : 0;
    *lo = l < Wo ? l : Wo;
    *hi = h < *lo ? *lo : h < Wo ? h : Wo;
}
/* [ops/im2col] img [C,H,W] -> col [C*k*k, Ho*Wo]: col[(c*k+ki)*k+kj][oh*Wo+ow] =
   img[c, oh*s-p+ki, ow*s-p+kj] (0 outside). col2im adds the columns back (the adjoint).
   On the CPU a chunk of b images is unrolled side by side: image i's columns start at i*Ho*Wo of
   rows ld = b*Ho*Wo long, so one GEMM serves the whole chunk. */
static void uvae__cpu_im2col(const float *img, int b, int C, int H, int W, int k, int s, int p, int Ho, int Wo, float *col) {
    size_t HWo = (size_t)Ho * Wo, ld = (size_t)b * HWo;
    int t;
    UVAE__OMP(omp parallel for schedule(static) if ((double)b * C * k * k * HWo > UVAE__PAR_MIN))
    for (t = 0; t < b * C * k * k; t++) {
        int i = t % b, r = t / b, c = r / (k * k), ki = (r / k) % k, kj = r % k, lo, hi;
        const float *src = img + ((size_t)i * C + c) * H * W;
        float *dst = col + (size_t)r * ld + (size_t)i * HWo;
        uvae__tap_range(W, Wo, s, p, kj, &lo, &hi);       /* a row of outputs: zeros, a run, zeros */
        for (int oh = 0; oh < Ho; oh++) {
            int ih = oh * s - p + ki;
            ptrdiff_t o = (ptrdiff_t)ih * W - p + kj;   /* src[o + ow * s]: tap kj of output ow */
            float *d = dst + (size_t)oh * Wo;
            if (ih < 0 || ih >= H) { memset(d, 0, (size_t)Wo * sizeof(float)); continue; }
            if (s == 1) {
                memset(d, 0, (size_t)lo * sizeof(float));
                memcpy(d + lo, src + o + lo, (size_t)(hi - lo) * sizeof(float));
                memset(d + hi, 0, (size_t)(Wo - hi) * sizeof(float));
            } else   /* (short rows: a test per element costs less than two calls to memset) */
                for (int ow = 0; ow < Wo; ow++) d[ow] = ow >= lo && ow < hi ? src[o + (ptrdiff_t)ow * s] : 0.0f;
        }
    }
}
/* One NR-column panel of im2col in the GEMM's packed layout, Bp[r][j] = col[r][jp * NR + j] for the
   b images' columns side by side (L = b * Ho * Wo of them; zeros past L). Column j reads its window
   at img[off[j] + the tap's and the channel's offset] where bit j of the tap's mask says the tap
   lies inside the image. */
static void uvae__im2col_panel(const float *img, int b, int C, int H, int W, int k, int s, int p, int Ho, int Wo, int jp, float *Bp) {
    int HWo = Ho * Wo, L = b * HWo, ih0[UVAE__NR], iw0[UVAE__NR];
    ptrdiff_t off[UVAE__NR];
    for (int j = 0; j < UVAE__NR; j++) {
        int q = jp * UVAE__NR + j, o = q % HWo;
        ih0[j] = o / Wo * s - p;
        iw0[j] = q < L ? o % Wo * s - p : -k - 1;         /* past L: a window wholly left of the image */
        off[j] = (ptrdiff_t)(q / HWo) * C * H * W + (ptrdiff_t)ih0[j] * W + iw0[j];
    }
    for (int ki = 0; ki < k; ki++)
        for (int kj = 0; kj < k; kj++) {
            uint32_t m = 0;                               /* NR = 32 columns: a bit each */
            float *d = Bp + ((size_t)ki * k + kj) * UVAE__NR;
            ptrdiff_t t = (ptrdiff_t)ki * W + kj;         /* the tap's offset, then the channel's */
            for (int j = 0; j < UVAE__NR; j++)
                m |= (uint32_t)((unsigned)(ih0[j] + ki) < (unsigned)H && (unsigned)(iw0[j] + kj) < (unsigned)W) << j;
            for (int c = 0; c < C; c++, d += (size_t)k * k * UVAE__NR, t += (ptrdiff_t)H * W) {
                if (m == 0xffffffffu) for (int j = 0; j < UVAE__NR; j++) d[j] = img[off[j] + t];
                else for (int j = 0; j < UVAE__NR; j++) d[j] = m >> j & 1 ? img[off[j] + t] : 0.0f;
            }
        }
}
/* the micro-kernel in use, and offp[k] = k * NR: where row k of a packed B panel is */
static uvae__ukr_fn uvae__ukr_packed(ptrdiff_t *offp) {
    if (!uvae__ukr) uvae__cpu_kernel(0);
    for (int k = 0; k < UVAE__KC; k++) offp[k] = (ptrdiff_t)k * UVAE__NR;
    return uvae__ukr;
}
/* One tile of C (ldc) (+)= rows i0.. of A read in place (lda apart, from column k0) @ a packed B
   panel bp (kc rows of NR); rows and cols clip an edge tile, which goes via a whole one. */
static void uvae__tile_a_inplace(uvae__ukr_fn ukr, int kc, const float *A, int lda, int i0, int rows, int k0,
                                 const float *bp, const ptrdiff_t *offp, float *c, int ldc, int cols, int acc) {
    ptrdiff_t aoff[UVAE__MR];
    float tile[UVAE__MR * UVAE__NR];
    for (int r = 0; r < UVAE__MR; r++) aoff[r] = (ptrdiff_t)(i0 + (r < rows ? r : 0)) * lda + k0;
    if (rows == UVAE__MR && cols == UVAE__NR) { ukr(kc, UVAE__MR, A, aoff, NULL, bp, offp, c, ldc, acc); return; }
    ukr(kc, rows, A, aoff, NULL, bp, offp, tile, UVAE__NR, 0);
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) c[(size_t)r * ldc + j] = acc ? c[(size_t)r * ldc + j] + tile[r * UVAE__NR + j] : tile[r * UVAE__NR + j];
}
/* out[M, L] (+)= w[M, K] @ im2col(img)[K, L] (K = C*k*k), one panel of NR columns at a time: each
   thread gathers its panel into its own slot of Bp (K * NR floats per thread, for as many threads
   as there are panels: the caller's K * L rounded up to NR) and runs the panel's column of tiles
   over it while it is in cache, reading w's rows in place, so the columns never go to memory whole
   and nothing is packed twice. Sums as in uvae__cpu_gemm (k in KC slices, in order): the same bits. */
static void uvae__cpu_conv_gemm_cols(const float *img, int b, int C, int H, int W, int k, int s, int p, int Ho, int Wo,
                                     int M, const float *w, float *out, int acc, float *Bp) {
    int K = C * k * k, L = b * Ho * Wo, nbp = (L + UVAE__NR - 1) / UVAE__NR;
    ptrdiff_t offp[UVAE__KC];
    uvae__ukr_fn ukr = uvae__ukr_packed(offp);
    UVAE__SHARED_FOR(at, nbp, (double)M * L * K > 1e6) {
        int jp = at.i, j0 = jp * UVAE__NR, cols = L - j0 < UVAE__NR ? L - j0 : UVAE__NR;
        float *bp = Bp + (size_t)UVAE__THREAD() * K * UVAE__NR;   /* a team of at most nbp threads */
        uvae__im2col_panel(img, b, C, H, W, k, s, p, Ho, Wo, jp, bp);
        for (int i0 = 0; i0 < M; i0 += UVAE__MR) {
            int rows = M - i0 < UVAE__MR ? M - i0 : UVAE__MR;
            for (int pc = 0; pc < K; pc += UVAE__KC)
                uvae__tile_a_inplace(ukr, K - pc < UVAE__KC ? K - pc : UVAE__KC, w, K, i0, rows, pc, bp + (size_t)pc * UVAE__NR,
                                     offp, out + (size_t)i0 * L + j0, L, cols, acc || pc > 0);
        }
    }
}
/* A slice of im2col's transpose in the GEMM's packed layout: Bp[q][j] = col[r0 + j][q0 + q] for the
   kc pixels from q0 (images side by side) and the NR taps from r0 (zeros past C*k*k).
   Pixels whose window lies inside the image (most) read their NR values without a test. */
static void uvae__im2row_panel(const float *img, int C, int H, int W, int k, int s, int p, int Ho, int Wo,
                               int r0, int q0, int kc, float *Bp) {
    int CK = C * k * k, HWo = Ho * Wo, full = r0 + UVAE__NR <= CK, tki[UVAE__NR], tkj[UVAE__NR];
    int i = q0 / HWo, oh = q0 % HWo / Wo, ow = q0 % Wo;
    ptrdiff_t toff[UVAE__NR];
    for (int j = 0; j < UVAE__NR; j++) {   /* tap r = (c, ki, kj); past C*k*k a tap above every image */
        int r = r0 + j < CK ? r0 + j : 0;
        tki[j] = r0 + j < CK ? r / k % k : -(H + p + k);
        tkj[j] = r % k;
        toff[j] = (ptrdiff_t)(r / (k * k)) * H * W + (ptrdiff_t)(r / k % k) * W + r % k;
    }
    for (int q = 0; q < kc; q++, Bp += UVAE__NR) {
        int ih0 = oh * s - p, iw0 = ow * s - p;
        ptrdiff_t base = (ptrdiff_t)i * C * H * W + (ptrdiff_t)ih0 * W + iw0;
        if (full && ih0 >= 0 && ih0 + k <= H && iw0 >= 0 && iw0 + k <= W) {
            if (k == 4)   /* NR / k runs of k taps in a row of the window: one 16-byte copy each */
                for (int j = 0; j < UVAE__NR; j += 4) memcpy(Bp + j, img + base + toff[j], 4 * sizeof(float));
            else if (k == 2)
                for (int j = 0; j < UVAE__NR; j += 2) memcpy(Bp + j, img + base + toff[j], 2 * sizeof(float));
            else for (int j = 0; j < UVAE__NR; j++) Bp[j] = img[base + toff[j]];
        } else
            for (int j = 0; j < UVAE__NR; j++) {
                int ih = ih0 + tki[j], iw = iw0 + tkj[j];
                Bp[j] = (unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W ? img[base + toff[j]] : 0.0f;
            }
        if (++ow == Wo) { ow = 0; if (++oh == Ho) { oh = 0; i++; } }
    }
}
/* dw[M, K] += dy[M, L] (rows ldd apart) @ im2col(img)[K, L]^T (K = C*k*k), a panel of NR taps and a
   slice of KC pixels at a time: each thread gathers the slice (KC x NR floats, the GEMM's packed
   layout of im2col's transpose) into its own slot of Bp (KC * NR floats per thread) and runs the
   panel's tiles over it, dy's rows read in place: im2col's columns are never written whole, nor
   packed (transposed) again. Sums as in uvae__cpu_gemm (pixels in KC slices, in order): the same bits.
   With fewer panels than threads (a first layer: 2 x 4 x 4 taps, one panel) the threads split
   each panel's slices instead, each slice's product going to its own partial (part: Mp x NR
   floats a slice, after the threads' slots), the partials then added into dw slice after slice:
   the same bits again (uvae__gemm_split's way). Bp: uvae__bwd_w_rows_room floats. */
static size_t uvae__bwd_w_rows_room(int M, int K, int L) {
    size_t nbp = ((size_t)K + UVAE__NR - 1) / UVAE__NR, nsl = ((size_t)L + UVAE__KC - 1) / UVAE__KC;
    return (size_t)UVAE__THREADS() * UVAE__KC * UVAE__NR + (nbp < (size_t)UVAE__THREADS() ? nbp * nsl * uvae__round_up(M, UVAE__MR) * UVAE__NR : 0);
}
/* whether conv_bwd_w's im2col path takes the rows path for M = Co rows, K = CK taps, L pixels: not
   a small product, and its room within col's (CK x L) */
static int uvae__bwd_w_rows_fit(int M, int K, int L) {
    return !uvae__gemm_is_small(M, K, L) && uvae__bwd_w_rows_room(M, K, L) <= (size_t)K * L;
}
static void uvae__cpu_conv_bwd_w_rows(const float *img, int b, int C, int H, int W, int k, int s, int p, int Ho, int Wo,
                                      int M, const float *dy, int ldd, float *dw, float *Bp) {
    int K = C * k * k, L = b * Ho * Wo, nbp = (K + UVAE__NR - 1) / UVAE__NR, nsl = (L + UVAE__KC - 1) / UVAE__KC;
    ptrdiff_t offp[UVAE__KC];
    uvae__ukr_fn ukr = uvae__ukr_packed(offp);
    if (nbp < UVAE__THREADS()) {
        const size_t ts = uvae__round_up(M, UVAE__MR) * UVAE__NR;     /* one slice's partial, rows NR apart */
        float *part = Bp + (size_t)UVAE__THREADS() * UVAE__KC * UVAE__NR;
        int i;
        UVAE__SHARED_FOR(at, nbp * nsl, 1) {                          /* panel jp's slice sl */
            int i = at.i, j0 = i / nsl * UVAE__NR, pc = i % nsl * UVAE__KC, kc = L - pc < UVAE__KC ? L - pc : UVAE__KC;
            float *bp = Bp + (size_t)UVAE__THREAD() * UVAE__KC * UVAE__NR, *t = part + (size_t)i * ts;
            uvae__im2row_panel(img, C, H, W, k, s, p, Ho, Wo, j0, pc, kc, bp);
            for (int i0 = 0; i0 < M; i0 += UVAE__MR)
                uvae__tile_a_inplace(ukr, kc, dy, ldd, i0, M - i0 < UVAE__MR ? M - i0 : UVAE__MR, pc, bp, offp, t + (size_t)i0 * UVAE__NR,
                                     UVAE__NR, UVAE__NR, 0);
        }
        UVAE__OMP(omp parallel for schedule(static) if ((double)M * K * nsl > 1e5))
        for (i = 0; i < M * nbp; i++) {                               /* dw's row r, panel jp: slice after slice */
            int r = i / nbp, pj = i % nbp, j0 = pj * UVAE__NR, cols = K - j0 < UVAE__NR ? K - j0 : UVAE__NR;
            float *d = dw + (size_t)r * K + j0;
            for (int sl = 0; sl < nsl; sl++) {
                const float *t = part + ((size_t)pj * nsl + sl) * ts + (size_t)r * UVAE__NR;
                for (int j = 0; j < cols; j++) d[j] += t[j];
            }
        }
        return;
    }
    UVAE__SHARED_FOR(at, nbp, (double)M * L * K > 1e6) {
        int jp = at.i, j0 = jp * UVAE__NR, cols = K - j0 < UVAE__NR ? K - j0 : UVAE__NR;
        float *bp = Bp + (size_t)UVAE__THREAD() * UVAE__KC * UVAE__NR;   /* a slot a thread */
        for (int pc = 0; pc < L; pc += UVAE__KC) {
            int kc = L - pc < UVAE__KC ? L - pc : UVAE__KC;
            uvae__im2row_panel(img, C, H, W, k, s, p, Ho, Wo, j0, pc, kc, bp);
            for (int i0 = 0; i0 < M; i0 += UVAE__MR)
                uvae__tile_a_inplace(ukr, kc, dy, ldd, i0, M - i0 < UVAE__MR ? M - i0 : UVAE__MR, pc, bp, offp,
                                     dw + (size_t)i0 * K + j0, K, cols, 1);
        }
    }
}
/* the rows r in [r0, r1) of one image's col added into its img [C,H,W], r ascending: col(r, q) at
   col[(r - r0) * ld + q * qs] (qs 1: col's rows; the direct data gradient's tiles: qs = NR, ld = 1),
   tap (ki, kj) of channel c = r / k^2 landing on img[c, oh*s-p+ki, ow*s-p+kj] for q = oh*Wo + ow */
static void uvae__col2im_taps(const float *col, size_t ld, size_t qs, int r0, int r1, int H, int W, int k, int s, int p,
                              int Ho, int Wo, float *img) {
    for (int r = r0; r < r1; r++) {
        int ki = r / k % k, kj = r % k, lo, hi;
        float *dst = img + (size_t)(r / (k * k)) * H * W;
        const float *src = col + (size_t)(r - r0) * ld;
        uvae__tap_range(W, Wo, s, p, kj, &lo, &hi);
        for (int oh = 0; oh < Ho; oh++) {
            int ih = oh * s - p + ki;
            ptrdiff_t o = (ptrdiff_t)ih * W - p + kj;   /* dst[o + ow * s]: where output ow's tap kj goes */
            const float *sr = src + (size_t)oh * Wo * qs;
            if (ih < 0 || ih >= H) continue;
            if (s == 1 && qs == 1) for (int ow = lo; ow < hi; ow++) dst[o + ow] += sr[ow];
            else for (int ow = lo; ow < hi; ow++) dst[o + (ptrdiff_t)ow * s] += sr[(size_t)ow * qs];
        }
    }
}
/* uvae__col2im_taps of the direct data gradient's tiles (qs = NR, ld = 1) into img [Ci, H, W]. In
   AVX-512 (for k <= 16, W <= UVAE__C2I_W): a run of taps (c, ki, kj0..), contiguous in a pixel's
   row of the tile, lands on consecutive columns of one row of img. Each such row, 16 columns at a
   time, is held in a register, the pixels' runs added into it by ow descending (a masked load, a
   permute and a masked add each, from a plan made once per run shape) and stored once. Every
   element of img still gets its taps in ascending r (for one (c, ki) and column x, kj = x + p - s ow
   rises as ow falls), so the sums are uvae__col2im_taps's bits. */
#define UVAE__C2I_W 256
#ifdef UVAE__X86
__attribute__((target("avx512f")))
static void uvae__col2im_tile_avx512(const float *buf, int r0, int r1, const uvae__conv_shape *g, float *img) {
    const int H = g->H, W = g->W, k = g->k, s = g->s, p = g->p, Wo = g->Wo;
    struct { int off, sh; __mmask16 tm; } plan[UVAE__C2I_W / 16 * 32];   /* per segment, by ow descending: */
    int seg_end[UVAE__C2I_W / 16], pk = -1, pn = -1;                      /* up to 32 pixels reach 16 columns */
    const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    for (int r = r0, re; r < r1; r = re) {
        const int ki = r / k % k, kj0 = r % k;
        float *dst = img + (size_t)(r / (k * k)) * H * W;
        re = (r / k + 1) * k < r1 ? (r / k + 1) * k : r1;        /* the taps (c, ki, kj0..) in [r0, r1) */
        if (kj0 != pk || re - r != pn) {                         /* the plan for runs of taps kj0 .. kj0+pn-1 */
            int n = 0;
            pk = kj0; pn = re - r;
            for (int X0 = 0; X0 < W; X0 += 16) {               /* the pixels whose run reaches columns X0.. */
                const int nx = W - X0 < 16 ? W - X0 : 16, e = X0 + p - kj0;   /* tap kj0 + t at x = s ow - e + t */
                int ow = e + nx - 1 >= 0 ? (e + nx - 1) / s : -1, lo = e - pn + 1 > 0 ? (e - pn + s) / s : 0;
                for (ow = ow < Wo - 1 ? ow : Wo - 1; ow >= lo; ow--, n++) {
                    int x = s * ow - e, a = x < 0 ? -x : 0, b = x + pn > nx ? nx - x : pn;   /* its taps a .. b-1 */
                    plan[n].off = ow * UVAE__NR + a; plan[n].sh = x + a; plan[n].tm = (__mmask16)((1u << (b - a)) - 1);
                }
                seg_end[X0 / 16] = n;
            }
        }
        for (int oh = 0; oh < g->Ho; oh++) {
            const int ih = oh * s - p + ki;
            const float *row = buf + (size_t)oh * Wo * UVAE__NR + (r - r0);
            if (ih < 0 || ih >= H) continue;
            for (int X0 = 0, i = 0; X0 < W; X0 += 16) {
                const __mmask16 wm = (__mmask16)((1u << (W - X0 < 16 ? W - X0 : 16)) - 1);
                float *d = dst + (size_t)ih * W + X0;
                __m512 R = _mm512_maskz_loadu_ps(wm, d);
                for (; i < seg_end[X0 / 16]; i++) {
                    __m512 v = _mm512_maskz_loadu_ps(plan[i].tm, row + plan[i].off);
                    R = _mm512_mask_add_ps(R, (__mmask16)(plan[i].tm << plan[i].sh), R,
                                           _mm512_permutexvar_ps(_mm512_sub_epi32(iota, _mm512_set1_epi32(plan[i].sh)), v));
                }
                _mm512_mask_storeu_ps(d, wm, R);
            }
        }
    }
}
#endif
static void uvae__col2im_tile(const float *buf, int r0, int r1, const uvae__conv_shape *g, float *img) {
#ifdef UVAE__X86
    if (uvae__ukr_kind == 3 && g->k <= 16 && g->W <= UVAE__C2I_W) { uvae__col2im_tile_avx512(buf, r0, r1, g, img); return; }
#endif
    uvae__col2im_taps(buf, 1, UVAE__NR, r0, r1, g->H, g->W, g->k, g->s, g->p, g->Ho, g->Wo, img);
}
static void uvae__cpu_col2im(const float *col, int b, int C, int H, int W, int k, int s, int p, int Ho, int Wo, float *img) {
    size_t HWo = (size_t)Ho * Wo, ld = (size_t)b * HWo;
    int t;
    UVAE__OMP(omp parallel for schedule(static) if ((double)b * C * k * k * HWo > UVAE__PAR_MIN))
    for (t = 0; t < b * C; t++) {                        /* one (image, channel) plane per thread: no races */
        int i = t % b, c = t / b;
        uvae__col2im_taps(col + (size_t)c * k * k * ld + (size_t)i * HWo, ld, 1, c * k * k, (c + 1) * k * k, H, W, k, s, p, Ho,
                          Wo, img + (size_t)i * C * H * W);
    }
}
/* b images [b, C, HW] <-> one matrix [C, b*HW]: gather (to = 1) or scatter (to = 0; acc: +=). */
static void uvae__cpu_batch_rows(float *img, int b, int C, size_t HW, float *mat, int to, int acc) {
    int t;
    UVAE__OMP(omp parallel for schedule(static) if ((double)b * C * HW > UVAE__PAR_MIN))
    for (t = 0; t < b * C; t++) {
        int i = t % b, c = t / b;
        float *im = img + ((size_t)i * C + c) * HW, *m = mat + (size_t)c * b * HW + (size_t)i * HW;
        if (to) memcpy(m, im, HW * sizeof(float));
        else if (acc) for (size_t q = 0; q < HW; q++) im[q] += m[q];
        else memcpy(im, m, HW * sizeof(float));
    }
}

/* bias: out[n,c,:] += b[c];  bias backward: db[c] += sum over n, hw of dout[n,c,:] */
static void uvae__cpu_bias_add(float *out, const float *b, int N, int C, size_t HW) {
    int nc, n;
    if (HW == 1) {   /* a dense layer's [N, C]: along the rows */
        UVAE__OMP(omp parallel for schedule(static) if ((double)N * C > UVAE__PAR_MIN))
        for (n = 0; n < N; n++) {
            float *o = out + (size_t)n * C;
            int c;
            UVAE__OMP(omp simd)   /* (GCC -O2 leaves a loop of unknown length scalar without it) */
            for (c = 0; c < C; c++) o[c] += b[c];
        }
        return;
    }
    UVAE__OMP(omp parallel for schedule(static) if ((double)N * C * HW > UVAE__PAR_MIN))
    for (nc = 0; nc < N * C; nc++) {
        float *o = out + (size_t)nc * HW, bc = b[nc % C];
        size_t i;
        UVAE__OMP(omp simd)
        for (i = 0; i < HW; i++) o[i] += bc;
    }
}
/* [sums] Long sums of floats are in double, in UVAE__SUML = 8 interleaved partial sums p: a[i] goes
   to p[i mod 8], in order, and uvae__fold8 adds the 8 pairwise. The adds do not wait on each other
   (one chain of double adds ran at a quarter of the memory's speed), and the order is fixed
   whatever the compiler vectorises, so a result does not depend on the build's vector width. */
#define UVAE__SUML 8
static void uvae__sum8(const float *a, size_t n, double *p) {
    /* the 8 partials as 8 variables, so that they stay in registers (as p[j], or as an array the
       tail indexes, the compiler loaded and stored them back every 8 values: 4x slower) */
    double q0 = p[0], q1 = p[1], q2 = p[2], q3 = p[3], q4 = p[4], q5 = p[5], q6 = p[6], q7 = p[7];
    size_t i = 0;
    for (; i + UVAE__SUML <= n; i += UVAE__SUML) {
        q0 += a[i]; q1 += a[i + 1]; q2 += a[i + 2]; q3 += a[i + 3];
        q4 += a[i + 4]; q5 += a[i + 5]; q6 += a[i + 6]; q7 += a[i + 7];
    }
    p[0] = q0; p[1] = q1; p[2] = q2; p[3] = q3; p[4] = q4; p[5] = q5; p[6] = q6; p[7] = q7;
    for (; i < n; i++) p[i % UVAE__SUML] += a[i];
}
/* p[j] += (a[i + j] - mu)^2 in double, as uvae__sum8 (batch norm's variance) */
static void uvae__sumsq8(const float *a, size_t n, double mu, double *p) {
    double q0 = p[0], q1 = p[1], q2 = p[2], q3 = p[3], q4 = p[4], q5 = p[5], q6 = p[6], q7 = p[7];
    size_t i = 0;
    for (; i + UVAE__SUML <= n; i += UVAE__SUML) {
        double d0 = a[i] - mu, d1 = a[i + 1] - mu, d2 = a[i + 2] - mu, d3 = a[i + 3] - mu;
        double d4 = a[i + 4] - mu, d5 = a[i + 5] - mu, d6 = a[i + 6] - mu, d7 = a[i + 7] - mu;
        q0 += d0 * d0; q1 += d1 * d1; q2 += d2 * d2; q3 += d3 * d3;
        q4 += d4 * d4; q5 += d5 * d5; q6 += d6 * d6; q7 += d7 * d7;
    }
    p[0] = q0; p[1] = q1; p[2] = q2; p[3] = q3; p[4] = q4; p[5] = q5; p[6] = q6; p[7] = q7;
    for (; i < n; i++) p[i % UVAE__SUML] += (a[i] - mu) * (a[i] - mu);
}
/* batch norm's backward sums, as uvae__sum8: s[j] += d[i + j] and sx[j] += d[i + j] (x[i + j] -
   mu) istd, that product in float */
static void uvae__sum8_bn(const float *d, const float *x, size_t n, float mu, float istd, double *s, double *sx) {
    double s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3], s4 = s[4], s5 = s[5], s6 = s[6], s7 = s[7];
    double t0 = sx[0], t1 = sx[1], t2 = sx[2], t3 = sx[3], t4 = sx[4], t5 = sx[5], t6 = sx[6], t7 = sx[7];
    size_t i = 0;
    for (; i + UVAE__SUML <= n; i += UVAE__SUML) {
        s0 += d[i]; s1 += d[i + 1]; s2 += d[i + 2]; s3 += d[i + 3];
        s4 += d[i + 4]; s5 += d[i + 5]; s6 += d[i + 6]; s7 += d[i + 7];
        t0 += d[i] * (x[i] - mu) * istd; t1 += d[i + 1] * (x[i + 1] - mu) * istd;
        t2 += d[i + 2] * (x[i + 2] - mu) * istd; t3 += d[i + 3] * (x[i + 3] - mu) * istd;
        t4 += d[i + 4] * (x[i + 4] - mu) * istd; t5 += d[i + 5] * (x[i + 5] - mu) * istd;
        t6 += d[i + 6] * (x[i + 6] - mu) * istd; t7 += d[i + 7] * (x[i + 7] - mu) * istd;
    }
    s[0] = s0; s[1] = s1; s[2] = s2; s[3] = s3; s[4] = s4; s[5] = s5; s[6] = s6; s[7] = s7;
    sx[0] = t0; sx[1] = t1; sx[2] = t2; sx[3] = t3; sx[4] = t4; sx[5] = t5; sx[6] = t6; sx[7] = t7;
    for (; i < n; i++) {
        s[i % UVAE__SUML] += d[i];
        sx[i % UVAE__SUML] += d[i] * (x[i] - mu) * istd;
    }
}
static double uvae__fold8(const double *p) {
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}
static void uvae__cpu_bias_grad(const float *dout, float *db, int N, int C, size_t HW) {
    int c, cb;
    if (HW == 1) {   /* a dense layer's [N, C]: 64 columns at a time along the rows, each summed over n
                        in order from 0 (what the loop below does with one value per plane) */
        UVAE__OMP(omp parallel for schedule(static) if ((double)N * C > UVAE__PAR_MIN))
        for (c = 0; c < C; c += 64) {
            double s[64] = {0};
            int w = C - c < 64 ? C - c : 64;
            for (int n = 0; n < N; n++)
                for (int j = 0; j < w; j++) s[j] += dout[(size_t)n * C + c + j];
            for (int j = 0; j < w; j++) db[c + j] += (float)s[j];
        }
        return;
    }
    cb = C / UVAE__THREADS() < 1 ? 1 : C / UVAE__THREADS() > 8 ? 8 : C / UVAE__THREADS();
    UVAE__OMP(omp parallel for schedule(static) if ((double)N * C * HW > UVAE__PAR_MIN))
    for (c = 0; c < C; c += cb) {   /* cb <= 8 channels at a time, image after image: their planes lie
                                       side by side, one stream (a channel at a time jumped C planes a
                                       plane); each channel's sum in the same order as one at a time */
        double p[8][UVAE__SUML] = {{0}};
        int w = C - c < cb ? C - c : cb;
        for (int n = 0; n < N; n++)
            for (int j = 0; j < w; j++) uvae__sum8(dout + ((size_t)n * C + c + j) * HW, HW, p[j]);
        for (int j = 0; j < w; j++) db[c + j] += (float)uvae__fold8(p[j]);
    }
}

/* ---------------------------------------------------------------------------------------------
   [ops/conv kernels] The three products of a convolution y = conv(x, w), in the shapes of
   uvae__conv_shape (x [N,Ci,H,W], w [Co, Ci*k*k], y [N,Co,Ho,Wo]), CK = Ci*k*k, HWo = Ho*Wo:
     conv_fwd:   y[n]  (+)= w @ col(x[n])                   (acc: 0 overwrite, 1 add)
     conv_bwd_x: dx[n] += col2im(w^T @ dy[n])
     conv_bwd_w: dw    += sum_n dy[n] @ col(x[n])^T
   conv_transpose2d is conv2d's adjoint, so it runs on the same three with x and y swapped (see
   [ops/conv_transpose2d]). On the CPU each product takes the first of these paths that fits:
     Winograd              3x3, stride 1, padding 1, >= 32 channels, >= 64 output tiles (the
                           weight gradient's F(2x2): 256): F(4x4, 3x3) 4x, F(2x2, 3x3) 2.25x
                           fewer multiplications
                           (conv_fwd_winograd, conv_bwd_w_winograd)
     implicit GEMM         stride 1, output rows >= NR wide: the micro-kernel reads im2col's rows
                           where they lie in the zero-padded input (conv_fwd_implicit,
                           conv_bwd_w_implicit); conv_bwd_x runs as a convolution with the flipped
                           weights through either of these two
     pixels as rows        the rest (strided, or narrow rows), where Co fills NR-wide tiles and
                           CK x Co floats stay in L2: the output pixels are the GEMM's rows, their
                           windows read in place from the zero-padded x, so a stride costs no
                           gather (conv_fwd_direct, conv_bwd_w_direct); conv_bwd_x likewise with dy
                           read in place, where an image has at most 256 output pixels, its tiles
                           added into dx by col2im from an L1-sized buffer (conv_bwd_x_direct)
     im2col + GEMM         everything else: images in chunks of b (uvae__conv_chunk) unrolled side
                           by side, so each product is one large GEMM; where the GEMM would pack
                           im2col's columns (the forward with more than UVAE__DIRECT_M output
                           channels, the weight gradient) it gathers its panels straight from x
                           instead (conv_gemm_cols, conv_bwd_w_rows)
   Every path sums in a fixed order whatever the thread count. */
static int uvae__conv_chunk(const uvae__conv_shape *g) {
    size_t HWo = (size_t)g->Ho * g->Wo, CK = (size_t)g->Ci * g->k * g->k;
    size_t by_cols = 4096 / HWo, by_mem = ((size_t)1 << 22) / (HWo * (CK + (size_t)g->Co));
    size_t b = by_cols < by_mem ? by_cols : by_mem;
    return b < 1 ? 1 : b > (size_t)g->N ? g->N : (int)b;
}
/* ... and the weight gradient's chunk on its im2col path: the whole batch at once where it takes the
   rows path (uvae__cpu_conv_bwd_w_rows: a slice at a time gathered from x, so im2col's column limit
   buys no locality there) and fits the same memory; the CVAE's first layer (2 -> 32, 4x4 stride 2,
   128 images) went as 7 chunks of 20 images, 3 parallel regions each */
static int uvae__bwd_w_chunk(const uvae__conv_shape *g) {
    size_t HWo = (size_t)g->Ho * g->Wo, CK = (size_t)g->Ci * g->k * g->k, L = (size_t)g->N * HWo;
    if (L * (CK + (size_t)g->Co) <= ((size_t)1 << 22) && uvae__bwd_w_rows_fit(g->Co, (int)CK, (int)L)) return g->N;
    return uvae__conv_chunk(g);
}
/* Stride-1 convolutions with rows of at least NR outputs skip im2col on the CPU (conv_fwd_implicit),
   unless uvae__cpu_conv_implicit(0) turned that off (for tests). */
static int uvae__implicit_on = 1;
int uvae__cpu_conv_implicit(int on) { return uvae__switch(&uvae__implicit_on, on); }
static int uvae__conv_implicit(const uvae__conv_shape *g) {
    double work = (double)g->Co * g->Ho * g->Wo * g->Ci * g->k * g->k;   /* small ones: the GEMM's plain loops */
    return uvae__implicit_on && g->s == 1 && g->Wo >= UVAE__NR && work >= 32768.0 &&
           (double)g->Ci * (g->H + 2 * g->p) * (g->W + 2 * g->p) < 1e9;
}
/* For stride 1, conv_bwd_x is itself a convolution: dx = conv(dy, w flipped and transposed,
   padding k-1-p) (uvae__conv_flipped), which conv_fwd_implicit runs without col2im. */
static uvae__conv_shape uvae__conv_flipped(const uvae__conv_shape *g) {
    uvae__conv_shape f = {g->N, g->Co, g->Ho, g->Wo, g->Ci, g->k, 1, g->k - 1 - g->p, g->H, g->W};
    return f;
}
static int uvae__conv_bwd_x_implicit(const uvae__conv_shape *g) {
    uvae__conv_shape f = uvae__conv_flipped(g);
    return g->s == 1 && g->p <= g->k - 1 && uvae__conv_implicit(&f);
}
/* The weight gradient of a stride-1 convolution runs without im2col too (conv_bwd_w_implicit). */
static int uvae__conv_bwd_w_implicit(const uvae__conv_shape *g) {
    double work = (double)g->Co * g->Ho * g->Wo * g->Ci * g->k * g->k;
    return uvae__implicit_on && g->s == 1 && g->Wo >= UVAE__NR && work >= 32768.0 &&
           (double)g->Ci * (g->H + 2 * g->p) * (g->W + 2 * g->p) < 1e9;
}
/* Strided convolutions (and stride-1 ones too narrow for the implicit GEMM) run their forward with
   the output pixels as the GEMM's rows (conv_fwd_direct), where their channels fill the NR-wide
   tiles (Co >= 3/4 of a whole number of them) and the packed weights stay in L2 (CK x Co rounded
   up to NR within 2^18 floats: each tile of MR pixels reads them all; 512 channels at 16x16, 2.4M
   floats, ran 13 -> 17 ms); unless uvae__cpu_conv_direct(0) (for tests). */
static int uvae__direct_on = 1;
int uvae__cpu_conv_direct(int on) { return uvae__switch(&uvae__direct_on, on); }
static int uvae__direct_fits(const uvae__conv_shape *g) {
    double work = (double)g->Co * g->Ho * g->Wo * g->Ci * g->k * g->k;
    return uvae__direct_on && work >= 32768.0 && 4 * g->Co >= 3 * (int)uvae__round_up(g->Co, UVAE__NR) &&
           (double)g->Ci * g->k * g->k * uvae__round_up(g->Co, UVAE__NR) <= (double)(1 << 18) &&
           (double)g->Ci * (g->H + 2 * g->p) * (g->W + 2 * g->p) < 1e9;
}
static int uvae__conv_direct(const uvae__conv_shape *g) { return !uvae__conv_implicit(g) && uvae__direct_fits(g); }
/* images per chunk of conv_fwd_direct: their zero-padded copy within 1M floats (at least one) */
static int uvae__direct_chunk(const uvae__conv_shape *g) {
    size_t img = (size_t)g->Ci * (g->H + 2 * g->p) * (g->W + 2 * g->p), b = ((size_t)1 << 20) / (img ? img : 1);
    return b < 1 ? 1 : b > (size_t)g->N ? g->N : (int)b;
}
/* ... and its scratch: packed w | tap offsets | the chunk's padded x */
static size_t uvae__direct_scratch(const uvae__conv_shape *g) {
    size_t CK = (size_t)g->Ci * g->k * g->k;
    return uvae__round_up(g->Co, UVAE__NR) * CK + CK * (sizeof(ptrdiff_t) / sizeof(float)) +
           (size_t)uvae__direct_chunk(g) * g->Ci * (g->H + 2 * g->p) * (g->W + 2 * g->p) + 16;
}
/* ... and the weight gradient likewise (conv_bwd_w_direct), where no implicit GEMM or Winograd
   takes it and the window has more taps than one NR panel (with fewer, the im2col path's gathered
   panel costs less than transposing dy: 2.9 against 3.6 ms for 2 -> 32 channels, 4x4 stride 2) */
static int uvae__conv_bwd_w_direct(const uvae__conv_shape *g) {
    return !uvae__conv_bwd_w_implicit(g) && g->Ci * g->k * g->k > UVAE__NR && uvae__direct_fits(g);
}
static size_t uvae__bwd_w_direct_scratch(const uvae__conv_shape *g) {
    size_t CKp = uvae__round_up((size_t)g->Ci * g->k * g->k, UVAE__MR), Np = uvae__round_up(g->Co, UVAE__NR);
    size_t nb = (size_t)uvae__conv_chunk(g), L = nb * g->Ho * g->Wo, pf = sizeof(ptrdiff_t) / sizeof(float);
    return CKp * Np + (CKp + L) * pf + nb * g->Ci * (g->H + 2 * g->p) * (g->W + 2 * g->p) + Np * L + 16;
}
/* floats of scratch conv_fwd_implicit needs for g (0 if g does not take that path): packed w,
   offsets, padded x, output on the padded grid */
static size_t uvae__implicit_scratch(const uvae__conv_shape *g) {
    size_t CK = (size_t)g->Ci * g->k * g->k, Wp = (size_t)g->W + 2 * g->p, Mp = uvae__round_up(g->Co, UVAE__MR);
    if (!uvae__conv_implicit(g)) return 0;
    return Mp * CK + CK * (sizeof(ptrdiff_t) / sizeof(float)) + (size_t)g->Ci * (g->H + 2 * g->p) * Wp + g->k + UVAE__NR +
           (size_t)g->Co * g->Ho * Wp + 16;
}
/* ... and conv_bwd_w_implicit: dw^T, offsets, padded x, packed dy on the padded grid */
static size_t uvae__bwd_w_implicit_scratch(const uvae__conv_shape *g) {
    size_t CKp = uvae__round_up((size_t)g->Ci * g->k * g->k, UVAE__MR), Wp = (size_t)g->W + 2 * g->p;
    size_t Np = uvae__round_up(g->Co, UVAE__NR);
    return CKp * Np + CKp * (sizeof(ptrdiff_t) / sizeof(float)) + (size_t)g->Ci * (g->H + 2 * g->p) * Wp + g->k + UVAE__NR +
           Np * g->Ho * Wp + 16;
}
/* 3x3, stride 1, padding 1 convolutions with enough channels and tiles run as Winograd on the CPU:
   forward and data gradient (conv_fwd_winograd), weight gradient (conv_bwd_w_winograd), each
   m x m block of outputs (a "tile") from an (m+2) x (m+2) patch of the input through P = (m+2)^2
   products: F(4x4, 3x3) (m = 4, P = 36) or F(2x2, 3x3) (m = 2, P = 16); unless
   uvae__cpu_conv_winograd(0). */
#if defined(UVAE_NO_WINOGRAD)
static int uvae__winograd_on = 0;
#elif defined(UVAE_WINOGRAD_F2)
static int uvae__winograd_on = 2;
#else
static int uvae__winograd_on = 1;
#endif
int uvae__cpu_conv_winograd(int on) {
    int was = uvae__winograd_on;
    if (on >= 0) uvae__winograd_on = on == 2 || on == 4 ? on : on != 0;
    return was;
}
/* It pays from 32 channels on (below, the transforms cost about as much as the products save) and
   when the weights' transform, P x Co x Ci floats, is shared by enough tiles: UVAE__WG_MIN_TILES for
   the forward and data gradient; the weight gradient, whose products run over the tiles, takes
   F(2x2) from UVAE__WG_TILES only (bench/NOTES.md). */
#define UVAE__WG_TILES 256
#define UVAE__WG_MIN_TILES 64
static double uvae__wg_tiles(const uvae__conv_shape *g, int m) {
    return (double)g->N * ((g->Ho + m - 1) / m) * ((g->Wo + m - 1) / m);
}
/* the tile size m this convolution runs with (4 or 2), 0: not Winograd */
static int uvae__conv_winograd(const uvae__conv_shape *g) {
    int on = uvae__winograd_on;
    if (!on || g->k != 3 || g->s != 1 || g->p != 1 || g->Ci < 32 || g->Co < 32 || (double)g->Ci * g->Co > 1e7)
        return 0;                       /* (the last: a transformed weight of at most 1.4 GB) */
    if (on != 2 && uvae__wg_tiles(g, 4) >= UVAE__WG_MIN_TILES) return 4;
    return on != 4 && uvae__wg_tiles(g, 2) >= UVAE__WG_MIN_TILES ? 2 : 0;
}
/* conv_bwd_w's tile size: the forward's, but F(2x2) only from UVAE__WG_TILES tiles; and, unless a
   tile size is forced (tests), not for short tile rows (under 16 tiles) with few channels (Ci Co
   under 8192), where the direct weight gradient is faster: the classifier's layers at batch 128,
   two threads, 28x28 32 -> 32 9.4 against 17.3 ms, 14x14 64 -> 64 6.8 against 9.8, 32x32 32 -> 32
   13.4 against 20.3; but at 32x32 64 -> 128 (batch 16) Winograd's 8.9 against 12.4 (bench/NOTES.md) */
static int uvae__conv_bwd_w_winograd(const uvae__conv_shape *g) {
    int m = uvae__conv_winograd(g);
    if (m && uvae__winograd_on == 1 && (g->Wo + m - 1) / m < 16 && g->Ci * g->Co < 8192) return 0;
    return m == 4 || (m == 2 && uvae__wg_tiles(g, 2) >= UVAE__WG_TILES) ? m : 0;
}
/* Winograd's tile rows per chunk: its transformed input and output, P x (Ci + Mp) x Tc floats,
   about UVAE__WG_BYTES, and at least UVAE__WG_TILES tiles (each chunk reads all of the transformed
   weights) */
#define UVAE__WG_BYTES (2u << 20)
static int uvae__wg_rows(const uvae__conv_shape *g) {
    int m = uvae__conv_winograd(g);
    size_t tw = ((size_t)g->Wo + m - 1) / m, Mp = uvae__round_up(g->Co, UVAE__MR);
    size_t per_row = (size_t)(m + 2) * (m + 2) * ((size_t)g->Ci + Mp) * tw * sizeof(float), rows = UVAE__WG_BYTES / per_row;
    size_t all = (size_t)g->N * ((g->Ho + m - 1) / m), least = (UVAE__WG_TILES + tw - 1) / tw;
    if (rows < least) rows = least;
    return rows > all ? (int)all : (int)rows;
}
/* tiles per chunk, rounded up to whole NR-wide panels: the row length of V, M and Z */
static int uvae__wg_tcp(const uvae__conv_shape *g) {
    int m = uvae__conv_winograd(g);
    return (int)uvae__round_up((size_t)uvae__wg_rows(g) * ((g->Wo + m - 1) / m), UVAE__NR);
}
/* conv_bwd_x runs as the flipped convolution through Winograd (see conv_fwd_winograd's flip) */
static int uvae__conv_bwd_x_winograd(const uvae__conv_shape *g) {
    uvae__conv_shape f = uvae__conv_flipped(g);
    return g->s == 1 && g->p <= g->k - 1 && uvae__conv_winograd(&f);
}
/* floats of scratch conv_fwd_winograd needs: transformed w (packed), B's row offsets, the
   transformed input and output of one chunk */
static size_t uvae__winograd_scratch(const uvae__conv_shape *g) {
    size_t Mp = uvae__round_up(g->Co, UVAE__MR), Tcp = (size_t)uvae__wg_tcp(g);
    size_t m = (size_t)uvae__conv_winograd(g), P = (m + 2) * (m + 2);
    return P * (Mp * g->Ci + 16) + (size_t)g->Ci * (sizeof(ptrdiff_t) / sizeof(float)) + P * (((size_t)g->Ci + Mp) * Tcp + 32) + 16;
}
/* ... and conv_bwd_w_winograd */
static size_t uvae__winograd_w_scratch(const uvae__conv_shape *g) {
    size_t Cp = uvae__round_up(g->Ci, UVAE__MR), Np = uvae__round_up(g->Co, UVAE__NR);
    size_t Tcp = (size_t)uvae__wg_tcp(g), m = (size_t)uvae__conv_winograd(g), P = (m + 2) * (m + 2);
    return P * (Cp * Np + 16) + (Cp + Tcp) * (sizeof(ptrdiff_t) / sizeof(float)) +
           P * (((size_t)g->Ci + g->Co + Np) * Tcp + 48) + 16;
}
/* ... and the data gradient likewise (conv_bwd_x_direct: the forward of a transposed convolution),
   where neither Winograd nor the implicit GEMM takes it and an image's tile buffer [Ho*Wo, NR]
   stays in L1 (Ho*Wo <= 256): col2im reads it a column at a time. The CVAE's data gradients (1
   thread, batch 128): e2 6.4 -> 5.7 ms (CIFAR), 4.8 -> 4.5 (MNIST), d2's forward 2.1 -> 1.9; at
   64^2 outputs (the UNet's first strided layer, batch 4) 5.1 -> 6.4: those stay on im2col */
static int uvae__conv_bwd_x_direct(const uvae__conv_shape *g) {
    return !uvae__conv_bwd_x_winograd(g) && !uvae__conv_bwd_x_implicit(g) && g->Ho * g->Wo <= 256 && uvae__direct_fits(g);
}
/* images per chunk of conv_bwd_x_direct: their buffers [Ho*Wo + MR, NR] within 2^18 floats (at least one) */
static int uvae__bwd_x_direct_chunk(const uvae__conv_shape *g) {
    size_t b = ((size_t)1 << 18) / (((size_t)g->Ho * g->Wo + UVAE__MR) * UVAE__NR);
    return b < 1 ? 1 : b > (size_t)g->N ? g->N : (int)b;
}
static size_t uvae__bwd_x_direct_scratch(const uvae__conv_shape *g) {
    size_t CKp = uvae__round_up((size_t)g->Ci * g->k * g->k, UVAE__NR);
    return CKp * g->Co + (size_t)g->Co * (sizeof(ptrdiff_t) / sizeof(float)) +
           (size_t)uvae__bwd_x_direct_chunk(g) * ((size_t)g->Ho * g->Wo + UVAE__MR) * UVAE__NR + 16;
}
/* floats of scratch the three kernels need on `dev`: the largest of what each product's path needs
   (on the GPU one image's columns, which also hold the weight gradient's split partial sums) */
static size_t uvae__conv_scratch(int dev, const uvae__conv_shape *g) {
    size_t HWo = (size_t)g->Ho * g->Wo, CK = (size_t)g->Ci * g->k * g->k, n = 0, m;
    int b = dev == UVAE_CPU ? uvae__conv_chunk(g) : 1;
    size_t col = CK * b * HWo + (b > 1 ? (size_t)g->Co * b * HWo : 0);   /* im2col + GEMM */
    size_t colp = CK * uvae__round_up(b * HWo, UVAE__NR) + (b > 1 ? (size_t)g->Co * b * HWo : 0);
    uvae__conv_shape f = uvae__conv_flipped(g);
    if (dev != UVAE_CPU) return col;
    m = uvae__conv_winograd(g) ? uvae__winograd_scratch(g) : uvae__conv_implicit(g) ? uvae__implicit_scratch(g)
        : uvae__conv_direct(g) ? uvae__direct_scratch(g) : colp;
    if (m > n) n = m;                                                              /* conv_fwd */
    m = uvae__conv_bwd_x_winograd(g) ? uvae__winograd_scratch(&f) : uvae__conv_bwd_x_implicit(g) ? uvae__implicit_scratch(&f)
        : uvae__conv_bwd_x_direct(g) ? uvae__bwd_x_direct_scratch(g) : col;      /* conv_bwd_x */
    if (m > n) n = m;
    b = uvae__bwd_w_chunk(g);
    col = CK * b * HWo + (b > 1 ? (size_t)g->Co * b * HWo : 0);
    m = uvae__conv_bwd_w_winograd(g) ? uvae__winograd_w_scratch(g) : uvae__conv_bwd_w_implicit(g) ? uvae__bwd_w_implicit_scratch(g)
        : uvae__conv_bwd_w_direct(g) ? uvae__bwd_w_direct_scratch(g) : col;       /* conv_bwd_w */
    return m > n ? m : n;
}

/* off[r] = ci*Hp*Wp + ki*Wp + kj for the n rows r = (ci*k + ki)*k + kj of col(x): where tap r of a
   window sits in the zero-padded planes xp [Ci, Hp, Wp], relative to the window's corner; rows
   past Ci*k*k (a last panel's padding) get 0 (computed, never used) */
static void uvae__tap_offsets(const uvae__conv_shape *g, int n, ptrdiff_t *off) {
    const int k = g->k, Wp = g->W + 2 * g->p, CK = g->Ci * k * k;
    const ptrdiff_t HpWp = (ptrdiff_t)(g->H + 2 * g->p) * Wp;
    for (int r = 0; r < n; r++) off[r] = r < CK ? r / (k * k) * HpWp + (r / k % k) * Wp + r % k : 0;
}
/* conv_fwd for stride 1 without im2col ("implicit GEMM"). With x zero-padded to xp [Ci, Hp, Wp],
   output (oh, ow) at q = oh*Wp + ow of a grid Wp wide, and row r = (ci*k + ki)*k + kj of col(x):
     col(x)[r][q] = xp[ci*Hp*Wp + ki*Wp + kj + q] = xp[off[r] + q]
   so each row of an NR-column panel of col(x) is NR consecutive floats of xp, and the micro-kernel
   reads them in place through the offsets off[]: no im2col, no packing of B. The k-1 extra columns
   per output row (ow >= Wo) are computed and dropped; xp has NR + k floats of zeros beyond its
   end for the last panel's overhang. Sums run over k in the same KC slices and order as the
   packed GEMM, so the result is bitwise that of im2col + GEMM. Images go one at a time; threads
   split each image's tiles. Scratch: packed w [Mp x CK] | off [CK] | xp [Ci*Hp*Wp + k + NR] |
   the grid output [Co, Ho*Wp] (uvae__conv_scratch). */
static void uvae__cpu_conv_fwd_implicit(const uvae__conv_shape *g, const float *x, const float *w, int flip, float *y, int acc,
                                        float *scratch) {
    const int k = g->k, p = g->p, H = g->H, W = g->W, Hp = H + 2 * p, Wp = W + 2 * p, Co = g->Co, Ci = g->Ci;
    const int CK = Ci * k * k, L = g->Ho * Wp, np = (Co + UVAE__MR - 1) / UVAE__MR, nq = (L + UVAE__NR - 1) / UVAE__NR;
    const size_t HpWp = (size_t)Hp * Wp, xs = (size_t)Ci * H * W, HWo = (size_t)g->Ho * g->Wo, Mp = (size_t)np * UVAE__MR;
    float *Ap = (float *)uvae__align(scratch);
    ptrdiff_t *off = (ptrdiff_t *)(Ap + Mp * CK);                    /* CK offsets, 8-byte aligned */
    float *xp = (float *)(off + CK), *t = xp + Ci * HpWp + k + UVAE__NR;
    int i;
    if (!uvae__ukr) uvae__cpu_kernel(0);
    uvae__tap_offsets(g, CK, off);
    /* w [Co, CK] as MR-row panels per KC slice: slice pc, panel ip at Ap + pc*Mp + ip*kc*MR.
       flip: w is [Ci, Co, k, k] (the weights of the convolution whose data gradient this is), read
       as w'[co][(ci*k + ki)*k + kj] = w[ci][co][k-1-ki][k-1-kj] */
    for (int pc = 0; pc < CK; pc += UVAE__KC) {
        int kc = CK - pc < UVAE__KC ? CK - pc : UVAE__KC;
        for (int ip = 0; ip < np; ip++) {
            float *dst = Ap + (size_t)pc * Mp + (size_t)ip * kc * UVAE__MR;
            for (int kk = 0; kk < kc; kk++)
                for (int r = 0; r < UVAE__MR; r++) {
                    int row = ip * UVAE__MR + r, col = pc + kk, kk2 = k * k;
                    float v = 0.0f;
                    if (row < Co && !flip) v = w[(size_t)row * CK + col];
                    else if (row < Co) v = w[((size_t)(col / kk2) * Co + row) * kk2 + (kk2 - 1 - col % kk2)];
                    dst[kk * UVAE__MR + r] = v;
                }
        }
    }
    memset(xp, 0, (Ci * HpWp + k + UVAE__NR) * sizeof(float));      /* the border and the tail stay zero */
    for (int n = 0; n < g->N; n++) {
        const float *xn = x + n * xs;
        float *yn = y + n * Co * HWo;
        UVAE__OMP(omp parallel for schedule(static) if ((double)Ci * HpWp > UVAE__PAR_MIN))
        for (i = 0; i < Ci * H; i++)                                 /* xp's interior <- x[n] */
            memcpy(xp + (size_t)(i / H) * HpWp + (size_t)(i % H + p) * Wp + p, xn + (size_t)i * W, (size_t)W * sizeof(float));
        if (acc) {   /* start from y[n], so the sums run as in the GEMM with accumulate */
            UVAE__OMP(omp parallel for schedule(static) if ((double)Co * HWo > UVAE__PAR_MIN))
            for (i = 0; i < Co * g->Ho; i++)
                memcpy(t + (size_t)(i / g->Ho) * L + (size_t)(i % g->Ho) * Wp, yn + (size_t)i * g->Wo, (size_t)g->Wo * sizeof(float));
        }
        UVAE__SHARED_FOR(at, nq * np, (double)Co * L * CK > 1e6) {    /* tiles: column panel outer */
            int jq = at.i / np, ip = at.i % np, q0 = jq * UVAE__NR, r0 = ip * UVAE__MR;
            int rows = Co - r0 < UVAE__MR ? Co - r0 : UVAE__MR, cols = L - q0 < UVAE__NR ? L - q0 : UVAE__NR;
            float tile[UVAE__MR * UVAE__NR], *c = t + (size_t)r0 * L + q0;
            int whole = rows == UVAE__MR && cols == UVAE__NR;
            for (int pc = 0; pc < CK; pc += UVAE__KC) {
                int kc = CK - pc < UVAE__KC ? CK - pc : UVAE__KC;
                const float *a = Ap + (size_t)pc * Mp + (size_t)ip * kc * UVAE__MR;
                int add = acc || pc > 0;
                if (whole) uvae__ukr(kc, UVAE__MR, a, NULL, NULL, xp + q0, off + pc, c, L, add);
                else {
                    uvae__ukr(kc, rows, a, NULL, NULL, xp + q0, off + pc, tile, UVAE__NR, 0);
                    for (int r = 0; r < rows; r++)
                        for (int j = 0; j < cols; j++)
                            c[(size_t)r * L + j] = add ? c[(size_t)r * L + j] + tile[r * UVAE__NR + j] : tile[r * UVAE__NR + j];
                }
            }
        }
        UVAE__OMP(omp parallel for schedule(static) if ((double)Co * HWo > UVAE__PAR_MIN))
        for (i = 0; i < Co * g->Ho; i++)                             /* y[n] <- the grid without its extra columns */
            memcpy(yn + (size_t)i * g->Wo, t + (size_t)(i / g->Ho) * L + (size_t)(i % g->Ho) * Wp, (size_t)g->Wo * sizeof(float));
    }
}
/* dw^T[CK, Np] += A[CK, L] @ B[L, Np] for the weight gradients that read A in place: A(r, q) =
   xp[off[r] + q], or xp[off[r] + pix[q]] when pix is given; B packed as Np/NR panels [L][NR]. Each
   tile stays with its thread while q runs in KC slices, so each sum runs in order whatever the
   thread count. */
static void uvae__dwT_tiles(int CK, int Np, int L, const float *xp, const ptrdiff_t *off, const ptrdiff_t *pix,
                            const float *Bp, float *dwT) {
    int npb = Np / UVAE__NR, nt = (CK + UVAE__MR - 1) / UVAE__MR * npb;
    ptrdiff_t boff[UVAE__KC];
    for (int kk = 0; kk < UVAE__KC; kk++) boff[kk] = (ptrdiff_t)kk * UVAE__NR;
    UVAE__OMP(omp parallel if ((double)CK * Np * L > 1e6))
    for (int pc = 0; pc < L; pc += UVAE__KC) {
        int kc = L - pc < UVAE__KC ? L - pc : UVAE__KC, t;
        /* the same tiles to the same thread in every slice (a static schedule of the same loop), so
           no slice waits for another's tiles: no barrier until the end */
        UVAE__OMP(omp for schedule(static) nowait)
        for (t = 0; t < nt; t++) {                                   /* tiles: CK panel outer, Np panel inner */
            int ip = t / npb, jp = t % npb;
            uvae__ukr(kc, uvae__panel_rows(CK, ip), pix ? xp : xp + pc, off + (size_t)ip * UVAE__MR, pix ? pix + pc : NULL,
                      Bp + ((size_t)jp * L + pc) * UVAE__NR, boff, dwT + (size_t)ip * UVAE__MR * Np + jp * UVAE__NR, Np, 1);
        }
    }
}
/* conv_bwd_w for stride 1 without im2col. With dy[n] on the padded grid (q = oh*Wp + ow as in
   conv_fwd_implicit, zeros at the extra columns ow >= Wo), the weight gradient transposed is
     dw^T[CK, Co] += col(x[n])[CK, L] @ dy_grid[n]^T[L, Co],   a product over the L grid positions,
   whose A operand is read in place: A(r, q) = col(x)[r][q] = xp[off[r] + q] (the micro-kernel's
   row offsets are off[], its k-stride 1). B = dy_grid^T is packed once per image as NR-column
   panels over Co; every row of col(x) then serves all Co panels and every packed row all CK ones.
   Tiles of dw^T stay with their thread while q runs in KC slices, so each sum runs over images and
   q in order, whatever the thread count. Scratch: dw^T [CKp, Np] | off [CKp] | xp [Ci*Hp*Wp + k
   + NR] | packed dy [Np/NR][L][NR] (uvae__bwd_w_implicit_scratch). */
static void uvae__cpu_conv_bwd_w_implicit(const uvae__conv_shape *g, const float *x, const float *dy, float *dw, float *scratch) {
    const int k = g->k, p = g->p, H = g->H, W = g->W, Hp = H + 2 * p, Wp = W + 2 * p, Co = g->Co, Ci = g->Ci, Ho = g->Ho, Wo = g->Wo;
    const int CK = Ci * k * k, L = Ho * Wp, npa = (CK + UVAE__MR - 1) / UVAE__MR, npb = (Co + UVAE__NR - 1) / UVAE__NR;
    const int CKp = npa * UVAE__MR, Np = npb * UVAE__NR;
    const size_t HpWp = (size_t)Hp * Wp, xs = (size_t)Ci * H * W, HWo = (size_t)Ho * Wo;
    float *dwT = (float *)uvae__align(scratch);
    ptrdiff_t *off = (ptrdiff_t *)(dwT + (size_t)CKp * Np);
    float *xp = (float *)(off + CKp), *Bp = xp + Ci * HpWp + k + UVAE__NR;
    int i;
    if (!uvae__ukr) uvae__cpu_kernel(0);
    uvae__tap_offsets(g, CKp, off);      /* the rows past CK (the last panel's padding) read row 0; unused */
    memset(dwT, 0, (size_t)CKp * Np * sizeof(float));
    memset(xp, 0, (Ci * HpWp + k + UVAE__NR) * sizeof(float));      /* the border and the tail stay zero */
    for (int n = 0; n < g->N; n++) {
        const float *xn = x + n * xs, *dn = dy + n * Co * HWo;
        UVAE__OMP(omp parallel for schedule(static) if ((double)Ci * HpWp > UVAE__PAR_MIN))
        for (i = 0; i < Ci * H; i++)                                 /* xp's interior <- x[n] */
            memcpy(xp + (size_t)(i / H) * HpWp + (size_t)(i % H + p) * Wp + p, xn + (size_t)i * W, (size_t)W * sizeof(float));
        UVAE__OMP(omp parallel for schedule(static) if ((double)Np * L > UVAE__PAR_MIN))
        for (i = 0; i < npb * Ho; i++) {                             /* Bp[jp][q][j] <- dy[n][jp*NR + j] at q */
            int jp = i / Ho, oh = i % Ho;
            float *d = Bp + ((size_t)jp * L + (size_t)oh * Wp) * UVAE__NR;
            for (int j = 0; j < UVAE__NR; j++) {
                int co = jp * UVAE__NR + j;
                const float *src = dn + (size_t)co * HWo + (size_t)oh * Wo;
                for (int ow = 0; ow < Wp; ow++) d[ow * UVAE__NR + j] = co < Co && ow < Wo ? src[ow] : 0.0f;
            }
        }
        uvae__dwT_tiles(CK, Np, L, xp, off, NULL, Bp, dwT);
    }
    UVAE__OMP(omp parallel for schedule(static) if ((double)Co * CK > UVAE__PAR_MIN))
    for (i = 0; i < Co; i++)                                         /* dw += (dw^T)^T */
        for (int r = 0; r < CK; r++) dw[(size_t)i * CK + r] += dwT[(size_t)r * Np + i];
}
/* Winograd's transforms of a run of n <= UVAE__WG_SEG tiles along a tile row, written once and
   compiled for each micro-kernel's instruction set (vectorised over the tiles).
   wg_in: nr tile rows of n tiles each (nr * n <= UVAE__WG_SEG), one after the other in v (so nr is
   1 or the rows are whole); xr[4r + a] (a = 0..3) the 4 input rows of tile row r (NULL: outside x,
   zeros), c0 the column of the first tile's patch (2 * j0 - 1). The 4x4 patches are gathered first,
   d[a*4 + c][t] = x_a[c0 + 2j + c] for tile t = r*n + j (zeros outside 0..W-1), so that the
   transform v[e*vs + t] = (B^T d B)[e], e = a*4 + c, is one loop over all nr * n tiles (a tile row
   is short: 8 tiles at 16x16).
   wg_out: m[e*ms + j] the 16 products of tile j; its 2x2 block A^T m A goes to r[2j..2j+1] (top)
   and r[rs + 2j..2j+1] (bottom). */
#define UVAE__WG_SEG 256
#define UVAE__WG_IN(NAME, TARGET)                                                                                 \
    TARGET static void NAME(int nr, int n, const float *const *xr, int c0, int W, float *v, size_t vs) {         \
        float d[16][UVAE__WG_SEG];                                                                                \
        int lo = c0 < 0 ? (1 - c0) / 2 : 0, hi = W - 4 - c0 >= 0 ? (W - 4 - c0) / 2 + 1 : 0, t;   /* [lo, hi): inside */ \
        if (hi > n) hi = n;                                                                                       \
        if (lo > hi) lo = hi;                                                                                     \
        for (int r = 0; r < nr; r++)                                                                              \
            for (int a = 0; a < 4; a++) {                                                                         \
                const float *x = xr[4 * r + a];                                                                   \
                float *d0 = d[4 * a] + r * n, *d1 = d[4 * a + 1] + r * n, *d2 = d[4 * a + 2] + r * n, *d3 = d[4 * a + 3] + r * n; \
                int j;                                                                                            \
                if (!x) {                                                                                         \
                    for (int c = 0; c < 4; c++) memset(d[4 * a + c] + r * n, 0, (size_t)n * sizeof(float));      \
                    continue;                                                                                     \
                }                                                                                                 \
                UVAE__OMP(omp simd)                                                                               \
                for (j = lo; j < hi; j++) {                                                                       \
                    d0[j] = x[c0 + 2 * j]; d1[j] = x[c0 + 2 * j + 1]; d2[j] = x[c0 + 2 * j + 2]; d3[j] = x[c0 + 2 * j + 3]; \
                }                                                                                                 \
                for (int k = 0; k < lo + n - hi; k++) {                         /* the others, j < lo, j >= hi */ \
                    j = k < lo ? k : hi + k - lo;                                                                 \
                    for (int c = 0; c < 4; c++) {                                                                 \
                        int col = c0 + 2 * j + c;                                                                 \
                        d[4 * a + c][r * n + j] = col >= 0 && col < W ? x[col] : 0.0f;                            \
                    }                                                                                             \
                }                                                                                                 \
            }                                                                                                     \
        UVAE__OMP(omp simd)                                                                                       \
        for (t = 0; t < nr * n; t++) {                                                                            \
            float s00 = d[0][t] - d[2][t], s01 = d[1][t] + d[2][t], s02 = d[2][t] - d[1][t], s03 = d[1][t] - d[3][t];         \
            float s10 = d[4][t] - d[6][t], s11 = d[5][t] + d[6][t], s12 = d[6][t] - d[5][t], s13 = d[5][t] - d[7][t];         \
            float s20 = d[8][t] - d[10][t], s21 = d[9][t] + d[10][t], s22 = d[10][t] - d[9][t], s23 = d[9][t] - d[11][t];     \
            float s30 = d[12][t] - d[14][t], s31 = d[13][t] + d[14][t], s32 = d[14][t] - d[13][t], s33 = d[13][t] - d[15][t]; \
            v[0 * vs + t] = s00 - s20;  v[1 * vs + t] = s01 - s21;  v[2 * vs + t] = s02 - s22;  v[3 * vs + t] = s03 - s23;   \
            v[4 * vs + t] = s10 + s20;  v[5 * vs + t] = s11 + s21;  v[6 * vs + t] = s12 + s22;  v[7 * vs + t] = s13 + s23;   \
            v[8 * vs + t] = s20 - s10;  v[9 * vs + t] = s21 - s11;  v[10 * vs + t] = s22 - s12; v[11 * vs + t] = s23 - s13;  \
            v[12 * vs + t] = s10 - s30; v[13 * vs + t] = s11 - s31; v[14 * vs + t] = s12 - s32; v[15 * vs + t] = s13 - s33;  \
        }                                                                                                         \
    }
#define UVAE__WG_OUT(NAME, TARGET)                                                                                \
    TARGET static void NAME(int n, const float *m, size_t ms, float *r0, size_t rs) {                            \
        float *r1 = r0 + rs;                                                                                      \
        int j;                                                                                                    \
        UVAE__OMP(omp simd)                                                                                       \
        for (j = 0; j < n; j++) {                                                                                 \
            float t00 = m[0 * ms + j] + m[4 * ms + j] + m[8 * ms + j], t10 = m[4 * ms + j] - m[8 * ms + j] - m[12 * ms + j];   \
            float t01 = m[1 * ms + j] + m[5 * ms + j] + m[9 * ms + j], t11 = m[5 * ms + j] - m[9 * ms + j] - m[13 * ms + j];   \
            float t02 = m[2 * ms + j] + m[6 * ms + j] + m[10 * ms + j], t12 = m[6 * ms + j] - m[10 * ms + j] - m[14 * ms + j]; \
            float t03 = m[3 * ms + j] + m[7 * ms + j] + m[11 * ms + j], t13 = m[7 * ms + j] - m[11 * ms + j] - m[15 * ms + j]; \
            r0[2 * j] = t00 + t01 + t02; r0[2 * j + 1] = t01 - t02 - t03;                                          \
            r1[2 * j] = t10 + t11 + t12; r1[2 * j + 1] = t11 - t12 - t13;                                          \
        }                                                                                                         \
    }
/* wg_dy (the weight gradient's): yr[0], yr[1] the two output-gradient rows of the tile row (yr[1]
   NULL: past the last row), c0 = 2 * j0; tile j's 2x2 block dy goes to z[e*zs + j] = (A dy A^T)[e]. */
#define UVAE__WG_DY(NAME, TARGET)                                                                                 \
    TARGET static void NAME(int n, const float *const *yr, int c0, int Wo, float *z, size_t zs) {               \
        float eo[4][UVAE__WG_SEG];                                                                                \
        const float *e0 = eo[0], *o0 = eo[1], *e1 = eo[2], *o1 = eo[3];                                            \
        int hi = (Wo - c0) / 2, j;                                      /* m < hi: both columns inside */       \
        if (hi > n) hi = n;                                                                                       \
        for (int a = 0; a < 2; a++) {                                                                             \
            const float *y = yr[a];                                                                               \
            float *e = eo[2 * a], *o = eo[2 * a + 1];                                                             \
            int m;                                                                                                \
            if (!y) { memset(e, 0, (size_t)n * sizeof(float)); memset(o, 0, (size_t)n * sizeof(float)); continue; } \
            UVAE__OMP(omp simd)                                                                                   \
            for (m = 0; m < hi; m++) { e[m] = y[c0 + 2 * m]; o[m] = y[c0 + 2 * m + 1]; }                          \
            for (m = hi; m < n; m++) { e[m] = c0 + 2 * m < Wo ? y[c0 + 2 * m] : 0.0f; o[m] = 0.0f; }               \
        }                                                                                                         \
        UVAE__OMP(omp simd)                                                                                       \
        for (j = 0; j < n; j++) {                                                                                 \
            float p00 = e0[j], p01 = o0[j], p10 = e0[j] + e1[j], p11 = o0[j] + o1[j];                             \
            float p20 = e0[j] - e1[j], p21 = o0[j] - o1[j], p30 = -e1[j], p31 = -o1[j];                           \
            z[0 * zs + j] = p00;  z[1 * zs + j] = p00 + p01;  z[2 * zs + j] = p00 - p01;  z[3 * zs + j] = -p01;      \
            z[4 * zs + j] = p10;  z[5 * zs + j] = p10 + p11;  z[6 * zs + j] = p10 - p11;  z[7 * zs + j] = -p11;      \
            z[8 * zs + j] = p20;  z[9 * zs + j] = p20 + p21;  z[10 * zs + j] = p20 - p21; z[11 * zs + j] = -p21;     \
            z[12 * zs + j] = p30; z[13 * zs + j] = p30 + p31; z[14 * zs + j] = p30 - p31; z[15 * zs + j] = -p31;     \
        }                                                                                                         \
    }
/* The same three for F(4x4, 3x3) (Lavin & Gray), 6x6 patches, as two passes of 1-D transforms (down
   the columns, then along the rows) over the tiles' vectors, with
     B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1],
     A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
   (G: uvae__wg_g). wg4_in: xr[6r + a] (a = 0..5), c0 = 4 * j0 - 1; wg4_out: tile j's 4x4 block to
   r[i*rs + 4j + k]; wg4_dy: yr[0..3] (NULL: past the last row), c0 = 4 * j0. Each 1-D transform
   reads all its inputs before it writes (it may run in place). */
#define UVAE__WG4_BT(x0, x1, x2, x3, x4, x5, o0, o1, o2, o3, o4, o5)                                             \
    do {                                                                                                          \
        float b0_ = 4 * (x0) - 5 * (x2) + (x4), b1_ = (x4) + (x3) - 4 * ((x1) + (x2));                            \
        float b2_ = (x4) - (x3) + 4 * ((x1) - (x2)), b3_ = (x4) - (x2) + 2 * ((x3) - (x1));                       \
        float b4_ = (x4) - (x2) - 2 * ((x3) - (x1)), b5_ = 4 * (x1) - 5 * (x3) + (x5);                            \
        o0 = b0_; o1 = b1_; o2 = b2_; o3 = b3_; o4 = b4_; o5 = b5_;                                               \
    } while (0)
#define UVAE__WG4_AT(x0, x1, x2, x3, x4, x5, o0, o1, o2, o3)                                                     \
    do {                                                                                                          \
        float p12_ = (x1) + (x2), m12_ = (x1) - (x2), p34_ = (x3) + (x4), m34_ = (x3) - (x4), x5_ = (x5);        \
        o0 = (x0) + p12_ + p34_; o1 = m12_ + 2 * m34_; o2 = p12_ + 4 * p34_; o3 = m12_ + 8 * m34_ + x5_;          \
    } while (0)
#define UVAE__WG4_A(y0, y1, y2, y3, z0, z1, z2, z3, z4, z5)                                                      \
    do {                                                                                                          \
        float y0_ = (y0), y3_ = (y3), p02_ = y0_ + (y2), p13_ = (y1) + y3_, q02_ = y0_ + 4 * (y2);                 \
        float q13_ = 2 * (y1) + 8 * y3_;                                                                          \
        z0 = y0_; z1 = p02_ + p13_; z2 = p02_ - p13_; z3 = q02_ + q13_; z4 = q02_ - q13_; z5 = y3_;               \
    } while (0)
#define UVAE__WG4_ROW(t, v, vs, t0, k)   /* (B^T d) B for tile t0 + k along one row of B^T d */                \
    UVAE__WG4_BT(t[4 * (k)], t[4 * (k) + 1], t[4 * (k) + 2], t[4 * (k) + 3], t[4 * (k) + 4], t[4 * (k) + 5],     \
                 v[(t0) + (k)], v[vs + (t0) + (k)], v[2 * (vs) + (t0) + (k)], v[3 * (vs) + (t0) + (k)],           \
                 v[4 * (vs) + (t0) + (k)], v[5 * (vs) + (t0) + (k)])
/* runs of K tiles of the row pass, (B^T d) B vectorised over the tiles; the AVX-512 forms below */
#define UVAE__WG4_RUN(t, v, vs, t0, K)                                                                            \
    do {                                                                                                          \
        int k_;                                                                                                   \
        UVAE__OMP(omp simd)                                                                                       \
        for (k_ = 0; k_ < (K); k_++) UVAE__WG4_ROW(t, v, vs, t0, k_);                                             \
    } while (0)
#define UVAE__WG4_RUN16(t, v, vs, t0) UVAE__WG4_RUN(t, v, vs, t0, 16)
#define UVAE__WG4_RUN8(t, v, vs, t0, c) UVAE__WG4_RUN(t, v, vs, t0, c)
#ifdef UVAE__X86
/* UVAE__WG4_BT on 16 tiles in lanes (the same operations in the same order: the same bits), its
   six results to v[e * vs + lane], e = 0..5, for the lanes in km */
__attribute__((target("avx512f")))
static inline void uvae__wg4_bt_avx512(__m512 x0, __m512 x1, __m512 x2, __m512 x3, __m512 x4, __m512 x5, float *v, size_t vs,
                                       __mmask16 km) {
    const __m512 c2 = _mm512_set1_ps(2.0f), c4 = _mm512_set1_ps(4.0f), c5 = _mm512_set1_ps(5.0f);
    const __m512 d31 = _mm512_sub_ps(x3, x1), d42 = _mm512_sub_ps(x4, x2);
    _mm512_mask_storeu_ps(v, km, _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(c4, x0), _mm512_mul_ps(c5, x2)), x4));
    _mm512_mask_storeu_ps(v + vs, km, _mm512_sub_ps(_mm512_add_ps(x4, x3), _mm512_mul_ps(c4, _mm512_add_ps(x1, x2))));
    _mm512_mask_storeu_ps(v + 2 * vs, km, _mm512_add_ps(_mm512_sub_ps(x4, x3), _mm512_mul_ps(c4, _mm512_sub_ps(x1, x2))));
    _mm512_mask_storeu_ps(v + 3 * vs, km, _mm512_add_ps(d42, _mm512_mul_ps(c2, d31)));
    _mm512_mask_storeu_ps(v + 4 * vs, km, _mm512_sub_ps(d42, _mm512_mul_ps(c2, d31)));
    _mm512_mask_storeu_ps(v + 5 * vs, km, _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(c4, x1), _mm512_mul_ps(c5, x3)), x5));
}
/* 16 tiles: tile k's patch row is t[4k .. 4k+5], so x_c[k] = t[4k + c]: c = 0..3 by two-source
   permutes (lanes 0..7 from t[0..31], 8..15 from t[32..63]), x4 and x5 are x0 and x1 moved down a
   lane with t[64] and t[65] last. Reads t[0..65]. */
__attribute__((target("avx512f")))
static void uvae__wg4_run16_avx512(const float *t, float *v, size_t vs) {
    const __m512i q = _mm512_set_epi32(28, 24, 20, 16, 12, 8, 4, 0, 28, 24, 20, 16, 12, 8, 4, 0);
    const __m512i one = _mm512_set1_epi32(1), q1 = _mm512_add_epi32(q, one), q2 = _mm512_add_epi32(q1, one), q3 = _mm512_add_epi32(q2, one);
    const __m512 a0 = _mm512_loadu_ps(t), a1 = _mm512_loadu_ps(t + 16), a2 = _mm512_loadu_ps(t + 32), a3 = _mm512_loadu_ps(t + 48);
    /* named, not an array in a loop: at -O2 GCC kept such an array in memory */
#define UVAE__WG4_X(qc) _mm512_mask_blend_ps(0xFF00, _mm512_permutex2var_ps(a0, qc, a1), _mm512_permutex2var_ps(a2, qc, a3))
    const __m512 x0 = UVAE__WG4_X(q), x1 = UVAE__WG4_X(q1), x2 = UVAE__WG4_X(q2), x3 = UVAE__WG4_X(q3);
#undef UVAE__WG4_X
    uvae__wg4_bt_avx512(x0, x1, x2, x3,
                        _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(_mm512_maskz_loadu_ps(1, t + 64)),
                                                                _mm512_castps_si512(x0), 1)),
                        _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(_mm512_maskz_loadu_ps(1, t + 65)),
                                                                _mm512_castps_si512(x1), 1)),
                        v, vs, 0xFFFF);
}
/* c <= 8 tiles, in lanes 0..c-1: x_c from t[0..31], x4 and x5 from t[4..35], read only up to
   t[4c+1] (masked loads: the rest are zeros, in lanes never stored) */
__attribute__((target("avx512f")))
static void uvae__wg4_run8_avx512(const float *t, float *v, size_t vs, int c) {
    const __m512i q = _mm512_set_epi32(28, 24, 20, 16, 12, 8, 4, 0, 28, 24, 20, 16, 12, 8, 4, 0), one = _mm512_set1_epi32(1);
    const int nv = 4 * c + 2;                                          /* t[0 .. nv-1] */
#define UVAE__WG4_LM(o) ((__mmask16)(nv - (o) >= 16 ? 0xFFFFu : nv - (o) <= 0 ? 0u : (1u << (nv - (o))) - 1))
    const __m512 a0 = _mm512_maskz_loadu_ps(UVAE__WG4_LM(0), t), a1 = _mm512_maskz_loadu_ps(UVAE__WG4_LM(16), t + 16);
    const __m512 b0 = _mm512_maskz_loadu_ps(UVAE__WG4_LM(4), t + 4), b1 = _mm512_maskz_loadu_ps(UVAE__WG4_LM(20), t + 20);
#undef UVAE__WG4_LM
    const __m512i q2 = _mm512_add_epi32(q, _mm512_add_epi32(one, one));
    uvae__wg4_bt_avx512(_mm512_permutex2var_ps(a0, q, a1), _mm512_permutex2var_ps(a0, _mm512_add_epi32(q, one), a1),
                        _mm512_permutex2var_ps(a0, q2, a1), _mm512_permutex2var_ps(a0, _mm512_add_epi32(q2, one), a1),
                        _mm512_permutex2var_ps(b0, q, b1), _mm512_permutex2var_ps(b0, _mm512_add_epi32(q, one), b1), v, vs,
                        (__mmask16)((1u << c) - 1));
}
#define UVAE__WG4_RUN16_AVX512(t, v, vs, t0) uvae__wg4_run16_avx512(t, (v) + (t0), vs)
#define UVAE__WG4_RUN8_AVX512(t, v, vs, t0, c) uvae__wg4_run8_avx512(t, (v) + (t0), vs, c)
#endif
#define UVAE__WG4_IN(NAME, TARGET, RUN16, RUN8)                                                                   \
    TARGET static void NAME(int nr, int n, const float *const *xr, int c0, int W, float *v, size_t vs) {         \
        float b[6][4 * UVAE__WG_SEG + 16], zr[4 * UVAE__WG_SEG + 16]; /* B^T d of a tile row: columns c0 .. c0 + 4n + 1 */ \
        const int L = 4 * n + 2;                                                                                      \
        const int cl = c0 < 0 ? -c0 : 0, ch = W - c0 < L ? W - c0 : L;             /* [cl, ch): inside x */     \
        int zeroed = 0;                                                                                           \
        for (int r = 0; r < nr; r++) {                                                                            \
            float *b0 = b[0] + cl, *b1 = b[1] + cl, *b2 = b[2] + cl, *b3 = b[3] + cl, *b4 = b[4] + cl, *b5 = b[5] + cl; \
            const float *x[6];                                            /* from column c0 + cl; zeros: no row */ \
            int k;                                                                                                \
            for (int a = 0; a < 6; a++) {                                                                         \
                if (!xr[6 * r + a] && !zeroed) { memset(zr, 0, sizeof zr); zeroed = 1; }                          \
                x[a] = xr[6 * r + a] ? xr[6 * r + a] + c0 + cl : zr;                                              \
            }                                                                                                     \
            UVAE__OMP(omp simd)                                           /* B^T d: down the columns */          \
            for (k = 0; k < ch - cl; k++)                                                                         \
                UVAE__WG4_BT(x[0][k], x[1][k], x[2][k], x[3][k], x[4][k], x[5][k], b0[k], b1[k], b2[k], b3[k], b4[k], b5[k]); \
            for (int a = 0; a < 6; a++) {                                 /* columns outside x: zeros */         \
                if (cl > 0) memset(b[a], 0, (size_t)cl * sizeof(float));                                          \
                if (ch < L) memset(b[a] + (ch > cl ? ch : cl), 0, (size_t)(L - (ch > cl ? ch : cl)) * sizeof(float)); \
            }                                                                                                     \
            for (int a = 0; a < 6; a++) {                                 /* then along the rows, into v */      \
                const float *t = b[a];                                                                            \
                float *va = v + (size_t)(6 * a) * vs;                                                             \
                int j = 0, t0 = r * n;                                                                            \
                for (; j + 16 <= n; j += 16, t += 64) RUN16(t, va, vs, t0 + j);  /* runs of 16, then up to 8 */  \
                for (; j < n; j += 8, t += 32) RUN8(t, va, vs, t0 + j, n - j < 8 ? n - j : 8);                    \
            }                                                                                                     \
        }                                                                                                         \
    }
#define UVAE__WG4_OUT(NAME, TARGET)                                                                               \
    TARGET static void NAME(int n, const float *m, size_t ms, float *r, size_t rs) {                             \
        int j;                                                                                                    \
        UVAE__OMP(omp simd)                                                                                       \
        for (j = 0; j < n; j++) {                                                                                 \
            float s00, s01, s02, s03, s04, s05, s10, s11, s12, s13, s14, s15;                                     \
            float s20, s21, s22, s23, s24, s25, s30, s31, s32, s33, s34, s35;                                     \
            const float *q = m + j;                                                                               \
            float *r0 = r + 4 * j, *r1 = r0 + rs, *r2 = r1 + rs, *r3 = r2 + rs;                                   \
            UVAE__WG4_AT(q[0], q[6 * ms], q[12 * ms], q[18 * ms], q[24 * ms], q[30 * ms], s00, s10, s20, s30);    \
            UVAE__WG4_AT(q[ms], q[7 * ms], q[13 * ms], q[19 * ms], q[25 * ms], q[31 * ms], s01, s11, s21, s31);   \
            UVAE__WG4_AT(q[2 * ms], q[8 * ms], q[14 * ms], q[20 * ms], q[26 * ms], q[32 * ms], s02, s12, s22, s32); \
            UVAE__WG4_AT(q[3 * ms], q[9 * ms], q[15 * ms], q[21 * ms], q[27 * ms], q[33 * ms], s03, s13, s23, s33); \
            UVAE__WG4_AT(q[4 * ms], q[10 * ms], q[16 * ms], q[22 * ms], q[28 * ms], q[34 * ms], s04, s14, s24, s34); \
            UVAE__WG4_AT(q[5 * ms], q[11 * ms], q[17 * ms], q[23 * ms], q[29 * ms], q[35 * ms], s05, s15, s25, s35); \
            UVAE__WG4_AT(s00, s01, s02, s03, s04, s05, r0[0], r0[1], r0[2], r0[3]);                               \
            UVAE__WG4_AT(s10, s11, s12, s13, s14, s15, r1[0], r1[1], r1[2], r1[3]);                               \
            UVAE__WG4_AT(s20, s21, s22, s23, s24, s25, r2[0], r2[1], r2[2], r2[3]);                               \
            UVAE__WG4_AT(s30, s31, s32, s33, s34, s35, r3[0], r3[1], r3[2], r3[3]);                               \
        }                                                                                                         \
    }
#define UVAE__WG4_DY(NAME, TARGET)                                                                                \
    TARGET static void NAME(int n, const float *const *yr, int c0, int Wo, float *z, size_t zs) {               \
        float h[24][UVAE__WG_SEG];                      /* row i of the 4x4 blocks: 4 columns, then 6 (A dy) */   \
        int hi = (Wo - c0) / 4, j;                                      /* j < hi: all 4 columns inside */      \
        if (hi > n) hi = n;                                                                                       \
        for (int i = 0; i < 4; i++) {                                                                             \
            const float *y = yr[i];                                                                               \
            float *h0 = h[6 * i], *h1 = h0 + UVAE__WG_SEG, *h2 = h1 + UVAE__WG_SEG, *h3 = h2 + UVAE__WG_SEG;      \
            float *h4 = h3 + UVAE__WG_SEG, *h5 = h4 + UVAE__WG_SEG;                                               \
            if (!y) {                                                                                             \
                for (int c = 0; c < 6; c++) memset(h[6 * i + c], 0, (size_t)n * sizeof(float));                  \
                continue;                                                                                         \
            }                                                                                                     \
            UVAE__OMP(omp simd)                                                                                   \
            for (j = 0; j < hi; j++) {                                                                            \
                h0[j] = y[c0 + 4 * j]; h1[j] = y[c0 + 4 * j + 1]; h2[j] = y[c0 + 4 * j + 2]; h3[j] = y[c0 + 4 * j + 3]; \
            }                                                                                                     \
            for (j = hi; j < n; j++)                                                                              \
                for (int k = 0; k < 4; k++) h[6 * i + k][j] = c0 + 4 * j + k < Wo ? y[c0 + 4 * j + k] : 0.0f;     \
            UVAE__OMP(omp simd)                                                                                   \
            for (j = 0; j < n; j++) UVAE__WG4_A(h0[j], h1[j], h2[j], h3[j], h0[j], h1[j], h2[j], h3[j], h4[j], h5[j]); \
        }                                                                                                         \
        for (int c = 0; c < 6; c++) {                                   /* A (dy A^T): down each column, into z */ \
            const float *g0 = h[c], *g1 = h[6 + c], *g2 = h[12 + c], *g3 = h[18 + c];                             \
            float *z0 = z + (size_t)c * zs;                                                                       \
            UVAE__OMP(omp simd)                                                                                   \
            for (j = 0; j < n; j++)                                                                               \
                UVAE__WG4_A(g0[j], g1[j], g2[j], g3[j], z0[j], z0[6 * zs + j], z0[12 * zs + j], z0[18 * zs + j],  \
                            z0[24 * zs + j], z0[30 * zs + j]);                                                    \
        }                                                                                                         \
    }
/* The weights' side of Winograd (once per weight, not per tile), n kernels at once (vectorised over
   j): o[a * os + j] = (G x_j)[a], a < m + 2, x_j = (x0[j], x1[j], x2[j]), with
   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1] for F(2x2) and
   G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1] for F(4x4);
   and o = G^T u, 3 values from m + 2 (the weight gradient's way back). */
static inline void uvae__wg_g(int m, int n, const float *x0, const float *x1, const float *x2, float *o, size_t os) {
    int j;
    if (m == 2) {
        UVAE__OMP(omp simd)
        for (j = 0; j < n; j++) {
            float w0 = x0[j], w1 = x1[j], w2 = x2[j];
            o[j] = w0; o[os + j] = 0.5f * (w0 + w1 + w2); o[2 * os + j] = 0.5f * (w0 - w1 + w2); o[3 * os + j] = w2;
        }
    } else {
        UVAE__OMP(omp simd)
        for (j = 0; j < n; j++) {
            float w0 = x0[j], w1 = x1[j], w2 = x2[j], s = w0 + w2, t = w0 * (1.0f / 24) + w2 * (1.0f / 6);
            o[j] = 0.25f * w0; o[os + j] = -(s + w1) * (1.0f / 6); o[2 * os + j] = -(s - w1) * (1.0f / 6);
            o[3 * os + j] = t + w1 * (1.0f / 12); o[4 * os + j] = t - w1 * (1.0f / 12); o[5 * os + j] = w2;
        }
    }
}
static inline void uvae__wg_gt(int m, int n, const float *u, size_t us, float *o, size_t os) {
    int j;                                                             /* o[k * os + j] = (G^T u_j)[k], u_j[a] = u[a * us + j] */
    if (m == 2) {
        UVAE__OMP(omp simd)
        for (j = 0; j < n; j++) {
            float u0 = u[j], u1 = u[us + j], u2 = u[2 * us + j], u3 = u[3 * us + j];
            o[j] = u0 + 0.5f * (u1 + u2); o[os + j] = 0.5f * (u1 - u2); o[2 * os + j] = 0.5f * (u1 + u2) + u3;
        }
    } else {
        UVAE__OMP(omp simd)
        for (j = 0; j < n; j++) {
            float u0 = u[j], u1 = u[us + j], u2 = u[2 * us + j], u3 = u[3 * us + j], u4 = u[4 * us + j], u5 = u[5 * us + j];
            float p12 = (u1 + u2) * (1.0f / 6), p34 = u3 + u4;
            o[j] = 0.25f * u0 - p12 + p34 * (1.0f / 24); o[os + j] = (u2 - u1) * (1.0f / 6) + (u3 - u4) * (1.0f / 12);
            o[2 * os + j] = p34 * (1.0f / 6) - p12 + u5;
        }
    }
}
/* U = G w G^T of n <= UVAE__WG_WB kernels at once: kernel j's 9 values at w[3 k + l][j], its P
   transformed values to u[e * us + j] (the compiler vectorises over j) */
#define UVAE__WG_WB 192
#define UVAE__WG_W(NAME, TARGET)                                                                                  \
    TARGET static void NAME(int m, int n, const float (*w)[UVAE__WG_WB], float *u, size_t us) {                  \
        float h[3][6][UVAE__WG_WB];                                    /* h[b][a][j] = (G w_j)[a][b] */           \
        for (int b = 0; b < 3; b++) uvae__wg_g(m, n, w[b], w[3 + b], w[6 + b], h[b][0], UVAE__WG_WB);           \
        for (int a = 0; a < m + 2; a++) uvae__wg_g(m, n, h[0][a], h[1][a], h[2][a], u + (size_t)a * (m + 2) * us, us); \
    }
/* dw[j * dws + 3 k + l] += (G^T dU_j G)[k][l] for n <= UVAE__NR kernels, dU_j[e] at du[e * ds + j],
   e = a (m+2) + c: the weight gradient's transform back, vectorised over j */
#define UVAE__WG_DW(NAME, TARGET)                                                                                 \
    TARGET static void NAME(int m, int n, const float *du, size_t ds, float *dw, size_t dws) {                   \
        float q[3][6][UVAE__NR], o[3][UVAE__NR];                       /* q[k][c][j] = (G^T dU_j)[k][c] */        \
        for (int c = 0; c < m + 2; c++) uvae__wg_gt(m, n, du + c * ds, (size_t)(m + 2) * ds, q[0][c], 6 * UVAE__NR); \
        for (int k = 0; k < 3; k++) {                                  /* row k of dw_j = q[k] G */               \
            uvae__wg_gt(m, n, q[k][0], UVAE__NR, o[0], UVAE__NR);                                                 \
            for (int j = 0; j < n; j++)                                                                           \
                for (int l = 0; l < 3; l++) dw[(size_t)j * dws + 3 * k + l] += o[l][j];                           \
        }                                                                                                         \
    }
UVAE__WG_IN(uvae__wg_in_generic, )
UVAE__WG_DW(uvae__wg_dw_generic, )
UVAE__WG_W(uvae__wg_w_generic, )
UVAE__WG_OUT(uvae__wg_out_generic, )
UVAE__WG_DY(uvae__wg_dy_generic, )
UVAE__WG4_IN(uvae__wg4_in_generic, , UVAE__WG4_RUN16, UVAE__WG4_RUN8)
UVAE__WG4_OUT(uvae__wg4_out_generic, )
UVAE__WG4_DY(uvae__wg4_dy_generic, )
#ifdef UVAE__X86
UVAE__WG_IN(uvae__wg_in_avx2, __attribute__((target("avx2,fma"))))
UVAE__WG_OUT(uvae__wg_out_avx2, __attribute__((target("avx2,fma"))))
UVAE__WG_DY(uvae__wg_dy_avx2, __attribute__((target("avx2,fma"))))
UVAE__WG_W(uvae__wg_w_avx2, __attribute__((target("avx2,fma"))))
UVAE__WG_DW(uvae__wg_dw_avx2, __attribute__((target("avx2,fma"))))
UVAE__WG_IN(uvae__wg_in_avx512, __attribute__((target("avx512f"))))
UVAE__WG_OUT(uvae__wg_out_avx512, __attribute__((target("avx512f"))))
UVAE__WG_DY(uvae__wg_dy_avx512, __attribute__((target("avx512f"))))
UVAE__WG_W(uvae__wg_w_avx512, __attribute__((target("avx512f"))))
UVAE__WG_DW(uvae__wg_dw_avx512, __attribute__((target("avx512f"))))
UVAE__WG4_IN(uvae__wg4_in_avx2, __attribute__((target("avx2,fma"))), UVAE__WG4_RUN16, UVAE__WG4_RUN8)
UVAE__WG4_DY(uvae__wg4_dy_avx2, __attribute__((target("avx2,fma"))))
UVAE__WG4_IN(uvae__wg4_in_avx512, __attribute__((target("avx512f"))), UVAE__WG4_RUN16_AVX512, UVAE__WG4_RUN8_AVX512)
/* UVAE__WG4_OUT on vectors (in a function with its parameters m, ms, r, rs): the tiles in the lanes
   of vectors of type V (P: the intrinsics' prefix), L tiles at a time for the first N (a multiple of
   L), UVAE__WG4_AT's operations in the same order (the same bits); a row's outputs, the 4 columns of
   each tile side by side, are a transpose away (ROW). The compiler's vectorisation of the generic
   loop stored them one float at a time. Only whole runs: AVX2's masked stores are microcoded on
   AMD's cores, and on AVX-512 a masked run of 8 tiles was slower than the AVX2 run of 8 (Zen 4), so
   AVX-512 takes runs of 16, then one of 8 with AVX2, then the generic loop. */
#define UVAE__WG4_ATV(P, V, x0, x1, x2, x3, x4, x5, o0, o1, o2, o3)                                              \
    do {                                                                                                          \
        const V p12_ = P##add_ps(x1, x2), m12_ = P##sub_ps(x1, x2), p34_ = P##add_ps(x3, x4), m34_ = P##sub_ps(x3, x4); \
        o0 = P##add_ps(P##add_ps(x0, p12_), p34_);                                                                \
        o1 = P##add_ps(m12_, P##mul_ps(P##set1_ps(2.0f), m34_));                                                  \
        o2 = P##add_ps(p12_, P##mul_ps(P##set1_ps(4.0f), p34_));                                                  \
        o3 = P##add_ps(P##add_ps(m12_, P##mul_ps(P##set1_ps(8.0f), m34_)), x5);                                   \
    } while (0)
#define UVAE__WG4_OUTV(N, P, V, L, ROW)                                                                           \
    for (int j = 0; j < (N); j += L) {                                                                            \
        const float *q = m + j;                                                                                   \
        float *r0 = r + 4 * j;                                                                                    \
        V s00, s01, s02, s03, s04, s05, s10, s11, s12, s13, s14, s15;                                             \
        V s20, s21, s22, s23, s24, s25, s30, s31, s32, s33, s34, s35, o0, o1, o2, o3;                             \
        UVAE__WG4_ATV(P, V, P##loadu_ps(q), P##loadu_ps(q + 6 * ms), P##loadu_ps(q + 12 * ms), P##loadu_ps(q + 18 * ms), \
                      P##loadu_ps(q + 24 * ms), P##loadu_ps(q + 30 * ms), s00, s10, s20, s30);                    \
        UVAE__WG4_ATV(P, V, P##loadu_ps(q + ms), P##loadu_ps(q + 7 * ms), P##loadu_ps(q + 13 * ms), P##loadu_ps(q + 19 * ms), \
                      P##loadu_ps(q + 25 * ms), P##loadu_ps(q + 31 * ms), s01, s11, s21, s31);                    \
        UVAE__WG4_ATV(P, V, P##loadu_ps(q + 2 * ms), P##loadu_ps(q + 8 * ms), P##loadu_ps(q + 14 * ms), P##loadu_ps(q + 20 * ms), \
                      P##loadu_ps(q + 26 * ms), P##loadu_ps(q + 32 * ms), s02, s12, s22, s32);                    \
        UVAE__WG4_ATV(P, V, P##loadu_ps(q + 3 * ms), P##loadu_ps(q + 9 * ms), P##loadu_ps(q + 15 * ms), P##loadu_ps(q + 21 * ms), \
                      P##loadu_ps(q + 27 * ms), P##loadu_ps(q + 33 * ms), s03, s13, s23, s33);                    \
        UVAE__WG4_ATV(P, V, P##loadu_ps(q + 4 * ms), P##loadu_ps(q + 10 * ms), P##loadu_ps(q + 16 * ms), P##loadu_ps(q + 22 * ms), \
                      P##loadu_ps(q + 28 * ms), P##loadu_ps(q + 34 * ms), s04, s14, s24, s34);                    \
        UVAE__WG4_ATV(P, V, P##loadu_ps(q + 5 * ms), P##loadu_ps(q + 11 * ms), P##loadu_ps(q + 17 * ms), P##loadu_ps(q + 23 * ms), \
                      P##loadu_ps(q + 29 * ms), P##loadu_ps(q + 35 * ms), s05, s15, s25, s35);                    \
        UVAE__WG4_ATV(P, V, s00, s01, s02, s03, s04, s05, o0, o1, o2, o3);                                        \
        ROW(o0, o1, o2, o3, r0);                                                                                  \
        UVAE__WG4_ATV(P, V, s10, s11, s12, s13, s14, s15, o0, o1, o2, o3);                                        \
        ROW(o0, o1, o2, o3, r0 + rs);                                                                             \
        UVAE__WG4_ATV(P, V, s20, s21, s22, s23, s24, s25, o0, o1, o2, o3);                                        \
        ROW(o0, o1, o2, o3, r0 + 2 * rs);                                                                         \
        UVAE__WG4_ATV(P, V, s30, s31, s32, s33, s34, s35, o0, o1, o2, o3);                                        \
        ROW(o0, o1, o2, o3, r0 + 3 * rs);                                                                         \
    }
/* a row of 8 tiles' 4 x 4 output blocks, column k of tile j in lane j of ok, to r[4 j + k]: tile
   4L + i whole in 128-bit lane L of u_i, then the lanes paired */
__attribute__((target("avx2,fma")))
static inline void uvae__wg4_row8(__m256 o0, __m256 o1, __m256 o2, __m256 o3, float *r) {
    const __m256 t0 = _mm256_unpacklo_ps(o0, o1), t1 = _mm256_unpackhi_ps(o0, o1);
    const __m256 t2 = _mm256_unpacklo_ps(o2, o3), t3 = _mm256_unpackhi_ps(o2, o3);
    const __m256 u0 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
    const __m256 u1 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
    const __m256 u2 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
    const __m256 u3 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
    _mm256_storeu_ps(r, _mm256_permute2f128_ps(u0, u1, 0x20));
    _mm256_storeu_ps(r + 8, _mm256_permute2f128_ps(u2, u3, 0x20));
    _mm256_storeu_ps(r + 16, _mm256_permute2f128_ps(u0, u1, 0x31));
    _mm256_storeu_ps(r + 24, _mm256_permute2f128_ps(u2, u3, 0x31));
}
/* the same for 16 tiles: a 4 x 16 transpose (tile 4L + i whole in 128-bit lane L of u_i, then the
   lanes gathered) */
__attribute__((target("avx512f")))
static inline void uvae__wg4_row16(__m512 o0, __m512 o1, __m512 o2, __m512 o3, float *r) {
    __m512 t0, t1, t2, t3, u0, u1, u2, u3, w0, w1, w2, w3;
    UVAE__X_PAIRS(o0, o1, t0, t1);
    UVAE__X_PAIRS(o2, o3, t2, t3);
    UVAE__X_QUADS(t0, t1, t2, t3, u0, u1, u2, u3);
    UVAE__X_LANES(u0, u1, u2, u3, w0, w1, w2, w3);
    _mm512_storeu_ps(r, w0);
    _mm512_storeu_ps(r + 16, w1);
    _mm512_storeu_ps(r + 32, w2);
    _mm512_storeu_ps(r + 48, w3);
}
UVAE__WG4_OUT(uvae__wg4_out_tail_avx2, __attribute__((target("avx2,fma"))))
__attribute__((target("avx2,fma")))
static void uvae__wg4_out_avx2(int n, const float *m, size_t ms, float *r, size_t rs) {
    const int n8 = n / 8 * 8;
    UVAE__WG4_OUTV(n8, _mm256_, __m256, 8, uvae__wg4_row8)
    if (n8 < n) uvae__wg4_out_tail_avx2(n - n8, m + n8, ms, r + 4 * n8, rs);
}
__attribute__((target("avx512f")))
static void uvae__wg4_out_avx512(int n, const float *m, size_t ms, float *r, size_t rs) {
    const int n16 = n / 16 * 16;
    UVAE__WG4_OUTV(n16, _mm512_, __m512, 16, uvae__wg4_row16)
    if (n16 < n) uvae__wg4_out_avx2(n - n16, m + n16, ms, r + 4 * n16, rs);
}
#undef UVAE__WG4_OUTV
#undef UVAE__WG4_ATV
UVAE__WG4_DY(uvae__wg4_dy_avx512, __attribute__((target("avx512f"))))
#define UVAE__WG_KINDS(F, m) {uvae__wg##m##_##F##_generic, uvae__wg##m##_##F##_generic, uvae__wg##m##_##F##_avx2, uvae__wg##m##_##F##_avx512}
#else
#define UVAE__WG_KINDS(F, m) {uvae__wg##m##_##F##_generic, uvae__wg##m##_##F##_generic, uvae__wg##m##_##F##_generic, uvae__wg##m##_##F##_generic}
#endif
/* the transforms for each tile size ([0]: F(2x2), [1]: F(4x4)) and micro-kernel kind (uvae__ukr_kind:
   1 generic, 2 AVX2, 3 AVX-512) */
typedef void (*uvae__wg_in_fn)(int, int, const float *const *, int, int, float *, size_t);
typedef void (*uvae__wg_out_fn)(int, const float *, size_t, float *, size_t);
typedef void (*uvae__wg_dy_fn)(int, const float *const *, int, int, float *, size_t);
static const uvae__wg_in_fn uvae__wg_in_k[2][4] = {UVAE__WG_KINDS(in, ), UVAE__WG_KINDS(in, 4)};
static const uvae__wg_out_fn uvae__wg_out_k[2][4] = {UVAE__WG_KINDS(out, ), UVAE__WG_KINDS(out, 4)};
static const uvae__wg_dy_fn uvae__wg_dy_k[2][4] = {UVAE__WG_KINDS(dy, ), UVAE__WG_KINDS(dy, 4)};
int uvae__cpu_wg4_out(int kind, int n, const float *m, size_t ms, float *r, size_t rs) {
    int was = uvae__cpu_kernel(-1), ok = kind >= 1 && uvae__cpu_kernel(kind) == kind;
    if (ok) uvae__wg_out_k[1][kind](n, m, ms, r, rs);
    uvae__cpu_kernel(was);
    return ok;
}
int uvae__cpu_transpose(const float *src, size_t ls, int m, int n, float *dst, size_t ds) {
    int was = uvae__cpu_kernel(-1), ok = uvae__cpu_kernel(3) == 3;
#ifdef UVAE__X86
    if (ok) uvae__transpose_avx512(src, ls, m, n, dst, ds);
#endif
    uvae__cpu_kernel(was);
    return ok;
}
typedef void (*uvae__wg_w_fn)(int, int, const float (*)[UVAE__WG_WB], float *, size_t);
static const uvae__wg_w_fn uvae__wg_w_k[4] = UVAE__WG_KINDS(w, );
typedef void (*uvae__wg_dw_fn)(int, int, const float *, size_t, float *, size_t);
static const uvae__wg_dw_fn uvae__wg_dw_k[4] = UVAE__WG_KINDS(dw, );
/* Winograd's input transform of tile rows r0 .. r0+rc-1 (row = n*th + ti) into
   V[e*Vs + ci*Tcp + (row - r0)*tw + j] = (B^T d B)[e] of tile j */
static void uvae__wg_input(const uvae__conv_shape *g, const float *x, int r0, int rc, float *V, size_t Vs, int Tcp) {
    const int m = uvae__conv_winograd(g), H = g->H, W = g->W, Ci = g->Ci, th = (g->Ho + m - 1) / m, tw = (g->Wo + m - 1) / m;
    const int rpc = tw < UVAE__WG_SEG ? UVAE__WG_SEG / tw : 1, ng = (rc + rpc - 1) / rpc;   /* tile rows per wg_in call */
    const size_t HW = (size_t)H * W;
    uvae__wg_in_fn wg_in;
    if (!uvae__ukr) uvae__cpu_kernel(0);
    wg_in = uvae__wg_in_k[m == 4][uvae__ukr_kind];
    UVAE__SHARED_FOR(at, Ci * ng, (double)Ci * rc * tw > 4096) {
        int i = at.i, ci = i / ng, g0 = r0 + i % ng * rpc, nr = r0 + rc - g0 < rpc ? r0 + rc - g0 : rpc;
        const float *xr[6 * UVAE__WG_SEG];
        for (int r = 0; r < nr; r++) {
            int n = (g0 + r) / th, ti = (g0 + r) % th;
            for (int a = 0; a < m + 2; a++) {
                int ih = m * ti - 1 + a;
                xr[(m + 2) * r + a] = ih >= 0 && ih < H ? x + ((size_t)n * Ci + ci) * HW + (size_t)ih * W : NULL;
            }
        }
        for (int j0 = 0; j0 < tw; j0 += UVAE__WG_SEG) {   /* one pass unless tw > UVAE__WG_SEG (then nr = 1) */
            int nj = tw - j0 < UVAE__WG_SEG ? tw - j0 : UVAE__WG_SEG;
            wg_in(nr, nj, xr, m * j0 - 1, W, V + (size_t)ci * Tcp + (size_t)(g0 - r0) * tw + j0, Vs);
        }
    }
}

/* U = G w G^T for output-channel panel ip (MR rows) and the block of UVAE__WG_WB / MR input channels
   from c0 (fewer at the end) into u[e * us + (ci - c0) * MR + r]: position e's packed A panel for
   the GEMM; flip as in conv_fwd_winograd */
static void uvae__wg_u_block(int m, const float *w, int flip, int Ci, int Co, int ip, int c0, float *u, size_t us) {
    const int nc = Ci - c0 < UVAE__WG_WB / UVAE__MR ? Ci - c0 : UVAE__WG_WB / UVAE__MR, rows = uvae__panel_rows(Co, ip);
    const int co0 = ip * UVAE__MR;
    float wb[9][UVAE__WG_WB];                                          /* wb[k][(ci - c0) MR + r] = w[co][ci][k] */
    if (c0 + nc < Ci) {   /* the next block's kernels, on their way: one run of floats per row of
                             the panel (w [Co][Ci][3][3]) or, flipped (w [Ci][Co][3][3]), per input channel */
        const int nn = Ci - c0 - nc < nc ? Ci - c0 - nc : nc, len = (flip ? rows : nn) * 9 * (int)sizeof(float);
        for (int i = 0; i < (flip ? nn : rows); i++) {
            const char *nx = (const char *)(flip ? w + ((size_t)(c0 + nc + i) * Co + co0) * 9 : w + ((size_t)(co0 + i) * Ci + c0 + nc) * 9);
            for (int l = 0; l < len; l += 64) UVAE__PREFETCH(nx + l);
        }
    }
    if (rows < UVAE__MR) memset(wb, 0, sizeof wb);                     /* the last panel's spare rows */
#ifdef UVAE__X86
    if (uvae__ukr_kind == 3) {   /* input channel c's MR kernels, MR x 9, transposed in registers: wb[k][c MR + r] */
        for (int c = 0; c < nc; c++) {
            if (flip)   /* w[ci][co0 + r][8 - k]: the rows 9 apart, written from wb[8] down */
                uvae__transpose16_avx512(w + ((size_t)(c0 + c) * Co + co0) * 9, 9, 9, rows, &wb[8][c * UVAE__MR], -UVAE__WG_WB);
            else
                uvae__transpose16_avx512(w + ((size_t)co0 * Ci + c0 + c) * 9, (size_t)Ci * 9, 9, rows, &wb[0][c * UVAE__MR], UVAE__WG_WB);
        }
    } else
#endif
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < nc; c++) {
            const float *src = flip ? w + ((size_t)(c0 + c) * Co + co0 + r) * 9 + 8 : w + ((size_t)(co0 + r) * Ci + c0 + c) * 9;
            ptrdiff_t step = flip ? -1 : 1;
            for (int k = 0; k < 9; k++) wb[k][c * UVAE__MR + r] = src[step * k];
        }
    uvae__wg_w_k[uvae__ukr_kind](m, nc * UVAE__MR, (const float (*)[UVAE__WG_WB])wb, u, us);
}
/* conv_fwd for 3x3, stride 1, padding 1 as Winograd F(m x m, 3x3) (Lavin & Gray): each m x m block
   of outputs ("tile" (n, i, j): output rows m*i .. m*i+m-1, columns m*j ..) comes from the
   (m+2) x (m+2) patch d of x around it as
     y_tile = A^T [ sum_ci (G w[co,ci] G^T) .* (B^T d[ci] B) ] A
   i.e. for each of the P = (m+2)^2 positions e of the transformed tile, one product
     M[e][Co, T] = U[e][Co, Ci] @ V[e][Ci, T],   U = G w G^T, V = B^T d B,
   P * Ci * Co multiplies per tile against 9 m^2 * Ci * Co direct: 2.25x fewer for m = 2, 4x for
   m = 4. For m = 2
     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
     A^T = [1 1 1 0; 0 1 -1 -1];
   for m = 4 see UVAE__WG4_BT and uvae__wg_g (larger constants: a few times the rounding).
   U is packed once as the GEMM's A panels; the tiles go in chunks of whole tile rows (about
   UVAE__WG_BYTES of V and M), each chunk in three steps with the threads splitting each: transform
   the input, P products on the micro-kernel, transform the output into y (acc: add). With one
   chunk (small images, where U is largest: 36 x 512^2 floats at 16x16), each panel's U is made
   just before its products instead, in a thread's own room, and never goes out to memory. The
   sums run in a fixed order whatever the thread count. flip: w is [Ci, Co, 3, 3] flipped (as in
   conv_fwd_implicit: this is then a data gradient). Rounding differs from the direct paths by a
   few ulps of the largest terms (tests/test_core.c, test_conv_winograd). */
static void uvae__cpu_conv_fwd_winograd(const uvae__conv_shape *g, const float *x, const float *w, int flip, float *y, int acc,
                                        float *scratch) {
    const int m = uvae__conv_winograd(g), a2 = m + 2, P = a2 * a2, Ho = g->Ho, Wo = g->Wo, Ci = g->Ci, Co = g->Co;
    const int th = (Ho + m - 1) / m, tw = (Wo + m - 1) / m, np = (Co + UVAE__MR - 1) / UVAE__MR, Mp = np * UVAE__MR;
    const int R = uvae__wg_rows(g), nrows = g->N * th, Tcp = uvae__wg_tcp(g), nq = Tcp / UVAE__NR;
    const int cb = UVAE__WG_WB / UVAE__MR, ncb = (Ci + cb - 1) / cb;
    const size_t HWo = (size_t)Ho * Wo;
    /* U [P][np panels [Ci][MR]], V [P][Ci][Tcp] and M [P][Mp][Tcp], with 16 spare floats after
       each position e (so that a tile's P values are not all a multiple of 4 KB apart, which would
       make them share cache sets) */
    const size_t Us = (size_t)Mp * Ci + 16, Vs = (size_t)Ci * Tcp + 16, Ms = (size_t)Mp * Tcp + 16, Ps = (size_t)Ci * UVAE__MR + 16;
    /* one chunk and panels for every thread: each thread makes a panel's U (P x Ci x MR, in U's room
       at Ps * P per thread) just before its products use it, so U never goes out to memory; but
       then every panel reads all of V, and from 8 tile panels (nq) on that can cost more than U
       made once and read nq times (32x32 images at batch 4, 512 -> 256 channels: 20 % slower) */
    const int fuse = nrows <= R && np >= 2 * UVAE__THREADS() && nq <= 4;
    float *U = (float *)uvae__align(scratch);
    ptrdiff_t *boff = (ptrdiff_t *)(U + P * Us);
    float *V = (float *)(boff + Ci), *M = V + P * Vs;
    uvae__wg_out_fn wg_out;
    int i;
    if (!uvae__ukr) uvae__cpu_kernel(0);
    wg_out = uvae__wg_out_k[m == 4][uvae__ukr_kind];
    for (int c = 0; c < Ci; c++) boff[c] = (ptrdiff_t)c * Tcp;
    if (!fuse) {
        UVAE__SHARED_FOR(at, np * ncb, (double)Mp * Ci > 4096) {   /* U = G w G^T, packed: U[e][ip][ci][r], cb input channels at a time */
            int ip = at.i / ncb, c0 = at.i % ncb * cb;
            uvae__wg_u_block(m, w, flip, Ci, Co, ip, c0, U + ((size_t)ip * Ci + c0) * UVAE__MR, Us);
        }
    }
    for (int r0 = 0; r0 < nrows; r0 += R) {
        int rc = nrows - r0 < R ? nrows - r0 : R, T = rc * tw;
        uvae__wg_input(g, x, r0, rc, V, Vs, Tcp);
        for (i = 0; T < Tcp && i < P * Ci; i++)                         /* the last panel's spare tiles: 0 */
            memset(V + (size_t)(i / Ci) * Vs + (size_t)(i % Ci) * Tcp + T, 0, (size_t)(Tcp - T) * sizeof(float));
        /* M[e] = U[e] @ V[e]: P products, tiles MR x NR */
        if (fuse) {
            UVAE__SHARED_FOR(at, np, (double)P * Mp * Tcp * Ci > 1e6) {  /* panel by panel, its U made on the spot */
                int i = at.i;
                float *Ut = U + (size_t)UVAE__THREAD() * P * Ps;
                for (int c0 = 0; c0 < Ci; c0 += cb)
                    uvae__wg_u_block(m, w, flip, Ci, Co, i, c0, Ut + (size_t)c0 * UVAE__MR, Ps);
                for (int e = 0; e < P; e++)
                    for (int jq = 0; jq < nq; jq++)
                        uvae__ukr(Ci, uvae__panel_rows(Co, i), Ut + e * Ps, NULL, NULL, V + e * Vs + (size_t)jq * UVAE__NR, boff,
                                  M + e * Ms + (size_t)i * UVAE__MR * Tcp + (size_t)jq * UVAE__NR, Tcp, 0);
            }
        } else {
            UVAE__SHARED_FOR(at, P * nq * np, (double)P * Mp * Tcp * Ci > 1e6) {
                int i = at.i, e = i / (nq * np), jq = i / np % nq, ip = i % np;
                uvae__ukr(Ci, uvae__panel_rows(Co, ip), U + e * Us + (size_t)ip * Ci * UVAE__MR, NULL, NULL,
                          V + e * Vs + (size_t)jq * UVAE__NR, boff, M + e * Ms + (size_t)ip * UVAE__MR * Tcp + (size_t)jq * UVAE__NR, Tcp, 0);
            }
        }
        /* y's m x m blocks of tile row `row` = A^T M A */
        UVAE__SHARED_FOR(at, Co * rc, (double)Co * rc * tw > 4096) {
            int i = at.i, co = i / rc, row = r0 + i % rc, n = row / th, ti = row % th;
            float rb[4][4 * UVAE__WG_SEG];
            float *y0 = y + ((size_t)n * Co + co) * HWo + (size_t)(m * ti) * Wo;
            int rows = Ho - m * ti < m ? Ho - m * ti : m;
            for (int j0 = 0; j0 < tw; j0 += UVAE__WG_SEG) {
                int nj = tw - j0 < UVAE__WG_SEG ? tw - j0 : UVAE__WG_SEG, c0 = m * j0, nc = Wo - c0 < m * nj ? Wo - c0 : m * nj;
                const float *mj = M + (size_t)co * Tcp + (size_t)(row - r0) * tw + j0;
                if (!acc && rows == m && nc == m * nj) {              /* whole tiles: straight into y */
                    wg_out(nj, mj, Ms, y0 + c0, (size_t)Wo);
                    continue;
                }
                wg_out(nj, mj, Ms, rb[0], 4 * UVAE__WG_SEG);
                for (int a = 0; a < rows; a++) {
                    float *yr = y0 + (size_t)a * Wo + c0;
                    const float *ra = rb[a];
                    if (acc) {
                        UVAE__OMP(omp simd)
                        for (int c = 0; c < nc; c++) yr[c] += ra[c];
                    } else memcpy(yr, ra, (size_t)nc * sizeof(float));
                }
            }
        }
    }
}
/* conv_bwd_w for 3x3, stride 1, padding 1 through the same transforms: the forward's tile is
   y = A^T [U .* V] A with U = G w G^T, so with Z = A dy A^T (the tile's m x m output gradient, made
   (m+2) x (m+2))
     dU[e][co][ci] = sum over tiles  Z[e][co][t] * V[e][ci][t],     dw += G^T dU G,
   P products with the tiles as the summed dimension. Per chunk of tile rows: V = B^T d B
   (uvae__wg_input), Z (wg_dy), Z packed as NR-column panels over Co, and dU^T[e][ci][co] +=
   V[e][ci][:] @ Zp[e] on the micro-kernel with V's rows read in place (k-stride 1). A tile of
   dU^T adds its chunks in chunk order (each chunk's products end before the next one's begin),
   whichever thread takes it: the same bits for any thread count. The products, like the
   forward's, run in shares (UVAE__SHARED_FOR): with the other vCPU's core busy, 512 -> 256
   channels at 32x32 took 78-82 ms forward + backward against 104-127 statically split. With
   one chunk, each MR x NR block of dU^T is summed (from 0, as dU^T is) in a thread's own room and
   turned into dw at once, so dU never goes out to memory. Scratch (uvae__winograd_w_scratch):
   dU^T [P][Cp][Np] | aoff [Cp] | boff [Tcp] | V [P][Ci][Tcp] | Z [P][Co][Tcp] |
   Zp [P][Np/NR][Tcp][NR], each position followed by 16 spare floats. */
static void uvae__cpu_conv_bwd_w_winograd(const uvae__conv_shape *g, const float *x, const float *dy, float *dw, float *scratch) {
    const int m = uvae__conv_winograd(g), a2 = m + 2, P = a2 * a2, Ho = g->Ho, Wo = g->Wo, Ci = g->Ci, Co = g->Co;
    const int th = (Ho + m - 1) / m, tw = (Wo + m - 1) / m;
    const int npa = (Ci + UVAE__MR - 1) / UVAE__MR, npb = (Co + UVAE__NR - 1) / UVAE__NR, Cp = npa * UVAE__MR, Np = npb * UVAE__NR;
    const int R = uvae__wg_rows(g), nrows = g->N * th, Tcp = uvae__wg_tcp(g);
    const size_t HWo = (size_t)Ho * Wo, Ds = (size_t)Cp * Np + 16, Vs = (size_t)Ci * Tcp + 16, Zs = (size_t)Co * Tcp + 16,
                 Ps = (size_t)Np * Tcp + 16, Bs = (size_t)UVAE__MR * UVAE__NR + 16;
    /* one chunk and blocks for every thread: each thread sums an MR x NR block of dU (P x MR x NR, in
       dU's room at Bs * P per thread) and turns it into dw at once, so dU never goes out to memory */
    const int fuse = nrows <= R && npa * npb >= 2 * UVAE__THREADS();
    float *dU = (float *)uvae__align(scratch);
    ptrdiff_t *aoff = (ptrdiff_t *)(dU + P * Ds), *boff = aoff + Cp;
    float *V = (float *)(boff + Tcp), *Z = V + P * Vs, *Zp = Z + P * Zs;
    uvae__wg_dy_fn wg_dy;
    uvae__wg_dw_fn wg_dw;
    int i;
    if (!uvae__ukr) uvae__cpu_kernel(0);
    wg_dy = uvae__wg_dy_k[m == 4][uvae__ukr_kind];
    wg_dw = uvae__wg_dw_k[uvae__ukr_kind];
    for (int r = 0; r < Cp; r++) aoff[r] = r < Ci ? (ptrdiff_t)r * Tcp : 0;   /* rows past Ci read row 0; unused */
    for (int k = 0; k < Tcp; k++) boff[k] = (ptrdiff_t)k * UVAE__NR;
    if (!fuse) memset(dU, 0, P * Ds * sizeof(float));
    for (int r0 = 0; r0 < nrows; r0 += R) {
        int rc = nrows - r0 < R ? nrows - r0 : R, T = rc * tw, nt = P * npa * npb, snt;
        uvae__shares_room room;
        uvae__share *sh;
        uvae__wg_input(g, x, r0, rc, V, Vs, Tcp);
        UVAE__SHARED_FOR(at, Co * rc, (double)Co * T > 4096) {        /* Z[e][co][t] = (A dy A^T)[e] */
            int co = at.i / rc, row = r0 + at.i % rc, n = row / th, ti = row % th;
            const float *yr[4];
            for (int a = 0; a < m; a++) yr[a] = m * ti + a < Ho ? dy + ((size_t)n * Co + co) * HWo + (size_t)(m * ti + a) * Wo : NULL;
            for (int j0 = 0; j0 < tw; j0 += UVAE__WG_SEG) {
                int nj = tw - j0 < UVAE__WG_SEG ? tw - j0 : UVAE__WG_SEG;
                wg_dy(nj, yr, m * j0, Wo, Z + (size_t)co * Tcp + (size_t)(row - r0) * tw + j0, Zs);
            }
        }
        sh = uvae__shares(&room, fuse ? npa * npb : nt, &snt);      /* the products' iterations in shares */
        UVAE__OMP(omp parallel if ((double)P * Cp * Np * T > 1e6))
        {
            for (int e = 0; e < P; e++) uvae__pack_b(1, Z + e * Zs, Tcp, 0, 0, T, Co, Zp + e * Ps);   /* ends with a barrier */
            if (fuse) {
                for (uvae__share_at at = {0, 0, 0}; uvae__share_next(sh, snt, &at);) {   /* block by block, into dw at once */
                    int t = at.i, ip = t / npb, jp = t % npb, co0 = jp * UVAE__NR, ci0 = ip * UVAE__MR;
                    int nco = Co - co0 < UVAE__NR ? Co - co0 : UVAE__NR;
                    float *Db = dU + (size_t)UVAE__THREAD() * P * Bs;
                    memset(Db, 0, P * Bs * sizeof(float));            /* summed from 0 as dU is: the same bits */
                    for (int e = 0; e < P; e++)
                        uvae__ukr(T, uvae__panel_rows(Ci, ip), V + e * Vs, aoff + (size_t)ip * UVAE__MR, NULL,
                                  Zp + e * Ps + (size_t)jp * T * UVAE__NR, boff, Db + e * Bs, UVAE__NR, 1);
                    for (int ci = ci0; ci < ci0 + UVAE__MR && ci < Ci; ci++)
                        wg_dw(m, nco, Db + (size_t)(ci - ci0) * UVAE__NR, Bs, dw + ((size_t)co0 * Ci + ci) * 9, (size_t)Ci * 9);
                }
            } else {
                for (uvae__share_at at = {0, 0, 0}; uvae__share_next(sh, snt, &at);) {   /* dU^T[e] tiles: ci panel, co panel */
                    int t = at.i, e = t / (npa * npb), ip = t / npb % npa, jp = t % npb;
                    uvae__ukr(T, uvae__panel_rows(Ci, ip), V + e * Vs, aoff + (size_t)ip * UVAE__MR, NULL, Zp + e * Ps + (size_t)jp * T * UVAE__NR,
                              boff, dU + e * Ds + (size_t)ip * UVAE__MR * Np + (size_t)jp * UVAE__NR, Np, 1);
                }
            }
        }
    }
    if (fuse) return;
    UVAE__OMP(omp parallel for schedule(static) if ((double)Co * Ci > 4096))
    for (i = 0; i < npb * npa; i++) {                                 /* dw[co][ci] += G^T dU G, by NR x MR blocks */
        int co0 = i / npa * UVAE__NR, ci0 = i % npa * UVAE__MR, nco = Co - co0 < UVAE__NR ? Co - co0 : UVAE__NR;
        for (int ci = ci0; ci < ci0 + UVAE__MR && ci < Ci; ci++)
            wg_dw(m, nco, dU + (size_t)ci * Np + co0, Ds, dw + ((size_t)co0 * Ci + ci) * 9, (size_t)Ci * 9);
    }
}
/* xp <- n planes of H x W, each zero-padded by p on every side */
static void uvae__pad_planes(const float *x, int n, int H, int W, int p, float *xp) {
    size_t Wp = (size_t)W + 2 * p, HpWp = ((size_t)H + 2 * p) * Wp;
    int i;
    UVAE__OMP(omp parallel for schedule(static) if ((double)n * HpWp > UVAE__PAR_MIN))
    for (i = 0; i < n; i++) {
        float *d = xp + (size_t)i * HpWp;
        const float *src = x + (size_t)i * H * W;
        if (p > 0) memset(d, 0, HpWp * sizeof(float));
        for (int h = 0; h < H; h++) memcpy(d + (size_t)(h + p) * Wp + p, src + (size_t)h * W, (size_t)W * sizeof(float));
    }
}
/* for the n output pixels q0 .. q0+n-1 (images side by side, HWo pixels each): pix[r] <- where
   pixel q0 + r has its window's corner in xp, and (yo not NULL) yo[r] <- its offset in y [.., Co,
   Ho, Wo] in channel 0; stepped along the rows, not divided out a pixel (four divisions a pixel
   cost 4-10 % of the CVAE's direct forwards with 16 and 32 taps) */
static void uvae__pixel_corners(const uvae__conv_shape *g, int q0, int n, ptrdiff_t *pix, ptrdiff_t *yo) {
    const int HWo = g->Ho * g->Wo, Wp = g->W + 2 * g->p;
    const ptrdiff_t img = (ptrdiff_t)g->Ci * (g->H + 2 * g->p) * Wp;
    int b = q0 / HWo, oh = q0 % HWo / g->Wo, ow = q0 % g->Wo;
    for (int r = 0; r < n; r++) {
        pix[r] = b * img + (ptrdiff_t)(oh * g->s) * Wp + ow * g->s;
        if (yo) yo[r] = (ptrdiff_t)b * g->Co * HWo + (ptrdiff_t)oh * g->Wo + ow;
        if (++ow == g->Wo) {
            ow = 0;
            if (++oh == g->Ho) { oh = 0; b++; }
        }
    }
}
/* tile[r * NR + j] <-> yq[r][j * HWo] for r < rows, j < cols (to_tile: y into the tile; else the
   tile into y): a transpose in registers for each run of pixels side by side in y (a tile's pixels
   are one run unless they cross into the next image) */
static void uvae__tile_move(float *tile, float *const *yq, int rows, int cols, size_t HWo, int to_tile) {
#ifdef UVAE__X86
    if (uvae__ukr_kind == 3) {
        for (int r0 = 0, r1; r0 < rows; r0 = r1) {
            for (r1 = r0 + 1; r1 < rows && yq[r1] == yq[r1 - 1] + 1; r1++) {}
            if (to_tile) uvae__transpose_avx512(yq[r0], HWo, cols, r1 - r0, tile + r0 * UVAE__NR, UVAE__NR);
            else uvae__transpose_avx512(tile + r0 * UVAE__NR, UVAE__NR, r1 - r0, cols, yq[r0], (ptrdiff_t)HWo);
        }
        return;
    }
#endif
    for (int j = 0; j < cols; j++)
        for (int r = 0; r < rows; r++) {
            if (to_tile) tile[r * UVAE__NR + j] = yq[r][(size_t)j * HWo];
            else yq[r][(size_t)j * HWo] = tile[r * UVAE__NR + j];
        }
}
/* conv_fwd with the output pixels as the GEMM's rows ("direct"): y^T[L, Co] (+)= col(x)^T[L, CK] @
   w^T[CK, Co] over the L output pixels of a chunk of images, whose A operand the micro-kernel
   reads in place from the zero-padded x (its koff mode): A(q, r) = xp[pix[q] + tap[r]], pix[q] the
   corner of pixel q's window (its image's plane, oh*s, ow*s) and tap[r] = ci*Hp*Wp + ki*Wp + kj.
   The window's values are broadcast one at a time, so a stride costs nothing: no im2col panel is
   gathered (a third of the im2col path's time at stride 2). B = w^T, packed once as NR-column
   panels over Co. Each tile, MR pixels (across images) x NR channels, is summed over CK in KC
   slices starting from y (acc) or zero, in the GEMM's order: the bits of im2col + GEMM; then
   written to y transposed. Scratch: packed w [Np/NR][CK][NR] | tap [CK] | xp [b][Ci][Hp][Wp]
   (uvae__direct_scratch). */
static void uvae__cpu_conv_fwd_direct(const uvae__conv_shape *g, const float *x, const float *w, float *y, int acc, float *scratch) {
    const int Ci = g->Ci, Co = g->Co, k = g->k, p = g->p, H = g->H, W = g->W, Wo = g->Wo;
    const int CK = Ci * k * k, npb = (Co + UVAE__NR - 1) / UVAE__NR, nb = uvae__direct_chunk(g);
    const size_t HWo = (size_t)g->Ho * Wo;
    float *Bp = (float *)uvae__align(scratch);
    ptrdiff_t *tap = (ptrdiff_t *)(Bp + (size_t)npb * CK * UVAE__NR), boff[UVAE__KC];
    float *xp = (float *)(tap + CK);
    int i;
    uvae__ukr_packed(boff);                                          /* the kernel chosen; boff[k] = k * NR */
    uvae__tap_offsets(g, CK, tap);
    UVAE__OMP(omp parallel for schedule(static) if ((double)npb * CK * UVAE__NR > UVAE__PAR_MIN))
    for (i = 0; i < npb * CK; i++) {                                 /* Bp[jp][r][j] = w[jp*NR + j][r], 0 past Co */
        int jp = i / CK, r = i % CK;
        float *d = Bp + (size_t)i * UVAE__NR;
        for (int j = 0; j < UVAE__NR; j++) d[j] = jp * UVAE__NR + j < Co ? w[(size_t)(jp * UVAE__NR + j) * CK + r] : 0.0f;
    }
    for (int n0 = 0; n0 < g->N; n0 += nb) {
        int b = g->N - n0 < nb ? g->N - n0 : nb, L = b * (int)HWo, nq = (L + UVAE__MR - 1) / UVAE__MR;
        uvae__pad_planes(x + (size_t)n0 * Ci * H * W, b * Ci, H, W, p, xp);
        UVAE__SHARED_FOR(at, nq * npb, (double)L * Co * CK > 1e6) {   /* tiles: pixel panel outer, channel panel inner */
            int i = at.i, q0 = i / npb * UVAE__MR, j0 = i % npb * UVAE__NR;
            int rows = L - q0 < UVAE__MR ? L - q0 : UVAE__MR, cols = Co - j0 < UVAE__NR ? Co - j0 : UVAE__NR;
            ptrdiff_t pix[UVAE__MR], yo[UVAE__MR];
            float tile[UVAE__MR * UVAE__NR], *yq[UVAE__MR];          /* yq[r]: pixel r of channel j0 in y */
            uvae__pixel_corners(g, q0, rows, pix, yo);
            for (int r = 0; r < UVAE__MR; r++) {
                if (r >= rows) { pix[r] = pix[0]; yo[r] = yo[0]; }   /* rows past L: pixel q0 again */
                yq[r] = y + ((size_t)n0 * Co + j0) * HWo + yo[r];
            }
            if (acc && rows < UVAE__MR) memset(tile, 0, sizeof tile);   /* rows past L: computed, never read */
            if (acc) uvae__tile_move(tile, yq, rows, cols, HWo, 1);
            for (int pc = 0; pc < CK; pc += UVAE__KC)
                uvae__ukr(CK - pc < UVAE__KC ? CK - pc : UVAE__KC, rows, xp, pix, tap + pc,
                          Bp + ((size_t)(j0 / UVAE__NR) * CK + pc) * UVAE__NR, boff, tile, UVAE__NR, acc || pc > 0);
            uvae__tile_move(tile, yq, rows, cols, HWo, 0);
        }
    }
}
/* conv_bwd_w the same way: dw^T[CK, Co] += col(x)[CK, L] @ dy^T[L, Co] over the output pixels of
   a chunk of images, A read in place from the zero-padded x, A(r, q) = xp[tap[r] + pix[q]] (tap
   and pix as in conv_fwd_direct: the micro-kernel's koff mode with the pixels as k), B = dy^T
   packed once per chunk as NR-column panels over Co. dw^T starts from dw^T; each tile stays with
   its thread while the pixels run in KC slices, chunks and slices as in the im2col path, so the
   sums are its bits whatever the thread count. Scratch: dw^T [CKp, Np] | tap [CKp] | pix [L] |
   xp [b][Ci][Hp][Wp] | packed dy [Np/NR][L][NR] (uvae__bwd_w_direct_scratch). */
static void uvae__cpu_conv_bwd_w_direct(const uvae__conv_shape *g, const float *x, const float *dy, float *dw, float *scratch) {
    const int Ci = g->Ci, Co = g->Co, k = g->k, p = g->p, H = g->H, W = g->W, Wo = g->Wo;
    const int Hp = H + 2 * p, Wp = W + 2 * p, CK = Ci * k * k, nb = uvae__conv_chunk(g);
    const int npa = (CK + UVAE__MR - 1) / UVAE__MR, npb = (Co + UVAE__NR - 1) / UVAE__NR, Np = npb * UVAE__NR;
    const size_t HpWp = (size_t)Hp * Wp, HWo = (size_t)g->Ho * Wo, Lmax = (size_t)nb * HWo;
    float *dwT = (float *)uvae__align(scratch);
    ptrdiff_t *tap = (ptrdiff_t *)(dwT + (size_t)npa * UVAE__MR * Np), *pix = tap + (size_t)npa * UVAE__MR;
    float *xp = (float *)(pix + Lmax), *Bp = xp + (size_t)nb * Ci * HpWp;
    int i;
    if (!uvae__ukr) uvae__cpu_kernel(0);
    uvae__tap_offsets(g, npa * UVAE__MR, tap);   /* rows past CK (the last panel's padding) read tap 0; unused */
    UVAE__OMP(omp parallel for schedule(static) if ((double)CK * Np > UVAE__PAR_MIN))
    for (i = 0; i < npa * UVAE__MR; i++)                             /* dw^T <- dw^T, zeros in the padding */
        for (int j = 0; j < Np; j++) dwT[(size_t)i * Np + j] = i < CK && j < Co ? dw[(size_t)j * CK + i] : 0.0f;
    for (int n0 = 0; n0 < g->N; n0 += nb) {
        int b = g->N - n0 < nb ? g->N - n0 : nb, L = b * (int)HWo;
        uvae__pixel_corners(g, 0, L, pix, NULL);
        uvae__pad_planes(x + (size_t)n0 * Ci * H * W, b * Ci, H, W, p, xp);
        UVAE__OMP(omp parallel for schedule(static) if ((double)Np * L > UVAE__PAR_MIN))
        for (i = 0; i < npb * b; i++) {                              /* Bp[jp][q][j] <- dy[n0 + n][jp*NR + j][o] */
            int jp = i / b, n = i % b, cols = Co - jp * UVAE__NR < UVAE__NR ? Co - jp * UVAE__NR : UVAE__NR;
            float *d = Bp + ((size_t)jp * L + (size_t)n * HWo) * UVAE__NR;
            const float *src = dy + ((size_t)(n0 + n) * Co + jp * UVAE__NR) * HWo;
#ifdef UVAE__X86
            if (cols == UVAE__NR && uvae__ukr_kind == 3) {             /* in registers */
                uvae__transpose_avx512(src, HWo, UVAE__NR, (int)HWo, d, UVAE__NR);
                continue;
            }
#endif
            for (size_t o0 = 0; o0 < HWo; o0 += 8) {                 /* a transpose in 8-pixel blocks */
                size_t oe = HWo - o0 < 8 ? HWo : o0 + 8;
                for (int j = 0; j < UVAE__NR; j++)
                    for (size_t o = o0; o < oe; o++) d[o * UVAE__NR + j] = j < cols ? src[(size_t)j * HWo + o] : 0.0f;
            }
        }
        uvae__dwT_tiles(CK, Np, L, xp, tap, pix, Bp, dwT);
    }
    UVAE__OMP(omp parallel for schedule(static) if ((double)Co * CK > UVAE__PAR_MIN))
    for (i = 0; i < Co; i++)                                         /* dw = (dw^T)^T */
        for (int r = 0; r < CK; r++) dw[(size_t)i * CK + r] = dwT[(size_t)r * Np + i];
}
/* conv_bwd_x the same way (the data gradient of a strided convolution, the forward of a transposed
   one): per image, col^T[HWo, CK] = dy^T[HWo, Co] @ w[Co, CK], one NR-column panel of col's rows
   (taps) at a time. A = dy read in place (koff mode: A(q, co) = dy[n][co][q] at aoff[q] = q,
   koff[co] = co*HWo), B = w packed as NR-column panels over CK. A panel's tiles are written as
   they are into the image's buffer [HWo + MR][NR], buf[q][j] = col(r0 + j, q) (MR rows of slack
   for a ragged last tile, which the micro-kernel writes rounded up), whose columns col2im then
   adds into dx, tap after tap; the sums over Co run in the GEMM's KC slices, so dx gets the bits
   of W^T @ dy + col2im without dy transposed over the batch or a chunk's col written and read
   back. Images run in chunks whose buffers fit 2^18 floats, a thread per image. Scratch: packed
   w [CKp/NR][Co][NR] | koff [Co] | buffers [b][HWo + MR][NR] (uvae__bwd_x_direct_scratch). */
static void uvae__cpu_conv_bwd_x_direct(const uvae__conv_shape *g, const float *dy, const float *w, float *dx, float *scratch) {
    const int Ci = g->Ci, Co = g->Co, k = g->k, CK = Ci * k * k, npb = (CK + UVAE__NR - 1) / UVAE__NR;
    const int HWo = g->Ho * g->Wo, nb = uvae__bwd_x_direct_chunk(g);
    const size_t xs = (size_t)Ci * g->H * g->W, bs = ((size_t)HWo + UVAE__MR) * UVAE__NR;
    float *Bp = (float *)uvae__align(scratch);
    ptrdiff_t *koff = (ptrdiff_t *)(Bp + (size_t)npb * Co * UVAE__NR), boff[UVAE__KC];
    float *bufs = (float *)(koff + Co);
    int i;
    uvae__ukr_packed(boff);                                          /* the kernel chosen; boff[k] = k * NR */
    for (int co = 0; co < Co; co++) koff[co] = (ptrdiff_t)co * HWo;
    for (i = 0; i < nb; i++)                                         /* the slack: computed, never read */
        memset(bufs + (size_t)i * bs + (size_t)HWo * UVAE__NR, 0, UVAE__MR * UVAE__NR * sizeof(float));
    UVAE__OMP(omp parallel for schedule(static) if ((double)npb * Co * UVAE__NR > UVAE__PAR_MIN))
    for (i = 0; i < npb * Co; i++) {                                 /* Bp[jp][co][j] = w[co][jp*NR + j], 0 past CK */
        int jp = i / Co, co = i % Co;
        float *d = Bp + (size_t)i * UVAE__NR;
        for (int j = 0; j < UVAE__NR; j++) d[j] = jp * UVAE__NR + j < CK ? w[(size_t)co * CK + jp * UVAE__NR + j] : 0.0f;
    }
    for (int n0 = 0; n0 < g->N; n0 += nb) {
        int b = g->N - n0 < nb ? g->N - n0 : nb;
        UVAE__SHARED_FOR(at, b, b > 1 && (double)b * HWo * Co * CK > 1e6) {
            int i = at.i;
            const float *dn = dy + (size_t)(n0 + i) * Co * HWo;
            float *buf = bufs + (size_t)i * bs;
            for (int jp = 0; jp < npb; jp++) {
                int r0 = jp * UVAE__NR, taps = CK - r0 < UVAE__NR ? CK - r0 : UVAE__NR;
                for (int q0 = 0; q0 < HWo; q0 += UVAE__MR) {           /* buf[q][j] = col(r0 + j, q) */
                    int rows = HWo - q0 < UVAE__MR ? HWo - q0 : UVAE__MR;
                    ptrdiff_t aoff[UVAE__MR];
                    for (int r = 0; r < UVAE__MR; r++) aoff[r] = q0 + (r < rows ? r : 0);
                    for (int pc = 0; pc < Co; pc += UVAE__KC)
                        uvae__ukr(Co - pc < UVAE__KC ? Co - pc : UVAE__KC, rows, dn, aoff, koff + pc,
                                  Bp + ((size_t)jp * Co + pc) * UVAE__NR, boff, buf + (size_t)q0 * UVAE__NR, UVAE__NR, pc > 0);
                }
                uvae__col2im_tile(buf, r0, r0 + taps, g, dx + (size_t)(n0 + i) * xs);
            }
        }
    }
}
static void uvae__cpu_conv_fwd(const uvae__conv_shape *g, const float *x, const float *w, float *y, int acc, float *scratch) {
    int CK = g->Ci * g->k * g->k, nb = uvae__conv_chunk(g);
    size_t HWo = (size_t)g->Ho * g->Wo, xs = (size_t)g->Ci * g->H * g->W;
    if (uvae__conv_winograd(g)) { uvae__cpu_conv_fwd_winograd(g, x, w, 0, y, acc, scratch); return; }
    if (uvae__conv_implicit(g)) { uvae__cpu_conv_fwd_implicit(g, x, w, 0, y, acc, scratch); return; }
    if (uvae__conv_direct(g)) { uvae__cpu_conv_fwd_direct(g, x, w, y, acc, scratch); return; }
    for (int n = 0; n < g->N; n += nb) {
        int b = g->N - n < nb ? g->N - n : nb, L = b * (int)HWo;
        float *col = scratch, *tmp = scratch + (size_t)CK * uvae__round_up(L, UVAE__NR), *out = b == 1 ? y + n * g->Co * HWo : tmp;
        /* with acc, the sums start from y as in the b == 1 case: (y + slice 1) + slice 2 ... */
        if (b > 1 && acc) uvae__cpu_batch_rows(y + n * g->Co * HWo, b, g->Co, HWo, tmp, 1, 0);
        if (uvae__gemm_is_small(g->Co, L, CK) || g->Co <= UVAE__DIRECT_M) {   /* the GEMM reads col in place */
            uvae__cpu_im2col(x + n * xs, b, g->Ci, g->H, g->W, g->k, g->s, g->p, g->Ho, g->Wo, col);
            uvae__cpu_gemm(0, 0, g->Co, L, CK, w, CK, col, L, out, L, acc);
        } else   /* the GEMM would pack col again: its panels are gathered straight from x instead */
            uvae__cpu_conv_gemm_cols(x + n * xs, b, g->Ci, g->H, g->W, g->k, g->s, g->p, g->Ho, g->Wo, g->Co, w, out, acc, col);
        if (b > 1) uvae__cpu_batch_rows(y + n * g->Co * HWo, b, g->Co, HWo, tmp, 0, 0);
    }
}
static void uvae__cpu_conv_bwd_x(const uvae__conv_shape *g, const float *dy, const float *w, float *dx, float *scratch) {
    int CK = g->Ci * g->k * g->k, nb = uvae__conv_chunk(g);
    size_t HWo = (size_t)g->Ho * g->Wo, xs = (size_t)g->Ci * g->H * g->W;
    uvae__conv_shape f = uvae__conv_flipped(g);   /* dx as a convolution of dy (stride 1) */
    if (uvae__conv_bwd_x_winograd(g)) { uvae__cpu_conv_fwd_winograd(&f, dy, w, 1, dx, 1, scratch); return; }
    if (uvae__conv_bwd_x_implicit(g)) { uvae__cpu_conv_fwd_implicit(&f, dy, w, 1, dx, 1, scratch); return; }
    if (uvae__conv_bwd_x_direct(g)) { uvae__cpu_conv_bwd_x_direct(g, dy, w, dx, scratch); return; }
    for (int n = 0; n < g->N; n += nb) {
        int b = g->N - n < nb ? g->N - n : nb, L = b * (int)HWo;
        float *col = scratch, *G = scratch + (size_t)CK * L;
        const float *d = dy + n * g->Co * HWo;
        if (b > 1) { uvae__cpu_batch_rows((float *)d, b, g->Co, HWo, G, 1, 0); d = G; }
        uvae__cpu_gemm(1, 0, CK, L, g->Co, w, CK, d, L, col, L, 0);
        uvae__cpu_col2im(col, b, g->Ci, g->H, g->W, g->k, g->s, g->p, g->Ho, g->Wo, dx + n * xs);
    }
}
static void uvae__cpu_conv_bwd_w(const uvae__conv_shape *g, const float *x, const float *dy, float *dw, float *scratch) {
    int CK = g->Ci * g->k * g->k, nb = uvae__bwd_w_chunk(g);
    size_t HWo = (size_t)g->Ho * g->Wo, xs = (size_t)g->Ci * g->H * g->W;
    if (uvae__conv_bwd_w_winograd(g)) { uvae__cpu_conv_bwd_w_winograd(g, x, dy, dw, scratch); return; }
    if (uvae__conv_bwd_w_implicit(g)) { uvae__cpu_conv_bwd_w_implicit(g, x, dy, dw, scratch); return; }
    if (uvae__conv_bwd_w_direct(g)) { uvae__cpu_conv_bwd_w_direct(g, x, dy, dw, scratch); return; }
    for (int n = 0; n < g->N; n += nb) {
        int b = g->N - n < nb ? g->N - n : nb, L = b * (int)HWo;
        float *col = scratch, *G = scratch + (size_t)CK * L;
        const float *d = dy + n * g->Co * HWo;
        if (b > 1) { uvae__cpu_batch_rows((float *)d, b, g->Co, HWo, G, 1, 0); d = G; }
        /* the GEMM would pack im2col's transpose: gather its slices straight from x instead, where
           col's room holds a slice a thread (and, with fewer panels than threads, the partials) */
        if (uvae__bwd_w_rows_fit(g->Co, CK, L))
            uvae__cpu_conv_bwd_w_rows(x + n * xs, b, g->Ci, g->H, g->W, g->k, g->s, g->p, g->Ho, g->Wo, g->Co, d, L, dw, col);
        else {
            uvae__cpu_im2col(x + n * xs, b, g->Ci, g->H, g->W, g->k, g->s, g->p, g->Ho, g->Wo, col);
            uvae__cpu_gemm(0, 1, g->Co, CK, L, d, L, col, L, dw, CK, 1);
        }
    }
}

/* ---------------------------------------------------------------------------------------------
   [ops/conv2d] out[n,co,oh,ow] = b[co] + sum_{ci,ki,kj} w[co,ci,ki,kj] * x[n,ci,oh*s-p+ki,ow*s-p+kj]
   == torch.nn.functional.conv2d(x, w, b, stride=s, padding=p).
   As products (see [ops/conv kernels]): out = w @ col(x);  backward: dW += dout @ col(x)^T,
   dx += col2im(W^T @ dout),  db += sum dout. */
static void uvae__conv2d_backward(uvae__node *nd) {
    uvae_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *out = nd->out;
    uvae__conv_shape g = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[2],
                          nd->i[0], nd->i[1], out->shape[2], out->shape[3]};
    int dev = nd->ctx->device;
    float *col = nd->ctx->scratch;   /* the forward sized it for this shape; it never shrinks */
    if (w->grad) UVAE__K(dev, conv_bwd_w, &g, x->data, out->grad, w->grad, col);
    if (x->grad) UVAE__K(dev, conv_bwd_x, &g, out->grad, w->data, x->grad, col);
    if (b && b->grad) UVAE__K(dev, bias_grad, out->grad, b->grad, g.N, g.Co, (size_t)g.Ho * g.Wo);
    nd->ctx->flops += uvae__conv_flops(&g) * ((w->grad != NULL) + (x->grad != NULL));
}

uvae_tensor *uvae_conv2d(uvae_ctx *ctx, uvae_tensor *x, uvae_tensor *w, uvae_tensor *b, int stride, int pad) {
    uvae_tensor *out;
    uvae__node *nd;
    uvae__conv_shape g;
    if (!x || !w) return NULL;
    if (x->ndim != 4 || w->ndim != 4 || w->shape[1] != x->shape[1] || w->shape[2] != w->shape[3] ||
        (b && (b->size != (size_t)w->shape[0])) || stride < 1 || pad < 0)
        return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_conv2d: x %s, w %s, b %s, stride %d, pad %d do not fit",
                                          uvae__shape_str(x), uvae__shape_str(w), b ? uvae__shape_str(b) : "none", stride, pad);
    g.N = x->shape[0]; g.Ci = x->shape[1]; g.H = x->shape[2]; g.W = x->shape[3];
    g.Co = w->shape[0]; g.k = w->shape[2]; g.s = stride; g.p = pad;
    if (g.H + 2 * pad < g.k || g.W + 2 * pad < g.k)
        return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_conv2d: input %s smaller than kernel %d", uvae__shape_str(x), g.k);
    g.Ho = (g.H + 2 * pad - g.k) / stride + 1; g.Wo = (g.W + 2 * pad - g.k) / stride + 1;
    out = uvae__out_full(ctx, 4, (int[]){g.N, g.Co, g.Ho, g.Wo}, x, w, b);
    if (!out || !uvae__scratch(ctx, uvae__conv_scratch(ctx->device, &g))) return NULL;
    UVAE__K(ctx->device, conv_fwd, &g, x->data, w->data, out->data, 0, ctx->scratch);
    ctx->flops += uvae__conv_flops(&g);
    if (b) UVAE__K(ctx->device, bias_add, out->data, b->data, g.N, g.Co, (size_t)g.Ho * g.Wo);
    if ((nd = uvae__record(ctx, uvae__conv2d_backward, out, x, w, b))) { nd->i[0] = stride; nd->i[1] = pad; }
    else if (out->grad) return NULL;
    return out;
}

/* [ops/conv_transpose2d] the adjoint of conv2d:  out = col2im(W^T @ x) + b, w [Ci,Co,k,k],
   Ho = (H-1)*s - 2p + k.  == torch.nn.functional.conv_transpose2d(x, w, b, stride=s, padding=p).
   It is the conv2d from out's shape to x's (input channels Co, output channels Ci, weights
   w [Ci, Co*k*k]) run backwards: forward = that conv's conv_bwd_x; backward: dx += that conv's
   forward of dout, dW += its conv_bwd_w with dout as the input and x as the output gradient. */
static uvae__conv_shape uvae__convT_shape(const uvae_tensor *x, const uvae_tensor *w, int s, int p, int Ho, int Wo) {
    uvae__conv_shape g = {x->shape[0], w->shape[1], Ho, Wo, x->shape[1], w->shape[2], s, p, x->shape[2], x->shape[3]};
    return g;
}
static void uvae__convT_backward(uvae__node *nd) {
    uvae_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *out = nd->out;
    uvae__conv_shape g = uvae__convT_shape(x, w, nd->i[0], nd->i[1], out->shape[2], out->shape[3]);
    int dev = nd->ctx->device;
    float *col = nd->ctx->scratch;   /* the forward sized it for this shape; it never shrinks */
    if (x->grad) UVAE__K(dev, conv_fwd, &g, out->grad, w->data, x->grad, 1, col);
    if (w->grad) UVAE__K(dev, conv_bwd_w, &g, out->grad, x->data, w->grad, col);
    if (b && b->grad) UVAE__K(dev, bias_grad, out->grad, b->grad, g.N, g.Ci, (size_t)g.H * g.W);
    nd->ctx->flops += uvae__conv_flops(&g) * ((w->grad != NULL) + (x->grad != NULL));
}

uvae_tensor *uvae_conv_transpose2d(uvae_ctx *ctx, uvae_tensor *x, uvae_tensor *w, uvae_tensor *b, int stride, int pad) {
    uvae_tensor *out;
    uvae__node *nd;
    uvae__conv_shape g;
    int k, Ho, Wo;
    if (!x || !w) return NULL;
    if (x->ndim != 4 || w->ndim != 4 || w->shape[0] != x->shape[1] || w->shape[2] != w->shape[3] ||
        (b && b->size != (size_t)w->shape[1]) || stride < 1 || pad < 0)
        return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_conv_transpose2d: x %s, w %s, b %s, stride %d, pad %d do not fit",
                                          uvae__shape_str(x), uvae__shape_str(w), b ? uvae__shape_str(b) : "none", stride, pad);
    k = w->shape[2];
    Ho = (x->shape[2] - 1) * stride - 2 * pad + k; Wo = (x->shape[3] - 1) * stride - 2 * pad + k;
    if (Ho < 1 || Wo < 1) return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_conv_transpose2d: empty output");
    g = uvae__convT_shape(x, w, stride, pad, Ho, Wo);
    out = uvae__out(ctx, 4, (int[]){g.N, g.Ci, Ho, Wo}, x, w, b);
    if (!out || !uvae__scratch(ctx, uvae__conv_scratch(ctx->device, &g))) return NULL;
    UVAE__K(ctx->device, conv_bwd_x, &g, x->data, w->data, out->data, ctx->scratch);   /* out is zeroed: += is = */
    ctx->flops += uvae__conv_flops(&g);
    if (b) UVAE__K(ctx->device, bias_add, out->data, b->data, g.N, g.Ci, (size_t)Ho * Wo);
    if ((nd = uvae__record(ctx, uvae__convT_backward, out, x, w, b))) { nd->i[0] = stride; nd->i[1] = pad; }
    else if (out->grad) return NULL;
    return out;
}

/* Check a 4-D input and compute a pooling window's output side (floor, no padding). */
static int uvae__pool_shape(const char *who, uvae_tensor *x, int k, int s, int *Ho, int *Wo) {
    if (x->ndim != 4 || k < 1 || s < 1 || x->shape[2] < k || x->shape[3] < k)
        return uvae__fail(UVAE_ERR_ARG, "%s: input %s, kernel %d, stride %d do not fit", who, uvae__shape_str(x), k, s);
    *Ho = (x->shape[2] - k) / s + 1;
    *Wo = (x->shape[3] - k) / s + 1;
    return UVAE_OK;
}

/* ---------------------------------------------------------------------------------------------
   [ops/max_pool2d] out = max over each k x k window (stride s); the gradient goes to the argmax.
   == torch.nn.functional.max_pool2d(x, k, s). saved: argmax index into the input plane (int). */
/* (v, q) replaces the best (bv, bq) if v > bv or v is NaN (the last NaN wins), on the bits */
static inline void uvae__max_pick(float v, int q, float *bv, int *bq) {
    int t = -(int)((v > *bv) | (v != v));
    *bq = (q & t) | (*bq & ~t);
    *bv = uvae__fselect((uint32_t)t, v, *bv);
}
static void uvae__cpu_maxpool_fwd(const float *x, float *y, int *arg, int NC, int H, int W, int k, int s, int Ho, int Wo) {
    int nc;
    UVAE__OMP(omp parallel for schedule(static) if ((double)NC * H * W > UVAE__PAR_MIN))
    for (nc = 0; nc < NC; nc++) {
        const float *in = x + (size_t)nc * H * W;
        if (k == 2 && s == 2) {   /* the models' pooling: the window unrolled, branch-free, 5-13x faster */
            for (int oh = 0; oh < Ho; oh++) {
                const float *r0 = in + (size_t)oh * 2 * W, *r1 = r0 + W;
                float *yo = y + ((size_t)nc * Ho + oh) * Wo;
                int *ao = arg + ((size_t)nc * Ho + oh) * Wo, q0 = oh * 2 * W, ow;
                UVAE__OMP(omp simd)
                for (ow = 0; ow < Wo; ow++) {
                    float bv = r0[2 * ow];
                    int bq = q0 + 2 * ow;
                    uvae__max_pick(r0[2 * ow + 1], q0 + 2 * ow + 1, &bv, &bq);
                    uvae__max_pick(r1[2 * ow], q0 + W + 2 * ow, &bv, &bq);
                    uvae__max_pick(r1[2 * ow + 1], q0 + W + 2 * ow + 1, &bv, &bq);
                    yo[ow] = bv;
                    ao[ow] = bq;
                }
            }
            continue;
        }
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                int best = oh * s * W + ow * s;          /* first maximum wins, as in PyTorch */
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) {
                        int q = (oh * s + i) * W + ow * s + j;
                        if (in[q] > in[best] || isnan(in[q])) best = q;
                    }
                y[((size_t)nc * Ho + oh) * Wo + ow] = in[best];
                arg[((size_t)nc * Ho + oh) * Wo + ow] = best;
            }
    }
}
static void uvae__cpu_maxpool_bwd(const float *dy, const int *arg, float *dx, int NC, int H, int W, int Ho, int Wo) {
    size_t HW = (size_t)H * W, oHW = (size_t)Ho * Wo;
    int nc;
    UVAE__OMP(omp parallel for schedule(static) if ((double)NC * oHW > UVAE__PAR_MIN))
    for (nc = 0; nc < NC; nc++)
        for (size_t o = 0; o < oHW; o++) dx[nc * HW + (size_t)arg[nc * oHW + o]] += dy[nc * oHW + o];
}
static void uvae__maxpool_backward(uvae__node *nd) {
    uvae_tensor *x = nd->in[0], *out = nd->out;
    if (x->grad) UVAE__K(nd->ctx->device, maxpool_bwd, out->grad, (const int *)nd->saved, x->grad, x->shape[0] * x->shape[1],
                         x->shape[2], x->shape[3], out->shape[2], out->shape[3]);
}
uvae_tensor *uvae_max_pool2d(uvae_ctx *ctx, uvae_tensor *x, int k, int s) {
    uvae_tensor *out;
    uvae__node *nd;
    int Ho, Wo, *arg;
    if (!x) return NULL;
    if (uvae__pool_shape("uvae_max_pool2d", x, k, s, &Ho, &Wo) != UVAE_OK) return NULL;
    out = uvae__out_full(ctx, 4, (int[]){x->shape[0], x->shape[1], Ho, Wo}, x, NULL, NULL);
    if (!out || !(arg = (int *)uvae__dev_alloc(ctx, out->size * sizeof(int)))) return NULL;
    UVAE__K(ctx->device, maxpool_fwd, x->data, out->data, arg, x->shape[0] * x->shape[1], x->shape[2], x->shape[3], k, s, Ho, Wo);
    if ((nd = uvae__record(ctx, uvae__maxpool_backward, out, x, NULL, NULL))) nd->saved = arg;
    else if (out->grad) return NULL;
    return out;
}

/* [ops/avg_pool2d] out = mean of each k x k window; dx gets dout / k^2 in every window cell.
   == torch.nn.functional.avg_pool2d(x, k, s). */
static void uvae__cpu_avgpool_fwd(const float *x, float *y, int NC, int H, int W, int k, int s, int Ho, int Wo) {
    int nc;
    UVAE__OMP(omp parallel for schedule(static) if ((double)NC * H * W > UVAE__PAR_MIN))
    for (nc = 0; nc < NC; nc++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                float sum = 0;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) sum += x[((size_t)nc * H + oh * s + i) * W + ow * s + j];
                y[((size_t)nc * Ho + oh) * Wo + ow] = sum / (float)(k * k);
            }
}
static void uvae__cpu_avgpool_bwd(const float *dy, float *dx, int NC, int H, int W, int k, int s, int Ho, int Wo) {
    float inv = 1.0f / (float)(k * k);
    int nc;
    UVAE__OMP(omp parallel for schedule(static) if ((double)NC * H * W > UVAE__PAR_MIN))
    for (nc = 0; nc < NC; nc++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                float g = dy[((size_t)nc * Ho + oh) * Wo + ow] * inv;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) dx[((size_t)nc * H + oh * s + i) * W + ow * s + j] += g;
            }
}
static void uvae__avgpool_backward(uvae__node *nd) {
    uvae_tensor *x = nd->in[0], *out = nd->out;
    if (x->grad) UVAE__K(nd->ctx->device, avgpool_bwd, out->grad, x->grad, x->shape[0] * x->shape[1], x->shape[2], x->shape[3],
                         nd->i[0], nd->i[1], out->shape[2], out->shape[3]);
}
uvae_tensor *uvae_avg_pool2d(uvae_ctx *ctx, uvae_tensor *x, int k, int s) {
    uvae_tensor *out;
    uvae__node *nd;
    int Ho, Wo;
    if (!x) return NULL;
    if (uvae__pool_shape("uvae_avg_pool2d", x, k, s, &Ho, &Wo) != UVAE_OK) return NULL;
    out = uvae__out_full(ctx, 4, (int[]){x->shape[0], x->shape[1], Ho, Wo}, x, NULL, NULL);
    if (!out) return NULL;
    UVAE__K(ctx->device, avgpool_fwd, x->data, out->data, x->shape[0] * x->shape[1], x->shape[2], x->shape[3], k, s, Ho, Wo);
    if ((nd = uvae__record(ctx, uvae__avgpool_backward, out, x, NULL, NULL))) { nd->i[0] = k; nd->i[1] = s; }
    else if (out->grad) return NULL;
    return out;
}

/* ---------------------------------------------------------------------------------------------
   [ops/upsample] by an integer factor s.  nearest: out[oh,ow] = x[oh/s, ow/s].
   bilinear (align_corners=False): source coordinate src = max((o + 0.5)/s - 0.5, 0), blend of
   x[i0] and x[min(i0+1, n-1)] with weight l = src - i0, separably in h and w.
   == torch.nn.functional.interpolate(x, scale_factor=s, mode='nearest' | 'bilinear').
   Backward scatters dout with the same weights (the adjoint). Bilinear x2 (the UNet's) has fixed
   column weights 1/4, 3/4 and runs row by row as vector loops (uvae__cpu_upsample2_row). */
static void uvae__bilinear_coord(int o, int s, int n, int *i0, int *i1, float *l) {
    float src = (1.0f / (float)s) * ((float)o + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    *i0 = (int)src;
    *i1 = *i0 < n - 1 ? *i0 + 1 : *i0;
    *l = src - (float)*i0;
}
/* Bilinear x2, one output row: its source rows r0 (weight a) and r1 (weight b). The column
   weights are fixed (output 2i blends columns i-1, i by 1/4, 3/4; output 2i+1 columns i, i+1 by
   3/4, 1/4; the edges clamp), so this is one vector loop doing, term for term, the general
   loop's arithmetic (the same bits). W >= 2. */
static void uvae__cpu_upsample2_row(const float *r0, const float *r1, float a, float b, float *y, int W) {
    y[0] = a * (1.0f * r0[0] + 0.0f * r0[1]) + b * (1.0f * r1[0] + 0.0f * r1[1]);
    y[1] = a * (0.75f * r0[0] + 0.25f * r0[1]) + b * (0.75f * r1[0] + 0.25f * r1[1]);
    UVAE__OMP(omp simd)
    for (int i = 1; i < W - 1; i++) {
        y[2 * i] = a * (0.25f * r0[i - 1] + 0.75f * r0[i]) + b * (0.25f * r1[i - 1] + 0.75f * r1[i]);
        y[2 * i + 1] = a * (0.75f * r0[i] + 0.25f * r0[i + 1]) + b * (0.75f * r1[i] + 0.25f * r1[i + 1]);
    }
    y[2 * W - 2] = a * (0.25f * r0[W - 2] + 0.75f * r0[W - 1]) + b * (0.25f * r1[W - 2] + 0.75f * r1[W - 1]);
    y[2 * W - 1] = a * (0.75f * r0[W - 1] + 0.25f * r0[W - 1]) + b * (0.75f * r1[W - 1] + 0.25f * r1[W - 1]);
}
/* Its adjoint: g = the row's column weights applied backwards to dy (2W values), then
   d0 += a g and d1 += b g (d0 and d1 may be the same row: each index is read, then written, in
   order, so the simd loop is safe). W >= 2. */
static void uvae__cpu_upsample2_row_bwd(const float *dy, float a, float b, float *d0, float *d1, int W) {
    float g = dy[0] + 0.75f * dy[1] + 0.25f * dy[2];
    d0[0] += a * g;
    d1[0] += b * g;
    UVAE__OMP(omp simd)
    for (int i = 1; i < W - 1; i++) {
        float t = 0.25f * dy[2 * i - 1] + 0.75f * dy[2 * i] + 0.75f * dy[2 * i + 1] + 0.25f * dy[2 * i + 2];
        d0[i] += a * t;
        d1[i] += b * t;
    }
    g = 0.25f * dy[2 * W - 3] + 0.75f * dy[2 * W - 2] + dy[2 * W - 1];
    d0[W - 1] += a * g;
    d1[W - 1] += b * g;
}
/* forward (dir 0: y from x) or backward (dir 1: dx += from dy) over all planes */
static void uvae__cpu_upsample_run(const float *x, float *y, float *dx, const float *dy, int NC, int H, int W, int s, int mode, int dir) {
    int Ho = H * s, Wo = W * s, nc;
    UVAE__OMP(omp parallel for schedule(static) if ((double)NC * Ho * Wo > UVAE__PAR_MIN))
    for (nc = 0; nc < NC; nc++) {
        for (int oh = 0; oh < Ho; oh++) {
            int h0, h1, w0, w1;
            float lh, lw;
            size_t b0 = (size_t)nc * H * W;
            if (mode == UVAE_NEAREST) { h0 = h1 = oh / s; lh = 0; }
            else uvae__bilinear_coord(oh, s, H, &h0, &h1, &lh);
            if (mode == UVAE_BILINEAR && s == 2 && W >= 2) {
                if (!dir) uvae__cpu_upsample2_row(x + b0 + (size_t)h0 * W, x + b0 + (size_t)h1 * W, 1 - lh, lh,
                                                  y + ((size_t)nc * Ho + oh) * Wo, W);
                else uvae__cpu_upsample2_row_bwd(dy + ((size_t)nc * Ho + oh) * Wo, 1 - lh, lh, dx + b0 + (size_t)h0 * W,
                                                 dx + b0 + (size_t)h1 * W, W);
                continue;
            }
            for (int ow = 0; ow < Wo; ow++) {
                size_t o = ((size_t)nc * Ho + oh) * Wo + ow;
                if (mode == UVAE_NEAREST) { w0 = w1 = ow / s; lw = 0; }
                else uvae__bilinear_coord(ow, s, W, &w0, &w1, &lw);
                if (!dir) {
                    y[o] = (1 - lh) * ((1 - lw) * x[b0 + h0 * W + w0] + lw * x[b0 + h0 * W + w1]) +
                           lh * ((1 - lw) * x[b0 + h1 * W + w0] + lw * x[b0 + h1 * W + w1]);
                } else {
                    dx[b0 + h0 * W + w0] += (1 - lh) * (1 - lw) * dy[o];
                    dx[b0 + h0 * W + w1] += (1 - lh) * lw * dy[o];
                    dx[b0 + h1 * W + w0] += lh * (1 - lw) * dy[o];
                    dx[b0 + h1 * W + w1] += lh * lw * dy[o];
                }
            }
        }
    }
}
static void uvae__cpu_upsample_fwd(const float *x, float *y, int NC, int H, int W, int s, int mode) {
    uvae__cpu_upsample_run(x, y, NULL, NULL, NC, H, W, s, mode, 0);
}
static void uvae__cpu_upsample_bwd(const float *dy, float *dx, int NC, int H, int W, int s, int mode) {
    uvae__cpu_upsample_run(NULL, NULL, dx, dy, NC, H, W, s, mode, 1);
}
static void uvae__upsample_backward(uvae__node *nd) {
    uvae_tensor *x = nd->in[0];
    if (x->grad) UVAE__K(nd->ctx->device, upsample_bwd, nd->out->grad, x->grad, x->shape[0] * x->shape[1], x->shape[2], x->shape[3], nd->i[0], nd->i[1]);
}
uvae_tensor *uvae_upsample(uvae_ctx *ctx, uvae_tensor *x, int s, int mode) {
    uvae_tensor *out;
    uvae__node *nd;
    if (!x) return NULL;
    if (x->ndim != 4 || s < 1 || (mode != UVAE_NEAREST && mode != UVAE_BILINEAR))
        return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_upsample: input %s, scale %d, mode %d", uvae__shape_str(x), s, mode);
    out = uvae__out_full(ctx, 4, (int[]){x->shape[0], x->shape[1], x->shape[2] * s, x->shape[3] * s}, x, NULL, NULL);
    if (!out) return NULL;
    UVAE__K(ctx->device, upsample_fwd, x->data, out->data, x->shape[0] * x->shape[1], x->shape[2], x->shape[3], s, mode);
    if ((nd = uvae__record(ctx, uvae__upsample_backward, out, x, NULL, NULL))) { nd->i[0] = s; nd->i[1] = mode; }
    else if (out->grad) return NULL;
    return out;
}

/* ---------------------------------------------------------------------------------------------
   [ops/batch_norm2d] per channel c, over n, h, w (M values):
     train: mu = mean(x), var = mean((x-mu)^2); running <- (1-m) running + m (mu, var*M/(M-1))
     eval:  mu, var = running statistics
     xhat = (x - mu) / sqrt(var + eps);  y = gamma * xhat + beta
   == torch.nn.functional.batch_norm(x, running_mean, running_var, gamma, beta, training, m, eps).
   Backward (train): dx = gamma*istd/M * (M*dy - sum(dy) - xhat*sum(dy*xhat));
   (eval): dx = gamma*istd*dy.  dgamma = sum(dy*xhat), dbeta = sum(dy).
   stats: [2, C] = mean and inverse std per channel, saved for the backward.
   batch_norm2d_relu: y = relu(the above) in the same pass (== F.relu(F.batch_norm(...))); its
   backward takes dy where y > 0, 0 elsewhere (as relu's), so the normalised values before the
   relu are never stored: one activation and one pass over it less per layer. The sums over a
   channel's M values are in double, in 8 interleaved partial sums ([sums]), also for the variance
   and the backward's two sums. */
static void uvae__cpu_bn_fwd(const float *x, const float *gamma, const float *beta, float *rmean, float *rvar, float *y, float *stats,
                             int N, int C, size_t HW, int train, float momentum, float eps, int relu) {
    UVAE__SHARED_FOR(at, C, (double)N * C * HW > UVAE__PAR_MIN) {
        int c = at.i;
        double mu, var, M = (double)N * (double)HW;
        float istd, gm = gamma ? gamma[c] : 1.0f, bt = beta ? beta[c] : 0.0f;
        if (train) {
            double s[UVAE__SUML] = {0}, ss[UVAE__SUML] = {0};
            for (int n = 0; n < N; n++) uvae__sum8(x + ((size_t)n * C + c) * HW, HW, s);
            mu = uvae__fold8(s) / M;
            for (int n = 0; n < N; n++) uvae__sumsq8(x + ((size_t)n * C + c) * HW, HW, mu, ss);
            var = uvae__fold8(ss) / M;
            uvae__bn_running(rmean + c, rvar + c, mu, var, M, momentum);
        } else {
            mu = rmean[c];
            var = rvar[c];
        }
        istd = (float)(1.0 / sqrt(var + eps));
        stats[c] = (float)mu;
        stats[C + c] = istd;
        for (int n = 0; n < N; n++) {   /* (simd: exact elementwise expressions, the same values vectorised or not) */
            const float *xc = x + ((size_t)n * C + c) * HW;
            float *yc = y + ((size_t)n * C + c) * HW;
            size_t i;
            UVAE__OMP(omp simd)
            for (i = 0; i < HW; i++) yc[i] = gm * ((xc[i] - (float)mu) * istd) + bt;
            if (relu) {   /* a second pass over the row, in cache (one branch-free loop each) */
                UVAE__OMP(omp simd)
                for (i = 0; i < HW; i++) yc[i] = yc[i] > 0 ? yc[i] : 0.0f;
            }
        }
    }
}
/* y: the fused relu's output, or NULL; then dy is first masked in place as relu's backward would
   (dy = y > 0 ? dy : 0): it is the output's gradient, which nothing reads after this backward */
static void uvae__cpu_bn_bwd(const float *x, const float *gamma, float *dy, const float *y, const float *stats, float *dx,
                             float *dgamma, float *dbeta, int N, int C, size_t HW, int train) {
    double M = (double)N * (double)HW;
    UVAE__SHARED_FOR(at, C, (double)N * C * HW > UVAE__PAR_MIN) {
        int c = at.i;
        double sdy, sdyx, s[UVAE__SUML] = {0}, sx[UVAE__SUML] = {0};
        float mu = stats[c], istd = stats[C + c], gm = gamma ? gamma[c] : 1.0f;
        for (int n = 0; n < N; n++) {
            float *dc = dy + ((size_t)n * C + c) * HW;
            const float *xc = x + ((size_t)n * C + c) * HW, *yc = y ? y + ((size_t)n * C + c) * HW : NULL;
            size_t i;
            if (yc) {
                UVAE__OMP(omp simd)
                for (i = 0; i < HW; i++) dc[i] = yc[i] > 0 ? dc[i] : 0.0f;   /* a select (as torch): dc * [y > 0] would not vectorise */
            }
            uvae__sum8_bn(dc, xc, HW, mu, istd, s, sx);
        }
        sdy = uvae__fold8(s);
        sdyx = uvae__fold8(sx);
        if (dgamma) dgamma[c] += (float)sdyx;
        if (dbeta) dbeta[c] += (float)sdy;
        if (!dx) continue;
        for (int n = 0; n < N; n++) {
            const float *dc = dy + ((size_t)n * C + c) * HW, *xc = x + ((size_t)n * C + c) * HW;
            float *xg = dx + ((size_t)n * C + c) * HW, a = (float)(gm * istd / M), fm = (float)M, fs = (float)sdy, fx = (float)sdyx;
            size_t i;
            if (train) {
                UVAE__OMP(omp simd)
                for (i = 0; i < HW; i++) xg[i] += a * (fm * dc[i] - fs - (xc[i] - mu) * istd * fx);
            } else {
                UVAE__OMP(omp simd)
                for (i = 0; i < HW; i++) xg[i] += gm * istd * dc[i];
            }
        }
    }
}
static void uvae__bn_backward(uvae__node *nd) {   /* i[0]: train, i[1]: relu fused */
    uvae_tensor *x = nd->in[0], *g = nd->in[1], *bt = nd->in[2];
    UVAE__K(nd->ctx->device, bn_bwd, x->data, g ? g->data : NULL, nd->out->grad, nd->i[1] ? nd->out->data : NULL, (const float *)nd->saved,
            x->grad, g ? g->grad : NULL, bt ? bt->grad : NULL, x->shape[0], x->shape[1], (size_t)x->shape[2] * x->shape[3], nd->i[0]);
}
static uvae_tensor *uvae__batch_norm2d(uvae_ctx *ctx, uvae_tensor *x, uvae_tensor *gamma, uvae_tensor *beta,
                                       uvae_tensor *rmean, uvae_tensor *rvar, float momentum, float eps, int relu) {
    uvae_tensor *out;
    uvae__node *nd;
    float *st;
    int C;
    size_t HW;
    if (!x) return NULL;
    if (x->ndim != 4 || (gamma && gamma->size != (size_t)x->shape[1]) || (beta && beta->size != (size_t)x->shape[1]) ||
        !rmean || !rvar || rmean->size != (size_t)x->shape[1] || rvar->size != (size_t)x->shape[1] ||
        rmean->device != ctx->device || rvar->device != ctx->device)
        return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_batch_norm2d: input %s and per-channel tensors do not fit", uvae__shape_str(x));
    C = x->shape[1]; HW = (size_t)x->shape[2] * x->shape[3];
    if (ctx->train && (double)x->shape[0] * HW < 2)
        return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_batch_norm2d: training needs more than one value per channel, got %s", uvae__shape_str(x));
    out = uvae__out_full(ctx, 4, x->shape, x, gamma, beta);
    if (!out || !(st = uvae__arena_floats(ctx, 2 * (size_t)C, 0))) return NULL;
    UVAE__K(ctx->device, bn_fwd, x->data, gamma ? gamma->data : NULL, beta ? beta->data : NULL, rmean->data, rvar->data, out->data, st,
            x->shape[0], C, HW, ctx->train, momentum, eps, relu);
    if ((nd = uvae__record(ctx, uvae__bn_backward, out, x, gamma, beta))) { nd->saved = st; nd->i[0] = ctx->train; nd->i[1] = relu; }
    else if (out->grad) return NULL;
    return out;
}
uvae_tensor *uvae_batch_norm2d(uvae_ctx *ctx, uvae_tensor *x, uvae_tensor *gamma, uvae_tensor *beta,
                               uvae_tensor *rmean, uvae_tensor *rvar, float momentum, float eps) {
    return uvae__batch_norm2d(ctx, x, gamma, beta, rmean, rvar, momentum, eps, 0);
}
uvae_tensor *uvae_batch_norm2d_relu(uvae_ctx *ctx, uvae_tensor *x, uvae_tensor *gamma, uvae_tensor *beta,
                                    uvae_tensor *rmean, uvae_tensor *rvar, float momentum, float eps) {
    return uvae__batch_norm2d(ctx, x, gamma, beta, rmean, rvar, momentum, eps, 1);
}

/* ---------------------------------------------------------------------------------------------
   [ops/unary] elementwise y = f(x), dy/dx from x or y:
     relu        y = max(x, 0)               dy/dx = [x > 0]              == F.relu
     leaky_relu  y = x > 0 ? x : a x         dy/dx = x > 0 ? 1 : a        == F.leaky_relu(x, a)
     sigmoid     y = 1 / (1 + e^-x)          dy/dx = y (1 - y)            == torch.sigmoid
     tanh        y = tanh x                  dy/dx = 1 - y^2              == torch.tanh
     exp         y = e^x                     dy/dx = y                    == torch.exp
     scale       y = a x                     dy/dx = a                    == x * a          */
enum { UVAE__RELU, UVAE__LEAKY, UVAE__SIGMOID, UVAE__TANH, UVAE__EXP, UVAE__SCALE };
static float uvae__sigmoidf(float x) { return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x)); }
/* e^-|v| (e^-87 where |v| > 87, and for NaN) and log(1 + t) for t in [0, 1] in float and integer
   arithmetic alone, without a test on a float, so that loops over them vectorise (libm's expf and
   log1p are calls; a vector libm would round otherwise). exp: x = -|v| = n ln2 + r, n = x/ln2
   rounded by the 1.5 * 2^23 trick (its bits hold n), ln2 in two parts, |r| <= ln2/2; e^r by Taylor
   to r^7, 2^n from the exponent bits. log1p: 2 atanh(u), u = t/(2+t) <= 1/3, the odd series to
   u^13. Their composition is within 3e-7 relative of the exact value (tests/test_core.c). */
static inline float uvae__exp_negabs(float v) {
    uint32_t a = uvae__fbits(v) & 0x7fffffffu;     /* |v|, at most 87 (0x42ae0000) */
    float x, t, n, r, e;
    a = a < 0x42ae0000u ? a : 0x42ae0000u;
    x = -uvae__bitsf(a);
    t = x * 1.44269504f + 12582912.0f;
    n = t - 12582912.0f;
    r = (x - n * 0.693145752f) - n * 1.42860677e-6f;
    e = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    return e * uvae__bitsf((uvae__fbits(t) - 0x4b400000u + 127u) << 23);
}
static inline float uvae__log1p_01(float t) {
    float u = t / (2.0f + t), q = u * u;
    return 2.0f * u * (1.0f + q * (1.0f / 3 + q * (1.0f / 5 + q * (1.0f / 7 + q * (1.0f / 9 + q * (1.0f / 11 + q * (1.0f / 13)))))));
}
/* v > 0 ? v : a v as a select on the bits: GCC keeps a product under a float test as a branch
   (it would not trap where the test skips it), scalar and 25x slower on random signs */
static inline float uvae__leaky(float v, float a) {
    return uvae__fselect(0u - (uint32_t)(v > 0), v, a * v);
}
/* one loop per kind (the switch outside), so the simple ones vectorise */
/* `par` is the OpenMP loop construct: "for simd" (vectorised) only for exact expressions; a vector
   libm would round otherwise than the scalar one, and which elements go through which depends on
   the thread count. */
#define UVAE__UNARY_LOOP(par, expr) do {                                                    \
        UVAE__OMP(omp parallel par schedule(static) if (n > UVAE__PAR_MIN))                   \
        for (i = 0; i < (ptrdiff_t)n; i++) { float v = x[i]; y[i] = (expr); }                \
    } while (0)
static void uvae__cpu_unary_fwd(int kind, float a, const float *x, float *y, size_t n) {
    ptrdiff_t i;
    switch (kind) {
    case UVAE__RELU: UVAE__UNARY_LOOP(for simd, v > 0 ? v : 0.0f); break;
    case UVAE__LEAKY: UVAE__UNARY_LOOP(for simd, uvae__leaky(v, a)); break;
    case UVAE__SIGMOID: UVAE__UNARY_LOOP(for, uvae__sigmoidf(v)); break;
    case UVAE__TANH: UVAE__UNARY_LOOP(for, tanhf(v)); break;
    case UVAE__EXP: UVAE__UNARY_LOOP(for, expf(v)); break;
    default: UVAE__UNARY_LOOP(for simd, a * v); break;
    }
}
#define UVAE__UNARY_BWD_LOOP(par, deriv) do {                                               \
        UVAE__OMP(omp parallel par schedule(static) if (n > UVAE__PAR_MIN))                   \
        for (i = 0; i < (ptrdiff_t)n; i++) dx[i] += (deriv) * dy[i];                          \
    } while (0)
static void uvae__cpu_unary_bwd(int kind, float a, const float *x, const float *y, const float *dy, float *dx, size_t n) {
    ptrdiff_t i;
    switch (kind) {
    case UVAE__RELU: UVAE__UNARY_BWD_LOOP(for simd, x[i] > 0 ? 1.0f : 0.0f); break;
    case UVAE__LEAKY: UVAE__UNARY_BWD_LOOP(for simd, x[i] > 0 ? 1.0f : a); break;
    case UVAE__SIGMOID: UVAE__UNARY_BWD_LOOP(for, y[i] * (1 - y[i])); break;
    case UVAE__TANH: UVAE__UNARY_BWD_LOOP(for, 1 - y[i] * y[i]); break;
    case UVAE__EXP: UVAE__UNARY_BWD_LOOP(for, y[i]); break;
    default: UVAE__UNARY_BWD_LOOP(for simd, a); break;
    }
}
static void uvae__unary_backward(uvae__node *nd) {
    uvae_tensor *x = nd->in[0], *y = nd->out;
    if (x->grad) UVAE__K(nd->ctx->device, unary_bwd, nd->i[0], nd->f[0], x->data, y->data, y->grad, x->grad, x->size);
}
static uvae_tensor *uvae__unary(uvae_ctx *ctx, uvae_tensor *x, int kind, float a) {
    uvae_tensor *y;
    uvae__node *nd;
    if (!x) return NULL;
    if (!(y = uvae__out_full(ctx, x->ndim, x->shape, x, NULL, NULL))) return NULL;
    UVAE__K(ctx->device, unary_fwd, kind, a, x->data, y->data, x->size);
    if ((nd = uvae__record(ctx, uvae__unary_backward, y, x, NULL, NULL))) { nd->i[0] = kind; nd->f[0] = a; }
    else if (y->grad) return NULL;
    return y;
}
uvae_tensor *uvae_relu(uvae_ctx *ctx, uvae_tensor *x) { return uvae__unary(ctx, x, UVAE__RELU, 0); }
uvae_tensor *uvae_leaky_relu(uvae_ctx *ctx, uvae_tensor *x, float slope) { return uvae__unary(ctx, x, UVAE__LEAKY, slope); }
uvae_tensor *uvae_sigmoid(uvae_ctx *ctx, uvae_tensor *x) { return uvae__unary(ctx, x, UVAE__SIGMOID, 0); }
uvae_tensor *uvae_tanh(uvae_ctx *ctx, uvae_tensor *x) { return uvae__unary(ctx, x, UVAE__TANH, 0); }
uvae_tensor *uvae_exp(uvae_ctx *ctx, uvae_tensor *x) { return uvae__unary(ctx, x, UVAE__EXP, 0); }
uvae_tensor *uvae_scale(uvae_ctx *ctx, uvae_tensor *x, float s) { return uvae__unary(ctx, x, UVAE__SCALE, s); }

/* ---------------------------------------------------------------------------------------------
   [ops/linear] y[N,O] = x[N,I] @ W[O,I]^T + b[O]                  == torch.nn.functional.linear
   dx += dy @ W;  dW += dy^T @ x;  db += sum over rows of dy. */
static void uvae__linear_backward(uvae__node *nd) {
    uvae_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *y = nd->out;
    int dev = nd->ctx->device, N = x->shape[0], I = x->shape[1], O = w->shape[0];
    if (x->grad) UVAE__K(dev, gemm, 0, 0, N, I, O, y->grad, O, w->data, I, x->grad, I, 1);
    if (w->grad) UVAE__K(dev, gemm, 1, 0, O, I, N, y->grad, O, x->data, I, w->grad, I, 1);
    if (b && b->grad) UVAE__K(dev, bias_grad, y->grad, b->grad, N, O, 1);
    nd->ctx->flops += 2.0 * N * I * O * ((w->grad != NULL) + (x->grad != NULL));
}
uvae_tensor *uvae_linear(uvae_ctx *ctx, uvae_tensor *x, uvae_tensor *w, uvae_tensor *b) {
    uvae_tensor *y;
    if (!x || !w) return NULL;
    if (x->ndim != 2 || w->ndim != 2 || w->shape[1] != x->shape[1] || (b && b->size != (size_t)w->shape[0]))
        return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_linear: x %s, w %s, b %s do not fit",
                                          uvae__shape_str(x), uvae__shape_str(w), b ? uvae__shape_str(b) : "none");
    if (!(y = uvae__out_full(ctx, 2, (int[]){x->shape[0], w->shape[0]}, x, w, b))) return NULL;
    UVAE__K(ctx->device, gemm, 0, 1, x->shape[0], w->shape[0], x->shape[1], x->data, x->shape[1], w->data, w->shape[1], y->data, w->shape[0], 0);
    if (b) UVAE__K(ctx->device, bias_add, y->data, b->data, x->shape[0], w->shape[0], 1);
    ctx->flops += 2.0 * x->shape[0] * x->shape[1] * w->shape[0];
    if (!uvae__record(ctx, uvae__linear_backward, y, x, w, b) && y->grad) return NULL;
    return y;
}

/* [ops/embedding] y[n,:] = table[idx[n],:]; dtable[idx[n],:] += dy[n,:]   == F.embedding
   Indices are checked on the CPU; on the GPU they are not read back (a bad one gives a NaN row). */
static void uvae__cpu_embedding_fwd(const float *idx, const float *tab, float *y, int N, int V, int D) {
    (void)V;                                            /* checked by uvae_embedding */
    for (int n = 0; n < N; n++) memcpy(y + (size_t)n * D, tab + (size_t)idx[n] * D, (size_t)D * sizeof(float));
}
static void uvae__cpu_embedding_bwd(const float *idx, const float *dy, float *dtab, int N, int V, int D) {
    (void)V;
    for (int n = 0; n < N; n++)                         /* sequential: repeated indices add up in order */
        for (int d = 0; d < D; d++) dtab[(size_t)idx[n] * D + d] += dy[(size_t)n * D + d];
}
static void uvae__embedding_backward(uvae__node *nd) {
    uvae_tensor *idx = nd->in[0], *tab = nd->in[1];
    if (tab->grad) UVAE__K(nd->ctx->device, embedding_bwd, idx->data, nd->out->grad, tab->grad, idx->shape[0], tab->shape[0], tab->shape[1]);
}
uvae_tensor *uvae_embedding(uvae_ctx *ctx, uvae_tensor *idx, uvae_tensor *tab) {
    uvae_tensor *y;
    if (!idx || !tab) return NULL;
    if (tab->ndim != 2 || idx->ndim != 1)
        return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_embedding: indices %s (want [N]), table %s (want [V,D])",
                                          uvae__shape_str(idx), uvae__shape_str(tab));
    if (idx->device == UVAE_CPU)
        for (size_t n = 0; n < idx->size; n++) {
            float v = idx->data[n];
            if (!(v >= 0 && v < (float)tab->shape[0] && v == floorf(v)))
                return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_embedding: index %g at position %zu is not an integer in 0..%d", (double)v, n, tab->shape[0] - 1);
        }
    if (!(y = uvae__out_full(ctx, 2, (int[]){idx->shape[0], tab->shape[1]}, idx, tab, NULL))) return NULL;
    UVAE__K(ctx->device, embedding_fwd, idx->data, tab->data, y->data, idx->shape[0], tab->shape[0], tab->shape[1]);
    if (!uvae__record(ctx, uvae__embedding_backward, y, idx, tab, NULL) && y->grad) return NULL;
    return y;
}

/* ---------------------------------------------------------------------------------------------
   [ops/concat] along dim 1: a [N,Ca,...], b [N,Cb,...] -> [N,Ca+Cb,...]   == torch.cat([a,b], 1)
   Backward splits the gradient back. Views each sample as one row: [a row, b row]. */
static void uvae__cpu_concat_fwd(const float *a, const float *b, float *y, int N, size_t ra, size_t rb) {
    int n;
    UVAE__OMP(omp parallel for schedule(static) if ((double)N * (ra + rb) > UVAE__PAR_MIN))
    for (n = 0; n < N; n++) {
        memcpy(y + n * (ra + rb), a + n * ra, ra * sizeof(float));
        memcpy(y + n * (ra + rb) + ra, b + n * rb, rb * sizeof(float));
    }
}
static void uvae__cpu_concat_bwd(const float *dy, float *da, float *db, int N, size_t ra, size_t rb) {
    int n;
    UVAE__OMP(omp parallel for schedule(static) if ((double)N * (ra + rb) > UVAE__PAR_MIN))
    for (n = 0; n < N; n++) {
        if (da) for (size_t i = 0; i < ra; i++) da[n * ra + i] += dy[n * (ra + rb) + i];
        if (db) for (size_t i = 0; i < rb; i++) db[n * rb + i] += dy[n * (ra + rb) + ra + i];
    }
}
static void uvae__concat_backward(uvae__node *nd) {
    uvae_tensor *a = nd->in[0], *b = nd->in[1];
    size_t N = (size_t)a->shape[0];
    UVAE__K(nd->ctx->device, concat_bwd, nd->out->grad, a->grad, b->grad, (int)N, a->size / N, b->size / N);
}
uvae_tensor *uvae_concat(uvae_ctx *ctx, uvae_tensor *a, uvae_tensor *b) {
    uvae_tensor *y;
    int shape[UVAE_MAX_DIMS], ok;
    if (!a || !b) return NULL;
    ok = a->ndim == b->ndim && a->ndim >= 2 && a->shape[0] == b->shape[0] && a->shape[0] > 0;
    for (int i = 2; ok && i < a->ndim; i++) ok = a->shape[i] == b->shape[i];
    if (!ok) return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_concat: %s and %s differ outside dim 1", uvae__shape_str(a), uvae__shape_str(b));
    memcpy(shape, a->shape, sizeof shape);
    shape[1] = a->shape[1] + b->shape[1];
    if (!(y = uvae__out_full(ctx, a->ndim, shape, a, b, NULL))) return NULL;
    UVAE__K(ctx->device, concat_fwd, a->data, b->data, y->data, a->shape[0], a->size / (size_t)a->shape[0], b->size / (size_t)a->shape[0]);
    if (!uvae__record(ctx, uvae__concat_backward, y, a, b, NULL) && y->grad) return NULL;
    return y;
}

/* [ops/add, mul] elementwise, same shapes.  add: da += dy, db += dy.  mul: da += dy*b, db += dy*a. */
static void uvae__cpu_binary_fwd(int mul, const float *a, const float *b, float *y, size_t n) {
    ptrdiff_t i;
    UVAE__OMP(omp parallel for schedule(static) if (n > UVAE__PAR_MIN))
    for (i = 0; i < (ptrdiff_t)n; i++) y[i] = mul ? a[i] * b[i] : a[i] + b[i];
}
static void uvae__cpu_binary_bwd(int mul, const float *a, const float *b, const float *dy, float *da, float *db, size_t n) {
    ptrdiff_t i;
    UVAE__OMP(omp parallel for schedule(static) if (n > UVAE__PAR_MIN))
    for (i = 0; i < (ptrdiff_t)n; i++) {
        if (da) da[i] += mul ? dy[i] * b[i] : dy[i];
        if (db) db[i] += mul ? dy[i] * a[i] : dy[i];
    }
}
static void uvae__binary_backward(uvae__node *nd) {
    uvae_tensor *a = nd->in[0], *b = nd->in[1];
    UVAE__K(nd->ctx->device, binary_bwd, nd->i[0], a->data, b->data, nd->out->grad, a->grad, b->grad, a->size);
}
static uvae_tensor *uvae__binary(uvae_ctx *ctx, uvae_tensor *a, uvae_tensor *b, int mul) {
    uvae_tensor *y;
    uvae__node *nd;
    if (!a || !b) return NULL;
    if (!uvae_same_shape(a, b))
        return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_%s: shapes %s and %s differ", mul ? "mul" : "add", uvae__shape_str(a), uvae__shape_str(b));
    if (!(y = uvae__out_full(ctx, a->ndim, a->shape, a, b, NULL))) return NULL;
    UVAE__K(ctx->device, binary_fwd, mul, a->data, b->data, y->data, y->size);
    if ((nd = uvae__record(ctx, uvae__binary_backward, y, a, b, NULL))) nd->i[0] = mul;
    else if (y->grad) return NULL;
    return y;
}
uvae_tensor *uvae_add(uvae_ctx *ctx, uvae_tensor *a, uvae_tensor *b) { return uvae__binary(ctx, a, b, 0); }
uvae_tensor *uvae_mul(uvae_ctx *ctx, uvae_tensor *a, uvae_tensor *b) { return uvae__binary(ctx, a, b, 1); }

/* [ops/reshape] a view of x's values (no copy) with a gradient of its own: dx += dy. */
static void uvae__reshape_backward(uvae__node *nd) {
    UVAE__K(nd->ctx->device, binary_bwd, 0, NULL, NULL, nd->out->grad, nd->in[0]->grad, NULL, nd->out->size);
}
uvae_tensor *uvae_reshape(uvae_ctx *ctx, uvae_tensor *x, int ndim, const int *shape) {
    uvae_tensor *y;
    if (!x) return NULL;
    if (!(y = (uvae_tensor *)uvae__host_alloc(ctx, sizeof *y))) return NULL;
    if (uvae__set_shape(y, ndim, shape, "uvae_reshape") != UVAE_OK) return NULL;
    if (y->size != x->size)
        return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_reshape: %s has %zu values, new shape %s has %zu",
                                          uvae__shape_str(x), x->size, uvae__shape_str(y), y->size);
    y->data = x->data;
    y->grad = uvae__needs_grad(ctx, x, NULL, NULL) ? UVAE__GRAD_PENDING : NULL;
    y->device = x->device;
    if (!uvae__record(ctx, uvae__reshape_backward, y, x, NULL, NULL) && y->grad) return NULL;
    return y;
}
uvae_tensor *uvae_flatten(uvae_ctx *ctx, uvae_tensor *x) {
    if (!x) return NULL;
    return uvae_reshape(ctx, x, 2, (int[]){x->shape[0], x->shape[0] ? (int)(x->size / (size_t)x->shape[0]) : 0});
}

/* [ops/sum, mean] -> [1], accumulated in double; dx += dy (sum) or dy/n (mean). */
static void uvae__cpu_sum(const float *x, size_t n, float scale, float *out) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    out[0] = (float)(s * scale);
}
static void uvae__cpu_sum_bwd(const float *dy, float scale, float *dx, size_t n) {
    float g = dy[0] * scale;
    for (size_t i = 0; i < n; i++) dx[i] += g;
}
static void uvae__reduce_backward(uvae__node *nd) {
    uvae_tensor *x = nd->in[0];
    if (x->grad) UVAE__K(nd->ctx->device, sum_bwd, nd->out->grad, nd->f[0], x->grad, x->size);
}
static uvae_tensor *uvae__reduce(uvae_ctx *ctx, uvae_tensor *x, int mean) {
    uvae_tensor *y;
    uvae__node *nd;
    float scale;
    if (!x) return NULL;
    if (!(y = uvae__out(ctx, 1, (int[]){1}, x, NULL, NULL))) return NULL;
    scale = mean ? (float)(1.0 / (double)x->size) : 1.0f;
    UVAE__K(ctx->device, sum, x->data, x->size, scale, y->data);
    if ((nd = uvae__record(ctx, uvae__reduce_backward, y, x, NULL, NULL))) nd->f[0] = scale;
    else if (y->grad) return NULL;
    return y;
}
uvae_tensor *uvae_sum(uvae_ctx *ctx, uvae_tensor *x) { return uvae__reduce(ctx, x, 0); }
uvae_tensor *uvae_mean(uvae_ctx *ctx, uvae_tensor *x) { return uvae__reduce(ctx, x, 1); }

/* [ops/dropout] training: y = x * mask, mask = 1/(1-p) with probability 1-p, else 0; eval or
   p == 0: y = x.  == torch.nn.functional.dropout(x, p, training). The mask is a hash of
   (seed, position), the seed drawn from the ctx rng: both devices draw the same mask. */
static void uvae__cpu_dropout_fwd(const float *x, float *y, float *mask, size_t n, float p, uint32_t seed) {
    float keep = 1.0f / (1.0f - p);
    ptrdiff_t i;
    UVAE__OMP(omp parallel for schedule(static) if (n > UVAE__PAR_MIN))
    for (i = 0; i < (ptrdiff_t)n; i++) {
        mask[i] = uvae_hash_uniform(seed, (uint32_t)i) < p ? 0.0f : keep;
        y[i] = x[i] * mask[i];
    }
}
static void uvae__dropout_backward(uvae__node *nd) {
    uvae_tensor *x = nd->in[0];
    if (x->grad) UVAE__K(nd->ctx->device, binary_bwd, 1, NULL, (const float *)nd->saved, nd->out->grad, x->grad, NULL, x->size);
}
uvae_tensor *uvae_dropout(uvae_ctx *ctx, uvae_tensor *x, float p) {
    uvae_tensor *y;
    uvae__node *nd;
    float *mask;
    if (!x) return NULL;
    if (!(p >= 0 && p < 1)) return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_dropout: p = %g not in [0, 1)", (double)p);
    if (!ctx->train || p == 0) return x;
    if (!(y = uvae__out_full(ctx, x->ndim, x->shape, x, NULL, NULL)) || !(mask = uvae__arena_floats(ctx, x->size, 0))) return NULL;
    UVAE__K(ctx->device, dropout_fwd, x->data, y->data, mask, x->size, p, uvae_rng_u32(&ctx->rng));
    if ((nd = uvae__record(ctx, uvae__dropout_backward, y, x, NULL, NULL))) nd->saved = mask;
    else if (y->grad) return NULL;
    return y;
}

/* ---------------------------------------------------------------------------------------------
   [loss] Every loss returns a [1] tensor; its backward scales by the incoming gradient dy[0].
   CPU sums over positions run in UVAE__CHUNKS fixed chunks (in parallel), then add the chunks in
   order: the result does not depend on the thread count. */
#define UVAE__CHUNKS 64
#define UVAE__MAXC 256

/* Class targets: an integer-valued float in [0, C) at every position (checked on the CPU only). */
static int uvae__check_classes(const char *who, uvae_tensor *logits, uvae_tensor *t) {
    int C = logits->shape[1], ok = logits->ndim >= 2 && t->ndim == logits->ndim - 1 && t->shape[0] == logits->shape[0];
    for (int i = 2; ok && i < logits->ndim; i++) ok = t->shape[i - 1] == logits->shape[i];
    if (!ok) return uvae__fail(UVAE_ERR_ARG, "%s: target %s does not fit logits %s (want logits without dim 1)", who, uvae__shape_str(t), uvae__shape_str(logits));
    if (t->device == UVAE_CPU)
        for (size_t i = 0; i < t->size; i++)
            if (!(t->data[i] >= 0 && t->data[i] < (float)C && t->data[i] == floorf(t->data[i])))
                return uvae__fail(UVAE_ERR_ARG, "%s: target %g at position %zu is not a class in 0..%d", who, (double)t->data[i], i, C - 1);
    return UVAE_OK;
}

/* softmax over dim 1 at one position of logits laid out [C, HW]: p[c] = softmax(z[c*HW]) */
static void uvae__softmax_at(const float *z, int C, size_t HW, float *p) {
    float m = z[0], s = 0;
    for (int c = 1; c < C; c++) if (z[c * HW] > m) m = z[c * HW];
    for (int c = 0; c < C; c++) s += (p[c] = expf(z[c * HW] - m));
    for (int c = 0; c < C; c++) p[c] /= s;
}

/* [loss/cross_entropy] mean over positions of logsumexp_c(z) - z[target]
   == F.cross_entropy(logits, target).   dz = dy (softmax(z) - onehot(target)) / positions. */
static void uvae__cpu_ce_fwd(const float *z, const float *t, int N, int C, size_t HW, float *out) {
    double part[UVAE__CHUNKS], s = 0;
    size_t P = (size_t)N * HW;
    int k;
    UVAE__OMP(omp parallel for schedule(static) if ((double)P * C > UVAE__PAR_MIN))
    for (k = 0; k < UVAE__CHUNKS; k++) {
        double acc = 0;
        for (size_t q = P * k / UVAE__CHUNKS; q < P * (k + 1) / UVAE__CHUNKS; q++) {
            const float *zp = z + (q / HW) * C * HW + q % HW;
            float m = zp[0];
            double se = 0;
            for (int c = 1; c < C; c++) if (zp[c * HW] > m) m = zp[c * HW];
            for (int c = 0; c < C; c++) se += exp((double)zp[c * HW] - m);
            acc += m + log(se) - zp[(size_t)t[q] * HW];
        }
        part[k] = acc;
    }
    for (k = 0; k < UVAE__CHUNKS; k++) s += part[k];
    out[0] = (float)(s / (double)P);
}
static void uvae__cpu_ce_bwd(const float *z, const float *t, const float *dy, int N, int C, size_t HW, float *dz) {
    float g = dy[0] / (float)((size_t)N * HW);
    ptrdiff_t q;
    UVAE__OMP(omp parallel for schedule(static) if ((double)N * HW * C > UVAE__PAR_MIN))
    for (q = 0; q < (ptrdiff_t)((size_t)N * HW); q++) {
        float p[UVAE__MAXC];
        size_t base = ((size_t)q / HW) * C * HW + (size_t)q % HW;
        uvae__softmax_at(z + base, C, HW, p);
        p[(int)t[q]] -= 1;
        for (int c = 0; c < C; c++) dz[base + c * HW] += g * p[c];
    }
}
static void uvae__ce_backward(uvae__node *nd) {
    uvae_tensor *z = nd->in[0], *t = nd->in[1];
    int N = z->shape[0], C = z->shape[1];
    if (z->grad) UVAE__K(nd->ctx->device, ce_bwd, z->data, t->data, nd->out->grad, N, C, z->size / ((size_t)N * C), z->grad);
}
uvae_tensor *uvae_cross_entropy(uvae_ctx *ctx, uvae_tensor *z, uvae_tensor *t) {
    uvae_tensor *y;
    int N, C;
    if (!z || !t) return NULL;
    if (z->ndim < 2 || z->shape[1] < 1 || z->shape[1] > UVAE__MAXC)
        return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_cross_entropy: logits %s need 1..%d classes in dim 1", uvae__shape_str(z), UVAE__MAXC);
    if (uvae__check_classes("uvae_cross_entropy", z, t) != UVAE_OK) return NULL;
    N = z->shape[0]; C = z->shape[1];
    if (!(y = uvae__out(ctx, 1, (int[]){1}, z, t, NULL))) return NULL;
    UVAE__K(ctx->device, ce_fwd, z->data, t->data, N, C, z->size / ((size_t)N * C), y->data);
    if (!uvae__record(ctx, uvae__ce_backward, y, z, t, NULL) && y->grad) return NULL;
    return y;
}

/* [loss/bce_with_logits, bernoulli_nll] per element max(z,0) - z t + log(1 + e^-|z|) (stable);
   divided by the element count (bce: mean) or by N (bernoulli: sum per sample, mean over batch).
   == F.binary_cross_entropy_with_logits(z, t) [, reduction='sum') / N].  dz = dy (sigmoid(z) - t)/div */
static void uvae__cpu_bce_fwd(const float *z, const float *t, size_t n, float div, float *out) {
    double part[UVAE__CHUNKS], s = 0;
    int k;
    UVAE__OMP(omp parallel for schedule(static) if (n > UVAE__PAR_MIN))
    for (k = 0; k < UVAE__CHUNKS; k++) {   /* the terms in float, 256 at a time (vectorised), summed in double */
        double p[UVAE__SUML] = {0};
        for (size_t i = n * k / UVAE__CHUNKS, end = n * (k + 1) / UVAE__CHUNKS; i < end; i += 256) {
            float term[256];
            int m = end - i < 256 ? (int)(end - i) : 256;
            UVAE__OMP(omp simd)
            for (int j = 0; j < m; j++) {   /* max(v, 0) = (v + |v|) / 2 */
                float v = z[i + j], av = uvae__bitsf(uvae__fbits(v) & 0x7fffffffu);
                term[j] = 0.5f * (v + av) - v * t[i + j] + uvae__log1p_01(uvae__exp_negabs(v));
            }
            uvae__sum8(term, (size_t)m, p);
        }
        part[k] = uvae__fold8(p);
    }
    for (k = 0; k < UVAE__CHUNKS; k++) s += part[k];
    out[0] = (float)(s / div);
}
static void uvae__cpu_bce_bwd(const float *z, const float *t, const float *dy, size_t n, float div, float *dz) {
    float g = dy[0] / div;
    ptrdiff_t i;
    UVAE__OMP(omp parallel for simd schedule(static) if (n > UVAE__PAR_MIN))
    for (i = 0; i < (ptrdiff_t)n; i++) {   /* sigmoid(v) = 1/(1+e) for v >= 0, e/(1+e) below, e = e^-|v| */
        float v = z[i], e = uvae__exp_negabs(v), num = uvae__bitsf(uvae__fbits(v) >> 31 ? uvae__fbits(e) : 0x3f800000u);
        dz[i] += g * (num / (1.0f + e) - t[i]);
    }
}
static void uvae__bce_backward(uvae__node *nd) {
    uvae_tensor *z = nd->in[0];
    if (z->grad) UVAE__K(nd->ctx->device, bce_bwd, z->data, nd->in[1]->data, nd->out->grad, z->size, nd->f[0], z->grad);
}
static uvae_tensor *uvae__bce(uvae_ctx *ctx, uvae_tensor *z, uvae_tensor *t, int per_sample, const char *who) {
    uvae_tensor *y;
    uvae__node *nd;
    float div;
    if (!z || !t) return NULL;
    if (!uvae_same_shape(z, t)) return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "%s: logits %s and target %s differ", who, uvae__shape_str(z), uvae__shape_str(t));
    if (!(y = uvae__out(ctx, 1, (int[]){1}, z, t, NULL))) return NULL;
    div = per_sample ? (float)z->shape[0] : (float)z->size;
    UVAE__K(ctx->device, bce_fwd, z->data, t->data, z->size, div, y->data);
    if ((nd = uvae__record(ctx, uvae__bce_backward, y, z, t, NULL))) nd->f[0] = div;
    else if (y->grad) return NULL;
    return y;
}
uvae_tensor *uvae_bce_with_logits(uvae_ctx *ctx, uvae_tensor *z, uvae_tensor *t) { return uvae__bce(ctx, z, t, 0, "uvae_bce_with_logits"); }
uvae_tensor *uvae_bernoulli_nll(uvae_ctx *ctx, uvae_tensor *z, uvae_tensor *t) { return uvae__bce(ctx, z, t, 1, "uvae_bernoulli_nll"); }

/* [loss/dice] soft Dice pooled over the batch, per class c:
     I_c = sum p t,  S_c = sum p + sum t,  d_c = (2 I_c + s) / (S_c + s),  loss = 1 - mean_c d_c
   C > 1: p = softmax(z) over dim 1, t = onehot(target); C == 1: p = sigmoid(z), t = target (0/1).
   dL/dp = -dy (2 t (S_c + s) - (2 I_c + s)) / (C (S_c + s)^2), then through softmax / sigmoid.
   IS: [2, C] doubles = I_c and S_c, saved for the backward. */
static float uvae__dice_target(const float *t, size_t q, int C, int c) {
    return C == 1 ? t[q] : (float)((int)t[q] == c);
}
static void uvae__dice_probs(const float *z, size_t base, int C, size_t HW, float *p) {
    if (C == 1) p[0] = uvae__sigmoidf(z[base]);
    else uvae__softmax_at(z + base, C, HW, p);
}
static void uvae__cpu_dice_fwd(const float *z, const float *t, int N, int C, size_t HW, float smooth, double *IS, float *out) {
    double dice = 0;
    memset(IS, 0, 2 * (size_t)C * sizeof(double));
    for (size_t q = 0; q < (size_t)N * HW; q++) {        /* sequential: a fixed summation order */
        float p[UVAE__MAXC];
        uvae__dice_probs(z, (q / HW) * C * HW + q % HW, C, HW, p);
        for (int c = 0; c < C; c++) {
            float tc = uvae__dice_target(t, q, C, c);
            IS[c] += p[c] * tc;
            IS[C + c] += p[c] + tc;
        }
    }
    for (int c = 0; c < C; c++) dice += (2 * IS[c] + smooth) / (IS[C + c] + smooth);
    out[0] = (float)(1 - dice / C);
}
static void uvae__cpu_dice_bwd(const float *z, const float *t, const double *IS, const float *dy, int N, int C, size_t HW, float smooth, float *dz) {
    float g = dy[0];
    ptrdiff_t q;
    UVAE__OMP(omp parallel for schedule(static) if ((double)N * HW * C > UVAE__PAR_MIN))
    for (q = 0; q < (ptrdiff_t)((size_t)N * HW); q++) {
        float p[UVAE__MAXC], dp[UVAE__MAXC], pdp = 0;
        size_t base = ((size_t)q / HW) * C * HW + (size_t)q % HW;
        uvae__dice_probs(z, base, C, HW, p);
        for (int c = 0; c < C; c++) {
            double den = IS[C + c] + smooth;
            dp[c] = (float)(-(2.0 * uvae__dice_target(t, (size_t)q, C, c) * den - (2.0 * IS[c] + smooth)) / ((double)C * den * den)) * g;
            pdp += p[c] * dp[c];
        }
        for (int c = 0; c < C; c++) dz[base + c * HW] += C == 1 ? dp[0] * p[0] * (1 - p[0]) : p[c] * (dp[c] - pdp);
    }
}
static void uvae__dice_backward(uvae__node *nd) {
    uvae_tensor *z = nd->in[0];
    int N = z->shape[0], C = z->shape[1];
    if (z->grad) UVAE__K(nd->ctx->device, dice_bwd, z->data, nd->in[1]->data, (const double *)nd->saved, nd->out->grad, N, C,
                         z->size / ((size_t)N * C), nd->f[0], z->grad);
}
uvae_tensor *uvae_dice_loss(uvae_ctx *ctx, uvae_tensor *z, uvae_tensor *t, float smooth) {
    uvae_tensor *y;
    uvae__node *nd;
    double *IS;
    int N, C;
    if (!z || !t) return NULL;
    if (z->ndim != 4 || z->shape[1] > UVAE__MAXC)
        return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_dice_loss: logits %s, want [N,C,H,W] with C <= %d", uvae__shape_str(z), UVAE__MAXC);
    N = z->shape[0]; C = z->shape[1];
    if (C == 1) {
        if (!uvae_same_shape(z, t)) return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_dice_loss: binary target %s must match logits %s", uvae__shape_str(t), uvae__shape_str(z));
    } else if (uvae__check_classes("uvae_dice_loss", z, t) != UVAE_OK) return NULL;
    if (!(y = uvae__out(ctx, 1, (int[]){1}, z, t, NULL)) || !(IS = (double *)uvae__dev_alloc(ctx, 2 * (size_t)C * sizeof(double)))) return NULL;
    UVAE__K(ctx->device, dice_fwd, z->data, t->data, N, C, z->size / ((size_t)N * C), smooth, IS, y->data);
    if ((nd = uvae__record(ctx, uvae__dice_backward, y, z, t, NULL))) { nd->saved = IS; nd->f[0] = smooth; }
    else if (y->grad) return NULL;
    return y;
}
uvae_tensor *uvae_ce_dice_loss(uvae_ctx *ctx, uvae_tensor *z, uvae_tensor *t, float smooth) {
    return uvae_add(ctx, uvae_cross_entropy(ctx, z, t), uvae_dice_loss(ctx, z, t, smooth));
}

/* [loss/kl_normal] KL(N(mu, e^lv) || N(0,1)) = -0.5 sum (1 + lv - mu^2 - e^lv) / N
   dmu = dy mu / N,  dlv = dy (-0.5) (1 - e^lv) / N. */
static void uvae__cpu_kl_fwd(const float *mu, const float *lv, size_t n, int N, float *out) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += -0.5 * (1 + lv[i] - (double)mu[i] * mu[i] - exp(lv[i]));
    out[0] = (float)(s / N);
}
static void uvae__cpu_kl_bwd(const float *mu, const float *lv, const float *dy, size_t n, int N, float *dmu, float *dlv) {
    float g = dy[0] / (float)N;
    for (size_t i = 0; i < n; i++) {
        if (dmu) dmu[i] += g * mu[i];
        if (dlv) dlv[i] += g * -0.5f * (1 - expf(lv[i]));
    }
}
static void uvae__kl_backward(uvae__node *nd) {
    uvae_tensor *mu = nd->in[0], *lv = nd->in[1];
    UVAE__K(nd->ctx->device, kl_bwd, mu->data, lv->data, nd->out->grad, mu->size, mu->shape[0], mu->grad, lv->grad);
}
uvae_tensor *uvae_kl_normal(uvae_ctx *ctx, uvae_tensor *mu, uvae_tensor *lv) {
    uvae_tensor *y;
    if (!mu || !lv) return NULL;
    if (!uvae_same_shape(mu, lv)) return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_kl_normal: mu %s and logvar %s differ", uvae__shape_str(mu), uvae__shape_str(lv));
    if (!(y = uvae__out(ctx, 1, (int[]){1}, mu, lv, NULL))) return NULL;
    UVAE__K(ctx->device, kl_fwd, mu->data, lv->data, mu->size, mu->shape[0], y->data);
    if (!uvae__record(ctx, uvae__kl_backward, y, mu, lv, NULL) && y->grad) return NULL;
    return y;
}

/* [loss/gaussian_nll] sum 0.5 ((t - m)^2 e^-lv + lv + log 2pi) / N, lv per element or shared.
   dm = -dy (t - m) e^-lv / N,  dlv = dy 0.5 (1 - (t - m)^2 e^-lv) / N (summed when shared). */
static void uvae__cpu_gnll_fwd(const float *m, const float *lv, const float *t, size_t n, int shared, int N, float *out) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double l = lv[shared ? 0 : i], d = (double)t[i] - m[i];
        s += 0.5 * (d * d * exp(-l) + l + 1.8378770664093453);
    }
    out[0] = (float)(s / N);
}
static void uvae__cpu_gnll_bwd(const float *m, const float *lv, const float *t, const float *dy, size_t n, int shared, int N, float *dm, float *dlv) {
    float g = dy[0] / (float)N;
    double dshared = 0;
    for (size_t i = 0; i < n; i++) {
        float l = lv[shared ? 0 : i], d = t[i] - m[i], iv = expf(-l);
        if (dm) dm[i] += g * -d * iv;
        if (dlv) {
            float dl = g * 0.5f * (1 - d * d * iv);
            if (shared) dshared += dl; else dlv[i] += dl;
        }
    }
    if (shared && dlv) dlv[0] += (float)dshared;
}
static void uvae__gnll_backward(uvae__node *nd) {
    uvae_tensor *m = nd->in[0], *lv = nd->in[1];
    UVAE__K(nd->ctx->device, gnll_bwd, m->data, lv->data, nd->in[2]->data, nd->out->grad, m->size, nd->i[0], m->shape[0], m->grad, lv->grad);
}
uvae_tensor *uvae_gaussian_nll(uvae_ctx *ctx, uvae_tensor *m, uvae_tensor *lv, uvae_tensor *t) {
    uvae_tensor *y;
    uvae__node *nd;
    int shared;
    if (!m || !lv || !t) return NULL;
    if (!uvae_same_shape(m, t) || !(uvae_same_shape(m, lv) || lv->size == 1) || t->device != ctx->device)
        return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_gaussian_nll: mean %s, logvar %s, target %s do not fit",
                                          uvae__shape_str(m), uvae__shape_str(lv), uvae__shape_str(t));
    shared = lv->size == 1 && m->size != 1;
    if (!(y = uvae__out(ctx, 1, (int[]){1}, m, lv, NULL))) return NULL;
    UVAE__K(ctx->device, gnll_fwd, m->data, lv->data, t->data, m->size, shared, m->shape[0], y->data);
    if ((nd = uvae__record(ctx, uvae__gnll_backward, y, m, lv, t))) nd->i[0] = shared;
    else if (y->grad) return NULL;
    return y;
}

/* [loss/discretized_logistic] P(k) = F((k + 1/2)/255) - F((k - 1/2)/255), F(x) = sigmoid((x - m) e^-ls),
   F(-inf) = 0 for k = 0 and F(+inf) = 1 for k = 255 (one component of PixelCNN++'s mixture).
   With a = e^-ls (t - m + 1/510), b = e^-ls (t - m - 1/510), d = a - b = e^-ls / 255, since
   sigmoid(a) - sigmoid(b) = sigmoid(-a) sigmoid(b) (e^d - 1):
     -log P = softplus(a) + softplus(-b) - log(expm1(d))      0 < k < 255 (stable for any a, b)
            = softplus(-a)  (k = 0),   softplus(b)  (k = 255)
   dm  = e^-ls (1 - sigmoid(a) - sigmoid(b)),  dls = -a sigmoid(a) + b sigmoid(-b) + d / (1 - e^-d)
   (k = 0: dm = e^-ls sigmoid(-a), dls = a sigmoid(-a);  k = 255: dm = -e^-ls sigmoid(b), dls = -b sigmoid(b)).
   Summed over elements in UVAE__CHUNKS fixed chunks, divided by N. uvae__dlogistic has the element. */
static void uvae__cpu_dlog_fwd(const float *m, const float *ls, const float *t, size_t n, int N, float *out) {
    double part[UVAE__CHUNKS], s = 0;
    int k;
    UVAE__OMP(omp parallel for schedule(static) if (n > UVAE__PAR_MIN / 16))
    for (k = 0; k < UVAE__CHUNKS; k++) {
        double acc = 0;
        for (size_t i = n * k / UVAE__CHUNKS; i < n * (k + 1) / UVAE__CHUNKS; i++) acc += uvae__dlogistic(t[i], m[i], ls[i], NULL, NULL);
        part[k] = acc;
    }
    for (k = 0; k < UVAE__CHUNKS; k++) s += part[k];
    out[0] = (float)(s / N);
}
static void uvae__cpu_dlog_bwd(const float *m, const float *ls, const float *t, const float *dy, size_t n, int N, float *dm, float *dls) {
    float g = dy[0] / (float)N;
    ptrdiff_t i;
    UVAE__OMP(omp parallel for schedule(static) if (n > UVAE__PAR_MIN / 16))
    for (i = 0; i < (ptrdiff_t)n; i++) {
        float a, b;
        uvae__dlogistic(t[i], m[i], ls[i], &a, &b);
        if (dm) dm[i] += g * a;
        if (dls) dls[i] += g * b;
    }
}
static void uvae__dlog_backward(uvae__node *nd) {
    uvae_tensor *m = nd->in[0], *ls = nd->in[1];
    UVAE__K(nd->ctx->device, dlog_bwd, m->data, ls->data, nd->in[2]->data, nd->out->grad, m->size, m->shape[0], m->grad, ls->grad);
}
uvae_tensor *uvae_discretized_logistic_nll(uvae_ctx *ctx, uvae_tensor *m, uvae_tensor *ls, uvae_tensor *t) {
    uvae_tensor *y;
    if (!m || !ls || !t) return NULL;
    if (!uvae_same_shape(m, t) || !uvae_same_shape(m, ls) || t->device != ctx->device)
        return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_discretized_logistic_nll: mean %s, log_scale %s, target %s do not fit",
                                          uvae__shape_str(m), uvae__shape_str(ls), uvae__shape_str(t));
    if (t->device == UVAE_CPU)
        for (size_t i = 0; i < t->size; i++) {
            float k = t->data[i] * 255.0f;
            if (!(k >= -1e-3f && k <= 255.001f && fabsf(k - floorf(k + 0.5f)) < 1e-3f))
                return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_discretized_logistic_nll: target %g at %zu is not k/255, k in 0..255",
                                                  (double)t->data[i], i);
        }
    if (!(y = uvae__out(ctx, 1, (int[]){1}, m, ls, NULL))) return NULL;
    UVAE__K(ctx->device, dlog_fwd, m->data, ls->data, t->data, m->size, m->shape[0], y->data);
    if (!uvae__record(ctx, uvae__dlog_backward, y, m, ls, t) && y->grad) return NULL;
    return y;
}

/* ---------------------------------------------------------------------------------------------
   [optim] one pass over the slabs' trainable part, [0, ntrain) (the buffers lie after it; the
   zeros between slices stay zero: their gradients and moments are zero).
   SGD:   b = mu b + g;  p -= lr b                                   == torch.optim.SGD(momentum)
   Adam:  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
          p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)       == torch.optim.Adam
   AdamW: p *= 1 - lr wd first (decoupled decay), then Adam            == torch.optim.AdamW
   Adam and SGD with weight_decay > 0 add wd p to the gradient (L2), as PyTorch does. */
#ifdef UVAE__X86
/* Adam (and AdamW's decay) on [0, n), four at a time; returns how many it did (n rounded down to
   4). GCC does not vectorise the loop below itself: sqrtf may set errno. SSE is in every x86-64
   CPU; the same operations in the same order as the scalar loop, so the same bits, 4.8x faster
   (31M parameters, one thread: 139 -> 29 ms). */
static size_t uvae__adam_sse(int kind, float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2,
                             float eps, float wd, float step_size, float bc2s) {
    __m128 B1 = _mm_set1_ps(b1), C1 = _mm_set1_ps(1 - b1), B2 = _mm_set1_ps(b2), C2 = _mm_set1_ps(1 - b2), E = _mm_set1_ps(eps);
    __m128 S = _mm_set1_ps(step_size), Q = _mm_set1_ps(bc2s), D = _mm_set1_ps(1 - lr * wd), WD = _mm_set1_ps(wd);
    size_t i;
    for (i = 0; i + 4 <= n; i += 4) {
        __m128 gi = _mm_loadu_ps(g + i), pi = _mm_loadu_ps(p + i), mi, vi;
        if (kind == UVAE_ADAMW) pi = _mm_mul_ps(pi, D);
        else if (wd > 0) gi = _mm_add_ps(gi, _mm_mul_ps(WD, pi));
        mi = _mm_add_ps(_mm_mul_ps(B1, _mm_loadu_ps(m + i)), _mm_mul_ps(C1, gi));
        vi = _mm_add_ps(_mm_mul_ps(B2, _mm_loadu_ps(v + i)), _mm_mul_ps(_mm_mul_ps(C2, gi), gi));
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vi);
        _mm_storeu_ps(p + i, _mm_sub_ps(pi, _mm_mul_ps(S, _mm_div_ps(mi, _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), Q), E)))));
    }
    return i;
}
#endif
static void uvae__cpu_optim(int kind, float *p, const float *g, float *m, float *v, size_t n, float lr, float b1, float b2,
                            float eps, float wd, float mu, float step_size, float bc2s, int first) {
    enum { BLOCK = 4096 };   /* elementwise: any split gives the same bits */
    ptrdiff_t blk, nblk = (ptrdiff_t)((n + BLOCK - 1) / BLOCK);
    UVAE__OMP(omp parallel for schedule(static) if (n > UVAE__PAR_MIN))
    for (blk = 0; blk < nblk; blk++) {
        size_t i = (size_t)blk * BLOCK, end = n - i < BLOCK ? n : i + BLOCK;
#ifdef UVAE__X86
        if (kind != UVAE_SGD) i += uvae__adam_sse(kind, p + i, g + i, m + i, v + i, end - i, lr, b1, b2, eps, wd, step_size, bc2s);
#endif
        for (; i < end; i++) {
            float gi = g[i];
            if (kind == UVAE_SGD) {
                if (wd > 0) gi += wd * p[i];
                m[i] = first ? gi : mu * m[i] + gi;
                p[i] -= lr * m[i];
            } else {
                if (kind == UVAE_ADAMW) p[i] *= 1 - lr * wd;
                else if (wd > 0) gi += wd * p[i];
                m[i] = b1 * m[i] + (1 - b1) * gi;
                v[i] = b2 * v[i] + (1 - b2) * gi * gi;
                p[i] -= step_size * (m[i] / (sqrtf(v[i]) / bc2s + eps));
            }
        }
    }
}
static void uvae__cpu_sumsq(const float *x, size_t n, double *out_host) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    *out_host = s;
}
static void uvae__cpu_randn(float *x, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) {
        float u1 = 1.0f - uvae_hash_uniform(seed, (uint32_t)(2 * i)), u2 = uvae_hash_uniform(seed, (uint32_t)(2 * i + 1));
        x[i] = sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
    }
}
static void uvae__cpu_scale(float *x, size_t n, float s) {
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

int uvae_optim_init(uvae_optim *o, const uvae_params *P, int kind, float lr) {
    memset(o, 0, sizeof *o);
    if (kind != UVAE_SGD && kind != UVAE_ADAM && kind != UVAE_ADAMW) return uvae__fail(UVAE_ERR_ARG, "uvae_optim_init: unknown optimizer %d", kind);
    if (!P->data) return uvae__fail(UVAE_ERR_ARG, "uvae_optim_init: parameters not allocated");
    o->kind = kind; o->lr = lr; o->beta1 = 0.9f; o->beta2 = 0.999f; o->eps = 1e-8f;
    o->weight_decay = kind == UVAE_ADAMW ? 0.01f : 0.0f;
    o->momentum = 0.9f;
    o->total = P->total;
    o->device = P->device;
    o->m = (float *)uvae__dmalloc(o->device, P->total * sizeof(float));
    o->v = kind != UVAE_SGD ? (float *)uvae__dmalloc(o->device, P->total * sizeof(float)) : NULL;
    if (!o->m || (kind != UVAE_SGD && !o->v)) {
        uvae_optim_free(o);
        return uvae__fail(UVAE_ERR_NOMEM, "uvae_optim_init: out of memory for %zu moments", P->total);
    }
    uvae__dzero(o->device, o->m, P->total * sizeof(float));
    if (o->v) uvae__dzero(o->device, o->v, P->total * sizeof(float));
    return UVAE_OK;
}
void uvae_optim_free(uvae_optim *o) {
    uvae__dfree(o->device, o->m);
    uvae__dfree(o->device, o->v);
    o->m = o->v = NULL;
}

float uvae_grad_norm(const uvae_params *P) {
    double s = 0;
    UVAE__K(P->device, sumsq, P->grad, P->ntrain, &s);   /* the trainable part: one pass, zeros between slices */
    return (float)sqrt(s);
}
float uvae_clip_grad_norm(uvae_params *P, float max_norm) {
    float norm = uvae_grad_norm(P), coef = max_norm / (norm + 1e-6f);
    if (coef < 1) UVAE__K(P->device, scale, P->grad, P->ntrain, coef);
    return norm;
}

int uvae_optim_step(uvae_optim *o, uvae_params *P, float lr) {
    double bc1, bc2s;
    if (P->device != o->device || P->total != o->total)
        return uvae__fail(UVAE_ERR_ARG, "uvae_optim_step: the optimizer was made for other parameters (or before uvae_params_to)");
    if (o->clip_norm > 0) uvae_clip_grad_norm(P, o->clip_norm);
    if (lr < 0) lr = o->lr;
    o->step++;
    bc1 = 1 - pow(o->beta1, (double)o->step);
    bc2s = sqrt(1 - pow(o->beta2, (double)o->step));
    UVAE__K(P->device, optim, o->kind, P->data, P->grad, o->m, o->v, P->ntrain, lr, o->beta1, o->beta2, o->eps,
            o->weight_decay, o->momentum, (float)(lr / bc1), (float)bc2s, o->step == 1);
    return uvae__gpu_status("uvae_optim_step");
}

/* [optim/schedules] */
static float uvae__cos_anneal(double start, double end, double pct) {
    return (float)(end + (start - end) / 2.0 * (cos(3.14159265358979323846 * pct) + 1));
}
/* == torch.optim.lr_scheduler.CosineAnnealingLR(T_max=total, eta_min=lr_min) */
float uvae_lr_cosine(int64_t step, int64_t total, float lr_max, float lr_min) {
    if (total <= 0 || step >= total) return lr_min;
    return uvae__cos_anneal(lr_max, lr_min, (double)step / (double)total);
}
/* == torch.optim.lr_scheduler.OneCycleLR(max_lr, total_steps=total, cycle_momentum=False), its
   other defaults: warm up from max/25 to max over the first 30 % (cosine), then anneal to
   max/25/1e4. (PyTorch's default also cycles Adam's beta1; the optimizer's beta1 stays fixed.) */
float uvae_lr_onecycle(int64_t step, int64_t total, float lr_max) {
    double lo = lr_max / 25.0, end = lo / 1e4, e1 = 0.3 * (double)total - 1, e2 = (double)total - 1;
    if (step < 0) step = 0;
    if (step >= total) return (float)end;
    if ((double)step <= e1) return uvae__cos_anneal(lo, lr_max, e1 > 0 ? (double)step / e1 : 1.0);
    return uvae__cos_anneal(lr_max, end, ((double)step - e1) / (e2 - e1));
}

/* ---------------------------------------------------------------------------------------------
   [layers] PyTorch's default initialisation: weights and biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
   (kaiming_uniform with a = sqrt(5)); batch norm gamma 1, beta 0, running mean 0, var 1. */
static void uvae__conv_params(uvae_params *P, uvae_conv *l, const char *name, int wshape[4], int fan_in, int bias) {
    float bound = 1.0f / sqrtf((float)fan_in);
    l->w = uvae_params_add(P, 1, UVAE_INIT_UNIFORM, bound, 4, wshape, "%s.weight", name);
    l->b = bias ? uvae_params_add(P, 1, UVAE_INIT_UNIFORM, bound, 1, (int[]){l->transposed ? wshape[1] : wshape[0]}, "%s.bias", name) : NULL;
}
void uvae_conv_init(uvae_params *P, uvae_conv *l, const char *name, int in, int out, int k, int stride, int pad, int bias) {
    l->stride = stride; l->pad = pad; l->transposed = 0;
    uvae__conv_params(P, l, name, (int[]){out, in, k, k}, in * k * k, bias);
}
void uvae_conv_transpose_init(uvae_params *P, uvae_conv *l, const char *name, int in, int out, int k, int stride, int pad, int bias) {
    l->stride = stride; l->pad = pad; l->transposed = 1;
    uvae__conv_params(P, l, name, (int[]){in, out, k, k}, out * k * k, bias);   /* torch's fan_in for [in,out,k,k] */
}
void uvae_bn_init(uvae_params *P, uvae_bn *l, const char *name, int ch) {
    l->gamma = uvae_params_add(P, 1, UVAE_INIT_ONE, 0, 1, &ch, "%s.weight", name);
    l->beta = uvae_params_add(P, 1, UVAE_INIT_ZERO, 0, 1, &ch, "%s.bias", name);
    l->mean = uvae_params_add(P, 0, UVAE_INIT_ZERO, 0, 1, &ch, "%s.running_mean", name);
    l->var = uvae_params_add(P, 0, UVAE_INIT_ONE, 0, 1, &ch, "%s.running_var", name);
    l->momentum = 0.1f;
    l->eps = 1e-5f;
}
void uvae_dense_init(uvae_params *P, uvae_dense *l, const char *name, int in, int out) {
    float bound = 1.0f / sqrtf((float)in);
    l->w = uvae_params_add(P, 1, UVAE_INIT_UNIFORM, bound, 2, (int[]){out, in}, "%s.weight", name);
    l->b = uvae_params_add(P, 1, UVAE_INIT_UNIFORM, bound, 1, &out, "%s.bias", name);
}
uvae_tensor *uvae_conv_forward(uvae_ctx *ctx, const uvae_conv *l, uvae_tensor *x) {
    return l->transposed ? uvae_conv_transpose2d(ctx, x, l->w, l->b, l->stride, l->pad)
                         : uvae_conv2d(ctx, x, l->w, l->b, l->stride, l->pad);
}
uvae_tensor *uvae_bn_forward(uvae_ctx *ctx, const uvae_bn *l, uvae_tensor *x) {
    return uvae_batch_norm2d(ctx, x, l->gamma, l->beta, l->mean, l->var, l->momentum, l->eps);
}
uvae_tensor *uvae_bn_relu_forward(uvae_ctx *ctx, const uvae_bn *l, uvae_tensor *x) {
    return uvae_batch_norm2d_relu(ctx, x, l->gamma, l->beta, l->mean, l->var, l->momentum, l->eps);
}
uvae_tensor *uvae_dense_forward(uvae_ctx *ctx, const uvae_dense *l, uvae_tensor *x) { return uvae_linear(ctx, x, l->w, l->b); }

/* ---------------------------------------------------------------------------------------------
   [models/unet] The common UNet (as in milesial/Pytorch-UNet), widths c_i = base * 2^i:
     s0 = inc(x);  s_i = down_i(s_{i-1}), i = 1..depth        (encoder, level i at 1/2^i size)
       down_i = [maxpool 2 | conv3x3 stride 2 (c_{i-1} -> c_{i-1})] -> DoubleConv(c_{i-1}, c_i)
     h = s_depth;  h = up_i(h, s_{depth-i}), i = 1..depth     (decoder)
       up_i = [convT 2x2 stride 2 | bilinear x2 -> conv3x3] (c -> c/2), concat [skip, up], DoubleConv
     logits = conv1x1(h) -> [N, n_classes, H, W]
   DoubleConv = (conv3x3 no bias -> BN -> ReLU) x 2. */
static void uvae__double_conv_init(uvae_params *P, uvae_double_conv *d, const char *name, int in, int out) {
    char s[UVAE_NAME_MAX];
    snprintf(s, sizeof s, "%s.conv1", name); uvae_conv_init(P, &d->c1, s, in, out, 3, 1, 1, 0);
    snprintf(s, sizeof s, "%s.bn1", name);   uvae_bn_init(P, &d->b1, s, out);
    snprintf(s, sizeof s, "%s.conv2", name); uvae_conv_init(P, &d->c2, s, out, out, 3, 1, 1, 0);
    snprintf(s, sizeof s, "%s.bn2", name);   uvae_bn_init(P, &d->b2, s, out);
}
static uvae_tensor *uvae__double_conv(uvae_ctx *ctx, const uvae_double_conv *d, uvae_tensor *x) {
    x = uvae_bn_relu_forward(ctx, &d->b1, uvae_conv_forward(ctx, &d->c1, x));
    return uvae_bn_relu_forward(ctx, &d->b2, uvae_conv_forward(ctx, &d->c2, x));
}

int uvae_unet_init(uvae_unet *m, const uvae_unet_config *cfg, uint64_t seed) {
    char s[UVAE_NAME_MAX];
    int D = cfg->depth, b = cfg->base_width;
    memset(m, 0, sizeof *m);
    if (cfg->in_ch < 1 || cfg->n_classes < 1 || b < 1 || D < 1 || D > UVAE_UNET_MAX_DEPTH ||
        (cfg->down != UVAE_DOWN_MAXPOOL && cfg->down != UVAE_DOWN_STRIDED) || (cfg->up != UVAE_UP_TRANSPOSE && cfg->up != UVAE_UP_UPSAMPLE))
        return uvae__fail(UVAE_ERR_ARG, "uvae_unet_init: bad config (in_ch %d, classes %d, width %d, depth %d in 1..%d, down %d, up %d)",
                          cfg->in_ch, cfg->n_classes, b, D, UVAE_UNET_MAX_DEPTH, cfg->down, cfg->up);
    m->cfg = *cfg;
    uvae_params_init(&m->params);
    uvae__double_conv_init(&m->params, &m->inc, "inc", cfg->in_ch, b);
    for (int i = 1; i <= D; i++) {
        int cin = b << (i - 1);
        if (cfg->down == UVAE_DOWN_STRIDED) { snprintf(s, sizeof s, "down%d.pool", i); uvae_conv_init(&m->params, &m->down_conv[i - 1], s, cin, cin, 3, 2, 1, 1); }
        snprintf(s, sizeof s, "down%d.conv", i);
        uvae__double_conv_init(&m->params, &m->down[i - 1], s, cin, 2 * cin);
    }
    for (int i = 1; i <= D; i++) {
        int cin = b << (D - i + 1);
        snprintf(s, sizeof s, "up%d.up", i);
        if (cfg->up == UVAE_UP_TRANSPOSE) uvae_conv_transpose_init(&m->params, &m->up_conv[i - 1], s, cin, cin / 2, 2, 2, 0, 1);
        else uvae_conv_init(&m->params, &m->up_conv[i - 1], s, cin, cin / 2, 3, 1, 1, 1);
        snprintf(s, sizeof s, "up%d.conv", i);
        uvae__double_conv_init(&m->params, &m->up[i - 1], s, cin, cin / 2);
    }
    uvae_conv_init(&m->params, &m->outc, "outc", b, cfg->n_classes, 1, 1, 0, 1);
    return uvae__params_finish(&m->params, seed);
}
void uvae_unet_free(uvae_unet *m) { uvae_params_free(&m->params); }

uvae_tensor *uvae_unet_forward(uvae_ctx *ctx, uvae_unet *m, uvae_tensor *x) {
    uvae_tensor *skip[UVAE_UNET_MAX_DEPTH + 1], *h;
    int D = m->cfg.depth;
    if (!x) return NULL;
    if (x->ndim != 4 || x->shape[1] != m->cfg.in_ch || x->shape[2] % (1 << D) || x->shape[3] % (1 << D))
        return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_unet_forward: input %s, want [N,%d,H,W] with H and W divisible by %d",
                                          uvae__shape_str(x), m->cfg.in_ch, 1 << D);
    skip[0] = uvae__double_conv(ctx, &m->inc, x);
    for (int i = 1; i <= D; i++) {
        h = m->cfg.down == UVAE_DOWN_MAXPOOL ? uvae_max_pool2d(ctx, skip[i - 1], 2, 2) : uvae_conv_forward(ctx, &m->down_conv[i - 1], skip[i - 1]);
        skip[i] = uvae__double_conv(ctx, &m->down[i - 1], h);
    }
    h = skip[D];
    for (int i = 1; i <= D; i++) {
        if (m->cfg.up == UVAE_UP_UPSAMPLE) h = uvae_upsample(ctx, h, 2, UVAE_BILINEAR);
        h = uvae_conv_forward(ctx, &m->up_conv[i - 1], h);
        h = uvae__double_conv(ctx, &m->up[i - 1], uvae_concat(ctx, skip[D - i], h));
    }
    return uvae_conv_forward(ctx, &m->outc, h);
}

/* ---------------------------------------------------------------------------------------------
   [models/cvae] A conditional VAE. The label y enters as an extra input channel (a learned S x S
   plane per class), as an embedding e concatenated to the encoder's features and to z, and, with
   cond_planes P > 0, as P learned per-class feature maps c1(y), c2(y) at each decoder stage:
     h = [x, plane(y)] -> conv4x4/2 -> lrelu -> conv4x4/2 -> lrelu -> flatten -> [., e]
     mu = fc_mu(h), logvar = fc_logvar(h), z = mu + exp(logvar / 2) * eps
     d = relu(fc_dec([z, e])) -> [2w, S/4, S/4] (-> [d, c1(y)]) -> convT4x4/2 -> relu
                                 [w, S/2, S/2]   (-> [d, c2(y)]) -> convT4x4/2 -> logits */
int uvae_cvae_init(uvae_cvae *m, const uvae_cvae_config *c, uint64_t seed) {
    int S = c->size, w = c->width, P = c->cond_planes, F, st;
    memset(m, 0, sizeof *m);
    if (c->in_ch < 1 || S < 4 || S % 4 || c->n_classes < 1 || c->latent < 1 || w < 1 || c->embed < 1 || P < 0 ||
        (double)S * S * (c->n_classes + P) > 1e9)
        return uvae__fail(UVAE_ERR_ARG, "uvae_cvae_init: bad config (in_ch %d, size %d divisible by 4, classes %d, latent %d, width %d, embed %d, cond_planes %d)",
                          c->in_ch, S, c->n_classes, c->latent, w, c->embed, P);
    if (c->likelihood != UVAE_BERNOULLI && c->likelihood != UVAE_DLOGISTIC)
        return uvae__fail(UVAE_ERR_ARG, "uvae_cvae_init: likelihood %d is not UVAE_BERNOULLI or UVAE_DLOGISTIC", c->likelihood);
    m->cfg = *c;
    F = 2 * w * (S / 4) * (S / 4);
    uvae_params_init(&m->params);
    m->label_plane = uvae_params_add(&m->params, 1, UVAE_INIT_NORMAL, 1.0f, 2, (int[]){c->n_classes, S * S}, "label_plane.weight");
    m->label_embed = uvae_params_add(&m->params, 1, UVAE_INIT_NORMAL, 1.0f, 2, (int[]){c->n_classes, c->embed}, "label_embed.weight");
    uvae_conv_init(&m->params, &m->e1, "enc1", c->in_ch + 1, w, 4, 2, 1, 1);
    uvae_conv_init(&m->params, &m->e2, "enc2", w, 2 * w, 4, 2, 1, 1);
    uvae_dense_init(&m->params, &m->fc_mu, "fc_mu", F + c->embed, c->latent);
    uvae_dense_init(&m->params, &m->fc_logvar, "fc_logvar", F + c->embed, c->latent);
    uvae_dense_init(&m->params, &m->fc_dec, "fc_dec", c->latent + c->embed, F);
    uvae_conv_transpose_init(&m->params, &m->d1, "dec1", 2 * w + P, w, 4, 2, 1, 1);
    uvae_conv_transpose_init(&m->params, &m->d2, "dec2", w + P, c->in_ch, 4, 2, 1, 1);
    if (P > 0) {
        m->cond1 = uvae_params_add(&m->params, 1, UVAE_INIT_NORMAL, 1.0f, 2, (int[]){c->n_classes, P * (S / 4) * (S / 4)}, "cond1.weight");
        m->cond2 = uvae_params_add(&m->params, 1, UVAE_INIT_NORMAL, 1.0f, 2, (int[]){c->n_classes, P * (S / 2) * (S / 2)}, "cond2.weight");
    }
    if (c->likelihood == UVAE_DLOGISTIC) uvae_conv_transpose_init(&m->params, &m->d2s, "dec2_scale", w + P, c->in_ch, 4, 2, 1, 1);
    if ((st = uvae__params_finish(&m->params, seed)) != UVAE_OK) return st;
    if (m->d2s.b)   /* log-scales start near -3 (e^-3 = 0.05 of the pixel range), not 0: Adam moves a
                       bias by about lr per step, and a scale of 1 would leave the likelihood flat */
        for (size_t i = 0; i < m->d2s.b->size; i++) m->d2s.b->data[i] -= 3.0f;
    return UVAE_OK;
}
void uvae_cvae_free(uvae_cvae *m) { uvae_params_free(&m->params); }

uvae_cvae_out uvae_cvae_forward(uvae_ctx *ctx, uvae_cvae *m, uvae_tensor *x, uvae_tensor *y, uvae_tensor *eps) {
    uvae_cvae_out o;
    uvae_tensor *h, *e;
    int N, S = m->cfg.size;
    memset(&o, 0, sizeof o);
    if (!x || !y) return o;
    N = x->shape[0];
    if (x->ndim != 4 || x->shape[1] != m->cfg.in_ch || x->shape[2] != S || x->shape[3] != S || y->ndim != 1 || y->shape[0] != N ||
        (eps && (eps->ndim != 2 || eps->shape[0] != N || eps->shape[1] != m->cfg.latent))) {
        uvae__fail(UVAE_ERR_ARG, "uvae_cvae_forward: x %s (want [N,%d,%d,%d]), labels %s (want [N]), eps %s (want [N,%d])",
                   uvae__shape_str(x), m->cfg.in_ch, S, S, uvae__shape_str(y), eps ? uvae__shape_str(eps) : "none", m->cfg.latent);
        return o;
    }
    h = uvae_concat(ctx, x, uvae_reshape(ctx, uvae_embedding(ctx, y, m->label_plane), 4, (int[]){N, 1, S, S}));
    h = uvae_leaky_relu(ctx, uvae_conv_forward(ctx, &m->e1, h), 0.2f);
    h = uvae_leaky_relu(ctx, uvae_conv_forward(ctx, &m->e2, h), 0.2f);
    e = uvae_embedding(ctx, y, m->label_embed);
    h = uvae_concat(ctx, uvae_flatten(ctx, h), e);
    o.mu = uvae_dense_forward(ctx, &m->fc_mu, h);
    o.logvar = uvae_dense_forward(ctx, &m->fc_logvar, h);
    if (!eps && (eps = uvae_ctx_tensor(ctx, 2, (int[]){N, m->cfg.latent})))   /* eps ~ N(0, I), on the device */
        UVAE__K(ctx->device, randn, eps->data, eps->size, uvae_rng_u32(&ctx->rng));
    o.z = uvae_add(ctx, o.mu, uvae_mul(ctx, uvae_exp(ctx, uvae_scale(ctx, o.logvar, 0.5f)), eps));
    o.logits = uvae_cvae_decode(ctx, m, o.z, y, &o.log_scale);
    o.likelihood = m->cfg.likelihood;
    return o;
}
/* [d, maps(y)]: the label's learned feature maps [N,P,s,s] concatenated to d [N,C,s,s] */
static uvae_tensor *uvae__cvae_cond(uvae_ctx *ctx, uvae_cvae *m, uvae_tensor *d, uvae_tensor *y, uvae_tensor *maps, int s) {
    if (!maps || !d) return d;
    return uvae_concat(ctx, d, uvae_reshape(ctx, uvae_embedding(ctx, y, maps), 4, (int[]){d->shape[0], m->cfg.cond_planes, s, s}));
}
uvae_tensor *uvae_cvae_decode(uvae_ctx *ctx, uvae_cvae *m, uvae_tensor *z, uvae_tensor *y, uvae_tensor **log_scale) {
    uvae_tensor *d;
    int S = m->cfg.size, w = m->cfg.width;
    if (!z || !y) return NULL;
    if (z->ndim != 2 || z->shape[1] != m->cfg.latent || y->ndim != 1 || y->shape[0] != z->shape[0])
        return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_cvae_decode: z %s (want [N,%d]), labels %s (want [N])",
                                          uvae__shape_str(z), m->cfg.latent, uvae__shape_str(y));
    d = uvae_relu(ctx, uvae_dense_forward(ctx, &m->fc_dec, uvae_concat(ctx, z, uvae_embedding(ctx, y, m->label_embed))));
    d = uvae_reshape(ctx, d, 4, (int[]){z->shape[0], 2 * w, S / 4, S / 4});
    d = uvae_relu(ctx, uvae_conv_forward(ctx, &m->d1, uvae__cvae_cond(ctx, m, d, y, m->cond1, S / 4)));
    d = uvae__cvae_cond(ctx, m, d, y, m->cond2, S / 2);
    if (log_scale) *log_scale = m->cfg.likelihood == UVAE_DLOGISTIC ? uvae_conv_forward(ctx, &m->d2s, d) : NULL;
    return uvae_conv_forward(ctx, &m->d2, d);
}
uvae_tensor *uvae_cvae_nll(uvae_ctx *ctx, uvae_cvae_out o, uvae_tensor *x) {
    if (o.likelihood == UVAE_DLOGISTIC) return uvae_discretized_logistic_nll(ctx, uvae_sigmoid(ctx, o.logits), o.log_scale, x);
    return uvae_bernoulli_nll(ctx, o.logits, x);
}
uvae_tensor *uvae_cvae_loss(uvae_ctx *ctx, uvae_cvae_out o, uvae_tensor *x) {
    return uvae_add(ctx, uvae_cvae_nll(ctx, o, x), uvae_kl_normal(ctx, o.mu, o.logvar));
}

/* ---------------------------------------------------------------------------------------------
   [models/classifier] conv-BN-ReLU blocks, max pooling, a dropout and a linear head. */
int uvae_classifier_init(uvae_classifier *m, const uvae_classifier_config *c, uint64_t seed) {
    int S = c->size, w = c->width, B = c->blocks ? c->blocks : 2, side;
    char name[UVAE_NAME_MAX];
    memset(m, 0, sizeof *m);
    side = B >= 1 && B <= UVAE_CLASSIFIER_MAX_BLOCKS ? S >> B : 0;
    if (c->in_ch < 1 || B < 1 || B > UVAE_CLASSIFIER_MAX_BLOCKS || side < 1 || S % (1 << B) || c->n_classes < 1 || w < 1 ||
        (double)w * (1 << (B - 1)) * side * side > 1e9)
        return uvae__fail(UVAE_ERR_ARG, "uvae_classifier_init: bad config (in_ch %d, size %d divisible by 2^blocks, classes %d, width %d, blocks %d in 1..%d)",
                          c->in_ch, S, c->n_classes, w, B, UVAE_CLASSIFIER_MAX_BLOCKS);
    m->cfg = *c;
    m->cfg.blocks = B;
    m->dropout = 0.25f;
    uvae_params_init(&m->params);
    for (int b = 0; b < B; b++) {
        snprintf(name, sizeof name, "block%d", b + 1);
        uvae__double_conv_init(&m->params, &m->block[b], name, b ? w << (b - 1) : c->in_ch, w << b);
    }
    uvae_dense_init(&m->params, &m->fc, "fc", (w << (B - 1)) * side * side, c->n_classes);
    return uvae__params_finish(&m->params, seed);
}
void uvae_classifier_free(uvae_classifier *m) { uvae_params_free(&m->params); }

uvae_tensor *uvae_classifier_forward(uvae_ctx *ctx, uvae_classifier *m, uvae_tensor *x) {
    uvae_tensor *h;
    int S = m->cfg.size, train = ctx->train;
    if (!x) return NULL;
    if (x->ndim != 4 || x->shape[1] != m->cfg.in_ch || x->shape[2] != S || x->shape[3] != S)
        return (uvae_tensor *)uvae__failp(UVAE_ERR_ARG, "uvae_classifier_forward: input %s, want [N,%d,%d,%d]",
                                          uvae__shape_str(x), m->cfg.in_ch, S, S);
    if (m->frozen) ctx->train = 0;   /* evaluation behaviour; the tape (ctx->record) is untouched */
    h = x;
    for (int b = 0; b < m->cfg.blocks; b++) h = uvae_max_pool2d(ctx, uvae__double_conv(ctx, &m->block[b], h), 2, 2);
    h = uvae_dropout(ctx, uvae_flatten(ctx, h), m->dropout);
    h = uvae_dense_forward(ctx, &m->fc, h);
    ctx->train = train;
    return h;
}

/* ---------------------------------------------------------------------------------------------
   [ckpt] safetensors checkpoints: a reader, an atomic writer, uvae_save / uvae_load.

   The format (huggingface/safetensors):
       u64 N, little-endian | N bytes of UTF-8 JSON (the header) | the data section
   The header is one object mapping each tensor name to
       {"dtype": "F32", "shape": [d0, d1, ..], "data_offsets": [begin, end]}
   where the offsets are in bytes from the start of the data section, plus an optional
   "__metadata__": {"key": "value", ..} of strings. The tensors must tile the data section
   exactly: sorted by offset, each begins where the previous one ends, the last ends at the end of
   the file. No overlap, no hole.

   Reader (uvae_st_read): trusts nothing in the file. The size comes from the file itself; the
   length word is checked against it before anything is allocated; the header is checked to be
   UTF-8 and parsed by a small strict recursive-descent JSON parser that fills the tensor table
   directly (no DOM: only objects, arrays, strings and integers exist in the format, anything else
   is an error, unknown keys too). Then every tensor is checked against its shape and the data
   section's size, and the data section is read into its own malloc'd buffer so the floats are
   aligned whatever N is. Every error says which file and what exactly is wrong.

   Writer (uvae_st_write): the header is built in memory with "__metadata__" first, tensors in the
   caller's order with contiguous offsets, and padded with spaces so the data starts at a multiple
   of 8 bytes. It is written to "<path>.tmp", flushed to the disk (fsync on POSIX), then renamed
   over path, which replaces the old file in one step: a failed, interrupted or killed write never
   leaves a half-written checkpoint behind, and the previous one stays whole until the new one is.

   Both assume a little-endian host (as every safetensors file is little-endian) and refuse to
   run on a big-endian one.

   uvae_save / uvae_load store every registered tensor under its registry name, the optimizer's
   moments as "optim.m.<name>" / "optim.v.<name>" (trainable parameters only), and metadata
   "format": "unetvae-1", "optim.kind": "sgd"|"adam"|"adamw", "optim.step": "<decimal>". */
#include <limits.h>

#define UVAE__ST_HEADER_MAX ((unsigned)UVAE_MAX_ST_HEADER)   /* see [ckpt] in the declarations */
#define UVAE__ST_KEY_MAX 64               /* == sizeof uvae_st_file.meta_key[0] */
#define UVAE__ST_VAL_MAX 256              /* == sizeof uvae_st_file.meta_val[0] */

static int uvae__st_little_endian(void) {
    uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* "path: message" with status; message printf-formatted. */
static int uvae__st_fail(int status, const char *path, const char *fmt, ...) {
    char msg[448];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return uvae__fail(status, "%s: %s", path, msg);
}

/* "[2,3,4]" (or "[]" for a scalar) into buf. */
static const char *uvae__st_shape_str(char *buf, size_t cap, int ndim, const int *shape) {
    size_t k = 0;
    buf[0] = 0;
    k += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, i ? ",%d" : "%d", shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

/* Elements of a shape, or (size_t)-1 when a dimension is negative or the byte count (4 per
   element) would not fit in a size_t. */
static size_t uvae__st_numel(int ndim, const int *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return (size_t)-1;
        if (shape[i] > 0 && n > ((size_t)-1 / 4 - 1) / (size_t)shape[i]) return (size_t)-1;
        n *= (size_t)shape[i];
    }
    return n;
}

/* Offset of the first byte that is not part of valid UTF-8 (no overlong forms, no surrogates,
   nothing past U+10FFFF), or (size_t)-1 when all of s[0..n) is valid. */
static size_t uvae__st_utf8_bad(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned long cp, min;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (n - i < len) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += len;
    }
    return (size_t)-1;
}

/* ---- a strict JSON parser over the header --------------------------------------------------- */
typedef struct uvae__json {
    const char *s; size_t n, i;   /* the header text, its length, the cursor */
    const char *path;             /* for error messages */
    const char *in;               /* the tensor being parsed, for error messages (or NULL) */
} uvae__json;

/* A FORMAT error "path: message", plus "(in tensor 'x')" when the message does not say where. */
static int uvae__json_err(const uvae__json *J, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (J->in && !strstr(msg, "tensor '"))
        return uvae__fail(UVAE_ERR_FORMAT, "%s: %s (in tensor '%s')", J->path, msg, J->in);
    return uvae__fail(UVAE_ERR_FORMAT, "%s: %s", J->path, msg);
}

static void uvae__json_ws(uvae__json *J) {
    while (J->i < J->n && (J->s[J->i] == ' ' || J->s[J->i] == '\t' || J->s[J->i] == '\n' || J->s[J->i] == '\r'))
        J->i++;
}

/* What is at the cursor, in words, for "expected X, found Y". */
static const char *uvae__json_found(const uvae__json *J, char *buf, size_t cap) {
    unsigned char c;
    if (J->i >= J->n) return "the end of the header";
    c = (unsigned char)J->s[J->i];
    switch (c) {
    case '{': return "an object";
    case '[': return "an array";
    case '"': return "a string";
    case 't': case 'f': return "a boolean or bare word";
    case 'n': return "null or a bare word";
    default: break;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return "a number";
    if (c > 0x20 && c < 0x7F) snprintf(buf, cap, "'%c'", c);
    else snprintf(buf, cap, "byte 0x%02x", c);
    return buf;
}

/* "expected <what> at header byte i, found <...>" */
static int uvae__json_expected(const uvae__json *J, const char *what) {
    char b[16];
    return uvae__json_err(J, "malformed header: expected %s at header byte %zu, found %s",
                          what, J->i, uvae__json_found(J, b, sizeof b));
}

/* Skip whitespace and consume the character c, or fail saying what was expected. */
static int uvae__json_char(uvae__json *J, char c, const char *what) {
    uvae__json_ws(J);
    if (J->i < J->n && J->s[J->i] == c) { J->i++; return UVAE_OK; }
    return uvae__json_expected(J, what);
}

static int uvae__json_hex4(uvae__json *J, unsigned long *cp) {
    *cp = 0;
    if (J->n - J->i < 4) return uvae__json_err(J, "malformed header: truncated \\u escape at header byte %zu", J->i);
    for (int k = 0; k < 4; k++) {
        char c = J->s[J->i + (size_t)k];
        unsigned d;
        if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
        else return uvae__json_err(J, "malformed header: bad \\u escape at header byte %zu", J->i);
        *cp = *cp * 16 + d;
    }
    J->i += 4;
    return UVAE_OK;
}

/* A string at the cursor, decoded (escapes resolved, \uXXXX to UTF-8) into out[cap]: at most
   cap-1 bytes are stored and out is always NUL-terminated; *len gets the full decoded length so
   the caller can report "too long". \u0000 is refused (it cannot live in a C string). */
static int uvae__json_string(uvae__json *J, char *out, size_t cap, size_t *len, const char *what) {
    size_t n = 0;
    uvae__json_ws(J);
    if (J->i >= J->n || J->s[J->i] != '"') return uvae__json_expected(J, what);
    J->i++;
    for (;;) {
        unsigned char c, enc[4];
        int ne = 1;
        if (J->i >= J->n) return uvae__json_err(J, "malformed header: unterminated string");
        c = (unsigned char)J->s[J->i++];
        if (c == '"') break;
        if (c < 0x20)
            return uvae__json_err(J, "malformed header: raw control character 0x%02x in a string at header byte %zu", c, J->i - 1);
        enc[0] = c;
        if (c == '\\') {
            if (J->i >= J->n) return uvae__json_err(J, "malformed header: unterminated string");
            c = (unsigned char)J->s[J->i++];
            switch (c) {
            case '"': case '\\': case '/': enc[0] = c; break;
            case 'b': enc[0] = '\b'; break;
            case 'f': enc[0] = '\f'; break;
            case 'n': enc[0] = '\n'; break;
            case 'r': enc[0] = '\r'; break;
            case 't': enc[0] = '\t'; break;
            case 'u': {
                unsigned long cp, lo;
                if (uvae__json_hex4(J, &cp) != UVAE_OK) return UVAE_ERR_FORMAT;
                if (cp >= 0xD800 && cp <= 0xDBFF) {           /* a surrogate pair: \uD83D\uDE00 */
                    if (J->n - J->i < 2 || J->s[J->i] != '\\' || J->s[J->i + 1] != 'u')
                        return uvae__json_err(J, "malformed header: unpaired surrogate \\u%04lX at header byte %zu", cp, J->i);
                    J->i += 2;
                    if (uvae__json_hex4(J, &lo) != UVAE_OK) return UVAE_ERR_FORMAT;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return uvae__json_err(J, "malformed header: unpaired surrogate \\u%04lX at header byte %zu", cp, J->i);
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return uvae__json_err(J, "malformed header: unpaired surrogate \\u%04lX at header byte %zu", cp, J->i);
                }
                if (cp == 0) return uvae__json_err(J, "unsupported \\u0000 in a string at header byte %zu", J->i);
                if (cp < 0x80) { enc[0] = (unsigned char)cp; }
                else if (cp < 0x800) { enc[0] = (unsigned char)(0xC0 | (cp >> 6)); enc[1] = (unsigned char)(0x80 | (cp & 0x3F)); ne = 2; }
                else if (cp < 0x10000) {
                    enc[0] = (unsigned char)(0xE0 | (cp >> 12)); enc[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                    enc[2] = (unsigned char)(0x80 | (cp & 0x3F)); ne = 3;
                } else {
                    enc[0] = (unsigned char)(0xF0 | (cp >> 18)); enc[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
                    enc[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); enc[3] = (unsigned char)(0x80 | (cp & 0x3F)); ne = 4;
                }
                break;
            }
            default:
                return uvae__json_err(J, "malformed header: invalid escape \\%c at header byte %zu",
                                      c >= 0x20 && c < 0x7F ? (char)c : '?', J->i - 1);
            }
        }
        for (int k = 0; k < ne; k++, n++)
            if (n + 1 < cap) out[n] = (char)enc[k];
    }
    out[n + 1 < cap ? n : cap - 1] = 0;
    *len = n;
    return UVAE_OK;
}

/* An integer at the cursor (JSON syntax: optional '-', no leading zeros). Fractions, exponents
   and anything else are errors. */
static int uvae__json_int(uvae__json *J, int64_t *v, const char *what) {
    int neg = 0;
    uint64_t x = 0;
    uvae__json_ws(J);
    if (J->i < J->n && J->s[J->i] == '-') neg = 1;
    if (J->i + (size_t)neg >= J->n || J->s[J->i + (size_t)neg] < '0' || J->s[J->i + (size_t)neg] > '9')
        return uvae__json_expected(J, what);
    J->i += (size_t)neg;
    if (J->s[J->i] == '0' && J->i + 1 < J->n && J->s[J->i + 1] >= '0' && J->s[J->i + 1] <= '9')
        return uvae__json_err(J, "malformed header: number with a leading zero at header byte %zu", J->i);
    while (J->i < J->n && J->s[J->i] >= '0' && J->s[J->i] <= '9') {
        unsigned d = (unsigned)(J->s[J->i] - '0');
        if (x > ((uint64_t)INT64_MAX - d) / 10)
            return uvae__json_err(J, "number too large at header byte %zu", J->i);
        x = x * 10 + d;
        J->i++;
    }
    if (J->i < J->n && (J->s[J->i] == '.' || J->s[J->i] == 'e' || J->s[J->i] == 'E'))
        return uvae__json_err(J, "malformed header: expected %s at header byte %zu, found a fraction or exponent", what, J->i);
    *v = neg ? -(int64_t)x : (int64_t)x;
    return UVAE_OK;
}

/* After an element of an array or object: ',' (returns 1: another follows) or the closer
   (returns 0); anything else is an error (returns < 0). */
static int uvae__json_next(uvae__json *J, char closer, const char *where) {
    char what[64];
    uvae__json_ws(J);
    if (J->i < J->n && J->s[J->i] == ',') { J->i++; return 1; }
    if (J->i < J->n && J->s[J->i] == closer) { J->i++; return 0; }
    snprintf(what, sizeof what, "',' or '%c' %s", closer, where);
    return uvae__json_expected(J, what);
}

/* ---- the header's structure ----------------------------------------------------------------- */
typedef struct uvae__st_ent {
    uvae_st_tensor t;
    uint64_t begin, end;          /* data_offsets */
} uvae__st_ent;

/* One tensor entry {"dtype":..,"shape":..,"data_offsets":..}, keys in any order. data_size is
   the size of the data section, to check the offsets against. */
static int uvae__st_parse_entry(uvae__json *J, uvae__st_ent *e, uint64_t data_size) {
    char dtype[24] = "", key[40], shp[64];
    int have_dtype = 0, have_shape = 0, have_off = 0, more, st;
    size_t len, numel;
    const char *name = e->t.name;
    if (uvae__json_char(J, '{', "an object for the tensor") != UVAE_OK) return UVAE_ERR_FORMAT;
    uvae__json_ws(J);
    if (J->i < J->n && J->s[J->i] == '}') { J->i++; more = 0; } else more = 1;
    while (more) {
        if (uvae__json_string(J, key, sizeof key, &len, "a key (\"dtype\", \"shape\" or \"data_offsets\")") != UVAE_OK) return UVAE_ERR_FORMAT;
        if (uvae__json_char(J, ':', "':' after a key") != UVAE_OK) return UVAE_ERR_FORMAT;
        if (strcmp(key, "dtype") == 0 && len == 5) {
            if (have_dtype) return uvae__json_err(J, "tensor '%s': duplicate key \"dtype\"", name);
            if (uvae__json_string(J, dtype, sizeof dtype, &len, "a string for \"dtype\"") != UVAE_OK) return UVAE_ERR_FORMAT;
            have_dtype = 1;
        } else if (strcmp(key, "shape") == 0 && len == 5) {
            int nd = 0;
            if (have_shape) return uvae__json_err(J, "tensor '%s': duplicate key \"shape\"", name);
            if (uvae__json_char(J, '[', "an array for \"shape\"") != UVAE_OK) return UVAE_ERR_FORMAT;
            uvae__json_ws(J);
            if (J->i < J->n && J->s[J->i] == ']') J->i++;
            else for (;;) {
                int64_t d;
                if (uvae__json_int(J, &d, "a dimension (integer)") != UVAE_OK) return UVAE_ERR_FORMAT;
                if (d < 0) return uvae__json_err(J, "tensor '%s': negative dimension %lld in shape", name, (long long)d);
                if (d > INT_MAX) return uvae__json_err(J, "tensor '%s': dimension %lld is too large", name, (long long)d);
                if (nd < UVAE_MAX_DIMS) e->t.shape[nd] = (int)d;
                nd++;
                if ((st = uvae__json_next(J, ']', "in \"shape\"")) < 0) return st;
                if (st == 0) break;
            }
            if (nd > UVAE_MAX_DIMS)
                return uvae__json_err(J, "tensor '%s': shape has %d dimensions, at most %d are supported", name, nd, UVAE_MAX_DIMS);
            e->t.ndim = nd;
            have_shape = 1;
        } else if (strcmp(key, "data_offsets") == 0 && len == 12) {
            int64_t a, b;
            if (have_off) return uvae__json_err(J, "tensor '%s': duplicate key \"data_offsets\"", name);
            if (uvae__json_char(J, '[', "an array for \"data_offsets\"") != UVAE_OK ||
                uvae__json_int(J, &a, "an offset (integer)") != UVAE_OK ||
                uvae__json_char(J, ',', "',' between the two data_offsets") != UVAE_OK ||
                uvae__json_int(J, &b, "an offset (integer)") != UVAE_OK ||
                uvae__json_char(J, ']', "']' after the two data_offsets") != UVAE_OK)
                return UVAE_ERR_FORMAT;
            if (a < 0 || b < 0)
                return uvae__json_err(J, "tensor '%s': negative data_offsets [%lld,%lld]", name, (long long)a, (long long)b);
            e->begin = (uint64_t)a;
            e->end = (uint64_t)b;
            have_off = 1;
        } else {
            return uvae__json_err(J, "tensor '%s': unknown key \"%s%s\" (expected dtype, shape, data_offsets)",
                                  name, key, len >= sizeof key ? "..." : "");
        }
        if ((more = uvae__json_next(J, '}', "in the tensor's object")) < 0) return UVAE_ERR_FORMAT;
    }
    if (!have_dtype || !have_shape || !have_off)
        return uvae__json_err(J, "tensor '%s': missing \"%s\"", name, !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
    if (strcmp(dtype, "F32") != 0)
        return uvae__json_err(J, "unsupported dtype %s for tensor '%s' (only F32 is supported)", dtype, name);
    numel = uvae__st_numel(e->t.ndim, e->t.shape);
    uvae__st_shape_str(shp, sizeof shp, e->t.ndim, e->t.shape);
    if (numel == (size_t)-1) return uvae__json_err(J, "tensor '%s': shape %s is too large", name, shp);
    if ((uint64_t)numel > (uint64_t)UVAE_MAX_TENSOR_BYTES / 4)
        return uvae__json_err(J, "tensor '%s': shape %s F32 is %llu bytes, above the limit of %llu (UVAE_MAX_TENSOR_BYTES)",
                              name, shp, (unsigned long long)numel * 4, (unsigned long long)UVAE_MAX_TENSOR_BYTES);
    e->t.size = numel;
    if (e->end < e->begin || e->end - e->begin != (uint64_t)numel * 4)
        return uvae__json_err(J, "tensor '%s': data_offsets [%llu,%llu] do not match shape %s F32 (%llu bytes)", name,
                              (unsigned long long)e->begin, (unsigned long long)e->end, shp, (unsigned long long)numel * 4);
    if (e->end > data_size)
        return uvae__json_err(J, "tensor '%s': data_offsets [%llu,%llu] go past the end of the data section (%llu bytes)", name,
                              (unsigned long long)e->begin, (unsigned long long)e->end, (unsigned long long)data_size);
    return UVAE_OK;
}

/* "__metadata__": {"k": "v", ..} (or null) into f's meta arrays. */
static int uvae__st_parse_meta(uvae__json *J, uvae_st_file *f) {
    int more;
    size_t len;
    uvae__json_ws(J);
    if (J->n - J->i >= 4 && memcmp(J->s + J->i, "null", 4) == 0) { J->i += 4; return UVAE_OK; }
    if (uvae__json_char(J, '{', "an object for \"__metadata__\"") != UVAE_OK) return UVAE_ERR_FORMAT;
    uvae__json_ws(J);
    if (J->i < J->n && J->s[J->i] == '}') { J->i++; return UVAE_OK; }
    do {
        char key[UVAE__ST_KEY_MAX];
        int k = f->n_meta;
        if (uvae__json_string(J, key, sizeof key, &len, "a metadata key (string)") != UVAE_OK) return UVAE_ERR_FORMAT;
        if (len >= sizeof key)
            return uvae__json_err(J, "metadata key '%s...' is %zu bytes, at most %d are supported", key, len, UVAE__ST_KEY_MAX - 1);
        for (int j = 0; j < f->n_meta; j++)
            if (strcmp(f->meta_key[j], key) == 0) return uvae__json_err(J, "duplicate metadata key '%s'", key);
        if (k == UVAE_META_MAX) return uvae__json_err(J, "more than %d metadata entries", UVAE_META_MAX);
        if (uvae__json_char(J, ':', "':' after a metadata key") != UVAE_OK) return UVAE_ERR_FORMAT;
        uvae__json_ws(J);
        if (J->i >= J->n || J->s[J->i] != '"') {
            char b[16];
            return uvae__json_err(J, "metadata value for '%s' must be a string, found %s at header byte %zu",
                                  key, uvae__json_found(J, b, sizeof b), J->i);
        }
        if (uvae__json_string(J, f->meta_val[k], sizeof f->meta_val[k], &len, "a metadata value (string)") != UVAE_OK) return UVAE_ERR_FORMAT;
        if (len >= sizeof f->meta_val[k])
            return uvae__json_err(J, "metadata value for '%s' is %zu bytes, at most %d are supported", key, len, UVAE__ST_VAL_MAX - 1);
        memcpy(f->meta_key[k], key, sizeof key);
        f->n_meta++;
    } while ((more = uvae__json_next(J, '}', "in \"__metadata__\"")) > 0);
    return more < 0 ? UVAE_ERR_FORMAT : UVAE_OK;
}

/* qsort comparators: arrays of const uvae_st_tensor * by name (the writer), arrays of
   uvae__st_ent * by name and by (begin, end) (the reader). */
static int uvae__st_cmp_name(const void *a, const void *b) {
    return strcmp((*(const uvae_st_tensor *const *)a)->name, (*(const uvae_st_tensor *const *)b)->name);
}
static int uvae__st_cmp_ent_name(const void *a, const void *b) {
    return strcmp((*(const uvae__st_ent *const *)a)->t.name, (*(const uvae__st_ent *const *)b)->t.name);
}
static int uvae__st_cmp_ent_offset(const void *a, const void *b) {
    const uvae__st_ent *x = *(const uvae__st_ent *const *)a, *y = *(const uvae__st_ent *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* The whole header: the top-level object, then the table-wide checks (unique names, tensors
   tiling the data section). On success *ents / *n hold the entries in file order. */
static int uvae__st_parse_header(uvae__json *J, uvae_st_file *f, uint64_t data_size, uvae__st_ent **ents, int *n_ents) {
    uvae__st_ent *e = NULL, **ord = NULL;
    int n = 0, cap = 0, more, have_meta = 0, st = UVAE_ERR_FORMAT;
    uint64_t at = 0;
    *ents = NULL;
    *n_ents = 0;
    if (uvae__json_char(J, '{', "'{' (the header must be a JSON object)") != UVAE_OK) return UVAE_ERR_FORMAT;
    uvae__json_ws(J);
    if (J->i < J->n && J->s[J->i] == '}') { J->i++; more = 0; } else more = 1;
    while (more) {
        char name[UVAE_NAME_MAX];
        size_t len;
        if (uvae__json_string(J, name, sizeof name, &len, "a tensor name (string)") != UVAE_OK) goto fail;
        if (uvae__json_char(J, ':', "':' after a tensor name") != UVAE_OK) goto fail;
        if (strcmp(name, "__metadata__") == 0) {
            if (have_meta) { uvae__json_err(J, "duplicate \"__metadata__\""); goto fail; }
            if (uvae__st_parse_meta(J, f) != UVAE_OK) goto fail;
            have_meta = 1;
        } else {
            if (len == 0) { uvae__json_err(J, "empty tensor name"); goto fail; }
            if (len >= sizeof name) {
                uvae__json_err(J, "tensor name '%s...' is %zu bytes, at most %d are supported", name, len, UVAE_NAME_MAX - 1);
                goto fail;
            }
            if (n >= UVAE_MAX_ST_TENSORS) {
                uvae__json_err(J, "more than %d tensors (UVAE_MAX_ST_TENSORS)", (int)UVAE_MAX_ST_TENSORS);
                goto fail;
            }
            if (n == cap) {
                int c2 = cap ? 2 * cap : 16;
                uvae__st_ent *e2 = (uvae__st_ent *)UVAE_REALLOC(e, (size_t)c2 * sizeof *e2);
                if (!e2) { st = uvae__fail(UVAE_ERR_NOMEM, "%s: out of memory for %d tensor entries", J->path, c2); goto fail; }
                e = e2;
                cap = c2;
            }
            memset(&e[n], 0, sizeof e[n]);
            memcpy(e[n].t.name, name, sizeof name);
            J->in = e[n].t.name;
            if (uvae__st_parse_entry(J, &e[n], data_size) != UVAE_OK) goto fail;
            J->in = NULL;
            n++;
        }
        if ((more = uvae__json_next(J, '}', "in the header object")) < 0) goto fail;
    }
    uvae__json_ws(J);
    if (J->i != J->n) {
        uvae__json_err(J, "malformed header: unexpected data after the JSON object at header byte %zu", J->i);
        goto fail;
    }
    if (n > 0) {
        ord = (uvae__st_ent **)UVAE_MALLOC((size_t)n * sizeof *ord);
        if (!ord) { st = uvae__fail(UVAE_ERR_NOMEM, "%s: out of memory", J->path); goto fail; }
        /* names unique: sort by name, compare neighbours */
        for (int i = 0; i < n; i++) ord[i] = &e[i];
        qsort(ord, (size_t)n, sizeof *ord, uvae__st_cmp_ent_name);
        for (int i = 1; i < n; i++)
            if (strcmp(ord[i]->t.name, ord[i - 1]->t.name) == 0) {
                uvae__json_err(J, "duplicate tensor name '%s'", ord[i]->t.name);
                goto fail;
            }
        /* tiling: sorted by offset, each tensor starts where the previous one ended */
        qsort(ord, (size_t)n, sizeof *ord, uvae__st_cmp_ent_offset);
        for (int i = 0; i < n; i++) {
            const uvae__st_ent *x = ord[i];
            if (x->begin < at) {
                const uvae__st_ent *p = ord[i - 1];
                uvae__json_err(J, "tensors '%s' [%llu,%llu] and '%s' [%llu,%llu] overlap", p->t.name,
                               (unsigned long long)p->begin, (unsigned long long)p->end, x->t.name,
                               (unsigned long long)x->begin, (unsigned long long)x->end);
                goto fail;
            }
            if (x->begin > at) {
                uvae__json_err(J, "hole in the data section: bytes [%llu,%llu) before tensor '%s' belong to no tensor",
                               (unsigned long long)at, (unsigned long long)x->begin, x->t.name);
                goto fail;
            }
            at = x->end;
        }
        UVAE_FREE(ord);
        ord = NULL;
    }
    if (at != data_size) {
        uvae__json_err(J, "the data section has %llu bytes but its tensors cover only %llu (trailing bytes belong to no tensor)",
                       (unsigned long long)data_size, (unsigned long long)at);
        goto fail;
    }
    *ents = e;
    *n_ents = n;
    return UVAE_OK;
fail:
    UVAE_FREE(ord);
    UVAE_FREE(e);
    return st;
}

/* ---- reading -------------------------------------------------------------------------------- */
#if defined(_WIN32)
#define UVAE__FSEEK _fseeki64
#define UVAE__FTELL _ftelli64
#else
#define UVAE__FSEEK fseek
#define UVAE__FTELL ftell
#endif

/* fread exactly n bytes (or copy them from mem at *at), or an IO / FORMAT error naming the file
   and what was being read. */
static int uvae__st_fread(FILE *fp, const uvae__mem *mem, size_t *at, void *dst, size_t n, const char *path, const char *what) {
    size_t got;
    if (n == 0) return UVAE_OK;
    if (mem) {
        got = mem->n - *at < n ? mem->n - *at : n;
        memcpy(dst, mem->p + *at, got);
        *at += got;
        if (got == n) return UVAE_OK;
        return uvae__st_fail(UVAE_ERR_FORMAT, path, "truncated: %s has %zu of its %zu bytes", what, got, n);
    }
    errno = 0;
    got = fread(dst, 1, n, fp);
    if (got == n) return UVAE_OK;
    if (ferror(fp))
        return uvae__st_fail(UVAE_ERR_IO, path, "read error in %s: %s", what, errno ? strerror(errno) : "unknown error");
    return uvae__st_fail(UVAE_ERR_FORMAT, path, "truncated: %s has %zu of its %zu bytes", what, got, n);
}

/* uvae_st_read of the file `path`, or (mem != NULL) of its contents in memory. */
static int uvae__st_read_from(const char *path, const uvae__mem *mem, uvae_st_file *f) {
    FILE *fp = NULL;
    unsigned char len8[8];
    char *hdr = NULL;
    uvae__st_ent *e = NULL;
    int n = 0, st;
    uint64_t N = 0, fsize, data_size;
    size_t bad, at = 0;
    uvae__json J;
    if (!f) return uvae__fail(UVAE_ERR_ARG, "uvae_st_read: f is NULL");
    memset(f, 0, sizeof *f);
    if (!path) return uvae__fail(UVAE_ERR_ARG, "uvae_st_read: path is NULL");
    if (!uvae__st_little_endian())
        return uvae__st_fail(UVAE_ERR_FORMAT, path, "safetensors reading needs a little-endian host");
    if (mem) {
        fsize = (uint64_t)mem->n;
    } else {   /* the file's size, to check every length and offset against */
        long long sz = -1;
        errno = 0;
        fp = fopen(path, "rb");
        if (!fp) return uvae__st_fail(UVAE_ERR_IO, path, "cannot open: %s", errno ? strerror(errno) : "unknown error");
        if (UVAE__FSEEK(fp, 0, SEEK_END) == 0) sz = (long long)UVAE__FTELL(fp);
        if (sz < 0 || UVAE__FSEEK(fp, 0, SEEK_SET) != 0) {
            st = uvae__st_fail(UVAE_ERR_IO, path, "cannot determine the file size: %s", errno ? strerror(errno) : "unknown error");
            goto fail;
        }
        fsize = (uint64_t)sz;
    }
    if (fsize == 0) { st = uvae__st_fail(UVAE_ERR_FORMAT, path, "empty file (not a safetensors file)"); goto fail; }
    if (fsize < 8) {
        st = uvae__st_fail(UVAE_ERR_FORMAT, path, "file is only %llu bytes, too small for the 8-byte header length", (unsigned long long)fsize);
        goto fail;
    }
    if ((st = uvae__st_fread(fp, mem, &at, len8, 8, path, "the header length")) != UVAE_OK) goto fail;
    for (int i = 7; i >= 0; i--) N = (N << 8) | len8[i];
    if (N > fsize - 8) {
        st = uvae__st_fail(UVAE_ERR_FORMAT, path, "truncated: header says %llu bytes of JSON but the file has %llu after the length",
                           (unsigned long long)N, (unsigned long long)(fsize - 8));
        goto fail;
    }
    if (N > UVAE__ST_HEADER_MAX) {
        st = uvae__st_fail(UVAE_ERR_FORMAT, path, "header of %llu bytes exceeds the limit of %u (UVAE_MAX_ST_HEADER)", (unsigned long long)N, UVAE__ST_HEADER_MAX);
        goto fail;
    }
    data_size = fsize - 8 - N;
    if (data_size > (uint64_t)((size_t)-1 / 2)) {
        st = uvae__st_fail(UVAE_ERR_NOMEM, path, "data section of %llu bytes is too large for this platform", (unsigned long long)data_size);
        goto fail;
    }
    hdr = (char *)UVAE_MALLOC((size_t)N + 1);
    if (!hdr) { st = uvae__st_fail(UVAE_ERR_NOMEM, path, "out of memory for a %llu-byte header", (unsigned long long)N); goto fail; }
    if ((st = uvae__st_fread(fp, mem, &at, hdr, (size_t)N, path, "the JSON header")) != UVAE_OK) goto fail;
    hdr[N] = 0;
    if ((bad = uvae__st_utf8_bad((const unsigned char *)hdr, (size_t)N)) != (size_t)-1) {
        st = uvae__st_fail(UVAE_ERR_FORMAT, path, "header is not valid UTF-8 (byte 0x%02x at header byte %zu)", (unsigned char)hdr[bad], bad);
        goto fail;
    }
    J.s = hdr; J.n = (size_t)N; J.i = 0; J.path = path; J.in = NULL;
    if ((st = uvae__st_parse_header(&J, f, data_size, &e, &n)) != UVAE_OK) goto fail;
    UVAE_FREE(hdr);
    hdr = NULL;

    /* the data, in a buffer of its own (malloc alignment suits floats whatever N is) */
    f->buf = (unsigned char *)UVAE_MALLOC(data_size ? (size_t)data_size : 1);
    if (!f->buf) { st = uvae__st_fail(UVAE_ERR_NOMEM, path, "out of memory for %llu bytes of tensor data", (unsigned long long)data_size); goto fail; }
    f->buf_size = (size_t)data_size;
    if ((st = uvae__st_fread(fp, mem, &at, f->buf, (size_t)data_size, path, "the data section")) != UVAE_OK) goto fail;
    if (n > 0) {
        f->t = (uvae_st_tensor *)UVAE_MALLOC((size_t)n * sizeof *f->t);
        if (!f->t) { st = uvae__st_fail(UVAE_ERR_NOMEM, path, "out of memory for %d tensors", n); goto fail; }
    }
    for (int i = 0; i < n; i++) {
        f->t[i] = e[i].t;
        f->t[i].data = (const float *)(const void *)(f->buf + e[i].begin);   /* begin is a multiple of 4 */
    }
    f->n = n;
    UVAE_FREE(e);
    if (fp) fclose(fp);
    return UVAE_OK;
fail:
    if (fp) fclose(fp);
    UVAE_FREE(hdr);
    UVAE_FREE(e);
    UVAE_FREE(f->t);
    UVAE_FREE(f->buf);
    memset(f, 0, sizeof *f);
    return st;
}

int uvae_st_read(const char *path, uvae_st_file *f) { return uvae__st_read_from(path, NULL, f); }

void uvae_st_free(uvae_st_file *f) {
    if (!f) return;
    UVAE_FREE(f->t);
    UVAE_FREE(f->buf);
    memset(f, 0, sizeof *f);
}

const uvae_st_tensor *uvae_st_find(const uvae_st_file *f, const char *name) {
    if (!f || !name) return NULL;
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

const char *uvae_st_meta(const uvae_st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_key[i], key) == 0) return f->meta_val[i];
    return NULL;
}

/* ---- writing -------------------------------------------------------------------------------- */
/* A growable byte string; oom is sticky so appends need no individual checks. */
typedef struct uvae__sb { char *s; size_t n, cap; int oom; } uvae__sb;

static void uvae__sb_put(uvae__sb *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        char *s2;
        while (c < b->n + n + 1) c *= 2;
        s2 = (char *)UVAE_REALLOC(b->s, c);
        if (!s2) { b->oom = 1; return; }
        b->s = s2;
        b->cap = c;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void uvae__sb_puts(uvae__sb *b, const char *s) { uvae__sb_put(b, s, strlen(s)); }

/* s as a JSON string literal: quotes, backslashes and control characters escaped; other bytes
   (UTF-8, checked by the caller) copied as they are. */
static void uvae__sb_json_str(uvae__sb *b, const char *s) {
    uvae__sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"') uvae__sb_put(b, "\\\"", 2);
        else if (c == '\\') uvae__sb_put(b, "\\\\", 2);
        else if (c == '\n') uvae__sb_put(b, "\\n", 2);
        else if (c == '\r') uvae__sb_put(b, "\\r", 2);
        else if (c == '\t') uvae__sb_put(b, "\\t", 2);
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); uvae__sb_put(b, esc, 6); }
        else uvae__sb_put(b, s, 1);
    }
    uvae__sb_put(b, "\"", 1);
}

/* Checks a string the writer is about to store: set, shorter than max bytes, valid UTF-8. */
static int uvae__st_check_str(const char *path, const char *s, size_t max, const char *what, int idx) {
    size_t len;
    if (!s) return uvae__st_fail(UVAE_ERR_ARG, path, "%s %d is NULL", what, idx);
    len = strlen(s);
    if (len >= max) return uvae__st_fail(UVAE_ERR_ARG, path, "%s '%.40s...' is %zu bytes, at most %zu are supported", what, s, len, max - 1);
    if (uvae__st_utf8_bad((const unsigned char *)s, len) != (size_t)-1)
        return uvae__st_fail(UVAE_ERR_ARG, path, "%s %d is not valid UTF-8", what, idx);
    return UVAE_OK;
}

int uvae_st_write(const char *path, const uvae_st_tensor *t, int n, const char *const *meta_kv, int n_meta) {
    uvae__sb h = {NULL, 0, 0, 0};
    const uvae_st_tensor **ord = NULL;
    char *tmp = NULL, num[64];
    FILE *fp = NULL;
    unsigned char len8[8];
    uint64_t off = 0, N;
    int st = UVAE_OK;
    if (!path || !*path) return uvae__fail(UVAE_ERR_ARG, "uvae_st_write: no path");
    if (n < 0 || (n > 0 && !t)) return uvae__st_fail(UVAE_ERR_ARG, path, "bad tensor list (n = %d)", n);
    if (n_meta < 0 || n_meta > UVAE_META_MAX || (n_meta > 0 && !meta_kv))
        return uvae__st_fail(UVAE_ERR_ARG, path, "bad metadata list (%d pairs, at most %d)", n_meta, UVAE_META_MAX);
    if (!uvae__st_little_endian()) return uvae__st_fail(UVAE_ERR_FORMAT, path, "safetensors writing needs a little-endian host");

    /* validate everything first: the file must be one uvae_st_read accepts */
    for (int i = 0; i < n_meta; i++) {
        if ((st = uvae__st_check_str(path, meta_kv[2 * i], UVAE__ST_KEY_MAX, "metadata key", i)) != UVAE_OK) return st;
        if ((st = uvae__st_check_str(path, meta_kv[2 * i + 1], UVAE__ST_VAL_MAX, "metadata value", i)) != UVAE_OK) return st;
        for (int j = 0; j < i; j++)
            if (strcmp(meta_kv[2 * i], meta_kv[2 * j]) == 0) return uvae__st_fail(UVAE_ERR_ARG, path, "duplicate metadata key '%s'", meta_kv[2 * i]);
    }
    for (int i = 0; i < n; i++) {
        char shp[64];
        size_t numel;
        if (memchr(t[i].name, 0, sizeof t[i].name) == NULL)
            return uvae__st_fail(UVAE_ERR_ARG, path, "tensor %d: name is not NUL-terminated", i);
        if ((st = uvae__st_check_str(path, t[i].name, UVAE_NAME_MAX, "tensor name", i)) != UVAE_OK) return st;
        if (!t[i].name[0] || strcmp(t[i].name, "__metadata__") == 0)
            return uvae__st_fail(UVAE_ERR_ARG, path, "tensor %d: invalid name '%s'", i, t[i].name);
        if (t[i].ndim < 0 || t[i].ndim > UVAE_MAX_DIMS)
            return uvae__st_fail(UVAE_ERR_ARG, path, "tensor '%s': ndim %d not in 0..%d", t[i].name, t[i].ndim, UVAE_MAX_DIMS);
        numel = uvae__st_numel(t[i].ndim, t[i].shape);
        uvae__st_shape_str(shp, sizeof shp, t[i].ndim, t[i].shape);
        if (numel == (size_t)-1) return uvae__st_fail(UVAE_ERR_ARG, path, "tensor '%s': bad shape %s", t[i].name, shp);
        if (numel != t[i].size)
            return uvae__st_fail(UVAE_ERR_ARG, path, "tensor '%s': size %zu does not match shape %s", t[i].name, t[i].size, shp);
        if (numel > 0 && !t[i].data) return uvae__st_fail(UVAE_ERR_ARG, path, "tensor '%s': data is NULL", t[i].name);
    }
    if (n > 0) {
        ord = (const uvae_st_tensor **)UVAE_MALLOC((size_t)n * sizeof *ord);
        if (!ord) return uvae__st_fail(UVAE_ERR_NOMEM, path, "out of memory");
        for (int i = 0; i < n; i++) ord[i] = &t[i];
        qsort((void *)ord, (size_t)n, sizeof *ord, uvae__st_cmp_name);
        for (int i = 1; i < n; i++)
            if (strcmp(ord[i]->name, ord[i - 1]->name) == 0) {
                st = uvae__st_fail(UVAE_ERR_ARG, path, "duplicate tensor name '%s'", ord[i]->name);
                UVAE_FREE(ord);
                return st;
            }
        UVAE_FREE(ord);
    }

    /* the header */
    uvae__sb_put(&h, "{", 1);
    if (n_meta > 0) {
        uvae__sb_puts(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) uvae__sb_put(&h, ",", 1);
            uvae__sb_json_str(&h, meta_kv[2 * i]);
            uvae__sb_put(&h, ":", 1);
            uvae__sb_json_str(&h, meta_kv[2 * i + 1]);
        }
        uvae__sb_puts(&h, n > 0 ? "}," : "}");
    }
    for (int i = 0; i < n; i++) {
        uint64_t bytes = (uint64_t)t[i].size * 4;
        if (i) uvae__sb_put(&h, ",", 1);
        uvae__sb_json_str(&h, t[i].name);
        uvae__sb_puts(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t[i].ndim; d++) {
            snprintf(num, sizeof num, d ? ",%d" : "%d", t[i].shape[d]);
            uvae__sb_puts(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + bytes));
        uvae__sb_puts(&h, num);
        off += bytes;
    }
    uvae__sb_put(&h, "}", 1);
    while (!h.oom && (8 + h.n) % 8) uvae__sb_put(&h, " ", 1);   /* the data starts 8-byte aligned */
    if (h.oom) { st = uvae__st_fail(UVAE_ERR_NOMEM, path, "out of memory for the header"); goto done; }
    if (h.n > UVAE__ST_HEADER_MAX) { st = uvae__st_fail(UVAE_ERR_ARG, path, "header of %zu bytes is too large", h.n); goto done; }
    N = h.n;
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(N >> (8 * i));

    /* write "<path>.tmp", then rename it over path */
    tmp = (char *)UVAE_MALLOC(strlen(path) + 5);
    if (!tmp) { st = uvae__st_fail(UVAE_ERR_NOMEM, path, "out of memory"); goto done; }
    strcpy(tmp, path);
    strcat(tmp, ".tmp");
    errno = 0;
    fp = fopen(tmp, "wb");
    if (!fp) {
        st = uvae__st_fail(UVAE_ERR_IO, path, "cannot create %s: %s", tmp, errno ? strerror(errno) : "unknown error");
        goto done;
    }
    if (fwrite(len8, 1, 8, fp) != 8 || fwrite(h.s, 1, h.n, fp) != h.n) goto write_error;
    for (int i = 0; i < n; i++)
        if (t[i].size > 0 && fwrite(t[i].data, sizeof(float), t[i].size, fp) != t[i].size) goto write_error;
    if (fflush(fp) != 0 || ferror(fp) || UVAE__FSYNC(fp) != 0) goto write_error;
    errno = 0;
    if (fclose(fp) != 0) { fp = NULL; goto write_error; }
    fp = NULL;
#ifdef _WIN32
    remove(path);   /* rename does not replace an existing file there */
#endif
    errno = 0;
    if (rename(tmp, path) != 0) {
        st = uvae__st_fail(UVAE_ERR_IO, path, "cannot rename %s to it: %s", tmp, errno ? strerror(errno) : "unknown error");
        remove(tmp);
    }
    goto done;
write_error:
    st = uvae__st_fail(UVAE_ERR_IO, path, "write to %s failed: %s", tmp, errno ? strerror(errno) : "unknown error");
    if (fp) fclose(fp);
    remove(tmp);
done:
    UVAE_FREE(tmp);
    UVAE_FREE(h.s);
    return st;
}

/* ---- uvae_save / uvae_load ------------------------------------------------------------------ */
#define UVAE__CKPT_FORMAT "unetvae-1"

static const char *uvae__optim_kind_name(int kind) {
    return kind == UVAE_SGD ? "sgd" : kind == UVAE_ADAM ? "adam" : kind == UVAE_ADAMW ? "adamw" : "?";
}

/* Shared checks of a registry and an optional optimizer against each other. */
static int uvae__ckpt_check_args(const char *who, const char *path, const uvae_params *P, const uvae_optim *opt) {
    if (!path || !*path) return uvae__fail(UVAE_ERR_ARG, "%s: no path", who);
    if (!P) return uvae__st_fail(UVAE_ERR_ARG, path, "%s: P is NULL", who);
    if (P->n > 0 && !P->data) return uvae__st_fail(UVAE_ERR_ARG, path, "%s: parameters not allocated (uvae_params_alloc)", who);
    if (opt) {
        if (opt->kind != UVAE_SGD && opt->kind != UVAE_ADAM && opt->kind != UVAE_ADAMW)
            return uvae__st_fail(UVAE_ERR_ARG, path, "%s: unknown optimizer kind %d", who, opt->kind);
        if (opt->total != P->total || opt->device != P->device || (P->total > 0 && (!opt->m || (opt->kind != UVAE_SGD && !opt->v))))
            return uvae__st_fail(UVAE_ERR_ARG, path, "%s: optimizer not initialised for these parameters (uvae_optim_init)", who);
    }
    return UVAE_OK;
}

int uvae_save(const char *path, const uvae_params *P, const uvae_optim *opt,
              const char *const *meta_kv, int n_meta) {
    static const char *const reserved[] = {"format", "optim.kind", "optim.step"};
    const char *kv[2 * UVAE_META_MAX];
    char step[32];
    uvae_st_tensor *t;
    const float *slab[3];
    float *staged = NULL;
    int nt = 0, nm = 0, moments, st;
    if ((st = uvae__ckpt_check_args("uvae_save", path, P, opt)) != UVAE_OK) return st;
    moments = !opt ? 0 : opt->kind == UVAE_SGD ? 1 : 2;
    if (n_meta < 0 || (n_meta > 0 && !meta_kv) || 1 + n_meta + (opt ? 2 : 0) > UVAE_META_MAX)
        return uvae__st_fail(UVAE_ERR_ARG, path, "uvae_save: %d metadata pairs, at most %d", n_meta, UVAE_META_MAX - 1 - (opt ? 2 : 0));

    /* metadata: ours, then the caller's (which may not reuse our keys) */
    kv[nm++] = "format"; kv[nm++] = UVAE__CKPT_FORMAT;
    if (opt) {
        snprintf(step, sizeof step, "%lld", (long long)opt->step);
        kv[nm++] = "optim.kind"; kv[nm++] = uvae__optim_kind_name(opt->kind);
        kv[nm++] = "optim.step"; kv[nm++] = step;
    }
    for (int i = 0; i < n_meta; i++) {
        for (int r = 0; r < 3; r++)
            if (meta_kv[2 * i] && strcmp(meta_kv[2 * i], reserved[r]) == 0)
                return uvae__st_fail(UVAE_ERR_ARG, path, "uvae_save: metadata key '%s' is reserved", reserved[r]);
        kv[nm++] = meta_kv[2 * i]; kv[nm++] = meta_kv[2 * i + 1];
    }

    /* the slabs to write from: the parameters, then the moments; staged on the host when they
       live on a GPU */
    slab[0] = P->data;
    slab[1] = opt ? opt->m : NULL;
    slab[2] = opt ? opt->v : NULL;
    if (P->device != UVAE_CPU) {
        if (!(staged = (float *)UVAE_MALLOC((size_t)(1 + moments) * P->total * sizeof(float) + 1)))
            return uvae__st_fail(UVAE_ERR_NOMEM, path, "uvae_save: out of memory staging %zu parameters", P->total);
        for (int k = 0; k <= moments; k++) {
            uvae__dcopy(P->device, staged + (size_t)k * P->total, slab[k], P->total * sizeof(float), 1);
            slab[k] = staged + (size_t)k * P->total;
        }
        if ((st = uvae__gpu_status("uvae_save")) != UVAE_OK) { UVAE_FREE(staged); return st; }
    }
    /* tensors: every registered one, then the moments of the trainable ones */
    t = (uvae_st_tensor *)UVAE_MALLOC(((size_t)P->n * (size_t)(1 + moments) + 1) * sizeof *t);
    if (!t) { UVAE_FREE(staged); return uvae__st_fail(UVAE_ERR_NOMEM, path, "uvae_save: out of memory"); }
    for (int k = 0; k <= moments; k++)
        for (int i = 0; i < P->n; i++) {
            const uvae_param *p = P->p[i];
            uvae_st_tensor *s = &t[nt];
            if (k > 0 && !p->trainable) continue;
            memset(s, 0, sizeof *s);
            if (k == 0) {
                snprintf(s->name, sizeof s->name, "%s", p->name);
                s->data = slab[0] + p->offset;
            } else {
                int len = snprintf(s->name, sizeof s->name, "optim.%c.%s", k == 1 ? 'm' : 'v', p->name);
                if (len < 0 || len >= (int)sizeof s->name) {
                    UVAE_FREE(t);
                    UVAE_FREE(staged);
                    return uvae__st_fail(UVAE_ERR_ARG, path, "uvae_save: parameter name '%s' too long for its optimizer tensor "
                                         "(at most %d bytes with optimizer state)", p->name, UVAE_NAME_MAX - 1 - 8);
                }
                s->data = slab[k] + p->offset;
            }
            s->ndim = p->t.ndim;
            memcpy(s->shape, p->t.shape, sizeof s->shape);
            s->size = p->t.size;
            nt++;
        }
    st = uvae_st_write(path, t, nt, kv, nm / 2);
    UVAE_FREE(t);
    UVAE_FREE(staged);
    return st;
}

/* Is the file's tensor s shaped like the model's tensor t? If not, a FORMAT error naming both. */
static int uvae__ckpt_same_shape(const char *path, const uvae_st_tensor *s, const uvae_tensor *t) {
    char a[64], b[64];
    int same = s->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = s->shape[d] == t->shape[d];
    if (same) return UVAE_OK;
    return uvae__st_fail(UVAE_ERR_FORMAT, path, "tensor '%s' has shape %s in the file but %s in the model", s->name,
                         uvae__st_shape_str(a, sizeof a, s->ndim, s->shape), uvae__st_shape_str(b, sizeof b, t->ndim, t->shape));
}

int uvae_load(const char *path, uvae_params *P, uvae_optim *opt) {
    uvae_st_file f;
    char name[UVAE_NAME_MAX + 16];
    const char *v;
    int64_t step = 0;
    int moments, st;
    if ((st = uvae__ckpt_check_args("uvae_load", path, P, opt)) != UVAE_OK) return st;
    moments = !opt ? 0 : opt->kind == UVAE_SGD ? 1 : 2;
    if ((st = uvae_st_read(path, &f)) != UVAE_OK) return st;

    /* 1. validate everything; nothing in P or opt changes until the file is known good */
    if (opt) {
        v = uvae_st_meta(&f, "optim.kind");
        if (!v) { st = uvae__st_fail(UVAE_ERR_FORMAT, path, "no optimizer state in the file (metadata 'optim.kind' missing)"); goto done; }
        if (strcmp(v, uvae__optim_kind_name(opt->kind)) != 0) {
            st = uvae__st_fail(UVAE_ERR_FORMAT, path, "optimizer kind '%s' in the file, but the optimizer given is '%s'", v, uvae__optim_kind_name(opt->kind));
            goto done;
        }
        v = uvae_st_meta(&f, "optim.step");
        if (!v) { st = uvae__st_fail(UVAE_ERR_FORMAT, path, "metadata 'optim.step' missing"); goto done; }
        for (const char *c = v; ; c++) {
            if (*c < '0' || *c > '9' || step > (INT64_MAX - 9) / 10) {
                st = uvae__st_fail(UVAE_ERR_FORMAT, path, "metadata optim.step '%s' is not a non-negative integer", v);
                goto done;
            }
            step = step * 10 + (*c - '0');
            if (!c[1]) break;
        }
    }
    for (int k = 0; k <= moments; k++)
        for (int i = 0; i < P->n; i++) {
            const uvae_param *p = P->p[i];
            const uvae_st_tensor *s;
            if (k > 0 && !p->trainable) continue;
            if (k == 0) snprintf(name, sizeof name, "%s", p->name);
            else snprintf(name, sizeof name, "optim.%c.%s", k == 1 ? 'm' : 'v', p->name);
            if (!(s = uvae_st_find(&f, name))) {
                st = uvae__st_fail(UVAE_ERR_FORMAT, path, "missing tensor '%s'", name);
                goto done;
            }
            if ((st = uvae__ckpt_same_shape(path, s, &p->t)) != UVAE_OK) goto done;
        }
    for (int i = 0; i < f.n; i++) {   /* nothing in the file that the model lacks */
        const char *nm = f.t[i].name;
        const uvae_param *p = uvae_params_find(P, nm);
        if (p) continue;
        if (strncmp(nm, "optim.m.", 8) == 0 || strncmp(nm, "optim.v.", 8) == 0) {
            if (!opt) continue;   /* optimizer state is simply not wanted */
            p = uvae_params_find(P, nm + 8);
            if (p && p->trainable && (nm[6] == 'm' || moments == 2)) continue;
        }
        st = uvae__st_fail(UVAE_ERR_FORMAT, path, "unexpected tensor '%s' (model has no such parameter)", nm);
        goto done;
    }

    /* 2. copy: cannot fail any more */
    for (int k = 0; k <= moments; k++)
        for (int i = 0; i < P->n; i++) {
            const uvae_param *p = P->p[i];
            float *dst = k == 0 ? p->t.data : (k == 1 ? opt->m : opt->v) + p->offset;
            if (k > 0 && !p->trainable) continue;
            if (k == 0) snprintf(name, sizeof name, "%s", p->name);
            else snprintf(name, sizeof name, "optim.%c.%s", k == 1 ? 'm' : 'v', p->name);
            if (p->t.size > 0) uvae__dcopy(P->device, dst, uvae_st_find(&f, name)->data, p->t.size * sizeof(float), 0);
        }
    if (opt) opt->step = step;
    st = uvae__gpu_status("uvae_load");
done:
    uvae_st_free(&f);
    return st;
}
/* ---------------------------------------------------------------------------------------------
   [data] dataset readers (implementation). Helpers are uvae__ds_*. */
#include <limits.h>
#define UVAE__DS_MAX_BYTES ((size_t)UVAE_MAX_DATA_BYTES)   /* refuse larger files or contents */

static unsigned uvae__ds_be32(const unsigned char *p) {
    return ((unsigned)p[0] << 24) | ((unsigned)p[1] << 16) | ((unsigned)p[2] << 8) | (unsigned)p[3];
}
static unsigned uvae__ds_le32(const unsigned char *p) {
    return (unsigned)p[0] | ((unsigned)p[1] << 8) | ((unsigned)p[2] << 16) | ((unsigned)p[3] << 24);
}

static unsigned uvae__ds_crc32(const unsigned char *p, size_t n) {
    static const unsigned nib[16] = {   /* CRC-32 (reflected 0xEDB88320), 4 bits at a time */
        0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u,
        0x4db26158u, 0x5005713cu, 0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu,
        0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu};
    unsigned c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        c = (c >> 4) ^ nib[c & 15];
        c = (c >> 4) ^ nib[c & 15];
    }
    return c ^ 0xffffffffu;
}

/* Inflate the gzip file `g` (len bytes) into a new UVAE_MALLOC buffer. */
static int uvae__ds_gunzip(const char *path, const unsigned char *g, size_t len,
                           unsigned char **out, size_t *out_len) {
    size_t pos = 10, body, isize;
    unsigned flg;
    unsigned char *buf;
    int got;
    *out = NULL;
    *out_len = 0;
    if (len < 2 || g[0] != 0x1f || g[1] != 0x8b)
        return uvae__fail(UVAE_ERR_FORMAT, "%s: not a gzip file (starts with 0x%02x 0x%02x, want 0x1f 0x8b)",
                          path, g[0], len > 1 ? g[1] : 0);
    if (len < 18) return uvae__fail(UVAE_ERR_FORMAT, "%s: truncated gzip file (%zu bytes)", path, len);
    if (g[2] != 8) return uvae__fail(UVAE_ERR_FORMAT, "%s: gzip compression method %d is not deflate (8)", path, g[2]);
    flg = g[3];
    if (flg & 0xe0) return uvae__fail(UVAE_ERR_FORMAT, "%s: gzip header has reserved flag bits 0x%02x set", path, flg);
    if (flg & 4) {                                         /* FEXTRA: 2-byte length, then data */
        if (len - pos < 2) goto trunc;
        size_t xlen = (size_t)g[pos] | ((size_t)g[pos + 1] << 8);
        pos += 2;
        if (len - pos < xlen) goto trunc;
        pos += xlen;
    }
    for (unsigned bit = 8; bit <= 16; bit *= 2)            /* FNAME, FCOMMENT: zero-terminated */
        if (flg & bit) {
            while (pos < len && g[pos] != 0) pos++;
            if (pos >= len) goto trunc;
            pos++;
        }
    if (flg & 2) {                                         /* FHCRC */
        if (len - pos < 2) goto trunc;
        pos += 2;
    }
    if (len - pos < 8) goto trunc;
    body = len - pos - 8;
    isize = uvae__ds_le32(g + len - 4);
    /* deflate expands at most ~1032:1: a larger claim is a lie (or a truncated file) */
    if (isize > 64 && (isize - 64) / 1032 > body)
        return uvae__fail(UVAE_ERR_FORMAT, "%s: size in the trailer does not match: %zu bytes from %zu compressed "
                          "(corrupt or truncated gzip)", path, isize, body);
    if (isize > UVAE__DS_MAX_BYTES || isize > (size_t)INT_MAX - 1)
        return uvae__fail(UVAE_ERR_FORMAT, "%s: decompressed size %zu bytes is above the limit of %zu (UVAE_MAX_DATA_BYTES)",
                          path, isize, UVAE__DS_MAX_BYTES);
    if (body > (size_t)INT_MAX - 8) return uvae__fail(UVAE_ERR_FORMAT, "%s: gzip body too large", path);
    /* inflate into a buffer of exactly the announced size (+1 to see overruns): bounded memory.
       The input includes the 8 trailer bytes: stb 2.27 reads ahead and calls a stream that ends
       exactly at the end of its input a "bad huffman code"; the deflate data marks its own end. */
    if (!(buf = (unsigned char *)UVAE_MALLOC(isize + 1)))
        return uvae__fail(UVAE_ERR_NOMEM, "%s: out of memory for %zu decompressed bytes", path, isize);
    {   /* stb does not set a reason on every failure: first make it a known, unrelated one */
        static const unsigned char junk[1] = {0};
        int a, b, c;
        (void)stbi_info_from_memory(junk, 1, &a, &b, &c);
    }
    got = stbi_zlib_decode_noheader_buffer((char *)buf, (int)(isize + 1), (const char *)g + pos, (int)(body + 8));
    if (got < 0) {
        const char *why = stbi_failure_reason();
        UVAE_FREE(buf);
        if (why && strcmp(why, "output buffer limit") == 0)
            return uvae__fail(UVAE_ERR_FORMAT, "%s: size in the trailer does not match: it says %zu bytes, the data "
                              "inflates to more (corrupt or truncated gzip)", path, isize);
        return uvae__fail(UVAE_ERR_FORMAT, "%s: corrupt deflate data (%s; corrupt or truncated gzip)", path,
                          why ? why : "unknown");
    }
    if ((size_t)got != isize) {
        UVAE_FREE(buf);
        return uvae__fail(UVAE_ERR_FORMAT, "%s: size in the trailer does not match: it says %zu bytes, the data "
                          "inflates to %d (corrupt or truncated gzip)", path, isize, got);
    }
    if (uvae__ds_crc32(buf, isize) != uvae__ds_le32(g + len - 8)) {
        UVAE_FREE(buf);
        return uvae__fail(UVAE_ERR_FORMAT, "%s: crc32 in the trailer does not match the data (corrupt or truncated gzip)", path);
    }
    *out = buf;
    *out_len = isize;
    return UVAE_OK;
trunc:
    return uvae__fail(UVAE_ERR_FORMAT, "%s: truncated gzip file (%zu bytes, header not complete)", path, len);
}

/* Read a whole file (inflated when it starts with the gzip magic) into a UVAE_MALLOC buffer;
   with mem, its contents come from memory instead. */
static int uvae__ds_read(const char *path, const uvae__mem *mem, unsigned char **out, size_t *out_len) {
    FILE *fp;
    long sz;
    unsigned char *raw;
    size_t len;
    int st;
    *out = NULL;
    *out_len = 0;
    if (!path) return uvae__fail(UVAE_ERR_ARG, "uvae dataset: NULL path");
    if (mem) {
        if (mem->n > UVAE__DS_MAX_BYTES)
            return uvae__fail(UVAE_ERR_FORMAT, "%s: %zu bytes is above the limit of %zu (UVAE_MAX_DATA_BYTES)", path,
                              mem->n, UVAE__DS_MAX_BYTES);
        if (mem->n == 0) return uvae__fail(UVAE_ERR_FORMAT, "%s: empty file", path);
        if (!(raw = (unsigned char *)UVAE_MALLOC(mem->n)))
            return uvae__fail(UVAE_ERR_NOMEM, "%s: out of memory for %zu bytes", path, mem->n);
        memcpy(raw, mem->p, mem->n);
        len = mem->n;
        goto got_raw;
    }
    errno = 0;
    if (!(fp = fopen(path, "rb"))) return uvae__fail(UVAE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(fp, 0, SEEK_END) != 0 || (sz = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        st = uvae__fail(UVAE_ERR_IO, "%s: cannot determine the size: %s", path, strerror(errno));
        fclose(fp);
        return st;
    }
    if ((unsigned long)sz > (unsigned long)UVAE__DS_MAX_BYTES) {
        fclose(fp);
        return uvae__fail(UVAE_ERR_FORMAT, "%s: %ld bytes is above the limit of %zu (UVAE_MAX_DATA_BYTES)", path, sz,
                          UVAE__DS_MAX_BYTES);
    }
    len = (size_t)sz;
    if (len == 0) {
        fclose(fp);
        return uvae__fail(UVAE_ERR_FORMAT, "%s: empty file", path);
    }
    if (!(raw = (unsigned char *)UVAE_MALLOC(len))) {
        fclose(fp);
        return uvae__fail(UVAE_ERR_NOMEM, "%s: out of memory for %zu bytes", path, len);
    }
    if (fread(raw, 1, len, fp) != len) {
        st = uvae__fail(UVAE_ERR_IO, "%s: read error: %s", path, ferror(fp) ? strerror(errno) : "file shrank");
        fclose(fp);
        UVAE_FREE(raw);
        return st;
    }
    fclose(fp);
got_raw:
    if (raw[0] != 0x1f) {   /* neither IDX (00 00 ..) nor CIFAR (label 0..9) starts with 0x1f */
        *out = raw;
        *out_len = len;
        return UVAE_OK;
    }
    st = uvae__ds_gunzip(path, raw, len, out, out_len);
    UVAE_FREE(raw);
    if (st == UVAE_OK && *out_len == 0) {
        UVAE_FREE(*out);
        *out = NULL;
        return uvae__fail(UVAE_ERR_FORMAT, "%s: empty file (after gzip decompression)", path);
    }
    return st;
}

void uvae_dataset_free(uvae_dataset *d) {
    if (!d) return;
    UVAE_FREE(d->images);
    UVAE_FREE(d->labels);
    memset(d, 0, sizeof *d);
}

/* uvae_load_idx; with im_mem / lb_mem, the files' contents come from memory. */
static int uvae__ds_load_idx_from(const char *images_path, const char *labels_path, const uvae__mem *im_mem,
                                  const uvae__mem *lb_mem, uvae_dataset *d) {
    unsigned char *im = NULL, *lb = NULL;
    size_t im_len = 0, lb_len = 0;
    unsigned magic, count, rows, cols, lcount;
    unsigned long long want;
    int st;
    if (!d) return uvae__fail(UVAE_ERR_ARG, "uvae_load_idx: NULL dataset");
    memset(d, 0, sizeof *d);
    if (!images_path || !labels_path) return uvae__fail(UVAE_ERR_ARG, "uvae_load_idx: NULL path");
    if ((st = uvae__ds_read(images_path, im_mem, &im, &im_len)) != UVAE_OK) return st;
    if (im_len < 16) {
        st = uvae__fail(UVAE_ERR_FORMAT, "%s: truncated header: %zu bytes, an IDX images header has 16", images_path, im_len);
        goto fail;
    }
    magic = uvae__ds_be32(im);
    if (magic != 0x803) {
        st = uvae__fail(UVAE_ERR_FORMAT, "%s: bad magic 0x%08x (want 0x00000803 for images)", images_path, magic);
        goto fail;
    }
    count = uvae__ds_be32(im + 4);
    rows = uvae__ds_be32(im + 8);
    cols = uvae__ds_be32(im + 12);
    if (rows < 1 || rows > UVAE_MAX_IDX_SIDE || cols < 1 || cols > UVAE_MAX_IDX_SIDE) {
        st = uvae__fail(UVAE_ERR_FORMAT, "%s: image size %ux%u is not in 1..%d (UVAE_MAX_IDX_SIDE)", images_path, rows, cols,
                        (int)UVAE_MAX_IDX_SIDE);
        goto fail;
    }
    if (count == 0 || count > INT_MAX) {
        st = uvae__fail(UVAE_ERR_FORMAT, "%s: image count %u is not in 1..%d", images_path, count, INT_MAX);
        goto fail;
    }
    want = 16ull + (unsigned long long)count * rows * cols;
    if (want != im_len) {
        st = uvae__fail(UVAE_ERR_FORMAT, "%s: %s: header says %u images of %ux%u (%llu bytes) but the file has %zu",
                        images_path, want > im_len ? "truncated" : "trailing bytes", count, rows, cols, want, im_len);
        goto fail;
    }
    if ((st = uvae__ds_read(labels_path, lb_mem, &lb, &lb_len)) != UVAE_OK) goto fail;
    if (lb_len < 8) {
        st = uvae__fail(UVAE_ERR_FORMAT, "%s: truncated header: %zu bytes, an IDX labels header has 8", labels_path, lb_len);
        goto fail;
    }
    magic = uvae__ds_be32(lb);
    if (magic != 0x801) {
        st = uvae__fail(UVAE_ERR_FORMAT, "%s: bad magic 0x%08x (want 0x00000801 for labels)", labels_path, magic);
        goto fail;
    }
    lcount = uvae__ds_be32(lb + 4);
    if (8ull + lcount != lb_len) {
        st = uvae__fail(UVAE_ERR_FORMAT, "%s: %s: header says %u labels (%llu bytes) but the file has %zu", labels_path,
                        8ull + lcount > lb_len ? "truncated" : "trailing bytes", lcount, 8ull + lcount, lb_len);
        goto fail;
    }
    if (lcount != count) {
        st = uvae__fail(UVAE_ERR_FORMAT, "%s: %u labels but the images file has %u images", labels_path, lcount, count);
        goto fail;
    }
    for (unsigned i = 0; i < count; i++)
        if (lb[8 + i] > 9) {
            st = uvae__fail(UVAE_ERR_FORMAT, "%s: label %d at record %u is out of range 0..9", labels_path, lb[8 + i], i);
            goto fail;
        }
    memmove(im, im + 16, im_len - 16);
    memmove(lb, lb + 8, count);
    d->n = (int)count;
    d->channels = 1;
    d->height = (int)rows;
    d->width = (int)cols;
    d->n_classes = 10;
    d->images = im;
    d->labels = lb;
    return UVAE_OK;
fail:
    UVAE_FREE(im);
    UVAE_FREE(lb);
    return st;
}

int uvae_load_idx(const char *images_path, const char *labels_path, uvae_dataset *d) {
    return uvae__ds_load_idx_from(images_path, labels_path, NULL, NULL, d);
}

/* uvae_load_cifar10; with mems (n_paths entries), the files' contents come from memory. */
static int uvae__ds_load_cifar10_from(const char *const *paths, int n_paths, const uvae__mem *mems, uvae_dataset *d) {
    enum { REC = 3073, PIX = 3072 };
    unsigned char *buf = NULL, *im = NULL, *lb = NULL;
    size_t len = 0, total = 0;
    int st = UVAE_OK;
    if (!d) return uvae__fail(UVAE_ERR_ARG, "uvae_load_cifar10: NULL dataset");
    memset(d, 0, sizeof *d);
    if (!paths || n_paths < 1) return uvae__fail(UVAE_ERR_ARG, "uvae_load_cifar10: no files (n_paths %d)", n_paths);
    for (int f = 0; f < n_paths; f++) {
        size_t nrec;
        unsigned char *p;
        if ((st = uvae__ds_read(paths[f], mems ? &mems[f] : NULL, &buf, &len)) != UVAE_OK) goto fail;
        if (len % REC != 0) {
            st = uvae__fail(UVAE_ERR_FORMAT, "%s: %zu bytes is not a whole number of %d-byte records", paths[f], len, REC);
            goto fail;
        }
        nrec = len / REC;
        if (total + nrec > (size_t)INT_MAX || total + nrec > (size_t)-1 / PIX) {
            st = uvae__fail(UVAE_ERR_FORMAT, "%s: more than %d records in all", paths[f], INT_MAX);
            goto fail;
        }
        for (size_t r = 0; r < nrec; r++)
            if (buf[r * REC] > 9) {
                st = uvae__fail(UVAE_ERR_FORMAT, "%s: label %d at record %zu is out of range 0..9", paths[f], buf[r * REC], r);
                goto fail;
            }
        if (!(p = (unsigned char *)UVAE_REALLOC(im, (total + nrec) * PIX))) {
            st = uvae__fail(UVAE_ERR_NOMEM, "%s: out of memory for %zu images", paths[f], total + nrec);
            goto fail;
        }
        im = p;
        if (!(p = (unsigned char *)UVAE_REALLOC(lb, total + nrec))) {
            st = uvae__fail(UVAE_ERR_NOMEM, "%s: out of memory for %zu labels", paths[f], total + nrec);
            goto fail;
        }
        lb = p;
        for (size_t r = 0; r < nrec; r++) {
            lb[total + r] = buf[r * REC];
            memcpy(im + (total + r) * PIX, buf + r * REC + 1, PIX);
        }
        total += nrec;
        UVAE_FREE(buf);
        buf = NULL;
    }
    d->n = (int)total;
    d->channels = 3;
    d->height = 32;
    d->width = 32;
    d->n_classes = 10;
    d->images = im;
    d->labels = lb;
    return UVAE_OK;
fail:
    UVAE_FREE(buf);
    UVAE_FREE(im);
    UVAE_FREE(lb);
    return st;
}

int uvae_load_cifar10(const char *const *paths, int n_paths, uvae_dataset *d) {
    return uvae__ds_load_cifar10_from(paths, n_paths, NULL, d);
}

int uvae_dataset_batch(const uvae_dataset *d, const int *idx, int B, uvae_tensor *x, uvae_tensor *y) {
    size_t per;
    if (!d || !d->images || !d->labels || d->n < 1 || !idx || !x || !y || B < 1)
        return uvae__fail(UVAE_ERR_ARG, "uvae_dataset_batch: NULL or empty argument (B %d)", B);
    if (x->device != UVAE_CPU || y->device != UVAE_CPU || !x->data || !y->data)
        return uvae__fail(UVAE_ERR_ARG, "uvae_dataset_batch: x and y must be CPU tensors");
    per = (size_t)d->channels * d->height * d->width;
    if (x->ndim != 4 || x->shape[0] != B || x->shape[1] != d->channels || x->shape[2] != d->height ||
        x->shape[3] != d->width || y->size != (size_t)B)
        return uvae__fail(UVAE_ERR_ARG, "uvae_dataset_batch: x %s and y with %zu values, want x [%d,%d,%d,%d] and y [%d]",
                          uvae__shape_str(x), y->size, B, d->channels, d->height, d->width, B);
    for (int b = 0; b < B; b++)
        if (idx[b] < 0 || idx[b] >= d->n)
            return uvae__fail(UVAE_ERR_ARG, "uvae_dataset_batch: index %d at position %d is out of range 0..%d", idx[b], b, d->n - 1);
    for (int b = 0; b < B; b++) {
        const unsigned char *src = d->images + (size_t)idx[b] * per;
        float *dst = x->data + (size_t)b * per;
        for (size_t i = 0; i < per; i++) dst[i] = (float)src[i] / 255.0f;
        y->data[b] = (float)d->labels[idx[b]];
    }
    return UVAE_OK;
}

void uvae_shuffle(int *order, int n, uvae_rng *rng) {
    if (!order || n < 1 || !rng) return;
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        uint32_t bound = (uint32_t)i + 1, lim = (uint32_t)(0u - bound) % bound, r;
        do r = uvae_rng_u32(rng); while (r < lim);   /* reject the biased low range */
        int j = (int)(r % bound), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* ---------------------------------------------------------------------------------------------
   [data/pets] implementation */

static int uvae__pets_is_blank(int ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f'; }
static int uvae__pets_name_char(int ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

/* The list's bytes, from its file or from memory. */
typedef struct uvae__pets_src { FILE *f; const uvae__mem *mem; size_t at; } uvae__pets_src;
static int uvae__pets_getc(uvae__pets_src *s) {
    if (s->f) return getc(s->f);
    return s->at < s->mem->n ? s->mem->p[s->at++] : EOF;
}

/* uvae_pets_read_list; with mem, the list's contents come from memory. */
static int uvae__pets_read_list_from(const char *list_path, const uvae__mem *mem, char (*names)[64], int max_names) {
    char line[1024];
    int count = 0, lineno = 0, ch = 0, st = 0;
    uvae__pets_src src;
    if (!list_path) return uvae__fail(UVAE_ERR_ARG, "uvae_pets_read_list: NULL path");
    if (names && max_names < 0) return uvae__fail(UVAE_ERR_ARG, "uvae_pets_read_list: max_names %d < 0", max_names);
    src.f = NULL; src.mem = mem; src.at = 0;
    if (!mem && !(src.f = fopen(list_path, "rb")))
        return uvae__fail(UVAE_ERR_IO, "uvae_pets_read_list: cannot open list %s: %s", list_path, strerror(errno));
    while (ch != EOF) {
        size_t len = 0, nlen;
        char *s = line, *name;
        int fields = 0, nul = 0;
        while ((ch = uvae__pets_getc(&src)) != EOF && ch != '\n') {   /* one line, without its '\n' */
            if (ch == 0) nul = 1;
            if (len < sizeof line - 1) line[len] = (char)ch;
            if (len < sizeof line) len++;
        }
        if (len == 0 && ch == EOF) break;
        lineno++;
        if (len > sizeof line - 2) {
            st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_read_list: %s:%d: malformed line (longer than %d characters)",
                            list_path, lineno, (int)sizeof line - 2);
            break;
        }
        if (nul) {
            st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_read_list: %s:%d: malformed line (a NUL byte)", list_path, lineno);
            break;
        }
        line[len] = '\0';
        while (*s && uvae__pets_is_blank((unsigned char)*s)) s++;
        if (*s == '\0' || *s == '#') continue;
        name = s;
        while (*s && uvae__pets_name_char((unsigned char)*s)) s++;
        nlen = (size_t)(s - name);
        if (*s && !uvae__pets_is_blank((unsigned char)*s)) {
            unsigned char c = (unsigned char)*s;
            if (c > 0x20 && c < 0x7f)
                st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_read_list: %s:%d: malformed line (character '%c' in the name; "
                                "names are [A-Za-z0-9_-])", list_path, lineno, c);
            else
                st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_read_list: %s:%d: malformed line (byte 0x%02x in the name; "
                                "names are [A-Za-z0-9_-])", list_path, lineno, c);
            break;
        }
        if (nlen >= 64) {
            st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_read_list: %s:%d: malformed line (name of %zu characters, at most 63)",
                            list_path, lineno, nlen);
            break;
        }
        for (;;) {   /* the optional fields: non-negative integers */
            while (*s && uvae__pets_is_blank((unsigned char)*s)) s++;
            if (!*s) break;
            if (!(*s >= '0' && *s <= '9')) { fields = -1; break; }
            while (*s >= '0' && *s <= '9') s++;
            if (*s && !uvae__pets_is_blank((unsigned char)*s)) { fields = -1; break; }
            fields++;
        }
        if (fields < 0) {
            st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_read_list: %s:%d: malformed line (want `Name class species breed`)",
                            list_path, lineno);
            break;
        }
        if (fields != 0 && fields != 3) {
            st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_read_list: %s:%d: malformed line (%d fields after the name, want 3)",
                            list_path, lineno, fields);
            break;
        }
        if (names) {
            if (count >= max_names) {
                st = uvae__fail(UVAE_ERR_ARG, "uvae_pets_read_list: %s names more than max_names = %d images", list_path, max_names);
                break;
            }
            memcpy(names[count], name, nlen);
            names[count][nlen] = '\0';
        }
        if (count == INT32_MAX) {
            st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_read_list: %s: too many names", list_path);
            break;
        }
        count++;
    }
    if (!st && src.f && ferror(src.f))
        st = uvae__fail(UVAE_ERR_IO, "uvae_pets_read_list: cannot read list %s: %s", list_path, strerror(errno));
    if (src.f) fclose(src.f);
    return st ? st : count;
}

int uvae_pets_read_list(const char *list_path, char (*names)[64], int max_names) {
    return uvae__pets_read_list_from(list_path, NULL, names, max_names);
}

/* What the first bytes say: 1 JPEG (FF D8 FF), 2 PNG (its 8-byte signature), 0 anything else. */
static int uvae__pets_sniff(const unsigned char *b, size_t n) {
    static const unsigned char png[8] = {0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a};
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return 1;
    if (n >= 8 && memcmp(b, png, 8) == 0) return 2;
    return 0;
}

/* stb_image 2.27 (Debian bookworm's libstb-dev) has two memory bugs on hostile JPEGs, found by
   fuzz/fuzz_pets_image.c (stb 2.28 checks both): a DHT segment declaring more than 256 codes makes
   it write past its Huffman tables, and a scan that uses a Huffman table no DHT defined makes it
   read outside them (the tables are uninitialised). So before stb sees a JPEG, its segments are
   walked the way stb reads them (junk skipped before the frame header, segment lengths, each
   scan's entropy-coded data up to its next marker): every Huffman table is checked, and each scan
   may only use tables defined before it (and, in a baseline frame, quantisation tables). Where
   stb itself would fail, the walk stops and leaves the error to stb. *w, *h get the frame's size
   (0 when not found). Returns NULL, or what is wrong. */
static const char *uvae__pets_jpeg_check(const unsigned char *p, size_t n, unsigned long *w, unsigned long *h) {
    size_t i = 2, L;                           /* after SOI */
    int frame = 0, progressive = 0, nf = 0;    /* the frame header (SOF0..2): seen, kind, components */
    unsigned char dht[2][4], dqt[4], tq[4];
    *w = *h = 0;
    memset(dht, 0, sizeof dht);
    memset(dqt, 0, sizeof dqt);
    for (;;) {
        unsigned m;
        if (!frame) while (i < n && p[i] != 0xff) i++;   /* stb skips junk before the frame header */
        if (i >= n || p[i] != 0xff) return NULL;
        while (i < n && p[i] == 0xff) i++;                /* fill bytes */
        if (i + 2 >= n) return NULL;
        m = p[i++];
        if (m == 0xd9 || m == 0x00 || m == 0x01 || (m >= 0xd0 && m <= 0xd8)) return NULL;   /* EOI, or stb fails */
        L = ((size_t)p[i] << 8) | p[i + 1];
        if (L < 2) return NULL;
        if (m == 0xc4) {                       /* DHT: tables while L > 0, as stb reads them */
            long rem = (long)L - 2;
            size_t k = i + 2;
            while (rem > 0) {
                unsigned codes = 0, q = k < n ? p[k] : 0;
                if ((q >> 4) > 1 || (q & 15) > 3) return NULL;   /* stb: "bad DHT header" */
                for (size_t c = 1; c <= 16; c++) codes += k + c < n ? p[k + c] : 0;
                if (codes > 256) return "a Huffman table with more than 256 codes";
                dht[q >> 4][q & 15] = 1;
                rem -= 17 + (long)codes;
                k += 17 + codes;
            }
            if (rem != 0) return NULL;         /* stb: "bad DHT header" */
            i = k;
            continue;
        }
        if (i + L > n) return NULL;            /* a truncated segment: stb reads zeros and fails or stops */
        if (m == 0xdb) {                       /* DQT: 65- or 129-byte tables */
            size_t k = i + 2, end = i + L;
            while (k < end) {
                if ((p[k] >> 4) > 1 || (p[k] & 15) > 3) return NULL;
                dqt[p[k] & 15] = 1;
                k += (p[k] >> 4) ? 129 : 65;
            }
        } else if (m == 0xc0 || m == 0xc1 || m == 0xc2) {
            if (frame || L < 8) return NULL;   /* stb: "unknown marker", "bad SOF len" */
            nf = p[i + 7];
            if (nf < 1 || nf > 4 || L != 8 + 3 * (size_t)nf) return NULL;
            for (int c = 0; c < nf; c++) tq[c] = p[i + 10 + 3 * (size_t)c];
            *h = ((unsigned long)p[i + 3] << 8) | p[i + 4];
            *w = ((unsigned long)p[i + 5] << 8) | p[i + 6];
            frame = 1;
            progressive = m == 0xc2;
        } else if (m == 0xda) {                /* SOS: its header, then entropy-coded data */
            size_t ns = L >= 8 ? p[i + 2] : 0;
            unsigned ss;
            if (!frame || ns < 1 || ns > 4 || L != 6 + 2 * ns) return NULL;
            ss = p[i + 3 + 2 * ns];
            for (size_t c = 0; c < ns; c++) {
                unsigned td = p[i + 4 + 2 * c] >> 4, ta = p[i + 4 + 2 * c] & 15;
                if (td > 3 || ta > 3) return NULL;
                if ((!progressive || ss == 0) && !dht[0][td]) return "a scan uses a DC Huffman table that no DHT defined";
                if ((!progressive || ss != 0) && !dht[1][ta]) return "a scan uses an AC Huffman table that no DHT defined";
            }
            for (int c = 0; c < nf && !progressive; c++)
                if (tq[c] > 3 || !dqt[tq[c]]) return tq[c] > 3 ? NULL : "a scan uses a quantisation table that no DQT defined";
            i += L;
            for (;;) {                         /* up to the next marker: not FF 00 (a stuffed FF), not RSTn */
                size_t j;
                while (i < n && p[i] != 0xff) i++;
                for (j = i; j < n && p[j] == 0xff; j++) {}
                if (j >= n) return NULL;
                if (p[j] != 0x00 && (p[j] < 0xd0 || p[j] > 0xd7)) break;
                i = j + 1;
            }
            continue;
        }
        i += L;
    }
}

/* stb_image 2.27 also grows its buffer for the compressed data to the size that a PNG chunk's
   header claims before it reads the chunk (found by fuzz/fuzz_pets_image.c: a 60-byte file made it
   allocate 2 GiB), and an empty first IDAT chunk makes it offset a NULL pointer (undefined
   behaviour). So every chunk up to IEND must fit in the file, and the first IDAT must not be
   empty. *w, *h get the size from the IHDR chunk (0 when there is none). Returns NULL, or what
   is wrong. */
static const char *uvae__pets_png_check(const unsigned char *p, size_t n, unsigned long *w, unsigned long *h) {
    size_t i = 8;                              /* after the signature */
    int idat = 0;
    *w = *h = 0;
    if (n >= 24 && memcmp(p + 12, "IHDR", 4) == 0) {
        *w = ((unsigned long)p[16] << 24) | ((unsigned long)p[17] << 16) | ((unsigned long)p[18] << 8) | p[19];
        *h = ((unsigned long)p[20] << 24) | ((unsigned long)p[21] << 16) | ((unsigned long)p[22] << 8) | p[23];
    }
    while (n - i >= 8) {
        size_t len = ((size_t)p[i] << 24) | ((size_t)p[i + 1] << 16) | ((size_t)p[i + 2] << 8) | (size_t)p[i + 3];
        if (len > n - i - 8) return "a chunk longer than the rest of the file";
        if (memcmp(p + i + 4, "IEND", 4) == 0) return NULL;
        if (memcmp(p + i + 4, "IDAT", 4) == 0 && !idat++ && len == 0) return "an empty first IDAT chunk";
        i += 8 + len;
        if (n - i < 4) return NULL;            /* no CRC: stb fails by itself */
        i += 4;
    }
    return NULL;
}

/* Decodes one image (its file, or its contents in mem) with stb into `want` channels; the caller
   frees with stbi_image_free. A file is read whole first, so stb's header check and its decode
   see the same bytes. Only PNG data, and JPEG data when jpeg_ok, reach stb's decoders; the size
   limits are checked from the header before decoding; *chan gets the file's own channel count. */
static int uvae__pets_decode(const char *path, const uvae__mem *mem, const char *what, int jpeg_ok, int want,
                             unsigned char **out, int *w, int *h, int *chan) {
    unsigned char *buf = NULL;
    const unsigned char *p;
    const char *why;
    size_t n;
    unsigned long hw, hh;
    int kind, w2, h2, c2, st = UVAE_OK;
    *out = NULL;
    if (mem) {
        p = mem->p;
        n = mem->n;
    } else {
        FILE *f = fopen(path, "rb");
        long sz = -1;
        if (!f) return uvae__fail(UVAE_ERR_IO, "uvae_pets_load: cannot open %s %s: %s", what, path, strerror(errno));
        if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
            st = uvae__fail(UVAE_ERR_IO, "uvae_pets_load: cannot read %s %s: %s", what, path, strerror(errno));
            fclose(f);
            return st;
        }
        if ((unsigned long)sz > (unsigned long)INT_MAX) {
            fclose(f);
            return uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_load: %s %s: %ld bytes is too large", what, path, sz);
        }
        if (sz > 0 && !(buf = (unsigned char *)UVAE_MALLOC((size_t)sz))) {
            fclose(f);
            return uvae__fail(UVAE_ERR_NOMEM, "uvae_pets_load: %s %s: out of memory for %ld bytes", what, path, sz);
        }
        if (sz > 0 && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
            st = uvae__fail(UVAE_ERR_IO, "uvae_pets_load: cannot read %s %s: %s", what, path, ferror(f) ? strerror(errno) : "file shrank");
            fclose(f);
            UVAE_FREE(buf);
            return st;
        }
        fclose(f);
        p = buf;
        n = (size_t)sz;
    }
    if (n > (size_t)INT_MAX) {
        st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_load: %s %s: %zu bytes is too large", what, path, n);
        goto done;
    }
    kind = uvae__pets_sniff(p, n);
    if (kind == 0 || (kind == 1 && !jpeg_ok)) {
        if (n == 0) st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_load: cannot decode %s %s: empty file", what, path);
        else st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_load: cannot decode %s %s: not %s data (starts with 0x%02x 0x%02x)",
                             what, path, jpeg_ok ? "JPEG or PNG" : "PNG", p[0], n > 1 ? p[1] : 0);
        goto done;
    }
    why = kind == 1 ? uvae__pets_jpeg_check(p, n, &hw, &hh) : uvae__pets_png_check(p, n, &hw, &hh);
    if (hw > UVAE_MAX_IMAGE_SIDE || hh > UVAE_MAX_IMAGE_SIDE) {   /* the header's size, before stb reads it */
        st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_load: %s %s is %lux%lu, larger than %dx%d (UVAE_MAX_IMAGE_SIDE)", what, path,
                        hw, hh, (int)UVAE_MAX_IMAGE_SIDE, (int)UVAE_MAX_IMAGE_SIDE);
        goto done;
    }
    if ((size_t)hw * (size_t)hh > (size_t)UVAE_MAX_IMAGE_PIXELS) {
        st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_load: %s %s is %lux%lu = %zu pixels, more than %zu (UVAE_MAX_IMAGE_PIXELS)",
                        what, path, hw, hh, (size_t)hw * (size_t)hh, (size_t)UVAE_MAX_IMAGE_PIXELS);
        goto done;
    }
    if (why) {
        st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_load: cannot decode %s %s: corrupt %s (%s)", what, path,
                        kind == 1 ? "JPEG" : "PNG", why);
        goto done;
    }
    if (!stbi_info_from_memory(p, (int)n, w, h, chan)) {
        why = stbi_failure_reason();
        st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_load: cannot decode %s %s: %s", what, path, why ? why : "unknown format");
        goto done;
    }
    if (*w < 1 || *h < 1 || *w > UVAE_MAX_IMAGE_SIDE || *h > UVAE_MAX_IMAGE_SIDE) {
        st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_load: %s %s is %dx%d, larger than %dx%d (UVAE_MAX_IMAGE_SIDE)", what, path,
                        *w, *h, (int)UVAE_MAX_IMAGE_SIDE, (int)UVAE_MAX_IMAGE_SIDE);
        goto done;
    }
    if ((size_t)*w * (size_t)*h > (size_t)UVAE_MAX_IMAGE_PIXELS) {
        st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_load: %s %s is %dx%d = %zu pixels, more than %zu (UVAE_MAX_IMAGE_PIXELS)",
                        what, path, *w, *h, (size_t)*w * (size_t)*h, (size_t)UVAE_MAX_IMAGE_PIXELS);
        goto done;
    }
    if (want == 1 && (*chan != 1 || stbi_is_16_bit_from_memory(p, (int)n))) {
        st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_load: %s %s is not 8-bit grey (%d channels%s)", what, path, *chan,
                        *chan == 1 ? ", 16-bit" : "");
        goto done;
    }
    *out = stbi_load_from_memory(p, (int)n, &w2, &h2, &c2, want);
    if (!*out) {
        why = stbi_failure_reason();
        st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_load: cannot decode %s %s: %s", what, path, why ? why : "corrupt data");
    } else if (w2 != *w || h2 != *h) {
        stbi_image_free(*out);
        *out = NULL;
        st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_load: cannot decode %s %s: inconsistent header", what, path);
    }
done:
    UVAE_FREE(buf);
    return st;
}

/* Bilinear, align_corners=False: source coordinate (i + 0.5) * in / out - 0.5, clamped at 0. */
static void uvae__pets_bilinear_index(int i, int in, int out, int *i0, int *i1, float *t) {
    double s = ((double)i + 0.5) * (double)in / (double)out - 0.5;
    int k;
    if (s < 0) s = 0;
    k = (int)s;
    if (k > in - 1) k = in - 1;
    *i0 = k;
    *i1 = k < in - 1 ? k + 1 : k;
    *t = (float)(s - k);
}

static void uvae__pets_resize_rgb(const unsigned char *src, int w, int h, int S, float *dst) {
    for (int oy = 0; oy < S; oy++) {
        int y0, y1;
        float ty;
        uvae__pets_bilinear_index(oy, h, S, &y0, &y1, &ty);
        for (int ox = 0; ox < S; ox++) {
            int x0, x1;
            float tx;
            uvae__pets_bilinear_index(ox, w, S, &x0, &x1, &tx);
            for (int c = 0; c < 3; c++) {
                float a = src[((size_t)y0 * w + x0) * 3 + c], b = src[((size_t)y0 * w + x1) * 3 + c];
                float d = src[((size_t)y1 * w + x0) * 3 + c], e = src[((size_t)y1 * w + x1) * 3 + c];
                float top = a + (b - a) * tx, bot = d + (e - d) * tx;
                dst[((size_t)c * S + oy) * S + ox] = (top + (bot - top) * ty) * (1.0f / 255.0f);
            }
        }
    }
}

static void uvae__pets_resize_mask(const unsigned char *src, int w, int h, int S, unsigned char *dst) {
    for (int oy = 0; oy < S; oy++) {
        size_t sy = (size_t)((2 * (int64_t)oy + 1) * h / (2 * (int64_t)S));
        for (int ox = 0; ox < S; ox++) {
            size_t sx = (size_t)((2 * (int64_t)ox + 1) * w / (2 * (int64_t)S));
            dst[(size_t)oy * S + ox] = (unsigned char)(src[sy * (size_t)w + sx] - 1);
        }
    }
}

int uvae_resize_bilinear(const float *src, int planes, int h, int w, float *dst, int oh, int ow) {
    if (!src || !dst || planes < 1 || h < 1 || w < 1 || oh < 1 || ow < 1)
        return uvae__fail(UVAE_ERR_ARG, "uvae_resize_bilinear: %d planes of %dx%d to %dx%d (want sizes >= 1, non-NULL buffers)",
                          planes, h, w, oh, ow);
    for (int c = 0; c < planes; c++) {
        const float *s = src + (size_t)c * h * w;
        for (int oy = 0; oy < oh; oy++) {
            int y0, y1;
            float ty;
            float *d = dst + ((size_t)c * oh + oy) * ow;
            uvae__pets_bilinear_index(oy, h, oh, &y0, &y1, &ty);
            for (int ox = 0; ox < ow; ox++) {
                int x0, x1;
                float tx, top, bot;
                uvae__pets_bilinear_index(ox, w, ow, &x0, &x1, &tx);
                top = s[(size_t)y0 * w + x0] + (s[(size_t)y0 * w + x1] - s[(size_t)y0 * w + x0]) * tx;
                bot = s[(size_t)y1 * w + x0] + (s[(size_t)y1 * w + x1] - s[(size_t)y1 * w + x0]) * tx;
                d[ox] = top + (bot - top) * ty;
            }
        }
    }
    return UVAE_OK;
}

void uvae_pets_free(uvae_pets *p) {
    if (!p) return;
    UVAE_FREE(p->images);
    UVAE_FREE(p->masks);
    UVAE_FREE(p->names);
    memset(p, 0, sizeof *p);
}

/* One image and its trimap (their files, or their contents in memory), checked, then resized into
   img_out [3, size, size] and mask_out [size, size]. */
static int uvae__pets_load_pair(const char *img_path, const uvae__mem *img_mem, const char *tri_path, const uvae__mem *tri_mem,
                                int size, float *img_out, unsigned char *mask_out) {
    unsigned char *img = NULL, *tri = NULL;
    int w, h, c, tw, th, tc, st;
    if ((st = uvae__pets_decode(img_path, img_mem, "image", 1, 3, &img, &w, &h, &c)) != UVAE_OK) return st;
    if ((st = uvae__pets_decode(tri_path, tri_mem, "trimap", 0, 1, &tri, &tw, &th, &tc)) != UVAE_OK) goto done;
    if (tw != w || th != h) {
        st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_load: trimap %s is %dx%d but its image %s is %dx%d", tri_path, tw, th,
                        img_path, w, h);
        goto done;
    }
    for (size_t k = 0; k < (size_t)w * (size_t)h; k++)
        if (tri[k] < 1 || tri[k] > 3) {
            st = uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_load: trimap %s has value %d at (x %d, y %d), outside 1..3",
                            tri_path, tri[k], (int)(k % (size_t)w), (int)(k / (size_t)w));
            goto done;
        }
    uvae__pets_resize_rgb(img, w, h, size, img_out);
    uvae__pets_resize_mask(tri, w, h, size, mask_out);
done:
    if (img) stbi_image_free(img);
    if (tri) stbi_image_free(tri);
    return st;
}

int uvae_pets_load(const char *dir, const char *list_path, int size, uvae_pets *p) {
    char img_path[4096], tri_path[4096];
    int n, st;
    size_t plane;
    if (!p) return uvae__fail(UVAE_ERR_ARG, "uvae_pets_load: NULL output");
    memset(p, 0, sizeof *p);
    if (!dir || !list_path) return uvae__fail(UVAE_ERR_ARG, "uvae_pets_load: NULL dir or list path");
    if (size < 1 || size > 4096) return uvae__fail(UVAE_ERR_ARG, "uvae_pets_load: size %d not in 1..4096", size);
    if ((n = uvae_pets_read_list(list_path, NULL, 0)) < 0) return n;
    if (n == 0) return uvae__fail(UVAE_ERR_FORMAT, "uvae_pets_load: list %s names no images", list_path);
    plane = (size_t)size * (size_t)size;
    if ((size_t)n > ((size_t)-1 / 2) / (3 * plane * sizeof(float)))
        return uvae__fail(UVAE_ERR_NOMEM, "uvae_pets_load: %d images of %dx%d do not fit in memory", n, size, size);
    p->names = (char (*)[64])UVAE_MALLOC((size_t)n * 64);
    p->images = (float *)UVAE_MALLOC((size_t)n * 3 * plane * sizeof(float));
    p->masks = (unsigned char *)UVAE_MALLOC((size_t)n * plane);
    if (!p->names || !p->images || !p->masks) {
        uvae_pets_free(p);
        return uvae__fail(UVAE_ERR_NOMEM, "uvae_pets_load: out of memory for %d images of %dx%d", n, size, size);
    }
    /* the list is read again: it may not have changed size in between */
    if ((st = uvae_pets_read_list(list_path, p->names, n)) != n) {
        uvae_pets_free(p);
        return st < 0 ? st : uvae__fail(UVAE_ERR_IO, "uvae_pets_load: list %s changed while being read", list_path);
    }
    for (int i = 0; i < n; i++) {
        if ((size_t)snprintf(img_path, sizeof img_path, "%s/images/%s.jpg", dir, p->names[i]) >= sizeof img_path ||
            (size_t)snprintf(tri_path, sizeof tri_path, "%s/annotations/trimaps/%s.png", dir, p->names[i]) >= sizeof tri_path) {
            uvae_pets_free(p);
            return uvae__fail(UVAE_ERR_ARG, "uvae_pets_load: path of dataset folder %s is too long", dir);
        }
        if ((st = uvae__pets_load_pair(img_path, NULL, tri_path, NULL, size, p->images + (size_t)i * 3 * plane,
                                       p->masks + (size_t)i * plane)) != UVAE_OK) {
            uvae_pets_free(p);
            return st;
        }
    }
    p->n = n;
    p->size = size;
    return UVAE_OK;
}

void uvae_pets_stats(const uvae_pets *p, float mean[3], float std[3]) {
    size_t plane, count;
    for (int c = 0; c < 3; c++) { mean[c] = 0.0f; std[c] = 1.0f; }
    if (!p || p->n < 1 || !p->images) return;
    plane = (size_t)p->size * (size_t)p->size;
    count = (size_t)p->n * plane;
    for (int c = 0; c < 3; c++) {   /* two passes in double: no cancellation */
        double s = 0, v = 0, m;
        for (int i = 0; i < p->n; i++) {
            const float *x = p->images + ((size_t)i * 3 + c) * plane;
            for (size_t k = 0; k < plane; k++) s += x[k];
        }
        m = s / (double)count;
        for (int i = 0; i < p->n; i++) {
            const float *x = p->images + ((size_t)i * 3 + c) * plane;
            for (size_t k = 0; k < plane; k++) v += ((double)x[k] - m) * ((double)x[k] - m);
        }
        mean[c] = (float)m;
        std[c] = (float)sqrt(v / (double)count);
    }
}

/* One sample of a batch through its view: xd [3,S,S] normalised, yd [S,S] (or [1,S,S] binary). */
static void uvae__pets_sample(const uvae_pets *p, int i, const float mean[3], const float std[3], const uvae_pets_view *v,
                              int binary, float *xd, float *yd) {
    int S = p->size;
    size_t plane = (size_t)S * (size_t)S;
    const float *src = p->images + (size_t)i * 3 * plane;
    const unsigned char *m = p->masks + (size_t)i * plane;
    float sy = v->h / (float)S, sx = v->w / (float)S, grey_mean = 0;
    for (int r = 0; r < S; r++)
        for (int col = 0; col < S; col++) {
            int oc = v->flip ? S - 1 - col : col, y0, x0, y1, x1;
            float fy = v->y0 + ((float)r + 0.5f) * sy - 0.5f, fx = v->x0 + ((float)oc + 0.5f) * sx - 0.5f, wy, wx;
            size_t o = (size_t)r * S + col;
            int ny = (int)floorf(v->y0 + ((float)r + 0.5f) * sy), nx = (int)floorf(v->x0 + ((float)oc + 0.5f) * sx);
            unsigned char lab;
            /* bilinear, edges clamped; at whole coordinates it is the pixel itself */
            fy = fy < 0 ? 0 : fy > (float)(S - 1) ? (float)(S - 1) : fy;
            fx = fx < 0 ? 0 : fx > (float)(S - 1) ? (float)(S - 1) : fx;
            y0 = (int)fy; x0 = (int)fx; wy = fy - (float)y0; wx = fx - (float)x0;
            y1 = y0 + 1 < S ? y0 + 1 : y0; x1 = x0 + 1 < S ? x0 + 1 : x0;
            for (int c = 0; c < 3; c++) {
                const float *s = src + (size_t)c * plane;
                float a = s[(size_t)y0 * S + x0] * (1 - wx) + s[(size_t)y0 * S + x1] * wx;
                float b = s[(size_t)y1 * S + x0] * (1 - wx) + s[(size_t)y1 * S + x1] * wx;
                xd[(size_t)c * plane + o] = (a * (1 - wy) + b * wy) * v->brightness;
            }
            ny = ny < 0 ? 0 : ny >= S ? S - 1 : ny;
            nx = nx < 0 ? 0 : nx >= S ? S - 1 : nx;
            lab = m[(size_t)ny * S + nx];
            yd[o] = binary ? (lab == 1 ? 0.0f : 1.0f) : (float)lab;
        }
    if (v->contrast != 1.0f) {
        double g = 0;
        for (size_t o = 0; o < plane; o++) g += 0.299 * xd[o] + 0.587 * xd[plane + o] + 0.114 * xd[2 * plane + o];
        grey_mean = (float)(g / (double)plane);
    }
    for (size_t o = 0; o < plane; o++) {
        float rgb[3], grey;
        for (int c = 0; c < 3; c++) {
            float t = xd[(size_t)c * plane + o];
            if (v->contrast != 1.0f) t = grey_mean + (t - grey_mean) * v->contrast;
            rgb[c] = t < 0 ? 0 : t > 1 ? 1 : t;
        }
        grey = 0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2];
        for (int c = 0; c < 3; c++) {
            float t = v->saturation != 1.0f ? grey + (rgb[c] - grey) * v->saturation : rgb[c];
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            xd[(size_t)c * plane + o] = (t - mean[c]) * (1.0f / std[c]);
        }
    }
}

int uvae_pets_batch_views(const uvae_pets *p, const int *idx, int B, const float mean[3], const float std[3],
                          const uvae_pets_view *views, int binary, uvae_tensor *x, uvae_tensor *y) {
    int S;
    size_t plane;
    if (!p || !idx || !mean || !std || !x || !y) return uvae__fail(UVAE_ERR_ARG, "uvae_pets_batch: NULL argument");
    if (B < 1) return uvae__fail(UVAE_ERR_ARG, "uvae_pets_batch: batch size %d < 1", B);
    S = p->size;
    plane = (size_t)S * (size_t)S;
    if (x->device != UVAE_CPU || y->device != UVAE_CPU || !x->data || !y->data)
        return uvae__fail(UVAE_ERR_ARG, "uvae_pets_batch: x and y must be CPU tensors");
    if (x->ndim != 4 || x->shape[0] != B || x->shape[1] != 3 || x->shape[2] != S || x->shape[3] != S)
        return uvae__fail(UVAE_ERR_ARG, "uvae_pets_batch: x must be [%d,3,%d,%d]", B, S, S);
    if (binary ? (y->ndim != 4 || y->shape[0] != B || y->shape[1] != 1 || y->shape[2] != S || y->shape[3] != S)
               : (y->ndim != 3 || y->shape[0] != B || y->shape[1] != S || y->shape[2] != S)) {
        if (binary) return uvae__fail(UVAE_ERR_ARG, "uvae_pets_batch: y must be [%d,1,%d,%d] (binary)", B, S, S);
        return uvae__fail(UVAE_ERR_ARG, "uvae_pets_batch: y must be [%d,%d,%d]", B, S, S);
    }
    for (int c = 0; c < 3; c++)
        if (!(std[c] > 0.0f) || !isfinite(std[c]) || !isfinite(mean[c]))
            return uvae__fail(UVAE_ERR_ARG, "uvae_pets_batch: channel %d: mean %g, std %g (want finite, std > 0)",
                              c, (double)mean[c], (double)std[c]);
    for (int b = 0; b < B; b++) {
        const uvae_pets_view *v = views ? &views[b] : NULL;
        if (idx[b] < 0 || idx[b] >= p->n)
            return uvae__fail(UVAE_ERR_ARG, "uvae_pets_batch: idx[%d] = %d not in 0..%d", b, idx[b], p->n - 1);
        if (v && !(v->w > 0 && v->h > 0 && v->x0 >= 0 && v->y0 >= 0 && v->x0 + v->w <= (float)S * 1.0001f &&
                   v->y0 + v->h <= (float)S * 1.0001f && v->brightness >= 0 && v->contrast >= 0 && v->saturation >= 0))
            return uvae__fail(UVAE_ERR_ARG, "uvae_pets_batch: view %d (box %g,%g %gx%g, colour %g %g %g) is not inside the %dx%d image",
                              b, (double)v->x0, (double)v->y0, (double)v->w, (double)v->h, (double)v->brightness,
                              (double)v->contrast, (double)v->saturation, S, S);
    }
    for (int b = 0; b < B; b++) {
        uvae_pets_view id;
        id.x0 = id.y0 = 0; id.w = id.h = (float)S; id.flip = 0; id.brightness = id.contrast = id.saturation = 1;
        uvae__pets_sample(p, idx[b], mean, std, views ? &views[b] : &id, binary, x->data + (size_t)b * 3 * plane, y->data + (size_t)b * plane);
    }
    return UVAE_OK;
}
int uvae_pets_batch(const uvae_pets *p, const int *idx, int B, const float mean[3], const float std[3],
                    const unsigned char *flip, int binary, uvae_tensor *x, uvae_tensor *y) {
    int st = uvae_pets_batch_views(p, idx, B, mean, std, NULL, binary, x, y), S = p ? p->size : 0;
    if (st != UVAE_OK || !flip) return st;
    for (int b = 0; b < B; b++)                          /* mirror the flipped samples in place */
        if (flip[b])
            for (int row = 0; row < 4 * S; row++) {        /* 3 image rows per line, then the label row */
                float *q = row < 3 * S ? x->data + ((size_t)b * 3 * S + (size_t)row) * S : y->data + ((size_t)b * S + (size_t)(row - 3 * S)) * S;
                for (int i = 0, j = S - 1; i < j; i++, j--) { float t = q[i]; q[i] = q[j]; q[j] = t; }
            }
    return UVAE_OK;
}
int uvae_pets_random_views(uvae_rng *rng, int B, int S, float min_scale, float jitter, uvae_pets_view *views) {
    if (!rng || !views || B < 1 || S < 1 || !(min_scale > 0 && min_scale <= 1) || !(jitter >= 0 && jitter < 1))
        return uvae__fail(UVAE_ERR_ARG, "uvae_pets_random_views: bad arguments (B %d, S %d, min_scale %g, jitter %g)",
                          B, S, (double)min_scale, (double)jitter);
    for (int b = 0; b < B; b++) {
        uvae_pets_view *v = &views[b];
        v->x0 = v->y0 = 0; v->w = v->h = (float)S;
        if (min_scale < 1)
            for (int t = 0; t < 10; t++) {
                float area = (float)S * (float)S * (min_scale + (1 - min_scale) * uvae_rng_uniform(rng));
                float ratio = expf(logf(0.75f) + (logf(4.0f / 3.0f) - logf(0.75f)) * uvae_rng_uniform(rng));
                float w = sqrtf(area * ratio), h = sqrtf(area / ratio);
                if (w <= (float)S && h <= (float)S) {
                    v->w = w; v->h = h;
                    v->x0 = ((float)S - w) * uvae_rng_uniform(rng);
                    v->y0 = ((float)S - h) * uvae_rng_uniform(rng);
                    break;
                }
            }
        v->flip = (int)(uvae_rng_u32(rng) & 1u);
        v->brightness = 1 + jitter * (2 * uvae_rng_uniform(rng) - 1);
        v->contrast = 1 + jitter * (2 * uvae_rng_uniform(rng) - 1);
        v->saturation = 1 + jitter * (2 * uvae_rng_uniform(rng) - 1);
        if (jitter == 0) v->brightness = v->contrast = v->saturation = 1;
    }
    return UVAE_OK;
}

void uvae_confusion_add(uvae_confusion *c, const unsigned char *truth, const unsigned char *pred, size_t n) {
    if (!c || !truth || !pred) return;
    for (size_t i = 0; i < n; i++)
        if (truth[i] < 3 && pred[i] < 3) c->m[truth[i]][pred[i]]++;
}

static double uvae__ratio1(double num, double den) { return den > 0 ? num / den : 1.0; }

uvae_seg_metrics uvae_confusion_metrics(const uvae_confusion *c) {
    uvae_seg_metrics r;
    double total = 0, diag = 0, tp, fp, fn;
    memset(&r, 0, sizeof r);
    if (!c) return r;
    for (int k = 0; k < 3; k++) {
        double row = 0, col = 0, d = (double)c->m[k][k];
        for (int j = 0; j < 3; j++) {
            row += (double)c->m[k][j];
            col += (double)c->m[j][k];
            total += (double)c->m[k][j];
        }
        diag += d;
        r.iou[k] = uvae__ratio1(d, row + col - d);
    }
    r.miou = (r.iou[0] + r.iou[1] + r.iou[2]) / 3.0;
    r.pixel_acc = uvae__ratio1(diag, total);
    /* foreground = pet (0) or border (2); background = 1 */
    tp = (double)c->m[0][0] + (double)c->m[0][2] + (double)c->m[2][0] + (double)c->m[2][2];
    fp = (double)c->m[1][0] + (double)c->m[1][2];
    fn = (double)c->m[0][1] + (double)c->m[2][1];
    r.pet_iou = uvae__ratio1(tp, tp + fp + fn);
    r.dice = uvae__ratio1(2 * tp, 2 * tp + fp + fn);
    return r;
}

/* ---------------------------------------------------------------------------------------------
   [image] canvases, text, PNG, grids and plots (implementation). Helpers are uvae__img_*.
   Coordinates that may overflow int (x + w*scale) are computed in long long and then clipped. */
#include <limits.h>
#define UVAE__IMG_MAX 16384

const unsigned char uvae_plot_colors[8][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
    {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {23, 190, 207}};

/* A clip rectangle [x0,x1) x [y0,y1); uvae__img_clip intersects it with the canvas. */
typedef struct { long long x0, y0, x1, y1; } uvae__img_rect;

static uvae__img_rect uvae__img_clip(const uvae_image *im, uvae__img_rect r) {
    if (r.x0 < 0) r.x0 = 0;
    if (r.y0 < 0) r.y0 = 0;
    if (r.x1 > im->w) r.x1 = im->w;
    if (r.y1 > im->h) r.y1 = im->h;
    return r;
}

/* Fill the rectangle [x0,x1) x [y0,y1) with (r,g,b), clipped to `clip` and the canvas. */
static void uvae__img_fill(uvae_image *im, long long x0, long long y0, long long x1, long long y1,
                           uvae__img_rect clip, unsigned char r, unsigned char g, unsigned char b) {
    clip = uvae__img_clip(im, clip);
    if (x0 < clip.x0) x0 = clip.x0;
    if (y0 < clip.y0) y0 = clip.y0;
    if (x1 > clip.x1) x1 = clip.x1;
    if (y1 > clip.y1) y1 = clip.y1;
    for (long long y = y0; y < y1; y++)
        for (long long x = x0; x < x1; x++) {
            unsigned char *d = im->rgb + ((size_t)y * (size_t)im->w + (size_t)x) * 3;
            d[0] = r; d[1] = g; d[2] = b;
        }
}

static uvae__img_rect uvae__img_all(const uvae_image *im) {
    uvae__img_rect r = {0, 0, im->w, im->h};
    return r;
}

int uvae_image_new(uvae_image *im, int w, int h, unsigned char r, unsigned char g, unsigned char b) {
    if (!im) return uvae__fail(UVAE_ERR_ARG, "uvae_image_new: NULL image");
    memset(im, 0, sizeof *im);
    if (w < 1 || w > UVAE__IMG_MAX || h < 1 || h > UVAE__IMG_MAX)
        return uvae__fail(UVAE_ERR_ARG, "uvae_image_new: size %d x %d not in 1..%d", w, h, UVAE__IMG_MAX);
    size_t n = (size_t)w * (size_t)h;   /* <= 2^28: no overflow */
    im->rgb = (unsigned char *)UVAE_MALLOC(n * 3);
    if (!im->rgb) return uvae__fail(UVAE_ERR_NOMEM, "uvae_image_new: out of memory for %d x %d pixels", w, h);
    im->w = w;
    im->h = h;
    for (size_t i = 0; i < n; i++) {
        im->rgb[3 * i] = r; im->rgb[3 * i + 1] = g; im->rgb[3 * i + 2] = b;
    }
    return UVAE_OK;
}

void uvae_image_free(uvae_image *im) {
    if (!im) return;
    UVAE_FREE(im->rgb);
    memset(im, 0, sizeof *im);
}

static int uvae__img_ok(const uvae_image *im) {
    return im && im->rgb && im->w >= 1 && im->w <= UVAE__IMG_MAX && im->h >= 1 && im->h <= UVAE__IMG_MAX;
}

/* value -> byte: (v - lo) * k, rounded and clamped to 0..255; NaN -> 0. */
static unsigned char uvae__img_byte(float v, float lo, float k) {
    float t = (v - lo) * k;
    if (!(t > 0.0f)) return 0;
    if (t >= 254.5f) return 255;
    return (unsigned char)(t + 0.5f);
}

/* The destination rectangle of an h x w source scaled by `scale` at (x,y), clipped to the canvas. */
static uvae__img_rect uvae__img_dst(const uvae_image *im, int h, int w, int x, int y, int scale) {
    uvae__img_rect r = {x, y, (long long)x + (long long)w * scale, (long long)y + (long long)h * scale};
    return uvae__img_clip(im, r);
}

/* Draws each source pixel (sy, sx) as a scale x scale block: walks the clipped destination pixels
   and maps each back to its source pixel. */
void uvae_image_paste(uvae_image *im, const float *chw, int channels, int h, int w, float lo, float hi,
                      int x, int y, int scale) {
    if (!uvae__img_ok(im) || !chw || (channels != 1 && channels != 3) || h < 1 || w < 1 || scale < 1) return;
    float k = hi != lo ? 255.0f / (hi - lo) : 0.0f;
    if (!isfinite(k)) k = 0.0f;
    size_t plane = (size_t)h * (size_t)w;
    uvae__img_rect r = uvae__img_dst(im, h, w, x, y, scale);
    for (long long py = r.y0; py < r.y1; py++) {
        size_t sy = (size_t)((py - y) / scale);
        for (long long px = r.x0; px < r.x1; px++) {
            size_t s = sy * (size_t)w + (size_t)((px - x) / scale);
            unsigned char *d = im->rgb + ((size_t)py * (size_t)im->w + (size_t)px) * 3;
            for (int c = 0; c < 3; c++) d[c] = uvae__img_byte(chw[(channels == 3 ? (size_t)c : 0) * plane + s], lo, k);
        }
    }
}

/* The same walk as uvae_image_paste, colouring class ids through the palette. */
void uvae_image_paste_labels(uvae_image *im, const unsigned char *labels, int h, int w,
                             const unsigned char *palette, int n_colors, int x, int y, int scale) {
    if (!uvae__img_ok(im) || !labels || !palette || n_colors < 1 || h < 1 || w < 1 || scale < 1) return;
    uvae__img_rect r = uvae__img_dst(im, h, w, x, y, scale);
    for (long long py = r.y0; py < r.y1; py++) {
        size_t sy = (size_t)((py - y) / scale);
        for (long long px = r.x0; px < r.x1; px++) {
            const unsigned char *p = palette + 3 * (size_t)(labels[sy * (size_t)w + (size_t)((px - x) / scale)] % n_colors);
            unsigned char *d = im->rgb + ((size_t)py * (size_t)im->w + (size_t)px) * 3;
            d[0] = p[0]; d[1] = p[1]; d[2] = p[2];
        }
    }
}

/* Draws text one character at a time: stb_easy_font_print turns the character into quads (4
   vertices of 16 bytes: x, y, z floats, then rgba), each an axis-aligned rectangle in font pixels;
   every rectangle is filled scaled by `scale` and offset to the pen, clipped to `clip`. Returns the
   widest line's width in pixels (clamped to INT_MAX). */
static int uvae__img_text(uvae_image *im, long long x, long long y, const char *text, int scale,
                          uvae__img_rect clip, unsigned char r, unsigned char g, unsigned char b) {
    char vbuf[128 * 64];   /* room for 128 quads; one glyph uses well under 32 */
    long long pen = x, widest = 0;
    if (!text || scale < 1) return 0;
    for (const char *t = text; *t; t++) {
        unsigned char ch = (unsigned char)*t;
        char one[2] = {'?', 0};
        if (ch == '\n') {
            pen = x;
            y += 12LL * scale;
            continue;
        }
        if (ch >= 32 && ch < 127) one[0] = (char)ch;   /* the font covers ' '..'~' only */
        if (im) {
            int nq = stb_easy_font_print(0.0f, 0.0f, one, NULL, vbuf, (int)sizeof vbuf);
            for (int q = 0; q < nq; q++) {
                float v0[2], v2[2];   /* vertex 0 is the top-left corner, vertex 2 the bottom-right */
                memcpy(v0, vbuf + q * 64, sizeof v0);
                memcpy(v2, vbuf + q * 64 + 32, sizeof v2);
                uvae__img_fill(im, pen + (long long)v0[0] * scale, y + (long long)v0[1] * scale,
                               pen + (long long)v2[0] * scale, y + (long long)v2[1] * scale, clip, r, g, b);
            }
        }
        pen += (long long)stb_easy_font_width(one) * scale;
        if (pen - x > widest) widest = pen - x;
    }
    return widest > INT_MAX ? INT_MAX : (int)widest;
}

int uvae_image_text(uvae_image *im, int x, int y, const char *text, int scale,
                    unsigned char r, unsigned char g, unsigned char b) {
    if (!uvae__img_ok(im)) return uvae__img_text(NULL, x, y, text, scale, (uvae__img_rect){0, 0, 0, 0}, r, g, b);
    return uvae__img_text(im, x, y, text, scale, uvae__img_all(im), r, g, b);
}

/* The width of a text at scale 1, without drawing. */
static int uvae__img_text_width(const char *text) {
    uvae__img_rect none = {0, 0, 0, 0};
    return uvae__img_text(NULL, 0, 0, text, 1, none, 0, 0, 0);
}

/* stb's PNG bytes go through our own FILE so that every write error is seen. */
typedef struct { FILE *f; int failed; } uvae__img_sink;

static void uvae__img_write(void *ctx, void *data, int size) {
    uvae__img_sink *s = (uvae__img_sink *)ctx;
    if (!s->failed && size > 0 && fwrite(data, 1, (size_t)size, s->f) != (size_t)size) s->failed = errno ? errno : EIO;
}

int uvae_image_save_png(const uvae_image *im, const char *path) {
    uvae__img_sink sink = {NULL, 0};
    char *tmp;
    size_t n;
    int e = 0;
    if (!path || !*path) return uvae__fail(UVAE_ERR_ARG, "uvae_image_save_png: empty path");
    if (!uvae__img_ok(im)) return uvae__fail(UVAE_ERR_ARG, "uvae_image_save_png: %s: empty or invalid image", path);
    n = strlen(path);
    if (!(tmp = (char *)UVAE_MALLOC(n + 5))) return uvae__fail(UVAE_ERR_NOMEM, "uvae_image_save_png: %s: out of memory", path);
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    errno = 0;
    if (!(sink.f = fopen(tmp, "wb"))) {
        e = errno;
        UVAE_FREE(tmp);
        return uvae__fail(UVAE_ERR_IO, "uvae_image_save_png: cannot create %s: %s", path, strerror(e ? e : EIO));
    }
    errno = 0;
    if (!stbi_write_png_to_func(uvae__img_write, &sink, im->w, im->h, 3, im->rgb, im->w * 3))
        e = sink.failed ? sink.failed : ENOMEM;   /* stb fails only when its buffers cannot be allocated */
    else
        e = sink.failed;
    if (fclose(sink.f) != 0 && !e) e = errno ? errno : EIO;
    if (!e && rename(tmp, path) != 0) e = errno ? errno : EIO;
    if (e) {
        remove(tmp);
        UVAE_FREE(tmp);
        return uvae__fail(e == ENOMEM ? UVAE_ERR_NOMEM : UVAE_ERR_IO, "uvae_image_save_png: cannot write %s: %s", path, strerror(e));
    }
    UVAE_FREE(tmp);
    return UVAE_OK;
}

/* Grid: dark grey background; cell i's image at its layout position (see the declaration), its
   caption in white in the strip under it (clipped to the cell's column), the title in white on top. */
int uvae_grid_png(const char *path, const float *images, int n, int channels, int h, int w, float lo, float hi,
                  int cols, int scale, const char *const *labels, const char *title) {
    const long long G = 4;
    long long c, rows, cw, ch, cap, top, W, H;
    uvae_image im;
    int rc;
    if (!images || n < 1 || (channels != 1 && channels != 3) || h < 1 || h > UVAE__IMG_MAX || w < 1 ||
        w > UVAE__IMG_MAX || cols < 1 || scale < 1 || scale > UVAE__IMG_MAX)
        return uvae__fail(UVAE_ERR_ARG, "uvae_grid_png: %s: bad arguments (n %d, channels %d, %d x %d, cols %d, scale %d)",
                          path ? path : "(null)", n, channels, h, w, cols, scale);
    c = cols < n ? cols : n;
    rows = (n + c - 1) / c;
    cw = (long long)w * scale;
    ch = (long long)h * scale;
    cap = labels ? 12 : 0;
    top = title ? 14 : 0;
    W = G + c * (cw + G);               /* every factor <= 2^31: fits in long long */
    H = top + G + rows * (ch + cap + G);
    if (W > UVAE__IMG_MAX || H > UVAE__IMG_MAX)
        return uvae__fail(UVAE_ERR_ARG, "uvae_grid_png: %s: grid of %lld x %lld pixels exceeds %d", path ? path : "(null)", W, H, UVAE__IMG_MAX);
    if ((rc = uvae_image_new(&im, (int)W, (int)H, 48, 48, 48)) != UVAE_OK) return rc;
    if (title) uvae_image_text(&im, (int)G, 3, title, 1, 255, 255, 255);
    for (int i = 0; i < n; i++) {
        long long x = G + (i % c) * (cw + G), y = top + G + (i / c) * (ch + cap + G);
        uvae_image_paste(&im, images + (size_t)i * (size_t)channels * (size_t)h * (size_t)w, channels, h, w, lo, hi,
                         (int)x, (int)y, scale);
        if (labels && labels[i]) {
            uvae__img_rect strip = {x, y + ch, x + cw, y + ch + cap};
            uvae__img_text(&im, x + 1, y + ch + 2, labels[i], 1, strip, 255, 255, 255);
        }
    }
    rc = uvae_image_save_png(&im, path);
    uvae_image_free(&im);
    return rc;
}

/* A line from (x0,y0) to (x1,y1) (Bresenham), each point a 2x2 block, clipped to `clip`. */
static void uvae__img_line(uvae_image *im, long long x0, long long y0, long long x1, long long y1,
                           uvae__img_rect clip, const unsigned char *rgb) {
    long long dx = x1 > x0 ? x1 - x0 : x0 - x1, dy = y1 > y0 ? y0 - y1 : y1 - y0;
    long long sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
    for (;;) {
        uvae__img_fill(im, x0, y0, x0 + 2, y0 + 2, clip, rgb[0], rgb[1], rgb[2]);
        if (x0 == x1 && y0 == y1) break;
        long long e2 = 2 * err;
        if (e2 >= dy) { err += dy; x0 += sx; }
        if (e2 <= dx) { err += dx; y0 += sy; }
    }
}

/* Plot: white background; the title (scale 2) centred on top; a black left and bottom axis around
   the plot area, with the y range's max and min written left of its top and bottom ends and the
   first and last index under the x axis's ends; each series as 2-pixel lines between consecutive
   finite points (a finite point between gaps is a 2x2 dot); the legend (a colour swatch and the
   name per named series) in a bordered white box at the plot area's top right. */
int uvae_plot_png(const char *path, int w, int h, const char *title, const char *const *names,
                  const float *const *series, int n_series, int n_points) {
    char ymax_s[32], ymin_s[32], xmax_s[32];
    double ymin = HUGE_VAL, ymax = -HUGE_VAL;
    long long x0, x1, y0, y1;
    uvae_image im;
    uvae__img_rect area;
    int rc, left, n_named = 0, legend_w = 0;
    if (!path) return uvae__fail(UVAE_ERR_ARG, "uvae_plot_png: NULL path");
    if (w < 64 || w > UVAE__IMG_MAX || h < 48 || h > UVAE__IMG_MAX)
        return uvae__fail(UVAE_ERR_ARG, "uvae_plot_png: %s: size %d x %d not in 64..%d x 48..%d", path, w, h, UVAE__IMG_MAX, UVAE__IMG_MAX);
    if (!series || n_series < 1 || n_series > 8 || n_points < 1)
        return uvae__fail(UVAE_ERR_ARG, "uvae_plot_png: %s: want 1..8 series of >= 1 points, got %d of %d", path, n_series, n_points);
    for (int s = 0; s < n_series; s++) {
        if (!series[s]) return uvae__fail(UVAE_ERR_ARG, "uvae_plot_png: %s: series %d is NULL", path, s);
        for (int i = 0; i < n_points; i++) {
            double v = series[s][i];
            if (!isfinite(v)) continue;
            if (v < ymin) ymin = v;
            if (v > ymax) ymax = v;
        }
        if (names && names[s]) {
            int tw = uvae__img_text_width(names[s]);
            n_named++;
            if (tw > legend_w) legend_w = tw;
        }
    }
    if (ymin > ymax) { ymin = 0; ymax = 1; }          /* nothing finite */
    if (ymin == ymax) { double d = fabs(ymin) * 0.05 + 0.5; ymin -= d; ymax += d; }
    snprintf(ymax_s, sizeof ymax_s, "%.4g", ymax);
    snprintf(ymin_s, sizeof ymin_s, "%.4g", ymin);
    snprintf(xmax_s, sizeof xmax_s, "%d", n_points - 1);

    /* plot area [x0,x1] x [y0,y1]: room for the y labels on the left, the x labels and the title */
    left = uvae__img_text_width(ymax_s);
    if (uvae__img_text_width(ymin_s) > left) left = uvae__img_text_width(ymin_s);
    x0 = left + 8;
    x1 = w - 10;
    y0 = title ? 34 : 10;
    y1 = h - 18;
    if (x1 - x0 < 16 || y1 - y0 < 16)
        return uvae__fail(UVAE_ERR_ARG, "uvae_plot_png: %s: %d x %d leaves no room for the plot", path, w, h);
    if ((rc = uvae_image_new(&im, w, h, 255, 255, 255)) != UVAE_OK) return rc;
    area.x0 = x0; area.y0 = y0; area.x1 = x1 + 2; area.y1 = y1 + 2;

    if (title) {
        int tw = uvae__img_text(NULL, 0, 0, title, 2, area, 0, 0, 0);
        uvae_image_text(&im, tw < w ? (w - tw) / 2 : 0, 6, title, 2, 0, 0, 0);
    }
    uvae__img_fill(&im, x0 - 1, y0, x0, y1 + 1, uvae__img_all(&im), 0, 0, 0);        /* y axis */
    uvae__img_fill(&im, x0 - 1, y1 + 1, x1 + 2, y1 + 2, uvae__img_all(&im), 0, 0, 0); /* x axis */
    uvae__img_fill(&im, x0 - 4, y0, x0 - 1, y0 + 1, uvae__img_all(&im), 0, 0, 0);    /* ticks */
    uvae__img_fill(&im, x0 - 4, y1, x0 - 1, y1 + 1, uvae__img_all(&im), 0, 0, 0);
    uvae_image_text(&im, (int)x0 - 5 - uvae__img_text_width(ymax_s), (int)y0 - 3, ymax_s, 1, 0, 0, 0);
    uvae_image_text(&im, (int)x0 - 5 - uvae__img_text_width(ymin_s), (int)y1 - 6, ymin_s, 1, 0, 0, 0);
    uvae_image_text(&im, (int)x0, (int)y1 + 5, "0", 1, 0, 0, 0);
    uvae_image_text(&im, (int)x1 - uvae__img_text_width(xmax_s) + 2, (int)y1 + 5, xmax_s, 1, 0, 0, 0);

    for (int s = 0; s < n_series; s++) {
        long long px_prev = 0, py_prev = 0;
        int have_prev = 0;
        for (int i = 0; i < n_points; i++) {
            double v = series[s][i];
            if (!isfinite(v)) { have_prev = 0; continue; }
            long long px = n_points > 1 ? x0 + (long long)((double)i * (double)(x1 - x0) / (n_points - 1) + 0.5) : (x0 + x1) / 2;
            long long py = y1 - (long long)((v - ymin) / (ymax - ymin) * (double)(y1 - y0) + 0.5);
            uvae__img_line(&im, have_prev ? px_prev : px, have_prev ? py_prev : py, px, py, area, uvae_plot_colors[s]);
            px_prev = px; py_prev = py; have_prev = 1;
        }
    }

    if (n_named) {   /* legend: rows of 12 px, a 12x3 swatch, 4 px, the name */
        long long bw = 12 + 4 + legend_w + 8, bh = 12LL * n_named + 6;
        long long bx = x1 - bw - 4, by = y0 + 4, row = 0;
        uvae__img_fill(&im, bx, by, bx + bw, by + bh, area, 200, 200, 200);
        uvae__img_fill(&im, bx + 1, by + 1, bx + bw - 1, by + bh - 1, area, 255, 255, 255);
        for (int s = 0; s < n_series; s++) {
            if (!names[s]) continue;
            long long ty = by + 4 + 12 * row++;
            const unsigned char *col = uvae_plot_colors[s];
            uvae__img_fill(&im, bx + 4, ty + 3, bx + 16, ty + 6, area, col[0], col[1], col[2]);
            uvae__img_text(&im, bx + 20, ty, names[s], 1, area, 0, 0, 0);
        }
    }
    rc = uvae_image_save_png(&im, path);
    uvae_image_free(&im);
    return rc;
}

#endif
#endif
