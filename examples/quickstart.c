/* examples/quickstart.c — the header's quick start, runnable: a small UNet learns a made-up
   3-class segmentation (the class of a pixel is a threshold of its red value) in 60 steps.
     CPU: cc -O2 -fopenmp -std=c99 examples/quickstart.c -lm -o quickstart && ./quickstart
     GPU: nvcc -O3 -DUNETVAE_CUDA examples/quickstart.c unetvae_cuda.cu -o quickstart && ./quickstart */
#define UNETVAE_IMPLEMENTATION
#include "../unetvae.h"
#include <stdio.h>
#include <stdlib.h>

static int fail(void) {
    fprintf(stderr, "quickstart: %s\n", uvae_last_error());
    return 1;
}

int main(void) {
#ifdef UNETVAE_CUDA
    const int dev = UVAE_CUDA;
#else
    const int dev = UVAE_CPU;
#endif
    uvae_unet_config cfg = {3, 3, 8, 4, UVAE_DOWN_MAXPOOL, UVAE_UP_TRANSPOSE};
    uvae_unet net;
    uvae_optim opt;
    uvae_rng rng;
    uvae_ctx *ctx;
    uvae_tensor *x, *y;
    float *hx = (float *)malloc(4 * 3 * 64 * 64 * sizeof(float)), *hy = (float *)malloc(4 * 64 * 64 * sizeof(float));
    if (dev == UVAE_CUDA && !uvae_cuda_available()) return fail();      /* "no CUDA device" */
    if (!hx || !hy || !(ctx = uvae_ctx_new_on(dev, 0)) || !(x = uvae_tensor_new_on(dev, 4, (int[]){4, 3, 64, 64}, 0)) ||
        !(y = uvae_tensor_new_on(dev, 3, (int[]){4, 64, 64}, 0)) || uvae_unet_init(&net, &cfg, 1234) != UVAE_OK ||
        uvae_params_to(&net.params, dev) != UVAE_OK || uvae_optim_init(&opt, &net.params, UVAE_ADAM, 1e-3f) != UVAE_OK)
        return fail();
    uvae_rng_seed(&rng, 1);
    for (int i = 0; i < 4 * 3 * 64 * 64; i++) hx[i] = 2 * uvae_rng_uniform(&rng) - 1;
    for (int n = 0; n < 4; n++)
        for (int p = 0; p < 64 * 64; p++) {
            float red = hx[n * 3 * 4096 + p];
            hy[n * 4096 + p] = (float)((red > -0.3f) + (red > 0.3f));
        }
    if (uvae_tensor_copy_in(x, hx) != UVAE_OK || uvae_tensor_copy_in(y, hy) != UVAE_OK) return fail();
    for (int step = 0; step < 60; step++) {
        uvae_tensor *loss;
        uvae_ctx_reset(ctx, 1);
        uvae_params_zero_grad(&net.params);
        loss = uvae_cross_entropy(ctx, uvae_unet_forward(ctx, &net, x), y);
        if (uvae_backward(ctx, loss) != UVAE_OK) return fail();
        if (uvae_optim_step(&opt, &net.params, uvae_lr_onecycle(step, 60, 1e-2f)) != UVAE_OK) return fail();
        if (step % 10 == 0 || step == 59) {
            float v;
            if (uvae_tensor_copy_out(loss, &v) != UVAE_OK) return fail();
            printf("step %3d  loss %.4f\n", step, v);
        }
    }
    if (uvae_save("quickstart.safetensors", &net.params, &opt, NULL, 0) != UVAE_OK) return fail();
    printf("saved quickstart.safetensors (%zu parameters, trained on the %s)\n", uvae_params_count(&net.params), dev ? "GPU" : "CPU");
    uvae_optim_free(&opt);
    uvae_unet_free(&net);
    uvae_tensor_free(x);
    uvae_tensor_free(y);
    uvae_ctx_free(ctx);
    free(hx);
    free(hy);
    return 0;
}
