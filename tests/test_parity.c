/* tests/test_parity.c — parity with PyTorch, against the fixtures of tests/ref/make_ref.py.

   ops.safetensors    every op and loss: forward output and the gradient of every input
   optim.safetensors  Adam / AdamW / SGD trajectories, OneCycle and cosine schedules, clipping
   unet_*.safetensors, cvae.safetensors   5 Adam steps of each model from PyTorch's initial weights

   Tensors are compared with uvt_close(ours, ref, n, rtol, atol) <= 1, where atol is a small floor
   relative to the reference tensor's scale (1e-5 * max|ref|). One CHECK per compared tensor; one
   summary line per group. */
#include "test.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* A failure that is not a comparison (missing fixture, failed call): counted only when it happens,
   so that the passes counted are the comparisons. */
#define FAIL(...) CHECK(0, __VA_ARGS__)

/* ---------------------------------------------------------------------------------------------
   comparison bookkeeping: the worst result of a group of comparisons */
typedef struct {
    const char *name;
    int n;                        /* tensors compared */
    double ratio, rel;            /* worst uvt_close ratio, worst relative error */
    char where[128];              /* the tensor with the worst ratio */
} pgroup;

static void group_print(const pgroup *g) {
    printf("  parity %-16s %3d tensors, worst ratio %.3g (%s), max rel err %.3g\n",
           g->name, g->n, g->ratio, g->n ? g->where : "-", g->rel);
}

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i]) > m) m = fabs((double)a[i]);
    return m;
}

/* Compare n values of ours with the reference tensor; rtol, and atol = atol_scale * max|ref|. */
static void compare(pgroup *g, const char *what, const float *ours, size_t n,
                    const uvae_st_tensor *ref, double rtol, double atol_scale) {
    double atol, ratio, rel = 0;
    if (!ref) return;                                     /* already reported as missing */
    if (n != ref->size) { FAIL("parity %s: %zu values, reference has %zu", what, n, ref->size); return; }
    atol = atol_scale * max_abs(ref->data, n);
    if (atol < 1e-30) atol = 1e-30;
    ratio = uvt_close(ours, ref->data, n, rtol, atol, &rel);
    uvt_note_torch_rel(rel);
    CHECK(ratio <= 1, "parity %s: worst ratio %.3g (rtol %g, atol %.3g), max rel err %.3g",
          what, ratio, rtol, atol, rel);
    g->n++;
    if (!(ratio <= g->ratio)) {                           /* NaN counts as worst */
        g->ratio = ratio;
        snprintf(g->where, sizeof g->where, "%s", what);
    }
    if (rel > g->rel) g->rel = rel;
}

/* ---------------------------------------------------------------------------------------------
   fixtures */
static int open_fixture(const char *file, uvae_st_file *f) {
    char path[256];
    int st;
    snprintf(path, sizeof path, "%s/%s", UVT_REF_DIR, file);
    st = uvae_st_read(path, f);
    if (st != UVAE_OK) FAIL("parity: cannot read fixture %s: %s", path, uvae_last_error());
    return st == UVAE_OK;
}

/* A fixture tensor by printf-formatted name; a missing one is a failure. */
static const uvae_st_tensor *need(const uvae_st_file *f, const char *fmt, ...) {
    char name[UVAE_NAME_MAX];
    const uvae_st_tensor *t;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    t = uvae_st_find(f, name);
    if (!t) FAIL("parity: fixture tensor %s missing", name);
    return t;
}

/* A standalone tensor holding a copy of a fixture tensor (with a zeroed gradient if grad). */
static uvae_tensor *tensor_from(const uvae_st_tensor *s, int grad) {
    uvae_tensor *t;
    if (!s) return NULL;
    t = uvae_tensor_new_grad(s->ndim, s->shape, grad);
    if (!t) FAIL("parity: cannot allocate %s: %s", s->name, uvae_last_error());
    if (t) memcpy(t->data, s->data, s->size * sizeof(float));
    return t;
}

