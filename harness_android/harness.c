/* devprof native harness: runs a batch of generated kernels in one process.
 *
 * For each kernel: load its data file (<name>.bin), generate the input, run once and check the
 * output against the reference samples shipped in the data file (a wrong output prints an error
 * line and is never timed), then time it with devprof's protocol (devprof/measure.py: warm-up,
 * calibrated calls per sample, repetitions, all from the command line) and print one JSON line
 * with the raw samples. Portable C99 + POSIX; sched_setaffinity where the OS has it.
 *
 * Usage: devprof-harness [--warmup-us=N] [--min-warmups=N] [--sample-us=N] [--min-repeats=N]
 *        [--max-repeats=N] [--min-time-us=N] [--max-time-us=N] [--cpus=LIST] [--only=NAME[,NAME]]
 *        [--data-dir=DIR] [--dump=DIR] [--rtol=R] [--list]
 */
#define _GNU_SOURCE
#include "dp_harness.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef __linux__
#include <sched.h>
#endif

/* GCC 12's aarch64 vectoriser crashes (ICE in vect_transform_reduction) on this driver's
 * reductions at -O3. The driver is never timed, so it is built without loop vectorisation there;
 * the generated kernels (separate files) keep it. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__aarch64__)
#pragma GCC optimize("no-tree-loop-vectorize")
#endif

extern const dp_kernel dp_kernels[];
extern const int dp_nkernels;

typedef struct {
    long warmup_us, min_warmups, sample_us, min_repeats, max_repeats, min_time_us, max_time_us;
    const char *cpus, *only, *data_dir, *dump;
    double rtol;
    int list;
} options;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static void *alloc64(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    bytes = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    memset(p, 0, bytes);
    return p;
}

static int parse_long(const char *arg, const char *key, long *out) {
    size_t n = strlen(key);
    if (strncmp(arg, key, n) != 0) return 0;
    char *end;
    errno = 0;
    long v = strtol(arg + n, &end, 10);
    if (errno || *end || v < 0) { fprintf(stderr, "bad value in %s\n", arg); exit(2); }
    *out = v;
    return 1;
}

static int pin_cpus(const char *list) {
#ifdef __linux__
    cpu_set_t set;
    CPU_ZERO(&set);
    const char *p = list;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b;
        if (end == p || a < 0 || a >= CPU_SETSIZE) return -1;
        b = a;
        if (*end == '-') {
            p = end + 1;
            b = strtol(p, &end, 10);
            if (end == p || b < a || b >= CPU_SETSIZE) return -1;
        }
        for (long c = a; c <= b; c++) CPU_SET((int)c, &set);
        p = end;
        if (*p == ',') p++;
        else if (*p) return -1;
    }
    return sched_setaffinity(0, sizeof set, &set);
#else
    (void)list;
    return -1;
#endif
}

static int selected(const char *only, const char *name) {
    if (!only) return 1;
    size_t n = strlen(name);
    const char *p = only;
    while (*p) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return 1;
        if (!c) break;
        p = c + 1;
    }
    return 0;
}

/* Data file: "DPB1", u32 narrays, then per array: u32 dtype, u32 reserved, u64 count, data. */
static int load_arrays(const char *path, dp_array *arr, int narrays, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, errlen, "cannot open data file"); return -1; }
    char magic[4];
    uint32_t n;
    if (fread(magic, 1, 4, f) != 4 || memcmp(magic, "DPB1", 4) != 0 || fread(&n, 4, 1, f) != 1) {
        snprintf(err, errlen, "bad data file header"); fclose(f); return -1;
    }
    if ((int)n != narrays) { snprintf(err, errlen, "data file has %u arrays, kernel expects %d", n, narrays); fclose(f); return -1; }
    for (int i = 0; i < narrays; i++) {
        uint32_t dtype, reserved;
        uint64_t count;
        if (fread(&dtype, 4, 1, f) != 1 || fread(&reserved, 4, 1, f) != 1 || fread(&count, 8, 1, f) != 1
            || dtype > 1 || count > ((uint64_t)1 << 34)) {
            snprintf(err, errlen, "truncated or corrupt data file (array %d)", i); fclose(f); return -1;
        }
        arr[i].dtype = (int32_t)dtype;
        arr[i].count = (int64_t)count;
        arr[i].data = alloc64((size_t)count * 4 + 64);
        if (!arr[i].data) { snprintf(err, errlen, "out of memory"); fclose(f); return -1; }
        if (count && fread(arr[i].data, 4, (size_t)count, f) != count) {
            snprintf(err, errlen, "truncated data file (array %d)", i); fclose(f); return -1;
        }
    }
    fclose(f);
    return 0;
}

