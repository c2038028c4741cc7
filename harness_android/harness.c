/* devprof native harness: runs a batch of generated kernels in one process.
 *
 * For each kernel: load its data file (<name>.bin), generate the input, run once and check the
 * output against the reference samples shipped in the data file (a wrong output prints an error
 * line and is never timed), then time it with devprof's protocol (devprof/measure.py: warm-up,
 * calibrated calls per sample, repetitions, all from the command line) and print one JSON line
 * with the raw samples. Portable C99 + POSIX; sched_setaffinity where the OS has it.
 *
 * With --threads=T (T > 1) a pool of T-1 worker threads is created once for the whole batch, the
 * calling thread being the T-th; each is pinned to its own CPU of the process's CPU set (--cpus or
 * the inherited affinity, in order), so T may not exceed that set unless --oversubscribe. A call
 * is one job of the pool: every thread copies its even share of the kernel's prep chunks (the
 * shared input copies), waits at a barrier for the others' (only when there are any; a kernel
 * whose threads each read all of the input has every thread copy all of it privately instead), then
 * computes its parts of the chunks (split by cost, i.e. nonzero count), and the caller waits for
 * all of them: one wake-up and one join per call. Between calls
 * workers spin briefly (back-to-back timed calls never sleep), then block on a condition variable,
 * as pthreadpool does.
 *
 * Usage: devprof-harness [--warmup-us=N] [--min-warmups=N] [--sample-us=N] [--min-repeats=N]
 *        [--max-repeats=N] [--min-time-us=N] [--max-time-us=N] [--cpus=LIST] [--only=NAME[,NAME]]
 *        [--data-dir=DIR] [--dump=DIR] [--rtol=R] [--threads=T] [--oversubscribe] [--list]
 */
#define _GNU_SOURCE
#include "dp_harness.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <pthread.h>
#include <stdatomic.h>
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
    long warmup_us, min_warmups, sample_us, rounds, round_us, round_samples, max_time_us, group;
    const char *cpus, *only, *data_dir, *dump;
    double rtol;
    int list;
    long threads;
    int oversubscribe;
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

/* ---- the thread pool ------------------------------------------------------------------------ */
#define DP_MAX_THREADS 256
#define DP_SPIN_US 2000.0 /* a worker spins this long after a call before it sleeps */

static inline void cpu_relax(void) {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_ia32_pause();
#elif (defined(__aarch64__) || defined(__arm__)) && (defined(__GNUC__) || defined(__clang__))
    __asm__ __volatile__("yield");
#endif
}

#define DP_PARTS 4 /* parts per thread: a thread that finishes its own takes another's */

/* A kernel's parts per thread: its own count (a kernel that stages its input per range call runs a
 * thread's whole share as one call), else DP_PARTS. */
static inline int parts_per_thread(const dp_kernel *k) { return k->parts > 0 ? k->parts : DP_PARTS; }

typedef struct {
    const dp_kernel *k;
    const float *x;
    float *y, *ws;
    const dp_array *arr;
    const int64_t *bounds;  /* nthreads * parts + 1 chunk boundaries, of about equal cost */
    const int64_t *pbounds; /* nthreads + 1 prep chunk boundaries */
    float **tws;            /* one scratch per thread */
} pool_job;

typedef struct { atomic_int v; char pad[64 - sizeof(atomic_int)]; } padded_counter;

static struct {
    int n; /* threads, the caller included */
    int shared; /* more threads than CPUs (--oversubscribe): waiting threads yield their CPU */
    int cpu[DP_MAX_THREADS];
    pthread_t tid[DP_MAX_THREADS];
    atomic_uint gen;     /* bumped once per job */
    atomic_int pending;  /* workers still on the current job */
    atomic_int sleepers; /* workers blocked on cv */
    atomic_int arrived;  /* threads past their prep share (the job's barrier) */
    atomic_int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pool_job job;
    padded_counter next[DP_MAX_THREADS]; /* next part of each thread's own share */
} pool;

static int pin_self(int cpu) {
#ifdef __linux__
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
#else
    (void)cpu;
    return 0;
#endif
}