static int same_shape_st(const uvae_tensor *t, const uvae_st_tensor *s) {
    if (t->ndim != s->ndim) return 0;
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] != s->shape[i]) return 0;
    return 1;
}

/* ---------------------------------------------------------------------------------------------
   ops and losses: ops.safetensors, one group "<case>.*" per row of the table */
enum {
    OP_CONV, OP_CONVT, OP_MAXPOOL, OP_AVGPOOL, OP_UPSAMPLE, OP_BN, OP_BN_RELU, OP_RELU, OP_LEAKY, OP_SIGMOID,
    OP_TANH, OP_EXP, OP_LINEAR, OP_EMBED, OP_CONCAT, OP_ADD, OP_MUL, OP_SCALE, OP_SUM, OP_MEAN,
    OP_FLATTEN, OP_DROPOUT,
    LOSS_FIRST, LOSS_CE = LOSS_FIRST, LOSS_BCE, LOSS_DICE, LOSS_CE_DICE, LOSS_KL, LOSS_BERNOULLI,
    LOSS_GAUSSIAN, LOSS_DLOGISTIC
};
enum { F_EVAL = 1,    /* eval mode (running stats, no dropout) with the tape recorded */
       F_AFTER = 2 }; /* the no-gradient inputs are updated: compare with "<input>_after" */

typedef struct {
    const char *name;             /* fixture group */
    int op;
    const char *args;             /* inputs in argument order; '!' marks one without gradient */
    int i0, i1;                   /* conv: stride, pad; pool: k, stride; upsample: scale, mode */
    float f;                      /* slope, scale, momentum, dropout p, dice smooth */
    int flags;
} op_case;