static void print_error(const dp_kernel *k, const char *status, const char *msg) {
    printf("{\"v\":1,\"harness\":\"%s\",\"kernel\":\"%s\",\"spec_id\":\"%s\",\"variant\":\"%s\","
           "\"status\":\"%s\",\"error\":\"%s\"}\n", DP_HARNESS_VERSION, k->name, k->spec_id, k->variant, status, msg);
    fflush(stdout);
}

static void run_kernel(const dp_kernel *k, const options *o) {
    char path[4096], err[256];
    dp_array *arr = calloc((size_t)k->narrays, sizeof(dp_array));
    float *x = NULL, *y = NULL, *ws = NULL;
    snprintf(path, sizeof path, "%s/%s.bin", o->data_dir, k->name);
    if (!arr || load_arrays(path, arr, k->narrays, err, sizeof err) != 0) {
        print_error(k, "error", arr ? err : "out of memory");
        goto done;
    }
    x = alloc64((size_t)k->in_elems * 4);
    y = alloc64((size_t)k->out_elems * 4);
    ws = alloc64((size_t)k->ws_floats * 4);
    if (!x || !y || !ws) { print_error(k, "error", "out of memory"); goto done; }
    for (int64_t i = 0; i < k->in_elems; i++) x[i] = dp_input_value(k->seed, (uint32_t)i);

    /* 1. correctness gate: every shipped reference sample must match */
    k->run(x, y, ws, arr);
    {
        const int32_t *idx = (const int32_t *)arr[0].data;
        const float *ref = (const float *)arr[1].data;
        int64_t ns = arr[0].count < arr[1].count ? arr[0].count : arr[1].count;
        double scale = 0.0, max_abs = 0.0, max_rel = 0.0, checksum = 0.0;
        int64_t bad = -1;
        if (arr[0].dtype != 1 || arr[1].dtype != 0 || ns == 0) { print_error(k, "error", "data file has no reference samples"); goto done; }
        for (int64_t i = 0; i < ns; i++) scale = fmax(scale, fabs((double)ref[i]));
        double atol = o->rtol * (scale > 0 ? scale : 1.0);
        for (int64_t i = 0; i < ns; i++) {
            if (idx[i] < 0 || idx[i] >= k->out_elems) { print_error(k, "error", "reference index out of range"); goto done; }
            double got = y[idx[i]], want = ref[i], e = fabs(got - want);
            if (!(e <= atol + o->rtol * fabs(want))) { if (bad < 0) bad = i; }
            if (!(e <= max_abs)) max_abs = e;   /* NaN-safe */
            if (want != 0.0 && e / fabs(want) > max_rel) max_rel = e / fabs(want);
        }
        for (int64_t i = 0; i < k->out_elems; i++) checksum += y[i];
        if (bad >= 0 || !isfinite(checksum)) {
            char msg[256];
            if (bad >= 0)
                snprintf(msg, sizeof msg, "output mismatch at element %d: got %.7g want %.7g (max abs err %.3g, atol %.3g)",
                         (int)idx[bad], (double)y[idx[bad]], (double)ref[bad], max_abs, atol);
            else
                snprintf(msg, sizeof msg, "output contains NaN or Inf");
            print_error(k, "mismatch", msg);
            goto done;
        }
        if (o->dump) {
            char dpath[4096];
            snprintf(dpath, sizeof dpath, "%s/%s.out", o->dump, k->name);
            FILE *f = fopen(dpath, "wb");
            if (f) { fwrite(y, 4, (size_t)k->out_elems, f); fclose(f); }
        }

        /* 2. warm-up (also a first estimate of one call's time) */
        long warmups = 0;
        double t0 = now_us(), elapsed;
        for (;;) {
            k->run(x, y, ws, arr);
            warmups++;
            elapsed = now_us() - t0;
            if (warmups >= o->min_warmups && elapsed >= (double)o->warmup_us) break;
            if (warmups >= o->min_warmups && elapsed > 20.0 * (double)o->warmup_us) break;
        }
        double per_call = elapsed / (double)warmups;
        /* 3. calibrate calls per sample, 4. repeat */
        long number = per_call > 0 ? (long)ceil((double)o->sample_us / per_call) : 1;
        if (number < 1) number = 1;
        long cap = o->max_repeats > 0 ? o->max_repeats : 1;
        double *samples = malloc(sizeof(double) * (size_t)cap);
        if (!samples) { print_error(k, "error", "out of memory"); goto done; }
        long ns_taken = 0;
        double spent = 0.0;
        while (ns_taken < cap) {
            double t = now_us();
            for (long r = 0; r < number; r++) k->run(x, y, ws, arr);
            double dt = now_us() - t;
            samples[ns_taken++] = dt / (double)number;
            spent += dt;
            if (ns_taken >= o->min_repeats && spent >= (double)o->min_time_us) break;
            if (spent >= (double)o->max_time_us && ns_taken >= 3) break;
        }
        printf("{\"v\":1,\"harness\":\"%s\",\"kernel\":\"%s\",\"spec_id\":\"%s\",\"variant\":\"%s\",\"status\":\"ok\","
               "\"warmups\":%ld,\"number\":%ld,\"checksum\":%.9g,\"max_abs_err\":%.3g,\"max_rel_err\":%.3g,"
               "\"checked\":%ld,\"samples_us\":[",
               DP_HARNESS_VERSION, k->name, k->spec_id, k->variant, warmups, number, checksum, max_abs, max_rel,
               (long)ns);
        for (long i = 0; i < ns_taken; i++) printf("%s%.4f", i ? "," : "", samples[i]);
        printf("]}\n");
        fflush(stdout);
        free(samples);
    }
done:
    if (arr) for (int i = 0; i < k->narrays; i++) free(arr[i].data);
    free(arr);
    free(x);
    free(y);
    free(ws);
}

