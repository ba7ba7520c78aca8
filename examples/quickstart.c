/* examples/quickstart.c — the header's quick start, runnable: a small UNet learns a made-up
   3-class segmentation (the class of a pixel is a threshold of its red value) in 60 steps.
     cc -O2 -fopenmp -std=c99 examples/quickstart.c -lm -o quickstart && ./quickstart */
#define UNETVAE_IMPLEMENTATION
#include "../unetvae.h"
#include <stdio.h>

int main(void) {
    uvae_unet_config cfg = {3, 3, 8, 4, UVAE_DOWN_MAXPOOL, UVAE_UP_TRANSPOSE};
    uvae_unet net;
    uvae_optim opt;
    uvae_rng rng;
    uvae_ctx *ctx = uvae_ctx_new(0);
    uvae_tensor *x = uvae_tensor_new(4, (int[]){4, 3, 64, 64});
    uvae_tensor *y = uvae_tensor_new(3, (int[]){4, 64, 64});
    if (!ctx || !x || !y || uvae_unet_init(&net, &cfg, 1234) != UVAE_OK ||
        uvae_optim_init(&opt, &net.params, UVAE_ADAM, 1e-3f) != UVAE_OK) {
        fprintf(stderr, "quickstart: %s\n", uvae_last_error());
        return 1;
    }
    uvae_rng_seed(&rng, 1);
    for (size_t i = 0; i < x->size; i++) x->data[i] = 2 * uvae_rng_uniform(&rng) - 1;
    for (int n = 0; n < 4; n++)
        for (int p = 0; p < 64 * 64; p++) {
            float red = x->data[(size_t)n * 3 * 4096 + p];
            y->data[n * 4096 + p] = (float)((red > -0.3f) + (red > 0.3f));
        }
    for (int step = 0; step < 60; step++) {
        uvae_tensor *loss;
        uvae_ctx_reset(ctx, 1);
        uvae_params_zero_grad(&net.params);
        loss = uvae_cross_entropy(ctx, uvae_unet_forward(ctx, &net, x), y);
        if (uvae_backward(ctx, loss) != UVAE_OK) {
            fprintf(stderr, "quickstart: %s\n", uvae_last_error());
            return 1;
        }
        uvae_optim_step(&opt, &net.params, uvae_lr_onecycle(step, 60, 1e-2f));
        if (step % 10 == 0 || step == 59) printf("step %3d  loss %.4f\n", step, loss->data[0]);
    }
    if (uvae_save("quickstart.safetensors", &net.params, &opt, NULL, 0) != UVAE_OK) {
        fprintf(stderr, "quickstart: %s\n", uvae_last_error());
        return 1;
    }
    printf("saved quickstart.safetensors (%zu parameters)\n", uvae_params_count(&net.params));
    uvae_optim_free(&opt);
    uvae_unet_free(&net);
    uvae_tensor_free(x);
    uvae_tensor_free(y);
    uvae_ctx_free(ctx);
    return 0;
}