static inline void wait_step(void);

/* Thread t's share of a job: its even slice of the prep chunks, then (once every thread's slice is
 * done: chunks read all of the copies) its own parts of the chunks in order (a kernel with private
 * prep: all the prep chunks into the thread's own scratch, no barrier), then whatever parts
 * of the other threads are still unclaimed (so a thread the OS descheduled delays the call by at
 * most one part). */
static void run_part(const pool_job *j, int t) {
    if (j->k->nprep > 0 && j->k->private_prep) {
        j->k->prep(j->x, j->y, j->tws[t], j->arr, 0, j->k->nprep);
    } else if (j->k->nprep > 0) {
        if (j->pbounds[t] < j->pbounds[t + 1]) j->k->prep(j->x, j->y, j->ws, j->arr, j->pbounds[t], j->pbounds[t + 1]);
        atomic_fetch_add_explicit(&pool.arrived, 1, memory_order_acq_rel);
        while (atomic_load_explicit(&pool.arrived, memory_order_acquire) < pool.n) wait_step();
    }
    const int pp = parts_per_thread(j->k);
    for (int d = 0; d < pool.n; d++) {
        int v = (t + d) % pool.n;
        for (;;) {
            int i = atomic_fetch_add_explicit(&pool.next[v].v, 1, memory_order_relaxed);
            if (i >= (v + 1) * pp) break;
            if (j->bounds[i] < j->bounds[i + 1])
                j->k->range(j->x, j->y, j->ws, j->arr, j->bounds[i], j->bounds[i + 1], j->tws[t]);
        }
    }
}

/* One step of a wait loop: a pause, or when threads share CPUs, the CPU itself (the thread being
 * waited for may need it). */
static inline void wait_step(void) {
#ifdef __linux__
    if (pool.shared) { sched_yield(); return; }
#endif
    cpu_relax();
}

static void *worker(void *arg) {
    int t = (int)(intptr_t)arg;
    if (pool.cpu[t] >= 0) pin_self(pool.cpu[t]);
    unsigned seen = 0;
    for (;;) {
        unsigned g = atomic_load_explicit(&pool.gen, memory_order_acquire);
        if (g == seen) {
            double t0 = now_us();
            for (long spins = 1; (g = atomic_load_explicit(&pool.gen, memory_order_acquire)) == seen; spins++) {
                wait_step();
                if ((spins & 255) == 0 && now_us() - t0 > DP_SPIN_US) {
                    pthread_mutex_lock(&pool.mu);
                    atomic_fetch_add(&pool.sleepers, 1); /* seq_cst: pairs with pool_call's gen/sleepers */
                    while ((g = atomic_load(&pool.gen)) == seen) pthread_cond_wait(&pool.cv, &pool.mu);
                    atomic_fetch_sub(&pool.sleepers, 1);
                    pthread_mutex_unlock(&pool.mu);
                    break;
                }
            }
        }
        seen = g;
        if (atomic_load(&pool.stop)) return NULL;
        run_part(&pool.job, t);
        atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_release);
    }
}

/* Wake the workers for the job in pool.job (or for stopping) and do part 0 here. */
static void pool_call(void) {
    const int pp = parts_per_thread(pool.job.k);
    for (int t = 0; t < pool.n; t++) atomic_store_explicit(&pool.next[t].v, t * pp, memory_order_relaxed);
    atomic_store_explicit(&pool.pending, pool.n - 1, memory_order_relaxed);
    atomic_store_explicit(&pool.arrived, 0, memory_order_relaxed);
    atomic_fetch_add(&pool.gen, 1); /* seq_cst: a worker going to sleep either sees it or is seen */
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.mu);
        pthread_cond_broadcast(&pool.cv);
        pthread_mutex_unlock(&pool.mu);
    }
    run_part(&pool.job, 0);
    while (atomic_load_explicit(&pool.pending, memory_order_acquire) > 0) wait_step();
}