static const op_case op_cases[] = {
    {"conv_k3s1p1",         OP_CONV,     "x w b",  1, 1, 0, 0},
    {"conv_k3s2p1",         OP_CONV,     "x w b",  2, 1, 0, 0},
    {"conv_k1s1p0",         OP_CONV,     "x w b",  1, 0, 0, 0},
    {"conv_k4s2p1_nobias",  OP_CONV,     "x w",    2, 1, 0, 0},
    {"convt_k2s2p0",        OP_CONVT,    "x w b",  2, 0, 0, 0},
    {"convt_k4s2p1",        OP_CONVT,    "x w b",  2, 1, 0, 0},
    {"convt_k3s1p1_nobias", OP_CONVT,    "x w",    1, 1, 0, 0},
    {"maxpool_k2s2",        OP_MAXPOOL,  "x",      2, 2, 0, 0},
    {"maxpool_k3s2",        OP_MAXPOOL,  "x",      3, 2, 0, 0},
    {"avgpool_k2s2",        OP_AVGPOOL,  "x",      2, 2, 0, 0},
    {"avgpool_k3s2",        OP_AVGPOOL,  "x",      3, 2, 0, 0},
    {"up_nearest_s2",       OP_UPSAMPLE, "x",      2, UVAE_NEAREST, 0, 0},
    {"up_bilinear_s2",      OP_UPSAMPLE, "x",      2, UVAE_BILINEAR, 0, 0},
    {"up_bilinear_s3",      OP_UPSAMPLE, "x",      3, UVAE_BILINEAR, 0, 0},
    {"bn_train",            OP_BN, "x gamma beta !running_mean !running_var", 0, 0, 0.1f, F_AFTER},
    {"bn_eval",             OP_BN, "x gamma beta !running_mean !running_var", 0, 0, 0.1f, F_EVAL},
    {"bn_relu_train",       OP_BN_RELU, "x gamma beta !running_mean !running_var", 0, 0, 0.1f, F_AFTER},
    {"bn_relu_eval",        OP_BN_RELU, "x gamma beta !running_mean !running_var", 0, 0, 0.1f, F_EVAL},
    {"relu",                OP_RELU,     "x",      0, 0, 0, 0},
    {"leaky_relu",          OP_LEAKY,    "x",      0, 0, 0.2f, 0},
    {"sigmoid",             OP_SIGMOID,  "x",      0, 0, 0, 0},
    {"tanh",                OP_TANH,     "x",      0, 0, 0, 0},
    {"exp",                 OP_EXP,      "x",      0, 0, 0, 0},
    {"linear",              OP_LINEAR,   "x w b",  0, 0, 0, 0},
    {"embedding",           OP_EMBED,    "!idx table", 0, 0, 0, 0},
    {"concat_4d",           OP_CONCAT,   "a b",    0, 0, 0, 0},
    {"concat_2d",           OP_CONCAT,   "a b",    0, 0, 0, 0},
    {"add",                 OP_ADD,      "a b",    0, 0, 0, 0},
    {"mul",                 OP_MUL,      "a b",    0, 0, 0, 0},
    {"scale",               OP_SCALE,    "x",      0, 0, 0.7f, 0},
    {"sum",                 OP_SUM,      "x",      0, 0, 0, 0},
    {"mean",                OP_MEAN,     "x",      0, 0, 0, 0},
    {"flatten",             OP_FLATTEN,  "x",      0, 0, 0, 0},
    {"dropout_eval",        OP_DROPOUT,  "x",      0, 0, 0.5f, F_EVAL},
    {"ce_4d",               LOSS_CE,     "logits !target", 0, 0, 0, 0},
    {"ce_2d",               LOSS_CE,     "logits !target", 0, 0, 0, 0},
    {"bce",                 LOSS_BCE,    "logits !target", 0, 0, 0, 0},
    {"dice_multi",          LOSS_DICE,   "logits !target", 0, 0, 1.0f, 0},
    {"dice_binary",         LOSS_DICE,   "logits !target", 0, 0, 1.0f, 0},
    {"ce_dice",             LOSS_CE_DICE, "logits !target", 0, 0, 1.0f, 0},
    {"kl_normal",           LOSS_KL,     "mu logvar", 0, 0, 0, 0},
    {"bernoulli_nll",       LOSS_BERNOULLI, "logits !target", 0, 0, 0, 0},
    {"gaussian_nll_full",   LOSS_GAUSSIAN, "mean logvar !target", 0, 0, 0, 0},
    {"gaussian_nll_scalar", LOSS_GAUSSIAN, "mean logvar !target", 0, 0, 0, 0},
    {"dlogistic",           LOSS_DLOGISTIC, "mean log_scale !target", 0, 0, 0, 0},
};

#define MAX_ARGS 5
typedef struct { char name[32]; int grad; } op_arg;

/* "x gamma !running_mean" -> names and gradient flags; returns the count */
static int parse_args(const char *s, op_arg *a) {
    int n = 0;
    while (*s && n < MAX_ARGS) {
        size_t len = 0;
        while (*s == ' ') s++;
        if (!*s) break;
        a[n].grad = *s != '!';
        if (*s == '!') s++;
        while (s[len] && s[len] != ' ' && len + 1 < sizeof a[n].name) len++;
        memcpy(a[n].name, s, len);
        a[n].name[len] = 0;
        s += len;
        n++;
    }
    return n;
}

