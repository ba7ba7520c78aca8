/* examples/common.h — the plumbing the example programs share, so that each example's own file
   holds what it is about. Define EXAMPLE_NAME (the prefix of every error line), include unetvae.h,
   then this, in the example's one .c file:
     die, die_lib        one line on stderr, "NAME: ...", and exit status 1 (a progress bar's line
                         is closed first); die_lib adds uvae_last_error()
     xmalloc             malloc that dies with a message instead of returning NULL
     now_s               a monotonic clock, in seconds
     need_dir            the path exists and is a folder, or die naming it
     mkdir_p             mkdir -p, then need_dir
     progress, progress_end   the per-step bar on stderr: epoch, steps, mean loss, img/s, ETA
     not_finite          the NaN/Inf guard's message (the step is stopped before the optimizer)
     history_from_csv    --resume: a run's metrics.csv cut back to the epochs before the checkpoint
   Static functions only; POSIX (clock_gettime, mkdir, stat). */
#ifndef UVAE_EXAMPLES_COMMON_H
#define UVAE_EXAMPLES_COMMON_H
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/types.h>

#ifndef EXAMPLE_NAME
#error "define EXAMPLE_NAME (the program's name, for its error lines) before including examples/common.h"
#endif

static int bar_open;   /* 1 while the progress bar holds the end of the stderr line */

static void die(const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "%s" EXAMPLE_NAME ": ", bar_open ? "\n" : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}
static void die_lib(const char *what) { die("%s: %s", what, uvae_last_error()); }
static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory (%zu bytes)", n);
    return p;
}
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void need_dir(const char *dir, const char *what) {
    struct stat st;
    if (stat(dir, &st) != 0) die("%s '%s': %s", what, dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) die("%s '%s' is not a directory", what, dir);
}
/* mkdir -p dir; `what` names it in errors (e.g. "--out") */
static void mkdir_p(const char *dir, const char *what) {
    size_t n = strlen(dir);
    char *s;
    if (n == 0) die("%s: empty folder name", what);
    s = (char *)xmalloc(n + 1);
    memcpy(s, dir, n + 1);
    for (size_t i = 1; i <= n; i++)
        if (s[i] == '/' || s[i] == '\0') {
            char c = s[i];
            s[i] = '\0';
            if (mkdir(s, 0777) != 0 && errno != EEXIST) die("cannot create '%s': %s", s, strerror(errno));
            s[i] = c;
        }
    need_dir(dir, what);
    free(s);
}

/* h:mm:ss, or m:ss under an hour */
static void fmt_time(double s, char *buf, size_t n) {
    long t = s > 0 && s < 1e8 ? (long)(s + 0.5) : 0;
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}
/* "\r[what ]epoch e/E [#####.....] s/S loss L R img/s ETA t": step s of S of epoch e of E done */
static void progress(const char *what, int e, int E, int s, int S, double loss, double img_per_s, double eta_s) {
    char eta[32];
    int w = 20, fill = S > 0 ? s * w / S : w;
    fmt_time(eta_s, eta, sizeof eta);
    fprintf(stderr, "\r%s%sepoch %d/%d [", what ? what : "", what ? " " : "", e, E);
    for (int k = 0; k < w; k++) fputc(k < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %d/%d loss %.4f %.1f img/s ETA %s   ", s, S, loss, img_per_s, eta);
    fflush(stderr);
    bar_open = 1;
}
static void progress_end(void) {
    if (bar_open) fputc('\n', stderr);
    bar_open = 0;
}

/* The NaN/Inf guard: stop before the optimizer step; the checkpoint on disk is from a good step. */
static void not_finite(long long step, const char *what, double v, const char *ckpt) {
    die("step %lld: %s is %g; stopped before the optimizer step. The last checkpoint, %s (if any), is as it was; "
        "try a lower --lr", step, what, v, ckpt);
}

/* --resume: read the first `epochs` rows of a run's metrics.csv ("epoch,a,b,c,..."; the columns
   after the epoch into a, b, c, for the curves) and write the file back with only those rows under
   `header` (a run killed after an epoch's row but before its checkpoint wrote one row too many), so
   that the resumed run appends epoch epochs+1 where it belongs. Dies unless rows 1..epochs are all
   there, in order. */
static void history_from_csv(const char *path, const char *header, int epochs, float *a, float *b, float *c) {
    char line[512], *rows = (char *)xmalloc((size_t)epochs * sizeof line + 1);
    size_t len = 0;
    int got = 0;
    FILE *f = fopen(path, "r");
    if (!f) die("--resume: cannot read '%s' (the run's per-epoch history): %s", path, strerror(errno));
    while (fgets(line, sizeof line, f)) {
        int ep;
        double x, y, z;
        if (sscanf(line, "%d,%lf,%lf,%lf", &ep, &x, &y, &z) != 4 || ep > epochs) continue;   /* the header, later epochs */
        if (ep != got + 1) die("--resume: '%s' has epoch %d where epoch %d was expected", path, ep, got + 1);
        a[got] = (float)x; b[got] = (float)y; c[got] = (float)z;
        got++;
        memcpy(rows + len, line, strlen(line));
        len += strlen(line);
    }
    fclose(f);
    if (got != epochs) die("--resume: '%s' holds %d of the %d epochs before the checkpoint", path, got, epochs);
    if (!(f = fopen(path, "w")) || fputs(header, f) < 0 || fwrite(rows, 1, len, f) != len || fclose(f) != 0)
        die("cannot write '%s': %s", path, strerror(errno));
    free(rows);
}
#endif