/* The CPUs the process may run on, in order (its affinity, which --cpus or taskset set). */
static int allowed_cpus(int *out, int max) {
#ifdef __linux__
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    for (int c = 0; c < CPU_SETSIZE && n < max; c++)
        if (CPU_ISSET(c, &set)) out[n++] = c;
    return n;
#else
    (void)out; (void)max;
    return -1;
#endif
}

/* Start T-1 workers, each pinned to its own allowed CPU (the caller takes the first). */
static int pool_start(int threads, int oversubscribe) {
    int cpus[DP_MAX_THREADS];
    int n = allowed_cpus(cpus, DP_MAX_THREADS);
    if (threads > DP_MAX_THREADS) { fprintf(stderr, "at most %d threads\n", DP_MAX_THREADS); return -1; }
    if (n >= 0 && n < threads && !oversubscribe) {
        fprintf(stderr, "%d threads need %d CPUs, but the process may use %d (pin more with --cpus, or pass --oversubscribe)\n",
                threads, threads, n);
        return -1;
    }
    pool.n = threads;
    pool.shared = n < threads;
    for (int t = 0; t < threads; t++) pool.cpu[t] = (n >= threads) ? cpus[t] : -1;
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.cv, NULL);
    if (pool.cpu[0] >= 0 && pin_self(pool.cpu[0]) != 0) { fprintf(stderr, "cannot pin to CPU %d\n", pool.cpu[0]); return -1; }
    for (int t = 1; t < threads; t++)
        if (pthread_create(&pool.tid[t], NULL, worker, (void *)(intptr_t)t) != 0) {
            fprintf(stderr, "cannot start thread %d\n", t);
            pool.n = t;
            return -1;
        }
    return 0;
}

static void pool_stop(void) {
    if (pool.n <= 1) return;
    atomic_store(&pool.stop, 1);
    atomic_fetch_add(&pool.gen, 1);
    pthread_mutex_lock(&pool.mu);
    pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    for (int t = 1; t < pool.n; t++) pthread_join(pool.tid[t], NULL);
}

/* Split chunks [0, nchunks) into `parts` ranges of about equal cost: bounds[0..parts]. Chunk c
 * costs cost[c % period]; prefix[i] = cost of chunks 0..i-1 of one period (prefix[period] = all). */
static void split_chunks(const dp_kernel *k, const int64_t *prefix, int parts, int64_t *bounds) {
    int64_t n = k->nchunks, p = k->period;
    double total = (double)(n / p) * (double)prefix[p] + (double)prefix[n % p];
    bounds[0] = 0;
    for (int t = 1; t < parts; t++) {
        double target = total * (double)t / (double)parts;
        int64_t lo = bounds[t - 1], hi = n; /* first c with cum(c) >= target */
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            double cum = (double)(mid / p) * (double)prefix[p] + (double)prefix[mid % p];
            if (cum >= target) hi = mid; else lo = mid + 1;
        }
        /* the chunk straddling the target goes to whichever side it overlaps more */
        if (lo > bounds[t - 1]) {
            int64_t c = lo - 1;
            double before = (double)(c / p) * (double)prefix[p] + (double)prefix[c % p];
            double after = before + (double)(k->cost[c % p]);
            if (target - before < after - target) lo = c;
        }
        bounds[t] = lo;
    }
    bounds[parts] = n;
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

/* IEEE half <-> float in plain C (the harness builds for targets without fp16 arithmetic too):
 * round to nearest even, subnormals and overflow to infinity as the hardware conversion does. */
static uint16_t float_to_half(float f) {
    uint32_t x; memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, e = (x >> 23) & 0xffu, m = x & 0x7fffffu;
    if (e == 0xffu) return (uint16_t)(sign | 0x7c00u | (m ? 0x200u : 0u));
    int32_t he = (int32_t)e - 127 + 15;
    if (he >= 31) return (uint16_t)(sign | 0x7c00u);
    if (he <= 0) {
        if (he < -10) return (uint16_t)sign;
        m |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - he), hm = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (hm & 1u))) hm++;
        return (uint16_t)(sign | hm);
    }
    uint32_t hm = m >> 13, rem = m & 0x1fffu;
    uint32_t h = sign | ((uint32_t)he << 10) | hm;
    if (rem > 0x1000u || (rem == 0x1000u && (hm & 1u))) h++; /* may carry into the exponent: correct */
    return (uint16_t)h;
}
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0x1fu) x = sign | 0x7f800000u | (m << 13);
    else if (e) x = sign | ((e - 15 + 127) << 23) | (m << 13);
    else if (!m) x = sign;
    else { e = 127 - 15 + 1; while (!(m & 0x400u)) { m <<= 1; e--; } x = sign | (e << 23) | ((m & 0x3ffu) << 13); }
    float f; memcpy(&f, &x, 4);
    return f;
}