static uvae_tensor *run_op(uvae_ctx *ctx, const op_case *c, uvae_tensor **in) {
    switch (c->op) {
    case OP_CONV:     return uvae_conv2d(ctx, in[0], in[1], in[2], c->i0, c->i1);
    case OP_CONVT:    return uvae_conv_transpose2d(ctx, in[0], in[1], in[2], c->i0, c->i1);
    case OP_MAXPOOL:  return uvae_max_pool2d(ctx, in[0], c->i0, c->i1);
    case OP_AVGPOOL:  return uvae_avg_pool2d(ctx, in[0], c->i0, c->i1);
    case OP_UPSAMPLE: return uvae_upsample(ctx, in[0], c->i0, c->i1);
    case OP_BN:       return uvae_batch_norm2d(ctx, in[0], in[1], in[2], in[3], in[4], c->f, 1e-5f);
    case OP_BN_RELU:  return uvae_batch_norm2d_relu(ctx, in[0], in[1], in[2], in[3], in[4], c->f, 1e-5f);
    case OP_RELU:     return uvae_relu(ctx, in[0]);
    case OP_LEAKY:    return uvae_leaky_relu(ctx, in[0], c->f);
    case OP_SIGMOID:  return uvae_sigmoid(ctx, in[0]);
    case OP_TANH:     return uvae_tanh(ctx, in[0]);
    case OP_EXP:      return uvae_exp(ctx, in[0]);
    case OP_LINEAR:   return uvae_linear(ctx, in[0], in[1], in[2]);
    case OP_EMBED:    return uvae_embedding(ctx, in[0], in[1]);
    case OP_CONCAT:   return uvae_concat(ctx, in[0], in[1]);
    case OP_ADD:      return uvae_add(ctx, in[0], in[1]);
    case OP_MUL:      return uvae_mul(ctx, in[0], in[1]);
    case OP_SCALE:    return uvae_scale(ctx, in[0], c->f);
    case OP_SUM:      return uvae_sum(ctx, in[0]);
    case OP_MEAN:     return uvae_mean(ctx, in[0]);
    case OP_FLATTEN:  return uvae_flatten(ctx, in[0]);
    case OP_DROPOUT:  return uvae_dropout(ctx, in[0], c->f);
    case LOSS_CE:        return uvae_cross_entropy(ctx, in[0], in[1]);
    case LOSS_BCE:       return uvae_bce_with_logits(ctx, in[0], in[1]);
    case LOSS_DICE:      return uvae_dice_loss(ctx, in[0], in[1], c->f);
    case LOSS_CE_DICE:   return uvae_ce_dice_loss(ctx, in[0], in[1], c->f);
    case LOSS_KL:        return uvae_kl_normal(ctx, in[0], in[1]);
    case LOSS_BERNOULLI: return uvae_bernoulli_nll(ctx, in[0], in[1]);
    case LOSS_GAUSSIAN:  return uvae_gaussian_nll(ctx, in[0], in[1], in[2]);
    case LOSS_DLOGISTIC: return uvae_discretized_logistic_nll(ctx, in[0], in[1], in[2]);
    }
    return NULL;
}

/* Forward, backward of (out * r).sum() (or of the loss itself), compare everything. */
static void run_op_case(const uvae_st_file *f, const op_case *c, pgroup *g) {
    op_arg a[MAX_ARGS];
    uvae_tensor *in[MAX_ARGS] = {0}, *r = NULL, *out = NULL, *loss = NULL;
    const uvae_st_tensor *ref_in[MAX_ARGS] = {0};
    int na = parse_args(c->args, a), ok = 1, is_loss = c->op >= LOSS_FIRST;
    char what[160];
    uvae_ctx *ctx = uvae_ctx_new(0);

    if (!ctx) FAIL("parity %s: uvae_ctx_new failed", c->name);
    for (int i = 0; i < na; i++) {
        ref_in[i] = need(f, "%s.%s", c->name, a[i].name);
        in[i] = tensor_from(ref_in[i], a[i].grad);
        ok = ok && in[i] != NULL;
    }
    if (!is_loss) ok = (r = tensor_from(need(f, "%s.r", c->name), 0)) != NULL && ok;
    if (!ok || !ctx) goto done;

    uvae_ctx_reset(ctx, !(c->flags & F_EVAL));
    if (c->flags & F_EVAL) uvae_ctx_set_record(ctx, 1);
    out = run_op(ctx, c, in);
    if (!out) { FAIL("parity %s: forward failed: %s", c->name, uvae_last_error()); goto done; }
    {
        const uvae_st_tensor *ref = need(f, "%s.out", c->name);
        if (ref) {
            snprintf(what, sizeof what, "%.64s.out", c->name);
            if (same_shape_st(out, ref)) compare(g, what, out->data, out->size, ref, 1e-5, 1e-5);
            else FAIL("parity %s: shape differs from the reference", what);
        }
    }
    loss = is_loss ? out : uvae_sum(ctx, uvae_mul(ctx, out, r));
    {
        int st = uvae_backward(ctx, loss);
        if (st != UVAE_OK) { FAIL("parity %s: backward failed: %s", c->name, uvae_last_error()); goto done; }
    }
    for (int i = 0; i < na; i++) {
        if (a[i].grad) {
            snprintf(what, sizeof what, "%.64s.d%.31s", c->name, a[i].name);
            compare(g, what, in[i]->grad, in[i]->size, need(f, "%s.d%s", c->name, a[i].name), 1e-5, 1e-5);
        } else if (c->flags & F_AFTER) {
            snprintf(what, sizeof what, "%.64s.%.31s_after", c->name, a[i].name);
            compare(g, what, in[i]->data, in[i]->size, need(f, "%s.%s_after", c->name, a[i].name),
                    1e-5, 1e-5);
        } else {                                          /* targets, indices, eval running stats */
            CHECK(memcmp(in[i]->data, ref_in[i]->data, in[i]->size * sizeof(float)) == 0,
                  "parity %s.%s: an input without gradient was modified", c->name, a[i].name);
        }
    }
done:
    for (int i = 0; i < na; i++) uvae_tensor_free(in[i]);
    uvae_tensor_free(r);
    uvae_ctx_free(ctx);
}