int main(int argc, char **argv) {
    options o = {50000, 3, 5000, 15, 200, 150000, 2000000, NULL, NULL, ".", NULL, 1e-4, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (parse_long(a, "--warmup-us=", &o.warmup_us) || parse_long(a, "--min-warmups=", &o.min_warmups)
            || parse_long(a, "--sample-us=", &o.sample_us) || parse_long(a, "--min-repeats=", &o.min_repeats)
            || parse_long(a, "--max-repeats=", &o.max_repeats) || parse_long(a, "--min-time-us=", &o.min_time_us)
            || parse_long(a, "--max-time-us=", &o.max_time_us))
            continue;
        if (!strncmp(a, "--cpus=", 7)) o.cpus = a + 7;
        else if (!strncmp(a, "--only=", 7)) o.only = a + 7;
        else if (!strncmp(a, "--data-dir=", 11)) o.data_dir = a + 11;
        else if (!strncmp(a, "--dump=", 7)) o.dump = a + 7;
        else if (!strncmp(a, "--rtol=", 7)) o.rtol = atof(a + 7);
        else if (!strcmp(a, "--list")) o.list = 1;
        else { fprintf(stderr, "unknown argument: %s\n", a); return 2; }
    }
    if (o.cpus && *o.cpus && pin_cpus(o.cpus) != 0) {
        fprintf(stderr, "cannot pin to CPUs %s\n", o.cpus);
        return 3;
    }
    printf("{\"v\":1,\"harness\":\"%s\",\"event\":\"start\",\"kernels\":%d,\"vector_floats\":%d}\n",
           DP_HARNESS_VERSION, dp_nkernels, DP_VL);
    fflush(stdout);
    for (int i = 0; i < dp_nkernels; i++) {
        const dp_kernel *k = &dp_kernels[i];
        if (!selected(o.only, k->name)) continue;
        if (o.list) { printf("%s %s %s\n", k->name, k->spec_id, k->variant); continue; }
        run_kernel(k, &o);
    }
    printf("{\"v\":1,\"harness\":\"%s\",\"event\":\"end\"}\n", DP_HARNESS_VERSION);
    return 0;
}