/* One kernel of a group: its data, buffers and timing state, from check to report. */
typedef struct {
    const dp_kernel *k;
    dp_array *arr;
    float *x, *y, *ws;
    double checksum, max_abs, max_rel;
    int64_t checked;
    long warmups, number, per_round, rounds, taken;
    double *samples; /* one per round: the round's fastest sample (µs per call) */
    double *layers;  /* programs: rounds x nlayers per-call mean layer times */
    int ready;
    int nthreads;    /* > 1: calls go through the pool */
    int64_t *bounds; /* nthreads * parts_per_thread + 1 chunk boundaries */
    int64_t *pbounds; /* nthreads + 1 prep chunk boundaries */
    float **tws;     /* per-thread scratch */
} slot;

/* One call of the kernel: on this thread alone, or as one job of the pool. */
static void call(slot *s) {
    const dp_kernel *k = s->k;
    if (s->nthreads <= 1) { k->run(s->x, s->y, s->ws, s->arr); return; }
    pool.job = (pool_job){k, s->x, s->y, s->ws, s->arr, s->bounds, s->pbounds, s->tws};
    pool_call();
}

static void free_slot(slot *s) {
    if (s->arr) for (int i = 0; i < s->k->narrays; i++) free(s->arr[i].data);
    free(s->arr);
    free(s->x);
    free(s->y);
    free(s->ws);
    free(s->samples);
    free(s->layers);
    if (s->tws) for (int t = 0; t < s->nthreads; t++) free(s->tws[t]);
    free(s->tws);
    free(s->bounds);
    free(s->pbounds);
    memset(s, 0, sizeof *s);
}

/* Load, run once, check against the shipped reference, warm up and plan the rounds.
 * Returns 1 when the kernel is ready to be timed; otherwise it printed why not. */