static void parity_ops(void) {
    uvae_st_file f;
    pgroup ops = {"ops", 0, 0, 0, ""}, losses = {"losses", 0, 0, 0, ""};
    if (!open_fixture("ops.safetensors", &f)) return;
    for (size_t i = 0; i < sizeof op_cases / sizeof op_cases[0]; i++)
        run_op_case(&f, &op_cases[i], op_cases[i].op >= LOSS_FIRST ? &losses : &ops);
    group_print(&ops);
    group_print(&losses);
    uvae_st_free(&f);
}

/* ---------------------------------------------------------------------------------------------
   optimizers, schedules and clipping: optim.safetensors */

/* A registry of the given 1-D trainable parameters (zeros); on failure nothing is left to free. */
static int small_params(uvae_params *P, int n, const char *const *names, const int *sizes) {
    int st;
    uvae_params_init(P);
    for (int i = 0; i < n; i++) uvae_params_add(P, 1, UVAE_INIT_ZERO, 0, 1, &sizes[i], "%s", names[i]);
    st = uvae_params_alloc(P, 0);
    if (st != UVAE_OK) {
        FAIL("parity: uvae_params_alloc failed: %s", uvae_last_error());
        uvae_params_free(P);
    }
    return st == UVAE_OK;
}

static void optim_case(const uvae_st_file *f, const char *name, int kind, float lr, pgroup *g) {
    static const char *const names[] = {"p"};
    static const int sizes[] = {10};
    uvae_params P;
    uvae_optim o;
    uvae_param *p;
    const uvae_st_tensor *p0 = need(f, "%s.p0", name);
    char what[64];
    if (!p0 || !small_params(&P, 1, names, sizes)) return;
    p = uvae_params_find(&P, "p");
    if (p0->size != 10) { FAIL("parity %s.p0: want 10 values", name); uvae_params_free(&P); return; }
    memcpy(p->t.data, p0->data, 10 * sizeof(float));
    if (uvae_optim_init(&o, &P, kind, lr) != UVAE_OK) {
        FAIL("parity %s: uvae_optim_init failed: %s", name, uvae_last_error());
        uvae_params_free(&P);
        return;
    }
    if (kind == UVAE_ADAMW) o.weight_decay = 0.1f;
    for (int s = 0; s < 3; s++) {
        const uvae_st_tensor *gr = need(f, "%s.g%d", name, s);
        if (!gr || gr->size != 10) break;
        memcpy(p->t.grad, gr->data, 10 * sizeof(float));
        uvae_optim_step(&o, &P, -1.0f);
        snprintf(what, sizeof what, "%s.p%d", name, s + 1);
        compare(g, what, p->t.data, 10, need(f, "%s.p%d", name, s + 1), 1e-5, 1e-5);
    }
    uvae_optim_free(&o);
    uvae_params_free(&P);
}