static int prepare(slot *s, const dp_kernel *k, const options *o) {
    char path[4096], err[256];
    memset(s, 0, sizeof *s);
    s->k = k;
    s->arr = calloc((size_t)k->narrays, sizeof(dp_array));
    snprintf(path, sizeof path, "%s/%s.bin", o->data_dir, k->name);
    if (!s->arr || load_arrays(path, s->arr, k->narrays, err, sizeof err) != 0) {
        print_error(k, "error", s->arr ? err : "out of memory");
        return 0;
    }
    s->x = alloc64((size_t)k->in_elems * 4);
    s->y = alloc64((size_t)k->out_elems * 4);
    s->ws = alloc64((size_t)k->ws_floats * 4);
    if (!s->x || !s->y || !s->ws) { print_error(k, "error", "out of memory"); return 0; }
    if (k->half)
        for (int64_t i = 0; i < k->in_elems; i++) ((uint16_t *)s->x)[i] = float_to_half(dp_input_value(k->seed, (uint32_t)i));
    else
        for (int64_t i = 0; i < k->in_elems; i++) s->x[i] = dp_input_value(k->seed, (uint32_t)i);
    if (o->threads > 1) {
        if (!k->range) { print_error(k, "error", "this kernel runs on one thread only"); return 0; }
        s->nthreads = (int)o->threads;
        int parts = s->nthreads * parts_per_thread(k);
        s->bounds = malloc(sizeof(int64_t) * (size_t)(parts + 1));
        s->pbounds = malloc(sizeof(int64_t) * (size_t)(s->nthreads + 1));
        s->tws = calloc((size_t)s->nthreads, sizeof(float *));
        int64_t *prefix = malloc(sizeof(int64_t) * (size_t)(k->period + 1));
        if (!s->bounds || !s->pbounds || !s->tws || !prefix || k->period < 1) {
            free(prefix); print_error(k, "error", "out of memory"); return 0;
        }
        prefix[0] = 0;
        for (int i = 0; i < k->period; i++) prefix[i + 1] = prefix[i] + k->cost[i];
        split_chunks(k, prefix, parts, s->bounds);
        free(prefix);
        for (int t = 0; t <= s->nthreads; t++) s->pbounds[t] = k->nprep * t / s->nthreads;
        for (int t = 0; t < s->nthreads; t++)
            if (!(s->tws[t] = alloc64((size_t)k->tws_floats * 4))) { print_error(k, "error", "out of memory"); return 0; }
    }

    /* 1. correctness gate: every shipped reference sample must match */
    call(s);
    const float *yv = s->y; /* the output as floats */
    float *widened = NULL;
    if (k->out_u8 || k->half) {
        if (!(widened = malloc(sizeof(float) * (size_t)(k->out_elems ? k->out_elems : 1)))) { print_error(k, "error", "out of memory"); return 0; }
        for (int64_t i = 0; i < k->out_elems; i++)
            widened[i] = k->half ? half_to_float(((const uint16_t *)s->y)[i]) : (float)((const uint8_t *)s->y)[i];
        yv = widened;
    }
    const int32_t *idx = (const int32_t *)s->arr[0].data;
    const float *ref = (const float *)s->arr[1].data;
    int64_t ns = s->arr[0].count < s->arr[1].count ? s->arr[0].count : s->arr[1].count;
    double scale = 0.0, max_abs = 0.0, max_rel = 0.0, checksum = 0.0;
    int64_t bad = -1;
    if (s->arr[0].dtype != 1 || s->arr[1].dtype != 0 || ns == 0) { free(widened); print_error(k, "error", "data file has no reference samples"); return 0; }
    double rms = 0.0;
    for (int64_t i = 0; i < ns; i++) { scale = fmax(scale, fabs((double)ref[i])); rms += (double)ref[i] * ref[i]; }
    rms = sqrt(rms / (double)ns);
    double atol = k->rtol > 0 ? k->atol : o->rtol * (scale > 0 ? scale : 1.0);
    for (int64_t i = 0; i < ns; i++) {
        if (idx[i] < 0 || idx[i] >= k->out_elems) { free(widened); print_error(k, "error", "reference index out of range"); return 0; }
        double got = yv[idx[i]], want = ref[i], e = fabs(got - want);
        double lim = k->rtol > 0 ? atol + k->rtol * fmax(fabs(want), rms) : atol + o->rtol * fabs(want);
        if (!(e <= lim)) { if (bad < 0) bad = i; }
        if (!(e <= max_abs)) max_abs = e;   /* NaN-safe */
        if (want != 0.0 && e / fabs(want) > max_rel) max_rel = e / fabs(want);
    }
    for (int64_t i = 0; i < k->out_elems; i++) checksum += yv[i];
    if (bad >= 0 || !isfinite(checksum)) {
        char msg[256];
        if (bad >= 0)
            snprintf(msg, sizeof msg, "output mismatch at element %d: got %.7g want %.7g (max abs err %.3g, atol %.3g)",
                     (int)idx[bad], (double)yv[idx[bad]], (double)ref[bad], max_abs, atol);
        else
            snprintf(msg, sizeof msg, "output contains NaN or Inf");
        free(widened);
        print_error(k, "mismatch", msg);
        return 0;
    }
    if (o->dump) {
        char dpath[4096];
        snprintf(dpath, sizeof dpath, "%s/%s.out", o->dump, k->name);
        FILE *f = fopen(dpath, "wb");
        if (f) { fwrite(yv, 4, (size_t)k->out_elems, f); fclose(f); }
    }
    free(widened);
    s->checksum = checksum; s->max_abs = max_abs; s->max_rel = max_rel; s->checked = ns;

    /* 2. warm-up (also a first estimate of one call's time) */
    long warmups = 0;
    double t0 = now_us(), elapsed;
    for (;;) {
        call(s);
        warmups++;
        elapsed = now_us() - t0;
        if (warmups >= o->min_warmups && elapsed >= (double)o->warmup_us) break;
        if (warmups >= o->min_warmups && elapsed > 20.0 * (double)o->warmup_us) break;
    }
    /* 3. calibrate calls per sample and plan the rounds (Protocol.plan in devprof/measure.py) */
    double per_call = elapsed / (double)warmups;
    long number = per_call > 0 ? (long)ceil((double)o->sample_us / per_call) : 1;
    if (number < 1) number = 1;
    double sample = (double)number * per_call;
    long per_round = o->round_samples < 1 ? 1 : o->round_samples, rounds = o->rounds < 1 ? 1 : o->rounds;
    if (sample * (double)per_round * (double)rounds > (double)o->max_time_us) {
        long pr = (long)((double)o->max_time_us / fmax(sample * 3.0, 1e-9));
        per_round = pr < 1 ? 1 : (pr < per_round ? pr : per_round);
        long nr = (long)((double)o->max_time_us / fmax(sample * (double)per_round, 1e-9));
        rounds = nr < 3 ? 3 : (nr < rounds ? nr : rounds);
    }
    s->samples = malloc(sizeof(double) * (size_t)rounds);
    if (!s->samples) { print_error(k, "error", "out of memory"); return 0; }
    if (k->nlayers > 0 && k->layer_us) {
        s->layers = calloc((size_t)rounds * (size_t)k->nlayers, sizeof(double));
        if (!s->layers) { print_error(k, "error", "out of memory"); return 0; }
    }
    s->warmups = warmups; s->number = number; s->per_round = per_round; s->rounds = rounds;
    s->ready = 1;
    return 1;
}

/* One round of one kernel: an untimed call, then samples for round_us; keep the fastest. */
static void time_round(slot *s, const options *o) {
    const dp_kernel *k = s->k;
    call(s);
    double best = INFINITY, spent = 0.0;
    long taken = 0;
    if (s->layers) memset(k->layer_us, 0, sizeof(double) * (size_t)k->nlayers);
    for (;;) {
        double t = now_us();
        for (long r = 0; r < s->number; r++) call(s);
        double dt = now_us() - t;
        if (dt / (double)s->number < best) best = dt / (double)s->number;
        spent += dt;
        taken++;
        if (taken >= s->per_round && spent >= (double)o->round_us) break;
        if (taken >= s->per_round && spent * (double)s->rounds >= (double)o->max_time_us) break;
    }
    if (s->layers) {
        double calls = (double)taken * (double)s->number;
        for (int i = 0; i < k->nlayers; i++) s->layers[(size_t)s->taken * (size_t)k->nlayers + (size_t)i] = k->layer_us[i] / calls;
    }
    s->samples[s->taken++] = best;
}

static void report(const slot *s) {
    const dp_kernel *k = s->k;
    printf("{\"v\":1,\"harness\":\"%s\",\"kernel\":\"%s\",\"spec_id\":\"%s\",\"variant\":\"%s\",\"status\":\"ok\","
           "\"warmups\":%ld,\"number\":%ld,\"checksum\":%.9g,\"max_abs_err\":%.3g,\"max_rel_err\":%.3g,"
           "\"checked\":%ld,\"samples_us\":[",
           DP_HARNESS_VERSION, k->name, k->spec_id, k->variant, s->warmups, s->number, s->checksum, s->max_abs,
           s->max_rel, (long)s->checked);
    for (long i = 0; i < s->taken; i++) printf("%s%.4f", i ? "," : "", s->samples[i]);
    printf("]");
    if (s->layers) { /* per layer: its per-call mean in each round */
        printf(",\"layers_us\":[");
        for (int l = 0; l < k->nlayers; l++) {
            printf("%s[", l ? "," : "");
            for (long i = 0; i < s->taken; i++) printf("%s%.4f", i ? "," : "", s->layers[(size_t)i * (size_t)k->nlayers + (size_t)l]);
            printf("]");
        }
        printf("]");
    }
    printf("}\n");
    fflush(stdout);
}