static void clip_case(const uvae_st_file *f, const char *name, pgroup *g) {
    static const char *const names[] = {"a", "b"};
    static const int sizes[] = {12, 5};
    uvae_params P;
    const uvae_st_tensor *ga = need(f, "%s.a", name), *gb = need(f, "%s.b", name);
    char what[64];
    float norm;
    if (!ga || !gb || ga->size != 12 || gb->size != 5) {
        FAIL("parity %s: fixture gradients missing or of the wrong size", name);
        return;
    }
    if (!small_params(&P, 2, names, sizes)) return;
    memcpy(uvae_params_find(&P, "a")->t.grad, ga->data, 12 * sizeof(float));
    memcpy(uvae_params_find(&P, "b")->t.grad, gb->data, 5 * sizeof(float));
    norm = uvae_clip_grad_norm(&P, 1.0f);
    snprintf(what, sizeof what, "%s.norm", name);
    compare(g, what, &norm, 1, need(f, "%s.norm", name), 1e-5, 1e-5);
    snprintf(what, sizeof what, "%s.a_after", name);
    compare(g, what, uvae_params_find(&P, "a")->t.grad, 12, need(f, "%s.a_after", name), 1e-5, 1e-5);
    snprintf(what, sizeof what, "%s.b_after", name);
    compare(g, what, uvae_params_find(&P, "b")->t.grad, 5, need(f, "%s.b_after", name), 1e-5, 1e-5);
    uvae_params_free(&P);
}

static void parity_optim(void) {
    uvae_st_file f;
    pgroup opt = {"optim", 0, 0, 0, ""}, sched = {"schedules", 0, 0, 0, ""}, clip = {"clip", 0, 0, 0, ""};
    float lr[20];
    if (!open_fixture("optim.safetensors", &f)) return;
    optim_case(&f, "adam", UVAE_ADAM, 1e-2f, &opt);
    optim_case(&f, "adamw", UVAE_ADAMW, 1e-2f, &opt);
    optim_case(&f, "sgd", UVAE_SGD, 1e-1f, &opt);

    for (int s = 0; s < 20; s++) lr[s] = uvae_lr_onecycle(s, 20, 1e-3f);
    compare(&sched, "onecycle.lr", lr, 20, need(&f, "onecycle.lr"), 1e-6, 0);
    for (int s = 0; s < 20; s++) lr[s] = uvae_lr_cosine(s, 20, 1e-3f, 1e-5f);
    compare(&sched, "cosine.lr", lr, 20, need(&f, "cosine.lr"), 1e-6, 0);

    clip_case(&f, "clip_big", &clip);
    clip_case(&f, "clip_small", &clip);
    group_print(&opt);
    group_print(&sched);
    group_print(&clip);
    uvae_st_free(&f);
}

/* ---------------------------------------------------------------------------------------------
   models: copy PyTorch's initial weights in, train 5 Adam steps, compare the losses */

static int is_model_tensor(const char *name) {
    return strncmp(name, "input.", 6) != 0 && strncmp(name, "eps.", 4) != 0 && strcmp(name, "losses") != 0;
}

/* Every registered parameter/buffer from the fixture (same shape), and nothing left over. */
static int load_model(const uvae_st_file *f, uvae_params *P, const char *model) {
    int missing = 0, extra = 0, bad_shape = 0;
    for (int i = 0; i < P->n; i++) {
        uvae_param *p = P->p[i];
        const uvae_st_tensor *s = uvae_st_find(f, p->name);
        if (!s) {
            if (!missing++) printf("  parity %s: model tensor %s not in the fixture\n", model, p->name);
        } else if (!same_shape_st(&p->t, s)) {
            if (!bad_shape++) printf("  parity %s: %s has another shape in the fixture\n", model, p->name);
        } else {
            memcpy(p->t.data, s->data, s->size * sizeof(float));
        }
    }
    for (int i = 0; i < f->n; i++)
        if (is_model_tensor(f->t[i].name) && !uvae_params_find(P, f->t[i].name))
            if (!extra++) printf("  parity %s: fixture tensor %s is not in the model\n", model, f->t[i].name);
    CHECK(missing == 0 && bad_shape == 0 && extra == 0,
          "parity %s: of %d model tensors %d missing from the fixture and %d of another shape; "
          "%d fixture tensors match no model tensor", model, P->n, missing, bad_shape, extra);
    return missing == 0 && bad_shape == 0 && extra == 0;
}

#define MODEL_STEPS 5

/* One training step of a model, as the C API user writes it: returns the loss before the update,
   or NAN after reporting a failure. */
typedef uvae_tensor *(*loss_fn)(uvae_ctx *ctx, void *model, int step);

static float train_step(uvae_ctx *ctx, uvae_params *P, uvae_optim *opt, loss_fn fn, void *model,
                        const char *name, int step) {
    uvae_tensor *loss;
    float value;
    int st;
    uvae_ctx_reset(ctx, 1);
    uvae_params_zero_grad(P);
    loss = fn(ctx, model, step);
    if (!loss) { FAIL("parity %s step %d: forward failed: %s", name, step, uvae_last_error()); return NAN; }
    value = loss->data[0];
    st = uvae_backward(ctx, loss);
    if (st != UVAE_OK) { FAIL("parity %s step %d: backward failed: %s", name, step, uvae_last_error()); return NAN; }
    uvae_optim_step(opt, P, -1.0f);
    return value;
}

/* Load PyTorch's initial tensors into P, train MODEL_STEPS steps with Adam (lr 1e-3) and compare
   the losses with the fixture's "losses" (relative 1e-4). */
static void train_and_compare(const uvae_st_file *f, uvae_params *P, loss_fn fn, void *model,
                              const char *name) {
    uvae_optim opt;
    uvae_ctx *ctx;
    float losses[MODEL_STEPS];
    char what[96];
    pgroup g = {NULL, 0, 0, 0, ""};
    int steps = 0;

    g.name = name;
    if (!load_model(f, P, name)) return;
    if (uvae_optim_init(&opt, P, UVAE_ADAM, 1e-3f) != UVAE_OK) {
        FAIL("parity %s: uvae_optim_init failed: %s", name, uvae_last_error());
        return;
    }
    ctx = uvae_ctx_new(0);
    if (!ctx) FAIL("parity %s: uvae_ctx_new failed: %s", name, uvae_last_error());
    for (; ctx && steps < MODEL_STEPS; steps++)
        if (isnan(losses[steps] = train_step(ctx, P, &opt, fn, model, name, steps))) break;
    if (steps == MODEL_STEPS) {
        snprintf(what, sizeof what, "%s.losses", name);
        compare(&g, what, losses, MODEL_STEPS, need(f, "losses"), 1e-4, 0);
    }
    group_print(&g);
    uvae_ctx_free(ctx);
    uvae_optim_free(&opt);
}

enum { LOSS_IS_CE, LOSS_IS_DICE };
typedef struct { const char *variant; int down, up, loss; } unet_case;
static const unet_case unet_cases[] = {
    {"mp_tr_ce",   UVAE_DOWN_MAXPOOL, UVAE_UP_TRANSPOSE, LOSS_IS_CE},
    {"mp_tr_dice", UVAE_DOWN_MAXPOOL, UVAE_UP_TRANSPOSE, LOSS_IS_DICE},
    {"st_tr_ce",   UVAE_DOWN_STRIDED, UVAE_UP_TRANSPOSE, LOSS_IS_CE},
    {"st_up_dice", UVAE_DOWN_STRIDED, UVAE_UP_UPSAMPLE,  LOSS_IS_DICE},
};

typedef struct { uvae_unet net; int loss; uvae_tensor *x, *y; } unet_run;