/* Time a group of kernels with alternating rounds (round 1 of each, round 2 of each, ...), so a
 * slow stretch of the machine touches one round of many kernels instead of all rounds of one;
 * report each kernel when the group is done. */
static void run_group(const dp_kernel **ks, int n, const options *o) {
    slot *slots = calloc((size_t)n, sizeof(slot));
    if (!slots) { for (int i = 0; i < n; i++) print_error(ks[i], "error", "out of memory"); return; }
    long max_rounds = 0;
    for (int i = 0; i < n; i++) {
        if (prepare(&slots[i], ks[i], o) && slots[i].rounds > max_rounds) max_rounds = slots[i].rounds;
        if (!slots[i].ready) free_slot(&slots[i]);
    }
    for (long r = 0; r < max_rounds; r++)
        for (int i = 0; i < n; i++)
            if (slots[i].ready && r < slots[i].rounds) time_round(&slots[i], o);
    for (int i = 0; i < n; i++) {
        if (slots[i].ready) report(&slots[i]);
        free_slot(&slots[i]);
    }
    free(slots);
}

int main(int argc, char **argv) {
    options o = {50000, 3, 5000, 10, 30000, 3, 4000000, 16, NULL, NULL, ".", NULL, 1e-4, 0, 1, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (parse_long(a, "--warmup-us=", &o.warmup_us) || parse_long(a, "--min-warmups=", &o.min_warmups)
            || parse_long(a, "--sample-us=", &o.sample_us) || parse_long(a, "--rounds=", &o.rounds)
            || parse_long(a, "--round-us=", &o.round_us) || parse_long(a, "--round-samples=", &o.round_samples)
            || parse_long(a, "--max-time-us=", &o.max_time_us) || parse_long(a, "--group=", &o.group)
            || parse_long(a, "--threads=", &o.threads))
            continue;
        if (!strncmp(a, "--cpus=", 7)) o.cpus = a + 7;
        else if (!strncmp(a, "--only=", 7)) o.only = a + 7;
        else if (!strncmp(a, "--data-dir=", 11)) o.data_dir = a + 11;
        else if (!strncmp(a, "--dump=", 7)) o.dump = a + 7;
        else if (!strncmp(a, "--rtol=", 7)) o.rtol = atof(a + 7);
        else if (!strcmp(a, "--list")) o.list = 1;
        else if (!strcmp(a, "--oversubscribe")) o.oversubscribe = 1;
        else { fprintf(stderr, "unknown argument: %s\n", a); return 2; }
    }
    if (o.cpus && *o.cpus && pin_cpus(o.cpus) != 0) {
        fprintf(stderr, "cannot pin to CPUs %s\n", o.cpus);
        return 3;
    }
    if (o.threads < 1) o.threads = 1;
    if (o.threads > 1 && !o.list && pool_start((int)o.threads, o.oversubscribe) != 0) return 3;
    printf("{\"v\":1,\"harness\":\"%s\",\"event\":\"start\",\"kernels\":%d,\"vector_floats\":%d,\"threads\":%ld}\n",
           DP_HARNESS_VERSION, dp_nkernels, DP_VL, o.threads);
    fflush(stdout);
    if (o.group < 1) o.group = 1;
    const dp_kernel **group = malloc(sizeof(dp_kernel *) * (size_t)o.group);
    if (!group) { fprintf(stderr, "out of memory\n"); return 3; }
    int ng = 0;
    for (int i = 0; i < dp_nkernels; i++) {
        const dp_kernel *k = &dp_kernels[i];
        if (!selected(o.only, k->name)) continue;
        if (o.list) { printf("%s %s %s\n", k->name, k->spec_id, k->variant); continue; }
        group[ng++] = k;
        if (ng == o.group) { run_group(group, ng, &o); ng = 0; }
    }
    if (ng) run_group(group, ng, &o);
    free(group);
    pool_stop();
    printf("{\"v\":1,\"harness\":\"%s\",\"event\":\"end\"}\n", DP_HARNESS_VERSION);
    return 0;
}