static uvae_tensor *unet_loss(uvae_ctx *ctx, void *model, int step) {
    unet_run *r = (unet_run *)model;
    uvae_tensor *logits = uvae_unet_forward(ctx, &r->net, r->x);
    (void)step;
    return r->loss == LOSS_IS_DICE ? uvae_dice_loss(ctx, logits, r->y, 1.0f)
                                   : uvae_cross_entropy(ctx, logits, r->y);
}

static void parity_unet(const unet_case *c) {
    char file[64], name[64];
    uvae_st_file f;
    uvae_unet_config cfg = {3, 3, 8, 2, 0, 0};
    unet_run r;

    snprintf(file, sizeof file, "unet_%s.safetensors", c->variant);
    snprintf(name, sizeof name, "unet_%s", c->variant);
    if (!open_fixture(file, &f)) return;
    cfg.down = c->down;
    cfg.up = c->up;
    memset(&r, 0, sizeof r);
    r.loss = c->loss;
    if (uvae_unet_init(&r.net, &cfg, 0) != UVAE_OK) {
        FAIL("parity %s: uvae_unet_init failed: %s", name, uvae_last_error());
    } else {
        r.x = tensor_from(need(&f, "input.x"), 0);
        r.y = tensor_from(need(&f, "input.y"), 0);
        if (r.x && r.y) train_and_compare(&f, &r.net.params, unet_loss, &r, name);
        uvae_unet_free(&r.net);
    }
    uvae_tensor_free(r.x);
    uvae_tensor_free(r.y);
    uvae_st_free(&f);
}

typedef struct { uvae_cvae m; uvae_tensor *x, *labels, *eps[MODEL_STEPS]; } cvae_run;

static uvae_tensor *cvae_loss(uvae_ctx *ctx, void *model, int step) {
    cvae_run *r = (cvae_run *)model;
    uvae_cvae_out out = uvae_cvae_forward(ctx, &r->m, r->x, r->labels, r->eps[step]);
    return uvae_cvae_loss(ctx, out, r->x);
}

/* fixture: cvae.safetensors (Bernoulli, label only through fc_dec) or cvae_cond_logistic.safetensors
   (2 label maps per decoder stage, the discretised logistic with its log-scale head) */
static void parity_cvae(const char *fixture, const char *name, int cond_planes, int likelihood) {
    uvae_st_file f;
    uvae_cvae_config cfg = {1, 16, 10, 8, 8, 8, 0, UVAE_BERNOULLI};
    cvae_run r;
    int ok = 1;

    cfg.cond_planes = cond_planes;
    cfg.likelihood = likelihood;
    if (!open_fixture(fixture, &f)) return;
    memset(&r, 0, sizeof r);
    if (uvae_cvae_init(&r.m, &cfg, 0) != UVAE_OK) {
        FAIL("parity cvae: uvae_cvae_init failed: %s", uvae_last_error());
    } else {
        r.x = tensor_from(need(&f, "input.x"), 0);
        r.labels = tensor_from(need(&f, "input.labels"), 0);
        for (int i = 0; i < MODEL_STEPS; i++) ok = (r.eps[i] = tensor_from(need(&f, "eps.%d", i), 0)) && ok;
        if (ok && r.x && r.labels) train_and_compare(&f, &r.m.params, cvae_loss, &r, name);
        uvae_cvae_free(&r.m);
    }
    uvae_tensor_free(r.x);
    uvae_tensor_free(r.labels);
    for (int i = 0; i < MODEL_STEPS; i++) uvae_tensor_free(r.eps[i]);
    uvae_st_free(&f);
}

void suite_parity(void) {
    parity_ops();
    parity_optim();
    for (size_t i = 0; i < sizeof unet_cases / sizeof unet_cases[0]; i++) parity_unet(&unet_cases[i]);
    parity_cvae("cvae.safetensors", "cvae", 0, UVAE_BERNOULLI);
    parity_cvae("cvae_cond_logistic.safetensors", "cvae_cond_logistic", 2, UVAE_DLOGISTIC);
}
